/* Defragmentation that runs by itself: a bounded pass after every VM
 * destruction (account.c) and an idle worker thread, started on request,
 * that wakes every period and makes at most a bounded number of moves when
 * the pool has at least one chunk's worth of free pages scattered over
 * partly used private chunks (otherwise there is nothing a move could
 * empty). Movers run on the worker's thread and take their VM's lock, as
 * with any mv_host_defragment caller; the worker holds no lock while it
 * moves. */
#include <errno.h>
#include <time.h>

#include "pool.h"

/* Free pages in partly used private chunks, a chunk's worth at least. */
static bool fragmented(struct mv_host *h)
{
	uint64_t empty = (uint64_t)h->empty_count * MV_CHUNK_PAGES;
	bool frag;

	pool_lock(h);
	frag = h->free_pages - h->free_shared - empty >= MV_CHUNK_PAGES;
	pool_unlock(h);
	return frag;
}

static void deadline_in(struct timespec *ts, uint32_t ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

static void *worker_main(void *arg)
{
	struct mv_host *h = arg;
	struct timespec ts;

	pthread_mutex_lock(&h->worker_lock);
	while (!h->worker_stop) {
		deadline_in(&ts, h->worker_period_ms);
		while (!h->worker_stop &&
		       pthread_cond_timedwait(&h->worker_wake, &h->worker_lock,
					      &ts) != ETIMEDOUT)
			;
		if (h->worker_stop)
			break;
		uint32_t max = h->worker_max_moves;

		pthread_mutex_unlock(&h->worker_lock);
		if (fragmented(h))
			mv_host_defragment(h, max, NULL);
		pthread_mutex_lock(&h->worker_lock);
		h->worker_runs++;
	}
	pthread_mutex_unlock(&h->worker_lock);
	return NULL;
}

int mv_host_defrag_start(struct mv_host *host, uint32_t period_ms,
			 uint32_t max_moves)
{
	int rc = 0;

	if (!host || !period_ms || !max_moves)
		return -MV_EINVAL;
	pthread_mutex_lock(&host->worker_lock);
	if (host->worker_on) {
		rc = -MV_EBUSY;
	} else {
		host->worker_period_ms = period_ms;
		host->worker_max_moves = max_moves;
		host->worker_stop = false;
		rc = -pthread_create(&host->worker, NULL, worker_main, host);
		host->worker_on = rc == 0;
	}
	pthread_mutex_unlock(&host->worker_lock);
	return rc;
}

int mv_host_defrag_stop(struct mv_host *host)
{
	if (!host)
		return -MV_EINVAL;
	pthread_mutex_lock(&host->worker_lock);
	if (!host->worker_on) {
		pthread_mutex_unlock(&host->worker_lock);
		return -MV_ESTATE;
	}
	if (pthread_equal(pthread_self(), host->worker)) {
		pthread_mutex_unlock(&host->worker_lock);
		return -MV_EBUSY;     /* a mover on the worker's own thread */
	}
	host->worker_stop = true;
	pthread_cond_signal(&host->worker_wake);
	pthread_mutex_unlock(&host->worker_lock);
	pthread_join(host->worker, NULL);
	pthread_mutex_lock(&host->worker_lock);
	host->worker_on = false;
	pthread_mutex_unlock(&host->worker_lock);
	return 0;
}

void worker_stop_if_running(struct mv_host *h)
{
	mv_host_defrag_stop(h);
}
