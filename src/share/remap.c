/* Remaps go to the VM as requests: the scanner posts the change of a
 * guest page's backing (a merge, a zero reclaim) on the VM's request
 * queue, so that a VMM whose own thread (the seeds' EMT) processes that
 * queue makes the change there, between two of its guest's steps, as the
 * seed's "asks both VMs to use the shared page" has it.
 *
 * The scanner then waits for the request with the scanner lock held. It
 * does not use mv_vm_request_wait: without help that waits without end,
 * and a VM's thread that has stopped processing (it is being torn down,
 * or it is blocked in an mv_share_* call behind the very lock the scanner
 * holds) would hang the scanner and every call on it. Instead the request
 * is posted fire-and-forget and completes on a condition of the scanner's
 * own; after the VM's wait time (request_wait_us, 0 for a VM without such
 * a thread) the scanner processes the VM's queue itself, which runs the
 * request unless the VM's thread took it first, and then that thread
 * holds the VM lock until it is done: either way it is complete when
 * mv_vm_process_requests returns. So scan until done completes on one
 * thread, and a VM's thread that is slow only costs time. */
#include <time.h>

#include "share_internal.h"

struct call {
	struct mv_share *s;
	mv_vm_request_fn fn;
	void *arg;
	int result;
	int done;
};

static int run(struct mv_vm *vm, void *arg)
{
	struct call *c = arg;
	int r = c->fn(vm, c->arg);

	pthread_mutex_lock(&c->s->rq_lock);
	c->result = r;
	c->done = 1;
	pthread_cond_broadcast(&c->s->rq_done);
	pthread_mutex_unlock(&c->s->rq_lock);
	return r;
}

static int wait_done(struct call *c, uint64_t deadline_ns)
{
	struct timespec ts = { (time_t)(deadline_ns / 1000000000ull),
			       (long)(deadline_ns % 1000000000ull) };
	int done;

	pthread_mutex_lock(&c->s->rq_lock);
	while (!c->done && pace_now_ns() < deadline_ns)
		pthread_cond_timedwait(&c->s->rq_done, &c->s->rq_lock, &ts);
	done = c->done;
	pthread_mutex_unlock(&c->s->rq_lock);
	return done;
}

int remap_call(struct mv_share *s, struct mv_vm *vm, uint32_t wait_us,
	       mv_vm_request_fn fn, void *arg, int *result)
{
	struct call c = { s, fn, arg, 0, 0 };
	int rc = mv_vm_request_post(vm, run, &c, NULL);

	if (rc)
		return rc;
	if (!wait_us || !wait_done(&c, pace_now_ns() + wait_us * 1000ull))
		/* Never -MV_EBUSY: the scanner runs in no hook. Should it
		 * fail all the same, the loop waits for the VM's thread. */
		while (mv_vm_process_requests(vm, NULL) ||
		       !wait_done(&c, pace_now_ns()))
			wait_done(&c, pace_now_ns() + 1000000ull);
	if (result)
		*result = c.result;
	return 0;
}
