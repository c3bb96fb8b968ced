/* The reclaim after a zap of all shadow pages frees its batches without a
 * shootdown each: the zap-all's own shootdown already made every obsolete
 * page unreachable (a vCPU checks that its root is current before a
 * lockless walk), so a remover never waits for the vCPUs once per batch. */
#include "vcpu_fixture.h"

#define BIG_VA 0x0000100000000000ull
#define NPAGES 600u
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

static struct mv_mmu_stats mstats(struct vf *f)
{
	struct mv_mmu_stats st;

	assert_int_equal(mv_mmu_get_stats(f->vm, &st), 0);
	return st;
}

/* 2 MiB guest pages outside RAM: a direct shadow page (and an MMIO leaf)
 * each, from one guest PD per GiB. */
static void map_large(struct vf *f, uint64_t cr3)
{
	uint64_t pdpt = vf_new_table(f);

	vf_put(f, cr3 + ((BIG_VA >> 39) & 511) * 8, pdpt | P_W_U);
	for (unsigned g = 0; g < (NPAGES + 511) / 512; g++) {
		uint64_t pd = vf_new_table(f);

		vf_put(f, pdpt + (((BIG_VA >> 30) + g) & 511) * 8, pd | P_W_U);
		for (unsigned k = 0; k < 512 && g * 512 + k < NPAGES; k++)
			vf_put(f, pd + k * 8, ((1ull << 41) + ((uint64_t)(g * 512 +
			       k) << 21)) | P_W_U | MV_PTE_PS);
	}
}

static void reclaim_batches_need_no_shootdown(void **state)
{
	struct mv_mmu_config mc = { .max_shadow_pages = 2 * NPAGES };
	struct vf f;
	struct mv_xlate x;
	uint64_t cr3, val;

	(void)state;
	vf_init(&f, NULL, &mc);
	cr3 = vf_new_table(&f);
	vf_map4k(&f, cr3, 0x1000, 0x5000, P_W_U | MV_PTE_D);
	vf_put(&f, 0x5000, 99);
	map_large(&f, cr3);
	vf_long_mode(&f, cr3);
	for (unsigned i = 0; i < NPAGES; i++)
		assert_int_equal(mv_vcpu_translate(f.cpu, BIG_VA +
						   ((uint64_t)i << 21), 0, &x),
				 MV_VCPU_MMIO);
	assert_int_equal(mv_vcpu_read(f.cpu, 0x1000, &val, 8, 0, NULL), 0);
	assert_true(mstats(&f).shadow_pages > NPAGES);
	uint64_t before = mstats(&f).shootdowns;

	assert_int_equal(mv_mmu_zap_all(f.vm, 8), 0);  /* 75+ batches */
	assert_int_equal(mstats(&f).shootdowns, before + 1);
	assert_true(mstats(&f).obsolete <= 1);         /* the pinned root */
	assert_true(mstats(&f).shadow_pages <= 1);
	/* the vCPU runs on a fresh root, and its old pointers are gone */
	assert_int_equal(mv_vcpu_read(f.cpu, 0x1000, &val, 8, 0, NULL), 0);
	assert_int_equal(val, 99);
	assert_int_equal(mv_vcpu_translate(f.cpu, BIG_VA, 0, &x),
			 MV_VCPU_MMIO);
	assert_int_equal(x.gpa, 1ull << 41);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reclaim_batches_need_no_shootdown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
