/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench: helpers shared by every subcommand.
 *
 * Timing, small statistics, a deterministic PRNG, CPU pinning, option parsing with one error
 * convention, and the three output formats (aligned table, JSON, CSV). Subcommands live in
 * their own files and reach each other only through the declarations at the end.
 *
 * Exit statuses are part of the interface (scripts test them): 0 success, 1 the library or the
 * system failed, 2 bad usage (unknown command, option, choice or a malformed number).
 */
#ifndef IOVAQ_BENCH_H
#define IOVAQ_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>

#define BENCH_PROG "iovaq-bench"
/* Version of the JSON records; bump when a key changes meaning or disappears. */
#define BENCH_SCHEMA_VERSION 1

enum {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_FAIL = 1,
	BENCH_EXIT_USAGE = 2,
};

#define bench_unlikely(x) __builtin_expect(!!(x), 0)

/* ---- time and statistics ------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns: never steps backwards, unaffected by NTP slews of the wall clock. */
uint64_t bench_now_ns(void);

/* Median of @n values (mean of the two middle ones when @n is even); @v is left unsorted. */
double bench_median(const double *v, size_t n);
double bench_min(const double *v, size_t n);
double bench_max(const double *v, size_t n);

/*
 * How much CPU time processes other than this one took while a run was timed, from
 * /proc/stat and getrusage(): on a shared or virtual machine (steal time counts as taken)
 * this is what makes times unreliable, so runs report it rather than leave it to be guessed.
 */
struct bench_load {
	uint64_t busy_ticks;	/* all CPUs, /proc/stat */
	uint64_t total_ticks;
	double self_s;		/* this process's user + system time */
	bool ok;
};

void bench_load_begin(struct bench_load *l);
/* Share of all CPUs' time used by others since bench_load_begin(), 0..1, or NAN if unknown. */
double bench_load_end(const struct bench_load *l);
/* Above this share of foreign CPU time, a run warns that its times are unreliable. */
#define BENCH_FOREIGN_LOAD_WARN 0.10

/* ---- PRNG ------------------------------------------------------------------------------ */

/*
 * xoshiro256** (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2021),
 * seeded through splitmix64 as its authors recommend. Fast, and identical on every platform,
 * so a seed names one exact operation sequence.
 */
struct bench_rng {
	uint64_t s[4];
};

/* Seed from (@seed, @stream): every thread of a run gets its own stream of one seed. */
void bench_rng_seed(struct bench_rng *r, uint64_t seed, uint64_t stream);

static inline uint64_t bench_rotl64(uint64_t x, unsigned int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t bench_rng_next(struct bench_rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = bench_rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = bench_rotl64(s[3], 45);
	return res;
}

/* Uniform in [0, @n), @n >= 1, without modulo bias. */
uint64_t bench_rng_below(struct bench_rng *r, uint64_t n);

/*
 * One size of issue 2's "mixed" workload, as log2(granules): 70% 1, 15% {2, 4}, 10% {8, 16,
 * 32}, 5% {64, 128, 256}, uniform within a bucket. Every subcommand's background churn uses it.
 */
unsigned int bench_mixed_order(struct bench_rng *r);

/* ---- CPUs ------------------------------------------------------------------------------ */

/* Number of CPUs this process may run on (its affinity mask), at least 1. */
unsigned int bench_ncpus(void);
/* The @i-th allowed CPU, wrapping: thread i of a run goes to bench_cpu_for(i). */
int bench_cpu_for(unsigned int i);
/* Pin the calling thread to @cpu. Return: 0 or a positive errno. */
int bench_pin_self(int cpu);

/* ---- messages ------------------------------------------------------------------------- */

/* "iovaq-bench: error: ..." on one line of stderr, then exit(2). */
_Noreturn void bench_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "iovaq-bench: error: ..." on stderr; returns BENCH_EXIT_FAIL for the caller to return. */
int bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * A one-line progress indicator on stderr, rewritten in place; silent unless stderr is a
 * terminal, so that redirected output and pipelines stay clean.
 */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void bench_progress_clear(void);

/* ---- options --------------------------------------------------------------------------- */

/*
 * One entry per long option of a command. Parsing is by hand rather than getopt_long() so
 * that every mistake produces the same one-line message naming the bad word and the choices,
 * with exit status 2, and so that the option table doubles as the --help text.
 */
struct bench_opt {
	const char *name;	/* without the leading "--" */
	char short_name;	/* 0 if none */
	const char *metavar;	/* NULL: the option takes no value */
	const char *help;
	int id;
};

struct bench_args {
	int argc;
	char **argv;
	int next;		/* next argv index to look at */
	const char *cmd;	/* for messages: "alloc", or NULL for the top level */
	const struct bench_opt *opts;	/* terminated by an entry with name NULL */
	const char *value;	/* value of the option just returned, or NULL */
	const char *flag;	/* the option as the user spelt it, for messages */
	const char *positional;	/* set when BENCH_ARG_POSITIONAL is returned */
};

#define BENCH_ARG_END (-1)
#define BENCH_ARG_POSITIONAL (-2)

void bench_args_init(struct bench_args *a, int argc, char **argv, int first, const char *cmd,
		     const struct bench_opt *opts);
/* Next option's id, BENCH_ARG_POSITIONAL or BENCH_ARG_END; usage errors exit(2). */
int bench_args_next(struct bench_args *a);

/*
 * Parse an unsigned decimal integer in [@min, @max] with full validation. Accepted forms:
 * digits, optionally followed by k, M or G (x10^3, 10^6, 10^9) or by eN (x10^N), so that
 * "10M", "1e7" and "10000000" are the same. No sign, no spaces, no hexadecimal.
 */
uint64_t bench_parse_u64(const struct bench_args *a, uint64_t min, uint64_t max);
/* Index of the option's value in @choices (NULL-terminated); anything else exits(2). */
unsigned int bench_parse_choice(const struct bench_args *a, const char *what,
				const char *const *choices);
/* "a, b, c" into @buf. */
void bench_join(char *buf, size_t len, const char *const *words, const char *sep);

/* The option list of a --help text, aligned, from the table. */
void bench_print_opts(FILE *f, const struct bench_opt *opts);

/* ---- output ---------------------------------------------------------------------------- */

enum bench_format {
	BENCH_FMT_TABLE,
	BENCH_FMT_JSON,
	BENCH_FMT_CSV,
};

/* "10M", "4096", "1k": exact multiples of 10^3 / 10^6 / 10^9 shortened, others in full. */
void bench_fmt_count(char *buf, size_t len, uint64_t n);

/* Aligned text table: every cell is copied; columns are as wide as their widest cell. */
struct bench_table {
	unsigned int ncols;
	unsigned int nrows;
	unsigned int cap;
	const char *const *head;
	const char *align;	/* one 'l' or 'r' per column */
	char **cells;		/* nrows * ncols */
};

void bench_table_init(struct bench_table *t, unsigned int ncols, const char *const *head,
		      const char *align);
/* Append a row of ncols cells (NULL prints as "-"). Return: 0 or -ENOMEM. */
int bench_table_add(struct bench_table *t, const char *const *cells);
void bench_table_print(const struct bench_table *t, FILE *f);
void bench_table_free(struct bench_table *t);

/*
 * Streaming JSON writer: one object per bench_json_begin()/bench_json_end(), printed on one
 * line (JSON Lines), flushed at the end so a consumer of a pipe sees each run as it finishes.
 * Keys are NULL inside arrays. Non-finite doubles become null (JSON has no NaN).
 */
#define BENCH_JSON_MAX_DEPTH 8

struct bench_json {
	FILE *f;
	unsigned int depth;
	bool comma[BENCH_JSON_MAX_DEPTH];
};

void bench_json_begin(struct bench_json *j, FILE *f);
void bench_json_end(struct bench_json *j);
void bench_json_open(struct bench_json *j, const char *key);	/* nested object */
void bench_json_close(struct bench_json *j);
void bench_json_open_array(struct bench_json *j, const char *key);
void bench_json_close_array(struct bench_json *j);
void bench_json_str(struct bench_json *j, const char *key, const char *val);
void bench_json_u64(struct bench_json *j, const char *key, uint64_t val);
void bench_json_double(struct bench_json *j, const char *key, double val);
void bench_json_bool(struct bench_json *j, const char *key, bool val);
void bench_json_null(struct bench_json *j, const char *key);
/* @text must already be valid JSON (e.g. from iovaq_stats_json()). */
void bench_json_raw(struct bench_json *j, const char *key, const char *text);

/* One CSV field: quoted only when it contains a comma, a quote or a newline (RFC 4180). */
void bench_csv_field(FILE *f, const char *s, bool last);
/*
 * Start gate: workers wait at it, filled and warm, until the main thread has seen them all and
 * releases them together (or aborts the run).
 */
struct bench_gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int ready;	/* workers at the gate; under @lock */
	bool go;		/* under @lock */
	bool abort;		/* under @lock */
};

void bench_gate_init(struct bench_gate *g);
void bench_gate_destroy(struct bench_gate *g);
/* Worker: arrive and wait for the release; true to run, false if the run was aborted. */
bool bench_gate_arrive(struct bench_gate *g);
/* Main: wait until @n workers arrived; returns with @g->lock held (set @g->abort as needed). */
void bench_gate_wait_all(struct bench_gate *g, unsigned int n);
/* Main, lock held: release the workers (go unless aborted) and drop the lock. */
void bench_gate_release(struct bench_gate *g);

/* Write a CSV header line from a NULL-terminated list of column names. */
void bench_csv_head(FILE *f, const char *const *names);
/* Write one CSV row of @n cells (each a 64-byte string) and flush. */
void bench_csv_row(FILE *f, char (*cells)[64], unsigned int n);


/* ---- subcommands ----------------------------------------------------------------------- */

/* bench/alloc.c: "iovaq-bench alloc ..." with argv[0] == "alloc". */
int bench_alloc_main(int argc, char **argv);
void bench_alloc_help(FILE *f);

/* bench/sim.c: "iovaq-bench sim ..." with argv[0] == "sim". */
int bench_sim_main(int argc, char **argv);
void bench_sim_help(FILE *f);

/* bench/run.c: "iovaq-bench run ..." with argv[0] == "run". */
int bench_run_main(int argc, char **argv);
void bench_run_help(FILE *f);

/* bench/alloc.c: the default suite, run by "iovaq-bench" without a command. */
struct bench_suite_opts {
	enum bench_format format;
	unsigned int reps;	/* 0: default */
	uint64_t seed;
	bool seed_set;
};

int bench_alloc_suite(const struct bench_suite_opts *o);
void bench_alloc_suite_describe(FILE *f);

#endif /* IOVAQ_BENCH_H */
