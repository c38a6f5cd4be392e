/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Kernel side of the portability boundary (see port.h), used when src/core/ is compiled into
 * the kernel-glue module (kernel-glue/Kbuild). The only place in src/core/ that includes
 * kernel headers.
 *
 * Choices, and why (docs/kernel-glue.md has the long form):
 *
 *  - iovaq_lock_t is a struct mutex. The core calls the metadata allocator and, under the
 *    domain's flush lock, the backend's flush while holding its locks; in the kernel those
 *    allocate with GFP_KERNEL and may wait for an invalidation to complete, so the core's
 *    locks must be sleeping locks. Every core entry point is therefore process context only
 *    (the module's ioctls, its kthread, or a kernel caller that may sleep). Per-CPU slots are
 *    still indexed by the CPU the caller runs on (raw_smp_processor_id()); a migration right
 *    after costs locality, never correctness, as in userspace.
 *  - The magazine cache's lock-free per-thread front (IOVAQ_TLS, thread-exit keys) has no
 *    kernel counterpart that keeps its contract: a front is written without atomics by one
 *    owner, which in the kernel means preemption disabled around it, and then its slow paths
 *    (refill, spill) would have to take spinlocks and allocate with GFP_ATOMIC. The kernel
 *    build sets IOVAQ_PORT_THREAD_FRONTS to 0 instead, and the cache runs as it does with
 *    IOVAQ_CACHE_NO_FRONT: per-CPU loaded/prev magazines behind a per-CPU lock, which is
 *    exactly the shape of Linux's own iova rcache (drivers/iommu/iova.c). IOVAQ_TLS expands
 *    to nothing; the thread-key calls exist only so that the core compiles and fail if ever
 *    reached.
 *  - The flusher thread is a kthread; condition variables are a wait queue plus the mutex,
 *    with an absolute hrtimer deadline on the monotonic clock (the same clock as
 *    iovaq_now_ns(), ktime_get_ns()).
 */
#ifndef IOVAQ_PORT_KERNEL_H
#define IOVAQ_PORT_KERNEL_H

#include <linux/types.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/limits.h>
#include <linux/build_bug.h>
#include <linux/string.h>
#include <linux/sort.h>
#include <linux/mutex.h>
#include <linux/ktime.h>
#include <linux/timekeeping.h>
#include <linux/smp.h>
#include <linux/cpumask.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/kthread.h>
#include <linux/wait.h>
#include <linux/hrtimer.h>

#include <iovaq/common.h>

#ifndef UINT64_MAX
#define UINT64_MAX U64_MAX
#endif
#ifndef UINT32_MAX
#define UINT32_MAX U32_MAX
#endif
#ifndef INT32_MAX
#define INT32_MAX S32_MAX
#endif
#ifndef INT64_MAX
#define INT64_MAX S64_MAX
#endif

#define IOVAQ_STATIC_ASSERT(cond, msg) static_assert(cond, msg)

/* The cache's per-thread fronts are a userspace feature (see above). */
#define IOVAQ_PORT_THREAD_FRONTS 0

typedef struct mutex iovaq_lock_t;
#define IOVAQ_DEFINE_LOCK(name) DEFINE_MUTEX(name)

static inline void iovaq_lock_init(iovaq_lock_t *l)
{
	mutex_init(l);
}

static inline void iovaq_lock_destroy(iovaq_lock_t *l)
{
	mutex_destroy(l);
}

static inline void iovaq_lock(iovaq_lock_t *l)
{
	mutex_lock(l);
}

static inline void iovaq_unlock(iovaq_lock_t *l)
{
	mutex_unlock(l);
}

static inline unsigned int iovaq_cpu_id(void)
{
	return raw_smp_processor_id();
}

static inline unsigned int iovaq_ncpus(void)
{
	return nr_cpu_ids;
}

static inline uint64_t iovaq_now_ns(void)
{
	return ktime_get_ns();
}

#define iovaq_memset memset
#define iovaq_memcpy memcpy
#define iovaq_memmove memmove
#define iovaq_snprintf snprintf

static inline void iovaq_sort(void *base, size_t n, size_t size,
			      int (*cmp)(const void *, const void *))
{
	if (n > 1)
		sort(base, n, size, cmp, NULL);
}

/* No per-thread storage: IOVAQ_PORT_THREAD_FRONTS is 0 and these are never reached. */
#define IOVAQ_TLS
typedef int iovaq_thread_key_t;
typedef int iovaq_once_t;
#define IOVAQ_ONCE_INIT 0

static inline void iovaq_once(iovaq_once_t *once, void (*fn)(void))
{
	WARN_ON_ONCE(1);
}

static inline int iovaq_thread_key_create(iovaq_thread_key_t *key, void (*fn)(void *))
{
	return -EOPNOTSUPP;
}

static inline int iovaq_thread_exit_arm(iovaq_thread_key_t key, void *arg)
{
	return -EOPNOTSUPP;
}

/*
 * Threads: a kthread running @fn(@arg). The task is held with a reference from start to join,
 * so that join may stop a thread that already returned.
 */
typedef struct {
	struct task_struct *task;
	void *(*fn)(void *arg);
	void *arg;
} iovaq_thread_t;

static inline int iovaq__kthread_main(void *data)
{
	iovaq_thread_t *t = data;

	t->fn(t->arg);
	return 0;
}

static inline int iovaq_thread_start(iovaq_thread_t *t, void *(*fn)(void *), void *arg)
{
	struct task_struct *task;

	t->fn = fn;
	t->arg = arg;
	task = kthread_create(iovaq__kthread_main, t, "iovaq-flush");
	if (IS_ERR(task))
		return PTR_ERR(task);
	get_task_struct(task);
	t->task = task;
	wake_up_process(task);
	return 0;
}

static inline void iovaq_thread_join(iovaq_thread_t t)
{
	kthread_stop(t.task);
	put_task_struct(t.task);
}

/*
 * Condition variables: signal and wait are called with the associated lock held, as in the
 * core; the waiter queues itself before it drops the lock, so no wake-up is lost. TASK_IDLE:
 * an idle flusher neither counts as load nor trips the hung-task detector.
 */
typedef struct {
	wait_queue_head_t wq;
} iovaq_cond_t;

static inline void iovaq_cond_init(iovaq_cond_t *c)
{
	init_waitqueue_head(&c->wq);
}

static inline void iovaq_cond_destroy(iovaq_cond_t *c)
{
}

static inline void iovaq_cond_signal(iovaq_cond_t *c)
{
	wake_up(&c->wq);
}

/* Wait until signalled or until monotonic time @deadline_ns (0: no deadline). */
static inline void iovaq_cond_wait_until(iovaq_cond_t *c, iovaq_lock_t *l, uint64_t deadline_ns)
{
	DEFINE_WAIT(w);
	ktime_t until = ns_to_ktime(deadline_ns);

	prepare_to_wait(&c->wq, &w, TASK_IDLE);
	mutex_unlock(l);
	if (deadline_ns)
		schedule_hrtimeout_range(&until, 50 * NSEC_PER_USEC, HRTIMER_MODE_ABS);
	else
		schedule();
	finish_wait(&c->wq, &w);
	mutex_lock(l);
}

#endif /* IOVAQ_PORT_KERNEL_H */
