// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * iovaq_example.ko: a client of iovaq.ko's kernel API. Given a PCI device with no driver
 * (module parameter dev=0000:00:03.0), it opens a kernel backend on it, creates a
 * safe-deferred domain, maps and unmaps a ring of pages the nic-rx way, syncs, checks the
 * domain's invariant and reports the batching it got, then undoes everything; loading fails
 * with the error if any step did, so that a test sees it in insmod's status.
 */
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/mm.h>

#include "iovaq_kshim.h"

static char *dev = "";
module_param(dev, charp, 0444);
MODULE_PARM_DESC(dev, "PCI address of a device with no driver, e.g. 0000:00:03.0");

static unsigned int pairs = 1000;
module_param(pairs, uint, 0444);
MODULE_PARM_DESC(pairs, "map+unmap pairs");

#define RING 64

static int run(struct pci_dev *pdev)
{
	IOVAQ_OPTS(iovaq_domain_opts, o, .policy = IOVAQ_POLICY_SAFE_DEFERRED);
	IOVAQ_OPTS(iovaq_domain_stats, st);
	struct iovaq_kbe_counters c;
	struct iovaq_backend *be;
	struct iovaq_domain *d;
	iovaq_iova_t iova[RING];
	void *buf[RING] = { NULL };
	unsigned int i;
	int err;

	err = iovaq_kbackend_open(&pdev->dev, IOVAQ_KHOST_KERNEL, &be);
	if (err)
		return err;
	o.backend = be;
	err = iovaq_domain_create(&o, &d);
	if (err)
		goto close;
	for (i = 0; i < RING; i++) {
		buf[i] = (void *)__get_free_page(GFP_KERNEL);
		if (!buf[i]) {
			err = -ENOMEM;
			goto free;
		}
	}
	for (i = 0; i < pairs + RING && !err; i++) {
		if (i >= RING)
			err = iovaq_domain_unmap(d, iova[i % RING], PAGE_SIZE, i);
		if (!err && i < pairs)
			err = iovaq_domain_map(d, buf[i % RING], PAGE_SIZE,
					       IOVAQ_PROT_READ | IOVAQ_PROT_WRITE,
					       DMA_BIT_MASK(32), &iova[i % RING]);
	}
	err = err ?: iovaq_domain_sync(d);
	err = err ?: iovaq_domain_check(d);
	if (!err && !iovaq_domain_get_stats(d, &st)) {
		iovaq_kbackend_counters(be, &c);
		pci_info(pdev, "iovaq_example: %u pairs: %llu maps, %llu unmaps, %llu flushes, %llu syncs\n",
			 pairs, st.maps, st.unmaps, st.flushes, c.syncs);
	}
free:
	iovaq_domain_destroy(d);	/* before the pages: it may still hold them mapped */
	for (i = 0; i < RING; i++)
		if (buf[i])
			free_page((unsigned long)buf[i]);
close:
	iovaq_backend_close(be);
	return err;
}

static int __init example_init(void)
{
	unsigned int seg, bus, slot, fn;
	struct pci_dev *pdev;
	int err;

	if (sscanf(dev, "%x:%x:%x.%x", &seg, &bus, &slot, &fn) != 4)
		return -EINVAL;
	pdev = pci_get_domain_bus_and_slot(seg, bus, PCI_DEVFN(slot, fn));
	if (!pdev)
		return -ENODEV;
	err = run(pdev);
	pci_dev_put(pdev);
	if (err)
		pr_err("iovaq_example: %d\n", err);
	return err;
}

static void __exit example_exit(void)
{
}

module_init(example_init);
module_exit(example_exit);
MODULE_DESCRIPTION("Example client of iovaq.ko's kernel API");
MODULE_LICENSE("Dual BSD/GPL");
