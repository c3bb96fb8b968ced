/* dedup_expect: what a complete page-sharing scan must leave of raw guest
 * RAM images, computed exactly (pages compared with memcmp, the hash only
 * orders them):
 *   dedup_expect [-m MAX_SHARING] [-x on|off] [-v] IMAGE...
 * prints one line
 *   pages=P zero_pages=Z distinct_pages=D host_pages=H shared_guest_pages=S
 *   distinct_within_images=W images=N
 * P: 4 KiB pages of all images; Z: all-zero pages (they cost no host
 * page); D: distinct non-zero contents over all images; H: the host pages
 * a scanner with at most M sharers per shared page (default 256) must end
 * on: the sum over contents of ceil(k / M), k = the content's occurrences
 * over all images (-x on: the images share one group), or within each
 * image, summed over the images (-x off, the default); S: the guest pages
 * on a host page with other sharers (each sharing group's copies fill
 * their host pages to M in turn; a rest of one copy stays private). -m 1
 * is no sharing at all: H = P - Z, S = 0. W: the distinct non-zero
 * contents of each image, summed over the images (the best sharing within
 * each image alone can do). -v adds, on stderr, the counts per image and the most
 * frequent contents with where they first occur.
 * Exit 1 for an unreadable image or one whose size is not a multiple of
 * 4 KiB, 2 for usage errors.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define PAGE 4096u

struct ref {
	uint64_t hash;
	uint32_t img, page;
};

static const unsigned char **images;

static const unsigned char *page_of(const struct ref *r)
{
	return images[r->img] + (size_t)r->page * PAGE;
}

static int all_zero(const unsigned char *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned i = 0; i < PAGE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

/* Any well-mixed 64-bit function will do: equal hashes are compared with
 * memcmp, so a collision costs time, never a wrong count. */
static uint64_t hash_page(const unsigned char *p)
{
	const uint64_t *w = (const uint64_t *)p;
	uint64_t h = 0x9e3779b97f4a7c15ull;

	for (unsigned i = 0; i < PAGE / 8; i++) {
		h ^= w[i] + 0x632be59bd9b4e019ull + (h << 6) + (h >> 2);
		h *= 0xff51afd7ed558ccdull;
	}
	return h ^ (h >> 33);
}

/* Equal contents end adjacent: by hash, then bytes; the location only
 * makes the order total. */
static int cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	int c;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	c = memcmp(page_of(x), page_of(y), PAGE);
	if (c)
		return c;
	if (x->img != y->img)
		return x->img < y->img ? -1 : 1;
	return x->page < y->page ? -1 : x->page > y->page;
}

static const unsigned char *map_image(const char *path, uint64_t *pages)
{
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		exit(1);
	}
	if (st.st_size <= 0 || st.st_size % PAGE ||
	    (uint64_t)st.st_size / PAGE > UINT32_MAX) {
		fprintf(stderr, "%s: size %lld is not a positive multiple of 4096\n",
			path, (long long)st.st_size);
		exit(1);
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		perror(path);
		exit(1);
	}
	close(fd);
	*pages = (uint64_t)st.st_size / PAGE;
	return p;
}

static uint64_t ceil_div(uint64_t k, uint64_t m)
{
	return (k + m - 1) / m;
}

struct outcome {
	uint64_t host;   /* host pages */
	uint64_t shared; /* guest pages on a host page with other sharers */
	uint64_t within; /* distinct contents of each image, summed */
};

/* k copies of one content in one sharing group, at most @max per host
 * page: full pages and one for the rest; a rest of one copy stays
 * private. */
static void add_copies(struct outcome *o, uint64_t k, uint64_t max)
{
	o->host += ceil_div(k, max);
	if (max > 1)
		o->shared += k - (k % max == 1);
}

/* One content, refs[0..n) (sorted, so by image). */
static void add_content(struct outcome *o, const struct ref *refs, size_t n,
			uint64_t max, int cross_vm)
{
	size_t i = 0, j;

	if (cross_vm)
		add_copies(o, n, max);
	for (; i < n; i = j) {
		for (j = i; j < n && refs[j].img == refs[i].img; j++)
			;
		if (!cross_vm)
			add_copies(o, j - i, max);
		o->within++;
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: dedup_expect [-m MAX_SHARING] [-x on|off] [-v] IMAGE...\n");
	exit(2);
}

static void show_top(const struct ref *refs, size_t n)
{
	size_t best[5] = { 0 }, bestn[5] = { 0 }, i = 0, j, k;

	while (i < n) {
		for (j = i + 1; j < n && refs[j].hash == refs[i].hash &&
		     !memcmp(page_of(&refs[j]), page_of(&refs[i]), PAGE); j++)
			;
		for (k = 0; k < 5 && bestn[k] >= j - i; k++)
			;
		if (k < 5) {
			memmove(best + k + 1, best + k, (4 - k) * sizeof(*best));
			memmove(bestn + k + 1, bestn + k, (4 - k) * sizeof(*bestn));
			best[k] = i;
			bestn[k] = j - i;
		}
		i = j;
	}
	for (k = 0; k < 5 && bestn[k]; k++) {
		const unsigned char *p = page_of(&refs[best[k]]);

		fprintf(stderr, "content %zu: %zu copies, first in image %u page 0x%x,"
			" bytes %02x %02x %02x %02x %02x %02x %02x %02x ...\n",
			k + 1, bestn[k], refs[best[k]].img + 1, refs[best[k]].page,
			p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7]);
	}
}

int main(int argc, char **argv)
{
	uint64_t max = 256, total = 0, zero = 0, distinct = 0;
	struct outcome o = { 0, 0, 0 };
	uint64_t *pages;
	int opt, cross_vm = 0, verbose = 0, nimg;
	struct ref *refs;
	size_t n = 0, i, j;
	char *end;

	while ((opt = getopt(argc, argv, "m:x:v")) != -1) {
		switch (opt) {
		case 'm':
			max = strtoull(optarg, &end, 10);
			if (*end || !max)
				usage();
			break;
		case 'x':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				usage();
			cross_vm = !strcmp(optarg, "on");
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	nimg = argc - optind;
	if (nimg < 1)
		usage();
	images = calloc((size_t)nimg, sizeof(*images));
	pages = calloc((size_t)nimg, sizeof(*pages));
	if (!images || !pages)
		return 1;
	for (int m = 0; m < nimg; m++) {
		images[m] = map_image(argv[optind + m], &pages[m]);
		total += pages[m];
	}
	refs = malloc(total * sizeof(*refs));
	if (!refs)
		return 1;
	for (int m = 0; m < nimg; m++) {
		uint64_t z = 0;

		for (uint64_t p = 0; p < pages[m]; p++) {
			struct ref r = { 0, (uint32_t)m, (uint32_t)p };

			if (all_zero(page_of(&r))) {
				z++;
				continue;
			}
			r.hash = hash_page(page_of(&r));
			refs[n++] = r;
		}
		zero += z;
		if (verbose)
			fprintf(stderr, "image %d: %llu pages, %llu zero\n", m + 1,
				(unsigned long long)pages[m], (unsigned long long)z);
	}
	qsort(refs, n, sizeof(*refs), cmp_ref);
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && refs[j].hash == refs[i].hash &&
		     !memcmp(page_of(&refs[j]), page_of(&refs[i]), PAGE); j++)
			;
		distinct++;
		add_content(&o, refs + i, j - i, max, cross_vm);
	}
	if (verbose)
		show_top(refs, n);
	printf("pages=%llu zero_pages=%llu distinct_pages=%llu host_pages=%llu"
	       " shared_guest_pages=%llu distinct_within_images=%llu images=%d\n",
	       (unsigned long long)total, (unsigned long long)zero,
	       (unsigned long long)distinct, (unsigned long long)o.host,
	       (unsigned long long)o.shared, (unsigned long long)o.within, nimg);
	return 0;
}
