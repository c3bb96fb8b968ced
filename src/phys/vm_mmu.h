/* The one link from phys/ to the shadow MMU (src/mmu/): a VM carries its
 * MMU, created with its first vCPU, and destroys it first thing in
 * mv_vm_destroy, while every page and hook still exists. Callers hold the
 * VM lock or own the VM exclusively (creation, destruction). */
#ifndef MV_PHYS_VM_MMU_H
#define MV_PHYS_VM_MMU_H

#include <memvisor/vm.h>

void *vm_mmu_get(struct mv_vm *vm);
void vm_mmu_set(struct mv_vm *vm, void *mmu, void (*destroy)(void *mmu));

#endif
