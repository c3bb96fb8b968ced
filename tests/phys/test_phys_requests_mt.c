/* The VM request queue from several threads: lock-free posting, every
 * request run exactly once and in posting order per poster, waiting with
 * results (processed by the VM's thread or by a helping waiter), and real
 * work (sharing, moving) posted from outside. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "phys/fixture.h"

#define POSTERS 4
#define PER_POSTER 2000

struct log {
	uint32_t next[POSTERS];   /* next sequence expected, per poster */
	uint32_t runs, out_of_order;
};

struct item {
	struct log *log;
	uint32_t poster, seq;
};

struct poster {
	struct mv_vm *vm;
	struct log *log;
	uint32_t id;
	struct item items[PER_POSTER];
};

/* Runs under the VM lock: the log needs no lock of its own. */
static int record(struct mv_vm *vm, void *arg)
{
	struct item *it = arg;

	(void)vm;
	if (it->log->next[it->poster] != it->seq)
		it->log->out_of_order++;
	it->log->next[it->poster] = it->seq + 1;
	it->log->runs++;
	return (int)it->seq;
}

static void *post_many(void *arg)
{
	struct poster *p = arg;

	for (uint32_t s = 0; s < PER_POSTER; s++) {
		p->items[s] = (struct item){ p->log, p->id, s };
		if (mv_vm_request_post(p->vm, record, &p->items[s], NULL))
			abort();
	}
	return NULL;
}

static void many_posters(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	static struct poster p[POSTERS];
	static struct log log;
	pthread_t t[POSTERS];
	struct mv_vm_stats st;

	(void)state;
	memset(&log, 0, sizeof(log));
	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = fx_ram_vm(host, 256, 0, 0);
	assert_non_null(vm);
	for (uint32_t i = 0; i < POSTERS; i++) {
		p[i].vm = vm;
		p[i].log = &log;
		p[i].id = i;
		pthread_create(&t[i], NULL, post_many, &p[i]);
	}
	/* this thread is the VM's: it processes while they post */
	for (;;) {
		uint32_t done;

		assert_int_equal(mv_vm_process_requests(vm, &done), 0);
		mv_vm_lock(vm);
		uint32_t runs = log.runs;
		mv_vm_unlock(vm);
		if (runs == POSTERS * PER_POSTER)
			break;
	}
	for (int i = 0; i < POSTERS; i++)
		pthread_join(t[i], NULL);
	assert_int_equal(log.out_of_order, 0);
	for (int i = 0; i < POSTERS; i++)
		assert_int_equal(log.next[i], PER_POSTER);
	assert_int_equal(mv_vm_get_stats(vm, &st), 0);
	assert_int_equal(st.requests_done, POSTERS * PER_POSTER);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

struct waiter {
	struct mv_vm *vm;
	struct log *log;
	uint32_t id;
	int help;
	int bad;
};

static void *post_and_wait(void *arg)
{
	struct waiter *w = arg;
	struct item it[200];

	for (uint32_t s = 0; s < 200; s++) {
		struct mv_vm_request *req;
		int result = -1;

		it[s] = (struct item){ w->log, w->id, s };
		if (mv_vm_request_post(w->vm, record, &it[s], &req) ||
		    mv_vm_request_wait(w->vm, req, w->help, &result) ||
		    result != (int)s)
			w->bad++;
	}
	return NULL;
}

static atomic_int stop;

static void *vm_thread(void *arg)
{
	while (!atomic_load(&stop))
		mv_vm_process_requests(arg, NULL);
	return NULL;
}

/* Half the waiters rely on the VM thread, half help themselves. */
static void waiting_with_results(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	static struct log log;
	struct waiter w[POSTERS];
	pthread_t t[POSTERS], vt;

	(void)state;
	memset(&log, 0, sizeof(log));
	atomic_store(&stop, 0);
	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = fx_ram_vm(host, 256, 0, 0);
	assert_non_null(vm);
	pthread_create(&vt, NULL, vm_thread, vm);
	for (uint32_t i = 0; i < POSTERS; i++) {
		w[i] = (struct waiter){ vm, &log, i, (int)(i & 1), 0 };
		pthread_create(&t[i], NULL, post_and_wait, &w[i]);
	}
	for (int i = 0; i < POSTERS; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	atomic_store(&stop, 1);
	pthread_join(vt, NULL);
	assert_int_equal(log.runs, POSTERS * 200);
	assert_int_equal(log.out_of_order, 0);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

struct share_req {
	struct mv_vm *other;
	uint64_t gfn;
};

static int share_req(struct mv_vm *vm, void *arg)
{
	struct share_req *r = arg;

	return mv_vm_share_pages(vm, r->gfn, r->other, r->gfn);
}

static int move_req(struct mv_vm *vm, void *arg)
{
	uint64_t gfn = *(uint64_t *)arg;

	return mv_host_move_page(mv_vm_host(vm),
				 mv_page_host_id(mv_vm_page(vm, gfn)), NULL);
}

/* A "scanner" thread asks two VMs to share a page and one to move a page
 * (the move may find no fuller chunk: -MV_ENOENT is an honest answer). */
static void sharing_and_moving_requests(void **state)
{
	struct mv_host *host;
	struct mv_vm *a, *b;
	struct mv_vm_request *r1, *r2;
	struct share_req sr;
	uint8_t page[4096], out[4096];
	uint64_t gfn = 7;
	int res1 = -1, res2 = -1;
	pthread_t vt;

	(void)state;
	atomic_store(&stop, 0);
	assert_int_equal(mv_host_create(NULL, &host), 0);
	a = fx_ram_vm(host, 256, 0, 0);
	b = fx_ram_vm(host, 256, 0, 0);
	assert_true(a && b);
	fx_fill(page, sizeof(page), 4);
	assert_int_equal(mv_vm_phys_write(a, 7 << 12, page, 4096), 0);
	assert_int_equal(mv_vm_phys_write(b, 7 << 12, page, 4096), 0);
	assert_int_equal(mv_vm_phys_write(a, 8 << 12, page, 4096), 0);
	sr = (struct share_req){ b, 7 };
	pthread_create(&vt, NULL, vm_thread, a);
	assert_int_equal(mv_vm_request_post(a, share_req, &sr, &r1), 0);
	gfn = 8;
	assert_int_equal(mv_vm_request_post(a, move_req, &gfn, &r2), 0);
	assert_int_equal(mv_vm_request_wait(a, r1, 0, &res1), 0);
	assert_int_equal(mv_vm_request_wait(a, r2, 0, &res2), 0);
	atomic_store(&stop, 1);
	pthread_join(vt, NULL);
	assert_int_equal(res1, 0);
	assert_true(res2 == 0 || res2 == -MV_ENOENT);
	assert_int_equal(fx_state(a, 7 << 12), MV_PAGE_SHARED);
	assert_int_equal(fx_state(b, 7 << 12), MV_PAGE_SHARED);
	assert_int_equal(mv_vm_phys_read(a, 8 << 12, out, 4096), 0);
	assert_memory_equal(out, page, 4096);
	/* requests still queued at destruction are run, not lost */
	assert_int_equal(mv_vm_request_post(a, share_req, &sr, NULL), 0);
	mv_vm_destroy(a);
	mv_vm_destroy(b);
	mv_host_destroy(host);
}

static void *process_once(void *arg)
{
	mv_vm_process_requests(arg, NULL);
	return NULL;
}

/* Two processors at once (the VM's thread and a helping waiter): a request
 * posted after another still runs after it. A processor that has taken the
 * queue while another holds the VM lock must not be overtaken by requests
 * posted later. */
static void order_across_processors(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct log log = { { 0 }, 0, 0 };
	struct item a = { &log, 0, 0 }, b = { &log, 0, 1 };
	pthread_t t;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = fx_ram_vm(host, 16, 0, 0);
	assert_non_null(vm);
	mv_vm_lock(vm);
	assert_int_equal(mv_vm_request_post(vm, record, &a, NULL), 0);
	assert_int_equal(pthread_create(&t, NULL, process_once, vm), 0);
	usleep(50000);    /* the thread is in mv_vm_process_requests */
	assert_int_equal(mv_vm_request_post(vm, record, &b, NULL), 0);
	assert_int_equal(mv_vm_process_requests(vm, NULL), 0);
	mv_vm_unlock(vm);
	pthread_join(t, NULL);
	assert_int_equal(log.runs, 2);
	assert_int_equal(log.out_of_order, 0);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

/* A helping waiter that holds the VM lock (a request or the MMU waiting on
 * another request) runs its request itself even when another processor
 * arrived first: that processor cannot take the queue without the lock, so
 * the wait cannot hang on it (a watchdog turns a hang into a failure). */
static void help_while_holding_lock(void **state)
{
	struct mv_host *host;
	struct mv_vm *vm;
	struct log log = { { 0 }, 0, 0 };
	struct item a = { &log, 0, 0 };
	struct mv_vm_request *req;
	pthread_t t;
	int result = -1;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &host), 0);
	vm = fx_ram_vm(host, 16, 0, 0);
	assert_non_null(vm);
	mv_vm_lock(vm);
	assert_int_equal(mv_vm_request_post(vm, record, &a, &req), 0);
	assert_int_equal(pthread_create(&t, NULL, process_once, vm), 0);
	usleep(50000);    /* the thread is in mv_vm_process_requests */
	alarm(20);
	assert_int_equal(mv_vm_request_wait(vm, req, 1, &result), 0);
	alarm(0);
	assert_int_equal(result, 0);
	mv_vm_unlock(vm);
	pthread_join(t, NULL);
	assert_int_equal(log.runs, 1);
	mv_vm_destroy(vm);
	mv_host_destroy(host);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(many_posters),
		cmocka_unit_test(waiting_with_results),
		cmocka_unit_test(sharing_and_moving_requests),
		cmocka_unit_test(order_across_processors),
		cmocka_unit_test(help_while_holding_lock),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
