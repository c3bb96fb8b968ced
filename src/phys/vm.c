/* A VM's guest-physical space: creation, destruction, the lock. */
#include <stdlib.h>
#include <string.h>

#include "vm_internal.h"
#include "vm_mmu.h"

static int lock_init(struct mv_vm *vm)
{
	pthread_mutexattr_t attr;
	int rc;

	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	rc = pthread_mutex_init(&vm->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (rc)
		return -rc;
	pthread_mutex_init(&vm->req_lock, NULL);
	pthread_cond_init(&vm->req_cond, NULL);
	return 0;
}

static void count_pages(struct mv_vm *vm)
{
	for (uint32_t i = 0; i < vm->nranges; i++)
		range_count(vm, &vm->ranges[i], 1);
}

static int roms_fill(struct mv_vm *vm, const struct mv_vm_config *cfg)
{
	for (uint32_t i = 0; i < cfg->nranges; i++) {
		const struct mv_vm_range *c = &cfg->ranges[i];
		int rc;

		if (c->type != MV_PAGE_ROM)
			continue;
		rc = range_rom_fill(vm, range_find(vm, c->gpa >> MV_PAGE_SHIFT),
				    c);
		if (rc)
			return rc;
	}
	return 0;
}

static int vm_setup(struct mv_vm *vm, const struct mv_vm_config *cfg)
{
	struct mv_reservation res = { .shadow = cfg->shadow_pages };
	uint64_t count[3];
	int rc;

	/* 0/0 picks the defaults. The marks are checked as given, so a low
	 * mark without a high one (low > 0 = high) is refused rather than
	 * silently replaced by the defaults; so is a high one over the
	 * bound. */
	if (cfg->handy_low > cfg->handy_high ||
	    cfg->handy_high > MV_VM_HANDY_MAX)
		return -MV_EINVAL;
	vm->handy_low = cfg->handy_high ? cfg->handy_low : 16;
	vm->handy_high = cfg->handy_high ? cfg->handy_high : 64;
	/* A copy-on-write or a share holds two pages' pointers at once: with
	 * one mapped chunk the second would unmap the first. */
	if (cfg->balloon_policy > MV_BALLOON_WRITE_ERROR ||
	    cfg->map_chunks_max == 1)
		return -MV_EINVAL;
	vm->balloon_policy = cfg->balloon_policy;
	/* Everything checked and the account opened before any structure
	 * of the VM's size exists: a refusal costs nothing. */
	rc = ranges_check(cfg, count);
	if (rc)
		return rc;
	res.base = count[MV_PAGE_RAM] + vm->handy_high;
	res.fixed = count[MV_PAGE_ROM];
	rc = mv_host_vm_create(vm->host, &res, &vm->id);
	if (rc)
		return rc;
	vm->handy = calloc(vm->handy_high, sizeof(*vm->handy));
	if (!vm->handy)
		return -MV_ENOMEM;
	rc = ranges_build(vm, cfg);
	if (rc)
		return rc;
	count_pages(vm);
	rc = mapcache_init(&vm->map, cfg->map_chunks_max);
	if (rc)
		return rc;
	rc = mv_host_vm_set_mover(vm->host, vm->id, vm_page_move, vm);
	return rc ? rc : roms_fill(vm, cfg);
}

int mv_vm_create(struct mv_host *host, const struct mv_vm_config *cfg,
		 struct mv_vm **out)
{
	struct mv_vm *vm;
	int rc;

	if (!host || !cfg || !out)
		return -MV_EINVAL;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -MV_ENOMEM;
	vm->host = host;
	rc = lock_init(vm);
	if (rc) {
		free(vm);
		return rc;
	}
	rc = vm_setup(vm, cfg);
	if (rc) {
		mv_vm_destroy(vm);
		return rc;
	}
	drain_register(vm);
	*out = vm;
	return 0;
}

/* Shared references must go before the account can close. Only pages of
 * descriptors ever used are visited (desc.c). */
static void put_shared(struct mv_vm *vm)
{
	for (uint32_t i = 0; i < vm->nranges && vm->st.pages[MV_PAGE_SHARED];
	     i++) {
		struct phys_range *r = &vm->ranges[i];

		for (uint64_t j = desc_next_used(r, 0); j < r->npages;
		     j = desc_next_used(r, j + 1))
			if (r->pages[j].state == MV_PAGE_SHARED)
				mv_host_share_put(vm->host, vm->id,
						  r->pages[j].host_id);
	}
}

void mv_vm_destroy(struct mv_vm *vm)
{
	if (!vm)
		return;
	/* First: no other VM's drain may reach this one any more. */
	drain_unregister(vm);
	requests_drain(vm);
	if (vm->mmu_destroy)
		vm->mmu_destroy(vm->mmu);
	if (vm->id) {
		/* Waits for a move in flight (its mover needs @vm): after
		 * this no mover call can reach @vm, and with the shared
		 * references gone the account always closes. */
		mv_host_vm_set_mover(vm->host, vm->id, NULL, NULL);
		put_shared(vm);
		handy_release_all(vm);
		mv_host_vm_destroy(vm->host, vm->id);
	}
	mapcache_destroy(&vm->map);
	ranges_free(vm);
	handlers_free(vm);
	free(vm->handy);
	pthread_cond_destroy(&vm->req_cond);
	pthread_mutex_destroy(&vm->req_lock);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}

void *vm_mmu_get(struct mv_vm *vm)
{
	return vm->mmu;
}

void vm_mmu_set(struct mv_vm *vm, void *mmu, void (*destroy)(void *mmu))
{
	vm->mmu = mmu;
	vm->mmu_destroy = destroy;
}

mv_vmid mv_vm_id(const struct mv_vm *vm)
{
	return vm ? vm->id : 0;
}

struct mv_host *mv_vm_host(const struct mv_vm *vm)
{
	return vm ? vm->host : NULL;
}

void mv_vm_lock(struct mv_vm *vm)
{
	if (!vm)
		return;
	mmu_thread_quiesce();
	pthread_mutex_lock(&vm->lock);
}

void mv_vm_unlock(struct mv_vm *vm)
{
	if (!vm)
		return;
	drain_if_wanted(vm);   /* another VM met the budget meanwhile */
	pthread_mutex_unlock(&vm->lock);
	mmu_thread_resume();
}

/* The lookup itself takes the lock (recursive: callers usually hold it)
 * since ranges may be added or removed by another thread. */
struct mv_page *mv_vm_page(struct mv_vm *vm, uint64_t gfn)
{
	struct mv_page *p;

	if (!vm)
		return NULL;
	mv_vm_lock(vm);
	p = page_find(vm, gfn);
	mv_vm_unlock(vm);
	return p;
}

struct mv_page *vm_page_locked(struct mv_vm *vm, uint64_t gfn)
{
	return page_find(vm, gfn);
}

void mv_vm_set_notify(struct mv_vm *vm, mv_vm_notify_fn fn, void *opaque)
{
	if (!vm)
		return;
	mv_vm_lock(vm);
	vm->notify = fn;
	vm->notify_opaque = opaque;
	mv_vm_unlock(vm);
}
