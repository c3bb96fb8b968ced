/* The shadow fault: a TLB miss that the shadow tables cannot answer walks
 * the guest's own tables (mv_walk, through the VM's memory, which sets the
 * guest's A/D bits), then either returns the guest's fault or fills the
 * missing shadow levels and the leaf. Called with the VM lock held. */
#include <string.h>

#include "mmu/shadow.h"
#include "phys/vm_mmu.h"

#define FAULT_TRIES 4

/* The guest table (or direct region) that the shadow page at @level on
 * @va's path stands for, and its role. */
struct path_step {
	uint64_t gfn;
	union sp_role role;
};

/* Guest level of the first entry the walk read from memory. */
static unsigned top_guest_level(const struct mv_vcpu *v)
{
	return v->pg.mode >= MV_PAGING_LONG4 ? v->pg.levels : 2;
}

/* Rights of the guest entries above @level (AND of W/U, OR of NX). */
static unsigned access_above(const struct mv_vcpu *v, const struct mv_walk *w,
			     unsigned level)
{
	uint64_t and_bits = MV_PTE_W | MV_PTE_U, or_bits = 0;
	unsigned top = top_guest_level(v);

	for (unsigned l = top; l > level; l--) {
		uint64_t e = w->entry[top - l];

		and_bits &= e;
		or_bits |= e;
	}
	return pg_perm(and_bits, (v->pg.sw & MV_PG_SW_NXE) ? or_bits : 0);
}

static void step_for(const struct mv_vcpu *v, const struct mv_walk *w,
		     uint64_t va, unsigned level, struct path_step *s)
{
	union sp_role r = root_role(v);
	uint64_t frame = w->gpa >> MV_PAGE_SHIFT;

	r.level = level;
	r.special = 0;
	if (v->pg.mode == MV_PAGING_OFF || (w->level > 1 && level < w->level)) {
		/* A large guest page (or no paging): 4 KiB shadows of the
		 * region, without write access until the guest leaf is dirty
		 * (so that the first write faults and sets D). */
		r.direct = 1;
		r.access = w->perm;
		r.pkey = w->pkey;
		r.global = (w->leaf & MV_PTE_G) != 0;
		r.dirty = v->pg.mode == MV_PAGING_OFF ||
			  (w->leaf & MV_PTE_D) != 0;
		if (v->pg.mode != MV_PAGING_OFF && !(w->leaf & MV_PTE_D))
			r.access &= ~MV_PERM_W;
		s->gfn = frame & ~((1ull << (9 * level)) - 1);
	} else {
		unsigned top = top_guest_level(v);

		r.direct = 0;
		r.access = access_above(v, w, level);
		s->gfn = w->entry_gpa[top - level] >> MV_PAGE_SHIFT;
		if (v->pg.mode == MV_PAGING_LEGACY)
			r.quadrant = level == 2 ? (va >> 30) & 3 : (va >> 21) & 1;
	}
	s->role = r;
}

static unsigned slot_of(uint64_t va, unsigned level)
{
	return (va >> (MV_PAGE_SHIFT + 9 * (level - 1))) & (SPTES - 1);
}

/* Link the shadow pages from the root down to level 1 on @va's path;
 * *leaf_sp receives the level-1 page. */
static int build_path(struct mv_vcpu *v, const struct mv_walk *w, uint64_t va,
		      struct sp **leaf_sp)
{
	struct mv_mmu *m = v->mmu;
	struct sp *sp = v->root.sp;

	sp->flood = 0;
	for (unsigned level = sp->role.level - 1; level >= 1; level--) {
		unsigned slot = slot_of(va, level + 1);
		uint64_t e = spte_load(&sp->spt[slot]);
		struct path_step s;
		struct sp *child = NULL;
		int rc;

		step_for(v, w, va, level, &s);
		if (e & SPTE_P) {
			child = sp_of_link(m, e);
			if (child->gfn != s.gfn ||
			    child->role.word != s.role.word ||
			    !sp_valid(m, child)) {
				sp_zap_spte(m, sp, slot);
				child = NULL;
			}
		}
		if (!child) {
			rc = sp_get(m, s.gfn, s.role, &child);
			if (!rc)
				rc = sp_link(m, sp, slot, child);
			if (rc)
				return rc;
		}
		child->flood = 0;
		sp = child;
	}
	*leaf_sp = sp;
	return 0;
}

static uint64_t leaf_rights(const struct mv_walk *w)
{
	uint64_t r = perm_to_spte(w->perm);

	/* The guest's G as it is: CR4.PGE is the vCPU's, applied when its
	 * TLB is filled (shadow leaves are shared and outlive a change). */
	if (w->leaf & MV_PTE_G)
		r |= SPTE_G;
	if (w->page_size > MV_PAGE_SIZE)
		r |= SPTE_SW_LARGE;
	return r;
}

static void set_leaf(struct mv_mmu *m, struct sp *sp, unsigned slot,
		     uint64_t gfn, uint64_t spte)
{
	sp_zap_spte(m, sp, slot);
	if (sp->gfns)
		__atomic_store_n(&sp->gfns[slot], gfn, __ATOMIC_RELAXED);
	if (spte & SPTE_P) {
		rmap_add(m, gfn, spte_id_make(sp, slot));  /* reserved */
		if (m->nfb && (spte & SPTE_SW_WRITABLE))
			fb_note(m, gfn);
	}
	spte_store(&sp->spt[slot], spte);
}

static int fault_result(const struct mv_walk *w, uint64_t va,
			struct mv_xlate *x)
{
	switch (w->status) {
	case MV_WALK_PF:
	case MV_WALK_NOT_RAM:
		x->fault = (struct mv_fault){ MV_VEC_PF, w->error_code, va };
		return MV_VCPU_FAULT;
	case MV_WALK_GP:
		x->fault = (struct mv_fault){ MV_VEC_GP, 0, va };
		return MV_VCPU_FAULT;
	default:
		return MV_VCPU_RETRY;
	}
}

/* MMIO or no RAM at all: cache it in an MMIO SPTE (seed 004). W is kept
 * only when the guest leaf is dirty, so a cached write never skips D. */
static int install_mmio(struct mv_vcpu *v, struct sp *sp, unsigned slot,
			const struct mv_walk *w, struct mv_xlate *x)
{
	uint64_t rights = perm_to_spte(w->perm);

	if (v->pg.mode != MV_PAGING_OFF && !(w->leaf & MV_PTE_D))
		rights &= ~SPTE_W;
	/* The generation fills the key bits: a page with a protection key
	 * is not cached (every access walks, and sees PKRU). */
	set_leaf(v->mmu, sp, slot, 0,
		 w->pkey ? 0 : spte_mmio(w->gpa >> MV_PAGE_SHIFT, rights,
					 v->mmu->mmio_gen));
	x->gpa = w->gpa;
	v->st.mmio++;
	return MV_VCPU_MMIO;
}

/* The host page to map and whether writes may go straight to it. */
static int leaf_page(struct mv_vcpu *v, const struct mv_walk *w, unsigned acc,
		     mv_page_id *id, bool *writable)
{
	struct mv_vm *vm = v->vm;
	uint64_t gfn = w->gpa >> MV_PAGE_SHIFT;
	struct mv_page *p = vm_page_locked(vm, gfn);
	int rc;

	/* A clean logged page: this write makes it dirty (and untracked,
	 * unless it is a guest table) before its bytes land. */
	if ((acc & MV_ACC_WRITE) && dirty_log_clean(v->mmu, gfn)) {
		rc = dirty_log_mark(v->mmu, gfn, v);
		if (rc)
			return rc;
	}
	bool tracked = mv_page_flags(p) & MV_PAGE_F_TRACKED;
	unsigned vs = vh_gfn_state(v->mmu, gfn);
	bool direct_write = mv_page_type(p) == MV_PAGE_RAM && !tracked &&
			    mv_page_hstate(p) != MV_HSTATE_WRITE &&
			    mv_page_hstate(p) != MV_HSTATE_ALL &&
			    vs == VH_STATE_NONE;
	void *ptr;

	if (mv_page_hstate(p) == MV_HSTATE_ALL || vs == VH_STATE_ALL)
		return MV_VCPU_SLOW;
	if ((acc & MV_ACC_WRITE) && !direct_write)
		return MV_VCPU_SLOW;
	rc = mv_vm_gpa_to_hva_locked(vm, w->gpa,
				     (acc & MV_ACC_WRITE) ? MV_VM_HVA_WRITE
							  : MV_VM_HVA_READ,
				     &ptr);
	if (rc)
		return rc == MV_VM_SLOW_PATH ? MV_VCPU_SLOW : rc;
	enum mv_page_state st = mv_page_state(p);

	*id = (st == MV_PAGE_ZERO || st == MV_PAGE_BALLOONED)
		      ? MV_ZERO_PAGE : mv_page_host_id(p);
	*writable = direct_write && st == MV_PAGE_ALLOCATED &&
		    (v->pg.mode == MV_PAGING_OFF || (w->leaf & MV_PTE_D));
	return 0;
}

static int fill_leaf(struct mv_vcpu *v, struct sp *sp, uint64_t va,
		     const struct mv_walk *w, unsigned acc, struct mv_xlate *x)
{
	struct mv_mmu *m = v->mmu;
	unsigned slot = slot_of(va, 1);
	uint64_t gfn = w->gpa >> MV_PAGE_SHIFT;
	struct mv_page *p = vm_page_locked(v->vm, gfn);
	mv_page_id id;
	bool writable;
	int rc;

	x->gpa = w->gpa;
	if (!p || mv_page_type(p) == MV_PAGE_MMIO)
		return install_mmio(v, sp, slot, w, x);
	rc = leaf_page(v, w, acc, &id, &writable);
	if (rc)
		return rc;
	if (!sp_valid(m, sp) || !sp_valid(m, v->root.sp))
		return MV_VCPU_RETRY;  /* a copy-on-write notify zapped it */
	uint64_t spte = spte_leaf(id, leaf_rights(w), w->pkey);

	if (writable)
		spte |= SPTE_SW_WRITABLE;
	uint64_t old = spte_load(&sp->spt[slot]);

	if ((acc & MV_ACC_WRITE) && (old & SPTE_P) &&
	    !(old & SPTE_SW_WRITABLE))
		v->st.dirty_faults++;  /* D emulation or copy-on-write */
	set_leaf(m, sp, slot, gfn, spte);
	v->st.fills++;
	tlb_fill(v, va, w->gpa, spte, &sp->spt[slot], acc);
	uint8_t *host = mv_host_page_ptr(m->host, id);

	if (!host)
		return -MV_EINTERNAL;
	x->hva = host + (va & (MV_PAGE_SIZE - 1));
	x->span = MV_PAGE_SIZE - (va & (MV_PAGE_SIZE - 1));
	return MV_VCPU_OK;
}

/* The guest entries the walk used, read again once build_path has made
 * their tables tracked (which waited for every vCPU to drop a writable
 * mapping of them): an entry that changed between the walk and the
 * tracking was written behind the shadow's back, so walk again (KVM's
 * gpte_changed). After this, every write to them reaches the track hook,
 * and none can happen before the leaf is in: we hold the VM lock. */
static bool entries_unchanged(struct mv_vcpu *v, const struct mv_walk *w)
{
	unsigned esize = v->pg.mode == MV_PAGING_LEGACY ? 4 : 8;

	for (unsigned i = 0; i < w->nr_entries; i++) {
		uint64_t e = 0;

		if (v->gm_locked.read(v->gm_locked.opaque, w->entry_gpa[i],
				      esize, &e) ||
		    e != w->entry[i])
			return false;
	}
	return true;
}

/* Room for a whole path before anything changes: the fault never evicts
 * a page it is linking, and a refused allocation changes nothing. */
static int make_room(struct mv_vcpu *v)
{
	struct mv_mmu *m = v->mmu;
	uint32_t need = root_level(v) + 1;
	int rc = sp_make_room(m, need);

	if (!rc)
		rc = pool_ensure(m, need);
	if (!rc)
		rc = rmap_reserve(m, 1);
	return rc;
}

static int fault_once(struct mv_vcpu *v, uint64_t va, unsigned acc,
		      struct mv_xlate *x)
{
	struct mv_walk w;
	struct sp *leaf_sp;
	int rc;

	mmio_sync(v->mmu);
	rc = make_room(v);
	if (!rc)
		rc = root_load(v);
	if (rc)
		return rc;
	v->st.faults++;
	if (v->nvh && vh_hyper(v, va)) {
		x->gpa = 0;  /* the monitor's: never mapped, never walked */
		return MV_VCPU_SLOW;
	}
	rc = mv_walk(&v->pg, &v->gm_locked, va, acc, &w);
	if (rc < 0)
		return rc;
	if (rc != MV_WALK_OK) {
		if (rc != MV_WALK_RETRY)
			v->st.guest_faults++;
		return fault_result(&w, va, x);
	}
	if (!sp_valid(v->mmu, v->root.sp))
		return MV_VCPU_RETRY;
	if (v->nvh)
		vh_fault_seen(v, va, &w);
	rc = build_path(v, &w, va, &leaf_sp);
	if (rc)
		return rc;
	if (!entries_unchanged(v, &w))
		return MV_VCPU_RETRY;
	return fill_leaf(v, leaf_sp, va, &w, acc, x);
}

int mmu_fault(struct mv_vcpu *v, uint64_t va, unsigned acc,
	      struct mv_xlate *x)
{
	int rc = MV_VCPU_RETRY;

	for (unsigned i = 0; i < FAULT_TRIES && rc == MV_VCPU_RETRY; i++)
		rc = fault_once(v, va, acc, x);
	sp_commit_zap(v->mmu);
	return rc;
}
