/* Shadow PTE format (private to src/mmu/).
 *
 * x86 64-bit entries, walked only by software (shadow_walk.c):
 *
 *   present leaf (level 1, always 4 KiB):
 *     0 P   1 W   2 U  (the guest's effective rights over all levels)
 *     5 A (always 1)   6 D (set when a write went through the shadow)
 *     8 G (the guest's G; global in a TLB only with the vCPU's CR4.PGE)
 *     9 SW_WRITABLE: the shadow lets writes through (guest D=1, a private
 *       page, not a tracked page table, no handler)
 *     10 SW_LARGE: part of a large guest page (INVLPG drops all of it)
 *     12..43 host page id      59..62 protection key   63 NX
 *   present non-leaf:
 *     0 P, 1 W, 2 U (always set: rights live in the leaves)
 *     12..43 host page id of the child table
 *     9..11 and 44..62: index of the child's struct sp (22 bits)
 *   MMIO leaf (P = 0):
 *     11 MMIO   1 W   2 U   63 NX (as a present leaf)
 *     12..51 guest-physical frame
 *     3..10 and 52..62: the MMIO generation (19 bits, seed 004)
 *   0: not present.
 */
#ifndef MV_MMU_SPTE_H
#define MV_MMU_SPTE_H

#include <stdint.h>

#include <memvisor/host.h>
#include <memvisor/mmu.h>

#define SPTE_P MV_PTE_P
#define SPTE_W MV_PTE_W
#define SPTE_U MV_PTE_U
#define SPTE_A MV_PTE_A
#define SPTE_D MV_PTE_D
#define SPTE_G MV_PTE_G
#define SPTE_NX MV_PTE_NX
#define SPTE_SW_WRITABLE (1ull << 9)
#define SPTE_SW_LARGE (1ull << 10)
#define SPTE_MMIO (1ull << 11)
#define SPTE_RIGHTS (SPTE_W | SPTE_U | SPTE_NX)
#define SPTE_PKEY_SHIFT 59

#define SP_IDX_BITS 22
#define SP_IDX_MAX (1u << SP_IDX_BITS)
#define MMIO_GEN_BITS 19
#define MMIO_GEN_MASK ((1u << MMIO_GEN_BITS) - 1)

static inline mv_page_id spte_host_id(uint64_t e)
{
	return (mv_page_id)(e >> 12);
}

static inline uint64_t spte_leaf(mv_page_id id, uint64_t rights,
				 unsigned pkey)
{
	return SPTE_P | SPTE_A | rights | ((uint64_t)id << 12) |
	       ((uint64_t)pkey << SPTE_PKEY_SHIFT);
}

static inline unsigned spte_pkey(uint64_t e)
{
	return (unsigned)(e >> SPTE_PKEY_SHIFT) & 15;
}

/* Non-leaf: child table id and the child's struct sp index. */
static inline uint64_t spte_link(mv_page_id child, uint32_t idx)
{
	return SPTE_P | SPTE_W | SPTE_U | ((uint64_t)child << 12) |
	       ((uint64_t)(idx & 7) << 9) | ((uint64_t)(idx >> 3) << 44);
}

static inline uint32_t spte_link_idx(uint64_t e)
{
	return (uint32_t)((e >> 9) & 7) | (uint32_t)((e >> 44) & 0x7ffff) << 3;
}

static inline int spte_is_mmio(uint64_t e)
{
	return !(e & SPTE_P) && (e & SPTE_MMIO);
}

static inline uint64_t spte_mmio(uint64_t gfn, uint64_t rights, uint32_t gen)
{
	gen &= MMIO_GEN_MASK;
	return SPTE_MMIO | (rights & SPTE_RIGHTS) |
	       ((gfn & ((1ull << 40) - 1)) << 12) |
	       ((uint64_t)(gen & 0xff) << 3) | ((uint64_t)(gen >> 8) << 52);
}

static inline uint32_t spte_mmio_gen(uint64_t e)
{
	return (uint32_t)((e >> 3) & 0xff) |
	       (uint32_t)((e >> 52) & 0x7ff) << 8;
}

static inline uint64_t spte_mmio_gfn(uint64_t e)
{
	return (e >> 12) & ((1ull << 40) - 1);
}

/* Effective rights (MV_PERM_*) recorded in a leaf or MMIO SPTE. */
static inline unsigned spte_perm(uint64_t e)
{
	return ((e & SPTE_W) ? MV_PERM_W : 0) | ((e & SPTE_U) ? MV_PERM_U : 0) |
	       ((e & SPTE_NX) ? MV_PERM_NX : 0);
}

static inline uint64_t perm_to_spte(unsigned perm)
{
	return ((perm & MV_PERM_W) ? SPTE_W : 0) |
	       ((perm & MV_PERM_U) ? SPTE_U : 0) |
	       ((perm & MV_PERM_NX) ? SPTE_NX : 0);
}

static inline uint64_t spte_load(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void spte_store(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

#endif
