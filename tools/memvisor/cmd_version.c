/* memvisor version: the library's version and its page/chunk geometry. */
#include <stdio.h>
#include <string.h>

#include <memvisor/host.h>
#include <memvisor/version.h>

#include "cmd.h"

static int version_main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "--help")) {
		printf("usage: memvisor version\n"
		       "Print the version and the page and chunk sizes.\n");
		return tool_output_finish("version") ? 1 : 0;
	}
	if (argc > 1) {
		fprintf(stderr, "memvisor version: unexpected argument '%s'\n"
			"usage: memvisor version\n", argv[1]);
		return 2;
	}
	printf("memvisor %s (page %u bytes, chunk %u pages)\n", mv_version(),
	       MV_PAGE_SIZE, MV_CHUNK_PAGES);
	return tool_output_finish("version") ? 1 : 0;
}

const struct mv_cmd mv_cmd_version = {
	.name = "version",
	.summary = "print the version",
	.main = version_main,
};
