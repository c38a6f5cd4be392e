// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * libFuzzer target: random sequences of domain calls on the simulated IOMMU.
 *
 * The input's first bytes choose a configuration (policy, ring layout, model, bounds, a small
 * IOVA space, optimistic teardown, completion by callback or poll); every following pair of
 * bytes is one step: map, unmap (right or wrong), sync, poll, a device access to a released
 * range, an injected backend failure, bad arguments, or an arena call (op 15: a
 * scatter-gather link, iovaq_arena_linkv(), of 1 to 4 scattered pages). After every step:
 *
 *   - iovaq_domain_check() passes: every granule FREE, CACHED, ALLOCATED or QUEUED, once;
 *   - the safety oracle: a device access to a range whose release is known to be safe (strict
 *     unmap returned 0, its safe-deferred cookie came back, or a later sync returned 0) must
 *     not be served by a translation that survived the unmap (the sim's stale_pages);
 *   - errors are the documented ones, and a failed call changes nothing the caller can see.
 *
 * At the end the domain is synced and destroyed; LeakSanitizer reports anything left.
 * A failure aborts with a message naming the step.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <iovaq/iovaq.h>
#include <iovaq/sim.h>

#define G 4096ull
#define SLOTS 12
#define SLOT_PAGES 8
#define ARENA_PAGES 16
#define MAX_STEPS 512

enum { S_FREE, S_MAPPED, S_RELEASED };

struct slot {
	uint8_t *buf;
	int state;
	iovaq_iova_t iova;
	uint64_t pages;
	uint64_t cookie;	/* of its last release */
	int safe;		/* S_RELEASED: known unreachable */
};

/* An arena and which of its pages are linked (links of one page, or of several by linkv). */
struct arena {
	struct iovaq_arena *a;
	uint8_t linked[ARENA_PAGES];
	uint8_t link[ARENA_PAGES];	/* at a link's first page: its pages; else 0 */
	uint8_t unsynced[ARENA_PAGES];	/* unlinked, not yet covered by a sync */
	uint8_t pending[ARENA_PAGES];	/* covered by a sync, not yet known safe */
	uint8_t safe[ARENA_PAGES];	/* known unreachable until linked again */
	uint64_t cookie;		/* of its last sync */
};

/* A release whose slot was mapped again before the release was known safe. */
struct rel {
	iovaq_iova_t iova;
	uint64_t pages;
	uint64_t cookie;	/* 0: free record */
};

#define RELS 64

static struct {
	int trace;		/* FUZZ_TRACE set: print every step (to replay a crash input) */
	struct rel rel[RELS];
	struct iovaq_backend *be;
	struct iovaq_sim *sim;
	struct iovaq_domain *dom;
	uint32_t policy;
	int callback;
	struct slot s[SLOTS];
	struct arena ar;
	uint64_t next_cookie;
	unsigned int step;
	uint8_t *arena_buf;
} F;

#define FAIL(...)                                                                                \
	do {                                                                                     \
		fprintf(stderr, "fuzz_domain: step %u: ", F.step);                               \
		fprintf(stderr, __VA_ARGS__);                                                    \
		fputc('\n', stderr);                                                             \
		abort();                                                                         \
	} while (0)

/* Slot releases carry cookies counting up from 1; arena syncs the same with bit 63 set. */
#define ARENA_COOKIE (1ull << 63)

static void cookie_safe(uint64_t cookie)
{
	if (cookie & ARENA_COOKIE) {
		if (cookie != F.ar.cookie)
			return;	/* an older sync: the newer one's pages are not covered */
		for (int i = 0; i < ARENA_PAGES; i++) {
			if (F.ar.pending[i]) {
				F.ar.pending[i] = 0;
				F.ar.safe[i] = 1;
			}
		}
		return;
	}
	for (int i = 0; i < SLOTS; i++)
		if (F.s[i].state == S_RELEASED && F.s[i].cookie == cookie)
			F.s[i].safe = 1;
	for (int i = 0; i < RELS; i++)
		if (F.rel[i].cookie == cookie)
			F.rel[i].cookie = 0;
}

static void on_complete(void *arg, uint64_t cookie)
{
	(void)arg;
	cookie_safe(cookie);
}

/* Everything released before a successful sync is safe. */
static void all_safe(void)
{
	for (int i = 0; i < SLOTS; i++)
		if (F.s[i].state == S_RELEASED)
			F.s[i].safe = 1;
	memset(F.rel, 0, sizeof(F.rel));
	/* Arena pages unlinked but not synced yet are not covered by a domain sync. */
	for (int i = 0; i < ARENA_PAGES; i++) {
		if (F.ar.pending[i]) {
			F.ar.pending[i] = 0;
			F.ar.safe[i] = 1;
		}
	}
}

static void poll_all(void)
{
	uint64_t c[16];
	int n;

	if (F.policy != IOVAQ_POLICY_SAFE_DEFERRED || F.callback)
		return;
	do {
		n = iovaq_domain_poll(F.dom, c, 16);
		if (n < 0)
			FAIL("poll: %d", n);
		for (int i = 0; i < n; i++)
			cookie_safe(c[i]);
	} while (n == 16);
}

/*
 * May the device reach the page at @iova by right? Yes if a caller holds it mapped now (a slot
 * or a linked arena page), or if a later holder of the IOVA released it and that release is
 * not known safe yet.
 */
static int live(iovaq_iova_t iova)
{
	for (int i = 0; i < SLOTS; i++)
		if ((F.s[i].state == S_MAPPED || (F.s[i].state == S_RELEASED && !F.s[i].safe)) &&
		    iova >= F.s[i].iova && iova < F.s[i].iova + F.s[i].pages * G)
			return 1;
	for (int i = 0; i < RELS; i++)
		if (F.rel[i].cookie && iova >= F.rel[i].iova &&
		    iova < F.rel[i].iova + F.rel[i].pages * G)
			return 1;
	if (F.ar.a && iova >= iovaq_arena_base(F.ar.a) &&
	    iova < iovaq_arena_base(F.ar.a) + ARENA_PAGES * G) {
		uint64_t i = (iova - iovaq_arena_base(F.ar.a)) / G;

		return F.ar.linked[i] || F.ar.unsynced[i] || F.ar.pending[i];
	}
	return 0;
}

/*
 * A device read of @pages at @iova, page by page. If they are known safe, no page may be
 * served by a translation that survived the unmap, nor translate at all unless the caller
 * mapped it again since.
 */
static void device_read(iovaq_iova_t iova, uint64_t pages, int must_be_safe)
{
	uint8_t tmp[G];
	struct iovaq_sim_access res;

	if (F.policy == IOVAQ_POLICY_PASSTHROUGH)
		return;
	for (uint64_t p = 0; p < pages; p++) {
		int err;

		memset(&res, 0, sizeof(res));
		err = iovaq_sim_dma(F.sim, iova + p * G, tmp, G, 0, &res);
		if (!must_be_safe || live(iova + p * G))
			continue;
		if (res.stale_pages)
			FAIL("the device reached a stale page at 0x%llx after t_safe",
			     (unsigned long long)(iova + p * G));
		if (!err && F.trace) {
			for (int k = 0; k < RELS; k++)
				if (F.rel[k].cookie)
					fprintf(stderr, "rel %d: 0x%llx +%llu cookie %llx\n", k,
						(unsigned long long)F.rel[k].iova,
						(unsigned long long)F.rel[k].pages,
						(unsigned long long)F.rel[k].cookie);
			if (F.ar.a)
				fprintf(stderr, "arena at 0x%llx\n",
					(unsigned long long)iovaq_arena_base(F.ar.a));
		}
		if (!err)
			FAIL("the device reached 0x%llx after t_safe: still mapped",
			     (unsigned long long)(iova + p * G));
	}
}

static void check(void)
{
	int err = iovaq_domain_check(F.dom);

	if (err)
		FAIL("iovaq_domain_check: %d", err);
	for (int i = 0; i < SLOTS; i++)
		if (F.s[i].state == S_RELEASED && F.s[i].safe)
			device_read(F.s[i].iova, F.s[i].pages, 1);
	for (int i = 0; i < ARENA_PAGES; i++)
		if (F.ar.a && F.ar.safe[i])
			device_read(iovaq_arena_base(F.ar.a) + (uint64_t)i * G, 1, 1);
}

static void expect_err(const char *what, int got, int want)
{
	if (got != want)
		FAIL("%s returned %d, expected %d", what, got, want);
}

static void setup(const uint8_t *d, size_t n)
{
	uint8_t c[8] = { 0 };
	uint32_t sim_flags = 0;

	memcpy(c, d, n < sizeof(c) ? n : sizeof(c));
	memset(&F.s, 0, sizeof(F.s));
	memset(F.rel, 0, sizeof(F.rel));
	memset(&F.ar, 0, sizeof(F.ar));
	F.policy = c[0] % IOVAQ_POLICY_NR;
	F.callback = F.policy == IOVAQ_POLICY_SAFE_DEFERRED && (c[0] & 0x10);
	if (c[1] & 1)
		sim_flags |= IOVAQ_SIM_NESTED;
	if (c[1] & 2)
		sim_flags |= IOVAQ_SIM_NESTED | IOVAQ_SIM_CACHING_MODE;
	{
		IOVAQ_OPTS(iovaq_sim_opts, so, .flags = sim_flags, .seed = c[2]);
		IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "sim", .backend_opts = &so);

		if (iovaq_backend_open(&bo, &F.be))
			FAIL("open sim");
	}
	F.sim = iovaq_sim_of(F.be);
	{
		/* A space of 32..287 granules above 4 GiB: room runs out, flushes make room. */
		uint64_t space = 32 + c[3];
		struct iovaq_range holes[2] = { { 0, (1ull << 32) - 1 },
						{ (1ull << 32) + space * G, (1ull << 48) - 1 } };
		IOVAQ_OPTS(iovaq_domain_opts, o, .backend = F.be, .policy = F.policy,
			   .ring_layout = c[4] % 3, .ring_entries = 1 + (c[5] & 15),
			   .max_reachable_pages = 1 + (c[6] & 63),
			   .max_window_ns = (c[6] & 0x80) ? 1000000ull : 3600000000000ull,
			   .reserved = holes, .n_reserved = 2,
			   .complete = F.callback ? on_complete : NULL,
			   .teardown_ns = F.policy == IOVAQ_POLICY_DEFERRED && (c[7] & 1)
						  ? 3600000000000ull : 0,
			   .teardown_entries = 1 + (c[7] >> 4),
			   .flags = (c[7] & 2) ? IOVAQ_DOMAIN_TIMING : 0);

		if (iovaq_domain_create(&o, &F.dom))
			FAIL("create");
	}
}

static void step_map(unsigned int i, unsigned int arg)
{
	struct slot *s = &F.s[i];
	uint64_t pages = 1 + arg % SLOT_PAGES;
	iovaq_iova_t iova = 0;
	int err;

	if (s->state == S_MAPPED)
		return;
	/* Fresh contents; a released, not yet safe range may still be read: keep it mapped. */
	if (s->state == S_RELEASED && !s->safe && F.policy == IOVAQ_POLICY_SAFE_DEFERRED)
		return;	/* safe-deferred hands the buffer back only by its cookie */
	if (s->state == S_RELEASED && !s->safe) {
		/* Keep tracking the release the slot is about to forget. */
		int k;

		for (k = 0; k < RELS && F.rel[k].cookie; k++)
			;
		if (k == RELS)
			return;
		F.rel[k] = (struct rel){ s->iova, s->pages, s->cookie };
	}
	err = iovaq_domain_map(F.dom, s->buf, pages * G,
			       (arg & 0x80) ? IOVAQ_PROT_READ : IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
			       (arg & 0x40) ? (1ull << 32) + 64 * G : IOVAQ_LIMIT_NONE, &iova);
	if (err) {
		if (err != -ENOSPC && err != -EIO && err != -ENOMEM)
			FAIL("map: %d", err);
		return;
	}
	if (iova % G)
		FAIL("map returned a misaligned IOVA");
	s->state = S_MAPPED;
	s->iova = iova;
	s->pages = pages;
	s->safe = 0;
	if (F.policy != IOVAQ_POLICY_PASSTHROUGH) {
		uint8_t tmp[SLOT_PAGES * G];
		struct iovaq_sim_access res;

		memset(&res, 0, sizeof(res));
		if (iovaq_sim_dma(F.sim, iova, tmp, pages * G, 0, &res))
			FAIL("a fresh mapping faults");
	}
}

static uint64_t unmaps(void)
{
	IOVAQ_OPTS(iovaq_domain_stats, st);

	if (iovaq_domain_get_stats(F.dom, &st))
		FAIL("stats");
	return st.unmaps;
}

static void step_unmap(unsigned int i, unsigned int arg)
{
	struct slot *s = &F.s[i];
	uint64_t before;
	int err;

	if (s->state != S_MAPPED)
		return;
	s->cookie = ++F.next_cookie;
	before = unmaps();
	err = iovaq_domain_unmap(F.dom, s->iova, s->pages * G, s->cookie);
	if (err && err != -EIO && err != -ENOMEM)
		FAIL("unmap: %d", err);
	if (err && unmaps() == before) {
		/* The backend refused, or no completion slot: nothing changed, still mapped. */
		return;
	}
	if (err) {
		/* Strict: unmapped but its flush failed. Queued, safe only after a later sync. */
		if (F.policy != IOVAQ_POLICY_STRICT)
			FAIL("unmap released the range but returned %d", err);
		s->state = S_RELEASED;
		s->safe = 0;
		return;
	}
	s->state = S_RELEASED;
	s->safe = F.policy == IOVAQ_POLICY_STRICT;
	(void)arg;
}

static void step_bad(unsigned int i, unsigned int arg)
{
	struct slot *s = &F.s[i];

	switch (arg % 6) {
	case 0:	/* wrong length */
		if (s->state == S_MAPPED)
			expect_err("unmap with a wrong length",
				   iovaq_domain_unmap(F.dom, s->iova, (s->pages + 1) * G, 0), -EINVAL);
		break;
	case 1:	/* unknown IOVA or double unmap */
		if (s->state == S_RELEASED && F.policy != IOVAQ_POLICY_PASSTHROUGH) {
			/* Unless it has been handed out again to another slot. */
			for (int k = 0; k < SLOTS; k++)
				if (F.s[k].state == S_MAPPED && F.s[k].iova == s->iova)
					return;
			expect_err("double unmap",
				   iovaq_domain_unmap(F.dom, s->iova, s->pages * G, 0), -EINVAL);
		}
		break;
	case 2:
		expect_err("zero-length map",
			   iovaq_domain_map(F.dom, s->buf, 0, IOVAQ_PROT_READ, IOVAQ_LIMIT_NONE,
					    &s->iova), -EINVAL);
		break;
	case 3:
		expect_err("misaligned map",
			   iovaq_domain_map(F.dom, s->buf + 1, G, IOVAQ_PROT_READ,
					    IOVAQ_LIMIT_NONE, &s->iova), -EINVAL);
		break;
	case 4:
		expect_err("map without permissions",
			   iovaq_domain_map(F.dom, s->buf, G, 0, IOVAQ_LIMIT_NONE, &s->iova),
			   -EINVAL);
		break;
	default:
		expect_err("unaligned unmap length",
			   iovaq_domain_unmap(F.dom, s->iova, 1, 0), -EINVAL);
		break;
	}
}

static void step_fail(unsigned int arg)
{
	/* The next (or a later) map, unmap or flush fails with -EIO. */
	if (iovaq_sim_fail_nth(F.sim, (enum iovaq_sim_op)(arg % IOVAQ_SIM_OP_NR), 1 + (arg >> 4),
			       -EIO))
		FAIL("fail_nth");
}

static void step_sync(void)
{
	int err = iovaq_domain_sync(F.dom);

	if (F.trace)
		fprintf(stderr, "sync: %d\n", err);

	if (!err)
		all_safe();
	else if (err != -EIO && err != -ENOMEM)
		FAIL("sync: %d", err);
	poll_all();
}

/*
 * Release the arena. Its pages not known safe stay reachable by right until the next
 * successful sync (the release's own invalidation may fail, and release returns nothing).
 */
static void arena_release(void)
{
	struct arena *A = &F.ar;
	iovaq_iova_t base = iovaq_arena_base(A->a);

	for (int i = 0, k = 0; i < ARENA_PAGES; i++) {
		if (!A->linked[i] && !A->unsynced[i] && !A->pending[i])
			continue;
		while (k < RELS && F.rel[k].cookie)
			k++;
		if (k == RELS)
			return;	/* no record left: keep the arena */
		F.rel[k++] = (struct rel){ base + (uint64_t)i * G, 1, UINT64_MAX };
	}
	iovaq_arena_release(A->a);
	A->a = NULL;
}

static void step_arena(unsigned int arg)
{
	struct arena *A = &F.ar;
	unsigned int idx = (arg >> 3) % ARENA_PAGES;
	int err;

	if (F.policy == IOVAQ_POLICY_PASSTHROUGH)
		return;
	switch (arg & 7) {
	case 0:
		if (!A->a) {
			err = iovaq_arena_reserve(F.dom, ARENA_PAGES, IOVAQ_LIMIT_NONE, &A->a);
			if (err && err != -ENOSPC && err != -ENOMEM)
				FAIL("arena reserve: %d", err);
			if (err)
				A->a = NULL;
			else if (F.trace)
				fprintf(stderr, "arena reserved at 0x%llx\n",
					(unsigned long long)iovaq_arena_base(A->a));
			memset(A->linked, 0, sizeof(A->linked));
			memset(A->link, 0, sizeof(A->link));
			memset(A->unsynced, 0, sizeof(A->unsynced));
			memset(A->pending, 0, sizeof(A->pending));
			memset(A->safe, 0, sizeof(A->safe));
		}
		break;
	case 1:
	case 2:
		if (A->a && !A->linked[idx]) {
			err = iovaq_arena_link(A->a, idx, F.arena_buf + idx * G, G,
					       IOVAQ_PROT_READ | IOVAQ_PROT_WRITE, NULL);
			if (F.trace)
				fprintf(stderr, "arena link %u: %d\n", idx, err);
			if (!err) {
				A->linked[idx] = 1;
				A->link[idx] = 1;
				A->safe[idx] = A->pending[idx] = A->unsynced[idx] = 0;
			} else if (err != -EBUSY && err != -EIO && err != -ENOMEM) {
				FAIL("arena link: %d", err);
			}
		}
		break;
	case 3:
	case 4:
		if (A->a && A->linked[idx]) {
			unsigned int n = A->link[idx];	/* 0: a page inside a longer link */

			err = iovaq_arena_unlink(A->a, idx, (n ? n : 1) * G);
			if (F.trace)
				fprintf(stderr, "arena unlink %u+%u: %d\n", idx, n, err);
			if (!n) {
				expect_err("arena unlink of part of a link", err, -EINVAL);
			} else if (!err) {
				for (unsigned int k = idx; k < idx + n; k++) {
					A->linked[k] = 0;
					A->unsynced[k] = 1;
				}
				A->link[idx] = 0;
			} else if (err != -EIO) {
				FAIL("arena unlink: %d", err);
			}
		}
		break;
	case 5:
		if (A->a) {
			A->cookie = ARENA_COOKIE | ++F.next_cookie;
			err = iovaq_arena_sync(A->a, A->cookie);
			if (F.trace)
				fprintf(stderr, "arena sync: %d\n", err);
			if (err && err != -EIO && err != -ENOMEM)
				FAIL("arena sync: %d", err);
			if (err == -ENOMEM)
				break;	/* nothing changed */
			for (int i = 0; i < ARENA_PAGES; i++) {
				if (A->unsynced[i]) {
					A->unsynced[i] = 0;
					A->pending[i] = 1;
				}
			}
			if (!err && F.policy == IOVAQ_POLICY_STRICT) {
				for (int i = 0; i < ARENA_PAGES; i++) {
					if (A->pending[i]) {
						A->pending[i] = 0;
						A->safe[i] = 1;
					}
				}
			}
		}
		break;
	default:
		if (A->a)
			arena_release();
		break;
	}
}

/*
 * Op 15: link 1 to 4 pages from @idx as one link of scattered host pages (taken from the
 * arena buffer backwards, so that no two segments are adjacent in the host). A failure (an
 * injected one at any segment included) must leave every page as it was.
 */
static void step_arena_linkv(unsigned int arg)
{
	struct arena *A = &F.ar;
	unsigned int idx = (arg >> 3) % ARENA_PAGES, n = 1 + (arg & 3), busy = 0;
	struct iovaq_seg seg[4];
	int err;

	if (F.policy == IOVAQ_POLICY_PASSTHROUGH || !A->a)
		return;
	for (unsigned int k = 0; k < n; k++) {
		seg[k].host = F.arena_buf + (ARENA_PAGES - 1 - (idx + 2 * k) % ARENA_PAGES) * G;
		seg[k].len = G;
		busy |= idx + k < ARENA_PAGES && A->linked[idx + k];
	}
	err = iovaq_arena_linkv(A->a, idx, seg, n, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE, NULL);
	if (F.trace)
		fprintf(stderr, "arena linkv %u+%u: %d\n", idx, n, err);
	if (idx + n > ARENA_PAGES) {
		expect_err("arena linkv beyond the chunk", err, -EINVAL);
	} else if (busy) {
		expect_err("arena linkv over a linked page", err, -EBUSY);
	} else if (!err) {
		for (unsigned int k = idx; k < idx + n; k++) {
			A->linked[k] = 1;
			A->safe[k] = A->pending[k] = A->unsynced[k] = 0;
		}
		A->link[idx] = (uint8_t)n;
	} else if (err != -EBUSY && err != -EIO && err != -ENOMEM) {
		FAIL("arena linkv: %d", err);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int trace = -1;
	size_t pos = 8;

	if (trace < 0)	/* FUZZ_TRACE=1: print every step (to replay a crash input) */
		trace = getenv("FUZZ_TRACE") != NULL;
	F.trace = trace;

	if (!F.arena_buf) {
		F.arena_buf = aligned_alloc(G, ARENA_PAGES * G);
		for (int i = 0; i < SLOTS; i++)
			F.s[i].buf = aligned_alloc(G, SLOT_PAGES * G);
	}
	{
		uint8_t *bufs[SLOTS];

		for (int i = 0; i < SLOTS; i++)
			bufs[i] = F.s[i].buf;
		setup(data, size);
		for (int i = 0; i < SLOTS; i++)
			F.s[i].buf = bufs[i];
	}
	if (trace)
		fprintf(stderr, "config: policy %u, callback %d, bytes %02x %02x %02x %02x %02x %02x %02x %02x\n",
			F.policy, F.callback, data[0], data[1], data[2], data[3], data[4], data[5],
			data[6], data[7]);
	for (F.step = 0; pos + 2 <= size && F.step < MAX_STEPS; F.step++, pos += 2) {
		unsigned int op = data[pos], arg = data[pos + 1], i = (op >> 4) % SLOTS;

		if (trace) {
			int nrel = 0;

			for (int k = 0; k < RELS; k++)
				nrel += F.rel[k].cookie != 0;
			fprintf(stderr, "  (%d release records)\n", nrel);
		}
		if (trace)
			fprintf(stderr, "step %u: op %u slot %u arg 0x%02x (slot state %d iova 0x%llx "
				"pages %llu safe %d)\n", F.step, op & 15, i, arg, F.s[i].state,
				(unsigned long long)F.s[i].iova, (unsigned long long)F.s[i].pages,
				F.s[i].safe);

		switch (op & 15) {
		case 0: case 1: case 2:
			step_map(i, arg);
			break;
		case 3: case 4: case 5:
			step_unmap(i, arg);
			break;
		case 6:
			step_sync();
			break;
		case 7:
			poll_all();
			break;
		case 8:
			if (F.s[i].state == S_RELEASED)
				device_read(F.s[i].iova, F.s[i].pages, F.s[i].safe);
			break;
		case 9:
			step_fail(arg);
			break;
		case 10:
			step_bad(i, arg);
			break;
		case 15:
			step_arena_linkv(arg);
			break;
		default:
			step_arena(arg);
			break;
		}
		check();
	}
	/* The end: nothing armed, everything released becomes safe, nothing leaks. */
	for (int op = 0; op < IOVAQ_SIM_OP_NR; op++)
		iovaq_sim_fail_nth(F.sim, (enum iovaq_sim_op)op, 0, -EIO);
	if (F.ar.a)
		arena_release();
	step_sync();
	for (int i = 0; i < SLOTS; i++)
		if (F.s[i].state == S_RELEASED && !F.s[i].safe &&
		    F.policy != IOVAQ_POLICY_PASSTHROUGH)
			FAIL("slot %d not safe after a successful final sync", i);
	check();
	iovaq_domain_destroy(F.dom);
	iovaq_backend_close(F.be);
	return 0;
}
