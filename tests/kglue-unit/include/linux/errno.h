/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/errno.h>: the uapi numbers (the same as glibc's on Linux).
 * glibc's <errno.h> reaches this file too (through <bits/errno.h>), hence include_next and no
 * guard around it.
 */
#include_next <linux/errno.h>
#ifndef ENOIOCTLCMD
#define ENOIOCTLCMD 515
#endif
#ifndef ENOTSUPP
#define ENOTSUPP 524
#endif
