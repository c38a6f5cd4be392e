/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
#include "imap.h"
#include "space_priv.h"

/* Fibonacci hashing; the product's middle bits depend on every bit of the IOVA. */
static uint64_t home(iovaq_iova_t key, uint64_t mask)
{
	return ((key * 0x9e3779b97f4a7c15ull) >> 32) & mask;
}

void iovaq__imap_init(struct iovaq_imap *m, const struct iovaq_alloc_hooks *hooks,
		      uint64_t *meta_bytes)
{
	iovaq_memset(m, 0, sizeof(*m));
	m->hooks = hooks;
	m->meta_bytes = meta_bytes;
}

void iovaq__imap_fini(struct iovaq_imap *m)
{
	if (m->e)
		iovaq__meta_free(m->hooks, m->meta_bytes, m->e, (m->mask + 1) * sizeof(*m->e));
	m->e = NULL;
	m->mask = m->n = 0;
}

struct iovaq_imap_ent *iovaq__imap_find(struct iovaq_imap *m, iovaq_iova_t key)
{
	uint64_t i;

	if (!m->e || !key)
		return NULL;
	for (i = home(key, m->mask); m->e[i].key; i = (i + 1) & m->mask)
		if (m->e[i].key == key)
			return &m->e[i];
	return NULL;
}

static int grow(struct iovaq_imap *m)
{
	uint64_t cap = m->e ? (m->mask + 1) * 2 : 64, i, j;
	struct iovaq_imap_ent *e = iovaq__meta_alloc(m->hooks, m->meta_bytes, cap * sizeof(*e));

	if (!e)
		return -ENOMEM;
	iovaq_memset(e, 0, cap * sizeof(*e));
	for (i = 0; m->e && i <= m->mask; i++) {
		if (!m->e[i].key)
			continue;
		for (j = home(m->e[i].key, cap - 1); e[j].key; j = (j + 1) & (cap - 1))
			;
		e[j] = m->e[i];
	}
	if (m->e)
		iovaq__meta_free(m->hooks, m->meta_bytes, m->e, (m->mask + 1) * sizeof(*e));
	m->e = e;
	m->mask = cap - 1;
	return 0;
}

int iovaq__imap_add(struct iovaq_imap *m, iovaq_iova_t key, uint64_t val, void *ptr)
{
	uint64_t i;
	int err;

	if (!m->e || (m->n + 1) * 2 > m->mask + 1) {
		err = grow(m);
		if (err)
			return err;
	}
	for (i = home(key, m->mask); m->e[i].key; i = (i + 1) & m->mask)
		;
	m->e[i] = (struct iovaq_imap_ent){ key, val, ptr };
	m->n++;
	return 0;
}

void iovaq__imap_del(struct iovaq_imap *m, struct iovaq_imap_ent *ent)
{
	uint64_t i = (uint64_t)(ent - m->e), j, h;

	/* Backward shift: move later members of the probe run into the hole when allowed. */
	for (j = (i + 1) & m->mask; m->e[j].key; j = (j + 1) & m->mask) {
		h = home(m->e[j].key, m->mask);
		if (((j - h) & m->mask) >= ((j - i) & m->mask)) {
			m->e[i] = m->e[j];
			i = j;
		}
	}
	m->e[i].key = 0;
	m->n--;
}
