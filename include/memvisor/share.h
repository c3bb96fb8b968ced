/* memvisor page-sharing scanner: over-commitment by merging guest pages
 * with equal content (the seeds' "sharing a page", Linux KSM's job).
 *
 * One scanner per host pool. It walks the RAM pages of the VMs registered
 * with it, in rounds. A private page seen for the first time (or written
 * since it was last seen) gets the phys write monitor armed and is left
 * alone this round: only a page that stayed WRITE_MONITORED for a whole
 * round (cold) is hashed (XXH3-64). An all-zero cold page goes back to the
 * ZERO state and its host page to the pool. Any other cold page is looked
 * up in an index of hashes: a match of the same sharing group is merged by
 * mv_vm_share_pages, which notifies the MMU and compares the bytes under
 * both VM locks before it maps one shared host page into both; that call,
 * like the zero reclaim, is a request posted on the VM's queue and run by
 * the VM's own thread or the scanner (request_wait_us below); no match
 * makes the page a candidate for the rest of the round. A shared page gets
 * at most max_sharing sharers from the scanner; the next equal page starts
 * a second shared copy.
 *
 * Sharing across VMs is a side channel (a write to a shared page takes a
 * copy-on-write fault, whose timing tells the writer that another VM holds
 * the same bytes), so it is off by default: a VM shares only with itself
 * unless cross_vm is set, and then only with VMs of the same salt.
 *
 * Locking: one mutex per scanner guards its VM list, index and counters;
 * it is held while a batch of pages is scanned and taken before any VM
 * lock (lock order: scanner, then VMs in address order, then host). The
 * background thread hands it to waiting callers between batches, so a
 * call waits for at most the batch in flight (64 pages), or for a
 * running mv_share_scan to finish. Every function may be called from any
 * thread between mv_share_create and mv_share_destroy, except from a VM's
 * hooks or requests (they run under a VM lock, which would invert that
 * order). A vCPU thread calls mv_vcpu_exit before it calls in here: the
 * scanner may hold its lock while a merge waits for that vCPU's quiescent
 * point (vcpu.h). A VM's own thread may call in here too: a remap it was
 * to run is taken over by the scanner after request_wait_us.
 */
#ifndef MEMVISOR_SHARE_H
#define MEMVISOR_SHARE_H

#include <stdint.h>

#include <memvisor/host.h>
#include <memvisor/vm.h>

struct mv_share;

/* KSM's max_page_sharing default. */
#define MV_SHARE_MAX_SHARING_DEFAULT 256

struct mv_share_config {
	/* Sharers per shared page made by the scanner; 0 picks
	 * MV_SHARE_MAX_SHARING_DEFAULT, 1 is refused (-MV_EINVAL). */
	uint32_t max_sharing;
	/* 0 (default): pages are shared only within one VM. 1: also with
	 * other VMs of the same salt. Other values: -MV_EINVAL. */
	int cross_vm;
	/* Background thread's rate in pages per second (every RAM page
	 * looked at counts); 0 = no limit. */
	uint64_t rate_pages_per_s;
	/* Background thread's share of one CPU in percent, 1..100 (100 and
	 * 0: no limit; above 100: -MV_EINVAL). After each batch the thread
	 * sleeps until its CPU time (CLOCK_THREAD_CPUTIME_ID) since the
	 * start of a window is at most this share of the wall time since
	 * then; a window not in debt restarts after 200 ms, so time in which
	 * the thread got less (a busy host, a pause) is not made up later
	 * in a burst. Both limits apply: the later deadline wins. */
	uint32_t cpu_share_pct;
	/* 0 (default): the thread runs at SCHED_IDLE, on CPU time nobody
	 * else wants (it gets none while the guests keep every core busy).
	 * 1: at the creating process's default policy, competing with the
	 * guests' threads for CPU, bounded by cpu_share_pct (as ksmd runs
	 * at nice 5 with its sleep between batches). Other values:
	 * -MV_EINVAL. */
	int normal_priority;
};

struct mv_share_vm_config {
	/* The frames to scan, [gfn, gfn + count): frames outside every range
	 * and pages that are not RAM are skipped. count > 0. */
	uint64_t gfn, count;
	int opt_out;    /* 1: never scanned, never shared (0 or 1) */
	int zero_only;  /* 1: only all-zero pages are reclaimed (0 or 1) */
	uint64_t salt;  /* cross-VM sharing only between equal salts */
	/* Every remap (a merge, a zero page given back) is posted on a VM's
	 * request queue (mv_vm_request_post) and made by whichever thread
	 * processes it (under the VM lock; the MMU is notified and the bytes
	 * compared again there). 0 (default): the scanner processes the
	 * queue itself at once, for a VM without a thread of its own that
	 * calls mv_vm_process_requests. Otherwise the scanner first waits up
	 * to this many microseconds for the VM's thread (its EMT) to run it,
	 * then runs the queue itself: set it to about the longest the
	 * thread's loop goes between two mv_vm_process_requests. A merge of
	 * pages of two VMs is posted on the one that is locked first (lower
	 * address, vm.h); the other is locked inside the request. */
	uint32_t request_wait_us;
};

/* Counters since creation (host) or since the VM was added. */
struct mv_share_stats {
	uint64_t scanned;        /* RAM pages looked at */
	uint64_t armed;          /* private pages first seen: monitor armed */
	uint64_t volatile_skips; /* written since armed: skipped, re-armed */
	uint64_t hashed;         /* cold pages hashed */
	uint64_t merged;         /* guest pages that became shared */
	uint64_t zero_reclaimed; /* all-zero pages back to ZERO */
	uint64_t extra_copies;   /* shared copies started at the sharer
				  * limit */
	uint64_t cow_breaks;     /* SHARED -> ALLOCATED (mv_vm_stats) */
	uint64_t rounds;         /* complete passes over every VM (host) */
	/* Rounds ended in a row in which nothing changed (host): from 1 on,
	 * the merge is complete, as when mv_share_scan returns 0: the
	 * background thread's "done". Adding a VM resets it to 0; a page
	 * written meanwhile resets it at the end of the round that sees it. */
	uint64_t quiet_rounds;
	uint64_t cpu_ns;         /* thread CPU time spent scanning */
	uint32_t vms;            /* registered VMs (host) */
	int idle_priority;       /* the thread runs at SCHED_IDLE (host) */
};

/* Create a scanner for @host (no thread yet). -MV_EINVAL (NULL @host or
 * @out, bad config), -MV_ENOMEM, or a negated errno of pthread; *@out
 * unchanged on error. @cfg NULL takes the defaults. */
int mv_share_create(struct mv_host *host, const struct mv_share_config *cfg,
		    struct mv_share **out);
/* Stop the thread and free the scanner. Pages already shared stay shared.
 * NULL does nothing. No other call on @s may run meanwhile or after. */
void mv_share_destroy(struct mv_share *s);

/* Register @vm (on the scanner's host) with @cfg. -MV_EINVAL (NULL, bad
 * config, another pool), -MV_EEXIST (already added), -MV_ENOMEM; no
 * change on error. The VM must be removed before it is destroyed. */
int mv_share_vm_add(struct mv_share *s, struct mv_vm *vm,
		    const struct mv_share_vm_config *cfg);
/* Forget @vm: when it returns, the scanner touches it no more (its pages
 * keep their states). -MV_EINVAL (NULL), -MV_ENOENT (not added). */
int mv_share_vm_remove(struct mv_share *s, struct mv_vm *vm);

/* Start the background thread at SCHED_IDLE (if the kernel allows it;
 * see idle_priority). -MV_EINVAL (NULL), -MV_EBUSY (running), or a
 * negated errno of pthread_create. */
int mv_share_start(struct mv_share *s);
/* Stop it and wait for the batch in flight. -MV_EINVAL, -MV_ESTATE (not
 * running). */
int mv_share_stop(struct mv_share *s);
/* Pause (1) or resume (0) the thread; it stays paused across start and
 * stop. -MV_EINVAL (NULL, @paused not 0 or 1). */
int mv_share_pause(struct mv_share *s, int paused);
/* Change the thread's rate (0 = no limit). -MV_EINVAL for NULL. */
int mv_share_set_rate(struct mv_share *s, uint64_t pages_per_s);
/* Change the thread's CPU share (cpu_share_pct: 0 or 100 = no limit); a
 * running thread takes it from its next batch on. -MV_EINVAL for NULL or
 * @pct above 100, nothing changed. Any thread. */
int mv_share_set_cpu_share(struct mv_share *s, uint32_t pct);

/* Scan on the calling thread, without rate limit, until a round ends in
 * which nothing changed (no page armed or skipped as volatile, merged,
 * moved to a lower equal copy or newly indexed: every cold page was then
 * compared with the index and the merge is complete), or @max_rounds
 * rounds have ended (0: no limit). @rounds (may be NULL) receives how many
 * ended. Returns 0 when done, -MV_ELIMIT when @max_rounds ran out first,
 * -MV_EINVAL for NULL, or a pool error (-MV_EBUDGET, -MV_ENOMEM) that
 * stopped a merge. Any thread; the background thread waits meanwhile. */
int mv_share_scan(struct mv_share *s, uint32_t max_rounds, uint32_t *rounds);

/* Counters: of the whole scanner, or of one VM (-MV_ENOENT if not added).
 * -MV_EINVAL for NULL. */
int mv_share_get_stats(struct mv_share *s, struct mv_share_stats *st);
int mv_share_vm_get_stats(struct mv_share *s, struct mv_vm *vm,
			  struct mv_share_stats *st);

#endif
