/* Inspection of a vCPU's shadow tables: every leaf under its current root
 * in ascending linear-address order, or the leaf of one address, each
 * described from the shadow alone (the frame a leaf maps comes from its
 * shadow page, not from a guest walk). For `memvisor walk --shadow` and
 * for tests that check what the shadow holds. */
#include <string.h>

#include "mmu/shadow.h"

/* The shadow pages and slots on the path to a leaf, by level. */
struct path {
	const struct sp *sp[6];
	unsigned slot[6];
};

static uint64_t canonical(const struct mv_vcpu *v, uint64_t va)
{
	unsigned bits = v->pg.mode == MV_PAGING_LONG5 ? 57
		      : v->pg.mode == MV_PAGING_LONG4 ? 48 : 32;

	if (bits == 32)
		return va & UINT32_MAX;
	return (uint64_t)((int64_t)(va << (64 - bits)) >> (64 - bits));
}

static unsigned entry_size(const struct mv_vcpu *v)
{
	return v->pg.mode == MV_PAGING_LEGACY ? 4 : 8;
}

/* Where the guest's leaf entry lives: the guest table shadowed by the
 * level-1 page, or, for a large guest page (split into direct shadow
 * pages), the table of the indirect page above the topmost direct one. */
static void guest_entry(const struct mv_vcpu *v, const struct path *p,
			unsigned top_direct, struct mv_shadow_leaf *l)
{
	bool legacy = v->pg.mode == MV_PAGING_LEGACY;
	const struct sp *sp = p->sp[top_direct + 1];
	unsigned slot = p->slot[top_direct + 1], index;

	if (v->pg.mode == MV_PAGING_OFF)
		return;  /* no guest tables */
	if (!top_direct) {
		sp = p->sp[1];
		slot = p->slot[1];
		index = legacy ? sp->role.quadrant * SPTES + slot : slot;
		l->page_size = MV_PAGE_SIZE;
		l->above_perm = sp->role.access;
	} else {
		/* 32-bit: a 4 MiB guest PDE is two 2 MiB shadow PDEs */
		index = legacy ? sp->role.quadrant * 256 + slot / 2 : slot;
		l->page_size = legacy ? 4ull << 20
				      : (uint64_t)MV_PAGE_SIZE << (9 * top_direct);
		l->above_perm = sp->role.access;
	}
	l->entry_size = entry_size(v);
	l->entry_gpa = (sp->gfn << MV_PAGE_SHIFT) + index * l->entry_size;
}

static void describe(const struct mv_vcpu *v, const struct path *p,
		     unsigned levels, uint64_t va, uint64_t e,
		     struct mv_shadow_leaf *l)
{
	const struct sp *leaf = p->sp[1];
	unsigned top_direct = 0;

	for (unsigned lv = 1; lv < levels; lv++)
		if (p->sp[lv]->role.direct)
			top_direct = lv;
	memset(l, 0, sizeof(*l));
	l->va = canonical(v, va);
	l->page_size = MV_PAGE_SIZE;
	l->mmio = spte_is_mmio(e);
	l->gpa = (l->mmio ? spte_mmio_gfn(e) : sp_leaf_gfn(leaf, p->slot[1]))
		 << MV_PAGE_SHIFT;
	l->host_id = l->mmio ? 0 : spte_host_id(e);
	l->perm = spte_perm(e);
	l->global = !l->mmio && (e & SPTE_G);
	l->writable = !l->mmio && (e & SPTE_SW_WRITABLE);
	l->dirty = !l->mmio && (e & SPTE_D);
	guest_entry(v, p, top_direct, l);
}

static unsigned shift_of(unsigned level)
{
	return MV_PAGE_SHIFT + 9 * (level - 1);
}

struct dump {
	const struct mv_vcpu *v;
	unsigned levels;
	mv_shadow_leaf_fn fn;
	void *opaque;
	struct path path;
};

static int visit(struct dump *d, const struct sp *sp, unsigned level,
		 uint64_t base)
{
	unsigned n = sp->role.special ? 4 : SPTES;

	d->path.sp[level] = sp;
	for (unsigned slot = 0; slot < n; slot++) {
		uint64_t e = spte_load(&sp->spt[slot]);
		uint64_t va = base | (uint64_t)slot << shift_of(level);
		struct mv_shadow_leaf l;
		int rc;

		d->path.slot[level] = slot;
		if (level == 1) {
			if (!(e & SPTE_P) && !spte_is_mmio(e))
				continue;
			describe(d->v, &d->path, d->levels, va, e, &l);
			rc = d->fn(d->opaque, &l);
		} else {
			if (!(e & SPTE_P))
				continue;
			rc = visit(d, sp_of_link(d->v->mmu, e), level - 1, va);
		}
		if (rc)
			return rc;
	}
	return 0;
}

int mv_vcpu_shadow_dump(struct mv_vcpu *v, mv_shadow_leaf_fn fn, void *opaque)
{
	struct dump d = { .v = v, .fn = fn, .opaque = opaque };
	int rc;

	if (!v || !fn)
		return -MV_EINVAL;
	mv_vm_lock(v->vm);
	if (!root_current(v)) {
		rc = -MV_ESTATE;
	} else {
		d.levels = v->root.sp->role.level;
		rc = visit(&d, v->root.sp, d.levels, 0);
	}
	mv_vm_unlock(v->vm);
	return rc;
}

int mv_vcpu_shadow_leaf(struct mv_vcpu *v, uint64_t va,
			struct mv_shadow_leaf *out)
{
	struct path p;
	int rc = 0;

	if (!v || !out)
		return -MV_EINVAL;
	va &= v->tlb.va_mask;
	mv_vm_lock(v->vm);
	if (!root_current(v)) {
		rc = -MV_ESTATE;
		goto out;
	}
	const struct sp *sp = v->root.sp;
	unsigned levels = sp->role.level;

	for (unsigned level = levels;; level--) {
		unsigned slot = (va >> shift_of(level)) & (SPTES - 1);
		uint64_t e = spte_load(&sp->spt[slot]);

		p.sp[level] = sp;
		p.slot[level] = slot;
		if (level == 1) {
			if ((e & SPTE_P) || spte_is_mmio(e)) {
				describe(v, &p, levels,
					 va & ~(uint64_t)(MV_PAGE_SIZE - 1), e,
					 out);
				rc = 1;
			}
			break;
		}
		if (!(e & SPTE_P))
			break;
		sp = sp_of_link(v->mmu, e);
	}
out:
	mv_vm_unlock(v->vm);
	return rc;
}
