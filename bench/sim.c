/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * iovaq-bench sim: IOVA locality versus IO page-walk cost on the simulated IOMMU.
 *
 * F&S (Rubin et al., SOSP'24) trace strict mode's throughput loss to IO page-table walks: with
 * IOVAs scattered by the allocator, each walk misses the paging-structure caches ("PTcache")
 * and pays more dependent memory references; one contiguous IOVA chunk per descriptor keeps
 * the walks short. This command measures that locality effect on the "sim" backend, where
 * every figure is modelled (counted), not timed: the same options give the same numbers on
 * any machine.
 *
 * One run (one pattern, native or nested):
 *  1. Open a fresh "sim" backend (default IOTLB 64 sets x 8 ways, 16 entries per
 *     paging-structure cache level, default cost constants), then a space on its caps
 *     aperture (minus the x86 MSI window, as in "alloc") and a magazine cache with defaults.
 *  2. Background traffic, unless --churn 0: 4096 slots filled through the cache with the
 *     "mixed" size mix of issue 2 (70% 1 granule, 15% 2/4, 10% 8/16/32, 5% 64/128/256), then
 *     --churn pairs of "mixed" churn: pick a slot at random, allocate a new IOVA into it,
 *     free its old occupant. These IOVAs stay allocated but are never mapped or accessed.
 *  3. The working set, --pages N pages, allocated as chunks through the cache, one
 *     background pair before each chunk so that the traffic goes on while the buffers are
 *     posted: scattered takes N chunks of 1 page, in the order the cache hands them out;
 *     contiguous takes chunks of --chunk-pages K pages (default: N rounded up to a power of
 *     two, i.e. one naturally aligned chunk; the unused tail stays unmapped).
 *  4. Every page is mapped on its own (one 4 KiB mapping per page, read/write) to its own
 *     host page of one aligned_alloc()ed buffer, in both patterns, so that the page tables
 *     differ only in where the IOVAs lie. Without IOVAQ_SIM_LARGE_PAGES the sim installs
 *     4 KiB leaves either way, so mapping a chunk as one mapping would translate identically.
 *  5. The device reads 64 bytes at the start of each page in turn (allocation order), for
 *     one warm-up pass, then iovaq_sim_reset_counters(), then --iters counted passes. Each
 *     read is checked against a tag written into its host page.
 * Per-page figures divide the sim's counters by the pages read in the counted passes; one DMA
 * is one page, so per DMA and per page are the same.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <iovaq/iovaq.h>

#include "bench.h"

enum pattern {
	PAT_SCATTERED,
	PAT_CONTIGUOUS,
	PAT_NR,
};

static const char *const pattern_names[] = {
	[PAT_SCATTERED] = "scattered",
	[PAT_CONTIGUOUS] = "contiguous",
	NULL,
};

#define PAGE_BYTES 4096ULL
#define DEFAULT_PAGES 4096
#define DEFAULT_ITERS 4
#define DEFAULT_CHURN 65536	/* 16 pairs per background slot */
#define DEFAULT_SEED 1
#define BG_SLOTS 4096		/* as the "mixed" workload's default outstanding */
#define MAX_PAGES (1ULL << 18)	/* 1 GiB of host pages */
#define MAX_ITERS 1000
#define MAX_CHURN 1000000000ULL
#define DMA_BYTES 64
#define TAG_MAGIC 0x696f7661712d7067ULL	/* "iovaq-pg" */

/* Background sizes are powers of two: log2 rides in the low bits of the stored IOVA. */
#define LG_MASK 0xfULL
_Static_assert(PAGE_BYTES > LG_MASK, "log2(size) must fit below the granule");

struct sim_cfg {
	enum pattern pat;
	bool nested;
	uint64_t pages;
	uint64_t chunk;		/* pages per chunk: 1 for scattered */
	unsigned int iters;
	uint64_t churn;		/* background pairs before the working set; 0: no background */
	uint64_t seed;
};

struct sim_result {
	struct sim_cfg cfg;
	struct iovaq_sim_counters c;	/* counted passes only */
	uint64_t chunks;
	uint64_t regions_2m;	/* distinct 2 MiB regions (level-1 tables) of the pages */
	uint64_t regions_1g;	/* distinct 1 GiB regions (level-2 tables) */
	iovaq_iova_t lowest, highest;
	uint32_t iotlb_sets, iotlb_ways;
	double iotlb_miss;	/* per page */
	double psc_miss;
	double psc_level[3];
	double walk_refs;
	double ns;		/* modelled device ns per DMA */
};

/* ---- background traffic ------------------------------------------------------------------- */


struct bg {
	struct iovaq_cache *c;
	struct bench_rng rng;
	uint64_t *slot;		/* IOVA | log2(granules); NULL without background */
	uint64_t filled;
};

static int bg_fill(struct bg *b, const char **call)
{
	for (b->filled = 0; b->filled < BG_SLOTS; b->filled++) {
		unsigned int lg = bench_mixed_order(&b->rng);
		iovaq_iova_t iova;
		int err = iovaq_cache_alloc(b->c, 1ULL << lg, IOVAQ_LIMIT_NONE, &iova);

		if (err) {
			*call = "iovaq_cache_alloc (background fill)";
			return err;
		}
		b->slot[b->filled] = iova | lg;
	}
	return 0;
}

static int bg_pair(struct bg *b, const char **call)
{
	uint64_t *s;
	unsigned int lg;
	iovaq_iova_t iova;
	int err;

	if (!b->slot)
		return 0;
	s = &b->slot[bench_rng_below(&b->rng, BG_SLOTS)];
	lg = bench_mixed_order(&b->rng);
	err = iovaq_cache_alloc(b->c, 1ULL << lg, IOVAQ_LIMIT_NONE, &iova);
	if (err) {
		*call = "iovaq_cache_alloc (background)";
		return err;
	}
	err = iovaq_cache_free(b->c, *s & ~LG_MASK, 1ULL << (*s & LG_MASK));
	if (err) {
		*call = "iovaq_cache_free (background)";
		return err;
	}
	*s = iova | lg;
	return 0;
}

/* ---- one run ------------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

/* Distinct values of iova >> @shift over @n IOVAs; @tmp has room for @n. */
static uint64_t distinct_regions(const iovaq_iova_t *iova, uint64_t n, unsigned int shift,
				 uint64_t *tmp)
{
	uint64_t d = 0;

	for (uint64_t i = 0; i < n; i++)
		tmp[i] = iova[i] >> shift;
	qsort(tmp, n, sizeof(*tmp), cmp_u64);
	for (uint64_t i = 0; i < n; i++)
		d += !i || tmp[i] != tmp[i - 1];
	return d;
}

static uint64_t host_tag(uint64_t page)
{
	return page ^ TAG_MAGIC;
}

/* One pass of the device over every page: a 64-byte read at the start of each. */
static int dma_pass(struct iovaq_sim *sim, const iovaq_iova_t *iova, uint64_t n)
{
	unsigned char buf[DMA_BYTES];

	for (uint64_t i = 0; i < n; i++) {
		struct iovaq_sim_access acc;
		uint64_t tag;
		int err = iovaq_sim_dma(sim, iova[i], buf, sizeof(buf), 0, &acc);

		if (err)
			return bench_error("iovaq_sim_dma(0x%" PRIx64 ", %d bytes, read) of page %"
					   PRIu64 ": %s (%d)", iova[i], DMA_BYTES, i,
					   iovaq_strerror(err), err);
		memcpy(&tag, buf, sizeof(tag));
		if (acc.stale_pages || acc.pages != 1 || tag != host_tag(i))
			return bench_error("iovaq_sim_dma(0x%" PRIx64 ") of page %" PRIu64 " read the "
					   "wrong bytes (tag 0x%" PRIx64 ", expected 0x%" PRIx64
					   "; %" PRIu64 " stale, %" PRIu64 " pages): translation bug",
					   iova[i], i, tag, host_tag(i), acc.stale_pages, acc.pages);
	}
	return 0;
}

static int open_sim(const struct sim_cfg *cfg, struct iovaq_backend **be)
{
	IOVAQ_OPTS(iovaq_sim_opts, so, .seed = cfg->seed,
		   .flags = cfg->nested ? IOVAQ_SIM_NESTED : 0);
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "sim", .backend_opts = &so);
	int err = iovaq_backend_open(&bo, be);

	if (err) {
		const char *why = iovaq_backend_why();

		return bench_error("iovaq_backend_open(\"sim\"): %s (%d)%s%s", iovaq_strerror(err),
				   err, *why ? ": " : "", why);
	}
	return 0;
}

static int make_space(struct iovaq_backend *be, struct iovaq_space **sp)
{
	static const struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	IOVAQ_OPTS(iovaq_backend_caps, caps);
	int err = iovaq_backend_get_caps(be, &caps);

	if (err)
		return bench_error("iovaq_backend_get_caps: %s (%d)", iovaq_strerror(err), err);
	IOVAQ_OPTS(iovaq_space_opts, o, .granule = caps.granule, .apertures = caps.apertures,
		   .n_apertures = caps.n_apertures, .reserved = &msi, .n_reserved = 1);
	if (caps.granule != PAGE_BYTES)
		return bench_error("sim granule is %" PRIu64 " bytes; this benchmark assumes %llu",
				   caps.granule, PAGE_BYTES);
	err = iovaq_space_create(&o, sp);
	if (err)
		return bench_error("iovaq_space_create: %s (%d)", iovaq_strerror(err), err);
	return 0;
}

static double per(uint64_t n, uint64_t d)
{
	return d ? (double)n / (double)d : NAN;
}

static int run_sim(const struct sim_cfg *cfg, struct sim_result *res)
{
	struct iovaq_backend *be = NULL;
	struct iovaq_sim *sim;
	struct iovaq_space *sp = NULL;
	struct bg b = { 0 };
	unsigned char *host = NULL;
	iovaq_iova_t *page = NULL, *chunk = NULL;
	uint64_t *tmp = NULL, n = cfg->pages, nchunks = (n + cfg->chunk - 1) / cfg->chunk;
	uint64_t got = 0, mapped = 0;
	const char *call = NULL;
	int err, ret;

	memset(res, 0, sizeof(*res));
	res->cfg = *cfg;
	res->chunks = nchunks;
	ret = open_sim(cfg, &be);
	if (ret)
		return ret;
	sim = iovaq_sim_of(be);
	ret = make_space(be, &sp);
	if (ret)
		goto out;
	err = iovaq_cache_create(sp, NULL, &b.c);
	if (err) {
		ret = bench_error("iovaq_cache_create: %s (%d)", iovaq_strerror(err), err);
		goto out;
	}

	host = aligned_alloc(PAGE_BYTES, n * PAGE_BYTES);
	page = malloc(n * sizeof(*page));
	chunk = malloc(nchunks * sizeof(*chunk));
	tmp = malloc(n * sizeof(*tmp));
	if (cfg->churn)
		b.slot = calloc(BG_SLOTS, sizeof(*b.slot));
	if (!host || !page || !chunk || !tmp || (cfg->churn && !b.slot)) {
		ret = bench_error("out of memory for %" PRIu64 " pages", n);
		goto out;
	}

	/* Background, then the working set, one background pair before each chunk. */
	bench_rng_seed(&b.rng, cfg->seed, 0);
	err = b.slot ? bg_fill(&b, &call) : 0;
	for (uint64_t k = 0; !err && k < cfg->churn; k++)
		err = bg_pair(&b, &call);
	while (!err && got < nchunks) {
		err = bg_pair(&b, &call);
		if (err)
			break;
		err = iovaq_cache_alloc(b.c, cfg->chunk, IOVAQ_LIMIT_NONE, &chunk[got]);
		if (err)
			call = "iovaq_cache_alloc (working set)";
		else
			got++;
	}
	if (err) {
		ret = bench_error("%s: %s (%d)", call, iovaq_strerror(err), err);
		goto out;
	}
	for (uint64_t i = 0; i < n; i++)
		page[i] = chunk[i / cfg->chunk] + (i % cfg->chunk) * PAGE_BYTES;

	for (; mapped < n; mapped++) {
		uint64_t tag = host_tag(mapped);

		memcpy(host + mapped * PAGE_BYTES, &tag, sizeof(tag));
		err = iovaq_backend_map(be, page[mapped], host + mapped * PAGE_BYTES, PAGE_BYTES,
					IOVAQ_PROT_READ | IOVAQ_PROT_WRITE);
		if (err) {
			ret = bench_error("iovaq_backend_map(0x%" PRIx64 ", 4 KiB) of page %" PRIu64
					  ": %s (%d)", page[mapped], mapped, iovaq_strerror(err), err);
			goto out;
		}
	}

	ret = dma_pass(sim, page, n);		/* warm-up: fills the IOTLB and the PSCs */
	if (ret)
		goto out;
	iovaq_sim_reset_counters(sim);
	for (unsigned int it = 0; it < cfg->iters && !ret; it++)
		ret = dma_pass(sim, page, n);
	if (ret)
		goto out;
	res->c.sz = sizeof(res->c);
	err = iovaq_sim_get_counters(sim, &res->c);
	if (err) {
		ret = bench_error("iovaq_sim_get_counters: %s (%d)", iovaq_strerror(err), err);
		goto out;
	}
	if (res->c.dma_pages != n * cfg->iters || res->c.faults || res->c.stale_hits) {
		ret = bench_error("sim counters disagree with the run: %" PRIu64 " pages read (expected "
				  "%" PRIu64 "), %" PRIu64 " faults, %" PRIu64 " stale hits",
				  res->c.dma_pages, n * cfg->iters, res->c.faults, res->c.stale_hits);
		goto out;
	}

	res->iotlb_miss = per(res->c.iotlb_misses, res->c.dma_pages);
	res->psc_miss = per(res->c.psc_misses[0] + res->c.psc_misses[1] + res->c.psc_misses[2],
			    res->c.dma_pages);
	for (unsigned int l = 0; l < 3; l++)
		res->psc_level[l] = per(res->c.psc_misses[l], res->c.dma_pages);
	res->walk_refs = per(res->c.walk_refs, res->c.dma_pages);
	res->ns = per(res->c.device_ns, res->c.dma_pages);
	res->regions_2m = distinct_regions(page, n, 21, tmp);
	res->regions_1g = distinct_regions(page, n, 30, tmp);
	res->lowest = UINT64_MAX;
	for (uint64_t i = 0; i < n; i++) {
		if (page[i] < res->lowest)
			res->lowest = page[i];
		if (page[i] > res->highest)
			res->highest = page[i];
	}
	res->iotlb_sets = IOVAQ_SIM_DEFAULT_IOTLB_SETS;
	res->iotlb_ways = IOVAQ_SIM_DEFAULT_IOTLB_WAYS;

out:
	/* Tear down as a driver would: unmap, invalidate, and only then free the IOVAs. */
	for (uint64_t i = 0; i < mapped; i++) {
		/* A positive return (page-table pages freed) is success. */
		err = iovaq_backend_unmap(be, page[i], PAGE_BYTES);
		if (err < 0 && !ret)
			ret = bench_error("iovaq_backend_unmap(0x%" PRIx64 "): %s (%d)", page[i],
					  iovaq_strerror(err), err);
	}
	if (mapped) {
		const struct iovaq_inval all = { .kind = IOVAQ_INVAL_DOMAIN };

		err = iovaq_backend_flush(be, &all, 1);
		if (err && !ret)
			ret = bench_error("iovaq_backend_flush(domain): %s (%d)", iovaq_strerror(err),
					  err);
	}
	for (uint64_t k = 0; k < got && b.c; k++) {
		err = iovaq_cache_free(b.c, chunk[k], cfg->chunk);
		if (err && !ret)
			ret = bench_error("iovaq_cache_free(0x%" PRIx64 ", %" PRIu64 "): %s (%d)",
					  chunk[k], cfg->chunk, iovaq_strerror(err), err);
	}
	for (uint64_t k = 0; b.slot && k < b.filled; k++) {
		err = iovaq_cache_free(b.c, b.slot[k] & ~LG_MASK, 1ULL << (b.slot[k] & LG_MASK));
		if (err && !ret)
			ret = bench_error("iovaq_cache_free (background): %s (%d)", iovaq_strerror(err),
					  err);
	}
	iovaq_cache_destroy(b.c);
	iovaq_space_destroy(sp);
	iovaq_backend_close(be);
	free(b.slot);
	free(tmp);
	free(chunk);
	free(page);
	free(host);
	return ret;
}

/* ---- output ------------------------------------------------------------------------------- */

static const char *mode_name(bool nested)
{
	return nested ? "nested" : "native";
}

static void fmt_chunk(char *buf, size_t len, const struct sim_cfg *c)
{
	if (c->pat == PAT_SCATTERED)
		snprintf(buf, len, "1");
	else
		bench_fmt_count(buf, len, c->chunk);
}

static void emit_json(const struct sim_result *r, FILE *f)
{
	static const char *const inval_kind[IOVAQ_INVAL_NR_KINDS] = {
		"pages", "range", "domain", "global",
	};
	const struct sim_cfg *c = &r->cfg;
	const struct iovaq_sim_counters *k = &r->c;
	struct bench_json j;

	bench_json_begin(&j, f);
	bench_json_str(&j, "type", "run");
	bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
	bench_json_str(&j, "version", iovaq_version());
	bench_json_str(&j, "command", "sim");
	bench_json_str(&j, "pattern", pattern_names[c->pat]);
	bench_json_str(&j, "mode", mode_name(c->nested));
	bench_json_bool(&j, "nested", c->nested);
	bench_json_u64(&j, "pages", c->pages);
	bench_json_u64(&j, "chunk_pages", c->chunk);
	bench_json_u64(&j, "chunks", r->chunks);
	bench_json_u64(&j, "iters", c->iters);
	bench_json_u64(&j, "warmup_iters", 1);
	bench_json_u64(&j, "dma_bytes", DMA_BYTES);
	bench_json_u64(&j, "churn", c->churn);
	bench_json_u64(&j, "background_slots", c->churn ? BG_SLOTS : 0);
	bench_json_u64(&j, "seed", c->seed);
	bench_json_u64(&j, "iotlb_sets", r->iotlb_sets);
	bench_json_u64(&j, "iotlb_ways", r->iotlb_ways);
	bench_json_open_array(&j, "psc_entries");
	for (unsigned int l = 0; l < 3; l++)
		bench_json_u64(&j, NULL, IOVAQ_SIM_DEFAULT_PSC_ENTRIES);
	bench_json_close_array(&j);
	bench_json_double(&j, "iotlb_miss_per_page", r->iotlb_miss);
	bench_json_double(&j, "ptcache_miss_per_page", r->psc_miss);
	bench_json_open_array(&j, "ptcache_miss_per_page_by_level");
	for (unsigned int l = 0; l < 3; l++)
		bench_json_double(&j, NULL, r->psc_level[l]);
	bench_json_close_array(&j);
	bench_json_double(&j, "walk_refs_per_page", r->walk_refs);
	bench_json_double(&j, "modeled_ns_per_dma", r->ns);
	bench_json_u64(&j, "regions_2m", r->regions_2m);
	bench_json_u64(&j, "regions_1g", r->regions_1g);
	bench_json_u64(&j, "iova_lowest", r->lowest);
	bench_json_u64(&j, "iova_highest", r->highest);
	bench_json_open(&j, "counters");
	bench_json_u64(&j, "dma_calls", k->dma_calls);
	bench_json_u64(&j, "dma_pages", k->dma_pages);
	bench_json_u64(&j, "iotlb_hits", k->iotlb_hits);
	bench_json_u64(&j, "iotlb_misses", k->iotlb_misses);
	bench_json_open_array(&j, "psc_hits");
	for (unsigned int l = 0; l < 3; l++)
		bench_json_u64(&j, NULL, k->psc_hits[l]);
	bench_json_close_array(&j);
	bench_json_open_array(&j, "psc_misses");
	for (unsigned int l = 0; l < 3; l++)
		bench_json_u64(&j, NULL, k->psc_misses[l]);
	bench_json_close_array(&j);
	bench_json_u64(&j, "walk_refs", k->walk_refs);
	bench_json_u64(&j, "faults", k->faults);
	bench_json_u64(&j, "stale_hits", k->stale_hits);
	bench_json_u64(&j, "bad_leaf_invals", k->bad_leaf_invals);
	bench_json_open(&j, "inval_cmds");
	for (unsigned int i = 0; i < IOVAQ_INVAL_NR_KINDS; i++)
		bench_json_u64(&j, inval_kind[i], k->inval_cmds[i]);
	bench_json_close(&j);
	bench_json_u64(&j, "inval_leaf", k->inval_leaf);
	bench_json_u64(&j, "flushes", k->flushes);
	bench_json_u64(&j, "maps", k->maps);
	bench_json_u64(&j, "unmaps", k->unmaps);
	bench_json_u64(&j, "mapped_pages", k->mapped_pages);
	bench_json_u64(&j, "table_pages", k->table_pages);
	bench_json_u64(&j, "table_pages_freed", k->table_pages_freed);
	bench_json_u64(&j, "traps", k->traps);
	bench_json_u64(&j, "device_ns", k->device_ns);
	bench_json_u64(&j, "cpu_map_ns", k->cpu_map_ns);
	bench_json_u64(&j, "cpu_unmap_ns", k->cpu_unmap_ns);
	bench_json_u64(&j, "cpu_flush_ns", k->cpu_flush_ns);
	bench_json_close(&j);
	bench_json_end(&j);
}

static const char *const csv_head[] = {
	"pattern", "mode", "pages", "chunk_pages", "iters", "churn", "seed", "regions_2m",
	"iotlb_miss_per_page", "ptcache_miss_per_page", "ptcache_miss_per_page_512g",
	"ptcache_miss_per_page_1g", "ptcache_miss_per_page_2m", "walk_refs_per_page",
	"modeled_ns_per_dma", "version", NULL,
};

static void emit_csv(const struct sim_result *r, FILE *f)
{
	const struct sim_cfg *c = &r->cfg;
	char b[16][64];
	unsigned int i = 0;

	snprintf(b[i++], 64, "%s", pattern_names[c->pat]);
	snprintf(b[i++], 64, "%s", mode_name(c->nested));
	snprintf(b[i++], 64, "%" PRIu64, c->pages);
	snprintf(b[i++], 64, "%" PRIu64, c->chunk);
	snprintf(b[i++], 64, "%u", c->iters);
	snprintf(b[i++], 64, "%" PRIu64, c->churn);
	snprintf(b[i++], 64, "%" PRIu64, c->seed);
	snprintf(b[i++], 64, "%" PRIu64, r->regions_2m);
	snprintf(b[i++], 64, "%.6g", r->iotlb_miss);
	snprintf(b[i++], 64, "%.6g", r->psc_miss);
	for (unsigned int l = 0; l < 3; l++)
		snprintf(b[i++], 64, "%.6g", r->psc_level[l]);
	snprintf(b[i++], 64, "%.6g", r->walk_refs);
	snprintf(b[i++], 64, "%.6g", r->ns);
	snprintf(b[i++], 64, "%s", iovaq_version());
	bench_csv_row(f, b, i);
}

static int emit_table(const struct sim_result *rs, unsigned int n, FILE *f)
{
	static const char *const head[] = {
		"pattern", "mode", "pages", "chunk", "2M regions", "IOTLB miss/pg",
		"PSC miss/pg", "by reach 512G/1G/2M", "walk refs/pg", "ns/DMA",
	};
	enum { NCOLS = sizeof(head) / sizeof(head[0]) };
	struct bench_table t;
	int err = 0;

	bench_table_init(&t, NCOLS, head, "llrrrrrrrr");
	for (unsigned int i = 0; i < n && !err; i++) {
		const struct sim_result *r = &rs[i];
		char cell[NCOLS][64];
		const char *row[NCOLS];

		snprintf(cell[0], 64, "%s", pattern_names[r->cfg.pat]);
		snprintf(cell[1], 64, "%s", mode_name(r->cfg.nested));
		bench_fmt_count(cell[2], 64, r->cfg.pages);
		fmt_chunk(cell[3], 64, &r->cfg);
		snprintf(cell[4], 64, "%" PRIu64, r->regions_2m);
		snprintf(cell[5], 64, "%.3f", r->iotlb_miss);
		snprintf(cell[6], 64, "%.3f", r->psc_miss);
		snprintf(cell[7], 64, "%.3f/%.3f/%.3f", r->psc_level[0], r->psc_level[1],
			 r->psc_level[2]);
		snprintf(cell[8], 64, "%.3f", r->walk_refs);
		snprintf(cell[9], 64, "%.1f", r->ns);
		for (unsigned int c = 0; c < NCOLS; c++)
			row[c] = cell[c];
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

/* "a/b = 5.00x", or why there is no finite ratio. */
static void fmt_ratio(char *buf, size_t len, double a, double b, const char *fmt)
{
	char x[32], y[32];

	snprintf(x, sizeof(x), fmt, a);
	snprintf(y, sizeof(y), fmt, b);
	if (b > 0)
		snprintf(buf, len, "%s / %s = %.2fx", x, y, a / b);
	else if (a <= 0)
		snprintf(buf, len, "%s / %s (both none)", x, y);
	else
		snprintf(buf, len, "%s / %s (contiguous has none: no finite ratio)", x, y);
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : NAN;
}

/* The scattered and contiguous rows of one mode, or NULL. */
static void find_pair(const struct sim_result *rs, unsigned int n, bool nested,
		      const struct sim_result **s, const struct sim_result **c)
{
	*s = *c = NULL;
	for (unsigned int i = 0; i < n; i++) {
		if (rs[i].cfg.nested != nested)
			continue;
		if (rs[i].cfg.pat == PAT_SCATTERED)
			*s = &rs[i];
		else
			*c = &rs[i];
	}
}

static void emit_table_notes(const struct sim_result *rs, unsigned int n, FILE *f)
{
	const struct sim_cfg *c = &rs[0].cfg;
	struct iovaq_sim_cost cost;

	if (!n)
		return;
	iovaq_sim_cost_defaults(&cost);
	for (int nested = 0, first = 1; nested < 2; nested++) {
		const struct sim_result *s, *k;
		char a[160], b[160], d[160];

		find_pair(rs, n, nested, &s, &k);
		if (!s || !k)
			continue;
		fmt_ratio(a, sizeof(a), s->psc_miss, k->psc_miss, "%.3f");
		fmt_ratio(b, sizeof(b), s->walk_refs, k->walk_refs, "%.3f");
		fmt_ratio(d, sizeof(d), s->ns, k->ns, "%.1f");
		fprintf(f, "%sscattered/contiguous, %s: PSC misses/pg %s; walk refs/pg %s; "
			   "ns/DMA %s\n", first ? "\n" : "", mode_name(nested), a, b, d);
		first = 0;
	}
	fprintf(f,
		"\nModelled by the sim, not timed: deterministic for a seed. Per page = per DMA (one "
		"%d-byte read per page),\nover %u pass%s after one warm-up pass; IOTLB %ux%u, PSC %u "
		"entries per level, %" PRIu64 " ns per walk reference,\n%" PRIu64 " ns per "
		"translation. PSC misses count every level probed (deepest first) until a hit: 0 to "
		"3 per walk.\nBackground: %s. Seed %" PRIu64 ", libiovaq %s.\n",
		DMA_BYTES, c->iters, c->iters == 1 ? "" : "es", IOVAQ_SIM_DEFAULT_IOTLB_SETS,
		IOVAQ_SIM_DEFAULT_IOTLB_WAYS, IOVAQ_SIM_DEFAULT_PSC_ENTRIES, cost.mem_ref_ns,
		cost.iotlb_hit_ns, c->churn ? "4096 mixed slots" : "none (--churn 0)", c->seed,
		iovaq_version());
	if (c->churn)
		fprintf(f, "%" PRIu64 " churn pairs before the working set, one more per chunk.\n",
			c->churn);
}

static void emit_summary_json(const struct sim_result *rs, unsigned int n, FILE *f)
{
	for (int nested = 0; nested < 2; nested++) {
		const struct sim_result *s, *k;
		struct bench_json j;

		find_pair(rs, n, nested, &s, &k);
		if (!s || !k)
			continue;
		bench_json_begin(&j, f);
		bench_json_str(&j, "type", "summary");
		bench_json_u64(&j, "schema_version", BENCH_SCHEMA_VERSION);
		bench_json_str(&j, "version", iovaq_version());
		bench_json_str(&j, "command", "sim");
		bench_json_str(&j, "mode", mode_name(nested));
		bench_json_bool(&j, "nested", nested);
		bench_json_u64(&j, "pages", s->cfg.pages);
		bench_json_u64(&j, "contiguous_chunk_pages", k->cfg.chunk);
		bench_json_double(&j, "ptcache_miss_per_page_scattered", s->psc_miss);
		bench_json_double(&j, "ptcache_miss_per_page_contiguous", k->psc_miss);
		bench_json_double(&j, "ptcache_miss_ratio", ratio(s->psc_miss, k->psc_miss));
		bench_json_double(&j, "walk_refs_ratio", ratio(s->walk_refs, k->walk_refs));
		bench_json_double(&j, "modeled_ns_ratio", ratio(s->ns, k->ns));
		bench_json_end(&j);
	}
}

/* ---- "sim" subcommand --------------------------------------------------------------------- */

enum {
	O_PATTERN,
	O_PAGES,
	O_CHUNK,
	O_ITERS,
	O_CHURN,
	O_SEED,
	O_NATIVE,
	O_NESTED,
	O_JSON,
	O_CSV,
	O_HELP,
};

static const struct bench_opt sim_opts[] = {
	{ "pattern", 0, "NAME", "scattered or contiguous (default both; may be repeated)",
	  O_PATTERN },
	{ "pages", 0, "N", "pages in the working set, 1..262144 (default 4096)", O_PAGES },
	{ "chunk-pages", 0, "K", "contiguous: pages per chunk, a power of two (default:\n"
				 "--pages rounded up to a power of two: one chunk)", O_CHUNK },
	{ "iters", 0, "N", "counted passes over the pages, 1..1000 (default 4)", O_ITERS },
	{ "churn", 0, "N", "background churn pairs before the working set\n"
			   "(default 65536; 0: no background traffic at all)", O_CHURN },
	{ "seed", 0, "N", "PRNG and sim seed (default 1)", O_SEED },
	{ "native", 0, NULL, "only the native (1-D walk) sim", O_NATIVE },
	{ "nested", 0, NULL, "only the nested (2-D walk) sim", O_NESTED },
	{ "json", 0, NULL, "one JSON object per run, then a summary per mode", O_JSON },
	{ "csv", 0, NULL, "CSV with a header line", O_CSV },
	{ "help", 'h', NULL, "show this help and exit", O_HELP },
	{ NULL, 0, NULL, NULL, 0 },
};

void bench_sim_help(FILE *f)
{
	fprintf(f,
		"Usage: %s sim [--pattern NAME] [--pages N] [--iters N] [--seed N]\n"
		"       %*s [--native] [--nested] [--json | --csv] [OPTIONS]\n"
		"\n"
		"IOVA locality versus IO page-walk cost (F&S, SOSP'24) on the simulated IOMMU:\n"
		"a device reads each of N mapped pages in turn and the sim counts IOTLB misses,\n"
		"paging-structure cache (PSC) misses, walk references and modelled device ns.\n"
		"\n"
		"Patterns:\n"
		"  scattered   N one-page IOVAs as the magazine cache hands them out while\n"
		"              background traffic (4096 slots of issue 2's mixed sizes) churns\n"
		"  contiguous  N pages of one naturally aligned chunk (or chunks of --chunk-pages)\n"
		"Both run on a fresh sim (default IOTLB 64x8, PSC 16 per level), native and\n"
		"nested, and map each page on its own to its own host page. Figures are modelled\n"
		"and deterministic: the same options give the same numbers on any machine.\n"
		"\n"
		"Options:\n",
		BENCH_PROG, (int)strlen(BENCH_PROG) + 4, "");
	bench_print_opts(f, sim_opts);
	fprintf(f,
		"\n"
		"Numbers accept the suffixes k, M, G (10^3, 10^6, 10^9) and eN (1e7).\n"
		"Exit status: 0 success, 1 library or system error, 2 bad usage.\n");
}

static uint64_t pow2_ceil(uint64_t x)
{
	uint64_t p = 1;

	while (p < x)
		p <<= 1;
	return p;
}

int bench_sim_main(int argc, char **argv)
{
	struct bench_args a;
	struct sim_result rs[PAT_NR * 2];
	unsigned int pat_mask = 0, n = 0;
	uint64_t pages = DEFAULT_PAGES, chunk = 0, iters = DEFAULT_ITERS, churn = DEFAULT_CHURN;
	uint64_t seed = DEFAULT_SEED;
	bool native = false, nested = false, json = false, csv = false, have_chunk = false;
	const char *chunk_arg = NULL;
	enum bench_format fmt;
	int id, ret = BENCH_EXIT_OK;

	bench_args_init(&a, argc, argv, 1, "sim", sim_opts);
	while ((id = bench_args_next(&a)) != BENCH_ARG_END) {
		switch (id) {
		case BENCH_ARG_POSITIONAL:
			bench_usage_error("unexpected argument '%s' for sim (options start with --; "
					  "see '%s sim --help')", a.positional, BENCH_PROG);
		case O_PATTERN:
			pat_mask |= 1u << bench_parse_choice(&a, "pattern", pattern_names);
			break;
		case O_PAGES:
			pages = bench_parse_u64(&a, 1, MAX_PAGES);
			break;
		case O_CHUNK:
			chunk = bench_parse_u64(&a, 1, MAX_PAGES);
			if (chunk & (chunk - 1))
				bench_usage_error("invalid value '%s' for --chunk-pages: not a power of "
						  "two (expected 1, 2, 4, ... %llu)", a.value,
						  MAX_PAGES);
			chunk_arg = a.value;
			have_chunk = true;
			break;
		case O_ITERS:
			iters = bench_parse_u64(&a, 1, MAX_ITERS);
			break;
		case O_CHURN:
			churn = bench_parse_u64(&a, 0, MAX_CHURN);
			break;
		case O_SEED:
			seed = bench_parse_u64(&a, 0, UINT64_MAX);
			break;
		case O_NATIVE:
			native = true;
			break;
		case O_NESTED:
			nested = true;
			break;
		case O_JSON:
			json = true;
			break;
		case O_CSV:
			csv = true;
			break;
		case O_HELP:
			bench_sim_help(stdout);
			return BENCH_EXIT_OK;
		}
	}
	if (json && csv)
		bench_usage_error("--json and --csv exclude each other (choose one)");
	if (!pat_mask)
		pat_mask = (1u << PAT_NR) - 1;
	if (!native && !nested)
		native = nested = true;
	if (have_chunk && !(pat_mask & (1u << PAT_CONTIGUOUS)))
		bench_usage_error("--chunk-pages applies to --pattern contiguous only (scattered "
				  "chunks are 1 page)");
	if (have_chunk && chunk > pow2_ceil(pages))
		bench_usage_error("invalid value '%s' for --chunk-pages: larger than --pages %" PRIu64
				  " rounded up to a power of two (expected 1 to %" PRIu64 ")",
				  chunk_arg, pages, pow2_ceil(pages));
	fmt = json ? BENCH_FMT_JSON : csv ? BENCH_FMT_CSV : BENCH_FMT_TABLE;

	for (unsigned int p = 0; p < PAT_NR && !ret; p++) {
		if (!(pat_mask & (1u << p)))
			continue;
		for (int nest = 0; nest < 2 && !ret; nest++) {
			struct sim_cfg cfg = {
				.pat = (enum pattern)p,
				.nested = nest,
				.pages = pages,
				.chunk = p == PAT_SCATTERED ? 1 : have_chunk ? chunk : pow2_ceil(pages),
				.iters = (unsigned int)iters,
				.churn = churn,
				.seed = seed,
			};

			if ((nest && !nested) || (!nest && !native))
				continue;
			bench_progress("sim: %s, %s, %" PRIu64 " pages", pattern_names[p],
				       mode_name(nest), pages);
			ret = run_sim(&cfg, &rs[n]);
			if (ret)
				break;
			if (fmt == BENCH_FMT_JSON)
				emit_json(&rs[n], stdout);
			else if (fmt == BENCH_FMT_CSV) {
				if (!n)
					bench_csv_head(stdout, csv_head);
				emit_csv(&rs[n], stdout);
			}
			n++;
		}
	}
	bench_progress_clear();
	if (ret)
		return ret;
	if (fmt == BENCH_FMT_TABLE) {
		ret = emit_table(rs, n, stdout);
		if (!ret)
			emit_table_notes(rs, n, stdout);
	} else if (fmt == BENCH_FMT_JSON) {
		emit_summary_json(rs, n, stdout);
	}
	return ret;
}
