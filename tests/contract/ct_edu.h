// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * The contract suite's real device: QEMU's "edu" PCI device (vendor 0x1234, device 0x11e8)
 * behind an emulated VT-d, bound to vfio-pci (iommufd, vfio-type1), or to no driver and bound to
 * /dev/iovaq (kshim: the kernel-glue module, tests/vm/kglue/). Included by test_contract.c
 * after struct ct.
 *
 * The test owns the device: prepare() sets up what a VMM would (an iommufd with an IOAS and the
 * device attached, or a type1 container with the device's group), and the backend adopts it
 * (struct iovaq_iommufd_opts.ioas_id, IOVAQ_VFIO_TYPE1_ADOPT); for kshim it opens /dev/iovaq,
 * binds edu and the backend adopts the file (IOVAQ_KSHIM_OPTS_ADOPT). The test then also maps
 * one scratch page of its own, outside every range the tests use, that the backend never sees.
 * Through VFIO the test programs edu with the device fd's regions; without a driver (kshim) it
 * maps BAR0 from sysfs (resource0) and sets bus mastering in sysfs config space.
 *
 * edu (QEMU docs/specs/edu.rst) has a 4 KiB buffer at device address 0x40000 and one DMA engine:
 * source, destination and count registers, a command register whose bit 1 selects the
 * direction (1: buffer to RAM). A device read at an IOVA is a DMA of that IOVA into the buffer,
 * then a DMA of the buffer to the scratch page; a device write is the reverse. Each transfer
 * completes on a 100 ms timer, hence ct_device_ops.slow.
 *
 * A faulting DMA: VT-d refuses the translation, QEMU records a fault and raises the fault
 * interrupt, and the guest kernel's handler logs "DMAR: [DMA Read|Write ...]". edu itself does
 * not tell, so a transfer faulted when the DMAR fault interrupt count in /proc/interrupts moved
 * during it (see ct_edu_dma() for the second signal). The VM tier's init checks the kernel log
 * for the DMAR fault lines as well.
 *
 * The edu device must be started with dma_mask=0xffffffffffffffff: by default it clamps DMA
 * addresses to 28 bits. IOVAQ_TEST_EDU=DDDD:BB:DD.F names the device; default: the first edu.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#if defined(__linux__) && defined(__has_include)
#if __has_include(<linux/vfio.h>)
#include <linux/vfio.h>
#define CT_HAVE_VFIO 1
#endif
#if __has_include(<linux/iommufd.h>)
#include <linux/iommufd.h>
#if defined(VFIO_DEVICE_BIND_IOMMUFD) && defined(VFIO_DEVICE_ATTACH_IOMMUFD_PT) && defined(IOMMU_IOAS_MAP)
#define CT_HAVE_IOMMUFD 1
#endif
#endif
#if __has_include(<uapi/iovaq/kshim.h>) && __has_include(<linux/types.h>)
#include <sys/mman.h>
#include <uapi/iovaq/kshim.h>
#define CT_HAVE_KSHIM 1
#endif
#endif

#define EDU_REG_ID 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_START 0x1
#define EDU_DMA_TO_RAM 0x2
#define EDU_BUF 0x40000ull
#define EDU_BUF_SIZE 4096u
#define EDU_BAR0_SIZE (1u << 20)

enum { CT_EDU_IOMMUFD = 0, CT_EDU_TYPE1 = 1, CT_EDU_KSHIM = 2 };

struct ct_edu {
	int kind;		/* CT_EDU_* */
	int dev_fd, iommufd, container, group_fd;
	int kshim_fd;		/* /dev/iovaq, bound to edu (kshim) */
	volatile uint8_t *bar;	/* BAR0 mapped from sysfs (kshim), else NULL: dev_fd regions */
	uint32_t ioas_id;
	uint64_t bar0, cfg;	/* region offsets in dev_fd */
	uint8_t *scratch;	/* one granule, mapped by the test at scratch_iova */
	iovaq_iova_t scratch_iova;
	int scratch_mapped;
	char bdf[300];
#ifdef CT_HAVE_IOMMUFD
	struct iovaq_iommufd_opts ifd;
#endif
	struct iovaq_vfio_type1_opts vt1;
	struct iovaq_kshim_opts ksh;
};

/* edu register access: BAR0 through the VFIO device fd, or mapped from sysfs. */
static int ct_edu_wr(struct ct_edu *e, uint64_t reg, const void *v, size_t n)
{
	if (e->bar) {
		if (n == 8)
			*(volatile uint64_t *)(e->bar + reg) = *(const uint64_t *)v;
		else
			*(volatile uint32_t *)(e->bar + reg) = *(const uint32_t *)v;
		return (int)n;
	}
	return (int)pwrite(e->dev_fd, v, n, (off_t)(e->bar0 + reg));
}

static int ct_edu_rd(struct ct_edu *e, uint64_t reg, void *v, size_t n)
{
	if (e->bar) {
		if (n == 8)
			*(uint64_t *)v = *(volatile uint64_t *)(e->bar + reg);
		else
			*(uint32_t *)v = *(volatile uint32_t *)(e->bar + reg);
		return (int)n;
	}
	return (int)pread(e->dev_fd, v, n, (off_t)(e->bar0 + reg));
}

/* Find the edu device: IOVAQ_TEST_EDU, or the first PCI device 1234:11e8. */
static int ct_edu_find(char *bdf, size_t len, char *why, size_t why_len)
{
	const char *env = getenv("IOVAQ_TEST_EDU");
	struct dirent *de;
	DIR *d;

	if (env && *env) {
		snprintf(bdf, len, "%s", env);
		return 0;
	}
	d = opendir("/sys/bus/pci/devices");
	if (!d) {
		snprintf(why, why_len, "no /sys/bus/pci/devices");
		return -ENODEV;
	}
	while ((de = readdir(d))) {
		char p[512], v[32] = "", dv[32] = "";
		FILE *f;

		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vendor", de->d_name);
		if ((f = fopen(p, "r"))) {
			if (!fgets(v, sizeof(v), f))
				v[0] = '\0';
			fclose(f);
		}
		snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/device", de->d_name);
		if ((f = fopen(p, "r"))) {
			if (!fgets(dv, sizeof(dv), f))
				dv[0] = '\0';
			fclose(f);
		}
		if (!strncmp(v, "0x1234", 6) && !strncmp(dv, "0x11e8", 6)) {
			snprintf(bdf, len, "%s", de->d_name);
			closedir(d);
			return 0;
		}
	}
	closedir(d);
	snprintf(why, why_len, "no QEMU edu PCI device here (the VM tier, tests/vm/, has one)");
	return -ENODEV;
}

#ifdef CT_HAVE_VFIO
/* Region offsets, bus mastering on. */
static int ct_edu_regions(struct ct_edu *e, char *why, size_t why_len)
{
	struct vfio_region_info r = { .argsz = sizeof(r), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint32_t id = 0;
	uint16_t cmd;

	if (ioctl(e->dev_fd, VFIO_DEVICE_GET_REGION_INFO, &r)) {
		snprintf(why, why_len, "VFIO_DEVICE_GET_REGION_INFO BAR0: %s", strerror(errno));
		return -errno;
	}
	e->bar0 = r.offset;
	r = (struct vfio_region_info){ .argsz = sizeof(r), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	if (ioctl(e->dev_fd, VFIO_DEVICE_GET_REGION_INFO, &r)) {
		snprintf(why, why_len, "VFIO_DEVICE_GET_REGION_INFO config: %s", strerror(errno));
		return -errno;
	}
	e->cfg = r.offset;
	if (pread(e->dev_fd, &cmd, 2, (off_t)(e->cfg + 4)) != 2)
		return -EIO;
	cmd |= 0x6; /* memory space, bus master */
	if (pwrite(e->dev_fd, &cmd, 2, (off_t)(e->cfg + 4)) != 2)
		return -EIO;
	if (pread(e->dev_fd, &id, 4, (off_t)(e->bar0 + EDU_REG_ID)) != 4 ||
	    (id & 0xffff) != 0x00ed) {
		snprintf(why, why_len, "%s: BAR0 identification 0x%08x is not edu's", e->bdf, id);
		return -EIO;
	}
	return 0;
}
#endif

/* Sum of the DMAR fault interrupt counts ("dmar" lines of /proc/interrupts). */
static uint64_t ct_edu_dmar_faults(void)
{
	char line[1024];
	uint64_t sum = 0;
	FILE *f = fopen("/proc/interrupts", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *p = strchr(line, ':');

		if (!p || !strstr(line, "dmar"))
			continue;
		for (p++;;) {
			char *end;
			unsigned long long v = strtoull(p, &end, 10);

			if (end == p)
				break;
			sum += v;
			p = end;
		}
	}
	fclose(f);
	return sum;
}

static void ct_edu_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* One edu transfer; 0, or -ETIMEDOUT if it did not complete within 5 s. */
static int ct_edu_xfer(struct ct_edu *e, uint64_t src, uint64_t dst, uint32_t cnt, int to_ram)
{
	uint32_t cmd = EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0);
	uint64_t cnt64 = cnt;

	cr_assert_eq(ct_edu_wr(e, EDU_REG_DMA_SRC, &src, 8), 8);
	cr_assert_eq(ct_edu_wr(e, EDU_REG_DMA_DST, &dst, 8), 8);
	cr_assert_eq(ct_edu_wr(e, EDU_REG_DMA_CNT, &cnt64, 8), 8);
	cr_assert_eq(ct_edu_wr(e, EDU_REG_DMA_CMD, &cmd, 4), 4);
	for (int i = 0; i < 5000; i++) {
		ct_edu_sleep_ms(i < 90 ? 2 : 1);
		cr_assert_eq(ct_edu_rd(e, EDU_REG_DMA_CMD, &cmd, 4), 4);
		if (!(cmd & EDU_DMA_START))
			return 0;
	}
	return -ETIMEDOUT;
}

/* Did the fault count move from @before? The interrupt follows the transfer at once. */
static int ct_edu_faulted(uint64_t before)
{
	for (int i = 0; i < 20; i++) {
		if (ct_edu_dmar_faults() != before)
			return 1;
		ct_edu_sleep_ms(1);
	}
	return 0;
}

static int ct_all_zero(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* What the edu buffer holds before a read: a refused read leaves it (or zeros) there. */
static uint8_t ct_edu_sentinel(size_t i)
{
	return (uint8_t)(0xa5 ^ (i * 37));
}

static int ct_is_sentinel(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != ct_edu_sentinel(i))
			return 0;
	return 1;
}

/*
 * Read @n <= 4096 bytes at @iova into the scratch page; 1 if the read was refused: the DMAR
 * fault count moved, or the buffer still holds the sentinel, or zeros.
 */
static int ct_edu_read_chunk(struct ct *t, struct ct_edu *e, iovaq_iova_t iova, uint32_t n)
{
	uint64_t f0;
	int faulted;

	for (size_t i = 0; i < n; i++)
		e->scratch[i] = ct_edu_sentinel(i);
	cr_assert_eq(ct_edu_xfer(e, e->scratch_iova, EDU_BUF, n, 0), 0,
		     "[%s] edu: scratch to buffer timed out", t->label);
	f0 = ct_edu_dmar_faults();
	cr_assert_eq(ct_edu_xfer(e, iova, EDU_BUF, n, 0), 0,
		     "[%s] edu: read of 0x%" PRIx64 " timed out", t->label, iova);
	faulted = ct_edu_faulted(f0);
	f0 = ct_edu_dmar_faults();
	cr_assert_eq(ct_edu_xfer(e, EDU_BUF, e->scratch_iova, n, 1), 0,
		     "[%s] edu: buffer to scratch timed out", t->label);
	cr_assert(!ct_edu_faulted(f0), "[%s] edu: the scratch page faulted", t->label);
	return faulted || ct_is_sentinel(e->scratch, n) || ct_all_zero(e->scratch, n);
}

static int ct_edu_dma(struct ct *t, iovaq_iova_t iova, void *buf, size_t len, int write,
		      int64_t *stale)
{
	struct ct_edu *e = t->dev_ctx;
	uint8_t *b = buf;
	int faulted = 0;

	*stale = -1; /* edu cannot tell a stale translation from a live one */
	while (len) {
		uint32_t n = len < EDU_BUF_SIZE ? (uint32_t)len : EDU_BUF_SIZE;

		if (write) {
			uint64_t f0;
			int f;

			memcpy(e->scratch, b, n);
			cr_assert_eq(ct_edu_xfer(e, e->scratch_iova, EDU_BUF, n, 0), 0,
				     "[%s] edu: scratch to buffer timed out", t->label);
			f0 = ct_edu_dmar_faults();
			cr_assert_eq(ct_edu_xfer(e, EDU_BUF, iova, n, 1), 0,
				     "[%s] edu: write to 0x%" PRIx64 " timed out", t->label, iova);
			f = ct_edu_faulted(f0);
			if (!f && !ct_edu_read_chunk(t, e, iova, n) && memcmp(e->scratch, b, n))
				f = 1; /* readable, and the write did not land */
			faulted |= f;
		} else {
			faulted |= ct_edu_read_chunk(t, e, iova, n);
			memcpy(b, e->scratch, n);
		}
		b += n;
		iova += n;
		len -= n;
	}
	return faulted ? -EFAULT : 0;
}

static void ct_edu_unmap_scratch(struct ct_edu *e)
{
	if (!e->scratch_mapped)
		return;
#ifdef CT_HAVE_IOMMUFD
	if (e->kind == CT_EDU_IOMMUFD) {
		struct iommu_ioas_unmap u = { .size = sizeof(u), .ioas_id = e->ioas_id,
					      .iova = e->scratch_iova, .length = G };
		(void)ioctl(e->iommufd, IOMMU_IOAS_UNMAP, &u);
	}
#endif
#ifdef CT_HAVE_VFIO
	if (e->kind == CT_EDU_TYPE1) {
		struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof(u),
							.iova = e->scratch_iova, .size = G };
		(void)ioctl(e->container, VFIO_IOMMU_UNMAP_DMA, &u);
	}
#endif
#ifdef CT_HAVE_KSHIM
	if (e->kind == CT_EDU_KSHIM) {
		struct iovaq_kshim_unmap u = { .size = sizeof(u), .iova = e->scratch_iova,
					       .length = G };
		struct iovaq_kshim_inval inv = { .kind = IOVAQ_INVAL_PAGES, .iova = e->scratch_iova };
		struct iovaq_kshim_flush fl = { .size = sizeof(fl), .n_cmds = 1,
						.cmds_uptr = (uintptr_t)&inv };

		(void)ioctl(e->kshim_fd, IOVAQ_KSHIM_UNMAP, &u);
		(void)ioctl(e->kshim_fd, IOVAQ_KSHIM_FLUSH, &fl);
	}
#endif
	e->scratch_mapped = 0;
}

static void ct_edu_detach(struct ct *t)
{
	struct ct_edu *e = t->dev_ctx;

	if (!e)
		return;
	ct_edu_unmap_scratch(e);
	if (e->dev_fd >= 0)
		close(e->dev_fd);
	if (e->group_fd >= 0)
		close(e->group_fd);
	if (e->container >= 0)
		close(e->container);
	if (e->iommufd >= 0)
		close(e->iommufd);
#ifdef CT_HAVE_KSHIM
	if (e->bar)
		munmap((void *)(uintptr_t)e->bar, EDU_BAR0_SIZE);
	if (e->kshim_fd >= 0)
		close(e->kshim_fd); /* releases edu: every mapping goes, invalidated, unpinned */
#endif
	free(e->scratch);
	free(e);
	t->dev_ctx = NULL;
}

/* After the backend opened: the scratch page, 1 GiB above the 4 GiB the tests use. */
static int ct_edu_attach(struct ct *t)
{
	struct ct_edu *e = t->dev_ctx;
	int err = -EOPNOTSUPP;

	e->scratch_iova = t->base + 5 * GiB;
	cr_assert(iovaq_backend_map(t->be, e->scratch_iova, e->scratch, G, IOVAQ_PROT_READ) !=
			  -EINVAL,
		  "[%s] no aperture room for the scratch page at 0x%" PRIx64, t->label,
		  e->scratch_iova);
	/* That probe went through the backend; take it back and map the page ourselves. */
	cr_assert_eq(iovaq_backend_unmap(t->be, e->scratch_iova, G), 0);
#ifdef CT_HAVE_IOMMUFD
	if (e->kind == CT_EDU_IOMMUFD) {
		struct iommu_ioas_map m = {
			.size = sizeof(m),
			.flags = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE |
				 IOMMU_IOAS_MAP_WRITEABLE,
			.ioas_id = e->ioas_id,
			.user_va = (uintptr_t)e->scratch,
			.length = G,
			.iova = e->scratch_iova,
		};
		err = ioctl(e->iommufd, IOMMU_IOAS_MAP, &m) ? -errno : 0;
	}
#endif
#ifdef CT_HAVE_VFIO
	if (e->kind == CT_EDU_TYPE1) {
		struct vfio_iommu_type1_dma_map m = {
			.argsz = sizeof(m),
			.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
			.vaddr = (uintptr_t)e->scratch,
			.iova = e->scratch_iova,
			.size = G,
		};
		err = ioctl(e->container, VFIO_IOMMU_MAP_DMA, &m) ? -errno : 0;
	}
#endif
#ifdef CT_HAVE_KSHIM
	if (e->kind == CT_EDU_KSHIM) {
		struct iovaq_kshim_map m = {
			.size = sizeof(m),
			.prot = IOVAQ_KSHIM_PROT_READ | IOVAQ_KSHIM_PROT_WRITE,
			.iova = e->scratch_iova,
			.uaddr = (uintptr_t)e->scratch,
			.length = G,
		};
		err = ioctl(e->kshim_fd, IOVAQ_KSHIM_MAP, &m) ? -errno : 0;
	}
#endif
	if (!err)
		e->scratch_mapped = 1;
	return err;
}

static struct ct_edu *ct_edu_new(int kind)
{
	struct ct_edu *e = calloc(1, sizeof(*e));

	cr_assert_not_null(e);
	e->kind = kind;
	e->dev_fd = e->iommufd = e->container = e->group_fd = e->kshim_fd = -1;
	e->scratch = aligned_alloc(G, G);
	cr_assert_not_null(e->scratch);
	memset(e->scratch, 0, G);
	return e;
}

static int ct_edu_prepare_iommufd(struct ct *t, const void **opts, char *why, size_t why_len)
{
#ifdef CT_HAVE_IOMMUFD
	struct ct_edu *e = ct_edu_new(CT_EDU_IOMMUFD);
	struct vfio_device_bind_iommufd bind = { .argsz = sizeof(bind) };
	struct vfio_device_attach_iommufd_pt at = { .argsz = sizeof(at) };
	struct iommu_ioas_alloc ia = { .size = sizeof(ia) };
	char p[512];
	struct dirent *de;
	DIR *d;
	int err;

	t->dev_ctx = e;
	err = ct_edu_find(e->bdf, sizeof(e->bdf), why, why_len);
	if (err)
		goto fail;
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vfio-dev", e->bdf);
	d = opendir(p);
	if (!d) {
		snprintf(why, why_len, "%s: no VFIO cdev (not bound to vfio-pci, or a kernel "
				       "without CONFIG_VFIO_DEVICE_CDEV)", e->bdf);
		err = -ENODEV;
		goto fail;
	}
	p[0] = '\0';
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "vfio", 4))
			snprintf(p, sizeof(p), "/dev/vfio/devices/%s", de->d_name);
	closedir(d);
	e->iommufd = open("/dev/iommu", O_RDWR | O_CLOEXEC);
	if (e->iommufd < 0) {
		snprintf(why, why_len, "/dev/iommu: %s", strerror(errno));
		err = -ENODEV;
		goto fail;
	}
	e->dev_fd = open(p, O_RDWR | O_CLOEXEC);
	if (e->dev_fd < 0) {
		snprintf(why, why_len, "%s: %s", p, strerror(errno));
		err = -errno;
		goto fail;
	}
	bind.iommufd = e->iommufd;
	if (ioctl(e->dev_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind) ||
	    ioctl(e->iommufd, IOMMU_IOAS_ALLOC, &ia)) {
		snprintf(why, why_len, "bind or IOAS alloc: %s", strerror(errno));
		err = -errno;
		goto fail;
	}
	e->ioas_id = ia.out_ioas_id;
	at.pt_id = e->ioas_id;
	if (ioctl(e->dev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &at)) {
		snprintf(why, why_len, "attach: %s", strerror(errno));
		err = -errno;
		goto fail;
	}
	err = ct_edu_regions(e, why, why_len);
	if (err)
		goto fail;
	e->ifd = (struct iovaq_iommufd_opts){ .sz = sizeof(e->ifd), .iommufd = e->iommufd,
					      .ioas_id = e->ioas_id };
	*opts = &e->ifd;
	return 0;
fail:
	ct_edu_detach(t);
	return err;
#else
	(void)t;
	(void)opts;
	snprintf(why, why_len, "the contract suite was built without linux/iommufd.h");
	return -EOPNOTSUPP;
#endif
}

static int ct_edu_prepare_type1(struct ct *t, const void **opts, char *why, size_t why_len)
{
#ifdef CT_HAVE_VFIO
	struct ct_edu *e = ct_edu_new(CT_EDU_TYPE1);
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char p[512], target[512];
	ssize_t n;
	int err;

	t->dev_ctx = e;
	err = ct_edu_find(e->bdf, sizeof(e->bdf), why, why_len);
	if (err)
		goto fail;
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/iommu_group", e->bdf);
	n = readlink(p, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(why, why_len, "%s: no IOMMU group", e->bdf);
		err = -ENODEV;
		goto fail;
	}
	target[n] = '\0';
	e->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	snprintf(p, sizeof(p), "/dev/vfio/%s", strrchr(target, '/') + 1);
	e->group_fd = open(p, O_RDWR | O_CLOEXEC);
	if (e->container < 0 || e->group_fd < 0) {
		snprintf(why, why_len, "/dev/vfio/vfio or %s: %s", p, strerror(errno));
		err = -ENODEV;
		goto fail;
	}
	if (ioctl(e->group_fd, VFIO_GROUP_GET_STATUS, &st) ||
	    !(st.flags & VFIO_GROUP_FLAGS_VIABLE) ||
	    ioctl(e->group_fd, VFIO_GROUP_SET_CONTAINER, &e->container) ||
	    ioctl(e->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) {
		snprintf(why, why_len, "group %s: not viable, or container set-up failed: %s", p,
			 strerror(errno));
		err = -EIO;
		goto fail;
	}
	e->dev_fd = ioctl(e->group_fd, VFIO_GROUP_GET_DEVICE_FD, e->bdf);
	if (e->dev_fd < 0) {
		snprintf(why, why_len, "VFIO_GROUP_GET_DEVICE_FD %s: %s", e->bdf, strerror(errno));
		err = -errno;
		goto fail;
	}
	err = ct_edu_regions(e, why, why_len);
	if (err)
		goto fail;
	e->vt1 = (struct iovaq_vfio_type1_opts){ .sz = sizeof(e->vt1), .container = e->container,
						 .flags = IOVAQ_VFIO_TYPE1_ADOPT };
	*opts = &e->vt1;
	return 0;
fail:
	ct_edu_detach(t);
	return err;
#else
	(void)t;
	(void)opts;
	snprintf(why, why_len, "the contract suite was built without linux/vfio.h");
	return -EOPNOTSUPP;
#endif
}

/*
 * kshim: edu must have no driver. Open /dev/iovaq and bind edu (the module claims its DMA and
 * attaches a private paging domain); BAR0 from sysfs, memory space and bus mastering on.
 */
static int ct_edu_prepare_kshim(struct ct *t, const void **opts, char *why, size_t why_len)
{
#ifdef CT_HAVE_KSHIM
	struct ct_edu *e = ct_edu_new(CT_EDU_KSHIM);
	struct iovaq_kshim_bind b = { .size = sizeof(b) };
	unsigned int seg, bus, slot, fn;
	char p[512];
	uint32_t id;
	uint16_t cmd;
	void *bar;
	int err, fd;

	t->dev_ctx = e;
	err = ct_edu_find(e->bdf, sizeof(e->bdf), why, why_len);
	if (err)
		goto fail;
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", e->bdf);
	if (!access(p, F_OK)) {
		snprintf(why, why_len, "%s has a driver bound (kshim needs it free)", e->bdf);
		err = -ENODEV;
		goto fail;
	}
	if (sscanf(e->bdf, "%x:%x:%x.%x", &seg, &bus, &slot, &fn) != 4) {
		snprintf(why, why_len, "%s: not a PCI address", e->bdf);
		err = -ENODEV;
		goto fail;
	}
	e->kshim_fd = open(IOVAQ_KSHIM_DEVICE, O_RDWR | O_CLOEXEC);
	if (e->kshim_fd < 0) {
		snprintf(why, why_len, IOVAQ_KSHIM_DEVICE ": %s (iovaq.ko not loaded?)",
			 strerror(errno));
		err = -ENODEV;
		goto fail;
	}
	b.pci_domain = seg;
	b.pci_bus = (uint8_t)bus;
	b.pci_devfn = (uint8_t)(slot << 3 | fn);
	if (ioctl(e->kshim_fd, IOVAQ_KSHIM_BIND, &b)) {
		err = -errno;
		snprintf(why, why_len, "IOVAQ_KSHIM_BIND %s: %s", e->bdf, strerror(errno));
		goto fail;
	}
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/config", e->bdf);
	fd = open(p, O_RDWR | O_CLOEXEC);
	if (fd < 0 || pread(fd, &cmd, 2, 4) != 2 ||
	    (cmd |= 0x6, pwrite(fd, &cmd, 2, 4) != 2)) { /* memory space, bus master */
		snprintf(why, why_len, "%s: %s", p, strerror(errno));
		err = -EIO;
		if (fd >= 0)
			close(fd);
		goto fail;
	}
	close(fd);
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/resource0", e->bdf);
	fd = open(p, O_RDWR | O_SYNC | O_CLOEXEC);
	bar = fd < 0 ? MAP_FAILED :
		       mmap(NULL, EDU_BAR0_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (fd >= 0)
		close(fd);
	if (bar == MAP_FAILED) {
		snprintf(why, why_len, "mmap %s: %s", p, strerror(errno));
		err = -EIO;
		goto fail;
	}
	e->bar = bar;
	ct_edu_rd(e, EDU_REG_ID, &id, 4);
	if ((id & 0xffff) != 0x00ed) {
		snprintf(why, why_len, "%s: BAR0 identification 0x%08x is not edu's", e->bdf, id);
		err = -EIO;
		goto fail;
	}
	e->ksh = (struct iovaq_kshim_opts){ .sz = sizeof(e->ksh), .fd = e->kshim_fd,
					    .flags = IOVAQ_KSHIM_OPTS_ADOPT };
	*opts = &e->ksh;
	return 0;
fail:
	ct_edu_detach(t);
	return err;
#else
	(void)t;
	(void)opts;
	snprintf(why, why_len, "the contract suite was built without include/uapi/iovaq/kshim.h");
	return -EOPNOTSUPP;
#endif
}

/*
 * Measured in the VM tier (QEMU 10 VT-d, Linux 6.12), through iommufd and type1 alike: a device
 * read of a mapping made write-only succeeds. The permission test checks the write side only.
 */
static const struct ct_device_ops ct_edu_iommufd_device = {
	.what = "edu (iommufd)",
	.prepare = ct_edu_prepare_iommufd,
	.attach = ct_edu_attach,
	.detach = ct_edu_detach,
	.dma = ct_edu_dma,
	.slow = 1,
	.wo_readable = 1,
};

static const struct ct_device_ops ct_edu_type1_device = {
	.what = "edu (vfio-type1)",
	.prepare = ct_edu_prepare_type1,
	.attach = ct_edu_attach,
	.detach = ct_edu_detach,
	.dma = ct_edu_dma,
	.slow = 1,
	.wo_readable = 1,
};

/* The same kernel path (iommu_map with the VT-d driver) as iommufd and type1: see above. */
static const struct ct_device_ops ct_edu_kshim_device = {
	.what = "edu (kshim)",
	.prepare = ct_edu_prepare_kshim,
	.attach = ct_edu_attach,
	.detach = ct_edu_detach,
	.dma = ct_edu_dma,
	.slow = 1,
	.wo_readable = 1,
};
