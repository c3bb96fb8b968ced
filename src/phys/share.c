/* Explicit page sharing: two guest pages with equal bytes end up on one
 * shared host page (or both on the zero page when the bytes are zeros),
 * and their private pages go back to the host. A later write to either
 * copies the shared page first (state.c). */
#include <string.h>
#include <xxhash.h>

#include "vm_internal.h"

struct side {
	struct mv_vm *vm;
	uint64_t gfn;
	struct mv_page *p;
};

static int side_check(struct side *s)
{
	s->p = page_find(s->vm, s->gfn);
	if (!s->p)
		return -MV_ERANGE;
	if (s->p->type != MV_PAGE_RAM || s->p->state == MV_PAGE_BALLOONED)
		return -MV_ESTATE;
	return 0;
}

/* Point one side at @target (a reference is already held for it when
 * @have_ref), dropping its old backing; the dirty flag survives since the
 * bytes do not change. */
static int side_switch(struct side *s, mv_page_id target, int have_ref)
{
	uint8_t dirty = s->p->flags & MV_PAGE_F_DIRTY;
	int rc = 0;

	if (mv_page_host_id(s->p) == target)
		return 0;
	if (target != MV_ZERO_PAGE && !have_ref)
		rc = mv_host_share_get(s->vm->host, s->vm->id, target);
	if (rc)
		return rc;
	rc = page_drop_backing(s->vm, s->p);
	if (rc)
		return rc;
	if (target != MV_ZERO_PAGE)
		page_set(s->vm, s->p, MV_PAGE_SHARED, target);
	s->p->flags |= dirty;
	return 0;
}

static int all_zero(const uint8_t *b)
{
	return b[0] == 0 && !memcmp(b, b + 1, MV_PAGE_SIZE - 1);
}

static int share_locked(struct side *a, struct side *b)
{
	const uint8_t *ca, *cb;
	mv_page_id target;
	int rc, ref_a = 0;

	rc = side_check(a);
	if (!rc)
		rc = side_check(b);
	if (rc)
		return rc;
	/* Before the compare, not just before the free: a store through a
	 * still-writable cached pointer landing between the compare and the
	 * free would be lost. After the hooks return nothing writes the
	 * pages but us (we hold both locks). A merge refused below (bytes
	 * differ) leaves the pages as they were; the MMU merely re-faults. */
	vm_notify(a->vm, a->gfn, 1, MV_NOTIFY_SHARED);
	vm_notify(b->vm, b->gfn, 1, MV_NOTIFY_SHARED);
	ca = page_read_ptr(a->vm, a->p);
	cb = page_read_ptr(b->vm, b->p);
	if (!ca || !cb)
		return -MV_EINTERNAL;
	if (memcmp(ca, cb, MV_PAGE_SIZE))
		return -MV_ESTATE;
	if (all_zero(ca)) {
		target = MV_ZERO_PAGE;
	} else if (a->p->state == MV_PAGE_SHARED) {
		target = a->p->host_id;
	} else if (b->p->state == MV_PAGE_SHARED) {
		target = b->p->host_id;
	} else {
		rc = mv_host_share_alloc(a->vm->host, a->vm->id, ca,
					 XXH3_64bits(ca, MV_PAGE_SIZE), &target);
		if (rc)
			return rc;
		ref_a = 1;
	}
	rc = side_switch(a, target, ref_a);
	if (rc && ref_a)
		mv_host_share_put(a->vm->host, a->vm->id, target);
	return rc ? rc : side_switch(b, target, 0);
}

int mv_vm_share_pages(struct mv_vm *a, uint64_t gfn_a, struct mv_vm *b,
		      uint64_t gfn_b)
{
	struct side sa = { a, gfn_a, NULL }, sb = { b, gfn_b, NULL };
	struct mv_vm *first = a < b ? a : b, *second = a < b ? b : a;
	int rc;

	if (!a || !b || a->host != b->host || (a == b && gfn_a == gfn_b))
		return -MV_EINVAL;
	mv_vm_lock(first);
	mv_vm_lock(second);
	rc = vm_busy(a, 1);
	if (!rc)
		rc = vm_busy(b, 1);
	if (!rc)
		rc = share_locked(&sa, &sb);
	mv_vm_unlock(second);
	mv_vm_unlock(first);
	return rc;
}
