/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq: shared definitions for every public header.
 *
 * Units and conventions used across the API:
 * - An IOVA is an IO virtual address in bytes, typed iovaq_iova_t, never a pointer.
 * - Sizes given "in granules" count allocation granules (the space's granule, 4 KiB by
 *   default); sizes "in bytes" say so.
 * - A struct iovaq_range is inclusive on both ends: [start, last].
 * - Functions return 0 (or a non-negative count) on success and a negative errno on failure.
 *   Destroy functions return void and accept NULL.
 */
#ifndef IOVAQ_COMMON_H
#define IOVAQ_COMMON_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/stddef.h>
#else
#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#endif

#ifdef __cplusplus
extern "C" {
#endif

#if defined(IOVAQ_BUILDING_LIB) && !defined(__KERNEL__)
#define IOVAQ_API __attribute__((visibility("default")))
#else
#define IOVAQ_API
#endif

/** typedef iovaq_iova_t - an IO virtual address, in bytes. */
typedef uint64_t iovaq_iova_t;

/**
 * struct iovaq_range - an inclusive range of IOVAs, [start, last], in bytes.
 * @start: first byte of the range.
 * @last: last byte of the range (inclusive), so that a range may end at UINT64_MAX.
 */
struct iovaq_range {
	iovaq_iova_t start;
	iovaq_iova_t last;
};

/* The x86 interrupt (MSI) window, which DMA must never target: reserve it as a hole. */
#define IOVAQ_X86_MSI_START 0xfee00000ULL
#define IOVAQ_X86_MSI_LAST 0xfeefffffULL

/* The largest limit: any IOVA acceptable (a 64-bit DMA mask). */
#define IOVAQ_LIMIT_NONE UINT64_MAX

/**
 * IOVAQ_OPTS() - declare and initialise a size-prefixed options struct.
 * @TYPE: struct tag without "struct", e.g. iovaq_space_opts.
 * @NAME: variable name.
 *
 * Every options and stats struct starts with "size_t sz". The library reads only the fields
 * that fit in @sz (older callers get defaults for newer fields) and rejects a struct whose
 * bytes beyond the fields it knows are not all zero (-E2BIG), so that a newer caller's
 * request is never silently ignored.
 *
 *	IOVAQ_OPTS(iovaq_space_opts, o, .apertures = &ap, .n_apertures = 1);
 */
#define IOVAQ_OPTS(TYPE, NAME, ...) struct TYPE NAME = { .sz = sizeof(struct TYPE), __VA_ARGS__ }

/**
 * struct iovaq_alloc_hooks - where the library allocates its own metadata.
 * @alloc: return @size bytes aligned to @align (a power of two, at most 4096), or NULL.
 *	Called from slow paths only, possibly concurrently from several threads.
 * @free: release memory from @alloc; @size is the size that was requested.
 * @ctx: passed back to both.
 *
 * Metadata means tree nodes, magazines and per-CPU and per-thread structures, never IOVAs.
 */
struct iovaq_alloc_hooks {
	void *(*alloc)(void *ctx, size_t size, size_t align);
	void (*free)(void *ctx, void *ptr, size_t size);
	void *ctx;
};

/**
 * iovaq_default_alloc_hooks() - the hooks used when a caller passes none.
 *
 * With IOVAQ_WITH_JEMALLOC, a private jemalloc arena (mallocx with MALLOCX_ARENA and no
 * thread cache), created on first use; otherwise aligned_alloc() and free().
 *
 * Context: any thread.
 * Return: a pointer to static, immutable hooks.
 */
IOVAQ_API const struct iovaq_alloc_hooks *iovaq_default_alloc_hooks(void);

/**
 * iovaq_strerror() - a short description of a libiovaq error code.
 * @err: a negative errno returned by a libiovaq function (the sign is ignored).
 *
 * Context: any thread.
 * Return: a static string; never NULL.
 */
IOVAQ_API const char *iovaq_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* IOVAQ_COMMON_H */
