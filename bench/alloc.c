/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench alloc: allocator workloads on an IOVA space and its magazine cache.
 *
 * How a run is measured (the same for every workload, so that rows compare):
 *  - Every repetition builds a fresh space (and cache), so that no repetition inherits the
 *    fragmentation or the cache contents of the previous one, and all repetitions replay the
 *    same operation sequence from the same seed.
 *  - Each thread first fills its ring or slot array (the "outstanding" IOVAs), then runs
 *    --warmup pairs untimed to load the caches and fault in the pages, then meets the other
 *    threads at a start gate and runs --ops timed pairs.
 *  - Random slots and sizes are drawn before timing into a table that the timed loop reads
 *    sequentially (4 bytes per pair), so that the PRNG is not measured; the residual cost is
 *    one streamed load per pair, identical across modes, and the slot it names is prefetched
 *    a few pairs ahead so that the harness's own array adds no cache misses at 10^6 slots.
 *    nic-rx draws nothing.
 *  - A pair is one alloc and one free. ns per pair = wall time from the first thread's start to
 *    the last thread's end, divided by all threads' pairs; the reported figure is the median
 *    over the repetitions, with min and max beside it. Per-thread figures are each thread's own
 *    time divided by its pairs, median over the repetitions.
 *  - Threads share one space and one cache, each with its own ring or slots and its own PRNG
 *    stream of the seed, pinned to CPU i modulo the CPUs this process may use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <iovaq/iovaq.h>

#include "bench.h"

enum workload {
	WL_NIC_RX,
	WL_MIXED,
	WL_TREE_ONLY,
	WL_TREE_SWEEP,
};

static const char *const workload_names[] = {
	[WL_NIC_RX] = "nic-rx",
	[WL_MIXED] = "mixed",
	[WL_TREE_ONLY] = "tree-only",
	[WL_TREE_SWEEP] = "tree-sweep",
	NULL,
};

/* Defaults from issue 2's workload definitions. */
static const struct {
	uint64_t ops;
	uint64_t outstanding;
} workload_defaults[] = {
	[WL_NIC_RX] = { 10000000, 1024 },
	[WL_MIXED] = { 5000000, 4096 },
	[WL_TREE_ONLY] = { 5000000, 4096 },
	[WL_TREE_SWEEP] = { 1000000, 0 },
};

static const uint64_t sweep_sizes[] = { 1000, 10000, 100000, 1000000 };

enum cache_mode {
	CM_FRONT,	/* default cache: per-thread front over per-CPU slots */
	CM_PERCPU,	/* IOVAQ_CACHE_NO_FRONT: a per-CPU slot lock per operation */
	CM_BYPASS,	/* IOVAQ_CACHE_BYPASS: the cache API, every call to the space */
	CM_OFF,		/* no cache object: iovaq_space_alloc()/free() directly */
};

/* The --cache-mode choices; "off" is spelt --no-cache. */
static const char *const cache_mode_names[] = { "front", "percpu", "bypass", NULL };
static const char *const cache_names[] = { "front", "percpu", "bypass", "off" };

#define DEFAULT_REPS 5
#define DEFAULT_SEED 1
#define MAX_THREADS 1024
#define MAX_OPS 1000000000000ULL

/*
 * Aperture [4 KiB, 2^48 - 1] (a 48-bit IOMMU address width) minus the x86 MSI window; the
 * granule at 0 is reserved by the library anyway.
 */
#define APERTURE_START 0x1000ULL
#define APERTURE_LAST ((1ULL << 48) - 1)

/*
 * A mixed-family op is packed in 32 bits: slot index << OP_LG_BITS | log2(granules). Every
 * size of the mix is a power of two (1 to 256 granules), so its log2 fits in 4 bits. The same
 * 4 bits ride in the low bits of the IOVA stored in each slot: an IOVA is granule-aligned, so
 * those bits are zero.
 */
#define OP_LG_BITS 4
#define OP_LG_MASK ((1u << OP_LG_BITS) - 1)
#define MAX_OUTSTANDING (1ULL << 24)
_Static_assert(MAX_OUTSTANDING - 1 <= (UINT32_MAX >> OP_LG_BITS), "slot index must fit an op");
_Static_assert(IOVAQ_DEFAULT_GRANULE > OP_LG_MASK, "log2(size) must fit below the granule");
/* Slots of all threads together, 8 bytes each: a bound on memory, 512 MiB. */
#define MAX_TOTAL_SLOTS (1ULL << 26)
/* Op tables of all threads together, 4 bytes per op: 128 MiB; longer runs cycle the table. */
#define MAX_TOTAL_TABLE (1ULL << 25)

struct alloc_cfg {
	enum workload wl;
	enum cache_mode cache;
	unsigned int threads;
	uint64_t ops;		/* timed pairs per thread */
	uint64_t warmup;	/* untimed pairs per thread, after the fill */
	uint64_t outstanding;	/* ring length (nic-rx) or slots (mixed family), per thread */
	uint64_t max_class;	/* cache's max_cached_granules; 0 = library default */
	unsigned int reps;
	uint64_t seed;
	bool pin;
	bool check;
};

struct alloc_result {
	struct alloc_cfg cfg;
	double ns;		/* aggregate ns per pair, median over reps */
	double ns_min;
	double ns_max;
	double *rep_ns;		/* [reps] */
	double *thread_ns;	/* [threads], median over reps of each thread's ns per pair */
	int *cpus;		/* [threads] */
	bool pinned;
	char *stats_json;	/* library counters after the last repetition's timed phase */
	double speedup;		/* NAN when the row has no baseline */
	const char *speedup_vs;
	double foreign_load;	/* share of CPU time others used during the run, or NAN */
};

struct run;

struct worker {
	struct run *run;
	unsigned int idx;
	int cpu;
	int pin_err;
	uint32_t *tab;		/* mixed family: pre-drawn ops, replayed by every repetition */
	size_t tab_len;
	size_t pos;
	uint64_t *slots;	/* IOVA | log2(granules) per slot; the ring for nic-rx */
	uint64_t head;		/* nic-rx: oldest ring entry */
	uint64_t t0, t1;
	int err;
	const char *err_call;
	uint64_t err_granules;
	pthread_t tid;
} __attribute__((aligned(64)));	/* one thread's bookkeeping never shares a line with another's */

/* One repetition: the objects under test and the start gate. */
struct run {
	const struct alloc_cfg *cfg;
	struct iovaq_space *sp;
	struct iovaq_cache *c;
	struct bench_gate gate;
};

/* ---- the measured loops ------------------------------------------------------------------ */

/*
 * @direct is a compile-time constant at every call site (the loops are always inlined into
 * two specialised copies), so the timed loops contain no branch or indirect call to choose
 * between the space and the cache.
 */
static inline __attribute__((always_inline)) int op_alloc(bool direct, struct iovaq_space *sp,
							  struct iovaq_cache *c, uint64_t n,
							  iovaq_iova_t *out)
{
	if (direct)
		return iovaq_space_alloc(sp, n, IOVAQ_LIMIT_NONE, out);
	return iovaq_cache_alloc(c, n, IOVAQ_LIMIT_NONE, out);
}

static inline __attribute__((always_inline)) int op_free(bool direct, struct iovaq_space *sp,
							 struct iovaq_cache *c, iovaq_iova_t iova,
							 uint64_t n)
{
	if (direct)
		return iovaq_space_free(sp, iova, n);
	return iovaq_cache_free(c, iova, n);
}

static __attribute__((noinline, cold)) int op_failed(struct worker *w, int err, const char *call,
						     uint64_t n)
{
	w->err = err;
	w->err_call = call;
	w->err_granules = n;
	return err;
}

static inline __attribute__((always_inline)) int nic_rx_loop(bool direct, struct iovaq_space *sp,
							     struct iovaq_cache *c,
							     struct worker *w, uint64_t n)
{
	uint64_t *ring = w->slots;
	uint64_t len = w->run->cfg->outstanding, h = w->head;

	for (uint64_t k = 0; k < n; k++) {
		iovaq_iova_t iova;
		int err = op_alloc(direct, sp, c, 1, &iova);

		if (bench_unlikely(err))
			return op_failed(w, err, direct ? "iovaq_space_alloc" : "iovaq_cache_alloc", 1);
		err = op_free(direct, sp, c, ring[h], 1);
		if (bench_unlikely(err))
			return op_failed(w, err, direct ? "iovaq_space_free" : "iovaq_cache_free", 1);
		ring[h] = iova;
		if (++h == len)
			h = 0;
	}
	w->head = h;
	return 0;
}

#ifndef PREFETCH_AHEAD
#define PREFETCH_AHEAD 8
#endif

static inline __attribute__((always_inline)) int mixed_loop(bool direct, struct iovaq_space *sp,
							    struct iovaq_cache *c, struct worker *w,
							    const uint32_t *tab, size_t n)
{
	uint64_t *slots = w->slots;

	for (size_t k = 0; k < n; k++) {
		uint32_t e = tab[k];
		uint64_t *slot = &slots[e >> OP_LG_BITS];

		/*
		 * The slot array is the harness's, not the library's: with 10^6 slots (8 MiB) a
		 * random slot is a cache miss that would be charged to the allocator. The table
		 * says which slot comes PREFETCH_AHEAD ops later, so fetch it now.
		 */
#if PREFETCH_AHEAD
		if (k + PREFETCH_AHEAD < n)
			__builtin_prefetch(&slots[tab[k + PREFETCH_AHEAD] >> OP_LG_BITS], 1);
#endif
		uint64_t old = *slot;
		uint64_t lg = e & OP_LG_MASK;
		iovaq_iova_t iova;
		int err = op_alloc(direct, sp, c, 1ULL << lg, &iova);

		if (bench_unlikely(err))
			return op_failed(w, err, direct ? "iovaq_space_alloc" : "iovaq_cache_alloc",
					 1ULL << lg);
		err = op_free(direct, sp, c, old & ~(uint64_t)OP_LG_MASK, 1ULL << (old & OP_LG_MASK));
		if (bench_unlikely(err))
			return op_failed(w, err, direct ? "iovaq_space_free" : "iovaq_cache_free",
					 1ULL << (old & OP_LG_MASK));
		*slot = iova | lg;
	}
	return 0;
}

static inline __attribute__((always_inline)) int run_ops(struct worker *w, uint64_t n)
{
	struct run *r = w->run;
	bool direct = r->cfg->cache == CM_OFF;
	int err = 0;

	if (r->cfg->wl == WL_NIC_RX)
		return direct ? nic_rx_loop(true, r->sp, NULL, w, n)
			      : nic_rx_loop(false, NULL, r->c, w, n);
	/* The table is replayed cyclically when a run is longer than it (see MAX_TOTAL_TABLE). */
	while (n && !err) {
		size_t chunk = w->tab_len - w->pos;

		if (chunk > n)
			chunk = (size_t)n;
		err = direct ? mixed_loop(true, r->sp, NULL, w, w->tab + w->pos, chunk)
			     : mixed_loop(false, NULL, r->c, w, w->tab + w->pos, chunk);
		w->pos += chunk;
		if (w->pos == w->tab_len)
			w->pos = 0;
		n -= chunk;
	}
	return err;
}

/*
 * The timed region, out of line under a fixed name and never cloned, so that
 * bench/callgrind.sh can count the instructions of exactly this function and its callees
 * (valgrind --toggle-collect=bench_timed_ops). Nothing else runs inside it but the two clock
 * reads, whose cost the script's two-run difference cancels.
 */
#if defined(__clang__)
#define BENCH_NOCLONE
#else
#define BENCH_NOCLONE __attribute__((noclone))
#endif
__attribute__((noinline)) BENCH_NOCLONE int bench_timed_ops(struct worker *w, uint64_t n);

__attribute__((noinline)) BENCH_NOCLONE int bench_timed_ops(struct worker *w, uint64_t n)
{
	int err;

	w->t0 = bench_now_ns();
	err = run_ops(w, n);
	w->t1 = bench_now_ns();
	return err;
}

static __attribute__((noinline)) int warm_ops(struct worker *w, uint64_t n)
{
	return run_ops(w, n);
}

/* ---- workers ------------------------------------------------------------------------------ */


/* PRNG streams of thread i: 2i for the fill, 2i + 1 for the op table. */
static uint64_t fill_stream(unsigned int idx)
{
	return 2 * (uint64_t)idx;
}

static uint64_t table_stream(unsigned int idx)
{
	return 2 * (uint64_t)idx + 1;
}

static int fill(struct worker *w)
{
	const struct alloc_cfg *cfg = w->run->cfg;
	bool direct = cfg->cache == CM_OFF;
	struct bench_rng rng;

	bench_rng_seed(&rng, cfg->seed, fill_stream(w->idx));
	w->head = 0;
	w->pos = 0;
	for (uint64_t i = 0; i < cfg->outstanding; i++) {
		unsigned int lg = cfg->wl == WL_NIC_RX ? 0 : bench_mixed_order(&rng);
		iovaq_iova_t iova;
		int err = direct ? op_alloc(true, w->run->sp, NULL, 1ULL << lg, &iova)
				 : op_alloc(false, NULL, w->run->c, 1ULL << lg, &iova);

		if (err)
			return op_failed(w, err, direct ? "iovaq_space_alloc" : "iovaq_cache_alloc",
					 1ULL << lg);
		w->slots[i] = iova | lg;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	const struct alloc_cfg *cfg = w->run->cfg;
	int err;

	if (cfg->pin)
		w->pin_err = bench_pin_self(w->cpu);
	err = fill(w);
	if (!err)
		err = warm_ops(w, cfg->warmup);
	/* Arrive even after a failure, so that the others are released (with abort). */
	if (bench_gate_arrive(&w->run->gate) && !err)
		bench_timed_ops(w, cfg->ops);
	return NULL;
}

/* ---- one run: repetitions, results ------------------------------------------------------ */

static void result_free(struct alloc_result *res)
{
	free(res->rep_ns);
	free(res->thread_ns);
	free(res->cpus);
	free(res->stats_json);
	memset(res, 0, sizeof(*res));
}

static int make_space(struct iovaq_space **sp)
{
	static const struct iovaq_range ap = { APERTURE_START, APERTURE_LAST };
	static const struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	IOVAQ_OPTS(iovaq_space_opts, o, .granule = IOVAQ_DEFAULT_GRANULE, .apertures = &ap,
		   .n_apertures = 1, .reserved = &msi, .n_reserved = 1);

	return iovaq_space_create(&o, sp);
}

static int make_cache(const struct alloc_cfg *cfg, struct iovaq_space *sp, struct iovaq_cache **c)
{
	IOVAQ_OPTS(iovaq_cache_opts, o, .max_cached_granules = cfg->max_class);

	if (cfg->cache == CM_PERCPU)
		o.flags = IOVAQ_CACHE_NO_FRONT;
	else if (cfg->cache == CM_BYPASS)
		o.flags = IOVAQ_CACHE_BYPASS;
	return iovaq_cache_create(sp, &o, c);
}

static char *stats_json(struct iovaq_space *sp, struct iovaq_cache *c)
{
	IOVAQ_OPTS(iovaq_stats, st);
	int n = c ? iovaq_cache_stats(c, &st) : iovaq_space_stats(sp, &st);
	char *buf;

	if (n < 0)
		return NULL;
	n = iovaq_stats_json(&st, NULL, 0);
	if (n < 0)
		return NULL;
	buf = malloc((size_t)n + 1);
	if (buf && iovaq_stats_json(&st, buf, (size_t)n + 1) != n) {
		free(buf);
		buf = NULL;
	}
	return buf;
}

/* Run one repetition; per-thread times land in @thread_rep_ns[t * reps + rep]. */
static int run_rep(const struct alloc_cfg *cfg, struct worker *ws, unsigned int rep,
		   struct alloc_result *res, double *thread_rep_ns)
{
	struct run r = { .cfg = cfg };
	unsigned int created = 0;
	uint64_t t0 = UINT64_MAX, t1 = 0;
	int err, ret = BENCH_EXIT_OK;

	err = make_space(&r.sp);
	if (err)
		return bench_error("iovaq_space_create: %s", iovaq_strerror(err));
	if (cfg->cache != CM_OFF) {
		err = make_cache(cfg, r.sp, &r.c);
		if (err) {
			iovaq_space_destroy(r.sp);
			return bench_error("iovaq_cache_create: %s", iovaq_strerror(err));
		}
	}
	bench_gate_init(&r.gate);

	for (unsigned int t = 0; t < cfg->threads; t++) {
		ws[t].run = &r;
		ws[t].err = 0;
		ws[t].pin_err = 0;
		err = pthread_create(&ws[t].tid, NULL, worker_main, &ws[t]);
		if (err) {
			ret = bench_error("cannot start thread %u of %u: %s", t + 1, cfg->threads,
					  strerror(err));
			break;
		}
		created++;
	}

	/* Release the workers together once all are filled and warm, or abort on any failure. */
	bench_gate_wait_all(&r.gate, created);
	for (unsigned int t = 0; t < created; t++)
		if (ws[t].err)
			r.gate.abort = true;
	if (created < cfg->threads)
		r.gate.abort = true;
	bench_gate_release(&r.gate);

	for (unsigned int t = 0; t < created; t++)
		pthread_join(ws[t].tid, NULL);

	for (unsigned int t = 0; t < created; t++) {
		struct worker *w = &ws[t];

		if (w->err && ret == BENCH_EXIT_OK)
			ret = bench_error("thread %u: %s(%" PRIu64 " granule%s) failed: %s (%d)",
					  t, w->err_call, w->err_granules,
					  w->err_granules == 1 ? "" : "s", iovaq_strerror(w->err),
					  w->err);
		if (w->pin_err)
			res->pinned = false;
		if (t0 > w->t0)
			t0 = w->t0;
		if (t1 < w->t1)
			t1 = w->t1;
		thread_rep_ns[(size_t)t * cfg->reps + rep] = (double)(w->t1 - w->t0) /
							     (double)cfg->ops;
	}
	if (ret == BENCH_EXIT_OK) {
		res->rep_ns[rep] = (double)(t1 - t0) / ((double)cfg->ops * cfg->threads);
		if (cfg->check) {
			err = r.c ? iovaq_cache_check(r.c) : iovaq_space_check(r.sp);
			if (err)
				ret = bench_error("%s after repetition %u: %s (%d)",
						  r.c ? "iovaq_cache_check" : "iovaq_space_check",
						  rep + 1, iovaq_strerror(err), err);
		}
		if (rep + 1 == cfg->reps) {
			free(res->stats_json);
			res->stats_json = stats_json(r.sp, r.c);
		}
	}

	bench_gate_destroy(&r.gate);
	iovaq_cache_destroy(r.c);
	iovaq_space_destroy(r.sp);
	return ret;
}

static int run_alloc(const struct alloc_cfg *cfg, struct alloc_result *res, const char *label)
{
	unsigned int nt = cfg->threads;
	struct worker *ws = aligned_alloc(_Alignof(struct worker), nt * sizeof(*ws));
	double *thread_rep_ns = calloc((size_t)nt * cfg->reps, sizeof(double));
	struct bench_load load;
	int ret = BENCH_EXIT_OK;

	memset(res, 0, sizeof(*res));
	res->cfg = *cfg;
	res->speedup = NAN;
	res->foreign_load = NAN;
	res->pinned = cfg->pin;
	res->rep_ns = calloc(cfg->reps, sizeof(double));
	res->thread_ns = calloc(nt, sizeof(double));
	res->cpus = calloc(nt, sizeof(int));
	if (ws)
		memset(ws, 0, nt * sizeof(*ws));
	if (!ws || !thread_rep_ns || !res->rep_ns || !res->thread_ns || !res->cpus) {
		ret = bench_error("out of memory");
		goto out;
	}

	for (unsigned int t = 0; t < nt; t++) {
		struct worker *w = &ws[t];

		w->idx = t;
		w->cpu = bench_cpu_for(t);
		res->cpus[t] = w->cpu;
		w->slots = malloc(cfg->outstanding * sizeof(*w->slots));
		if (!w->slots) {
			ret = bench_error("out of memory for %" PRIu64 " slots", cfg->outstanding);
			goto out;
		}
		if (cfg->wl != WL_NIC_RX) {
			uint64_t cap = MAX_TOTAL_TABLE / nt;
			uint64_t len = cfg->warmup + cfg->ops;
			struct bench_rng rng;

			if (cap < 65536)
				cap = 65536;
			if (len > cap)
				len = cap;
			w->tab_len = (size_t)len;
			w->tab = malloc(w->tab_len * sizeof(*w->tab));
			if (!w->tab) {
				ret = bench_error("out of memory for the op table");
				goto out;
			}
			bench_rng_seed(&rng, cfg->seed, table_stream(t));
			for (size_t k = 0; k < w->tab_len; k++) {
				uint32_t slot = (uint32_t)bench_rng_below(&rng, cfg->outstanding);

				w->tab[k] = slot << OP_LG_BITS | bench_mixed_order(&rng);
			}
		}
	}

	bench_load_begin(&load);
	for (unsigned int rep = 0; rep < cfg->reps && ret == BENCH_EXIT_OK; rep++) {
		bench_progress("%s: repetition %u/%u", label, rep + 1, cfg->reps);
		ret = run_rep(cfg, ws, rep, res, thread_rep_ns);
	}
	res->foreign_load = bench_load_end(&load);
	if (ret == BENCH_EXIT_OK) {
		res->ns = bench_median(res->rep_ns, cfg->reps);
		res->ns_min = bench_min(res->rep_ns, cfg->reps);
		res->ns_max = bench_max(res->rep_ns, cfg->reps);
		for (unsigned int t = 0; t < nt; t++)
			res->thread_ns[t] = bench_median(thread_rep_ns + (size_t)t * cfg->reps,
							 cfg->reps);
		if (cfg->pin && !res->pinned)
			bench_warn("could not pin threads to CPUs; timings may be noisier");
	}
out:
	bench_progress_clear();
	if (ws) {
		for (unsigned int t = 0; t < nt; t++) {
			free(ws[t].slots);
			free(ws[t].tab);
		}
	}
	free(ws);
	free(thread_rep_ns);
	return ret;
}

/* ---- output ------------------------------------------------------------------------------- */

static double mops(const struct alloc_result *r)
{
	return 1e3 / r->ns;
}

static void fmt_ns(char *buf, size_t len, double ns)
{
	snprintf(buf, len, ns < 100 ? "%.2f" : ns < 10000 ? "%.1f" : "%.0f", ns);
}

static void emit_json(const struct alloc_result *r, FILE *f)
{
	const struct alloc_cfg *c = &r->cfg;
	struct bench_json j;

	bench_json_begin(&j, f);
	bench_json_str(&j, "type", "run");
	bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
	bench_json_str(&j, "version", iovaq_version());
	bench_json_str(&j, "command", "alloc");
	bench_json_str(&j, "workload", workload_names[c->wl]);
	bench_json_u64(&j, "threads", c->threads);
	bench_json_u64(&j, "ops", c->ops);
	bench_json_u64(&j, "total_ops", c->ops * c->threads);
	bench_json_u64(&j, "warmup_ops", c->warmup);
	bench_json_u64(&j, "outstanding", c->outstanding);
	bench_json_str(&j, "cache", cache_names[c->cache]);
	if (c->cache == CM_OFF)
		bench_json_null(&j, "max_class");
	else
		bench_json_u64(&j, "max_class",
			       c->max_class ? c->max_class : IOVAQ_CACHE_DEFAULT_MAX_GRANULES);
	bench_json_u64(&j, "granule", IOVAQ_DEFAULT_GRANULE);
	bench_json_u64(&j, "reps", c->reps);
	bench_json_u64(&j, "seed", c->seed);
	bench_json_double(&j, "ns_per_op", r->ns);
	bench_json_double(&j, "ns_per_op_min", r->ns_min);
	bench_json_double(&j, "ns_per_op_max", r->ns_max);
	bench_json_double(&j, "mops_per_s", mops(r));
	bench_json_open_array(&j, "rep_ns_per_op");
	for (unsigned int i = 0; i < c->reps; i++)
		bench_json_double(&j, NULL, r->rep_ns[i]);
	bench_json_close_array(&j);
	bench_json_open_array(&j, "thread_ns_per_op");
	for (unsigned int t = 0; t < c->threads; t++)
		bench_json_double(&j, NULL, r->thread_ns[t]);
	bench_json_close_array(&j);
	bench_json_open_array(&j, "cpus");
	for (unsigned int t = 0; t < c->threads; t++)
		bench_json_u64(&j, NULL, (uint64_t)r->cpus[t]);
	bench_json_close_array(&j);
	bench_json_bool(&j, "pinned", r->pinned);
	bench_json_double(&j, "foreign_cpu_share", r->foreign_load);
	if (!isnan(r->speedup)) {
		bench_json_double(&j, "speedup", r->speedup);
		bench_json_str(&j, "speedup_vs", r->speedup_vs);
	}
	if (r->stats_json)
		bench_json_raw(&j, "stats", r->stats_json);
	else
		bench_json_null(&j, "stats");
	bench_json_end(&j);
}

static const char *const csv_head[] = {
	"workload", "threads", "ops", "warmup_ops", "outstanding", "cache", "reps", "seed",
	"ns_per_op", "ns_per_op_min", "ns_per_op_max", "mops_per_s", "speedup", "speedup_vs",
	"version", NULL,
};

static void emit_csv(const struct alloc_result *r, FILE *f)
{
	const struct alloc_cfg *c = &r->cfg;
	char b[16][64];
	unsigned int i = 0;

	snprintf(b[i++], 64, "%s", workload_names[c->wl]);
	snprintf(b[i++], 64, "%u", c->threads);
	snprintf(b[i++], 64, "%" PRIu64, c->ops);
	snprintf(b[i++], 64, "%" PRIu64, c->warmup);
	snprintf(b[i++], 64, "%" PRIu64, c->outstanding);
	snprintf(b[i++], 64, "%s", cache_names[c->cache]);
	snprintf(b[i++], 64, "%u", c->reps);
	snprintf(b[i++], 64, "%" PRIu64, c->seed);
	snprintf(b[i++], 64, "%.6g", r->ns);
	snprintf(b[i++], 64, "%.6g", r->ns_min);
	snprintf(b[i++], 64, "%.6g", r->ns_max);
	snprintf(b[i++], 64, "%.6g", mops(r));
	if (isnan(r->speedup)) {
		b[i++][0] = '\0';
		b[i++][0] = '\0';
	} else {
		snprintf(b[i++], 64, "%.4g", r->speedup);
		snprintf(b[i++], 64, "%s", r->speedup_vs);
	}
	snprintf(b[i++], 64, "%s", iovaq_version());
	bench_csv_row(f, b, i);
}

/* The human-readable table; columns without content in any row are left out. */
static int emit_table(const struct alloc_result *rs, unsigned int n, FILE *f)
{
	static const char *const all_head[] = {
		"workload", "threads", "outstanding", "cache", "ops/thread", "ns/pair", "spread",
		"Mops/s", "per-thread ns", "speedup",
	};
	static const char all_align[] = "lrrlrrrrrl";
	enum { C_PER_THREAD = 8, C_SPEEDUP = 9, NCOLS = 10 };
	const char *head[NCOLS];
	char align[NCOLS + 1];
	bool multi = false, speedup = false;
	unsigned int ncols = 0;
	struct bench_table t;
	int err = 0;

	for (unsigned int i = 0; i < n; i++) {
		multi |= rs[i].cfg.threads > 1;
		speedup |= !isnan(rs[i].speedup);
	}
	for (unsigned int c = 0; c < NCOLS; c++) {
		if ((c == C_PER_THREAD && !multi) || (c == C_SPEEDUP && !speedup))
			continue;
		head[ncols] = all_head[c];
		align[ncols++] = all_align[c];
	}
	align[ncols] = '\0';
	bench_table_init(&t, ncols, head, align);

	for (unsigned int i = 0; i < n && !err; i++) {
		const struct alloc_result *r = &rs[i];
		const struct alloc_cfg *c = &r->cfg;
		char cell[NCOLS][96];
		const char *row[NCOLS];
		unsigned int k = 0;

		snprintf(cell[0], 96, "%s", workload_names[c->wl]);
		snprintf(cell[1], 96, "%u", c->threads);
		bench_fmt_count(cell[2], 96, c->outstanding);
		snprintf(cell[3], 96, "%s", cache_names[c->cache]);
		bench_fmt_count(cell[4], 96, c->ops);
		fmt_ns(cell[5], 96, r->ns);
		snprintf(cell[6], 96, "%.1f%%", 100 * (r->ns_max - r->ns_min) / r->ns);
		snprintf(cell[7], 96, mops(r) < 10 ? "%.2f" : "%.1f", mops(r));
		cell[8][0] = '\0';
		if (c->threads > 4) {
			char lo[32], hi[32];

			fmt_ns(lo, sizeof(lo), bench_min(r->thread_ns, c->threads));
			fmt_ns(hi, sizeof(hi), bench_max(r->thread_ns, c->threads));
			snprintf(cell[8], 96, "%s..%s", lo, hi);
		} else if (c->threads > 1) {
			size_t used = 0;

			for (unsigned int th = 0; th < c->threads && used < 96; th++) {
				char v[32];

				fmt_ns(v, sizeof(v), r->thread_ns[th]);
				used += (size_t)snprintf(cell[8] + used, 96 - used, "%s%s",
							 th ? " / " : "", v);
			}
		}
		if (isnan(r->speedup))
			cell[9][0] = '\0';
		else
			snprintf(cell[9], 96, "%.2fx vs %s", r->speedup, r->speedup_vs);

		for (unsigned int col = 0; col < NCOLS; col++) {
			if ((col == C_PER_THREAD && !multi) || (col == C_SPEEDUP && !speedup))
				continue;
			row[k++] = cell[col][0] ? cell[col] : NULL;
		}
		err = bench_table_add(&t, row);
	}
	if (err) {
		bench_table_free(&t);
		return bench_error("out of memory");
	}
	bench_table_print(&t, f);
	bench_table_free(&t);
	return 0;
}

static void emit_table_notes(FILE *f, const struct alloc_result *rs, unsigned int n)
{
	bool multi = false, speedup = false;

	for (unsigned int i = 0; i < n; i++) {
		multi |= rs[i].cfg.threads > 1;
		speedup |= !isnan(rs[i].speedup);
	}
	fprintf(f, "\nns/pair: one alloc + one free; wall time / all threads' pairs, median of %u "
		   "repetitions.\nspread: (max - min) / median.%s%s\n", rs[0].cfg.reps,
		multi ? " per-thread ns: each thread's own time / its pairs." : "",
		speedup ? "\nspeedup: throughput ratio to the named row (same run)." : "");
}

/* One warning for a set of runs, on stderr: the results themselves stay clean. */
static void warn_foreign_load(const struct alloc_result *rs, unsigned int n)
{
	double worst = 0;

	for (unsigned int i = 0; i < n; i++)
		if (rs[i].foreign_load > worst)
			worst = rs[i].foreign_load;
	if (worst > BENCH_FOREIGN_LOAD_WARN)
		bench_warn("other processes used up to %.0f%% of the CPUs' time during these runs; "
			   "times are unreliable (run on an idle machine)", 100 * worst);
}

/* ---- "alloc" subcommand ------------------------------------------------------------------- */

enum {
	O_WORKLOAD,
	O_THREADS,
	O_OPS,
	O_WARMUP,
	O_OUTSTANDING,
	O_NO_CACHE,
	O_CACHE_MODE,
	O_MAX_CLASS,
	O_REPS,
	O_SEED,
	O_JSON,
	O_CSV,
	O_CHECK,
	O_NO_PIN,
	O_HELP,
};

static const struct bench_opt alloc_opts[] = {
	{ "workload", 0, "NAME", "nic-rx, mixed, tree-only or tree-sweep (required)", O_WORKLOAD },
	{ "threads", 0, "N", "threads sharing one space and cache, 1..1024 (default 1)",
	  O_THREADS },
	{ "ops", 0, "N", "timed alloc+free pairs per thread (default: nic-rx 10M,\n"
			 "mixed and tree-only 5M, tree-sweep 1M per size)", O_OPS },
	{ "warmup", 0, "N", "untimed pairs per thread after the fill (default ops/10)",
	  O_WARMUP },
	{ "outstanding", 0, "N", "IOVAs each thread holds: ring length or slots\n"
				 "(default: nic-rx 1024, mixed and tree-only 4096)", O_OUTSTANDING },
	{ "no-cache", 0, NULL, "call the space directly (iovaq_space_alloc/free)", O_NO_CACHE },
	{ "cache-mode", 0, "MODE", "front (per-thread front, default), percpu (per-CPU\n"
				   "slot lock per call) or bypass (cache API, no caching)",
	  O_CACHE_MODE },
	{ "max-class", 0, "N", "largest cached size in granules, a power of two\n"
			       "(default 512)", O_MAX_CLASS },
	{ "reps", 0, "N", "repetitions, each on a fresh space; the median is\n"
			  "reported (default 5)", O_REPS },
	{ "seed", 0, "N", "PRNG seed (default 1)", O_SEED },
	{ "json", 0, NULL, "one JSON object per run, one per line", O_JSON },
	{ "csv", 0, NULL, "CSV with a header line", O_CSV },
	{ "check", 0, NULL, "verify the library's invariants after each repetition\n"
			    "(untimed)", O_CHECK },
	{ "no-pin", 0, NULL, "do not pin threads to CPUs", O_NO_PIN },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

void bench_alloc_help(FILE *f)
{
	fprintf(f,
		"Usage: %s alloc --workload NAME [OPTIONS]\n"
		"\n"
		"Time IOVA alloc+free pairs on a space (granule 4 KiB, aperture [4 KiB, 2^48 - 1]\n"
		"minus the x86 MSI window, no limit) and its magazine cache.\n"
		"\n"
		"Workloads:\n"
		"  nic-rx      ring of 1024 one-granule IOVAs: allocate one, free the oldest\n"
		"  mixed       4096 slots: pick a random slot, allocate into it, free its old\n"
		"              occupant; sizes 70%% 1, 15%% {2,4}, 10%% {8,16,32}, 5%% {64,128,256}\n"
		"  tree-only   mixed on the space directly (implies --no-cache)\n"
		"  tree-sweep  tree-only at 1k, 10k, 100k and 1M outstanding, one row each,\n"
		"              and the max/min ratio\n"
		"\n"
		"Options:\n",
		BENCH_PROG);
	bench_print_opts(f, alloc_opts);
	fprintf(f,
		"\n"
		"Numbers accept the suffixes k, M, G (10^3, 10^6, 10^9) and eN (1e7).\n"
		"Exit status: 0 success, 1 library or system error, 2 bad usage.\n");
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static void alloc_defaults(struct alloc_cfg *cfg, enum workload wl)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->wl = wl;
	cfg->cache = (wl == WL_TREE_ONLY || wl == WL_TREE_SWEEP) ? CM_OFF : CM_FRONT;
	cfg->threads = 1;
	cfg->ops = workload_defaults[wl].ops;
	cfg->warmup = cfg->ops / 10;
	cfg->outstanding = workload_defaults[wl].outstanding;
	cfg->reps = DEFAULT_REPS;
	cfg->seed = DEFAULT_SEED;
	cfg->pin = true;
}

static void emit_one(const struct alloc_result *r, enum bench_format fmt, bool csv_head_done)
{
	if (fmt == BENCH_FMT_JSON)
		emit_json(r, stdout);
	else if (fmt == BENCH_FMT_CSV) {
		if (!csv_head_done)
			bench_csv_head(stdout, csv_head);
		emit_csv(r, stdout);
	}
}

static int run_sweep(const struct alloc_cfg *base, enum bench_format fmt)
{
	enum { N = sizeof(sweep_sizes) / sizeof(sweep_sizes[0]) };
	struct alloc_result rs[N];
	unsigned int done = 0;
	double lo = INFINITY, hi = 0;
	int ret = BENCH_EXIT_OK;

	for (unsigned int i = 0; i < N; i++) {
		struct alloc_cfg cfg = *base;
		char label[64], count[32];

		cfg.outstanding = sweep_sizes[i];
		bench_fmt_count(count, sizeof(count), cfg.outstanding);
		snprintf(label, sizeof(label), "[%u/%u] tree-sweep, %s outstanding", i + 1,
			 (unsigned int)N, count);
		ret = run_alloc(&cfg, &rs[i], label);
		if (ret) {
			result_free(&rs[i]);
			break;
		}
		done++;
		emit_one(&rs[i], fmt, i > 0);
		if (rs[i].ns < lo)
			lo = rs[i].ns;
		if (rs[i].ns > hi)
			hi = rs[i].ns;
	}
	if (ret == BENCH_EXIT_OK) {
		if (fmt == BENCH_FMT_TABLE) {
			ret = emit_table(rs, done, stdout);
			emit_table_notes(stdout, rs, done);
			printf("tree-sweep: max/min ns/pair across 1k..1M outstanding = %.2fx\n",
			       hi / lo);
		} else if (fmt == BENCH_FMT_JSON) {
			struct bench_json j;

			bench_json_begin(&j, stdout);
			bench_json_str(&j, "type", "summary");
			bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
			bench_json_str(&j, "version", iovaq_version());
			bench_json_str(&j, "command", "alloc");
			bench_json_str(&j, "workload", "tree-sweep");
			bench_json_open_array(&j, "outstanding");
			for (unsigned int i = 0; i < done; i++)
				bench_json_u64(&j, NULL, rs[i].cfg.outstanding);
			bench_json_close_array(&j);
			bench_json_open_array(&j, "ns_per_op");
			for (unsigned int i = 0; i < done; i++)
				bench_json_double(&j, NULL, rs[i].ns);
			bench_json_close_array(&j);
			bench_json_double(&j, "max_min_ratio", hi / lo);
			bench_json_end(&j);
		}
	}
	warn_foreign_load(rs, done);
	for (unsigned int i = 0; i < done; i++)
		result_free(&rs[i]);
	return ret;
}

int bench_alloc_main(int argc, char **argv)
{
	struct bench_args a;
	struct alloc_cfg cfg;
	struct alloc_result res;
	enum bench_format fmt = BENCH_FMT_TABLE;
	bool have_wl = false, no_cache = false, have_mode = false, have_warmup = false;
	bool have_ops = false, have_out = false, have_max_class = false;
	unsigned int wl = 0, mode = CM_FRONT;
	uint64_t threads = 1, ops = 0, warmup = 0, outstanding = 0, max_class = 0;
	uint64_t reps = DEFAULT_REPS, seed = DEFAULT_SEED;
	bool check = false, pin = true, json = false, csv = false;
	char label[96];
	int id, ret;

	bench_args_init(&a, argc, argv, 1, "alloc", alloc_opts);
	while ((id = bench_args_next(&a)) != BENCH_ARG_END) {
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			bench_usage_error("unexpected argument '%s' for alloc (options start with --; "
					  "see '%s alloc --help')", a.positional, BENCH_PROG);
		case O_WORKLOAD:
			wl = bench_parse_choice(&a, "workload", workload_names);
			have_wl = true;
			break;
		case O_THREADS:
			threads = bench_parse_u64(&a, 1, MAX_THREADS);
			break;
		case O_OPS:
			ops = bench_parse_u64(&a, 1, MAX_OPS);
			have_ops = true;
			break;
		case O_WARMUP:
			warmup = bench_parse_u64(&a, 0, MAX_OPS);
			have_warmup = true;
			break;
		case O_OUTSTANDING:
			outstanding = bench_parse_u64(&a, 1, MAX_OUTSTANDING);
			have_out = true;
			break;
		case O_NO_CACHE:
			no_cache = true;
			break;
		case O_CACHE_MODE:
			mode = bench_parse_choice(&a, "cache mode", cache_mode_names);
			have_mode = true;
			break;
		case O_MAX_CLASS:
			max_class = bench_parse_u64(&a, 1, 1ULL << (IOVAQ_CACHE_MAX_CLASSES - 1));
			if (!is_pow2(max_class))
				bench_usage_error("invalid value '%s' for --max-class: not a power of "
						  "two (expected 1, 2, 4, ... %llu)", a.value,
						  1ULL << (IOVAQ_CACHE_MAX_CLASSES - 1));
			have_max_class = true;
			break;
		case O_REPS:
			reps = bench_parse_u64(&a, 1, 1000);
			break;
		case O_SEED:
			seed = bench_parse_u64(&a, 0, UINT64_MAX);
			break;
		case O_JSON:
			json = true;
			break;
		case O_CSV:
			csv = true;
			break;
		case O_CHECK:
			check = true;
			break;
		case O_NO_PIN:
			pin = false;
			break;
		case O_HELP:
			bench_alloc_help(stdout);
			return BENCH_EXIT_OK;
		}
	}

	if (!have_wl)
		bench_usage_error("alloc needs --workload NAME (valid: nic-rx, mixed, tree-only, "
				  "tree-sweep)");
	if (json && csv)
		bench_usage_error("--json and --csv exclude each other (choose one)");
	if (no_cache && have_mode)
		bench_usage_error("--no-cache and --cache-mode %s exclude each other (choose one)",
				  cache_mode_names[mode]);
	if ((wl == WL_TREE_ONLY || wl == WL_TREE_SWEEP) && have_mode)
		bench_usage_error("workload %s always uses the space directly; --cache-mode %s "
				  "does not apply (use --workload mixed)", workload_names[wl],
				  cache_mode_names[mode]);
	if (wl == WL_TREE_SWEEP && have_out)
		bench_usage_error("workload tree-sweep sets its own outstanding counts (1k, 10k, "
				  "100k, 1M); drop --outstanding or use --workload tree-only");

	alloc_defaults(&cfg, (enum workload)wl);
	if (no_cache)
		cfg.cache = CM_OFF;
	else if (have_mode)
		cfg.cache = (enum cache_mode)mode;
	if (have_max_class && cfg.cache == CM_OFF)
		bench_usage_error("--max-class needs a cache; it has no effect with %s",
				  no_cache ? "--no-cache" : workload_names[wl]);
	cfg.threads = (unsigned int)threads;
	if (have_ops)
		cfg.ops = ops;
	cfg.warmup = have_warmup ? warmup : cfg.ops / 10;
	if (have_out)
		cfg.outstanding = outstanding;
	cfg.max_class = max_class;
	cfg.reps = (unsigned int)reps;
	cfg.seed = seed;
	cfg.check = check;
	cfg.pin = pin;
	if ((wl == WL_TREE_SWEEP ? sweep_sizes[3] : cfg.outstanding) * cfg.threads >
	    MAX_TOTAL_SLOTS)
		bench_usage_error("--threads %u x --outstanding %" PRIu64 " is too large (at most %llu "
				  "outstanding IOVAs over all threads)", cfg.threads,
				  wl == WL_TREE_SWEEP ? sweep_sizes[3] : cfg.outstanding,
				  MAX_TOTAL_SLOTS);
	fmt = json ? BENCH_FMT_JSON : csv ? BENCH_FMT_CSV : BENCH_FMT_TABLE;

	if (cfg.wl == WL_TREE_SWEEP)
		return run_sweep(&cfg, fmt);

	snprintf(label, sizeof(label), "%s, %s, %u thread%s", workload_names[cfg.wl],
		 cache_names[cfg.cache], cfg.threads, cfg.threads > 1 ? "s" : "");
	ret = run_alloc(&cfg, &res, label);
	if (ret == BENCH_EXIT_OK) {
		if (fmt == BENCH_FMT_TABLE) {
			ret = emit_table(&res, 1, stdout);
			emit_table_notes(stdout, &res, 1);
		} else {
			emit_one(&res, fmt, false);
		}
		warn_foreign_load(&res, 1);
	}
	result_free(&res);
	return ret;
}

/* ---- the default suite -------------------------------------------------------------------- */

/*
 * What "iovaq-bench" runs without a command: issue 2's allocator targets in one table, each
 * fast path next to the baseline it must beat, so that every speedup is measured in one run.
 */
static const struct suite_row {
	enum workload wl;
	enum cache_mode cache;
	unsigned int threads;
	int base;		/* row whose throughput this row is compared with, or -1 */
	const char *base_name;
} suite[] = {
	{ WL_NIC_RX, CM_PERCPU, 1, -1, NULL },
	{ WL_NIC_RX, CM_FRONT, 1, 0, "percpu" },
	{ WL_NIC_RX, CM_FRONT, 2, 1, "1 thread" },
	{ WL_TREE_ONLY, CM_OFF, 1, -1, NULL },
	{ WL_MIXED, CM_FRONT, 1, 3, "tree-only" },
};

#define SUITE_ROWS (sizeof(suite) / sizeof(suite[0]))

void bench_alloc_suite_describe(FILE *f)
{
	for (unsigned int i = 0; i < SUITE_ROWS; i++) {
		const struct suite_row *s = &suite[i];
		char ops[32];

		bench_fmt_count(ops, sizeof(ops), workload_defaults[s->wl].ops);
		fprintf(f, "  %-10s %-7s %u thread%-2s %4" PRIu64 " outstanding, %3s pairs%s%s\n",
			workload_names[s->wl], cache_names[s->cache], s->threads,
			s->threads > 1 ? "s," : ",", workload_defaults[s->wl].outstanding, ops,
			s->base >= 0 ? ", vs " : "", s->base >= 0 ? s->base_name : "");
	}
}

int bench_alloc_suite(const struct bench_suite_opts *o)
{
	struct alloc_result rs[SUITE_ROWS];
	unsigned int done = 0;
	uint64_t t0 = bench_now_ns();
	int ret = BENCH_EXIT_OK;

	for (unsigned int i = 0; i < SUITE_ROWS; i++) {
		const struct suite_row *s = &suite[i];
		struct alloc_cfg cfg;
		char label[96];

		alloc_defaults(&cfg, s->wl);
		cfg.cache = s->cache;
		cfg.threads = s->threads;
		if (o->reps)
			cfg.reps = o->reps;
		if (o->seed_set)
			cfg.seed = o->seed;
		snprintf(label, sizeof(label), "[%u/%u] %s, %s, %u thread%s", i + 1,
			 (unsigned int)SUITE_ROWS, workload_names[s->wl], cache_names[s->cache],
			 s->threads, s->threads > 1 ? "s" : "");
		ret = run_alloc(&cfg, &rs[i], label);
		if (ret) {
			result_free(&rs[i]);
			break;
		}
		done++;
		if (s->base >= 0) {
			rs[i].speedup = rs[s->base].ns / rs[i].ns;
			rs[i].speedup_vs = s->base_name;
		}
		emit_one(&rs[i], o->format, i > 0);
	}
	if (ret == BENCH_EXIT_OK && o->format == BENCH_FMT_TABLE) {
		ret = emit_table(rs, done, stdout);
		emit_table_notes(stdout, rs, done);
		printf("libiovaq %s, seed %" PRIu64 ", %u CPUs, %.1f s; per-workload runs: "
		       "'%s alloc --help'.\n", iovaq_version(), rs[0].cfg.seed, bench_ncpus(),
		       (double)(bench_now_ns() - t0) / 1e9, BENCH_PROG);
	}
	warn_foreign_load(rs, done);
	for (unsigned int i = 0; i < done; i++)
		result_free(&rs[i]);
	return ret;
}
