/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * A hash map keyed by IOVA: open addressing, linear probing, backward-shift deletion (no
 * tombstones), growing at half load. IOVA 0 is never allocated (the space always reserves it),
 * so key 0 marks an empty slot. Not locked: the owner serialises access.
 */
#ifndef IOVAQ_IMAP_H
#define IOVAQ_IMAP_H

#include "port.h"

struct iovaq_imap_ent {
	iovaq_iova_t key;	/* 0: empty */
	uint64_t val;
	void *ptr;
};

struct iovaq_imap {
	uint64_t mask;			/* capacity - 1 (capacity a power of two), 0 if none */
	uint64_t n;			/* entries */
	struct iovaq_imap_ent *e;	/* NULL until the first add */
	const struct iovaq_alloc_hooks *hooks;
	uint64_t *meta_bytes;		/* metadata counter to charge */
};

void iovaq__imap_init(struct iovaq_imap *m, const struct iovaq_alloc_hooks *hooks,
		      uint64_t *meta_bytes);
void iovaq__imap_fini(struct iovaq_imap *m);
/* The entry for @key, or NULL. */
struct iovaq_imap_ent *iovaq__imap_find(struct iovaq_imap *m, iovaq_iova_t key);
/* Insert @key (non-zero, absent); 0 or -ENOMEM (map unchanged). */
int iovaq__imap_add(struct iovaq_imap *m, iovaq_iova_t key, uint64_t val, void *ptr);
/* Remove an entry returned by iovaq__imap_find(). */
void iovaq__imap_del(struct iovaq_imap *m, struct iovaq_imap_ent *ent);

#endif /* IOVAQ_IMAP_H */
