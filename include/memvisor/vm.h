/* memvisor guest-physical memory: one address space per VM (the seeds'
 * PGMPhys).
 *
 * A VM is a set of page-aligned, non-overlapping ranges of guest-physical
 * addresses: RAM (backed on demand by host pages), ROM (filled at creation,
 * writes ignored) and MMIO (every access goes to the range's callbacks).
 * Each guest page has a 16-byte descriptor (struct mv_page) holding the
 * host page id that backs it, its state, its type, its physical-handler
 * state and tracking flags.
 *
 * Page states (RAM pages; ROM pages are always ALLOCATED, MMIO pages have
 * no backing and stay ZERO):
 *   ZERO             backed by the host zero page; reads never allocate;
 *                    the first write allocates a private page.
 *   ALLOCATED        a private page of this VM.
 *   SHARED           a shared host page; a write copies it first.
 *   WRITE_MONITORED  private, but the next write clears the monitor and is
 *                    recorded (flag + counters) before it goes through.
 *   BALLOONED        given back to the host; reads see zeros; a write
 *                    follows the VM's balloon policy.
 *
 * Locking: one recursive lock per VM guards every descriptor, the ranges'
 * contents, the handlers and the handy pages. Every function below takes
 * it; callers may hold it too (mv_vm_lock) to read descriptors or to keep
 * a pointer from mv_vm_gpa_to_hva stable. Lock order: VM before host; two
 * VMs are locked in address order. Unless said otherwise a function may be
 * called from any thread, at any time between mv_vm_create and
 * mv_vm_destroy.
 *
 * Callbacks run with the VM lock held, on the thread whose call caused
 * them. MMIO callbacks, physical handlers and requests may call back into
 * the same VM's functions (the lock is recursive), layout changes
 * (mv_vm_range_add/remove) included. The two hooks may not:
 *   - the notify hook runs in the middle of a change (the descriptors then
 *     describe either the old backing or the new one, fully). From inside
 *     it every call of this VM that reads or changes guest memory, page
 *     states, handlers, the balloon or the request queue returns
 *     -MV_EBUSY and changes nothing; so does the pool's mover for this
 *     VM's pages (mv_host_move_page gives -MV_EBUSY).
 *   - the track hook runs between two page pieces of a write: reads
 *     (mv_vm_phys_read, mv_vm_gpa_to_hva with MV_VM_HVA_READ) work, every
 *     call that would change something returns -MV_EBUSY.
 * From either hook these work: mv_vm_page, mv_vm_track_write,
 * mv_vm_page_tracked, mv_vm_get_stats, the balloon target, request_post,
 * mv_vm_lock/unlock, the hook setters and any call on another VM.
 * mv_vm_destroy must never be called from a callback.
 */
#ifndef MEMVISOR_VM_H
#define MEMVISOR_VM_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#include <memvisor/host.h>

struct mv_vm;

/* ---- page descriptors --------------------------------------------------- */

enum mv_page_state {
	MV_PAGE_ZERO,
	MV_PAGE_ALLOCATED,
	MV_PAGE_SHARED,
	MV_PAGE_WRITE_MONITORED,
	MV_PAGE_BALLOONED,
	MV_PAGE_STATES
};

enum mv_page_type {
	MV_PAGE_RAM,
	MV_PAGE_ROM,
	MV_PAGE_MMIO,
};

/* Physical-handler state of a page: the strongest claim on it. */
enum mv_handler_state {
	MV_HSTATE_NONE,      /* no handler */
	MV_HSTATE_DISABLED,  /* a handler, temporarily off for this page */
	MV_HSTATE_WRITE,     /* writes go to a handler */
	MV_HSTATE_ALL,       /* reads and writes go to a handler */
};

enum mv_page_flag {
	MV_PAGE_F_WRITTEN = 1u << 0,     /* written since it got private */
	MV_PAGE_F_MONITOR_HIT = 1u << 1, /* a write cleared the monitor */
	MV_PAGE_F_DIRTY = 1u << 2,       /* written since last dirty harvest */
	/* BALLOONED page still counted as ballooned by the host account
	 * (it had a private page when it was inflated). */
	MV_PAGE_F_BALLOON_HOST = 1u << 3,
	/* Writes are tracked (mv_vm_track_write): no direct write pointer,
	 * every write reaches the track hook. Kept by reset, balloon,
	 * sharing and populate: it belongs to the MMU, not to the bytes. */
	MV_PAGE_F_TRACKED = 1u << 4,
};

/* 16 bytes per guest page. rmap belongs to the MMU layer: the head of the
 * page's reverse map (gfn -> shadow PTEs), 0 = empty; phys/ never reads it
 * and only zeroes it at creation. An all-zero descriptor is an untouched
 * RAM page (ZERO, host id NIL): descriptor arrays are not written at
 * creation, and the kernel gives them memory only where a descriptor is
 * written, so untouched guest RAM costs (close to) nothing. */
struct mv_page {
	mv_page_id host_id;     /* private or shared page; NIL when ZERO
				 * (mv_page_host_id gives MV_ZERO_PAGE),
				 * ballooned or MMIO */
	uint32_t rmap;          /* MMU reverse-map head (reserved for mmu/) */
	uint8_t state;          /* enum mv_page_state */
	uint8_t type;           /* enum mv_page_type */
	uint8_t hstate;         /* enum mv_handler_state */
	uint8_t flags;          /* enum mv_page_flag */
	uint16_t monitor_hits;  /* monitored writes, saturating */
	uint16_t reserved;      /* zero */
};
static_assert(sizeof(struct mv_page) == 16, "page descriptor is 16 bytes");

/* The backing page; MV_ZERO_PAGE for a ZERO RAM page, whose descriptor
 * holds NIL (an all-zero descriptor is an untouched RAM page). */
static inline mv_page_id mv_page_host_id(const struct mv_page *p)
{
	if (p->host_id == MV_NIL_PAGE && p->state == MV_PAGE_ZERO &&
	    p->type == MV_PAGE_RAM)
		return MV_ZERO_PAGE;
	return p->host_id;
}
static inline enum mv_page_state mv_page_state(const struct mv_page *p)
{
	return (enum mv_page_state)p->state;
}
static inline enum mv_page_type mv_page_type(const struct mv_page *p)
{
	return (enum mv_page_type)p->type;
}
static inline enum mv_handler_state mv_page_hstate(const struct mv_page *p)
{
	return (enum mv_handler_state)p->hstate;
}
static inline unsigned mv_page_flags(const struct mv_page *p)
{
	return p->flags;
}
static inline uint16_t mv_page_monitor_hits(const struct mv_page *p)
{
	return p->monitor_hits;
}
static inline uint32_t mv_page_rmap(const struct mv_page *p)
{
	return p->rmap;
}
static inline void mv_page_set_rmap(struct mv_page *p, uint32_t head)
{
	p->rmap = head;
}

/* A static string for @s ("invalid" outside the enum). Any thread. */
const char *mv_page_state_name(enum mv_page_state s);

/* The descriptor of @gfn, or NULL outside every range. Any thread. The
 * pointer stays valid until the range holding it is removed (the notify
 * hook hears MV_NOTIFY_REMOVED first) or the VM is destroyed: descriptor
 * arrays never move. Read the descriptor under mv_vm_lock. */
struct mv_page *mv_vm_page(struct mv_vm *vm, uint64_t gfn);

/* ---- creation ------------------------------------------------------------ */

/* MMIO callbacks: @off is relative to the range start; @len never crosses a
 * page. Return 0 or a negative code (passed to the caller of the access). */
typedef int (*mv_mmio_read_fn)(void *opaque, uint64_t off, void *buf,
			       size_t len);
typedef int (*mv_mmio_write_fn)(void *opaque, uint64_t off, const void *buf,
				size_t len);

struct mv_vm_range {
	enum mv_page_type type;
	uint64_t gpa, size;           /* page aligned, size > 0 */
	const char *name;             /* copied */
	const void *rom_data;         /* ROM: content, rest reads as zeros */
	size_t rom_size;              /* <= size */
	mv_mmio_read_fn read;         /* MMIO: NULL reads all-ones */
	mv_mmio_write_fn write;       /* MMIO: NULL drops writes */
	void *opaque;
};

/* What a write to a BALLOONED page does. */
enum mv_balloon_policy {
	/* Take the page back from the balloon (one deflate, counted in the
	 * stats) and allocate it: a guest that forgot it ballooned a page
	 * keeps running. */
	MV_BALLOON_WRITE_DEFLATE,
	/* Refuse: the access returns -MV_ESTATE and nothing changes. */
	MV_BALLOON_WRITE_ERROR,
};

struct mv_vm_config {
	const struct mv_vm_range *ranges;
	uint32_t nranges;
	uint64_t shadow_pages;        /* MMU reservation (host account) */
	/* Handy pages: refilled to @handy_high when fewer than @handy_low
	 * are left; 0/0 picks 16/64. -MV_EINVAL for @handy_low without
	 * @handy_high, @handy_low > @handy_high, or @handy_high over
	 * MV_VM_HANDY_MAX. A cache never holds more pages than the VM has
	 * RAM pages without a private page. When an allocation meets the
	 * host budget (over-commitment), the handy caches of the pool's
	 * other VMs are emptied and it is tried once more (VMs whose lock is
	 * held at that moment are skipped). */
	uint32_t handy_low, handy_high;
	enum mv_balloon_policy balloon_policy;
	/* 0: host pointers come straight from mv_host_page_ptr. Otherwise
	 * the VM maps chunks itself (mmap of the chunk's memfd) and keeps at
	 * most this many mapped, unmapping the least recently used; at least
	 * 2 (-MV_EINVAL for 1), since a copy-on-write or a share compares or
	 * copies two pages at once. */
	uint32_t map_chunks_max;
};

/* The largest handy_high (16 MiB of cached pages). */
#define MV_VM_HANDY_MAX 4096

/* At most this many ranges per VM (creation and mv_vm_range_add). */
#define MV_VM_MAX_RANGES 1024

/* Create a VM on @host: opens its account (base = RAM pages + handy_high,
 * fixed = ROM pages, shadow = shadow_pages) and fills the ROM. Ranges may
 * come in any order; overlapping ranges give -MV_EEXIST, bad alignment or
 * sizes -MV_EINVAL, a range over the 52-bit physical address limit
 * -MV_ERANGE, more than MV_VM_MAX_RANGES -MV_ELIMIT; NULL arguments and
 * bad settings -MV_EINVAL; -MV_ENOMEM; the pool's refusals of the account
 * or the ROM pages (-MV_EBUDGET, -MV_ERESERVATION, -MV_ELIMIT). On error
 * nothing is left behind and *@out is unchanged. Any thread. */
int mv_vm_create(struct mv_host *host, const struct mv_vm_config *cfg,
		 struct mv_vm **out);
/* Run the queued requests, drop every page (shared references first) and
 * close the account. The notify hook is not called: every user of the
 * VM's pointers (vCPUs, the MMU) must be gone. No other thread may use
 * @vm during or after the call; never from a callback. NULL does nothing. */
void mv_vm_destroy(struct mv_vm *vm);
/* The VM's account in the pool (0 for NULL) and its pool (NULL for NULL).
 * Any thread, no lock. */
mv_vmid mv_vm_id(const struct mv_vm *vm);
struct mv_host *mv_vm_host(const struct mv_vm *vm);

/* The VM's recursive lock (see the top of this file). A NULL VM does
 * nothing. Unlock only what this thread locked. */
void mv_vm_lock(struct mv_vm *vm);
void mv_vm_unlock(struct mv_vm *vm);

/* ---- layout changes at run time ------------------------------------------ */

/* Add a range to a running VM (as a KVM memslot): checked like a range of
 * mv_vm_create, then the account grows (RAM pages to base, ROM pages to
 * fixed) before anything is allocated, and a ROM is filled. Errors, each
 * with no change at all: -MV_EINVAL (NULL, misaligned, size 0, bad type or
 * ROM data), -MV_ERANGE (over the 52-bit limit), -MV_EEXIST (overlaps a
 * range), -MV_ELIMIT (MV_VM_MAX_RANGES reached), -MV_EBUDGET (the bigger
 * reservation does not fit the budget under MV_OVERCOMMIT_NONE),
 * -MV_ENOMEM, -MV_EBUSY (called from the notify or track hook). Any
 * thread; takes the VM lock; bumps mv_vm_layout_gen. Nothing is notified:
 * no page of a new range was mapped before. */
int mv_vm_range_add(struct mv_vm *vm, const struct mv_vm_range *range);
/* Remove the range that starts at @gpa: the notify hook hears
 * MV_NOTIFY_REMOVED for all its pages first, then its private pages are
 * freed, its shared references dropped, its balloon charge returned, its
 * descriptors freed (pointers from mv_vm_page and mv_vm_gpa_to_hva into
 * it die), the account shrinks and the balloon target is cut to the RAM
 * left. Refused with no change: -MV_EINVAL (NULL VM, @gpa not page
 * aligned), -MV_ENOENT (no range starts at @gpa), -MV_EBUSY (a physical
 * handler claims a page of it: deregister it first; or called from a
 * hook). An error from the pool after the notification (an
 * inconsistent pool only) is returned, and the range is removed anyway.
 * Any thread; takes the VM lock; bumps mv_vm_layout_gen. An access in
 * progress whose callback removes a range it still had to cover ends
 * with -MV_ERANGE. */
int mv_vm_range_remove(struct mv_vm *vm, uint64_t gpa);

/* The layout generation: starts at 0 and grows by at least one on every
 * range add and remove and every handler register, deregister, page
 * disable and enable that changes a page's handler state. It is bumped
 * under the VM lock once the change is in place, before the call returns
 * (and before MV_NOTIFY_HANDLER is sent; after MV_NOTIFY_REMOVED). Any
 * thread may read it without the VM lock (an atomic load with acquire
 * ordering): the MMU stores its low bits in MMIO shadow PTEs and treats a
 * PTE whose bits differ as stale. 0 for a NULL VM. */
uint64_t mv_vm_layout_gen(const struct mv_vm *vm);

/* ---- guest-physical access ----------------------------------------------- */

/* Read @len bytes at @gpa into @buf (any length, any alignment, across
 * pages and ranges; @len 0 does nothing). Each page piece goes to the
 * page's ALL handler, its MMIO callback or its memory (ZERO and BALLOONED
 * pages read zeros). Reads change no page state. @buf may lie in guest
 * memory. Errors:
 *   -MV_EINVAL   NULL @vm, or NULL @buf with @len > 0;
 *   -MV_ERANGE   a byte outside every range (or over the 52-bit limit):
 *                checked for the whole span first, nothing is read;
 *   -MV_EBUSY    called from the notify hook;
 *   a handler's or MMIO callback's negative code: the read stops at that
 *                piece (@buf holds the pieces before it);
 *   -MV_EINTERNAL no host address for a backing page (a broken pool).
 * On error @buf's content is undefined. Any thread; takes the VM lock. */
int mv_vm_phys_read(struct mv_vm *vm, uint64_t gpa, void *buf, size_t len);
/* Write @len bytes from @buf at @gpa. Each piece goes to the page's WRITE
 * or ALL handler (which may let it through, MV_HANDLER_DEFAULT), its MMIO
 * callback, or its memory: writes to ROM and to MMIO without a write
 * callback are dropped; a RAM page is made private first (a ZERO page
 * gets a page, a SHARED one is copied, a WRITE_MONITORED one records the
 * hit, a BALLOONED one follows the balloon policy; the notify hook hears
 * MV_NOTIFY_BACKING), marked WRITTEN and DIRTY, and a tracked page's bytes
 * go to the track hook. All or nothing for allocation: before the first
 * byte, every page the write must make private gets its host page, so
 *   -MV_EBUDGET, -MV_ERESERVATION, -MV_ENOMEM   (no page to be had) and
 *   -MV_ESTATE   (a BALLOONED page without a write handler under
 *                MV_BALLOON_WRITE_ERROR)
 * leave every byte and page state as it was (the handy cache may have
 * been refilled). Other errors:
 *   -MV_EINVAL, -MV_ERANGE   as for mv_vm_phys_read, nothing written;
 *   -MV_EBUSY    called from the notify or the track hook, nothing written;
 *   a handler's or MMIO callback's negative code, or -MV_ESTATE when a
 *                handler lets a write to a BALLOONED page through under
 *                the error policy: the write stops at that piece, the
 *                pieces before it are written;
 *   -MV_EINTERNAL a broken pool.
 * @buf may lie in guest memory, this VM's included (a pointer from
 * mv_vm_gpa_to_hva, overlapping the destination or not): the bytes
 * written are those @buf held when the call began. Any thread; takes the
 * VM lock. */
int mv_vm_phys_write(struct mv_vm *vm, uint64_t gpa, const void *buf,
		     size_t len);

/* Returned by mv_vm_gpa_to_hva (positive) when the access must take the
 * slow path (mv_vm_phys_read/write): a handler or MMIO must see it, it is
 * a write to ROM, or a write to a write-tracked page. */
#define MV_VM_SLOW_PATH 1

/* Values of mv_vm_gpa_to_hva's @write. */
#define MV_VM_HVA_READ 0
#define MV_VM_HVA_WRITE 1
/* A write that ignores write tracking (the pointer is writable even on a
 * tracked page, and the track hook is not called): for the MMU's own
 * in-place updates of guest page tables (A/D bits), which it knows of.
 * Handlers, MMIO and ROM still send it to the slow path. */
#define MV_VM_HVA_WRITE_UNTRACKED 2

/* Host pointer for the byte at @gpa, for an access that may go straight to
 * memory (@write: MV_VM_HVA_READ, _WRITE or _WRITE_UNTRACKED). For a
 * write the page is made private first (ZERO, SHARED, BALLOONED and
 * WRITE_MONITORED pages change state as for mv_vm_phys_write); for a read
 * a ZERO/BALLOONED page yields the zero page and a SHARED page the shared
 * copy, both read-only memory. Returns 0 and sets *@ptr, or (with *@ptr
 * unchanged):
 *   MV_VM_SLOW_PATH (positive)  use mv_vm_phys_read/write instead: MMIO,
 *                an ALL handler, or for a write ROM, a WRITE handler or a
 *                tracked page (MV_VM_HVA_WRITE); nothing changed;
 *   -MV_EINVAL   NULL @vm or @ptr, @write not one of the three;
 *   -MV_ERANGE   @gpa outside every range;
 *   -MV_EBUSY    from the notify hook (a write also from the track hook);
 *   -MV_EBUDGET, -MV_ERESERVATION, -MV_ENOMEM  a write found no page;
 *   -MV_ESTATE   a write to a BALLOONED page under MV_BALLOON_WRITE_ERROR;
 *   -MV_EINTERNAL a broken pool;
 * each error with the page unchanged.
 *
 * Lifetime. The pointer addresses the host page backing @gpa when the call
 * returns and covers the rest of that page only. It may be used until the
 * first of:
 *   - the notify hook is called for a range containing the page, for any
 *     reason (MV_NOTIFY_MONITOR and MV_NOTIFY_TRACK end only the right to
 *     write through it; MV_NOTIFY_UNMAP, count UINT64_MAX, ends every
 *     pointer of the VM). The holder must have stopped using it when the
 *     hook returns;
 *   - for a caller that installs no notify hook: its next call on this VM,
 *     or the release of the VM lock it took before this call;
 *   - mv_vm_destroy.
 * In return phys never frees, reuses, unmaps, moves, merges or compares
 * the page before the hook has returned: the balloon, reset, populate,
 * range removal and a copy-on-write notify before they let the page go,
 * the mover before it copies, sharing before it compares the bytes, the
 * mapping cache before it unmaps. Stores through a write pointer are seen
 * by no one after the call: the write monitor, the dirty flags and write
 * tracking see the call itself only (a tracked page gives write pointers
 * only to MV_VM_HVA_WRITE_UNTRACKED). Any thread; takes the VM lock. */
int mv_vm_gpa_to_hva(struct mv_vm *vm, uint64_t gpa, int write, void **ptr);
/* The same for a caller that already holds mv_vm_lock (the MMU, which keeps
 * it across a page-table walk): no second lock round-trip. Calling it
 * without the lock is a bug (nothing protects the descriptor). */
int mv_vm_gpa_to_hva_locked(struct mv_vm *vm, uint64_t gpa, int write,
			    void **ptr);

/* Restore: the @count pages from @gfn take the content of @data (count *
 * MV_PAGE_SIZE bytes). A page whose data is all zeros becomes ZERO,
 * whatever backed it; other pages become ALLOCATED without being zeroed
 * first: a private page is overwritten in place, anything else (zero,
 * shared, ballooned) gets a new page. So host pages are allocated only for
 * pages holding data. Handlers are not called (a restore is no guest
 * access); the notify hook hears MV_NOTIFY_BACKING for the whole run
 * first, the track hook every tracked page after its bytes are in place.
 * @data may be guest memory, the populated frames' own included (it is
 * then copied aside first). Errors:
 *   -MV_EINVAL   NULL @vm or @data, @count 0;
 *   -MV_ERANGE   a frame outside every range (checked first: no change);
 *   -MV_ESTATE   a frame that is not RAM (checked first: no change);
 *   -MV_EBUSY    called from a hook (no change);
 *   -MV_ERESERVATION, -MV_EBUDGET, -MV_ENOMEM: pages go in batches of
 *                256, each all or nothing; the batches before the failing
 *                one are populated, the rest is unchanged;
 *   -MV_EINTERNAL a broken pool.
 * Any thread; takes the VM lock. */
int mv_vm_phys_populate(struct mv_vm *vm, uint64_t gfn, uint32_t count,
			const void *data);
/* Power-on state: every RAM page back to ZERO (private pages freed, shared
 * references dropped, balloon emptied); flags cleared except DIRTY (the
 * bytes changed) and TRACKED (the MMU's). The notify hook hears
 * MV_NOTIFY_RESET for each RAM range before its pages go. ROM keeps its
 * content; handlers stay registered. -MV_EINVAL (NULL), -MV_EBUSY (from a
 * hook; no change), or a pool error (a broken pool only: pages may then
 * be left as they were). Any thread; takes the VM lock. */
int mv_vm_reset(struct mv_vm *vm);

/* ---- physical access handlers --------------------------------------------- */

enum mv_handler_kind {
	MV_HANDLER_WRITE,   /* writes are seen, reads go to memory */
	MV_HANDLER_ALL,     /* reads and writes are seen */
	MV_HANDLER_MMIO,    /* like ALL, and can never be disabled per page */
};

enum mv_access {
	MV_ACCESS_READ,
	MV_ACCESS_WRITE,
};

/* Handler return values (or a negative error for the access). */
#define MV_HANDLER_DONE 0      /* handled (reads: @buf was filled) */
#define MV_HANDLER_DEFAULT 1   /* do the access as if there were no handler */

/* @len never crosses a page. For a write @buf holds the data (a copy the
 * handler may change before answering MV_HANDLER_DEFAULT). Runs under the
 * VM lock on the accessing thread; may call this VM's functions. */
typedef int (*mv_phys_handler_fn)(void *opaque, struct mv_vm *vm,
				  uint64_t gpa, void *buf, size_t len,
				  enum mv_access access);

/* Register a handler on the pages covering [gpa, gpa + size); the notify
 * hook hears MV_NOTIFY_HANDLER for them. Errors, each with no change:
 * -MV_EINVAL (NULL @vm or @fn, @size 0, bad @kind), -MV_ERANGE (a page
 * outside every range), -MV_EEXIST (a page claimed by another handler),
 * -MV_ENOMEM, -MV_EBUSY (from a hook). Any thread; takes the VM lock. */
int mv_vm_handler_register(struct mv_vm *vm, enum mv_handler_kind kind,
			   uint64_t gpa, uint64_t size, mv_phys_handler_fn fn,
			   void *opaque);
/* Remove the handler containing @gpa; its pages go back to NONE (notify
 * MV_NOTIFY_HANDLER). -MV_EINVAL (NULL), -MV_ENOENT (no handler there),
 * -MV_EBUSY (from a hook), each with no change. Any thread. */
int mv_vm_handler_deregister(struct mv_vm *vm, uint64_t gpa);
/* Turn the handler off for the single page containing @gpa (DISABLED: the
 * MMU may map it directly) or back on; a change notifies
 * MV_NOTIFY_HANDLER. -MV_EINVAL (NULL), -MV_ENOENT without a handler,
 * -MV_ESTATE for an MMIO handler, -MV_EBUSY from a hook; each with no
 * change. Any thread. */
int mv_vm_handler_page_disable(struct mv_vm *vm, uint64_t gpa);
int mv_vm_handler_page_enable(struct mv_vm *vm, uint64_t gpa);

/* ---- MMU notification ------------------------------------------------------ */

enum mv_notify_reason {
	MV_NOTIFY_BACKING,   /* another host page now backs it: drop maps */
	MV_NOTIFY_HANDLER,   /* handler state changed: drop maps */
	MV_NOTIFY_SHARED,    /* merged into a shared or the zero page: drop */
	MV_NOTIFY_MONITOR,   /* write monitor armed: write-protect */
	MV_NOTIFY_BALLOON,   /* given back to the host: drop maps */
	MV_NOTIFY_MOVED,     /* moved to another host page: drop maps */
	MV_NOTIFY_RESET,     /* reset to ZERO: drop maps */
	MV_NOTIFY_UNMAP,     /* a mapped chunk goes away: drop everything
			      * (and do not access guest memory from this
			      * call: the mapping cache is being changed) */
	MV_NOTIFY_TRACK,     /* write tracking turned on: write-protect */
	MV_NOTIFY_REMOVED,   /* the range is removed (mv_vm_range_remove):
			      * drop everything; the frames stop existing
			      * when the hook returns */
	MV_NOTIFY_REASONS
};

/* Pages [gfn, gfn + count) change; count UINT64_MAX means every page.
 * Called under the VM lock, on the thread making the change, before the
 * change can be seen through an old pointer: before the host page that
 * backed them is freed, reused, unmapped or copied away, and before any
 * compare-then-act (sharing notifies before it compares the bytes). When
 * the hook returns, its owner must no longer reach the pages through
 * pointers it had (see mv_vm_gpa_to_hva). The descriptors are consistent
 * during the call (old backing or new, fully); what the hook may call is
 * listed at the top of this file. A notification may be spurious (a
 * share whose bytes then differ). */
typedef void (*mv_vm_notify_fn)(void *opaque, struct mv_vm *vm, uint64_t gfn,
				uint64_t count, enum mv_notify_reason why);
/* Install (or with @fn NULL remove) the notify hook. NULL @vm does
 * nothing. Any thread; takes the VM lock. */
void mv_vm_set_notify(struct mv_vm *vm, mv_vm_notify_fn fn, void *opaque);

/* ---- tracking -------------------------------------------------------------- */

/* Arm the write monitor on the ALLOCATED RAM pages of [gfn, gfn + count)
 * (then WRITE_MONITORED; notify MV_NOTIFY_MONITOR); other pages are left
 * alone. @armed (may be NULL) receives how many (0 on error). Errors, with
 * no change: -MV_EINVAL (NULL @vm), -MV_ERANGE (@count 0, a frame outside
 * every range, a run that wraps), -MV_EBUSY (from a hook). Any thread. */
int mv_vm_write_monitor(struct mv_vm *vm, uint64_t gfn, uint64_t count,
			uint64_t *armed);
/* Harvest the dirty flags of [gfn, gfn + count) into @bitmap (bit i = page
 * gfn + i; (count + 63) / 64 words, every word written) and clear them.
 * Errors, with flags and @bitmap unchanged: -MV_EINVAL (NULL @vm or
 * @bitmap), -MV_ERANGE (as for mv_vm_write_monitor), -MV_EBUSY (from a
 * hook). Any thread. */
int mv_vm_dirty_collect(struct mv_vm *vm, uint64_t gfn, uint64_t count,
			uint64_t *bitmap);

/* Write tracking of single pages (the MMU's guest page-table pages, as
 * KVM's page_track): while @gfn is tracked, mv_vm_gpa_to_hva(write=
 * MV_VM_HVA_WRITE) answers MV_VM_SLOW_PATH for it (reads still get a
 * pointer), so every write goes through a path that calls the track hook.
 * @on is 0 or 1 (-MV_EINVAL otherwise, or for a NULL VM); @gfn must be a
 * RAM page (-MV_ERANGE otherwise, the page unchanged). Not counted: the
 * MMU keeps its own count and calls this on 0 <-> 1 transitions; setting
 * the current value again does nothing. Turning tracking on revokes write
 * access first: the notify hook gets (gfn, 1, MV_NOTIFY_TRACK) before the
 * call returns, with the flag already set. The flag survives reset,
 * balloon, sharing and populate. Any thread (takes the VM lock). */
int mv_vm_track_write(struct mv_vm *vm, uint64_t gfn, int on);
/* 1 when @gfn is tracked, 0 when not (or not a RAM page), -MV_EINVAL for a
 * NULL VM. Any thread, hooks included. */
int mv_vm_page_tracked(struct mv_vm *vm, uint64_t gfn);

/* Called under the VM lock AFTER the bytes of a write that touched a
 * tracked page are in memory, once per page piece: [@gpa, @gpa + @len)
 * lies inside one page and @bytes (valid during the call only) are the
 * bytes now there. Callers: mv_vm_phys_write (also a handler's
 * MV_HANDLER_DEFAULT write) and mv_vm_phys_populate (one call per page).
 * Paths that change the page's backing (reset, balloon, sharing,
 * copy-on-write, moving) notify instead and do not call it; neither does
 * a write through a MV_VM_HVA_WRITE_UNTRACKED pointer. The hook may read
 * guest memory and change tracking, nothing else of this VM (see the top
 * of this file). */
typedef void (*mv_vm_track_fn)(void *opaque, struct mv_vm *vm, uint64_t gpa,
			       const void *bytes, size_t len);
/* Install (or with @fn NULL remove) the track hook. Any thread. */
void mv_vm_set_track_hook(struct mv_vm *vm, mv_vm_track_fn fn, void *opaque);

/* ---- over-commitment --------------------------------------------------------- */

/* Make @gfn_a of @a and @gfn_b of @b (possibly the same VM) share one host
 * page; all-zero content makes both ZERO instead. Private pages are
 * freed. Both pages are notified (MV_NOTIFY_SHARED) before the bytes are
 * compared, so no store through a cached pointer is lost. Errors, with
 * both pages unchanged (but notified when the check of the frames
 * passed): -MV_EINVAL (NULL, VMs on different pools, the same page twice),
 * -MV_ERANGE (a frame outside every range), -MV_ESTATE (not RAM,
 * BALLOONED, or the bytes differ), -MV_EBUSY (from a hook of either VM),
 * -MV_EBUDGET, -MV_ENOMEM (no shared page to be had). Any thread; locks
 * both VMs in address order. */
int mv_vm_share_pages(struct mv_vm *a, uint64_t gfn_a, struct mv_vm *b,
		      uint64_t gfn_b);

/* The guest's balloon driver gives back (inflate) or takes back (deflate)
 * frames. The list is checked as a whole first. Inflate: every frame must
 * be a RAM page not yet ballooned; each is notified (MV_NOTIFY_BALLOON)
 * before any page goes back to the pool; they become BALLOONED. Deflate:
 * every frame must be BALLOONED; they become ZERO. Errors, with no change:
 * -MV_EINVAL (NULL, @count 0, a frame listed twice), -MV_ERANGE (a frame
 * outside every range), -MV_ESTATE (not RAM, or in the wrong state),
 * -MV_ENOMEM, -MV_EBUSY (from a hook). Any thread. */
int mv_vm_balloon_inflate(struct mv_vm *vm, const uint64_t *gfns,
			  uint32_t count);
int mv_vm_balloon_deflate(struct mv_vm *vm, const uint64_t *gfns,
			  uint32_t count);
/* The host's wish, in pages, read by the guest driver; at most the VM's
 * RAM pages (-MV_ERANGE, no change), -MV_EINVAL for NULL. A NULL VM reads
 * 0. Any thread, hooks included. */
int mv_vm_balloon_set_target(struct mv_vm *vm, uint64_t pages);
uint64_t mv_vm_balloon_get_target(struct mv_vm *vm);

/* ---- requests from other threads ---------------------------------------- */

/* Runs under the VM lock on whichever thread processes the queue. */
typedef int (*mv_vm_request_fn)(struct mv_vm *vm, void *arg);
struct mv_vm_request;

/* Post a request (lock-free). With @out NULL it is fire-and-forget;
 * otherwise *out is a handle the caller must pass to mv_vm_request_wait.
 * -MV_EINVAL (NULL @vm or @fn), -MV_ENOMEM; nothing posted then. Any
 * thread, hooks included (the request runs later). */
int mv_vm_request_post(struct mv_vm *vm, mv_vm_request_fn fn, void *arg,
		       struct mv_vm_request **out);
/* Wait for a posted request, store its result in @result (may be NULL) and
 * free the handle. With @help the waiter processes the queue itself (under
 * the VM lock) instead of waiting for the VM's thread; without it, do not
 * hold the VM lock (the processor needs it). -MV_EINVAL (NULL, or a
 * fire-and-forget request), -MV_EBUSY from a hook (the wait could never
 * end; the handle stays valid). Any thread. */
int mv_vm_request_wait(struct mv_vm *vm, struct mv_vm_request *req, int help,
		       int *result);
/* Run every queued request in posting order, under the VM lock; @done
 * (may be NULL) receives how many ran. -MV_EINVAL (NULL), -MV_EBUSY from
 * a hook (nothing runs). Any thread. */
int mv_vm_process_requests(struct mv_vm *vm, uint32_t *done);

/* ---- statistics -------------------------------------------------------------- */

struct mv_vm_stats {
	uint64_t pages[MV_PAGE_STATES]; /* RAM pages per state */
	uint64_t ram_pages, rom_pages, mmio_pages;
	uint32_t handy;                 /* pages in the handy cache */
	uint64_t handy_refills;
	uint64_t handy_drained;         /* cached pages given back because
					 * another VM met the budget */
	uint64_t handy_drains;          /* times this VM's budget refusal
					 * emptied other VMs' caches */
	uint64_t first_touch;           /* ZERO -> ALLOCATED */
	uint64_t cow_breaks;            /* SHARED -> ALLOCATED */
	uint64_t monitor_hits;          /* WRITE_MONITORED -> ALLOCATED */
	uint64_t balloon_deflates_on_write;
	uint64_t moves;
	uint64_t requests_done;
	uint64_t handlers;
	uint64_t map_hits;              /* mapping cache: lookaside hits */
	uint64_t map_table_hits;        /* found in the full table */
	uint64_t map_misses;            /* chunk had to be mapped */
	uint64_t map_evictions;         /* least recently used unmapped */
	uint64_t map_fallbacks;         /* seeded chunk: mv_host_page_ptr */
	uint32_t mapped_chunks;
	/* Memory the VM's own structures hold: descriptor pages the kernel
	 * has mapped (mincore; a page only ever read counts though it maps
	 * the kernel's zero page), ranges, handlers, handy array, mapping
	 * cache. Untouched guest RAM adds nothing. */
	uint64_t metadata_bytes;
	/* Address space set aside for descriptors (16 bytes per page of
	 * every range, MAP_NORESERVE: costs no memory until written). */
	uint64_t descriptor_reserved_bytes;
};

/* A consistent copy of the counters (taken under the VM lock). -MV_EINVAL
 * for NULL arguments. Any thread, hooks included. */
int mv_vm_get_stats(struct mv_vm *vm, struct mv_vm_stats *st);

#endif
