/* The balloon: accounting in the host pool, the memory the kernel holds
 * for the pool really falling (the memfd's allocated blocks), both write
 * policies, deflation and all-or-nothing list checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "phys/fixture.h"

#define BIG_PAGES 16384u  /* 64 MiB of guest RAM */

/* Bytes the kernel holds for the pool: the allocated blocks of its memfd
 * (every chunk lives in it; mv_host_chunk_fd gives it for any live one).
 * The process's RSS is not the measure: it falls on munmap alone while the
 * file keeps the memory, and it counts the test's own buffers. */
static uint64_t held_bytes(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

/* The pool's memfd, through the chunk that backs @gfn. */
static int pool_fd(struct mv_host *host, struct mv_vm *vm, uint64_t gfn)
{
	mv_page_id id = mv_page_host_id(mv_vm_page(vm, gfn));
	uint64_t off;
	int fd = -1;

	assert_int_equal(mv_host_chunk_fd(host, mv_page_chunk(id), &fd, &off),
			 0);
	return fd;
}

static void touch_all(struct mv_vm *vm, uint32_t n)
{
	uint8_t page[MV_PAGE_SIZE];

	for (uint32_t g = 0; g < n; g++) {
		fx_fill(page, sizeof(page), g);
		assert_int_equal(mv_vm_phys_write(vm, (uint64_t)g << 12, page,
						  sizeof(page)), 0);
	}
}

/* Inflating 64 MiB of written guest RAM gives it back to the kernel. */
static void held_memory_falls(void **state)
{
	struct mv_host_config hc = { .empty_chunk_cache = 0 };
	struct mv_host *host;
	struct mv_vm *vm;
	static uint64_t gfns[BIG_PAGES];
	struct mv_host_vm_stats vs;
	struct mv_vm_stats st;
	uint64_t base, full, after;
	int fd;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	vm = fx_ram_vm(host, BIG_PAGES, 0, 0);
	assert_non_null(vm);
	touch_all(vm, 1);      /* the first chunk, and with it the memfd */
	fd = pool_fd(host, vm, 0);
	base = held_bytes(fd);
	touch_all(vm, BIG_PAGES);
	full = held_bytes(fd);
	assert_true(full - base >= 60ull << 20);
	for (uint32_t g = 0; g < BIG_PAGES; g++)
		gfns[g] = g;
	assert_int_equal(mv_vm_balloon_inflate(vm, gfns, BIG_PAGES), 0);
	after = held_bytes(fd);
	print_message("pool memfd: base %lu MiB, written %lu MiB, ballooned "
		      "%lu MiB\n", (unsigned long)(base >> 20),
		      (unsigned long)(full >> 20), (unsigned long)(after >> 20));
	assert_true(full - after >= 56ull << 20);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &vs), 0);
	assert_int_equal(vs.ballooned, BIG_PAGES);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(vs.allocated[MV_ACCOUNT_BASE], st.handy);
	assert_int_equal(st.pages[MV_PAGE_BALLOONED], BIG_PAGES);
	/* deflating gives the pages back as ZERO: nothing allocated yet */
	assert_int_equal(mv_vm_balloon_deflate(vm, gfns, BIG_PAGES), 0);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &vs), 0);
	assert_int_equal(vs.ballooned, 0);
	assert_true(held_bytes(fd) < full - (56ull << 20));
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* Both write policies, zero/shared pages in the balloon, and the checks. */
static void policies_and_checks(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm, *strict;
	struct fx_device dev;
	struct fx_notes notes = { 0 };
	struct mv_host_vm_stats vs;
	uint64_t g[4] = { 1, 2, 3, 4 }, rom = FX_ROM_GPA >> 12;
	uint8_t b = 9, page[MV_PAGE_SIZE];

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(fx_create(host, &dev, MV_BALLOON_WRITE_DEFLATE, 0,
				   &vm), 0);
	assert_int_equal(fx_create(host, &dev, MV_BALLOON_WRITE_ERROR, 0,
				   &strict), 0);
	mv_vm_set_notify(vm, fx_notify, &notes);
	fx_fill(page, sizeof(page), 1);
	/* page 1 private, 2 and 3 shared, 4 zero */
	assert_int_equal(mv_vm_phys_write(vm, 1 << 12, page, 4096), 0);
	assert_int_equal(mv_vm_phys_write(vm, 2 << 12, page, 4096), 0);
	assert_int_equal(mv_vm_phys_write(vm, 3 << 12, page, 4096), 0);
	assert_int_equal(mv_vm_share_pages(vm, 2, vm, 3), 0);
	/* bad lists change nothing */
	uint64_t dup[2] = { 1, 1 }, hole[2] = { 1, FX_HOLE_GPA >> 12 },
		 withrom[2] = { 1, rom };
	assert_int_equal(mv_vm_balloon_inflate(vm, dup, 2), -MV_EINVAL);
	assert_int_equal(mv_vm_balloon_inflate(vm, hole, 2), -MV_ERANGE);
	assert_int_equal(mv_vm_balloon_inflate(vm, withrom, 2), -MV_ESTATE);
	assert_int_equal(mv_vm_balloon_inflate(vm, g, 0), -MV_EINVAL);
	assert_int_equal(fx_state(vm, 1 << 12), MV_PAGE_ALLOCATED);
	assert_int_equal(mv_vm_balloon_inflate(vm, g, 4), 0);
	assert_int_equal(notes.count[MV_NOTIFY_BALLOON], 4);
	assert_int_equal(mv_vm_balloon_inflate(vm, g, 1), -MV_ESTATE);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &vs), 0);
	assert_int_equal(vs.ballooned, 1);   /* only page 1 was private */
	assert_int_equal(vs.shared_refs, 0);
	/* deflate policy: a write takes the page back */
	assert_int_equal(mv_vm_phys_write(vm, (1 << 12) + 5, &b, 1), 0);
	assert_int_equal(fx_state(vm, 1 << 12), MV_PAGE_ALLOCATED);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &vs), 0);
	assert_int_equal(vs.ballooned, 0);
	assert_int_equal(mv_vm_balloon_deflate(vm, g, 4), -MV_ESTATE);
	assert_int_equal(mv_vm_balloon_deflate(vm, g + 1, 3), 0);
	assert_int_equal(fx_state(vm, 3 << 12), MV_PAGE_ZERO);
	/* error policy: the write fails and the page stays in the balloon */
	assert_int_equal(mv_vm_phys_write(strict, 1 << 12, page, 4096), 0);
	assert_int_equal(mv_vm_balloon_inflate(strict, g, 1), 0);
	assert_int_equal(mv_vm_phys_write(strict, 1 << 12, &b, 1), -MV_ESTATE);
	assert_int_equal(fx_state(strict, 1 << 12), MV_PAGE_BALLOONED);
	assert_int_equal(mv_vm_phys_read(strict, 1 << 12, page, 4096), 0);
	for (int i = 0; i < 4096; i++)
		assert_int_equal(page[i], 0);
	mv_vm_destroy(vm);
	mv_vm_destroy(strict);
	mv_host_destroy(host);
}

/* A ballooned page stays charged: the VM cannot exceed its reservation
 * by ballooning and writing elsewhere. */
static void balloon_stays_charged(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 64 * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .handy_low = 1, .handy_high = 2 };
	struct mv_host_vm_stats vs;
	uint64_t g = 0;
	uint8_t b = 1;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(mv_vm_create(host, &cfg, &vm), 0);
	for (uint64_t i = 0; i < 64; i++)
		assert_int_equal(mv_vm_phys_write(vm, i << 12, &b, 1), 0);
	assert_int_equal(mv_vm_balloon_inflate(vm, &g, 1), 0);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &vs), 0);
	assert_true(vs.allocated[MV_ACCOUNT_BASE] + vs.ballooned <=
		    vs.reserved.base);
	assert_int_equal(mv_vm_phys_write(vm, 0, &b, 1), 0);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &vs), 0);
	assert_int_equal(vs.ballooned, 0);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(held_memory_falls),
		cmocka_unit_test(policies_and_checks),
		cmocka_unit_test(balloon_stays_charged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
