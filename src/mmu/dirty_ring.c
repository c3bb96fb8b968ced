/* The per-vCPU dirty ring (KVM's): the vCPU pushes every page its writes
 * make dirty (dirty_log.c), a consumer on any thread harvests entries and
 * later resets them, which makes their pages clean and write-protected
 * again. Pushes and harvests happen under the VM lock, so the ring needs
 * no lock of its own; a full ring makes the vCPU's access return
 * MV_VCPU_RING_FULL before it changes anything. */
#include <stdlib.h>

#include "mmu/shadow.h"

int mv_vcpu_dirty_ring_enable(struct mv_vcpu *v, uint32_t entries)
{
	struct mv_dirty_entry *e;
	int rc = 0;

	if (!v || entries < 16 || entries > 65536 || (entries & (entries - 1)))
		return -MV_EINVAL;
	e = calloc(entries, sizeof(*e));
	if (!e)
		return -MV_ENOMEM;
	mv_vm_lock(v->vm);
	if (v->ring.e)
		rc = -MV_EEXIST;
	else
		v->ring = (struct dirty_ring){ .e = e, .size = entries };
	mv_vm_unlock(v->vm);
	if (rc)
		free(e);
	return rc;
}

int mv_vcpu_dirty_ring_harvest(struct mv_vcpu *v, struct mv_dirty_entry *out,
			       uint32_t max, uint32_t *n)
{
	struct dirty_ring *r;
	uint32_t k = 0;

	if (!v || !n || (!out && max))
		return -MV_EINVAL;
	mv_vm_lock(v->vm);
	r = &v->ring;
	while (r->e && k < max && r->harvested != r->pushed)
		out[k++] = r->e[r->harvested++ & (r->size - 1)];
	mv_vm_unlock(v->vm);
	*n = k;
	return v->ring.e ? 0 : -MV_ESTATE;
}

int mv_vcpu_dirty_ring_reset(struct mv_vcpu *v, uint32_t *reset)
{
	struct mv_mmu *m;
	struct dirty_ring *r;
	uint32_t k = 0;

	if (!v)
		return -MV_EINVAL;
	m = v->mmu;
	mv_vm_lock(v->vm);
	r = &v->ring;
	m->defer_commit = true;
	for (uint32_t i = r->reset; r->e && i != r->harvested; i++) {
		const struct mv_dirty_entry *e = &r->e[i & (r->size - 1)];

		if (m->slots[e->slot].used)
			dirty_protect(m, m->slots[e->slot].gfn + e->offset);
	}
	m->defer_commit = false;
	sp_commit_zap(m);
	for (; r->e && r->reset != r->harvested; r->reset++, k++) {
		const struct mv_dirty_entry *e = &r->e[r->reset & (r->size - 1)];
		struct dirty_slot *s = &m->slots[e->slot];

		if (s->used && e->offset < s->count)
			s->bits[e->offset / 64] &= ~(1ull << (e->offset % 64));
	}
	mv_vm_unlock(v->vm);
	if (reset)
		*reset = k;
	return v->ring.e ? 0 : -MV_ESTATE;
}
