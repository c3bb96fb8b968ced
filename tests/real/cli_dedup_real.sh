#!/usr/bin/env bash
# ctest entry point (label "real"): `memvisor dedup` on the RAM of four
# freshly booted Debian guests (boot.sh dedup, cached with the other
# captures), against the exact outcome dedup_expect computes with memcmp:
#   cli_dedup_real.sh MEMVISOR
# For --cross-vm on, --cross-vm off and --zero-only, the one --json line
# must say exactly: the pages, zero pages and distinct non-zero contents of
# the images; host_pages = the sum over contents of ceil(k / 256) (k its
# copies over all images with --cross-vm on, within each image with off:
# the sharer limit is KSM's 256), or every non-zero page with --zero-only
# (the images are loaded without their zero pages, so nothing is left to
# reclaim); shared_guest_pages = the pages on a host page with more than
# one sharer; saved_pages = pages - host_pages; distinct_within_vms = the
# distinct contents of each image, summed; extra_copies = host_pages minus
# the distinct contents the mode can share (over all images with on,
# within each with off).
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -eq 1 ] || die "usage: cli_dedup_real.sh MEMVISOR"
MV=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
[ -x "$MV" ] || die "$1 is not an executable"

# The reference first, on images whose answer is known: 300 + 10 copies
# of one content, 2 + 1 of another, 257 of a third in one image (a rest
# of one copy stays private), zero pages in both.
selfcheck()
{
	local dir=$1 a=$1/a.img b=$1/b.img got
	page() { head -c 4096 /dev/zero | tr '\0' "$1"; }
	{ page x; page y; page '\0'; page y; for ((i = 0; i < 299; i++)); do page x; done; } > "$a"
	{ for ((i = 0; i < 10; i++)); do page x; done; page y; page '\0'; } > "$b"
	for ((i = 0; i < 257; i++)); do page z; done >> "$b"
	got=$(dedup_expect -x on "$a" "$b")
	[ "$got" = "pages=572 zero_pages=2 distinct_pages=3 host_pages=5 shared_guest_pages=569 distinct_within_images=5 images=2" ] ||
		die "dedup_expect -x on on known images: $got"
	got=$(dedup_expect -x off "$a" "$b")
	[ "$got" = "pages=572 zero_pages=2 distinct_pages=3 host_pages=7 shared_guest_pages=568 distinct_within_images=5 images=2" ] ||
		die "dedup_expect -x off on known images: $got"
	got=$(dedup_expect -m 1 "$a" "$b")
	[ "$got" = "pages=572 zero_pages=2 distinct_pages=3 host_pages=570 shared_guest_pages=0 distinct_within_images=5 images=2" ] ||
		die "dedup_expect -m 1 on known images: $got"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
selfcheck "$tmp"

lock_cache
list=$(dedup_images) || exit 1
mapfile -t IMGS <<< "$list"
for i in "${!IMGS[@]}"; do
	log "image $((i + 1)): $(cat "$(dirname "${IMGS[i]}")/about.txt")"
done

# field NAME LINE: the number of "NAME" in a JSON line.
field()
{
	local v
	v=$(sed -n "s/.*\"$1\": *\\([0-9][0-9.eE+-]*\\).*/\\1/p" <<< "$2")
	[ -n "$v" ] || die "no \"$1\" in: $2"
	echo "$v"
}

# kv NAME LINE: the value of NAME=... in dedup_expect's line.
kv() { sed -n "s/.*\\<$1=\\([0-9]*\\).*/\\1/p" <<< "$2"; }

status=0
check()
{
	local what=$1 name=$2 got=$3 want=$4
	if [ "$got" != "$want" ]; then
		log "FAIL $what: $name is $got, expected $want"
		status=1
	fi
}

# run_mode LABEL EXPECT_ARGS -- DEDUP_ARGS: one run of the command, checked.
run_mode()
{
	local label=$1 exp out lines pages zero distinct host shared within
	local best extra
	shift
	local -a eargs=()
	while [ "$1" != -- ]; do eargs+=("$1"); shift; done
	shift
	exp=$(dedup_expect "${eargs[@]}" "${IMGS[@]}") || die "dedup_expect failed"
	pages=$(kv pages "$exp") zero=$(kv zero_pages "$exp")
	distinct=$(kv distinct_pages "$exp") host=$(kv host_pages "$exp")
	shared=$(kv shared_guest_pages "$exp")
	within=$(kv distinct_within_images "$exp")
	out=$("$MV" dedup --json "$@" "${IMGS[@]}") ||
		die "$label: memvisor dedup --json $* failed (exit $?)"
	lines=$(grep -c . <<< "$out")
	[ "$lines" -eq 1 ] || die "$label: $lines lines, expected one JSON line: $out"
	check "$label" vms "$(field vms "$out")" "${#IMGS[@]}"
	check "$label" pages "$(field pages "$out")" "$pages"
	check "$label" zero_pages "$(field zero_pages "$out")" "$zero"
	check "$label" distinct_pages "$(field distinct_pages "$out")" "$distinct"
	check "$label" distinct_within_vms "$(field distinct_within_vms "$out")" "$within"
	check "$label" host_pages "$(field host_pages "$out")" "$host"
	check "$label" shared_guest_pages "$(field shared_guest_pages "$out")" "$shared"
	check "$label" saved_pages "$(field saved_pages "$out")" \
		"$(( $(field pages "$out") - $(field host_pages "$out") ))"
	# What sharing could do at best in this mode, and the extra copies
	# the sharer limit adds to it.
	case $label in
	*on) best=$distinct extra=$((host - distinct)) ;;
	*off) best=$within extra=$((host - within)) ;;
	*) best=$((pages - zero)) extra=0 ;;
	esac
	[ "$label" = zero-only ] ||
		check "$label" extra_copies "$(field extra_copies "$out")" "$extra"
	log "$label: $pages pages, $zero zero, $distinct distinct non-zero" \
		"contents ($within within each image); expected host_pages $host" \
		"= $best + $extra copies for the sharer limit of 256," \
		"shared_guest_pages $shared; memvisor: host_pages" \
		"$(field host_pages "$out"), shared_guest_pages" \
		"$(field shared_guest_pages "$out"), saved $(field saved_pages "$out")," \
		"scan $(field cpu_s "$out") s CPU, $(field wall_s "$out") s wall"
	echo "$out"
}

run_mode "cross-vm on" -x on -- --cross-vm on
run_mode "cross-vm off" -x off -- --cross-vm off
run_mode zero-only -m 1 -- --zero-only
[ "$status" -eq 0 ] || die "memvisor dedup misses the exact outcome (above)"
log "ok: memvisor dedup leaves exactly the expected host pages"
