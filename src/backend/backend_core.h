/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * What the core calls in a backend beyond the public iovaq_backend_*() API: entry points
 * that skip checks the core has already made. Defined by src/backend/backend.c in userspace
 * and by kernel-glue/iovaq_backend.c in the kernel.
 */
#ifndef IOVAQ_BACKEND_CORE_H
#define IOVAQ_BACKEND_CORE_H

#include <iovaq/backend.h>

/*
 * iovaq__backend_mapv() - iovaq_backend_mapv() for segments the caller has checked: each
 * host non-NULL and granule-aligned, each length a non-zero multiple of the granule, @len
 * their total (no overflow), @nsegs >= 2. The range and @prot are still checked here, as is
 * whatever only the backend knows (kernel: user and kernel memory not mixed). An arena link
 * of one segment per page checks each segment once instead of twice.
 */
int iovaq__backend_mapv(struct iovaq_backend *be, iovaq_iova_t iova,
			const struct iovaq_seg *segs, size_t nsegs, size_t len, unsigned int prot);

#endif /* IOVAQ_BACKEND_CORE_H */
