/* Remaps go through the VM's request queue: a VM whose requests are
 * processed by a thread of its own (an EMT) gets its merges and zero
 * reclaims made on that thread, seen from the MMU's side (the notify hook
 * records the thread of every notification that changes a mapping); a VM
 * without one still merges, on the scanning thread; a merge of two VMs'
 * pages is made on the thread of the VM locked first; and a VM thread that
 * never processes its queue costs its wait time, not a hang. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "share/share_fixture.h"

#define PAGES 64
#define LONG_WAIT_US 10000000u  /* 10 s: the EMT always gets there first */

/* Which threads made the remaps of one VM. */
struct seen {
	pthread_t emt, other;    /* the thread expected, one not */
	int by_emt, by_other, by_rest;
};

static void on_notify(void *opaque, struct mv_vm *vm, uint64_t gfn,
		      uint64_t count, enum mv_notify_reason why)
{
	struct seen *s = opaque;
	pthread_t me = pthread_self();

	(void)vm;
	(void)gfn;
	(void)count;
	if (why == MV_NOTIFY_MONITOR)  /* arming: the scanner's own call */
		return;
	if (pthread_equal(me, s->emt))
		__atomic_add_fetch(&s->by_emt, 1, __ATOMIC_RELAXED);
	else if (pthread_equal(me, s->other))
		__atomic_add_fetch(&s->by_other, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&s->by_rest, 1, __ATOMIC_RELAXED);
}

/* A VMM's vCPU loop, reduced to processing its VM's requests. */
struct emt {
	struct mv_vm *vm;
	pthread_t tid;
	uint32_t ran;
	int stop;
};

static void *emt_loop(void *arg)
{
	struct emt *e = arg;
	struct timespec nap = { 0, 20000 };

	while (!__atomic_load_n(&e->stop, __ATOMIC_ACQUIRE)) {
		uint32_t n = 0;

		if (!mv_vm_process_requests(e->vm, &n))
			e->ran += n;
		nanosleep(&nap, NULL);
	}
	return NULL;
}

static void emt_start(struct emt *e, struct mv_vm *vm)
{
	e->vm = vm;
	e->ran = 0;
	e->stop = 0;
	assert_int_equal(pthread_create(&e->tid, NULL, emt_loop, e), 0);
}

static void emt_stop(struct emt *e)
{
	__atomic_store_n(&e->stop, 1, __ATOMIC_RELEASE);
	pthread_join(e->tid, NULL);
}

/* 16 pages of 0xAA, 16 of 0xBB, 16 zeros, 16 unique. */
static void fill_layout(struct mv_vm *vm)
{
	for (uint64_t g = 0; g < PAGES; g++) {
		uint8_t v = g < 16 ? 0xAA : g < 32 ? 0xBB : g < 48 ? 0 :
			    (uint8_t)(g + 1);

		assert_int_equal(sx_fill(vm, g, v), 0);
	}
}

static void check_layout(struct mv_vm *vm)
{
	for (uint64_t g = 0; g < 16; g++) {
		assert_int_equal(sx_state(vm, g), MV_PAGE_SHARED);
		assert_int_equal(sx_id(vm, g), sx_id(vm, 0));
		assert_int_equal(sx_state(vm, 16 + g), MV_PAGE_SHARED);
		assert_int_equal(sx_id(vm, 16 + g), sx_id(vm, 16));
		assert_int_equal(sx_state(vm, 32 + g), MV_PAGE_ZERO);
		assert_true(sx_holds(vm, g, 0xAA));
		assert_true(sx_holds(vm, 16 + g, 0xBB));
		assert_true(sx_holds(vm, 32 + g, 0));
		assert_true(sx_holds(vm, 48 + g, (uint8_t)(48 + g + 1)));
	}
}

static void add(struct mv_share *s, struct mv_vm *vm, uint32_t wait_us)
{
	struct mv_share_vm_config c = { .gfn = 0, .count = PAGES,
					.request_wait_us = wait_us };

	assert_int_equal(mv_share_vm_add(s, vm, &c), 0);
}

/* One VM: with its own thread (wait) or without (no thread, wait 0 or a
 * thread that never processes, 1 ms). */
static void one_vm(int with_emt, uint32_t wait_us)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_share *s;
	struct mv_share_stats st;
	struct mv_vm_stats vs;
	struct seen seen = { .other = pthread_self() };
	struct emt e;

	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = sx_vm(host, PAGES);
	assert_non_null(vm);
	fill_layout(vm);
	assert_int_equal(mv_share_create(host, NULL, &s), 0);
	add(s, vm, wait_us);
	if (with_emt) {
		emt_start(&e, vm);
		seen.emt = e.tid;
	} else {
		seen.emt = seen.other;
		seen.other = (pthread_t){ 0 };
	}
	mv_vm_set_notify(vm, on_notify, &seen);
	alarm(120);
	assert_int_equal(mv_share_scan(s, 0, NULL), 0);
	alarm(0);
	mv_vm_set_notify(vm, NULL, NULL);
	if (with_emt)
		emt_stop(&e);
	check_layout(vm);
	assert_int_equal(mv_share_get_stats(s, &st), 0);
	assert_int_equal(st.merged, 32);
	assert_int_equal(st.zero_reclaimed, 16);
	/* Each of 30 merges notifies two pages (the first of each content
	 * also becomes shared), each zero page one. */
	assert_int_equal(seen.by_emt, 30 * 2 + 16);
	assert_int_equal(seen.by_other, 0);
	assert_int_equal(seen.by_rest, 0);
	assert_int_equal(mv_vm_get_stats(vm, &vs), 0);
	assert_true(vs.requests_done >= 30 + 16);
	if (with_emt)
		assert_true(e.ran >= 30 + 16);
	mv_share_destroy(s);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* The EMT makes every remap; the scanning thread (main) none. */
static void merges_on_the_vms_thread(void **state)
{
	(void)state;
	one_vm(1, LONG_WAIT_US);
}

/* No thread of its own: the scanning thread processes the queue itself
 * and the merge completes there, on one thread. */
static void merges_without_a_thread(void **state)
{
	(void)state;
	one_vm(0, 0);
}

/* A VM said to have a thread that never comes: each remap waits its 1 ms,
 * then the scanner runs the queue itself. */
static void absent_thread_costs_its_wait(void **state)
{
	(void)state;
	one_vm(0, 1000);
}

/* Two VMs share across (cross_vm, same salt), each with its EMT: every
 * remap, of either VM's page, runs on the EMT of the VM locked first (the
 * lower address), since a request runs under its VM's lock and the other
 * VM may only be locked after it. */
static void cross_vm_on_the_first_vms_thread(void **state)
{
	struct mv_share_config cfg = { .cross_vm = 1 };
	struct mv_host *host;
	struct mv_vm *a, *b, *lo, *hi;
	struct mv_share *s;
	struct mv_share_stats st;
	struct seen sa, sb;
	struct emt ea, eb;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	a = sx_vm(host, PAGES);
	b = sx_vm(host, PAGES);
	assert_non_null(a);
	assert_non_null(b);
	lo = a < b ? a : b;
	hi = a < b ? b : a;
	for (uint64_t g = 0; g < PAGES; g++) {
		assert_int_equal(sx_fill(lo, g, 0xCC), 0);
		assert_int_equal(sx_fill(hi, g, 0xCC), 0);
	}
	assert_int_equal(mv_share_create(host, &cfg, &s), 0);
	add(s, lo, LONG_WAIT_US);
	add(s, hi, LONG_WAIT_US);
	emt_start(&ea, lo);
	emt_start(&eb, hi);
	sa = (struct seen){ .emt = ea.tid, .other = eb.tid };
	sb = sa;
	mv_vm_set_notify(lo, on_notify, &sa);
	mv_vm_set_notify(hi, on_notify, &sb);
	alarm(120);
	assert_int_equal(mv_share_scan(s, 0, NULL), 0);
	alarm(0);
	mv_vm_set_notify(lo, NULL, NULL);
	mv_vm_set_notify(hi, NULL, NULL);
	emt_stop(&ea);
	emt_stop(&eb);
	for (uint64_t g = 0; g < PAGES; g++) {
		assert_int_equal(sx_id(lo, g), sx_id(lo, 0));
		assert_int_equal(sx_id(hi, g), sx_id(lo, 0));
		assert_true(sx_holds(hi, g, 0xCC));
	}
	assert_int_equal(mv_share_get_stats(s, &st), 0);
	assert_int_equal(st.merged, 2 * PAGES);
	assert_true(sa.by_emt > 0 && sb.by_emt > 0);
	assert_int_equal(sa.by_other + sa.by_rest, 0);
	assert_int_equal(sb.by_other + sb.by_rest, 0);
	assert_int_equal(eb.ran, 0);
	mv_share_destroy(s);
	mv_vm_destroy(b);
	mv_vm_destroy(a);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(merges_on_the_vms_thread),
		cmocka_unit_test(merges_without_a_thread),
		cmocka_unit_test(absent_thread_costs_its_wait),
		cmocka_unit_test(cross_vm_on_the_first_vms_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
