#!/usr/bin/env bash
# Removes what `cmake --install` (make install) installed: every file named
# in the install manifest, then the project's own directories left empty
# (include/memvisor, lib/cmake/memvisor, share/doc/memvisor).
#   [DESTDIR=/stage] scripts/uninstall.sh build/install_manifest.txt
# The manifest names files under the prefix; a staged install is removed
# with the same DESTDIR as it was installed with.
set -eu

manifest=${1:?usage: uninstall.sh MANIFEST}
if [ ! -f "$manifest" ]; then
  echo "uninstall: no $manifest: nothing was installed from this build" >&2
  exit 1
fi

dirs=()
while IFS= read -r f || [ -n "$f" ]; do
  [ -n "$f" ] || continue
  case "$f" in
  "${DESTDIR:-}"/*) ;;  # already staged (older CMake wrote DESTDIR in)
  *) f=${DESTDIR:-}$f ;;
  esac
  if [ -e "$f" ] || [ -L "$f" ]; then
    rm -f -- "$f"
    echo "removed $f"
  fi
  dirs+=("$(dirname -- "$f")")
done <"$manifest"

# The project's own directories only (a basename of memvisor, or a folder
# right below one, such as share/doc/memvisor/examples), deepest first;
# shared ones like lib/pkgconfig or share/man/man3 stay even when empty.
printf '%s\n' "${dirs[@]}" | sort -u -r | while IFS= read -r d; do
  for c in "$d" "$(dirname -- "$d")"; do
    [ "$(basename -- "$c")" = memvisor ] ||
      [ "$(basename -- "$(dirname -- "$c")")" = memvisor ] || continue
    if rmdir -- "$c" 2>/dev/null; then echo "removed $c/"; fi
  done
done
rm -f -- "$manifest"
