/* Exact page census of raw images (census.h): every non-zero page gets a
 * (image, hash, pointer) key; sorted by hash, then by content, equal
 * contents are neighbours and each run of them is one distinct content.
 * A second order, image first, counts the contents within each image. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include <memvisor/error.h>
#include <memvisor/host.h>

#include "census.h"

struct key {
	uint64_t hash;
	const uint8_t *page;
	uint32_t image;
};

static int cmp_content(const struct key *x, const struct key *y)
{
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return memcmp(x->page, y->page, MV_PAGE_SIZE);
}

static int by_content(const void *a, const void *b)
{
	return cmp_content(a, b);
}

static int by_image_content(const void *a, const void *b)
{
	const struct key *x = a, *y = b;

	if (x->image != y->image)
		return x->image < y->image ? -1 : 1;
	return cmp_content(x, y);
}

/* Runs of equal contents (within one image when @per_image). */
static uint64_t count_runs(const struct key *k, uint64_t n, bool per_image)
{
	uint64_t runs = 0;

	for (uint64_t i = 0; i < n; i++)
		if (!i || (per_image && k[i].image != k[i - 1].image) ||
		    cmp_content(&k[i], &k[i - 1]))
			runs++;
	return runs;
}

static bool all_zero(const uint8_t *p)
{
	static const uint8_t zero[MV_PAGE_SIZE];

	return !memcmp(p, zero, MV_PAGE_SIZE);
}

struct take {
	const struct image *img;
	uint32_t image;
	uint8_t *tail;           /* the padded partial last page */
	struct key *k;
	uint64_t n, cap;
};

static int add_key(struct take *t, const uint8_t *p)
{
	if (t->n == t->cap) {
		uint64_t cap = t->cap ? t->cap * 2 : 4096;
		struct key *k = realloc(t->k, sizeof(*k) * cap);

		if (!k)
			return -MV_ENOMEM;
		t->k = k;
		t->cap = cap;
	}
	t->k[t->n++] = (struct key){ XXH3_64bits(p, MV_PAGE_SIZE), p,
				     t->image };
	return 0;
}

static int take_extent(void *opaque, uint64_t off, uint64_t end)
{
	struct take *t = opaque;
	const uint8_t *mem = t->img->mem;
	int rc = 0;

	for (; !rc && off < end; off += MV_PAGE_SIZE) {
		const uint8_t *p = mem + off;

		if (end - off < MV_PAGE_SIZE) {
			memset(t->tail, 0, MV_PAGE_SIZE);
			memcpy(t->tail, p, end - off);
			p = t->tail;
		}
		if (!all_zero(p))
			rc = add_key(t, p);
	}
	return rc;
}

int census_take(const struct image *imgs, int n, struct census *c)
{
	/* One padded tail per image: the keys point into them. */
	uint8_t *tails = calloc((size_t)n, MV_PAGE_SIZE);
	struct take t = { 0 };
	int rc = tails ? 0 : -MV_ENOMEM;

	memset(c, 0, sizeof(*c));
	for (int i = 0; !rc && i < n; i++) {
		t.img = &imgs[i];
		t.image = (uint32_t)i;
		t.tail = tails + (size_t)i * MV_PAGE_SIZE;
		c->pages += (imgs[i].size + MV_PAGE_SIZE - 1) / MV_PAGE_SIZE;
		rc = image_each_extent(&imgs[i], take_extent, &t);
	}
	if (!rc) {
		c->zero_pages = c->pages - t.n;
		qsort(t.k, t.n, sizeof(*t.k), by_content);
		c->distinct = count_runs(t.k, t.n, false);
		qsort(t.k, t.n, sizeof(*t.k), by_image_content);
		c->distinct_per_vm = count_runs(t.k, t.n, true);
	}
	free(t.k);
	free(tails);
	return rc;
}
