/* Descriptor flags and counters that nothing else pinned: reset and
 * sharing keep the dirty log right, the monitor counter saturates, a
 * deflate clears the balloon charge flag, a zero image costs no budget,
 * and the mapping cache's lookaside never answers for another chunk of
 * the same slot. Each test here was written after breaking that very
 * line of src/phys/ and seeing the suite stay green. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "phys/fixture.h"

#define PG MV_PAGE_SIZE

static uint64_t dirty_bits(struct mv_vm *vm, uint64_t gfn, uint64_t n)
{
	uint64_t bm[1] = { 0 };

	assert_true(n <= 64);
	assert_int_equal(mv_vm_dirty_collect(vm, gfn, n, bm), 0);
	return bm[0];
}

/* Reset changes the bytes of every page that was not ZERO: the dirty log
 * must report them (a migration would otherwise keep stale bytes). */
static void reset_marks_changed_pages_dirty(void **state)
{
	struct fx_ctx *c = *state;
	uint64_t g = 6;

	assert_int_equal(mv_vm_phys_write(c->vm, 2 * PG, "a", 1), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 4 * PG, "b", 1), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 6 * PG, "c", 1), 0);
	assert_int_equal(mv_vm_balloon_inflate(c->vm, &g, 1), 0);
	dirty_bits(c->vm, 0, 64);
	assert_int_equal(mv_vm_reset(c->vm), 0);
	assert_int_equal(dirty_bits(c->vm, 0, 64),
			 (1ull << 2) | (1ull << 4) | (1ull << 6));
}

/* Sharing does not change bytes: dirty pages stay dirty, clean ones
 * clean. */
static void share_keeps_dirty_flags(void **state)
{
	struct fx_ctx *c = *state;
	uint8_t page[PG];

	fx_fill(page, PG, 3);
	for (uint64_t g = 10; g < 14; g++)
		assert_int_equal(mv_vm_phys_write(c->vm, g * PG, page, PG), 0);
	dirty_bits(c->vm, 12, 2);        /* 12 and 13 clean, 10 and 11 dirty */
	assert_int_equal(mv_vm_share_pages(c->vm, 10, c->vm, 11), 0);
	assert_int_equal(mv_vm_share_pages(c->vm, 12, c->vm, 13), 0);
	assert_int_equal(fx_state(c->vm, 13 * PG), MV_PAGE_SHARED);
	assert_int_equal(dirty_bits(c->vm, 10, 4), 3);
	/* the zero merge keeps them too */
	memset(page, 0, PG);
	assert_int_equal(mv_vm_phys_write(c->vm, 20 * PG, page, PG), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 21 * PG, page, PG), 0);
	assert_int_equal(mv_vm_share_pages(c->vm, 20, c->vm, 21), 0);
	assert_int_equal(fx_state(c->vm, 20 * PG), MV_PAGE_ZERO);
	assert_int_equal(dirty_bits(c->vm, 20, 2), 3);
}

/* The per-page counter of monitored writes saturates at UINT16_MAX. */
static void monitor_hits_saturate(void **state)
{
	struct fx_ctx *c = *state;

	assert_int_equal(mv_vm_phys_write(c->vm, 30 * PG, "m", 1), 0);
	for (unsigned i = 0; i < UINT16_MAX + 5u; i++) {
		assert_int_equal(mv_vm_write_monitor(c->vm, 30, 1, NULL), 0);
		assert_int_equal(mv_vm_phys_write(c->vm, 30 * PG, "m", 1), 0);
	}
	assert_int_equal(mv_page_monitor_hits(mv_vm_page(c->vm, 30)),
			 UINT16_MAX);
}

/* A deflated page owes the host nothing any more. */
static void deflate_clears_balloon_charge(void **state)
{
	struct fx_ctx *c = *state;
	uint64_t g = 40;

	assert_int_equal(mv_vm_phys_write(c->vm, g * PG, "d", 1), 0);
	assert_int_equal(mv_vm_balloon_inflate(c->vm, &g, 1), 0);
	assert_true(mv_page_flags(mv_vm_page(c->vm, g)) & MV_PAGE_F_BALLOON_HOST);
	assert_int_equal(mv_vm_balloon_deflate(c->vm, &g, 1), 0);
	assert_false(mv_page_flags(mv_vm_page(c->vm, g)) &
		     MV_PAGE_F_BALLOON_HOST);
}

/* An image of zeros needs no host page: it fits any budget. */
static void zero_image_costs_no_budget(void **state)
{
	struct mv_host_config hc = { .budget_pages = 8,
				     .overcommit = MV_OVERCOMMIT_ALLOW };
	static const uint8_t zeros[512 * PG];
	struct mv_host *h;
	struct mv_vm *vm;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &h), 0);
	vm = fx_ram_vm(h, 600, 1, 1);
	assert_non_null(vm);
	assert_int_equal(mv_vm_phys_populate(vm, 0, 512, zeros), 0);
	assert_int_equal(fx_state(vm, 511 * PG), MV_PAGE_ZERO);
	mv_vm_destroy(vm);
	mv_host_destroy(h);
}

/* Chunks whose ids fall on the same lookaside slot (id mod 8), read in
 * turn under a bound that keeps them all mapped: each read must see its
 * own chunk's bytes. */
static void lookaside_slot_collisions(void **state)
{
	struct mv_host *h;
	const uint64_t pages = 10 * 512;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .size = pages * PG };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = 16 };
	struct mv_vm *vm;
	uint64_t first[64];
	uint32_t chunk[64], n = 0;
	uint8_t page[PG], got[PG];

	(void)state;
	assert_int_equal(mv_host_create(NULL, &h), 0);
	assert_int_equal(mv_vm_create(h, &cfg, &vm), 0);
	for (uint64_t g = 0; g < pages; g++) {
		fx_fill(page, PG, (uint32_t)g);
		assert_int_equal(mv_vm_phys_write(vm, g * PG, page, PG), 0);
	}
	for (uint64_t g = 0; g < pages && n < 64; g++) {
		uint32_t ch = mv_page_chunk(mv_page_host_id(mv_vm_page(vm, g)));
		uint32_t i;

		for (i = 0; i < n && chunk[i] != ch; i++)
			;
		if (i == n) {
			chunk[n] = ch;
			first[n++] = g;
		}
	}
	assert_true(n >= 9);
	for (int round = 0; round < 3; round++) {
		for (uint32_t i = 0; i < n; i++) {
			fx_fill(page, PG, (uint32_t)first[i]);
			assert_int_equal(mv_vm_phys_read(vm, first[i] * PG, got,
							 PG), 0);
			assert_memory_equal(got, page, PG);
		}
	}
	mv_vm_destroy(vm);
	mv_host_destroy(h);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(reset_marks_changed_pages_dirty),
		T(share_keeps_dirty_flags),
		T(monitor_hits_saturate),
		T(deflate_clears_balloon_charge),
		cmocka_unit_test(zero_image_costs_no_budget),
		cmocka_unit_test(lookaside_slot_collisions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
