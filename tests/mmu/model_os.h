/* A model guest OS for the shadow-MMU property test: it keeps its page
 * tables in guest memory in any x86 paging mode, runs several address
 * spaces that share their kernel half, maps, unmaps, changes rights and
 * frames, splits and merges large pages, forks with copy-on-write in its
 * own tables, frees page-table pages and reuses them as data (and data
 * pages as tables), writes its tables through a direct map of its frame
 * pool (through the vCPU, as Linux does) or from outside
 * (mv_vm_phys_write), and issues the INVLPGs, flushes and CR3 loads a
 * correct OS issues. It keeps no copy of its tables: it reads them back
 * from guest memory, so whatever the CPU sees is what it manages.
 *
 * Guest-physical layout (RAM far above 4 GiB for PAE and long modes):
 *   [0, 16 MiB)          low RAM: the 32-bit modes' frame pool at 4 MiB,
 *                        PAE PDPTs at 1 MiB, a 4 MiB frame at 12 MiB
 *   [32 MiB, +64 KiB)    an MMIO device
 *   48 MiB               a hole (no range)
 *   [768 GiB, +1 GiB)    high RAM: the frame pool of PAE and long modes at
 *                        its start, 2 and 4 MiB frames at +256 MiB, and the
 *                        whole range as one 1 GiB frame; below 2^40 so
 *                        that PSE-36 4 MiB pages reach it
 */
#ifndef MV_TEST_MODEL_OS_H
#define MV_TEST_MODEL_OS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

#define MO_LOW_SIZE (16ull << 20)
#define MO_MMIO_GPA (32ull << 20)
#define MO_MMIO_SIZE (64ull << 10)
#define MO_HOLE_GPA (48ull << 20)
#define MO_HIGH_GPA 0xc000000000ull
#define MO_HIGH_SIZE (1ull << 30)
#define MO_LOW_POOL (4ull << 20)
#define MO_PDPT_AREA (1ull << 20)
#define MO_LOW_4M (12ull << 20)
#define MO_LARGE_AREA (MO_HIGH_GPA + (256ull << 20))
#define MO_NPOOL 1024u
#define MO_NAS 6u
#define MO_NSLOTS 48u
#define MO_COW (1ull << 9)  /* software bit: a copy-on-write page */
#define MO_ALIASED (1ull << 10)  /* software bit: a second link to a table
				  * (model_ops.h, mo_op_alias) */

#define MO_LOW_FRAMES (MO_LOW_SIZE >> 12)
#define MO_HIGH_FRAMES (MO_HIGH_SIZE >> 12)

enum mo_kind { MO_DATA, MO_TABLE };

struct mo_as {
	uint64_t root;     /* top table (PAE: the PDPT) */
	uint16_t pcid;
	bool live;
	bool stale;        /* its PCID may hold translations older than its
			    * tables: the next CR3 load must flush */
};

struct mo_slot {
	uint64_t va;
	unsigned level;    /* 1: a 4 KiB page; 2, 3: a large-page region */
};

struct mo_stats {
	uint64_t maps, unmaps, prots, reframes, large_maps, splits, merges;
	uint64_t forks, exits, cow, table_frees, cr3_loads, noflush_loads;
	uint64_t reg_changes, invlpgs, flushes, invpcids, vcpu_table_writes;
	uint64_t phys_table_writes, rsvd_sets, pdpte_reloads, aliases;
};

struct mo {
	struct mv_vm *vm;
	struct mv_vcpu *cpu;
	uint64_t rng;
	/* the episode's mode */
	enum mv_paging_mode mode;
	unsigned top, esize;
	bool pse, pcide;
	struct mv_cpu_regs regs;
	struct mo_as as[MO_NAS];
	unsigned cur;
	uint64_t pool;     /* first frame of the pool */
	uint64_t direct;   /* VA of the pool in the direct map */
	bool vcpu_writes;  /* tables may be written through the direct map */
	struct mo_slot slot[MO_NSLOTS];
	unsigned nslots;
	uint8_t kind_low[MO_LOW_FRAMES];
	uint8_t kind_high[MO_HIGH_FRAMES];
	/* flushes owed at the end of the current operation */
	uint64_t inv[16];
	unsigned ninv;
	bool need_full, need_cr3, kernel_changed;
	struct mo_stats st;
	char err[256];     /* the model's own failure, if any */
};

/* ---- randomness (splitmix64) --------------------------------------------- */

static inline uint64_t mo_rand(struct mo *m)
{
	uint64_t z = (m->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline unsigned mo_rnd(struct mo *m, unsigned n)
{
	return (unsigned)(mo_rand(m) % n);
}

static inline bool mo_pct(struct mo *m, unsigned pct)
{
	return mo_rnd(m, 100) < pct;
}

/* ---- geometry ------------------------------------------------------------- */

static inline bool mo_long(const struct mo *m)
{
	return m->mode >= MV_PAGING_LONG4;
}

static inline unsigned mo_shift(const struct mo *m, unsigned level)
{
	return 12 + (m->mode == MV_PAGING_LEGACY ? 10 : 9) * (level - 1);
}

static inline unsigned mo_entries(const struct mo *m, unsigned level)
{
	if (m->mode == MV_PAGING_LEGACY)
		return 1024;
	return m->mode == MV_PAGING_PAE && level == 3 ? 4 : 512;
}

static inline unsigned mo_index(const struct mo *m, uint64_t va,
				unsigned level)
{
	return (unsigned)(va >> mo_shift(m, level)) & (mo_entries(m, level) - 1);
}

static inline uint64_t mo_psize(const struct mo *m, unsigned level)
{
	return 1ull << mo_shift(m, level);
}

static inline bool mo_large_ok(const struct mo *m, unsigned level)
{
	if (m->mode == MV_PAGING_LEGACY)
		return m->pse && level == 2;
	if (m->mode == MV_PAGING_PAE)
		return level == 2;
	return level == 2 || level == 3;
}

static inline bool mo_is_leaf(const struct mo *m, uint64_t e, unsigned level)
{
	return level == 1 || (mo_large_ok(m, level) && (e & MV_PTE_PS));
}

static inline uint64_t mo_addr(const struct mo *m, uint64_t e)
{
	return m->mode == MV_PAGING_LEGACY ? e & 0xfffff000ull
					   : e & 0x000ffffffffff000ull;
}

/* Frame of a leaf at @level. */
static inline uint64_t mo_frame(const struct mo *m, uint64_t e, unsigned level)
{
	if (m->mode == MV_PAGING_LEGACY && level == 2)
		return (e & 0xffc00000ull) | ((e >> 13) & 0xff) << 32;
	if (level > 1)
		return mo_addr(m, e) & ~(mo_psize(m, level) - 1);
	return mo_addr(m, e);
}

static inline uint64_t mo_leaf_make(const struct mo *m, uint64_t frame,
				    unsigned level, uint64_t flags)
{
	if (level == 1)
		return frame | flags;
	if (m->mode == MV_PAGING_LEGACY)
		return (frame & 0xffc00000ull) | ((frame >> 32) & 0xff) << 13 |
		       flags | MV_PTE_PS;
	return frame | flags | MV_PTE_PS;
}

static inline bool mo_kernel(const struct mo *m, uint64_t va)
{
	if (m->mode == MV_PAGING_LONG5)
		return (va >> 56) & 1;
	if (m->mode == MV_PAGING_LONG4)
		return (va >> 47) & 1;
	return (va & 0xffffffffull) >= 0xc0000000ull;
}

/* Top-level entries that belong to user space. */
static inline unsigned mo_user_top(const struct mo *m)
{
	if (m->mode == MV_PAGING_LEGACY)
		return 768;
	return m->mode == MV_PAGING_PAE ? 3 : 256;
}

/* The linear address a CPU forms: modulo 2^32 in 32-bit modes; in IA-32e
 * modes the address itself (a non-canonical one takes #GP). */
static inline uint64_t mo_canon(const struct mo *m, uint64_t va)
{
	return mo_long(m) ? va : va & 0xffffffffull;
}

/* ---- frames ---------------------------------------------------------------- */

static inline uint8_t *mo_kindp(struct mo *m, uint64_t gpa)
{
	static uint8_t none;

	if (gpa < MO_LOW_SIZE)
		return &m->kind_low[gpa >> 12];
	if (gpa >= MO_HIGH_GPA && gpa - MO_HIGH_GPA < MO_HIGH_SIZE)
		return &m->kind_high[(gpa - MO_HIGH_GPA) >> 12];
	none = MO_DATA;
	return &none;
}

static inline bool mo_is_ram(uint64_t gpa)
{
	return gpa < MO_LOW_SIZE ||
	       (gpa >= MO_HIGH_GPA && gpa - MO_HIGH_GPA < MO_HIGH_SIZE);
}

static inline bool mo_in_pool(const struct mo *m, uint64_t gpa)
{
	return gpa >= m->pool && gpa - m->pool < (uint64_t)MO_NPOOL << 12;
}

#define MO_FAIL(m, ...)                                                       \
	do {                                                                  \
		if (!(m)->err[0])                                             \
			snprintf((m)->err, sizeof((m)->err), __VA_ARGS__);    \
	} while (0)

static inline uint64_t mo_get(struct mo *m, uint64_t gpa)
{
	uint64_t v = 0;

	if (mv_vm_phys_read(m->vm, gpa, &v, m->esize))
		MO_FAIL(m, "phys_read of table entry %#llx failed",
			(unsigned long long)gpa);
	return v;
}

/* Write guest memory the OS's way: through its direct map (a supervisor
 * write through the vCPU) or from outside the vCPU. */
static inline void mo_write(struct mo *m, uint64_t gpa, const void *buf,
			    size_t len)
{
	if (m->vcpu_writes && mo_in_pool(m, gpa) && mo_pct(m, 50)) {
		struct mv_fault f;
		int rc = mv_vcpu_write(m->cpu, m->direct + (gpa - m->pool), buf,
				       len, mo_pct(m, 10) ? MV_ACC_IMPLICIT : 0,
				       &f);

		if (rc)
			MO_FAIL(m, "direct-map write at gpa %#llx: rc %d "
				"(fault %u/%#x)", (unsigned long long)gpa, rc,
				f.vector, f.error_code);
		m->st.vcpu_table_writes++;
		return;
	}
	m->st.phys_table_writes++;
	if (mv_vm_phys_write(m->vm, gpa, buf, len))
		MO_FAIL(m, "phys_write at gpa %#llx failed",
			(unsigned long long)gpa);
}

static inline void mo_put(struct mo *m, uint64_t gpa, uint64_t val)
{
	mo_write(m, gpa, &val, m->esize);
}

static inline uint64_t mo_pick_pool(struct mo *m, bool data_only)
{
	for (unsigned tries = 0; tries < 4 * MO_NPOOL; tries++) {
		uint64_t gpa = m->pool + ((uint64_t)mo_rnd(m, MO_NPOOL) << 12);

		if (!data_only || *mo_kindp(m, gpa) == MO_DATA)
			return gpa;
	}
	MO_FAIL(m, "frame pool exhausted");
	return m->pool;
}

static inline uint64_t mo_alloc_table(struct mo *m, bool pdpt)
{
	static const uint8_t zero[4096];
	uint64_t gpa;

	if (pdpt) {
		/* PAE PDPTs live below 4 GiB: one frame per address space
		 * slot, written from outside (they are not in the pool). */
		for (gpa = MO_PDPT_AREA; *mo_kindp(m, gpa) != MO_DATA;
		     gpa += 4096)
			;
	} else {
		gpa = mo_pick_pool(m, true);
	}
	mo_write(m, gpa, zero, sizeof(zero));
	*mo_kindp(m, gpa) = MO_TABLE;
	return gpa;
}

/* A table page goes back to the pool as data; often scribbled on at once,
 * as a page reused by the OS would be. */
static inline void mo_free_table(struct mo *m, uint64_t gpa)
{
	*mo_kindp(m, gpa) = MO_DATA;
	if (mo_in_pool(m, gpa) && mo_pct(m, 50)) {
		uint64_t junk[8];

		for (unsigned i = 0; i < 8; i++)
			junk[i] = mo_rand(m);
		mo_write(m, gpa + (mo_rnd(m, 64) << 6), junk, sizeof(junk));
	}
}

/* ---- flushes owed ----------------------------------------------------------- */

static inline void mo_owe_invlpg(struct mo *m, unsigned a, uint64_t va)
{
	if (mo_kernel(m, va)) {
		m->kernel_changed = true;
		for (unsigned b = 0; b < MO_NAS; b++)
			if (b != m->cur)
				m->as[b].stale = true;
	} else if (a != m->cur) {
		m->as[a].stale = true;
		return;
	}
	if (m->ninv < 16)
		m->inv[m->ninv++] = va;
	else
		m->need_full = true;
}

static inline void mo_owe_full(struct mo *m, unsigned a, bool kernel)
{
	if (kernel) {
		m->kernel_changed = true;
		for (unsigned b = 0; b < MO_NAS; b++)
			if (b != m->cur)
				m->as[b].stale = true;
	} else if (a != m->cur) {
		m->as[a].stale = true;
		return;
	}
	m->need_full = true;
}

static inline uint64_t mo_cr3_of(const struct mo *m, unsigned a)
{
	return m->as[a].root | (m->pcide ? m->as[a].pcid : 0);
}

static inline int mo_load_cr3(struct mo *m, unsigned a, bool noflush)
{
	uint64_t cr3 = mo_cr3_of(m, a);
	int rc;

	noflush = noflush && m->pcide && !m->as[a].stale;
	rc = mv_vcpu_set_reg(m->cpu, MV_REG_CR3,
			     cr3 | (noflush ? MV_CR3_NOFLUSH : 0));
	if (rc)
		MO_FAIL(m, "CR3 load %#llx: rc %d", (unsigned long long)cr3,
			rc);
	m->regs.cr3 = cr3;
	m->cur = a;
	if (!noflush) {
		if (m->pcide)
			m->as[a].stale = false;
		else
			for (unsigned b = 0; b < MO_NAS; b++)
				m->as[b].stale = false;
	}
	m->st.cr3_loads++;
	m->st.noflush_loads += noflush;
	return rc;
}

/* A full flush: any of the ways an OS has of dropping everything it must
 * (a CR3 reload keeps global pages: only when no kernel page changed). */
static inline void mo_flush_all(struct mo *m)
{
	unsigned how = mo_rnd(m, 4);

	m->st.flushes++;
	if (how == 0 && !m->kernel_changed) {
		mo_load_cr3(m, m->cur, false);
	} else if (how == 1 && m->pcide) {
		m->st.invpcids++;
		mv_vcpu_invpcid(m->cpu, 2, 0, 0);
		for (unsigned b = 0; b < MO_NAS; b++)
			m->as[b].stale = false;
	} else if (how == 2 && m->pcide && !m->kernel_changed) {
		m->st.invpcids++;
		mv_vcpu_invpcid(m->cpu, 1, m->as[m->cur].pcid, 0);
	} else {
		mv_vcpu_flush(m->cpu);
		if (m->pcide)
			for (unsigned b = 0; b < MO_NAS; b++)
				m->as[b].stale = false;
	}
}

/* End of an operation: pay the flushes it owes. */
static inline void mo_settle(struct mo *m)
{
	if (m->need_cr3) {
		m->st.pdpte_reloads++;
		mo_load_cr3(m, m->cur, false);
		if (m->kernel_changed)
			mv_vcpu_flush(m->cpu);
	} else if (m->need_full) {
		mo_flush_all(m);
	} else {
		for (unsigned i = 0; i < m->ninv; i++) {
			uint64_t va = m->inv[i];

			m->st.invlpgs++;
			if (m->pcide && !mo_kernel(m, va) && mo_pct(m, 30)) {
				m->st.invpcids++;
				mv_vcpu_invpcid(m->cpu, 0, m->as[m->cur].pcid,
						va);
			} else {
				mv_vcpu_invlpg(m->cpu, va);
			}
		}
	}
	m->ninv = 0;
	m->need_full = m->need_cr3 = m->kernel_changed = false;
}

/* ---- tables ------------------------------------------------------------------ */

static inline uint64_t mo_upper_flags(struct mo *m, uint64_t va,
				      unsigned level)
{
	uint64_t f = MV_PTE_P;

	if (m->mode == MV_PAGING_PAE && level == 3)
		return f;  /* a PDPTE has no rights */
	if (va >= m->direct && va - m->direct < (1ull << 30))
		return f | MV_PTE_W | MV_PTE_A;
	f |= mo_pct(m, 92) ? MV_PTE_W : 0;
	f |= (!mo_kernel(m, va) ? mo_pct(m, 92) : mo_pct(m, 20)) ? MV_PTE_U
								   : 0;
	f |= mo_pct(m, 50) ? MV_PTE_A : 0;
	if (m->mode != MV_PAGING_LEGACY && mo_pct(m, 6))
		f |= MV_PTE_NX;
	return f;
}

/* Write an entry of @a's tables; a kernel top-level entry is written into
 * every address space (the kernel half is shared). */
static inline void mo_set(struct mo *m, unsigned a, uint64_t eg, uint64_t va,
			  unsigned level, uint64_t val)
{
	if (level == m->top && mo_kernel(m, va)) {
		unsigned off = mo_index(m, va, level) * m->esize;

		for (unsigned b = 0; b < MO_NAS; b++)
			if (m->as[b].live)
				mo_put(m, m->as[b].root + off, val);
	} else {
		mo_put(m, eg, val);
	}
	if (m->mode == MV_PAGING_PAE && level == 3 &&
	    (a == m->cur || mo_kernel(m, va)))
		m->need_cr3 = true;  /* PDPTEs are loaded with CR3 */
}

/* gpa of @va's entry at @level in @a's tables, creating the tables on the
 * way when @create. 0 when a large leaf, or a missing table without
 * @create, is in the way. */
static inline uint64_t mo_entry(struct mo *m, unsigned a, uint64_t va,
				unsigned level, bool create)
{
	uint64_t table = m->as[a].root;

	for (unsigned l = m->top; l > level; l--) {
		uint64_t eg = table + mo_index(m, va, l) * m->esize;
		uint64_t e = mo_get(m, eg);

		if (!(e & MV_PTE_P)) {
			if (!create)
				return 0;
			e = mo_alloc_table(m, false) | mo_upper_flags(m, va, l);
			mo_set(m, a, eg, va, l, e);
		} else if (mo_is_leaf(m, e, l)) {
			return 0;
		}
		table = mo_addr(m, e);
	}
	return table + mo_index(m, va, level) * m->esize;
}

/* Free the tables below a non-leaf entry at @level (recursively). */
static inline void mo_free_tree(struct mo *m, uint64_t table, unsigned level,
				unsigned first, unsigned end)
{
	for (unsigned i = first; i < end && level > 1; i++) {
		uint64_t e = mo_get(m, table + i * m->esize);

		if ((e & MV_PTE_P) && !mo_is_leaf(m, e, level) &&
		    !(e & MO_ALIASED))
			mo_free_tree(m, mo_addr(m, e), level - 1, 0,
				     mo_entries(m, level - 1));
	}
	mo_free_table(m, table);
}

/* ---- leaves -------------------------------------------------------------------- */

static inline uint64_t mo_pick_frame4k(struct mo *m)
{
	unsigned r = mo_rnd(m, 100);

	if (r < 4)
		return MO_MMIO_GPA + ((uint64_t)mo_rnd(m, 16) << 12);
	if (r < 6)
		return MO_HOLE_GPA + ((uint64_t)mo_rnd(m, 4) << 12);
	if (r < 14)
		return (uint64_t)mo_rnd(m, MO_LOW_FRAMES) << 12;
	if (r < 19 && m->mode != MV_PAGING_LEGACY)
		return MO_LARGE_AREA + ((uint64_t)mo_rnd(m, 8192) << 12);
	return mo_pick_pool(m, !mo_pct(m, 8));
}

static inline uint64_t mo_pick_frame_large(struct mo *m, unsigned level)
{
	uint64_t size = mo_psize(m, level);

	if (size == (1ull << 30))
		return MO_HIGH_GPA;
	if (m->mode == MV_PAGING_LEGACY && mo_pct(m, 20))
		return MO_LOW_4M;  /* below 4 GiB, no PSE-36 bits */
	if (mo_pct(m, 10))
		return mo_long(m) || m->mode == MV_PAGING_PAE
			       ? m->pool & ~(size - 1) : MO_LOW_POOL;
	return MO_LARGE_AREA + (uint64_t)mo_rnd(m, 16) * size;
}

static inline uint64_t mo_leaf_flags(struct mo *m, uint64_t va, bool large)
{
	uint64_t f = mo_pct(m, 95) ? MV_PTE_P : 0;
	bool kernel = mo_kernel(m, va);

	f |= mo_pct(m, 60) ? MV_PTE_W : 0;
	f |= (kernel ? mo_pct(m, 15) : mo_pct(m, 85)) ? MV_PTE_U : 0;
	f |= mo_pct(m, 50) ? MV_PTE_A : 0;
	f |= mo_pct(m, 30) ? MV_PTE_D : 0;
	f |= kernel && mo_pct(m, 50) ? MV_PTE_G : 0;
	f |= mo_pct(m, 8) ? MV_PTE_PWT : 0;
	f |= mo_pct(m, 8) ? MV_PTE_PCD : 0;
	if (mo_pct(m, 8))
		f |= large ? MV_PTE_PATLARGE : MV_PTE_PAT4K;
	if (m->mode != MV_PAGING_LEGACY && mo_pct(m, 20))
		f |= MV_PTE_NX;
	if (mo_long(m) && mo_pct(m, 30))
		f |= (uint64_t)mo_rnd(m, 16) << 59;
	return f;
}

#define MO_RIGHTS (MV_PTE_W | MV_PTE_U | MV_PTE_NX | (15ull << 59))

/* Does @new only add rights to @old (same frame, no bit cleared but W, U
 * added and NX removed)? Then a correct OS needs no INVLPG: the CPU
 * caches no translation that denies it. */
static inline bool mo_upgrade(uint64_t old, uint64_t new)
{
	if (!(old & MV_PTE_P))
		return true;
	if ((old & ~MV_PTE_NX & ~new) || ((old ^ new) & (15ull << 59)))
		return false;
	return !((new & ~old) & ~(MV_PTE_W | MV_PTE_U));
}

/* Write a leaf and owe the flush a correct OS issues for it. */
static inline void mo_set_leaf(struct mo *m, unsigned a, uint64_t eg,
			       uint64_t va, unsigned level, uint64_t val)
{
	uint64_t old = mo_get(m, eg);

	mo_set(m, a, eg, va, level, val);
	if (!mo_upgrade(old, val) || mo_pct(m, 30))
		mo_owe_invlpg(m, a, va);
}

#endif
