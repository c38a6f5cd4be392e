/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
#ifndef IOVAQ_VERSION_H
#define IOVAQ_VERSION_H

#include <iovaq/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOVAQ_VERSION_MAJOR 0
#define IOVAQ_VERSION_MINOR 1
#define IOVAQ_VERSION_PATCH 0
#define IOVAQ_VERSION_STRING "0.1.0"
/* One number that orders releases: major << 16 | minor << 8 | patch. */
#define IOVAQ_VERSION_NUMBER \
	((IOVAQ_VERSION_MAJOR << 16) | (IOVAQ_VERSION_MINOR << 8) | IOVAQ_VERSION_PATCH)

/**
 * iovaq_version() - the version of the library actually loaded.
 *
 * Context: any thread.
 * Return: a static string such as "0.1.0".
 */
IOVAQ_API const char *iovaq_version(void);

/**
 * iovaq_version_number() - the loaded library's IOVAQ_VERSION_NUMBER.
 *
 * Context: any thread.
 * Return: major << 16 | minor << 8 | patch.
 */
IOVAQ_API unsigned int iovaq_version_number(void);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_VERSION_H */
