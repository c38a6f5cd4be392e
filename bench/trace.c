/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench: the strict reader of guest IOMMU traces (the format is in trace.h and
 * docs/apps-testbed.md). Hand-written rather than sscanf(): sscanf accepts signs, spaces and
 * overflowing numbers silently, and cannot say which field was wrong.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

/* A cursor over one line: [p, e). */
struct cur {
	const char *p, *e;
};

static int why_set(char *why, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int why_set(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len) {
		va_start(ap, fmt);
		vsnprintf(why, len, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int hexval(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The literal @s at the cursor: consume it and return true, or leave the cursor. */
static bool lit(struct cur *c, const char *s)
{
	size_t n = strlen(s);

	if ((size_t)(c->e - c->p) < n || memcmp(c->p, s, n))
		return false;
	c->p += n;
	return true;
}

/* 1 to 16 hexadecimal digits. */
static bool hex64(struct cur *c, uint64_t *v)
{
	unsigned int n = 0;
	int d;

	*v = 0;
	while (c->p < c->e && (d = hexval(*c->p)) >= 0) {
		if (++n > 16)
			return false;
		*v = *v << 4 | (uint64_t)d;
		c->p++;
	}
	return n > 0;
}

/* Decimal digits, at least one, within 64 bits. */
static bool dec64(struct cur *c, uint64_t *v)
{
	unsigned int n = 0;

	*v = 0;
	while (c->p < c->e && is_digit(*c->p)) {
		uint64_t d = (uint64_t)(*c->p - '0');

		if (*v > (UINT64_MAX - d) / 10)
			return false;
		*v = *v * 10 + d;
		c->p++;
		n++;
	}
	return n > 0;
}

static size_t spaces(struct cur *c)
{
	size_t n = 0;

	while (c->p < c->e && *c->p == ' ') {
		c->p++;
		n++;
	}
	return n;
}

/*
 * The task field "COMM-PID" ends where "-PID [CPU]" starts; COMM may itself hold spaces,
 * dashes and brackets, so look for the first '[' that is preceded by "-DIGITS SPACES" and
 * followed by "DIGITS]".
 */
static const char *find_cpu(const char *b, const char *e, uint32_t *pid)
{
	for (const char *q = b + 1; q < e; q++) {
		const char *s = q, *d, *r;
		uint64_t v = 0;

		if (*q != '[' || q[-1] != ' ')
			continue;
		while (s > b && s[-1] == ' ')
			s--;
		d = s;
		while (d > b && is_digit(d[-1]))
			d--;
		if (d == s || d - b < 2 || d[-1] != '-')
			continue;
		for (r = q + 1; r < e && is_digit(*r); r++)
			;
		if (r == q + 1 || r == e || *r != ']')
			continue;
		if (s - d > 10)
			continue;
		for (const char *x = d; x < s; x++)
			v = v * 10 + (uint64_t)(*x - '0');
		if (v > UINT32_MAX)
			continue;
		*pid = (uint32_t)v;
		return q;
	}
	return NULL;
}

int bench_trace_parse_line(const char *line, size_t len, struct bench_trace_ev *ev, char *why,
			   size_t whylen)
{
	struct cur c = { line, line + len };
	const char *cpu;
	uint64_t v, sec, frac = 0, end;
	unsigned int nfrac = 0;
	size_t n;

	memset(ev, 0, sizeof(*ev));
	if (memchr(line, '\0', len))
		return why_set(why, whylen, "NUL byte in the line");
	spaces(&c);
	if (c.p == c.e)
		return 0;
	if (*c.p == '#')
		return 0;
	cpu = find_cpu(c.p, c.e, &ev->pid);
	if (!cpu)
		return why_set(why, whylen, "no 'TASK-PID [CPU]' at the start: not a trace event");
	c.p = cpu + 1;
	if (!dec64(&c, &v) || v > UINT32_MAX)
		return why_set(why, whylen, "bad CPU number");
	ev->cpu = (uint32_t)v;
	c.p++;	/* ']' (checked by find_cpu) */
	if (!spaces(&c))
		return why_set(why, whylen, "no space after the CPU field");
	for (n = 0; c.p < c.e && *c.p != ' '; c.p++)
		n++;
	if (!n || n > 16)
		return why_set(why, whylen, "bad flags field");
	if (!spaces(&c))
		return why_set(why, whylen, "no timestamp after the flags");
	if (!dec64(&c, &sec) || !lit(&c, "."))
		return why_set(why, whylen, "bad timestamp (want SECONDS.FRACTION)");
	while (c.p < c.e && is_digit(*c.p)) {
		if (++nfrac > 9)
			return why_set(why, whylen, "timestamp has more than 9 fraction digits");
		frac = frac * 10 + (uint64_t)(*c.p++ - '0');
	}
	if (!nfrac)
		return why_set(why, whylen, "bad timestamp (want SECONDS.FRACTION)");
	for (; nfrac < 9; nfrac++)
		frac *= 10;
	if (sec > UINT64_MAX / 1000000000ULL - 1)
		return why_set(why, whylen, "timestamp out of range");
	ev->ts_ns = sec * 1000000000ULL + frac;
	if (lit(&c, ": map: IOMMU: iova=0x"))
		ev->kind = BENCH_TRACE_MAP;
	else if (lit(&c, ": unmap: IOMMU: iova=0x"))
		ev->kind = BENCH_TRACE_UNMAP;
	else
		return why_set(why, whylen, "not an iommu map or unmap event "
			       "(want ': map: IOMMU: iova=0x' or ': unmap: IOMMU: iova=0x')");
	if (!hex64(&c, &ev->iova))
		return why_set(why, whylen, "bad iova start (1 to 16 hex digits)");
	if (!lit(&c, " - 0x") || !hex64(&c, &end))
		return why_set(why, whylen, "bad iova end (want ' - 0x' and 1 to 16 hex digits)");
	if (ev->kind == BENCH_TRACE_MAP) {
		if (!lit(&c, " paddr=0x") || !hex64(&c, &ev->paddr))
			return why_set(why, whylen, "map without a valid 'paddr=0x...'");
		if (!lit(&c, " size=") || !dec64(&c, &ev->size))
			return why_set(why, whylen, "map without a valid 'size=...'");
	} else {
		if (!lit(&c, " size=") || !dec64(&c, &ev->size))
			return why_set(why, whylen, "unmap without a valid 'size=...'");
		if (!lit(&c, " unmapped_size=") || !dec64(&c, &ev->unmapped))
			return why_set(why, whylen, "unmap without a valid 'unmapped_size=...'");
	}
	if (c.p != c.e)	/* the line is not NUL-terminated: print at most what is left */
		return why_set(why, whylen, "unexpected text after the last field: '%.*s'",
			       c.e - c.p < 24 ? (int)(c.e - c.p) : 24, c.p);
	if (!ev->size || ev->size % BENCH_TRACE_PAGE)
		return why_set(why, whylen, "size %llu is not a non-zero multiple of 4096",
			       (unsigned long long)ev->size);
	if (ev->iova % BENCH_TRACE_PAGE)
		return why_set(why, whylen, "iova 0x%llx is not 4 KiB-aligned",
			       (unsigned long long)ev->iova);
	if (end < ev->iova || end - ev->iova != ev->size)
		return why_set(why, whylen, "iova range is %s%llu bytes, size says %llu",
			       end < ev->iova ? "-" : "",
			       (unsigned long long)(end < ev->iova ? ev->iova - end : end - ev->iova),
			       (unsigned long long)ev->size);
	if (ev->kind == BENCH_TRACE_MAP && ev->paddr % BENCH_TRACE_PAGE)
		return why_set(why, whylen, "paddr 0x%llx is not 4 KiB-aligned",
			       (unsigned long long)ev->paddr);
	if (ev->kind == BENCH_TRACE_UNMAP && ev->unmapped > ev->size)
		return why_set(why, whylen, "unmapped_size %llu exceeds size %llu",
			       (unsigned long long)ev->unmapped, (unsigned long long)ev->size);
	return 1;
}

void bench_trace_free(struct bench_trace *t)
{
	free(t->ev);
	memset(t, 0, sizeof(*t));
}

static int trace_fail(struct bench_trace *t, int err, char *buf, size_t len, const char *fmt,
		      ...) __attribute__((format(printf, 5, 6)));

static int trace_fail(struct bench_trace *t, int err, char *buf, size_t len, const char *fmt,
		      ...)
{
	va_list ap;

	bench_trace_free(t);
	if (len) {
		va_start(ap, fmt);
		vsnprintf(buf, len, fmt, ap);
		va_end(ap);
	}
	return err;
}

int bench_trace_parse(const char *buf, size_t len, const char *name, struct bench_trace *t,
		      char *err, size_t errlen)
{
	const char *p = buf, *e = buf + len;
	uint64_t last_ts = 0;
	char why[160];

	memset(t, 0, sizeof(*t));
	while (p < e) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		struct bench_trace_ev ev;
		int r;

		if (t->lines == UINT32_MAX)
			return trace_fail(t, -EINVAL, err, errlen, "%s:%zu: too many lines", name,
					  t->lines);
		t->lines++;
		if (!nl)
			return trace_fail(t, -EINVAL, err, errlen, "%s:%zu: truncated: the last line "
					  "has no newline", name, t->lines);
		r = bench_trace_parse_line(p, (size_t)(nl - p), &ev, why, sizeof(why));
		p = nl + 1;
		if (r < 0)
			return trace_fail(t, r, err, errlen, "%s:%zu: %s", name, t->lines, why);
		if (!r)
			continue;
		if (ev.ts_ns < last_ts)
			return trace_fail(t, -EINVAL, err, errlen, "%s:%zu: timestamp goes backwards",
					  name, t->lines);
		last_ts = ev.ts_ns;
		ev.line = (uint32_t)t->lines;
		if (t->n == t->cap) {
			size_t cap = t->cap ? 2 * t->cap : 1024;
			struct bench_trace_ev *nev;

			if (cap > SIZE_MAX / sizeof(*nev))
				return trace_fail(t, -ENOMEM, err, errlen, "%s: out of memory", name);
			nev = realloc(t->ev, cap * sizeof(*nev));
			if (!nev)
				return trace_fail(t, -ENOMEM, err, errlen, "%s: out of memory", name);
			t->ev = nev;
			t->cap = cap;
		}
		t->ev[t->n++] = ev;
		if (ev.kind == BENCH_TRACE_MAP)
			t->maps++;
		else
			t->unmaps++;
	}
	return 0;
}

int bench_trace_load(const char *path, struct bench_trace *t, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int ret;

	memset(t, 0, sizeof(*t));
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	for (;;) {
		size_t got;

		if (cap - len < 65536) {
			char *nb = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap ? 2 * cap : 1 << 20);

			if (!nb) {
				free(buf);
				fclose(f);
				snprintf(err, errlen, "%s: out of memory", path);
				return -ENOMEM;
			}
			buf = nb;
			cap = cap ? 2 * cap : 1 << 20;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0)
			break;
	}
	if (ferror(f)) {
		ret = -EIO;
		snprintf(err, errlen, "%s: read error", path);
		free(buf);
		fclose(f);
		return ret;
	}
	fclose(f);
	ret = bench_trace_parse(buf, len, path, t, err, errlen);
	free(buf);
	return ret;
}
