/* Write monitoring (hot/cold detection for the sharing scanner) and the
 * dirty flags harvested by dirty logging. Both see writes made through
 * mv_vm_phys_write and the first write through mv_vm_gpa_to_hva; later
 * stores through a direct pointer are the MMU's to track. */
#include "vm_internal.h"

static int run_check(const struct mv_vm *vm, uint64_t gfn, uint64_t count)
{
	if (!count || gfn >= MV_GPA_LIMIT >> MV_PAGE_SHIFT ||
	    count > (MV_GPA_LIMIT >> MV_PAGE_SHIFT) - gfn)
		return -MV_ERANGE;
	return span_check(vm, gfn << MV_PAGE_SHIFT, count << MV_PAGE_SHIFT);
}

int mv_vm_write_monitor(struct mv_vm *vm, uint64_t gfn, uint64_t count,
			uint64_t *armed)
{
	uint64_t n = 0;
	int rc;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 1);
	if (!rc)
		rc = run_check(vm, gfn, count);
	for (uint64_t i = 0; !rc && i < count; i++) {
		struct mv_page *p = page_find(vm, gfn + i);

		if (p->type != MV_PAGE_RAM || p->state != MV_PAGE_ALLOCATED)
			continue;
		page_set(vm, p, MV_PAGE_WRITE_MONITORED, p->host_id);
		p->flags &= (uint8_t)~MV_PAGE_F_MONITOR_HIT;
		n++;
	}
	if (!rc && n)
		vm_notify(vm, gfn, count, MV_NOTIFY_MONITOR);
	mv_vm_unlock(vm);
	if (armed)
		*armed = n;
	return rc;
}

int mv_vm_dirty_collect(struct mv_vm *vm, uint64_t gfn, uint64_t count,
			uint64_t *bitmap)
{
	int rc;

	if (!vm || !bitmap)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 1);
	if (!rc)
		rc = run_check(vm, gfn, count);
	for (uint64_t i = 0; !rc && i < count; i++) {
		struct mv_page *p = page_find(vm, gfn + i);
		uint64_t bit = 1ull << (i % 64);

		if (i % 64 == 0)
			bitmap[i / 64] = 0;
		if (p->flags & MV_PAGE_F_DIRTY)
			bitmap[i / 64] |= bit;
		if (p->flags & MV_PAGE_F_DIRTY)  /* untouched stays untouched */
			p->flags &= (uint8_t)~MV_PAGE_F_DIRTY;
	}
	mv_vm_unlock(vm);
	return rc;
}
