/* mv_vm_phys_read / mv_vm_phys_write: the slow, complete path. The span
 * is checked as a whole first, then walked page by page; each piece goes
 * to the page's handler, its MMIO range or its memory. */
#include <string.h>

#include "vm_internal.h"

static uint64_t page_off(uint64_t gpa)
{
	return gpa & (MV_PAGE_SIZE - 1);
}

/* Run the page's handler; MV_HANDLER_DEFAULT asks for the plain access. */
static int call_handler(struct mv_vm *vm, uint64_t gpa, void *buf, size_t len,
			enum mv_access acc)
{
	const struct phys_handler *h = handler_find(vm, gpa >> MV_PAGE_SHIFT);
	mv_phys_handler_fn fn;
	void *opaque;
	int rc;

	if (!h)
		return MV_HANDLER_DEFAULT;
	fn = h->fn;
	opaque = h->opaque;
	rc = fn(opaque, vm, gpa, buf, len, acc);
	if (rc < 0 || rc == MV_HANDLER_DEFAULT)
		return rc;
	return MV_HANDLER_DONE;
}

static int read_default(struct mv_vm *vm, const struct phys_range *r,
			const struct mv_page *p, uint64_t gpa, void *buf,
			size_t len)
{
	const uint8_t *src;

	if (r->type == MV_PAGE_MMIO) {
		if (!r->read) {
			memset(buf, 0xff, len);
			return 0;
		}
		int rc = r->read(r->opaque,
				 gpa - (r->first_gfn << MV_PAGE_SHIFT), buf,
				 len);
		return rc < 0 ? rc : 0;
	}
	src = page_read_ptr(vm, p);
	if (!src)
		return -MV_EINTERNAL;
	memmove(buf, src + page_off(gpa), len);  /* @buf may be guest memory */
	return 0;
}

static int write_default(struct mv_vm *vm, const struct phys_range *r,
			 struct mv_page *p, uint64_t gpa, const void *buf,
			 size_t len)
{
	uint8_t *dst;
	int rc;

	if (r->type == MV_PAGE_MMIO) {
		if (!r->write)
			return 0;
		rc = r->write(r->opaque, gpa - (r->first_gfn << MV_PAGE_SHIFT),
			      buf, len);
		return rc < 0 ? rc : 0;
	}
	if (r->type == MV_PAGE_ROM)
		return 0;
	rc = page_make_writable(vm, p, gpa >> MV_PAGE_SHIFT);
	if (rc)
		return rc;
	dst = vm_page_ptr(vm, p->host_id);
	if (!dst)
		return -MV_EINTERNAL;
	/* The source may be this very page (a pointer from gpa_to_hva). */
	memmove(dst + page_off(gpa), buf, len);
	track_written(vm, p, gpa, dst + page_off(gpa), len);
	return 0;
}

/* The range and descriptor of @gpa, looked up again after every callback:
 * an MMIO or handler callback may add or remove ranges (a device moving
 * its BAR), which moves the range array. A range gone since the span was
 * checked ends the access with -MV_ERANGE. */
static int piece_find(struct mv_vm *vm, uint64_t gpa, struct phys_range **r,
		      struct mv_page **p)
{
	uint64_t gfn = gpa >> MV_PAGE_SHIFT;

	*r = range_find(vm, gfn);
	if (!*r)
		return -MV_ERANGE;
	*p = &(*r)->pages[gfn - (*r)->first_gfn];
	return 0;
}

static int read_piece(struct mv_vm *vm, uint64_t gpa, void *buf, size_t len)
{
	struct phys_range *r;
	struct mv_page *p;
	int rc = piece_find(vm, gpa, &r, &p);

	if (!rc && p->hstate == MV_HSTATE_ALL) {
		rc = call_handler(vm, gpa, buf, len, MV_ACCESS_READ);
		if (rc != MV_HANDLER_DEFAULT)
			return rc;
		rc = piece_find(vm, gpa, &r, &p);
	}
	return rc ? rc : read_default(vm, r, p, gpa, buf, len);
}

static int write_piece(struct mv_vm *vm, uint64_t gpa, const void *buf,
		       size_t len)
{
	struct phys_range *r;
	struct mv_page *p;
	uint8_t bounce[MV_PAGE_SIZE];
	int rc = piece_find(vm, gpa, &r, &p);

	if (!rc && p->hstate >= MV_HSTATE_WRITE) {
		/* The handler may rewrite the data it lets through. */
		memcpy(bounce, buf, len);
		rc = call_handler(vm, gpa, bounce, len, MV_ACCESS_WRITE);
		if (rc != MV_HANDLER_DEFAULT)
			return rc;
		buf = bounce;
		rc = piece_find(vm, gpa, &r, &p);
	}
	return rc ? rc : write_default(vm, r, p, gpa, buf, len);
}

/* Split [gpa, gpa + len) at page boundaries and apply @piece to each. */
static int walk(struct mv_vm *vm, uint64_t gpa, uint8_t *buf, size_t len,
		int write)
{
	int rc = 0;

	while (!rc && len) {
		size_t n = MV_PAGE_SIZE - page_off(gpa);

		if (n > len)
			n = len;
		rc = write ? write_piece(vm, gpa, buf, n)
			   : read_piece(vm, gpa, buf, n);
		gpa += n;
		buf += n;
		len -= n;
	}
	return rc;
}

int mv_vm_phys_read(struct mv_vm *vm, uint64_t gpa, void *buf, size_t len)
{
	int rc;

	if (!vm || (!buf && len))
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 0);
	if (!rc)
		rc = span_check(vm, gpa, len);
	if (!rc)
		rc = walk(vm, gpa, buf, len, 0);
	mv_vm_unlock(vm);
	return rc;
}

/* Pages and source are settled first (write_plan.c): an allocation
 * refusal then fails the write before its first byte. */
int mv_vm_phys_write(struct mv_vm *vm, uint64_t gpa, const void *buf,
		     size_t len)
{
	struct write_plan wp;
	int rc;

	if (!vm || (!buf && len))
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_busy(vm, 1);
	if (!rc)
		rc = span_check(vm, gpa, len);
	if (!rc)
		rc = write_plan_begin(vm, gpa, &buf, len, &wp);
	if (!rc) {
		rc = walk(vm, gpa, (uint8_t *)buf, len, 1);
		write_plan_end(vm, &wp);
	}
	mv_vm_unlock(vm);
	return rc;
}
