/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/module.h> and <linux/moduleparam.h>. A module parameter
 * becomes a global pointer kstub_param_<name> (to the variable, or to the kernel_param_ops of
 * module_param_cb()), and module_init/module_exit become kstub_module_init/_exit, so that a
 * test reaches what sysfs and insmod would. EXPORT_SYMBOL_GPL only checks that the symbol is
 * declared.
 */
#ifndef KSTUB_LINUX_MODULE_H
#define KSTUB_LINUX_MODULE_H

#include <linux/kernel.h>
#include <linux/mutex.h>

struct module;
#define THIS_MODULE ((struct module *)0)

struct kernel_param;
struct kernel_param_ops {
	int (*set)(const char *val, const struct kernel_param *kp);
	int (*get)(char *buffer, const struct kernel_param *kp);
};

#define KSTUB_DECLARE_GLOBAL(type, name) \
	extern __typeof__(type) name; \
	__typeof__(type) name

#define module_param(name, type, perm) \
	KSTUB_DECLARE_GLOBAL(__typeof__(name) *const, kstub_param_##name) = &(name)
#define module_param_cb(name, ops, arg, perm) \
	KSTUB_DECLARE_GLOBAL(const struct kernel_param_ops *const, kstub_param_##name) = (ops)
#define MODULE_PARM_DESC(name, desc) extern int kstub_module_info_unused
#define MODULE_LICENSE(s) extern int kstub_module_info_unused
#define MODULE_DESCRIPTION(s) extern int kstub_module_info_unused
#define MODULE_AUTHOR(s) extern int kstub_module_info_unused
#define EXPORT_SYMBOL_GPL(sym) extern __typeof__(sym) sym
#define EXPORT_SYMBOL(sym) extern __typeof__(sym) sym
#define module_init(fn) KSTUB_DECLARE_GLOBAL(int (*const)(void), kstub_module_init) = (fn)
#define module_exit(fn) KSTUB_DECLARE_GLOBAL(void (*const)(void), kstub_module_exit) = (fn)

#endif
