/* One test per mechanism of the shadow MMU: write-flood unshadow, cached
 * roots, the shadow pool's min/max, the cap with oldest-first zaps, budget
 * exhaustion, fast zap-all, the MMIO generation, and the reverse-map zap
 * on every phys notification (no stale host page after share, balloon,
 * reset, copy-on-write, handler and move; defragmentation moves pages
 * through the same mover). */
#include "vcpu_fixture.h"

#define VA 0x00007f0000001000ull
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

static uint64_t setup_one(struct vf *f, uint64_t gpa, uint64_t *leaf)
{
	uint64_t cr3 = vf_new_table(f), l = vf_map4k(f, cr3, VA, gpa, P_W_U);

	if (leaf)
		*leaf = l;
	vf_long_mode(f, cr3);
	return cr3;
}

static struct mv_mmu_stats mstats(struct vf *f)
{
	struct mv_mmu_stats st;

	assert_int_equal(mv_mmu_get_stats(f->vm, &st), 0);
	return st;
}

static struct mv_vcpu_stats vstats(struct vf *f)
{
	struct mv_vcpu_stats st;

	assert_int_equal(mv_vcpu_get_stats(f->cpu, &st), 0);
	return st;
}

/* The vCPU's host page for @va is the one phys/ backs @gpa with now. */
static void assert_current(struct vf *f, uint64_t va, uint64_t gpa)
{
	struct mv_xlate x;
	void *want;

	assert_int_equal(mv_vcpu_translate(f->cpu, va, 0, &x), MV_VCPU_OK);
	assert_int_equal(x.gpa, gpa);
	assert_int_equal(mv_vm_gpa_to_hva(f->vm, gpa, MV_VM_HVA_READ, &want),
			 0);
	assert_ptr_equal(x.hva, want);
}

static uint64_t rd(struct vf *f, uint64_t va)
{
	uint64_t v = 0;

	assert_int_equal(mv_vcpu_read(f->cpu, va, &v, 8, 0, NULL), 0);
	return v;
}

static void wr(struct vf *f, uint64_t va, uint64_t v)
{
	assert_int_equal(mv_vcpu_write(f->cpu, va, &v, 8, 0, NULL), 0);
}

static void write_flood_unshadows(void **state)
{
	struct vf f;
	uint64_t leaf;

	(void)state;
	vf_init(&f, NULL, NULL);
	setup_one(&f, 0x5000, &leaf);
	vf_put(&f, 0x5000, 7);
	assert_int_equal(rd(&f, VA), 7);
	uint64_t tracked = mstats(&f).tracked_gfns;

	/* three writes to other entries of the leaf table, no walk between */
	for (unsigned i = 1; i <= 3; i++)
		vf_put(&f, (leaf & ~0xfffull) + 8 * (100 + i), 0);
	assert_int_equal(mstats(&f).flood_unshadows, 1);
	assert_int_equal(mstats(&f).tracked_gfns, tracked - 1);
	assert_int_equal(mv_vm_page_tracked(f.vm, leaf >> 12), 0);
	assert_int_equal(rd(&f, VA), 7);  /* shadowed again on the walk */
	assert_int_equal(mv_vm_page_tracked(f.vm, leaf >> 12), 1);
	vf_fini(&f);
}

static void misaligned_write_unshadows(void **state)
{
	struct vf f;
	uint64_t leaf, two[2] = { 0, 0 };

	(void)state;
	vf_init(&f, NULL, NULL);
	setup_one(&f, 0x5000, &leaf);
	assert_int_equal(rd(&f, VA), 0);
	/* 16 bytes across two entries */
	assert_int_equal(mv_vm_phys_write(f.vm, (leaf & ~0xfffull) + 0x800,
					  two, 16), 0);
	assert_int_equal(mstats(&f).misaligned_unshadows, 1);
	assert_int_equal(mv_vm_page_tracked(f.vm, leaf >> 12), 0);
	vf_fini(&f);
}

static void cached_roots_rebuild_nothing(void **state)
{
	struct vf f;
	uint64_t a, b;

	(void)state;
	a = vf_setup(&f);
	b = vf_new_table(&f);
	vf_map4k(&f, a, VA, 0x5000, P_W_U);
	vf_map4k(&f, b, VA, 0x6000, P_W_U);
	vf_put(&f, 0x5000, 1);
	vf_put(&f, 0x6000, 2);
	vf_long_mode(&f, a);
	assert_int_equal(rd(&f, VA), 1);
	assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3, b), 0);
	assert_int_equal(rd(&f, VA), 2);
	uint64_t created = mstats(&f).created, faults = vstats(&f).faults;

	for (unsigned i = 0; i < 10; i++) {
		assert_int_equal(mv_vcpu_set_reg(f.cpu, MV_REG_CR3,
						 i & 1 ? b : a), 0);
		assert_int_equal(rd(&f, VA), i & 1 ? 2 : 1);
	}
	assert_int_equal(mstats(&f).created, created);
	assert_int_equal(vstats(&f).faults, faults);
	assert_int_equal(vstats(&f).root_cache_hits, 10);
	vf_fini(&f);
}

static void pool_refills_and_returns(void **state)
{
	struct vf f;
	struct mv_mmu_config mc = { .pool_min = 4, .pool_max = 8 };
	struct mv_host_vm_stats hs;
	uint64_t cr3;

	(void)state;
	vf_init(&f, NULL, &mc);
	cr3 = vf_new_table(&f);
	for (unsigned i = 0; i < 20; i++)  /* 20 leaf tables, 2 MiB apart */
		vf_map4k(&f, cr3, VA + ((uint64_t)i << 21), 0x5000, P_W_U);
	vf_long_mode(&f, cr3);
	for (unsigned i = 0; i < 20; i++)
		rd(&f, VA + ((uint64_t)i << 21));
	struct mv_mmu_stats st = mstats(&f);

	assert_true(st.pool_refills >= 3);
	assert_true(st.pool_free <= 8);
	assert_int_equal(mv_host_vm_get_stats(f.host, mv_vm_id(f.vm), &hs), 0);
	assert_int_equal(hs.allocated[MV_ACCOUNT_SHADOW],
			 st.shadow_pages + st.pool_free);
	assert_int_equal(mv_mmu_zap_all(f.vm, 0), 0);
	st = mstats(&f);
	assert_true(st.pool_returns >= 1);
	assert_true(st.pool_free <= 8);
	assert_int_equal(mv_host_vm_get_stats(f.host, mv_vm_id(f.vm), &hs), 0);
	assert_int_equal(hs.allocated[MV_ACCOUNT_SHADOW],
			 st.shadow_pages + st.pool_free);
	vf_fini(&f);
}

static void cap_zaps_oldest_first(void **state)
{
	struct vf f;
	struct mv_mmu_config mc = { .max_shadow_pages = 24 };
	uint64_t cr3;

	(void)state;
	vf_init(&f, NULL, &mc);
	cr3 = vf_new_table(&f);
	for (unsigned i = 0; i < 64; i++)
		vf_map4k(&f, cr3, VA + ((uint64_t)i << 21), 0x5000, P_W_U);
	vf_long_mode(&f, cr3);
	for (unsigned i = 0; i < 64; i++) {
		rd(&f, VA + ((uint64_t)i << 21));
		assert_true(mstats(&f).shadow_pages <= 24);
	}
	assert_true(mstats(&f).cap_zaps > 0);
	/* the newest is still shadowed (a TLB flush forces a shadow walk);
	 * the oldest was zapped and faults again */
	uint64_t faults = vstats(&f).faults;

	mv_vcpu_flush(f.cpu);
	rd(&f, VA + (63ull << 21));
	assert_int_equal(vstats(&f).faults, faults);
	rd(&f, VA);
	assert_int_equal(vstats(&f).faults, faults + 1);
	vf_fini(&f);
}

static void budget_exhaustion_is_an_error(void **state)
{
	struct mv_host_config hc = { .budget_pages = 96,
				     .overcommit = MV_OVERCOMMIT_ALLOW };
	struct vf f;
	struct mv_xlate x;
	uint64_t cr3, v = 5, gpa;
	int rc = 0;

	(void)state;
	vf_init(&f, &hc, NULL);
	cr3 = vf_new_table(&f);
	vf_map4k(&f, cr3, VA, 0x5000, P_W_U);
	vf_map4k(&f, cr3, VA + (1ull << 30), 0x6000, P_W_U);
	vf_long_mode(&f, cr3);
	/* take every page the budget allows through first writes */
	for (gpa = 0x100000; gpa < VF_LOW_SIZE && rc == 0; gpa += 0x1000)
		rc = mv_vm_phys_write(f.vm, gpa, &gpa, 8);
	assert_int_equal(rc, -MV_EBUDGET);
	/* a path needing new shadow pages, or a first write, is refused */
	rc = mv_vcpu_translate(f.cpu, VA + (1ull << 30), 0, &x);
	assert_true(rc == -MV_EBUDGET || rc == MV_VCPU_OK);
	rc = mv_vcpu_write(f.cpu, VA + (1ull << 30), &v, 8, 0, NULL);
	assert_int_equal(rc, -MV_EBUDGET);
	assert_int_equal(vf_get(&f, 0x6000), 0);  /* nothing written */
	/* room again: the same write goes through */
	assert_int_equal(mv_vm_reset(f.vm), 0);
	vf_map4k(&f, cr3, VA + (1ull << 30), 0x6000, P_W_U);
	rc = mv_vcpu_write(f.cpu, VA + (1ull << 30), &v, 8, 0, NULL);
	assert_int_equal(rc, 0);
	assert_int_equal(vf_get(&f, 0x6000), 5);
	vf_fini(&f);
}

static void zap_all_then_run_again(void **state)
{
	struct vf f;

	(void)state;
	vf_init(&f, NULL, NULL);
	setup_one(&f, 0x5000, NULL);
	wr(&f, VA, 11);
	uint64_t before = mstats(&f).shadow_pages;

	assert_true(before >= 4);
	assert_int_equal(mv_mmu_zap_all(f.vm, 1), 0);
	/* the vCPU's pinned root waits; everything else is gone */
	assert_true(mstats(&f).shadow_pages <= 1);
	assert_int_equal(rd(&f, VA), 11);
	assert_int_equal(mstats(&f).zap_alls, 1);
	assert_int_equal(mv_mmu_reclaim_obsolete(f.vm, 100, NULL), 0);
	assert_int_equal(mstats(&f).obsolete, 0);
	assert_current(&f, VA, 0x5000);
	vf_fini(&f);
}

static int ignore(void *opaque, struct mv_vm *vm, uint64_t gpa, void *buf,
		  size_t len, enum mv_access access)
{
	(void)opaque, (void)vm, (void)gpa, (void)buf, (void)len, (void)access;
	return MV_HANDLER_DEFAULT;
}

static void mmio_generation_bump_and_wrap(void **state)
{
	struct vf f;
	uint64_t cr3, v;

	(void)state;
	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA, VF_MMIO_GPA, P_W_U | MV_PTE_D);
	vf_map4k(&f, cr3, VA + 0x1000, 0x9000, P_W_U);
	vf_long_mode(&f, cr3);
	rd(&f, VA);
	rd(&f, VA);
	assert_int_equal(vstats(&f).mmio_cached, 1);
	uint64_t faults = vstats(&f).faults;

	/* a handler elsewhere changes the layout: the MMIO SPTE is stale */
	assert_int_equal(mv_vm_handler_register(f.vm, MV_HANDLER_WRITE, 0xa000,
						0x1000, ignore, NULL), 0);
	rd(&f, VA);
	assert_int_equal(vstats(&f).faults, faults + 1);
	rd(&f, VA);
	assert_int_equal(vstats(&f).mmio_cached, 2);
	/* turn the 19-bit generation all the way round: everything zapped */
	uint64_t wraps = mstats(&f).mmio_gen_wraps;

	for (uint32_t i = 0; i < (1u << 19); i++)
		assert_int_equal(mv_vm_handler_page_disable(f.vm, 0xa000), 0),
		assert_int_equal(mv_vm_handler_page_enable(f.vm, 0xa000), 0);
	v = rd(&f, VA);
	(void)v;
	assert_int_equal(mstats(&f).mmio_gen_wraps, wraps + 1);
	assert_int_equal(mstats(&f).zap_alls, 1);
	vf_fini(&f);
}

/* ---- every phys notification leaves no stale translation ---------------- */

static void share_then_cow(void **state)
{
	struct vf f;

	(void)state;
	vf_init(&f, NULL, NULL);
	setup_one(&f, 0x5000, NULL);
	vf_put(&f, 0x5000, 0xabc);
	vf_put(&f, 0x6000, 0xabc);
	assert_int_equal(rd(&f, VA), 0xabc);
	assert_int_equal(mv_vm_share_pages(f.vm, 5, f.vm, 6), 0);
	assert_current(&f, VA, 0x5000);
	wr(&f, VA, 0xdef);  /* copy-on-write through the vCPU */
	assert_int_equal(vf_get(&f, 0x5000), 0xdef);
	assert_int_equal(vf_get(&f, 0x6000), 0xabc);
	assert_current(&f, VA, 0x5000);
	vf_fini(&f);
}

static void balloon_and_reset(void **state)
{
	struct vf f;
	uint64_t gfn = 5;

	(void)state;
	vf_init(&f, NULL, NULL);
	setup_one(&f, 0x5000, NULL);
	wr(&f, VA, 0x77);
	assert_int_equal(mv_vm_balloon_inflate(f.vm, &gfn, 1), 0);
	assert_int_equal(rd(&f, VA), 0);
	assert_current(&f, VA, 0x5000);
	assert_int_equal(mv_vm_balloon_deflate(f.vm, &gfn, 1), 0);
	wr(&f, VA, 0x78);
	assert_int_equal(vf_get(&f, 0x5000), 0x78);
	/* reset zeroes the tables too: the vCPU must see them gone */
	assert_int_equal(mv_vm_reset(f.vm), 0);
	struct mv_xlate x;

	assert_int_equal(mv_vcpu_translate(f.cpu, VA, 0, &x), MV_VCPU_FAULT);
	assert_int_equal(x.fault.error_code, 0);
	vf_fini(&f);
}

static unsigned seen_writes;

static int count_writes(void *opaque, struct mv_vm *vm, uint64_t gpa,
			void *buf, size_t len, enum mv_access access)
{
	(void)opaque, (void)vm, (void)gpa, (void)buf, (void)len;
	seen_writes += access == MV_ACCESS_WRITE;
	return MV_HANDLER_DEFAULT;
}

static void handler_sees_writes_after_register(void **state)
{
	struct vf f;

	(void)state;
	vf_init(&f, NULL, NULL);
	setup_one(&f, 0x5000, NULL);
	wr(&f, VA, 1);  /* writable in the shadow and the TLB */
	seen_writes = 0;
	assert_int_equal(mv_vm_handler_register(f.vm, MV_HANDLER_WRITE, 0x5000,
						0x1000, count_writes, NULL), 0);
	wr(&f, VA, 2);
	assert_int_equal(seen_writes, 1);
	assert_int_equal(vf_get(&f, 0x5000), 2);
	assert_int_equal(rd(&f, VA), 2);  /* reads still go straight */
	assert_int_equal(mv_vm_handler_deregister(f.vm, 0x5000), 0);
	wr(&f, VA, 3);
	assert_int_equal(seen_writes, 1);
	vf_fini(&f);
}

/* A chunk nearly full of filler and the target page alone in another, so
 * that the pool has a fuller chunk to move the target into. */
static mv_page_id fragment(struct vf *f)
{
	static uint64_t gfns[600];
	uint32_t n = 0;

	for (uint64_t g = 0x400; g < 0x400 + 600; g++)
		vf_put(f, g << 12, g);
	wr(f, VA, 0x1234);
	uint32_t target = mv_page_chunk(mv_page_host_id(mv_vm_page(f->vm, 5)));

	for (uint64_t g = 0x400; g < 0x400 + 600; g++)
		if (g < 0x410 || mv_page_chunk(mv_page_host_id(
					 mv_vm_page(f->vm, g))) == target)
			gfns[n++] = g;
	assert_int_equal(mv_vm_balloon_inflate(f->vm, gfns, n), 0);
	return mv_page_host_id(mv_vm_page(f->vm, 5));
}

static void moved_page_is_followed(void **state)
{
	struct vf f;
	mv_page_id old_id, new_id;

	(void)state;
	vf_init(&f, NULL, NULL);
	setup_one(&f, 0x5000, NULL);
	old_id = fragment(&f);
	assert_int_not_equal(mv_page_chunk(old_id),
			     mv_page_chunk(mv_page_host_id(
				     mv_vm_page(f.vm, 0x500))));
	assert_int_equal(mv_host_move_page(f.host, old_id, &new_id), 0);
	assert_int_equal(mv_page_host_id(mv_vm_page(f.vm, 5)), new_id);
	assert_current(&f, VA, 0x5000);
	assert_int_equal(rd(&f, VA), 0x1234);
	wr(&f, VA, 0x5678);
	assert_int_equal(vf_get(&f, 0x5000), 0x5678);
	vf_fini(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(write_flood_unshadows),
		cmocka_unit_test(misaligned_write_unshadows),
		cmocka_unit_test(cached_roots_rebuild_nothing),
		cmocka_unit_test(pool_refills_and_returns),
		cmocka_unit_test(cap_zaps_oldest_first),
		cmocka_unit_test(budget_exhaustion_is_an_error),
		cmocka_unit_test(zap_all_then_run_again),
		cmocka_unit_test(mmio_generation_bump_and_wrap),
		cmocka_unit_test(share_then_cow),
		cmocka_unit_test(balloon_and_reset),
		cmocka_unit_test(handler_sees_writes_after_register),
		cmocka_unit_test(moved_page_is_followed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
