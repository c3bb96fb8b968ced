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
		cmocka_unit_test(errno_values_and_success),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
