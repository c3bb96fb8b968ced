/* Every page state x every access kind, for both balloon policies: the
 * state after the access, the bytes the access and later reads see, the
 * counters and the MMU notifications. The table is exhaustive. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "phys/fixture.h"

enum acc { READ, WRITE, HVA_READ, HVA_WRITE, ACCS };

static const char *const acc_names[ACCS] = { "read", "write", "hva-read",
					     "hva-write" };

struct row {
	enum mv_page_state from;
	enum acc acc;
	enum mv_balloon_policy policy;
	enum mv_page_state to;
	int rc;               /* expected return of the access */
	int content;          /* 1: pattern before the access, 0: zeros */
	int notify_backing;   /* MMU told the backing changed */
};

#define D MV_BALLOON_WRITE_DEFLATE
#define E MV_BALLOON_WRITE_ERROR
#define Z MV_PAGE_ZERO
#define A MV_PAGE_ALLOCATED
#define S MV_PAGE_SHARED
#define M MV_PAGE_WRITE_MONITORED
#define B MV_PAGE_BALLOONED

static const struct row table[] = {
	{ Z, READ, D, Z, 0, 0, 0 },      { Z, WRITE, D, A, 0, 0, 1 },
	{ Z, HVA_READ, D, Z, 0, 0, 0 },  { Z, HVA_WRITE, D, A, 0, 0, 1 },
	{ A, READ, D, A, 0, 1, 0 },      { A, WRITE, D, A, 0, 1, 0 },
	{ A, HVA_READ, D, A, 0, 1, 0 },  { A, HVA_WRITE, D, A, 0, 1, 0 },
	{ S, READ, D, S, 0, 1, 0 },      { S, WRITE, D, A, 0, 1, 1 },
	{ S, HVA_READ, D, S, 0, 1, 0 },  { S, HVA_WRITE, D, A, 0, 1, 1 },
	{ M, READ, D, M, 0, 1, 0 },      { M, WRITE, D, A, 0, 1, 0 },
	{ M, HVA_READ, D, M, 0, 1, 0 },  { M, HVA_WRITE, D, A, 0, 1, 0 },
	{ B, READ, D, B, 0, 0, 0 },      { B, WRITE, D, A, 0, 0, 1 },
	{ B, HVA_READ, D, B, 0, 0, 0 },  { B, HVA_WRITE, D, A, 0, 0, 1 },
	/* Under the error policy only writes to BALLOONED pages differ. */
	{ Z, WRITE, E, A, 0, 0, 1 },     { A, WRITE, E, A, 0, 1, 0 },
	{ S, WRITE, E, A, 0, 1, 1 },     { M, WRITE, E, A, 0, 1, 0 },
	{ B, READ, E, B, 0, 0, 0 },      { B, HVA_READ, E, B, 0, 0, 0 },
	{ B, WRITE, E, B, -MV_ESTATE, 0, 0 },
	{ B, HVA_WRITE, E, B, -MV_ESTATE, 0, 0 },
};

#define GPA (FX_HIGH_GPA + 5 * MV_PAGE_SIZE)
#define TWIN (FX_LOW_GPA + 9 * MV_PAGE_SIZE) /* shares with GPA */
#define OFF 100

struct ctx {
	struct mv_host *host;
	struct mv_vm *vm;
	struct fx_device dev;
	struct fx_notes notes;
	uint8_t pattern[MV_PAGE_SIZE];
};

static void bring_to(struct ctx *c, enum mv_page_state s)
{
	uint64_t gfn = GPA >> MV_PAGE_SHIFT;

	if (s == Z)
		return;
	assert_int_equal(mv_vm_phys_write(c->vm, GPA, c->pattern,
					  MV_PAGE_SIZE), 0);
	if (s == S) {
		assert_int_equal(mv_vm_phys_write(c->vm, TWIN, c->pattern,
						  MV_PAGE_SIZE), 0);
		assert_int_equal(mv_vm_share_pages(c->vm, gfn, c->vm,
						   TWIN >> MV_PAGE_SHIFT), 0);
	} else if (s == M) {
		assert_int_equal(mv_vm_write_monitor(c->vm, gfn, 1, NULL), 0);
	} else if (s == B) {
		assert_int_equal(mv_vm_balloon_inflate(c->vm, &gfn, 1), 0);
	}
	assert_int_equal(fx_state(c->vm, GPA), s);
}

static int do_access(struct ctx *c, enum acc a, uint8_t *seen, uint8_t val)
{
	void *ptr = NULL;
	int rc;

	switch (a) {
	case READ:
		return mv_vm_phys_read(c->vm, GPA, seen, MV_PAGE_SIZE);
	case WRITE:
		rc = mv_vm_phys_write(c->vm, GPA + OFF, &val, 1);
		break;
	case HVA_READ:
		rc = mv_vm_gpa_to_hva(c->vm, GPA, 0, &ptr);
		if (!rc)
			memcpy(seen, ptr, MV_PAGE_SIZE);
		return rc;
	default:
		rc = mv_vm_gpa_to_hva(c->vm, GPA + OFF, 1, &ptr);
		if (!rc)
			*(uint8_t *)ptr = val;
		break;
	}
	if (!rc)
		rc = mv_vm_phys_read(c->vm, GPA, seen, MV_PAGE_SIZE);
	return rc;
}

static void check_counters(const struct row *r, const struct mv_vm_stats *st)
{
	int wrote = (r->acc == WRITE || r->acc == HVA_WRITE) && !r->rc;

	assert_int_equal(st->first_touch, wrote && r->from == Z);
	assert_int_equal(st->cow_breaks, wrote && r->from == S);
	assert_int_equal(st->monitor_hits, wrote && r->from == M);
	assert_int_equal(st->balloon_deflates_on_write, wrote && r->from == B);
}

static void run_row(const struct row *r)
{
	struct ctx c = { 0 };
	uint8_t seen[MV_PAGE_SIZE], want[MV_PAGE_SIZE], twin[MV_PAGE_SIZE];
	struct mv_vm_stats before, after;
	int wrote = (r->acc == WRITE || r->acc == HVA_WRITE) && !r->rc;

	fx_fill(c.pattern, sizeof(c.pattern), 42);
	assert_int_equal(mv_host_create(NULL, &c.host), 0);
	assert_int_equal(fx_create(c.host, &c.dev, r->policy, 0, &c.vm), 0);
	bring_to(&c, r->from);
	mv_vm_set_notify(c.vm, fx_notify, &c.notes);
	assert_int_equal(mv_vm_get_stats(c.vm, &before), 0);

	assert_int_equal(do_access(&c, r->acc, seen, 0xA5), r->rc);
	assert_int_equal(fx_state(c.vm, GPA), r->to);
	if (r->content)
		memcpy(want, c.pattern, sizeof(want));
	else
		memset(want, 0, sizeof(want));
	if (wrote)
		want[OFF] = 0xA5;
	assert_int_equal(mv_vm_phys_read(c.vm, GPA, seen, sizeof(seen)), 0);
	assert_memory_equal(seen, want, sizeof(want));
	assert_int_equal(c.notes.count[MV_NOTIFY_BACKING], r->notify_backing);

	assert_int_equal(mv_vm_get_stats(c.vm, &after), 0);
	after.first_touch -= before.first_touch;
	after.cow_breaks -= before.cow_breaks;
	after.monitor_hits -= before.monitor_hits;
	after.balloon_deflates_on_write -= before.balloon_deflates_on_write;
	check_counters(r, &after);
	if (r->from == S) {  /* the twin keeps the old bytes, still shared */
		assert_int_equal(mv_vm_phys_read(c.vm, TWIN, twin, sizeof(twin)), 0);
		assert_memory_equal(twin, c.pattern, sizeof(twin));
		assert_int_equal(fx_state(c.vm, TWIN), S);
	}
	mv_vm_destroy(c.vm);
	mv_host_destroy(c.host);
}

static void state_access_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		print_message("%-16s %-9s %s\n",
			      mv_page_state_name(table[i].from),
			      acc_names[table[i].acc],
			      table[i].policy == D ? "deflate" : "error");
		run_row(&table[i]);
	}
}

/* Every (state, access, policy) combination appears in the table. */
static void table_is_exhaustive(void **state)
{
	unsigned seen[MV_PAGE_STATES][ACCS][2] = { { { 0 } } };

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		seen[table[i].from][table[i].acc][table[i].policy]++;
	for (int s = 0; s < MV_PAGE_STATES; s++)
		for (int a = 0; a < ACCS; a++) {
			assert_int_equal(seen[s][a][D], 1);
			/* The error policy only changes BALLOONED writes;
			 * the table lists those plus one write per state. */
			if (s == B || a == WRITE)
				assert_int_equal(seen[s][a][E], 1);
		}
}

/* ROM reads its image, ignores writes, and is slow path for hva writes;
 * MMIO is always slow path and never has a host page. */
static void rom_and_mmio_pages(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct fx_device dev = { 0 };
	uint8_t buf[64], junk[64];
	void *ptr;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(fx_create(host, &dev, D, 0, &vm), 0);
	memset(junk, 0xEE, sizeof(junk));
	assert_int_equal(mv_vm_phys_write(vm, FX_ROM_GPA + 8, junk, 64), 0);
	assert_int_equal(mv_vm_phys_read(vm, FX_ROM_GPA + 8, buf, 64), 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(buf[i], rom_byte(8 + (uint64_t)i));
	assert_int_equal(mv_vm_gpa_to_hva(vm, FX_ROM_GPA, 0, &ptr), 0);
	assert_int_equal(*(uint8_t *)ptr, rom_byte(0));
	assert_int_equal(mv_vm_gpa_to_hva(vm, FX_ROM_GPA, 1, &ptr),
			 MV_VM_SLOW_PATH);
	assert_int_equal(mv_page_type(mv_vm_page(vm, FX_ROM_GPA >> 12)),
			 MV_PAGE_ROM);
	assert_int_equal(mv_vm_gpa_to_hva(vm, FX_MMIO_GPA, 0, &ptr),
			 MV_VM_SLOW_PATH);
	assert_int_equal(mv_vm_gpa_to_hva(vm, FX_MMIO_GPA, 1, &ptr),
			 MV_VM_SLOW_PATH);
	assert_int_equal(mv_page_host_id(mv_vm_page(vm, FX_MMIO_GPA >> 12)),
			 MV_NIL_PAGE);
	assert_int_equal(mv_vm_gpa_to_hva(vm, FX_HOLE_GPA, 0, &ptr),
			 -MV_ERANGE);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* Zero pages never allocate on read, whatever the amount read. */
static void reads_never_allocate(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct fx_device dev;
	struct mv_host_vm_stats hs;
	static uint8_t buf[FX_LOW_SIZE];
	void *ptr;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(fx_create(host, &dev, D, 0, &vm), 0);
	assert_int_equal(mv_vm_phys_read(vm, 0, buf, sizeof(buf)), 0);
	for (uint64_t g = 0; g < FX_LOW_SIZE; g += MV_PAGE_SIZE)
		assert_int_equal(mv_vm_gpa_to_hva(vm, g, 0, &ptr), 0);
	assert_int_equal(mv_host_vm_get_stats(host, mv_vm_id(vm), &hs), 0);
	assert_int_equal(hs.allocated[MV_ACCOUNT_BASE], 0);
	assert_int_equal(hs.allocated[MV_ACCOUNT_FIXED], FX_ROM_SIZE / 4096);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

static void descriptor_accessors(void **state)
{
	struct mv_page p = { 0 };

	(void)state;
	p.host_id = 77;
	p.state = MV_PAGE_SHARED;
	p.type = MV_PAGE_ROM;
	p.hstate = MV_HSTATE_WRITE;
	p.flags = MV_PAGE_F_DIRTY;
	p.monitor_hits = 3;
	mv_page_set_rmap(&p, 0xdeadbeef);
	assert_int_equal(mv_page_host_id(&p), 77);
	assert_int_equal(mv_page_state(&p), MV_PAGE_SHARED);
	assert_int_equal(mv_page_type(&p), MV_PAGE_ROM);
	assert_int_equal(mv_page_hstate(&p), MV_HSTATE_WRITE);
	assert_int_equal(mv_page_flags(&p), MV_PAGE_F_DIRTY);
	assert_int_equal(mv_page_monitor_hits(&p), 3);
	assert_int_equal(mv_page_rmap(&p), 0xdeadbeef);
	assert_string_equal(mv_page_state_name(MV_PAGE_BALLOONED), "ballooned");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(table_is_exhaustive),
		cmocka_unit_test(state_access_table),
		cmocka_unit_test(rom_and_mmio_pages),
		cmocka_unit_test(reads_never_allocate),
		cmocka_unit_test(descriptor_accessors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
