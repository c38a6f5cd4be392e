/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The test's view of the kernel stand-in (kstub.c): counters and knobs that the stand-in
 * headers under include/ do not show to the glue.
 */
#ifndef KSTUB_H
#define KSTUB_H

#include <linux/kernel.h>
#include <linux/sched.h>
#include <linux/pci.h>
#include <linux/miscdevice.h>
#include <linux/capability.h>
#include <linux/module.h>
#include <asm/cpufeature.h>

/* kmalloc/kvmalloc/vmalloc objects (also maple tree nodes, sg tables) not yet freed. */
long kstub_allocs_live(void);
/* Fail the @n-th allocation from now (1: the next one); 0 disarms. */
void kstub_fail_alloc_nth(long n);
/* Has the armed failure fired since kstub_fail_alloc_nth()? */
bool kstub_fail_alloc_fired(void);

unsigned long kstub_warnings(void);
unsigned long kstub_printks(void);
/* The last printk's text (truncated to 255 bytes). */
const char *kstub_last_printk(void);

/* The fake process the glue's user-address mode runs in: current->mm for non-kthreads. */
extern struct mm_struct kstub_mm;
extern struct task_struct kstub_user_task;

/* The one PCI device pci_get_domain_bus_and_slot() finds, or NULL. */
void kstub_pci_register(struct pci_dev *pdev);

/* What <linux/module.h>'s stand-in makes of the module's parameters, init and exit. */
extern int *const kstub_param_caching_mode;			/* iovaq_backend.c */
extern const struct kernel_param_ops *const kstub_param_fail_nth;	/* iovaq_main.c */
extern int (*const kstub_module_init)(void);
extern void (*const kstub_module_exit)(void);

#endif
