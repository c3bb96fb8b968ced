/* memvisor: error codes shared by every layer.
 *
 * Every fallible function returns 0 on success or a negative code: either
 * -MV_E... below or a negated errno value from the host (-ENOMEM from mmap,
 * say). mv_strerror() names both kinds. New codes are appended before
 * MV_ELAST: a code's number never changes. */
#ifndef MEMVISOR_ERROR_H
#define MEMVISOR_ERROR_H

enum mv_error {
	MV_EFIRST = 1000,  /* codes below are errno values */
	MV_EINVAL = MV_EFIRST, /* a bad argument (NULL, zero count, bad flag) */
	MV_ENOMEM,         /* host memory could not be obtained */
	MV_EBUDGET,        /* the host budget would be exceeded */
	MV_ERESERVATION,   /* the VM's reservation would be exceeded */
	MV_ERANGE,         /* an address or id outside every valid range */
	MV_EEXIST,         /* conflicts with something registered before */
	MV_ENOENT,         /* no such object (VM handle, handler, page) */
	MV_EBUSY,          /* still in use */
	MV_ESTATE,         /* the object is not in a state allowing this */
	MV_ELIMIT,         /* a fixed limit (VM handles, chunks) is reached */
	MV_ECORRUPT,       /* malformed input data (image, stream): the
			    * caller's data is at fault, never the library */
	MV_EIO,            /* a read or write failed: a file or stream of the
			    * memvisor command, or a device callback (MMIO,
			    * handler) that reports its transfer failed */
	MV_ENEEDSEED,      /* seeded pool: hand it more memory (mv_host_seed) */
	MV_EINTERNAL,      /* an internal invariant failed (a page without
			    * host memory, a state that cannot be): a bug in
			    * the library, not bad input; the object that
			    * reported it should be destroyed */
	MV_ELAST
};

/* A readable name for any return code of the library (0, -MV_E..., -errno). */
const char *mv_strerror(int rc);

#endif
