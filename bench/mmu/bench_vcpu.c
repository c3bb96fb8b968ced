/* The shadow MMU's speed and size, each figure against a baseline measured
 * in the same run. The guests are 4-level long-mode page tables built in a
 * buffer and loaded into a VM by populate (all-zero pages stay ZERO), with
 * a kernel window: VA KWIN + gpa maps guest RAM in 2 MiB pages, through
 * which the model OS edits its own page tables with vCPU writes.
 *
 *   mmu.tlb_hit: the inline mv_tlb_lookup hit (and a load of 8 bytes);
 *     baseline mmu.walk4_vm: mv_walk on the same tables in the VM.
 *   mmu.tlb_hit_read: mv_vcpu_read of 8 bytes on a TLB hit; baseline the
 *     same walk.
 *   mmu.shadow_fill: translate of a fresh page with the shadow empty below
 *     the root (three shadow tables and the leaf to build); baseline the
 *     walk of the same VAs. mmu.shadow_fill_leaf: a fresh page whose
 *     shadow PT exists (only the leaf to fill).
 *   mmu.cr3_switch: a MOV to CR3 between two address spaces and 16 reads
 *     in the new one, roots cached; baseline mmu.cr3_switch_rebuild: the
 *     same after mv_mmu_zap_all before every switch.
 *   mmu.pte_write_emulated: mv_vcpu_write of one 8-byte PTE into a
 *     tracked guest page table; baseline mmu.write8_hit: mv_vcpu_write of
 *     8 bytes to a data page on a TLB hit.
 *   mmu.fork_copy / mmu.fork_cow: the model OS forks 1,000 writable pages
 *     (each parent PTE made read-only, the child PTE written) and then
 *     takes 1,000 COW write faults (copy the page through the kernel
 *     window, write the PTE, INVLPG, retry); baseline: the same bytes
 *     moved in plain host memory (mmu.fork_*_native).
 *   mmu.zap_all_resume: mv_mmu_zap_all of 100,000 shadow pages on one
 *     thread while a vCPU reads on another: time from the call until the
 *     vCPU has completed an access on a fresh root; baseline
 *     mmu.zap_all_reclaim: until the call returns (every obsolete page
 *     freed in batches). mmu.zap_all_max_stall: the vCPU's longest single
 *     access meanwhile.
 *   mmu.vcpu2_rate: accesses per second of 2 vCPU threads on disjoint
 *     pages (each access a TLB miss answered by the lockless shadow
 *     walk); baseline mmu.vcpu1_rate: 1 thread.
 *   mmu.shadow_bytes_per_page: shadow memory (mv_mmu_get_stats:
 *     metadata + shadow pages) per mapped 4 KiB guest page; baseline
 *     mmu.guest_table_bytes_per_page: the guest's own tables. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <memvisor/host.h>
#include <memvisor/mmu.h>
#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

#include "bench.h"

#define ADDR 0x000ffffffffff000ull
#define TBL (MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A)
#define UDATA (MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A | MV_PTE_D)
#define KDATA (MV_PTE_P | MV_PTE_W | MV_PTE_A | MV_PTE_D)
#define KWIN 0xffff888000000000ull
#define ROOT 0x1000ull

/* Single-thread figures are timed in the thread's CPU time: the machine
 * that produced the figures of docs/design.md is shared, and wall time
 * there counts other processes' turns. Figures of several threads (the
 * zap, 2 vCPUs against 1) are wall time. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct guest {
	uint8_t *ram;
	uint64_t ram_size, next_table, table_end;
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vcpu *cpu;
};

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_vcpu: %s: %s (%d)\n", what, mv_strerror(rc), rc);
	exit(1);
}

static uint64_t new_table(struct guest *g)
{
	uint64_t gpa = g->next_table;

	g->next_table += MV_PAGE_SIZE;
	if (g->next_table > g->table_end)
		die("out of guest table pages", -MV_ENOMEM);
	return gpa;
}

static uint64_t *pte(struct guest *g, uint64_t gpa)
{
	return (uint64_t *)(g->ram + gpa);
}

/* Map va -> gpa in the image with a leaf at @leaf_level; returns the gpa
 * of the leaf entry. */
static uint64_t map(struct guest *g, uint64_t root, uint64_t va, uint64_t gpa,
		    unsigned leaf_level, uint64_t flags)
{
	uint64_t table = root;

	for (unsigned level = 4; level > leaf_level; level--) {
		uint64_t eg = table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;

		if (!(*pte(g, eg) & MV_PTE_P))
			*pte(g, eg) = new_table(g) | TBL;
		table = *pte(g, eg) & ADDR;
	}
	uint64_t leaf = table + ((va >> (12 + 9 * (leaf_level - 1))) & 511) * 8;

	*pte(g, leaf) = gpa | flags | (leaf_level > 1 ? MV_PTE_PS : 0);
	return leaf;
}

/* An image of @ram_size bytes, tables from 0x1000 to @table_end, the
 * root at ROOT and the kernel window over all of RAM. */
static void guest_init(struct guest *g, uint64_t ram_size, uint64_t table_end)
{
	memset(g, 0, sizeof(*g));
	g->ram = calloc(1, ram_size);
	if (!g->ram)
		die("image", -MV_ENOMEM);
	g->ram_size = ram_size;
	g->next_table = ROOT + MV_PAGE_SIZE;
	g->table_end = table_end;
	for (uint64_t gpa = 0; gpa < ram_size; gpa += 2u << 20)
		map(g, ROOT, KWIN + gpa, gpa, 2, KDATA | MV_PTE_NX);
}

static bool page_is_zero(const uint8_t *p)
{
	static const uint8_t zero[MV_PAGE_SIZE];

	return !memcmp(p, zero, MV_PAGE_SIZE);
}

static void regs_long(struct mv_cpu_regs *r, uint64_t cr3)
{
	*r = (struct mv_cpu_regs){
		.cr0 = MV_CR0_PE | MV_CR0_PG | MV_CR0_WP, .cr3 = cr3,
		.cr4 = MV_CR4_PAE,
		.efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE };
}

/* Load the image into a VM (the restore path: populate the non-zero
 * pages), apply @mc, create a vCPU in long mode on ROOT. */
static void guest_load(struct guest *g, const struct mv_mmu_config *mc)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .size = g->ram_size,
				 .name = "ram" };
	struct mv_vm_config vc = { .ranges = &r, .nranges = 1 };
	struct mv_cpu_regs regs;
	int rc;

	if ((rc = mv_host_create(NULL, &g->host)) ||
	    (rc = mv_vm_create(g->host, &vc, &g->vm)))
		die("VM", rc);
	for (uint64_t gfn = 0; gfn < g->ram_size / MV_PAGE_SIZE; gfn++)
		if (!page_is_zero(g->ram + gfn * MV_PAGE_SIZE) &&
		    (rc = mv_vm_phys_populate(g->vm, gfn, 1,
					      g->ram + gfn * MV_PAGE_SIZE)))
			die("populate", rc);
	if (mc && (rc = mv_mmu_configure(g->vm, mc)))
		die("mv_mmu_configure", rc);
	if ((rc = mv_vcpu_create(g->vm, NULL, &g->cpu)))
		die("vCPU", rc);
	regs_long(&regs, ROOT);
	if ((rc = mv_vcpu_set_regs(g->cpu, &regs)))
		die("set_regs", rc);
}

static void guest_fini(struct guest *g)
{
	mv_vcpu_destroy(g->cpu);
	mv_vm_destroy(g->vm);
	mv_host_destroy(g->host);
	free(g->ram);
}

static void translate_ok(struct mv_vcpu *cpu, uint64_t va, unsigned acc,
			 int want)
{
	struct mv_xlate x;
	int rc = mv_vcpu_translate(cpu, va, acc, &x);

	if (rc != want)
		die("translate", rc < 0 ? rc : -MV_EINTERNAL);
}

static void read8(struct mv_vcpu *cpu, uint64_t va, unsigned acc, uint64_t *v)
{
	int rc = mv_vcpu_read(cpu, va, v, 8, acc, NULL);

	if (rc)
		die("mv_vcpu_read", rc < 0 ? rc : -MV_EINTERNAL);
}

static void write8(struct mv_vcpu *cpu, uint64_t va, unsigned acc, uint64_t v)
{
	int rc = mv_vcpu_write(cpu, va, &v, 8, acc, NULL);

	if (rc)
		die("mv_vcpu_write", rc < 0 ? rc : -MV_EINTERNAL);
}

/* mv_walk of @vas through the VM's memory, ns per walk. */
static double walk_ns(struct guest *g, const uint64_t *vas, unsigned nva,
		      unsigned rounds)
{
	struct mv_gmem gm;
	struct mv_paging pg;
	struct mv_cpu_regs r;
	struct mv_walk w;
	uint64_t sum = 0, t0;

	regs_long(&r, ROOT);
	if (mv_gmem_vm_init(&gm, g->vm) || mv_paging_init(&pg, &r, NULL, &gm))
		die("walker on the VM", -MV_EINTERNAL);
	t0 = cpu_ns();
	for (unsigned i = 0; i < rounds; i++) {
		mv_walk(&pg, &gm, vas[i % nva], MV_ACC_USER, &w);
		sum += w.gpa;
	}
	bench_sink(sum);
	return (double)(cpu_ns() - t0) / rounds;
}

/* ---- mmu.tlb_hit, mmu.tlb_hit_read, mmu.pte_write_emulated ------------- */

#define NVA 64
#define HOT_VA(i) (0x7f0000000000ull + (uint64_t)(i) * 0x40201000ull)
#define HOT_GPA(i) (0x800000ull + (uint64_t)(i) * MV_PAGE_SIZE)

static double tlb_inline_ns(struct guest *g, const uint64_t *vas)
{
	const unsigned rounds = 20000000;
	const struct mv_tlb *t = mv_vcpu_tlb(g->cpu);
	unsigned cls = mv_tlb_class(t, MV_ACC_USER);
	uint64_t sum = 0, t0 = cpu_ns();

	for (unsigned i = 0; i < rounds; i++) {
		const uint64_t *p = mv_tlb_lookup(t, vas[i & (NVA - 1)], cls,
						  MV_TLB_READ);

		if (!p)
			die("TLB miss in the hit loop", -MV_EINTERNAL);
		sum += *p;
	}
	bench_sink(sum);
	return (double)(cpu_ns() - t0) / rounds;
}

static double read_hit_ns(struct guest *g, const uint64_t *vas)
{
	const unsigned rounds = 5000000;
	uint64_t sum = 0, v, t0 = cpu_ns();

	for (unsigned i = 0; i < rounds; i++) {
		read8(g->cpu, vas[i & (NVA - 1)], MV_ACC_USER, &v);
		sum += v;
	}
	bench_sink(sum);
	return (double)(cpu_ns() - t0) / rounds;
}

static double write_hit_ns(struct guest *g, const uint64_t *vas)
{
	const unsigned rounds = 5000000;
	uint64_t t0 = cpu_ns();

	for (unsigned i = 0; i < rounds; i++)
		write8(g->cpu, vas[i & (NVA - 1)], MV_ACC_USER, i);
	return (double)(cpu_ns() - t0) / rounds;
}

/* Rewrite one PTE in each of the 64 tracked PTs through the kernel
 * window (emulated writes), then walk each again (untimed: the refault
 * also resets the table's write-flood count). */
static double pte_write_ns(struct guest *g, const uint64_t *vas,
			   const uint64_t *leaves)
{
	const unsigned rounds = 2000;
	uint64_t total = 0;

	for (unsigned r = 0; r < rounds; r++) {
		uint64_t t0 = cpu_ns();

		for (unsigned i = 0; i < NVA; i++)
			write8(g->cpu, KWIN + leaves[i], 0,
			       (HOT_GPA(i) + (r & 1) * 0x100000) | UDATA |
			       MV_PTE_NX);
		total += cpu_ns() - t0;
		for (unsigned i = 0; i < NVA; i++)
			translate_ok(g->cpu, vas[i], MV_ACC_USER, MV_VCPU_OK);
	}
	return (double)total / ((double)rounds * NVA);
}

static void bench_hits(void)
{
	struct guest g;
	struct mv_vcpu_stats st;
	struct mv_mmu_stats ms;
	uint64_t vas[NVA], leaves[NVA];

	guest_init(&g, 64u << 20, 0x400000);
	for (unsigned i = 0; i < NVA; i++) {
		vas[i] = HOT_VA(i);
		leaves[i] = map(&g, ROOT, vas[i], HOT_GPA(i), 1,
				UDATA | MV_PTE_NX);
		*pte(&g, HOT_GPA(i)) = i + 1;
		*pte(&g, HOT_GPA(i) + 0x100000) = i + 1;
	}
	guest_load(&g, NULL);
	for (unsigned i = 0; i < NVA; i++)
		translate_ok(g.cpu, vas[i], MV_ACC_USER | MV_ACC_WRITE,
			     MV_VCPU_OK);
	for (unsigned i = 0; i < NVA; i++)
		translate_ok(g.cpu, vas[i], MV_ACC_USER, MV_VCPU_OK);
	double walk = walk_ns(&g, vas, NVA, 2000000);
	double hit = tlb_inline_ns(&g, vas);
	double rd = read_hit_ns(&g, vas);
	double wr = write_hit_ns(&g, vas);
	double pw = pte_write_ns(&g, vas, leaves);

	bench_report_vs("mmu.tlb_hit", hit, "ns", "mmu.walk4_vm", walk);
	bench_report_vs("mmu.tlb_hit_read", rd, "ns", "mmu.walk4_vm", walk);
	bench_report_vs("mmu.pte_write_emulated", pw, "ns", "mmu.write8_hit",
			wr);
	mv_vcpu_get_stats(g.cpu, &st);
	mv_mmu_get_stats(g.vm, &ms);
	fprintf(stderr, "# hits: %llu TLB hits, %llu misses, %llu faults; "
		"%llu emulated writes, %llu flood unshadows\n",
		(unsigned long long)st.tlb_hits,
		(unsigned long long)st.tlb_misses,
		(unsigned long long)st.faults,
		(unsigned long long)st.emulated_writes,
		(unsigned long long)ms.flood_unshadows);
	guest_fini(&g);
}

/* ---- mmu.shadow_fill, mmu.shadow_fill_leaf ------------------------------- */

#define FILL_N 255
#define FILL_VA(i) ((uint64_t)(i) << 39 | 0x1000)   /* own PML4 slot */
#define LEAF_VA(i) (0x600000000000ull + (uint64_t)(i) * MV_PAGE_SIZE)

/* Best over @rounds of: zap everything, load the root (an access through
 * the kernel window), translate the first @warm VAs, then time the rest:
 * translates (@walk false) or, as the baseline, mv_walk of the same VAs
 * in the same state (caches as cold as the fill finds them). ns each. */
static double fresh_ns(struct guest *g, const uint64_t *vas, unsigned n,
		       unsigned rounds, unsigned warm, bool walk)
{
	struct mv_gmem gm;
	struct mv_paging pg;
	struct mv_cpu_regs regs;
	struct mv_walk w;
	double best = 1e30;
	uint64_t sum = 0;

	regs_long(&regs, ROOT);
	if (mv_gmem_vm_init(&gm, g->vm) || mv_paging_init(&pg, &regs, NULL, &gm))
		die("walker on the VM", -MV_EINTERNAL);
	for (unsigned r = 0; r < rounds; r++) {
		int rc = mv_mmu_zap_all(g->vm, 0);

		if (rc)
			die("mv_mmu_zap_all", rc);
		translate_ok(g->cpu, KWIN, 0, MV_VCPU_OK);
		for (unsigned i = 0; i < warm; i++)
			translate_ok(g->cpu, vas[i], MV_ACC_USER, MV_VCPU_OK);
		uint64_t t0 = cpu_ns();

		for (unsigned i = warm; i < n; i++) {
			if (!walk) {
				translate_ok(g->cpu, vas[i], MV_ACC_USER,
					     MV_VCPU_OK);
				continue;
			}
			mv_walk(&pg, &gm, vas[i], MV_ACC_USER, &w);
			sum += w.gpa;
		}
		double ns = (double)(cpu_ns() - t0) / (n - warm);

		best = ns < best ? ns : best;
	}
	bench_sink(sum);
	return best;
}

static void bench_fill(void)
{
	struct mv_mmu_config mc = { .max_shadow_pages = 8192 };
	struct guest g;
	uint64_t vas[FILL_N], leaf_vas[512];

	guest_init(&g, 64u << 20, 0x800000);
	for (unsigned i = 0; i < FILL_N; i++) {
		vas[i] = FILL_VA(i);
		map(&g, ROOT, vas[i], 0x1000000 + i * MV_PAGE_SIZE, 1, UDATA);
	}
	for (unsigned i = 0; i < 512; i++) {
		leaf_vas[i] = LEAF_VA(i);
		map(&g, ROOT, leaf_vas[i], 0x1200000 + i * MV_PAGE_SIZE, 1,
		    UDATA);
	}
	guest_load(&g, &mc);
	fresh_ns(&g, vas, FILL_N, 2, 0, false);  /* every guest A bit set */
	double fill = fresh_ns(&g, vas, FILL_N, 30, 0, false);
	double walk = fresh_ns(&g, vas, FILL_N, 30, 0, true);
	double leaf = fresh_ns(&g, leaf_vas, 512, 30, 1, false);
	double leaf_walk = fresh_ns(&g, leaf_vas, 512, 30, 1, true);

	bench_report_vs("mmu.shadow_fill", fill, "ns", "mmu.walk4_vm_fresh",
			walk);
	bench_report_vs("mmu.shadow_fill_leaf", leaf, "ns",
			"mmu.walk4_vm_fresh", leaf_walk);
	bench_report_vs("mmu.walk4_vm_fresh", walk, "ns", "mmu.walk4_vm",
			walk_ns(&g, vas, FILL_N, 1000000));
	guest_fini(&g);
}

/* ---- mmu.cr3_switch ------------------------------------------------------- */

#define SW_PAGES 16
#define SW_VA(i) (0x500000000000ull + (uint64_t)(i) * MV_PAGE_SIZE)

static double switch_ns(struct guest *g, const uint64_t *cr3, bool rebuild)
{
	const unsigned rounds = 20000;
	uint64_t v, sum = 0, t0 = cpu_ns();
	int rc;

	for (unsigned r = 0; r < rounds; r++) {
		if (rebuild && (rc = mv_mmu_zap_all(g->vm, 0)))
			die("mv_mmu_zap_all", rc);
		if ((rc = mv_vcpu_set_reg(g->cpu, MV_REG_CR3, cr3[r & 1])))
			die("MOV to CR3", rc);
		for (unsigned i = 0; i < SW_PAGES; i++) {
			read8(g->cpu, SW_VA(i), MV_ACC_USER, &v);
			sum += v;
		}
	}
	bench_sink(sum);
	return (double)(cpu_ns() - t0) / rounds;
}

static void bench_switch(void)
{
	struct guest g;
	struct mv_vcpu_stats st;
	uint64_t cr3[2] = { ROOT, 0 };

	guest_init(&g, 64u << 20, 0x400000);
	cr3[1] = new_table(&g);
	memcpy(pte(&g, cr3[1]) + 256, pte(&g, ROOT) + 256, 2048); /* kernel */
	for (unsigned s = 0; s < 2; s++)
		for (unsigned i = 0; i < SW_PAGES; i++)
			map(&g, cr3[s], SW_VA(i),
			    0x1000000 + (s * SW_PAGES + i) * MV_PAGE_SIZE, 1,
			    UDATA);
	guest_load(&g, NULL);
	switch_ns(&g, cr3, false);  /* warm: both roots cached */
	double cached = switch_ns(&g, cr3, false);
	double rebuild = switch_ns(&g, cr3, true);

	bench_report_vs("mmu.cr3_switch", cached, "ns", "mmu.cr3_switch_rebuild",
			rebuild);
	mv_vcpu_get_stats(g.cpu, &st);
	fprintf(stderr, "# cr3: %llu loads, %llu from cached roots\n",
		(unsigned long long)st.root_loads,
		(unsigned long long)st.root_cache_hits);
	guest_fini(&g);
}

/* ---- mmu.fork_copy, mmu.fork_cow ----------------------------------------- */

#define FORK_N 1000
#define FORK_VA 0x400000ull
#define FORK_DATA 0x1000000ull
#define FORK_NEW 0x2000000ull

struct fork_space {
	uint64_t parent_pte[FORK_N], child_pte[FORK_N];
};

/* The child's user half: tables as the parent's, made by the model OS
 * through the kernel window; returns the child's root. */
static uint64_t fork_tables(struct guest *g, struct fork_space *fs)
{
	uint64_t root = new_table(g), pdpt = new_table(g), pd = new_table(g);
	uint64_t pt[2] = { new_table(g), new_table(g) };
	uint64_t kern[256];
	int rc;

	if ((rc = mv_vcpu_read(g->cpu, KWIN + ROOT + 2048, kern, 2048, 0,
			       NULL)) ||
	    (rc = mv_vcpu_write(g->cpu, KWIN + root + 2048, kern, 2048, 0,
				NULL)))
		die("fork: kernel half", rc < 0 ? rc : -MV_EINTERNAL);
	write8(g->cpu, KWIN + root, 0, pdpt | TBL);
	write8(g->cpu, KWIN + pdpt, 0, pd | TBL);
	write8(g->cpu, KWIN + pd + 16, 0, pt[0] | TBL);  /* VA 4 MiB */
	write8(g->cpu, KWIN + pd + 24, 0, pt[1] | TBL);
	for (unsigned i = 0; i < FORK_N; i++)
		fs->child_pte[i] = pt[i / 512] + (i % 512) * 8;
	return root;
}

/* Copy every PTE read-only into the child (the parent's write-protected
 * too), then one flush, as fork() does. */
static void fork_copy(struct guest *g, const struct fork_space *fs)
{
	for (unsigned i = 0; i < FORK_N; i++) {
		uint64_t e;

		read8(g->cpu, KWIN + fs->parent_pte[i], 0, &e);
		e &= ~(uint64_t)MV_PTE_W;
		write8(g->cpu, KWIN + fs->parent_pte[i], 0, e);
		write8(g->cpu, KWIN + fs->child_pte[i], 0, e);
	}
	int rc = mv_vcpu_set_reg(g->cpu, MV_REG_CR3, ROOT);

	if (rc)
		die("fork: CR3 reload", rc);
}

/* The parent writes every page: #PF, the handler copies the page to a
 * new frame, writes the PTE, INVLPG, and the write is retried. */
static void fork_cow(struct guest *g, const struct fork_space *fs)
{
	static uint8_t buf[MV_PAGE_SIZE];

	for (unsigned i = 0; i < FORK_N; i++) {
		uint64_t va = FORK_VA + i * MV_PAGE_SIZE, v = i, e;
		uint64_t nf = FORK_NEW + i * MV_PAGE_SIZE;
		struct mv_fault f;
		int rc = mv_vcpu_write(g->cpu, va, &v, 8, MV_ACC_USER, &f);

		if (rc != MV_VCPU_FAULT || f.error_code !=
		    (MV_PF_P | MV_PF_W | MV_PF_U))
			die("fork: no COW fault", rc < 0 ? rc : -MV_EINTERNAL);
		read8(g->cpu, KWIN + fs->parent_pte[i], 0, &e);
		if ((rc = mv_vcpu_read(g->cpu, KWIN + (e & ADDR), buf,
				       sizeof(buf), 0, NULL)) ||
		    (rc = mv_vcpu_write(g->cpu, KWIN + nf, buf, sizeof(buf), 0,
					NULL)))
			die("fork: page copy", rc < 0 ? rc : -MV_EINTERNAL);
		write8(g->cpu, KWIN + fs->parent_pte[i], 0, nf | UDATA);
		if ((rc = mv_vcpu_invlpg(g->cpu, va)))
			die("fork: INVLPG", rc);
		write8(g->cpu, va, MV_ACC_USER, v);
	}
}

/* The same bytes moved in plain memory: the PTE copies, then the page
 * copies and PTE writes. */
static void fork_native(uint8_t *mem, double *copy_us, double *cow_us)
{
	uint64_t *pp = (uint64_t *)mem, *cp = pp + 1024;
	uint64_t t0 = cpu_ns();

	for (unsigned i = 0; i < FORK_N; i++) {
		uint64_t e = *(volatile uint64_t *)&pp[i] & ~(uint64_t)MV_PTE_W;

		((volatile uint64_t *)pp)[i] = e;
		((volatile uint64_t *)cp)[i] = e;
	}
	uint64_t t1 = cpu_ns();

	for (unsigned i = 0; i < FORK_N; i++) {
		uint8_t *src = mem + (16 + i) * MV_PAGE_SIZE;
		uint8_t *dst = mem + (16 + FORK_N + i) * MV_PAGE_SIZE;

		memcpy(dst, src, MV_PAGE_SIZE);
		((volatile uint64_t *)pp)[i] = (uint64_t)i << 12 | UDATA;
		*(volatile uint64_t *)dst = i;
	}
	uint64_t t2 = cpu_ns();

	*copy_us = (t1 - t0) / 1e3;
	*cow_us = (t2 - t1) / 1e3;
}

static void bench_fork(void)
{
	struct guest g;
	struct fork_space fs;
	struct mv_mmu_stats ms;
	double copy = 1e30, cow = 1e30, ncopy = 1e30, ncow = 1e30;
	uint8_t *mem = calloc(16 + 2 * FORK_N, MV_PAGE_SIZE);

	if (!mem)
		die("fork: memory", -MV_ENOMEM);
	for (unsigned rep = 0; rep < 5; rep++) {
		guest_init(&g, 64u << 20, 0x400000);
		for (unsigned i = 0; i < FORK_N; i++) {
			fs.parent_pte[i] = map(&g, ROOT,
					       FORK_VA + i * MV_PAGE_SIZE,
					       FORK_DATA + i * MV_PAGE_SIZE, 1,
					       UDATA);
			*pte(&g, FORK_DATA + i * MV_PAGE_SIZE) = i + 1;
		}
		guest_load(&g, NULL);
		for (unsigned i = 0; i < FORK_N; i++)
			write8(g.cpu, FORK_VA + i * MV_PAGE_SIZE, MV_ACC_USER,
			       i + 1);
		fork_tables(&g, &fs);
		uint64_t t0 = cpu_ns();

		fork_copy(&g, &fs);
		uint64_t t1 = cpu_ns();

		fork_cow(&g, &fs);
		uint64_t t2 = cpu_ns();

		copy = (t1 - t0) / 1e3 < copy ? (t1 - t0) / 1e3 : copy;
		cow = (t2 - t1) / 1e3 < cow ? (t2 - t1) / 1e3 : cow;
		double a, b;

		fork_native(mem, &a, &b);
		ncopy = a < ncopy ? a : ncopy;
		ncow = b < ncow ? b : ncow;
		if (rep == 4) {
			mv_mmu_get_stats(g.vm, &ms);
			fprintf(stderr, "# fork: %llu table writes, %llu flood "
				"unshadows, %llu shadow pages\n",
				(unsigned long long)ms.table_writes,
				(unsigned long long)ms.flood_unshadows,
				(unsigned long long)ms.shadow_pages);
		}
		guest_fini(&g);
	}
	free(mem);
	bench_report_vs("mmu.fork_copy", copy, "us", "mmu.fork_copy_native",
			ncopy);
	bench_report_vs("mmu.fork_cow", cow, "us", "mmu.fork_cow_native", ncow);
}

/* ---- mmu.zap_all_resume ---------------------------------------------------- */

#define ZAP_N 100000
#define ZAP_VA 0x100000000000ull
#define ZAP_GPA (1ull << 40)       /* outside RAM: MMIO SPTEs */
#define ZAP_RUN_VA 0x200000000000ull

struct zapper {
	struct mv_vm *vm;
	_Atomic int go;
	_Atomic uint64_t t0, t1;
};

static void *zap_thread(void *arg)
{
	struct zapper *z = arg;
	int rc;

	while (!atomic_load(&z->go))
		;
	atomic_store(&z->t0, bench_now_ns());
	rc = mv_mmu_zap_all(z->vm, 0);
	atomic_store(&z->t1, bench_now_ns());
	if (rc)
		die("mv_mmu_zap_all", rc);
	return NULL;
}

/* Reads on the vCPU until the zap is over: when did the first access on
 * a fresh root complete, and how long was the longest access? */
static void zap_watch(struct guest *g, struct zapper *z, uint64_t *resume,
		      uint64_t *stall)
{
	struct mv_vcpu_stats st;
	uint64_t v, faults, prev;

	mv_vcpu_get_stats(g->cpu, &st);
	faults = st.faults;
	*resume = 0;
	*stall = 0;
	atomic_store(&z->go, 1);
	while (!atomic_load(&z->t0))
		;
	prev = bench_now_ns();
	while (!atomic_load(&z->t1) || !*resume) {
		read8(g->cpu, ZAP_RUN_VA, MV_ACC_USER, &v);
		uint64_t now = bench_now_ns();

		*stall = now - prev > *stall ? now - prev : *stall;
		prev = now;
		mv_vcpu_get_stats(g->cpu, &st);
		if (!*resume && st.faults != faults)
			*resume = now - atomic_load(&z->t0);
	}
}

/* Fault in ZAP_N 2 MiB guest pages outside RAM: a direct shadow page
 * (and an MMIO leaf) each. */
static void zap_fill(struct guest *g)
{
	struct mv_mmu_stats ms;

	for (uint64_t k = 0; k < ZAP_N; k++)
		translate_ok(g->cpu, ZAP_VA + (k << 21), MV_ACC_USER,
			     MV_VCPU_MMIO);
	translate_ok(g->cpu, ZAP_RUN_VA, MV_ACC_USER, MV_VCPU_OK);
	mv_mmu_get_stats(g->vm, &ms);
	if (ms.shadow_pages < ZAP_N)
		die("fewer shadow pages than the zap needs", -MV_EINTERNAL);
}

static void bench_zap(void)
{
	struct mv_mmu_config mc = { .max_shadow_pages = ZAP_N + 4096 };
	struct guest g;
	struct zapper z = { 0 };
	pthread_t th;
	uint64_t resume, stall;
	int rc;

	guest_init(&g, 16u << 20, 0x400000);
	for (uint64_t k = 0; k < ZAP_N; k++)
		map(&g, ROOT, ZAP_VA + (k << 21), ZAP_GPA + (k << 21), 2,
		    UDATA);
	map(&g, ROOT, ZAP_RUN_VA, 0x800000, 1, UDATA);
	guest_load(&g, &mc);
	/* the reclaim alone, on this thread */
	zap_fill(&g);
	uint64_t t0 = cpu_ns();

	if ((rc = mv_mmu_zap_all(g.vm, 0)))
		die("mv_mmu_zap_all", rc);
	double reclaim = (cpu_ns() - t0) / 1e3;

	/* the zap on another thread while the vCPU runs */
	zap_fill(&g);
	z.vm = g.vm;
	if (pthread_create(&th, NULL, zap_thread, &z))
		die("thread", -MV_ENOMEM);
	zap_watch(&g, &z, &resume, &stall);
	pthread_join(th, NULL);
	bench_report_vs("mmu.zap_all_resume", resume / 1e3, "us",
			"mmu.zap_all_reclaim", reclaim);
	bench_report("mmu.zap_all_reclaim_wall", (z.t1 - z.t0) / 1e3, "us");
	bench_report("mmu.zap_all_max_stall", stall / 1e3, "us");
	guest_fini(&g);
}

/* ---- mmu.vcpu2_rate ------------------------------------------------------- */

#define MT_PAGES 2048
#define MT_VA(c, i) (0x300000000000ull + ((uint64_t)(c) << 30) + \
		     (uint64_t)(i) * MV_PAGE_SIZE)
#define MT_ACCESSES 1000000u

struct mt_arg {
	struct mv_vcpu *cpu;
	unsigned c;
	pthread_barrier_t *start;
};

static void *mt_thread(void *p)
{
	struct mt_arg *a = p;
	uint64_t v, sum = 0;

	pthread_barrier_wait(a->start);
	for (unsigned i = 0; i < MT_ACCESSES; i++) {
		read8(a->cpu, MT_VA(a->c, (i * 7) % MT_PAGES), MV_ACC_USER, &v);
		sum += v;
	}
	bench_sink(sum);
	mv_vcpu_exit(a->cpu);
	return NULL;
}

static double mt_rate(struct mv_vcpu **cpus, unsigned n)
{
	pthread_barrier_t start;
	pthread_t th[2];
	struct mt_arg a[2];

	pthread_barrier_init(&start, NULL, n + 1);
	for (unsigned c = 0; c < n; c++) {
		a[c] = (struct mt_arg){ cpus[c], c, &start };
		if (pthread_create(&th[c], NULL, mt_thread, &a[c]))
			die("thread", -MV_ENOMEM);
	}
	pthread_barrier_wait(&start);
	uint64_t t0 = bench_now_ns();

	for (unsigned c = 0; c < n; c++)
		pthread_join(th[c], NULL);
	double s = (bench_now_ns() - t0) / 1e9;

	pthread_barrier_destroy(&start);
	return (double)n * MT_ACCESSES / s;
}

static void bench_mt(void)
{
	struct guest g;
	struct mv_vcpu *cpus[2];
	struct mv_cpu_regs regs;
	int rc;

	guest_init(&g, 64u << 20, 0x400000);
	for (unsigned c = 0; c < 2; c++)
		for (unsigned i = 0; i < MT_PAGES; i++)
			map(&g, ROOT, MT_VA(c, i), 0x1000000 +
			    (c * MT_PAGES + i) * MV_PAGE_SIZE, 1, UDATA);
	guest_load(&g, NULL);
	cpus[0] = g.cpu;
	regs_long(&regs, ROOT);
	if ((rc = mv_vcpu_create(g.vm, NULL, &cpus[1])) ||
	    (rc = mv_vcpu_set_regs(cpus[1], &regs)))
		die("second vCPU", rc);
	for (unsigned c = 0; c < 2; c++) {
		for (unsigned i = 0; i < MT_PAGES; i++)
			translate_ok(cpus[c], MT_VA(c, i), MV_ACC_USER,
				     MV_VCPU_OK);
		mv_vcpu_exit(cpus[c]);
	}
	double one = 0, two = 0;

	for (int rep = 0; rep < 3; rep++) {
		double a = mt_rate(cpus, 1), b = mt_rate(cpus, 2);

		one = a > one ? a : one;
		two = b > two ? b : two;
	}
	bench_report_vs("mmu.vcpu2_rate", two, "accesses/s", "mmu.vcpu1_rate",
			one);
	for (unsigned c = 0; c < 2; c++) {
		struct mv_vcpu_stats st;

		mv_vcpu_get_stats(cpus[c], &st);
		fprintf(stderr, "# mt: vCPU %u: %llu accesses, %llu TLB hits, "
			"%llu shadow hits, %llu faults, %llu flushes\n", c,
			(unsigned long long)st.accesses,
			(unsigned long long)st.tlb_hits,
			(unsigned long long)st.shadow_hits,
			(unsigned long long)st.faults,
			(unsigned long long)st.flushes);
	}
	mv_vcpu_destroy(cpus[1]);
	guest_fini(&g);
}

/* ---- mmu.shadow_bytes_per_page ------------------------------------------- */

#define MEM_PAGES 65536u
#define MEM_VA 0x400000000000ull

static void bench_memory(void)
{
	struct mv_mmu_config mc = { .max_shadow_pages = 4096 };
	struct guest g;
	struct mv_mmu_stats before, after;

	guest_init(&g, 512u << 20, 0x400000);
	uint64_t t0 = g.next_table;

	for (unsigned i = 0; i < MEM_PAGES; i++)
		map(&g, ROOT, MEM_VA + (uint64_t)i * MV_PAGE_SIZE,
		    0x1000000 + (uint64_t)i * MV_PAGE_SIZE, 1, UDATA);
	double guest = (double)(g.next_table - t0) / MEM_PAGES;

	guest_load(&g, &mc);
	translate_ok(g.cpu, KWIN, 0, MV_VCPU_OK);
	mv_mmu_get_stats(g.vm, &before);
	for (unsigned i = 0; i < MEM_PAGES; i++)
		translate_ok(g.cpu, MEM_VA + (uint64_t)i * MV_PAGE_SIZE,
			     MV_ACC_USER, MV_VCPU_OK);
	mv_mmu_get_stats(g.vm, &after);
	double bytes = (double)(after.metadata_bytes - before.metadata_bytes) +
		       (double)(after.shadow_pages - before.shadow_pages) *
			       MV_PAGE_SIZE;

	bench_report_vs("mmu.shadow_bytes_per_page", bytes / MEM_PAGES,
			"bytes", "mmu.guest_table_bytes_per_page", guest);
	fprintf(stderr, "# memory: %llu shadow pages, %llu bytes of metadata "
		"for %u pages\n",
		(unsigned long long)(after.shadow_pages - before.shadow_pages),
		(unsigned long long)(after.metadata_bytes -
				     before.metadata_bytes), MEM_PAGES);
	guest_fini(&g);
}

static const struct {
	const char *name;
	void (*run)(void);
} groups[] = {
	{ "hits", bench_hits }, { "fill", bench_fill },
	{ "switch", bench_switch }, { "fork", bench_fork },
	{ "zap", bench_zap }, { "mt", bench_mt }, { "memory", bench_memory },
};

/* bench_vcpu [GROUP...]: all groups, or the ones named (for perf). */
int main(int argc, char **argv)
{
	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
		bool run = argc < 2;

		for (int a = 1; a < argc; a++)
			run |= !strcmp(argv[a], groups[i].name);
		if (run)
			groups[i].run();
	}
	return 0;
}
