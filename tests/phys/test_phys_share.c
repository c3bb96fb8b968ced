/* Sharing between two VMs and copy-on-write, merging into the zero page,
 * the host's accounting of both, and page moving through the mover. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>
#include <xxhash.h>

#include "phys/fixture.h"

struct ctx {
	struct mv_host *host;
	struct mv_vm *a, *b;
	struct fx_device dev_a, dev_b;
	struct fx_notes na, nb;
};

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));

	if (!c || mv_host_create(NULL, &c->host) ||
	    fx_create(c->host, &c->dev_a, MV_BALLOON_WRITE_DEFLATE, 0, &c->a) ||
	    fx_create(c->host, &c->dev_b, MV_BALLOON_WRITE_DEFLATE, 0, &c->b))
		return -1;
	mv_vm_set_notify(c->a, fx_notify, &c->na);
	mv_vm_set_notify(c->b, fx_notify, &c->nb);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	mv_vm_destroy(c->a);
	mv_vm_destroy(c->b);
	mv_host_destroy(c->host);
	free(c);
	return 0;
}

static uint64_t base_allocated(struct ctx *c, struct mv_vm *vm)
{
	struct mv_host_vm_stats hs;
	struct mv_vm_stats st;

	assert_int_equal(mv_host_vm_get_stats(c->host, mv_vm_id(vm), &hs), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	return hs.allocated[MV_ACCOUNT_BASE] - st.handy;
}

/* Two VMs share one host page; a write in one copies it, and the other
 * still sees the old bytes. The checksum is XXH3 of the content (the pool
 * keeps its low 32 bits). */
static void cow_between_two_vms(void **state)
{
	struct ctx *c = *state;
	uint8_t page[MV_PAGE_SIZE], out[MV_PAGE_SIZE], x = 0xEE;
	uint64_t ga = 10, gb = (FX_HIGH_GPA >> 12) + 20, sum;
	struct mv_host_stats hs;
	mv_page_id id;

	fx_fill(page, sizeof(page), 77);
	assert_int_equal(mv_vm_phys_write(c->a, ga << 12, page, 4096), 0);
	assert_int_equal(mv_vm_phys_write(c->b, gb << 12, page, 4096), 0);
	assert_int_equal(base_allocated(c, c->a), 1);
	assert_int_equal(mv_vm_share_pages(c->a, ga, c->b, gb), 0);
	id = mv_page_host_id(mv_vm_page(c->a, ga));
	assert_int_equal(mv_page_host_id(mv_vm_page(c->b, gb)), id);
	assert_int_equal(fx_state(c->a, ga << 12), MV_PAGE_SHARED);
	assert_int_equal(c->na.count[MV_NOTIFY_SHARED], 1);
	assert_int_equal(c->nb.count[MV_NOTIFY_SHARED], 1);
	assert_int_equal(base_allocated(c, c->a), 0);
	assert_int_equal(base_allocated(c, c->b), 0);
	assert_int_equal(mv_host_get_stats(c->host, &hs), 0);
	assert_int_equal(hs.shared_pages, 1);
	assert_int_equal(hs.shared_refs, 2);
	assert_int_equal(mv_host_share_checksum(c->host, id, &sum), 0);
	/* host.h: a shared page keeps the low 32 bits of its checksum */
	assert_int_equal(sum, XXH3_64bits(page, sizeof(page)) & UINT32_MAX);
	/* sharing again is a no-op */
	assert_int_equal(mv_vm_share_pages(c->b, gb, c->a, ga), 0);
	assert_int_equal(mv_host_get_stats(c->host, &hs), 0);
	assert_int_equal(hs.shared_refs, 2);

	assert_int_equal(mv_vm_phys_write(c->a, (ga << 12) + 7, &x, 1), 0);
	assert_int_equal(fx_state(c->a, ga << 12), MV_PAGE_ALLOCATED);
	assert_int_equal(mv_vm_phys_read(c->b, gb << 12, out, 4096), 0);
	assert_memory_equal(out, page, 4096);
	page[7] = x;
	assert_int_equal(mv_vm_phys_read(c->a, ga << 12, out, 4096), 0);
	assert_memory_equal(out, page, 4096);
	assert_int_equal(mv_host_get_stats(c->host, &hs), 0);
	assert_int_equal(hs.shared_refs, 1);
	/* the last reference goes with the last writer */
	assert_int_equal(mv_vm_phys_write(c->b, gb << 12, &x, 1), 0);
	assert_int_equal(mv_host_get_stats(c->host, &hs), 0);
	assert_int_equal(hs.shared_pages, 0);
}

/* A third page joins an existing shared page; different bytes are
 * refused; zeros merge into the zero page; ROM and holes are refused. */
static void share_cases(void **state)
{
	struct ctx *c = *state;
	uint8_t page[MV_PAGE_SIZE], zero[MV_PAGE_SIZE] = { 0 };
	struct mv_host_stats hs;

	fx_fill(page, sizeof(page), 3);
	for (uint64_t g = 1; g <= 3; g++)
		assert_int_equal(mv_vm_phys_write(c->a, g << 12, page, 4096), 0);
	assert_int_equal(mv_vm_share_pages(c->a, 1, c->a, 2), 0);
	assert_int_equal(mv_vm_share_pages(c->a, 3, c->a, 2), 0);
	assert_int_equal(mv_host_get_stats(c->host, &hs), 0);
	assert_int_equal(hs.shared_pages, 1);
	assert_int_equal(hs.shared_refs, 3);
	page[100]++;
	assert_int_equal(mv_vm_phys_write(c->b, 1 << 12, page, 4096), 0);
	assert_int_equal(mv_vm_share_pages(c->a, 1, c->b, 1), -MV_ESTATE);
	assert_int_equal(fx_state(c->b, 1 << 12), MV_PAGE_ALLOCATED);
	/* zero content: both go back to the zero page */
	assert_int_equal(mv_vm_phys_write(c->a, 50 << 12, zero, 4096), 0);
	assert_int_equal(mv_vm_phys_write(c->b, 51 << 12, zero, 4096), 0);
	assert_int_equal(mv_vm_share_pages(c->a, 50, c->b, 51), 0);
	assert_int_equal(fx_state(c->a, 50 << 12), MV_PAGE_ZERO);
	assert_int_equal(fx_state(c->b, 51 << 12), MV_PAGE_ZERO);
	assert_int_equal(mv_vm_share_pages(c->a, FX_ROM_GPA >> 12, c->b,
					   FX_ROM_GPA >> 12), -MV_ESTATE);
	assert_int_equal(mv_vm_share_pages(c->a, FX_HOLE_GPA >> 12, c->b, 1),
			 -MV_ERANGE);
	assert_int_equal(mv_vm_share_pages(c->a, 1, c->a, 1), -MV_EINVAL);
	/* a VM with shared pages still closes cleanly */
}

/* B writes 450 pages and A 100 after it, so A's pages spill into a chunk
 * of their own; B then balloons 20 pages, leaving room in the fuller
 * chunk: some of A's pages can now move there. */
static void fill_and_fragment(struct ctx *c, uint8_t *pages)
{
	uint64_t gfns[20];

	for (uint64_t i = 0; i < 450; i++) {
		uint64_t gpa = i < 256 ? i << 12 : FX_HIGH_GPA + ((i - 256) << 12);

		fx_fill(pages, 4096, (uint32_t)i + 1000);
		assert_int_equal(mv_vm_phys_write(c->b, gpa, pages, 4096), 0);
	}
	for (uint64_t i = 0; i < 100; i++) {
		fx_fill(pages + i * 4096, 4096, (uint32_t)i);
		assert_int_equal(mv_vm_phys_write(c->a, i << 12,
						  pages + i * 4096, 4096), 0);
	}
	for (uint64_t i = 0; i < 20; i++)
		gfns[i] = i;
	assert_int_equal(mv_vm_balloon_inflate(c->b, gfns, 20), 0);
}

static void check_all(struct ctx *c, const uint8_t *pages)
{
	uint8_t out[4096];

	for (uint64_t i = 0; i < 100; i++) {
		uint64_t gpa = i << 12;

		assert_int_equal(mv_vm_phys_read(c->a, gpa, out, 4096), 0);
		assert_memory_equal(out, pages + i * 4096, 4096);
	}
}

/* The host moves private pages: content follows, the descriptor points
 * at the new page, the MMU is told; defragmentation keeps every byte. */
static void moving_pages(void **state)
{
	struct ctx *c = *state;
	static uint8_t pages[100 * 4096];
	struct mv_vm_stats st;
	uint32_t done = 0;
	int moved = 0;

	fill_and_fragment(c, pages);
	for (uint64_t g = 0; g < 100 && !moved; g++) {
		mv_page_id old = mv_page_host_id(mv_vm_page(c->a, g)), nid;
		int rc = mv_host_move_page(c->host, old, &nid);

		if (rc == -MV_ENOENT)  /* already in the fullest chunk */
			continue;
		assert_int_equal(rc, 0);
		assert_int_not_equal(nid, old);
		assert_int_equal(mv_page_host_id(mv_vm_page(c->a, g)), nid);
		assert_int_equal(c->na.count[MV_NOTIFY_MOVED], 1);
		moved = 1;
	}
	assert_true(moved);
	check_all(c, pages);
	assert_int_equal(mv_host_defragment(c->host, 10000, &done), 0);
	check_all(c, pages);
	assert_int_equal(mv_vm_get_stats(c->a, &st), 0);
	assert_true(st.moves >= 1);
	/* a shared page is not private: the host refuses to move it */
	assert_int_equal(mv_vm_phys_write(c->b, 30 << 12, pages, 4096), 0);
	assert_int_equal(mv_vm_share_pages(c->a, 0, c->b, 30), 0);
	assert_int_not_equal(mv_host_move_page(c->host,
			mv_page_host_id(mv_vm_page(c->a, 0)), NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(cow_between_two_vms, setup, teardown),
		cmocka_unit_test_setup_teardown(share_cases, setup, teardown),
		cmocka_unit_test_setup_teardown(moving_pages, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
