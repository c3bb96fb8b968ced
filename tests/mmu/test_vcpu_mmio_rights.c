/* Rights of cached MMIO SPTEs: an access answered from an MMIO SPTE
 * without a guest walk must obey the same rules as one that walks (found
 * by the model test, test_vcpu_model.c). */
#include "vcpu_fixture.h"

#define VA 0x00007f0000001000ull

/* A supervisor write with CR0.WP=0 to a clean read-only MMIO page is
 * allowed, and must set D in the guest PTE even when an earlier read has
 * cached the MMIO SPTE. */
static void mmio_write_with_wp_clear_sets_dirty(void **state)
{
	struct vf f;
	uint64_t cr3, leaf, val = 0;

	(void)state;
	cr3 = vf_setup(&f);
	leaf = vf_map4k(&f, cr3, VA, VF_MMIO_GPA, MV_PTE_P | MV_PTE_U);
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR0,
					 MV_CR0_PE | MV_CR0_PG), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(vf_get(&f, leaf) & (MV_PTE_A | MV_PTE_D), MV_PTE_A);
	val = 0x1122334455667788ull;
	assert_int_equal(mv_vcpu_write(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(vf_get(&f, leaf) & MV_PTE_D, MV_PTE_D);
	assert_memory_equal(f.dev, &val, 8);
	vf_fini(&f);
}

/* A user read of an MMIO page with protection key 1 faults once PKRU
 * denies key 1, though an earlier read cached its MMIO SPTE. */
static void mmio_page_keeps_its_protection_key(void **state)
{
	struct vf f;
	struct mv_fault fault;
	uint64_t cr3, val = 0;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, VF_MMIO_GPA,
		 MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A | MV_PTE_D |
		 (1ull << 59));
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR4,
					 MV_CR4_PAE | MV_CR4_PKE), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, MV_ACC_USER, NULL),
			 0);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_PKRU, 1u << 2), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, MV_ACC_USER,
				      &fault), MV_VCPU_FAULT);
	assert_int_equal(fault.vector, MV_VEC_PF);
	assert_int_equal(fault.error_code, MV_PF_P | MV_PF_U | MV_PF_PK);
	/* PKRU rules supervisor data accesses to user pages as well. */
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, &fault),
			 MV_VCPU_FAULT);
	assert_int_equal(fault.error_code, MV_PF_P | MV_PF_PK);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(mmio_write_with_wp_clear_sets_dirty),
		cmocka_unit_test(mmio_page_keeps_its_protection_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
