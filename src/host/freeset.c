/* Free sets: chunks with free pages, binned by how many they have.
 *
 * A partly used chunk sits in one bin of one set: the shared set if it
 * holds shared pages, else the set of the VM it has affinity to, else the
 * orphan set. Empty chunks sit on the empty list (the cache), full chunks
 * on no list. Links are chunk ids (4 bytes) kept in the chunk itself. */
#include "pool.h"

static struct free_set *set_of(struct mv_host *h, const struct chunk *c)
{
	if (c->flags & CHUNK_SHARED)
		return &h->shared;
	if (c->affinity && h->vms[c->affinity])
		return &h->vms[c->affinity]->set;
	return &h->orphans;
}

static unsigned list_for(const struct chunk *c)
{
	if (c->free_count == MV_CHUNK_PAGES)
		return LIST_EMPTY;
	if (c->free_count == 0)
		return LIST_NONE;
	return (unsigned)(c->free_count - 1) >> BIN_SHIFT;
}

static void link_head(struct mv_host *h, uint32_t *head, struct chunk *c)
{
	c->prev = NO_CHUNK;
	c->next = *head;
	if (*head != NO_CHUNK)
		h->table[*head]->prev = c->id;
	*head = c->id;
}

/* Unlink @c from the list starting at @head; returns true if now empty. */
static bool unlink_from(struct mv_host *h, uint32_t *head, struct chunk *c)
{
	if (c->prev != NO_CHUNK)
		h->table[c->prev]->next = c->next;
	else
		*head = c->next;
	if (c->next != NO_CHUNK)
		h->table[c->next]->prev = c->prev;
	c->prev = c->next = NO_CHUNK;
	return *head == NO_CHUNK;
}

/* An emptied chunk forgets its type and affinity: it may serve anyone. */
static void make_typeless(struct mv_host *h, struct chunk *c)
{
	if (c->flags & CHUNK_SHARED)
		h->free_shared -= MV_CHUNK_PAGES;
	chunk_flag(c, CHUNK_SHARED, false);
	c->affinity = 0;
}

void fs_place(struct mv_host *h, struct chunk *c)
{
	unsigned list = list_for(c);

	c->list = (uint8_t)list;
	if (list == LIST_NONE)
		return;
	if (list == LIST_EMPTY) {
		make_typeless(h, c);
		link_head(h, &h->empty_head, c);
		if (c->next == NO_CHUNK)
			h->empty_tail = c->id;
		h->empty_count++;
		return;
	}
	struct free_set *set = set_of(h, c);

	link_head(h, &set->head[list], c);
	set->mask |= 1u << list;
	if (set != &h->shared)
		h->private_bin_chunks[list]++;
}

void fs_detach(struct mv_host *h, struct chunk *c)
{
	unsigned list = c->list;

	c->list = LIST_NONE;
	if (list == LIST_NONE)
		return;
	if (list == LIST_EMPTY) {
		if (c->id == h->empty_tail)
			h->empty_tail = c->prev;
		unlink_from(h, &h->empty_head, c);
		h->empty_count--;
		return;
	}
	struct free_set *set = set_of(h, c);

	if (unlink_from(h, &set->head[list], c))
		set->mask &= ~(1u << list);
	if (set != &h->shared)
		h->private_bin_chunks[list]--;
}

void fs_update(struct mv_host *h, struct chunk *c)
{
	if (list_for(c) == c->list)
		return;
	fs_detach(h, c);
	fs_place(h, c);
}

struct chunk *fs_fullest(struct mv_host *h, const struct free_set *set)
{
	if (!set->mask)
		return NULL;
	return h->table[set->head[__builtin_ctz(set->mask)]];
}

static struct chunk *walk_bin(struct mv_host *h, uint32_t id,
			      bool (*fn)(struct chunk *c, void *arg), void *arg)
{
	while (id != NO_CHUNK) {
		struct chunk *c = h->table[id];

		if (fn(c, arg))
			return c;
		id = c->next;
	}
	return NULL;
}

/* Orphans first, then every VM's set, for bin @b. */
static struct chunk *walk_private_bin(struct mv_host *h, unsigned b,
				      bool (*fn)(struct chunk *c, void *arg),
				      void *arg)
{
	struct chunk *c = walk_bin(h, h->orphans.head[b], fn, arg);

	for (uint32_t i = 0; !c && i < h->nvms; i++) {
		struct account *a = h->vms[h->live[i]];

		if (a->set.mask & (1u << b))
			c = walk_bin(h, a->set.head[b], fn, arg);
	}
	return c;
}

struct chunk *fs_find_private(struct mv_host *h, bool reverse,
			      bool (*fn)(struct chunk *c, void *arg),
			      void *arg)
{
	for (unsigned i = 0; i < NBINS; i++) {
		unsigned b = reverse ? NBINS - 1 - i : i;
		struct chunk *c;

		if (!h->private_bin_chunks[b])
			continue;
		c = walk_private_bin(h, b, fn, arg);
		if (c)
			return c;
	}
	return NULL;
}

struct chunk *fs_pop_empty(struct mv_host *h)
{
	struct chunk *c;

	if (h->empty_head == NO_CHUNK)
		return NULL;
	c = h->table[h->empty_head];
	fs_detach(h, c);
	return c;
}
