/* Bad input: every call below must return its exact error and change
 * nothing (pool stats, the VM's stats and the recounted structures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "badinput.h"

#include "host/host_test.h"
#include "host/pool.h"

/* The fixture: VM a owns priv[0..3] (priv[3] is a shadow page), VM b owns
 * other[0]; sh is a shared page with one reference of a. */
struct fx {
	struct mv_host *h;
	mv_vmid a, b;
	mv_page_id priv[4], other[1], sh, freed;
	mv_page_id out[8];
	uint64_t cs;
	unsigned char page[MV_PAGE_SIZE];
};

static struct fx F;

/* Each case: the code it must return, and the call. */
#define BAD_CASES(X) \
	X(-MV_EINVAL, mv_host_create(NULL, NULL)) \
	X(-MV_EINVAL, mv_host_create(&(struct mv_host_config){ .overcommit = 7 }, &f->h)) \
	X(-MV_EINVAL, mv_host_seed(f->h, NULL, MV_CHUNK_SIZE)) \
	X(-MV_EINVAL, mv_host_vm_create(NULL, &r, &vm)) \
	X(-MV_EINVAL, mv_host_vm_create(f->h, NULL, &vm)) \
	X(-MV_EINVAL, mv_host_vm_create(f->h, &r, NULL)) \
	X(-MV_EINVAL, mv_host_vm_create(f->h, &(struct mv_reservation){ UINT64_MAX, 2, 0 }, &vm)) \
	X(-MV_ENOENT, mv_host_vm_reserve(f->h, 0, &r)) \
	X(-MV_ENOENT, mv_host_vm_reserve(f->h, 4000, &r)) \
	X(-MV_EINVAL, mv_host_vm_reserve(f->h, f->a, NULL)) \
	X(-MV_ENOENT, mv_host_vm_destroy(f->h, 0)) \
	X(-MV_ENOENT, mv_host_vm_destroy(f->h, MV_HOST_MAX_VMS + 1)) \
	X(-MV_EINVAL, mv_host_vm_destroy(NULL, f->a)) \
	X(-MV_ENOENT, mv_host_vm_set_mover(f->h, 0, NULL, NULL)) \
	X(-MV_EINVAL, mv_host_alloc(NULL, f->a, MV_ACCOUNT_BASE, 1, NULL, 0, f->out)) \
	X(-MV_EINVAL, mv_host_alloc(f->h, f->a, MV_ACCOUNT_BASE, 0, NULL, 0, f->out)) \
	X(-MV_EINVAL, mv_host_alloc(f->h, f->a, MV_ACCOUNT_BASE, 1, NULL, 0, NULL)) \
	X(-MV_EINVAL, mv_host_alloc(f->h, f->a, MV_ACCOUNT_KINDS, 1, NULL, 0, f->out)) \
	X(-MV_EINVAL, mv_host_alloc(f->h, f->a, MV_ACCOUNT_BASE, 1, NULL, 0x10, f->out)) \
	X(-MV_ERANGE, mv_host_alloc(f->h, f->a, MV_ACCOUNT_BASE, 1, badgfn, 0, f->out)) \
	X(-MV_ENOENT, mv_host_alloc(f->h, 0, MV_ACCOUNT_BASE, 1, NULL, 0, f->out)) \
	X(-MV_ENOENT, mv_host_alloc(f->h, 4000, MV_ACCOUNT_BASE, 1, NULL, 0, f->out)) \
	X(-MV_ERESERVATION, mv_host_alloc(f->h, f->a, MV_ACCOUNT_BASE, UINT32_MAX, NULL, 0, f->out)) \
	X(-MV_EINVAL, mv_host_free(NULL, f->a, 1, f->priv)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 0, f->priv)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 1, NULL)) \
	X(-MV_ENOENT, mv_host_free(f->h, 4000, 1, f->priv)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 2, dup)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 2, mixed)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 1, f->other)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 1, &f->sh)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 1, &f->freed)) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 1, &(mv_page_id){ MV_NIL_PAGE })) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 1, &(mv_page_id){ MV_ZERO_PAGE })) \
	X(-MV_EINVAL, mv_host_free(f->h, f->a, 1, &(mv_page_id){ 0xffffffffu })) \
	X(-MV_ERANGE, mv_host_page_set_gfn(f->h, f->a, f->priv[0], 1ull << 50)) \
	X(-MV_ERANGE, mv_host_page_set_gfn(f->h, f->a, f->priv[0], 1ull << 46)) \
	X(-MV_ERANGE, mv_host_page_set_gfn(f->h, f->a, f->priv[0], (1ull << 46) - 1)) \
	X(-MV_ERANGE, mv_host_page_set_gfn(f->h, f->a, f->priv[0], UINT64_MAX - 1)) \
	X(-MV_ERANGE, mv_host_alloc(f->h, f->a, MV_ACCOUNT_BASE, 2, gfn46, 0, f->out)) \
	X(-MV_EINVAL, mv_host_page_set_gfn(f->h, f->a, f->freed, 5)) \
	X(-MV_EINVAL, mv_host_page_set_gfn(f->h, f->a, MV_ZERO_PAGE, 5)) \
	X(-MV_EINVAL, mv_host_page_set_gfn(NULL, f->a, f->priv[0], 5)) \
	X(-MV_EINVAL, mv_host_page_copy(f->h, f->priv[0], f->priv[0])) \
	X(-MV_EINVAL, mv_host_page_copy(f->h, MV_ZERO_PAGE, f->priv[0])) \
	X(-MV_EINVAL, mv_host_page_copy(f->h, 0xffffffffu, f->priv[0])) \
	X(-MV_EINVAL, mv_host_page_copy(f->h, f->priv[0], 0xffffffffu)) \
	X(-MV_EINVAL, mv_host_seed(f->h, (char *)f->page + 1, MV_CHUNK_SIZE)) \
	X(-MV_EINVAL, mv_host_seed(f->h, f->page, MV_CHUNK_SIZE - 1)) \
	X(-MV_EINVAL, mv_host_seed(f->h, f->page, 0)) \
	X(-MV_ERANGE, mv_host_chunk_fd(f->h, 1u << 23, &fd, &off)) \
	X(-MV_ERANGE, mv_host_chunk_fd(f->h, UINT32_MAX, &fd, &off)) \
	X(-MV_EINVAL, mv_host_share_get(f->h, f->a, f->freed)) \
	X(-MV_EINVAL, mv_host_share_put(f->h, f->a, f->freed)) \
	X(-MV_EINVAL, mv_host_share_put(f->h, f->a, MV_ZERO_PAGE)) \
	X(-MV_EINVAL, mv_host_vm_set_mover(NULL, f->a, NULL, NULL)) \
	X(-MV_ENOENT, mv_host_vm_set_mover(f->h, MV_HOST_MAX_VMS + 1, NULL, NULL)) \
	X(-MV_EINVAL, mv_host_balloon_inflate(f->h, f->a, 1, &f->freed)) \
	X(-MV_EINVAL, mv_host_balloon_inflate(f->h, f->a, 2, dup)) \
	X(-MV_EINVAL, mv_host_balloon_inflate(f->h, f->a, 1, &f->sh)) \
	X(-MV_EINVAL, mv_host_balloon_deflate(f->h, f->a, UINT64_MAX)) \
	X(-MV_EINVAL, mv_host_move_page(f->h, 0xffffffffu, NULL)) \
	X(-MV_EINVAL, mv_host_move_page(f->h, f->sh, NULL)) \
	X(-MV_EINVAL, mv_host_page_set_gfn(f->h, f->a, f->other[0], 5)) \
	X(-MV_EINVAL, mv_host_page_set_gfn(f->h, f->a, f->sh, 5)) \
	X(-MV_ENOENT, mv_host_page_set_gfn(f->h, 4000, f->priv[0], 5)) \
	X(-MV_EINVAL, mv_host_page_copy(f->h, f->sh, f->priv[0])) \
	X(-MV_EINVAL, mv_host_page_copy(f->h, f->priv[0], f->freed)) \
	X(-MV_EINVAL, mv_host_page_copy(NULL, f->priv[0], f->priv[1])) \
	X(-MV_EINVAL, mv_host_chunk_fd(f->h, 1, NULL, &off)) \
	X(-MV_EINVAL, mv_host_chunk_fd(f->h, 1, &fd, NULL)) \
	X(-MV_ERANGE, mv_host_chunk_fd(f->h, 0, &fd, &off)) \
	X(-MV_ENOENT, mv_host_chunk_fd(f->h, 12345, &fd, &off)) \
	X(-MV_EINVAL, mv_host_share_alloc(f->h, f->a, NULL, 0, f->out)) \
	X(-MV_EINVAL, mv_host_share_alloc(f->h, f->a, f->page, 0, NULL)) \
	X(-MV_ENOENT, mv_host_share_alloc(f->h, 4000, f->page, 0, f->out)) \
	X(-MV_EINVAL, mv_host_share_get(f->h, f->a, f->priv[0])) \
	X(-MV_EINVAL, mv_host_share_get(f->h, f->a, MV_ZERO_PAGE)) \
	X(-MV_ENOENT, mv_host_share_get(f->h, 4000, f->sh)) \
	X(-MV_EINVAL, mv_host_share_put(f->h, f->b, f->sh)) \
	X(-MV_EINVAL, mv_host_share_put(f->h, f->a, f->priv[0])) \
	X(-MV_EINVAL, mv_host_share_checksum(f->h, f->priv[0], &f->cs)) \
	X(-MV_EINVAL, mv_host_share_checksum(f->h, f->sh, NULL)) \
	X(-MV_EINVAL, mv_host_balloon_inflate(f->h, f->a, 1, &f->priv[3])) \
	X(-MV_EINVAL, mv_host_balloon_inflate(f->h, f->a, 1, f->other)) \
	X(-MV_EINVAL, mv_host_balloon_inflate(f->h, f->a, 0, f->priv)) \
	X(-MV_EINVAL, mv_host_balloon_inflate(f->h, f->a, 1, NULL)) \
	X(-MV_EINVAL, mv_host_balloon_deflate(f->h, f->a, 1)) \
	X(-MV_EINVAL, mv_host_balloon_deflate(f->h, f->a, 0)) \
	X(-MV_ENOENT, mv_host_balloon_deflate(f->h, 4000, 1)) \
	X(-MV_EINVAL, mv_host_move_page(f->h, f->freed, NULL)) \
	X(-MV_ESTATE, mv_host_move_page(f->h, f->priv[0], NULL)) \
	X(-MV_EINVAL, mv_host_defragment(f->h, 0, NULL)) \
	X(-MV_EINVAL, mv_host_get_stats(f->h, NULL)) \
	X(-MV_EINVAL, mv_host_get_stats(NULL, &(struct mv_host_stats){ 0 })) \
	X(-MV_EINVAL, mv_host_vm_get_stats(f->h, f->a, NULL)) \
	X(-MV_ENOENT, mv_host_vm_get_stats(f->h, 4000, &(struct mv_host_vm_stats){ 0 }))

/* Run case @i; BADINPUT_END when there is no such case. */
static int run_case(int i, const char **name, int *want)
{
	struct fx *f = &F;
	mv_page_id dup[2] = { f->priv[0], f->priv[0] };
	mv_page_id mixed[2] = { f->priv[0], f->other[0] };
	uint64_t badgfn[1] = { 1ull << 50 };
	uint64_t gfn46[2] = { 5, 1ull << 46 };
	struct mv_reservation r = { .base = 1 };
	mv_vmid vm;
	int fd;
	uint64_t off;

	BADINPUT_RUN(i, name, want);
}

struct snapshot {
	struct mv_host_stats host;
	struct mv_host_vm_stats a, b;
	unsigned char content[4];
};

static void snap(struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(mv_host_get_stats(F.h, &s->host), 0);
	assert_int_equal(mv_host_vm_get_stats(F.h, F.a, &s->a), 0);
	assert_int_equal(mv_host_vm_get_stats(F.h, F.b, &s->b), 0);
	for (int i = 0; i < 3; i++)
		s->content[i] = *(unsigned char *)mv_host_page_ptr(F.h, F.priv[i]);
	s->content[3] = *(unsigned char *)mv_host_page_ptr(F.h, F.sh);
}

static void setup_fixture(void)
{
	struct mv_reservation r = { .base = 8, .shadow = 2 };

	memset(&F, 0, sizeof(F));
	F.h = host_new(0, MV_OVERCOMMIT_ALLOW, 1);
	assert_int_equal(mv_host_vm_create(F.h, &r, &F.a), 0);
	assert_int_equal(mv_host_vm_create(F.h, &r, &F.b), 0);
	assert_int_equal(mv_host_alloc(F.h, F.a, MV_ACCOUNT_BASE, 3, NULL, 0, F.priv), 0);
	assert_int_equal(mv_host_alloc(F.h, F.a, MV_ACCOUNT_SHADOW, 1, NULL, 0,
				       &F.priv[3]), 0);
	assert_int_equal(mv_host_alloc(F.h, F.b, MV_ACCOUNT_BASE, 1, NULL, 0, F.other), 0);
	assert_int_equal(mv_host_alloc(F.h, F.a, MV_ACCOUNT_BASE, 1, NULL, 0, &F.freed), 0);
	assert_int_equal(mv_host_free(F.h, F.a, 1, &F.freed), 0);
	for (int i = 0; i < 3; i++)
		memset(mv_host_page_ptr(F.h, F.priv[i]), 0x10 + i, MV_PAGE_SIZE);
	memset(F.page, 0x99, sizeof(F.page));
	assert_int_equal(mv_host_share_alloc(F.h, F.a, F.page, 7, &F.sh), 0);
}

static void test_bad_input_table(void **state)
{
	struct mv_host *keep;

	(void)state;
	setup_fixture();
	keep = F.h;
	/* F.h put back: a failed mv_host_create must not touch *out */
	BADINPUT_RUN_ALL(F.h = keep, assert_int_equal(pool_check(F.h), 0));
	mv_host_destroy(F.h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_input_table),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
