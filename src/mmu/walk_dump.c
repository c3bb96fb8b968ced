/* Enumerating every mapped leaf of an address space, in VA order, without
 * writing guest memory (mv_walk_dump).
 *
 * Cost: one read per entry of every table reached. Tables may be shared or
 * self-referencing, so a table can be reached along many paths; a table
 * that turned out to map nothing is remembered (by address and level) in a
 * hash set that grows with the number of such tables and forgets none, so
 * the time is bounded by the output plus one scan per distinct empty
 * table, not by the number of paths into empty subtrees. (A fixed-size
 * memo forgets once more empty tables exist than it has slots, and each
 * forgotten table is scanned again along every path: with 32 K empty
 * tables below a shared table that took 41 s for 32 K lines.) The set
 * costs 16 bytes per empty table at most, against the 512 reads that
 * found the table empty. */
#include <stdlib.h>

#include "mmu/paging.h"

#define MEMO_MIN_SLOTS 1024u  /* a power of two; grows by doubling */

struct memo {
	uint64_t *slot;   /* table gpa | level, or 0 (a table never has key 0:
			   * its level is at least 1) */
	uint64_t mask;    /* slots - 1 */
	uint64_t used;
};

struct dump {
	const struct mv_paging *pg;
	const struct mv_gmem *gm;
	int (*cb)(void *opaque, const struct mv_walk_leaf *leaf);
	void *opaque;
	struct memo empty;
	unsigned esize, ibits;
};

static uint64_t memo_key(uint64_t table, unsigned level)
{
	return table | level;  /* tables are 4 KiB aligned: level fits */
}

/* splitmix64's finalizer: every key bit moves every slot bit, so tables
 * far apart (bits above 40 only) spread as well as neighbours. */
static uint64_t mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* Linear probing: the slot holding key, or the empty slot where it goes. */
static uint64_t *memo_find(const struct memo *m, uint64_t key)
{
	uint64_t h = mix(key);

	for (;; h++) {
		uint64_t *s = &m->slot[h & m->mask];

		if (*s == key || *s == 0)
			return s;
	}
}

static bool memo_has(const struct memo *m, uint64_t key)
{
	return *memo_find(m, key) == key;
}

static int memo_init(struct memo *m, uint64_t slots)
{
	m->slot = calloc(slots, sizeof(*m->slot));
	m->mask = slots - 1;
	m->used = 0;
	return m->slot ? 0 : -MV_ENOMEM;
}

/* Keep the load at most one half: double and rehash first. */
static int memo_add(struct memo *m, uint64_t key)
{
	if (2 * (m->used + 1) > m->mask + 1) {
		struct memo bigger;

		if (memo_init(&bigger, 2 * (m->mask + 1)))
			return -MV_ENOMEM;
		for (uint64_t i = 0; i <= m->mask; i++)
			if (m->slot[i])
				*memo_find(&bigger, m->slot[i]) = m->slot[i];
		bigger.used = m->used;
		free(m->slot);
		*m = bigger;
	}
	*memo_find(m, key) = key;
	m->used++;
	return 0;
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
	uint64_t key = memo_key(table, level), before = *found;
	unsigned shift = pg_level_shift(pg, level);

	if (memo_has(&d->empty, key))
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
	return *found == before ? memo_add(&d->empty, key) : 0;
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
	if (memo_init(&d.empty, MEMO_MIN_SLOTS))
		return -MV_ENOMEM;
	d.esize = pg_entry_size(pg);
	d.ibits = pg_index_bits(pg);
	if (pg->mode == MV_PAGING_PAE)
		rc = dump_pae(&d, &found);
	else
		rc = dump_table(&d, pg->root, pg->levels, 0,
				MV_PTE_W | MV_PTE_U, 0, &found);
	free(d.empty.slot);
	return rc;
}
