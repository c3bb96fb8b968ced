/* Guest accesses through a vCPU: the soft TLB, then the shadow walk without
 * the VM lock, then the shadow fault under it. Multi-page accesses are
 * translated whole before a byte moves. */
#include <string.h>

#include "mmu/shadow.h"

#define ACC_FLAGS (MV_ACC_WRITE | MV_ACC_FETCH | MV_ACC_USER | MV_ACC_IMPLICIT)

static unsigned kind_of(unsigned acc)
{
	return (acc & MV_ACC_FETCH) ? MV_TLB_FETCH
	       : (acc & MV_ACC_WRITE) ? MV_TLB_WRITE : MV_TLB_READ;
}

static int ok_result(struct mv_xlate *x, uint8_t *hva, uint64_t gpa,
		     uint64_t va)
{
	unsigned off = va & (MV_PAGE_SIZE - 1);

	x->hva = hva;
	x->span = MV_PAGE_SIZE - off;
	x->gpa = gpa;
	return MV_VCPU_OK;
}

static bool tlb_hit(struct mv_vcpu *v, uint64_t va, unsigned acc,
		    struct mv_xlate *x)
{
	unsigned cls = mv_tlb_class(&v->tlb, acc);
	uint8_t *p = mv_tlb_lookup(&v->tlb, va, cls, kind_of(acc));

	if (!p)
		return false;
	unsigned i = ((va & v->tlb.va_mask) >> MV_PAGE_SHIFT) &
		     (MV_TLB_SIZE - 1);

	ok_result(x, p, v->entry_gpa[cls][i] | (va & (MV_PAGE_SIZE - 1)), va);
	return true;
}

/* shadow_answer's "no answer": the shadow cannot answer, walk the guest. */
#define NO_ANSWER INT32_MIN

/* The shadow answers without a guest walk: a leaf that allows the access
 * (into the TLB), or a current MMIO leaf. */
static int shadow_answer(struct mv_vcpu *v, uint64_t va, unsigned acc,
			 struct mv_xlate *x)
{
	struct shadow_leaf l;

	if (!root_current(v))
		return NO_ANSWER;
	shadow_walk(v, va, &l);
	if (!l.present || !leaf_allows(v, l.spte, acc))
		return NO_ANSWER;
	unsigned slot = (va >> MV_PAGE_SHIFT) & (SPTES - 1);
	uint64_t off = va & (MV_PAGE_SIZE - 1);

	if (l.present == 2) {
		if (!mmio_spte_current(v->mmu, l.spte))
			return NO_ANSWER;
		x->gpa = spte_mmio_gfn(l.spte) << MV_PAGE_SHIFT | off;
		v->st.mmio++;
		v->st.mmio_cached++;
		return MV_VCPU_MMIO;
	}
	uint64_t gpa = sp_leaf_gfn(l.sp, slot) << MV_PAGE_SHIFT;

	if (spte_load(l.sptep) != l.spte)
		return NO_ANSWER;  /* changed under us: the gfn may be the new one */
	tlb_fill(v, va, gpa, l.spte, l.sptep, acc);
	uint8_t *host = mv_host_page_ptr(v->mmu->host, spte_host_id(l.spte));

	if (!host)
		return NO_ANSWER;
	v->st.shadow_hits++;
	return ok_result(x, host + off, gpa | off, va);
}

static int translate_locked(struct mv_vcpu *v, uint64_t va, unsigned acc,
			    struct mv_xlate *x)
{
	int rc;

	vcpu_check_requests(v);
	if (v->vh_sync)
		vh_sync_stale(v);
	mmio_sync(v->mmu);
	rc = root_load(v);
	if (!rc)
		rc = shadow_answer(v, va, acc, x);
	if (rc == NO_ANSWER)
		rc = mmu_fault(v, va, acc, x);
	return rc;
}

/* One page: TLB, shadow, fault. */
static int translate_one(struct mv_vcpu *v, uint64_t va, unsigned acc,
			 struct mv_xlate *x)
{
	int rc;

	v->st.accesses++;
	va &= v->tlb.va_mask;
	/* A hit needs no canonical check: only canonical pages are filled,
	 * and a change of LA57 or of the paging mode flushes the TLB. */
	if (tlb_hit(v, va, acc, x)) {
		v->st.tlb_hits++;
		return MV_VCPU_OK;
	}
	if (v->pg.mode >= MV_PAGING_LONG4 && !mv_paging_is_canonical(&v->pg, va)) {
		x->fault = (struct mv_fault){ MV_VEC_GP, 0, va };
		v->st.guest_faults++;
		return MV_VCPU_FAULT;
	}
	v->st.tlb_misses++;
	rc = v->vh_sync ? NO_ANSWER : shadow_answer(v, va, acc, x);
	if (rc != NO_ANSWER)
		return rc;
	mv_vm_lock(v->vm);  /* makes this thread's vCPUs OUTSIDE */
	rc = translate_locked(v, va, acc, x);
	vcpu_enter(v);      /* INSIDE again before the lock goes */
	mv_vm_unlock(v->vm);
	return rc;
}

int mv_vcpu_translate(struct mv_vcpu *v, uint64_t va, unsigned acc,
		      struct mv_xlate *x)
{
	if (!v || !x || (acc & ~ACC_FLAGS))
		return -MV_EINVAL;
	if (acc & MV_ACC_FETCH)
		acc &= ~MV_ACC_WRITE;
	vcpu_enter(v);
	return translate_one(v, va, acc, x);
}

/* memmove, with the sizes of single loads and stores inlined (an
 * emulator's common case: the call of memmove costs as much as the rest
 * of a TLB hit). */
static void move(void *dst, const void *src, size_t n)
{
	switch (n) {
	case 8: memmove(dst, src, 8); break;
	case 4: memmove(dst, src, 4); break;
	case 2: memmove(dst, src, 2); break;
	case 1: memmove(dst, src, 1); break;
	default: memmove(dst, src, n); break;
	}
}

/* Move one translated piece: memory directly, anything else through the
 * VM's physical access path (MMIO, handlers, ROM, tracked page tables). */
static int piece(struct mv_vcpu *v, uint64_t va, const struct mv_xlate *x,
		 int rc, uint8_t *buf, size_t n, unsigned acc)
{
	bool write = acc & MV_ACC_WRITE;

	if (rc == MV_VCPU_SLOW && v->mmu->nvh_total) {
		bool handled;
		int hrc = vh_dispatch(v, va, x->gpa, buf, n, acc, &handled);

		if (handled)
			return hrc;
	}
	if (rc == MV_VCPU_OK) {
		move(write ? x->hva : buf, write ? buf : x->hva, n);
		return 0;
	}
	if (write) {
		if (rc == MV_VCPU_SLOW)
			v->st.emulated_writes++;
		return mv_vm_phys_write(v->vm, x->gpa, buf, n);
	}
	return mv_vm_phys_read(v->vm, x->gpa, buf, n);
}

/* Results that end an access before any byte moves. */
static bool stops(int rc)
{
	return rc < 0 || rc == MV_VCPU_FAULT || rc == MV_VCPU_RETRY ||
	       rc == MV_VCPU_RING_FULL;
}

static size_t piece_len(uint64_t va, size_t left)
{
	size_t room = MV_PAGE_SIZE - (va & (MV_PAGE_SIZE - 1));

	return left < room ? left : room;
}

static int fault_out(struct mv_fault *f, const struct mv_xlate *x)
{
	if (f)
		*f = x->fault;
	return MV_VCPU_FAULT;
}

/* Pass one translates every page (a fault stops it before any byte
 * moves); pass two moves the bytes. The VM lock keeps the translations of
 * pass one valid through pass two. */
static int access_span(struct mv_vcpu *v, uint64_t va, uint8_t *buf,
		       size_t len, unsigned acc, struct mv_fault *f)
{
	struct mv_xlate x;
	int rc = 0;

	mv_vm_lock(v->vm);
	for (size_t done = 0, n; done < len && !stops(rc); done += n) {
		n = piece_len(va + done, len - done);
		rc = translate_one(v, va + done, acc, &x);
	}
	for (size_t done = 0, n; done < len && !stops(rc); done += n) {
		n = piece_len(va + done, len - done);
		rc = translate_one(v, va + done, acc, &x);
		if (!stops(rc))
			rc = piece(v, va + done, &x, rc, buf + done, n, acc);
	}
	vcpu_enter(v);
	mv_vm_unlock(v->vm);
	return rc == MV_VCPU_FAULT ? fault_out(f, &x) : rc;
}

static int access(struct mv_vcpu *v, uint64_t va, void *buf, size_t len,
		  unsigned acc, struct mv_fault *f)
{
	struct mv_xlate x;
	int rc;

	if (!v || (!buf && len) ||
	    (acc & ~(MV_ACC_USER | MV_ACC_IMPLICIT | MV_ACC_WRITE |
		     MV_ACC_FETCH)))
		return -MV_EINVAL;
	vcpu_enter(v);
	if (!len)
		return MV_VCPU_OK;
	if (piece_len(va, len) < len)
		return access_span(v, va, buf, len, acc, f);
	rc = translate_one(v, va, acc, &x);
	if (rc == MV_VCPU_FAULT)
		return fault_out(f, &x);
	if (stops(rc))
		return rc;
	return piece(v, va, &x, rc, buf, len, acc);
}

int mv_vcpu_read(struct mv_vcpu *v, uint64_t va, void *buf, size_t len,
		 unsigned acc, struct mv_fault *f)
{
	return access(v, va, buf, len, acc & ~(MV_ACC_WRITE | MV_ACC_FETCH), f);
}

int mv_vcpu_write(struct mv_vcpu *v, uint64_t va, const void *buf,
		  size_t len, unsigned acc, struct mv_fault *f)
{
	return access(v, va, (void *)buf, len,
		      (acc & ~MV_ACC_FETCH) | MV_ACC_WRITE, f);
}

int mv_vcpu_fetch(struct mv_vcpu *v, uint64_t va, void *buf, size_t len,
		  unsigned acc, struct mv_fault *f)
{
	return access(v, va, buf, len, (acc & ~MV_ACC_WRITE) | MV_ACC_FETCH, f);
}
