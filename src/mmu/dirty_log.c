/* Dirty logging (include/memvisor/dirty.h). A clean logged page is
 * write-tracked (track.c), so every write to it reaches the MMU first: a
 * vCPU's write fault (fault.c), the track hook for phys writes and
 * populate, the walker's accessed/dirty updates (the gmem wrapper here),
 * reset and balloon (notify.c). Marking it dirty drops the tracking (unless
 * it is a guest table), so later writes go at full speed. A clear
 * write-protects first, flushes once, and only then clears the bits: no
 * write can land between the clear of a bit and its protection. */
#include <stdlib.h>
#include <string.h>

#include "mmu/shadow.h"

#define GFN_LIMIT (1ull << 40)

static struct dirty_slot *slot_of(const struct mv_mmu *m, uint64_t gfn)
{
	for (uint32_t i = 0; m->nslots && i < MV_DIRTY_SLOTS; i++) {
		const struct dirty_slot *s = &m->slots[i];

		if (s->used && gfn >= s->gfn && gfn - s->gfn < s->count)
			return (struct dirty_slot *)s;
	}
	return NULL;
}

static bool bit(const uint64_t *b, uint64_t i)
{
	return (b[i / 64] >> (i % 64)) & 1;
}

bool dirty_log_clean(const struct mv_mmu *m, uint64_t gfn)
{
	const struct dirty_slot *s = m->nslots ? slot_of(m, gfn) : NULL;

	return s && !bit(s->bits, gfn - s->gfn);
}

static int ring_push(struct mv_vcpu *v, uint32_t slot, uint64_t off)
{
	struct dirty_ring *r = &v->ring;

	if (!r->e)
		return 0;
	if (r->pushed - r->reset == r->size)
		return MV_VCPU_RING_FULL;
	r->e[r->pushed++ & (r->size - 1)] =
		(struct mv_dirty_entry){ .slot = slot, .offset = off };
	return 0;
}

/* @gfn is written: mark it dirty (and in @v's ring when @v has one). */
int dirty_log_mark(struct mv_mmu *m, uint64_t gfn, struct mv_vcpu *v)
{
	struct dirty_slot *s = m->nslots ? slot_of(m, gfn) : NULL;
	uint64_t i;
	int rc;

	if (!s || bit(s->bits, i = gfn - s->gfn))
		return 0;
	rc = v ? ring_push(v, (uint32_t)(s - m->slots), i) : 0;
	if (rc)
		return rc;
	s->bits[i / 64] |= 1ull << (i % 64);
	track_update(m, gfn);
	return 0;
}

void dirty_log_mark_range(struct mv_mmu *m, uint64_t gfn, uint64_t count)
{
	for (uint32_t k = 0; m->nslots && k < MV_DIRTY_SLOTS; k++) {
		struct dirty_slot *s = &m->slots[k];
		uint64_t lo = gfn > s->gfn ? gfn : s->gfn;
		uint64_t end = count > UINT64_MAX - gfn ? UINT64_MAX
							: gfn + count;
		uint64_t hi = end < s->gfn + s->count ? end : s->gfn + s->count;

		for (uint64_t g = lo; s->used && g < hi; g++)
			dirty_log_mark(m, g, NULL);
	}
}

/* Write-protect @gfn for a coming clear; the caller flushes once. */
void dirty_protect(struct mv_mmu *m, uint64_t gfn)
{
	if (mv_vm_page_tracked(m->vm, gfn) == 0 &&
	    mv_vm_track_write(m->vm, gfn, 1) == 0)
		m->tracked++;
}

/* The walker's accessed/dirty updates write guest tables in place: each
 * one is logged. v->gm takes the VM lock per access; v->gm_locked is the
 * shadow fault's, which holds it. */
static int gm_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *val)
{
	struct mv_vcpu *v = opaque;

	return v->vm_gm.read(v->vm_gm.opaque, gpa, size, val);
}

static int gm_cmpxchg(void *opaque, uint64_t gpa, unsigned size, uint64_t old,
		      uint64_t val)
{
	struct mv_vcpu *v = opaque;
	int rc = v->vm_gm.cmpxchg(v->vm_gm.opaque, gpa, size, old, val);

	if (rc == MV_GMEM_OK && v->mmu->nslots) {
		mv_vm_lock(v->vm);
		dirty_log_mark(v->mmu, gpa >> MV_PAGE_SHIFT, NULL);
		mv_vm_unlock(v->vm);
	}
	return rc;
}

static int gml_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *val)
{
	struct mv_vcpu *v = opaque;

	return v->vm_gm_locked.read(v->vm_gm_locked.opaque, gpa, size, val);
}

static int gml_cmpxchg(void *opaque, uint64_t gpa, unsigned size,
		       uint64_t old, uint64_t val)
{
	struct mv_vcpu *v = opaque;
	int rc = v->vm_gm_locked.cmpxchg(v->vm_gm_locked.opaque, gpa, size,
					 old, val);

	if (rc == MV_GMEM_OK && v->mmu->nslots)
		dirty_log_mark(v->mmu, gpa >> MV_PAGE_SHIFT, NULL);
	return rc;
}

void dirty_gmem_init(struct mv_vcpu *v)
{
	gmem_vm_init_locked(&v->vm_gm_locked, v->vm);
	v->gm = (struct mv_gmem){ .read = gm_read, .cmpxchg = gm_cmpxchg,
				  .opaque = v };
	v->gm_locked = (struct mv_gmem){ .read = gml_read,
					 .cmpxchg = gml_cmpxchg, .opaque = v };
}

/* ---- the calls of dirty.h ------------------------------------------------ */

static void protect_slot(struct mv_mmu *m, const struct dirty_slot *s);

/* A new slot, protected (one flush) unless it starts dirty. */
int dirty_slot_add(struct mv_mmu *m, uint64_t gfn, uint64_t count,
		   unsigned flags, uint32_t *out)
{
	uint32_t k;

	for (uint32_t i = 0; i < MV_DIRTY_SLOTS; i++) {
		const struct dirty_slot *s = &m->slots[i];

		if (s->used && gfn < s->gfn + s->count && s->gfn < gfn + count)
			return -MV_EEXIST;
	}
	for (k = 0; k < MV_DIRTY_SLOTS && m->slots[k].used; k++)
		;
	if (k == MV_DIRTY_SLOTS)
		return -MV_ELIMIT;
	uint64_t words = (count + 63) / 64;
	uint64_t *bits = calloc(words, sizeof(*bits));

	if (!bits)
		return -MV_ENOMEM;
	if (flags & MV_DIRTY_INITIALLY_SET) {
		memset(bits, 0xff, words * sizeof(*bits));
		if (count % 64)
			bits[words - 1] = (1ull << (count % 64)) - 1;
	}
	m->slots[k] = (struct dirty_slot){ gfn, count, bits, true };
	m->nslots++;
	*out = k;
	protect_slot(m, &m->slots[k]);
	return 0;
}

void dirty_slot_remove(struct mv_mmu *m, uint32_t slot)
{
	struct dirty_slot s = m->slots[slot];

	m->slots[slot].used = false;
	m->slots[slot].bits = NULL;
	m->nslots--;
	for (uint64_t i = 0; i < s.count; i++)
		if (!bit(s.bits, i))
			track_update(m, s.gfn + i);
	free(s.bits);
}

/* Protect every page of a new clean slot, with one flush. */
static void protect_slot(struct mv_mmu *m, const struct dirty_slot *s)
{
	m->defer_commit = true;
	for (uint64_t i = 0; i < s->count; i++)
		if (!bit(s->bits, i))
			dirty_protect(m, s->gfn + i);
	m->defer_commit = false;
	sp_commit_zap(m);
}

int mv_dirty_log_enable(struct mv_vm *vm, uint64_t gfn, uint64_t count,
			unsigned flags, uint32_t *slot)
{
	struct mv_mmu *m;
	int rc;

	if (!vm || !slot || !count || (flags & ~MV_DIRTY_INITIALLY_SET))
		return -MV_EINVAL;
	if (gfn >= GFN_LIMIT || count > GFN_LIMIT - gfn)
		return -MV_ERANGE;
	rc = mmu_get(vm, &m);
	if (rc)
		return rc;
	mv_vm_lock(vm);
	rc = dirty_slot_add(m, gfn, count, flags, slot);
	mv_vm_unlock(vm);
	return rc;
}

int mv_dirty_log_disable(struct mv_vm *vm, uint32_t slot)
{
	struct mv_mmu *m;
	int rc = -MV_ENOENT;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	m = mmu_of(vm);
	if (m && slot < MV_DIRTY_SLOTS && m->slots[slot].used) {
		dirty_slot_remove(m, slot);
		rc = 0;
	}
	mv_vm_unlock(vm);
	return rc;
}

/* The slot holding all of [gfn, gfn + count), or NULL. */
struct dirty_slot *dirty_span_slot(struct mv_mmu *m, uint64_t gfn,
				   uint64_t count)
{
	struct dirty_slot *s = m ? slot_of(m, gfn) : NULL;

	if (!s || count > s->count - (gfn - s->gfn))
		return NULL;
	return s;
}

/* 64 bits of @b from bit @off (bits past the array's end are not read
 * when the caller keeps @off + 64 within it, or masks them off). */
static uint64_t bits_at(const uint64_t *b, uint64_t off, uint64_t nbits)
{
	uint64_t w = b[off / 64] >> (off % 64);

	if (off % 64 && (off / 64 + 1) * 64 < nbits)
		w |= b[off / 64 + 1] << (64 - off % 64);
	return w;
}

static uint64_t low_mask(uint64_t n)
{
	return n >= 64 ? UINT64_MAX : (1ull << n) - 1;
}

int mv_dirty_log_get(struct mv_vm *vm, uint64_t gfn, uint64_t count,
		     uint64_t *bitmap)
{
	struct dirty_slot *s;
	int rc = 0;

	if (!vm || !bitmap || !count)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	s = dirty_span_slot(mmu_of(vm), gfn, count);
	if (!s)
		rc = -MV_ERANGE;
	for (uint64_t i = 0; !rc && i < count; i += 64)
		bitmap[i / 64] = bits_at(s->bits, gfn - s->gfn + i, s->count) &
				 low_mask(count - i);
	mv_vm_unlock(vm);
	return rc;
}

/* Make the dirty pages of [first, first + count) of @s that @mask selects
 * (NULL: all) clean: protect them all, flush once, then clear their bits.
 * Word at a time: a slot of a GiB with 1% dirty touches 4096 words. */
uint64_t dirty_clean_pages(struct mv_mmu *m, struct dirty_slot *s,
			   uint64_t first, uint64_t count,
			   const uint64_t *mask)
{
	uint64_t n = 0;

	m->defer_commit = true;
	for (uint64_t i = 0; i < count; i += 64) {
		uint64_t sel = bits_at(s->bits, first + i, s->count) &
			       (mask ? mask[i / 64] : UINT64_MAX) &
			       low_mask(count - i);

		for (; sel; sel &= sel - 1)
			dirty_protect(m, s->gfn + first + i +
					    (uint64_t)__builtin_ctzll(sel));
	}
	m->defer_commit = false;
	sp_commit_zap(m);
	for (uint64_t i = 0; i < count; i += 64) {
		uint64_t sel = bits_at(s->bits, first + i, s->count) &
			       (mask ? mask[i / 64] : UINT64_MAX) &
			       low_mask(count - i);

		for (; sel; sel &= sel - 1) {
			uint64_t k = first + i + (uint64_t)__builtin_ctzll(sel);

			s->bits[k / 64] &= ~(1ull << (k % 64));
			n++;
		}
	}
	return n;
}

int mv_dirty_log_clear(struct mv_vm *vm, uint64_t gfn, uint64_t count,
		       const uint64_t *mask, uint64_t *cleared)
{
	struct dirty_slot *s;
	uint64_t n = 0;

	if (!vm || !mask || !count)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	s = dirty_span_slot(mmu_of(vm), gfn, count);
	if (s)
		n = dirty_clean_pages(mmu_of(vm), s, gfn - s->gfn, count,
				      mask);
	mv_vm_unlock(vm);
	if (!s)
		return -MV_ERANGE;
	if (cleared)
		*cleared = n;
	return 0;
}
