#!/bin/bash
# `make install` into a temporary prefix, then as a user would: build every
# installed example with pkg-config alone, and with find_package from the
# installed examples/CMakeLists.txt (shared and static), run them all and
# check their output; `make uninstall` leaves nothing behind. A second
# install with DESTDIR must land under DESTDIR/PREFIX only.
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
manifest=$build/install_manifest.txt
# A user's own install manifest survives this test.
[ -f "$manifest" ] && cp "$manifest" "$tmp/manifest.user"
cleanup() {
	if [ -f "$tmp/manifest.user" ]; then
		cp "$tmp/manifest.user" "$manifest"
	else
		rm -f "$manifest"
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
unset MAKEFLAGS MFLAGS MAKELEVEL DESTDIR
prefix=$tmp/prefix

mk() { make -s -C "$src" BUILD="$build" "$@" >"$tmp/make.log" 2>&1 ||
	{ fail "make $*: $(tail -20 "$tmp/make.log")"; return 1; }; }

# ---- the installed tree -------------------------------------------------
mk install PREFIX="$prefix" || { finish; }
libdir=$(dirname "$(find "$prefix" -name libmemvisor.so -print -quit)")
[ -d "$libdir" ] || fail "no libmemvisor.so under $prefix"
for f in "$libdir/libmemvisor.so" "$libdir/libmemvisor.so.$soversion" \
	"$libdir/libmemvisor.so.$version" "$libdir/libmemvisor.a" \
	"$libdir/pkgconfig/memvisor.pc" \
	"$libdir/cmake/memvisor/memvisor-config.cmake" \
	"$libdir/cmake/memvisor/memvisor-config-version.cmake" \
	"$prefix/bin/memvisor" "$prefix/share/doc/memvisor/examples/Makefile"; do
	[ -e "$f" ] || fail "not installed: ${f#$prefix/}"
done
for h in "$src"/include/memvisor/*.h; do
	cmp -s "$h" "$prefix/include/memvisor/$(basename "$h")" ||
		fail "header not installed: $(basename "$h")"
done
for p in "$src"/man/*.[1-9]; do
	n=$(basename "$p")
	[ -f "$prefix/share/man/man${n##*.}/$n" ] || fail "page not installed: $n"
done
"$prefix/bin/memvisor" version | grep -q "^memvisor $version " ||
	fail "installed memvisor version"
MANPATH=$prefix/share/man man -w mv_host >/dev/null 2>&1 ||
	fail "man cannot find mv_host(3) under the prefix"
# Every public function a page describes has its own name in man(1), and
# every alias page leads to a page that is there.
for f in $(public_functions); do
	cat "$src"/man/*.3 | grep -qw "$f" || continue
	MANPATH=$prefix/share/man man -w "$f" >/dev/null 2>&1 ||
		fail "man $f: no page under the prefix"
done
for a in "$prefix"/share/man/man3/*.3; do
	t=$(sed -n 's/^\.so //p' "$a")
	[ -z "$t" ] || [ -f "$prefix/share/man/$t" ] || fail "$(basename "$a") leads to missing $t"
done
MANPATH=$prefix/share/man MANWIDTH=80 man mv_vm_phys_write 2>/dev/null |
	grep -q 'MV_VM' || fail "man mv_vm_phys_write does not show mv_vm(3)"

# ---- the examples ---------------------------------------------------------
export PKG_CONFIG_PATH=$libdir/pkgconfig
[ "$(pkg-config --modversion memvisor)" = "$version" ] ||
	fail "pkg-config --modversion: $(pkg-config --modversion memvisor 2>&1)"
cp -r "$prefix/share/doc/memvisor/examples" "$tmp/ex"
progs=()
for c in "$tmp"/ex/*.c; do progs+=("$(basename "$c" .c)"); done
[ ${#progs[@]} -ge 4 ] || fail "only ${#progs[@]} examples installed"

# An image for walk_image: 4-level tables at 0x1000 mapping a 4 KiB page
# (user, writable), a 2 MiB page (supervisor, no-execute) and a 1 GiB
# kernel page (read-only).
put() {
	local v=$(($2)) b="" i
	for ((i = 0; i < 8; i++)); do b+=$(printf '\\x%02x' $(((v >> 8 * i) & 255))); done
	printf "$b" | dd of="$tmp/ram.img" bs=1 seek=$(($1)) conv=notrunc status=none
}
truncate -s 1M "$tmp/ram.img"
put 0x1000 0x2007; put 0x2000 0x3007; put 0x3000 0x4007   # PML4, PDPT, PD
put 0x4008 0x5007                                         # PT[1]: 4K
put 0x3008 $((0x200083 | 1 << 63))                        # PD[1]: 2M NX
put $((0x1000 + 511 * 8)) 0x6003                          # PML4[511]
put $((0x6000 + 510 * 8)) 0x40000081                      # PDPT[510]: 1G

# expect_output NAME FILE: the program's output (in $tmp/out) equals FILE.
expect_output() {
	diff -u "$2" "$tmp/out" >"$tmp/diff" || fail "$1: output differs: $(cat "$tmp/diff")"
}

run_examples() {
	local how=$1 dir=$2 sfx=${3:-} p
	for p in "${progs[@]}"; do
		[ -x "$dir/$p$sfx" ] || { fail "$how: $p$sfx was not built"; continue; }
	done
	LD_LIBRARY_PATH=$libdir "$dir/two_vms$sfx" >"$tmp/out" 2>&1 ||
		fail "$how: two_vms exit $?: $(cat "$tmp/out")"
	cat >"$tmp/want" <<-WANT
	memvisor $version: 2 VMs of 768 pages on a host of 1280
	vm a     wrote 768 pages: success
	vm b     wrote 512 pages, then: host page budget exhausted
	vm a     ballooned 384 pages: success
	vm b     wrote the other 256 pages: success
	WANT
	grep -v 'in use' "$tmp/out" >"$tmp/out2"; mv "$tmp/out2" "$tmp/out"
	expect_output "$how two_vms" "$tmp/want"

	LD_LIBRARY_PATH=$libdir "$dir/mmio_device$sfx" >"$tmp/out" 2>&1 ||
		fail "$how: mmio_device exit $?: $(cat "$tmp/out")"
	cat >"$tmp/want" <<-'WANT'
	device id 0x4d56, scratch 0xc0ffee
	ram 0x1000: host pointer
	device page: slow path (callbacks)
	ram reads "hello from RAM"; the device saw 1 write(s)
	write at 0x80000000: address or id out of range
	WANT
	expect_output "$how mmio_device" "$tmp/want"

	LD_LIBRARY_PATH=$libdir "$dir/walk_image$sfx" "$tmp/ram.img" 0x1000 \
		>"$tmp/out" 2>&1 || fail "$how: walk_image exit $?: $(cat "$tmp/out")"
	cat >"$tmp/want" <<-'WANT'
	0000000000001000 -> 000000005000       4K wux
	0000000000200000 -> 000000200000    2048K w--
	ffffffff80000000 -> 000040000000 1048576K --x
	WANT
	expect_output "$how walk_image --dump" "$tmp/want"
	LD_LIBRARY_PATH=$libdir "$dir/walk_image$sfx" "$tmp/ram.img" 0x1000 \
		1234 3000 ffffffff80001000 800000000000 >"$tmp/out" 2>&1 ||
		fail "$how: walk_image VA exit $?: $(cat "$tmp/out")"
	cat >"$tmp/want" <<-'WANT'
	0000000000001234 -> 000000005234       4K wux
	0000000000003000 page fault, error code 0x0 at level 1
	ffffffff80001000 -> 000040001000 1048576K --x
	0000800000000000 not canonical (#GP)
	WANT
	expect_output "$how walk_image VA" "$tmp/want"

	LD_LIBRARY_PATH=$libdir "$dir/vcpu_paging$sfx" >"$tmp/out" 2>&1 ||
		fail "$how: vcpu_paging exit $?: $(cat "$tmp/out")"
	cat >"$tmp/want" <<-'WANT'
	user write at 0x10000        ok
	guest-physical 0x10000 reads "hello, guest"
	kernel read at 0x11000       ok
	kernel write at 0x11000      #PF error code 0x3 at 0x11000
	user read at 0x11000         #PF error code 0x5 at 0x11000
	user read at 0x200000        #PF error code 0x4 at 0x200000
	WANT
	expect_output "$how vcpu_paging" "$tmp/want"
}

# With pkg-config alone, the way each example's comment says.
mkdir "$tmp/pc"
for p in "${progs[@]}"; do
	cc -std=c11 -Wall -Wextra -Werror -o "$tmp/pc/$p" "$tmp/ex/$p.c" \
		$(pkg-config --cflags --libs memvisor) 2>"$tmp/cc.log" ||
		fail "pkg-config build of $p: $(cat "$tmp/cc.log")"
done
# Linked against the installed shared library, not a copy in the tree.
ldd "$tmp/pc/two_vms" 2>/dev/null | grep -q "libmemvisor.so.$soversion => $libdir/" ||
	LD_LIBRARY_PATH=$libdir ldd "$tmp/pc/two_vms" |
	grep -q "libmemvisor.so.$soversion => $libdir/" ||
	fail "two_vms does not use $libdir/libmemvisor.so.$soversion"
run_examples pkg-config "$tmp/pc"

# Fully static, from pkg-config --static alone (Requires.private and
# Libs.private must name everything libmemvisor.a needs).
mkdir "$tmp/st"
for p in "${progs[@]}"; do
	cc -std=c11 -static -o "$tmp/st/$p" "$tmp/ex/$p.c" \
		$(pkg-config --static --cflags --libs memvisor) 2>"$tmp/cc.log" ||
		fail "pkg-config --static build of $p: $(cat "$tmp/cc.log")"
done
# A program that takes the address of every public function pulls every
# object of libmemvisor.a in, so each dependency must be on the line.
{
	for h in "$prefix"/include/memvisor/*.h; do
		echo "#include <memvisor/$(basename "$h")>"
	done
	echo "#include <stdio.h>"
	echo "static void (*const every[])(void) = {"
	public_functions | sed 's/.*/\t(void (*)(void))\&&,/'
	echo "};"
	echo 'int main(void) { printf("%zu\n", sizeof(every) / sizeof(every[0])); return 0; }'
} >"$tmp/every.c"
nfun=$(public_functions | wc -l)
for how in "" --static; do
	cc -std=gnu11 ${how:+-static} -o "$tmp/every" "$tmp/every.c" \
		$(pkg-config $how --cflags --libs memvisor) 2>"$tmp/cc.log" ||
		{ fail "every public function, pkg-config $how: $(cat "$tmp/cc.log")"; continue; }
	[ "$(LD_LIBRARY_PATH=$libdir "$tmp/every")" = "$nfun" ] ||
		fail "every public function, pkg-config $how: wrong count"
done
readelf -d "$tmp/st/two_vms" 2>/dev/null | grep -q NEEDED &&
	fail "the --static two_vms is linked dynamically"
run_examples pkg-config-static "$tmp/st"

# The installed Makefile (pkg-config) builds them too.
make -s -C "$tmp/ex" >"$tmp/make.log" 2>&1 || fail "examples/Makefile: $(cat "$tmp/make.log")"
run_examples Makefile "$tmp/ex"

# find_package(memvisor) from the installed CMakeLists.txt: shared and static.
unset PKG_CONFIG_PATH
if cmake -S "$tmp/ex" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$prefix" \
	>"$tmp/cmake.log" 2>&1 && cmake --build "$tmp/cm" >>"$tmp/cmake.log" 2>&1; then
	run_examples find_package "$tmp/cm"
	run_examples find_package-static "$tmp/cm" _static
	readelf -d "$tmp/cm/two_vms_static" | grep -q 'libmemvisor' &&
		fail "two_vms_static links the shared library"
else
	fail "find_package build: $(tail -20 "$tmp/cmake.log")"
fi

# ---- uninstall -----------------------------------------------------------
mk uninstall
left=$(find "$prefix" -type f -o -type l)
[ -z "$left" ] || fail "left after make uninstall: $left"
find "$prefix" -type d -name memvisor | grep -q . && fail "memvisor directories left"

# ---- DESTDIR ---------------------------------------------------------------
mk install PREFIX=/opt/mv DESTDIR="$tmp/stage"
[ -e "$tmp/stage/opt/mv/bin/memvisor" ] || fail "DESTDIR install: no bin/memvisor"
[ -z "$(find "$tmp/stage" -mindepth 1 -maxdepth 1 ! -name opt)" ] ||
	fail "DESTDIR install wrote outside DESTDIR/opt"
mk uninstall DESTDIR="$tmp/stage"
[ -z "$(find "$tmp/stage" -type f)" ] || fail "DESTDIR uninstall left files"
finish
