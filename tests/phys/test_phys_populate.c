/* Restore (mv_vm_phys_populate) allocates host pages only for pages that
 * hold data: a page of zeros in the image stays (or becomes) ZERO, whatever
 * backed it before, and the kernel holds memory for the data pages only
 * (the pool's memfd blocks). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "host/pool.h"
#include "phys/fixture.h"

#define PG MV_PAGE_SIZE
#define NPAGES 512

static uint64_t memfd_bytes(const struct mv_host *h)
{
	struct stat st;

	assert_int_equal(fstat(h->memfd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static uint64_t private_pages(const struct mv_host *h)
{
	struct mv_host_stats st;

	assert_int_equal(mv_host_get_stats(h, &st), 0);
	return st.private_pages;
}

/* Page i of the image holds data when i % 4 == 0. */
static void image(uint8_t *img)
{
	memset(img, 0, (size_t)NPAGES * PG);
	for (uint64_t i = 0; i < NPAGES; i += 4)
		fx_fill(img + i * PG, PG, (uint32_t)i);
}

static void check_content(struct mv_vm *vm, const uint8_t *img)
{
	static uint8_t back[NPAGES * PG];

	assert_int_equal(mv_vm_phys_read(vm, 0, back, sizeof(back)), 0);
	assert_memory_equal(back, img, sizeof(back));
	for (uint64_t i = 0; i < NPAGES; i++)
		assert_int_equal(fx_state(vm, i * PG),
				 i % 4 ? MV_PAGE_ZERO : MV_PAGE_ALLOCATED);
}

/* Onto a fresh VM: 128 host pages for 128 data pages of 512. */
static void fresh_vm_gets_data_pages_only(void **state)
{
	struct mv_host_config hc = { .free_cache_pages = 0 };
	static uint8_t img[NPAGES * PG];
	struct mv_host *h;
	struct mv_vm *vm;
	struct mv_vm_stats st;
	uint64_t priv, bytes;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &h), 0);
	vm = fx_ram_vm(h, 600, 1, 1);
	assert_non_null(vm);
	image(img);
	priv = private_pages(h);
	bytes = memfd_bytes(h);
	assert_int_equal(mv_vm_phys_populate(vm, 0, NPAGES, img), 0);
	assert_int_equal(private_pages(h) - priv, NPAGES / 4);
	assert_true(memfd_bytes(h) - bytes <= (uint64_t)(NPAGES / 4 + 8) * PG);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.pages[MV_PAGE_ALLOCATED], NPAGES / 4);
	check_content(vm, img);
	assert_int_equal(pool_check(h), 0);
	mv_vm_destroy(vm);
	mv_host_destroy(h);
}

/* Onto pages in every state: the zero pages of the image drop what
 * backed them (private pages freed, shared references dropped, balloon
 * charge returned), the data pages are written. */
static void zero_pages_drop_any_backing(void **state)
{
	struct mv_host_config hc = { .free_cache_pages = 0 };
	static uint8_t img[NPAGES * PG];
	uint8_t page[PG];
	struct mv_host *h;
	struct mv_vm *vm, *other;
	struct mv_host_vm_stats as;
	struct mv_host_stats hs;
	struct mv_vm_stats vs;
	uint64_t ballooned[2] = { 9, 10 };

	(void)state;
	assert_int_equal(mv_host_create(&hc, &h), 0);
	vm = fx_ram_vm(h, 600, 1, 1);
	other = fx_ram_vm(h, 16, 1, 1);
	for (uint64_t i = 0; i < NPAGES; i++) {
		fx_fill(page, PG, 5000 + (uint32_t)i);
		assert_int_equal(mv_vm_phys_write(vm, i * PG, page, PG), 0);
	}
	/* page 5 shares with the other VM, 9 and 10 are ballooned, 6 is
	 * monitored */
	fx_fill(page, PG, 5005);
	assert_int_equal(mv_vm_phys_write(other, 0, page, PG), 0);
	assert_int_equal(mv_vm_share_pages(vm, 5, other, 0), 0);
	assert_int_equal(mv_vm_balloon_inflate(vm, ballooned, 2), 0);
	assert_int_equal(mv_vm_write_monitor(vm, 6, 1, NULL), 0);
	image(img);
	assert_int_equal(mv_vm_phys_populate(vm, 0, NPAGES, img), 0);
	check_content(vm, img);
	assert_int_equal(mv_host_vm_get_stats(h, mv_vm_id(vm), &as), 0);
	assert_int_equal(as.ballooned, 0);
	assert_int_equal(as.shared_refs, 0);
	assert_int_equal(mv_vm_get_stats(vm, &vs), 0);
	assert_int_equal(as.allocated[MV_ACCOUNT_BASE], NPAGES / 4 + vs.handy);
	mv_vm_destroy(other);
	assert_int_equal(mv_host_get_stats(h, &hs), 0);
	assert_int_equal(hs.shared_pages, 0);
	assert_int_equal(pool_check(h), 0);
	mv_vm_destroy(vm);
	mv_host_destroy(h);
}

struct tnote {
	unsigned calls;
	uint64_t gpa;
	int zeros;
};

static void on_track(void *opaque, struct mv_vm *vm, uint64_t gpa,
		     const void *bytes, size_t len)
{
	static const uint8_t zero[PG];
	struct tnote *t = opaque;

	(void)vm;
	t->calls++;
	t->gpa = gpa;
	t->zeros = len == PG && !memcmp(bytes, zero, PG);
}

/* A tracked page of zeros: its bytes change, so the track hook hears of
 * it, and it stays tracked. */
static void tracked_zero_page_reported(void **state)
{
	struct fx_ctx *c = *state;
	struct tnote t = { 0 };
	static const uint8_t zero[PG];

	assert_int_equal(mv_vm_phys_write(c->vm, 3 * PG, "abc", 3), 0);
	assert_int_equal(mv_vm_track_write(c->vm, 3, 1), 0);
	mv_vm_set_track_hook(c->vm, on_track, &t);
	assert_int_equal(mv_vm_phys_populate(c->vm, 3, 1, zero), 0);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.gpa, 3 * PG);
	assert_true(t.zeros);
	assert_int_equal(fx_state(c->vm, 3 * PG), MV_PAGE_ZERO);
	assert_int_equal(mv_vm_page_tracked(c->vm, 3), 1);
}

/* The image may be guest memory of the same VM: a frame restored from
 * its own shared page (the last reference: the populate drops it, and with
 * no free cache its memory is punched away) and from its own private page
 * (copied onto itself). */
static void source_inside_the_frames(uint32_t map_max)
{
	struct mv_host_config hc = { .free_cache_pages = 0 };
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .size = 64 * PG };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = map_max };
	struct mv_host *h;
	struct mv_vm *a, *b;
	uint8_t want[PG], got[PG];
	void *p;

	assert_int_equal(mv_host_create(&hc, &h), 0);
	assert_int_equal(mv_vm_create(h, &cfg, &a), 0);
	assert_int_equal(mv_vm_create(h, &cfg, &b), 0);
	fx_fill(want, PG, 3);
	assert_int_equal(mv_vm_phys_write(a, 3 * PG, want, PG), 0);
	assert_int_equal(mv_vm_phys_write(b, 3 * PG, want, PG), 0);
	assert_int_equal(mv_vm_share_pages(a, 3, b, 3), 0);
	assert_int_equal(mv_vm_phys_write(b, 3 * PG, "b", 1), 0);
	assert_int_equal(mv_vm_gpa_to_hva(a, 3 * PG, 0, &p), 0);
	assert_int_equal(mv_vm_phys_populate(a, 3, 1, p), 0);
	assert_int_equal(mv_vm_phys_read(a, 3 * PG, got, PG), 0);
	assert_memory_equal(got, want, PG);
	/* from its own private page */
	assert_int_equal(mv_vm_gpa_to_hva(a, 3 * PG, 1, &p), 0);
	assert_int_equal(mv_vm_phys_populate(a, 3, 1, p), 0);
	assert_int_equal(mv_vm_phys_read(a, 3 * PG, got, PG), 0);
	assert_memory_equal(got, want, PG);
	assert_int_equal(pool_check(h), 0);
	mv_vm_destroy(a);
	mv_vm_destroy(b);
	mv_host_destroy(h);
}

static void source_inside_frames_pool(void **state)
{
	(void)state;
	source_inside_the_frames(0);
}

static void source_inside_frames_mapcache(void **state)
{
	(void)state;
	source_inside_the_frames(2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(fresh_vm_gets_data_pages_only),
		cmocka_unit_test(zero_pages_drop_any_backing),
		cmocka_unit_test_setup_teardown(tracked_zero_page_reported,
						fx_setup, fx_teardown),
		cmocka_unit_test(source_inside_frames_pool),
		cmocka_unit_test(source_inside_frames_mapcache),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
