/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/mutex.h> and <linux/spinlock.h>: both are pthread mutexes
 * (ThreadSanitizer and valgrind understand them). Nothing here checks the kernel's rules
 * (no sleeping under a spinlock): that is the module build's and the VM tier's job.
 */
#ifndef KSTUB_LINUX_MUTEX_H
#define KSTUB_LINUX_MUTEX_H

#include <pthread.h>
#include <linux/kernel.h>

struct mutex {
	pthread_mutex_t m;
};
#define DEFINE_MUTEX(name) struct mutex name = { PTHREAD_MUTEX_INITIALIZER }

static inline void mutex_init(struct mutex *l)
{
	pthread_mutex_init(&l->m, NULL);
}

static inline void mutex_destroy(struct mutex *l)
{
	pthread_mutex_destroy(&l->m);
}

static inline void mutex_lock(struct mutex *l)
{
	pthread_mutex_lock(&l->m);
}

static inline void mutex_unlock(struct mutex *l)
{
	pthread_mutex_unlock(&l->m);
}

typedef struct {
	pthread_mutex_t m;
} spinlock_t;
#define DEFINE_SPINLOCK(name) spinlock_t name = { PTHREAD_MUTEX_INITIALIZER }

static inline void spin_lock_init(spinlock_t *l)
{
	pthread_mutex_init(&l->m, NULL);
}

static inline void spin_lock(spinlock_t *l)
{
	pthread_mutex_lock(&l->m);
}

static inline void spin_unlock(spinlock_t *l)
{
	pthread_mutex_unlock(&l->m);
}

#endif
