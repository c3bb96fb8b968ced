/* Seeded mode: the pool carves chunks only from memory handed to it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

static struct mv_host *seeded_pool(uint32_t cache)
{
	struct mv_host_config cfg = { .seeded = 1, .empty_chunk_cache = cache };
	struct mv_host *h;

	assert_int_equal(mv_host_create(&cfg, &h), 0);
	return h;
}

static void test_needs_seed(void **state)
{
	struct mv_host *h = seeded_pool(0);
	mv_vmid vm = vm_new(h, 4096);
	size_t len = 2 * MV_CHUNK_SIZE;
	unsigned char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mv_page_id ids[1025];
	struct mv_host_stats before, after;
	uint64_t off;
	int fd;

	(void)state;
	assert_true(mem != MAP_FAILED);
	assert_int_equal(mv_host_get_stats(h, &before), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, ids),
			 -MV_ENEEDSEED);
	assert_int_equal(mv_host_share_alloc(h, vm, mem, 0, ids), -MV_ENEEDSEED);
	assert_int_equal(mv_host_get_stats(h, &after), 0);
	assert_true(host_stats_equal(&before, &after));

	assert_int_equal(mv_host_seed(h, mem, len), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1025, NULL, 0, ids),
			 -MV_ENEEDSEED);
	assert_int_equal(mv_host_get_stats(h, &after), 0);
	assert_true(host_stats_equal(&before, &after));
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1024, NULL,
				       MV_ALLOC_ZEROED, ids), 0);
	for (int i = 0; i < 1024; i++) {
		unsigned char *p = mv_host_page_ptr(h, ids[i]);

		assert_true(p >= mem && p + MV_PAGE_SIZE <= mem + len);
		assert_int_equal(p[100], 0);
		memset(p, 0xab, MV_PAGE_SIZE);
	}
	assert_int_equal(mv_host_chunk_fd(h, mv_page_chunk(ids[0]), &fd, &off),
			 -MV_ENOENT);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, ids + 1024),
			 -MV_ENEEDSEED);
	/* Released seeded chunks are emptied with MADV_DONTNEED (this private
	 * anonymous memory then reads as zero) and carved again later. */
	assert_int_equal(mv_host_free(h, vm, 1024, ids), 0);
	assert_int_equal(mv_host_get_stats(h, &after), 0);
	assert_int_equal(after.chunks, 0);
	assert_int_equal(after.chunks_released, 2);
	for (size_t i = 0; i < len; i += 997)
		assert_int_equal(mem[i], 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1024, NULL, 0, ids), 0);
	assert_int_equal(pool_check(h), 0);
	mv_host_destroy(h);
	munmap(mem, len);
}

static void test_seed_bad_input(void **state)
{
	struct mv_host *h = seeded_pool(0);
	unsigned char *mem = mmap(NULL, 2 * MV_CHUNK_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	(void)state;
	assert_int_equal(mv_host_seed(h, NULL, MV_CHUNK_SIZE), -MV_EINVAL);
	assert_int_equal(mv_host_seed(h, mem + 1, MV_CHUNK_SIZE), -MV_EINVAL);
	assert_int_equal(mv_host_seed(h, mem, MV_CHUNK_SIZE - 4096), -MV_EINVAL);
	assert_int_equal(mv_host_seed(h, mem, 0), -MV_EINVAL);
	assert_int_equal(mv_host_seed(NULL, mem, MV_CHUNK_SIZE), -MV_EINVAL);
	/* 4 KiB alignment is enough. */
	assert_int_equal(mv_host_seed(h, mem + 4096, MV_CHUNK_SIZE), 0);
	mv_host_destroy(h);
	munmap(mem, 2 * MV_CHUNK_SIZE);
}

/* The same memory, or any overlap with memory seeded before or with the
 * pool's own chunks, is refused with -MV_EEXIST and changes nothing: two
 * chunks on one range would give two VMs' pages the same host address. */
static void test_seed_overlap_refused(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm = vm_new(h, 8192);
	size_t len = 4 * MV_CHUNK_SIZE;
	unsigned char *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unsigned char *own;
	mv_page_id ids[3 * MV_CHUNK_PAGES], one;
	struct mv_host_stats before, after;

	(void)state;
	assert_true(mem != MAP_FAILED);
	assert_int_equal(mv_host_seed(h, mem + MV_CHUNK_SIZE, MV_CHUNK_SIZE), 0);
	assert_int_equal(mv_host_get_stats(h, &before), 0);
	/* same, around, head overlap, tail overlap, inside */
	assert_int_equal(mv_host_seed(h, mem + MV_CHUNK_SIZE, MV_CHUNK_SIZE),
			 -MV_EEXIST);
	assert_int_equal(mv_host_seed(h, mem, 3 * MV_CHUNK_SIZE), -MV_EEXIST);
	assert_int_equal(mv_host_seed(h, mem + 4096, MV_CHUNK_SIZE), -MV_EEXIST);
	assert_int_equal(mv_host_seed(h, mem + MV_CHUNK_SIZE + 4096, MV_CHUNK_SIZE),
			 -MV_EEXIST);
	assert_int_equal(mv_host_seed(h, mem + 2 * MV_CHUNK_SIZE - 4096,
				      MV_CHUNK_SIZE), -MV_EEXIST);
	assert_int_equal(mv_host_get_stats(h, &before), 0);
	/* Neighbours on both sides are distinct memory. */
	assert_int_equal(mv_host_seed(h, mem, MV_CHUNK_SIZE), 0);
	assert_int_equal(mv_host_seed(h, mem + 2 * MV_CHUNK_SIZE, MV_CHUNK_SIZE), 0);
	/* Three seeded chunks, three distinct ranges of the seed. */
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 3 * MV_CHUNK_PAGES,
				       NULL, 0, ids), 0);
	for (uint32_t i = 0; i < 3 * MV_CHUNK_PAGES; i++) {
		unsigned char *p = mv_host_page_ptr(h, ids[i]);

		assert_true(p >= mem && p < mem + 3 * MV_CHUNK_SIZE);
		for (uint32_t j = 0; j < i; j += 97)
			assert_ptr_not_equal(mv_host_page_ptr(h, ids[j]), p);
	}
	/* The pool's own memfd chunk may not be seeded back into it. */
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, &one), 0);
	own = mv_host_page_ptr(h, one);
	assert_int_equal(mv_host_get_stats(h, &before), 0);
	assert_int_equal(mv_host_seed(h, own - mv_page_index(one) * MV_PAGE_SIZE,
				      MV_CHUNK_SIZE), -MV_EEXIST);
	assert_int_equal(mv_host_get_stats(h, &after), 0);
	assert_true(host_stats_equal(&before, &after));
	/* A range that wraps the address space. */
	assert_int_equal(mv_host_seed(h, (void *)(UINTPTR_MAX - MV_CHUNK_SIZE + 1 +
						 MV_PAGE_SIZE), MV_CHUNK_SIZE), -MV_EINVAL);
	assert_int_equal(pool_check(h), 0);
	mv_host_destroy(h);
	munmap(mem, len);
}

/* A pool that makes its own chunks still uses seeded memory first. */
static void test_seed_unseeded_pool(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm = vm_new(h, 4096);
	unsigned char *mem = mmap(NULL, MV_CHUNK_SIZE, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	mv_page_id ids[1024];

	(void)state;
	assert_int_equal(mv_host_seed(h, mem, MV_CHUNK_SIZE), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 512, NULL, 0, ids), 0);
	assert_ptr_equal(mv_host_page_ptr(h, ids[0]), mem);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, ids + 512), 0);
	assert_true((unsigned char *)mv_host_page_ptr(h, ids[512]) < mem ||
		    (unsigned char *)mv_host_page_ptr(h, ids[512]) >= mem + MV_CHUNK_SIZE);
	assert_int_equal(mv_host_chunk_fd(h, mv_page_chunk(ids[512]), &(int){ 0 },
					  &(uint64_t){ 0 }), 0);
	mv_host_destroy(h);
	munmap(mem, MV_CHUNK_SIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_needs_seed),
		cmocka_unit_test(test_seed_bad_input),
		cmocka_unit_test(test_seed_unseeded_pool),
		cmocka_unit_test(test_seed_overlap_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
