/* Shared pages: reference counts, freed with the last reference, kept only
 * in shared chunks, checksum bits; and page copies between kinds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "host/host_test.h"
#include "host/pool.h"

static void test_refcount_and_last_put(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid a = vm_new(h, 100), b = vm_new(h, 100);
	unsigned char page[MV_PAGE_SIZE];
	struct mv_host_stats st;
	struct mv_host_vm_stats vs;
	uint64_t cs;
	mv_page_id id;

	(void)state;
	memset(page, 0x3c, sizeof(page));
	assert_int_equal(mv_host_share_alloc(h, a, page, 0x1122334455667788ull, &id), 0);
	assert_memory_equal(mv_host_page_ptr(h, id), page, MV_PAGE_SIZE);
	assert_int_equal(mv_host_share_checksum(h, id, &cs), 0);
	assert_int_equal(cs, 0x55667788u);   /* the low 32 bits are kept */
	assert_int_equal(mv_host_share_get(h, b, id), 0);
	assert_int_equal(mv_host_share_get(h, b, id), 0);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.shared_pages, 1);
	assert_int_equal(st.shared_refs, 3);
	assert_int_equal(mv_host_vm_get_stats(h, b, &vs), 0);
	assert_int_equal(vs.shared_refs, 2);
	assert_int_equal(mv_host_share_put(h, a, id), 0);
	assert_int_equal(mv_host_share_put(h, a, id), -MV_EINVAL); /* a has none */
	assert_int_equal(mv_host_share_put(h, b, id), 0);
	assert_non_null(mv_host_page_ptr(h, id));
	assert_int_equal(mv_host_share_put(h, b, id), 0);
	/* The last reference freed it. */
	assert_null(mv_host_page_ptr(h, id));
	assert_int_equal(mv_host_share_get(h, b, id), -MV_EINVAL);
	assert_int_equal(mv_host_get_stats(h, &st), 0);
	assert_int_equal(st.shared_pages, 0);
	assert_int_equal(st.shared_refs, 0);
	assert_int_equal(pool_check(h), 0);
	mv_host_destroy(h);
}

static void test_shared_chunks_only(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid vm = vm_new(h, 2000);
	unsigned char page[MV_PAGE_SIZE] = { 1 };
	mv_page_id priv[700], sh[600];

	(void)state;
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 100, NULL, 0, priv), 0);
	for (int i = 0; i < 600; i++)
		assert_int_equal(mv_host_share_alloc(h, vm, page, (uint64_t)i, &sh[i]), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 600, NULL, 0, priv + 100), 0);
	for (int i = 0; i < 600; i++) {
		for (int j = 0; j < 700; j++)
			assert_int_not_equal(mv_page_chunk(sh[i]), mv_page_chunk(priv[j]));
		assert_int_equal(desc_state(chunk_of(h, sh[i])->desc[mv_page_index(sh[i])]),
				 DESC_SHARED);
	}
	/* Shared and private ids are not interchangeable. */
	assert_int_equal(mv_host_free(h, vm, 1, sh), -MV_EINVAL);
	assert_int_equal(mv_host_balloon_inflate(h, vm, 1, sh), -MV_EINVAL);
	assert_int_equal(mv_host_share_get(h, vm, priv[0]), -MV_EINVAL);
	assert_int_equal(mv_host_share_put(h, vm, priv[0]), -MV_EINVAL);
	assert_int_equal(mv_host_share_checksum(h, priv[0], &(uint64_t){ 0 }),
			 -MV_EINVAL);
	/* Once its shared pages are gone, a chunk may serve private pages. */
	for (int i = 0; i < 600; i++)
		assert_int_equal(mv_host_share_put(h, vm, sh[i]), 0);
	struct mv_host_stats before, after;

	assert_int_equal(pool_check(h), 0);
	assert_int_equal(mv_host_get_stats(h, &before), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 600, NULL, 0, priv), 0);
	assert_int_equal(mv_host_get_stats(h, &after), 0);
	assert_int_equal(after.chunks_created, before.chunks_created);
	mv_host_destroy(h);
}

static void test_page_copy(void **state)
{
	struct mv_host *h = host_new(0, MV_OVERCOMMIT_ALLOW, 2);
	mv_vmid vm = vm_new(h, 100);
	unsigned char page[MV_PAGE_SIZE];
	mv_page_id p[2], sid;

	(void)state;
	memset(page, 0x42, sizeof(page));
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, 2, NULL, 0, p), 0);
	assert_int_equal(mv_host_share_alloc(h, vm, page, 0, &sid), 0);
	assert_int_equal(mv_host_page_copy(h, p[0], sid), 0);
	assert_memory_equal(mv_host_page_ptr(h, p[0]), page, MV_PAGE_SIZE);
	assert_int_equal(mv_host_page_copy(h, p[1], p[0]), 0);
	assert_memory_equal(mv_host_page_ptr(h, p[1]), page, MV_PAGE_SIZE);
	assert_int_equal(mv_host_page_copy(h, p[1], MV_ZERO_PAGE), 0);
	assert_memory_equal(mv_host_page_ptr(h, p[1]),
			    mv_host_page_ptr(h, MV_ZERO_PAGE), MV_PAGE_SIZE);
	assert_int_equal(mv_host_page_copy(h, sid, p[0]), -MV_EINVAL);
	assert_int_equal(mv_host_page_copy(h, MV_ZERO_PAGE, p[0]), -MV_EINVAL);
	assert_int_equal(mv_host_page_copy(h, p[0], MV_NIL_PAGE), -MV_EINVAL);
	assert_int_equal(mv_host_page_copy(h, p[0], p[0]), -MV_EINVAL);
	assert_int_equal(mv_host_free(h, vm, 1, &p[1]), 0);
	assert_int_equal(mv_host_page_copy(h, p[0], p[1]), -MV_EINVAL);
	assert_int_equal(mv_host_page_copy(h, p[1], p[0]), -MV_EINVAL);
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_refcount_and_last_put),
		cmocka_unit_test(test_shared_chunks_only),
		cmocka_unit_test(test_page_copy),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
