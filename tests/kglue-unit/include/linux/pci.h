/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Userspace stand-in for <linux/pci.h>: one PCI device the test registers
 * (kstub_pci_register()); lookups take a reference that pci_dev_put() drops.
 */
#ifndef KSTUB_LINUX_PCI_H
#define KSTUB_LINUX_PCI_H

#include <linux/kernel.h>
#include <linux/device.h>

struct pci_dev {
	struct device dev;
	int domain;
	unsigned int bus;
	unsigned int devfn;
};

struct pci_dev *pci_get_domain_bus_and_slot(int domain, unsigned int bus, unsigned int devfn);
void pci_dev_put(struct pci_dev *pdev);
#define pci_info(pdev, fmt, ...) ((void)(pdev), kstub_printk(fmt, ##__VA_ARGS__))

#endif
