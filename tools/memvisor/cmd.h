/* The memvisor command's subcommands: one file each, cmd_<name>.c. */
#ifndef MV_TOOL_CMD_H
#define MV_TOOL_CMD_H

struct mv_cmd {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);  /* argv[0] is the subcommand */
};

/* One line per subcommand; main.c lists them in this order. */
extern const struct mv_cmd mv_cmd_version;
extern const struct mv_cmd mv_cmd_run;
extern const struct mv_cmd mv_cmd_walk;

#endif
