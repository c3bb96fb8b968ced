/* The scanner's index of page hashes: an array of entries chained from
 * power-of-two buckets by the hash's low bits. Entries are only appended;
 * a removal marks them dead, and the start of a round rebuilds the table
 * without them and without the last round's candidates (whose pages are
 * seen again). */
#include <stdlib.h>
#include <string.h>

#include "share_internal.h"

#define NONE UINT32_MAX

void sindex_free(struct sindex *ix)
{
	free(ix->e);
	free(ix->bucket);
	memset(ix, 0, sizeof(*ix));
}

static void link_entry(struct sindex *ix, uint32_t i)
{
	uint32_t b = (uint32_t)(ix->e[i].hash & (ix->nbuckets - 1));

	ix->e[i].next = ix->bucket[b];
	ix->bucket[b] = i;
}

/* Buckets for @n entries (load factor at most 1). */
static int rehash(struct sindex *ix, uint32_t n)
{
	uint32_t nb = 64, *b;

	while (nb < n)
		nb *= 2;
	if (nb == ix->nbuckets)
		return 0;
	b = malloc(sizeof(*b) * nb);
	if (!b)
		return -MV_ENOMEM;
	free(ix->bucket);
	ix->bucket = b;
	ix->nbuckets = nb;
	memset(b, 0xff, sizeof(*b) * nb);
	for (uint32_t i = 0; i < ix->n; i++)
		link_entry(ix, i);
	return 0;
}

int sindex_new_round(struct sindex *ix)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < ix->n; i++)
		if (ix->e[i].vm && ix->e[i].sharers)
			ix->e[k++] = ix->e[i];
	ix->n = k;
	if (ix->nbuckets)
		memset(ix->bucket, 0xff, sizeof(*ix->bucket) * ix->nbuckets);
	for (uint32_t i = 0; i < ix->n; i++)
		link_entry(ix, i);
	return 0;
}

int sindex_add(struct sindex *ix, const struct entry *e)
{
	if (ix->n == ix->cap) {
		uint32_t cap = ix->cap ? ix->cap * 2 : 256;
		struct entry *ne;

		if (cap < ix->cap)
			return -MV_ENOMEM;
		ne = realloc(ix->e, sizeof(*ne) * cap);
		if (!ne)
			return -MV_ENOMEM;
		ix->e = ne;
		ix->cap = cap;
	}
	if (ix->n + 1 > ix->nbuckets && rehash(ix, ix->n + 1))
		return -MV_ENOMEM;
	ix->e[ix->n] = *e;
	link_entry(ix, ix->n);
	ix->n++;
	return 0;
}

uint32_t sindex_first(const struct sindex *ix, uint64_t hash)
{
	if (!ix->nbuckets)
		return NONE;
	return ix->bucket[hash & (ix->nbuckets - 1)];
}

void sindex_forget_vm(struct sindex *ix, struct mv_vm *vm)
{
	for (uint32_t i = 0; i < ix->n; i++)
		if (ix->e[i].vm == vm || ix->e[i].group_vm == vm)
			ix->e[i].vm = NULL;
}
