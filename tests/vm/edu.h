/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * QEMU's "edu" PCI device (vendor 0x1234, device 0x11e8; QEMU docs/specs/edu.rst) driven
 * through a VFIO device file descriptor, for the VM tier's own programs (vm_domain.c,
 * vm_mark.c). The contract suite has its own copy of these few registers in
 * tests/contract/ct_edu.h, tied to its Criterion fixture.
 *
 * edu has a 4 KiB buffer at device address 0x40000 and one DMA engine: source, destination and
 * count registers, and a command register whose bit 0 starts a transfer (it clears when done)
 * and whose bit 1 selects the direction (1: buffer to RAM). A transfer completes on a 100 ms
 * virtual timer. edu does not report a refused DMA: VT-d records the fault and raises its fault
 * interrupt, whose count /proc/interrupts shows ("dmar" lines), and the guest kernel logs
 * "DMAR: [DMA Read|Write ...] ... fault addr 0x...".
 */
#ifndef IOVAQ_VM_EDU_H
#define IOVAQ_VM_EDU_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <linux/vfio.h>

#define EDU_REG_ID 0x00
#define EDU_REG_DMA_SRC 0x80
#define EDU_REG_DMA_DST 0x88
#define EDU_REG_DMA_CNT 0x90
#define EDU_REG_DMA_CMD 0x98
#define EDU_DMA_START 0x1u
#define EDU_DMA_TO_RAM 0x2u
#define EDU_BUF 0x40000ull
#define EDU_BUF_SIZE 4096u

struct edu {
	int fd;		/* the VFIO device fd (not owned) */
	uint64_t bar0;	/* region offsets in @fd */
	uint64_t cfg;
};

static inline void edu_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* Find BAR0 and config space in @fd, turn bus mastering on, check edu's identification. */
static inline int edu_init(struct edu *e, int fd, char *why, size_t why_len)
{
	struct vfio_region_info r = { .argsz = sizeof(r), .index = VFIO_PCI_BAR0_REGION_INDEX };
	uint32_t id = 0;
	uint16_t cmd;

	e->fd = fd;
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &r)) {
		snprintf(why, why_len, "VFIO_DEVICE_GET_REGION_INFO(BAR0): %s", strerror(errno));
		return -errno;
	}
	e->bar0 = r.offset;
	r = (struct vfio_region_info){ .argsz = sizeof(r), .index = VFIO_PCI_CONFIG_REGION_INDEX };
	if (ioctl(fd, VFIO_DEVICE_GET_REGION_INFO, &r)) {
		snprintf(why, why_len, "VFIO_DEVICE_GET_REGION_INFO(config): %s", strerror(errno));
		return -errno;
	}
	e->cfg = r.offset;
	if (pread(fd, &cmd, 2, (off_t)(e->cfg + 4)) != 2)
		return -EIO;
	cmd |= 0x6; /* memory space, bus master */
	if (pwrite(fd, &cmd, 2, (off_t)(e->cfg + 4)) != 2)
		return -EIO;
	if (pread(fd, &id, 4, (off_t)(e->bar0 + EDU_REG_ID)) != 4 || (id & 0xffff) != 0x00ed) {
		snprintf(why, why_len, "BAR0 identification 0x%08x is not edu's", id);
		return -ENODEV;
	}
	return 0;
}

/* One transfer of @cnt bytes; 0, -EIO (register access failed), -ETIMEDOUT (5 s). */
static inline int edu_xfer(struct edu *e, uint64_t src, uint64_t dst, uint32_t cnt, int to_ram)
{
	uint32_t cmd = EDU_DMA_START | (to_ram ? EDU_DMA_TO_RAM : 0);
	uint64_t cnt64 = cnt;

	if (pwrite(e->fd, &src, 8, (off_t)(e->bar0 + EDU_REG_DMA_SRC)) != 8 ||
	    pwrite(e->fd, &dst, 8, (off_t)(e->bar0 + EDU_REG_DMA_DST)) != 8 ||
	    pwrite(e->fd, &cnt64, 8, (off_t)(e->bar0 + EDU_REG_DMA_CNT)) != 8 ||
	    pwrite(e->fd, &cmd, 4, (off_t)(e->bar0 + EDU_REG_DMA_CMD)) != 4)
		return -EIO;
	for (int i = 0; i < 5000; i++) {
		edu_sleep_ms(i < 90 ? 2 : 1);
		if (pread(e->fd, &cmd, 4, (off_t)(e->bar0 + EDU_REG_DMA_CMD)) != 4)
			return -EIO;
		if (!(cmd & EDU_DMA_START))
			return 0;
	}
	return -ETIMEDOUT;
}

/* Sum of the DMAR fault interrupt counts ("dmar" lines of /proc/interrupts). */
static inline uint64_t edu_dmar_faults(void)
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

/* Did the fault count move from @before? The interrupt follows the transfer at once. */
static inline int edu_faulted(uint64_t before)
{
	for (int i = 0; i < 50; i++) {
		if (edu_dmar_faults() != before)
			return 1;
		edu_sleep_ms(2);
	}
	return 0;
}

#endif /* IOVAQ_VM_EDU_H */
