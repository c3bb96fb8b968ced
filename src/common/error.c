#include <memvisor/error.h>
#include <string.h>

static const char *const messages[MV_ELAST - MV_EFIRST] = {
	[MV_EINVAL - MV_EFIRST] = "invalid argument",
	[MV_ENOMEM - MV_EFIRST] = "out of host memory",
	[MV_EBUDGET - MV_EFIRST] = "host page budget exhausted",
	[MV_ERESERVATION - MV_EFIRST] = "VM reservation exceeded",
	[MV_ERANGE - MV_EFIRST] = "address or id out of range",
	[MV_EEXIST - MV_EFIRST] = "conflicts with an existing registration",
	[MV_ENOENT - MV_EFIRST] = "no such object",
	[MV_EBUSY - MV_EFIRST] = "object busy",
	[MV_ESTATE - MV_EFIRST] = "operation not allowed in this state",
	[MV_ELIMIT - MV_EFIRST] = "fixed limit reached",
	[MV_ECORRUPT - MV_EFIRST] = "malformed input data",
	[MV_EIO - MV_EFIRST] = "input/output error",
	[MV_ENEEDSEED - MV_EFIRST] = "seeded pool needs more memory",
	[MV_EINTERNAL - MV_EFIRST] = "internal invariant failed (library bug)",
};

const char *mv_strerror(int rc)
{
	int code = rc < 0 ? -rc : rc;

	if (rc == 0)
		return "success";
	if (code >= MV_EFIRST && code < MV_ELAST)
		return messages[code - MV_EFIRST];
	if (code < MV_EFIRST)
		return strerror(code);
	return "unknown error";
}
