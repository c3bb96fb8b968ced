/* Shadow pages: found by (gfn, role), linked into their parents, zapped in
 * two phases (unlink now, free after one flush for the whole batch), and
 * evicted oldest first at the cap. */
#include <stdlib.h>

#include "mmu/shadow.h"

static uint32_t bucket(const struct mv_mmu *m, uint64_t gfn)
{
	return (uint32_t)((gfn * 0x9e3779b97f4a7c15ull) >> 40) & m->hash_mask;
}

struct sp *sp_bucket(const struct mv_mmu *m, uint64_t gfn)
{
	return m->hash[bucket(m, gfn)];
}

/* Hashed shadow pages of @gfn as a guest table (obsolete ones included:
 * they stay consistent until they are freed). */
uint32_t sp_gfn_count(const struct mv_mmu *m, uint64_t gfn)
{
	uint32_t n = 0;

	for (struct sp *sp = sp_bucket(m, gfn); sp; sp = sp->hash_next)
		n += sp->gfn == gfn && !sp->role.direct;
	return n;
}

bool sp_valid(const struct mv_mmu *m, const struct sp *sp)
{
	return !sp->zapped && sp->gen == m->valid_gen;
}

struct sp *sp_find(struct mv_mmu *m, uint64_t gfn, union sp_role role)
{
	for (struct sp *sp = m->hash[bucket(m, gfn)]; sp; sp = sp->hash_next)
		if (sp->gfn == gfn && sp->role.word == role.word &&
		    sp_valid(m, sp))
			return sp;
	return NULL;
}

/* Indices come from an array sized once for the cap, every pinned root
 * and a batch awaiting its flush, so that it never moves under a vCPU
 * that reads it without the lock (shadow_walk.c). */
static int idx_alloc(struct mv_mmu *m, uint32_t *out)
{
	if (m->nfree_idx) {
		*out = m->free_idx[--m->nfree_idx];
		return 0;
	}
	if (m->sps_len == m->sps_cap)
		return -MV_ELIMIT;
	*out = m->sps_len++;
	return 0;
}

static void lru_remove(struct mv_mmu *m, struct sp *sp)
{
	if (sp->lru_prev)
		sp->lru_prev->lru_next = sp->lru_next;
	else if (m->lru_head == sp)
		m->lru_head = sp->lru_next;
	if (sp->lru_next)
		sp->lru_next->lru_prev = sp->lru_prev;
	else if (m->lru_tail == sp)
		m->lru_tail = sp->lru_prev;
	sp->lru_prev = sp->lru_next = NULL;
}

static void lru_append(struct mv_mmu *m, struct sp *sp)
{
	sp->lru_prev = m->lru_tail;
	sp->lru_next = NULL;
	if (m->lru_tail)
		m->lru_tail->lru_next = sp;
	else
		m->lru_head = sp;
	m->lru_tail = sp;
}

static void hash_remove(struct mv_mmu *m, struct sp *sp)
{
	for (struct sp **pp = &m->hash[bucket(m, sp->gfn)]; *pp;
	     pp = &(*pp)->hash_next)
		if (*pp == sp) {
			*pp = sp->hash_next;
			return;
		}
}

static size_t sp_meta(const struct sp *sp)
{
	return sizeof(*sp) + (sp->gfns ? SPTES * sizeof(uint64_t) : 0) +
	       sp->parents_cap * sizeof(uint32_t);
}

static void sp_free(struct mv_mmu *m, struct sp *sp)
{
	m->meta_bytes -= sp_meta(sp);
	pool_give(m, sp->host_id);
	m->sps[sp->idx] = NULL;
	m->free_idx[m->nfree_idx++] = sp->idx;
	free(sp->gfns);
	free(sp->parents);
	free(sp);
}

static int sp_alloc(struct mv_mmu *m, uint64_t gfn, union sp_role role,
		    struct sp **out)
{
	struct sp *sp = calloc(1, sizeof(*sp));
	int rc = -MV_ENOMEM;

	if (!sp)
		return rc;
	if (role.level == 1 && !role.direct) {
		sp->gfns = malloc(SPTES * sizeof(*sp->gfns));
		if (!sp->gfns)
			goto fail;
	}
	rc = idx_alloc(m, &sp->idx);
	if (rc)
		goto fail;
	rc = pool_take(m, &sp->host_id, &sp->spt);
	if (rc) {
		m->free_idx[m->nfree_idx++] = sp->idx;
		goto fail;
	}
	sp->gfn = gfn;
	sp->role = role;
	sp->gen = m->valid_gen;
	m->sps[sp->idx] = sp;
	m->meta_bytes += sp_meta(sp);
	m->in_use++;
	m->st.created++;
	*out = sp;
	return 0;
fail:
	free(sp->gfns);
	free(sp);
	return rc;
}

/* The valid shadow page for (gfn, role), made if there is none. Special
 * roots are private to a vCPU and never hashed. */
int sp_get(struct mv_mmu *m, uint64_t gfn, union sp_role role,
	   struct sp **out)
{
	struct sp *sp = role.special ? NULL : sp_find(m, gfn, role);
	int rc;

	if (sp) {
		*out = sp;
		return 0;
	}
	rc = sp_alloc(m, gfn, role, &sp);
	if (rc)
		return rc;
	if (!role.special) {
		uint32_t b = bucket(m, gfn);

		sp->hash_next = m->hash[b];
		m->hash[b] = sp;
		lru_append(m, sp);
		track_sp_created(m, sp);
	}
	*out = sp;
	return 0;
}

static int parent_add(struct mv_mmu *m, struct sp *child, spte_id id)
{
	if (child->nparents == child->parents_cap) {
		uint32_t cap = child->parents_cap ? child->parents_cap * 2 : 2;
		uint32_t *p = realloc(child->parents, cap * sizeof(*p));

		if (!p)
			return -MV_ENOMEM;
		m->meta_bytes += (cap - child->parents_cap) * sizeof(*p);
		child->parents = p;
		child->parents_cap = cap;
	}
	child->parents[child->nparents++] = id;
	return 0;
}

static void parent_remove(struct sp *child, spte_id id)
{
	for (uint32_t i = 0; i < child->nparents; i++)
		if (child->parents[i] == id) {
			child->parents[i] = child->parents[--child->nparents];
			return;
		}
}

/* Point parent's @slot at @child. */
int sp_link(struct mv_mmu *m, struct sp *parent, unsigned slot,
	    struct sp *child)
{
	int rc = parent_add(m, child, spte_id_make(parent, slot));

	if (!rc)
		spte_store(&parent->spt[slot],
			   spte_link(child->host_id, child->idx));
	return rc;
}

struct sp *sp_of_link(const struct mv_mmu *m, uint64_t e)
{
	return m->sps[spte_link_idx(e)];
}

/* Read without the lock by shadow walks: the caller checks that the SPTE
 * did not change around the read. */
uint64_t sp_leaf_gfn(const struct sp *sp, unsigned slot)
{
	return sp->role.direct ? sp->gfn + slot
			       : __atomic_load_n(&sp->gfns[slot],
						 __ATOMIC_RELAXED);
}

/* Clear one entry: a leaf leaves the rmap, a link leaves the child's
 * parent list. MMIO entries just go. */
void sp_zap_spte(struct mv_mmu *m, struct sp *sp, unsigned slot)
{
	uint64_t e = spte_load(&sp->spt[slot]);

	if (!(e & SPTE_P) && !spte_is_mmio(e))
		return;
	if (e & SPTE_P) {
		if (sp->role.level == 1) {
			uint64_t gfn = sp_leaf_gfn(sp, slot);

			rmap_remove(m, gfn, spte_id_make(sp, slot));
			if (m->nfb && (e & SPTE_D))
				fb_note(m, gfn);
		} else
			parent_remove(sp_of_link(m, e),
				      spte_id_make(sp, slot));
	}
	spte_store(&sp->spt[slot], 0);
	m->flush_pending = true;
}

/* Phase one: unlink @sp from everything; its memory is freed by
 * sp_commit_zap after a flush (a vCPU may still be walking it). A root in
 * use stays allocated, empty, until its last vCPU lets go. */
void sp_zap(struct mv_mmu *m, struct sp *sp)
{
	if (sp->zapped)
		return;
	for (unsigned i = 0; i < SPTES; i++)
		sp_zap_spte(m, sp, i);
	for (uint32_t i = 0; i < sp->nparents; i++) {
		spte_id pid = sp->parents[i];

		spte_store(rmap_sptep(m, pid), 0);
	}
	sp->nparents = 0;
	if (!sp->role.special) {
		hash_remove(m, sp);
		lru_remove(m, sp);
		track_sp_gone(m, sp);
	}
	if (sp->gen != m->valid_gen)
		m->obsolete--;
	__atomic_store_n(&sp->zapped, true, __ATOMIC_RELEASE);
	m->in_use--;
	m->st.zapped++;
	m->flush_pending = true;
	if (!sp->root_count) {
		sp->zap_next = m->zap_list;
		m->zap_list = sp;
	}
}

/* Phase two: one flush for everything zapped, then free. */
void sp_commit_zap(struct mv_mmu *m)
{
	if (!m->flush_pending && !m->zap_list)
		return;
	mmu_shootdown(m, REQ_TLB_FLUSH);
	m->flush_pending = false;
	while (m->zap_list) {
		struct sp *sp = m->zap_list;

		m->zap_list = sp->zap_next;
		sp_free(m, sp);
	}
}

/* Free the zapped pages without a flush: only for pages that no vCPU can
 * reach any more (obsolete pages after the zap-all's own shootdown). */
void sp_free_unreachable(struct mv_mmu *m)
{
	while (m->zap_list) {
		struct sp *sp = m->zap_list;

		m->zap_list = sp->zap_next;
		sp_free(m, sp);
	}
}

void sp_root_put(struct mv_mmu *m, struct sp *sp)
{
	if (--sp->root_count)
		return;
	if (sp->role.special)
		sp_zap(m, sp);
	else if (sp->zapped) {
		sp->zap_next = m->zap_list;
		m->zap_list = sp;
	}
}

/* Zap the oldest pages until @need more fit under the cap, and a batch
 * more so that the next faults do not each pay a flush; roots in use are
 * skipped. One flush for the batch. */
int sp_make_room(struct mv_mmu *m, uint32_t need)
{
	if (m->in_use + need <= m->cap)
		return 0;
	uint64_t slack = m->cap / 4 < 16 ? m->cap / 4 : 16;
	uint64_t target = m->cap > slack + need ? m->cap - slack - need : 0;

	for (struct sp *sp = m->lru_head, *next; sp && m->in_use > target;
	     sp = next) {
		next = sp->lru_next;
		if (!sp->root_count) {
			sp_zap(m, sp);
			m->st.cap_zaps++;
		}
	}
	sp_commit_zap(m);
	return m->in_use + need <= m->cap ? 0 : -MV_ELIMIT;
}

/* Unshadow @gfn: zap every shadow of it as a guest table. */
void sp_zap_gfn(struct mv_mmu *m, uint64_t gfn)
{
	struct sp *sp = m->hash[bucket(m, gfn)], *next;

	for (; sp; sp = next) {
		next = sp->hash_next;
		if (sp->gfn == gfn && !sp->role.direct)
			sp_zap(m, sp);
	}
}

/* The MMU goes away with its VM: no vCPU runs, nothing to unlink. */
void sp_free_all(struct mv_mmu *m)
{
	for (uint32_t i = 1; i < m->sps_len; i++)
		if (m->sps[i]) {
			pool_give(m, m->sps[i]->host_id);
			free(m->sps[i]->gfns);
			free(m->sps[i]->parents);
			free(m->sps[i]);
			m->sps[i] = NULL;
		}
	m->zap_list = NULL;
}
