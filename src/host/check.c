/* A full consistency check of the pool's structures against its counters,
 * for tests and debugging: O(pages). */
#include <stdlib.h>

#include "pool.h"

struct tally {
	uint64_t free, free_shared, private_pages, moving, retired, shared, refs;
	uint64_t empty, chunks, held;
	uint64_t (*alloc)[MV_ACCOUNT_KINDS];   /* per VM handle */
};

/* The free list of @c visits exactly the FREE pages, once each. */
static bool free_list_ok(const struct chunk *c)
{
	uint32_t n = 0;

	for (uint32_t i = c->free_head; i != DESC_NO_NEXT; n++) {
		if (i >= MV_CHUNK_PAGES || n > c->free_count ||
		    desc_state(c->desc[i]) != DESC_FREE)
			return false;
		i = desc_free_next(c->desc[i]);
	}
	return n == c->free_count;
}

static bool chunk_ok(const struct mv_host *h, const struct chunk *c,
		     struct tally *t)
{
	uint32_t nfree = 0, held = 0;

	for (uint32_t i = 0; i < MV_CHUNK_PAGES; i++) {
		mv_desc d = c->desc[i];

		if (desc_state(d) == DESC_FREE) {
			nfree++;
			held += desc_free_held(d);
		} else if (desc_state(d) == DESC_SHARED) {
			if (!(c->flags & CHUNK_SHARED) || !desc_refs(d))
				return false;
			t->shared++;
			t->refs += desc_refs(d);
		} else if (desc_state(d) == DESC_RETIRED) {
			/* Freed in a move: uncharged, freed when it ends. */
			if ((c->flags & CHUNK_SHARED) || !desc_moving(d) ||
			    !h->vms[desc_owner(d)])
				return false;
			t->retired++;
			t->moving++;
		} else if (desc_state(d) == DESC_PRIVATE) {
			if ((c->flags & CHUNK_SHARED) || desc_marked(d) ||
			    !h->vms[desc_owner(d)])
				return false;
			t->alloc[desc_owner(d)][desc_kind(d)]++;
			t->moving += desc_moving(d);
		} else {
			return false;
		}
	}
	t->free += nfree;
	t->free_shared += (c->flags & CHUNK_SHARED) ? nfree : 0;
	t->empty += c->list == LIST_EMPTY;
	t->held += held;
	return nfree == c->free_count && held == c->held && free_list_ok(c) &&
	       (c->list == LIST_NONE) == (nfree == 0);
}

static bool accounts_ok(const struct mv_host *h, struct tally *t)
{
	uint64_t priv = 0, refs = 0;

	for (uint32_t vm = 1; vm <= MV_HOST_MAX_VMS; vm++) {
		const struct account *a = h->vms[vm];

		if (!a)
			continue;
		for (int k = 0; k < MV_ACCOUNT_KINDS; k++) {
			priv += a->allocated[k];
			/* A page being moved is charged once, to its old copy. */
			if (t->alloc[vm][k] < a->allocated[k] ||
			    t->alloc[vm][k] > a->allocated[k] + a->moves)
				return false;
		}
		refs += a->shared_refs;
	}
	return priv == h->private_pages && refs == h->shared_refs;
}

int pool_check(struct mv_host *host)
{
	struct tally t = { 0 };
	bool ok = true;

	t.alloc = calloc(MV_HOST_MAX_VMS + 1, sizeof(*t.alloc));
	if (!t.alloc)
		return -MV_ENOMEM;
	pool_lock(host);
	for (uint32_t id = 1; ok && id < host->id_hwm; id++) {
		if (host->table[id]) {
			t.chunks++;
			ok = host->table[id]->id == id &&
			     chunk_ok(host, host->table[id], &t);
		}
	}
	ok = ok && t.chunks == host->chunks && t.free == host->free_pages &&
	     t.free_shared == host->free_shared && t.empty == host->empty_count &&
	     t.shared == host->shared_pages && t.refs == host->shared_refs &&
	     t.moving == 2 * host->moving_pages &&
	     t.retired == host->retired_pages && t.held == host->held &&
	     host->held <= host->cfg.free_cache_pages &&
	     accounts_ok(host, &t);
	pool_unlock(host);
	free(t.alloc);
	return ok ? 0 : -MV_EINTERNAL;
}
