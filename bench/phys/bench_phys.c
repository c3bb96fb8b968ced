/* Guest-physical memory benchmark.
 *
 *   phys.first_touch      ns per page, ZERO -> ALLOCATED (1-byte write),
 *                         against a first 1-byte write to fresh anonymous
 *                         memory (phys.anon_first_write, same run), a
 *                         1-byte write to an allocated page, and the pool
 *                         alone (mv_host_alloc of zeroed pages in batches
 *                         of 48 + a 1-byte write each: not phys/'s part)
 *   phys.cow_break        ns per page, SHARED -> ALLOCATED (1-byte write)
 *   phys.write_4k         MB/s of 4 KiB mv_vm_phys_write calls to allocated
 *                         pages, against memcpy of the same bytes
 *   phys.write_64k        the same with 64 KiB calls (16 pages each)
 *   phys.map_hit          ns per mv_vm_gpa_to_hva through the mapping cache
 *                         (lookaside hit), against the direct pool pointer
 *   phys.map_miss         ns per chunk map + LRU unmap (bound 2 chunks,
 *                         three cycled)
 *   phys.metadata         bytes per guest page (VM) and per backing host
 *                         page (pool)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <memvisor/host.h>
#include <memvisor/vm.h>

#include "bench.h"

#define PAGES 16384u  /* 64 MiB of guest RAM */

static struct mv_vm *make_vm(struct mv_host *host, uint32_t pages,
			     uint32_t map_max)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = (uint64_t)pages * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = map_max };
	struct mv_vm *vm;

	if (mv_vm_create(host, &cfg, &vm)) {
		fprintf(stderr, "bench_phys: cannot create a VM\n");
		exit(1);
	}
	return vm;
}

/* ns per page for a 1-byte write to each of @pages pages. */
static double touch_each(struct mv_vm *vm, uint32_t pages, uint8_t v)
{
	uint64_t t0 = bench_now_ns();

	for (uint32_t g = 0; g < pages; g++)
		if (mv_vm_phys_write(vm, (uint64_t)g << 12, &v, 1))
			exit(1);
	return (double)(bench_now_ns() - t0) / pages;
}

/* The pool's share of a first touch: fresh zeroed pages, one store each. */
static double pool_touch(struct mv_host *host)
{
	struct mv_reservation res = { .base = PAGES };
	mv_page_id ids[48];
	mv_vmid vm;
	uint64_t t0, t;

	if (mv_host_vm_create(host, &res, &vm))
		exit(1);
	t0 = bench_now_ns();
	for (uint32_t done = 0; done + 48 <= PAGES; done += 48) {
		if (mv_host_alloc(host, vm, MV_ACCOUNT_BASE, 48, NULL,
				  MV_ALLOC_ZEROED, ids))
			exit(1);
		for (int i = 0; i < 48; i++)
			*(volatile uint8_t *)mv_host_page_ptr(host, ids[i]) = 1;
	}
	t = bench_now_ns() - t0;
	mv_host_vm_destroy(host, vm);
	return (double)t / (PAGES / 48 * 48);
}

/* ns per page for the first 1-byte write to each page of fresh anonymous
 * memory: what guest RAM would cost without memfd backing. */
static double anon_first_write(uint32_t pages)
{
	size_t len = (size_t)pages * MV_PAGE_SIZE;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint64_t t0;
	double ns;

	if (p == MAP_FAILED)
		exit(1);
	t0 = bench_now_ns();
	for (uint32_t g = 0; g < pages; g++)
		*(volatile uint8_t *)(p + ((size_t)g << 12)) = 1;
	ns = (double)(bench_now_ns() - t0) / pages;
	munmap(p, len);
	return ns;
}

/* Best of five fresh VMs, each next to a fresh anonymous run: the machine
 * is shared, and both sides see the same noise. */
static double first_touch_best(struct mv_host *host, double *anon)
{
	double best = 0;

	*anon = 0;
	for (int i = 0; i < 5; i++) {
		double a = anon_first_write(PAGES);
		struct mv_vm *vm = make_vm(host, PAGES, 0);
		double f = touch_each(vm, PAGES, 1);

		mv_vm_destroy(vm);
		best = !best || f < best ? f : best;
		*anon = !*anon || a < *anon ? a : *anon;
	}
	return best;
}

static void first_touch_and_cow(struct mv_host *host)
{
	double anon, first = first_touch_best(host, &anon);
	struct mv_vm *vm = make_vm(host, PAGES, 0);
	double again = (touch_each(vm, PAGES, 1), touch_each(vm, PAGES, 2));

	bench_report_vs("phys.first_touch", first, "ns/page",
			"phys.anon_first_write", anon);
	bench_report("phys.anon_first_write", anon, "ns/page");
	bench_report_vs("phys.first_touch_vs_allocated", first, "ns/page",
			"phys.write_1b_allocated", again);
	bench_report_vs("phys.first_touch_vs_pool", first, "ns/page",
			"host.alloc_zeroed_touch", pool_touch(host));
	/* pairs (2i, 2i+1) share one page each: half the pages then break */
	for (uint32_t g = 0; g < PAGES; g += 2)
		if (mv_vm_share_pages(vm, g, vm, g + 1))
			exit(1);
	uint64_t t0 = bench_now_ns();
	for (uint32_t g = 0; g < PAGES; g += 2)
		if (mv_vm_phys_write(vm, (uint64_t)g << 12, "x", 1))
			exit(1);
	double cow = (double)(bench_now_ns() - t0) / (PAGES / 2);
	bench_report_vs("phys.cow_break", cow, "ns/page",
			"phys.write_1b_allocated", again);
	mv_vm_destroy(vm);
}

static double mbps(uint64_t bytes, uint64_t ns)
{
	return (double)bytes / 1e6 / ((double)ns / 1e9);
}

static void write_throughput(struct mv_host *host, size_t piece,
			     const char *name)
{
	struct mv_vm *vm = make_vm(host, PAGES, 0);
	size_t total = (size_t)PAGES * MV_PAGE_SIZE;
	uint8_t *src = malloc(piece), *plain = malloc(total);
	const int reps = 4;

	memset(src, 0x3C, piece);
	memset(plain, 0, total);
	touch_each(vm, PAGES, 0);
	/* one untimed round each: both destinations resident and warm */
	for (size_t off = 0; off < total; off += piece) {
		memcpy(plain + off, src, piece);
		if (mv_vm_phys_write(vm, off, src, piece))
			exit(1);
	}
	uint64_t t0 = bench_now_ns();
	for (int r = 0; r < reps; r++)
		for (size_t off = 0; off < total; off += piece)
			if (mv_vm_phys_write(vm, off, src, piece))
				exit(1);
	uint64_t t_phys = bench_now_ns() - t0;
	t0 = bench_now_ns();
	for (int r = 0; r < reps; r++)
		for (size_t off = 0; off < total; off += piece)
			memcpy(plain + off, src, piece);
	uint64_t t_copy = bench_now_ns() - t0;
	bench_sink(plain[total - 1]);
	bench_report_vs(name, mbps(total * reps, t_phys), "MB/s", "memcpy",
			mbps(total * reps, t_copy));
	free(src);
	free(plain);
	mv_vm_destroy(vm);
}

static double hva_loop(struct mv_vm *vm, uint32_t pages, int iters)
{
	uint64_t sum = 0, t0 = bench_now_ns();
	void *p;

	for (int i = 0; i < iters; i++) {
		if (mv_vm_gpa_to_hva(vm, (uint64_t)(i % pages) << 12, 0, &p))
			exit(1);
		sum += *(uint8_t *)p;
	}
	bench_sink(sum);
	return (double)(bench_now_ns() - t0) / iters;
}

/* gpa_to_hva over 64 pages of one chunk: the lookaside answers. */
static void mapping_cache(struct mv_host *host)
{
	struct mv_vm *cached = make_vm(host, 1024, 4);
	struct mv_vm *direct = make_vm(host, 1024, 0);
	struct mv_vm_stats st;
	const int iters = 2000000;

	touch_each(cached, 1024, 1);
	touch_each(direct, 1024, 1);
	double hit = hva_loop(cached, 64, iters);
	double base = hva_loop(direct, 64, iters);
	bench_report_vs("phys.map_hit", hit, "ns/op", "phys.gpa_to_hva_direct",
			base);
	mv_vm_destroy(cached);
	/* bound 2 (the least allowed), cycle over three chunks: every access
	 * maps one and unmaps the least recently used */
	cached = make_vm(host, 1536, 2);
	touch_each(cached, 1536, 1);
	uint64_t t0 = bench_now_ns();
	const int flips = 20000;
	uint8_t b;
	for (int i = 0; i < flips; i++)
		if (mv_vm_phys_read(cached, (uint64_t)(i % 3) * 600 << 12, &b, 1))
			exit(1);
	double miss = (double)(bench_now_ns() - t0) / flips;
	mv_vm_get_stats(cached, &st);
	bench_report_vs("phys.map_miss", miss, "ns/op", "phys.map_hit", hit);
	fprintf(stderr, "map_miss: %lu misses, %lu evictions\n",
		(unsigned long)st.map_misses, (unsigned long)st.map_evictions);
	mv_vm_destroy(cached);
	mv_vm_destroy(direct);
}

static void metadata(struct mv_host *host)
{
	struct mv_vm *vm = make_vm(host, PAGES, 0);
	struct mv_vm_stats st;
	struct mv_host_stats hs;

	touch_each(vm, PAGES, 1);
	mv_vm_get_stats(vm, &st);
	mv_host_get_stats(host, &hs);
	bench_report("phys.metadata_per_guest_page",
		     (double)st.metadata_bytes / PAGES, "bytes");
	bench_report("host.metadata_per_backing_page",
		     (double)hs.metadata_bytes /
			     (double)(hs.chunks * MV_CHUNK_PAGES), "bytes");
	mv_vm_destroy(vm);
}

int main(void)
{
	struct mv_host *host;

	if (mv_host_create(NULL, &host))
		return 1;
	first_touch_and_cow(host);
	write_throughput(host, MV_PAGE_SIZE, "phys.write_4k");
	write_throughput(host, 16 * MV_PAGE_SIZE, "phys.write_64k");
	mapping_cache(host);
	metadata(host);
	mv_host_destroy(host);
	return 0;
}
