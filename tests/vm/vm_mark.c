// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * vm-mark N: put marker N into QEMU's VT-d trace (tests/vm/guest-bench.sh, docs/vm-testbed.md).
 *
 * The guest cannot write into the host's trace file, but it can make QEMU emit a traced event
 * that carries a number: a DMA fault. This opens the edu device through the vfio-type1 backend
 * (a fresh container with nothing mapped) and lets edu read one page at IOVA
 * VM_MARK_BASE + N * 4096; QEMU traces "vtd_dmar_fault ... addr 0x..." and the host
 * (tests/vm/bench-summary.sh) splits the trace at these addresses, so that the invalidation
 * descriptors between two markers belong to what the guest ran between them.
 *
 * The device is IOVAQ_TEST_EDU (DDDD:BB:DD.F). Exit 0 when the fault was seen (the DMAR fault
 * interrupt count moved), 1 otherwise, 2 on bad usage.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <iovaq/iovaq.h>

#include "edu.h"

#define VM_MARK_BASE 0x40000000ull
#define VM_MARK_MAX 65535u

int main(int argc, char **argv)
{
	const char *dev = getenv("IOVAQ_TEST_EDU");
	struct iovaq_backend *be = NULL;
	char why[256] = "", *end;
	unsigned long n;
	uint64_t f0;
	struct edu e;
	int err, hit;

	if (argc != 2 || !dev || !*dev) {
		fprintf(stderr, "usage: IOVAQ_TEST_EDU=DDDD:BB:DD.F vm-mark N (0..%u)\n", VM_MARK_MAX);
		return 2;
	}
	n = strtoul(argv[1], &end, 10);
	if (*end || end == argv[1] || n > VM_MARK_MAX) {
		fprintf(stderr, "vm-mark: bad marker '%s' (0..%u)\n", argv[1], VM_MARK_MAX);
		return 2;
	}
	IOVAQ_OPTS(iovaq_vfio_type1_opts, vo, .device = dev);
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "vfio-type1", .backend_opts = &vo);
	err = iovaq_backend_open(&bo, &be);
	if (err) {
		fprintf(stderr, "vm-mark: vfio-type1 on %s: %s: %s\n", dev, iovaq_strerror(err),
			iovaq_backend_why());
		return 1;
	}
	err = edu_init(&e, iovaq_backend_device_fd(be), why, sizeof(why));
	f0 = edu_dmar_faults();
	if (!err)
		err = edu_xfer(&e, VM_MARK_BASE + n * 4096, EDU_BUF, 8, 0);
	hit = !err && edu_faulted(f0);
	iovaq_backend_close(be);
	if (err)
		fprintf(stderr, "vm-mark: edu: %s %s\n", strerror(-err), why);
	else if (!hit)
		fprintf(stderr, "vm-mark: marker %lu raised no DMAR fault\n", n);
	return hit ? 0 : 1;
}
