/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/rbtree.h>: the kernel's interface for the calls the glue makes
 * (its own search walks over rb_left and rb_right, rb_link_node(), rb_insert_color(),
 * rb_erase(), rb_first(), rb_next(), rb_entry_safe()), over an unbalanced binary search tree
 * with plain parent links (kstub.c).
 */
#ifndef KSTUB_LINUX_RBTREE_H
#define KSTUB_LINUX_RBTREE_H

#include <linux/kernel.h>

struct rb_node {
	struct rb_node *rb_parent;
	struct rb_node *rb_right;
	struct rb_node *rb_left;
};

struct rb_root {
	struct rb_node *rb_node;
};

#define RB_ROOT ((struct rb_root){ NULL })
#define rb_entry(ptr, type, member) container_of(ptr, type, member)
#define rb_entry_safe(ptr, type, member)                             \
	({                                                           \
		__typeof__(ptr) ____ptr = (ptr);                     \
		____ptr ? rb_entry(____ptr, type, member) : NULL;    \
	})

static inline void rb_link_node(struct rb_node *node, struct rb_node *parent,
				struct rb_node **link)
{
	node->rb_parent = parent;
	node->rb_left = node->rb_right = NULL;
	*link = node;
}

void rb_insert_color(struct rb_node *node, struct rb_root *root);
void rb_erase(struct rb_node *node, struct rb_root *root);
struct rb_node *rb_first(const struct rb_root *root);
struct rb_node *rb_next(const struct rb_node *node);

#endif
