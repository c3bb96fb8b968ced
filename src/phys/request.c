/* The VM request queue. Any thread posts a request without a lock: a
 * compare-and-swap push onto a singly linked stack. The VM's own thread
 * (or a helping waiter) takes the whole stack with one exchange, reverses
 * it into posting order and runs each request under the VM lock. Waiting
 * uses a mutex and condition variable, touched only by waiters and by the
 * completion of waitable requests. */
#include <stdlib.h>

#include "vm_internal.h"
#include "vm_mmu.h"

int mv_vm_request_post(struct mv_vm *vm, mv_vm_request_fn fn, void *arg,
		       struct mv_vm_request **out)
{
	struct mv_vm_request *req, *head;

	if (!vm || !fn)
		return -MV_EINVAL;
	req = calloc(1, sizeof(*req));
	if (!req)
		return -MV_ENOMEM;
	req->fn = fn;
	req->arg = arg;
	req->waitable = out != NULL;
	atomic_init(&req->done, 0);
	if (out)
		*out = req;
	head = atomic_load_explicit(&vm->requests, memory_order_relaxed);
	do {
		req->next = head;
	} while (!atomic_compare_exchange_weak_explicit(
		&vm->requests, &head, req, memory_order_release,
		memory_order_relaxed));
	return 0;
}

static struct mv_vm_request *reverse(struct mv_vm_request *list)
{
	struct mv_vm_request *out = NULL;

	while (list) {
		struct mv_vm_request *next = list->next;

		list->next = out;
		out = list;
		list = next;
	}
	return out;
}

static void complete(struct mv_vm *vm, struct mv_vm_request *req, int result)
{
	if (!req->waitable) {
		free(req);
		return;
	}
	pthread_mutex_lock(&vm->req_lock);
	req->result = result;
	atomic_store_explicit(&req->done, 1, memory_order_release);
	pthread_cond_broadcast(&vm->req_cond);
	pthread_mutex_unlock(&vm->req_lock);
}

int mv_vm_process_requests(struct mv_vm *vm, uint32_t *done)
{
	struct mv_vm_request *req;
	uint32_t n = 0;

	if (!vm)
		return -MV_EINVAL;
	/* The lock is taken before the queue and held over the batch: a
	 * second processor (a helping waiter) takes only what was posted
	 * after this batch, and runs it after it. */
	mv_vm_lock(vm);
	if (vm_busy(vm, 1)) {
		mv_vm_unlock(vm);
		return -MV_EBUSY;
	}
	req = reverse(atomic_exchange_explicit(&vm->requests, NULL,
					       memory_order_acquire));
	while (req) {
		/* The waiter may free @req once it is complete. */
		struct mv_vm_request *next = req->next;
		int result = req->fn(vm, req->arg);

		vm->st.requests_done++;
		complete(vm, req, result);
		n++;
		req = next;
	}
	mv_vm_unlock(vm);
	if (done)
		*done = n;
	return 0;
}

/* A request not run by our own processing pass was taken by another
 * processor, which will complete it: waiting on the condition is safe. */
int mv_vm_request_wait(struct mv_vm *vm, struct mv_vm_request *req, int help,
		       int *result)
{
	int busy;

	if (!vm || !req || !req->waitable)
		return -MV_EINVAL;
	/* From inside a hook we hold the lock the processor needs: waiting
	 * would never end. The handle stays valid. */
	mv_vm_lock(vm);
	busy = vm_busy(vm, 1);
	mv_vm_unlock(vm);
	if (busy)
		return busy;
	if (help)
		mv_vm_process_requests(vm, NULL);
	/* The processor may flush and wait for this thread's vCPUs. */
	mmu_thread_quiesce();
	pthread_mutex_lock(&vm->req_lock);
	while (!atomic_load_explicit(&req->done, memory_order_acquire))
		pthread_cond_wait(&vm->req_cond, &vm->req_lock);
	if (result)
		*result = req->result;
	pthread_mutex_unlock(&vm->req_lock);
	mmu_thread_resume();
	free(req);
	return 0;
}

void requests_drain(struct mv_vm *vm)
{
	mv_vm_process_requests(vm, NULL);
}
