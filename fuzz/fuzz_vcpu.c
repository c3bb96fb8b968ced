/* libFuzzer target for the shadow MMU: the input is a set of paging
 * registers, a sequence of operations and guest memory (random page
 * tables). A VM is built with that memory, a vCPU loads the registers and
 * runs the operations: accesses (translate, read, write, fetch of 1 to 16
 * bytes, user / supervisor / implicit), writes to guest memory from
 * outside (mv_vm_phys_write), INVLPG, INVPCID, flushes, CR3 loads and
 * register writes. Every answer is checked against a fresh walk of the
 * guest tables (mv_walk with MV_ACC_NO_AD, before the access) on a
 * reference context kept alongside the vCPU's registers:
 *   - a fault has the walk's vector, error code and address;
 *   - a translation reaches the walk's gpa: a token written through the
 *     vCPU is read back at that gpa, and one put there is read through
 *     the vCPU; MMIO and holes are reported as such;
 *   - the guest's A/D bits afterwards: A in every entry of a successful
 *     access, D in its leaf for a write, nothing else, nothing at all for
 *     a faulting access;
 *   - a register write is refused by the vCPU exactly when the walker's
 *     context refuses it.
 * The MMU keeps every shadow in sync with the guest tables (no
 * out-of-sync pages), so a fresh walk is the exact answer, with two
 * exceptions the architecture allows and the operations avoid: a global
 * translation survives a CR3 load (a load of another root with CR4.PGE is
 * followed by a full flush), and a no-flush CR3 load keeps the PCID's
 * translations (the hint is dropped unless the PCID was last loaded with
 * the same root). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

#include "mmu/paging.h"

#define RAM_SIZE (1u << 20)
#define MMIO_GPA (1ull << 20)
#define MMIO_SIZE 4096u
#define HIGH_GPA (1ull << 32)
#define HIGH_SIZE (64u << 10)
#define MAX_IMAGE (64u << 10)
#define MAX_OPS 64

struct header {
	uint64_t cr0, cr3, cr4, efer, rflags;
	uint32_t pkru;
	uint8_t nops, model, pad[2];
};

struct op {
	uint8_t kind, flags, len, pad;
	uint32_t a;
	uint64_t b;
};

static struct {
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vcpu *cpu;
	struct mv_gmem gm;
	struct mv_paging ref;   /* the walker's view of the vCPU's registers */
	uint64_t pcid_root[4096];
	uint8_t dev[MMIO_SIZE];
	uint64_t rng;
} S;

#include <stdio.h>

/* A violated invariant: say which one, then crash for libFuzzer. */
static void check_at(int cond, int line)
{
	if (!cond) {
		fprintf(stderr, "fuzz_vcpu: check at line %d failed\n", line);
		abort();
	}
}
#define check(cond) check_at((cond) != 0, __LINE__)

static int dev_read(void *opaque, uint64_t off, void *buf, size_t len)
{
	(void)opaque;
	memcpy(buf, S.dev + off, len);
	return 0;
}

static int dev_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	(void)opaque;
	memcpy(S.dev + off, buf, len);
	return 0;
}

static uint8_t next_byte(void)
{
	S.rng = S.rng * 6364136223846793005ull + 1442695040888963407ull;
	return (uint8_t)(S.rng >> 56);
}

static bool is_ram(uint64_t gpa)
{
	return gpa < RAM_SIZE || (gpa >= HIGH_GPA && gpa - HIGH_GPA < HIGH_SIZE);
}

static bool in_mmio(uint64_t gpa)
{
	return gpa >= MMIO_GPA && gpa - MMIO_GPA < MMIO_SIZE;
}

static unsigned esize(void)
{
	return S.ref.mode == MV_PAGING_LEGACY ? 4 : 8;
}

static uint64_t entry_now(uint64_t gpa)
{
	uint64_t v = 0;

	check(mv_vm_phys_read(S.vm, gpa, &v, esize()) == 0);
	return v;
}

static int outside_get(uint64_t gpa, void *buf, size_t len)
{
	if (in_mmio(gpa)) {
		memcpy(buf, S.dev + (gpa - MMIO_GPA), len);
		return 0;
	}
	return mv_vm_phys_read(S.vm, gpa, buf, len);
}

static void outside_put(uint64_t gpa, const void *buf, size_t len)
{
	if (in_mmio(gpa))
		memcpy(S.dev + (gpa - MMIO_GPA), buf, len);
	else
		check(mv_vm_phys_write(S.vm, gpa, buf, len) == 0);
}

/* ---- accesses ------------------------------------------------------------ */

struct piece {
	uint64_t va, gpa;
	size_t len;
	struct mv_walk w;
};

struct ad {
	uint64_t gpa, old, set;
	bool may, skip;
};

static bool overlaps(uint64_t a, size_t alen, uint64_t b, size_t blen)
{
	return a < b + blen && b < a + alen;
}

/* Does a piece's target overlap an entry of any walk of the access? */
static bool target_is_table(const struct piece *p, unsigned n, unsigned i)
{
	for (unsigned j = 0; j < n; j++)
		for (unsigned e = 0; e < p[j].w.nr_entries; e++)
			if (p[j].w.entry_gpa[e] >> 12 == p[i].gpa >> 12)
				return true;
	return false;
}

static unsigned collect(const struct piece *p, unsigned n, bool write,
			unsigned ff, struct ad *ad)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++)
		for (unsigned e = 0; e < p[i].w.nr_entries; e++) {
			uint64_t set = 0, g = p[i].w.entry_gpa[e];
			unsigned j;

			if (!is_ram(g))
				continue;  /* NOT_RAM: the entry is not there */

			if (i < ff)
				set = MV_PTE_A |
				      (write && e + 1 == p[i].w.nr_entries
					       ? MV_PTE_D : 0);
			for (j = 0; j < k && ad[j].gpa != g; j++)
				;
			if (j == k)
				ad[k++] = (struct ad){ g, p[i].w.entry[e], 0,
						       false, false };
			ad[j].set |= set;
			ad[j].may |= i < ff && ff < n;
			/* a write that lands on the entry itself wins */
			for (unsigned q = 0; q < n && write && ff == n; q++)
				if (overlaps(g, esize(), p[q].gpa, p[q].len))
					ad[j].skip = true;
		}
	return k;
}

static void check_ad(const struct ad *ad, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		uint64_t now = entry_now(ad[i].gpa);
		uint64_t want = ad[i].old | ad[i].set;

		if (ad[i].skip)
			continue;
		if (ad[i].may)
			check((now | want) == want &&
			      (now & ad[i].old) == ad[i].old);
		else
			check(now == want);
	}
}

static void check_fault(const struct piece *p, int rc,
			const struct mv_fault *f)
{
	check(rc == MV_VCPU_FAULT);
	if (p->w.status == MV_WALK_GP) {
		check(f->vector == MV_VEC_GP);
		return;
	}
	check(f->vector == MV_VEC_PF && f->error_code == p->w.error_code &&
	      f->addr == p->va);
}

static void fill(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = next_byte();
}

static void do_translate(struct piece *p, unsigned acc)
{
	struct mv_xlate x;
	uint8_t tok[16], got[16];
	bool write = acc & MV_ACC_WRITE;
	bool table = target_is_table(p, 1, 0);
	int rc;

	if (p->w.status == MV_WALK_OK && is_ram(p->gpa) && !write && !table) {
		fill(tok, p->len);
		outside_put(p->gpa, tok, p->len);
	}
	rc = mv_vcpu_translate(S.cpu, p->va, acc, &x);
	if (p->w.status != MV_WALK_OK) {
		check_fault(p, rc, &x.fault);
		return;
	}
	if (!is_ram(p->gpa)) {
		check(rc == MV_VCPU_MMIO && x.gpa == p->gpa);
		return;
	}
	int want = write && mv_vm_page_tracked(S.vm, p->gpa >> 12) == 1
			   ? MV_VCPU_SLOW : MV_VCPU_OK;

	check(rc == want && x.gpa == p->gpa);
	if (rc != MV_VCPU_OK)
		return;
	check(x.span == 4096 - (p->va & 4095));
	if (write) {
		fill(tok, p->len);
		memcpy(x.hva, tok, p->len);
		check(outside_get(p->gpa, got, p->len) == 0);
	} else {
		memcpy(got, x.hva, p->len);
		check(outside_get(p->gpa, tok, p->len) == 0);
	}
	check(!memcmp(tok, got, p->len));
}

static int vcpu_access(uint64_t va, void *buf, size_t len, unsigned acc,
		       struct mv_fault *f)
{
	if (acc & MV_ACC_WRITE)
		return mv_vcpu_write(S.cpu, va, buf, len, acc, f);
	if (acc & MV_ACC_FETCH)
		return mv_vcpu_fetch(S.cpu, va, buf, len, acc, f);
	return mv_vcpu_read(S.cpu, va, buf, len, acc, f);
}

static void do_access(struct piece *p, unsigned n, unsigned acc, unsigned ff)
{
	uint8_t tok[16], got[16];
	bool write = acc & MV_ACC_WRITE;
	size_t len = p[0].len + (n > 1 ? p[1].len : 0);
	struct mv_fault f;
	int want = 0, rc;

	fill(tok, len);
	if (ff < n) {
		rc = vcpu_access(p[0].va, write ? tok : got, len, acc, &f);
		check_fault(&p[ff], rc, &f);
		return;
	}
	for (unsigned i = 0, off = 0; i < n; off += p[i].len, i++) {
		if (!is_ram(p[i].gpa) && !in_mmio(p[i].gpa))
			want = -MV_ERANGE;
		else if (!write && !target_is_table(p, n, i))
			outside_put(p[i].gpa, tok + off, p[i].len);
	}
	rc = vcpu_access(p[0].va, write ? tok : got, len, acc, &f);
	check(rc == want);
	if (want)
		return;
	for (unsigned i = 0, off = 0; i < n; off += p[i].len, i++)
		if (write)
			check(outside_get(p[i].gpa, got + off, p[i].len) == 0);
		else if (target_is_table(p, n, i))
			check(outside_get(p[i].gpa, tok + off, p[i].len) == 0);
	check(!memcmp(tok, got, len));
}

static void op_access(const struct op *o)
{
	unsigned acc = o->flags & (MV_ACC_WRITE | MV_ACC_FETCH | MV_ACC_USER |
				   MV_ACC_IMPLICIT);
	bool translate = o->flags & 0x10;
	size_t len = 1 + o->len % 16;
	struct piece p[2];
	struct ad ad[2 * MV_WALK_MAX_LEVELS];
	uint64_t va = o->b;
	unsigned n = 1;

	if (acc & MV_ACC_FETCH)
		acc &= ~MV_ACC_WRITE;
	if (S.ref.mode < MV_PAGING_LONG4)
		va &= 0xffffffffull;
	if (translate && (va & 4095) + len > 4096)
		len = 4096 - (va & 4095);
	p[0].va = va;
	p[0].len = len;
	if ((va & 4095) + len > 4096) {
		p[0].len = 4096 - (va & 4095);
		p[1].va = va + p[0].len;
		if (S.ref.mode < MV_PAGING_LONG4)
			p[1].va &= 0xffffffffull;
		p[1].len = len - p[0].len;
		n = 2;
	}
	for (unsigned i = 0; i < n; i++) {
		int rc = mv_walk(&S.ref, &S.gm, p[i].va, acc | MV_ACC_NO_AD,
				 &p[i].w);

		check(rc >= MV_WALK_OK && rc != MV_WALK_RETRY);
		p[i].gpa = p[i].w.gpa;
	}
	unsigned ff = 0;

	while (ff < n && p[ff].w.status == MV_WALK_OK)
		ff++;
	unsigned k = collect(p, n, acc & MV_ACC_WRITE, ff, ad);

	if (translate)
		do_translate(&p[0], acc);
	else
		do_access(p, n, acc, ff);
	check_ad(ad, k);
}

/* ---- register writes and TLB maintenance ----------------------------------- */

static uint64_t pcid_of(const struct mv_cpu_regs *r, uint64_t cr3)
{
	return (r->cr4 & MV_CR4_PCIDE) ? cr3 & 0xfff : 0;
}

static void op_cr3(const struct op *o)
{
	struct mv_paging pg = S.ref;
	uint64_t cr3 = (o->a & (MAX_IMAGE - 1) & ~0xfffull) |
		       (o->a >> 20 & 0xfff);
	bool noflush = o->flags & 1;
	uint64_t old_root = S.ref.root;

	if (o->flags & 2)
		cr3 |= HIGH_GPA;
	if (noflush && (S.ref.regs.cr4 & MV_CR4_PCIDE)) {
		uint64_t pcid = pcid_of(&S.ref.regs, cr3);

		if (S.pcid_root[pcid] != (cr3 & ~0xfffull))
			noflush = false;
	}
	if (noflush)
		cr3 |= MV_CR3_NOFLUSH;
	int rv = mv_vcpu_set_reg(S.cpu, MV_REG_CR3, cr3);
	int rr = mv_paging_load_cr3(&pg, &S.gm, cr3);

	check(rv == rr);
	if (rv)
		return;
	S.ref = pg;
	if (S.ref.regs.cr4 & MV_CR4_PCIDE)
		S.pcid_root[pcid_of(&S.ref.regs, cr3)] = cr3 & 0x7ffffffffffff000ull;
	else
		memset(S.pcid_root, 0xff, sizeof(S.pcid_root));
	/* Global translations survive the load: only one of the same root
	 * (and in PAE mode the same PDPTEs: not known here) keeps them
	 * consistent with the walk. */
	if ((S.ref.regs.cr4 & MV_CR4_PGE) &&
	    (S.ref.root != old_root || S.ref.mode == MV_PAGING_PAE))
		check(mv_vcpu_flush(S.cpu) == 0);
}

static void op_reg(const struct op *o)
{
	struct mv_cpu_regs r = S.ref.regs;
	struct mv_paging pg;
	enum mv_cpu_reg reg;
	uint64_t val;

	switch (o->flags % 5) {
	case 0:
		reg = MV_REG_CR0, val = r.cr0 ^ (o->b & (MV_CR0_WP | MV_CR0_PG |
							  MV_CR0_PE));
		r.cr0 = val;
		break;
	case 1:
		reg = MV_REG_CR4, val = r.cr4 ^ (o->b & (MV_CR4_PSE | MV_CR4_PAE |
			MV_CR4_PGE | MV_CR4_PCIDE | MV_CR4_LA57 | MV_CR4_SMEP |
			MV_CR4_SMAP | MV_CR4_PKE));
		r.cr4 = val;
		break;
	case 2:
		reg = MV_REG_EFER, val = r.efer ^ (o->b & (MV_EFER_NXE |
							    MV_EFER_LME |
							    MV_EFER_LMA));
		r.efer = val;
		break;
	case 3:
		val = (uint32_t)o->b;
		check(mv_vcpu_set_reg(S.cpu, MV_REG_PKRU, val) == 0);
		S.ref.regs.pkru = S.ref.pkru = (uint32_t)val;
		return;
	default:
		val = r.rflags ^ (o->b & MV_RFLAGS_AC);
		check(mv_vcpu_set_reg(S.cpu, MV_REG_RFLAGS, val) == 0);
		S.ref.regs.rflags = val;
		S.ref.sw = (S.ref.sw & ~MV_PG_SW_AC) |
			   ((val & MV_RFLAGS_AC) ? MV_PG_SW_AC : 0);
		return;
	}
	int rv = mv_vcpu_set_reg(S.cpu, reg, val);
	int rr = mv_paging_init(&pg, &r, NULL, &S.gm);

	check(rv == rr);
	if (rv)
		return;
	S.ref = pg;
	memset(S.pcid_root, 0xff, sizeof(S.pcid_root));
}

static void op_flush(const struct op *o)
{
	switch (o->flags % 4) {
	case 0:
		check(mv_vcpu_invlpg(S.cpu, o->b) == 0);
		break;
	case 1:
		check(mv_vcpu_flush(S.cpu) == 0);
		break;
	default:
		check(mv_vcpu_invpcid(S.cpu, o->a % 4, (o->a >> 8) & 0xfff,
				      o->b) == 0);
		break;
	}
}

static void op_phys_write(const struct op *o)
{
	static const unsigned sizes[] = { 1, 2, 4, 8 };
	unsigned size = sizes[o->flags & 3];
	uint64_t gpa = (o->a % MAX_IMAGE) & ~(uint64_t)(size - 1);

	if (o->flags & 4)
		gpa += HIGH_GPA - (gpa & ~(uint64_t)(HIGH_SIZE - 1));
	check(mv_vm_phys_write(S.vm, gpa, &o->b, size) == 0);
}

/* ---- one input --------------------------------------------------------------- */

static bool setup(void)
{
	struct mv_vm_range r[] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = RAM_SIZE,
		  .name = "low" },
		{ .type = MV_PAGE_MMIO, .gpa = MMIO_GPA, .size = MMIO_SIZE,
		  .name = "dev", .read = dev_read, .write = dev_write },
		{ .type = MV_PAGE_RAM, .gpa = HIGH_GPA, .size = HIGH_SIZE,
		  .name = "high" },
	};
	struct mv_vm_config vc = { .ranges = r, .nranges = 3 };

	check(mv_host_create(NULL, &S.host) == 0);
	check(mv_vm_create(S.host, &vc, &S.vm) == 0);
	check(mv_vcpu_create(S.vm, NULL, &S.cpu) == 0);
	check(mv_gmem_vm_init(&S.gm, S.vm) == 0);
	return true;
}

static void teardown(void)
{
	mv_vcpu_destroy(S.cpu);
	mv_vm_destroy(S.vm);
	mv_host_destroy(S.host);
	S.cpu = NULL;
	S.vm = NULL;
	S.host = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct header h;
	struct op ops[MAX_OPS];

	if (size < sizeof(h))
		return 0;
	memcpy(&h, data, sizeof(h));
	data += sizeof(h), size -= sizeof(h);
	unsigned nops = h.nops % (MAX_OPS + 1);

	if (size < nops * sizeof(struct op))
		nops = (unsigned)(size / sizeof(struct op));
	memcpy(ops, data, nops * sizeof(struct op));
	data += nops * sizeof(struct op), size -= nops * sizeof(struct op);
	if (size > MAX_IMAGE)
		size = MAX_IMAGE;

	setup();
	S.rng = h.cr3 ^ h.pkru;
	memset(S.pcid_root, 0xff, sizeof(S.pcid_root));
	memset(S.dev, 0xa5, sizeof(S.dev));
	if (size) {
		check(mv_vm_phys_write(S.vm, 0, data, size) == 0);
		/* the same image above 4 GiB, for tables that point there */
		check(mv_vm_phys_write(S.vm, HIGH_GPA, data,
				       size < HIGH_SIZE ? size : HIGH_SIZE) == 0);
	}
	struct mv_cpu_regs r = { h.cr0 | MV_CR0_PE,
				 (h.cr3 & (MAX_IMAGE - 1) & ~0xfffull) |
				 ((h.cr3 >> 32) & 0xfff) |
				 ((h.cr3 & (1ull << 31)) ? HIGH_GPA : 0),
				 h.cr4, h.efer, h.rflags, h.pkru };
	int rv = mv_vcpu_set_regs(S.cpu, &r);
	int rr = mv_paging_init(&S.ref, &r, NULL, &S.gm);

	check(rv == rr);
	for (unsigned i = 0; i < nops && rv == 0; i++) {
		const struct op *o = &ops[i];

		switch (o->kind % 8) {
		case 0: case 1: case 2:
			op_access(o);
			break;
		case 3:
			op_phys_write(o);
			break;
		case 4:
			op_cr3(o);
			break;
		case 5:
			op_reg(o);
			break;
		default:
			op_flush(o);
			break;
		}
	}
	teardown();
	return 0;
}
