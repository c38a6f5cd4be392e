/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in: see <linux/kernel.h>. */
#include <linux/kernel.h>
