/* Private pages: batch allocation and free, one lock round-trip each. */
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>

#include "pool.h"

int pool_ensure_free(struct mv_host *h, uint64_t n, bool shared)
{
	uint64_t empty = (uint64_t)h->empty_count * MV_CHUNK_PAGES;
	uint64_t have = shared ? h->free_shared + empty
			       : h->free_pages - h->free_shared;

	if (have >= n)
		return 0;
	return chunk_reserve_new(h, (uint32_t)((n - have + MV_CHUNK_PAGES - 1) /
					       MV_CHUNK_PAGES));
}

/* The hint serves only while partly used: once it is empty, the VM's other
 * partly used chunks come first. */
static bool hint_usable(const struct mv_host *h, uint32_t id)
{
	const struct chunk *c = id && id < h->id_hwm ? h->table[id] : NULL;

	return c && c->free_count && c->free_count < MV_CHUNK_PAGES &&
	       !(c->flags & CHUNK_SHARED);
}

static bool any_chunk(struct chunk *c, void *arg)
{
	(void)c;
	(void)arg;
	return true;
}

/* Allocation order (docs/design.md): the hint, the VM's own chunks
 * (fullest first), anyone's fullest partly used chunk, an empty one. */
struct chunk *pool_pick_private(struct mv_host *h, mv_vmid vm)
{
	struct account *a = h->vms[vm];
	struct chunk *c;

	if (hint_usable(h, a->hint))
		c = h->table[a->hint];
	else if (!(c = fs_fullest(h, &a->set)) &&
		 !(c = fs_find_private(h, false, any_chunk, NULL)))
		c = fs_pop_empty(h);
	if (c->free_count == MV_CHUNK_PAGES) {
		/* An empty chunk becomes this VM's: its set holds it. */
		fs_detach(h, c);
		c->affinity = vm;
	}
	a->hint = c->id;
	return c;
}

/* Hand out @count pages. With @sort_zero the pages that are not known to
 * be zero fill @ids from the front, and their number is returned. */
static uint32_t take_pages(struct mv_host *h, mv_vmid vm,
			   enum mv_account_kind kind, uint32_t count,
			   const uint64_t *gfns, mv_page_id *ids, bool sort_zero)
{
	uint32_t lo = 0, hi = count;

	while (lo < hi) {
		struct chunk *c = pool_pick_private(h, vm);

		while (lo < hi && c->free_count) {
			bool zeroed;
			uint32_t idx = page_take(h, c, &zeroed);
			uint32_t slot = sort_zero && zeroed ? --hi : lo++;

			c->desc[idx] = desc_private(vm, kind, gfns ? gfns[slot]
								  : MV_GFN_NONE);
			ids[slot] = page_id_of(c->id, idx);
		}
		fs_update(h, c);
	}
	return lo;
}

static int alloc_locked(struct mv_host *h, mv_vmid vm, enum mv_account_kind kind,
			uint32_t count, const uint64_t *gfns, bool zero,
			mv_page_id *ids, uint32_t *dirty)
{
	struct account *a = acct_get(h, vm);
	int rc;

	if (!a)
		return -MV_ENOENT;
	rc = acct_check_alloc(h, a, kind, count);
	if (!rc)
		rc = pool_ensure_free(h, count, false);
	if (rc)
		return rc;
	*dirty = take_pages(h, vm, kind, count, gfns, ids, zero);
	a->allocated[kind] += count;
	h->private_pages += count;
	return 0;
}

/* Back @n bytes at page @first of its chunk with memory now. */
static void populate_run(struct mv_host *h, mv_page_id first, uint32_t n)
{
	struct chunk *c = chunk_of(h, first);
	size_t off = (size_t)mv_page_index(first) << MV_PAGE_SHIFT;
	size_t len = (size_t)n << MV_PAGE_SHIFT;

	if (chunk_seeded(c))
		(void)madvise(c->base + off, len, MADV_POPULATE_WRITE);
	else
		(void)fallocate(h->memfd, FALLOC_FL_KEEP_SIZE,
				(off_t)((uint64_t)c->id * MV_CHUNK_SIZE + off),
				(off_t)len);
}

/* The pages are ours (no lock needed); ids of one chunk come in runs,
 * ascending or descending (take_pages sorts zeroed pages to the back). */
static void populate(struct mv_host *h, const mv_page_id *ids, uint32_t count)
{
	mv_page_id first = ids[0], last = ids[0];

	for (uint32_t i = 1; i <= count; i++) {
		if (i < count && mv_page_chunk(ids[i]) == mv_page_chunk(first) &&
		    (ids[i] == last + 1 || ids[i] + 1 == first)) {
			first = ids[i] < first ? ids[i] : first;
			last = ids[i] > last ? ids[i] : last;
			continue;
		}
		populate_run(h, first, last - first + 1);
		if (i < count)
			first = last = ids[i];
	}
}

int mv_host_alloc(struct mv_host *host, mv_vmid vm, enum mv_account_kind kind,
		  uint32_t count, const uint64_t *gfns, unsigned flags,
		  mv_page_id *ids)
{
	bool zero = flags & MV_ALLOC_ZEROED;
	uint32_t dirty = 0;
	int rc;

	if (!host || !ids || !count || (unsigned)kind >= MV_ACCOUNT_KINDS ||
	    (flags & ~(unsigned)(MV_ALLOC_ZEROED | MV_ALLOC_POPULATE)))
		return -MV_EINVAL;
	for (uint32_t i = 0; gfns && i < count; i++)
		if (!desc_gfn_valid(gfns[i]))
			return -MV_ERANGE;
	pool_lock(host);
	rc = alloc_locked(host, vm, kind, count, gfns, zero, ids, &dirty);
	pool_unlock(host);
	/* The pages are ours now: clear them without holding the lock. */
	for (uint32_t i = 0; !rc && zero && i < dirty; i++)
		memset(mv_host_page_ptr(host, ids[i]), 0, MV_PAGE_SIZE);
	if (!rc && (flags & MV_ALLOC_POPULATE))
		populate(host, ids, count);
	return rc;
}

/* Check every id first (all or nothing); DESC_MARK catches duplicates. A
 * page in a move may be freed (it is retired, see move.c). */
static int validate_batch(struct mv_host *h, mv_vmid vm, uint32_t count,
			  const mv_page_id *ids, bool base_only)
{
	uint32_t i;
	int rc = 0;

	for (i = 0; i < count && !rc; i++) {
		struct chunk *c = chunk_of(h, ids[i]);
		mv_desc *d = c ? &c->desc[mv_page_index(ids[i])] : NULL;

		if (!d || !desc_owned_by(*d, vm) || desc_marked(*d) ||
		    (base_only && desc_kind(*d) != MV_ACCOUNT_BASE))
			rc = -MV_EINVAL;
		else
			*d |= DESC_MARK;
	}
	if (rc)
		i--;
	while (rc && i--)
		chunk_of(h, ids[i])->desc[mv_page_index(ids[i])] &= ~DESC_MARK;
	return rc;
}

int pool_free_batch(struct mv_host *h, mv_vmid vm, uint32_t count,
		    const mv_page_id *ids, bool balloon)
{
	struct account *a = acct_get(h, vm);
	int rc;

	if (!a)
		return -MV_ENOENT;
	rc = validate_batch(h, vm, count, ids, balloon);
	if (rc)
		return rc;
	for (uint32_t i = 0; i < count; i++) {
		struct chunk *c = chunk_of(h, ids[i]);
		uint32_t idx = mv_page_index(ids[i]);
		mv_desc *d = &c->desc[idx];

		a->allocated[desc_kind(*d)]--;
		if (desc_moving(*d)) {
			desc_store(d, desc_retired(*d, balloon));
			h->retired_pages++;
		} else {
			page_put(h, c, idx);
		}
	}
	h->private_pages -= count;
	if (balloon) {
		a->ballooned += count;
		h->ballooned += count;
	}
	chunk_trim_cache(h);
	punch_batch(h, count, ids, balloon);
	return 0;
}

int mv_host_free(struct mv_host *host, mv_vmid vm, uint32_t count,
		 const mv_page_id *ids)
{
	int rc;

	if (!host || !ids || !count)
		return -MV_EINVAL;
	pool_lock(host);
	rc = pool_free_batch(host, vm, count, ids, false);
	pool_unlock(host);
	return rc;
}
