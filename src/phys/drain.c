/* Handy caches give way under budget pressure. Every VM keeps up to
 * handy_high zeroed pages charged to the host budget; with over-commitment
 * the caches of idle VMs could hold the budget that another VM needs for
 * its first write. When an allocation of a VM is refused with -MV_EBUDGET,
 * the caches of the other VMs on the same pool are emptied back to the
 * pool and the allocation is tried once more.
 *
 * The VMs live in one process-wide list under its own mutex. Lock order:
 * the allocating VM's lock, then the list lock, then another VM's lock
 * taken with trylock only, so no lock is ever waited for against the
 * order. A VM whose lock is held elsewhere (it is working) is asked
 * instead: its holder empties its cache at its next mv_vm_unlock, and the
 * allocation is retried a bounded number of times meanwhile. A VM leaves
 * the list first thing in its destruction, under the list lock, so a
 * drain never meets a VM being destroyed. */
#include <pthread.h>
#include <sched.h>

#include "vm_internal.h"

static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mv_vm *list_head;

void drain_register(struct mv_vm *vm)
{
	pthread_mutex_lock(&list_lock);
	vm->drain_prev = NULL;
	vm->drain_next = list_head;
	if (list_head)
		list_head->drain_prev = vm;
	list_head = vm;
	vm->drain_listed = 1;
	pthread_mutex_unlock(&list_lock);
}

void drain_unregister(struct mv_vm *vm)
{
	pthread_mutex_lock(&list_lock);
	if (vm->drain_listed) {
		if (vm->drain_prev)
			vm->drain_prev->drain_next = vm->drain_next;
		else
			list_head = vm->drain_next;
		if (vm->drain_next)
			vm->drain_next->drain_prev = vm->drain_prev;
		vm->drain_listed = 0;
	}
	pthread_mutex_unlock(&list_lock);
}

/* The cache may go now: no hook of @vm runs (it is in the middle of a
 * change) and no write has planned on it. The lock is recursive, so the
 * caller may be inside @vm already (a callback of it writing another
 * VM); these are the cases where a cache is in use across a call. */
static uint64_t release_cache(struct mv_vm *vm)
{
	uint64_t n = vm->nhandy;

	if (vm_busy(vm, 1) || vm->plan || !n)
		return 0;
	handy_release_all(vm);
	vm->st.handy_drained += n;
	return n;
}

/* Empty @other's cache if its lock is free; if it is held (the VM is
 * working), ask its holder to do it at its next unlock. */
static uint64_t drain_one(struct mv_vm *other, unsigned *asked)
{
	uint64_t n;

	if (pthread_mutex_trylock(&other->lock)) {
		if (atomic_load_explicit(&other->nhandy_hint,
					 memory_order_relaxed)) {
			atomic_store_explicit(&other->drain_wanted, 1,
					      memory_order_relaxed);
			(*asked)++;
		}
		return 0;
	}
	n = release_cache(other);
	pthread_mutex_unlock(&other->lock);
	return n;
}

/* At an unlock, with the lock still held: a drain asked for this VM's
 * cache while it was busy. */
void drain_if_wanted(struct mv_vm *vm)
{
	if (!atomic_load_explicit(&vm->drain_wanted, memory_order_relaxed) ||
	    vm_busy(vm, 1) || vm->plan)
		return;   /* not asked, or the cache may be in use: later */
	atomic_store_explicit(&vm->drain_wanted, 0, memory_order_relaxed);
	release_cache(vm);
}

/* Empty the handy caches of the other VMs of @vm's pool; how many pages
 * went back, and in @asked how many busy VMs were asked to. Called with
 * @vm's lock held. */
static uint64_t drain_round(struct mv_vm *vm, unsigned *asked)
{
	uint64_t n = 0;

	*asked = 0;
	pthread_mutex_lock(&list_lock);
	for (struct mv_vm *o = list_head; o; o = o->drain_next)
		if (o != vm && o->host == vm->host)
			n += drain_one(o, asked);
	pthread_mutex_unlock(&list_lock);
	if (n)
		vm->st.handy_drains++;
	return n;
}

/* Drain the other caches and retry @try (a budget-refused allocation):
 * once if pages came back at once; if busy VMs were only asked, retry
 * while they let go at their next unlock, a bounded number of times
 * (this VM's lock is held meanwhile, so waiting for theirs could
 * deadlock). */
int drain_retry(struct mv_vm *vm, int (*try)(struct mv_vm *, void *),
		void *arg)
{
	unsigned asked;
	int rc = -MV_EBUDGET;

	if (drain_round(vm, &asked))
		rc = try(vm, arg);
	for (unsigned k = 0; rc == -MV_EBUDGET && asked && k < 64; k++) {
		sched_yield();
		rc = try(vm, arg);
	}
	return rc;
}

struct alloc_args {
	enum mv_account_kind kind;
	uint32_t count;
	const uint64_t *gfns;
	unsigned flags;
	mv_page_id *ids;
};

static int alloc_try(struct mv_vm *vm, void *arg)
{
	struct alloc_args *a = arg;

	return mv_host_alloc(vm->host, vm->id, a->kind, a->count, a->gfns,
			     a->flags, a->ids);
}

/* mv_host_alloc for @vm; a budget refusal drains the other VMs' caches
 * and tries again. All or nothing, like mv_host_alloc. */
int vm_alloc(struct mv_vm *vm, enum mv_account_kind kind, uint32_t count,
	     const uint64_t *gfns, unsigned flags, mv_page_id *ids)
{
	struct alloc_args a = { kind, count, gfns, flags, ids };
	int rc = alloc_try(vm, &a);

	return rc == -MV_EBUDGET ? drain_retry(vm, alloc_try, &a) : rc;
}
