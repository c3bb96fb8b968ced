/* Layout changes at run time: mv_vm_range_add / mv_vm_range_remove and the
 * layout generation. Bad input changes nothing (exact error, same pool and
 * VM statistics, same descriptors, same bytes, same generation); data in
 * the other ranges survives every change; the generation grows on every
 * change and only then; removing a range gives back every page it held
 * (private, shared, ballooned, monitored, ROM), so the accounts return to
 * what they were before it was added. */
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
#define PG MV_PAGE_SIZE
#define TOP (UINT64_MAX & ~(uint64_t)(PG - 1))
#define EXTRA_GPA (8ull << 30)      /* a free spot for added ranges */

static int handler(void *opaque, struct mv_vm *vm, uint64_t gpa, void *buf,
		   size_t len, enum mv_access access)
{
	(void)opaque, (void)vm, (void)gpa, (void)buf, (void)len, (void)access;
	return MV_HANDLER_DEFAULT;
}

/* ---- bad input ---------------------------------------------------------- */

static struct fx_ctx *B;   /* the fixture of the bad-input table */
static uint8_t rom_bytes[PG];

static int add(enum mv_page_type type, uint64_t gpa, uint64_t size)
{
	struct mv_vm_range r = { .type = type, .gpa = gpa, .size = size };

	return mv_vm_range_add(B->vm, &r);
}

static int add_rom(uint64_t size, size_t rom_size, const void *data)
{
	struct mv_vm_range r = { .type = MV_PAGE_ROM, .gpa = EXTRA_GPA,
				 .size = size, .rom_size = rom_size,
				 .rom_data = data };

	return mv_vm_range_add(B->vm, &r);
}

#define BAD_CASES(X) \
	X(-MV_EINVAL, mv_vm_range_add(NULL, &(struct mv_vm_range){ .size = PG })) \
	X(-MV_EINVAL, mv_vm_range_add(B->vm, NULL)) \
	X(-MV_EINVAL, add(MV_PAGE_RAM, EXTRA_GPA, 0)) \
	X(-MV_EINVAL, add(MV_PAGE_RAM, EXTRA_GPA + 1, PG)) \
	X(-MV_EINVAL, add(MV_PAGE_RAM, EXTRA_GPA + PG / 2, PG)) \
	X(-MV_EINVAL, add(MV_PAGE_RAM, EXTRA_GPA, PG + 1)) \
	X(-MV_EINVAL, add(MV_PAGE_RAM, EXTRA_GPA, PG - 1)) \
	X(-MV_EINVAL, add((enum mv_page_type)3, EXTRA_GPA, PG)) \
	X(-MV_EINVAL, add((enum mv_page_type)-1, EXTRA_GPA, PG)) \
	X(-MV_EINVAL, add_rom(PG, PG + 1, rom_bytes)) \
	X(-MV_EINVAL, add_rom(PG, 1, NULL)) \
	X(-MV_ERANGE, add(MV_PAGE_RAM, 1ull << 52, PG)) \
	X(-MV_ERANGE, add(MV_PAGE_RAM, (1ull << 52) - PG, 2 * PG)) \
	X(-MV_ERANGE, add(MV_PAGE_RAM, TOP, PG)) \
	X(-MV_ERANGE, add(MV_PAGE_MMIO, PG, TOP)) \
	X(-MV_ERANGE, add(MV_PAGE_RAM, EXTRA_GPA, UINT64_MAX - PG + 1)) \
	X(-MV_EEXIST, add(MV_PAGE_RAM, FX_LOW_GPA, PG)) \
	X(-MV_EEXIST, add(MV_PAGE_RAM, FX_LOW_GPA + FX_LOW_SIZE - PG, PG)) \
	X(-MV_EEXIST, add(MV_PAGE_MMIO, FX_ROM_GPA + PG, PG)) \
	X(-MV_EEXIST, add(MV_PAGE_RAM, FX_HOLE_GPA - PG, 2 * PG)) \
	X(-MV_EEXIST, add(MV_PAGE_RAM, FX_HOLE_GPA, FX_MMIO_GPA - FX_HOLE_GPA + PG)) \
	X(-MV_EEXIST, add(MV_PAGE_ROM, FX_HIGH_GPA - PG, 2 * PG)) \
	X(-MV_EEXIST, add(MV_PAGE_RAM, 0, FX_HIGH_GPA + FX_HIGH_SIZE + PG)) \
	X(-MV_EEXIST, add(MV_PAGE_RAM, FX_HIGH_GPA + 5 * PG, PG)) \
	X(-MV_EINVAL, mv_vm_range_remove(NULL, FX_LOW_GPA)) \
	X(-MV_EINVAL, mv_vm_range_remove(B->vm, FX_HIGH_GPA + 1)) \
	X(-MV_EINVAL, mv_vm_range_remove(B->vm, UINT64_MAX)) \
	X(-MV_ENOENT, mv_vm_range_remove(B->vm, FX_LOW_GPA + PG)) \
	X(-MV_ENOENT, mv_vm_range_remove(B->vm, FX_HIGH_GPA + FX_HIGH_SIZE - PG)) \
	X(-MV_ENOENT, mv_vm_range_remove(B->vm, FX_HOLE_GPA)) \
	X(-MV_ENOENT, mv_vm_range_remove(B->vm, EXTRA_GPA)) \
	X(-MV_ENOENT, mv_vm_range_remove(B->vm, 1ull << 52)) \
	X(-MV_ENOENT, mv_vm_range_remove(B->vm, TOP)) \
	X(-MV_EBUSY, mv_vm_range_remove(B->vm, FX_LOW_GPA)) \
	X(-MV_EBUSY, mv_vm_range_remove(B->vm, FX_MMIO_GPA)) \
	X(-MV_EBUSY, mv_vm_range_remove(B->vm, FX_ROM_GPA))

static int run_case(int i, const char **name, int *want)
{
	BADINPUT_RUN(i, name, want);
}

struct snapshot {
	struct mv_host_stats host;
	struct mv_host_vm_stats account;
	struct mv_vm_stats vm;
	uint64_t pages, bytes, gen, target;
};

/* Hash of the descriptors and bytes of every page of [gpa, gpa + size). */
static void hash_span(struct snapshot *s, uint64_t gpa, uint64_t size)
{
	uint8_t page[PG];

	for (uint64_t g = GFN(gpa); g < GFN(gpa + size); g++) {
		s->pages = XXH3_64bits_withSeed(mv_vm_page(B->vm, g),
						sizeof(struct mv_page),
						s->pages);
		assert_int_equal(mv_vm_phys_read(B->vm, g << MV_PAGE_SHIFT,
						 page, PG), 0);
		s->bytes = XXH3_64bits_withSeed(page, PG, s->bytes);
	}
}

static void snap(struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(mv_host_get_stats(B->host, &s->host), 0);
	assert_int_equal(mv_host_vm_get_stats(B->host, mv_vm_id(B->vm),
					      &s->account), 0);
	hash_span(s, FX_LOW_GPA, FX_LOW_SIZE + FX_ROM_SIZE);
	hash_span(s, FX_HIGH_GPA, FX_HIGH_SIZE);
	assert_int_equal(mv_vm_get_stats(B->vm, &s->vm), 0);
	s->gen = mv_vm_layout_gen(B->vm);
	s->target = mv_vm_balloon_get_target(B->vm);
}

/* The fixture VM with private, shared and ballooned pages, a handler on
 * low page 8, one on the first MMIO page and one across the last low
 * page and the first ROM page, and a balloon target. */
static void bad_fixture(void)
{
	uint8_t page[PG];
	uint64_t g = 4;

	assert_int_equal(fx_setup((void **)&B), 0);
	memset(page, 0x11, PG);
	assert_int_equal(mv_vm_phys_write(B->vm, LOW(1), page, PG), 0);
	assert_int_equal(mv_vm_phys_write(B->vm, LOW(2), page, PG), 0);
	assert_int_equal(mv_vm_phys_write(B->vm, FX_HIGH_GPA, page, PG), 0);
	assert_int_equal(mv_vm_share_pages(B->vm, 2, B->vm,
					   GFN(FX_HIGH_GPA)), 0);
	assert_int_equal(mv_vm_phys_write(B->vm, LOW(4), page, PG), 0);
	assert_int_equal(mv_vm_balloon_inflate(B->vm, &g, 1), 0);
	assert_int_equal(mv_vm_handler_register(B->vm, MV_HANDLER_WRITE,
						LOW(8), PG, handler, NULL), 0);
	assert_int_equal(mv_vm_handler_register(B->vm, MV_HANDLER_MMIO,
						FX_MMIO_GPA, PG, handler,
						NULL), 0);
	/* across the end of low RAM into the ROM: it claims a ROM page */
	assert_int_equal(mv_vm_handler_register(B->vm, MV_HANDLER_ALL,
						FX_ROM_GPA - PG, 2 * PG,
						handler, NULL), 0);
	assert_int_equal(mv_vm_balloon_set_target(B->vm, 9), 0);
}

static void bad_input_table(void **state)
{
	(void)state;
	bad_fixture();
	BADINPUT_RUN_ALL((void)0, assert_int_equal(pool_check(B->host), 0));
	assert_int_equal(BADINPUT_NCASES, 36);
	fx_teardown((void **)&B);
}

/* A reservation the budget refuses (no over-commitment) and the range
 * limit: refused before anything is allocated. */
static void refused_by_budget_and_limit(void **state)
{
	struct mv_host_config hc = { .budget_pages = 1024,
				     .overcommit = MV_OVERCOMMIT_NONE };
	struct mv_host_stats hs0, hs1;
	struct mv_vm_stats st0, st1;
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 1ull << 40,
				 .size = 1ull << 40 };
	uint64_t gen;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	vm = fx_ram_vm(host, 256, 4, 16);
	assert_non_null(vm);
	assert_int_equal(mv_host_get_stats(host, &hs0), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st0), 0);
	gen = mv_vm_layout_gen(vm);
	/* 1 TiB of RAM: refused by the account before any descriptor */
	assert_int_equal(mv_vm_range_add(vm, &r), -MV_EBUDGET);
	r.size = (1024 - 256 - 16 + 1) * (uint64_t)PG;  /* one page too many */
	assert_int_equal(mv_vm_range_add(vm, &r), -MV_EBUDGET);
	r.type = MV_PAGE_ROM;
	assert_int_equal(mv_vm_range_add(vm, &r), -MV_EBUDGET);
	assert_int_equal(mv_host_get_stats(host, &hs1), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st1), 0);
	assert_memory_equal(&hs0, &hs1, sizeof(hs0));
	assert_memory_equal(&st0, &st1, sizeof(st0));
	assert_int_equal(mv_vm_layout_gen(vm), gen);
	/* exactly what is left fits */
	r.type = MV_PAGE_RAM;
	r.size -= PG;
	assert_int_equal(mv_vm_range_add(vm, &r), 0);
	assert_int_equal(mv_vm_range_remove(vm, r.gpa), 0);
	/* MMIO costs no reservation; the range limit holds */
	r.type = MV_PAGE_MMIO;
	r.size = PG;
	for (uint32_t i = 1; i < MV_VM_MAX_RANGES; i++) {
		r.gpa = (1ull << 40) + i * 2 * (uint64_t)PG;
		assert_int_equal(mv_vm_range_add(vm, &r), 0);
	}
	gen = mv_vm_layout_gen(vm);
	r.gpa = 1ull << 41;
	assert_int_equal(mv_vm_range_add(vm, &r), -MV_ELIMIT);
	assert_int_equal(mv_vm_layout_gen(vm), gen);
	assert_int_equal(mv_vm_range_remove(vm, (1ull << 40) + 2 * PG), 0);
	assert_int_equal(mv_vm_range_add(vm, &r), 0);
	mv_vm_destroy(vm);
	assert_int_equal(mv_host_get_stats(host, &hs1), 0);
	assert_int_equal(hs1.reserved_pages, 0);
	assert_int_equal(hs1.private_pages, 0);
	mv_host_destroy(host);
}

/* ---- data, generation, accounts ------------------------------------------ */

static void write_page(struct mv_vm *vm, uint64_t gpa, uint32_t seed)
{
	uint8_t page[PG];

	fx_fill(page, PG, seed);
	assert_int_equal(mv_vm_phys_write(vm, gpa, page, PG), 0);
}

static void check_page(struct mv_vm *vm, uint64_t gpa, uint32_t seed)
{
	uint8_t page[PG], want[PG];

	if (seed)
		fx_fill(want, PG, seed);
	else
		memset(want, 0, PG);
	assert_int_equal(mv_vm_phys_read(vm, gpa, page, PG), 0);
	assert_memory_equal(page, want, PG);
}

/* Bytes in the other ranges survive adding and removing ranges around
 * them, and a range added where one was removed reads zeros. */
static void data_survives(void **state)
{
	struct fx_ctx *c = *state;
	struct mv_vm_range extra = { .type = MV_PAGE_RAM, .gpa = EXTRA_GPA,
				     .size = 64 * PG, .name = "extra" };
	uint8_t rom[PG];

	for (uint32_t i = 0; i < 64; i++) {
		write_page(c->vm, LOW(i * 4), 100 + i);
		write_page(c->vm, FX_HIGH_GPA + i * 4 * PG, 200 + i);
	}
	/* ranges below, between and above, each added then written */
	assert_int_equal(mv_vm_range_add(c->vm, &extra), 0);
	extra.gpa = FX_HOLE_GPA;
	extra.size = FX_MMIO_GPA - FX_HOLE_GPA;   /* abuts ROM and MMIO */
	assert_int_equal(mv_vm_range_add(c->vm, &extra), 0);
	for (uint32_t i = 0; i < 16; i++) {
		write_page(c->vm, EXTRA_GPA + i * PG, 300 + i);
		write_page(c->vm, FX_HOLE_GPA + i * PG, 400 + i);
	}
	/* a span across low RAM, the ROM and the new range now reads */
	assert_int_equal(mv_vm_phys_read(c->vm, FX_ROM_GPA, rom, PG), 0);
	assert_int_equal(rom[5], rom_byte(5));
	assert_int_equal(mv_vm_range_remove(c->vm, FX_HIGH_GPA), 0);
	for (uint32_t i = 0; i < 64; i++)
		check_page(c->vm, LOW(i * 4), 100 + i);
	for (uint32_t i = 0; i < 16; i++) {
		check_page(c->vm, EXTRA_GPA + i * PG, 300 + i);
		check_page(c->vm, FX_HOLE_GPA + i * PG, 400 + i);
	}
	assert_int_equal(mv_vm_phys_read(c->vm, FX_HIGH_GPA, rom, 1),
			 -MV_ERANGE);
	assert_null(mv_vm_page(c->vm, GFN(FX_HIGH_GPA)));
	/* back where it was: zeros, not the old bytes */
	extra.gpa = FX_HIGH_GPA;
	extra.size = FX_HIGH_SIZE;
	assert_int_equal(mv_vm_range_add(c->vm, &extra), 0);
	for (uint32_t i = 0; i < 64; i++)
		check_page(c->vm, FX_HIGH_GPA + i * 4 * PG, 0);
	assert_int_equal(mv_vm_range_remove(c->vm, FX_HOLE_GPA), 0);
	assert_int_equal(mv_vm_range_remove(c->vm, EXTRA_GPA), 0);
	for (uint32_t i = 0; i < 64; i++)
		check_page(c->vm, LOW(i * 4), 100 + i);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_ROM_GPA, rom, PG), 0);
	assert_int_equal(rom[5], rom_byte(5));
}

/* Every change counts once; refused calls and no-op toggles do not. */
static void generation_bumps(void **state)
{
	struct fx_ctx *c = *state;
	struct mv_vm_range mmio = { .type = MV_PAGE_MMIO, .gpa = EXTRA_GPA,
				    .size = 4 * PG };
	struct {
		const char *what;
		int rc;
		uint64_t delta;
	} steps[16];
	unsigned n = 0;
	uint64_t gen;

#define STEP(call, d)                                                     \
	do {                                                              \
		gen = mv_vm_layout_gen(c->vm);                            \
		steps[n].rc = (call);                                     \
		steps[n].what = #call;                                    \
		steps[n++].delta = mv_vm_layout_gen(c->vm) - gen - (d);   \
	} while (0)

	assert_int_equal(mv_vm_layout_gen(NULL), 0);
	assert_int_equal(mv_vm_layout_gen(c->vm), 0);
	STEP(mv_vm_range_add(c->vm, &mmio), 1);
	STEP(mv_vm_range_add(c->vm, &mmio), 0);                 /* EEXIST */
	STEP(mv_vm_handler_register(c->vm, MV_HANDLER_ALL, LOW(3), 2 * PG,
				    handler, NULL), 1);
	STEP(mv_vm_handler_register(c->vm, MV_HANDLER_ALL, LOW(4), PG,
				    handler, NULL), 0);         /* EEXIST */
	STEP(mv_vm_handler_page_disable(c->vm, LOW(4)), 1);
	STEP(mv_vm_handler_page_disable(c->vm, LOW(4)), 0);     /* no-op */
	STEP(mv_vm_handler_page_enable(c->vm, LOW(4)), 1);
	STEP(mv_vm_handler_page_enable(c->vm, LOW(4)), 0);      /* no-op */
	STEP(mv_vm_range_remove(c->vm, FX_LOW_GPA), 0);         /* EBUSY */
	STEP(mv_vm_handler_deregister(c->vm, LOW(3)), 1);
	STEP(mv_vm_handler_deregister(c->vm, LOW(3)), 0);       /* ENOENT */
	STEP(mv_vm_range_remove(c->vm, EXTRA_GPA), 1);
	STEP(mv_vm_range_remove(c->vm, EXTRA_GPA), 0);          /* ENOENT */
	STEP(mv_vm_reset(c->vm), 0);                      /* not a layout */
	for (unsigned i = 0; i < n; i++)
		if (steps[i].delta)
			fail_msg("%s: generation off by %lld", steps[i].what,
				 (long long)steps[i].delta);
	assert_int_equal(mv_vm_layout_gen(c->vm), 6);
}

/* Pages of every state in an added range, and a ROM range: removing them
 * brings the pool and the account back to where they were before. */
static void accounts_return(void **state)
{
	struct fx_ctx *c = *state;
	struct mv_vm *other = fx_ram_vm(c->host, 16, 0, 0);
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = EXTRA_GPA,
				 .size = 32 * PG };
	struct mv_vm_range rom = { .type = MV_PAGE_ROM, .gpa = 2 * EXTRA_GPA,
				   .size = 3 * PG, .rom_data = rom_bytes,
				   .rom_size = 100 };
	struct mv_host_stats h0, h1;
	struct mv_host_vm_stats a0, a1;
	struct mv_vm_stats v0, v1;
	uint64_t g[2] = { GFN(EXTRA_GPA) + 5, GFN(EXTRA_GPA) + 6 }, armed;
	uint8_t b[PG];

	assert_non_null(other);
	write_page(c->vm, LOW(0), 1);
	write_page(other, 0, 7);
	assert_int_equal(mv_host_get_stats(c->host, &h0), 0);
	assert_int_equal(mv_host_vm_get_stats(c->host, mv_vm_id(c->vm), &a0), 0);
	assert_int_equal(mv_vm_get_stats(c->vm, &v0), 0);

	assert_int_equal(mv_vm_range_add(c->vm, &r), 0);
	assert_int_equal(mv_vm_range_add(c->vm, &rom), 0);
	for (uint32_t i = 0; i < 12; i++)
		write_page(c->vm, EXTRA_GPA + i * PG, i < 3 ? 7 : 50 + i);
	/* shared with the other VM (pages 0, 1), within the range (2, 3),
	 * ballooned (5 private, 6 zero), monitored (7), zero (8) */
	assert_int_equal(mv_vm_share_pages(c->vm, GFN(EXTRA_GPA), other, 0), 0);
	assert_int_equal(mv_vm_share_pages(c->vm, GFN(EXTRA_GPA) + 1, other,
					   0), 0);
	write_page(c->vm, EXTRA_GPA + 3 * PG, 7);
	assert_int_equal(mv_vm_share_pages(c->vm, GFN(EXTRA_GPA) + 2, c->vm,
					   GFN(EXTRA_GPA) + 3), 0);
	g[1] = GFN(EXTRA_GPA) + 20;
	assert_int_equal(mv_vm_balloon_inflate(c->vm, g, 2), 0);
	assert_int_equal(mv_vm_write_monitor(c->vm, GFN(EXTRA_GPA) + 7, 1,
					     &armed), 0);
	assert_int_equal(armed, 1);
	memset(b, 0, PG);
	assert_int_equal(mv_vm_phys_read(c->vm, EXTRA_GPA + 8 * PG, b, PG), 0);
	assert_int_equal(mv_vm_balloon_set_target(c->vm, v0.ram_pages + 30), 0);
	assert_int_equal(pool_check(c->host), 0);

	assert_int_equal(mv_vm_range_remove(c->vm, rom.gpa), 0);
	assert_int_equal(mv_vm_range_remove(c->vm, r.gpa), 0);
	assert_int_equal(pool_check(c->host), 0);
	assert_int_equal(mv_host_vm_get_stats(c->host, mv_vm_id(c->vm), &a1), 0);
	assert_int_equal(mv_vm_get_stats(c->vm, &v1), 0);
	assert_int_equal(mv_host_get_stats(c->host, &h1), 0);
	assert_memory_equal(&a0.reserved, &a1.reserved, sizeof(a0.reserved));
	assert_int_equal(a1.allocated[MV_ACCOUNT_FIXED],
			 a0.allocated[MV_ACCOUNT_FIXED]);
	assert_int_equal(a1.ballooned, a0.ballooned);
	assert_int_equal(a1.shared_refs, 0);
	/* the handy cache may hold pages the range used: private pages of
	 * the pool are the VM's RAM plus its cache, as before */
	assert_int_equal(a1.allocated[MV_ACCOUNT_BASE] - v1.handy,
			 a0.allocated[MV_ACCOUNT_BASE] - v0.handy);
	assert_int_equal(h1.shared_pages, 1);     /* the other VM's own */
	assert_int_equal(h1.shared_refs, 1);
	assert_int_equal(h1.ballooned_pages, h0.ballooned_pages);
	assert_int_equal(h1.reserved_pages, h0.reserved_pages);
	assert_memory_equal(v1.pages, v0.pages, sizeof(v0.pages));
	assert_int_equal(v1.ram_pages, v0.ram_pages);
	assert_int_equal(v1.rom_pages, v0.rom_pages);
	assert_int_equal(mv_vm_balloon_get_target(c->vm), v0.ram_pages);
	check_page(other, 0, 7);
	check_page(c->vm, LOW(0), 1);
	mv_vm_destroy(other);
	mv_vm_destroy(c->vm);
	c->vm = NULL;
	assert_int_equal(mv_host_get_stats(c->host, &h1), 0);
	assert_int_equal(h1.private_pages + h1.shared_pages + h1.shared_refs +
			 h1.ballooned_pages + h1.reserved_pages + h1.vms, 0);
}

/* The hook hears REMOVED for exactly the range, while its pages are still
 * the VM's; a layout change from inside the hook is refused. */
struct removed_watch {
	struct mv_host *host;
	mv_page_id id;
	unsigned seen, alive, busy;
	uint64_t gfn, count;
};

static void on_removed(void *opaque, struct mv_vm *vm, uint64_t gfn,
		       uint64_t count, enum mv_notify_reason why)
{
	struct removed_watch *w = opaque;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 1ull << 44,
				 .size = PG };

	if (why != MV_NOTIFY_REMOVED)
		return;
	w->seen++;
	w->gfn = gfn;
	w->count = count;
	w->alive += mv_host_page_ptr(w->host, w->id) != NULL &&
		    mv_vm_page(vm, gfn) != NULL;
	w->busy += mv_vm_range_add(vm, &r) == -MV_EBUSY;
	w->busy += mv_vm_range_remove(vm, FX_LOW_GPA) == -MV_EBUSY;
}

static void notify_before_free(void **state)
{
	struct fx_ctx *c = *state;
	struct removed_watch w = { .host = c->host };

	write_page(c->vm, FX_HIGH_GPA + 9 * PG, 3);
	w.id = mv_page_host_id(mv_vm_page(c->vm, GFN(FX_HIGH_GPA) + 9));
	mv_vm_set_notify(c->vm, on_removed, &w);
	assert_int_equal(mv_vm_range_remove(c->vm, FX_HIGH_GPA), 0);
	assert_int_equal(w.seen, 1);
	assert_int_equal(w.gfn, GFN(FX_HIGH_GPA));
	assert_int_equal(w.count, FX_HIGH_SIZE / PG);
	assert_int_equal(w.alive, 1);
	assert_int_equal(w.busy, 2);
	assert_null(mv_vm_page(c->vm, 1ull << 32));
	mv_vm_set_notify(c->vm, NULL, NULL);
}

/* An MMIO callback moving "its BAR" in the middle of an access: the range
 * array moves under the access, which must look pieces up again, and a
 * range removed before the access reached it ends the access cleanly. */
struct bar {
	struct mv_vm *vm;
	int mode;          /* 1: add ranges, 2: remove the range after */
	uint64_t base;     /* where mode 1 adds its ranges */
	int rc;
};

static int bar_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	struct bar *b = opaque;
	struct mv_vm_range r = { .type = MV_PAGE_MMIO, .size = PG };

	(void)off, (void)buf, (void)len;
	if (b->mode == 1) {
		for (int i = 0; i < 64 && !b->rc; i++) {
			r.gpa = b->base + (uint64_t)i * 2 * PG;
			b->rc = mv_vm_range_add(b->vm, &r);
		}
	} else if (b->mode == 2) {
		b->rc = mv_vm_range_remove(b->vm, EXTRA_GPA + PG);
	}
	return 0;
}

/* A write handler that adds ranges, then lets the write through. */
static int growing_handler(void *opaque, struct mv_vm *vm, uint64_t gpa,
			   void *buf, size_t len, enum mv_access access)
{
	struct bar *b = opaque;

	(void)vm, (void)gpa, (void)len, (void)access;
	b->mode = 1;
	bar_write(b, 0, buf, len);
	b->mode = 0;
	return MV_HANDLER_DEFAULT;
}

static void callback_changes_layout(void **state)
{
	struct fx_ctx *c = *state;
	struct bar bar = { .vm = c->vm, .base = EXTRA_GPA + 8 * PG };
	struct mv_vm_range dev = { .type = MV_PAGE_MMIO, .gpa = EXTRA_GPA,
				   .size = PG, .write = bar_write,
				   .opaque = &bar };
	struct mv_vm_range ram = { .type = MV_PAGE_RAM, .gpa = EXTRA_GPA + PG,
				   .size = 2 * PG };
	uint8_t buf[3 * PG];

	assert_int_equal(mv_vm_range_add(c->vm, &dev), 0);
	assert_int_equal(mv_vm_range_add(c->vm, &ram), 0);
	uint8_t back[2 * PG];

	fx_fill(buf, sizeof(buf), 9);
	bar.mode = 1;   /* the array grows (moves) during the write */
	assert_int_equal(mv_vm_phys_write(c->vm, EXTRA_GPA, buf, sizeof(buf)),
			 0);
	assert_int_equal(bar.rc, 0);
	assert_int_equal(mv_vm_phys_read(c->vm, EXTRA_GPA + PG, back,
					 sizeof(back)), 0);
	assert_memory_equal(back, buf + PG, sizeof(back));
	/* the RAM after the device goes while the write is in the device */
	bar.mode = 2;
	assert_int_equal(mv_vm_phys_write(c->vm, EXTRA_GPA, buf, sizeof(buf)),
			 -MV_ERANGE);
	assert_int_equal(bar.rc, 0);
	assert_null(mv_vm_page(c->vm, GFN(EXTRA_GPA) + 1));
	/* a handler on RAM moves the array before its write goes through */
	ram.gpa = 1ull << 40;
	assert_int_equal(mv_vm_range_add(c->vm, &ram), 0);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_WRITE,
						ram.gpa, PG, growing_handler,
						&bar), 0);
	bar.mode = 0;
	bar.base = 1ull << 41;
	assert_int_equal(mv_vm_phys_write(c->vm, ram.gpa + 8, buf, 64), 0);
	assert_int_equal(bar.rc, 0);
	assert_int_equal(mv_vm_phys_read(c->vm, ram.gpa + 8, back, 64), 0);
	assert_memory_equal(back, buf, 64);
	assert_int_equal(pool_check(c->host), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_input_table),
		cmocka_unit_test(refused_by_budget_and_limit),
		cmocka_unit_test_setup_teardown(data_survives, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(generation_bumps, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(accounts_return, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(notify_before_free, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(callback_changes_layout,
						fx_setup, fx_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
