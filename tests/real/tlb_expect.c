/*
 * tlb_expect: turns QEMU's `info tlb` into what `memvisor walk --dump` must
 * print for the same page table.
 *
 *   tlb_expect IMAGE CR3 CR4 EFER [PROBES] < tlb.txt > expected.txt
 *
 * QEMU lists every present leaf with the leaf entry's own bits, and says
 * nothing about the page size beyond 'P'. The walker prints the page size
 * and the EFFECTIVE X/U/W over all paging levels. So for each QEMU line
 * this program reads the entries above that leaf from the RAM image (the
 * guest's memory at the instant QEMU printed its table) and derives:
 *   size        from the level the leaf sits at
 *   X           QEMU's X, or NX in any entry above
 *   U, W        QEMU's U/W, and U/W in every entry above
 *   G P D A C T QEMU's letters, unchanged (leaf-only bits in both)
 * It checks that the leaf it reaches is the one QEMU printed (address under
 * QEMU's masks, all nine bits) so a capture whose image and table disagree
 * is rejected rather than compared. Long mode only (4- and 5-level), which
 * is what a 64-bit Linux guest runs. A summary goes to stderr.
 *
 * With PROBES, it also writes one line per leaf in the form of the gva2gpa
 * samples ("<va> <page va> <gpa>"), for a VA at a scattered offset inside
 * the page, so that single-VA walks can be checked on every leaf.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#define ADDR_MASK 0x3fffffffff000ULL	/* QEMU's table/4K frame mask */
#define MASK_2M 0x3ffffffe00000ULL	/* QEMU's 2M frame mask */
#define MASK_1G 0x3ffffc0000000ULL	/* QEMU's 1G frame mask */
#define PTE_P (1ULL << 0)
#define PTE_W (1ULL << 1)
#define PTE_U (1ULL << 2)
#define PTE_PS (1ULL << 7)
#define PTE_NX (1ULL << 63)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LMA (1ULL << 10)

struct image {
	const uint8_t *base;
	uint64_t size;
};

struct leaf {
	uint64_t entry;
	int level;		/* 1 = PT (4K), 2 = PD (2M), 3 = PDPT (1G) */
	int nx_above, u_above, w_above;
};

static void fail(const char *what, const char *why)
{
	fprintf(stderr, "tlb_expect: %s: %s\n", what, why);
	exit(2);
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	errno = 0;
	uint64_t v = strtoull(s, &end, 16);
	if (errno || end == s || *end)
		fail(what, "not a hex number");
	return v;
}

static void map_image(const char *path, struct image *img)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st) < 0)
		fail(path, strerror(errno));
	img->size = (uint64_t)st.st_size;
	img->base = mmap(NULL, img->size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (img->base == MAP_FAILED)
		fail(path, strerror(errno));
	close(fd);
}

static uint64_t read_entry(const struct image *img, uint64_t gpa, uint64_t va)
{
	uint64_t e;
	if (gpa > img->size - 8) {
		fprintf(stderr, "tlb_expect: va 0x%016" PRIx64 ": table entry at "
			"gpa 0x%" PRIx64 " is outside the image\n", va, gpa);
		exit(2);
	}
	memcpy(&e, img->base + gpa, 8);	/* x86 guest: little endian */
	return e;
}

/* Walks to the leaf QEMU printed for va, collecting the rights above it. */
static struct leaf find_leaf(const struct image *img, uint64_t cr3, int levels,
			     uint64_t va)
{
	struct leaf l = { .nx_above = 0, .u_above = 1, .w_above = 1 };
	uint64_t table = cr3 & ADDR_MASK;
	for (int level = levels; level >= 1; level--) {
		unsigned idx = (unsigned)(va >> (12 + 9 * (level - 1))) & 511;
		uint64_t e = read_entry(img, table + idx * 8, va);
		if (!(e & PTE_P)) {
			fprintf(stderr, "tlb_expect: va 0x%016" PRIx64 ": level %d "
				"entry not present, yet QEMU lists it\n", va, level);
			exit(2);
		}
		if (level == 1 || ((level == 2 || level == 3) && (e & PTE_PS))) {
			l.entry = e;
			l.level = level;
			return l;
		}
		l.nx_above |= !!(e & PTE_NX);
		l.u_above &= !!(e & PTE_U);
		l.w_above &= !!(e & PTE_W);
		table = e & ADDR_MASK;
	}
	return l;	/* not reached: level 1 always returns */
}

/* QEMU's print_pte letters for a leaf entry (PS hidden at level 1). */
static void qemu_letters(const struct leaf *l, char out[10])
{
	static const struct { int bit; char c; } bits[9] = {
		{ 63, 'X' }, { 8, 'G' }, { 7, 'P' }, { 6, 'D' }, { 5, 'A' },
		{ 4, 'C' }, { 3, 'T' }, { 2, 'U' }, { 1, 'W' },
	};
	uint64_t e = l->level == 1 ? l->entry & ~PTE_PS : l->entry;
	for (int i = 0; i < 9; i++)
		out[i] = (e >> bits[i].bit) & 1 ? bits[i].c : '-';
	out[9] = 0;
}

static const char *const size_name[4] = { "", "4K", "2M", "1G" };
static const uint64_t frame_mask[4] = { 0, ADDR_MASK, MASK_2M, MASK_1G };

struct counts {
	unsigned long leaves, x_above, u_above, w_above;
};

static void expect_line(const struct image *img, uint64_t cr3, int levels,
			const char *line, struct counts *n, FILE *probes)
{
	char vas[32], gpas[32], flags[16], want[10];
	if (sscanf(line, "%31[0-9a-f]: %31[0-9a-f] %15s", vas, gpas, flags) != 3 ||
	    strlen(flags) != 9)
		fail("info tlb line", line);
	uint64_t va = parse_u64(vas, "va"), gpa = parse_u64(gpas, "gpa");
	struct leaf l = find_leaf(img, cr3, levels, va);
	qemu_letters(&l, want);
	if (strcmp(want, flags) || (l.entry & frame_mask[l.level]) != gpa) {
		fprintf(stderr, "tlb_expect: va 0x%016" PRIx64 ": QEMU printed "
			"%s %s, the image has entry 0x%016" PRIx64 "\n", va, gpas,
			flags, l.entry);
		exit(2);
	}
	n->leaves++;
	if (l.nx_above && flags[0] != 'X') {
		flags[0] = 'X';
		n->x_above++;
	}
	if (!l.u_above && flags[7] == 'U') {
		flags[7] = '-';
		n->u_above++;
	}
	if (!l.w_above && flags[8] == 'W') {
		flags[8] = '-';
		n->w_above++;
	}
	printf("0x%016" PRIx64 ": 0x%016" PRIx64 " %s %s\n", va, gpa,
	       size_name[l.level], flags);
	if (probes) {
		/* One VA somewhere inside the page, scattered by a hash. */
		uint64_t size = 1ULL << (12 + 9 * (l.level - 1));
		uint64_t off = ((va >> 12) * 0x9e3779b97f4a7c15ULL >> 24) & (size - 1);
		fprintf(probes, "0x%016" PRIx64 " 0x%016" PRIx64 " 0x%" PRIx64 "\n",
			va + off, va, gpa + off);
	}
}

int main(int argc, char **argv)
{
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: tlb_expect IMAGE CR3 CR4 EFER [PROBES] < tlb.txt\n");
		return 2;
	}
	struct image img;
	map_image(argv[1], &img);
	uint64_t cr3 = parse_u64(argv[2], "CR3"), cr4 = parse_u64(argv[3], "CR4");
	uint64_t efer = parse_u64(argv[4], "EFER");
	if (!(cr4 & CR4_PAE) || !(efer & EFER_LMA))
		fail(argv[3], "not long mode (CR4.PAE and EFER.LMA needed)");
	int levels = cr4 & CR4_LA57 ? 5 : 4;
	struct counts n = { 0 };
	FILE *probes = NULL;
	if (argc == 6 && !(probes = fopen(argv[5], "w")))
		fail(argv[5], strerror(errno));
	char line[256];
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (*line)
			expect_line(&img, cr3, levels, line, &n, probes);
	}
	if (probes && fclose(probes))
		fail(argv[5], strerror(errno));
	fprintf(stderr, "tlb_expect: %lu leaves, %d-level paging; rights restricted "
		"above the leaf: X %lu, U %lu, W %lu\n", n.leaves, levels,
		n.x_above, n.u_above, n.w_above);
	return 0;
}
