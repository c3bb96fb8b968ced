#include "bench.h"

#include <stdio.h>
#include <time.h>

static volatile uint64_t sink;

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void bench_report(const char *name, double value, const char *unit)
{
	printf("{\"bench\": \"%s\", \"value\": %.6g, \"unit\": \"%s\"}\n",
	       name, value, unit);
	fflush(stdout);
}

void bench_report_vs(const char *name, double value, const char *unit,
		     const char *baseline, double baseline_value)
{
	double ratio = baseline_value != 0 ? value / baseline_value : 0;

	printf("{\"bench\": \"%s\", \"value\": %.6g, \"unit\": \"%s\", "
	       "\"baseline\": \"%s\", \"ratio\": %.4g}\n",
	       name, value, unit, baseline, ratio);
	fflush(stdout);
}

void bench_sink(uint64_t value)
{
	sink += value;
}
