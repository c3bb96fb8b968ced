/* Descriptor arrays that cost nothing until used.
 *
 * A range's 16-byte descriptors live in anonymous MAP_NORESERVE memory:
 * the kernel hands out a page of descriptors (256 guest pages' worth) only
 * when one of them is first written, and a read of an untouched page maps
 * its shared zero page. An all-zero descriptor is an untouched RAM page:
 * state ZERO, type RAM, host id NIL (read as the zero page), no handler,
 * no flags. So creating a 1 TiB VM writes nothing per page, and its
 * start-up time does not depend on its size.
 *
 * What must visit every page that holds something (destruction, reset,
 * range removal) would still read every descriptor. A bitmap per range,
 * one bit per descriptor page, records the pages where some descriptor
 * left the ZERO state (page_set marks it); those walks skip the rest. A
 * bit is never cleared: a page of descriptors stays "maybe used". ROM and
 * MMIO ranges have no bitmap: their descriptors are written at creation
 * and every walk visits all of them. The bitmap, not mincore(), decides
 * what is walked: the kernel's residency says nothing about swapped-out
 * pages. */
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vm_internal.h"

#define BLOCK_PAGES (MV_PAGE_SIZE / sizeof(struct mv_page))  /* 256 */

static uint64_t desc_bytes(uint64_t npages)
{
	return (npages * sizeof(struct mv_page) + MV_PAGE_SIZE - 1) &
	       ~(uint64_t)(MV_PAGE_SIZE - 1);
}

static uint64_t bitmap_words(uint64_t npages)
{
	return (npages + BLOCK_PAGES * 64 - 1) / (BLOCK_PAGES * 64);
}

int desc_alloc(struct phys_range *r)
{
	void *p = mmap(NULL, desc_bytes(r->npages), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return -MV_ENOMEM;
	r->pages = p;
	if (r->type != MV_PAGE_RAM)
		return 0;
	/* Large callocs come from fresh mmap memory: untouched, too. */
	r->touched = calloc(bitmap_words(r->npages), sizeof(uint64_t));
	if (!r->touched) {
		desc_free(r);
		return -MV_ENOMEM;
	}
	return 0;
}

void desc_free(struct phys_range *r)
{
	if (r->pages)
		munmap(r->pages, desc_bytes(r->npages));
	free(r->touched);
	r->pages = NULL;
	r->touched = NULL;
}

/* The first descriptor at or after @i in a page that may hold a non-ZERO
 * descriptor; r->npages when there is none. */
uint64_t desc_next_used(const struct phys_range *r, uint64_t i)
{
	uint64_t b, w, bits;

	if (!r->touched || i >= r->npages)
		return i < r->npages ? i : r->npages;
	b = i / BLOCK_PAGES;
	w = b / 64;
	bits = r->touched[w] & (~0ull << (b % 64));
	while (!bits) {
		if (++w >= bitmap_words(r->npages))
			return r->npages;
		bits = r->touched[w];
	}
	b = w * 64 + (uint64_t)__builtin_ctzll(bits);
	i = b == i / BLOCK_PAGES ? i : b * BLOCK_PAGES;
	return i < r->npages ? i : r->npages;
}

/* Bytes of @r's descriptors the kernel has mapped (mincore), plus the
 * bitmap. An upper bound on what they hold: a descriptor page that was
 * only ever read is mapped to the kernel's zero page and counted. */
uint64_t desc_resident_bytes(const struct phys_range *r)
{
	uint64_t pages = desc_bytes(r->npages) / MV_PAGE_SIZE, n = 0;
	unsigned char vec[4096];

	for (uint64_t off = 0; off < pages; off += sizeof(vec)) {
		uint64_t k = pages - off < sizeof(vec) ? pages - off
						      : sizeof(vec);

		if (mincore((uint8_t *)r->pages + off * MV_PAGE_SIZE,
			    k * MV_PAGE_SIZE, vec)) {
			n += k;     /* cannot tell: count them */
			continue;
		}
		for (uint64_t j = 0; j < k; j++)
			n += vec[j] & 1;
	}
	return n * MV_PAGE_SIZE +
	       (r->touched ? bitmap_words(r->npages) * sizeof(uint64_t) : 0);
}

uint64_t desc_reserved_bytes(const struct phys_range *r)
{
	return desc_bytes(r->npages);
}

/* ---- from a descriptor to its range's bitmap ------------------------- */

static int span_cmp(const void *a, const void *b)
{
	const struct desc_span *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Rebuild the address-sorted index of the RAM ranges' descriptor arrays
 * (after any change of the range array; vm->spans has room for
 * vm->nranges entries). */
void desc_spans_rebuild(struct mv_vm *vm)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < vm->nranges; i++) {
		struct phys_range *r = &vm->ranges[i];

		if (!r->touched)
			continue;
		vm->spans[n++] = (struct desc_span){
			.lo = r->pages, .n = r->npages, .touched = r->touched };
	}
	qsort(vm->spans, n, sizeof(*vm->spans), span_cmp);
	vm->nspans = n;
}

/* Room for @n spans, so that a rebuild never allocates. */
int desc_spans_reserve(struct mv_vm *vm, uint32_t n)
{
	struct desc_span *s;

	if (n <= vm->spans_cap)
		return 0;
	s = realloc(vm->spans, n * sizeof(*s));
	if (!s)
		return -MV_ENOMEM;
	vm->spans = s;
	vm->spans_cap = n;
	return 0;
}

/* @p (a descriptor of this VM) may now hold a page that is not ZERO. */
void desc_mark_page(struct mv_vm *vm, const struct mv_page *p)
{
	uint32_t lo = 0, hi = vm->nspans;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct desc_span *s = &vm->spans[mid];

		if (p < s->lo) {
			hi = mid;
		} else if ((uint64_t)(p - s->lo) >= s->n) {
			lo = mid + 1;
		} else {
			uint64_t b = (uint64_t)(p - s->lo) / BLOCK_PAGES;

			s->touched[b / 64] |= 1ull << (b % 64);
			return;
		}
	}
}
