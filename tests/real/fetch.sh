#!/usr/bin/env bash
# Gets the test guest: Debian's cloud kernel (apt-get download + dpkg-deb -x,
# nothing installed on the host) and a busybox initramfs, into cache/.
# Re-runs reuse both unless the package version or the initramfs inputs
# changed. Writes cache/guest.env (KERNEL, INITRD, GUEST_ID).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

resolve_kernel_pkg()
{
	apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

kernel_pkg()
{
	local pkg
	pkg=$(resolve_kernel_pkg)
	if [ -z "$pkg" ] && [ "$(id -u)" -eq 0 ]; then
		log "linux-image-cloud-amd64 unknown to apt: running apt-get update"
		timeout 300 apt-get update -qq >&2 || die "apt-get update failed"
		pkg=$(resolve_kernel_pkg)
	fi
	[ -n "$pkg" ] || die "apt-cache cannot resolve linux-image-cloud-amd64;" \
		"run 'apt-get update' as root (needs a Debian amd64 apt source)"
	echo "$pkg"
}

fetch_kernel()
{
	local pkg ver dir tmp deb
	pkg=$(kernel_pkg)
	ver=$(apt-cache show --no-all-versions "$pkg" | awk '/^Version:/ { print $2; exit }')
	[ -n "$ver" ] || die "apt-cache has no version of $pkg"
	dir=$CACHE/kernel/${pkg}_$ver
	if [ -s "$dir/vmlinuz" ]; then
		echo "$dir"
		return
	fi
	log "downloading $pkg $ver"
	tmp=$(mktemp -d "$CACHE/dl.XXXXXX")
	# apt-get download writes into the current directory; as root it
	# downloads as its own _apt user, which must then own that directory.
	[ "$(id -u)" -ne 0 ] || ! id _apt >/dev/null 2>&1 || chown _apt "$tmp"
	if ! (cd "$tmp" && timeout 600 apt-get download -q "$pkg=$ver" >&2); then
		rm -rf "$tmp"
		die "apt-get download $pkg=$ver failed (network? apt sources?)"
	fi
	deb=$(ls "$tmp"/*.deb)
	timeout 300 dpkg-deb -x "$deb" "$tmp/x" || die "dpkg-deb -x $deb failed"
	mkdir -p "$dir"
	cp "$tmp"/x/boot/vmlinuz-* "$dir/vmlinuz" || die "$deb has no boot/vmlinuz-*"
	cp "$tmp"/x/boot/config-* "$dir/config"
	rm -rf "$tmp"
	grep -q '^CONFIG_X86_5LEVEL=y' "$dir/config" ||
		log "warning: $pkg lacks CONFIG_X86_5LEVEL: the long5 guest will fail"
	echo "$dir"
}

busybox_path()
{
	local b
	b=$(dpkg -L busybox-static 2>/dev/null | grep -m1 '/bin/busybox$' || true)
	if [ -z "$b" ] || [ ! -x "$b" ]; then
		die "busybox-static is not installed: run scripts/install-deps.sh real"
	fi
	echo "$b"
}

# The initramfs is keyed by the hash of its inputs.
build_initrd()
{
	local bb key out root
	bb=$(busybox_path)
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
	local kdir initrd
	kdir=$(fetch_kernel)
	initrd=$(build_initrd)
	{
		echo "KERNEL=$kdir/vmlinuz"
		echo "INITRD=$initrd"
		echo "GUEST_ID=$(basename "$kdir")-$(basename "$initrd" .cpio.gz)"
	} > "$CACHE/guest.env"
	log "guest: $(basename "$kdir"), $(basename "$initrd")"
}

main "$@"
