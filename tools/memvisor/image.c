/* Raw guest RAM images (image.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memvisor/host.h>

#include "image.h"

/* Pages per populate call: one all-or-nothing batch of the VM layer. */
#define POPULATE_RUN 256u

/* O_NONBLOCK: open() of a FIFO without a writer would wait forever, and
 * a device may block too; fstat then refuses anything that is not a
 * regular file (on a regular file O_NONBLOCK changes nothing). */
int image_map(const char *cmd, const char *path, struct image *img)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	const char *why = NULL;

	if (fd < 0 || fstat(fd, &st) < 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	else if (st.st_size == 0)
		why = "the image is empty";
	if (!why) {
		img->mem = mmap(NULL, (size_t)st.st_size, PROT_READ,
				MAP_PRIVATE, fd, 0);
		if (img->mem == MAP_FAILED)
			why = strerror(errno);
	}
	if (why) {
		fprintf(stderr, "memvisor %s: %s: %s\n", cmd, path, why);
		if (fd >= 0)
			close(fd);
		return 1;
	}
	img->path = path;
	img->size = (size_t)st.st_size;
	img->fd = fd;
	return 0;
}

void image_unmap(struct image *img)
{
	munmap(img->mem, img->size);
	close(img->fd);
}

static char shrank_msg[128];
static size_t shrank_len;

static void image_shrank(int sig)
{
	(void)sig;
	if (write(STDERR_FILENO, shrank_msg, shrank_len) < 0)
		_exit(1);
	_exit(1);
}

void image_catch_sigbus(const char *cmd)
{
	struct sigaction sa;
	int n = snprintf(shrank_msg, sizeof(shrank_msg),
			 "memvisor %s: an image file shrank while it was "
			 "read\n", cmd);

	shrank_len = n > 0 && (size_t)n < sizeof(shrank_msg) ? (size_t)n : 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = image_shrank;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* Populate [off, end) of the image (page aligned off; end may cut the
 * last page, which is then padded with zeros). */
static int populate_range(struct mv_vm *vm, const struct image *img,
			  uint64_t base, uint64_t off, uint64_t end)
{
	static uint8_t tail[MV_PAGE_SIZE];
	const uint8_t *mem = img->mem;

	while (off < end) {
		uint64_t full = (end - off) / MV_PAGE_SIZE;
		uint32_t n = full < POPULATE_RUN ? (uint32_t)full : POPULATE_RUN;
		const void *src = mem + off;
		int rc;

		if (!n) {  /* the image's last, partial page */
			memset(tail, 0, sizeof(tail));
			memcpy(tail, mem + off, end - off);
			src = tail;
			n = 1;
		}
		rc = mv_vm_phys_populate(vm, (base + off) >> MV_PAGE_SHIFT, n,
					 src);
		if (rc)
			return rc;
		off += (uint64_t)n * MV_PAGE_SIZE;
	}
	return 0;
}

/* The file's data extents only (SEEK_DATA): a sparse image's holes are
 * zeros and need not be read. Without SEEK_DATA support, the whole file
 * is one extent. */
int image_each_extent(const struct image *img, image_extent_fn fn,
		      void *opaque)
{
	off_t pos = 0, data, hole;
	int rc = 0;

	while (!rc && (uint64_t)pos < img->size) {
		data = lseek(img->fd, pos, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;  /* only a hole is left */
		if (data < 0) {
			data = pos;
			hole = (off_t)img->size;
		} else {
			hole = lseek(img->fd, data, SEEK_HOLE);
			if (hole < 0 || (uint64_t)hole > img->size)
				hole = (off_t)img->size;
		}
		data &= ~(off_t)(MV_PAGE_SIZE - 1);
		rc = fn(opaque, (uint64_t)data, (uint64_t)hole);
		pos = (hole + MV_PAGE_SIZE - 1) & ~(off_t)(MV_PAGE_SIZE - 1);
	}
	return rc;
}

struct load {
	struct mv_vm *vm;
	const struct image *img;
	uint64_t base;
};

static int load_extent(void *opaque, uint64_t off, uint64_t end)
{
	const struct load *l = opaque;

	return populate_range(l->vm, l->img, l->base, off, end);
}

int image_load(struct mv_vm *vm, const struct image *img, uint64_t base)
{
	struct load l = { vm, img, base };

	return image_each_extent(img, load_extent, &l);
}
