/* memvisor dirty logging: which guest-physical pages were written, for
 * migration, snapshots and fast reset (KVM's dirty log and dirty ring).
 *
 * Logging runs on chosen guest-physical ranges ("slots") of a VM with a
 * shadow MMU (include/memvisor/vcpu.h; mv_dirty_log_enable creates the MMU
 * if needed). A logged page is dirty or clean. A clean page is
 * write-protected everywhere: vCPUs map it read-only, and phys/ gives no
 * write pointer for it (write tracking). So every write path marks it
 * dirty before its bytes land: a vCPU write (through the shadow fault), an
 * emulated write, mv_vm_phys_write, populate, a copy-on-write break, a
 * handler's default write, and the accessed/dirty updates the page-table
 * walk makes in guest tables. Reset and balloon mark the pages they zero.
 * Once dirty, a page is written at full speed until it is cleared.
 *
 * Order for a consumer that copies pages (migration): get the bitmap,
 * clear the pages it is about to copy, then copy them. A write after the
 * clear marks the page again; a write between the get and the clear is in
 * the copy. No write is lost; docs/design.md ("Dirty logging") has the
 * timeline. Every call takes the VM lock; vCPUs keep running (a clear
 * waits only for their acknowledgement of one TLB flush).
 */
#ifndef MEMVISOR_DIRTY_H
#define MEMVISOR_DIRTY_H

#include <stdint.h>

#include <memvisor/vcpu.h>

#define MV_DIRTY_SLOTS 64

/* Start with every page dirty (KVM_DIRTY_LOG_INITIALLY_SET): nothing is
 * write-protected until the first clear, so enabling costs nothing per
 * page. Without it every page starts clean and write-protected. */
#define MV_DIRTY_INITIALLY_SET (1u << 0)

/* Log [gfn, gfn + count). *slot receives the slot's number. -MV_EINVAL
 * (count 0, unknown flag, NULL), -MV_ERANGE (past the 52-bit limit),
 * -MV_EEXIST (overlaps a logged range), -MV_ELIMIT (MV_DIRTY_SLOTS in
 * use), -MV_ENOMEM; nothing changes on error. Pages outside RAM are never
 * dirty. */
int mv_dirty_log_enable(struct mv_vm *vm, uint64_t gfn, uint64_t count,
			unsigned flags, uint32_t *slot);
/* Stop logging a slot: its pages are no longer write-protected for it.
 * -MV_ENOENT for a slot not in use. */
int mv_dirty_log_disable(struct mv_vm *vm, uint32_t slot);
/* Copy the dirty bits of [gfn, gfn + count), which must lie inside one
 * slot (-MV_ERANGE otherwise), into @bitmap (bit i = page gfn + i; count
 * bits, the rest of the last word zero). Clears nothing. */
int mv_dirty_log_get(struct mv_vm *vm, uint64_t gfn, uint64_t count,
		     uint64_t *bitmap);
/* Make the pages of [gfn, gfn + count) whose bit is set in @mask clean
 * again and write-protect them (KVM_CLEAR_DIRTY_LOG), with one TLB flush
 * for the batch. Same range rule as get. @cleared (may be NULL) receives
 * how many dirty pages became clean. */
int mv_dirty_log_clear(struct mv_vm *vm, uint64_t gfn, uint64_t count,
		       const uint64_t *mask, uint64_t *cleared);

/* ---- per-vCPU dirty ring (KVM's dirty ring) ------------------------------ */

/* One page a vCPU dirtied: the slot and the page's offset in it. */
struct mv_dirty_entry {
	uint32_t slot;
	uint32_t flags;   /* 0 */
	uint64_t offset;  /* pages from the slot's first gfn */
};

/* Give the vCPU a ring of @entries (a power of two, 16..65536): every page
 * its writes make dirty is also pushed there. When the ring is full, an
 * access that would dirty a page returns MV_VCPU_RING_FULL without doing
 * anything; harvest and reset, then repeat the access. Writes from other
 * paths (phys writes, populate) are in the bitmap only. -MV_EINVAL for a
 * bad size, -MV_EEXIST when the vCPU has a ring. The vCPU's thread. */
int mv_vcpu_dirty_ring_enable(struct mv_vcpu *v, uint32_t entries);
/* Take up to @max entries (oldest first) out of the ring into @out; *n
 * receives how many. Harvested entries keep their ring slots until reset.
 * Any thread (takes the VM lock). */
int mv_vcpu_dirty_ring_harvest(struct mv_vcpu *v, struct mv_dirty_entry *out,
			       uint32_t max, uint32_t *n);
/* Make every harvested page clean and write-protected again (one TLB
 * flush), and give their ring slots back. @reset (may be NULL) receives
 * how many entries were reset. Any thread. */
int mv_vcpu_dirty_ring_reset(struct mv_vcpu *v, uint32_t *reset);

/* ---- framebuffer dirty ranges from shadow D bits (seed 003) ------------- */

/* A framebuffer: its guest-physical pages in display order (not assumed
 * contiguous) and the guest-virtual address of the guest's linear mapping
 * of it in @vcpu's address space. */
struct mv_fb_config {
	const uint64_t *gfns;   /* copied */
	uint32_t npages;        /* 1 .. 1 << 20 */
	uint64_t va;            /* page aligned */
	struct mv_vcpu *vcpu;
};

#define MV_FB_MAX 4

/* -MV_EINVAL (NULL, no pages, unaligned va, a gfn twice, a vCPU of
 * another VM), -MV_ELIMIT past MV_FB_MAX, -MV_ENOMEM. */
int mv_fb_register(struct mv_vm *vm, const struct mv_fb_config *cfg,
		   uint32_t *id);
int mv_fb_unregister(struct mv_vm *vm, uint32_t id);

/* How a harvest found its answer. */
enum mv_fb_how {
	MV_FB_SHADOW,   /* from the shadow leaves' D bits */
	MV_FB_LOGGED,   /* the mapping was not the expected one: dirty
			 * logging of the framebuffer's pages answered */
	MV_FB_ALL,      /* backed off with no log yet: every page dirty */
};

struct mv_fb_result {
	uint32_t how;           /* enum mv_fb_how */
	uint32_t dirty_pages;
};

/* Which framebuffer pages were written since the last harvest: walks the
 * shadow leaves of the linear mapping, takes and clears their D bits
 * atomically (vCPUs keep running), counts a page mapped writable more than
 * once, or whose leaf was made or torn down, as dirty, and ends with one
 * TLB flush of every vCPU so that D is set again. A leaf pointing
 * elsewhere, or a vCPU whose shadow root is not current, makes the
 * harvest back off to dirty logging of the framebuffer's pages (in runs of
 * contiguous frames, one dirty-log slot each), until a harvest finds the
 * mapping as registered again. @bitmap receives npages bits. Writes that
 * do not go through a vCPU (mv_vm_phys_write, DMA) are not seen in
 * MV_FB_SHADOW mode: their writer knows of them. */
int mv_fb_harvest(struct mv_vm *vm, uint32_t id, uint64_t *bitmap,
		  struct mv_fb_result *res);

/* The rows a display must redraw for a framebuffer of @stride bytes per
 * row whose pages @bitmap (npages bits) marks: [*first, *last].
 * -MV_ENOENT when no page is dirty, -MV_EINVAL for a zero stride. */
int mv_fb_dirty_rows(const uint64_t *bitmap, uint32_t npages,
		     uint32_t stride, uint64_t *first, uint64_t *last);

#endif
