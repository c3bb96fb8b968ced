/* Helpers shared by the host pool tests. */
#ifndef MV_TESTS_HOST_TEST_H
#define MV_TESTS_HOST_TEST_H

#include <memvisor/host.h>
#include <string.h>

/* Two stats snapshots are identical (a failed call changed nothing). */
static inline int host_stats_equal(const struct mv_host_stats *a,
				   const struct mv_host_stats *b)
{
	return !memcmp(a, b, sizeof(*a));
}

/* The same, except how many freed pages were punched back to the kernel:
 * a refused move frees its target, whose content the mover may have
 * written, and so gives it back to the kernel. */
static inline int host_stats_equal_but_punched(const struct mv_host_stats *a,
					       const struct mv_host_stats *b)
{
	struct mv_host_stats x = *a, y = *b;

	x.pages_punched = y.pages_punched = 0;
	return host_stats_equal(&x, &y);
}

static inline struct mv_host *host_new(uint64_t budget, enum mv_overcommit oc,
				       uint32_t cache)
{
	struct mv_host_config cfg = { .budget_pages = budget,
				      .overcommit = oc,
				      .empty_chunk_cache = cache };
	struct mv_host *h = NULL;

	if (mv_host_create(&cfg, &h))
		return NULL;
	return h;
}

static inline mv_vmid vm_new(struct mv_host *h, uint64_t base)
{
	struct mv_reservation res = { .base = base, .shadow = 64, .fixed = 64 };
	mv_vmid vm = 0;

	if (mv_host_vm_create(h, &res, &vm))
		return 0;
	return vm;
}

/* xorshift64: reproducible random test cases, a number below @n. */
static inline uint64_t host_rnd(uint64_t *state, uint64_t n)
{
	*state ^= *state << 13;
	*state ^= *state >> 7;
	*state ^= *state << 17;
	return *state % n;
}

#endif
