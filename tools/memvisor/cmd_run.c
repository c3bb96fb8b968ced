/* memvisor run: a host under over-commitment, step by step.
 *
 * Several VM accounts reserve more than the host budget together, fill
 * their pages, hit the budget, balloon, share identical pages, shut down
 * and defragment, while the process's real RSS is printed after each step.
 * Each step is one function taking the demo state, so that further steps
 * (guest-physical memory, the MMU) slot in between. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include <memvisor/host.h>

#include "cmd.h"
#include "run_guest.h"

#define BATCH 512u

struct demo_vm {
	mv_vmid id;
	mv_page_id *map;     /* gfn -> host page (private or shared) */
	bool *shared;        /* gfn is backed by a shared page */
	uint64_t present;    /* gfns backed by a private page */
	bool alive;
};

struct demo {
	uint32_t nvms;
	uint64_t pages;      /* guest RAM per VM */
	uint64_t budget;
	uint64_t common;     /* leading gfns identical in every VM */
	struct mv_host *host;
	struct demo_vm *vm;
};

/* ---- reporting ---------------------------------------------------------- */

static long status_kib(const char *field)
{
	char line[256];
	long v = -1;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n))
			v = strtol(line + n, NULL, 10);
	fclose(f);
	return v;
}

/* One line per step, ending in the measured RSS (cli_run.sh parses it). */
static void report(struct demo *d, const char *step, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void report(struct demo *d, const char *step, const char *fmt, ...)
{
	struct mv_host_stats st;
	va_list ap;

	mv_host_get_stats(d->host, &st);
	printf("%-10s ", step);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n           in use %llu pages, %llu chunks | rss %ld KiB "
	       "(shmem %ld KiB) | pool memfd %llu KiB\n",
	       (unsigned long long)(st.private_pages + st.shared_pages),
	       (unsigned long long)st.chunks, status_kib("VmRSS:"),
	       status_kib("RssShmem:"),
	       (unsigned long long)(st.memfd_bytes >> 10));
}

/* ---- guest content ------------------------------------------------------ */

/* Word @i of frame @gfn of VM @v. The first d->common frames are the same
 * in every guest (think: the same kernel image); the rest differ per VM. */
static uint64_t frame_word(const struct demo *d, uint32_t v, uint64_t gfn,
			   unsigned i)
{
	uint64_t seed = gfn < d->common ? gfn : (uint64_t)(v + 1) << 40 | gfn;

	return seed * 0x9e3779b97f4a7c15ull + i;
}

static void write_frame(struct demo *d, uint32_t v, uint64_t gfn)
{
	uint64_t *p = mv_host_page_ptr(d->host, d->vm[v].map[gfn]);

	for (unsigned i = 0; i < MV_PAGE_SIZE / 8; i += 8)
		p[i] = frame_word(d, v, gfn, i);
}

/* ---- the mover: how this "VMM" lets the pool move its pages ------------- */

static int demo_move(void *opaque, mv_vmid vm, uint64_t gfn, mv_page_id old_id,
		     mv_page_id new_id)
{
	struct demo *d = opaque;
	struct demo_vm *v = &d->vm[vm - 1];

	if (gfn >= d->pages || v->map[gfn] != old_id || v->shared[gfn])
		return -1;
	if (mv_host_page_copy(d->host, new_id, old_id))
		return -1;
	v->map[gfn] = new_id;
	return 0;
}

/* ---- steps -------------------------------------------------------------- */

static int step_create(struct demo *d)
{
	struct mv_host_config cfg = { .budget_pages = d->budget,
				      .overcommit = MV_OVERCOMMIT_ALLOW,
				      .empty_chunk_cache = 1 };
	struct mv_reservation res = { .base = d->pages };
	int rc = mv_host_create(&cfg, &d->host);

	for (uint32_t v = 0; !rc && v < d->nvms; v++) {
		rc = mv_host_vm_create(d->host, &res, &d->vm[v].id);
		if (!rc)
			rc = mv_host_vm_set_mover(d->host, d->vm[v].id, demo_move, d);
		d->vm[v].alive = !rc;
	}
	if (rc)
		return rc;
	report(d, "create", "%u VMs reserve %llu pages each: %llu in all against "
	       "a budget of %llu%s", d->nvms, (unsigned long long)d->pages,
	       (unsigned long long)(d->pages * d->nvms),
	       (unsigned long long)d->budget, d->budget ? "" : " (no limit)");
	return 0;
}

/* Allocate and fill @v's missing frames, batch by batch, until done or the
 * budget stops it. Returns 0, -MV_EBUDGET, or another error. */
static int fill_vm(struct demo *d, uint32_t v)
{
	struct demo_vm *vm = &d->vm[v];
	uint64_t gfns[BATCH];
	mv_page_id ids[BATCH];
	uint64_t gfn = 0;

	while (gfn < d->pages) {
		uint32_t n = 0;

		for (; gfn < d->pages && n < BATCH; gfn++)
			if (!vm->map[gfn])
				gfns[n++] = gfn;
		if (!n)
			break;
		int rc = mv_host_alloc(d->host, vm->id, MV_ACCOUNT_BASE, n, gfns,
				       0, ids);
		if (rc)
			return rc;
		for (uint32_t i = 0; i < n; i++) {
			vm->map[gfns[i]] = ids[i];
			write_frame(d, v, gfns[i]);
		}
		vm->present += n;
	}
	return 0;
}

static int step_boot(struct demo *d)
{
	for (uint32_t v = 0; v < d->nvms; v++) {
		int rc = fill_vm(d, v);

		if (rc == -MV_EBUDGET) {
			report(d, "boot", "vm %u: allocation refused: %s (-MV_EBUDGET) "
			       "with %llu of %llu pages", d->vm[v].id,
			       mv_strerror(rc), (unsigned long long)d->vm[v].present,
			       (unsigned long long)d->pages);
			continue;
		}
		if (rc)
			return rc;
		report(d, "boot", "vm %u wrote all %llu of its pages", d->vm[v].id,
		       (unsigned long long)d->pages);
	}
	return 0;
}

/* Free or balloon the private pages of gfns [first, end) of VM @v. */
static int drop_range(struct demo *d, uint32_t v, uint64_t first, uint64_t end,
		      bool balloon)
{
	struct demo_vm *vm = &d->vm[v];
	mv_page_id ids[BATCH];
	uint64_t n = 0, total = 0;
	int rc = 0;

	for (uint64_t gfn = first; gfn < end && !rc; gfn++) {
		if (vm->map[gfn] && !vm->shared[gfn]) {
			ids[n++] = vm->map[gfn];
			vm->map[gfn] = MV_NIL_PAGE;
		}
		if (n == BATCH || (gfn + 1 == end && n)) {
			rc = balloon ? mv_host_balloon_inflate(d->host, vm->id,
							       (uint32_t)n, ids)
				     : mv_host_free(d->host, vm->id, (uint32_t)n, ids);
			total += n;
			n = 0;
		}
	}
	vm->present -= total;
	return rc;
}

static int step_balloon(struct demo *d)
{
	uint64_t half = d->pages / 2;
	int rc = drop_range(d, 0, d->pages - half, d->pages, true);

	if (rc)
		return rc;
	report(d, "balloon", "vm %u inflated its balloon by %llu pages: they "
	       "return to the host, still charged to its reservation",
	       d->vm[0].id, (unsigned long long)half);
	return 0;
}

static int step_retry(struct demo *d)
{
	uint32_t v = d->nvms - 1;
	uint64_t before = d->vm[v].present;
	int rc = fill_vm(d, v);

	if (rc && rc != -MV_EBUDGET)
		return rc;
	report(d, "reuse", "vm %u got %llu more pages from the freed memory%s",
	       d->vm[v].id, (unsigned long long)(d->vm[v].present - before),
	       rc ? " (budget reached again)" : "");
	return 0;
}

/* Share frame @gfn of every VM whose copy equals VM 0's. */
static int share_frame(struct demo *d, uint64_t gfn, uint64_t *freed)
{
	const void *ref = mv_host_page_ptr(d->host, d->vm[0].map[gfn]);
	uint64_t hash = XXH3_64bits(ref, MV_PAGE_SIZE);
	mv_page_id sid;
	int rc = mv_host_share_alloc(d->host, d->vm[0].id, ref, hash, &sid);

	/* Compare with the shared copy: VM 0's own goes away below. */
	ref = mv_host_page_ptr(d->host, sid);

	for (uint32_t v = 0; !rc && v < d->nvms; v++) {
		struct demo_vm *vm = &d->vm[v];
		const void *p = vm->map[gfn] && !vm->shared[gfn]
				? mv_host_page_ptr(d->host, vm->map[gfn]) : NULL;

		if (!p || XXH3_64bits(p, MV_PAGE_SIZE) != hash ||
		    memcmp(p, ref, MV_PAGE_SIZE))
			continue;
		rc = v ? mv_host_share_get(d->host, vm->id, sid) : 0;
		if (!rc)
			rc = mv_host_free(d->host, vm->id, 1, &vm->map[gfn]);
		if (!rc) {
			vm->map[gfn] = sid;
			vm->shared[gfn] = true;
			vm->present--;
			(*freed)++;
		}
	}
	return rc;
}

static int step_share(struct demo *d)
{
	uint64_t freed = 0;
	int rc = 0;

	for (uint64_t gfn = 0; gfn < d->common && !rc; gfn++)
		if (d->vm[0].map[gfn] && !d->vm[0].shared[gfn])
			rc = share_frame(d, gfn, &freed);
	if (rc == -MV_EBUDGET)
		printf("share      stopped early: no room for a shared copy (%s)\n",
		       mv_strerror(rc));
	else if (rc)
		return rc;
	report(d, "share", "%llu identical frames now share host pages "
	       "(%llu private copies freed)", (unsigned long long)freed,
	       (unsigned long long)freed);
	return 0;
}

/* VM 2 shuts down: drop its shared references, then close the account. */
static int step_shutdown(struct demo *d)
{
	struct demo_vm *vm = &d->vm[1];
	int rc = 0;

	for (uint64_t gfn = 0; gfn < d->pages && !rc; gfn++)
		if (vm->shared[gfn])
			rc = mv_host_share_put(d->host, vm->id, vm->map[gfn]);
	if (!rc)
		rc = mv_host_vm_destroy(d->host, vm->id);
	if (rc)
		return rc;
	vm->alive = false;
	report(d, "shutdown", "vm %u destroyed: its %llu private pages are freed",
	       vm->id, (unsigned long long)vm->present);
	return 0;
}

/* The guests free 3 of every 4 frames: every chunk stays, partly used. */
static int step_holes(struct demo *d)
{
	int rc = 0;

	for (uint32_t v = 0; v < d->nvms && !rc; v++)
		for (uint64_t g = d->common; g < d->pages && !rc && d->vm[v].alive;
		     g += 4)
			rc = drop_range(d, v, g, g + 3 < d->pages ? g + 3 : d->pages,
					false);
	if (rc)
		return rc;
	report(d, "holes", "the guests freed 3 of every 4 of their frames: "
	       "chunks stay, each partly used");
	return 0;
}

static int step_defragment(struct demo *d)
{
	uint32_t moved = 0;
	int rc = mv_host_defragment(d->host, UINT32_MAX, &moved);

	if (rc)
		return rc;
	report(d, "defrag", "%u pages moved into fuller chunks, the emptied "
	       "chunks returned to the host", moved);
	return 0;
}

static int step_verify(struct demo *d)
{
	for (uint32_t v = 0; v < d->nvms; v++) {
		struct demo_vm *vm = &d->vm[v];

		for (uint64_t gfn = 0; vm->alive && gfn < d->pages; gfn++) {
			const uint64_t *p = mv_host_page_ptr(d->host, vm->map[gfn]);

			if (vm->map[gfn] && p[8] != frame_word(d, v, gfn, 8)) {
				fprintf(stderr, "memvisor run: vm %u gfn %llu lost its "
					"content\n", vm->id, (unsigned long long)gfn);
				return -MV_EINTERNAL;
			}
		}
	}
	printf("verify     every frame still holds what its guest wrote\n");
	return 0;
}

/* ---- guest-physical memory on the same pool (run_guest.c) --------------- */

static void guest_report(void *ctx, const char *step, const char *what)
{
	report(ctx, step, "%s", what);
}

static int step_guests(struct demo *d)
{
	return run_guest(d->host, d->pages, guest_report, d);
}

/* ---- vCPUs over guest page tables (run_vcpu.c) -------------------------- */

static int step_vcpus(struct demo *d)
{
	return run_vcpu(d->host, guest_report, d);
}

/* ---- the page-sharing scanner while guests run (run_share.c) ----------- */

static int step_scanner(struct demo *d)
{
	return run_share(d->host, guest_report, d);
}

/* ---- options and driver ------------------------------------------------- */

/* The default budget: 7/8 of all guest RAM, so that the last VM to boot
 * meets the budget error. --help prints the same fraction. */
#define BUDGET_NUM 7
#define BUDGET_DEN 8

static void usage(FILE *out)
{
	fprintf(out,
		"usage: memvisor run [--vms N] [--pages N] [--budget N]\n"
		"  --vms N     VM accounts, 2..64 (default 4)\n"
		"  --pages N   guest RAM per VM in 4 KiB pages, 64..262144 "
		"(default 4096)\n"
		"  --budget N  host budget in pages, 0 = none (default: %d/%d of "
		"all guest RAM)\n"
		"Numbers are decimal digits only. The run fills the budget (all "
		"guest RAM\nwith --budget 0) with real host memory; it is "
		"refused up front, exit\nstatus 1, when this machine has less "
		"memory available.\n"
		"Exit status: 0 done, 1 runtime error or output not written, "
		"2 usage.\n", BUDGET_NUM, BUDGET_DEN);
}

static int parse_num(const char *opt, const char *arg, uint64_t lo, uint64_t hi,
		     uint64_t *out)
{
	uint64_t v;

	if (tool_parse_number(arg, false, &v) || v < lo || v > hi) {
		fprintf(stderr, "memvisor run: %s wants a number in %llu..%llu, "
			"not '%s'\n", opt, (unsigned long long)lo,
			(unsigned long long)hi, arg);
		return -1;
	}
	*out = v;
	return 0;
}

/* 0 to run, 1 for --help, 2 for bad usage. */
static int parse_args(int argc, char **argv, struct demo *d)
{
	static const struct option opts[] = {
		{ "vms", required_argument, NULL, 'v' },
		{ "pages", required_argument, NULL, 'p' },
		{ "budget", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t vms = 4, budget = UINT64_MAX;
	int c, bad = 0;

	d->pages = 4096;
	opterr = 0;
	optind = 1;
	while (!bad && (c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'v')
			bad = parse_num("--vms", optarg, 2, 64, &vms);
		else if (c == 'p')
			bad = parse_num("--pages", optarg, 64, 262144, &d->pages);
		else if (c == 'b')
			bad = parse_num("--budget", optarg, 0, UINT32_MAX, &budget);
		else if (c == 'h')
			return 1;
		else
			bad = fprintf(stderr, "memvisor run: unknown or incomplete "
				      "option '%s'\n", argv[optind - 1]) > 0;
	}
	if (!bad && optind < argc)
		bad = fprintf(stderr, "memvisor run: unexpected argument '%s'\n",
			      argv[optind]) > 0;
	d->nvms = (uint32_t)vms;
	d->budget = budget == UINT64_MAX
		    ? d->pages * vms * BUDGET_NUM / BUDGET_DEN : budget;
	d->common = d->pages / 8;
	return bad ? 2 : 0;
}

/* What the run will hold at its peak: the pool fills the budget (or all
 * guest RAM without one) with pages and their 8-byte descriptors; the demo
 * keeps a map and a flag per guest frame; the guest-physical part adds two
 * VMs' 16-byte descriptors. */
static uint64_t demo_bytes(const struct demo *d)
{
	uint64_t all = d->pages * d->nvms;
	uint64_t pool = d->budget && d->budget < all ? d->budget : all;

	return pool * (MV_PAGE_SIZE + 8) +
	       all * (sizeof(mv_page_id) + sizeof(bool)) + 2 * d->pages * 16;
}

/* Refuse a run this machine cannot hold, before it allocates anything. */
static int check_memory(const struct demo *d)
{
	uint64_t need = demo_bytes(d), avail = tool_memory_available();

	if (need <= avail)
		return 0;
	fprintf(stderr, "memvisor run: %u VMs of %llu pages with a budget of "
		"%llu pages need about %llu MiB of host memory; %llu MiB are "
		"available (MemAvailable, cgroup limit): lower --vms, --pages "
		"or --budget\n", d->nvms, (unsigned long long)d->pages,
		(unsigned long long)d->budget, (unsigned long long)(need >> 20),
		(unsigned long long)(avail >> 20));
	return 1;
}

static void demo_free(struct demo *d)
{
	for (uint32_t v = 0; d->vm && v < d->nvms; v++) {
		free(d->vm[v].map);
		free(d->vm[v].shared);
	}
	free(d->vm);
	mv_host_destroy(d->host);
}

static int demo_alloc(struct demo *d)
{
	d->vm = calloc(d->nvms, sizeof(*d->vm));
	for (uint32_t v = 0; d->vm && v < d->nvms; v++) {
		d->vm[v].map = calloc(d->pages, sizeof(*d->vm[v].map));
		d->vm[v].shared = calloc(d->pages, sizeof(*d->vm[v].shared));
		if (!d->vm[v].map || !d->vm[v].shared)
			return -MV_ENOMEM;
	}
	return d->vm ? 0 : -MV_ENOMEM;
}

static int run_main(int argc, char **argv)
{
	static int (*const steps[])(struct demo *) = {
		step_create, step_boot, step_balloon, step_share, step_retry,
		step_shutdown, step_holes, step_defragment, step_verify,
		step_guests, step_vcpus, step_scanner,
	};
	struct demo d = { 0 };
	int rc = parse_args(argc, argv, &d);

	if (rc) {
		usage(rc == 1 ? stdout : stderr);
		if (rc == 1)
			return tool_output_finish("run") ? 1 : 0;
		return 2;
	}
	if (check_memory(&d))
		return 1;
	rc = demo_alloc(&d);
	for (size_t i = 0; !rc && i < sizeof(steps) / sizeof(steps[0]); i++) {
		rc = steps[i](&d);
		if (!rc && tool_output_failed())
			rc = -MV_EIO;  /* stop now: tool_output_finish says why */
	}
	if (!rc)
		mv_host_print_stats(d.host, stdout);
	else if (rc != -MV_EIO)
		fprintf(stderr, "memvisor run: %s\n", mv_strerror(rc));
	demo_free(&d);
	return tool_output_finish("run") || rc ? 1 : 0;
}

const struct mv_cmd mv_cmd_run = {
	.name = "run",
	.summary = "a host pool under over-commitment, with its real RSS",
	.main = run_main,
};
