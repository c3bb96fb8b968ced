#!/usr/bin/env bash
# Gets the test guests, nothing installed on the host: Debian kernels
# (apt-get download + dpkg-deb -x) and busybox initramfs images, into cache/.
#   amd64: the cloud kernel (the package linux-image-cloud-amd64 depends on)
#   i386:  the 686 (32-bit paging) and 686-pae (PAE paging) kernels and an
#          i386 busybox, from a private i386 apt index in cache/apt-i386/
#          (the host's apt configuration is left alone)
# Re-runs reuse everything unless a package version or an initramfs input
# changed. Writes cache/guest.env (KERNEL_*, INITRD_*, GUEST_ID).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

I386=$CACHE/apt-i386

# apt_for ARCH: the apt options that select ARCH's package index.
apt_for()
{
	[ "$1" = i386 ] || return 0
	printf '%s\n' -o "Dir::State::Lists=$I386/lists" -o "Dir::Cache=$I386/cache" \
		-o APT::Architecture=i386 -o APT::Architectures::=i386
}

# As root, apt fetches as its own _apt user, which must own the target.
apt_owns() { [ "$(id -u)" -ne 0 ] || ! id _apt >/dev/null 2>&1 || chown _apt "$@"; }

resolve_dep()
{
	local arch=$1 meta=$2 opts
	mapfile -t opts < <(apt_for "$arch")
	apt-cache "${opts[@]}" depends "$meta" 2>/dev/null |
		awk -v re="^${meta%%-*}-" '$1 == "Depends:" && $2 ~ re { print $2; exit }'
}

# The i386 index is refreshed when missing or a day old. A mirror caught
# mid-sync can fail one index file; what matters is that the packages
# resolve afterwards.
update_i386()
{
	local opts
	mapfile -t opts < <(apt_for i386)
	if [ -n "$(find "$I386/lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null)" ]; then
		return
	fi
	mkdir -p "$I386/lists/partial" "$I386/cache/archives/partial"
	apt_owns "$I386/lists/partial" "$I386/cache/archives/partial"
	log "updating the private i386 package index"
	timeout 300 apt-get "${opts[@]}" update -qq >&2 ||
		log "warning: apt-get update (i386) reported errors; going on"
}

# resolve ARCH META: the real package name, updating indexes once if needed.
resolve()
{
	local arch=$1 meta=$2 pkg
	pkg=$(resolve_dep "$arch" "$meta")
	if [ -z "$pkg" ] && [ "$arch" = amd64 ] && [ "$(id -u)" -eq 0 ]; then
		log "$meta unknown to apt: running apt-get update"
		timeout 300 apt-get update -qq >&2 || die "apt-get update failed"
		pkg=$(resolve_dep "$arch" "$meta")
	fi
	[ -n "$pkg" ] || die "apt-cache cannot resolve $meta ($arch);" \
		"run 'apt-get update' as root (needs a Debian apt source)"
	echo "$pkg"
}

# fetch_deb ARCH PKG DEST FILE...: extracts the package and keeps the files
# matching the FILE globs (relative to the package root) in DEST, once.
fetch_deb()
{
	local arch=$1 pkg=$2 dest=$3 ver tmp deb f opts patterns
	shift 3
	mapfile -t opts < <(apt_for "$arch")
	ver=$(apt-cache "${opts[@]}" show --no-all-versions "$pkg" |
		awk '/^Version:/ { print $2; exit }')
	[ -n "$ver" ] || die "apt-cache has no version of $pkg ($arch)"
	dest=$dest/${pkg}_${ver}_$arch
	if [ -e "$dest/.complete" ]; then
		echo "$dest"
		return
	fi
	log "downloading $pkg $ver ($arch)"
	tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
	apt_owns "$tmp"
	if ! (cd "$tmp" && timeout 600 apt-get "${opts[@]}" download -q "$pkg:$arch=$ver" >&2); then
		rm -rf "$tmp"
		die "apt-get download $pkg:$arch=$ver failed (network? apt sources?)"
	fi
	deb=$(ls "$tmp"/*.deb)
	mkdir -p "$tmp/x"
	# Only the wanted members (a kernel package is mostly modules).
	patterns=()
	for f in "$@"; do patterns+=("./$f"); done
	timeout 300 dpkg-deb --fsys-tarfile "$deb" |
		tar -x -C "$tmp/x" --wildcards "${patterns[@]}" ||
		die "cannot extract $* from $deb"
	rm -rf "$dest"
	mkdir -p "$dest"
	for f in "$@"; do
		# shellcheck disable=SC2086 # FILE is a glob
		cp $tmp/x/$f "$dest/" || die "$deb has no $f"
	done
	rm -rf "$tmp"
	touch "$dest/.complete"
	echo "$dest"
}

fetch_kernel()
{
	local arch=$1 meta=$2 dir
	dir=$(fetch_deb "$arch" "$(resolve "$arch" "$meta")" "$CACHE/kernel" \
		'boot/vmlinuz-*' 'boot/config-*')
	echo "$dir"
}

host_busybox()
{
	local b
	b=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
	if [ -z "$b" ] || [ ! -x "$b" ]; then
		die "busybox-static is not installed: run scripts/install-deps.sh"
	fi
	echo "$b"
}

# build_initrd BUSYBOX: the initramfs, keyed by the hash of its inputs.
build_initrd()
{
	local bb=$1 key out root
	key=$(cat "$bb" "$REAL_DIR/init" | sha256sum | cut -c1-16)
	out=$CACHE/initrd-$key.cpio.gz
	if [ ! -s "$out" ]; then
		root=$(mktemp -d "$CACHE/initrd.XXXXXX")
		mkdir -p "$root"/{bin,dev,proc,sys}
		cp "$bb" "$root/bin/busybox"
		cp "$REAL_DIR/init" "$root/init"
		chmod 755 "$root/init" "$root/bin/busybox"
		(cd "$root" && find . | LC_ALL=C sort |
			cpio --quiet -o -H newc --reproducible -R 0:0) |
			gzip -n -1 > "$out.tmp" || die "building the initramfs failed"
		mv "$out.tmp" "$out"
		rm -rf "$root"
	fi
	echo "$out"
}

main()
{
	need_cmd apt-get apt-cache dpkg-deb cpio gzip sha256sum
	mkdir -p "$CACHE"
	local k64 k686 kpae bb32 i64 i32
	k64=$(fetch_kernel amd64 linux-image-cloud-amd64)
	grep -q '^CONFIG_X86_5LEVEL=y' "$k64"/config-* ||
		die "$(basename "$k64") lacks CONFIG_X86_5LEVEL: no 5-level guest"
	update_i386
	k686=$(fetch_kernel i386 linux-image-686)
	kpae=$(fetch_kernel i386 linux-image-686-pae)
	bb32=$(fetch_deb i386 busybox-static "$CACHE/busybox" bin/busybox)
	i64=$(build_initrd "$(host_busybox)")
	i32=$(build_initrd "$bb32/busybox")
	{
		echo "KERNEL_64=$(ls "$k64"/vmlinuz-*)"
		echo "KERNEL_686=$(ls "$k686"/vmlinuz-*)"
		echo "KERNEL_PAE=$(ls "$kpae"/vmlinuz-*)"
		echo "INITRD_64=$i64"
		echo "INITRD_32=$i32"
		echo "GUEST_ID=$( (basename "$k64"; basename "$k686"; basename "$kpae";
			basename "$i64"; basename "$i32") | sha256sum | cut -c1-16)"
	} > "$CACHE/guest.env"
	log "guests: $(basename "$k64"), $(basename "$k686"), $(basename "$kpae")"
}

main "$@"
