/* Page state transitions. Every change of a RAM page's state goes through
 * page_set (it keeps the per-state counters); every transition a write
 * needs goes through page_make_writable. All run under the VM lock. */
#include <string.h>

#include "vm_internal.h"

static const char *const state_names[MV_PAGE_STATES] = {
	[MV_PAGE_ZERO] = "zero",
	[MV_PAGE_ALLOCATED] = "allocated",
	[MV_PAGE_SHARED] = "shared",
	[MV_PAGE_WRITE_MONITORED] = "write-monitored",
	[MV_PAGE_BALLOONED] = "ballooned",
};

const char *mv_page_state_name(enum mv_page_state s)
{
	return (unsigned)s < MV_PAGE_STATES ? state_names[s] : "invalid";
}

/* A ZERO RAM page keeps host id NIL (read as the zero page), so that the
 * descriptor of a page back to ZERO looks like an untouched one; a page
 * leaving ZERO marks its descriptor page as used (desc.c). */
void page_set(struct mv_vm *vm, struct mv_page *p, enum mv_page_state s,
	      mv_page_id id)
{
	if (p->type == MV_PAGE_RAM) {
		vm->st.pages[p->state]--;
		vm->st.pages[s]++;
		if (s == MV_PAGE_ZERO)
			id = MV_NIL_PAGE;
		else
			desc_mark_page(vm, p);
	}
	p->state = (uint8_t)s;
	p->host_id = id;
}

void vm_notify(struct mv_vm *vm, uint64_t gfn, uint64_t count,
	       enum mv_notify_reason why)
{
	if (!vm->notify)
		return;
	vm->in_notify++;
	vm->notify(vm->notify_opaque, vm, gfn, count, why);
	vm->in_notify--;
}

const uint8_t *page_read_ptr(struct mv_vm *vm, const struct mv_page *p)
{
	if (p->state == MV_PAGE_BALLOONED || p->state == MV_PAGE_ZERO)
		return vm_page_ptr(vm, MV_ZERO_PAGE);
	return vm_page_ptr(vm, p->host_id);
}

/* SHARED -> ALLOCATED: copy into a handy page, then drop our reference. */
static int break_cow(struct mv_vm *vm, struct mv_page *p, uint64_t gfn)
{
	mv_page_id id, old = p->host_id;
	const uint8_t *src = vm_page_ptr(vm, old);
	uint8_t *dst;
	int rc = src ? handy_take(vm, gfn, &id) : -MV_EINTERNAL;

	if (rc)
		return rc;
	dst = vm_page_ptr(vm, id);
	if (dst) {
		memcpy(dst, src, MV_PAGE_SIZE);
		/* Before the put: it may free the shared page the MMU maps. */
		vm_notify(vm, gfn, 1, MV_NOTIFY_BACKING);
		rc = mv_host_share_put(vm->host, vm->id, old);
	}
	if (!dst || rc) {    /* the page taken goes back: no charge leaks */
		mv_host_free(vm->host, vm->id, 1, &id);
		return dst ? rc : -MV_EINTERNAL;
	}
	page_set(vm, p, MV_PAGE_ALLOCATED, id);
	vm->st.cow_breaks++;
	return 0;
}

/* BALLOONED -> ALLOCATED under MV_BALLOON_WRITE_DEFLATE. The handy page is
 * taken first so that a failure leaves the balloon untouched. */
static int deflate_on_write(struct mv_vm *vm, struct mv_page *p, uint64_t gfn)
{
	mv_page_id id;
	int rc;

	if (vm->balloon_policy != MV_BALLOON_WRITE_DEFLATE)
		return -MV_ESTATE;
	rc = handy_take(vm, gfn, &id);
	if (rc)
		return rc;
	if (p->flags & MV_PAGE_F_BALLOON_HOST) {
		rc = mv_host_balloon_deflate(vm->host, vm->id, 1);
		if (rc) {
			mv_host_free(vm->host, vm->id, 1, &id);
			return rc;
		}
		p->flags &= (uint8_t)~MV_PAGE_F_BALLOON_HOST;
	}
	page_set(vm, p, MV_PAGE_ALLOCATED, id);
	vm->st.balloon_deflates_on_write++;
	return 0;
}

static void monitor_hit(struct mv_vm *vm, struct mv_page *p)
{
	page_set(vm, p, MV_PAGE_ALLOCATED, p->host_id);
	p->flags |= MV_PAGE_F_MONITOR_HIT;
	if (p->monitor_hits < UINT16_MAX)
		p->monitor_hits++;
	vm->st.monitor_hits++;
}

/* Make a RAM page privately writable and mark it written. */
int page_make_writable(struct mv_vm *vm, struct mv_page *p, uint64_t gfn)
{
	mv_page_id id;
	int rc = 0;

	switch (p->state) {
	case MV_PAGE_ALLOCATED:
		break;
	case MV_PAGE_WRITE_MONITORED:
		monitor_hit(vm, p);
		break;
	case MV_PAGE_ZERO:
		rc = handy_take(vm, gfn, &id);
		if (rc)
			return rc;
		page_set(vm, p, MV_PAGE_ALLOCATED, id);
		vm->st.first_touch++;
		vm_notify(vm, gfn, 1, MV_NOTIFY_BACKING);
		break;
	case MV_PAGE_SHARED:
		rc = break_cow(vm, p, gfn);
		break;
	case MV_PAGE_BALLOONED:
		rc = deflate_on_write(vm, p, gfn);
		if (!rc)
			vm_notify(vm, gfn, 1, MV_NOTIFY_BACKING);
		break;
	default:
		return -MV_EINTERNAL;
	}
	if (!rc)
		p->flags |= MV_PAGE_F_WRITTEN | MV_PAGE_F_DIRTY;
	return rc;
}

/* Back to ZERO, giving whatever backed the page to the host. */
int page_drop_backing(struct mv_vm *vm, struct mv_page *p)
{
	int rc = 0;

	switch (p->state) {
	case MV_PAGE_ALLOCATED:
	case MV_PAGE_WRITE_MONITORED:
		rc = mv_host_free(vm->host, vm->id, 1, &p->host_id);
		break;
	case MV_PAGE_SHARED:
		rc = mv_host_share_put(vm->host, vm->id, p->host_id);
		break;
	case MV_PAGE_BALLOONED:
		if (p->flags & MV_PAGE_F_BALLOON_HOST)
			rc = mv_host_balloon_deflate(vm->host, vm->id, 1);
		break;
	default:
		break;
	}
	if (rc)
		return rc;
	page_set(vm, p, MV_PAGE_ZERO, MV_ZERO_PAGE);
	page_flags_reset(p, 0);
	p->monitor_hits = 0;
	return 0;
}
