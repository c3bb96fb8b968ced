/* What the MMU does when phys/ changes a page (mv_vm_set_notify). Called
 * under the VM lock before the change can be seen through an old pointer;
 * when it returns, no vCPU reaches the old page through a shadow PTE or
 * its TLB (sp_commit_zap waits for every INSIDE vCPU).
 *
 *   MONITOR, TRACK   the page stays, writes must fault: write-protect.
 *   BACKING, SHARED, MOVED, HANDLER
 *                    the content stays, the host page or the handler
 *                    changes: drop the leaves that map it.
 *   RESET, BALLOON, REMOVED
 *                    the content changes (zeros, or gone): drop the
 *                    leaves, and unshadow it where it was a guest table.
 *   UNMAP            the VM's own chunk mapping changes; shadow PTEs
 *                    hold host page ids and vCPUs use the pool's mapping,
 *                    so nothing is affected.
 * A change of more pages than the MMU maps leaves is cheaper as one zap of
 * everything (fast zap). */
#include "mmu/shadow.h"

static bool content_changes(enum mv_notify_reason why)
{
	return why == MV_NOTIFY_RESET || why == MV_NOTIFY_BALLOON ||
	       why == MV_NOTIFY_REMOVED;
}

static void one_gfn(struct mv_mmu *m, uint64_t gfn, enum mv_notify_reason why)
{
	if (why == MV_NOTIFY_MONITOR || why == MV_NOTIFY_TRACK) {
		uint64_t n = rmap_write_protect_gfn(m, gfn);

		m->st.write_protects += n;
		if (n)
			m->flush_pending = true;
		return;
	}
	m->st.notify_zaps += rmap_zap_gfn(m, gfn);
	if (content_changes(why) && sp_gfn_count(m, gfn))
		sp_zap_gfn(m, gfn);
}

void mmu_notify_hook(void *opaque, struct mv_vm *vm, uint64_t gfn,
		     uint64_t count, enum mv_notify_reason why)
{
	struct mv_mmu *m = opaque;

	(void)vm;
	if (why == MV_NOTIFY_UNMAP)
		return;
	if (content_changes(why))
		dirty_log_mark_range(m, gfn, count);
	if (count > 4 * (m->st.rmap_entries + m->in_use * 8 + 1024) &&
	    !m->defer_commit) {
		zap_all_locked(m);
		return;
	}
	for (uint64_t i = 0; i < count; i++)
		one_gfn(m, gfn + i, why);
	if (!m->defer_commit)
		sp_commit_zap(m);
}
