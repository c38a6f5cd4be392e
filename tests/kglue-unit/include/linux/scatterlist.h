/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/scatterlist.h>: the entry calls the glue makes, over a flat
 * array of entries (no chaining).
 */
#ifndef KSTUB_LINUX_SCATTERLIST_H
#define KSTUB_LINUX_SCATTERLIST_H

#include <linux/kernel.h>
#include <linux/mm.h>

struct scatterlist {
	struct page *page;
	unsigned int offset;
	unsigned int length;
	bool end;
};

static inline struct page *sg_page(struct scatterlist *sg)
{
	return sg->page;
}

static inline void sg_set_page(struct scatterlist *sg, struct page *page, unsigned int len,
			       unsigned int offset)
{
	sg->page = page;
	sg->length = len;
	sg->offset = offset;
}

/*
 * The entries are a flat array here and the callers pass the count: the end mark is kept only
 * so that a test can see that exactly the last entry carries it.
 */
static inline void sg_mark_end(struct scatterlist *sg)
{
	sg->end = true;
}

static inline void sg_unmark_end(struct scatterlist *sg)
{
	sg->end = false;
}

static inline void sg_init_table(struct scatterlist *sgl, unsigned int nents)
{
	memset(sgl, 0, nents * sizeof(*sgl));
	sg_mark_end(&sgl[nents - 1]);
}

static inline struct scatterlist *sg_next(struct scatterlist *sg)
{
	return sg + 1;
}

#define for_each_sg(sglist, sg, nr, i) \
	for ((i) = 0, (sg) = (sglist); (i) < (nr); (i)++, (sg) = sg_next(sg))


#endif
