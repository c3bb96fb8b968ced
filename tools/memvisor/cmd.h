/* The memvisor command's subcommands: one file each, cmd_<name>.c. */
#ifndef MV_TOOL_CMD_H
#define MV_TOOL_CMD_H

#include <stdbool.h>
#include <stdint.h>

struct mv_cmd {
	const char *name;
	const char *summary;
	int (*main)(int argc, char **argv);  /* argv[0] is the subcommand */
};

/* One line per subcommand; main.c lists them in this order. */
extern const struct mv_cmd mv_cmd_version;
extern const struct mv_cmd mv_cmd_run;
extern const struct mv_cmd mv_cmd_walk;
extern const struct mv_cmd mv_cmd_dedup;

/* number.c: a whole number, decimal (digits only) or hexadecimal (hex
 * digits, one optional 0x or 0X in front), fitting 64 bits: no spaces,
 * signs, suffixes or empty strings. 0, -MV_EINVAL (not such a number) or
 * -MV_ERANGE (beyond 2^64 - 1); *out is set only on success. */
int tool_parse_number(const char *s, bool hex, uint64_t *out);

/* host_memory.c: bytes this process may still fill (MemAvailable, capped
 * by its cgroup's limit), UINT64_MAX when unknown. */
uint64_t tool_memory_available(void);

/* output.c: has a write to stdout failed (noticed at once, so that a long
 * listing stops)? */
bool tool_output_failed(void);
/* Flush stdout: 0, or -MV_EIO after a message naming @cmd and the cause.
 * Every subcommand calls it last and exits 1 when it fails. */
int tool_output_finish(const char *cmd);

#endif
