/* mv_vm_phys_write settles its pages and its source before the first
 * byte: a budget, reservation or balloon refusal fails the whole write
 * with no byte written, and a source inside guest memory (a pointer from
 * mv_vm_gpa_to_hva) gives the bytes it held when the call began, even
 * when it overlaps the destination, lies in the shared page a
 * copy-on-write frees, or in a chunk the mapping cache unmaps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "host/pool.h"
#include "phys/fixture.h"

#define PG MV_PAGE_SIZE

static void write_page(struct mv_vm *vm, uint64_t gfn, uint32_t seed)
{
	uint8_t page[PG];

	fx_fill(page, sizeof(page), seed);
	assert_int_equal(mv_vm_phys_write(vm, gfn * PG, page, PG), 0);
}

static void expect_page(struct mv_vm *vm, uint64_t gfn, uint32_t seed)
{
	uint8_t page[PG], want[PG];

	fx_fill(want, sizeof(want), seed);
	assert_int_equal(mv_vm_phys_read(vm, gfn * PG, page, PG), 0);
	assert_memory_equal(page, want, PG);
}

static void expect_zero(struct mv_vm *vm, uint64_t gfn)
{
	static const uint8_t zero[PG];
	uint8_t page[PG];

	assert_int_equal(mv_vm_phys_read(vm, gfn * PG, page, PG), 0);
	assert_memory_equal(page, zero, PG);
	assert_int_equal(fx_state(vm, gfn * PG), MV_PAGE_ZERO);
}

/* A budget of 40 pages: B holds 30 of them, A has 2 pages written and its
 * handy cache; a 12-page write over A's two written pages and ten ZERO
 * pages cannot get its pages. Before, the first pages were written and
 * the call failed half-way; now no byte changes, and once B is gone the
 * same write succeeds. */
static void budget_refusal_writes_nothing(void **state)
{
	struct mv_host_config hc = { .budget_pages = 40,
				     .overcommit = MV_OVERCOMMIT_ALLOW };
	struct mv_host *host;
	struct mv_vm *a, *b;
	static uint8_t buf[12 * PG];
	struct mv_vm_stats before, after;
	int rc;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	a = fx_ram_vm(host, 64, 1, 2);
	b = fx_ram_vm(host, 64, 1, 1);
	assert_non_null(a);
	assert_non_null(b);
	write_page(a, 0, 100);
	write_page(a, 1, 101);
	for (uint64_t g = 0; g < 64; g++) {
		rc = mv_vm_phys_write(b, g * PG, "b", 1);
		if (rc)
			break;
	}
	assert_int_equal(rc, -MV_EBUDGET);
	/* give back three pages: less than the write needs */
	uint64_t gfns[3] = { 0, 1, 2 };
	assert_int_equal(mv_vm_balloon_inflate(b, gfns, 3), 0);
	assert_int_equal(mv_vm_get_stats(a, &before), 0);
	memset(buf, 0x5A, sizeof(buf));
	assert_int_equal(mv_vm_phys_write(a, 100, buf, sizeof(buf) - 200),
			 -MV_EBUDGET);
	assert_int_equal(mv_vm_get_stats(a, &after), 0);
	expect_page(a, 0, 100);
	expect_page(a, 1, 101);
	for (uint64_t g = 2; g < 12; g++)
		expect_zero(a, g);
	assert_int_equal(after.first_touch, before.first_touch);
	assert_memory_equal(after.pages, before.pages, sizeof(before.pages));
	assert_int_equal(pool_check(host), 0);
	mv_vm_destroy(b);
	assert_int_equal(mv_vm_phys_write(a, 100, buf, sizeof(buf) - 200), 0);
	assert_int_equal(mv_vm_phys_read(a, 100, buf, sizeof(buf) - 200), 0);
	for (size_t i = 0; i < sizeof(buf) - 200; i++)
		assert_int_equal(buf[i], 0x5A);
	assert_int_equal(pool_check(host), 0);
	mv_vm_destroy(a);
	mv_host_destroy(host);
}

/* Under MV_BALLOON_WRITE_ERROR a ballooned page in the span refuses the
 * write before its first byte; a ballooned page under a write handler is
 * the handler's to decide. */
static void balloon_refusal_writes_nothing(void **state)
{
	struct fx_ctx c = { 0 };
	uint8_t buf[3 * PG];
	uint64_t g = 2;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &c.host), 0);
	assert_int_equal(fx_create(c.host, &c.dev, MV_BALLOON_WRITE_ERROR, 0,
				   &c.vm), 0);
	write_page(c.vm, 0, 7);
	write_page(c.vm, 1, 8);
	assert_int_equal(mv_vm_balloon_inflate(c.vm, &g, 1), 0);
	memset(buf, 0xEE, sizeof(buf));
	assert_int_equal(mv_vm_phys_write(c.vm, 0, buf, sizeof(buf)),
			 -MV_ESTATE);
	expect_page(c.vm, 0, 7);
	expect_page(c.vm, 1, 8);
	assert_int_equal(fx_state(c.vm, 2 * PG), MV_PAGE_BALLOONED);
	mv_vm_destroy(c.vm);
	mv_host_destroy(c.host);
}

/* Moves inside one page whose source is a pointer into that very page,
 * both directions, through read and write pointers, against memmove on a
 * copy. (memcpy on overlapping memory: ASan's memcpy-param-overlap.) */
static void overlapping_move_in_page(void **state)
{
	struct fx_ctx *c = *state;
	const size_t shifts[] = { 1, 7, 64, 1000 };
	uint8_t model[PG], got[PG];
	void *p;

	for (int wr = 0; wr < 2; wr++) {
		for (size_t i = 0; i < sizeof(shifts) / sizeof(shifts[0]); i++) {
			size_t s = shifts[i], n = PG - s - 3;

			for (int up = 0; up < 2; up++) {
				write_page(c->vm, 5, (uint32_t)(s + up));
				fx_fill(model, PG, (uint32_t)(s + up));
				assert_int_equal(mv_vm_gpa_to_hva(c->vm, 5 * PG, wr,
								  &p), 0);
				uint64_t dst = 5 * PG + (up ? s : 0);
				const uint8_t *src = (uint8_t *)p + (up ? 0 : s);

				memmove(model + (up ? s : 0), model + (up ? 0 : s), n);
				assert_int_equal(mv_vm_phys_write(c->vm, dst, src, n),
						 0);
				assert_int_equal(mv_vm_phys_read(c->vm, 5 * PG, got, PG),
						 0);
				assert_memory_equal(got, model, PG);
			}
		}
	}
}

/* A page of A holds the last reference of a shared page; the source is a
 * read pointer into that shared page. The copy-on-write frees it (and,
 * with no free cache, punches its memory away) before the bytes are
 * copied: the source must have been copied aside. */
static void source_in_last_shared_reference(uint32_t map_max)
{
	struct mv_host_config hc = { .free_cache_pages = 0 };
	struct mv_host *host;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .size = 64 * PG };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = map_max };
	struct mv_vm *a, *b;
	uint8_t want[PG], got[PG];
	void *p;

	assert_int_equal(mv_host_create(&hc, &host), 0);
	assert_int_equal(mv_vm_create(host, &cfg, &a), 0);
	assert_int_equal(mv_vm_create(host, &cfg, &b), 0);
	write_page(a, 3, 33);
	write_page(b, 3, 33);
	assert_int_equal(mv_vm_share_pages(a, 3, b, 3), 0);
	write_page(b, 3, 44);               /* A: the last reference */
	assert_int_equal(fx_state(a, 3 * PG), MV_PAGE_SHARED);
	assert_int_equal(mv_vm_gpa_to_hva(a, 3 * PG, 0, &p), 0);
	fx_fill(want, PG, 33);
	memmove(want + 10, want + 100, 2000);
	assert_int_equal(mv_vm_phys_write(a, 3 * PG + 10, (uint8_t *)p + 100,
					  2000), 0);
	assert_int_equal(fx_state(a, 3 * PG), MV_PAGE_ALLOCATED);
	assert_int_equal(mv_vm_phys_read(a, 3 * PG, got, PG), 0);
	assert_memory_equal(got, want, PG);
	/* the same source written to another page of A */
	write_page(a, 4, 55);
	write_page(a, 5, 55);
	assert_int_equal(mv_vm_share_pages(a, 4, a, 5), 0);
	write_page(a, 5, 56);
	assert_int_equal(mv_vm_gpa_to_hva(a, 4 * PG, 0, &p), 0);
	fx_fill(want, PG, 55);
	assert_int_equal(mv_vm_phys_write(a, 4 * PG, p, PG), 0);
	assert_int_equal(mv_vm_phys_read(a, 4 * PG, got, PG), 0);
	assert_memory_equal(got, want, PG);
	assert_int_equal(pool_check(host), 0);
	mv_vm_destroy(a);
	mv_vm_destroy(b);
	mv_host_destroy(host);
}

static void source_in_shared_page_pool(void **state)
{
	(void)state;
	source_in_last_shared_reference(0);
}

static void source_in_shared_page_mapcache(void **state)
{
	(void)state;
	source_in_last_shared_reference(2);
}

/* Mapping cache of two chunks, the VM's pages in three: the source points
 * into the least recently used chunk, and the write's destination lies in
 * the third, so mapping it unmaps the source's chunk. */
static void source_in_unmapped_chunk(void **state)
{
	struct mv_host *host;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .size = 1600 * PG };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .map_chunks_max = 2 };
	struct mv_vm *vm;
	uint64_t in[3] = { 0 };
	int found = 1;
	uint8_t want[PG], got[PG];
	void *p;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(mv_vm_create(host, &cfg, &vm), 0);
	for (uint64_t g = 0; g < 1600; g++)
		write_page(vm, g, (uint32_t)g);
	/* one frame in each of three different chunks */
	uint32_t c0 = mv_page_chunk(mv_page_host_id(mv_vm_page(vm, 0))), c1 = c0;
	for (uint64_t g = 1; g < 1600 && found < 3; g++) {
		uint32_t ch = mv_page_chunk(mv_page_host_id(mv_vm_page(vm, g)));

		if (found == 1 && ch != c0) {
			in[found++] = g;
			c1 = ch;
		} else if (found == 2 && ch != c0 && ch != c1) {
			in[found++] = g;
		}
	}
	assert_int_equal(found, 3);
	assert_int_equal(mv_vm_gpa_to_hva(vm, in[0] * PG, 0, &p), 0);
	assert_int_equal(mv_vm_phys_read(vm, in[1] * PG, got, 1), 0);
	fx_fill(want, PG, (uint32_t)in[0]);
	assert_int_equal(mv_vm_phys_write(vm, in[2] * PG, p, PG), 0);
	assert_int_equal(mv_vm_phys_read(vm, in[2] * PG, got, PG), 0);
	assert_memory_equal(got, want, PG);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(budget_refusal_writes_nothing),
		cmocka_unit_test(balloon_refusal_writes_nothing),
		T(overlapping_move_in_page),
		cmocka_unit_test(source_in_shared_page_pool),
		cmocka_unit_test(source_in_shared_page_mapcache),
		cmocka_unit_test(source_in_unmapped_chunk),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
