/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * JSON rendering of struct iovaq_stats. Keys are the struct's field names, so that
 * documentation, bindings and tools share one vocabulary.
 */
#include <iovaq/stats.h>
#include "port.h"

/* Append to a bounded buffer with snprintf semantics; @pos counts the full length. */
struct jbuf {
	char *buf;
	size_t len;
	size_t pos;
};

static void jput_u64(struct jbuf *j, const char *sep, const char *key, uint64_t v)
{
	size_t room = j->pos < j->len ? j->len - j->pos : 0;
	int n = iovaq_snprintf(room ? j->buf + j->pos : NULL, room, "%s\"%s\":%llu", sep, key,
			       (unsigned long long)v);

	if (n > 0)
		j->pos += (size_t)n;
}

static void jput_raw(struct jbuf *j, const char *s)
{
	size_t room = j->pos < j->len ? j->len - j->pos : 0;
	int n = iovaq_snprintf(room ? j->buf + j->pos : NULL, room, "%s", s);

	if (n > 0)
		j->pos += (size_t)n;
}

#define JFIELD(j, st, f) jput_u64(j, ",", #f, (st)->f)

int iovaq_stats_json(const struct iovaq_stats *st, char *buf, size_t len)
{
	struct jbuf j = { .buf = buf, .len = len };
	uint32_t i, n;

	if (!st || st->sz < offsetof(struct iovaq_stats, classes) || (!buf && len))
		return -EINVAL;
	if (len)
		buf[0] = '\0';
	jput_u64(&j, "{", "version", st->version);
	JFIELD(&j, st, granule);
	JFIELD(&j, st, total_granules);
	JFIELD(&j, st, reserved_granules);
	JFIELD(&j, st, free_granules);
	JFIELD(&j, st, allocated_granules);
	JFIELD(&j, st, cached_granules);
	JFIELD(&j, st, space_allocs);
	JFIELD(&j, st, space_frees);
	JFIELD(&j, st, space_alloc_fail);
	JFIELD(&j, st, tree_nodes);
	JFIELD(&j, st, cache_allocs);
	JFIELD(&j, st, cache_frees);
	JFIELD(&j, st, cache_alloc_fail);
	JFIELD(&j, st, cache_retries);
	JFIELD(&j, st, metadata_bytes);
	jput_raw(&j, ",\"classes\":[");
	n = st->n_classes;
	if (n > IOVAQ_CACHE_MAX_CLASSES)
		n = IOVAQ_CACHE_MAX_CLASSES;
	if (st->sz < offsetof(struct iovaq_stats, classes) + n * sizeof(st->classes[0]))
		n = (uint32_t)((st->sz - offsetof(struct iovaq_stats, classes)) /
			       sizeof(st->classes[0]));
	for (i = 0; i < n; i++) {
		const struct iovaq_class_stats *k = &st->classes[i];

		jput_u64(&j, i ? ",{" : "{", "granules", k->granules);
		JFIELD(&j, k, hits);
		JFIELD(&j, k, misses);
		JFIELD(&j, k, frees);
		JFIELD(&j, k, cached);
		JFIELD(&j, k, depot_mags);
		JFIELD(&j, k, trimmed);
		jput_raw(&j, "}");
	}
	jput_raw(&j, "]}");
	if (j.pos > (size_t)INT32_MAX)
		return -EINVAL;
	return (int)j.pos;
}
