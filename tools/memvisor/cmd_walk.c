/* memvisor walk: translate guest-virtual addresses through the page tables
 * in a raw guest RAM image, or list every mapped page (--dump), in the
 * format of QEMU's `info tlb`. The image is mapped read-only: walks never
 * set accessed/dirty bits in it. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <memvisor/mmu.h>

#include "cmd.h"
#include "walk.h"

static void usage(FILE *out)
{
	fprintf(out,
"usage: memvisor walk --image FILE [--base GPA] --cr3 HEX [--cr0 HEX]\n"
"                     [--cr4 HEX] [--efer HEX] [--mode auto|legacy|pae|long4|long5]\n"
"                     [--access r|w|x] [--user] [--shadow] VA...\n"
"       memvisor walk --image FILE ... [--lenient-pdpte] [--shadow] --dump\n"
"\n"
"Translate each VA through the guest page tables in FILE, a raw image of\n"
"guest RAM starting at guest-physical address GPA (default 0):\n"
"  <va> -> <gpa> <pagesize> <flags>     or  <va> fault <errcode>|gp\n"
"With --dump, list every mapped page in ascending VA order:\n"
"  <va>: <gpa> <pagesize> <flags>\n"
"flags are QEMU's `info tlb` letters XGPDACTUW ('-' when clear): X no-exec,\n"
"G global, P large page, D dirty, A accessed, C PCD, T PWT, U user,\n"
"W writable; X, U and W are the effective rights over all levels.\n"
"\n"
"  --cr0 HEX        default 0x80000011 (PG|ET|PE; WP clear)\n"
"  --cr4 HEX        default 0 (PAE, PSE, LA57, SMEP, SMAP, PKE decide)\n"
"  --efer HEX       default 0 (LME/LMA: long mode, NXE: no-execute)\n"
"  --mode M         auto (default): from CR0.PG, CR4.PAE, EFER.LMA/LME,\n"
"                   CR4.LA57; otherwise forces the mode's register bits\n"
"  --access r|w|x   the access to check (default r)\n"
"  --user           a user-mode (CPL 3) access (default supervisor)\n"
"  --rflags HEX     EFLAGS for SMAP's AC bit (default 0)\n"
"  --pkru HEX       protection-key rights (default 0)\n"
"  --maxphyaddr N   physical address width, 32..52 (default %d)\n"
"  --lenient-pdpte  PAE: load PDPTEs whose accessed bit (5) is set, as\n"
"                   QEMU's TCG leaves it; a CPU would #GP (bit 5 is\n"
"                   reserved). Off by default; no effect in other modes\n"
"  --shadow         answer from a vCPU's shadow MMU instead of the walker:\n"
"                   the image is loaded into a VM (pages of zeros stay\n"
"                   unallocated); each VA is translated twice (a shadow\n"
"                   fault, then the TLB or the shadow tables) and the\n"
"                   command fails if the answers differ; --dump faults\n"
"                   every leaf in and lists the shadow tables. G D A C T\n"
"                   come from the guest entry each shadow leaf stands for,\n"
"                   as in the image (the VM's copy gets the A/D updates)\n"
"Numbers are hexadecimal (0x optional) except N. The image is never\n"
"written: no accessed/dirty updates.\n"
"Exit status: 0 done (faults are results), 1 runtime error, 2 usage.\n",
		MV_MAXPHYADDR_DEFAULT);
}

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "memvisor walk: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(see 'memvisor walk --help')\n");
	return 2;
}

/* A whole hex number, with or without 0x, fitting 64 bits. */
static bool parse_hex(const char *s, uint64_t *v)
{
	return tool_parse_number(s, true, v) == 0;
}

enum { OPT_IMAGE = 256, OPT_BASE, OPT_CR0, OPT_CR3, OPT_CR4, OPT_EFER,
       OPT_MODE, OPT_ACCESS, OPT_USER, OPT_DUMP, OPT_RFLAGS, OPT_PKRU,
       OPT_MAXPHY, OPT_LENIENT_PDPTE, OPT_SHADOW, OPT_HELP };

static const struct option long_opts[] = {
	{ "image", required_argument, NULL, OPT_IMAGE },
	{ "base", required_argument, NULL, OPT_BASE },
	{ "cr0", required_argument, NULL, OPT_CR0 },
	{ "cr3", required_argument, NULL, OPT_CR3 },
	{ "cr4", required_argument, NULL, OPT_CR4 },
	{ "efer", required_argument, NULL, OPT_EFER },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "access", required_argument, NULL, OPT_ACCESS },
	{ "user", no_argument, NULL, OPT_USER },
	{ "dump", no_argument, NULL, OPT_DUMP },
	{ "rflags", required_argument, NULL, OPT_RFLAGS },
	{ "pkru", required_argument, NULL, OPT_PKRU },
	{ "maxphyaddr", required_argument, NULL, OPT_MAXPHY },
	{ "lenient-pdpte", no_argument, NULL, OPT_LENIENT_PDPTE },
	{ "shadow", no_argument, NULL, OPT_SHADOW },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

static uint64_t *hex_target(struct walk_opts *o, int opt)
{
	switch (opt) {
	case OPT_BASE:   return &o->base;
	case OPT_CR0:    return &o->regs.cr0;
	case OPT_CR3:    return &o->regs.cr3;
	case OPT_CR4:    return &o->regs.cr4;
	case OPT_EFER:   return &o->regs.efer;
	case OPT_RFLAGS: return &o->regs.rflags;
	case OPT_PKRU:   return &o->pkru;
	default:         return NULL;
	}
}

static int parse_access(struct walk_opts *o, const char *a)
{
	if (!strcmp(a, "r"))
		o->acc &= ~(MV_ACC_WRITE | MV_ACC_FETCH);
	else if (!strcmp(a, "w"))
		o->acc = (o->acc & ~MV_ACC_FETCH) | MV_ACC_WRITE;
	else if (!strcmp(a, "x"))
		o->acc = (o->acc & ~MV_ACC_WRITE) | MV_ACC_FETCH;
	else
		return bad_usage("--access: '%s' is not r, w or x", a);
	return 0;
}

static int parse_other(struct walk_opts *o, int opt, const char *arg)
{
	uint64_t n;

	switch (opt) {
	case OPT_IMAGE: o->image = arg; return 0;
	case OPT_MODE:  o->mode = arg; return 0;
	case OPT_USER:
		o->acc |= MV_ACC_USER;
		o->access_given = true;
		return 0;
	case OPT_DUMP:  o->dump = true; return 0;
	case OPT_LENIENT_PDPTE: o->lenient_pdpte = true; return 0;
	case OPT_SHADOW: o->shadow = true; return 0;
	case OPT_ACCESS:
		o->access_given = true;
		return parse_access(o, arg);
	case OPT_MAXPHY:
		if (tool_parse_number(arg, false, &n) || n < 32 || n > 52)
			return bad_usage("--maxphyaddr: '%s' is not 32..52",
					 arg);
		o->cpu.maxphyaddr = (uint8_t)n;
		return 0;
	default:
		return bad_usage("unknown option%s", "");
	}
}

static int parse_options(struct walk_opts *o, int argc, char **argv)
{
	int opt;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		uint64_t *t = hex_target(o, opt);
		int rc;

		if (opt == OPT_HELP) {
			usage(stdout);
			return tool_output_finish("walk") ? 1 : -1;
		}
		if (opt == '?')
			return bad_usage("bad option or missing value: '%s'",
					 argv[optind - 1]);
		if (t && !parse_hex(optarg, t))
			return bad_usage("'%s' is not a hex number", optarg);
		o->have_cr3 |= opt == OPT_CR3;
		rc = t ? 0 : parse_other(o, opt, optarg);
		if (rc)
			return rc;
	}
	if (!o->image)
		return bad_usage("--image FILE is required%s", "");
	if (!o->have_cr3)
		return bad_usage("--cr3 HEX is required%s", "");
	if (o->base & 0xfff)
		return bad_usage("--base: %s is not 4 KiB aligned", "GPA");
	if (o->pkru > UINT32_MAX)
		return bad_usage("--pkru: %s is wider than 32 bits", "value");
	o->regs.pkru = (uint32_t)o->pkru;
	if (o->dump != (optind == argc))
		return bad_usage("%s", o->dump ? "--dump takes no VA"
					       : "no VA given");
	if (o->dump && o->access_given)
		return bad_usage("%s", "--access and --user describe the access "
				 "of a single walk; --dump checks no access");
	return 0;
}

/* --mode other than auto: set the register bits that select the mode. */
static int force_mode(struct mv_cpu_regs *r, const char *mode)
{
	uint64_t lm = MV_EFER_LME | MV_EFER_LMA;

	if (!strcmp(mode, "auto"))
		return 0;
	r->cr0 |= MV_CR0_PG | MV_CR0_PE;
	if (!strcmp(mode, "legacy")) {
		r->cr4 &= ~MV_CR4_PAE;
		r->efer &= ~lm;
	} else if (!strcmp(mode, "pae")) {
		r->cr4 |= MV_CR4_PAE;
		r->efer &= ~lm;
	} else if (!strcmp(mode, "long4")) {
		r->cr4 = (r->cr4 | MV_CR4_PAE) & ~MV_CR4_LA57;
		r->efer |= lm;
	} else if (!strcmp(mode, "long5")) {
		r->cr4 |= MV_CR4_PAE | MV_CR4_LA57;
		r->efer |= lm;
	} else {
		return bad_usage("--mode: '%s' is not auto, legacy, pae, "
				 "long4 or long5", mode);
	}
	return 0;
}

/* The first table must lie in the image: otherwise the registers do not
 * belong to this image. */
static int check_root(const struct mv_paging *pg, const struct walk_opts *o,
		      const struct image *img)
{
	uint64_t need = pg->mode == MV_PAGING_PAE ? 32 : 4096;
	uint64_t root = pg->mode == MV_PAGING_PAE ? o->regs.cr3 & 0xffffffe0
						  : pg->root;

	if (pg->mode == MV_PAGING_OFF ||
	    (root >= o->base && root - o->base <= img->size &&
	     img->size - (root - o->base) >= need))
		return 0;
	fprintf(stderr, "memvisor walk: CR3 0x%llx: the top-level table (%llu "
		"bytes) is not inside the image [0x%llx, 0x%llx)\n",
		(unsigned long long)o->regs.cr3, (unsigned long long)need,
		(unsigned long long)o->base,
		(unsigned long long)(o->base + img->size));
	return 1;
}

/* --lenient-pdpte: the CR3 load reads the PDPT through this view, which
 * shows present PDPTEs with bit 5 clear. QEMU's TCG sets that bit in the
 * PDPTEs it used although SDM 4.4.1 reserves it; the walker stays
 * architectural and the image is not changed. Only the load reads through
 * the view: the PDPTEs are registers afterwards, walks read the image. */
struct pdpte_view {
	const struct mv_gmem *image;
	uint64_t pdpt;
};

static int pdpte_view_read(void *opaque, uint64_t gpa, unsigned size,
			   uint64_t *val)
{
	const struct pdpte_view *v = opaque;
	int rc = v->image->read(v->image->opaque, gpa, size, val);

	if (rc == MV_GMEM_OK && gpa - v->pdpt < 32 && (*val & MV_PTE_P))
		*val &= ~MV_PTE_A;
	return rc;
}

static int init_paging(struct mv_paging *pg, const struct walk_opts *o,
		       const struct mv_gmem *gm, bool lenient)
{
	struct pdpte_view view = { gm, o->regs.cr3 & 0xffffffe0 };
	struct mv_gmem viewed = { .read = pdpte_view_read, .opaque = &view };

	return mv_paging_init(pg, &o->regs, &o->cpu, lenient ? &viewed : gm);
}

static const char *gp_reason(const struct mv_paging *pg,
			     const struct walk_opts *o,
			     const struct mv_gmem *gm)
{
	struct mv_paging lenient;

	if (pg->mode != MV_PAGING_PAE)
		return "CR3 has bits above MAXPHYADDR";
	if (!o->lenient_pdpte &&
	    init_paging(&lenient, o, gm, true) == MV_WALK_OK)
		return "a present PDPTE has the accessed bit (5) set, which "
		       "SDM 4.4.1 reserves; QEMU's TCG leaves it there: "
		       "--lenient-pdpte accepts it";
	return "a present PDPTE has reserved bits set";
}

static int setup_paging(struct mv_paging *pg, const struct walk_opts *o,
			const struct mv_gmem *gm, const struct image *img)
{
	int rc = init_paging(pg, o, gm, o->lenient_pdpte);

	if (rc == -MV_EINVAL) {
		fprintf(stderr, "memvisor walk: no CPU can hold these "
			"registers (CR0.PG without PE, long mode without "
			"CR4.PAE, EFER.LMA without PG)\n");
		return 2;
	}
	if (rc == MV_WALK_OK || rc == MV_WALK_NOT_RAM)
		return check_root(pg, o, img);  /* NOT_RAM: PDPT outside */
	fprintf(stderr, "memvisor walk: loading CR3 0x%llx would #GP: %s\n",
		(unsigned long long)o->regs.cr3, gp_reason(pg, o, gm));
	return 1;
}

/* Output, formatted by hand: a dump of a large guest prints millions. */
static char *put_hex16(char *p, uint64_t v)
{
	static const char digits[] = "0123456789abcdef";

	*p++ = '0';
	*p++ = 'x';
	for (int i = 15; i >= 0; i--)
		*p++ = digits[(v >> (4 * i)) & 15];
	return p;
}

static char *put_page(char *p, uint64_t gpa, uint64_t size, uint64_t leaf,
		      unsigned perm)
{
	const char *sz = size == 4096 ? "4K" : size == (2u << 20) ? "2M"
		       : size == (4u << 20) ? "4M" : "1G";

	p = put_hex16(p, gpa);
	*p++ = ' ';
	*p++ = sz[0];
	*p++ = sz[1];
	*p++ = ' ';
	*p++ = (perm & MV_PERM_NX) ? 'X' : '-';
	*p++ = (leaf & MV_PTE_G) ? 'G' : '-';
	*p++ = size > 4096 ? 'P' : '-';
	*p++ = (leaf & MV_PTE_D) ? 'D' : '-';
	*p++ = (leaf & MV_PTE_A) ? 'A' : '-';
	*p++ = (leaf & MV_PTE_PCD) ? 'C' : '-';
	*p++ = (leaf & MV_PTE_PWT) ? 'T' : '-';
	*p++ = (perm & MV_PERM_U) ? 'U' : '-';
	*p++ = (perm & MV_PERM_W) ? 'W' : '-';
	*p++ = '\n';
	return p;
}

int walk_print_leaf(void *opaque, const struct mv_walk_leaf *l)
{
	char line[64], *p = put_hex16(line, l->va);

	(void)opaque;
	*p++ = ':';
	*p++ = ' ';
	p = put_page(p, l->gpa, l->page_size, l->leaf, l->perm);
	fwrite(line, 1, (size_t)(p - line), stdout);
	return tool_output_failed() ? -MV_EIO : 0;  /* stop a long dump */
}

void walk_print(const struct mv_paging *pg, uint64_t va,
		const struct mv_walk *w)
{
	char line[96], *p = put_hex16(line, mv_paging_canonical(pg, va));

	if (w->status == MV_WALK_GP) {
		printf("0x%016llx fault gp\n", (unsigned long long)va);
		return;
	}
	if (w->status != MV_WALK_OK) {
		fwrite(line, 1, (size_t)(p - line), stdout);
		printf(" fault 0x%x\n", w->error_code);
		if (w->status == MV_WALK_NOT_RAM)
			fprintf(stderr, "memvisor walk: 0x%016llx: the table "
				"entry at 0x%llx is outside the image (a "
				"not-present fault)\n",
				(unsigned long long)va, (unsigned long long)
				w->entry_gpa[w->nr_entries - 1]);
		return;
	}
	memcpy(p, " -> ", 4);
	p = put_page(p + 4, w->gpa, w->page_size, w->leaf, w->perm);
	fwrite(line, 1, (size_t)(p - line), stdout);
}

/* Every VA parsed before anything is printed: a bad one is a usage error
 * (exit 2) with no output. */
static int parse_vas(const struct mv_paging *pg, int argc, char **argv,
		     uint64_t *vas)
{
	for (int i = 0; i < argc; i++) {
		if (!parse_hex(argv[i], &vas[i]))
			return bad_usage("VA '%s' is not a hex number",
					 argv[i]);
		if (pg->mode < MV_PAGING_LONG4 && vas[i] > UINT32_MAX)
			return bad_usage("VA %s is beyond the 32-bit linear "
					 "address space", argv[i]);
	}
	return 0;
}

static int walk_vas(const struct walk_opts *o, const struct image *img,
		    const struct mv_paging *pg, const struct mv_gmem *gm,
		    int argc, char **argv)
{
	uint64_t *vas = calloc((size_t)argc, sizeof(*vas));
	int rc;

	if (!vas) {
		fprintf(stderr, "memvisor walk: %s\n", mv_strerror(-MV_ENOMEM));
		return 1;
	}
	rc = parse_vas(pg, argc, argv, vas);
	if (!rc && o->shadow)
		rc = walk_shadow_vas(o, img, pg, gm, vas, argc);
	for (int i = 0; !rc && !o->shadow && i < argc; i++) {
		struct mv_walk w;

		mv_walk(pg, gm, vas[i], o->acc | MV_ACC_NO_AD, &w);
		walk_print(pg, vas[i], &w);
		if (tool_output_failed())
			rc = 1;  /* tool_output_finish says why */
	}
	free(vas);
	return rc;
}

static int run(const struct walk_opts *o, const struct image *img, int argc,
	       char **argv)
{
	struct mv_gmem gm;
	struct mv_gmem_flat flat;
	struct mv_paging pg;
	int rc;

	if (mv_gmem_flat_init(&gm, &flat, img->mem, o->base, img->size,
			      false)) {
		fprintf(stderr, "memvisor walk: the image at --base 0x%llx "
			"would end beyond 2^64\n", (unsigned long long)o->base);
		return 1;
	}
	rc = setup_paging(&pg, o, &gm, img);
	if (rc)
		return rc;
	if (!o->dump)
		return walk_vas(o, img, &pg, &gm, argc, argv);
	if (o->shadow && pg.mode != MV_PAGING_OFF)
		return walk_shadow_dump(o, img, &pg, &gm);
	rc = mv_walk_dump(&pg, &gm, walk_print_leaf, NULL);
	if (rc == -MV_EIO && tool_output_failed())
		return 1;  /* tool_output_finish says why */
	if (rc < 0) {
		fprintf(stderr, "memvisor walk: --dump: %s\n",
			rc == -MV_ESTATE ? "paging is off (CR0.PG = 0): "
					   "every address maps to itself"
					 : mv_strerror(rc));
		return 1;
	}
	return 0;
}

static int walk_main(int argc, char **argv)
{
	static char outbuf[1 << 16];
	struct walk_opts o = { .mode = "auto" };
	struct image img;
	int rc;

	o.regs.cr0 = MV_CR0_PG | MV_CR0_PE | (1u << 4);
	rc = parse_options(&o, argc, argv);
	if (rc)
		return rc < 0 ? 0 : rc;
	rc = force_mode(&o.regs, o.mode);
	if (rc)
		return rc;
	if (image_map("walk", o.image, &img))
		return 1;
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));
	image_catch_sigbus("walk");
	rc = run(&o, &img, argc - optind, argv + optind);
	image_unmap(&img);
	if (tool_output_finish("walk"))
		return 1;
	return rc;
}

const struct mv_cmd mv_cmd_walk = {
	.name = "walk",
	.summary = "translate guest-virtual addresses in a RAM image",
	.main = walk_main,
};
