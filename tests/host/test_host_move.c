/* Moving pages and defragmentation: content preserved, the owner's mover
 * called (without the pool lock), emptied chunks released, refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <pthread.h>
#include <unistd.h>
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
	int action;                 /* enum action, done inside the mover */
	int gate;                   /* ACT_WAIT: 1 entered, 2 may go on */
};

enum action {
	ACT_NONE,
	ACT_FREE_OLD,       /* the owner frees the page, then refuses */
	ACT_INFLATE_OLD,    /* the owner balloons it, then refuses */
	ACT_FREE_NEW,       /* frees the target it never had, then refuses */
	ACT_SWITCH_FREE,    /* switches, then frees its new page */
	ACT_SET_MOVER,      /* tries to unset its own mover */
	ACT_WAIT,           /* blocks until the test opens the gate */
};

static void act(struct owner *o, mv_vmid vm, uint64_t gfn, mv_page_id old_id,
		mv_page_id new_id)
{
	switch (o->action) {
	case ACT_FREE_OLD:
		assert_int_equal(mv_host_free(o->h, vm, 1, &old_id), 0);
		o->map[gfn] = MV_NIL_PAGE;
		break;
	case ACT_INFLATE_OLD:
		assert_int_equal(mv_host_balloon_inflate(o->h, vm, 1, &old_id), 0);
		o->map[gfn] = MV_NIL_PAGE;
		break;
	case ACT_FREE_NEW:
		assert_int_equal(mv_host_free(o->h, vm, 1, &new_id), 0);
		break;
	case ACT_SET_MOVER:
		assert_int_equal(mv_host_vm_set_mover(o->h, vm, NULL, NULL),
				 -MV_EBUSY);
		break;
	case ACT_WAIT:
		__atomic_store_n(&o->gate, 1, __ATOMIC_SEQ_CST);
		while (__atomic_load_n(&o->gate, __ATOMIC_SEQ_CST) != 2)
			usleep(1000);
		break;
	}
}

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
	 * frame of either page is frozen: @gfn is current. */
	assert_int_equal(mv_host_get_stats(o->h, &st), 0);
	assert_int_equal(mv_host_page_set_gfn(o->h, vm, old_id, gfn + 1),
			 -MV_EBUSY);
	assert_int_equal(mv_host_page_set_gfn(o->h, vm, new_id, gfn + 1),
			 -MV_EBUSY);
	act(o, vm, gfn, old_id, new_id);
	if (o->refuse || o->action == ACT_FREE_OLD ||
	    o->action == ACT_INFLATE_OLD || o->action == ACT_FREE_NEW)
		return -MV_EBUSY;
	assert_int_equal(mv_host_page_copy(o->h, new_id, old_id), 0);
	o->map[gfn] = new_id;
	if (o->action == ACT_SWITCH_FREE) {
		assert_int_equal(mv_host_free(o->h, vm, 1, &new_id), 0);
		o->map[gfn] = MV_NIL_PAGE;
	}
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

/* Affinity: A's chunk 1 (112 pages used) is vacated into A's own chunk 3
 * (200 free), never into B's fuller chunk 2 (50 free). */
/* Of two equally full chunks one still empties into the other. */
static void test_defragment_equal_chunks(void **state)
{
	static const uint32_t nfree[3] = { 312, 312, 512 };
	struct owner *o = setup(nfree);
	struct mv_host_stats st;
	uint32_t moved = 0;

	(void)state;
	assert_int_equal(mv_host_defragment(o->h, 1000, &moved), 0);
	assert_int_equal(moved, 200);
	assert_int_equal(mv_host_get_stats(o->h, &st), 0);
	assert_int_equal(st.chunks, 1);
	check_all(o);
	teardown(o);
}

struct gfn_probe {
	uint64_t seen;
	int calls;
};

static int record_gfn(void *opaque, mv_vmid vm, uint64_t gfn, mv_page_id old_id,
		      mv_page_id new_id)
{
	struct gfn_probe *p = opaque;

	(void)vm;
	(void)old_id;
	(void)new_id;
	p->seen = gfn;
	p->calls++;
	return -MV_EBUSY;
}

/* Every gfn width the descriptor keeps (46 bits, all ones = none) reaches
 * the mover intact; wider ones are -MV_ERANGE. */
static void test_gfn_bits_reach_mover(void **state)
{
	static const uint64_t ok[] = { 0, 1, 0xfffff, 1ull << 32, (1ull << 45) - 1,
				       1ull << 45, (1ull << 46) - 2, MV_GFN_NONE };
	static const uint64_t bad[] = { (1ull << 46) - 1, 1ull << 46, 1ull << 47,
					1ull << 62, MV_GFN_NONE - 1 };
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm = vm_new(h, 2 * MV_CHUNK_PAGES);
	mv_page_id ids[2 * MV_CHUNK_PAGES];
	uint64_t gfns[2 * MV_CHUNK_PAGES];
	struct gfn_probe p = { 0 };

	(void)state;
	for (uint32_t i = 0; i < 2 * MV_CHUNK_PAGES; i++)
		gfns[i] = i;
	gfns[0] = (1ull << 46) - 2;   /* given at allocation */
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 2 * MV_CHUNK_PAGES,
				       gfns, 0, ids), 0);
	/* ids[0..511] in one chunk, the rest in the other: empty the first
	 * but one page, so the other (full but 10) is a fuller target. */
	assert_int_equal(mv_host_free(h, vm, MV_CHUNK_PAGES - 1, ids + 1), 0);
	assert_int_equal(mv_host_free(h, vm, 10, ids + MV_CHUNK_PAGES), 0);
	assert_int_equal(mv_host_vm_set_mover(h, vm, record_gfn, &p), 0);
	assert_int_equal(mv_host_move_page(h, ids[0], NULL), -MV_EBUSY);
	assert_int_equal(p.seen, gfns[0]);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(mv_host_page_set_gfn(h, vm, ids[0], ok[i]), 0);
		assert_int_equal(mv_host_move_page(h, ids[0], NULL), -MV_EBUSY);
		assert_int_equal(p.seen, ok[i]);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mv_host_page_set_gfn(h, vm, ids[0], bad[i]),
				 -MV_ERANGE);
	assert_int_equal(p.calls, (int)(sizeof(ok) / sizeof(ok[0])) + 1);
	assert_int_equal(pool_check(h), 0);
	assert_int_equal(mv_host_vm_set_mover(h, vm, NULL, NULL), 0);
	mv_host_destroy(h);
}

static void test_defragment_keeps_affinity(void **state)
{
	struct owner *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	uint64_t gfns[2 * MV_CHUNK_PAGES];
	uint32_t moved = 0;

	(void)state;
	a->h = b->h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	a->vm = vm_new(a->h, NGFN);
	b->vm = vm_new(b->h, NGFN);
	for (uint64_t g = 0; g < 2 * MV_CHUNK_PAGES; g++)
		gfns[g] = g;
	assert_int_equal(mv_host_alloc(a->h, a->vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES,
				       gfns, 0, a->map), 0);
	assert_int_equal(mv_host_alloc(b->h, b->vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES,
				       gfns, 0, b->map), 0);
	assert_int_equal(mv_host_alloc(a->h, a->vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES,
				       gfns + MV_CHUNK_PAGES, 0,
				       a->map + MV_CHUNK_PAGES), 0);
	assert_int_equal(mv_page_chunk(b->map[0]), 2);
	for (uint64_t g = 0; g < 2 * MV_CHUNK_PAGES; g++)
		fill(a, g);
	assert_int_equal(mv_host_free(a->h, a->vm, 400, a->map), 0);
	assert_int_equal(mv_host_free(b->h, b->vm, 50, b->map), 0);
	assert_int_equal(mv_host_free(a->h, a->vm, 200, a->map + MV_CHUNK_PAGES), 0);
	for (uint64_t g = 0; g < 400; g++)
		a->map[g] = MV_NIL_PAGE;
	for (uint64_t g = 0; g < 50; g++)
		b->map[g] = MV_NIL_PAGE;
	for (uint64_t g = MV_CHUNK_PAGES; g < MV_CHUNK_PAGES + 200; g++)
		a->map[g] = MV_NIL_PAGE;
	assert_int_equal(mv_host_vm_set_mover(a->h, a->vm, mover, a), 0);
	assert_int_equal(mv_host_vm_set_mover(b->h, b->vm, mover, b), 0);
	assert_int_equal(mv_host_defragment(a->h, 1000, &moved), 0);
	assert_int_equal(moved, 112);
	assert_int_equal(b->calls, 0);
	for (uint64_t g = 0; g < 2 * MV_CHUNK_PAGES; g++)
		if (a->map[g])
			assert_int_equal(mv_page_chunk(a->map[g]), 3);
	assert_null(a->h->table[1]);           /* vacated and released */
	assert_int_equal(a->h->table[2]->free_count, 50);
	check_all(a);
	for (uint64_t g = 0; g < NGFN; g++)
		if (b->map[g])
			assert_int_equal(mv_page_chunk(b->map[g]), 2);
	mv_host_destroy(a->h);
	free(a);
	free(b);
}

/* B: chunk 1 (112 used) and chunk 3 (312 used); A: chunk 2, full. */
static struct owner *two_vms(struct owner **bp)
{
	struct owner *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	uint64_t gfns[2 * MV_CHUNK_PAGES];

	a->h = b->h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	a->vm = vm_new(a->h, NGFN);
	b->vm = vm_new(b->h, NGFN);
	for (uint64_t g = 0; g < 2 * MV_CHUNK_PAGES; g++)
		gfns[g] = g;
	assert_int_equal(mv_host_alloc(b->h, b->vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES,
				       gfns, 0, b->map), 0);
	assert_int_equal(mv_host_alloc(a->h, a->vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES,
				       gfns, 0, a->map), 0);
	assert_int_equal(mv_host_alloc(b->h, b->vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES,
				       gfns + MV_CHUNK_PAGES, 0,
				       b->map + MV_CHUNK_PAGES), 0);
	for (uint64_t g = 0; g < 2 * MV_CHUNK_PAGES; g++)
		fill(b, g);
	assert_int_equal(mv_host_free(b->h, b->vm, 400, b->map), 0);
	assert_int_equal(mv_host_free(b->h, b->vm, 200, b->map + MV_CHUNK_PAGES), 0);
	for (uint64_t g = 0; g < 400; g++)
		b->map[g] = MV_NIL_PAGE;
	for (uint64_t g = MV_CHUNK_PAGES; g < MV_CHUNK_PAGES + 200; g++)
		b->map[g] = MV_NIL_PAGE;
	assert_int_equal(mv_host_vm_set_mover(b->h, b->vm, mover, b), 0);
	*bp = b;
	return a;
}

/* Destroying A runs a bounded defragmentation by itself: B's 112 pages
 * leave chunk 1 for chunk 3, and only chunk 3 is left. */
static void test_destroy_defragments(void **state)
{
	struct owner *b, *a = two_vms(&b);
	struct mv_host_stats st;

	(void)state;
	assert_int_equal(mv_host_vm_destroy(a->h, a->vm), 0);
	assert_int_equal(mv_host_get_stats(a->h, &st), 0);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.pages_moved, 112);
	assert_int_equal(b->calls, 112);
	check_all(b);
	mv_host_destroy(a->h);
	free(a);
	free(b);
}

/* The idle worker does the same on its own once started; stop waits for
 * it; start twice and stop twice are refused. */
static void test_idle_worker_defragments(void **state)
{
	struct owner *b, *a = two_vms(&b);
	struct mv_host_stats st;

	(void)state;
	assert_int_equal(mv_host_vm_set_mover(a->h, a->vm, NULL, NULL), 0);
	/* A's full chunk goes, without the destroy's own pass. */
	assert_int_equal(mv_host_free(a->h, a->vm, MV_CHUNK_PAGES, a->map), 0);
	assert_int_equal(mv_host_get_stats(a->h, &st), 0);
	assert_int_equal(st.chunks, 2);
	assert_int_equal(mv_host_defrag_start(a->h, 0, 10), -MV_EINVAL);
	assert_int_equal(mv_host_defrag_start(a->h, 1, 0), -MV_EINVAL);
	assert_int_equal(mv_host_defrag_start(NULL, 1, 10), -MV_EINVAL);
	assert_int_equal(mv_host_defrag_stop(a->h), -MV_ESTATE);
	assert_int_equal(mv_host_defrag_start(a->h, 1, 16), 0);
	assert_int_equal(mv_host_defrag_start(a->h, 1, 16), -MV_EBUSY);
	for (int i = 0; i < 5000; i++) {
		assert_int_equal(mv_host_get_stats(a->h, &st), 0);
		if (st.chunks == 1)
			break;
		usleep(1000);
	}
	assert_int_equal(mv_host_defrag_stop(a->h), 0);
	assert_int_equal(mv_host_defrag_stop(a->h), -MV_ESTATE);
	assert_int_equal(mv_host_get_stats(a->h, &st), 0);
	assert_int_equal(st.chunks, 1);
	assert_int_equal(st.pages_moved, 112);
	check_all(b);
	/* Started again, it is stopped by mv_host_destroy. */
	assert_int_equal(mv_host_defrag_start(a->h, 1, 16), 0);
	mv_host_destroy(a->h);
	free(a);
	free(b);
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
	assert_true(host_stats_equal_but_punched(&before, &after));
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

static uint64_t page_in_chunk(struct owner *o, uint32_t chunk)
{
	uint64_t g = 0;

	while (!o->map[g] || mv_page_chunk(o->map[g]) != chunk)
		g++;
	return g;
}

/* The owner frees (or balloons) a page while the pool moves it: the call
 * succeeds at once (charge gone, balloon credited so that a deflate can
 * follow), the move is refused, and both pages end up free. */
static void free_during_move(int action)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	struct mv_host_stats before, after;
	struct mv_host_vm_stats vs;
	uint64_t g = page_in_chunk(o, 3);
	mv_page_id id = o->map[g], new_id = MV_NIL_PAGE;

	assert_int_equal(mv_host_get_stats(o->h, &before), 0);
	o->action = action;
	assert_int_equal(mv_host_move_page(o->h, id, &new_id), -MV_EBUSY);
	assert_int_equal(o->calls, 1);
	assert_int_equal(new_id, MV_NIL_PAGE);
	assert_int_equal(mv_host_get_stats(o->h, &after), 0);
	assert_int_equal(after.private_pages, before.private_pages - 1);
	assert_int_equal(after.free_pages, before.free_pages + 1);
	assert_int_equal(after.pages_moved, 0);
	assert_int_equal(after.ballooned_pages, action == ACT_INFLATE_OLD);
	assert_null(mv_host_page_ptr(o->h, id));
	assert_int_equal(mv_host_vm_get_stats(o->h, o->vm, &vs), 0);
	assert_int_equal(vs.allocated[MV_ACCOUNT_BASE], before.private_pages - 1);
	check_all(o);
	if (action == ACT_INFLATE_OLD)
		assert_int_equal(mv_host_balloon_deflate(o->h, o->vm, 1), 0);
	/* A second free of the same id is caught. */
	assert_int_equal(mv_host_free(o->h, o->vm, 1, &id), -MV_EINVAL);
	assert_int_equal(pool_check(o->h), 0);
	teardown(o);
}

static void test_free_during_move(void **state)
{
	(void)state;
	free_during_move(ACT_FREE_OLD);
	free_during_move(ACT_INFLATE_OLD);
}

/* Freeing the target of a move the owner then refuses (an id it never
 * had) changes no account: the page it keeps is still charged. */
static void test_free_of_unswitched_target(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	struct mv_host_stats before, after;
	uint64_t g = page_in_chunk(o, 3);
	mv_page_id id = o->map[g];

	(void)state;
	assert_int_equal(mv_host_get_stats(o->h, &before), 0);
	o->action = ACT_FREE_NEW;
	assert_int_equal(mv_host_move_page(o->h, id, NULL), -MV_EBUSY);
	assert_int_equal(mv_host_get_stats(o->h, &after), 0);
	assert_true(host_stats_equal_but_punched(&before, &after));
	assert_int_equal(o->map[g], id);
	check_all(o);
	assert_int_equal(mv_host_free(o->h, o->vm, 1, &id), 0);
	assert_int_equal(pool_check(o->h), 0);
	teardown(o);
}

/* The owner switches to the new page and frees it before the pool has
 * finished: one page's charge goes, both pages end up free. */
static void test_free_after_switch(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	struct mv_host_stats before, after;
	uint64_t g = page_in_chunk(o, 3);
	mv_page_id id = o->map[g], new_id;

	(void)state;
	assert_int_equal(mv_host_get_stats(o->h, &before), 0);
	o->action = ACT_SWITCH_FREE;
	assert_int_equal(mv_host_move_page(o->h, id, &new_id), 0);
	assert_int_equal(mv_host_get_stats(o->h, &after), 0);
	assert_int_equal(after.private_pages, before.private_pages - 1);
	assert_int_equal(after.free_pages, before.free_pages + 1);
	assert_null(mv_host_page_ptr(o->h, id));
	assert_null(mv_host_page_ptr(o->h, new_id));
	check_all(o);
	teardown(o);
}

struct unset {
	struct owner *o;
	uint64_t g;
	int rc, returned;
};

static void *move_thread(void *arg)
{
	struct unset *u = arg;

	u->rc = mv_host_move_page(u->o->h, u->o->map[u->g], NULL);
	return NULL;
}

static void *unset_thread(void *arg)
{
	struct unset *u = arg;

	assert_int_equal(mv_host_vm_set_mover(u->o->h, u->o->vm, NULL, NULL), 0);
	__atomic_store_n(&u->returned, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/* Unsetting the mover waits for the move in flight: once it returns the
 * old mover is never called again. From inside the mover it is refused. */
static void test_unset_mover_waits(void **state)
{
	static const uint32_t nfree[3] = { 20, 30, 500 };
	struct owner *o = setup(nfree);
	struct unset u = { o, page_in_chunk(o, 3), 1, 0 };
	pthread_t mt, ut;

	(void)state;
	o->action = ACT_SET_MOVER;
	assert_int_equal(mv_host_move_page(o->h, o->map[u.g], NULL), 0);
	o->action = ACT_WAIT;
	u.g = page_in_chunk(o, 3);
	assert_int_equal(pthread_create(&mt, NULL, move_thread, &u), 0);
	while (__atomic_load_n(&o->gate, __ATOMIC_SEQ_CST) != 1)
		usleep(1000);
	assert_int_equal(pthread_create(&ut, NULL, unset_thread, &u), 0);
	usleep(50000);
	assert_int_equal(__atomic_load_n(&u.returned, __ATOMIC_SEQ_CST), 0);
	__atomic_store_n(&o->gate, 2, __ATOMIC_SEQ_CST);
	pthread_join(ut, NULL);
	pthread_join(mt, NULL);
	assert_int_equal(u.rc, 0);
	assert_int_equal(o->calls, 2);
	assert_int_equal(mv_host_move_page(o->h, o->map[page_in_chunk(o, 3)],
					   NULL), -MV_ESTATE);
	assert_int_equal(o->calls, 2);
	check_all(o);
	assert_int_equal(mv_host_vm_destroy(o->h, o->vm), 0);
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
		cmocka_unit_test(test_defragment_equal_chunks),
		cmocka_unit_test(test_gfn_bits_reach_mover),
		cmocka_unit_test(test_defragment_keeps_affinity),
		cmocka_unit_test(test_destroy_defragments),
		cmocka_unit_test(test_idle_worker_defragments),
		cmocka_unit_test(test_defragment_bounded),
		cmocka_unit_test(test_move_page),
		cmocka_unit_test(test_refusal_changes_nothing),
		cmocka_unit_test(test_set_gfn_reaches_mover),
		cmocka_unit_test(test_move_bad_input),
		cmocka_unit_test(test_free_during_move),
		cmocka_unit_test(test_free_of_unswitched_target),
		cmocka_unit_test(test_free_after_switch),
		cmocka_unit_test(test_unset_mover_waits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
