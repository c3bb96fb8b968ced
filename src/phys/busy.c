/* Host calls that can meet a page in the middle of a move.
 *
 * The pool marks a page "moving" under its own lock, drops the lock and
 * calls our mover, which needs the VM lock. A thread that holds the VM
 * lock and frees that page meanwhile gets -MV_EBUSY. It cannot wait for
 * the mover (which waits for the lock it holds), so it raises
 * move_waiters and retries; a mover that cannot take the lock at once and
 * sees a waiter refuses the move, the pool clears the mark, and the retry
 * succeeds:
 *
 *   thread T (VM lock held)         pool                 mover
 *                                   mark page moving
 *   mv_host_free -> EBUSY                                trylock fails
 *   move_waiters++                                       sees waiter: refuse
 *   retry                           clear mark
 *   mv_host_free -> 0
 */
#include <sched.h>

#include "vm_internal.h"

static int retry_busy(struct mv_vm *vm, int (*call)(struct mv_vm *, uint32_t,
						    const mv_page_id *),
		      uint32_t n, const mv_page_id *ids)
{
	int rc = call(vm, n, ids);

	if (rc != -MV_EBUSY)
		return rc;
	atomic_fetch_add(&vm->move_waiters, 1);
	while ((rc = call(vm, n, ids)) == -MV_EBUSY)
		sched_yield();
	atomic_fetch_sub(&vm->move_waiters, 1);
	return rc;
}

static int call_free(struct mv_vm *vm, uint32_t n, const mv_page_id *ids)
{
	return mv_host_free(vm->host, vm->id, n, ids);
}

static int call_inflate(struct mv_vm *vm, uint32_t n, const mv_page_id *ids)
{
	return mv_host_balloon_inflate(vm->host, vm->id, n, ids);
}

int host_free(struct mv_vm *vm, uint32_t n, const mv_page_id *ids)
{
	return retry_busy(vm, call_free, n, ids);
}

int host_balloon_inflate(struct mv_vm *vm, uint32_t n, const mv_page_id *ids)
{
	return retry_busy(vm, call_inflate, n, ids);
}

/* The mover's way in: the VM lock, unless a holder waits for this move. */
int mover_lock(struct mv_vm *vm)
{
	while (pthread_mutex_trylock(&vm->lock)) {
		if (atomic_load(&vm->move_waiters))
			return -MV_EBUSY;
		sched_yield();
	}
	return 0;
}
