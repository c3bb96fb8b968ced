/* Global translations and CR4.PGE: a shadow leaf records the guest's G
 * bit, and only a vCPU with CR4.PGE set keeps it across a CR3 load (the
 * shadow tables are shared by vCPUs and outlive a PGE change; found by
 * the model test, test_vcpu_model.c). */
#include "vcpu_fixture.h"

#define VA 0x00007f0000001000ull

static void global_needs_pge_when_the_tlb_is_filled(void **state)
{
	struct vf f;
	struct mv_fault fault;
	uint64_t cr3, cr3b, val = 0;

	(void)state;
	cr3 = vf_setup(&f);
	cr3b = vf_new_table(&f);
	vf_map4k(&f, cr3, VA, 0x5000,
		 MV_PTE_P | MV_PTE_W | MV_PTE_A | MV_PTE_D | MV_PTE_G);
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR4,
					 MV_CR4_PAE | MV_CR4_PGE), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	/* PGE off, and the translation comes back from the shadow leaf
	 * built while it was on. */
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR4, MV_CR4_PAE), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3, cr3b), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, &fault),
			 MV_VCPU_FAULT);
	assert_int_equal(fault.error_code, 0);
	/* With PGE on, the global translation does survive the load. */
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3, cr3), 0);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR4,
					 MV_CR4_PAE | MV_CR4_PGE), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3, cr3b), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(global_needs_pge_when_the_tlb_is_filled),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
