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
#include <string.h>

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

/* The loop over a table whose state compares as bytes: every case runs
 * between snap(&before) and snap(&after) (struct snapshot and snap() in
 * scope, with the runner run_case), @after_call runs right after the call
 * (a statement: undo what a refused call may legally write, such as an
 * out parameter), the result must be the table's and the snapshots equal
 * (a refused call changes nothing), then @check runs (a statement: a
 * consistency check of the fixture). Checks it ran BADINPUT_NCASES. */
#define BADINPUT_RUN_ALL(after_call, check)                                \
	do {                                                               \
		const char *badinput_nm = "";                              \
		int badinput_w = 0, badinput_n;                            \
		for (badinput_n = 0;; badinput_n++) {                      \
			struct snapshot badinput_b, badinput_a;            \
			int badinput_rc;                                   \
			snap(&badinput_b);                                 \
			badinput_rc = run_case(badinput_n, &badinput_nm,   \
					       &badinput_w);               \
			if (badinput_rc == BADINPUT_END)                   \
				break;                                     \
			after_call;                                        \
			badinput_expect(badinput_nm, badinput_rc,          \
					badinput_w);                       \
			snap(&badinput_a);                                 \
			if (memcmp(&badinput_b, &badinput_a,               \
				   sizeof(badinput_b)))                    \
				fail_msg("%s changed something",           \
					 badinput_nm);                     \
			check;                                             \
		}                                                          \
		assert_int_equal(badinput_n, BADINPUT_NCASES);             \
	} while (0)

#endif
