/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Default metadata allocator hooks (userspace). With IOVAQ_WITH_JEMALLOC the library's
 * metadata lives in a private jemalloc arena without a thread cache, so that the library's
 * slow paths neither share an arena lock with the application's mallocs nor hold memory in
 * thread caches after a drain. Otherwise plain aligned_alloc()/free().
 */
#include <errno.h>
#include <stdlib.h>
#include <pthread.h>
#include <iovaq/common.h>

#ifdef IOVAQ_WITH_JEMALLOC
#include <jemalloc/jemalloc.h>

static unsigned int arena;
static int arena_ok;
static pthread_once_t arena_once = PTHREAD_ONCE_INIT;

static void arena_init(void)
{
	size_t sz = sizeof(arena);

	arena_ok = mallctl("arenas.create", &arena, &sz, NULL, 0) == 0;
}

static void *je_alloc(void *ctx, size_t size, size_t align)
{
	int flags = MALLOCX_ALIGN(align) | MALLOCX_TCACHE_NONE;

	(void)ctx;
	pthread_once(&arena_once, arena_init);
	if (arena_ok)
		flags |= MALLOCX_ARENA(arena);
	return mallocx(size ? size : 1, flags);
}

static void je_free(void *ctx, void *p, size_t size)
{
	(void)ctx;
	(void)size;
	dallocx(p, MALLOCX_TCACHE_NONE);
}

static const struct iovaq_alloc_hooks default_hooks = { .alloc = je_alloc, .free = je_free };
#else
static void *libc_alloc(void *ctx, size_t size, size_t align)
{
	(void)ctx;
	/* aligned_alloc() wants a size that is a multiple of the alignment. */
	return aligned_alloc(align, (size + align - 1) & ~(align - 1));
}

static void libc_free(void *ctx, void *p, size_t size)
{
	(void)ctx;
	(void)size;
	free(p);
}

static const struct iovaq_alloc_hooks default_hooks = { .alloc = libc_alloc, .free = libc_free };
#endif

const struct iovaq_alloc_hooks *iovaq_default_alloc_hooks(void)
{
	return &default_hooks;
}
