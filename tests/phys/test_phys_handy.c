/* Handy pages: refilled to the high watermark when below the low one,
 * requests halved until they fit the budget (a nearly full host still
 * hands out its last pages), surplus above the high watermark returned. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "phys/fixture.h"

static void watermarks(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vm_stats st;
	struct mv_host_vm_stats hs;
	uint8_t b = 1;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = fx_ram_vm(host, 256, 4, 16);
	assert_non_null(vm);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.handy, 0);        /* nothing until first needed */
	for (uint64_t g = 0; g < 13; g++)
		assert_int_equal(mv_vm_phys_write(vm, g << 12, &b, 1), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.handy, 3);        /* 16 - 13, no refill at 4 */
	assert_int_equal(st.handy_refills, 1);
	assert_int_equal(mv_vm_phys_write(vm, 13 << 12, &b, 1), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.handy, 15);       /* 3 < 4: refilled to 16 */
	assert_int_equal(st.handy_refills, 2);
	/* reset: 14 pages come back, 1 fits under the high mark, 13 go */
	assert_int_equal(mv_vm_reset(vm), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.handy, 16);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &hs), 0);
	assert_int_equal(hs.allocated[MV_ACCOUNT_BASE], 16);
	/* the recycled handy pages are zeroed */
	for (uint64_t g = 0; g < 16; g++) {
		uint8_t page[MV_PAGE_SIZE];

		assert_int_equal(mv_vm_phys_write(vm, (g << 12) + 7, &b, 1), 0);
		assert_int_equal(mv_vm_phys_read(vm, g << 12, page, 4096), 0);
		for (int i = 0; i < 4096; i++)
			assert_int_equal(page[i], i == 7);
	}
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* Budget 10 pages, handy high 16: refills of 16 are refused, 8 then 2
 * fit, and exactly 10 frames get written before -MV_EBUDGET. */
static void refill_shrinks_to_fit(void **state)
{
	struct mv_host_config hc = { .budget_pages = 10,
				     .overcommit = MV_OVERCOMMIT_ALLOW };
	struct mv_host *host;
	struct mv_vm *vm;
	uint8_t b = 1;
	uint64_t g = 0;
	int rc;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	vm = fx_ram_vm(host, 64, 4, 16);
	assert_non_null(vm);
	while ((rc = mv_vm_phys_write(vm, g << 12, &b, 1)) == 0)
		g++;
	assert_int_equal(rc, -MV_EBUDGET);
	assert_int_equal(g, 10);
	assert_int_equal(fx_state(vm, 10 << 12), MV_PAGE_ZERO);
	/* giving one back lets one more frame be written */
	uint64_t one = 0;
	assert_int_equal(mv_vm_balloon_inflate(vm, &one, 1), 0);
	assert_int_equal(mv_vm_phys_write(vm, 10 << 12, &b, 1), 0);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* A low watermark of 0 still refills an empty cache. */
static void low_mark_zero(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vm_stats st;
	uint8_t b = 1;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = fx_ram_vm(host, 16, 0, 2);
	assert_non_null(vm);
	for (uint64_t g = 0; g < 5; g++)
		assert_int_equal(mv_vm_phys_write(vm, g << 12, &b, 1), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.pages[MV_PAGE_ALLOCATED], 5);
	assert_int_equal(st.handy_refills, 3);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(watermarks),
		cmocka_unit_test(low_mark_zero),
		cmocka_unit_test(refill_shrinks_to_fit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
