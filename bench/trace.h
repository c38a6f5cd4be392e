/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench: the reader of guest IOMMU traces (docs/apps-testbed.md, "Trace format"), for
 * "iovaq-bench replay". Self-contained (libc only) so that tests/fuzz/fuzz_trace.c can link
 * it alone.
 *
 * A trace is the text of tracefs's "trace" file with the iommu:map and iommu:unmap events:
 *
 *   <idle>-0       [000] b.s2.   192.803880: map: IOMMU: iova=0x00000000fff79000 - 0x00000000fff7a000 paddr=0x0000000078ba2000 size=4096
 *   <idle>-0       [000] ..s2.   192.804459: unmap: IOMMU: iova=0x00000000fff79000 - 0x00000000fff7a000 size=4096 unmapped_size=4096
 *
 * The reader is strict: every line is an event in exactly that form, a '#' comment (tracefs's
 * header) or empty. Checked per line: the task is "COMM-PID" with a decimal PID, the CPU is
 * "[DIGITS]", the flags one word, the timestamp "SECONDS.FRACTION" (1 to 9 fraction digits),
 * the event map or unmap with its own fields only, the range [iova, end) equals size bytes,
 * size is a non-zero multiple of 4 KiB and iova 4 KiB-aligned, paddr 4 KiB-aligned,
 * unmapped_size at most size, hexadecimal at most 16 digits and decimal within 64 bits,
 * nothing after the last field (no '\r'), no NUL byte. Across lines: timestamps never go
 * backwards, and the file ends with a newline (a last line without one is a truncated trace).
 */
#ifndef IOVAQ_BENCH_TRACE_H
#define IOVAQ_BENCH_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define BENCH_TRACE_PAGE 4096ULL

enum bench_trace_kind {
	BENCH_TRACE_MAP,
	BENCH_TRACE_UNMAP,
};

/* One event. Ranges are [iova, iova + size) in bytes. */
struct bench_trace_ev {
	uint64_t ts_ns;		/* trace clock, ns (the trace has microseconds) */
	uint64_t iova;
	uint64_t size;		/* bytes */
	uint64_t paddr;		/* map: guest-physical address; unmap: 0 */
	uint64_t unmapped;	/* unmap: unmapped_size, bytes; map: 0 */
	uint32_t line;		/* 1-based line number in the file */
	uint32_t pid;
	uint32_t cpu;
	enum bench_trace_kind kind;
};

struct bench_trace {
	struct bench_trace_ev *ev;
	size_t n, cap;
	size_t maps, unmaps;
	size_t lines;		/* lines read, comments and empty ones included */
};

/*
 * Parse one line (@len bytes, without its '\n') into @ev (@ev->line is left to the caller).
 * Return: 1 an event, 0 an empty or '#' line, -EINVAL with the reason in @why.
 */
int bench_trace_parse_line(const char *line, size_t len, struct bench_trace_ev *ev, char *why,
			   size_t whylen);

/*
 * Parse a whole trace in @buf (@len bytes; need not be NUL-terminated) into @t, which must be
 * zeroed. @name is the file name for messages.
 * Return: 0; -EINVAL with "NAME:LINE: reason" in @err; -ENOMEM with "NAME: out of memory".
 * On error @t is freed (empty again).
 */
int bench_trace_parse(const char *buf, size_t len, const char *name, struct bench_trace *t,
		      char *err, size_t errlen);

/*
 * Read and parse the file @path into @t (zeroed).
 * Return: as bench_trace_parse(), or a negative errno with "PATH: strerror" in @err when the
 * file cannot be read.
 */
int bench_trace_load(const char *path, struct bench_trace *t, char *err, size_t errlen);

/* Free what @t holds; it is empty afterwards. */
void bench_trace_free(struct bench_trace *t);

#endif /* IOVAQ_BENCH_TRACE_H */
