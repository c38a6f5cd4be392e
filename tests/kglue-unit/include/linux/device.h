/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in for <linux/device.h>: a driver pointer and a reference count (kstub.c). */
#ifndef KSTUB_LINUX_DEVICE_H
#define KSTUB_LINUX_DEVICE_H

#include <linux/kernel.h>

struct device_driver {
	const char *name;
};

struct device {
	struct device_driver *driver;	/* non-NULL: a driver is bound */
	int refs;			/* get_device() - put_device() */
};

struct device *get_device(struct device *dev);
void put_device(struct device *dev);

#endif
