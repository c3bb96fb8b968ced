/* Raw guest RAM images: mapped read-only for the walker, and loaded into
 * a VM through the restore path (populate) for the commands that run a
 * VM on them (walk --shadow, dedup). */
#ifndef MV_TOOL_IMAGE_H
#define MV_TOOL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include <memvisor/vm.h>

struct image {
	const char *path;
	void *mem;      /* the whole file, PROT_READ */
	size_t size;    /* bytes, > 0 */
	int fd;         /* open for SEEK_DATA while mapped */
};

/* Map @path: a non-empty regular file (FIFOs and devices are refused
 * without blocking). 0, or 1 after a message "memvisor @cmd: PATH: why"
 * on stderr. */
int image_map(const char *cmd, const char *path, struct image *img);
void image_unmap(struct image *img);

/* A file that shrinks under its mapping turns the next read into SIGBUS:
 * from now on that ends the process with exit status 1 and a message
 * naming @cmd (a static string), not with the signal. */
void image_catch_sigbus(const char *cmd);

/* Call @fn for each extent [off, end) of the file that may hold data
 * (SEEK_DATA; off page aligned, end the extent's end or the file's),
 * in order; the holes between them read as zeros. Stops at the first
 * non-zero return of @fn and returns it; 0 when all were seen. */
typedef int (*image_extent_fn)(void *opaque, uint64_t off, uint64_t end);
int image_each_extent(const struct image *img, image_extent_fn fn,
		      void *opaque);

/* Load @img into @vm at guest-physical @base (page aligned) through
 * mv_vm_phys_populate: pages of zeros stay ZERO, and the holes of a
 * sparse file are not even read. The image's last partial page is padded
 * with zeros. 0 or the populate error (the pages before the failing batch
 * stay loaded). */
int image_load(struct mv_vm *vm, const struct image *img, uint64_t base);

#endif
