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
	vf_init(&f, NULL, NULL);
	cr3 = vf_new_table(&f);
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
	vf_init(&f, NULL, NULL);
	cr3 = vf_new_table(&f);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(miss_after_flush_is_a_shadow_hit),
		cmocka_unit_test(cached_root_answers_without_faults),
		cmocka_unit_test(other_vcpu_hit_flushes_nobody),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
