/* pool_check recounts the pool: a counter that disagrees with the chunks is
 * an internal invariant failure (-MV_EINTERNAL), not malformed input
 * (-MV_ECORRUPT belongs to callers' data). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

static void a_wrong_counter_is_an_internal_error(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm;
	mv_page_id id;

	(void)state;
	assert_non_null(h);
	vm = vm_new(h, 16);
	assert_int_not_equal(vm, 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, &id),
			 0);
	assert_int_equal(pool_check(h), 0);
	h->free_pages++;
	assert_int_equal(pool_check(h), -MV_EINTERNAL);
	h->free_pages--;
	h->shared_refs++;
	assert_int_equal(pool_check(h), -MV_EINTERNAL);
	h->shared_refs--;
	assert_int_equal(pool_check(h), 0);
	assert_int_equal(mv_host_free(h, vm, 1, &id), 0);
	assert_int_equal(mv_host_vm_destroy(h, vm), 0);
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(a_wrong_counter_is_an_internal_error),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
