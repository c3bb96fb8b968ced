/* Accounts: reservations, the host budget under both over-commit policies
 * (a failed call changes nothing), ballooning, and destroying a VM. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

/* Everything observable: the pool's stats and every VM's. */
struct snapshot {
	struct mv_host_stats host;
	struct mv_host_vm_stats vm[4];
};

static void snap(struct mv_host *h, struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(mv_host_get_stats(h, &s->host), 0);
	for (mv_vmid vm = 1; vm < 4; vm++)
		mv_host_vm_get_stats(h, vm, &s->vm[vm]);
}

static void assert_unchanged(struct mv_host *h, const struct snapshot *before)
{
	struct snapshot now;

	snap(h, &now);
	assert_memory_equal(&now, before, sizeof(now));
	assert_int_equal(pool_check(h), 0);
}

static void test_budget_no_overcommit(void **state)
{
	struct mv_host *h = host_new(1000, MV_OVERCOMMIT_NONE, 2);
	struct mv_reservation r800 = { .base = 800 }, r300 = { .base = 300 };
	struct mv_reservation r200 = { .base = 200 }, r201 = { .base = 201 };
	struct snapshot s;
	mv_vmid a, b;
	mv_page_id ids[800];

	(void)state;
	assert_int_equal(mv_host_vm_create(h, &r800, &a), 0);
	snap(h, &s);
	assert_int_equal(mv_host_vm_create(h, &r300, &b), -MV_EBUDGET);
	assert_unchanged(h, &s);
	assert_int_equal(mv_host_vm_create(h, &r200, &b), 0);
	snap(h, &s);
	assert_int_equal(mv_host_vm_reserve(h, b, &r201), -MV_EBUDGET);
	assert_unchanged(h, &s);
	/* Within the reservations every allocation succeeds... */
	assert_int_equal(mv_host_alloc(h, a, MV_ACCOUNT_BASE, 800, NULL, 0, ids), 0);
	assert_int_equal(mv_host_alloc(h, b, MV_ACCOUNT_BASE, 200, NULL, 0, ids), 0);
	/* ...and the budget is never exceeded, not even by a shared page. */
	snap(h, &s);
	assert_int_equal(mv_host_share_alloc(h, a, ids, 0, &ids[0]), -MV_EBUDGET);
	assert_unchanged(h, &s);
	mv_host_destroy(h);
}

static void test_budget_overcommit(void **state)
{
	struct mv_host *h = host_new(1000, MV_OVERCOMMIT_ALLOW, 2);
	struct mv_reservation r800 = { .base = 800 };
	struct snapshot s;
	mv_vmid a, b;
	mv_page_id ids[800], sid;

	(void)state;
	assert_int_equal(mv_host_vm_create(h, &r800, &a), 0);
	assert_int_equal(mv_host_vm_create(h, &r800, &b), 0);
	assert_int_equal(mv_host_alloc(h, a, MV_ACCOUNT_BASE, 700, NULL, 0, ids), 0);
	snap(h, &s);
	assert_int_equal(s.host.reserved_pages, 1600);
	assert_int_equal(mv_host_alloc(h, b, MV_ACCOUNT_BASE, 301, NULL, 0, ids),
			 -MV_EBUDGET);
	assert_unchanged(h, &s);
	assert_int_equal(mv_host_alloc(h, b, MV_ACCOUNT_BASE, 300, NULL, 0, ids), 0);
	snap(h, &s);
	assert_int_equal(mv_host_alloc(h, b, MV_ACCOUNT_BASE, 1, NULL, 0, ids),
			 -MV_EBUDGET);
	assert_int_equal(mv_host_share_alloc(h, b, ids, 0, &sid), -MV_EBUDGET);
	assert_unchanged(h, &s);
	/* Freeing makes room again. */
	assert_int_equal(mv_host_free(h, b, 1, ids), 0);
	assert_int_equal(mv_host_share_alloc(h, b, mv_host_page_ptr(h, ids[1]),
					     0, &sid), 0);
	mv_host_destroy(h);
}

static void test_reservation_limits(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	struct mv_reservation r = { .base = 100, .shadow = 10, .fixed = 0 };
	struct mv_reservation small = { .base = 99, .shadow = 10 };
	struct snapshot s;
	mv_page_id ids[101];
	mv_vmid vm;

	(void)state;
	assert_int_equal(mv_host_vm_create(h, &r, &vm), 0);
	snap(h, &s);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 101, NULL, 0, ids),
			 -MV_ERESERVATION);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_FIXED, 1, NULL, 0, ids),
			 -MV_ERESERVATION);
	assert_unchanged(h, &s);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 100, NULL, 0, ids), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_SHADOW, 10, NULL, 0, ids), 0);
	snap(h, &s);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, ids),
			 -MV_ERESERVATION);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_SHADOW, 1, NULL, 0, ids),
			 -MV_ERESERVATION);
	/* A reservation may not drop below what is allocated. */
	assert_int_equal(mv_host_vm_reserve(h, vm, &small), -MV_ERESERVATION);
	assert_unchanged(h, &s);
	r.fixed = 5;
	assert_int_equal(mv_host_vm_reserve(h, vm, &r), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_FIXED, 5, NULL, 0, ids), 0);
	mv_host_destroy(h);
}

static void test_balloon_accounting(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	struct mv_reservation r = { .base = 100, .shadow = 4 };
	struct mv_host_vm_stats vs;
	struct mv_host_stats st;
	struct snapshot s;
	mv_page_id ids[100], sh;
	mv_vmid vm;

	(void)state;
	assert_int_equal(mv_host_vm_create(h, &r, &vm), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 100, NULL, 0, ids), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_SHADOW, 1, NULL, 0, &sh), 0);
	assert_int_equal(mv_host_balloon_inflate(h, vm, 30, ids + 70), 0);
	assert_int_equal(mv_host_vm_get_stats(h, vm, &vs), 0);
	assert_int_equal(vs.allocated[MV_ACCOUNT_BASE], 70);
	assert_int_equal(vs.ballooned, 30);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.private_pages, 71);
	assert_int_equal(st.ballooned_pages, 30);
	assert_null(mv_host_page_ptr(h, ids[70]));
	/* Ballooned pages stay charged: allocated + ballooned + new <= reserved. */
	snap(h, &s);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, ids + 70),
			 -MV_ERESERVATION);
	assert_int_equal(mv_host_balloon_inflate(h, vm, 1, &sh), -MV_EINVAL);
	assert_int_equal(mv_host_balloon_inflate(h, vm, 1, ids + 70), -MV_EINVAL);
	assert_int_equal(mv_host_balloon_deflate(h, vm, 31), -MV_EINVAL);
	assert_int_equal(mv_host_balloon_deflate(h, vm, 0), -MV_EINVAL);
	assert_unchanged(h, &s);
	assert_int_equal(mv_host_balloon_deflate(h, vm, 10), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 10, NULL, 0, ids + 70), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, ids + 80),
			 -MV_ERESERVATION);
	assert_int_equal(mv_host_vm_get_stats(h, vm, &vs), 0);
	assert_int_equal(vs.ballooned, 20);
	assert_int_equal(vs.allocated[MV_ACCOUNT_BASE], 80);
	assert_int_equal(pool_check(h), 0);
	mv_host_destroy(h);
}

static void test_vm_destroy(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 1);
	mv_vmid a = vm_new(h, 5000), b = vm_new(h, 5000);
	mv_page_id *ids = malloc(3000 * sizeof(*ids)), kept[10], sid;
	struct mv_host_stats st;
	struct snapshot s;

	(void)state;
	assert_int_equal(mv_host_alloc(h, a, MV_ACCOUNT_BASE, 3000, NULL, 0, ids), 0);
	assert_int_equal(mv_host_alloc(h, b, MV_ACCOUNT_BASE, 10, NULL, 0, kept), 0);
	for (int i = 0; i < 10; i++)
		memset(mv_host_page_ptr(h, kept[i]), 0x77, MV_PAGE_SIZE);
	assert_int_equal(mv_host_balloon_inflate(h, a, 5, ids), 0);
	assert_int_equal(mv_host_share_alloc(h, b, ids, 1, &sid), 0);
	assert_int_equal(mv_host_share_get(h, a, sid), 0);
	snap(h, &s);
	assert_int_equal(mv_host_vm_destroy(h, a), -MV_EBUSY);
	assert_unchanged(h, &s);
	assert_int_equal(mv_host_share_put(h, a, sid), 0);
	assert_int_equal(mv_host_vm_destroy(h, a), 0);
	assert_int_equal(mv_host_vm_destroy(h, a), -MV_ENOENT);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.private_pages, 10);
	assert_int_equal(st.ballooned_pages, 0);
	assert_int_equal(st.vms, 1);
	assert_int_equal(st.reserved_pages, 5000 + 128);
	/* A's five full chunks are gone but the cache of one; B's pages and
	 * its shared page are intact. */
	assert_int_equal(st.empty_cached_chunks, 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(*(unsigned char *)mv_host_page_ptr(h, kept[i]), 0x77);
	assert_null(mv_host_page_ptr(h, ids[100]));
	assert_int_equal(pool_check(h), 0);
	/* The handle is reused. */
	assert_int_equal(vm_new(h, 10), a);
	free(ids);
	mv_host_destroy(h);
}

static void test_vm_handles_limit(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	struct mv_reservation r = { .base = 1 };
	mv_vmid vm;

	(void)state;
	for (unsigned i = 1; i <= MV_HOST_MAX_VMS; i++) {
		assert_int_equal(mv_host_vm_create(h, &r, &vm), 0);
		assert_int_equal(vm, i);
	}
	assert_int_equal(mv_host_vm_create(h, &r, &vm), -MV_ELIMIT);
	assert_int_equal(mv_host_vm_destroy(h, 77), 0);
	assert_int_equal(mv_host_vm_create(h, &r, &vm), 0);
	assert_int_equal(vm, 77);
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_budget_no_overcommit),
		cmocka_unit_test(test_budget_overcommit),
		cmocka_unit_test(test_reservation_limits),
		cmocka_unit_test(test_balloon_accounting),
		cmocka_unit_test(test_vm_destroy),
		cmocka_unit_test(test_vm_handles_limit),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
