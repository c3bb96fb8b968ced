/* Physical access handlers: conflicts, per-page states, callbacks with
 * and without the default access, per-page disabling, deregistration and
 * the MMU notifications each of them sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "phys/fixture.h"

struct hlog {
	unsigned reads, writes;
	uint64_t last_gpa;
	size_t last_len;
	int ret;            /* what the handler answers */
	uint8_t fill;       /* reads answered with this byte when DONE */
};

static int handler(void *opaque, struct mv_vm *vm, uint64_t gpa, void *buf,
		   size_t len, enum mv_access acc)
{
	struct hlog *l = opaque;

	(void)vm;
	l->last_gpa = gpa;
	l->last_len = len;
	if (acc == MV_ACCESS_READ) {
		l->reads++;
		if (l->ret == MV_HANDLER_DONE)
			memset(buf, l->fill, len);
	} else {
		l->writes++;
		((uint8_t *)buf)[0] ^= 0xFF;  /* visible if DEFAULT follows */
	}
	return l->ret;
}

#define H0 (FX_HIGH_GPA + 16 * MV_PAGE_SIZE)

static enum mv_handler_state hstate(struct mv_vm *vm, uint64_t gpa)
{
	return mv_page_hstate(mv_vm_page(vm, gpa >> MV_PAGE_SHIFT));
}

/* Page-granular ranges: any shared page is a conflict, neighbours are not. */
static void conflicts(void **state)
{
	struct fx_ctx *c = *state;
	struct hlog l = { 0 };

	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_WRITE,
						H0 + 100, 2 * MV_PAGE_SIZE,
						handler, &l), 0);
	/* covers pages H0, H0+1 and H0+2 (100 + 8192 bytes) */
	for (int i = 0; i < 3; i++)
		assert_int_equal(hstate(c->vm, H0 + i * 4096u), MV_HSTATE_WRITE);
	assert_int_equal(hstate(c->vm, H0 + 3 * 4096u), MV_HSTATE_NONE);
	assert_int_equal(c->notes.count[MV_NOTIFY_HANDLER], 1);
	assert_int_equal(c->notes.last_count, 3);
	const uint64_t clash[][2] = { { H0, 1 }, { H0 + 3 * 4096 - 1, 1 },
				      { H0 - 4096, 4097 },
				      { H0 - 4096, 10 * 4096 } };
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL,
							clash[i][0], clash[i][1],
							handler, &l),
				 -MV_EEXIST);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL,
						H0 - 4096, 4096, handler, &l), 0);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL,
						H0 + 3 * 4096, 4096, handler,
						&l), 0);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL,
						FX_HOLE_GPA, 4096, handler, &l),
			 -MV_ERANGE);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL,
						FX_ROM_GPA + FX_ROM_SIZE - 4096,
						8192, handler, &l), -MV_ERANGE);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL, 0, 0,
						handler, &l), -MV_EINVAL);
	assert_int_equal(mv_vm_handler_register(c->vm, 7, 0, 1, handler, &l),
			 -MV_EINVAL);
	assert_int_equal(mv_vm_handler_deregister(c->vm, H0 + 2 * 4096), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(hstate(c->vm, H0 + i * 4096u), MV_HSTATE_NONE);
	assert_int_equal(hstate(c->vm, H0 - 4096), MV_HSTATE_ALL);
	assert_int_equal(mv_vm_handler_deregister(c->vm, H0), -MV_ENOENT);
	/* the freed pages can be claimed again */
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL, H0,
						4096, handler, &l), 0);
}

/* Many handlers registered out of order: lookups find each. */
static void many_handlers(void **state)
{
	struct fx_ctx *c = *state;
	struct hlog l[64] = { { 0 } };
	uint8_t b = 1;

	for (int i = 0; i < 64; i++) {
		int k = (i * 37) % 64;  /* a permutation */

		assert_int_equal(mv_vm_handler_register(
			c->vm, MV_HANDLER_WRITE, (uint64_t)k * 2 * 4096, 4096,
			handler, &l[k]), 0);
	}
	for (int k = 0; k < 64; k++) {
		assert_int_equal(mv_vm_phys_write(c->vm,
						  (uint64_t)k * 2 * 4096 + 5,
						  &b, 1), 0);
		assert_int_equal(l[k].writes, 1);
		assert_int_equal(l[k].last_gpa, (uint64_t)k * 2 * 4096 + 5);
	}
	struct mv_vm_stats st;
	assert_int_equal(mv_vm_get_stats(c->vm, &st), 0);
	assert_int_equal(st.handlers, 64);
}

/* WRITE handler: reads go to memory; writes see the handler, which may
 * let them through (DEFAULT, with its own edits) or swallow them. */
static void write_handler_callbacks(void **state)
{
	struct fx_ctx *c = *state;
	struct hlog l = { .ret = MV_HANDLER_DEFAULT };
	uint8_t in[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }, out[8];
	void *ptr;

	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_WRITE, H0,
						4096, handler, &l), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, H0 + 4094, in, 8), 0);
	assert_int_equal(l.writes, 1);   /* only the first page is watched */
	assert_int_equal(l.last_len, 2);
	assert_int_equal(mv_vm_phys_read(c->vm, H0 + 4094, out, 8), 0);
	assert_int_equal(l.reads, 0);
	assert_int_equal(out[0], 1 ^ 0xFF);  /* handler's edit went through */
	assert_memory_equal(out + 1, in + 1, 7);
	l.ret = MV_HANDLER_DONE;
	assert_int_equal(mv_vm_phys_write(c->vm, H0 + 10, in, 4), 0);
	assert_int_equal(mv_vm_phys_read(c->vm, H0 + 10, out, 4), 0);
	assert_int_equal(out[0] | out[1] | out[2] | out[3], 0); /* swallowed */
	/* direct reads fine, writes to the slow path */
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, H0, 0, &ptr), 0);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, H0, 1, &ptr), MV_VM_SLOW_PATH);
	l.ret = -MV_EBUSY;
	assert_int_equal(mv_vm_phys_write(c->vm, H0, in, 1), -MV_EBUSY);
}

/* ALL handler: reads see it too; DONE answers from the handler, DEFAULT
 * reads memory. An ALL handler on MMIO may fall through to the device. */
static void all_handler_callbacks(void **state)
{
	struct fx_ctx *c = *state;
	struct hlog l = { .ret = MV_HANDLER_DONE, .fill = 0x3C };
	uint8_t in[4] = { 9, 9, 9, 9 }, out[4];
	void *ptr;

	assert_int_equal(mv_vm_phys_write(c->vm, H0, in, 4), 0);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_ALL, H0,
						4096, handler, &l), 0);
	assert_int_equal(mv_vm_phys_read(c->vm, H0, out, 4), 0);
	assert_int_equal(out[0], 0x3C);
	l.ret = MV_HANDLER_DEFAULT;
	assert_int_equal(mv_vm_phys_read(c->vm, H0, out, 4), 0);
	assert_memory_equal(out, in, 4);
	assert_int_equal(l.reads, 2);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, H0, 0, &ptr), MV_VM_SLOW_PATH);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_MMIO,
						FX_MMIO_GPA, 4096, handler, &l),
			 0);
	assert_int_equal(mv_vm_phys_write(c->vm, FX_MMIO_GPA, in, 4), 0);
	assert_int_equal(c->dev.writes, 1);  /* DEFAULT reached the device */
	assert_int_equal(c->dev.regs[0], 9 ^ 0xFF);
}

/* DISABLED lets the MMU map a page directly; enabling restores it;
 * MMIO handlers cannot be disabled. Each change notifies the MMU. */
static void disable_single_pages(void **state)
{
	struct fx_ctx *c = *state;
	struct hlog l = { .ret = MV_HANDLER_DONE };
	uint8_t b = 7, out;
	void *ptr;

	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_WRITE, H0,
						3 * 4096, handler, &l), 0);
	unsigned before = c->notes.count[MV_NOTIFY_HANDLER];
	assert_int_equal(mv_vm_handler_page_disable(c->vm, H0 + 4096), 0);
	assert_int_equal(c->notes.count[MV_NOTIFY_HANDLER], before + 1);
	assert_int_equal(hstate(c->vm, H0 + 4096), MV_HSTATE_DISABLED);
	assert_int_equal(hstate(c->vm, H0), MV_HSTATE_WRITE);
	assert_int_equal(mv_vm_phys_write(c->vm, H0 + 4096, &b, 1), 0);
	assert_int_equal(l.writes, 0);
	assert_int_equal(mv_vm_phys_read(c->vm, H0 + 4096, &out, 1), 0);
	assert_int_equal(out, 7);
	assert_int_equal(mv_vm_gpa_to_hva(c->vm, H0 + 4096, 1, &ptr), 0);
	assert_int_equal(mv_vm_handler_page_enable(c->vm, H0 + 4096), 0);
	assert_int_equal(hstate(c->vm, H0 + 4096), MV_HSTATE_WRITE);
	assert_int_equal(mv_vm_phys_write(c->vm, H0 + 4096, &b, 1), 0);
	assert_int_equal(l.writes, 1);
	assert_int_equal(mv_vm_handler_page_disable(c->vm, H0 + 5 * 4096),
			 -MV_ENOENT);
	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_MMIO,
						H0 + 8 * 4096, 4096, handler,
						&l), 0);
	assert_int_equal(mv_vm_handler_page_disable(c->vm, H0 + 8 * 4096),
			 -MV_ESTATE);
	/* deregistering a handler with a disabled page clears it too */
	assert_int_equal(mv_vm_handler_page_disable(c->vm, H0 + 2 * 4096), 0);
	assert_int_equal(mv_vm_handler_deregister(c->vm, H0), 0);
	assert_int_equal(hstate(c->vm, H0 + 2 * 4096), MV_HSTATE_NONE);
}

/* A handler may itself access the VM (the lock is recursive). */
static int reentrant(void *opaque, struct mv_vm *vm, uint64_t gpa, void *buf,
		     size_t len, enum mv_access acc)
{
	(void)opaque;
	(void)acc;
	return mv_vm_phys_write(vm, gpa + 4096, buf, len) ?: MV_HANDLER_DEFAULT;
}

static void handler_reenters(void **state)
{
	struct fx_ctx *c = *state;
	uint8_t b = 0x42, out = 0;

	assert_int_equal(mv_vm_handler_register(c->vm, MV_HANDLER_WRITE, H0,
						4096, reentrant, NULL), 0);
	assert_int_equal(mv_vm_phys_write(c->vm, H0 + 1, &b, 1), 0);
	assert_int_equal(mv_vm_phys_read(c->vm, H0 + 4097, &out, 1), 0);
	assert_int_equal(out, 0x42);
	assert_int_equal(mv_vm_phys_read(c->vm, H0 + 1, &out, 1), 0);
	assert_int_equal(out, 0x42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(conflicts, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(many_handlers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(write_handler_callbacks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(all_handler_callbacks, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(disable_single_pages, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(handler_reenters, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
