/* memvisor run, page-sharing steps: the scanner at work while guests run.
 *
 * Four guests boot the same kernel: the first half of each one's RAM is
 * the same in all of them, an eighth is pages of zeros it wrote (freed
 * memory), the rest its own. One thread per guest keeps writing its own
 * working set while the scanner's background thread (idle priority, a
 * rate limit, cross-VM sharing: the four guests belong to one tenant, one
 * salt) merges: a line per round shows the saving as it grows, and that
 * the pages being written are skipped as volatile. Then each guest writes
 * into part of its shared kernel: copy-on-write breaks give it private
 * copies again. Last, every page of every guest is checked against what
 * it last wrote. */
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <memvisor/share.h>
#include <memvisor/vm.h>

#include "run_guest.h"

#define GUESTS 4
#define PAGES 2048u                 /* RAM per guest */
#define KERNEL (PAGES / 2)          /* [0, KERNEL): the same everywhere */
#define ZEROS (PAGES / 8)           /* then pages of zeros */
#define WSET 16u                    /* pages each guest keeps writing */
#define COW_PAGES (KERNEL / 8)      /* kernel pages written at the end */
#define RATE 40000u                 /* scanner pages per second */
#define MAX_ROUNDS 12u
#define WRITE_PAUSE_NS 2000000L     /* between two working-set passes */

struct share_demo;

struct share_guest {
	struct share_demo *d;        /* for its writer thread */
	unsigned v;                  /* its index */
	struct mv_vm *vm;
	uint32_t version[PAGES];     /* how often each page was rewritten */
	pthread_t writer;
	int writing;
};

struct share_demo {
	struct mv_host *host;
	struct mv_share *share;
	struct share_guest g[GUESTS];
	atomic_int stop;
	atomic_int write_rc;          /* a writer's error */
	run_guest_report_fn fn;
	void *ctx;
};

#define say(d, ...) run_say((d)->fn, (d)->ctx, __VA_ARGS__)

/* Page @i of guest @v after @ver rewrites: the kernel is the same in every
 * guest until a guest rewrites a page, zero pages are zeros. */
static void page_bytes(unsigned v, uint32_t i, uint32_t ver, uint64_t *page)
{
	uint64_t seed;

	if (!ver && i >= KERNEL && i < KERNEL + ZEROS) {
		memset(page, 0, MV_PAGE_SIZE);
		return;
	}
	seed = !ver && i < KERNEL ? i : (uint64_t)(v + 1) << 48 |
					(uint64_t)ver << 24 | i;
	for (unsigned k = 0; k < MV_PAGE_SIZE / 8; k++)
		page[k] = seed * 0x9e3779b97f4a7c15ull + k;
}

static int write_page(struct share_guest *g, unsigned v, uint32_t i)
{
	uint64_t page[MV_PAGE_SIZE / 8];

	page_bytes(v, i, g->version[i], page);
	return mv_vm_phys_write(g->vm, (uint64_t)i << MV_PAGE_SHIFT, page,
				sizeof(page));
}

/* The working set: the last WSET pages of the guest's own memory. */
static uint32_t wset_page(uint32_t k)
{
	return PAGES - WSET + k;
}

static void *writer(void *arg)
{
	struct share_guest *g = arg;
	struct timespec pause = { 0, WRITE_PAUSE_NS };
	int rc = 0;

	while (!rc && !atomic_load(&g->d->stop)) {
		for (uint32_t k = 0; !rc && k < WSET; k++) {
			g->version[wset_page(k)]++;
			rc = write_page(g, g->v, wset_page(k));
		}
		nanosleep(&pause, NULL);
	}
	if (rc)
		atomic_store(&g->d->write_rc, rc);
	return NULL;
}

static int share_boot(struct share_demo *d)
{
	struct mv_vm_range ram = { .type = MV_PAGE_RAM,
				   .size = PAGES * MV_PAGE_SIZE,
				   .name = "ram" };
	struct mv_vm_config cfg = { .ranges = &ram, .nranges = 1 };
	int rc = 0;

	for (unsigned v = 0; !rc && v < GUESTS; v++) {
		rc = mv_vm_create(d->host, &cfg, &d->g[v].vm);
		for (uint32_t i = 0; !rc && i < PAGES; i++)
			rc = write_page(&d->g[v], v, i);
	}
	if (!rc)
		say(d, "share-boot", "%d guests of %u pages booted one kernel: "
		    "%u pages the same in all, %u written with zeros, the "
		    "rest their own; each keeps writing %u pages",
		    GUESTS, PAGES, KERNEL, ZEROS, WSET);
	return rc;
}

static int start_scanner(struct share_demo *d)
{
	struct mv_share_config sc = { .cross_vm = 1,
				      .rate_pages_per_s = RATE };
	struct mv_share_vm_config vc = { .gfn = 0, .count = PAGES,
					 .salt = 1 };
	int rc = mv_share_create(d->host, &sc, &d->share);

	for (unsigned v = 0; !rc && v < GUESTS; v++)
		rc = mv_share_vm_add(d->share, d->g[v].vm, &vc);
	for (unsigned v = 0; !rc && v < GUESTS; v++) {
		d->g[v].d = d;
		d->g[v].v = v;
		rc = -pthread_create(&d->g[v].writer, NULL, writer, &d->g[v]);
		d->g[v].writing = !rc;
	}
	return rc ? rc : mv_share_start(d->share);
}

static int stop_writers(struct share_demo *d)
{
	atomic_store(&d->stop, 1);
	for (unsigned v = 0; v < GUESTS; v++)
		if (d->g[v].writing) {
			pthread_join(d->g[v].writer, NULL);
			d->g[v].writing = 0;
		}
	return atomic_load(&d->write_rc);
}

/* Host pages backing the guests' RAM: the pool's private and shared
 * pages less what it held before the guests (handy pages included). */
static uint64_t pool_pages(struct share_demo *d)
{
	struct mv_host_stats hs;

	mv_host_get_stats(d->host, &hs);
	return hs.private_pages + hs.shared_pages;
}

/* The saving now; one line says so. */
static uint64_t scan_line(struct share_demo *d, const struct mv_share_stats *st,
			  uint64_t base, int ended)
{
	uint64_t used = pool_pages(d) - base, all = GUESTS * PAGES;
	uint64_t saving = all > used ? all - used : 0;

	say(d, "share-scan", "%s %llu: %llu pages looked at, %llu merged, "
	    "%llu zero pages reclaimed, %llu skipped as volatile; the guests "
	    "use %llu host pages for %llu guest pages (saving %llu)",
	    ended ? "done after round" : "round",
	    (unsigned long long)st->rounds + !ended,
	    (unsigned long long)st->scanned, (unsigned long long)st->merged,
	    (unsigned long long)st->zero_reclaimed,
	    (unsigned long long)st->volatile_skips, (unsigned long long)used,
	    (unsigned long long)all, (unsigned long long)saving);
	return saving;
}

static uint64_t saving_now(struct share_demo *d, uint64_t base)
{
	uint64_t used = pool_pages(d) - base, all = GUESTS * PAGES;

	return all > used ? all - used : 0;
}

/* While the guests write: a line when the scan starts, each time the
 * scanner has looked at another guest's worth of pages and the saving
 * changed, and when a round ends that merged nothing new (the working
 * sets stay volatile: the merge of the rest is then complete). */
static int share_scan(struct share_demo *d, uint64_t base)
{
	struct timespec poll = { 0, 2000000L };
	struct mv_share_stats st;
	uint64_t mark = PAGES, round = 0, last_gain = 0, shown = UINT64_MAX;
	int rc = start_scanner(d);

	while (!rc && round < MAX_ROUNDS) {
		nanosleep(&poll, NULL);
		if ((rc = mv_share_get_stats(d->share, &st)))
			break;
		if (st.scanned >= mark) {
			if (saving_now(d, base) != shown)
				shown = scan_line(d, &st, base, 0);
			mark = (st.scanned / PAGES + 1) * PAGES;
		}
		if (st.rounds == round)
			continue;
		round = st.rounds;
		uint64_t gain = st.merged + st.zero_reclaimed;

		if (gain && gain == last_gain)
			break;
		last_gain = gain;
	}
	if (!rc)
		scan_line(d, &st, base, 1);
	return rc;
}

static int share_cow(struct share_demo *d, uint64_t base)
{
	struct mv_share_stats before, after;
	uint64_t used0 = pool_pages(d) - base;
	int rc = mv_share_pause(d->share, 1);

	rc = rc ? rc : mv_share_get_stats(d->share, &before);
	for (unsigned v = 0; !rc && v < GUESTS; v++)
		for (uint32_t i = 0; !rc && i < COW_PAGES; i++) {
			d->g[v].version[i * 8]++;
			rc = write_page(&d->g[v], v, i * 8);
		}
	rc = rc ? rc : mv_share_get_stats(d->share, &after);
	if (!rc)
		say(d, "share-cow", "the scanner paused, each guest wrote %u of "
		    "its shared kernel pages: %llu copy-on-write breaks, the "
		    "guests' host pages %llu -> %llu", COW_PAGES,
		    (unsigned long long)(after.cow_breaks - before.cow_breaks),
		    (unsigned long long)used0,
		    (unsigned long long)(pool_pages(d) - base));
	return rc;
}

static int share_verify(struct share_demo *d)
{
	uint64_t want[MV_PAGE_SIZE / 8], got[MV_PAGE_SIZE / 8];
	struct mv_share_stats st;
	int rc = 0;

	for (unsigned v = 0; !rc && v < GUESTS; v++)
		for (uint32_t i = 0; !rc && i < PAGES; i++) {
			page_bytes(v, i, d->g[v].version[i], want);
			rc = mv_vm_phys_read(d->g[v].vm,
					     (uint64_t)i << MV_PAGE_SHIFT, got,
					     sizeof(got));
			if (!rc && memcmp(want, got, sizeof(got)))
				rc = -MV_ECORRUPT;
		}
	if (!rc && !(rc = mv_share_get_stats(d->share, &st)))
		say(d, "share-end", "every page of the %d guests holds what "
		    "it last wrote; the scanner used %.3f s of CPU in %llu "
		    "rounds at idle priority (%s)", GUESTS,
		    (double)st.cpu_ns / 1e9, (unsigned long long)st.rounds,
		    st.idle_priority ? "SCHED_IDLE" : "SCHED_IDLE refused");
	return rc;
}

static int room_for_demo(struct mv_host *host)
{
	struct mv_host_stats st;
	uint64_t used, need = GUESTS * (PAGES + 64 + 8);

	if (mv_host_get_stats(host, &st) || !st.budget_pages)
		return 1;
	used = st.private_pages + st.shared_pages;
	return st.budget_pages > used && st.budget_pages - used >= need;
}

int run_share(struct mv_host *host, run_guest_report_fn fn, void *ctx)
{
	static struct share_demo d;  /* 32 KiB of versions: not the stack */
	uint64_t base;
	int rc, wrc;

	memset(&d, 0, sizeof(d));
	d.host = host;
	d.fn = fn;
	d.ctx = ctx;
	if (!room_for_demo(host)) {
		say(&d, "share-boot", "skipped: the host budget leaves no room "
		    "for the sharing guests");
		return 0;
	}
	base = pool_pages(&d);
	rc = share_boot(&d);
	if (!rc)
		rc = share_scan(&d, base);
	wrc = stop_writers(&d);
	rc = rc ? rc : wrc;
	if (!rc)
		rc = share_cow(&d, base);
	if (!rc)
		rc = share_verify(&d);
	if (d.share)
		mv_share_stop(d.share);
	for (unsigned v = 0; v < GUESTS; v++) {
		if (d.share && d.g[v].vm)
			mv_share_vm_remove(d.share, d.g[v].vm);
		mv_vm_destroy(d.g[v].vm);
	}
	mv_share_destroy(d.share);
	if (!rc)
		say(&d, "share-down", "the scanner stopped, the %d guests shut "
		    "down: their private and shared pages are back in the pool",
		    GUESTS);
	return rc;
}
