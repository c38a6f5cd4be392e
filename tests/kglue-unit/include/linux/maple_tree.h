/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/maple_tree.h>: a sorted list of disjoint ranges with the
 * kernel's semantics for the calls the glue makes (kstub.c): mtree_insert_range() fails with
 * -EEXIST on any overlap and -ENOMEM when its node cannot be allocated (kstub_alloc()),
 * mtree_erase() removes the range holding an index, mt_for_each() visits the ranges meeting
 * [index, max] in order, each once.
 */
#ifndef KSTUB_LINUX_MAPLE_TREE_H
#define KSTUB_LINUX_MAPLE_TREE_H

#include <linux/kernel.h>

struct kstub_mt_node;

struct maple_tree {
	struct kstub_mt_node *head;
};

static inline void mt_init(struct maple_tree *mt)
{
	mt->head = NULL;
}

int mtree_insert_range(struct maple_tree *mt, unsigned long first, unsigned long last,
		       void *entry, gfp_t gfp);
void *mtree_erase(struct maple_tree *mt, unsigned long index);
void *mt_find(struct maple_tree *mt, unsigned long *index, unsigned long max);
void *mt_find_after(struct maple_tree *mt, unsigned long *index, unsigned long max);
void mtree_destroy(struct maple_tree *mt);

#define mt_for_each(tree, entry, index, max)                              \
	for (entry = mt_find(tree, &(index), max); entry;                 \
	     entry = mt_find_after(tree, &(index), max))

#endif
