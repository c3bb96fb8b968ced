/* libFuzzer target for the page-table walker: the input is a set of paging
 * registers, an address and an access, followed by guest memory (the page
 * tables). Checked, besides "no crash, no out-of-bounds access":
 *   - a successful walk gives a page-aligned translation of the right size
 *     below 2^MAXPHYADDR, its entries inside the image;
 *   - a probe (MV_ACC_NO_AD) and a walk on read-only memory write nothing;
 *     a walk on writable memory changes only A/D bits of entries it used,
 *     and nothing at all when it faults;
 *   - the dump lists leaves in strictly ascending VA order, writes nothing,
 *     and every leaf it lists translates the same way with a walk. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/mmu.h>

#define MAX_MEM (64 * 1024)
#define MAX_LEAVES 4096

struct header {
	uint64_t cr0, cr3, cr4, efer, rflags, va;
	uint32_t pkru;
	uint8_t acc, maxphy, model, pad;
};

static uint64_t mem[MAX_MEM / 8], copy[MAX_MEM / 8];
static size_t mem_size;

static void check(int cond)
{
	if (!cond)
		abort();
}

static bool in_image(uint64_t gpa, unsigned size)
{
	return gpa < mem_size && mem_size - gpa >= size;
}

static void check_translation(const struct mv_paging *pg, uint64_t va,
			      const struct mv_walk *w)
{
	uint64_t size = w->page_size;
	unsigned esize = pg->mode == MV_PAGING_LEGACY ? 4 : 8;

	check(size == 1u << 12 || size == 2u << 20 || size == 4u << 20 ||
	      size == 1u << 30);
	check((w->gpa & (size - 1)) == (va & (size - 1)));
	check(w->gpa >> (pg->mode == MV_PAGING_LEGACY ? 40 : pg->maxphyaddr)
	      == 0);
	check(w->nr_entries <= MV_WALK_MAX_LEVELS);
	for (unsigned i = 0; i < w->nr_entries; i++)
		check(in_image(w->entry_gpa[i], esize));
}

/* Memory differs from the copy only in A/D bits of the entries used. */
static void check_only_ad(const struct mv_walk *w)
{
	const uint8_t *now = (const uint8_t *)mem, *was = (const uint8_t *)copy;

	for (size_t i = 0; i < mem_size; i++) {
		uint8_t diff = now[i] ^ was[i];
		bool ok = false;

		if (!diff)
			continue;
		for (unsigned e = 0; e < w->nr_entries && !ok; e++)
			ok = i == w->entry_gpa[e] && !(diff & ~0x60);
		check(ok);
	}
}

static void one_walk(const struct mv_paging *pg, const struct mv_gmem *gm,
		     uint64_t va, unsigned acc, bool may_write)
{
	struct mv_walk w;
	int rc = mv_walk(pg, gm, va, acc, &w);

	check(rc == w.status && rc >= MV_WALK_OK && rc <= MV_WALK_RETRY);
	if (rc == MV_WALK_OK)
		check_translation(pg, va, &w);
	else
		check(w.leaf == 0);
	/* No translation fields without a translation (mmu.h): only OK and
	 * a rights or key fault report one. */
	if (rc != MV_WALK_OK && !(rc == MV_WALK_PF &&
	    (w.error_code & (MV_PF_P | MV_PF_RSVD)) == MV_PF_P))
		check(!w.gpa && !w.page_size && !w.perm && !w.pkey &&
		      !w.memtype);
	if (rc == MV_WALK_NOT_RAM)
		check(w.nr_entries >= 1 &&
		      !in_image(w.entry_gpa[w.nr_entries - 1],
				pg->mode == MV_PAGING_LEGACY ? 4 : 8));
	if (may_write && rc == MV_WALK_OK)
		check_only_ad(&w);
	else
		check(!memcmp(mem, copy, mem_size));
	memcpy(mem, copy, mem_size);
}

struct dump_state {
	const struct mv_paging *pg;
	const struct mv_gmem *gm;
	uint64_t last_va;
	unsigned n;
};

static int dump_leaf(void *opaque, const struct mv_walk_leaf *l)
{
	struct dump_state *d = opaque;
	struct mv_walk w;
	unsigned acc = MV_ACC_NO_AD | ((l->perm & MV_PERM_U) ? MV_ACC_USER : 0);

	check(d->n == 0 || l->va > d->last_va);
	check((l->gpa & (l->page_size - 1)) == 0);
	d->last_va = l->va;
	int rc = mv_walk(d->pg, d->gm, l->va, acc, &w);

	/* A rights fault (PKRU) is possible; a missing mapping is not. */
	check(rc == MV_WALK_OK ||
	      (rc == MV_WALK_PF && (w.error_code & MV_PF_P) &&
	       !(w.error_code & MV_PF_RSVD)));
	if (rc == MV_WALK_OK)
		check(w.gpa == l->gpa && w.perm == l->perm &&
		      w.page_size == l->page_size);
	return ++d->n >= MAX_LEAVES;
}

static void run(const struct header *h)
{
	struct mv_cpu_regs r = { h->cr0 | MV_CR0_PE, h->cr3 & 0x1ffff, h->cr4,
				 h->efer, h->rflags, h->pkru };
	struct mv_cpu_model cpu = { 32 + h->maxphy % 21, h->model & 1,
				    h->model & 2 };
	struct mv_gmem rw, ro;
	struct mv_gmem_flat frw, fro;
	struct mv_paging pg;

	mv_gmem_flat_init(&rw, &frw, mem, 0, mem_size, true);
	mv_gmem_flat_init(&ro, &fro, mem, 0, mem_size, false);
	int rc = mv_paging_init(&pg, &r, &cpu, &ro);

	check(rc == -MV_EINVAL || (rc >= MV_WALK_OK && rc <= MV_WALK_NOT_RAM));
	if (rc != MV_WALK_OK)
		return;
	one_walk(&pg, &ro, h->va, h->acc, false);
	one_walk(&pg, &rw, h->va, h->acc | MV_ACC_NO_AD, false);
	one_walk(&pg, &rw, h->va, h->acc & ~MV_ACC_NO_AD, true);

	struct dump_state d = { &pg, &ro, 0, 0 };

	rc = mv_walk_dump(&pg, &ro, dump_leaf, &d);
	check(rc == 0 || rc == 1 || (rc == -MV_ESTATE &&
				     pg.mode == MV_PAGING_OFF));
	check(!memcmp(mem, copy, mem_size));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct header h;

	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	mem_size = size - sizeof(h);
	if (mem_size > MAX_MEM)
		mem_size = MAX_MEM;
	memcpy(mem, data + sizeof(h), mem_size);
	memcpy(copy, mem, mem_size);
	run(&h);
	return 0;
}
