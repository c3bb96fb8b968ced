/* Physical access handlers: page-granular, non-overlapping ranges kept in
 * an array sorted by first page, so a lookup is a binary search and a
 * registration an O(log n) conflict check plus one insertion. Each covered
 * page carries the handler's state in its descriptor, which is all the fast
 * paths look at; the array is consulted only when a handler must run. */
#include <stdlib.h>
#include <string.h>

#include "vm_internal.h"

/* Index of the first handler ending after @gfn. */
static uint32_t lower_bound(const struct mv_vm *vm, uint64_t gfn)
{
	uint32_t lo = 0, hi = vm->nhandlers;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct phys_handler *h = &vm->handlers[mid];

		if (h->first_gfn + h->npages <= gfn)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct phys_handler *handler_find(const struct mv_vm *vm, uint64_t gfn)
{
	uint32_t i = lower_bound(vm, gfn);

	if (i < vm->nhandlers && vm->handlers[i].first_gfn <= gfn)
		return &vm->handlers[i];
	return NULL;
}

/* Some handler claims a page of [gfn, gfn + n). */
int handlers_overlap(const struct mv_vm *vm, uint64_t gfn, uint64_t n)
{
	uint32_t i = lower_bound(vm, gfn);

	return i < vm->nhandlers && vm->handlers[i].first_gfn < gfn + n;
}

static enum mv_handler_state kind_state(enum mv_handler_kind kind)
{
	return kind == MV_HANDLER_WRITE ? MV_HSTATE_WRITE : MV_HSTATE_ALL;
}

/* Set the handler state of every page of [gfn, gfn + n), count it as a
 * layout change and tell the MMU. */
static void pages_set_hstate(struct mv_vm *vm, uint64_t gfn, uint64_t n,
			     enum mv_handler_state s)
{
	for (uint64_t i = 0; i < n; i++)
		page_find(vm, gfn + i)->hstate = (uint8_t)s;
	layout_bump(vm);
	vm_notify(vm, gfn, n, MV_NOTIFY_HANDLER);
}

static int handler_insert(struct mv_vm *vm, uint32_t at,
			  const struct phys_handler *h)
{
	if (vm->nhandlers == vm->handlers_cap) {
		uint32_t cap = vm->handlers_cap ? vm->handlers_cap * 2 : 8;
		void *n = realloc(vm->handlers, cap * sizeof(*vm->handlers));

		if (!n)
			return -MV_ENOMEM;
		vm->handlers = n;
		vm->handlers_cap = cap;
	}
	memmove(&vm->handlers[at + 1], &vm->handlers[at],
		(vm->nhandlers - at) * sizeof(*h));
	vm->handlers[at] = *h;
	vm->nhandlers++;
	vm->st.handlers = vm->nhandlers;
	return 0;
}

static int handler_add(struct mv_vm *vm, const struct phys_handler *h)
{
	uint32_t at;

	if (span_check(vm, h->first_gfn << MV_PAGE_SHIFT,
		       h->npages << MV_PAGE_SHIFT))
		return -MV_ERANGE;
	at = lower_bound(vm, h->first_gfn);
	if (at < vm->nhandlers &&
	    vm->handlers[at].first_gfn < h->first_gfn + h->npages)
		return -MV_EEXIST;
	if (handler_insert(vm, at, h))
		return -MV_ENOMEM;
	pages_set_hstate(vm, h->first_gfn, h->npages, kind_state(h->kind));
	return 0;
}

int mv_vm_handler_register(struct mv_vm *vm, enum mv_handler_kind kind,
			   uint64_t gpa, uint64_t size, mv_phys_handler_fn fn,
			   void *opaque)
{
	struct phys_handler h = { .kind = kind, .fn = fn, .opaque = opaque };
	int rc;

	if (!vm || !fn || !size || kind > MV_HANDLER_MMIO)
		return -MV_EINVAL;
	if (gpa >= MV_GPA_LIMIT || size > MV_GPA_LIMIT - gpa)
		return -MV_ERANGE;
	h.first_gfn = gpa >> MV_PAGE_SHIFT;
	h.npages = ((gpa + size - 1) >> MV_PAGE_SHIFT) - h.first_gfn + 1;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 1);
	if (!rc)
		rc = handler_add(vm, &h);
	mv_vm_unlock(vm);
	return rc;
}

int mv_vm_handler_deregister(struct mv_vm *vm, uint64_t gpa)
{
	const struct phys_handler *h;
	uint64_t gfn, n;
	uint32_t at;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	h = handler_find(vm, gpa >> MV_PAGE_SHIFT);
	if (!h || vm_busy(vm, 1)) {
		mv_vm_unlock(vm);
		return h ? -MV_EBUSY : -MV_ENOENT;
	}
	gfn = h->first_gfn;
	n = h->npages;
	at = (uint32_t)(h - vm->handlers);
	memmove(&vm->handlers[at], &vm->handlers[at + 1],
		(vm->nhandlers - at - 1) * sizeof(*h));
	vm->nhandlers--;
	vm->st.handlers = vm->nhandlers;
	pages_set_hstate(vm, gfn, n, MV_HSTATE_NONE);
	mv_vm_unlock(vm);
	return 0;
}

static int page_toggle(struct mv_vm *vm, uint64_t gpa, int enable)
{
	uint64_t gfn = gpa >> MV_PAGE_SHIFT;
	const struct phys_handler *h;
	enum mv_handler_state s;
	int rc = 0;

	if (!vm)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	h = handler_find(vm, gfn);
	if (vm_busy(vm, 1)) {
		rc = -MV_EBUSY;
	} else if (!h) {
		rc = -MV_ENOENT;
	} else if (h->kind == MV_HANDLER_MMIO) {
		rc = -MV_ESTATE;
	} else {
		s = enable ? kind_state(h->kind) : MV_HSTATE_DISABLED;
		if (page_find(vm, gfn)->hstate != s)
			pages_set_hstate(vm, gfn, 1, s);
	}
	mv_vm_unlock(vm);
	return rc;
}

int mv_vm_handler_page_disable(struct mv_vm *vm, uint64_t gpa)
{
	return page_toggle(vm, gpa, 0);
}

int mv_vm_handler_page_enable(struct mv_vm *vm, uint64_t gpa)
{
	return page_toggle(vm, gpa, 1);
}

void handlers_free(struct mv_vm *vm)
{
	free(vm->handlers);
	vm->handlers = NULL;
	vm->nhandlers = vm->handlers_cap = 0;
}
