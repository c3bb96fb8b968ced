/* Bad input to every call of vcpu.h: each must return its exact error and
 * change nothing (the vCPU's registers and statistics, the MMU's
 * statistics, the guest bytes behind the translation). */
#include "vcpu_fixture.h"

#include "badinput.h"

#define VA 0x00007f0000001000ull

static struct vf F;
static struct mv_vm *bare_vm;     /* a VM without an MMU */
static struct mv_xlate XL;
static uint64_t word;

static int create_cpu(uint8_t maxphyaddr)
{
	struct mv_vcpu_config c = { .cpu = { .maxphyaddr = maxphyaddr } };
	struct mv_vcpu *v = (struct mv_vcpu *)&F;
	int rc = mv_vcpu_create(F.vm, &c, &v);

	return v == (struct mv_vcpu *)&F ? rc : 12345;
}

static int configure(uint32_t cap, uint32_t lo, uint32_t hi,
		     struct mv_vm *vm)
{
	struct mv_mmu_config c = { .max_shadow_pages = cap, .pool_min = lo,
				   .pool_max = hi };

	return mv_mmu_configure(vm, &c);
}

static int bad_regs(uint64_t cr0, uint64_t cr4, uint64_t efer, uint64_t cr3)
{
	struct mv_cpu_regs r = { .cr0 = cr0, .cr4 = cr4, .efer = efer,
				 .cr3 = cr3 };

	return mv_vcpu_set_regs(F.cpu, &r);
}

#define PG (MV_CR0_PE | MV_CR0_PG)
#define LM (MV_EFER_LME | MV_EFER_LMA)

#define BAD_CASES(X)                                                          \
	X(-MV_EINVAL, mv_vcpu_create(NULL, NULL, NULL))                       \
	X(-MV_EINVAL, mv_vcpu_create(F.vm, NULL, NULL))                       \
	X(-MV_EINVAL, create_cpu(31))                                         \
	X(-MV_EINVAL, create_cpu(53))                                         \
	X(-MV_EINVAL, create_cpu(40)) /* differs from the first vCPU */       \
	X(-MV_EINVAL, mv_mmu_configure(NULL, NULL))                           \
	X(-MV_EINVAL, mv_mmu_configure(F.vm, NULL))                           \
	X(-MV_EINVAL, configure(0, 9, 8, bare_vm))                            \
	X(-MV_EINVAL, configure(0, 0, 4097, bare_vm))                         \
	X(-MV_EINVAL, configure(1u << 30, 0, 0, bare_vm))                     \
	X(-MV_ESTATE, configure(0, 0, 0, F.vm))                               \
	X(-MV_EINVAL, mv_vcpu_set_regs(NULL, NULL))                           \
	X(-MV_EINVAL, mv_vcpu_set_regs(F.cpu, NULL))                          \
	X(-MV_EINVAL, bad_regs(PG, 0, LM, 0))  /* long mode without PAE */    \
	X(MV_WALK_GP, bad_regs(PG, MV_CR4_PAE, LM, 1ull << 62))              \
	X(MV_WALK_GP, mv_vcpu_set_reg(F.cpu, MV_REG_CR3, 1ull << 60))        \
	X(MV_WALK_GP, mv_vcpu_set_reg(F.cpu, MV_REG_CR3, MV_CR3_NOFLUSH))    \
	X(-MV_EINVAL, mv_vcpu_set_reg(NULL, MV_REG_CR3, 0))                   \
	X(-MV_EINVAL, mv_vcpu_set_reg(F.cpu, (enum mv_cpu_reg)99, 0))         \
	X(-MV_EINVAL, mv_vcpu_set_reg(F.cpu, MV_REG_PKRU, 1ull << 32))        \
	X(-MV_EINVAL, mv_vcpu_set_reg(F.cpu, MV_REG_CR4, MV_CR4_LA57 >> 12 << 40)) \
	X(-MV_EINVAL, mv_vcpu_get_regs(NULL, NULL))                           \
	X(-MV_EINVAL, mv_vcpu_get_regs(F.cpu, NULL))                          \
	X(-MV_EINVAL, mv_vcpu_invlpg(NULL, 0))                                \
	X(-MV_EINVAL, mv_vcpu_flush(NULL))                                    \
	X(-MV_EINVAL, mv_vcpu_invpcid(NULL, 0, 0, 0))                         \
	X(-MV_EINVAL, mv_vcpu_invpcid(F.cpu, 4, 0, 0))                        \
	X(-MV_EINVAL, mv_vcpu_invpcid(F.cpu, 0, 4096, 0))                     \
	X(-MV_EINVAL, mv_vcpu_translate(NULL, VA, 0, &XL))                     \
	X(-MV_EINVAL, mv_vcpu_translate(F.cpu, VA, 0, NULL))                  \
	X(-MV_EINVAL, mv_vcpu_translate(F.cpu, VA, MV_ACC_NO_AD, &XL))         \
	X(-MV_EINVAL, mv_vcpu_translate(F.cpu, VA, 1u << 9, &XL))              \
	X(-MV_EINVAL, mv_vcpu_read(NULL, VA, &word, 8, 0, NULL))              \
	X(-MV_EINVAL, mv_vcpu_read(F.cpu, VA, NULL, 8, 0, NULL))              \
	X(-MV_EINVAL, mv_vcpu_read(F.cpu, VA, &word, 8, MV_ACC_NO_AD, NULL))  \
	X(-MV_EINVAL, mv_vcpu_write(F.cpu, VA, NULL, 8, 0, NULL))             \
	X(-MV_EINVAL, mv_vcpu_write(NULL, VA, &word, 8, 0, NULL))             \
	X(-MV_EINVAL, mv_vcpu_fetch(F.cpu, VA, NULL, 1, 0, NULL))             \
	X(-MV_EINVAL, mv_vcpu_get_stats(NULL, NULL))                          \
	X(-MV_EINVAL, mv_vcpu_get_stats(F.cpu, NULL))                         \
	X(-MV_EINVAL, mv_mmu_get_stats(NULL, NULL))                           \
	X(-MV_EINVAL, mv_mmu_get_stats(F.vm, NULL))                           \
	X(-MV_ENOENT, mv_mmu_get_stats(bare_vm, &(struct mv_mmu_stats){ 0 })) \
	X(-MV_EINVAL, mv_mmu_zap_all(NULL, 0))                                \
	X(-MV_ENOENT, mv_mmu_zap_all(bare_vm, 0))                             \
	X(-MV_EINVAL, mv_mmu_reclaim_obsolete(NULL, 1, NULL))                 \
	X(-MV_EINVAL, mv_mmu_reclaim_obsolete(F.vm, 0, NULL))                 \
	X(-MV_ENOENT, mv_mmu_reclaim_obsolete(bare_vm, 1, NULL))

static int run_case(int i, const char **name, int *want)
{
	BADINPUT_RUN(i, name, want);
}

struct snapshot {
	struct mv_cpu_regs regs;
	struct mv_vcpu_stats vst;
	struct mv_mmu_stats mst;
	uint64_t data;
};

static void snap(struct snapshot *s)
{
	memset(s, 0, sizeof(*s));
	assert_int_equal(mv_vcpu_get_regs(F.cpu, &s->regs), 0);
	assert_int_equal(mv_vcpu_get_stats(F.cpu, &s->vst), 0);
	assert_int_equal(mv_mmu_get_stats(F.vm, &s->mst), 0);
	s->data = vf_get(&F, 0x5000);
}

static void bad_input_changes_nothing(void **state)
{
	struct mv_vm_range r = { .type = MV_PAGE_RAM, .gpa = 0,
				 .size = 1 << 20 };
	struct mv_vm_config vc = { .ranges = &r, .nranges = 1 };
	uint64_t cr3;
	int i, rc, want;

	(void)state;
	vf_init(&F, NULL, NULL);
	assert_int_equal(mv_vm_create(F.host, &vc, &bare_vm), 0);
	cr3 = vf_new_table(&F);
	vf_map4k(&F, cr3, VA, 0x5000, MV_PTE_P | MV_PTE_W | MV_PTE_U);
	vf_put(&F, 0x5000, 0x5a5a);
	vf_long_mode(&F, cr3);
	for (i = 0;; i++) {
		const char *name = "";
		struct snapshot before, after;

		snap(&before);
		rc = run_case(i, &name, &want);
		if (rc == BADINPUT_END)
			break;
		badinput_expect(name, rc, want);
		snap(&after);
		if (memcmp(&before.regs, &after.regs, sizeof(before.regs)) ||
		    before.data != after.data ||
		    before.mst.shadow_pages != after.mst.shadow_pages ||
		    before.mst.created != after.mst.created ||
		    before.vst.fills != after.vst.fills)
			fail_msg("%s changed the vCPU or the MMU", name);
	}
	assert_int_equal(i, BADINPUT_NCASES);
	mv_vm_destroy(bare_vm);
	vf_fini(&F);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bad_input_changes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
