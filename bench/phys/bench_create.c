/* VM creation benchmark: does a VM's size decide its start-up time?
 *
 *   phys.create_1g / _64g / _1t   ns (median) to create a VM with one RAM
 *                                 range of that size, against the
 *                                 creation of a one-page VM
 *   phys.destroy_1g / _64g / _1t  ns (median) to destroy it right after
 *                                 creation, against a one-page VM
 *   phys.create_refused_1t        ns until a 1 TiB VM is refused by a
 *                                 1 GiB budget (no over-commitment),
 *                                 against the one-page creation
 *   phys.create_metadata_1t       bytes the VM's structures hold right
 *                                 after creation (mv_vm_stats
 *                                 metadata_bytes), against the 16 bytes
 *                                 per page an eager descriptor array costs
 *   phys.boot_1t                  ns for creation, one write in every
 *                                 2 MiB of the first 1 GiB, a reset and
 *                                 destruction: the life of a short sandbox
 */
#include <stdio.h>
#include <stdlib.h>

#include <memvisor/host.h>
#include <memvisor/vm.h>

#include "bench.h"

#define GIB (1ull << 30)

static int create(struct mv_host *host, uint64_t bytes, struct mv_vm **vm)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = bytes };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1 };

	return mv_vm_create(host, &cfg, vm);
}

static void must(int rc, const char *what)
{
	if (rc) {
		fprintf(stderr, "bench_create: %s: %s\n", what,
			mv_strerror(rc));
		exit(1);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Median ns of @reps creations (and, apart, destructions) of @bytes: the
 * median, since other jobs share the machine. */
static void time_create(struct mv_host *host, uint64_t bytes, int reps,
			double *create_ns, double *destroy_ns)
{
	uint64_t tc[256], td[256];

	for (int i = 0; i < reps; i++) {
		struct mv_vm *vm;
		uint64_t t0 = bench_now_ns(), t1;

		must(create(host, bytes, &vm), "create");
		t1 = bench_now_ns();
		mv_vm_destroy(vm);
		tc[i] = t1 - t0;
		td[i] = bench_now_ns() - t1;
	}
	qsort(tc, (size_t)reps, sizeof(tc[0]), cmp_u64);
	qsort(td, (size_t)reps, sizeof(td[0]), cmp_u64);
	*create_ns = (double)tc[reps / 2];
	*destroy_ns = (double)td[reps / 2];
}

static double time_refused(double *rc_out)
{
	struct mv_host_config hc = { .budget_pages = GIB / MV_PAGE_SIZE,
				     .overcommit = MV_OVERCOMMIT_NONE };
	struct mv_host *host;
	struct mv_vm *vm;
	uint64_t t0;
	int rc;

	must(mv_host_create(&hc, &host), "host");
	t0 = bench_now_ns();
	rc = create(host, 1024 * GIB, &vm);
	t0 = bench_now_ns() - t0;
	*rc_out = rc;
	mv_host_destroy(host);
	return (double)t0;
}

static void metadata_1t(struct mv_host *host)
{
	struct mv_vm *vm;
	struct mv_vm_stats st;

	must(create(host, 1024 * GIB, &vm), "create");
	must(mv_vm_get_stats(vm, &st), "stats");
	bench_report_vs("phys.create_metadata_1t", (double)st.metadata_bytes,
			"bytes", "eager_descriptors_1t",
			1024.0 * GIB / MV_PAGE_SIZE * sizeof(struct mv_page));
	mv_vm_destroy(vm);
}

static double boot_1t(struct mv_host *host)
{
	struct mv_vm *vm;
	uint8_t b = 1;
	uint64_t t0 = bench_now_ns();

	must(create(host, 1024 * GIB, &vm), "create");
	for (uint64_t gpa = 0; gpa < GIB; gpa += 2u << 20)
		must(mv_vm_phys_write(vm, gpa, &b, 1), "write");
	must(mv_vm_reset(vm), "reset");
	mv_vm_destroy(vm);
	return (double)(bench_now_ns() - t0);
}

int main(void)
{
	static const struct {
		const char *create, *destroy;
		uint64_t bytes;
		int reps;
	} sizes[] = {
		{ "phys.create_1g", "phys.destroy_1g", GIB, 20 },
		{ "phys.create_64g", "phys.destroy_64g", 64 * GIB, 5 },
		{ "phys.create_1t", "phys.destroy_1t", 1024 * GIB, 5 },
	};
	struct mv_host *host;
	double one_c, one_d, c, d, rc;

	must(mv_host_create(NULL, &host), "host");
	time_create(host, MV_PAGE_SIZE, 200, &one_c, &one_d);
	for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		time_create(host, sizes[i].bytes, sizes[i].reps, &c, &d);
		bench_report_vs(sizes[i].create, c, "ns", "phys.create_1page",
				one_c);
		bench_report_vs(sizes[i].destroy, d, "ns", "phys.destroy_1page",
				one_d);
	}
	c = time_refused(&rc);
	if (rc != -MV_EBUDGET) {
		fprintf(stderr, "bench_create: 1 TiB not refused (%g)\n", rc);
		return 1;
	}
	bench_report_vs("phys.create_refused_1t", c, "ns", "phys.create_1page",
			one_c);
	metadata_1t(host);
	bench_report_vs("phys.boot_1t", boot_1t(host), "ns",
			"phys.create_1page", one_c);
	mv_host_destroy(host);
	return 0;
}
