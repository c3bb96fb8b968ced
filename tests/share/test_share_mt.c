/* No write is lost while the scanner runs: two threads write patterns with
 * mv_vm_phys_write and one vCPU thread stores through its soft TLB (host
 * pointers from the shadow MMU, falling back to mv_vcpu_write) into pages
 * that the background scanner keeps merging. Afterwards every page holds
 * its last value, equal pages share one host page, the kernel holds less
 * shared memory (RssShmem) than before the scan, and pages written after
 * the merge are private again (one copy-on-write break each).
 *
 * And the background thread, in a round that does not end, lets the other
 * callers in between its batches. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <memvisor/vcpu.h>

#include "share/share_fixture.h"

#define PAGES 512
#define SPAN 128           /* pages per writer; the last span stays cold */
#define ITERS 4000
#define VALUES 3
#define ROUNDS 20          /* scanner rounds the writers outlast */

struct ctx {
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vcpu *cpu;
	struct mv_share *s;
	uint8_t last[PAGES];
	int errors;
	int stop;
};

struct writer {
	struct ctx *c;
	uint64_t first;
	int vcpu;
	uint32_t seed;
};

static uint32_t next(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	struct ctx *c = w->c;

	/* At least ITERS writes, and on until the main thread has scanned
	 * ROUNDS rounds under the writers' feet (the idle-priority thread
	 * alone may get no CPU while they run). */
	for (uint64_t i = 0; i < ITERS || !__atomic_load_n(&c->stop,
						       __ATOMIC_ACQUIRE); i++) {
		uint64_t g = w->first + next(&w->seed) % SPAN;
		uint8_t v = (uint8_t)(1 + next(&w->seed) % VALUES);
		int rc = w->vcpu ? sx_vcpu_fill(c->cpu, g, v) : sx_fill(c->vm, g, v);

		if (rc)
			__atomic_add_fetch(&c->errors, 1, __ATOMIC_RELAXED);
		c->last[g] = v;  /* this thread's pages only */
		if (w->vcpu)
			mv_vcpu_quiesce(c->cpu);
	}
	if (w->vcpu)
		mv_vcpu_exit(c->cpu);
	return NULL;
}

/* The kernel's resident shared memory of this process (memfd pages). */
static uint64_t rss_shmem_kb(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kb = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssShmem: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void no_lost_write(void **state)
{
	struct mv_host_config hc = { .free_cache_pages = 0 };
	struct mv_share_stats st, st2;
	struct writer w[3];
	pthread_t t[3];
	struct ctx *c = calloc(1, sizeof(*c));
	mv_page_id ids[VALUES + 1] = { 0 };
	uint64_t before_kb, after_kb;

	(void)state;
	assert_non_null(c);
	assert_int_equal(mv_host_create(&hc, &c->host), 0);
	c->vm = sx_vm(c->host, PAGES);
	assert_non_null(c->vm);
	assert_int_equal(mv_vcpu_create(c->vm, NULL, &c->cpu), 0);
	for (uint64_t g = 0; g < PAGES; g++) {
		c->last[g] = (uint8_t)(1 + g % VALUES);
		assert_int_equal(sx_fill(c->vm, g, c->last[g]), 0);
	}
	before_kb = rss_shmem_kb();
	assert_int_equal(mv_share_create(c->host, NULL, &c->s), 0);
	assert_int_equal(sx_add(c->s, c->vm, PAGES, 0, 0, 0), 0);
	assert_int_equal(mv_share_start(c->s), 0);
	for (int i = 0; i < 3; i++) {
		w[i] = (struct writer){ c, (uint64_t)i * SPAN, i == 2,
					(uint32_t)(i * 7919 + 1) };
		assert_int_equal(pthread_create(&t[i], NULL, write_loop, &w[i]),
				 0);
	}
	for (int r = 0; r < ROUNDS; r++) {
		int rc = mv_share_scan(c->s, 1, NULL);

		assert_true(rc == 0 || rc == -MV_ELIMIT);
	}
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(c->errors, 0);
	/* The scanner still runs: */
	assert_int_equal(sx_lost_write(c->vm, c->last, PAGES), PAGES);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	print_message("while writing: %llu rounds, %llu merged, %llu zero, "
		      "%llu volatile, %llu copy-on-write breaks\n",
		      (unsigned long long)st.rounds,
		      (unsigned long long)st.merged,
		      (unsigned long long)st.zero_reclaimed,
		      (unsigned long long)st.volatile_skips,
		      (unsigned long long)st.cow_breaks);
	assert_true(st.rounds >= ROUNDS && st.merged > 0 && st.cow_breaks > 0);
	assert_int_equal(mv_share_stop(c->s), 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
	assert_int_equal(sx_lost_write(c->vm, c->last, PAGES), PAGES);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_true(st.merged >= PAGES);
	/* Equal pages share one host page: one per value. */
	for (uint64_t g = 0; g < PAGES; g++) {
		mv_page_id id = sx_id(c->vm, g);

		assert_int_equal(sx_state(c->vm, g), MV_PAGE_SHARED);
		if (!ids[c->last[g]])
			ids[c->last[g]] = id;
		assert_int_equal(id, ids[c->last[g]]);
	}
	after_kb = rss_shmem_kb();
	assert_true(after_kb + (PAGES - 2 * VALUES) * 4 <= before_kb);
	/* Written again, through both paths: private, one break each. */
	for (uint64_t g = 0; g < PAGES; g += 2) {
		c->last[g] = (uint8_t)(0x80 + g % 64);
		if (g % 4)
			assert_int_equal(sx_vcpu_fill(c->cpu, g, c->last[g]), 0);
		else
			assert_int_equal(sx_fill(c->vm, g, c->last[g]), 0);
	}
	mv_vcpu_exit(c->cpu);
	assert_int_equal(sx_lost_write(c->vm, c->last, PAGES), PAGES);
	for (uint64_t g = 0; g < PAGES; g++)
		assert_int_equal(sx_state(c->vm, g),
				 g % 2 ? MV_PAGE_SHARED : MV_PAGE_ALLOCATED);
	assert_int_equal(mv_share_get_stats(c->s, &st2), 0);
	assert_int_equal(st2.cow_breaks, st.cow_breaks + PAGES / 2);
	mv_share_destroy(c->s);
	mv_vcpu_destroy(c->cpu);
	mv_vm_destroy(c->vm);
	mv_host_destroy(c->host);
	free(c);
}

/* A caller waits for at most the batch in flight, not for the background
 * thread to run out of work. The thread scans a span of 2^40 frames (all
 * but 64 outside the VM's RAM, skipped one by one), so its first round
 * never ends: when it kept its lock from batch to batch, the first call
 * made after it got going waited forever (the alarm ends such a run
 * instead of the suite's 600 s timeout). */
static void callers_not_starved(void **state)
{
	struct mv_share_vm_config vc = { .gfn = 0, .count = 1ull << 40 };
	struct timespec ms = { 0, 1000000 };
	struct mv_host *host;
	struct mv_share *s;
	struct mv_share_stats st = { 0 }, st2;
	struct mv_vm *vm, *vm2;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = sx_vm(host, 64);
	vm2 = sx_vm(host, 64);
	assert_non_null(vm);
	assert_non_null(vm2);
	for (uint64_t g = 0; g < 64; g++)
		assert_int_equal(sx_fill(vm, g, (uint8_t)(1 + g % 2)), 0);
	assert_int_equal(mv_share_create(host, NULL, &s), 0);
	assert_int_equal(mv_share_vm_add(s, vm, &vc), 0);
	assert_int_equal(mv_share_start(s), 0);
	alarm(120);
	while (st.scanned < 64) {  /* the thread has the RAM behind it */
		nanosleep(&ms, NULL);
		assert_int_equal(mv_share_get_stats(s, &st), 0);
	}
	for (int i = 0; i < 100; i++) {
		assert_int_equal(mv_share_get_stats(s, &st2), 0);
		assert_int_equal(st2.rounds, 0);
	}
	assert_int_equal(sx_add(s, vm2, 64, 0, 0, 0), 0);
	assert_int_equal(mv_share_set_rate(s, 0), 0);
	assert_int_equal(mv_share_pause(s, 1), 0);
	assert_int_equal(mv_share_pause(s, 0), 0);
	assert_int_equal(mv_share_vm_remove(s, vm2), 0);
	assert_int_equal(mv_share_stop(s), 0);
	alarm(0);
	assert_int_equal(mv_share_get_stats(s, &st2), 0);
	assert_true(st2.scanned >= st.scanned);
	assert_int_equal(st2.rounds, 0);
	mv_share_destroy(s);
	mv_vm_destroy(vm2);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_lost_write),
		cmocka_unit_test(callers_not_starved),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
