/* The chunk mapping cache under a tiny bound: the VM maps chunks itself
 * (memfd), keeps at most two, unmaps the least recently used, counts hits
 * and misses, and sees the same bytes as the pool's own mapping. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "phys/fixture.h"

#define PAGES 2048u  /* 8 MiB: at least four chunks */

struct ctx {
	struct mv_host *host;
	struct mv_vm *vm;
	struct fx_notes notes;
	uint64_t gfn_in[8];     /* a guest page backed by each chunk */
	uint32_t chunk[8], nchunks;
};

static void find_chunks(struct ctx *c)
{
	for (uint64_t g = 0; g < PAGES && c->nchunks < 8; g++) {
		uint32_t ch = mv_page_chunk(mv_page_host_id(mv_vm_page(c->vm, g)));
		uint32_t i;

		for (i = 0; i < c->nchunks && c->chunk[i] != ch; i++)
			;
		if (i == c->nchunks) {
			c->chunk[c->nchunks] = ch;
			c->gfn_in[c->nchunks++] = g;
		}
	}
}

static int setup(void **state)
{
	struct ctx *c = calloc(1, sizeof(*c));
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = (uint64_t)PAGES * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = 2 };
	uint8_t page[MV_PAGE_SIZE];

	if (!c || mv_host_create(NULL, &c->host) ||
	    mv_vm_create(c->host, &cfg, &c->vm))
		return -1;
	for (uint32_t g = 0; g < PAGES; g++) {
		fx_fill(page, sizeof(page), g);
		if (mv_vm_phys_write(c->vm, (uint64_t)g << 12, page, 4096))
			return -1;
	}
	find_chunks(c);
	mv_vm_set_notify(c->vm, fx_notify, &c->notes);
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	struct ctx *c = *state;

	mv_vm_destroy(c->vm);
	mv_host_destroy(c->host);
	free(c);
	return 0;
}

static void read_chunk(struct ctx *c, int i)
{
	uint8_t out[MV_PAGE_SIZE], want[MV_PAGE_SIZE];

	fx_fill(want, sizeof(want), (uint32_t)c->gfn_in[i]);
	assert_int_equal(mv_vm_phys_read(c->vm, c->gfn_in[i] << 12, out, 4096),
			 0);
	assert_memory_equal(out, want, 4096);
}

/* Everything written through the VM's own mappings is in the pool. */
static void coherent_with_pool(void **state)
{
	struct ctx *c = *state;
	uint8_t want[MV_PAGE_SIZE];
	struct mv_vm_stats st;

	assert_true(c->nchunks >= 4);
	for (uint32_t g = 0; g < PAGES; g += 97) {
		const uint8_t *p = mv_host_page_ptr(
			c->host, mv_page_host_id(mv_vm_page(c->vm, g)));

		fx_fill(want, sizeof(want), g);
		assert_memory_equal(p, want, 4096);
	}
	assert_int_equal(mv_vm_get_stats(c->vm, &st), 0);
	assert_true(st.mapped_chunks <= 2);
	assert_true(st.map_evictions >= 2);
	assert_int_equal(st.map_fallbacks, 0);
}

/* A, B, A, C: C evicts B (least recently used), not A. */
static void lru_eviction_and_counters(void **state)
{
	struct ctx *c = *state;
	struct mv_vm_stats s0, s1;

	read_chunk(c, 0);
	read_chunk(c, 1);
	assert_int_equal(mv_vm_get_stats(c->vm, &s0), 0);
	read_chunk(c, 0);    /* hit */
	read_chunk(c, 2);    /* miss, evicts chunk 1 */
	read_chunk(c, 0);    /* hit: chunk 0 survived */
	assert_int_equal(mv_vm_get_stats(c->vm, &s1), 0);
	assert_int_equal(s1.map_misses - s0.map_misses, 1);
	assert_int_equal(s1.map_evictions - s0.map_evictions, 1);
	assert_int_equal((s1.map_hits + s1.map_table_hits) -
			 (s0.map_hits + s0.map_table_hits), 2);
	assert_true(c->notes.count[MV_NOTIFY_UNMAP] >= 1);
	assert_int_equal(c->notes.last_count, UINT64_MAX);
	read_chunk(c, 1);    /* miss again: it was the one evicted */
	assert_int_equal(mv_vm_get_stats(c->vm, &s0), 0);
	assert_int_equal(s0.map_misses - s1.map_misses, 1);
	assert_int_equal(s0.mapped_chunks, 2);
}

/* Repeated reads of one chunk stay in the lookaside. */
static void lookaside_hits(void **state)
{
	struct ctx *c = *state;
	struct mv_vm_stats s0, s1;

	read_chunk(c, 3);
	assert_int_equal(mv_vm_get_stats(c->vm, &s0), 0);
	for (int i = 0; i < 100; i++)
		read_chunk(c, 3);
	assert_int_equal(mv_vm_get_stats(c->vm, &s1), 0);
	assert_int_equal(s1.map_hits - s0.map_hits, 100);
	assert_int_equal(s1.map_misses, s0.map_misses);
}

/* Seeded pools have no memfd: the cache falls back to the pool's pointer. */
static void seeded_fallback(void **state)
{
	struct mv_host_config hc = { .seeded = 1 };
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 64 * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = 2 };
	static uint8_t mem[MV_CHUNK_SIZE] __attribute__((aligned(4096)));
	struct mv_vm_stats st;
	uint8_t b = 0x99, out = 0;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	assert_int_equal(mv_host_seed(host, mem, sizeof(mem)), 0);
	assert_int_equal(mv_vm_create(host, &cfg, &vm), 0);
	assert_int_equal(mv_vm_phys_write(vm, 4096 * 3, &b, 1), 0);
	assert_int_equal(mv_vm_phys_read(vm, 4096 * 3, &out, 1), 0);
	assert_int_equal(out, 0x99);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_true(st.map_fallbacks >= 2);
	assert_int_equal(st.mapped_chunks, 0);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* Two pages are held at once by a copy-on-write (the shared source and the
 * private copy) and by a share (both sides): a bound of one chunk would
 * unmap the first while the second is mapped, so it is refused, and two
 * are enough. */
static void two_pages_at_once(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 64 * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = 1 };
	uint8_t page[MV_PAGE_SIZE], out[MV_PAGE_SIZE];

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(mv_vm_create(host, &cfg, &vm), -MV_EINVAL);
	cfg.map_chunks_max = 2;
	assert_int_equal(mv_vm_create(host, &cfg, &vm), 0);
	memset(page, 0x5a, sizeof(page));
	assert_int_equal(mv_vm_phys_write(vm, 0, page, sizeof(page)), 0);
	assert_int_equal(mv_vm_phys_write(vm, MV_PAGE_SIZE, page, sizeof(page)), 0);
	assert_int_equal(mv_vm_share_pages(vm, 0, vm, 1), 0);
	assert_int_equal(fx_state(vm, 0), MV_PAGE_SHARED);
	page[7] = 1;
	assert_int_equal(mv_vm_phys_write(vm, 7, &page[7], 1), 0);
	assert_int_equal(fx_state(vm, 0), MV_PAGE_ALLOCATED);
	assert_int_equal(mv_vm_phys_read(vm, 0, out, sizeof(out)), 0);
	assert_memory_equal(out, page, sizeof(out));
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* A released memfd chunk's id is not given to seeded memory: this VM still
 * maps the id's memfd range and would write there, not to the page the
 * pool (and a move's copy) reads. */
static void seeded_after_memfd_release(void **state)
{
	struct mv_host_config hc = { .empty_chunk_cache = 0 };
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 64 * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .handy_low = 0, .handy_high = 1,
				    .map_chunks_max = 2 };
	static uint8_t mem[MV_CHUNK_SIZE] __attribute__((aligned(4096)));
	uint8_t page[MV_PAGE_SIZE];
	uint64_t g0 = 0;
	const uint8_t *host_view;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	assert_int_equal(mv_vm_create(host, &cfg, &vm), 0);
	memset(page, 0x11, sizeof(page));
	assert_int_equal(mv_vm_phys_write(vm, 0, page, sizeof(page)), 0);
	assert_int_equal(mv_page_chunk(mv_page_host_id(mv_vm_page(vm, 0))), 1);
	assert_int_equal(mv_vm_balloon_inflate(vm, &g0, 1), 0);  /* chunk 1 goes */
	assert_int_equal(mv_host_seed(host, mem, sizeof(mem)), 0);
	memset(page, 0x22, sizeof(page));
	assert_int_equal(mv_vm_phys_write(vm, MV_PAGE_SIZE, page, sizeof(page)), 0);
	host_view = mv_host_page_ptr(host, mv_page_host_id(mv_vm_page(vm, 1)));
	assert_non_null(host_view);
	assert_memory_equal(host_view, page, sizeof(page));
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(coherent_with_pool, setup, teardown),
		cmocka_unit_test_setup_teardown(lru_eviction_and_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(lookaside_hits, setup, teardown),
		cmocka_unit_test(seeded_fallback),
		cmocka_unit_test(two_pages_at_once),
		cmocka_unit_test(seeded_after_memfd_release),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
