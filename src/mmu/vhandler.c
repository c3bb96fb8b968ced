/* Virtual access handlers (include/memvisor/vhandler.h, seed 000) with
 * the fixes the seed lists but never made: registration and
 * deregistration touch only the leaves of the frames the range maps (no
 * full resync), the phys -> virt cache follows the guest through the
 * shadowing code (table writes, INVLPG, CR3 loads, faults), and a bitmap
 * answers "is there a handler here?" in O(1). Everything here runs under
 * the VM lock, on the vCPU's thread except vh_table_written. */
#include <stdlib.h>
#include <string.h>

#include "mmu/shadow.h"

#define VH_PAGES_MAX (1u << 20)

/* ---- the sparse bitmap of handled pages ---------------------------------- */

static uint32_t region_bucket(uint64_t region)
{
	return (uint32_t)((region * 0x9e3779b97f4a7c15ull) >> 58);
}

static struct vh_region *region_find(const struct mv_vcpu *v, uint64_t region)
{
	for (struct vh_region *r = v->vh_map[region_bucket(region)]; r;
	     r = r->next)
		if (r->region == region)
			return r;
	return NULL;
}

static bool bitmap_test(const struct mv_vcpu *v, uint64_t va)
{
	const struct vh_region *r = region_find(v, va >> VH_REGION_SHIFT);
	uint64_t page = (va >> MV_PAGE_SHIFT) &
			((1u << (VH_REGION_SHIFT - MV_PAGE_SHIFT)) - 1);

	return r && ((r->bits[page / 64] >> (page % 64)) & 1);
}

static int bitmap_set(struct mv_vcpu *v, uint64_t va, bool on)
{
	uint64_t region = va >> VH_REGION_SHIFT;
	struct vh_region *r = region_find(v, region);
	uint64_t page = (va >> MV_PAGE_SHIFT) &
			((1u << (VH_REGION_SHIFT - MV_PAGE_SHIFT)) - 1);

	if (!r && !on)
		return 0;
	if (!r) {
		r = calloc(1, sizeof(*r));
		if (!r)
			return -MV_ENOMEM;
		r->region = region;
		r->next = v->vh_map[region_bucket(region)];
		v->vh_map[region_bucket(region)] = r;
	}
	bool was = (r->bits[page / 64] >> (page % 64)) & 1;

	if (on && !was) {
		r->bits[page / 64] |= 1ull << (page % 64);
		r->pages++;
	} else if (!on && was) {
		r->bits[page / 64] &= ~(1ull << (page % 64));
		r->pages--;
	}
	return 0;
}

static void bitmap_free(struct mv_vcpu *v)
{
	for (unsigned b = 0; b < VH_BUCKETS; b++)
		while (v->vh_map[b]) {
			struct vh_region *r = v->vh_map[b];

			v->vh_map[b] = r->next;
			free(r);
		}
}

/* ---- the phys -> virt cache: frames under handlers ------------------------ */

static struct vh_gfn **gfn_slot(struct mv_mmu *m, uint64_t gfn)
{
	struct vh_gfn **pp = &m->vh_gfns[region_bucket(gfn)];

	while (*pp && (*pp)->gfn != gfn)
		pp = &(*pp)->next;
	return pp;
}

unsigned vh_gfn_state(const struct mv_mmu *m, uint64_t gfn)
{
	if (!m->nvh_gfns)
		return VH_STATE_NONE;
	const struct vh_gfn *g = *gfn_slot((struct mv_mmu *)m, gfn);

	return !g ? VH_STATE_NONE : g->alls ? VH_STATE_ALL
		    : g->writes ? VH_STATE_WRITE : VH_STATE_NONE;
}

bool vh_table_used(const struct mv_mmu *m, uint64_t gfn)
{
	const struct vh_gfn *g = m->nvh_gfns ? *gfn_slot((struct mv_mmu *)m,
							  gfn) : NULL;

	return g && g->tables;
}

static struct vh_gfn *gfn_entry(struct mv_mmu *m, uint64_t gfn)
{
	struct vh_gfn **pp = gfn_slot(m, gfn);

	if (!*pp) {
		*pp = calloc(1, sizeof(**pp));
		if (!*pp)
			return NULL;
		(*pp)->gfn = gfn;
		m->nvh_gfns++;
	}
	return *pp;
}

static void gfn_put(struct mv_mmu *m, uint64_t gfn)
{
	struct vh_gfn **pp = gfn_slot(m, gfn), *g = *pp;

	if (g && !g->alls && !g->writes && !g->tables) {
		*pp = g->next;
		free(g);
		m->nvh_gfns--;
	}
}

/* The tables a handled page's walk reads are write-tracked even when no
 * shadow page shadows them, so that the guest cannot remap the page
 * behind the cache. */
static void tables_ref(struct mv_mmu *m, const struct vh_page *p, int d)
{
	for (unsigned i = 0; i < p->ntables; i++) {
		struct vh_gfn *g = d > 0 ? gfn_entry(m, p->tables[i])
					 : *gfn_slot(m, p->tables[i]);

		if (!g)
			continue;
		g->tables += d;
		track_update(m, p->tables[i]);
		gfn_put(m, p->tables[i]);
	}
}

/* A page of handler @h of @v now maps @gfn: protect the frame's leaves. */
static void gfn_add(struct mv_vcpu *v, uint32_t h, uint64_t gfn)
{
	struct mv_mmu *m = v->mmu;
	struct vh_gfn *g = gfn_entry(m, gfn);
	bool all = v->vh[h].kind == MV_VHANDLER_ALL;

	if (!g)
		return;  /* not cached: faults in the range still compare */
	unsigned before = g->alls ? 2 : g->writes ? 1 : 0;

	g->alls += all;
	g->writes += !all;
	g->vcpu = v->id;
	g->handler = h;
	if (all && before < 2)
		m->st.notify_zaps += rmap_zap_gfn(m, gfn);
	else if (!all && before < 1)
		m->st.write_protects += rmap_write_protect_gfn(m, gfn);
	m->flush_pending = true;
}

static void gfn_del(struct mv_vcpu *v, uint32_t h, uint64_t gfn)
{
	struct mv_mmu *m = v->mmu;
	struct vh_gfn *g = *gfn_slot(m, gfn);

	if (!g)
		return;
	if (v->vh[h].kind == MV_VHANDLER_ALL)
		g->alls--;
	else
		g->writes--;
	gfn_put(m, gfn);
	/* leaves stay read-only or absent until they refault: no flush */
}

/* ---- keeping the cache right --------------------------------------------- */

static void page_record(struct mv_mmu *m, struct vh_page *p,
			const struct mv_walk *w)
{
	struct vh_page old = *p;

	p->ntables = w ? w->nr_entries : 0;
	for (unsigned i = 0; i < p->ntables; i++)
		p->tables[i] = w->entry_gpa[i] >> MV_PAGE_SHIFT;
	p->stale = false;
	tables_ref(m, p, 1);
	tables_ref(m, &old, -1);
}

/* The translation of page @i of handler @h is @w (NULL: unmapped). */
static void page_update(struct mv_vcpu *v, uint32_t h, uint64_t i,
			const struct mv_walk *w)
{
	struct vhandler *vh = &v->vh[h];
	struct vh_page *p = &vh->pages[i];
	uint64_t gfn = w ? w->gpa >> MV_PAGE_SHIFT : VH_NONE;
	uint64_t old = p->gfn;

	page_record(v->mmu, p, w);
	if (gfn == old)
		return;
	if (old != VH_NONE)
		gfn_del(v, h, old);
	if (gfn != VH_NONE)
		gfn_add(v, h, gfn);
	p->gfn = gfn;
	if (vh->inval)
		vh->inval(vh->opaque, v, vh->va + i * MV_PAGE_SIZE,
			  old == VH_NONE ? UINT64_MAX : old << MV_PAGE_SHIFT,
			  gfn == VH_NONE ? UINT64_MAX : gfn << MV_PAGE_SHIFT);
}

/* Walk page @i again (no A/D: the guest did not access it). */
static void page_sync(struct mv_vcpu *v, uint32_t h, uint64_t i)
{
	struct mv_walk w;
	uint64_t va = v->vh[h].va + i * MV_PAGE_SIZE;
	int rc = mv_walk(&v->pg, &v->gm, va, MV_ACC_NO_AD, &w);

	page_update(v, h, i, rc == MV_WALK_OK ? &w : NULL);
	/* unmapped: keep the tables that exist, their writes may map it */
	if (rc == MV_WALK_PF || rc == MV_WALK_NOT_RAM)
		page_record(v->mmu, &v->vh[h].pages[i], &w);
}

static bool cached(const struct vhandler *vh)
{
	return vh->used && vh->kind != MV_VHANDLER_HYPERVISOR;
}

void vh_sync_all(struct mv_vcpu *v)
{
	if (!v->nvh)
		return;
	mv_vm_lock(v->vm);
	for (uint32_t h = 0; h < MV_VHANDLER_MAX; h++)
		for (uint64_t i = 0; cached(&v->vh[h]) && i < v->vh[h].npages; i++)
			page_sync(v, h, i);
	v->vh_sync = false;
	sp_commit_zap(v->mmu);
	mv_vm_unlock(v->vm);
}

void vh_sync_stale(struct mv_vcpu *v)
{
	for (uint32_t h = 0; h < MV_VHANDLER_MAX; h++)
		for (uint64_t i = 0; cached(&v->vh[h]) && i < v->vh[h].npages; i++)
			if (v->vh[h].pages[i].stale)
				page_sync(v, h, i);
	v->vh_sync = false;
	sp_commit_zap(v->mmu);
}

/* Which handler covers @va, and its page index. */
static int covering(const struct mv_vcpu *v, uint64_t va, uint64_t *page)
{
	if (!v->nvh || !bitmap_test(v, va))
		return -1;
	for (uint32_t h = 0; h < MV_VHANDLER_MAX; h++) {
		const struct vhandler *vh = &v->vh[h];

		if (vh->used && va >= vh->va &&
		    (va - vh->va) >> MV_PAGE_SHIFT < vh->npages) {
			*page = (va - vh->va) >> MV_PAGE_SHIFT;
			return (int)h;
		}
	}
	return -1;
}

bool vh_hyper(const struct mv_vcpu *v, uint64_t va)
{
	uint64_t i;
	int h = covering(v, va, &i);

	return h >= 0 && v->vh[h].kind == MV_VHANDLER_HYPERVISOR;
}

/* A fault in a handled range shows the translation now. */
void vh_fault_seen(struct mv_vcpu *v, uint64_t va, const struct mv_walk *w)
{
	uint64_t i;
	int h = covering(v, va, &i);

	if (h >= 0 && cached(&v->vh[h]) &&
	    (v->vh[h].pages[i].gfn != w->gpa >> MV_PAGE_SHIFT ||
	     v->vh[h].pages[i].stale))
		page_update(v, (uint32_t)h, i, w);
}

void vh_invlpg(struct mv_vcpu *v, uint64_t va)
{
	uint64_t i;
	int h = covering(v, va, &i);

	if (h < 0 || !cached(&v->vh[h]))
		return;
	mv_vm_lock(v->vm);
	page_sync(v, (uint32_t)h, i);
	sp_commit_zap(v->mmu);
	mv_vm_unlock(v->vm);
}

/* A guest table was written (track hook, any thread): pages whose walk
 * used it are synced by their vCPU before its next access. The hook's
 * shootdown empties that vCPU's TLB first, so not even an inline TLB
 * lookup gets past the stale cache (an alias of a frame the range maps
 * now included). */
void vh_table_written(struct mv_mmu *m, uint64_t gfn)
{
	for (uint32_t k = 0; k < MV_VCPU_MAX; k++) {
		struct mv_vcpu *v = m->vcpus[k];
		bool hit = false;

		for (uint32_t h = 0; v && v->nvh && h < MV_VHANDLER_MAX; h++)
			for (uint64_t i = 0; cached(&v->vh[h]) &&
					     i < v->vh[h].npages; i++) {
				struct vh_page *p = &v->vh[h].pages[i];

				for (unsigned t = 0; t < p->ntables; t++)
					if (p->tables[t] == gfn) {
						p->stale = hit = true;
						break;
					}
			}
		if (hit) {
			atomic_fetch_or(&v->req, REQ_VH_SYNC);
			m->flush_pending = true;
		}
	}
}

/* ---- calling the handler --------------------------------------------------- */

static struct vhandler *by_gfn(struct mv_mmu *m, uint64_t gfn,
			       struct mv_vcpu **owner)
{
	const struct vh_gfn *g = *gfn_slot(m, gfn);

	if (!g || !m->vcpus[g->vcpu])
		return NULL;
	*owner = m->vcpus[g->vcpu];
	return &(*owner)->vh[g->handler];
}

/* An access the MMU sent to the slow path: is it a virtual handler's?
 * *handled says whether a handler took it (its result is returned). */
int vh_dispatch(struct mv_vcpu *v, uint64_t va, uint64_t gpa, void *buf,
		size_t n, unsigned acc, bool *handled)
{
	struct mv_vaccess a = { va, gpa, n, acc, buf };
	struct mv_vcpu *owner = v;
	struct vhandler *vh = NULL;
	uint64_t i;
	int h = covering(v, va, &i);

	*handled = false;
	if (h >= 0 && v->vh[h].kind == MV_VHANDLER_HYPERVISOR)
		vh = &v->vh[h];
	else if (v->mmu->nvh_gfns) {
		mv_vm_lock(v->vm);
		vh = by_gfn(v->mmu, gpa >> MV_PAGE_SHIFT, &owner);
		mv_vm_unlock(v->vm);
		if (vh && vh->kind == MV_VHANDLER_WRITE &&
		    !(acc & MV_ACC_WRITE))
			vh = NULL;
	}
	if (!vh)
		return 0;
	int rc = vh->fn(vh->opaque, v, &a);

	/* a monitor range has no guest memory to proceed to */
	if (rc == MV_VHANDLER_PROCEED && vh->kind != MV_VHANDLER_HYPERVISOR)
		return 0;
	*handled = true;
	return rc == MV_VHANDLER_PROCEED ? 0 : rc;
}

/* ---- registration ----------------------------------------------------------- */

static bool overlaps(const struct mv_vcpu *v, uint64_t va, uint64_t n)
{
	for (uint32_t h = 0; h < MV_VHANDLER_MAX; h++) {
		const struct vhandler *o = &v->vh[h];

		if (o->used && va < o->va + o->npages * MV_PAGE_SIZE &&
		    o->va < va + n * MV_PAGE_SIZE)
			return true;
	}
	return false;
}

static int check(const struct mv_vcpu *v, const struct mv_vhandler_config *c)
{
	uint64_t n = c->size >> MV_PAGE_SHIFT;

	if (c->kind > MV_VHANDLER_HYPERVISOR || !c->fn || !c->size ||
	    ((c->va | c->size) & (MV_PAGE_SIZE - 1)) || n > VH_PAGES_MAX ||
	    c->va + c->size < c->va)
		return -MV_EINVAL;
	if (!mv_paging_is_canonical(&v->pg, c->va) ||
	    !mv_paging_is_canonical(&v->pg, c->va + c->size - 1))
		return -MV_EINVAL;
	return overlaps(v, c->va, n) ? -MV_EEXIST : 0;
}

static int fill(struct mv_vcpu *v, uint32_t h, const struct mv_vhandler_config *c)
{
	struct vhandler *vh = &v->vh[h];
	uint64_t n = c->size >> MV_PAGE_SHIFT;

	*vh = (struct vhandler){ true, (uint8_t)c->kind, c->va, n, c->fn,
				 c->inval, c->opaque, NULL };
	if (c->kind != MV_VHANDLER_HYPERVISOR) {
		vh->pages = malloc(n * sizeof(*vh->pages));
		if (!vh->pages)
			return -MV_ENOMEM;
		for (uint64_t i = 0; i < n; i++)
			vh->pages[i] = (struct vh_page){ .gfn = VH_NONE };
	}
	for (uint64_t i = 0; i < n; i++)
		if (bitmap_set(v, c->va + i * MV_PAGE_SIZE, true))
			return -MV_ENOMEM;
	return 0;
}

static void unfill(struct mv_vcpu *v, uint32_t h)
{
	struct vhandler *vh = &v->vh[h];

	for (uint64_t i = 0; i < vh->npages; i++) {
		bitmap_set(v, vh->va + i * MV_PAGE_SIZE, false);
		if (vh->pages && vh->pages[i].gfn != VH_NONE)
			gfn_del(v, h, vh->pages[i].gfn);
		if (vh->pages)
			tables_ref(v->mmu, &vh->pages[i], -1);
	}
	free(vh->pages);
	memset(vh, 0, sizeof(*vh));
}

int mv_vhandler_register(struct mv_vcpu *v, const struct mv_vhandler_config *c,
			 uint32_t *id)
{
	uint32_t h;
	int rc;

	if (!v || !c || !id)
		return -MV_EINVAL;
	vcpu_enter(v);
	rc = check(v, c);
	if (rc)
		return rc;
	for (h = 0; h < MV_VHANDLER_MAX && v->vh[h].used; h++)
		;
	if (h == MV_VHANDLER_MAX)
		return -MV_ELIMIT;
	mv_vm_lock(v->vm);
	rc = fill(v, h, c);
	if (rc) {
		unfill(v, h);
	} else {
		v->nvh++;
		v->mmu->nvh_total++;
		/* only the frames the range maps lose their leaves */
		for (uint64_t i = 0; cached(&v->vh[h]) && i < v->vh[h].npages; i++)
			page_sync(v, h, i);
		sp_commit_zap(v->mmu);
		tlb_flush_all(v);  /* its own VA-side entries of the range */
		*id = h;
	}
	mv_vm_unlock(v->vm);
	return rc;
}

int mv_vhandler_deregister(struct mv_vcpu *v, uint32_t id)
{
	if (!v)
		return -MV_EINVAL;
	if (id >= MV_VHANDLER_MAX || !v->vh[id].used)
		return -MV_ENOENT;
	vcpu_enter(v);
	mv_vm_lock(v->vm);
	unfill(v, id);
	v->nvh--;
	v->mmu->nvh_total--;
	mv_vm_unlock(v->vm);
	return 0;
}

void vh_free(struct mv_vcpu *v)
{
	for (uint32_t h = 0; h < MV_VHANDLER_MAX; h++)
		if (v->vh[h].used) {
			unfill(v, h);
			v->mmu->nvh_total--;
		}
	v->nvh = 0;
	bitmap_free(v);
}
