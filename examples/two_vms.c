/* Two over-committed VMs on one host.
 *
 * The host allows 1280 pages (5 MiB) in use, the two VMs have 768 pages
 * (3 MiB) of RAM each: together they reserve more than the host holds
 * (MV_OVERCOMMIT_ALLOW). VM "a" writes all its RAM, VM "b" writes until
 * the budget refuses a page, "a" gives half its RAM back through the
 * balloon, and "b" finishes.
 *
 * Build:  cc -o two_vms two_vms.c $(pkg-config --cflags --libs memvisor)
 */
#include <stdio.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/version.h>
#include <memvisor/vm.h>

#define RAM_PAGES 768u

static int make_vm(struct mv_host *host, struct mv_vm **vm)
{
	struct mv_vm_range ram = {
		.type = MV_PAGE_RAM, .gpa = 0,
		.size = (uint64_t)RAM_PAGES * MV_PAGE_SIZE, .name = "ram",
	};
	struct mv_vm_config cfg = { .ranges = &ram, .nranges = 1 };

	return mv_vm_create(host, &cfg, vm);
}

/* Write one byte into every page from @first on, the way a guest touches
 * its memory; stops at the first refusal. *@done receives the pages
 * written. */
static int touch(struct mv_vm *vm, uint32_t first, uint32_t *done)
{
	int rc = 0;
	uint32_t gfn;

	for (gfn = first; gfn < RAM_PAGES && !rc; gfn++) {
		unsigned char b = (unsigned char)gfn;

		rc = mv_vm_phys_write(vm, (uint64_t)gfn * MV_PAGE_SIZE, &b, 1);
	}
	*done = gfn - first - (rc ? 1 : 0);
	return rc;
}

/* Pages in use count each VM's handy pages too: a few pages a VM takes
 * from the host ahead of time so that a first write rarely waits for it.
 * When the budget runs out, the other VMs' caches give theirs back first,
 * so "b" gets every page "a" does not use. */
static void report(const char *what, struct mv_host *host)
{
	struct mv_host_stats st;

	if (mv_host_get_stats(host, &st) == 0)
		printf("%-8s in use %llu of %llu pages\n", what,
		       (unsigned long long)(st.private_pages + st.shared_pages),
		       (unsigned long long)st.budget_pages);
}

static int run(struct mv_host *host, struct mv_vm *a, struct mv_vm *b)
{
	uint64_t gfns[RAM_PAGES / 2];
	uint32_t n;
	int rc;

	rc = touch(a, 0, &n);
	printf("vm a     wrote %u pages: %s\n", n, mv_strerror(rc));
	if (rc)
		return rc;
	report("", host);

	rc = touch(b, 0, &n);
	printf("vm b     wrote %u pages, then: %s\n", n, mv_strerror(rc));
	if (rc != -MV_EBUDGET)
		return rc ? rc : -MV_ESTATE;  /* the budget must refuse */
	report("", host);

	/* The guest's balloon driver in "a" hands back the upper half. */
	for (uint32_t i = 0; i < RAM_PAGES / 2; i++)
		gfns[i] = RAM_PAGES / 2 + i;
	rc = mv_vm_balloon_inflate(a, gfns, RAM_PAGES / 2);
	printf("vm a     ballooned %u pages: %s\n", RAM_PAGES / 2,
	       mv_strerror(rc));
	if (rc)
		return rc;
	report("", host);

	uint32_t more;

	rc = touch(b, n, &more);
	printf("vm b     wrote the other %u pages: %s\n", more,
	       mv_strerror(rc));
	report("", host);
	return rc;
}

int main(void)
{
	struct mv_host_config cfg = {
		.budget_pages = 1280,
		.overcommit = MV_OVERCOMMIT_ALLOW,
	};
	struct mv_host *host;
	struct mv_vm *a = NULL, *b = NULL;
	int rc;

	printf("memvisor %s: 2 VMs of %u pages on a host of %llu\n",
	       mv_version(), RAM_PAGES, (unsigned long long)cfg.budget_pages);
	rc = mv_host_create(&cfg, &host);
	if (rc) {
		fprintf(stderr, "mv_host_create: %s\n", mv_strerror(rc));
		return 1;
	}
	rc = make_vm(host, &a);
	if (!rc)
		rc = make_vm(host, &b);
	if (!rc)
		rc = run(host, a, b);
	if (rc)
		fprintf(stderr, "two_vms: %s\n", mv_strerror(rc));
	if (b)
		mv_vm_destroy(b);
	if (a)
		mv_vm_destroy(a);
	mv_host_destroy(host);
	return rc ? 1 : 0;
}
