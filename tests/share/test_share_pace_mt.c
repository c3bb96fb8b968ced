/* The background thread keeps to its CPU share. It scans a span of 2^40
 * frames (64 of them RAM), so its first round never ends and it always has
 * work: without a limit it would take a whole CPU. It runs at normal
 * priority so that a busy host still gives it CPU to limit. While the main
 * thread sleeps, the process's CPU time (getrusage: the thread's, the main
 * thread adds next to nothing) and the scanner's own cpu_ns are compared
 * with the wall time, for each share in a table. The bound is generous (a
 * batch may overrun the share, the clock ticks of rusage are coarse);
 * nothing here depends on how fast the machine is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>

#include "share/share_fixture.h"

#define RUN_NS 1500000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t process_cpu_ns(void)
{
	struct rusage ru;

	assert_int_equal(getrusage(RUSAGE_SELF, &ru), 0);
	return ((uint64_t)ru.ru_utime.tv_sec + (uint64_t)ru.ru_stime.tv_sec) *
		       1000000000ull +
	       ((uint64_t)ru.ru_utime.tv_usec + (uint64_t)ru.ru_stime.tv_usec) *
		       1000ull;
}

struct fix {
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_share *s;
};

static void fix_up(struct fix *f, uint32_t pct)
{
	struct mv_share_config cfg = { .cpu_share_pct = pct,
				       .normal_priority = 1 };
	struct mv_share_vm_config vc = { .gfn = 0, .count = 1ull << 40 };

	assert_int_equal(mv_host_create(NULL, &f->host), 0);
	f->vm = sx_vm(f->host, 64);
	assert_non_null(f->vm);
	for (uint64_t g = 0; g < 64; g++)
		assert_int_equal(sx_fill(f->vm, g, (uint8_t)(1 + g % 2)), 0);
	assert_int_equal(mv_share_create(f->host, &cfg, &f->s), 0);
	assert_int_equal(mv_share_vm_add(f->s, f->vm, &vc), 0);
}

static void fix_down(struct fix *f)
{
	mv_share_destroy(f->s);
	mv_vm_destroy(f->vm);
	mv_host_destroy(f->host);
}

/* Sleep RUN_NS while the thread runs; its CPU share over that time, by
 * rusage (*@ru) and by the scanner's cpu_ns (*@own), in percent. */
static void measure(struct fix *f, double *ru, double *own)
{
	struct timespec ts = { (time_t)(RUN_NS / 1000000000ull),
			       (long)(RUN_NS % 1000000000ull) };
	struct mv_share_stats a, b;
	uint64_t c0, c1, t0, t1;

	assert_int_equal(mv_share_get_stats(f->s, &a), 0);
	c0 = process_cpu_ns();
	t0 = mono_ns();
	nanosleep(&ts, NULL);
	c1 = process_cpu_ns();
	t1 = mono_ns();
	assert_int_equal(mv_share_get_stats(f->s, &b), 0);
	assert_true(b.cpu_ns > a.cpu_ns);  /* it did work meanwhile */
	assert_int_equal(b.idle_priority, 0);
	*ru = 100.0 * (double)(c1 - c0) / (double)(t1 - t0);
	*own = 100.0 * (double)(b.cpu_ns - a.cpu_ns) / (double)(t1 - t0);
}

static void keeps_cpu_share(void **state)
{
	static const uint32_t shares[] = { 5, 10, 25 };
	struct timespec warm = { 0, 100000000 };

	(void)state;
	for (size_t i = 0; i < sizeof(shares) / sizeof(shares[0]); i++) {
		struct fix f;
		double ru, own;

		fix_up(&f, shares[i]);
		assert_int_equal(mv_share_start(f.s), 0);
		nanosleep(&warm, NULL);
		measure(&f, &ru, &own);
		print_message("cpu share %u%%: %.1f%% (rusage), %.1f%% "
			      "(cpu_ns)\n", shares[i], ru, own);
		assert_true(ru <= 1.5 * shares[i] + 3.0);
		assert_true(own <= 1.5 * shares[i] + 3.0);
		fix_down(&f);
	}
}

/* The setter takes effect on a running thread: 10% first, then no limit
 * (0). The unlimited figure is not asserted (a busy host may give the
 * thread little), only printed; the limited one is. */
static void set_cpu_share(void **state)
{
	struct timespec warm = { 0, 100000000 };
	struct fix f;
	double ru, own;

	(void)state;
	fix_up(&f, 0);
	assert_int_equal(mv_share_set_cpu_share(f.s, 101), -MV_EINVAL);
	assert_int_equal(mv_share_set_cpu_share(NULL, 10), -MV_EINVAL);
	assert_int_equal(mv_share_set_cpu_share(f.s, 10), 0);
	assert_int_equal(mv_share_start(f.s), 0);
	nanosleep(&warm, NULL);
	measure(&f, &ru, &own);
	print_message("set to 10%%: %.1f%% (rusage), %.1f%% (cpu_ns)\n", ru,
		      own);
	assert_true(ru <= 18.0 && own <= 18.0);
	assert_int_equal(mv_share_set_cpu_share(f.s, 0), 0);
	nanosleep(&warm, NULL);
	measure(&f, &ru, &own);
	print_message("no limit: %.1f%% (rusage), %.1f%% (cpu_ns)\n", ru, own);
	assert_int_equal(mv_share_stop(f.s), 0);
	fix_down(&f);
}

static void bad_config(void **state)
{
	struct mv_share_config cfg = { .cpu_share_pct = 101 };
	struct mv_share *s = NULL;
	struct mv_host *host;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	assert_int_equal(mv_share_create(host, &cfg, &s), -MV_EINVAL);
	cfg.cpu_share_pct = 100;
	cfg.normal_priority = 2;
	assert_int_equal(mv_share_create(host, &cfg, &s), -MV_EINVAL);
	assert_null(s);
	cfg.normal_priority = 1;
	assert_int_equal(mv_share_create(host, &cfg, &s), 0);
	mv_share_destroy(s);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(keeps_cpu_share),
		cmocka_unit_test(set_cpu_share),
		cmocka_unit_test(bad_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
