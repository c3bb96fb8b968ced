/* Shared pieces of the bad-input tables (tests/<layer>/test_*_badinput.c).
 *
 * A table is a macro BAD_CASES(X) listing X(wanted return code, call). A
 * case runner built with BADINPUT_RUN(i, name, want) runs case @i only and
 * returns its result, or BADINPUT_END past the last case; the loop over
 * the cases checks that it ran BADINPUT_NCASES of them. Include after
 * <cmocka.h>. */
#ifndef MV_TESTS_BADINPUT_H
#define MV_TESTS_BADINPUT_H

#include <limits.h>

#include <memvisor/error.h>

/* No call returns it: not 0, not a positive result (MV_VM_SLOW_PATH,
 * MV_WALK_PF and MV_HANDLER_DEFAULT are 1), not a -MV_E code or -errno.
 * The end of a table was once 1, so a case regressing to 1 silently ended
 * the table there. */
#define BADINPUT_END INT_MIN

#define BADINPUT_COUNT_(w, call) +1
/* The number of cases in the table BAD_CASES (expanded where used). */
#define BADINPUT_NCASES (0 BAD_CASES(BADINPUT_COUNT_))

#define BADINPUT_CASE_(w, call)       \
	if (badinput_i == badinput_k++) { \
		*badinput_name = #call;   \
		*badinput_want = (w);     \
		return call;              \
	}

/* The body of a case runner: expands the table's BAD_CASES. */
#define BADINPUT_RUN(i, name, want)                      \
	do {                                             \
		int badinput_i = (i), badinput_k = 0;    \
		const char **badinput_name = (name);     \
		int *badinput_want = (want);             \
		BAD_CASES(BADINPUT_CASE_)                \
		return BADINPUT_END;                     \
	} while (0)

/* Fail naming the call when it did not return what the table wants. */
static inline void badinput_expect(const char *name, int rc, int want)
{
	if (rc != want)
		fail_msg("%s: got %d (%s), want %d (%s)", name, rc,
			 mv_strerror(rc), want, mv_strerror(want));
}

#endif
