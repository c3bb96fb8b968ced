/* Shared fixture of the phys tests: a host pool and a VM with the layout
 *   [0, 1 MiB)             RAM "low"
 *   [1 MiB, 1 MiB+64 KiB)  ROM "bios" (content rom_byte(i)), abuts low RAM
 *   [1 MiB+64 KiB, 2 MiB)  hole
 *   [2 MiB, 2 MiB+16 KiB)  MMIO "dev": a 16 KiB register file in memory
 *   [4 GiB, 4 GiB+1 MiB)   RAM "high", above the 4 GiB hole
 */
#ifndef MV_TEST_PHYS_FIXTURE_H
#define MV_TEST_PHYS_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/vm.h>

#define FX_LOW_GPA 0ull
#define FX_LOW_SIZE (1ull << 20)
#define FX_ROM_GPA (1ull << 20)
#define FX_ROM_SIZE (64ull << 10)
#define FX_HOLE_GPA (FX_ROM_GPA + FX_ROM_SIZE)
#define FX_MMIO_GPA (2ull << 20)
#define FX_MMIO_SIZE (16ull << 10)
#define FX_HIGH_GPA (4ull << 30)
#define FX_HIGH_SIZE (1ull << 20)
#define FX_RAM_PAGES ((FX_LOW_SIZE + FX_HIGH_SIZE) / MV_PAGE_SIZE)

struct fx_device {
	uint8_t regs[FX_MMIO_SIZE];
	unsigned reads, writes;
};

static inline uint8_t rom_byte(uint64_t i)
{
	return (uint8_t)(i * 7 + 3);
}

static inline int fx_dev_read(void *opaque, uint64_t off, void *buf,
			      size_t len)
{
	struct fx_device *d = opaque;

	memcpy(buf, d->regs + off, len);
	d->reads++;
	return 0;
}

static inline int fx_dev_write(void *opaque, uint64_t off, const void *buf,
			       size_t len)
{
	struct fx_device *d = opaque;

	memcpy(d->regs + off, buf, len);
	d->writes++;
	return 0;
}

static inline const uint8_t *fx_rom_image(void)
{
	static uint8_t rom[FX_ROM_SIZE - 4096];  /* last page: zeros */

	for (size_t i = 0; i < sizeof(rom); i++)
		rom[i] = rom_byte(i);
	return rom;
}

/* Fill @r with the fixture's five ranges. */
static inline void fx_ranges(struct mv_vm_range r[5], struct fx_device *dev)
{
	memset(r, 0, 5 * sizeof(*r));
	r[0] = (struct mv_vm_range){ .type = MV_PAGE_RAM, .gpa = FX_HIGH_GPA,
				     .size = FX_HIGH_SIZE, .name = "high" };
	r[1] = (struct mv_vm_range){ .type = MV_PAGE_RAM, .gpa = FX_LOW_GPA,
				     .size = FX_LOW_SIZE, .name = "low" };
	r[2] = (struct mv_vm_range){ .type = MV_PAGE_ROM, .gpa = FX_ROM_GPA,
				     .size = FX_ROM_SIZE, .name = "bios",
				     .rom_data = fx_rom_image(),
				     .rom_size = FX_ROM_SIZE - 4096 };
	r[3] = (struct mv_vm_range){ .type = MV_PAGE_MMIO, .gpa = FX_MMIO_GPA,
				     .size = FX_MMIO_SIZE, .name = "dev",
				     .read = fx_dev_read,
				     .write = fx_dev_write, .opaque = dev };
	r[4] = r[3];
	r[4].gpa = FX_MMIO_GPA + (64ull << 20);
	r[4].read = NULL;
	r[4].write = NULL;
	r[4].name = "dead";
}

static inline int fx_create(struct mv_host *host, struct fx_device *dev,
			    enum mv_balloon_policy policy, uint32_t map_max,
			    struct mv_vm **out)
{
	struct mv_vm_range r[5];
	struct mv_vm_config cfg = {
		.ranges = r, .nranges = 5, .shadow_pages = 16,
		.handy_low = 4, .handy_high = 16,
		.balloon_policy = policy, .map_chunks_max = map_max,
	};

	fx_ranges(r, dev);
	return mv_vm_create(host, &cfg, out);
}

static inline void fx_fill(uint8_t *buf, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)((seed * 2654435761u + i * 40503u) >> 7) | 1;
}

/* Notification log filled by fx_notify. */
struct fx_notes {
	unsigned count[MV_NOTIFY_REASONS];
	uint64_t last_gfn, last_count;
};

static inline void fx_notify(void *opaque, struct mv_vm *vm, uint64_t gfn,
			     uint64_t count, enum mv_notify_reason why)
{
	struct fx_notes *n = opaque;

	(void)vm;
	n->count[why]++;
	n->last_gfn = gfn;
	n->last_count = count;
}

static inline enum mv_page_state fx_state(struct mv_vm *vm, uint64_t gpa)
{
	struct mv_page *p = mv_vm_page(vm, gpa >> MV_PAGE_SHIFT);

	return p ? mv_page_state(p) : MV_PAGE_STATES;
}

/* A VM with one RAM range of @pages at gpa 0 (handy 0/0: defaults). */
static inline struct mv_vm *fx_ram_vm(struct mv_host *host, uint64_t pages,
				      uint32_t handy_low, uint32_t handy_high)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = pages * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .handy_low = handy_low,
				    .handy_high = handy_high };
	struct mv_vm *vm = NULL;

	return mv_vm_create(host, &cfg, &vm) ? NULL : vm;
}

/* Give a VM of at least 700 RAM pages at gpa 0 something to move within
 * its own chunks: pages 0..699 written (byte fx_frag_byte(g)), so the
 * first chunk fills and the second holds the rest; then 50 frames of the
 * first chunk are ballooned, so pages of the second chunk (the emptier)
 * can move into the first (the fuller). Returns 0 or the failing code. */
#define FX_FRAG_PAGES 700
static inline uint8_t fx_frag_byte(uint64_t gfn)
{
	return (uint8_t)(gfn * 13 + 1);
}

static inline int fx_fragment(struct mv_vm *vm)
{
	uint8_t page[MV_PAGE_SIZE];
	uint64_t gfns[50];
	int rc = 0;

	for (uint64_t g = 0; g < FX_FRAG_PAGES && !rc; g++) {
		memset(page, fx_frag_byte(g), sizeof(page));
		rc = mv_vm_phys_write(vm, g * MV_PAGE_SIZE, page, sizeof(page));
	}
	for (uint64_t i = 0; i < 50; i++)
		gfns[i] = 100 + i;
	return rc ? rc : mv_vm_balloon_inflate(vm, gfns, 50);
}

/* The usual test state: a pool, one fixture VM (deflate policy, no
 * mapping cache) and its notification log. */
struct fx_ctx {
	struct mv_host *host;
	struct mv_vm *vm;
	struct fx_device dev;
	struct fx_notes notes;
};

static inline int fx_setup(void **state)
{
	struct fx_ctx *c = calloc(1, sizeof(*c));

	if (!c || mv_host_create(NULL, &c->host) ||
	    fx_create(c->host, &c->dev, MV_BALLOON_WRITE_DEFLATE, 0, &c->vm))
		return -1;
	mv_vm_set_notify(c->vm, fx_notify, &c->notes);
	*state = c;
	return 0;
}

static inline int fx_teardown(void **state)
{
	struct fx_ctx *c = *state;

	mv_vm_destroy(c->vm);
	mv_host_destroy(c->host);
	free(c);
	return 0;
}

#endif
