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
#define BENCH_SCHEMA_VERSION 2

enum {
	BENCH_EXIT_OK = 0,
	BENCH_EXIT_FAIL = 1,
	BENCH_EXIT_USAGE = 2,
};

#define bench_unlikely(x) __builtin_expect(!!(x), 0)

/* ---- time and statistics ------------------------------------------------------------- */

/* CLOCK_MONOTONIC in ns: never steps backwards, unaffected by NTP slews of the wall clock. */
uint64_t bench_now_ns(void);

/* What one bench_now_ns() costs, in ns (measured once per process, median of 5 trials). */
double bench_clock_read_ns(void);

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

/*
 * "iovaq-bench: error: ..." on one line of stderr, then the usage of the current command (see
 * bench_set_usage()) and where its options are described; exit(2).
 */
_Noreturn void bench_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The command (NULL: top level) and one-line synopsis that usage errors print; static strings. */
void bench_set_usage(const char *cmd, const char *synopsis);
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
/*
 * A comma-separated list of @choices ("strict,deferred") as a bit set of their indexes (at most
 * 64 choices); an unknown or empty element exits(2) naming it and the choices.
 */
uint64_t bench_parse_choice_list(const struct bench_args *a, const char *what,
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
/* "1.2 ms", "830 us", "95 ns": a duration with 2-3 significant digits. */
void bench_fmt_ns(char *buf, size_t len, uint64_t ns);

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
/*
 * Append a row of ncols cells (NULL prints as "-"); @cells NULL appends a gap (an empty line
 * between groups of rows). Return: 0 or -ENOMEM.
 */
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

/* ---- bench/json.c: reading JSON back (compare) -------------------------------------------- */

enum bench_jtype { BJ_NULL, BJ_BOOL, BJ_NUM, BJ_STR, BJ_ARR, BJ_OBJ };

struct bench_jval {
	enum bench_jtype type;
	bool b;				/* BJ_BOOL */
	double num;			/* BJ_NUM */
	char *str;			/* BJ_STR, NUL-terminated UTF-8 */
	size_t n;			/* BJ_ARR, BJ_OBJ: items */
	struct bench_jval *items;
	char **keys;			/* BJ_OBJ: the key of each item, in file order */
};

/*
 * Parse every JSON value of @text (one document, or several separated by white space: JSON
 * Lines) into @vals[@n], to be freed with bench_jval_free() each and free(@vals).
 * Return: 0, or -EINVAL with "line L, column C: what" in @err.
 */
int bench_jread(const char *text, size_t len, struct bench_jval **vals, size_t *n, char *err,
		size_t errlen);
void bench_jval_free(struct bench_jval *v);
/* The member @key of object @obj, or NULL (also when @obj is not an object). */
const struct bench_jval *bench_jval_get(const struct bench_jval *obj, const char *key);
/* ... when it is a string. */
const char *bench_jval_str(const struct bench_jval *obj, const char *key);

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

/* bench/matrix.c: "iovaq-bench matrix ...", every policy x workload x model. */
int bench_matrix_main(int argc, char **argv);
void bench_matrix_help(FILE *f);

/* bench/compare.c: "iovaq-bench compare A.json B.json". */
int bench_compare_main(int argc, char **argv);
void bench_compare_help(FILE *f);
int bench_soak_main(int argc, char **argv);	/* bench/soak.c */
void bench_soak_help(FILE *f);
/* bench/replay.c: "iovaq-bench replay TRACE", a guest IOMMU trace through every policy. */
int bench_replay_main(int argc, char **argv);
void bench_replay_help(FILE *f);

/* ---- bench/run.c: one policy on one DMA workload, for "run" and "matrix" ----------------- */

/* NULL-terminated name lists; a run's choices are indexes into them. */
#define BENCH_N_POLICIES 5
/* Window histogram buckets kept per run: more than the library's (496). */
#define BENCH_MAX_HIST 512
#define BENCH_N_WORKLOADS 4
extern const char *const bench_policy_names[];		/* strict ... passthrough */
extern const char *const bench_workload_names[];	/* nic-rx, nic-tx, memcached, nginx */
extern const char *const bench_backend_names[];		/* sim first */
extern const char *const bench_ring_names[];		/* auto, shared, percpu */
#define BENCH_POLICY_PASSTHROUGH 4			/* the unprotected baseline */

/* The sim's cost models: a VM's IOMMU is nested, and an emulated vIOMMU is in caching mode. */
enum bench_model {
	BENCH_M_NATIVE,
	BENCH_M_NESTED,		/* 2-D walks */
	BENCH_M_NESTED_CM,	/* 2-D walks, every map and invalidation traps */
	BENCH_N_MODELS,
};
extern const char *const bench_model_names[];

struct bench_run_cfg {
	unsigned int backend;	/* bench_backend_names index; 0 = sim */
	unsigned int pol;	/* bench_policy_names index */
	unsigned int wl;	/* bench_workload_names index */
	unsigned int threads;
	uint64_t ops;		/* per thread */
	unsigned int reps;	/* timed repetitions; one more measures the breakdown */
	uint64_t seed;
	bool nested;		/* sim only */
	bool caching_mode;	/* sim only */
	uint32_t background;	/* IOVA slots of other users per thread; 0: none */
	unsigned int ring;	/* bench_ring_names index = enum iovaq_ring_layout */
	const char *device;	/* iommufd, vfio-type1: the device (NULL: environment) */
	const char *command;	/* "run" or "matrix": the JSON "command" and progress */
	unsigned int cell;	/* progress: this run's number in a matrix, from 1 */
	unsigned int ncells;	/* ... of this many; 0 outside a matrix */
};

/*
 * Options "run" and "matrix" share, with these ids in both option tables (the help texts
 * differ). bench_run_common_opt() parses one into @cfg or the format flags and returns true,
 * or returns false for any other id; bench_format_of() rejects --json with --csv.
 */
enum {
	BENCH_O_BACKEND = 1000,
	BENCH_O_THREADS,
	BENCH_O_REPS,
	BENCH_O_SEED,
	BENCH_O_BACKGROUND,
	BENCH_O_JSON,
	BENCH_O_CSV,
	BENCH_O_RING,
};
bool bench_run_common_opt(const struct bench_args *a, int id, struct bench_run_cfg *cfg,
			  bool *json, bool *csv);
enum bench_format bench_format_of(bool json, bool csv);

/* Default ops per thread of a workload, and the pages each op DMAs and unmaps. */
uint64_t bench_workload_ops(unsigned int wl);
unsigned int bench_workload_pages(unsigned int wl);

/*
 * The performance breakdown of a run: CPU ns per op. Measured parts come from one extra
 * repetition with IOVAQ_DOMAIN_TIMING (the library's clocks) and the device's accesses timed
 * by the bench; they add up to the thread time of that repetition. Modeled parts come from the
 * sim's cost model. host = alloc + plan + other + every modeled part: the CPU cost of an op on
 * a host whose IOMMU costs what the model says, with the simulator's own software left out.
 */
enum {
	BENCH_CPU_ALLOC,	/* IOVA allocation (library) */
	BENCH_CPU_MAP,		/* the backend's map calls (here: the simulator's software) */
	BENCH_CPU_UNMAP,	/* the backend's unmap calls */
	BENCH_CPU_PLAN,		/* planning invalidations (library) */
	BENCH_CPU_FLUSH,	/* the backend's flush calls */
	BENCH_CPU_DMA,		/* device accesses (the simulator, or the passthrough copy) */
	BENCH_CPU_OTHER,	/* the rest: domain bookkeeping, the workload's own work */
	BENCH_N_CPU,
};
enum {
	BENCH_MDL_MAP,
	BENCH_MDL_UNMAP,
	BENCH_MDL_FLUSH_SUBMIT,	/* queueing the commands, traps and re-walks included */
	BENCH_MDL_FLUSH_WAIT,	/* waiting for their completion */
	BENCH_N_MDL,
};
extern const char *const bench_cpu_keys[];	/* JSON keys, BENCH_CPU_* order */
extern const char *const bench_mdl_keys[];	/* JSON keys, BENCH_MDL_* order */

/* What tables, plots and comparisons need from a run. NAN: not measured or not modeled. */
struct bench_run_metrics {
	unsigned int pol, wl, model;	/* model: enum bench_model (sim) */
	char model_name[16];		/* "native", ..., or the backend's name */
	bool have_sim;
	unsigned int pages_per_op;
	double ns_per_op;		/* wall time per op, median of the repetitions */
	double ns_per_op_min, ns_per_op_max;
	double inval_per_page;		/* invalidation commands per unmapped page */
	uint64_t releases;
	uint64_t window_ns[4];		/* p50, p99, p99.9, max */
	const struct iovaq_window_bucket *hist;	/* the window histogram (non-empty buckets) */
	unsigned int n_hist;
	uint64_t reachable_pages_max, unsafe_reuse, violations;
	double cpu[BENCH_N_CPU];	/* measured thread-ns per op */
	double cpu_total;		/* their sum: the breakdown repetition's thread-ns per op */
	double mdl[BENCH_N_MDL];	/* modeled ns per op */
	double mdl_total;
	double host_ns_per_op;
	double traps_per_op;
	/* Device side, per DMA'd page (modeled; 0 under passthrough: nothing translates). */
	double iotlb_misses, ptcache_misses[3], walk_refs, device_ns;
	double ops_per_s;		/* measured: 1e9 / ns_per_op */
	double host_ops_per_s;		/* one core at host_ns_per_op */
	double host_gbit_per_s;		/* the DMA'd bytes of those ops */
};

struct bench_run;

/* Open and close the backend once. Return: 0, or BENCH_EXIT_FAIL with the error printed. */
int bench_run_probe(unsigned int backend);
/* Run @cfg (progress on stderr). Return: 0, or BENCH_EXIT_FAIL with the error printed. */
int bench_run_exec(const struct bench_run_cfg *cfg, struct bench_run **out);
const struct bench_run_metrics *bench_run_metrics(const struct bench_run *r);
/* Warnings about the run (no device model, CPUs busy with other work) on stderr. */
void bench_run_warn(const struct bench_run *r);
void bench_run_free(struct bench_run *r);
/* The keys of one run record into the JSON object that is open in @j. */
void bench_run_json(const struct bench_run *r, struct bench_json *j);
void bench_run_csv_head(FILE *f);
void bench_run_csv(const struct bench_run *r, FILE *f);

/*
 * The three tables of runs: cost of protection, CPU breakdown, device side. With @rel, the
 * first has a column for host throughput relative to passthrough.
 */
struct bench_run_tables {
	struct bench_table t[3];
	bool rel;
};

void bench_run_tables_init(struct bench_run_tables *t, bool rel);
/* @rel: host_ops_per_s relative to passthrough in the same group (NAN: unknown). */
int bench_run_tables_add(struct bench_run_tables *t, const struct bench_run_metrics *m,
			 double rel);
int bench_run_tables_gap(struct bench_run_tables *t);
void bench_run_tables_print(const struct bench_run_tables *t, FILE *f);
void bench_run_tables_free(struct bench_run_tables *t);

/* ---- bench/plot.c: PNG plots of a matrix with gnuplot ------------------------------------- */

struct bench_plot_input {
	const char *dir;
	struct bench_run *const *runs;	/* model by model, workload by workload, policy order */
	unsigned int n;
	unsigned int models, workloads, policies;	/* n = their product */
};

struct bench_plot_result {
	bool ok;		/* every PNG was written */
	unsigned int n;
	char **files;		/* the PNGs, as DIR/NAME.png */
	char why[512];		/* when !ok: what went wrong and what to do */
};

/* Create DIR if missing (exit 2 if it cannot be) and warn now if gnuplot is missing. */
void bench_plot_prepare(const char *dir);
/*
 * Write the data files and plots.gp into the input's directory and run gnuplot there.
 * Return: 0, or BENCH_EXIT_FAIL (@out->why says why; nothing printed yet).
 */
int bench_plot_matrix(const struct bench_plot_input *in, struct bench_plot_result *out);
/* Where the plots are (on @f), or why there are none (an error on stderr). */
void bench_plot_report(const struct bench_plot_input *in, const struct bench_plot_result *r,
		       FILE *f);
void bench_plot_result_free(struct bench_plot_result *r);

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
