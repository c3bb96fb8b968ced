#!/bin/bash
# The memvisor command as a whole: usage errors exit 2, output that cannot
# be written exits 1 with the cause, for every subcommand.
set -u
tool=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

# run_exit NAME CODE ARGS...: exit CODE (stdout discarded).
run_exit() {
	local name=$1 code=$2 rc
	shift 2
	timeout 300 "$tool" "$@" > /dev/null 2> "$tmp/err"; rc=$?
	[ $rc -eq "$code" ] || fail "$name: exit $rc, want $code: $(cat "$tmp/err")"
}

# full_exit NAME ARGS...: stdout is /dev/full: exit 1, the cause on stderr.
full_exit() {
	local name=$1 rc
	shift
	timeout 300 "$tool" "$@" > /dev/full 2> "$tmp/err"; rc=$?
	[ $rc -eq 1 ] || fail "$name > /dev/full: exit $rc, want 1"
	grep -q 'writing output' "$tmp/err" ||
		fail "$name > /dev/full: message: $(cat "$tmp/err")"
}

run_exit "version" 0 version
[ "$("$tool" version)" == "$("$tool" version 2>&1)" ] || fail "version: stderr"
"$tool" version | grep -q '^memvisor [0-9]' || fail "version: output"
run_exit "version extra" 2 version extra
grep -q 'unexpected argument' "$tmp/err" || fail "version extra: message"
run_exit "version --help" 0 version --help
run_exit "no command" 2
run_exit "unknown command" 2 frobnicate
run_exit "help" 0 --help

full_exit "version" version
full_exit "help" --help
full_exit "version --help" version --help
full_exit "run --help" run --help
full_exit "dedup --help" dedup --help
full_exit "run" run --vms 2 --pages 64

# One number parser: the same spellings refused everywhere, by run's
# decimal options and by walk's hex ones and --maxphyaddr.
img=$tmp/img
truncate -s 64K "$img"
WALK=(walk --image "$img" --cr3 0x1000 --mode long4)
bad_numbers=(" -18446744073709551552" " 4" "+4" "-4" "4 " "" "4x" "0x"
	     "18446744073709551616" "99999999999999999999999")
for n in "${bad_numbers[@]}" "0x40"; do
	run_exit "run --pages '$n'" 2 run --pages "$n"
	run_exit "run --vms '$n'" 2 run --vms "$n"
	run_exit "run --budget '$n'" 2 run --budget "$n"
	run_exit "walk --maxphyaddr '$n'" 2 "${WALK[@]}" --maxphyaddr "$n" 0
done
for n in "${bad_numbers[@]}" "0x0x1000" "0X0x1" "1000h" "0x-1"; do
	run_exit "walk --cr3 '$n'" 2 walk --image "$img" --cr3 "$n" 0
	run_exit "walk VA '$n'" 2 "${WALK[@]}" -- "$n"
	run_exit "walk --base '$n'" 2 walk --image "$img" --base "$n" \
		--cr3 0x1000 0
done
run_exit "run: 64 pages, decimal" 0 run --vms 2 --pages 64
run_exit "walk: hex with 0X" 0 "${WALK[@]}" 0XffFF
run_exit "walk: largest VA" 0 "${WALK[@]}" 0xffffffffffffffff

# --help states the default budget the run uses.
frac=$("$tool" run --help | sed -n 's|.*default: \([0-9]*\)/\([0-9]*\) of all guest RAM.*|\1 \2|p')
[ -n "$frac" ] || fail "run --help: no default budget"
read -r num den <<<"$frac"
out=$("$tool" run --vms 3 --pages 4096)
want=$((3 * 4096 * num / den))
grep -q "against a budget of $want\b" <<<"$out" ||
	fail "run: default budget is not $num/$den of guest RAM ($want): $(grep create <<<"$out")"

# A run inside the documented limits that this machine cannot hold is
# refused at once with the figures, not left to the OOM killer.
avail_kib=$(sed -n 's/^MemAvailable: *\([0-9]*\) kB/\1/p' /proc/meminfo)
if [ "$avail_kib" -lt $((60 * 1024 * 1024)) ]; then
	run_exit "run --vms 64 --pages 262144" 1 run --vms 64 --pages 262144
	grep -q 'need about [0-9]* MiB of host memory; [0-9]* MiB are available' \
		"$tmp/err" || fail "run too big: message: $(cat "$tmp/err")"
	run_exit "run --vms 64 --pages 262144 --budget 0" 1 \
		run --vms 64 --pages 262144 --budget 0
else
	echo "cli_tool: skipped the too-big run: $avail_kib KiB available"
fi
run_exit "run --vms 64 --pages 262144 --budget 4096" 0 \
	run --vms 64 --pages 262144 --budget 4096

if [ $fails -ne 0 ]; then
	echo "$fails failure(s)" >&2
	exit 1
fi
echo "cli_tool: all passed"
