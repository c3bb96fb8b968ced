#!/usr/bin/env bash
# Installs the Debian packages memvisor builds and tests with, when missing.
# As root it runs apt-get itself; otherwise it prints the exact command.
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh real     the same (the real-guest test, tests/real/,
#                                    is part of the suite)
set -eu

packages=(cmake make gcc pkg-config libxxhash-dev libzstd-dev libcmocka-dev)
# tests/install: nm (binutils) for the exported symbols, mandoc and man-db
# (groff) to check that the manual pages render without warnings.
packages+=(binutils mandoc man-db groff-base)
# tests/real: boots Debian kernels under QEMU TCG with busybox initramfs images.
packages+=(qemu-system-x86 cpio busybox-static socat)
if [ "${1:-}" = fuzz ]; then
  packages+=(clang libclang-rt-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
    || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "memvisor needs these Debian packages: ${missing[*]}" >&2
  echo "run as root:  apt-get update && $cmd" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
$cmd >&2
