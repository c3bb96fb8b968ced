/* Moving pages and defragmentation: content preserved, the owner's mover
 * called (without the pool lock), emptied chunks released, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

#define NGFN (3 * MV_CHUNK_PAGES)

/* A minimal owner: gfn -> page id, as the guest-physical layer keeps it. */
struct owner {
	struct mv_host *h;
	mv_vmid vm;
	mv_page_id map[NGFN];
	int calls;
	int refuse;
};

static int mover(void *opaque, mv_vmid vm, uint64_t gfn, mv_page_id old_id,
		 mv_page_id new_id)
{
	struct owner *o = opaque;
	struct mv_host_stats st;

	o->calls++;
	assert_int_equal(vm, o->vm);
	assert_true(gfn < NGFN);
	assert_int_equal(o->map[gfn], old_id);
	/* No pool lock is held: calling back in must not deadlock, and the
	 * old page cannot be freed under the move. */
	assert_int_equal(mv_host_get_stats(o->h, &st), 0);
	assert_int_equal(mv_host_free(o->h, vm, 1, &old_id), -MV_EBUSY);
	if (o->refuse)
		return -MV_EBUSY;
	assert_int_equal(mv_host_page_copy(o->h, new_id, old_id), 0);
	o->map[gfn] = new_id;
	return 0;
}

static void fill(struct owner *o, uint64_t gfn)
{
	uint64_t *p = mv_host_page_ptr(o->h, o->map[gfn]);

	for (unsigned i = 0; i < MV_PAGE_SIZE / 8; i++)
		p[i] = gfn * 1000003u + i;
}

static void check(struct owner *o, uint64_t gfn)
{
	const uint64_t *p = mv_host_page_ptr(o->h, o->map[gfn]);

	assert_non_null(p);
	for (unsigned i = 0; i < MV_PAGE_SIZE / 8; i++)
		assert_int_equal(p[i], gfn * 1000003u + i);
}

/* Three full chunks, then free @nfree[c] pages of chunk c+1. */
static struct owner *setup(const uint32_t nfree[3])
{
	struct owner *o = calloc(1, sizeof(*o));
	uint64_t gfns[NGFN];

	o->h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	o->vm = vm_new(o->h, NGFN);
	for (uint64_t g = 0; g < NGFN; g++)
		gfns[g] = g;
	assert_int_equal(mv_host_alloc(o->h, o->vm, MV_ACCOUNT_BASE, NGFN, gfns,
				       0, o->map), 0);
	for (uint64_t g = 0; g < NGFN; g++)
		fill(o, g);
	for (uint32_t c = 0; c < 3; c++) {
		uint32_t n = 0;

		for (uint64_t g = 0; g < NGFN && n < nfree[c]; g++) {
			if (o->map[g] && mv_page_chunk(o->map[g]) == c + 1) {
				assert_int_equal(mv_host_free(o->h, o->vm, 1, &o->map[g]), 0);
				o->map[g] = MV_NIL_PAGE;
				n++;
			}
		}
	}
	assert_int_equal(mv_host_vm_set_mover(o->h, o->vm, mover, o), 0);
	return o;
}

static void check_all(struct owner *o)
{
	for (uint64_t g = 0; g < NGFN; g++)
		if (o->map[g])
			check(o, g);
	assert_int_equal(pool_check(o->h), 0);
}

static void teardown(struct owner *o)
{
	mv_host_destroy(o->h);
	free(o);
}

static void test_defragment_vacates_and_releases(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	struct mv_host_stats st;
	uint32_t moved = 0;

	(void)state;
	assert_int_equal(mv_host_defragment(o->h, 1000, &moved), 0);
	assert_int_equal(moved, 12);
	assert_int_equal(o->calls, 12);
	assert_int_equal(mv_host_get_stats(o->h, &st), 0);
	assert_int_equal(st.pages_moved, 12);
	assert_int_equal(st.chunks, 2);
	assert_int_equal(st.chunks_released, 1);
	assert_int_equal(st.free_pages, 50 - 12);
	for (uint64_t g = 0; g < NGFN; g++)
		assert_true(!o->map[g] || mv_page_chunk(o->map[g]) != 3);
	check_all(o);
	/* Nothing left worth moving. */
	assert_int_equal(mv_host_defragment(o->h, 1000, &moved), 0);
	assert_int_equal(moved, 0);
	teardown(o);
}

static void test_defragment_bounded(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	uint32_t moved = 0;

	(void)state;
	assert_int_equal(mv_host_defragment(o->h, 5, &moved), 0);
	assert_int_equal(moved, 5);
	check_all(o);
	teardown(o);
}

static void test_move_page(void **state)
{
	static const uint32_t nfree[3] = { 10, 0, 400 };
	struct owner *o = setup(nfree);
	mv_page_id new_id = 0, old_id;
	uint64_t g = 0;

	(void)state;
	while (!o->map[g] || mv_page_chunk(o->map[g]) != 3)
		g++;
	old_id = o->map[g];
	assert_int_equal(mv_host_move_page(o->h, old_id, &new_id), 0);
	assert_int_equal(o->map[g], new_id);
	assert_int_equal(mv_page_chunk(new_id), 1);   /* the fuller chunk */
	assert_null(mv_host_page_ptr(o->h, old_id));
	check_all(o);
	/* Chunk 2 is full: no chunk is fuller, its pages stay. */
	while (!o->map[g] || mv_page_chunk(o->map[g]) != 2)
		g++;
	assert_int_equal(mv_host_move_page(o->h, o->map[g], NULL), -MV_ENOENT);
	teardown(o);
}

static void test_refusal_changes_nothing(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	struct mv_host_stats before, after;
	uint32_t moved = 1;
	uint64_t g = 0;

	(void)state;
	o->refuse = 1;
	while (!o->map[g] || mv_page_chunk(o->map[g]) != 3)
		g++;
	mv_page_id id = o->map[g];

	assert_int_equal(mv_host_get_stats(o->h, &before), 0);
	assert_int_equal(mv_host_move_page(o->h, id, NULL), -MV_EBUSY);
	assert_int_equal(o->map[g], id);
	assert_int_equal(mv_host_defragment(o->h, 100, &moved), 0);
	assert_int_equal(moved, 0);
	assert_int_equal(mv_host_get_stats(o->h, &after), 0);
	assert_true(host_stats_equal(&before, &after));
	check_all(o);
	/* Without a mover there is no move at all. */
	assert_int_equal(mv_host_vm_set_mover(o->h, o->vm, NULL, NULL), 0);
	o->calls = 0;
	assert_int_equal(mv_host_move_page(o->h, id, NULL), -MV_ESTATE);
	assert_int_equal(o->calls, 0);
	teardown(o);
}

/* The owner re-files a page under another frame; the mover sees that. */
static void test_set_gfn_reaches_mover(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	uint64_t g = 0, g2 = 0;
	mv_page_id id, new_id;

	(void)state;
	while (!o->map[g] || mv_page_chunk(o->map[g]) != 3)
		g++;
	while (o->map[g2])
		g2++;
	id = o->map[g];
	assert_int_equal(mv_host_page_set_gfn(o->h, o->vm, id, g2), 0);
	o->map[g2] = id;
	o->map[g] = MV_NIL_PAGE;
	fill(o, g2);
	assert_int_equal(mv_host_move_page(o->h, id, &new_id), 0);
	assert_int_equal(o->calls, 1);
	assert_int_equal(o->map[g2], new_id);
	check_all(o);
	teardown(o);
}

static void test_move_bad_input(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	unsigned char page[MV_PAGE_SIZE] = { 0 };
	mv_page_id sid;

	(void)state;
	assert_int_equal(mv_host_move_page(NULL, o->map[0], NULL), -MV_EINVAL);
	assert_int_equal(mv_host_move_page(o->h, MV_NIL_PAGE, NULL), -MV_EINVAL);
	assert_int_equal(mv_host_move_page(o->h, MV_ZERO_PAGE, NULL), -MV_EINVAL);
	assert_int_equal(mv_host_move_page(o->h, 0xffffffffu, NULL), -MV_EINVAL);
	assert_int_equal(mv_host_share_alloc(o->h, o->vm, page, 0, &sid), 0);
	assert_int_equal(mv_host_move_page(o->h, sid, NULL), -MV_EINVAL);
	assert_int_equal(mv_host_defragment(o->h, 0, NULL), -MV_EINVAL);
	assert_int_equal(mv_host_defragment(NULL, 1, NULL), -MV_EINVAL);
	assert_int_equal(mv_host_vm_set_mover(o->h, 999, mover, o), -MV_ENOENT);
	assert_int_equal(o->calls, 0);
	teardown(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defragment_vacates_and_releases),
		cmocka_unit_test(test_defragment_bounded),
		cmocka_unit_test(test_move_page),
		cmocka_unit_test(test_refusal_changes_nothing),
		cmocka_unit_test(test_set_gfn_reaches_mover),
		cmocka_unit_test(test_move_bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
