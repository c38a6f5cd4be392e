// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Multi-threaded stress of one cache and one space.
 *
 * Ownership is checked with a shared atomic bitmap over the aperture: a thread that gets a
 * range sets its granules with __atomic_fetch_or and every one of them must have been clear;
 * it clears them (and they must all have been set) before it frees the range. The granules
 * of the MSI hole are set from the start, so a range touching the hole fails the same way.
 * Thus any IOVA handed to two holders at once, or any hole handed out, is caught at once.
 *
 * Deterministic per-thread seeds (printed; IOVAQ_SEED overrides the base), sizes scaled by
 * IOVAQ_TEST_SCALE. Assertions run only on the main thread: workers record the first failure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <time.h>

#include "testutil.h"

#define G ((uint64_t)IOVAQ_DEFAULT_GRANULE)
#define MiB ((uint64_t)1 << 20)

/* [4 GiB - 512 MiB, 4 GiB + 512 MiB): 2^18 granules, crossing 4 GiB, holding the MSI hole. */
#define AP_START (0x100000000ULL - 512 * MiB)
#define AP_GRANULES ((uint64_t)1 << 18)
#define AP_LAST (AP_START + AP_GRANULES * G - 1)
#define BM_WORDS (AP_GRANULES / 64)
#define MAX_CLASS 512

struct shared {
	struct iovaq_space *sp;
	struct iovaq_cache *c;
	uint64_t bm[BM_WORDS];
	uint64_t holes[BM_WORDS];
	int failed; /* atomic */
	int stop; /* atomic: workers finished (for the monitor) */
	pthread_mutex_t msg_mu;
	char msg[512];
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

static uint64_t rounded(uint64_t n)
{
	return n <= MAX_CLASS ? tu_roundup_pow2(n) : n;
}

/* Claim (set) or release (clear) the granules of [iova, iova + n granules). */
static int mark(iovaq_iova_t iova, uint64_t n, int set, const char *who)
{
	uint64_t first, left;

	if (iova < AP_START || iova % G || n > AP_GRANULES || iova + n * G - 1 > AP_LAST) {
		fail("%s: range 0x%" PRIx64 "+%" PRIu64 " outside the aperture", who, iova, n);
		return -1;
	}
	first = (iova - AP_START) / G;
	left = n;
	while (left) {
		uint64_t w = first >> 6, b = first & 63;
		uint64_t k = 64 - b < left ? 64 - b : left;
		uint64_t mask = (k == 64 ? ~0ULL : ((1ULL << k) - 1)) << b, old;

		if (set) {
			old = __atomic_fetch_or(&S.bm[w], mask, __ATOMIC_ACQ_REL);
			if (old & mask) {
				fail("%s: 0x%" PRIx64 "+%" PRIu64 " overlaps a range held elsewhere "
				     "or a hole (word %" PRIu64 " had 0x%" PRIx64 ")",
				     who, iova, n, w, old & mask);
				return -1;
			}
		} else {
			old = __atomic_fetch_and(&S.bm[w], ~mask, __ATOMIC_ACQ_REL);
			if ((old & mask) != mask) {
				fail("%s: releasing 0x%" PRIx64 "+%" PRIu64 " found granules not held",
				     who, iova, n);
				return -1;
			}
		}
		first += k;
		left -= k;
	}
	return 0;
}

static uint64_t pick_size(struct tu_rng *r)
{
	uint64_t x = tu_below(r, 1000);

	if (x < 700)
		return 1;
	if (x < 850)
		return tu_below(r, 2) ? 2 : 4;
	if (x < 950)
		return (uint64_t)8 << tu_below(r, 3); /* 8, 16, 32 */
	if (x < 990)
		return 3 + 2 * tu_below(r, 10); /* odd sizes, rounded by the cache */
	if (x < 998)
		return (uint64_t)64 << tu_below(r, 3); /* 64 .. 256 */
	return 600 + tu_below(r, 200); /* above the largest class: the space directly */
}

static void setup(uint32_t flags)
{
	struct iovaq_range ap = { AP_START, AP_LAST };
	struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	IOVAQ_OPTS(iovaq_space_opts, so, .apertures = &ap, .n_apertures = 1, .reserved = &msi,
		   .n_reserved = 1);
	IOVAQ_OPTS(iovaq_cache_opts, co, .max_cached_granules = MAX_CLASS, .flags = flags);

	memset(&S, 0, sizeof(S));
	pthread_mutex_init(&S.msg_mu, NULL);
	cr_assert_eq(iovaq_space_create(&so, &S.sp), 0);
	cr_assert_eq(iovaq_cache_create(S.sp, &co, &S.c), 0);
	/* pre-claim the hole: a range touching it then fails in mark() */
	cr_assert_eq(mark(IOVAQ_X86_MSI_START, 256, 1, "setup"), 0);
	memcpy(S.holes, S.bm, sizeof(S.holes));
}

static void finish(void)
{
	struct iovaq_stats st;
	int err;

	cr_assert(!failed(), "%s", S.msg);
	iovaq_cache_drain(S.c);
	err = iovaq_cache_check(S.c);
	cr_assert_eq(err, 0, "iovaq_cache_check after the run: %d", err);
	st = tu_cache_stats(S.c);
	cr_assert_eq(st.cached_granules, 0, "%" PRIu64 " granules cached after join and drain",
		     st.cached_granules);
	cr_assert_eq(st.allocated_granules, 0, "%" PRIu64 " granules still allocated",
		     st.allocated_granules);
	cr_assert_eq(st.free_granules, AP_GRANULES - 256, "free %" PRIu64, st.free_granules);
	cr_assert_eq(memcmp(S.bm, S.holes, sizeof(S.bm)), 0, "ownership bitmap not back to holes");
	iovaq_cache_destroy(S.c);
	cr_assert_eq(iovaq_space_check(S.sp), 0);
	iovaq_space_destroy(S.sp);
	pthread_mutex_destroy(&S.msg_mu);
}

/* ---- FIFO ring with random frees --------------------------------------------------------- */

#define RING 256

struct worker {
	pthread_t t;
	int id;
	uint64_t seed, ops, enospc, allocs;
};

struct held {
	iovaq_iova_t iova;
	uint64_t n;
};

static int release(struct held *h, const char *who)
{
	int err;

	if (mark(h->iova, rounded(h->n), 0, who))
		return -1;
	err = iovaq_cache_free(S.c, h->iova, h->n);
	if (err) {
		fail("%s: free(0x%" PRIx64 ", %" PRIu64 "): %d", who, h->iova, h->n, err);
		return -1;
	}
	h->n = 0;
	return 0;
}

static void *ring_worker(void *p)
{
	struct worker *w = p;
	struct held ring[RING];
	struct tu_rng r;
	unsigned head = 0, count = 0; /* FIFO: oldest at head */
	char who[32];

	snprintf(who, sizeof(who), "thread %d", w->id);
	memset(ring, 0, sizeof(ring));
	tu_rng_init(&r, w->seed);
	for (uint64_t op = 0; op < w->ops && !failed(); op++) {
		uint64_t x = tu_below(&r, 100);

		if (count == RING || (count && x < 45)) {
			/* free the oldest, or (1 in 4) a random live one */
			unsigned k = head;
			if (x < 11 && count > 1)
				k = (head + (unsigned)tu_below(&r, count)) % RING;
			if (release(&ring[k], who))
				break;
			/* keep the ring dense: move the oldest into the hole */
			if (k != head)
				ring[k] = ring[head];
			ring[head].n = 0;
			head = (head + 1) % RING;
			count--;
			continue;
		}
		uint64_t n = pick_size(&r);
		iovaq_iova_t limit = tu_below(&r, 10) == 0 ? 0xffffffffULL : IOVAQ_LIMIT_NONE;
		iovaq_iova_t iova;
		int err = iovaq_cache_alloc(S.c, n, limit, &iova);

		if (err == -ENOSPC) {
			w->enospc++;
			continue;
		}
		if (err) {
			fail("%s: alloc(%" PRIu64 "): %d", who, n, err);
			break;
		}
		uint64_t rn = rounded(n);
		if (tu_is_pow2(rn) && iova % (rn * G)) {
			fail("%s: 0x%" PRIx64 " not aligned to %" PRIu64 " granules", who, iova, rn);
			break;
		}
		if (iova + rn * G - 1 > limit) {
			fail("%s: 0x%" PRIx64 "+%" PRIu64 " beyond limit 0x%" PRIx64, who, iova, rn,
			     limit);
			break;
		}
		if (mark(iova, rn, 1, who))
			break;
		ring[(head + count) % RING] = (struct held){ iova, n };
		count++;
		w->allocs++;
	}
	while (count && !failed()) {
		if (release(&ring[head], who))
			break;
		head = (head + 1) % RING;
		count--;
	}
	return NULL;
}

/*
 * Runs beside the workers: reads stats (space fields are taken under the space lock, so they
 * add up even mid-run) and now and then drains the cache, which other threads must notice.
 */
static void *monitor(void *p)
{
	uint64_t rounds = 0;

	(void)p;
	while (!__atomic_load_n(&S.stop, __ATOMIC_ACQUIRE) && !failed()) {
		IOVAQ_OPTS(iovaq_stats, st);
		int err = iovaq_cache_stats(S.c, &st);

		if (err) {
			fail("monitor: stats %d", err);
			break;
		}
		if (st.free_granules + st.allocated_granules + st.reserved_granules !=
		    st.total_granules) {
			fail("monitor: free %" PRIu64 " + allocated %" PRIu64 " + reserved %" PRIu64
			     " != total %" PRIu64,
			     st.free_granules, st.allocated_granules, st.reserved_granules,
			     st.total_granules);
			break;
		}
		if (++rounds % 8 == 0)
			iovaq_cache_drain(S.c);
		sched_yield();
		struct timespec ts = { 0, 200000 };
		nanosleep(&ts, NULL);
	}
	return NULL;
}

static void run_ring(int nthreads, uint32_t flags, const char *name)
{
	struct worker w[8];
	pthread_t mon;
	uint64_t base = tu_seed(name, 0x5eed0000ULL), ops = tu_scaled(1000000, 20000);
	uint64_t enospc = 0, allocs = 0;

	setup(flags);
	cr_assert_eq(pthread_create(&mon, NULL, monitor, NULL), 0);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){ .id = i, .seed = base + (uint64_t)i * (uint64_t)0x9e3779b9,
					.ops = ops };
		cr_assert_eq(pthread_create(&w[i].t, NULL, ring_worker, &w[i]), 0);
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(w[i].t, NULL);
		enospc += w[i].enospc;
		allocs += w[i].allocs;
	}
	__atomic_store_n(&S.stop, 1, __ATOMIC_RELEASE);
	pthread_join(mon, NULL);
	fprintf(stderr, "%s: %d threads x %" PRIu64 " ops: %" PRIu64 " allocs, %" PRIu64
		" -ENOSPC\n", name, nthreads, ops, allocs, enospc);
	cr_assert(!failed(), "%s", S.msg);
	cr_assert_gt(allocs, ops / 4 * (uint64_t)nthreads, "too few allocations: %" PRIu64,
		     allocs);
	finish();
}

Test(stress, ring_2_threads, .timeout = 600)
{
	run_ring(2, 0, "stress::ring_2_threads");
}

Test(stress, ring_2_threads_no_front, .timeout = 600)
{
	run_ring(2, IOVAQ_CACHE_NO_FRONT, "stress::ring_2_threads_no_front");
}

Test(stress, ring_4_threads, .timeout = 600)
{
	if (tu_scale() < 1.0)
		cr_skip_test("4 threads only at IOVAQ_TEST_SCALE >= 1");
	run_ring(4, 0, "stress::ring_4_threads");
}

/* ---- cross-thread frees ------------------------------------------------------------------ */

#define QCAP 256

struct queue {
	pthread_mutex_t mu;
	pthread_cond_t not_empty, not_full;
	struct held q[QCAP];
	unsigned head, count;
	int done;
};

static struct queue Q;

static void q_push(struct held h)
{
	pthread_mutex_lock(&Q.mu);
	while (Q.count == QCAP)
		pthread_cond_wait(&Q.not_full, &Q.mu);
	Q.q[(Q.head + Q.count) % QCAP] = h;
	Q.count++;
	pthread_cond_signal(&Q.not_empty);
	pthread_mutex_unlock(&Q.mu);
}

/* 1 with an entry, 0 when the producer is done and the queue is empty. */
static int q_pop(struct held *h)
{
	pthread_mutex_lock(&Q.mu);
	while (!Q.count && !Q.done)
		pthread_cond_wait(&Q.not_empty, &Q.mu);
	if (!Q.count) {
		pthread_mutex_unlock(&Q.mu);
		return 0;
	}
	*h = Q.q[Q.head];
	Q.head = (Q.head + 1) % QCAP;
	Q.count--;
	pthread_cond_signal(&Q.not_full);
	pthread_mutex_unlock(&Q.mu);
	return 1;
}

static void *producer(void *p)
{
	struct worker *w = p;
	struct tu_rng r;

	tu_rng_init(&r, w->seed);
	for (uint64_t op = 0; op < w->ops && !failed(); op++) {
		uint64_t n = pick_size(&r);
		iovaq_iova_t iova;
		int err = iovaq_cache_alloc(S.c, n, IOVAQ_LIMIT_NONE, &iova);

		if (err == -ENOSPC) {
			/* the consumer's front may hold it all for a moment */
			w->enospc++;
			sched_yield();
			continue;
		}
		if (err) {
			fail("producer: alloc(%" PRIu64 "): %d", n, err);
			break;
		}
		if (mark(iova, rounded(n), 1, "producer"))
			break;
		q_push((struct held){ iova, n });
		w->allocs++;
	}
	pthread_mutex_lock(&Q.mu);
	Q.done = 1;
	pthread_cond_broadcast(&Q.not_empty);
	pthread_mutex_unlock(&Q.mu);
	return NULL;
}

static void *consumer(void *p)
{
	struct held h;

	(void)p;
	while (q_pop(&h)) {
		if (failed())
			continue; /* keep draining so the producer never blocks */
		(void)release(&h, "consumer");
	}
	return NULL;
}

static void run_cross(uint32_t flags, const char *name)
{
	struct worker prod = { .id = 0 };
	pthread_t cons;

	setup(flags);
	memset(&Q, 0, sizeof(Q));
	pthread_mutex_init(&Q.mu, NULL);
	pthread_cond_init(&Q.not_empty, NULL);
	pthread_cond_init(&Q.not_full, NULL);
	prod.seed = tu_seed(name, 0xc0ffee00ULL);
	prod.ops = tu_scaled(1000000, 20000);
	cr_assert_eq(pthread_create(&cons, NULL, consumer, NULL), 0);
	cr_assert_eq(pthread_create(&prod.t, NULL, producer, &prod), 0);
	pthread_join(prod.t, NULL);
	pthread_join(cons, NULL);
	fprintf(stderr, "%s: %" PRIu64 " handed across, %" PRIu64 " -ENOSPC\n", name, prod.allocs,
		prod.enospc);
	cr_assert(!failed(), "%s", S.msg);
	cr_assert_gt(prod.allocs, prod.ops / 2, "too few allocations: %" PRIu64, prod.allocs);
	pthread_mutex_destroy(&Q.mu);
	pthread_cond_destroy(&Q.not_empty);
	pthread_cond_destroy(&Q.not_full);
	finish();
}

Test(stress, cross_thread_frees, .timeout = 600)
{
	run_cross(0, "stress::cross_thread_frees");
}

Test(stress, cross_thread_frees_no_front, .timeout = 600)
{
	run_cross(IOVAQ_CACHE_NO_FRONT, "stress::cross_thread_frees_no_front");
}

Test(stress, cross_thread_frees_checked, .timeout = 600)
{
	run_cross(IOVAQ_CACHE_CHECKED, "stress::cross_thread_frees_checked");
}

/* ---- thread exit racing with destroy ---------------------------------------------------- */

/*
 * "threads that used @c may still be running or exit at any time" (iovaq_cache_destroy):
 * workers finish their calls, say so, and exit; the main thread destroys the cache as soon as
 * every worker is done calling, so the workers' exit paths race with the destroy.
 */
struct exiter {
	pthread_t t;
	struct iovaq_cache *c;
	uint64_t seed;
	int *done; /* atomic counter */
	int err;
};

static void *exiter_fn(void *p)
{
	struct exiter *x = p;
	struct tu_rng r;
	iovaq_iova_t iova[16];
	uint64_t n[16];
	int err = 0;

	tu_rng_init(&r, x->seed);
	for (int i = 0; i < 16 && !err; i++) {
		n[i] = 1 + tu_below(&r, 8);
		err = iovaq_cache_alloc(x->c, n[i], IOVAQ_LIMIT_NONE, &iova[i]);
	}
	for (int i = 0; i < 16 && !err; i++)
		err = iovaq_cache_free(x->c, iova[i], n[i]);
	x->err = err;
	__atomic_add_fetch(x->done, 1, __ATOMIC_RELEASE);
	return NULL; /* the thread-exit path runs now, maybe after the destroy */
}

Test(stress, thread_exit_races_destroy, .timeout = 600)
{
	struct iovaq_range ap = { AP_START, AP_LAST };
	IOVAQ_OPTS(iovaq_space_opts, so, .apertures = &ap, .n_apertures = 1);
	uint64_t rounds = tu_scaled(200, 20), seed = tu_seed("stress::thread_exit_races_destroy",
							       0xe817ULL);
	struct iovaq_space *sp = NULL;

	cr_assert_eq(iovaq_space_create(&so, &sp), 0);
	for (uint64_t round = 0; round < rounds; round++) {
		struct exiter x[4];
		int done = 0;
		IOVAQ_OPTS(iovaq_cache_opts, co, .flags = (round & 1) ? IOVAQ_CACHE_NO_FRONT : 0);
		struct iovaq_cache *c = NULL;

		cr_assert_eq(iovaq_cache_create(sp, &co, &c), 0);
		for (int i = 0; i < 4; i++) {
			x[i] = (struct exiter){ .c = c, .seed = seed + round * 4 + (uint64_t)i,
						.done = &done };
			cr_assert_eq(pthread_create(&x[i].t, NULL, exiter_fn, &x[i]), 0);
		}
		while (__atomic_load_n(&done, __ATOMIC_ACQUIRE) < 4)
			sched_yield();
		iovaq_cache_destroy(c);
		for (int i = 0; i < 4; i++) {
			pthread_join(x[i].t, NULL);
			cr_assert_eq(x[i].err, 0, "round %" PRIu64 " thread %d: %d", round, i,
				     x[i].err);
		}
		struct iovaq_stats st = tu_space_stats(sp);
		cr_assert_eq(st.allocated_granules, 0,
			     "round %" PRIu64 ": %" PRIu64 " granules lost between exit and destroy",
			     round, st.allocated_granules);
		cr_assert_eq(iovaq_space_check(sp), 0, "round %" PRIu64, round);
	}
	iovaq_space_destroy(sp);
}
