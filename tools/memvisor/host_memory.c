/* How much memory this process may still fill: the kernel's MemAvailable,
 * lowered by the memory limit of the process's cgroup (v2 memory.max, v1
 * memory.limit_in_bytes, minus what the cgroup already uses). A command
 * that is about to fill gigabytes asks first, so that a run the machine
 * cannot hold is refused with a message instead of ending in the OOM
 * killer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

/* The first number in @path (after @key when given), or UINT64_MAX. */
static uint64_t read_number(const char *path, const char *key)
{
	char line[256];
	uint64_t v = UINT64_MAX;
	size_t n = key ? strlen(key) : 0;
	FILE *f = fopen(path, "r");

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		if (key && strncmp(line, key, n))
			continue;
		char *p = line + n, *end;
		unsigned long long x;

		while (*p == ' ' || *p == '\t')
			p++;
		x = strtoull(p, &end, 10);
		if (end != p)
			v = x;
		break;
	}
	fclose(f);
	return v;
}

/* Limit minus usage for one cgroup directory, or UINT64_MAX. */
static uint64_t cgroup_room(const char *dir, const char *limit_file,
			    const char *usage_file)
{
	char path[512];
	uint64_t limit, usage;

	snprintf(path, sizeof(path), "%s/%s", dir, limit_file);
	limit = read_number(path, NULL);  /* "max" reads as no number */
	if (limit == UINT64_MAX || limit >= (1ull << 62))
		return UINT64_MAX;
	snprintf(path, sizeof(path), "%s/%s", dir, usage_file);
	usage = read_number(path, NULL);
	if (usage == UINT64_MAX)
		usage = 0;
	return usage < limit ? limit - usage : 0;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* The process's own cgroup (from /proc/self/cgroup), v2 and v1. */
static uint64_t cgroup_available(void)
{
	char line[512], dir[600];
	uint64_t room = UINT64_MAX;
	FILE *f = fopen("/proc/self/cgroup", "r");

	if (!f)
		return UINT64_MAX;
	while (fgets(line, sizeof(line), f)) {
		char *path = strrchr(line, ':');

		if (!path)
			continue;
		path[strcspn(path, "\n")] = 0;
		if (!strncmp(line, "0::", 3)) {
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup%s", path + 1);
			room = min_u64(room, cgroup_room(dir, "memory.max",
							 "memory.current"));
		} else if (strstr(line, ":memory:")) {
			snprintf(dir, sizeof(dir), "/sys/fs/cgroup/memory%s",
				 path + 1);
			room = min_u64(room, cgroup_room(dir,
					"memory.limit_in_bytes",
					"memory.usage_in_bytes"));
		}
	}
	fclose(f);
	return room;
}

uint64_t tool_memory_available(void)
{
	uint64_t kib = read_number("/proc/meminfo", "MemAvailable:");
	uint64_t avail = kib == UINT64_MAX ? UINT64_MAX : kib * 1024;

	return min_u64(avail, cgroup_available());
}
