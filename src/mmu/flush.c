/* The flush protocol: how a thread that removes or reduces a mapping knows
 * that no vCPU can still reach the old page (docs/design.md, "Flush
 * protocol", has the timeline).
 *
 * A vCPU is INSIDE while its thread may hold host pointers from its TLB,
 * OUTSIDE when it holds none. The remover changes the shadow PTEs under the
 * VM lock, bumps flush_gen, posts a request to every vCPU and then waits,
 * for each vCPU that is INSIDE, until it acknowledged a generation at
 * least as new. A vCPU acknowledges at every mv_vcpu_* call: it takes the
 * request, reads flush_gen, flushes its TLB and publishes the generation.
 *
 * Entering is a store of INSIDE then a check of the requests, both
 * sequentially consistent, against the remover's post then load of the
 * mode: either the remover sees INSIDE and waits, or the vCPU sees the
 * request and flushes before it uses its TLB again.
 *
 * A thread goes OUTSIDE for all its vCPUs whenever it takes the VM lock
 * (mv_vm_lock calls mmu_thread_quiesce), so a vCPU thread blocked on the
 * lock - in its own shadow fault, or calling mv_vm_phys_write for a
 * device - never holds up a remover that holds the lock. Its last unlock
 * makes them INSIDE again (mmu_thread_resume: the same store and check as
 * an entry), since the thread goes on with inline TLB lookups after the
 * call. Without that, this store is lost:
 *
 *   vCPU thread                         remover
 *   mv_vm_phys_write: lock -> OUTSIDE
 *   ... unlock, still OUTSIDE
 *                                       lock, zap the page's SPTEs,
 *                                       shootdown: OUTSIDE, no wait;
 *                                       move the page, free the old one
 *   p = mv_tlb_lookup(va): old page
 *   *p = x
 *
 * mv_vm_request_wait is OUTSIDE the same way while it waits: the
 * request's processor may flush.
 */
#include <sched.h>

#include "mmu/shadow.h"
#include "phys/vm_mmu.h"

/* The vCPUs this thread has made INSIDE, chained through tls_next. */
static __thread struct mv_vcpu *tls_inside;
/* Those that mmu_thread_quiesce made OUTSIDE, chained through park_next,
 * and how many quiesce/resume pairs the thread is in (VM locks held,
 * waits): the last resume makes them INSIDE again. */
static __thread struct mv_vcpu *tls_parked;
static __thread unsigned tls_quiesced;

void tlb_flush_all(struct mv_vcpu *v)
{
	for (unsigned c = 0; c < MV_TLB_CLASSES; c++)
		for (unsigned i = 0; i < MV_TLB_SIZE; i++) {
			struct mv_tlb_entry *e = &v->tlb.e[c][i];

			e->tag[0] = e->tag[1] = e->tag[2] = MV_TLB_INVALID;
			v->entry_flags[c][i] = 0;
		}
	v->tlb_large = v->tlb_global = false;
	v->st.flushes++;
}

void tlb_flush_nonglobal(struct mv_vcpu *v)
{
	if (!v->tlb_global) {
		tlb_flush_all(v);
		return;
	}
	for (unsigned c = 0; c < MV_TLB_CLASSES; c++)
		for (unsigned i = 0; i < MV_TLB_SIZE; i++) {
			struct mv_tlb_entry *e = &v->tlb.e[c][i];

			if (v->entry_flags[c][i] & TLBF_GLOBAL)
				continue;
			e->tag[0] = e->tag[1] = e->tag[2] = MV_TLB_INVALID;
			v->entry_flags[c][i] = 0;
		}
	v->tlb_large = true;  /* not tracked per entry after this: be safe */
}

/* INVLPG: the TLB caches 4 KiB pieces, so when any came from a large guest
 * page the whole TLB goes (as QEMU does), else one slot per class. */
void tlb_flush_va(struct mv_vcpu *v, uint64_t va)
{
	if (v->tlb_large) {
		tlb_flush_all(v);
		return;
	}
	va &= v->tlb.va_mask;
	unsigned i = (va >> MV_PAGE_SHIFT) & (MV_TLB_SIZE - 1);

	for (unsigned c = 0; c < MV_TLB_CLASSES; c++) {
		struct mv_tlb_entry *e = &v->tlb.e[c][i];

		e->tag[0] = e->tag[1] = e->tag[2] = MV_TLB_INVALID;
		v->entry_flags[c][i] = 0;
	}
}

void vcpu_check_requests(struct mv_vcpu *v)
{
	if (!atomic_load_explicit(&v->req, memory_order_relaxed))
		return;
	uint32_t r = atomic_exchange(&v->req, 0);
	/* Read after taking the request: a flush for any generation up to
	 * this one follows every SPTE change made before it. */
	uint64_t gen = atomic_load(&v->mmu->flush_gen);

	if (r & REQ_TLB_FLUSH)
		tlb_flush_all(v);
	if (r & REQ_VH_SYNC)
		v->vh_sync = true;
	atomic_store(&v->ack_gen, gen);
	v->st.acks++;
}

void vcpu_enter(struct mv_vcpu *v)
{
	if (atomic_load_explicit(&v->mode, memory_order_relaxed) !=
	    VCPU_INSIDE) {
		/* before the INSIDE store: a remover that sees INSIDE sees
		 * its owner too */
		__atomic_store_n(&v->owner, pthread_self(), __ATOMIC_RELAXED);
		v->tlb.outside = 0;
		v->tls_next = tls_inside;
		tls_inside = v;
		atomic_store(&v->mode, VCPU_INSIDE);
		/* The load of the store-load pair: sequentially consistent.
		 * vcpu_check_requests' relaxed load could be satisfied
		 * before the store is visible (stlr then ldr on arm64), and
		 * the remover, loading OUTSIDE, would not wait for a vCPU
		 * that did not see its request either. */
		if (!atomic_load(&v->req))
			return;
	}
	vcpu_check_requests(v);
}

static void go_outside(struct mv_vcpu *v)
{
	atomic_store_explicit(&v->mode, VCPU_OUTSIDE, memory_order_release);
}

void mmu_thread_quiesce(void)
{
	tls_quiesced++;
	for (struct mv_vcpu *v = tls_inside; v; v = v->tls_next) {
		go_outside(v);
		if (!v->parked) {
			v->parked = true;
			v->park_next = tls_parked;
			tls_parked = v;
		}
	}
	tls_inside = NULL;
}

/* The emulator goes on with inline TLB lookups after a call into the VM
 * (mv_vm_phys_write for a device, a handler's access): its vCPUs must be
 * INSIDE again, with every flush posted meanwhile taken. */
void mmu_thread_resume(void)
{
	if (!tls_quiesced || --tls_quiesced)
		return;
	while (tls_parked) {
		struct mv_vcpu *v = tls_parked;

		tls_parked = v->park_next;
		v->parked = false;
		vcpu_enter(v);
	}
}

static void unpark(struct mv_vcpu *v)
{
	for (struct mv_vcpu **pp = &tls_parked; *pp; pp = &(*pp)->park_next)
		if (*pp == v) {
			*pp = v->park_next;
			break;
		}
	v->parked = false;
}

void vcpu_leave(struct mv_vcpu *v)
{
	if (v->parked)
		unpark(v);
	if (atomic_load_explicit(&v->mode, memory_order_relaxed) !=
	    VCPU_INSIDE)
		return;
	for (struct mv_vcpu **pp = &tls_inside; *pp; pp = &(*pp)->tls_next)
		if (*pp == v) {
			*pp = v->tls_next;
			break;
		}
	v->tlb.outside = 1;  /* no inline hit until the next call */
	go_outside(v);
}

static void wait_ack(struct mv_mmu *m, struct mv_vcpu *v, uint64_t gen)
{
	unsigned spins = 0;

	while (atomic_load(&v->mode) == VCPU_INSIDE &&
	       atomic_load(&v->ack_gen) < gen) {
		if (++spins == 1)
			m->st.shootdown_waits++;
		if (spins > 64)
			sched_yield();
	}
}

/* Called under the VM lock after SPTEs were removed or reduced. */
void mmu_shootdown(struct mv_mmu *m, uint32_t req)
{
	uint64_t gen = atomic_fetch_add(&m->flush_gen, 1) + 1;
	pthread_t self = pthread_self();

	m->st.shootdowns++;
	for (uint32_t i = 0; i < MV_VCPU_MAX; i++)
		if (m->vcpus[i])
			atomic_fetch_or(&m->vcpus[i]->req, req);
	for (uint32_t i = 0; i < MV_VCPU_MAX; i++) {
		struct mv_vcpu *v = m->vcpus[i];

		if (!v)
			continue;
		if (atomic_load(&v->mode) == VCPU_INSIDE &&
		    pthread_equal(__atomic_load_n(&v->owner, __ATOMIC_RELAXED),
				  self))
			vcpu_check_requests(v);  /* our own: flush it now */
		else
			wait_ack(m, v, gen);
	}
}
