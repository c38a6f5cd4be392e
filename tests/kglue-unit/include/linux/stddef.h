/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in: offsetof and offsetofend come with <linux/types.h>. */
#include <linux/types.h>
