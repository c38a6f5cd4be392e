// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Unit tests of the generic backend layer (include/iovaq/backend.h) that do not depend on a
 * backend configuration: opening by name, by IOVAQ_BACKEND and with size-prefixed options, the
 * per-thread reason of a failed open, the caps and fault-log argument checks, and
 * iovaq_backend_mapv()'s generic path for backends without a mapv op (one map per segment,
 * the rollback of a failure), on sim. What every backend must do with mappings and commands
 * is the contract suite (tests/contract/).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <unistd.h>

#include "testutil.h"
#include "simutil.h"

#define G TU_G

/* ------------------------------------------------------------------------------------ */
/* Opening                                                                              */
/* ------------------------------------------------------------------------------------ */

Test(backend_open, unknown_name)
{
	IOVAQ_OPTS(iovaq_backend_opts, o, .name = "no-such-iommu");
	struct iovaq_backend *be = (struct iovaq_backend *)(uintptr_t)0x1;

	cr_assert_eq(iovaq_backend_open(&o, &be), -ENOENT);
	cr_assert_eq((uintptr_t)be, 0x1, "*out touched on failure");
	cr_assert_not_null(strstr(iovaq_backend_why(), "no-such-iommu"),
			   "why does not name the backend: \"%s\"", iovaq_backend_why());
	o.name = "sim-";
	cr_assert_eq(iovaq_backend_open(&o, &be), -ENOENT, "a prefix match opened \"sim-\"");
	o.name = "sim";
	be = NULL;
	EXPECT_OK(iovaq_backend_open(&o, &be));
	cr_assert_str_eq(iovaq_backend_name(be), "sim");
	cr_assert_str_empty(iovaq_backend_why());
	iovaq_backend_close(be);
}

/*
 * kshim where the module is not loaded (this machine; the VM tier loads it): a PCI address
 * fails with -ENODEV and a reason naming /dev/iovaq; bad options fail with -EINVAL before
 * anything is opened. -EOPNOTSUPP where the backend is not built.
 */
Test(backend_open, kshim_without_module)
{
	IOVAQ_OPTS(iovaq_kshim_opts, ko, .device = "0000:00:03.0");
	IOVAQ_OPTS(iovaq_backend_opts, o, .name = "kshim", .backend_opts = &ko);
	struct iovaq_backend *be = (struct iovaq_backend *)(uintptr_t)0x1;
	int err;

	if (!access("/dev/iovaq", F_OK))
		cr_skip_test("/dev/iovaq exists here: iovaq.ko is loaded");
	err = iovaq_backend_open(&o, &be);
	if (err == -EOPNOTSUPP) {
		cr_assert_str_not_empty(iovaq_backend_why(), "no reason for \"kshim\"");
		return;
	}
	cr_assert_eq(err, -ENODEV, "open \"kshim\": %d (%s)", err, iovaq_strerror(err));
	cr_assert_eq((uintptr_t)be, 0x1, "*out touched on failure");
	cr_assert_not_null(strstr(iovaq_backend_why(), "/dev/iovaq"), "why: \"%s\"",
			   iovaq_backend_why());
	ko.device = "not-a-pci-address";
	cr_assert_eq(iovaq_backend_open(&o, &be), -EINVAL);
	cr_assert_not_null(strstr(iovaq_backend_why(), "not a PCI address"));
	ko.device = "0000:00:03.0";
	ko.flags = 1u << 7;
	cr_assert_eq(iovaq_backend_open(&o, &be), -EINVAL, "unknown flags accepted");
	ko.flags = IOVAQ_KSHIM_OPTS_ADOPT;
	ko.fd = -1;
	cr_assert_eq(iovaq_backend_open(&o, &be), -EINVAL, "adopt without a descriptor accepted");
	cr_assert_eq((uintptr_t)be, 0x1, "*out touched on failure");
}

/*
 * The Linux backends without a device to open (none named, or a PCI address that does not
 * exist): a clear failure, or -EOPNOTSUPP where they are not built; never success, and *out
 * untouched. They are tested for real in the VM tier (tests/vm/).
 */
Test(backend_open, linux_backends_without_device)
{
	static const char *const names[] = { "iommufd", "vfio-type1", "kshim" };
	const struct iovaq_iommufd_opts ifd = { .sz = sizeof(ifd), .device = "00ff:ff:1f.7" };
	const struct iovaq_vfio_type1_opts vt1 = { .sz = sizeof(vt1), .device = "00ff:ff:1f.7" };
	const struct iovaq_kshim_opts ksh = { .sz = sizeof(ksh), .device = "00ff:ff:1f.7" };
	const void *bad_dev[] = { &ifd, &vt1, &ksh };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (int with_dev = 0; with_dev < 2; with_dev++) {
			IOVAQ_OPTS(iovaq_backend_opts, o, .name = names[i],
				   .backend_opts = with_dev ? bad_dev[i] : NULL);
			struct iovaq_backend *be = (struct iovaq_backend *)(uintptr_t)0x1;
			int err;

			unsetenv("IOVAQ_IOMMUFD_DEVICE");
			unsetenv("IOVAQ_VFIO_DEVICE");
			unsetenv("IOVAQ_KSHIM_DEVICE");
			err = iovaq_backend_open(&o, &be);
			cr_assert_lt(err, 0, "open \"%s\" without a device succeeded", names[i]);
			if (err != -EOPNOTSUPP)
				cr_assert(err == (with_dev ? -ENODEV : -EINVAL),
					  "open \"%s\" (%s): %d (%s): %s", names[i],
					  with_dev ? "no such device" : "no device", err,
					  iovaq_strerror(err), iovaq_backend_why());
			cr_assert_eq((uintptr_t)be, 0x1, "*out touched on failure");
			cr_assert_str_not_empty(iovaq_backend_why(), "no reason for \"%s\"",
						names[i]);
		}
	}
}

Test(backend_open, why_is_reset)
{
	IOVAQ_OPTS(iovaq_backend_opts, bad, .name = "nope");
	struct iovaq_backend *be = NULL;

	cr_assert_eq(iovaq_backend_open(&bad, &be), -ENOENT);
	cr_assert_str_not_empty(iovaq_backend_why());
	EXPECT_OK(iovaq_backend_open(NULL, &be));
	cr_assert_str_empty(iovaq_backend_why(), "why not reset by a successful open: \"%s\"",
			    iovaq_backend_why());
	iovaq_backend_close(be);
}

static void *why_thread(void *arg)
{
	snprintf(arg, 64, "%s", iovaq_backend_why());
	return NULL;
}

Test(backend_open, why_per_thread)
{
	IOVAQ_OPTS(iovaq_backend_opts, bad, .name = "nope");
	struct iovaq_backend *be = NULL;
	pthread_t th;
	char other[64] = "unset";

	cr_assert_eq(iovaq_backend_open(&bad, &be), -ENOENT);
	cr_assert_eq(pthread_create(&th, NULL, why_thread, other), 0);
	cr_assert_eq(pthread_join(th, NULL), 0);
	cr_assert_str_empty(other, "another thread sees this thread's reason: \"%s\"", other);
	cr_assert_str_not_empty(iovaq_backend_why());
}

Test(backend_open, environment_selects)
{
	IOVAQ_OPTS(iovaq_backend_opts, o);
	struct iovaq_backend *be = NULL;
	int err;

	cr_assert_eq(setenv("IOVAQ_BACKEND", "env-backend-x", 1), 0);
	cr_assert_eq(iovaq_backend_open(NULL, &be), -ENOENT, "IOVAQ_BACKEND ignored (NULL opts)");
	cr_assert_not_null(strstr(iovaq_backend_why(), "env-backend-x"), "why: \"%s\"",
			   iovaq_backend_why());
	cr_assert_eq(iovaq_backend_open(&o, &be), -ENOENT, "IOVAQ_BACKEND ignored (name NULL)");
	cr_assert_eq(setenv("IOVAQ_BACKEND", "kshim", 1), 0);
	unsetenv("IOVAQ_KSHIM_DEVICE");
	err = iovaq_backend_open(&o, &be);
	cr_assert(err == -EINVAL || err == -EOPNOTSUPP, "kshim without a device: %d", err);
	cr_assert_not_null(strstr(iovaq_backend_why(), "kshim"), "why: \"%s\"",
			   iovaq_backend_why());

	/* An explicit name wins over the environment. */
	o.name = "sim";
	EXPECT_OK(iovaq_backend_open(&o, &be));
	iovaq_backend_close(be);

	cr_assert_eq(setenv("IOVAQ_BACKEND", "sim", 1), 0);
	be = NULL;
	EXPECT_OK(iovaq_backend_open(NULL, &be));
	cr_assert_str_eq(iovaq_backend_name(be), "sim");
	iovaq_backend_close(be);

	cr_assert_eq(unsetenv("IOVAQ_BACKEND"), 0);
	be = NULL;
	EXPECT_OK(iovaq_backend_open(NULL, &be));
	cr_assert_str_eq(iovaq_backend_name(be), "sim");
	iovaq_backend_close(be);
}

Test(backend_open, opts_size)
{
	struct {
		struct iovaq_backend_opts o;
		uint64_t extra[2];
	} big;
	struct iovaq_backend *be = (struct iovaq_backend *)(uintptr_t)0x1;

	memset(&big, 0, sizeof(big));
	big.o.name = "sim";
	big.o.sz = 0;
	cr_assert_eq(iovaq_backend_open(&big.o, &be), -EINVAL, "sz 0");
	big.o.sz = sizeof(size_t) - 1;
	cr_assert_eq(iovaq_backend_open(&big.o, &be), -EINVAL, "sz below the size field");
	cr_assert_eq((uintptr_t)be, 0x1, "*out touched on failure");

	/* Larger than known: zero trailing bytes are fine, non-zero ones are -E2BIG. */
	big.o.sz = sizeof(big);
	big.extra[1] = 1;
	cr_assert_eq(iovaq_backend_open(&big.o, &be), -E2BIG, "non-zero trailing bytes");
	cr_assert_eq((uintptr_t)be, 0x1, "*out touched on failure");
	big.extra[1] = 0;
	big.extra[0] = 1ull << 63;
	cr_assert_eq(iovaq_backend_open(&big.o, &be), -E2BIG, "non-zero trailing bytes");
	big.extra[0] = 0;
	be = NULL;
	EXPECT_OK(iovaq_backend_open(&big.o, &be));
	iovaq_backend_close(be);

	/* An older caller's struct that ends after @name still opens what it names. */
	big.o.sz = offsetof(struct iovaq_backend_opts, name) + sizeof(big.o.name);
	big.o.name = "nope";
	cr_assert_eq(iovaq_backend_open(&big.o, &be), -ENOENT, "name ignored with a short sz");

	cr_assert_eq(iovaq_backend_open(NULL, NULL), -EINVAL, "out NULL");
}

Test(backend_open, bad_hooks)
{
	struct iovaq_alloc_hooks h = { NULL, NULL, NULL };
	IOVAQ_OPTS(iovaq_backend_opts, o, .name = "sim", .hooks = &h);
	struct iovaq_backend *be = (struct iovaq_backend *)(uintptr_t)0x1;

	cr_assert_eq(iovaq_backend_open(&o, &be), -EINVAL, "hooks without functions");
	cr_assert_eq((uintptr_t)be, 0x1);
}

/* ------------------------------------------------------------------------------------ */
/* Capabilities                                                                         */
/* ------------------------------------------------------------------------------------ */

Test(backend_caps, arguments)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	IOVAQ_OPTS(iovaq_backend_caps, c);

	cr_assert_eq(iovaq_backend_get_caps(NULL, &c), -EINVAL);
	cr_assert_eq(iovaq_backend_get_caps(be, NULL), -EINVAL);
	c.sz = 0;
	cr_assert_eq(iovaq_backend_get_caps(be, &c), -EINVAL, "caps.sz 0");
	c.sz = sizeof(size_t) - 1;
	cr_assert_eq(iovaq_backend_get_caps(be, &c), -EINVAL, "caps.sz below the size field");
	c.sz = sizeof(c);
	EXPECT_OK(iovaq_backend_get_caps(be, &c));
	cr_assert_eq(c.sz, sizeof(c));
	cr_assert_eq(c.granule, G);
	iovaq_backend_close(be);
}

/* An older caller's shorter struct: filled up to its sz, not one byte further. */
Test(backend_caps, short_struct_is_not_overrun)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	size_t sz = offsetof(struct iovaq_backend_caps, flags) + sizeof(uint32_t);
	union {
		struct iovaq_backend_caps c;
		uint8_t b[sizeof(struct iovaq_backend_caps) + 64];
	} u;

	memset(&u, 0xa5, sizeof(u));
	u.c.sz = sz;
	EXPECT_OK(iovaq_backend_get_caps(be, &u.c));
	cr_assert(u.c.flags & IOVAQ_CAP_FAULTS, "flags not filled: 0x%x", u.c.flags);
	for (size_t i = sz; i < sizeof(u.b); i++)
		cr_assert_eq(u.b[i], 0xa5, "get_caps wrote byte %zu beyond caps.sz %zu", i, sz);

	/* A newer caller's longer struct: the known part is filled. */
	memset(&u, 0, sizeof(u));
	u.c.sz = sizeof(u.b);
	EXPECT_OK(iovaq_backend_get_caps(be, &u.c));
	cr_assert_eq(u.c.granule, G);
	cr_assert_geq(u.c.n_apertures, 1);
	iovaq_backend_close(be);
}

/* ------------------------------------------------------------------------------------ */
/* Fault log and handles                                                                */
/* ------------------------------------------------------------------------------------ */

Test(backend_faults, arguments)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	struct iovaq_fault f[2];

	cr_assert_eq(iovaq_backend_faults(NULL, f, 2), -EINVAL);
	cr_assert_eq(iovaq_backend_faults(be, NULL, 1), -EINVAL);
	cr_assert_eq(iovaq_backend_faults(be, NULL, 0), 0);
	cr_assert_eq(iovaq_backend_faults(be, f, 0), 0);
	cr_assert_eq(iovaq_backend_faults(be, f, 2), 0, "fresh backend with faults logged");
	iovaq_backend_close(be);
}

Test(backend_handles, close_null_and_name)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);

	iovaq_backend_close(NULL);
	cr_assert_str_eq(iovaq_backend_name(be), "sim");
	cr_assert_eq(iovaq_backend_name(be), iovaq_backend_name(be), "name not static");
	iovaq_backend_close(be);
}

/* ------------------------------------------------------------------------------------ */
/* Scatter-gather maps (iovaq_backend_mapv)                                             */
/* ------------------------------------------------------------------------------------ */

/*
 * The sim has no mapv op: these test the generic fallback, one map per segment and the
 * rollback of the mapped ones on a failure. SG_IOVA is 2 MiB-aligned, far from IOVA 0.
 */
#define SG_IOVA (TU_TiB + 4 * TU_L2_SPAN)

struct sg_pieces {
	struct iovaq_seg seg[3];
	size_t len;	/* bytes in all */
};

/* Three host pieces of @p0, @p1, @p2 granules, each its own allocation with its own pattern. */
static struct sg_pieces sg_make(uint64_t p0, uint64_t p1, uint64_t p2)
{
	const uint64_t pages[3] = { p0, p1, p2 };
	struct sg_pieces s = { .len = 0 };

	for (int i = 0; i < 3; i++) {
		s.seg[i].len = pages[i] * G;
		s.seg[i].host = tu_host(s.seg[i].len, G, 0x100 + (uint64_t)i);
		s.len += s.seg[i].len;
	}
	return s;
}

static void sg_free(struct sg_pieces *s)
{
	for (int i = 0; i < 3; i++)
		free(s->seg[i].host);
}

/* The device reads each piece at its IOVA, and the whole range at once, without a fault. */
static void sg_dma_sees(struct iovaq_backend *be, iovaq_iova_t iova, const struct sg_pieces *s)
{
	uint8_t *all = malloc(s->len);
	size_t off = 0;

	cr_assert_not_null(all);
	for (int i = 0; i < 3; i++) {
		tu_dma_read_eq(iovaq_sim_of(be), iova + off, s->seg[i].host, s->seg[i].len);
		memcpy(all + off, s->seg[i].host, s->seg[i].len);
		off += s->seg[i].len;
	}
	tu_dma_read_eq(iovaq_sim_of(be), iova, all, s->len);
	free(all);
}

/* Every granule of [iova, iova + len) faults for the device, none through a stale entry. */
static void sg_dma_unmapped(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	for (size_t off = 0; off < len; off += G) {
		struct iovaq_sim_access r;
		uint8_t b;

		cr_assert_eq(tu_dma(iovaq_sim_of(be), iova + off, &b, 1, 0, &r), -EFAULT,
			     "0x%" PRIx64 " still reachable", iova + off);
		cr_assert_eq(r.stale_pages, 0, "0x%" PRIx64 " reachable through a stale entry",
			     iova + off);
	}
	tu_faults(be, (struct iovaq_fault[64]){ { 0 } }, 64);	/* drain the log */
}

/* Three segments land at consecutive IOVAs; one unmap of the whole range removes them all. */
Test(backend_mapv, three_segments)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	struct iovaq_sim *sim = iovaq_sim_of(be);
	struct sg_pieces s = sg_make(1, 3, 2);
	struct iovaq_sim_counters c0 = tu_counters(sim), c1;
	uint8_t w[2 * G];
	int ret;

	EXPECT_OK(iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE));
	c1 = tu_counters(sim);
	cr_assert_eq(c1.mapped_pages - c0.mapped_pages, 6);
	cr_assert_eq(c1.maps - c0.maps, 3, "the fallback maps each segment on its own");
	sg_dma_sees(be, SG_IOVA, &s);

	/* A device write across the 2nd/3rd boundary lands in the end of one, start of the other. */
	tu_fill(w, sizeof(w), 0x77);
	EXPECT_OK(tu_dma(sim, SG_IOVA + 3 * G, w, sizeof(w), 1, NULL));
	cr_assert_eq(memcmp((uint8_t *)s.seg[1].host + 2 * G, w, G), 0);
	cr_assert_eq(memcmp(s.seg[2].host, w + G, G), 0);

	/* Mapped now: a second map of any of it fails and changes nothing. */
	EXPECT_SIM_FAIL(sim, iovaq_backend_map(be, SG_IOVA + 5 * G, s.seg[0].host, G,
					       IOVAQ_PROT_READ),
			-EEXIST);
	ret = iovaq_backend_unmap(be, SG_IOVA, s.len);
	cr_assert_geq(ret, 0, "unmap of the whole range: %d (%s)", ret, iovaq_strerror(ret));
	cr_assert_eq(tu_counters(sim).mapped_pages, c0.mapped_pages);
	tu_flush_range(be, SG_IOVA, s.len);
	sg_dma_unmapped(be, SG_IOVA, s.len);
	iovaq_backend_close(be);
	sg_free(&s);
}

/* One segment is iovaq_backend_map(): one mapping. */
Test(backend_mapv, one_segment_is_a_map)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	struct iovaq_sim *sim = iovaq_sim_of(be);
	struct sg_pieces s = sg_make(4, 1, 1);
	struct iovaq_sim_counters c0 = tu_counters(sim);

	EXPECT_OK(iovaq_backend_mapv(be, SG_IOVA, s.seg, 1, IOVAQ_PROT_READ));
	cr_assert_eq(tu_counters(sim).maps - c0.maps, 1);
	tu_dma_read_eq(sim, SG_IOVA, s.seg[0].host, s.seg[0].len);
	cr_assert_geq(iovaq_backend_unmap(be, SG_IOVA, s.seg[0].len), 0);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, s.seg, 1, 0), -EINVAL);
	iovaq_backend_close(be);
	sg_free(&s);
}

/* Every bad argument: -EINVAL, and the sim did nothing at all (no map, no unmap, no flush). */
Test(backend_mapv, bad_input)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	struct iovaq_sim *sim = iovaq_sim_of(be);
	struct sg_pieces s = sg_make(1, 2, 1);
	const unsigned int r = IOVAQ_PROT_READ;
	const size_t huge = SIZE_MAX & ~(size_t)(G - 1);
	IOVAQ_OPTS(iovaq_backend_caps, caps);
	struct iovaq_seg bad[3];
	iovaq_iova_t top;

	EXPECT_OK(iovaq_backend_get_caps(be, &caps));
	top = caps.apertures[0].last + 1;
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(NULL, SG_IOVA, s.seg, 3, r), -EINVAL);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, NULL, 3, r), -EINVAL);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, s.seg, 0, r), -EINVAL);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA + 1, s.seg, 3, r), -EINVAL);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, 0, s.seg, 3, r), -EINVAL);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, 0), -EINVAL);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, 1u << 2), -EINVAL);
	/* The total leaves the aperture; the first segment alone would fit. */
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, top - 2 * G, s.seg, 3, r), -EINVAL);
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, top - G, s.seg, 2, r), -EINVAL);
	/* A bad segment anywhere, the last one included: nothing before it is mapped. */
	for (int i = 0; i < 3; i++) {
		memcpy(bad, s.seg, sizeof(bad));
		bad[i].host = NULL;
		EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, bad, 3, r), -EINVAL);
		bad[i].host = (uint8_t *)s.seg[i].host + 8;
		EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, bad, 3, r), -EINVAL);
		bad[i].host = s.seg[i].host;
		bad[i].len = 0;
		EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, bad, 3, r), -EINVAL);
		bad[i].len = s.seg[i].len + 1;
		EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, bad, 3, r), -EINVAL);
		bad[i].len = s.seg[i].len - 1;
		EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, bad, 3, r), -EINVAL);
	}
	/* Lengths each aligned whose sum overflows size_t and wraps to one granule. */
	memcpy(bad, s.seg, sizeof(bad));
	bad[0].len = huge;
	bad[1].len = huge;
	bad[2].len = 3 * G;
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, bad, 3, r), -EINVAL);
	bad[1].len = 2 * G;
	EXPECT_SIM_FAIL(sim, iovaq_backend_mapv(be, SG_IOVA, bad, 2, r), -EINVAL);
	cr_assert_eq(tu_counters(sim).mapped_pages, 0);
	/* The same IOVA still takes the whole list. */
	EXPECT_OK(iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, r));
	sg_dma_sees(be, SG_IOVA, &s);
	iovaq_backend_close(be);
	sg_free(&s);
}

/*
 * The 2nd segment overlaps an existing mapping: -EEXIST, and the 1st segment, already mapped,
 * is unmapped and invalidated again. The 1st covers a whole 2 MiB level-1 table of its own,
 * so its unmap frees that table, which the sim releases only on a non-leaf invalidation: the
 * table count coming back shows the rollback's invalidation (a leaf-only one or none would
 * leave it quarantined).
 */
Test(backend_mapv, overlap_rolls_back)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	struct iovaq_sim *sim = iovaq_sim_of(be);
	struct sg_pieces s = sg_make(TU_L2_SPAN / G, 2, 1);
	uint8_t *x = tu_host(G, G, 0x55);
	const iovaq_iova_t xiova = SG_IOVA + TU_L2_SPAN + G;	/* the 2nd segment's 2nd page */
	struct iovaq_sim_counters c0, c1;

	EXPECT_OK(iovaq_backend_map(be, xiova, x, G, IOVAQ_PROT_READ));
	c0 = tu_counters(sim);
	cr_assert_eq(iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, IOVAQ_PROT_READ), -EEXIST);
	c1 = tu_counters(sim);
	cr_assert_eq(c1.mapped_pages, c0.mapped_pages, "the 1st segment stayed mapped");
	cr_assert_eq(c1.maps - c0.maps, 1, "the 1st segment was not mapped before the overlap");
	cr_assert_eq(c1.unmaps - c0.unmaps, 1, "the rollback is one unmap");
	cr_assert_eq(c1.flushes - c0.flushes, 1, "the rollback was not invalidated");
	cr_assert_eq(c1.inval_cmds[IOVAQ_INVAL_PAGES] - c0.inval_cmds[IOVAQ_INVAL_PAGES], 1);
	cr_assert_eq(c1.inval_leaf, c0.inval_leaf, "a leaf-only rollback command");
	cr_assert_eq(c1.table_pages, c0.table_pages, "the freed table is still quarantined");
	cr_assert_eq(c1.table_pages_freed - c0.table_pages_freed, 1);
	cr_assert_eq(c1.bad_leaf_invals, 0);
	sg_dma_unmapped(be, SG_IOVA, TU_L2_SPAN);
	tu_dma_read_eq(sim, xiova, x, G);	/* the other mapping is untouched */

	/* Nothing of the failed call is left: its 1st segment's range maps again. */
	EXPECT_OK(iovaq_backend_map(be, SG_IOVA, s.seg[0].host, s.seg[0].len, IOVAQ_PROT_READ));
	tu_dma_read_eq(sim, SG_IOVA, s.seg[0].host, s.seg[0].len);
	iovaq_backend_close(be);
	sg_free(&s);
	free(x);
}

/*
 * A map fault injected at the k-th segment: the error comes back, the k - 1 before it are
 * rolled back (one unmap, one flush; none for k = 1), and the whole list maps afterwards.
 */
Test(backend_mapv, injected_fault_at_kth_segment)
{
	for (uint64_t k = 1; k <= 3; k++) {
		struct iovaq_backend *be = tu_sim_open(NULL, NULL);
		struct iovaq_sim *sim = iovaq_sim_of(be);
		struct sg_pieces s = sg_make(2, 1, 3);
		struct iovaq_sim_counters c0 = tu_counters(sim), c1;
		int ret;

		EXPECT_OK(iovaq_sim_fail_nth(sim, IOVAQ_SIM_OP_MAP, k, -EIO));
		ret = iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, IOVAQ_PROT_READ);
		cr_assert_eq(ret, -EIO, "k %" PRIu64 ": %d", k, ret);
		c1 = tu_counters(sim);
		cr_assert_eq(c1.mapped_pages, 0, "k %" PRIu64 ": pages left mapped", k);
		cr_assert_eq(c1.maps - c0.maps, k - 1);
		cr_assert_eq(c1.unmaps - c0.unmaps, k > 1, "k %" PRIu64, k);
		cr_assert_eq(c1.flushes - c0.flushes, k > 1, "k %" PRIu64, k);
		sg_dma_unmapped(be, SG_IOVA, s.len);
		EXPECT_OK(iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, IOVAQ_PROT_READ));
		sg_dma_sees(be, SG_IOVA, &s);
		cr_assert_geq(iovaq_backend_unmap(be, SG_IOVA, s.len), 0);
		cr_assert_eq(tu_counters(sim).mapped_pages, 0);
		iovaq_backend_close(be);
		sg_free(&s);
	}
}

/* The rollback's one unmap fails too: it unmaps segment by segment instead. */
Test(backend_mapv, rollback_survives_a_failed_unmap)
{
	struct iovaq_backend *be = tu_sim_open(NULL, NULL);
	struct iovaq_sim *sim = iovaq_sim_of(be);
	struct sg_pieces s = sg_make(1, 2, 1);
	struct iovaq_sim_counters c0 = tu_counters(sim), c1;

	EXPECT_OK(iovaq_sim_fail_nth(sim, IOVAQ_SIM_OP_MAP, 3, -EIO));
	EXPECT_OK(iovaq_sim_fail_nth(sim, IOVAQ_SIM_OP_UNMAP, 1, -EIO));
	cr_assert_eq(iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, IOVAQ_PROT_READ), -EIO);
	c1 = tu_counters(sim);
	cr_assert_eq(c1.mapped_pages, 0);
	cr_assert_eq(c1.unmaps - c0.unmaps, 2, "one unmap per mapped segment");
	cr_assert_eq(c1.flushes - c0.flushes, 1);
	sg_dma_unmapped(be, SG_IOVA, s.len);
	EXPECT_OK(iovaq_backend_mapv(be, SG_IOVA, s.seg, 3, IOVAQ_PROT_READ));
	iovaq_backend_close(be);
	sg_free(&s);
}
