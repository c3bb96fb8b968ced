/* Giving freed pages' memory back to the kernel without waiting for
 * their chunk to empty.
 *
 * A freed page keeps its memory ("held") so that the next allocation
 * reuses it without a page fault. The pool holds at most
 * cfg.free_cache_pages such pages: a free that goes beyond punches held
 * pages, chunk by chunk, until half the cache is left, in runs (one
 * fallocate per run of adjacent free pages), so the bound holds again
 * after every call and the frees until the next punch cost no system
 * call. Pages
 * given to the balloon are punched at once whatever the cache (those pages
 * only, in runs of adjacent ids): the guest gave them back so that the
 * host gets the memory.
 *
 * Punching runs under the pool lock: a free page dropped from the lock
 * could be taken and written by another thread before the hole is made,
 * and the hole would erase that data. A punched memfd page reads as zero
 * again, so MV_ALLOC_ZEROED need not clear it. */
#include <fcntl.h>
#include <sys/mman.h>

#include "pool.h"

static void discard(struct mv_host *h, struct chunk *c, uint32_t first,
		    uint32_t n)
{
	size_t off = (size_t)first << MV_PAGE_SHIFT, len = (size_t)n << MV_PAGE_SHIFT;

	if (chunk_seeded(c))
		(void)madvise(c->base + off, len, MADV_DONTNEED);
	else
		(void)fallocate(h->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)((uint64_t)c->id * MV_CHUNK_SIZE + off),
				(off_t)len);
}

/* Punch page @idx of @c if it is free and held; true if it was. */
static bool unhold(struct mv_host *h, struct chunk *c, uint32_t idx)
{
	mv_desc *d = &c->desc[idx];

	if (desc_state(*d) != DESC_FREE || !desc_free_held(*d))
		return false;
	*d = (*d & ~DESC_HELD) | (c->flags & CHUNK_SEEDED ? 0 : DESC_ZEROED);
	c->held--;
	h->held--;
	h->pages_punched++;
	return true;
}

/* Punch exactly the pages @ids (the balloon's), one call per run of
 * adjacent ids: the chunk's other freed pages stay cached. */
static void punch_pages(struct mv_host *h, uint32_t count, const mv_page_id *ids)
{
	for (uint32_t i = 0; i < count;) {
		struct chunk *c = chunk_of(h, ids[i]);
		uint32_t n = 0;

		while (c && i + n < count && ids[i + n] == ids[i] + n &&
		       unhold(h, c, mv_page_index(ids[i + n])))
			n++;
		if (n)
			discard(h, c, mv_page_index(ids[i]), n);
		i += n ? n : 1;
	}
}

void punch_chunk(struct mv_host *h, struct chunk *c)
{
	/* Seeded memory is the caller's: never assumed zero after it. */
	mv_desc zero = chunk_seeded(c) ? 0 : DESC_ZEROED;
	uint32_t run = 0;

	for (uint32_t i = 0; c->held && i <= MV_CHUNK_PAGES; i++) {
		mv_desc *d = i < MV_CHUNK_PAGES ? &c->desc[i] : NULL;

		if (d && desc_state(*d) == DESC_FREE && desc_free_held(*d)) {
			*d = (*d & ~DESC_HELD) | zero;
			run++;
			continue;
		}
		if (run) {
			discard(h, c, i - run, run);
			c->held -= (uint16_t)run;
			h->held -= run;
			h->pages_punched += run;
			run = 0;
		}
	}
}

/* Above the cache: punch chunk by chunk until half of it is left, the
 * chunks just freed into first (with no cache, or one page freed into a
 * chunk that held the rest, that is all it takes: no walk over the pool's
 * chunks). The next half cache of frees then costs no system call, and
 * neighbouring pages freed meanwhile (a VM's pages merged one by one by
 * the sharing scanner, say) go back in one hole each run instead of one
 * per call. */
static void punch_down(struct mv_host *h, uint32_t count,
		       const mv_page_id *ids)
{
	uint64_t low = h->cfg.free_cache_pages / 2;

	for (uint32_t i = 0; h->held > low && i < count; i++) {
		struct chunk *c = chunk_of(h, ids[i]);

		if (c && c->held)
			punch_chunk(h, c);
	}
	for (uint32_t id = 1; h->held > low && id < h->id_hwm; id++) {
		struct chunk *c = h->table[id];

		if (c && c->held)
			punch_chunk(h, c);
	}
}

void punch_settle(struct mv_host *h, struct chunk *c)
{
	if (h->held <= h->cfg.free_cache_pages)
		return;
	if (c && c->held)
		punch_chunk(h, c);
	punch_down(h, 0, NULL);
}

void punch_batch(struct mv_host *h, uint32_t count, const mv_page_id *ids,
		 bool now)
{
	if (now)
		punch_pages(h, count, ids);
	if (h->held > h->cfg.free_cache_pages)
		punch_down(h, count, ids);
}
