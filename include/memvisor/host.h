/* memvisor host page pool: the bottom layer (the seeds' GMM).
 *
 * Host memory is handed out in 4 KiB pages carved from 2 MiB allocation
 * chunks. Every page has a 32-bit id, (chunk id << 9) | index, the "host
 * page frame number" that the layers above store instead of a pointer.
 * Chunk id 0 is reserved: page id 0 is NIL and page id 1 is the zero page.
 *
 * Pages are charged to VM accounts (one per guest, identified by a small
 * handle) and to the host budget.
 *
 * Rules for every call below unless it says otherwise:
 * - Errors: 0 or a negative code; -MV_EINVAL for a NULL pool or pointer
 *   argument, a zero count or an unknown flag; -MV_ENOENT for a VM handle
 *   that is not open. A call that fails changes nothing (no account,
 *   counter, page or statistic).
 * - Threads: any thread may call any function at any time, concurrently,
 *   between mv_host_create and mv_host_destroy (which no other call may
 *   overlap). Each call takes the pool lock once and holds no lock when it
 *   returns. Lock order: a caller may hold its own (VM) lock while calling
 *   in here, except for the calls that run movers (mv_host_move_page,
 *   mv_host_defragment, mv_host_vm_destroy, mv_host_vm_set_mover,
 *   mv_host_defrag_stop); the pool never calls out with one of its locks
 *   held (see mv_host_move_fn).
 * - Lifetimes: ids stay valid until the page is freed (private: by
 *   mv_host_free, the balloon, mv_host_vm_destroy, or the loser of a move;
 *   shared: with its last reference); pointers as mv_host_page_ptr says.
 */
#ifndef MEMVISOR_HOST_H
#define MEMVISOR_HOST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <memvisor/error.h>

#define MV_PAGE_SHIFT 12
#define MV_PAGE_SIZE (1u << MV_PAGE_SHIFT)
#define MV_CHUNK_SHIFT 21
#define MV_CHUNK_SIZE (1u << MV_CHUNK_SHIFT)
#define MV_CHUNK_PAGE_SHIFT (MV_CHUNK_SHIFT - MV_PAGE_SHIFT)
#define MV_CHUNK_PAGES (1u << MV_CHUNK_PAGE_SHIFT)

typedef uint32_t mv_page_id;
#define MV_NIL_PAGE ((mv_page_id)0)
#define MV_ZERO_PAGE ((mv_page_id)1)  /* always zero, mapped read-only */

static inline uint32_t mv_page_chunk(mv_page_id id)
{
	return id >> MV_CHUNK_PAGE_SHIFT;
}

static inline uint32_t mv_page_index(mv_page_id id)
{
	return id & (MV_CHUNK_PAGES - 1);
}

/* A VM's account handle, 1..MV_HOST_MAX_VMS (0 is never a valid VM). */
typedef uint16_t mv_vmid;
#define MV_HOST_MAX_VMS 4095

/* A guest frame number the pool does not know (pages not yet placed). */
#define MV_GFN_NONE UINT64_MAX

struct mv_host;

enum mv_overcommit {
	/* The sum of all VMs' reservations may not exceed the budget: an
	 * allocation within a reservation can then never fail for lack of
	 * host pages. */
	MV_OVERCOMMIT_NONE,
	/* Reservations may add up to more than the budget; an allocation
	 * fails only when the pages in use would exceed it. */
	MV_OVERCOMMIT_ALLOW,
};

struct mv_host_config {
	uint64_t budget_pages;          /* max pages in use; 0 = no limit */
	enum mv_overcommit overcommit;
	uint32_t empty_chunk_cache;     /* empty chunks kept, not released */
	/* Freed pages whose memory the pool keeps for reuse (no page fault
	 * when allocated again). Beyond it, a call that frees pages gives the
	 * memory of the freed pages of the chunks it freed into back to the
	 * kernel (hole punch) before it returns: the pool never holds more
	 * than this many freed pages' memory after a call. Pages given to the
	 * balloon are returned at once. 0: every freed page at once. */
	uint32_t free_cache_pages;
	/* Seeded mode: the pool never creates chunks itself; memory comes
	 * only from mv_host_seed(), and an allocation that finds no free page
	 * fails with -MV_ENEEDSEED. */
	int seeded;
};

/* Create a pool. @cfg may be NULL for defaults (no budget, no over-commit
 * limit, a cache of 2 empty chunks and of 1024 freed pages, not seeded).
 * -MV_EINVAL (bad overcommit value, NULL @out), -MV_ENOMEM (metadata, or
 * not even 2 GiB of address space for chunks: the pool reserves 16 TiB,
 * or the largest power of two below that it can get, and tops out
 * there), or a negated errno
 * (memfd_create, pthread); *@out is untouched on error. */
int mv_host_create(const struct mv_host_config *cfg, struct mv_host **out);
/* Free everything, including the chunks, and stop the idle defragmenter.
 * Pages still allocated are lost; every id and pointer of the pool dies.
 * NULL is a no-op. No other call may run on @host meanwhile or after. */
void mv_host_destroy(struct mv_host *host);

/* Seeded mode: hand the pool @bytes of memory at @mem (4 KiB aligned, a
 * multiple of MV_CHUNK_SIZE) to carve chunks from. The caller keeps the
 * memory mapped for the pool's lifetime; empty seeded chunks are given back
 * to the kernel with MADV_DONTNEED, never unmapped. Errors (nothing
 * changes): -MV_EINVAL (NULL, misaligned, zero or not a chunk multiple, a
 * range wrapping the address space), -MV_EEXIST (overlaps memory seeded
 * before, or the pool's own chunk memory), -MV_ENOMEM. */
int mv_host_seed(struct mv_host *host, void *mem, size_t bytes);

/* ---- VM accounts ------------------------------------------------------ */

/* What a VM may allocate, in pages, per account kind. */
struct mv_reservation {
	uint64_t base;    /* guest RAM */
	uint64_t shadow;  /* shadow page tables and other MMU structures */
	uint64_t fixed;   /* everything else of fixed size (ROM copies, ...) */
};

enum mv_account_kind {
	MV_ACCOUNT_BASE,
	MV_ACCOUNT_SHADOW,
	MV_ACCOUNT_FIXED,
	MV_ACCOUNT_KINDS
};

/* Open an account. -MV_EBUDGET under MV_OVERCOMMIT_NONE when the sum of
 * reservations would exceed the budget; -MV_EINVAL when the reservation's
 * sum overflows 64 bits; -MV_ELIMIT when all handles are in use;
 * -MV_ENOMEM. The handle lives until mv_host_vm_destroy succeeds and may
 * be reused after. */
int mv_host_vm_create(struct mv_host *host, const struct mv_reservation *res,
		      mv_vmid *out);
/* Change a reservation; it may not drop below what is allocated (and, for
 * base, ballooned): -MV_ERESERVATION; -MV_EBUDGET / -MV_EINVAL as at
 * create. */
int mv_host_vm_reserve(struct mv_host *host, mv_vmid vm,
		       const struct mv_reservation *res);
/* Close an account: frees every private page it owns. -MV_EBUSY (and no
 * change) while it still holds shared-page references or a move of one of
 * its pages is in flight; mv_host_vm_set_mover(NULL) first waits for those
 * moves and stops new ones, so a destroy after it never meets a move.
 * -MV_ENOENT for an unknown handle. Then it defragments, at most
 * MV_HOST_DESTROY_DEFRAG_MOVES moves through the other VMs' movers: call
 * it holding no VM lock (as mv_host_defragment). */
#define MV_HOST_DESTROY_DEFRAG_MOVES MV_CHUNK_PAGES
int mv_host_vm_destroy(struct mv_host *host, mv_vmid vm);

/* Called by the pool, with none of its locks held, when it wants to move
 * the VM's private page @old_id (mapped at @gfn) to @new_id. The owner must,
 * under its own lock, check that it still maps @old_id at @gfn (it may have
 * freed the page since the move began), stop writers of the old page, copy
 * it into the new one (mv_host_page_copy) and switch its mapping of @gfn to
 * @new_id, then return 0. Any other return refuses the move: @new_id is
 * freed and @old_id stays.
 *
 * While the move is in flight both pages are "moving": their gfn cannot
 * change (mv_host_page_set_gfn gives -MV_EBUSY), so @gfn is current; the
 * owner may still free either page or give it to the balloon (the call
 * succeeds; the page is freed and its charge settled when the move ends). */
typedef int (*mv_host_move_fn)(void *opaque, mv_vmid vm, uint64_t gfn,
			       mv_page_id old_id, mv_page_id new_id);
/* Set (or with @fn NULL unset) the VM's mover. When it returns, no move of
 * the VM's pages calls the previous mover any more: moves in flight are
 * waited for, so the caller must not hold the lock the mover takes.
 * -MV_EBUSY (no change) when called from inside that VM's mover. */
int mv_host_vm_set_mover(struct mv_host *host, mv_vmid vm, mv_host_move_fn fn,
			 void *opaque);

/* ---- private pages ---------------------------------------------------- */

enum mv_alloc_flags {
	MV_ALLOC_ZEROED = 1u << 0,  /* content must read as zeros */
	/* Have the kernel back the pages now, in runs (fallocate on the
	 * memfd, MADV_POPULATE_WRITE on seeded memory), instead of one page
	 * fault per page at first write: for pages about to be written. */
	MV_ALLOC_POPULATE = 1u << 1,
};

/* Allocate @count private pages for @vm, charged to @kind; ids go to @ids.
 * @gfns (may be NULL) names the guest frame of each page for the owner
 * records. Without MV_ALLOC_ZEROED the content is undefined (restore, ROM:
 * the caller fills the pages at once). All or nothing: on failure
 * (-MV_ERESERVATION, -MV_EBUDGET, -MV_ENOMEM, -MV_ENEEDSEED) nothing is
 * allocated and no account changes. One lock round-trip per call. */
int mv_host_alloc(struct mv_host *host, mv_vmid vm, enum mv_account_kind kind,
		  uint32_t count, const uint64_t *gfns, unsigned flags,
		  mv_page_id *ids);
/* Free @count private pages owned by @vm. All or nothing: -MV_EINVAL and
 * no change if any id is not a private page of @vm (or appears twice). A
 * page being moved (mv_host_move_page) is freed too: it leaves the VM at
 * once and returns to the pool, uncharged, when the move ends. */
int mv_host_free(struct mv_host *host, mv_vmid vm, uint32_t count,
		 const mv_page_id *ids);
/* Record the guest frame a private page now backs (handy pages get their
 * frame only when used). -MV_ERANGE for a gfn of 46 bits or more (other
 * than MV_GFN_NONE), -MV_EINVAL if @id is not a private page of @vm,
 * -MV_EBUSY (no change) while the page is being moved: the mover was told
 * its frame. */
int mv_host_page_set_gfn(struct mv_host *host, mv_vmid vm, mv_page_id id,
			 uint64_t gfn);

/* Host address of a page: O(1), without the pool lock. The zero page's
 * memory is read-only.
 *
 * Defined only for a page the caller holds for the whole call: a private
 * page of a VM it speaks for, not yet freed (a page being moved included),
 * a shared page on which it holds a reference, or MV_ZERO_PAGE. The
 * pointer is valid, for reads and (private pages) writes, until the
 * caller gives the page up (frees it, balloons it, drops its reference,
 * its move switches it, or the VM is destroyed); after that it still
 * points to mapped memory until mv_host_destroy (memfd chunks are never
 * unmapped; seeded memory is the caller's), but its content belongs to
 * whoever gets the page next, so it must not be used.
 *
 * For any other id (NIL, unknown, free) it returns NULL when no other
 * thread changes the pool meanwhile; racing with another thread's free
 * or chunk release, such a call may read a released chunk's header
 * (freed memory): ask only about pages you hold. */
void *mv_host_page_ptr(const struct mv_host *host, mv_page_id id);
/* Copy one page's content into another (the mover's helper), under the
 * pool lock. -MV_EINVAL when @dst is not a private page, @src is free or
 * unknown, or @dst == @src; nothing is copied then. */
int mv_host_page_copy(struct mv_host *host, mv_page_id dst, mv_page_id src);

/* The memfd and offset backing a chunk, so that another process can map it
 * (MAP_SHARED, MV_CHUNK_SIZE bytes). -MV_ERANGE for chunk 0 or an id
 * beyond the pool's range, -MV_ENOENT for a chunk not live or seeded. The
 * fd belongs to the pool (do not close it) and lives until
 * mv_host_destroy; the range is the chunk's only while it is live (a
 * released chunk's range is punched and may back another chunk later). */
int mv_host_chunk_fd(const struct mv_host *host, uint32_t chunk, int *fd,
		     uint64_t *offset);

/* ---- over-commitment -------------------------------------------------- */

/* Shared pages live only in shared chunks and carry a reference count and
 * checksum bits. mv_host_share_alloc makes a new shared page holding a copy
 * of @content with one reference for @vm; -MV_EBUDGET, -MV_ENOMEM,
 * -MV_ENEEDSEED. Shared references are not charged to a reservation. */
int mv_host_share_alloc(struct mv_host *host, mv_vmid vm, const void *content,
			uint64_t checksum, mv_page_id *out);
/* Take one more reference for @vm. -MV_EINVAL if @id is not shared,
 * -MV_ELIMIT at 2^30-1 references. */
int mv_host_share_get(struct mv_host *host, mv_vmid vm, mv_page_id id);
/* Drop @vm's reference; the page is freed with its last one (its memory
 * goes back to the kernel as for mv_host_free). -MV_EINVAL if @id is not
 * shared or @vm holds no shared reference at all. */
int mv_host_share_put(struct mv_host *host, mv_vmid vm, mv_page_id id);
/* Checksum bits stored with a shared page: the low 32 bits of the
 * @checksum given to mv_host_share_alloc (the upper 32 read as zero).
 * -MV_EINVAL if @id is not shared. */
int mv_host_share_checksum(const struct mv_host *host, mv_page_id id,
			   uint64_t *checksum);
/* The references shared page @id holds now (a sharer limit's count).
 * -MV_EINVAL if @id is not shared. */
int mv_host_share_refs(const struct mv_host *host, mv_page_id id,
		       uint32_t *refs);

/* Ballooning: the guest gave @count of its private BASE pages back. They
 * are freed, and counted as ballooned: they stay charged to the reservation
 * so the VM cannot allocate them again until it deflates. All or nothing,
 * like mv_host_free (-MV_EINVAL for a page that is not a private BASE page
 * of @vm); a page being moved is accepted and counted as ballooned when the
 * move ends. */
int mv_host_balloon_inflate(struct mv_host *host, mv_vmid vm, uint32_t count,
			    const mv_page_id *ids);
/* The guest takes @count ballooned pages back (allocated later, on use).
 * -MV_EINVAL when @count exceeds the VM's ballooned pages. */
int mv_host_balloon_deflate(struct mv_host *host, mv_vmid vm, uint64_t count);

/* ---- fragmentation ---------------------------------------------------- */

/* Move one private page to a fuller chunk through its owner's mover: the
 * fullest chunk at least as full as the page's own among the owner's
 * chunks and those of no VM, else among any VM's (mv_host_defragment never
 * takes that last step).
 * @new_id (may be NULL) receives where it went. -MV_EBUSY and no change if
 * the mover refuses or the page is already moving; -MV_ESTATE if the owner
 * has no mover; -MV_ENOENT if no chunk is at least as full as the page's
 * own; -MV_EINVAL if @id is not a private page. The mover takes its VM's
 * lock: call this (and mv_host_defragment) holding no VM lock, except the
 * page owner's own if that lock is recursive. */
int mv_host_move_page(struct mv_host *host, mv_page_id id, mv_page_id *new_id);
/* Vacate nearly empty chunks by moving their pages into fuller ones, at
 * most @max_moves moves; @moved (may be NULL) receives how many were made.
 * Chunks that become empty are returned to the host. */
int mv_host_defragment(struct mv_host *host, uint32_t max_moves,
		       uint32_t *moved);

/* Start the idle defragmenter: a thread that wakes every @period_ms and,
 * when at least a chunk's worth of free pages is scattered over partly
 * used private chunks, runs mv_host_defragment(@max_moves). Movers are
 * then called on that thread. -MV_EINVAL (NULL, 0 period or moves),
 * -MV_EBUSY (already running), or a negated errno of pthread_create; no
 * change on error. Any thread. */
int mv_host_defrag_start(struct mv_host *host, uint32_t period_ms,
			 uint32_t max_moves);
/* Stop it and wait for its pass in flight (so the caller must hold no
 * lock a mover takes). -MV_ESTATE when it does not run, -MV_EBUSY from
 * the worker's own thread (a mover). mv_host_destroy stops it too. */
int mv_host_defrag_stop(struct mv_host *host);

/* ---- statistics ------------------------------------------------------- */

struct mv_host_stats {
	uint64_t budget_pages;      /* 0 = no limit */
	uint64_t reserved_pages;    /* sum over VMs and kinds */
	uint64_t private_pages;     /* allocated private pages */
	uint64_t shared_pages;      /* distinct shared pages */
	uint64_t shared_refs;       /* references to them */
	uint64_t ballooned_pages;
	uint64_t free_pages;        /* free pages inside live chunks */
	uint64_t free_held_pages;   /* of which still hold memory (not punched) */
	uint64_t pages_punched;     /* freed pages given back to the kernel */
	uint64_t chunks;            /* live chunks (incl. cached empty) */
	uint64_t empty_cached_chunks;
	uint64_t chunks_created;    /* totals since creation */
	uint64_t chunks_released;
	uint64_t pages_moved;
	uint64_t metadata_bytes;    /* descriptors, chunk table, free sets */
	/* What the kernel holds for the pool's memfd (its allocated blocks):
	 * the memory that freeing gives back. Seeded memory is not in it. */
	uint64_t memfd_bytes;
	uint32_t vms;
};

struct mv_host_vm_stats {
	struct mv_reservation reserved;
	uint64_t allocated[MV_ACCOUNT_KINDS];
	uint64_t ballooned;
	uint64_t shared_refs;
};

/* A consistent snapshot (taken under the lock; padding cleared, so two
 * snapshots may be compared with memcmp). */
int mv_host_get_stats(const struct mv_host *host, struct mv_host_stats *st);
/* One account's snapshot; -MV_ENOENT (and *@st untouched) for a handle
 * that is not open. */
int mv_host_vm_get_stats(const struct mv_host *host, mv_vmid vm,
			 struct mv_host_vm_stats *st);
/* Human-readable report of the pool and every account (NULL args: no-op). */
void mv_host_print_stats(const struct mv_host *host, FILE *out);

#endif
