/* Internals of the page-sharing scanner (src/share). */
#ifndef MV_SHARE_INTERNAL_H
#define MV_SHARE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <memvisor/share.h>

/* One registered VM. */
struct svm {
	struct mv_vm *vm;
	struct mv_share_vm_config cfg;
	struct mv_share_stats st;
	uint64_t cow_base;       /* mv_vm_stats.cow_breaks when added */
};

/* An index entry: a candidate (sharers 0: a cold private page seen this
 * round) or a shared page (sharers != 0; the pool counts its references:
 * mv_host_share_refs), reached through
 * the guest page @gfn of @vm that maps it. */
struct entry {
	uint64_t hash;
	uint64_t salt;
	struct mv_vm *group_vm;  /* NULL when sharing across VMs */
	struct mv_vm *vm;        /* NULL: a dead entry */
	uint64_t gfn;
	mv_page_id host_id;
	uint32_t sharers;
	uint32_t next;           /* chain; UINT32_MAX ends it */
};

struct sindex {
	struct entry *e;
	uint32_t n, cap;
	uint32_t *bucket;        /* nbuckets heads, UINT32_MAX = empty */
	uint32_t nbuckets;       /* power of two */
};

/* The background thread's pace (pace.c). */
struct pace {
	uint64_t rate;           /* pages per second, 0: no limit */
	uint32_t pct;            /* CPU share in percent, 0 or 100: none */
	uint64_t t0, pages;      /* rate: since t0, @pages looked at */
	uint64_t w0, c0;         /* share: window start, wall and CPU ns */
};

struct mv_share {
	struct mv_host *host;
	struct mv_share_config cfg;
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* pause, stop, rate, new VMs, unlocks */
	atomic_uint waiters;     /* callers blocked on @lock (lock.c) */
	/* Completion of the remap request in flight (remap.c): one at a
	 * time, under @lock. */
	pthread_mutex_t rq_lock;
	pthread_cond_t rq_done;
	pthread_t thread;
	int running, stopping, paused;

	struct svm *vms;
	uint32_t nvms, capvms;
	uint32_t cur_vm;         /* round cursor */
	uint64_t cur_off;        /* offset in the VM's span */
	/* Changes this round: pages armed (first seen or volatile), merged,
	 * moved between copies, copies indexed afresh. */
	uint64_t round_armed;
	uint64_t last_armed;     /* the same of the last round ended */

	struct sindex idx;
	struct mv_share_stats st;
};

/* lock.c: every call but the thread's own loop takes the lock with
 * share_lock; the thread calls share_yield between batches. */
void share_lock(struct mv_share *s);
void share_unlock(struct mv_share *s);
void share_yield(struct mv_share *s);

/* pace.c */
uint64_t pace_now_ns(void);
/* Start pacing afresh (also after a pause or a change of limits). */
void pace_reset(struct pace *p, uint64_t rate, uint32_t pct);
/* Account a batch of @pages: the monotonic time before which the next
 * batch may not start, or 0 when it may start now. */
uint64_t pace_after_batch(struct pace *p, uint32_t pages);

/* remap.c: run @fn(@vm, @arg) as a request of @vm (scanner lock held,
 * no VM lock): by the VM's own thread if it processes its queue within
 * @wait_us, else by the caller. *@result (may be NULL) gets @fn's return.
 * 0, or -MV_ENOMEM when nothing could be posted (nothing ran). */
int remap_call(struct mv_share *s, struct mv_vm *vm, uint32_t wait_us,
	       mv_vm_request_fn fn, void *arg, int *result);

/* index.c */
void sindex_free(struct sindex *ix);
/* Drop candidates and dead entries (at a round's start). -MV_ENOMEM. */
int sindex_new_round(struct sindex *ix);
/* Append @e; -MV_ENOMEM. */
int sindex_add(struct sindex *ix, const struct entry *e);
/* First entry index of @hash's chain (UINT32_MAX: none). */
uint32_t sindex_first(const struct sindex *ix, uint64_t hash);
/* Kill every entry reaching through @vm. */
void sindex_forget_vm(struct sindex *ix, struct mv_vm *vm);

/* scan.c: look at one page (scanner lock held). A pool error stops. */
int scan_page(struct mv_share *s, struct svm *v, uint64_t gfn);
/* Scan up to @max pages from the cursor, staying within one VM; *@round_end
 * set when the round ended. The batch's CPU time goes to that VM. */
int scan_batch(struct mv_share *s, uint32_t max, uint32_t *done,
	       int *round_end);

#endif
