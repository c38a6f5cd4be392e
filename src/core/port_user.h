/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace side of the portability boundary (see port.h). The only place in src/core/ that
 * includes libc and pthread headers.
 */
#ifndef IOVAQ_PORT_USER_H
#define IOVAQ_PORT_USER_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <iovaq/common.h>

#ifndef EUCLEAN
#define EUCLEAN 117
#endif

#define IOVAQ_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

typedef pthread_mutex_t iovaq_lock_t;
#define IOVAQ_LOCK_INITIALIZER PTHREAD_MUTEX_INITIALIZER
/* A statically initialised lock (the kernel's mutexes need their name to initialise). */
#define IOVAQ_DEFINE_LOCK(name) iovaq_lock_t name = PTHREAD_MUTEX_INITIALIZER

static inline void iovaq_lock_init(iovaq_lock_t *l)
{
	pthread_mutex_init(l, NULL);
}

static inline void iovaq_lock_destroy(iovaq_lock_t *l)
{
	pthread_mutex_destroy(l);
}

static inline void iovaq_lock(iovaq_lock_t *l)
{
	pthread_mutex_lock(l);
}

static inline void iovaq_unlock(iovaq_lock_t *l)
{
	pthread_mutex_unlock(l);
}

static inline unsigned int iovaq_cpu_id(void)
{
	int cpu = sched_getcpu();

	return cpu < 0 ? 0u : (unsigned int)cpu;
}

static inline unsigned int iovaq_ncpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	return n < 1 ? 1u : (unsigned int)n;
}

static inline uint64_t iovaq_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define iovaq_memset memset
#define iovaq_memcpy memcpy
#define iovaq_memmove memmove
#define iovaq_snprintf snprintf

static inline void iovaq_sort(void *base, size_t n, size_t size,
			      int (*cmp)(const void *, const void *))
{
	if (n > 1)
		qsort(base, n, size, cmp);
}

/*
 * Per-thread storage with an exit callback. The core keeps one pointer per thread (its list
 * of per-thread cache fronts) and asks to be called when the thread exits.
 */
#define IOVAQ_TLS __thread __attribute__((tls_model("initial-exec")))
/* The magazine cache's lock-free per-thread fronts exist here (port_kernel.h: why not there). */
#define IOVAQ_PORT_THREAD_FRONTS 1

/**
 * iovaq_thread_exit_arm() - make sure @fn runs with @arg when the calling thread exits.
 * Idempotent per thread for the same key; @fn runs once per arming.
 */
typedef pthread_key_t iovaq_thread_key_t;
typedef pthread_once_t iovaq_once_t;
#define IOVAQ_ONCE_INIT PTHREAD_ONCE_INIT

static inline void iovaq_once(iovaq_once_t *once, void (*fn)(void))
{
	pthread_once(once, fn);
}

static inline int iovaq_thread_key_create(iovaq_thread_key_t *key, void (*fn)(void *))
{
	return -pthread_key_create(key, fn);
}

static inline int iovaq_thread_exit_arm(iovaq_thread_key_t key, void *arg)
{
	return -pthread_setspecific(key, arg);
}

/* Threads and condition variables (the domain's flusher thread). */
typedef pthread_t iovaq_thread_t;
typedef pthread_cond_t iovaq_cond_t;

static inline int iovaq_thread_start(iovaq_thread_t *t, void *(*fn)(void *), void *arg)
{
	return -pthread_create(t, NULL, fn, arg);
}

static inline void iovaq_thread_join(iovaq_thread_t t)
{
	pthread_join(t, NULL);
}

/* Condition variables time out against the monotonic clock, like iovaq_now_ns(). */
static inline void iovaq_cond_init(iovaq_cond_t *c)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(c, &a);
	pthread_condattr_destroy(&a);
}

static inline void iovaq_cond_destroy(iovaq_cond_t *c)
{
	pthread_cond_destroy(c);
}

static inline void iovaq_cond_signal(iovaq_cond_t *c)
{
	pthread_cond_signal(c);
}

/* Wait until signalled or until monotonic time @deadline_ns (0: no deadline). */
static inline void iovaq_cond_wait_until(iovaq_cond_t *c, iovaq_lock_t *l, uint64_t deadline_ns)
{
	struct timespec ts;

	if (!deadline_ns) {
		pthread_cond_wait(c, l);
		return;
	}
	ts.tv_sec = (time_t)(deadline_ns / 1000000000ull);
	ts.tv_nsec = (long)(deadline_ns % 1000000000ull);
	pthread_cond_timedwait(c, l, &ts);
}

#endif /* IOVAQ_PORT_USER_H */
