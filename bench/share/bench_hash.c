/* The page-sharing scanner's hash against memory bandwidth: XXH3-64 over
 * 4 KiB pages (what the scanner computes per cold page) and memcpy of the
 * same pages to another buffer, in the same run, on a set larger than the
 * caches (64 MiB: memory-bound, as a scan over guest RAM is) and on one
 * that fits in L2 (256 KiB: the hash's own speed). GB/s count the bytes
 * of the pages read (memcpy also writes as many); the ratio is XXH3's
 * speed over memcpy's. Each is the best of 5 alternating rounds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <xxhash.h>

#include "bench.h"

#define PAGE 4096u
#define ROUNDS 5

static unsigned char *map(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

/* Guest-like pages would do as well: XXH3's speed does not depend on the
 * bytes. Random ones keep any page from being special. */
static void fill(unsigned char *p, size_t bytes)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	for (size_t i = 0; i < bytes; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(p + i, &x, 8);
	}
}

/* Passes over the set until at least @min_bytes went through; GB/s. */
static double hash_rate(const unsigned char *src, size_t bytes,
			size_t min_bytes)
{
	uint64_t acc = 0, t0 = bench_now_ns(), t;
	size_t done = 0;

	while (done < min_bytes) {
		for (size_t off = 0; off < bytes; off += PAGE)
			acc += XXH3_64bits(src + off, PAGE);
		done += bytes;
	}
	t = bench_now_ns() - t0;
	bench_sink(acc);
	return (double)done / (double)t;
}

static double copy_rate(unsigned char *dst, const unsigned char *src,
			size_t bytes, size_t min_bytes)
{
	uint64_t t0 = bench_now_ns(), t;
	size_t done = 0;

	while (done < min_bytes) {
		for (size_t off = 0; off < bytes; off += PAGE)
			memcpy(dst + off, src + off, PAGE);
		/* Keep the copies from being dropped as dead stores. */
		bench_sink(dst[done % bytes]);
		done += bytes;
	}
	t = bench_now_ns() - t0;
	return (double)done / (double)t;
}

static int run(const char *name, size_t bytes, size_t min_bytes)
{
	unsigned char *src = map(bytes), *dst = map(bytes);
	char hname[64], cname[64];
	double h, c;

	if (!src || !dst) {
		fprintf(stderr, "bench_hash: cannot map %zu bytes\n", bytes);
		return 1;
	}
	fill(src, bytes);
	memset(dst, 1, bytes);
	/* Warm both paths once (page faults, frequency). */
	hash_rate(src, bytes, bytes);
	copy_rate(dst, src, bytes, bytes);
	/* Best of alternating rounds: a loaded machine slows one or the
	 * other for a while, not both the same. */
	c = h = 0;
	for (int r = 0; r < ROUNDS; r++) {
		double cr = copy_rate(dst, src, bytes, min_bytes / ROUNDS);
		double hr = hash_rate(src, bytes, min_bytes / ROUNDS);

		c = cr > c ? cr : c;
		h = hr > h ? hr : h;
	}
	snprintf(hname, sizeof(hname), "share.xxh3_page_%s", name);
	snprintf(cname, sizeof(cname), "share.memcpy_page_%s", name);
	bench_report(cname, c, "GB/s");
	bench_report_vs(hname, h, "GB/s", cname, c);
	munmap(src, bytes);
	munmap(dst, bytes);
	return 0;
}

int main(void)
{
	if (run("64MiB", 64u << 20, 2048u << 20))
		return 1;
	return run("256KiB", 256u << 10, 2048u << 20);
}
