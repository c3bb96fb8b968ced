/* memvisor run, second part: guest-physical memory on the demo's pool. */
#ifndef MV_TOOL_RUN_GUEST_H
#define MV_TOOL_RUN_GUEST_H

#include <stdint.h>

#include <memvisor/host.h>

/* Prints one step: its name and what happened (the caller adds the pool's
 * figures and the measured RSS). */
typedef void (*run_guest_report_fn)(void *ctx, const char *step,
				    const char *what);

/* run_say.c: format one step's line (at most 511 bytes) and hand it to
 * @fn. */
void run_say(run_guest_report_fn fn, void *ctx, const char *step,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Two VMs with RAM below and above 4 GiB, a ROM and a device write, share
 * pages, copy on write, balloon and reset on @host; @pages of RAM each. */
int run_guest(struct mv_host *host, uint64_t pages, run_guest_report_fn fn,
	      void *ctx);

/* run_vcpu.c: a model guest OS on 2 vCPUs over its own page tables
 * (address spaces sharing a kernel half, CR3 switches, fork with
 * copy-on-write in the guest's tables, a zap of all shadow pages) with
 * the MMU's statistics per step. */
int run_vcpu(struct mv_host *host, run_guest_report_fn fn, void *ctx);

/* run_dirty.c: dirty logging (bitmap and ring) and a framebuffer harvest
 * on that guest, whose kernel window maps RAM at @kwin + gpa. */
struct mv_vm;
struct mv_vcpu;
int run_dirty(struct mv_vm *vm, struct mv_vcpu *cpu, uint64_t kwin,
	      uint64_t ram_pages, run_guest_report_fn fn, void *ctx);

/* run_share.c: four guests that keep writing while the page-sharing
 * scanner merges their pages (a line per round), then copy-on-write breaks
 * and a check of every page. */
int run_share(struct mv_host *host, run_guest_report_fn fn, void *ctx);

#endif
