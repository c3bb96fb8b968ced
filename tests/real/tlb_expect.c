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
 *   address     the page's physical address: QEMU prints the entry under
 *               masks that keep bits 63:52 in PAE mode and drop the PSE-36
 *               bits of a 4M page
 * It checks that the leaf it reaches is the one QEMU printed (address under
 * QEMU's masks, all nine bits) so a capture whose image and table disagree
 * is rejected rather than compared. 32-bit, PAE, 4- and 5-level paging (the
 * mode from CR4 and EFER; paging is on, or QEMU prints no table). A summary
 * goes to stderr.
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

/* QEMU's masks (target/i386/monitor.c) and the architectural frame masks. */
#define QEMU_ADDR 0x3fffffffff000ULL	/* long mode tables and 4K frames */
#define QEMU_2M 0x3ffffffe00000ULL
#define QEMU_1G 0x3ffffc0000000ULL
#define FRAME_4K 0x000ffffffffff000ULL
#define FRAME_2M 0x000fffffffe00000ULL
#define FRAME_1G 0x000fffffc0000000ULL
#define PTE_P (1ULL << 0)
#define PTE_W (1ULL << 1)
#define PTE_U (1ULL << 2)
#define PTE_PS (1ULL << 7)
#define PTE_NX (1ULL << 63)
#define CR4_PSE (1ULL << 4)
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)
#define EFER_LMA (1ULL << 10)

enum kind { LEGACY, PAE, LONG };

struct mode {
	enum kind kind;
	int levels;		/* 2 legacy, 3 PAE, 4 or 5 long */
	int esize, bits;	/* entry bytes, index bits per level */
	int pse;		/* legacy: CR4.PSE makes 4M leaves */
	uint64_t root;		/* top-level table (or PDPT) address */
};

struct image {
	const uint8_t *base;
	uint64_t size;
};

struct leaf {
	uint64_t entry;
	int level;		/* 1 = PT, 2 = PD, 3 = PDPT (long mode) */
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

static struct mode decode_mode(uint64_t cr3, uint64_t cr4, uint64_t efer)
{
	struct mode m = { .esize = 8, .bits = 9 };
	if (efer & EFER_LMA) {
		if (!(cr4 & CR4_PAE))
			fail("registers", "EFER.LMA without CR4.PAE");
		m.kind = LONG;
		m.levels = cr4 & CR4_LA57 ? 5 : 4;
		m.root = cr3 & QEMU_ADDR;
	} else if (cr4 & CR4_PAE) {
		m.kind = PAE;
		m.levels = 3;
		m.root = cr3 & 0xffffffe0;
	} else {
		m.kind = LEGACY;
		m.levels = 2;
		m.esize = 4;
		m.bits = 10;
		m.pse = !!(cr4 & CR4_PSE);
		m.root = cr3 & 0xfffff000;
	}
	return m;
}

static uint64_t read_entry(const struct image *img, const struct mode *m,
			   uint64_t gpa, uint64_t va)
{
	uint64_t e = 0;
	if (img->size < 8 || gpa > img->size - 8) {
		fprintf(stderr, "tlb_expect: va 0x%016" PRIx64 ": table entry at "
			"gpa 0x%" PRIx64 " is outside the image\n", va, gpa);
		exit(2);
	}
	memcpy(&e, img->base + gpa, m->esize);	/* little endian guest */
	return e;
}

static int is_leaf(const struct mode *m, int level, uint64_t e)
{
	if (level == 1)
		return 1;
	if (!(e & PTE_PS))
		return 0;
	switch (m->kind) {
	case LEGACY: return m->pse;
	case PAE: return level == 2;
	case LONG: return level <= 3;
	}
	return 0;
}

/* Walks to the leaf QEMU printed for va, collecting the rights above it
 * (PAE's PDPTEs carry none). */
static struct leaf find_leaf(const struct image *img, const struct mode *m,
			     uint64_t va)
{
	struct leaf l = { .nx_above = 0, .u_above = 1, .w_above = 1 };
	uint64_t table = m->root;
	for (int level = m->levels; level >= 1; level--) {
		int shift = 12 + m->bits * (level - 1);
		uint64_t idx = (va >> shift) & ((1u << m->bits) - 1);
		uint64_t e = read_entry(img, m, table + idx * m->esize, va);
		if (!(e & PTE_P)) {
			fprintf(stderr, "tlb_expect: va 0x%016" PRIx64 ": level %d "
				"entry not present, yet QEMU lists it\n", va, level);
			exit(2);
		}
		if (is_leaf(m, level, e)) {
			l.entry = e;
			l.level = level;
			return l;
		}
		if (!(m->kind == PAE && level == 3)) {
			l.nx_above |= !!(e & PTE_NX);
			l.u_above &= !!(e & PTE_U);
			l.w_above &= !!(e & PTE_W);
		}
		table = m->kind == LEGACY ? e & 0xfffff000 : e & QEMU_ADDR;
	}
	return l;	/* not reached: level 1 always returns */
}

/* What QEMU's info tlb prints as the address of a leaf: its print_pte
 * masks, which in PAE mode keep bits 63:52 (NX included). */
static uint64_t qemu_addr(const struct mode *m, const struct leaf *l)
{
	uint64_t e = l->entry;
	switch (m->kind) {
	case LEGACY: return e & (l->level == 1 ? ~0xfffULL : ~0x1fffffULL);
	case PAE: return e & (l->level == 1 ? ~0xfffULL : ~0xfffffULL);
	case LONG: break;
	}
	return e & (l->level == 1 ? QEMU_ADDR : l->level == 2 ? QEMU_2M : QEMU_1G);
}

/* The page's physical address, as the architecture defines it (PSE-36
 * bits 20:13 of a 4M PDE are physical bits 39:32). */
static uint64_t frame(const struct mode *m, const struct leaf *l)
{
	uint64_t e = l->entry;
	if (m->kind == LEGACY)
		return l->level == 1 ? e & 0xfffff000 :
			(e & 0xffc00000) | ((e >> 13 & 0xff) << 32);
	return e & (l->level == 1 ? FRAME_4K : l->level == 2 ? FRAME_2M : FRAME_1G);
}

static const char *size_name(const struct mode *m, int level)
{
	static const char *const names[4] = { "", "4K", "2M", "1G" };
	return m->kind == LEGACY && level == 2 ? "4M" : names[level];
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

struct counts {
	unsigned long leaves, x_above, u_above, w_above;
};

static void expect_line(const struct image *img, const struct mode *m,
			const char *line, struct counts *n, FILE *probes)
{
	char vas[32], gpas[32], flags[16], want[10];
	if (sscanf(line, "%31[0-9a-f]: %31[0-9a-f] %15s", vas, gpas, flags) != 3 ||
	    strlen(flags) != 9)
		fail("info tlb line", line);
	uint64_t va = parse_u64(vas, "va"), gpa = parse_u64(gpas, "gpa");
	struct leaf l = find_leaf(img, m, va);
	qemu_letters(&l, want);
	if (strcmp(want, flags) || qemu_addr(m, &l) != gpa) {
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
	uint64_t base = frame(m, &l);
	printf("0x%016" PRIx64 ": 0x%016" PRIx64 " %s %s\n", va, base,
	       size_name(m, l.level), flags);
	if (probes) {
		/* One VA somewhere inside the page, scattered by a hash. */
		uint64_t size = 1ULL << (12 + m->bits * (l.level - 1));
		uint64_t off = ((va >> 12) * 0x9e3779b97f4a7c15ULL >> 24) & (size - 1);
		fprintf(probes, "0x%016" PRIx64 " 0x%016" PRIx64 " 0x%" PRIx64 "\n",
			va + off, va, base + off);
	}
}

int main(int argc, char **argv)
{
	static const char *const kind_name[] = { "32-bit", "PAE", "long-mode" };
	if (argc != 5 && argc != 6) {
		fprintf(stderr, "usage: tlb_expect IMAGE CR3 CR4 EFER [PROBES] < tlb.txt\n");
		return 2;
	}
	struct image img;
	map_image(argv[1], &img);
	struct mode m = decode_mode(parse_u64(argv[2], "CR3"),
				    parse_u64(argv[3], "CR4"),
				    parse_u64(argv[4], "EFER"));
	struct counts n = { 0 };
	FILE *probes = NULL;
	if (argc == 6 && !(probes = fopen(argv[5], "w")))
		fail(argv[5], strerror(errno));
	char line[256];
	while (fgets(line, sizeof(line), stdin)) {
		line[strcspn(line, "\n")] = 0;
		if (*line)
			expect_line(&img, &m, line, &n, probes);
	}
	if (probes && fclose(probes))
		fail(argv[5], strerror(errno));
	fprintf(stderr, "tlb_expect: %lu leaves, %d-level %s paging; rights "
		"restricted above the leaf: X %lu, U %lu, W %lu\n", n.leaves,
		m.levels, kind_name[m.kind], n.x_above, n.u_above, n.w_above);
	return 0;
}
