/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench: command line and subcommand dispatch.
 *
 * "iovaq-bench" alone runs the default suite and prints one table; "iovaq-bench COMMAND ..."
 * runs one subcommand. A new subcommand is one entry in the commands[] table below plus its
 * own file, so the top level never needs to know a subcommand's options.
 */
#include <string.h>

#include <iovaq/iovaq.h>

#include "bench.h"

struct bench_cmd {
	const char *name;
	const char *summary;
	const char *synopsis;	/* printed after a usage error */
	int (*main)(int argc, char **argv);	/* argv[0] is the command name */
	void (*help)(FILE *f);
};

static const struct bench_cmd commands[] = {
	{ "matrix", "every policy x workload x model, with the performance breakdown",
	  "[--policies LIST] [--workloads LIST] [--models LIST] [--json | --csv] [--plot DIR]",
	  bench_matrix_main, bench_matrix_help },
	{ "compare", "ratios B/A per metric of two JSON results (before/after)",
	  "A.json B.json [--metrics LIST] [--json]", bench_compare_main, bench_compare_help },
	{ "run", "one invalidation policy on one DMA workload through a domain",
	  "--policy NAME --workload NAME [OPTIONS]", bench_run_main, bench_run_help },
	{ "alloc", "time one allocator workload on a space and its magazine cache",
	  "--workload NAME [OPTIONS]", bench_alloc_main, bench_alloc_help },
	{ "sim", "IOVA locality vs IO page-walk cost on the simulated IOMMU (modelled)",
	  "[--pattern NAME] [OPTIONS]", bench_sim_main, bench_sim_help },
	{ "soak", "long-lived domains under every policy for N ops: RSS drift, invariants",
	  "[--ops N] [OPTIONS]", bench_soak_main, bench_soak_help },
	{ "replay", "a guest IOMMU trace through every policy on the sim (matrix metrics)",
	  "TRACE [--policies LIST] [--models LIST] [--pace NAME] [--json]", bench_replay_main,
	  bench_replay_help },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))
#define TOP_SYNOPSIS "[--json | --csv] [--reps N] [--seed N] | " BENCH_PROG " COMMAND [OPTIONS]"

enum {
	O_JSON,
	O_CSV,
	O_REPS,
	O_SEED,
	O_VERSION,
	O_HELP,
};

static const struct bench_opt top_opts[] = {
	{ "json", 0, NULL, "print the default suite as JSON, one object per run", O_JSON },
	{ "csv", 0, NULL, "print the default suite as CSV", O_CSV },
	{ "reps", 0, "N", "repetitions per run (default 5); the median is reported", O_REPS },
	{ "seed", 0, "N", "PRNG seed (default 1)", O_SEED },
	{ "version", 'V', NULL, "print the versions of iovaq-bench and of the loaded\n"
				"libiovaq, then exit", O_VERSION },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

static void top_help(FILE *f)
{
	fprintf(f,
		"Usage: %s [--json | --csv] [--reps N] [--seed N]\n"
		"       %s COMMAND [OPTIONS]\n"
		"       %s --help | --version\n"
		"\n"
		"Benchmarks for libiovaq. Without a command, runs the default suite and prints\n"
		"one table (progress on stderr when it is a terminal):\n",
		BENCH_PROG, BENCH_PROG, BENCH_PROG);
	bench_alloc_suite_describe(f);
	fprintf(f, "\nCommands:\n");
	for (size_t i = 0; i < N_COMMANDS; i++)
		fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(f, "\nOptions:\n");
	bench_print_opts(f, top_opts);
	fprintf(f,
		"\n"
		"'%s COMMAND --help' describes a command's options.\n"
		"Exit status: 0 success, 1 library or system error, 2 bad usage.\n",
		BENCH_PROG);
}

static void command_names(char *buf, size_t len)
{
	const char *names[N_COMMANDS + 1];

	for (size_t i = 0; i < N_COMMANDS; i++)
		names[i] = commands[i].name;
	names[N_COMMANDS] = NULL;
	bench_join(buf, len, names, ", ");
}

int main(int argc, char **argv)
{
	struct bench_suite_opts so = { .format = BENCH_FMT_TABLE };
	struct bench_args a;
	bool json = false, csv = false;
	char valid[256];
	int id;

	bench_set_usage(NULL, TOP_SYNOPSIS);
	if (argc > 1 && argv[1][0] != '-') {
		for (size_t i = 0; i < N_COMMANDS; i++) {
			if (strcmp(argv[1], commands[i].name) == 0) {
				bench_set_usage(commands[i].name, commands[i].synopsis);
				return commands[i].main(argc - 1, argv + 1);
			}
		}
		command_names(valid, sizeof(valid));
		bench_usage_error("unknown command '%s' (valid: %s; see '%s --help')", argv[1],
				  valid, BENCH_PROG);
	}

	bench_args_init(&a, argc, argv, 1, NULL, top_opts);
	while ((id = bench_args_next(&a)) != BENCH_ARG_END) {
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			command_names(valid, sizeof(valid));
			bench_usage_error("unexpected argument '%s' (a command comes first: '%s "
					  "COMMAND [OPTIONS]', commands: %s)", a.positional,
					  BENCH_PROG, valid);
		case O_JSON:
			json = true;
			break;
		case O_CSV:
			csv = true;
			break;
		case O_REPS:
			so.reps = (unsigned int)bench_parse_u64(&a, 1, 1000);
			break;
		case O_SEED:
			so.seed = bench_parse_u64(&a, 0, UINT64_MAX);
			so.seed_set = true;
			break;
		case O_VERSION:
			printf("%s %s (libiovaq %s loaded)\n", BENCH_PROG, IOVAQ_VERSION_STRING,
			       iovaq_version());
			return BENCH_EXIT_OK;
		case O_HELP:
			top_help(stdout);
			return BENCH_EXIT_OK;
		}
	}
	if (json && csv)
		bench_usage_error("--json and --csv exclude each other (choose one)");
	so.format = json ? BENCH_FMT_JSON : csv ? BENCH_FMT_CSV : BENCH_FMT_TABLE;
	return bench_alloc_suite(&so);
}
