#!/usr/bin/env bash
# memvisor run, guest-physical steps: VMs write (first touch), share frames
# explicitly, break a share by copy-on-write, balloon, reset, and what the
# kernel holds for the pool (its memfd's allocated blocks, not the
# process's RSS) follows: it falls at the balloon and at the reset.
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
  # The pool memfd's KiB after each guest step, in order (the vCPU steps
  # follow).
  mapfile -t held < <(sed -n '/^vm-create/,/^vcpu-boot/p' <<<"$out" \
                      | sed -n 's/.*| pool memfd \([0-9]*\) KiB.*/\1/p')
  [ "${#held[@]}" = 7 ] \
    || fail "expected 7 guest pool memfd figures, got ${#held[@]}"
  local create=${held[0]} write=${held[1]} cow=${held[3]} balloon=${held[4]}
  local reset=${held[5]} end=${held[6]}
  [ $((write - create)) -ge $((pages * 4 / 2)) ] \
    || fail "pool memory did not rise with the guests' writes: ${held[*]}"
  [ $((cow - balloon)) -ge 2048 ] \
    || fail "pool memory did not fall at the balloon: ${held[*]}"
  [ $((balloon - reset)) -ge 2048 ] \
    || fail "pool memory did not fall at the reset: ${held[*]}"
  [ "$end" -lt "$write" ] \
    || fail "pool memory did not fall after destroy: ${held[*]}"
}

out=$("$tool" run) || fail "memvisor run failed: $out"
echo "$out"
check_run "$out" 4096
out=$("$tool" run --vms 2 --pages 8192 --budget 0) || fail "larger run failed"
check_run "$out" 8192
echo "cli_run_phys: ok"
