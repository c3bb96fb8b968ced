/* Several threads allocate, free, balloon and share at once while another
 * defragments (moving their pages through their movers). Afterwards: the
 * recounted structures match the counters, every page is owned exactly
 * once, and every page holds what its owner last wrote. */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

#define NWORKERS 4
#define SLOTS 1024
#define ITERS 20000
#define NSHARED 16

struct worker {
	pthread_mutex_t mu;        /* the "VM lock": slots and page content */
	struct mv_host *h;
	mv_vmid vm;
	int index;
	uint64_t rng;
	mv_page_id slot[SLOTS];    /* gfn -> page id */
	uint32_t tag[SLOTS];
	uint32_t refs[NSHARED];    /* references held to the common pages */
	uint64_t allocated, budget_fails;
};

static mv_page_id common[NSHARED];
static int done_workers;

static uint64_t rnd(struct worker *w, uint64_t n)
{
	return host_rnd(&w->rng, n);
}

static uint64_t pattern(const struct worker *w, uint64_t gfn)
{
	return (uint64_t)w->index << 56 | gfn << 24 | w->tag[gfn];
}

static void write_page(struct worker *w, uint64_t gfn)
{
	uint64_t *p = mv_host_page_ptr(w->h, w->slot[gfn]);

	p[0] = p[MV_PAGE_SIZE / 8 - 1] = pattern(w, gfn);
}

static void check_page(const struct worker *w, uint64_t gfn)
{
	const uint64_t *p = mv_host_page_ptr(w->h, w->slot[gfn]);

	assert_non_null(p);
	assert_int_equal(p[0], pattern(w, gfn));
	assert_int_equal(p[MV_PAGE_SIZE / 8 - 1], pattern(w, gfn));
}

/* Called by the defragmenting thread, no pool lock held. */
static int mover(void *opaque, mv_vmid vm, uint64_t gfn, mv_page_id old_id,
		 mv_page_id new_id)
{
	struct worker *w = opaque;
	int rc = -1;

	(void)vm;
	pthread_mutex_lock(&w->mu);
	if (gfn < SLOTS && w->slot[gfn] == old_id &&
	    !mv_host_page_copy(w->h, new_id, old_id)) {
		w->slot[gfn] = new_id;
		rc = 0;
	}
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static void do_alloc(struct worker *w)
{
	uint64_t gfns[64];
	mv_page_id ids[64];
	uint32_t n = 0, want = 1 + (uint32_t)rnd(w, 64);
	unsigned flags = rnd(w, 2) ? MV_ALLOC_ZEROED : 0;

	for (uint64_t g = rnd(w, SLOTS), k = 0; k < SLOTS && n < want; k++)
		if (!w->slot[(g + k) % SLOTS])
			gfns[n++] = (g + k) % SLOTS;
	if (!n)
		return;
	int rc = mv_host_alloc(w->h, w->vm, MV_ACCOUNT_BASE, n, gfns, flags, ids);

	if (rc == -MV_EBUDGET || rc == -MV_ERESERVATION) {
		w->budget_fails++;
		return;
	}
	assert_int_equal(rc, 0);
	for (uint32_t i = 0; i < n; i++) {
		if (flags)
			assert_int_equal(*(uint64_t *)mv_host_page_ptr(w->h, ids[i]), 0);
		w->slot[gfns[i]] = ids[i];
		w->tag[gfns[i]]++;
		write_page(w, gfns[i]);
	}
	w->allocated += n;
}

/* Free (or balloon) a few pages, even one the defragmenter is moving. */
static void do_free(struct worker *w, bool balloon)
{
	mv_page_id ids[32];
	uint64_t gfns[32];
	uint32_t n = 0;

	for (uint64_t g = rnd(w, SLOTS), k = 0; k < SLOTS && n < 32; k++) {
		uint64_t gfn = (g + k) % SLOTS;

		if (w->slot[gfn] && rnd(w, 2)) {
			check_page(w, gfn);
			gfns[n] = gfn;
			ids[n++] = w->slot[gfn];
		}
	}
	if (!n)
		return;
	int rc = balloon ? mv_host_balloon_inflate(w->h, w->vm, n, ids)
			 : mv_host_free(w->h, w->vm, n, ids);

	assert_int_equal(rc, 0);
	for (uint32_t i = 0; i < n; i++)
		w->slot[gfns[i]] = MV_NIL_PAGE;
	w->allocated -= n;
	if (balloon)
		assert_int_equal(mv_host_balloon_deflate(w->h, w->vm, n), 0);
}

static void do_share(struct worker *w)
{
	uint32_t s = (uint32_t)rnd(w, NSHARED);
	const unsigned char *p;

	if (w->refs[s] && rnd(w, 2)) {
		assert_int_equal(mv_host_share_put(w->h, w->vm, common[s]), 0);
		w->refs[s]--;
		return;
	}
	assert_int_equal(mv_host_share_get(w->h, w->vm, common[s]), 0);
	w->refs[s]++;
	p = mv_host_page_ptr(w->h, common[s]);
	assert_int_equal(p[0], s + 1);
	assert_int_equal(p[MV_PAGE_SIZE - 1], s + 1);
}

/* A private shared page of one's own: made, referenced, dropped. */
static void do_own_share(struct worker *w)
{
	unsigned char page[MV_PAGE_SIZE];
	mv_page_id id;

	memset(page, 0xc0 + w->index, sizeof(page));
	int rc = mv_host_share_alloc(w->h, w->vm, page, w->rng, &id);

	if (rc == -MV_EBUDGET)
		return;
	assert_int_equal(rc, 0);
	assert_int_equal(mv_host_share_get(w->h, w->vm, id), 0);
	assert_memory_equal(mv_host_page_ptr(w->h, id), page, MV_PAGE_SIZE);
	assert_int_equal(mv_host_share_put(w->h, w->vm, id), 0);
	assert_int_equal(mv_host_share_put(w->h, w->vm, id), 0);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < ITERS; i++) {
		uint64_t op = rnd(w, 10);

		pthread_mutex_lock(&w->mu);
		if (op < 4)
			do_alloc(w);
		else if (op < 7)
			do_free(w, false);
		else if (op < 8)
			do_free(w, true);
		else if (op < 9)
			do_share(w);
		else
			do_own_share(w);
		pthread_mutex_unlock(&w->mu);
	}
	__atomic_add_fetch(&done_workers, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void *defrag_main(void *arg)
{
	struct mv_host *h = arg;
	uint32_t moved;

	while (__atomic_load_n(&done_workers, __ATOMIC_ACQUIRE) < NWORKERS) {
		assert_int_equal(mv_host_defragment(h, 32, &moved), 0);
		assert_int_equal(pool_check(h), 0);
		sched_yield();
	}
	return NULL;
}

static int cmp_id(const void *a, const void *b)
{
	mv_page_id x = *(const mv_page_id *)a, y = *(const mv_page_id *)b;

	return x < y ? -1 : x > y;
}

/* Every page owned exactly once, with its content; stats add up. */
static void check_final(struct mv_host *h, struct worker *w)
{
	mv_page_id *all = malloc(NWORKERS * SLOTS * sizeof(*all));
	struct mv_host_stats st;
	uint64_t n = 0;

	assert_int_equal(pool_check(h), 0);
	for (int i = 0; i < NWORKERS; i++) {
		struct mv_host_vm_stats vs;

		assert_int_equal(mv_host_vm_get_stats(h, w[i].vm, &vs), 0);
		assert_int_equal(vs.allocated[MV_ACCOUNT_BASE], w[i].allocated);
		for (uint64_t g = 0; g < SLOTS; g++) {
			if (!w[i].slot[g])
				continue;
			check_page(&w[i], g);
			all[n++] = w[i].slot[g];
		}
	}
	qsort(all, n, sizeof(*all), cmp_id);
	for (uint64_t i = 1; i < n; i++)
		assert_int_not_equal(all[i - 1], all[i]);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.private_pages, n);
	assert_int_equal(st.free_pages + n + st.shared_pages,
			 st.chunks * MV_CHUNK_PAGES);
	free(all);
}

static void test_stress(void **state)
{
	/* A free cache of 256 pages: frees are kept and punched both, and
	 * the threads do not all queue behind a hole punch per free. */
	struct mv_host_config cfg = { .budget_pages = 3000,
				      .overcommit = MV_OVERCOMMIT_ALLOW,
				      .empty_chunk_cache = 1,
				      .free_cache_pages = 256 };
	struct mv_host *h = NULL;

	assert_int_equal(mv_host_create(&cfg, &h), 0);
	struct worker *w = calloc(NWORKERS, sizeof(*w));
	unsigned char page[MV_PAGE_SIZE];
	pthread_t t[NWORKERS], d;
	mv_vmid holder = vm_new(h, 1);
	struct mv_host_stats st;

	(void)state;
	for (int s = 0; s < NSHARED; s++) {
		memset(page, s + 1, sizeof(page));
		assert_int_equal(mv_host_share_alloc(h, holder, page, (uint64_t)s,
						     &common[s]), 0);
	}
	for (int i = 0; i < NWORKERS; i++) {
		pthread_mutex_init(&w[i].mu, NULL);
		w[i].h = h;
		w[i].vm = vm_new(h, SLOTS);
		w[i].index = i;
		w[i].rng = 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1);
		assert_int_equal(mv_host_vm_set_mover(h, w[i].vm, mover, &w[i]), 0);
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	pthread_create(&d, NULL, defrag_main, h);
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(t[i], NULL);
	pthread_join(d, NULL);
	check_final(h, w);
	for (int i = 0; i < NWORKERS; i++) {
		for (int s = 0; s < NSHARED; s++)
			while (w[i].refs[s]--)
				assert_int_equal(mv_host_share_put(h, w[i].vm, common[s]), 0);
		assert_int_equal(mv_host_vm_destroy(h, w[i].vm), 0);
		pthread_mutex_destroy(&w[i].mu);
	}
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.private_pages, 0);
	assert_int_equal(st.shared_pages, NSHARED);
	assert_int_equal(st.shared_refs, NSHARED);
	print_message("moved %llu pages, created %llu chunks, released %llu\n",
		      (unsigned long long)st.pages_moved,
		      (unsigned long long)st.chunks_created,
		      (unsigned long long)st.chunks_released);
	assert_int_equal(pool_check(h), 0);
	free(w);
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stress),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
