/* Guest-physical reads and writes: spans across pages and ranges, holes
 * and out-of-range addresses (clear errors, no side effects), MMIO
 * dispatch, creation errors, restore-style population and reset. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "phys/fixture.h"

/* Writes of every length at offsets around a page boundary read back. */
static void spans_across_pages(void **state)
{
	struct fx_ctx *c = *state;
	uint8_t in[3 * MV_PAGE_SIZE], out[3 * MV_PAGE_SIZE];
	const size_t lens[] = { 1, 2, 7, 8, 4095, 4096, 4097, 8191, 8193,
				12288 };

	for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++)
		for (uint64_t off = 4090; off < 4100; off++) {
			uint64_t gpa = FX_HIGH_GPA + 64 * MV_PAGE_SIZE + off;

			fx_fill(in, lens[l], (uint32_t)(l * 31 + off));
			assert_int_equal(mv_vm_phys_write(c->vm, gpa, in,
							  lens[l]), 0);
			assert_int_equal(mv_vm_phys_read(c->vm, gpa, out,
							 lens[l]), 0);
			assert_memory_equal(in, out, lens[l]);
		}
}

/* Low RAM and the ROM abut: one access spans both ranges. */
static void spans_across_ranges(void **state)
{
	struct fx_ctx *c = *state;
	uint8_t in[64], out[64];

	memset(in, 0x5A, sizeof(in));
	assert_int_equal(mv_vm_phys_write(c->vm, FX_ROM_GPA - 32, in, 64), 0);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_ROM_GPA - 32, out, 64), 0);
	assert_memory_equal(out, in, 32);      /* RAM took the write */
	for (int i = 0; i < 32; i++)           /* ROM ignored it */
		assert_int_equal(out[32 + i], rom_byte((uint64_t)i));
}

/* Anything touching a hole fails as a whole, with nothing written. */
static void holes_and_out_of_range(void **state)
{
	struct fx_ctx *c = *state;
	uint8_t buf[2 * MV_PAGE_SIZE] = { 0 }, chk[16];
	const uint64_t bad[] = { FX_HOLE_GPA, FX_HOLE_GPA + 12345,
				 FX_HIGH_GPA - 1, FX_HIGH_GPA + FX_HIGH_SIZE,
				 1ull << 52, UINT64_MAX - 3, 3ull << 30 };
	void *ptr;

	memset(buf, 0x77, sizeof(buf));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mv_vm_phys_read(c->vm, bad[i], buf, 8),
				 -MV_ERANGE);
		assert_int_equal(mv_vm_phys_write(c->vm, bad[i], buf, 8),
				 -MV_ERANGE);
		assert_int_equal(mv_vm_gpa_to_hva(c->vm, bad[i], 1, &ptr),
				 -MV_ERANGE);
	}
	/* Starts in ROM, runs into the hole: no effect at all. */
	assert_int_equal(mv_vm_phys_write(c->vm, FX_HOLE_GPA - 8, buf, 16),
			 -MV_ERANGE);
	/* Starts in RAM, runs past the end of high RAM. */
	assert_int_equal(mv_vm_phys_write(c->vm, FX_HIGH_GPA + FX_HIGH_SIZE - 8,
					  buf, 16), -MV_ERANGE);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_HIGH_GPA + FX_HIGH_SIZE - 8,
					 chk, 8), 0);
	for (int i = 0; i < 8; i++)
		assert_int_equal(chk[i], 0);
	assert_int_equal(fx_state(c->vm, FX_HIGH_GPA + FX_HIGH_SIZE - 8),
			 MV_PAGE_ZERO);
	assert_null(mv_vm_page(c->vm, FX_HOLE_GPA >> 12));
	assert_int_equal(mv_vm_phys_read(c->vm, 0, NULL, 8), -MV_EINVAL);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_HOLE_GPA, buf, 0), 0);
}

/* MMIO accesses reach the device with range-relative offsets, split at
 * pages; a range without callbacks reads all-ones and drops writes. */
static void mmio_dispatch(void **state)
{
	struct fx_ctx *c = *state;
	uint32_t v = 0x12345678, r = 0;
	uint8_t big[MV_PAGE_SIZE + 8], back[MV_PAGE_SIZE + 8];

	assert_int_equal(mv_vm_phys_write(c->vm, FX_MMIO_GPA + 0x10, &v, 4), 0);
	assert_int_equal(c->dev.writes, 1);
	assert_memory_equal(c->dev.regs + 0x10, &v, 4);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_MMIO_GPA + 0x10, &r, 4), 0);
	assert_int_equal(r, v);
	assert_int_equal(c->dev.reads, 1);
	fx_fill(big, sizeof(big), 9);
	assert_int_equal(mv_vm_phys_write(c->vm, FX_MMIO_GPA + 4092, big,
					  sizeof(big)), 0);
	assert_int_equal(c->dev.writes, 4);  /* 4 + 4096 + 4: split at pages */
	assert_memory_equal(c->dev.regs + 4092, big, sizeof(big));
	assert_int_equal(mv_vm_phys_read(c->vm, FX_MMIO_GPA + 4092, back,
					 sizeof(back)), 0);
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(mv_vm_phys_write(c->vm, FX_MMIO_GPA + (64 << 20),
					  &v, 4), 0);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_MMIO_GPA + (64 << 20),
					 &r, 4), 0);
	assert_int_equal(r, 0xffffffffu);
}

static int create_with(struct mv_host *host, const struct mv_vm_range *r,
		       uint32_t n)
{
	struct mv_vm_config cfg = { .ranges = r, .nranges = n };
	struct mv_vm *vm = NULL;
	int rc = mv_vm_create(host, &cfg, &vm);

	mv_vm_destroy(vm);
	return rc;
}

static void creation_errors(void **state)
{
	struct fx_ctx *c = *state;
	struct mv_vm_range r[2] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = 8 * MV_PAGE_SIZE },
		{ .type = MV_PAGE_RAM, .gpa = 4 * MV_PAGE_SIZE,
		  .size = 8 * MV_PAGE_SIZE },
	};
	struct mv_host_stats hs;

	assert_int_equal(create_with(c->host, r, 2), -MV_EEXIST);
	r[1].gpa = 8 * MV_PAGE_SIZE;           /* abutting is fine */
	assert_int_equal(create_with(c->host, r, 2), 0);
	r[1].gpa = 8 * MV_PAGE_SIZE + 1;
	assert_int_equal(create_with(c->host, r, 2), -MV_EINVAL);
	r[1].gpa = 1ull << 52;
	assert_int_equal(create_with(c->host, r, 2), -MV_ERANGE);
	r[1].gpa = 0;
	r[1].size = 0;
	assert_int_equal(create_with(c->host, r, 2), -MV_EINVAL);
	r[1] = (struct mv_vm_range){ .type = MV_PAGE_ROM, .gpa = 1 << 20,
				     .size = 4096, .rom_size = 8192 };
	assert_int_equal(create_with(c->host, r, 2), -MV_EINVAL);
	assert_int_equal(create_with(c->host, r, 0), -MV_EINVAL);
	assert_int_equal(create_with(NULL, r, 1), -MV_EINVAL);
	/* Failed creations left no account behind. */
	assert_int_equal(mv_host_get_stats(c->host, &hs), 0);
	assert_int_equal(hs.vms, 1);
}

/* Populate fills pages without zeroing; reset returns all RAM to ZERO but
 * keeps the ROM; both give the host its pages back. */
static void populate_and_reset(void **state)
{
	struct fx_ctx *c = *state;
	static uint8_t img[16 * MV_PAGE_SIZE], out[16 * MV_PAGE_SIZE];
	struct mv_host_vm_stats hs;
	struct mv_vm_stats st;
	uint64_t g = 3, gb = (FX_HIGH_GPA >> 12) + 100;
	uint8_t rom[16];

	fx_fill(img, sizeof(img), 5);
	assert_int_equal(mv_vm_phys_populate(c->vm, 3, 16, img), 0);
	assert_int_equal(mv_vm_phys_read(c->vm, 3 * 4096, out, sizeof(out)), 0);
	assert_memory_equal(out, img, sizeof(img));
	assert_int_equal(fx_state(c->vm, 3 * 4096), MV_PAGE_ALLOCATED);
	/* over a ROM page or a hole: refused */
	assert_int_equal(mv_vm_phys_populate(c->vm, (FX_ROM_GPA >> 12) - 1, 2,
					     img), -MV_ESTATE);
	assert_int_equal(mv_vm_phys_populate(c->vm, FX_HOLE_GPA >> 12, 1, img),
			 -MV_ERANGE);
	/* every state present, then reset */
	assert_int_equal(mv_vm_write_monitor(c->vm, 4, 1, NULL), 0);
	assert_int_equal(mv_vm_balloon_inflate(c->vm, &g, 1), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, gb << 12, img + 4096, 4096), 0);
	assert_int_equal(mv_vm_share_pages(c->vm, 5, c->vm, gb), -MV_ESTATE);
	assert_int_equal(mv_vm_phys_write(c->vm, 5 << 12, img + 4096, 4096), 0);
	assert_int_equal(mv_vm_share_pages(c->vm, 5, c->vm, gb), 0);
	assert_int_equal(mv_vm_reset(c->vm), 0);
	assert_int_equal(mv_vm_get_stats(c->vm, &st), 0);
	assert_int_equal(st.pages[MV_PAGE_ZERO], FX_RAM_PAGES);
	assert_int_equal(mv_vm_phys_read(c->vm, 0, out, sizeof(out)), 0);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_ROM_GPA, rom, 16), 0);
	for (int i = 0; i < 16; i++)
		assert_int_equal(rom[i], rom_byte((uint64_t)i));
	assert_int_equal(mv_host_vm_get_stats(c->host, mv_vm_id(c->vm), &hs), 0);
	assert_int_equal(hs.ballooned, 0);
	assert_int_equal(hs.shared_refs, 0);
	/* only the handy cache stays allocated */
	assert_int_equal(hs.allocated[MV_ACCOUNT_BASE], st.handy);
}

/* The balloon target is the host's wish, bounded by the VM's RAM. */
static void balloon_target(void **state)
{
	struct fx_ctx *c = *state;

	assert_int_equal(mv_vm_balloon_get_target(c->vm), 0);
	assert_int_equal(mv_vm_balloon_set_target(c->vm, 100), 0);
	assert_int_equal(mv_vm_balloon_get_target(c->vm), 100);
	assert_int_equal(mv_vm_balloon_set_target(c->vm, FX_RAM_PAGES + 1),
			 -MV_ERANGE);
	assert_int_equal(mv_vm_balloon_get_target(c->vm), 100);
}

/* Dirty flags: set by writes, harvested and cleared by collect. */
static void dirty_collect(void **state)
{
	struct fx_ctx *c = *state;
	uint64_t bm[2];
	uint8_t b = 1;

	assert_int_equal(mv_vm_dirty_collect(c->vm, 0, 100, bm), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 3 * 4096, &b, 1), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 70 * 4096, &b, 1), 0);
	assert_int_equal(mv_vm_dirty_collect(c->vm, 0, 100, bm), 0);
	assert_int_equal(bm[0], 1ull << 3);
	assert_int_equal(bm[1], 1ull << 6);
	assert_int_equal(mv_vm_dirty_collect(c->vm, 0, 100, bm), 0);
	assert_int_equal(bm[0] | bm[1], 0);
	assert_int_equal(mv_vm_dirty_collect(c->vm, FX_HOLE_GPA >> 12, 1, bm),
			 -MV_ERANGE);
}

/* The write monitor: armed on private pages only, the MMU is told to
 * write-protect, and a scanner sees which pages were written since. */
static void write_monitor_hot_and_cold(void **state)
{
	struct fx_ctx *c = *state;
	uint64_t armed = 0;
	uint8_t b = 1;

	for (uint64_t g = 0; g < 8; g++)
		assert_int_equal(mv_vm_phys_write(c->vm, g << 12, &b, 1), 0);
	assert_int_equal(mv_vm_write_monitor(c->vm, 0, 10, &armed), 0);
	assert_int_equal(armed, 8);  /* pages 8 and 9 are ZERO */
	assert_int_equal(c->notes.count[MV_NOTIFY_MONITOR], 1);
	assert_int_equal(fx_state(c->vm, 9 << 12), MV_PAGE_ZERO);
	for (int k = 0; k < 3; k++)
		assert_int_equal(mv_vm_phys_write(c->vm, 2 << 12, &b, 1), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 5 << 12, &b, 1), 0);
	for (uint64_t g = 0; g < 8; g++) {
		const struct mv_page *p = mv_vm_page(c->vm, g);
		int hot = g == 2 || g == 5;

		assert_int_equal(!!(mv_page_flags(p) & MV_PAGE_F_MONITOR_HIT), hot);
		assert_int_equal(mv_page_state(p), hot ? MV_PAGE_ALLOCATED
						       : MV_PAGE_WRITE_MONITORED);
		assert_int_equal(mv_page_monitor_hits(p), hot);
	}
	/* re-arming clears the hit flag and counts the next hit */
	assert_int_equal(mv_vm_write_monitor(c->vm, 2, 1, &armed), 0);
	assert_int_equal(mv_page_flags(mv_vm_page(c->vm, 2)) & MV_PAGE_F_MONITOR_HIT,
			 0);
	assert_int_equal(mv_vm_phys_write(c->vm, 2 << 12, &b, 1), 0);
	assert_int_equal(mv_page_monitor_hits(mv_vm_page(c->vm, 2)), 2);
	assert_int_equal(mv_vm_write_monitor(c->vm, FX_HOLE_GPA >> 12, 1, NULL),
			 -MV_ERANGE);
}

/* NULL objects give errors, never a crash. */
static void null_arguments(void **state)
{
	uint8_t b;
	void *p;
	uint64_t g = 0;

	(void)state;
	assert_int_equal(mv_vm_phys_read(NULL, 0, &b, 1), -MV_EINVAL);
	assert_int_equal(mv_vm_phys_write(NULL, 0, &b, 1), -MV_EINVAL);
	assert_int_equal(mv_vm_gpa_to_hva(NULL, 0, 0, &p), -MV_EINVAL);
	assert_int_equal(mv_vm_balloon_inflate(NULL, &g, 1), -MV_EINVAL);
	assert_int_equal(mv_vm_reset(NULL), -MV_EINVAL);
	assert_int_equal(mv_vm_share_pages(NULL, 0, NULL, 0), -MV_EINVAL);
	assert_int_equal(mv_vm_request_post(NULL, NULL, NULL, NULL), -MV_EINVAL);
	assert_int_equal(mv_vm_handler_deregister(NULL, 0), -MV_EINVAL);
	assert_int_equal(mv_vm_get_stats(NULL, NULL), -MV_EINVAL);
	assert_null(mv_vm_page(NULL, 0));
	assert_int_equal(mv_vm_balloon_get_target(NULL), 0);
	mv_vm_set_notify(NULL, NULL, NULL);
	mv_vm_destroy(NULL);
}

/* A populate that runs out of budget in its second batch: the first batch
 * is populated and the MMU told about it, the second keeps what it had
 * (private pages their bytes), and the accounts still add up. */
static void populate_partial_failure(void **state)
{
	struct mv_host_config hc = { .budget_pages = 300,
				     .overcommit = MV_OVERCOMMIT_ALLOW };
	struct mv_host *host;
	struct mv_vm *vm;
	struct fx_notes notes = { { 0 }, 0, 0 };
	static uint8_t data[512 * MV_PAGE_SIZE], page[MV_PAGE_SIZE];
	struct mv_host_vm_stats hs;
	struct mv_vm_stats vs;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	vm = fx_ram_vm(host, 600, 1, 1);
	assert_non_null(vm);
	mv_vm_set_notify(vm, fx_notify, &notes);
	fx_fill(data, sizeof(data), 77);
	for (uint64_t g = 256; g < 260; g++) {
		fx_fill(page, sizeof(page), (uint32_t)g);
		assert_int_equal(mv_vm_phys_write(vm, g * MV_PAGE_SIZE, page,
						  sizeof(page)), 0);
	}
	memset(&notes, 0, sizeof(notes));
	assert_int_equal(mv_vm_phys_populate(vm, 0, 512, data), -MV_EBUDGET);
	assert_int_equal(notes.count[MV_NOTIFY_BACKING], 1);
	assert_int_equal(notes.last_gfn, 0);
	assert_true(notes.last_count >= 256);
	for (uint64_t g = 0; g < 256; g++) {
		assert_int_equal(fx_state(vm, g * MV_PAGE_SIZE), MV_PAGE_ALLOCATED);
		assert_int_equal(mv_vm_phys_read(vm, g * MV_PAGE_SIZE, page,
						 sizeof(page)), 0);
		assert_memory_equal(page, data + g * MV_PAGE_SIZE, sizeof(page));
	}
	for (uint64_t g = 256; g < 260; g++) {
		uint8_t want[MV_PAGE_SIZE];

		fx_fill(want, sizeof(want), (uint32_t)g);
		assert_int_equal(mv_vm_phys_read(vm, g * MV_PAGE_SIZE, page,
						 sizeof(page)), 0);
		assert_memory_equal(page, want, sizeof(page));
	}
	assert_int_equal(fx_state(vm, 260 * MV_PAGE_SIZE), MV_PAGE_ZERO);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &hs), 0);
	assert_int_equal(mv_vm_get_stats(vm, &vs), 0);
	assert_int_equal(hs.allocated[MV_ACCOUNT_BASE],
			 vs.pages[MV_PAGE_ALLOCATED] + vs.handy);
	assert_int_equal(vs.pages[MV_PAGE_ALLOCATED], 260);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(spans_across_pages, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(spans_across_ranges, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(holes_and_out_of_range, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(mmio_dispatch, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(creation_errors, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(populate_and_reset, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(balloon_target, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(dirty_collect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(write_monitor_hot_and_cold, fx_setup, fx_teardown),
		cmocka_unit_test(null_arguments),
		cmocka_unit_test(populate_partial_failure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
