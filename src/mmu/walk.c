/* The guest page-table walk (SDM 4.3-4.8): one linear address, one access.
 *
 * The walk reads one entry per level, stops at the first entry that is not
 * present or sets a reserved bit, accumulates R/W, U/S and XD, checks the
 * access rights of the whole translation (SDM 4.6), and only then sets the
 * accessed and dirty flags with compare-and-exchange, top first. A race
 * with another writer of the tables restarts the walk. */
#include "mmu/paging.h"

/* Internal: an A/D cmpxchg lost, walk again. Positive and above every
 * enum mv_walk_status, so it is neither a status nor an error code. */
#define WALK_AGAIN 0x100

/* Error-code bits that describe the access, whatever the cause (SDM 4.7). */
static uint32_t access_bits(const struct mv_paging *pg, unsigned acc)
{
	uint32_t ec = 0;

	if (acc & MV_ACC_WRITE)
		ec |= MV_PF_W;
	if (user_access(acc))
		ec |= MV_PF_U;
	if ((acc & MV_ACC_FETCH) && (pg->sw & MV_PG_SW_IDF))
		ec |= MV_PF_ID;
	return ec;
}

/* Every result field but status, level and the entries. */
static void clear_translation(struct mv_walk *w)
{
	w->error_code = 0;
	w->gpa = 0;
	w->page_size = 0;
	w->leaf = 0;
	w->perm = 0;
	w->pkey = 0;
	w->memtype = 0;
}

static int fault(struct mv_walk *w, unsigned level, uint32_t ec)
{
	w->level = (uint8_t)level;
	w->error_code = ec;
	return MV_WALK_PF;
}

/* Set A in every entry used and D in the leaf of a write. Entries that
 * cannot be written (ROM) keep their value, as the CPU's write is lost. A
 * write that guest memory could not do for want of host memory (a SHARED
 * table page to copy under a full budget) is no ROM: its negative code
 * ends the walk, so that no translation is reported without its A/D. */
static int set_accessed_dirty(const struct mv_gmem *gm, struct mv_walk *w,
			      unsigned esize, bool write)
{
	for (unsigned i = 0; i < w->nr_entries; i++) {
		uint64_t want = w->entry[i] | MV_PTE_A;

		if (write && i + 1 == w->nr_entries)
			want |= MV_PTE_D;
		if (want == w->entry[i])
			continue;
		int rc = gm->cmpxchg(gm->opaque, w->entry_gpa[i], esize,
				     w->entry[i], want);
		if (rc == MV_GMEM_CHANGED)
			return WALK_AGAIN;
		if (rc < 0)
			return rc;
		if (rc == MV_GMEM_OK)
			w->entry[i] = want;
	}
	return MV_WALK_OK;
}

/* The leaf: address, size, attributes, then the rights check. */
static int finish(const struct mv_paging *pg, const struct mv_gmem *gm,
		  uint64_t va, unsigned acc, struct mv_walk *w,
		  unsigned level, unsigned perm)
{
	uint64_t e = w->entry[w->nr_entries - 1];
	uint64_t size = 1ull << pg_level_shift(pg, level);
	uint64_t pat = level == 1 ? MV_PTE_PAT4K : MV_PTE_PATLARGE;

	w->level = (uint8_t)level;
	w->page_size = size;
	w->gpa = pg_leaf_frame(pg, level, e, size) | (va & (size - 1));
	w->perm = (uint8_t)perm;
	w->pkey = pg->mode >= MV_PAGING_LONG4 ? (uint8_t)((e >> 59) & 15) : 0;
	w->memtype = (uint8_t)(((e & pat) ? 4 : 0) | ((e >> 3) & 3));
	bool pk = pkey_denies(pg_rights_of(pg), acc, perm, w->pkey);

	if (pk || rights_deny(pg_rights_of(pg), acc, perm))
		return fault(w, level, access_bits(pg, acc) | MV_PF_P |
				       (pk ? MV_PF_PK : 0));
	if (!(acc & MV_ACC_NO_AD) && gm->cmpxchg) {
		int rc = set_accessed_dirty(gm, w, pg_entry_size(pg),
					    acc & MV_ACC_WRITE);
		if (rc != MV_WALK_OK)
			return rc;
	}
	w->leaf = w->entry[w->nr_entries - 1];
	return MV_WALK_OK;
}

/* First table and level: CR3's, or for PAE the PDPTE register's. */
static int walk_root(const struct mv_paging *pg, uint64_t va,
		     uint64_t *table)
{
	if (pg->mode != MV_PAGING_PAE) {
		*table = pg->root;
		return MV_WALK_OK;
	}
	uint64_t pdpte = pg->pdpte[(va >> 30) & 3];

	if (!(pdpte & MV_PTE_P))
		return MV_WALK_PF;
	*table = pdpte & pg->addr_mask;
	return MV_WALK_OK;
}

static int walk_once(const struct mv_paging *pg, const struct mv_gmem *gm,
		     uint64_t va, unsigned acc, struct mv_walk *w)
{
	unsigned esize = pg_entry_size(pg), imask = (1u << pg_index_bits(pg)) - 1;
	uint64_t and_bits = MV_PTE_W | MV_PTE_U, or_bits = 0, table;
	unsigned level = pg->levels;

	w->nr_entries = 0;
	clear_translation(w);  /* a walk again after a race starts afresh */
	if (walk_root(pg, va, &table) != MV_WALK_OK)
		return fault(w, 3, access_bits(pg, acc));
	for (;;) {
		unsigned n = w->nr_entries++;
		uint64_t idx = (va >> pg_level_shift(pg, level)) & imask;
		uint64_t e = 0;

		w->entry_gpa[n] = table + idx * esize;
		if (gm->read(gm->opaque, w->entry_gpa[n], esize, &e)) {
			w->entry[n] = 0;
			fault(w, level, access_bits(pg, acc));
			return MV_WALK_NOT_RAM;
		}
		w->entry[n] = e;
		if (!(e & MV_PTE_P))
			return fault(w, level, access_bits(pg, acc));
		unsigned ps = pg_entry_ps(pg, level, e);

		if (e & pg->rsvd[level][ps])
			return fault(w, level, access_bits(pg, acc) | MV_PF_P |
					       MV_PF_RSVD);
		and_bits &= e;
		or_bits |= e;
		if (ps || level == 1)
			return finish(pg, gm, va, acc, w, level,
				      pg_perm(and_bits, or_bits));
		table = e & pg->addr_mask;
		level--;
	}
}

/* No translation: bad arguments, or guest memory refused an A/D write
 * with an error. The entries read so far stay in w. */
static int walk_error(struct mv_walk *w, int rc)
{
	w->status = MV_WALK_ERROR;
	clear_translation(w);
	return rc;
}

static int walk_identity(uint64_t va, struct mv_walk *w)
{
	w->level = 0;
	w->nr_entries = 0;
	w->gpa = va & 0xffffffffull;
	w->page_size = 1ull << 12;
	w->perm = MV_PERM_W | MV_PERM_U;
	return MV_WALK_OK;
}

int mv_walk(const struct mv_paging *pg, const struct mv_gmem *gm,
	    uint64_t va, unsigned acc, struct mv_walk *w)
{
	int rc = MV_WALK_RETRY;

	if (!w)
		return -MV_EINVAL;
	w->nr_entries = 0;
	w->level = 0;
	if (!pg || !gm || !gm->read || pg->mode > MV_PAGING_LONG5 ||
	    pg->levels > MV_WALK_MAX_LEVELS)
		return walk_error(w, -MV_EINVAL);
	if (acc & MV_ACC_FETCH)
		acc &= ~MV_ACC_WRITE;  /* a fetch is not a write */
	clear_translation(w);
	if (pg->mode == MV_PAGING_OFF)
		return w->status = (uint8_t)walk_identity(va, w);
	if (pg->mode < MV_PAGING_LONG4)
		va &= 0xffffffffull;
	else if (!mv_paging_is_canonical(pg, va))
		return w->status = MV_WALK_GP;
	for (unsigned race = 0; race < MV_WALK_MAX_RACES; race++) {
		rc = walk_once(pg, gm, va, acc, w);
		if (rc != WALK_AGAIN)
			break;
		rc = MV_WALK_RETRY;
		clear_translation(w);  /* no translation was made */
	}
	if (rc < 0)
		return walk_error(w, rc);
	w->status = (uint8_t)rc;
	return rc;
}
