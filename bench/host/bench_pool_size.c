/* The largest pool reachable: chunks are made (pages allocated, never
 * touched, so only metadata becomes resident) until the pool refuses or
 * the target size is reached, MV_BENCH_POOL_GIB (default 1024 GiB).
 *
 * Baseline, measured in the same run: one mapping per 2 MiB memfd range,
 * made until mmap refuses (vm.max_map_count), which is where a pool that
 * maps each chunk on its own stops. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <memvisor/host.h>

#include "bench.h"

#define BATCH (64u * MV_CHUNK_PAGES)    /* 128 MiB per call */

static long maps_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int ch;

	if (!f)
		return -1;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Bytes reachable with one mapping per chunk. */
static double per_chunk_mappings_bytes(void)
{
	enum { MAX = 1u << 20 };
	void **maps = malloc(MAX * sizeof(*maps));
	int fd = memfd_create("bench-per-chunk", MFD_CLOEXEC);
	uint32_t n = 0;

	if (!maps || fd < 0 || ftruncate(fd, (off_t)MAX * MV_CHUNK_SIZE))
		return 0;
	/* Alternate protections so that neighbours never merge. */
	while (n < MAX) {
		void *p = mmap(NULL, MV_CHUNK_SIZE,
			       n & 1 ? PROT_READ : PROT_READ | PROT_WRITE,
			       MAP_SHARED, fd, (off_t)n * MV_CHUNK_SIZE);
		if (p == MAP_FAILED)
			break;
		maps[n++] = p;
	}
	for (uint32_t i = 0; i < n; i++)
		munmap(maps[i], MV_CHUNK_SIZE);
	close(fd);
	free(maps);
	return (double)n * MV_CHUNK_SIZE;
}

int main(void)
{
	const char *env = getenv("MV_BENCH_POOL_GIB");
	uint64_t gib = env ? strtoull(env, NULL, 10) : 1024;
	uint64_t target = gib << (30 - MV_PAGE_SHIFT), done = 0;
	struct mv_reservation res = { .base = target };
	mv_page_id *ids = malloc(BATCH * sizeof(*ids));
	struct mv_host_stats st;
	struct mv_host *h;
	mv_vmid vm;
	int rc = 0;

	double base = per_chunk_mappings_bytes();
	long maps0 = maps_count();

	if (!ids || mv_host_create(NULL, &h) || mv_host_vm_create(h, &res, &vm))
		return 1;
	uint64_t t0 = bench_now_ns();

	while (done < target && !rc) {
		uint32_t n = target - done < BATCH ? (uint32_t)(target - done) : BATCH;

		rc = mv_host_alloc(h, vm, MV_ACCOUNT_BASE, n, NULL, 0, ids);
		done += rc ? 0 : n;
	}
	uint64_t ns = bench_now_ns() - t0;
	long maps1 = maps_count();

	mv_host_get_stats(h, &st);
	double bytes = (double)done * MV_PAGE_SIZE;

	if (rc)
		fprintf(stderr, "bench_pool_size: stopped at %.1f GiB: %s\n",
			bytes / (1ull << 30), mv_strerror(rc));
	bench_report_vs("host.pool_size_reached", bytes / (1ull << 30), "GiB",
			"host.pool_size_one_mapping_per_chunk",
			base / (1ull << 30));
	bench_report("host.pool_size_one_mapping_per_chunk", base / (1ull << 30),
		     "GiB");
	bench_report("host.pool_size_mappings_added", (double)(maps1 - maps0),
		     "mappings");
	bench_report("host.pool_size_ns_per_chunk",
		     (double)ns / (double)(st.chunks ? st.chunks : 1), "ns");
	bench_report("host.pool_size_metadata", (double)st.metadata_bytes /
		     (1ull << 20), "MiB");
	mv_host_destroy(h);
	free(ids);
	return done == target ? 0 : 1;
}
