/* What the scanner does with one guest page. Run under the scanner lock;
 * every decision on a page is taken under its VM's lock, so a page judged
 * cold (still WRITE_MONITORED, same host page) cannot be written before
 * the merge or the zero reclaim that follows inside the same lock. */
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "phys/vm_locked.h"
#include "share_internal.h"

#define NONE UINT32_MAX

static const uint8_t zeros[MV_PAGE_SIZE];

/* What try_merge found. */
enum { MERGED, STALE, DIFFER, GONE_HOT };

static void lock_pair(struct mv_vm *a, struct mv_vm *b)
{
	mv_vm_lock(a < b ? a : b);
	if (a != b)
		mv_vm_lock(a < b ? b : a);
}

static void unlock_pair(struct mv_vm *a, struct mv_vm *b)
{
	if (a != b)
		mv_vm_unlock(a < b ? b : a);
	mv_vm_unlock(a < b ? a : b);
}

static int page_is(struct mv_vm *vm, uint64_t gfn, enum mv_page_state st,
		   mv_page_id id)
{
	struct mv_page *p = mv_vm_page(vm, gfn);

	return p && mv_page_state(p) == st && p->host_id == id;
}

static struct svm *svm_of(struct mv_share *s, struct mv_vm *vm)
{
	for (uint32_t i = 0; i < s->nvms; i++)
		if (s->vms[i].vm == vm)
			return &s->vms[i];
	return NULL;
}

/* A shared entry's page has max_sharing references (the pool counts
 * them: copy-on-write breaks drop theirs), or is gone. */
static int entry_full(const struct mv_share *s, const struct entry *e)
{
	uint32_t refs;

	if (!e->sharers)
		return 0;
	return mv_host_share_refs(s->host, e->host_id, &refs) ||
	       refs >= s->cfg.max_sharing;
}

/* A merge of the page (@v, @gfn, backed by @id, in state @xst) into the
 * page of entry @e, as a request (remap.c). */
struct merge_job {
	struct mv_share *s;
	struct entry *e;
	struct svm *v;
	uint64_t gfn;
	mv_page_id id;
	enum mv_page_state xst;
	int err;
};

/* Runs on the thread processing the queue of the pair's first VM, under
 * its lock; the scanner waits meanwhile with its lock held, so the index
 * and the counters are this function's. Taking the pair in address order
 * keeps the lock order (the queue's VM is the first). Both pages are
 * checked again here, after any time the request spent queued, and
 * mv_vm_share_pages notifies both before it compares the bytes. */
static int merge_req(struct mv_vm *qvm, void *arg)
{
	struct merge_job *j = arg;
	struct mv_share *s = j->s;
	struct entry *e = j->e;
	struct svm *v = j->v, *rep = svm_of(s, e->vm);
	enum mv_page_state want = e->sharers ? MV_PAGE_SHARED
					     : MV_PAGE_WRITE_MONITORED;
	int rc, res;

	(void)qvm;
	lock_pair(e->vm, v->vm);
	if (!page_is(v->vm, j->gfn, j->xst, j->id)) {
		res = GONE_HOT;
	} else if (!page_is(e->vm, e->gfn, want, e->host_id)) {
		res = STALE;
	} else {
		rc = mv_vm_share_pages(e->vm, e->gfn, v->vm, j->gfn);
		if (rc == -MV_ESTATE) {
			res = DIFFER;
		} else if (rc) {
			j->err = rc;
			res = DIFFER;
		} else {
			e->host_id = mv_vm_page(e->vm, e->gfn)->host_id;
			if (!e->sharers && rep && j->xst != MV_PAGE_SHARED) {
				rep->st.merged++;
				s->st.merged++;
			}
			e->sharers = e->sharers ? e->sharers + 1 : 2;
			if (j->xst != MV_PAGE_SHARED) {
				v->st.merged++;
				s->st.merged++;
			}
			s->round_armed++;
			res = MERGED;
		}
	}
	unlock_pair(e->vm, v->vm);
	return res;
}

/* The VM a request on two VMs' pages goes to, and how long its thread
 * gets to run it. */
static struct mv_vm *queue_vm(struct mv_share *s, struct mv_vm *a,
			      struct mv_vm *b, uint32_t *wait_us)
{
	struct mv_vm *q = a < b ? a : b;
	struct svm *sv = svm_of(s, q);

	*wait_us = sv ? sv->cfg.request_wait_us : 0;
	return q;
}

static int try_merge(struct mv_share *s, struct entry *e, struct svm *v,
		     uint64_t gfn, mv_page_id id, enum mv_page_state xst,
		     int *err)
{
	struct merge_job j = { s, e, v, gfn, id, xst, 0 };
	uint32_t wait_us;
	struct mv_vm *q = queue_vm(s, e->vm, v->vm, &wait_us);
	int res = DIFFER, rc;

	rc = remap_call(s, q, wait_us, merge_req, &j, &res);
	*err = rc ? rc : j.err;
	return res;
}

static int merge(struct mv_share *s, struct svm *v, uint64_t gfn,
		 mv_page_id id, uint64_t hash)
{
	struct mv_vm *gvm = s->cfg.cross_vm ? NULL : v->vm;
	struct entry cand = { .hash = hash, .salt = v->cfg.salt,
			      .group_vm = gvm, .vm = v->vm, .gfn = gfn,
			      .host_id = id, .sharers = 0 };
	int full = 0, err = 0;

	for (uint32_t i = sindex_first(&s->idx, hash); i != NONE;
	     i = s->idx.e[i].next) {
		struct entry *e = &s->idx.e[i];
		int res;

		if (!e->vm || e->hash != hash || e->group_vm != gvm ||
		    e->salt != v->cfg.salt)
			continue;
		if (entry_full(s, e)) {
			full = 1;
			continue;
		}
		res = try_merge(s, e, v, gfn, id, MV_PAGE_WRITE_MONITORED,
				&err);
		if (err)
			return err;
		if (res == MERGED || res == GONE_HOT)
			return 0;
		if (res == STALE)
			e->vm = NULL;
	}
	if (full) {
		v->st.extra_copies++;
		s->st.extra_copies++;
	}
	return sindex_add(&s->idx, &cand);
}

static int same_group(const struct mv_share *s, const struct entry *e,
		      const struct svm *v)
{
	return e->vm && e->salt == v->cfg.salt &&
	       e->group_vm == (s->cfg.cross_vm ? NULL : v->vm);
}

/* A shared page (@v, @gfn on @id, VM lock held; dropped on return). Its
 * copy may have lost the guest page the index reached it through (that
 * page was written), or an equal copy with a lower id may exist (two
 * copies started while a representative was being written): move it to
 * the lowest equal copy with room, so equal pages end on one page and
 * moves never go back and forth; re-point its own entry; or index it
 * afresh (hashing it). */
static int scan_shared(struct mv_share *s, struct svm *v, uint64_t gfn,
		       const uint8_t *ptr, mv_page_id id)
{
	struct entry *own = NULL, *to = NULL, add;
	uint64_t ck;
	int err = 0;

	if (mv_host_share_checksum(s->host, id, &ck)) {
		mv_vm_unlock(v->vm);
		return 0;
	}
	for (uint32_t i = sindex_first(&s->idx, ck); i != NONE;
	     i = s->idx.e[i].next) {
		struct entry *e = &s->idx.e[i];

		if (!same_group(s, e, v) || (uint32_t)e->hash != ck ||
		    !e->sharers)
			continue;
		if (e->host_id == id)
			own = e;
		else if (e->host_id < id && !entry_full(s, e) &&
			 (!to || e->host_id < to->host_id))
			to = e;
	}
	if (to) {
		mv_vm_unlock(v->vm);
		if (try_merge(s, to, v, gfn, id, MV_PAGE_SHARED, &err) ==
		    MERGED && own && own->sharers > 2)
			own->sharers--;
		return err;
	}
	if (own) {
		/* Not under this VM's lock: the entry's page may be another
		 * VM's, which may be locked only before this one (a thread
		 * making a merge of the two holds it and waits for ours). */
		mv_vm_unlock(v->vm);
		if (!page_is(own->vm, own->gfn, MV_PAGE_SHARED, id)) {
			own->vm = v->vm;
			own->gfn = gfn;
		}
		return 0;
	}
	add = (struct entry){ .hash = XXH3_64bits(ptr, MV_PAGE_SIZE),
			      .salt = v->cfg.salt,
			      .group_vm = s->cfg.cross_vm ? NULL : v->vm,
			      .vm = v->vm, .gfn = gfn, .host_id = id,
			      .sharers = 2 };
	mv_vm_unlock(v->vm);
	if ((uint32_t)add.hash != ck)
		return 0;  /* not made by a share of these bytes */
	s->round_armed++;
	return sindex_add(&s->idx, &add);
}

static int all_zero(const uint8_t *b)
{
	return b[0] == 0 && !memcmp(b, b + 1, MV_PAGE_SIZE - 1);
}

static void count(struct mv_share *s, struct svm *v, size_t field)
{
	(*(uint64_t *)((char *)&s->st + field))++;
	(*(uint64_t *)((char *)&v->st + field))++;
}

#define COUNT(s, v, f) count(s, v, offsetof(struct mv_share_stats, f))

/* An all-zero cold page goes back to ZERO, as a request of its VM. */
struct zero_job {
	struct mv_share *s;
	struct svm *v;
	uint64_t gfn;
	mv_page_id id;
};

/* Under the VM lock (the queue's processor), after any time queued: still
 * the same write-monitored page, so not written since it was armed, and
 * nobody can write it meanwhile (the MMU write-protected it, and every
 * write path needs the lock); still zeros (checked again all the same). */
static int zero_req(struct mv_vm *vm, void *arg)
{
	struct zero_job *z = arg;
	void *hva;

	if (!page_is(vm, z->gfn, MV_PAGE_WRITE_MONITORED, z->id) ||
	    mv_vm_gpa_to_hva_locked(vm, z->gfn << MV_PAGE_SHIFT,
				    MV_VM_HVA_READ, &hva) ||
	    !all_zero(hva))
		return 0;
	if (!mv_vm_phys_populate(vm, z->gfn, 1, zeros))
		COUNT(z->s, z->v, zero_reclaimed);
	return 0;
}

/* A private page not cold yet: arm the monitor; a later round decides. */
static void arm(struct mv_share *s, struct svm *v, uint64_t gfn,
		const struct mv_page *p)
{
	if (mv_page_flags(p) & MV_PAGE_F_MONITOR_HIT)
		COUNT(s, v, volatile_skips);
	else
		COUNT(s, v, armed);
	s->round_armed++;
	mv_vm_write_monitor(v->vm, gfn, 1, NULL);
}

int scan_page(struct mv_share *s, struct svm *v, uint64_t gfn)
{
	struct mv_vm *vm = v->vm;
	struct mv_page *p = mv_vm_page(vm, gfn);
	const uint8_t *ptr;
	uint64_t hash;
	mv_page_id id;
	void *hva;

	if (!p)
		return 0;
	mv_vm_lock(vm);
	if (mv_page_type(p) != MV_PAGE_RAM) {
		mv_vm_unlock(vm);
		return 0;
	}
	COUNT(s, v, scanned);
	if (mv_page_state(p) == MV_PAGE_ALLOCATED) {
		arm(s, v, gfn, p);
		mv_vm_unlock(vm);
		return 0;
	}
	if ((mv_page_state(p) != MV_PAGE_WRITE_MONITORED &&
	     mv_page_state(p) != MV_PAGE_SHARED) ||
	    mv_vm_gpa_to_hva_locked(vm, gfn << MV_PAGE_SHIFT, MV_VM_HVA_READ,
				    &hva)) {
		mv_vm_unlock(vm);
		return 0;
	}
	ptr = hva;
	if (mv_page_state(p) == MV_PAGE_SHARED) {
		if (v->cfg.zero_only)
			mv_vm_unlock(vm);
		return v->cfg.zero_only ? 0 : scan_shared(s, v, gfn, ptr,
							   p->host_id);
	}
	if (all_zero(ptr)) {
		struct zero_job z = { s, v, gfn, p->host_id };

		mv_vm_unlock(vm);
		return remap_call(s, vm, v->cfg.request_wait_us, zero_req, &z,
				  NULL);
	}
	if (v->cfg.zero_only) {
		mv_vm_unlock(vm);
		return 0;
	}
	COUNT(s, v, hashed);
	hash = XXH3_64bits(ptr, MV_PAGE_SIZE);
	id = p->host_id;
	mv_vm_unlock(vm);
	return merge(s, v, gfn, id, hash);
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int round_end(struct mv_share *s)
{
	s->cur_vm = 0;
	s->cur_off = 0;
	s->st.rounds++;
	s->last_armed = s->round_armed;
	s->st.quiet_rounds = s->round_armed ? 0 : s->st.quiet_rounds + 1;
	s->round_armed = 0;
	return sindex_new_round(&s->idx);
}

/* At most this many pages are passed under one hold of the VM lock. */
#define IDLE_RUN 4096u

/* How many of the @max pages from @gfn on need nothing of the scanner
 * (outside every range, not RAM, ZERO, BALLOONED), passed under one hold
 * of the VM lock: a sparse VM's untouched RAM costs a descriptor look a
 * page instead of two lock round trips. The RAM ones count as scanned,
 * as scan_page counts them. */
static uint32_t skip_idle(struct mv_share *s, struct svm *v, uint64_t gfn,
			  uint32_t max)
{
	uint32_t n = 0;

	mv_vm_lock(v->vm);
	for (; n < max; n++) {
		const struct mv_page *p = vm_page_locked(v->vm, gfn + n);
		enum mv_page_state st;

		if (!p || mv_page_type(p) != MV_PAGE_RAM)
			continue;
		st = mv_page_state(p);
		if (st != MV_PAGE_ZERO && st != MV_PAGE_BALLOONED)
			break;
		COUNT(s, v, scanned);
	}
	mv_vm_unlock(v->vm);
	return n;
}

int scan_batch(struct mv_share *s, uint32_t max, uint32_t *done,
	       int *ended)
{
	uint64_t t0 = thread_cpu_ns();
	struct svm *v;
	int rc = 0;

	*done = 0;
	*ended = 0;
	if (s->cur_vm >= s->nvms) {
		*ended = 1;
		return round_end(s);
	}
	v = &s->vms[s->cur_vm];
	while (!rc && *done < max && s->cur_off < v->cfg.count &&
	       !v->cfg.opt_out) {
		uint64_t left = v->cfg.count - s->cur_off;
		uint32_t lim = max - *done, idle;

		lim = lim < IDLE_RUN ? lim : IDLE_RUN;
		lim = left < lim ? (uint32_t)left : lim;
		idle = skip_idle(s, v, v->cfg.gfn + s->cur_off, lim);
		s->cur_off += idle;
		*done += idle;
		if (idle == lim)
			continue;
		rc = scan_page(s, v, v->cfg.gfn + s->cur_off);
		if (!rc) {
			s->cur_off++;
			(*done)++;
		}
	}
	if (!rc && (s->cur_off >= v->cfg.count || v->cfg.opt_out)) {
		s->cur_vm++;
		s->cur_off = 0;
	}
	v->st.cpu_ns += thread_cpu_ns() - t0;
	s->st.cpu_ns += thread_cpu_ns() - t0;
	return rc;
}
