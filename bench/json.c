/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench: a small JSON reader (RFC 8259) for "compare", which reads results back.
 *
 * Recursive descent into a tree of values; a text may hold several values separated by white
 * space, so that one matrix document and JSON Lines of run records read the same way. Errors
 * name the line and column. Nesting is limited (BENCH_JREAD_MAX_DEPTH) so that a hostile file
 * cannot exhaust the stack.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

#define BENCH_JREAD_MAX_DEPTH 64

struct reader {
	const char *s;
	size_t len;
	size_t pos;
	char *err;
	size_t errlen;
	bool failed;
};

static void fail(struct reader *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct reader *r, const char *fmt, ...)
{
	size_t line = 1, col = 1;
	char what[160];
	va_list ap;

	if (r->failed)
		return;
	r->failed = true;
	for (size_t i = 0; i < r->pos && i < r->len; i++) {
		if (r->s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(r->err, r->errlen, "line %zu, column %zu: %s", line, col, what);
}

static void skip_ws(struct reader *r)
{
	while (r->pos < r->len && strchr(" \t\r\n", r->s[r->pos]) && r->s[r->pos])
		r->pos++;
}

static int peek(const struct reader *r)
{
	return r->pos < r->len ? (unsigned char)r->s[r->pos] : -1;
}

static bool literal(struct reader *r, const char *word)
{
	size_t n = strlen(word);

	if (r->len - r->pos < n || strncmp(r->s + r->pos, word, n) != 0)
		return false;
	r->pos += n;
	return true;
}

static void put_utf8(char *out, size_t *o, unsigned int cp)
{
	if (cp < 0x80) {
		out[(*o)++] = (char)cp;
	} else if (cp < 0x800) {
		out[(*o)++] = (char)(0xc0 | cp >> 6);
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		out[(*o)++] = (char)(0xe0 | cp >> 12);
		out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		out[(*o)++] = (char)(0xf0 | cp >> 18);
		out[(*o)++] = (char)(0x80 | (cp >> 12 & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[(*o)++] = (char)(0x80 | (cp & 0x3f));
	}
}

static int hex4(struct reader *r, unsigned int *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		int c = peek(r);

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned int)(c - 'A' + 10);
		else
			return -1;
		r->pos++;
	}
	return 0;
}

/* A string at r->pos (after its opening quote) into a new NUL-terminated buffer. */
static char *parse_string(struct reader *r)
{
	/* The decoded string is never longer than its source. */
	size_t start = r->pos, o = 0, end = start;
	char *out;

	while (end < r->len && r->s[end] != '"')
		end += r->s[end] == '\\' ? 2 : 1;
	out = malloc(end - start + 1);
	if (!out) {
		fail(r, "out of memory");
		return NULL;
	}
	for (;;) {
		int c = peek(r);

		if (c < 0) {
			fail(r, "unterminated string");
			break;
		}
		r->pos++;
		if (c == '"') {
			out[o] = '\0';
			return out;
		}
		if (c < 0x20) {
			fail(r, "control character in a string");
			break;
		}
		if (c != '\\') {
			out[o++] = (char)c;
			continue;
		}
		c = peek(r);
		r->pos++;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			out[o++] = (char)c;
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u': {
			unsigned int cp, lo;

			if (hex4(r, &cp)) {
				fail(r, "bad \\u escape");
				goto out_fail;
			}
			if (cp >= 0xd800 && cp < 0xdc00 && literal(r, "\\u") && !hex4(r, &lo) &&
			    lo >= 0xdc00 && lo < 0xe000)
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			else if (cp >= 0xd800 && cp < 0xe000)
				cp = 0xfffd;	/* a lone surrogate */
			put_utf8(out, &o, cp);
			break;
		}
		default:
			fail(r, "bad escape in a string");
			goto out_fail;
		}
	}
out_fail:
	free(out);
	return NULL;
}

static void parse_value(struct reader *r, struct bench_jval *v, unsigned int depth);

/* Add an empty item (and key slot) to @v; false, with the reader failed, if out of memory. */
static bool append(struct reader *r, struct bench_jval *v, size_t *cap, bool obj)
{
	if (v->n == *cap) {
		size_t nc = *cap ? 2 * *cap : 8;
		struct bench_jval *it = realloc(v->items, nc * sizeof(*it));
		char **k = obj ? realloc(v->keys, nc * sizeof(*k)) : NULL;

		if (it)
			v->items = it;
		if (k)
			v->keys = k;
		if (!it || (obj && !k)) {
			fail(r, "out of memory");
			return false;
		}
		*cap = nc;
	}
	memset(&v->items[v->n], 0, sizeof(v->items[v->n]));
	if (obj)
		v->keys[v->n] = NULL;
	v->n++;
	return true;
}

static void parse_container(struct reader *r, struct bench_jval *v, unsigned int depth)
{
	bool obj = v->type == BJ_OBJ;
	char close = obj ? '}' : ']';
	size_t cap = 0;

	skip_ws(r);
	if (peek(r) == close) {
		r->pos++;
		return;
	}
	for (;;) {
		skip_ws(r);
		if (!append(r, v, &cap, obj))
			return;
		if (obj) {
			if (peek(r) != '"') {
				fail(r, "expected a key (a string)");
				return;
			}
			r->pos++;
			v->keys[v->n - 1] = parse_string(r);
			if (r->failed)
				return;
			skip_ws(r);
			if (peek(r) != ':') {
				fail(r, "expected ':' after a key");
				return;
			}
			r->pos++;
		}
		parse_value(r, &v->items[v->n - 1], depth + 1);
		if (r->failed)
			return;
		skip_ws(r);
		if (peek(r) == ',') {
			r->pos++;
			continue;
		}
		if (peek(r) == close) {
			r->pos++;
			return;
		}
		fail(r, "expected ',' or '%c'", close);
		return;
	}
}

/* One or more digits; false if there is none. */
static bool digits(struct reader *r)
{
	size_t start = r->pos;

	while (peek(r) >= '0' && peek(r) <= '9')
		r->pos++;
	return r->pos > start;
}

static void parse_number(struct reader *r, struct bench_jval *v)
{
	size_t start = r->pos;
	char buf[64], *end;

	/* The JSON grammar, checked by hand: strtod() alone would take "inf", hex and more. */
	if (peek(r) == '-')
		r->pos++;
	if (peek(r) == '0') {
		r->pos++;
	} else if (!digits(r)) {
		fail(r, "unexpected character");
		return;
	}
	if (peek(r) == '.') {
		r->pos++;
		if (!digits(r)) {
			fail(r, "bad number");
			return;
		}
	}
	if (peek(r) == 'e' || peek(r) == 'E') {
		r->pos++;
		if (peek(r) == '+' || peek(r) == '-')
			r->pos++;
		if (!digits(r)) {
			fail(r, "bad number");
			return;
		}
	}
	if (r->pos - start >= sizeof(buf)) {
		fail(r, "number too long");
		return;
	}
	memcpy(buf, r->s + start, r->pos - start);
	buf[r->pos - start] = '\0';
	v->type = BJ_NUM;
	v->num = strtod(buf, &end);
}

static void parse_value(struct reader *r, struct bench_jval *v, unsigned int depth)
{
	int c;

	if (depth > BENCH_JREAD_MAX_DEPTH) {
		fail(r, "nested deeper than %d levels", BENCH_JREAD_MAX_DEPTH);
		return;
	}
	skip_ws(r);
	c = peek(r);
	switch (c) {
	case '{':
	case '[':
		r->pos++;
		v->type = c == '{' ? BJ_OBJ : BJ_ARR;
		parse_container(r, v, depth);
		return;
	case '"':
		r->pos++;
		v->type = BJ_STR;
		v->str = parse_string(r);
		return;
	case -1:
		fail(r, "unexpected end of input");
		return;
	}
	if (literal(r, "true")) {
		v->type = BJ_BOOL;
		v->b = true;
	} else if (literal(r, "false")) {
		v->type = BJ_BOOL;
	} else if (literal(r, "null")) {
		v->type = BJ_NULL;
	} else {
		parse_number(r, v);
	}
}

int bench_jread(const char *text, size_t len, struct bench_jval **vals, size_t *n, char *err,
		size_t errlen)
{
	struct reader r = { .s = text, .len = len, .err = err, .errlen = errlen };
	struct bench_jval top = { .type = BJ_ARR };
	size_t cap = 0;

	err[0] = '\0';
	if (memchr(text, '\0', len)) {
		r.pos = (size_t)((const char *)memchr(text, '\0', len) - text);
		fail(&r, "NUL byte: not a text file");
	}
	for (skip_ws(&r); !r.failed && r.pos < len; skip_ws(&r)) {
		if (append(&r, &top, &cap, false))
			parse_value(&r, &top.items[top.n - 1], 1);
	}
	if (r.failed) {
		bench_jval_free(&top);
		return -EINVAL;
	}
	*vals = top.items;
	*n = top.n;
	return 0;
}

void bench_jval_free(struct bench_jval *v)
{
	if (v->type == BJ_STR)
		free(v->str);
	if (v->type != BJ_ARR && v->type != BJ_OBJ)
		return;
	for (size_t i = 0; i < v->n; i++) {
		bench_jval_free(&v->items[i]);
		if (v->keys)
			free(v->keys[i]);
	}
	free(v->items);
	free(v->keys);
	v->items = NULL;
	v->keys = NULL;
	v->n = 0;
}

const struct bench_jval *bench_jval_get(const struct bench_jval *obj, const char *key)
{
	if (!obj || obj->type != BJ_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->n; i++)
		if (obj->keys[i] && strcmp(obj->keys[i], key) == 0)
			return &obj->items[i];
	return NULL;
}

const char *bench_jval_str(const struct bench_jval *obj, const char *key)
{
	const struct bench_jval *v = bench_jval_get(obj, key);

	return v && v->type == BJ_STR ? v->str : NULL;
}
