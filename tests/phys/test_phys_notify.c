/* The MMU hears of a change before the host page it maps is freed: a vCPU
 * may use a pointer from mv_vm_gpa_to_hva without the VM lock until the
 * notification, so the page must still be the VM's (or still shared) when
 * the hook runs, never already back in the pool where another VM could get
 * it. Checked for every path that frees a page: balloon, reset, share,
 * copy-on-write of the last reference, populate over a shared page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "phys/fixture.h"

#define WATCH 64

struct watch {
	struct mv_host *host;
	uint64_t gfn[WATCH];
	mv_page_id old[WATCH];
	unsigned n, seen, late;
};

static void on_notify(void *opaque, struct mv_vm *vm, uint64_t gfn,
		      uint64_t count, enum mv_notify_reason why)
{
	struct watch *w = opaque;

	(void)vm;
	(void)why;
	for (unsigned i = 0; i < w->n; i++) {
		if (w->gfn[i] < gfn || (count != UINT64_MAX &&
					w->gfn[i] - gfn >= count))
			continue;
		w->seen++;
		if (!mv_host_page_ptr(w->host, w->old[i]))
			w->late++;
	}
}

static void watch(struct watch *w, struct mv_vm *vm, uint64_t first,
		  unsigned n)
{
	w->n = n;
	w->seen = w->late = 0;
	for (unsigned i = 0; i < n; i++) {
		w->gfn[i] = first + i;
		w->old[i] = mv_page_host_id(mv_vm_page(vm, first + i));
		assert_true(w->old[i] != MV_ZERO_PAGE);
	}
}

static void write_page(struct mv_vm *vm, uint64_t gfn, uint8_t v)
{
	uint8_t page[MV_PAGE_SIZE];

	memset(page, v, sizeof(page));
	assert_int_equal(mv_vm_phys_write(vm, gfn << MV_PAGE_SHIFT, page,
					  sizeof(page)), 0);
}

static void in_time(struct watch *w, unsigned min_seen)
{
	assert_true(w->seen >= min_seen);
	assert_int_equal(w->late, 0);
}

static void notify_before_free(void **state)
{
	struct fx_ctx *c = *state;
	struct watch w = { .host = c->host };
	uint8_t page[MV_PAGE_SIZE];
	uint64_t g = 0;

	mv_vm_set_notify(c->vm, on_notify, &w);
	/* balloon */
	write_page(c->vm, 0, 1);
	watch(&w, c->vm, 0, 1);
	assert_int_equal(mv_vm_balloon_inflate(c->vm, &g, 1), 0);
	in_time(&w, 1);
	/* share: both private pages go */
	write_page(c->vm, 1, 2);
	write_page(c->vm, 2, 2);
	watch(&w, c->vm, 1, 2);
	assert_int_equal(mv_vm_share_pages(c->vm, 1, c->vm, 2), 0);
	in_time(&w, 2);
	/* copy-on-write of the last reference frees the shared page */
	assert_int_equal(mv_vm_phys_write(c->vm, 2 << MV_PAGE_SHIFT, "x", 1), 0);
	watch(&w, c->vm, 1, 1);
	assert_int_equal(mv_vm_phys_write(c->vm, 1 << MV_PAGE_SHIFT, "y", 1), 0);
	in_time(&w, 1);
	/* populate over the last reference of a shared page */
	write_page(c->vm, 3, 3);
	write_page(c->vm, 4, 3);
	assert_int_equal(mv_vm_share_pages(c->vm, 3, c->vm, 4), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 4 << MV_PAGE_SHIFT, "z", 1), 0);
	watch(&w, c->vm, 3, 1);
	memset(page, 9, sizeof(page));
	assert_int_equal(mv_vm_phys_populate(c->vm, 3, 1, page), 0);
	in_time(&w, 1);
	/* reset: more private pages than the handy cache keeps */
	for (uint64_t i = 10; i < 10 + WATCH; i++)
		write_page(c->vm, i, (uint8_t)i);
	watch(&w, c->vm, 10, WATCH);
	assert_int_equal(mv_vm_reset(c->vm), 0);
	in_time(&w, WATCH);
}

/* A vCPU's last store through a cached write pointer, made while the MMU
 * revokes it (inside the hook), must not be lost by a sharing merge: the
 * merge notifies before it compares, so it sees the store and refuses. */
struct late_store {
	uint8_t *ptr;
	uint64_t gfn;
	unsigned stores;
};

static void store_on_notify(void *opaque, struct mv_vm *vm, uint64_t gfn,
			    uint64_t count, enum mv_notify_reason why)
{
	struct late_store *s = opaque;

	(void)vm;
	if (why == MV_NOTIFY_SHARED && gfn <= s->gfn && s->gfn - gfn < count &&
	    s->ptr) {
		*s->ptr = 'X';
		s->ptr = NULL;
		s->stores++;
	}
}

static void share_notifies_before_compare(void **state)
{
	struct fx_ctx *c = *state;
	struct late_store s = { .gfn = 20 };
	void *p;
	uint8_t b = 0;

	write_page(c->vm, 20, 5);
	write_page(c->vm, 21, 5);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, 20 << MV_PAGE_SHIFT, 1, &p), 0);
	s.ptr = p;
	mv_vm_set_notify(c->vm, store_on_notify, &s);
	assert_int_equal(mv_vm_share_pages(c->vm, 20, c->vm, 21), -MV_ESTATE);
	assert_int_equal(s.stores, 1);
	assert_int_equal(mv_vm_phys_read(c->vm, 20 << MV_PAGE_SHIFT, &b, 1), 0);
	assert_int_equal(b, 'X');
	assert_int_equal(fx_state(c->vm, 20 << MV_PAGE_SHIFT), MV_PAGE_ALLOCATED);
	/* the same from the other side of the merge */
	write_page(c->vm, 20, 5);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, 20 << MV_PAGE_SHIFT, 1, &p), 0);
	s.ptr = p;
	assert_int_equal(mv_vm_share_pages(c->vm, 21, c->vm, 20), -MV_ESTATE);
	assert_int_equal(mv_vm_phys_read(c->vm, 20 << MV_PAGE_SHIFT, &b, 1), 0);
	assert_int_equal(b, 'X');
}

/* The mover notifies before it copies: a last store through a cached
 * write pointer, made while the MMU revokes it, is on the new page. */
struct move_store {
	uint8_t *ptr[FX_FRAG_PAGES];
	unsigned stores;
	uint64_t gfn;
};

static void store_on_move(void *opaque, struct mv_vm *vm, uint64_t gfn,
			  uint64_t count, enum mv_notify_reason why)
{
	struct move_store *m = opaque;

	(void)vm;
	if (why != MV_NOTIFY_MOVED || count != 1 || gfn >= FX_FRAG_PAGES)
		return;
	*m->ptr[gfn] = 'M';
	m->gfn = gfn;
	m->stores++;
}

static void move_notifies_before_copy(void **state)
{
	struct mv_host *h;
	struct mv_vm *a;
	struct move_store m = { .stores = 0 };
	int rc = -MV_ENOENT;
	uint8_t byte;
	void *p;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &h), 0);
	a = fx_ram_vm(h, 1024, 0, 0);
	assert_int_equal(fx_fragment(a), 0);
	for (uint64_t i = 0; i < FX_FRAG_PAGES; i++) {
		if (mv_vm_gpa_to_hva(a, i << MV_PAGE_SHIFT, 1, &p) == 0)
			m.ptr[i] = p;
	}
	mv_vm_set_notify(a, store_on_move, &m);
	for (uint64_t g = FX_FRAG_PAGES; g-- > 0 && rc == -MV_ENOENT;)
		if (mv_page_state(mv_vm_page(a, g)) == MV_PAGE_ALLOCATED)
			rc = mv_host_move_page(h, mv_page_host_id(mv_vm_page(a, g)),
					       NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(m.stores, 1);
	assert_int_equal(mv_vm_phys_read(a, m.gfn << MV_PAGE_SHIFT, &byte, 1), 0);
	assert_int_equal(byte, 'M');
	mv_vm_destroy(a);
	mv_host_destroy(h);
}

/* The mapping cache notifies before it unmaps: a pointer into the chunk
 * being unmapped still reads its bytes inside the hook (with the munmap
 * first, the read in the hook faults). */
struct unmap_read {
	const uint8_t *ptr;
	uint8_t want;
	unsigned reads, wrong;
};

static void read_on_unmap(void *opaque, struct mv_vm *vm, uint64_t gfn,
			  uint64_t count, enum mv_notify_reason why)
{
	struct unmap_read *u = opaque;

	(void)vm, (void)gfn, (void)count;
	if (why != MV_NOTIFY_UNMAP || !u->ptr)
		return;
	u->reads++;
	u->wrong += *u->ptr != u->want;
}

static void unmap_notifies_before_munmap(void **state)
{
	struct mv_host *h;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .size = 1600ull << 12 };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = 2 };
	struct mv_vm *vm;
	struct unmap_read u = { .want = 1 };
	uint64_t other[2] = { 0, 0 };
	unsigned n = 0;
	uint32_t c0;
	uint8_t b;
	void *p;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &h), 0);
	assert_int_equal(mv_vm_create(h, &cfg, &vm), 0);
	for (uint64_t g = 0; g < 1600; g++)
		write_page(vm, g, 1);
	c0 = mv_page_chunk(mv_page_host_id(mv_vm_page(vm, 0)));
	for (uint64_t g = 1; g < 1600 && n < 2; g++) {
		uint32_t ch = mv_page_chunk(mv_page_host_id(mv_vm_page(vm, g)));

		if (ch != c0 && (n == 0 ||
		    ch != mv_page_chunk(mv_page_host_id(mv_vm_page(vm, other[0])))))
			other[n++] = g;
	}
	assert_int_equal(n, 2);
	assert_int_equal(mv_vm_gpa_to_hva(vm, 0, 0, &p), 0);
	u.ptr = p;
	mv_vm_set_notify(vm, read_on_unmap, &u);
	assert_int_equal(mv_vm_phys_read(vm, other[0] << MV_PAGE_SHIFT, &b, 1), 0);
	assert_int_equal(mv_vm_phys_read(vm, other[1] << MV_PAGE_SHIFT, &b, 1), 0);
	/* the second read unmapped page 0's chunk, the least recently used */
	assert_true(u.reads >= 1);
	assert_int_equal(u.wrong, 0);
	mv_vm_destroy(vm);
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(notify_before_free, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(share_notifies_before_compare,
						fx_setup, fx_teardown),
		cmocka_unit_test(move_notifies_before_copy),
		cmocka_unit_test(unmap_notifies_before_munmap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
