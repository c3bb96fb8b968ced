/* The "hardware walk" of the shadow tables: what a TLB miss does before it
 * takes the VM lock. It reads SPTEs without the lock: a table it reaches is
 * not freed before this vCPU acknowledges a flush (flush.c), and every SPTE
 * is one atomic word. It follows the child's struct sp (whose table is the
 * host page the SPTE names) rather than the host page id, so that it also
 * learns which guest frame a leaf maps. */
#include "mmu/shadow.h"

void shadow_walk(const struct mv_vcpu *v, uint64_t va, struct shadow_leaf *out)
{
	const struct sp *root = v->root.sp;

	out->present = 0;
	if (!root)
		return;
	uint64_t *table = root->spt;
	const struct sp *sp = root;

	for (unsigned level = root->role.level;; level--) {
		unsigned shift = MV_PAGE_SHIFT + 9 * (level - 1);
		uint64_t *p = &table[(va >> shift) & (SPTES - 1)];
		uint64_t e = spte_load(p);

		if (level == 1) {
			out->present = (e & SPTE_P) ? 1 : spte_is_mmio(e) ? 2 : 0;
			out->spte = e;
			out->sptep = p;
			out->sp = sp;
			return;
		}
		if (!(e & SPTE_P))
			return;
		/* The sps array never moves, and the child is not freed
		 * before this vCPU acknowledges a flush. */
		sp = sp_of_link(v->mmu, e);
		table = sp->spt;
	}
}
