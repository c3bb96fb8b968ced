/* mv_version and mv_version_number report the version the headers state,
 * in both forms, consistently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/version.h>

static void string_matches_the_headers(void **state)
{
	char want[32];

	(void)state;
	snprintf(want, sizeof(want), "%d.%d.%d", MV_VERSION_MAJOR,
		 MV_VERSION_MINOR, MV_VERSION_PATCH);
	assert_string_equal(mv_version(), want);
	assert_string_equal(MV_VERSION_STRING, want);
}

static void number_orders_like_the_parts(void **state)
{
	uint32_t n = mv_version_number();

	(void)state;
	assert_int_equal(n, MV_VERSION_NUMBER);
	assert_int_equal(n >> 16, MV_VERSION_MAJOR);
	assert_int_equal((n >> 8) & 0xff, MV_VERSION_MINOR);
	assert_int_equal(n & 0xff, MV_VERSION_PATCH);
	assert_true(MV_VERSION_MINOR < 256 && MV_VERSION_PATCH < 256);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(string_matches_the_headers),
		cmocka_unit_test(number_orders_like_the_parts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
