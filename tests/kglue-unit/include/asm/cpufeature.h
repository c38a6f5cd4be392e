/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in for <asm/cpufeature.h>: boot_cpu_has() answers kstub_cpu_features. */
#ifndef KSTUB_ASM_CPUFEATURE_H
#define KSTUB_ASM_CPUFEATURE_H

#include <linux/kernel.h>

#define X86_FEATURE_HYPERVISOR (4 * 32 + 31)

extern u64 kstub_cpu_features;	/* bit 0: X86_FEATURE_HYPERVISOR */
#define boot_cpu_has(f) (((f) == X86_FEATURE_HYPERVISOR) ? (kstub_cpu_features & 1) != 0 : false)

#endif
