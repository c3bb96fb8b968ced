/* The host pool's mover: when the pool vacates a chunk it asks the owner
 * of each private page to switch to a new page. Under the VM lock nothing
 * in phys/ can write the page; direct mappings are dropped (notify) before
 * the copy, so a vCPU writing through one faults, waits for the lock and
 * then sees the new page. Handy pages (no frame yet) are switched in the
 * cache itself. */
#include "vm_internal.h"

static int move_handy(struct mv_vm *vm, mv_page_id old_id, mv_page_id new_id)
{
	for (uint32_t i = 0; i < vm->nhandy; i++) {
		if (vm->handy[i] != old_id)
			continue;
		int rc = mv_host_page_copy(vm->host, new_id, old_id);

		if (!rc)
			vm->handy[i] = new_id;
		return rc;
	}
	return -MV_ENOENT;
}

static int move_mapped(struct mv_vm *vm, uint64_t gfn, mv_page_id old_id,
		       mv_page_id new_id)
{
	struct mv_page *p = page_find(vm, gfn);
	int rc;

	if (!p || p->host_id != old_id || p->type == MV_PAGE_MMIO ||
	    (p->state != MV_PAGE_ALLOCATED &&
	     p->state != MV_PAGE_WRITE_MONITORED))
		return -MV_ESTATE;
	vm_notify(vm, gfn, 1, MV_NOTIFY_MOVED);
	rc = mv_host_page_copy(vm->host, new_id, old_id);
	if (rc)
		return rc;
	p->host_id = new_id;
	vm->st.moves++;
	return 0;
}

int vm_page_move(void *opaque, mv_vmid vmid, uint64_t gfn, mv_page_id old_id,
		 mv_page_id new_id)
{
	struct mv_vm *vm = opaque;
	int rc;

	if (!vm || vmid != vm->id)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	if (vm_busy(vm, 1))
		rc = -MV_EBUSY;  /* a hook moving our pages: refused, kept */
	else if (gfn == MV_GFN_NONE)
		rc = move_handy(vm, old_id, new_id);
	else
		rc = move_mapped(vm, gfn, old_id, new_id);
	mv_vm_unlock(vm);
	return rc;
}
