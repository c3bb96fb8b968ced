/* memvisor run: one step's line, formatted for the caller's report. */
#include <stdarg.h>
#include <stdio.h>

#include "run_guest.h"

void run_say(run_guest_report_fn fn, void *ctx, const char *step,
	     const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fn(ctx, step, what);
}
