/* A/D updates racing with another vCPU writing the same page tables: the
 * walker's compare-and-exchange must never lose the other writer's bits,
 * and every walk must end (OK, or RETRY after repeated losses). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/mmu.h>

#define ROUNDS 200000
#define AVL (1ull << 9)  /* ignored by the CPU: the other writer's bit */

static uint64_t mem[8 * 512];
static const uint64_t entry_gpa[4] = { 0x1000, 0x2000 + 8, 0x3000 + 16,
				       0x4000 + 24 };
static uint64_t toggles[4];
static int stop;
static unsigned writes;  /* atomic: the writer's progress */

static struct mv_gmem flat_gm;
static unsigned losses;  /* cmpxchg the walker lost to the writer */

static int counting_cmpxchg(void *o, uint64_t gpa, unsigned size,
			    uint64_t old, uint64_t val)
{
	int rc = flat_gm.cmpxchg(o, gpa, size, old, val);

	losses += rc == MV_GMEM_CHANGED;
	return rc;
}

static uint64_t *at(uint64_t gpa)
{
	return &mem[gpa / 8];
}

/* The other vCPU: flip AVL and clear A and D, atomically, all the time, so
 * that the walker keeps having A/D bits to set while entries change. */
static void *writer(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED); i++) {
		unsigned e = i & 3;

		__atomic_fetch_xor(at(entry_gpa[e]), AVL, __ATOMIC_SEQ_CST);
		toggles[e]++;
		__atomic_fetch_add(&writes, 1, __ATOMIC_RELAXED);
		if (i & 1)
			__atomic_fetch_and(at(entry_gpa[e]),
					   ~(MV_PTE_A | MV_PTE_D),
					   __ATOMIC_SEQ_CST);
	}
	return NULL;
}

static void ad_updates_do_not_lose_other_writes(void **state)
{
	const uint64_t tbl = MV_PTE_P | MV_PTE_W | MV_PTE_U;
	const uint64_t va = (1ull << 39) | (1ull << 30) | (2ull << 21) |
			    (3ull << 12);
	struct mv_cpu_regs r = { .cr0 = MV_CR0_PG | MV_CR0_PE, .cr3 = 0x1000,
				 .cr4 = MV_CR4_PAE,
				 .efer = MV_EFER_LME | MV_EFER_LMA };
	struct mv_gmem gm;
	struct mv_gmem_flat flat;
	struct mv_paging pg;
	pthread_t t;
	unsigned ok = 0, retry = 0;

	(void)state;
	*at(0x1000 + 8) = 0x2000 | tbl;
	*at(0x2000 + 8) = 0x3000 | tbl;
	*at(0x3000 + 16) = 0x4000 | tbl;
	*at(0x4000 + 24) = 0x99000 | tbl;
	assert_int_equal(mv_gmem_flat_init(&flat_gm, &flat, mem, 0,
					   sizeof(mem), true), 0);
	gm = flat_gm;
	gm.cmpxchg = counting_cmpxchg;
	assert_int_equal(mv_paging_init(&pg, &r, NULL, &gm), MV_WALK_OK);
	assert_int_equal(pthread_create(&t, NULL, writer, NULL), 0);
	while (!__atomic_load_n(&writes, __ATOMIC_RELAXED))
		;  /* start together */
	/* Walk until both sides have done ROUNDS, so that they overlap. */
	for (unsigned i = 0; i < ROUNDS ||
	     __atomic_load_n(&writes, __ATOMIC_RELAXED) < ROUNDS; i++) {
		struct mv_walk w;
		int rc = mv_walk(&pg, &gm, va, MV_ACC_WRITE | MV_ACC_USER, &w);

		assert_true(rc == MV_WALK_OK || rc == MV_WALK_RETRY);
		if (rc == MV_WALK_OK) {
			assert_int_equal(w.gpa, 0x99000);
			assert_true((w.leaf & (MV_PTE_A | MV_PTE_D)) ==
				    (MV_PTE_A | MV_PTE_D));
			ok++;
		} else {
			retry++;
		}
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	for (unsigned e = 0; e < 4; e++)
		assert_int_equal(!!(*at(entry_gpa[e]) & AVL), toggles[e] & 1);
	assert_true(ok > 0);
	print_message("# %u walks OK, %u gave up (RETRY), %u lost races\n",
		      ok, retry, losses);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ad_updates_do_not_lose_other_writes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
