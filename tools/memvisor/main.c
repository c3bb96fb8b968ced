/* memvisor: run simulated guests, benchmark, and inspect VM memory. */
#include <stdio.h>
#include <string.h>

#include "cmd.h"

static const struct mv_cmd *const commands[] = {
	&mv_cmd_version,
	&mv_cmd_run,
	&mv_cmd_walk,
	&mv_cmd_dedup,
};

static void usage(FILE *out)
{
	fprintf(out, "usage: memvisor <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(out, "  %-10s %s\n", commands[i]->name,
			commands[i]->summary);
	fprintf(out, "\n'memvisor <command> --help' describes a command.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return tool_output_finish("help") ? 1 : 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i]->name))
			return commands[i]->main(argc - 1, argv + 1);
	fprintf(stderr, "memvisor: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
