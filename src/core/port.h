/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The portability boundary of src/core/.
 *
 * The core compiles unchanged in userspace (libc, pthreads) and inside a kernel module
 * (spinlocks, per-CPU data, ktime, kmalloc). Core files include this header and never a libc
 * or kernel header directly. Each environment provides:
 *
 *  - iovaq_lock_t, iovaq_lock_init/_destroy/_lock/_unlock: a short, non-recursive lock held
 *    for O(log n) work at most (or one magazine's worth of frees);
 *  - IOVAQ_READ_ONCE/IOVAQ_WRITE_ONCE (relaxed, untorn), iovaq_atomic_add (a relaxed
 *    counter add) and iovaq_atomic_inc_return (sequentially consistent), on uint64_t;
 *  - iovaq_cpu_id() (the CPU the caller runs on now; may change right after) and
 *    iovaq_ncpus() (number of configured CPUs);
 *  - iovaq_now_ns() (monotonic nanoseconds);
 *  - iovaq_memset/iovaq_memcpy/iovaq_memmove, iovaq_sort, iovaq_snprintf;
 *  - IOVAQ_TLS, iovaq_once and thread-exit callbacks (the cache's per-thread fronts), and
 *    IOVAQ_PORT_THREAD_FRONTS: 1 where they exist; 0 in the kernel, where the cache runs on
 *    its per-CPU magazines alone (port_kernel.h says why);
 *  - IOVAQ_DEFINE_LOCK(name): a statically initialised lock;
 *  - iovaq_thread_t/iovaq_cond_t: the domain's flusher thread (a kthread in the kernel).
 * This header adds IOVAQ_TRACEn(), the static trace points (below).
 */
#ifndef IOVAQ_PORT_H
#define IOVAQ_PORT_H

#ifdef __KERNEL__
#include "port_kernel.h"
#else
#include "port_user.h"
#endif

/*
 * Static trace points: USDT probes of provider "iovaq" (docs/tracing.md), IOVAQ_TRACEn(name,
 * n integer arguments). Each is a nop in the code and a note in the ELF file until a tracer
 * (bpftrace, perf, SystemTap) attaches. Built where <sys/sdt.h> exists (CMake option
 * IOVAQ_USDT defines IOVAQ_WITH_USDT); elsewhere, and in the kernel, they compile to
 * nothing: the arguments are only cast to void (none of them has side effects).
 */
#if defined(IOVAQ_WITH_USDT) && !defined(__KERNEL__)
#include <sys/sdt.h>
#define IOVAQ_TRACE1(n, a) DTRACE_PROBE1(iovaq, n, a)
#define IOVAQ_TRACE2(n, a, b) DTRACE_PROBE2(iovaq, n, a, b)
#define IOVAQ_TRACE3(n, a, b, c) DTRACE_PROBE3(iovaq, n, a, b, c)
#else
#define IOVAQ_TRACE1(n, a) ((void)(a))
#define IOVAQ_TRACE2(n, a, b) ((void)(a), (void)(b))
#define IOVAQ_TRACE3(n, a, b, c) ((void)(a), (void)(b), (void)(c))
#endif

#define iovaq_likely(x) __builtin_expect(!!(x), 1)
#define iovaq_unlikely(x) __builtin_expect(!!(x), 0)

#define IOVAQ_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define iovaq_container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define IOVAQ_CACHELINE 64

#define IOVAQ_READ_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define IOVAQ_WRITE_ONCE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define iovaq_atomic_add(p, v) ((void)__atomic_fetch_add((p), (v), __ATOMIC_RELAXED))
#define iovaq_atomic_inc_return(p) (__atomic_add_fetch((p), 1, __ATOMIC_SEQ_CST))

/*
 * Increment a counter that only its owner writes but others may read at any time (with
 * IOVAQ_READ_ONCE). A plain increment of an aligned 64-bit word compiles to one untorn store
 * on every CPU the library supports, and readers accept a stale value; under ThreadSanitizer
 * the store is a relaxed atomic so that the intent is visible to the tool.
 */
#if defined(__SANITIZE_THREAD__)
#define IOVAQ_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IOVAQ_TSAN 1
#endif
#endif
#ifdef IOVAQ_TSAN
#define IOVAQ_OWNER_INC(x) IOVAQ_WRITE_ONCE(x, (x) + 1)
#else
#define IOVAQ_OWNER_INC(x) ((x)++)
#endif

static inline int iovaq_is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

/* floor(log2(x)) for x > 0. */
static inline unsigned int iovaq_ilog2(uint64_t x)
{
	return 63u - (unsigned int)__builtin_clzll(x);
}

/* ceil(log2(x)) for x > 0. */
static inline unsigned int iovaq_order_ceil(uint64_t x)
{
	return x <= 1 ? 0 : 64u - (unsigned int)__builtin_clzll(x - 1);
}

/* Reads of an options struct that may be older (shorter) than this library's. */
#define IOVAQ_OPTS_HAS(opts, field) \
	((opts) && (opts)->sz >= offsetof(__typeof__(*(opts)), field) + sizeof((opts)->field))
#define IOVAQ_OPTS_GET(opts, field, def) (IOVAQ_OPTS_HAS(opts, field) ? (opts)->field : (def))

/**
 * iovaq_opts_check() - validate the size prefix of an options or stats struct.
 * @p: the struct (its first member is size_t sz).
 * @min_sz: the smallest size the library accepts (up to and including the first field).
 * @known_sz: sizeof the struct as this library knows it.
 *
 * Return: 0; -EINVAL if @p is NULL or too small; -E2BIG if the caller's struct is larger than
 * @known_sz and any byte beyond it is non-zero (a field this library would ignore).
 */
static inline int iovaq_opts_check(const void *p, size_t min_sz, size_t known_sz)
{
	const unsigned char *b = (const unsigned char *)p;
	size_t sz, i;

	if (!p)
		return -EINVAL;
	iovaq_memcpy(&sz, p, sizeof(sz));
	if (sz < min_sz)
		return -EINVAL;
	for (i = known_sz; i < sz; i++)
		if (b[i])
			return -E2BIG;
	return 0;
}

/* Metadata allocation through the caller's hooks. */
static inline void *iovaq_hooks_alloc(const struct iovaq_alloc_hooks *h, size_t size, size_t align)
{
	return h->alloc(h->ctx, size, align);
}

static inline void iovaq_hooks_free(const struct iovaq_alloc_hooks *h, void *p, size_t size)
{
	if (p)
		h->free(h->ctx, p, size);
}

#endif /* IOVAQ_PORT_H */
