/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Error texts for the errno values libiovaq documents. The library's own wording, so that
 * the kernel build (which has no strerror) prints the same words as userspace.
 */
#include <iovaq/common.h>
#include "port.h"

static const struct {
	int err;
	const char *text;
} iovaq_errors[] = {
	{ 0, "success" },
	{ EINVAL, "invalid argument" },
	{ ENOSPC, "IOVA space exhausted" },
	{ ENOMEM, "out of memory for metadata" },
	{ E2BIG, "options struct has non-zero bytes this library does not know" },
	{ EBUSY, "range is allocated or reserved" },
	{ EEXIST, "already mapped" },
	{ ENOENT, "not found" },
	{ EOPNOTSUPP, "operation not supported by this backend or build" },
	{ EUCLEAN, "internal state is inconsistent (invariant check failed)" },
	{ EIO, "backend I/O error" },
	{ EAGAIN, "try again" },
	{ ETIMEDOUT, "timed out" },
};

const char *iovaq_strerror(int err)
{
	/* Magnitude without negating INT_MIN. */
	unsigned int mag = err < 0 ? 0u - (unsigned int)err : (unsigned int)err;
	size_t i;

	for (i = 0; i < IOVAQ_ARRAY_SIZE(iovaq_errors); i++)
		if ((unsigned int)iovaq_errors[i].err == mag)
			return iovaq_errors[i].text;
	return "unknown error";
}
