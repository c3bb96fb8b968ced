/* Handy-cache settings and budget pressure: bad settings are refused
 * (never silently changed), a cache never takes more pages than its VM can
 * use, and under an over-committed budget a VM's write does not fail while
 * other VMs' caches hold the budget unused: their pages go back first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/pool.h"
#include "phys/fixture.h"

#define PG MV_PAGE_SIZE

static int create(struct mv_host *host, uint64_t pages, uint32_t low,
		  uint32_t high, struct mv_vm **vm)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = pages * PG };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .handy_low = low, .handy_high = high };

	return mv_vm_create(host, &cfg, vm);
}

/* Every (low, high) pair: refused ones leave no account behind; accepted
 * ones run with exactly the marks asked for (or 16/64 for 0/0). */
static void settings_table(void **state)
{
	static const struct {
		uint32_t low, high;
		int rc;
		uint32_t eff_low, eff_high;
	} t[] = {
		{ 0, 0, 0, 16, 64 },
		{ 0, 1, 0, 0, 1 },
		{ 1, 1, 0, 1, 1 },
		{ 8, 8, 0, 8, 8 },
		{ 4, 16, 0, 4, 16 },
		{ 0, MV_VM_HANDY_MAX, 0, 0, MV_VM_HANDY_MAX },
		{ MV_VM_HANDY_MAX, MV_VM_HANDY_MAX, 0, MV_VM_HANDY_MAX,
		  MV_VM_HANDY_MAX },
		{ 4, 0, -MV_EINVAL, 0, 0 },             /* low without high */
		{ UINT32_MAX, 0, -MV_EINVAL, 0, 0 },
		{ 9, 8, -MV_EINVAL, 0, 0 },             /* low above high */
		{ 2, 1, -MV_EINVAL, 0, 0 },
		{ 0, MV_VM_HANDY_MAX + 1, -MV_EINVAL, 0, 0 },
		{ 0, 1u << 24, -MV_EINVAL, 0, 0 },      /* 16 M pages */
		{ UINT32_MAX, UINT32_MAX, -MV_EINVAL, 0, 0 },
	};
	struct mv_host *host;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	for (unsigned i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		struct mv_vm *vm = NULL;
		struct mv_host_stats hs;
		struct mv_host_vm_stats as;
		int rc = create(host, 8192, t[i].low, t[i].high, &vm);

		if (rc != t[i].rc)
			fail_msg("low %u high %u: got %d, want %d", t[i].low,
				 t[i].high, rc, t[i].rc);
		if (rc) {
			assert_null(vm);
			assert_int_equal(mv_host_get_stats(host, &hs), 0);
			assert_int_equal(hs.vms + hs.reserved_pages, 0);
			continue;
		}
		/* the reservation carries the high mark */
		assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &as),
				 0);
		assert_int_equal(as.reserved.base, 8192 + t[i].eff_high);
		/* the first write fills the cache to the high mark */
		uint8_t b = 1;
		struct mv_vm_stats st;

		assert_int_equal(mv_vm_phys_write(vm, 0, &b, 1), 0);
		assert_int_equal(mv_vm_get_stats(vm, &st), 0);
		assert_int_equal(st.handy, t[i].eff_high - 1);
		mv_vm_destroy(vm);
	}
	mv_host_destroy(host);
}

/* A 256-page VM with the largest high mark takes at most its 256 pages,
 * however it is written, reset and written again. */
static void cache_bounded_by_ram(void **state)
{
	struct mv_host *host;
	struct mv_host_stats hs;
	struct mv_vm_stats st;
	struct mv_vm *vm;
	uint8_t b = 1;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(create(host, 256, MV_VM_HANDY_MAX, MV_VM_HANDY_MAX,
				&vm), 0);
	assert_int_equal(mv_vm_phys_write(vm, 0, &b, 1), 0);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.private_pages, 256);
	for (uint64_t g = 1; g < 256; g++)
		assert_int_equal(mv_vm_phys_write(vm, g * PG, &b, 1), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.handy, 0);
	assert_int_equal(mv_vm_reset(vm), 0);
	assert_int_equal(mv_vm_phys_write(vm, 7 * PG, &b, 1), 0);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.private_pages, 256);
	assert_int_equal(pool_check(host), 0);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* Budget 48 pages, over-committed; two VMs with caches of 48. The first
 * write of each takes the whole budget into its cache; the other VM's
 * write then empties that cache instead of failing. */
static void drain_under_budget(void **state)
{
	struct mv_host_config hc = { .budget_pages = 48,
				     .overcommit = MV_OVERCOMMIT_ALLOW };
	struct mv_host *host, *elsewhere;
	struct mv_vm *a, *b, *c;
	struct mv_vm_stats sa, sb;
	struct mv_host_stats hs;
	static uint8_t page[30 * PG];
	uint8_t x = 5;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	assert_int_equal(mv_host_create(NULL, &elsewhere), 0);
	assert_int_equal(create(host, 1024, 8, 48, &a), 0);
	assert_int_equal(create(host, 1024, 8, 48, &b), 0);
	assert_int_equal(create(elsewhere, 1024, 8, 48, &c), 0);
	assert_int_equal(mv_vm_phys_write(c, 0, &x, 1), 0);  /* other pool */
	assert_int_equal(mv_vm_phys_write(a, 0, &x, 1), 0);
	assert_int_equal(mv_vm_get_stats(a, &sa), 0);
	assert_int_equal(sa.handy, 47);
	/* b's first write: the budget is all in a's cache */
	assert_int_equal(mv_vm_phys_write(b, 0, &x, 1), 0);
	assert_int_equal(mv_vm_get_stats(a, &sa), 0);
	assert_int_equal(mv_vm_get_stats(b, &sb), 0);
	assert_int_equal(sa.handy, 0);
	assert_int_equal(sa.handy_drained, 47);
	assert_int_equal(sb.handy_drains, 1);
	/* 47 left: the refill asks for 48, then halves to 24 */
	assert_int_equal(sb.handy, 23);
	/* a 30-page write of a: its top-up gets 12 of the 23 pages left,
	 * the 18 more it plans in one allocation need b's cache */
	fx_fill(page, sizeof(page), 3);
	assert_int_equal(mv_vm_phys_write(a, PG, page, sizeof(page)), 0);
	assert_int_equal(mv_vm_get_stats(b, &sb), 0);
	assert_int_equal(sb.handy, 0);
	assert_int_equal(mv_vm_get_stats(a, &sa), 0);
	assert_int_equal(sa.handy_drains, 1);
	/* restore-style population of b (no cache: straight from the pool)
	 * drains a in turn */
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_true(48 - hs.private_pages < 16);
	assert_true(sa.handy > 0);
	assert_int_equal(mv_vm_phys_populate(b, 10, 16, page), 0);
	assert_int_equal(mv_vm_get_stats(a, &sa), 0);
	assert_int_equal(sa.handy, 0);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_true(hs.private_pages <= 48);
	/* the other pool's VM kept its cache */
	assert_int_equal(mv_vm_get_stats(c, &sa), 0);
	assert_int_equal(sa.handy, 47);
	assert_int_equal(sa.handy_drained, 0);
	/* when every page is in use, nothing helps: refused, no change */
	uint64_t g = 100;
	int rc;

	while ((rc = mv_vm_phys_write(a, g * PG, &x, 1)) == 0)
		g++;
	assert_int_equal(rc, -MV_EBUDGET);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.private_pages, 48);
	assert_int_equal(fx_state(a, g * PG), MV_PAGE_ZERO);
	assert_int_equal(mv_vm_get_stats(b, &sb), 0);
	assert_int_equal(sb.handy, 0);
	fx_fill(page, PG, 3);
	uint8_t back[PG];

	assert_int_equal(mv_vm_phys_read(a, PG, back, PG), 0);   /* kept */
	assert_memory_equal(back, page, PG);
	assert_int_equal(pool_check(host), 0);
	mv_vm_destroy(a);
	mv_vm_destroy(b);
	mv_vm_destroy(c);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.private_pages + hs.vms, 0);
	mv_host_destroy(host);
	mv_host_destroy(elsewhere);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(settings_table),
		cmocka_unit_test(cache_bounded_by_ram),
		cmocka_unit_test(drain_under_budget),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
