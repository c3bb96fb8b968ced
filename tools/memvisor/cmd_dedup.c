/* memvisor dedup: what page sharing achieves on raw guest RAM images.
 *
 * Each image is loaded into its own VM through the restore path (only
 * non-zero pages are allocated), the page-sharing scanner runs until a
 * round changes nothing, and the command reports the pages before and the
 * host pages after, against the best any sharing could do (the exact
 * number of distinct contents, counted from the images themselves). */
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <memvisor/host.h>
#include <memvisor/share.h>
#include <memvisor/vm.h>

#include "census.h"
#include "cmd.h"
#include "image.h"

/* Poll period of the rate-limited background scan. */
#define POLL_NS 20000000L

struct dedup_opts {
	bool json, zero_only;
	int cross_vm;
	uint64_t rate;         /* 0: scan on this thread, no limit */
	int nimages;
	char **paths;
};

/* What the VMs hold at the end. */
struct outcome {
	uint64_t pages, zero, shared, private_, shared_host;
};

struct dedup {
	struct dedup_opts o;
	struct image *img;
	int mapped;
	struct mv_host *host;
	struct mv_vm **vm;
	int nvms, added;
	struct mv_share *share;
	struct census census;
	struct outcome out;
	struct mv_share_stats st;
	double load_s, wall_s;
};

static void usage(FILE *out)
{
	fprintf(out,
"usage: memvisor dedup [--json] [--rate PAGES_PER_S] [--cross-vm on|off]\n"
"                      [--zero-only] IMAGE...\n"
"\n"
"Load each IMAGE, a raw guest RAM image (from guest-physical address 0),\n"
"into its own VM (pages of zeros stay unallocated), run the page-sharing\n"
"scanner to completion (until a whole round changes nothing) and print\n"
"what sharing achieved.\n"
"\n"
"  --json            one JSON object on one line instead of a table\n"
"  --rate N          scan in the background thread at N pages per second\n"
"                    (idle priority); without it the scan runs unlimited\n"
"  --cross-vm on|off share pages between the VMs too (default off: pages\n"
"                    are shared only within one VM, see docs/design.md)\n"
"  --zero-only       only give pages of zeros back, share nothing\n"
"\n"
"pages: guest pages of all images; zero_pages: pages left unbacked (all\n"
"zeros); host_pages: host pages backing all guest RAM at the end;\n"
"saved_pages = pages - host_pages; distinct_pages: distinct non-zero\n"
"contents over all images (the best any sharing can do); cpu_s, wall_s:\n"
"the scan's own CPU and wall seconds (loading excluded).\n"
"Exit status: 0 done, 1 runtime error (bad image, memory), 2 usage.\n");
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "memvisor dedup: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(see 'memvisor dedup --help')\n");
	return 2;
}

enum { OPT_JSON = 256, OPT_RATE, OPT_CROSS_VM, OPT_ZERO_ONLY, OPT_HELP };

static const struct option long_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "cross-vm", required_argument, NULL, OPT_CROSS_VM },
	{ "zero-only", no_argument, NULL, OPT_ZERO_ONLY },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_one(struct dedup_opts *o, int opt, const char *arg)
{
	switch (opt) {
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_ZERO_ONLY:
		o->zero_only = true;
		return 0;
	case OPT_RATE:
		if (tool_parse_number(arg, false, &o->rate) || !o->rate)
			return bad_usage("--rate: '%s' is not a number of "
					 "pages per second above 0", arg);
		return 0;
	case OPT_CROSS_VM:
		if (strcmp(arg, "on") && strcmp(arg, "off"))
			return bad_usage("--cross-vm: '%s' is not on or off",
					 arg);
		o->cross_vm = !strcmp(arg, "on");
		return 0;
	default:
		return bad_usage("bad option or missing value%s", "");
	}
}

/* 0, 2 (usage) or -1 (--help printed: exit 0). */
static int parse_options(struct dedup_opts *o, int argc, char **argv)
{
	int opt, rc;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (opt == OPT_HELP) {
			usage(stdout);
			return tool_output_finish("dedup") ? 1 : -1;
		}
		if (opt == '?')
			return bad_usage("bad option or missing value: '%s'",
					 argv[optind - 1]);
		if ((rc = parse_one(o, opt, optarg)))
			return rc;
	}
	if (optind == argc)
		return bad_usage("no IMAGE given%s", "");
	if (argc - optind > MV_HOST_MAX_VMS)
		return bad_usage("more images than VMs a host holds (%s)",
				 "4095");
	o->nimages = argc - optind;
	o->paths = argv + optind;
	return 0;
}

static int fail(const char *what, const char *path, int rc)
{
	fprintf(stderr, "memvisor dedup: %s%s%s: %s\n", path ? path : "",
		path ? ": " : "", what, mv_strerror(rc));
	return 1;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- loading ---------------------------------------------------------- */

static int map_images(struct dedup *d)
{
	uint64_t need = 0;
	struct stat st;

	d->img = calloc((size_t)d->o.nimages, sizeof(*d->img));
	if (!d->img)
		return fail("images", NULL, -MV_ENOMEM);
	for (; d->mapped < d->o.nimages; d->mapped++) {
		struct image *im = &d->img[d->mapped];

		if (image_map("dedup", d->o.paths[d->mapped], im))
			return 1;
		/* The pages that hold data (a sparse file's holes stay
		 * unallocated), which the VM copies, and the census's keys. */
		uint64_t data = im->size;

		if (!fstat(im->fd, &st) && (uint64_t)st.st_blocks * 512 < data)
			data = (uint64_t)st.st_blocks * 512;
		need += data + data / MV_PAGE_SIZE * 32;
	}
	if (need > tool_memory_available()) {
		fprintf(stderr, "memvisor dedup: the images need about %" PRIu64
			" MiB, more than this process may still fill (%" PRIu64
			" MiB)\n", need >> 20, tool_memory_available() >> 20);
		return 1;
	}
	return 0;
}

static int create_vm(struct dedup *d, const struct image *im)
{
	uint64_t size = (im->size + MV_PAGE_SIZE - 1) &
			~(uint64_t)(MV_PAGE_SIZE - 1);
	struct mv_vm_range ram = { .type = MV_PAGE_RAM, .gpa = 0,
				   .size = size, .name = "image" };
	struct mv_vm_config vc = { .ranges = &ram, .nranges = 1 };
	struct mv_vm **vm = &d->vm[d->nvms];
	int rc = mv_vm_create(d->host, &vc, vm);

	if (rc)
		return fail("a VM for the image", im->path, rc);
	d->nvms++;
	if ((rc = image_load(*vm, im, 0)))
		return fail("loading the image", im->path, rc);
	return 0;
}

static int load_vms(struct dedup *d)
{
	double t0 = now_s();
	int rc;

	d->vm = calloc((size_t)d->o.nimages, sizeof(*d->vm));
	if (!d->vm)
		return fail("VMs", NULL, -MV_ENOMEM);
	if ((rc = census_take(d->img, d->o.nimages, &d->census)))
		return fail("counting the contents", NULL, rc);
	if ((rc = mv_host_create(NULL, &d->host)))
		return fail("host pool", NULL, rc);
	for (int i = 0; i < d->o.nimages; i++)
		if (create_vm(d, &d->img[i]))
			return 1;
	d->load_s = now_s() - t0;
	return 0;
}

/* ---- scanning --------------------------------------------------------- */

static int add_vms(struct dedup *d)
{
	struct mv_share_config sc = { .cross_vm = d->o.cross_vm,
				      .rate_pages_per_s = d->o.rate };
	int rc = mv_share_create(d->host, &sc, &d->share);

	if (rc)
		return fail("the scanner", NULL, rc);
	for (; d->added < d->nvms; d->added++) {
		struct mv_share_vm_config vc = {
			.gfn = 0,
			.count = (d->img[d->added].size + MV_PAGE_SIZE - 1) /
				 MV_PAGE_SIZE,
			.zero_only = d->o.zero_only,
		};

		if ((rc = mv_share_vm_add(d->share, d->vm[d->added], &vc)))
			return fail("registering the VM", d->img[d->added].path,
				    rc);
	}
	return 0;
}

/* --rate: the background thread at idle priority, until a quiet round. */
static int scan_background(struct dedup *d)
{
	struct timespec poll = { 0, POLL_NS };
	int rc = mv_share_start(d->share);

	if (rc)
		return fail("starting the scanner thread", NULL, rc);
	do {
		nanosleep(&poll, NULL);
		rc = mv_share_get_stats(d->share, &d->st);
	} while (!rc && !d->st.quiet_rounds);
	mv_share_stop(d->share);
	return rc ? fail("scanner statistics", NULL, rc) : 0;
}

static int scan(struct dedup *d)
{
	double t0 = now_s();
	int rc;

	if (d->o.rate) {
		if (scan_background(d))
			return 1;
	} else if ((rc = mv_share_scan(d->share, 0, NULL))) {
		return fail("scanning", NULL, rc);
	}
	d->wall_s = now_s() - t0;
	if ((rc = mv_share_get_stats(d->share, &d->st)))
		return fail("scanner statistics", NULL, rc);
	return 0;
}

/* ---- the outcome ------------------------------------------------------ */

static int cmp_id(const void *a, const void *b)
{
	mv_page_id x = *(const mv_page_id *)a, y = *(const mv_page_id *)b;

	return x < y ? -1 : x > y;
}

/* Count one VM's pages; its shared host pages are appended to @ids. */
static void count_vm(struct mv_vm *vm, uint64_t pages, struct outcome *o,
		     mv_page_id *ids, uint64_t *nids)
{
	mv_vm_lock(vm);
	for (uint64_t g = 0; g < pages; g++) {
		const struct mv_page *p = mv_vm_page(vm, g);

		switch (mv_page_state(p)) {
		case MV_PAGE_ZERO:
		case MV_PAGE_BALLOONED:
			o->zero++;
			break;
		case MV_PAGE_SHARED:
			o->shared++;
			ids[(*nids)++] = mv_page_host_id(p);
			break;
		default:
			o->private_++;
			break;
		}
	}
	mv_vm_unlock(vm);
	o->pages += pages;
}

static int count_outcome(struct dedup *d)
{
	mv_page_id *ids = malloc(sizeof(*ids) * (d->census.pages -
						  d->census.zero_pages + 1));
	uint64_t nids = 0;

	if (!ids)
		return fail("counting the pages", NULL, -MV_ENOMEM);
	for (int i = 0; i < d->nvms; i++)
		count_vm(d->vm[i], (d->img[i].size + MV_PAGE_SIZE - 1) /
				   MV_PAGE_SIZE, &d->out, ids, &nids);
	qsort(ids, nids, sizeof(*ids), cmp_id);
	for (uint64_t i = 0; i < nids; i++)
		d->out.shared_host += !i || ids[i] != ids[i - 1];
	free(ids);
	return 0;
}

static void print_json(const struct dedup *d)
{
	const struct outcome *o = &d->out;
	uint64_t host = o->private_ + o->shared_host;

	printf("{\"vms\": %d, \"pages\": %" PRIu64 ", \"zero_pages\": %" PRIu64
	       ", \"shared_guest_pages\": %" PRIu64 ", \"host_pages\": %" PRIu64
	       ", \"saved_pages\": %" PRIu64 ", \"distinct_pages\": %" PRIu64
	       ", \"cpu_s\": %.6f, \"wall_s\": %.6f", d->nvms, o->pages, o->zero,
	       o->shared, host, o->pages - host, d->census.distinct,
	       (double)d->st.cpu_ns / 1e9, d->wall_s);
	printf(", \"private_pages\": %" PRIu64 ", \"shared_host_pages\": %"
	       PRIu64 ", \"image_zero_pages\": %" PRIu64
	       ", \"distinct_within_vms\": %" PRIu64 ", \"merged\": %" PRIu64
	       ", \"zero_reclaimed\": %" PRIu64 ", \"extra_copies\": %" PRIu64
	       ", \"rounds\": %" PRIu64 ", \"max_sharing\": %u, \"cross_vm\": "
	       "%s, \"zero_only\": %s, \"rate\": %" PRIu64 ", \"load_s\": %.6f}\n",
	       o->private_, o->shared_host, d->census.zero_pages,
	       d->census.distinct_per_vm, d->st.merged, d->st.zero_reclaimed,
	       d->st.extra_copies, d->st.rounds, MV_SHARE_MAX_SHARING_DEFAULT,
	       d->o.cross_vm ? "true" : "false",
	       d->o.zero_only ? "true" : "false", d->o.rate, d->load_s);
}

static void row(const char *name, uint64_t v, uint64_t of)
{
	printf("  %-22s %12" PRIu64, name, v);
	if (of)
		printf("  %5.1f%%", 100.0 * (double)v / (double)of);
	printf("\n");
}

static void print_table(const struct dedup *d)
{
	const struct outcome *o = &d->out;
	uint64_t host = o->private_ + o->shared_host;

	printf("memvisor dedup: %d VMs, cross-VM sharing %s%s\n", d->nvms,
	       d->o.cross_vm ? "on" : "off",
	       d->o.zero_only ? ", zero pages only" : "");
	row("guest pages", o->pages, 0);
	row("zero pages", o->zero, o->pages);
	row("shared guest pages", o->shared, o->pages);
	row("private pages", o->private_, o->pages);
	row("host pages", host, o->pages);
	row("saved pages", o->pages - host, o->pages);
	row("distinct contents", d->census.distinct, o->pages);
	row("  within each VM", d->census.distinct_per_vm, o->pages);
	row("extra copies (limit)", d->st.extra_copies, 0);
	row("rounds", d->st.rounds, 0);
	printf("  %-22s %12.3f\n  %-22s %12.3f\n  %-22s %12.3f\n", "scan cpu s",
	       (double)d->st.cpu_ns / 1e9, "scan wall s", d->wall_s,
	       "load wall s", d->load_s);
}

static void teardown(struct dedup *d)
{
	for (int i = 0; i < d->added; i++)
		mv_share_vm_remove(d->share, d->vm[i]);
	mv_share_destroy(d->share);
	for (int i = 0; i < d->nvms; i++)
		mv_vm_destroy(d->vm[i]);
	mv_host_destroy(d->host);
	for (int i = 0; i < d->mapped; i++)
		image_unmap(&d->img[i]);
	free(d->vm);
	free(d->img);
}

static int dedup_main(int argc, char **argv)
{
	struct dedup d;
	int rc;

	memset(&d, 0, sizeof(d));
	rc = parse_options(&d.o, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	image_catch_sigbus("dedup");
	rc = map_images(&d) || load_vms(&d) || add_vms(&d) || scan(&d) ||
	     count_outcome(&d);
	if (!rc) {
		if (d.o.json)
			print_json(&d);
		else
			print_table(&d);
	}
	teardown(&d);
	return tool_output_finish("dedup") || rc ? 1 : 0;
}

const struct mv_cmd mv_cmd_dedup = {
	.name = "dedup",
	.summary = "share equal pages of RAM images, report the saving",
	.main = dedup_main,
};
