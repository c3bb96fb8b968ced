/* A VM's guest-physical memory (src/phys/) behind the walker's mv_gmem.
 *
 * Page-table reads and A/D updates take the same roads as any guest access:
 * RAM goes straight to the backing host page (a write first makes the page
 * private, so an A/D update on a shared or zero page breaks it like a guest
 * store would); a page a handler watches goes through mv_vm_phys_read /
 * mv_vm_phys_write so the handler sees the access; MMIO and holes are
 * UNBACKED (the walker reports MV_WALK_NOT_RAM); ROM and a write the
 * balloon policy refuses drop the A/D write (READONLY); a write that needs
 * a host page the budget or reservation refuses returns the negative code,
 * and the walk with it.
 *
 * Each call takes the VM lock once for its whole duration: the host pointer
 * from mv_vm_gpa_to_hva_locked is only stable under it, and it makes the
 * slow-path compare-and-write atomic against every other slow-path writer
 * (the lock is recursive, so the slow path may call mv_vm_phys_*). The
 * locked variant (gmem_vm_init_locked) is for callers that hold it.
 */
#include <string.h>

#include <memvisor/mmu.h>
#include <memvisor/vm.h>

#include "mmu/shadow.h"

static uint64_t load(const void *p, unsigned size)
{
	if (size == 8)
		return __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
	return __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
}

static bool compare_exchange(void *p, unsigned size, uint64_t old,
			     uint64_t val)
{
	if (size == 8)
		return __atomic_compare_exchange_n((uint64_t *)p, &old, val,
						   false, __ATOMIC_SEQ_CST,
						   __ATOMIC_SEQ_CST);
	uint32_t expect = (uint32_t)old;

	return __atomic_compare_exchange_n((uint32_t *)p, &expect,
					   (uint32_t)val, false,
					   __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
}

static bool is_type(struct mv_vm *vm, uint64_t gpa, enum mv_page_type t)
{
	const struct mv_page *p = mv_vm_page(vm, gpa >> MV_PAGE_SHIFT);

	return p && mv_page_type(p) == t;
}

/* A read a handler must see (MV_HSTATE_ALL on RAM or ROM). */
static int slow_read(struct mv_vm *vm, uint64_t gpa, unsigned size,
		     uint64_t *val)
{
	uint64_t v = 0;

	if (is_type(vm, gpa, MV_PAGE_MMIO))
		return MV_GMEM_UNBACKED;
	if (mv_vm_phys_read(vm, gpa, &v, size))
		return MV_GMEM_UNBACKED;
	*val = v;
	return MV_GMEM_OK;
}

/* Under the VM lock (held by the caller). */
static int read_locked(void *opaque, uint64_t gpa, unsigned size,
		       uint64_t *val)
{
	struct mv_vm *vm = opaque;
	void *p;
	int rc = mv_vm_gpa_to_hva_locked(vm, gpa, 0, &p);

	if (rc == 0)
		*val = load(p, size);
	else if (rc == MV_VM_SLOW_PATH)
		rc = slow_read(vm, gpa, size, val);
	else
		rc = MV_GMEM_UNBACKED;
	return rc;
}

static int vm_read(void *opaque, uint64_t gpa, unsigned size, uint64_t *val)
{
	int rc;

	mv_vm_lock(opaque);
	rc = read_locked(opaque, gpa, size, val);
	mv_vm_unlock(opaque);
	return rc;
}

/* Why a write to RAM was not done. The balloon policy refusing a write to
 * a ballooned page (-MV_ESTATE) drops it, as a bus drops a write to ROM.
 * Anything else, above all a copy of a SHARED page that the budget or the
 * reservation refuses (-MV_EBUDGET, -MV_ERESERVATION, -MV_ENOMEM), is an
 * error the walk returns: dropping it would lose a D bit, and the guest
 * would take a dirtied page for clean. */
static int write_refused(int rc)
{
	if (rc == 0)
		return MV_GMEM_OK;
	return rc == -MV_ESTATE ? MV_GMEM_READONLY : rc;
}

/* A write a handler must see, or one to ROM or MMIO. */
static int slow_cmpxchg(struct mv_vm *vm, uint64_t gpa, unsigned size,
			uint64_t old, uint64_t val)
{
	uint64_t cur = 0;

	if (is_type(vm, gpa, MV_PAGE_MMIO))
		return MV_GMEM_UNBACKED;
	if (is_type(vm, gpa, MV_PAGE_ROM))
		return MV_GMEM_READONLY;
	if (mv_vm_phys_read(vm, gpa, &cur, size))
		return MV_GMEM_UNBACKED;
	if (cur != old)
		return MV_GMEM_CHANGED;
	return write_refused(mv_vm_phys_write(vm, gpa, &val, size));
}

/* Under the VM lock (held by the caller). */
static int cmpxchg_locked(void *opaque, uint64_t gpa, unsigned size,
			  uint64_t old, uint64_t val)
{
	struct mv_vm *vm = opaque;
	void *p;
	/* In place even on a page the MMU write-tracks: its own A/D
	 * updates are no guest writes to report. */
	int rc = mv_vm_gpa_to_hva_locked(vm, gpa, MV_VM_HVA_WRITE_UNTRACKED,
					 &p);

	if (rc == 0)
		return compare_exchange(p, size, old, val) ? MV_GMEM_OK
							   : MV_GMEM_CHANGED;
	if (rc == MV_VM_SLOW_PATH)
		return slow_cmpxchg(vm, gpa, size, old, val);
	if (rc == -MV_ERANGE)
		return MV_GMEM_UNBACKED;
	return write_refused(rc);
}

static int vm_cmpxchg(void *opaque, uint64_t gpa, unsigned size, uint64_t old,
		      uint64_t val)
{
	int rc;

	mv_vm_lock(opaque);
	rc = cmpxchg_locked(opaque, gpa, size, old, val);
	mv_vm_unlock(opaque);
	return rc;
}

int mv_gmem_vm_init(struct mv_gmem *gm, struct mv_vm *vm)
{
	if (!gm || !vm)
		return -MV_EINVAL;
	gm->read = vm_read;
	gm->cmpxchg = vm_cmpxchg;
	gm->opaque = vm;
	return 0;
}

/* The shadow fault walks with the VM lock already held: the same memory
 * without taking the lock again for every entry (a recursive lock, the
 * flush protocol's quiesce and resume: a tenth of a fill). */
void gmem_vm_init_locked(struct mv_gmem *gm, struct mv_vm *vm)
{
	gm->read = read_locked;
	gm->cmpxchg = cmpxchg_locked;
	gm->opaque = vm;
}
