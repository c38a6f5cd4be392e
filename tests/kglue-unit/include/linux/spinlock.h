/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in: spinlock_t is in <linux/mutex.h>. */
#include <linux/mutex.h>
