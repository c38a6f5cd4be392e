/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in for <linux/capability.h>: capable() answers kstub_caps (a bit per capability). */
#ifndef KSTUB_LINUX_CAPABILITY_H
#define KSTUB_LINUX_CAPABILITY_H

#include <linux/kernel.h>

#define CAP_SYS_RAWIO 17

extern u64 kstub_caps;
static inline bool capable(int cap)
{
	return (kstub_caps >> cap) & 1;
}

#endif
