/* The command's standard output: every subcommand writes through stdio and
 * asks here whether everything it wrote reached the file. A full disk, a
 * closed pipe or /dev/full must end the command with exit status 1, not be
 * lost in a buffer. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <memvisor/error.h>

#include "cmd.h"

static int saved_errno;

bool tool_output_failed(void)
{
	if (!ferror(stdout))
		return false;
	if (!saved_errno)
		saved_errno = errno ? errno : EIO;
	return true;
}

int tool_output_finish(const char *cmd)
{
	errno = 0;
	if (fflush(stdout) == 0 && !tool_output_failed())
		return 0;
	tool_output_failed();
	fprintf(stderr, "memvisor %s: writing output: %s (%s)\n", cmd,
		mv_strerror(-MV_EIO), strerror(saved_errno ? saved_errno : EIO));
	return -MV_EIO;
}
