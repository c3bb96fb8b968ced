/* Walker speed.
 *   mmu.walk4_read: a 4-level walk of a mapped 4 KiB page (A already set,
 *     tables in cache), ns per walk; baseline: the same four dependent
 *     loads of the same entries, done inline.
 *   mmu.walk4_write: the same for a write (D already set).
 *   mmu.walk4_read_vm: the read walk with the tables in a VM's
 *     guest-physical memory (mv_gmem_vm_init); baseline: mmu.walk4_read.
 *   mmu.dump_long4 / mmu.dump_long5: mv_walk_dump of a synthetic Linux-like
 *     address space (user 4 KiB pages, a 2 MiB-page direct map, kernel
 *     text, vmalloc), ms per dump; baseline: a plain scan reading every
 *     entry of the same tables with nested loops (no rules, no callback).
 *   mmu.dump_empty64: a table shared by 64 top-level entries, over 511
 *     children holding 66 pointers each to distinct empty tables (33,726
 *     beyond the image, 34,237 distinct empty tables in all), 4-level, ms
 *     per dump; baseline mmu.dump_empty1: the same with one top-level
 *     entry (every table scanned once). Bounded by the output means a
 *     ratio near 1; a memo that forgets empty tables rescans them on
 *     every path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/mmu.h>
#include <memvisor/vm.h>

#include "bench.h"

#define IMAGE_SIZE (32u << 20)
#define TBL (MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A)
#define ADDR 0x000ffffffffff000ull

static uint64_t *image;
static uint64_t next_table;

static uint64_t alloc_table(void)
{
	uint64_t gpa = next_table;

	next_table += 4096;
	if (next_table > IMAGE_SIZE) {
		fprintf(stderr, "bench_walk: image too small\n");
		exit(1);
	}
	return gpa;
}

static uint64_t *entry(uint64_t table, unsigned idx)
{
	return &image[table / 8 + idx];
}

/* Map va -> gpa with a leaf at `leaf_level` (1 = 4 KiB), creating tables
 * below the root as needed. */
static void map(uint64_t root, unsigned levels, uint64_t va, uint64_t gpa,
		unsigned leaf_level, uint64_t flags)
{
	uint64_t table = root;

	for (unsigned level = levels; level > leaf_level; level--) {
		uint64_t *e = entry(table, (va >> (12 + 9 * (level - 1))) & 511);

		if (!(*e & MV_PTE_P))
			*e = alloc_table() | TBL;
		table = *e & ADDR;
	}
	*entry(table, (va >> (12 + 9 * (leaf_level - 1))) & 511) =
		gpa | flags | (leaf_level > 1 ? MV_PTE_PS : 0);
}

/* A Linux-like layout: 256 processes' worth of user pages are folded into
 * one big user range (200k 4 KiB pages), a 4 GiB direct map in 2 MiB
 * pages, 32 MiB of kernel text in 2 MiB pages, 16 MiB of vmalloc in 4 KiB
 * pages. Returns the number of leaves. */
static unsigned build_space(uint64_t root, unsigned levels)
{
	uint64_t hi = levels == 5 ? 0xff00000000000000ull : 0xffff000000000000ull;
	uint64_t user = MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A | MV_PTE_D;
	uint64_t kern = MV_PTE_P | MV_PTE_W | MV_PTE_A | MV_PTE_D | MV_PTE_G;
	unsigned n = 0;

	for (uint64_t i = 0; i < 200000; i++, n++)
		map(root, levels, 0x400000 + i * 4096 + (i / 512) * (1u << 21),
		    0x10000000 + i * 4096, 1, user | MV_PTE_NX);
	for (uint64_t i = 0; i < 2048; i++, n++)
		map(root, levels, hi | 0x888000000000ull | i << 21, i << 21, 2,
		    kern | MV_PTE_NX);
	for (uint64_t i = 0; i < 16; i++, n++)
		map(root, levels, 0xffffffff80000000ull | i << 21,
		    0x1000000 + (i << 21), 2, kern);
	for (uint64_t i = 0; i < 4096; i++, n++)
		map(root, levels, hi | 0xc90000000000ull | i << 12,
		    0x20000000 + i * 4096, 1, kern | MV_PTE_NX);
	return n;
}

static double walk_ns(const struct mv_paging *pg, const struct mv_gmem *gm,
		      const uint64_t *vas, unsigned nva, unsigned acc)
{
	const unsigned rounds = 2000000;
	struct mv_walk w;
	uint64_t sum = 0, t0 = bench_now_ns();

	for (unsigned i = 0; i < rounds; i++) {
		mv_walk(pg, gm, vas[i & (nva - 1)], acc, &w);
		sum += w.gpa;
	}
	bench_sink(sum);
	return (double)(bench_now_ns() - t0) / rounds;
}

/* The baseline: four dependent loads of the same entries. */
static double loads_ns(uint64_t root, const uint64_t *vas, unsigned nva)
{
	const unsigned rounds = 2000000;
	uint64_t sum = 0, t0 = bench_now_ns();

	for (unsigned i = 0; i < rounds; i++) {
		uint64_t va = vas[i & (nva - 1)], t = root, e = 0;

		for (int shift = 39; shift >= 12; shift -= 9) {
			e = *(volatile uint64_t *)entry(t, (va >> shift) & 511);
			t = e & ADDR;
		}
		sum += t | (va & 4095);
	}
	bench_sink(sum);
	return (double)(bench_now_ns() - t0) / rounds;
}

struct counted {
	uint64_t sum, n;
};

static int count_leaf(void *opaque, const struct mv_walk_leaf *l)
{
	struct counted *c = opaque;

	c->sum += l->gpa;
	c->n++;
	return 0;
}

static uint64_t scan_table(uint64_t table, unsigned level)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < 512; i++) {
		uint64_t e = *entry(table, i);

		if (!(e & MV_PTE_P))
			continue;
		if (level == 1 || (e & MV_PTE_PS))
			sum += e;
		else
			sum += scan_table(e & ADDR, level - 1);
	}
	return sum;
}

static void bench_dump(const char *name, unsigned levels)
{
	struct mv_gmem gm;
	struct mv_gmem_flat flat;
	struct mv_paging pg;
	struct mv_cpu_regs r = {
		.cr0 = MV_CR0_PG | MV_CR0_PE | MV_CR0_WP, .cr3 = 0x1000,
		.cr4 = MV_CR4_PAE | (levels == 5 ? MV_CR4_LA57 : 0),
		.efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE };
	double best = 1e30, base = 1e30;
	struct counted c = { 0, 0 };
	uint64_t sum = 0;
	char label[64];

	memset(image, 0, IMAGE_SIZE);
	next_table = 0x2000;
	unsigned leaves = build_space(0x1000, levels);

	mv_gmem_flat_init(&gm, &flat, image, 0, IMAGE_SIZE, false);
	mv_paging_init(&pg, &r, NULL, &gm);
	for (int rep = 0; rep < 5; rep++) {
		uint64_t t0 = bench_now_ns();

		c.n = 0;
		mv_walk_dump(&pg, &gm, count_leaf, &c);
		uint64_t t1 = bench_now_ns();

		if (c.n != leaves) {
			fprintf(stderr, "bench_walk: dump found %llu of %u "
				"leaves\n", (unsigned long long)c.n, leaves);
			exit(1);
		}

		sum += scan_table(0x1000, levels);
		uint64_t t2 = bench_now_ns();

		best = (t1 - t0) / 1e6 < best ? (t1 - t0) / 1e6 : best;
		base = (t2 - t1) / 1e6 < base ? (t2 - t1) / 1e6 : base;
	}
	bench_sink(sum + c.sum);
	snprintf(label, sizeof(label), "mmu.%s_scan", name);
	char full[64];
	snprintf(full, sizeof(full), "mmu.%s", name);
	bench_report_vs(full, best, "ms", label, base);
	fprintf(stderr, "# %s: %u leaves, %llu KiB of tables\n", name, leaves,
		(unsigned long long)(next_table - 0x1000) / 1024);
}

/* The same walks with the tables in a VM's guest-physical memory. */
static double walk_vm_ns(const struct mv_cpu_regs *r, const uint64_t *vas,
			 unsigned nva)
{
	struct mv_vm_range ram = { .type = MV_PAGE_RAM, .size = IMAGE_SIZE,
				   .name = "ram" };
	struct mv_vm_config cfg = { .ranges = &ram, .nranges = 1 };
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_gmem gm;
	struct mv_paging pg;
	double ns;

	if (mv_host_create(NULL, &host) || mv_vm_create(host, &cfg, &vm) ||
	    mv_vm_phys_write(vm, 0, image, next_table) ||
	    mv_gmem_vm_init(&gm, vm) || mv_paging_init(&pg, r, NULL, &gm)) {
		fprintf(stderr, "bench_walk: VM setup failed\n");
		exit(1);
	}
	ns = walk_ns(&pg, &gm, vas, nva, MV_ACC_USER);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
	return ns;
}

static void bench_walks(void)
{
	struct mv_gmem gm;
	struct mv_gmem_flat flat;
	struct mv_paging pg;
	struct mv_cpu_regs r = {
		.cr0 = MV_CR0_PG | MV_CR0_PE | MV_CR0_WP, .cr3 = 0x1000,
		.cr4 = MV_CR4_PAE, .efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE };
	uint64_t vas[64];

	memset(image, 0, IMAGE_SIZE);
	next_table = 0x2000;
	for (unsigned i = 0; i < 64; i++) {
		vas[i] = 0x7f0000000000ull + (uint64_t)i * 0x40201000ull;
		map(0x1000, 4, vas[i], 0x100000 + i * 4096, 1,
		    MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A | MV_PTE_D);
	}
	mv_gmem_flat_init(&gm, &flat, image, 0, IMAGE_SIZE, true);
	mv_paging_init(&pg, &r, NULL, &gm);
	double base = loads_ns(0x1000, vas, 64);
	double rd = walk_ns(&pg, &gm, vas, 64, MV_ACC_USER);
	double wr = walk_ns(&pg, &gm, vas, 64, MV_ACC_USER | MV_ACC_WRITE);

	bench_report_vs("mmu.walk4_read", rd, "ns", "mmu.walk4_4loads", base);
	bench_report_vs("mmu.walk4_write", wr, "ns", "mmu.walk4_4loads", base);
	bench_report_vs("mmu.walk4_read_vm", walk_vm_ns(&r, vas, 64), "ns",
			"mmu.walk4_read", rd);
}

/* The tree of tests/mmu/test_walk_dump.c in `image`; @paths top-level
 * entries into the shared table. */
static void build_empty_tree(unsigned paths)
{
	uint64_t idx = 0;

	memset(image, 0, 4u << 20);
	for (unsigned i = 0; i < paths; i++)
		image[0x1000 / 8 + i] = 0x2000 | TBL;
	image[0x2000 / 8] = 0x3000 | TBL;
	image[0x3000 / 8] = 0x40000000 | TBL | MV_PTE_PS;
	for (unsigned j = 1; j < 512; j++) {
		uint64_t c = 0x10000 + j * 0x1000ull;

		image[0x2000 / 8 + j] = c | TBL;
		for (unsigned k = 0; k < 66; k++, idx++)
			image[c / 8 + k] = ((1ull << 51) | (idx << 20)) | TBL;
	}
}

static double dump_empty_ms(unsigned paths)
{
	struct mv_cpu_regs r = {
		.cr0 = MV_CR0_PG | MV_CR0_PE, .cr3 = 0x1000, .cr4 = MV_CR4_PAE,
		.efer = MV_EFER_LME | MV_EFER_LMA };
	struct mv_cpu_model cpu = { .maxphyaddr = 52 };
	struct mv_gmem gm;
	struct mv_gmem_flat flat;
	struct mv_paging pg;
	struct counted c = { 0, 0 };
	double best = 1e30;

	build_empty_tree(paths);
	mv_gmem_flat_init(&gm, &flat, image, 0, 4u << 20, false);
	mv_paging_init(&pg, &r, &cpu, &gm);
	for (int rep = 0; rep < 5; rep++) {
		uint64_t t0 = bench_now_ns();

		c.n = 0;
		mv_walk_dump(&pg, &gm, count_leaf, &c);
		double ms = (bench_now_ns() - t0) / 1e6;

		if (c.n != paths) {
			fprintf(stderr, "bench_walk: empty-table dump found "
				"%llu leaves, not %u\n",
				(unsigned long long)c.n, paths);
			exit(1);
		}
		best = ms < best ? ms : best;
	}
	bench_sink(c.sum);
	return best;
}

int main(void)
{
	image = aligned_alloc(4096, IMAGE_SIZE);
	if (!image)
		return 1;
	bench_walks();
	bench_dump("dump_long4", 4);
	bench_dump("dump_long5", 5);
	double one = dump_empty_ms(1);
	bench_report_vs("mmu.dump_empty64", dump_empty_ms(64), "ms",
			"mmu.dump_empty1", one);
	free(image);
	return 0;
}
