// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * Guest test of libiovaq's kshim backend on QEMU's edu device (no driver bound), run by
 * tests/vm/kglue/init after iovaq.ko is loaded. The backend opens /dev/iovaq and binds edu
 * itself (struct iovaq_kshim_opts.device), as an application would; the test programs edu
 * through its BAR0 mapped from sysfs.
 *
 * release_then_dma_faults, per policy (strict, deferred, safe-deferred, safe-deferred+arenas):
 * a device write to the domain's mapping lands in the host page; after the release and, for
 * the deferred policies, after t_safe (iovaq_domain_sync(); safe-deferred: the cookie came
 * back), the same write leaves the page unchanged, the DMAR fault interrupt count moves and the
 * guest kernel logs "DMAR: [DMA Write ...] fault addr 0x<IOVA>". Nothing stays pinned.
 *
 * Bad input: a non-root user (-EACCES), root without CAP_SYS_RAWIO (-EPERM), a PCI address
 * with no device (-ENODEV), the device bound by another file (-EBUSY), the module unloaded
 * while a domain is live (refused), a mapped buffer munmapped by its owner (the pages stay
 * pinned until the invalidation, then go). Each with the reason iovaq_backend_why() gives.
 *
 *   kshim_edu DDDD:BB:DD.F
 * Prints "ok"/"FAIL" lines and "kshim_edu: N passed, N failed"; exit 0 only if none failed.
 *
 * Tools of tests/vm/kglue/bench.sh (guest-bench.sh):
 *   kshim_edu DDDD:BB:DD.F mark M
 *	edu (no driver) bound to a fresh /dev/iovaq file with nothing mapped writes to IOVA
 *	0x40000000 + M * 4096: QEMU traces the DMAR fault, a marker in its trace.
 *   kshim_edu DDDD:BB:DD.F bench WHAT POLICY PAIRS ARENA_PAGES
 *	PAIRS x (map + unmap) of 4 KiB pages in a FIFO ring of 64 (nic-rx), one line
 *	"kglue-bench-run: ..." with the time and the calls made. WHAT: kernel-raw (the
 *	module's iommu_map + iommu_unmap per page, IOVAQ_KSHIM_BENCH), kernel (the module's
 *	loop through the in-kernel domain), kernel-raw-sg (the module's IOMMU calls of the
 *	arena path without the library, IOVAQ_KSHIM_BENCH_RAW_ARENA, groups of ARENA_PAGES;
 *	with 1, the calls of the strict path), kernel-raw-sg-build (the same, each link's
 *	scatterlist built as the backend builds it, RAW_ARENA_BUILD), kshim or iommufd (this
 *	process through a libiovaq
 *	domain on that backend). POLICY: strict, deferred, safe-deferred. ARENA_PAGES > 0:
 *	groups of that many consecutive ring slots, one arena each (one link, one unlink + sync).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>

#include <iovaq/iovaq.h>
#include <uapi/iovaq/kshim.h>

#define PAGE 4096u
#define EDU_REG_ID 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_BUF 0x40000ull
#define EDU_BAR0_SIZE (1u << 20)

static int passed, failed;
static const char *bdf;

#define CHECK(cond, ...)                                            \
	do {                                                        \
		if (cond) {                                         \
			passed++;                                   \
		} else {                                            \
			failed++;                                   \
			printf("FAIL %s:%d: ", __func__, __LINE__); \
			printf(__VA_ARGS__);                        \
			printf("\n");                               \
		}                                                   \
	} while (0)

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- edu through sysfs ---------------------------------------------------------------- */

static volatile uint8_t *edu_bar;

static int edu_open(void)
{
	char p[256];
	uint16_t cmd;
	void *bar;
	int fd;

	if (edu_bar)
		return 0;
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/config", bdf);
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0 || pread(fd, &cmd, 2, 4) != 2)
		return -errno;
	cmd |= 0x6; /* memory space, bus master */
	if (pwrite(fd, &cmd, 2, 4) != 2)
		return -errno;
	close(fd);
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/resource0", bdf);
	fd = open(p, O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	bar = mmap(NULL, EDU_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (bar == MAP_FAILED)
		return -errno;
	edu_bar = bar;
	return (*(volatile uint32_t *)(edu_bar + EDU_REG_ID) & 0xffff) == 0x00ed ? 0 : -EIO;
}

/* One transfer; 0, or -ETIMEDOUT. edu completes it on a 100 ms virtual timer. */
static int edu_xfer(uint64_t src, uint64_t dst, uint32_t cnt, int to_ram)
{
	*(volatile uint64_t *)(edu_bar + EDU_REG_DMA_SRC) = src;
	*(volatile uint64_t *)(edu_bar + EDU_REG_DMA_DST) = dst;
	*(volatile uint64_t *)(edu_bar + EDU_REG_DMA_CNT) = cnt;
	*(volatile uint32_t *)(edu_bar + EDU_REG_DMA_CMD) = 1u | (to_ram ? 2u : 0u);
	for (int i = 0; i < 5000; i++) {
		sleep_ms(2);
		if (!(*(volatile uint32_t *)(edu_bar + EDU_REG_DMA_CMD) & 1u))
			return 0;
	}
	return -ETIMEDOUT;
}

/* Sum of the "dmar" lines of /proc/interrupts. */
static uint64_t dmar_faults(void)
{
	char line[1024];
	uint64_t sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':'), *end;

		if (!p || !strstr(line, "dmar"))
			continue;
		for (p++;; p = end) {
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			sum += v;
		}
	}
	fclose(f);
	return sum;
}

static int faulted_since(uint64_t before)
{
	for (int i = 0; i < 50; i++) {
		if (dmar_faults() != before)
			return 1;
		sleep_ms(2);
	}
	return 0;
}

/* Kernel log lines holding both @a and @b. */
static unsigned int klog_count(const char *a, const char *b)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	char *buf, *line, *save = NULL;
	unsigned int n = 0;

	if (len <= 0 || !(buf = malloc((size_t)len + 1)))
		return 0;
	len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	buf[len > 0 ? len : 0] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		n += strstr(line, a) && strstr(line, b);
	free(buf);
	return n;
}

/*
 * The guest kernel rate-limits DMAR fault messages (three calls of __ratelimit() per fault,
 * burst 10 per 5 s: docs/vm-testbed.md): 5.2 s of quiet before the first fault, 1.8 s apart.
 */
static void fault_gap(void)
{
	static double last;
	struct timespec now;
	double t, gap = last ? 1.8 : 5.2;

	clock_gettime(CLOCK_BOOTTIME, &now);
	t = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	if (!last)
		last = t;
	if (t < last + gap)
		sleep_ms((unsigned int)((last + gap - t) * 1000) + 1);
	clock_gettime(CLOCK_BOOTTIME, &now);
	last = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* edu writes @pat over one page at @iova, staged through the scratch page at @siova. */
static int device_write(uint8_t *scratch, iovaq_iova_t siova, iovaq_iova_t iova, uint8_t pat,
			int *faulted)
{
	uint64_t f0;
	int err;

	memset(scratch, pat, PAGE);
	err = edu_xfer(siova, EDU_BUF, PAGE, 0);
	if (err)
		return err;
	f0 = dmar_faults();
	err = edu_xfer(EDU_BUF, iova, PAGE, 1);
	*faulted = faulted_since(f0);
	return err;
}

static int all_bytes(const uint8_t *b, uint8_t v)
{
	for (unsigned int i = 0; i < PAGE; i++)
		if (b[i] != v)
			return 0;
	return 1;
}

static int open_kshim(const char *dev, struct iovaq_backend **be)
{
	IOVAQ_OPTS(iovaq_kshim_opts, ko, .device = dev);
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "kshim", .backend_opts = &ko);

	return iovaq_backend_open(&bo, be);
}

/* ---- DMA lands while mapped, faults after t_safe --------------------------------------- */

enum { P_STRICT, P_DEFERRED, P_SAFE, P_ARENAS, N_POL };
static const char *const pol_names[] = { "strict", "deferred", "safe-deferred",
					 "safe-deferred+arenas" };
static const uint32_t pol_lib[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
				    IOVAQ_POLICY_SAFE_DEFERRED, IOVAQ_POLICY_SAFE_DEFERRED };

static uint64_t cookies[8];
static unsigned int n_cookies;

static void on_complete(void *arg, uint64_t cookie)
{
	(void)arg;
	if (n_cookies < 8)
		cookies[n_cookies++] = cookie;
}

static void release_then_dma_faults(int pol)
{
	const char *pn = pol_names[pol];
	struct iovaq_backend *be = NULL;
	struct iovaq_domain *dom = NULL;
	struct iovaq_arena *arena = NULL;
	iovaq_iova_t siova = 0, tiova = 0;
	uint8_t *scratch = aligned_alloc(PAGE, PAGE), *buf = aligned_alloc(PAGE, PAGE);
	unsigned int logged0;
	int err, faulted = 0;
	char addr[64];

	err = open_kshim(bdf, &be);
	CHECK(!err, "[%s] open kshim on %s: %d %s", pn, bdf, err, iovaq_backend_why());
	if (err)
		return;
	CHECK(!edu_open(), "[%s] edu BAR0 through sysfs", pn);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = pol_lib[pol],
		   .complete = on_complete);
	n_cookies = 0;
	err = iovaq_domain_create(&o, &dom);
	CHECK(!err, "[%s] domain: %d", pn, err);
	if (err)
		goto close;
	memset(buf, 0x11, PAGE);
	err = iovaq_domain_map(dom, scratch, PAGE, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
			       UINT64_MAX, &siova);
	if (!err && pol == P_ARENAS) {
		err = iovaq_arena_reserve(dom, 4, UINT64_MAX, &arena);
		if (!err)
			err = iovaq_arena_link(arena, 1, buf, PAGE, IOVAQ_PROT_WRITE, &tiova);
	} else if (!err) {
		err = iovaq_domain_map(dom, buf, PAGE, IOVAQ_PROT_WRITE, UINT64_MAX, &tiova);
	}
	CHECK(!err, "[%s] map: %d", pn, err);
	if (err)
		goto destroy;

	CHECK(!device_write(scratch, siova, tiova, 0xa5, &faulted) && !faulted,
	      "[%s] a device write to the mapped IOVA 0x%" PRIx64 " failed or faulted", pn, tiova);
	CHECK(all_bytes(buf, 0xa5), "[%s] a device write to 0x%" PRIx64 " did not land", pn, tiova);

	if (pol == P_ARENAS)
		err = iovaq_arena_unlink(arena, 1, PAGE) ?: iovaq_arena_sync(arena, 7);
	else
		err = iovaq_domain_unmap(dom, tiova, PAGE, 7);
	if (!err && pol != P_STRICT)
		err = iovaq_domain_sync(dom);
	CHECK(!err, "[%s] release and sync: %d", pn, err);
	if (pol == P_SAFE || pol == P_ARENAS)
		CHECK(n_cookies == 1 && cookies[0] == 7, "[%s] the cookie did not come back at "
		      "t_safe (%u cookies)", pn, n_cookies);
	CHECK(!iovaq_domain_check(dom), "[%s] domain check", pn);

	snprintf(addr, sizeof(addr), "fault addr 0x%" PRIx64, tiova);
	logged0 = klog_count("DMA Write", addr);
	fault_gap();
	CHECK(!device_write(scratch, siova, tiova, 0x5a, &faulted), "[%s] transfer", pn);
	CHECK(all_bytes(buf, 0xa5), "[%s] a device write after t_safe landed (IOVA 0x%" PRIx64 ")",
	      pn, tiova);
	CHECK(faulted, "[%s] a device write to the released IOVA 0x%" PRIx64 " raised no DMAR "
	      "fault interrupt", pn, tiova);
	for (int i = 0; i < 100 && klog_count("DMA Write", addr) == logged0; i++)
		sleep_ms(10);
	CHECK(klog_count("DMA Write", addr) > logged0,
	      "[%s] the guest kernel logged no \"DMAR: [DMA Write ...] %s\" line", pn, addr);
	printf("kshim_edu: %s: write to 0x%" PRIx64 " landed while mapped, faulted after t_safe\n",
	       pn, tiova);
	iovaq_arena_release(arena);
	CHECK(!iovaq_domain_unmap(dom, siova, PAGE, 8) && !iovaq_domain_sync(dom),
	      "[%s] scratch unmap", pn);
destroy:
	iovaq_domain_destroy(dom);
	CHECK(iovaq_backend_pinned_bytes(be) == 0, "[%s] %" PRIu64 " bytes still pinned", pn,
	      iovaq_backend_pinned_bytes(be));
close:
	iovaq_backend_close(be);
	free(buf);
	free(scratch);
}

/* ---- bad input ------------------------------------------------------------------------ */

/* Run @fn in a child; its exit status. */
static int in_child(int (*fn)(void))
{
	int st;
	pid_t pid = fork();

	if (pid == 0)
		_exit(fn());
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

static int child_open_expect(int want, const char *why_part)
{
	struct iovaq_backend *be = NULL;
	int err = open_kshim(bdf, &be);

	printf("kshim_edu: uid %d: open: %d: %s\n", (int)getuid(), err, iovaq_backend_why());
	return err == want && strstr(iovaq_backend_why(), why_part) ? 0 : 1;
}

static int as_nobody(void)
{
	if (setgid(65534) || setuid(65534))
		return 2;
	return child_open_expect(-EACCES, "permission denied opening /dev/iovaq");
}

static int without_rawio(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];

	if (syscall(SYS_capget, &h, d))
		return 2;
	d[CAP_SYS_RAWIO / 32].effective &= ~(1u << (CAP_SYS_RAWIO % 32));
	d[CAP_SYS_RAWIO / 32].permitted &= ~(1u << (CAP_SYS_RAWIO % 32));
	if (syscall(SYS_capset, &h, d))
		return 2;
	return child_open_expect(-EPERM, "CAP_SYS_RAWIO");
}

static void bad_input(void)
{
	struct iovaq_backend *be = NULL, *be2 = NULL;
	struct iovaq_domain *dom = NULL;
	iovaq_iova_t iova = 0;
	uint8_t *scratch = aligned_alloc(PAGE, PAGE), *buf;
	int err, faulted = 0;

	CHECK(in_child(as_nobody) == 0, "a non-root user: -EACCES naming /dev/iovaq");
	CHECK(in_child(without_rawio) == 0, "root without CAP_SYS_RAWIO: -EPERM");
	err = open_kshim("0000:00:1f.6", &be);
	CHECK(err == -ENODEV && strstr(iovaq_backend_why(), "no PCI device"),
	      "no device at 00:1f.6: %d %s", err, iovaq_backend_why());
	err = open_kshim(bdf, &be);
	CHECK(!err, "open: %d %s", err, iovaq_backend_why());
	if (err)
		return;
	err = open_kshim(bdf, &be2);
	CHECK(err == -EBUSY && strstr(iovaq_backend_why(), "in use"), "second open: %d %s", err,
	      iovaq_backend_why());

	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_STRICT);
	CHECK(!iovaq_domain_create(&o, &dom), "domain");
	/* The module holds a reference while the file is open: unloading it is refused. */
	err = (int)syscall(SYS_delete_module, "iovaq", O_NONBLOCK);
	CHECK(err && (errno == EWOULDBLOCK || errno == EBUSY),
	      "rmmod iovaq with a domain live: %d errno %d", err, errno);

	/* The owner munmaps a mapped buffer: its pages stay pinned and reachable until released. */
	buf = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	memset(buf, 0x22, PAGE);
	CHECK(!iovaq_domain_map(dom, scratch, PAGE, 3, UINT64_MAX, &iova), "scratch map");
	{
		iovaq_iova_t siova = iova, biova = 0;

		CHECK(!iovaq_domain_map(dom, buf, PAGE, 3, UINT64_MAX, &biova), "buffer map");
		CHECK(iovaq_backend_pinned_bytes(be) == 2 * PAGE, "two pages pinned: %" PRIu64,
		      iovaq_backend_pinned_bytes(be));
		munmap(buf, PAGE);
		CHECK(!edu_open() && !device_write(scratch, siova, biova, 0x33, &faulted) &&
		      !faulted, "a device write to a mapped, munmapped buffer: no fault, no oops");
		CHECK(!iovaq_domain_unmap(dom, biova, PAGE, 1), "unmap of the munmapped buffer");
		CHECK(iovaq_backend_pinned_bytes(be) == PAGE, "its page released at t_safe: %" PRIu64,
		      iovaq_backend_pinned_bytes(be));
		CHECK(!iovaq_domain_unmap(dom, siova, PAGE, 2), "scratch unmap");
	}
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	/* Closed: the device is free for the next user. */
	be = NULL;
	err = open_kshim(bdf, &be);
	CHECK(!err, "open after close: %d %s", err, iovaq_backend_why());
	iovaq_backend_close(be);
	free(scratch);
}

/* ---- bench tools ---------------------------------------------------------------------- */

static int kshim_bind(void)
{
	struct iovaq_kshim_bind b = { .size = sizeof(b) };
	unsigned int seg, bus, slot, fn;
	int fd = open(IOVAQ_KSHIM_DEVICE, O_RDWR | O_CLOEXEC);

	if (fd < 0 || sscanf(bdf, "%x:%x:%x.%x", &seg, &bus, &slot, &fn) != 4)
		return -1;
	b.pci_domain = seg;
	b.pci_bus = (uint8_t)bus;
	b.pci_devfn = (uint8_t)(slot << 3 | fn);
	if (ioctl(fd, IOVAQ_KSHIM_BIND, &b)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int mark(unsigned int m)
{
	int fd = kshim_bind(), err;

	if (fd < 0 || edu_open()) {
		fprintf(stderr, "kshim_edu: mark %u: no edu through /dev/iovaq\n", m);
		return 1;
	}
	err = edu_xfer(EDU_BUF, 0x40000000ull + (uint64_t)m * PAGE, 8, 1);
	close(fd);
	return err ? 1 : 0;
}

static void print_run(const char *what, const char *pol, unsigned int arena, unsigned int pairs,
		      uint64_t ns, uint64_t maps, uint64_t unmaps, uint64_t syncs,
		      uint64_t flushes, uint64_t cmds, uint64_t p50, uint64_t p99,
		      uint64_t unsafe, uint64_t viol, uint64_t backend_ns, uint64_t iommu_ns)
{
	printf("kglue-bench-run: what=%s policy=%s arena=%u pairs=%u elapsed_ns=%" PRIu64
	       " us_per_pair=%.3f maps=%" PRIu64 " unmaps=%" PRIu64 " syncs=%" PRIu64
	       " flushes=%" PRIu64 " cmds=%" PRIu64 " window_p50_ns=%" PRIu64
	       " window_p99_ns=%" PRIu64 " unsafe_reuse=%" PRIu64 " violations=%" PRIu64
	       " backend_ns=%" PRIu64 " iommu_ns=%" PRIu64 "\n",
	       what, pol, arena, pairs, ns, (double)ns / 1e3 / pairs, maps, unmaps, syncs, flushes,
	       cmds, p50, p99, unsafe, viol, backend_ns, iommu_ns);
}

static int policy_of(const char *s)
{
	for (int p = 0; p < 3; p++)
		if (!strcmp(s, pol_names[p]))
			return (int)pol_lib[p];
	return -1;
}

/*
 * The module's own loop (IOVAQ_KSHIM_BENCH); @what: kernel, kernel-raw, kernel-raw-sg or
 * kernel-raw-sg-build.
 */
static int bench_kernel(const char *what, int pol, const char *pn, unsigned int pairs,
			unsigned int arena)
{
	int raw = strcmp(what, "kernel") != 0, sg = !strcmp(what, "kernel-raw-sg"),
	    build = !strcmp(what, "kernel-raw-sg-build");
	struct iovaq_kshim_bench b = {
		/* The ring of 64, or one arena's worth when arenas are larger. */
		.size = sizeof(b), .count = pairs, .ring = arena > 64 ? arena : 64,
		.policy = (uint32_t)pol,
		.arena_pages = arena,
		.mode = build ? IOVAQ_KSHIM_BENCH_RAW_ARENA_BUILD :
			sg ? IOVAQ_KSHIM_BENCH_RAW_ARENA : raw ? IOVAQ_KSHIM_BENCH_RAW_STRICT :
			arena ? IOVAQ_KSHIM_BENCH_ARENA : IOVAQ_KSHIM_BENCH_DOMAIN,
	};
	int fd = kshim_bind();

	if (fd < 0 || ioctl(fd, IOVAQ_KSHIM_BENCH, &b)) {
		fprintf(stderr, "kshim_edu: IOVAQ_KSHIM_BENCH (%s, %u pairs, arena %u): %s\n", what,
			pairs, arena, strerror(errno));
		return 1;
	}
	close(fd);
	print_run(what, raw ? "strict" : pn, arena, pairs, b.elapsed_ns,
		  b.maps, b.unmaps, b.syncs, b.flushes, b.inval_cmds, b.window_p50_ns,
		  b.window_p99_ns, b.unsafe_reuse, b.violations, b.backend_ns, b.iommu_ns);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* This process through a libiovaq domain on @backend: the same ring as the module's loop. */
static int bench_user(const char *backend, int pol, const char *pn, unsigned int pairs,
		      unsigned int arena)
{
	enum { RING = 64 };
	IOVAQ_OPTS(iovaq_kshim_opts, ko, .device = bdf);
	IOVAQ_OPTS(iovaq_iommufd_opts, io, .device = bdf);
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = backend,
		   .backend_opts = strcmp(backend, "kshim") ? (const void *)&io : (const void *)&ko);
	IOVAQ_OPTS(iovaq_domain_stats, st);
	IOVAQ_OPTS(iovaq_window_report, w);
	struct iovaq_arena *ar[RING] = { 0 };
	size_t linked[RING] = { 0 };	/* bytes of each group's current link */
	iovaq_iova_t iovas[RING];
	struct iovaq_backend *be = NULL;
	struct iovaq_domain *dom = NULL;
	uint8_t *ring = aligned_alloc(PAGE * RING, PAGE * RING);
	unsigned int i, a = arena ? arena : 1, groups = RING / a, n = (pairs + a - 1) / a;
	uint64_t t0, ns;
	int err;

	/* As the module's loop: when a does not divide pairs, the last link is partial. */
	if (!ring || !pairs || RING % a) {
		fprintf(stderr, "kshim_edu: bench %s: %u pairs, arenas of %u pages: the arena "
			"size must divide the ring (%u)\n", backend, pairs, arena, RING);
		free(ring);
		return 1;
	}
	memset(ring, 0, PAGE * RING); /* fault the pages in before the clock starts */
	err = iovaq_backend_open(&bo, &be);
	if (err) {
		fprintf(stderr, "kshim_edu: open %s: %s: %s\n", backend, iovaq_strerror(err),
			iovaq_backend_why());
		return 1;
	}
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = (uint32_t)pol,
		   .complete = on_complete);
	err = iovaq_domain_create(&o, &dom);
	for (i = 0; arena && i < groups && !err; i++)
		err = iovaq_arena_reserve(dom, a, UINT64_MAX, &ar[i]);
	t0 = now_ns();
	for (i = 0; i < n + groups && !err; i++) {
		unsigned int k = i % groups;
		void *host = ring + (size_t)k * a * PAGE;

		if (arena) {
			size_t len = (size_t)(pairs - i * a < a ? pairs - i * a : a) * PAGE;

			if (i >= groups)
				err = iovaq_arena_unlink(ar[k], 0, linked[k]) ?:
				      iovaq_arena_sync(ar[k], i);
			if (!err && i < n) {
				err = iovaq_arena_link(ar[k], 0, host, len, 3, NULL);
				if (err == -EBUSY) /* not yet safe since its unlink: wait for it */
					err = iovaq_domain_sync(dom) ?:
					      iovaq_arena_link(ar[k], 0, host, len, 3, NULL);
				if (!err)
					linked[k] = len;
			}
		} else {
			if (i >= groups)
				err = iovaq_domain_unmap(dom, iovas[k], PAGE, i);
			if (!err && i < n)
				err = iovaq_domain_map(dom, host, PAGE, 3, UINT64_MAX, &iovas[k]);
		}
	}
	if (!err)
		err = iovaq_domain_sync(dom);
	ns = now_ns() - t0;
	if (err)
		fprintf(stderr, "kshim_edu: bench %s %s: %s\n", backend, pn, iovaq_strerror(err));
	iovaq_domain_get_stats(dom, &st);
	iovaq_domain_window(dom, &w);
	for (i = 0; i < groups; i++)
		iovaq_arena_release(ar[i]);
	iovaq_domain_destroy(dom);
	iovaq_backend_close(be);
	free(ring);
	if (err)
		return 1;
	print_run(backend, pn, arena, pairs, ns, st.maps, st.unmaps, 0, st.flushes, st.inval_cmds,
		  w.window_p50_ns, w.window_p99_ns, w.unsafe_reuse, w.violations, 0, 0);
	return 0;
}

static int bench_main(int argc, char **argv)
{
	unsigned int pairs, arena;
	int pol;

	if (argc < 7 || (pol = policy_of(argv[4])) < 0) {
		fprintf(stderr, "usage: kshim_edu BDF bench WHAT POLICY PAIRS ARENA_PAGES\n");
		return 2;
	}
	pairs = (unsigned int)atoi(argv[5]);
	arena = (unsigned int)atoi(argv[6]);
	if (!pairs) {
		fprintf(stderr, "kshim_edu: bench: PAIRS must be at least 1\n");
		return 2;
	}
	if (!strcmp(argv[3], "kernel") || !strcmp(argv[3], "kernel-raw") ||
	    !strcmp(argv[3], "kernel-raw-sg") || !strcmp(argv[3], "kernel-raw-sg-build"))
		return bench_kernel(argv[3], pol, argv[4], pairs, arena);
	return bench_user(argv[3], pol, argv[4], pairs, arena);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: kshim_edu DDDD:BB:DD.F [mark M | bench ...]\n");
		return 2;
	}
	bdf = argv[1];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 3 && !strcmp(argv[2], "mark"))
		return mark((unsigned int)atoi(argv[3]));
	if (argc > 2 && !strcmp(argv[2], "bench"))
		return bench_main(argc, argv);
	bad_input();
	for (int p = 0; p < N_POL; p++)
		release_then_dma_faults(p);
	printf("kshim_edu: %d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
