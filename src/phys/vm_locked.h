/* Lookups for the layers above phys/ inside the library (the shadow MMU,
 * the sharing scanner) that already hold the VM lock. */
#ifndef MV_PHYS_VM_LOCKED_H
#define MV_PHYS_VM_LOCKED_H

#include <memvisor/vm.h>

/* mv_vm_page for a caller that holds the VM lock: the same descriptor (or
 * NULL outside every range) without the recursive lock and the flush
 * protocol's quiesce/resume that mv_vm_page pays on every call, which the
 * fault path and the reverse map would pay several times a fill. The
 * pointer is valid while the lock is held (a range is removed only under
 * it). */
struct mv_page *vm_page_locked(struct mv_vm *vm, uint64_t gfn);

#endif
