/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/uaccess.h>: "user memory" is this process's memory. A NULL
 * user pointer faults (-EFAULT); access_ok() checks the range against TASK_SIZE as the
 * kernel's does. copy_struct_from_user() and memdup_array_user() keep the kernel's documented
 * contracts (kstub.c): the former zero-fills a short struct and returns -E2BIG when a longer
 * one has non-zero bytes beyond what the kernel knows.
 */
#ifndef KSTUB_LINUX_UACCESS_H
#define KSTUB_LINUX_UACCESS_H

#include <linux/kernel.h>
#include <linux/mm.h>

static inline bool access_ok(const void __user *p, unsigned long n)
{
	unsigned long a = (unsigned long)p;

	return n <= TASK_SIZE && a <= TASK_SIZE - n;
}

#define get_user(x, ptr)                      \
	({                                    \
		int __gu_err = -EFAULT;       \
		if ((ptr) != NULL) {          \
			(x) = *(ptr);         \
			__gu_err = 0;         \
		}                             \
		__gu_err;                     \
	})

unsigned long copy_to_user(void __user *to, const void *from, unsigned long n);
unsigned long copy_from_user(void *to, const void __user *from, unsigned long n);
int copy_struct_from_user(void *dst, size_t ksize, const void __user *src, size_t usize);
void *memdup_array_user(const void __user *src, size_t n, size_t size);

#endif
