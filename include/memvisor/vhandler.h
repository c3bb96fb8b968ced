/* memvisor virtual access handlers (seed 000, VirtualBox PGM's ALL, WRITE
 * and HYPERVISOR handlers) on guest-virtual ranges of a vCPU's address
 * space.
 *
 * ALL sees every access of the range, WRITE sees writes (reads go
 * straight to memory: a read fault maps the page read-only and resumes),
 * HYPERVISOR marks a range that belongs to the monitor: it is kept apart,
 * consulted only when a fault hits it, and never mapped.
 *
 * For ALL and WRITE the MMU keeps a phys -> virt cache: the guest frame
 * each page of the range translates to now. The frames in the cache are
 * what the shadow protects (ALL: never mapped; WRITE: mapped read-only),
 * through the reverse map, so registration and deregistration touch only
 * the leaves that map them, never every shadow page. The cache follows the
 * guest: a write to a guest table the translation uses (table tracking),
 * INVLPG of a page of the range, a CR3 load, and every fault in the range
 * compare the translation with the cache; when a page is remapped or
 * unmapped the invalidation callback runs and the cache follows, before
 * the vCPU's next access, so no access of the range escapes its handler.
 * A bitmap of handled pages (sparse over 48- and 57-bit spaces, 1 GiB
 * regions of 32 KiB each) answers "is there a handler here?" in O(1).
 *
 * Every call here is made on the vCPU's thread. The access callback runs
 * on the thread of the access, without the VM lock; the invalidation
 * callback runs with the VM lock held, on the thread that noticed the
 * change. Neither may access the handled range through a vCPU (use
 * mv_vm_phys_*); the invalidation callback must not block.
 */
#ifndef MEMVISOR_VHANDLER_H
#define MEMVISOR_VHANDLER_H

#include <stddef.h>
#include <stdint.h>

#include <memvisor/vcpu.h>

enum mv_vhandler_kind {
	MV_VHANDLER_ALL,
	MV_VHANDLER_WRITE,
	MV_VHANDLER_HYPERVISOR,
};

#define MV_VHANDLER_MAX 16

/* One access of a handled page (never crossing a page). */
struct mv_vaccess {
	uint64_t va;            /* the linear address accessed */
	uint64_t gpa;           /* its translation (HYPERVISOR: none, 0) */
	size_t size;
	unsigned acc;           /* MV_ACC_* */
	void *buf;              /* a read's destination, a write's bytes */
};

/* Handler results (or a negative error: the access fails with it and
 * nothing is done). */
#define MV_VHANDLER_DONE 0     /* emulated (a read filled buf) */
#define MV_VHANDLER_PROCEED 1  /* do the access as if there were none
				* (HYPERVISOR: the same as DONE) */

typedef int (*mv_vhandler_fn)(void *opaque, struct mv_vcpu *v,
			      const struct mv_vaccess *a);
/* A page of the range was remapped (@new_gpa) or unmapped (@new_gpa
 * UINT64_MAX) by the guest; @old_gpa is what the cache held (UINT64_MAX:
 * the page was not mapped). */
typedef void (*mv_vhandler_inval_fn)(void *opaque, struct mv_vcpu *v,
				     uint64_t va, uint64_t old_gpa,
				     uint64_t new_gpa);

struct mv_vhandler_config {
	enum mv_vhandler_kind kind;
	uint64_t va, size;           /* page aligned, size > 0 */
	mv_vhandler_fn fn;           /* required */
	mv_vhandler_inval_fn inval;  /* may be NULL */
	void *opaque;
};

/* Register on @v's address space. -MV_EINVAL (NULL, bad kind, unaligned
 * or empty or wrapping range, a range not canonical, more than 2^20
 * pages), -MV_EEXIST (overlaps another handler of @v), -MV_ELIMIT
 * (MV_VHANDLER_MAX), -MV_ENOMEM; nothing changes on error. */
int mv_vhandler_register(struct mv_vcpu *v, const struct mv_vhandler_config *c,
			 uint32_t *id);
/* -MV_ENOENT for an id not registered. */
int mv_vhandler_deregister(struct mv_vcpu *v, uint32_t id);

#endif
