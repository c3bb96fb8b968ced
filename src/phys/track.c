/* Write tracking of single guest pages for the MMU (its shadowed guest
 * page tables). A tracked page never hands out a write pointer, so every
 * write to it goes through mv_vm_phys_write or populate, which call the
 * track hook once the bytes are in memory. */
#include "vm_internal.h"

static struct mv_page *ram_page(const struct mv_vm *vm, uint64_t gfn)
{
	struct mv_page *p;

	if (gfn >= MV_GPA_LIMIT >> MV_PAGE_SHIFT)
		return NULL;
	p = page_find(vm, gfn);
	return p && p->type == MV_PAGE_RAM ? p : NULL;
}

int mv_vm_track_write(struct mv_vm *vm, uint64_t gfn, int on)
{
	struct mv_page *p;
	int rc = 0;

	if (!vm || (on != 0 && on != 1))
		return -MV_EINVAL;
	mv_vm_lock(vm);
	p = ram_page(vm, gfn);
	if (!p) {
		rc = -MV_ERANGE;
	} else if (!on) {
		p->flags &= (uint8_t)~MV_PAGE_F_TRACKED;
	} else if (!(p->flags & MV_PAGE_F_TRACKED)) {
		/* Set first: a pointer asked for after the revocation must
		 * already see the page as tracked. */
		p->flags |= MV_PAGE_F_TRACKED;
		vm_notify(vm, gfn, 1, MV_NOTIFY_TRACK);
	}
	mv_vm_unlock(vm);
	return rc;
}

int mv_vm_page_tracked(struct mv_vm *vm, uint64_t gfn)
{
	const struct mv_page *p;
	int on;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	p = ram_page(vm, gfn);
	on = p && (p->flags & MV_PAGE_F_TRACKED);
	mv_vm_unlock(vm);
	return on;
}

void mv_vm_set_track_hook(struct mv_vm *vm, mv_vm_track_fn fn, void *opaque)
{
	if (!vm)
		return;
	mv_vm_lock(vm);
	vm->track = fn;
	vm->track_opaque = opaque;
	mv_vm_unlock(vm);
}

void track_written(struct mv_vm *vm, const struct mv_page *p, uint64_t gpa,
		   const void *bytes, size_t len)
{
	if (!(p->flags & MV_PAGE_F_TRACKED) || !vm->track)
		return;
	vm->in_track++;
	vm->track(vm->track_opaque, vm, gpa, bytes, len);
	vm->in_track--;
}
