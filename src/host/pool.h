/* The host page pool's internal structures (see docs/design.md, "Host page
 * pool"). Everything here is guarded by mv_host.lock unless noted. */
#ifndef MV_HOST_POOL_H
#define MV_HOST_POOL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <memvisor/host.h>

#include "desc.h"

/* Chunk ids fit the 32-bit page id: 23 bits. */
#define POOL_MAX_CHUNKS (1u << (32 - MV_CHUNK_PAGE_SHIFT))
/* A link value meaning "no chunk": chunk 0 is reserved, never linked. */
#define NO_CHUNK 0u

/* Free sets bin chunks by free-page count, 32 counts per bin: bin 0 holds
 * chunks with 1..32 free pages (the fullest), bin 15 those with 481..511.
 * Empty chunks are on the empty list, full ones on no list. */
#define BIN_SHIFT 5
#define NBINS (MV_CHUNK_PAGES >> BIN_SHIFT)
#define LIST_EMPTY NBINS       /* chunk.list: on the empty list */
#define LIST_NONE 0xffu         /* chunk.list: on no list (full, detached) */

enum chunk_flags {
	CHUNK_SHARED = 1u << 0,    /* holds shared pages only */
	CHUNK_SEEDED = 1u << 1,    /* carved from mv_host_seed() memory */
	CHUNK_SKIP = 1u << 2,      /* defragment: do not vacate (this call) */
};

struct chunk {
	mv_desc desc[MV_CHUNK_PAGES];
	uint8_t *base;             /* MV_CHUNK_SIZE bytes of host memory */
	uint32_t id;
	uint32_t prev, next;       /* links on a bin or the empty list */
	uint16_t free_count;
	uint16_t free_head;        /* page index, DESC_NO_NEXT = none */
	uint16_t held;             /* free pages still holding memory */
	mv_vmid affinity;          /* VM whose set holds it; 0 = none */
	uint8_t flags;
	uint8_t list;              /* bin index, LIST_EMPTY or LIST_NONE */
};

/* Whether a chunk is seeded, read by the allocator's populate step
 * outside the pool lock: flags change under the lock (CHUNK_SKIP,
 * CHUNK_SHARED) by atomic read-modify-writes, so this load never races
 * them; CHUNK_SEEDED itself never changes after the chunk is made. */
static inline bool chunk_seeded(const struct chunk *c)
{
	return __atomic_load_n(&c->flags, __ATOMIC_RELAXED) & CHUNK_SEEDED;
}

static inline void chunk_flag(struct chunk *c, uint8_t flag, bool on)
{
	if (on)
		__atomic_fetch_or(&c->flags, flag, __ATOMIC_RELAXED);
	else
		__atomic_fetch_and(&c->flags, (uint8_t)~flag, __ATOMIC_RELAXED);
}

/* The descriptors plus 32 bytes: 8.0625 bytes per page. */
_Static_assert(sizeof(struct chunk) == MV_CHUNK_PAGES * 8 + 32,
	       "per-chunk overhead must stay 32 bytes");

struct free_set {
	uint32_t head[NBINS];
	uint32_t mask;             /* bit b: head[b] is not empty */
};

struct account {
	struct mv_reservation res;
	uint64_t allocated[MV_ACCOUNT_KINDS];
	uint64_t ballooned;
	uint64_t shared_refs;
	uint32_t hint;             /* chunk allocated from last */
	uint32_t moves;            /* moves of its pages in flight */
	uint32_t moves_old;        /* of which began under an older mover */
	uint32_t mover_gen;        /* bumped by mv_host_vm_set_mover */
	mv_host_move_fn mover;
	void *mover_opaque;
	struct free_set set;       /* private chunks with affinity to it */
};

struct mv_host {
	pthread_mutex_t lock;
	pthread_cond_t moves_done;  /* a move finished (mv_host_vm_set_mover) */
	struct mv_host_config cfg;

	/* Chunk storage. The table is a fixed reservation of POOL_MAX_CHUNKS
	 * pointers (only touched pages become resident) so that it never
	 * moves: mv_host_page_ptr() reads it without the lock. */
	struct chunk **table;
	uint64_t *id_bitmap;        /* bit c: chunk id c in use */
	uint32_t id_words;
	uint32_t id_hwm;            /* highest chunk id ever used + 1 */
	int memfd;
	uint64_t memfd_size;
	/* One reservation of POOL_MAX_CHUNKS * 2 MiB (16 TiB) of address
	 * space: memfd chunk c lives at arena + c * 2 MiB, mapped from memfd
	 * offset c * 2 MiB, so that neighbouring chunks merge into one
	 * mapping. A range once mapped stays mapped (a released chunk's pages
	 * are hole-punched): the number of mappings does not grow with the
	 * number of chunks, and a stale pointer never faults. */
	uint8_t *arena;
	uint32_t arena_chunks;      /* its size in chunks (see chunk.c) */
	uint64_t *mapped;           /* bit c: chunk c's arena range is mapped */
	void *zero_page;
	void **seeds;               /* unused seeded chunk-sized regions */
	uint32_t nseeds, seeds_cap;
	struct seed_range { uintptr_t start, end; } *seed_ranges;
	uint32_t nseed_ranges;      /* every mv_host_seed() range, ever */

	/* Free sets. */
	struct free_set orphans;    /* private chunks without affinity */
	struct free_set shared;     /* shared chunks */
	uint32_t private_bin_chunks[NBINS]; /* over orphans + every VM set */
	uint32_t empty_head, empty_tail, empty_count;

	/* Accounts. */
	struct account *vms[MV_HOST_MAX_VMS + 1];
	mv_vmid live[MV_HOST_MAX_VMS];  /* handles in use, unordered */
	uint32_t nvms;

	/* The idle defragmenter (defrag_worker.c), under worker_lock. */
	pthread_mutex_t worker_lock;
	pthread_cond_t worker_wake;
	pthread_t worker;
	bool worker_on, worker_stop;
	uint32_t worker_period_ms, worker_max_moves;
	uint64_t worker_runs;

	/* Counters (pages unless named otherwise). */
	uint64_t reserved;
	uint64_t private_pages;
	uint64_t moving_pages;      /* moves in flight (targets not charged) */
	uint64_t retired_pages;     /* freed while moving, not yet free */
	uint64_t shared_pages;
	uint64_t shared_refs;
	uint64_t ballooned;
	uint64_t free_pages;        /* in live chunks, empty ones included */
	uint64_t free_shared;       /* of which in shared chunks */
	uint64_t held;              /* of which still hold memory (punch.c) */
	uint64_t pages_punched;     /* given back to the kernel, in total */
	uint64_t chunks;
	uint64_t chunks_created;
	uint64_t chunks_released;
	uint64_t pages_moved;
};

/* ---- chunk.c: chunk lifetime -------------------------------------------- */
/* Reserve the arena (and its mapped bitmap) / give it back (mv_host_destroy
 * after chunk_release_all). */
int chunk_arena_map(struct mv_host *h);
void chunk_arena_unmap(struct mv_host *h);
/* Make @n new empty chunks (on the empty list) so that an allocation can
 * proceed; all or none. -MV_ENEEDSEED / -MV_ENOMEM. */
int chunk_reserve_new(struct mv_host *h, uint32_t n);
/* Return an empty chunk's memory to the host and forget it. */
void chunk_release(struct mv_host *h, struct chunk *c);
/* Release empty chunks beyond the configured cache. */
void chunk_trim_cache(struct mv_host *h);
/* Forget every chunk (mv_host_destroy). */
void chunk_release_all(struct mv_host *h);
/* The live chunk holding @id, or NULL (NIL, zero page, unknown id). */
struct chunk *chunk_of(const struct mv_host *h, mv_page_id id);

/* ---- freeset.c: placing chunks on bins and the empty list ---------------- */
/* Put @c where its free count, type and affinity say it belongs. */
void fs_place(struct mv_host *h, struct chunk *c);
/* Take @c off whatever list it is on. */
void fs_detach(struct mv_host *h, struct chunk *c);
/* Re-place @c after its free count changed, if its bin changed. */
void fs_update(struct mv_host *h, struct chunk *c);
/* The fullest chunk of @set (NULL if none). */
struct chunk *fs_fullest(struct mv_host *h, const struct free_set *set);
/* Visit private partly-used chunks, fullest bins first (or emptiest first
 * with @reverse); stop when @fn returns true and return that chunk. */
struct chunk *fs_find_private(struct mv_host *h, bool reverse,
			      bool (*fn)(struct chunk *c, void *arg),
			      void *arg);
/* Pop the head of the empty list (NULL if empty). */
struct chunk *fs_pop_empty(struct mv_host *h);

/* ---- page.c: page-level steps, lock held -------------------------------- */
/* Pop one free page of @c; returns its index and whether it was zero.
 * The caller re-places the chunk (fs_update) when done with it. */
static inline uint32_t page_take(struct mv_host *h, struct chunk *c,
				 bool *zeroed)
{
	uint32_t idx = c->free_head;
	mv_desc d = c->desc[idx];

	c->free_head = (uint16_t)desc_free_next(d);
	c->free_count--;
	h->free_pages--;
	if (desc_free_held(d)) {
		c->held--;
		h->held--;
	}
	if (c->flags & CHUNK_SHARED)
		h->free_shared--;
	*zeroed = desc_free_zeroed(d);
	return idx;
}

/* Push page @idx of @c on its free list (content no longer known to be
 * zero, its memory held until punched) without re-placing the chunk. */
static inline void page_push(struct mv_host *h, struct chunk *c, uint32_t idx)
{
	c->desc[idx] = desc_free(c->free_head, false) | DESC_HELD;
	c->free_head = (uint16_t)idx;
	c->free_count++;
	c->held++;
	h->held++;
	h->free_pages++;
	if (c->flags & CHUNK_SHARED)
		h->free_shared++;
}

/* page_push, then re-place the chunk; an emptied chunk goes on the empty
 * list (the caller trims the cache when its batch is done). */
static inline void page_put(struct mv_host *h, struct chunk *c, uint32_t idx)
{
	page_push(h, c, idx);
	fs_update(h, c);
}
static inline mv_page_id page_id_of(uint32_t chunk, uint32_t idx)
{
	return chunk << MV_CHUNK_PAGE_SHIFT | idx;
}

/* ---- punch.c: giving freed pages' memory back to the kernel ------------- */
/* Give the memory of every held free page of @c back to the kernel now
 * (hole punch on the memfd, MADV_DONTNEED on seeded memory). */
void punch_chunk(struct mv_host *h, struct chunk *c);
/* After a free into @c: if the pool holds more freed memory than its free
 * cache allows, punch held pages (of any chunk) until half the cache is
 * left. */
void punch_settle(struct mv_host *h, struct chunk *c);
/* punch_settle after a batch of @count ids was freed; with @now, punch
 * those pages first whatever the cache (the balloon). */
void punch_batch(struct mv_host *h, uint32_t count, const mv_page_id *ids,
		 bool now);

/* ---- account.c ----------------------------------------------------------- */
/* The live account @vm or NULL. */
struct account *acct_get(const struct mv_host *h, mv_vmid vm);
/* 0 if @vm may allocate @n more pages of @kind under its reservation and
 * the host budget, else -MV_ERESERVATION / -MV_EBUDGET. */
int acct_check_alloc(const struct mv_host *h, const struct account *a,
		     enum mv_account_kind kind, uint64_t n);
/* 0 if @n more pages fit the host budget, else -MV_EBUDGET. */
int budget_check(const struct mv_host *h, uint64_t n);

/* ---- alloc.c -------------------------------------------------------------- */
/* Make sure @n free pages exist for a private (or shared) allocation,
 * creating chunks if needed. */
int pool_ensure_free(struct mv_host *h, uint64_t n, bool shared);
/* A chunk with free pages for a private allocation by @vm (hint,
 * affinity, fullest, empty). pool_ensure_free must have succeeded. */
struct chunk *pool_pick_private(struct mv_host *h, mv_vmid vm);
/* Free @count private pages of @vm after validating all of them; with
 * @balloon, each must be charged to MV_ACCOUNT_BASE and goes to the
 * balloon. The charge goes at once; a page in a move is retired instead of
 * freed, and the move's finish frees it (move.c). */
int pool_free_batch(struct mv_host *h, mv_vmid vm, uint32_t count,
		    const mv_page_id *ids, bool balloon);

/* ---- move.c --------------------------------------------------------------- */
/* True when the calling thread is inside @vm's mover (set_mover must not
 * wait for its own move). */
bool move_in_mover(const struct mv_host *h, mv_vmid vm);

/* ---- defrag_worker.c -------------------------------------------------- */
/* Stop the idle defragmenter if it runs (mv_host_destroy). */
void worker_stop_if_running(struct mv_host *h);

/* ---- check.c -------------------------------------------------------------- */
/* Recount everything from the descriptors and compare with the counters,
 * lists and accounts: 0 or -MV_EINTERNAL. Takes the lock. */
int pool_check(struct mv_host *host);

static inline void pool_lock(const struct mv_host *h)
{
	pthread_mutex_lock((pthread_mutex_t *)&h->lock);
}

static inline void pool_unlock(const struct mv_host *h)
{
	pthread_mutex_unlock((pthread_mutex_t *)&h->lock);
}

#endif
