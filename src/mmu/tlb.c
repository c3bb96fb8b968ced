/* Rights of a shadow leaf for one access, and the soft TLB fill.
 *
 * A leaf records the guest's effective rights (W, U, NX) and its
 * protection key; the rules of SDM 4.6 with the vCPU's current CR0.WP,
 * SMEP, SMAP, EFLAGS.AC and PKRU are applied here, so that changing them
 * needs no new shadow, only a TLB flush (PKRU) or nothing at all (AC: the
 * TLB keeps supervisor accesses with and without AC apart). */
#include "mmu/shadow.h"

static bool deny(struct pg_rights r, uint64_t spte, unsigned acc)
{
	unsigned perm = spte_perm(spte);

	/* An MMIO SPTE has no key bits (the generation uses them): only
	 * key 0 is ever cached in one (install_mmio). */
	unsigned key = spte_is_mmio(spte) ? 0 : spte_pkey(spte);

	return rights_deny(r, acc, perm) || pkey_denies(r, acc, perm, key);
}

/* May @acc go through this leaf (or MMIO SPTE) without a guest walk? */
bool leaf_allows(const struct mv_vcpu *v, uint64_t spte, unsigned acc)
{
	if (deny(pg_rights_of(&v->pg), spte, acc))
		return false;
	if (!(acc & MV_ACC_WRITE))
		return true;
	/* W in an MMIO SPTE means guest-writable and dirty: without it a
	 * write walks (a supervisor write with CR0.WP=0 to a read-only
	 * page is allowed by the rights, and must still set D). */
	if (spte_is_mmio(spte))
		return (spte & SPTE_W) != 0;
	return (spte & SPTE_SW_WRITABLE) != 0;
}

/* The access flags of a class, and the context its rules run in. */
static unsigned class_acc(unsigned cls)
{
	return cls == MV_TLB_USER ? MV_ACC_USER
	       : cls == MV_TLB_SUP ? MV_ACC_IMPLICIT : 0;
}

/* Set D in a writable leaf, as the hardware walk of a write does. */
static void set_dirty(uint64_t *sptep, uint64_t spte)
{
	while ((spte & SPTE_P) && (spte & SPTE_SW_WRITABLE) &&
	       !(spte & SPTE_D) &&
	       !__atomic_compare_exchange_n(sptep, &spte, spte | SPTE_D, false,
					    __ATOMIC_ACQ_REL,
					    __ATOMIC_ACQUIRE))
		;
}

/* Fill the TLB entry of @va's page for the class of @acc from @spte, a
 * leaf that allows @acc. A write tag is given only when the leaf is dirty
 * (or this access makes it so), so the leaf's D bit means "written". */
void tlb_fill(struct mv_vcpu *v, uint64_t va, uint64_t gpa, uint64_t spte,
	      uint64_t *sptep, unsigned acc)
{
	struct mv_tlb *t = &v->tlb;
	unsigned cls = mv_tlb_class(t, acc);
	struct pg_rights r = pg_rights_of(&v->pg);
	uint64_t page = va & t->va_mask & ~(uint64_t)(MV_PAGE_SIZE - 1);
	unsigned i = (page >> MV_PAGE_SHIFT) & (MV_TLB_SIZE - 1);
	struct mv_tlb_entry *e = &t->e[cls][i];
	uint8_t *host = mv_host_page_ptr(v->mmu->host, spte_host_id(spte));
	unsigned base = class_acc(cls);

	if (!host)
		return;
	if (acc & MV_ACC_WRITE) {
		set_dirty(sptep, spte);
		spte |= SPTE_D;
	}
	if (cls == MV_TLB_SUP_AC)
		r.sw |= MV_PG_SW_AC;
	e->tag[MV_TLB_READ] = deny(r, spte, base) ? MV_TLB_INVALID : page;
	e->tag[MV_TLB_FETCH] = deny(r, spte, base | MV_ACC_FETCH)
				       ? MV_TLB_INVALID : page;
	e->tag[MV_TLB_WRITE] = (spte & SPTE_SW_WRITABLE) && (spte & SPTE_D) &&
			       !deny(r, spte, base | MV_ACC_WRITE)
				       ? page : MV_TLB_INVALID;
	e->addend = (uint64_t)(uintptr_t)host - page;
	v->entry_gpa[cls][i] = gpa & ~(uint64_t)(MV_PAGE_SIZE - 1);
	bool global = (spte & SPTE_G) && (v->pg.regs.cr4 & MV_CR4_PGE);

	v->entry_flags[cls][i] = (global ? TLBF_GLOBAL : 0) |
				 ((spte & SPTE_SW_LARGE) ? TLBF_LARGE : 0);
	if (global)
		v->tlb_global = true;
	if (spte & SPTE_SW_LARGE)
		v->tlb_large = true;
}
