/* Statistics of the pool and of each VM account. */
#include <string.h>
#include <sys/stat.h>

#include "pool.h"

/* Descriptors and chunk headers, chunk-table entries and id-bitmap words
 * in use, and the free sets (the pool's and every VM's). */
static uint64_t metadata_bytes(const struct mv_host *h)
{
	return h->chunks * sizeof(struct chunk) +
	       (uint64_t)h->id_hwm * sizeof(*h->table) +
	       (h->id_hwm + 63) / 64 * sizeof(*h->id_bitmap) +
	       (2 + (uint64_t)h->nvms) * sizeof(struct free_set) +
	       sizeof(h->private_bin_chunks);
}

int mv_host_get_stats(const struct mv_host *host, struct mv_host_stats *st)
{
	struct stat fs;

	if (!host || !st)
		return -MV_EINVAL;
	pool_lock(host);
	/* Field by field over a cleared struct: callers may memcmp two
	 * snapshots, padding included. */
	memset(st, 0, sizeof(*st));
	st->budget_pages = host->cfg.budget_pages;
	st->reserved_pages = host->reserved;
	st->private_pages = host->private_pages;
	st->shared_pages = host->shared_pages;
	st->shared_refs = host->shared_refs;
	st->ballooned_pages = host->ballooned;
	st->free_pages = host->free_pages;
	st->free_held_pages = host->held;
	st->pages_punched = host->pages_punched;
	st->chunks = host->chunks;
	st->empty_cached_chunks = host->empty_count;
	st->chunks_created = host->chunks_created;
	st->chunks_released = host->chunks_released;
	st->pages_moved = host->pages_moved;
	st->metadata_bytes = metadata_bytes(host);
	st->vms = host->nvms;
	pool_unlock(host);
	if (host->memfd >= 0 && !fstat(host->memfd, &fs))
		st->memfd_bytes = (uint64_t)fs.st_blocks * 512;
	return 0;
}

int mv_host_vm_get_stats(const struct mv_host *host, mv_vmid vm,
			 struct mv_host_vm_stats *st)
{
	const struct account *a;

	if (!host || !st)
		return -MV_EINVAL;
	pool_lock(host);
	a = acct_get(host, vm);
	if (a) {
		st->reserved = a->res;
		memcpy(st->allocated, a->allocated, sizeof(st->allocated));
		st->ballooned = a->ballooned;
		st->shared_refs = a->shared_refs;
	}
	pool_unlock(host);
	return a ? 0 : -MV_ENOENT;
}

static void print_vm(const struct mv_host *host, mv_vmid vm, FILE *out)
{
	struct mv_host_vm_stats v;

	if (mv_host_vm_get_stats(host, vm, &v))
		return;
	fprintf(out,
		"  vm %-4u reserved %llu/%llu/%llu  allocated %llu/%llu/%llu"
		"  ballooned %llu  shared refs %llu\n",
		vm, (unsigned long long)v.reserved.base,
		(unsigned long long)v.reserved.shadow,
		(unsigned long long)v.reserved.fixed,
		(unsigned long long)v.allocated[MV_ACCOUNT_BASE],
		(unsigned long long)v.allocated[MV_ACCOUNT_SHADOW],
		(unsigned long long)v.allocated[MV_ACCOUNT_FIXED],
		(unsigned long long)v.ballooned,
		(unsigned long long)v.shared_refs);
}

void mv_host_print_stats(const struct mv_host *host, FILE *out)
{
	struct mv_host_stats s;

	if (!host || !out || mv_host_get_stats(host, &s))
		return;
	fprintf(out,
		"host pool: budget %llu pages, reserved %llu, private %llu, "
		"shared %llu (%llu refs), ballooned %llu, free %llu\n"
		"  chunks %llu (%llu empty cached), created %llu, released "
		"%llu, pages moved %llu, metadata %llu bytes, %u VMs\n",
		(unsigned long long)s.budget_pages,
		(unsigned long long)s.reserved_pages,
		(unsigned long long)s.private_pages,
		(unsigned long long)s.shared_pages,
		(unsigned long long)s.shared_refs,
		(unsigned long long)s.ballooned_pages,
		(unsigned long long)s.free_pages, (unsigned long long)s.chunks,
		(unsigned long long)s.empty_cached_chunks,
		(unsigned long long)s.chunks_created,
		(unsigned long long)s.chunks_released,
		(unsigned long long)s.pages_moved,
		(unsigned long long)s.metadata_bytes, s.vms);
	fprintf(out, "  vm   reservation base/shadow/fixed, allocated per kind\n");
	for (mv_vmid vm = 1; vm <= MV_HOST_MAX_VMS; vm++)
		print_vm(host, vm, out);
}
