/* Host pool benchmark: batch alloc+free throughput against mmap/munmap
 * and malloc/free of 4 KiB pages, and metadata bytes per host page.
 *
 * Every variant obtains a page, writes one byte into it and gives it back,
 * in batches of BATCH pages. The pool and malloc hand out memory that is
 * already resident after the first round; mmap faults a fresh page every
 * time: that is the cost the pool exists to avoid. */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memvisor/host.h>

#include "bench.h"

#define BATCH 512
#define ROUNDS 10000       /* 5 M pages per thread and repetition */
#define BASELINE_ROUNDS 200
#define REPEAT 3           /* best of: the machine is shared and noisy */

struct worker {
	struct mv_host *host;
	mv_vmid vm;
	int rc;
};

static int pool_rounds(struct mv_host *h, mv_vmid vm, int rounds)
{
	mv_page_id ids[BATCH];
	uint64_t sum = 0;

	for (int r = 0; r < rounds; r++) {
		int rc = mv_host_alloc(h, vm, MV_ACCOUNT_BASE, BATCH, NULL, 0, ids);

		if (rc)
			return rc;
		for (int i = 0; i < BATCH; i++) {
			unsigned char *p = mv_host_page_ptr(h, ids[i]);

			p[0] = (unsigned char)i;
			sum += p[0];
		}
		rc = mv_host_free(h, vm, BATCH, ids);
		if (rc)
			return rc;
	}
	bench_sink(sum);
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->rc = pool_rounds(w->host, w->vm, ROUNDS);
	return NULL;
}

/* Pages per second through the pool with @nthreads threads, one VM each. */
static double pool_rate_once(int nthreads)
{
	struct mv_host *h;
	struct worker w[2];
	pthread_t t[2];
	struct mv_reservation res = { .base = 1u << 20 };

	if (mv_host_create(NULL, &h))
		return 0;
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){ .host = h };
		if (mv_host_vm_create(h, &res, &w[i].vm) ||
		    pool_rounds(h, w[i].vm, 10))   /* warm up */
			return 0;
	}
	uint64_t t0 = bench_now_ns();

	for (int i = 0; i < nthreads; i++)
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	uint64_t ns = bench_now_ns() - t0;

	mv_host_destroy(h);
	for (int i = 0; i < nthreads; i++)
		if (w[i].rc)
			return 0;
	return (double)nthreads * ROUNDS * BATCH * 1e9 / (double)ns;
}

static double pool_rate(int nthreads)
{
	double best = 0;

	for (int i = 0; i < REPEAT; i++) {
		double r = pool_rate_once(nthreads);

		if (r == 0)
			return 0;
		best = r > best ? r : best;
	}
	return best;
}

static double mmap_rate(void)
{
	void *pages[BATCH];
	uint64_t t0 = bench_now_ns();

	for (int r = 0; r < BASELINE_ROUNDS; r++) {
		for (int i = 0; i < BATCH; i++) {
			pages[i] = mmap(NULL, MV_PAGE_SIZE, PROT_READ | PROT_WRITE,
					MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (pages[i] == MAP_FAILED)
				return 0;
			*(volatile unsigned char *)pages[i] = (unsigned char)i;
		}
		for (int i = 0; i < BATCH; i++)
			munmap(pages[i], MV_PAGE_SIZE);
	}
	return (double)BASELINE_ROUNDS * BATCH * 1e9 /
	       (double)(bench_now_ns() - t0);
}

static double malloc_rate(void)
{
	void *pages[BATCH];
	uint64_t t0 = bench_now_ns();

	for (int r = 0; r < BASELINE_ROUNDS; r++) {
		for (int i = 0; i < BATCH; i++) {
			pages[i] = malloc(MV_PAGE_SIZE);
			if (!pages[i])
				return 0;
			*(volatile unsigned char *)pages[i] = (unsigned char)i;
		}
		for (int i = 0; i < BATCH; i++)
			free(pages[i]);
	}
	return (double)BASELINE_ROUNDS * BATCH * 1e9 /
	       (double)(bench_now_ns() - t0);
}

/* Metadata per host page of a pool holding 1 GiB of allocated pages (the
 * pages are never touched, so this costs no memory beyond metadata). */
static double metadata_per_page(void)
{
	enum { PAGES = 1u << 18 };
	struct mv_host *h;
	struct mv_host_stats st;
	struct mv_reservation res = { .base = PAGES };
	mv_page_id *ids = malloc(PAGES * sizeof(*ids));
	mv_vmid vm;
	double v = 0;

	if (!ids || mv_host_create(NULL, &h))
		return 0;
	if (!mv_host_vm_create(h, &res, &vm) &&
	    !mv_host_alloc(h, vm, MV_ACCOUNT_BASE, PAGES, NULL, 0, ids) &&
	    !mv_host_get_stats(h, &st))
		v = (double)st.metadata_bytes / (double)(st.chunks * MV_CHUNK_PAGES);
	mv_host_destroy(h);
	free(ids);
	return v;
}

/* ---- returning freed memory (balloon) ------------------------------------ */

#define RECLAIM_PAGES (1u << 14)   /* 64 MiB written, 3 of every 4 given back */

struct reclaim {
	double ns_per_page;
	double mib_before, mib_after;  /* the memfd's allocated blocks */
};

static double memfd_mib(struct mv_host *h, mv_page_id any)
{
	struct stat st;
	uint64_t off;
	int fd;

	if (mv_host_chunk_fd(h, mv_page_chunk(any), &fd, &off) || fstat(fd, &st))
		return -1;
	return (double)st.st_blocks * 512 / (1 << 20);
}

/* Give back pages 1-3 of every 4 in batches of BATCH: by balloon inflate
 * (memory returned at once), or, with @keep, by mv_host_free into a free
 * cache large enough to keep it all (no memory returned). */
static int reclaim_once(bool keep, struct reclaim *r)
{
	struct mv_host_config cfg = { .free_cache_pages = keep ? RECLAIM_PAGES : 0,
				      .empty_chunk_cache = 2 };
	struct mv_reservation res = { .base = RECLAIM_PAGES };
	mv_page_id *ids = malloc(RECLAIM_PAGES * sizeof(*ids)), out[BATCH];
	struct mv_host *h;
	mv_vmid vm;
	uint64_t ns = 0;
	uint32_t k = 0;
	int rc = -1;

	if (!ids || mv_host_create(&cfg, &h))
		return -1;
	if (mv_host_vm_create(h, &res, &vm) ||
	    mv_host_alloc(h, vm, MV_ACCOUNT_BASE, RECLAIM_PAGES, NULL, 0, ids))
		goto out;
	for (uint32_t i = 0; i < RECLAIM_PAGES; i++)
		memset(mv_host_page_ptr(h, ids[i]), 1, MV_PAGE_SIZE);
	r->mib_before = memfd_mib(h, ids[0]);
	for (uint32_t i = 0; i < RECLAIM_PAGES; i++) {
		if (i % 4)
			out[k++] = ids[i];
		if (k < BATCH && i + 1 < RECLAIM_PAGES)
			continue;
		uint64_t t0 = bench_now_ns();

		rc = keep ? mv_host_free(h, vm, k, out)
			  : mv_host_balloon_inflate(h, vm, k, out);
		ns += bench_now_ns() - t0;
		if (rc)
			goto out;
		k = 0;
	}
	r->mib_after = memfd_mib(h, ids[0]);
	r->ns_per_page = (double)ns / (RECLAIM_PAGES / 4 * 3);
	rc = 0;
out:
	mv_host_destroy(h);
	free(ids);
	return rc;
}

static int reclaim_best(bool keep, struct reclaim *best)
{
	best->ns_per_page = 0;
	for (int i = 0; i < REPEAT; i++) {
		struct reclaim r;

		if (reclaim_once(keep, &r))
			return -1;
		if (!best->ns_per_page || r.ns_per_page < best->ns_per_page)
			*best = r;
	}
	return 0;
}

/* The same pattern discarded with one fallocate per page (a balloon that
 * returns each page on its own), straight on a memfd. */
static double punch_per_page_ns(void)
{
	size_t len = (size_t)RECLAIM_PAGES * MV_PAGE_SIZE;
	int fd = memfd_create("bench-punch", MFD_CLOEXEC);
	uint8_t *p;
	uint64_t t0;

	if (fd < 0 || ftruncate(fd, (off_t)len))
		return 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 0;
	memset(p, 1, len);
	t0 = bench_now_ns();
	for (uint32_t i = 0; i < RECLAIM_PAGES; i++)
		if (i % 4 && fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				       (off_t)i * MV_PAGE_SIZE, MV_PAGE_SIZE))
			return 0;
	double ns = (double)(bench_now_ns() - t0) / (RECLAIM_PAGES / 4 * 3);

	munmap(p, len);
	close(fd);
	return ns;
}

static int reclaim_report(void)
{
	struct reclaim bal, kept;
	double per_page = punch_per_page_ns();

	if (reclaim_best(false, &bal) || reclaim_best(true, &kept) || !per_page)
		return 1;
	bench_report_vs("host.balloon_inflate_3of4", bal.ns_per_page, "ns/page",
			"host.free_kept_3of4", kept.ns_per_page);
	bench_report_vs("host.balloon_inflate_3of4", bal.ns_per_page, "ns/page",
			"host.punch_per_page", per_page);
	bench_report("host.free_kept_3of4", kept.ns_per_page, "ns/page");
	bench_report("host.punch_per_page", per_page, "ns/page");
	bench_report("host.balloon_memfd_before", bal.mib_before, "MiB");
	bench_report("host.balloon_memfd_after", bal.mib_after, "MiB");
	bench_report("host.free_kept_memfd_after", kept.mib_after, "MiB");
	return 0;
}

int main(void)
{
	double p1 = pool_rate(1), p2 = pool_rate(2);
	double mm = mmap_rate(), ml = malloc_rate();

	bench_report_vs("host.alloc_free_1t", p1, "pages/s", "host.mmap_munmap", mm);
	bench_report_vs("host.alloc_free_1t", p1, "pages/s", "host.malloc_free", ml);
	bench_report_vs("host.alloc_free_2t", p2, "pages/s", "host.alloc_free_1t", p1);
	bench_report("host.mmap_munmap", mm, "pages/s");
	bench_report("host.malloc_free", ml, "pages/s");
	bench_report("host.metadata_per_page", metadata_per_page(), "bytes");
	if (reclaim_report())
		return 1;
	return p1 > 0 && p2 > 0 && mm > 0 && ml > 0 ? 0 : 1;
}
