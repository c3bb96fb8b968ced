/* Creating a VM costs what it uses, not what it could use: the budget and
 * the configuration are checked before anything of the VM's size exists,
 * untouched guest RAM costs (close to) no memory, and the VM's metadata
 * figure says what the kernel really holds for it. Memory is measured as
 * the kernel sees it (RssAnon of /proc/self/status, the peak RSS). The
 * walks that must see every used page (destruction, reset, range removal)
 * visit only descriptor pages that were used; pages placed at the edges
 * of those pages in every state must still all come back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <cmocka.h>

#include "host/pool.h"
#include "phys/fixture.h"

#define PG MV_PAGE_SIZE
#define GIB (1ull << 30)
#define TIB (1ull << 40)
#define MIB (1ull << 20)

/* RssAnon in bytes. */
static uint64_t rss_anon(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	unsigned long long kb = 0;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
			break;
	fclose(f);
	return kb << 10;
}

static uint64_t peak_rss(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return (uint64_t)ru.ru_maxrss << 10;
}

static int create(struct mv_host *host, const struct mv_vm_range *r,
		  uint32_t n, struct mv_vm **vm)
{
	struct mv_vm_config cfg = { .ranges = r, .nranges = n };

	return mv_vm_create(host, &cfg, vm);
}

/* A 1 TiB VM that the budget refuses, and one whose configuration is
 * bad past a huge range, are refused before any descriptor exists: the
 * peak RSS does not move (eagerly written descriptors were 4 GiB). */
static void refused_before_allocation(void **state)
{
	struct mv_host_config hc = { .budget_pages = GIB / PG,
				     .overcommit = MV_OVERCOMMIT_NONE };
	struct mv_vm_range r[2] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = TIB },
		{ .type = MV_PAGE_MMIO, .gpa = TIB - PG, .size = PG },
	};
	struct mv_host_stats hs;
	struct mv_host *host;
	struct mv_vm *vm = NULL;
	uint64_t peak;

	(void)state;
	assert_int_equal(mv_host_create(&hc, &host), 0);
	peak = peak_rss();
	assert_int_equal(create(host, r, 1, &vm), -MV_EBUDGET);
	assert_null(vm);
	mv_host_destroy(host);
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(create(host, r, 2, &vm), -MV_EEXIST);  /* overlap */
	r[1].gpa = TIB + 1;
	assert_int_equal(create(host, r, 2, &vm), -MV_EINVAL);
	assert_null(vm);
	assert_true(peak_rss() - peak < 64 * MIB);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.vms + hs.reserved_pages, 0);
	mv_host_destroy(host);
}

/* A 1 TiB VM: creating it takes no memory to speak of; pages written
 * anywhere in it cost a descriptor page each (RSS and metadata_bytes
 * agree), untouched pages read as zeros with an all-zero descriptor. */
static void untouched_ram_is_free(void **state)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0, .size = TIB };
	static const uint64_t spots[] = { 0, 255, 256, 4095, 1ull << 20,
					  (1ull << 27) + 17, (TIB / PG) - 1 };
	const unsigned nspots = sizeof(spots) / sizeof(spots[0]);
	struct mv_vm_stats st0, st1;
	struct mv_host *host;
	struct mv_vm *vm;
	uint64_t rss0, rss1;
	uint8_t page[PG], zero[PG] = { 0 };
	struct mv_page none = { 0 };

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	rss0 = rss_anon();
	assert_int_equal(create(host, &r, 1, &vm), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st0), 0);
	rss1 = rss_anon();
	assert_true(rss1 - rss0 < 4 * MIB);
	assert_true(st0.metadata_bytes < MIB);
	assert_int_equal(st0.descriptor_reserved_bytes, TIB / PG * 16);
	assert_int_equal(st0.pages[MV_PAGE_ZERO], TIB / PG);
	/* untouched: zeros, an all-zero descriptor read as ZERO RAM */
	assert_int_equal(mv_vm_phys_read(vm, TIB / 2, page, PG), 0);
	assert_memory_equal(page, zero, PG);
	assert_memory_equal(mv_vm_page(vm, (TIB / 2) / PG), &none, sizeof(none));
	assert_int_equal(mv_page_state(mv_vm_page(vm, 77)), MV_PAGE_ZERO);
	assert_int_equal(mv_page_type(mv_vm_page(vm, 77)), MV_PAGE_RAM);
	assert_int_equal(mv_page_host_id(mv_vm_page(vm, 77)), MV_ZERO_PAGE);
	/* written pages across the whole TiB */
	for (unsigned i = 0; i < nspots; i++) {
		fx_fill(page, PG, i + 1);
		assert_int_equal(mv_vm_phys_write(vm, spots[i] * PG, page, PG),
				 0);
	}
	assert_int_equal(mv_vm_get_stats(vm, &st1), 0);
	/* six descriptor pages written (pages 0 and 255 share the first,
	 * 256 starts the second), and one only read (TIB / 2), which mincore
	 * counts although it maps the kernel's zero page */
	assert_true(st1.metadata_bytes - st0.metadata_bytes >= 6 * PG);
	assert_true(st1.metadata_bytes - st0.metadata_bytes <= 8 * PG);
	for (unsigned i = 0; i < nspots; i++) {
		uint8_t want[PG];

		fx_fill(want, PG, i + 1);
		assert_int_equal(mv_vm_phys_read(vm, spots[i] * PG, page, PG),
				 0);
		assert_memory_equal(page, want, PG);
	}
	/* reset: every written page found and freed, descriptors NIL again */
	assert_int_equal(mv_vm_reset(vm), 0);
	assert_int_equal(mv_vm_get_stats(vm, &st1), 0);
	assert_int_equal(st1.pages[MV_PAGE_ZERO], TIB / PG);
	for (unsigned i = 0; i < nspots; i++)
		assert_int_equal(mv_vm_page(vm, spots[i])->host_id,
				 MV_NIL_PAGE);
	assert_int_equal(pool_check(host), 0);
	mv_vm_destroy(vm);
	assert_true(rss_anon() - rss0 < 4 * MIB);
	mv_host_destroy(host);
}

/* Pages in every state at the edges of descriptor pages of a large VM
 * (with another VM sharing them): destruction, range removal and reset
 * each find them all, so the accounts close and no reference is left. */
static void walks_find_every_page(void **state)
{
	struct mv_vm_range r[2] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = 64 * GIB },
		{ .type = MV_PAGE_RAM, .gpa = 128 * GIB, .size = 64 * GIB },
	};
	static const uint64_t spots[] = { 255, 256, 511, 65536,
					  (64 * GIB / PG) - 1 };
	struct mv_host_stats hs;
	struct mv_host *host;
	struct mv_vm *vm, *other;
	uint8_t page[PG];
	uint64_t armed;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	other = fx_ram_vm(host, 16, 0, 0);
	assert_non_null(other);
	fx_fill(page, PG, 99);
	assert_int_equal(mv_vm_phys_write(other, 0, page, PG), 0);
	for (int round = 0; round < 3; round++) {
		assert_int_equal(create(host, r, 2, &vm), 0);
		for (unsigned i = 0; i < 5; i++) {
			for (unsigned k = 0; k < 2; k++) {
				uint64_t gfn = r[k].gpa / PG + spots[i];

				assert_int_equal(mv_vm_phys_write(vm, gfn * PG,
						 page, PG), 0);
				if (i == 0 || i == 4)   /* SHARED */
					assert_int_equal(mv_vm_share_pages(
						vm, gfn, other, 0), 0);
				else if (i == 1)        /* BALLOONED */
					assert_int_equal(mv_vm_balloon_inflate(
						vm, &gfn, 1), 0);
				else if (i == 2)        /* MONITORED */
					assert_int_equal(mv_vm_write_monitor(
						vm, gfn, 1, &armed), 0);
			}
		}
		assert_int_equal(pool_check(host), 0);
		if (round == 1) {
			assert_int_equal(mv_vm_range_remove(vm, r[1].gpa), 0);
			assert_int_equal(mv_vm_range_remove(vm, 0), 0);
		} else if (round == 2) {
			assert_int_equal(mv_vm_reset(vm), 0);
		}
		mv_vm_destroy(vm);
		assert_int_equal(mv_host_get_stats(host, &hs), 0);
		assert_int_equal(hs.vms, 1);
		assert_int_equal(hs.shared_refs, 1);
		assert_int_equal(hs.ballooned_pages, 0);
	}
	mv_vm_destroy(other);
	assert_int_equal(mv_host_get_stats(host, &hs), 0);
	assert_int_equal(hs.vms + hs.shared_refs + hs.private_pages, 0);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(refused_before_allocation),
		cmocka_unit_test(untouched_ram_is_free),
		cmocka_unit_test(walks_find_every_page),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
