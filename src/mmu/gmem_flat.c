/* A flat buffer of guest RAM behind the mv_gmem interface: what the walk
 * command and the tests use (the phys layer implements mv_gmem for a VM). */
#include <string.h>

#include <memvisor/mmu.h>

/* Host pointer for [gpa, gpa + size) or NULL when any of it is not RAM.
 * Written so that no sum can wrap: gpa - base only when gpa >= base. */
static uint8_t *flat_ptr(const struct mv_gmem_flat *f, uint64_t gpa,
			 unsigned size)
{
	if (gpa < f->base)
		return NULL;
	uint64_t off = gpa - f->base;

	if (off >= f->size || f->size - off < size)
		return NULL;
	return f->mem + off;
}

static int flat_read(void *opaque, uint64_t gpa, unsigned size,
		     uint64_t *val)
{
	const uint8_t *p = flat_ptr(opaque, gpa, size);

	if (!p)
		return MV_GMEM_UNBACKED;
	if (size == 8)
		*val = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
	else
		*val = __atomic_load_n((const uint32_t *)p, __ATOMIC_RELAXED);
	return MV_GMEM_OK;
}

static int flat_cmpxchg(void *opaque, uint64_t gpa, unsigned size,
			uint64_t old, uint64_t val)
{
	uint8_t *p = flat_ptr(opaque, gpa, size);
	bool done;

	if (!p)
		return MV_GMEM_UNBACKED;
	if (size == 8) {
		uint64_t expect = old;

		done = __atomic_compare_exchange_n((uint64_t *)p, &expect, val,
						   false, __ATOMIC_SEQ_CST,
						   __ATOMIC_SEQ_CST);
	} else {
		uint32_t expect = (uint32_t)old;

		done = __atomic_compare_exchange_n((uint32_t *)p, &expect,
						   (uint32_t)val, false,
						   __ATOMIC_SEQ_CST,
						   __ATOMIC_SEQ_CST);
	}
	return done ? MV_GMEM_OK : MV_GMEM_CHANGED;
}

int mv_gmem_flat_init(struct mv_gmem *gm, struct mv_gmem_flat *flat,
		      void *mem, uint64_t base, uint64_t size, bool writable)
{
	if (!gm || !flat || (!mem && size) || ((uintptr_t)mem & 7) ||
	    (base & 0xfff) || base + size < base)
		return -MV_EINVAL;
	flat->mem = mem;
	flat->base = base;
	flat->size = size;
	gm->read = flat_read;
	gm->cmpxchg = writable ? flat_cmpxchg : NULL;
	gm->opaque = flat;
	return 0;
}
