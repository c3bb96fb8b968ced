/* Shared pieces of the bad-input tables (tests/<layer>/test_*_badinput.c).
 *
 * A table is a macro BAD_CASES(X) listing X(wanted return code, call). A
 * case runner built with BADINPUT_RUN(i, name, want) runs case @i only and
 * returns its result, or 1 past the last case. Include after <cmocka.h>. */
#ifndef MV_TESTS_BADINPUT_H
#define MV_TESTS_BADINPUT_H

#include <memvisor/error.h>

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
		return 1;                                \
	} while (0)

/* Fail naming the call when it did not return what the table wants. */
static inline void badinput_expect(const char *name, int rc, int want)
{
	if (rc != want)
		fail_msg("%s: got %d (%s), want %d (%s)", name, rc,
			 mv_strerror(rc), want, mv_strerror(want));
}

#endif
