/* memvisor run, vCPU steps: a small model guest OS on the shadow MMU.
 *
 * One VM with 4 MiB of RAM holds 4-level page tables for three address
 * spaces that share their kernel half (a window mapping all RAM at KWIN).
 * Two vCPUs run in two of them; one switches CR3 back and forth (cached
 * roots: nothing rebuilt), forks its space into the third with the
 * guest's own copy-on-write (PTEs made read-only through the kernel
 * window, then a #PF, a page copy, a PTE write and INVLPG per page), and
 * a zap of all shadow pages follows; dirty logging and a framebuffer
 * harvest end it (run_dirty.c). Each step prints the vCPUs' and the
 * MMU's statistics (mv_vcpu_get_stats, mv_mmu_get_stats). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <memvisor/vcpu.h>
#include <memvisor/vm.h>

#include "run_guest.h"

#define RAM_PAGES 1024u
#define KWIN 0xffff800000000000ull  /* RAM at KWIN + gpa, 2 MiB pages */
#define UVA 0x400000ull             /* each space's user pages */
#define UPAGES 32u
#define ADDR 0x000ffffffffff000ull
#define TBL (MV_PTE_P | MV_PTE_W | MV_PTE_U)
#define UDATA (MV_PTE_P | MV_PTE_W | MV_PTE_U)
#define SWITCHES 200u

/* Space s (0 A, 1 B, 2 C): its root, user PDPT, PD and PT, its frames. */
#define ROOT(s) (0x1000ull + (uint64_t)(s) * 0x4000)
#define UPDPT(s) (ROOT(s) + 0x1000)
#define UPD(s) (ROOT(s) + 0x2000)
#define UPT(s) (ROOT(s) + 0x3000)
#define KPDPT 0x20000ull
#define KPD 0x21000ull
#define FRAME(s, i) (0x100000ull + (uint64_t)(s) * 0x40000 + \
		     (uint64_t)(i) * MV_PAGE_SIZE)
#define COW_FRAME(i) (0x200000ull + (uint64_t)(i) * MV_PAGE_SIZE)

struct vcpu_demo {
	struct mv_vm *vm;
	struct mv_vcpu *cpu[2];
	run_guest_report_fn fn;
	void *ctx;
};

#define say(g, ...) run_say((g)->fn, (g)->ctx, __VA_ARGS__)

static int put(struct vcpu_demo *g, uint64_t gpa, uint64_t val)
{
	return mv_vm_phys_write(g->vm, gpa, &val, sizeof(val));
}

static uint64_t token(unsigned s, unsigned i)
{
	return 0x6d76000000000000ull | (uint64_t)s << 16 | i;
}

/* The kernel half (shared by every space) and the user half of A and B;
 * C's tables are made by the fork. */
static int build_tables(struct vcpu_demo *g)
{
	unsigned kslot = (KWIN >> 39) & 511;
	int rc = put(g, KPDPT, KPD | (TBL & ~(uint64_t)MV_PTE_U));

	for (unsigned m = 0; !rc && m < RAM_PAGES / 512; m++)
		rc = put(g, KPD + m * 8, ((uint64_t)m << 21) | MV_PTE_P |
			 MV_PTE_W | MV_PTE_PS | MV_PTE_G | MV_PTE_NX);
	for (unsigned s = 0; !rc && s < 3; s++)
		rc = put(g, ROOT(s) + kslot * 8, KPDPT | MV_PTE_P | MV_PTE_W);
	for (unsigned s = 0; !rc && s < 2; s++) {
		rc = put(g, ROOT(s), UPDPT(s) | TBL);
		if (!rc)
			rc = put(g, UPDPT(s), UPD(s) | TBL);
		if (!rc)
			rc = put(g, UPD(s) + ((UVA >> 21) & 511) * 8,
				 UPT(s) | TBL);
		for (unsigned i = 0; !rc && i < UPAGES; i++)
			rc = put(g, UPT(s) + (((UVA >> 12) + i) & 511) * 8,
				 FRAME(s, i) | UDATA);
	}
	return rc;
}

static int long_mode(struct mv_vcpu *cpu, uint64_t cr3)
{
	struct mv_cpu_regs r = {
		.cr0 = MV_CR0_PE | MV_CR0_PG | MV_CR0_WP,
		.cr4 = MV_CR4_PAE | MV_CR4_PGE,
		.efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE, .cr3 = cr3 };
	int rc = mv_vcpu_set_regs(cpu, &r);

	return rc > 0 ? -MV_EINTERNAL : rc;
}

static int access8(struct mv_vcpu *cpu, uint64_t va, uint64_t *v, bool write,
		   unsigned acc)
{
	int rc = write ? mv_vcpu_write(cpu, va, v, 8, acc, NULL)
		       : mv_vcpu_read(cpu, va, v, 8, acc, NULL);

	return rc > 0 ? -MV_EINTERNAL : rc;  /* this guest never faults here */
}

/* Read every user page of the current space: its tokens must be there. */
static int check_space(struct mv_vcpu *cpu, unsigned s)
{
	for (unsigned i = 0; i < UPAGES; i++) {
		uint64_t v;
		int rc = access8(cpu, UVA + i * MV_PAGE_SIZE, &v, false,
				 MV_ACC_USER);

		if (rc)
			return rc;
		if (v != token(s, i))
			return -MV_ECORRUPT;
	}
	return 0;
}

static void stats(struct vcpu_demo *g, struct mv_vcpu_stats *st,
		  struct mv_mmu_stats *ms)
{
	struct mv_vcpu_stats one;

	memset(st, 0, sizeof(*st));
	for (int c = 0; c < 2; c++) {
		mv_vcpu_get_stats(g->cpu[c], &one);
		st->faults += one.faults;
		st->fills += one.fills;
		st->dirty_faults += one.dirty_faults;
		st->tlb_hits += one.tlb_hits;
		st->shadow_hits += one.shadow_hits;
		st->guest_faults += one.guest_faults;
		st->emulated_writes += one.emulated_writes;
		st->root_loads += one.root_loads;
		st->root_cache_hits += one.root_cache_hits;
		st->invlpg += one.invlpg;
	}
	mv_mmu_get_stats(g->vm, ms);
}

static int vcpu_boot(struct vcpu_demo *g)
{
	struct mv_vcpu_stats st;
	struct mv_mmu_stats ms;
	int rc = build_tables(g);

	for (int c = 0; !rc && c < 2; c++)
		rc = mv_vcpu_create(g->vm, NULL, &g->cpu[c]);
	for (unsigned c = 0; !rc && c < 2; c++) {
		rc = long_mode(g->cpu[c], ROOT(c));
		for (unsigned i = 0; !rc && i < UPAGES; i++) {
			uint64_t v = token(c, i);

			rc = access8(g->cpu[c], UVA + i * MV_PAGE_SIZE, &v,
				     true, MV_ACC_USER);
		}
		if (!rc)
			rc = check_space(g->cpu[c], c);
	}
	if (rc)
		return rc;
	stats(g, &st, &ms);
	say(g, "vcpu-boot", "2 vCPUs in long mode, one in each of 2 address "
	    "spaces sharing a kernel half, write and read %u pages each: "
	    "%llu shadow faults (%llu first writes setting D), %llu fills, "
	    "%llu shadow pages, %llu guest tables write-tracked", UPAGES,
	    (unsigned long long)st.faults,
	    (unsigned long long)st.dirty_faults,
	    (unsigned long long)st.fills,
	    (unsigned long long)ms.shadow_pages,
	    (unsigned long long)ms.tracked_gfns);
	return 0;
}

static int vcpu_switch(struct vcpu_demo *g)
{
	struct mv_vcpu_stats a, b;
	struct mv_mmu_stats ma, mb;
	int rc = 0;

	stats(g, &a, &ma);
	for (unsigned k = 0; !rc && k < SWITCHES; k++) {
		rc = mv_vcpu_set_reg(g->cpu[0], MV_REG_CR3, ROOT(k & 1));
		rc = rc > 0 ? -MV_EINTERNAL : rc;
		if (!rc)
			rc = check_space(g->cpu[0], k & 1);
	}
	if (rc)
		return rc;
	stats(g, &b, &mb);
	say(g, "vcpu-cr3", "vCPU 0 loads CR3 %u times between the 2 spaces "
	    "and reads them: %llu roots from the cache, %llu new shadow "
	    "faults, %llu TLB misses answered by the shadow tables, shadow "
	    "pages %llu -> %llu", SWITCHES,
	    (unsigned long long)(b.root_cache_hits - a.root_cache_hits),
	    (unsigned long long)(b.faults - a.faults),
	    (unsigned long long)(b.shadow_hits - a.shadow_hits),
	    (unsigned long long)ma.shadow_pages,
	    (unsigned long long)mb.shadow_pages);
	return 0;
}

/* fork() of A into C by the guest: C's user tables, every PTE copied
 * read-only and A's made read-only too, all through the kernel window
 * (writes to tracked tables are emulated), then a CR3 reload. */
static int vcpu_fork(struct vcpu_demo *g)
{
	struct mv_vcpu *cpu = g->cpu[0];
	struct mv_vcpu_stats a, b;
	struct mv_mmu_stats ma, mb;
	uint64_t e;
	int rc = mv_vcpu_set_reg(cpu, MV_REG_CR3, ROOT(0));

	stats(g, &a, &ma);
	e = UPDPT(2) | TBL;
	rc = rc ? rc : access8(cpu, KWIN + ROOT(2), &e, true, 0);
	e = UPD(2) | TBL;
	rc = rc ? rc : access8(cpu, KWIN + UPDPT(2), &e, true, 0);
	e = UPT(2) | TBL;
	rc = rc ? rc : access8(cpu, KWIN + UPD(2) + ((UVA >> 21) & 511) * 8,
			       &e, true, 0);
	for (unsigned i = 0; !rc && i < UPAGES; i++) {
		uint64_t off = (((UVA >> 12) + i) & 511) * 8;

		rc = access8(cpu, KWIN + UPT(0) + off, &e, false, 0);
		e &= ~(uint64_t)MV_PTE_W;
		if (!rc)
			rc = access8(cpu, KWIN + UPT(0) + off, &e, true, 0);
		if (!rc)
			rc = access8(cpu, KWIN + UPT(2) + off, &e, true, 0);
	}
	if (!rc)
		rc = mv_vcpu_set_reg(cpu, MV_REG_CR3, ROOT(0));
	if (rc)
		return rc > 0 ? -MV_EINTERNAL : rc;
	stats(g, &b, &mb);
	say(g, "vcpu-fork", "the guest forks space A into C: %u PTEs made "
	    "read-only and copied through its kernel window, %llu emulated "
	    "writes to tracked tables, %llu tables unshadowed by write "
	    "flooding", UPAGES,
	    (unsigned long long)(b.emulated_writes - a.emulated_writes),
	    (unsigned long long)(mb.flood_unshadows - ma.flood_unshadows));
	return 0;
}

/* One COW fault, handled as the guest's kernel does. */
static int cow_page(struct mv_vcpu *cpu, unsigned i)
{
	static uint8_t page[MV_PAGE_SIZE];
	uint64_t va = UVA + i * MV_PAGE_SIZE, v = token(0, i) + 1, e;
	uint64_t pte = KWIN + UPT(0) + (((UVA >> 12) + i) & 511) * 8;
	struct mv_fault f;
	int rc = mv_vcpu_write(cpu, va, &v, 8, MV_ACC_USER, &f);

	if (rc != MV_VCPU_FAULT || f.error_code !=
	    (MV_PF_P | MV_PF_W | MV_PF_U))
		return rc < 0 ? rc : -MV_EINTERNAL;
	rc = access8(cpu, pte, &e, false, 0);
	if (!rc)
		rc = mv_vcpu_read(cpu, KWIN + (e & ADDR), page, sizeof(page), 0,
				  NULL);
	if (!rc)
		rc = mv_vcpu_write(cpu, KWIN + COW_FRAME(i), page, sizeof(page),
				   0, NULL);
	e = COW_FRAME(i) | UDATA;
	if (!rc)
		rc = access8(cpu, pte, &e, true, 0);
	if (!rc)
		rc = mv_vcpu_invlpg(cpu, va);
	return rc ? (rc > 0 ? -MV_EINTERNAL : rc)
		  : access8(cpu, va, &v, true, MV_ACC_USER);
}

static int vcpu_cow(struct vcpu_demo *g)
{
	struct mv_vcpu_stats a, b;
	struct mv_mmu_stats ma, mb;
	int rc = 0;

	stats(g, &a, &ma);
	for (unsigned i = 0; !rc && i < UPAGES; i++)
		rc = cow_page(g->cpu[0], i);
	/* vCPU 1 runs the child: it still sees the parent's data */
	rc = rc ? rc : long_mode(g->cpu[1], ROOT(2));
	rc = rc ? rc : check_space(g->cpu[1], 0);
	for (unsigned i = 0; !rc && i < UPAGES; i++) {
		uint64_t v;

		rc = access8(g->cpu[0], UVA + i * MV_PAGE_SIZE, &v, false,
			     MV_ACC_USER);
		if (!rc && v != token(0, i) + 1)
			rc = -MV_ECORRUPT;
	}
	if (rc)
		return rc;
	stats(g, &b, &mb);
	say(g, "vcpu-cow", "the parent writes its %u pages: %llu #PF taken "
	    "by the guest, which copies each page, writes the PTE and "
	    "INVLPGs (%llu); the child on vCPU 1 still reads the old data; "
	    "%llu shadow pages, %llu leaves zapped for page changes", UPAGES,
	    (unsigned long long)(b.guest_faults - a.guest_faults),
	    (unsigned long long)(b.invlpg - a.invlpg),
	    (unsigned long long)mb.shadow_pages,
	    (unsigned long long)mb.notify_zaps);
	return 0;
}

static int vcpu_zap(struct vcpu_demo *g)
{
	struct mv_vcpu_stats a, b;
	struct mv_mmu_stats ma, mb;
	int rc;

	stats(g, &a, &ma);
	rc = mv_mmu_zap_all(g->vm, 0);
	if (!rc)
		rc = long_mode(g->cpu[0], ROOT(1));
	if (!rc)
		rc = check_space(g->cpu[0], 1);
	if (!rc)
		rc = check_space(g->cpu[1], 0);  /* the child */
	if (rc)
		return rc;
	stats(g, &b, &mb);
	say(g, "vcpu-zap", "zap of all %llu shadow pages (one generation "
	    "bump, freed in batches): the vCPUs load fresh roots and refault "
	    "(%llu faults); %llu shadow pages now, %llu shootdowns in all",
	    (unsigned long long)ma.shadow_pages,
	    (unsigned long long)(b.faults - a.faults),
	    (unsigned long long)mb.shadow_pages,
	    (unsigned long long)mb.shootdowns);
	return 0;
}

/* Pages the steps allocate: tables, frames, copies, shadow pages. */
#define PAGES_NEEDED 512u

static bool room_for_demo(struct mv_host *host)
{
	struct mv_host_stats st;
	uint64_t used;

	if (mv_host_get_stats(host, &st) || !st.budget_pages)
		return true;
	used = st.private_pages + st.shared_pages;
	return st.budget_pages > used && st.budget_pages - used >= PAGES_NEEDED;
}

int run_vcpu(struct mv_host *host, run_guest_report_fn fn, void *ctx)
{
	static int (*const steps[])(struct vcpu_demo *) = {
		vcpu_boot, vcpu_switch, vcpu_fork, vcpu_cow, vcpu_zap,
	};
	struct mv_vm_range ram = { .type = MV_PAGE_RAM,
				   .size = RAM_PAGES * MV_PAGE_SIZE,
				   .name = "ram" };
	struct mv_vm_config cfg = { .ranges = &ram, .nranges = 1 };
	struct mv_mmu_config mc = { 0 };
	struct vcpu_demo g = { .fn = fn, .ctx = ctx };
	int rc = room_for_demo(host) ? mv_vm_create(host, &cfg, &g.vm)
				     : -MV_EBUDGET;

	if (!rc)
		rc = mv_mmu_configure(g.vm, &mc);  /* reserves the shadow */
	if (rc == -MV_EBUDGET || rc == -MV_ERESERVATION) {
		say(&g, "vcpu-boot", "skipped: the host budget leaves no room "
		    "for the vCPU guest");
		if (g.vm)
			mv_vm_destroy(g.vm);
		return 0;
	}
	for (size_t i = 0; !rc && i < sizeof(steps) / sizeof(steps[0]); i++)
		rc = steps[i](&g);
	if (!rc)
		rc = run_dirty(g.vm, g.cpu[0], KWIN, RAM_PAGES, fn, ctx);
	for (int c = 0; c < 2; c++)
		if (g.cpu[c])
			mv_vcpu_destroy(g.cpu[c]);
	if (g.vm)
		mv_vm_destroy(g.vm);
	return rc;
}
