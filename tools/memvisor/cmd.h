/* The memvisor command's subcommands: one file each, cmd_<name>.c. */
#ifndef MV_TOOL_CMD_H
#define MV_TOOL_CMD_H

#include <stdbool.h>

struct mv_cmd {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);  /* argv[0] is the subcommand */
};

/* One line per subcommand; main.c lists them in this order. */
extern const struct mv_cmd mv_cmd_version;
extern const struct mv_cmd mv_cmd_run;
extern const struct mv_cmd mv_cmd_walk;

/* output.c: has a write to stdout failed (noticed at once, so that a long
 * listing stops)? */
bool tool_output_failed(void);
/* Flush stdout: 0, or -MV_EIO after a message naming @cmd and the cause.
 * Every subcommand calls it last and exits 1 when it fails. */
int tool_output_finish(const char *cmd);

#endif
