/* The page-sharing scanner on one thread: merging within a VM, zero-page
 * reclaim, copy-on-write afterwards, each isolation knob (no cross-VM
 * sharing by default, salts, opt-out, zero-only), the sharer limit, cold
 * page selection through the write monitor, the background thread, and
 * bad arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include "share/share_fixture.h"

#define PAGES 64

struct ctx {
	struct mv_host *host;
	struct mv_vm *a, *b;
	struct mv_share *s;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c || mv_host_create(NULL, &c->host))
		return -1;
	c->a = sx_vm(c->host, PAGES);
	c->b = sx_vm(c->host, PAGES);
	if (!c->a || !c->b)
		return -1;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	mv_share_destroy(c->s);
	mv_vm_destroy(c->a);
	mv_vm_destroy(c->b);
	mv_host_destroy(c->host);
	free(c);
	return 0;
}

static void scanner(struct ctx *c, uint32_t max_sharing, int cross_vm)
{
	struct mv_share_config cfg = { .max_sharing = max_sharing,
				       .cross_vm = cross_vm };

	assert_int_equal(mv_share_create(c->host, &cfg, &c->s), 0);
}

static uint64_t host_shared(struct ctx *c)
{
	struct mv_host_stats hs;

	assert_int_equal(mv_host_get_stats(c->host, &hs), 0);
	return hs.shared_pages;
}

/* 16 pages of 0xAA, 16 of 0xBB, 16 written with zeros, 16 unique. */
static void fill_layout(struct mv_vm *vm)
{
	for (uint64_t g = 0; g < PAGES; g++) {
		uint8_t v = g < 16 ? 0xAA : g < 32 ? 0xBB : g < 48 ? 0 :
			    (uint8_t)(g + 1);

		assert_int_equal(sx_fill(vm, g, v), 0);
	}
}

static void merges_within_vm(void **state)
{
	struct ctx *c = *state;
	struct mv_share_stats st, vs;
	uint32_t rounds;

	scanner(c, 0, 0);
	fill_layout(c->a);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 0, 0), 0);
	assert_int_equal(mv_share_scan(c->s, 0, &rounds), 0);
	/* Round 1 arms the monitor, round 2 merges, round 3 finds nothing
	 * left to do. */
	assert_int_equal(rounds, 3);
	for (uint64_t g = 0; g < 16; g++) {
		assert_int_equal(sx_state(c->a, g), MV_PAGE_SHARED);
		assert_int_equal(sx_id(c->a, g), sx_id(c->a, 0));
		assert_int_equal(sx_state(c->a, 16 + g), MV_PAGE_SHARED);
		assert_int_equal(sx_id(c->a, 16 + g), sx_id(c->a, 16));
		assert_int_equal(sx_state(c->a, 32 + g), MV_PAGE_ZERO);
		assert_int_equal(sx_state(c->a, 48 + g),
				 MV_PAGE_WRITE_MONITORED);
		assert_true(sx_holds(c->a, g, 0xAA));
		assert_true(sx_holds(c->a, 16 + g, 0xBB));
		assert_true(sx_holds(c->a, 32 + g, 0));
		assert_true(sx_holds(c->a, 48 + g, (uint8_t)(48 + g + 1)));
	}
	assert_int_not_equal(sx_id(c->a, 0), sx_id(c->a, 16));
	assert_int_equal(host_shared(c), 2);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.merged, 32);
	assert_int_equal(st.zero_reclaimed, 16);
	assert_int_equal(st.armed, 64);
	assert_int_equal(st.scanned, 3 * 64);
	/* Round 2: 48 pages; round 3 hashes the 16 unique ones again. */
	assert_int_equal(st.hashed, 48 + 16);
	assert_int_equal(st.rounds, 3);
	assert_int_equal(st.vms, 1);
	assert_int_equal(st.cow_breaks, 0);
	/* A write copies the shared page; the others keep the old bytes. */
	assert_int_equal(sx_fill(c->a, 3, 0x11), 0);
	assert_int_equal(sx_state(c->a, 3), MV_PAGE_ALLOCATED);
	assert_true(sx_holds(c->a, 3, 0x11));
	assert_true(sx_holds(c->a, 4, 0xAA));
	assert_int_equal(mv_share_vm_get_stats(c->s, c->a, &vs), 0);
	assert_int_equal(vs.cow_breaks, 1);
	assert_int_equal(vs.merged, 32);
	/* Scanning again changes nothing else and is done at once once the
	 * written page is cold. */
	assert_int_equal(mv_share_scan(c->s, 0, &rounds), 0);
	assert_int_equal(sx_state(c->a, 3), MV_PAGE_WRITE_MONITORED);
	assert_int_equal(host_shared(c), 2);
}

/* A span over holes, ROM, MMIO, untouched and ballooned RAM: pages that
 * need nothing are passed in runs, yet every RAM page counts as scanned
 * once a round (and nothing else), and the pages between them, runs
 * longer than one pass included, are merged as anywhere. */
static void idle_pages_passed(void **state)
{
	struct ctx *c = *state;
	enum { LOW = 6000, HIGH_GFN = 10000, HIGH = 200 };
	struct mv_vm_range r[] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = LOW * MV_PAGE_SIZE,
		  .name = "low" },
		{ .type = MV_PAGE_ROM, .gpa = (LOW + 10) * MV_PAGE_SIZE,
		  .size = 16 * MV_PAGE_SIZE, .name = "rom" },
		{ .type = MV_PAGE_MMIO, .gpa = (LOW + 30) * MV_PAGE_SIZE,
		  .size = 16 * MV_PAGE_SIZE, .name = "dev" },
		{ .type = MV_PAGE_RAM, .gpa = HIGH_GFN * MV_PAGE_SIZE,
		  .size = HIGH * MV_PAGE_SIZE, .name = "high" },
	};
	struct mv_vm_config cfg = { .ranges = r, .nranges = 4 };
	/* Written pages: one at each end of the low range, two after an
	 * idle run longer than a pass (4096), two in the high range. */
	static const uint64_t w[] = { 0, 5000, 5001, LOW - 1, HIGH_GFN + 3,
				      HIGH_GFN + HIGH - 1 };
	uint64_t balloon[] = { 7, 8, 9 };
	struct mv_share_stats st;
	struct mv_vm *vm;
	uint32_t rounds;

	assert_int_equal(mv_vm_create(c->host, &cfg, &vm), 0);
	for (unsigned i = 0; i < 6; i++)
		assert_int_equal(sx_fill(vm, w[i], 0x5A), 0);
	assert_int_equal(mv_vm_balloon_inflate(vm, balloon, 3), 0);
	scanner(c, 0, 0);
	assert_int_equal(mv_share_vm_add(c->s, vm, &(struct mv_share_vm_config)
					 { .gfn = 0, .count = HIGH_GFN + HIGH +
					   50 }), 0);
	assert_int_equal(mv_share_scan(c->s, 0, &rounds), 0);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.scanned, (uint64_t)rounds * (LOW + HIGH));
	assert_int_equal(st.armed, 6);
	assert_int_equal(st.merged, 6);
	for (unsigned i = 0; i < 6; i++) {
		assert_int_equal(sx_state(vm, w[i]), MV_PAGE_SHARED);
		assert_int_equal(sx_id(vm, w[i]), sx_id(vm, w[0]));
		assert_true(sx_holds(vm, w[i], 0x5A));
	}
	assert_int_equal(sx_state(vm, 8), MV_PAGE_BALLOONED);
	assert_int_equal(sx_state(vm, 1), MV_PAGE_ZERO);
	assert_int_equal(mv_share_vm_remove(c->s, vm), 0);
	mv_vm_destroy(vm);
}

/* Both VMs filled with fill_layout, added with salts @sa and @sb, and
 * scanned to completion by a scanner with @cross_vm. */
static void two_vms_scanned(struct ctx *c, int cross_vm, uint64_t sa,
			    uint64_t sb)
{
	scanner(c, 0, cross_vm);
	fill_layout(c->a);
	fill_layout(c->b);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 0, sa), 0);
	assert_int_equal(sx_add(c->s, c->b, PAGES, 0, 0, sb), 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
}

/* The default keeps every VM to itself: equal pages of two VMs stay
 * apart, each VM merging only its own. */
static void no_cross_vm_by_default(void **state)
{
	struct ctx *c = *state;

	two_vms_scanned(c, 0, 0, 0);
	assert_int_equal(host_shared(c), 4);
	assert_int_not_equal(sx_id(c->a, 0), sx_id(c->b, 0));
	assert_int_not_equal(sx_id(c->a, 16), sx_id(c->b, 16));
	/* Unique pages of a equal to b's stay private too. */
	assert_int_equal(sx_state(c->a, 50), MV_PAGE_WRITE_MONITORED);
	assert_int_equal(sx_state(c->b, 50), MV_PAGE_WRITE_MONITORED);
}

static void cross_vm_same_salt(void **state)
{
	struct ctx *c = *state;

	two_vms_scanned(c, 1, 7, 7);
	/* 0xAA, 0xBB and each of the 16 unique contents: one page each. */
	assert_int_equal(host_shared(c), 2 + 16);
	assert_int_equal(sx_id(c->a, 0), sx_id(c->b, 15));
	assert_int_equal(sx_id(c->a, 50), sx_id(c->b, 50));
	assert_true(sx_holds(c->b, 50, 51));
}

static void salts_separate(void **state)
{
	struct ctx *c = *state;

	two_vms_scanned(c, 1, 1, 2);
	assert_int_equal(host_shared(c), 4);
	assert_int_not_equal(sx_id(c->a, 0), sx_id(c->b, 0));
	assert_int_equal(sx_state(c->b, 50), MV_PAGE_WRITE_MONITORED);
}

static void opt_out_never_shares(void **state)
{
	struct ctx *c = *state;
	struct mv_share_stats vs;

	scanner(c, 0, 1);
	fill_layout(c->a);
	fill_layout(c->b);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 0, 0), 0);
	assert_int_equal(sx_add(c->s, c->b, PAGES, 1, 0, 0), 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
	for (uint64_t g = 0; g < PAGES; g++)
		assert_int_equal(sx_state(c->b, g), MV_PAGE_ALLOCATED);
	assert_int_equal(sx_state(c->a, 0), MV_PAGE_SHARED);
	assert_int_equal(host_shared(c), 2);
	assert_int_equal(mv_share_vm_get_stats(c->s, c->b, &vs), 0);
	assert_int_equal(vs.scanned, 0);
}

static void zero_only(void **state)
{
	struct ctx *c = *state;
	struct mv_share_stats st;

	scanner(c, 0, 0);
	fill_layout(c->a);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 1, 0), 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
	assert_int_equal(host_shared(c), 0);
	for (uint64_t g = 0; g < 16; g++) {
		assert_int_equal(sx_state(c->a, g), MV_PAGE_WRITE_MONITORED);
		assert_int_equal(sx_state(c->a, 32 + g), MV_PAGE_ZERO);
	}
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.zero_reclaimed, 16);
	assert_int_equal(st.merged, 0);
	assert_int_equal(st.hashed, 0);
}

/* 50 equal pages at 8 sharers each: ceil(50 / 8) = 7 copies, none with
 * more than 8 sharers. */
static void sharer_limit(void **state)
{
	struct ctx *c = *state;
	mv_page_id ids[PAGES];
	uint32_t nids = 0, use[PAGES] = { 0 };
	struct mv_share_stats st;

	scanner(c, 8, 0);
	for (uint64_t g = 0; g < 50; g++)
		assert_int_equal(sx_fill(c->a, g, 0x5A), 0);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 0, 0), 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
	assert_int_equal(host_shared(c), 7);
	for (uint64_t g = 0; g < 50; g++) {
		mv_page_id id = sx_id(c->a, g);
		uint32_t k;

		assert_int_equal(sx_state(c->a, g), MV_PAGE_SHARED);
		for (k = 0; k < nids && ids[k] != id; k++)
			;
		if (k == nids)
			ids[nids++] = id;
		use[k]++;
		assert_true(sx_holds(c->a, g, 0x5A));
	}
	assert_int_equal(nids, 7);
	for (uint32_t k = 0; k < nids; k++) {
		uint32_t refs;

		assert_true(use[k] <= 8 && use[k] >= 2);
		assert_int_equal(mv_host_share_refs(c->host, ids[k], &refs), 0);
		assert_int_equal(refs, use[k]);
	}
	assert_int_equal(mv_host_share_refs(c->host, MV_ZERO_PAGE, &use[0]),
			 -MV_EINVAL);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.merged, 50);
	assert_int_equal(st.extra_copies, 6);
}

/* A page written after the monitor was armed is volatile: skipped (and
 * re-armed) that round, merged only once it stayed cold a whole round. */
static void written_pages_wait(void **state)
{
	struct ctx *c = *state;
	struct mv_share_stats st;
	uint32_t rounds;

	scanner(c, 0, 0);
	for (uint64_t g = 0; g < 4; g++)
		assert_int_equal(sx_fill(c->a, g, 0x77), 0);
	assert_int_equal(sx_add(c->s, c->a, 4, 0, 0, 0), 0);
	assert_int_equal(mv_share_scan(c->s, 1, &rounds), -MV_ELIMIT);
	assert_int_equal(rounds, 1);
	assert_int_equal(sx_fill(c->a, 1, 0x77), 0);  /* same bytes, written */
	assert_int_equal(mv_share_scan(c->s, 1, NULL), -MV_ELIMIT);
	assert_int_equal(sx_state(c->a, 0), MV_PAGE_SHARED);
	assert_int_equal(sx_state(c->a, 1), MV_PAGE_WRITE_MONITORED);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.volatile_skips, 1);
	assert_int_equal(st.merged, 3);
	assert_int_equal(st.quiet_rounds, 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
	assert_int_equal(sx_state(c->a, 1), MV_PAGE_SHARED);
	assert_int_equal(sx_id(c->a, 1), sx_id(c->a, 0));
	/* Done is a quiet round; a new VM is news again. */
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.quiet_rounds, 1);
	assert_int_equal(mv_share_scan(c->s, 1, NULL), 0);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.quiet_rounds, 2);
	assert_int_equal(sx_add(c->s, c->b, 4, 0, 0, 0), 0);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.quiet_rounds, 0);
}

static int merged_now(struct mv_share *s)
{
	struct mv_share_stats st;

	return !mv_share_get_stats(s, &st) && st.merged == 32 &&
	       st.zero_reclaimed == 16;
}

/* The background thread does the same work at idle priority, can be
 * paused and stopped, and removing a VM ends its scanning. */
static void background_thread(void **state)
{
	struct ctx *c = *state;
	struct timespec ms = { 0, 1000000 };
	struct mv_share_stats st;
	int i;

	scanner(c, 0, 0);
	fill_layout(c->a);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 0, 0), 0);
	assert_int_equal(mv_share_pause(c->s, 1), 0);
	assert_int_equal(mv_share_start(c->s), 0);
	assert_int_equal(mv_share_start(c->s), -MV_EBUSY);
	nanosleep(&ms, NULL);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.scanned, 0);
	assert_int_equal(mv_share_set_rate(c->s, 100000), 0);
	assert_int_equal(mv_share_pause(c->s, 0), 0);
	for (i = 0; i < 20000 && !merged_now(c->s); i++)
		nanosleep(&ms, NULL);
	assert_true(merged_now(c->s));
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	assert_int_equal(st.idle_priority, 1);
	assert_true(st.cpu_ns > 0);
	assert_int_equal(mv_share_vm_remove(c->s, c->a), 0);
	assert_int_equal(mv_share_stop(c->s), 0);
	assert_int_equal(mv_share_stop(c->s), -MV_ESTATE);
	assert_int_equal(sx_state(c->a, 5), MV_PAGE_SHARED);
}

static void bad_arguments(void **state)
{
	struct ctx *c = *state;
	struct mv_share_config bad = { .max_sharing = 1 };
	struct mv_share_vm_config vc = { .gfn = 0, .count = 0 };
	struct mv_share_stats st;
	struct mv_share *s = NULL;
	struct mv_host *other;
	struct mv_vm *ov;

	assert_int_equal(mv_share_create(NULL, NULL, &s), -MV_EINVAL);
	assert_int_equal(mv_share_create(c->host, &bad, &s), -MV_EINVAL);
	bad.max_sharing = 0;
	bad.cross_vm = 2;
	assert_int_equal(mv_share_create(c->host, &bad, &s), -MV_EINVAL);
	assert_null(s);
	scanner(c, 0, 0);
	assert_int_equal(mv_share_vm_add(c->s, c->a, &vc), -MV_EINVAL);
	vc.count = 1;
	vc.opt_out = 2;
	assert_int_equal(mv_share_vm_add(c->s, c->a, &vc), -MV_EINVAL);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 0, 0), 0);
	assert_int_equal(sx_add(c->s, c->a, PAGES, 0, 0, 0), -MV_EEXIST);
	assert_int_equal(mv_share_vm_remove(c->s, c->b), -MV_ENOENT);
	assert_int_equal(mv_share_vm_get_stats(c->s, c->b, &st), -MV_ENOENT);
	assert_int_equal(mv_share_pause(c->s, 2), -MV_EINVAL);
	assert_int_equal(mv_share_stop(c->s), -MV_ESTATE);
	assert_int_equal(mv_share_scan(NULL, 0, NULL), -MV_EINVAL);
	assert_int_equal(mv_share_get_stats(c->s, NULL), -MV_EINVAL);
	assert_int_equal(mv_host_create(NULL, &other), 0);
	ov = sx_vm(other, 4);
	assert_non_null(ov);
	assert_int_equal(sx_add(c->s, ov, 4, 0, 0, 0), -MV_EINVAL);
	mv_vm_destroy(ov);
	mv_host_destroy(other);
	/* A span running past the VM's RAM is fine: missing frames are
	 * skipped. */
	assert_int_equal(sx_add(c->s, c->b, 1000, 0, 0, 0), 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(merges_within_vm, setup, teardown),
		cmocka_unit_test_setup_teardown(no_cross_vm_by_default, setup, teardown),
		cmocka_unit_test_setup_teardown(cross_vm_same_salt, setup, teardown),
		cmocka_unit_test_setup_teardown(salts_separate, setup, teardown),
		cmocka_unit_test_setup_teardown(opt_out_never_shares, setup, teardown),
		cmocka_unit_test_setup_teardown(zero_only, setup, teardown),
		cmocka_unit_test_setup_teardown(sharer_limit, setup, teardown),
		cmocka_unit_test_setup_teardown(written_pages_wait, setup, teardown),
		cmocka_unit_test_setup_teardown(background_thread, setup, teardown),
		cmocka_unit_test_setup_teardown(idle_pages_passed, setup, teardown),
		cmocka_unit_test_setup_teardown(bad_arguments, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
