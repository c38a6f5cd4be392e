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
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <iovaq/iovaq.h>

#include "edu.h"

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
