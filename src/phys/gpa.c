/* mv_vm_gpa_to_hva: the MMU's fast path. It answers with a host pointer
 * only when the access may go straight to memory, after the transition a
 * write needs; anything a handler, a device or the ROM must see is sent to
 * the slow path. */
#include "vm_internal.h"

static int needs_slow_path(const struct phys_range *r, const struct mv_page *p,
			   int write)
{
	if (r->type == MV_PAGE_MMIO)
		return 1;
	if (write == MV_VM_HVA_READ)
		return p->hstate == MV_HSTATE_ALL;
	if (write == MV_VM_HVA_WRITE && (p->flags & MV_PAGE_F_TRACKED))
		return 1;
	return r->type == MV_PAGE_ROM || p->hstate >= MV_HSTATE_WRITE;
}

static int translate(struct mv_vm *vm, uint64_t gpa, int write, void **ptr)
{
	uint64_t gfn = gpa >> MV_PAGE_SHIFT;
	struct phys_range *r = range_find(vm, gfn);
	struct mv_page *p;
	const uint8_t *base;
	int rc;

	if (!r)
		return -MV_ERANGE;
	p = &r->pages[gfn - r->first_gfn];
	if (needs_slow_path(r, p, write))
		return MV_VM_SLOW_PATH;
	if (write) {
		rc = page_make_writable(vm, p, gfn);
		if (rc)
			return rc;
	}
	base = page_read_ptr(vm, p);
	if (!base)
		return -MV_EINTERNAL;
	*ptr = (void *)(base + (gpa & (MV_PAGE_SIZE - 1)));
	return 0;
}

int mv_vm_gpa_to_hva(struct mv_vm *vm, uint64_t gpa, int write, void **ptr)
{
	int rc;

	if (!vm || !ptr || (unsigned)write > MV_VM_HVA_WRITE_UNTRACKED)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = mv_vm_gpa_to_hva_locked(vm, gpa, write, ptr);
	mv_vm_unlock(vm);
	return rc;
}

int mv_vm_gpa_to_hva_locked(struct mv_vm *vm, uint64_t gpa, int write,
			    void **ptr)
{
	if (!vm || !ptr || (unsigned)write > MV_VM_HVA_WRITE_UNTRACKED)
		return -MV_EINVAL;
	if (vm_busy(vm, write != MV_VM_HVA_READ))
		return -MV_EBUSY;
	if (gpa >= MV_GPA_LIMIT)
		return -MV_ERANGE;
	return translate(vm, gpa, write, ptr);
}
