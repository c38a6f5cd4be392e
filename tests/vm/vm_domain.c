// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The VM tier's domain tests (docs/vm-testbed.md): a libiovaq domain on the iommufd and
 * vfio-type1 backends, which open QEMU's edu device themselves (IOVAQ_TEST_EDU=DDDD:BB:DD.F),
 * inside a guest with an emulated VT-d.
 *
 * release_then_dma_faults, per backend and policy (strict, deferred, safe-deferred,
 * safe-deferred+arenas): a device write through the domain's mapping lands in the host buffer;
 * after the release (unmap, or arena unlink + sync) and, for the deferred policies, after
 * t_safe (iovaq_domain_sync(); safe-deferred: the cookie came back), the same write does not
 * land, the DMAR fault interrupt count moves and the guest kernel logs a "DMAR: [DMA Write"
 * line naming the IOVA. Closing leaves no file descriptor behind.
 *
 * Bad input, each a clear error naming the missing piece and leaving no file descriptor
 * behind: the device bound to another driver (pci-stub when the kernel has it) or to none;
 * no /dev/iommu and no /dev/vfio (a child in a mount namespace whose /dev is empty); a
 * non-root user (permission denied on /dev/iommu, or on the IOMMU group's /dev/vfio/N).
 *
 * VFIO type1's mapping limit, set small through the module parameter dma_entry_limit: kept
 * (optimistic-teardown) mappings give their slots back at the limit, one UNMAP_DMA per run of
 * adjacent IOVAs; queued releases hold none; a container full of live mappings makes the map
 * fail with -ENOSPC and a reason naming dma_entry_limit, after a flush, with nothing leaked;
 * an arena link is one mapping whatever its length.
 *
 * The device taken away while mapped: an adopted iommufd IOAS whose device the owner detaches
 * (DMA faults, the domain goes on and is destroyed cleanly); a guest-side PCI removal, which
 * vfio-pci holds until the backend is closed, then a rescan and vfio-pci again.
 *
 * The guest kernel rate-limits its DMAR fault messages (drivers/iommu/intel/dmar.c: a burst of
 * 10 calls per 5 s, three per fault), so the fault tests space their faults (fault_gap()). Tests share the one
 * device: run with CRITERION_JOBS=1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <dirent.h>
#include <grp.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdarg.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <iovaq/iovaq.h>

#include "edu.h"

#if defined(__has_include)
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#if defined(VFIO_DEVICE_BIND_IOMMUFD) && defined(VFIO_DEVICE_DETACH_IOMMUFD_PT) && \
	defined(IOMMU_IOAS_MAP)
#define VM_HAVE_IOMMUFD 1
#endif
#endif
#endif

#define PAGE 4096u

static const char *const backends[] = { "iommufd", "vfio-type1" };
enum { P_STRICT, P_DEFERRED, P_SAFE, P_ARENAS, N_POL };
static const char *const pol_names[] = { "strict", "deferred", "safe-deferred",
					 "safe-deferred+arenas" };
static const uint32_t pol_lib[] = { IOVAQ_POLICY_STRICT, IOVAQ_POLICY_DEFERRED,
				    IOVAQ_POLICY_SAFE_DEFERRED, IOVAQ_POLICY_SAFE_DEFERRED };

static const char *edu_bdf(void)
{
	const char *s = getenv("IOVAQ_TEST_EDU");

	return s && *s ? s : NULL;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the directory's own fd */
}

/* Open backend @b on the edu device; 0, or the error with iovaq_backend_why() in @why. */
static int open_be(unsigned int b, const char *dev, struct iovaq_backend **be, char *why,
		   size_t why_len)
{
	IOVAQ_OPTS(iovaq_iommufd_opts, io, .device = dev);
	IOVAQ_OPTS(iovaq_vfio_type1_opts, vo, .device = dev);
	IOVAQ_OPTS(iovaq_backend_opts, bo, .name = backends[b],
		   .backend_opts = b == 0 ? (const void *)&io : (const void *)&vo);
	int err = iovaq_backend_open(&bo, be);

	if (err)
		snprintf(why, why_len, "%s", iovaq_backend_why());
	return err;
}

/* Skip when this kernel lacks the backend's interface (Debian's kernel has no /dev/iommu). */
static void skip_if_absent(unsigned int b)
{
	if (!edu_bdf())
		cr_skip_test("IOVAQ_TEST_EDU is not set: the VM tier's init sets it");
	if (b == 0 && access("/dev/iommu", F_OK))
		cr_skip_test("no /dev/iommu: this kernel has no CONFIG_IOMMUFD");
}

/* ---- the guest kernel's log ----------------------------------------------------------- */

/* Lines of the kernel log holding both @a and @b. */
static unsigned int klog_count(const char *a, const char *b)
{
	int len = klogctl(10 /* SYSLOG_ACTION_SIZE_BUFFER */, NULL, 0);
	unsigned int n = 0;
	char *buf, *line, *save = NULL;

	cr_assert_gt(len, 0, "klogctl(SIZE_BUFFER): %s", strerror(errno));
	buf = malloc((size_t)len + 1);
	cr_assert_not_null(buf);
	len = klogctl(3 /* SYSLOG_ACTION_READ_ALL */, buf, len);
	cr_assert_geq(len, 0, "klogctl(READ_ALL): %s", strerror(errno));
	buf[len] = '\0';
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
		n += strstr(line, a) && strstr(line, b);
	free(buf);
	return n;
}

/*
 * Keep the guest's fault messages under its rate limit: dmar_fault() calls __ratelimit() once
 * for the status line and once per loop pass, the last pass finding no record: three calls per
 * fault against a burst of 10 per 5 s, so only three faults per window are logged in full. At
 * least 5.2 s of quiet before the first fault of this program (the suites before it fault too),
 * then 1.8 s between faults.
 * Tests run in forked workers, so the last fault's time lives in a file.
 */
static void fault_gap(void)
{
	static const char path[] = "/tmp/iovaq-vm-domain.lastfault";
	struct timespec now;
	double last = 0, t, gap = 5.2;
	FILE *f = fopen(path, "r");

	clock_gettime(CLOCK_BOOTTIME, &now);
	t = (double)now.tv_sec + (double)now.tv_nsec / 1e9;
	if (f) {
		if (fscanf(f, "%lf", &last) == 1)
			gap = 1.8;
		fclose(f);
	} else {
		last = t;
	}
	if (t < last + gap)
		edu_sleep_ms((unsigned int)((last + gap - t) * 1000) + 1);
	clock_gettime(CLOCK_BOOTTIME, &now);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fprintf(f, "%.3f\n", (double)now.tv_sec + (double)now.tv_nsec / 1e9);
	fclose(f);
}

/* ---- a DMA-after-release test per backend and policy ---------------------------------- */

struct param {
	unsigned int backend, pol;
};

static void free_params(struct criterion_test_params *crp)
{
	cr_free(crp->params);
}

ParameterizedTestParameters(domain, release_then_dma_faults)
{
	struct param *p = cr_malloc(sizeof(*p) * 2 * N_POL);
	size_t n = 0;

	for (unsigned int b = 0; b < 2; b++)
		for (unsigned int pol = 0; pol < N_POL; pol++)
			p[n++] = (struct param){ b, pol };
	return cr_make_param_array(struct param, p, n, free_params);
}

static uint64_t cookies[8];
static unsigned int n_cookies;

static void on_complete(void *arg, uint64_t cookie)
{
	(void)arg;
	if (n_cookies < 8)
		cookies[n_cookies++] = cookie;
}

/* edu writes @pat (one page) to @iova, staged through the scratch page at @siova. */
static int device_write(struct edu *e, uint8_t *scratch, iovaq_iova_t siova, iovaq_iova_t iova,
			uint8_t pat, int *faulted)
{
	uint64_t f0;
	int err;

	memset(scratch, pat, PAGE);
	f0 = edu_dmar_faults();
	err = edu_xfer(e, siova, EDU_BUF, PAGE, 0);
	if (err)
		return err;
	cr_assert(!edu_faulted(f0), "the scratch page at 0x%" PRIx64 " faulted", siova);
	f0 = edu_dmar_faults();
	err = edu_xfer(e, EDU_BUF, iova, PAGE, 1);
	*faulted = edu_faulted(f0);
	return err;
}

static int all_bytes(const uint8_t *b, uint8_t v)
{
	for (unsigned int i = 0; i < PAGE; i++)
		if (b[i] != v)
			return 0;
	return 1;
}

ParameterizedTest(struct param *p, domain, release_then_dma_faults, .timeout = 120)
{
	const char *be_name = backends[p->backend], *pol = pol_names[p->pol];
	int fds0 = count_fds(), faulted, err;
	struct iovaq_backend *be = NULL;
	struct iovaq_domain *dom = NULL;
	struct iovaq_arena *arena = NULL;
	iovaq_iova_t siova, tiova;
	char why[512], addr[64];
	unsigned int logged0;
	uint8_t *scratch, *buf;
	struct edu e;

	skip_if_absent(p->backend);
	err = open_be(p->backend, edu_bdf(), &be, why, sizeof(why));
	cr_assert_eq(err, 0, "[%s] open: %s: %s", be_name, iovaq_strerror(err), why);
	cr_assert_eq(edu_init(&e, iovaq_backend_device_fd(be), why, sizeof(why)), 0,
		     "[%s] edu: %s", be_name, why);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = pol_lib[p->pol],
		   .complete = on_complete);
	cr_assert_eq(iovaq_domain_create(&o, &dom), 0);

	scratch = aligned_alloc(PAGE, PAGE);
	buf = aligned_alloc(PAGE, PAGE);
	cr_assert(scratch && buf);
	memset(buf, 0x11, PAGE);
	cr_assert_eq(iovaq_domain_map(dom, scratch, PAGE, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
				      UINT64_MAX, &siova), 0);
	if (p->pol == P_ARENAS) {
		cr_assert_eq(iovaq_arena_reserve(dom, 4, UINT64_MAX, &arena), 0);
		cr_assert_eq(iovaq_arena_link(arena, 1, buf, PAGE, IOVAQ_PROT_WRITE, &tiova), 0);
	} else {
		cr_assert_eq(iovaq_domain_map(dom, buf, PAGE, IOVAQ_PROT_WRITE, UINT64_MAX, &tiova),
			     0);
	}

	/* Mapped: the write lands, no fault. */
	cr_assert_eq(device_write(&e, scratch, siova, tiova, 0xa5, &faulted), 0);
	cr_assert(!faulted, "[%s %s] a device write to the mapped IOVA 0x%" PRIx64 " faulted",
		  be_name, pol, tiova);
	cr_assert(all_bytes(buf, 0xa5), "[%s %s] a device write to 0x%" PRIx64 " did not land "
		  "in its host page", be_name, pol, tiova);

	/* Released and, for the deferred policies, past t_safe. */
	if (p->pol == P_ARENAS) {
		cr_assert_eq(iovaq_arena_unlink(arena, 1, PAGE), 0);
		cr_assert_eq(iovaq_arena_sync(arena, 7), 0);
	} else {
		cr_assert_eq(iovaq_domain_unmap(dom, tiova, PAGE, 7), 0);
	}
	if (p->pol != P_STRICT)
		cr_assert_eq(iovaq_domain_sync(dom), 0);
	if (p->pol == P_SAFE || p->pol == P_ARENAS)
		cr_assert(n_cookies == 1 && cookies[0] == 7,
			  "[%s %s] the release's cookie did not come back at t_safe (%u cookies)",
			  be_name, pol, n_cookies);
	cr_assert_eq(iovaq_domain_check(dom), 0);

	snprintf(addr, sizeof(addr), "fault addr 0x%" PRIx64, tiova);
	logged0 = klog_count("DMA Write", addr);
	fault_gap();
	cr_assert_eq(device_write(&e, scratch, siova, tiova, 0x5a, &faulted), 0);
	cr_assert(all_bytes(buf, 0xa5), "[%s %s] a device write after the release landed in the "
		  "host page (IOVA 0x%" PRIx64 ")", be_name, pol, tiova);
	cr_assert(faulted, "[%s %s] a device write to the released IOVA 0x%" PRIx64 " raised no "
		  "DMAR fault interrupt", be_name, pol, tiova);
	for (int i = 0; i < 100 && klog_count("DMA Write", addr) == logged0; i++)
		edu_sleep_ms(10);
	cr_assert_gt(klog_count("DMA Write", addr), logged0,
		     "[%s %s] the guest kernel logged no \"DMAR: [DMA Write ...] %s\" line",
		     be_name, pol, addr);

	iovaq_arena_release(arena);
	cr_assert_eq(iovaq_domain_unmap(dom, siova, PAGE, 8), 0);
	cr_assert_eq(iovaq_domain_sync(dom), 0);
	iovaq_domain_destroy(dom);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), 0, "[%s %s] pages still pinned", be_name,
		     pol);
	iovaq_backend_close(be);
	cr_assert_eq(count_fds(), fds0, "[%s %s] file descriptors leaked", be_name, pol);
	free(buf);
	free(scratch);
}

/* ---- bad input ------------------------------------------------------------------------ */

/* Bind the device to @drv ("" for none) through driver_override; 0 or -errno. */
static int rebind(const char *bdf, const char *drv)
{
	char p[256], cur[256];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(p, cur, sizeof(cur) - 1);
	if (n >= 0) {
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver/unbind", bdf);
		fd = open(p, O_WRONLY);
		if (fd < 0 || write(fd, bdf, strlen(bdf)) < 0) {
			if (fd >= 0)
				close(fd);
			return -errno;
		}
		close(fd);
	}
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver_override", bdf);
	fd = open(p, O_WRONLY);
	if (fd < 0 || write(fd, *drv ? drv : "\n", *drv ? strlen(drv) : 1) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	close(fd);
	if (!*drv)
		return 0;
	fd = open("/sys/bus/pci/drivers_probe", O_WRONLY);
	if (fd < 0 || write(fd, bdf, strlen(bdf)) < 0) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	close(fd);
	return 0;
}

Test(bad_input, device_bound_elsewhere, .timeout = 60)
{
	const char *bdf = edu_bdf();
	int stub = !access("/sys/bus/pci/drivers/pci-stub", F_OK);
	const char *other = stub ? "pci-stub" : "";
	struct iovaq_backend *be = NULL;
	char why[512], want[128];
	int fds0 = count_fds();

	if (!bdf)
		cr_skip_test("IOVAQ_TEST_EDU is not set");
	cr_assert_eq(rebind(bdf, other), 0, "cannot move %s to %s", bdf, stub ? other : "none");
	snprintf(want, sizeof(want), "bound to %s, not vfio-pci", stub ? other : "no driver");
	for (unsigned int b = 0; b < 2; b++) {
		int err = open_be(b, bdf, &be, why, sizeof(why));

		cr_expect_eq(err, -ENODEV, "[%s] open of a device bound to %s: %d (%s)",
			     backends[b], stub ? other : "no driver", err, why);
		cr_expect(strstr(why, want) && strstr(why, bdf),
			  "[%s] the reason does not name the driver: \"%s\"", backends[b], why);
		cr_expect_eq(count_fds(), fds0, "[%s] file descriptors leaked", backends[b]);
	}
	cr_assert_eq(rebind(bdf, "vfio-pci"), 0, "cannot bind %s back to vfio-pci", bdf);
	cr_assert_eq(open_be(1, bdf, &be, why, sizeof(why)), 0,
		     "after binding back to vfio-pci: %s", why);
	iovaq_backend_close(be);
	cr_log_info("bound to %s: refused as expected", stub ? other : "no driver");
}

/*
 * Run @fn in a child (so that namespaces and credentials do not leak into the test) and
 * return what it wrote: "errno|fds-before|fds-after|why".
 */
static void in_child(void (*fn)(int out), char *res, size_t len)
{
	int pfd[2], st;
	ssize_t n;
	pid_t pid;

	cr_assert_eq(pipe(pfd), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		close(pfd[0]);
		fn(pfd[1]);
		_exit(0);
	}
	close(pfd[1]);
	n = read(pfd[0], res, len - 1);
	res[n > 0 ? n : 0] = '\0';
	close(pfd[0]);
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && !WEXITSTATUS(st), "the child failed: %s", res);
}

static void report_open(int out, unsigned int b)
{
	struct iovaq_backend *be = NULL;
	char why[512], msg[700];
	int fds0 = count_fds(), err;

	err = open_be(b, edu_bdf(), &be, why, sizeof(why));
	if (!err)
		iovaq_backend_close(be);
	snprintf(msg, sizeof(msg), "%d|%d|%d|%s", err, fds0, count_fds(), err ? why : "");
	if (write(out, msg, strlen(msg)) < 0)
		_exit(3);
}

/* In a private mount namespace whose /dev is an empty tmpfs. */
static void no_dev_child(int out)
{
	if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/dev", "tmpfs", 0, "mode=0755")) {
		dprintf(out, "namespace set-up failed: %s", strerror(errno));
		_exit(2);
	}
	report_open(out, (unsigned int)atoi(getenv("IOVAQ_VM_CHILD_BACKEND")));
}

static void unprivileged_child(int out)
{
	if (setgroups(0, NULL) || setgid(65534) || setuid(65534)) {
		dprintf(out, "cannot drop to uid 65534: %s", strerror(errno));
		_exit(2);
	}
	report_open(out, (unsigned int)atoi(getenv("IOVAQ_VM_CHILD_BACKEND")));
}

static void expect_refusal(unsigned int b, const char *res, int want_err, const char *what,
			   const char *name)
{
	int err = 0, f0 = -1, f1 = -2, pos = 0;

	cr_assert_eq(sscanf(res, "%d|%d|%d|%n", &err, &f0, &f1, &pos), 3, "child said: %s", res);
	cr_expect_eq(err, want_err, "[%s] %s: open returned %d (%s), expected %d", backends[b],
		     what, err, res + pos, want_err);
	cr_expect(strstr(res + pos, name) != NULL, "[%s] %s: the reason does not name %s: \"%s\"",
		  backends[b], what, name, res + pos);
	cr_expect_eq(f0, f1, "[%s] %s: file descriptors leaked (%d -> %d)", backends[b], what, f0,
		     f1);
	cr_log_info("[%s] %s: %s", backends[b], what, res + pos);
}

Test(bad_input, no_dev_iommu_no_dev_vfio, .timeout = 60)
{
	char res[700];

	if (!edu_bdf())
		cr_skip_test("IOVAQ_TEST_EDU is not set");
	setenv("IOVAQ_VM_CHILD_BACKEND", "0", 1);
	in_child(no_dev_child, res, sizeof(res));
	expect_refusal(0, res, -ENODEV, "no /dev/iommu", "/dev/iommu missing");
	setenv("IOVAQ_VM_CHILD_BACKEND", "1", 1);
	in_child(no_dev_child, res, sizeof(res));
	expect_refusal(1, res, -ENODEV, "no /dev/vfio", "/dev/vfio/vfio missing");
}

Test(bad_input, permission_denied_as_non_root, .timeout = 60)
{
	char res[700];

	if (!edu_bdf())
		cr_skip_test("IOVAQ_TEST_EDU is not set");
	if (geteuid())
		cr_skip_test("needs root to drop to another user");
	if (!access("/dev/iommu", F_OK)) {
		setenv("IOVAQ_VM_CHILD_BACKEND", "0", 1);
		in_child(unprivileged_child, res, sizeof(res));
		expect_refusal(0, res, -EACCES, "as uid 65534", "permission denied opening /dev/iommu");
	}
	setenv("IOVAQ_VM_CHILD_BACKEND", "1", 1);
	in_child(unprivileged_child, res, sizeof(res));
	expect_refusal(1, res, -EACCES, "as uid 65534", "permission denied opening /dev/vfio/");
}

/* ---- the mapping limit (vfio-type1) ----------------------------------------------------- */

/*
 * VFIO_IOMMU_UNMAP_DMA calls this program made. The library is linked statically into it, so
 * this ioctl() takes its calls (and edu.h's) and counts them on their way to the kernel.
 */
static unsigned long n_unmap_dma;

int ioctl(int fd, unsigned long req, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, req);
	arg = va_arg(ap, void *);
	va_end(ap);
	if (req == VFIO_IOMMU_UNMAP_DMA)
		n_unmap_dma++;
	return (int)syscall(SYS_ioctl, fd, req, arg);
}

#define DMA_LIMIT_PARAM "/sys/module/vfio_iommu_type1/parameters/dma_entry_limit"
#define LIMIT 8u

static long saved_limit = -1;

static long read_limit(void)
{
	FILE *f = fopen(DMA_LIMIT_PARAM, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

static int write_limit(long v)
{
	FILE *f = fopen(DMA_LIMIT_PARAM, "w");
	int ok;

	if (!f)
		return -errno;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok ? 0 : -EIO;
}

/* Whatever happened in the test, the module parameter goes back. */
static void limit_fini(void)
{
	if (saved_limit >= 0)
		write_limit(saved_limit);
	saved_limit = -1;
}

/*
 * vfio-type1 on edu with a container that holds at most @n mappings: the kernel copies
 * dma_entry_limit into the container when the type1 IOMMU is set on it (the backend's open),
 * so the parameter goes back to its value right after.
 */
static struct iovaq_backend *open_limited(unsigned int n)
{
	struct iovaq_backend *be = NULL;
	char why[512];
	int err;

	skip_if_absent(1);
	cr_assert(!access(DMA_LIMIT_PARAM, W_OK), "%s is missing or read-only: %s",
		  DMA_LIMIT_PARAM, strerror(errno));
	saved_limit = read_limit();
	cr_assert_gt(saved_limit, 0, "cannot read %s", DMA_LIMIT_PARAM);
	cr_assert_eq(write_limit(n), 0, "cannot write %s", DMA_LIMIT_PARAM);
	err = open_be(1, edu_bdf(), &be, why, sizeof(why));
	cr_assert_eq(write_limit(saved_limit), 0, "cannot restore %s to %ld", DMA_LIMIT_PARAM,
		     saved_limit);
	cr_log_info("dma_entry_limit %ld, %u for this test's container", saved_limit, n);
	saved_limit = -1;
	cr_assert_eq(err, 0, "open: %s: %s", iovaq_strerror(err), why);
	return be;
}

static struct iovaq_domain *limit_domain(struct iovaq_backend *be, uint32_t policy,
					 uint64_t teardown_ns)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = policy,
		   .max_window_ns = 3600ull * 1000000000ull, .teardown_ns = teardown_ns,
		   .teardown_entries = teardown_ns ? 64 : 0);
	struct iovaq_domain *dom = NULL;

	cr_assert_eq(iovaq_domain_create(&o, &dom), 0);
	return dom;
}

static struct iovaq_domain_stats dstats(struct iovaq_domain *dom)
{
	IOVAQ_OPTS(iovaq_domain_stats, st);

	cr_assert_eq(iovaq_domain_get_stats(dom, &st), 0);
	return st;
}

/* Runs of IOVA-adjacent pages among @n single-page IOVAs (sorted here). */
static unsigned int page_runs(iovaq_iova_t *v, unsigned int n)
{
	unsigned int runs = 0;

	for (unsigned int i = 1; i < n; i++)
		for (unsigned int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			iovaq_iova_t t = v[j];

			v[j] = v[j - 1];
			v[j - 1] = t;
		}
	for (unsigned int i = 0; i < n; i++)
		runs += !i || v[i] != v[i - 1] + PAGE;
	return runs;
}

/* Unmap @n single pages, sync, destroy; nothing pinned, the invariant holds throughout. */
static void limit_teardown(struct iovaq_backend *be, struct iovaq_domain *dom,
			   const iovaq_iova_t *v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		cr_assert_eq(iovaq_domain_unmap(dom, v[i], PAGE, i), 0);
	cr_assert_eq(iovaq_domain_sync(dom), 0);
	cr_assert_eq(iovaq_domain_check(dom), 0);
	iovaq_domain_destroy(dom);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), 0, "pages still pinned");
	iovaq_backend_close(be);
}

/*
 * Deferred with optimistic teardown: the released buffers stay mapped, and hold the
 * container's slots. A map at the limit unmaps them (one UNMAP_DMA for each run of adjacent
 * IOVAs), flushes, retries and succeeds.
 */
Test(mapping_limit, kept_releases_give_slots_back, .timeout = 120, .fini = limit_fini)
{
	int fds0 = count_fds();
	struct iovaq_backend *be = open_limited(LIMIT);
	struct iovaq_domain *dom = limit_domain(be, IOVAQ_POLICY_DEFERRED, 3600ull * 1000000000ull);
	uint8_t *bufs = aligned_alloc(PAGE, (LIMIT + 1) * PAGE);
	iovaq_iova_t v[LIMIT], sorted[LIMIT], w;
	struct iovaq_domain_stats st;
	unsigned long calls0;
	unsigned int runs;
	int err;

	cr_assert_not_null(bufs);
	for (unsigned int i = 0; i < LIMIT; i++) {
		err = iovaq_domain_map(dom, bufs + i * PAGE, PAGE, IOVAQ_PROT_READ, UINT64_MAX,
				       &v[i]);
		cr_assert_eq(err, 0, "map %u of %u: %s: %s", i + 1, LIMIT, iovaq_strerror(err),
			     iovaq_backend_why());
		sorted[i] = v[i];
	}
	runs = page_runs(sorted, LIMIT);
	cr_assert_lt(runs, LIMIT, "no two of %u single pages got adjacent IOVAs", LIMIT);
	for (unsigned int i = 0; i < LIMIT; i++)
		cr_assert_eq(iovaq_domain_unmap(dom, v[i], PAGE, i), 0);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), LIMIT * PAGE,
		     "optimistic teardown did not keep the released buffers mapped");
	calls0 = n_unmap_dma;
	err = iovaq_domain_map(dom, bufs + LIMIT * PAGE, PAGE, IOVAQ_PROT_READ, UINT64_MAX, &w);
	cr_assert_eq(err, 0, "the map at the limit failed after the flush: %s: %s",
		     iovaq_strerror(err), iovaq_backend_why());
	st = dstats(dom);
	cr_assert_eq(st.flush_nospc, 1, "no flush for -ENOSPC (%" PRIu64 ")", st.flush_nospc);
	cr_assert_eq(st.teardown_evictions, LIMIT);
	cr_assert_eq(n_unmap_dma - calls0, runs,
		     "%lu VFIO_IOMMU_UNMAP_DMA calls for %u runs of adjacent kept mappings",
		     n_unmap_dma - calls0, runs);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), PAGE);
	cr_assert_eq(iovaq_domain_check(dom), 0);
	cr_log_info("%u kept mappings in %u run(s): %lu UNMAP_DMA call(s), then the map succeeded",
		    LIMIT, runs, n_unmap_dma - calls0);
	limit_teardown(be, dom, &w, 1);
	cr_assert_eq(count_fds(), fds0, "file descriptors leaked");
	free(bufs);
}

/*
 * Safe-deferred: a release unmaps at once (VFIO_IOMMU_UNMAP_DMA invalidates), and only its
 * IOVA waits in the queue, so queued releases hold no slot: a full set of new maps succeeds
 * with all of them queued and no flush.
 */
Test(mapping_limit, queued_releases_hold_no_slot, .timeout = 120, .fini = limit_fini)
{
	struct iovaq_backend *be = open_limited(LIMIT);
	struct iovaq_domain *dom = limit_domain(be, IOVAQ_POLICY_SAFE_DEFERRED, 0);
	uint8_t *bufs = aligned_alloc(PAGE, 2 * LIMIT * PAGE);
	iovaq_iova_t v[LIMIT], w[LIMIT];
	struct iovaq_domain_stats st;
	int err;

	cr_assert_not_null(bufs);
	for (unsigned int i = 0; i < LIMIT; i++)
		cr_assert_eq(iovaq_domain_map(dom, bufs + i * PAGE, PAGE, IOVAQ_PROT_READ,
					      UINT64_MAX, &v[i]), 0);
	for (unsigned int i = 0; i < LIMIT; i++)
		cr_assert_eq(iovaq_domain_unmap(dom, v[i], PAGE, i), 0);
	for (unsigned int i = 0; i < LIMIT; i++) {
		err = iovaq_domain_map(dom, bufs + (LIMIT + i) * PAGE, PAGE, IOVAQ_PROT_READ,
				       UINT64_MAX, &w[i]);
		cr_assert_eq(err, 0, "map %u with %u releases queued: %s: %s", i + 1, LIMIT,
			     iovaq_strerror(err), iovaq_backend_why());
	}
	st = dstats(dom);
	cr_assert_eq(st.flushes, 0, "%" PRIu64 " flushes", st.flushes);
	cr_assert_eq(st.queued_pages, LIMIT);
	cr_assert_eq(iovaq_domain_check(dom), 0);
	limit_teardown(be, dom, w, LIMIT);
	free(bufs);
}

/*
 * The container full of live mappings: the domain flushes what is queued, retries, and then
 * reports -ENOSPC, with a reason that names the limit. Nothing leaks, and after an unmap the
 * domain maps again.
 */
Test(mapping_limit, full_of_live_mappings, .timeout = 120, .fini = limit_fini)
{
	int fds0 = count_fds();
	struct iovaq_backend *be = open_limited(LIMIT);
	struct iovaq_domain *dom = limit_domain(be, IOVAQ_POLICY_SAFE_DEFERRED, 0);
	uint8_t *bufs = aligned_alloc(PAGE, (LIMIT + 2) * PAGE);
	iovaq_iova_t v[LIMIT], x;
	struct iovaq_domain_stats st;
	const char *why;
	int err;

	cr_assert_not_null(bufs);
	for (unsigned int i = 0; i < LIMIT; i++)
		cr_assert_eq(iovaq_domain_map(dom, bufs + i * PAGE, PAGE, IOVAQ_PROT_READ,
					      UINT64_MAX, &v[i]), 0);
	/* One release queued, and its slot refilled: the queue has something to flush. */
	cr_assert_eq(iovaq_domain_unmap(dom, v[0], PAGE, 0), 0);
	cr_assert_eq(iovaq_domain_map(dom, bufs + LIMIT * PAGE, PAGE, IOVAQ_PROT_READ,
				      UINT64_MAX, &v[0]), 0);
	err = iovaq_domain_map(dom, bufs + (LIMIT + 1) * PAGE, PAGE, IOVAQ_PROT_READ, UINT64_MAX,
			       &x);
	why = iovaq_backend_why();
	cr_assert_eq(err, -ENOSPC, "map beyond the limit: %d (%s)", err, iovaq_strerror(err));
	cr_assert(strstr(why, "dma_entry_limit") && strstr(why, "mapping limit"),
		  "the reason does not name the limit: \"%s\"", why);
	st = dstats(dom);
	cr_assert_eq(st.flush_nospc, 1, "the domain did not flush before reporting -ENOSPC");
	cr_assert_eq(st.map_errors, 1);
	cr_assert_eq(st.mapped_pages, LIMIT);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), LIMIT * PAGE);
	cr_assert_eq(iovaq_domain_check(dom), 0);
	cr_log_info("-ENOSPC: %s", why);
	/* Usable after an unmap. */
	cr_assert_eq(iovaq_domain_unmap(dom, v[1], PAGE, 1), 0);
	err = iovaq_domain_map(dom, bufs + (LIMIT + 1) * PAGE, PAGE, IOVAQ_PROT_READ, UINT64_MAX,
			       &v[1]);
	cr_assert_eq(err, 0, "map after an unmap: %s: %s", iovaq_strerror(err),
		     iovaq_backend_why());
	limit_teardown(be, dom, v, LIMIT);
	cr_assert_eq(count_fds(), fds0, "file descriptors leaked");
	free(bufs);
}

/*
 * An arena link of a contiguous host run is one mapping whatever its length; two links are
 * two.
 */
Test(mapping_limit, arena_link_is_one_mapping, .timeout = 120, .fini = limit_fini)
{
	const unsigned int lim = 4;
	struct iovaq_backend *be = open_limited(lim);
	struct iovaq_domain *dom = limit_domain(be, IOVAQ_POLICY_SAFE_DEFERRED, 0);
	uint8_t *bufs = aligned_alloc(PAGE, 16 * PAGE);
	struct iovaq_arena *a = NULL;
	iovaq_iova_t v[3], x;
	int err;

	cr_assert_not_null(bufs);
	for (unsigned int i = 0; i < lim - 1; i++)
		cr_assert_eq(iovaq_domain_map(dom, bufs + i * PAGE, PAGE, IOVAQ_PROT_READ,
					      UINT64_MAX, &v[i]), 0);
	cr_assert_eq(iovaq_arena_reserve(dom, 8, UINT64_MAX, &a), 0);
	err = iovaq_arena_link(a, 0, bufs + 8 * PAGE, 8 * PAGE, IOVAQ_PROT_READ, NULL);
	cr_assert_eq(err, 0, "an 8-page link in the last slot: %s: %s", iovaq_strerror(err),
		     iovaq_backend_why());
	cr_assert_eq(iovaq_backend_pinned_bytes(be), (lim - 1 + 8) * PAGE);
	err = iovaq_domain_map(dom, bufs + 4 * PAGE, PAGE, IOVAQ_PROT_READ, UINT64_MAX, &x);
	cr_assert_eq(err, -ENOSPC, "the limit is not reached after %u maps and one 8-page link "
		     "(%d)", lim - 1, err);
	/* The same pages as two links take two slots: the second one finds none. */
	cr_assert_eq(iovaq_arena_unlink(a, 0, 8 * PAGE), 0);
	cr_assert_eq(iovaq_arena_sync(a, 1), 0);
	cr_assert_eq(iovaq_domain_sync(dom), 0);
	cr_assert_eq(iovaq_arena_link(a, 0, bufs + 8 * PAGE, 4 * PAGE, IOVAQ_PROT_READ, NULL), 0);
	err = iovaq_arena_link(a, 4, bufs + 12 * PAGE, 4 * PAGE, IOVAQ_PROT_READ, NULL);
	cr_assert_eq(err, -ENOSPC, "a second link took no slot of its own (%d)", err);
	cr_assert(strstr(iovaq_backend_why(), "dma_entry_limit"), "%s", iovaq_backend_why());
	cr_assert_eq(iovaq_arena_unlink(a, 0, 4 * PAGE), 0);
	iovaq_arena_release(a);
	cr_assert_eq(iovaq_domain_check(dom), 0);
	limit_teardown(be, dom, v, lim - 1);
	free(bufs);
}

/* ---- the device detached or removed while mapped ---------------------------------------- */

/*
 * iommufd, adopted as a VMM would hand it over: the VMM detaches the device from the IOAS
 * (VFIO_DEVICE_DETACH_IOMMUFD_PT) while the domain has live mappings. The device's DMA then
 * faults (the group is back on the IOMMU's blocking domain); the IOAS and its mappings stay,
 * so the domain unmaps, maps, flushes and is destroyed cleanly, and nothing stays pinned or
 * mapped in the IOAS.
 */
Test(unplug, iommufd_detach_while_mapped, .timeout = 120)
{
#ifdef VM_HAVE_IOMMUFD
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct vfio_device_detach_iommufd_pt dt = { .argsz = sizeof(dt) };
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	struct iommu_ioas_unmap all = { .size = sizeof(all), .length = UINT64_MAX };
	char why[512], path[320] = "", p[256];
	int fds0 = count_fds(), ifd, dev, faulted;
	struct iovaq_backend *be = NULL;
	struct iovaq_domain *dom = NULL;
	iovaq_iova_t siova, tiova, x;
	uint8_t *scratch, *buf;
	struct dirent *de;
	struct edu e;
	uint64_t f0;
	DIR *d;

	skip_if_absent(0);
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vfio-dev", edu_bdf());
	d = opendir(p);
	cr_assert_not_null(d, "%s: %s", p, strerror(errno));
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4))
			snprintf(path, sizeof(path), "/dev/vfio/devices/%s", de->d_name);
	closedir(d);
	ifd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	dev = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(ifd >= 0 && dev >= 0, "open /dev/iommu, %s: %s", path, strerror(errno));
	bind.iommufd = ifd;
	cr_assert_eq(ioctl(dev, VFIO_DEVICE_BIND_IOMMUFD, &bind), 0, "bind: %s", strerror(errno));
	cr_assert_eq(ioctl(ifd, IOMMU_IOAS_ALLOC, &ia), 0, "IOAS alloc: %s", strerror(errno));
	at.pt_id = ia.out_ioas_id;
	cr_assert_eq(ioctl(dev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at), 0, "attach: %s",
		     strerror(errno));
	{
		IOVAQ_OPTS(iovaq_iommufd_opts, io, .iommufd = ifd, .ioas_id = ia.out_ioas_id);
		IOVAQ_OPTS(iovaq_backend_opts, bo, .name = "iommufd", .backend_opts = &io);
		int err = iovaq_backend_open(&bo, &be);

		cr_assert_eq(err, 0, "adopt: %s: %s", iovaq_strerror(err), iovaq_backend_why());
	}
	cr_assert_eq(edu_init(&e, dev, why, sizeof(why)), 0, "edu: %s", why);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_SAFE_DEFERRED,
		   .complete = on_complete);
	cr_assert_eq(iovaq_domain_create(&o, &dom), 0);
	scratch = aligned_alloc(PAGE, PAGE);
	buf = aligned_alloc(PAGE, PAGE);
	cr_assert(scratch && buf);
	memset(buf, 0x11, PAGE);
	cr_assert_eq(iovaq_domain_map(dom, scratch, PAGE, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
				      UINT64_MAX, &siova), 0);
	cr_assert_eq(iovaq_domain_map(dom, buf, PAGE, IOVAQ_PROT_WRITE, UINT64_MAX, &tiova), 0);
	cr_assert_eq(device_write(&e, scratch, siova, tiova, 0xa5, &faulted), 0);
	cr_assert(!faulted && all_bytes(buf, 0xa5), "attached: the device write did not land");
	/* Stage the next write in edu's buffer while the scratch page is still reachable. */
	memset(scratch, 0x5a, PAGE);
	cr_assert_eq(edu_xfer(&e, siova, EDU_BUF, PAGE, 0), 0);

	cr_assert_eq(ioctl(dev, VFIO_DEVICE_DETACH_IOMMUFD_PT, &dt), 0, "detach: %s",
		     strerror(errno));
	fault_gap();
	f0 = edu_dmar_faults();
	cr_assert_eq(edu_xfer(&e, EDU_BUF, tiova, PAGE, 1), 0);
	faulted = edu_faulted(f0);
	cr_assert(all_bytes(buf, 0xa5), "a device write after the detach landed (IOVA 0x%" PRIx64
		  ")", tiova);
	cr_assert(faulted, "a device write after the detach raised no DMAR fault interrupt");

	/* The domain does not notice: its IOAS is intact. */
	cr_assert_eq(iovaq_domain_unmap(dom, tiova, PAGE, 7), 0);
	cr_assert_eq(iovaq_domain_map(dom, buf, PAGE, IOVAQ_PROT_WRITE, UINT64_MAX, &x), 0);
	cr_assert_eq(iovaq_domain_unmap(dom, x, PAGE, 8), 0);
	cr_assert_eq(iovaq_domain_unmap(dom, siova, PAGE, 9), 0);
	cr_assert_eq(iovaq_domain_sync(dom), 0);
	cr_assert_eq(iovaq_domain_check(dom), 0);
	iovaq_domain_destroy(dom);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), 0, "pages still pinned");
	iovaq_backend_close(be);
	/* Nothing of ours left in the VMM's IOAS: unmapping everything finds nothing. */
	all.ioas_id = ia.out_ioas_id;
	all.iova = 0;
	cr_assert(!ioctl(ifd, IOMMU_IOAS_UNMAP, &all) ? all.length == 0 : errno == ENOENT,
		  "the IOAS still held %llu bytes", (unsigned long long)all.length);
	close(dev);
	close(ifd);
	cr_assert_eq(count_fds(), fds0, "file descriptors leaked");
	free(buf);
	free(scratch);
#else
	cr_skip_test("built without linux/iommufd.h (VFIO_DEVICE_DETACH_IOMMUFD_PT)");
#endif
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY), err = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, s, strlen(s)) < 0)
		err = -errno;
	close(fd);
	return err;
}

static int dev_present(const char *bdf)
{
	char p[256];

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s", bdf);
	return !access(p, F_OK);
}

/* Bring the device back (rescan) and bind it to vfio-pci; 0 or a negative errno. */
static int restore_device(const char *bdf)
{
	char p[256], drv[256];
	ssize_t n;

	for (int i = 0; i < 100 && !dev_present(bdf); i++) {
		if (i % 20 == 0)
			write_str("/sys/bus/pci/rescan", "1");
		edu_sleep_ms(100);
	}
	if (!dev_present(bdf))
		return -ENODEV;
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(p, drv, sizeof(drv) - 1);
	if (n > 0) {
		drv[n] = '\0';
		if (!strcmp(strrchr(drv, '/') + 1, "vfio-pci"))
			return 0;
	}
	return rebind(bdf, "vfio-pci");
}

static void unplug_fini(void)
{
	if (edu_bdf())
		restore_device(edu_bdf());
}

ParameterizedTestParameters(unplug, remove_while_open)
{
	static unsigned int b[] = { 0, 1 };

	return cr_make_param_array(unsigned int, b, 2);
}

/*
 * Guest-side removal (/sys/bus/pci/devices/ADDR/remove) while the backend has the device open
 * and the domain has live mappings: vfio-pci sends a device request and blocks the removal
 * until the device fd is closed (the library registers no request eventfd, so the kernel logs
 * "No device request channel registered, blocked until released by user"). Destroying the
 * domain and closing the backend releases the device; the removal then completes, nothing
 * stays pinned, and the device comes back (rescan, vfio-pci) for the tests after this one.
 */
ParameterizedTest(unsigned int *b, unplug, remove_while_open, .timeout = 180,
		  .fini = unplug_fini)
{
	const char *bdf = edu_bdf(), *be_name = backends[*b];
	int fds0 = count_fds(), st = 0, err;
	struct iovaq_backend *be = NULL;
	struct iovaq_domain *dom = NULL;
	unsigned int logged0;
	char why[512], p[256];
	iovaq_iova_t v;
	uint8_t *buf;
	pid_t pid, r = 0;

	skip_if_absent(*b);
	err = open_be(*b, bdf, &be, why, sizeof(why));
	cr_assert_eq(err, 0, "[%s] open: %s: %s", be_name, iovaq_strerror(err), why);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_STRICT);
	cr_assert_eq(iovaq_domain_create(&o, &dom), 0);
	buf = aligned_alloc(PAGE, PAGE);
	cr_assert_not_null(buf);
	cr_assert_eq(iovaq_domain_map(dom, buf, PAGE, IOVAQ_PROT_WRITE, UINT64_MAX, &v), 0);

	logged0 = klog_count(bdf, "blocked until released");
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/remove", bdf);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (!pid) {
		/* Not with a copy of the device fd: the removal would wait for this child. */
		syscall(SYS_close_range, 3u, ~0u, 0u);
		_exit(write_str(p, "1") ? 1 : 0);
	}
	/* The kernel asks the device's user to let go, and waits. */
	for (int i = 0; i < 600 && klog_count(bdf, "blocked until released") == logged0; i++)
		edu_sleep_ms(50);
	cr_assert_gt(klog_count(bdf, "blocked until released"), logged0,
		     "[%s] vfio-pci logged no \"blocked until released\" for %s", be_name, bdf);
	cr_assert_eq(waitpid(pid, &st, WNOHANG), 0,
		     "[%s] the removal completed while the device was still open", be_name);
	/* The domain works on meanwhile: the container or IOAS is intact. */
	cr_assert_eq(iovaq_domain_unmap(dom, v, PAGE, 1), 0);
	cr_assert_eq(iovaq_domain_map(dom, buf, PAGE, IOVAQ_PROT_WRITE, UINT64_MAX, &v), 0);
	cr_assert_eq(iovaq_domain_check(dom), 0);

	iovaq_domain_destroy(dom);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), 0, "[%s] pages still pinned", be_name);
	iovaq_backend_close(be);
	for (int i = 0; i < 600 && (r = waitpid(pid, &st, WNOHANG)) == 0; i++)
		edu_sleep_ms(50);
	cr_assert_eq(r, pid, "[%s] the removal did not complete within 30 s of the close",
		     be_name);
	cr_assert(WIFEXITED(st) && !WEXITSTATUS(st), "[%s] writing %s failed", be_name, p);
	cr_assert(!dev_present(bdf), "[%s] %s is still there after its removal", be_name, bdf);
	cr_assert_eq(count_fds(), fds0, "[%s] file descriptors leaked", be_name);

	cr_assert_eq(restore_device(bdf), 0, "[%s] %s did not come back bound to vfio-pci",
		     be_name, bdf);
	err = open_be(*b, bdf, &be, why, sizeof(why));
	cr_assert_eq(err, 0, "[%s] open after the rescan: %s", be_name, why);
	iovaq_backend_close(be);
	free(buf);
}

/*
 * A real hot unplug: in the guest that tests/vm/run-vm.sh boots with IOVAQ_VM_HOTPLUG=1 (edu
 * behind a pcie-root-port, Debian's kernel, which has PCI hotplug built in), the test asks the
 * host for QMP device_del through the console, with the backend holding edu open and the
 * domain a live mapping. The guest's hotplug driver removes the device, and vfio-pci holds the
 * removal until the device fd is released, as for unplug::remove_while_open. Destroying the
 * domain and closing the backend let the removal, and QEMU's unplug (DEVICE_DELETED, checked
 * by tests/vm/qmp-unplug.py), complete.
 */
Test(hotplug, device_del_while_open, .timeout = 240)
{
	const char *bdf = edu_bdf();
	int fds0 = count_fds(), faulted, err, con;
	struct iovaq_backend *be = NULL;
	struct iovaq_domain *dom = NULL;
	iovaq_iova_t siova, tiova;
	uint8_t *scratch, *buf;
	unsigned int logged0;
	char why[512];
	struct edu e;

	if (!getenv("IOVAQ_VM_HOTPLUG"))
		cr_skip_test("not the hotplug guest (tests/vm/vm-test.sh boots one on Debian's "
			     "kernel: edu behind a pcie-root-port, device_del over QMP)");
	skip_if_absent(1);
	err = open_be(1, bdf, &be, why, sizeof(why));
	cr_assert_eq(err, 0, "open: %s: %s", iovaq_strerror(err), why);
	cr_assert_eq(edu_init(&e, iovaq_backend_device_fd(be), why, sizeof(why)), 0, "edu: %s",
		     why);
	IOVAQ_OPTS(iovaq_domain_opts, o, .backend = be, .policy = IOVAQ_POLICY_STRICT);
	cr_assert_eq(iovaq_domain_create(&o, &dom), 0);
	scratch = aligned_alloc(PAGE, PAGE);
	buf = aligned_alloc(PAGE, PAGE);
	cr_assert(scratch && buf);
	memset(buf, 0x11, PAGE);
	cr_assert_eq(iovaq_domain_map(dom, scratch, PAGE, IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
				      UINT64_MAX, &siova), 0);
	cr_assert_eq(iovaq_domain_map(dom, buf, PAGE, IOVAQ_PROT_WRITE, UINT64_MAX, &tiova), 0);
	cr_assert_eq(device_write(&e, scratch, siova, tiova, 0xa5, &faulted), 0);
	cr_assert(!faulted && all_bytes(buf, 0xa5),
		  "edu behind the root port: the device write did not land");

	logged0 = klog_count(bdf, "blocked until released");
	con = open("/dev/console", O_WRONLY | O_NOCTTY);
	cr_assert_geq(con, 0, "/dev/console: %s", strerror(errno));
	dprintf(con, "\niovaq-vm: hotplug: device_del now\n");
	close(con);
	/* Native PCIe hotplug would wait 5 s after the attention button; allow for it. */
	for (int i = 0; i < 1800 && klog_count(bdf, "blocked until released") == logged0; i++)
		edu_sleep_ms(50);
	cr_assert_gt(klog_count(bdf, "blocked until released"), logged0,
		     "no removal of %s began within 90 s of the device_del request", bdf);
	cr_assert(dev_present(bdf), "%s went away while the backend had it open", bdf);
	cr_assert_eq(iovaq_domain_unmap(dom, tiova, PAGE, 1), 0);
	cr_assert_eq(iovaq_domain_unmap(dom, siova, PAGE, 2), 0);
	cr_assert_eq(iovaq_domain_check(dom), 0);
	iovaq_domain_destroy(dom);
	cr_assert_eq(iovaq_backend_pinned_bytes(be), 0, "pages still pinned");
	iovaq_backend_close(be);
	for (int i = 0; i < 1200 && dev_present(bdf); i++)
		edu_sleep_ms(50);
	cr_assert(!dev_present(bdf), "%s still there 60 s after the backend closed", bdf);
	cr_assert_eq(count_fds(), fds0, "file descriptors leaked");
	free(buf);
	free(scratch);
}
