/* The library's own version, fixed when it was compiled (so that a program
 * built against other headers can tell which library it runs with). */
#include <memvisor/version.h>

const char *mv_version(void)
{
	return MV_VERSION_STRING;
}

uint32_t mv_version_number(void)
{
	return MV_VERSION_NUMBER;
}
