/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/mm.h>. A struct page is never dereferenced by the glue, so
 * here a struct page pointer is a token: the page's own (page-aligned) address. Pinning
 * (pin_user_pages_fast, unpin_user_pages) is only declared: the test defines the
 * __wrap_ versions (-Wl,--wrap), records pins and unpins and injects failures. TASK_SIZE is a
 * variable, so that a test can make every address a "kernel" one (IOVAQ_KHOST_KERNEL).
 */
#ifndef KSTUB_LINUX_MM_H
#define KSTUB_LINUX_MM_H

#include <linux/kernel.h>
#include <linux/sched.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE (1UL << PAGE_SHIFT)
#define PAGE_MASK (~(PAGE_SIZE - 1))

extern unsigned long kstub_task_size;
#define TASK_SIZE kstub_task_size

struct page;

#define FOLL_WRITE 0x01u
#define FOLL_LONGTERM 0x100u

int pin_user_pages_fast(unsigned long start, int nr_pages, unsigned int gup_flags,
			struct page **pages);
void unpin_user_pages(struct page **pages, unsigned long npages);

static inline struct page *kstub_addr_page(const void *va)
{
	return (struct page *)((uintptr_t)va & PAGE_MASK);
}

/*
 * The linear map is [PAGE_OFFSET, high_memory): everything by default. A test narrows it to
 * send kernel addresses through vmalloc_to_page(), which counts its lookups.
 */
extern unsigned long kstub_page_offset;
extern void *high_memory;
#define PAGE_OFFSET kstub_page_offset
extern unsigned long kstub_vmalloc_lookups;

static inline struct page *vmalloc_to_page(const void *va)
{
	kstub_vmalloc_lookups++;
	return kstub_addr_page(va);
}

#define virt_to_page(va) kstub_addr_page(va)
#define page_to_pfn(pg) ((unsigned long)(uintptr_t)(pg) >> PAGE_SHIFT)
#define page_address(pg) ((void *)(pg))

#endif
