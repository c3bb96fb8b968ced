/* memvisor walk --shadow: the same answers as the walker's, from a vCPU's
 * shadow MMU. The image is loaded into a VM through the restore path
 * (populate: pages of zeros stay ZERO, holes of a sparse file are not even
 * read), a vCPU gets the registers, and every translation goes through it:
 * each VA twice, cold (a shadow fault: a guest walk that fills the shadow)
 * and warm (the soft TLB or the shadow tables, no guest walk), and the
 * two answers must agree. --dump faults in every leaf of the guest's
 * tables and lists the shadow tables themselves (mv_vcpu_shadow_dump):
 * the frame of each line comes from the shadow page, checked against the
 * host page the VM has for it.
 *
 * The page, its size and the effective X/U/W come from the shadow; the
 * flags G D A C T are the guest entry's own bits, read from the image at
 * the place the shadow leaf says it stands for (the vCPU's walks set A/D
 * in the VM's copy, never in the image, as the walker's output shows
 * them). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

#include "cmd.h"
#include "walk.h"

/* At most this many shadow pages (the MMU's own limit is near 4 M). */
#define CAP_MAX 4000000u

struct shadow {
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vcpu *cpu;
	const struct mv_gmem *image;  /* the walker's view, for guest flags */
};

static int fail(const char *what, int rc)
{
	fprintf(stderr, "memvisor walk: --shadow: %s: %s\n", what,
		mv_strerror(rc));
	return 1;
}

/* --lenient-pdpte: the vCPU's CR3 load must see the present PDPTEs with
 * bit 5 clear, as the walker's does: clear it in the VM's copy (the
 * image is not touched). */
static int lenient_pdptes(struct shadow *s, const struct walk_opts *o,
			  const struct mv_paging *pg)
{
	uint64_t pdpt = o->regs.cr3 & 0xffffffe0, e[4];

	if (!o->lenient_pdpte || pg->mode != MV_PAGING_PAE)
		return 0;
	if (mv_vm_phys_read(s->vm, pdpt, e, sizeof(e)))
		return 0;  /* outside RAM: the load says what it finds */
	for (int i = 0; i < 4; i++)
		if (e[i] & MV_PTE_P)
			e[i] &= ~(uint64_t)MV_PTE_A;
	int rc = mv_vm_phys_write(s->vm, pdpt, e, sizeof(e));

	return rc ? fail("--lenient-pdpte", rc) : 0;
}

static int shadow_open(struct shadow *s, const struct walk_opts *o,
		       const struct image *img, const struct mv_paging *pg,
		       const struct mv_gmem *gm, uint64_t cap)
{
	uint64_t size = (img->size + MV_PAGE_SIZE - 1) &
			~(uint64_t)(MV_PAGE_SIZE - 1);
	struct mv_vm_range ram = { .type = MV_PAGE_RAM, .gpa = o->base,
				   .size = size, .name = "image" };
	struct mv_vm_config vc = { .ranges = &ram, .nranges = 1 };
	struct mv_mmu_config mc = {
		.max_shadow_pages = (uint32_t)(cap < CAP_MAX ? cap : CAP_MAX) };
	struct mv_vcpu_config cc = { .cpu = o->cpu };
	struct mv_cpu_regs regs = o->regs;
	int rc;

	memset(s, 0, sizeof(*s));
	s->image = gm;
	if ((rc = mv_host_create(NULL, &s->host)))
		return fail("host pool", rc);
	if ((rc = mv_vm_create(s->host, &vc, &s->vm)))
		return fail("a VM for the image", rc);
	if ((rc = image_load(s->vm, img, o->base)))
		return fail("loading the image", rc);
	if ((rc = lenient_pdptes(s, o, pg)))
		return rc;
	if ((rc = mv_mmu_configure(s->vm, &mc)))
		return fail("the shadow MMU", rc);
	if ((rc = mv_vcpu_create(s->vm, &cc, &s->cpu)))
		return fail("a vCPU", rc);
	if (o->dump) {  /* the fault-in reads need no SMAP, no keys */
		regs.rflags |= MV_RFLAGS_AC;
		regs.pkru = 0;
	}
	rc = mv_vcpu_set_regs(s->cpu, &regs);
	if (rc)  /* the walker took these registers: the vCPU must too */
		return fail("the vCPU refused the registers",
			    rc < 0 ? rc : -MV_EINTERNAL);
	return 0;
}

static void shadow_close(struct shadow *s)
{
	if (s->cpu)
		mv_vcpu_destroy(s->cpu);
	if (s->vm)
		mv_vm_destroy(s->vm);
	mv_host_destroy(s->host);
}

static uint64_t guest_entry(const struct shadow *s,
			    const struct mv_shadow_leaf *l)
{
	uint64_t e = 0;

	if (!l->entry_size ||
	    s->image->read(s->image->opaque, l->entry_gpa, l->entry_size,
			   &e) != MV_GMEM_OK)
		return 0;
	return e;
}

/* The guest entry's own G D A C T bits, from the image. */
static uint64_t guest_flags(const struct shadow *s,
			    const struct mv_shadow_leaf *l)
{
	return guest_entry(s, l) &
	       (MV_PTE_G | MV_PTE_D | MV_PTE_A | MV_PTE_PCD | MV_PTE_PWT);
}

/* The effective rights: the SPTE's, and W where the shadow holds it back
 * only until the first write dirties a large guest page (the guest leaf
 * and everything above it allow writes). */
static unsigned guest_perm(const struct shadow *s,
			   const struct mv_shadow_leaf *l)
{
	if ((l->perm & MV_PERM_W) || !(l->above_perm & MV_PERM_W) ||
	    l->page_size == MV_PAGE_SIZE || !(guest_entry(s, l) & MV_PTE_W))
		return l->perm;
	return l->perm | MV_PERM_W;
}

/* The frame a shadow leaf maps must be the host page the VM has for
 * that guest page (the zero page for a page of zeros). */
static int check_host_page(const struct shadow *s,
			   const struct mv_shadow_leaf *l)
{
	const struct mv_page *p = mv_vm_page(s->vm, l->gpa >> MV_PAGE_SHIFT);
	mv_page_id want;

	if (l->mmio)
		return p && mv_page_type(p) != MV_PAGE_MMIO ? -1 : 0;
	if (!p)
		return -1;
	want = mv_page_state(p) == MV_PAGE_ZERO ||
	       mv_page_state(p) == MV_PAGE_BALLOONED ? MV_ZERO_PAGE
						      : mv_page_host_id(p);
	return l->host_id == want ? 0 : -1;
}

static int host_page_mismatch(const struct mv_shadow_leaf *l)
{
	fprintf(stderr, "memvisor walk: --shadow: the shadow leaf of VA "
		"0x%016llx maps host page %u, not the one the VM holds for "
		"gpa 0x%llx\n", (unsigned long long)l->va, l->host_id,
		(unsigned long long)l->gpa);
	return 1;
}

/* ---- single VAs ------------------------------------------------------------ */

static bool same(int a, const struct mv_xlate *x, int b,
		 const struct mv_xlate *y)
{
	if (a != b)
		return false;
	switch (a) {
	case MV_VCPU_OK:
		return x->hva == y->hva && x->gpa == y->gpa;
	case MV_VCPU_MMIO:
	case MV_VCPU_SLOW:
		return x->gpa == y->gpa;
	case MV_VCPU_FAULT:
		return x->fault.vector == y->fault.vector &&
		       x->fault.error_code == y->fault.error_code &&
		       x->fault.addr == y->fault.addr;
	default:
		return true;
	}
}

static int translate(struct shadow *s, uint64_t va, unsigned acc,
		     struct mv_xlate *x)
{
	int rc;

	for (int i = 0; i < 4; i++) {
		rc = mv_vcpu_translate(s->cpu, va, acc, x);
		if (rc != MV_VCPU_RETRY)
			break;
	}
	return rc;
}

/* A result line from a translation: the page's size and flags from its
 * shadow leaf (a write that only a handler may do leaves none: a read
 * fills one). */
static int shadow_result(struct shadow *s, uint64_t va, unsigned acc,
			 int rc, const struct mv_xlate *x, struct mv_walk *w)
{
	struct mv_shadow_leaf l;
	struct mv_xlate r;

	memset(w, 0, sizeof(*w));
	if (rc == MV_VCPU_FAULT) {
		w->status = x->fault.vector == MV_VEC_GP ? MV_WALK_GP
							 : MV_WALK_PF;
		w->error_code = x->fault.error_code;
		return 0;
	}
	if (rc == MV_VCPU_SLOW &&
	    translate(s, va, acc & ~MV_ACC_WRITE, &r) < 0)
		return fail("a read for the page's flags", -MV_EINTERNAL);
	rc = mv_vcpu_shadow_leaf(s->cpu, va, &l);
	if (rc != 1 || (l.gpa >> MV_PAGE_SHIFT) != (x->gpa >> MV_PAGE_SHIFT)) {
		fprintf(stderr, "memvisor walk: --shadow: VA 0x%016llx: the "
			"shadow tables do not hold the page the vCPU "
			"answered (gpa 0x%llx)\n", (unsigned long long)va,
			(unsigned long long)x->gpa);
		return 1;
	}
	if (check_host_page(s, &l))
		return host_page_mismatch(&l);
	w->status = MV_WALK_OK;
	w->gpa = x->gpa;
	w->page_size = l.page_size;
	w->perm = (uint8_t)guest_perm(s, &l);
	w->leaf = guest_flags(s, &l);
	return 0;
}

static const char *answer(int rc)
{
	switch (rc) {
	case MV_VCPU_OK: return "a host page";
	case MV_VCPU_FAULT: return "a fault";
	case MV_VCPU_MMIO: return "MMIO";
	case MV_VCPU_SLOW: return "the slow path";
	default: return "retry";
	}
}

/* Cold, then warm; the warm answer of a page must not walk the guest. */
static int one_va(struct shadow *s, const struct mv_paging *pg, uint64_t va,
		  unsigned acc)
{
	struct mv_vcpu_stats before, after;
	struct mv_xlate cold, warm;
	struct mv_walk w;
	int rc1 = translate(s, va, acc, &cold), rc2;

	mv_vcpu_get_stats(s->cpu, &before);
	rc2 = translate(s, va, acc, &warm);
	mv_vcpu_get_stats(s->cpu, &after);
	if (rc1 < 0 || rc2 < 0)
		return fail("translate", rc1 < 0 ? rc1 : rc2);
	if (!same(rc1, &cold, rc2, &warm)) {
		fprintf(stderr, "memvisor walk: --shadow: VA 0x%016llx: the "
			"cold translation gave %s (gpa 0x%llx, error code "
			"0x%x), the warm one %s (gpa 0x%llx, error code "
			"0x%x)\n", (unsigned long long)va, answer(rc1),
			(unsigned long long)cold.gpa, cold.fault.error_code,
			answer(rc2), (unsigned long long)warm.gpa,
			warm.fault.error_code);
		return 1;
	}
	if ((rc2 == MV_VCPU_OK || rc2 == MV_VCPU_MMIO) &&
	    after.faults != before.faults) {
		fprintf(stderr, "memvisor walk: --shadow: VA 0x%016llx: the "
			"warm translation walked the guest tables again\n",
			(unsigned long long)va);
		return 1;
	}
	if ((rc1 = shadow_result(s, va, acc, rc2, &warm, &w)))
		return rc1;
	walk_print(pg, va, &w);
	return tool_output_failed() ? 1 : 0;  /* tool_output_finish says why */
}

int walk_shadow_vas(const struct walk_opts *o, const struct image *img,
		    const struct mv_paging *pg, const struct mv_gmem *gm,
		    const uint64_t *vas, int n)
{
	struct shadow s;
	int rc = shadow_open(&s, o, img, pg, gm, (uint64_t)n * 6 + 64);

	for (int i = 0; !rc && i < n; i++)
		rc = one_va(&s, pg, vas[i], o->acc);
	shadow_close(&s);
	return rc;
}

/* ---- --dump ---------------------------------------------------------------- */

struct leaves {
	uint64_t *va;
	size_t n, cap;
};

/* The guest's leaves (the walker's dump of the image): the first byte of
 * each is what the vCPU faults in. */
static int collect(void *opaque, const struct mv_walk_leaf *l)
{
	struct leaves *ls = opaque;

	if (ls->n == ls->cap) {
		size_t cap = ls->cap ? 2 * ls->cap : 4096;
		uint64_t *va = realloc(ls->va, cap * sizeof(*va));

		if (!va)
			return -MV_ENOMEM;
		ls->va = va;
		ls->cap = cap;
	}
	ls->va[ls->n++] = l->va;
	return 0;
}

static int fault_in(struct shadow *s, const struct leaves *ls)
{
	struct mv_mmu_stats ms;
	struct mv_xlate x;

	for (size_t i = 0; i < ls->n; i++) {
		int rc = translate(s, ls->va[i], 0, &x);

		if (rc != MV_VCPU_OK && rc != MV_VCPU_MMIO) {
			fprintf(stderr, "memvisor walk: --shadow: faulting in "
				"VA 0x%016llx: %s\n",
				(unsigned long long)ls->va[i],
				rc < 0 ? mv_strerror(rc) : answer(rc));
			return 1;
		}
	}
	if (mv_mmu_get_stats(s->vm, &ms) == 0 && ms.cap_zaps) {
		fprintf(stderr, "memvisor walk: --shadow: the guest needs more "
			"than %llu shadow pages; the listing would miss the "
			"evicted ones\n",
			(unsigned long long)ms.shadow_pages_max);
		return 1;
	}
	return 0;
}

struct listing {
	struct shadow *s;
	uint64_t large_va;   /* the large page printed last */
	bool large;
	int bad;
};

/* One line per guest page: the first 4 KiB piece of a large page stands
 * for it (the fault-in touched only that one). */
static int list_leaf(void *opaque, const struct mv_shadow_leaf *l)
{
	struct listing *li = opaque;
	uint64_t off = l->va & (l->page_size - 1);
	struct mv_walk_leaf w = {
		.va = l->va - off, .gpa = l->gpa - off,
		.page_size = l->page_size,
		.perm = (uint8_t)guest_perm(li->s, l) };

	if (l->page_size > MV_PAGE_SIZE && li->large && w.va == li->large_va)
		return 0;  /* another piece of the page just printed */
	if (check_host_page(li->s, l)) {
		li->bad = host_page_mismatch(l);
		return -MV_ECORRUPT;
	}
	li->large = l->page_size > MV_PAGE_SIZE;
	li->large_va = w.va;
	w.leaf = guest_flags(li->s, l);
	return walk_print_leaf(NULL, &w);
}

int walk_shadow_dump(const struct walk_opts *o, const struct image *img,
		     const struct mv_paging *pg, const struct mv_gmem *gm)
{
	struct leaves ls = { 0 };
	struct shadow s;
	struct listing li = { .s = &s };
	int rc = mv_walk_dump(pg, gm, collect, &ls);

	if (rc < 0) {
		free(ls.va);
		return fail("listing the guest's leaves", rc);
	}
	rc = shadow_open(&s, o, img, pg, gm,
			 (uint64_t)ls.n * (pg->levels + 1) + 64);
	if (!rc)
		rc = fault_in(&s, &ls);
	if (!rc && ls.n) {  /* no leaf: no access, no root, nothing to list */
		rc = mv_vcpu_shadow_dump(s.cpu, list_leaf, &li);
		if (rc == -MV_EIO && tool_output_failed())
			rc = 1;  /* tool_output_finish says why */
		else if (li.bad)
			rc = 1;
		else if (rc)
			rc = fail("listing the shadow tables", rc);
	}
	shadow_close(&s);
	free(ls.va);
	return rc;
}
