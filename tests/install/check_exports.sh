#!/bin/bash
# The shared library exports exactly the public API: every mv_ function
# that a public header declares, nothing else (no internal helper, no
# data), each at the symbol version of the soname; and the soname follows
# the version in include/memvisor/version.h.
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

public_functions >"$tmp/public"
[ -s "$tmp/public" ] || fail "no public function found in the headers"

nm -D --defined-only "$so" >"$tmp/nm" || fail "nm -D $so"
# The version node itself is an absolute symbol (type A), not an export.
awk '$2 != "A" { print $3 }' "$tmp/nm" | sed 's/@.*//' | sort -u >"$tmp/exported"

comm -23 "$tmp/exported" "$tmp/public" >"$tmp/extra"
comm -13 "$tmp/exported" "$tmp/public" >"$tmp/missing"
[ -s "$tmp/extra" ] &&
	fail "exported outside the public API: $(tr '\n' ' ' <"$tmp/extra")"
[ -s "$tmp/missing" ] &&
	fail "declared in a public header but not exported (not defined?):" \
		"$(tr '\n' ' ' <"$tmp/missing")"
awk '$2 != "A" && $2 != "T" { print }' "$tmp/nm" >"$tmp/nonfunc"
[ -s "$tmp/nonfunc" ] && fail "exported non-functions: $(cat "$tmp/nonfunc")"
awk '$2 != "A"' "$tmp/nm" | grep -v "@@MEMVISOR_$soversion\$" >"$tmp/unversioned"
[ -s "$tmp/unversioned" ] &&
	fail "symbols without version MEMVISOR_$soversion: $(cat "$tmp/unversioned")"

soname=$(objdump -p "$so" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libmemvisor.so.$soversion" ] ||
	fail "soname '$soname', want libmemvisor.so.$soversion"

# The tool (static library) and the shared library agree on the version.
got=$("$tool" version)
case "$got" in
"memvisor $version "*) ;;
*) fail "memvisor version says '$got', want $version" ;;
esac
echo "$(wc -l <"$tmp/exported") symbols exported, soname $soname"
finish
