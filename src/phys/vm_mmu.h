/* The one link from phys/ to the shadow MMU (src/mmu/): a VM carries its
 * MMU, created with its first vCPU, and destroys it first thing in
 * mv_vm_destroy, while every page and hook still exists. Callers hold the
 * VM lock or own the VM exclusively (creation, destruction). */
#ifndef MV_PHYS_VM_MMU_H
#define MV_PHYS_VM_MMU_H

#include <memvisor/vm.h>

void *vm_mmu_get(struct mv_vm *vm);
void vm_mmu_set(struct mv_vm *vm, void *mmu, void (*destroy)(void *mmu));

/* mv_vm_page for a caller that holds the VM lock: the same descriptor (or
 * NULL outside every range) without the recursive lock and the flush
 * protocol's quiesce/resume that mv_vm_page pays on every call, which the
 * fault path and the reverse map would pay several times a fill. The
 * pointer is valid while the lock is held (a range is removed only under
 * it). */
struct mv_page *vm_page_locked(struct mv_vm *vm, uint64_t gfn);

/* Implemented by src/mmu/flush.c, always in pairs: the calling thread
 * stops using host pointers of its vCPUs (it is about to take a VM lock,
 * or to wait for another thread, and may block while a flush waits for
 * those vCPUs); when the last pair ends, the vCPUs it stopped are INSIDE
 * again, their pending flushes taken, so that their TLBs may be used as
 * before the call. */
void mmu_thread_quiesce(void);
void mmu_thread_resume(void);

#endif
