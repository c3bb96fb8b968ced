/* A/D updates racing with another vCPU writing the same page tables: the
 * walker's compare-and-exchange must never lose the other writer's bits,
 * and every walk must end (OK, or RETRY after repeated losses).
 *
 * Two runs. In the first the races are made to happen: before every third
 * A/D compare-and-exchange the walker's thread hands over to the writer
 * thread, which changes that very entry, and only then does the exchange,
 * which must fail; the test asserts that each of these exchanges failed,
 * that the walker walked again, and that no write of the other thread was
 * lost. In the second both threads run freely for a while and until at
 * least one race was lost, so that the unscripted interleavings (under
 * TSan too) are covered and known to have occurred. */
#include <pthread.h>
#include <time.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/mmu.h>

#define ROUNDS 200000
#define FORCED_WALKS 5000
#define AVL (1ull << 9)  /* ignored by the CPU: the other writer's bit */

static uint64_t mem[8 * 512];
/* The entries of the walk below: PML4[1], PDPT[1], PD[2], PT[3]. */
static const uint64_t entry_gpa[4] = { 0x1000 + 8, 0x2000 + 8, 0x3000 + 16,
				       0x4000 + 24 };
static uint64_t toggles[4];
static int stop;
static unsigned writes;  /* atomic: the writer's progress */

static struct mv_gmem flat_gm;
static unsigned losses;  /* cmpxchg the walker lost to the writer */

/* The scripted race: the walker publishes the entry it is about to
 * exchange and waits until the writer has changed it. */
static int handover;       /* atomic: 1 while the writer has the turn */
static uint64_t race_gpa;  /* written before handover = 1 */
static unsigned calls, forced, forced_lost;

static uint64_t *at(uint64_t gpa)
{
	return &mem[gpa / 8];
}

static unsigned stray;  /* exchanges of entries off the path (none) */

static int entry_index(uint64_t gpa)
{
	int e = 0;

	while (e < 3 && entry_gpa[e] != gpa)
		e++;
	stray += entry_gpa[e] != gpa;
	return e;
}

/* Flip AVL (and sometimes clear A and D) in entry e, atomically. */
static void other_write(int e, unsigned i)
{
	__atomic_fetch_xor(at(entry_gpa[e]), AVL, __ATOMIC_SEQ_CST);
	toggles[e]++;
	if (i & 1)
		__atomic_fetch_and(at(entry_gpa[e]), ~(MV_PTE_A | MV_PTE_D),
				   __ATOMIC_SEQ_CST);
}

/* Free running, with a yield now and then between the walker's read and
 * its exchange: on a loaded machine the two threads may share one core,
 * and the window must then open at a point where the writer can run. */
static int counting_cmpxchg(void *o, uint64_t gpa, unsigned size,
			    uint64_t old, uint64_t val)
{
	static unsigned n;
	int rc;

	if (++n % 16 == 0)
		sched_yield();
	rc = flat_gm.cmpxchg(o, gpa, size, old, val);

	losses += rc == MV_GMEM_CHANGED;
	return rc;
}

static int scripted_cmpxchg(void *o, uint64_t gpa, unsigned size,
			    uint64_t old, uint64_t val)
{
	bool force = calls++ % 3 == 0;
	int rc;

	if (force) {
		race_gpa = gpa;
		__atomic_store_n(&handover, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&handover, __ATOMIC_SEQ_CST))
			sched_yield();
	}
	rc = flat_gm.cmpxchg(o, gpa, size, old, val);
	forced += force;
	forced_lost += force && rc == MV_GMEM_CHANGED;
	return rc;
}

/* The other vCPU, scripted: one write to the announced entry per turn. */
static void *scripted_writer(void *arg)
{
	(void)arg;
	for (unsigned i = 0;; i++) {
		while (!__atomic_load_n(&handover, __ATOMIC_SEQ_CST)) {
			if (__atomic_load_n(&stop, __ATOMIC_SEQ_CST))
				return NULL;
			sched_yield();
		}
		other_write(entry_index(race_gpa), i);
		__atomic_store_n(&handover, 0, __ATOMIC_SEQ_CST);
	}
}

/* The other vCPU, free: writes all the time, so that the walker keeps
 * having A/D bits to set while entries change. */
static void *free_writer(void *arg)
{
	(void)arg;
	for (unsigned i = 0; !__atomic_load_n(&stop, __ATOMIC_RELAXED); i++) {
		other_write(i & 3, i);
		__atomic_fetch_add(&writes, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static const uint64_t va = (1ull << 39) | (1ull << 30) | (2ull << 21) |
			   (3ull << 12);

static void setup_tables(struct mv_paging *pg, struct mv_gmem *gm,
			 int (*cmpxchg)(void *, uint64_t, unsigned, uint64_t,
					uint64_t))
{
	const uint64_t tbl = MV_PTE_P | MV_PTE_W | MV_PTE_U;
	struct mv_cpu_regs r = { .cr0 = MV_CR0_PG | MV_CR0_PE, .cr3 = 0x1000,
				 .cr4 = MV_CR4_PAE,
				 .efer = MV_EFER_LME | MV_EFER_LMA };
	static struct mv_gmem_flat flat;

	memset(mem, 0, sizeof(mem));
	memset(toggles, 0, sizeof(toggles));
	*at(0x1000 + 8) = 0x2000 | tbl;
	*at(0x2000 + 8) = 0x3000 | tbl;
	*at(0x3000 + 16) = 0x4000 | tbl;
	*at(0x4000 + 24) = 0x99000 | tbl;
	assert_int_equal(mv_gmem_flat_init(&flat_gm, &flat, mem, 0,
					   sizeof(mem), true), 0);
	*gm = flat_gm;
	gm->cmpxchg = cmpxchg;
	assert_int_equal(mv_paging_init(pg, &r, NULL, gm), MV_WALK_OK);
	stop = 0;
}

/* One write walk: OK with A and D in the leaf, or RETRY. */
static bool walk_once(const struct mv_paging *pg, const struct mv_gmem *gm)
{
	struct mv_walk w;
	int rc = mv_walk(pg, gm, va, MV_ACC_WRITE | MV_ACC_USER, &w);

	assert_true(rc == MV_WALK_OK || rc == MV_WALK_RETRY);
	if (rc != MV_WALK_OK)
		return false;
	assert_int_equal(w.gpa, 0x99000);
	assert_true((w.leaf & (MV_PTE_A | MV_PTE_D)) == (MV_PTE_A | MV_PTE_D));
	return true;
}

static void no_write_of_the_other_thread_lost(void)
{
	for (unsigned e = 0; e < 4; e++)
		assert_int_equal(!!(*at(entry_gpa[e]) & AVL), toggles[e] & 1);
}

static void scripted_races_are_lost_and_retried(void **state)
{
	struct mv_gmem gm;
	struct mv_paging pg;
	pthread_t t;
	unsigned ok = 0;

	(void)state;
	setup_tables(&pg, &gm, scripted_cmpxchg);
	calls = forced = forced_lost = 0;
	assert_int_equal(pthread_create(&t, NULL, scripted_writer, NULL), 0);
	for (unsigned i = 0; i < FORCED_WALKS; i++) {
		/* The writer is idle: clear A/D so that the walk must set
		 * them again (four exchanges, at least one forced). */
		for (unsigned e = 0; e < 4; e++)
			__atomic_fetch_and(at(entry_gpa[e]),
					   ~(MV_PTE_A | MV_PTE_D),
					   __ATOMIC_SEQ_CST);
		if (!walk_once(&pg, &gm))
			continue;
		ok++;
		/* The writer is idle again: memory holds what was reported. */
		for (unsigned e = 0; e < 4; e++)
			assert_true(*at(entry_gpa[e]) & MV_PTE_A);
		assert_true(*at(entry_gpa[3]) & MV_PTE_D);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	no_write_of_the_other_thread_lost();
	print_message("# scripted: %u walks OK of %u, %u forced races, all "
		      "lost: %u\n", ok, FORCED_WALKS, forced, forced_lost);
	assert_int_equal(stray, 0);
	assert_true(forced >= FORCED_WALKS);  /* at least one per walk */
	assert_int_equal(forced_lost, forced);
	assert_true(ok > FORCED_WALKS / 2);
}

static void free_running_races(void **state)
{
	struct mv_gmem gm;
	struct mv_paging pg;
	pthread_t t;
	unsigned ok = 0, retry = 0, i;

	(void)state;
	setup_tables(&pg, &gm, counting_cmpxchg);
	losses = 0;
	writes = 0;
	assert_int_equal(pthread_create(&t, NULL, free_writer, NULL), 0);
	while (!__atomic_load_n(&writes, __ATOMIC_RELAXED))
		;  /* start together */
	/* Until both sides have done ROUNDS and a race was lost: bounded by
	 * time rather than by walks, since on a loaded machine (or under
	 * TSan) the writer may not run at all for millions of walks. */
	time_t until = time(NULL) + 60;

	for (i = 0; i < ROUNDS || !losses ||
	     __atomic_load_n(&writes, __ATOMIC_RELAXED) < ROUNDS; i++) {
		if (walk_once(&pg, &gm))
			ok++;
		else
			retry++;
		if (i % 4096 == 0 && time(NULL) > until)
			break;
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	pthread_join(t, NULL);
	no_write_of_the_other_thread_lost();
	print_message("# free: %u walks OK, %u gave up (RETRY), %u lost races\n",
		      ok, retry, losses);
	assert_true(ok > 0);
	assert_true(losses > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(scripted_races_are_lost_and_retried),
		cmocka_unit_test(free_running_races),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
