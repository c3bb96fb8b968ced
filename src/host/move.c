/* Moving pages between chunks, and defragmentation built on it.
 *
 * A move is three steps. Under the pool lock: take a target page in a
 * fuller chunk and mark both pages "moving"; their gfn is then frozen
 * (mv_host_page_set_gfn says -MV_EBUSY). Without the pool lock: the
 * owner's mover copies the page and switches its mapping (it takes its
 * own VM lock, which must never be taken inside ours). Under the lock
 * again: the loser is freed, the old page if the mover switched, else the
 * new one. The pair carries one charge, the old page's, throughout.
 *
 * The owner may free either page meanwhile (mv_host_free, balloon
 * inflate): it cannot wait for a mover that waits for the owner's lock.
 * The call succeeds and drops the charge at once, but such a page is
 * retired, not freed: it stays out of the free lists (the mover may still
 * read it) until the finish frees it. The finish keeps the owner's page
 * (the new one if the mover switched, else the old one) and frees the
 * other; had the owner freed that other page, the charge comes back:
 *
 *   owner (VM lock held)          pool                     mover
 *                                 mark old + new moving
 *   mv_host_free(old) -> 0                                 waits for VM lock
 *   (charge dropped, old retired)                          old gone: refuse
 *                                 free new, free old
 */
#include "pool.h"

struct move {
	mv_page_id old_id, new_id;
	mv_vmid vm;
	uint64_t gfn;
	mv_host_move_fn fn;
	void *opaque;
	uint32_t gen;       /* the account's mover_gen when it began */
};

/* The move whose mover this thread is running, if any. */
static __thread const struct move *in_mover;
static __thread const struct mv_host *in_mover_host;

bool move_in_mover(const struct mv_host *h, mv_vmid vm)
{
	return in_mover && in_mover_host == h && in_mover->vm == vm;
}

struct target {
	const struct chunk *src;
	mv_vmid owner;      /* whose page moves; 0: any chunk will do */
};

/* A target for a page of @t->owner in @t->src: another chunk at least as
 * full, that is the owner's own or nobody's (affinity: a VM's page never
 * moves into another VM's chunk). Moving a page from the emptier of two
 * equally full chunks still helps: one of them can then empty. */
static bool fuller_than(struct chunk *c, void *arg)
{
	const struct target *t = arg;

	return c != t->src && c->free_count <= t->src->free_count &&
	       (!t->owner || c->affinity == 0 || c->affinity == t->owner);
}

/* The target chunk: the owner's own or an orphan; with @any (an explicit
 * mv_host_move_page), any fuller chunk when there is no such one. */
static struct chunk *pick_target(struct mv_host *h, struct chunk *src,
				 mv_vmid owner, bool any)
{
	struct chunk *c = fs_find_private(h, false, fuller_than,
					  &(struct target){ src, owner });

	if (!c && any)
		c = fs_find_private(h, false, fuller_than,
				    &(struct target){ src, 0 });
	return c;
}

static int move_begin(struct mv_host *h, mv_page_id id, bool any,
		      struct move *m)
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
	dst = pick_target(h, c, desc_owner(*d), any);
	if (!dst)
		return -MV_ENOENT;
	if (budget_check(h, 1))
		return -MV_EBUDGET;
	uint32_t idx = page_take(h, dst, &zeroed);

	dst->desc[idx] = desc_private(desc_owner(*d), desc_kind(*d),
				      desc_gfn(*d)) | DESC_MOVING;
	fs_update(h, dst);
	desc_store(d, *d | DESC_MOVING);
	h->moving_pages++;
	a->moves++;
	*m = (struct move){ .old_id = id, .new_id = page_id_of(dst->id, idx),
			    .vm = desc_owner(*d), .gfn = desc_gfn(*d),
			    .fn = a->mover, .opaque = a->mover_opaque,
			    .gen = a->mover_gen };
	return 0;
}

/* The owner freed @lose, the page it did not keep (a page it never had,
 * or one it had already switched away from): that free dropped the charge
 * the kept page still needs. Take it back, and the balloon credit too. */
static void unretire(struct mv_host *h, struct account *a, mv_desc d)
{
	a->allocated[desc_kind(d)]++;
	h->private_pages++;
	if ((d & DESC_RETIRED_BALLOON) && a->ballooned) {
		a->ballooned--;
		h->ballooned--;
	}
}

/* Free the loser and keep the owner's page (the new one when the mover
 * switched) unless the owner freed it meanwhile (then its charge is
 * already gone). With @release, an emptied source chunk goes back to the
 * host at once instead of into the cache. */
static void move_finish(struct mv_host *h, const struct move *m, bool ok,
			bool release)
{
	struct account *a = h->vms[m->vm];
	mv_page_id keep = ok ? m->new_id : m->old_id;
	mv_page_id lose = ok ? m->old_id : m->new_id;
	struct chunk *kc = chunk_of(h, keep), *lc = chunk_of(h, lose);
	mv_desc *kd = &kc->desc[mv_page_index(keep)];
	mv_desc ld = lc->desc[mv_page_index(lose)];

	if (desc_state(ld) == DESC_RETIRED) {
		unretire(h, a, ld);
		h->retired_pages--;
	}
	page_put(h, lc, mv_page_index(lose));
	if (desc_state(*kd) == DESC_RETIRED) {
		h->retired_pages--;
		page_put(h, kc, mv_page_index(keep));
	} else {
		desc_store(kd, *kd & ~DESC_MOVING);
	}
	h->moving_pages--;
	a->moves--;
	if (m->gen != a->mover_gen)
		a->moves_old--;
	if (ok)
		h->pages_moved++;
	if (ok && release && lc->free_count == MV_CHUNK_PAGES)
		chunk_release(h, lc);
	chunk_trim_cache(h);
	punch_settle(h, chunk_of(h, lose));
	punch_settle(h, chunk_of(h, keep));
	pthread_cond_broadcast(&h->moves_done);
}

static int move_one(struct mv_host *h, mv_page_id id, bool release,
		    mv_page_id *new_id)
{
	const struct move *outer = in_mover;
	const struct mv_host *outer_host = in_mover_host;
	struct move m;
	int rc;

	pool_lock(h);
	/* Only defragmentation (@release) holds to affinity strictly. */
	rc = move_begin(h, id, !release, &m);
	pool_unlock(h);
	if (rc)
		return rc;
	in_mover = &m;
	in_mover_host = h;
	rc = m.fn(m.opaque, m.vm, m.gfn, m.old_id, m.new_id);
	in_mover = outer;
	in_mover_host = outer_host;
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
	struct target t;
	uint64_t free;
};

static bool sum_room(struct chunk *c, void *arg)
{
	struct room *r = arg;

	if (fuller_than(c, &r->t))
		r->free += c->free_count;
	return false;
}

/* Worth vacating: not skipped, and fuller chunks that may take its pages
 * (its VM's own, or nobody's) have room for them. */
static bool vacatable(struct chunk *c, void *arg)
{
	struct mv_host *h = arg;
	struct room r = { { c, c->affinity }, 0 };

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

		if (c)
			chunk_flag(c, CHUNK_SKIP, on);
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
