/* The contents of a set of raw guest RAM images, counted exactly: what
 * the best possible page sharing could achieve on them (dedup's
 * reference). */
#ifndef MV_TOOL_CENSUS_H
#define MV_TOOL_CENSUS_H

#include <stdint.h>

#include "image.h"

struct census {
	uint64_t pages;            /* guest pages (a partial last page counts) */
	uint64_t zero_pages;       /* pages of zeros */
	uint64_t distinct;         /* distinct non-zero contents, all images */
	uint64_t distinct_per_vm;  /* the same within each image, summed */
};

/* Count @n images. Contents are grouped by XXH3-64 and told apart with
 * memcmp, so hash collisions do not lower the counts. 0 or -MV_ENOMEM. */
int census_take(const struct image *imgs, int n, struct census *c);

#endif
