/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/scatterlist.h>: a flat array of entries (no chaining).
 * sg_alloc_table_from_pages() (kstub.c) merges pages that follow each other into one entry,
 * as the kernel does for physically contiguous pages (here: consecutive page tokens), and
 * allocates through kstub_alloc(), so a table that is not freed shows as a leak.
 */
#ifndef KSTUB_LINUX_SCATTERLIST_H
#define KSTUB_LINUX_SCATTERLIST_H

#include <linux/kernel.h>
#include <linux/mm.h>

struct scatterlist {
	struct page *page;
	unsigned int offset;
	unsigned int length;
};

struct sg_table {
	struct scatterlist *sgl;
	unsigned int nents;
	unsigned int orig_nents;
};

static inline struct page *sg_page(struct scatterlist *sg)
{
	return sg->page;
}

static inline struct scatterlist *sg_next(struct scatterlist *sg)
{
	return sg + 1;
}

#define for_each_sg(sglist, sg, nr, i) \
	for ((i) = 0, (sg) = (sglist); (i) < (nr); (i)++, (sg) = sg_next(sg))

int sg_alloc_table_from_pages(struct sg_table *sgt, struct page **pages, unsigned int n_pages,
			      unsigned int offset, unsigned long size, gfp_t gfp);
void sg_free_table(struct sg_table *sgt);

#endif
