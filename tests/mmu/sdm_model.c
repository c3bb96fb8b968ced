/* The SDM reference model (see sdm_model.h). Every rule is a transcription
 * of a sentence or a table of Intel SDM Vol. 3A chapter 4; speed does not
 * matter here. */
#include <string.h>

#include "mmu/sdm_model.h"

/* What a paging-structure entry is (the SDM's table names). */
enum sdm_kind {
	K32_PDE_4M,    /* Table 4-4 */
	K32_PDE_PT,    /* Table 4-5 */
	K32_PTE,       /* Table 4-6 */
	KPAE_PDPTE,    /* Table 4-8 */
	KPAE_PDE_2M,   /* Table 4-9 */
	KPAE_PDE_PT,   /* Table 4-10 */
	KPAE_PTE,      /* Table 4-11 */
	K64_PML5E,     /* Table 4-14 */
	K64_PML4E,     /* Table 4-15 */
	K64_PDPTE_1G,  /* Table 4-16 */
	K64_PDPTE_PD,  /* Table 4-17 */
	K64_PDE_2M,    /* Table 4-18 */
	K64_PDE_PT,    /* Table 4-19 */
	K64_PTE,       /* Table 4-20 */
};

static bool bit_of(uint64_t v, unsigned b)
{
	return (v >> b) & 1;
}

static bool within(unsigned b, unsigned hi, unsigned lo)
{
	return b <= hi && b >= lo;
}

/* "M" of the 32-bit 4-MByte PDE: min(MAXPHYADDR, 40) with PSE-36, else 32. */
static unsigned m32(const struct sdm_case *c)
{
	if (!c->pse36)
		return 32;
	return c->maxphyaddr < 40 ? c->maxphyaddr : 40;
}

/* Is bit b of an entry of this kind "Reserved (must be 0)"? XD (bit 63)
 * counts when IA32_EFER.NXE = 0 (SDM 4.5.x: "if IA32_EFER.NXE = 0 ... XD is
 * reserved"). */
static bool reserved_bit(const struct sdm_case *c, enum sdm_kind k,
			 unsigned b)
{
	unsigned m = c->maxphyaddr;

	switch (k) {
	case K32_PDE_4M:
		return b == 21 || within(b, 20, m32(c) - 19);
	case K32_PDE_PT:
	case K32_PTE:
		return false;
	case KPAE_PDPTE:
		return within(b, 2, 1) || within(b, 8, 5) || within(b, 63, m);
	case KPAE_PDE_2M:
		if (within(b, 20, 13))
			return true;
		/* fall through */
	case KPAE_PDE_PT:
	case KPAE_PTE:
		return within(b, 62, m) || (b == 63 && !c->nxe);
	case K64_PML5E:
	case K64_PML4E:
		if (b == 7)
			return true;
		break;
	case K64_PDPTE_1G:
		if (!c->page1gb ? b == 7 : within(b, 29, 13))
			return true;
		break;
	case K64_PDE_2M:
		if (within(b, 20, 13))
			return true;
		break;
	default:
		break;
	}
	return within(b, 51, m) || (b == 63 && !c->nxe);
}

static bool any_reserved(const struct sdm_case *c, enum sdm_kind k,
			 uint64_t e)
{
	for (unsigned b = 0; b < 64; b++)
		if (bit_of(e, b) && reserved_bit(c, k, b))
			return true;
	return false;
}

/* The kind of entry i on the path: its level, and PS where PS decides. */
static enum sdm_kind kind_of(const struct sdm_case *c, unsigned i,
			     uint64_t e)
{
	unsigned from_leaf = c->nent - 1 - i;  /* 0 = PTE */
	bool ps = bit_of(e, 7);

	if (c->mode == SDM_32BIT)
		return from_leaf ? (ps && c->cr4_pse ? K32_PDE_4M : K32_PDE_PT)
				 : K32_PTE;
	if (c->mode == SDM_PAE) {
		if (from_leaf == 2)
			return KPAE_PDPTE;
		return from_leaf ? (ps ? KPAE_PDE_2M : KPAE_PDE_PT) : KPAE_PTE;
	}
	switch (from_leaf) {
	case 0:  return K64_PTE;
	case 1:  return ps ? K64_PDE_2M : K64_PDE_PT;
	case 2:  return ps ? K64_PDPTE_1G : K64_PDPTE_PD;
	case 3:  return K64_PML4E;
	default: return K64_PML5E;
	}
}

static bool maps_page(enum sdm_kind k)
{
	return k == K32_PDE_4M || k == K32_PTE || k == KPAE_PDE_2M ||
	       k == KPAE_PTE || k == K64_PDPTE_1G || k == K64_PDE_2M ||
	       k == K64_PTE;
}

/* Physical address of the page (Tables 4-4..4-20) and its size. */
static uint64_t page_frame(const struct sdm_case *c, enum sdm_kind k,
			   uint64_t e, uint64_t *size)
{
	uint64_t pa = 0;
	unsigned lo, m = c->maxphyaddr;

	switch (k) {
	case K32_PTE:      *size = 4096; lo = 12; m = 32; break;
	case K32_PDE_4M:
		*size = 4u << 20;
		/* bits 31:22 -> 31:22; bits (M-20):13 -> (M-1):32 */
		for (unsigned b = 22; b < 32; b++)
			pa |= (uint64_t)bit_of(e, b) << b;
		for (unsigned b = 13; b <= m32(c) - 20; b++)
			pa |= (uint64_t)bit_of(e, b) << (b + 19);
		return pa;
	case KPAE_PTE:
	case K64_PTE:      *size = 4096; lo = 12; break;
	case KPAE_PDE_2M:
	case K64_PDE_2M:   *size = 2u << 20; lo = 21; break;
	default:           *size = 1u << 30; lo = 30; break;
	}
	for (unsigned b = lo; b < m; b++)
		pa |= (uint64_t)bit_of(e, b) << b;
	return pa;
}

/* SDM 4.6.1, "Determination of Access Rights", case by case. */
static bool access_allowed(const struct sdm_case *c, bool user_addr,
			   bool all_rw, bool any_xd)
{
	bool supervisor = !c->user || c->implicit;
	bool xd = any_xd && c->nxe && c->mode != SDM_32BIT;

	if (supervisor) {
		if (c->fetch) {
			if (user_addr && c->smep)
				return false;
			return !xd;
		}
		if (user_addr && c->smap) {
			/* implicit accesses, or CPL < 3 with AC = 0 */
			if (c->implicit || !c->eflags_ac)
				return false;
		}
		if (c->write)
			return !c->cr0_wp || all_rw;
		return true;
	}
	if (!user_addr)
		return false;
	if (c->fetch)
		return !xd;
	if (c->write)
		return all_rw;
	return true;
}

/* SDM 4.6.2, protection keys: data accesses to user-mode addresses with
 * IA32_EFER.LMA = CR4.PKE = 1. */
static bool pkey_violation(const struct sdm_case *c, bool user_addr,
			   uint64_t leaf)
{
	unsigned key = (unsigned)(leaf >> 59) & 15;
	bool ad = bit_of(c->pkru, 2 * key), wd = bit_of(c->pkru, 2 * key + 1);
	bool ia32e = c->mode == SDM_4LEVEL || c->mode == SDM_5LEVEL;

	if (!ia32e || !c->pke || c->fetch || !user_addr)
		return false;
	if (ad)
		return true;
	return c->write && wd && ((c->user && !c->implicit) || c->cr0_wp);
}

static uint32_t error_code(const struct sdm_case *c, bool p, bool rsvd,
			   bool pk)
{
	bool pae = c->mode != SDM_32BIT;  /* CR4.PAE = 1 */
	uint32_t ec = 0;

	ec |= p ? 1 : 0;
	ec |= c->write && !c->fetch ? 2 : 0;
	ec |= c->user && !c->implicit ? 4 : 0;
	ec |= rsvd ? 8 : 0;
	ec |= c->fetch && (c->smep || (pae && c->nxe)) ? 16 : 0;
	ec |= pk ? 32 : 0;
	return ec;
}

static void fault_at(const struct sdm_case *c, struct sdm_result *r,
		     unsigned used, bool p, bool rsvd, bool pk)
{
	r->fault = true;
	r->used = used;
	r->error_code = error_code(c, p, rsvd, pk);
}

/* SDM 4.8: A in every entry used, D in the entry mapping the page on a
 * write. The PAE PDPTE has no A flag (it is a register). */
static void set_flags(const struct sdm_case *c, struct sdm_result *r)
{
	for (unsigned i = 0; i < r->used; i++) {
		if (c->mode == SDM_PAE && i == 0)
			continue;
		r->after[i] |= 1u << 5;
		if (i == r->used - 1 && c->write && !c->fetch)
			r->after[i] |= 1u << 6;
	}
}

void sdm_translate(const struct sdm_case *c, struct sdm_result *r)
{
	bool user_addr = true, all_rw = true, any_xd = false;

	memset(r, 0, sizeof(*r));
	memcpy(r->after, c->ent, sizeof(r->after));
	if (c->mode == SDM_PAE && bit_of(c->ent[0], 0) &&
	    any_reserved(c, KPAE_PDPTE, c->ent[0])) {
		r->gp = true;  /* 4.4.1: MOV to CR3 #GP(0) */
		return;
	}
	for (unsigned i = 0; i < c->nent; i++) {
		uint64_t e = c->ent[i];
		enum sdm_kind k = kind_of(c, i, e);

		if (!bit_of(e, 0))
			return fault_at(c, r, i + 1, false, false, false);
		if (any_reserved(c, k, e))
			return fault_at(c, r, i + 1, true, true, false);
		if (k != KPAE_PDPTE) {  /* PDPTEs carry no rights in PAE */
			user_addr &= bit_of(e, 2);
			all_rw &= bit_of(e, 1);
			any_xd |= bit_of(e, 63);
		}
		if (!maps_page(k))
			continue;
		bool pk = pkey_violation(c, user_addr, e);

		/* The translation, also reported when its rights deny. */
		r->pa = page_frame(c, k, e, &r->page_size) |
			(c->va_low & (r->page_size - 1));
		r->writable = all_rw;
		r->user_page = user_addr;
		r->exec_disable = any_xd && c->nxe;
		if (pk || !access_allowed(c, user_addr, all_rw, any_xd))
			return fault_at(c, r, i + 1, true, false, pk);
		r->used = i + 1;
		set_flags(c, r);
		return;
	}
}
