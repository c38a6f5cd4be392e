/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/miscdevice.h>: misc_register() remembers the device
 * (kstub_misc), so that a test opens it and calls its file operations as the VFS would.
 */
#ifndef KSTUB_LINUX_MISCDEVICE_H
#define KSTUB_LINUX_MISCDEVICE_H

#include <linux/fs.h>

#define MISC_DYNAMIC_MINOR 255

struct miscdevice {
	int minor;
	const char *name;
	const struct file_operations *fops;
	umode_t mode;
};

extern struct miscdevice *kstub_misc;
int misc_register(struct miscdevice *misc);
void misc_deregister(struct miscdevice *misc);

#endif
