/* The cost of mv_walk_dump, counted in guest-memory reads (no clock): a
 * table shared by many paths, below which lie more than 32 K distinct
 * empty tables, costs one scan per distinct empty table plus one scan per
 * visit of a table that maps something, in 4- and 5-level paging. A memo
 * that forgets empty tables (a fixed-size one does once they outnumber its
 * slots) scans them again along every path and breaks the bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/mmu.h>

#define MEM_SIZE (4u << 20)
#define PATHS 64          /* top-level entries into the shared table */
#define FANOUT 66         /* empty tables below each of its 511 children */
#define TBL (MV_PTE_P | MV_PTE_W | MV_PTE_U)

struct counting {
	struct mv_gmem inner;
	uint64_t reads, limit;
};

/* Past the limit every read fails: a broken memo then ends quickly (all
 * tables look empty) and the count shows the bound was broken. */
static int counting_read(void *o, uint64_t gpa, unsigned size, uint64_t *v)
{
	struct counting *c = o;

	if (c->reads >= c->limit)
		return MV_GMEM_UNBACKED;
	c->reads++;
	return c->inner.read(c->inner.opaque, gpa, size, v);
}

static int count_leaf(void *o, const struct mv_walk_leaf *l)
{
	uint64_t *n = o;

	assert_int_equal(l->page_size, 2u << 20);
	assert_int_equal(l->gpa, 0x40000000);
	(*n)++;
	return 0;
}

/* Level `top` table T at 0x1000: PATHS entries -> shared S at 0x2000.
 * S[0] -> a chain down to one 2 MiB leaf (tables at 0x3000...), S[1..511]
 * -> child C_j at 0x10000 + j * 4 KiB, each with FANOUT entries pointing at
 * distinct empty tables high in the physical address space (beyond RAM:
 * every read of them fails, as for tables in a hole). */
static void build(uint64_t *mem, unsigned top)
{
	uint64_t idx = 0;

	for (unsigned i = 0; i < PATHS; i++)
		mem[0x1000 / 8 + i] = 0x2000 | TBL;
	uint64_t t = 0x2000;
	for (unsigned l = top - 1; l > 2; l--, t += 0x1000)
		mem[t / 8] = (t + 0x1000) | TBL;
	mem[t / 8] = 0x40000000 | TBL | MV_PTE_PS;  /* the PD entry: 2 MiB */
	for (unsigned j = 1; j < 512; j++) {
		uint64_t c = 0x10000 + j * 0x1000ull;

		mem[0x2000 / 8 + j] = c | TBL;
		for (unsigned k = 0; k < FANOUT; k++, idx++)
			mem[c / 8 + k] = ((1ull << 51) | (idx << 20)) | TBL;
	}
}

static void dump_cost(unsigned top)
{
	uint64_t *mem = calloc(1, MEM_SIZE);
	struct mv_cpu_regs r = {
		.cr0 = MV_CR0_PG | MV_CR0_PE, .cr3 = 0x1000,
		.cr4 = MV_CR4_PAE | (top == 5 ? MV_CR4_LA57 : 0),
		.efer = MV_EFER_LME | MV_EFER_LMA,
	};
	struct mv_cpu_model cpu = { .maxphyaddr = 52 };
	struct mv_gmem_flat flat;
	struct counting c;
	struct mv_gmem gm = { counting_read, NULL, &c };
	struct mv_paging pg;
	uint64_t leaves = 0;
	/* Distinct empty tables: 511 children and 511 * FANOUT below them,
	 * scanned once; tables that map something: the top one once, the
	 * shared one and the chain below it (top - 2 tables) once per path. */
	uint64_t empty = 511 + 511ull * FANOUT;
	uint64_t bound = 512 * (empty + 1 + PATHS * (top - 2ull));

	assert_non_null(mem);
	assert_true(511ull * FANOUT > 32768);
	build(mem, top);
	assert_int_equal(mv_gmem_flat_init(&c.inner, &flat, mem, 0, MEM_SIZE,
					   false), 0);
	c.reads = 0;
	c.limit = 4 * bound;
	assert_int_equal(mv_paging_init(&pg, &r, &cpu, &gm), MV_WALK_OK);
	assert_int_equal(pg.mode, top == 5 ? MV_PAGING_LONG5 : MV_PAGING_LONG4);
	assert_int_equal(mv_walk_dump(&pg, &gm, count_leaf, &leaves), 0);
	print_message("# %u-level: %llu reads, bound %llu, %llu leaves\n", top,
		      (unsigned long long)c.reads, (unsigned long long)bound,
		      (unsigned long long)leaves);
	assert_true(c.reads <= bound);
	assert_int_equal(leaves, PATHS);
	free(mem);
}

static void many_empty_tables_long4(void **state)
{
	(void)state;
	dump_cost(4);
}

static void many_empty_tables_long5(void **state)
{
	(void)state;
	dump_cost(5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(many_empty_tables_long4),
		cmocka_unit_test(many_empty_tables_long5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
