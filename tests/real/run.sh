#!/usr/bin/env bash
# The real-guest test of `memvisor walk`:
#   run.sh [--time-limit SECONDS | --no-time-limit] MEMVISOR
# fetches Debian kernels and builds busybox initramfs images (fetch.sh),
# boots them under QEMU TCG in 4-level (qemu64), 5-level (max), 32-bit and
# PAE paging and captures RAM, registers, `info tlb` and gva2gpa samples
# (boot.sh), then checks the walker against all of it (compare.sh).
# Captures are cached in
# tests/real/cache/ and reused while the kernels, initramfs images and
# boot.sh are unchanged; MV_REAL_FRESH=1 boots again regardless.
# Exit status 0 only if every comparison agrees. The --dump time of each
# capture is printed as a JSON line; by default a dump slower than 1 s
# fails (--no-time-limit: only report it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

limit=1.0
case ${1:-} in
--time-limit) limit=$2; shift 2 ;;
--no-time-limit) limit=; shift ;;
esac
[ $# -eq 1 ] || die "usage: run.sh [--time-limit S | --no-time-limit] MEMVISOR"
MV=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$MV" ] || die "$1 is not an executable"

t_start=$(now)
lock_cache
rm -rf "$CACHE"/boot.* "$CACHE"/dl.* "$CACHE"/initrd.*[!z]

"$REAL_DIR/fetch.sh"
root=$(capture_root)
# Older captures (another kernel or boot.sh) are only disk space now.
for d in "$CACHE"/captures/*; do
	[ "$d" = "$root" ] || [ ! -d "$d" ] || rm -rf "$d"
done

for guest in $REAL_GUESTS; do
	fresh=${MV_REAL_FRESH:-}
	for c in $(guest_captures "$guest"); do
		[ -e "$root/$c/done" ] || fresh=1
	done
	if [ -n "$fresh" ]; then
		"$REAL_DIR/boot.sh" "$guest"
	else
		log "reusing the $guest captures in $root"
	fi
done

status=0
for guest in $REAL_GUESTS; do
	for c in $(guest_captures "$guest"); do
		log "capture $c: $(cat "$root/$c/about.txt")"
		"$REAL_DIR/compare.sh" ${limit:+--time-limit "$limit"} "$MV" \
			"$root/$c" "$(bench_name "$c")" || status=1
	done
done
log "total $(elapsed "$t_start") s"
if [ "$status" -ne 0 ]; then
	log "FAILED: memvisor walk disagrees with QEMU (details above; files in $root/*/compare/)"
fi
exit $status
