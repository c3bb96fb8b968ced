/* libFuzzer target: arbitrary sequences of guest-physical API calls with
 * arbitrary addresses, lengths and frame lists, and page moves by the pool,
 * on a small VM (RAM on both sides of a hole, a ROM, an MMIO window).
 * Every call must return 0, a positive slow-path answer or a negative
 * code: never crash, never touch memory outside the guest (ASan watches),
 * and the VM's account must match its pages after every call. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/vm.h>

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < bytes && in->n; i++, in->n--)
		v |= (uint64_t)*in->p++ << (8 * i);
	return v;
}

/* Addresses cluster around the layout's edges, with full 64-bit noise. */
static uint64_t gpa_of(struct input *in)
{
	static const uint64_t bases[8] = { 0, 0x40000, 0x80000, 0x90000,
					   0x100000, 0x100000000ull,
					   0x100040000ull, 1ull << 52 };
	uint8_t sel = (uint8_t)take(in, 1);

	if (sel >= 0xF0)
		return take(in, 8);
	return bases[sel & 7] + take(in, 2) - 0x8000;
}

static int dev_read(void *o, uint64_t off, void *buf, size_t len)
{
	(void)o;
	memset(buf, (int)(off & 0xff), len);
	return off == 0x666 ? -MV_EIO : 0;
}

static int dev_write(void *o, uint64_t off, const void *buf, size_t len)
{
	(void)o;
	(void)buf;
	(void)len;
	return off == 0x777 ? -MV_EIO : 0;
}

static int handler(void *o, struct mv_vm *vm, uint64_t gpa, void *buf,
		   size_t len, enum mv_access acc)
{
	(void)o;
	(void)vm;
	if (acc == MV_ACCESS_READ && (gpa & 1))
		memset(buf, 0xAB, len);
	return (int)(gpa % 3) - 1;  /* error, done or default */
}

/* Hooks that try to re-enter: the notify hook is refused everything, the
 * track hook may read. Anything else is a bug. */
static void notify_hook(void *o, struct mv_vm *vm, uint64_t gfn,
			uint64_t count, enum mv_notify_reason why)
{
	uint8_t b = 0;

	(void)o, (void)gfn, (void)count, (void)why;
	if (mv_vm_phys_write(vm, 0, &b, 1) != -MV_EBUSY ||
	    mv_vm_phys_read(vm, 0, &b, 1) != -MV_EBUSY)
		__builtin_trap();
}

static void track_hook(void *o, struct mv_vm *vm, uint64_t gpa,
		       const void *bytes, size_t len)
{
	void *p;
	int rc = mv_vm_gpa_to_hva(vm, gpa, MV_VM_HVA_READ, &p);

	(void)o;
	/* an ALL handler's page reads through the handler: slow path */
	if ((rc && rc != MV_VM_SLOW_PATH) || (!rc && memcmp(p, bytes, len)) ||
	    mv_vm_phys_write(vm, gpa, bytes, 1) != -MV_EBUSY)
		__builtin_trap();
}

static void one_call(struct mv_vm *vm, struct input *in, uint8_t *buf)
{
	uint64_t gfns[8], g = gpa_of(in);
	size_t len = take(in, 2) % (3 * MV_PAGE_SIZE);
	uint32_t n = (uint32_t)take(in, 1) % 8 + 1;
	void *ptr;

	for (uint32_t i = 0; i < n; i++)
		gfns[i] = gpa_of(in) >> MV_PAGE_SHIFT;
	switch (take(in, 1) % 19) {
	case 0: mv_vm_phys_read(vm, g, buf, len); break;
	case 1: mv_vm_phys_write(vm, g, buf, len); break;
	case 2:
		/* a read pointer may be the read-only zero page: load only */
		if (mv_vm_gpa_to_hva(vm, g, (int)(len & 1), &ptr) == 0) {
			if (len & 1)
				*(volatile uint8_t *)ptr = 1;
			else
				buf[0] = *(volatile uint8_t *)ptr;
		}
		break;
	case 3: mv_vm_share_pages(vm, gfns[0], vm, gfns[1 % n]); break;
	case 4: mv_vm_balloon_inflate(vm, gfns, n); break;
	case 5: mv_vm_balloon_deflate(vm, gfns, n); break;
	case 6: mv_vm_phys_populate(vm, g >> MV_PAGE_SHIFT, n % 3, buf); break;
	case 7:
		mv_vm_handler_register(vm, (enum mv_handler_kind)(n % 4), g, len,
				       handler, NULL);
		break;
	case 8: mv_vm_handler_deregister(vm, g); break;
	case 9: mv_vm_handler_page_disable(vm, g); break;
	case 10: mv_vm_handler_page_enable(vm, g); break;
	case 11: mv_vm_write_monitor(vm, g >> MV_PAGE_SHIFT, n, NULL); break;
	case 12: mv_vm_dirty_collect(vm, g >> MV_PAGE_SHIFT, n * 64,
				     (uint64_t *)buf); break;
	case 13: mv_vm_reset(vm); break;
	case 14: {
		/* the pool moves whatever backs the frame, through the mover */
		struct mv_page *p = mv_vm_page(vm, g >> MV_PAGE_SHIFT);

		mv_host_move_page(mv_vm_host(vm), p ? mv_page_host_id(p)
						    : (mv_page_id)g, NULL);
		break;
	}
	case 15: mv_vm_track_write(vm, g >> MV_PAGE_SHIFT, (int)(n & 1)); break;
	case 16:
		/* the source is guest memory: another frame's read pointer */
		if (mv_vm_gpa_to_hva(vm, gfns[0] << MV_PAGE_SHIFT, 0, &ptr) == 0)
			mv_vm_phys_write(vm, g, ptr, len % MV_PAGE_SIZE);
		break;
	case 17: {
		/* a range comes or goes anywhere (a huge RAM range is cheap) */
		struct mv_vm_range r = {
			.type = (enum mv_page_type)(n % 3),
			.gpa = n & 2 ? g & ~(uint64_t)(MV_PAGE_SIZE - 1) : g,
			.size = (uint64_t)(len % 64 + 1) * MV_PAGE_SIZE
				<< (n & 4 ? 12 : 0),
			.rom_data = buf, .rom_size = len,
		};

		if (n & 1)
			mv_vm_range_add(vm, &r);
		else
			mv_vm_range_remove(vm, g);
		break;
	}
	default: mv_host_defragment(mv_vm_host(vm), n, NULL); break;
	}
}

/* The host account must match the VM's own view after every call: each
 * private page and handy page charged once, ROM on the fixed account. */
static void check_accounts(struct mv_vm *vm)
{
	struct mv_host_vm_stats hs;
	struct mv_vm_stats vs;

	if (mv_host_vm_get_stats(mv_vm_host(vm), mv_vm_id(vm), &hs) ||
	    mv_vm_get_stats(vm, &vs))
		__builtin_trap();
	if (hs.allocated[MV_ACCOUNT_BASE] != vs.pages[MV_PAGE_ALLOCATED] +
	    vs.pages[MV_PAGE_WRITE_MONITORED] + vs.handy ||
	    hs.allocated[MV_ACCOUNT_FIXED] != vs.rom_pages ||
	    hs.reserved.fixed != vs.rom_pages ||
	    hs.reserved.base < vs.ram_pages ||
	    hs.ballooned > vs.pages[MV_PAGE_BALLOONED] ||
	    hs.shared_refs > vs.pages[MV_PAGE_SHARED])
		__builtin_trap();
}

/* Destroying the VM gives everything back. */
static void check_empty(struct mv_host *host)
{
	struct mv_host_stats st;

	if (mv_host_get_stats(host, &st) || st.private_pages ||
	    st.shared_pages || st.shared_refs || st.ballooned_pages || st.vms)
		__builtin_trap();
}

/* Another VM that leaves one full chunk with 100 holes and a second one
 * with 8 pages: defragmenting moves those into the holes, and pages the
 * fuzzed VM gets in the second chunk can move into holes it makes in the
 * first. Made for one input in four (it costs 520 page faults). */
#define FILLER_PAGES 520
static struct mv_vm *filler_vm(struct mv_host *host)
{
	static uint8_t image[FILLER_PAGES * MV_PAGE_SIZE];
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = FILLER_PAGES * MV_PAGE_SIZE };
	struct mv_vm_config cfg = { .ranges = &r, .nranges = 1,
				    .handy_low = 1, .handy_high = 4 };
	uint64_t holes[100];
	struct mv_vm *vm;

	if (mv_vm_create(host, &cfg, &vm))
		return NULL;
	for (uint64_t i = 0; i < 100; i++)
		holes[i] = i * 4;
	if (mv_vm_phys_populate(vm, 0, FILLER_PAGES, image) ||
	    mv_vm_balloon_inflate(vm, holes, 100)) {
		mv_vm_destroy(vm);
		return NULL;
	}
	return vm;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t buf[3 * MV_PAGE_SIZE];
	static const uint8_t rom[100] = "rom";
	struct mv_vm_range r[4] = {
		{ .type = MV_PAGE_RAM, .gpa = 0, .size = 0x80000 },
		{ .type = MV_PAGE_ROM, .gpa = 0x80000, .size = 0x10000,
		  .rom_data = rom, .rom_size = sizeof(rom) },
		{ .type = MV_PAGE_MMIO, .gpa = 0x100000, .size = 0x2000,
		  .read = dev_read, .write = dev_write },
		{ .type = MV_PAGE_RAM, .gpa = 0x100000000ull, .size = 0x40000 },
	};
	struct input in = { data, size };
	struct mv_vm_config cfg = { .ranges = r, .nranges = 4,
				    .handy_low = 2, .handy_high = 8,
				    .balloon_policy = (enum mv_balloon_policy)
					    (size & 1),
				    /* none, or bounds of 2 and 3 chunks */
				    .map_chunks_max = size % 3 ? (uint32_t)(size % 3) + 1
							       : 0 };
	struct mv_host *host;
	struct mv_vm *vm, *filler;

	if (mv_host_create(NULL, &host))
		return 0;
	filler = size % 4 == 3 ? filler_vm(host) : NULL;
	if (mv_vm_create(host, &cfg, &vm) == 0) {
		mv_vm_set_notify(vm, notify_hook, NULL);
		mv_vm_set_track_hook(vm, track_hook, NULL);
		while (in.n) {
			one_call(vm, &in, buf);
			check_accounts(vm);
			if (filler)
				check_accounts(filler);
		}
		mv_vm_destroy(vm);
	}
	mv_vm_destroy(filler);
	check_empty(host);
	mv_host_destroy(host);
	return 0;
}
