/* The walker's behaviour beyond the access-rights table: the guest-memory
 * interface, mode selection, PSE-36, the PAE PDPTE load, canonical
 * addresses, bad guests (tables outside RAM, self-references), A/D races
 * and ROM, and the leaf dump. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/mmu.h>

#define MEM_SIZE (64 * 4096)
static uint64_t mem[MEM_SIZE / 8];
static struct mv_gmem gm;
static struct mv_gmem_flat flat;

static int setup(void **state)
{
	(void)state;
	memset(mem, 0, sizeof(mem));
	return mv_gmem_flat_init(&gm, &flat, mem, 0, MEM_SIZE, true);
}

static void put64(uint64_t gpa, uint64_t v)
{
	mem[gpa / 8] = v;
}

static void put32(uint64_t gpa, uint32_t v)
{
	memcpy((uint8_t *)mem + gpa, &v, 4);
}

static uint64_t get64(uint64_t gpa)
{
	return mem[gpa / 8];
}

#define TBL (MV_PTE_P | MV_PTE_W | MV_PTE_U)

static const struct mv_cpu_regs long4 = {
	.cr0 = MV_CR0_PG | MV_CR0_PE | MV_CR0_WP, .cr3 = 0x1000,
	.cr4 = MV_CR4_PAE, .efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE,
};

/* 0xffff800000201000 -> 0x55000 through PML4 0x1000, PDPT 0x2000, PD 0x3000,
 * PT 0x4000. */
static void map_kernel_page(void)
{
	put64(0x1000 + 256 * 8, 0x2000 | TBL);
	put64(0x2000, 0x3000 | TBL);
	put64(0x3000 + 1 * 8, 0x4000 | TBL);
	put64(0x4000 + 1 * 8, 0x55000 | MV_PTE_P | MV_PTE_W | MV_PTE_G);
}

static void flat_bounds(void **state)
{
	uint64_t v;

	(void)state;
	assert_int_equal(gm.read(gm.opaque, MEM_SIZE - 8, 8, &v), MV_GMEM_OK);
	assert_int_equal(gm.read(gm.opaque, MEM_SIZE, 8, &v),
			 MV_GMEM_UNBACKED);
	assert_int_equal(gm.read(gm.opaque, UINT64_MAX - 7, 8, &v),
			 MV_GMEM_UNBACKED);
	assert_int_equal(gm.cmpxchg(gm.opaque, 8, 8, 1, 2), MV_GMEM_CHANGED);
	assert_int_equal(gm.cmpxchg(gm.opaque, 8, 8, 0, 2), MV_GMEM_OK);
	assert_int_equal(get64(8), 2);

	struct mv_gmem g2;
	struct mv_gmem_flat f2;

	assert_int_equal(mv_gmem_flat_init(&g2, &f2, (uint8_t *)mem + 1, 0,
					   64, true), -MV_EINVAL);
	assert_int_equal(mv_gmem_flat_init(&g2, &f2, mem, 0x800, 64, true),
			 -MV_EINVAL);
	assert_int_equal(mv_gmem_flat_init(&g2, &f2, mem, ~0xfffull, 0x2000,
					   true), -MV_EINVAL);
	assert_int_equal(mv_gmem_flat_init(&g2, &f2, mem, 0x100000, 4096,
					   false), 0);
	assert_null(g2.cmpxchg);
	assert_int_equal(g2.read(g2.opaque, 0xff000, 8, &v), MV_GMEM_UNBACKED);
	/* An image whose size is no multiple of 8: an 8-byte entry across
	 * its end is not RAM, a 4-byte one before it is. */
	assert_int_equal(mv_gmem_flat_init(&g2, &f2, mem, 0, 4100, true), 0);
	assert_int_equal(g2.read(g2.opaque, 4096, 8, &v), MV_GMEM_UNBACKED);
	assert_int_equal(g2.cmpxchg(g2.opaque, 4096, 8, 0, 1),
			 MV_GMEM_UNBACKED);
	assert_int_equal(g2.read(g2.opaque, 4096, 4, &v), MV_GMEM_OK);
}

static void modes_from_registers(void **state)
{
	struct mv_paging pg;
	struct mv_cpu_regs r = long4;

	(void)state;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(pg.mode, MV_PAGING_LONG4);
	r.efer = MV_EFER_LME;  /* LMA follows LME once PG is set */
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(pg.mode, MV_PAGING_LONG4);
	r.cr4 |= MV_CR4_LA57;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(pg.mode, MV_PAGING_LONG5);
	r.efer = 0;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(pg.mode, MV_PAGING_PAE);
	r.cr4 = 0;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(pg.mode, MV_PAGING_LEGACY);
	r.cr0 = MV_CR0_PE;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(pg.mode, MV_PAGING_OFF);
	/* Impossible: long mode without PAE, PG without PE, LMA without PG. */
	r = long4;
	r.cr4 = 0;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), -MV_EINVAL);
	r = long4;
	r.cr0 = MV_CR0_PG;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), -MV_EINVAL);
	r = long4;
	r.cr0 = MV_CR0_PE;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), -MV_EINVAL);
	struct mv_cpu_model cpu = { .maxphyaddr = 53 };
	assert_int_equal(mv_paging_init(&pg, &long4, &cpu, &gm), -MV_EINVAL);
}

static void paging_off_is_identity(void **state)
{
	struct mv_paging pg;
	struct mv_cpu_regs r = { .cr0 = MV_CR0_PE };
	struct mv_walk w;

	(void)state;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0x12345678, MV_ACC_WRITE, &w),
			 MV_WALK_OK);
	assert_int_equal(w.gpa, 0x12345678);
	assert_int_equal(w.perm, MV_PERM_W | MV_PERM_U);
	assert_int_equal(w.nr_entries, 0);
}

static void legacy_pse36_and_pse_off(void **state)
{
	struct mv_paging pg;
	struct mv_cpu_regs r = { .cr0 = MV_CR0_PG | MV_CR0_PE,
				 .cr3 = 0x1000, .cr4 = MV_CR4_PSE };
	struct mv_walk w;

	(void)state;
	/* PDE 1: 4 MiB page at 0x12_0040_0000 (PSE-36 bits 20:13 = 0x12). */
	put32(0x1000 + 4, 0x00400000 | (0x12 << 13) | 0x87);
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0x00412345, 0, &w), MV_WALK_OK);
	assert_int_equal(w.gpa, 0x1200412345ull);
	assert_int_equal(w.page_size, 4u << 20);
	/* MAXPHYADDR 36: bits 20:17 are reserved. */
	struct mv_cpu_model m36 = { .maxphyaddr = 36 };
	assert_int_equal(mv_paging_init(&pg, &r, &m36, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0x00412345, 0, &w), MV_WALK_PF);
	assert_int_equal(w.error_code, MV_PF_P | MV_PF_RSVD);
	/* Without CR4.PSE the PS bit is ignored: PDE 1 is a page table at
	 * 0x424000 (outside RAM here), so the walk reads there. */
	r.cr4 = 0;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0x00412345, MV_ACC_USER, &w),
			 MV_WALK_NOT_RAM);
	assert_int_equal(w.error_code, MV_PF_U);
	assert_int_equal(w.entry_gpa[1], 0x424000 + 0x12 * 4);
	/* Linear addresses are 32 bits: bits above are dropped. */
	r.cr4 = MV_CR4_PSE;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0x700412345ull, 0, &w), MV_WALK_OK);
	assert_int_equal(w.gpa, 0x1200412345ull);
}

static void pae_pdptes_are_registers(void **state)
{
	struct mv_paging pg;
	struct mv_cpu_regs r = { .cr0 = MV_CR0_PG | MV_CR0_PE,
				 .cr3 = 0x1020, .cr4 = MV_CR4_PAE };
	struct mv_walk w;

	(void)state;
	put64(0x1020 + 3 * 8, 0x3000 | MV_PTE_P);
	put64(0x3000 + 511 * 8, 0x7fe00000 | TBL | MV_PTE_PS);
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0xfff00000, MV_ACC_WRITE, &w),
			 MV_WALK_OK);
	assert_int_equal(w.gpa, 0x7ff00000);
	assert_int_equal(w.nr_entries, 1);  /* the PDPTE is no memory read */
	/* Memory changes to the PDPT do not matter until CR3 is loaded. */
	put64(0x1020 + 3 * 8, 0);
	assert_int_equal(mv_walk(&pg, &gm, 0xfff00000, 0, &w), MV_WALK_OK);
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 0x1020), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0xfff00000, 0, &w), MV_WALK_PF);
	assert_int_equal(w.error_code, 0);
	assert_int_equal(w.level, 3);
	/* A present PDPTE with a reserved bit: MOV to CR3 #GPs and the old
	 * registers stay; a not-present one may hold anything. */
	put64(0x1020 + 3 * 8, 0x3000 | MV_PTE_P);
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 0x1020), MV_WALK_OK);
	put64(0x1020, 0x5000 | MV_PTE_P | MV_PTE_W);
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 0x1020), MV_WALK_GP);
	assert_int_equal(mv_walk(&pg, &gm, 0xfff00000, 0, &w), MV_WALK_OK);
	put64(0x1020, 0xffff0000ull << 32);
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 0x1020), MV_WALK_OK);
	/* The PDPT outside RAM. */
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 0xfffff000),
			 MV_WALK_NOT_RAM);
}

static void canonical_addresses(void **state)
{
	struct mv_paging pg;
	struct mv_cpu_regs r = long4;
	struct mv_walk w;

	(void)state;
	map_kernel_page();
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0xffff800000201abcull, 0, &w),
			 MV_WALK_OK);
	assert_int_equal(w.gpa, 0x55abc);
	assert_int_equal(w.nr_entries, 4);
	assert_int_equal(w.entry_gpa[0], 0x1000 + 256 * 8);
	assert_int_equal(w.entry_gpa[3], 0x4008);
	assert_int_equal(mv_walk(&pg, &gm, 0x0000800000201abcull, 0, &w),
			 MV_WALK_GP);
	assert_int_equal(mv_walk(&pg, &gm, 0xfeff800000201abcull, 0, &w),
			 MV_WALK_GP);
	r.cr4 |= MV_CR4_LA57;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	/* 5-level: 0xffff8000... is canonical (bit 56 = 1): PML5 index 511. */
	assert_int_equal(mv_walk(&pg, &gm, 0xffff800000201abcull, 0, &w),
			 MV_WALK_PF);
	assert_int_equal(w.entry_gpa[0], 0x1000 + 511 * 8);
	assert_int_equal(mv_walk(&pg, &gm, 0x0100000000000000ull, 0, &w),
			 MV_WALK_GP);
	/* CR3 bits above MAXPHYADDR: the MOV to CR3 faults. */
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 1ull << 50),
			 MV_WALK_GP);
	/* Bit 63: reserved without CR4.PCIDE, the no-flush hint with it. */
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 0x1000 | 1ull << 63),
			 MV_WALK_GP);
	r.cr4 |= MV_CR4_PCIDE;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 0x1000 | 1ull << 63),
			 MV_WALK_OK);
	assert_int_equal(pg.regs.cr3, 0x1000);
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 1ull << 50),
			 MV_WALK_GP);
}

static void tables_outside_ram(void **state)
{
	struct mv_paging pg;
	struct mv_walk w;

	(void)state;
	put64(0x1000, 0x7ffff000 | TBL);  /* PML4[0] -> beyond the image */
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0x1000, MV_ACC_WRITE | MV_ACC_USER,
				 &w), MV_WALK_NOT_RAM);
	assert_int_equal(w.error_code, MV_PF_W | MV_PF_U);
	assert_int_equal(w.level, 3);
	assert_int_equal(w.entry_gpa[1], 0x7ffff000);
	assert_int_equal(get64(0x1000), 0x7ffff000 | TBL);  /* no A set */
	/* CR3 itself outside RAM. */
	struct mv_cpu_regs r = long4;
	r.cr3 = 0x40000000;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0, MV_ACC_FETCH, &w),
			 MV_WALK_NOT_RAM);
	assert_int_equal(w.error_code, MV_PF_ID);
}

static void self_reference_is_bounded(void **state)
{
	struct mv_paging pg;
	struct mv_walk w;

	(void)state;
	/* PML4[0] -> PML4 and PML4[1] -> PML4 with PS=1... every level
	 * walks the same page: the walk ends after 4 reads. */
	put64(0x1000, 0x1000 | TBL);
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0x123, 0, &w), MV_WALK_OK);
	assert_int_equal(w.gpa, 0x1123);
	assert_int_equal(w.nr_entries, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(w.entry_gpa[i], 0x1000);
	assert_int_equal(get64(0x1000), 0x1000 | TBL | MV_PTE_A);
}

/* A gmem whose cmpxchg loses `losses` times, as if another vCPU wrote the
 * entry each time. */
struct racy {
	struct mv_gmem inner;
	int losses;
	int rom;
};

static int racy_read(void *o, uint64_t gpa, unsigned size, uint64_t *v)
{
	struct racy *r = o;

	return r->inner.read(r->inner.opaque, gpa, size, v);
}

static int racy_cmpxchg(void *o, uint64_t gpa, unsigned size, uint64_t old,
			uint64_t val)
{
	struct racy *r = o;

	if (r->rom)
		return MV_GMEM_READONLY;
	if (r->losses > 0) {
		r->losses--;
		return MV_GMEM_CHANGED;
	}
	return r->inner.cmpxchg(r->inner.opaque, gpa, size, old, val);
}

static void accessed_dirty_races_and_rom(void **state)
{
	struct racy racy = { .inner = gm, .losses = 3 };
	struct mv_gmem g = { racy_read, racy_cmpxchg, &racy };
	struct mv_paging pg;
	struct mv_walk w;
	uint64_t va = 0xffff800000201000ull;

	(void)state;
	map_kernel_page();
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &g), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_WRITE, &w), MV_WALK_OK);
	assert_int_equal(racy.losses, 0);
	assert_true(get64(0x4008) & MV_PTE_D);
	assert_true(get64(0x1800) & MV_PTE_A);
	assert_true(w.leaf & MV_PTE_D);
	/* A writer that never stops: the walk gives up with RETRY. */
	put64(0x4008, get64(0x4008) & ~MV_PTE_D);
	racy.losses = 1000;
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_WRITE, &w),
			 MV_WALK_RETRY);
	/* ROM tables: the walk succeeds, the A/D write is lost. */
	racy.losses = 0;
	racy.rom = 1;
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_WRITE, &w), MV_WALK_OK);
	assert_false(get64(0x4008) & MV_PTE_D);
	/* A probe writes nothing; a fault writes nothing. */
	racy.rom = 0;
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_WRITE | MV_ACC_NO_AD,
				 &w), MV_WALK_OK);
	assert_false(get64(0x4008) & MV_PTE_D);
	put64(0x4008, get64(0x4008) & ~MV_PTE_W);
	uint64_t before = get64(0x3008);
	put64(0x3008, before & ~MV_PTE_A);
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_WRITE, &w), MV_WALK_PF);
	assert_int_equal(w.error_code, MV_PF_P | MV_PF_W);
	assert_false(get64(0x3008) & MV_PTE_A);
}

struct collect {
	struct mv_walk_leaf leaf[64];
	unsigned n;
};

static int collect_leaf(void *o, const struct mv_walk_leaf *l)
{
	struct collect *c = o;

	if (c->n < 64)
		c->leaf[c->n] = *l;
	c->n++;
	return 0;
}

static void dump_lists_leaves_in_order(void **state)
{
	struct mv_paging pg;
	struct collect c = { .n = 0 };
	struct mv_walk w;

	(void)state;
	map_kernel_page();
	put64(0x1000, 0x5000 | TBL);                      /* user half */
	put64(0x5000 + 8, 0x40000000 | TBL | MV_PTE_PS);  /* 1 GiB */
	put64(0x5000 + 16, 0x6000 | TBL);
	put64(0x6000, 0x200000 | TBL | MV_PTE_PS | MV_PTE_NX);  /* 2 MiB */
	put64(0x6008, 0x400000 | TBL | MV_PTE_PS | (1ull << 20)); /* rsvd */
	put64(0x1000 + 511 * 8, 0x1000 | MV_PTE_P);  /* recursive slot */
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk_dump(&pg, &gm, collect_leaf, &c), 0);
	/* 1G + 2M + kernel 4K, then through the recursive slot: PML4[0]'s
	 * PDPT as a PD (1G entry = PS at PD level: 2 MiB leaf, bits 20:13
	 * clear) and so on. Check order and the direct leaves. */
	assert_true(c.n >= 3);
	for (unsigned i = 1; i < c.n && i < 64; i++)
		assert_true(c.leaf[i].va > c.leaf[i - 1].va);
	assert_int_equal(c.leaf[0].va, 0x40000000);
	assert_int_equal(c.leaf[0].page_size, 1u << 30);
	assert_int_equal(c.leaf[1].va, 0x80000000);
	assert_int_equal(c.leaf[1].perm, MV_PERM_W | MV_PERM_U | MV_PERM_NX);
	assert_int_equal(c.leaf[2].va, 0xffff800000201000ull);
	assert_int_equal(c.leaf[2].perm, MV_PERM_W);
	assert_int_equal(c.leaf[3].va >> 39, 0x1ffffff);
	/* Every dumped leaf translates the same way with a walk. */
	for (unsigned i = 0; i < c.n && i < 64; i++) {
		assert_int_equal(mv_walk(&pg, &gm, c.leaf[i].va, MV_ACC_NO_AD,
					 &w), MV_WALK_OK);
		assert_int_equal(w.gpa, c.leaf[i].gpa);
		assert_int_equal(w.perm, c.leaf[i].perm);
	}
}

static int stop_at_two(void *o, const struct mv_walk_leaf *l)
{
	(void)l;
	return ++*(int *)o == 2 ? 7 : 0;
}

/* Every PML4E -> one PDPT whose 512 entries -> one PD whose 512 entries
 * -> one empty PT: 2^27 paths into nothing; the dump must not walk them. */
static void dump_skips_shared_empty_tables(void **state)
{
	struct mv_paging pg;
	struct collect c = { .n = 0 };
	int n = 0;

	(void)state;
	for (int i = 0; i < 512; i++) {
		put64(0x1000 + i * 8, 0x2000 | TBL);
		put64(0x2000 + i * 8, 0x3000 | TBL);
		put64(0x3000 + i * 8, 0x4000 | TBL);
	}
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk_dump(&pg, &gm, collect_leaf, &c), 0);
	assert_int_equal(c.n, 0);
	put64(0x4000, 0x9000 | TBL);
	assert_int_equal(mv_walk_dump(&pg, &gm, stop_at_two, &n), 7);
	struct mv_cpu_regs off = { .cr0 = MV_CR0_PE };
	assert_int_equal(mv_paging_init(&pg, &off, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk_dump(&pg, &gm, collect_leaf, &c),
			 -MV_ESTATE);
}

/* NULL contexts, memories and results: no crash, a clear answer. */
static void null_arguments(void **state)
{
	struct mv_paging pg;
	struct mv_walk w;
	struct mv_gmem no_read = { NULL, NULL, NULL };

	(void)state;
	map_kernel_page();
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, 0, 0, NULL), -MV_EINVAL);
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(NULL, &gm, 0, 0, &w), -MV_EINVAL);
	assert_int_equal(w.status, MV_WALK_ERROR);
	assert_int_equal(w.nr_entries, 0);
	assert_int_equal(w.level, 0);
	assert_int_equal(w.gpa, 0);
	assert_int_equal(w.page_size, 0);
	assert_int_equal(w.leaf, 0);
	assert_int_equal(w.error_code, 0);
	assert_int_equal(w.perm, 0);
	assert_int_equal(w.pkey, 0);
	assert_int_equal(w.memtype, 0);
	assert_int_equal(mv_walk(&pg, NULL, 0, 0, &w), -MV_EINVAL);
	assert_int_equal(mv_walk(&pg, &no_read, 0, 0, &w), -MV_EINVAL);
	assert_int_equal(w.status, MV_WALK_ERROR);
	/* A context no mv_paging_init built (garbage mode). */
	struct mv_paging junk;
	memset(&junk, 0xff, sizeof(junk));
	assert_int_equal(mv_walk(&junk, &gm, 0, 0, &w), -MV_EINVAL);
	assert_int_equal(mv_paging_canonical(NULL, 0x800000000000ull),
			 0x800000000000ull);
	assert_false(mv_paging_is_canonical(NULL, 0));
	assert_int_equal(mv_paging_init(NULL, &long4, NULL, &gm), -MV_EINVAL);
	assert_int_equal(mv_paging_init(&pg, NULL, NULL, &gm), -MV_EINVAL);
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, NULL), -MV_EINVAL);
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &no_read),
			 -MV_EINVAL);
	assert_int_equal(mv_paging_load_cr3(NULL, &gm, 0x1000), -MV_EINVAL);
	assert_int_equal(mv_paging_load_cr3(&pg, NULL, 0x1000), -MV_EINVAL);
	assert_int_equal(mv_walk_dump(NULL, &gm, collect_leaf, NULL),
			 -MV_EINVAL);
	assert_int_equal(mv_walk_dump(&pg, NULL, collect_leaf, NULL),
			 -MV_EINVAL);
	assert_int_equal(mv_walk_dump(&pg, &gm, NULL, NULL), -MV_EINVAL);
	/* The context still works. */
	assert_int_equal(mv_walk(&pg, &gm, 0xffff800000201000ull, 0, &w),
			 MV_WALK_OK);
}

/* A failed init or CR3 load leaves the context as it was. */
static void failed_loads_change_nothing(void **state)
{
	struct mv_paging pg, before;
	struct mv_cpu_regs r = long4;

	(void)state;
	map_kernel_page();
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	before = pg;
	r.cr0 = MV_CR0_PG;  /* PG without PE */
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), -MV_EINVAL);
	assert_memory_equal(&pg, &before, sizeof(pg));
	assert_int_equal(mv_paging_load_cr3(&pg, &gm, 1ull << 60), MV_WALK_GP);
	assert_memory_equal(&pg, &before, sizeof(pg));
}

/* Every field of the result for each outcome (mmu.h lists them). */
static void result_fields_per_status(void **state)
{
	struct racy racy = { .inner = gm };
	struct mv_gmem g = { racy_read, racy_cmpxchg, &racy };
	struct mv_paging pg;
	struct mv_walk w;
	const uint64_t va = 0xffff800000201abcull;
	const uint64_t leaf = 0x55000 | MV_PTE_P | MV_PTE_W | MV_PTE_G |
			      MV_PTE_PWT | MV_PTE_PAT4K | (9ull << 59);

	(void)state;
	map_kernel_page();
	put64(0x4008, leaf);
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &g), MV_WALK_OK);
	/* OK. */
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_WRITE, &w), MV_WALK_OK);
	assert_int_equal(w.status, MV_WALK_OK);
	assert_int_equal(w.level, 1);
	assert_int_equal(w.nr_entries, 4);
	assert_int_equal(w.perm, MV_PERM_W);
	assert_int_equal(w.pkey, 9);
	assert_int_equal(w.memtype, 5);  /* PAT | PWT */
	assert_int_equal(w.error_code, 0);
	assert_int_equal(w.gpa, 0x55abc);
	assert_int_equal(w.page_size, 4096);
	assert_int_equal(w.leaf, leaf | MV_PTE_A | MV_PTE_D);
	assert_int_equal(w.entry[3], leaf | MV_PTE_A | MV_PTE_D);
	assert_int_equal(w.entry[0], 0x2000 | TBL | MV_PTE_A);
	/* A rights fault: the denied translation, no leaf. */
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_USER, &w), MV_WALK_PF);
	assert_int_equal(w.level, 1);
	assert_int_equal(w.nr_entries, 4);
	assert_int_equal(w.error_code, MV_PF_P | MV_PF_U);
	assert_int_equal(w.gpa, 0x55abc);
	assert_int_equal(w.page_size, 4096);
	assert_int_equal(w.perm, MV_PERM_W);
	assert_int_equal(w.pkey, 9);
	assert_int_equal(w.memtype, 5);
	assert_int_equal(w.leaf, 0);
	/* Not present: no translation at all. */
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(&pg, &g, va + 0x1000, MV_ACC_FETCH, &w),
			 MV_WALK_PF);
	assert_int_equal(w.level, 1);
	assert_int_equal(w.nr_entries, 4);
	assert_int_equal(w.entry[3], 0);
	assert_int_equal(w.error_code, MV_PF_ID);
	assert_int_equal(w.gpa, 0);
	assert_int_equal(w.page_size, 0);
	assert_int_equal(w.perm, 0);
	assert_int_equal(w.pkey, 0);
	assert_int_equal(w.memtype, 0);
	assert_int_equal(w.leaf, 0);
	/* Non-canonical: #GP, nothing read. */
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(&pg, &g, 0x0000800000000000ull, 0, &w),
			 MV_WALK_GP);
	assert_int_equal(w.status, MV_WALK_GP);
	assert_int_equal(w.level, 0);
	assert_int_equal(w.nr_entries, 0);
	assert_int_equal(w.gpa | w.page_size | w.leaf | w.error_code, 0);
	assert_int_equal(w.perm | w.pkey | w.memtype, 0);
	/* RETRY: the entries of the last attempt, no translation. */
	put64(0x4008, leaf);
	racy.losses = 1000;
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(&pg, &g, va, MV_ACC_WRITE, &w),
			 MV_WALK_RETRY);
	assert_int_equal(w.status, MV_WALK_RETRY);
	assert_int_equal(w.level, 1);
	assert_int_equal(w.nr_entries, 4);
	assert_int_equal(w.gpa | w.page_size | w.leaf | w.error_code, 0);
	assert_int_equal(w.perm | w.pkey | w.memtype, 0);
	/* NOT_RAM: the entry outside RAM has value 0. */
	racy.losses = 0;
	put64(0x3008, 0x7ffff000 | TBL);
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(&pg, &g, va, 0, &w), MV_WALK_NOT_RAM);
	assert_int_equal(w.status, MV_WALK_NOT_RAM);
	assert_int_equal(w.level, 1);
	assert_int_equal(w.nr_entries, 4);
	assert_int_equal(w.entry_gpa[3], 0x7ffff008);
	assert_int_equal(w.entry[3], 0);
	assert_int_equal(w.gpa | w.page_size | w.leaf | w.error_code, 0);
	assert_int_equal(w.perm | w.pkey | w.memtype, 0);
	/* Paging off: identity. */
	struct mv_cpu_regs off = { .cr0 = MV_CR0_PE };
	assert_int_equal(mv_paging_init(&pg, &off, NULL, &g), MV_WALK_OK);
	memset(&w, 0x5a, sizeof(w));
	assert_int_equal(mv_walk(&pg, &g, 0x123456789ull, 0, &w), MV_WALK_OK);
	assert_int_equal(w.gpa, 0x23456789);
	assert_int_equal(w.page_size, 4096);
	assert_int_equal(w.perm, MV_PERM_W | MV_PERM_U);
	assert_int_equal(w.level | w.nr_entries | w.pkey | w.memtype, 0);
	assert_int_equal(w.leaf | w.error_code, 0);
}

/* A gmem whose cmpxchg fails with an error: the walk returns it. */
static int refusing_cmpxchg(void *o, uint64_t gpa, unsigned size,
			    uint64_t old, uint64_t val)
{
	(void)o, (void)gpa, (void)size, (void)old, (void)val;
	return -MV_ERESERVATION;
}

static void cmpxchg_errors_end_the_walk(void **state)
{
	struct mv_gmem g = { gm.read, refusing_cmpxchg, gm.opaque };
	struct mv_paging pg;
	struct mv_walk w;

	(void)state;
	map_kernel_page();
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &g), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &g, 0xffff800000201000ull, 0, &w),
			 -MV_ERESERVATION);
	assert_int_equal(w.status, MV_WALK_ERROR);
	assert_int_equal(w.gpa | w.page_size | w.leaf, 0);
	assert_int_equal(get64(0x1800), 0x2000 | TBL);  /* nothing written */
	/* Nothing to write: no cmpxchg, no error. */
	assert_int_equal(mv_walk(&pg, &g, 0xffff800000201000ull, MV_ACC_NO_AD,
				 &w), MV_WALK_OK);
	put64(0x1800, get64(0x1800) | MV_PTE_A);
	put64(0x2000, get64(0x2000) | MV_PTE_A);
	put64(0x3008, get64(0x3008) | MV_PTE_A);
	put64(0x4008, get64(0x4008) | MV_PTE_A);
	assert_int_equal(mv_walk(&pg, &g, 0xffff800000201000ull, 0, &w),
			 MV_WALK_OK);
}

/* A/D are set top first (design.md): an upper entry's A is never missing
 * while a lower one's A or D is already set, whatever stops the walk. */
struct order {
	struct mv_gmem inner;
	uint64_t gpa[8];
	unsigned n;
};

static int order_read(void *o, uint64_t gpa, unsigned size, uint64_t *v)
{
	struct order *r = o;

	return r->inner.read(r->inner.opaque, gpa, size, v);
}

static int order_cmpxchg(void *o, uint64_t gpa, unsigned size, uint64_t old,
			 uint64_t val)
{
	struct order *r = o;

	if (r->n < 8)
		r->gpa[r->n] = gpa;
	r->n++;
	return r->inner.cmpxchg(r->inner.opaque, gpa, size, old, val);
}

static void accessed_dirty_top_first(void **state)
{
	struct order ord = { .inner = gm };
	struct mv_gmem g = { order_read, order_cmpxchg, &ord };
	struct mv_paging pg;
	struct mv_walk w;

	(void)state;
	map_kernel_page();
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &g), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &g, 0xffff800000201000ull, MV_ACC_WRITE,
				 &w), MV_WALK_OK);
	assert_int_equal(ord.n, 4);
	assert_int_equal(ord.gpa[0], 0x1000 + 256 * 8);
	assert_int_equal(ord.gpa[1], 0x2000);
	assert_int_equal(ord.gpa[2], 0x3008);
	assert_int_equal(ord.gpa[3], 0x4008);
}

/* The empty-table memo is per level: page 0x4000 maps nothing as a PD
 * (its only entry is a 2 MiB page with reserved bit 13) but maps a 4 KiB
 * page as a PT. Seen first as the PD, it must still be scanned as the PT. */
static void dump_memo_is_per_level(void **state)
{
	struct mv_paging pg;
	struct collect c = { .n = 0 };

	(void)state;
	put64(0x1000, 0x2000 | TBL);          /* PML4[0] -> PDPT */
	put64(0x2000, 0x4000 | TBL);          /* PDPT[0] -> 0x4000 as a PD */
	put64(0x2008, 0x3000 | TBL);          /* PDPT[1] -> PD 0x3000 */
	put64(0x3000, 0x4000 | TBL);          /* PD[0] -> 0x4000 as a PT */
	put64(0x4000, 0x2000 | TBL | MV_PTE_PS);
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk_dump(&pg, &gm, collect_leaf, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.leaf[0].va, 1ull << 30);
	assert_int_equal(c.leaf[0].gpa, 0x2000);
	assert_int_equal(c.leaf[0].page_size, 4096);
	assert_int_equal(c.leaf[0].level, 1);
	assert_int_equal(c.leaf[0].entry_gpa, 0x4000);
	assert_int_equal(c.leaf[0].leaf, 0x2000 | TBL | MV_PTE_PS);
	assert_int_equal(c.leaf[0].perm, MV_PERM_W | MV_PERM_U);
}

/* A fetch is never a write, even with MV_ACC_WRITE given too: no D bit,
 * no W in the error code. */
static void fetch_is_no_write(void **state)
{
	struct mv_paging pg;
	struct mv_walk w;
	uint64_t va = 0xffff800000201000ull;

	(void)state;
	map_kernel_page();
	assert_int_equal(mv_paging_init(&pg, &long4, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, va, MV_ACC_FETCH | MV_ACC_WRITE,
				 &w), MV_WALK_OK);
	assert_false(get64(0x4008) & MV_PTE_D);
	assert_true(get64(0x4008) & MV_PTE_A);
	assert_int_equal(mv_walk(&pg, &gm, va + 0x1000,
				 MV_ACC_FETCH | MV_ACC_WRITE, &w), MV_WALK_PF);
	assert_int_equal(w.error_code, MV_PF_ID);
	/* A read-only page: a write would fault with WP, a fetch does not. */
	put64(0x4008, get64(0x4008) & ~MV_PTE_W);
	struct mv_cpu_regs r = long4;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(mv_walk(&pg, &gm, va, MV_ACC_FETCH | MV_ACC_WRITE,
				 &w), MV_WALK_OK);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(flat_bounds, setup),
		cmocka_unit_test_setup(modes_from_registers, setup),
		cmocka_unit_test_setup(paging_off_is_identity, setup),
		cmocka_unit_test_setup(legacy_pse36_and_pse_off, setup),
		cmocka_unit_test_setup(pae_pdptes_are_registers, setup),
		cmocka_unit_test_setup(canonical_addresses, setup),
		cmocka_unit_test_setup(tables_outside_ram, setup),
		cmocka_unit_test_setup(self_reference_is_bounded, setup),
		cmocka_unit_test_setup(accessed_dirty_races_and_rom, setup),
		cmocka_unit_test_setup(dump_lists_leaves_in_order, setup),
		cmocka_unit_test_setup(dump_skips_shared_empty_tables, setup),
		cmocka_unit_test_setup(null_arguments, setup),
		cmocka_unit_test_setup(failed_loads_change_nothing, setup),
		cmocka_unit_test_setup(result_fields_per_status, setup),
		cmocka_unit_test_setup(cmpxchg_errors_end_the_walk, setup),
		cmocka_unit_test_setup(accessed_dirty_top_first, setup),
		cmocka_unit_test_setup(dump_memo_is_per_level, setup),
		cmocka_unit_test_setup(fetch_is_no_write, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
