/* mv_strerror names every library code, errno values and success. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/error.h>

static void every_code_has_its_own_message(void **state)
{
	(void)state;
	for (int c = MV_EFIRST; c < MV_ELAST; c++) {
		const char *m = mv_strerror(-c);
		assert_non_null(m);
		assert_string_not_equal(m, "unknown error");
		for (int d = MV_EFIRST; d < c; d++)
			assert_string_not_equal(m, mv_strerror(-d));
	}
}

/* Codes are part of the ABI: a new one is appended before MV_ELAST and no
 * existing number moves. */
static void numbers_never_move(void **state)
{
	static const int pinned[][2] = {
		{ MV_EINVAL, 1000 }, { MV_ENOMEM, 1001 }, { MV_EBUDGET, 1002 },
		{ MV_ERESERVATION, 1003 }, { MV_ERANGE, 1004 },
		{ MV_EEXIST, 1005 }, { MV_ENOENT, 1006 }, { MV_EBUSY, 1007 },
		{ MV_ESTATE, 1008 }, { MV_ELIMIT, 1009 },
		{ MV_ECORRUPT, 1010 }, { MV_EIO, 1011 },
		{ MV_ENEEDSEED, 1012 }, { MV_EINTERNAL, 1013 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(pinned) / sizeof(pinned[0]); i++)
		assert_int_equal(pinned[i][0], pinned[i][1]);
	assert_int_equal(MV_ELAST, 1014);
	assert_string_not_equal(mv_strerror(-MV_EINTERNAL),
				mv_strerror(-MV_ECORRUPT));
}

static void errno_values_and_success(void **state)
{
	(void)state;
	assert_string_equal(mv_strerror(0), "success");
	assert_string_equal(mv_strerror(-ENOMEM), strerror(ENOMEM));
	assert_string_equal(mv_strerror(-MV_ELAST), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_code_has_its_own_message),
		cmocka_unit_test(numbers_never_move),
		cmocka_unit_test(errno_values_and_success),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
