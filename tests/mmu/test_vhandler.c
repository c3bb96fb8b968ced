/* Virtual access handlers, one test per step of the seed's life cycle
 * (register, first read fault, write, remap, unmap, deregister), the
 * alias and HYPERVISOR cases, and a property test: with random mappings
 * and handler ranges, no write to a handled frame escapes its handler. */
#include <stdlib.h>

#include "vcpu_fixture.h"
#include <memvisor/vhandler.h>

#define VA 0x00007f0000000000ull
#define ALIAS 0x00007e0000000000ull
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

struct log {
	unsigned calls, invals;
	struct mv_vaccess last;
	uint64_t inval_va, old_gpa, new_gpa;
	int result;
};

static int on_access(void *opaque, struct mv_vcpu *v, const struct mv_vaccess *a)
{
	struct log *l = opaque;

	(void)v;
	l->calls++;
	l->last = *a;
	if (!(a->acc & MV_ACC_WRITE) && l->result == MV_VHANDLER_DONE)
		memset(a->buf, 0xee, a->size);
	return l->result;
}

static void on_inval(void *opaque, struct mv_vcpu *v, uint64_t va,
		     uint64_t old_gpa, uint64_t new_gpa)
{
	struct log *l = opaque;

	(void)v;
	l->invals++;
	l->inval_va = va;
	l->old_gpa = old_gpa;
	l->new_gpa = new_gpa;
}

struct vt {
	struct vf f;
	struct log log;
	uint64_t cr3, leaf[4];
	uint32_t id;
};

static void vt_init(struct vt *t, enum mv_vhandler_kind kind, int result)
{
	struct mv_vhandler_config c = { .kind = kind, .va = VA,
					.size = 2 * MV_PAGE_SIZE,
					.fn = on_access, .inval = on_inval,
					.opaque = &t->log };

	memset(&t->log, 0, sizeof(t->log));
	t->log.result = result;
	t->cr3 = vf_setup(&t->f);
	for (unsigned i = 0; i < 4; i++)
		t->leaf[i] = vf_map4k(&t->f, t->cr3, VA + i * 0x1000ull,
				      (0x300 + i) << 12, P_W_U);
	vf_long_mode(&t->f, t->cr3);
	vf_put(&t->f, 0x300000, 0x1111);
	assert_int_equal(mv_vhandler_register(t->f.cpu, &c, &t->id), 0);
	assert_int_equal(t->log.calls, 0);
	assert_int_equal(t->log.invals, 2);  /* both pages entered the cache */
	t->log.invals = 0;
}

static uint64_t rd(struct vt *t, uint64_t va)
{
	uint64_t v = 0;

	assert_int_equal(mv_vcpu_read(t->f.cpu, va, &v, 8, 0, NULL), 0);
	return v;
}

static void wr(struct vt *t, uint64_t va, uint64_t v)
{
	assert_int_equal(mv_vcpu_write(t->f.cpu, va, &v, 8, 0, NULL), 0);
}

static void write_handler_life_cycle(void **state)
{
	struct vt t;

	(void)state;
	vt_init(&t, MV_VHANDLER_WRITE, MV_VHANDLER_PROCEED);
	/* read fault: mapped read-only and resumed, no callback */
	assert_int_equal(rd(&t, VA), 0x1111);
	assert_int_equal(rd(&t, VA), 0x1111);
	assert_int_equal(t.log.calls, 0);
	/* write: the handler sees it, then it proceeds */
	wr(&t, VA + 8, 0x2222);
	assert_int_equal(t.log.calls, 1);
	assert_int_equal(t.log.last.va, VA + 8);
	assert_int_equal(t.log.last.gpa, 0x300008);
	assert_int_equal(t.log.last.size, 8);
	assert_int_equal(*(uint64_t *)t.log.last.buf, 0x2222);
	assert_int_equal(vf_get(&t.f, 0x300008), 0x2222);
	wr(&t, VA + 8, 0x3333);  /* every write, not only the first */
	assert_int_equal(t.log.calls, 2);
	/* outside the range: no callback */
	wr(&t, VA + 2 * 0x1000ull, 1);
	assert_int_equal(t.log.calls, 2);
	/* the guest remaps page 1 of the range */
	vf_put(&t.f, t.leaf[1], 0x350000 | P_W_U);
	wr(&t, VA + 0x1000, 5);
	assert_int_equal(t.log.invals, 1);
	assert_int_equal(t.log.inval_va, VA + 0x1000);
	assert_int_equal(t.log.old_gpa, 0x301000);
	assert_int_equal(t.log.new_gpa, 0x350000);
	assert_int_equal(t.log.calls, 3);
	assert_int_equal(t.log.last.gpa, 0x350000);
	/* the old frame is no longer handled (through another mapping) */
	vf_map4k(&t.f, t.cr3, ALIAS, 0x301000, P_W_U);
	wr(&t, ALIAS, 6);
	assert_int_equal(t.log.calls, 3);
	/* the guest unmaps page 0 */
	vf_put(&t.f, t.leaf[0], 0);
	struct mv_fault fl;
	uint64_t v = 1;

	assert_int_equal(mv_vcpu_write(t.f.cpu, VA, &v, 8, 0, &fl),
			 MV_VCPU_FAULT);
	assert_int_equal(t.log.invals, 2);
	assert_int_equal(t.log.new_gpa, UINT64_MAX);
	assert_int_equal(t.log.calls, 3);
	/* deregister: writes go straight again */
	assert_int_equal(mv_vhandler_deregister(t.f.cpu, t.id), 0);
	wr(&t, VA + 0x1000, 7);
	assert_int_equal(t.log.calls, 3);
	assert_int_equal(vf_get(&t.f, 0x350000), 7);
	vf_fini(&t.f);
}

static void all_handler_sees_reads_and_emulates(void **state)
{
	struct vt t;

	(void)state;
	vt_init(&t, MV_VHANDLER_ALL, MV_VHANDLER_DONE);
	assert_int_equal(rd(&t, VA), 0xeeeeeeeeeeeeeeeeull);
	assert_int_equal(t.log.calls, 1);
	assert_int_equal(rd(&t, VA), 0xeeeeeeeeeeeeeeeeull);
	assert_int_equal(t.log.calls, 2);  /* never cached in the TLB */
	wr(&t, VA, 9);
	assert_int_equal(t.log.calls, 3);
	assert_int_equal(vf_get(&t.f, 0x300000), 0x1111);  /* emulated */
	struct mv_xlate x;

	assert_int_equal(mv_vcpu_translate(t.f.cpu, VA, 0, &x), MV_VCPU_SLOW);
	vf_fini(&t.f);
}

static void alias_write_reaches_handler(void **state)
{
	struct vt t;

	(void)state;
	vt_init(&t, MV_VHANDLER_WRITE, MV_VHANDLER_PROCEED);
	vf_map4k(&t.f, t.cr3, ALIAS, 0x300000, P_W_U);
	wr(&t, ALIAS + 16, 4);
	assert_int_equal(t.log.calls, 1);
	assert_int_equal(t.log.last.gpa, 0x300010);
	vf_fini(&t.f);
}

static void refused_write_changes_nothing(void **state)
{
	struct vt t;
	uint64_t v = 5;

	(void)state;
	vt_init(&t, MV_VHANDLER_WRITE, -MV_EBUSY);
	assert_int_equal(mv_vcpu_write(t.f.cpu, VA, &v, 8, 0, NULL),
			 -MV_EBUSY);
	assert_int_equal(vf_get(&t.f, 0x300000), 0x1111);
	vf_fini(&t.f);
}

static void hypervisor_range_is_never_walked(void **state)
{
	struct vt t;
	struct mv_vhandler_config c = { .kind = MV_VHANDLER_HYPERVISOR,
					.va = 0xffffffffff000000ull,
					.size = MV_PAGE_SIZE, .fn = on_access,
					.opaque = NULL };
	struct log hl = { .result = MV_VHANDLER_DONE };
	uint32_t id;
	uint64_t v = 0;

	(void)state;
	vt_init(&t, MV_VHANDLER_WRITE, MV_VHANDLER_PROCEED);
	c.opaque = &hl;
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), 0);
	struct mv_vcpu_stats before, after;

	mv_vcpu_get_stats(t.f.cpu, &before);
	assert_int_equal(mv_vcpu_read(t.f.cpu, c.va + 8, &v, 8, 0, NULL), 0);
	mv_vcpu_get_stats(t.f.cpu, &after);
	assert_int_equal(hl.calls, 1);
	assert_int_equal(hl.last.gpa, 0);
	assert_int_equal(v, 0xeeeeeeeeeeeeeeeeull);
	assert_int_equal(after.guest_faults, before.guest_faults);
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), -MV_EEXIST);
	vf_fini(&t.f);
}

static void bad_input(void **state)
{
	struct vt t;
	struct mv_vhandler_config c = { .kind = MV_VHANDLER_WRITE, .va = VA,
					.size = MV_PAGE_SIZE, .fn = on_access };
	uint32_t id;

	(void)state;
	vt_init(&t, MV_VHANDLER_WRITE, MV_VHANDLER_PROCEED);
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), -MV_EEXIST);
	c.va = VA + 0x10000 + 1;
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), -MV_EINVAL);
	c.va = 0x0000800000000000ull;  /* not canonical */
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), -MV_EINVAL);
	c.va = VA + 0x10000;
	c.size = 0;
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), -MV_EINVAL);
	c.size = MV_PAGE_SIZE;
	c.fn = NULL;
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), -MV_EINVAL);
	c.fn = on_access;
	c.kind = (enum mv_vhandler_kind)7;
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &id), -MV_EINVAL);
	assert_int_equal(mv_vhandler_deregister(t.f.cpu, 15), -MV_ENOENT);
	assert_int_equal(mv_vhandler_register(NULL, &c, &id), -MV_EINVAL);
	vf_fini(&t.f);
}

/* Random remaps of 16 VA pages among 8 frames, a WRITE handler on some of
 * the VA pages: a write through any VA must call the handler exactly when
 * its frame is what a handled page maps now. */
static void no_write_escapes(void **state)
{
	struct vt t;
	unsigned seed = 4242;
	uint64_t frame[16];
	uint32_t ids[2];
	struct mv_vhandler_config c = { .kind = MV_VHANDLER_WRITE,
					.fn = on_access, .inval = on_inval };
	uint64_t leaf[16], checks = 0;

	(void)state;
	memset(&t.log, 0, sizeof(t.log));
	t.log.result = MV_VHANDLER_PROCEED;
	c.opaque = &t.log;
	t.cr3 = vf_setup(&t.f);
	for (unsigned i = 0; i < 16; i++) {
		frame[i] = 0x400 + i % 8;
		leaf[i] = vf_map4k(&t.f, t.cr3, VA + i * 0x1000ull,
				   frame[i] << 12, P_W_U);
	}
	vf_long_mode(&t.f, t.cr3);
	c.va = VA + 2 * 0x1000ull, c.size = 3 * MV_PAGE_SIZE;  /* pages 2..4 */
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &ids[0]), 0);
	c.va = VA + 10 * 0x1000ull, c.size = MV_PAGE_SIZE;      /* page 10 */
	assert_int_equal(mv_vhandler_register(t.f.cpu, &c, &ids[1]), 0);
	for (unsigned step = 0; step < 20000; step++) {
		unsigned p = rand_r(&seed) % 16;

		if (rand_r(&seed) % 3 == 0) {
			frame[p] = 0x400 + rand_r(&seed) % 8;
			uint64_t e = frame[p] << 12 | P_W_U;

			vf_put(&t.f, leaf[p], e);
			if (rand_r(&seed) % 2)
				mv_vcpu_invlpg(t.f.cpu, VA + p * 0x1000ull);
			continue;
		}
		bool handled = false;

		for (unsigned h = 0; h < 16; h++)
			if ((h >= 2 && h <= 4) || h == 10)
				handled |= frame[h] == frame[p];
		unsigned before = t.log.calls;

		wr(&t, VA + p * 0x1000ull + 8 * (rand_r(&seed) % 512), step);
		if ((t.log.calls != before) != handled)
			fail_msg("step %u: write to page %u (frame %#lx) %s",
				 step, p, (unsigned long)frame[p],
				 handled ? "escaped" : "called a handler");
		checks++;
	}
	assert_true(checks > 10000);
	vf_fini(&t.f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(write_handler_life_cycle),
		cmocka_unit_test(all_handler_sees_reads_and_emulates),
		cmocka_unit_test(alias_write_reaches_handler),
		cmocka_unit_test(refused_write_changes_nothing),
		cmocka_unit_test(hypervisor_range_is_never_walked),
		cmocka_unit_test(bad_input),
		cmocka_unit_test(no_write_escapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
