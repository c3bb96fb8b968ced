/* A reference model of x86 linear-address translation, written from the
 * Intel SDM Vol. 3A chapter 4 (4.3-4.5 entry formats, 4.6 access rights,
 * 4.7 page-fault error code, 4.8 accessed/dirty flags), independently of
 * src/mmu/: slow, literal, one bit and one rule at a time. The tests compare
 * the walker against it. */
#ifndef MV_TEST_SDM_MODEL_H
#define MV_TEST_SDM_MODEL_H

#include <stdbool.h>
#include <stdint.h>

enum sdm_mode { SDM_32BIT, SDM_PAE, SDM_4LEVEL, SDM_5LEVEL };

struct sdm_case {
	enum sdm_mode mode;
	unsigned maxphyaddr;
	bool pse36, page1gb;                 /* CPUID */
	bool cr4_pse, cr0_wp, smep, smap, eflags_ac, nxe, pke;
	uint32_t pkru;
	bool write, fetch, user, implicit;   /* the access */
	uint32_t va;                         /* bits the entries don't give */
	uint64_t va_low;                     /* offset in page, any size */
	/* The entries on the path, top first, as many as the walk may read
	 * (32-bit: PDE, PTE; PAE: PDPTE, PDE, PTE; 4-level: PML4E..PTE). */
	unsigned nent;
	uint64_t ent[5];
};

struct sdm_result {
	bool gp;            /* PAE: the PDPTE load (MOV to CR3) faults */
	bool fault;
	uint32_t error_code;
	unsigned used;      /* entries read (the faulting one included) */
	uint64_t pa, page_size;   /* also after a rights or key fault */
	bool writable, user_page, exec_disable;   /* likewise */
	uint64_t after[5];  /* the entries after the access */
};

void sdm_translate(const struct sdm_case *c, struct sdm_result *r);

#endif
