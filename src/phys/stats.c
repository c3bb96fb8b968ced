/* VM statistics: the counters kept by the transitions, plus what the
 * VM's own structures cost. */
#include "vm_internal.h"

/* What the VM's structures hold in memory: descriptor pages the kernel
 * has mapped (desc.c: an upper bound), not the address space reserved. */
static uint64_t metadata_bytes(const struct mv_vm *vm, uint64_t *reserved)
{
	uint64_t b = sizeof(*vm);

	*reserved = 0;
	for (uint32_t i = 0; i < vm->nranges; i++) {
		b += sizeof(vm->ranges[i]) + sizeof(struct desc_span) +
		     desc_resident_bytes(&vm->ranges[i]);
		*reserved += desc_reserved_bytes(&vm->ranges[i]);
	}
	b += (uint64_t)vm->handlers_cap * sizeof(struct phys_handler);
	b += (uint64_t)vm->handy_high * sizeof(mv_page_id);
	b += (uint64_t)vm->map.max * sizeof(struct map_slot);
	b += (uint64_t)vm->map.index_len * sizeof(uint32_t);
	return b;
}

int mv_vm_get_stats(struct mv_vm *vm, struct mv_vm_stats *st)
{
	if (!vm || !st)
		return -MV_EINVAL;
	mv_vm_lock(vm);
	*st = vm->st;
	st->handy = vm->nhandy;
	st->map_hits = vm->map.hits;
	st->map_table_hits = vm->map.table_hits;
	st->map_misses = vm->map.misses;
	st->map_evictions = vm->map.evictions;
	st->map_fallbacks = vm->map.fallbacks;
	st->mapped_chunks = vm->map.used;
	st->metadata_bytes = metadata_bytes(vm, &st->descriptor_reserved_bytes);
	mv_vm_unlock(vm);
	return 0;
}
