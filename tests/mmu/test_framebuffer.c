/* Framebuffer tracking from shadow D bits (seed 003): exact pages after
 * guest writes, a second writable mapping, the back-off to dirty logging
 * when the guest remaps the framebuffer and the way back, the dirty rows,
 * and a randomized check against the guest's real writes. */
#include <stdlib.h>

#include "vcpu_fixture.h"
#include <memvisor/dirty.h>

#define FB_VA 0xffff888000000000ull
#define ALIAS_VA 0x00007f0000000000ull
#define NP 16
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

struct fbt {
	struct vf f;
	uint64_t cr3, gfns[NP], leaf[NP];
	uint32_t id;
};

/* Frames in two runs, the second one backwards. */
static void fbt_init(struct fbt *t)
{
	struct mv_fb_config c;

	t->cr3 = vf_setup(&t->f);
	for (unsigned i = 0; i < NP; i++) {
		t->gfns[i] = i < NP / 2 ? 0x200 + i : 0x400 - i;
		t->leaf[i] = vf_map4k(&t->f, t->cr3, FB_VA + i * 0x1000ull,
				      t->gfns[i] << 12, P_W_U);
	}
	vf_long_mode(&t->f, t->cr3);
	c = (struct mv_fb_config){ .gfns = t->gfns, .npages = NP,
				   .va = FB_VA, .vcpu = t->f.cpu };
	assert_int_equal(mv_fb_register(t->f.vm, &c, &t->id), 0);
}

static uint64_t harvest(struct fbt *t, uint32_t *how)
{
	uint64_t b = 0;
	struct mv_fb_result r;

	assert_int_equal(mv_fb_harvest(t->f.vm, t->id, &b, &r), 0);
	assert_int_equal(r.dirty_pages, __builtin_popcountll(b));
	if (how)
		*how = r.how;
	return b;
}

static void draw(struct fbt *t, unsigned page, uint64_t val)
{
	assert_int_equal(mv_vcpu_write(t->f.cpu, FB_VA + page * 0x1000ull + 64,
				       &val, 8, 0, NULL), 0);
}

static void exact_pages_from_d_bits(void **state)
{
	struct fbt t;
	uint32_t how;

	(void)state;
	fbt_init(&t);
	assert_int_equal(harvest(&t, &how), (1ull << NP) - 1);  /* unknown */
	draw(&t, 3, 1);
	draw(&t, 12, 1);
	assert_int_equal(harvest(&t, &how), 1ull << 3 | 1ull << 12);
	assert_int_equal(how, MV_FB_SHADOW);
	assert_int_equal(harvest(&t, &how), 0);
	for (unsigned k = 0; k < 3; k++) {  /* again: D is set again */
		draw(&t, 3, k);
		assert_int_equal(harvest(&t, NULL), 1ull << 3);
	}
	uint64_t v;  /* reads do not dirty */

	assert_int_equal(mv_vcpu_read(t.f.cpu, FB_VA + 5 * 0x1000ull, &v, 8, 0,
				      NULL), 0);
	assert_int_equal(harvest(&t, NULL), 0);
	vf_fini(&t.f);
}

static void second_writable_mapping_counts(void **state)
{
	struct fbt t;
	uint64_t v = 1;

	(void)state;
	fbt_init(&t);
	vf_map4k(&t.f, t.cr3, ALIAS_VA, t.gfns[5] << 12, P_W_U);
	harvest(&t, NULL);
	draw(&t, 5, 1);  /* both mappings writable in the shadow */
	assert_int_equal(mv_vcpu_write(t.f.cpu, ALIAS_VA, &v, 8, 0, NULL), 0);
	assert_int_equal(harvest(&t, NULL), 1ull << 5);
	assert_int_equal(harvest(&t, NULL), 1ull << 5);  /* still aliased */
	vf_fini(&t.f);
}

static void remap_backs_off_and_returns(void **state)
{
	struct fbt t;
	uint32_t how;
	uint64_t v;

	(void)state;
	fbt_init(&t);
	harvest(&t, NULL);
	/* the guest points page 2 of its mapping elsewhere */
	vf_put(&t.f, t.leaf[2], 0x300000 | P_W_U);
	assert_int_equal(mv_vcpu_read(t.f.cpu, FB_VA + 2 * 0x1000ull, &v, 8, 0,
				      NULL), 0);
	assert_int_equal(harvest(&t, &how), (1ull << NP) - 1);
	assert_int_equal(how, MV_FB_LOGGED);
	draw(&t, 9, 5);
	/* a write to the frame through phys is seen while logging */
	assert_int_equal(mv_vm_phys_write(t.f.vm, t.gfns[2] << 12, &v, 8), 0);
	assert_int_equal(harvest(&t, &how), 1ull << 9 | 1ull << 2);
	assert_int_equal(how, MV_FB_LOGGED);
	/* the mapping comes back: shadow D bits again */
	vf_put(&t.f, t.leaf[2], t.gfns[2] << 12 | P_W_U);
	draw(&t, 2, 6);
	assert_int_equal(harvest(&t, &how), 1ull << 2);
	assert_int_equal(how, MV_FB_LOGGED);
	draw(&t, 4, 6);
	assert_int_equal(harvest(&t, &how), 1ull << 4);
	assert_int_equal(how, MV_FB_SHADOW);
	vf_fini(&t.f);
}

static void dirty_rows(void **state)
{
	uint64_t b = 1ull << 3, first, last;

	(void)state;
	assert_int_equal(mv_fb_dirty_rows(&b, NP, 5120, &first, &last), 0);
	assert_int_equal(first, 12288 / 5120);
	assert_int_equal(last, 16383 / 5120);
	b = 1ull << 0 | 1ull << 15;
	assert_int_equal(mv_fb_dirty_rows(&b, NP, 4096, &first, &last), 0);
	assert_int_equal(first, 0);
	assert_int_equal(last, 15);
	b = 0;
	assert_int_equal(mv_fb_dirty_rows(&b, NP, 4096, &first, &last),
			 -MV_ENOENT);
	assert_int_equal(mv_fb_dirty_rows(&b, NP, 0, &first, &last),
			 -MV_EINVAL);
}

/* Random guest writes against byte snapshots of the frames. */
static void matches_real_writes(void **state)
{
	static uint8_t snap[NP][4096], now[4096];
	struct fbt t;
	unsigned seed = 99;
	uint64_t fp = 0;

	(void)state;
	fbt_init(&t);
	for (unsigned round = 0; round < 300; round++) {
		uint64_t b = harvest(&t, NULL);

		for (unsigned p = 0; p < NP; p++) {
			assert_int_equal(mv_vm_phys_read(t.f.vm, t.gfns[p] << 12,
							 now, 4096), 0);
			bool changed = memcmp(now, snap[p], 4096) != 0;

			if (changed && !((b >> p) & 1))
				fail_msg("round %u: page %u missed", round, p);
			fp += !changed && ((b >> p) & 1);
			memcpy(snap[p], now, 4096);
		}
		for (unsigned w = rand_r(&seed) % 6; w; w--)
			draw(&t, rand_r(&seed) % NP, rand_r(&seed) | 1ull);
	}
	print_message("false positives: %lu\n", (unsigned long)fp);
	vf_fini(&t.f);
}

static void bad_input(void **state)
{
	struct fbt t;
	struct mv_fb_config c;
	uint64_t g[2] = { 0x200, 0x200 }, b;
	uint32_t id;

	(void)state;
	fbt_init(&t);
	c = (struct mv_fb_config){ .gfns = g, .npages = 2, .va = FB_VA,
				   .vcpu = t.f.cpu };
	assert_int_equal(mv_fb_register(t.f.vm, &c, &id), -MV_EINVAL);
	c.npages = 0;
	assert_int_equal(mv_fb_register(t.f.vm, &c, &id), -MV_EINVAL);
	c.npages = 1;
	c.va = FB_VA + 1;
	assert_int_equal(mv_fb_register(t.f.vm, &c, &id), -MV_EINVAL);
	assert_int_equal(mv_fb_harvest(t.f.vm, 3, &b, NULL), -MV_ENOENT);
	assert_int_equal(mv_fb_unregister(t.f.vm, t.id), 0);
	assert_int_equal(mv_fb_unregister(t.f.vm, t.id), -MV_ENOENT);
	vf_fini(&t.f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exact_pages_from_d_bits),
		cmocka_unit_test(second_writable_mapping_counts),
		cmocka_unit_test(remap_backs_off_and_returns),
		cmocka_unit_test(dirty_rows),
		cmocka_unit_test(matches_real_writes),
		cmocka_unit_test(bad_input),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
