/* The one link from phys/ to the shadow MMU (src/mmu/): a VM carries its
 * MMU, created with its first vCPU, and destroys it first thing in
 * mv_vm_destroy, while every page and hook still exists. Callers hold the
 * VM lock or own the VM exclusively (creation, destruction). */
#ifndef MV_PHYS_VM_MMU_H
#define MV_PHYS_VM_MMU_H

#include <memvisor/vm.h>

void *vm_mmu_get(struct mv_vm *vm);
void vm_mmu_set(struct mv_vm *vm, void *mmu, void (*destroy)(void *mmu));

/* Implemented by src/mmu/flush.c: the calling thread stops using host
 * pointers of its vCPUs (it is about to take the VM lock, and may block on
 * it while a flush waits for those vCPUs). */
void mmu_thread_quiesce(void);

#endif
