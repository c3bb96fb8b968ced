/* The scanner object: registered VMs, the background thread (SCHED_IDLE
 * unless asked otherwise, paced by pace.c) and the synchronous scan for
 * tools and tests. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "share_internal.h"

/* Pages per batch: the thread hands the scanner lock to waiting callers
 * between batches (lock.c), so they wait at most this long. */
#define BATCH 64

int mv_share_create(struct mv_host *host, const struct mv_share_config *cfg,
		    struct mv_share **out)
{
	struct mv_share_config c = { 0 };
	pthread_condattr_t ca;
	struct mv_share *s;
	int rc;

	if (cfg)
		c = *cfg;
	if (!host || !out || c.max_sharing == 1 ||
	    (c.cross_vm != 0 && c.cross_vm != 1) || c.cpu_share_pct > 100 ||
	    (c.normal_priority != 0 && c.normal_priority != 1))
		return -MV_EINVAL;
	if (!c.max_sharing)
		c.max_sharing = MV_SHARE_MAX_SHARING_DEFAULT;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -MV_ENOMEM;
	s->host = host;
	s->cfg = c;
	rc = -pthread_mutex_init(&s->lock, NULL);
	if (rc) {
		free(s);
		return rc;
	}
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = -pthread_cond_init(&s->wake, &ca);
	if (!rc) {
		rc = -pthread_cond_init(&s->rq_done, &ca);
		if (rc)
			pthread_cond_destroy(&s->wake);
	}
	pthread_condattr_destroy(&ca);
	if (!rc) {
		rc = -pthread_mutex_init(&s->rq_lock, NULL);
		if (rc) {
			pthread_cond_destroy(&s->rq_done);
			pthread_cond_destroy(&s->wake);
		}
	}
	if (rc) {
		pthread_mutex_destroy(&s->lock);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

void mv_share_destroy(struct mv_share *s)
{
	if (!s)
		return;
	if (s->running)
		mv_share_stop(s);
	sindex_free(&s->idx);
	free(s->vms);
	pthread_mutex_destroy(&s->rq_lock);
	pthread_cond_destroy(&s->rq_done);
	pthread_cond_destroy(&s->wake);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static struct svm *find(struct mv_share *s, struct mv_vm *vm)
{
	for (uint32_t i = 0; i < s->nvms; i++)
		if (s->vms[i].vm == vm)
			return &s->vms[i];
	return NULL;
}

static int vm_cfg_ok(const struct mv_share_vm_config *c)
{
	return c->count && c->gfn + c->count > c->gfn &&
	       (c->opt_out == 0 || c->opt_out == 1) &&
	       (c->zero_only == 0 || c->zero_only == 1);
}

int mv_share_vm_add(struct mv_share *s, struct mv_vm *vm,
		    const struct mv_share_vm_config *cfg)
{
	struct mv_vm_stats vs;
	struct svm *v;
	int rc = 0;

	if (!s || !vm || !cfg || !vm_cfg_ok(cfg) || mv_vm_host(vm) != s->host)
		return -MV_EINVAL;
	if (mv_vm_get_stats(vm, &vs))
		return -MV_EINVAL;
	share_lock(s);
	if (find(s, vm)) {
		rc = -MV_EEXIST;
	} else if (s->nvms == s->capvms) {
		uint32_t cap = s->capvms ? s->capvms * 2 : 4;

		v = realloc(s->vms, sizeof(*v) * cap);
		if (v) {
			s->vms = v;
			s->capvms = cap;
		} else {
			rc = -MV_ENOMEM;
		}
	}
	if (!rc) {
		v = &s->vms[s->nvms++];
		memset(v, 0, sizeof(*v));
		v->vm = vm;
		v->cfg = *cfg;
		v->cow_base = vs.cow_breaks;
		s->st.quiet_rounds = 0;
		pthread_cond_broadcast(&s->wake);
	}
	share_unlock(s);
	return rc;
}

int mv_share_vm_remove(struct mv_share *s, struct mv_vm *vm)
{
	struct svm *v;
	uint32_t i;

	if (!s || !vm)
		return -MV_EINVAL;
	share_lock(s);
	v = find(s, vm);
	if (!v) {
		share_unlock(s);
		return -MV_ENOENT;
	}
	i = (uint32_t)(v - s->vms);
	memmove(v, v + 1, sizeof(*v) * (s->nvms - i - 1));
	s->nvms--;
	if (i < s->cur_vm) {
		s->cur_vm--;
	} else if (i == s->cur_vm) {
		s->cur_off = 0;
	}
	sindex_forget_vm(&s->idx, vm);
	share_unlock(s);
	return 0;
}

/* Sleep (lock held, released while waiting) until @deadline_ns, or until
 * the thread is stopped or paused or its limits change. Callers' unlocks
 * wake it on the way (lock.c): it goes back to sleep. */
static void wait_until(struct mv_share *s, const struct pace *p,
		       uint64_t deadline_ns)
{
	struct timespec ts = { (time_t)(deadline_ns / 1000000000ull),
			       (long)(deadline_ns % 1000000000ull) };

	while (!s->stopping && !s->paused && s->nvms &&
	       p->rate == s->cfg.rate_pages_per_s &&
	       p->pct == s->cfg.cpu_share_pct &&
	       pace_now_ns() < deadline_ns)
		pthread_cond_timedwait(&s->wake, &s->lock, &ts);
}

static void *worker(void *arg)
{
	struct mv_share *s = arg;
	struct sched_param sp = { 0 };
	struct pace p;

	if (!s->cfg.normal_priority &&
	    !pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp)) {
		pthread_mutex_lock(&s->lock);
		s->st.idle_priority = 1;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_lock(&s->lock);
	pace_reset(&p, s->cfg.rate_pages_per_s, s->cfg.cpu_share_pct);
	while (!s->stopping) {
		uint64_t due;
		uint32_t done;
		int ended;

		if (s->paused || !s->nvms) {
			pthread_cond_wait(&s->wake, &s->lock);
			pace_reset(&p, s->cfg.rate_pages_per_s,
				   s->cfg.cpu_share_pct);
			continue;
		}
		if (p.rate != s->cfg.rate_pages_per_s ||
		    p.pct != s->cfg.cpu_share_pct)
			pace_reset(&p, s->cfg.rate_pages_per_s,
				   s->cfg.cpu_share_pct);
		/* A pool error (budget) is retried next batch: the budget may
		 * grow again. */
		scan_batch(s, BATCH, &done, &ended);
		share_yield(s);
		due = pace_after_batch(&p, done);
		if (!due && ended && !s->last_armed)
			/* Nothing to do until pages change: look again in
			 * 10 ms rather than spin. */
			due = pace_now_ns() + 10000000ull;
		if (due)
			wait_until(s, &p, due);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int mv_share_start(struct mv_share *s)
{
	int rc;

	if (!s)
		return -MV_EINVAL;
	share_lock(s);
	rc = s->running ? -MV_EBUSY : 0;
	if (!rc) {
		s->stopping = 0;
		rc = -pthread_create(&s->thread, NULL, worker, s);
		s->running = !rc;
	}
	share_unlock(s);
	return rc;
}

int mv_share_stop(struct mv_share *s)
{
	pthread_t t;

	if (!s)
		return -MV_EINVAL;
	share_lock(s);
	if (!s->running || s->stopping) {
		share_unlock(s);
		return -MV_ESTATE;
	}
	s->stopping = 1;
	t = s->thread;
	pthread_cond_broadcast(&s->wake);
	share_unlock(s);
	pthread_join(t, NULL);
	share_lock(s);
	s->running = 0;
	s->stopping = 0;
	share_unlock(s);
	return 0;
}

int mv_share_pause(struct mv_share *s, int paused)
{
	if (!s || (paused != 0 && paused != 1))
		return -MV_EINVAL;
	share_lock(s);
	s->paused = paused;
	pthread_cond_broadcast(&s->wake);
	share_unlock(s);
	return 0;
}

int mv_share_set_cpu_share(struct mv_share *s, uint32_t pct)
{
	if (!s || pct > 100)
		return -MV_EINVAL;
	share_lock(s);
	s->cfg.cpu_share_pct = pct;
	share_unlock(s);
	return 0;
}

int mv_share_set_rate(struct mv_share *s, uint64_t pages_per_s)
{
	if (!s)
		return -MV_EINVAL;
	share_lock(s);
	s->cfg.rate_pages_per_s = pages_per_s;
	pthread_cond_broadcast(&s->wake);
	share_unlock(s);
	return 0;
}

int mv_share_scan(struct mv_share *s, uint32_t max_rounds, uint32_t *rounds)
{
	uint32_t n = 0, done;
	int rc = 0, ended, finished = 0;

	if (!s)
		return -MV_EINVAL;
	share_lock(s);
	/* Start from a round's beginning, so that an ended round saw every
	 * page under this call. */
	if (s->cur_vm || s->cur_off) {
		s->cur_vm = 0;
		s->cur_off = 0;
		s->round_armed = 0;
		rc = sindex_new_round(&s->idx);
	}
	while (!rc && !finished && (!max_rounds || n < max_rounds)) {
		rc = scan_batch(s, UINT32_MAX, &done, &ended);
		if (ended) {
			n++;
			finished = !s->last_armed;
		}
	}
	share_unlock(s);
	if (rounds)
		*rounds = n;
	if (rc)
		return rc;
	return finished ? 0 : -MV_ELIMIT;
}

static void add_cow(struct svm *v, struct mv_share_stats *st)
{
	struct mv_vm_stats vs;

	if (!mv_vm_get_stats(v->vm, &vs))
		st->cow_breaks += vs.cow_breaks - v->cow_base;
}

int mv_share_get_stats(struct mv_share *s, struct mv_share_stats *st)
{
	if (!s || !st)
		return -MV_EINVAL;
	share_lock(s);
	*st = s->st;
	st->cow_breaks = 0;
	for (uint32_t i = 0; i < s->nvms; i++)
		add_cow(&s->vms[i], st);
	st->vms = s->nvms;
	share_unlock(s);
	return 0;
}

int mv_share_vm_get_stats(struct mv_share *s, struct mv_vm *vm,
			  struct mv_share_stats *st)
{
	struct svm *v;

	if (!s || !vm || !st)
		return -MV_EINVAL;
	share_lock(s);
	v = find(s, vm);
	if (v) {
		*st = v->st;
		st->cow_breaks = 0;
		add_cow(v, st);
	}
	share_unlock(s);
	return v ? 0 : -MV_ENOENT;
}
