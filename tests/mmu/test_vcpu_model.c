/* The shadow MMU equals the guest's own tables: a model guest OS
 * (model_os.h, model_ops.h) runs through every paging mode and random
 * rights switches, and after every one of its steps a batch of random
 * accesses through the vCPU (translate, read, write, fetch; user,
 * supervisor, implicit) is compared with a fresh walk of the guest tables
 * (mv_walk with MV_ACC_NO_AD on the VM's memory, done before the access):
 *   - the fault, its vector, exact error code and address;
 *   - the guest-physical page, checked with data: a token written through
 *     the vCPU is read back at the walk's gpa with mv_vm_phys_read, and a
 *     token written there with mv_vm_phys_write is read through the vCPU;
 *   - the guest's A/D bits afterwards: A in every entry of a successful
 *     access, D in the leaf of a successful write, nothing else changed,
 *     nothing at all changed by a faulting access.
 * Copy-on-write faults are taken by the model OS, which then re-executes
 * the access. The PRNG is seeded; the seed is printed and a failure names
 * it. MV_MODEL_ACCESSES sets the number of accesses (default 1,000,000),
 * MV_MODEL_SEED the seed. */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <memvisor/host.h>

#include "model_ops.h"

#define DEFAULT_ACCESSES 1000000ull

struct tm_state {
	struct mv_host *host;
	struct mo m;
	struct mv_gmem gm;
	struct mv_paging ref;
	uint8_t dev[MO_MMIO_SIZE];
	uint64_t seed, step, accesses, checked_ad, data_checks, faults;
	uint64_t mmio, translates, crossings, by_mode[6], shares, balloons;
	uint64_t recent[8];
	unsigned nrecent;
	struct mv_vcpu_stats vs0;  /* before the access: how it was answered */
	struct mv_walk *last;      /* the walk of the access being checked */
};

static struct tm_state T;

static int dev_read(void *opaque, uint64_t off, void *buf, size_t len)
{
	(void)opaque;
	memcpy(buf, T.dev + off, len);
	return 0;
}

static int dev_write(void *opaque, uint64_t off, const void *buf, size_t len)
{
	(void)opaque;
	memcpy(T.dev + off, buf, len);
	return 0;
}

static const char *mode_name(int mode)
{
	static const char *n[] = { "off", "32-bit", "PAE", "4-level",
				   "5-level" };

	return n[mode];
}

#define FAILF(...)                                                          \
	do {                                                                \
		char msg_[1024];                                            \
		size_t n_ = (size_t)snprintf(msg_, sizeof(msg_), __VA_ARGS__);\
		if (n_ < sizeof(msg_))                                      \
			describe(msg_ + n_, sizeof(msg_) - n_);             \
		fail_msg("seed %" PRIu64 " step %" PRIu64 " access %" PRIu64 \
			 " mode %s pse %d pcide %d cr0 %#" PRIx64           \
			 " cr3 %#" PRIx64 " cr4 %#" PRIx64 " efer %#" PRIx64 \
			 " rflags %#" PRIx64 " pkru %#x: %s",               \
			 T.seed, T.step, T.accesses, mode_name(T.m.mode),   \
			 T.m.pse, T.m.pcide, T.m.regs.cr0, T.m.regs.cr3,    \
			 T.m.regs.cr4, T.m.regs.efer, T.m.regs.rflags,      \
			 T.m.regs.pkru, msg_);                              \
	} while (0)

/* How the vCPU answered (stat deltas) and the reference walk. */
static void describe(char *buf, size_t size)
{
	struct mv_vcpu_stats vs;
	size_t n;

	mv_vcpu_get_stats(T.m.cpu, &vs);
	n = (size_t)snprintf(buf, size, " [tlb hits +%" PRIu64 " shadow hits +%"
			     PRIu64 " faults +%" PRIu64 "]",
			     vs.tlb_hits - T.vs0.tlb_hits,
			     vs.shadow_hits - T.vs0.shadow_hits,
			     vs.faults - T.vs0.faults);
	if (!T.last || n >= size)
		return;
	const struct mv_walk *w = T.last;

	n += (size_t)snprintf(buf + n, size - n, " walk: status %u level %u "
			      "gpa %#" PRIx64 " perm %u pkey %u entries",
			      w->status, w->level, w->gpa, w->perm, w->pkey);
	for (unsigned i = 0; i < w->nr_entries && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, " %#" PRIx64 "@%#"
				      PRIx64, w->entry[i], w->entry_gpa[i]);
}

static void model_ok(void)
{
	if (T.m.err[0])
		FAILF("model OS: %s", T.m.err);
}

/* The reference context: the walker's view of the model's registers. */
static void ref_build(void)
{
	struct mv_cpu_regs r;

	assert_int_equal(mv_vcpu_get_regs(T.m.cpu, &r), 0);
	if (r.cr0 != T.m.regs.cr0 || r.cr3 != T.m.regs.cr3 ||
	    r.cr4 != T.m.regs.cr4 || r.efer != T.m.regs.efer ||
	    r.pkru != T.m.regs.pkru ||
	    (r.rflags & MV_RFLAGS_AC) != (T.m.regs.rflags & MV_RFLAGS_AC))
		FAILF("vCPU registers differ from the model's (cr3 %#" PRIx64
		      ")", r.cr3);
	if (mv_paging_init(&T.ref, &T.m.regs, NULL, &T.gm) != MV_WALK_OK)
		FAILF("reference context refused the registers");
}

/* ---- one access ------------------------------------------------------------ */

enum how { HOW_TRANSLATE, HOW_ACCESS };

struct piece {
	uint64_t va, gpa;
	size_t len;
	struct mv_walk w;
};

/* A/D expectations: every entry of the walks with its value before. */
struct ad {
	uint64_t gpa, old, set;
	bool may;  /* set bits may or may not appear (pages before a fault) */
};

static unsigned esize(void)
{
	return T.m.esize;
}

static uint64_t read_entry(uint64_t gpa)
{
	uint64_t v = 0;

	if (mv_vm_phys_read(T.m.vm, gpa, &v, esize()))
		FAILF("cannot read entry %#" PRIx64, gpa);
	return v;
}

/* A global translation survives CR3 loads (CR4.PGE), so one that was
 * cached while another address space was current serves this one without
 * a walk: the top-level kernel entries, of which every address space has
 * its own copy (all but PAE), then keep their A/D bits as they are. */
static bool global_copy(const struct mv_walk *w, uint64_t va)
{
	return (T.m.regs.cr4 & MV_CR4_PGE) && (w->leaf & MV_PTE_G) &&
	       T.m.mode != MV_PAGING_PAE && mo_kernel(&T.m, va);
}

static unsigned ad_collect(const struct piece *p, unsigned n, bool write,
			   unsigned fault_piece, struct ad *ad)
{
	unsigned k = 0;

	for (unsigned i = 0; i < n; i++) {
		const struct mv_walk *w = &p[i].w;

		for (unsigned e = 0; e < w->nr_entries; e++) {
			uint64_t set = 0;
			unsigned j;

			if (i < fault_piece) {
				set = MV_PTE_A;
				if (write && e + 1 == w->nr_entries)
					set |= MV_PTE_D;
			}
			for (j = 0; j < k && ad[j].gpa != w->entry_gpa[e]; j++)
				;
			if (j == k)
				ad[k++] = (struct ad){ w->entry_gpa[e],
						       w->entry[e], 0, false };
			ad[j].set |= set;
			ad[j].may |= (i < fault_piece && fault_piece < n) ||
				     (e == 0 && global_copy(w, p[i].va));
		}
	}
	return k;
}

static void ad_check(const struct ad *ad, unsigned n, uint64_t va)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t now = read_entry(ad[i].gpa);
		uint64_t want = ad[i].old | ad[i].set;
		bool ok = ad[i].may ? (now | want) == want &&
				      (now & ad[i].old) == ad[i].old
				    : now == want;

		if (!ok)
			FAILF("va %#" PRIx64 ": entry at %#" PRIx64 " is %#"
			      PRIx64 ", was %#" PRIx64 ", expected %#" PRIx64
			      "%s", va, ad[i].gpa, now, ad[i].old, want,
			      ad[i].may ? " (or less)" : "");
	}
	T.checked_ad += n;
}

static bool in_mmio(uint64_t gpa)
{
	return gpa >= MO_MMIO_GPA && gpa - MO_MMIO_GPA < MO_MMIO_SIZE;
}

/* Is the target a page whose bytes must be kept (a table in use)? */
static bool is_table(uint64_t gpa)
{
	return mo_is_ram(gpa) && *mo_kindp(&T.m, gpa) == MO_TABLE;
}

/* Put @len bytes of @buf at @gpa from outside the vCPU (RAM or device). */
static void outside_put(uint64_t gpa, const void *buf, size_t len)
{
	if (in_mmio(gpa))
		memcpy(T.dev + (gpa - MO_MMIO_GPA), buf, len);
	else if (mv_vm_phys_write(T.m.vm, gpa, buf, len))
		FAILF("phys_write of a token at %#" PRIx64 " failed", gpa);
}

/* The bytes at @gpa as seen from outside: 0, or the error a vCPU access
 * of that gpa must return too (a hole). */
static int outside_get(uint64_t gpa, void *buf, size_t len)
{
	if (in_mmio(gpa)) {
		memcpy(buf, T.dev + (gpa - MO_MMIO_GPA), len);
		return 0;
	}
	return mv_vm_phys_read(T.m.vm, gpa, buf, len);
}

static void fill_token(uint8_t *buf, size_t len)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)mo_rand(&T.m);
}

/* Does [gpa, gpa+len) overlap an entry of the walks (a table written
 * through an alias of itself)? */
static bool hits_entries(const struct piece *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < n; j++)
			for (unsigned e = 0; e < p[j].w.nr_entries; e++)
				if (p[j].w.entry_gpa[e] >> 12 == p[i].gpa >> 12)
					return true;
	return false;
}

static void expect_fault(const struct piece *p, int rc,
			 const struct mv_fault *f)
{
	const struct mv_walk *w = &p->w;
	uint8_t vec = w->status == MV_WALK_GP ? MV_VEC_GP : MV_VEC_PF;

	if (rc != MV_VCPU_FAULT)
		FAILF("va %#" PRIx64 ": rc %d, the walk faults (status %u, "
		      "error %#x)", p->va, rc, w->status, w->error_code);
	if (f->vector != vec ||
	    (vec == MV_VEC_PF && (f->error_code != w->error_code ||
				  f->addr != p->va)))
		FAILF("va %#" PRIx64 ": fault %u/%#x at %#" PRIx64
		      ", the walk says %u/%#x at %#" PRIx64, p->va, f->vector,
		      f->error_code, f->addr, vec, w->error_code, p->va);
	T.faults++;
}

/* translate: the result kind, the gpa, and the page through the pointer. */
static void do_translate(struct piece *p, unsigned acc)
{
	struct mv_xlate x;
	uint8_t tok[16], got[16];  /* the longest access of one_access */
	bool write = acc & MV_ACC_WRITE, table = is_table(p->gpa);
	size_t len = p->len;
	int rc;

	T.translates++;
	if (p->w.status == MV_WALK_OK && mo_is_ram(p->gpa) && !write && !table &&
	    mo_pct(&T.m, 60)) {
		fill_token(tok, len);
		outside_put(p->gpa, tok, len);
	}
	rc = mv_vcpu_translate(T.m.cpu, p->va, acc, &x);
	if (p->w.status != MV_WALK_OK) {
		expect_fault(p, rc, &x.fault);
		return;
	}
	if (!mo_is_ram(p->gpa)) {
		if (rc != MV_VCPU_MMIO || x.gpa != p->gpa)
			FAILF("va %#" PRIx64 ": rc %d gpa %#" PRIx64
			      ", expected MMIO at %#" PRIx64, p->va, rc, x.gpa,
			      p->gpa);
		T.mmio++;
		return;
	}
	int tracked = mv_vm_page_tracked(T.m.vm, p->gpa >> 12);
	int want = write && tracked == 1 ? MV_VCPU_SLOW : MV_VCPU_OK;

	if (rc != want || x.gpa != p->gpa)
		FAILF("va %#" PRIx64 " acc %#x: rc %d gpa %#" PRIx64
		      ", expected rc %d gpa %#" PRIx64 " (tracked %d)", p->va,
		      acc, rc, x.gpa, want, p->gpa, tracked);
	if (rc != MV_VCPU_OK)
		return;
	if (x.span != 4096 - (p->va & 4095))
		FAILF("va %#" PRIx64 ": span %zu", p->va, x.span);
	if (write) {
		if (table)
			outside_get(p->gpa, tok, len);  /* keep the table */
		else
			fill_token(tok, len);
		memcpy(x.hva, tok, len);
		outside_get(p->gpa, got, len);
	} else {
		memcpy(got, x.hva, len);
		outside_get(p->gpa, tok, len);
	}
	if (memcmp(tok, got, len))
		FAILF("va %#" PRIx64 " -> gpa %#" PRIx64 ": the vCPU's page "
		      "is not the walk's (translate, %s)", p->va, p->gpa,
		      write ? "write" : "read");
	T.data_checks++;
}

/* read / write / fetch of one or two pages. */
static void do_access(struct piece *p, unsigned n, unsigned acc)
{
	uint8_t tok[16], got[16];
	bool write = acc & MV_ACC_WRITE;
	/* Some reads leave the page as it is: a never written page is then
	 * mapped as the zero page, and the next token written from outside
	 * must reach the vCPU all the same. */
	bool notoken = mo_pct(&T.m, 40);
	size_t len = 0;
	int want = 0, rc;
	struct mv_fault f;

	for (unsigned i = 0; i < n; i++)
		if (p[i].w.status != MV_WALK_OK)
			goto fault;
	for (unsigned i = 0; i < n; i++) {
		uint8_t *t = tok + len;

		if (is_table(p[i].gpa) || (!write && !in_mmio(p[i].gpa) &&
					   notoken)) {
			outside_get(p[i].gpa, t, p[i].len);  /* keep it */
		} else {
			fill_token(t, p[i].len);
			if (!write && (mo_is_ram(p[i].gpa) || in_mmio(p[i].gpa)))
				outside_put(p[i].gpa, t, p[i].len);
		}
		if (!mo_is_ram(p[i].gpa) && !in_mmio(p[i].gpa))
			want = -MV_ERANGE;  /* a hole: as phys access */
		len += p[i].len;
	}
	if (write)
		rc = mv_vcpu_write(T.m.cpu, p[0].va, tok, len, acc, &f);
	else if (acc & MV_ACC_FETCH)
		rc = mv_vcpu_fetch(T.m.cpu, p[0].va, got, len, acc, &f);
	else
		rc = mv_vcpu_read(T.m.cpu, p[0].va, got, len, acc, &f);
	if (rc != want)
		FAILF("va %#" PRIx64 " len %zu acc %#x: rc %d, expected %d",
		      p[0].va, len, acc, rc, want);
	if (want)
		return;
	/* Written bytes are read back; a table read is compared with the
	 * table as the access left it (its own walk may have set A/D in
	 * the bytes it reads, before reading them, as a CPU does). */
	for (unsigned i = 0, off = 0; i < n; off += p[i].len, i++)
		if (write)
			outside_get(p[i].gpa, got + off, p[i].len);
		else if (is_table(p[i].gpa))
			outside_get(p[i].gpa, tok + off, p[i].len);
	if (memcmp(tok, got, len))
		FAILF("va %#" PRIx64 " len %zu -> gpa %#" PRIx64 ": the vCPU's "
		      "page is not the walk's (%s)", p[0].va, len, p[0].gpa,
		      write ? "write" : "read");
	T.data_checks++;
	return;
fault:
	fill_token(tok, 16);
	for (unsigned i = 0; i < n; i++)
		len += p[i].len;
	if (write)
		rc = mv_vcpu_write(T.m.cpu, p[0].va, tok, len, acc, &f);
	else if (acc & MV_ACC_FETCH)
		rc = mv_vcpu_fetch(T.m.cpu, p[0].va, got, len, acc, &f);
	else
		rc = mv_vcpu_read(T.m.cpu, p[0].va, got, len, acc, &f);
	for (unsigned i = 0; i < n; i++)
		if (p[i].w.status != MV_WALK_OK) {
			expect_fault(&p[i], rc, &f);
			return;
		}
}

static unsigned first_fault(const struct piece *p, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (p[i].w.status != MV_WALK_OK)
			return i;
	return n;
}

/* One access, checked. Returns the leaf of a copy-on-write fault for the
 * OS to handle (0 when there is none). */
static uint64_t check_one(uint64_t va, size_t len, unsigned acc,
			  enum how how, unsigned *cow_level)
{
	struct piece p[2];
	struct ad ad[2 * MV_WALK_MAX_LEVELS];
	unsigned n = 1, k;
	bool write = acc & MV_ACC_WRITE;

	va = mo_canon(&T.m, va);
	p[0].va = va;
	p[0].len = len;
	if ((va & 4095) + len > 4096) {
		p[0].len = 4096 - (va & 4095);
		p[1].va = mo_canon(&T.m, va + p[0].len);
		p[1].len = len - p[0].len;
		n = 2;
		T.crossings++;
	}
	for (unsigned i = 0; i < n; i++) {
		int rc = mv_walk(&T.ref, &T.gm, p[i].va, acc | MV_ACC_NO_AD,
				 &p[i].w);

		if (rc < 0 || rc == MV_WALK_RETRY)
			FAILF("reference walk of %#" PRIx64 ": %d", p[i].va, rc);
		p[i].gpa = p[i].w.gpa;
	}
	/* A write into the very tables it walks through: keep it a read
	 * (its A/D and data would race in the check, not in the MMU). */
	if (write && hits_entries(p, n)) {
		acc &= ~MV_ACC_WRITE;
		write = false;
		for (unsigned i = 0; i < n; i++)
			mv_walk(&T.ref, &T.gm, p[i].va, acc | MV_ACC_NO_AD,
				&p[i].w);
	}
	unsigned ff = first_fault(p, n);

	T.last = &p[ff < n ? ff : 0].w;
	mv_vcpu_get_stats(T.m.cpu, &T.vs0);
	k = ad_collect(p, n, write, ff, ad);
	if (how == HOW_TRANSLATE && n == 1)
		do_translate(&p[0], acc);
	else
		do_access(p, n, acc);
	ad_check(ad, k, va);
	T.last = NULL;
	T.accesses++;
	/* A write fault on a present read-only copy-on-write leaf. */
	if (ff < n && write && p[ff].w.status == MV_WALK_PF &&
	    (p[ff].w.error_code & (MV_PF_P | MV_PF_W | MV_PF_RSVD |
				   MV_PF_PK)) == (MV_PF_P | MV_PF_W) &&
	    p[ff].w.nr_entries &&
	    (p[ff].w.entry[p[ff].w.nr_entries - 1] & MO_COW)) {
		*cow_level = p[ff].w.level;
		return p[ff].w.entry_gpa[p[ff].w.nr_entries - 1];
	}
	return 0;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *s = getenv(name);

	return s && *s ? strtoull(s, NULL, 0) : dflt;
}

/* ---- the VMM behind the guest's back --------------------------------------------- */

static uint64_t pick_data_gfn(void)
{
	uint64_t gpa = mo_pct(&T.m, 50) ? mo_pick_pool(&T.m, true)
		       : MO_LARGE_AREA + ((uint64_t)mo_rnd(&T.m, 8192) << 12);

	return *mo_kindp(&T.m, gpa) == MO_DATA ? gpa >> 12 : 0;
}

/* Sharing (of data pages, and of a table page with a data copy of it)
 * and ballooning of data pages: invisible to the guest but for the
 * ballooned page's content (zeros), and every shadow PTE and TLB entry
 * of those pages must follow. */
static void host_event(void)
{
	static uint8_t page[4096];
	struct mo *m = &T.m;
	uint64_t a = pick_data_gfn(), b = pick_data_gfn();
	unsigned r = mo_rnd(m, 3);

	if (!a || !b || a == b)
		return;
	if (r == 0) {
		if (mv_vm_balloon_inflate(m->vm, &a, 1) == 0)
			T.balloons++;
		return;
	}
	if (r == 1 && m->mode != MV_PAGING_OFF) {
		/* a table page and a data copy of it */
		uint64_t t = mo_pick_pool(m, false);

		if (*mo_kindp(m, t) != MO_TABLE)
			return;
		a = t >> 12;
	}
	if (mv_vm_phys_read(m->vm, a << 12, page, 4096) ||
	    mv_vm_phys_write(m->vm, b << 12, page, 4096))
		FAILF("copy for sharing failed");
	if (mv_vm_share_pages(m->vm, a, m->vm, b) == 0)
		T.shares++;
}

/* ---- the access mix ---------------------------------------------------------- */

static uint64_t pick_va(void)
{
	struct mo *m = &T.m;
	unsigned r = mo_rnd(m, 100);

	if (m->mode == MV_PAGING_OFF) {
		if (r < 70)
			return mo_rnd(m, MO_LOW_SIZE);
		if (r < 80)
			return MO_MMIO_GPA + mo_rnd(m, MO_MMIO_SIZE);
		if (r < 85)
			return MO_HOLE_GPA + mo_rnd(m, 8192);
		return mo_rand(m);
	}
	if (r < 40 && T.nrecent)
		return T.recent[mo_rnd(m, T.nrecent)] ^ mo_rnd(m, 4096);
	if (r < 80 && m->nslots) {
		const struct mo_slot *s = &m->slot[mo_rnd(m, m->nslots)];
		uint64_t size = mo_psize(m, s->level);
		uint64_t off = s->level == 1 ? mo_rnd(m, 4096)
			       : (mo_rand(m) % (size >> 12)) << 12 |
				 mo_rnd(m, 4096);

		if (s->level > 1 && mo_pct(m, 50))
			off &= 0x3fffff;  /* pages near the start: the ones
					   * the OS's pieces touch too */
		if (s->va >> 21 == 0x400000 >> 21 && mo_pct(m, 30))
			off += MO_ALIAS;  /* the aliased page table */
		return s->va + off;
	}
	if (r < 92)
		return m->direct + mo_rnd(m, MO_NPOOL << 12);
	if (r < 96)
		return mo_rand(m);
	return mo_long(m) ? mo_rand(m) >> 16 : (uint32_t)mo_rand(m);
}

static unsigned pick_acc(void)
{
	struct mo *m = &T.m;
	unsigned r = mo_rnd(m, 100), acc = 0;

	if (r < 35)
		acc |= MV_ACC_WRITE;
	else if (r < 50)
		acc |= MV_ACC_FETCH;
	r = mo_rnd(m, 100);
	if (r < 45)
		acc |= MV_ACC_USER;
	else if (r < 55)
		acc |= MV_ACC_IMPLICIT;
	else if (r < 58)
		acc |= MV_ACC_IMPLICIT | MV_ACC_USER;
	return acc;
}

/* Debugging aid (MV_MODEL_DEBUG_FROM=n): from access n on, every table
 * page of the model must be unchanged by an access but for A/D bits. */
static uint64_t tables_hash(void)
{
	static uint8_t page[4096];
	uint64_t h = 0;

	for (uint64_t f = 0; f < MO_LOW_FRAMES + MO_HIGH_FRAMES; f++) {
		uint64_t gpa = f < MO_LOW_FRAMES ? f << 12
			       : MO_HIGH_GPA + ((f - MO_LOW_FRAMES) << 12);

		if (*mo_kindp(&T.m, gpa) != MO_TABLE)
			continue;
		mv_vm_phys_read(T.m.vm, gpa, page, 4096);
		for (unsigned i = 0; i < 4096; i += 4) {
			uint32_t v;

			memcpy(&v, page + i, 4);
			h = (h ^ (v & ~0x60u) ^ (gpa + i)) * 0x100000001b3ull;
		}
	}
	return h;
}

static void one_access(void)
{
	static uint64_t debug_from = UINT64_MAX - 1;
	uint64_t h0 = 0;

	if (debug_from == UINT64_MAX - 1)
		debug_from = env_u64("MV_MODEL_DEBUG_FROM", UINT64_MAX);
	if (T.accesses >= debug_from)
		h0 = tables_hash();
	static const size_t lens[] = { 1, 2, 4, 8, 8, 8, 3, 16 };
	struct mo *m = &T.m;
	uint64_t va = pick_va();
	unsigned acc = pick_acc(), level = 0;
	enum how how = mo_pct(m, 30) ? HOW_TRANSLATE : HOW_ACCESS;
	size_t len = lens[mo_rnd(m, 8)];

	if (mo_pct(m, 4))
		va |= 4096 - 1 - mo_rnd(m, 8);  /* across the page end */
	if (how == HOW_TRANSLATE && (va & 4095) + len > 4096)
		len = 4096 - (va & 4095);
	uint64_t leaf = check_one(va, len, acc, how, &level);

	if (T.accesses > debug_from && tables_hash() != h0)
		FAILF("the access at %#" PRIx64 " len %zu acc %#x how %d "
		      "changed a table", va, len, acc, how);
	model_ok();
	if (leaf) {
		mo_cow(m, mo_canon(m, va), leaf, level);
		model_ok();
		check_one(va, len, acc, how, &level);
	}
	T.recent[T.nrecent < 8 ? T.nrecent++ : mo_rnd(m, 8)] = va;
}

/* ---- the run --------------------------------------------------------------------- */


static void setup_vm(const struct mv_mmu_config *mc)
{
	struct mv_vm_range r[] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = MO_LOW_SIZE,
		  .name = "low" },
		{ .type = MV_PAGE_MMIO, .gpa = MO_MMIO_GPA,
		  .size = MO_MMIO_SIZE, .name = "dev", .read = dev_read,
		  .write = dev_write },
		{ .type = MV_PAGE_RAM, .gpa = MO_HIGH_GPA,
		  .size = MO_HIGH_SIZE, .name = "high" },
	};
	struct mv_vm_config vc = { .ranges = r, .nranges = 3 };

	assert_int_equal(mv_host_create(NULL, &T.host), 0);
	assert_int_equal(mv_vm_create(T.host, &vc, &T.m.vm), 0);
	assert_int_equal(mv_mmu_configure(T.m.vm, mc), 0);
	assert_int_equal(mv_vcpu_create(T.m.vm, NULL, &T.m.cpu), 0);
	assert_int_equal(mv_gmem_vm_init(&T.gm, T.m.vm), 0);
}

static void print_stats(double secs)
{
	struct mv_vcpu_stats vs;
	struct mv_mmu_stats ms;
	const struct mo_stats *o = &T.m.st;

	mv_vcpu_get_stats(T.m.cpu, &vs);
	mv_mmu_get_stats(T.m.vm, &ms);
	print_message("model: %" PRIu64 " accesses in %.1f s (%.2f M/s), %"
		      PRIu64 " OS steps; by mode off/32/PAE/4/5: %" PRIu64
		      "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "/%" PRIu64 "\n",
		      T.accesses, secs, T.accesses / secs / 1e6, T.step,
		      T.by_mode[0], T.by_mode[1], T.by_mode[2], T.by_mode[3],
		      T.by_mode[4]);
	print_message("model: guest faults %" PRIu64 ", data checks %" PRIu64
		      ", A/D entries checked %" PRIu64 ", MMIO %" PRIu64
		      ", page crossings %" PRIu64 ", shares %" PRIu64
		      ", balloons %" PRIu64 "\n", T.faults, T.data_checks,
		      T.checked_ad, T.mmio, T.crossings, T.shares, T.balloons);
	print_message("os: maps %" PRIu64 " unmaps %" PRIu64 " prots %" PRIu64
		      " reframes %" PRIu64 " large %" PRIu64 " splits %" PRIu64
		      " merges %" PRIu64 " forks %" PRIu64 " exits %" PRIu64
		      " cow %" PRIu64 " table frees %" PRIu64 " cr3 %" PRIu64
		      " (noflush %" PRIu64 ") regs %" PRIu64 " invlpg %" PRIu64
		      " flushes %" PRIu64 " invpcid %" PRIu64
		      " table writes vcpu/phys %" PRIu64 "/%" PRIu64
		      " aliases %" PRIu64 "\n",
		      o->maps, o->unmaps, o->prots, o->reframes, o->large_maps,
		      o->splits, o->merges, o->forks, o->exits, o->cow,
		      o->table_frees, o->cr3_loads, o->noflush_loads,
		      o->reg_changes, o->invlpgs, o->flushes, o->invpcids,
		      o->vcpu_table_writes, o->phys_table_writes, o->aliases);
	print_message("mmu: tlb hits %" PRIu64 " misses %" PRIu64
		      " shadow hits %" PRIu64 " faults %" PRIu64 " fills %"
		      PRIu64 " dirty faults %" PRIu64 " emulated writes %"
		      PRIu64 " root cache hits %" PRIu64 "/%" PRIu64
		      "; shadow pages created %" PRIu64 " zapped %" PRIu64
		      " cap zaps %" PRIu64 " flood unshadows %" PRIu64
		      " notify zaps %" PRIu64 " write protects %" PRIu64 "\n",
		      vs.tlb_hits, vs.tlb_misses, vs.shadow_hits, vs.faults,
		      vs.fills, vs.dirty_faults, vs.emulated_writes,
		      vs.root_cache_hits, vs.root_loads, ms.created, ms.zapped,
		      ms.cap_zaps, ms.flood_unshadows, ms.notify_zaps,
		      ms.write_protects);
}

static void model_run(void **state)
{
	struct timespec t0, t1;
	uint64_t total = env_u64("MV_MODEL_ACCESSES", DEFAULT_ACCESSES);
	static const uint32_t caps[] = { 0, 64, 300 };

	(void)state;
	T.seed = env_u64("MV_MODEL_SEED", (uint64_t)time(NULL) ^
			 ((uint64_t)getpid() << 32));
	T.m.rng = T.seed;
	print_message("model: seed %" PRIu64 " (MV_MODEL_SEED), %" PRIu64
		      " accesses (MV_MODEL_ACCESSES)\n", T.seed, total);
	struct mv_mmu_config mc = { .max_shadow_pages = caps[T.seed % 3] };

	setup_vm(&mc);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (unsigned ep = 0; T.accesses < total; ep++) {
		unsigned which = ep < MO_NMODES ? ep : mo_rnd(&T.m, MO_NMODES);
		uint64_t end = T.accesses + 20000 + mo_rnd(&T.m, 40000);

		mo_episode(&T.m, which);
		model_ok();
		T.nrecent = 0;
		while (T.accesses < end && T.accesses < total) {
			uint64_t before = T.accesses;

			mo_step(&T.m);
			if (mo_pct(&T.m, 5))
				host_event();
			T.step++;
			model_ok();
			ref_build();
			for (unsigned i = 0, n = 1 + mo_rnd(&T.m, 24); i < n;
			     i++) {
				one_access();
				ref_build();
			}
			T.by_mode[T.m.mode] += T.accesses - before;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_stats((double)(t1.tv_sec - t0.tv_sec) +
		    (t1.tv_nsec - t0.tv_nsec) / 1e9);
	mv_vcpu_destroy(T.m.cpu);
	mv_vm_destroy(T.m.vm);
	mv_host_destroy(T.host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(model_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
