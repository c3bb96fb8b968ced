/* A VMM's vCPU thread that also processes its VM's requests (an EMT): the
 * scanner's remaps of the VM then run on the very thread that stores into
 * guest memory through its vCPU's soft TLB (host pointers of the shadow
 * MMU) and mv_vcpu_write, between two of its accesses. No store may be
 * lost or land in a page that is no longer the guest's: afterwards every
 * page holds its last value, the EMT ran remaps itself, equal pages share
 * one host page, and pages written after the merge are private again. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>

#include <memvisor/vcpu.h>

#include "share/share_fixture.h"

#define PAGES 256
#define HOT 64            /* the EMT keeps writing [0, HOT); the rest stays */
#define VALUES 3
#define ROUNDS 12
#define WAIT_US 2000000u  /* the EMT gets every remap of its VM */

struct ctx {
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_vcpu *cpu;
	struct mv_share *s;
	uint8_t last[PAGES];
	uint64_t remaps;      /* requests the EMT ran */
	int errors, stop;
};

static void *emt(void *arg)
{
	struct ctx *c = arg;
	uint32_t seed = 7, n;

	while (!__atomic_load_n(&c->stop, __ATOMIC_ACQUIRE)) {
		for (int k = 0; k < 8; k++) {
			seed = seed * 1103515245u + 12345u;
			uint64_t g = (seed >> 8) % HOT;
			uint8_t v = (uint8_t)(1 + (seed >> 20) % VALUES);

			if (sx_vcpu_fill(c->cpu, g, v))
				c->errors++;
			c->last[g] = v;
		}
		/* The VMM's loop: between two guest accesses, the VM's
		 * requests (the scanner's remaps) run here. */
		mv_vcpu_exit(c->cpu);
		n = 0;
		if (mv_vm_process_requests(c->vm, &n))
			c->errors++;
		c->remaps += n;
	}
	mv_vcpu_exit(c->cpu);
	return NULL;
}

static void remaps_on_the_vcpu_thread(void **state)
{
	struct mv_share_vm_config vc = { .gfn = 0, .count = PAGES,
					 .request_wait_us = WAIT_US };
	struct ctx *c = calloc(1, sizeof(*c));
	mv_page_id ids[VALUES + 1] = { 0 };
	struct mv_share_stats st, st2;
	pthread_t t;

	(void)state;
	assert_non_null(c);
	assert_int_equal(mv_host_create(NULL, &c->host), 0);
	c->vm = sx_vm(c->host, PAGES);
	assert_non_null(c->vm);
	assert_int_equal(mv_vcpu_create(c->vm, NULL, &c->cpu), 0);
	for (uint64_t g = 0; g < PAGES; g++) {
		c->last[g] = (uint8_t)(1 + g % VALUES);
		assert_int_equal(sx_fill(c->vm, g, c->last[g]), 0);
	}
	assert_int_equal(mv_share_create(c->host, NULL, &c->s), 0);
	assert_int_equal(mv_share_vm_add(c->s, c->vm, &vc), 0);
	assert_int_equal(pthread_create(&t, NULL, emt, c), 0);
	for (int r = 0; r < ROUNDS; r++) {
		int rc = mv_share_scan(c->s, 1, NULL);

		assert_true(rc == 0 || rc == -MV_ELIMIT);
	}
	__atomic_store_n(&c->stop, 1, __ATOMIC_RELEASE);
	pthread_join(t, NULL);
	assert_int_equal(c->errors, 0);
	assert_int_equal(sx_lost_write(c->vm, c->last, PAGES), PAGES);
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	print_message("while the EMT wrote: %llu merged, %llu copy-on-write "
		      "breaks, %llu requests run on the EMT\n",
		      (unsigned long long)st.merged,
		      (unsigned long long)st.cow_breaks,
		      (unsigned long long)c->remaps);
	/* The cold pages were merged, by requests the EMT ran. */
	assert_true(st.merged >= PAGES - HOT);
	assert_true(c->remaps > 0);
	/* Without the EMT, the scanner finishes the merge itself (after
	 * waiting for it once per request: keep the wait short now). */
	assert_int_equal(mv_share_vm_remove(c->s, c->vm), 0);
	vc.request_wait_us = 0;
	assert_int_equal(mv_share_vm_add(c->s, c->vm, &vc), 0);
	assert_int_equal(mv_share_scan(c->s, 0, NULL), 0);
	assert_int_equal(sx_lost_write(c->vm, c->last, PAGES), PAGES);
	for (uint64_t g = 0; g < PAGES; g++) {
		mv_page_id id = sx_id(c->vm, g);

		assert_int_equal(sx_state(c->vm, g), MV_PAGE_SHARED);
		if (!ids[c->last[g]])
			ids[c->last[g]] = id;
		assert_int_equal(id, ids[c->last[g]]);
	}
	/* Stores through the vCPU after the merge break the shares (the
	 * counters count from the VM's second mv_share_vm_add). */
	assert_int_equal(mv_share_get_stats(c->s, &st), 0);
	for (uint64_t g = 0; g < PAGES; g += 2) {
		c->last[g] = (uint8_t)(0x80 + g % 64);
		assert_int_equal(sx_vcpu_fill(c->cpu, g, c->last[g]), 0);
	}
	mv_vcpu_exit(c->cpu);
	assert_int_equal(sx_lost_write(c->vm, c->last, PAGES), PAGES);
	assert_int_equal(mv_share_get_stats(c->s, &st2), 0);
	assert_int_equal(st2.cow_breaks, st.cow_breaks + PAGES / 2);
	for (uint64_t g = 0; g < PAGES; g += 2)
		assert_int_equal(sx_state(c->vm, g), MV_PAGE_ALLOCATED);
	mv_share_destroy(c->s);
	mv_vcpu_destroy(c->cpu);
	mv_vm_destroy(c->vm);
	mv_host_destroy(c->host);
	free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(remaps_on_the_vcpu_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
