/* Fast invalidation of every shadow page (KVM's valid generation): one
 * bump of valid_gen makes every page obsolete. sp_find skips obsolete
 * pages, vCPUs see that their root is obsolete and load a fresh one at
 * their next access, and the obsolete pages are freed afterwards in
 * bounded batches, with the VM lock dropped between batches, so that no
 * caller waits for a whole teardown. */
#include <sched.h>

#include "mmu/shadow.h"

#define RECLAIM_BATCH 256

bool root_current(const struct mv_vcpu *v)
{
	const struct sp *root = v->root.sp;

	return root && !v->root_stale && root->gen == atomic_load(&v->mmu->valid_gen) &&
	       !__atomic_load_n(&root->zapped, __ATOMIC_ACQUIRE);
}

void zap_all_locked(struct mv_mmu *m)
{
	atomic_fetch_add(&m->valid_gen, 1);
	m->obsolete = m->in_use;
	m->st.zap_alls++;
	mmu_shootdown(m, REQ_TLB_FLUSH);
}

/* Free up to @max obsolete pages, oldest first; pinned roots wait.
 *
 * Without a shootdown per batch: zap_all_locked returned only after every
 * INSIDE vCPU acknowledged a flush posted after the generation bump (and
 * an OUTSIDE one flushes when it comes back in), and a vCPU checks that
 * its root is current before a lockless shadow walk, while fresh pages
 * never link an obsolete child (build_path). So no vCPU can reach an
 * obsolete page or a TLB entry made from one: a batch is freed at once,
 * and a remover never waits for the vCPUs once per batch. What was
 * pending before is committed as usual. */
uint32_t reclaim_obsolete(struct mv_mmu *m, uint32_t max)
{
	struct sp *pending_list = m->zap_list;
	bool pending_flush = m->flush_pending;
	uint32_t n = 0;

	m->zap_list = NULL;
	for (struct sp *sp = m->lru_head, *next; sp && n < max && m->obsolete;
	     sp = next) {
		next = sp->lru_next;
		if (sp->gen != m->valid_gen && !sp->root_count) {
			sp_zap(m, sp);
			n++;
		}
	}
	sp_free_unreachable(m);
	m->zap_list = pending_list;
	m->flush_pending = pending_flush;
	sp_commit_zap(m);
	return n;
}

int mv_mmu_reclaim_obsolete(struct mv_vm *vm, uint32_t max, uint32_t *freed)
{
	struct mv_mmu *m;
	uint32_t n = 0;

	if (!vm || !max)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	m = mmu_of(vm);
	if (m)
		n = reclaim_obsolete(m, max);
	mv_vm_unlock(vm);
	if (freed)
		*freed = n;
	return m ? 0 : -MV_ENOENT;
}

int mv_mmu_zap_all(struct mv_vm *vm, uint32_t batch)
{
	struct mv_mmu *m;
	uint32_t n;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	m = mmu_of(vm);
	if (m)
		zap_all_locked(m);
	mv_vm_unlock(vm);
	if (!m)
		return -MV_ENOENT;
	do {
		mv_vm_lock(vm);
		n = reclaim_obsolete(m, batch ? batch : RECLAIM_BATCH);
		mv_vm_unlock(vm);
		sched_yield();  /* a vCPU waiting for the lock gets it now */
	} while (n);
	return 0;
}
