/* VM reset (every RAM page back to ZERO) and restore-style population
 * (pages filled from a saved image without being zeroed first). */
#include <stdlib.h>
#include <string.h>

#include "vm_internal.h"

#define BATCH 256

/* Queue what backs @p for release and make it ZERO. */
static int reset_page(struct mv_vm *vm, struct mv_page *p,
		      struct page_release *b)
{
	int rc;

	if (p->state == MV_PAGE_ZERO)
		return 0;
	rc = page_release_add(vm, b, p);
	page_set(vm, p, MV_PAGE_ZERO, MV_ZERO_PAGE);
	/* the bytes changed to zeros */
	page_flags_reset(p, MV_PAGE_F_DIRTY);
	p->monitor_hits = 0;
	return rc;
}

static int reset_locked(struct mv_vm *vm)
{
	struct page_release b;
	int rc = 0;

	page_release_init(&b, true);

	for (uint32_t i = 0; i < vm->nranges && !rc; i++) {
		struct phys_range *r = &vm->ranges[i];

		if (r->type != MV_PAGE_RAM)
			continue;
		/* Before any page of the range goes back to the pool. */
		vm_notify(vm, r->first_gfn, r->npages, MV_NOTIFY_RESET);
		/* Only descriptor pages ever used can hold a page. */
		for (uint64_t j = desc_next_used(r, 0); j < r->npages && !rc;
		     j = desc_next_used(r, j + 1))
			rc = reset_page(vm, &r->pages[j], &b);
	}
	/* Also after an error: the pages already made ZERO give theirs. */
	return page_release_end(vm, &b);
}

int mv_vm_reset(struct mv_vm *vm)
{
	int rc;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 1);
	if (!rc)
		rc = reset_locked(vm);
	mv_vm_unlock(vm);
	return rc;
}

static int ram_run_check(struct mv_vm *vm, uint64_t gfn, uint32_t count)
{
	int rc;

	if (gfn >= MV_GPA_LIMIT >> MV_PAGE_SHIFT)
		return -MV_ERANGE;
	rc = span_check(vm, gfn << MV_PAGE_SHIFT,
			(size_t)count << MV_PAGE_SHIFT);
	for (uint32_t i = 0; i < count && !rc; i++)
		if (page_find(vm, gfn + i)->type != MV_PAGE_RAM)
			rc = -MV_ESTATE;
	return rc;
}

static int all_zero(const uint8_t *b)
{
	return b[0] == 0 && !memcmp(b, b + 1, MV_PAGE_SIZE - 1);
}

/* Pages of the batch with non-zero data and no private page get one, in
 * one host call made before anything changes: a refusal leaves the batch
 * as it was. Pages whose data is all zeros need none: they become ZERO. */
static int populate_alloc(struct mv_vm *vm, uint64_t gfn, uint32_t n,
			  const uint8_t *data, uint8_t *zero, mv_page_id *ids,
			  uint32_t *nnew)
{
	uint64_t gfns[BATCH];
	uint32_t k = 0;
	int rc;

	*nnew = 0;
	for (uint32_t i = 0; i < n; i++) {
		zero[i] = (uint8_t)all_zero(data + (size_t)i * MV_PAGE_SIZE);
		if (!zero[i] && !page_is_private(page_find(vm, gfn + i)))
			gfns[k++] = gfn + i;
	}
	rc = k ? vm_alloc(vm, MV_ACCOUNT_BASE, k, gfns, 0,
			       ids) : 0;
	if (!rc)
		*nnew = k;
	return rc;
}

/* A page whose data is all zeros: back to the zero page, whatever backed
 * it (a restore allocates only what holds data). */
static int populate_zero(struct mv_vm *vm, struct mv_page *p, uint64_t gfn,
			 const uint8_t *zeros)
{
	int rc = page_drop_backing(vm, p);

	if (rc)
		return rc;
	page_flags_reset(p, MV_PAGE_F_DIRTY);
	track_written(vm, p, gfn << MV_PAGE_SHIFT, zeros, MV_PAGE_SIZE);
	return 0;
}

/* Fill up to BATCH pages from @data: private pages are overwritten in
 * place, the others get a new page (no zeroing: the data covers it), and
 * pages of zeros become ZERO. */
static int populate_batch(struct mv_vm *vm, uint64_t gfn, uint32_t n,
			  const uint8_t *data)
{
	mv_page_id ids[BATCH];
	uint8_t zero[BATCH];
	uint32_t nnew, k = 0;
	int rc = populate_alloc(vm, gfn, n, data, zero, ids, &nnew);

	for (uint32_t i = 0; i < n && !rc; i++) {
		struct mv_page *p = page_find(vm, gfn + i);
		mv_page_id id = p->host_id;
		uint8_t *dst;

		if (zero[i]) {
			rc = populate_zero(vm, p, gfn + i,
					   data + (size_t)i * MV_PAGE_SIZE);
			continue;
		}
		if (!page_is_private(p)) {
			rc = page_drop_backing(vm, p);
			if (rc)
				break;
			id = ids[k++];
		}
		page_set(vm, p, MV_PAGE_ALLOCATED, id);
		dst = vm_page_ptr(vm, id);
		if (!dst)
			return -MV_EINTERNAL;
		memcpy(dst, data + (size_t)i * MV_PAGE_SIZE, MV_PAGE_SIZE);
		page_flags_reset(p, MV_PAGE_F_WRITTEN | MV_PAGE_F_DIRTY);
		track_written(vm, p, (gfn + i) << MV_PAGE_SHIFT, dst,
			      MV_PAGE_SIZE);
	}
	if (k < nnew)    /* a drop failed: the new pages not used go back */
		mv_host_free(vm->host, vm->id, nnew - k, ids + k);
	return rc;
}

/* A source inside the frames being populated (or in a chunk the mapping
 * cache may unmap) would be freed or overwritten under us: copy it first. */
static int stage_source(struct mv_vm *vm, uint64_t gfn, uint32_t count,
			const uint8_t **src, uint8_t **stage)
{
	size_t len = (size_t)count * MV_PAGE_SIZE;

	*stage = NULL;
	if (!source_in_frames(vm, gfn, count, *src, len))
		return 0;
	*stage = malloc(len);
	if (!*stage)
		return -MV_ENOMEM;
	memcpy(*stage, *src, len);
	*src = *stage;
	return 0;
}

int mv_vm_phys_populate(struct mv_vm *vm, uint64_t gfn, uint32_t count,
			const void *data)
{
	const uint8_t *src = data;
	uint8_t *stage = NULL;
	int rc;

	if (!vm || !data || !count)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 1);
	if (!rc)
		rc = ram_run_check(vm, gfn, count);
	if (!rc)
		rc = stage_source(vm, gfn, count, &src, &stage);
	/* Before anything is dropped (a shared page may be freed), and for
	 * the whole run: the batches before a failing one change too. */
	if (!rc)
		vm_notify(vm, gfn, count, MV_NOTIFY_BACKING);
	for (uint32_t done = 0, n; !rc && done < count; done += n) {
		n = count - done < BATCH ? count - done : BATCH;
		rc = populate_batch(vm, gfn + done, n,
				    src + (size_t)done * MV_PAGE_SIZE);
	}
	mv_vm_unlock(vm);
	free(stage);
	return rc;
}
