#!/bin/bash
# memvisor walk on small guest RAM images built here: exact output lines for
# every mode and page size, --dump, faults and error codes, and every bad
# input (exit 2 for usage, 1 for runtime errors; never a crash).
#
# Every case runs twice: with the walker, then (MV_WALK_SHADOW=1, the script
# running itself again) with --shadow, where a vCPU's shadow MMU must give
# the same lines and exit codes.
set -u
tool=$1
if [ -n "${MV_WALK_SHADOW:-}" ]; then
	SHADOW=(--shadow)
else
	SHADOW=()
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# put IMAGE GPA VALUE [BYTES]: store VALUE little-endian (8 bytes default).
put() {
	local img=$1 gpa=$(($2)) val=$(($3)) n=${4:-8} bytes="" i
	for ((i = 0; i < n; i++)); do
		bytes+=$(printf '\\x%02x' $(((val >> (8 * i)) & 0xff)))
	done
	printf "$bytes" | dd of="$img" bs=1 seek=$gpa conv=notrunc status=none
}

new_image() { truncate -s "$2" "$1"; }

# expect NAME "OUTPUT" ARGS...: stdout must be exactly OUTPUT, exit 0.
expect() {
	local name=$1 want=$2 got rc
	shift 2
	got=$("$tool" walk "${SHADOW[@]}" "$@" 2>"$tmp/err"); rc=$?
	[ $rc -eq 0 ] || fail "$name: exit $rc: $(cat "$tmp/err")"
	[ "$got" == "$want" ] || fail "$name: got
$got
want
$want"
}

# expect_exit NAME CODE ARGS...: exit CODE with a message on stderr.
expect_exit() {
	local name=$1 code=$2 rc
	shift 2
	"$tool" walk "${SHADOW[@]}" "$@" >/dev/null 2>"$tmp/err"; rc=$?
	[ $rc -eq "$code" ] || fail "$name: exit $rc, want $code"
	[ -s "$tmp/err" ] || fail "$name: no error message"
	grep -q 'memvisor walk' "$tmp/err" || fail "$name: unclear message"
}

P=0x1; W=0x2; U=0x4; A=0x20; D=0x40; PS=0x80; G=0x100; NX=$((1 << 63))

# --- 4-level long mode -------------------------------------------------
L4=$tmp/long4.img
new_image "$L4" 1M
put "$L4" $((0x1000 + 0 * 8)) $((0x2000 | P | W | U | A))      # PML4[0]
put "$L4" $((0x1000 + 511 * 8)) $((0x3000 | P | W | A))        # PML4[511]
put "$L4" $((0x2000 + 1 * 8)) $((0x40000000 | P | W | U | PS | A | D)) # 1G
put "$L4" $((0x2000 + 2 * 8)) $((0x4000 | P | U))              # RO table
put "$L4" $((0x4000 + 3 * 8)) $((0x600000 | P | W | U | PS | NX | A)) # 2M
put "$L4" $((0x4000 + 4 * 8)) $((0x5000 | P | W | U))
put "$L4" $((0x5000 + 5 * 8)) $((0x77000 | P | W | U | 0x18))  # PCD PWT
put "$L4" $((0x3000 + 510 * 8)) $((0x6000 | P | W))            # kernel
put "$L4" $((0x6000 + 0 * 8)) $((0x7000 | P | W))
put "$L4" $((0x7000 + 0 * 8)) $((0x1234000 | P | W | G | A | D))
sum_before=$(md5sum < "$L4")

LONG4=(--image "$L4" --cr3 0x1000 --cr4 0x20 --efer 0xd00)
expect "long4 walks" "0x0000000040123456 -> 0x0000000040123456 1G --PDA--UW
0x0000000080654321 -> 0x0000000000654321 2M X-P-A--U-
0x0000000080805abc -> 0x0000000000077abc 4K -----CTU-
0xffffffff80000123 -> 0x0000000001234123 4K -G-DA---W
0x0000000000001000 fault 0x0
0x0000800000000000 fault gp" \
	"${LONG4[@]}" 0x40123456 0x80654321 0x80805abc \
	0xffffffff80000123 0x1000 0x800000000000

expect "long4 dump" "0x0000000040000000: 0x0000000040000000 1G --PDA--UW
0x0000000080600000: 0x0000000000600000 2M X-P-A--U-
0x0000000080805000: 0x0000000000077000 4K -----CTU-
0xffffffff80000000: 0x0000000001234000 4K -G-DA---W" \
	"${LONG4[@]}" --dump

# Error codes: W/R, U/S, I/D, P.
expect "user on a kernel page" "0xffffffff80000123 fault 0x5" \
	"${LONG4[@]}" --user 0xffffffff80000123
expect "user write through a read-only table" "0x0000000080805000 fault 0x7" \
	"${LONG4[@]}" --user --access w 0x80805000
expect "supervisor write, WP=0" \
	"0x0000000080805000 -> 0x0000000000077000 4K -----CTU-" \
	"${LONG4[@]}" --access w 0x80805000
expect "supervisor write, WP=1" "0x0000000080805000 fault 0x3" \
	"${LONG4[@]}" --cr0 0x80010011 --access w 0x80805000
expect "fetch from NX" "0x0000000080654321 fault 0x11" \
	"${LONG4[@]}" --access x 0x80654321
expect "fetch from NX without NXE: reserved bit" \
	"0x0000000080654321 fault 0x9" \
	--image "$L4" --cr3 0x1000 --cr4 0x20 --efer 0x500 --access x 0x80654321
expect "SMAP: supervisor read of a user page" "0x0000000040000000 fault 0x1" \
	"${LONG4[@]}" --cr4 0x200020 0x40000000
expect "SMAP with EFLAGS.AC" \
	"0x0000000040000000 -> 0x0000000040000000 1G --PDA--UW" \
	"${LONG4[@]}" --cr4 0x200020 --rflags 0x40000 0x40000000
expect "PKRU AD for key 0" "0x0000000040000000 fault 0x25" \
	"${LONG4[@]}" --cr4 0x400020 --pkru 1 --user 0x40000000
expect "mode forced" "0x0000000040000000 -> 0x0000000040000000 1G --PDA--UW" \
	--image "$L4" --cr3 0x1000 --mode long4 0x40000000
[ "$(md5sum < "$L4")" == "$sum_before" ] || fail "the image was modified"

# --- 5-level -----------------------------------------------------------
L5=$tmp/long5.img
new_image "$L5" 64K
put "$L5" $((0x1000 + 511 * 8)) $((0x2000 | P | W))   # PML5[511]
put "$L5" $((0x2000 + 511 * 8)) $((0x3000 | P | W))   # PML4[511]
put "$L5" $((0x3000 + 511 * 8)) $((0x80000000 | P | W | PS)) # 1G
expect "long5" "0xfffffffffff00000 -> 0x00000000bff00000 1G --P-----W
0xff00000000000000 fault 0x0
0xfeffffffffffffff fault gp" \
	--image "$L5" --cr3 0x1000 --cr4 0x1020 --efer 0x500 \
	0xfffffffffff00000 0xff00000000000000 0xfeffffffffffffff
expect "long5 dump" "0xffffffffc0000000: 0x0000000080000000 1G --P-----W" \
	--image "$L5" --cr3 0x1000 --mode long5 --dump

# --- PAE ---------------------------------------------------------------
PAE=$tmp/pae.img
new_image "$PAE" 64K
put "$PAE" 0x1020 $((0x2000 | P))                     # PDPTE 0
put "$PAE" $((0x1020 + 3 * 8)) $((0x3000 | P))        # PDPTE 3
put "$PAE" $((0x2000 + 8)) $((0x4000 | P | W | U))
put "$PAE" $((0x4000 + 8)) $((0x9000 | P | W | U | A | D))
put "$PAE" $((0x3000 + 511 * 8)) $((0x7fe00000 | P | W | PS | G | NX))
PAEARGS=(--image "$PAE" --cr3 0x1020 --cr4 0x20 --efer 0x800)
expect "pae" "0x0000000000201234 -> 0x0000000000009234 4K ---DA--UW
0x00000000fff00000 -> 0x000000007ff00000 2M XGP-----W" \
	"${PAEARGS[@]}" 0x201234 0xfff00000
expect "pae dump" "0x0000000000201000: 0x0000000000009000 4K ---DA--UW
0x00000000ffe00000: 0x000000007fe00000 2M XGP-----W" "${PAEARGS[@]}" --dump
# The accessed bit in present PDPTEs (QEMU's TCG leaves it): reserved, so
# the CR3 load #GPs, and the message names the switch; --lenient-pdpte
# loads them as if it were clear, without touching the image.
pae_sum=$(md5sum < "$PAE")
put "$PAE" 0x1020 $((0x2000 | P | A))
put "$PAE" $((0x1020 + 3 * 8)) $((0x3000 | P | A))
expect_exit "pae PDPTE accessed bit" 1 "${PAEARGS[@]}" 0x201234
grep -q -- '--lenient-pdpte' "$tmp/err" || fail "pae PDPTE A: no hint"
expect "pae --lenient-pdpte" "0x0000000000201234 -> 0x0000000000009234 4K ---DA--UW
0x00000000fff00000 -> 0x000000007ff00000 2M XGP-----W" \
	"${PAEARGS[@]}" --lenient-pdpte 0x201234 0xfff00000
expect "pae --lenient-pdpte dump" "0x0000000000201000: 0x0000000000009000 4K ---DA--UW
0x00000000ffe00000: 0x000000007fe00000 2M XGP-----W" \
	"${PAEARGS[@]}" --lenient-pdpte --dump
expect "--lenient-pdpte outside PAE: no effect" \
	"0x0000000040123456 -> 0x0000000040123456 1G --PDA--UW" \
	"${LONG4[@]}" --lenient-pdpte 0x40123456
[ "$(md5sum < "$PAE")" != "$pae_sum" ] || fail "pae image not changed by put"
put "$PAE" $((0x1020 + 8)) $((0x5000 | P | W))        # PDPTE 1: reserved
expect_exit "pae PDPTE reserved bit" 1 "${PAEARGS[@]}" 0x1000
expect_exit "pae PDPTE reserved bit, lenient" 1 "${PAEARGS[@]}" \
	--lenient-pdpte 0x1000
grep -q -- 'reserved bits set' "$tmp/err" || fail "pae PDPTE R/W: message"
put "$PAE" $((0x1020 + 8)) $((0x5000 | P | D))        # only A is forgiven
expect_exit "pae PDPTE dirty bit, lenient" 1 "${PAEARGS[@]}" \
	--lenient-pdpte 0x1000

# --- 32-bit paging -----------------------------------------------------
LEG=$tmp/legacy.img
new_image "$LEG" 64K
put "$LEG" $((0x1000 + 4)) $((0x00400000 | (0x12 << 13) | P | W | PS)) 4
put "$LEG" $((0x1000 + 8)) $((0x2000 | P | W | U)) 4
put "$LEG" $((0x2000 + 4 * 4)) $((0x5000 | P | U | A)) 4
expect "legacy PSE-36" "0x0000000000412345 -> 0x0000001200412345 4M --P-----W
0x0000000000804567 -> 0x0000000000005567 4K ----A--U-" \
	--image "$LEG" --cr3 0x1000 --cr4 0x10 0x412345 0x804567
expect "legacy dump" "0x0000000000400000: 0x0000001200400000 4M --P-----W
0x0000000000804000: 0x0000000000005000 4K ----A--U-" \
	--image "$LEG" --cr3 0x1000 --cr4 0x10 --dump
expect "legacy without PSE: PS ignored, table outside the image" \
	"0x0000000000412345 fault 0x0" --image "$LEG" --cr3 0x1000 0x412345
expect "paging off" "0x0000000000001234 -> 0x0000000000001234 4K -------UW" \
	--image "$LEG" --cr3 0 --cr0 0x11 0x1234
expect "image at a base" "0x0000000000804567 fault 0x0" \
	--image "$LEG" --base 0x100000 --cr3 0x101000 --cr4 0x10 0x804567

# --- bad input ---------------------------------------------------------
expect_exit "no image" 2 --cr3 0x1000 0x1000
expect_exit "no cr3" 2 --image "$L4" 0x1000
expect_exit "bad hex" 2 --image "$L4" --cr3 0xzz 0x1000
expect_exit "bad VA" 2 "${LONG4[@]}" 12g4
expect_exit "negative VA" 2 "${LONG4[@]}" -- -1
expect_exit "VA with a space" 2 "${LONG4[@]}" " 12"
expect_exit "VA with a sign" 2 "${LONG4[@]}" +12
expect_exit "bad mode" 2 "${LONG4[@]}" --mode long6 0x1000
expect_exit "bad access" 2 "${LONG4[@]}" --access rw 0x1000
expect_exit "unknown option" 2 "${LONG4[@]}" --frobnicate 0x1000
expect_exit "missing value" 2 "${LONG4[@]}" --cr4
expect_exit "dump with VA" 2 "${LONG4[@]}" --dump 0x1000
expect_exit "nothing to do" 2 "${LONG4[@]}"
expect_exit "unaligned base" 2 --image "$L4" --base 0x10 --cr3 0x1000 0x0
expect_exit "maxphyaddr" 2 "${LONG4[@]}" --maxphyaddr 60 0x0
expect_exit "maxphyaddr with a space" 2 "${LONG4[@]}" --maxphyaddr " 40" 0x0
expect_exit "maxphyaddr with a sign" 2 "${LONG4[@]}" --maxphyaddr +40 0x0
expect_exit "maxphyaddr empty" 2 "${LONG4[@]}" --maxphyaddr "" 0x0
expect "maxphyaddr 40" "0x0000000040123456 -> 0x0000000040123456 1G --PDA--UW" \
	"${LONG4[@]}" --maxphyaddr 40 0x40123456
expect_exit "dump with --access" 2 "${LONG4[@]}" --access w --dump
expect_exit "dump with --user" 2 "${LONG4[@]}" --user --dump
expect_exit "VA beyond 32 bits" 2 --image "$LEG" --cr3 0x1000 0x100000000
expect_exit "impossible registers" 2 --image "$L4" --cr3 0x1000 --efer 0x500 0x0
expect_exit "missing file" 1 --image "$tmp/none" --cr3 0x1000 0x1000
: > "$tmp/empty"
expect_exit "empty file" 1 --image "$tmp/empty" --cr3 0x1000 0x1000
expect_exit "directory" 1 --image "$tmp" --cr3 0x1000 0x1000
grep -q 'not a regular file' "$tmp/err" || fail "directory: $(cat "$tmp/err")"
# A FIFO without a writer: refused, not waited on in open().
mkfifo "$tmp/fifo"
timeout 20 "$tool" walk --image "$tmp/fifo" --cr3 0x1000 0x1000 \
	> /dev/null 2> "$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "FIFO image: exit $rc, want 1"
grep -q 'not a regular file' "$tmp/err" || fail "FIFO: $(cat "$tmp/err")"
expect_exit "character device" 1 --image /dev/zero --cr3 0x1000 0x1000
grep -q 'not a regular file' "$tmp/err" || fail "/dev/zero: $(cat "$tmp/err")"
expect_exit "empty file message" 1 --image "$tmp/empty" --cr3 0x1000 0x1000
grep -q 'empty' "$tmp/err" || fail "empty file: $(cat "$tmp/err")"
expect_exit "cr3 outside" 1 --image "$L4" --cr3 0x100000 --mode long4 0x0
expect_exit "cr3 above maxphyaddr" 1 "${LONG4[@]}" --cr3 0x1000000000000 0x0
expect_exit "dump with paging off" 1 --image "$L4" --cr3 0 --cr0 0x11 --dump
expect_exit "image beyond 2^64" 1 --image "$L4" --base 0xfffffffffffff000 \
	--cr3 0x1000 0x0
"$tool" walk --help | grep -q 'usage: memvisor walk' || fail "--help"

# A huge sparse image: mapped, not read in full.
if truncate -s 1T "$tmp/huge.img" 2>/dev/null; then
	put "$tmp/huge.img" 0x1000 $((0x2000 | P | W))
	expect "1 TiB sparse image" "0x0000000000000000 fault 0x0
0x00007ffffffff000 fault 0x0" \
		--image "$tmp/huge.img" --cr3 0x1000 --mode long4 0 7ffffffff000
	expect "1 TiB sparse image, dump" "" \
		--image "$tmp/huge.img" --cr3 0x1000 --mode long4 --dump
	rm -f "$tmp/huge.img"
fi

timeout 60 "$tool" walk "${SHADOW[@]}" "${LONG4[@]}" 0x40123456 > /dev/full \
	2> "$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "walk to /dev/full: exit $rc, want 1"

# --shadow reads the image once, at the start, and lists a dump only after
# every leaf is faulted in: the recursive image (2^36 leaves) would run for
# hours before its first line, and a later truncation cannot matter. These
# cases are the walker's.
if [ ${#SHADOW[@]} -eq 0 ]; then
# The image shrinks during a dump: every PML4E points back at the PML4, so
# the dump lists 2^36 pages (hours); truncating the file under it must
# end it with a message and exit 1, not with SIGBUS.
REC=$tmp/recursive.img
new_image "$REC" 64K
for ((i = 0; i < 512; i++)); do
	printf '\x03\x10\x00\x00\x00\x00\x00\x00'
done | dd of="$REC" bs=1 seek=$((0x1000)) conv=notrunc status=none
# Output that cannot be written stops the dump at once (exit 1 with the
# cause), not after the 2^36 lines.
timeout 60 "$tool" walk --image "$REC" --cr3 0x1000 --mode long4 --dump \
	> /dev/full 2> "$tmp/err"; rc=$?
[ $rc -eq 1 ] || fail "dump to /dev/full: exit $rc, want 1"
grep -q 'writing output: .*No space left' "$tmp/err" ||
	fail "dump to /dev/full: $(cat "$tmp/err")"
timeout 60 "$tool" walk --help > /dev/full 2> /dev/null; rc=$?
[ $rc -eq 1 ] || fail "walk --help to /dev/full: exit $rc, want 1"
timeout 60 "$tool" walk --image "$REC" --cr3 0x1000 --mode long4 --dump \
	> "$tmp/rec.out" 2> "$tmp/err" &
pid=$!
for ((i = 0; i < 200; i++)); do   # until it prints: the image is mapped
	[ -s "$tmp/rec.out" ] && break
	sleep 0.05
done
truncate -s 0 "$REC"
wait $pid; rc=$?
[ $rc -eq 1 ] || fail "image truncated during --dump: exit $rc, want 1"
grep -q 'shrank' "$tmp/err" || fail "image truncated: $(cat "$tmp/err")"
rm -f "$tmp/rec.out"

fi

if [ $fails -ne 0 ]; then
	echo "$fails failure(s)" >&2
	exit 1
fi
if [ ${#SHADOW[@]} -eq 0 ]; then
	MV_WALK_SHADOW=1 bash "$0" "$tool" || exit 1
	echo "cli_walk: all passed (walker and --shadow)"
else
	echo "cli_walk --shadow: all passed"
fi
