// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * libFuzzer target: the guest IOMMU trace reader of "iovaq-bench replay" (bench/trace.c).
 *
 * The input is a trace file. bench_trace_parse() must never crash, read out of bounds or
 * leak, and:
 *
 *   - on failure: the trace is left empty and the message is "fuzz.trace:LINE: why" with the
 *     line number of a line the input has (or "fuzz.trace: out of memory");
 *   - on success: every event obeys the format's rules (a non-zero multiple of 4 KiB at a
 *     4 KiB-aligned IOVA, unmapped_size at most size, paddr aligned, the fields of its own
 *     kind only), line numbers grow, timestamps never go backwards, maps + unmaps = events,
 *     the input ends with a newline; each line parsed alone gives the same event; and the
 *     event printed back in the canonical format parses to the same fields.
 *
 * A failure aborts with a message naming the line.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

#define FAIL(...)                                                                                \
	do {                                                                                     \
		fprintf(stderr, "fuzz_trace: ");                                                 \
		fprintf(stderr, __VA_ARGS__);                                                    \
		fputc('\n', stderr);                                                             \
		abort();                                                                         \
	} while (0)

static int same(const struct bench_trace_ev *a, const struct bench_trace_ev *b)
{
	return a->ts_ns == b->ts_ns && a->iova == b->iova && a->size == b->size &&
	       a->paddr == b->paddr && a->unmapped == b->unmapped && a->kind == b->kind &&
	       a->cpu == b->cpu && a->pid == b->pid;
}

/* The canonical line of @ev, parsed again. */
static void roundtrip(const struct bench_trace_ev *ev)
{
	struct bench_trace_ev back;
	char line[256], why[160];
	int n, r;

	if (ev->kind == BENCH_TRACE_MAP)
		n = snprintf(line, sizeof(line), "task-%" PRIu32 " [%03" PRIu32 "] .... %" PRIu64
			     ".%09" PRIu64 ": map: IOMMU: iova=0x%016" PRIx64 " - 0x%016" PRIx64
			     " paddr=0x%016" PRIx64 " size=%" PRIu64, ev->pid, ev->cpu,
			     ev->ts_ns / 1000000000u, ev->ts_ns % 1000000000u, ev->iova,
			     ev->iova + ev->size, ev->paddr, ev->size);
	else
		n = snprintf(line, sizeof(line), "task-%" PRIu32 " [%03" PRIu32 "] .... %" PRIu64
			     ".%09" PRIu64 ": unmap: IOMMU: iova=0x%016" PRIx64 " - 0x%016" PRIx64
			     " size=%" PRIu64 " unmapped_size=%" PRIu64, ev->pid, ev->cpu,
			     ev->ts_ns / 1000000000u, ev->ts_ns % 1000000000u, ev->iova,
			     ev->iova + ev->size, ev->size, ev->unmapped);
	if (n < 0 || (size_t)n >= sizeof(line))
		FAIL("line %u: canonical line too long", ev->line);
	r = bench_trace_parse_line(line, (size_t)n, &back, why, sizeof(why));
	if (r != 1 || !same(ev, &back))
		FAIL("line %u: the canonical line '%s' parses to %d (%s), not the same event",
		     ev->line, line, r, r < 0 ? why : "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct bench_trace t;
	size_t nlines = 0, k = 0, ln = 0;
	uint64_t last_ts = 0;
	uint32_t last_line = 0;
	char err[512];
	int ret;

	for (size_t i = 0; i < size; i++)
		nlines += buf[i] == '\n';
	if (size && buf[size - 1] != '\n')
		nlines++;
	ret = bench_trace_parse(buf, size, "fuzz.trace", &t, err, sizeof(err));
	if (ret) {
		unsigned long line;
		char *end;

		if (t.ev || t.n || t.cap || t.maps || t.unmaps)
			FAIL("parse failed (%d) but left the trace non-empty", ret);
		if (ret == -ENOMEM && !strcmp(err, "fuzz.trace: out of memory"))
			return 0;
		if (ret != -EINVAL || strncmp(err, "fuzz.trace:", 11))
			FAIL("bad failure %d: '%s'", ret, err);
		line = strtoul(err + 11, &end, 10);
		if (end == err + 11 || *end != ':' || line < 1 || line > nlines)
			FAIL("failure without a line number of the input (%zu lines): '%s'", nlines,
			     err);
		return 0;
	}
	if (size && buf[size - 1] != '\n')
		FAIL("accepted an input whose last line has no newline");
	if (t.maps + t.unmaps != t.n || t.lines != nlines)
		FAIL("%zu maps + %zu unmaps != %zu events, or %zu lines != %zu", t.maps, t.unmaps,
		     t.n, t.lines, nlines);
	for (size_t i = 0; i < t.n; i++) {
		const struct bench_trace_ev *ev = &t.ev[i];

		if (!ev->size || ev->size % BENCH_TRACE_PAGE || ev->iova % BENCH_TRACE_PAGE ||
		    ev->iova + ev->size < ev->iova)
			FAIL("line %u: bad range 0x%" PRIx64 " + %" PRIu64, ev->line, ev->iova,
			     ev->size);
		if (ev->kind == BENCH_TRACE_MAP ? (ev->unmapped || ev->paddr % BENCH_TRACE_PAGE)
						: (ev->paddr || ev->unmapped > ev->size))
			FAIL("line %u: fields of the wrong kind or out of range", ev->line);
		if (ev->line <= last_line || ev->ts_ns < last_ts)
			FAIL("line %u: line numbers or timestamps out of order", ev->line);
		last_line = ev->line;
		last_ts = ev->ts_ns;
		roundtrip(ev);
	}
	/* Line by line: the same verdicts and events as the whole-file parse. */
	for (const char *p = buf, *e = buf + size; p < e;) {
		const char *nl = memchr(p, '\n', (size_t)(e - p));
		struct bench_trace_ev ev;
		char why[160];
		int r;

		ln++;
		r = bench_trace_parse_line(p, (size_t)(nl - p), &ev, why, sizeof(why));
		if (r < 0)
			FAIL("line %zu: rejected alone (%s) but accepted in the file", ln, why);
		if (r == 1) {
			if (k >= t.n || t.ev[k].line != ln)
				FAIL("line %zu: an event alone, not in the file's events", ln);
			ev.line = t.ev[k].line;
			if (!same(&ev, &t.ev[k]))
				FAIL("line %zu: a different event alone", ln);
			k++;
		}
		p = nl + 1;
	}
	if (k != t.n)
		FAIL("%zu events line by line, %zu in the file", k, t.n);
	bench_trace_free(&t);
	return 0;
}
