/* The memory balloon. The guest's driver reads the host's target and
 * inflates (gives frames back) or deflates (takes them back). Inflating a
 * private page frees it in the host pool, which keeps it charged to the
 * VM's reservation as ballooned; the page then reads as zeros. Lists are
 * checked as a whole first: a bad frame changes nothing. */
#include <stdlib.h>

#include "vm_internal.h"

static int gfn_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Every frame a RAM page, listed once, ballooned (@want) or not. */
static int list_check(struct mv_vm *vm, const uint64_t *gfns, uint32_t n,
		      int want_ballooned)
{
	uint64_t *sorted = malloc(n * sizeof(*sorted));
	int rc = 0;

	if (!sorted)
		return -MV_ENOMEM;
	for (uint32_t i = 0; i < n && !rc; i++) {
		const struct mv_page *p = page_find(vm, gfns[i]);

		sorted[i] = gfns[i];
		if (!p)
			rc = -MV_ERANGE;
		else if (p->type != MV_PAGE_RAM ||
			 (p->state == MV_PAGE_BALLOONED) != want_ballooned)
			rc = -MV_ESTATE;
	}
	qsort(sorted, n, sizeof(*sorted), gfn_cmp);
	for (uint32_t i = 1; i < n && !rc; i++)
		if (sorted[i] == sorted[i - 1])
			rc = -MV_EINVAL;
	free(sorted);
	return rc;
}

static int inflate_locked(struct mv_vm *vm, const uint64_t *gfns, uint32_t n)
{
	mv_page_id *ids = malloc(n * sizeof(*ids));
	uint32_t nids = 0;
	int rc;

	if (!ids)
		return -MV_ENOMEM;
	/* The MMU drops its maps before the pages go back to the pool. */
	for (uint32_t i = 0; i < n; i++) {
		const struct mv_page *p = page_find(vm, gfns[i]);

		vm_notify(vm, gfns[i], 1, MV_NOTIFY_BALLOON);
		if (page_is_private(p))
			ids[nids++] = p->host_id;
	}
	rc = nids ? mv_host_balloon_inflate(vm->host, vm->id, nids, ids) : 0;
	free(ids);
	for (uint32_t i = 0; i < n && !rc; i++) {
		struct mv_page *p = page_find(vm, gfns[i]);
		uint8_t f = (uint8_t)(page_is_private(p) ? MV_PAGE_F_BALLOON_HOST : 0);

		if (p->state == MV_PAGE_SHARED)
			mv_host_share_put(vm->host, vm->id, p->host_id);
		page_set(vm, p, MV_PAGE_BALLOONED, MV_NIL_PAGE);
		page_flags_reset(p, f | MV_PAGE_F_DIRTY);
	}
	return rc;
}

static int deflate_locked(struct mv_vm *vm, const uint64_t *gfns, uint32_t n)
{
	uint64_t charged = 0;
	int rc;

	for (uint32_t i = 0; i < n; i++)
		charged += !!(page_find(vm, gfns[i])->flags &
			      MV_PAGE_F_BALLOON_HOST);
	rc = charged ? mv_host_balloon_deflate(vm->host, vm->id, charged) : 0;
	for (uint32_t i = 0; i < n && !rc; i++) {
		struct mv_page *p = page_find(vm, gfns[i]);

		page_set(vm, p, MV_PAGE_ZERO, MV_ZERO_PAGE);
		p->flags &= (uint8_t)~MV_PAGE_F_BALLOON_HOST;
	}
	return rc;
}

/* Check the list as a whole under the lock, then apply @op to it. */
static int balloon_apply(struct mv_vm *vm, const uint64_t *gfns, uint32_t n,
			 int ballooned,
			 int (*op)(struct mv_vm *, const uint64_t *, uint32_t))
{
	int rc;

	if (!vm || !gfns || !n)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 1);
	if (!rc)
		rc = list_check(vm, gfns, n, ballooned);
	if (!rc)
		rc = op(vm, gfns, n);
	mv_vm_unlock(vm);
	return rc;
}

int mv_vm_balloon_inflate(struct mv_vm *vm, const uint64_t *gfns,
			  uint32_t count)
{
	return balloon_apply(vm, gfns, count, 0, inflate_locked);
}

int mv_vm_balloon_deflate(struct mv_vm *vm, const uint64_t *gfns,
			  uint32_t count)
{
	return balloon_apply(vm, gfns, count, 1, deflate_locked);
}

int mv_vm_balloon_set_target(struct mv_vm *vm, uint64_t pages)
{
	int rc = 0;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);   /* the RAM size changes with the layout */
	if (pages > vm->st.ram_pages)
		rc = -MV_ERANGE;
	else
		vm->balloon_target = pages;
	mv_vm_unlock(vm);
	return rc;
}

uint64_t mv_vm_balloon_get_target(struct mv_vm *vm)
{
	uint64_t t;

	if (!vm)
		return 0;
	mv_vm_lock(vm);
	t = vm->balloon_target;
	mv_vm_unlock(vm);
	return t;
}
