/* memvisor MMU: the x86 guest page-table walker.
 *
 * The walker is a pure function of guest memory and the paging registers
 * (Intel SDM Vol. 3A, chapter 4): it translates one linear address for one
 * access and returns the guest-physical address with the effective rights a
 * shadow PTE must enforce, or the exact fault the guest must see. It reads
 * and updates guest memory only through struct mv_gmem, so that it does not
 * know how guest-physical memory is stored.
 *
 * Modes: paging off (identity), 32-bit ("legacy", with CR4.PSE 4 MiB pages
 * and PSE-36), PAE (PDPTE registers loaded at CR3 load), 4-level and
 * 5-level IA-32e paging. Pages of 4 KiB, 2 MiB, 4 MiB and 1 GiB.
 *
 * Threads: the walker holds no lock and keeps no state between calls. A
 * struct mv_paging is read-only for mv_walk, mv_walk_dump and the
 * canonical helpers, so any number of threads may walk with one context at
 * once; mv_paging_init and mv_paging_load_cr3 write it and must not run
 * while another thread uses the same context (one context per vCPU, owned
 * by its thread). The gmem callbacks run on the calling thread, and must
 * be safe for every thread that walks through them: the flat gmem and the
 * VM gmem are. Nothing returned points into library memory.
 */
#ifndef MEMVISOR_MMU_H
#define MEMVISOR_MMU_H

#include <stdbool.h>
#include <stdint.h>

#include <memvisor/error.h>

/* ---------------------------------------------------------------------
 * Guest-memory access: the walker's only view of guest-physical memory.
 *
 * Every call gets a naturally aligned gpa and size 4 or 8 (little-endian
 * values, zero-extended to 64 bits). Both calls return one of:
 *   MV_GMEM_OK        done
 *   MV_GMEM_CHANGED   cmpxchg only: memory did not hold `old`; nothing was
 *                     written (the walker re-walks)
 *   MV_GMEM_READONLY  cmpxchg only: the page is ROM or otherwise not
 *                     writable by the CPU; the A/D write is dropped, as a
 *                     bus would drop a write to ROM, and the walk goes on
 *   MV_GMEM_UNBACKED  no RAM at gpa (a hole or MMIO): see MV_WALK_NOT_RAM
 *   a negative -MV_E... code: cmpxchg only: the write could not be done
 *                     and must not be dropped, most often because it needs
 *                     host memory that is refused (a SHARED table page to
 *                     copy under a full budget: -MV_EBUDGET,
 *                     -MV_ERESERVATION, -MV_ENOMEM); memory is unchanged
 *                     and mv_walk returns the code
 * cmpxchg may be NULL: memory is then read-only to the walker (no A/D
 * updates at all, as with MV_ACC_NO_AD). cmpxchg must be atomic with respect
 * to other vCPUs writing guest memory (a locked compare-and-exchange).
 */
enum mv_gmem_rc {
	MV_GMEM_OK = 0,
	MV_GMEM_CHANGED = 1,
	MV_GMEM_READONLY = 2,
	MV_GMEM_UNBACKED = 3,
};

struct mv_gmem {
	int (*read)(void *opaque, uint64_t gpa, unsigned size, uint64_t *val);
	int (*cmpxchg)(void *opaque, uint64_t gpa, unsigned size,
		       uint64_t old, uint64_t val);
	void *opaque;
};

/* A flat image of guest RAM: `size` bytes at host address `mem` holding
 * guest-physical [base, base + size). Everything else is UNBACKED. A
 * read-only image (a file mapped PROT_READ) has no cmpxchg. */
struct mv_gmem_flat {
	uint8_t *mem;
	uint64_t base;
	uint64_t size;
};

/* Fill *gm to access *flat (both owned by the caller; *gm keeps a pointer
 * to *flat and flat->mem, which must outlive it). mem must be 8-byte
 * aligned (NULL only with size 0), base 4 KiB aligned and base + size must
 * not wrap; gm and flat non-NULL: -MV_EINVAL otherwise, and *gm and *flat
 * are unchanged. Any thread; the callbacks are safe on any number of
 * threads (atomic loads and a locked compare-and-exchange). */
int mv_gmem_flat_init(struct mv_gmem *gm, struct mv_gmem_flat *flat,
		      void *mem, uint64_t base, uint64_t size, bool writable);

/* A VM's guest-physical memory (include/memvisor/vm.h): RAM read and
 * updated in place (an A/D write makes a ZERO or SHARED page private first,
 * as a guest store would), pages under a physical handler through the
 * handler, MMIO and holes UNBACKED, ROM and writes the balloon policy
 * refuses READONLY. An A/D write whose copy of a SHARED page the budget or
 * the reservation refuses returns that error (-MV_EBUDGET,
 * -MV_ERESERVATION, -MV_ENOMEM), and mv_walk with it. (A ZERO page never
 * needs one: its entries read 0, not present.) Valid while the VM lives.
 * -MV_EINVAL for NULL arguments (*gm unchanged). Each callback takes the VM
 * lock for its duration: any thread may walk, including one that holds the
 * VM lock (it is recursive), but not one holding the host pool's lock or
 * another VM's lock taken out of address order. */
struct mv_vm;
int mv_gmem_vm_init(struct mv_gmem *gm, struct mv_vm *vm);

/* ---------------------------------------------------------------------
 * Paging registers and the CPU model. */
#define MV_CR0_PE (1ull << 0)
#define MV_CR0_WP (1ull << 16)
#define MV_CR0_PG (1ull << 31)
#define MV_CR4_PSE (1ull << 4)
#define MV_CR4_PAE (1ull << 5)
#define MV_CR4_PGE (1ull << 7)
#define MV_CR4_PCIDE (1ull << 17)
#define MV_CR4_LA57 (1ull << 12)
#define MV_CR4_SMEP (1ull << 20)
#define MV_CR4_SMAP (1ull << 21)
#define MV_CR4_PKE (1ull << 22)
#define MV_CR3_NOFLUSH (1ull << 63)  /* MOV to CR3 hint with CR4.PCIDE */
#define MV_EFER_LME (1ull << 8)
#define MV_EFER_LMA (1ull << 10)
#define MV_EFER_NXE (1ull << 11)
#define MV_RFLAGS_AC (1ull << 18)

struct mv_cpu_regs {
	uint64_t cr0, cr3, cr4, efer;
	uint64_t rflags;  /* only AC matters (SMAP) */
	uint32_t pkru;    /* 2 bits per key: AD = bit 2k, WD = bit 2k + 1 */
};

/* The CPUID facts paging depends on. */
#define MV_MAXPHYADDR_DEFAULT 48
struct mv_cpu_model {
	uint8_t maxphyaddr;  /* 32..52; 0 = MV_MAXPHYADDR_DEFAULT */
	bool no_pdpe1gb;     /* CPUID.80000001H:EDX.Page1GB = 0 */
	bool no_pse36;       /* CPUID.01H:EDX.PSE-36 = 0 */
};

enum mv_paging_mode {
	MV_PAGING_OFF,     /* CR0.PG = 0: linear = physical */
	MV_PAGING_LEGACY,  /* 32-bit paging */
	MV_PAGING_PAE,
	MV_PAGING_LONG4,   /* 4-level IA-32e paging */
	MV_PAGING_LONG5,   /* 5-level (CR4.LA57) */
};

/* The walker's context: registers decoded once (mode, reserved-bit masks
 * per level, rights switches) plus the PAE PDPTE registers. Built by
 * mv_paging_init; read-only afterwards, so several threads may walk with
 * one context. Fields are private to src/mmu/. */
struct mv_paging {
	uint8_t mode;        /* enum mv_paging_mode */
	uint8_t levels;      /* levels walked in memory: 0, 2, 2 (PAE), 4, 5 */
	uint8_t maxphyaddr;
	uint8_t large_levels;  /* bit n: PS=1 at level n ends the walk */
	uint32_t sw;         /* MV_PG_SW_*: rights switches */
	uint32_t pkru;
	uint64_t root;       /* table address from CR3 */
	uint64_t addr_mask;  /* entry bits holding a table/frame address */
	uint64_t pdpte[4];   /* PAE: PDPTE registers */
	uint64_t rsvd[6][2]; /* [level][PS] reserved bits of a present entry */
	struct mv_cpu_regs regs;
};

/* The outcome of a walk (and of loading CR3). */
enum mv_walk_status {
	MV_WALK_OK = 0,
	MV_WALK_PF,       /* page fault: error_code, level, fault entry */
	MV_WALK_GP,       /* #GP(0): non-canonical address, or a MOV to CR3
			   * that would fault (PDPTE or CR3 reserved bits) */
	MV_WALK_NOT_RAM,  /* a table entry lies outside RAM (hole or MMIO);
			   * error_code is the not-present #PF error code a
			   * VMM injects for it (KVM does the same) */
	MV_WALK_RETRY,    /* guest memory kept changing under the A/D update
			   * (MV_WALK_MAX_RACES times): re-execute the access */
	MV_WALK_ERROR,    /* in w->status only: mv_walk returned a negative
			   * code (bad arguments, or an A/D write that guest
			   * memory refused); no translation, no fault */
};
#define MV_WALK_MAX_RACES 16

/* Build *pg from the registers. Decides the mode as the CPU does: PG=0 ->
 * off; PAE=0 -> 32-bit; EFER.LMA (or LME, as it becomes LMA when PG is set)
 * -> 4- or 5-level by CR4.LA57; else PAE. In PAE mode the PDPTEs are
 * loaded from gm (mv_paging_load_cr3). cpu may be NULL (the defaults).
 * Returns -MV_EINVAL for NULL pg, regs, gm or gm->read, and for register
 * values no CPU can hold (PG without PE, LME/LMA with PG and without PAE,
 * LMA without PG, a maxphyaddr outside 32..52): *pg is then unchanged.
 * Otherwise the enum mv_walk_status of the CR3 load: MV_WALK_OK;
 * MV_WALK_GP or MV_WALK_NOT_RAM leave *pg decoded with no root (root 0,
 * PDPTEs not present): call mv_paging_load_cr3 with a CR3 that loads
 * before walking. Reads guest memory only (PAE: the 4 PDPTEs). */
int mv_paging_init(struct mv_paging *pg, const struct mv_cpu_regs *regs,
		   const struct mv_cpu_model *cpu, const struct mv_gmem *gm);

/* MOV to CR3: set the root; in PAE mode read and check the 4 PDPTEs (SDM
 * 4.4.1: a present PDPTE with a reserved bit set -> #GP(0), the registers
 * keep their old values). Long mode: CR3 bits above MAXPHYADDR -> #GP;
 * bit 63 is the no-flush hint with CR4.PCIDE (dropped), else reserved.
 * Returns MV_WALK_OK, MV_WALK_GP, MV_WALK_NOT_RAM (PAE: the PDPT is not in
 * RAM) or -MV_EINVAL (NULL pg, gm or gm->read); on anything but MV_WALK_OK
 * *pg is unchanged. */
int mv_paging_load_cr3(struct mv_paging *pg, const struct mv_gmem *gm,
		       uint64_t cr3);

/* ---------------------------------------------------------------------
 * A walk. */
#define MV_ACC_WRITE (1u << 0)
#define MV_ACC_FETCH (1u << 1)     /* instruction fetch; with MV_ACC_WRITE
				    * too it is still only a fetch */
#define MV_ACC_USER (1u << 2)      /* CPL 3 */
#define MV_ACC_IMPLICIT (1u << 3)  /* implicit supervisor access (GDT, IDT,
				    * TSS...): supervisor at any CPL, and
				    * SMAP ignores EFLAGS.AC */
#define MV_ACC_NO_AD (1u << 4)     /* probe: never write A/D bits */

/* #PF error code bits (SDM 4.7). */
#define MV_PF_P (1u << 0)
#define MV_PF_W (1u << 1)
#define MV_PF_U (1u << 2)
#define MV_PF_RSVD (1u << 3)
#define MV_PF_ID (1u << 4)
#define MV_PF_PK (1u << 5)

/* Effective rights over all levels. */
#define MV_PERM_W (1u << 0)   /* R/W = 1 at every level */
#define MV_PERM_U (1u << 1)   /* U/S = 1 at every level */
#define MV_PERM_NX (1u << 2)  /* XD = 1 at some level (EFER.NXE = 1) */

/* Paging-structure entry bits. */
#define MV_PTE_P (1ull << 0)
#define MV_PTE_W (1ull << 1)
#define MV_PTE_U (1ull << 2)
#define MV_PTE_PWT (1ull << 3)
#define MV_PTE_PCD (1ull << 4)
#define MV_PTE_A (1ull << 5)
#define MV_PTE_D (1ull << 6)
#define MV_PTE_PS (1ull << 7)
#define MV_PTE_G (1ull << 8)
#define MV_PTE_PAT4K (1ull << 7)
#define MV_PTE_PATLARGE (1ull << 12)
#define MV_PTE_NX (1ull << 63)

#define MV_WALK_MAX_LEVELS 5

struct mv_walk {
	uint8_t status;      /* enum mv_walk_status */
	uint8_t level;       /* level of the leaf, or of the faulting entry:
			      * 1 PTE, 2 PDE, 3 PDPTE, 4 PML4E, 5 PML5E */
	uint8_t nr_entries;  /* entries read from memory, top first */
	uint8_t perm;        /* MV_PERM_*, OK only */
	uint8_t pkey;        /* leaf protection key (IA-32e only, else 0) */
	uint8_t memtype;     /* PAT index: PAT << 2 | PCD << 1 | PWT */
	uint32_t error_code; /* MV_PF_*, PF and NOT_RAM */
	uint64_t gpa;        /* OK: the translated address */
	uint64_t page_size;  /* OK: 4 KiB, 2 MiB, 4 MiB or 1 GiB */
	uint64_t leaf;       /* OK: the leaf entry, A/D as now in memory */
	/* The entries used, in walk order (PAE: the PDE first; the PDPTE
	 * comes from a register, so a write to it needs no write-protect).
	 * On a fault the last one is the faulting entry; on NOT_RAM its
	 * entry value is 0. */
	uint64_t entry_gpa[MV_WALK_MAX_LEVELS];
	uint64_t entry[MV_WALK_MAX_LEVELS];
};

/* Translate va for the access `acc` (MV_ACC_*). Returns the status (also in
 * w->status). On success sets A in every entry used and D in the leaf of a
 * write, with cmpxchg; a faulting walk writes nothing. In 32-bit modes
 * (off, legacy, PAE) va is taken modulo 2^32, as the CPU forms linear
 * addresses.
 *
 * Every field of *w is set, except the entries beyond nr_entries:
 *   MV_WALK_OK       all of them (error_code 0)
 *   MV_WALK_PF       level, error_code, the entries up to the faulting
 *                    one; after a rights or key fault (MV_PF_P without
 *                    MV_PF_RSVD) gpa, page_size, perm, pkey and memtype
 *                    describe the translation that was denied, else they
 *                    are 0; leaf is 0
 *   MV_WALK_NOT_RAM  as a not-present PF; the last entry's value is 0
 *   MV_WALK_GP       level 0, no entries, everything else 0
 *   MV_WALK_RETRY    level and entries of the last attempt, the rest 0
 *   paging off       gpa = va mod 2^32, 4 KiB, MV_PERM_W | MV_PERM_U,
 *                    level 0, no entries
 * Negative returns (w->status MV_WALK_ERROR, every field but the entries
 * read 0):
 *   -MV_EINVAL   pg, gm or gm->read NULL, or pg not built by
 *                mv_paging_init (w NULL: -MV_EINVAL and nothing written)
 *   any negative code of gm->cmpxchg: an A/D write was refused (with the
 *                VM gmem: -MV_EBUDGET, -MV_ERESERVATION or -MV_ENOMEM for
 *                the copy of a SHARED table page). The leaf's A/D bits are
 *                not set and no translation is reported; A bits set in
 *                the entries above it stay set (as after a race, which a
 *                CPU may do too). The caller makes room (balloon, raise
 *                the budget) and walks again, or stops the vCPU: it must
 *                not use the translation, or the guest would later take a
 *                dirtied page for clean.
 * *pg is only read; concurrent walks with one context are safe. */
int mv_walk(const struct mv_paging *pg, const struct mv_gmem *gm,
	    uint64_t va, unsigned acc, struct mv_walk *w);

/* ---------------------------------------------------------------------
 * Enumerate every mapped leaf in ascending (canonical, unsigned) VA order,
 * without writing guest memory. A leaf is mapped when a walk to it finds
 * present entries without reserved bits; subtrees that are not present,
 * have reserved bits set or lie outside RAM are skipped. Self-referencing
 * tables are followed as the CPU would (every VA is finite), so a
 * recursive slot lists the tables themselves once more. */
struct mv_walk_leaf {
	uint64_t va;         /* canonical (sign-extended in IA-32e modes) */
	uint64_t gpa;        /* page base */
	uint64_t page_size;
	uint64_t leaf;       /* the entry as in memory */
	uint64_t entry_gpa;  /* where the leaf entry is */
	uint8_t level;
	uint8_t perm;        /* MV_PERM_*: effective over all levels */
};

/* cb returns 0 to go on, anything else to stop; that value is returned.
 * Errors: -MV_EINVAL (pg, gm, gm->read or cb NULL), -MV_ESTATE (paging
 * off: no tables), -MV_ENOMEM (the set of empty tables could not grow; the
 * leaves already passed to cb stay passed). Cost: one read per entry of
 * every table scanned; a table found empty is remembered and not scanned
 * again, so the reads are at most 512 per distinct empty table plus 512
 * per visit of a table that maps something (bounded by the output). Guest
 * memory is only read; cb runs on the calling thread, and the leaf it is
 * given is valid during that call only (copy it to keep it). */
int mv_walk_dump(const struct mv_paging *pg, const struct mv_gmem *gm,
		 int (*cb)(void *opaque, const struct mv_walk_leaf *leaf),
		 void *opaque);

/* Canonical form of va for the mode (sign extension in IA-32e modes; in
 * 32-bit modes and with paging off va modulo 2^32). pg NULL: va itself. */
uint64_t mv_paging_canonical(const struct mv_paging *pg, uint64_t va);
/* Is va canonical for the mode (always true in 32-bit modes)? pg NULL:
 * false (no mode, nothing is known to be canonical). */
bool mv_paging_is_canonical(const struct mv_paging *pg, uint64_t va);

#endif
