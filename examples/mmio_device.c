/* A guest-physical device with an MMIO callback.
 *
 * The VM has 1 MiB of RAM at 0 and one page of device registers at
 * 0xfed00000. Every access to that page goes to dev_read/dev_write (a
 * small counter device: ID, COUNT, SCRATCH); a host pointer is never
 * handed out for it (mv_vm_gpa_to_hva answers MV_VM_SLOW_PATH).
 *
 * Build:  cc -o mmio_device mmio_device.c $(pkg-config --cflags --libs memvisor)
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/vm.h>

#define DEV_GPA 0xfed00000u
#define REG_ID 0x0        /* read-only: 0x4d56 ("MV") */
#define REG_COUNT 0x4     /* read: writes seen so far */
#define REG_SCRATCH 0x8   /* read/write */

struct device {
	uint32_t writes;
	uint32_t scratch;
};

/* Registers are 32 bits wide; other sizes or offsets read as zeros and
 * are dropped on write, as many real devices do. */
static int dev_read(void *opaque, uint64_t off, void *buf, size_t len)
{
	struct device *dev = opaque;
	uint32_t v = 0;

	if (off == REG_ID)
		v = 0x4d56;
	else if (off == REG_COUNT)
		v = dev->writes;
	else if (off == REG_SCRATCH)
		v = dev->scratch;
	memset(buf, 0, len);
	if (len == sizeof(v))
		memcpy(buf, &v, sizeof(v));
	return 0;
}

static int dev_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	struct device *dev = opaque;

	dev->writes++;
	if (off == REG_SCRATCH && len == sizeof(dev->scratch))
		memcpy(&dev->scratch, buf, sizeof(dev->scratch));
	return 0;
}

static int reg_read(struct mv_vm *vm, uint32_t reg, uint32_t *v)
{
	return mv_vm_phys_read(vm, DEV_GPA + reg, v, sizeof(*v));
}

static int run(struct mv_vm *vm, struct device *dev)
{
	uint32_t id, count, scratch, v = 0xc0ffee;
	void *p;
	int rc;

	rc = reg_read(vm, REG_ID, &id);
	if (!rc)
		rc = mv_vm_phys_write(vm, DEV_GPA + REG_SCRATCH, &v, sizeof(v));
	if (!rc)
		rc = reg_read(vm, REG_SCRATCH, &scratch);
	if (rc)
		return rc;
	printf("device id 0x%" PRIx32 ", scratch 0x%" PRIx32 "\n", id, scratch);

	/* RAM goes straight to memory; the device page never does. */
	rc = mv_vm_gpa_to_hva(vm, 0x1000, 1, &p);
	printf("ram 0x1000: %s\n", rc == 0 ? "host pointer" : mv_strerror(rc));
	if (rc == 0)
		strcpy(p, "hello from RAM");
	rc = mv_vm_gpa_to_hva(vm, DEV_GPA, 0, &p);
	printf("device page: %s\n",
	       rc == MV_VM_SLOW_PATH ? "slow path (callbacks)" : "unexpected");
	if (rc != MV_VM_SLOW_PATH)
		return rc < 0 ? rc : -MV_ESTATE;

	char text[15];

	rc = mv_vm_phys_read(vm, 0x1000, text, sizeof(text));
	if (!rc)
		rc = reg_read(vm, REG_COUNT, &count);
	if (rc)
		return rc;
	printf("ram reads \"%s\"; the device saw %" PRIu32 " write(s)\n",
	       text, count);

	/* An access outside every range changes nothing. */
	rc = mv_vm_phys_write(vm, 0x80000000, &v, sizeof(v));
	printf("write at 0x80000000: %s\n", mv_strerror(rc));
	return dev->writes == 1 ? 0 : -MV_ESTATE;
}

int main(void)
{
	struct device dev = { 0 };
	struct mv_vm_range ranges[] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = 1 << 20,
		  .name = "ram" },
		{ .type = MV_PAGE_MMIO, .gpa = DEV_GPA, .size = MV_PAGE_SIZE,
		  .name = "counter", .read = dev_read, .write = dev_write,
		  .opaque = &dev },
	};
	struct mv_vm_config cfg = { .ranges = ranges, .nranges = 2 };
	struct mv_host *host;
	struct mv_vm *vm;
	int rc;

	rc = mv_host_create(NULL, &host);
	if (rc) {
		fprintf(stderr, "mv_host_create: %s\n", mv_strerror(rc));
		return 1;
	}
	rc = mv_vm_create(host, &cfg, &vm);
	if (!rc) {
		rc = run(vm, &dev);
		mv_vm_destroy(vm);
	}
	mv_host_destroy(host);
	if (rc)
		fprintf(stderr, "mmio_device: %s\n", mv_strerror(rc));
	return rc ? 1 : 0;
}
