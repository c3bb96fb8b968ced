#!/usr/bin/env bash
# Checks `memvisor walk` against QEMU on one capture of boot.sh:
#   compare.sh [--time-limit SECONDS] MEMVISOR CAPTURE-DIR BENCH-NAME
# 1. --dump lists exactly the leaves QEMU's `info tlb` lists: same VAs, GPAs,
#    page sizes and flags. QEMU prints each leaf entry's own bits while the
#    walker prints effective X/U/W, so the expected flags come from
#    tlb_expect: G P D A C T as QEMU printed them; X = QEMU's X or NX above
#    the leaf; U, W = QEMU's U, W and U, W in every entry above the leaf.
# 2. Every gva2gpa sample: same GPA (page offset included), and the page
#    size and flags of its page; QEMU's "Unmapped" is a not-present fault
#    (error code 0x0, 0x4 with --user), "fault gp" for non-canonical VAs.
# 3. Every sample under each access (read, write, fetch) as user and
#    supervisor: allowed or faulting with the x86 error code the flags imply
#    under this capture's CR0.WP, CR4.SMEP/SMAP (EFLAGS.AC clear) and
#    EFER.NXE; and once more with --mode named explicitly.
#    The same for one VA (scattered offset) in every leaf QEMU lists, with
#    the GPA from info tlb.
# 4. The time of the --dump (best of 3), as a JSON line named BENCH-NAME;
#    with --time-limit, slower than that fails.
# 5. 1-3 again with --shadow (a vCPU's shadow MMU answers instead of the
#    walker; the dump is listed from the shadow tables): the same answers,
#    timed as BENCH-NAME_shadow (no time limit: it loads the image into a
#    VM and takes a shadow fault per leaf first).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

limit=
if [ "${1:-}" = --time-limit ]; then
	limit=$2
	shift 2
fi
[ $# -eq 3 ] || die "usage: compare.sh [--time-limit S] MEMVISOR CAPTURE-DIR BENCH-NAME"
MV=$1 CAP=$2 BENCH=$3
NAME=$(basename "$CAP")
[ -x "$MV" ] || die "$MV is not an executable"
"$MV" walk --help > /dev/null 2>&1 ||
	die "$MV has no working 'walk' command ('$MV walk --help' fails)"
[ -e "$CAP/done" ] || die "$CAP is not a complete capture (run boot.sh)"
# shellcheck disable=SC1091
. "$CAP/cr.env"
OUT=$CAP/compare
rm -rf "$OUT"
mkdir -p "$OUT"
FAILED=0
PASS=      # "-shadow" in the --shadow pass: its files and names

# PAE: QEMU (7.2, TCG) leaves the accessed bit (bit 5) set in the PDPTEs
# whose gigabyte the guest used, a bit SDM 4.4.1 reserves: a CPU would
# #GP on the next MOV to CR3, and the walker refuses such a CR3 likewise.
# QEMU itself ignores the bit. So PAE captures are walked with
# --lenient-pdpte (the command's QEMU compatibility switch: the CR3 load
# sees those PDPTEs with bit 5 clear; the image is untouched), and what the
# walker says of the raw image without it is reported (not judged).
WALK=("$MV" walk --image "$CAP/ram.img" --cr3 "$CR3" --cr0 "$CR0"
      --cr4 "$CR4" --efer "$EFER")
if (( !(EFER >> 10 & 1) && (CR4 >> 5 & 1) )); then
	pdpt=$(( CR3 & 0xffffffe0 )) n=0
	for i in 0 1 2 3; do
		e=$(od -An -t x8 -j $(( pdpt + 8 * i )) -N 8 "$CAP/ram.img" | tr -d ' ')
		(( (16#$e & 0x21) != 0x21 )) || n=$((n + 1))
	done
	echo "note $NAME: $n present PDPTEs have the accessed bit set (QEMU sets it; SDM 4.4.1 reserves it); compared with --lenient-pdpte. The walker without it: $("${WALK[@]}" 0 2>&1 | head -n1)" >&2
	WALK+=(--lenient-pdpte)
fi

# mismatch WHAT EXPECTED ACTUAL: reports the first differences, keyed by
# the first field (the VA), and marks the capture failed.
mismatch()
{
	local what=$1 exp=$2 act=$3
	FAILED=1
	echo "FAIL $NAME: $what differs from QEMU (expected: $NAME/compare/${exp##*/}, actual: $NAME/compare/${act##*/})"
	awk -v what="$what" '
	FILENAME == tlb { k = $1; sub(/:$/, "", k); qemu[k] = $0; next }
	NR == FNR { e[$1] = $0; order[++n] = $1; next }
	{ a[$1] = $0; if (!($1 in e)) extra[++m] = $1 }
	END {
		for (i = 1; i <= n; i++) {
			k = order[i]
			if (!(k in a)) { missing++; if (shown++ < 20) print "  missing: " e[k] }
			else if (a[k] != e[k]) {
				differ++
				if (shown++ < 20) {
					print "  expected: " e[k] "\n  actual:   " a[k]
					q = k; sub(/^0x/, "", q); sub(/:$/, "", q)
					if (q in qemu) print "  (QEMU info tlb: " qemu[q] ")"
				}
			}
		}
		for (i = 1; i <= m; i++)
			if (shown++ < 20) print "  extra:    " a[extra[i]]
		printf "  %s: %d missing, %d different, %d extra\n", what,
			missing, differ, m
	}' "$exp" "$act" tlb="$CAP/tlb.txt" "$CAP/tlb.txt"
	if [ "$(sort "$exp" | md5sum)" = "$(sort "$act" | md5sum)" ]; then
		echo "  (same lines, different order)"
	fi
}

check_dump()
{
	local best=999 t0 t
	[ -n "$PASS" ] ||
	tlb_expect "$CAP/ram.img" "$CAP/tlb.txt" "$OUT/probes" > "$OUT/expected.dump" \
		2> "$OUT/tlb_expect.log" ||
		{ cat "$OUT/tlb_expect.log" >&2; die "$NAME: capture inconsistent"; }
	for _ in 1 2 3; do
		t0=$(now)
		if ! timeout 60 "${WALK[@]}" --dump > "$OUT/actual$PASS.dump" 2> "$OUT/walk$PASS.err"; then
			FAILED=1
			echo "FAIL $NAME: memvisor walk${PASS:+ --shadow} --dump failed:"
			head -c 600 "$OUT/walk$PASS.err"; echo
			return
		fi
		t=$(elapsed "$t0")
		best=$(awk -v a="$best" -v b="$t" 'BEGIN { print (b < a ? b : a) }')
	done
	if cmp -s "$OUT/expected.dump" "$OUT/actual$PASS.dump"; then
		echo "ok $NAME: ${PASS:+--shadow }--dump matches info tlb on all $(wc -l < "$OUT/expected.dump") leaves ($(sed 's/^tlb_expect: [0-9]* leaves, //' "$OUT/tlb_expect.log"))"
	else
		mismatch "${PASS:+--shadow }--dump" "$OUT/expected.dump" "$OUT/actual$PASS.dump"
	fi
	printf '{"bench": "%s", "value": %s, "unit": "s"}\n' "$BENCH${PASS:+_shadow}" "$best"
	if [ -n "$limit" ] && [ -z "$PASS" ] && awk -v t="$best" -v l="$limit" 'BEGIN { exit !(t > l) }'; then
		FAILED=1
		echo "FAIL $NAME: --dump took ${best}s, over the ${limit}s limit"
	fi
}

# expect_samples SET ACCESS USER: the walker's expected answer for every
# VA of SET ("<va> <page va> <gpa>|Unmapped" lines: the gva2gpa samples, or
# one VA in every leaf) under one access kind (r/w/x) and privilege (0/1).
# Rights follow the x86 rules for the effective flags of the page:
#   user:       needs U; a write needs W; a fetch needs X clear
#   supervisor: on a U page, SMEP forbids fetches and SMAP reads and writes
#               (no EFLAGS.AC: as for implicit accesses); a write needs W
#               when CR0.WP is set; a fetch needs X clear
# and the error code is P | W(write) | U(user) | I/D(fetch, if SMEP or
# PAE-format entries with NXE).
expect_samples()
{
	awk -v acc="$2" -v user="$3" -v la57=$(( CR4 >> 12 & 1 )) \
	    -v long=$(( EFER >> 10 & 1 )) -v pae=$(( CR4 >> 5 & 1 )) \
	    -v wp=$(( CR0 >> 16 & 1 )) -v smep=$(( CR4 >> 20 & 1 )) \
	    -v smap=$(( CR4 >> 21 & 1 )) -v nxe=$(( EFER >> 11 & 1 )) '
	function canonical(va,    top) {
		if (!long) return 1
		top = substr(va, 3, la57 ? 2 : 5)
		if (la57) return top == "00" || top == "ff"
		return top ~ /^0000[0-7]$/ || top ~ /^ffff[89a-f]$/
	}
	function pad(x) {
		sub(/^0x/, "", x)
		while (length(x) < 16) x = "0" x
		return "0x" x
	}
	function denied(f,    u, w, x) {
		u = substr(f, 8, 1) == "U"; w = substr(f, 9, 1) == "W"
		x = substr(f, 1, 1) == "X"
		if (user) return !u || (acc == "w" && !w) || (acc == "x" && x)
		if (u && acc == "x" && smep) return 1
		if (u && acc != "x" && smap) return 1
		return (acc == "w" && !w && wp) || (acc == "x" && x && nxe)
	}
	function code(present,    fetch) {
		fetch = acc == "x" && ((pae && nxe) || smep)
		return sprintf("0x%x", present + (acc == "w") * 2 + user * 4 + fetch * 16)
	}
	NR == FNR { k = $1; sub(/:$/, "", k); size[k] = $3; flags[k] = $4; next }
	{
		va = $1; page = $2; ans = $3
		if (!canonical(va)) print va " fault gp"
		else if (ans == "Unmapped") print va " fault " code(0)
		else if (!(page in size)) {
			print "compare: sample " va ": page " page " not in the dump" > "/dev/stderr"
			exit 2
		} else if (denied(flags[page])) print va " fault " code(1)
		else print va " -> " pad(ans) " " size[page] " " flags[page]
	}' "$OUT/expected.dump" "$1"
}

# check_walks SET TAG WHAT: single-VA walks of every VA of SET, see above.
check_walks()
{
	local set=$1 tag=$2 what=$3 acc user args n=0 bad=0 f vas
	mapfile -t vas < <(awk '{ print $1 }' "$set")
	for acc in r w x; do
		for user in 0 1; do
			f=$OUT/walk$PASS-$tag-$acc-$user
			args=(--access "$acc")
			[ "$user" = 0 ] || args+=(--user)
			expect_samples "$set" "$acc" "$user" > "$f.expected" ||
				die "$NAME: cannot build the expected answers for $set"
			if ! timeout 60 "${WALK[@]}" "${args[@]}" "${vas[@]}" \
				> "$f.actual" 2> "$f.err"; then
				bad=1
				echo "FAIL $NAME: memvisor walk ${PASS:+--shadow }${args[*]} VA... failed:"
				head -c 600 "$f.err"; echo
				continue
			fi
			n=$((n + ${#vas[@]}))
			cmp -s "$f.expected" "$f.actual" && continue
			bad=1
			mismatch "walk ${PASS:+--shadow }${args[*]}" "$f.expected" "$f.actual"
		done
	done
	# Naming the mode the registers imply must change nothing.
	local mode=legacy
	(( !(CR4 >> 5 & 1) )) || mode=pae
	(( !(EFER >> 10 & 1) )) || mode=long$(( CR4 >> 12 & 1 ? 5 : 4 ))
	f=$OUT/walk$PASS-$tag-r-0
	if ! timeout 60 "${WALK[@]}" --mode "$mode" --access r "${vas[@]}" \
		> "$f.mode" 2> "$f.err"; then
		bad=1
		echo "FAIL $NAME: memvisor walk ${PASS:+--shadow }--mode $mode VA... failed:"
		head -c 600 "$f.err"; echo
	elif ! cmp -s "$f.expected" "$f.mode"; then
		bad=1
		mismatch "walk ${PASS:+--shadow }--mode $mode --access r" "$f.expected" "$f.mode"
	fi
	if [ "$bad" = 0 ]; then
		echo "ok $NAME: $n single-VA walks${PASS:+ (--shadow)} agree (${#vas[@]} $what x r/w/x x user/supervisor, and --mode $mode)"
	else
		FAILED=1
	fi
}

for PASS in "" -shadow; do
	[ -z "$PASS" ] || WALK+=(--shadow)
	check_dump
	if [ -s "$OUT/expected.dump" ]; then
		check_walks "$CAP/gva.txt" gva "gva2gpa samples"
		check_walks "$OUT/probes" leaf "VAs, one in every leaf of info tlb,"
	fi
done
[ "$FAILED" -eq 0 ]
