/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench soak: long-lived domains under every policy, for a very large number of
 * operations, watching for slow leaks and drift.
 *
 * One domain per policy (strict, deferred, safe-deferred with a completion callback,
 * safe-deferred with arenas, passthrough), each on its own sim backend (a backend's mappings
 * belong to one domain), live for the whole run. The
 * driver cycles through them in rounds; in each round every domain serves every workload in
 * turn for --round ops: nic-rx (map a page, the device writes it, unmap), nic-tx (unmaps in
 * batches of 64), memcached (an RX and a TX page per request) and nginx (a 64 KiB chunk of 16
 * pages per op). Arenas link the same pages into a 64-page chunk and sync it per 64.
 *
 * Every --interval seconds it samples the process's resident set (RSS, /proc/self/statm) and
 * the domains' counters; every --check ops it runs iovaq_domain_check() on every domain (every
 * granule FREE, CACHED, ALLOCATED or QUEUED, exactly once). After the warm-up, RSS may not
 * grow by more than 1% over its value at the end of the warm-up: otherwise, or on any
 * invariant failure, fault, stale access or unsafe reuse where the policy forbids one, the
 * exit status is 1. The warm-up ends once at least 10% of the ops are done and RSS has not
 * grown over three consecutive samples, or at half the ops: the caches, magazines and page
 * tables settle over the first tens of millions of ops (per-CPU magazines fill as threads
 * move between CPUs, the allocator's free space takes its steady shape), and a leak, which
 * never settles, still has the second half of the run to show itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <iovaq/iovaq.h>
#include <iovaq/sim.h>

#include "bench.h"

#define G 4096u
#define SLOTS 256		/* pages each domain cycles through */
#define TX_BATCH 64
#define CHUNK 16		/* nginx: pages per 64 KiB chunk */
#define ARENA_PAGES 64

enum { S_STRICT, S_DEFERRED, S_SAFE, S_ARENAS, S_PASS, N_SOAK };

static const char *const soak_names[N_SOAK] = {
	"strict", "deferred", "safe-deferred", "safe-deferred+arenas", "passthrough",
};
static const uint32_t soak_policy[N_SOAK] = {
	IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED, IOVAQ_POLICY_SAFE_DEFERRED,
	IOVAQ_POLICY_SAFE_DEFERRED, IOVAQ_POLICY_PASSTHROUGH,
};
static const char *const soak_workloads[] = { "nic-rx", "nic-tx", "memcached", "nginx" };
#define N_WL 4

struct sdom {
	struct iovaq_backend *be;
	struct iovaq_sim *sim;
	struct iovaq_domain *dom;
	uint8_t *mem;			/* SLOTS pages */
	iovaq_iova_t iova[SLOTS];
	uint64_t outstanding;		/* safe-deferred: cookies not yet back */
	struct iovaq_arena *arena;
	uint32_t arena_used;		/* pages linked since the last sync */
	uint64_t ops;
};

struct soak {
	struct sdom d[N_SOAK];
	uint64_t ops, total, round, check_every, next_check;
	uint64_t checks, rss_base, rss_max, rss_now, samples, flat, warm_at;
	uint64_t t0, t_next_sample, interval_ns;
	bool warm;
	FILE *log;	/* samples, one line each (stderr) */
	char err[256];
};

static void on_complete(void *arg, uint64_t cookie)
{
	struct sdom *s = arg;

	(void)cookie;
	s->outstanding--;	/* runs on the calling thread: single-threaded driver */
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

/* Resident set size in bytes, from /proc/self/statm (its second field, in pages). */
static uint64_t rss_bytes(void)
{
	unsigned long long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (!f)
		return 0;
	if (fscanf(f, "%llu %llu", &size, &res) != 2)
		res = 0;
	fclose(f);
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int fail(struct soak *k, const char *what, int err)
{
	snprintf(k->err, sizeof(k->err), "%s: %s (%d)", what, iovaq_strerror(err), err);
	return 1;
}

/* The device touches @pages at @iova; under passthrough it has nothing to translate. */
static int dev(struct soak *k, int p, iovaq_iova_t iova, uint32_t pages, int write)
{
	static uint8_t buf[CHUNK * G];
	struct iovaq_sim_access res;
	int err;

	if (p == S_PASS)
		return 0;
	memset(&res, 0, sizeof(res));
	err = iovaq_sim_dma(k->d[p].sim, iova, buf, (size_t)pages * G, write, &res);
	if (err)
		return fail(k, "device access to a live mapping", err);
	if (res.stale_pages)
		return fail(k, "a live mapping served by stale state", -EUCLEAN);
	return 0;
}

static int map(struct soak *k, int p, uint32_t slot, uint32_t pages)
{
	struct sdom *s = &k->d[p];
	int err = iovaq_domain_map(s->dom, s->mem + (size_t)slot * G, (size_t)pages * G,
				   IOVAQ_PROT_READ | IOVAQ_PROT_WRITE, IOVAQ_LIMIT_NONE,
				   &s->iova[slot]);

	return err ? fail(k, "iovaq_domain_map", err) : 0;
}

static int unmap(struct soak *k, int p, uint32_t slot, uint32_t pages)
{
	struct sdom *s = &k->d[p];
	int err = iovaq_domain_unmap(s->dom, s->iova[slot], (size_t)pages * G, slot);

	if (err)
		return fail(k, "iovaq_domain_unmap", err);
	if (soak_policy[p] == IOVAQ_POLICY_SAFE_DEFERRED)
		s->outstanding++;
	return 0;
}

/* Safe-deferred: wait for the buffers to come back before reusing them (a sync does it). */
static int settle(struct soak *k, int p)
{
	struct sdom *s = &k->d[p];
	int err;

	if (!s->outstanding)
		return 0;
	err = iovaq_domain_sync(s->dom);
	if (err)
		return fail(k, "iovaq_domain_sync", err);
	if (s->outstanding)
		return fail(k, "safe-deferred cookies missing after a sync", -EUCLEAN);
	return 0;
}

static int arena_op(struct soak *k, int p, uint32_t slot)
{
	struct sdom *s = &k->d[p];
	uint32_t idx = s->arena_used;
	int err;

	if (!s->arena) {
		err = iovaq_arena_reserve(s->dom, ARENA_PAGES, IOVAQ_LIMIT_NONE, &s->arena);
		if (err)
			return fail(k, "iovaq_arena_reserve", err);
	}
	err = iovaq_arena_link(s->arena, idx, s->mem + (size_t)slot * G, G,
			       IOVAQ_PROT_READ | IOVAQ_PROT_WRITE, &s->iova[slot]);
	if (err == -EBUSY) {
		/* Not safe since its last unlink yet: release the chunk, start a new one. */
		iovaq_arena_release(s->arena);
		s->arena = NULL;
		s->arena_used = 0;
		err = settle(k, p);
		return err ? err : arena_op(k, p, slot);
	}
	if (err)
		return fail(k, "iovaq_arena_link", err);
	if (dev(k, p, s->iova[slot], 1, 1))
		return 1;
	err = iovaq_arena_unlink(s->arena, idx, G);
	if (err)
		return fail(k, "iovaq_arena_unlink", err);
	if (++s->arena_used == ARENA_PAGES) {
		err = iovaq_arena_sync(s->arena, 0);
		if (err)
			return fail(k, "iovaq_arena_sync", err);
		s->outstanding++;
		iovaq_arena_release(s->arena);
		s->arena = NULL;
		s->arena_used = 0;
	}
	return 0;
}

/* @n ops of workload @w on domain @p. */
static int ops(struct soak *k, int p, int w, uint64_t n)
{
	struct sdom *s = &k->d[p];

	for (uint64_t i = 0; i < n; i++) {
		uint32_t slot = (uint32_t)((s->ops + i) % SLOTS);

		if (slot == 0 && settle(k, p))
			return 1;
		if (p == S_ARENAS) {
			if (arena_op(k, p, slot))
				return 1;
			continue;
		}
		switch (w) {
		case 0:	/* nic-rx */
			if (map(k, p, slot, 1) || dev(k, p, s->iova[slot], 1, 1) ||
			    unmap(k, p, slot, 1))
				return 1;
			break;
		case 1:	/* nic-tx: map now, unmap the batch at its completion */
			if (map(k, p, slot, 1) || dev(k, p, s->iova[slot], 1, 0))
				return 1;
			if (slot % TX_BATCH == TX_BATCH - 1)
				for (uint32_t b = slot + 1 - TX_BATCH; b <= slot; b++)
					if (unmap(k, p, b, 1))
						return 1;
			break;
		case 2:	/* memcached: an RX page and a TX page */
			if (slot % 2)
				continue;
			if (map(k, p, slot, 1) || map(k, p, slot + 1, 1) ||
			    dev(k, p, s->iova[slot], 1, 1) || dev(k, p, s->iova[slot + 1], 1, 0) ||
			    unmap(k, p, slot, 1) || unmap(k, p, slot + 1, 1))
				return 1;
			break;
		default: /* nginx: a 64 KiB chunk */
			if (slot % CHUNK)
				continue;
			if (map(k, p, slot, CHUNK) || dev(k, p, s->iova[slot], CHUNK, 0) ||
			    unmap(k, p, slot, CHUNK))
				return 1;
			break;
		}
	}
	/* nic-tx leaves a partial batch mapped: unmap it so the next workload starts clean. */
	if (w == 1 && p != S_ARENAS)
		for (uint64_t i = (s->ops + n) / TX_BATCH * TX_BATCH; i < s->ops + n; i++)
			if (unmap(k, p, (uint32_t)(i % SLOTS), 1))
				return 1;
	s->ops += n;
	/* Start every workload on a slot boundary of all of them. */
	s->ops = (s->ops + SLOTS - 1) / SLOTS * SLOTS;
	return settle(k, p);
}

static int check_all(struct soak *k)
{
	for (int p = 0; p < N_SOAK; p++) {
		int err = iovaq_domain_check(k->d[p].dom);

		if (err)
			return fail(k, soak_names[p], err);
	}
	k->checks++;
	return 0;
}

/* Metadata the library and the sims hold: what the RSS should track. */
static void held(struct soak *k, uint64_t *meta, uint64_t *tables)
{
	*meta = *tables = 0;
	for (int p = 0; p < N_SOAK; p++) {
		IOVAQ_OPTS(iovaq_stats, st);
		IOVAQ_OPTS(iovaq_sim_counters, c);

		if (!iovaq_cache_stats(iovaq_domain_cache(k->d[p].dom), &st))
			*meta += st.metadata_bytes;
		if (!iovaq_sim_get_counters(k->d[p].sim, &c))
			*tables += c.table_pages;
	}
}

static void sample(struct soak *k, bool last)
{
	uint64_t t = now_ns(), meta, tables;

	uint64_t prev = k->rss_now;

	k->rss_now = rss_bytes();
	k->samples++;
	if (k->warm && k->rss_now > k->rss_max)
		k->rss_max = k->rss_now;
	if (!k->warm) {
		k->flat = k->samples > 1 && k->rss_now <= prev ? k->flat + 1 : 0;
		if (k->ops >= k->total / 10 && (k->flat >= 3 || k->ops >= k->total / 2)) {
			k->warm = true;
			k->warm_at = k->ops;
			k->rss_base = k->rss_max = k->rss_now;
		}
	}
	held(k, &meta, &tables);
	if (k->log)
		fprintf(k->log, "soak: %6.1f s  %12" PRIu64 " ops  rss %8.2f MiB  space+cache "
			"metadata %7.1f KiB  sim tables %4" PRIu64 " pages%s%s\n",
			(double)(t - k->t0) / 1e9, k->ops, (double)k->rss_now / 1048576.0,
			(double)meta / 1024.0, tables, k->warm ? "" : "  (warm-up)",
			last ? "  (end)" : "");
	k->t_next_sample = t + k->interval_ns;
}

static int setup(struct soak *k, uint64_t seed)
{
	IOVAQ_OPTS(iovaq_sim_opts, so, .seed = seed);
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "sim", .backend_opts = &so);
	int err;

	for (int p = 0; p < N_SOAK; p++) {
		struct sdom *s = &k->d[p];

		err = iovaq_backend_open(&bo, &s->be);
		if (err)
			return fail(k, "iovaq_backend_open(sim)", err);
		s->sim = iovaq_sim_of(s->be);
	}
	for (int p = 0; p < N_SOAK; p++) {
		struct sdom *s = &k->d[p];
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = s->be, .policy = soak_policy[p],
			   .complete = soak_policy[p] == IOVAQ_POLICY_SAFE_DEFERRED ? on_complete
										  : NULL,
			   .complete_arg = s);

		s->mem = aligned_alloc(G, (size_t)SLOTS * G);
		if (!s->mem)
			return fail(k, "out of memory", -ENOMEM);
		memset(s->mem, 0, (size_t)SLOTS * G);
		err = iovaq_domain_create(&o, &s->dom);
		if (err)
			return fail(k, soak_names[p], err);
	}
	return 0;
}

static void teardown(struct soak *k)
{
	for (int p = 0; p < N_SOAK; p++) {
		if (k->d[p].arena)
			iovaq_arena_release(k->d[p].arena);
		iovaq_domain_destroy(k->d[p].dom);
		iovaq_backend_close(k->d[p].be);
		free(k->d[p].mem);
	}
}

/* Verdicts on the long-lived domains' accounts. */
static int verdicts(struct soak *k)
{
	for (int p = 0; p < N_SOAK; p++) {
		IOVAQ_OPTS(iovaq_window_report, w);

		iovaq_domain_window(k->d[p].dom, &w);
		if ((p == S_STRICT || p == S_SAFE || p == S_ARENAS) && w.unsafe_reuse) {
			snprintf(k->err, sizeof(k->err), "%s: %" PRIu64 " unsafe reuses",
				 soak_names[p], w.unsafe_reuse);
			return 1;
		}
	}
	for (int p = 0; p < N_SOAK; p++) {
		IOVAQ_OPTS(iovaq_sim_counters, c);

		iovaq_sim_get_counters(k->d[p].sim, &c);
		if (c.faults || c.stale_hits) {
			snprintf(k->err, sizeof(k->err), "%s: the device saw %" PRIu64 " faults and %"
				 PRIu64 " stale hits", soak_names[p], c.faults, c.stale_hits);
			return 1;
		}
	}
	return 0;
}

enum { O_OPS, O_ROUND, O_INTERVAL, O_CHECK, O_GROWTH, O_SEED, O_JSON, O_QUIET, O_HELP };

static const struct bench_opt soak_opts[] = {
	{ "ops", 0, "N", "operations in all, 1k..10^12 (default 10M; the issue's\n"
			 "long run is 1G)", O_OPS },
	{ "round", 0, "N", "ops per domain and workload before moving on,\n"
			   "256..10M (default 64k)", O_ROUND },
	{ "interval", 0, "S", "seconds between RSS samples, 1..3600 (default 5)", O_INTERVAL },
	{ "check", 0, "N", "ops between invariant checks of every domain,\n"
			   "1k..10^12 (default 1M)", O_CHECK },
	{ "max-growth", 0, "PCT", "RSS growth allowed after the warm-up, percent,\n"
				  "0..100 (default 1)", O_GROWTH },
	{ "seed", 0, "N", "sim seed (default 1)", O_SEED },
	{ "json", 0, NULL, "one JSON object at the end", O_JSON },
	{ "quiet", 'q', NULL, "no sample lines on stderr", O_QUIET },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

void bench_soak_help(FILE *f)
{
	fprintf(f,
		"Usage: %s soak [--ops N] [--round N] [--interval S] [--check N]\n"
		"       %*s [--max-growth PCT] [--seed N] [--quiet] [--json]\n"
		"\n"
		"Long-lived domains, one per policy (strict, deferred, safe-deferred,\n"
		"safe-deferred+arenas, passthrough) on one sim, serving nic-rx, nic-tx, memcached\n"
		"and nginx in rounds until N operations are done. Samples RSS every S seconds\n"
		"(stderr) and checks every domain's invariant every --check ops. Fails (exit 1) if\n"
		"RSS grows by more than --max-growth after the warm-up (at least 10%% of the ops, until RSS\n"
		"is flat for three samples, at most half), on an invariant failure, a device fault\n"
		"or stale access, or unsafe reuse under strict or safe-deferred.\n"
		"\n"
		"Options:\n",
		BENCH_PROG, (int)strlen(BENCH_PROG) + 5, "");
	bench_print_opts(f, soak_opts);
}

int bench_soak_main(int argc, char **argv)
{
	struct soak k = { .total = 10000000, .round = 65536, .check_every = 1000000,
			  .log = stderr };
	uint64_t seed = 1, interval = 5, growth = 1;
	bool json = false;
	struct bench_args a;
	int id, ret;

	bench_args_init(&a, argc, argv, 1, "soak", soak_opts);
	while ((id = bench_args_next(&a)) != BENCH_ARG_END) {
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			bench_usage_error("unexpected argument '%s' for soak", a.positional);
		case O_OPS:
			k.total = bench_parse_u64(&a, 1000, 1000000000000ull);
			break;
		case O_ROUND:
			k.round = bench_parse_u64(&a, SLOTS, 10000000);
			break;
		case O_INTERVAL:
			interval = bench_parse_u64(&a, 1, 3600);
			break;
		case O_CHECK:
			k.check_every = bench_parse_u64(&a, 1000, 1000000000000ull);
			break;
		case O_GROWTH:
			growth = bench_parse_u64(&a, 0, 100);
			break;
		case O_SEED:
			seed = bench_parse_u64(&a, 0, UINT64_MAX);
			break;
		case O_JSON:
			json = true;
			break;
		case O_QUIET:
			k.log = NULL;
			break;
		case O_HELP:
			bench_soak_help(stdout);
			return BENCH_EXIT_OK;
		}
	}
	k.interval_ns = interval * 1000000000ull;
	ret = setup(&k, seed);
	k.t0 = now_ns();
	k.next_check = k.check_every;
	if (!ret)
		sample(&k, false);
	while (!ret && k.ops < k.total) {
		for (int p = 0; p < N_SOAK && !ret && k.ops < k.total; p++) {
			for (int w = 0; w < N_WL && !ret && k.ops < k.total; w++) {
				uint64_t n = k.round < k.total - k.ops ? k.round : k.total - k.ops;

				ret = ops(&k, p, w, n);
				k.ops += n;
				if (!ret && k.ops >= k.next_check) {
					ret = check_all(&k);
					k.next_check = k.ops + k.check_every;
				}
				if (!ret && now_ns() >= k.t_next_sample)
					sample(&k, false);
			}
		}
	}
	if (!ret)
		ret = check_all(&k);
	if (!ret)
		ret = verdicts(&k);
	if (!ret) {
		sample(&k, true);
		if (k.rss_max * 100 > k.rss_base * (100 + growth)) {
			snprintf(k.err, sizeof(k.err), "RSS grew from %" PRIu64 " to %" PRIu64
				 " bytes after the warm-up (more than %" PRIu64 "%%)", k.rss_base,
				 k.rss_max, growth);
			ret = 1;
		}
	}
	if (json) {
		struct bench_json j;

		bench_json_begin(&j, stdout);
		bench_json_str(&j, "type", "soak");
		bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
		bench_json_str(&j, "version", iovaq_version());
		bench_json_u64(&j, "ops", k.ops);
		bench_json_u64(&j, "seed", seed);
		bench_json_double(&j, "seconds", (double)(now_ns() - k.t0) / 1e9);
		bench_json_u64(&j, "invariant_checks", k.checks);
		bench_json_u64(&j, "rss_samples", k.samples);
		bench_json_u64(&j, "warmup_ops", k.warm_at);
		bench_json_u64(&j, "rss_warm_bytes", k.rss_base);
		bench_json_u64(&j, "rss_max_bytes", k.rss_max);
		bench_json_u64(&j, "max_growth_percent", growth);
		bench_json_double(&j, "rss_growth",
				  k.rss_base ? (double)k.rss_max / (double)k.rss_base - 1 : 0);
		bench_json_open_array(&j, "policies");
		for (int p = 0; p < N_SOAK; p++)
			bench_json_str(&j, NULL, soak_names[p]);
		bench_json_close_array(&j);
		bench_json_open_array(&j, "workloads");
		for (int w = 0; w < N_WL; w++)
			bench_json_str(&j, NULL, soak_workloads[w]);
		bench_json_close_array(&j);
		if (ret)
			bench_json_str(&j, "error", k.err);
		else
			bench_json_null(&j, "error");
		bench_json_end(&j);
	}
	teardown(&k);
	if (ret) {
		fprintf(stderr, "%s: soak: FAILED after %" PRIu64 " ops: %s\n", BENCH_PROG, k.ops,
			k.err);
		return BENCH_EXIT_FAIL;
	}
	if (k.log)
		fprintf(k.log, "soak: %" PRIu64 " ops, %" PRIu64 " invariant checks, RSS %.2f MiB "
			"after the warm-up, at most %.2f MiB: passed\n", k.ops, k.checks,
			(double)k.rss_base / 1048576.0, (double)k.rss_max / 1048576.0);
	return BENCH_EXIT_OK;
}
