#!/usr/bin/env bash
# Boots the test guest under QEMU TCG with its RAM in a file and captures,
# with the vCPU stopped, everything a page-table walk needs and what QEMU
# itself says about the page tables:
#   boot.sh long4   amd64 kernel, -cpu qemu64, 512M        -> capture long4
#   boot.sh long5   amd64 kernel, -cpu max, 3G, pti=on     -> long5, long5-user
#   boot.sh legacy  i386 686 kernel, -cpu qemu64, 512M     -> capture legacy
#   boot.sh pae     i386 686-pae kernel, -cpu max, 512M    -> capture pae
#   boot.sh dedup   four guests of 256M, RAM only          -> dedup-1..dedup-4
# Each capture directory (cache/captures/<guest id>/<name>/) holds
#   ram.img    guest RAM from GPA 0 (256M, 512M or 3G: one flat range below
#              the PCI hole)
#   regs.txt   `info registers`;  cr.env  CR0/CR3/CR4/EFER/CPL/RIP parsed
#   tlb.txt    `info tlb`: every present leaf of the page table at CR3
#   gva.txt    "<va> <page va from tlb.txt or -> <gva2gpa answer>" samples
#   about.txt  which process and privilege level CR3 was captured in
# (a dedup capture holds only ram.img and about.txt: the page-sharing
# test and benchmark need the memory, not the page tables).
# A capture directory is complete once it has its "done" file. The dedup
# captures go to cache/dedup/<guest id>/ instead.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

BOOT_TIMEOUT=${MV_REAL_BOOT_TIMEOUT:-180}	# until the guest's marker line
QEMU_LIFETIME=600				# hard cap on the whole VM
MON_TIMEOUT=120					# one monitor exchange
MARK=0x4d56454e44				# `print` echoes it: end of an answer

QEMU_PID=
cleanup()
{
	if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
		kill "$QEMU_PID" 2>/dev/null || true
		wait "$QEMU_PID" 2>/dev/null || true
	fi
	[ -z "${WORK:-}" ] || [ -n "${MV_REAL_KEEP:-}" ] || rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# mon CMD...: runs monitor commands, prints their output (CRs stripped, the
# prompts and echoed input dropped). The session ends when the output of a
# final `print MARK` arrives, so large answers (info tlb) are never cut.
mon()
{
	local out=$WORK/mon.out i
	: > "$out"
	# shellcheck disable=SC2094 # polls the answer socat is still writing
	{
		printf '%s\n' "$@" "print $MARK"
		for ((i = 0; i < MON_TIMEOUT * 20; i++)); do
			grep -q "^$MARK" "$out" && break
			kill -0 "$QEMU_PID" 2>/dev/null || break
			sleep 0.05
		done
	} | timeout $((MON_TIMEOUT + 10)) socat - "UNIX-CONNECT:$WORK/mon.sock" \
		> "$out" || true
	grep -q "^$MARK" "$out" ||
		die "QEMU monitor did not answer '$*' (see $WORK/serial.log)"
	tr -d '\r' < "$out" | grep -av -e '^(qemu)' -e '^QEMU .* monitor' \
		-e "^$MARK" -e '^$' || true
}

start_qemu()
{
	local cpu=$1 mb=$2 append=$3
	WORK=$(mktemp -d "$CACHE/boot.XXXXXX")
	log "booting -cpu $cpu -m ${mb}M, kernel options: $append"
	timeout $QEMU_LIFETIME qemu-system-x86_64 -accel tcg -cpu "$cpu" \
		-m "${mb}M" -smp 1 -nodefaults -display none -no-reboot \
		-object "memory-backend-file,id=ram,size=${mb}M,mem-path=$WORK/ram,share=on" \
		-machine pc,memory-backend=ram \
		-kernel "$KERNEL" -initrd "$INITRD" \
		-append "console=ttyS0 panic=-1 $append" \
		-serial file:"$WORK/serial.log" \
		-monitor unix:"$WORK/mon.sock",server=on,wait=off \
		> "$WORK/qemu.out" 2>&1 &
	QEMU_PID=$!
}

wait_marker()
{
	local t0 i
	t0=$(now)
	for ((i = 0; i < BOOT_TIMEOUT * 10; i++)); do
		if grep -aq 'MEMVISOR-READY' "$WORK/serial.log" 2>/dev/null &&
		   [ -S "$WORK/mon.sock" ]; then
			log "guest ready after $(elapsed "$t0") s:" \
				"$(grep -a 'MEMVISOR-READY' "$WORK/serial.log" | tr -d '\r')"
			return
		fi
		if ! kill -0 "$QEMU_PID" 2>/dev/null; then
			cat "$WORK/qemu.out" >&2
			tail -n 20 "$WORK/serial.log" >&2 2>/dev/null || true
			die "QEMU exited before the guest was ready"
		fi
		sleep 0.1
	done
	tail -n 20 "$WORK/serial.log" >&2 2>/dev/null || true
	die "guest not ready within ${BOOT_TIMEOUT}s (last serial lines above)"
}

# reg NAME < regs: the hex value of one register of `info registers`.
reg() { grep -ao "\<$1=[0-9a-f]*" | head -n1 | cut -d= -f2; }

parse_regs()
{
	local r=$1
	printf 'CR0=0x%s\nCR3=0x%s\nCR4=0x%s\nEFER=0x%s\nCPL=%s\nRIP=0x%s\nHLT=%s\n' \
		"$(reg CR0 < "$r")" "$(reg CR3 < "$r")" "$(reg CR4 < "$r")" \
		"$(reg EFER < "$r")" "$(reg CPL < "$r")" "$(reg RIP < "$r")$(reg EIP < "$r")" \
		"$(reg HLT < "$r")"
}

# stop_when COND: stops the vCPU at random moments until the registers
# satisfy COND (a shell test over $CPL $HLT $CR3), then leaves it stopped.
stop_when()
{
	# COND is evaluated later, on purpose: single-quoted by the callers.
	local cond=$1 try
	for ((try = 1; try <= 200; try++)); do
		mon stop 'info registers' > "$WORK/regs.txt"
		parse_regs "$WORK/regs.txt" > "$WORK/cr.env"
		# shellcheck disable=SC1091
		. "$WORK/cr.env"
		if eval "$cond"; then
			log "stopped after $try tries: CPL=$CPL RIP=$RIP CR3=$CR3"
			return
		fi
		mon cont > /dev/null
		sleep "0.$((RANDOM % 20 + 1))"
	done
	die "the vCPU never stopped where '$cond' holds"
}

# check_bits "REG:NAME:BIT ...": the register bits this guest is there to
# show (NAME, or !NAME for a bit that must be clear), e.g. CR4:LA57:12.
check_bits()
{
	local spec reg name bit val
	for spec in $1; do
		IFS=: read -r reg name bit <<< "$spec"
		val=$(( ${!reg} ))
		case $name in
		!*) (( !(val >> bit & 1) )) || die "$reg=${!reg}: ${name#!} is set" ;;
		*) (( val >> bit & 1 )) || die "$reg=${!reg}: $name is clear" ;;
		esac
	done
}

LONG="EFER:LMA:10 EFER:NXE:11 CR0:WP:16"

# Sample VAs for gva2gpa, chosen from the leaves with their page sizes (the
# output of tlb_expect): the first page of every kind (size and flags) and
# pages spread over the whole table, user pages more densely, each at an
# offset anywhere inside its page; holes right after a page whose successor
# is not mapped; non-canonical addresses.
samples()
{
	local leaves=$1 noncanon=$2 n step k=1 holes=0 i va next size flags off
	local -a lines
	local -A seen
	mapfile -t lines < "$leaves"
	n=${#lines[@]}
	step=$(( n / 40 + 1 ))
	for ((i = 0; i < n; i++)); do
		read -r va _ size flags <<< "${lines[i]}"
		va=${va%:}
		case $size in
		4K) size=0x1000 ;; 2M) size=0x200000 ;; 4M) size=0x400000 ;;
		1G) size=0x40000000 ;;
		*) die "unexpected page size $size" ;;
		esac
		if [ -z "${seen[$size$flags]:-}" ] || (( i % step == 0 )) ||
		   { [[ $flags == *U* ]] && (( i % 7 == 0 )); }; then
			seen[$size$flags]=1
			off=$(( (k * 0x9e3779b97f4a7c15 >> 20) & (size - 1) ))
			printf '0x%016x %s\n' $(( va + off )) "$va"
			k=$((k + 1))
		fi
		(( i + 1 < n )) || continue
		# 32-bit paging: no VA beyond 4G.
		(( EFER >> 10 & 1 || va + size + 8 <= 0xffffffff )) || continue
		next=${lines[i + 1]%%:*}
		if (( next != va + size && holes++ % 16 == 0 )); then
			printf '0x%016x -\n' $(( va + size + 8 ))
		fi
	done
	for va in $noncanon; do printf '%s -\n' "$va"; done
}

capture()
{
	local name=$1 about=$2 noncanon=$3 sizes=$4 dir cmds size
	dir=$OUT/$name
	rm -rf "$dir"
	mkdir -p "$dir"
	cp "$WORK/regs.txt" "$WORK/cr.env" "$dir/"
	echo "$about" > "$dir/about.txt"
	mon 'info tlb' > "$dir/tlb.txt"
	grep -qv '^[0-9a-f]\{16\}: [0-9a-f]\{16\} [-XGPDACTUW]\{9\}$' "$dir/tlb.txt" &&
		die "unexpected line in info tlb: $(grep -v '^[0-9a-f]\{16\}: ' "$dir/tlb.txt" | head -n1)"
	# The RAM file is the guest's memory itself (shared mapping): while the
	# vCPU is stopped, a copy is a consistent image of this instant.
	cp --sparse=always "$WORK/ram" "$dir/ram.img"
	tlb_expect "$dir/ram.img" "$dir/tlb.txt" > "$WORK/leaves" 2> "$WORK/tlb_expect.log" ||
		{ cat "$WORK/tlb_expect.log" >&2; die "$name: image and info tlb disagree"; }
	# The page sizes this guest is there to show must be there.
	for size in $sizes; do
		grep -q " $size " "$WORK/leaves" ||
			die "$name: no $size page in the page table (kernel changed?)"
	done
	samples "$WORK/leaves" "$noncanon" > "$WORK/samples"
	mapfile -t cmds < <(awk '{ print "gva2gpa " $1 }' "$WORK/samples")
	mon "${cmds[@]}" > "$WORK/answers"
	[ "$(wc -l < "$WORK/answers")" -eq "$(wc -l < "$WORK/samples")" ] ||
		die "gva2gpa: $(wc -l < "$WORK/samples") questions, $(wc -l < "$WORK/answers") answers"
	paste -d' ' "$WORK/samples" <(sed 's/^gpa: //' "$WORK/answers") > "$dir/gva.txt"
	log "capture $name: $(wc -l < "$dir/tlb.txt") leaves" \
		"($(awk '{ n[$3]++ } END { for (s in n) printf "%s %d ", s, n[s] }' "$WORK/leaves")), $(wc -l < "$dir/gva.txt") gva2gpa samples"
	touch "$dir/done"
}

spin_pid() { grep -ao 'spin=[0-9]*' "$WORK/serial.log" | head -n1 | cut -d= -f2; }

guest_long4()
{
	# vsyscall=emulate maps the vsyscall page (0xffffffffff600000) for user
	# reads: a user page in the kernel half, U set all the way down.
	KERNEL=$KERNEL_64 INITRD=$INITRD_64
	start_qemu qemu64 512 "vsyscall=emulate"
	wait_marker
	stop_when '[ "$CPL" = 3 ]'
	check_bits "$LONG CR4:!LA57:12"
	capture long4 "qemu64, 4-level paging, no PTI, vsyscall page mapped: stopped in user mode (CPL 3, RIP $RIP) in the busy 'sh -c while :; do echo x > /dev/null; done' loop, pid $(spin_pid); CR3 is its page table" \
		"0x0000800000000000 0xffff7ffffffff000 0x8000000000000000" "4K 2M"
}

guest_long5()
{
	local ucr3
	# 3G: the direct map then has a 1G page (1G..2G is all RAM), and the pc
	# machine still keeps all of it below 4G, one flat range from GPA 0.
	# nokaslr keeps the kernel image (whose direct-map alias is split into
	# small pages) out of that gigabyte.
	KERNEL=$KERNEL_64 INITRD=$INITRD_64
	start_qemu max 3072 "pti=on nokaslr"
	wait_marker
	grep -aq 'page tables isolation: enabled' "$WORK/serial.log" ||
		die "the kernel did not enable page table isolation"
	stop_when '[ "$CPL" = 3 ]'
	check_bits "$LONG CR4:LA57:12 CR4:SMEP:20 CR4:SMAP:21 CR4:PKE:22"
	ucr3=$CR3
	(( ucr3 & 0x1000 )) || die "user-mode CR3=$CR3 is not a PTI user table"
	capture long5-user "max, 5-level paging, SMEP+SMAP+PKE, PTI: stopped in user mode (CPL 3, RIP $RIP) in the busy sh loop, pid $(spin_pid); CR3 is its PTI user page table" \
		"0x0100000000000000 0xfeffffffffff0000 0x0000800000000000" "4K 2M"
	mon cont > /dev/null
	# Same process, kernel half: PTI puts the kernel table right below.
	stop_when '[ "$CPL" = 0 ] && [ "$HLT" = 0 ] && (( CR3 == (ucr3 & ~0x1000) ))'
	check_bits "$LONG CR4:LA57:12 CR4:SMEP:20 CR4:SMAP:21 CR4:PKE:22"
	capture long5 "max, 5-level paging, SMEP+SMAP+PKE, PTI: stopped in kernel mode (CPL 0, RIP $RIP) while running the busy sh loop, pid $(spin_pid); CR3 is its kernel page table (user half NX at the top level)" \
		"0x0100000000000000 0xfeffffffffff0000 0x0000800000000000" "4K 2M 1G"
}

# The 32-bit kernels: legacy 2-level paging with 4M pages (686 has no PAE),
# and PAE paging with NX, SMEP and SMAP (686-pae on -cpu max).
guest_legacy()
{
	KERNEL=$KERNEL_686 INITRD=$INITRD_32
	start_qemu qemu64 512 ""
	wait_marker
	stop_when '[ "$CPL" = 3 ]'
	check_bits "CR0:WP:16 CR4:PSE:4 CR4:!PAE:5 EFER:!LMA:10"
	capture legacy "qemu64, 32-bit kernel, 2-level (non-PAE) paging with 4M pages: stopped in user mode (CPL 3, RIP $RIP) in the busy sh loop, pid $(spin_pid); CR3 is its page table" \
		"" "4K 4M"
}

guest_pae()
{
	KERNEL=$KERNEL_PAE INITRD=$INITRD_32
	start_qemu max 512 ""
	wait_marker
	stop_when '[ "$CPL" = 3 ]'
	check_bits "CR0:WP:16 CR4:PAE:5 CR4:SMEP:20 CR4:SMAP:21 EFER:!LMA:10 EFER:NXE:11"
	capture pae "max, 32-bit kernel, PAE paging, NX+SMEP+SMAP: stopped in user mode (CPL 3, RIP $RIP) in the busy sh loop, pid $(spin_pid); CR3 is its page table" \
		"" "4K 2M"
}

# The page-sharing images: four guests booted to the marker, stopped, RAM
# copied. The mix is the one a host of small VMs sees: the amd64 kernel
# twice (on qemu64 and on max: the same kernel and initramfs, but the boot
# patches its code for the CPU's features (alternatives) and KASLR places
# it anew, so not every page matches), and the 686 and 686-pae kernels (a
# kernel of their own each, sharing with the others mostly the i386
# busybox and zero-filled memory). Four boots of one kernel would only
# measure KASLR; this mix gives sharing within a guest, between identical
# kernels and between different ones. No kernel options but the console.
dedup_one()
{
	local n=$1 cpu=$2 what=$3 dir
	start_qemu "$cpu" 256 ""
	wait_marker
	mon stop > /dev/null
	dir=$OUT/dedup-$n
	rm -rf "$dir"
	mkdir -p "$dir"
	cp --sparse=always "$WORK/ram" "$dir/ram.img"
	echo "$what, -cpu $cpu, 256M, no kernel options but the serial console: stopped right after the init's marker line ($(grep -a 'MEMVISOR-READY' "$WORK/serial.log" | tr -d '\r'))" \
		> "$dir/about.txt"
	quit_qemu
	touch "$dir/done"
	log "capture dedup-$n: $(cat "$dir/about.txt")"
}

guest_dedup()
{
	KERNEL=$KERNEL_64 INITRD=$INITRD_64
	dedup_one 1 qemu64 "amd64 cloud kernel $(basename "$KERNEL")"
	dedup_one 2 max "amd64 cloud kernel $(basename "$KERNEL")"
	KERNEL=$KERNEL_686 INITRD=$INITRD_32
	dedup_one 3 qemu64 "i386 kernel $(basename "$KERNEL")"
	KERNEL=$KERNEL_PAE INITRD=$INITRD_32
	dedup_one 4 max "i386 kernel $(basename "$KERNEL")"
}

quit_qemu()
{
	printf 'quit\n' | timeout 10 socat - "UNIX-CONNECT:$WORK/mon.sock" > /dev/null 2>&1 || true
	wait "$QEMU_PID" 2>/dev/null || true
	QEMU_PID=
	[ -n "${MV_REAL_KEEP:-}" ] || rm -rf "$WORK"
	WORK=
}

main()
{
	local guest=${1:-}
	case " $REAL_GUESTS dedup " in *" $guest "*) ;; *) die "usage: boot.sh <one of: $REAL_GUESTS dedup>" ;; esac
	need_cmd qemu-system-x86_64 socat timeout
	[ -s "$CACHE/guest.env" ] || die "no guest: run tests/real/fetch.sh first"
	# shellcheck disable=SC1091
	. "$CACHE/guest.env"
	if [ "$guest" = dedup ]; then OUT=$(dedup_root); else OUT=$(capture_root); fi
	mkdir -p "$OUT"
	"guest_$guest"
	[ -z "$QEMU_PID" ] || quit_qemu
}

main "$@"
