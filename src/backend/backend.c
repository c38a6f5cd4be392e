/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Backend registry and the public wrappers around the ops table (userspace).
 */
#include <iovaq/backend.h>
#include <iovaq/sim.h>
#include "backend_priv.h"
#include "backend_core.h"
#include "vfio_common.h"

/* A backend that exists in the API but may be missing from this build. */
struct backend_entry {
	const char *name;
	const struct iovaq_backend_ops *const *ops;	/* *ops NULL: not built */
	const char *missing;				/* why, when *ops is NULL */
};

static const struct iovaq_backend_ops *const sim_ops = &iovaq_sim_ops;

static const struct backend_entry backends[] = {
	{ "sim", &sim_ops, NULL },
	{ "iommufd", &iovaq_iommufd_ops, iovaq_iommufd_missing },
	{ "vfio-type1", &iovaq_vfio_type1_ops, iovaq_vfio_type1_missing },
	{ "kshim", &iovaq_kshim_ops, iovaq_kshim_missing },
};

static __thread char why_buf[256];

static void set_why(const char *a, const char *b)
{
	iovaq_snprintf(why_buf, sizeof(why_buf), "%s%s", a, b ? b : "");
}

void iovaq__backend_set_why(const char *msg)
{
	set_why(msg, NULL);
}

const char *iovaq_backend_why(void)
{
	return why_buf;
}

int iovaq_backend_open(const struct iovaq_backend_opts *opts, struct iovaq_backend **out)
{
	const struct iovaq_alloc_hooks *hooks;
	const char *name;
	size_t i;
	int err;

	why_buf[0] = '\0';
	if (!out)
		return -EINVAL;
	if (opts) {
		err = iovaq_opts_check(opts, sizeof(opts->sz), sizeof(*opts));
		if (err) {
			set_why("bad struct iovaq_backend_opts size or trailing bytes", NULL);
			return err;
		}
	}
	name = IOVAQ_OPTS_GET(opts, name, NULL);
	if (!name)
		name = getenv("IOVAQ_BACKEND");
	if (!name || !*name)
		name = "sim";
	hooks = IOVAQ_OPTS_GET(opts, hooks, NULL) ?: iovaq_default_alloc_hooks();
	if (!hooks->alloc || !hooks->free)
		return -EINVAL;
	for (i = 0; i < IOVAQ_ARRAY_SIZE(backends); i++) {
		if (strcmp(backends[i].name, name))
			continue;
		if (!*backends[i].ops) {
			set_why(backends[i].missing, NULL);
			return -EOPNOTSUPP;
		}
		err = (*backends[i].ops)->open(IOVAQ_OPTS_GET(opts, backend_opts, NULL), hooks, out);
		if (err && !why_buf[0])
			set_why("backend open failed: ", iovaq_strerror(err));
		return err;
	}
	set_why("no such backend: ", name);
	return -ENOENT;
}

void iovaq_backend_close(struct iovaq_backend *be)
{
	if (be)
		be->ops->close(be);
}

const char *iovaq_backend_name(const struct iovaq_backend *be)
{
	return be->ops->name;
}

int iovaq_backend_get_caps(const struct iovaq_backend *be, struct iovaq_backend_caps *caps)
{
	size_t sz;
	int err;

	if (!be)
		return -EINVAL;
	err = iovaq_opts_check(caps, offsetof(struct iovaq_backend_caps, n_apertures), SIZE_MAX);
	if (err)
		return err;
	sz = caps->sz < sizeof(be->caps) ? caps->sz : sizeof(be->caps);
	iovaq_memcpy(caps, &be->caps, sz);
	caps->sz = sz;
	return 0;
}

/* Is [iova, iova + len) granule-aligned, non-empty and inside one aperture? */
static int range_ok(const struct iovaq_backend *be, iovaq_iova_t iova, uint64_t len)
{
	const struct iovaq_backend_caps *c = &be->caps;
	uint64_t g = c->granule;
	uint32_t i;

	if (!len || (iova & (g - 1)) || (len & (g - 1)))
		return 0;
	for (i = 0; i < c->n_apertures; i++)
		if (iova >= c->apertures[i].start && iova <= c->apertures[i].last &&
		    len - 1 <= c->apertures[i].last - iova)
			return 1;
	return 0;
}

/* The backend's result, with a trace point when it is an error (op: 0 map, 1 unmap, 2 flush). */
static inline int traced(int op, int ret)
{
	if (iovaq_unlikely(ret < 0))
		IOVAQ_TRACE2(backend_error, op, ret);
	return ret;
}

/* Is @host a granule-aligned address with @len a non-zero multiple of the granule? */
static int host_ok(const struct iovaq_backend *be, const void *host, size_t len)
{
	uint64_t g = be->caps.granule;

	return host && !((uintptr_t)host & (g - 1)) && len && !(len & (g - 1));
}

static int prot_ok(unsigned int prot)
{
	return prot && !(prot & ~(unsigned int)(IOVAQ_PROT_READ | IOVAQ_PROT_WRITE));
}

int iovaq_backend_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		      unsigned int prot)
{
	if (!be || !host_ok(be, host, len) || !range_ok(be, iova, len) || !prot_ok(prot))
		return -EINVAL;
	return traced(0, be->ops->map(be, iova, host, len, prot));
}

/*
 * The one command that invalidates [iova, iova + len) after a rollback's unmap: a range where
 * the backend has one; else the naturally aligned page-selective block that encloses it
 * (invalidating mapped neighbours too costs only their refills); else the whole domain. Never
 * leaf-only: the unmap may have freed table pages. Returns 0 if the backend offers none.
 */
static int rollback_cmd(const struct iovaq_backend_caps *c, iovaq_iova_t iova, uint64_t len,
			struct iovaq_inval *cmd)
{
	const unsigned int shift = iovaq_ilog2(c->granule);
	const iovaq_iova_t last = iova + len - 1;
	unsigned int am = 0;

	iovaq_memset(cmd, 0, sizeof(*cmd));
	if (c->inval_kinds & (1u << IOVAQ_INVAL_RANGE)) {
		cmd->kind = IOVAQ_INVAL_RANGE;
		cmd->iova = iova;
		cmd->last = last;
		return 1;
	}
	while (am < c->max_am && shift + am < 63 &&
	       (iova >> (shift + am)) != (last >> (shift + am)))
		am++;
	if ((c->inval_kinds & (1u << IOVAQ_INVAL_PAGES)) &&
	    (iova >> (shift + am)) == (last >> (shift + am))) {
		cmd->kind = IOVAQ_INVAL_PAGES;
		cmd->am = (uint8_t)am;
		cmd->iova = iova & ~((c->granule << am) - 1);
		return 1;
	}
	if (c->inval_kinds & (1u << IOVAQ_INVAL_DOMAIN)) {
		cmd->kind = IOVAQ_INVAL_DOMAIN;
		return 1;
	}
	return 0;
}

/*
 * Undo the first @k segments that map_each() mapped, [iova, iova + len): unmap them with one
 * call (whole mappings, which any backend accepts), or one call per segment if the backend
 * refuses that, then invalidate the range unless unmap already did. Best effort, as Linux's
 * iommu_map_sg() cleanup: the caller reports the map's own error either way.
 */
static void rollback(struct iovaq_backend *be, iovaq_iova_t iova, uint64_t len,
		     const struct iovaq_seg *segs, size_t k)
{
	struct iovaq_inval cmd;
	iovaq_iova_t at = iova;
	size_t i;

	if (be->ops->unmap(be, iova, len) < 0)
		for (i = 0; i < k; at += segs[i].len, i++)
			(void)traced(1, be->ops->unmap(be, at, segs[i].len));
	if (!(be->caps.flags & IOVAQ_CAP_UNMAP_INVALIDATES) &&
	    rollback_cmd(&be->caps, iova, len, &cmd))
		(void)traced(2, be->ops->flush(be, &cmd, 1));
}

/* iovaq_backend_mapv() where the backend has no mapv op: one map per segment, in order. */
static int map_each(struct iovaq_backend *be, iovaq_iova_t iova, const struct iovaq_seg *segs,
		    size_t nsegs, unsigned int prot)
{
	iovaq_iova_t at = iova;
	size_t i;
	int err;

	for (i = 0; i < nsegs; at += segs[i].len, i++) {
		err = be->ops->map(be, at, segs[i].host, segs[i].len, prot);
		if (err) {
			if (i)
				rollback(be, iova, at - iova, segs, i);
			return err;
		}
	}
	return 0;
}

int iovaq_backend_mapv(struct iovaq_backend *be, iovaq_iova_t iova, const struct iovaq_seg *segs,
		       size_t nsegs, unsigned int prot)
{
	size_t i, total = 0;

	if (!be || !segs || !nsegs)
		return -EINVAL;
	if (nsegs == 1)
		return iovaq_backend_map(be, iova, segs[0].host, segs[0].len, prot);
	for (i = 0; i < nsegs; i++) {
		if (!host_ok(be, segs[i].host, segs[i].len) || segs[i].len > SIZE_MAX - total)
			return -EINVAL;
		total += segs[i].len;
	}
	return iovaq__backend_mapv(be, iova, segs, nsegs, total, prot);
}

int iovaq__backend_mapv(struct iovaq_backend *be, iovaq_iova_t iova,
			const struct iovaq_seg *segs, size_t nsegs, size_t len, unsigned int prot)
{
	if (!range_ok(be, iova, len) || !prot_ok(prot))
		return -EINVAL;
	if (be->ops->mapv)
		return traced(0, be->ops->mapv(be, iova, segs, nsegs, len, prot));
	return traced(0, map_each(be, iova, segs, nsegs, prot));
}

int iovaq_backend_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	if (!be || !range_ok(be, iova, len))
		return -EINVAL;
	return traced(1, be->ops->unmap(be, iova, len));
}

/* Validate one command against the backend's caps. */
static int cmd_ok(const struct iovaq_backend *be, const struct iovaq_inval *c)
{
	const struct iovaq_backend_caps *caps = &be->caps;
	uint64_t bytes;
	size_t i;

	if (c->kind >= IOVAQ_INVAL_NR_KINDS || !(caps->inval_kinds & (1u << c->kind)) ||
	    (c->flags & ~(unsigned int)IOVAQ_INVAL_LEAF))
		return 0;
	for (i = 0; i < sizeof(c->reserved); i++)
		if (c->reserved[i])
			return 0;
	switch (c->kind) {
	case IOVAQ_INVAL_PAGES:
		if (c->am > caps->max_am || c->last || c->am >= 64 - iovaq_ilog2(caps->granule))
			return 0;
		bytes = caps->granule << c->am;
		return !(c->iova & (bytes - 1));
	case IOVAQ_INVAL_RANGE:
		return c->iova <= c->last && !(c->iova & (caps->granule - 1)) &&
		       !((c->last + 1) & (caps->granule - 1)) && !c->am;
	default:
		/* Domain and global commands carry no address, and no leaf hint. */
		return !c->iova && !c->last && !c->am && !(c->flags & IOVAQ_INVAL_LEAF);
	}
}

int iovaq_backend_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n)
{
	size_t i;

	if (!be || (!cmds && n))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!cmd_ok(be, &cmds[i]))
			return -EINVAL;
	if (!n)
		return 0;
	return traced(2, be->ops->flush(be, cmds, n));
}

int iovaq_backend_device_fd(const struct iovaq_backend *be)
{
	if (!be)
		return -EINVAL;
	if (!be->ops->device_fd)
		return -ENODEV;
	return be->ops->device_fd(be);
}

uint64_t iovaq_backend_pinned_bytes(struct iovaq_backend *be)
{
	if (!be || !be->ops->pinned_bytes)
		return 0;
	return be->ops->pinned_bytes(be);
}

int iovaq_backend_faults(struct iovaq_backend *be, struct iovaq_fault *out, size_t max)
{
	if (!be || (!out && max))
		return -EINVAL;
	if (!be->ops->faults)
		return -EOPNOTSUPP;
	return be->ops->faults(be, out, max);
}
