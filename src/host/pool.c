/* The pool itself: creation, destruction, and seeding it with memory. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool.h"

#define DEFAULT_EMPTY_CACHE 2
#define DEFAULT_FREE_CACHE 1024     /* 4 MiB of freed pages kept resident */

static int pool_map(struct mv_host *h)
{
	h->table = mmap(NULL, (size_t)POOL_MAX_CHUNKS * sizeof(*h->table),
			PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (h->table == MAP_FAILED) {
		h->table = NULL;
		return -MV_ENOMEM;
	}
	/* Nothing may write the zero page: map it read-only. */
	h->zero_page = mmap(NULL, MV_PAGE_SIZE, PROT_READ,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (h->zero_page == MAP_FAILED) {
		h->zero_page = NULL;
		return -MV_ENOMEM;
	}
	h->id_bitmap = calloc(1, sizeof(*h->id_bitmap));
	if (!h->id_bitmap)
		return -MV_ENOMEM;
	h->id_bitmap[0] = 1;    /* chunk 0 is reserved */
	h->id_words = 1;
	h->id_hwm = 1;
	if (h->cfg.seeded)
		return 0;
	if (chunk_arena_map(h))
		return -MV_ENOMEM;
	h->memfd = memfd_create("memvisor-pool", MFD_CLOEXEC);
	return h->memfd < 0 ? -errno : 0;
}

/* The lock is held for one batch (microseconds): spinning a little before
 * sleeping keeps two threads from paying a futex round-trip per batch. */
static int lock_init(pthread_mutex_t *lock)
{
	pthread_mutexattr_t attr;
	int rc = pthread_mutexattr_init(&attr);

	if (!rc)
		rc = pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
	if (!rc)
		rc = pthread_mutex_init(lock, &attr);
	pthread_mutexattr_destroy(&attr);
	return -rc;
}

static int locks_init(struct mv_host *h)
{
	int rc = lock_init(&h->lock);

	if (rc)
		return rc;
	rc = pthread_cond_init(&h->moves_done, NULL);
	if (!rc && (rc = pthread_mutex_init(&h->worker_lock, NULL)))
		pthread_cond_destroy(&h->moves_done);
	if (!rc && (rc = pthread_cond_init(&h->worker_wake, NULL))) {
		pthread_mutex_destroy(&h->worker_lock);
		pthread_cond_destroy(&h->moves_done);
	}
	if (rc)
		pthread_mutex_destroy(&h->lock);
	return -rc;
}

int mv_host_create(const struct mv_host_config *cfg, struct mv_host **out)
{
	struct mv_host_config def = { .empty_chunk_cache = DEFAULT_EMPTY_CACHE,
				      .free_cache_pages = DEFAULT_FREE_CACHE };
	struct mv_host *h;
	int rc;

	if (!out || (cfg && (unsigned)cfg->overcommit > MV_OVERCOMMIT_ALLOW))
		return -MV_EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -MV_ENOMEM;
	h->cfg = cfg ? *cfg : def;
	h->memfd = -1;
	rc = pool_map(h);
	if (!rc)
		rc = locks_init(h);
	if (rc) {
		if (h->table)
			munmap(h->table, (size_t)POOL_MAX_CHUNKS * sizeof(*h->table));
		if (h->zero_page)
			munmap(h->zero_page, MV_PAGE_SIZE);
		if (h->memfd >= 0)
			close(h->memfd);
		chunk_arena_unmap(h);
		free(h->id_bitmap);
		free(h);
		return rc;
	}
	*out = h;
	return 0;
}

void mv_host_destroy(struct mv_host *host)
{
	if (!host)
		return;
	worker_stop_if_running(host);
	chunk_release_all(host);
	for (uint32_t vm = 1; vm <= MV_HOST_MAX_VMS; vm++)
		free(host->vms[vm]);
	munmap(host->table, (size_t)POOL_MAX_CHUNKS * sizeof(*host->table));
	munmap(host->zero_page, MV_PAGE_SIZE);
	chunk_arena_unmap(host);
	if (host->memfd >= 0)
		close(host->memfd);
	free(host->id_bitmap);
	free(host->seeds);
	free(host->seed_ranges);
	pthread_cond_destroy(&host->moves_done);
	pthread_cond_destroy(&host->worker_wake);
	pthread_mutex_destroy(&host->worker_lock);
	pthread_mutex_destroy(&host->lock);
	free(host);
}

/* Memory the pool already has: an earlier seed, or its own arena. Two
 * chunks on the same memory would give two VMs' pages one host address. */
static bool seed_overlaps(const struct mv_host *h, uintptr_t start,
			  uintptr_t end)
{
	uintptr_t a = (uintptr_t)h->arena;

	if (h->arena && start < a + (uintptr_t)h->arena_chunks * MV_CHUNK_SIZE &&
	    a < end)
		return true;
	for (uint32_t i = 0; i < h->nseed_ranges; i++)
		if (start < h->seed_ranges[i].end && h->seed_ranges[i].start < end)
			return true;
	return false;
}

static int seed_record(struct mv_host *h, uint8_t *mem, size_t bytes)
{
	uintptr_t start = (uintptr_t)mem, end = start + bytes;
	struct seed_range *r;

	if (end < start)
		return -MV_EINVAL;
	if (seed_overlaps(h, start, end))
		return -MV_EEXIST;
	r = realloc(h->seed_ranges, (h->nseed_ranges + 1) * sizeof(*r));
	if (!r)
		return -MV_ENOMEM;
	h->seed_ranges = r;
	r[h->nseed_ranges++] = (struct seed_range){ start, end };
	return 0;
}

static int seed_locked(struct mv_host *h, uint8_t *mem, size_t n)
{
	/* Room for every seeded chunk ever given, so that releasing one back
	 * to this list can never fail. */
	uint32_t cap = h->seeds_cap + (uint32_t)n;
	void **seeds = realloc(h->seeds, cap * sizeof(*seeds));

	if (!seeds)
		return -MV_ENOMEM;
	h->seeds = seeds;
	int rc = seed_record(h, mem, n * MV_CHUNK_SIZE);

	if (rc)
		return rc;
	h->seeds_cap = cap;
	/* Lowest address last: chunks are carved from the end of the list. */
	for (size_t i = n; i--;)
		h->seeds[h->nseeds++] = mem + i * MV_CHUNK_SIZE;
	return 0;
}

int mv_host_seed(struct mv_host *host, void *mem, size_t bytes)
{
	int rc;

	if (!host || !mem || !bytes || ((uintptr_t)mem & (MV_PAGE_SIZE - 1)) ||
	    bytes % MV_CHUNK_SIZE || bytes / MV_CHUNK_SIZE >= POOL_MAX_CHUNKS)
		return -MV_EINVAL;
	pool_lock(host);
	rc = seed_locked(host, mem, bytes / MV_CHUNK_SIZE);
	pool_unlock(host);
	return rc;
}
