/* Dirty logging, the dirty ring, framebuffer harvest and virtual-handler
 * registration, each against the alternative it replaces, in one run:
 *   dirty.get_clear      get + clear of a 1 GiB slot's bitmap with 1% of
 *                        its pages dirty, in ms per GiB; baseline: copying
 *                        and zeroing a bitmap of the same size
 *   dirty.ring           harvest + reset per ring entry; baseline: the
 *                        bitmap's get + clear per dirty page
 *   fb.harvest           a 16 MiB framebuffer with 1% of its pages written
 *                        by the guest; baseline: copy + memcmp of it (the
 *                        seed's "keep a copy and compare")
 *   vhandler.register    register + deregister a 16-page WRITE handler
 *                        with 4096 pages mapped; baseline: a full shadow
 *                        flush and the refaults of those pages (what a
 *                        registration cost with a full resync) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/dirty.h>
#include <memvisor/vhandler.h>

#include "bench.h"

#define GIB_PAGES (1u << 18)
#define FB_PAGES 4096u
#define VA 0x00007f0000000000ull
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)
#define ROUNDS 20

static struct mv_host *host;
static struct mv_vm *vm;
static struct mv_vcpu *cpu;
static uint64_t next_table = 1ull << 30;  /* tables above the logged GiB */

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_dirty: %s: %s\n", what, mv_strerror(rc));
	exit(1);
}

static void put(uint64_t gpa, uint64_t val)
{
	int rc = mv_vm_phys_write(vm, gpa, &val, 8);

	if (rc)
		die("phys write", rc);
}

static uint64_t get(uint64_t gpa)
{
	uint64_t v = 0;

	mv_vm_phys_read(vm, gpa, &v, 8);
	return v;
}

/* 4-level tables mapping VA + i * 4 KiB -> gpa + i * 4 KiB. */
static uint64_t map_range(uint64_t cr3, uint64_t va, uint64_t gpa, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		uint64_t table = cr3, a = va + i * 4096;

		for (unsigned level = 4; level > 1; level--) {
			uint64_t eg = table + ((a >> (12 + 9 * (level - 1))) & 511) * 8;
			uint64_t e = get(eg);

			if (!(e & MV_PTE_P)) {
				e = next_table | P_W_U;
				next_table += 4096;
				put(eg, e);
			}
			table = e & 0x000ffffffffff000ull;
		}
		put(table + ((a >> 12) & 511) * 8, (gpa + i * 4096) | P_W_U);
	}
	return cr3;
}

static void setup(void)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 2ull << 30, .name = "ram" };
	struct mv_vm_config vc = { .ranges = &r, .nranges = 1 };
	struct mv_mmu_config mc = { .max_shadow_pages = 1u << 16 };
	uint64_t cr3 = next_table;
	int rc;

	next_table += 4096;
	if ((rc = mv_host_create(NULL, &host)) ||
	    (rc = mv_vm_create(host, &vc, &vm)) ||
	    (rc = mv_mmu_configure(vm, &mc)) ||
	    (rc = mv_vcpu_create(vm, NULL, &cpu)))
		die("setup", rc);
	map_range(cr3, VA, 0, FB_PAGES);
	struct mv_cpu_regs regs = {
		.cr0 = MV_CR0_PE | MV_CR0_PG | MV_CR0_WP, .cr4 = MV_CR4_PAE,
		.efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE, .cr3 = cr3 };

	if ((rc = mv_vcpu_set_regs(cpu, &regs)))
		die("regs", rc);
}

static void bench_get_clear(void)
{
	static uint64_t bits[GIB_PAGES / 64], copy[GIB_PAGES / 64];
	uint32_t slot;
	uint64_t t, sum = 0, base = 0;
	int rc = mv_dirty_log_enable(vm, 0, GIB_PAGES, MV_DIRTY_INITIALLY_SET,
				     &slot);

	if (rc)
		die("enable", rc);
	memset(bits, 0xff, sizeof(bits));
	mv_dirty_log_clear(vm, 0, GIB_PAGES, bits, NULL);
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0; i < GIB_PAGES / 100; i++)
			put((uint64_t)(i * 100 + r) * 4096, r);
		t = bench_now_ns();
		rc = mv_dirty_log_get(vm, 0, GIB_PAGES, bits);
		if (!rc)
			rc = mv_dirty_log_clear(vm, 0, GIB_PAGES, bits, NULL);
		sum += bench_now_ns() - t;
		if (rc)
			die("get/clear", rc);
		t = bench_now_ns();
		memcpy(copy, bits, sizeof(bits));
		memset(bits, 0, sizeof(bits));
		base += bench_now_ns() - t;
		bench_sink(copy[r]);
	}
	bench_report_vs("dirty.get_clear", sum / 1e6 / ROUNDS, "ms/GiB",
			"dirty.bitmap_copy_zero", base / 1e6 / ROUNDS);
	mv_dirty_log_disable(vm, slot);
}

static void bench_ring(void)
{
	struct mv_dirty_entry e[1024];
	static uint64_t bits[FB_PAGES / 64];
	uint32_t slot, n, k;
	uint64_t t, ring = 0, bitmap = 0, entries = 0, v = 1;
	int rc;

	if ((rc = mv_dirty_log_enable(vm, 0, FB_PAGES, 0, &slot)) ||
	    (rc = mv_vcpu_dirty_ring_enable(cpu, 1024)))
		die("ring", rc);
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0; i < 1000; i++)
			mv_vcpu_write(cpu, VA + (uint64_t)((i * 7 + r) % FB_PAGES) * 4096,
				      &v, 8, 0, NULL);
		t = bench_now_ns();
		mv_vcpu_dirty_ring_harvest(cpu, e, 1024, &n);
		mv_vcpu_dirty_ring_reset(cpu, &k);
		ring += bench_now_ns() - t;
		entries += n;
		for (unsigned i = 0; i < 1000; i++)
			mv_vcpu_write(cpu, VA + (uint64_t)((i * 7 + r) % FB_PAGES) * 4096,
				      &v, 8, 0, NULL);
		mv_vcpu_dirty_ring_harvest(cpu, e, 1024, &n);
		t = bench_now_ns();
		mv_dirty_log_get(vm, 0, FB_PAGES, bits);
		mv_dirty_log_clear(vm, 0, FB_PAGES, bits, NULL);
		bitmap += bench_now_ns() - t;
		mv_vcpu_dirty_ring_reset(cpu, &k);
	}
	bench_report_vs("dirty.ring", (double)ring / entries, "ns/entry",
			"dirty.bitmap_per_page", (double)bitmap / entries);
	mv_dirty_log_disable(vm, slot);
}

static void bench_fb(void)
{
	static uint64_t gfns[FB_PAGES], bits[FB_PAGES / 64];
	uint8_t *copy = malloc(FB_PAGES * 4096ull), *now = malloc(FB_PAGES * 4096ull);
	struct mv_fb_config c = { .gfns = gfns, .npages = FB_PAGES, .va = VA,
				  .vcpu = cpu };
	uint64_t t, fb = 0, base = 0, v = 1;
	uint32_t id;
	int rc;

	for (unsigned i = 0; i < FB_PAGES; i++)
		gfns[i] = i;
	if (!copy || !now || (rc = mv_fb_register(vm, &c, &id)))
		die("fb", -MV_ENOMEM);
	for (unsigned i = 0; i < FB_PAGES; i++)  /* the guest draws once */
		mv_vcpu_write(cpu, VA + i * 4096ull, &v, 8, 0, NULL);
	mv_fb_harvest(vm, id, bits, NULL);
	mv_vm_phys_read(vm, 0, copy, FB_PAGES * 4096ull);
	for (unsigned r = 0; r < ROUNDS; r++) {
		for (unsigned i = 0; i < FB_PAGES / 100; i++)
			mv_vcpu_write(cpu, VA + (uint64_t)(i * 100 + r) * 4096,
				      &v, 8, 0, NULL);
		t = bench_now_ns();
		mv_fb_harvest(vm, id, bits, NULL);
		fb += bench_now_ns() - t;
		t = bench_now_ns();
		mv_vm_phys_read(vm, 0, now, FB_PAGES * 4096ull);
		uint64_t dirty = 0;

		for (unsigned p = 0; p < FB_PAGES; p++)
			if (memcmp(now + p * 4096ull, copy + p * 4096ull, 4096)) {
				memcpy(copy + p * 4096ull, now + p * 4096ull, 4096);
				dirty++;
			}
		base += bench_now_ns() - t;
		bench_sink(dirty);
		v++;
	}
	bench_report_vs("fb.harvest", fb / 1e3 / ROUNDS, "us",
			"fb.copy_memcmp", base / 1e3 / ROUNDS);
	mv_fb_unregister(vm, id);
	free(copy);
	free(now);
}

static int on_access(void *opaque, struct mv_vcpu *v, const struct mv_vaccess *a)
{
	(void)opaque, (void)v, (void)a;
	return MV_VHANDLER_PROCEED;
}

static void bench_vhandler(void)
{
	struct mv_vhandler_config c = { .kind = MV_VHANDLER_WRITE,
					.va = VA + 100 * 4096ull,
					.size = 16 * 4096ull, .fn = on_access };
	uint64_t t, reg = 0, base = 0, v = 0;
	uint32_t id;

	for (unsigned r = 0; r < ROUNDS; r++) {
		t = bench_now_ns();
		mv_vhandler_register(cpu, &c, &id);
		mv_vhandler_deregister(cpu, id);
		reg += bench_now_ns() - t;
		t = bench_now_ns();
		mv_mmu_zap_all(vm, 0);
		for (unsigned i = 0; i < FB_PAGES; i++)
			mv_vcpu_read(cpu, VA + i * 4096ull, &v, 8, 0, NULL);
		base += bench_now_ns() - t;
	}
	bench_report_vs("vhandler.register", reg / 1e3 / ROUNDS, "us",
			"mmu.flush_and_refault", base / 1e3 / ROUNDS);
}

int main(void)
{
	setup();
	bench_get_clear();
	bench_ring();
	bench_fb();
	bench_vhandler();
	mv_vm_destroy(vm);
	mv_host_destroy(host);
	return 0;
}
