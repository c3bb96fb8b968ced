/* The walker against the SDM reference model (sdm_model.c), over every
 * combination of entry bits, register switches and access kinds, per paging
 * mode family: at least 1,000,000 cases each (32-bit, PAE, 4-level, 5-level).
 *
 * Each case builds one translation path in a sparse guest memory: the entry
 * bits under test come from the case index (a mixed-radix enumeration), the
 * rest (addresses, indexes, MAXPHYADDR, protection key, which upper entry
 * carries a restriction, which bit is flipped) from a hash of it. Table
 * pages lie anywhere below 2^MAXPHYADDR (below 4 GiB where the mode's
 * pointers are 32 bits: 32-bit paging, the PAE PDPT), leaves too; only
 * those pages are RAM, so a walker that cuts a table pointer reads a hole.
 * Checked: status, exact error code, level, entries read with their
 * addresses and values, gpa, page size, effective rights, protection key,
 * memory type, the leaf, and every entry's value afterwards (A/D updates;
 * none on a fault; none at all for an MV_ACC_NO_AD probe).
 *
 * Under ASan (slow), MV_SDM_STRIDE runs every 7th case (7 is prime to
 * every radix of the enumeration, so every digit still takes every value);
 * the plain build (`make test`) runs all of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/mmu.h>

#include "mmu/sdm_model.h"

/* One executable per test file: the model is compiled in here. */
#include "mmu/sdm_model.c"

#ifndef MV_SDM_STRIDE
#if defined(__SANITIZE_ADDRESS__)
#define MV_SDM_STRIDE 7
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MV_SDM_STRIDE 7
#endif
#endif
#endif
#ifndef MV_SDM_STRIDE
#define MV_SDM_STRIDE 1
#endif

/* Sparse guest memory: the case's table pages, each backed by one page of
 * `image`; every other address is a hole (MV_GMEM_UNBACKED). */
#define SLOTS 6
static uint64_t image[SLOTS * 4096 / 8];
static uint64_t slot_gpa[SLOTS];   /* page address, or 1: none */
static unsigned slots_used;

static uint8_t *slot_ptr(uint64_t gpa, unsigned size)
{
	for (unsigned i = 0; i < slots_used; i++)
		if (slot_gpa[i] == (gpa & ~0xfffull) &&
		    (gpa & 0xfff) + size <= 4096)
			return (uint8_t *)image + i * 4096 + (gpa & 0xfff);
	return NULL;
}

static int sparse_read(void *o, uint64_t gpa, unsigned size, uint64_t *v)
{
	const uint8_t *p = slot_ptr(gpa, size);

	(void)o;
	if (!p)
		return MV_GMEM_UNBACKED;
	*v = 0;
	memcpy(v, p, size);
	return MV_GMEM_OK;
}

static int sparse_cmpxchg(void *o, uint64_t gpa, unsigned size, uint64_t old,
			  uint64_t val)
{
	uint8_t *p = slot_ptr(gpa, size);
	uint64_t cur = 0;

	(void)o;
	if (!p)
		return MV_GMEM_UNBACKED;
	memcpy(&cur, p, size);
	if (cur != old)
		return MV_GMEM_CHANGED;
	memcpy(p, &val, size);
	return MV_GMEM_OK;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A case index split into digits (the enumerated dimensions). */
struct digits {
	uint64_t rest;
};

static unsigned take(struct digits *d, unsigned radix)
{
	unsigned v = (unsigned)(d->rest % radix);

	d->rest /= radix;
	return v;
}

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	r->s = mix(r->s);
	return r->s;
}

static unsigned rnd_in(struct rng *r, unsigned lo, unsigned hi)
{
	return lo + (unsigned)(rnd(r) % (hi - lo + 1));
}

/* Family description: depth, leaf levels possible, legacy extras. */
struct family {
	enum sdm_mode mode;
	unsigned nent;        /* entries on a full path */
	unsigned leaf_kinds;  /* leaf at level 1..leaf_kinds */
	unsigned leaf_bits;   /* P RW US A D [NX] */
	unsigned upper_bits;  /* RW0 US0 [XD1] */
	unsigned extra;       /* 32-bit: CR4.PSE x PSE-36 */
};

static const struct family families[] = {
	{ SDM_32BIT, 2, 2, 5, 2, 4 },
	{ SDM_PAE, 3, 2, 6, 3, 1 },
	{ SDM_4LEVEL, 4, 3, 6, 3, 1 },
	{ SDM_5LEVEL, 5, 3, 6, 3, 1 },
};

static uint64_t family_cases(const struct family *f)
{
	return ((uint64_t)f->leaf_kinds << (f->leaf_bits + f->upper_bits)) *
	       3 /* defect */ * 64 /* switches */ * 9 /* access */ * f->extra;
}

/* Everything one case needs besides the model's input. */
struct built {
	struct sdm_case c;
	uint64_t table[6];     /* [level]: page of the table at that level */
	uint64_t gpa[5];       /* where each entry lives */
	unsigned esize;
	uint64_t cr3;
	unsigned leafpos;
	struct mv_cpu_regs regs;
	struct mv_cpu_model cpu;
	unsigned acc;
};

static const unsigned maxphys[] = { 36, 39, 40, 46, 48, 52 };

static unsigned level_of(const struct built *b, unsigned i)
{
	return b->c.nent - i;  /* 1 = PTE */
}

static unsigned shift_of(const struct built *b, unsigned level)
{
	return 12 + (b->c.mode == SDM_32BIT ? 10 : 9) * (level - 1);
}

/* Random valid frame bits for a leaf at `level` (within MAXPHYADDR). */
static uint64_t leaf_frame(const struct built *b, unsigned level,
			   struct rng *r)
{
	unsigned m = b->c.maxphyaddr, shift = shift_of(b, level);
	uint64_t f;

	if (b->c.mode == SDM_32BIT) {
		f = rnd(r) & (level == 1 ? 0xfffff000ull : 0xffc01000ull);
		unsigned m2 = !b->c.pse36 ? 32 : (m < 40 ? m : 40);
		if (level == 2 && m2 > 32)
			f |= rnd(r) & (((1ull << (m2 - 32)) - 1) << 13);
		return f;
	}
	f = rnd(r) & (((1ull << m) - 1) & ~((1ull << shift) - 1));
	if (level > 1)
		f |= rnd(r) & (1ull << 12);  /* PAT */
	return f;
}

static void build_registers(struct built *b, unsigned sw, struct rng *r)
{
	struct mv_cpu_regs *g = &b->regs;
	enum sdm_mode mode = b->c.mode;

	b->c.cr0_wp = sw & 1;
	b->c.smep = sw & 2;
	b->c.smap = sw & 4;
	b->c.eflags_ac = sw & 8;
	b->c.nxe = sw & 16;
	b->c.pke = sw & 32;
	b->c.pkru = (uint32_t)rnd(r);
	memset(g, 0, sizeof(*g));
	g->cr0 = MV_CR0_PE | MV_CR0_PG | (b->c.cr0_wp ? MV_CR0_WP : 0);
	g->cr4 = (mode != SDM_32BIT ? MV_CR4_PAE : 0) |
		 (b->c.cr4_pse ? MV_CR4_PSE : 0) |
		 (mode == SDM_5LEVEL ? MV_CR4_LA57 : 0) |
		 (b->c.smep ? MV_CR4_SMEP : 0) | (b->c.smap ? MV_CR4_SMAP : 0) |
		 (b->c.pke ? MV_CR4_PKE : 0);
	g->efer = (mode >= SDM_4LEVEL ? MV_EFER_LME | MV_EFER_LMA : 0) |
		  (b->c.nxe ? MV_EFER_NXE : 0);
	g->rflags = b->c.eflags_ac ? MV_RFLAGS_AC : 0;
	g->pkru = b->c.pkru;
	g->cr3 = b->cr3;
	b->cpu.maxphyaddr = (uint8_t)b->c.maxphyaddr;
	b->cpu.no_pdpe1gb = !b->c.page1gb;
	b->cpu.no_pse36 = !b->c.pse36;
}

static void build_access(struct built *b, unsigned a)
{
	unsigned kind = a % 3, who = a / 3;  /* r w x; user sup implicit */

	b->c.write = kind == 1;
	b->c.fetch = kind == 2;
	b->c.user = who == 0 || (who == 2 && (a & 1));
	b->c.implicit = who == 2;
	b->acc = (b->c.write ? MV_ACC_WRITE : 0) |
		 (b->c.fetch ? MV_ACC_FETCH : 0) |
		 (b->c.user ? MV_ACC_USER : 0) |
		 (b->c.implicit ? MV_ACC_IMPLICIT : 0);
}

/* A table page below 2^bits, none of the case's other table pages: one
 * time in four in the first 64 KiB, else anywhere. */
static uint64_t table_page(const struct built *b, unsigned bits,
			   struct rng *r)
{
	for (;;) {
		uint64_t lim = (rnd(r) & 3) ? (1ull << bits) : 0x10000;
		uint64_t t = rnd(r) & (lim - 1) & ~0xfffull;
		bool used = false;

		for (unsigned l = 1; l <= 5; l++)
			used |= b->table[l] == t;
		if (!used)
			return t;
	}
}

/* The path: a table page per level anywhere the mode can point (32-bit
 * paging and the PAE PDPT below 4 GiB), a random index per level, the PAE
 * PDPT at a random 32-byte slot of its page. */
static void build_path(struct built *b, struct rng *r)
{
	unsigned n = b->c.nent, first = 0, m = b->c.maxphyaddr;
	uint64_t va = rnd(r) & 0xfff;

	b->esize = b->c.mode == SDM_32BIT ? 4 : 8;
	for (unsigned l = 0; l <= 5; l++)
		b->table[l] = 1;  /* no page */
	for (unsigned i = 0; i < n; i++) {
		unsigned level = level_of(b, i);
		bool low = b->c.mode == SDM_32BIT ||
			   (b->c.mode == SDM_PAE && i == 0);

		b->table[level] = table_page(b, low ? 32 : m, r);
	}
	if (b->c.mode == SDM_PAE) {
		unsigned slot = rnd_in(r, 0, 3);

		b->cr3 = b->table[3] + 32 * rnd_in(r, 0, 127);
		b->gpa[0] = b->cr3 + 8 * slot;
		va |= (uint64_t)slot << 30;
		first = 1;
	}
	for (unsigned i = first; i < n; i++) {
		unsigned level = level_of(b, i);
		unsigned idx = rnd_in(r, 0, (4096 / b->esize) - 1);

		b->gpa[i] = b->table[level] + idx * b->esize;
		va |= (uint64_t)idx << shift_of(b, level);
	}
	if (b->c.mode != SDM_PAE)
		b->cr3 = b->table[n] | (rnd(r) & 0x18);  /* PWT/PCD */
	if (b->c.mode == SDM_4LEVEL)
		va = (uint64_t)((int64_t)(va << 16) >> 16);
	if (b->c.mode == SDM_5LEVEL)
		va = (uint64_t)((int64_t)(va << 7) >> 7);
	b->c.va_low = va;
}

/* Upper entries: present, writable, user, pointing at the next table,
 * with random ignored bits; the PAE PDPTE has only P, PWT, PCD. */
static uint64_t upper_entry(const struct built *b, unsigned i, struct rng *r)
{
	uint64_t next = b->table[level_of(b, i) - 1];
	uint64_t e = next | MV_PTE_P | (rnd(r) & 0x18);

	if (b->c.mode == SDM_PAE && i == 0)
		return e;
	e |= MV_PTE_W | MV_PTE_U | (rnd(r) & 0xe60);  /* A, D, 9..11 */
	if (b->c.mode >= SDM_4LEVEL)
		e |= rnd(r) & 0x07f0000000000000ull;   /* 58:52 ignored */
	return e;
}

/* A bit to flip for the "reserved bit" defect: high bits for tables (low
 * address bits would send the walk elsewhere), anything for the leaf. */
static unsigned defect_bit(const struct built *b, unsigned i, struct rng *r)
{
	unsigned m = b->c.maxphyaddr;

	if (b->c.mode == SDM_32BIT) {
		bool page = i == b->leafpos &&
			    (b->c.cr4_pse || level_of(b, i) == 1);
		return page ? rnd_in(r, 13, 21) : rnd_in(r, 9, 11);
	}
	if (b->c.mode == SDM_PAE && i == 0)
		return (rnd(r) & 1) ? rnd_in(r, 1, 8) : rnd_in(r, m, 63);
	if (i == b->leafpos && (rnd(r) & 1))
		return rnd_in(r, 13, 29);
	if (i < b->leafpos && level_of(b, i) >= 4 && (rnd(r) & 3) == 0)
		return 7;
	return rnd_in(r, m, 63);
}

static void apply_defect(struct built *b, unsigned defect, struct rng *r)
{
	unsigned i = rnd_in(r, 0, b->leafpos);

	if (defect == 1) {
		if (i == b->leafpos)
			i = b->leafpos ? i - 1 : i;
		b->c.ent[i] &= ~MV_PTE_P;
		if (rnd(r) & 1)  /* reserved bits of a non-present entry */
			b->c.ent[i] |= b->esize == 8 ? 1ull << 62 : 1u << 21;
	} else if (defect == 2) {
		b->c.ent[i] |= 1ull << defect_bit(b, i, r);
	}
	if (b->esize == 4)
		for (unsigned k = 0; k < b->c.nent; k++)
			b->c.ent[k] &= 0xffffffffull;
}

/* The leaf (at leafpos) from the enumerated bits; entries below it are
 * written too, so that a walker not stopping there is caught. */
static void build_entries(struct built *b, unsigned leaf_level,
			  unsigned lbits, unsigned ubits, struct rng *r)
{
	unsigned n = b->c.nent, first = b->c.mode == SDM_PAE ? 1 : 0;
	uint64_t e;

	b->leafpos = n - leaf_level;
	for (unsigned i = 0; i < n; i++)
		b->c.ent[i] = upper_entry(b, i, r);
	e = leaf_frame(b, leaf_level, r) | (rnd(r) & 0xe18) |
	    (leaf_level > 1 ? MV_PTE_PS : (rnd(r) & MV_PTE_PAT4K));
	e |= (lbits & 1 ? MV_PTE_P : 0) | (lbits & 2 ? MV_PTE_W : 0) |
	     (lbits & 4 ? MV_PTE_U : 0) | (lbits & 8 ? MV_PTE_A : 0) |
	     (lbits & 16 ? MV_PTE_D : 0) | (lbits & 32 ? MV_PTE_NX : 0);
	if (b->c.mode >= SDM_4LEVEL)
		e |= rnd(r) & 0x7ff0000000000000ull;   /* key, ignored */
	if (b->c.mode == SDM_32BIT && leaf_level == 2 && !b->c.cr4_pse)
		e = (e & 0xfff) | b->table[1];  /* PS ignored: the PT */
	b->c.ent[b->leafpos] = e;
	for (unsigned bit = 0; bit < 3 && b->leafpos > first; bit++) {
		unsigned i = rnd_in(r, first, b->leafpos - 1);

		if (!(ubits >> bit & 1))
			continue;
		if (bit == 0)
			b->c.ent[i] &= ~MV_PTE_W;
		else if (bit == 1)
			b->c.ent[i] &= ~MV_PTE_U;
		else
			b->c.ent[i] |= MV_PTE_NX;
	}
}

static void build_case(const struct family *f, uint64_t index,
		       struct built *b)
{
	struct digits d = { index };
	struct rng r = { mix(index * 7 + f->mode) };
	unsigned leaf_level = take(&d, f->leaf_kinds) + 1;
	unsigned lbits = take(&d, 1u << f->leaf_bits);
	unsigned ubits = take(&d, 1u << f->upper_bits);
	unsigned defect = take(&d, 3), sw = take(&d, 64);
	unsigned access = take(&d, 9), extra = take(&d, f->extra);

	memset(b, 0, sizeof(*b));
	b->c.mode = f->mode;
	b->c.nent = f->nent;
	b->c.maxphyaddr = maxphys[rnd(&r) % 6];
	b->c.page1gb = (rnd(&r) & 3) != 0;
	b->c.cr4_pse = f->mode != SDM_32BIT || (extra & 1);
	b->c.pse36 = f->mode != SDM_32BIT || !(extra & 2);
	build_path(b, &r);
	build_entries(b, leaf_level, lbits, ubits, &r);
	apply_defect(b, defect, &r);
	build_access(b, access);
	build_registers(b, sw, &r);
}

/* Map the case's table pages (zeroed) and write the entries. */
static void write_entries(const struct built *b)
{
	slots_used = 0;
	for (unsigned l = 1; l <= 5; l++)
		if (b->table[l] != 1)
			slot_gpa[slots_used++] = b->table[l];
	for (unsigned i = 0; i < b->c.nent; i++) {
		uint8_t *p = slot_ptr(b->gpa[i], b->esize);

		if (b->esize == 4) {
			uint32_t v = (uint32_t)b->c.ent[i];
			memcpy(p, &v, 4);
		} else {
			memcpy(p, &b->c.ent[i], 8);
		}
	}
}

static uint64_t read_entry(const struct built *b, unsigned i)
{
	uint64_t v = 0;

	memcpy(&v, slot_ptr(b->gpa[i], b->esize), b->esize);
	return v;
}

static void clear_entries(const struct built *b)
{
	for (unsigned i = 0; i < b->c.nent; i++)
		memset(slot_ptr(b->gpa[i], b->esize), 0, b->esize);
}

/* Print a failing case before cmocka stops the test. */
static void describe(const struct built *b, uint64_t index, const char *what)
{
	fprintf(stderr, "case %llu (mode %d, M %u, acc 0x%x, sw wp%d smep%d "
		"smap%d ac%d nxe%d pke%d pkru %08x): %s\n",
		(unsigned long long)index, b->c.mode, b->c.maxphyaddr, b->acc,
		b->c.cr0_wp, b->c.smep, b->c.smap, b->c.eflags_ac, b->c.nxe,
		b->c.pke, b->c.pkru, what);
	for (unsigned i = 0; i < b->c.nent; i++)
		fprintf(stderr, "  entry %u @%#llx = %#018llx\n", i,
			(unsigned long long)b->gpa[i],
			(unsigned long long)b->c.ent[i]);
}

#define CHECK(cond, b, index, what)                                        \
	do {                                                               \
		if (!(cond)) {                                             \
			describe(b, index, what);                          \
			fail_msg("%s", what);                              \
		}                                                          \
	} while (0)

/* SDM 4.9.2 / 4.6.2, from the leaf entry itself: the PAT index (PAT bit 7
 * of a PTE or 12 of a large page, PCD, PWT) and, in IA-32e modes, the
 * protection key in bits 62:59. */
static unsigned leaf_memtype(uint64_t leaf, bool large)
{
	return ((leaf >> (large ? 12 : 7) & 1) << 2) | ((leaf >> 4 & 1) << 1) |
	       (leaf >> 3 & 1);
}

static unsigned leaf_pkey(const struct built *b, uint64_t leaf)
{
	return b->c.mode >= SDM_4LEVEL ? (unsigned)(leaf >> 59) & 15 : 0;
}

/* The translation fields: the model's, or all 0 when there is none. */
static void check_translation(const struct built *b, uint64_t index,
			      const struct sdm_result *m,
			      const struct mv_walk *w, bool has)
{
	uint64_t leaf = b->c.ent[m->used - 1];
	bool large = m->page_size > 4096;
	unsigned perm = (m->writable ? MV_PERM_W : 0) |
			(m->user_page ? MV_PERM_U : 0) |
			(m->exec_disable ? MV_PERM_NX : 0);

	CHECK(w->gpa == (has ? m->pa : 0), b, index, "gpa");
	CHECK(w->page_size == (has ? m->page_size : 0), b, index, "page size");
	CHECK(w->perm == (has ? perm : 0), b, index, "rights");
	CHECK(w->pkey == (has ? leaf_pkey(b, leaf) : 0), b, index,
	      "protection key");
	CHECK(w->memtype == (has ? leaf_memtype(leaf, large) : 0), b, index,
	      "memory type");
}

static void check_result(const struct built *b, uint64_t index,
			 const struct sdm_result *m, const struct mv_walk *w,
			 unsigned acc)
{
	unsigned skip = b->c.mode == SDM_PAE ? 1 : 0;
	bool denied = m->fault && (m->error_code & MV_PF_P) &&
		      !(m->error_code & MV_PF_RSVD);

	if (m->fault) {
		CHECK(w->status == MV_WALK_PF, b, index, "expected #PF");
		CHECK(w->error_code == m->error_code, b, index, "error code");
		CHECK(w->leaf == 0, b, index, "no leaf on a fault");
		check_translation(b, index, m, w, denied);
	} else {
		CHECK(w->status == MV_WALK_OK, b, index, "expected success");
		CHECK(w->error_code == 0, b, index, "error code on success");
		check_translation(b, index, m, w, true);
		CHECK(w->leaf == ((acc & MV_ACC_NO_AD) ? b->c.ent[m->used - 1]
						      : m->after[m->used - 1]),
		      b, index, "leaf value");
	}
	CHECK(w->level == level_of(b, m->used - 1), b, index, "level");
	CHECK(w->nr_entries + skip == m->used, b, index, "entries used");
	for (unsigned i = skip; i < m->used; i++) {
		bool updated = !m->fault && !(acc & MV_ACC_NO_AD);

		CHECK(w->entry_gpa[i - skip] == b->gpa[i], b, index,
		      "entry address");
		CHECK(w->entry[i - skip] == (updated ? m->after[i]
						     : b->c.ent[i]),
		      b, index, "entry value");
	}
}

static void check_memory(const struct built *b, uint64_t index,
			 const uint64_t *expect)
{
	for (unsigned i = 0; i < b->c.nent; i++)
		CHECK(read_entry(b, i) == expect[i], b, index,
		      "entry value after the walk (A/D)");
}

/* How often each outcome came up: every one must, or the enumeration
 * does not test what it claims. */
enum outcome { OUT_OK, OUT_NP, OUT_RSVD, OUT_PROT, OUT_PK, OUT_GP, OUT_N };
static uint64_t outcomes[OUT_N];

static void count(const struct sdm_result *m)
{
	if (m->gp)
		outcomes[OUT_GP]++;
	else if (!m->fault)
		outcomes[OUT_OK]++;
	else if (!(m->error_code & MV_PF_P))
		outcomes[OUT_NP]++;
	else if (m->error_code & MV_PF_RSVD)
		outcomes[OUT_RSVD]++;
	else
		outcomes[(m->error_code & MV_PF_PK) ? OUT_PK : OUT_PROT]++;
}

static void run_case(const struct family *f, uint64_t index,
		     struct mv_gmem *gm)
{
	struct built b;
	struct sdm_result m;
	struct mv_paging pg;
	struct mv_walk w;

	build_case(f, index, &b);
	sdm_translate(&b.c, &m);
	count(&m);
	write_entries(&b);
	int rc = mv_paging_init(&pg, &b.regs, &b.cpu, gm);

	if (m.gp) {
		CHECK(rc == MV_WALK_GP, &b, index, "PDPTE load must #GP");
		clear_entries(&b);
		return;
	}
	CHECK(rc == MV_WALK_OK, &b, index, "paging init");
	if (index % 4 == 0) {
		mv_walk(&pg, gm, b.c.va_low, b.acc | MV_ACC_NO_AD, &w);
		check_result(&b, index, &m, &w, MV_ACC_NO_AD);
		check_memory(&b, index, b.c.ent);
	}
	mv_walk(&pg, gm, b.c.va_low, b.acc, &w);
	check_result(&b, index, &m, &w, 0);
	check_memory(&b, index, m.after);
	clear_entries(&b);
}

static void run_family(const struct family *f)
{
	struct mv_gmem gm = { sparse_read, sparse_cmpxchg, NULL };
	uint64_t total = family_cases(f), ran = 0;

	assert_true(total >= 1000000);
	memset(outcomes, 0, sizeof(outcomes));
	for (uint64_t i = 0; i < total; i += MV_SDM_STRIDE, ran++)
		run_case(f, i, &gm);
	printf("# mode family %d: %llu cases: ok %llu, not present %llu, "
	       "rsvd %llu, rights %llu, pkey %llu, PDPTE #GP %llu\n", f->mode,
	       (unsigned long long)ran, (unsigned long long)outcomes[OUT_OK],
	       (unsigned long long)outcomes[OUT_NP],
	       (unsigned long long)outcomes[OUT_RSVD],
	       (unsigned long long)outcomes[OUT_PROT],
	       (unsigned long long)outcomes[OUT_PK],
	       (unsigned long long)outcomes[OUT_GP]);
	for (int o = OUT_OK; o <= OUT_PROT; o++)
		assert_true(outcomes[o] > 0);
	assert_true((outcomes[OUT_PK] > 0) == (f->mode >= SDM_4LEVEL));
	assert_true((outcomes[OUT_GP] > 0) == (f->mode == SDM_PAE));
}

static void family_test(void **state)
{
	run_family(*state);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_prestate(family_test, (void *)&families[0]),
		cmocka_unit_test_prestate(family_test, (void *)&families[1]),
		cmocka_unit_test_prestate(family_test, (void *)&families[2]),
		cmocka_unit_test_prestate(family_test, (void *)&families[3]),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
