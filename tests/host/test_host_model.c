/* Randomized model test: long random sequences of pool operations (alloc,
 * free, balloon, share, reserve, VM create/destroy, bad ids) are checked
 * against a small independent model of the accounts and of who owns which
 * page, including the exact return code of every call. After every step
 * the pool's own counters are recounted (pool_check), and every page keeps
 * the bytes its owner wrote into it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

#define NVM 4
#define MAXP 4096
#define MAXS 256

struct mpage { mv_page_id id; int kind; unsigned char tag; };

struct mvm {
	mv_vmid h;                 /* 0: no VM in this slot */
	struct mv_reservation res;
	uint64_t alloc[MV_ACCOUNT_KINDS], balloon, refs;
	struct mpage pages[MAXP];
	uint32_t n;
	uint32_t srefs[MAXS];      /* references to model shared page i */
};

struct mshared { mv_page_id id; uint32_t refs; uint32_t csum; unsigned char tag; };

struct model {
	struct mv_host *h;
	uint64_t budget;
	enum mv_overcommit oc;
	struct mvm vm[NVM];
	struct mshared sh[MAXS];
	uint32_t nsh;
	uint64_t rng;
	unsigned char tag;
};

/* Outcomes seen, so that a run proves it reached every path. */
static unsigned seen_ok, seen_res, seen_budget, seen_bad, seen_busy;
static uint64_t seen_moved;

static void tally(int rc)
{
	seen_ok += rc == 0;
	seen_res += rc == -MV_ERESERVATION;
	seen_budget += rc == -MV_EBUDGET;
	seen_bad += rc == -MV_EINVAL;
	seen_busy += rc == -MV_EBUSY;
}

static uint64_t rnd(struct model *m, uint64_t n)
{
	return host_rnd(&m->rng, n);
}

static uint64_t res_kind(const struct mv_reservation *r, int k)
{
	return k == 0 ? r->base : k == 1 ? r->shadow : r->fixed;
}

static uint64_t in_use(const struct model *m)
{
	uint64_t n = m->nsh;

	for (int v = 0; v < NVM; v++)
		n += m->vm[v].n;
	return n;
}

static uint64_t reserved(const struct model *m)
{
	uint64_t n = 0;

	for (int v = 0; v < NVM; v++)
		if (m->vm[v].h)
			n += m->vm[v].res.base + m->vm[v].res.shadow + m->vm[v].res.fixed;
	return n;
}

static void fill(struct model *m, mv_page_id id, unsigned char tag)
{
	memset(mv_host_page_ptr(m->h, id), tag, MV_PAGE_SIZE);
}

static void expect_tag(struct model *m, mv_page_id id, unsigned char tag)
{
	const unsigned char *p = mv_host_page_ptr(m->h, id);

	assert_non_null(p);
	assert_int_equal(p[0], tag);
	assert_int_equal(p[MV_PAGE_SIZE - 1], tag);
}

static void op_alloc(struct model *m, struct mvm *v)
{
	int kind = (int)rnd(m, MV_ACCOUNT_KINDS);
	uint32_t n = 1 + (uint32_t)rnd(m, rnd(m, 4) ? 64 : 700);
	mv_page_id ids[700];
	uint64_t used = v->alloc[kind] + (kind == 0 ? v->balloon : 0);
	int want = used + n > res_kind(&v->res, kind) ? -MV_ERESERVATION :
		   m->budget && in_use(m) + n > m->budget ? -MV_EBUDGET : 0;
	unsigned flags = rnd(m, 2) ? MV_ALLOC_ZEROED : 0;

	if (v->n + n > MAXP)
		return;
	assert_int_equal(mv_host_alloc(m->h, v->h, kind, n, NULL, flags, ids), want);
	tally(want);
	for (uint32_t i = 0; !want && i < n; i++) {
		if (flags)
			expect_tag(m, ids[i], 0);
		v->pages[v->n++] = (struct mpage){ ids[i], kind, ++m->tag };
		fill(m, ids[i], m->tag);
	}
	if (!want)
		v->alloc[kind] += n;
}

/* Free (or balloon) a random subset; sometimes slip in a bad id. */
static void op_free(struct model *m, struct mvm *v, bool balloon)
{
	mv_page_id ids[64];
	uint32_t pos[64], n = 0, want_n = 1 + (uint32_t)rnd(m, 62);
	int want = 0, bad = (int)rnd(m, 8);

	for (uint32_t i = 0; i < v->n && n < want_n; i++) {
		if (rnd(m, 3) || (balloon && v->pages[i].kind != 0))
			continue;
		pos[n] = i;
		ids[n++] = v->pages[i].id;
	}
	if (bad == 0 && n) {
		ids[n] = ids[0];        /* duplicate */
		pos[n++] = pos[0];
		want = -MV_EINVAL;
	} else if (bad == 1 && n && n < 64) {
		ids[n++] = MV_ZERO_PAGE;
		want = -MV_EINVAL;
	}
	if (!n)
		return;
	int rc = balloon ? mv_host_balloon_inflate(m->h, v->h, n, ids)
			 : mv_host_free(m->h, v->h, n, ids);

	assert_int_equal(rc, want);
	tally(want);
	if (want)
		return;
	/* Remove from the highest position down to keep the rest valid. */
	for (uint32_t i = n; i--;) {
		v->alloc[v->pages[pos[i]].kind]--;
		v->pages[pos[i]] = v->pages[--v->n];
	}
	v->balloon += balloon ? n : 0;
}

static void op_deflate(struct model *m, struct mvm *v)
{
	uint64_t n = 1 + rnd(m, 32);
	int want = n > v->balloon ? -MV_EINVAL : 0;

	assert_int_equal(mv_host_balloon_deflate(m->h, v->h, n), want);
	if (!want)
		v->balloon -= n;
}

static void op_share(struct model *m, struct mvm *v)
{
	uint32_t s = (uint32_t)rnd(m, m->nsh + 1);
	unsigned char page[MV_PAGE_SIZE];

	if (s == m->nsh && m->nsh < MAXS) {
		int want = m->budget && in_use(m) + 1 > m->budget ? -MV_EBUDGET : 0;
		mv_page_id id;

		memset(page, ++m->tag, sizeof(page));
		assert_int_equal(mv_host_share_alloc(m->h, v->h, page, m->tag * 77u,
						     &id), want);
		if (want)
			return;
		m->sh[m->nsh++] = (struct mshared){ id, 1, m->tag * 77u, m->tag };
		v->srefs[s] = 1;
		v->refs++;
	} else if (s < m->nsh) {
		assert_int_equal(mv_host_share_get(m->h, v->h, m->sh[s].id), 0);
		m->sh[s].refs++;
		v->srefs[s]++;
		v->refs++;
	}
}

static void drop_shared(struct model *m, uint32_t s)
{
	m->sh[s] = m->sh[--m->nsh];
	for (int w = 0; w < NVM; w++) {
		m->vm[w].srefs[s] = m->vm[w].srefs[m->nsh];
		m->vm[w].srefs[m->nsh] = 0;
	}
}

static void op_unshare(struct model *m, struct mvm *v)
{
	for (uint32_t s = 0; s < m->nsh; s++) {
		if (!v->srefs[s] || rnd(m, 2))
			continue;
		assert_int_equal(mv_host_share_put(m->h, v->h, m->sh[s].id), 0);
		v->srefs[s]--;
		v->refs--;
		if (--m->sh[s].refs == 0)
			drop_shared(m, s);
		return;
	}
}

static struct mv_reservation random_res(struct model *m)
{
	return (struct mv_reservation){ .base = 200 + rnd(m, 3000),
					.shadow = rnd(m, 300),
					.fixed = rnd(m, 100) };
}

static int res_want(const struct model *m, const struct mvm *v,
		    const struct mv_reservation *r)
{
	uint64_t old = v->h ? v->res.base + v->res.shadow + v->res.fixed : 0;

	if (m->oc == MV_OVERCOMMIT_NONE && m->budget &&
	    reserved(m) - old + r->base + r->shadow + r->fixed > m->budget)
		return -MV_EBUDGET;
	for (int k = 0; v->h && k < MV_ACCOUNT_KINDS; k++)
		if (res_kind(r, k) < v->alloc[k] + (k == 0 ? v->balloon : 0))
			return -MV_ERESERVATION;
	return 0;
}

static void op_reserve(struct model *m, struct mvm *v)
{
	struct mv_reservation r = random_res(m);
	int want = res_want(m, v, &r);

	assert_int_equal(mv_host_vm_reserve(m->h, v->h, &r), want);
	if (!want)
		v->res = r;
}

static void op_destroy(struct model *m, struct mvm *v)
{
	int want = v->refs ? -MV_EBUSY : 0;

	assert_int_equal(mv_host_vm_destroy(m->h, v->h), want);
	tally(want);
	if (!want)
		memset(v, 0, sizeof(*v));
}

/* The model VM's mover: re-file the page under its new id, content copied. */
static int model_mover(void *opaque, mv_vmid vm, uint64_t gfn, mv_page_id old_id,
		       mv_page_id new_id)
{
	struct model *m = opaque;

	(void)gfn;
	for (int i = 0; i < NVM; i++) {
		struct mvm *v = &m->vm[i];

		for (uint32_t p = 0; v->h == vm && p < v->n; p++) {
			if (v->pages[p].id != old_id)
				continue;
			if (rnd(m, 8) == 0)
				return -1;      /* refuse now and then */
			assert_int_equal(mv_host_page_copy(m->h, new_id, old_id), 0);
			v->pages[p].id = new_id;
			return 0;
		}
	}
	fail_msg("mover called for a page the model does not know");
	return -1;
}

static void op_move(struct model *m, struct mvm *v)
{
	mv_page_id new_id = 0;
	uint32_t moved;

	if (rnd(m, 2)) {
		assert_int_equal(mv_host_defragment(m->h, 1 + (uint32_t)rnd(m, 64),
						    &moved), 0);
		return;
	}
	if (!v->n)
		return;
	uint32_t p = (uint32_t)rnd(m, v->n);
	mv_page_id old = v->pages[p].id;
	int rc = mv_host_move_page(m->h, old, &new_id);

	assert_true(rc == 0 || rc == -MV_ENOENT || rc == -MV_EBUDGET ||
		    rc == -MV_EBUSY);
	assert_int_equal(v->pages[p].id, rc ? old : new_id);
}

static void op_create(struct model *m, struct mvm *v)
{
	struct mv_reservation r = random_res(m);
	int want = res_want(m, v, &r);
	mv_vmid h;

	assert_int_equal(mv_host_vm_create(m->h, &r, &h), want);
	if (want)
		return;
	memset(v, 0, sizeof(*v));
	v->h = h;
	v->res = r;
	assert_int_equal(mv_host_vm_set_mover(m->h, h, model_mover, m), 0);
}

static void check_all(struct model *m)
{
	struct mv_host_stats st;
	uint64_t priv = 0, ball = 0, refs = 0;

	assert_int_equal(pool_check(m->h), 0);
	assert_int_equal(mv_host_get_stats(m->h, &st), 0);
	for (int i = 0; i < NVM; i++) {
		struct mvm *v = &m->vm[i];
		struct mv_host_vm_stats vs;

		if (!v->h)
			continue;
		assert_int_equal(mv_host_vm_get_stats(m->h, v->h, &vs), 0);
		assert_memory_equal(vs.allocated, v->alloc, sizeof(v->alloc));
		assert_int_equal(vs.ballooned, v->balloon);
		assert_int_equal(vs.shared_refs, v->refs);
		for (uint32_t p = 0; p < v->n; p++)
			expect_tag(m, v->pages[p].id, v->pages[p].tag);
		priv += v->n;
		ball += v->balloon;
		refs += v->refs;
	}
	for (uint32_t s = 0; s < m->nsh; s++) {
		uint64_t cs;

		expect_tag(m, m->sh[s].id, m->sh[s].tag);
		assert_int_equal(mv_host_share_checksum(m->h, m->sh[s].id, &cs), 0);
		assert_int_equal(cs, m->sh[s].csum);
	}
	assert_int_equal(st.private_pages, priv);
	assert_int_equal(st.ballooned_pages, ball);
	assert_int_equal(st.shared_refs, refs);
	assert_int_equal(st.shared_pages, m->nsh);
	assert_int_equal(st.reserved_pages, reserved(m));
	assert_true(!m->budget || priv + m->nsh <= m->budget);
	assert_int_equal(st.free_pages + priv + m->nsh, st.chunks * MV_CHUNK_PAGES);
}

static void step(struct model *m)
{
	struct mvm *v = &m->vm[rnd(m, NVM)];
	uint64_t op = rnd(m, 100);

	if (!v->h) {
		op_create(m, v);
		return;
	}
	if (op < 30)
		op_alloc(m, v);
	else if (op < 55)
		op_free(m, v, false);
	else if (op < 62)
		op_free(m, v, true);
	else if (op < 67)
		op_deflate(m, v);
	else if (op < 77)
		op_share(m, v);
	else if (op < 87)
		op_unshare(m, v);
	else if (op < 92)
		op_reserve(m, v);
	else if (op < 94)
		op_destroy(m, v);
	else
		op_move(m, v);
}

static void run_model(uint64_t seed, uint64_t budget, enum mv_overcommit oc)
{
	struct model *m = calloc(1, sizeof(*m));

	m->rng = seed;
	m->budget = budget;
	m->oc = oc;
	m->h = host_new(budget, oc, (uint32_t)(seed % 3));
	assert_non_null(m->h);
	for (int i = 0; i < 3000; i++) {
		step(m);
		if (i % 16 == 0)
			check_all(m);
	}
	check_all(m);
	struct mv_host_stats st;

	assert_int_equal(mv_host_get_stats(m->h, &st), 0);
	seen_moved += st.pages_moved;
	mv_host_destroy(m->h);
	free(m);
}

static void test_model_overcommit(void **state)
{
	(void)state;
	seen_ok = seen_res = seen_budget = seen_bad = seen_busy = 0;
	seen_moved = 0;
	for (uint64_t seed = 1; seed <= 6; seed++)
		run_model(seed * 0x9e3779b97f4a7c15ull, 2500, MV_OVERCOMMIT_ALLOW);
	print_message("ok %u reservation %u budget %u invalid %u busy %u, "
		      "%llu pages moved\n", seen_ok, seen_res, seen_budget,
		      seen_bad, seen_busy, (unsigned long long)seen_moved);
	assert_true(seen_ok > 1000 && seen_res > 10 && seen_budget > 10 &&
		    seen_bad > 10 && seen_busy > 0 && seen_moved > 50);
}

static void test_model_no_overcommit(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 6; seed++)
		run_model(seed * 0xbf58476d1ce4e5b9ull, 9000, MV_OVERCOMMIT_NONE);
}

static void test_model_unlimited(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= 3; seed++)
		run_model(seed * 0x94d049bb133111ebull, 0, MV_OVERCOMMIT_ALLOW);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_model_overcommit),
		cmocka_unit_test(test_model_no_overcommit),
		cmocka_unit_test(test_model_unlimited),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
