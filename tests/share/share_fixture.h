/* Shared helpers of the scanner tests: VMs with one RAM range at 0 whose
 * pages are filled with one byte value each. */
#ifndef MV_TEST_SHARE_FIXTURE_H
#define MV_TEST_SHARE_FIXTURE_H

#include <stdint.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/share.h>
#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

static inline struct mv_vm *sx_vm(struct mv_host *host, uint64_t pages)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = pages * MV_PAGE_SIZE, .name = "ram" };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1 };
	struct mv_vm *vm = NULL;

	return mv_vm_create(host, &cfg, &vm) ? NULL : vm;
}

/* Fill page @gfn with byte @v (0 writes zeros: the page gets allocated). */
static inline int sx_fill(struct mv_vm *vm, uint64_t gfn, uint8_t v)
{
	uint8_t buf[MV_PAGE_SIZE];

	memset(buf, v, sizeof(buf));
	return mv_vm_phys_write(vm, gfn << MV_PAGE_SHIFT, buf, sizeof(buf));
}

/* 1 when every byte of page @gfn is @v. */
static inline int sx_holds(struct mv_vm *vm, uint64_t gfn, uint8_t v)
{
	uint8_t buf[MV_PAGE_SIZE];

	if (mv_vm_phys_read(vm, gfn << MV_PAGE_SHIFT, buf, sizeof(buf)))
		return 0;
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != v)
			return 0;
	return 1;
}

static inline enum mv_page_state sx_state(struct mv_vm *vm, uint64_t gfn)
{
	struct mv_page *p = mv_vm_page(vm, gfn);
	enum mv_page_state s;

	mv_vm_lock(vm);
	s = mv_page_state(p);
	mv_vm_unlock(vm);
	return s;
}

static inline mv_page_id sx_id(struct mv_vm *vm, uint64_t gfn)
{
	struct mv_page *p = mv_vm_page(vm, gfn);
	mv_page_id id;

	mv_vm_lock(vm);
	id = mv_page_host_id(p);
	mv_vm_unlock(vm);
	return id;
}

static inline int sx_add(struct mv_share *s, struct mv_vm *vm, uint64_t pages,
			 int opt_out, int zero_only, uint64_t salt)
{
	struct mv_share_vm_config c = { .gfn = 0, .count = pages,
					.opt_out = opt_out,
					.zero_only = zero_only, .salt = salt };

	return mv_share_vm_add(s, vm, &c);
}

/* Page @gfn (paging off: va = gpa) all @v through the vCPU: a store
 * through the soft TLB's pointer when it has the page writable, else
 * mv_vcpu_write (which fills it). */
static inline int sx_vcpu_fill(struct mv_vcpu *cpu, uint64_t gfn, uint8_t v)
{
	uint64_t va = gfn << MV_PAGE_SHIFT;
	uint8_t buf[MV_PAGE_SIZE];
	void *p = mv_tlb_lookup(mv_vcpu_tlb(cpu), va, MV_TLB_SUP,
				MV_TLB_WRITE);

	if (p) {
		memset(p, v, MV_PAGE_SIZE);
		return 0;
	}
	memset(buf, v, sizeof(buf));
	return mv_vcpu_write(cpu, va, buf, sizeof(buf), 0, NULL);
}

/* The first of pages [0, @n) that does not hold all @last[gfn], or @n. */
static inline uint64_t sx_lost_write(struct mv_vm *vm, const uint8_t *last,
				     uint64_t n)
{
	for (uint64_t g = 0; g < n; g++)
		if (!sx_holds(vm, g, last[g]))
			return g;
	return n;
}

#endif
