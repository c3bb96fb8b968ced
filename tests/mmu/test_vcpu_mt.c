/* Several vCPU threads write guest pages through their soft TLBs while
 * another thread changes those pages under them: sharing, balloon, write
 * monitor, handlers, reset, page moves, defragmentation and zap-all. The
 * flush protocol must make every one of these wait until no vCPU can still
 * store into the old page, and must never wait for a vCPU that is outside.
 *
 * Model. Data pages come in pairs (A, B) mapped at consecutive virtual
 * pages; every write goes to the same word of both, so a pair holds equal
 * bytes whenever no writer is between its two stores, and the sharing
 * thread's merges succeed now and then. Word slot s of every page belongs
 * to writer s % WRITERS, which writes a counter tagged with the pair and
 * itself, so a lost write (a store through a stale pointer into a freed,
 * moved or shared page) leaves a word that is not its owner's last write,
 * and a write that lands in a page reused for another pair carries the
 * wrong tag. Balloon and reset legitimately zero a pair: they bump the
 * pair's epoch (odd while in progress) under the VM lock, and a word whose
 * epoch moved since its last write may also read as 0. Shared pages are
 * checked against the checksum taken when they were merged. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "vcpu_fixture.h"

#define WRITERS 2
#define NPAIRS 16
#define NPAGES (2 * NPAIRS)
#define SLOTS 64                      /* words used at the start of a page */
#define DATA_GFN 256ull               /* data pages at 1 MiB */
#define DATA_VA 0x40000000ull         /* PML4[0] PDPT[1] PD[0] PT[i] */
#define PML4 VF_PT_BASE
#define PDPT (VF_PT_BASE + 0x1000)
#define PD (VF_PT_BASE + 0x2000)
#define PT (VF_PT_BASE + 0x3000)
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)
#define TAG_PAIR_SHIFT 48
#define TAG_WRITER_SHIFT 40
#define COUNT_MASK ((1ull << TAG_WRITER_SHIFT) - 1)
#define FILLER_GFN 1024ull            /* 4 MiB: pages that make chunks */
#define FILLER_PAGES 900
#define OTHER_PAGES 400

/* Writers run at least ITERS bursts, and on until the churn thread has
 * made CHURN_OPS changes. */
#ifdef __SANITIZE_THREAD__
#define ITERS 6000
#define CHURN_OPS 100
#else
#define ITERS 40000
#define CHURN_OPS 150
#endif

struct mt;

struct writer {
	struct mt *t;
	unsigned id;
	struct mv_vcpu *cpu;
	unsigned seed;
	uint64_t count;
	uint64_t last[NPAIRS][SLOTS];     /* last value written, 0: none */
	uint64_t epoch_at[NPAIRS][SLOTS]; /* the pair's epoch before it */
	uint64_t inline_stores, vcpu_writes, phys_writes, checks, blocks;
	char err[256];
};

struct mt {
	struct vf f;
	struct mv_vm *other;              /* a neighbour with a full chunk */
	struct writer w[WRITERS];
	_Atomic uint64_t epoch[NPAIRS];
	_Atomic unsigned writers_done;
	_Atomic uint64_t churn_ops;       /* operations that shoot down */
	_Atomic uint64_t handler_calls;
	uint64_t shares, balloons, monitors, handlers, resets, moves,
		 defrag_moves, zap_alls, shared_checked;
	char err[256];
};

static uint64_t gfn_of(unsigned pair, unsigned side)
{
	return DATA_GFN + 2 * pair + side;
}

static uint64_t va_of(unsigned pair, unsigned side, unsigned slot)
{
	return DATA_VA + (uint64_t)(2 * pair + side) * MV_PAGE_SIZE + slot * 8;
}

static void put(struct mv_vm *vm, uint64_t gpa, uint64_t val)
{
	assert_int_equal(mv_vm_phys_write(vm, gpa, &val, 8), 0);
}

/* The guest's tables, at fixed places so that a reset can rebuild them.
 * Leaves are clean (D clear): the first write to each page takes the
 * dirty fault. */
static void build_tables(struct mv_vm *vm)
{
	put(vm, PML4, PDPT | P_W_U);
	put(vm, PDPT + 8, PD | P_W_U);
	put(vm, PD, PT | P_W_U);
	for (unsigned i = 0; i < NPAGES; i++)
		put(vm, PT + 8 * i, ((DATA_GFN + i) << MV_PAGE_SHIFT) | P_W_U);
}

static unsigned rnd(unsigned *seed, unsigned n)
{
	return (unsigned)rand_r(seed) % n;
}

#define FAIL(buf, ...) \
	do { \
		if (!(buf)[0]) \
			snprintf((buf), sizeof(buf), __VA_ARGS__); \
	} while (0)

static uint64_t pattern(uint64_t gfn, unsigned word)
{
	return 0x5a5a000000000000ull | gfn << 16 | word;
}

static void fill_pattern(uint64_t *buf, uint64_t gfn, uint32_t pages)
{
	for (uint32_t i = 0; i < pages; i++)
		for (unsigned j = 0; j < MV_PAGE_SIZE / 8; j++)
			buf[i * (MV_PAGE_SIZE / 8) + j] = pattern(gfn + i, j);
}

/* Pages that nobody writes after their creation must keep their pattern:
 * the neighbour VM's (its chunk is where explicit moves put our pages)
 * and the filler pages left after ballooning half of them. */
static bool pattern_intact(struct mv_vm *vm, uint64_t gfn, uint32_t pages,
			   unsigned step)
{
	static __thread uint64_t page[MV_PAGE_SIZE / 8];

	for (uint32_t i = 0; i < pages; i += step) {
		if (mv_vm_phys_read(vm, (gfn + i) << MV_PAGE_SHIFT, page,
				    sizeof(page)))
			return false;
		for (unsigned j = 0; j < MV_PAGE_SIZE / 8; j++)
			if (page[j] != pattern(gfn + i, j))
				return false;
	}
	return true;
}

/* Filler pages with their pattern, every other one then ballooned: a
 * VM chunk and a half with holes, for defragmentation to work on. */
static void make_filler(struct mv_vm *vm)
{
	static uint64_t buf[FILLER_PAGES * MV_PAGE_SIZE / 8];
	uint64_t gfns[FILLER_PAGES / 2];

	fill_pattern(buf, FILLER_GFN, FILLER_PAGES);
	assert_int_equal(mv_vm_phys_populate(vm, FILLER_GFN, FILLER_PAGES,
					     buf), 0);
	for (unsigned i = 0; i < FILLER_PAGES / 2; i++)
		gfns[i] = FILLER_GFN + 2 * i + 1;
	assert_int_equal(mv_vm_balloon_inflate(vm, gfns, FILLER_PAGES / 2), 0);
}

/* Two partly used chunks of this VM (for defragmentation) and a fuller
 * chunk of a neighbour VM (for explicit moves). */
static void make_chunks(struct mt *t, bool filler)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 2ull << 20, .name = "ram" };
	struct mv_vm_config vc = { .ranges = &r, .nranges = 1 };
	uint64_t *buf = malloc((size_t)FILLER_PAGES * MV_PAGE_SIZE);

	assert_non_null(buf);
	if (filler)
		make_filler(t->f.vm);
	assert_int_equal(mv_vm_create(t->f.host, &vc, &t->other), 0);
	fill_pattern(buf, 0, OTHER_PAGES);
	assert_int_equal(mv_vm_phys_populate(t->other, 0, OTHER_PAGES, buf),
			 0);
	free(buf);
}

static bool others_intact(struct mt *t, unsigned step)
{
	return pattern_intact(t->other, 0, OTHER_PAGES, step) &&
	       pattern_intact(t->f.vm, FILLER_GFN, FILLER_PAGES, 2 * step);
}

/* ---- the writers ------------------------------------------------------- */

enum how { BY_VCPU, BY_INLINE, BY_PHYS };

static void store_one(struct writer *w, unsigned pair, unsigned side,
		      unsigned slot, uint64_t val, enum how how)
{
	uint64_t va = va_of(pair, side, slot);
	struct mv_tlb *tlb = mv_vcpu_tlb(w->cpu);
	struct mv_fault f;
	uint64_t *p;
	int rc;

	if (how == BY_INLINE) {
		p = mv_tlb_lookup(tlb, va, mv_tlb_class(tlb, 0), MV_TLB_WRITE);
		if (p) {
			*p = val;  /* as an emulator's store would */
			w->inline_stores++;
			return;
		}
	}
	if (how == BY_PHYS) {
		rc = mv_vm_phys_write(w->t->f.vm,
				      (gfn_of(pair, side) << MV_PAGE_SHIFT) +
				      slot * 8, &val, 8);
		w->phys_writes++;
	} else {
		rc = mv_vcpu_write(w->cpu, va, &val, 8, 0, &f);
		w->vcpu_writes++;
	}
	if (rc)
		FAIL(w->err, "writer %u: write of %#llx -> %d", w->id,
		     (unsigned long long)va, rc);
}

static void write_word(struct writer *w, unsigned pair, unsigned slot,
		       enum how how)
{
	uint64_t val = (uint64_t)(pair + 1) << TAG_PAIR_SHIFT |
		       (uint64_t)(w->id + 1) << TAG_WRITER_SHIFT |
		       (++w->count & COUNT_MASK);

	w->epoch_at[pair][slot] = atomic_load(&w->t->epoch[pair]);
	store_one(w, pair, 0, slot, val, how);
	store_one(w, pair, 1, slot, val, how);
	w->last[pair][slot] = val;
}

/* @got, read from word @slot of a page of @pair, must be @w's last write
 * there, or 0 when a balloon or reset may have come after it: the pair's
 * epoch (@e_after, read after @got was) moved since that write. */
static bool word_ok(const struct writer *w, unsigned pair, unsigned slot,
		    uint64_t got, uint64_t e_after)
{
	uint64_t want = w->last[pair][slot];
	uint64_t e = w->epoch_at[pair][slot];
	bool strict = !(e & 1) && e == e_after;

	if (got == want)
		return true;
	return !strict && got == 0;
}

static void check_word(struct writer *w, unsigned pair, unsigned side,
		       unsigned slot, uint64_t got, const char *how)
{
	uint64_t e = atomic_load(&w->t->epoch[pair]);

	if (!word_ok(w, pair, slot, got, e))
		FAIL(w->err, "writer %u: pair %u side %u slot %u (%s) holds"
		     " %#llx, last written %#llx (epoch %llu, now %llu)",
		     w->id, pair, side, slot, how, (unsigned long long)got,
		     (unsigned long long)w->last[pair][slot],
		     (unsigned long long)w->epoch_at[pair][slot],
		     (unsigned long long)e);
}

/* Read the words @w owns in both pages of @pair back, through
 * guest-physical memory and through @cpu (one word at a time: the other
 * writers' words in between are theirs to race on). */
static void check_pair(struct writer *w, struct mv_vcpu *cpu, unsigned pair)
{
	struct mv_fault f;
	uint64_t got;

	for (unsigned side = 0; side < 2; side++)
		for (unsigned s = w->id; s < SLOTS; s += WRITERS) {
			uint64_t gpa = (gfn_of(pair, side) << MV_PAGE_SHIFT) +
				       s * 8;

			if (mv_vm_phys_read(w->t->f.vm, gpa, &got, 8))
				FAIL(w->err, "phys read");
			check_word(w, pair, side, s, got, "phys");
			if (mv_vcpu_read(cpu, va_of(pair, side, s), &got, 8, 0,
					 &f))
				FAIL(w->err, "vcpu read");
			check_word(w, pair, side, s, got, "vcpu");
		}
	w->checks++;
}

/* Go outside and block until the churn thread has shot down twice: a
 * flusher must not wait for a vCPU whose thread is away. */
static void block_outside(struct writer *w)
{
	uint64_t start = atomic_load(&w->t->churn_ops);
	struct timespec t0, now;

	mv_vcpu_exit(w->cpu);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (atomic_load(&w->t->churn_ops) < start + 2 &&
	       atomic_load(&w->t->writers_done) < WRITERS - 1) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - t0.tv_sec > 30) {
			FAIL(w->err, "writer %u: the flushers stopped while"
			     " it was outside", w->id);
			break;
		}
		usleep(100);
	}
	mv_vcpu_quiesce(w->cpu);
	w->blocks++;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	assert_int_equal(mv_vcpu_create(w->t->f.vm, NULL, &w->cpu), 0);
	vf_cpu_long_mode(w->cpu, PML4);
	for (unsigned it = 0; (it < ITERS ||
			       atomic_load(&w->t->churn_ops) < CHURN_OPS) &&
			      !w->err[0]; it++) {
		unsigned burst = 1 + rnd(&w->seed, 16);

		for (unsigned b = 0; b < burst; b++) {
			unsigned r = rnd(&w->seed, 16);
			enum how how = r < 9 ? BY_INLINE
				       : r < 15 ? BY_VCPU : BY_PHYS;

			write_word(w, rnd(&w->seed, NPAIRS),
				   w->id + WRITERS * rnd(&w->seed,
							 SLOTS / WRITERS),
				   how);
		}
		if (rnd(&w->seed, 4) == 0)
			check_pair(w, w->cpu, rnd(&w->seed, NPAIRS));
		else
			mv_vcpu_quiesce(w->cpu);
		if (w->id == 0 && rnd(&w->seed, 500) == 0)
			block_outside(w);
	}
	mv_vcpu_exit(w->cpu);
	atomic_fetch_add(&w->t->writers_done, 1);
	return NULL;
}

/* ---- the thread that changes the pages ---------------------------------- */

static int pass_handler(void *opaque, struct mv_vm *vm, uint64_t gpa,
			void *buf, size_t len, enum mv_access access)
{
	struct mt *t = opaque;

	(void)vm, (void)gpa, (void)buf, (void)len, (void)access;
	atomic_fetch_add(&t->handler_calls, 1);
	return MV_HANDLER_DEFAULT;
}

static bool tolerated(int rc)
{
	return rc == 0 || rc == -MV_ESTATE || rc == -MV_EBUSY ||
	       rc == -MV_ENOENT || rc == -MV_EINVAL;
}

static void churn_rc(struct mt *t, const char *what, int rc)
{
	if (!tolerated(rc))
		FAIL(t->err, "%s -> %d", what, rc);
}

/* Content-destroying changes run under the VM lock between two epoch
 * bumps, so that a writer knows its words may have become zero. */
static void epoch_bump(struct mt *t, unsigned first, unsigned n)
{
	for (unsigned i = first; i < first + n; i++)
		atomic_fetch_add(&t->epoch[i], 1);
}

static void balloon_pair(struct mt *t, unsigned pair)
{
	uint64_t gfns[2] = { gfn_of(pair, 0), gfn_of(pair, 1) };
	int rc;

	mv_vm_lock(t->f.vm);
	epoch_bump(t, pair, 1);
	rc = mv_vm_balloon_inflate(t->f.vm, gfns, 2);
	epoch_bump(t, pair, 1);
	mv_vm_unlock(t->f.vm);
	churn_rc(t, "balloon inflate", rc);
	t->balloons += rc == 0;
	for (unsigned i = 0; i < 2; i++)
		churn_rc(t, "balloon deflate",
			 mv_vm_balloon_deflate(t->f.vm, &gfns[i], 1));
}

static void reset_vm(struct mt *t)
{
	int rc;

	mv_vm_lock(t->f.vm);
	epoch_bump(t, 0, NPAIRS);
	rc = mv_vm_reset(t->f.vm);
	build_tables(t->f.vm);
	make_filler(t->f.vm);
	epoch_bump(t, 0, NPAIRS);
	mv_vm_unlock(t->f.vm);
	churn_rc(t, "reset", rc);
	t->resets++;
}

static void toggle_handler(struct mt *t, unsigned pair, bool *on,
			   uint64_t *gpa)
{
	if (*on) {
		churn_rc(t, "handler deregister",
			 mv_vm_handler_deregister(t->f.vm, *gpa));
		*on = false;
		return;
	}
	*gpa = gfn_of(pair, 0) << MV_PAGE_SHIFT;
	int rc = mv_vm_handler_register(t->f.vm,
					pair & 1 ? MV_HANDLER_ALL
						 : MV_HANDLER_WRITE,
					*gpa, 2 * MV_PAGE_SIZE, pass_handler, t);
	churn_rc(t, "handler register", rc);
	*on = rc == 0;
	t->handlers += *on;
}

static void move_page(struct mt *t, uint64_t gfn)
{
	struct mv_page *p = mv_vm_page(t->f.vm, gfn);
	mv_page_id id = 0;
	int rc;

	/* Hold the (recursive) lock so that the page is still the one named
	 * when the mover runs; the mover takes it again. */
	mv_vm_lock(t->f.vm);
	if (mv_page_state(p) == MV_PAGE_ALLOCATED)
		id = mv_page_host_id(p);
	rc = id ? mv_host_move_page(t->f.host, id, NULL) : -MV_ESTATE;
	mv_vm_unlock(t->f.vm);
	churn_rc(t, "move", rc);
	t->moves += rc == 0;
}

/* Under the VM lock no vCPU can store: every SHARED data page must still
 * hold the bytes it was merged with. */
static void check_shared(struct mt *t)
{
	static uint8_t buf[MV_PAGE_SIZE];

	mv_vm_lock(t->f.vm);
	for (unsigned i = 0; i < NPAGES; i++) {
		struct mv_page *p = mv_vm_page(t->f.vm, DATA_GFN + i);
		uint64_t sum;

		if (mv_page_state(p) != MV_PAGE_SHARED)
			continue;
		assert_int_equal(mv_vm_phys_read(t->f.vm,
						 (DATA_GFN + i) << MV_PAGE_SHIFT,
						 buf, sizeof(buf)), 0);
		if (mv_host_share_checksum(t->f.host, mv_page_host_id(p), &sum))
			FAIL(t->err, "shared page without checksum");
		if (sum != (XXH3_64bits(buf, sizeof(buf)) & 0xffffffffull))
			FAIL(t->err, "shared page of gfn %#llx was written",
			     (unsigned long long)(DATA_GFN + i));
		t->shared_checked++;
	}
	mv_vm_unlock(t->f.vm);
}

static void *churn_main(void *arg)
{
	struct mt *t = arg;
	unsigned seed = 12345;
	bool handler_on = false;
	uint64_t handler_gpa = 0;
	uint32_t moved;

	while (atomic_load(&t->writers_done) < WRITERS && !t->err[0]) {
		unsigned pair = rnd(&seed, NPAIRS), op = rnd(&seed, 40);
		int rc;

		if (op < 12) {
			rc = mv_vm_share_pages(t->f.vm, gfn_of(pair, 0),
					       t->f.vm, gfn_of(pair, 1));
			churn_rc(t, "share", rc);
			t->shares += rc == 0;
		} else if (op < 17) {
			balloon_pair(t, pair);
		} else if (op < 22) {
			churn_rc(t, "monitor",
				 mv_vm_write_monitor(t->f.vm, gfn_of(pair, 0),
						     2, NULL));
			t->monitors++;
		} else if (op < 26) {
			toggle_handler(t, pair, &handler_on, &handler_gpa);
		} else if (op < 33) {
			move_page(t, gfn_of(pair, rnd(&seed, 2)));
		} else if (op < 36) {
			churn_rc(t, "defragment",
				 mv_host_defragment(t->f.host, 4, &moved));
			t->defrag_moves += moved;
		} else if (op < 39) {
			churn_rc(t, "zap all", mv_mmu_zap_all(t->f.vm, 4));
			t->zap_alls++;
		} else {
			reset_vm(t);
		}
		check_shared(t);
		if (!others_intact(t, 37))
			FAIL(t->err, "a page nobody writes was written");
		atomic_fetch_add(&t->churn_ops, 1);
		sched_yield();
	}
	if (handler_on)
		mv_vm_handler_deregister(t->f.vm, handler_gpa);
	return NULL;
}

/* After the threads: every word is its owner's last write (or 0 after a
 * balloon or reset that followed it), read through guest-physical memory
 * and through a fresh vCPU. */
static void final_check(struct mt *t)
{
	vf_cpu_long_mode(t->f.cpu, PML4);
	for (unsigned w = 0; w < WRITERS; w++)
		for (unsigned pair = 0; pair < NPAIRS; pair++)
			check_pair(&t->w[w], t->f.cpu, pair);
	mv_vcpu_exit(t->f.cpu);
	check_shared(t);
}

static void print_stats(struct mt *t)
{
	struct mv_mmu_stats ms;

	assert_int_equal(mv_mmu_get_stats(t->f.vm, &ms), 0);
	printf("# shares %llu balloons %llu monitors %llu handlers %llu"
	       " (calls %llu) resets %llu moves %llu defrag %llu zap_alls"
	       " %llu shared checked %llu; shootdowns %llu waits %llu\n",
	       (unsigned long long)t->shares, (unsigned long long)t->balloons,
	       (unsigned long long)t->monitors,
	       (unsigned long long)t->handlers,
	       (unsigned long long)atomic_load(&t->handler_calls),
	       (unsigned long long)t->resets, (unsigned long long)t->moves,
	       (unsigned long long)t->defrag_moves,
	       (unsigned long long)t->zap_alls,
	       (unsigned long long)t->shared_checked,
	       (unsigned long long)ms.shootdowns,
	       (unsigned long long)ms.shootdown_waits);
	for (unsigned i = 0; i < WRITERS; i++)
		printf("# writer %u: inline %llu vcpu %llu phys %llu checks"
		       " %llu blocks %llu\n", i,
		       (unsigned long long)t->w[i].inline_stores,
		       (unsigned long long)t->w[i].vcpu_writes,
		       (unsigned long long)t->w[i].phys_writes,
		       (unsigned long long)t->w[i].checks,
		       (unsigned long long)t->w[i].blocks);
}

static void writers_against_churn(void **state)
{
	struct mt *t = calloc(1, sizeof(*t));
	pthread_t wt[WRITERS], ct;

	(void)state;
	assert_non_null(t);
	vf_init(&t->f, NULL, NULL);
	build_tables(t->f.vm);
	make_chunks(t, true);
	for (unsigned i = 0; i < WRITERS; i++) {
		t->w[i].t = t;
		t->w[i].id = i;
		t->w[i].seed = 1000 + i;
	}
	for (unsigned i = 0; i < WRITERS; i++)
		assert_int_equal(pthread_create(&wt[i], NULL, writer_main,
						&t->w[i]), 0);
	assert_int_equal(pthread_create(&ct, NULL, churn_main, t), 0);
	for (unsigned i = 0; i < WRITERS; i++)
		pthread_join(wt[i], NULL);
	pthread_join(ct, NULL);
	for (unsigned i = 0; i < WRITERS; i++)
		if (t->w[i].err[0])
			fail_msg("%s", t->w[i].err);
	if (t->err[0])
		fail_msg("%s", t->err);
	final_check(t);
	for (unsigned i = 0; i < WRITERS; i++)
		if (t->w[i].err[0])
			fail_msg("final: %s", t->w[i].err);
	if (t->err[0])
		fail_msg("final: %s", t->err);
	print_stats(t);
	assert_true(t->shares > 0);
	assert_true(t->balloons > 0);
	assert_true(t->monitors > 0);
	assert_true(t->handlers > 0);
	assert_true(t->resets > 0);
	assert_true(t->zap_alls > 0);
	assert_true(t->moves + t->defrag_moves > 0);
	for (unsigned i = 0; i < WRITERS; i++) {
		mv_vcpu_destroy(t->w[i].cpu);
		assert_true(t->w[i].inline_stores > 0);
	}
	assert_true(others_intact(t, 1));
	mv_vm_destroy(t->other);
	vf_fini(&t->f);
	free(t);
}

/* ---- a vCPU thread that writes guest memory itself ------------------------ */

/* A vCPU thread that also does device work writes guest-physical memory
 * (mv_vm_phys_write, which takes the VM lock) between the guest's stores,
 * and goes on with inline TLB lookups afterwards, as an emulator does.
 * Meanwhile another thread moves the page those stores go to. The lock
 * must not deadlock against the mover's flush, and no store may go to
 * the page the guest left. */
#define DEV_CHANGES 300

struct devw {
	struct mt *t;
	struct mv_vcpu *cpu;
	_Atomic bool stop;             /* set by the mover when it is done */
	_Atomic uint64_t rounds;
	_Atomic bool done;             /* the writer left its loop */
	uint64_t inline_stores;
	char err[256];
};

static void *dev_writer_main(void *arg)
{
	struct devw *d = arg;
	struct mv_vm *vm = d->t->f.vm;
	uint64_t last[8] = { 0 }, page[8], dev = 0;

	struct mv_fault f;

	if (mv_vcpu_create(vm, NULL, &d->cpu)) {
		FAIL(d->err, "vcpu create");
		return NULL;
	}
	vf_cpu_long_mode(d->cpu, PML4);
	struct mv_tlb *tlb = mv_vcpu_tlb(d->cpu);

	for (unsigned round = 1; !atomic_load(&d->stop) && !d->err[0];
	     round++) {
		atomic_store(&d->rounds, round);
		/* the device: a write of another page */
		dev++;
		if (mv_vm_phys_write(vm, gfn_of(1, 0) << MV_PAGE_SHIFT, &dev,
				     8))
			FAIL(d->err, "device write");
		for (unsigned k = 0; k < 16; k++) {
			uint64_t val = (uint64_t)round << 8 | k / 2;
			uint64_t va = va_of(0, k & 1, k / 2);
			uint64_t *p = mv_tlb_lookup(tlb, va, mv_tlb_class(tlb, 0),
						    MV_TLB_WRITE);

			if (p) {
				*p = val;
				d->inline_stores++;
			} else if (mv_vcpu_write(d->cpu, va, &val, 8, 0, &f)) {
				FAIL(d->err, "vcpu write");
			}
			last[k / 2] = val;
		}
		if (round % 16)
			continue;
		mv_vcpu_quiesce(d->cpu);
		for (unsigned side = 0; side < 2; side++) {
			if (mv_vm_phys_read(vm, gfn_of(0, side) << MV_PAGE_SHIFT,
					    page, sizeof(page)))
				FAIL(d->err, "phys read");
			for (unsigned k = 0; k < 8; k++)
				if (page[k] != last[k])
					FAIL(d->err, "round %u: side %u word %u"
					     " holds %#llx, last stored %#llx",
					     round, side, k,
					     (unsigned long long)page[k],
					     (unsigned long long)last[k]);
		}
	}
	mv_vcpu_exit(d->cpu);
	atomic_store(&d->done, true);
	return NULL;
}

static void device_writes_from_a_vcpu_thread(void **state)
{
	struct mt *t = calloc(1, sizeof(*t));
	struct devw d = { .t = t };
	pthread_t th;

	(void)state;
	assert_non_null(t);
	vf_init(&t->f, NULL, NULL);
	build_tables(t->f.vm);
	make_chunks(t, false);
	assert_int_equal(pthread_create(&th, NULL, dev_writer_main, &d), 0);
	/* Sharing frees both private pages of the pair (the next stores
	 * copy the shared one); a move frees the one it moves. After each,
	 * the writer runs at least one checked stretch of rounds. */
	for (unsigned i = 0; t->moves + t->shares < DEV_CHANGES &&
	     i < 100 * DEV_CHANGES && !atomic_load(&d.done); i++) {
		uint64_t r0 = atomic_load(&d.rounds);

		if (i & 1) {
			move_page(t, gfn_of(0, i & 2 ? 1 : 0));
		} else {
			int rc = mv_vm_share_pages(t->f.vm, gfn_of(0, 0),
						   t->f.vm, gfn_of(0, 1));
			churn_rc(t, "share", rc);
			t->shares += rc == 0;
		}
		while (atomic_load(&d.rounds) < r0 + 32 &&
		       !atomic_load(&d.done))
			sched_yield();
	}
	atomic_store(&d.stop, true);
	pthread_join(th, NULL);
	printf("# shares %llu, moves %llu, rounds %llu, inline stores %llu\n",
	       (unsigned long long)t->shares, (unsigned long long)t->moves,
	       (unsigned long long)atomic_load(&d.rounds),
	       (unsigned long long)d.inline_stores);
	if (d.err[0])
		fail_msg("%s", d.err);
	if (t->err[0])
		fail_msg("%s", t->err);
	assert_true(t->shares > 0);
	mv_vcpu_destroy(d.cpu);
	mv_vm_destroy(t->other);
	vf_fini(&t->f);
	free(t);
}

/* ---- INVLPG is per vCPU ------------------------------------------------------ */

/* Two vCPU threads translate the same pages; an INVLPG (and a full flush)
 * on one of them drops its own translation only: the other's TLB still
 * answers, without a new fill. */
struct inv {
	struct mt *t;
	pthread_barrier_t *bar;
	unsigned id;
	char err[256];
};

static bool tlb_has(struct mv_vcpu *cpu, uint64_t va)
{
	struct mv_tlb *tlb = mv_vcpu_tlb(cpu);

	return mv_tlb_lookup(tlb, va, mv_tlb_class(tlb, 0), MV_TLB_READ) != NULL;
}

static void *inv_main(void *arg)
{
	struct inv *c = arg;
	struct mv_vcpu *cpu;
	struct mv_vcpu_stats before, after;
	struct mv_xlate x;
	uint64_t a = va_of(0, 0, 0), b = va_of(0, 1, 0);
	bool me = c->id == 0;

	if (mv_vcpu_create(c->t->f.vm, NULL, &cpu)) {
		FAIL(c->err, "vcpu create");
		cpu = NULL;
	}
	/* Fill both TLBs, one vCPU after the other, twice: the second
	 * round changes nothing (shadow hits). */
	for (unsigned pass = 0; pass < 4; pass++) {
		if (cpu && pass == c->id)
			vf_cpu_long_mode(cpu, PML4);
		if (cpu && pass % 2 == c->id &&
		    (mv_vcpu_translate(cpu, a, 0, &x) != MV_VCPU_OK ||
		     mv_vcpu_translate(cpu, b, 0, &x) != MV_VCPU_OK))
			FAIL(c->err, "vcpu %u: translate", c->id);
		if (cpu) {
			mv_vcpu_get_stats(cpu, &before);
			mv_vcpu_exit(cpu);  /* outside while the other works */
		}
		pthread_barrier_wait(c->bar);
	}
	if (cpu && me)
		mv_vcpu_invlpg(cpu, a);
	pthread_barrier_wait(c->bar);
	if (cpu) {
		mv_vcpu_quiesce(cpu);
		if (tlb_has(cpu, a) == me)
			FAIL(c->err, "vcpu %u: translation of a %s", c->id,
			     me ? "survived its INVLPG" : "dropped by another's");
		if (!tlb_has(cpu, b))
			FAIL(c->err, "vcpu %u: INVLPG dropped another page",
			     c->id);
		mv_vcpu_exit(cpu);
	}
	pthread_barrier_wait(c->bar);
	if (cpu && me)
		mv_vcpu_flush(cpu);
	pthread_barrier_wait(c->bar);
	if (cpu) {
		mv_vcpu_quiesce(cpu);
		if (tlb_has(cpu, b) == me)
			FAIL(c->err, "vcpu %u: full flush %s", c->id,
			     me ? "kept a translation" : "reached another vCPU");
		mv_vcpu_get_stats(cpu, &after);
		if (!me && (after.fills != before.fills ||
			    after.flushes != before.flushes ||
			    after.invlpg != 0))
			FAIL(c->err, "vcpu %u: flushed or refilled", c->id);
		mv_vcpu_exit(cpu);
		mv_vcpu_destroy(cpu);
	}
	return NULL;
}

static void invlpg_is_per_vcpu(void **state)
{
	struct mt *t = calloc(1, sizeof(*t));
	pthread_barrier_t bar;
	struct inv c[2];
	pthread_t th[2];

	(void)state;
	assert_non_null(t);
	vf_init(&t->f, NULL, NULL);
	build_tables(t->f.vm);
	assert_int_equal(pthread_barrier_init(&bar, NULL, 2), 0);
	for (unsigned i = 0; i < 2; i++) {
		c[i] = (struct inv){ .t = t, .bar = &bar, .id = i };
		assert_int_equal(pthread_create(&th[i], NULL, inv_main, &c[i]),
				 0);
	}
	for (unsigned i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (unsigned i = 0; i < 2; i++)
		if (c[i].err[0])
			fail_msg("%s", c[i].err);
	vf_fini(&t->f);
	free(t);
}

/* ---- a vCPU going out and in while flushes run ------------------------------ */

/* A vCPU thread leaves (mv_vcpu_exit) and comes back (an access) as fast
 * as it can, while another thread write-protects its page over and over
 * (each one a shootdown). Whatever the remover reads of the vCPU to decide
 * whether to wait must not race with the vCPU's entry, and every store
 * after an entry must land in the page the guest maps. */
#define FLIP_ROUNDS 20000

struct flip {
	struct mt *t;
	_Atomic bool done;
	char err[256];
};

static void *flip_main(void *arg)
{
	struct flip *c = arg;
	struct mv_vcpu *cpu;
	struct mv_fault f;
	uint64_t got;

	if (mv_vcpu_create(c->t->f.vm, NULL, &cpu)) {
		FAIL(c->err, "vcpu create");
		atomic_store(&c->done, true);
		return NULL;
	}
	vf_cpu_long_mode(cpu, PML4);
	for (uint64_t i = 1; i <= FLIP_ROUNDS && !c->err[0]; i++) {
		if (mv_vcpu_write(cpu, va_of(0, 0, 0), &i, 8, 0, &f))
			FAIL(c->err, "vcpu write");
		mv_vcpu_exit(cpu);
		if (mv_vcpu_read(cpu, va_of(0, 0, 0), &got, 8, 0, &f) ||
		    got != i)
			FAIL(c->err, "round %llu: read %llu",
			     (unsigned long long)i, (unsigned long long)got);
		mv_vcpu_exit(cpu);
	}
	mv_vcpu_destroy(cpu);
	atomic_store(&c->done, true);
	return NULL;
}

static void exit_and_enter_against_shootdowns(void **state)
{
	struct mt *t = calloc(1, sizeof(*t));
	struct flip c = { .t = t };
	uint64_t got, n = 0;
	pthread_t th;

	(void)state;
	assert_non_null(t);
	vf_init(&t->f, NULL, NULL);
	build_tables(t->f.vm);
	assert_int_equal(pthread_create(&th, NULL, flip_main, &c), 0);
	while (!atomic_load(&c.done)) {
		assert_int_equal(mv_vm_write_monitor(t->f.vm, gfn_of(0, 0), 1,
						     NULL), 0);
		n++;
	}
	pthread_join(th, NULL);
	if (c.err[0])
		fail_msg("%s", c.err);
	assert_int_equal(mv_vm_phys_read(t->f.vm, gfn_of(0, 0) << MV_PAGE_SHIFT,
					 &got, 8), 0);
	assert_int_equal(got, FLIP_ROUNDS);
	printf("# %llu write-protects\n", (unsigned long long)n);
	vf_fini(&t->f);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(writers_against_churn),
		cmocka_unit_test(device_writes_from_a_vcpu_thread),
		cmocka_unit_test(invlpg_is_per_vcpu),
		cmocka_unit_test(exit_and_enter_against_shootdowns),
	};

	alarm(300);  /* a deadlock ends the run instead of hanging it */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
