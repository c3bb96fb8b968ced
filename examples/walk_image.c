/* Walk the page tables in a raw image of guest RAM.
 *
 *   walk_image IMAGE CR3            list every mapped page
 *   walk_image IMAGE CR3 VA...      translate each VA (hexadecimal)
 *
 * The image holds guest-physical memory from address 0 (QEMU writes one
 * with -object memory-backend-file,share=on); the tables are read as a
 * 64-bit guest with 4-level paging and no-execute enabled sees them. The
 * file is mapped read-only, so the walk sets no accessed or dirty bits.
 *
 * Build:  cc -o walk_image walk_image.c $(pkg-config --cflags --libs memvisor)
 */
#define _POSIX_C_SOURCE 200809L
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memvisor/mmu.h>

static const char *perm_str(unsigned perm)
{
	static char s[4];

	s[0] = perm & MV_PERM_W ? 'w' : '-';
	s[1] = perm & MV_PERM_U ? 'u' : '-';
	s[2] = perm & MV_PERM_NX ? '-' : 'x';
	return s;
}

static int print_leaf(void *opaque, const struct mv_walk_leaf *l)
{
	(void)opaque;
	printf("%016" PRIx64 " -> %012" PRIx64 " %7" PRIu64 "K %s\n", l->va,
	       l->gpa, l->page_size >> 10, perm_str(l->perm));
	return 0;
}

static void translate(const struct mv_paging *pg, const struct mv_gmem *gm,
		      const char *arg)
{
	uint64_t va = strtoull(arg, NULL, 16);
	struct mv_walk w;

	switch (mv_walk(pg, gm, va, MV_ACC_NO_AD, &w)) {
	case MV_WALK_OK:
		printf("%016" PRIx64 " -> %012" PRIx64 " %7" PRIu64 "K %s\n",
		       va, w.gpa, w.page_size >> 10, perm_str(w.perm));
		break;
	case MV_WALK_PF:
		printf("%016" PRIx64 " page fault, error code 0x%" PRIx32
		       " at level %u\n", va, w.error_code, w.level);
		break;
	case MV_WALK_GP:
		printf("%016" PRIx64 " not canonical (#GP)\n", va);
		break;
	default:
		printf("%016" PRIx64 " a table lies outside the image\n", va);
	}
}

/* Map @path read-only; the mapping lives until the process exits. */
static void *map_image(const char *path, uint64_t *size)
{
	struct stat st;
	void *mem = MAP_FAILED;
	int fd = open(path, O_RDONLY);

	if (fd >= 0 && fstat(fd, &st) == 0 && st.st_size > 0)
		mem = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE,
			   fd, 0);
	if (fd >= 0)
		close(fd);
	if (mem == MAP_FAILED)
		return NULL;
	*size = (uint64_t)st.st_size;
	return mem;
}

int main(int argc, char **argv)
{
	struct mv_cpu_regs regs = {
		.cr0 = MV_CR0_PG | MV_CR0_WP | MV_CR0_PE,
		.cr4 = MV_CR4_PAE,
		.efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE,
	};
	struct mv_gmem_flat flat;
	struct mv_paging pg;
	struct mv_gmem gm;
	uint64_t size;
	void *mem;
	int rc;

	if (argc < 3) {
		fprintf(stderr, "usage: walk_image IMAGE CR3 [VA...]\n");
		return 2;
	}
	mem = map_image(argv[1], &size);
	if (!mem) {
		perror(argv[1]);
		return 1;
	}
	regs.cr3 = strtoull(argv[2], NULL, 16);
	rc = mv_gmem_flat_init(&gm, &flat, mem, 0, size, false);
	if (rc == 0)
		rc = mv_paging_init(&pg, &regs, NULL, &gm);
	if (rc != MV_WALK_OK) {
		fprintf(stderr, "walk_image: cannot load CR3 %s: %s\n",
			argv[2], rc < 0 ? mv_strerror(rc)
			: rc == MV_WALK_GP ? "#GP" : "tables outside the image");
		return 1;
	}
	if (argc == 3)
		rc = mv_walk_dump(&pg, &gm, print_leaf, NULL);
	for (int i = 3; i < argc; i++)
		translate(&pg, &gm, argv[i]);
	if (rc)
		fprintf(stderr, "walk_image: %s\n", mv_strerror(rc));
	return rc ? 1 : 0;
}
