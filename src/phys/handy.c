/* Handy pages: the plex86 page pool with a minimum and a maximum of free
 * pages. Writes that need a page take one from here without a host round
 * trip; below the low watermark the cache is refilled to the high one in a
 * single mv_host_alloc; pages handed back above the high watermark go to
 * the host. Handy pages are zeroed and carry no guest frame until used. */
#include <string.h>

#include "vm_internal.h"

/* Ask for as many pages as fit; on a reservation or budget refusal retry
 * with half as many, so a nearly full VM still gets its last pages. */
static int handy_refill(struct mv_vm *vm)
{
	uint32_t want = vm->handy_high - vm->nhandy;
	int rc = -MV_ENOMEM;

	while (want) {
		rc = mv_host_alloc(vm->host, vm->id, MV_ACCOUNT_BASE, want,
				   NULL, MV_ALLOC_ZEROED,
				   vm->handy + vm->nhandy);
		if (!rc) {
			vm->nhandy += want;
			vm->st.handy_refills++;
			return 0;
		}
		if (rc != -MV_ERESERVATION && rc != -MV_EBUDGET)
			return rc;
		want /= 2;
	}
	return rc;
}

int handy_take(struct mv_vm *vm, uint64_t gfn, mv_page_id *out)
{
	int rc = 0;

	if (vm->nhandy < vm->handy_low)
		rc = handy_refill(vm);
	if (vm->nhandy == 0)
		return rc ? rc : -MV_ENOMEM;
	rc = mv_host_page_set_gfn(vm->host, vm->id, vm->handy[vm->nhandy - 1],
				  gfn);
	if (rc)
		return rc;
	*out = vm->handy[--vm->nhandy];
	return 0;
}

/* Take back pages the VM no longer uses: zeroed into the cache up to the
 * high watermark, the surplus freed to the host in one call. */
int handy_give(struct mv_vm *vm, const mv_page_id *ids, uint32_t n)
{
	uint32_t keep = vm->handy_high - vm->nhandy;

	if (keep > n)
		keep = n;
	for (uint32_t i = 0; i < keep; i++) {
		uint8_t *ptr = vm_page_ptr(vm, ids[i]);

		if (!ptr || mv_host_page_set_gfn(vm->host, vm->id, ids[i],
						 MV_GFN_NONE))
			return -MV_ECORRUPT;
		memset(ptr, 0, MV_PAGE_SIZE);
		vm->handy[vm->nhandy++] = ids[i];
	}
	if (n == keep)
		return 0;
	return host_free(vm, n - keep, ids + keep);
}

void handy_release_all(struct mv_vm *vm)
{
	if (vm->nhandy)
		host_free(vm, vm->nhandy, vm->handy);
	vm->nhandy = 0;
}
