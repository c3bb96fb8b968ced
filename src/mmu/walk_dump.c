/* Enumerating every mapped leaf of an address space, in VA order, without
 * writing guest memory (mv_walk_dump).
 *
 * Cost: one read per entry of every table reached. Tables may be shared or
 * self-referencing, so a table can be reached along many paths; a table
 * that turned out to map nothing is remembered (by address and level) and
 * not scanned again, so the time is bounded by the output plus one scan per
 * distinct empty table (up to the memo's size), not by the number of paths
 * into empty subtrees. */
#include <stdlib.h>

#include "mmu/paging.h"

#define EMPTY_MEMO_SLOTS 16384  /* direct-mapped; a power of two */

struct dump {
	const struct mv_paging *pg;
	const struct mv_gmem *gm;
	int (*cb)(void *opaque, const struct mv_walk_leaf *leaf);
	void *opaque;
	uint64_t *empty;  /* table gpa | level, or 0 */
	unsigned esize, ibits;
};

static uint64_t memo_key(uint64_t table, unsigned level)
{
	return table | level;  /* tables are 4 KiB aligned: level fits */
}

static uint64_t *memo_slot(struct dump *d, uint64_t key)
{
	uint64_t h = key * 0x9e3779b97f4a7c15ull;

	return &d->empty[h >> (64 - 14)];
}

static int emit(struct dump *d, uint64_t va, uint64_t egpa, uint64_t e,
		unsigned level, unsigned perm)
{
	struct mv_walk_leaf leaf;

	leaf.va = mv_paging_canonical(d->pg, va);
	leaf.page_size = 1ull << pg_level_shift(d->pg, level);
	leaf.gpa = pg_leaf_frame(d->pg, level, e, leaf.page_size);
	leaf.leaf = e;
	leaf.entry_gpa = egpa;
	leaf.level = (uint8_t)level;
	leaf.perm = (uint8_t)perm;
	return d->cb(d->opaque, &leaf);
}

/* Scan one table; *found counts the leaves emitted below it. */
static int dump_table(struct dump *d, uint64_t table, unsigned level,
		      uint64_t va_base, uint64_t and_bits, uint64_t or_bits,
		      uint64_t *found)
{
	const struct mv_paging *pg = d->pg;
	uint64_t key = memo_key(table, level), *slot = memo_slot(d, key);
	uint64_t before = *found;
	unsigned shift = pg_level_shift(pg, level);

	if (*slot == key)
		return 0;
	for (uint64_t i = 0; i < (1u << d->ibits); i++) {
		uint64_t egpa = table + i * d->esize, e;

		if (d->gm->read(d->gm->opaque, egpa, d->esize, &e) ||
		    !(e & MV_PTE_P))
			continue;
		unsigned ps = pg_entry_ps(pg, level, e);

		if (e & pg->rsvd[level][ps])
			continue;
		uint64_t va = va_base | (i << shift);
		int rc;

		if (ps || level == 1) {
			(*found)++;
			rc = emit(d, va, egpa, e, level,
				  pg_perm(and_bits & e, or_bits | e));
		} else {
			rc = dump_table(d, e & pg->addr_mask, level - 1, va,
					and_bits & e, or_bits | e, found);
		}
		if (rc)
			return rc;
	}
	if (*found == before)
		*slot = key;
	return 0;
}

static int dump_pae(struct dump *d, uint64_t *found)
{
	for (unsigned i = 0; i < 4; i++) {
		uint64_t pdpte = d->pg->pdpte[i];
		int rc;

		if (!(pdpte & MV_PTE_P))
			continue;
		rc = dump_table(d, pdpte & d->pg->addr_mask, 2,
				(uint64_t)i << 30, MV_PTE_W | MV_PTE_U, 0,
				found);
		if (rc)
			return rc;
	}
	return 0;
}

int mv_walk_dump(const struct mv_paging *pg, const struct mv_gmem *gm,
		 int (*cb)(void *opaque, const struct mv_walk_leaf *leaf),
		 void *opaque)
{
	struct dump d = { .pg = pg, .gm = gm, .cb = cb, .opaque = opaque };
	uint64_t found = 0;
	int rc;

	if (!pg || !gm || !gm->read || !cb)
		return -MV_EINVAL;
	if (pg->mode == MV_PAGING_OFF)
		return -MV_ESTATE;
	d.empty = calloc(EMPTY_MEMO_SLOTS, sizeof(*d.empty));
	if (!d.empty)
		return -MV_ENOMEM;
	d.esize = pg_entry_size(pg);
	d.ibits = pg_index_bits(pg);
	if (pg->mode == MV_PAGING_PAE)
		rc = dump_pae(&d, &found);
	else
		rc = dump_table(&d, pg->root, pg->levels, 0,
				MV_PTE_W | MV_PTE_U, 0, &found);
	free(d.empty);
	return rc;
}
