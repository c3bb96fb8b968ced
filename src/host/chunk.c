/* Chunk lifetime: ids from a bitmap, memory from the pool's memfd (or from
 * seeded memory), and giving that memory back when a chunk is released. */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool.h"

/* Lowest free chunk id from @from on (ids stay dense and are reused), or
 * 0 if none. */
static uint32_t id_alloc(struct mv_host *h, uint32_t from)
{
	for (uint32_t w = from / 64; w < h->id_words; w++) {
		uint64_t used = h->id_bitmap[w];

		if (w == from / 64)
			used |= (1ull << (from % 64)) - 1;
		if (used == UINT64_MAX)
			continue;
		uint32_t id = w * 64 + (uint32_t)__builtin_ctzll(~used);
		if (id >= POOL_MAX_CHUNKS)
			return 0;
		h->id_bitmap[w] |= 1ull << (id % 64);
		return id;
	}
	uint32_t words = h->id_words * 2;
	uint64_t *bm;

	while (words <= from / 64)
		words *= 2;
	if ((uint64_t)words * 64 > 2ull * POOL_MAX_CHUNKS)
		return 0;
	bm = realloc(h->id_bitmap, words * sizeof(*bm));
	if (!bm)
		return 0;
	memset(bm + h->id_words, 0, (words - h->id_words) * sizeof(*bm));
	h->id_bitmap = bm;
	h->id_words = words;
	return id_alloc(h, from);
}

/* A seeded chunk never takes an id whose memfd range was ever used: a VM
 * that mapped that range itself (mv_host_chunk_fd) would keep writing to
 * it instead of the seeded memory now behind the id. */
static uint32_t id_for(struct mv_host *h, bool seeded)
{
	return id_alloc(h, seeded ? (uint32_t)(h->memfd_size / MV_CHUNK_SIZE)
				  : 1);
}

static void id_free(struct mv_host *h, uint32_t id)
{
	h->id_bitmap[id / 64] &= ~(1ull << (id % 64));
}

/* The whole id range if the address space allows (16 TiB); where it does
 * not (a sanitizer's shadow memory, RLIMIT_AS), the largest power of two
 * down to ARENA_MIN_CHUNKS: the pool then tops out there. */
#define ARENA_MIN_CHUNKS 1024u      /* 2 GiB */

int chunk_arena_map(struct mv_host *h)
{
	for (uint32_t n = POOL_MAX_CHUNKS; n >= ARENA_MIN_CHUNKS; n /= 2) {
		void *p = mmap(NULL, (size_t)n * MV_CHUNK_SIZE, PROT_NONE,
			       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

		if (p != MAP_FAILED) {
			h->arena = p;
			h->arena_chunks = n;
			break;
		}
	}
	if (!h->arena)
		return -MV_ENOMEM;
	h->mapped = calloc(POOL_MAX_CHUNKS / 64, sizeof(*h->mapped));
	return h->mapped ? 0 : -MV_ENOMEM;
}

void chunk_arena_unmap(struct mv_host *h)
{
	if (h->arena)
		munmap(h->arena, (size_t)h->arena_chunks * MV_CHUNK_SIZE);
	free(h->mapped);
}

/* Chunk @id's memory in the arena, mapped from the memfd (growing the file)
 * the first time the id is used; later uses find it mapped. */
static uint8_t *memfd_map(struct mv_host *h, uint32_t id)
{
	uint64_t off = (uint64_t)id * MV_CHUNK_SIZE;
	uint8_t *base;

	if (id >= h->arena_chunks)
		return NULL;    /* beyond a reduced arena: -MV_ENOMEM */
	base = h->arena + off;
	if (h->mapped[id / 64] & (1ull << (id % 64)))
		return base;
	if (off + MV_CHUNK_SIZE > h->memfd_size) {
		if (ftruncate(h->memfd, (off_t)(off + MV_CHUNK_SIZE)))
			return NULL;
		h->memfd_size = off + MV_CHUNK_SIZE;
	}
	void *p = mmap(base, MV_CHUNK_SIZE, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_FIXED, h->memfd, (off_t)off);
	if (p == MAP_FAILED)
		return NULL;
	h->mapped[id / 64] |= 1ull << (id % 64);
	return base;
}

static struct chunk *chunk_create(struct mv_host *h)
{
	bool seeded = h->nseeds > 0;
	struct chunk *c = malloc(sizeof(*c));
	uint32_t id = c ? id_for(h, seeded) : 0;

	if (!id) {
		free(c);
		return NULL;
	}
	c->base = seeded ? h->seeds[--h->nseeds] : memfd_map(h, id);
	if (!c->base) {
		id_free(h, id);
		free(c);
		return NULL;
	}
	/* Fresh or hole-punched memfd ranges read as zero; seeded memory is
	 * whatever the caller left in it. */
	for (uint32_t i = 0; i < MV_CHUNK_PAGES; i++)
		c->desc[i] = desc_free(i + 1 < MV_CHUNK_PAGES ? i + 1 : DESC_NO_NEXT,
				       !seeded);
	c->id = id;
	c->free_head = 0;
	c->free_count = MV_CHUNK_PAGES;
	c->held = 0;
	c->affinity = 0;
	c->flags = seeded ? CHUNK_SEEDED : 0;
	c->list = LIST_NONE;
	c->prev = c->next = NO_CHUNK;
	h->table[id] = c;
	if (id >= h->id_hwm)
		h->id_hwm = id + 1;
	h->chunks++;
	h->free_pages += MV_CHUNK_PAGES;
	fs_place(h, c);
	return c;
}

/* Give the memory back and forget the chunk (it must be empty). */
static void chunk_destroy(struct mv_host *h, struct chunk *c)
{
	fs_detach(h, c);
	h->held -= c->held;
	h->pages_punched += c->held;
	if (c->flags & CHUNK_SEEDED) {
		madvise(c->base, MV_CHUNK_SIZE, MADV_DONTNEED);
		h->seeds[h->nseeds++] = c->base;
	} else {
		/* The range stays mapped (one mapping for all chunks); the
		 * hole gives its pages back to the kernel. */
		(void)fallocate(h->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				(off_t)c->id * MV_CHUNK_SIZE, MV_CHUNK_SIZE);
	}
	h->table[c->id] = NULL;
	id_free(h, c->id);
	h->chunks--;
	h->free_pages -= MV_CHUNK_PAGES;
	free(c);
}

int chunk_reserve_new(struct mv_host *h, uint32_t n)
{
	uint32_t done = 0, hwm = h->id_hwm;

	if (h->cfg.seeded && h->nseeds < n)
		return -MV_ENEEDSEED;
	while (done < n && chunk_create(h))
		done++;
	if (done == n) {
		h->chunks_created += n;
		return 0;
	}
	/* New chunks go to the head of the empty list: undo this call's so
	 * that a failed allocation leaves the pool as it found it. */
	while (done--)
		chunk_destroy(h, fs_pop_empty(h));
	h->id_hwm = hwm;    /* every id above it was made and freed here */
	return -MV_ENOMEM;
}

void chunk_release(struct mv_host *h, struct chunk *c)
{
	chunk_destroy(h, c);
	h->chunks_released++;
}

void chunk_trim_cache(struct mv_host *h)
{
	while (h->empty_count > h->cfg.empty_chunk_cache)
		chunk_release(h, h->table[h->empty_tail]);
}

void chunk_release_all(struct mv_host *h)
{
	for (uint32_t id = 1; id < h->id_hwm; id++) {
		struct chunk *c = h->table[id];

		if (!c)
			continue;
		free(c);
		h->table[id] = NULL;
	}
}

struct chunk *chunk_of(const struct mv_host *h, mv_page_id id)
{
	uint32_t c = mv_page_chunk(id);

	if (c == 0 || c >= h->id_hwm)
		return NULL;
	return h->table[c];
}

int mv_host_chunk_fd(const struct mv_host *host, uint32_t chunk, int *fd,
		     uint64_t *offset)
{
	int rc = 0;

	if (!host || !fd || !offset)
		return -MV_EINVAL;
	if (chunk == 0 || chunk >= POOL_MAX_CHUNKS)
		return -MV_ERANGE;
	pool_lock(host);
	struct chunk *c = chunk < host->id_hwm ? host->table[chunk] : NULL;

	if (!c || (c->flags & CHUNK_SEEDED)) {
		rc = -MV_ENOENT;
	} else {
		*fd = host->memfd;
		*offset = (uint64_t)chunk * MV_CHUNK_SIZE;
	}
	pool_unlock(host);
	return rc;
}
