/* memvisor run, guest-physical steps: what the pool looks like to VMs.
 *
 * Two VMs are laid out like PCs (low RAM, a device register window, a BIOS
 * ROM under 4 GiB, high RAM above it), write their memory through
 * mv_vm_phys_write, share their identical frames, break one share by
 * writing, balloon one VM down to its shared frames and reset the other, while the caller
 * prints the process RSS after each step. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <memvisor/vm.h>

#include "run_guest.h"

#define DEV_GPA 0xFEC00000ull
#define ROM_GPA 0xFFFF0000ull
#define ROM_SIZE (64u << 10)
#define HIGH_GPA (4ull << 30)

struct guest_demo {
	struct mv_host *host;
	struct mv_vm *vm[2];
	uint64_t half;          /* RAM pages below and above 4 GiB, each */
	uint64_t common;        /* leading frames identical in both VMs */
	uint32_t dev_writes;
	run_guest_report_fn fn;
	void *ctx;
};

#define say(g, ...) run_say((g)->fn, (g)->ctx, __VA_ARGS__)

/* Frame i of the VM's RAM: low range first, then high. */
static uint64_t frame_gpa(const struct guest_demo *g, uint64_t i)
{
	return i < g->half ? i << MV_PAGE_SHIFT
			   : HIGH_GPA + ((i - g->half) << MV_PAGE_SHIFT);
}

static void frame_bytes(const struct guest_demo *g, int v, uint64_t i,
			uint64_t *page)
{
	uint64_t seed = i < g->common ? i : (uint64_t)(v + 1) << 40 | i;

	for (unsigned k = 0; k < MV_PAGE_SIZE / 8; k++)
		page[k] = seed * 0x9e3779b97f4a7c15ull + k;
}

static int dev_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	struct guest_demo *g = opaque;

	(void)off;
	(void)buf;
	(void)len;
	g->dev_writes++;
	return 0;
}

static int guest_create(struct guest_demo *g)
{
	static uint8_t bios[ROM_SIZE];
	struct mv_vm_range r[4] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = g->half << 12,
		  .name = "low ram" },
		{ .type = MV_PAGE_MMIO, .gpa = DEV_GPA, .size = 4096,
		  .name = "device", .write = dev_write, .opaque = g },
		{ .type = MV_PAGE_ROM, .gpa = ROM_GPA, .size = ROM_SIZE,
		  .name = "bios", .rom_data = bios, .rom_size = ROM_SIZE },
		{ .type = MV_PAGE_RAM, .gpa = HIGH_GPA, .size = g->half << 12,
		  .name = "high ram" },
	};
	struct mv_vm_config cfg = { .ranges = r, .nranges = 4 };

	memcpy(bios + ROM_SIZE - 16, "memvisor bios", 14);
	for (int v = 0; v < 2; v++) {
		int rc = mv_vm_create(g->host, &cfg, &g->vm[v]);

		if (rc)
			return rc;
	}
	say(g, "vm-create", "2 VMs: RAM %llu KiB below 4 GiB + %llu KiB above, "
	    "a device at 0x%llx, a 64 KiB BIOS ROM at 0x%llx; all RAM ZERO",
	    (unsigned long long)(g->half * 4), (unsigned long long)(g->half * 4),
	    DEV_GPA, ROM_GPA);
	return 0;
}

static int guest_write(struct guest_demo *g)
{
	uint64_t page[MV_PAGE_SIZE / 8];
	struct mv_vm_stats st;
	char sig[14];
	int rc = 0;

	for (int v = 0; v < 2 && !rc; v++) {
		for (uint64_t i = 0; i < 2 * g->half && !rc; i++) {
			frame_bytes(g, v, i, page);
			rc = mv_vm_phys_write(g->vm[v], frame_gpa(g, i), page,
					      MV_PAGE_SIZE);
		}
		if (!rc)
			rc = mv_vm_phys_write(g->vm[v], DEV_GPA, "go", 2);
	}
	if (!rc)
		rc = mv_vm_phys_read(g->vm[0], ROM_GPA + ROM_SIZE - 16, sig, 14);
	if (!rc)
		rc = mv_vm_get_stats(g->vm[0], &st);
	if (rc)
		return rc;
	say(g, "vm-write", "each VM wrote its %llu RAM pages (first touch: "
	    "%llu ZERO -> ALLOCATED), the device saw %u writes, the ROM reads "
	    "\"%s\"", (unsigned long long)(2 * g->half),
	    (unsigned long long)st.first_touch, g->dev_writes, sig);
	return 0;
}

static int guest_share(struct guest_demo *g)
{
	struct mv_vm_stats st;
	int rc = 0;

	for (uint64_t i = 0; i < g->common && !rc; i++)
		rc = mv_vm_share_pages(g->vm[0], frame_gpa(g, i) >> 12, g->vm[1],
				       frame_gpa(g, i) >> 12);
	if (!rc)
		rc = mv_vm_get_stats(g->vm[0], &st);
	if (rc)
		return rc;
	say(g, "vm-share", "%llu identical frames of the two VMs now share "
	    "%llu host pages; their private copies went back to the pool",
	    (unsigned long long)g->common,
	    (unsigned long long)st.pages[MV_PAGE_SHARED]);
	return 0;
}

/* VM 0 writes a shared frame: it gets a copy, VM 1 keeps the old bytes. */
static int guest_cow(struct guest_demo *g)
{
	uint64_t want[MV_PAGE_SIZE / 8], got[MV_PAGE_SIZE / 8];
	struct mv_vm_stats st;
	int rc;

	rc = mv_vm_phys_write(g->vm[0], 0, "new bytes", 9);
	if (!rc)
		rc = mv_vm_phys_read(g->vm[1], 0, got, sizeof(got));
	if (!rc)
		rc = mv_vm_get_stats(g->vm[0], &st);
	if (rc)
		return rc;
	frame_bytes(g, 1, 0, want);
	if (memcmp(want, got, sizeof(got)))
		return -MV_EINTERNAL;
	say(g, "vm-cow", "vm %u wrote shared frame 0: copy-on-write gave it a "
	    "private page (%llu COW break); vm %u still reads the old bytes",
	    mv_vm_id(g->vm[0]), (unsigned long long)st.cow_breaks,
	    mv_vm_id(g->vm[1]));
	return 0;
}

/* The host asks VM 0 for every frame it does not share; its balloon
 * driver reads the target and gives back frames from the top down. */
static int guest_balloon(struct guest_demo *g)
{
	uint64_t gfns[512], target, done = 0, top = 2 * g->half;
	int rc = mv_vm_balloon_set_target(g->vm[0], top - g->common);

	target = mv_vm_balloon_get_target(g->vm[0]);
	while (!rc && done < target) {
		uint32_t n = 0;

		for (; n < 512 && done + n < target; n++)
			gfns[n] = frame_gpa(g, top - 1 - done - n) >> 12;
		rc = mv_vm_balloon_inflate(g->vm[0], gfns, n);
		done += n;
	}
	if (rc)
		return rc;
	say(g, "vm-balloon", "host target %llu pages: vm %u inflated its "
	    "balloon by all its unshared frames; empty chunks go back to the "
	    "kernel", (unsigned long long)target, mv_vm_id(g->vm[0]));
	return 0;
}

static int guest_reset(struct guest_demo *g)
{
	struct mv_vm_stats st;
	int rc = mv_vm_reset(g->vm[1]);

	if (!rc)
		rc = mv_vm_get_stats(g->vm[1], &st);
	if (rc)
		return rc;
	say(g, "vm-reset", "vm %u reset: %llu RAM pages ZERO again, ROM kept",
	    mv_vm_id(g->vm[1]), (unsigned long long)st.pages[MV_PAGE_ZERO]);
	return 0;
}

static int guest_shutdown(struct guest_demo *g)
{
	for (int v = 0; v < 2; v++) {
		mv_vm_destroy(g->vm[v]);
		g->vm[v] = NULL;
	}
	say(g, "vm-destroy", "both VMs destroyed");
	return 0;
}

/* RAM pages per VM: @pages / 2, or what the budget still allows for two
 * VMs (each also holds its ROM and up to 64 handy pages). */
static uint64_t ram_that_fits(struct mv_host *host, uint64_t pages)
{
	struct mv_host_stats st;
	uint64_t want = pages / 2, used, each;

	if (mv_host_get_stats(host, &st) || !st.budget_pages)
		return want;
	used = st.private_pages + st.shared_pages;
	each = st.budget_pages > used ? (st.budget_pages - used) / 2 : 0;
	each = each > ROM_SIZE / MV_PAGE_SIZE + 64 ? each - ROM_SIZE /
		MV_PAGE_SIZE - 64 : 0;
	return (want < each ? want : each) & ~1ull;
}

int run_guest(struct mv_host *host, uint64_t pages, run_guest_report_fn fn,
	      void *ctx)
{
	static int (*const steps[])(struct guest_demo *) = {
		guest_create, guest_write, guest_share, guest_cow,
		guest_balloon, guest_reset, guest_shutdown,
	};
	uint64_t ram = ram_that_fits(host, pages);
	struct guest_demo g = { .host = host, .half = ram / 2,
				.common = ram / 8, .fn = fn, .ctx = ctx };
	int rc = 0;

	if (g.common == 0) {
		say(&g, "vm-create", "skipped: the host budget leaves no room "
		    "for two more VMs");
		return 0;
	}
	for (size_t i = 0; !rc && i < sizeof(steps) / sizeof(steps[0]); i++)
		rc = steps[i](&g);
	for (int v = 0; v < 2; v++)
		mv_vm_destroy(g.vm[v]);
	return rc;
}
