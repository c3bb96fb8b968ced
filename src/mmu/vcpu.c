/* vCPUs: creation, paging registers and the TLB-maintenance instructions.
 * Only the vCPU's own thread calls these (see vcpu.h); the registers are
 * the vCPU's, the shadow pages the VM's. */
#include <stdlib.h>
#include <string.h>

#include "mmu/shadow.h"

static void tlb_reset_mode(struct mv_vcpu *v)
{
	v->tlb.va_mask = v->pg.mode >= MV_PAGING_LONG4 ? UINT64_MAX
						       : 0xffffffffull;
	v->tlb.ac = (v->pg.regs.rflags & MV_RFLAGS_AC) != 0;
}

static int vcpu_slot(struct mv_mmu *m, uint32_t *out)
{
	for (uint32_t i = 0; i < MV_VCPU_MAX; i++)
		if (!m->vcpus[i]) {
			*out = i;
			return 0;
		}
	return -MV_ELIMIT;
}

static int vcpu_init(struct mv_vcpu *v, struct mv_mmu *m, uint32_t id)
{
	struct mv_cpu_regs regs = { 0 };
	int rc;

	v->mmu = m;
	v->vm = m->vm;
	v->id = id;
	rc = mv_gmem_vm_init(&v->vm_gm, m->vm);
	dirty_gmem_init(v);
	if (!rc)
		rc = mv_paging_init(&v->pg, &regs, &m->cpu, &v->gm);
	if (rc)
		return rc < 0 ? rc : -MV_EINTERNAL;
	tlb_reset_mode(v);
	tlb_flush_all(v);
	v->tlb.outside = 1;
	v->st.flushes = 0;
	atomic_store(&v->ack_gen, atomic_load(&m->flush_gen));
	return 0;
}

int mv_vcpu_create(struct mv_vm *vm, const struct mv_vcpu_config *cfg,
		   struct mv_vcpu **out)
{
	struct mv_cpu_model cpu = cfg ? cfg->cpu : (struct mv_cpu_model){ 0 };
	struct mv_mmu *m;
	struct mv_vcpu *v;
	uint32_t id;
	int rc;

	if (!vm || !out)
		return -MV_EINVAL;
	if (!cpu.maxphyaddr)
		cpu.maxphyaddr = MV_MAXPHYADDR_DEFAULT;
	if (cpu.maxphyaddr < 32 || cpu.maxphyaddr > 52)
		return -MV_EINVAL;
	rc = mmu_get(vm, &m);
	if (rc)
		return rc;
	v = aligned_alloc(64, (sizeof(*v) + 63) & ~(size_t)63);
	if (!v)
		return -MV_ENOMEM;
	memset(v, 0, sizeof(*v));
	mv_vm_lock(vm);
	if (m->nvcpus && memcmp(&cpu, &m->cpu, sizeof(cpu)))
		rc = -MV_EINVAL;
	if (!rc)
		rc = vcpu_slot(m, &id);
	if (!rc) {
		m->cpu = cpu;
		rc = vcpu_init(v, m, id);
	}
	if (!rc) {
		m->vcpus[id] = v;
		m->nvcpus++;
	}
	mv_vm_unlock(vm);
	if (rc) {
		free(v);
		return rc;
	}
	*out = v;
	return 0;
}

void mv_vcpu_destroy(struct mv_vcpu *v)
{
	if (!v)
		return;
	struct mv_mmu *m = v->mmu;

	vcpu_leave(v);
	mv_vm_lock(v->vm);
	vh_free(v);
	root_drop_all(v);
	m->vcpus[v->id] = NULL;
	m->nvcpus--;
	free(v->ring.e);
	sp_commit_zap(m);
	mv_vm_unlock(v->vm);
	free(v);
}

struct mv_vm *mv_vcpu_vm(const struct mv_vcpu *v)
{
	return v ? v->vm : NULL;
}

struct mv_tlb *mv_vcpu_tlb(struct mv_vcpu *v)
{
	return v ? &v->tlb : NULL;
}

int mv_vcpu_get_regs(const struct mv_vcpu *v, struct mv_cpu_regs *regs)
{
	if (!v || !regs)
		return -MV_EINVAL;
	*regs = v->pg.regs;
	return 0;
}

/* New paging context from @regs; nothing changes unless the CPU would
 * accept the values (a #GP leaves the old registers). */
static int paging_reload(struct mv_vcpu *v, const struct mv_cpu_regs *regs)
{
	struct mv_paging pg;
	int rc = mv_paging_init(&pg, regs, &v->mmu->cpu, &v->gm);

	if (rc)
		return rc;
	v->pg = pg;
	v->root_stale = true;
	tlb_reset_mode(v);
	return 0;
}

int mv_vcpu_set_regs(struct mv_vcpu *v, const struct mv_cpu_regs *regs)
{
	if (!v || !regs)
		return -MV_EINVAL;
	vcpu_enter(v);
	int rc = paging_reload(v, regs);

	if (!rc) {
		tlb_flush_all(v);
		vh_sync_all(v);
	}
	return rc;
}

static uint64_t pcid_of(const struct mv_cpu_regs *r)
{
	return (r->cr4 & MV_CR4_PCIDE) ? r->cr3 & 0xfff : 0;
}

/* MOV to CR3 (SDM 4.10.4.1): non-global translations go unless PCIDE and
 * the no-flush hint keep those of the (same) PCID. */
static int write_cr3(struct mv_vcpu *v, uint64_t val)
{
	struct mv_cpu_regs old = v->pg.regs;
	struct mv_paging pg = v->pg;
	int rc = mv_paging_load_cr3(&pg, &v->gm, val);

	if (rc)
		return rc;
	v->pg = pg;
	v->root_stale = true;
	bool keep = (old.cr4 & MV_CR4_PCIDE) && (val & MV_CR3_NOFLUSH) &&
		    pcid_of(&old) == pcid_of(&v->pg.regs);

	if (!keep)
		tlb_flush_nonglobal(v);
	vh_sync_all(v);  /* the range may translate differently now */
	return 0;
}

#define CR0_FLUSH (MV_CR0_PG | MV_CR0_WP | MV_CR0_PE)
#define CR4_FLUSH (MV_CR4_PGE | MV_CR4_PAE | MV_CR4_PSE | MV_CR4_PCIDE | \
		   MV_CR4_SMEP | MV_CR4_SMAP | MV_CR4_PKE | MV_CR4_LA57)
#define EFER_FLUSH (MV_EFER_NXE | MV_EFER_LME | MV_EFER_LMA)

static int write_ctl(struct mv_vcpu *v, enum mv_cpu_reg reg, uint64_t val)
{
	struct mv_cpu_regs r = v->pg.regs;
	uint64_t changed, flush_mask;
	int rc;

	switch (reg) {
	case MV_REG_CR0:
		changed = r.cr0 ^ val, flush_mask = CR0_FLUSH, r.cr0 = val;
		break;
	case MV_REG_CR4:
		changed = r.cr4 ^ val, flush_mask = CR4_FLUSH, r.cr4 = val;
		break;
	default:
		changed = r.efer ^ val, flush_mask = EFER_FLUSH, r.efer = val;
		break;
	}
	rc = paging_reload(v, &r);
	if (!rc && (changed & flush_mask))
		tlb_flush_all(v);
	if (!rc)
		vh_sync_all(v);
	return rc;
}

int mv_vcpu_set_reg(struct mv_vcpu *v, enum mv_cpu_reg reg, uint64_t val)
{
	if (!v)
		return -MV_EINVAL;
	vcpu_enter(v);
	switch (reg) {
	case MV_REG_CR3:
		return write_cr3(v, val);
	case MV_REG_CR0:
	case MV_REG_CR4:
	case MV_REG_EFER:
		return write_ctl(v, reg, val);
	case MV_REG_PKRU:
		if (val > UINT32_MAX)
			return -MV_EINVAL;
		v->pg.regs.pkru = v->pg.pkru = (uint32_t)val;
		if (v->pg.sw & MV_PG_SW_PKE)
			tlb_flush_all(v);  /* entries hold PKRU's verdict */
		return 0;
	case MV_REG_RFLAGS:
		v->pg.regs.rflags = val;
		v->pg.sw = (v->pg.sw & ~MV_PG_SW_AC) |
			   ((val & MV_RFLAGS_AC) ? MV_PG_SW_AC : 0);
		v->tlb.ac = (val & MV_RFLAGS_AC) != 0;
		return 0;
	}
	return -MV_EINVAL;
}

/* The shadow follows every guest table write (track.c), so the TLB is all
 * these instructions have to drop. */
int mv_vcpu_invlpg(struct mv_vcpu *v, uint64_t va)
{
	if (!v)
		return -MV_EINVAL;
	vcpu_enter(v);
	v->st.invlpg++;
	if (mv_paging_is_canonical(&v->pg, va)) {
		tlb_flush_va(v, va);
		vh_invlpg(v, va);
	}
	return 0;
}

int mv_vcpu_flush(struct mv_vcpu *v)
{
	if (!v)
		return -MV_EINVAL;
	vcpu_enter(v);
	tlb_flush_all(v);
	return 0;
}

int mv_vcpu_invpcid(struct mv_vcpu *v, unsigned type, uint32_t pcid,
		    uint64_t va)
{
	if (!v || type > 3 || pcid > 0xfff)
		return -MV_EINVAL;
	vcpu_enter(v);
	bool current = pcid == pcid_of(&v->pg.regs);

	switch (type) {
	case 0:  /* individual address */
		if (current && mv_paging_is_canonical(&v->pg, va))
			tlb_flush_va(v, va);
		break;
	case 1:  /* single context */
		if (current)
			tlb_flush_nonglobal(v);
		break;
	case 2:  /* all contexts, globals included */
		tlb_flush_all(v);
		break;
	default: /* all contexts but globals */
		tlb_flush_nonglobal(v);
		break;
	}
	return 0;
}

void mv_vcpu_quiesce(struct mv_vcpu *v)
{
	if (v)
		vcpu_enter(v);
}

void mv_vcpu_exit(struct mv_vcpu *v)
{
	if (v)
		vcpu_leave(v);
}

int mv_vcpu_get_stats(const struct mv_vcpu *v, struct mv_vcpu_stats *st)
{
	if (!v || !st)
		return -MV_EINVAL;
	*st = v->st;
	return 0;
}
