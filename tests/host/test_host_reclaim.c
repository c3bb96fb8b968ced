/* Freed and ballooned pages give their memory back to the kernel without
 * waiting for their chunk to empty: measured as the memfd's allocated
 * blocks (what the kernel holds for the pool), and with mincore() for
 * seeded memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

#define CHUNKS 16
#define N (CHUNKS * MV_CHUNK_PAGES)   /* 32 MiB */
#define MIB (1ull << 20)

static struct mv_host *pool(uint32_t free_cache)
{
	struct mv_host_config cfg = { .overcommit = MV_OVERCOMMIT_ALLOW,
				      .free_cache_pages = free_cache,
				      .empty_chunk_cache = free_cache ? 64 : 0 };
	struct mv_host *h;

	assert_int_equal(mv_host_create(&cfg, &h), 0);
	return h;
}

/* Bytes the kernel holds for the pool's memfd. */
static uint64_t memfd_bytes(const struct mv_host *h)
{
	struct stat st;

	assert_int_equal(fstat(h->memfd, &st), 0);
	return (uint64_t)st.st_blocks * 512;
}

static mv_page_id *alloc_written(struct mv_host *h, mv_vmid vm, uint32_t n)
{
	mv_page_id *ids = malloc(n * sizeof(*ids));

	assert_non_null(ids);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, n, NULL, 0, ids), 0);
	for (uint32_t i = 0; i < n; i++)
		memset(mv_host_page_ptr(h, ids[i]), (int)(i % 251) + 1, MV_PAGE_SIZE);
	return ids;
}

/* Pages 1, 2, 3 of every 4 to @out (the frames a guest balloon might
 * give back), in id order; returns how many. */
static uint32_t three_of_four(const mv_page_id *ids, uint32_t n, mv_page_id *out)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < n; i++)
		if (i % 4)
			out[k++] = ids[i];
	return k;
}

static void kept_intact(struct mv_host *h, const mv_page_id *ids, uint32_t n)
{
	for (uint32_t i = 0; i < n; i += 4) {
		const uint8_t *p = mv_host_page_ptr(h, ids[i]);

		assert_non_null(p);
		assert_int_equal(p[0], i % 251 + 1);
		assert_int_equal(p[MV_PAGE_SIZE - 1], i % 251 + 1);
	}
}

/* Freeing 3 of every 4 pages empties no chunk, yet 3/4 of the memory goes
 * back (one chunk's worth of memory slack for the kernel's own rounding);
 * the pages still allocated keep their bytes. */
static void test_free_returns_memory_in_partly_used_chunks(void **state)
{
	struct mv_host *h = pool(0);
	mv_vmid vm = vm_new(h, N);
	mv_page_id *ids = alloc_written(h, vm, N), *out = malloc(N * sizeof(*out));
	uint64_t full, after;
	uint32_t k = three_of_four(ids, N, out);
	struct mv_host_stats st;

	(void)state;
	full = memfd_bytes(h);
	assert_true(full >= 32 * MIB);
	for (uint32_t i = 0; i < k; i += 512)
		assert_int_equal(mv_host_free(h, vm, k - i < 512 ? k - i : 512,
					      out + i), 0);
	after = memfd_bytes(h);
	print_message("memfd: %lu -> %lu KiB\n", full >> 10, after >> 10);
	assert_true(after <= full / 4 + 2 * MIB);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks, CHUNKS);
	assert_int_equal(st.free_held_pages, 0);
	assert_int_equal(st.pages_punched, k);
	kept_intact(h, ids, N);
	assert_int_equal(pool_check(h), 0);
	free(ids);
	free(out);
	mv_host_destroy(h);
}

/* With a free cache, freed memory is kept for reuse up to the cache and
 * no further, after every call. */
static void test_free_cache_bounds_held_memory(void **state)
{
	enum { CACHE = 1024 };
	struct mv_host *h = pool(CACHE);
	mv_vmid vm = vm_new(h, N);
	mv_page_id *ids = alloc_written(h, vm, N), *out = malloc(N * sizeof(*out));
	uint32_t k = three_of_four(ids, N, out);
	uint64_t full = memfd_bytes(h), after;
	struct mv_host_stats st;

	(void)state;
	/* Below the cache: nothing is punched, the memory stays. */
	assert_int_equal(mv_host_free(h, vm, 100, out), 0);
	assert_int_equal(memfd_bytes(h), full);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.free_held_pages, 100);
	assert_int_equal(st.pages_punched, 0);
	for (uint32_t i = 100; i < k; i += 256) {
		assert_int_equal(mv_host_free(h, vm, k - i < 256 ? k - i : 256,
					      out + i), 0);
		assert_int_equal(mv_host_get_stats(h, &st), 0);
		assert_true(st.free_held_pages <= CACHE);
		assert_int_equal(pool_check(h), 0);
	}
	after = memfd_bytes(h);
	print_message("memfd: %lu -> %lu KiB\n", full >> 10, after >> 10);
	assert_true(after <= full / 4 + (uint64_t)CACHE * MV_PAGE_SIZE + 2 * MIB);
	kept_intact(h, ids, N);
	/* A held page comes back without clearing: content undefined, but
	 * MV_ALLOC_ZEROED still gives zeros. */
	mv_page_id z[MV_CHUNK_PAGES];

	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES, NULL,
				       MV_ALLOC_ZEROED, z), 0);
	for (uint32_t i = 0; i < MV_CHUNK_PAGES; i++) {
		const uint8_t *p = mv_host_page_ptr(h, z[i]);

		for (uint32_t b = 0; b < MV_PAGE_SIZE; b += 511)
			assert_int_equal(p[b], 0);
	}
	free(ids);
	free(out);
	mv_host_destroy(h);
}

/* Pages freed one call at a time past the cache (and across a chunk
 * boundary): the call that goes beyond the cache punches held pages of
 * any chunk down to half of it, so the next half cache of single frees
 * costs no punch, and every punch gives back a run of pages, not one. */
static void test_free_past_cache_punches_to_half(void **state)
{
	enum { CACHE = 256 };
	struct mv_host *h = pool(CACHE);
	mv_vmid vm = vm_new(h, N);
	mv_page_id *ids = alloc_written(h, vm, N);
	struct mv_host_stats st;
	uint64_t punched = 0, held = 0, punches = 0;

	(void)state;
	for (uint32_t i = 0; i < 4 * CACHE; i++) {
		assert_int_equal(mv_host_free(h, vm, 1, &ids[i]), 0);
		assert_int_equal(mv_host_get_stats(h, &st), 0);
		if (st.pages_punched == punched) {
			assert_int_equal(st.free_held_pages, held + 1);
		} else {
			assert_int_equal(held, CACHE);  /* only past it */
			assert_true(st.free_held_pages <= CACHE / 2);
			assert_true(st.pages_punched - punched >= CACHE / 2 + 1);
			punches++;
		}
		held = st.free_held_pages;
		punched = st.pages_punched;
	}
	assert_true(punches >= 3);
	assert_int_equal(pool_check(h), 0);
	for (uint32_t i = 4 * CACHE; i < N; i += 7) {  /* the pages left */
		const uint8_t *p = mv_host_page_ptr(h, ids[i]);

		assert_int_equal(p[0], i % 251 + 1);
		assert_int_equal(p[MV_PAGE_SIZE - 1], i % 251 + 1);
	}
	free(ids);
	mv_host_destroy(h);
}

/* Ballooned pages go back at once, whatever the cache; freed ones of a
 * second VM in the same pool are kept by the cache. */
static void test_balloon_returns_memory_at_once(void **state)
{
	struct mv_host *h = pool(1u << 20);
	mv_vmid vm = vm_new(h, N), other = vm_new(h, N);
	mv_page_id *ids = alloc_written(h, vm, N), *out = malloc(N * sizeof(*out));
	mv_page_id *oids = alloc_written(h, other, N);
	uint32_t k = three_of_four(ids, N, out);
	uint64_t full = memfd_bytes(h), mid, after;
	struct mv_host_stats st;

	(void)state;
	assert_int_equal(mv_host_free(h, other, N, oids), 0);
	mid = memfd_bytes(h);
	assert_true(mid + MIB >= full);   /* kept: the caches hold it all */
	for (uint32_t i = 0; i < k; i += 512)
		assert_int_equal(mv_host_balloon_inflate(h, vm, k - i < 512 ? k - i : 512,
							 out + i), 0);
	after = memfd_bytes(h);
	print_message("memfd: %lu -> %lu -> %lu KiB\n", full >> 10, mid >> 10,
		      after >> 10);
	assert_true(after + (uint64_t)k * MV_PAGE_SIZE <= mid + 2 * MIB);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.ballooned_pages, k);
	kept_intact(h, ids, N);
	assert_int_equal(pool_check(h), 0);
	free(ids);
	free(oids);
	free(out);
	mv_host_destroy(h);
}

/* A punched page reads as zero again: allocating it with MV_ALLOC_ZEROED
 * needs no clearing, and an allocation without it sees zeros too. */
static void test_punched_pages_read_zero(void **state)
{
	struct mv_host *h = pool(0);
	mv_vmid vm = vm_new(h, N);
	mv_page_id *ids = alloc_written(h, vm, MV_CHUNK_PAGES), keep = ids[0];
	mv_page_id again[MV_CHUNK_PAGES - 1];

	(void)state;
	assert_int_equal(mv_host_free(h, vm, MV_CHUNK_PAGES - 1, ids + 1), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES - 1,
				       NULL, 0, again), 0);
	for (uint32_t i = 0; i < MV_CHUNK_PAGES - 1; i++) {
		const uint8_t *p = mv_host_page_ptr(h, again[i]);

		assert_int_equal(mv_page_chunk(again[i]), mv_page_chunk(keep));
		for (uint32_t b = 0; b < MV_PAGE_SIZE; b += 257)
			assert_int_equal(p[b], 0);
	}
	assert_int_equal(((uint8_t *)mv_host_page_ptr(h, keep))[7], 1);
	free(ids);
	mv_host_destroy(h);
}

/* The last reference of a shared page, and a destroyed VM's pages in a
 * chunk another VM keeps alive, go back too. */
static void test_share_put_and_destroy_return_memory(void **state)
{
	struct mv_host *h = pool(0);
	mv_vmid a = vm_new(h, N), b = vm_new(h, N);
	uint8_t content[MV_PAGE_SIZE];
	mv_page_id shared[64], *ia, *ib;
	uint64_t before, after;

	(void)state;
	memset(content, 0x77, sizeof(content));
	for (int i = 0; i < 64; i++)
		assert_int_equal(mv_host_share_alloc(h, a, content, 1, &shared[i]), 0);
	before = memfd_bytes(h);
	for (int i = 1; i < 64; i++)
		assert_int_equal(mv_host_share_put(h, a, shared[i]), 0);
	after = memfd_bytes(h);
	assert_true(after + 62 * MV_PAGE_SIZE <= before);
	/* A takes half of a chunk, B the other half; A goes away. */
	ia = alloc_written(h, a, 256);
	ib = alloc_written(h, b, 256);
	assert_int_equal(mv_page_chunk(ia[0]), mv_page_chunk(ib[0]));
	assert_int_equal(mv_host_share_put(h, a, shared[0]), 0);
	before = memfd_bytes(h);
	assert_int_equal(mv_host_vm_destroy(h, a), 0);
	after = memfd_bytes(h);
	print_message("destroy: %lu -> %lu KiB\n", before >> 10, after >> 10);
	assert_true(after + 255 * MV_PAGE_SIZE <= before);
	assert_int_equal(pool_check(h), 0);
	free(ia);
	free(ib);
	mv_host_destroy(h);
}

/* Seeded memory is given back with MADV_DONTNEED: mincore() sees the
 * freed pages leave, the kept ones stay, all while the chunk lives. */
static void test_seeded_pages_given_back(void **state)
{
	struct mv_host_config cfg = { .seeded = 1 };
	struct mv_host *h;
	uint8_t *mem = mmap(NULL, MV_CHUNK_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char vec[MV_CHUNK_PAGES];
	mv_page_id *ids, out[MV_CHUNK_PAGES];
	uint32_t k, resident = 0;

	(void)state;
	assert_int_equal(mv_host_create(&cfg, &h), 0);
	mv_vmid vm = vm_new(h, MV_CHUNK_PAGES);

	assert_int_equal(mv_host_seed(h, mem, MV_CHUNK_SIZE), 0);
	ids = alloc_written(h, vm, MV_CHUNK_PAGES);
	k = three_of_four(ids, MV_CHUNK_PAGES, out);
	assert_int_equal(mv_host_free(h, vm, k, out), 0);
	assert_int_equal(mincore(mem, MV_CHUNK_SIZE, vec), 0);
	for (uint32_t i = 0; i < MV_CHUNK_PAGES; i++)
		resident += vec[i] & 1;
	assert_int_equal(resident, MV_CHUNK_PAGES - k);
	kept_intact(h, ids, MV_CHUNK_PAGES);
	/* Seeded pages are never assumed zero: ZEROED clears them. */
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, k, NULL,
				       MV_ALLOC_ZEROED, out), 0);
	assert_int_equal(pool_check(h), 0);
	free(ids);
	mv_host_destroy(h);
	munmap(mem, MV_CHUNK_SIZE);
}

/* MV_ALLOC_POPULATE backs exactly the pages allocated, before any write:
 * the free pages between them stay holes (runs of ascending and of
 * descending ids, split where a page is missing). */
static void test_populate_backs_exactly_the_pages(void **state)
{
	struct mv_host *h = pool(0);
	mv_vmid vm = vm_new(h, N);
	mv_page_id ids[MV_CHUNK_PAGES], gaps[MV_CHUNK_PAGES], got[MV_CHUNK_PAGES];
	uint32_t k = 0, n = 0;
	uint64_t before;

	(void)state;
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES, NULL,
				       0, ids), 0);
	assert_int_equal(memfd_bytes(h), 0);
	/* Free (punch) runs of 1..5 pages with gaps of 1..3 kept. */
	for (uint32_t i = 0; i < MV_CHUNK_PAGES;) {
		uint32_t run = i % 5 + 1, gap = i % 3 + 1;

		for (uint32_t j = 0; j < run && i < MV_CHUNK_PAGES; j++)
			gaps[k++] = ids[i++];
		i += gap;
	}
	assert_int_equal(mv_host_free(h, vm, k, gaps), 0);
	before = memfd_bytes(h);
	/* Take back a part of the freed pages, in free-list order. */
	n = k / 2 + 3;
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, n, NULL,
				       MV_ALLOC_ZEROED | MV_ALLOC_POPULATE, got), 0);
	print_message("populate %u pages: %lu -> %lu KiB\n", n, before >> 10,
		      memfd_bytes(h) >> 10);
	assert_int_equal(memfd_bytes(h), before + (uint64_t)n * MV_PAGE_SIZE);
	/* The same again over fresh chunks, one call over two chunks. */
	mv_page_id *big = malloc(3 * MV_CHUNK_PAGES / 2 * sizeof(*big));

	before = memfd_bytes(h);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 3 * MV_CHUNK_PAGES / 2,
				       NULL, MV_ALLOC_POPULATE, big), 0);
	assert_int_equal(memfd_bytes(h),
			 before + 3ull * MV_CHUNK_PAGES / 2 * MV_PAGE_SIZE);
	assert_int_equal(pool_check(h), 0);
	free(big);
	mv_host_destroy(h);
}

/* Seeded memory given back with MADV_DONTNEED need not read zero: a
 * private mapping of a file reads the file again. MV_ALLOC_ZEROED must
 * still clear such pages. */
static void test_seeded_given_back_not_assumed_zero(void **state)
{
	struct mv_host_config cfg = { .seeded = 1 };
	struct mv_host *h;
	int fd = memfd_create("seed-file", 0);
	uint8_t *mem;
	mv_page_id ids[MV_CHUNK_PAGES];

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MV_CHUNK_SIZE), 0);
	mem = mmap(NULL, MV_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(mem != MAP_FAILED);
	memset(mem, 0x5a, MV_CHUNK_SIZE);
	munmap(mem, MV_CHUNK_SIZE);
	mem = mmap(NULL, MV_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(mv_host_create(&cfg, &h), 0);
	mv_vmid vm = vm_new(h, MV_CHUNK_PAGES);

	assert_int_equal(mv_host_seed(h, mem, MV_CHUNK_SIZE), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES, NULL,
				       MV_ALLOC_ZEROED, ids), 0);
	for (uint32_t i = 0; i < MV_CHUNK_PAGES; i++)
		assert_int_equal(((uint8_t *)mv_host_page_ptr(h, ids[i]))[9], 0);
	/* Freed (and discarded) but one: the discarded pages read 0x5a. */
	assert_int_equal(mv_host_free(h, vm, MV_CHUNK_PAGES - 1, ids + 1), 0);
	assert_int_equal(mem[MV_PAGE_SIZE + 9], 0x5a);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES - 1,
				       NULL, MV_ALLOC_ZEROED, ids + 1), 0);
	for (uint32_t i = 1; i < MV_CHUNK_PAGES; i++) {
		const uint8_t *p = mv_host_page_ptr(h, ids[i]);

		assert_int_equal(p[0], 0);
		assert_int_equal(p[MV_PAGE_SIZE - 1], 0);
	}
	assert_int_equal(pool_check(h), 0);
	mv_host_destroy(h);
	munmap(mem, MV_CHUNK_SIZE);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_free_returns_memory_in_partly_used_chunks),
		cmocka_unit_test(test_free_cache_bounds_held_memory),
		cmocka_unit_test(test_free_past_cache_punches_to_half),
		cmocka_unit_test(test_balloon_returns_memory_at_once),
		cmocka_unit_test(test_punched_pages_read_zero),
		cmocka_unit_test(test_share_put_and_destroy_return_memory),
		cmocka_unit_test(test_seeded_pages_given_back),
		cmocka_unit_test(test_populate_backs_exactly_the_pages),
		cmocka_unit_test(test_seeded_given_back_not_assumed_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
