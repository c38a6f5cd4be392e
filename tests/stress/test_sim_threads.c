// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The simulated device racing map, unmap and flush on one sim (include/iovaq/sim.h: "DMA may
 * race with map, unmap and flush").
 *
 * Slots are fixed IOVA ranges with fixed host buffers whose every byte is the slot's tag; the
 * device only ever writes a slot's own tag, so any byte that reaches another slot's buffer, or
 * any read that returns something else, is caught. Mutator threads map and unmap their slots
 * (exactly, or with an unmap covering the slot's whole 2 MiB region, which frees its level-1
 * table), and flush (page-selective, domain, global, leaf-only when that is correct, or not at
 * all for a while, leaving stale translations). The device thread accepts only 0 or -EFAULT,
 * checks every byte it read without a stale hit, and sums its outcomes; at the end the sim's
 * counters must match those sums and the mutators' counts, and after unmapping everything
 * (one unmap over the whole 512 GiB span) and a domain flush, only the root table is left.
 *
 * Deterministic per-thread seeds (printed; IOVAQ_SEED overrides the base), sizes scaled by
 * IOVAQ_TEST_SCALE. Assertions run only on the main thread: workers record the first failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdarg.h>

#include "testutil.h"
#include "simutil.h"

#define G TU_G
#define MiB TU_MiB
#define GiB TU_GiB
#define TiB TU_TiB
#define RW (IOVAQ_PROT_READ | IOVAQ_PROT_WRITE)

#define BASE (4 * TiB) /* 512 GiB-aligned: one level-3 table holds every slot */
#define NSLOT 32
#define MAX_PAGES 4
#define MAX_MUT 2

/*
 * Slot i: 1 + i % 4 pages. Even slots are alone in their 2 MiB region (in four 1 GiB
 * regions); odd slots share a 2 MiB region with the next odd slot.
 */
struct slot {
	iovaq_iova_t iova;
	uint64_t len;
	uint8_t *host;
	uint8_t tag;
	int alone;
	/* owned by its mutator */
	int mapped;
};

struct mut_stats {
	uint64_t maps, unmaps, freed, flushes, cmds[IOVAQ_INVAL_NR_KINDS], leaf;
};

struct dev_stats {
	uint64_t calls, pages, stale, misses, refs, ns, faults, drained;
	uint64_t reasons[5]; /* drained fault-log entries per reason */
};

struct shared {
	struct iovaq_backend *be;
	struct iovaq_sim *sim;
	struct slot slots[NSLOT];
	int nmut;
	int stop; /* atomic: mutators done */
	int failed; /* atomic */
	pthread_mutex_t msg_mu;
	char msg[512];
	struct mut_stats ms[MAX_MUT];
	struct dev_stats ds;
	uint64_t seed;
	uint64_t mut_iters;
};

static struct shared S;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&S.msg_mu);
	if (!__atomic_load_n(&S.failed, __ATOMIC_RELAXED)) {
		va_start(ap, fmt);
		vsnprintf(S.msg, sizeof(S.msg), fmt, ap);
		va_end(ap);
		__atomic_store_n(&S.failed, 1, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&S.msg_mu);
}

static int failed(void)
{
	return __atomic_load_n(&S.failed, __ATOMIC_ACQUIRE);
}

static void setup(int nmut)
{
	IOVAQ_OPTS(iovaq_sim_opts, so, .iotlb_sets = 16, .iotlb_ways = 4,
		   .psc_entries = { 4, 8, 16 }, .seed = 7);

	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.msg_mu, NULL);
	S.nmut = nmut;
	S.be = tu_sim_open(&so, NULL);
	S.sim = iovaq_sim_of(S.be);
	S.seed = tu_seed("sim_threads", 0x51af00d);
	S.mut_iters = tu_scaled(20000, 400);
	for (int i = 0; i < NSLOT; i++) {
		struct slot *sl = &S.slots[i];

		sl->len = (1 + (uint64_t)(i % MAX_PAGES)) * G;
		sl->alone = !(i & 1);
		if (sl->alone)
			sl->iova = BASE + (uint64_t)(i % 8) * GiB + (uint64_t)(i / 8) * 2 * MiB;
		else
			sl->iova = BASE + 16 * GiB + (uint64_t)(i / 4) * 2 * MiB +
				   (uint64_t)((i / 2) % 2) * 64 * 1024;
		sl->tag = (uint8_t)(i + 1);
		sl->host = tu_host(MAX_PAGES * G, G, 0);
		memset(sl->host, sl->tag, MAX_PAGES * G);
	}
}

static void teardown(void)
{
	iovaq_backend_close(S.be);
	for (int i = 0; i < NSLOT; i++)
		free(S.slots[i].host);
	pthread_mutex_destroy(&S.msg_mu);
}

/* ---- mutators --------------------------------------------------------------------------- */

struct mut_arg {
	int id;
	int leaf_ok; /* may use leaf-only commands */
};

static int do_flush(struct mut_stats *ms, const struct iovaq_inval *c, size_t n)
{
	int err = iovaq_backend_flush(S.be, c, n);

	if (err) {
		fail("flush of %zu commands: %d", n, err);
		return err;
	}
	ms->flushes++;
	for (size_t i = 0; i < n; i++) {
		ms->cmds[c[i].kind]++;
		ms->leaf += (c[i].flags & IOVAQ_INVAL_LEAF) != 0;
	}
	return 0;
}

static void *mutator(void *arg)
{
	const struct mut_arg *a = arg;
	struct mut_stats *ms = &S.ms[a->id];
	struct tu_rng rng;
	int pending_freed = 0; /* a table freed since the last domain-wide command */

	tu_rng_init(&rng, S.seed + 1000 + (uint64_t)a->id);
	for (uint64_t it = 0; it < S.mut_iters && !failed(); it++) {
		/* Mutator k owns the slots with i % nmut == k. */
		int i = (int)tu_below(&rng, (uint64_t)(NSLOT / S.nmut)) * S.nmut + a->id;
		struct slot *sl = &S.slots[i];
		iovaq_iova_t iova = sl->iova;
		uint64_t len = sl->len;
		struct iovaq_inval c;
		int err;

		if (!sl->mapped) {
			unsigned int prot = tu_below(&rng, 8) ? RW : IOVAQ_PROT_READ;

			err = iovaq_backend_map(S.be, iova, sl->host, len, prot);
			if (err) {
				fail("map slot %d: %d", i, err);
				break;
			}
			sl->mapped = 1;
			ms->maps++;
			continue;
		}
		if (sl->alone && tu_below(&rng, 2)) {
			iova &= ~(2 * MiB - 1); /* the whole 2 MiB region: frees its table */
			len = 2 * MiB;
		}
		err = iovaq_backend_unmap(S.be, iova, len);
		if (err < 0 || err > IOVAQ_UNMAP_FREED_TABLES) {
			fail("unmap slot %d 0x%" PRIx64 "+0x%" PRIx64 ": %d", i, iova, len, err);
			break;
		}
		sl->mapped = 0;
		ms->unmaps++;
		if (err == IOVAQ_UNMAP_FREED_TABLES) {
			ms->freed++;
			pending_freed = 1;
		}
		/* Give the device a turn while things are in flux. */
		if (tu_below(&rng, 2))
			sched_yield();
		switch (tu_below(&rng, 20)) {
		case 0 ... 7:
			c = tu_inval_pages(iova & ~((G << tu_am_for(iova, len, NULL)) - 1),
					   tu_am_for(iova, len, NULL), 0);
			break;
		case 8:
			c = tu_inval_kind(IOVAQ_INVAL_DOMAIN);
			pending_freed = 0;
			break;
		case 9:
			c = tu_inval_kind(IOVAQ_INVAL_GLOBAL);
			pending_freed = 0;
			break;
		case 10 ... 13:
			if (a->leaf_ok && !pending_freed) {
				c = tu_inval_pages(iova, 0, 1);
				c.am = (uint8_t)tu_am_for(iova, len, NULL);
				c.iova = iova & ~((G << c.am) - 1);
				break;
			}
			/* fall through */
		default:
			continue; /* no flush yet: stale translations stay */
		}
		if (do_flush(ms, &c, 1))
			break;
	}
	return NULL;
}

/* ---- device ----------------------------------------------------------------------------- */

static void check_faults(struct dev_stats *ds)
{
	struct iovaq_fault f[64];
	int n = iovaq_backend_faults(S.be, f, 64);

	if (n < 0) {
		fail("iovaq_backend_faults: %d", n);
		return;
	}
	for (int i = 0; i < n; i++) {
		if (f[i].reason != IOVAQ_FAULT_NOT_MAPPED && f[i].reason != IOVAQ_FAULT_PERM &&
		    f[i].reason != IOVAQ_FAULT_STALE_TABLE)
			fail("fault-log entry at 0x%" PRIx64 " with reason %u", f[i].iova,
			     f[i].reason);
		else
			ds->reasons[f[i].reason]++;
	}
	ds->drained += (uint64_t)n;
}

static void *device(void *arg)
{
	struct dev_stats *ds = &S.ds;
	struct tu_rng rng;
	uint8_t buf[MAX_PAGES * G];

	(void)arg;
	tu_rng_init(&rng, S.seed);
	while (!failed()) {
		int done = __atomic_load_n(&S.stop, __ATOMIC_ACQUIRE);
		int i = (int)tu_below(&rng, NSLOT);
		const struct slot *sl = &S.slots[i];
		uint64_t off = tu_below(&rng, sl->len), len = 1 + tu_below(&rng, sl->len - off);
		int write = (int)tu_below(&rng, 3) == 0;
		struct iovaq_sim_access r;
		int err;

		memset(&r, 0, sizeof(r));
		if (write)
			memset(buf, sl->tag, len);
		else
			memset(buf, 0, len);
		err = iovaq_sim_dma(S.sim, sl->iova + off, buf, len, write, &r);
		if (err && err != -EFAULT) {
			fail("device %s slot %d: %d", write ? "write" : "read", i, err);
			break;
		}
		ds->calls++;
		ds->pages += r.pages;
		ds->stale += r.stale_pages;
		ds->misses += r.iotlb_misses;
		ds->refs += r.walk_refs;
		ds->ns += r.modeled_ns;
		ds->faults += err != 0;
		if (r.pages > (len + ((sl->iova + off) & (G - 1)) + G - 1) / G)
			fail("slot %d: %" PRIu64 " granules translated for %" PRIu64 " bytes", i,
			     r.pages, len);
		if (!write && !r.stale_pages) {
			/* Bytes of the translated granules: all of them, or up to the fault. */
			uint64_t got = len;

			if (err)
				got = r.pages ? r.pages * G - ((sl->iova + off) & (G - 1)) : 0;

			if (got > len)
				got = len;
			for (uint64_t b = 0; b < got; b++) {
				if (buf[b] != sl->tag) {
					fail("slot %d read byte %" PRIu64 " = 0x%02x, tag 0x%02x",
					     i, b, buf[b], sl->tag);
					break;
				}
			}
		}
		if ((ds->calls & 63) == 0)
			check_faults(ds);
		if (done && ds->calls >= 1000) /* and a last look at the final state */
			break;
	}
	check_faults(ds);
	return NULL;
}

/* ---- the tests -------------------------------------------------------------------------- */

static void run(int nmut, int leaf_ok)
{
	pthread_t dev, mut[MAX_MUT];
	struct mut_arg args[MAX_MUT];
	struct iovaq_sim_counters c;
	struct mut_stats tot;
	uint64_t maps, unmaps;
	int err;

	setup(nmut);
	cr_assert_eq(pthread_create(&dev, NULL, device, NULL), 0);
	for (int k = 0; k < nmut; k++) {
		args[k] = (struct mut_arg){ k, leaf_ok };
		cr_assert_eq(pthread_create(&mut[k], NULL, mutator, &args[k]), 0);
	}
	for (int k = 0; k < nmut; k++)
		cr_assert_eq(pthread_join(mut[k], NULL), 0);
	__atomic_store_n(&S.stop, 1, __ATOMIC_RELEASE);
	cr_assert_eq(pthread_join(dev, NULL), 0);
	cr_assert(!S.failed, "%s", S.msg);

	memset(&tot, 0, sizeof(tot));
	for (int k = 0; k < nmut; k++) {
		tot.maps += S.ms[k].maps;
		tot.unmaps += S.ms[k].unmaps;
		tot.freed += S.ms[k].freed;
		tot.flushes += S.ms[k].flushes;
		tot.leaf += S.ms[k].leaf;
		for (int j = 0; j < IOVAQ_INVAL_NR_KINDS; j++)
			tot.cmds[j] += S.ms[k].cmds[j];
	}
	c = tu_counters(S.sim);
	cr_assert_eq(c.dma_calls, S.ds.calls);
	cr_assert_eq(c.dma_pages, S.ds.pages);
	cr_assert_eq(c.stale_hits, S.ds.stale);
	cr_assert_eq(c.iotlb_misses, S.ds.misses);
	cr_assert_eq(c.walk_refs, S.ds.refs);
	cr_assert_eq(c.device_ns, S.ds.ns);
	cr_assert_eq(c.faults, S.ds.faults);
	cr_assert_eq(c.iotlb_hits + c.iotlb_misses, S.ds.pages + S.ds.faults,
		     "every translation is a hit or a miss: %" PRIu64 " + %" PRIu64 " != %" PRIu64
		     " + %" PRIu64,
		     c.iotlb_hits, c.iotlb_misses, S.ds.pages, S.ds.faults);
	cr_assert_leq(S.ds.drained, S.ds.faults);
	cr_assert_eq(c.maps, tot.maps);
	cr_assert_eq(c.unmaps, tot.unmaps);
	cr_assert_eq(c.flushes, tot.flushes);
	for (int j = 0; j < IOVAQ_INVAL_NR_KINDS; j++)
		cr_assert_eq(c.inval_cmds[j], tot.cmds[j], "inval_cmds[%d]", j);
	cr_assert_eq(c.inval_leaf, tot.leaf);
	cr_assert_eq(c.bad_leaf_invals, 0, "a leaf-only command was issued only when correct");
	cr_assert_gt(tot.maps, S.mut_iters / 4);
	cr_assert_gt(tot.freed, 0, "no unmap freed a table");
	cr_assert_gt(S.ds.calls, 0);
	cr_assert_gt(S.ds.faults, 0, "the device never faulted");
	cr_assert_gt(S.ds.pages, 0, "the device never translated");
	fprintf(stderr,
		"sim_threads: %d mutators, %" PRIu64 " maps, %" PRIu64 " tables freed; "
		"%" PRIu64 " device accesses, %" PRIu64 " faults (logged: %" PRIu64 " not mapped, "
		"%" PRIu64 " permission, %" PRIu64 " stale table), %" PRIu64 " stale granules\n",
		nmut, tot.maps, tot.freed, S.ds.calls, S.ds.faults,
		S.ds.reasons[IOVAQ_FAULT_NOT_MAPPED], S.ds.reasons[IOVAQ_FAULT_PERM],
		S.ds.reasons[IOVAQ_FAULT_STALE_TABLE], S.ds.stale);

	/* No byte of any buffer was written with another slot's tag. */
	for (int i = 0; i < NSLOT; i++)
		for (uint64_t b = 0; b < MAX_PAGES * G; b++)
			cr_assert_eq(S.slots[i].host[b], S.slots[i].tag,
				     "slot %d byte %" PRIu64 " is 0x%02x", i, b,
				     S.slots[i].host[b]);

	/* Unmap everything: one unmap over the 512 GiB span (it must hold a mapping). */
	maps = tot.maps;
	unmaps = tot.unmaps;
	if (!S.slots[0].mapped) {
		EXPECT_OK(iovaq_backend_map(S.be, S.slots[0].iova, S.slots[0].host, S.slots[0].len,
					    RW));
		maps++;
	}
	tu_faults(S.be, NULL, 0);
	{
		struct iovaq_fault f[64];

		while (tu_faults(S.be, f, 64) > 0)
			;
	}
	err = iovaq_backend_unmap(S.be, BASE, 512 * GiB);
	cr_assert_eq(err, IOVAQ_UNMAP_FREED_TABLES, "unmap of the whole span: %d", err);
	unmaps++;
	tu_flush_domain(S.be);
	c = tu_counters(S.sim);
	cr_assert_eq(c.maps, maps);
	cr_assert_eq(c.unmaps, unmaps);
	cr_assert_eq(c.mapped_pages, 0);
	for (int i = 0; i < NSLOT; i++)
		tu_dma_faults(S.be, S.slots[i].iova, 0, IOVAQ_FAULT_NOT_MAPPED);
	cr_assert_eq(c.table_pages, 1, "%" PRIu64 " table pages after unmapping everything",
		     c.table_pages);
	teardown();
}

/* One device thread against one thread that maps, unmaps and flushes. */
Test(sim_threads, dma_races_map_unmap_flush, .timeout = 120)
{
	run(1, 1);
}

/* Two threads map, unmap and flush their own slots concurrently, with the device racing. */
Test(sim_threads, two_mutators, .timeout = 120)
{
	run(2, 0);
}
