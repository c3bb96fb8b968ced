# Shared by tests/install/check_*.sh, which ctest runs as
#   check_NAME.sh SOURCE_DIR BUILD_DIR LIBMEMVISOR_SO MEMVISOR_TOOL
src=$1
build=$2
so=$3
tool=$4
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

finish() {
	if [ $fails -ne 0 ]; then
		echo "$fails failure(s)" >&2
		exit 1
	fi
	echo "all checks passed"
}

# The version as include/memvisor/version.h states it, and the soname's
# version (0.MINOR before 1.0, MAJOR after; docs/api.md).
mv_part() {
	sed -n "s/^#define MV_VERSION_$1 \([0-9]*\)$/\1/p" \
		"$src/include/memvisor/version.h"
}
version="$(mv_part MAJOR).$(mv_part MINOR).$(mv_part PATCH)"
if [ "$(mv_part MAJOR)" = 0 ]; then
	soversion="0.$(mv_part MINOR)"
else
	soversion=$(mv_part MAJOR)
fi

# public_functions [HEADER...]: the mv_ functions with external linkage
# that the public headers declare (all of them without arguments), as the
# compiler sees them: static inline helpers are not among them.
public_functions() {
	local hdrs=("$@") tu aux h
	[ ${#hdrs[@]} -gt 0 ] || hdrs=("$src"/include/memvisor/*.h)
	tu=$(mktemp --suffix=.c) aux=$(mktemp)
	for h in "${hdrs[@]}"; do
		echo "#include <memvisor/$(basename "$h")>"
	done >"$tu"
	cc -std=gnu11 -I"$src/include" -fsyntax-only -aux-info "$aux" "$tu" ||
		fail "the public headers do not compile"
	for h in "${hdrs[@]}"; do
		grep -F "/* $src/include/memvisor/$(basename "$h"):" "$aux"
	done | grep ' extern ' | grep -o '\bmv_[a-z0-9_]* (' | tr -d ' (' |
		sort -u
	rm -f "$tu" "$aux"
}
