/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in: see <linux/sched.h>. */
#include <linux/sched.h>
