#!/usr/bin/env bash
# memvisor run: the over-commitment demonstration shows the budget error,
# a real RSS and pool memory held by the kernel (the memfd's blocks) that
# fall when pages are given back, intact guest content,
# and rejects bad options with exit status 2.
set -u
tool=$1
fail() { echo "cli_run: $*" >&2; exit 1; }

out=$("$tool" run) || fail "memvisor run failed: $out"
echo "$out"

grep -q 'host page budget exhausted (-MV_EBUDGET)' <<<"$out" \
  || fail "no budget-exhaustion error shown"
grep -q '^verify .*still holds' <<<"$out" || fail "content not verified"

# The RSS of every step, in order; it must rise while the guests write and
# fall by at least 8 MiB at a step where chunks are released.
mapfile -t rss < <(sed -n 's/.*| rss \([0-9]*\) KiB.*/\1/p' <<<"$out")
[ "${#rss[@]}" -ge 8 ] || fail "expected an RSS figure per step, got ${#rss[@]}"
max=0 dropped=0
for ((i = 0; i < ${#rss[@]}; i++)); do
  [ "${rss[i]}" -gt "$max" ] && max=${rss[i]}
  if [ "$i" -gt 0 ] && [ $((rss[i - 1] - rss[i])) -ge 8192 ]; then
    dropped=1
  fi
done
[ "$max" -ge $((32 * 1024)) ] || fail "RSS never rose to the guests' size ($max KiB)"
[ "$dropped" = 1 ] || fail "RSS never fell by 8 MiB at a step: ${rss[*]}"
[ "${rss[-1]}" -lt $((max / 2)) ] || fail "final RSS ${rss[-1]} KiB not below half of $max"

# The same for what the kernel holds for the pool (the memfd's blocks):
# the process's RSS alone falls on munmap even when the file keeps it all.
mapfile -t kern < <(sed -n 's/.*| pool memfd \([0-9]*\) KiB.*/\1/p' <<<"$out")
[ "${#kern[@]}" = "${#rss[@]}" ] || fail "expected a memfd figure per step, got ${#kern[@]}"
max=0 dropped=0
for ((i = 0; i < ${#kern[@]}; i++)); do
  [ "${kern[i]}" -gt "$max" ] && max=${kern[i]}
  if [ "$i" -gt 0 ] && [ $((kern[i - 1] - kern[i])) -ge 8192 ]; then
    dropped=1
  fi
done
[ "$max" -ge $((32 * 1024)) ] || fail "the pool's memfd never rose to the guests' size ($max KiB)"
[ "$dropped" = 1 ] || fail "the pool's memfd never fell by 8 MiB at a step: ${kern[*]}"
[ "${kern[-1]}" -lt $((max / 2)) ] || fail "final memfd ${kern[-1]} KiB not below half of $max"

# The vCPU steps: the shadow MMU's statistics as the model guest OS runs.
grep -Eq '^vcpu-boot .*2 vCPUs.* [1-9][0-9]* shadow faults.* [1-9][0-9]* shadow pages' <<<"$out" \
  || fail "no vCPU boot with shadow faults and pages"
grep -Eq '^vcpu-cr3 .*CR3 200 times.*: 198 roots from the cache, 0 new shadow faults' <<<"$out" \
  || fail "CR3 switches did not reuse the cached roots"
grep -Eq '^vcpu-fork .* [1-9][0-9]* emulated writes to tracked tables' <<<"$out" \
  || fail "the fork wrote no tracked table"
grep -Eq '^vcpu-cow .*: 32 #PF taken by the guest.*INVLPGs \(32\); the child on vCPU 1 still reads the old data' <<<"$out" \
  || fail "no copy-on-write in the guest's tables"
grep -Eq '^vcpu-zap .*zap of all [1-9][0-9]* shadow pages.* refault \([1-9][0-9]* faults\)' <<<"$out" \
  || fail "no zap of all shadow pages"
grep -Eq '^vcpu-dirty .*1024 cleared; the guest writes 8 pages .*: (8|9|1[0-9]) pages dirty .* 8 in the vCPU.s ring, 8 reset' <<<"$out" \
  || fail "dirty logging did not report the guest's 8 pages"
grep -Eq '^vcpu-fb .*first harvest 16 pages.*finds 3 \(bitmap 0xe0, rows 4-6 .*then 0;' <<<"$out" \
  || fail "the framebuffer harvest did not find the 3 drawn pages"

# The page-sharing steps: the saving grows while the guests write (0 when
# the scan starts, then the kernel's 3 extra copies in 4 guests and their
# 4 x 256 zero pages: 4096), the pages being written are skipped as
# volatile, writes into shared pages break them (4 x 128), and every page
# holds what its guest wrote last.
grep -q '^share-boot 4 guests of 2048 pages' <<<"$out" || fail "no sharing guests"
mapfile -t saving < <(sed -n 's/^share-scan .*(saving \([0-9]*\))$/\1/p' <<<"$out")
[ "${#saving[@]}" -ge 3 ] || fail "expected several share-scan lines, got ${#saving[@]}"
[ "${saving[0]}" = 0 ] || fail "the saving did not start at 0: ${saving[*]}"
[ "${saving[-1]}" = 4096 ] || fail "the final saving is not 4096: ${saving[*]}"
for ((i = 1; i < ${#saving[@]}; i++)); do
  [ "${saving[i]}" -ge "${saving[i - 1]}" ] || fail "the saving fell: ${saving[*]}"
done
[ "${saving[1]}" -lt 4096 ] || fail "the saving did not grow step by step: ${saving[*]}"
grep -Eq '^share-scan done after round [0-9]+: .* 4096 merged, 1024 zero pages reclaimed, [1-9][0-9]* skipped as volatile' <<<"$out" \
  || fail "the scan did not end with every page merged and the working sets skipped"
grep -Eq '^share-cow .*: 512 copy-on-write breaks, the guests. host pages 4096 -> 46[0-9][0-9]$' <<<"$out" \
  || fail "writes into shared pages did not break 512 shares"
grep -q '^share-end  every page of the 4 guests holds what it last wrote' <<<"$out" \
  || fail "the sharing guests' pages were not verified"

# Options.
"$tool" run --help | grep -q '^usage: memvisor run' || fail "--help"
small=$("$tool" run --vms 2 --pages 1024 --budget 0) || fail "small run failed"
grep -q 'no limit' <<<"$small" || fail "--budget 0 is not 'no limit'"
for bad in "--bogus" "--vms 1" "--vms 65" "--pages abc" "--pages 12x" \
           "--budget -3" "--vms" "extra"; do
  # shellcheck disable=SC2086
  err=$("$tool" run $bad 2>&1 >/dev/null)
  rc=$?
  [ "$rc" = 2 ] || fail "'run $bad' exited $rc, want 2"
  grep -q 'memvisor run:' <<<"$err" || fail "'run $bad' gave no clear error: $err"
done
echo "cli_run: ok"
