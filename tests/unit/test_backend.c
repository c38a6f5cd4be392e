// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Unit tests of the generic backend layer (include/iovaq/backend.h) that do not depend on a
 * backend configuration: opening by name, by IOVAQ_BACKEND and with size-prefixed options, the
 * per-thread reason of a failed open, the caps and fault-log argument checks. What every
 * backend must do with mappings and commands is the contract suite (tests/contract/).
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
