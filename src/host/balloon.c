/* Ballooning: pages the guest gives back are freed but stay charged to
 * the VM's base reservation (allocated + ballooned + new <= reserved). */
#include "pool.h"

int mv_host_balloon_inflate(struct mv_host *host, mv_vmid vm, uint32_t count,
			    const mv_page_id *ids)
{
	int rc;

	if (!host || !ids || !count)
		return -MV_EINVAL;
	pool_lock(host);
	rc = pool_free_batch(host, vm, count, ids, true);
	pool_unlock(host);
	return rc;
}

int mv_host_balloon_deflate(struct mv_host *host, mv_vmid vm, uint64_t count)
{
	struct account *a;
	int rc = 0;

	if (!host || !count)
		return -MV_EINVAL;
	pool_lock(host);
	a = acct_get(host, vm);
	if (!a) {
		rc = -MV_ENOENT;
	} else if (count > a->ballooned) {
		rc = -MV_EINVAL;
	} else {
		a->ballooned -= count;
		host->ballooned -= count;
	}
	pool_unlock(host);
	return rc;
}
