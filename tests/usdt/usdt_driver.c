// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * A known sequence of domain calls on the sim, for tests/usdt/fire-probes.sh: the script
 * traces this program's USDT probes with bpftrace and compares what fired with what this
 * program prints on stdout, one "expect KEY VALUE" line per figure, taken from its own
 * bookkeeping and from the domain's stats (so a probe that fires too often, too rarely, with
 * the wrong arguments or not at all fails the test).
 *
 *   1. strict:         N_STRICT one-page maps and unmaps;
 *   2. safe-deferred:  N_SD maps and unmaps with cookies COOKIE0 + i, a callback, one sync;
 *   3. deferred:       a window bound of 1 us, one map and unmap, 2 ms asleep, a sync: a
 *                      window violation (every violation is checked against the domains'
 *                      own count, in case a loaded machine adds one elsewhere);
 *   4. strict:         the sim's next map fails with -EIO: one failed map, one backend error.
 *
 * Exit status: 0, or 1 with a message if a call does not do what the sequence needs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <iovaq/iovaq.h>
#include <iovaq/sim.h>

#define G 4096u
#define N_STRICT 64
#define N_SD 32
#define COOKIE0 1000u

static uint64_t completed, completed_sum;

static void on_complete(void *arg, uint64_t cookie)
{
	(void)arg;
	completed++;
	completed_sum += cookie;
}

#define CHECK(cond, ...)                                                                         \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "usdt_driver: " __VA_ARGS__);                            \
			fprintf(stderr, " (%s)\n", iovaq_backend_why());                         \
			exit(1);                                                                 \
		}                                                                                \
	} while (0)

static struct iovaq_domain *domain(struct iovaq_backend *be, uint32_t policy,
				   uint64_t max_window_ns)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = policy,
		   .max_window_ns = max_window_ns, .complete = on_complete);
	struct iovaq_domain *d = NULL;
	int err = iovaq_domain_create(&o, &d);

	CHECK(!err, "iovaq_domain_create(policy %u): %d", policy, err);
	return d;
}

/* @n one-page map + unmap pairs, cookies @cookie0 + i; returns the pages released. */
static uint64_t pairs(struct iovaq_domain *d, uint8_t *buf, unsigned int n, uint64_t cookie0)
{
	iovaq_iova_t iova[N_STRICT];
	unsigned int i;
	int err;

	for (i = 0; i < n; i++) {
		err = iovaq_domain_map(d, buf + (size_t)i * G, G, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
				       UINT32_MAX, &iova[i]);
		CHECK(!err, "map %u: %d", i, err);
	}
	for (i = 0; i < n; i++) {
		err = iovaq_domain_unmap(d, iova[i], G, cookie0 + i);
		CHECK(!err, "unmap %u: %d", i, err);
	}
	return n;
}

static uint64_t viol;	/* the domains' own count of bound violations */

static void destroy(struct iovaq_domain *d)
{
	IOVAQ_OPTS(iovaq_window_report, w);

	CHECK(!iovaq_domain_window(d, &w), "iovaq_domain_window");
	viol += w.violations;
	iovaq_domain_destroy(d);
}

int main(void)
{
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "sim");
	struct timespec nap = { 0, 2000000 };
	struct iovaq_backend *be = NULL;
	struct iovaq_domain *d;
	uint64_t maps = 0, cookie_sum = 0, viol_before;
	iovaq_iova_t iova;
	uint8_t *buf;
	unsigned int i;
	int err;

	buf = aligned_alloc(G, (size_t)N_STRICT * G);
	CHECK(buf, "out of memory");
	memset(buf, 0, (size_t)N_STRICT * G);
	err = iovaq_backend_open(&bo, &be);
	CHECK(!err, "open sim: %d", err);

	d = domain(be, IOVAQ_POLICY_STRICT, 0);
	maps += pairs(d, buf, N_STRICT, 0);
	destroy(d);

	d = domain(be, IOVAQ_POLICY_SAFE_DEFERRED, 0);
	maps += pairs(d, buf, N_SD, COOKIE0);
	CHECK(!iovaq_domain_sync(d), "sync (safe-deferred)");
	destroy(d);
	for (i = 0; i < N_SD; i++)
		cookie_sum += COOKIE0 + i;
	CHECK(completed == N_SD && completed_sum == cookie_sum,
	      "%llu cookies came back (sum %llu), not %u", (unsigned long long)completed,
	      (unsigned long long)completed_sum, N_SD);

	d = domain(be, IOVAQ_POLICY_DEFERRED, 1000);
	CHECK(!iovaq_domain_map(d, buf, G, IOVAQ_PROT_READ, UINT32_MAX, &iova), "map (deferred)");
	CHECK(!iovaq_domain_unmap(d, iova, G, 0), "unmap (deferred)");
	maps++;
	nanosleep(&nap, NULL);
	CHECK(!iovaq_domain_sync(d), "sync (deferred)");
	viol_before = viol;
	destroy(d);
	CHECK(viol > viol_before, "no window violation after 2 ms with a 1 us bound");

	d = domain(be, IOVAQ_POLICY_STRICT, 0);
	CHECK(!iovaq_sim_fail_nth(iovaq_sim_of(be), IOVAQ_SIM_OP_MAP, 1, -EIO), "fail_nth");
	err = iovaq_domain_map(d, buf, G, IOVAQ_PROT_READ, UINT32_MAX, &iova);
	CHECK(err == -EIO, "injected map failure returned %d, not -EIO", err);
	destroy(d);
	iovaq_backend_close(be);
	free(buf);

	/* Every release of this sequence is one page, and becomes safe exactly once. */
	printf("expect map_ok %llu\n", (unsigned long long)maps);
	printf("expect map_err %d\n", 1);
	printf("expect map_err_code %d\n", -EIO);
	printf("expect unmap %llu\n", (unsigned long long)maps);
	printf("expect unmap_pages %llu\n", (unsigned long long)maps);
	printf("expect safe %llu\n", (unsigned long long)maps);
	printf("expect safe_pages %llu\n", (unsigned long long)maps);
	printf("expect complete %d\n", N_SD);
	printf("expect complete_sum %llu\n", (unsigned long long)cookie_sum);
	printf("expect violation %llu\n", (unsigned long long)viol);
	printf("expect violation_over_bound %llu\n", (unsigned long long)viol);
	printf("expect backend_error_map %d\n", 1);
	printf("expect backend_error_code %d\n", -EIO);
	return 0;
}
