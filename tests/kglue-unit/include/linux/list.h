/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in for <linux/list.h>: the doubly linked list operations the glue uses. */
#ifndef KSTUB_LINUX_LIST_H
#define KSTUB_LINUX_LIST_H

#include <linux/kernel.h>

#define LIST_HEAD_INIT(name) { &(name), &(name) }
#define LIST_HEAD(name) struct list_head name = LIST_HEAD_INIT(name)

static inline void INIT_LIST_HEAD(struct list_head *h)
{
	h->next = h;
	h->prev = h;
}

static inline bool list_empty(const struct list_head *h)
{
	return h->next == h;
}

static inline void __list_link(struct list_head *n, struct list_head *prev, struct list_head *next)
{
	next->prev = n;
	n->next = next;
	n->prev = prev;
	prev->next = n;
}

static inline void list_add(struct list_head *n, struct list_head *h)
{
	__list_link(n, h, h->next);
}

static inline void list_add_tail(struct list_head *n, struct list_head *h)
{
	__list_link(n, h->prev, h);
}

static inline void __list_unlink(struct list_head *e)
{
	e->next->prev = e->prev;
	e->prev->next = e->next;
}

/* Poisoned as in the kernel, so that a use after list_del() crashes rather than corrupts. */
static inline void list_del(struct list_head *e)
{
	__list_unlink(e);
	e->next = (struct list_head *)(uintptr_t)0x100;
	e->prev = (struct list_head *)(uintptr_t)0x122;
}

static inline void list_move_tail(struct list_head *e, struct list_head *h)
{
	__list_unlink(e);
	list_add_tail(e, h);
}

/* Insert all of @list between @prev and @next (@list not empty). */
static inline void __list_splice(const struct list_head *list, struct list_head *prev,
				 struct list_head *next)
{
	struct list_head *first = list->next, *last = list->prev;

	first->prev = prev;
	prev->next = first;
	last->next = next;
	next->prev = last;
}

static inline void list_splice_init(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list)) {
		__list_splice(list, head, head->next);
		INIT_LIST_HEAD(list);
	}
}

static inline void list_splice_tail_init(struct list_head *list, struct list_head *head)
{
	if (!list_empty(list)) {
		__list_splice(list, head->prev, head);
		INIT_LIST_HEAD(list);
	}
}

#define list_entry(ptr, type, member) container_of(ptr, type, member)
#define list_first_entry(ptr, type, member) list_entry((ptr)->next, type, member)
#define list_next_entry(pos, member) list_entry((pos)->member.next, __typeof__(*(pos)), member)
#define list_for_each_entry(pos, head, member)                                  \
	for (pos = list_first_entry(head, __typeof__(*pos), member); &pos->member != (head); \
	     pos = list_next_entry(pos, member))
#define list_for_each_entry_safe(pos, n, head, member)                          \
	for (pos = list_first_entry(head, __typeof__(*pos), member),            \
	    n = list_next_entry(pos, member);                                   \
	     &pos->member != (head); pos = n, n = list_next_entry(n, member))

static inline size_t list_count_nodes(const struct list_head *h)
{
	const struct list_head *p;
	size_t n = 0;

	for (p = h->next; p != h; p = p->next)
		n++;
	return n;
}

#endif
