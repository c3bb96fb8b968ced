/* Planning a mv_vm_phys_write before any byte moves. Two things can make
 * a write fail or go wrong half-way, and both are settled first:
 *   - allocation: every RAM page of the span that a write must make
 *     private (ZERO, SHARED, BALLOONED under the deflate policy) gets its
 *     host page now, in one host call for what the handy cache lacks, so
 *     a budget or reservation refusal fails the whole write with nothing
 *     changed (a ballooned page under the error policy is refused here
 *     too, unless a handler may take the write);
 *   - the source: a buffer inside guest memory (a pointer from
 *     mv_vm_gpa_to_hva) can die during the write, when a copy-on-write
 *     frees the shared page it points into or the mapping cache unmaps
 *     its chunk; such a source is copied aside first. */
#include <stdlib.h>
#include <string.h>

#include "vm_internal.h"

#define ALLOC_STEP 65536u  /* pages per host call (its count is 32-bit) */

static int overlaps(const void *a, size_t alen, const void *b, size_t blen)
{
	uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;

	return x < y + blen && y < x + alen;
}

/* The source lies in a chunk the mapping cache may unmap. */
static int in_mapped_chunk(const struct mv_vm *vm, const void *buf,
			   size_t len)
{
	const struct mapcache *mc = &vm->map;

	for (uint32_t i = 0; i < mc->used; i++)
		if (mc->slots[i].base &&
		    overlaps(buf, len, mc->slots[i].base, MV_CHUNK_SIZE))
			return 1;
	return 0;
}

/* The source lies in the page backing @p (for a write: the shared page a
 * copy-on-write may free). */
static int in_shared_page(const struct mv_vm *vm, const struct mv_page *p,
			  const void *buf, size_t len)
{
	const void *page = mv_host_page_ptr(vm->host, p->host_id);

	return page && overlaps(buf, len, page, MV_PAGE_SIZE);
}

/* For populate, which frees, replaces or overwrites whole pages: the
 * source lies in a mapped chunk or in a page backing one of the frames
 * [gfn, gfn + n) (checked RAM frames). */
int source_in_frames(struct mv_vm *vm, uint64_t gfn, uint64_t n,
		     const void *buf, size_t len)
{
	if (in_mapped_chunk(vm, buf, len))
		return 1;
	for (uint64_t i = 0; i < n; i++) {
		const struct mv_page *p = page_find(vm, gfn + i);

		if ((page_is_private(p) || p->state == MV_PAGE_SHARED) &&
		    in_shared_page(vm, p, buf, len))
			return 1;
	}
	return 0;
}

/* What the write over [gpa, gpa + len) needs; the span is checked. */
static int plan_pages(struct mv_vm *vm, uint64_t gpa, const void *buf,
		      size_t len, uint64_t *need, int *stage)
{
	uint64_t first = gpa >> MV_PAGE_SHIFT;
	uint64_t last = (gpa + len - 1) >> MV_PAGE_SHIFT;

	*need = 0;
	*stage = in_mapped_chunk(vm, buf, len);
	for (uint64_t gfn = first; gfn <= last; gfn++) {
		const struct mv_page *p = page_find(vm, gfn);

		if (p->type != MV_PAGE_RAM)
			continue;
		if (p->state == MV_PAGE_BALLOONED &&
		    vm->balloon_policy == MV_BALLOON_WRITE_ERROR) {
			if (p->hstate < MV_HSTATE_WRITE)
				return -MV_ESTATE;
			continue;
		}
		if (page_is_private(p))
			continue;
		(*need)++;
		if (!*stage && p->state == MV_PAGE_SHARED)
			*stage = in_shared_page(vm, p, buf, len);
	}
	return 0;
}

/* Allocate @n pages in steps, all or nothing. */
static int alloc_pages(struct mv_vm *vm, mv_page_id *ids, uint64_t n)
{
	uint64_t done = 0;
	int rc = 0;

	while (done < n && !rc) {
		uint32_t k = n - done < ALLOC_STEP ? (uint32_t)(n - done)
						   : ALLOC_STEP;

		rc = vm_alloc(vm, MV_ACCOUNT_BASE, k, NULL, MV_ALLOC_ZEROED,
			      ids + done);
		if (!rc)
			done += k;
	}
	if (rc && done)
		mv_host_free(vm->host, vm->id, (uint32_t)done, ids);
	return rc;
}

int write_plan_begin(struct mv_vm *vm, uint64_t gpa, const void **buf,
		     size_t len, struct write_plan *wp)
{
	uint64_t need;
	int stage, rc;

	memset(wp, 0, sizeof(*wp));
	if (!len)
		return 0;
	rc = plan_pages(vm, gpa, *buf, len, &need, &stage);
	if (rc)
		return rc;
	if (stage) {
		wp->stage = malloc(len);
		if (!wp->stage)
			return -MV_ENOMEM;
		memcpy(wp->stage, *buf, len);
		*buf = wp->stage;
	}
	if (need > vm->nhandy)
		handy_top_up(vm);  /* as the first page taken would */
	if (need > vm->nhandy) {
		wp->n = need - vm->nhandy;
		wp->ids = malloc(wp->n * sizeof(*wp->ids));
		rc = wp->ids ? alloc_pages(vm, wp->ids, wp->n) : -MV_ENOMEM;
		if (rc) {
			free(wp->ids);
			free(wp->stage);
			memset(wp, 0, sizeof(*wp));
			return rc;
		}
	}
	/* A handler may write this VM again: plans nest. */
	wp->outer = vm->plan;
	vm->plan = wp;
	return 0;
}

void write_plan_end(struct mv_vm *vm, struct write_plan *wp)
{
	if (vm->plan == wp)
		vm->plan = wp->outer;
	/* Left over when a handler took the write or a page was moving. */
	if (wp->used < wp->n)
		handy_give(vm, wp->ids + wp->used,
			   (uint32_t)(wp->n - wp->used));
	free(wp->ids);
	free(wp->stage);
}

/* A page of the innermost plan for @gfn; -MV_ENOENT when it has none left
 * (or only pages the pool is moving: their frame is frozen). */
int write_plan_take(struct mv_vm *vm, uint64_t gfn, mv_page_id *out)
{
	struct write_plan *wp = vm->plan;

	for (uint64_t i = wp ? wp->used : 0; wp && i < wp->n; i++) {
		mv_page_id id = wp->ids[i];
		int rc = mv_host_page_set_gfn(vm->host, vm->id, id, gfn);

		if (rc == -MV_EBUSY)
			continue;
		if (rc)
			return rc;
		wp->ids[i] = wp->ids[wp->used];
		wp->ids[wp->used++] = id;
		*out = id;
		return 0;
	}
	return -MV_ENOENT;
}
