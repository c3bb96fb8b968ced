/* Guest-physical layout changes at run time (KVM's memslots): ranges are
 * added and removed while the VM runs, and a generation counts every
 * change of what a guest-physical address means (ranges and physical
 * handlers), so that the MMU can tell a cached MMIO or hole translation
 * from a current one without the VM lock. */
#include <stdlib.h>
#include <string.h>

#include "vm_internal.h"

uint64_t mv_vm_layout_gen(const struct mv_vm *vm)
{
	return vm ? atomic_load_explicit(&vm->layout_gen,
					 memory_order_acquire) : 0;
}

/* Under the VM lock, once the change is in place: a reader that sees the
 * new value and then takes the lock sees the new layout. */
void layout_bump(struct mv_vm *vm)
{
	atomic_fetch_add_explicit(&vm->layout_gen, 1, memory_order_release);
}

/* Add (@sign 1) or take away (-1) @r's pages from the VM's counters. */
void range_count(struct mv_vm *vm, const struct phys_range *r, int sign)
{
	uint64_t n = sign > 0 ? r->npages : -r->npages;

	if (r->type == MV_PAGE_RAM) {
		vm->st.ram_pages += n;
		vm->st.pages[MV_PAGE_ZERO] += n;
	} else if (r->type == MV_PAGE_ROM) {
		vm->st.rom_pages += n;
	} else {
		vm->st.mmio_pages += n;
	}
}

/* ROM pages are allocated at once and filled, so they skip zeroing. All
 * or nothing: on an error no page is left allocated. */
int range_rom_fill(struct mv_vm *vm, struct phys_range *r,
		   const struct mv_vm_range *c)
{
	mv_page_id *ids = calloc(r->npages, sizeof(*ids));
	uint64_t *gfns = calloc(r->npages, sizeof(*gfns));
	uint64_t i;
	int rc = -MV_ENOMEM;

	if (!ids || !gfns || r->npages > UINT32_MAX)
		goto out;
	for (i = 0; i < r->npages; i++)
		gfns[i] = r->first_gfn + i;
	rc = vm_alloc(vm, MV_ACCOUNT_FIXED, (uint32_t)r->npages, gfns, 0, ids);
	for (i = 0; !rc && i < r->npages; i++) {
		uint8_t *dst = vm_page_ptr(vm, ids[i]);
		size_t off = i * MV_PAGE_SIZE, n = 0;

		if (!dst) {
			mv_host_free(vm->host, vm->id, (uint32_t)r->npages, ids);
			rc = -MV_EINTERNAL;
			break;
		}
		if (off < c->rom_size)
			n = c->rom_size - off < MV_PAGE_SIZE ? c->rom_size - off
							     : MV_PAGE_SIZE;
		if (n)
			memcpy(dst, (const uint8_t *)c->rom_data + off, n);
		memset(dst + n, 0, MV_PAGE_SIZE - n);
	}
	for (i = 0; !rc && i < r->npages; i++)
		page_set(vm, &r->pages[i], MV_PAGE_ALLOCATED, ids[i]);
out:
	free(ids);
	free(gfns);
	return rc;
}

/* Set the account to what the layout needs, @ram and @rom pages: base =
 * RAM + the handy cache's high mark, fixed = ROM; the MMU's shadow
 * reservation is left as it is. Absolute, not a delta, so that a shrink
 * refused once (a page move in flight still holds a charge) is made good
 * by the next change. */
static int reserve_set(struct mv_vm *vm, uint64_t ram, uint64_t rom)
{
	struct mv_host_vm_stats hs;
	int rc = mv_host_vm_get_stats(vm->host, vm->id, &hs);

	if (rc)
		return rc;
	if (ram > UINT64_MAX - vm->handy_high)
		return -MV_EINVAL;
	hs.reserved.base = ram + vm->handy_high;
	hs.reserved.fixed = rom;
	return mv_host_vm_reserve(vm->host, vm->id, &hs.reserved);
}

static int reserve_with(struct mv_vm *vm, const struct phys_range *r)
{
	uint64_t ram = vm->st.ram_pages, rom = vm->st.rom_pages;

	if (r->type == MV_PAGE_RAM)
		ram += r->npages;
	else if (r->type == MV_PAGE_ROM)
		rom += r->npages;
	if (ram < vm->st.ram_pages || rom < vm->st.rom_pages)
		return -MV_EINVAL;
	return reserve_set(vm, ram, rom);
}

/* The pool's side first, then the counters (the page counted as ZERO
 * until its range goes). */
static void release_page(struct mv_vm *vm, struct mv_page *p,
			 struct page_release *b)
{
	page_release_add(vm, b, p);
	if (p->type == MV_PAGE_RAM) {
		vm->st.pages[p->state]--;
		vm->st.pages[MV_PAGE_ZERO]++;
	}
}

/* Give every page of @r back: private pages freed, shared references
 * dropped, the host's ballooned charge returned. Nothing here can fail
 * but an inconsistent pool; the first such error is returned, the rest
 * is still given back. */
static int release_range(struct mv_vm *vm, struct phys_range *r)
{
	struct page_release b;

	page_release_init(&b, false);
	for (uint64_t i = desc_next_used(r, 0); i < r->npages;
	     i = desc_next_used(r, i + 1))
		release_page(vm, &r->pages[i], &b);
	return page_release_end(vm, &b);
}

static int add_locked(struct mv_vm *vm, const struct mv_vm_range *c)
{
	uint64_t first = c->gpa >> MV_PAGE_SHIFT;
	struct phys_range r;
	uint32_t at;
	int rc;

	if (vm_busy(vm, 1))
		return -MV_EBUSY;
	if (vm->nranges >= MV_VM_MAX_RANGES)
		return -MV_ELIMIT;
	at = range_lower_bound(vm, first);
	if (at < vm->nranges &&
	    vm->ranges[at].first_gfn < first + (c->size >> MV_PAGE_SHIFT))
		return -MV_EEXIST;
	/* The account first: a range the budget refuses costs nothing. */
	rc = reserve_with(vm, &(struct phys_range){
		.type = c->type, .npages = c->size >> MV_PAGE_SHIFT });
	if (rc)
		return rc;
	rc = range_init(&r, c);
	if (!rc)
		rc = c->type == MV_PAGE_ROM ? range_rom_fill(vm, &r, c) : 0;
	if (!rc)
		rc = range_insert(vm, &r);
	if (rc) {
		if (r.pages && c->type == MV_PAGE_ROM)
			release_range(vm, &r);
		range_destroy(&r);
		reserve_set(vm, vm->st.ram_pages, vm->st.rom_pages);
		return rc;
	}
	range_count(vm, &r, 1);
	layout_bump(vm);
	return 0;
}

int mv_vm_range_add(struct mv_vm *vm, const struct mv_vm_range *range)
{
	int rc;

	if (!vm || !range)
		return -MV_EINVAL;
	rc = range_config_check(range);
	if (rc)
		return rc;
	mv_vm_lock(vm);
	rc = add_locked(vm, range);
	mv_vm_unlock(vm);
	return rc;
}

static int remove_locked(struct mv_vm *vm, uint64_t gfn)
{
	uint32_t at = range_lower_bound(vm, gfn);
	struct phys_range r;
	int rc;

	if (vm_busy(vm, 1))
		return -MV_EBUSY;
	if (at == vm->nranges || vm->ranges[at].first_gfn != gfn)
		return -MV_ENOENT;
	r = vm->ranges[at];
	if (handlers_overlap(vm, r.first_gfn, r.npages))
		return -MV_EBUSY;
	/* Before any page goes back to the pool, while the descriptors
	 * still describe it. */
	vm_notify(vm, r.first_gfn, r.npages, MV_NOTIFY_REMOVED);
	rc = release_range(vm, &r);
	range_count(vm, &r, -1);
	range_delete(vm, at);
	layout_bump(vm);
	range_destroy(&r);
	if (vm->balloon_target > vm->st.ram_pages)
		vm->balloon_target = vm->st.ram_pages;
	/* The pages are gone, so the smaller account fits what is left. */
	reserve_set(vm, vm->st.ram_pages, vm->st.rom_pages);
	return rc;
}

int mv_vm_range_remove(struct mv_vm *vm, uint64_t gpa)
{
	int rc;

	if (!vm || gpa & (MV_PAGE_SIZE - 1))
		return -MV_EINVAL;
	if (gpa >= MV_GPA_LIMIT)
		return -MV_ENOENT;
	mv_vm_lock(vm);
	rc = remove_locked(vm, gpa >> MV_PAGE_SHIFT);
	mv_vm_unlock(vm);
	return rc;
}
