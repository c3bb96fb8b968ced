/* Moving pages between chunks, and defragmentation built on it.
 *
 * A move is three steps. Under the pool lock: pick a target page in a
 * fuller chunk and mark the old page "moving" (the owner cannot free it
 * meanwhile: -MV_EBUSY). Without any pool lock: the owner's mover copies
 * the page and switches its mapping (it takes its own VM lock, which must
 * never be taken inside ours). Under the lock again: free whichever page
 * lost. The account charge never changes: the new page takes it over. */
#include "pool.h"

struct move {
	mv_page_id old_id, new_id;
	mv_vmid vm;
	uint64_t gfn;
	mv_host_move_fn fn;
	void *opaque;
};

/* A target for a page of @arg: another chunk at least as full. Moving a
 * page from the emptier of two equally full chunks still helps: one of
 * them can then empty. */
static bool fuller_than(struct chunk *c, void *arg)
{
	const struct chunk *src = arg;

	return c != src && c->free_count <= src->free_count;
}

static int move_begin(struct mv_host *h, mv_page_id id, struct move *m)
{
	struct chunk *c = chunk_of(h, id), *dst;
	mv_desc *d = c ? &c->desc[mv_page_index(id)] : NULL;
	struct account *a;
	bool zeroed;

	if (!d || desc_state(*d) != DESC_PRIVATE)
		return -MV_EINVAL;
	if (desc_moving(*d))
		return -MV_EBUSY;
	a = h->vms[desc_owner(*d)];
	if (!a->mover)
		return -MV_ESTATE;
	dst = fs_find_private(h, false, fuller_than, c);
	if (!dst)
		return -MV_ENOENT;
	if (budget_check(h, 1))
		return -MV_EBUDGET;
	uint32_t idx = page_take(h, dst, &zeroed);

	dst->desc[idx] = desc_private(desc_owner(*d), desc_kind(*d), desc_gfn(*d));
	fs_update(h, dst);
	desc_store(d, *d | DESC_MOVING);
	h->moving_pages++;
	a->moves++;
	*m = (struct move){ .old_id = id, .new_id = page_id_of(dst->id, idx),
			    .vm = desc_owner(*d), .gfn = desc_gfn(*d),
			    .fn = a->mover, .opaque = a->mover_opaque };
	return 0;
}

/* Free the losing page; with @release, an emptied source chunk goes back
 * to the host at once instead of into the cache. */
static void move_finish(struct mv_host *h, const struct move *m, bool ok,
			bool release)
{
	struct chunk *c = chunk_of(h, m->old_id);
	struct chunk *n = chunk_of(h, m->new_id);
	uint32_t ni = mv_page_index(m->new_id);

	mv_desc *od = &c->desc[mv_page_index(m->old_id)];

	desc_store(od, *od & ~DESC_MOVING);
	h->moving_pages--;
	h->vms[m->vm]->moves--;
	if (ok) {
		page_put(h, c, mv_page_index(m->old_id));
		h->pages_moved++;
		if (release && c->free_count == MV_CHUNK_PAGES)
			chunk_release(h, c);
	} else if (desc_owned_by(n->desc[ni], m->vm)) {
		page_put(h, n, ni);
	}
	chunk_trim_cache(h);
}

static int move_one(struct mv_host *h, mv_page_id id, bool release,
		    mv_page_id *new_id)
{
	struct move m;
	int rc;

	pool_lock(h);
	rc = move_begin(h, id, &m);
	pool_unlock(h);
	if (rc)
		return rc;
	rc = m.fn(m.opaque, m.vm, m.gfn, m.old_id, m.new_id);
	pool_lock(h);
	move_finish(h, &m, rc == 0, release);
	pool_unlock(h);
	if (rc)
		return -MV_EBUSY;
	if (new_id)
		*new_id = m.new_id;
	return 0;
}

int mv_host_move_page(struct mv_host *host, mv_page_id id, mv_page_id *new_id)
{
	if (!host)
		return -MV_EINVAL;
	return move_one(host, id, false, new_id);
}

struct room {
	const struct chunk *src;
	uint64_t free;
};

static bool sum_room(struct chunk *c, void *arg)
{
	struct room *r = arg;

	if (fuller_than(c, (void *)r->src))
		r->free += c->free_count;
	return false;
}

/* Worth vacating: not skipped, and fuller chunks have room for its pages. */
static bool vacatable(struct chunk *c, void *arg)
{
	struct mv_host *h = arg;
	struct room r = { c, 0 };

	if (c->flags & CHUNK_SKIP)
		return false;
	fs_find_private(h, false, sum_room, &r);
	return r.free >= MV_CHUNK_PAGES - c->free_count;
}

/* The next page to move out of the emptiest vacatable chunk, or NIL. */
static mv_page_id pick_victim(struct mv_host *h, uint32_t *chunk)
{
	struct chunk *c = fs_find_private(h, true, vacatable, h);

	for (uint32_t i = 0; c && i < MV_CHUNK_PAGES; i++) {
		mv_desc d = c->desc[i];

		if (desc_state(d) == DESC_PRIVATE && !desc_moving(d)) {
			*chunk = c->id;
			return page_id_of(c->id, i);
		}
	}
	return MV_NIL_PAGE;
}

/* Set or clear CHUNK_SKIP on the chunks in @ids that still exist. */
static void mark_skip(struct mv_host *h, const uint32_t *ids, uint32_t n,
		      bool on)
{
	for (uint32_t i = 0; i < n; i++) {
		struct chunk *c = h->table[ids[i]];

		if (c && on)
			c->flags |= CHUNK_SKIP;
		else if (c)
			c->flags &= (uint8_t)~CHUNK_SKIP;
	}
}

#define DEFRAG_MAX_SKIPS 64

int mv_host_defragment(struct mv_host *host, uint32_t max_moves,
		       uint32_t *moved)
{
	uint32_t skips[DEFRAG_MAX_SKIPS], nskips = 0, done = 0;

	if (!host || !max_moves)
		return -MV_EINVAL;
	while (done < max_moves && nskips < DEFRAG_MAX_SKIPS) {
		uint32_t chunk = 0;
		mv_page_id id;

		pool_lock(host);
		id = pick_victim(host, &chunk);
		pool_unlock(host);
		if (id == MV_NIL_PAGE)
			break;
		int rc = move_one(host, id, true, NULL);

		if (rc == -MV_EBUDGET)
			break;
		if (!rc) {
			done++;
			continue;
		}
		/* The owner refused or cannot move: leave that chunk be. */
		skips[nskips++] = chunk;
		pool_lock(host);
		mark_skip(host, skips + nskips - 1, 1, true);
		pool_unlock(host);
	}
	pool_lock(host);
	mark_skip(host, skips, nskips, false);
	pool_unlock(host);
	if (moved)
		*moved = done;
	return 0;
}
