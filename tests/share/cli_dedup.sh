#!/bin/bash
# memvisor dedup on small images whose answer is known page by page: every
# reported count, with and without cross-VM sharing, zero pages only, the
# sharer limit, the rate-limited background scan, and the errors (bad
# images exit 1, usage errors 2, an unwritable stdout 1).
set -u
tool=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

fill() { head -c $(($2 * 4096)) /dev/zero | tr '\0' "$1"; }   # BYTE PAGES
zeros() { head -c $(($1 * 4096)) /dev/zero; }
uniq_pages() { for ((i = 0; i < $2; i++)); do printf '%-4096s' "$1 $i"; done; }

# a: 16 x 'A', 16 zero pages, 16 unique, 16 x 'B'       (64 pages)
# b: 8 x 'A', 8 x 'C', 16 unique of its own               (32 pages)
# c: 'A', zeros, 'B', then 100 bytes of 'x': the last page is partial,
#    padded with zeros as loaded                          (4 pages)
# d: 300 x 'Z': beyond the sharer limit of 256            (300 pages)
{ fill A 16; zeros 16; uniq_pages a 16; fill B 16; } > "$tmp/a"
{ fill A 8; fill C 8; uniq_pages b 16; } > "$tmp/b"
{ fill A 1; zeros 1; fill B 1; head -c 100 /dev/zero | tr '\0' x; } > "$tmp/c"
fill Z 300 > "$tmp/d"

# field JSON NAME: the value of one field of the JSON line.
field() { grep -o "\"$2\": [0-9a-z.]*" <<< "$1" | head -n1 | cut -d' ' -f2; }

# expect NAME "JSON" field=value...
expect() {
	local name=$1 json=$2 kv k v got
	shift 2
	for kv in "$@"; do
		k=${kv%%=*} v=${kv#*=}
		got=$(field "$json" "$k")
		[ "$got" = "$v" ] || fail "$name: $k is '$got', want $v ($json)"
	done
}

dedup() { timeout 120 "$tool" dedup "$@" 2> "$tmp/err"; }

# Within each VM only (the default): a keeps A, B and 16 unique pages
# (18), b keeps A, C and 16 (18), c keeps A, B and the partial page (3).
out=$(dedup --json "$tmp/a" "$tmp/b" "$tmp/c") || fail "default: exit $?"
[ "$(wc -l <<< "$out")" -eq 1 ] || fail "default: not one line: $out"
expect "default" "$out" vms=3 pages=100 zero_pages=17 host_pages=39 \
	saved_pages=61 distinct_pages=36 distinct_within_vms=39 \
	shared_guest_pages=48 private_pages=35 shared_host_pages=4 \
	extra_copies=0 cross_vm=false zero_only=false
for k in cpu_s wall_s; do
	[[ $(field "$out" $k) =~ ^[0-9]+\.[0-9]+$ ]] || fail "default: $k: $out"
done

# Across VMs: one A, one B, one C for all, 32 unique pages, one x page.
out=$(dedup --json --cross-vm on "$tmp/a" "$tmp/b" "$tmp/c") ||
	fail "cross-vm on: exit $?"
expect "cross-vm on" "$out" host_pages=36 saved_pages=64 distinct_pages=36 \
	shared_guest_pages=50 shared_host_pages=3 private_pages=33 \
	cross_vm=true
out2=$(dedup --json --cross-vm off "$tmp/a" "$tmp/b" "$tmp/c") ||
	fail "cross-vm off: exit $?"
expect "cross-vm off" "$out2" host_pages=39 cross_vm=false

# Zero pages only: nothing is shared, the zero pages cost nothing.
out=$(dedup --json --zero-only --cross-vm on "$tmp/a" "$tmp/b" "$tmp/c") ||
	fail "zero-only: exit $?"
expect "zero-only" "$out" host_pages=83 shared_guest_pages=0 zero_pages=17 \
	saved_pages=17 zero_only=true

# 300 equal pages: two shared copies, 256 sharers and 44.
out=$(dedup --json "$tmp/d") || fail "limit: exit $?"
expect "limit" "$out" pages=300 host_pages=2 shared_host_pages=2 \
	shared_guest_pages=300 extra_copies=1 distinct_pages=1

# The background thread at a rate ends where the unlimited scan does.
out=$(dedup --json --rate 20000 --cross-vm on "$tmp/a" "$tmp/b" "$tmp/c" \
	"$tmp/d") || fail "rate: exit $?"
expect "rate" "$out" pages=400 host_pages=38 extra_copies=1 rate=20000

# The table names the same figures.
out=$(dedup "$tmp/a" "$tmp/b") || fail "table: exit $?"
grep -q '^  host pages  *36 ' <<< "$out" || fail "table: host pages: $out"
grep -q '^  distinct contents  *35 ' <<< "$out" ||
	fail "table: distinct: $out"

# Bad images: exit 1 with the file named; usage errors: exit 2.
run_exit() {
	local name=$1 code=$2 msg=$3 rc
	shift 3
	timeout 120 "$tool" dedup "$@" > /dev/null 2> "$tmp/err"; rc=$?
	[ $rc -eq "$code" ] || fail "$name: exit $rc, want $code: $(cat "$tmp/err")"
	[ -z "$msg" ] || grep -q -- "$msg" "$tmp/err" ||
		fail "$name: message: $(cat "$tmp/err")"
}
mkfifo "$tmp/fifo"
: > "$tmp/empty"
run_exit "missing image" 1 "$tmp/nope: No such file" "$tmp/a" "$tmp/nope"
run_exit "fifo" 1 "not a regular file" "$tmp/fifo"
run_exit "directory" 1 "not a regular file" "$tmp"
run_exit "device" 1 "not a regular file" /dev/zero
run_exit "empty" 1 "the image is empty" "$tmp/empty"
run_exit "no image" 2 "no IMAGE given"
run_exit "rate 0" 2 "above 0" --rate 0 "$tmp/a"
run_exit "rate word" 2 "above 0" --rate fast "$tmp/a"
run_exit "rate -1" 2 "above 0" --rate -1 "$tmp/a"
run_exit "rate missing" 2 "missing value" "$tmp/a" --rate
run_exit "cross-vm" 2 "not on or off" --cross-vm yes "$tmp/a"
run_exit "unknown" 2 "bad option" --share-everything "$tmp/a"
run_exit "help" 0 "" --help
timeout 120 "$tool" dedup --json "$tmp/a" > /dev/full 2> "$tmp/err"
[ $? -eq 1 ] && grep -q 'writing output' "$tmp/err" ||
	fail "/dev/full: $(cat "$tmp/err")"

[ $fails -eq 0 ] || { echo "$fails failure(s)" >&2; exit 1; }
echo "cli_dedup: all checks passed"
