/* What the scanner does with one guest page. Run under the scanner lock;
 * every decision on a page is taken under its VM's lock, so a page judged
 * cold (still WRITE_MONITORED, same host page) cannot be written before
 * the merge or the zero reclaim that follows inside the same lock. */
#include <stddef.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

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

/* Merge the cold page (@v, @gfn, backed by @id) into entry @e. */
static int try_merge(struct mv_share *s, struct entry *e, struct svm *v,
		     uint64_t gfn, mv_page_id id, int *err)
{
	enum mv_page_state want = e->sharers ? MV_PAGE_SHARED
					     : MV_PAGE_WRITE_MONITORED;
	struct svm *rep = svm_of(s, e->vm);
	int rc, res;

	lock_pair(e->vm, v->vm);
	if (!page_is(v->vm, gfn, MV_PAGE_WRITE_MONITORED, id)) {
		res = GONE_HOT;
	} else if (!page_is(e->vm, e->gfn, want, e->host_id)) {
		res = STALE;
	} else {
		rc = mv_vm_share_pages(e->vm, e->gfn, v->vm, gfn);
		if (rc == -MV_ESTATE) {
			res = DIFFER;
		} else if (rc) {
			*err = rc;
			res = DIFFER;
		} else {
			e->host_id = mv_vm_page(e->vm, e->gfn)->host_id;
			if (!e->sharers && rep) {
				rep->st.merged++;
				s->st.merged++;
			}
			e->sharers = e->sharers ? e->sharers + 1 : 2;
			v->st.merged++;
			s->st.merged++;
			res = MERGED;
		}
	}
	unlock_pair(e->vm, v->vm);
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
		if (e->sharers >= s->cfg.max_sharing) {
			full = 1;
			continue;
		}
		res = try_merge(s, e, v, gfn, id, &err);
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
	if (mv_page_state(p) != MV_PAGE_WRITE_MONITORED ||
	    mv_vm_gpa_to_hva_locked(vm, gfn << MV_PAGE_SHIFT, MV_VM_HVA_READ,
				    &hva)) {
		mv_vm_unlock(vm);
		return 0;
	}
	ptr = hva;
	if (all_zero(ptr)) {
		/* Nobody can write it meanwhile: it is write-monitored (the
		 * MMU write-protected it) and we hold the VM lock. */
		if (!mv_vm_phys_populate(vm, gfn, 1, zeros))
			COUNT(s, v, zero_reclaimed);
		mv_vm_unlock(vm);
		return 0;
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
	s->round_armed = 0;
	return sindex_new_round(&s->idx);
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
