/* Dirty logging: every write path marks a logged page, a clear
 * write-protects it again, the ring fills and resets, and a randomized
 * run of writes against byte snapshots finds no missed write. */
#include <stdlib.h>

#include "vcpu_fixture.h"
#include <memvisor/dirty.h>

#define VA 0x00007f0000000000ull  /* 64 pages mapped to gfn 0x100.. */
#define BASE_GFN 0x100
#define NPAGES 64
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

static uint64_t map_all(struct vf *f)
{
	uint64_t cr3 = vf_new_table(f);

	for (unsigned i = 0; i < NPAGES; i++)
		vf_map4k(f, cr3, VA + i * 0x1000ull,
			 (BASE_GFN + i) * 0x1000ull, P_W_U);
	vf_long_mode(f, cr3);
	return cr3;
}

static uint64_t dirty_bits(struct vf *f)
{
	uint64_t b = 0;

	assert_int_equal(mv_dirty_log_get(f->vm, BASE_GFN, NPAGES, &b), 0);
	return b;
}

static void clear_all(struct vf *f)
{
	uint64_t all = UINT64_MAX;

	assert_int_equal(mv_dirty_log_clear(f->vm, BASE_GFN, NPAGES, &all,
					    NULL), 0);
}

static void wr(struct vf *f, unsigned page, uint64_t val)
{
	assert_int_equal(mv_vcpu_write(f->cpu, VA + page * 0x1000ull + 8,
				       &val, 8, 0, NULL), 0);
}

static void every_path_marks(void **state)
{
	struct vf f;
	uint32_t slot;
	uint64_t v = 1;

	(void)state;
	vf_init(&f, NULL, NULL);
	map_all(&f);
	wr(&f, 0, 1);  /* mapped writable before logging starts */
	assert_int_equal(mv_dirty_log_enable(f.vm, BASE_GFN, NPAGES, 0, &slot),
			 0);
	assert_int_equal(dirty_bits(&f), 0);
	wr(&f, 0, 2);  /* the old writable mapping was revoked */
	assert_int_equal(dirty_bits(&f), 1ull << 0);
	wr(&f, 0, 3);  /* dirty now: no fault */
	assert_int_equal(mv_vm_phys_write(f.vm, (BASE_GFN + 5) * 0x1000ull,
					  &v, 8), 0);
	assert_int_equal(dirty_bits(&f), 1ull << 0 | 1ull << 5);
	uint8_t page[4096];

	memset(page, 7, sizeof(page));
	assert_int_equal(mv_vm_phys_populate(f.vm, BASE_GFN + 9, 1, page), 0);
	assert_int_equal(dirty_bits(&f), 1ull << 0 | 1ull << 5 | 1ull << 9);
	clear_all(&f);
	assert_int_equal(dirty_bits(&f), 0);
	wr(&f, 5, 4);
	assert_int_equal(dirty_bits(&f), 1ull << 5);
	/* a read maps a clean page read-only: it stays clean */
	assert_int_equal(mv_vcpu_read(f.cpu, VA + 7 * 0x1000ull, &v, 8, 0,
				      NULL), 0);
	assert_int_equal(dirty_bits(&f), 1ull << 5);
	assert_int_equal(mv_dirty_log_disable(f.vm, slot), 0);
	assert_int_equal(mv_dirty_log_get(f.vm, BASE_GFN, 1, &v), -MV_ERANGE);
	vf_fini(&f);
}

static void walker_ad_updates_mark_tables(void **state)
{
	struct vf f;
	uint32_t slot;
	uint64_t v, table_gfn = VF_PT_BASE >> 12;

	(void)state;
	vf_init(&f, NULL, NULL);
	map_all(&f);
	/* log the page-table pages: the walk's A bits dirty them */
	assert_int_equal(mv_dirty_log_enable(f.vm, table_gfn, 8, 0, &slot), 0);
	assert_int_equal(mv_vcpu_read(f.cpu, VA, &v, 8, 0, NULL), 0);
	uint64_t b = 0;

	assert_int_equal(mv_dirty_log_get(f.vm, table_gfn, 8, &b), 0);
	assert_int_equal(b, 0xf);  /* PML4, PDPT, PD, PT */
	vf_fini(&f);
}

static void initially_set_and_reset(void **state)
{
	struct vf f;
	uint32_t slot;

	(void)state;
	vf_init(&f, NULL, NULL);
	map_all(&f);
	assert_int_equal(mv_dirty_log_enable(f.vm, BASE_GFN, NPAGES,
					     MV_DIRTY_INITIALLY_SET, &slot), 0);
	assert_int_equal(dirty_bits(&f), UINT64_MAX);
	clear_all(&f);
	wr(&f, 63, 1);
	assert_int_equal(dirty_bits(&f), 1ull << 63);
	clear_all(&f);
	assert_int_equal(mv_vm_reset(f.vm), 0);  /* zeroes every page */
	assert_int_equal(dirty_bits(&f), UINT64_MAX);
	vf_fini(&f);
}

static void ring_fills_and_resets(void **state)
{
	struct vf f;
	uint32_t slot, n, k;
	struct mv_dirty_entry e[32];
	uint64_t v = 9;

	(void)state;
	vf_init(&f, NULL, NULL);
	map_all(&f);
	assert_int_equal(mv_dirty_log_enable(f.vm, BASE_GFN, NPAGES, 0, &slot),
			 0);
	assert_int_equal(mv_vcpu_dirty_ring_enable(f.cpu, 16), 0);
	for (unsigned i = 0; i < 16; i++)
		wr(&f, i, i);
	assert_int_equal(mv_vcpu_write(f.cpu, VA + 16 * 0x1000ull, &v, 8, 0,
				       NULL), MV_VCPU_RING_FULL);
	assert_int_equal(vf_get(&f, (BASE_GFN + 16) * 0x1000ull), 0);
	assert_int_equal(mv_vcpu_dirty_ring_harvest(f.cpu, e, 32, &n), 0);
	assert_int_equal(n, 16);
	for (unsigned i = 0; i < 16; i++) {
		assert_int_equal(e[i].slot, slot);
		assert_int_equal(e[i].offset, i);
	}
	assert_int_equal(mv_vcpu_dirty_ring_reset(f.cpu, &k), 0);
	assert_int_equal(k, 16);
	assert_int_equal(dirty_bits(&f), 0);
	assert_int_equal(mv_vcpu_write(f.cpu, VA + 16 * 0x1000ull, &v, 8, 0,
				       NULL), 0);
	wr(&f, 3, 33);  /* clean again after the reset: a new entry */
	assert_int_equal(mv_vcpu_dirty_ring_harvest(f.cpu, e, 32, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(e[0].offset, 16);
	assert_int_equal(e[1].offset, 3);
	vf_fini(&f);
}

/* Random writes through the vCPU (TLB and faults) and through phys, with
 * get / clear / copy rounds in between: every page whose bytes changed
 * since the copy is reported. */
static void no_missed_write(void **state)
{
	static uint8_t snap[NPAGES][4096], now[4096];
	struct vf f;
	uint32_t slot;
	uint64_t reported = 0, changed = 0;
	unsigned seed = 12345;

	(void)state;
	vf_init(&f, NULL, NULL);
	map_all(&f);
	assert_int_equal(mv_dirty_log_enable(f.vm, BASE_GFN, NPAGES,
					     MV_DIRTY_INITIALLY_SET, &slot), 0);
	for (unsigned round = 0; round < 400; round++) {
		uint64_t bits = dirty_bits(&f);

		assert_int_equal(mv_dirty_log_clear(f.vm, BASE_GFN, NPAGES,
						    &bits, NULL), 0);
		for (unsigned p = 0; p < NPAGES; p++) {
			assert_int_equal(mv_vm_phys_read(f.vm,
				(BASE_GFN + p) * 0x1000ull, now, 4096), 0);
			if (round && memcmp(now, snap[p], 4096)) {
				changed++;
				if (!((bits >> p) & 1))
					fail_msg("round %u page %u changed "
						 "but was not reported",
						 round, p);
			}
			reported += round && ((bits >> p) & 1);
			memcpy(snap[p], now, 4096);
		}
		for (unsigned w = rand_r(&seed) % 8; w; w--) {
			unsigned p = rand_r(&seed) % NPAGES;
			uint64_t val = rand_r(&seed) | 1;
			uint64_t off = (rand_r(&seed) % 512) * 8;

			if (rand_r(&seed) % 4)
				assert_int_equal(mv_vcpu_write(f.cpu,
					VA + p * 0x1000ull + off, &val, 8, 0,
					NULL), 0);
			else
				assert_int_equal(mv_vm_phys_write(f.vm,
					(BASE_GFN + p) * 0x1000ull + off,
					&val, 8), 0);
		}
	}
	print_message("changed %lu, reported %lu (false positives %lu)\n",
		      (unsigned long)changed, (unsigned long)reported,
		      (unsigned long)(reported - changed));
	assert_true(changed > 500);
	vf_fini(&f);
}

static void bad_input(void **state)
{
	struct vf f;
	uint32_t slot;
	uint64_t b = 0;

	(void)state;
	vf_init(&f, NULL, NULL);
	assert_int_equal(mv_dirty_log_enable(NULL, 0, 1, 0, &slot), -MV_EINVAL);
	assert_int_equal(mv_dirty_log_enable(f.vm, 0, 0, 0, &slot), -MV_EINVAL);
	assert_int_equal(mv_dirty_log_enable(f.vm, 0, 1, 2, &slot), -MV_EINVAL);
	assert_int_equal(mv_dirty_log_enable(f.vm, 1ull << 40, 1, 0, &slot),
			 -MV_ERANGE);
	assert_int_equal(mv_dirty_log_enable(f.vm, 0, UINT64_MAX, 0, &slot),
			 -MV_ERANGE);
	assert_int_equal(mv_dirty_log_enable(f.vm, 0, 16, 0, &slot), 0);
	assert_int_equal(mv_dirty_log_enable(f.vm, 15, 16, 0, &slot),
			 -MV_EEXIST);
	assert_int_equal(mv_dirty_log_get(f.vm, 8, 9, &b), -MV_ERANGE);
	assert_int_equal(mv_dirty_log_clear(f.vm, 8, 9, &b, NULL), -MV_ERANGE);
	assert_int_equal(mv_dirty_log_disable(f.vm, 63), -MV_ENOENT);
	assert_int_equal(mv_vcpu_dirty_ring_enable(f.cpu, 15), -MV_EINVAL);
	assert_int_equal(mv_vcpu_dirty_ring_enable(f.cpu, 1u << 17),
			 -MV_EINVAL);
	assert_int_equal(mv_vcpu_dirty_ring_reset(f.cpu, NULL), -MV_ESTATE);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_path_marks),
		cmocka_unit_test(walker_ad_updates_mark_tables),
		cmocka_unit_test(initially_set_and_reset),
		cmocka_unit_test(ring_fills_and_resets),
		cmocka_unit_test(no_missed_write),
		cmocka_unit_test(bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
