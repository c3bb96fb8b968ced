# Shared by the real-guest test scripts (sourced, not run).
# Everything the scripts produce lives under tests/real/cache/ (git-ignored).

REAL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${MV_REAL_CACHE:-$REAL_DIR/cache}

# The guests, one per paging mode (boot.sh says how each is booted):
# long4: qemu64 has no LA57, so Linux runs 4-level paging.
# long5: max has LA57 (5-level), SMEP, SMAP and PKU; pti=on makes the
#   kernel keep two page tables per process, and the kernel one has NX set
#   in its user-half top-level entries: a real case where the effective
#   rights differ from the leaf entries' own bits.
# legacy, pae: 32-bit kernels, 2-level paging with 4M pages and PAE.
# shellcheck disable=SC2034 # used by run.sh
REAL_GUESTS="long4 long5 legacy pae"

log() { printf 'real: %s\n' "$*" >&2; }
die() { printf 'real: error: %s\n' "$*" >&2; exit 1; }

need_cmd()
{
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			die "'$c' not found: run scripts/install-deps.sh real (as root)"
	done
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

# Captures depend on the guest (kernel + initramfs) and on how boot.sh
# takes them; a change to either makes run.sh boot again.
capture_key()
{
	# shellcheck disable=SC1091
	. "$CACHE/guest.env"
	echo "$GUEST_ID-$(sha256sum < "$REAL_DIR/boot.sh" | cut -c1-8)"
}
capture_root() { echo "$CACHE/captures/$(capture_key)"; }
# The page-sharing images live apart: run.sh removes every capture root
# but its own, and a checkout with another boot.sh must not take them.
dedup_root() { echo "$CACHE/dedup/$(capture_key)"; }

# The captures each guest produces, and the benchmark names of their dumps.
guest_captures()
{
	case $1 in
	long4) echo long4 ;;
	long5) echo long5 long5-user ;;
	dedup) echo dedup-1 dedup-2 dedup-3 dedup-4 ;;
	*) echo "$1" ;;
	esac
}
bench_name() { echo "mmu.walk_dump_real_${1//-/_}"; }

# tlb_expect IMAGE TLB [PROBES]: QEMU's `info tlb` lines as `memvisor walk --dump`
# must print them (see tlb_expect.c); the registers come from cr.env,
# already sourced. The helper is built on first use.
tlb_expect()
{
	local bin
	bin=$(helper tlb_expect) || exit 1
	"$bin" "$1" "${CR3#0x}" "${CR4#0x}" "${EFER#0x}" ${3:+"$3"} < "$2"
}

# helper NAME: the path of the helper built from tests/real/NAME.c, built
# on first use. The binary is named after its source's hash: checkouts
# with other versions of the source share the cache, and none may run
# another's build.
helper()
{
	local src=$REAL_DIR/$1.c bin
	bin=$CACHE/bin/$1-$(sha256sum < "$src" | cut -c1-12)
	if [ ! -x "$bin" ]; then
		mkdir -p "$CACHE/bin"
		${CC:-cc} -O2 -std=gnu11 -Wall -Wextra -Werror -o "$bin.tmp.$$" "$src" ||
			die "cannot build $src"
		mv "$bin.tmp.$$" "$bin"
	fi
	echo "$bin"
}

# dedup_expect [-m MAX] [-x on|off] IMAGE...: what a complete page-sharing
# scan of the images must leave (see dedup_expect.c).
dedup_expect()
{
	local bin
	bin=$(helper dedup_expect) || exit 1
	"$bin" "$@"
}

# lock_cache: one run at a time per cache (a plain and a sanitizer build,
# the walk and the page-sharing tests may share it), on fd 9 until exit.
lock_cache()
{
	mkdir -p "$CACHE"
	exec 9> "$CACHE/lock"
	flock -w 1200 9 || die "another run holds $CACHE/lock"
}

# dedup_images: the paths of the four page-sharing images (boot.sh dedup),
# booted first if the cache lacks them. The caller holds lock_cache.
dedup_images()
{
	local root c d fresh=${MV_REAL_FRESH:-}
	"$REAL_DIR/fetch.sh" || exit 1
	root=$(dedup_root)
	# Images of other kernels or of another boot.sh are only disk space.
	for d in "$CACHE"/dedup/*; do
		[ "$d" = "$root" ] || [ ! -d "$d" ] || rm -rf "$d"
	done
	for c in $(guest_captures dedup); do
		[ -e "$root/$c/done" ] || fresh=1
	done
	if [ -n "$fresh" ]; then
		"$REAL_DIR/boot.sh" dedup || exit 1
	else
		log "reusing the dedup captures in $root"
	fi
	for c in $(guest_captures dedup); do
		echo "$root/$c/ram.img"
	done
}
