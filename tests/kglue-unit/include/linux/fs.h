/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in for <linux/fs.h>: the parts of a struct file a character device sees. */
#ifndef KSTUB_LINUX_FS_H
#define KSTUB_LINUX_FS_H

#include <linux/kernel.h>

struct module;

struct inode {
	int unused;
};

struct file {
	void *private_data;
};

struct file_operations {
	struct module *owner;
	int (*open)(struct inode *inode, struct file *f);
	int (*release)(struct inode *inode, struct file *f);
	long (*unlocked_ioctl)(struct file *f, unsigned int cmd, unsigned long arg);
	long (*compat_ioctl)(struct file *f, unsigned int cmd, unsigned long arg);
};

int nonseekable_open(struct inode *inode, struct file *f);
long compat_ptr_ioctl(struct file *f, unsigned int cmd, unsigned long arg);

#endif
