/* memvisor vCPUs and the shadow-paging MMU.
 *
 * A vCPU is created on a VM (include/memvisor/vm.h) and driven by one
 * thread at a time; a thread hands it to another (or to the one that
 * destroys it) after its last call on it, mv_vcpu_exit(). Its paging registers are set as a CPU's are; guest
 * accesses go through a per-vCPU soft TLB, then the VM's shadow page tables
 * (x86 format, the frame field holding a host page id), and only on a
 * shadow miss through the guest's own tables (the walker of mmu.h), which
 * fills the shadow. Guest faults come back with the exact x86 error code.
 *
 * The VM's MMU (shadow pages, reverse map, shadow pool) is created with the
 * VM's first vCPU and destroyed with the VM. It installs itself as the
 * VM's notify hook and write-tracking hook, so every change of a page
 * (sharing, balloon, reset, copy-on-write, handlers, moves) removes or
 * write-protects the shadow PTEs and TLB entries that map it before the
 * change takes effect.
 *
 * Threads and the flush protocol (docs/design.md, "Flush protocol"):
 * a vCPU is either INSIDE (its thread may hold host pointers from its TLB)
 * or OUTSIDE (it holds none). Every mv_vcpu_* access call leaves the vCPU
 * INSIDE; mv_vcpu_exit() makes it OUTSIDE. Whoever removes or reduces a
 * mapping (any thread, under the VM lock) waits until every INSIDE vCPU
 * has passed a quiescent point: any mv_vcpu_* call other than the inline
 * TLB lookup, or mv_vcpu_quiesce(). A vCPU thread that is about to block,
 * or to run for long without calling in, calls mv_vcpu_exit() first; an
 * INSIDE vCPU that never calls in holds up every such caller, as a held
 * lock would. OUTSIDE vCPUs are never waited for. A call into the VM
 * that takes its lock (mv_vm_phys_write for a device, any vm.h call) makes
 * the thread's vCPUs OUTSIDE while it runs, so that it never deadlocks
 * against a flusher holding the lock, and INSIDE again, with pending
 * flushes taken, when it returns: the TLB may be looked up inline after
 * it as before. mv_vm_request_wait is OUTSIDE while it waits.
 *
 * Lifetime of a host pointer returned by mv_vcpu_translate() or the inline
 * mv_tlb_lookup(): until the same vCPU's next mv_vcpu_* call,
 * mv_vcpu_exit(), or its thread's next call that takes the VM lock, and
 * for the span stated (never past the page).
 */
#ifndef MEMVISOR_VCPU_H
#define MEMVISOR_VCPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <memvisor/mmu.h>
#include <memvisor/vm.h>

struct mv_vcpu;

/* ---- the soft TLB (public so that emulators can inline a hit) ---------- */

#define MV_TLB_BITS 8
#define MV_TLB_SIZE (1u << MV_TLB_BITS)

/* Access classes: rights differ by privilege and by whether SMAP applies. */
enum mv_tlb_class {
	MV_TLB_USER,     /* CPL 3 explicit access */
	MV_TLB_SUP,      /* supervisor with SMAP applying (AC=0 or implicit) */
	MV_TLB_SUP_AC,   /* explicit supervisor access with EFLAGS.AC=1 */
	MV_TLB_CLASSES
};

enum mv_tlb_kind { MV_TLB_READ, MV_TLB_WRITE, MV_TLB_FETCH, MV_TLB_KINDS };

/* One entry: the page-aligned linear address in tag[kind] when that kind
 * of access may go straight to host memory, else MV_TLB_INVALID. */
#define MV_TLB_INVALID UINT64_MAX
struct mv_tlb_entry {
	uint64_t tag[MV_TLB_KINDS];
	uint64_t addend;   /* host address = linear address + addend */
};

struct mv_tlb {
	uint64_t va_mask;  /* 2^32 - 1 in 32-bit modes, else all ones */
	uint32_t ac;       /* EFLAGS.AC */
	/* 1 while the vCPU is OUTSIDE (created, or after mv_vcpu_exit):
	 * every inline lookup misses then, so an entry a flush posted
	 * meanwhile would remove is never used; the next mv_vcpu_* call
	 * makes the vCPU INSIDE, with those flushes taken. */
	uint32_t outside;
	struct mv_tlb_entry e[MV_TLB_CLASSES][MV_TLB_SIZE];
};

/* The vCPU's TLB, for mv_tlb_lookup. Valid for the vCPU's lifetime. */
struct mv_tlb *mv_vcpu_tlb(struct mv_vcpu *v);

/* The class of an access with MV_ACC_* flags @acc. */
static inline unsigned mv_tlb_class(const struct mv_tlb *t, unsigned acc)
{
	if ((acc & (MV_ACC_USER | MV_ACC_IMPLICIT)) == MV_ACC_USER)
		return MV_TLB_USER;
	if (t->ac && !(acc & MV_ACC_IMPLICIT))
		return MV_TLB_SUP_AC;
	return MV_TLB_SUP;
}

/* Host pointer for an access of @size bytes at @va that does not cross a
 * page, or NULL: then call mv_vcpu_translate / read / write. A load, a
 * compare and an add. No side effect (accessed and dirty flags were set
 * when the entry was filled). NULL whenever the vCPU is OUTSIDE. */
static inline void *mv_tlb_lookup(const struct mv_tlb *t, uint64_t va,
				  unsigned cls, unsigned kind)
{
	va &= t->va_mask;
	const struct mv_tlb_entry *e =
		&t->e[cls][(va >> MV_PAGE_SHIFT) & (MV_TLB_SIZE - 1)];

	if (e->tag[kind] != ((va & ~(uint64_t)(MV_PAGE_SIZE - 1)) | t->outside))
		return NULL;
	return (void *)(uintptr_t)(va + e->addend);
}

/* ---- creation ------------------------------------------------------------ */

struct mv_vcpu_config {
	struct mv_cpu_model cpu;  /* every vCPU of a VM has the same model */
};

/* Per-VM MMU settings, applied when the VM's first vCPU is created. */
struct mv_mmu_config {
	/* Most shadow pages in use at once; 0: 2% of the VM's RAM pages, at
	 * least 64 (as KVM). At the cap the oldest pages are zapped. */
	uint32_t max_shadow_pages;
	/* The shadow pool's free pages: refilled from the host below
	 * pool_min, given back above pool_max (0/0: 8/32). */
	uint32_t pool_min, pool_max;
};

/* Set the VM's MMU settings before its first vCPU exists. -MV_ESTATE once
 * the MMU exists, -MV_EINVAL for pool_min > pool_max or pool_max > 4096.
 * The VM's SHADOW reservation is raised to the cap plus pool_max when it
 * is smaller (-MV_EBUDGET / -MV_ERESERVATION when the host refuses; the
 * first vCPU's creation fails the same way). */
int mv_mmu_configure(struct mv_vm *vm, const struct mv_mmu_config *cfg);

/* Create a vCPU in the power-on state (paging off, CR0 = PE=0). @cfg may
 * be NULL (default CPU model). -MV_EINVAL for a CPU model that differs
 * from the VM's other vCPUs, -MV_ELIMIT past MV_VCPU_MAX. Any thread. */
#define MV_VCPU_MAX 256
int mv_vcpu_create(struct mv_vm *vm, const struct mv_vcpu_config *cfg,
		   struct mv_vcpu **out);
/* Destroy a vCPU: on its own thread, or on another one once the thread
 * that drove it made it OUTSIDE (mv_vcpu_exit) or ended. */
void mv_vcpu_destroy(struct mv_vcpu *v);
struct mv_vm *mv_vcpu_vm(const struct mv_vcpu *v);

/* ---- paging state (the vCPU's thread) ----------------------------------- */

/* Load every paging register at once (as KVM_SET_SREGS): the TLB is
 * flushed, global pages included. Returns an enum mv_walk_status of the CR3
 * load (MV_WALK_GP: the registers are unchanged) or -MV_EINVAL for values
 * no CPU holds (mv_paging_init). */
int mv_vcpu_set_regs(struct mv_vcpu *v, const struct mv_cpu_regs *regs);
int mv_vcpu_get_regs(const struct mv_vcpu *v, struct mv_cpu_regs *regs);

enum mv_cpu_reg { MV_REG_CR0, MV_REG_CR3, MV_REG_CR4, MV_REG_EFER,
		  MV_REG_PKRU, MV_REG_RFLAGS };

/* A MOV to the register (WRPKRU, POPF for RFLAGS), with the TLB effects of
 * the architecture: CR3 flushes non-global translations unless CR4.PCIDE
 * and bit 63 (the no-flush hint, not kept in CR3) keep those of the same
 * PCID; a change of CR4.PGE, PAE, PSE, PCIDE, SMEP, SMAP, PKE or LA57, or
 * of CR0.PG, WP or PE, flushes everything; EFER.NXE changes the shadow's
 * reserved bits (new roots). Same returns as mv_vcpu_set_regs. */
int mv_vcpu_set_reg(struct mv_vcpu *v, enum mv_cpu_reg reg, uint64_t val);

/* INVLPG: drops the vCPU's translations for the page of @va (all of a
 * large guest page; global ones too). Other vCPUs keep theirs. */
int mv_vcpu_invlpg(struct mv_vcpu *v, uint64_t va);
/* Every translation of this vCPU, global ones too. */
int mv_vcpu_flush(struct mv_vcpu *v);
/* INVPCID types 0..3 (individual address, single context, all contexts
 * with globals, all contexts but globals). -MV_EINVAL for another type or
 * a PCID above 4095 (the CPU's #GP). */
int mv_vcpu_invpcid(struct mv_vcpu *v, unsigned type, uint32_t pcid,
		    uint64_t va);

/* ---- accesses ------------------------------------------------------------ */

/* Positive results of translate, read, write and fetch. */
#define MV_VCPU_OK 0
#define MV_VCPU_FAULT 1     /* the guest must see fault->vector */
#define MV_VCPU_MMIO 2      /* translate: the access goes to MMIO at gpa */
#define MV_VCPU_SLOW 3      /* translate: a handler, ROM or a tracked page
			     * table must see the access: use read/write */
#define MV_VCPU_RETRY 4     /* guest tables kept changing: re-execute */
#define MV_VCPU_RING_FULL 5 /* the vCPU's dirty ring is full (dirty.h):
			     * nothing was done; harvest, reset, repeat */

#define MV_VEC_GP 13
#define MV_VEC_PF 14

struct mv_fault {
	uint8_t vector;        /* MV_VEC_PF or MV_VEC_GP */
	uint32_t error_code;   /* #PF: MV_PF_*; #GP: 0 */
	uint64_t addr;         /* the faulting linear address (CR2 for #PF) */
};

struct mv_xlate {
	void *hva;             /* OK: host address of the byte at va */
	size_t span;           /* OK: bytes valid from hva (to the page end) */
	uint64_t gpa;          /* OK, MMIO, SLOW: guest-physical address */
	struct mv_fault fault; /* FAULT */
};

/* Translate @va for one access (MV_ACC_* in @acc; MV_ACC_NO_AD refused).
 * Returns MV_VCPU_OK (hva valid as the header says), FAULT, MMIO, SLOW,
 * RETRY, RING_FULL, or a negative error: -MV_EBUDGET / -MV_ERESERVATION / -MV_ENOMEM
 * when no shadow or guest page could be had (nothing changed), -MV_EINVAL
 * for bad arguments. */
int mv_vcpu_translate(struct mv_vcpu *v, uint64_t va, unsigned acc,
		      struct mv_xlate *x);

/* Copy @len bytes (any length, across pages) at @va. Every page is
 * translated first; a fault on any of them returns MV_VCPU_FAULT with the
 * first faulting address in *f and no byte is written (accessed and dirty
 * flags of pages before it may have been set, as a CPU may set them).
 * MMIO and handlers are dispatched per page piece; a write to a tracked
 * guest page table is emulated. @acc is MV_ACC_USER / MV_ACC_IMPLICIT;
 * read adds nothing, write adds MV_ACC_WRITE, fetch MV_ACC_FETCH. @f may be
 * NULL. Negative errors as translate, and those of the MMIO callbacks or
 * handlers (bytes of earlier pieces are then written). */
int mv_vcpu_read(struct mv_vcpu *v, uint64_t va, void *buf, size_t len,
		 unsigned acc, struct mv_fault *f);
int mv_vcpu_write(struct mv_vcpu *v, uint64_t va, const void *buf,
		  size_t len, unsigned acc, struct mv_fault *f);
int mv_vcpu_fetch(struct mv_vcpu *v, uint64_t va, void *buf, size_t len,
		  unsigned acc, struct mv_fault *f);

/* ---- the flush protocol --------------------------------------------------- */

/* A quiescent point: acknowledge pending flushes. Cheap when none. */
void mv_vcpu_quiesce(struct mv_vcpu *v);
/* The thread stops using pointers of this vCPU (before it blocks). The next
 * mv_vcpu_* call makes it INSIDE again. */
void mv_vcpu_exit(struct mv_vcpu *v);

/* ---- VM-wide MMU operations (any thread) ---------------------------------- */

/* Make every shadow page obsolete with one generation bump: vCPUs load
 * fresh roots at their next access; obsolete pages are freed in batches of
 * at most @batch (0: 256) with the VM lock dropped between batches. */
int mv_mmu_zap_all(struct mv_vm *vm, uint32_t batch);
/* Free up to @max obsolete shadow pages left by mv_mmu_zap_all (for a
 * caller that wants to spread the work); @freed may be NULL. */
int mv_mmu_reclaim_obsolete(struct mv_vm *vm, uint32_t max, uint32_t *freed);

/* ---- inspection of the shadow tables (tools, tests) ------------------- */

/* One leaf of a vCPU's shadow tables: a 4 KiB piece (large guest pages are
 * shadowed in 4 KiB pieces), described from the shadow alone. */
struct mv_shadow_leaf {
	uint64_t va;           /* linear address of the piece (canonical) */
	uint64_t gpa;          /* guest-physical page it maps: from the
				* shadow page (or the MMIO SPTE's frame) */
	mv_page_id host_id;    /* the host page in the SPTE (0 for MMIO) */
	uint64_t page_size;    /* size of the guest page it is a piece of:
				* 4 KiB, 2 MiB, 4 MiB or 1 GiB */
	uint64_t entry_gpa;    /* where the guest's leaf entry lives (the
				* guest table this shadow stands for) */
	unsigned entry_size;   /* 4 (32-bit paging) or 8; 0 with paging off
				* (no guest entry) */
	unsigned perm;         /* MV_PERM_*: the rights in the SPTE (W is
				* missing from a piece of a large guest page
				* whose guest leaf is not dirty yet) */
	unsigned above_perm;   /* MV_PERM_*: what the guest entries above
				* the leaf entry allow (the shadow page's
				* role standing for the leaf's table) */
	bool mmio;             /* an MMIO SPTE */
	bool global;           /* SPTE G (guest G with CR4.PGE) */
	bool writable;         /* writes may go straight to the page */
	bool dirty;            /* SPTE D: written through the shadow */
};

/* Called for each leaf; a nonzero return stops the dump and is returned.
 * It runs under the VM lock: it may read guest memory and page
 * descriptors, but must not change the VM or call mv_vcpu_* functions. */
typedef int (*mv_shadow_leaf_fn)(void *opaque, const struct mv_shadow_leaf *l);

/* Every leaf (present or MMIO) under the vCPU's current root, in ascending
 * order of linear address as the shadow tables index it (the upper half
 * of a 64-bit space after the lower). Nothing changes. -MV_EINVAL for NULL
 * arguments, -MV_ESTATE when the vCPU has no current root (none loaded
 * yet, or a zap or a register change since: any access loads one).
 * The vCPU's thread. */
int mv_vcpu_shadow_dump(struct mv_vcpu *v, mv_shadow_leaf_fn fn, void *opaque);
/* The leaf of @va's page under the current root: 1 and *out filled, 0 when
 * the shadow has none; -MV_EINVAL, -MV_ESTATE as above. The vCPU's
 * thread. */
int mv_vcpu_shadow_leaf(struct mv_vcpu *v, uint64_t va,
			struct mv_shadow_leaf *out);

/* ---- statistics ------------------------------------------------------------ */

struct mv_vcpu_stats {
	uint64_t accesses;          /* calls of translate/read/write/fetch */
	uint64_t tlb_hits, tlb_misses;
	uint64_t shadow_hits;       /* TLB miss answered by the shadow walk */
	uint64_t faults;            /* shadow faults (guest walks) */
	uint64_t guest_faults;      /* #PF / #GP returned to the guest */
	uint64_t fills;             /* leaf SPTEs installed */
	uint64_t dirty_faults;      /* first write: guest D set */
	uint64_t mmio;              /* MMIO accesses */
	uint64_t mmio_cached;       /* answered by an MMIO SPTE */
	uint64_t emulated_writes;   /* writes to tracked guest page tables */
	uint64_t flushes;           /* full TLB flushes */
	uint64_t invlpg;
	uint64_t root_loads;        /* CR3 loads */
	uint64_t root_cache_hits;   /* ... found among the cached roots */
	uint64_t acks;              /* flush requests acknowledged */
};

struct mv_mmu_stats {
	uint64_t shadow_pages;      /* in use now */
	uint64_t shadow_pages_max;  /* the cap */
	uint64_t pool_free;         /* free pages in the shadow pool */
	uint64_t pool_refills, pool_returns;
	uint64_t created, zapped;   /* shadow pages, totals */
	uint64_t cap_zaps;          /* zapped because the cap was reached */
	uint64_t obsolete;          /* waiting to be freed after zap-all */
	uint64_t zap_alls;
	uint64_t tracked_gfns;      /* guest page-table pages write-tracked */
	uint64_t table_writes;      /* tracked writes seen */
	uint64_t flood_unshadows;   /* tables unshadowed by write flooding */
	uint64_t misaligned_unshadows;
	uint64_t rmap_entries;
	uint64_t notify_zaps;       /* leaf SPTEs dropped for phys changes */
	uint64_t write_protects;    /* leaf SPTEs made read-only */
	uint64_t shootdowns;        /* flush requests with wait */
	uint64_t shootdown_waits;   /* ... that had to wait for a vCPU */
	uint64_t mmio_gen;          /* current MMIO generation (19 bits) */
	uint64_t mmio_gen_wraps;
	uint64_t metadata_bytes;    /* malloc'd MMU structures */
	uint32_t vcpus;
};

int mv_vcpu_get_stats(const struct mv_vcpu *v, struct mv_vcpu_stats *st);
/* -MV_ENOENT when the VM has no MMU yet. */
int mv_mmu_get_stats(struct mv_vm *vm, struct mv_mmu_stats *st);

#endif
