/* Private to the walker: the rights switches decoded from the registers
 * (struct mv_paging.sw) and helpers shared by walk.c and walk_dump.c. */
#ifndef MV_MMU_PAGING_H
#define MV_MMU_PAGING_H

#include <memvisor/mmu.h>

#define MV_PG_SW_WP (1u << 0)    /* CR0.WP */
#define MV_PG_SW_SMEP (1u << 1)  /* CR4.SMEP */
#define MV_PG_SW_SMAP (1u << 2)  /* CR4.SMAP */
#define MV_PG_SW_AC (1u << 3)    /* EFLAGS.AC */
#define MV_PG_SW_NXE (1u << 4)   /* EFER.NXE, PAE and IA-32e only */
#define MV_PG_SW_PKE (1u << 5)   /* CR4.PKE, IA-32e only */
#define MV_PG_SW_IDF (1u << 6)   /* fetch faults set I/D: SMEP or
				  * (PAE/IA-32e and NXE), SDM 4.7 */

/* Bits hi..lo set (hi >= lo - 1; an empty range when hi < lo). */
static inline uint64_t pg_bits(unsigned hi, unsigned lo)
{
	if (hi < lo)
		return 0;
	return (~0ull >> (63 - hi)) & ~((1ull << lo) - 1);
}

/* Entry size and index width of the mode's tables. */
static inline unsigned pg_entry_size(const struct mv_paging *pg)
{
	return pg->mode == MV_PAGING_LEGACY ? 4 : 8;
}

static inline unsigned pg_index_bits(const struct mv_paging *pg)
{
	return pg->mode == MV_PAGING_LEGACY ? 10 : 9;
}

/* Bit of va where the index of a table at `level` starts. */
static inline unsigned pg_level_shift(const struct mv_paging *pg,
				      unsigned level)
{
	return 12 + pg_index_bits(pg) * (level - 1);
}

/* Is PS=1 in entry e at `level` a leaf (or a reserved-bit case)? */
static inline unsigned pg_entry_ps(const struct mv_paging *pg,
				   unsigned level, uint64_t e)
{
	return (pg->large_levels >> level) & (unsigned)(e >> 7) & 1;
}

/* Page frame of a leaf entry at `level` (PSE-36 for 32-bit 4 MiB pages). */
static inline uint64_t pg_leaf_frame(const struct mv_paging *pg,
				     unsigned level, uint64_t e,
				     uint64_t size)
{
	if (pg->mode == MV_PAGING_LEGACY && level == 2)
		return (e & 0xffc00000ull) | ((e & 0x1fe000ull) << 19);
	return e & pg->addr_mask & ~(size - 1);
}

/* Effective rights from the AND of the entries (R/W, U/S) and the OR of
 * their XD bits. */
static inline unsigned pg_perm(uint64_t and_bits, uint64_t or_bits)
{
	return ((and_bits & MV_PTE_W) ? MV_PERM_W : 0) |
	       ((and_bits & MV_PTE_U) ? MV_PERM_U : 0) |
	       ((or_bits & MV_PTE_NX) ? MV_PERM_NX : 0);
}

/* The access-rights rules (SDM 4.6), shared by the walker and the shadow
 * MMU, which applies them to the rights a shadow PTE records. They read
 * only the switches and PKRU of a context: the soft TLB fill varies
 * EFLAGS.AC on these 8 bytes, not on a copy of the whole mv_paging. */
struct pg_rights {
	uint32_t sw;    /* MV_PG_SW_* */
	uint32_t pkru;
};

static inline struct pg_rights pg_rights_of(const struct mv_paging *pg)
{
	return (struct pg_rights){ .sw = pg->sw, .pkru = pg->pkru };
}

static inline bool user_access(unsigned acc)
{
	return (acc & (MV_ACC_USER | MV_ACC_IMPLICIT)) == MV_ACC_USER;
}

/* Protection keys (SDM 4.6.2): data accesses to user-mode addresses in
 * IA-32e mode with CR4.PKE. WD stops supervisor writes only with CR0.WP. */
static inline bool pkey_denies(struct pg_rights r, unsigned acc,
			       unsigned perm, unsigned pkey)
{
	unsigned kb = r.pkru >> (2 * pkey);

	if (!(r.sw & MV_PG_SW_PKE) || !(perm & MV_PERM_U) ||
	    (acc & MV_ACC_FETCH))
		return false;
	if (kb & 1)
		return true;
	return (acc & MV_ACC_WRITE) && (kb & 2) &&
	       (user_access(acc) || (r.sw & MV_PG_SW_WP));
}

/* SMAP blocks a supervisor data access to a user-mode address unless it is
 * explicit and EFLAGS.AC is set. */
static inline bool smap_denies(struct pg_rights r, unsigned acc)
{
	return (r.sw & MV_PG_SW_SMAP) &&
	       ((acc & MV_ACC_IMPLICIT) || !(r.sw & MV_PG_SW_AC));
}

/* The access rights of SDM 4.6.1 for the effective rights `perm`. */
static inline bool rights_deny(struct pg_rights r, unsigned acc,
			       unsigned perm)
{
	bool upage = perm & MV_PERM_U, writable = perm & MV_PERM_W;

	if (acc & MV_ACC_FETCH) {
		if (perm & MV_PERM_NX)
			return true;
		return user_access(acc) ? !upage
					: upage && (r.sw & MV_PG_SW_SMEP);
	}
	if (user_access(acc))
		return !upage || ((acc & MV_ACC_WRITE) && !writable);
	if ((acc & MV_ACC_WRITE) && !writable && (r.sw & MV_PG_SW_WP))
		return true;
	return upage && smap_denies(r, acc);
}

#endif
