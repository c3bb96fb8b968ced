/* memvisor run, the last vCPU steps: dirty logging (a bitmap over all RAM
 * and one vCPU's dirty ring) and a framebuffer harvested from shadow D
 * bits, on the model guest of run_vcpu.c, whose kernel window maps RAM at
 * @kwin + gpa. */
#include <stdarg.h>
#include <stdio.h>

#include <memvisor/dirty.h>

#include "run_guest.h"

#define FB_GPA 0x300000ull
#define FB_PAGES 16u
#define FB_STRIDE 5120u  /* 1280 x 32-bit pixels a row */

#define say run_say

static unsigned popcount(const uint64_t *b, unsigned words)
{
	unsigned n = 0;

	for (unsigned i = 0; i < words; i++)
		n += (unsigned)__builtin_popcountll(b[i]);
	return n;
}

static int store(struct mv_vcpu *cpu, uint64_t va, uint64_t v)
{
	int rc = mv_vcpu_write(cpu, va, &v, sizeof(v), 0, NULL);

	return rc > 0 ? -MV_EINTERNAL : rc;
}

/* Log all RAM, clear it, let the guest write, read the log back. */
static int dirty_step(struct mv_vm *vm, struct mv_vcpu *cpu, uint64_t kwin,
		      uint64_t ram_pages, run_guest_report_fn fn, void *ctx)
{
	static uint64_t bits[1024 / 64];
	struct mv_dirty_entry e[64];
	uint32_t slot, n, k;
	uint64_t cleared = 0;
	int rc;

	if (ram_pages > 1024)
		return -MV_EINTERNAL;
	rc = mv_dirty_log_enable(vm, 0, ram_pages, MV_DIRTY_INITIALLY_SET,
				 &slot);
	if (!rc)
		rc = mv_dirty_log_get(vm, 0, ram_pages, bits);
	if (!rc)
		rc = mv_dirty_log_clear(vm, 0, ram_pages, bits, &cleared);
	if (!rc)
		rc = mv_vcpu_dirty_ring_enable(cpu, 64);
	for (unsigned i = 0; !rc && i < 8; i++)  /* 8 pages at 0x280000 */
		rc = store(cpu, kwin + 0x280000 + i * 0x1000ull + 64, i);
	if (!rc)
		rc = mv_dirty_log_get(vm, 0, ram_pages, bits);
	if (!rc)
		rc = mv_vcpu_dirty_ring_harvest(cpu, e, 64, &n);
	if (!rc)
		rc = mv_vcpu_dirty_ring_reset(cpu, &k);
	if (rc)
		return rc;
	say(fn, ctx, "vcpu-dirty", "dirty log over all %llu RAM pages: %llu "
	    "cleared; the guest writes 8 pages through vCPU 0: %u pages "
	    "dirty (the 8, and the page tables whose A/D bits the walks set), "
	    "%u in the vCPU's ring, %u reset and write-protected again",
	    (unsigned long long)ram_pages, (unsigned long long)cleared,
	    popcount(bits, (unsigned)(ram_pages + 63) / 64), n, k);
	return mv_dirty_log_disable(vm, slot);
}

/* A 64 KiB framebuffer at FB_GPA, seen through the kernel window. */
static int fb_step(struct mv_vm *vm, struct mv_vcpu *cpu, uint64_t kwin,
		   run_guest_report_fn fn, void *ctx)
{
	uint64_t gfns[FB_PAGES], bits = 0, first = 0, last = 0;
	struct mv_fb_config c = { .gfns = gfns, .npages = FB_PAGES,
				  .va = kwin + FB_GPA, .vcpu = cpu };
	struct mv_fb_result r0, r1, r2;
	uint32_t id;
	int rc;

	for (unsigned i = 0; i < FB_PAGES; i++)
		gfns[i] = (FB_GPA >> 12) + i;
	rc = mv_fb_register(vm, &c, &id);
	if (!rc)
		rc = mv_fb_harvest(vm, id, &bits, &r0);  /* all, at first */
	for (unsigned p = 5; !rc && p <= 7; p++)   /* the guest draws */
		rc = store(cpu, kwin + FB_GPA + p * 0x1000ull, 0xffffff);
	if (!rc)
		rc = mv_fb_harvest(vm, id, &bits, &r1);
	if (!rc)
		rc = mv_fb_dirty_rows(&bits, FB_PAGES, FB_STRIDE, &first, &last);
	uint64_t rows = bits;

	if (!rc)
		rc = mv_fb_harvest(vm, id, &bits, &r2);
	if (rc)
		return rc;
	say(fn, ctx, "vcpu-fb", "framebuffer of %u pages in the kernel window: "
	    "first harvest %u pages (nothing known yet), then the guest draws "
	    "into 3: harvest from shadow D bits finds %u (bitmap %#llx, rows "
	    "%llu-%llu of a %u-byte stride), then %u; no vCPU paused, one TLB "
	    "flush per harvest", FB_PAGES, r0.dirty_pages, r1.dirty_pages,
	    (unsigned long long)rows, (unsigned long long)first,
	    (unsigned long long)last, FB_STRIDE, r2.dirty_pages);
	return mv_fb_unregister(vm, id);
}

int run_dirty(struct mv_vm *vm, struct mv_vcpu *cpu, uint64_t kwin,
	      uint64_t ram_pages, run_guest_report_fn fn, void *ctx)
{
	int rc = dirty_step(vm, cpu, kwin, ram_pages, fn, ctx);

	return rc ? rc : fb_step(vm, cpu, kwin, fn, ctx);
}
