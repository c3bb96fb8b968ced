/* memvisor version: the library's version and its page/chunk geometry. */
#include <stdio.h>

#include <memvisor/host.h>

#include "cmd.h"

static int version_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	printf("memvisor 0.1.0 (page %u bytes, chunk %u pages)\n",
	       MV_PAGE_SIZE, MV_CHUNK_PAGES);
	return 0;
}

const struct mv_cmd mv_cmd_version = {
	.name = "version",
	.summary = "print the version",
	.main = version_main,
};
