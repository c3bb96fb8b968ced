/* Large guest pages are shadowed by 4 KiB direct shadow pages found by
 * (first frame, role), so two large pages on the same frames can share
 * them: whatever a leaf carries besides the rights in the role (the
 * protection key, the global bit, the guest's dirty bit) must be part of
 * the role too (found by the model test, test_vcpu_model.c). */
#include "vcpu_fixture.h"

#define VA_A 0x0000000040000000ull
#define VA_B 0x0000000040200000ull
#define FRAME VF_HIGH_GPA
#define P_W_U_A_D (MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A | MV_PTE_D)

static void pkey_of_each_large_page(void **state)
{
	struct vf f;
	struct mv_fault fault;
	uint64_t cr3, val = 0;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map2m(&f, cr3, VA_A, FRAME, P_W_U_A_D | (1ull << 59));  /* key 1 */
	vf_map2m(&f, cr3, VA_B, FRAME, P_W_U_A_D);                 /* key 0 */
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR4,
					 MV_CR4_PAE | MV_CR4_PKE), 0);
	/* Both pages shadowed while PKRU allows every key: A first, then
	 * B, which links the same direct shadow page. */
	assert_int_equal(mv_vcpu_read(f.cpu, VA_A, &val, 8, MV_ACC_USER, NULL),
			 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_B, &val, 8, MV_ACC_USER, NULL),
			 0);
	/* PKRU: key 1 may not be accessed, key 0 may. */
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_PKRU, 1u << 2), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_A, &val, 8, MV_ACC_USER,
				      &fault), MV_VCPU_FAULT);
	assert_int_equal(fault.error_code, MV_PF_P | MV_PF_U | MV_PF_PK);
	/* Again, from whatever the first attempt left in the TLB. */
	assert_int_equal(mv_vcpu_read(f.cpu, VA_A, &val, 8, MV_ACC_USER,
				      &fault), MV_VCPU_FAULT);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_B, &val, 8, MV_ACC_USER, NULL),
			 0);
	vf_fini(&f);
}

/* Only the global large page survives a CR3 load. */
static void global_bit_of_each_large_page(void **state)
{
	struct vf f;
	struct mv_fault fault;
	uint64_t cr3, cr3b, val = 0;

	(void)state;
	cr3 = vf_setup(&f);
	cr3b = vf_new_table(&f);
	vf_map2m(&f, cr3, VA_A, FRAME, P_W_U_A_D | MV_PTE_G);
	vf_map2m(&f, cr3, VA_B, FRAME, P_W_U_A_D);
	vf_map2m(&f, cr3b, VA_A, FRAME, P_W_U_A_D | MV_PTE_G);  /* the kernel's */
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR4,
					 MV_CR4_PAE | MV_CR4_PGE), 0);
	/* B shadowed first, then A links the same direct shadow page; B's
	 * translation is then taken from the shadow again. */
	assert_int_equal(mv_vcpu_read(f.cpu, VA_B, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_A, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_flush(f.cpu), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_B, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3, cr3b), 0);
	/* VA_B is not mapped in cr3b and was never global. */
	assert_int_equal(mv_vcpu_read(f.cpu, VA_B, &val, 8, 0, &fault),
			 MV_VCPU_FAULT);
	assert_int_equal(fault.error_code, 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_B, &val, 8, 0, &fault),
			 MV_VCPU_FAULT);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_A, &val, 8, 0, NULL), 0);
	vf_fini(&f);
}

/* A supervisor write with CR0.WP=0 to a clean read-only large page sets
 * its D, though a dirty read-only large page on the same frames has a
 * leaf that lets writes through. */
static void dirty_bit_of_each_large_page(void **state)
{
	struct vf f;
	uint64_t cr3, val = 0;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map2m(&f, cr3, VA_A, FRAME, MV_PTE_P | MV_PTE_U | MV_PTE_A | MV_PTE_D);
	vf_map2m(&f, cr3, VA_B, FRAME, MV_PTE_P | MV_PTE_U);
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR0,
					 MV_CR0_PE | MV_CR0_PG), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA_B, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_write(f.cpu, VA_A, &val, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_flush(f.cpu), 0);
	assert_int_equal(mv_vcpu_write(f.cpu, VA_B, &val, 8, 0, NULL), 0);
	/* B's PDE: cr3 -> PDPT -> PD, entry 1 */
	uint64_t pdpt = vf_get(&f, cr3) & 0x000ffffffffff000ull;
	uint64_t pd = vf_get(&f, pdpt + 8) & 0x000ffffffffff000ull;

	assert_int_equal(vf_get(&f, pd + 8) & MV_PTE_D, MV_PTE_D);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pkey_of_each_large_page),
		cmocka_unit_test(global_bit_of_each_large_page),
		cmocka_unit_test(dirty_bit_of_each_large_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
