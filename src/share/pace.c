/* The background thread's pace: a rate in pages per second and a share of
 * one CPU.
 *
 * Both are deadlines before which the next batch may not start. The rate
 * counts the pages looked at since the pace was last reset: page n is due
 * at t0 + n / rate. The CPU share compares the thread's CPU time
 * (CLOCK_THREAD_CPUTIME_ID: time on a CPU only, so waiting for a VM lock,
 * a caller or the deadline itself costs none) with wall time since the
 * start of the current window: having used c ns of CPU, the thread may go
 * on at w0 + c * 100 / pct. A thread that got less CPU than its share
 * (the host was busy, or it slept at SCHED_IDLE) would bank the
 * difference and spend it later at 100%; so a window that is not in debt
 * and older than WINDOW_NS starts afresh, which bounds the banked credit
 * to WINDOW_NS. Within a window the share is exceeded by at most one
 * batch. */
#include <time.h>

#include "share_internal.h"

#define WINDOW_NS 200000000ull

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t pace_now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

void pace_reset(struct pace *p, uint64_t rate, uint32_t pct)
{
	p->rate = rate;
	p->pct = pct;
	p->t0 = pace_now_ns();
	p->pages = 0;
	p->w0 = p->t0;
	p->c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

static uint64_t share_deadline(struct pace *p, uint64_t now)
{
	uint64_t cpu = clock_ns(CLOCK_THREAD_CPUTIME_ID), due;

	due = p->w0 + (cpu - p->c0) * 100 / p->pct;
	if (due <= now && now - p->w0 >= WINDOW_NS) {
		p->w0 = now;
		p->c0 = cpu;
	}
	return due;
}

uint64_t pace_after_batch(struct pace *p, uint32_t pages)
{
	uint64_t now = pace_now_ns(), due = 0, d;

	p->pages += pages;
	if (p->rate)
		due = p->t0 + p->pages * 1000000000ull / p->rate;
	if (p->pct && p->pct < 100) {
		d = share_deadline(p, now);
		if (d > due)
			due = d;
	}
	return due > now ? due : 0;
}
