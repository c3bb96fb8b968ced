/* Bad input to every function of vm.h: each call below must return its
 * exact error and change nothing (the pool's and the VM's statistics,
 * every page descriptor, every byte of guest RAM, the handlers). Addresses
 * near UINT64_MAX, spans that wrap, frames beyond the 52-bit limit, holes,
 * ROM/MMIO where RAM is needed, duplicates and NULLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "badinput.h"
#include <xxhash.h>

#include "host/pool.h"
#include "phys/fixture.h"

#define GFN(gpa) ((gpa) >> MV_PAGE_SHIFT)
#define LOW(n) (FX_LOW_GPA + (n) * MV_PAGE_SIZE)
#define TOP (UINT64_MAX & ~(uint64_t)(MV_PAGE_SIZE - 1))
#define MAXGFN (1ull << 40)    /* first frame above the 52-bit limit */

/* The fixture VM (see fixture.h) with: low page 1 ALLOCATED (0x11), low
 * pages 2 and 3 SHARED (equal bytes), low page 4 BALLOONED, low page 5
 * holding other bytes, a WRITE handler on low page 8, an MMIO handler on
 * low page 9; and a second VM on another pool. */
struct fx {
	struct mv_host *host, *other_host;
	struct mv_vm *vm, *other;
	struct fx_device dev;
	struct mv_vm_request *req;
	uint8_t buf[3 * MV_PAGE_SIZE];
	uint64_t bitmap[4];
	void *ptr;
};

static struct fx F;

static int handler(void *opaque, struct mv_vm *vm, uint64_t gpa, void *buf,
		   size_t len, enum mv_access access)
{
	(void)opaque, (void)vm, (void)gpa, (void)buf, (void)len, (void)access;
	return MV_HANDLER_DEFAULT;
}

static int request(struct mv_vm *vm, void *arg)
{
	(void)vm, (void)arg;
	return 0;
}

/* mv_vm_create cases: the configuration to try and the code it gives. */
static struct mv_vm_range ranges_ok[1] = {
	{ .type = MV_PAGE_RAM, .gpa = 0, .size = 16 * MV_PAGE_SIZE },
};

static int create_with(const struct mv_vm_range *r, uint32_t n,
		       uint32_t low, uint32_t high, unsigned policy,
		       uint32_t map_max)
{
	struct mv_vm_config cfg = { .ranges = r, .nranges = n,
				    .handy_low = low, .handy_high = high,
				    .balloon_policy = (enum mv_balloon_policy)policy,
				    .map_chunks_max = map_max };
	struct mv_vm *vm = (struct mv_vm *)&F;   /* must stay untouched */
	int rc = mv_vm_create(F.host, &cfg, &vm);

	if (vm != (struct mv_vm *)&F)
		return 12345;
	return rc;
}

static int create_range(enum mv_page_type type, uint64_t gpa, uint64_t size)
{
	struct mv_vm_range r = { .type = type, .gpa = gpa, .size = size };

	return create_with(&r, 1, 0, 0, 0, 0);
}

static int create_two(uint64_t gpa1, uint64_t size1, uint64_t gpa2,
		      uint64_t size2)
{
	struct mv_vm_range r[2] = {
		{ .type = MV_PAGE_RAM, .gpa = gpa1, .size = size1 },
		{ .type = MV_PAGE_MMIO, .gpa = gpa2, .size = size2 },
	};

	return create_with(r, 2, 0, 0, 0, 0);
}

static int create_rom(size_t rom_size, const void *data)
{
	struct mv_vm_range r = { .type = MV_PAGE_ROM, .gpa = 0,
				 .size = MV_PAGE_SIZE, .rom_size = rom_size,
				 .rom_data = data };

	return create_with(&r, 1, 0, 0, 0, 0);
}

#define BAD_CASES(X) \
	X(-MV_EINVAL, mv_vm_create(NULL, &(struct mv_vm_config){ 0 }, &out)) \
	X(-MV_EINVAL, mv_vm_create(F.host, NULL, &out)) \
	X(-MV_EINVAL, mv_vm_create(F.host, &(struct mv_vm_config){ .ranges = ranges_ok, .nranges = 1 }, NULL)) \
	X(-MV_EINVAL, create_with(NULL, 1, 0, 0, 0, 0)) \
	X(-MV_EINVAL, create_with(ranges_ok, 0, 0, 0, 0, 0)) \
	X(-MV_EINVAL, create_with(ranges_ok, 1, 9, 8, 0, 0)) \
	X(-MV_EINVAL, create_with(ranges_ok, 1, 0, 0, 2, 0)) \
	X(-MV_EINVAL, create_with(ranges_ok, 1, 0, 0, UINT32_MAX, 0)) \
	X(-MV_EINVAL, create_with(ranges_ok, 1, 0, 0, 0, 1)) \
	X(-MV_EINVAL, create_range(MV_PAGE_RAM, 0, 0)) \
	X(-MV_EINVAL, create_range(MV_PAGE_RAM, 1, MV_PAGE_SIZE)) \
	X(-MV_EINVAL, create_range(MV_PAGE_RAM, 0, MV_PAGE_SIZE + 1)) \
	X(-MV_EINVAL, create_range((enum mv_page_type)3, 0, MV_PAGE_SIZE)) \
	X(-MV_EINVAL, create_range((enum mv_page_type)-1, 0, MV_PAGE_SIZE)) \
	X(-MV_ERANGE, create_range(MV_PAGE_RAM, 1ull << 52, MV_PAGE_SIZE)) \
	X(-MV_ERANGE, create_range(MV_PAGE_RAM, (1ull << 52) - MV_PAGE_SIZE, 2 * MV_PAGE_SIZE)) \
	X(-MV_ERANGE, create_range(MV_PAGE_RAM, TOP, MV_PAGE_SIZE)) \
	X(-MV_ERANGE, create_range(MV_PAGE_RAM, MV_PAGE_SIZE, TOP)) \
	X(-MV_ERANGE, create_range(MV_PAGE_MMIO, TOP - MV_PAGE_SIZE, 2 * MV_PAGE_SIZE)) \
	X(-MV_EEXIST, create_two(0, 2 * MV_PAGE_SIZE, MV_PAGE_SIZE, MV_PAGE_SIZE)) \
	X(-MV_EEXIST, create_two(MV_PAGE_SIZE, MV_PAGE_SIZE, 0, 4 * MV_PAGE_SIZE)) \
	X(-MV_EINVAL, create_rom(MV_PAGE_SIZE + 1, F.buf)) \
	X(-MV_EINVAL, create_rom(1, NULL)) \
	X(-MV_EINVAL, mv_vm_phys_read(NULL, 0, F.buf, 1)) \
	X(-MV_EINVAL, mv_vm_phys_read(F.vm, 0, NULL, 1)) \
	X(-MV_ERANGE, mv_vm_phys_read(F.vm, FX_HOLE_GPA, F.buf, 1)) \
	X(-MV_ERANGE, mv_vm_phys_read(F.vm, FX_HOLE_GPA - 1, F.buf, 2)) \
	X(-MV_ERANGE, mv_vm_phys_read(F.vm, FX_LOW_GPA, F.buf, SIZE_MAX)) \
	X(-MV_ERANGE, mv_vm_phys_read(F.vm, UINT64_MAX, F.buf, 1)) \
	X(-MV_ERANGE, mv_vm_phys_read(F.vm, UINT64_MAX - 7, F.buf, 16)) \
	X(-MV_ERANGE, mv_vm_phys_read(F.vm, (1ull << 52) - 1, F.buf, 2)) \
	X(-MV_ERANGE, mv_vm_phys_read(F.vm, FX_HIGH_GPA + FX_HIGH_SIZE - 1, F.buf, 2)) \
	X(-MV_EINVAL, mv_vm_phys_write(NULL, 0, F.buf, 1)) \
	X(-MV_EINVAL, mv_vm_phys_write(F.vm, 0, NULL, 1)) \
	X(-MV_ERANGE, mv_vm_phys_write(F.vm, FX_HOLE_GPA - 1, F.buf, 2)) \
	X(-MV_ERANGE, mv_vm_phys_write(F.vm, LOW(0), F.buf, SIZE_MAX)) \
	X(-MV_ERANGE, mv_vm_phys_write(F.vm, UINT64_MAX - 1, F.buf, 3)) \
	X(-MV_ERANGE, mv_vm_phys_write(F.vm, TOP, F.buf, 2 * MV_PAGE_SIZE)) \
	X(-MV_ERANGE, mv_vm_phys_write(F.vm, FX_MMIO_GPA - MV_PAGE_SIZE, F.buf, 2 * MV_PAGE_SIZE)) \
	X(-MV_EINVAL, mv_vm_gpa_to_hva(NULL, 0, 0, &F.ptr)) \
	X(-MV_EINVAL, mv_vm_gpa_to_hva(F.vm, 0, 0, NULL)) \
	X(-MV_ERANGE, mv_vm_gpa_to_hva(F.vm, FX_HOLE_GPA, 1, &F.ptr)) \
	X(-MV_ERANGE, mv_vm_gpa_to_hva(F.vm, UINT64_MAX, 1, &F.ptr)) \
	X(-MV_ERANGE, mv_vm_gpa_to_hva(F.vm, 1ull << 52, 0, &F.ptr)) \
	X(-MV_EINVAL, mv_vm_gpa_to_hva_locked(NULL, 0, 0, &F.ptr)) \
	X(-MV_EINVAL, mv_vm_gpa_to_hva_locked(F.vm, 0, 0, NULL)) \
	X(-MV_ERANGE, mv_vm_gpa_to_hva_locked(F.vm, FX_HOLE_GPA, 1, &F.ptr)) \
	X(-MV_ERANGE, mv_vm_gpa_to_hva_locked(F.vm, UINT64_MAX, 0, &F.ptr)) \
	X(-MV_EINVAL, mv_vm_gpa_to_hva(F.vm, LOW(0), 3, &F.ptr)) \
	X(-MV_EINVAL, mv_vm_gpa_to_hva(F.vm, LOW(0), -1, &F.ptr)) \
	X(-MV_EINVAL, mv_vm_gpa_to_hva_locked(F.vm, LOW(0), 3, &F.ptr)) \
	X(MV_VM_SLOW_PATH, mv_vm_gpa_to_hva(F.vm, FX_MMIO_GPA, 0, &F.ptr)) \
	X(MV_VM_SLOW_PATH, mv_vm_gpa_to_hva(F.vm, FX_ROM_GPA, 1, &F.ptr)) \
	X(MV_VM_SLOW_PATH, mv_vm_gpa_to_hva(F.vm, LOW(8), 1, &F.ptr)) \
	X(MV_VM_SLOW_PATH, mv_vm_gpa_to_hva(F.vm, LOW(9), 0, &F.ptr)) \
	X(MV_VM_SLOW_PATH, mv_vm_gpa_to_hva(F.vm, LOW(10), MV_VM_HVA_WRITE, &F.ptr)) \
	X(-MV_EINVAL, mv_vm_track_write(NULL, 1, 1)) \
	X(-MV_EINVAL, mv_vm_track_write(F.vm, 1, 2)) \
	X(-MV_EINVAL, mv_vm_track_write(F.vm, 1, -1)) \
	X(-MV_ERANGE, mv_vm_track_write(F.vm, GFN(FX_ROM_GPA), 1)) \
	X(-MV_ERANGE, mv_vm_track_write(F.vm, GFN(FX_MMIO_GPA), 1)) \
	X(-MV_ERANGE, mv_vm_track_write(F.vm, GFN(FX_HOLE_GPA), 1)) \
	X(-MV_ERANGE, mv_vm_track_write(F.vm, UINT64_MAX, 1)) \
	X(-MV_ERANGE, mv_vm_track_write(F.vm, MAXGFN, 0)) \
	X(-MV_EINVAL, mv_vm_page_tracked(NULL, 1)) \
	X(0, mv_vm_page_tracked(F.vm, GFN(FX_HOLE_GPA))) \
	X(1, mv_vm_page_tracked(F.vm, 10)) \
	X(-MV_EINVAL, mv_vm_phys_populate(NULL, 0, 1, F.buf)) \
	X(-MV_EINVAL, mv_vm_phys_populate(F.vm, 0, 1, NULL)) \
	X(-MV_EINVAL, mv_vm_phys_populate(F.vm, 0, 0, F.buf)) \
	X(-MV_ERANGE, mv_vm_phys_populate(F.vm, MAXGFN, 1, F.buf)) \
	X(-MV_ERANGE, mv_vm_phys_populate(F.vm, UINT64_MAX, 1, F.buf)) \
	X(-MV_ERANGE, mv_vm_phys_populate(F.vm, MAXGFN - 1, 2, F.buf)) \
	X(-MV_ERANGE, mv_vm_phys_populate(F.vm, GFN(FX_HOLE_GPA), 1, F.buf)) \
	X(-MV_ERANGE, mv_vm_phys_populate(F.vm, GFN(FX_HIGH_GPA + FX_HIGH_SIZE) - 1, 2, F.buf)) \
	X(-MV_ERANGE, mv_vm_phys_populate(F.vm, 0, UINT32_MAX, F.buf)) \
	X(-MV_ESTATE, mv_vm_phys_populate(F.vm, GFN(FX_ROM_GPA), 1, F.buf)) \
	X(-MV_ESTATE, mv_vm_phys_populate(F.vm, GFN(FX_ROM_GPA) - 1, 2, F.buf)) \
	X(-MV_ESTATE, mv_vm_phys_populate(F.vm, GFN(FX_MMIO_GPA), 1, F.buf)) \
	X(-MV_EINVAL, mv_vm_reset(NULL)) \
	X(-MV_EINVAL, mv_vm_handler_register(NULL, MV_HANDLER_WRITE, 0, 1, handler, NULL)) \
	X(-MV_EINVAL, mv_vm_handler_register(F.vm, MV_HANDLER_WRITE, 0, 1, NULL, NULL)) \
	X(-MV_EINVAL, mv_vm_handler_register(F.vm, MV_HANDLER_WRITE, 0, 0, handler, NULL)) \
	X(-MV_EINVAL, mv_vm_handler_register(F.vm, (enum mv_handler_kind)3, 0, 1, handler, NULL)) \
	X(-MV_EINVAL, mv_vm_handler_register(F.vm, (enum mv_handler_kind)-1, 0, 1, handler, NULL)) \
	X(-MV_ERANGE, mv_vm_handler_register(F.vm, MV_HANDLER_WRITE, UINT64_MAX, 1, handler, NULL)) \
	X(-MV_ERANGE, mv_vm_handler_register(F.vm, MV_HANDLER_WRITE, LOW(0), UINT64_MAX, handler, NULL)) \
	X(-MV_ERANGE, mv_vm_handler_register(F.vm, MV_HANDLER_WRITE, TOP, MV_PAGE_SIZE * 2, handler, NULL)) \
	X(-MV_ERANGE, mv_vm_handler_register(F.vm, MV_HANDLER_WRITE, FX_HOLE_GPA, 1, handler, NULL)) \
	X(-MV_ERANGE, mv_vm_handler_register(F.vm, MV_HANDLER_ALL, FX_HOLE_GPA - 1, 2, handler, NULL)) \
	X(-MV_EEXIST, mv_vm_handler_register(F.vm, MV_HANDLER_ALL, LOW(7), 2 * MV_PAGE_SIZE, handler, NULL)) \
	X(-MV_EEXIST, mv_vm_handler_register(F.vm, MV_HANDLER_ALL, LOW(9) + 5, 1, handler, NULL)) \
	X(-MV_EINVAL, mv_vm_handler_deregister(NULL, LOW(8))) \
	X(-MV_ENOENT, mv_vm_handler_deregister(F.vm, LOW(7))) \
	X(-MV_ENOENT, mv_vm_handler_deregister(F.vm, UINT64_MAX)) \
	X(-MV_ENOENT, mv_vm_handler_deregister(F.vm, FX_HOLE_GPA)) \
	X(-MV_EINVAL, mv_vm_handler_page_disable(NULL, LOW(8))) \
	X(-MV_ENOENT, mv_vm_handler_page_disable(F.vm, LOW(10))) \
	X(-MV_ENOENT, mv_vm_handler_page_disable(F.vm, UINT64_MAX)) \
	X(-MV_ESTATE, mv_vm_handler_page_disable(F.vm, LOW(9))) \
	X(-MV_EINVAL, mv_vm_handler_page_enable(NULL, LOW(8))) \
	X(-MV_ENOENT, mv_vm_handler_page_enable(F.vm, TOP)) \
	X(-MV_ESTATE, mv_vm_handler_page_enable(F.vm, LOW(9))) \
	X(-MV_EINVAL, mv_vm_write_monitor(NULL, 1, 1, NULL)) \
	X(-MV_ERANGE, mv_vm_write_monitor(F.vm, 1, 0, NULL)) \
	X(-MV_ERANGE, mv_vm_write_monitor(F.vm, 1, UINT64_MAX, NULL)) \
	X(-MV_ERANGE, mv_vm_write_monitor(F.vm, UINT64_MAX, 2, NULL)) \
	X(-MV_ERANGE, mv_vm_write_monitor(F.vm, MAXGFN - 1, 2, NULL)) \
	X(-MV_ERANGE, mv_vm_write_monitor(F.vm, GFN(FX_HOLE_GPA) - 1, 2, NULL)) \
	X(-MV_EINVAL, mv_vm_dirty_collect(NULL, 0, 1, F.bitmap)) \
	X(-MV_EINVAL, mv_vm_dirty_collect(F.vm, 0, 1, NULL)) \
	X(-MV_ERANGE, mv_vm_dirty_collect(F.vm, 0, 0, F.bitmap)) \
	X(-MV_ERANGE, mv_vm_dirty_collect(F.vm, 0, UINT64_MAX, F.bitmap)) \
	X(-MV_ERANGE, mv_vm_dirty_collect(F.vm, UINT64_MAX - 1, 4, F.bitmap)) \
	X(-MV_ERANGE, mv_vm_dirty_collect(F.vm, GFN(FX_HOLE_GPA) - 1, 2, F.bitmap)) \
	X(-MV_EINVAL, mv_vm_share_pages(NULL, 2, F.vm, 3)) \
	X(-MV_EINVAL, mv_vm_share_pages(F.vm, 2, NULL, 3)) \
	X(-MV_EINVAL, mv_vm_share_pages(F.vm, 1, F.vm, 1)) \
	X(-MV_EINVAL, mv_vm_share_pages(F.vm, 1, F.other, 0)) \
	X(-MV_ERANGE, mv_vm_share_pages(F.vm, 1, F.vm, UINT64_MAX)) \
	X(-MV_ERANGE, mv_vm_share_pages(F.vm, GFN(FX_HOLE_GPA), F.vm, 1)) \
	X(-MV_ESTATE, mv_vm_share_pages(F.vm, 1, F.vm, 5)) \
	X(-MV_ESTATE, mv_vm_share_pages(F.vm, 1, F.vm, 4)) \
	X(-MV_ESTATE, mv_vm_share_pages(F.vm, GFN(FX_ROM_GPA), F.vm, 1)) \
	X(-MV_ESTATE, mv_vm_share_pages(F.vm, GFN(FX_MMIO_GPA), F.vm, 6)) \
	X(-MV_EINVAL, mv_vm_balloon_inflate(NULL, gfns_ok, 1)) \
	X(-MV_EINVAL, mv_vm_balloon_inflate(F.vm, NULL, 1)) \
	X(-MV_EINVAL, mv_vm_balloon_inflate(F.vm, gfns_ok, 0)) \
	X(-MV_EINVAL, mv_vm_balloon_inflate(F.vm, gfns_dup, 3)) \
	X(-MV_ERANGE, mv_vm_balloon_inflate(F.vm, gfns_hole, 2)) \
	X(-MV_ERANGE, mv_vm_balloon_inflate(F.vm, gfns_huge, 2)) \
	X(-MV_ESTATE, mv_vm_balloon_inflate(F.vm, gfns_rom, 2)) \
	X(-MV_ESTATE, mv_vm_balloon_inflate(F.vm, gfns_ballooned, 2)) \
	X(-MV_EINVAL, mv_vm_balloon_deflate(NULL, gfns_ballooned, 1)) \
	X(-MV_EINVAL, mv_vm_balloon_deflate(F.vm, gfns_ballooned, 0)) \
	X(-MV_ESTATE, mv_vm_balloon_deflate(F.vm, gfns_ok, 1)) \
	X(-MV_ESTATE, mv_vm_balloon_deflate(F.vm, gfns_ballooned, 2)) \
	X(-MV_EINVAL, mv_vm_balloon_deflate(F.vm, gfns_ballooned_dup, 2)) \
	X(-MV_ERANGE, mv_vm_balloon_deflate(F.vm, gfns_ballooned_huge, 2)) \
	X(-MV_EINVAL, mv_vm_balloon_set_target(NULL, 1)) \
	X(-MV_ERANGE, mv_vm_balloon_set_target(F.vm, FX_RAM_PAGES + 1)) \
	X(-MV_ERANGE, mv_vm_balloon_set_target(F.vm, UINT64_MAX)) \
	X(-MV_EINVAL, mv_vm_request_post(NULL, request, NULL, NULL)) \
	X(-MV_EINVAL, mv_vm_request_post(F.vm, NULL, NULL, &F.req)) \
	X(-MV_EINVAL, mv_vm_request_wait(NULL, F.req, 0, NULL)) \
	X(-MV_EINVAL, mv_vm_request_wait(F.vm, NULL, 1, NULL)) \
	X(-MV_EINVAL, mv_vm_process_requests(NULL, NULL)) \
	X(-MV_EINVAL, mv_vm_get_stats(NULL, &st)) \
	X(-MV_EINVAL, mv_vm_get_stats(F.vm, NULL))

/* Run case @i; BADINPUT_END when there is no such case. */
static int run_case(int i, const char **name, int *want)
{
	uint64_t gfns_ok[1] = { 1 };
	uint64_t gfns_dup[3] = { 1, 5, 1 };
	uint64_t gfns_hole[2] = { 1, GFN(FX_HOLE_GPA) };
	uint64_t gfns_huge[2] = { 1, UINT64_MAX };
	uint64_t gfns_rom[2] = { 1, GFN(FX_ROM_GPA) };
	uint64_t gfns_ballooned[2] = { 4, 1 };
	uint64_t gfns_ballooned_dup[2] = { 4, 4 };
	uint64_t gfns_ballooned_huge[2] = { 4, UINT64_MAX };
	struct mv_vm_stats st;
	struct mv_vm *out = NULL;

	(void)out;
	BADINPUT_RUN(i, name, want);
}

struct snapshot {
	struct mv_host_stats host;
	struct mv_host_vm_stats account;
	struct mv_vm_stats vm;
	uint64_t pages, bytes;     /* hashes of descriptors and RAM */
	uint64_t target;
};

static uint64_t hash_range(uint64_t gpa, uint64_t size, uint64_t *pages)
{
	static uint8_t ram[FX_LOW_SIZE];
	XXH64_hash_t d = *pages;

	for (uint64_t g = GFN(gpa); g < GFN(gpa + size); g++)
		d = XXH3_64bits_withSeed(mv_vm_page(F.vm, g),
					 sizeof(struct mv_page), d);
	*pages = d;
	assert_int_equal(mv_vm_phys_read(F.vm, gpa, ram, size), 0);
	return XXH3_64bits(ram, size);
}

static void snap(struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(mv_host_get_stats(F.host, &s->host), 0);
	assert_int_equal(mv_host_vm_get_stats(F.host, mv_vm_id(F.vm),
					      &s->account), 0);
	s->bytes = hash_range(FX_LOW_GPA, FX_LOW_SIZE, &s->pages) ^
		   hash_range(FX_HIGH_GPA, FX_HIGH_SIZE, &s->pages) * 3 ^
		   hash_range(FX_ROM_GPA, FX_ROM_SIZE, &s->pages) * 5;
	/* The hashing reads above count nothing, so the stats come last. */
	assert_int_equal(mv_vm_get_stats(F.vm, &s->vm), 0);
	s->target = mv_vm_balloon_get_target(F.vm);
}

static void setup_fixture(void)
{
	uint8_t page[MV_PAGE_SIZE];
	uint64_t g = 4;

	memset(&F, 0, sizeof(F));
	assert_int_equal(mv_host_create(NULL, &F.host), 0);
	assert_int_equal(mv_host_create(NULL, &F.other_host), 0);
	assert_int_equal(fx_create(F.host, &F.dev, MV_BALLOON_WRITE_DEFLATE, 0,
				   &F.vm), 0);
	assert_int_equal(fx_create(F.other_host, &F.dev,
				   MV_BALLOON_WRITE_DEFLATE, 0, &F.other), 0);
	memset(page, 0x11, sizeof(page));
	assert_int_equal(mv_vm_phys_write(F.vm, LOW(1), page, sizeof(page)), 0);
	assert_int_equal(mv_vm_phys_write(F.other, LOW(0), page, sizeof(page)), 0);
	memset(page, 0x22, sizeof(page));
	assert_int_equal(mv_vm_phys_write(F.vm, LOW(2), page, sizeof(page)), 0);
	assert_int_equal(mv_vm_phys_write(F.vm, LOW(3), page, sizeof(page)), 0);
	assert_int_equal(mv_vm_share_pages(F.vm, 2, F.vm, 3), 0);
	assert_int_equal(mv_vm_phys_write(F.vm, LOW(4), page, sizeof(page)), 0);
	assert_int_equal(mv_vm_balloon_inflate(F.vm, &g, 1), 0);
	memset(page, 0x55, sizeof(page));
	assert_int_equal(mv_vm_phys_write(F.vm, LOW(5), page, sizeof(page)), 0);
	assert_int_equal(mv_vm_handler_register(F.vm, MV_HANDLER_WRITE, LOW(8),
						MV_PAGE_SIZE, handler, NULL), 0);
	assert_int_equal(mv_vm_handler_register(F.vm, MV_HANDLER_MMIO, LOW(9),
						MV_PAGE_SIZE, handler, NULL), 0);
	assert_int_equal(mv_vm_balloon_set_target(F.vm, 7), 0);
	assert_int_equal(mv_vm_phys_write(F.vm, LOW(10), "t", 1), 0);
	assert_int_equal(mv_vm_track_write(F.vm, 10, 1), 0);
}

static void test_bad_input_table(void **state)
{
	(void)state;
	setup_fixture();
	BADINPUT_RUN_ALL((void)0, assert_int_equal(pool_check(F.host), 0));
	/* Lookups and void calls with bad arguments. */
	assert_null(mv_vm_page(NULL, 0));
	assert_null(mv_vm_page(F.vm, UINT64_MAX));
	assert_null(mv_vm_page(F.vm, GFN(FX_HOLE_GPA)));
	assert_int_equal(mv_vm_id(NULL), 0);
	assert_null(mv_vm_host(NULL));
	assert_int_equal(mv_vm_balloon_get_target(NULL), 0);
	mv_vm_set_notify(NULL, NULL, NULL);
	mv_vm_set_track_hook(NULL, NULL, NULL);
	mv_vm_lock(NULL);
	mv_vm_unlock(NULL);
	mv_vm_destroy(NULL);
	mv_vm_destroy(F.vm);
	mv_vm_destroy(F.other);
	mv_host_destroy(F.host);
	mv_host_destroy(F.other_host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
