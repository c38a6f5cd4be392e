/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/kernel.h> and the small headers it stands for here
 * (limits, build_bug, string, sort, err, kconfig, printk, kstrtox): only what kernel-glue/
 * and src/core/ (through port_kernel.h) use. Behaviour that a test may depend on (WARN_ON,
 * printk, sort, kstrtouint) is implemented in kstub.c.
 */
#ifndef KSTUB_LINUX_KERNEL_H
#define KSTUB_LINUX_KERNEL_H

#include <linux/types.h>
#include <linux/errno.h>
#include <assert.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#define noinline __attribute__((__noinline__))
#define __always_unused __attribute__((__unused__))
#define __maybe_unused __attribute__((__unused__))

#define U8_MAX ((u8)~0U)
#define U16_MAX ((u16)~0U)
#define U32_MAX ((u32)~0U)
#define S32_MAX ((s32)(U32_MAX >> 1))
#define U64_MAX ((u64)~0ULL)
#define S64_MAX ((s64)(U64_MAX >> 1))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* As in the kernel, min()/max() refuse operands of different types (a pointer comparison). */
#define min(a, b)                                      \
	({                                             \
		__typeof__(a) __min_a = (a);           \
		__typeof__(b) __min_b = (b);           \
		(void)(&__min_a == &__min_b);          \
		__min_a < __min_b ? __min_a : __min_b; \
	})
#define max(a, b)                                      \
	({                                             \
		__typeof__(a) __max_a = (a);           \
		__typeof__(b) __max_b = (b);           \
		(void)(&__max_a == &__max_b);          \
		__max_a > __max_b ? __max_a : __max_b; \
	})
#define min_t(type, a, b) min((type)(a), (type)(b))
#define max_t(type, a, b) max((type)(a), (type)(b))
#define round_up(x, y) ((((x) - 1) | ((__typeof__(x))(y) - 1)) + 1)
#define DIV_ROUND_UP(n, d) (((n) + (d) - 1) / (d))
#define IS_ALIGNED(x, a) (((x) & ((__typeof__(x))(a) - 1)) == 0)
#define u64_to_user_ptr(x) ((void __user *)(uintptr_t)(x))

#define BUILD_BUG_ON(cond) _Static_assert(!(cond), "BUILD_BUG_ON(" #cond ")")

/* Kconfig: the glue asks for CONFIG_X86 only. IS_ENABLED() of anything else fails to build. */
#define CONFIG_X86 1
#define IS_ENABLED(option) (option)

/* <linux/err.h> */
#define MAX_ERRNO 4095
#define IS_ERR_VALUE(x) unlikely((unsigned long)(void *)(x) >= (unsigned long)-MAX_ERRNO)
static inline void *ERR_PTR(long error)
{
	return (void *)error;
}
static inline long PTR_ERR(const void *ptr)
{
	return (long)ptr;
}
static inline bool IS_ERR(const void *ptr)
{
	return IS_ERR_VALUE((unsigned long)ptr);
}

/*
 * WARN_ON*(): counted (kstub_warnings), never fatal, so that a test can assert that none
 * fired. Every hit counts, not only the first: a test wants to see each one.
 */
void kstub_warn(const char *file, int line, const char *cond);
#define WARN_ON(cond)                                          \
	({                                                     \
		bool __w = !!(cond);                           \
		if (unlikely(__w))                             \
			kstub_warn(__FILE__, __LINE__, #cond); \
		__w;                                           \
	})
#define WARN_ON_ONCE(cond) WARN_ON(cond)

/* printk: counted; printed to stderr only with KSTUB_VERBOSE set in the environment. */
__attribute__((format(printf, 1, 2))) void kstub_printk(const char *fmt, ...);
#define pr_info(fmt, ...) kstub_printk(fmt, ##__VA_ARGS__)
#define pr_warn(fmt, ...) kstub_printk(fmt, ##__VA_ARGS__)
#define pr_err(fmt, ...) kstub_printk(fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) kstub_printk(fmt, ##__VA_ARGS__)

/* <linux/sort.h>: a heapsort in the kernel, qsort here (the core passes no swap function). */
typedef int (*cmp_func_t)(const void *a, const void *b);
typedef void (*swap_func_t)(void *a, void *b, int size);
void sort(void *base, size_t num, size_t size, cmp_func_t cmp, swap_func_t swap);

int kstrtouint(const char *s, unsigned int base, unsigned int *res);
__attribute__((format(printf, 2, 3))) int sysfs_emit(char *buf, const char *fmt, ...);

#endif
