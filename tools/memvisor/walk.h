/* memvisor walk: what cmd_walk.c (options, the walker, output) shares with
 * walk_shadow.c (--shadow: the same answers from a vCPU's shadow MMU). */
#ifndef MV_TOOL_WALK_H
#define MV_TOOL_WALK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <memvisor/mmu.h>

#include "image.h"

struct walk_opts {
	const char *image;
	uint64_t base, pkru;
	struct mv_cpu_regs regs;
	struct mv_cpu_model cpu;
	const char *mode;
	unsigned acc;
	bool have_cr3, dump, access_given, lenient_pdpte, shadow;
};

/* One result line, exactly as the walker's: "<va> -> <gpa> ..." or
 * "<va> fault ..." (w->status, gpa, page_size, leaf, perm, error_code). */
void walk_print(const struct mv_paging *pg, uint64_t va,
		const struct mv_walk *w);
/* One --dump line; -MV_EIO once stdout failed (stops a long dump). */
int walk_print_leaf(void *opaque, const struct mv_walk_leaf *l);

/* walk_shadow.c. @pg and @gm: the walker's view of the image, set up
 * and checked by cmd_walk.c (the same register errors with and without
 * --shadow). The exit status of the command. */
int walk_shadow_vas(const struct walk_opts *o, const struct image *img,
		    const struct mv_paging *pg, const struct mv_gmem *gm,
		    const uint64_t *vas, int n);
int walk_shadow_dump(const struct walk_opts *o, const struct image *img,
		     const struct mv_paging *pg, const struct mv_gmem *gm);

#endif
