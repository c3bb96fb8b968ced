/* The shadow page pool (plex86's "page pool with a minimum and maximum
 * number of free pages"): host pages for shadow tables, charged to the
 * VM's SHADOW account, kept in a per-VM cache that is refilled from the
 * host in one batch when it runs low and given back in one batch when it
 * holds too many. */
#include <string.h>

#include "mmu/shadow.h"

/* Fill to the middle of [min, max] (at least @need pages) in one call. */
static int pool_refill(struct mv_mmu *m, uint32_t need)
{
	struct shadow_pool *p = &m->pool;
	uint32_t want = (p->min + p->max) / 2;

	if (want < need)
		want = need;
	if (want > p->max)
		want = p->max;
	if (p->n >= want)
		return 0;
	int rc = mv_host_alloc(m->host, m->vmid, MV_ACCOUNT_SHADOW,
			       want - p->n, NULL, 0, p->free + p->n);
	if (rc)
		return rc;
	p->refills++;
	p->n = want;
	return 0;
}

/* Make sure @need pages can be taken without asking the host (the fault
 * path calls this before it changes anything). */
int pool_ensure(struct mv_mmu *m, uint32_t need)
{
	if (m->pool.n >= need && m->pool.n >= m->pool.min)
		return 0;
	if (need > m->pool.max)
		return -MV_EINVAL;
	int rc = pool_refill(m, need);

	if (rc && m->pool.n >= need)
		return 0;  /* below the low mark, but enough for now */
	return rc;
}

/* A zeroed shadow table. */
int pool_take(struct mv_mmu *m, mv_page_id *id, uint64_t **table)
{
	struct shadow_pool *p = &m->pool;

	if (!p->n) {
		int rc = pool_refill(m, 1);

		if (rc)
			return rc;
	}
	*id = p->free[--p->n];
	*table = mv_host_page_ptr(m->host, *id);
	if (!*table)
		return -MV_EINTERNAL;
	memset(*table, 0, MV_PAGE_SIZE);
	return 0;
}

static void pool_shrink(struct mv_mmu *m, uint32_t to)
{
	struct shadow_pool *p = &m->pool;

	if (p->n <= to)
		return;
	if (mv_host_free(m->host, m->vmid, p->n - to, p->free + to) == 0) {
		p->n = to;
		p->returns++;
	}
}

void pool_give(struct mv_mmu *m, mv_page_id id)
{
	struct shadow_pool *p = &m->pool;

	if (p->n == p->max)
		pool_shrink(m, (p->min + p->max) / 2);
	if (p->n < p->max)
		p->free[p->n++] = id;
	else
		mv_host_free(m->host, m->vmid, 1, &id);
}

void pool_drain(struct mv_mmu *m)
{
	pool_shrink(m, 0);
}
