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
