/* Internal structures of a VM's guest-physical space (src/phys/). */
#ifndef MV_PHYS_VM_INTERNAL_H
#define MV_PHYS_VM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <memvisor/vm.h>

/* Guest-physical addresses are at most 52 bits (x86 MAXPHYADDR). */
#define MV_GPA_LIMIT (1ull << 52)

struct phys_range {
	uint64_t first_gfn, npages;
	enum mv_page_type type;
	char *name;
	mv_mmio_read_fn read;
	mv_mmio_write_fn write;
	void *opaque;
	struct mv_page *pages;   /* MAP_NORESERVE: see desc.c */
	uint64_t *touched;       /* RAM: bit per descriptor page used */
};

/* A RAM range's descriptor array, for desc_mark_page. */
struct desc_span {
	const struct mv_page *lo;
	uint64_t n;
	uint64_t *touched;
};

struct phys_handler {
	uint64_t first_gfn, npages;
	enum mv_handler_kind kind;
	mv_phys_handler_fn fn;
	void *opaque;
};

#define MAPCACHE_LOOKASIDE 8

struct map_slot {
	uint32_t chunk;
	uint8_t *base;           /* NULL: slot free */
	uint32_t prev, next;     /* LRU list (slot indices, UINT32_MAX = end) */
};

struct mapcache {
	uint32_t max;            /* 0: disabled */
	struct {
		uint32_t chunk;
		uint8_t *base;
	} look[MAPCACHE_LOOKASIDE];
	struct map_slot *slots;  /* max entries */
	uint32_t used;
	uint32_t lru_head, lru_tail; /* head = most recent */
	uint32_t *index;         /* chunk id -> slot + 1, 0 = not mapped */
	uint32_t index_len;
	uint64_t hits, table_hits, misses, evictions, fallbacks;
};

struct mv_vm_request {
	struct mv_vm_request *next;
	mv_vm_request_fn fn;
	void *arg;
	int result;
	int waitable;
	atomic_int done;
};

/* A write's pages and source, settled before it starts (write_plan.c). */
struct write_plan {
	mv_page_id *ids;         /* pages allocated for it */
	uint64_t n, used;
	uint8_t *stage;          /* copy of a source at risk, or NULL */
	struct write_plan *outer;
};

struct mv_vm {
	struct mv_host *host;
	mv_vmid id;
	pthread_mutex_t lock;            /* recursive; see vm.h */
	struct phys_range *ranges;       /* sorted by first_gfn */
	uint32_t nranges;
	struct desc_span *spans;         /* RAM ranges by descriptor address */
	uint32_t nspans, spans_cap;
	struct phys_handler *handlers;   /* sorted by first_gfn */
	uint32_t nhandlers, handlers_cap;
	mv_page_id *handy;
	uint32_t nhandy, handy_low, handy_high;
	struct mv_vm *drain_prev, *drain_next; /* drain.c's list */
	int drain_listed;
	atomic_int drain_wanted;         /* another VM asked for the cache */
	_Atomic uint32_t nhandy_hint;    /* nhandy, for askers without lock */
	enum mv_balloon_policy balloon_policy;
	uint64_t balloon_target;
	mv_vm_notify_fn notify;
	void *notify_opaque;
	mv_vm_track_fn track;
	void *track_opaque;
	struct write_plan *plan;         /* innermost write in progress */
	/* Hooks running on the lock holder's thread (see vm_busy). */
	uint32_t in_notify, in_track;
	struct mapcache map;
	_Atomic(struct mv_vm_request *) requests; /* LIFO, reversed on run */
	pthread_mutex_t req_lock;        /* only for waking waiters */
	pthread_cond_t req_cond;
	struct mv_vm_stats st;           /* counters kept up to date */
	void *mmu;                       /* src/mmu/: see phys/vm_mmu.h */
	void (*mmu_destroy)(void *mmu);
	/* Layout generation (mv_vm_layout_gen): written under the lock,
	 * read by anyone without it. */
	_Atomic uint64_t layout_gen;
};

/* range.c */
struct phys_range *range_find(const struct mv_vm *vm, uint64_t gfn);
struct mv_page *page_find(const struct mv_vm *vm, uint64_t gfn);
int span_check(const struct mv_vm *vm, uint64_t gpa, size_t len);
uint32_t range_lower_bound(const struct mv_vm *vm, uint64_t gfn);
int range_config_check(const struct mv_vm_range *c);
int range_init(struct phys_range *r, const struct mv_vm_range *c);
void range_destroy(struct phys_range *r);
int range_insert(struct mv_vm *vm, const struct phys_range *r);
void range_delete(struct mv_vm *vm, uint32_t at);
int ranges_check(const struct mv_vm_config *cfg, uint64_t count[3]);
int ranges_build(struct mv_vm *vm, const struct mv_vm_config *cfg);
void ranges_free(struct mv_vm *vm);

/* desc.c */
int desc_alloc(struct phys_range *r);
void desc_free(struct phys_range *r);
uint64_t desc_next_used(const struct phys_range *r, uint64_t i);
uint64_t desc_resident_bytes(const struct phys_range *r);
uint64_t desc_reserved_bytes(const struct phys_range *r);
void desc_spans_rebuild(struct mv_vm *vm);
int desc_spans_reserve(struct mv_vm *vm, uint32_t n);
void desc_mark_page(struct mv_vm *vm, const struct mv_page *p);

/* layout.c */
int range_rom_fill(struct mv_vm *vm, struct phys_range *r,
		   const struct mv_vm_range *c);
void range_count(struct mv_vm *vm, const struct phys_range *r, int sign);
void layout_bump(struct mv_vm *vm);

/* release.c */
#define RELEASE_BATCH 256
struct page_release {
	mv_page_id ids[RELEASE_BATCH];
	uint32_t n;
	bool keep;            /* private pages to the handy cache, not the pool */
	uint64_t ballooned;   /* host-ballooned pages: one deflate at the end */
	int rc;               /* first error, kept while the rest goes on */
};
void page_release_init(struct page_release *b, bool keep);
int page_release_add(struct mv_vm *vm, struct page_release *b,
		     const struct mv_page *p);
int page_release_end(struct mv_vm *vm, struct page_release *b);

/* state.c: every state change goes through here (keeps the counters). */
void page_set(struct mv_vm *vm, struct mv_page *p, enum mv_page_state s,
	      mv_page_id id);
int page_make_writable(struct mv_vm *vm, struct mv_page *p, uint64_t gfn);
int page_drop_backing(struct mv_vm *vm, struct mv_page *p);
const uint8_t *page_read_ptr(struct mv_vm *vm, const struct mv_page *p);
void vm_notify(struct mv_vm *vm, uint64_t gfn, uint64_t count,
	       enum mv_notify_reason why);

/* track.c */
void track_written(struct mv_vm *vm, const struct mv_page *p, uint64_t gpa,
		   const void *bytes, size_t len);

/* write_plan.c */
int write_plan_begin(struct mv_vm *vm, uint64_t gpa, const void **buf,
		     size_t len, struct write_plan *wp);
void write_plan_end(struct mv_vm *vm, struct write_plan *wp);
int write_plan_take(struct mv_vm *vm, uint64_t gfn, mv_page_id *out);
int source_in_frames(struct mv_vm *vm, uint64_t gfn, uint64_t n,
		     const void *buf, size_t len);

/* drain.c */
void drain_register(struct mv_vm *vm);
void drain_unregister(struct mv_vm *vm);
int drain_retry(struct mv_vm *vm, int (*try)(struct mv_vm *, void *),
		void *arg);
void drain_if_wanted(struct mv_vm *vm);
int vm_alloc(struct mv_vm *vm, enum mv_account_kind kind, uint32_t count,
	     const uint64_t *gfns, unsigned flags, mv_page_id *ids);

/* handy.c */
int handy_take(struct mv_vm *vm, uint64_t gfn, mv_page_id *out);
int handy_top_up(struct mv_vm *vm);
int handy_give(struct mv_vm *vm, const mv_page_id *ids, uint32_t n);
void handy_release_all(struct mv_vm *vm);

/* handler.c */
const struct phys_handler *handler_find(const struct mv_vm *vm, uint64_t gfn);
int handlers_overlap(const struct mv_vm *vm, uint64_t gfn, uint64_t n);
void handlers_free(struct mv_vm *vm);

/* mapcache.c */
int mapcache_init(struct mapcache *mc, uint32_t max);
void mapcache_destroy(struct mapcache *mc);
uint8_t *mapcache_ptr(struct mv_vm *vm, mv_page_id id);

/* request.c */
void requests_drain(struct mv_vm *vm);

/* move.c */
int vm_page_move(void *opaque, mv_vmid vmid, uint64_t gfn, mv_page_id old_id,
		 mv_page_id new_id);

/* The page has a private host page of its own. */
static inline int page_is_private(const struct mv_page *p)
{
	return p->state == MV_PAGE_ALLOCATED ||
	       p->state == MV_PAGE_WRITE_MONITORED;
}

/* -MV_EBUSY when the caller runs inside a hook of @vm (only the lock
 * holder can see the counters non-zero: check under the lock). A notify
 * hook runs in the middle of a change, so it may not access or change
 * guest memory at all; a track hook runs between two pieces of a write
 * and may read (@changes 0) but not change anything. */
static inline int vm_busy(const struct mv_vm *vm, int changes)
{
	return vm->in_notify || (changes && vm->in_track) ? -MV_EBUSY : 0;
}

/* Replace a page's flags, keeping the ones that do not describe its bytes
 * (tracking belongs to the MMU and survives any change of content). */
static inline void page_flags_reset(struct mv_page *p, unsigned flags)
{
	p->flags = (uint8_t)((p->flags & MV_PAGE_F_TRACKED) | flags);
}

/* Host address of a page through the mapping cache when the VM has one. */
static inline uint8_t *vm_page_ptr(struct mv_vm *vm, mv_page_id id)
{
	if (vm->map.max)
		return mapcache_ptr(vm, id);
	return mv_host_page_ptr(vm->host, id);
}

#endif
