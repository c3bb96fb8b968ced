/* Write tracking (mv_vm_track_write): a tracked page hands out no write
 * pointer, every path that changes its bytes in place reports them to the
 * track hook with the exact gpa, length and bytes, the walker's A/D
 * updates go in place without the hook, turning tracking on revokes write
 * access through notify first, and the flag survives every change of the
 * page's backing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>
#include <memvisor/mmu.h>

#include "phys/fixture.h"

#define MAXREC 16

struct rec {
	uint64_t gpa;
	size_t len;
	uint8_t bytes[MV_PAGE_SIZE];
};

struct tlog {
	struct rec r[MAXREC];
	unsigned n;
	/* notify */
	unsigned track_notes;
	uint64_t track_gfn, track_count;
	int tracked_in_hook;
};

static void on_track(void *opaque, struct mv_vm *vm, uint64_t gpa,
		     const void *bytes, size_t len)
{
	struct tlog *l = opaque;

	(void)vm;
	assert_true(l->n < MAXREC);
	assert_true(len <= MV_PAGE_SIZE);
	assert_true((gpa & (MV_PAGE_SIZE - 1)) + len <= MV_PAGE_SIZE);
	l->r[l->n].gpa = gpa;
	l->r[l->n].len = len;
	memcpy(l->r[l->n].bytes, bytes, len);
	l->n++;
}

static void on_notify(void *opaque, struct mv_vm *vm, uint64_t gfn,
		      uint64_t count, enum mv_notify_reason why)
{
	struct tlog *l = opaque;

	if (why != MV_NOTIFY_TRACK)
		return;
	l->track_notes++;
	l->track_gfn = gfn;
	l->track_count = count;
	l->tracked_in_hook = !!(mv_page_flags(mv_vm_page(vm, gfn)) &
				MV_PAGE_F_TRACKED);
}

static struct tlog *log_on(struct fx_ctx *c)
{
	static struct tlog l;

	memset(&l, 0, sizeof(l));
	mv_vm_set_track_hook(c->vm, on_track, &l);
	mv_vm_set_notify(c->vm, on_notify, &l);
	return &l;
}

static void expect_rec(const struct tlog *l, unsigned i, uint64_t gpa,
		       const void *bytes, size_t len)
{
	assert_true(i < l->n);
	assert_int_equal(l->r[i].gpa, gpa);
	assert_int_equal(l->r[i].len, len);
	assert_memory_equal(l->r[i].bytes, bytes, len);
}

#define T0 (FX_HIGH_GPA + 8 * MV_PAGE_SIZE)

/* Writes get MV_VM_SLOW_PATH, reads and untracked writes a pointer. */
static void slow_path_for_writes(void **state)
{
	struct fx_ctx *c = *state;
	void *p = NULL;

	log_on(c);
	assert_int_equal(mv_vm_phys_write(c->vm, T0, "ab", 2), 0);
	assert_int_equal(mv_vm_track_write(c->vm, T0 >> 12, 1), 0);
	assert_int_equal(mv_vm_page_tracked(c->vm, T0 >> 12), 1);
	assert_int_equal(mv_vm_page_tracked(c->vm, (T0 >> 12) + 1), 0);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, T0 + 5, MV_VM_HVA_WRITE, &p),
			 MV_VM_SLOW_PATH);
	mv_vm_lock(c->vm);
	assert_int_equal(mv_vm_gpa_to_hva_locked(c->vm, T0, MV_VM_HVA_WRITE, &p),
			 MV_VM_SLOW_PATH);
	mv_vm_unlock(c->vm);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, T0 + 1, MV_VM_HVA_READ, &p), 0);
	assert_int_equal(*(uint8_t *)p, 'b');
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, T0, MV_VM_HVA_WRITE_UNTRACKED,
					  &p), 0);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, T0 + 4096, MV_VM_HVA_WRITE, &p),
			 0);
	/* A tracked ZERO page stays ZERO on a write-pointer request. */
	assert_int_equal(mv_vm_track_write(c->vm, (T0 >> 12) + 2, 1), 0);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, T0 + 8192, MV_VM_HVA_WRITE, &p),
			 MV_VM_SLOW_PATH);
	assert_int_equal(fx_state(c->vm, T0 + 8192), MV_PAGE_ZERO);
	assert_int_equal(mv_vm_track_write(c->vm, T0 >> 12, 0), 0);
	assert_int_equal(mv_vm_page_tracked(c->vm, T0 >> 12), 0);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, T0, MV_VM_HVA_WRITE, &p), 0);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, T0, 3, &p), -MV_EINVAL);
}

/* A write over three pages, the middle one tracked and every state a
 * tracked page can be in: only the tracked pieces are reported, each with
 * its own gpa, length and the bytes now in memory. */
static void phys_write_reports_pieces(void **state)
{
	struct fx_ctx *c = *state;
	struct tlog *l = log_on(c);
	static uint8_t buf[3 * MV_PAGE_SIZE], back[3 * MV_PAGE_SIZE];
	uint64_t mid = (T0 >> 12) + 1, g;
	const enum mv_page_state states[] = {
		MV_PAGE_ZERO, MV_PAGE_ALLOCATED, MV_PAGE_SHARED,
		MV_PAGE_WRITE_MONITORED, MV_PAGE_BALLOONED,
	};

	for (size_t s = 0; s < sizeof(states) / sizeof(states[0]); s++) {
		assert_int_equal(mv_vm_reset(c->vm), 0);
		if (states[s] != MV_PAGE_ZERO) {
			memset(buf, 0x40 + (int)s, MV_PAGE_SIZE);
			assert_int_equal(mv_vm_phys_write(c->vm, mid << 12, buf,
							  MV_PAGE_SIZE), 0);
			assert_int_equal(mv_vm_phys_write(c->vm, 0, buf,
							  MV_PAGE_SIZE), 0);
		}
		if (states[s] == MV_PAGE_SHARED)
			assert_int_equal(mv_vm_share_pages(c->vm, mid, c->vm,
							   0), 0);
		if (states[s] == MV_PAGE_WRITE_MONITORED)
			assert_int_equal(mv_vm_write_monitor(c->vm, mid, 1,
							     NULL), 0);
		g = mid;
		if (states[s] == MV_PAGE_BALLOONED)
			assert_int_equal(mv_vm_balloon_inflate(c->vm, &g, 1), 0);
		assert_int_equal(fx_state(c->vm, mid << 12), states[s]);
		assert_int_equal(mv_vm_track_write(c->vm, mid, 1), 0);
		l->n = 0;
		fx_fill(buf, sizeof(buf), (uint32_t)s);
		/* from the last 100 bytes of page T0 to 50 into page T0+2 */
		assert_int_equal(mv_vm_phys_write(c->vm, T0 + 4096 - 100, buf,
						  100 + 4096 + 50), 0);
		assert_int_equal(l->n, 1);
		expect_rec(l, 0, mid << 12, buf + 100, MV_PAGE_SIZE);
		assert_int_equal(mv_vm_phys_read(c->vm, T0, back, sizeof(back)),
				 0);
		assert_memory_equal(back + 4096 - 100, buf, 100 + 4096 + 50);
		/* a piece inside the page */
		assert_int_equal(mv_vm_phys_write(c->vm, (mid << 12) + 7, "xyz",
						  3), 0);
		assert_int_equal(l->n, 2);
		expect_rec(l, 1, (mid << 12) + 7, "xyz", 3);
		assert_int_equal(mv_vm_track_write(c->vm, mid, 0), 0);
	}
}

static int rewrite_handler(void *opaque, struct mv_vm *vm, uint64_t gpa,
			   void *buf, size_t len, enum mv_access acc)
{
	int *ret = opaque;

	(void)vm;
	(void)gpa;
	if (acc == MV_ACCESS_WRITE && len)
		((uint8_t *)buf)[0] = '!';
	return *ret;
}

/* A handler's MV_HANDLER_DEFAULT write is reported with the bytes the
 * handler let through; a write the handler consumes changes no byte and
 * is not reported. Populate reports every tracked page it fills. */
static void handler_and_populate(void **state)
{
	struct fx_ctx *c = *state;
	struct tlog *l = log_on(c);
	static uint8_t img[4 * MV_PAGE_SIZE];
	int ret = MV_HANDLER_DEFAULT;
	uint64_t g = T0 >> 12;

	assert_int_equal(mv_vm_track_write(c->vm, g, 1), 0);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_WRITE, T0,
						MV_PAGE_SIZE, rewrite_handler,
						&ret), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, T0 + 10, "abc", 3), 0);
	assert_int_equal(l->n, 1);
	expect_rec(l, 0, T0 + 10, "!bc", 3);
	ret = MV_HANDLER_DONE;
	assert_int_equal(mv_vm_phys_write(c->vm, T0 + 10, "def", 3), 0);
	assert_int_equal(l->n, 1);
	assert_int_equal(mv_vm_handler_deregister(c->vm, T0), 0);

	assert_int_equal(mv_vm_track_write(c->vm, g + 2, 1), 0);
	fx_fill(img, sizeof(img), 9);
	l->n = 0;
	assert_int_equal(mv_vm_phys_populate(c->vm, g, 4, img), 0);
	assert_int_equal(l->n, 2);
	expect_rec(l, 0, T0, img, MV_PAGE_SIZE);
	expect_rec(l, 1, T0 + 2 * MV_PAGE_SIZE, img + 2 * MV_PAGE_SIZE,
		   MV_PAGE_SIZE);
}

/* The walker's compare-exchange of a PTE in a tracked page goes in place
 * (a ZERO page is made private as for any write) and is not reported. */
static void walker_cmpxchg_in_place(void **state)
{
	struct fx_ctx *c = *state;
	struct tlog *l = log_on(c);
	struct mv_gmem gm;
	uint64_t pte = 0x1003, v = 0;

	assert_int_equal(mv_gmem_vm_init(&gm, c->vm), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, T0 + 8, &pte, 8), 0);
	assert_int_equal(mv_vm_track_write(c->vm, T0 >> 12, 1), 0);
	assert_int_equal(mv_vm_track_write(c->vm, (T0 >> 12) + 1, 1), 0);
	l->n = 0;
	assert_int_equal(gm.cmpxchg(gm.opaque, T0 + 8, 8, 0x1003, 0x1023),
			 MV_GMEM_OK);
	assert_int_equal(gm.cmpxchg(gm.opaque, T0 + 8, 8, 0x1003, 0x1063),
			 MV_GMEM_CHANGED);
	assert_int_equal(gm.cmpxchg(gm.opaque, T0 + 4096, 4, 0, 0x20),
			 MV_GMEM_OK);
	assert_int_equal(l->n, 0);
	assert_int_equal(gm.read(gm.opaque, T0 + 8, 8, &v), MV_GMEM_OK);
	assert_int_equal(v, 0x1023);
	assert_int_equal(gm.read(gm.opaque, T0 + 4096, 4, &v), MV_GMEM_OK);
	assert_int_equal(v, 0x20);
	assert_int_equal(fx_state(c->vm, T0 + 4096), MV_PAGE_ALLOCATED);
}

/* Turning tracking on notifies once, with the flag already set; again, or
 * turning it off, does not notify. */
static void on_revokes_first(void **state)
{
	struct fx_ctx *c = *state;
	struct tlog *l = log_on(c);
	uint64_t g = (T0 >> 12) + 3;

	assert_int_equal(mv_vm_phys_write(c->vm, g << 12, "q", 1), 0);
	assert_int_equal(mv_vm_track_write(c->vm, g, 1), 0);
	assert_int_equal(l->track_notes, 1);
	assert_int_equal(l->track_gfn, g);
	assert_int_equal(l->track_count, 1);
	assert_int_equal(l->tracked_in_hook, 1);
	assert_int_equal(mv_vm_track_write(c->vm, g, 1), 0);
	assert_int_equal(mv_vm_track_write(c->vm, g, 0), 0);
	assert_int_equal(mv_vm_track_write(c->vm, g, 0), 0);
	assert_int_equal(l->track_notes, 1);
	assert_int_equal(mv_vm_track_write(c->vm, g, 1), 0);
	assert_int_equal(l->track_notes, 2);
}

static int tracked(struct fx_ctx *c, uint64_t g)
{
	return !!(mv_page_flags(mv_vm_page(c->vm, g)) & MV_PAGE_F_TRACKED);
}

/* The flag belongs to the MMU: no change of the page's content or
 * backing clears it. */
static void flag_survives(void **state)
{
	struct fx_ctx *c = *state;
	uint8_t page[MV_PAGE_SIZE];
	uint64_t g = T0 >> 12, other = g + 5;

	memset(page, 0x77, sizeof(page));
	assert_int_equal(mv_vm_phys_write(c->vm, g << 12, page, sizeof(page)), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, other << 12, page,
					  sizeof(page)), 0);
	assert_int_equal(mv_vm_track_write(c->vm, g, 1), 0);
	assert_int_equal(mv_vm_share_pages(c->vm, g, c->vm, other), 0);
	assert_int_equal(fx_state(c->vm, g << 12), MV_PAGE_SHARED);
	assert_true(tracked(c, g));
	assert_int_equal(mv_vm_phys_write(c->vm, g << 12, "c", 1), 0);
	assert_int_equal(fx_state(c->vm, g << 12), MV_PAGE_ALLOCATED);
	assert_true(tracked(c, g));
	assert_int_equal(mv_vm_balloon_inflate(c->vm, &g, 1), 0);
	assert_true(tracked(c, g));
	assert_int_equal(mv_vm_balloon_deflate(c->vm, &g, 1), 0);
	assert_true(tracked(c, g));
	assert_int_equal(mv_vm_phys_populate(c->vm, g, 1, page), 0);
	assert_true(tracked(c, g));
	assert_int_equal(mv_vm_reset(c->vm), 0);
	assert_true(tracked(c, g));
	assert_false(tracked(c, other));
}

/* Only RAM pages can be tracked; bad arguments change nothing. */
static void bad_input(void **state)
{
	struct fx_ctx *c = *state;
	const uint64_t bad[] = { FX_ROM_GPA >> 12, FX_MMIO_GPA >> 12,
				 FX_HOLE_GPA >> 12, UINT64_MAX,
				 (1ull << 40), (FX_HIGH_GPA + FX_HIGH_SIZE) >> 12 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mv_vm_track_write(c->vm, bad[i], 1),
				 -MV_ERANGE);
		assert_int_equal(mv_vm_page_tracked(c->vm, bad[i]), 0);
	}
	assert_int_equal(mv_vm_track_write(c->vm, 1, 2), -MV_EINVAL);
	assert_int_equal(mv_vm_track_write(c->vm, 1, -1), -MV_EINVAL);
	assert_int_equal(mv_vm_track_write(NULL, 1, 1), -MV_EINVAL);
	assert_int_equal(mv_vm_page_tracked(NULL, 1), -MV_EINVAL);
	assert_false(tracked(c, 1));
	mv_vm_set_track_hook(NULL, on_track, NULL);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(slow_path_for_writes), T(phys_write_reports_pieces),
		T(handler_and_populate), T(walker_cmpxchg_in_place),
		T(on_revokes_first), T(flag_survives), T(bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
