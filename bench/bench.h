/* Helpers shared by the benchmarks: a monotonic clock and JSON lines.
 *
 * Each result is one line:
 *   {"bench": "host.alloc_free", "value": 1.2e7, "unit": "pages/s"}
 * and, where a baseline measured in the same run exists,
 *   ..., "baseline": "host.mmap_munmap", "ratio": 3.4}
 */
#ifndef MV_BENCH_H
#define MV_BENCH_H

#include <stdint.h>

/* Nanoseconds from CLOCK_MONOTONIC. */
uint64_t bench_now_ns(void);
/* Print one result line without a baseline. */
void bench_report(const char *name, double value, const char *unit);
/* Print one result line with its baseline value and their ratio. */
void bench_report_vs(const char *name, double value, const char *unit,
		     const char *baseline, double baseline_value);
/* Keep the compiler from discarding a computed value. */
void bench_sink(uint64_t value);

#endif
