#!/usr/bin/env bash
# memvisor run, guest-physical steps: VMs write (first touch), share frames
# explicitly, break a share by copy-on-write, balloon, reset, and the
# measured RSS follows: it falls at the balloon and at the reset.
set -u
tool=$1
fail() { echo "cli_run_phys: $*" >&2; exit 1; }

check_run() {
  local out=$1 pages=$2
  local half=$((pages / 4))
  grep -q "^vm-write .*first touch: $((2 * half)) ZERO -> ALLOCATED" <<<"$out" \
    || fail "first touch not shown for $pages pages"
  grep -q 'the ROM reads "memvisor bios"' <<<"$out" || fail "ROM not read"
  grep -q 'the device saw 2 writes' <<<"$out" || fail "MMIO not dispatched"
  grep -q "^vm-share .*$((pages / 16)) identical frames .* share $((pages / 16)) host pages" \
    <<<"$out" || fail "sharing not shown"
  grep -q '^vm-cow .*1 COW break.*still reads the old bytes' <<<"$out" \
    || fail "copy-on-write not shown"
  grep -q "^vm-reset .*$((2 * half)) RAM pages ZERO again" <<<"$out" \
    || fail "reset not shown"
  # RSS after each guest step, in order (the vCPU steps follow).
  mapfile -t rss < <(sed -n '/^vm-create/,/^vcpu-boot/p' <<<"$out" \
                     | sed -n 's/.*| rss \([0-9]*\) KiB.*/\1/p')
  [ "${#rss[@]}" = 7 ] || fail "expected 7 guest RSS figures, got ${#rss[@]}"
  local create=${rss[0]} write=${rss[1]} cow=${rss[3]} balloon=${rss[4]}
  local reset=${rss[5]} end=${rss[6]}
  [ $((write - create)) -ge $((pages * 4 / 2)) ] \
    || fail "RSS did not rise with the guests' writes: ${rss[*]}"
  [ $((cow - balloon)) -ge 2048 ] || fail "RSS did not fall at the balloon: ${rss[*]}"
  [ $((balloon - reset)) -ge 2048 ] || fail "RSS did not fall at the reset: ${rss[*]}"
  [ "$end" -lt "$write" ] || fail "RSS did not fall after destroy: ${rss[*]}"
}

out=$("$tool" run) || fail "memvisor run failed: $out"
echo "$out"
check_run "$out" 4096
out=$("$tool" run --vms 2 --pages 8192 --budget 0) || fail "larger run failed"
check_run "$out" 8192
echo "cli_run_phys: ok"
