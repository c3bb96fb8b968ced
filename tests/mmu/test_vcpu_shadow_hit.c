/* A TLB miss whose shadow leaf exists and allows the access is answered by
 * the shadow tables: no guest walk, no refill, and so no flush of any
 * vCPU's TLB. */
#include "vcpu_fixture.h"

#define VA 0x00007f0000001000ull
#define VA2 0x00007f0000002000ull
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

static void stats(struct mv_vcpu *v, struct mv_vcpu_stats *st)
{
	assert_int_equal(mv_vcpu_get_stats(v, st), 0);
}

static void miss_after_flush_is_a_shadow_hit(void **state)
{
	struct vf f;
	struct mv_xlate x;
	struct mv_vcpu_stats st;
	uint64_t cr3, val;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, 0x5000, P_W_U | MV_PTE_D);
	vf_long_mode(&f, cr3);
	vf_put(&f, 0x5000, 77);
	assert_int_equal(mv_vcpu_translate(f.cpu, VA, 0, &x), MV_VCPU_OK);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(mv_vcpu_flush(f.cpu), 0);
		assert_int_equal(mv_vcpu_translate(f.cpu, VA, 0, &x),
				 MV_VCPU_OK);
		assert_int_equal(x.gpa, 0x5000);
		assert_int_equal(*(uint64_t *)x.hva, 77);
		assert_int_equal(mv_vcpu_flush(f.cpu), 0);
		assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
		assert_int_equal(val, 77);
	}
	stats(f.cpu, &st);
	assert_int_equal(st.faults, 1);
	assert_int_equal(st.shadow_hits, 6);
	assert_int_equal(st.fills, 1);
	vf_fini(&f);
}

static void cached_root_answers_without_faults(void **state)
{
	struct vf f;
	struct mv_vcpu_stats st;
	uint64_t cr3[2], val;

	(void)state;
	vf_init(&f, NULL, NULL);
	for (int s = 0; s < 2; s++) {
		cr3[s] = vf_new_table(&f);
		vf_map4k(&f, cr3[s], VA, 0x5000 + 0x1000 * s, P_W_U);
		vf_put(&f, 0x5000 + 0x1000 * s, 10 + s);
	}
	vf_long_mode(&f, cr3[0]);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3, cr3[1]), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3, cr3[i & 1]),
				 0);
		assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
		assert_int_equal(val, 10 + (i & 1));
	}
	stats(f.cpu, &st);
	assert_int_equal(st.faults, 2);
	assert_int_equal(st.shadow_hits, 4);
	vf_fini(&f);
}

/* A second vCPU reading what the first one shadowed neither faults nor
 * takes away the first one's TLB entries. */
static void other_vcpu_hit_flushes_nobody(void **state)
{
	struct vf f;
	struct mv_vcpu *b;
	struct mv_vcpu_stats sa0, sa1, sb;
	struct mv_cpu_regs r;
	uint64_t cr3, val;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, 0x5000, P_W_U | MV_PTE_D);
	vf_map4k(&f, cr3, VA2, 0x6000, P_W_U | MV_PTE_D);
	vf_put(&f, 0x6000, 1);  /* private: the leaf can be writable */
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA2, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_create(f.vm, NULL, &b), 0);
	assert_int_equal(mv_vcpu_get_regs(f.cpu, &r), 0);
	assert_int_equal(mv_vcpu_set_regs(b, &r), 0);
	stats(f.cpu, &sa0);
	assert_int_equal(mv_vcpu_read(b, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_write(b, VA2, &val, 8, 0, NULL), 0);
	stats(b, &sb);
	assert_int_equal(sb.faults, 0);
	assert_int_equal(sb.shadow_hits, 2);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	stats(f.cpu, &sa1);
	assert_int_equal(sa1.flushes, sa0.flushes);
	assert_int_equal(sa1.tlb_hits, sa0.tlb_hits + 1);
	mv_vcpu_destroy(b);
	vf_fini(&f);
}

struct seen {
	struct mv_shadow_leaf l[4];
	unsigned n;
};

static int seen_leaf(void *opaque, const struct mv_shadow_leaf *l)
{
	struct seen *s = opaque;

	if (s->n < 4)
		s->l[s->n] = *l;
	s->n++;
	return 0;
}

/* The shadow dump lists what the faults filled, from the shadow alone:
 * the gfn and host page of each leaf, its rights and its guest entry. */
static void shadow_dump_lists_the_filled_leaves(void **state)
{
	struct vf f;
	struct seen s = { .n = 0 };
	struct mv_shadow_leaf one;
	uint64_t cr3, leaf, val;

	(void)state;
	vf_init(&f, NULL, NULL);
	assert_int_equal(mv_vcpu_shadow_dump(NULL, seen_leaf, &s), -MV_EINVAL);
	assert_int_equal(mv_vcpu_shadow_dump(f.cpu, NULL, &s), -MV_EINVAL);
	assert_int_equal(mv_vcpu_shadow_leaf(f.cpu, VA, NULL), -MV_EINVAL);
	cr3 = vf_new_table(&f);
	leaf = vf_map4k(&f, cr3, VA, 0x5000, P_W_U | MV_PTE_D | MV_PTE_NX);
	vf_map4k(&f, cr3, 0xffff800000003000ull, 0x6000, MV_PTE_P);
	vf_put(&f, 0x5000, 1);
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_shadow_dump(f.cpu, seen_leaf, &s),
			 -MV_ESTATE);  /* no root yet */
	assert_int_equal(mv_vcpu_read(f.cpu, 0xffff800000003000ull, &val, 8,
				      0, NULL), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_shadow_dump(f.cpu, seen_leaf, &s), 0);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.l[0].va, VA);   /* ascending: low half first */
	assert_int_equal(s.l[0].gpa, 0x5000);
	assert_int_equal(s.l[0].host_id,
			 mv_page_host_id(mv_vm_page(f.vm, 5)));
	assert_int_equal(s.l[0].perm, MV_PERM_W | MV_PERM_U | MV_PERM_NX);
	assert_int_equal(s.l[0].entry_gpa, leaf);
	assert_int_equal(s.l[0].entry_size, 8);
	assert_int_equal(s.l[0].page_size, MV_PAGE_SIZE);
	assert_true(s.l[0].writable);
	assert_int_equal(s.l[1].va, 0xffff800000003000ull);
	assert_int_equal(s.l[1].gpa, 0x6000);
	assert_int_equal(s.l[1].host_id, MV_ZERO_PAGE);
	assert_int_equal(s.l[1].perm, 0);
	assert_int_equal(mv_vcpu_shadow_leaf(f.cpu, VA + 0x123, &one), 1);
	assert_int_equal(one.va, VA);
	assert_int_equal(one.gpa, 0x5000);
	assert_int_equal(mv_vcpu_shadow_leaf(f.cpu, VA + 0x1000, &one), 0);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(miss_after_flush_is_a_shadow_hit),
		cmocka_unit_test(cached_root_answers_without_faults),
		cmocka_unit_test(other_vcpu_hit_flushes_nobody),
		cmocka_unit_test(shadow_dump_lists_the_filled_leaves),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
