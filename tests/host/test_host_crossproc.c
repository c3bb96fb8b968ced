/* A chunk mapped by another process (mv_host_chunk_fd) sees the pool's
 * pages, and the pool sees that process's writes: the property a VM in a
 * separate process (or a migration sender) relies on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <memvisor/host.h>

#define PAGES 3

/* In the child: check every page's pattern through its own mapping of the
 * chunk, then answer by writing the page's complement. Exit status 0 when
 * everything matched. */
static int child(int fd, uint64_t off, const mv_page_id *ids)
{
	uint8_t *map = mmap(NULL, MV_CHUNK_SIZE, PROT_READ | PROT_WRITE,
			    MAP_SHARED, fd, (off_t)off);

	if (map == MAP_FAILED)
		return 2;
	for (int i = 0; i < PAGES; i++) {
		uint8_t *p = map + mv_page_index(ids[i]) * MV_PAGE_SIZE;

		for (unsigned b = 0; b < MV_PAGE_SIZE; b++)
			if (p[b] != (uint8_t)(i * 31 + b))
				return 3;
		for (unsigned b = 0; b < MV_PAGE_SIZE; b++)
			p[b] = (uint8_t)~(i * 31 + b);
	}
	return 0;
}

static void another_process_shares_the_chunk(void **state)
{
	struct mv_host *h;
	struct mv_reservation res = { .base = 64 };
	mv_page_id ids[PAGES];
	mv_vmid vm;
	uint64_t off;
	int fd, status;
	pid_t pid;

	(void)state;
	assert_int_equal(mv_host_create(NULL, &h), 0);
	assert_int_equal(mv_host_vm_create(h, &res, &vm), 0);
	assert_int_equal(mv_host_alloc(h, vm, MV_ACCOUNT_BASE, PAGES, NULL,
				       MV_ALLOC_ZEROED, ids), 0);
	for (int i = 1; i < PAGES; i++)   /* one chunk holds them all */
		assert_int_equal(mv_page_chunk(ids[i]), mv_page_chunk(ids[0]));
	for (int i = 0; i < PAGES; i++) {
		uint8_t *p = mv_host_page_ptr(h, ids[i]);

		for (unsigned b = 0; b < MV_PAGE_SIZE; b++)
			p[b] = (uint8_t)(i * 31 + b);
	}
	assert_int_equal(mv_host_chunk_fd(h, mv_page_chunk(ids[0]), &fd, &off),
			 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child(fd, off, ids));
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	for (int i = 0; i < PAGES; i++) {
		const uint8_t *p = mv_host_page_ptr(h, ids[i]);

		for (unsigned b = 0; b < MV_PAGE_SIZE; b++)
			assert_int_equal(p[b], (uint8_t)~(i * 31 + b));
	}
	assert_int_equal(mv_host_free(h, vm, PAGES, ids), 0);
	assert_int_equal(mv_host_vm_destroy(h, vm), 0);
	mv_host_destroy(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(another_process_shares_the_chunk),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
