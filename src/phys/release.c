/* What a page's backing gives back when the page goes (a range removed)
 * or becomes ZERO (a VM reset), collected so that the pool is called once
 * per batch. The caller changes the descriptor itself: a reset makes it
 * ZERO, a removal only fixes the counters before the array goes. */
#include "vm_internal.h"

void page_release_init(struct page_release *b, bool keep)
{
	b->n = 0;
	b->keep = keep;
	b->ballooned = 0;
	b->rc = 0;
}

static int keep_first(struct page_release *b, int rc)
{
	if (rc && !b->rc)
		b->rc = rc;
	return rc;
}

/* Private pages to the handy cache (the VM goes on) or to the pool. */
static int release_flush(struct mv_vm *vm, struct page_release *b)
{
	int rc = 0;

	if (b->n)
		rc = b->keep ? handy_give(vm, b->ids, b->n)
			     : mv_host_free(vm->host, vm->id, b->n, b->ids);
	b->n = 0;
	return keep_first(b, rc);
}

int page_release_add(struct mv_vm *vm, struct page_release *b,
		     const struct mv_page *p)
{
	switch (p->state) {
	case MV_PAGE_ALLOCATED:
	case MV_PAGE_WRITE_MONITORED:
		b->ids[b->n++] = p->host_id;
		return b->n == RELEASE_BATCH ? release_flush(vm, b) : 0;
	case MV_PAGE_SHARED:
		return keep_first(b, mv_host_share_put(vm->host, vm->id,
						       p->host_id));
	case MV_PAGE_BALLOONED:
		/* the host's charge is given back once, in page_release_end */
		b->ballooned += !!(p->flags & MV_PAGE_F_BALLOON_HOST);
		return 0;
	default:
		return 0;
	}
}

int page_release_end(struct mv_vm *vm, struct page_release *b)
{
	release_flush(vm, b);
	if (b->ballooned)
		keep_first(b, mv_host_balloon_deflate(vm->host, vm->id,
						      b->ballooned));
	b->ballooned = 0;
	return b->rc;
}
