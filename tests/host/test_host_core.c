/* Core of the host pool: create/destroy, accounts, batch alloc and free,
 * page addresses, the zero page, zeroed allocation after reuse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/host_test.h"

static void test_create_defaults(void **state)
{
	struct mv_host *h = NULL;
	struct mv_host_stats st;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &h), 0);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.budget_pages, 0);
	assert_int_equal(st.chunks, 0);
	assert_int_equal(st.vms, 0);
	mv_host_destroy(h);
	mv_host_destroy(NULL);
}

static void test_alloc_free_roundtrip(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid vm = vm_new(h, 4096);
	mv_page_id ids[1000];
	struct mv_host_vm_stats vs;
	struct mv_host_stats st;

	(void)state;
	assert_non_null(h);
	assert_int_not_equal(vm, 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1000, NULL, 0, ids), 0);
	for (int i = 0; i < 1000; i++) {
		unsigned char *p = mv_host_page_ptr(h, ids[i]);

		assert_non_null(p);
		assert_true(mv_page_chunk(ids[i]) >= 1);
		memset(p, i & 0xff, MV_PAGE_SIZE);
	}
	for (int i = 0; i < 1000; i++) {
		unsigned char *p = mv_host_page_ptr(h, ids[i]);

		assert_int_equal(p[0], i & 0xff);
		assert_int_equal(p[MV_PAGE_SIZE - 1], i & 0xff);
	}
	assert_int_equal(mv_host_vm_get_stats(h, vm, &vs), 0);
	assert_int_equal(vs.allocated[MV_ACCOUNT_BASE], 1000);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.private_pages, 1000);
	assert_int_equal(st.chunks, 2);
	assert_int_equal(st.free_pages, 2 * MV_CHUNK_PAGES - 1000);
	assert_int_equal(mv_host_free(h, vm, 1000, ids), 0);
	assert_null(mv_host_page_ptr(h, ids[0]));
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.private_pages, 0);
	assert_int_equal(st.free_pages, 2 * MV_CHUNK_PAGES);
	assert_int_equal(mv_host_vm_destroy(h, vm), 0);
	mv_host_destroy(h);
}

/* The permissions of the mapping holding @p, from /proc/self/maps. */
static void mapping_perms(const void *p, char perms[5])
{
	char line[512];
	FILE *f = fopen("/proc/self/maps", "r");
	unsigned long lo, hi;

	assert_non_null(f);
	perms[0] = 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, perms) == 3 &&
		    (uintptr_t)p >= lo && (uintptr_t)p < hi)
			break;
	fclose(f);
}

static void test_zero_page(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid vm = vm_new(h, 16);
	const unsigned char *z = mv_host_page_ptr(h, MV_ZERO_PAGE);
	char perms[5];

	(void)state;
	assert_non_null(z);
	for (unsigned i = 0; i < MV_PAGE_SIZE; i++)
		assert_int_equal(z[i], 0);
	assert_null(mv_host_page_ptr(h, MV_NIL_PAGE));
	/* Read-only: nothing can write it. */
	mapping_perms(z, perms);
	assert_string_equal(perms, "r--p");
	/* Nor free it, share it, or copy into it. */
	assert_int_equal(mv_host_free(h, vm, 1, &(mv_page_id){ MV_ZERO_PAGE }),
			 -MV_EINVAL);
	assert_int_equal(mv_host_share_get(h, vm, MV_ZERO_PAGE), -MV_EINVAL);
	assert_int_equal(mv_host_share_put(h, vm, MV_ZERO_PAGE), -MV_EINVAL);
	assert_ptr_equal(mv_host_page_ptr(h, MV_ZERO_PAGE), z);
	mv_host_destroy(h);
}

static void test_zeroed_after_reuse(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid vm = vm_new(h, 4096);
	mv_page_id ids[600], again[600];

	(void)state;
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 600, NULL, 0, ids), 0);
	for (int i = 0; i < 600; i++)
		memset(mv_host_page_ptr(h, ids[i]), 0xa5, MV_PAGE_SIZE);
	assert_int_equal(mv_host_free(h, vm, 300, ids), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 600, NULL,
				       MV_ALLOC_ZEROED, again), 0);
	for (int i = 0; i < 600; i++) {
		const unsigned char *p = mv_host_page_ptr(h, again[i]);

		for (unsigned j = 0; j < MV_PAGE_SIZE; j += 64)
			assert_int_equal(p[j], 0);
	}
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_defaults),
		cmocka_unit_test(test_alloc_free_roundtrip),
		cmocka_unit_test(test_zero_page),
		cmocka_unit_test(test_zeroed_after_reuse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
