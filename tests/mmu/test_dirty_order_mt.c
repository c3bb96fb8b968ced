/* The order of a clear, scripted: write-protect the page, shoot down every
 * vCPU's TLB, and only then clear its bit (dirty_log.c; the same for a
 * ring reset). A vCPU that wrote the page holds a writable pointer from
 * its TLB until its next quiescent point, and the shootdown waits for that
 * point. So the vCPU thread here waits, INSIDE and holding the pointer,
 * until the shootdown's flush request reaches it; at that moment it
 * stores through the pointer, as an emulator may, and the page's bit must
 * still be set: the store lands before the bit goes. With the order
 * inverted (bits first, protection after) the store lands on a page the
 * log already calls clean, and the write is lost to a consumer that
 * trusts the bitmap. The bit is read from the MMU's slot (white box); the
 * shootdown's handshake orders that read against the clear's write. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#include "vcpu_fixture.h"
#include <memvisor/dirty.h>

#include "mmu/shadow.h"

#define VA 0x00007f0000000000ull
#define GFN 0x100ull
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)
#define STORED 0x5eed5eed5eed5eedull
#define WAIT_NS (20ull * 1000000000ull)

static struct vf F;
static uint64_t CR3;

struct script {
	bool ring;
	uint32_t slot;
	struct mv_vcpu *v;
	atomic_int step;          /* 1: the vCPU wrote; 2: the clear returned */
	bool saw_flush;
	uint64_t bit_at_flush;
};

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void *vcpu_thread(void *arg)
{
	struct script *s = arg;
	struct mv_xlate x;
	uint64_t one = 1, t0;

	assert_int_equal(mv_vcpu_create(F.vm, NULL, &s->v), 0);
	vf_cpu_long_mode(s->v, CR3);
	if (s->ring)
		assert_int_equal(mv_vcpu_dirty_ring_enable(s->v, 16), 0);
	/* The first write marks the page; the second maps it writable. */
	assert_int_equal(mv_vcpu_write(s->v, VA, &one, 8, 0, NULL), 0);
	assert_int_equal(mv_vcpu_translate(s->v, VA, MV_ACC_WRITE, &x), 0);
	atomic_store(&s->step, 1);
	/* INSIDE with x.hva: the clear's shootdown must wait for us. */
	for (t0 = now_ns(); now_ns() - t0 < WAIT_NS;) {
		if (atomic_load(&s->v->req) & REQ_TLB_FLUSH) {
			s->saw_flush = true;
			break;
		}
		if (atomic_load(&s->step) == 2)
			break;  /* the clear returned without waiting */
		sched_yield();
	}
	if (s->saw_flush) {
		const struct dirty_slot *d = &s->v->mmu->slots[s->slot];

		s->bit_at_flush = __atomic_load_n(&d->bits[0],
						  __ATOMIC_ACQUIRE) & 1;
		__atomic_store_n((uint64_t *)x.hva, STORED, __ATOMIC_RELAXED);
	}
	mv_vcpu_quiesce(s->v);   /* the acknowledgement */
	while (atomic_load(&s->step) != 2)
		sched_yield();
	mv_vcpu_exit(s->v);
	return NULL;
}

static void clear_page(struct script *s)
{
	uint64_t mask = 1, cleared = 0;

	if (!s->ring) {
		assert_int_equal(mv_dirty_log_clear(F.vm, GFN, 1, &mask,
						    &cleared), 0);
	} else {
		struct mv_dirty_entry e[16];
		uint32_t n = 0, k = 0;

		assert_int_equal(mv_vcpu_dirty_ring_harvest(s->v, e, 16, &n),
				 0);
		assert_int_equal(n, 1);
		assert_int_equal(e[0].offset, 0);
		assert_int_equal(mv_vcpu_dirty_ring_reset(s->v, &k), 0);
		cleared = k;
	}
	assert_int_equal(cleared, 1);
}

static void run(bool ring)
{
	struct script s = { .ring = ring };
	uint64_t bits = 0, after = 1;
	pthread_t t;

	CR3 = vf_setup(&F);
	vf_map4k(&F, CR3, VA, GFN * MV_PAGE_SIZE, P_W_U);
	assert_int_equal(mv_dirty_log_enable(F.vm, GFN, 1, 0, &s.slot), 0);
	assert_int_equal(pthread_create(&t, NULL, vcpu_thread, &s), 0);
	while (atomic_load(&s.step) != 1)
		sched_yield();
	assert_int_equal(mv_dirty_log_get(F.vm, GFN, 1, &bits), 0);
	assert_int_equal(bits, 1);
	clear_page(&s);
	atomic_store(&s.step, 2);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (!s.saw_flush)
		fail_msg("the clear did not wait for the vCPU that held a "
			 "writable mapping of the page");
	if (!s.bit_at_flush)
		fail_msg("the bit was cleared before the shootdown: a store "
			 "through the vCPU's writable mapping landed on a page "
			 "the log calls clean");
	/* The store is in memory for the copy that follows the clear ... */
	assert_int_equal(vf_get(&F, GFN * MV_PAGE_SIZE), STORED);
	assert_int_equal(mv_dirty_log_get(F.vm, GFN, 1, &bits), 0);
	assert_int_equal(bits, 0);
	/* ... and the page is protected again: the next write marks it. */
	assert_int_equal(mv_vcpu_write(s.v, VA, &after, 8, 0, NULL), 0);
	assert_int_equal(mv_dirty_log_get(F.vm, GFN, 1, &bits), 0);
	assert_int_equal(bits, 1);
	mv_vcpu_exit(s.v);
	mv_vcpu_destroy(s.v);
	vf_fini(&F);
}

static void clear_protects_before_the_bit_goes(void **state)
{
	(void)state;
	run(false);
}

static void ring_reset_protects_before_the_bit_goes(void **state)
{
	(void)state;
	run(true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(clear_protects_before_the_bit_goes),
		cmocka_unit_test(ring_reset_protects_before_the_bit_goes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
