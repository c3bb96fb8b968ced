#!/bin/bash
# Every manual page in man/ renders without a warning (mandoc -T lint and
# man --warnings), carries the current version, names only identifiers
# the public headers have, and covers what it claims to: a section-3 page
# naming headers ("memvisor-header:") describes every mv_ function they
# declare; memvisor(1) describes every subcommand and option the tool's
# --help lists. Every public header has a section-3 page naming it.
set -u
. "$(dirname "$0")/lib.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export LC_ALL=C.UTF-8 MANWIDTH=80

for t in mandoc man; do
	command -v $t >/dev/null || fail "$t is not installed (scripts/install-deps.sh)"
done

# Every identifier in the public headers, and the pages' own names (a
# page may be named for its object, as mv_dirty(3)), for the stale-name
# check.
{
	cat "$src"/include/memvisor/*.h | grep -o '\b[A-Za-z_][A-Za-z0-9_]*'
	for p in "$src"/man/*.[1-9]; do basename "${p%.*}"; done
} | sort -u >"$tmp/idents"

# plain PAGE: the page's source with roff escapes for '-' undone.
plain() { sed 's/\\-/-/g; s/\\(en/-/g' "$1"; }

check_render() {
	local page=$1
	mandoc -T lint "$page" >"$tmp/lint" 2>&1 || true
	[ -s "$tmp/lint" ] && fail "mandoc -T lint $page: $(cat "$tmp/lint")"
	man --warnings -l "$page" >"$tmp/out" 2>"$tmp/warn" ||
		fail "man -l $page failed"
	[ -s "$tmp/warn" ] && fail "man --warnings $page: $(cat "$tmp/warn")"
	[ -s "$tmp/out" ] || fail "man -l $page rendered nothing"
}

check_version() {
	grep -q "^\.TH .* \"memvisor $version\"" "$1" ||
		fail "$1: .TH does not say \"memvisor $version\""
}

# Names the page uses must exist: mv_ words as identifiers, MV_ words as
# identifiers or prefixes of some (MV_CR4_* is written MV_CR4_).
check_names() {
	local page=$1 w
	for w in $(plain "$page" | grep -o '\bmv_[a-z0-9_]*' | sort -u); do
		case "$w" in
		*_) grep -q "^$w" "$tmp/idents" ;;  # a prefix, as in "mv_ functions"
		*) grep -qx "$w" "$tmp/idents" ;;
		esac || fail "$page names '$w': no such identifier"
	done
	for w in $(plain "$page" | grep -o '\bMV_[A-Z0-9_]*' | sort -u); do
		grep -q "^$w" "$tmp/idents" || fail "$page names '$w': no such identifier"
	done
}

check_coverage3() {
	local page=$1 h f hdrs=()
	for h in $(sed -n 's/^\.\\" memvisor-header: *//p' "$page"); do
		if [ -f "$src/include/memvisor/$h" ]; then
			hdrs+=("$src/include/memvisor/$h")
			echo "$h" >>"$tmp/documented"
		else
			fail "$page documents $h: no such header"
		fi
	done
	[ ${#hdrs[@]} -gt 0 ] || return 0
	for f in $(public_functions "${hdrs[@]}"); do
		plain "$page" | grep -qw "$f" || fail "$page: $f is not described"
	done
}

# The tool's subcommands ("  name  summary" under "commands:") and, for
# each, the options its --help names; each must be in its .SS section.
check_tool_page() {
	local page=$1 cmd opt
	"$tool" --help | sed -n '/^commands:/,/^$/p' | awk 'NF > 1 { print $1 }' \
		>"$tmp/cmds"
	[ -s "$tmp/cmds" ] || fail "memvisor --help lists no command"
	while read -r cmd; do
		plain "$page" | awk -v c="$cmd" '
			/^\.S[HS] / { on = ($0 == ".SS " c) }
			on' >"$tmp/section"
		[ -s "$tmp/section" ] || { fail "$page: no section for '$cmd'"; continue; }
		"$tool" "$cmd" --help >"$tmp/help" 2>&1 ||
			fail "memvisor $cmd --help failed"
		for opt in $(grep -o -- '--[a-z][a-z0-9-]*' "$tmp/help" | sort -u); do
			grep -q -- "$opt\b" "$tmp/section" ||
				fail "$page: memvisor $cmd $opt is not described"
		done
	done <"$tmp/cmds"
}

: >"$tmp/documented"
pages=("$src"/man/*.[1-9])
[ -e "${pages[0]}" ] || fail "no manual page in man/"
for page in "${pages[@]}"; do
	check_render "$page"
	check_version "$page"
	check_names "$page"
	case "$page" in
	*.3) check_coverage3 "$page" ;;
	*/memvisor.1) check_tool_page "$page" ;;
	esac
done
[ -f "$src/man/memvisor.1" ] || fail "no memvisor(1)"

for h in "$src"/include/memvisor/*.h; do
	grep -qx "$(basename "$h")" "$tmp/documented" ||
		fail "no manual page documents $(basename "$h") (memvisor-header:)"
done
echo "${#pages[@]} pages checked"
finish
