/* The shadow MMU's mechanisms one by one: demand fill, TLB hits, guest
 * faults, A/D emulation, write emulation of tracked tables, MMIO SPTEs. */
#include "vcpu_fixture.h"

#define VA 0x00007f0000001000ull
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

static void demand_fill_then_tlb_hit(void **state)
{
	struct vf f;
	struct mv_xlate x;
	struct mv_vcpu_stats st;
	uint64_t cr3;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, 0x5000, P_W_U);
	vf_long_mode(&f, cr3);
	vf_put(&f, 0x5008, 0x1122334455667788ull);
	assert_int_equal(mv_vcpu_translate(f.cpu, VA + 8, 0, &x), MV_VCPU_OK);
	assert_int_equal(x.gpa, 0x5008);
	assert_int_equal(x.span, MV_PAGE_SIZE - 8);
	assert_int_equal(*(uint64_t *)x.hva, 0x1122334455667788ull);
	assert_int_equal(mv_vcpu_translate(f.cpu, VA + 16, 0, &x), MV_VCPU_OK);
	assert_int_equal(x.gpa, 0x5010);
	mv_vcpu_get_stats(f.cpu, &st);
	assert_int_equal(st.faults, 1);
	assert_int_equal(st.tlb_hits, 1);
	assert_int_equal(st.fills, 1);
	vf_fini(&f);
}

static void guest_fault_has_exact_error_code(void **state)
{
	struct vf f;
	struct mv_xlate x;
	uint64_t cr3;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, 0x5000, MV_PTE_P);  /* supervisor, read-only */
	vf_long_mode(&f, cr3);
	assert_int_equal(mv_vcpu_translate(f.cpu, VA, MV_ACC_USER, &x),
			 MV_VCPU_FAULT);
	assert_int_equal(x.fault.vector, MV_VEC_PF);
	assert_int_equal(x.fault.error_code, MV_PF_P | MV_PF_U);
	assert_int_equal(x.fault.addr, VA);
	assert_int_equal(mv_vcpu_translate(f.cpu, VA + 0x1000, MV_ACC_WRITE,
					   &x), MV_VCPU_FAULT);
	assert_int_equal(x.fault.error_code, MV_PF_W);
	assert_int_equal(mv_vcpu_translate(f.cpu, 0x0000800000000000ull, 0, &x),
			 MV_VCPU_FAULT);
	assert_int_equal(x.fault.vector, MV_VEC_GP);
	vf_fini(&f);
}

static void first_write_sets_dirty(void **state)
{
	struct vf f;
	struct mv_xlate x;
	uint64_t cr3, leaf, val = 42;

	(void)state;
	cr3 = vf_setup(&f);
	leaf = vf_map4k(&f, cr3, VA, 0x6000, P_W_U);
	vf_long_mode(&f, cr3);
	vf_put(&f, 0x6000, 1);  /* private: only the clean PTE stops writes */
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(vf_get(&f, leaf) & (MV_PTE_A | MV_PTE_D), MV_PTE_A);
	val = 42;
	assert_int_equal(mv_vcpu_write(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(vf_get(&f, leaf) & (MV_PTE_A | MV_PTE_D),
			 MV_PTE_A | MV_PTE_D);
	assert_int_equal(vf_get(&f, 0x6000), 42);
	assert_int_equal(mv_vcpu_translate(f.cpu, VA, MV_ACC_WRITE, &x),
			 MV_VCPU_OK);
	vf_fini(&f);
}

static void table_write_through_vcpu_is_emulated(void **state)
{
	struct vf f;
	uint64_t cr3, leaf, val, tva = 0x00007f0000200000ull;
	struct mv_mmu_stats ms;

	(void)state;
	cr3 = vf_setup(&f);
	leaf = vf_map4k(&f, cr3, VA, 0x7000, P_W_U);
	/* map the leaf table itself at tva, writable */
	vf_map4k(&f, cr3, tva, leaf & ~0xfffull, P_W_U);
	vf_long_mode(&f, cr3);
	vf_put(&f, 0x7000, 1);
	vf_put(&f, 0x8000, 2);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(val, 1);
	/* the guest repoints VA to 0x8000 through its own mapping */
	val = 0x8000 | P_W_U;
	assert_int_equal(mv_vcpu_write(f.cpu, tva + (leaf & 0xfff), &val, 8, 0,
				       NULL), 0);
	assert_int_equal(mv_vcpu_invlpg(f.cpu, VA), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &val, 8, 0, NULL), 0);
	assert_int_equal(val, 2);
	assert_int_equal(mv_mmu_get_stats(f.vm, &ms), 0);
	assert_true(ms.table_writes >= 1);
	assert_true(ms.tracked_gfns >= 4);
	vf_fini(&f);
}

static void mmio_spte_caches_the_device(void **state)
{
	struct vf f;
	uint64_t cr3, val = 0;
	struct mv_vcpu_stats st;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, VF_MMIO_GPA, P_W_U | MV_PTE_D);
	vf_long_mode(&f, cr3);
	memcpy(f.dev + 8, "abcdefgh", 8);
	assert_int_equal(mv_vcpu_read(f.cpu, VA + 8, &val, 8, 0, NULL), 0);
	assert_memory_equal(&val, "abcdefgh", 8);
	assert_int_equal(mv_vcpu_read(f.cpu, VA + 8, &val, 8, 0, NULL), 0);
	mv_vcpu_get_stats(f.cpu, &st);
	assert_int_equal(st.faults, 1);
	assert_int_equal(st.mmio_cached, 1);
	assert_int_equal(f.dev_reads, 2);
	vf_fini(&f);
}

/* The inline lookup hits only while the vCPU is INSIDE: after
 * mv_vcpu_exit (and on a new vCPU) it misses, so that an entry a flush
 * posted meanwhile would remove is never used, until the next mv_vcpu_*
 * call, which takes that flush. */
static void inline_lookup_only_inside(void **state)
{
	const struct mv_tlb *t;
	struct mv_xlate x;
	struct vf f;
	uint64_t cr3;
	uint8_t *p;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, 0x5000, P_W_U);
	vf_long_mode(&f, cr3);
	t = mv_vcpu_tlb(f.cpu);
	assert_int_equal(mv_vcpu_translate(f.cpu, VA, 0, &x), MV_VCPU_OK);
	p = mv_tlb_lookup(t, VA + 8, MV_TLB_SUP, MV_TLB_READ);
	assert_ptr_equal(p, (uint8_t *)x.hva + 8);
	mv_vcpu_exit(f.cpu);
	assert_null(mv_tlb_lookup(t, VA + 8, MV_TLB_SUP, MV_TLB_READ));
	/* Back INSIDE with nothing flushed meanwhile: the entry hits. */
	mv_vcpu_quiesce(f.cpu);
	assert_ptr_equal(mv_tlb_lookup(t, VA + 8, MV_TLB_SUP, MV_TLB_READ), p);
	/* A remap while OUTSIDE (the guest table changed behind the vCPU
	 * and a full zap): no inline hit on the old page, then the new. */
	mv_vcpu_exit(f.cpu);
	vf_map4k(&f, cr3, VA, 0x6000, P_W_U);
	assert_int_equal(mv_mmu_zap_all(f.vm, 0), 0);
	assert_null(mv_tlb_lookup(t, VA + 8, MV_TLB_SUP, MV_TLB_READ));
	mv_vcpu_quiesce(f.cpu);
	assert_null(mv_tlb_lookup(t, VA + 8, MV_TLB_SUP, MV_TLB_READ));
	assert_int_equal(mv_vcpu_translate(f.cpu, VA + 8, 0, &x), MV_VCPU_OK);
	assert_int_equal(x.gpa, 0x6008);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(demand_fill_then_tlb_hit),
		cmocka_unit_test(guest_fault_has_exact_error_code),
		cmocka_unit_test(first_write_sets_dirty),
		cmocka_unit_test(table_write_through_vcpu_is_emulated),
		cmocka_unit_test(mmio_spte_caches_the_device),
		cmocka_unit_test(inline_lookup_only_inside),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
