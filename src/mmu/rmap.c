/* The reverse map gfn -> leaf shadow PTEs. Its head is the 32-bit rmap
 * field of the guest page's descriptor (struct mv_page): 0 for none, a
 * leaf id (sp index << 9 | slot, bit 31 clear) for exactly one, or
 * RMAP_MANY | node index for a chain of nodes holding up to seven ids
 * each. One mapping, the common case, costs no node. */
#include <stdlib.h>

#include "mmu/shadow.h"
#include "phys/vm_mmu.h"

#define RMAP_MANY (1u << 31)

/* Every caller holds the VM lock, as for all of the MMU's state. */
static struct mv_page *head_of(struct mv_mmu *m, uint64_t gfn)
{
	return vm_page_locked(m->vm, gfn);
}

int rmap_reserve(struct mv_mmu *m, uint32_t nodes)
{
	uint32_t free = 0;

	for (uint32_t i = m->rnode_free; i && free < nodes;
	     i = m->rnodes[i - 1].next)
		free++;
	if (free >= nodes)
		return 0;
	uint32_t cap = m->rnodes_cap ? m->rnodes_cap * 2 : 64;

	while (cap - m->rnodes_cap < nodes - free)
		cap *= 2;
	if (cap >= RMAP_MANY)
		return -MV_ELIMIT;
	struct rmap_node *n = realloc(m->rnodes, (size_t)cap * sizeof(*n));

	if (!n)
		return -MV_ENOMEM;
	m->rnodes = n;
	for (uint32_t i = cap; i > m->rnodes_cap; i--) {
		n[i - 1] = (struct rmap_node){ .next = m->rnode_free };
		m->rnode_free = i;
	}
	m->rnodes_cap = cap;
	return 0;
}

static int node_alloc(struct mv_mmu *m, uint32_t *out)
{
	int rc = rmap_reserve(m, 1);

	if (rc)
		return rc;
	uint32_t i = m->rnode_free;

	m->rnode_free = m->rnodes[i - 1].next;
	m->rnodes[i - 1] = (struct rmap_node){ 0 };
	*out = i - 1;
	return 0;
}

static void node_free(struct mv_mmu *m, uint32_t n)
{
	m->rnodes[n].next = m->rnode_free;
	m->rnode_free = n + 1;
}

int rmap_add(struct mv_mmu *m, uint64_t gfn, spte_id id)
{
	struct mv_page *p = head_of(m, gfn);
	uint32_t head, n;
	int rc;

	if (!p)
		return -MV_EINTERNAL;
	head = mv_page_rmap(p);
	m->st.rmap_entries++;
	if (!head) {
		mv_page_set_rmap(p, id);
		return 0;
	}
	if (head & RMAP_MANY) {
		struct rmap_node *first = &m->rnodes[head & ~RMAP_MANY];

		for (unsigned i = 0; i < RMAP_NODE_IDS; i++)
			if (!first->ids[i]) {
				first->ids[i] = id;
				return 0;
			}
	}
	rc = node_alloc(m, &n);
	if (rc) {
		m->st.rmap_entries--;
		return rc;
	}
	if (head & RMAP_MANY) {
		m->rnodes[n].next = (head & ~RMAP_MANY) + 1;
		m->rnodes[n].ids[0] = id;
	} else {
		m->rnodes[n].ids[0] = head;
		m->rnodes[n].ids[1] = id;
	}
	mv_page_set_rmap(p, RMAP_MANY | n);
	return 0;
}

static bool node_empty(const struct rmap_node *n)
{
	for (unsigned i = 0; i < RMAP_NODE_IDS; i++)
		if (n->ids[i])
			return false;
	return true;
}

/* Drop an empty node from the chain starting at the head. */
static void chain_unlink(struct mv_mmu *m, struct mv_page *p, uint32_t prev,
			 uint32_t n)
{
	uint32_t next = m->rnodes[n].next;

	if (prev != UINT32_MAX)
		m->rnodes[prev].next = next;
	else
		mv_page_set_rmap(p, next ? RMAP_MANY | (next - 1) : 0);
	node_free(m, n);
}

void rmap_remove(struct mv_mmu *m, uint64_t gfn, spte_id id)
{
	struct mv_page *p = head_of(m, gfn);
	uint32_t head = p ? mv_page_rmap(p) : 0;

	if (!head)
		return;
	if (!(head & RMAP_MANY)) {
		if (head == id) {
			mv_page_set_rmap(p, 0);
			m->st.rmap_entries--;
		}
		return;
	}
	uint32_t prev = UINT32_MAX;

	for (uint32_t n = head & ~RMAP_MANY;;) {
		struct rmap_node *node = &m->rnodes[n];

		for (unsigned i = 0; i < RMAP_NODE_IDS; i++) {
			if (node->ids[i] != id)
				continue;
			node->ids[i] = 0;
			m->st.rmap_entries--;
			if (node_empty(node))
				chain_unlink(m, p, prev, n);
			return;
		}
		if (!node->next)
			return;
		prev = n;
		n = node->next - 1;
	}
}

/* Any one leaf id of @gfn, or 0. */
static spte_id rmap_first(struct mv_mmu *m, uint64_t gfn)
{
	struct mv_page *p = head_of(m, gfn);
	uint32_t head = p ? mv_page_rmap(p) : 0;

	if (!(head & RMAP_MANY))
		return head;
	const struct rmap_node *node = &m->rnodes[head & ~RMAP_MANY];

	for (unsigned i = 0; i < RMAP_NODE_IDS; i++)
		if (node->ids[i])
			return node->ids[i];
	return 0;  /* never: empty nodes are unlinked */
}

uint64_t *rmap_sptep(const struct mv_mmu *m, spte_id id)
{
	return m->sps[id >> 9]->spt + (id & (SPTES - 1));
}

/* Zap every leaf that maps @gfn; the caller commits (one flush). */
uint64_t rmap_zap_gfn(struct mv_mmu *m, uint64_t gfn)
{
	uint64_t n = 0;

	for (spte_id id; (id = rmap_first(m, gfn)); n++)
		sp_zap_spte(m, m->sps[id >> 9], id & (SPTES - 1));
	return n;
}

/* The chain's readers below: @fn on the SPTE of every leaf that maps
 * @gfn, the results added up. Always inlined with a constant @fn, so the
 * callback folds into the loop and a reader costs what its own copy of
 * the walk did (bench/mmu/bench_dirty's fb.harvest measures it). */
typedef uint64_t (*rmap_fn)(uint64_t *sptep);

static inline __attribute__((always_inline)) uint64_t
rmap_each(struct mv_mmu *m, uint64_t gfn, rmap_fn fn)
{
	struct mv_page *p = head_of(m, gfn);
	uint32_t head = p ? mv_page_rmap(p) : 0;
	uint64_t n = 0;

	if (!(head & RMAP_MANY))
		return head ? fn(rmap_sptep(m, head)) : 0;
	for (uint32_t i = (head & ~RMAP_MANY) + 1; i; i = m->rnodes[i - 1].next)
		for (unsigned k = 0; k < RMAP_NODE_IDS; k++)
			if (m->rnodes[i - 1].ids[k])
				n += fn(rmap_sptep(m, m->rnodes[i - 1].ids[k]));
	return n;
}

static uint64_t protect_one(uint64_t *p)
{
	uint64_t old = __atomic_fetch_and(p, ~SPTE_SW_WRITABLE,
					  __ATOMIC_ACQ_REL);

	return (old & SPTE_SW_WRITABLE) ? 1 : 0;
}

/* Take write access from every leaf that maps @gfn; returns how many had
 * it (the caller commits a flush when any did). */
uint64_t rmap_write_protect_gfn(struct mv_mmu *m, uint64_t gfn)
{
	return rmap_each(m, gfn, protect_one);
}

static uint64_t writable(uint64_t *p)
{
	return (spte_load(p) & SPTE_SW_WRITABLE) ? 1 : 0;
}

/* How many leaves map @gfn with write access. */
uint32_t rmap_writable_count(struct mv_mmu *m, uint64_t gfn)
{
	return (uint32_t)rmap_each(m, gfn, writable);
}

static uint64_t take_dirty(uint64_t *p)
{
	return (__atomic_fetch_and(p, ~SPTE_D, __ATOMIC_ACQ_REL) & SPTE_D) ? 1
									    : 0;
}

/* Clear the D bit of every leaf of @gfn; returns how many had it. */
uint64_t rmap_take_dirty(struct mv_mmu *m, uint64_t gfn)
{
	return rmap_each(m, gfn, take_dirty);
}
