/* Handy caches drained across threads: VMs on one over-committed pool,
 * each written by its own thread, so that every refill meets the budget
 * and empties the other caches while their owners work (the drain only
 * trylocks them, and asks a busy owner to let go at its next unlock). Each writer checks its bytes; the budget is never
 * exceeded; destruction, also while the others drain, leaves the pool
 * empty. Run under TSan (label "concurrent"). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/pool.h"
#include "phys/fixture.h"

#define PG MV_PAGE_SIZE
#define VMS 3
#define ROUNDS 150
#define BUDGET 76       /* 3 writers of 8..31 pages, caches of 32 */

struct writer {
	struct mv_host *host;
	uint32_t id;
	struct mv_vm *vm;
	unsigned budget_refusals;
	int rc;
};

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	uint8_t page[PG], back[PG];

	for (uint32_t round = 1; round <= ROUNDS && !w->rc; round++) {
		/* 8..31 pages: together sometimes more than the budget */
		uint64_t n = 8 + (round * 7 + w->id * 11) % 24;

		for (uint64_t g = 0; g < n && !w->rc; g++) {
			int rc;

			fx_fill(page, PG, round * 100 + (uint32_t)g);
			rc = mv_vm_phys_write(w->vm, g * PG, page, PG);
			if (rc == -MV_EBUDGET) {   /* pages in use elsewhere */
				w->budget_refusals++;
				continue;
			}
			if (!rc)
				rc = mv_vm_phys_read(w->vm, g * PG, back, PG);
			if (!rc && memcmp(page, back, PG))
				rc = -1;
			w->rc = rc;
		}
		if (!w->rc)
			w->rc = mv_vm_reset(w->vm);
	}
	return NULL;
}

static void drains_between_threads(void **state)
{
	struct mv_host_config hc = { .budget_pages = BUDGET,
				     .overcommit = MV_OVERCOMMIT_ALLOW };
	struct writer w[VMS];
	pthread_t t[VMS];
	struct mv_host_stats hs;
	struct mv_host *host;
	uint64_t drains = 0, drained = 0;
	unsigned refusals = 0;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	for (int i = 0; i < VMS; i++) {
		w[i] = (struct writer){ .host = host, .id = (uint32_t)i };
		w[i].vm = fx_ram_vm(host, 256, 8, 32);
		assert_non_null(w[i].vm);
	}
	for (int i = 0; i < VMS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer_run,
						&w[i]), 0);
	for (int i = 0; i < VMS; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < VMS; i++) {
		struct mv_vm_stats st;

		assert_int_equal(w[i].rc, 0);
		assert_int_equal(mv_vm_get_stats(w[i].vm, &st), 0);
		drains += st.handy_drains;
		drained += st.handy_drained;
		refusals += w[i].budget_refusals;
	}
	print_message("immediate drains %llu, cached pages given up %llu, "
		      "budget refusals %u\n", (unsigned long long)drains,
		      (unsigned long long)drained, refusals);
	assert_true(drained > 0);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_true(hs.private_pages <= BUDGET);
	assert_int_equal(pool_check(host), 0);
	for (int i = 0; i < VMS; i++)
		mv_vm_destroy(w[i].vm);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.private_pages + hs.vms, 0);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(drains_between_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
