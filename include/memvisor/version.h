/* memvisor: the library's version.
 *
 * MV_VERSION_* describe the headers a program was compiled with;
 * mv_version() and mv_version_number() the library it runs with. The
 * shared library's soname follows the ABI, not the version: see
 * docs/api.md ("Versions and the ABI"). CMake reads the three numbers
 * below to version the library, so they are the only place to change.
 */
#ifndef MEMVISOR_VERSION_H
#define MEMVISOR_VERSION_H

#include <stdint.h>

#define MV_VERSION_MAJOR 0
#define MV_VERSION_MINOR 1
#define MV_VERSION_PATCH 0

#define MV_VERSION_STR_(x) #x
#define MV_VERSION_STR(x) MV_VERSION_STR_(x)
/* "MAJOR.MINOR.PATCH" of the headers. */
#define MV_VERSION_STRING                                              \
	MV_VERSION_STR(MV_VERSION_MAJOR) "." MV_VERSION_STR(MV_VERSION_MINOR) \
	"." MV_VERSION_STR(MV_VERSION_PATCH)
/* One comparable number: MAJOR << 16 | MINOR << 8 | PATCH. */
#define MV_VERSION_NUMBER                                              \
	((uint32_t)MV_VERSION_MAJOR << 16 | (uint32_t)MV_VERSION_MINOR << 8 | \
	 (uint32_t)MV_VERSION_PATCH)

/* The running library's version as "MAJOR.MINOR.PATCH": a static string,
 * valid for the life of the process. Never fails; any thread. */
const char *mv_version(void);
/* The running library's version in the form of MV_VERSION_NUMBER, so that
 * a program can refuse a library older than its headers:
 *   if (mv_version_number() < MV_VERSION_NUMBER) ...
 * Never fails; any thread. */
uint32_t mv_version_number(void);

#endif
