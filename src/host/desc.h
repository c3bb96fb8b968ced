/* The 8-byte descriptor of one host page, and its accessors.
 *
 * Every host page has one 64-bit word; its top two bits say which of three
 * layouts the rest follows:
 *
 *   FREE     63:62 = 0   11:11 held (freed with content the kernel still
 *                              keeps: not yet punched back, see punch.c)
 *                        10:10 zeroed (content known to be zero)
 *                         9:0  next free page's index in the chunk
 *                              (DESC_NO_NEXT ends the list)
 *   PRIVATE  63:62 = 1   61:60 account kind      59:48 owner VM handle
 *                        47    moving (source or target of a move in flight)
 *                        46    mark (transient, under the pool lock: a
 *                              batch free uses it to find duplicates)
 *                        45:0  guest frame number (all ones = none)
 *   SHARED   63:62 = 2   61:32 reference count   31:0 checksum bits
 *   RETIRED  63:62 = 3   as PRIVATE; freed by its owner while it was being
 *                        moved: no longer the owner's, not yet free (the
 *                        move's finish frees it and settles the charge).
 *                        46 = it was given to the balloon, not freed.
 *
 * A gfn therefore has 46 bits (a 58-bit guest-physical address space) and
 * a shared page keeps the low 32 bits of the checksum it was made with.
 */
#ifndef MV_HOST_DESC_H
#define MV_HOST_DESC_H

#include <stdbool.h>
#include <stdint.h>

#include <memvisor/host.h>

typedef uint64_t mv_desc;

enum desc_state {
	DESC_FREE = 0,
	DESC_PRIVATE = 1,
	DESC_SHARED = 2,
	DESC_RETIRED = 3,
};

#define DESC_STATE_SHIFT 62
#define DESC_NO_NEXT 0x3ffu
#define DESC_ZEROED (1ull << 10)
#define DESC_HELD (1ull << 11)
#define DESC_KIND_SHIFT 60
#define DESC_VM_SHIFT 48
#define DESC_MOVING (1ull << 47)
#define DESC_MARK (1ull << 46)
#define DESC_RETIRED_BALLOON DESC_MARK  /* RETIRED only */
#define DESC_GFN_BITS 46
#define DESC_GFN_MASK ((1ull << DESC_GFN_BITS) - 1)
#define DESC_REFS_SHIFT 32
#define DESC_REFS_MAX ((1u << 30) - 1)

_Static_assert(sizeof(mv_desc) == 8, "a page descriptor is 8 bytes");
_Static_assert(MV_CHUNK_PAGES <= DESC_NO_NEXT, "free index must fit 10 bits");
_Static_assert(MV_HOST_MAX_VMS < (1u << 12), "owner must fit 12 bits");
_Static_assert(MV_ACCOUNT_KINDS <= 4, "account kind must fit 2 bits");

/* mv_host_page_ptr() reads a descriptor without the pool lock while, under
 * the lock, another thread may update the same in-use page's word (a
 * shared page's reference count, a private page's moving bit). Those
 * words are read and written whole with relaxed atomics (plain moves on
 * x86-64); every other access happens under the lock. */
static inline mv_desc desc_load(const mv_desc *d)
{
	return __atomic_load_n(d, __ATOMIC_RELAXED);
}

static inline void desc_store(mv_desc *d, mv_desc v)
{
	__atomic_store_n(d, v, __ATOMIC_RELAXED);
}

static inline enum desc_state desc_state(mv_desc d)
{
	return (enum desc_state)(d >> DESC_STATE_SHIFT);
}

/* FREE */
static inline mv_desc desc_free(uint32_t next, bool zeroed)
{
	return (mv_desc)next | (zeroed ? DESC_ZEROED : 0);
}

static inline uint32_t desc_free_next(mv_desc d)
{
	return (uint32_t)(d & DESC_NO_NEXT);
}

static inline bool desc_free_zeroed(mv_desc d)
{
	return (d & DESC_ZEROED) != 0;
}

static inline bool desc_free_held(mv_desc d)
{
	return (d & DESC_HELD) != 0;
}

/* PRIVATE */
static inline bool desc_gfn_valid(uint64_t gfn)
{
	return gfn == MV_GFN_NONE || gfn < DESC_GFN_MASK;
}

static inline mv_desc desc_private(mv_vmid vm, enum mv_account_kind kind,
				   uint64_t gfn)
{
	uint64_t g = gfn == MV_GFN_NONE ? DESC_GFN_MASK : gfn;

	return (mv_desc)DESC_PRIVATE << DESC_STATE_SHIFT |
	       (mv_desc)kind << DESC_KIND_SHIFT |
	       (mv_desc)vm << DESC_VM_SHIFT | g;
}

static inline mv_vmid desc_owner(mv_desc d)
{
	return (mv_vmid)((d >> DESC_VM_SHIFT) & 0xfff);
}

static inline enum mv_account_kind desc_kind(mv_desc d)
{
	return (enum mv_account_kind)((d >> DESC_KIND_SHIFT) & 3);
}

static inline uint64_t desc_gfn(mv_desc d)
{
	uint64_t g = d & DESC_GFN_MASK;

	return g == DESC_GFN_MASK ? MV_GFN_NONE : g;
}

static inline mv_desc desc_with_gfn(mv_desc d, uint64_t gfn)
{
	uint64_t g = gfn == MV_GFN_NONE ? DESC_GFN_MASK : gfn;

	return (d & ~DESC_GFN_MASK) | g;
}

static inline bool desc_moving(mv_desc d)
{
	return (d & DESC_MOVING) != 0;
}

static inline bool desc_marked(mv_desc d)
{
	return (d & DESC_MARK) != 0;
}

/* True when @d is a private page of @vm (whatever its flags). */
static inline bool desc_owned_by(mv_desc d, mv_vmid vm)
{
	return desc_state(d) == DESC_PRIVATE && desc_owner(d) == vm;
}

/* A moving private page its owner freed (@balloon: gave to the balloon). */
static inline mv_desc desc_retired(mv_desc d, bool balloon)
{
	d &= ~((mv_desc)3 << DESC_STATE_SHIFT | DESC_MARK);
	return d | (mv_desc)DESC_RETIRED << DESC_STATE_SHIFT |
	       (balloon ? DESC_RETIRED_BALLOON : 0);
}

/* SHARED */
static inline mv_desc desc_shared(uint32_t refs, uint64_t checksum)
{
	return (mv_desc)DESC_SHARED << DESC_STATE_SHIFT |
	       (mv_desc)refs << DESC_REFS_SHIFT | (uint32_t)checksum;
}

static inline uint32_t desc_refs(mv_desc d)
{
	return (uint32_t)((d >> DESC_REFS_SHIFT) & DESC_REFS_MAX);
}

static inline uint32_t desc_checksum(mv_desc d)
{
	return (uint32_t)d;
}

static inline mv_desc desc_with_refs(mv_desc d, uint32_t refs)
{
	return desc_shared(refs, desc_checksum(d));
}

#endif
