/* The chunk mapping cache (the seeds' ring-3 mapping cache). A VM that
 * must not map the whole pool (a mapping budget, or a VM living in another
 * process than the pool) maps chunks itself: mmap of the chunk's memfd
 * range, at most @max at a time, the least recently used unmapped first.
 * A host page id becomes a pointer through a direct-mapped lookaside of 8
 * chunks, then a dense chunk-id-indexed table, then a new mapping. Seeded
 * chunks have no memfd: their pages come from mv_host_page_ptr. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "vm_internal.h"

#define NONE UINT32_MAX

int mapcache_init(struct mapcache *mc, uint32_t max)
{
	memset(mc, 0, sizeof(*mc));
	mc->lru_head = mc->lru_tail = NONE;
	if (!max)
		return 0;
	mc->slots = calloc(max, sizeof(*mc->slots));
	if (!mc->slots)
		return -MV_ENOMEM;
	mc->max = max;
	return 0;
}

void mapcache_destroy(struct mapcache *mc)
{
	for (uint32_t i = 0; i < mc->used; i++)
		if (mc->slots[i].base)
			munmap(mc->slots[i].base, MV_CHUNK_SIZE);
	free(mc->slots);
	free(mc->index);
	memset(mc, 0, sizeof(*mc));
}

static void lru_unlink(struct mapcache *mc, uint32_t s)
{
	struct map_slot *e = &mc->slots[s];

	if (e->prev != NONE)
		mc->slots[e->prev].next = e->next;
	else
		mc->lru_head = e->next;
	if (e->next != NONE)
		mc->slots[e->next].prev = e->prev;
	else
		mc->lru_tail = e->prev;
}

static void lru_push(struct mapcache *mc, uint32_t s)
{
	struct map_slot *e = &mc->slots[s];

	e->prev = NONE;
	e->next = mc->lru_head;
	if (mc->lru_head != NONE)
		mc->slots[mc->lru_head].prev = s;
	mc->lru_head = s;
	if (mc->lru_tail == NONE)
		mc->lru_tail = s;
}

static void lru_touch(struct mapcache *mc, uint32_t s)
{
	if (mc->lru_head == s)
		return;
	lru_unlink(mc, s);
	lru_push(mc, s);
}

static int index_grow(struct mapcache *mc, uint32_t chunk)
{
	uint32_t len = mc->index_len ? mc->index_len : 64;
	uint32_t *n;

	while (len <= chunk)
		len *= 2;
	n = realloc(mc->index, len * sizeof(*n));
	if (!n)
		return -MV_ENOMEM;
	memset(n + mc->index_len, 0, (len - mc->index_len) * sizeof(*n));
	mc->index = n;
	mc->index_len = len;
	return 0;
}

/* Unmap the least recently used chunk; pointers into it die, so the MMU
 * must drop what it mapped. Returns the freed slot. */
static uint32_t evict(struct mv_vm *vm)
{
	struct mapcache *mc = &vm->map;
	uint32_t s = mc->lru_tail;
	struct map_slot *e = &mc->slots[s];

	/* The MMU drops its pointers before they die. */
	vm_notify(vm, 0, UINT64_MAX, MV_NOTIFY_UNMAP);
	lru_unlink(mc, s);
	munmap(e->base, MV_CHUNK_SIZE);
	mc->index[e->chunk] = 0;
	for (int i = 0; i < MAPCACHE_LOOKASIDE; i++)
		if (mc->look[i].base == e->base)
			mc->look[i].base = NULL;
	e->base = NULL;
	mc->evictions++;
	return s;
}

static uint8_t *map_chunk(struct mv_vm *vm, uint32_t chunk, uint32_t *slot)
{
	struct mapcache *mc = &vm->map;
	uint64_t off;
	uint8_t *base;
	int fd;
	uint32_t s;

	if (mv_host_chunk_fd(vm->host, chunk, &fd, &off) ||
	    (chunk >= mc->index_len && index_grow(mc, chunk)))
		return NULL;
	base = mmap(NULL, MV_CHUNK_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
		    fd, (off_t)off);
	if (base == MAP_FAILED)
		return NULL;
	s = mc->used < mc->max ? mc->used++ : evict(vm);
	mc->slots[s].chunk = chunk;
	mc->slots[s].base = base;
	lru_push(mc, s);
	mc->index[chunk] = s + 1;
	mc->misses++;
	*slot = s;
	return base;
}

static uint8_t *chunk_base(struct mv_vm *vm, uint32_t chunk)
{
	struct mapcache *mc = &vm->map;
	uint32_t s;
	uint8_t *base;

	if (chunk < mc->index_len && mc->index[chunk]) {
		s = mc->index[chunk] - 1;
		mc->table_hits++;
		lru_touch(mc, s);
		base = mc->slots[s].base;
	} else {
		base = map_chunk(vm, chunk, &s);
		if (!base)
			return NULL;
	}
	mc->look[chunk % MAPCACHE_LOOKASIDE].chunk = chunk;
	mc->look[chunk % MAPCACHE_LOOKASIDE].base = base;
	return base;
}

uint8_t *mapcache_ptr(struct mv_vm *vm, mv_page_id id)
{
	struct mapcache *mc = &vm->map;
	uint32_t chunk = mv_page_chunk(id);
	uint8_t *base;

	if (chunk == 0)  /* the zero page's reserved chunk */
		return mv_host_page_ptr(vm->host, id);
	if (mc->look[chunk % MAPCACHE_LOOKASIDE].base &&
	    mc->look[chunk % MAPCACHE_LOOKASIDE].chunk == chunk) {
		mc->hits++;
		lru_touch(mc, mc->index[chunk] - 1);
		base = mc->look[chunk % MAPCACHE_LOOKASIDE].base;
	} else {
		base = chunk_base(vm, chunk);
	}
	if (!base) {
		mc->fallbacks++;
		return mv_host_page_ptr(vm->host, id);
	}
	return base + ((size_t)mv_page_index(id) << MV_PAGE_SHIFT);
}
