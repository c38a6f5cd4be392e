// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The backend contract (include/iovaq/backend.h): one suite that every backend configuration
 * must pass. Every test is a Criterion parameterized test over ct_configs[]:
 *
 *  - map then device access lands in the right bytes, both ways, across granule, 2 MiB and
 *    mapping boundaries; permissions are enforced (-EFAULT, fault reason PERM);
 *  - unmap then flush (page-selective, domain, global) then device access faults (NOT_MAPPED);
 *  - unmap covers whole earlier maps only (-EINVAL splitting, -ENOENT nothing there); map never
 *    replaces (-EEXIST); bad arguments and bad command lists fail with -EINVAL;
 *  - every failing call changes nothing: the backend's observable state (for sim: every
 *    counter) is the same, every live mapping still reads its host bytes without a stale hit,
 *    every unmapped and flushed range still faults; a rejected command list executes nothing
 *    (a stale translation it would have removed still serves the device).
 *
 * Adding a backend is one line in ct_configs[]. A backend that is not built here (open returns
 * -EOPNOTSUPP) makes its tests skip with iovaq_backend_why(); when every test skipped, the
 * executable exits 77 (ctest: skipped). The "device" that
 * issues DMA is an indirection (struct ct_device_ops): sim has iovaq_sim_dma(); a real backend
 * plugs its own device later, or none, in which case the device checks of a test skip.
 *
 * IOVAQ_CONTRACT=label[,label...] selects configurations by label or backend name (default:
 * all); a selection that matches none is an error. Opening backends by name and environment
 * is tested in tests/unit/test_backend.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/parameterized.h>
#include <criterion/hooks.h>
#include <criterion/options.h>

#include "testutil.h"
#include "simutil.h"

#define G TU_G
#define MiB TU_MiB
#define GiB TU_GiB

/* ---- configurations ------------------------------------------------------------------- */

struct ct;

#define CT_STATE_MAX 48

/* A snapshot of what a backend lets the tests observe, compared after failing calls. */
struct ct_state {
	size_t n;
	const char *name[CT_STATE_MAX];
	uint64_t v[CT_STATE_MAX];
};

/*
 * struct ct_device_ops - a device that can access IOVAs through the backend.
 * @what: a name for messages.
 * @attach: find or create the device for the open backend t->be; 0 or a negative errno.
 * @detach: release it.
 * @dma: read (@write 0) or write @len bytes at @iova; 0 or -EFAULT. *@stale receives the
 *	granules served by translations that survived an unmap, or -1 if the device cannot tell.
 * @state: optional; fill a snapshot of the backend's observable state.
 * @prepare: optional; called before the backend opens: set up the device and return the
 *	backend options to open with in *@opts; 0, or a negative errno with a reason in @why
 *	(the test then skips: the device is not there).
 * @slow: each access costs milliseconds (a real device): the checks sample mappings.
 * @wo_readable: the device may read a mapping made with IOVAQ_PROT_WRITE only (observed with
 *	QEMU's VT-d under Linux 6.12, through iommufd and VFIO type1); the permission test then
 *	checks the write side only.
 */
struct ct_device_ops {
	const char *what;
	int (*prepare)(struct ct *t, const void **opts, char *why, size_t why_len);
	int slow;
	int wo_readable;
	int (*attach)(struct ct *t);
	void (*detach)(struct ct *t);
	int (*dma)(struct ct *t, iovaq_iova_t iova, void *buf, size_t len, int write,
		   int64_t *stale);
	void (*state)(struct ct *t, struct ct_state *st);
};

/*
 * struct ct_config - one backend configuration.
 * @label: unique name, shown in messages and matched by IOVAQ_CONTRACT.
 * @backend: the name passed to iovaq_backend_open().
 * @backend_opts: the backend's own options, or NULL.
 * @dev: the device used for DMA checks, or NULL (they skip).
 */
struct ct_config {
	const char *label;
	const char *backend;
	const void *backend_opts;
	const struct ct_device_ops *dev;
};

/* sim: the device is iovaq_sim_dma(); the state is every counter. */
static int ct_sim_attach(struct ct *t);
static int ct_sim_dma(struct ct *t, iovaq_iova_t iova, void *buf, size_t len, int write,
		      int64_t *stale);
static void ct_sim_state(struct ct *t, struct ct_state *st);

static const struct ct_device_ops ct_sim_device = {
	.what = "iovaq_sim_dma",
	.attach = ct_sim_attach,
	.dma = ct_sim_dma,
	.state = ct_sim_state,
};

static const struct iovaq_sim_opts ct_sim_default = {
	.sz = sizeof(struct iovaq_sim_opts),
};
static const struct iovaq_sim_opts ct_sim_large = {
	.sz = sizeof(struct iovaq_sim_opts),
	.flags = IOVAQ_SIM_LARGE_PAGES,
};
static const struct iovaq_sim_opts ct_sim_nested_cm = {
	.sz = sizeof(struct iovaq_sim_opts),
	.flags = IOVAQ_SIM_NESTED | IOVAQ_SIM_CACHING_MODE,
};

/* QEMU's edu device through VFIO (ct_edu.h, included below struct ct). */
static const struct ct_device_ops ct_edu_iommufd_device;
static const struct ct_device_ops ct_edu_type1_device;
static const struct ct_device_ops ct_edu_kshim_device;

static const struct ct_config ct_configs[] = {
	{ "sim", "sim", &ct_sim_default, &ct_sim_device },
	{ "sim-large-pages", "sim", &ct_sim_large, &ct_sim_device },
	{ "sim-nested-caching-mode", "sim", &ct_sim_nested_cm, &ct_sim_device },
	/* QEMU's edu device behind emulated VT-d: the VM tier (tests/vm/) runs these. */
	{ "iommufd", "iommufd", NULL, &ct_edu_iommufd_device },
	{ "vfio-type1", "vfio-type1", NULL, &ct_edu_type1_device },
	/* The same edu with no driver, bound to /dev/iovaq: tests/vm/kglue/ runs it. */
	{ "kshim", "kshim", NULL, &ct_edu_kshim_device },
};

#define CT_NCONFIGS (sizeof(ct_configs) / sizeof(ct_configs[0]))

/* ---- per-test state -------------------------------------------------------------------- */

/* Mapped; unmapped, not flushed; flushed; its range mapped again (no longer checked). */
enum { CT_LIVE = 1, CT_UNMAPPED, CT_GONE, CT_REUSED };

struct ct_map {
	iovaq_iova_t iova;
	uint8_t *host;
	size_t len;
	unsigned int prot;
	int state;
};

#define CT_MAX_MAPS 64

struct ct {
	const struct ct_config *cfg;
	const char *label;
	struct iovaq_backend *be;
	struct iovaq_backend_caps caps;
	uint64_t g;
	iovaq_iova_t base; /* 1 GiB-aligned, with 4 GiB of aperture above it */
	const struct ct_device_ops *dev;
	void *dev_ctx;
	struct ct_map maps[CT_MAX_MAPS];
	int n_maps;
	uint8_t *spare[CT_MAX_MAPS]; /* host buffers of failed maps */
	int n_spare;
};

#include "ct_edu.h"

static int ct_sim_attach(struct ct *t)
{
	t->dev_ctx = iovaq_sim_of(t->be);
	return t->dev_ctx ? 0 : -ENODEV;
}

static int ct_sim_dma(struct ct *t, iovaq_iova_t iova, void *buf, size_t len, int write,
		      int64_t *stale)
{
	struct iovaq_sim_access r;
	int err;

	memset(&r, 0, sizeof(r));
	err = iovaq_sim_dma(t->dev_ctx, iova, buf, len, write, &r);
	*stale = (int64_t)r.stale_pages;
	return err;
}

static void ct_sim_state(struct ct *t, struct ct_state *st)
{
	struct iovaq_sim_counters c = tu_counters(t->dev_ctx);
	size_t n = sizeof(tu_counter_fields) / sizeof(tu_counter_fields[0]);

	cr_assert_leq(n, CT_STATE_MAX);
	st->n = n;
	for (size_t i = 0; i < n; i++) {
		st->name[i] = tu_counter_fields[i].name;
		st->v[i] = tu_cf(&c, i);
	}
}

/* Open configuration @idx; skips the test if the backend is not built here. */
static void ct_open(struct ct *t, int idx)
{
	const struct ct_config *cfg = &ct_configs[idx];
	IOVAQ_OPTS(iovaq_backend_opts, o, .name = cfg->backend, .backend_opts = cfg->backend_opts);
	int err;

	memset(t, 0, sizeof(*t));
	t->cfg = cfg;
	t->label = cfg->label;
	if (cfg->dev && cfg->dev->prepare) {
		char why[256] = "";

		err = cfg->dev->prepare(t, &o.backend_opts, why, sizeof(why));
		if (err == -EOPNOTSUPP || err == -ENODEV || err == -ENOENT)
			cr_skip_test("[%s] device %s not available: %s", cfg->label,
				     cfg->dev->what, why);
		cr_assert_eq(err, 0, "[%s] prepare device %s: %d: %s", cfg->label, cfg->dev->what,
			     err, why);
		t->dev = cfg->dev; /* detach releases what prepare set up, whatever happens */
	}
	err = iovaq_backend_open(&o, &t->be);
	if (err == -EOPNOTSUPP) {
		if (t->dev && t->dev->detach)
			t->dev->detach(t);
		cr_skip_test("[%s] backend \"%s\" not available: %s", cfg->label, cfg->backend,
			     iovaq_backend_why());
	}
	cr_assert_eq(err, 0, "[%s] open: %d (%s): %s", cfg->label, err, iovaq_strerror(err),
		     iovaq_backend_why());
	t->caps.sz = sizeof(t->caps);
	err = iovaq_backend_get_caps(t->be, &t->caps);
	cr_assert_eq(err, 0, "[%s] get_caps: %d", cfg->label, err);
	t->g = t->caps.granule;
	cr_assert(t->caps.n_apertures >= 1, "[%s] no aperture", t->label);

	/* A 1 GiB-aligned base with 4 GiB of room, in the first aperture that has it. */
	for (uint32_t i = 0; i < t->caps.n_apertures && !t->base; i++) {
		const struct iovaq_range *ap = &t->caps.apertures[i];
		iovaq_iova_t b = (ap->start + GiB - 1) & ~(GiB - 1);

		if (b >= ap->start && b <= ap->last && ap->last - b >= 4 * GiB - 1 && b)
			t->base = b;
	}
	cr_assert_neq(t->base, 0, "[%s] no aperture with 4 GiB of room", t->label);

	if (cfg->dev) {
		err = cfg->dev->attach(t);
		cr_assert_eq(err, 0, "[%s] attach device %s: %d", t->label, cfg->dev->what, err);
		t->dev = cfg->dev;
	}
}

static void ct_close(struct ct *t)
{
	/* The backend first: an adopted IOAS or container must still be there when it unmaps. */
	iovaq_backend_close(t->be);
	if (t->dev && t->dev->detach)
		t->dev->detach(t);
	for (int i = 0; i < t->n_maps; i++)
		free(t->maps[i].host);
	for (int i = 0; i < t->n_spare; i++)
		free(t->spare[i]);
}

/* Tests that are all about device access skip without a device. */
static void ct_need_device(struct ct *t)
{
	if (!t->dev)
		cr_skip_test("[%s] no device to issue DMA with for this backend", t->label);
}

static int ct_dma(struct ct *t, iovaq_iova_t iova, void *buf, size_t len, int write, int64_t *stale)
{
	int64_t s = -1;
	int err = t->dev->dma(t, iova, buf, len, write, &s);

	cr_assert(err == 0 || err == -EFAULT, "[%s] device %s 0x%" PRIx64 "+%zu: %d (%s)", t->label,
		  write ? "write" : "read", iova, len, err, iovaq_strerror(err));
	if (stale)
		*stale = s;
	return err;
}

/* A host buffer for a mapping of @len bytes (2 MiB-aligned from 2 MiB on: large leaves). */
static uint8_t *ct_host(size_t len, uint64_t seed)
{
	return tu_host(len, len >= 2 * MiB ? 2 * MiB : G, seed);
}

/* Map @len bytes at @iova to a fresh buffer filled with pattern @seed; must succeed. */
static struct ct_map *ct_map(struct ct *t, iovaq_iova_t iova, size_t len, unsigned int prot,
			     uint64_t seed)
{
	struct ct_map *m;
	int err;

	cr_assert_lt(t->n_maps, CT_MAX_MAPS);
	m = &t->maps[t->n_maps];
	m->host = ct_host(len, seed);
	err = iovaq_backend_map(t->be, iova, m->host, len, prot);
	cr_assert_eq(err, 0, "[%s] map 0x%" PRIx64 "+0x%zx prot %u: %d (%s)", t->label, iova, len,
		     prot, err, iovaq_strerror(err));
	for (int i = 0; i < t->n_maps; i++)
		if (t->maps[i].iova < iova + len && iova < t->maps[i].iova + t->maps[i].len)
			t->maps[i].state = CT_REUSED;
	m->iova = iova;
	m->len = len;
	m->prot = prot;
	m->state = CT_LIVE;
	t->n_maps++;
	return m;
}

/* A host buffer for a map that is expected to fail. */
static uint8_t *ct_spare(struct ct *t, size_t len, uint64_t seed)
{
	cr_assert_lt(t->n_spare, CT_MAX_MAPS);
	return t->spare[t->n_spare++] = ct_host(len, seed);
}

/*
 * Unmap [iova, iova + len), which must succeed (0, or IOVAQ_UNMAP_FREED_TABLES); mappings
 * inside become CT_UNMAPPED. Returns what unmap returned.
 */
static int ct_unmap(struct ct *t, iovaq_iova_t iova, size_t len)
{
	int err = iovaq_backend_unmap(t->be, iova, len);

	cr_assert(err == 0 || err == IOVAQ_UNMAP_FREED_TABLES,
		  "[%s] unmap 0x%" PRIx64 "+0x%zx: %d (%s)", t->label, iova, len, err,
		  iovaq_strerror(err));
	for (int i = 0; i < t->n_maps; i++) {
		struct ct_map *m = &t->maps[i];

		if (m->state == CT_LIVE && m->iova >= iova && m->iova + m->len <= iova + len)
			m->state = CT_UNMAPPED;
		else if (m->state == CT_LIVE)
			cr_assert(m->iova + m->len <= iova || m->iova >= iova + len,
				  "[%s] test bug: unmap splits a mapping", t->label);
	}
	return err;
}

/* Execute @cmds, which must succeed; unmapped mappings they cover become CT_GONE. */
static void ct_flush(struct ct *t, const struct iovaq_inval *cmds, size_t n)
{
	int err = iovaq_backend_flush(t->be, cmds, n);

	cr_assert_eq(err, 0, "[%s] flush of %zu commands: %d (%s)", t->label, n, err,
		     iovaq_strerror(err));
	for (size_t k = 0; k < n; k++) {
		iovaq_iova_t f = 0, l = UINT64_MAX;

		if (cmds[k].kind == IOVAQ_INVAL_PAGES) {
			f = cmds[k].iova;
			l = f + (t->g << cmds[k].am) - 1;
		} else if (cmds[k].kind == IOVAQ_INVAL_RANGE) {
			f = cmds[k].iova;
			l = cmds[k].last;
		}
		for (int i = 0; i < t->n_maps; i++) {
			struct ct_map *m = &t->maps[i];

			if (m->state == CT_UNMAPPED && m->iova >= f && m->iova + m->len - 1 <= l)
				m->state = CT_GONE;
		}
	}
}

/* One non-leaf page-selective command covering [iova, iova + len). */
static void ct_flush_range(struct ct *t, iovaq_iova_t iova, size_t len)
{
	iovaq_iova_t start;
	unsigned int am = tu_am_for(iova, len, &start);
	struct iovaq_inval c = tu_inval_pages(start, am, 0);

	cr_assert_leq(am, t->caps.max_am, "[%s] test bug: range needs am %u", t->label, am);
	ct_flush(t, &c, 1);
}

static void ct_flush_domain(struct ct *t)
{
	struct iovaq_inval c = tu_inval_kind(IOVAQ_INVAL_DOMAIN);

	ct_flush(t, &c, 1);
}

/*
 * The fault log (if the backend has one) must hold exactly one entry: at @iova (the byte, or
 * its granule: hardware reports pages), with @reason and @write.
 */
static void ct_expect_fault(struct ct *t, iovaq_iova_t iova, uint32_t reason, int write)
{
	struct iovaq_fault f[8];
	int n;

	if (!(t->caps.flags & IOVAQ_CAP_FAULTS))
		return;
	n = iovaq_backend_faults(t->be, f, 8);
	cr_assert_eq(n, 1, "[%s] expected 1 fault-log entry for 0x%" PRIx64 " (reason %u), got %d",
		     t->label, iova, reason, n);
	cr_assert(f[0].iova == iova || f[0].iova == (iova & ~(t->g - 1)),
		  "[%s] fault at 0x%" PRIx64 ", expected 0x%" PRIx64, t->label, f[0].iova, iova);
	cr_assert_eq(f[0].reason, reason, "[%s] fault reason %u at 0x%" PRIx64 ", expected %u",
		     t->label, f[0].reason, iova, reason);
	cr_assert_eq(f[0].write, write ? 1u : 0u, "[%s] fault write flag %u, expected %d", t->label,
		     f[0].write, write ? 1 : 0);
}

/* A device access of a few bytes at @iova must fault with @reason. */
static void ct_expect_dma_fault(struct ct *t, iovaq_iova_t iova, int write, uint32_t reason)
{
	uint8_t b[8];
	int err;

	memset(b, 0x3c, sizeof(b));
	err = ct_dma(t, iova, b, sizeof(b), write, NULL);
	cr_assert_eq(err, -EFAULT, "[%s] device %s of 0x%" PRIx64 " returned %d, expected -EFAULT",
		     t->label, write ? "write" : "read", iova, err);
	ct_expect_fault(t, iova, reason, write);
}

/* Device read of [iova, iova + len) must succeed, without stale hits, and equal @expect. */
static void ct_expect_read(struct ct *t, iovaq_iova_t iova, const uint8_t *expect, size_t len)
{
	uint8_t *buf = malloc(len);
	int64_t stale;
	int err;

	cr_assert_not_null(buf);
	memset(buf, 0xe7, len);
	err = ct_dma(t, iova, buf, len, 0, &stale);
	cr_assert_eq(err, 0, "[%s] device read 0x%" PRIx64 "+%zu: %d", t->label, iova, len, err);
	cr_assert(stale <= 0, "[%s] device read 0x%" PRIx64 ": %" PRId64 " stale granules",
		  t->label, iova, stale);
	for (size_t i = 0; i < len; i++)
		cr_assert_eq(buf[i], expect[i],
			     "[%s] device read 0x%" PRIx64 ": byte %zu is 0x%02x, expected 0x%02x",
			     t->label, iova, i, buf[i], expect[i]);
	free(buf);
}

/* Read a window of a mapping through the device and compare with its host buffer. */
static void ct_check_window(struct ct *t, const struct ct_map *m, size_t off, size_t len)
{
	if (off >= m->len)
		return;
	if (len > m->len - off)
		len = m->len - off;
	ct_expect_read(t, m->iova + off, m->host + off, len);
}

/*
 * The state every test keeps: live readable mappings read their host bytes (whole, or
 * windows at both ends and around every 2 MiB boundary when large), unmapped-and-flushed
 * mappings fault.
 */
static void ct_check_all(struct ct *t)
{
	if (!t->dev)
		return;
	for (int i = 0; i < t->n_maps; i++) {
		const struct ct_map *m = &t->maps[i];

		if (m->state == CT_LIVE && (m->prot & IOVAQ_PROT_READ)) {
			if (t->dev->slow) { /* both ends */
				ct_check_window(t, m, 0, 16);
				ct_check_window(t, m, m->len - 16, 16);
				continue;
			}
			if (m->len <= 64 * 1024) {
				ct_check_window(t, m, 0, m->len);
				continue;
			}
			ct_check_window(t, m, 0, 2 * G);
			ct_check_window(t, m, m->len - 2 * G, 2 * G);
			for (size_t off = 2 * MiB; off < m->len; off += 2 * MiB)
				ct_check_window(t, m, off - G, 2 * G);
		} else if (m->state == CT_GONE) {
			ct_expect_dma_fault(t, m->iova, 0, IOVAQ_FAULT_NOT_MAPPED);
		}
	}
}

static void ct_state(struct ct *t, struct ct_state *st)
{
	memset(st, 0, sizeof(*st));
	if (t->dev && t->dev->state)
		t->dev->state(t, st);
}

static void ct_state_same(struct ct *t, const struct ct_state *a, const struct ct_state *b,
			  const char *what, int line)
{
	for (size_t i = 0; i < a->n; i++)
		cr_assert_eq(a->v[i], b->v[i],
			     "[%s] line %d: %s changed %s: %" PRIu64 " -> %" PRIu64, t->label, line,
			     what, a->name[i], a->v[i], b->v[i]);
}

/*
 * EXPECT_CT(t, expr, err): @expr must return @err and change nothing: the backend's state is
 * the same, and every mapping reads and faults as before.
 */
#define EXPECT_CT(t, expr, err)                                                         \
	do {                                                                            \
		struct ct_state before_, after_;                                        \
		ct_state(t, &before_);                                                  \
		int got_ = (expr);                                                      \
		cr_assert_eq(got_, (err), "[%s] %s returned %d (%s), expected %d (%s)", \
			     (t)->label, #expr, got_, iovaq_strerror(got_), (err),      \
			     iovaq_strerror(err));                                      \
		ct_state(t, &after_);                                                   \
		ct_state_same(t, &before_, &after_, #expr, __LINE__);                   \
		ct_check_all(t);                                                        \
	} while (0)

/* ---- parameters ------------------------------------------------------------------------ */

struct ct_param {
	int idx;
};

static int ct_selected(const struct ct_config *c)
{
	const char *sel = getenv("IOVAQ_CONTRACT");
	char buf[256], *tok, *save = NULL;

	if (!sel || !*sel)
		return 1;
	snprintf(buf, sizeof(buf), "%s", sel);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (!strcmp(tok, c->label) || !strcmp(tok, c->backend))
			return 1;
	return 0;
}

static void ct_params_free(struct criterion_test_params *crp)
{
	cr_free(crp->params);
}

static struct criterion_test_params ct_params(void)
{
	struct ct_param *p = cr_malloc(sizeof(*p) * CT_NCONFIGS);
	size_t n = 0;

	for (size_t i = 0; i < CT_NCONFIGS; i++)
		if (ct_selected(&ct_configs[i]))
			p[n++].idx = (int)i;
	return cr_make_param_array(struct ct_param, p, n, ct_params_free);
}

/* CT_TEST(name) { body using struct ct *t }: one test per selected configuration. */
#define CT_TEST(name)                                         \
	static void ct_body_##name(struct ct *t);             \
	ParameterizedTestParameters(contract, name)           \
	{                                                     \
		return ct_params();                           \
	}                                                     \
	ParameterizedTest(struct ct_param *p, contract, name) \
	{                                                     \
		struct ct t;                                  \
		ct_open(&t, p->idx);                          \
		ct_body_##name(&t);                           \
		ct_close(&t);                                 \
	}                                                     \
	static void ct_body_##name(struct ct *t)

/* ---- capabilities ---------------------------------------------------------------------- */

CT_TEST(caps_sane)
{
	const struct iovaq_backend_caps *c = &t->caps;

	cr_assert_eq(c->sz, sizeof(*c), "[%s] caps.sz %zu", t->label, c->sz);
	cr_assert_eq(c->granule, 4096, "[%s] granule %" PRIu64, t->label, c->granule);
	cr_assert(c->page_sizes & c->granule, "[%s] page_sizes 0x%" PRIx64 " lacks the granule",
		  t->label, c->page_sizes);
	cr_assert_eq(c->page_sizes & (c->granule - 1), 0,
		     "[%s] page_sizes 0x%" PRIx64 " below the granule", t->label, c->page_sizes);
	cr_assert(c->n_apertures >= 1 && c->n_apertures <= IOVAQ_BACKEND_MAX_APERTURES,
		  "[%s] n_apertures %u", t->label, c->n_apertures);
	cr_assert_gt(c->apertures[0].start, 0, "[%s] the aperture must not start at IOVA 0",
		     t->label);
	for (uint32_t i = 0; i < c->n_apertures; i++) {
		const struct iovaq_range *a = &c->apertures[i];

		cr_assert_leq(a->start, a->last, "[%s] aperture %u empty", t->label, i);
		cr_assert_eq(a->start & (c->granule - 1), 0, "[%s] aperture %u start unaligned",
			     t->label, i);
		cr_assert_eq((a->last + 1) & (c->granule - 1), 0, "[%s] aperture %u end unaligned",
			     t->label, i);
		if (i)
			cr_assert_gt(a->start, c->apertures[i - 1].last,
				     "[%s] apertures unsorted or overlapping", t->label);
	}
	cr_assert(c->inval_kinds & (1u << IOVAQ_INVAL_PAGES), "[%s] inval_kinds 0x%x lacks PAGES",
		  t->label, c->inval_kinds);
	cr_assert_eq(c->inval_kinds >> IOVAQ_INVAL_NR_KINDS, 0, "[%s] unknown inval kinds 0x%x",
		     t->label, c->inval_kinds);
	cr_assert_leq(c->leaf_hint, 1, "[%s] leaf_hint %u", t->label, c->leaf_hint);
	cr_assert_eq(c->reserved[0] | c->reserved[1], 0, "[%s] reserved caps bytes", t->label);
	cr_assert_str_not_empty(iovaq_backend_name(t->be));
	cr_assert_str_eq(iovaq_backend_name(t->be), t->cfg->backend);
}

/* ---- map, device access ---------------------------------------------------------------- */

/* Three adjacent mappings with separate host buffers, across a 2 MiB boundary. */
CT_TEST(dma_lands_in_the_right_bytes)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	iovaq_iova_t a0 = t->base + 2 * MiB - 2 * G;
	struct ct_map *m[3];
	size_t total = 8 * G;
	uint8_t *img, *buf;

	ct_need_device(t);
	m[0] = ct_map(t, a0, 3 * G, rw, 1);
	m[1] = ct_map(t, a0 + 3 * G, 1 * G, rw, 2);
	m[2] = ct_map(t, a0 + 4 * G, 4 * G, rw, 3);
	ct_check_all(t);

	/* The device writes [a0 + 100, a0 + 7 G + 5): every byte lands in its own buffer. */
	img = malloc(total);
	buf = malloc(total);
	cr_assert(img && buf);
	for (int i = 0; i < 3; i++)
		memcpy(img + (m[i]->iova - a0), m[i]->host, m[i]->len);
	tu_fill(buf, total, 99);
	size_t off = 100, len = 7 * G + 5 - 100;
	cr_assert_eq(ct_dma(t, a0 + off, buf + off, len, 1, NULL), 0,
		     "[%s] device write across three mappings faulted", t->label);
	memcpy(img + off, buf + off, len);
	for (int i = 0; i < 3; i++)
		for (size_t b = 0; b < m[i]->len; b++)
			cr_assert_eq(m[i]->host[b], img[m[i]->iova - a0 + b],
				     "[%s] after device write: mapping %d byte %zu is 0x%02x, "
				     "expected 0x%02x",
				     t->label, i, b, m[i]->host[b], img[m[i]->iova - a0 + b]);

	/* The host writes new bytes; the device reads them across the same boundaries. */
	for (int i = 0; i < 3; i++) {
		tu_fill(m[i]->host, m[i]->len, 50 + (uint64_t)i);
		memcpy(img + (m[i]->iova - a0), m[i]->host, m[i]->len);
	}
	ct_expect_read(t, a0 + 1, img + 1, total - 2);
	ct_expect_read(t, a0 + 3 * G - 1, img + 3 * G - 1, 2); /* mapping 0 -> 1 */
	ct_expect_read(t, a0 + 2 * G - 1, img + 2 * G - 1, 2); /* 2 MiB boundary */
	ct_expect_read(t, a0 + G - 1, img + G - 1, 1); /* last byte of a granule */

	/* Two-byte device writes straddling a granule and a mapping boundary. */
	uint8_t two[2] = { 0xa1, 0xb2 };
	cr_assert_eq(ct_dma(t, a0 + 4 * G - 1, two, 2, 1, NULL), 0);
	cr_assert_eq(m[1]->host[G - 1], 0xa1, "[%s] last byte of mapping 1", t->label);
	cr_assert_eq(m[2]->host[0], 0xb2, "[%s] first byte of mapping 2", t->label);
	cr_assert_eq(m[1]->host[G - 2], img[4 * G - 2], "[%s] byte before the write changed",
		     t->label);
	cr_assert_eq(m[2]->host[1], img[4 * G + 1], "[%s] byte after the write changed", t->label);
	free(img);
	free(buf);
	ct_check_all(t);
}

/* A mapping of two 2 MiB pages and two granules at a 2 MiB-aligned IOVA and host address. */
CT_TEST(dma_large_mapping)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	iovaq_iova_t x = t->base + 4 * MiB;
	size_t len = 4 * MiB + 2 * G;
	struct ct_map *m;
	uint8_t w[256];

	ct_need_device(t);
	m = ct_map(t, x, len, rw, 7);
	ct_check_all(t);

	/* Device writes across the 2 MiB boundary and into the granule tail. */
	tu_fill(w, sizeof(w), 8);
	cr_assert_eq(ct_dma(t, x + 2 * MiB - 100, w, 200, 1, NULL), 0);
	cr_assert_eq(memcmp(m->host + 2 * MiB - 100, w, 200), 0, "[%s] write across 2 MiB",
		     t->label);
	cr_assert_eq(ct_dma(t, x + 4 * MiB - 50, w, 100, 1, NULL), 0);
	cr_assert_eq(memcmp(m->host + 4 * MiB - 50, w, 100), 0, "[%s] write into the tail",
		     t->label);
	cr_assert_eq(tu_pat_mismatch(m->host + 2 * MiB + 100, 4 * MiB - 50 - 2 * MiB - 100, 7,
				     2 * MiB + 100),
		     -1, "[%s] bytes between the writes changed", t->label);
	m->host[3 * MiB + 5] ^= 0xff;
	ct_check_all(t);
	ct_expect_read(t, x + 3 * MiB, m->host + 3 * MiB, 4 * G);

	/* Splitting it anywhere fails; overlapping it anywhere fails. */
	EXPECT_CT(t, iovaq_backend_unmap(t->be, x, 2 * MiB), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(t->be, x + 2 * MiB, 2 * MiB + 2 * G), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(t->be, x + 4 * MiB, 2 * G), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(t->be, x + 1 * MiB, G), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(t->be, x + 1 * MiB, ct_spare(t, G, 9), G, rw), -EEXIST);
	EXPECT_CT(t, iovaq_backend_map(t->be, x + 4 * MiB + G, ct_spare(t, G, 9), G, rw), -EEXIST);
	EXPECT_CT(t, iovaq_backend_map(t->be, x - 2 * MiB, ct_spare(t, 4 * MiB, 9), 4 * MiB, rw),
		  -EEXIST);

	ct_unmap(t, x, len);
	ct_flush_range(t, x, len);
	ct_expect_dma_fault(t, x, 0, IOVAQ_FAULT_NOT_MAPPED);
	ct_expect_dma_fault(t, x + 3 * MiB, 1, IOVAQ_FAULT_NOT_MAPPED);
	ct_expect_dma_fault(t, x + 4 * MiB + G, 0, IOVAQ_FAULT_NOT_MAPPED);
	ct_check_all(t);
}

CT_TEST(permissions)
{
	iovaq_iova_t x = t->base + 64 * G;
	struct ct_map *ro, *wo, *rw;
	uint8_t w[16], r[16];

	ct_need_device(t);
	ro = ct_map(t, x, G, IOVAQ_PROT_READ, 11);
	wo = ct_map(t, x + G, G, IOVAQ_PROT_WRITE, 12);
	rw = ct_map(t, x + 2 * G, G, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE, 13);

	/* Read-only: reads work, a write is refused and leaves host memory alone. */
	ct_expect_read(t, x + 8, ro->host + 8, 16);
	memset(w, 0xee, sizeof(w));
	cr_assert_eq(ct_dma(t, x + 10, w, sizeof(w), 1, NULL), -EFAULT,
		     "[%s] device write to a read-only mapping succeeded", t->label);
	ct_expect_fault(t, x + 10, IOVAQ_FAULT_PERM, 1);
	cr_assert_eq(tu_pat_mismatch(ro->host, G, 11, 0), -1,
		     "[%s] refused write changed host memory", t->label);

	/* Write-only: writes work, a read is refused. */
	cr_assert_eq(ct_dma(t, x + G + 20, w, sizeof(w), 1, NULL), 0);
	cr_assert_eq(memcmp(wo->host + 20, w, sizeof(w)), 0, "[%s] write-only write", t->label);
	if (!t->dev->wo_readable) {
		cr_assert_eq(ct_dma(t, x + G + 20, r, sizeof(r), 0, NULL), -EFAULT,
			     "[%s] device read of a write-only mapping succeeded", t->label);
		ct_expect_fault(t, x + G + 20, IOVAQ_FAULT_PERM, 0);
	}

	/* The refusal is repeatable (a cached translation keeps the permissions). */
	cr_assert_eq(ct_dma(t, x, w, 1, 1, NULL), -EFAULT);
	ct_expect_fault(t, x, IOVAQ_FAULT_PERM, 1);
	cr_assert_eq(tu_pat_mismatch(ro->host, G, 11, 0), -1);

	/* Read-write both ways. */
	cr_assert_eq(ct_dma(t, x + 2 * G, w, sizeof(w), 1, NULL), 0);
	cr_assert_eq(memcmp(rw->host, w, sizeof(w)), 0);
	ct_check_all(t);
}

/* ---- unmap, flush, fault --------------------------------------------------------------- */

/* Map, access (filling caches), unmap, flush with @cmd-like commands, then everything faults. */
static void ct_unmap_flush_faults(struct ct *t, unsigned int kind)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	iovaq_iova_t x = t->base + 2 * MiB + 8 * G; /* 4-granule aligned */
	struct ct_map *m, *keep;
	struct iovaq_inval c;

	ct_need_device(t);
	if (!(t->caps.inval_kinds & (1u << kind)))
		cr_skip_test("[%s] no invalidation kind %u", t->label, kind);
	m = ct_map(t, x, 3 * G, rw, 21);
	keep = ct_map(t, x + 4 * G, 2 * G, rw, 22); /* same table, outside the range */
	ct_check_all(t);
	uint8_t w[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	cr_assert_eq(ct_dma(t, x + 2 * G + 4, w, 8, 1, NULL), 0);

	ct_unmap(t, x, 3 * G);
	if (kind == IOVAQ_INVAL_PAGES)
		c = tu_inval_pages(x, 2, 0); /* 4 granules from x */
	else
		c = tu_inval_kind(kind);
	ct_flush(t, &c, 1);
	for (uint64_t i = 0; i < 3; i++) {
		ct_expect_dma_fault(t, x + i * G, 0, IOVAQ_FAULT_NOT_MAPPED);
		ct_expect_dma_fault(t, x + i * G + 100, 1, IOVAQ_FAULT_NOT_MAPPED);
	}
	cr_assert_eq(tu_pat_mismatch(m->host + 2 * G + 12, G - 12, 21, 2 * G + 12), -1,
		     "[%s] host memory changed after the unmap", t->label);
	(void)keep;
	ct_check_all(t);
}

CT_TEST(unmap_flush_pages_then_fault)
{
	ct_unmap_flush_faults(t, IOVAQ_INVAL_PAGES);
}

CT_TEST(unmap_flush_domain_then_fault)
{
	ct_unmap_flush_faults(t, IOVAQ_INVAL_DOMAIN);
}

CT_TEST(unmap_flush_global_then_fault)
{
	ct_unmap_flush_faults(t, IOVAQ_INVAL_GLOBAL);
}

/* After unmap and flush, the same IOVA maps other memory, and the device sees only that. */
CT_TEST(remap_after_flush)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	iovaq_iova_t x = t->base + 3 * GiB;
	struct ct_map *m1, *m2;
	uint8_t w[32];

	ct_need_device(t);
	m1 = ct_map(t, x, 2 * G, rw, 31);
	ct_check_all(t);
	ct_unmap(t, x, 2 * G);
	ct_flush_range(t, x, 2 * G);
	m2 = ct_map(t, x, 2 * G, rw, 32);
	ct_check_all(t);
	tu_fill(w, sizeof(w), 33);
	cr_assert_eq(ct_dma(t, x + G - 16, w, sizeof(w), 1, NULL), 0);
	cr_assert_eq(memcmp(m2->host + G - 16, w, sizeof(w)), 0,
		     "[%s] write missed the new "
		     "mapping",
		     t->label);
	cr_assert_eq(tu_pat_mismatch(m1->host, 2 * G, 31, 0), -1,
		     "[%s] device wrote the old host memory after unmap and flush", t->label);
	ct_check_all(t);
}

/* ---- whole mappings only --------------------------------------------------------------- */

CT_TEST(unmap_whole_mappings_only)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	iovaq_iova_t x = t->base + 1 * GiB + 16 * G;
	struct iovaq_backend *be = t->be;

	ct_map(t, x, 4 * G, rw, 41); /* A [x, x + 4G) */
	ct_map(t, x + 4 * G, 2 * G, rw, 42); /* B [x + 4G, x + 6G) */
	ct_map(t, x + 8 * G, 1 * G, rw, 43); /* C [x + 8G, x + 9G), a hole before it */
	ct_check_all(t);

	EXPECT_CT(t, iovaq_backend_unmap(be, x + G, 3 * G), -EINVAL); /* A's head stays */
	EXPECT_CT(t, iovaq_backend_unmap(be, x, 3 * G), -EINVAL); /* A's tail stays */
	EXPECT_CT(t, iovaq_backend_unmap(be, x + G, 2 * G), -EINVAL); /* inside A */
	EXPECT_CT(t, iovaq_backend_unmap(be, x + 2 * G, 3 * G), -EINVAL); /* A's tail + B's head */
	EXPECT_CT(t, iovaq_backend_unmap(be, x, 5 * G), -EINVAL); /* A and B's head */
	EXPECT_CT(t, iovaq_backend_unmap(be, x - 4 * G, 5 * G), -EINVAL); /* empty + A's head */
	EXPECT_CT(t, iovaq_backend_unmap(be, x + 5 * G, 4 * G), -EINVAL); /* B's tail + hole + C */
	EXPECT_CT(t, iovaq_backend_unmap(be, x - 4 * G, 4 * G), -ENOENT); /* just before A */
	EXPECT_CT(t, iovaq_backend_unmap(be, x + 6 * G, 2 * G), -ENOENT); /* the hole */
	EXPECT_CT(t, iovaq_backend_unmap(be, x + 64 * G, G), -ENOENT);
	EXPECT_CT(t, iovaq_backend_unmap(be, x + 1 * GiB, 4 * MiB), -ENOENT);

	/* One call removes several whole mappings and the holes around them. */
	ct_unmap(t, x - 2 * G, 10 * G); /* [x - 2G, x + 8G): A and B */
	ct_flush_range(t, x - 2 * G, 10 * G);
	ct_check_all(t);
	EXPECT_CT(t, iovaq_backend_unmap(be, x, 6 * G), -ENOENT); /* already gone */
	ct_unmap(t, x + 8 * G, G);
	ct_flush_domain(t);
	ct_check_all(t);
}

CT_TEST(map_never_replaces)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	iovaq_iova_t x = t->base + 2 * GiB + 32 * G;
	struct iovaq_backend *be = t->be;
	uint8_t *h = ct_spare(t, 16 * G, 59);

	ct_map(t, x, 4 * G, rw, 51);
	ct_check_all(t);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, 4 * G, rw), -EEXIST); /* the same */
	EXPECT_CT(t, iovaq_backend_map(be, x, h, G, IOVAQ_PROT_READ), -EEXIST);
	EXPECT_CT(t, iovaq_backend_map(be, x + 3 * G, h, 2 * G, rw), -EEXIST); /* tail */
	EXPECT_CT(t, iovaq_backend_map(be, x - G, h, 2 * G, rw), -EEXIST); /* head */
	EXPECT_CT(t, iovaq_backend_map(be, x + G, h, 2 * G, rw), -EEXIST); /* inside */
	EXPECT_CT(t, iovaq_backend_map(be, x - 4 * G, h, 16 * G, rw), -EEXIST); /* around */

	/* Right next to it on both sides is fine. */
	ct_map(t, x + 4 * G, G, rw, 52);
	ct_map(t, x - G, G, rw, 53);
	ct_check_all(t);
	EXPECT_CT(t, iovaq_backend_map(be, x - 2 * G, h, 8 * G, rw), -EEXIST);
}

/* ---- bad arguments --------------------------------------------------------------------- */

CT_TEST(map_unmap_bad_arguments)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	const struct iovaq_range *ap = &t->caps.apertures[0];
	iovaq_iova_t x = t->base + 16 * G;
	struct iovaq_backend *be = t->be;
	uint8_t *h = ct_spare(t, 4 * G, 61);

	ct_map(t, t->base, G, rw, 62); /* something to stay unchanged */
	ct_check_all(t);

	EXPECT_CT(t, iovaq_backend_map(be, x + 1, h, G, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x + G / 2, h, G, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h + 1, G, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h + 512, G, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, G + 1, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, G - 1, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, 0, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, G, 0), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, G, 1u << 2), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, G, rw | (1u << 7)), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, x, h, G, ~0u), -EINVAL);
	/* Outside the aperture: below it, above it, across either end, wrapping around. */
	EXPECT_CT(t, iovaq_backend_map(be, 0, h, G, rw), -EINVAL);
	if (ap->start >= G)
		EXPECT_CT(t, iovaq_backend_map(be, ap->start - G, h, 2 * G, rw), -EINVAL);
	if (ap->last != UINT64_MAX) {
		EXPECT_CT(t, iovaq_backend_map(be, ap->last + 1, h, G, rw), -EINVAL);
		EXPECT_CT(t, iovaq_backend_map(be, ap->last + 1 - G, h, 2 * G, rw), -EINVAL);
	}
	EXPECT_CT(t, iovaq_backend_map(be, UINT64_MAX - G + 1, h, G, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(be, ap->last + 1 - G, h, SIZE_MAX - G + 1, rw), -EINVAL);

	EXPECT_CT(t, iovaq_backend_unmap(be, t->base + 1, G), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(be, t->base, G + 1), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(be, t->base, G / 2), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(be, t->base, 0), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(be, 0, G), -EINVAL);
	if (ap->last != UINT64_MAX)
		EXPECT_CT(t, iovaq_backend_unmap(be, ap->last + 1, G), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(be, t->base, SIZE_MAX - G + 1), -EINVAL);
	EXPECT_CT(t, iovaq_backend_map(NULL, x, h, G, rw), -EINVAL);
	EXPECT_CT(t, iovaq_backend_unmap(NULL, t->base, G), -EINVAL);
	EXPECT_CT(t, iovaq_backend_flush(NULL, NULL, 0), -EINVAL);
	ct_check_all(t);
}

/* The first and last granules of the aperture map and work. */
CT_TEST(aperture_edges)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	const struct iovaq_range *ap = &t->caps.apertures[t->caps.n_apertures - 1];
	const struct iovaq_range *ap0 = &t->caps.apertures[0];

	ct_map(t, ap0->start, G, rw, 71);
	ct_map(t, ap->last + 1 - G, G, rw, 72);
	ct_check_all(t);
	ct_unmap(t, ap0->start, G);
	ct_unmap(t, ap->last + 1 - G, G);
	ct_flush_domain(t);
	ct_check_all(t);
}

/* ---- invalidation commands ------------------------------------------------------------- */

/*
 * Leaves a stale translation at @x (mapped, accessed, unmapped, not flushed) when the device
 * can tell; returns whether it can.
 */
static int ct_make_stale(struct ct *t, iovaq_iova_t x)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
	struct ct_map *m = ct_map(t, x, G, rw, 81);
	int64_t stale;
	uint8_t b[8];

	ct_check_all(t);
	if (t->caps.flags & IOVAQ_CAP_UNMAP_INVALIDATES) {
		ct_unmap(t, x, G);
		return 0;
	}
	ct_unmap(t, x, G);
	if (!t->dev)
		return 0;
	cr_assert_eq(ct_dma(t, x, b, sizeof(b), 0, &stale), 0,
		     "[%s] access right after an unmap (no flush) faulted", t->label);
	if (stale < 0)
		return 0;
	cr_assert_eq(stale, 1, "[%s] access after unmap without flush: %" PRId64 " stale", t->label,
		     stale);
	(void)m;
	return 1;
}

/* The stale translation at @x still serves the device (nothing was invalidated). */
static void ct_still_stale(struct ct *t, iovaq_iova_t x, const char *what)
{
	int64_t stale;
	uint8_t b[8];

	cr_assert_eq(ct_dma(t, x, b, sizeof(b), 1, &stale), 0,
		     "[%s] after rejected %s: the stale translation is gone", t->label, what);
	cr_assert_eq(stale, 1, "[%s] after rejected %s: %" PRId64 " stale", t->label, what, stale);
}

struct ct_bad_cmd {
	const char *what;
	struct iovaq_inval c;
};

CT_TEST(flush_rejects_bad_commands_and_executes_nothing)
{
	iovaq_iova_t x = t->base + 8 * MiB;
	struct iovaq_inval good = tu_inval_pages(x, 0, 0);
	struct iovaq_inval list[3];
	struct ct_bad_cmd bad[32];
	int nb = 0, can_see;

	can_see = ct_make_stale(t, x);

#define BAD(w, ...)                                              \
	do {                                                     \
		cr_assert_lt(nb, 32);                            \
		bad[nb].what = (w);                              \
		bad[nb].c = (struct iovaq_inval){ __VA_ARGS__ }; \
		nb++;                                            \
	} while (0)
	BAD("unknown kind", .kind = IOVAQ_INVAL_NR_KINDS);
	BAD("unknown kind 200", .kind = 200);
	for (unsigned int k = 0; k < IOVAQ_INVAL_NR_KINDS; k++)
		if (!(t->caps.inval_kinds & (1u << k)))
			BAD("unsupported kind", .kind = (uint8_t)k, .iova = x, .last = x + G - 1);
	BAD("unknown flag 0x2", .kind = IOVAQ_INVAL_PAGES, .flags = 0x2, .iova = x);
	BAD("unknown flag 0x80", .kind = IOVAQ_INVAL_PAGES, .flags = 0x81, .iova = x);
	BAD("unknown flag on DOMAIN", .kind = IOVAQ_INVAL_DOMAIN, .flags = 0x40);
	BAD("reserved[0]", .kind = IOVAQ_INVAL_PAGES, .iova = x, .reserved = { 1 });
	BAD("reserved[4]", .kind = IOVAQ_INVAL_PAGES, .iova = x, .reserved = { 0, 0, 0, 0, 9 });
	BAD("reserved on DOMAIN", .kind = IOVAQ_INVAL_DOMAIN, .reserved = { 0, 0, 1 });
	BAD("PAGES iova not granule-aligned", .kind = IOVAQ_INVAL_PAGES, .iova = x + 1);
	BAD("PAGES iova not aligned to 2^am", .kind = IOVAQ_INVAL_PAGES, .am = 1, .iova = x + G);
	BAD("PAGES iova not aligned to 2^am (9)", .kind = IOVAQ_INVAL_PAGES, .am = 9,
	    .iova = x + 256 * G);
	if (t->caps.max_am < 255)
		BAD("am above max_am", .kind = IOVAQ_INVAL_PAGES,
		    .am = (uint8_t)(t->caps.max_am + 1), .iova = 0);
	BAD("am 255", .kind = IOVAQ_INVAL_PAGES, .am = 255, .iova = 0);
	BAD("LEAF on DOMAIN", .kind = IOVAQ_INVAL_DOMAIN, .flags = IOVAQ_INVAL_LEAF);
	BAD("LEAF on GLOBAL", .kind = IOVAQ_INVAL_GLOBAL, .flags = IOVAQ_INVAL_LEAF);
	if (t->caps.inval_kinds & (1u << IOVAQ_INVAL_RANGE)) {
		BAD("RANGE last < iova", .kind = IOVAQ_INVAL_RANGE, .iova = x, .last = x - 1);
		BAD("RANGE unaligned end", .kind = IOVAQ_INVAL_RANGE, .iova = x, .last = x + 5);
	}
#undef BAD

	for (int i = 0; i < nb; i++) {
		/* Alone, and after a valid command that must not run either. */
		list[0] = good;
		list[1] = bad[i].c;
		list[2] = good;
		EXPECT_CT(t, iovaq_backend_flush(t->be, &bad[i].c, 1), -EINVAL);
		if (can_see)
			ct_still_stale(t, x, bad[i].what);
		EXPECT_CT(t, iovaq_backend_flush(t->be, list, 3), -EINVAL);
		if (can_see)
			ct_still_stale(t, x, bad[i].what);
	}
	EXPECT_CT(t, iovaq_backend_flush(t->be, NULL, 1), -EINVAL);
	EXPECT_CT(t, iovaq_backend_flush(t->be, NULL, 0), 0); /* nothing to do */
	EXPECT_CT(t, iovaq_backend_flush(t->be, &good, 0), 0);
	if (can_see)
		ct_still_stale(t, x, "empty flush");

	/* The valid command alone removes it. */
	ct_flush(t, &good, 1);
	if (t->dev)
		ct_expect_dma_fault(t, x, 0, IOVAQ_FAULT_NOT_MAPPED);
	ct_check_all(t);
}

/* The largest mask the caps promise is accepted, and commands run in one call. */
CT_TEST(flush_accepts_max_am_and_lists)
{
	struct iovaq_inval c[4];
	iovaq_iova_t x = t->base + 12 * MiB;
	unsigned int n = 0;

	ct_map(t, x, 2 * G, IOVAQ_PROT_READ, 91);
	ct_map(t, x + 8 * G, G, IOVAQ_PROT_READ, 92);
	ct_check_all(t);
	/* Nothing was unmapped: a leaf-only command is correct here. */
	c[n++] = tu_inval_pages(0, t->caps.max_am, 0);
	c[n++] = tu_inval_pages(x, 1, 0);
	if (t->caps.leaf_hint)
		c[n++] = tu_inval_pages(x + 8 * G, 0, 1);
	c[n++] = tu_inval_kind(IOVAQ_INVAL_DOMAIN);
	ct_flush(t, c, n);
	ct_check_all(t);
	ct_unmap(t, x, 2 * G);
	ct_unmap(t, x + 8 * G, G);
	n = 0;
	c[n++] = tu_inval_pages(x, 1, 0);
	c[n++] = tu_inval_pages(x + 8 * G, 0, 0);
	ct_flush(t, c, n);
	ct_check_all(t);
}

/* Closing with live and unflushed mappings releases everything (checked by ASan). */
CT_TEST(close_with_mappings)
{
	const unsigned int rw = IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;

	ct_map(t, t->base, 3 * G, rw, 101);
	ct_map(t, t->base + 5 * GiB / 2, 4 * MiB, rw, 102);
	ct_map(t, t->base + 2 * MiB, G, rw, 103);
	ct_check_all(t);
	ct_unmap(t, t->base + 2 * MiB, G);
	ct_check_all(t);
}

/* ---- runner ---------------------------------------------------------------------------- */

static struct criterion_global_stats ct_stats;

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	ct_stats = *stats;
}

/*
 * Criterion's runner, but exit 77 (skipped) when every test skipped (no selected backend is
 * available here), so that ctest reports "not run" instead of "passed".
 */
int main(int argc, char *argv[])
{
	struct criterion_test_set *tests;
	size_t n = 0;
	int rc = 0;

	for (size_t i = 0; i < CT_NCONFIGS; i++) {
		const struct ct_config *cfg = &ct_configs[i];
		IOVAQ_OPTS(iovaq_backend_opts, o, .name = cfg->backend,
			   .backend_opts = cfg->backend_opts);
		struct iovaq_backend *be = NULL;

		if (!ct_selected(cfg))
			continue;
		n++;
		/* Say once why a configuration's tests will skip (Criterion hides the reason). */
		if (iovaq_backend_open(&o, &be) == -EOPNOTSUPP)
			fprintf(stderr, "contract: %s skipped: %s\n", cfg->label,
				iovaq_backend_why());
		iovaq_backend_close(be);
	}
	if (!n) {
		fprintf(stderr, "contract: IOVAQ_CONTRACT=\"%s\" selects no configuration\n",
			getenv("IOVAQ_CONTRACT"));
		return 1;
	}
	tests = criterion_initialize();

	if (criterion_handle_args(argc, argv, true))
		rc = !criterion_run_all_tests(tests);
	criterion_finalize(tests);
	if (!rc && ct_stats.nb_tests && ct_stats.tests_skipped == ct_stats.nb_tests) {
		fprintf(stderr, "contract: every test skipped: no selected backend is available\n");
		return 77;
	}
	return rc;
}
