/* Hooks calling back into their own VM. A notify hook runs in the middle
 * of a change: every call that reads or changes guest memory is refused
 * with -MV_EBUSY and changes nothing, so the change in progress finishes
 * on a consistent state. A track hook runs between two pieces of a write:
 * it may read, not change. Tracking itself may be changed from any hook.
 * The first tests are the defects the refusal fixes: a hook re-resolving
 * a page during its copy-on-write ran the COW twice, and a balloon hook
 * writing an earlier frame of the inflate list leaked a page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "host/pool.h"
#include "phys/fixture.h"

struct reenter {
	enum mv_notify_reason on;   /* reason that triggers the call */
	uint64_t target_gpa;        /* what the hook touches */
	int write;
	int rc;                     /* what the call returned */
	unsigned calls;
};

static void reenter_notify(void *opaque, struct mv_vm *vm, uint64_t gfn,
			   uint64_t count, enum mv_notify_reason why)
{
	struct reenter *r = opaque;
	void *p;

	(void)gfn;
	(void)count;
	if (why != r->on)
		return;
	r->calls++;
	if (r->write == 2)
		r->rc = mv_vm_phys_write(vm, r->target_gpa, "w", 1);
	else
		r->rc = mv_vm_gpa_to_hva(vm, r->target_gpa, r->write, &p);
}

static void write_page(struct mv_vm *vm, uint64_t gfn, uint8_t v)
{
	uint8_t page[MV_PAGE_SIZE];

	memset(page, v, sizeof(page));
	assert_int_equal(mv_vm_phys_write(vm, gfn << MV_PAGE_SHIFT, page,
					  sizeof(page)), 0);
}

static uint8_t byte_at(struct mv_vm *vm, uint64_t gpa)
{
	uint8_t b = 0;

	assert_int_equal(mv_vm_phys_read(vm, gpa, &b, 1), 0);
	return b;
}

static void pool_empty(struct mv_host *h)
{
	struct mv_host_stats st;

	assert_int_equal(pool_check(h), 0);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.vms, 0);
	assert_int_equal(st.private_pages, 0);
	assert_int_equal(st.shared_pages, 0);
	assert_int_equal(st.shared_refs, 0);
	assert_int_equal(st.ballooned_pages, 0);
	assert_int_equal(st.reserved_pages, 0);
}

/* Page 3 of @a and of @b share one host page; @a's hook re-resolves the
 * page for a write when its COW notifies. */
static void cow_reentry(int last_reference)
{
	struct mv_host *h;
	struct mv_vm *a, *b;
	struct reenter r = { .on = MV_NOTIFY_BACKING, .target_gpa = 3 << 12,
			     .write = 1 };

	assert_int_equal(mv_host_create(NULL, &h), 0);
	a = fx_ram_vm(h, 64, 0, 0);
	b = fx_ram_vm(h, 64, 0, 0);
	assert_non_null(a);
	assert_non_null(b);
	write_page(a, 3, 0x33);
	write_page(b, 3, 0x33);
	assert_int_equal(mv_vm_share_pages(a, 3, b, 3), 0);
	if (last_reference)
		write_page(b, 3, 0x44);  /* a holds the only reference */
	mv_vm_set_notify(a, reenter_notify, &r);
	assert_int_equal(mv_vm_phys_write(a, (3 << 12) + 9, "z", 1), 0);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.rc, -MV_EBUSY);
	assert_int_equal(byte_at(a, (3 << 12) + 9), 'z');
	assert_int_equal(byte_at(a, 3 << 12), 0x33);
	assert_int_equal(byte_at(b, 3 << 12), last_reference ? 0x44 : 0x33);
	assert_int_equal(fx_state(a, 3 << 12), MV_PAGE_ALLOCATED);
	assert_int_equal(pool_check(h), 0);
	mv_vm_destroy(a);
	mv_vm_destroy(b);
	pool_empty(h);
	mv_host_destroy(h);
}

static void cow_hook_reresolves(void **state)
{
	(void)state;
	cow_reentry(0);
}

static void cow_hook_reresolves_last_reference(void **state)
{
	(void)state;
	cow_reentry(1);
}

/* The hook writes the first frame of the inflate list while the second
 * is notified: refused, and the balloon stays consistent. */
static void balloon_hook_writes_earlier_frame(void **state)
{
	struct mv_host *h;
	struct mv_vm *vm;
	struct reenter r = { .on = MV_NOTIFY_BALLOON, .target_gpa = 5 << 12,
			     .write = 2 };
	struct mv_host_vm_stats as;
	uint64_t gfns[3] = { 5, 6, 7 };

	(void)state;
	assert_int_equal(mv_host_create(NULL, &h), 0);
	vm = fx_ram_vm(h, 64, 0, 0);
	assert_non_null(vm);
	write_page(vm, 7, 7);
	mv_vm_set_notify(vm, reenter_notify, &r);
	assert_int_equal(mv_vm_balloon_inflate(vm, gfns, 3), 0);
	assert_int_equal(r.calls, 3);
	assert_int_equal(r.rc, -MV_EBUSY);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fx_state(vm, gfns[i] << 12), MV_PAGE_BALLOONED);
	mv_vm_set_notify(vm, NULL, NULL);
	assert_int_equal(mv_vm_balloon_deflate(vm, gfns, 3), 0);
	assert_int_equal(mv_vm_balloon_inflate(vm, gfns, 2), 0);
	assert_int_equal(mv_vm_reset(vm), 0);
	assert_int_equal(mv_host_vm_get_stats(h, mv_vm_id(vm), &as), 0);
	assert_int_equal(as.ballooned, 0);
	assert_int_equal(pool_check(h), 0);
	mv_vm_destroy(vm);
	pool_empty(h);
	mv_host_destroy(h);
}

/* Every call that touches guest memory, from inside a hook. */
struct probe {
	struct mv_vm *vm, *other;
	int in_track;               /* probing from the track hook */
	unsigned runs, wrong;
	const char *first_wrong;
	struct mv_vm_request *req[4];
};

static int nop_handler(void *opaque, struct mv_vm *vm, uint64_t gpa,
		       void *buf, size_t len, enum mv_access acc)
{
	(void)opaque, (void)vm, (void)gpa, (void)buf, (void)len, (void)acc;
	return MV_HANDLER_DEFAULT;
}

static int nop_request(struct mv_vm *vm, void *arg)
{
	(void)vm, (void)arg;
	return 0;
}

#define WANT(call, want)                                  \
	do {                                              \
		int rc_ = (call);                         \
		if (rc_ != (want)) {                      \
			p->wrong++;                       \
			if (!p->first_wrong)              \
				p->first_wrong = #call;   \
		}                                         \
	} while (0)

static void probe_all(struct probe *p)
{
	struct mv_vm *vm = p->vm;
	uint8_t b[8] = { 0 };
	uint64_t g = 40, bm = 0;
	void *ptr;
	int rd = p->in_track ? 0 : -MV_EBUSY;
	struct mv_vm_request *req = NULL;

	p->runs++;
	WANT(mv_vm_phys_read(vm, 40 << 12, b, 8), rd);
	WANT(mv_vm_gpa_to_hva(vm, 40 << 12, MV_VM_HVA_READ, &ptr), rd);
	WANT(mv_vm_gpa_to_hva_locked(vm, 40 << 12, MV_VM_HVA_READ, &ptr), rd);
	WANT(mv_vm_phys_write(vm, 40 << 12, b, 8), -MV_EBUSY);
	WANT(mv_vm_gpa_to_hva(vm, 40 << 12, MV_VM_HVA_WRITE, &ptr), -MV_EBUSY);
	WANT(mv_vm_gpa_to_hva(vm, 40 << 12, MV_VM_HVA_WRITE_UNTRACKED, &ptr),
	     -MV_EBUSY);
	WANT(mv_vm_phys_populate(vm, 40, 1, (uint8_t[MV_PAGE_SIZE]){ 1 }),
	     -MV_EBUSY);
	WANT(mv_vm_reset(vm), -MV_EBUSY);
	WANT(mv_vm_handler_register(vm, MV_HANDLER_WRITE, 41 << 12, 4096,
				    nop_handler, NULL), -MV_EBUSY);
	WANT(mv_vm_handler_deregister(vm, 42 << 12), -MV_EBUSY);
	WANT(mv_vm_handler_page_disable(vm, 42 << 12), -MV_EBUSY);
	WANT(mv_vm_handler_page_enable(vm, 42 << 12), -MV_EBUSY);
	WANT(mv_vm_write_monitor(vm, 40, 1, NULL), -MV_EBUSY);
	WANT(mv_vm_dirty_collect(vm, 40, 1, &bm), -MV_EBUSY);
	WANT(mv_vm_share_pages(vm, 40, vm, 43), -MV_EBUSY);
	WANT(mv_vm_share_pages(p->other, 40, vm, 43), -MV_EBUSY);
	WANT(mv_vm_balloon_inflate(vm, &g, 1), -MV_EBUSY);
	WANT(mv_vm_balloon_deflate(vm, &g, 1), -MV_EBUSY);
	WANT(mv_vm_process_requests(vm, NULL), -MV_EBUSY);
	WANT(mv_vm_request_post(vm, nop_request, NULL, &req), 0);
	WANT(mv_vm_request_wait(vm, req, 1, NULL), -MV_EBUSY);
	p->req[p->runs - 1] = req;
	/* allowed everywhere: descriptor metadata and statistics */
	WANT(mv_vm_track_write(vm, 44, 1), 0);
	WANT(mv_vm_track_write(vm, 44, 0), 0);
	WANT(mv_vm_page_tracked(vm, 44), 0);
	WANT(mv_vm_get_stats(vm, &(struct mv_vm_stats){ 0 }), 0);
	WANT(mv_vm_page(vm, 40) != NULL, 1);
	/* another VM is not in a hook */
	WANT(mv_vm_phys_write(p->other, 40 << 12, b, 8), 0);
}

static void probe_notify(void *opaque, struct mv_vm *vm, uint64_t gfn,
			 uint64_t count, enum mv_notify_reason why)
{
	(void)vm, (void)gfn, (void)count;
	if (why != MV_NOTIFY_TRACK)  /* the probe's own track_write */
		probe_all(opaque);
}

static void probe_track(void *opaque, struct mv_vm *vm, uint64_t gpa,
			const void *bytes, size_t len)
{
	struct probe *p = opaque;

	(void)vm, (void)gpa, (void)bytes, (void)len;
	p->in_track = 1;
	probe_all(p);
	p->in_track = 0;
}

static void every_call_from_hooks(void **state)
{
	struct mv_host *h;
	struct probe p = { 0 };
	uint8_t before[64 * 16], after[64 * 16];
	uint32_t done = 0;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &h), 0);
	p.vm = fx_ram_vm(h, 64, 0, 0);
	p.other = fx_ram_vm(h, 64, 0, 0);
	write_page(p.vm, 40, 4);
	write_page(p.vm, 43, 4);
	write_page(p.other, 40, 4);
	assert_int_equal(mv_vm_handler_register(p.vm, MV_HANDLER_WRITE,
						42 << 12, 4096, nop_handler,
						NULL), 0);
	for (uint64_t i = 0; i < 64; i++)
		memcpy(before + i * 16, mv_vm_page(p.vm, i), 16);
	mv_vm_set_notify(p.vm, probe_notify, &p);
	/* a first touch notifies BACKING */
	assert_int_equal(mv_vm_phys_write(p.vm, 50 << 12, "n", 1), 0);
	assert_int_equal(p.runs, 1);
	memcpy(before + 50 * 16, mv_vm_page(p.vm, 50), 16);
	for (uint64_t i = 0; i < 64; i++)
		memcpy(after + i * 16, mv_vm_page(p.vm, i), 16);
	assert_memory_equal(before, after, sizeof(before));
	mv_vm_set_notify(p.vm, NULL, NULL);
	mv_vm_set_track_hook(p.vm, probe_track, &p);
	assert_int_equal(mv_vm_track_write(p.vm, 51, 1), 0);
	assert_int_equal(mv_vm_phys_write(p.vm, 51 << 12, "t", 1), 0);
	assert_int_equal(p.runs, 2);
	if (p.wrong)
		fail_msg("%u calls answered wrongly, first: %s", p.wrong,
			 p.first_wrong);
	/* The requests posted from the hooks are still queued and run. */
	assert_int_equal(mv_vm_process_requests(p.vm, &done), 0);
	assert_int_equal(done, 2);
	for (int i = 0; i < 2; i++)
		assert_int_equal(mv_vm_request_wait(p.vm, p.req[i], 0, NULL), 0);
	assert_int_equal(pool_check(h), 0);
	mv_vm_destroy(p.vm);
	mv_vm_destroy(p.other);
	pool_empty(h);
	mv_host_destroy(h);
}

/* The pool's mover is refused too while the VM is inside a hook (here
 * the hook itself asks the pool to move one of its pages). */
struct mover_probe {
	struct mv_host *h;
	struct mv_vm *a;
	int rc;
	mv_page_id id, after;
};

static void move_in_hook(void *opaque, struct mv_vm *vm, uint64_t gfn,
			 uint64_t count, enum mv_notify_reason why)
{
	struct mover_probe *m = opaque;

	(void)vm, (void)count, (void)why;
	if (gfn != 1000)
		return;
	m->rc = -MV_ENOENT;
	for (uint64_t g = FX_FRAG_PAGES; g-- > 0 && m->rc == -MV_ENOENT;) {
		if (mv_page_state(mv_vm_page(m->a, g)) != MV_PAGE_ALLOCATED)
			continue;
		m->id = mv_page_host_id(mv_vm_page(m->a, g));
		m->rc = mv_host_move_page(m->h, m->id, NULL);
		m->after = mv_page_host_id(mv_vm_page(m->a, g));
	}
}

static void mover_refused_in_hook(void **state)
{
	struct mover_probe m = { 0 };

	(void)state;
	assert_int_equal(mv_host_create(NULL, &m.h), 0);
	m.a = fx_ram_vm(m.h, 1024, 0, 0);
	assert_int_equal(fx_fragment(m.a), 0);
	mv_vm_set_notify(m.a, move_in_hook, &m);
	write_page(m.a, 1000, 9);
	assert_int_equal(m.rc, -MV_EBUSY);
	assert_int_equal(m.after, m.id);
	mv_vm_set_notify(m.a, NULL, NULL);
	assert_int_equal(mv_host_move_page(m.h, m.id, NULL), 0);
	for (uint64_t i = 0; i < FX_FRAG_PAGES; i++)
		if (i < 100 || i >= 150)
			assert_int_equal(byte_at(m.a, i << 12), fx_frag_byte(i));
	assert_int_equal(pool_check(m.h), 0);
	mv_vm_destroy(m.a);
	pool_empty(m.h);
	mv_host_destroy(m.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cow_hook_reresolves),
		cmocka_unit_test(cow_hook_reresolves_last_reference),
		cmocka_unit_test(balloon_hook_writes_earlier_frame),
		cmocka_unit_test(every_call_from_hooks),
		cmocka_unit_test(mover_refused_in_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
