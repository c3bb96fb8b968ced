#!/usr/bin/env bash
# Page sharing against Linux KSM on the same four real guest images (the
# RAM of freshly booted Debian guests, tests/real/boot.sh dedup, cached):
#   ksm.sh MEMVISOR KSM_MERGE        (make bench-ksm)
# one after the other in the same run:
#   1. `memvisor dedup --json --cross-vm on` (KSM shares across processes,
#      so memvisor shares across VMs here);
#   2. KSM through ksm_merge (private anonymous copies, MADV_MERGEABLE,
#      ksmd at 10000 pages per wake-up without sleeping, until nothing
#      changed for 2 full scans), in three variants: the non-zero pages
#      copied (as memvisor loads the images) with KSM's default zero
#      handling; every page copied, zero pages merged like any other
#      (use_zero_pages=0) or mapped to the zero page (use_zero_pages=1).
# JSON lines: each run's own line, then per KSM variant the saving and the
# CPU time of memvisor over KSM's (goal: saving ratio >= 1, CPU ratio
# <= 0.1). KSM's CPU is ksmd's until its last merge (the extra scans that
# show nothing changes any more are not charged). Without KSM or root the
# KSM line says why and memvisor's figures stand alone.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/../../tests/real/lib.sh"

[ $# -eq 2 ] || die "usage: ksm.sh MEMVISOR KSM_MERGE"
MV=$1 KSM_MERGE=$2
[ -x "$MV" ] && [ -x "$KSM_MERGE" ] || die "not executables: $MV $KSM_MERGE"

lock_cache
list=$(dedup_images) || exit 1
mapfile -t IMGS <<< "$list"

# field NAME LINE: the value of "NAME" in a JSON line.
field() { sed -n "s/.*\"$1\": *\"\\{0,1\\}\\([^,\"}]*\\).*/\\1/p" <<< "$2"; }

mv_line=$("$MV" dedup --json --cross-vm on "${IMGS[@]}")
echo "{\"bench\": \"share.memvisor_dedup\", ${mv_line#\{}"
mv_saved=$(field saved_pages "$mv_line") mv_cpu=$(field cpu_s "$mv_line")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.4g", a / b; else print "null" }'; }

variant()
{
	local name=$1 line ksm_saved ksm_cpu r_saved r_cpu
	shift
	line=$("$KSM_MERGE" "$@" "${IMGS[@]}") || die "ksm_merge $* failed"
	echo "$line"
	[ "$(field ksm "$line")" = ran ] || return 1
	ksm_saved=$(field saved_pages "$line") ksm_cpu=$(field cpu_s "$line")
	r_saved=$(ratio "$mv_saved" "$ksm_saved") r_cpu=$(ratio "$mv_cpu" "$ksm_cpu")
	printf '{"bench": "share.saved_pages_%s", "value": %s, "unit": "pages", "baseline": "ksm.saved_pages_%s", "baseline_value": %s, "ratio": %s, "goal": ">= 1"}\n' \
		"$name" "$mv_saved" "$name" "$ksm_saved" "$r_saved"
	printf '{"bench": "share.cpu_s_%s", "value": %s, "unit": "s", "baseline": "ksm.ksmd_cpu_s_%s", "baseline_value": %s, "ratio": %s, "goal": "<= 0.1"}\n' \
		"$name" "$mv_cpu" "$name" "$ksm_cpu" "$r_cpu"
}

if variant nonzero --zero-pages 0; then
	variant all_pages --all --zero-pages 0
	variant all_pages_zero_page --all --zero-pages 1
else
	log "KSM not measured (the line above says why): memvisor's figures alone"
fi
