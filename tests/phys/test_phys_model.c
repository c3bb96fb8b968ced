/* Random operation sequences checked against a plain byte-array model of
 * guest memory: reads, writes (across pages, ranges and into holes),
 * direct-pointer writes, sharing, balloon inflate/deflate, write
 * monitoring, population, moving, reset, and a RAM range added and
 * removed in the hole between the ROM and the MMIO range (abutting both),
 * with the layout generation counted. After every step the return code
 * matches the model's; at checkpoints all of memory and the accounting
 * invariants are compared. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "phys/fixture.h"

#define DEAD_GPA (FX_MMIO_GPA + (64ull << 20))
/* The range that comes and goes: the whole hole after the ROM. */
#define EXTRA_GPA FX_HOLE_GPA
#define EXTRA_SIZE (FX_MMIO_GPA - FX_HOLE_GPA)

/* Stands for the bytes of the MMIO range without callbacks. */
static uint8_t dead_byte;

/* Pages a handler may claim: low RAM and the ROM after it, high RAM. */
#define CLAIM_PAGES (FX_RAM_PAGES + FX_ROM_SIZE / MV_PAGE_SIZE)

enum { FREE, ACTIVE, DISABLED };

struct model {
	uint8_t low[FX_LOW_SIZE], high[FX_HIGH_SIZE];
	uint8_t rom[FX_ROM_SIZE], mmio[FX_MMIO_SIZE];
	uint8_t ballooned[FX_RAM_PAGES];
	uint8_t claim[CLAIM_PAGES];          /* FREE / ACTIVE / DISABLED */
	uint64_t claim_first[CLAIM_PAGES];   /* first gfn of its handler */
	uint64_t handler_calls;              /* expected */
	int extra_present;
	uint8_t extra[EXTRA_SIZE];
	uint64_t layout_gen;                 /* expected */
};

struct ctx {
	struct mv_host *host;
	struct mv_vm *vm;
	struct fx_device dev;
	struct model m;
	uint64_t rng;
	uint64_t handler_calls;              /* seen */
};

static uint64_t rnd(struct ctx *c)
{
	c->rng ^= c->rng << 13;
	c->rng ^= c->rng >> 7;
	c->rng ^= c->rng << 17;
	return c->rng;
}

/* Model byte for @gpa: its storage and kind, or NULL in a hole. */
static uint8_t *model_byte(struct model *m, uint64_t gpa, enum mv_page_type *t)
{
	*t = MV_PAGE_RAM;
	if (gpa < FX_LOW_SIZE)
		return &m->low[gpa];
	if (gpa - FX_HIGH_GPA < FX_HIGH_SIZE)
		return &m->high[gpa - FX_HIGH_GPA];
	if (m->extra_present && gpa - EXTRA_GPA < EXTRA_SIZE)
		return &m->extra[gpa - EXTRA_GPA];
	*t = MV_PAGE_ROM;
	if (gpa - FX_ROM_GPA < FX_ROM_SIZE)
		return &m->rom[gpa - FX_ROM_GPA];
	*t = MV_PAGE_MMIO;
	if (gpa - FX_MMIO_GPA < FX_MMIO_SIZE)
		return &m->mmio[gpa - FX_MMIO_GPA];
	if (gpa - DEAD_GPA < FX_MMIO_SIZE)
		return &dead_byte;  /* present, no storage */
	return NULL;
}

static int64_t ram_index(uint64_t gfn)
{
	if (gfn < FX_LOW_SIZE >> 12)
		return (int64_t)gfn;
	if (gfn - (FX_HIGH_GPA >> 12) < FX_HIGH_SIZE >> 12)
		return (int64_t)(gfn - (FX_HIGH_GPA >> 12) + (FX_LOW_SIZE >> 12));
	return -1;
}

static int64_t claim_index(uint64_t gfn)
{
	if (gfn < (FX_ROM_GPA + FX_ROM_SIZE) >> 12)
		return (int64_t)gfn;
	if (gfn - (FX_HIGH_GPA >> 12) < FX_HIGH_SIZE >> 12)
		return (int64_t)(gfn - (FX_HIGH_GPA >> 12)) +
		       ((FX_ROM_GPA + FX_ROM_SIZE) >> 12);
	return -1;
}

static int claimed_active(const struct model *m, uint64_t gfn)
{
	int64_t i = claim_index(gfn);

	return i >= 0 && m->claim[i] == ACTIVE;
}

/* A phys write of [gpa, gpa + len) calls the handler once per piece on an
 * active page. */
static void count_handled(struct model *m, uint64_t gpa, size_t len)
{
	for (uint64_t g = gpa >> 12; g <= (gpa + len - 1) >> 12; g++)
		m->handler_calls += (uint64_t)claimed_active(m, g);
}

static int model_span_ok(struct model *m, uint64_t gpa, size_t len)
{
	enum mv_page_type t;

	for (size_t i = 0; i < len; i++)
		if (!model_byte(m, gpa + i, &t))
			return 0;
	return 1;
}

static void model_write(struct model *m, uint64_t gpa, const uint8_t *buf,
			size_t len)
{
	enum mv_page_type t;

	for (size_t i = 0; i < len; i++) {
		uint8_t *b = model_byte(m, gpa + i, &t);
		int64_t r = ram_index((gpa + i) >> 12);

		if (t == MV_PAGE_ROM || b == &dead_byte)
			continue;
		*b = buf[i];
		if (r >= 0)
			m->ballooned[r] = 0;  /* deflate-on-write policy */
	}
}

static void model_read(struct model *m, uint64_t gpa, uint8_t *buf,
		       size_t len)
{
	enum mv_page_type t;

	for (size_t i = 0; i < len; i++) {
		uint8_t *b = model_byte(m, gpa + i, &t);

		buf[i] = b == &dead_byte ? 0xff : *b;
	}
}

/* An address near an interesting place: range edges, page edges, holes. */
static uint64_t pick_gpa(struct ctx *c)
{
	static const uint64_t bases[] = { FX_LOW_GPA, FX_ROM_GPA, FX_HOLE_GPA,
					  FX_MMIO_GPA, DEAD_GPA, FX_HIGH_GPA,
					  FX_HIGH_GPA + FX_HIGH_SIZE,
					  FX_LOW_SIZE / 2 };
	uint64_t base = bases[rnd(c) % 8];
	int64_t off = (int64_t)(rnd(c) % (96 << 10)) - (16 << 10);

	if ((int64_t)base + off < 0)
		return base;
	return (uint64_t)((int64_t)base + off);
}

static uint64_t pick_ram_gfn(struct ctx *c)
{
	uint64_t i = rnd(c) % FX_RAM_PAGES;

	return i < FX_LOW_SIZE >> 12 ? i : (FX_HIGH_GPA >> 12) + i -
					   (FX_LOW_SIZE >> 12);
}

static void op_write(struct ctx *c, int direct)
{
	uint8_t buf[3 * 4096];
	uint64_t gpa = pick_gpa(c);
	size_t len = rnd(c) % 4 ? rnd(c) % 64 + 1 : rnd(c) % sizeof(buf) + 1;
	int ok;
	void *ptr;
	int rc;

	if (direct)
		len = 1;
	ok = model_span_ok(&c->m, gpa, len);
	fx_fill(buf, len, (uint32_t)rnd(c));
	if (direct) {
		enum mv_page_type t = MV_PAGE_RAM;
		int slow = ok && (!model_byte(&c->m, gpa, &t) ||
				  t != MV_PAGE_RAM ||
				  claimed_active(&c->m, gpa >> 12));

		rc = mv_vm_gpa_to_hva(c->vm, gpa, 1, &ptr);
		assert_int_equal(rc, slow ? MV_VM_SLOW_PATH
					  : ok ? 0 : -MV_ERANGE);
		if (slow)
			return;
		if (!rc)
			*(uint8_t *)ptr = buf[0];
	} else {
		rc = mv_vm_phys_write(c->vm, gpa, buf, len);
		assert_int_equal(rc, ok ? 0 : -MV_ERANGE);
		if (ok)
			count_handled(&c->m, gpa, len);
	}
	if (ok)
		model_write(&c->m, gpa, buf, len);
}

static void op_read(struct ctx *c)
{
	uint8_t buf[3 * 4096], want[3 * 4096];
	uint64_t gpa = pick_gpa(c);
	size_t len = rnd(c) % sizeof(buf) + 1;
	int ok = model_span_ok(&c->m, gpa, len);

	assert_int_equal(mv_vm_phys_read(c->vm, gpa, buf, len),
			 ok ? 0 : -MV_ERANGE);
	if (!ok)
		return;
	model_read(&c->m, gpa, want, len);
	assert_memory_equal(buf, want, len);
}

/* Copy page a into page b, then share them. */
static void op_share(struct ctx *c)
{
	uint64_t a = pick_ram_gfn(c), b = pick_ram_gfn(c);
	uint8_t page[4096];

	if (a == b || c->m.ballooned[ram_index(a)] ||
	    c->m.ballooned[ram_index(b)])
		return;
	assert_int_equal(mv_vm_phys_read(c->vm, a << 12, page, 4096), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, b << 12, page, 4096), 0);
	count_handled(&c->m, b << 12, 4096);
	model_write(&c->m, b << 12, page, 4096);
	assert_int_equal(mv_vm_share_pages(c->vm, a, c->vm, b), 0);
}

static void op_balloon(struct ctx *c)
{
	uint64_t g[4];
	uint32_t n = (uint32_t)(rnd(c) % 4) + 1;
	int any_in = 0, all_in = 1, dup = 0;

	for (uint32_t i = 0; i < n; i++) {
		g[i] = pick_ram_gfn(c);
		for (uint32_t j = 0; j < i; j++)
			dup |= g[j] == g[i];
		any_in |= c->m.ballooned[ram_index(g[i])];
		all_in &= c->m.ballooned[ram_index(g[i])];
	}
	if (rnd(c) % 2) {
		int rc = mv_vm_balloon_inflate(c->vm, g, n);

		assert_int_equal(rc, any_in ? -MV_ESTATE : dup ? -MV_EINVAL : 0);
		for (uint32_t i = 0; i < n && !rc; i++) {
			c->m.ballooned[ram_index(g[i])] = 1;
			model_write(&c->m, g[i] << 12,
				    (const uint8_t[4096]){ 0 }, 4096);
			c->m.ballooned[ram_index(g[i])] = 1;
		}
	} else {
		int rc = mv_vm_balloon_deflate(c->vm, g, n);

		assert_int_equal(rc, !all_in ? -MV_ESTATE : dup ? -MV_EINVAL : 0);
		for (uint32_t i = 0; i < n && !rc; i++)
			c->m.ballooned[ram_index(g[i])] = 0;
	}
}

static void op_populate(struct ctx *c)
{
	static uint8_t data[4 * 4096];
	uint64_t g = pick_ram_gfn(c);
	uint32_t n = (uint32_t)(rnd(c) % 4) + 1;
	int ok = 1;

	for (uint32_t i = 0; i < n; i++)
		ok &= ram_index(g + i) >= 0;
	fx_fill(data, sizeof(data), (uint32_t)rnd(c));
	assert_int_equal(mv_vm_phys_populate(c->vm, g, n, data),
			 ok ? 0 : (model_span_ok(&c->m, g << 12, n * 4096)
					   ? -MV_ESTATE : -MV_ERANGE));
	if (ok)
		model_write(&c->m, g << 12, data, n * 4096);
}

static int count_write(void *opaque, struct mv_vm *vm, uint64_t gpa,
		       void *buf, size_t len, enum mv_access acc)
{
	struct ctx *c = opaque;

	(void)vm;
	(void)gpa;
	(void)buf;
	(void)len;
	if (acc == MV_ACCESS_WRITE)
		c->handler_calls++;
	return MV_HANDLER_DEFAULT;
}

static int model_register(struct model *m, uint64_t g, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (claim_index(g + i) < 0)
			return -MV_ERANGE;
	for (uint32_t i = 0; i < n; i++)
		if (m->claim[claim_index(g + i)] != FREE)
			return -MV_EEXIST;
	for (uint32_t i = 0; i < n; i++) {
		m->claim[claim_index(g + i)] = ACTIVE;
		m->claim_first[claim_index(g + i)] = g;
	}
	return 0;
}

static void model_deregister(struct model *m, uint64_t first)
{
	for (uint64_t i = 0; i < CLAIM_PAGES; i++)
		if (m->claim[i] != FREE && m->claim_first[i] == first)
			m->claim[i] = FREE;
}

/* Register, deregister, disable or enable a WRITE handler that lets every
 * write through (MV_HANDLER_DEFAULT) and counts it. */
static void op_handler(struct ctx *c)
{
	uint64_t g = pick_ram_gfn(c);
	int64_t i = claim_index(g);
	uint32_t n = (uint32_t)(rnd(c) % 4) + 1;
	int held = c->m.claim[i] != FREE, rc;

	switch (rnd(c) % 4) {
	case 0:
	case 1:
		rc = mv_vm_handler_register(c->vm, MV_HANDLER_WRITE, g << 12,
					    (uint64_t)n << 12, count_write, c);
		assert_int_equal(rc, model_register(&c->m, g, n));
		c->m.layout_gen += !rc;
		break;
	case 2:
		rc = mv_vm_handler_deregister(c->vm, g << 12);
		assert_int_equal(rc, held ? 0 : -MV_ENOENT);
		if (held)
			model_deregister(&c->m, c->m.claim_first[i]);
		c->m.layout_gen += held;
		break;
	default:
		if (c->m.claim[i] == DISABLED)
			rc = mv_vm_handler_page_enable(c->vm, g << 12);
		else
			rc = mv_vm_handler_page_disable(c->vm, g << 12);
		assert_int_equal(rc, held ? 0 : -MV_ENOENT);
		if (held)
			c->m.claim[i] = c->m.claim[i] == DISABLED ? ACTIVE
								  : DISABLED;
		c->m.layout_gen += held;
		break;
	}
}

static void op_misc(struct ctx *c)
{
	uint64_t g = pick_ram_gfn(c);

	switch (rnd(c) % 8) {
	case 0:
		assert_int_equal(mv_vm_reset(c->vm), 0);
		memset(c->m.low, 0, sizeof(c->m.low));
		memset(c->m.high, 0, sizeof(c->m.high));
		memset(c->m.ballooned, 0, sizeof(c->m.ballooned));
		memset(c->m.extra, 0, sizeof(c->m.extra));
		break;
	case 1:
	case 2:
		mv_host_move_page(c->host, mv_page_host_id(mv_vm_page(c->vm, g)),
				  NULL);
		break;
	default:
		assert_int_equal(mv_vm_write_monitor(c->vm, g, 1, NULL), 0);
		break;
	}
}

/* Add the extra range when it is absent, remove it when present; now and
 * then a refused variant (overlap, a gpa inside it) that changes nothing. */
static void op_layout(struct ctx *c)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = EXTRA_GPA,
				 .size = EXTRA_SIZE, .name = "extra" };
	int rc;

	if (rnd(c) % 4 == 0) {
		r.gpa -= MV_PAGE_SIZE;   /* into the ROM */
		assert_int_equal(mv_vm_range_add(c->vm, &r), -MV_EEXIST);
		assert_int_equal(mv_vm_range_remove(c->vm,
						    EXTRA_GPA + MV_PAGE_SIZE),
				 -MV_ENOENT);
		return;
	}
	if (c->m.extra_present) {
		rc = mv_vm_range_remove(c->vm, EXTRA_GPA);
	} else {
		rc = mv_vm_range_add(c->vm, &r);
		memset(c->m.extra, 0, sizeof(c->m.extra));
	}
	assert_int_equal(rc, 0);
	c->m.extra_present = !c->m.extra_present;
	c->m.layout_gen++;
}

static void check_everything(struct ctx *c)
{
	static uint8_t buf[FX_LOW_SIZE];
	struct mv_host_vm_stats hs;
	struct mv_vm_stats st;
	uint64_t states = 0;

	assert_int_equal(mv_vm_phys_read(c->vm, 0, buf, FX_LOW_SIZE), 0);
	assert_memory_equal(buf, c->m.low, FX_LOW_SIZE);
	assert_int_equal(mv_vm_phys_read(c->vm, FX_HIGH_GPA, buf, FX_HIGH_SIZE), 0);
	assert_memory_equal(buf, c->m.high, FX_HIGH_SIZE);
	assert_memory_equal(c->dev.regs, c->m.mmio, FX_MMIO_SIZE);
	assert_int_equal(mv_vm_phys_read(c->vm, EXTRA_GPA, buf, EXTRA_SIZE),
			 c->m.extra_present ? 0 : -MV_ERANGE);
	if (c->m.extra_present)
		assert_memory_equal(buf, c->m.extra, EXTRA_SIZE);
	assert_int_equal(mv_vm_layout_gen(c->vm), c->m.layout_gen);
	assert_int_equal(mv_vm_get_stats(c->vm, &st), 0);
	assert_int_equal(mv_host_vm_get_stats(c->host, mv_vm_id(c->vm), &hs), 0);
	for (int s = 0; s < MV_PAGE_STATES; s++)
		states += st.pages[s];
	assert_int_equal(states, FX_RAM_PAGES + (c->m.extra_present ?
						 EXTRA_SIZE / MV_PAGE_SIZE : 0));
	assert_int_equal(hs.allocated[MV_ACCOUNT_BASE],
			 st.pages[MV_PAGE_ALLOCATED] +
			 st.pages[MV_PAGE_WRITE_MONITORED] + st.handy);
	assert_true(hs.ballooned <= st.pages[MV_PAGE_BALLOONED]);
	assert_int_equal(hs.shared_refs, st.pages[MV_PAGE_SHARED]);
	assert_int_equal(c->handler_calls, c->m.handler_calls);
	for (uint64_t i = 0; i < CLAIM_PAGES; i++) {
		static const enum mv_handler_state want[] = {
			[FREE] = MV_HSTATE_NONE, [ACTIVE] = MV_HSTATE_WRITE,
			[DISABLED] = MV_HSTATE_DISABLED };
		uint64_t low_end = (FX_ROM_GPA + FX_ROM_SIZE) >> 12;
		uint64_t g = i < low_end ? i : (FX_HIGH_GPA >> 12) + i - low_end;

		assert_int_equal(mv_page_hstate(mv_vm_page(c->vm, g)),
				 want[c->m.claim[i]]);
	}
}

static void run_seed(uint64_t seed, uint32_t map_max)
{
	static struct ctx c;
	const uint8_t *rom = fx_rom_image();

	memset(&c, 0, sizeof(c));
	c.rng = seed * 0x9E3779B97F4A7C15ull + 1;
	memcpy(c.m.rom, rom, FX_ROM_SIZE - 4096);
	assert_int_equal(mv_host_create(NULL, &c.host), 0);
	assert_int_equal(fx_create(c.host, &c.dev, MV_BALLOON_WRITE_DEFLATE,
				   map_max, &c.vm), 0);
	for (uint32_t step = 0; step < 3000; step++) {
		switch (rnd(&c) % 12) {
		case 0: case 1: case 2: op_write(&c, 0); break;
		case 3: op_write(&c, 1); break;
		case 4: case 5: op_read(&c); break;
		case 6: op_share(&c); break;
		case 7: op_balloon(&c); break;
		case 8: op_populate(&c); break;
		case 9: op_handler(&c); break;
		case 10: op_layout(&c); break;
		default: op_misc(&c); break;
		}
		if (step % 500 == 499)
			check_everything(&c);
	}
	mv_vm_destroy(c.vm);
	mv_host_destroy(c.host);
}

static void random_sequences(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 12; seed++)
		run_seed(seed, 0);
}

/* The same with a two-chunk mapping cache in front of the pool. */
static void random_sequences_mapcache(void **state)
{
	(void)state;
	for (uint64_t seed = 100; seed <= 104; seed++)
		run_seed(seed, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(random_sequences),
		cmocka_unit_test(random_sequences_mapcache),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
