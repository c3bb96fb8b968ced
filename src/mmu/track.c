/* Guest page-table tracking. Every guest page that some shadow page
 * shadows as a table is write-tracked in phys/ (mv_vm_track_write): no
 * direct write pointer exists for it, and every write reaches
 * mmu_track_hook after its bytes are in memory, whoever made it (a vCPU's
 * emulated write, mv_vm_phys_write, populate). The hook zaps the shadow
 * entries that the written guest entries stand for; the next access
 * refaults and walks the new entries. A table written FLOOD_LIMIT times
 * without a walk through it, or written misaligned (across entries, or
 * fewer than 4 bytes), is probably no longer a table: it is unshadowed
 * (KVM's rules). */
#include "mmu/shadow.h"

/* A gfn is tracked while it is shadowed as a guest table, is a clean page
 * of a dirty log, or is a table a virtual handler's translation reads; turning tracking on notifies MV_NOTIFY_TRACK, so
 * the notify hook write-protects every leaf that maps it. A page outside
 * RAM (ROM) cannot be written and is not tracked. */
void track_update(struct mv_mmu *m, uint64_t gfn)
{
	bool want = sp_gfn_count(m, gfn) || dirty_log_clean(m, gfn) ||
		    vh_table_used(m, gfn);
	int cur = mv_vm_page_tracked(m->vm, gfn);

	if (want && cur == 0 && mv_vm_track_write(m->vm, gfn, 1) == 0)
		m->tracked++;
	else if (!want && cur == 1 && mv_vm_track_write(m->vm, gfn, 0) == 0)
		m->tracked--;
}

void track_sp_created(struct mv_mmu *m, struct sp *sp)
{
	if (!sp->role.direct)
		track_update(m, sp->gfn);
}

void track_sp_gone(struct mv_mmu *m, struct sp *sp)
{
	if (!sp->role.direct)
		track_update(m, sp->gfn);
}

/* Zap the shadow entries of @sp that stand for guest entries [first,
 * last] of its table (entry indices of the guest's table). */
static void zap_entries(struct mv_mmu *m, struct sp *sp, unsigned first,
			unsigned last)
{
	for (unsigned i = first; i <= last; i++) {
		if (sp->role.mode != MV_PAGING_LEGACY) {
			sp_zap_spte(m, sp, i);
		} else if (sp->role.level == 1) {
			if ((i >> 9) == sp->role.quadrant)
				sp_zap_spte(m, sp, i & (SPTES - 1));
		} else if ((i >> 8) == sp->role.quadrant) {
			/* a 4 MiB guest PDE is two 2 MiB shadow PDEs */
			sp_zap_spte(m, sp, (i & 255) * 2);
			sp_zap_spte(m, sp, (i & 255) * 2 + 1);
		}
	}
}

static bool misaligned(unsigned off, size_t len, unsigned esize)
{
	return len < 4 || (off / esize) != ((off + len - 1) / esize);
}

static void table_written(struct mv_mmu *m, uint64_t gfn, unsigned off,
			  size_t len)
{
	bool unshadow = false;

	m->st.table_writes++;
	for (struct sp *sp = sp_bucket(m, gfn), *next; sp; sp = next) {
		next = sp->hash_next;
		if (sp->gfn != gfn || sp->role.direct)
			continue;
		unsigned esize = sp->role.mode == MV_PAGING_LEGACY ? 4 : 8;

		if (misaligned(off, len, esize)) {
			m->st.misaligned_unshadows += !unshadow;
			unshadow = true;
		} else if (++sp->flood >= FLOOD_LIMIT) {
			m->st.flood_unshadows += !unshadow;
			unshadow = true;
		} else {
			zap_entries(m, sp, off / esize,
				    (unsigned)((off + len - 1) / esize));
		}
	}
	if (unshadow)
		sp_zap_gfn(m, gfn);
}

void mmu_track_hook(void *opaque, struct mv_vm *vm, uint64_t gpa,
		    const void *bytes, size_t len)
{
	struct mv_mmu *m = opaque;
	uint64_t gfn = gpa >> MV_PAGE_SHIFT;

	(void)vm;
	(void)bytes;
	if (dirty_log_clean(m, gfn))
		dirty_log_mark(m, gfn, NULL);
	if (m->nvh_total)
		vh_table_written(m, gfn);
	if (sp_gfn_count(m, gfn))
		table_written(m, gfn, gpa & (MV_PAGE_SIZE - 1), len);
	sp_commit_zap(m);
}
