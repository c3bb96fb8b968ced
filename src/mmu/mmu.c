/* A VM's shadow MMU: created by mv_mmu_configure or the first vCPU,
 * destroyed by mv_vm_destroy (src/phys/vm_mmu.h). */
#include <stdlib.h>
#include <string.h>

#include "mmu/shadow.h"
#include "phys/vm_mmu.h"

#define POOL_MIN_DEFAULT 8
#define POOL_MAX_DEFAULT 32
#define POOL_MAX_LIMIT 4096
#define CAP_MIN 64
/* Every vCPU's roots may stay pinned after a zap. */
#define ROOTS_CACHED_ALL ((ROOTS_CACHED + 1) * MV_VCPU_MAX)
#define CAP_LIMIT (SP_IDX_MAX - ROOTS_CACHED_ALL - 64)

static uint64_t default_cap(struct mv_vm *vm)
{
	struct mv_vm_stats st;
	uint64_t cap = CAP_MIN;

	if (mv_vm_get_stats(vm, &st) == 0 && st.ram_pages / 50 > cap)
		cap = st.ram_pages / 50;
	return cap < CAP_LIMIT ? cap : CAP_LIMIT;
}

/* The SHADOW reservation must cover the cap and a full pool. */
static int reserve_shadow(struct mv_mmu *m)
{
	struct mv_host_vm_stats st;
	uint64_t need = m->cap + m->pool.max;
	int rc = mv_host_vm_get_stats(m->host, m->vmid, &st);

	if (rc || st.reserved.shadow >= need)
		return rc;
	st.reserved.shadow = need;
	return mv_host_vm_reserve(m->host, m->vmid, &st.reserved);
}

static int tables_init(struct mv_mmu *m)
{
	uint32_t buckets = 64;

	while (buckets < m->cap / 2 && buckets < (1u << 22))
		buckets <<= 1;
	m->sps_cap = (uint32_t)m->cap + ROOTS_CACHED_ALL + 64;
	m->hash = calloc(buckets, sizeof(*m->hash));
	m->pool.free = calloc(m->pool.max + 1, sizeof(*m->pool.free));
	m->sps = calloc(m->sps_cap, sizeof(*m->sps));
	m->free_idx = calloc(m->sps_cap, sizeof(*m->free_idx));
	if (!m->hash || !m->pool.free || !m->sps || !m->free_idx)
		return -MV_ENOMEM;
	m->hash_mask = buckets - 1;
	m->sps_len = 1;  /* index 0 is never used: spte id 0 means "none" */
	return 0;
}

static void mmu_free(struct mv_mmu *m)
{
	free(m->hash);
	free(m->pool.free);
	free(m->sps);
	free(m->free_idx);
	free(m->rnodes);
	free(m);
}

static void mmu_destroy(void *opaque)
{
	struct mv_mmu *m = opaque;

	mv_vm_set_notify(m->vm, NULL, NULL);
	mv_vm_set_track_hook(m->vm, NULL, NULL);
	for (uint32_t i = 0; i < MV_VCPU_MAX; i++)
		if (m->vcpus[i]) {
			vh_free(m->vcpus[i]);
			free(m->vcpus[i]->ring.e);
			free(m->vcpus[i]);
		}
	for (uint32_t i = 0; i < MV_DIRTY_SLOTS; i++)
		free(m->slots[i].bits);
	fb_free_all(m);
	sp_free_all(m);
	pool_drain(m);
	vm_mmu_set(m->vm, NULL, NULL);
	mmu_free(m);
}

static int mmu_create(struct mv_vm *vm, const struct mv_mmu_config *cfg,
		      struct mv_mmu **out)
{
	struct mv_mmu *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		return -MV_ENOMEM;
	m->vm = vm;
	m->host = mv_vm_host(vm);
	m->vmid = mv_vm_id(vm);
	m->cap = cfg && cfg->max_shadow_pages ? cfg->max_shadow_pages
					      : default_cap(vm);
	m->pool.min = cfg && cfg->pool_max ? cfg->pool_min : POOL_MIN_DEFAULT;
	m->pool.max = cfg && cfg->pool_max ? cfg->pool_max : POOL_MAX_DEFAULT;
	m->valid_gen = 1;
	m->mmio_gen = mv_vm_layout_gen(vm);
	rc = tables_init(m);
	if (!rc)
		rc = reserve_shadow(m);
	if (rc) {
		mmu_free(m);
		return rc;
	}
	mv_vm_set_notify(vm, mmu_notify_hook, m);
	mv_vm_set_track_hook(vm, mmu_track_hook, m);
	vm_mmu_set(vm, m, mmu_destroy);
	*out = m;
	return 0;
}

struct mv_mmu *mmu_of(struct mv_vm *vm)
{
	return vm_mmu_get(vm);
}

/* The VM's MMU, created with the defaults if it does not exist yet. */
int mmu_get(struct mv_vm *vm, struct mv_mmu **out)
{
	int rc = 0;

	mv_vm_lock(vm);
	*out = vm_mmu_get(vm);
	if (!*out)
		rc = mmu_create(vm, NULL, out);
	mv_vm_unlock(vm);
	return rc;
}

int mv_mmu_configure(struct mv_vm *vm, const struct mv_mmu_config *cfg)
{
	struct mv_mmu *m;
	int rc;

	if (!vm || !cfg)
		return -MV_EINVAL;
	if (cfg->pool_min > cfg->pool_max || cfg->pool_max > POOL_MAX_LIMIT ||
	    cfg->max_shadow_pages > CAP_LIMIT)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	rc = vm_mmu_get(vm) ? -MV_ESTATE : mmu_create(vm, cfg, &m);
	mv_vm_unlock(vm);
	return rc;
}

int mv_mmu_get_stats(struct mv_vm *vm, struct mv_mmu_stats *st)
{
	struct mv_mmu *m;

	if (!vm || !st)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	m = vm_mmu_get(vm);
	if (m) {
		*st = m->st;
		st->shadow_pages = m->in_use;
		st->shadow_pages_max = m->cap;
		st->pool_free = m->pool.n;
		st->pool_refills = m->pool.refills;
		st->pool_returns = m->pool.returns;
		st->obsolete = m->obsolete;
		st->tracked_gfns = m->tracked;
		st->mmio_gen = atomic_load(&m->mmio_gen) & MMIO_GEN_MASK;
		st->vcpus = m->nvcpus;
		st->metadata_bytes = sizeof(*m) +
			(uint64_t)(m->hash_mask + 1) * sizeof(*m->hash) +
			(uint64_t)m->sps_cap * (sizeof(*m->sps) +
						sizeof(*m->free_idx)) +
			(uint64_t)m->rnodes_cap * sizeof(*m->rnodes) +
			m->meta_bytes;
	}
	mv_vm_unlock(vm);
	return m ? 0 : -MV_ENOENT;
}
