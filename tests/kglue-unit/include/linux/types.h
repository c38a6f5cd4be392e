/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for the kernel's <linux/types.h> (tests/kglue-unit/README in
 * docs/kernel-glue.md, "Unit tests of the glue"). The uapi half (__u32, __aligned_u64, ...)
 * is the system's own; the kernel half maps onto C99 types. u64 is uint64_t (not unsigned
 * long long as in the kernel) so that the core's uint64_t and the glue's u64 stay one type,
 * as they are in a kernel build.
 */
#ifndef KSTUB_LINUX_TYPES_H
#define KSTUB_LINUX_TYPES_H

#include_next <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int8_t s8;
typedef int16_t s16;
typedef int32_t s32;
typedef int64_t s64;
typedef unsigned int gfp_t;
typedef s64 ktime_t;
typedef unsigned short umode_t;

/* No address spaces in userspace: sparse's annotations vanish. */
#define __user
#define __iomem
#define __force
#define __init
#define __exit

#define offsetofend(TYPE, MEMBER) (offsetof(TYPE, MEMBER) + sizeof(((TYPE *)0)->MEMBER))

struct list_head {
	struct list_head *next, *prev;
};

#endif
