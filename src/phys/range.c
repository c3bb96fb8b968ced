/* The VM's ranges: a small array sorted by address, searched in O(log n).
 * A VM has a handful of ranges (RAM below and above the PCI hole, a few
 * ROMs and MMIO windows), so a sorted array beats any tree. The array is
 * guarded by the VM lock like everything else: ranges change rarely
 * (layout.c) and every reader already holds the lock, so a lock-free
 * scheme would buy nothing on the access path. */
#include <stdlib.h>
#include <string.h>

#include "vm_internal.h"

struct phys_range *range_find(const struct mv_vm *vm, uint64_t gfn)
{
	uint32_t lo = 0, hi = vm->nranges;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		struct phys_range *r = &vm->ranges[mid];

		if (gfn < r->first_gfn)
			hi = mid;
		else if (gfn - r->first_gfn >= r->npages)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

struct mv_page *page_find(const struct mv_vm *vm, uint64_t gfn)
{
	struct phys_range *r = range_find(vm, gfn);

	return r ? &r->pages[gfn - r->first_gfn] : NULL;
}

/* Every byte of [gpa, gpa + len) inside some range (ranges may abut). */
int span_check(const struct mv_vm *vm, uint64_t gpa, size_t len)
{
	uint64_t end;

	if (len == 0)
		return 0;
	if (gpa >= MV_GPA_LIMIT || len > MV_GPA_LIMIT - gpa)
		return -MV_ERANGE;
	end = (gpa + len - 1) >> MV_PAGE_SHIFT;
	for (uint64_t gfn = gpa >> MV_PAGE_SHIFT;;) {
		const struct phys_range *r = range_find(vm, gfn);

		if (!r)
			return -MV_ERANGE;
		if (end - r->first_gfn < r->npages)
			return 0;
		gfn = r->first_gfn + r->npages;
	}
}

/* Index of the first range ending after @gfn (nranges if none). */
uint32_t range_lower_bound(const struct mv_vm *vm, uint64_t gfn)
{
	uint32_t lo = 0, hi = vm->nranges;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct phys_range *r = &vm->ranges[mid];

		if (r->first_gfn + r->npages <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A range configuration on its own: alignment, type, ROM data, limit. */
int range_config_check(const struct mv_vm_range *c)
{
	if ((c->gpa | c->size) & (MV_PAGE_SIZE - 1) || c->size == 0)
		return -MV_EINVAL;
	if (c->type > MV_PAGE_MMIO || c->rom_size > c->size ||
	    (c->type == MV_PAGE_ROM && c->rom_size && !c->rom_data))
		return -MV_EINVAL;
	if (c->gpa >= MV_GPA_LIMIT || c->size > MV_GPA_LIMIT - c->gpa)
		return -MV_ERANGE;
	return 0;
}

/* Build @r from a checked configuration; its descriptors all ZERO. RAM
 * descriptors are not written at all (an all-zero descriptor is a ZERO
 * RAM page, desc.c); ROM and MMIO ones get their type. */
int range_init(struct phys_range *r, const struct mv_vm_range *c)
{
	int rc;

	memset(r, 0, sizeof(*r));
	r->first_gfn = c->gpa >> MV_PAGE_SHIFT;
	r->npages = c->size >> MV_PAGE_SHIFT;
	r->type = c->type;
	r->read = c->read;
	r->write = c->write;
	r->opaque = c->opaque;
	r->name = strdup(c->name ? c->name : "");
	rc = r->name ? desc_alloc(r) : -MV_ENOMEM;
	if (rc) {
		range_destroy(r);
		return rc;
	}
	if (c->type != MV_PAGE_RAM)
		for (uint64_t i = 0; i < r->npages; i++)
			r->pages[i].type = (uint8_t)c->type;
	return 0;
}

void range_destroy(struct phys_range *r)
{
	free(r->name);
	desc_free(r);
	r->name = NULL;
}

/* Put @r (not overlapping any range) into the array at its place. */
int range_insert(struct mv_vm *vm, const struct phys_range *r)
{
	uint32_t at = range_lower_bound(vm, r->first_gfn);
	struct phys_range *n;

	if (desc_spans_reserve(vm, vm->nranges + 1))
		return -MV_ENOMEM;
	n = realloc(vm->ranges, (vm->nranges + 1) * sizeof(*n));
	if (!n)
		return -MV_ENOMEM;
	vm->ranges = n;
	memmove(&n[at + 1], &n[at], (vm->nranges - at) * sizeof(*n));
	n[at] = *r;
	vm->nranges++;
	desc_spans_rebuild(vm);
	return 0;
}

/* Take entry @at out of the array (its descriptors stay with the caller). */
void range_delete(struct mv_vm *vm, uint32_t at)
{
	memmove(&vm->ranges[at], &vm->ranges[at + 1],
		(vm->nranges - at - 1) * sizeof(*vm->ranges));
	vm->nranges--;
	desc_spans_rebuild(vm);
}

struct span {
	uint64_t first, n;
};

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;

	return x->first < y->first ? -1 : x->first > y->first;
}

/* Check every configured range and their overlaps, and count their pages
 * by type, before anything is allocated: creation asks the pool for the
 * account first, so a VM the budget refuses costs no descriptor. */
int ranges_check(const struct mv_vm_config *cfg, uint64_t count[3])
{
	struct span *s;
	int rc = 0;

	if (!cfg->nranges || !cfg->ranges)
		return -MV_EINVAL;
	if (cfg->nranges > MV_VM_MAX_RANGES)
		return -MV_ELIMIT;
	for (uint32_t i = 0; i < cfg->nranges && !rc; i++)
		rc = range_config_check(&cfg->ranges[i]);
	if (rc)
		return rc;
	s = malloc(cfg->nranges * sizeof(*s));
	if (!s)
		return -MV_ENOMEM;
	count[0] = count[1] = count[2] = 0;
	for (uint32_t i = 0; i < cfg->nranges; i++) {
		s[i].first = cfg->ranges[i].gpa >> MV_PAGE_SHIFT;
		s[i].n = cfg->ranges[i].size >> MV_PAGE_SHIFT;
		count[cfg->ranges[i].type] += s[i].n;
	}
	qsort(s, cfg->nranges, sizeof(*s), span_cmp);
	for (uint32_t i = 1; i < cfg->nranges && !rc; i++)
		if (s[i - 1].first + s[i - 1].n > s[i].first)
			rc = -MV_EEXIST;
	free(s);
	return rc;
}

static int range_cmp(const void *a, const void *b)
{
	const struct phys_range *x = a, *y = b;

	return x->first_gfn < y->first_gfn ? -1 : x->first_gfn > y->first_gfn;
}

/* Build the ranges of a configuration ranges_check accepted. */
int ranges_build(struct mv_vm *vm, const struct mv_vm_config *cfg)
{
	int rc = desc_spans_reserve(vm, cfg->nranges);

	if (rc)
		return rc;
	vm->ranges = calloc(cfg->nranges, sizeof(*vm->ranges));
	if (!vm->ranges)
		return -MV_ENOMEM;
	for (uint32_t i = 0; i < cfg->nranges && !rc; i++) {
		rc = range_init(&vm->ranges[i], &cfg->ranges[i]);
		if (!rc)
			vm->nranges++;
	}
	qsort(vm->ranges, vm->nranges, sizeof(*vm->ranges), range_cmp);
	desc_spans_rebuild(vm);
	return rc;
}

void ranges_free(struct mv_vm *vm)
{
	for (uint32_t i = 0; i < vm->nranges; i++)
		range_destroy(&vm->ranges[i]);
	free(vm->ranges);
	free(vm->spans);
	vm->ranges = NULL;
	vm->spans = NULL;
	vm->nranges = vm->nspans = vm->spans_cap = 0;
}
