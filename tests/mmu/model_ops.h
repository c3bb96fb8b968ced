/* The model OS's operations (model_os.h): episode setup in one paging
 * mode, and the steps the property test draws at random. Each operation
 * ends with mo_settle(), which issues the flushes it owes. */
#ifndef MV_TEST_MODEL_OPS_H
#define MV_TEST_MODEL_OPS_H

#include "model_os.h"

/* ---- episode setup ---------------------------------------------------------- */

static inline void mo_add_slots(struct mo *m, uint64_t base, unsigned n,
				unsigned level, uint64_t stride)
{
	for (unsigned i = 0; i < n && m->nslots < MO_NSLOTS; i++)
		m->slot[m->nslots++] = (struct mo_slot){ base + i * stride,
							 level };
}

/* Where user and kernel mappings come and go: clusters of 4 KiB pages
 * sharing a table, pages far apart (other top-level entries), the top of
 * user space, and large-page regions. */
static inline void mo_make_slots(struct mo *m)
{
	m->nslots = 0;
	if (m->mode == MV_PAGING_OFF)
		return;
	if (!mo_long(m)) {
		mo_add_slots(m, 0x00400000, 6, 1, 0x1000);
		mo_add_slots(m, 0x08048000, 4, 1, 0x1000);
		mo_add_slots(m, 0x00801000, 3, 1, 0x00400000);
		mo_add_slots(m, 0xbffff000 - 2 * 0x1000, 3, 1, 0x1000);
		mo_add_slots(m, 0xd0000000, 4, 1, 0x1000);
		mo_add_slots(m, 0xd8000000, 2, 1, 0x00400000);
		if (mo_large_ok(m, 2)) {
			mo_add_slots(m, 0x40000000, 3, 2, mo_psize(m, 2));
			mo_add_slots(m, 0xe0000000, 2, 2, mo_psize(m, 2));
		}
		return;
	}
	bool five = m->mode == MV_PAGING_LONG5;
	uint64_t utop = five ? 0x00fffffffffff000ull : 0x00007ffffffff000ull;
	uint64_t kbase = five ? 0xffa0000000000000ull : 0xffffc90000000000ull;

	mo_add_slots(m, 0x400000, 6, 1, 0x1000);
	mo_add_slots(m, 0x7f1234560000ull & (five ? ~0ull : 0x7fffffffffffull),
		     3, 1, 0x1000);
	mo_add_slots(m, 0x0000100000000000ull, 3, 1, 0x0000008000000000ull);
	mo_add_slots(m, utop - 2 * 0x1000, 3, 1, 0x1000);
	if (five)
		mo_add_slots(m, 0x0001000000000000ull, 2, 1,
			     0x0080000000000000ull);
	mo_add_slots(m, kbase, 4, 1, 0x1000);
	mo_add_slots(m, kbase + 0x40000000ull, 2, 1, 0x200000);
	mo_add_slots(m, 0x40000000, 3, 2, 0x200000);
	mo_add_slots(m, kbase + 0x80000000ull, 2, 2, 0x200000);
	mo_add_slots(m, 0x0000004000000000ull, 1, 3, 1ull << 30);
	mo_add_slots(m, kbase + 0x0000001000000000ull, 1, 3, 1ull << 30);
}

/* The direct map: the frame pool at m->direct, by 4 KiB, 2/4 MiB or
 * 1 GiB pages (built from outside the vCPU, before it is used). */
static inline void mo_direct_map(struct mo *m)
{
	unsigned level = 1;

	if (mo_long(m) && mo_pct(m, 30))
		level = 3;
	else if (mo_large_ok(m, 2) && mo_pct(m, 60))
		level = 2;
	uint64_t size = mo_psize(m, level);
	uint64_t base = level == 3 ? MO_HIGH_GPA : m->pool;
	uint64_t end = m->pool + ((uint64_t)MO_NPOOL << 12);
	uint64_t flags = MV_PTE_P | MV_PTE_W | MV_PTE_A | MV_PTE_D;

	for (uint64_t gpa = base; gpa < end; gpa += size) {
		uint64_t va = m->direct + (gpa - m->pool);
		uint64_t eg = mo_entry(m, 0, va, level, true);

		mo_set(m, 0, eg, va, level, mo_leaf_make(m, gpa, level, flags));
	}
}

static const enum mv_paging_mode mo_modes[] = {
	MV_PAGING_OFF, MV_PAGING_LEGACY, MV_PAGING_LEGACY, MV_PAGING_PAE,
	MV_PAGING_LONG4, MV_PAGING_LONG5,
};
#define MO_NMODES (sizeof(mo_modes) / sizeof(mo_modes[0]))

static inline struct mv_cpu_regs mo_mode_regs(struct mo *m, unsigned which)
{
	struct mv_cpu_regs r = { .cr0 = MV_CR0_PE };

	m->mode = mo_modes[which];
	m->pse = which == 2 || (m->mode != MV_PAGING_LEGACY && mo_pct(m, 50));
	m->pcide = mo_long(m) && mo_pct(m, 60);
	if (m->mode != MV_PAGING_OFF)
		r.cr0 |= MV_CR0_PG;
	r.cr0 |= mo_pct(m, 80) ? MV_CR0_WP : 0;
	r.cr4 |= m->pse ? MV_CR4_PSE : 0;
	r.cr4 |= mo_pct(m, 60) ? MV_CR4_PGE : 0;
	r.cr4 |= mo_pct(m, 40) ? MV_CR4_SMEP : 0;
	r.cr4 |= mo_pct(m, 40) ? MV_CR4_SMAP : 0;
	r.cr4 |= mo_pct(m, 40) ? MV_CR4_PKE : 0;
	r.efer |= mo_pct(m, 70) ? MV_EFER_NXE : 0;
	if (m->mode >= MV_PAGING_PAE)
		r.cr4 |= MV_CR4_PAE;
	if (mo_long(m))
		r.efer |= MV_EFER_LME | MV_EFER_LMA;
	if (m->mode == MV_PAGING_LONG5)
		r.cr4 |= MV_CR4_LA57;
	if (m->pcide)
		r.cr4 |= MV_CR4_PCIDE;
	r.rflags = mo_pct(m, 30) ? MV_RFLAGS_AC : 0;
	r.pkru = mo_pct(m, 50) ? (uint32_t)mo_rand(m) : 0;
	return r;
}

/* Start an episode in mode @which of mo_modes: everything the OS had
 * becomes free memory (old tables stay in memory, unreferenced), AS 0 is
 * built with the direct map, and the registers are loaded at once. */
static inline int mo_episode(struct mo *m, unsigned which)
{
	struct mv_cpu_regs r = mo_mode_regs(m, which);

	m->vcpu_writes = false;
	memset(m->kind_low, MO_DATA, sizeof(m->kind_low));
	memset(m->kind_high, MO_DATA, sizeof(m->kind_high));
	memset(m->as, 0, sizeof(m->as));
	m->cur = 0;
	m->top = m->mode == MV_PAGING_LEGACY ? 2 : m->mode == MV_PAGING_PAE ? 3
		 : m->mode == MV_PAGING_LONG4 ? 4 : 5;
	m->esize = m->mode == MV_PAGING_LEGACY ? 4 : 8;
	m->pool = m->mode <= MV_PAGING_LEGACY ? MO_LOW_POOL : MO_HIGH_GPA;
	m->direct = m->mode == MV_PAGING_LONG5 ? 0xff11000000000000ull
		    : m->mode == MV_PAGING_LONG4 ? 0xffff888000000000ull
						  : 0xc0000000ull;
	for (unsigned a = 0; a < MO_NAS; a++)
		m->as[a].pcid = (uint16_t)(a + 1);
	mo_make_slots(m);
	if (m->mode != MV_PAGING_OFF) {
		m->as[0].live = true;
		m->as[0].root = mo_alloc_table(m, m->mode == MV_PAGING_PAE);
		if (m->mode == MV_PAGING_PAE) {
			uint64_t pd = mo_alloc_table(m, false);

			mo_put(m, m->as[0].root + 3 * 8, pd | MV_PTE_P);
		}
		mo_direct_map(m);
		r.cr3 = mo_cr3_of(m, 0);
	}
	m->regs = r;
	m->ninv = 0;
	m->need_full = m->need_cr3 = m->kernel_changed = false;
	int rc = mv_vcpu_set_regs(m->cpu, &r);

	if (rc)
		MO_FAIL(m, "set_regs for mode %d: rc %d", m->mode, rc);
	m->vcpu_writes = m->mode != MV_PAGING_OFF;
	return rc;
}

/* ---- operations ---------------------------------------------------------------- */

/* An address space to change: mostly the current one. */
static inline unsigned mo_pick_as(struct mo *m)
{
	unsigned a = mo_rnd(m, MO_NAS);

	return m->as[a].live && mo_pct(m, 30) ? a : m->cur;
}

/* Map, unmap, change rights or the frame of a 4 KiB slot. */
static inline void mo_op_page(struct mo *m, const struct mo_slot *s)
{
	unsigned a = mo_pick_as(m);
	uint64_t eg = mo_entry(m, a, s->va, 1, true);

	if (!eg)
		return;
	uint64_t old = mo_get(m, eg), val;
	unsigned r = mo_rnd(m, 100);

	if (!(old & MV_PTE_P) || r < 25) {
		val = mo_pick_frame4k(m) | mo_leaf_flags(m, s->va, false);
		m->st.maps++;
	} else if (r < 45) {
		val = mo_pct(m, 80) ? 0 : old & ~MV_PTE_P;
		m->st.unmaps++;
	} else if (r < 80) {
		uint64_t flip = MV_PTE_W;

		if (mo_pct(m, 40))
			flip = MV_PTE_U;
		if (mo_pct(m, 20) && m->mode != MV_PAGING_LEGACY)
			flip = MV_PTE_NX;
		if (mo_pct(m, 15) && mo_long(m))
			flip = (uint64_t)(1 + mo_rnd(m, 15)) << 59;
		if (mo_pct(m, 10))
			flip = MV_PTE_D | MV_PTE_A;
		val = (old ^ flip) & ~MO_COW;
		m->st.prots++;
	} else if (r < 95) {
		val = (old & ~mo_addr(m, ~0ull)) | mo_pick_frame4k(m);
		m->st.reframes++;
	} else {
		/* A reserved bit: a CPU takes #PF with RSVD. */
		val = old | (m->mode == MV_PAGING_LEGACY ? 0
			     : mo_pct(m, 50) ? 1ull << 51 : 1ull << 47);
		m->st.rsvd_sets++;
	}
	mo_set_leaf(m, a, eg, s->va, 1, val);
}

/* Fill a new table with the pieces of a large leaf (same frames and
 * rights, one level down). */
static inline uint64_t mo_split_table(struct mo *m, uint64_t e, unsigned level)
{
	uint64_t t = mo_alloc_table(m, false);
	uint64_t frame = mo_frame(m, e, level);
	uint64_t keep = e & (MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_PWT |
			     MV_PTE_PCD | MV_PTE_A | MV_PTE_D | MV_PTE_G |
			     MV_PTE_NX | MO_COW | (15ull << 59));
	unsigned n = mo_entries(m, level - 1);

	for (unsigned i = 0; i < n; i++)
		mo_put(m, t + i * m->esize,
		       mo_leaf_make(m, frame + i * mo_psize(m, level - 1),
				    level - 1, keep));
	return t;
}

/* A large-page region: map a large page (merging a split one and freeing
 * its table), split a large page into a table, or change one piece of a
 * split one. */
static inline void mo_op_large(struct mo *m, const struct mo_slot *s)
{
	unsigned a = mo_pick_as(m), L = s->level;
	uint64_t eg = mo_entry(m, a, s->va, L, true);

	if (!eg)
		return;
	uint64_t e = mo_get(m, eg);
	bool split = (e & MV_PTE_P) && !mo_is_leaf(m, e, L);
	unsigned r = mo_rnd(m, 100);

	if (split && r < 50) {
		uint64_t va = s->va + mo_rnd(m, mo_entries(m, L - 1)) *
				      mo_psize(m, L - 1);
		uint64_t ceg = mo_addr(m, e) + mo_index(m, va, L - 1) * m->esize;
		uint64_t old = mo_get(m, ceg);

		if ((old & MV_PTE_P) && !mo_is_leaf(m, old, L - 1))
			return;  /* a 1 GiB region split twice: leave it */
		uint64_t val = mo_pct(m, 30) ? 0 : old ^ MV_PTE_W;

		mo_set_leaf(m, a, ceg, va, L - 1, val);
		m->st.prots++;
		return;
	}
	if ((e & MV_PTE_P) && !split && r < 40 &&
	    !(m->mode == MV_PAGING_LEGACY && mo_frame(m, e, L) >> 32)) {
		uint64_t t = mo_split_table(m, e, L);

		mo_set(m, a, eg, s->va, L,
		       t | MV_PTE_P | MV_PTE_W | MV_PTE_U | MV_PTE_A);
		mo_owe_invlpg(m, a, s->va);
		m->st.splits++;
		return;
	}
	uint64_t val = mo_pct(m, 10) ? 0
		       : mo_leaf_make(m, mo_pick_frame_large(m, L), L,
				      mo_leaf_flags(m, s->va, true));

	mo_set(m, a, eg, s->va, L, val);
	if (split) {
		mo_free_tree(m, mo_addr(m, e), L - 1, 0, mo_entries(m, L - 1));
		mo_owe_full(m, a, mo_kernel(m, s->va));
		m->st.merges++;
	} else {
		mo_owe_invlpg(m, a, s->va);  /* one INVLPG: the whole page */
	}
	m->st.large_maps++;
}

/* Unmap a whole table below a user slot and free it (and what is below). */
static inline void mo_op_free_table(struct mo *m, const struct mo_slot *s)
{
	if (mo_kernel(m, s->va) || m->top < 2)
		return;
	unsigned level = 1 + mo_rnd(m, m->top - 1);  /* the table's level */
	uint64_t eg = mo_entry(m, m->cur, s->va, level + 1, false);

	if (!eg)
		return;
	uint64_t e = mo_get(m, eg);

	if (!(e & MV_PTE_P) || mo_is_leaf(m, e, level + 1))
		return;
	mo_set(m, m->cur, eg, s->va, level + 1, 0);
	mo_free_tree(m, mo_addr(m, e), level, 0, mo_entries(m, level));
	mo_owe_full(m, m->cur, false);
	m->st.table_frees++;
}

/* Alias a page table: the PT of the first user cluster (0x400000) is
 * linked a second time, MO_ALIAS higher, under an entry with its own
 * rights (x86 allows it; the shadow must keep the two paths' rights
 * apart). The link is marked MO_ALIASED: the OS never frees or copies
 * through it, the PT stays the cluster's (and may be freed and reused
 * under the alias, which then sees whatever the page holds). */
#define MO_ALIAS 0x20000000ull

static inline void mo_op_alias(struct mo *m)
{
	uint64_t va = 0x400000, eg = mo_entry(m, m->cur, va, 2, false);

	if (!eg || m->mode == MV_PAGING_OFF)
		return;
	uint64_t e = mo_get(m, eg);

	if (!(e & MV_PTE_P) || mo_is_leaf(m, e, 2))
		return;
	uint64_t ag = mo_entry(m, m->cur, va + MO_ALIAS, 2, true);

	if (!ag)
		return;
	uint64_t val = mo_pct(m, 20) ? 0
		       : mo_addr(m, e) | mo_upper_flags(m, va + MO_ALIAS, 2) |
			 MO_ALIASED;

	mo_set(m, m->cur, ag, va + MO_ALIAS, 2, val);
	mo_owe_full(m, m->cur, false);
	m->st.aliases++;
}

/* Copy the user part of a table for fork: writable leaves become
 * read-only copy-on-write in parent and child. */
static inline uint64_t mo_copy(struct mo *m, uint64_t src, unsigned level,
			       unsigned end, bool root)
{
	uint64_t dst = mo_alloc_table(m, root && m->mode == MV_PAGING_PAE);

	for (unsigned i = 0; i < end; i++) {
		uint64_t eg = src + i * m->esize, e = mo_get(m, eg);

		if (!(e & MV_PTE_P) || (e & MO_ALIASED))
			continue;  /* the child gets no alias */
		if (mo_is_leaf(m, e, level)) {
			if (e & MV_PTE_W) {
				e = (e & ~MV_PTE_W) | MO_COW;
				mo_put(m, eg, e);
			}
		} else {
			uint64_t t = mo_copy(m, mo_addr(m, e), level - 1,
					     mo_entries(m, level - 1), false);

			e = t | (e & ~mo_addr(m, ~0ull));
		}
		mo_put(m, dst + i * m->esize, e);
	}
	return dst;
}

static inline void mo_op_fork(struct mo *m)
{
	unsigned child = MO_NAS;

	for (unsigned a = 1; a < MO_NAS && child == MO_NAS; a++)
		if (!m->as[a].live)
			child = a;
	if (child == MO_NAS)
		return;
	struct mo_as *c = &m->as[child];
	uint64_t proot = m->as[m->cur].root;
	unsigned ut = mo_user_top(m), n = mo_entries(m, m->top);

	c->root = mo_copy(m, proot, m->top, ut, true);
	for (unsigned i = ut; i < n; i++)
		mo_put(m, c->root + i * m->esize,
		       mo_get(m, proot + i * m->esize));
	c->live = true;
	c->stale = true;  /* its PCID may hold an old address space's */
	mo_owe_full(m, m->cur, false);  /* the parent lost write rights */
	m->st.forks++;
}

static inline void mo_op_exit(struct mo *m)
{
	unsigned a = 1 + mo_rnd(m, MO_NAS - 1);

	if (!m->as[a].live || a == m->cur)
		return;
	mo_free_tree(m, m->as[a].root, m->top, 0, mo_user_top(m));
	m->as[a].live = false;
	m->st.exits++;
}

/* The OS's copy-on-write fault handler: @leaf_gpa holds the read-only
 * leaf at @level that a write to @va faulted on. */
static inline void mo_cow(struct mo *m, uint64_t va, uint64_t leaf_gpa,
			  unsigned level)
{
	uint64_t e = mo_get(m, leaf_gpa);
	uint64_t val = (e | MV_PTE_W) & ~MO_COW;

	if (level == 1) {
		uint64_t from = mo_frame(m, e, 1), to = mo_pick_pool(m, true);
		static uint8_t page[4096];

		if (mo_is_ram(from) && !mv_vm_phys_read(m->vm, from, page, 4096))
			mo_write(m, to, page, 4096);
		val = (val & ~mo_addr(m, ~0ull)) | to;
	}
	mo_set_leaf(m, m->cur, leaf_gpa, va, level, val);
	m->st.cow++;
	mo_settle(m);
}

static inline void mo_op_switch(struct mo *m)
{
	unsigned a = mo_rnd(m, MO_NAS);

	if (m->as[a].live)
		mo_load_cr3(m, a, mo_pct(m, 70));
}

static inline void mo_set_reg(struct mo *m, enum mv_cpu_reg reg, uint64_t val)
{
	int rc = mv_vcpu_set_reg(m->cpu, reg, val);

	if (rc)
		MO_FAIL(m, "set_reg %d = %#llx: rc %d", reg,
			(unsigned long long)val, rc);
	m->st.reg_changes++;
}

/* The rights switches, one at a time, as a kernel flips them. */
static inline void mo_op_regs(struct mo *m)
{
	struct mv_cpu_regs *r = &m->regs;

	switch (mo_rnd(m, 8)) {
	case 0:
		r->cr0 ^= MV_CR0_WP;
		mo_set_reg(m, MV_REG_CR0, r->cr0);
		break;
	case 1:
		r->cr4 ^= MV_CR4_SMEP;
		mo_set_reg(m, MV_REG_CR4, r->cr4);
		break;
	case 2:
		r->cr4 ^= MV_CR4_SMAP;
		mo_set_reg(m, MV_REG_CR4, r->cr4);
		break;
	case 3:
		r->cr4 ^= MV_CR4_PKE;
		mo_set_reg(m, MV_REG_CR4, r->cr4);
		break;
	case 4:
		r->cr4 ^= MV_CR4_PGE;
		mo_set_reg(m, MV_REG_CR4, r->cr4);
		break;
	case 5:
		r->efer ^= MV_EFER_NXE;
		mo_set_reg(m, MV_REG_EFER, r->efer);
		break;
	case 6:
		r->pkru = mo_pct(m, 30) ? 0 : (uint32_t)mo_rand(m);
		mo_set_reg(m, MV_REG_PKRU, r->pkru);
		break;
	default:
		r->rflags ^= MV_RFLAGS_AC;
		mo_set_reg(m, MV_REG_RFLAGS, r->rflags);
		break;
	}
}

/* Flushes a correct OS may add at any time (never needed ones). */
static inline void mo_op_flush(struct mo *m)
{
	unsigned r = mo_rnd(m, 4);

	if (r == 0 && m->nslots) {
		m->st.invlpgs++;
		mv_vcpu_invlpg(m->cpu, m->slot[mo_rnd(m, m->nslots)].va);
	} else if (r == 1 && m->pcide) {
		unsigned a = mo_rnd(m, MO_NAS);

		m->st.invpcids++;
		mv_vcpu_invpcid(m->cpu, 1, m->as[a].pcid, 0);
		m->as[a].stale = false;
	} else if (r == 2 && m->pcide) {
		m->st.invpcids++;
		mv_vcpu_invpcid(m->cpu, 3, 0, 0);
		for (unsigned a = 0; a < MO_NAS; a++)
			m->as[a].stale = false;
	} else {
		mo_flush_all(m);
	}
}

/* One random step of the OS. */
static inline void mo_step(struct mo *m)
{
	unsigned r = mo_rnd(m, 100);
	const struct mo_slot *s = m->nslots ? &m->slot[mo_rnd(m, m->nslots)]
					    : NULL;

	if (!s || r < 8)
		mo_op_regs(m);
	else if (r < 50)
		s->level == 1 ? mo_op_page(m, s) : mo_op_large(m, s);
	else if (r < 62)
		mo_op_switch(m);
	else if (r < 67)
		mo_op_fork(m);
	else if (r < 70)
		mo_op_exit(m);
	else if (r < 74)
		mo_op_free_table(m, s);
	else if (r < 78)
		mo_op_flush(m);
	else if (r < 81)
		mo_op_alias(m);
	else if (s->level > 1)
		mo_op_large(m, s);
	else
		mo_op_page(m, s);
	mo_settle(m);
}

#endif
