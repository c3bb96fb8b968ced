/* The shadow MMU's structures (private to src/mmu/).
 *
 * One struct mv_mmu per VM, guarded by the VM lock (mv_vm_lock), except
 * where a field says otherwise. Shadow pages (struct sp) are found by
 * (guest table gfn, role); their tables are host pages from the shadow
 * pool. A vCPU reaches them without the lock through its root, under the
 * flush protocol (flush.c): nothing a vCPU may be reading is freed before
 * every INSIDE vCPU has acknowledged a flush requested after its unlink.
 */
#ifndef MV_MMU_SHADOW_H
#define MV_MMU_SHADOW_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <memvisor/dirty.h>
#include <memvisor/vcpu.h>
#include <memvisor/vhandler.h>

#include "mmu/paging.h"
#include "mmu/spte.h"

#define SPTES 512
#define ROOTS_CACHED 3   /* previous roots per vCPU, as KVM */
#define FLOOD_LIMIT 3    /* tracked writes without a walk: unshadow */

/* What a shadow page shadows, compared as one word (KVM's role). */
union sp_role {
	uint32_t word;
	struct {
		unsigned level : 3;     /* 1 = PT ... 5 = PML5 */
		unsigned mode : 3;      /* enum mv_paging_mode of the guest */
		unsigned quadrant : 2;  /* part of a 32-bit guest table */
		unsigned access : 3;    /* MV_PERM_* inherited from above */
		unsigned direct : 1;    /* no guest table: a large page or
					 * paging off, gfn = first frame */
		unsigned special : 1;   /* a 4-entry root of a 32-bit mode,
					 * private to one vCPU */
		unsigned nxe : 1;       /* EFER.NXE: bit 63 reserved or XD */
		unsigned pse : 1;       /* CR4.PSE (32-bit paging only) */
		/* Direct pages only: what their leaves carry besides the
		 * rights, so that two large guest pages on the same frames
		 * share a shadow only when their leaves are the same. */
		unsigned pkey : 4;      /* the guest leaf's protection key */
		unsigned global : 1;    /* guest G */
		unsigned dirty : 1;     /* guest D: writes may go straight
					 * through (a read-only page too,
					 * for a supervisor with WP=0) */
		unsigned pad : 11;
	};
};

struct sp {
	uint64_t gfn;
	union sp_role role;
	uint32_t idx;             /* in mmu->sps */
	mv_page_id host_id;
	uint64_t *spt;            /* the table: SPTES entries */
	uint64_t *gfns;           /* level 1, indirect: gfn of each leaf */
	struct sp *hash_next;
	struct sp *lru_prev, *lru_next;
	uint32_t *parents;        /* SPTE ids (sp idx << 9 | slot) */
	uint32_t nparents, parents_cap;
	uint32_t root_count;      /* vCPUs holding it as a root */
	uint32_t flood;           /* tracked writes since the last walk */
	uint64_t gen;             /* mmu->valid_gen when made */
	bool zapped;              /* unlinked, waiting for a flush to free */
	struct sp *zap_next;
};

/* A leaf's place: (sp idx << 9) | slot. */
typedef uint32_t spte_id;

static inline spte_id spte_id_make(const struct sp *sp, unsigned slot)
{
	return sp->idx << 9 | slot;
}

/* rmap node: a few leaf ids of one gfn, chained. */
#define RMAP_NODE_IDS 7
struct rmap_node {
	spte_id ids[RMAP_NODE_IDS];  /* 0 = free slot (id 0 is never a leaf) */
	uint32_t next;               /* node index + 1, 0 = end */
};

struct shadow_pool {
	mv_page_id *free;
	uint32_t n, min, max;
	uint64_t refills, returns;
};

enum vcpu_mode { VCPU_OUTSIDE, VCPU_INSIDE };

/* A logged guest-physical range: bit set = dirty. */
struct dirty_slot {
	uint64_t gfn, count;
	uint64_t *bits;
	bool used;
};

/* A vCPU's dirty ring: entries [reset, harvested) were harvested,
 * [harvested, pushed) wait; the counters only grow. */
struct dirty_ring {
	struct mv_dirty_entry *e;
	uint32_t size;
	uint32_t pushed, harvested, reset;
};

#define REQ_TLB_FLUSH (1u << 0)
#define REQ_RELOAD_ROOT (1u << 1)
#define REQ_VH_SYNC (1u << 2)

struct cached_root {
	struct sp *sp;
	uint64_t cr3;             /* the CR3 (table address and PCID) */
	uint64_t pdpte[4];        /* PAE roots: the registers it was built on */
};

/* A registered framebuffer (framebuffer.c). */
struct fb {
	bool used;
	bool logged;              /* backed off to dirty logging */
	uint32_t npages;
	uint64_t va;
	struct mv_vcpu *vcpu;
	uint64_t *gfns;           /* display order */
	uint64_t (*index)[2];     /* (gfn, page) sorted by gfn */
	uint64_t *pending;        /* leaves made or torn down */
	uint32_t runs[MV_DIRTY_SLOTS]; /* dirty-log slots while logged */
	uint32_t nruns;
};

/* Virtual handlers (vhandler.c). */
struct vh_page {
	uint64_t gfn;             /* cached translation, VH_NONE: unmapped */
	uint64_t tables[MV_WALK_MAX_LEVELS]; /* gfns of the tables it used */
	uint8_t ntables;
	bool stale;               /* a table it used was written */
};

#define VH_NONE UINT64_MAX

struct vhandler {
	bool used;
	uint8_t kind;             /* enum mv_vhandler_kind */
	uint64_t va, npages;
	mv_vhandler_fn fn;
	mv_vhandler_inval_fn inval;
	void *opaque;
	struct vh_page *pages;    /* ALL and WRITE */
};

/* Sparse bitmap of handled pages: 1 GiB regions. */
#define VH_REGION_SHIFT 30
#define VH_REGION_WORDS ((1u << (VH_REGION_SHIFT - MV_PAGE_SHIFT)) / 64)
#define VH_BUCKETS 64
struct vh_region {
	uint64_t region;
	uint32_t pages;           /* bits set */
	struct vh_region *next;
	uint64_t bits[VH_REGION_WORDS];
};

/* A guest frame under virtual handlers (the phys -> virt cache). */
struct vh_gfn {
	uint64_t gfn;
	uint32_t writes, alls;    /* handler pages mapping it, by kind */
	uint32_t tables;          /* handler pages whose walk reads it */
	uint32_t vcpu, handler;   /* one of them, for dispatch */
	struct vh_gfn *next;
};

struct mv_vcpu {
	struct mv_tlb tlb;        /* first: mv_vcpu_tlb */
	struct mv_mmu *mmu;
	struct mv_vm *vm;
	uint32_t id;
	struct mv_paging pg;      /* the walker's context for the registers */
	struct mv_gmem gm;        /* the walker's memory: vm_gm + dirty log */
	struct mv_gmem vm_gm;     /* the VM's memory (mv_gmem_vm_init) */
	/* The same two for callers holding the VM lock (the fault). */
	struct mv_gmem gm_locked, vm_gm_locked;
	struct dirty_ring ring;
	struct cpu_state {
		struct mv_cpu_regs regs;
	} cpu;
	struct cached_root root;  /* current */
	struct cached_root prev[ROOTS_CACHED];
	bool root_stale;          /* paging registers changed since root_load */
	bool tlb_large;           /* the TLB holds parts of large pages */
	bool tlb_global;          /* ... and global entries */
	/* Flush protocol (flush.c): written by other threads. */
	_Atomic uint32_t mode;
	_Atomic uint32_t req;
	_Atomic uint64_t ack_gen;
	pthread_t owner;          /* thread that last made it INSIDE (atomic
				   * accesses: removers read it) */
	struct mv_vcpu *tls_next; /* the owner's INSIDE vCPUs (flush.c) */
	struct mv_vcpu *park_next; /* ... made OUTSIDE by a VM lock */
	bool parked;              /* on the owner's parked list */
	uint8_t entry_flags[MV_TLB_CLASSES][MV_TLB_SIZE]; /* TLBF_* */
	uint64_t entry_gpa[MV_TLB_CLASSES][MV_TLB_SIZE];  /* page gpa */
	struct vhandler vh[MV_VHANDLER_MAX];
	uint32_t nvh;
	struct vh_region *vh_map[VH_BUCKETS];
	bool vh_sync;             /* stale pages wait for a sync */
	struct mv_vcpu_stats st;
};

#define TLBF_GLOBAL 1
#define TLBF_LARGE 2

struct mv_mmu {
	struct mv_vm *vm;
	struct mv_host *host;
	mv_vmid vmid;
	struct mv_cpu_model cpu;
	struct mv_vcpu *vcpus[MV_VCPU_MAX];
	uint32_t nvcpus;
	/* shadow pages */
	struct sp **sps;          /* index -> sp (NULL: free index) */
	uint32_t sps_len, sps_cap;
	uint32_t *free_idx;       /* free indices (stack) */
	uint32_t nfree_idx;
	struct sp **hash;         /* by gfn */
	uint32_t hash_mask;
	struct sp *lru_head, *lru_tail; /* oldest first */
	uint64_t in_use, cap;
	struct sp *zap_list;      /* unlinked, freed after the next flush */
	bool flush_pending;       /* SPTEs reduced since the last flush */
	uint64_t meta_bytes;      /* malloc'd per shadow page */
	_Atomic uint64_t valid_gen; /* read by vCPUs without the lock */
	uint64_t obsolete;        /* sps with gen != valid_gen */
	/* reverse map: heads live in the page descriptors (mv_page.rmap) */
	struct rmap_node *rnodes;
	uint32_t rnodes_len, rnodes_cap, rnode_free; /* free list: idx + 1 */
	struct shadow_pool pool;
	/* tracked guest page tables: count of indirect sps per gfn */
	uint64_t tracked;
	/* dirty logging (dirty_log.c) */
	struct dirty_slot slots[MV_DIRTY_SLOTS];
	uint32_t nslots;
	bool defer_commit;        /* notify: leave the shootdown to the caller */
	struct fb fbs[MV_FB_MAX];
	uint32_t nfb;
	struct vh_gfn *vh_gfns[VH_BUCKETS];
	uint32_t nvh_gfns;
	uint32_t nvh_total;       /* virtual handlers of every vCPU */
	/* MMIO generation */
	_Atomic uint64_t mmio_gen; /* layout generation last seen; SPTEs
				    * keep its low 19 bits */
	/* flush protocol */
	_Atomic uint64_t flush_gen;
	struct mv_mmu_stats st;
};

/* mmu.c */
struct mv_mmu *mmu_of(struct mv_vm *vm);
int mmu_get(struct mv_vm *vm, struct mv_mmu **out);

/* shadow_pool.c */
int pool_take(struct mv_mmu *m, mv_page_id *id, uint64_t **table);
void pool_give(struct mv_mmu *m, mv_page_id id);
int pool_ensure(struct mv_mmu *m, uint32_t need);
void pool_drain(struct mv_mmu *m);

/* shadow_page.c */
struct sp *sp_find(struct mv_mmu *m, uint64_t gfn, union sp_role role);
struct sp *sp_bucket(const struct mv_mmu *m, uint64_t gfn);
uint32_t sp_gfn_count(const struct mv_mmu *m, uint64_t gfn);
int sp_get(struct mv_mmu *m, uint64_t gfn, union sp_role role,
	   struct sp **out);
int sp_link(struct mv_mmu *m, struct sp *parent, unsigned slot,
	    struct sp *child);
void sp_zap_spte(struct mv_mmu *m, struct sp *sp, unsigned slot);
void sp_zap(struct mv_mmu *m, struct sp *sp);
void sp_commit_zap(struct mv_mmu *m);
void sp_free_unreachable(struct mv_mmu *m);
int sp_make_room(struct mv_mmu *m, uint32_t need);
void sp_zap_gfn(struct mv_mmu *m, uint64_t gfn);
bool sp_valid(const struct mv_mmu *m, const struct sp *sp);
void sp_root_put(struct mv_mmu *m, struct sp *sp);
struct sp *sp_of_link(const struct mv_mmu *m, uint64_t e);
uint64_t sp_leaf_gfn(const struct sp *sp, unsigned slot);
void sp_free_all(struct mv_mmu *m);

/* rmap.c */
int rmap_add(struct mv_mmu *m, uint64_t gfn, spte_id id);
void rmap_remove(struct mv_mmu *m, uint64_t gfn, spte_id id);
uint64_t *rmap_sptep(const struct mv_mmu *m, spte_id id);
uint64_t rmap_zap_gfn(struct mv_mmu *m, uint64_t gfn);
uint64_t rmap_write_protect_gfn(struct mv_mmu *m, uint64_t gfn);
uint32_t rmap_writable_count(struct mv_mmu *m, uint64_t gfn);
uint64_t rmap_take_dirty(struct mv_mmu *m, uint64_t gfn);
int rmap_reserve(struct mv_mmu *m, uint32_t nodes);

/* dirty_log.c */
bool dirty_log_clean(const struct mv_mmu *m, uint64_t gfn);
int dirty_log_mark(struct mv_mmu *m, uint64_t gfn, struct mv_vcpu *v);
void dirty_log_mark_range(struct mv_mmu *m, uint64_t gfn, uint64_t count);
void dirty_gmem_init(struct mv_vcpu *v);

/* gmem_vm.c: mv_gmem_vm_init's memory for a caller holding the VM lock. */
void gmem_vm_init_locked(struct mv_gmem *gm, struct mv_vm *vm);
void dirty_protect(struct mv_mmu *m, uint64_t gfn);
int dirty_slot_add(struct mv_mmu *m, uint64_t gfn, uint64_t count,
		   unsigned flags, uint32_t *slot);
void dirty_slot_remove(struct mv_mmu *m, uint32_t slot);
struct dirty_slot *dirty_span_slot(struct mv_mmu *m, uint64_t gfn,
				   uint64_t count);

/* vhandler.c */
enum { VH_STATE_NONE, VH_STATE_WRITE, VH_STATE_ALL };
unsigned vh_gfn_state(const struct mv_mmu *m, uint64_t gfn);
bool vh_table_used(const struct mv_mmu *m, uint64_t gfn);
bool vh_hyper(const struct mv_vcpu *v, uint64_t va);
void vh_fault_seen(struct mv_vcpu *v, uint64_t va, const struct mv_walk *w);
void vh_invlpg(struct mv_vcpu *v, uint64_t va);
void vh_sync_all(struct mv_vcpu *v);
void vh_sync_stale(struct mv_vcpu *v);
void vh_table_written(struct mv_mmu *m, uint64_t gfn);
int vh_dispatch(struct mv_vcpu *v, uint64_t va, uint64_t gpa, void *buf,
		size_t n, unsigned acc, bool *handled);
void vh_free(struct mv_vcpu *v);

/* framebuffer.c */
void fb_note(struct mv_mmu *m, uint64_t gfn);
void fb_free_all(struct mv_mmu *m);
uint64_t dirty_clean_pages(struct mv_mmu *m, struct dirty_slot *s,
			   uint64_t first, uint64_t count,
			   const uint64_t *mask);

/* track.c */
void track_update(struct mv_mmu *m, uint64_t gfn);
void track_sp_created(struct mv_mmu *m, struct sp *sp);
void track_sp_gone(struct mv_mmu *m, struct sp *sp);
void mmu_track_hook(void *opaque, struct mv_vm *vm, uint64_t gpa,
		    const void *bytes, size_t len);

/* notify.c */
void mmu_notify_hook(void *opaque, struct mv_vm *vm, uint64_t gfn,
		     uint64_t count, enum mv_notify_reason why);

/* flush.c */
void vcpu_enter(struct mv_vcpu *v);
void vcpu_leave(struct mv_vcpu *v);
void vcpu_check_requests(struct mv_vcpu *v);
void mmu_shootdown(struct mv_mmu *m, uint32_t req);
void tlb_flush_all(struct mv_vcpu *v);
void tlb_flush_nonglobal(struct mv_vcpu *v);
void tlb_flush_va(struct mv_vcpu *v, uint64_t va);

/* root.c */
int root_load(struct mv_vcpu *v);
void root_drop_all(struct mv_vcpu *v);
unsigned root_level(const struct mv_vcpu *v);
union sp_role root_role(const struct mv_vcpu *v);

/* fault.c */
struct shadow_leaf {
	uint64_t spte;
	uint64_t *sptep;
	const struct sp *sp;      /* the level-1 page holding it */
	int present;              /* 1 leaf, 2 MMIO, 0 miss */
};
void shadow_walk(const struct mv_vcpu *v, uint64_t va,
		 struct shadow_leaf *out);
int mmu_fault(struct mv_vcpu *v, uint64_t va, unsigned acc,
	      struct mv_xlate *x);

/* mmio.c, zap_all.c */
void mmio_sync(struct mv_mmu *m);
bool mmio_spte_current(const struct mv_mmu *m, uint64_t spte);
void zap_all_locked(struct mv_mmu *m);
uint32_t reclaim_obsolete(struct mv_mmu *m, uint32_t max);
bool root_current(const struct mv_vcpu *v);

/* tlb.c */
void tlb_fill(struct mv_vcpu *v, uint64_t va, uint64_t gpa, uint64_t spte,
	      uint64_t *sptep, unsigned acc);
bool leaf_allows(const struct mv_vcpu *v, uint64_t spte, unsigned acc);

#endif
