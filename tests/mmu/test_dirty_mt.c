/* No missed write under concurrency: two vCPU threads and a phys writer
 * write random pages while a harvester runs get / clear / copy rounds on
 * one slot and harvest / reset / copy rounds on another slot (a vCPU's
 * dirty ring), without pausing anyone. A page whose bytes changed between
 * two copies must be reported by the round that copied it or the next
 * one (a write after the clear but before the copy is the next round's);
 * false positives are counted. Then the same for a framebuffer harvest
 * while a vCPU thread draws into it. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "vcpu_fixture.h"
#include <memvisor/dirty.h>

#define VA 0x00007f0000000000ull
#define G0 0x100       /* slot A: bitmap, pages written by vCPU B + phys */
#define G1 0x140       /* slot B: ring of vCPU A */
#define NP 64
#define ROUNDS 300
#define P_W_U (MV_PTE_P | MV_PTE_W | MV_PTE_U)

static struct vf F;
static uint64_t CR3;
static atomic_int stop, running;
static struct mv_vcpu *ring_cpu;
static pthread_mutex_t ring_lock = PTHREAD_MUTEX_INITIALIZER;

struct writer {
	unsigned seed, first_gfn, word_lo, word_hi;
	bool phys, ring;
	unsigned long writes;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;
	struct mv_vcpu *v = NULL;

	if (!w->phys) {
		assert_int_equal(mv_vcpu_create(F.vm, NULL, &v), 0);
		vf_cpu_long_mode(v, CR3);
		if (w->ring) {
			assert_int_equal(mv_vcpu_dirty_ring_enable(v, 64), 0);
			pthread_mutex_lock(&ring_lock);
			ring_cpu = v;
			pthread_mutex_unlock(&ring_lock);
		}
	}
	atomic_fetch_add(&running, 1);
	while (!atomic_load(&stop)) {
		unsigned p = rand_r(&w->seed) % NP;
		uint64_t word = w->word_lo + rand_r(&w->seed) % (w->word_hi - w->word_lo);
		uint64_t val = ((uint64_t)rand_r(&w->seed) << 1) | 1, gfn = w->first_gfn + p;
		int rc;

		if (w->phys) {
			rc = mv_vm_phys_write(F.vm, gfn * 4096 + word * 8, &val, 8);
		} else if (!w->ring) {
			/* as an emulator does: a pointer from the TLB, used
			 * for a burst of stores until the next call in */
			uint64_t va = VA + (gfn - G0) * 4096;
			struct mv_xlate x;

			rc = mv_vcpu_translate(v, va, MV_ACC_WRITE, &x);
			if (rc == 0) {
				uint64_t *page = x.hva;

				for (unsigned k = 0; k < 32; k++) {
					word = w->word_lo + rand_r(&w->seed) %
						(w->word_hi - w->word_lo);
					__atomic_store_n(&page[word], val + k,
							 __ATOMIC_RELAXED);
				}
			}
		} else {
			uint64_t va = VA + (gfn - G0) * 4096 + word * 8;

			while ((rc = mv_vcpu_write(v, va, &val, 8, 0, NULL)) ==
			       MV_VCPU_RING_FULL && !atomic_load(&stop)) {
				mv_vcpu_exit(v);  /* let the harvester reset */
				sched_yield();
			}
			if (rc == MV_VCPU_RING_FULL)
				rc = 0;
		}
		assert_int_equal(rc, 0);
		w->writes++;
		if (w->writes % 64 == 0 && v)
			mv_vcpu_exit(v);
	}
	if (v) {
		mv_vcpu_exit(v);
		if (w->ring) {
			pthread_mutex_lock(&ring_lock);
			ring_cpu = NULL;
			mv_vcpu_destroy(v);
			pthread_mutex_unlock(&ring_lock);
		} else {
			mv_vcpu_destroy(v);
		}
	}
	return NULL;
}

/* Copy the pages while the writers store into them, as a migration does:
 * the race with the guest's stores is the point of the test (whatever the
 * copy saw, the log must report), so ThreadSanitizer is told to leave
 * this reader alone; words are read with atomic loads. */
__attribute__((no_sanitize("thread")))
static void copy_pages(uint64_t gfn, uint8_t (*dst)[4096])
{
	for (unsigned p = 0; p < NP; p++) {
		void *src;
		uint64_t *d = (uint64_t *)dst[p];

		assert_int_equal(mv_vm_gpa_to_hva(F.vm, (gfn + p) * 4096,
						  MV_VM_HVA_READ, &src), 0);
		for (unsigned i = 0; i < 512; i++)
			d[i] = __atomic_load_n((uint64_t *)src + i,
					       __ATOMIC_RELAXED);
	}
}

static uint64_t ring_round(void)
{
	struct mv_dirty_entry e[64];
	uint64_t bits = 0;
	uint32_t n;

	pthread_mutex_lock(&ring_lock);
	if (ring_cpu) {
		do {
			assert_int_equal(mv_vcpu_dirty_ring_harvest(ring_cpu, e,
								    64, &n), 0);
			for (uint32_t i = 0; i < n; i++)
				bits |= 1ull << e[i].offset;
		} while (n);
		assert_int_equal(mv_vcpu_dirty_ring_reset(ring_cpu, NULL), 0);
	}
	pthread_mutex_unlock(&ring_lock);
	return bits;
}

static void check(const char *what, unsigned round, uint8_t (*prev)[4096],
		  uint8_t (*now)[4096], uint64_t bits_now, uint64_t bits_next,
		  unsigned long *fp)
{
	for (unsigned p = 0; p < NP; p++) {
		bool changed = memcmp(prev[p], now[p], 4096) != 0;
		bool told = ((bits_now | bits_next) >> p) & 1;

		if (changed && !told)
			fail_msg("%s round %u: page %u changed, never reported",
				 what, round, p);
		*fp += !changed && ((bits_now >> p) & 1);
	}
}

static void concurrent_no_missed_write(void **state)
{
	static uint8_t a[3][NP][4096], b[3][NP][4096];
	struct writer w[3] = {
		{ .seed = 1, .first_gfn = G0, .word_lo = 0, .word_hi = 256 },
		{ .seed = 2, .first_gfn = G0, .word_lo = 256, .word_hi = 512,
		  .phys = true },
		{ .seed = 3, .first_gfn = G1, .word_lo = 0, .word_hi = 512,
		  .ring = true },
	};
	pthread_t t[3];
	uint32_t s0, s1;
	uint64_t bits_a[3] = { 0 }, bits_b[3] = { 0 };
	unsigned long fp = 0;

	(void)state;
	CR3 = vf_setup(&F);
	for (unsigned i = 0; i < 2 * NP; i++)
		vf_map4k(&F, CR3, VA + i * 4096ull, (G0 + i) * 4096ull, P_W_U);
	assert_int_equal(mv_dirty_log_enable(F.vm, G0, NP, 0, &s0), 0);
	assert_int_equal(mv_dirty_log_enable(F.vm, G1, NP, 0, &s1), 0);
	copy_pages(G0, a[0]);
	copy_pages(G1, b[0]);
	atomic_store(&running, 0);
	for (unsigned i = 0; i < 3; i++)
		assert_int_equal(pthread_create(&t[i], NULL, write_loop, &w[i]), 0);
	while (atomic_load(&running) < 3)
		sched_yield();
	for (unsigned r = 1; r <= ROUNDS; r++) {
		unsigned k = r % 3;

		assert_int_equal(mv_dirty_log_get(F.vm, G0, NP, &bits_a[k]), 0);
		assert_int_equal(mv_dirty_log_clear(F.vm, G0, NP, &bits_a[k],
						    NULL), 0);
		bits_b[k] = ring_round();
		copy_pages(G0, a[k]);
		copy_pages(G1, b[k]);
		if (r >= 2) {  /* round r-1 is final once round r reported */
			unsigned j = (r - 1) % 3, i = (r - 2) % 3;

			check("bitmap", r - 1, a[i], a[j], bits_a[j], bits_a[k], &fp);
			check("ring", r - 1, b[i], b[j], bits_b[j], bits_b[k], &fp);
		}
	}
	atomic_store(&stop, 1);
	for (unsigned i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	print_message("writes %lu/%lu/%lu, false positives %lu\n", w[0].writes,
		      w[1].writes, w[2].writes, fp);
	assert_true(w[0].writes > 100 && w[1].writes > 100 && w[2].writes > 100);
	vf_fini(&F);
}

/* A vCPU thread draws into a framebuffer through its linear mapping while
 * the harvester harvests and copies it. */
static void framebuffer_no_missed_write(void **state)
{
	static uint8_t c[3][NP][4096];
	static uint64_t gfns[NP];
	struct writer w = { .seed = 7, .first_gfn = G0, .word_lo = 0,
			    .word_hi = 512 };
	struct mv_vcpu *cpu;
	struct mv_fb_config fc;
	uint64_t bits[3] = { 0 };
	unsigned long fp = 0;
	pthread_t t;
	uint32_t id;

	(void)state;
	atomic_store(&stop, 0);
	CR3 = vf_setup(&F);
	for (unsigned i = 0; i < NP; i++) {
		gfns[i] = G0 + i;
		vf_map4k(&F, CR3, VA + i * 4096ull, gfns[i] * 4096ull, P_W_U);
	}
	assert_int_equal(mv_vcpu_create(F.vm, NULL, &cpu), 0);
	vf_cpu_long_mode(cpu, CR3);
	fc = (struct mv_fb_config){ .gfns = gfns, .npages = NP, .va = VA,
				    .vcpu = cpu };
	assert_int_equal(mv_fb_register(F.vm, &fc, &id), 0);
	mv_fb_harvest(F.vm, id, &bits[0], NULL);
	copy_pages(G0, c[0]);
	atomic_store(&running, 0);
	assert_int_equal(pthread_create(&t, NULL, write_loop, &w), 0);
	while (!atomic_load(&running))
		sched_yield();
	for (unsigned r = 1; r <= ROUNDS; r++) {
		unsigned k = r % 3;

		assert_int_equal(mv_fb_harvest(F.vm, id, &bits[k], NULL), 0);
		copy_pages(G0, c[k]);
		if (r >= 2)
			check("framebuffer", r - 1, c[(r - 2) % 3], c[(r - 1) % 3],
			      bits[(r - 1) % 3], bits[k], &fp);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	print_message("writes %lu, false positives %lu\n", w.writes, fp);
	assert_true(w.writes > 100);
	mv_vcpu_destroy(cpu);
	vf_fini(&F);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(concurrent_no_missed_write),
		cmocka_unit_test(framebuffer_no_missed_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
