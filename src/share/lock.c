/* The scanner lock, handed over between batches.
 *
 * The background thread holds the lock while it scans a batch and used to
 * take the next batch without letting go: a glibc mutex is not fair, and
 * a thread that unlocks and relocks at once wins again, so while the VMs
 * kept it busy (pages written every round: no round without change, no
 * idle wait) every other call, mv_share_scan included, waited for it to
 * run out of work, which writers could put off forever. Callers now
 * announce themselves (waiters) before they block on the mutex; between
 * batches the thread sleeps on the condition while anyone waits, which
 * releases the mutex to them, and each caller's unlock wakes it again. A
 * caller thus waits for at most the batch in flight. */
#include "share_internal.h"

void share_lock(struct mv_share *s)
{
	atomic_fetch_add_explicit(&s->waiters, 1, memory_order_relaxed);
	pthread_mutex_lock(&s->lock);
	atomic_fetch_sub_explicit(&s->waiters, 1, memory_order_relaxed);
}

void share_unlock(struct mv_share *s)
{
	pthread_cond_broadcast(&s->wake);
	pthread_mutex_unlock(&s->lock);
}

/* Between two batches (lock held): let every announced caller through.
 * A caller that announces itself after the check waits for the next
 * batch's end; none can be missed for longer, since the waiting thread
 * gives up the mutex atomically and the caller's unlock broadcasts. */
void share_yield(struct mv_share *s)
{
	while (atomic_load_explicit(&s->waiters, memory_order_relaxed) &&
	       !s->stopping)
		pthread_cond_wait(&s->wake, &s->lock);
}
