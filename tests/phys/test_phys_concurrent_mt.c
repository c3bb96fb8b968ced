/* Writers, a reader, the balloon, a sharer and the host's defragmenter
 * on one VM at once. Writers own disjoint pages and keep a private copy
 * of what they wrote; the balloon inflates and deflates other pages, the
 * sharer merges zero pages, the defragmenter moves pages under everyone.
 * At the end every writer's page holds exactly its last bytes: no write is
 * lost to a balloon, a copy-on-write or a move. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <cmocka.h>

#include "phys/fixture.h"

#define PAGES 1024u
#define WRITERS 3
#define ROUNDS 20000
#define MIN_BALLOON_ROUNDS 50
#define LANES 4  /* page g belongs to lane g % LANES; lane 3: balloon */

struct shared {
	struct mv_host *host;
	struct mv_vm *vm;
	atomic_int stop;
	atomic_int errors;
	atomic_int balloon_rounds, moves;
};

struct writer {
	struct shared *sh;
	uint32_t lane;
	uint8_t model[PAGES / LANES][64];  /* first 64 bytes of each page */
};

#define count_error(sh) count_error_at(sh, __LINE__)

static void count_error_at(struct shared *sh, int line)
{
	if (atomic_fetch_add(&sh->errors, 1) < 5)
		print_message("error at line %d\n", line);
}

/* Write through phys_write, or through a direct pointer under the lock
 * (the MMU's way), alternately. */
static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct shared *sh = w->sh;
	uint32_t rng = w->lane * 7919 + 1;

	/* Keep writing until the balloon has run enough rounds alongside. */
	for (uint32_t k = 0;
	     k < ROUNDS || atomic_load(&sh->balloon_rounds) < MIN_BALLOON_ROUNDS;
	     k++) {
		rng = rng * 1103515245u + 12345u;
		uint32_t slot = (rng >> 8) % (PAGES / LANES);
		uint64_t gpa = ((uint64_t)slot * LANES + w->lane) << 12;
		uint8_t v[8];
		uint32_t off = (rng >> 20) % 8 * 8;
		void *ptr;

		for (int i = 0; i < 8; i++)
			v[i] = (uint8_t)(k + (uint32_t)i + 1);
		if (k & 1) {
			if (mv_vm_phys_write(sh->vm, gpa + off, v, 8))
				count_error(sh);
		} else {
			mv_vm_lock(sh->vm);
			if (mv_vm_gpa_to_hva(sh->vm, gpa + off, 1, &ptr))
				count_error(sh);
			else
				memcpy(ptr, v, 8);
			mv_vm_unlock(sh->vm);
		}
		memcpy(&w->model[slot][off], v, 8);
	}
	return NULL;
}

static void *reader_main(void *arg)
{
	struct shared *sh = arg;
	uint8_t buf[3 * 4096];

	while (!atomic_load(&sh->stop))
		for (uint64_t g = 0; g + 3 <= PAGES; g += 61)
			if (mv_vm_phys_read(sh->vm, g << 12, buf, sizeof(buf)))
				count_error(sh);
	return NULL;
}

/* Lane-3 pages: write, inflate, check zeros, deflate, over and over. */
static void *balloon_main(void *arg)
{
	struct shared *sh = arg;
	uint64_t gfns[32];
	uint8_t b = 0x5A, z[4096];

	for (uint32_t round = 0; !atomic_load(&sh->stop); round++) {
		for (uint32_t i = 0; i < 32; i++) {
			gfns[i] = ((round * 32 + i) % (PAGES / LANES)) * LANES + 3;
			if (mv_vm_phys_write(sh->vm, gfns[i] << 12, &b, 1))
				count_error(sh);
		}
		if (mv_vm_balloon_inflate(sh->vm, gfns, 32) ||
		    mv_vm_phys_read(sh->vm, gfns[5] << 12, z, sizeof(z)) ||
		    z[0] != 0 || mv_vm_balloon_deflate(sh->vm, gfns, 32))
			count_error(sh);
		atomic_fetch_add(&sh->balloon_rounds, 1);
	}
	return NULL;
}

/* Merge pairs of untouched lane-3 pages into the zero page and ask the
 * pool to vacate chunks (which moves writers' pages). */
static void *churn_main(void *arg)
{
	struct shared *sh = arg;
	uint32_t moved, rng = 99;

	while (!atomic_load(&sh->stop)) {
		rng = rng * 1103515245u + 12345u;
		uint64_t gfn = (rng >> 8) % PAGES;
		mv_vm_lock(sh->vm);
		mv_page_id id = mv_page_host_id(mv_vm_page(sh->vm, gfn));
		mv_vm_unlock(sh->vm);
		/* the page may change meanwhile: the pool then refuses */
		if (!mv_host_move_page(sh->host, id, NULL))
			atomic_fetch_add(&sh->moves, 1);
		int rc = mv_vm_share_pages(sh->vm, 3, sh->vm, 7);

		if (rc && rc != -MV_ESTATE)
			count_error(sh);
		if (mv_host_defragment(sh->host, 64, &moved))
			count_error(sh);
		atomic_fetch_add(&sh->moves, (int)moved);
	}
	return NULL;
}

static void no_lost_write(void **state)
{
	static struct shared sh;
	static struct writer w[WRITERS];
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = (uint64_t)PAGES * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1 };
	pthread_t tw[WRITERS], tr, tb, tc;
	uint8_t got[64];

	(void)state;
	assert_int_equal(mv_host_create(NULL, &sh.host), 0);
	assert_int_equal(mv_vm_create(sh.host, &cfg, &sh.vm), 0);
	for (uint64_t g = 0; g < PAGES; g++)  /* two full chunks to churn */
		assert_int_equal(mv_vm_phys_write(sh.vm, g << 12, "x", 1), 0);
	for (uint32_t i = 0; i < WRITERS; i++)
		for (uint32_t s = 0; s < PAGES / LANES; s++)
			w[i].model[s][0] = 'x';
	for (uint32_t i = 0; i < WRITERS; i++) {
		w[i].sh = &sh;
		w[i].lane = i;
		pthread_create(&tw[i], NULL, writer_main, &w[i]);
	}
	pthread_create(&tr, NULL, reader_main, &sh);
	pthread_create(&tb, NULL, balloon_main, &sh);
	pthread_create(&tc, NULL, churn_main, &sh);
	for (int i = 0; i < WRITERS; i++)
		pthread_join(tw[i], NULL);
	atomic_store(&sh.stop, 1);
	pthread_join(tr, NULL);
	pthread_join(tb, NULL);
	pthread_join(tc, NULL);
	assert_int_equal(atomic_load(&sh.errors), 0);
	print_message("balloon rounds %d, pages moved %d\n",
		      atomic_load(&sh.balloon_rounds), atomic_load(&sh.moves));
	assert_true(atomic_load(&sh.balloon_rounds) >= MIN_BALLOON_ROUNDS);
	for (uint32_t i = 0; i < WRITERS; i++)
		for (uint32_t s = 0; s < PAGES / LANES; s++) {
			uint64_t gpa = ((uint64_t)s * LANES + i) << 12;

			assert_int_equal(mv_vm_phys_read(sh.vm, gpa, got, 64), 0);
			assert_memory_equal(got, w[i].model[s], 64);
		}
	mv_vm_destroy(sh.vm);
	mv_host_destroy(sh.host);
}

struct defrag {
	struct mv_host *host;
	atomic_int stop, moved;
};

static void *defrag_main(void *arg)
{
	struct defrag *d = arg;
	uint32_t moved;

	while (!atomic_load(&d->stop)) {
		if (mv_host_defragment(d->host, 8, &moved))
			abort();
		atomic_fetch_add(&d->moved, (int)moved);
	}
	return NULL;
}

/* VMs are torn down while the pool keeps moving their pages: destruction
 * waits for the move in flight (its mover needs the VM) and always closes
 * the account, and a reset racing the mover frees pages being moved. */
static void destroy_while_moving(void **state)
{
	static struct defrag d;
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 1024ull * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1 };
	struct mv_host_stats st;
	pthread_t t;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &d.host), 0);
	pthread_create(&t, NULL, defrag_main, &d);
	for (int round = 0; round < 40; round++) {
		struct mv_vm *vm;
		uint64_t holes[768], n = 0;

		assert_int_equal(mv_vm_create(d.host, &cfg, &vm), 0);
		for (uint64_t g = 0; g < 1024; g++)
			assert_int_equal(mv_vm_phys_write(vm, g << 12, "v", 1), 0);
		for (uint64_t g = 0; g < 1024; g++)
			if (g % 4 != (uint64_t)round % 4)
				holes[n++] = g;
		/* chunks a quarter full: the pool vacates one into another */
		assert_int_equal(mv_vm_balloon_inflate(vm, holes, 768), 0);
		for (int i = 0; i < 2000; i++) {
			uint64_t g = (uint64_t)(i * 4 + round % 4) % 1024;

			assert_int_equal(mv_vm_phys_write(vm, g << 12, "w", 1), 0);
		}
		if (round % 2)
			assert_int_equal(mv_vm_reset(vm), 0);
		mv_vm_destroy(vm);
		assert_int_equal(mv_host_get_stats(d.host, &st), 0);
		assert_int_equal(st.vms, 0);
		assert_int_equal(st.private_pages, 0);
		assert_int_equal(st.ballooned_pages, 0);
	}
	atomic_store(&d.stop, 1);
	pthread_join(t, NULL);
	print_message("pages moved under destroy: %d\n", atomic_load(&d.moved));
	mv_host_destroy(d.host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(no_lost_write),
		cmocka_unit_test(destroy_while_moving),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
