/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Shared by the iommufd and vfio-type1 backends: see vfio_common.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <limits.h>
#include <sys/stat.h>

#include "vfio_common.h"

void vfio_areas_init(struct vfio_areas *s, const struct iovaq_alloc_hooks *hooks)
{
	iovaq_memset(s, 0, sizeof(*s));
	s->hooks = hooks;
}

void vfio_areas_fini(struct vfio_areas *s)
{
	if (s->a)
		iovaq_hooks_free(s->hooks, s->a, s->cap * sizeof(*s->a));
	s->a = NULL;
	s->n = s->cap = 0;
	s->bytes = 0;
}

/* Index of the first area whose last >= @iova (n if none). */
static size_t lower(const struct vfio_areas *s, iovaq_iova_t iova)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->a[mid].last < iova)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vfio_areas_check_add(const struct vfio_areas *s, iovaq_iova_t iova, iovaq_iova_t last,
			 size_t *pos)
{
	size_t i = lower(s, iova);

	if (i < s->n && s->a[i].iova <= last)
		return -EEXIST;
	*pos = i;
	return 0;
}

int vfio_areas_insert(struct vfio_areas *s, size_t pos, iovaq_iova_t iova, iovaq_iova_t last)
{
	if (s->n == s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 64;
		struct vfio_area *na = iovaq_hooks_alloc(s->hooks, ncap * sizeof(*na), 16);

		if (!na)
			return -ENOMEM;
		if (s->n)
			iovaq_memcpy(na, s->a, s->n * sizeof(*na));
		if (s->a)
			iovaq_hooks_free(s->hooks, s->a, s->cap * sizeof(*s->a));
		s->a = na;
		s->cap = ncap;
	}
	iovaq_memmove(&s->a[pos + 1], &s->a[pos], (s->n - pos) * sizeof(*s->a));
	s->a[pos] = (struct vfio_area){ iova, last };
	s->n++;
	s->bytes += last - iova + 1;
	return 0;
}

int vfio_areas_find(const struct vfio_areas *s, iovaq_iova_t iova, iovaq_iova_t last,
		    size_t *first, size_t *n)
{
	size_t i = lower(s, iova), j;

	if (i < s->n && s->a[i].iova < iova)
		return -EINVAL; /* splits the area holding @iova */
	for (j = i; j < s->n && s->a[j].last <= last; j++)
		;
	if (j < s->n && s->a[j].iova <= last)
		return -EINVAL; /* splits the area holding @last */
	if (j == i)
		return -ENOENT;
	*first = i;
	*n = j - i;
	return 0;
}

void vfio_areas_remove(struct vfio_areas *s, size_t first, size_t n)
{
	for (size_t i = first; i < first + n; i++)
		s->bytes -= s->a[i].last - s->a[i].iova + 1;
	iovaq_memmove(&s->a[first], &s->a[first + n], (s->n - first - n) * sizeof(*s->a));
	s->n -= n;
}

/* ---- sysfs ------------------------------------------------------------------------------ */

int vfio_pci_addr(const char *in, char bdf[13])
{
	unsigned int dom = 0, bus, dev, fn;
	char tail;

	if (!in)
		return -EINVAL;
	if (sscanf(in, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4) {
		dom = 0;
		if (sscanf(in, "%x:%x.%x%c", &bus, &dev, &fn, &tail) != 3)
			return -EINVAL;
	}
	if (dom > 0xffff || bus > 0xff || dev > 0x1f || fn > 7)
		return -EINVAL;
	snprintf(bdf, 13, "%04x:%02x:%02x.%x", dom, bus, dev, fn);
	return 0;
}

int vfio_pci_driver(const char *bdf, char *drv, size_t len, char *why, size_t why_len)
{
	char p[PATH_MAX], target[PATH_MAX];
	struct stat st;
	ssize_t n;

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s", bdf);
	if (stat(p, &st)) {
		snprintf(why, why_len, "no PCI device %s (%s missing)", bdf, p);
		return -ENODEV;
	}
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/driver", bdf);
	n = readlink(p, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(drv, len, "%s", "");
		return 0;
	}
	target[n] = '\0';
	snprintf(drv, len, "%s", strrchr(target, '/') ? strrchr(target, '/') + 1 : target);
	return 0;
}

int vfio_pci_group(const char *bdf, int *group, char *why, size_t why_len)
{
	char p[PATH_MAX], target[PATH_MAX];
	const char *base;
	ssize_t n;

	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/iommu_group", bdf);
	n = readlink(p, target, sizeof(target) - 1);
	if (n < 0) {
		snprintf(why, why_len,
			 "PCI device %s has no IOMMU group (%s missing): no IOMMU, or it is off "
			 "(intel_iommu=on)", bdf, p);
		return -ENODEV;
	}
	target[n] = '\0';
	base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
	*group = atoi(base);
	return 0;
}

int vfio_pci_cdev(const char *bdf, char *path, size_t len, char *why, size_t why_len)
{
	char p[PATH_MAX], drv[64];
	struct dirent *de;
	DIR *d;
	int err;

	err = vfio_pci_driver(bdf, drv, sizeof(drv), why, why_len);
	if (err)
		return err;
	if (strcmp(drv, "vfio-pci")) {
		if (drv[0])
			snprintf(why, why_len, "PCI device %s is bound to %s, not vfio-pci", bdf, drv);
		else
			snprintf(why, why_len, "PCI device %s is bound to no driver, not vfio-pci",
				 bdf);
		return -ENODEV;
	}
	snprintf(p, sizeof(p), "/sys/bus/pci/devices/%s/vfio-dev", bdf);
	d = opendir(p);
	if (!d) {
		snprintf(why, why_len,
			 "PCI device %s has no VFIO device cdev (%s missing): the kernel lacks "
			 "CONFIG_VFIO_DEVICE_CDEV", bdf, p);
		return -ENODEV;
	}
	err = -ENODEV;
	while ((de = readdir(d))) {
		if (!strncmp(de->d_name, "vfio", 4)) {
			snprintf(path, len, "/dev/vfio/devices/%s", de->d_name);
			err = 0;
			break;
		}
	}
	closedir(d);
	if (err)
		snprintf(why, why_len, "%s lists no vfioN device", p);
	return err;
}
