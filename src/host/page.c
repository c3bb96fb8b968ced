/* Single pages: their host address, their content, their owner records. */
#include <string.h>

#include "pool.h"

/* Lock-free: the chunk table never moves, and a caller asking for a page
 * it owns has seen that page's chunk created (under the lock). */
void *mv_host_page_ptr(const struct mv_host *host, mv_page_id id)
{
	uint32_t cid = mv_page_chunk(id);
	const struct chunk *c;

	if (!host)
		return NULL;
	if (id == MV_ZERO_PAGE)
		return host->zero_page;
	if (cid == 0 || !(c = host->table[cid]))
		return NULL;
	if (desc_state(desc_load(&c->desc[mv_page_index(id)])) == DESC_FREE)
		return NULL;
	return c->base + ((size_t)mv_page_index(id) << MV_PAGE_SHIFT);
}

static enum desc_state state_of(const struct mv_host *h, mv_page_id id)
{
	const struct chunk *c = chunk_of(h, id);

	if (id == MV_ZERO_PAGE)
		return DESC_SHARED;
	return c ? desc_state(c->desc[mv_page_index(id)]) : DESC_FREE;
}

/* Only a private page may be written; any page in use may be read. The
 * copy runs under the lock (one page, once per move): a page freed and its
 * chunk released by another thread meanwhile can then not be touched. */
int mv_host_page_copy(struct mv_host *host, mv_page_id dst, mv_page_id src)
{
	bool ok;

	if (!host || dst == src)
		return -MV_EINVAL;
	pool_lock(host);
	ok = state_of(host, dst) == DESC_PRIVATE &&
	     state_of(host, src) != DESC_FREE;
	if (ok)
		memcpy(mv_host_page_ptr(host, dst), mv_host_page_ptr(host, src),
		       MV_PAGE_SIZE);
	pool_unlock(host);
	return ok ? 0 : -MV_EINVAL;
}

int mv_host_page_set_gfn(struct mv_host *host, mv_vmid vm, mv_page_id id,
			 uint64_t gfn)
{
	struct chunk *c;
	int rc = 0;

	if (!host)
		return -MV_EINVAL;
	if (!desc_gfn_valid(gfn))
		return -MV_ERANGE;
	pool_lock(host);
	c = chunk_of(host, id);
	if (!acct_get(host, vm))
		rc = -MV_ENOENT;
	else if (!c || !desc_owned_by(c->desc[mv_page_index(id)], vm))
		rc = -MV_EINVAL;
	else if (desc_moving(c->desc[mv_page_index(id)]))
		rc = -MV_EBUSY;    /* the mover was told the current gfn */
	else
		desc_store(&c->desc[mv_page_index(id)],
			   desc_with_gfn(c->desc[mv_page_index(id)], gfn));
	pool_unlock(host);
	return rc;
}
