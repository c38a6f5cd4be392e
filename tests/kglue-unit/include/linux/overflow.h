/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in for <linux/overflow.h>: the compiler's checked arithmetic, as there. */
#ifndef KSTUB_LINUX_OVERFLOW_H
#define KSTUB_LINUX_OVERFLOW_H

#define check_add_overflow(a, b, d) __builtin_add_overflow(a, b, d)

#endif
