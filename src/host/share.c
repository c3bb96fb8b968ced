/* Shared pages: one copy referenced by several VMs, kept in shared chunks
 * only, with a reference count and checksum bits in its descriptor. */
#include <string.h>

#include "pool.h"

/* A shared chunk with a free page (pool_ensure_free succeeded). */
static struct chunk *pick_shared(struct mv_host *h)
{
	struct chunk *c = fs_fullest(h, &h->shared);

	if (c)
		return c;
	c = fs_pop_empty(h);
	chunk_flag(c, CHUNK_SHARED, true);
	h->free_shared += MV_CHUNK_PAGES;
	return c;
}

static int share_alloc_locked(struct mv_host *h, mv_vmid vm, uint64_t checksum,
			      mv_page_id *out)
{
	struct account *a = acct_get(h, vm);
	struct chunk *c;
	bool zeroed;
	int rc;

	if (!a)
		return -MV_ENOENT;
	rc = budget_check(h, 1);
	if (!rc)
		rc = pool_ensure_free(h, 1, true);
	if (rc)
		return rc;
	c = pick_shared(h);
	uint32_t idx = page_take(h, c, &zeroed);

	c->desc[idx] = desc_shared(1, checksum);
	fs_update(h, c);
	h->shared_pages++;
	h->shared_refs++;
	a->shared_refs++;
	*out = page_id_of(c->id, idx);
	return 0;
}

int mv_host_share_alloc(struct mv_host *host, mv_vmid vm, const void *content,
			uint64_t checksum, mv_page_id *out)
{
	int rc;

	if (!host || !content || !out)
		return -MV_EINVAL;
	pool_lock(host);
	rc = share_alloc_locked(host, vm, checksum, out);
	pool_unlock(host);
	/* Only the caller knows the id yet: fill it outside the lock. */
	if (!rc)
		memcpy(mv_host_page_ptr(host, *out), content, MV_PAGE_SIZE);
	return rc;
}

/* The descriptor of shared page @id, or NULL. */
static mv_desc *shared_desc(const struct mv_host *h, mv_page_id id)
{
	struct chunk *c = chunk_of(h, id);
	mv_desc *d = c ? &c->desc[mv_page_index(id)] : NULL;

	return d && desc_state(*d) == DESC_SHARED ? d : NULL;
}

static int share_ref(struct mv_host *h, mv_vmid vm, mv_page_id id, int delta)
{
	struct account *a = acct_get(h, vm);
	mv_desc *d = shared_desc(h, id);
	uint32_t refs;

	if (!a)
		return -MV_ENOENT;
	if (!d || (delta < 0 && !a->shared_refs))
		return -MV_EINVAL;
	refs = desc_refs(*d);
	if (delta > 0 && refs == DESC_REFS_MAX)
		return -MV_ELIMIT;
	desc_store(d, desc_with_refs(*d, delta > 0 ? refs + 1 : refs - 1));
	a->shared_refs += (uint64_t)(int64_t)delta;
	h->shared_refs += (uint64_t)(int64_t)delta;
	if (refs == 1 && delta < 0) {
		page_put(h, chunk_of(h, id), mv_page_index(id));
		h->shared_pages--;
		chunk_trim_cache(h);
		punch_settle(h, chunk_of(h, id));
	}
	return 0;
}

int mv_host_share_get(struct mv_host *host, mv_vmid vm, mv_page_id id)
{
	int rc;

	if (!host)
		return -MV_EINVAL;
	pool_lock(host);
	rc = share_ref(host, vm, id, 1);
	pool_unlock(host);
	return rc;
}

int mv_host_share_put(struct mv_host *host, mv_vmid vm, mv_page_id id)
{
	int rc;

	if (!host)
		return -MV_EINVAL;
	pool_lock(host);
	rc = share_ref(host, vm, id, -1);
	pool_unlock(host);
	return rc;
}

int mv_host_share_checksum(const struct mv_host *host, mv_page_id id,
			   uint64_t *checksum)
{
	mv_desc *d;

	if (!host || !checksum)
		return -MV_EINVAL;
	pool_lock(host);
	d = shared_desc(host, id);
	if (d)
		*checksum = desc_checksum(*d);
	pool_unlock(host);
	return d ? 0 : -MV_EINVAL;
}

int mv_host_share_refs(const struct mv_host *host, mv_page_id id,
		       uint32_t *refs)
{
	mv_desc *d;

	if (!host || !refs)
		return -MV_EINVAL;
	pool_lock(host);
	d = shared_desc(host, id);
	if (d)
		*refs = desc_refs(*d);
	pool_unlock(host);
	return d ? 0 : -MV_EINVAL;
}
