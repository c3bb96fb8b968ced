/* The one link from phys/ to the shadow MMU (src/mmu/): a VM carries its
 * MMU, created with its first vCPU, and destroys it first thing in
 * mv_vm_destroy, while every page and hook still exists. Callers hold the
 * VM lock or own the VM exclusively (creation, destruction). */
#ifndef MV_PHYS_VM_MMU_H
#define MV_PHYS_VM_MMU_H

#include <memvisor/vm.h>

void *vm_mmu_get(struct mv_vm *vm);
void vm_mmu_set(struct mv_vm *vm, void *mmu, void (*destroy)(void *mmu));

#include "phys/vm_locked.h"

/* Implemented by src/mmu/flush.c, always in pairs: the calling thread
 * stops using host pointers of its vCPUs (it is about to take a VM lock,
 * or to wait for another thread, and may block while a flush waits for
 * those vCPUs); when the last pair ends, the vCPUs it stopped are INSIDE
 * again, their pending flushes taken, so that their TLBs may be used as
 * before the call. */
void mmu_thread_quiesce(void);
void mmu_thread_resume(void);

#endif
