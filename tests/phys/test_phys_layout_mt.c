/* Layout changes while other threads use the VM: one thread adds and
 * removes ranges (the range array is reallocated and shifted each time),
 * writers and readers work in the ranges that stay, a reader watches the
 * layout generation without the lock. Every writer's page must end with
 * its last bytes, the generation must never go back, and the pool must
 * hold nothing after destruction. Run under TSan (label "concurrent"). */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/pool.h"
#include "phys/fixture.h"

#define PG MV_PAGE_SIZE
#define ROUNDS 2000
#define WRITERS 2

struct shared {
	struct mv_vm *vm;
	atomic_int stop;
	int failed;
	uint64_t gen_max;
};

struct writer {
	struct shared *s;
	uint64_t gpa;          /* its own page */
	atomic_uint last;      /* last value written and read back */
	atomic_int rc;
};

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	uint8_t page[PG], back[PG];

	for (uint32_t i = 1; !atomic_load(&w->s->stop); i++) {
		int rc;

		fx_fill(page, PG, i);
		rc = mv_vm_phys_write(w->s->vm, w->gpa, page, PG);
		if (!rc)
			rc = mv_vm_phys_read(w->s->vm, w->gpa, back, PG);
		if (!rc && memcmp(page, back, PG))
			rc = -1;
		if (rc) {
			atomic_store(&w->rc, rc);
			break;
		}
		atomic_store(&w->last, i);
	}
	return NULL;
}

/* Lock-free generation reads must never go back; descriptor lookups in
 * the ranges that stay must always succeed. */
static void *watcher_run(void *arg)
{
	struct shared *s = arg;
	uint64_t prev = 0;

	while (!atomic_load(&s->stop)) {
		uint64_t g = mv_vm_layout_gen(s->vm);

		if (g < prev || !mv_vm_page(s->vm, FX_HIGH_GPA >> 12))
			s->failed = 1;
		prev = g;
	}
	s->gen_max = prev;
	return NULL;
}

/* Ranges below, between and above the fixture's, so that each add and
 * remove shifts the array under the other threads. */
static int churn(struct mv_vm *vm, uint32_t round)
{
	static const uint64_t spots[] = { 3ull << 20, 1ull << 31, 1ull << 40 };
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .size = 8 * PG };
	uint8_t b = (uint8_t)round;
	int rc = 0;

	for (unsigned i = 0; i < 3 && !rc; i++) {
		r.gpa = spots[i];
		r.type = (enum mv_page_type)((round + i) % 3);
		rc = mv_vm_range_add(vm, &r);
		if (!rc && r.type == MV_PAGE_RAM)
			rc = mv_vm_phys_write(vm, r.gpa + PG, &b, 1);
	}
	for (unsigned i = 0; i < 3 && !rc; i++)
		rc = mv_vm_range_remove(vm, spots[i]);
	return rc;
}

static void layout_under_load(void **state)
{
	struct mv_host *host;
	struct fx_device dev;
	struct shared s = { .failed = 0 };
	struct writer w[WRITERS];
	pthread_t wt[WRITERS], watcher;
	struct mv_host_stats hs;
	uint8_t want[PG], got[PG];
	int rc = 0;

	(void)state;
	memset(&dev, 0, sizeof(dev));
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(fx_create(host, &dev, MV_BALLOON_WRITE_DEFLATE, 0,
				   &s.vm), 0);
	for (int i = 0; i < WRITERS; i++) {
		w[i] = (struct writer){ .s = &s, .gpa = i ? FX_HIGH_GPA + PG
							  : FX_LOW_GPA };
		assert_int_equal(pthread_create(&wt[i], NULL, writer_run,
						&w[i]), 0);
	}
	assert_int_equal(pthread_create(&watcher, NULL, watcher_run, &s), 0);
	/* The churn starts once every writer is under way. */
	for (int i = 0; i < WRITERS; i++)
		while (!atomic_load(&w[i].last) && !atomic_load(&w[i].rc))
			sched_yield();
	for (uint32_t i = 0; i < ROUNDS && !rc; i++)
		rc = churn(s.vm, i);
	atomic_store(&s.stop, 1);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(wt[i], NULL);
	pthread_join(watcher, NULL);
	assert_int_equal(rc, 0);
	assert_false(s.failed);
	assert_true(s.gen_max <= 6 * ROUNDS);
	assert_int_equal(mv_vm_layout_gen(s.vm), 6 * ROUNDS);
	for (int i = 0; i < WRITERS; i++) {
		assert_int_equal(atomic_load(&w[i].rc), 0);
		fx_fill(want, PG, atomic_load(&w[i].last));
		assert_int_equal(mv_vm_phys_read(s.vm, w[i].gpa, got, PG), 0);
		assert_memory_equal(got, want, PG);
	}
	assert_int_equal(pool_check(host), 0);
	mv_vm_destroy(s.vm);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.private_pages + hs.reserved_pages + hs.vms, 0);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(layout_under_load),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
