/* The walker over a VM's guest-physical memory (mv_gmem_vm_init): page
 * tables in RAM, ZERO, SHARED, ROM, MMIO, holes and handler pages; a
 * SHARED table whose copy the budget refuses; tables and leaves in sparse
 * RAM far above 4 GiB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <memvisor/mmu.h>
#include <memvisor/vm.h>

#define RAM_SIZE (16u << 20)
#define ROM_GPA 0x1000000ull
#define MMIO_GPA 0x2000000ull
#define PML4 0x1000ull
#define PDPT 0x2000ull
#define PD 0x3000ull
#define PT 0x4000ull
#define VA 0x400123ull      /* PML4[0] PDPT[0] PD[2] PT[0] */
#define FRAME 0x5000ull
#define TABLE (MV_PTE_P | MV_PTE_W | MV_PTE_U)

struct fixture {
	struct mv_host *host;
	struct mv_vm *vm;
	struct mv_gmem gm;
	struct mv_paging pg;
	unsigned mmio_reads, handler_writes, handler_reads;
	uint64_t handler_gpa;
	uint64_t rom[512];   /* ROM content: a page table */
};

static int mmio_read(void *opaque, uint64_t off, void *buf, size_t len)
{
	struct fixture *f = opaque;

	(void)off;
	f->mmio_reads++;
	memset(buf, 0xff, len);
	return 0;
}

static struct mv_vm *make_vm(struct fixture *f)
{
	struct mv_vm_range ranges[] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = RAM_SIZE, .name = "ram" },
		{ .type = MV_PAGE_ROM, .gpa = ROM_GPA, .size = MV_PAGE_SIZE,
		  .name = "rom", .rom_data = f->rom, .rom_size = sizeof(f->rom) },
		{ .type = MV_PAGE_MMIO, .gpa = MMIO_GPA, .size = MV_PAGE_SIZE,
		  .name = "mmio", .read = mmio_read, .opaque = f },
	};
	struct mv_vm_config cfg = { .ranges = ranges, .nranges = 3 };
	struct mv_vm *vm;

	assert_int_equal(mv_vm_create(f->host, &cfg, &vm), 0);
	return vm;
}

static void put(struct mv_vm *vm, uint64_t gpa, uint64_t val)
{
	assert_int_equal(mv_vm_phys_write(vm, gpa, &val, 8), 0);
}

static uint64_t get(struct mv_vm *vm, uint64_t gpa)
{
	uint64_t v;

	assert_int_equal(mv_vm_phys_read(vm, gpa, &v, 8), 0);
	return v;
}

/* PML4 -> PDPT -> PD -> PT -> FRAME for VA, the PT at @pt. */
static void build_tables(struct mv_vm *vm, uint64_t pt)
{
	put(vm, PML4, PDPT | TABLE);
	put(vm, PDPT, PD | TABLE);
	put(vm, PD + 2 * 8, pt | TABLE);
	if (pt < RAM_SIZE)
		put(vm, pt, FRAME | TABLE);
}

static void init_paging(struct fixture *f, struct mv_vm *vm, uint64_t cr3)
{
	struct mv_cpu_regs regs = {
		.cr0 = MV_CR0_PG | MV_CR0_PE | MV_CR0_WP,
		.cr3 = cr3,
		.cr4 = MV_CR4_PAE,
		.efer = MV_EFER_LME | MV_EFER_LMA | MV_EFER_NXE,
	};
	struct mv_cpu_model cpu = { 0 };

	assert_int_equal(mv_gmem_vm_init(&f->gm, vm), 0);
	assert_int_equal(mv_paging_init(&f->pg, &regs, &cpu, &f->gm), 0);
}

static int setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	f.rom[0] = FRAME | TABLE;
	assert_int_equal(mv_host_create(NULL, &f.host), 0);
	f.vm = make_vm(&f);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	mv_vm_destroy(f->vm);
	mv_host_destroy(f->host);
	return 0;
}

static void walk_translates_and_sets_ad(void **state)
{
	struct fixture *f = *state;
	struct mv_walk w;

	build_tables(f->vm, PT);
	init_paging(f, f->vm, PML4);
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, MV_ACC_WRITE, &w),
			 MV_WALK_OK);
	assert_int_equal(w.gpa, FRAME | (VA & 0xfff));
	assert_int_equal(w.page_size, MV_PAGE_SIZE);
	assert_int_equal(w.nr_entries, 4);
	assert_true(get(f->vm, PML4) & MV_PTE_A);
	assert_true(get(f->vm, PDPT) & MV_PTE_A);
	assert_true(get(f->vm, PD + 16) & MV_PTE_A);
	assert_int_equal(get(f->vm, PT), FRAME | TABLE | MV_PTE_A | MV_PTE_D);
	assert_false(get(f->vm, PD + 16) & MV_PTE_D);  /* D on the leaf only */
}

static void unwritten_tables_fault_and_stay_zero(void **state)
{
	struct fixture *f = *state;
	uint64_t cr3 = 0x100000;
	struct mv_walk w;

	init_paging(f, f->vm, cr3);
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, 0, &w), MV_WALK_PF);
	assert_int_equal(w.error_code, 0);   /* not present, read, supervisor */
	assert_int_equal(mv_page_state(mv_vm_page(f->vm, cr3 >> 12)),
			 MV_PAGE_ZERO);
}

static void ad_update_breaks_a_shared_table(void **state)
{
	struct fixture *f = *state;
	struct mv_vm *other = make_vm(f);
	struct mv_walk w;

	build_tables(f->vm, PT);
	build_tables(other, PT);
	assert_int_equal(mv_vm_share_pages(f->vm, PT >> 12, other, PT >> 12), 0);
	assert_int_equal(mv_page_state(mv_vm_page(f->vm, PT >> 12)),
			 MV_PAGE_SHARED);
	init_paging(f, f->vm, PML4);
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, 0, &w), MV_WALK_OK);
	assert_int_equal(mv_page_state(mv_vm_page(f->vm, PT >> 12)),
			 MV_PAGE_ALLOCATED);
	assert_int_equal(get(f->vm, PT), FRAME | TABLE | MV_PTE_A);
	assert_int_equal(get(other, PT), FRAME | TABLE);  /* old bytes */
	mv_vm_destroy(other);
}

static void rom_table_walks_without_ad(void **state)
{
	struct fixture *f = *state;
	struct mv_walk w;

	build_tables(f->vm, ROM_GPA);
	init_paging(f, f->vm, PML4);
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, MV_ACC_WRITE, &w),
			 MV_WALK_OK);
	assert_int_equal(w.gpa, FRAME | (VA & 0xfff));
	assert_int_equal(get(f->vm, ROM_GPA), FRAME | TABLE);
	/* The leaf as it is in memory: the dropped write is not reported
	 * as done. */
	assert_int_equal(w.leaf, FRAME | TABLE);
	assert_int_equal(w.entry[3], FRAME | TABLE);
	assert_true(get(f->vm, PD + 16) & MV_PTE_A);
}

static void mmio_and_holes_are_not_ram(void **state)
{
	struct fixture *f = *state;
	uint64_t where[] = { MMIO_GPA, 0x3000000 /* hole */ };
	struct mv_walk w;

	for (unsigned i = 0; i < 2; i++) {
		build_tables(f->vm, where[i]);
		init_paging(f, f->vm, PML4);
		assert_int_equal(mv_walk(&f->pg, &f->gm, VA, 0, &w),
				 MV_WALK_NOT_RAM);
		assert_int_equal(w.entry_gpa[w.nr_entries - 1], where[i]);
	}
	assert_int_equal(f->mmio_reads, 0);  /* no device read by a walk */
}

static int watch(void *opaque, struct mv_vm *vm, uint64_t gpa, void *buf,
		 size_t len, enum mv_access access)
{
	struct fixture *f = opaque;

	(void)vm;
	(void)buf;
	(void)len;
	if (access == MV_ACCESS_WRITE) {
		f->handler_writes++;
		f->handler_gpa = gpa;
	} else {
		f->handler_reads++;
	}
	return MV_HANDLER_DEFAULT;
}

static void write_handler_sees_the_ad_update(void **state)
{
	struct fixture *f = *state;
	struct mv_walk w;

	build_tables(f->vm, PT);
	assert_int_equal(mv_vm_handler_register(f->vm, MV_HANDLER_WRITE, PT,
						MV_PAGE_SIZE, watch, f), 0);
	init_paging(f, f->vm, PML4);
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, 0, &w), MV_WALK_OK);
	assert_int_equal(f->handler_writes, 1);
	assert_int_equal(f->handler_gpa, PT);
	assert_int_equal(get(f->vm, PT), FRAME | TABLE | MV_PTE_A);
	/* A second walk finds A set: no write, no handler call. */
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, 0, &w), MV_WALK_OK);
	assert_int_equal(f->handler_writes, 1);
	assert_int_equal(mv_vm_handler_deregister(f->vm, PT), 0);
}

/* Write distinct frames of @vm from @gpa on until the pool refuses: then the
 * VM's handy cache is empty and the budget spent. */
static void exhaust_budget(struct mv_vm *vm, uint64_t gpa)
{
	uint64_t one = 1;
	int rc;

	for (;; gpa += MV_PAGE_SIZE) {
		assert_true(gpa < RAM_SIZE);
		rc = mv_vm_phys_write(vm, gpa, &one, sizeof(one));
		if (rc)
			break;
	}
	assert_int_equal(rc, -MV_EBUDGET);
}

/* The A bit of a PTE in a SHARED page needs a private copy; with the budget
 * spent the copy is refused. The walk must say so (the refusal's code),
 * not report the translation without A/D as if the table were ROM. */
static void refused_copy_of_a_shared_table_is_an_error(void **state)
{
	struct fixture *f = *state;
	struct mv_host_config cfg = { .budget_pages = 512,
				      .overcommit = MV_OVERCOMMIT_ALLOW };
	struct mv_host *host;
	struct mv_vm *a, *b;
	struct mv_walk w;
	int rc;

	mv_vm_destroy(f->vm);
	mv_host_destroy(f->host);
	assert_int_equal(mv_host_create(&cfg, &host), 0);
	f->host = host;
	a = make_vm(f);
	b = make_vm(f);
	f->vm = a;
	build_tables(a, PT);
	build_tables(b, PT);
	assert_int_equal(mv_vm_share_pages(a, PT >> 12, b, PT >> 12), 0);
	exhaust_budget(a, 0x100000);
	init_paging(f, a, PML4);
	for (unsigned acc = 0; acc <= MV_ACC_WRITE; acc += MV_ACC_WRITE) {
		memset(&w, 0x5a, sizeof(w));
		rc = mv_walk(&f->pg, &f->gm, VA, acc, &w);
		assert_int_equal(rc, -MV_EBUDGET);
		assert_int_equal(w.status, MV_WALK_ERROR);
		assert_int_equal(w.gpa, 0);
		assert_int_equal(w.page_size, 0);
		assert_int_equal(w.leaf, 0);
		assert_int_equal(w.perm, 0);
		assert_int_equal(w.error_code, 0);
		assert_int_equal(w.nr_entries, 4);
		assert_int_equal(w.entry_gpa[3], PT);
		assert_int_equal(mv_page_state(mv_vm_page(a, PT >> 12)),
				 MV_PAGE_SHARED);
		assert_int_equal(get(a, PT), FRAME | TABLE);  /* no A, no D */
		assert_int_equal(get(b, PT), FRAME | TABLE);
	}
	/* A probe writes nothing, so needs no copy. */
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, MV_ACC_NO_AD, &w),
			 MV_WALK_OK);
	/* Room again (the other VM goes): the same walk completes. */
	mv_vm_destroy(b);
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, MV_ACC_WRITE, &w),
			 MV_WALK_OK);
	assert_int_equal(get(a, PT), FRAME | TABLE | MV_PTE_A | MV_PTE_D);
	assert_int_equal(w.leaf, FRAME | TABLE | MV_PTE_A | MV_PTE_D);
	assert_int_equal(mv_page_state(mv_vm_page(a, PT >> 12)),
			 MV_PAGE_ALLOCATED);
}

/* RAM in three small ranges: at 0, just above 4 GiB and near 2^46; every
 * table lies in a high range and the leaf too. Cutting a long-mode table
 * pointer (or CR3) to 32 bits sends the walk into low RAM, where the
 * entries are different. */
static void tables_far_above_4g(void **state)
{
	struct fixture *f = *state;
	const uint64_t hi1 = 0x100000000ull + 0x200000;  /* 4 GiB + 2 MiB */
	const uint64_t hi2 = 0x3fff00000000ull;          /* near 2^46 */
	struct mv_vm_range ranges[] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = 1u << 20,
		  .name = "low" },
		{ .type = MV_PAGE_RAM, .gpa = hi1, .size = 1u << 20,
		  .name = "above 4G" },
		{ .type = MV_PAGE_RAM, .gpa = hi2, .size = 4u << 20,
		  .name = "near 2^46" },
	};
	struct mv_vm_config cfg = { .ranges = ranges, .nranges = 3 };
	const uint64_t pml4 = hi2 + 0x3000, pdpt = hi1 + 0x5000;
	const uint64_t pd = hi2 + 0x7000, pt = hi1 + 0x9000;
	const uint64_t frame = hi2 + 0x200000, va = 0x7f0012345678ull;
	struct mv_vm *vm;
	struct mv_walk w;

	assert_int_equal(mv_vm_create(f->host, &cfg, &vm), 0);
	/* Decoys where 32-bit-cut pointers would land: present entries to a
	 * wrong frame. */
	for (uint64_t t = 0x3000; t <= 0x9000; t += 0x2000)
		for (unsigned i = 0; i < 512; i++)
			put(vm, t + 8 * i, 0x1000 | TABLE);
	put(vm, pml4 + 8 * ((va >> 39) & 511), pdpt | TABLE);
	put(vm, pdpt + 8 * ((va >> 30) & 511), pd | TABLE);
	put(vm, pd + 8 * ((va >> 21) & 511), pt | TABLE);
	put(vm, pt + 8 * ((va >> 12) & 511),
	    frame | TABLE | MV_PTE_PCD | (11ull << 59));
	init_paging(f, vm, pml4);
	assert_int_equal(mv_walk(&f->pg, &f->gm, va, MV_ACC_WRITE, &w),
			 MV_WALK_OK);
	assert_int_equal(w.gpa, frame | (va & 0xfff));
	assert_int_equal(w.page_size, MV_PAGE_SIZE);
	assert_int_equal(w.level, 1);
	assert_int_equal(w.nr_entries, 4);
	assert_int_equal(w.entry_gpa[0], pml4 + 8 * ((va >> 39) & 511));
	assert_int_equal(w.entry_gpa[1], pdpt + 8 * ((va >> 30) & 511));
	assert_int_equal(w.entry_gpa[2], pd + 8 * ((va >> 21) & 511));
	assert_int_equal(w.entry_gpa[3], pt + 8 * ((va >> 12) & 511));
	assert_int_equal(w.perm, MV_PERM_W | MV_PERM_U);
	assert_int_equal(w.pkey, 11);
	assert_int_equal(w.memtype, 2);  /* PCD */
	assert_int_equal(w.leaf, frame | TABLE | MV_PTE_PCD | (11ull << 59) |
				 MV_PTE_A | MV_PTE_D);
	assert_int_equal(get(vm, w.entry_gpa[3]), w.leaf);
	assert_true(get(vm, w.entry_gpa[0]) & MV_PTE_A);
	mv_vm_destroy(vm);
}

/* A table page whose reads a handler must see: the walk reads it through
 * the handler and sets A through it too. */
static void read_handler_sees_the_table_read(void **state)
{
	struct fixture *f = *state;
	struct mv_walk w;

	build_tables(f->vm, PT);
	assert_int_equal(mv_vm_handler_register(f->vm, MV_HANDLER_ALL, PT,
						MV_PAGE_SIZE, watch, f), 0);
	init_paging(f, f->vm, PML4);
	f->handler_reads = 0;
	assert_int_equal(mv_walk(&f->pg, &f->gm, VA, MV_ACC_WRITE, &w),
			 MV_WALK_OK);
	assert_true(f->handler_reads >= 1);
	assert_int_equal(f->handler_writes, 1);
	assert_int_equal(w.gpa, FRAME | (VA & 0xfff));
	assert_int_equal(w.leaf, FRAME | TABLE | MV_PTE_A | MV_PTE_D);
	assert_int_equal(mv_vm_handler_deregister(f->vm, PT), 0);
	assert_int_equal(get(f->vm, PT), FRAME | TABLE | MV_PTE_A | MV_PTE_D);
}

static void null_arguments(void **state)
{
	struct fixture *f = *state;

	assert_int_equal(mv_gmem_vm_init(NULL, f->vm), -MV_EINVAL);
	assert_int_equal(mv_gmem_vm_init(&f->gm, NULL), -MV_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(walk_translates_and_sets_ad),
		T(unwritten_tables_fault_and_stay_zero),
		T(ad_update_breaks_a_shared_table),
		T(rom_table_walks_without_ad),
		T(mmio_and_holes_are_not_ram),
		T(write_handler_sees_the_ad_update),
		T(refused_copy_of_a_shared_table_is_an_error),
		T(read_handler_sees_the_table_read),
		T(tables_far_above_4g),
		T(null_arguments),
#undef T
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
