/* ksm_merge: Linux KSM on the same raw guest RAM images `memvisor dedup`
 * takes, for bench/share/ksm.sh:
 *   ksm_merge [--all] [--zero-pages 0|1] [--timeout S] IMAGE...
 * Each image is copied into a private anonymous mapping (no huge pages:
 * KSM merges small pages) marked MADV_MERGEABLE: its non-zero pages only,
 * as memvisor loads them (untouched pages cost nothing), or with --all
 * every page, so that KSM must find the zero pages itself. Then ksmd runs
 * at a high rate (pages_to_scan 10000, sleep_millisecs 0, use_zero_pages
 * as asked) until pages_shared, pages_sharing and ksm_zero_pages have not
 * changed for 2 more full scans. Prints one JSON line: KSM's counters,
 * the host pages left as measured in /proc/self/pagemap (the distinct page
 * frames behind the copies; the zero page costs none, as in memvisor) and
 * as the counters give them (copied pages minus pages_sharing and
 * ksm_zero_pages), the pages mapped to the zero page, saved_pages =
 * pages - host_pages (memvisor's measure), and ksmd's CPU time (utime +
 * stime of /proc/<ksmd>/stat) until the last change and until the end. Every KSM knob written is restored, and run=2
 * unmerges everything before run gets its old value back.
 * Without /sys/kernel/mm/ksm or without root the line says so ("ksm":
 * "unavailable", "reason") and the exit status is 0; other failures exit
 * 1, usage errors 2.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096ul
#define KSM "/sys/kernel/mm/ksm/"

/* The knobs this program writes, with the values found at the start. */
static const char *const knobs[] = { "pages_to_scan", "sleep_millisecs",
				     "use_zero_pages", "run" };
#define NKNOBS (sizeof(knobs) / sizeof(knobs[0]))
static char saved[NKNOBS][64];
static int knobs_saved;

static int read_str(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	int ok;

	if (!f)
		return -errno;
	ok = fgets(buf, (int)len, f) != NULL;
	fclose(f);
	if (!ok)
		return -EIO;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static long long ksm_get(const char *knob)
{
	char path[128], buf[64];

	snprintf(path, sizeof(path), KSM "%s", knob);
	if (read_str(path, buf, sizeof(buf)))
		return -1;
	return strtoll(buf, NULL, 10);
}

static int ksm_set(const char *knob, const char *value)
{
	char path[128];
	int fd, rc = 0;
	size_t len = strlen(value);

	snprintf(path, sizeof(path), KSM "%s", knob);
	fd = open(path, O_WRONLY);
	if (fd < 0)
		return -errno;
	/* run=2 returns once every page is unmerged. */
	if (write(fd, value, len) != (ssize_t)len)
		rc = -errno;
	close(fd);
	return rc;
}

static void restore_knobs(void)
{
	if (!knobs_saved)
		return;
	knobs_saved = 0;
	ksm_set("run", "2");
	for (size_t i = 0; i < NKNOBS; i++)
		if (ksm_set(knobs[i], saved[i]))
			fprintf(stderr, "ksm_merge: cannot restore %s=%s\n",
				knobs[i], saved[i]);
}

static void on_signal(int sig)
{
	restore_knobs();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void unavailable(const char *why)
{
	printf("{\"bench\": \"share.ksm\", \"ksm\": \"unavailable\", "
	       "\"reason\": \"%s\"}\n", why);
	exit(0);
}

static pid_t find_ksmd(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t pid = 0;

	while (d && (e = readdir(d)) && !pid) {
		char path[300], comm[64];

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", e->d_name);
		if (!read_str(path, comm, sizeof(comm)) && !strcmp(comm, "ksmd"))
			pid = (pid_t)atoi(e->d_name);
	}
	if (d)
		closedir(d);
	return pid;
}

/* ksmd's utime + stime in seconds. */
static double ksmd_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	/* After "(comm)": state is field 3, utime 14, stime 15. */
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int all_zero(const unsigned char *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (size_t i = 0; i < PAGE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

struct copy {
	unsigned char *mem;
	uint64_t pages;
};
#define MAX_IMAGES 64
static struct copy copies[MAX_IMAGES];
static int ncopies;

/* A private anonymous copy of @path, marked mergeable; returns the pages
 * copied (all, or the non-zero ones). */
static uint64_t load(const char *path, int all, uint64_t *pages)
{
	struct stat st;
	unsigned char *src, *dst;
	uint64_t n, copied = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) || st.st_size <= 0 ||
	    st.st_size % (off_t)PAGE) {
		fprintf(stderr, "ksm_merge: %s: not a readable image of whole pages\n",
			path);
		exit(1);
	}
	n = (uint64_t)st.st_size / PAGE;
	src = mmap(NULL, n * PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
	dst = mmap(NULL, n * PAGE, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (src == MAP_FAILED || dst == MAP_FAILED) {
		perror("ksm_merge: mmap");
		exit(1);
	}
	close(fd);
	madvise(dst, n * PAGE, MADV_NOHUGEPAGE);
	for (uint64_t i = 0; i < n; i++) {
		if (!all && all_zero(src + i * PAGE))
			continue;
		memcpy(dst + i * PAGE, src + i * PAGE, PAGE);
		copied++;
	}
	munmap(src, n * PAGE);
	if (madvise(dst, n * PAGE, MADV_MERGEABLE)) {
		perror("ksm_merge: madvise(MADV_MERGEABLE)");
		exit(1);
	}
	*pages += n;
	copies[ncopies++] = (struct copy){ dst, n };
	return copied;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The PFN behind @addr from /proc/self/pagemap (root sees PFNs), 0 when
 * not present. */
static uint64_t pfn_of(int fd, const void *addr)
{
	uint64_t e = 0;
	off_t off = (off_t)((uintptr_t)addr / PAGE * 8);

	if (pread(fd, &e, 8, off) != 8)
		return 0;
	return e >> 63 ? e & ((1ull << 55) - 1) : 0;
}

/* What the copies really take, independent of KSM's counters: distinct
 * page frames behind them, and the pages mapped to the zero page. */
static int measure(uint64_t *frames, uint64_t *zero_mapped)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t zpfn, total = 0, n = 0, *pfns;
	volatile unsigned char *probe;

	probe = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fd < 0 || probe == MAP_FAILED)
		return -1;
	(void)probe[0];         /* a read fault maps the zero page */
	zpfn = pfn_of(fd, (const void *)probe);
	for (int i = 0; i < ncopies; i++)
		total += copies[i].pages;
	pfns = malloc(total * sizeof(*pfns));
	if (!zpfn || !pfns) {
		close(fd);
		free(pfns);
		return -1;
	}
	*zero_mapped = 0;
	for (int i = 0; i < ncopies; i++) {
		for (uint64_t p = 0; p < copies[i].pages; p++) {
			uint64_t f = pfn_of(fd, copies[i].mem + p * PAGE);

			if (f == zpfn)
				++*zero_mapped;
			else if (f)
				pfns[n++] = f;
		}
	}
	close(fd);
	qsort(pfns, n, sizeof(*pfns), cmp_u64);
	*frames = 0;
	for (uint64_t i = 0; i < n; i++)
		*frames += !i || pfns[i] != pfns[i - 1];
	free(pfns);
	return 0;
}

struct counters {
	long long shared, sharing, zero, scans;
};

static struct counters sample(void)
{
	return (struct counters){ ksm_get("pages_shared"), ksm_get("pages_sharing"),
				  ksm_get("ksm_zero_pages"), ksm_get("full_scans") };
}

static void usage(void)
{
	fprintf(stderr, "usage: ksm_merge [--all] [--zero-pages 0|1] [--timeout S] IMAGE...\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int all = 0, zp = 0, i;
	double timeout = 600, t0, t_change, t_end, cpu0, cpu_change, cpu_end;
	uint64_t pages = 0, copied = 0, host, counted, frames = 0, zero_mapped = 0;
	struct counters base, c, last;
	long long scans_at_change;
	pid_t ksmd;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--all"))
			all = 1;
		else if (!strcmp(argv[i], "--zero-pages") && i + 1 < argc &&
			 (!strcmp(argv[i + 1], "0") || !strcmp(argv[i + 1], "1")))
			zp = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atof(argv[++i]);
		else
			usage();
	}
	if (i == argc || timeout <= 0)
		usage();
	if (access(KSM "run", F_OK))
		unavailable("no /sys/kernel/mm/ksm (kernel without CONFIG_KSM)");
	if (geteuid() != 0 || access(KSM "run", W_OK))
		unavailable("not root: the KSM knobs cannot be written");
	ksmd = find_ksmd();
	if (!ksmd)
		unavailable("no ksmd thread");
	if (ksm_get("max_page_sharing") != 256)
		fprintf(stderr, "ksm_merge: note: max_page_sharing is %lld, not 256\n",
			ksm_get("max_page_sharing"));
	for (size_t k = 0; k < NKNOBS; k++) {
		char path[128];

		snprintf(path, sizeof(path), KSM "%s", knobs[k]);
		if (read_str(path, saved[k], sizeof(saved[k])))
			unavailable("the KSM knobs cannot be read");
	}
	knobs_saved = 1;
	atexit(restore_knobs);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);

	if (argc - i > MAX_IMAGES)
		usage();
	for (; i < argc; i++)
		copied += load(argv[i], all, &pages);
	if (ksm_set("use_zero_pages", zp ? "1" : "0") ||
	    ksm_set("pages_to_scan", "10000") || ksm_set("sleep_millisecs", "0")) {
		fprintf(stderr, "ksm_merge: cannot set the KSM knobs\n");
		return 1;
	}
	base = sample();
	cpu0 = cpu_change = ksmd_cpu(ksmd);
	t0 = t_change = now();
	if (ksm_set("run", "1")) {
		fprintf(stderr, "ksm_merge: cannot start ksmd\n");
		return 1;
	}
	last = base;
	scans_at_change = base.scans;
	for (;;) {
		usleep(20000);
		c = sample();
		if (c.shared != last.shared || c.sharing != last.sharing ||
		    c.zero != last.zero) {
			last = c;
			scans_at_change = c.scans;
			t_change = now();
			cpu_change = ksmd_cpu(ksmd);
		} else if (c.scans >= scans_at_change + 2 &&
			   c.scans >= base.scans + 3) {
			break;
		}
		if (now() - t0 > timeout) {
			fprintf(stderr, "ksm_merge: no stable result within %.0f s\n",
				timeout);
			return 1;
		}
	}
	t_end = now();
	cpu_end = ksmd_cpu(ksmd);
	ksm_set("run", "0");
	if (measure(&frames, &zero_mapped)) {
		fprintf(stderr, "ksm_merge: cannot read /proc/self/pagemap\n");
		return 1;
	}
	c.sharing -= base.sharing;
	c.shared -= base.shared;
	c.zero -= base.zero;
	counted = copied - (uint64_t)c.sharing - (uint64_t)c.zero;
	/* What the frames say, not the counters: what memvisor counts too. */
	host = frames;
	printf("{\"bench\": \"share.ksm\", \"ksm\": \"ran\", \"variant\": \"%s\", "
	       "\"use_zero_pages\": %d, \"pages\": %llu, \"copied_pages\": %llu, "
	       "\"pages_shared\": %lld, \"pages_sharing\": %lld, "
	       "\"ksm_zero_pages\": %lld, \"host_pages\": %llu, "
	       "\"saved_pages\": %llu, \"cpu_s\": %.3f, \"cpu_total_s\": %.3f, "
	       "\"wall_s\": %.3f, \"wall_total_s\": %.3f, \"full_scans\": %lld, "
	       "\"smart_scan\": %lld, \"max_page_sharing\": %lld, "
	       "\"host_pages_by_counters\": %llu, \"zero_page_mapped\": %llu}\n",
	       all ? "all pages copied" : "non-zero pages copied", zp,
	       (unsigned long long)pages, (unsigned long long)copied, c.shared,
	       c.sharing, c.zero, (unsigned long long)host,
	       (unsigned long long)(pages - host), cpu_change - cpu0,
	       cpu_end - cpu0, t_change - t0, t_end - t0, c.scans - base.scans,
	       ksm_get("smart_scan"), ksm_get("max_page_sharing"),
	       (unsigned long long)counted, (unsigned long long)zero_mapped);
	return 0;
}
