/* A vCPU over guest page tables.
 *
 * The guest has 2 MiB of RAM holding 4-level page tables that map one
 * user page writable and one page read-only for the kernel. The vCPU
 * stores through a guest-virtual address (the shadow MMU walks the guest's
 * tables once and fills its shadow), the bytes land in guest-physical
 * memory, and the accesses the guest may not make come back as the exact
 * page faults to inject.
 *
 * Build:  cc -o vcpu_paging vcpu_paging.c $(pkg-config --cflags --libs memvisor)
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

#define PML4 0x1000u
#define PDPT 0x2000u
#define PD 0x3000u
#define PT 0x4000u

static int put_entry(struct mv_vm *vm, uint64_t table, unsigned index,
		     uint64_t entry)
{
	return mv_vm_phys_write(vm, table + index * 8u, &entry, sizeof(entry));
}

/* VA 0x10000 -> GPA 0x10000 (user, writable), VA 0x11000 -> GPA 0x11000
 * (supervisor, read-only); nothing else. */
static int build_tables(struct mv_vm *vm)
{
	int rc = put_entry(vm, PML4, 0, PDPT | MV_PTE_P | MV_PTE_W | MV_PTE_U);

	if (!rc)
		rc = put_entry(vm, PDPT, 0, PD | MV_PTE_P | MV_PTE_W | MV_PTE_U);
	if (!rc)
		rc = put_entry(vm, PD, 0, PT | MV_PTE_P | MV_PTE_W | MV_PTE_U);
	if (!rc)
		rc = put_entry(vm, PT, 0x10,
			       0x10000 | MV_PTE_P | MV_PTE_W | MV_PTE_U);
	if (!rc)
		rc = put_entry(vm, PT, 0x11, 0x11000 | MV_PTE_P);
	return rc;
}

static void report(const char *what, int rc, const struct mv_fault *f)
{
	if (rc == MV_VCPU_OK)
		printf("%-28s ok\n", what);
	else if (rc == MV_VCPU_FAULT)
		printf("%-28s #PF error code 0x%" PRIx32 " at 0x%" PRIx64 "\n",
		       what, f->error_code, f->addr);
	else
		printf("%-28s %s\n", what, rc < 0 ? mv_strerror(rc) : "retry");
}

static int run(struct mv_vm *vm, struct mv_vcpu *v)
{
	struct mv_cpu_regs regs = {
		.cr0 = MV_CR0_PG | MV_CR0_WP | MV_CR0_PE, .cr3 = PML4,
		.cr4 = MV_CR4_PAE, .efer = MV_EFER_LME | MV_EFER_LMA,
	};
	struct mv_fault f;
	char text[16] = "";
	int rc = build_tables(vm);

	if (!rc)
		rc = mv_vcpu_set_regs(v, &regs);
	if (rc)
		return rc < 0 ? rc : -MV_ESTATE;

	rc = mv_vcpu_write(v, 0x10000, "hello, guest", 13, MV_ACC_USER, &f);
	report("user write at 0x10000", rc, &f);
	if (rc == MV_VCPU_OK)
		rc = mv_vm_phys_read(vm, 0x10000, text, 13);
	printf("guest-physical 0x10000 reads \"%s\"\n", rc ? "?" : text);

	rc = mv_vcpu_read(v, 0x11000, text, 4, 0, &f);
	report("kernel read at 0x11000", rc, &f);
	rc = mv_vcpu_write(v, 0x11000, text, 4, 0, &f);
	report("kernel write at 0x11000", rc, &f);
	rc = mv_vcpu_read(v, 0x11000, text, 4, MV_ACC_USER, &f);
	report("user read at 0x11000", rc, &f);
	rc = mv_vcpu_read(v, 0x200000, text, 4, MV_ACC_USER, &f);
	report("user read at 0x200000", rc, &f);
	mv_vcpu_exit(v);  /* this thread holds no TLB pointer from here on */
	return 0;
}

int main(void)
{
	struct mv_vm_range ram = { .type = MV_PAGE_RAM, .gpa = 0,
				   .size = 2u << 20, .name = "ram" };
	struct mv_vm_config cfg = { .ranges = &ram, .nranges = 1 };
	struct mv_host *host = NULL;
	struct mv_vm *vm = NULL;
	struct mv_vcpu *v = NULL;
	int rc = mv_host_create(NULL, &host);

	if (!rc)
		rc = mv_vm_create(host, &cfg, &vm);
	if (!rc)
		rc = mv_vcpu_create(vm, NULL, &v);
	if (!rc)
		rc = run(vm, v);
	if (rc)
		fprintf(stderr, "vcpu_paging: %s\n", mv_strerror(rc));
	if (v)
		mv_vcpu_destroy(v);
	if (vm)
		mv_vm_destroy(vm);
	mv_host_destroy(host);
	return rc ? 1 : 0;
}
