/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench compare A.json B.json: before/after ratios of two results.
 *
 * Reads the JSON of "matrix --json" (one document) or of "run --json" (one record per line),
 * pairs the runs of A and B that have the same model (or backend), workload, policy and thread
 * count, and divides every numeric metric of B by the same metric of A. Configuration keys
 * (sizes, seeds, bounds) are not metrics: where they differ between paired runs, it says so,
 * since the ratios then compare more than the code. Two tables come out: the chosen metrics of
 * every pair, then every metric summarised over the pairs (geometric mean, min and max).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <iovaq/iovaq.h>

#include "bench.h"

/* Keys of a run record that describe its configuration rather than measure anything. */
static const char *const config_keys[] = {
	"schema_version", "threads", "ops", "total_ops", "pages_per_op", "arena_pages",
	"arena_sync_pages", "reps", "seed", "background", "rings", "pool_pages", "max_window_ns",
	"max_reachable_pages", NULL,
};

/* Measured, but not a property of the code: left out of the ratios. */
static const char *const skipped_keys[] = { "rep_ns_per_op", "foreign_cpu_share", NULL };

/* The default columns of the per-pair table. */
static const char *const default_metrics[] = {
	"ns_per_op", "cpu_ns_per_op.host", "throughput.host_gbit_per_s", "inval_per_page",
	"window_ns.p99", "device_per_page.modeled_ns", NULL,
};

struct metric {
	char *path;	/* "window_ns.p99", "cpu_ns_per_op.measured.alloc" */
	double v;	/* NAN for null */
	bool config;
};

struct record {
	char id[192];	/* "native nic-rx strict", plus " threads=N" if N > 1 */
	const char *model, *workload, *policy;
	uint64_t threads;
	struct metric *m;
	size_t n, cap;
	bool paired;
};

struct side {
	const char *file;
	struct bench_jval *vals;
	size_t nvals;
	struct record *recs;
	size_t n;
};

static bool in_list(const char *const *list, const char *s)
{
	for (unsigned int i = 0; list[i]; i++)
		if (strcmp(list[i], s) == 0)
			return true;
	return false;
}

static int add_metric(struct record *r, const char *path, double v, bool config)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 64;
		struct metric *m = realloc(r->m, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		r->m = m;
		r->cap = cap;
	}
	r->m[r->n].path = strdup(path);
	if (!r->m[r->n].path)
		return -ENOMEM;
	r->m[r->n].v = v;
	r->m[r->n].config = config;
	r->n++;
	return 0;
}

/* Every number (or null) under @v, as dotted paths; strings and booleans are not metrics. */
static int flatten(struct record *r, const struct bench_jval *v, const char *path, bool config)
{
	char sub[256];
	int err = 0;

	switch (v->type) {
	case BJ_NUM:
		return add_metric(r, path, v->num, config);
	case BJ_NULL:
		return add_metric(r, path, NAN, config);
	case BJ_OBJ:
		for (size_t i = 0; i < v->n && !err; i++) {
			snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", v->keys[i]);
			if (!*path && in_list(skipped_keys, v->keys[i]))
				continue;
			err = flatten(r, &v->items[i], sub,
				      config || (!*path && in_list(config_keys, v->keys[i])));
		}
		return err;
	case BJ_ARR:
		for (size_t i = 0; i < v->n && !err; i++) {
			snprintf(sub, sizeof(sub), "%s[%zu]", path, i);
			err = flatten(r, &v->items[i], sub, config);
		}
		return err;
	default:
		return 0;
	}
}

static _Noreturn void bad_file(const struct side *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static _Noreturn void bad_file(const struct side *s, const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	bench_usage_error("%s: %s", s->file, what);
}

static void add_record(struct side *s, const struct bench_jval *v, size_t at)
{
	const char *type = bench_jval_str(v, "type"), *cmd = bench_jval_str(v, "command");
	const struct bench_jval *sv = bench_jval_get(v, "schema_version");
	const struct bench_jval *th = bench_jval_get(v, "threads");
	struct record *r;

	if (v->type != BJ_OBJ || !type || !sv || sv->type != BJ_NUM)
		bad_file(s, "value %zu is not an iovaq-bench result (no \"type\" and "
			 "\"schema_version\")", at + 1);
	if (strcmp(type, "run") != 0 || !cmd || (strcmp(cmd, "run") && strcmp(cmd, "matrix")))
		bad_file(s, "value %zu is a \"%s\" record of '%s %s': compare reads the results of "
			 "'%s matrix --json' and '%s run --json'", at + 1, type, BENCH_PROG,
			 cmd ? cmd : "alloc", BENCH_PROG, BENCH_PROG);
	r = &s->recs[s->n++];
	memset(r, 0, sizeof(*r));
	r->model = bench_jval_str(v, "model");
	r->workload = bench_jval_str(v, "workload");
	r->policy = bench_jval_str(v, "policy");
	r->threads = th && th->type == BJ_NUM ? (uint64_t)th->num : 1;
	if (!r->model || !r->workload || !r->policy)
		bad_file(s, "run %zu has no \"model\", \"workload\" or \"policy\"", s->n);
	snprintf(r->id, sizeof(r->id), "%s %s %s", r->model, r->workload, r->policy);
	if (r->threads != 1)
		snprintf(r->id + strlen(r->id), sizeof(r->id) - strlen(r->id), " threads=%" PRIu64,
			 r->threads);
	for (size_t k = 0; k + 1 < s->n; k++)
		if (strcmp(s->recs[k].id, r->id) == 0)
			bad_file(s, "run '%s' appears twice", r->id);
	if (flatten(r, v, "", false))
		bench_usage_error("out of memory reading %s", s->file);
}

static void load(struct side *s)
{
	size_t len = 0, cap = 1 << 16, total = 0;
	FILE *f = fopen(s->file, "r");
	char *text, err[256];
	int bad, oom, rerr;

	/* Every error path below exits: nothing may be left allocated (LeakSanitizer). */
	if (!f)
		bench_usage_error("cannot read '%s': %s", s->file, strerror(errno));
	text = malloc(cap);
	for (char *t = text; t;) {
		size_t got = fread(t + len, 1, cap - len, f);

		len += got;
		if (got == 0)
			break;
		if (len == cap) {
			t = realloc(text, cap * 2);
			if (!t) {
				free(text);
				text = NULL;	/* out of memory: reported below */
				break;
			}
			text = t;
			cap *= 2;
		}
	}
	rerr = errno;
	oom = !text;
	bad = oom || ferror(f);
	fclose(f);
	if (bad) {
		free(text);
		bench_usage_error("cannot read '%s': %s", s->file, oom ? "out of memory" :
				  strerror(rerr));
	}
	bad = bench_jread(text, len, &s->vals, &s->nvals, err, sizeof(err));
	free(text);
	if (bad)
		bad_file(s, "not valid JSON: %s", err);
	if (!s->nvals)
		bad_file(s, "empty: no results");

	for (size_t i = 0; i < s->nvals; i++) {
		const struct bench_jval *runs = bench_jval_get(&s->vals[i], "runs");
		const char *type = bench_jval_str(&s->vals[i], "type");

		total += type && strcmp(type, "matrix") == 0 && runs && runs->type == BJ_ARR ?
				 runs->n : 1;
	}
	s->recs = calloc(total, sizeof(*s->recs));
	if (!s->recs)
		bench_usage_error("out of memory reading %s", s->file);
	for (size_t i = 0; i < s->nvals; i++) {
		const struct bench_jval *v = &s->vals[i];
		const struct bench_jval *runs = bench_jval_get(v, "runs");
		const char *type = bench_jval_str(v, "type");

		if (type && strcmp(type, "matrix") == 0) {
			if (!runs || runs->type != BJ_ARR)
				bad_file(s, "matrix document without a \"runs\" array");
			for (size_t k = 0; k < runs->n; k++)
				add_record(s, &runs->items[k], k);
		} else {
			add_record(s, v, i);
		}
	}
}

static void side_free(struct side *s)
{
	for (size_t i = 0; i < s->n; i++) {
		for (size_t k = 0; k < s->recs[i].n; k++)
			free(s->recs[i].m[k].path);
		free(s->recs[i].m);
	}
	free(s->recs);
	for (size_t i = 0; i < s->nvals; i++)
		bench_jval_free(&s->vals[i]);
	free(s->vals);
}

static const struct metric *find_metric(const struct record *r, const char *path)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->m[i].path, path) == 0)
			return &r->m[i];
	return NULL;
}

/* B / A; 1 when both are 0; NAN when either is unknown; +inf from 0 to non-zero. */
static double ratio(double a, double b)
{
	if (!isfinite(a) || !isfinite(b))
		return NAN;
	if (a == 0)
		return b == 0 ? 1 : INFINITY;
	return b / a;
}

static void fmt_ratio(char *buf, size_t len, double r)
{
	if (isnan(r))
		snprintf(buf, len, "-");
	else if (isinf(r))
		snprintf(buf, len, "0->");
	else
		snprintf(buf, len, "%.3f", r);
}

struct summary {
	const char *path;
	unsigned int runs;	/* pairs with a finite positive ratio */
	double log_sum, min, max;
};

struct compare_opts {
	const char *const *metrics;	/* NULL-terminated */
	bool json;
};

/* The pair of @a in @b, or NULL. */
static struct record *pair_of(const struct record *a, struct side *b)
{
	for (size_t k = 0; k < b->n; k++)
		if (strcmp(a->id, b->recs[k].id) == 0)
			return &b->recs[k];
	return NULL;
}

static int compare(struct side *a, struct side *b, const struct compare_opts *o)
{
	struct summary *sum;
	size_t nsum = 0, pairs = 0, cdiff = 0;
	struct bench_table t;
	struct bench_json j;
	char align[33] = "l";
	const char **head;
	unsigned int nm = 0;
	int err = 0;

	while (o->metrics[nm])
		align[1 + nm++] = 'r';
	/* Every metric of the first run of A, in its order (paths are the same in every run). */
	sum = calloc(a->recs[0].n, sizeof(*sum));
	head = calloc(nm + 1, sizeof(*head));
	if (!sum || !head) {
		free(sum);
		free(head);
		return bench_error("out of memory");
	}
	for (size_t i = 0; i < a->recs[0].n; i++) {
		if (a->recs[0].m[i].config)
			continue;
		sum[nsum].path = a->recs[0].m[i].path;
		sum[nsum].min = INFINITY;
		sum[nsum].max = -INFINITY;
		nsum++;
	}

	if (o->json) {
		bench_json_begin(&j, stdout);
		bench_json_str(&j, "type", "compare");
		bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
		bench_json_str(&j, "version", iovaq_version());
		bench_json_str(&j, "a", a->file);
		bench_json_str(&j, "b", b->file);
		bench_json_open_array(&j, "runs");
	} else {
		head[0] = "run (B / A)";
		for (unsigned int i = 0; i < nm; i++)
			head[i + 1] = o->metrics[i];
		bench_table_init(&t, nm + 1, head, align);
	}

	for (size_t i = 0; i < a->n && !err; i++) {
		struct record *ra = &a->recs[i], *rb = pair_of(ra, b);
		char cell[32][24];
		const char *row[32];

		if (!rb)
			continue;
		ra->paired = rb->paired = true;
		pairs++;
		for (size_t k = 0; k < ra->n; k++) {
			const struct metric *ma = &ra->m[k], *mb = find_metric(rb, ma->path);

			if (ma->config && mb && !(isnan(ma->v) && isnan(mb->v)) && ma->v != mb->v) {
				if (cdiff++ < 5)
					bench_warn("configurations differ: %s %s is %.6g in A, %.6g "
						   "in B", ra->id, ma->path, ma->v, mb->v);
			}
		}
		for (size_t s = 0; s < nsum; s++) {
			const struct metric *ma = find_metric(ra, sum[s].path);
			const struct metric *mb = find_metric(rb, sum[s].path);
			double r = ma && mb ? ratio(ma->v, mb->v) : NAN;

			if (isfinite(r) && r > 0) {
				sum[s].runs++;
				sum[s].log_sum += log(r);
				sum[s].min = fmin(sum[s].min, r);
				sum[s].max = fmax(sum[s].max, r);
			}
		}
		if (o->json) {
			bench_json_open(&j, NULL);
			bench_json_str(&j, "model", ra->model);
			bench_json_str(&j, "workload", ra->workload);
			bench_json_str(&j, "policy", ra->policy);
			bench_json_u64(&j, "threads", ra->threads);
			bench_json_open(&j, "metrics");
			for (size_t s = 0; s < nsum; s++) {
				const struct metric *ma = find_metric(ra, sum[s].path);
				const struct metric *mb = find_metric(rb, sum[s].path);
				double va = ma ? ma->v : NAN, vb = mb ? mb->v : NAN;
				double r = ratio(va, vb);

				bench_json_open(&j, sum[s].path);
				bench_json_double(&j, "a", va);
				bench_json_double(&j, "b", vb);
				bench_json_double(&j, "ratio", r);
				bench_json_close(&j);
			}
			bench_json_close(&j);
			bench_json_close(&j);
			continue;
		}
		row[0] = ra->id;
		for (unsigned int c = 0; c < nm && c < 31; c++) {
			const struct metric *ma = find_metric(ra, o->metrics[c]);
			const struct metric *mb = find_metric(rb, o->metrics[c]);

			fmt_ratio(cell[c], sizeof(cell[c]), ma && mb ? ratio(ma->v, mb->v) : NAN);
			row[c + 1] = cell[c];
		}
		err = bench_table_add(&t, row);
	}

	if (o->json) {
		bench_json_close_array(&j);
		bench_json_open_array(&j, "summary");
		for (size_t s = 0; s < nsum; s++) {
			bool any = sum[s].runs > 0;

			bench_json_open(&j, NULL);
			bench_json_str(&j, "metric", sum[s].path);
			bench_json_u64(&j, "runs", sum[s].runs);
			bench_json_double(&j, "geomean", any ? exp(sum[s].log_sum / sum[s].runs) : NAN);
			bench_json_double(&j, "min", any ? sum[s].min : NAN);
			bench_json_double(&j, "max", any ? sum[s].max : NAN);
			bench_json_close(&j);
		}
		bench_json_close_array(&j);
		bench_json_u64(&j, "pairs", pairs);
		bench_json_open_array(&j, "only_a");
		for (size_t i = 0; i < a->n; i++)
			if (!a->recs[i].paired)
				bench_json_str(&j, NULL, a->recs[i].id);
		bench_json_close_array(&j);
		bench_json_open_array(&j, "only_b");
		for (size_t i = 0; i < b->n; i++)
			if (!b->recs[i].paired)
				bench_json_str(&j, NULL, b->recs[i].id);
		bench_json_close_array(&j);
		bench_json_u64(&j, "config_differences", cdiff);
		bench_json_end(&j);
	} else if (!err) {
		struct bench_table st;
		static const char *const shead[] = { "metric", "pairs", "geomean B/A", "min",
						     "max" };

		printf("B = %s over A = %s, %zu pairs of runs (< 1: B is lower)\n\n", b->file,
		       a->file, pairs);
		bench_table_print(&t, stdout);
		bench_table_init(&st, 5, shead, "lrrrr");
		for (size_t s = 0; s < nsum && !err; s++) {
			char c[4][24];
			const char *row[5] = { sum[s].path, c[0], c[1], c[2], c[3] };
			bool any = sum[s].runs > 0;

			snprintf(c[0], 24, "%u", sum[s].runs);
			fmt_ratio(c[1], 24, any ? exp(sum[s].log_sum / sum[s].runs) : NAN);
			fmt_ratio(c[2], 24, any ? sum[s].min : NAN);
			fmt_ratio(c[3], 24, any ? sum[s].max : NAN);
			err = bench_table_add(&st, row);
		}
		printf("\nEvery metric over the pairs (geometric mean of the ratios that are finite "
		       "and > 0; \"0->\" in a\ntable: A was 0 and B is not; \"-\": unknown in A or "
		       "B). Units and meanings: docs/bench-schema.md.\n\n");
		if (!err)
			bench_table_print(&st, stdout);
		bench_table_free(&st);
		bench_table_free(&t);
	} else {
		bench_table_free(&t);
	}
	for (size_t i = 0; i < a->n; i++)
		if (!a->recs[i].paired)
			bench_warn("only in A (%s): %s", a->file, a->recs[i].id);
	for (size_t i = 0; i < b->n; i++)
		if (!b->recs[i].paired)
			bench_warn("only in B (%s): %s", b->file, b->recs[i].id);
	if (cdiff > 5)
		bench_warn("%zu more configuration differences", cdiff - 5);
	free(sum);
	free(head);
	return err ? bench_error("out of memory") : 0;
}

/* ---- "compare" subcommand ----------------------------------------------------------------- */

enum {
	O_METRICS,
	O_JSON,
	O_HELP,
};

static const struct bench_opt compare_opts[] = {
	{ "metrics", 0, "LIST", "comma-separated metrics for the per-run table, as\n"
				"dotted JSON paths (default: ns_per_op,\n"
				"cpu_ns_per_op.host, throughput.host_gbit_per_s,\n"
				"inval_per_page, window_ns.p99,\n"
				"device_per_page.modeled_ns)", O_METRICS },
	{ "json", 0, NULL, "one JSON document: A, B and the ratio of every metric\n"
			   "of every pair, and the summary", O_JSON },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

void bench_compare_help(FILE *f)
{
	fprintf(f,
		"Usage: %s compare A.json B.json [--metrics LIST] [--json]\n"
		"\n"
		"Before/after ratios B / A of two results of '%s matrix --json' or\n"
		"'%s run --json' (JSON Lines of runs also work). Runs pair up by model (or\n"
		"backend), workload, policy and thread count; for every pair, every numeric\n"
		"metric of B is divided by the same metric of A. Prints the chosen metrics of\n"
		"each pair, then every metric over all pairs: geometric mean, min and max.\n"
		"Configuration keys (ops, seed, reps, bounds) are not compared as metrics;\n"
		"when they differ it warns. Runs present on one side only are named.\n"
		"\n"
		"Options:\n",
		BENCH_PROG, BENCH_PROG, BENCH_PROG);
	bench_print_opts(f, compare_opts);
	fprintf(f,
		"\n"
		"Metric paths and units: docs/bench-schema.md (\"window_ns.p99\",\n"
		"\"cpu_ns_per_op.measured.alloc\", \"device_per_page.ptcache_misses.l2\", ...).\n"
		"Exit status: 0 success; 1 system error; 2 bad usage, or a file that cannot be\n"
		"read, is not JSON, holds other results, or has no run in common with the other.\n");
}

/* Split a comma list into a NULL-terminated array of pointers into @s (modified). */
static const char **split_list(char *s)
{
	size_t n = 2;
	const char **v;

	for (const char *p = s; *p; p++)
		n += *p == ',';
	v = calloc(n, sizeof(*v));
	if (!v)
		return NULL;
	n = 0;
	for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ","))
		v[n++] = tok;
	return v;
}

int bench_compare_main(int argc, char **argv)
{
	struct side a = { 0 }, b = { 0 };
	struct compare_opts o = { .metrics = default_metrics };
	const char **chosen = NULL;
	char *list = NULL;
	struct bench_args args;
	int id, ret;

	bench_args_init(&args, argc, argv, 1, "compare", compare_opts);
	while ((id = bench_args_next(&args)) != BENCH_ARG_END) {
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			if (!a.file)
				a.file = args.positional;
			else if (!b.file)
				b.file = args.positional;
			else
				bench_usage_error("unexpected argument '%s' for compare (it takes two "
						  "files, A and B)", args.positional);
			break;
		case O_METRICS:
			free(list);
			free(chosen);
			list = strdup(args.value);
			chosen = list ? split_list(list) : NULL;
			if (!chosen) {
				free(list);
				return bench_error("out of memory");
			}
			if (!chosen[0])
				bench_usage_error("empty value for --metrics (expected metric paths, "
						  "such as ns_per_op,window_ns.p99)");
			for (unsigned int i = 0; chosen[i]; i++)
				if (i == 31)
					bench_usage_error("--metrics: at most 31 metrics");
			o.metrics = chosen;
			break;
		case O_JSON:
			o.json = true;
			break;
		case O_HELP:
			bench_compare_help(stdout);
			free(chosen);
			free(list);
			return BENCH_EXIT_OK;
		}
	}
	if (!b.file)
		bench_usage_error("compare needs two files, A and B (got %s)", a.file ? "one" :
				  "none");
	load(&a);
	load(&b);
	/* Every chosen metric must exist (a typo would give an empty column). */
	for (unsigned int i = 0; o.metrics[i]; i++) {
		const struct metric *m = find_metric(&a.recs[0], o.metrics[i]);

		if (!m || m->config) {
			size_t len = 1, at = 0;
			char *valid = NULL;

			for (size_t k = 0; k < a.recs[0].n; k++)
				len += strlen(a.recs[0].m[k].path) + 2;
			valid = calloc(1, len);
			for (size_t k = 0; valid && k < a.recs[0].n; k++) {
				if (a.recs[0].m[k].config)
					continue;
				at += (size_t)snprintf(valid + at, len - at, "%s%s", at ? ", " : "",
						       a.recs[0].m[k].path);
			}
			bench_usage_error("unknown metric '%s' for --metrics (valid: %s)",
					  o.metrics[i], valid ? valid : "see docs/bench-schema.md");
		}
	}
	{
		bool any = false;

		for (size_t i = 0; i < a.n && !any; i++)
			any = pair_of(&a.recs[i], &b) != NULL;
		if (!any)
			bench_usage_error("no run of %s has a counterpart in %s (runs pair up by "
					  "model, workload, policy and threads)", a.file, b.file);
	}
	ret = compare(&a, &b, &o);
	side_free(&a);
	side_free(&b);
	free(chosen);
	free(list);
	return ret;
}
