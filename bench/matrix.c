/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench matrix: every invalidation policy on every DMA workload under every cost model of
 * the sim, with the performance breakdown of each run, in one command.
 *
 * It answers the project's question (what does strict protection cost natively and in a VM,
 * and which policy gets it back) from runs of bench/run.c, one per cell, in the order model,
 * workload, policy. The tables put the cells of one model and workload together, and the "vs
 * pass" column relates each policy's modeled host throughput to passthrough's (no protection)
 * in the same group. Sizes are chosen so that the default matrix (5 policies x 4 workloads x 3
 * models, 3 timed repetitions and one breakdown repetition each) finishes in about half a
 * minute on a 2-CPU machine: every run DMAs and unmaps the same number of pages (--pages), so
 * that workloads with large ops do not dominate.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <iovaq/iovaq.h>

#include "bench.h"

#define DEFAULT_PAGES 100000ULL
#define DEFAULT_REPS 3
#define MAX_PAGES 100000000ULL

struct matrix_cfg {
	struct bench_run_cfg base;	/* backend, threads, reps, seed, background */
	uint64_t policies;	/* bit sets of indexes into the name lists */
	uint64_t workloads;
	uint64_t models;
	uint64_t pages;		/* DMA'd per thread per run */
	const char *plot_dir;
	enum bench_format format;
	int argc;
	char **argv;
};

static unsigned int count_bits(uint64_t set)
{
	return (unsigned int)__builtin_popcountll(set);
}

/* Ops per thread for a workload: enough for --pages DMA'd pages, at least one. */
static uint64_t ops_for(const struct matrix_cfg *mc, unsigned int wl)
{
	uint64_t per = bench_workload_pages(wl);

	return (mc->pages + per - 1) / per;
}

/* Models of the run: the sim's chosen ones, or the one other backend. */
static unsigned int n_models(const struct matrix_cfg *mc)
{
	return mc->base.backend == 0 ? count_bits(mc->models) : 1;
}

/* The index of the passthrough run of group @g, or -1. */
static int pass_of(const struct matrix_cfg *mc, unsigned int g)
{
	unsigned int np = count_bits(mc->policies), k = 0;

	if (!(mc->policies & (1ULL << BENCH_POLICY_PASSTHROUGH)))
		return -1;
	for (unsigned int p = 0; p < BENCH_POLICY_PASSTHROUGH; p++)
		k += !!(mc->policies & (1ULL << p));
	return (int)(g * np + k);
}

/* host ns/op of passthrough over each run's: the share of unprotected throughput kept. */
static double rel_to_pass(const struct matrix_cfg *mc, struct bench_run *const *runs,
			  unsigned int i)
{
	unsigned int np = count_bits(mc->policies);
	int p = pass_of(mc, i / np);

	if (p < 0)
		return NAN;
	return bench_run_metrics(runs[p])->host_ns_per_op /
	       bench_run_metrics(runs[i])->host_ns_per_op;
}

static void list_names(char *buf, size_t len, uint64_t set, const char *const *names)
{
	const char *v[65];
	unsigned int n = 0;

	for (unsigned int i = 0; names[i]; i++)
		if (set & (1ULL << i))
			v[n++] = names[i];
	v[n] = NULL;
	bench_join(buf, len, v, ", ");
}

static void json_names(struct bench_json *j, const char *key, uint64_t set,
		       const char *const *names)
{
	bench_json_open_array(j, key);
	for (unsigned int i = 0; names[i]; i++)
		if (set & (1ULL << i))
			bench_json_str(j, NULL, names[i]);
	bench_json_close_array(j);
}

/* "AMD EPYC" from /proc/cpuinfo, or "unknown". */
static void cpu_model(char *buf, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[256];

	snprintf(buf, len, "unknown");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');

		if (strncmp(line, "model name", 10) != 0 || !colon)
			continue;
		colon += 1 + (colon[1] == ' ');
		colon[strcspn(colon, "\n")] = '\0';
		snprintf(buf, len, "%s", colon);
		break;
	}
	fclose(f);
}

static void emit_json(const struct matrix_cfg *mc, struct bench_run *const *runs, unsigned int n,
		      double elapsed_s, double foreign, const struct bench_plot_result *pr)
{
	struct bench_json j;
	struct utsname u;
	char cpu[128];

	cpu_model(cpu, sizeof(cpu));
	bench_json_begin(&j, stdout);
	bench_json_str(&j, "type", "matrix");
	bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
	bench_json_str(&j, "version", iovaq_version());
	bench_json_str(&j, "command", "matrix");
	bench_json_open_array(&j, "argv");
	for (int i = 0; i < mc->argc; i++)
		bench_json_str(&j, NULL, mc->argv[i]);
	bench_json_close_array(&j);
	bench_json_open(&j, "config");
	bench_json_str(&j, "backend", bench_backend_names[mc->base.backend]);
	if (mc->base.backend == 0) {
		json_names(&j, "models", mc->models, bench_model_names);
	} else {
		bench_json_open_array(&j, "models");
		bench_json_str(&j, NULL, bench_backend_names[mc->base.backend]);
		bench_json_close_array(&j);
	}
	json_names(&j, "policies", mc->policies, bench_policy_names);
	json_names(&j, "workloads", mc->workloads, bench_workload_names);
	bench_json_u64(&j, "pages", mc->pages);
	bench_json_open(&j, "ops");
	for (unsigned int w = 0; bench_workload_names[w]; w++)
		if (mc->workloads & (1ULL << w))
			bench_json_u64(&j, bench_workload_names[w], ops_for(mc, w));
	bench_json_close(&j);
	bench_json_u64(&j, "threads", mc->base.threads);
	bench_json_u64(&j, "reps", mc->base.reps);
	bench_json_u64(&j, "breakdown_reps", 1);
	bench_json_u64(&j, "seed", mc->base.seed);
	bench_json_u64(&j, "background", mc->base.background);
	bench_json_str(&j, "ring_layout", bench_ring_names[mc->base.ring]);
	bench_json_u64(&j, "max_window_ns", IOVAQ_DOMAIN_DEFAULT_MAX_WINDOW_NS);
	bench_json_u64(&j, "max_reachable_pages", IOVAQ_DOMAIN_DEFAULT_MAX_REACHABLE);
	bench_json_str(&j, "plot_dir", mc->plot_dir);
	bench_json_close(&j);
	bench_json_open(&j, "machine");
	bench_json_str(&j, "cpu", cpu);
	bench_json_u64(&j, "cpus", bench_ncpus());
	bench_json_str(&j, "kernel", uname(&u) == 0 ? u.release : NULL);
	bench_json_close(&j);
	bench_json_double(&j, "elapsed_s", elapsed_s);
	bench_json_double(&j, "foreign_cpu_share", foreign);
	if (pr && pr->ok) {
		bench_json_open_array(&j, "plots");
		for (unsigned int i = 0; i < pr->n; i++)
			bench_json_str(&j, NULL, pr->files[i]);
		bench_json_close_array(&j);
	} else {
		bench_json_null(&j, "plots");
	}
	bench_json_open_array(&j, "runs");
	for (unsigned int i = 0; i < n; i++) {
		bench_json_open(&j, NULL);
		bench_run_json(runs[i], &j);
		bench_json_double(&j, "host_vs_passthrough", rel_to_pass(mc, runs, i));
		bench_json_close(&j);
	}
	bench_json_close_array(&j);
	bench_json_end(&j);
}

static int emit_table(const struct matrix_cfg *mc, struct bench_run *const *runs, unsigned int n,
		      double elapsed_s)
{
	unsigned int np = count_bits(mc->policies);
	struct bench_run_tables t;
	char pol[256], wl[128], mod[64];
	int err = 0;

	list_names(pol, sizeof(pol), mc->policies, bench_policy_names);
	list_names(wl, sizeof(wl), mc->workloads, bench_workload_names);
	if (mc->base.backend == 0)
		list_names(mod, sizeof(mod), mc->models, bench_model_names);
	else
		snprintf(mod, sizeof(mod), "%s", bench_backend_names[mc->base.backend]);
	printf("iovaq-bench matrix: %u runs in %.0f s, libiovaq %s, backend %s\n"
	       "policies: %s\nworkloads: %s\nmodels: %s\n"
	       "%" PRIu64 " pages DMA'd and unmapped per run and thread, %u thread%s, %u timed "
	       "repetition%s + 1 breakdown, seed %" PRIu64 "%s\n\n",
	       n, elapsed_s, iovaq_version(), bench_backend_names[mc->base.backend], pol, wl, mod,
	       mc->pages, mc->base.threads, mc->base.threads == 1 ? "" : "s", mc->base.reps,
	       mc->base.reps == 1 ? "" : "s", mc->base.seed,
	       mc->base.background ? ", background IOVA churn" : "");

	bench_run_tables_init(&t, pass_of(mc, 0) >= 0);
	for (unsigned int i = 0; i < n && !err; i++) {
		if (i && i % np == 0)
			err = bench_run_tables_gap(&t);
		if (!err)
			err = bench_run_tables_add(&t, bench_run_metrics(runs[i]),
						   rel_to_pass(mc, runs, i));
	}
	if (!err)
		bench_run_tables_print(&t, stdout);
	bench_run_tables_free(&t);
	return err ? bench_error("out of memory") : 0;
}

static int emit_csv(struct bench_run *const *runs, unsigned int n)
{
	bench_run_csv_head(stdout);
	for (unsigned int i = 0; i < n; i++)
		bench_run_csv(runs[i], stdout);
	return 0;
}

static int run_matrix(const struct matrix_cfg *mc)
{
	unsigned int nm = n_models(mc), nw = count_bits(mc->workloads);
	unsigned int np = count_bits(mc->policies), n = nm * nw * np, done = 0;
	struct bench_run **runs = calloc(n, sizeof(*runs));
	struct bench_plot_result pr = { 0 };
	struct bench_plot_input in;
	struct bench_load load;
	double elapsed, foreign;
	uint64_t t0;
	int ret = 0, plot_ret = 0;

	if (!runs)
		return bench_error("out of memory");
	/* Fail before the first run if the backend cannot open at all. */
	ret = bench_run_probe(mc->base.backend);
	if (ret)
		goto out;

	t0 = bench_now_ns();
	bench_load_begin(&load);
	for (unsigned int m = 0; m < BENCH_N_MODELS && !ret; m++) {
		if (mc->base.backend == 0 ? !(mc->models & (1ULL << m)) : m > 0)
			continue;
		for (unsigned int w = 0; bench_workload_names[w] && !ret; w++) {
			if (!(mc->workloads & (1ULL << w)))
				continue;
			for (unsigned int p = 0; bench_policy_names[p] && !ret; p++) {
				struct bench_run_cfg c = {
					.backend = mc->base.backend, .pol = p, .wl = w,
					.threads = mc->base.threads, .ops = ops_for(mc, w),
					.reps = mc->base.reps, .seed = mc->base.seed,
					.nested = mc->base.backend == 0 && m != BENCH_M_NATIVE,
					.caching_mode = mc->base.backend == 0 && m == BENCH_M_NESTED_CM,
					.background = mc->base.background, .command = "matrix",
					.cell = done + 1, .ncells = n,
				};

				if (!(mc->policies & (1ULL << p)))
					continue;
				ret = bench_run_exec(&c, &runs[done]);
				if (!ret)
					done++;
			}
		}
	}
	foreign = bench_load_end(&load);
	elapsed = (double)(bench_now_ns() - t0) / 1e9;
	if (ret)
		goto out;

	if (mc->plot_dir) {
		in = (struct bench_plot_input){
			.dir = mc->plot_dir, .runs = runs, .n = n, .models = nm, .workloads = nw,
			.policies = np,
		};
		plot_ret = bench_plot_matrix(&in, &pr);
	}
	if (mc->format == BENCH_FMT_JSON)
		emit_json(mc, runs, n, elapsed, foreign, &pr);
	else if (mc->format == BENCH_FMT_CSV)
		ret = emit_csv(runs, n);
	else
		ret = emit_table(mc, runs, n, elapsed);
	if (mc->plot_dir)
		bench_plot_report(&in, &pr, mc->format == BENCH_FMT_TABLE ? stdout : stderr);
	if (mc->base.backend != 0)
		bench_warn("backend %s has no device model: device accesses were skipped, and the "
			   "device-side figures are null", bench_backend_names[mc->base.backend]);
	if (isfinite(foreign) && foreign > BENCH_FOREIGN_LOAD_WARN)
		bench_warn("other processes used %.0f%% of the CPUs during the matrix: measured "
			   "times are unreliable (modeled figures are not affected)", 100 * foreign);
	if (!ret)
		ret = plot_ret;
out:
	for (unsigned int i = 0; i < done; i++)
		bench_run_free(runs[i]);
	free(runs);
	bench_plot_result_free(&pr);
	return ret;
}

/* ---- "matrix" subcommand ------------------------------------------------------------------ */

enum {
	O_POLICIES,
	O_WORKLOADS,
	O_MODELS,
	O_PAGES,
	O_PLOT,
	O_HELP,
};

static const struct bench_opt matrix_opts[] = {
	{ "policies", 0, "LIST", "comma-separated policies (default all): strict,\n"
				 "deferred, safe-deferred, safe-deferred+arenas,\n"
				 "passthrough", O_POLICIES },
	{ "workloads", 0, "LIST", "comma-separated workloads (default all): nic-rx,\n"
				  "nic-tx, memcached, nginx", O_WORKLOADS },
	{ "models", 0, "LIST", "comma-separated sim cost models (default all):\n"
			       "native, nested (2-D walks), nested+cm (and caching\n"
			       "mode: an emulated vIOMMU)", O_MODELS },
	{ "backend", 0, "NAME", "sim (default), iommufd, vfio-type1 or kshim", BENCH_O_BACKEND },
	{ "pages", 0, "N", "pages DMA'd and unmapped per run and thread, 1..100M\n"
			   "(default 100k); ops = N / pages per op, rounded up", O_PAGES },
	{ "threads", 0, "N", "threads on one shared domain, 1..64 (default 1)", BENCH_O_THREADS },
	{ "reps", 0, "N", "timed repetitions per run, 1..1000 (default 3); the\n"
			  "median is reported; one more measures the breakdown", BENCH_O_REPS },
	{ "seed", 0, "N", "sim and background PRNG seed (default 1)", BENCH_O_SEED },
	{ "background", 0, "N", "IOVA allocations of other users per thread, churned\n"
				"once per page mapped: scattered IOVAs, 0..1M (default 0)",
	  BENCH_O_BACKGROUND },
	{ "ring-layout", 0, "NAME", "invalidation queue of every domain: auto (default),\n"
				    "shared or percpu", BENCH_O_RING },
	{ "json", 0, NULL, "one JSON document: configuration, machine, every run", BENCH_O_JSON },
	{ "csv", 0, NULL, "CSV, one line per run, with a header line", BENCH_O_CSV },
	{ "plot", 0, "DIR", "write PNG plots, their data and gnuplot script to DIR\n"
			    "(created if missing; needs gnuplot)", O_PLOT },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

void bench_matrix_help(FILE *f)
{
	fprintf(f,
		"Usage: %s matrix [--policies LIST] [--workloads LIST] [--models LIST]\n"
		"       %*s [--backend NAME] [--pages N] [--threads N] [--reps N] [--seed N]\n"
		"       %*s [--background N] [--ring-layout NAME] [--json | --csv] [--plot DIR]\n"
		"\n"
		"Every policy x workload x cost model through a libiovaq domain (one '%s run'\n"
		"each), and the performance breakdown of each: what strict protection costs\n"
		"natively and in a VM, and which policy gets it back. Three tables come out:\n"
		"  cost of protection  wall ns/op; modeled host ns/op and Gbit/s per core and\n"
		"                      their share of passthrough's; invalidations per page;\n"
		"                      the safety window; unsafe reuse and bound violations\n"
		"  CPU ns per op       measured (IOVAQ_DOMAIN_TIMING): alloc, plan, other, and\n"
		"                      the backend's map, unmap, flush and the device's accesses;\n"
		"                      modeled (sim): map, unmap, flush submit and wait\n"
		"  device side         per DMA'd page (modeled): IOTLB misses, paging-structure\n"
		"                      cache misses per level, walk references, device ns\n"
		"Progress goes to stderr when it is a terminal. With --plot DIR: throughput.png,\n"
		"breakdown.png, window-cdf.png and inval-per-page.png, from plots.gp and the\n"
		"*.dat files beside them. The default matrix takes about half a minute on 2 CPUs.\n"
		"See '%s run --help' for the policies and workloads.\n"
		"\n"
		"Options:\n",
		BENCH_PROG, (int)strlen(BENCH_PROG) + 7, "", (int)strlen(BENCH_PROG) + 7, "",
		BENCH_PROG, BENCH_PROG);
	bench_print_opts(f, matrix_opts);
	fprintf(f,
		"\n"
		"Numbers accept the suffixes k, M, G (10^3, 10^6, 10^9) and eN (1e7).\n"
		"Exit status: 0 success; 1 library or system error, a backend that cannot open,\n"
		"or plots that could not be made (gnuplot missing or failing: the tables or JSON\n"
		"still come out); 2 bad usage.\n");
}

int bench_matrix_main(int argc, char **argv)
{
	struct matrix_cfg mc = {
		.policies = (1ULL << BENCH_N_POLICIES) - 1,
		.workloads = (1ULL << BENCH_N_WORKLOADS) - 1,
		.models = (1ULL << BENCH_N_MODELS) - 1,
		.pages = DEFAULT_PAGES,
		.base = { .threads = 1, .reps = DEFAULT_REPS, .seed = 1, .command = "matrix" },
		.argc = argc,
		.argv = argv,
	};
	bool json = false, csv = false, have_models = false;
	struct bench_args a;
	int id;

	bench_args_init(&a, argc, argv, 1, "matrix", matrix_opts);
	while ((id = bench_args_next(&a)) != BENCH_ARG_END) {
		if (bench_run_common_opt(&a, id, &mc.base, &json, &csv))
			continue;
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			bench_usage_error("unexpected argument '%s' for matrix (options start with "
					  "--)", a.positional);
		case O_POLICIES:
			mc.policies = bench_parse_choice_list(&a, "policy", bench_policy_names);
			break;
		case O_WORKLOADS:
			mc.workloads = bench_parse_choice_list(&a, "workload", bench_workload_names);
			break;
		case O_MODELS:
			mc.models = bench_parse_choice_list(&a, "model", bench_model_names);
			have_models = true;
			break;
		case O_PAGES:
			mc.pages = bench_parse_u64(&a, 1, MAX_PAGES);
			break;
		case O_PLOT:
			if (!*a.value)
				bench_usage_error("empty value for --plot (expected a directory)");
			mc.plot_dir = a.value;
			break;
		case O_HELP:
			bench_matrix_help(stdout);
			return BENCH_EXIT_OK;
		}
	}
	mc.format = bench_format_of(json, csv);
	if (have_models && mc.base.backend != 0)
		bench_usage_error("--models applies to --backend sim only (got --backend %s)",
				  bench_backend_names[mc.base.backend]);
	if (mc.plot_dir)
		bench_plot_prepare(mc.plot_dir);
	return run_matrix(&mc);
}
