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
capture_root()
{
	# shellcheck disable=SC1091
	. "$CACHE/guest.env"
	echo "$CACHE/captures/$GUEST_ID-$(sha256sum < "$REAL_DIR/boot.sh" | cut -c1-8)"
}

# The captures each guest produces, and the benchmark names of their dumps.
guest_captures()
{
	case $1 in
	long4) echo long4 ;;
	long5) echo long5 long5-user ;;
	*) echo "$1" ;;
	esac
}
bench_name() { echo "mmu.walk_dump_real_${1//-/_}"; }

# tlb_expect IMAGE TLB [PROBES]: QEMU's `info tlb` lines as `memvisor walk --dump`
# must print them (see tlb_expect.c); the registers come from cr.env,
# already sourced. The helper is built on first use.
tlb_expect()
{
	local bin=$CACHE/bin/tlb_expect src=$REAL_DIR/tlb_expect.c
	if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
		mkdir -p "$CACHE/bin"
		${CC:-cc} -O2 -std=gnu11 -Wall -Wextra -Werror -o "$bin.tmp" "$src" ||
			die "cannot build $src"
		mv "$bin.tmp" "$bin"
	fi
	"$bin" "$1" "${CR3#0x}" "${CR4#0x}" "${EFER#0x}" ${3:+"$3"} < "$2"
}
