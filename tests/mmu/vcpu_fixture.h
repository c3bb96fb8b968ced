/* Shared by the vCPU tests: a host, a VM with low RAM, a hole, an MMIO
 * device and RAM far above 4 GiB, and helpers that write 4-level guest
 * page tables through the VM's physical memory. */
#ifndef MV_TEST_VCPU_FIXTURE_H
#define MV_TEST_VCPU_FIXTURE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <memvisor/host.h>
#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

#define VF_LOW_SIZE (16ull << 20)
#define VF_MMIO_GPA (32ull << 20)
#define VF_MMIO_SIZE (64ull << 10)
#define VF_HIGH_GPA (1ull << 40)
#define VF_HIGH_SIZE (4ull << 20)
#define VF_PT_BASE (8ull << 20)  /* page tables are taken from here up */

struct vf {
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vcpu *cpu;
	uint64_t next_table;
	uint8_t dev[VF_MMIO_SIZE];
	unsigned dev_reads, dev_writes;
};

static inline int vf_dev_read(void *opaque, uint64_t off, void *buf,
			      size_t len)
{
	struct vf *f = opaque;

	memcpy(buf, f->dev + off, len);
	f->dev_reads++;
	return 0;
}

static inline int vf_dev_write(void *opaque, uint64_t off, const void *buf,
			       size_t len)
{
	struct vf *f = opaque;

	memcpy(f->dev + off, buf, len);
	f->dev_writes++;
	return 0;
}

static inline void vf_init(struct vf *f, const struct mv_host_config *hc,
			   const struct mv_mmu_config *mc)
{
	struct mv_vm_range r[] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = VF_LOW_SIZE,
		  .name = "low" },
		{ .type = MV_PAGE_MMIO, .gpa = VF_MMIO_GPA,
		  .size = VF_MMIO_SIZE, .name = "dev", .read = vf_dev_read,
		  .write = vf_dev_write, .opaque = f },
		{ .type = MV_PAGE_RAM, .gpa = VF_HIGH_GPA,
		  .size = VF_HIGH_SIZE, .name = "high" },
	};
	struct mv_vm_config vc = { .ranges = r, .nranges = 3 };

	memset(f, 0, sizeof(*f));
	assert_int_equal(mv_host_create(hc, &f->host), 0);
	assert_int_equal(mv_vm_create(f->host, &vc, &f->vm), 0);
	if (mc)
		assert_int_equal(mv_mmu_configure(f->vm, mc), 0);
	assert_int_equal(mv_vcpu_create(f->vm, NULL, &f->cpu), 0);
	f->next_table = VF_PT_BASE;
}

static inline void vf_fini(struct vf *f)
{
	mv_vcpu_destroy(f->cpu);
	mv_vm_destroy(f->vm);
	mv_host_destroy(f->host);
}

static inline void vf_put(struct vf *f, uint64_t gpa, uint64_t val)
{
	assert_int_equal(mv_vm_phys_write(f->vm, gpa, &val, 8), 0);
}

static inline uint64_t vf_get(struct vf *f, uint64_t gpa)
{
	uint64_t v = 0;

	assert_int_equal(mv_vm_phys_read(f->vm, gpa, &v, 8), 0);
	return v;
}

static inline uint64_t vf_new_table(struct vf *f)
{
	uint64_t t = f->next_table;

	f->next_table += MV_PAGE_SIZE;
	assert_true(f->next_table <= VF_LOW_SIZE);
	return t;
}

/* The default fixture (no host or MMU configuration) and an empty PML4
 * for it: returns the PML4's gpa, the CR3 of the tests' address space. */
static inline uint64_t vf_setup(struct vf *f)
{
	vf_init(f, NULL, NULL);
	return vf_new_table(f);
}

/* The gpa of @va's entry in its table at @level (1: the PT) of the
 * 4-level tables at @cr3; missing tables above it are made (P|W|U). */
static inline uint64_t vf_entry(struct vf *f, uint64_t cr3, uint64_t va,
				unsigned level)
{
	uint64_t table = cr3;

	for (unsigned l = 4; l > level; l--) {
		uint64_t eg = table + ((va >> (12 + 9 * (l - 1))) & 511) * 8;
		uint64_t e = vf_get(f, eg);

		if (!(e & MV_PTE_P)) {
			e = vf_new_table(f) | MV_PTE_P | MV_PTE_W | MV_PTE_U;
			vf_put(f, eg, e);
		}
		table = e & 0x000ffffffffff000ull;
	}
	return table + ((va >> (12 + 9 * (level - 1))) & 511) * 8;
}

/* Map the 4 KiB page @va -> @gpa in the 4-level tables at @cr3 with
 * @flags on the leaf (upper levels get P|W|U). Returns the leaf's gpa. */
static inline uint64_t vf_map4k(struct vf *f, uint64_t cr3, uint64_t va,
				uint64_t gpa, uint64_t flags)
{
	uint64_t leaf = vf_entry(f, cr3, va, 1);

	vf_put(f, leaf, gpa | flags);
	return leaf;
}

/* The same for a 2 MiB page (PS is added to @flags). */
static inline uint64_t vf_map2m(struct vf *f, uint64_t cr3, uint64_t va,
				uint64_t gpa, uint64_t flags)
{
	uint64_t leaf = vf_entry(f, cr3, va, 2);

	vf_put(f, leaf, gpa | flags | MV_PTE_PS);
	return leaf;
}

/* 4-level paging with CR0.WP and EFER.NXE on the tables at @cr3: the
 * registers, to change before use, or set on any vCPU. */
static inline struct mv_cpu_regs vf_long_regs(uint64_t cr3)
{
	return (struct mv_cpu_regs){
		.cr0 = MV_CR0_PE | MV_CR0_PG | MV_CR0_WP,
		.cr4 = MV_CR4_PAE,
		.efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE,
		.cr3 = cr3,
	};
}

static inline void vf_cpu_long_mode(struct mv_vcpu *v, uint64_t cr3)
{
	struct mv_cpu_regs r = vf_long_regs(cr3);

	assert_int_equal(mv_vcpu_set_regs(v, &r), 0);
}

static inline void vf_long_mode(struct vf *f, uint64_t cr3)
{
	vf_cpu_long_mode(f->cpu, cr3);
}

#endif
