/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The backend operations table. Every backend is one static const instance; the library reaches
 * it only through the iovaq_backend_*() wrappers in backend.c, which validate arguments that
 * every backend would validate the same way (alignment, apertures, command lists) before an op
 * runs. So an op may assume:
 *  - iova, host and len are aligned to caps.granule, len > 0, and [iova, iova + len) lies in
 *    one aperture;
 *  - prot is a non-empty subset of IOVAQ_PROT_READ | IOVAQ_PROT_WRITE;
 *  - every command is of a kind in caps.inval_kinds, with known flags, zero reserved bytes,
 *    am <= caps.max_am and aligned addresses.
 */
#ifndef IOVAQ_BACKEND_PRIV_H
#define IOVAQ_BACKEND_PRIV_H

#include <iovaq/backend.h>
#include "port.h"

struct iovaq_backend;

/**
 * struct iovaq_backend_ops - one backend.
 * @name: the name iovaq_backend_open() knows it by.
 * @open: create the backend from its own options (NULL: defaults) and fill be->caps. Context:
 *	may block and allocate. Return 0 or a negative errno; on failure nothing is left behind.
 * @close: release everything; no other op runs concurrently or afterwards.
 * @map: map; -EEXIST on overlap, nothing changed on any error. Context: thread-safe, may block.
 * @mapv: optional; map @nsegs segments of @len bytes in all (each validated as for @map, all
 *	inside one aperture) at consecutive IOVAs as one mapping; -EEXIST on overlap, nothing
 *	changed on any error. Without it iovaq_backend_mapv() maps segment by segment.
 *	Context: as @map.
 * @unmap: unmap whole mappings without invalidating where the hardware allows; 0, or
 *	IOVAQ_UNMAP_FREED_TABLES if table pages were freed; -EINVAL if the range splits a
 *	mapping, -ENOENT if it holds none. Context: thread-safe, may block.
 * @flush: execute commands in order and wait for completion. Context: thread-safe, may block.
 * @faults: optional; drain up to @max fault-log entries. Context: thread-safe.
 * @device_fd: optional; the VFIO device fd the backend owns, or -ENODEV.
 * @pinned_bytes: optional; host bytes the kernel keeps pinned. Context: thread-safe.
 */
struct iovaq_backend_ops {
	const char *name;
	int (*open)(const void *backend_opts, const struct iovaq_alloc_hooks *hooks,
		    struct iovaq_backend **out);
	void (*close)(struct iovaq_backend *be);
	int (*map)(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		   unsigned int prot);
	int (*mapv)(struct iovaq_backend *be, iovaq_iova_t iova, const struct iovaq_seg *segs,
		    size_t nsegs, size_t len, unsigned int prot);
	int (*unmap)(struct iovaq_backend *be, iovaq_iova_t iova, size_t len);
	int (*flush)(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n);
	int (*faults)(struct iovaq_backend *be, struct iovaq_fault *out, size_t max);
	int (*device_fd)(const struct iovaq_backend *be);
	uint64_t (*pinned_bytes)(struct iovaq_backend *be);
};

/*
 * struct iovaq_backend - the part every backend embeds (first), recovered with
 * iovaq_container_of(). All fields are set by open and constant afterwards.
 */
struct iovaq_backend {
	const struct iovaq_backend_ops *ops;
	const struct iovaq_alloc_hooks *hooks;
	struct iovaq_backend_caps caps;
};

extern const struct iovaq_backend_ops iovaq_sim_ops;
/* NULL when not built here; then *_missing says why (src/backend/iommufd.c, vfio_type1.c). */
extern const struct iovaq_backend_ops *const iovaq_iommufd_ops;
extern const char iovaq_iommufd_missing[];
extern const struct iovaq_backend_ops *const iovaq_vfio_type1_ops;
extern const char iovaq_vfio_type1_missing[];
/* NULL without the kshim uapi header (src/backend/kshim.c). */
extern const struct iovaq_backend_ops *const iovaq_kshim_ops;
extern const char iovaq_kshim_missing[];

#endif /* IOVAQ_BACKEND_PRIV_H */
