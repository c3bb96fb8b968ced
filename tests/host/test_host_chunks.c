/* Chunks: id reuse, allocation order (hint, affinity, fullest partly used,
 * empty cached, new), the empty-chunk cache, memory really returned to the
 * host (RSS measured), and exporting a chunk through its memfd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

#define BIG 100000

static mv_page_id *alloc_n(struct mv_host *h, mv_vmid vm, uint32_t n)
{
	mv_page_id *ids = malloc(n * sizeof(*ids));

	assert_non_null(ids);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, n, NULL, 0, ids), 0);
	return ids;
}

/* Free @n of @vm's pages that lie in chunk @chunk, taken from @ids. */
static void free_in_chunk(struct mv_host *h, mv_vmid vm, const mv_page_id *ids,
			  uint32_t total, uint32_t chunk, uint32_t n)
{
	mv_page_id out[MV_CHUNK_PAGES];
	uint32_t k = 0;

	for (uint32_t i = 0; i < total && k < n; i++)
		if (mv_page_chunk(ids[i]) == chunk)
			out[k++] = ids[i];
	assert_int_equal(k, n);
	assert_int_equal(mv_host_free(h, vm, n, out), 0);
}

static uint32_t one_page_chunk(struct mv_host *h, mv_vmid vm)
{
	mv_page_id id;

	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, &id), 0);
	return mv_page_chunk(id);
}

static void test_id_reuse_after_release(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm = vm_new(h, BIG);
	mv_page_id *ids = alloc_n(h, vm, 3 * MV_CHUNK_PAGES);
	mv_page_id again[MV_CHUNK_PAGES];
	struct mv_host_stats st;

	(void)state;
	for (uint32_t i = 0; i < 3 * MV_CHUNK_PAGES; i++)
		assert_true(mv_page_chunk(ids[i]) >= 1 && mv_page_chunk(ids[i]) <= 3);
	free_in_chunk(h, vm, ids, 3 * MV_CHUNK_PAGES, 2, MV_CHUNK_PAGES);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks, 2);
	assert_int_equal(st.chunks_released, 1);
	/* The lowest free id, 2, comes back for the next chunk. */
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, MV_CHUNK_PAGES,
				       NULL, 0, again), 0);
	for (uint32_t i = 0; i < MV_CHUNK_PAGES; i++)
		assert_int_equal(mv_page_chunk(again[i]), 2);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks_created, 4);
	assert_int_equal(pool_check(h), 0);
	free(ids);
	mv_host_destroy(h);
}

/* A: chunks 1 and 3, B: chunk 2, C leaves one empty chunk (4) cached. */
static void test_allocation_order(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid a = vm_new(h, BIG), b = vm_new(h, BIG), c = vm_new(h, BIG);
	mv_page_id *ia1 = alloc_n(h, a, MV_CHUNK_PAGES);
	mv_page_id *ib = alloc_n(h, b, MV_CHUNK_PAGES);
	mv_page_id *ia3 = alloc_n(h, a, MV_CHUNK_PAGES);
	mv_page_id *ic = alloc_n(h, c, MV_CHUNK_PAGES);
	struct mv_host_stats st;

	(void)state;
	assert_int_equal(mv_page_chunk(ia1[0]), 1);
	assert_int_equal(mv_page_chunk(ib[0]), 2);
	assert_int_equal(mv_page_chunk(ia3[0]), 3);
	assert_int_equal(mv_page_chunk(ic[0]), 4);
	assert_int_equal(mv_host_free(h, c, MV_CHUNK_PAGES, ic), 0);
	free_in_chunk(h, a, ia3, MV_CHUNK_PAGES, 3, 200);  /* 200 free */
	free_in_chunk(h, b, ib, MV_CHUNK_PAGES, 2, 10);    /* 10 free: fullest */
	free_in_chunk(h, a, ia1, MV_CHUNK_PAGES, 1, 300);  /* 300 free */
	/* 1. The hint: A last allocated from chunk 3. */
	assert_int_equal(one_page_chunk(h, a), 3);
	for (int i = 0; i < 199; i++)
		assert_int_equal(one_page_chunk(h, a), 3);
	/* 2. Affinity: A's own chunk 1 before B's fuller chunk 2. */
	for (int i = 0; i < 300; i++)
		assert_int_equal(one_page_chunk(h, a), 1);
	/* 3. The fullest partly used chunk (B's 2) before the cached empty 4. */
	for (int i = 0; i < 10; i++)
		assert_int_equal(one_page_chunk(h, a), 2);
	/* 4. The cached empty chunk before a new one. */
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.empty_cached_chunks, 1);
	assert_int_equal(one_page_chunk(h, a), 4);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks_created, 4);
	/* 5. A brand-new chunk once everything is full. */
	for (int i = 0; i < 511; i++)
		assert_int_equal(one_page_chunk(h, a), 4);
	assert_int_equal(one_page_chunk(h, a), 5);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks_created, 5);
	assert_int_equal(pool_check(h), 0);
	free(ia1);
	free(ib);
	free(ia3);
	free(ic);
	mv_host_destroy(h);
}

/* Among other VMs' partly used chunks, the fullest bin wins. */
static void test_fullest_partly_used_first(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid a = vm_new(h, BIG), b = vm_new(h, BIG);
	mv_page_id *ia = alloc_n(h, a, 4 * MV_CHUNK_PAGES);
	static const uint32_t nfree[4] = { 400, 150, 5, 60 };
	static const uint32_t expect[4] = { 3, 4, 2, 1 };

	(void)state;
	for (uint32_t c = 0; c < 4; c++)
		free_in_chunk(h, a, ia, 4 * MV_CHUNK_PAGES, c + 1, nfree[c]);
	/* B has no chunks: it fills A's chunks, fullest first. */
	for (uint32_t k = 0; k < 4; k++) {
		uint32_t c = expect[k];

		for (uint32_t i = 0; i < nfree[c - 1]; i++)
			assert_int_equal(one_page_chunk(h, b), c);
	}
	free(ia);
	mv_host_destroy(h);
}

static void test_empty_cache_size(void **state)
{
	for (uint32_t cache = 0; cache <= 3; cache++) {
		struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, cache);
		mv_vmid vm = vm_new(h, BIG);
		mv_page_id *ids = alloc_n(h, vm, 5 * MV_CHUNK_PAGES);
		struct mv_host_stats st;

		(void)state;
		assert_int_equal(mv_host_free(h, vm, 5 * MV_CHUNK_PAGES, ids), 0);
		assert_int_equal(mv_host_get_stats(h, &st), 0);
		assert_int_equal(st.empty_cached_chunks, cache);
		assert_int_equal(st.chunks, cache);
		assert_int_equal(st.chunks_released, 5 - cache);
		assert_int_equal(st.free_pages, cache * MV_CHUNK_PAGES);
		/* Cached chunks are used again before new ones are made. */
		free(ids);
		ids = alloc_n(h, vm, 5 * MV_CHUNK_PAGES);
		assert_int_equal(mv_host_get_stats(h, &st), 0);
		assert_int_equal(st.chunks_created, 10 - cache);
		assert_int_equal(pool_check(h), 0);
		free(ids);
		mv_host_destroy(h);
	}
}

/* A field of /proc/self/status, in KiB. */
static long status_kib(const char *field)
{
	char line[256];
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, strlen(field)))
			v = strtol(line + strlen(field) + 1, NULL, 10);
	fclose(f);
	return v;
}

/* KiB the kernel holds for the pool's memfd (its allocated blocks): what
 * the process maps may fall on munmap alone while the file keeps it. */
static long memfd_kib(const struct mv_host *h)
{
	struct stat st;

	assert_int_equal(fstat(h->memfd, &st), 0);
	return (long)(st.st_blocks / 2);
}

/* Within one VM: the hint beats a fuller own chunk while it is partly
 * used; then own chunks go fullest first (10 free before 300 free); an
 * emptied hint (now an empty cached chunk) comes after own partly used
 * ones. New chunks are taken from the head of the empty list, so one call
 * of three chunks fills 3, 2, 1 and leaves the hint on 1. */
static void test_allocation_order_within_a_vm(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 4);
	mv_vmid a = vm_new(h, BIG);
	mv_page_id *ids = alloc_n(h, a, 3 * MV_CHUNK_PAGES), last;

	(void)state;
	assert_int_equal(mv_page_chunk(ids[3 * MV_CHUNK_PAGES - 1]), 1);
	free_in_chunk(h, a, ids, 3 * MV_CHUNK_PAGES, 3, 300);
	free_in_chunk(h, a, ids, 3 * MV_CHUNK_PAGES, 2, 10);
	free_in_chunk(h, a, ids, 3 * MV_CHUNK_PAGES, 1, 100);  /* the hint */
	for (int i = 0; i < 100; i++)
		assert_int_equal(one_page_chunk(h, a), 1);
	for (int i = 0; i < 10; i++)
		assert_int_equal(one_page_chunk(h, a), 2);
	for (int i = 0; i < 300; i++)
		assert_int_equal(one_page_chunk(h, a), 3);
	/* A new chunk becomes the hint; emptied, it waits in the cache while
	 * the VM's partly used chunk 2 serves first. */
	assert_int_equal(mv_host_alloc(h, a, MV_ACCOUNT_BASE, 1, NULL, 0, &last), 0);
	assert_int_equal(mv_page_chunk(last), 4);
	assert_int_equal(mv_host_free(h, a, 1, &last), 0);
	free_in_chunk(h, a, ids, 3 * MV_CHUNK_PAGES, 2, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(one_page_chunk(h, a), 2);
	assert_int_equal(one_page_chunk(h, a), 4);
	assert_int_equal(pool_check(h), 0);
	free(ids);
	mv_host_destroy(h);
}

/* Which bin a chunk sits on, for each boundary of the 32-page bins: bin b
 * holds chunks with 32b+1 .. 32b+32 free pages; none when full, the empty
 * list when empty. */
static void test_bin_boundaries(void **state)
{
	static const struct { uint32_t nfree; unsigned list; } table[] = {
		{ 0, LIST_NONE }, { 1, 0 }, { 2, 0 }, { 31, 0 }, { 32, 0 },
		{ 33, 1 }, { 64, 1 }, { 65, 2 }, { 256, 7 }, { 257, 8 },
		{ 480, 14 }, { 481, 15 }, { 510, 15 }, { 511, 15 },
		{ 512, LIST_EMPTY },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 1);
		mv_vmid vm = vm_new(h, BIG);
		mv_page_id *ids = alloc_n(h, vm, MV_CHUNK_PAGES);
		uint32_t c = mv_page_chunk(ids[0]);

		if (table[i].nfree)
			assert_int_equal(mv_host_free(h, vm, table[i].nfree, ids), 0);
		assert_non_null(h->table[c]);
		print_message("%u free -> list %u\n", table[i].nfree,
			      h->table[c]->list);
		assert_int_equal(h->table[c]->list, table[i].list);
		assert_int_equal(pool_check(h), 0);
		free(ids);
		mv_host_destroy(h);
	}
}

static void test_rss_falls_when_chunks_released(void **state)
{
	enum { N = 16 * MV_CHUNK_PAGES };   /* 32 MiB */
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm = vm_new(h, N);
	mv_page_id *ids = alloc_n(h, vm, N);
	long shmem0, shmem1, shmem2, fd0, fd1, fd2;
	struct mv_host_stats st;

	(void)state;
	shmem0 = status_kib("RssShmem:");
	fd0 = memfd_kib(h);
	for (uint32_t i = 0; i < N; i++)
		memset(mv_host_page_ptr(h, ids[i]), 0x5a, MV_PAGE_SIZE);
	shmem1 = status_kib("RssShmem:");
	fd1 = memfd_kib(h);
	assert_true(fd1 - fd0 >= 32 * 1024);
	assert_int_equal(mv_host_free(h, vm, N, ids), 0);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks, 0);
	shmem2 = status_kib("RssShmem:");
	fd2 = memfd_kib(h);
	print_message("memfd %ld -> %ld -> %ld KiB, RssShmem %ld -> %ld -> %ld KiB\n",
		      fd0, fd1, fd2, shmem0, shmem1, shmem2);
	assert_int_equal(fd2, fd0);
	assert_true(shmem1 - shmem2 >= 30 * 1024);
	free(ids);
	mv_host_destroy(h);
}

static long maps_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	long n = 0;
	int ch;

	assert_non_null(f);
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

/* Chunks share one mapping: making 1000 chunks, releasing every other one
 * and making them again leaves the process's number of mappings where it
 * was (one mapping per chunk stopped the pool at vm.max_map_count, 65530
 * chunks, about 128 GiB). */
static void test_mappings_do_not_grow_with_chunks(void **state)
{
	enum { CHUNKS = 1000, N = CHUNKS * MV_CHUNK_PAGES };
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm = vm_new(h, N);
	mv_page_id *ids, one;
	long before, full, holes, again;
	struct mv_host_stats st;

	(void)state;
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, &one), 0);
	before = maps_count();
	ids = alloc_n(h, vm, N - 1);
	full = maps_count();
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks, CHUNKS);
	/* Release every other chunk: their pages go back, not their ranges. */
	for (uint32_t c = 2; c <= CHUNKS; c += 2)
		free_in_chunk(h, vm, ids, N - 1, c, MV_CHUNK_PAGES);
	holes = maps_count();
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.chunks, CHUNKS / 2);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE,
				       CHUNKS / 2 * MV_CHUNK_PAGES, NULL, 0, ids), 0);
	again = maps_count();
	print_message("mappings: %ld -> %ld -> %ld -> %ld\n", before, full,
		      holes, again);
	/* The allocator's own mappings (ASan's: several) may come and go;
	 * one per chunk would add 1000. */
	assert_true(full < before + 16);
	assert_true(holes < before + 16);
	assert_true(again < before + 16);
	assert_int_equal(pool_check(h), 0);
	free(ids);
	mv_host_destroy(h);
}

static void test_chunk_fd_maps_same_memory(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid vm = vm_new(h, BIG);
	mv_page_id id;
	uint64_t off;
	int fd;

	(void)state;
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, &id), 0);
	memcpy(mv_host_page_ptr(h, id), "through the memfd", 18);
	assert_int_equal(mv_host_chunk_fd(h, mv_page_chunk(id), &fd, &off), 0);
	assert_int_equal(off, (uint64_t)mv_page_chunk(id) * MV_CHUNK_SIZE);
	char *map = mmap(NULL, MV_CHUNK_SIZE, PROT_READ, MAP_SHARED, fd, (off_t)off);

	assert_true(map != MAP_FAILED);
	assert_string_equal(map + ((size_t)mv_page_index(id) << MV_PAGE_SHIFT),
			    "through the memfd");
	munmap(map, MV_CHUNK_SIZE);
	assert_int_equal(mv_host_chunk_fd(h, 0, &fd, &off), -MV_ERANGE);
	assert_int_equal(mv_host_chunk_fd(h, 99, &fd, &off), -MV_ENOENT);
	assert_int_equal(mv_host_chunk_fd(h, POOL_MAX_CHUNKS, &fd, &off), -MV_ERANGE);
	mv_host_destroy(h);
}

/* Host memory runs out half way through making chunks (the memfd may not
 * grow past 8 MiB: chunk 4 cannot be made): -MV_ENOMEM, and no trace. */
static void test_enomem_changes_nothing(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 0);
	mv_vmid vm = vm_new(h, BIG);
	mv_page_id *ids = malloc(5 * MV_CHUNK_PAGES * sizeof(*ids));
	struct rlimit old, lim = { 4ull * MV_CHUNK_SIZE, 4ull * MV_CHUNK_SIZE };
	struct mv_host_stats before, after;

	(void)state;
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 1, NULL, 0, ids), 0);
	assert_int_equal(mv_host_get_stats(h, &before), 0);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim.rlim_max = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 4 * MV_CHUNK_PAGES,
				       NULL, 0, ids + 1), -MV_ENOMEM);
	assert_int_equal(mv_host_get_stats(h, &after), 0);
	assert_true(host_stats_equal(&before, &after));
	assert_int_equal(pool_check(h), 0);
	/* What fits still works. */
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 3 * MV_CHUNK_PAGES - 1,
				       NULL, 0, ids + 1), 0);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	free(ids);
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_id_reuse_after_release),
		cmocka_unit_test(test_allocation_order),
		cmocka_unit_test(test_allocation_order_within_a_vm),
		cmocka_unit_test(test_bin_boundaries),
		cmocka_unit_test(test_fullest_partly_used_first),
		cmocka_unit_test(test_empty_cache_size),
		cmocka_unit_test(test_rss_falls_when_chunks_released),
		cmocka_unit_test(test_mappings_do_not_grow_with_chunks),
		cmocka_unit_test(test_chunk_fd_maps_same_memory),
		cmocka_unit_test(test_enomem_changes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
