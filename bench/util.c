/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench: timing, statistics, PRNG, CPU pinning, option parsing and output helpers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

/* ---- time and statistics ------------------------------------------------------------- */

uint64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_clock_read_ns(void)
{
	static double cost;
	double v[5];

	if (cost > 0)
		return cost;
	for (unsigned int k = 0; k < 5; k++) {
		uint64_t t0 = bench_now_ns();

		for (unsigned int i = 0; i < 2000; i++)
			bench_now_ns();	/* a vDSO call: never optimised away */
		v[k] = (double)(bench_now_ns() - t0) / 2001;
	}
	cost = bench_median(v, 5);
	return cost;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double bench_median(const double *v, size_t n)
{
	double *tmp, m;

	if (n == 0)
		return NAN;
	tmp = malloc(n * sizeof(*tmp));
	if (!tmp)
		return NAN;
	memcpy(tmp, v, n * sizeof(*tmp));
	qsort(tmp, n, sizeof(*tmp), cmp_double);
	m = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
	free(tmp);
	return m;
}

double bench_min(const double *v, size_t n)
{
	double m = n ? v[0] : NAN;

	for (size_t i = 1; i < n; i++)
		if (v[i] < m)
			m = v[i];
	return m;
}

double bench_max(const double *v, size_t n)
{
	double m = n ? v[0] : NAN;

	for (size_t i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

static bool read_proc_stat(uint64_t *busy, uint64_t *total)
{
	unsigned long long v[8] = { 0 };
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return false;
	/* "cpu user nice system idle iowait irq softirq steal ..." in clock ticks */
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 8)
		return false;
	*busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
	*total = *busy + v[3] + v[4];
	return true;
}

static double self_cpu_s(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru))
		return 0;
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

void bench_load_begin(struct bench_load *l)
{
	l->ok = read_proc_stat(&l->busy_ticks, &l->total_ticks);
	l->self_s = self_cpu_s();
}

double bench_load_end(const struct bench_load *l)
{
	uint64_t busy, total;
	long hz = sysconf(_SC_CLK_TCK);
	double others;

	if (!l->ok || hz <= 0 || !read_proc_stat(&busy, &total))
		return NAN;
	/* Below 50 ticks (0.5 s of one CPU at 100 Hz) the tick granularity swamps the figure. */
	if (total - l->total_ticks < 50)
		return NAN;
	others = (double)(busy - l->busy_ticks) - (self_cpu_s() - l->self_s) * (double)hz;
	if (others < 0)
		others = 0;
	return others / (double)(total - l->total_ticks);
}

/* ---- PRNG ------------------------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void bench_rng_seed(struct bench_rng *r, uint64_t seed, uint64_t stream)
{
	/*
	 * Mix the stream in through splitmix64 itself rather than adding it to the seed, so
	 * that (seed 1, thread 0) and (seed 0, thread 1) do not share a sequence.
	 */
	uint64_t x = seed;
	uint64_t y = splitmix64(&x) ^ stream;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&y);
}

uint64_t bench_rng_below(struct bench_rng *r, uint64_t n)
{
	/*
	 * Lemire, "Fast random integer generation in an interval" (TOMS 2019): a 64x64->128
	 * multiply, and a division only on the rare rejection path.
	 */
	unsigned __int128 m = (unsigned __int128)bench_rng_next(r) * n;
	uint64_t lo = (uint64_t)m;

	if (lo < n) {
		uint64_t t = -n % n;

		while (lo < t) {
			m = (unsigned __int128)bench_rng_next(r) * n;
			lo = (uint64_t)m;
		}
	}
	return (uint64_t)(m >> 64);
}

/* ---- CPUs ------------------------------------------------------------------------------ */

static int cpu_list[CPU_SETSIZE];
static unsigned int cpu_count;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

static void cpu_init(void)
{
	cpu_set_t set;

	/*
	 * Use the affinity mask, not the number of online CPUs: under taskset or a cgroup
	 * cpuset, pinning to a CPU outside the mask fails.
	 */
	if (sched_getaffinity(0, sizeof(set), &set) == 0) {
		for (size_t c = 0; c < CPU_SETSIZE; c++)
			if (CPU_ISSET(c, &set))
				cpu_list[cpu_count++] = (int)c;
	}
	if (cpu_count == 0) {
		cpu_list[0] = 0;
		cpu_count = 1;
	}
}

unsigned int bench_ncpus(void)
{
	pthread_once(&cpu_once, cpu_init);
	return cpu_count;
}

int bench_cpu_for(unsigned int i)
{
	pthread_once(&cpu_once, cpu_init);
	return cpu_list[i % cpu_count];
}

int bench_pin_self(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return EINVAL;
	CPU_ZERO(&set);
	CPU_SET((size_t)cpu, &set);
	return pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

/* ---- messages ------------------------------------------------------------------------- */

static bool progress_shown;
static const char *usage_cmd;
static const char *usage_synopsis = "[OPTIONS] | " BENCH_PROG " COMMAND [OPTIONS]";

static void vmessage(const char *kind, const char *fmt, va_list ap)
{
	bench_progress_clear();
	fprintf(stderr, "%s: %s: ", BENCH_PROG, kind);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void bench_set_usage(const char *cmd, const char *synopsis)
{
	usage_cmd = cmd;
	usage_synopsis = synopsis;
}

void bench_usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("error", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Usage: %s%s%s %s\nRun '%s%s%s --help' for the options.\n", BENCH_PROG,
		usage_cmd ? " " : "", usage_cmd ? usage_cmd : "", usage_synopsis, BENCH_PROG,
		usage_cmd ? " " : "", usage_cmd ? usage_cmd : "");
	exit(BENCH_EXIT_USAGE);
}

int bench_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("error", fmt, ap);
	va_end(ap);
	return BENCH_EXIT_FAIL;
}

void bench_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmessage("warning", fmt, ap);
	va_end(ap);
}

void bench_progress(const char *fmt, ...)
{
	va_list ap;

	if (!isatty(STDERR_FILENO))
		return;
	/* Carriage return and "erase to end of line": the indicator stays on one line. */
	fputs("\r\033[K", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
	progress_shown = true;
}

void bench_progress_clear(void)
{
	if (!progress_shown)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	progress_shown = false;
}

/* ---- options --------------------------------------------------------------------------- */

void bench_join(char *buf, size_t len, const char *const *words, const char *sep)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; words[i] && used < len; i++) {
		int n = snprintf(buf + used, len - used, "%s%s", i ? sep : "", words[i]);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static void list_opts(char *buf, size_t len, const struct bench_opt *opts)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const struct bench_opt *o = opts; o->name && used < len; o++) {
		int n = snprintf(buf + used, len - used, "%s--%s", used ? ", " : "", o->name);

		if (n < 0)
			break;
		used += (size_t)n;
	}
}

static const char *cmd_hint(const struct bench_args *a)
{
	return a->cmd ? a->cmd : "";
}

void bench_args_init(struct bench_args *a, int argc, char **argv, int first, const char *cmd,
		     const struct bench_opt *opts)
{
	memset(a, 0, sizeof(*a));
	a->argc = argc;
	a->argv = argv;
	a->next = first;
	a->cmd = cmd;
	a->opts = opts;
}

int bench_args_next(struct bench_args *a)
{
	const struct bench_opt *o;
	const char *arg, *name, *eq;
	size_t name_len;
	char valid[1024];

	a->value = NULL;
	a->flag = NULL;
	a->positional = NULL;
	if (a->next >= a->argc)
		return BENCH_ARG_END;
	arg = a->argv[a->next++];
	a->flag = arg;

	if (arg[0] != '-' || arg[1] == '\0') {
		a->positional = arg;
		return BENCH_ARG_POSITIONAL;
	}

	if (arg[1] != '-') {
		/* Short options: one letter each, no bundling, none of them takes a value. */
		for (o = a->opts; o->name; o++)
			if (o->short_name && o->short_name == arg[1] && arg[2] == '\0' &&
			    !o->metavar)
				return o->id;
		list_opts(valid, sizeof(valid), a->opts);
		bench_usage_error("unknown option '%s'%s%s (valid: %s)", arg,
				  a->cmd ? " for " : "", cmd_hint(a), valid);
	}

	name = arg + 2;
	eq = strchr(name, '=');
	name_len = eq ? (size_t)(eq - name) : strlen(name);
	for (o = a->opts; o->name; o++) {
		if (strlen(o->name) != name_len || strncmp(o->name, name, name_len) != 0)
			continue;
		if (!o->metavar) {
			if (eq)
				bench_usage_error("option --%s takes no value (got '%s')", o->name,
						  arg);
			return o->id;
		}
		if (eq) {
			a->value = eq + 1;
		} else {
			if (a->next >= a->argc)
				bench_usage_error("option --%s needs a value (--%s %s); see '%s%s%s "
						  "--help'", o->name, o->name, o->metavar,
						  BENCH_PROG, a->cmd ? " " : "", cmd_hint(a));
			a->value = a->argv[a->next++];
		}
		return o->id;
	}
	list_opts(valid, sizeof(valid), a->opts);
	bench_usage_error("unknown option '%.*s'%s%s (valid: %s)", (int)(name_len + 2), arg,
			  a->cmd ? " for " : "", cmd_hint(a), valid);
}

static const char *opt_name(const struct bench_args *a)
{
	/* The option as typed, without any "=value" part. */
	static char buf[128];
	const char *eq = a->flag ? strchr(a->flag, '=') : NULL;

	if (!a->flag)
		return "?";
	if (!eq)
		return a->flag;
	snprintf(buf, sizeof(buf), "%.*s", (int)(eq - a->flag), a->flag);
	return buf;
}

uint64_t bench_parse_u64(const struct bench_args *a, uint64_t min, uint64_t max)
{
	const char *s = a->value, *p;
	unsigned long long v;
	char *end;
	uint64_t mul = 1;

	if (!s || !*s)
		bench_usage_error("empty value for %s (expected an integer from %" PRIu64
				  " to %" PRIu64 ")", opt_name(a), min, max);
	/* strtoull() would accept leading spaces, a sign and wrap "-1" to UINT64_MAX. */
	if (*s < '0' || *s > '9')
		goto not_a_number;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		goto out_of_range;
	p = end;
	if (*p == 'k' || *p == 'K') {
		mul = 1000;
		p++;
	} else if (*p == 'M') {
		mul = 1000000;
		p++;
	} else if (*p == 'G') {
		mul = 1000000000;
		p++;
	} else if ((*p == 'e' || *p == 'E') && p[1] >= '0' && p[1] <= '9') {
		unsigned long long e;

		errno = 0;
		e = strtoull(p + 1, &end, 10);
		if (errno == ERANGE || e > 19)
			goto out_of_range;
		for (unsigned long long i = 0; i < e; i++)
			mul *= 10;
		p = end;
	}
	if (*p != '\0')
		goto not_a_number;
	if (v != 0 && mul > UINT64_MAX / v)
		goto out_of_range;
	v *= mul;
	if (v < min || v > max)
		goto out_of_range;
	return v;

not_a_number:
	bench_usage_error("invalid value '%s' for %s: not a non-negative integer (expected %" PRIu64
			  " to %" PRIu64 "; suffixes k, M, G and eN allowed)",
			  s, opt_name(a), min, max);
out_of_range:
	bench_usage_error("invalid value '%s' for %s: out of range (expected %" PRIu64
			  " to %" PRIu64 ")", s, opt_name(a), min, max);
}

static int choice_index(const char *word, size_t len, const char *const *choices)
{
	for (int i = 0; choices[i]; i++)
		if (strlen(choices[i]) == len && strncmp(word, choices[i], len) == 0)
			return i;
	return -1;
}

unsigned int bench_parse_choice(const struct bench_args *a, const char *what,
				const char *const *choices)
{
	int i = choice_index(a->value, strlen(a->value), choices);
	char valid[512];

	if (i >= 0)
		return (unsigned int)i;
	bench_join(valid, sizeof(valid), choices, ", ");
	bench_usage_error("unknown %s '%s' for %s (valid: %s)", what, a->value, opt_name(a),
			  valid);
}

uint64_t bench_parse_choice_list(const struct bench_args *a, const char *what,
				 const char *const *choices)
{
	const char *p = a->value;
	uint64_t set = 0;
	char valid[512];

	bench_join(valid, sizeof(valid), choices, ", ");
	for (;;) {
		size_t len = strcspn(p, ",");
		int i = choice_index(p, len, choices);

		if (i < 0 || i >= 64) {
			if (!len)
				bench_usage_error("empty %s in '%s' for %s (a comma-separated list of: "
						  "%s)", what, a->value, opt_name(a), valid);
			bench_usage_error("unknown %s '%.*s' for %s (valid: %s)", what, (int)len, p,
					  opt_name(a), valid);
		}
		set |= 1ULL << i;
		if (!p[len])
			return set;
		p += len + 1;
	}
}

static int opt_left(char *buf, size_t len, const struct bench_opt *o)
{
	/* "-h, --help" or "    --ops N": long names line up whether or not a short one exists. */
	if (o->short_name)
		return snprintf(buf, len, "-%c, --%s%s%s", o->short_name, o->name,
				o->metavar ? " " : "", o->metavar ? o->metavar : "");
	return snprintf(buf, len, "    --%s%s%s", o->name, o->metavar ? " " : "",
			o->metavar ? o->metavar : "");
}

void bench_print_opts(FILE *f, const struct bench_opt *opts)
{
	const struct bench_opt *o;
	char left[96];
	int width = 0;

	for (o = opts; o->name; o++) {
		int n = opt_left(left, sizeof(left), o);

		if (n > width)
			width = n;
	}
	for (o = opts; o->name; o++) {
		opt_left(left, sizeof(left), o);
		fprintf(f, "  %-*s  ", width, left);
		/* Continuation lines of a help string (after '\n') are indented under it. */
		for (const char *h = o->help; *h; h++) {
			fputc(*h, f);
			if (*h == '\n')
				fprintf(f, "  %-*s  ", width, "");
		}
		fputc('\n', f);
	}
}

/* ---- output ---------------------------------------------------------------------------- */

void bench_fmt_count(char *buf, size_t len, uint64_t n)
{
	if (n >= 1000000000 && n % 1000000000 == 0)
		snprintf(buf, len, "%" PRIu64 "G", n / 1000000000);
	else if (n >= 1000000 && n % 1000000 == 0)
		snprintf(buf, len, "%" PRIu64 "M", n / 1000000);
	else if (n >= 10000 && n % 1000 == 0)
		snprintf(buf, len, "%" PRIu64 "k", n / 1000);
	else
		snprintf(buf, len, "%" PRIu64, n);
}

void bench_fmt_ns(char *buf, size_t len, uint64_t ns)
{
	if (ns >= 10000000)
		snprintf(buf, len, "%.0f ms", (double)ns / 1e6);
	else if (ns >= 1000000)
		snprintf(buf, len, "%.1f ms", (double)ns / 1e6);
	else if (ns >= 10000)
		snprintf(buf, len, "%.0f us", (double)ns / 1e3);
	else if (ns >= 1000)
		snprintf(buf, len, "%.1f us", (double)ns / 1e3);
	else
		snprintf(buf, len, "%" PRIu64 " ns", ns);
}

void bench_table_init(struct bench_table *t, unsigned int ncols, const char *const *head,
		      const char *align)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	t->head = head;
	t->align = align;
}

int bench_table_add(struct bench_table *t, const char *const *cells)
{
	if (t->nrows == t->cap) {
		unsigned int cap = t->cap ? 2 * t->cap : 8;
		char **n = realloc(t->cells, (size_t)cap * t->ncols * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->cells = n;
		t->cap = cap;
	}
	for (unsigned int c = 0; c < t->ncols; c++) {
		char *s;

		if (!cells) {
			t->cells[(size_t)t->nrows * t->ncols + c] = NULL;	/* a gap row */
			continue;
		}
		s = strdup(cells[c] ? cells[c] : "-");
		if (!s) {
			while (c--)
				free(t->cells[(size_t)t->nrows * t->ncols + c]);
			return -ENOMEM;
		}
		t->cells[(size_t)t->nrows * t->ncols + c] = s;
	}
	t->nrows++;
	return 0;
}

void bench_table_print(const struct bench_table *t, FILE *f)
{
	size_t width[32] = { 0 };
	unsigned int ncols = t->ncols < 32 ? t->ncols : 32;

	for (unsigned int c = 0; c < ncols; c++) {
		width[c] = strlen(t->head[c]);
		for (unsigned int r = 0; r < t->nrows; r++) {
			const char *cell = t->cells[(size_t)r * t->ncols + c];
			size_t w = cell ? strlen(cell) : 0;

			if (w > width[c])
				width[c] = w;
		}
	}
	for (int r = -2; r < (int)t->nrows; r++) {
		if (r >= 0 && !t->cells[(size_t)r * t->ncols]) {
			fputc('\n', f);
			continue;
		}
		for (unsigned int c = 0; c < ncols; c++) {
			const char *s;
			bool right = t->align[c] == 'r';
			bool last = c + 1 == ncols;

			if (r == -2) {
				s = t->head[c];
			} else if (r == -1) {
				for (size_t i = 0; i < width[c]; i++)
					fputc('-', f);
				if (!last)
					fputs("  ", f);
				continue;
			} else {
				s = t->cells[(size_t)r * t->ncols + c];
			}
			/* No trailing blanks after a left-aligned last column. */
			if (right)
				fprintf(f, "%*s", (int)width[c], s);
			else if (last)
				fputs(s, f);
			else
				fprintf(f, "%-*s", (int)width[c], s);
			if (!last)
				fputs("  ", f);
		}
		fputc('\n', f);
	}
}

void bench_table_free(struct bench_table *t)
{
	for (size_t i = 0; i < (size_t)t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->nrows = t->cap = 0;
}

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20)
				fprintf(f, "\\u%04x", *p);
			else
				fputc(*p, f);
		}
	}
	fputc('"', f);
}

static void json_key(struct bench_json *j, const char *key)
{
	if (j->comma[j->depth])
		fputc(',', j->f);
	j->comma[j->depth] = true;
	if (key) {
		json_string(j->f, key);
		fputc(':', j->f);
	}
}

static void json_push(struct bench_json *j, char c)
{
	fputc(c, j->f);
	if (j->depth + 1 < BENCH_JSON_MAX_DEPTH)
		j->depth++;
	j->comma[j->depth] = false;
}

void bench_json_begin(struct bench_json *j, FILE *f)
{
	memset(j, 0, sizeof(*j));
	j->f = f;
	json_push(j, '{');
}

void bench_json_end(struct bench_json *j)
{
	fputs("}\n", j->f);
	fflush(j->f);
	j->depth = 0;
}

void bench_json_open(struct bench_json *j, const char *key)
{
	json_key(j, key);
	json_push(j, '{');
}

void bench_json_close(struct bench_json *j)
{
	fputc('}', j->f);
	if (j->depth)
		j->depth--;
}

void bench_json_open_array(struct bench_json *j, const char *key)
{
	json_key(j, key);
	json_push(j, '[');
}

void bench_json_close_array(struct bench_json *j)
{
	fputc(']', j->f);
	if (j->depth)
		j->depth--;
}

void bench_json_str(struct bench_json *j, const char *key, const char *val)
{
	json_key(j, key);
	if (val)
		json_string(j->f, val);
	else
		fputs("null", j->f);
}

void bench_json_u64(struct bench_json *j, const char *key, uint64_t val)
{
	json_key(j, key);
	fprintf(j->f, "%" PRIu64, val);
}

void bench_json_double(struct bench_json *j, const char *key, double val)
{
	json_key(j, key);
	if (isfinite(val))
		fprintf(j->f, "%.6g", val);
	else
		fputs("null", j->f);
}

void bench_json_bool(struct bench_json *j, const char *key, bool val)
{
	json_key(j, key);
	fputs(val ? "true" : "false", j->f);
}

void bench_json_null(struct bench_json *j, const char *key)
{
	json_key(j, key);
	fputs("null", j->f);
}

void bench_json_raw(struct bench_json *j, const char *key, const char *text)
{
	json_key(j, key);
	fputs(text, j->f);
}

void bench_csv_field(FILE *f, const char *s, bool last)
{
	if (strpbrk(s, ",\"\n\r")) {
		fputc('"', f);
		for (const char *p = s; *p; p++) {
			if (*p == '"')
				fputc('"', f);
			fputc(*p, f);
		}
		fputc('"', f);
	} else {
		fputs(s, f);
	}
	fputc(last ? '\n' : ',', f);
}

void bench_gate_init(struct bench_gate *g)
{
	memset(g, 0, sizeof(*g));
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->cond, NULL);
}

void bench_gate_destroy(struct bench_gate *g)
{
	pthread_cond_destroy(&g->cond);
	pthread_mutex_destroy(&g->lock);
}

bool bench_gate_arrive(struct bench_gate *g)
{
	bool go;

	pthread_mutex_lock(&g->lock);
	g->ready++;
	pthread_cond_broadcast(&g->cond);
	while (!g->go && !g->abort)
		pthread_cond_wait(&g->cond, &g->lock);
	go = g->go;
	pthread_mutex_unlock(&g->lock);
	return go;
}

void bench_gate_wait_all(struct bench_gate *g, unsigned int n)
{
	pthread_mutex_lock(&g->lock);
	while (g->ready < n)
		pthread_cond_wait(&g->cond, &g->lock);
}

void bench_gate_release(struct bench_gate *g)
{
	g->go = !g->abort;
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

void bench_csv_head(FILE *f, const char *const *names)
{
	for (unsigned int i = 0; names[i]; i++)
		bench_csv_field(f, names[i], !names[i + 1]);
}

void bench_csv_row(FILE *f, char (*cells)[64], unsigned int n)
{
	for (unsigned int k = 0; k < n; k++)
		bench_csv_field(f, cells[k], k + 1 == n);
	fflush(f);
}

unsigned int bench_mixed_order(struct bench_rng *r)
{
	uint64_t p = bench_rng_below(r, 100);

	if (p < 70)
		return 0;
	if (p < 85)
		return 1 + (unsigned int)bench_rng_below(r, 2);
	if (p < 95)
		return 3 + (unsigned int)bench_rng_below(r, 3);
	return 6 + (unsigned int)bench_rng_below(r, 3);
}
