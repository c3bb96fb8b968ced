/* Decoding the paging registers once: mode, reserved-bit masks per level
 * and entry kind, rights switches; and the CR3 load (PAE PDPTE registers).
 * The masks are the SDM's tables 4-4..4-20 ("Format of ..."), with
 * M = MAXPHYADDR. */
#include <string.h>

#include "mmu/paging.h"

static enum mv_paging_mode decide_mode(const struct mv_cpu_regs *r)
{
	if (!(r->cr0 & MV_CR0_PG))
		return MV_PAGING_OFF;
	if (!(r->cr4 & MV_CR4_PAE))
		return MV_PAGING_LEGACY;
	if (r->efer & (MV_EFER_LMA | MV_EFER_LME))
		return (r->cr4 & MV_CR4_LA57) ? MV_PAGING_LONG5
					      : MV_PAGING_LONG4;
	return MV_PAGING_PAE;
}

/* 32-bit paging: only 4 MiB PDEs have reserved bits: 21 and, above the
 * PSE-36 address bits (M' = min(M, 40), or 32 without PSE-36), 20:M'-19. */
static void legacy_masks(struct mv_paging *pg, const struct mv_cpu_model *c)
{
	unsigned m = c->no_pse36 ? 32 : (pg->maxphyaddr < 40 ? pg->maxphyaddr
							     : 40);

	pg->rsvd[2][1] = pg_bits(21, m - 19);
	pg->addr_mask = 0xfffff000ull;
	pg->large_levels = (pg->regs.cr4 & MV_CR4_PSE) ? 1u << 2 : 0;
}

/* PAE: bits 62:M reserved in PDEs and PTEs, 63 too without NXE; 20:13 in
 * a 2 MiB PDE. CR4.PSE is ignored. */
static void pae_masks(struct mv_paging *pg, uint64_t nx)
{
	uint64_t high = pg_bits(62, pg->maxphyaddr) | nx;

	pg->rsvd[1][0] = high;
	pg->rsvd[2][0] = high;
	pg->rsvd[2][1] = high | pg_bits(20, 13);
	pg->large_levels = 1u << 2;
}

/* IA-32e: bits 51:M reserved everywhere (62:52 are ignored, 62:59 are the
 * protection key of a leaf), 63 without NXE; PS is reserved in PML4Es and
 * PML5Es, and in PDPTEs without 1 GiB page support. */
static void long_masks(struct mv_paging *pg, const struct mv_cpu_model *c,
		       uint64_t nx)
{
	uint64_t high = pg_bits(51, pg->maxphyaddr) | nx;

	pg->rsvd[1][0] = high;
	pg->rsvd[2][0] = high;
	pg->rsvd[2][1] = high | pg_bits(20, 13);
	pg->rsvd[3][0] = high;
	pg->rsvd[3][1] = high | (c->no_pdpe1gb ? MV_PTE_PS : pg_bits(29, 13));
	for (unsigned l = 4; l <= 5; l++)
		pg->rsvd[l][0] = pg->rsvd[l][1] = high | MV_PTE_PS;
	pg->large_levels = 0x3c;  /* levels 2..5; 4 and 5 always fault */
}

static uint32_t rights_switches(const struct mv_cpu_regs *r,
				enum mv_paging_mode mode)
{
	bool pae = mode >= MV_PAGING_PAE, lma = mode >= MV_PAGING_LONG4;
	uint32_t sw = 0;

	sw |= (r->cr0 & MV_CR0_WP) ? MV_PG_SW_WP : 0;
	sw |= (r->cr4 & MV_CR4_SMEP) ? MV_PG_SW_SMEP : 0;
	sw |= (r->cr4 & MV_CR4_SMAP) ? MV_PG_SW_SMAP : 0;
	sw |= (r->rflags & MV_RFLAGS_AC) ? MV_PG_SW_AC : 0;
	sw |= (pae && (r->efer & MV_EFER_NXE)) ? MV_PG_SW_NXE : 0;
	sw |= (lma && (r->cr4 & MV_CR4_PKE)) ? MV_PG_SW_PKE : 0;
	if ((sw & (MV_PG_SW_SMEP | MV_PG_SW_NXE)))
		sw |= MV_PG_SW_IDF;
	return sw;
}

/* Register combinations the CPU refuses (#GP when they would be set). */
static bool regs_possible(const struct mv_cpu_regs *r)
{
	bool pg = r->cr0 & MV_CR0_PG;

	if (pg && !(r->cr0 & MV_CR0_PE))
		return false;
	if ((r->efer & MV_EFER_LMA) && !pg)
		return false;
	return !(pg && (r->efer & (MV_EFER_LME | MV_EFER_LMA)) &&
		 !(r->cr4 & MV_CR4_PAE));
}

int mv_paging_init(struct mv_paging *pg, const struct mv_cpu_regs *regs,
		   const struct mv_cpu_model *cpu, const struct mv_gmem *gm)
{
	static const struct mv_cpu_model dflt;
	const struct mv_cpu_model *c = cpu ? cpu : &dflt;
	unsigned m = c->maxphyaddr ? c->maxphyaddr : MV_MAXPHYADDR_DEFAULT;

	if (!pg || !regs || !gm || !gm->read || m < 32 || m > 52 ||
	    !regs_possible(regs))
		return -MV_EINVAL;
	memset(pg, 0, sizeof(*pg));
	pg->regs = *regs;
	pg->maxphyaddr = (uint8_t)m;
	pg->mode = (uint8_t)decide_mode(regs);
	pg->pkru = regs->pkru;
	pg->sw = rights_switches(regs, pg->mode);
	pg->addr_mask = pg_bits(m - 1, 12);
	uint64_t nx = (pg->sw & MV_PG_SW_NXE) ? 0 : MV_PTE_NX;

	switch (pg->mode) {
	case MV_PAGING_OFF:
		return MV_WALK_OK;
	case MV_PAGING_LEGACY:
		pg->levels = 2;
		legacy_masks(pg, c);
		break;
	case MV_PAGING_PAE:
		pg->levels = 2;
		pae_masks(pg, nx);
		break;
	default:
		pg->levels = pg->mode == MV_PAGING_LONG5 ? 5 : 4;
		long_masks(pg, c, nx);
		break;
	}
	return mv_paging_load_cr3(pg, gm, regs->cr3);
}

/* SDM 4.4.1: the four PDPTEs are read at once from CR3[31:5]; a present one
 * with bits 2:1, 8:5 or 63:M set makes the MOV to CR3 fault (#GP(0)) and
 * leaves the old PDPTE registers. */
static int load_pdptes(struct mv_paging *pg, const struct mv_gmem *gm,
		       uint64_t base)
{
	uint64_t rsvd = pg_bits(2, 1) | pg_bits(8, 5) |
			pg_bits(63, pg->maxphyaddr);
	uint64_t v[4];

	for (unsigned i = 0; i < 4; i++) {
		if (gm->read(gm->opaque, base + 8 * i, 8, &v[i]) != MV_GMEM_OK)
			return MV_WALK_NOT_RAM;
		if ((v[i] & MV_PTE_P) && (v[i] & rsvd))
			return MV_WALK_GP;
	}
	memcpy(pg->pdpte, v, sizeof(v));
	pg->root = base;
	return MV_WALK_OK;
}

int mv_paging_load_cr3(struct mv_paging *pg, const struct mv_gmem *gm,
		       uint64_t cr3)
{
	if (!pg || !gm || !gm->read)
		return -MV_EINVAL;
	switch (pg->mode) {
	case MV_PAGING_OFF:
		break;
	case MV_PAGING_LEGACY:
		pg->root = cr3 & 0xfffff000ull;
		break;
	case MV_PAGING_PAE: {
		int rc = load_pdptes(pg, gm, cr3 & 0xffffffe0ull);

		if (rc != MV_WALK_OK)
			return rc;
		break;
	}
	default: {
		/* With CR4.PCIDE, bit 63 of MOV to CR3 is the no-flush hint and
		 * never reaches CR3; without it, it is one more reserved bit
		 * (KVM's kvm_set_cr3 checks it the same way). */
		uint64_t reserved = pg_bits(63, pg->maxphyaddr);

		if (pg->regs.cr4 & MV_CR4_PCIDE) {
			reserved &= ~MV_CR3_NOFLUSH;
			cr3 &= ~MV_CR3_NOFLUSH;
		}
		if (cr3 & reserved)
			return MV_WALK_GP;
		pg->root = cr3 & pg->addr_mask;
		break;
	}
	}
	pg->regs.cr3 = cr3;
	return MV_WALK_OK;
}

bool mv_paging_is_canonical(const struct mv_paging *pg, uint64_t va)
{
	if (!pg)
		return false;  /* no mode: nothing is known to be canonical */
	if (pg->mode < MV_PAGING_LONG4)
		return true;
	return mv_paging_canonical(pg, va) == va;
}

uint64_t mv_paging_canonical(const struct mv_paging *pg, uint64_t va)
{
	unsigned bits;

	if (!pg)
		return va;  /* no mode: the address as given */
	if (pg->mode == MV_PAGING_LONG4)
		bits = 48;
	else if (pg->mode == MV_PAGING_LONG5)
		bits = 57;
	else
		return va & 0xffffffffull;
	return (uint64_t)((int64_t)(va << (64 - bits)) >> (64 - bits));
}
