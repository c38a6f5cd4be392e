/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/slab.h> and <linux/vmalloc.h>. Every allocation goes through
 * kstub_alloc() (kstub.c), which counts live objects (kstub_allocs_live(), for leak checks
 * after each error path) and can fail the Nth allocation (kstub_fail_alloc_nth(), for
 * -ENOMEM sweeps). kmalloc of a power-of-two size up to a page is naturally aligned, as the
 * kernel's slab caches are; vmalloc is page-aligned.
 */
#ifndef KSTUB_LINUX_SLAB_H
#define KSTUB_LINUX_SLAB_H

#include <linux/kernel.h>
#include <linux/mm.h>

#define GFP_KERNEL 0x0cc0u
#define GFP_ATOMIC 0x0820u
#define __GFP_ZERO 0x100u
#define __GFP_NOWARN 0x200u

void *kstub_alloc(size_t size, gfp_t gfp, size_t align);
void kstub_free(const void *p);

static inline void *kmalloc(size_t size, gfp_t gfp)
{
	return kstub_alloc(size, gfp, 0);
}

static inline void *kzalloc(size_t size, gfp_t gfp)
{
	return kstub_alloc(size, gfp | __GFP_ZERO, 0);
}

static inline void *kvmalloc(size_t size, gfp_t gfp)
{
	return kstub_alloc(size, gfp, 0);
}

static inline void *kvzalloc(size_t size, gfp_t gfp)
{
	return kstub_alloc(size, gfp | __GFP_ZERO, 0);
}

static inline void *kvmalloc_array(size_t n, size_t size, gfp_t gfp)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes))
		return NULL;
	return kstub_alloc(bytes, gfp, 0);
}

static inline void *kcalloc(size_t n, size_t size, gfp_t gfp)
{
	return kvmalloc_array(n, size, gfp | __GFP_ZERO);
}

static inline void *vmalloc(unsigned long size)
{
	return kstub_alloc(size, GFP_KERNEL, 4096);
}

static inline void *vzalloc(unsigned long size)
{
	return kstub_alloc(size, GFP_KERNEL | __GFP_ZERO, 4096);
}

static inline void kfree(const void *p)
{
	kstub_free(p);
}

static inline void kvfree(const void *p)
{
	kstub_free(p);
}

static inline void vfree(const void *p)
{
	kstub_free(p);
}

#endif
