/* Handy pages: the plex86 page pool with a minimum and a maximum of free
 * pages. Writes that need a page take one from here without a host round
 * trip; below the low watermark the cache is refilled to the high one in a
 * single mv_host_alloc; pages handed back above the high watermark go to
 * the host. Handy pages are zeroed and carry no guest frame until used. */
#include <string.h>

#include "vm_internal.h"

/* The cache's size for drain.c, which may look without the VM lock. */
static void hint_update(struct mv_vm *vm)
{
	atomic_store_explicit(&vm->nhandy_hint, vm->nhandy,
			      memory_order_relaxed);
}

/* Pages the VM could still need: RAM pages without a private page. A
 * cache never holds more, whatever its high mark (a small VM with a big
 * mark would otherwise take pages it can never use). */
static uint64_t unbacked_pages(const struct mv_vm *vm)
{
	return vm->st.ram_pages - vm->st.pages[MV_PAGE_ALLOCATED] -
	       vm->st.pages[MV_PAGE_WRITE_MONITORED];
}

/* Ask for as many pages as fit; on a reservation or budget refusal retry
 * with half as many, so a nearly full VM still gets its last pages. */
static int refill_halving(struct mv_vm *vm)
{
	uint64_t room = unbacked_pages(vm);
	uint32_t want = vm->handy_high - vm->nhandy;
	int rc = -MV_ENOMEM;

	if (room <= vm->nhandy)
		return 0;   /* the cache already covers every page left */
	if (want > room - vm->nhandy)
		want = (uint32_t)(room - vm->nhandy);
	while (want) {
		rc = mv_host_alloc(vm->host, vm->id, MV_ACCOUNT_BASE, want,
				   NULL, MV_ALLOC_ZEROED | MV_ALLOC_POPULATE,
				   vm->handy + vm->nhandy);
		if (!rc) {
			vm->nhandy += want;
			hint_update(vm);
			vm->st.handy_refills++;
			return 0;
		}
		if (rc != -MV_ERESERVATION && rc != -MV_EBUDGET)
			return rc;
		want /= 2;
	}
	return rc;
}

static int refill_try(struct mv_vm *vm, void *arg)
{
	(void)arg;
	return refill_halving(vm);
}

/* Refused by the budget even for one page: the other VMs' caches give
 * their pages back (drain.c) and the refill is tried again. */
static int handy_refill(struct mv_vm *vm)
{
	int rc = refill_halving(vm);

	return rc == -MV_EBUDGET ? drain_retry(vm, refill_try, NULL) : rc;
}

/* The newest handy page whose frame can be set: the pool may be moving
 * one (its frame is frozen until the mover, waiting for our lock, has
 * switched it in the cache). If all are, one page comes from the pool. */
static int handy_pick(struct mv_vm *vm, uint64_t gfn, mv_page_id *out)
{
	for (uint32_t i = vm->nhandy; i--;) {
		int rc = mv_host_page_set_gfn(vm->host, vm->id, vm->handy[i],
					      gfn);

		if (rc == -MV_EBUSY)
			continue;
		if (rc)
			return rc;
		*out = vm->handy[i];
		vm->handy[i] = vm->handy[--vm->nhandy];
		hint_update(vm);
		return 0;
	}
	return vm_alloc(vm, MV_ACCOUNT_BASE, 1, &gfn, MV_ALLOC_ZEROED, out);
}

/* Refill below the low mark; an empty cache refills whatever the low mark
 * (it may be 0). */
int handy_top_up(struct mv_vm *vm)
{
	if (vm->nhandy < vm->handy_low || vm->nhandy == 0)
		return handy_refill(vm);
	return 0;
}

int handy_take(struct mv_vm *vm, uint64_t gfn, mv_page_id *out)
{
	/* A write planned its pages: they come first. */
	int rc = write_plan_take(vm, gfn, out);

	if (rc != -MV_ENOENT)
		return rc;
	rc = handy_top_up(vm);
	if (vm->nhandy == 0)
		return rc ? rc : -MV_ENOMEM;
	return handy_pick(vm, gfn, out);
}

/* Keep one page the VM no longer uses as a handy page, zeroed; a page the
 * pool is moving (its frame frozen) is freed instead. */
static int handy_keep(struct mv_vm *vm, mv_page_id id)
{
	uint8_t *ptr = vm_page_ptr(vm, id);
	int rc = mv_host_page_set_gfn(vm->host, vm->id, id, MV_GFN_NONE);

	if (rc == -MV_EBUSY)
		return mv_host_free(vm->host, vm->id, 1, &id);
	if (rc || !ptr)
		return -MV_EINTERNAL;
	memset(ptr, 0, MV_PAGE_SIZE);
	vm->handy[vm->nhandy++] = id;
	hint_update(vm);
	return 0;
}

/* Take back pages the VM no longer uses: zeroed into the cache up to the
 * high watermark, the surplus freed to the host in one call. */
int handy_give(struct mv_vm *vm, const mv_page_id *ids, uint32_t n)
{
	uint32_t keep = vm->handy_high - vm->nhandy;
	int rc = 0;

	if (keep > n)
		keep = n;
	if (n > keep)
		rc = mv_host_free(vm->host, vm->id, n - keep, ids + keep);
	for (uint32_t i = 0; i < keep && !rc; i++)
		rc = handy_keep(vm, ids[i]);
	return rc;
}

void handy_release_all(struct mv_vm *vm)
{
	if (vm->nhandy)
		mv_host_free(vm->host, vm->id, vm->nhandy, vm->handy);
	vm->nhandy = 0;
	hint_update(vm);
}
