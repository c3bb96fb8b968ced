/* The one number parser of the command: every numeric option and argument
 * of every subcommand goes through it, so that they all accept and refuse
 * the same spellings. strtoull is not used: it skips leading spaces, takes
 * a sign (and wraps "-1" to 2^64 - 1) and, in base 16, a second 0x. */
#include <memvisor/error.h>

#include "cmd.h"

static int digit_value(char c, bool hex)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (hex && c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (hex && c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tool_parse_number(const char *s, bool hex, uint64_t *out)
{
	uint64_t v = 0, base = hex ? 16 : 10;

	if (!s || !out)
		return -MV_EINVAL;
	if (hex && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	if (!*s)
		return -MV_EINVAL;
	for (; *s; s++) {
		int d = digit_value(*s, hex);

		if (d < 0)
			return -MV_EINVAL;
		if (v > (UINT64_MAX - (uint64_t)d) / base)
			return -MV_ERANGE;
		v = v * base + (uint64_t)d;
	}
	*out = v;
	return 0;
}
