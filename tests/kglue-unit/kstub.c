// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The kernel stand-in's behaviour for the unit tests of kernel-glue/ (docs/kernel-glue.md,
 * "Unit tests of the glue"): allocation with leak counts and failure injection, locks and
 * kthreads over pthreads, wait queues, the rbtree, uaccess and the misc
 * device registry. Compiled like the glue (with __KERNEL__ and include/ first), plus libc.
 * The IOMMU calls and pin_user_pages_fast/unpin_user_pages are not here: the test wraps them.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <linux/kernel.h>
#include <linux/slab.h>
#include <linux/sched.h>
#include <linux/mm.h>
#include <linux/rbtree.h>
#include <linux/scatterlist.h>
#include <linux/uaccess.h>
#include <linux/device.h>
#include <linux/pci.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/capability.h>
#include <asm/cpufeature.h>

#include "kstub.h"

/* ---- knobs ---------------------------------------------------------------------------------- */

unsigned long kstub_task_size = 0x00007ffffffff000UL;	/* x86-64, 4-level paging */
u64 kstub_caps = 1ULL << CAP_SYS_RAWIO;
unsigned long kstub_page_offset;
void *high_memory = (void *)UINTPTR_MAX;
unsigned long kstub_vmalloc_lookups;
u64 kstub_cpu_features;
unsigned int nr_cpu_ids = 1;

struct mm_struct kstub_mm = { .mm_count = 1 };
struct task_struct kstub_user_task = { .mm = &kstub_mm, .usage = 1 };

__attribute__((constructor)) static void kstub_init(void)
{
	long n = sysconf(_SC_NPROCESSORS_CONF);

	nr_cpu_ids = n > 0 ? (unsigned int)n : 1;
}

/* ---- allocation ----------------------------------------------------------------------------- */

static long allocs_live;
static long fail_nth;
static bool fail_fired;

long kstub_allocs_live(void)
{
	return __atomic_load_n(&allocs_live, __ATOMIC_SEQ_CST);
}

void kstub_fail_alloc_nth(long n)
{
	__atomic_store_n(&fail_fired, false, __ATOMIC_SEQ_CST);
	__atomic_store_n(&fail_nth, n, __ATOMIC_SEQ_CST);
}

bool kstub_fail_alloc_fired(void)
{
	return __atomic_load_n(&fail_fired, __ATOMIC_SEQ_CST);
}

void *kstub_alloc(size_t size, gfp_t gfp, size_t align)
{
	long left = __atomic_load_n(&fail_nth, __ATOMIC_SEQ_CST);
	void *p;

	while (left > 0) {
		if (__atomic_compare_exchange_n(&fail_nth, &left, left - 1, false, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST)) {
			if (left == 1) {
				__atomic_store_n(&fail_fired, true, __ATOMIC_SEQ_CST);
				return NULL;
			}
			break;
		}
	}
	if (!size)
		size = 1;
	/* The slab's natural alignment of power-of-two sizes up to a page. */
	if (!align)
		align = (!(size & (size - 1)) && size <= PAGE_SIZE) ? size : 16;
	if (align < 16)
		align = 16;
	p = aligned_alloc(align, round_up(size, align));
	if (!p)
		return NULL;
	if (gfp & __GFP_ZERO)
		memset(p, 0, size);
	__atomic_add_fetch(&allocs_live, 1, __ATOMIC_SEQ_CST);
	return p;
}

void kstub_free(const void *p)
{
	if (!p)
		return;
	__atomic_sub_fetch(&allocs_live, 1, __ATOMIC_SEQ_CST);
	free((void *)p);
}

/* ---- warnings and printk -------------------------------------------------------------------- */

static unsigned long warnings, printks;
static char last_printk[256];
static pthread_mutex_t printk_lock = PTHREAD_MUTEX_INITIALIZER;

void kstub_warn(const char *file, int line, const char *cond)
{
	__atomic_add_fetch(&warnings, 1, __ATOMIC_SEQ_CST);
	fprintf(stderr, "kstub: WARNING at %s:%d: %s\n", file, line, cond);
}

unsigned long kstub_warnings(void)
{
	return __atomic_load_n(&warnings, __ATOMIC_SEQ_CST);
}

void kstub_printk(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&printk_lock);
	va_start(ap, fmt);
	vsnprintf(last_printk, sizeof(last_printk), fmt, ap);
	va_end(ap);
	printks++;
	if (getenv("KSTUB_VERBOSE"))
		fprintf(stderr, "kstub: printk: %s", last_printk);
	pthread_mutex_unlock(&printk_lock);
}

unsigned long kstub_printks(void)
{
	unsigned long n;

	pthread_mutex_lock(&printk_lock);
	n = printks;
	pthread_mutex_unlock(&printk_lock);
	return n;
}

const char *kstub_last_printk(void)
{
	return last_printk;
}

/* ---- lib: sort, kstrtouint, sysfs_emit ------------------------------------------------------ */

void sort(void *base, size_t num, size_t size, cmp_func_t cmp, swap_func_t swap)
{
	assert(!swap);	/* qsort cannot take one; the core passes none */
	qsort(base, num, size, cmp);
}

int kstrtouint(const char *s, unsigned int base, unsigned int *res)
{
	unsigned long long v = 0;
	const char *p = s;

	if (base != 10 || !*p)
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned long long)(*p - '0');
		if (v > UINT_MAX)
			return -ERANGE;
	}
	if (p == s || (*p && !(*p == '\n' && !p[1])))
		return -EINVAL;
	*res = (unsigned int)v;
	return 0;
}

int sysfs_emit(char *buf, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, PAGE_SIZE, fmt, ap);
	va_end(ap);
	return n;
}

/* ---- tasks, time, CPUs ---------------------------------------------------------------------- */

static __thread struct task_struct *self_kthread;

struct task_struct *kstub_current(void)
{
	return self_kthread ? self_kthread : &kstub_user_task;
}

void mmgrab(struct mm_struct *mm)
{
	__atomic_add_fetch(&mm->mm_count, 1, __ATOMIC_SEQ_CST);
}

void mmdrop(struct mm_struct *mm)
{
	int n = __atomic_sub_fetch(&mm->mm_count, 1, __ATOMIC_SEQ_CST);

	WARN_ON(n < 0);
}

u64 ktime_get_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (u64)ts.tv_sec * NSEC_PER_SEC + (u64)ts.tv_nsec;
}

unsigned int kstub_cpu_id(void)
{
	int c = sched_getcpu();

	return c < 0 ? 0 : (unsigned int)c % nr_cpu_ids;
}

static void *kthread_main(void *arg)
{
	struct task_struct *t = arg;

	self_kthread = t;
	t->result = t->threadfn(t->data);
	return NULL;
}

struct task_struct *kthread_create(int (*threadfn)(void *data), void *data, const char *namefmt,
				   ...)
{
	struct task_struct *t = calloc(1, sizeof(*t));

	if (!t)
		return ERR_PTR(-ENOMEM);
	t->threadfn = threadfn;
	t->data = data;
	t->usage = 1;	/* the thread's own, dropped by kthread_stop() */
	return t;
}

int wake_up_process(struct task_struct *t)
{
	if (t->threadfn && !t->started) {
		t->started = true;
		if (pthread_create(&t->thread, NULL, kthread_main, t))
			abort();
		return 1;
	}
	return 0;
}

void get_task_struct(struct task_struct *t)
{
	__atomic_add_fetch(&t->usage, 1, __ATOMIC_SEQ_CST);
}

void put_task_struct(struct task_struct *t)
{
	if (!__atomic_sub_fetch(&t->usage, 1, __ATOMIC_SEQ_CST))
		free(t);
}

int kthread_stop(struct task_struct *t)
{
	int ret = -EINTR;	/* the kernel's answer for a thread that never ran */

	if (t->started) {
		pthread_join(t->thread, NULL);
		ret = t->result;
	}
	put_task_struct(t);
	return ret;
}

/* ---- wait queues ---------------------------------------------------------------------------- */

static __thread struct wait_queue_entry *self_wait;

void init_waitqueue_head(struct wait_queue_head *wq)
{
	pthread_condattr_t a;

	pthread_mutex_init(&wq->lock, NULL);
	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(&wq->cond, &a);
	pthread_condattr_destroy(&a);
	wq->seq = 0;
}

void prepare_to_wait(struct wait_queue_head *wq, struct wait_queue_entry *w, int state)
{
	pthread_mutex_lock(&wq->lock);
	w->head = wq;
	w->seq = wq->seq;
	pthread_mutex_unlock(&wq->lock);
	self_wait = w;
}

void finish_wait(struct wait_queue_head *wq, struct wait_queue_entry *w)
{
	self_wait = NULL;
}

void wake_up(struct wait_queue_head *wq)
{
	pthread_mutex_lock(&wq->lock);
	wq->seq++;
	pthread_cond_broadcast(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}

/* Sleep until the queue was woken since prepare_to_wait(), or until @deadline_ns (0: none). */
static int wait_woken(u64 deadline_ns)
{
	struct wait_queue_entry *w = self_wait;
	struct timespec ts = { .tv_sec = (time_t)(deadline_ns / NSEC_PER_SEC),
			       .tv_nsec = (long)(deadline_ns % NSEC_PER_SEC) };
	int ret = -EINTR;

	if (!w) {
		if (deadline_ns)
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		return 0;
	}
	pthread_mutex_lock(&w->head->lock);
	while (w->head->seq == w->seq) {
		if (!deadline_ns) {
			pthread_cond_wait(&w->head->cond, &w->head->lock);
		} else if (pthread_cond_timedwait(&w->head->cond, &w->head->lock, &ts) == ETIMEDOUT) {
			ret = w->head->seq == w->seq ? 0 : -EINTR;
			break;
		}
	}
	pthread_mutex_unlock(&w->head->lock);
	return ret;
}

void schedule(void)
{
	wait_woken(0);
}

int schedule_hrtimeout_range(ktime_t *expires, u64 delta, const enum hrtimer_mode mode)
{
	u64 deadline = (u64)*expires;

	if (mode != HRTIMER_MODE_ABS)
		deadline += ktime_get_ns();
	return wait_woken(deadline ? deadline : 1);
}

/* ---- rbtree: a plain binary search tree with parent links ------------------------------------ */

/*
 * The glue walks the tree itself (rb_left, rb_right) and links nodes with rb_link_node(); the
 * stand-in keeps the tree a valid binary search tree without balancing it (the tests hold a few
 * nodes), so rb_insert_color() has nothing to do and rb_erase() is the textbook removal.
 */
void rb_insert_color(struct rb_node *node, struct rb_root *root)
{
	(void)node;
	(void)root;
}

/* Put @new where @old hangs (under @old's parent, or as the root). */
static void rb_replace_child(struct rb_root *root, struct rb_node *old, struct rb_node *new)
{
	struct rb_node *parent = old->rb_parent;

	if (!parent)
		root->rb_node = new;
	else if (parent->rb_left == old)
		parent->rb_left = new;
	else
		parent->rb_right = new;
	if (new)
		new->rb_parent = parent;
}

void rb_erase(struct rb_node *node, struct rb_root *root)
{
	struct rb_node *succ;

	if (!node->rb_left) {
		rb_replace_child(root, node, node->rb_right);
	} else if (!node->rb_right) {
		rb_replace_child(root, node, node->rb_left);
	} else {
		/* The successor (leftmost of the right subtree) takes @node's place. */
		for (succ = node->rb_right; succ->rb_left; succ = succ->rb_left)
			;
		if (succ->rb_parent != node) {
			rb_replace_child(root, succ, succ->rb_right);
			succ->rb_right = node->rb_right;
			succ->rb_right->rb_parent = succ;
		}
		rb_replace_child(root, node, succ);
		succ->rb_left = node->rb_left;
		succ->rb_left->rb_parent = succ;
	}
	node->rb_parent = node->rb_left = node->rb_right = NULL;
}

struct rb_node *rb_first(const struct rb_root *root)
{
	struct rb_node *n = root->rb_node;

	while (n && n->rb_left)
		n = n->rb_left;
	return n;
}

struct rb_node *rb_next(const struct rb_node *node)
{
	const struct rb_node *n = node;

	if (n->rb_right) {
		for (n = n->rb_right; n->rb_left; n = n->rb_left)
			;
		return (struct rb_node *)n;
	}
	while (n->rb_parent && n == n->rb_parent->rb_right)
		n = n->rb_parent;
	return n->rb_parent;
}

/* ---- uaccess -------------------------------------------------------------------------------- */

unsigned long copy_to_user(void __user *to, const void *from, unsigned long n)
{
	if (!to)
		return n;
	memcpy(to, from, n);
	return 0;
}

unsigned long copy_from_user(void *to, const void __user *from, unsigned long n)
{
	if (!from)
		return n;
	memcpy(to, from, n);
	return 0;
}

int copy_struct_from_user(void *dst, size_t ksize, const void __user *src, size_t usize)
{
	size_t size = min(ksize, usize), i;

	if (!src)
		return -EFAULT;
	if (usize < ksize) {
		memset((char *)dst + size, 0, ksize - size);
	} else {
		for (i = ksize; i < usize; i++)
			if (((const unsigned char *)src)[i])
				return -E2BIG;
	}
	if (copy_from_user(dst, src, size))
		return -EFAULT;
	return 0;
}

void *memdup_array_user(const void __user *src, size_t n, size_t size)
{
	size_t bytes;
	void *p;

	if (__builtin_mul_overflow(n, size, &bytes))
		return ERR_PTR(-EOVERFLOW);
	p = kmalloc(bytes, GFP_KERNEL);
	if (!p)
		return ERR_PTR(-ENOMEM);
	if (copy_from_user(p, src, bytes)) {
		kfree(p);
		return ERR_PTR(-EFAULT);
	}
	return p;
}

/* ---- devices -------------------------------------------------------------------------------- */

struct device *get_device(struct device *dev)
{
	if (dev)
		__atomic_add_fetch(&dev->refs, 1, __ATOMIC_SEQ_CST);
	return dev;
}

void put_device(struct device *dev)
{
	if (dev)
		WARN_ON(__atomic_sub_fetch(&dev->refs, 1, __ATOMIC_SEQ_CST) < 0);
}

static struct pci_dev *the_pci_dev;

void kstub_pci_register(struct pci_dev *pdev)
{
	the_pci_dev = pdev;
}

struct pci_dev *pci_get_domain_bus_and_slot(int domain, unsigned int bus, unsigned int devfn)
{
	struct pci_dev *p = the_pci_dev;

	if (!p || p->domain != domain || p->bus != bus || p->devfn != devfn)
		return NULL;
	get_device(&p->dev);
	return p;
}

void pci_dev_put(struct pci_dev *pdev)
{
	if (pdev)
		put_device(&pdev->dev);
}

struct miscdevice *kstub_misc;

int misc_register(struct miscdevice *misc)
{
	if (kstub_misc)
		return -EBUSY;
	kstub_misc = misc;
	return 0;
}

void misc_deregister(struct miscdevice *misc)
{
	WARN_ON(kstub_misc != misc);
	kstub_misc = NULL;
}

int nonseekable_open(struct inode *inode, struct file *f)
{
	return 0;
}

long compat_ptr_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	return -ENOIOCTLCMD;
}
