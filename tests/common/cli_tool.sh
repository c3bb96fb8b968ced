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
full_exit "run" run --vms 2 --pages 64

if [ $fails -ne 0 ]; then
	echo "$fails failure(s)" >&2
	exit 1
fi
echo "cli_tool: all passed"
