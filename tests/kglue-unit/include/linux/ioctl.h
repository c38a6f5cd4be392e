/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in: the system uapi header (_IO, _IOC_NR, ...). */
#include_next <linux/ioctl.h>
