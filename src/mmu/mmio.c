/* MMIO shadow PTEs with a generation number (seed 004, KVM's mmio sptes).
 *
 * A fault on MMIO (or on no RAM at all) leaves a non-present leaf that
 * records "MMIO", the guest frame, the guest's rights and the low 19 bits
 * of the VM's layout generation (mv_vm_layout_gen, bumped by every range
 * and handler change). The next access finds it in the shadow walk and
 * goes to the device without walking the guest tables. A leaf whose
 * generation differs takes the slow path. Every 2^19 bumps the low bits
 * come round again: then every shadow page is zapped (fast zap), so no
 * MMIO leaf outlives a full turn of its 19 bits. */
#include "mmu/shadow.h"

/* Under the VM lock: notice a turn of the 19-bit generation. */
void mmio_sync(struct mv_mmu *m)
{
	uint64_t cur = mv_vm_layout_gen(m->vm);
	uint64_t seen = atomic_load(&m->mmio_gen);

	if (cur == seen)
		return;
	if ((cur >> MMIO_GEN_BITS) != (seen >> MMIO_GEN_BITS)) {
		m->st.mmio_gen_wraps++;
		zap_all_locked(m);
	}
	atomic_store(&m->mmio_gen, cur);
}

/* Without the lock: may this MMIO leaf be used? Its generation must be the
 * current one, and no turn may have happened that mmio_sync has not seen. */
bool mmio_spte_current(const struct mv_mmu *m, uint64_t spte)
{
	uint64_t cur = mv_vm_layout_gen(m->vm);

	return spte_mmio_gen(spte) == (cur & MMIO_GEN_MASK) &&
	       (cur >> MMIO_GEN_BITS) ==
		       (atomic_load(&m->mmio_gen) >> MMIO_GEN_BITS);
}
