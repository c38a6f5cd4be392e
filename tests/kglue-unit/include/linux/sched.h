/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for the scheduler side of the kernel that port_kernel.h and the glue use:
 * <linux/sched.h>, sched/task.h, sched/mm.h, kthread.h, wait.h, hrtimer.h, ktime.h,
 * timekeeping.h, smp.h and cpumask.h.
 *
 *  - A kthread is a pthread started by wake_up_process(); kthread_stop() joins it (the core
 *    stops its flusher itself before it joins). Tasks are reference counted as in the kernel.
 *  - A wait queue is a mutex, a condition variable on CLOCK_MONOTONIC and a wake-up sequence
 *    number: prepare_to_wait() samples the sequence, schedule() and schedule_hrtimeout_range()
 *    sleep until it moves (or the absolute deadline passes), so a wake_up() between
 *    prepare_to_wait() and schedule() is not lost, which is the property port_kernel.h's
 *    condition variable relies on.
 *  - current is one task per thread; its ->mm is the test's fake process (kstub_mm).
 */
#ifndef KSTUB_LINUX_SCHED_H
#define KSTUB_LINUX_SCHED_H

#include <pthread.h>
#include <linux/kernel.h>
#include <linux/mutex.h>

#define NSEC_PER_USEC 1000L
#define NSEC_PER_MSEC 1000000L
#define NSEC_PER_SEC 1000000000L

struct mm_struct {
	int mm_count;	/* mmgrab() references (the test's fake process holds one) */
};

struct task_struct {
	struct mm_struct *mm;
	/* kthreads */
	pthread_t thread;
	int (*threadfn)(void *data);
	void *data;
	int result;
	bool started;
	int usage;	/* get/put_task_struct() */
};

struct task_struct *kstub_current(void);
#define current (kstub_current())

void mmgrab(struct mm_struct *mm);
void mmdrop(struct mm_struct *mm);

/* <linux/ktime.h>, <linux/timekeeping.h> */
u64 ktime_get_ns(void);
static inline ktime_t ns_to_ktime(u64 ns)
{
	return (ktime_t)ns;
}

/* <linux/smp.h>, <linux/cpumask.h> */
extern unsigned int nr_cpu_ids;
unsigned int kstub_cpu_id(void);
#define raw_smp_processor_id() kstub_cpu_id()
#define smp_processor_id() kstub_cpu_id()

/* <linux/kthread.h>, <linux/sched/task.h> */
__attribute__((format(printf, 3, 4))) struct task_struct *
kthread_create(int (*threadfn)(void *data), void *data, const char *namefmt, ...);
int wake_up_process(struct task_struct *t);
int kthread_stop(struct task_struct *t);
void get_task_struct(struct task_struct *t);
void put_task_struct(struct task_struct *t);

/* <linux/wait.h> */
#define TASK_RUNNING 0x0000
#define TASK_INTERRUPTIBLE 0x0001
#define TASK_UNINTERRUPTIBLE 0x0002
#define TASK_NOLOAD 0x0400
#define TASK_IDLE (TASK_UNINTERRUPTIBLE | TASK_NOLOAD)

typedef struct wait_queue_head {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	u64 seq;	/* wake-ups so far */
} wait_queue_head_t;

struct wait_queue_entry {
	struct wait_queue_head *head;
	u64 seq;	/* head->seq when the waiter queued itself */
};
#define DEFINE_WAIT(name) struct wait_queue_entry name = { NULL, 0 }

void init_waitqueue_head(struct wait_queue_head *wq);
void prepare_to_wait(struct wait_queue_head *wq, struct wait_queue_entry *w, int state);
void finish_wait(struct wait_queue_head *wq, struct wait_queue_entry *w);
void wake_up(struct wait_queue_head *wq);
void schedule(void);

/* <linux/hrtimer.h> */
enum hrtimer_mode {
	HRTIMER_MODE_ABS = 0x00,
	HRTIMER_MODE_REL = 0x01,
};
int schedule_hrtimeout_range(ktime_t *expires, u64 delta, const enum hrtimer_mode mode);

#endif
