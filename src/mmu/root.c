/* Shadow roots. A vCPU keeps its current root and ROOTS_CACHED previous
 * ones (KVM keeps 3), each pinned (root_count), so that a CR3 switch back
 * to a recent address space rebuilds nothing. Long-mode roots are the
 * shadows of the guest's top table, shared by every vCPU through the hash;
 * 32-bit modes (paging off, 32-bit, PAE) get a private 4-entry root whose
 * entries cover 1 GiB each: the PAE PDPTE registers, the four quadrants of
 * a 32-bit page directory, or identity for paging off. */
#include <string.h>

#include "mmu/shadow.h"

unsigned root_level(const struct mv_vcpu *v)
{
	switch (v->pg.mode) {
	case MV_PAGING_LONG5:
		return 5;
	case MV_PAGING_LONG4:
		return 4;
	default:
		return 3;
	}
}

/* The role every shadow page of this vCPU's address space starts from. */
union sp_role root_role(const struct mv_vcpu *v)
{
	union sp_role r = { .word = 0 };

	r.level = root_level(v);
	r.mode = v->pg.mode;
	r.access = MV_PERM_W | MV_PERM_U;
	r.direct = v->pg.mode == MV_PAGING_OFF;
	r.special = v->pg.mode < MV_PAGING_LONG4;
	r.nxe = (v->pg.sw & MV_PG_SW_NXE) != 0;
	r.pse = v->pg.mode == MV_PAGING_LEGACY &&
		(v->pg.regs.cr4 & MV_CR4_PSE);
	return r;
}

static uint64_t root_gfn(const struct mv_vcpu *v)
{
	return v->pg.mode == MV_PAGING_OFF ? 0 : v->pg.root >> MV_PAGE_SHIFT;
}

static bool root_matches(const struct mv_vcpu *v, const struct cached_root *c,
			 union sp_role role)
{
	if (!c->sp || c->sp->role.word != role.word ||
	    c->sp->gfn != root_gfn(v))
		return false;
	if (v->pg.mode == MV_PAGING_PAE)
		return c->cr3 == v->pg.root &&
		       !memcmp(c->pdpte, v->pg.pdpte, sizeof(c->pdpte));
	return true;
}

static void cached_put(struct mv_mmu *m, struct cached_root *c)
{
	if (c->sp)
		sp_root_put(m, c->sp);
	memset(c, 0, sizeof(*c));
}

void root_drop_all(struct mv_vcpu *v)
{
	cached_put(v->mmu, &v->root);
	for (unsigned i = 0; i < ROOTS_CACHED; i++)
		cached_put(v->mmu, &v->prev[i]);
}

/* Keep the current root among the previous ones (dropping the oldest). */
static void push_prev(struct mv_vcpu *v)
{
	if (!v->root.sp)
		return;
	cached_put(v->mmu, &v->prev[ROOTS_CACHED - 1]);
	memmove(&v->prev[1], &v->prev[0],
		(ROOTS_CACHED - 1) * sizeof(v->prev[0]));
	v->prev[0] = v->root;
	memset(&v->root, 0, sizeof(v->root));
}

static int root_make(struct mv_vcpu *v, union sp_role role)
{
	struct mv_mmu *m = v->mmu;
	struct sp *sp;
	int rc = sp_make_room(m, 1);

	if (!rc)
		rc = pool_ensure(m, 1);
	if (!rc)
		rc = sp_get(m, root_gfn(v), role, &sp);
	if (rc)
		return rc;
	sp->root_count++;
	v->root.sp = sp;
	v->root.cr3 = v->pg.root;
	memcpy(v->root.pdpte, v->pg.pdpte, sizeof(v->root.pdpte));
	return 0;
}

/* Under the VM lock: make v->root the valid root of the current registers,
 * from the cache when it is there. */
int root_load(struct mv_vcpu *v)
{
	struct mv_mmu *m = v->mmu;
	union sp_role role = root_role(v);

	if (v->root.sp && sp_valid(m, v->root.sp) &&
	    root_matches(v, &v->root, role)) {
		v->root_stale = false;
		return 0;
	}
	v->root_stale = false;
	v->st.root_loads++;
	if (v->root.sp && !sp_valid(m, v->root.sp))
		cached_put(m, &v->root);
	push_prev(v);
	for (unsigned i = 0; i < ROOTS_CACHED; i++) {
		struct cached_root *c = &v->prev[i];

		if (c->sp && !sp_valid(m, c->sp)) {
			cached_put(m, c);
			continue;
		}
		if (!root_matches(v, c, role))
			continue;
		v->root = *c;
		memmove(&v->prev[i], &v->prev[i + 1],
			(ROOTS_CACHED - 1 - i) * sizeof(v->prev[0]));
		memset(&v->prev[ROOTS_CACHED - 1], 0, sizeof(v->prev[0]));
		v->st.root_cache_hits++;
		return 0;
	}
	return root_make(v, role);
}
