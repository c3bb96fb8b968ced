/* VM accounts: reservations per kind, what is allocated and ballooned,
 * and the checks an allocation must pass against them and the budget. */
#include <stdlib.h>

#include "pool.h"

static uint64_t res_of(const struct mv_reservation *r, enum mv_account_kind k)
{
	return k == MV_ACCOUNT_BASE ? r->base :
	       k == MV_ACCOUNT_SHADOW ? r->shadow : r->fixed;
}

/* Sum of a reservation, or UINT64_MAX when it does not fit 64 bits. */
static uint64_t res_total(const struct mv_reservation *r)
{
	uint64_t t = r->base + r->shadow;

	if (t < r->base || t + r->fixed < t)
		return UINT64_MAX;
	return t + r->fixed;
}

/* What counts against @kind's reservation: ballooned pages stay charged
 * to the base reservation until the guest deflates. */
static uint64_t acct_used(const struct account *a, enum mv_account_kind kind)
{
	return a->allocated[kind] + (kind == MV_ACCOUNT_BASE ? a->ballooned : 0);
}

struct account *acct_get(const struct mv_host *h, mv_vmid vm)
{
	if (vm == 0 || vm > MV_HOST_MAX_VMS)
		return NULL;
	return h->vms[vm];
}

int budget_check(const struct mv_host *h, uint64_t n)
{
	uint64_t used = h->private_pages + h->shared_pages + h->moving_pages +
			h->retired_pages;

	if (h->cfg.budget_pages &&
	    (used > h->cfg.budget_pages || n > h->cfg.budget_pages - used))
		return -MV_EBUDGET;
	return 0;
}

int acct_check_alloc(const struct mv_host *h, const struct account *a,
		     enum mv_account_kind kind, uint64_t n)
{
	uint64_t res = res_of(&a->res, kind), used = acct_used(a, kind);

	/* used > res only after an owner freed a page of a move it did not
	 * keep (move.c): the charge comes back, the room does not. */
	if (used > res || n > res - used)
		return -MV_ERESERVATION;
	return budget_check(h, n);
}

/* Under MV_OVERCOMMIT_NONE the reservations must fit the budget. */
static int reservation_fits(const struct mv_host *h, uint64_t old_total,
			    uint64_t new_total)
{
	if (new_total == UINT64_MAX)
		return -MV_EINVAL;
	if (h->cfg.overcommit == MV_OVERCOMMIT_NONE && h->cfg.budget_pages &&
	    new_total > h->cfg.budget_pages - (h->reserved - old_total))
		return -MV_EBUDGET;
	return 0;
}

static int account_open(struct mv_host *h, const struct mv_reservation *res,
			mv_vmid *out)
{
	uint64_t total = res_total(res);
	int rc = reservation_fits(h, 0, total);
	mv_vmid vm = 1;

	if (rc)
		return rc;
	while (vm <= MV_HOST_MAX_VMS && h->vms[vm])
		vm++;
	if (vm > MV_HOST_MAX_VMS)
		return -MV_ELIMIT;
	struct account *a = calloc(1, sizeof(*a));

	if (!a)
		return -MV_ENOMEM;
	a->res = *res;
	h->vms[vm] = a;
	h->live[h->nvms++] = vm;
	h->reserved += total;
	*out = vm;
	return 0;
}

int mv_host_vm_create(struct mv_host *host, const struct mv_reservation *res,
		      mv_vmid *out)
{
	int rc;

	if (!host || !res || !out)
		return -MV_EINVAL;
	pool_lock(host);
	rc = account_open(host, res, out);
	pool_unlock(host);
	return rc;
}

static int account_reserve(struct mv_host *h, struct account *a,
			   const struct mv_reservation *res)
{
	uint64_t old_total = res_total(&a->res), total = res_total(res);
	int rc = reservation_fits(h, old_total, total);

	if (rc)
		return rc;
	for (int k = 0; k < MV_ACCOUNT_KINDS; k++)
		if (res_of(res, (enum mv_account_kind)k) <
		    acct_used(a, (enum mv_account_kind)k))
			return -MV_ERESERVATION;
	a->res = *res;
	h->reserved = h->reserved - old_total + total;
	return 0;
}

int mv_host_vm_reserve(struct mv_host *host, mv_vmid vm,
		       const struct mv_reservation *res)
{
	struct account *a;
	int rc;

	if (!host || !res)
		return -MV_EINVAL;
	pool_lock(host);
	a = acct_get(host, vm);
	rc = a ? account_reserve(host, a, res) : -MV_ENOENT;
	pool_unlock(host);
	return rc;
}

/* Once it returns, no move of @vm calls the old mover any more: moves
 * already in flight are waited for (they need the owner's lock, so the
 * caller must not hold it), except from inside the mover itself. */
int mv_host_vm_set_mover(struct mv_host *host, mv_vmid vm, mv_host_move_fn fn,
			 void *opaque)
{
	struct account *a;
	int rc = 0;

	if (!host)
		return -MV_EINVAL;
	pool_lock(host);
	a = acct_get(host, vm);
	if (!a) {
		rc = -MV_ENOENT;
	} else if (move_in_mover(host, vm)) {
		rc = -MV_EBUSY;
	} else {
		/* Only the moves that may call the old mover are waited for:
		 * new ones (with a new mover) must not starve us. */
		a->mover = fn;
		a->mover_opaque = opaque;
		a->mover_gen++;
		a->moves_old = a->moves;
		while (a->moves_old)
			pthread_cond_wait(&host->moves_done, &host->lock);
	}
	pool_unlock(host);
	return rc;
}

/* Free @vm's pages in @c and drop the chunk's affinity to it. */
static uint64_t release_pages_in(struct mv_host *h, struct chunk *c, mv_vmid vm)
{
	uint64_t n = 0;

	fs_detach(h, c);
	if (c->affinity == vm)
		c->affinity = 0;
	for (uint32_t i = 0; i < MV_CHUNK_PAGES; i++) {
		if (desc_owned_by(c->desc[i], vm)) {
			page_push(h, c, i);
			n++;
		}
	}
	fs_place(h, c);
	return n;
}

static void account_close(struct mv_host *h, mv_vmid vm)
{
	struct account *a = h->vms[vm];

	for (uint32_t id = 1; id < h->id_hwm; id++)
		if (h->table[id])
			h->private_pages -= release_pages_in(h, h->table[id], vm);
	for (uint32_t i = 0; i < h->nvms; i++)
		if (h->live[i] == vm)
			h->live[i] = h->live[--h->nvms];
	h->ballooned -= a->ballooned;
	h->reserved -= res_total(&a->res);
	h->vms[vm] = NULL;
	free(a);
	chunk_trim_cache(h);
	for (uint32_t id = 1; id < h->id_hwm; id++)
		punch_settle(h, h->table[id]);
}

int mv_host_vm_destroy(struct mv_host *host, mv_vmid vm)
{
	struct account *a;
	int rc = 0;

	if (!host)
		return -MV_EINVAL;
	pool_lock(host);
	a = acct_get(host, vm);
	if (!a)
		rc = -MV_ENOENT;
	else if (a->shared_refs || a->moves)
		rc = -MV_EBUSY;
	else
		account_close(host, vm);
	pool_unlock(host);
	/* Its pages are gone, leaving holes in chunks other VMs keep: fill
	 * them from the emptiest chunks, a bounded number of moves. */
	if (!rc)
		mv_host_defragment(host, MV_HOST_DESTROY_DEFRAG_MOVES, NULL);
	return rc;
}
