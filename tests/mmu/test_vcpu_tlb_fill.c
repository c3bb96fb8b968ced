/* What a TLB fill leaves for the inline lookup (mv_tlb_lookup), for every
 * combination of CR4.SMAP, CR4.SMEP, EFLAGS.AC, the page's U/S bit and
 * the class of the access (user, explicit supervisor, implicit
 * supervisor): a write that the SDM's rules allow fills an entry whose
 * read and write tags hit in the access's class, and whose fetch tag hits
 * exactly when a fetch in that class is allowed; a write they refuse
 * faults and leaves no entry. The fill applies the rules with the class's
 * own switches, not the whole paging context's copy, so a switch it loses
 * shows up here as a tag that hits where the walk would fault. */
#include "vcpu_fixture.h"

#define VA_U 0x00007f0000000000ull      /* user page */
#define VA_S 0x00007f0000001000ull      /* supervisor page */
#define GPA 0x200000ull

static bool data_allowed(bool smap, bool ac, bool upage, unsigned acc)
{
	if ((acc & (MV_ACC_USER | MV_ACC_IMPLICIT)) == MV_ACC_USER)
		return upage;
	if (!upage || !smap)
		return true;
	return !(acc & MV_ACC_IMPLICIT) && ac;   /* SMAP: AC lifts it */
}

static bool fetch_allowed(bool smep, bool upage, unsigned acc)
{
	if ((acc & (MV_ACC_USER | MV_ACC_IMPLICIT)) == MV_ACC_USER)
		return upage;
	return !(upage && smep);
}

static void check_tag(struct mv_tlb *t, uint64_t va, unsigned acc,
		      unsigned kind, bool want, unsigned m)
{
	void *hit = mv_tlb_lookup(t, va, mv_tlb_class(t, acc), kind);

	if ((hit != NULL) != want)
		fail_msg("SMAP %u SMEP %u AC %u U/S %u, acc %#x: the %s tag "
			 "%s, the rules say %s", m & 1, (m >> 1) & 1,
			 (m >> 2) & 1, (m >> 3) & 1, acc,
			 kind == MV_TLB_READ ? "read" :
			 kind == MV_TLB_WRITE ? "write" : "fetch",
			 hit ? "hits" : "misses", want ? "allowed" : "refused");
}

static void one(unsigned m, unsigned acc)
{
	bool smap = m & 1, smep = m & 2, ac = m & 4, upage = m & 8;
	struct vf f;
	uint64_t cr3, va = upage ? VA_U : VA_S, val = 7;
	bool ok = data_allowed(smap, ac, upage, acc);
	int rc;

	cr3 = vf_setup(&f);
	vf_map4k(&f, cr3, VA_U, GPA, MV_PTE_P | MV_PTE_W | MV_PTE_U);
	vf_map4k(&f, cr3, VA_S, GPA + 4096, MV_PTE_P | MV_PTE_W);
	struct mv_cpu_regs r = vf_long_regs(cr3);

	r.cr4 |= (smap ? MV_CR4_SMAP : 0) | (smep ? MV_CR4_SMEP : 0);
	r.rflags = ac ? MV_RFLAGS_AC : 0;

	assert_int_equal(mv_vcpu_set_regs(f.cpu, &r), 0);
	rc = mv_vcpu_write(f.cpu, va, &val, 8, acc, NULL);
	if (ok != (rc == MV_VCPU_OK))
		fail_msg("SMAP %d SMEP %d AC %d U/S %d, acc %#x: write returned "
			 "%d, the rules say %s", smap, smep, ac, upage, acc, rc,
			 ok ? "allowed" : "refused");
	struct mv_tlb *t = mv_vcpu_tlb(f.cpu);

	check_tag(t, va, acc, MV_TLB_READ, ok, m);
	check_tag(t, va, acc, MV_TLB_WRITE, ok, m);
	check_tag(t, va, acc, MV_TLB_FETCH, ok && fetch_allowed(smep, upage,
								 acc), m);
	mv_vcpu_exit(f.cpu);
	vf_fini(&f);
}

static void tags_follow_the_rules(void **state)
{
	static const unsigned accs[] = { MV_ACC_USER, 0, MV_ACC_IMPLICIT };

	(void)state;
	for (unsigned m = 0; m < 16; m++)
		for (unsigned a = 0; a < 3; a++)
			one(m, accs[a]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(tags_follow_the_rules),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
