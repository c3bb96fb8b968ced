/* Framebuffer dirty ranges from shadow D bits (seed 003, Xen's LFB
 * tracking): instead of keeping a copy of the framebuffer and comparing,
 * walk the shadow leaves of the guest's linear mapping, take and clear
 * their D bits (each one an atomic word: vCPUs keep running), and flush
 * every TLB once so that D gets set again by the next write. The seed's
 * cautions are kept: the frames are not assumed contiguous; a leaf that
 * points elsewhere backs off (here to dirty logging of the frames); a
 * frame mapped writable more than once counts as dirty; a leaf of the
 * framebuffer made writable, or torn down with its D bit set, marks its
 * page. The D bits are taken from every leaf of a frame through the
 * reverse map, so an alias in another address space is seen too. */
#include <stdlib.h>
#include <string.h>

#include "mmu/shadow.h"

#define FB_PAGES_MAX (1u << 20)

static void set_bit(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static int cmp_pair(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	return x[0] < y[0] ? -1 : x[0] > y[0];
}

/* Page index of @gfn in @fb, or -1. */
static int64_t fb_page(const struct fb *fb, uint64_t gfn)
{
	uint32_t lo = 0, hi = fb->npages;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (fb->index[mid][0] < gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < fb->npages && fb->index[lo][0] == gfn
		       ? (int64_t)fb->index[lo][1] : -1;
}

/* A writable leaf mapping @gfn was made, or a dirty one torn down. */
void fb_note(struct mv_mmu *m, uint64_t gfn)
{
	for (uint32_t i = 0; i < MV_FB_MAX; i++) {
		struct fb *fb = &m->fbs[i];
		int64_t p = fb->used ? fb_page(fb, gfn) : -1;

		if (p >= 0)
			set_bit(fb->pending, (uint64_t)p);
	}
}

static void fb_clear(struct fb *fb)
{
	free(fb->gfns);
	free(fb->index);
	free(fb->pending);
	memset(fb, 0, sizeof(*fb));
}

static void unlog(struct mv_mmu *m, struct fb *fb)
{
	for (uint32_t r = 0; r < fb->nruns; r++)
		dirty_slot_remove(m, fb->runs[r]);
	fb->nruns = 0;
	fb->logged = false;
}

void fb_free_all(struct mv_mmu *m)
{
	for (uint32_t i = 0; i < MV_FB_MAX; i++)
		fb_clear(&m->fbs[i]);
}

static int fb_fill(struct fb *fb, const struct mv_fb_config *c)
{
	size_t words = (c->npages + 63) / 64;

	fb->gfns = malloc(c->npages * sizeof(*fb->gfns));
	fb->index = malloc(c->npages * sizeof(*fb->index));
	fb->pending = calloc(words, sizeof(*fb->pending));
	if (!fb->gfns || !fb->index || !fb->pending)
		return -MV_ENOMEM;
	memcpy(fb->gfns, c->gfns, c->npages * sizeof(*fb->gfns));
	for (uint32_t i = 0; i < c->npages; i++) {
		fb->index[i][0] = c->gfns[i];
		fb->index[i][1] = i;
	}
	qsort(fb->index, c->npages, sizeof(*fb->index), cmp_pair);
	for (uint32_t i = 1; i < c->npages; i++)
		if (fb->index[i][0] == fb->index[i - 1][0])
			return -MV_EINVAL;
	fb->npages = c->npages;
	fb->va = c->va;
	fb->vcpu = c->vcpu;
	/* every page counts as dirty at first: nothing is known yet */
	memset(fb->pending, 0xff, words * sizeof(*fb->pending));
	fb->used = true;
	return 0;
}

int mv_fb_register(struct mv_vm *vm, const struct mv_fb_config *c,
		   uint32_t *id)
{
	struct mv_mmu *m;
	uint32_t k;
	int rc;

	if (!vm || !c || !id || !c->gfns || !c->npages ||
	    c->npages > FB_PAGES_MAX || (c->va & (MV_PAGE_SIZE - 1)) ||
	    !c->vcpu || c->vcpu->vm != vm)
		return -MV_EINVAL;
	rc = mmu_get(vm, &m);
	if (rc)
		return rc;
	mv_vm_lock(vm);
	for (k = 0; k < MV_FB_MAX && m->fbs[k].used; k++)
		;
	rc = k == MV_FB_MAX ? -MV_ELIMIT : fb_fill(&m->fbs[k], c);
	if (rc && k < MV_FB_MAX)
		fb_clear(&m->fbs[k]);
	if (!rc) {
		m->nfb++;
		*id = k;
	}
	mv_vm_unlock(vm);
	return rc;
}

static struct fb *fb_get(struct mv_mmu *m, uint32_t id)
{
	return m && id < MV_FB_MAX && m->fbs[id].used ? &m->fbs[id] : NULL;
}

int mv_fb_unregister(struct mv_vm *vm, uint32_t id)
{
	struct fb *fb;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	fb = fb_get(mmu_of(vm), id);
	if (fb) {
		unlog(mmu_of(vm), fb);
		fb_clear(fb);
		mmu_of(vm)->nfb--;
	}
	mv_vm_unlock(vm);
	return fb ? 0 : -MV_ENOENT;
}

/* Is every present leaf of the linear mapping the registered frame? The
 * vCPU's root is walked even when its registers moved on since: it is
 * pinned, the VM lock keeps the vCPU from changing it, and its leaves'
 * D bits are still what was written through them. A leaf of a frame made
 * in any other root marks the frame's page (fb_note). */
static bool mapping_as_registered(struct fb *fb)
{
	struct mv_vcpu *v = fb->vcpu;
	struct shadow_leaf l;

	for (uint32_t i = 0; i < fb->npages; i++) {
		uint64_t va = (fb->va + (uint64_t)i * MV_PAGE_SIZE) &
			      v->tlb.va_mask;

		shadow_walk(v, va, &l);
		if (l.present == 1 &&
		    sp_leaf_gfn(l.sp, (va >> MV_PAGE_SHIFT) & (SPTES - 1)) !=
			    fb->gfns[i])
			return false;
	}
	return true;
}

/* Take and clear the D bit of every leaf that maps a frame, in whatever
 * root (the linear mapping's and any alias), through the reverse map; a
 * frame mapped writable more than once counts as dirty. With @bitmap NULL
 * the bits are only cleared (the dirty log answered this time). */
static void harvest_d(struct mv_mmu *m, struct fb *fb, uint64_t *bitmap)
{
	for (uint32_t i = 0; i < fb->npages; i++) {
		uint64_t d = rmap_take_dirty(m, fb->gfns[i]);

		if (bitmap && (d || rmap_writable_count(m, fb->gfns[i]) > 1))
			set_bit(bitmap, i);
	}
	m->flush_pending = true;
}

/* Dirty logging of the frames, one slot per run of contiguous frames. */
static bool log_frames(struct mv_mmu *m, struct fb *fb)
{
	for (uint32_t i = 0, j; i < fb->npages; i = j) {
		for (j = i + 1; j < fb->npages &&
				fb->gfns[j] == fb->gfns[j - 1] + 1; j++)
			;
		if (fb->nruns == MV_DIRTY_SLOTS ||
		    dirty_slot_add(m, fb->gfns[i], j - i, 0,
				   &fb->runs[fb->nruns])) {
			unlog(m, fb);
			return false;
		}
		fb->nruns++;
	}
	fb->logged = true;
	return true;
}

static void harvest_log(struct mv_mmu *m, struct fb *fb, uint64_t *bitmap)
{
	for (uint32_t r = 0; r < fb->nruns; r++) {
		struct dirty_slot *s = &m->slots[fb->runs[r]];

		for (uint64_t i = 0; i < s->count; i++)
			if ((s->bits[i / 64] >> (i % 64)) & 1)
				set_bit(bitmap, (uint64_t)fb_page(fb,
								  s->gfn + i));
		dirty_clean_pages(m, s, 0, s->count, NULL);
	}
}

static uint32_t count_bits(const uint64_t *b, uint32_t n)
{
	uint32_t c = 0;

	for (uint32_t i = 0; i < (n + 63) / 64; i++)
		c += (uint32_t)__builtin_popcountll(b[i]);
	return c;
}

static enum mv_fb_how harvest(struct mv_mmu *m, struct fb *fb,
			      uint64_t *bitmap)
{
	bool sane = mapping_as_registered(fb);

	if (fb->logged) {
		harvest_log(m, fb, bitmap);
		harvest_d(m, fb, NULL);  /* the log saw those writes */
		if (sane)
			unlog(m, fb);  /* D bits again from here on */
		return MV_FB_LOGGED;
	}
	if (sane) {
		harvest_d(m, fb, bitmap);
		return MV_FB_SHADOW;
	}
	memset(bitmap, 0xff, (fb->npages + 63) / 64 * 8);
	return log_frames(m, fb) ? MV_FB_LOGGED : MV_FB_ALL;
}

int mv_fb_harvest(struct mv_vm *vm, uint32_t id, uint64_t *bitmap,
		  struct mv_fb_result *res)
{
	struct mv_mmu *m;
	struct fb *fb;
	enum mv_fb_how how = MV_FB_SHADOW;

	if (!vm || !bitmap)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	m = mmu_of(vm);
	fb = fb_get(m, id);
	if (fb) {
		size_t words = (fb->npages + 63) / 64;

		memcpy(bitmap, fb->pending, words * 8);
		memset(fb->pending, 0, words * 8);
		how = harvest(m, fb, bitmap);
		if (fb->npages % 64)
			bitmap[words - 1] &= (1ull << (fb->npages % 64)) - 1;
		sp_commit_zap(m);  /* one flush: D is set again on write */
		if (res)
			*res = (struct mv_fb_result){ how,
				count_bits(bitmap, fb->npages) };
	}
	mv_vm_unlock(vm);
	return fb ? 0 : -MV_ENOENT;
}

int mv_fb_dirty_rows(const uint64_t *bitmap, uint32_t npages,
		     uint32_t stride, uint64_t *first, uint64_t *last)
{
	int64_t lo = -1, hi = -1;

	if (!bitmap || !stride || !first || !last)
		return -MV_EINVAL;
	for (uint32_t i = 0; i < npages; i++)
		if ((bitmap[i / 64] >> (i % 64)) & 1) {
			if (lo < 0)
				lo = i;
			hi = i;
		}
	if (lo < 0)
		return -MV_ENOENT;
	*first = (uint64_t)lo * MV_PAGE_SIZE / stride;
	*last = (((uint64_t)hi + 1) * MV_PAGE_SIZE - 1) / stride;
	return 0;
}
