// SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause
/*
 * /dev/iovaq: the uapi of include/uapi/iovaq/kshim.h. One open file binds one PCI device to a
 * kernel backend (iovaq_backend.c) in user-address mode. Structs are size-prefixed and read
 * with copy_struct_from_user() (-E2BIG for unknown non-zero trailing bytes); each ioctl has
 * a minimum size, as iommufd's table has.
 */
#include <linux/module.h>
#include <linux/miscdevice.h>
#include <linux/fs.h>
#include <linux/uaccess.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/capability.h>

#include <uapi/iovaq/kshim.h>
#include "iovaq_kshim.h"

struct kfile {
	struct mutex lock;	/* @be and @pdev: bind once, then constant */
	struct iovaq_backend *be;
	struct pci_dev *pdev;
};

static int dev_open(struct inode *inode, struct file *f)
{
	struct kfile *kf;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	kf = kzalloc(sizeof(*kf), GFP_KERNEL);
	if (!kf)
		return -ENOMEM;
	mutex_init(&kf->lock);
	f->private_data = kf;
	return nonseekable_open(inode, f);
}

static int dev_release(struct inode *inode, struct file *f)
{
	struct kfile *kf = f->private_data;

	/* Every mapping goes, with one sync, before any pinned page is released. */
	iovaq_backend_close(kf->be);
	pci_dev_put(kf->pdev);
	mutex_destroy(&kf->lock);
	kfree(kf);
	return 0;
}

static int do_bind(struct kfile *kf, void *arg)
{
	struct iovaq_kshim_bind *b = arg;
	struct pci_dev *pdev;
	int err;

	if (b->flags || b->reserved)
		return -EINVAL;
	if (kf->be)
		return -EBUSY;
	pdev = pci_get_domain_bus_and_slot(b->pci_domain, b->pci_bus, b->pci_devfn);
	if (!pdev)
		return -ENODEV;
	err = iovaq_kbackend_open(&pdev->dev, IOVAQ_KHOST_USER, &kf->be);
	if (err) {
		pci_dev_put(pdev);
		return err;
	}
	kf->pdev = pdev;
	pci_info(pdev, "iovaq: bound, private IOMMU domain attached\n");
	return 0;
}

static int do_caps(struct kfile *kf, void *arg)
{
	struct iovaq_kshim_caps *o = arg;
	struct iovaq_backend_caps c = { .sz = sizeof(c) };
	u32 i;
	int err;

	err = iovaq_backend_get_caps(kf->be, &c);
	if (err)
		return err;
	o->flags = c.flags & IOVAQ_KSHIM_CAP_CACHING_MODE;
	o->granule = c.granule;
	o->page_sizes = c.page_sizes;
	o->n_apertures = min_t(u32, c.n_apertures, ARRAY_SIZE(o->apertures));
	for (i = 0; i < o->n_apertures; i++) {
		o->apertures[i][0] = c.apertures[i].start;
		o->apertures[i][1] = c.apertures[i].last;
	}
	o->inval_kinds = c.inval_kinds;
	o->max_am = c.max_am;
	o->leaf_hint = c.leaf_hint;
	o->cost_flush_ns = c.cost_flush_ns;
	o->cost_cmd_ns = c.cost_cmd_ns;
	o->cost_domain_ns = c.cost_domain_ns;
	o->cost_map_ns = c.cost_map_ns;
	o->cost_unmap_ns = c.cost_unmap_ns;
	o->cost_trap_ns = c.cost_trap_ns;
	o->cost_domain_page_ns = c.cost_domain_page_ns;
	o->cost_inval_page_ns = c.cost_inval_page_ns;
	return 0;
}

static int do_map(struct kfile *kf, void *arg)
{
	struct iovaq_kshim_map *m = arg;

	if (m->prot & ~(u32)(IOVAQ_KSHIM_PROT_READ | IOVAQ_KSHIM_PROT_WRITE) || !m->prot)
		return -EINVAL;
	if (!m->length || m->length > SIZE_MAX || !access_ok(u64_to_user_ptr(m->uaddr), m->length))
		return -EINVAL;
	return iovaq_backend_map(kf->be, m->iova, u64_to_user_ptr(m->uaddr), m->length, m->prot);
}

static int do_unmap(struct kfile *kf, void *arg)
{
	struct iovaq_kshim_unmap *u = arg;
	int ret;

	if (u->out_flags)
		return -EINVAL;
	if (!u->length || u->length > SIZE_MAX)
		return -EINVAL;
	ret = iovaq_backend_unmap(kf->be, u->iova, u->length);
	if (ret < 0)
		return ret;
	u->out_flags = ret == IOVAQ_UNMAP_FREED_TABLES ? IOVAQ_KSHIM_UNMAP_FREED_TABLES : 0;
	return 0;
}

static int do_flush(struct kfile *kf, void *arg)
{
	struct iovaq_kshim_flush *fl = arg;
	struct iovaq_inval *cmds;
	int err;

	BUILD_BUG_ON(sizeof(struct iovaq_kshim_inval) != sizeof(struct iovaq_inval));
	BUILD_BUG_ON(offsetof(struct iovaq_kshim_inval, iova) != offsetof(struct iovaq_inval, iova));
	if (fl->n_cmds > IOVAQ_KSHIM_MAX_CMDS)
		return -E2BIG;
	if (!fl->n_cmds)
		return 0;
	cmds = memdup_array_user(u64_to_user_ptr(fl->cmds_uptr), fl->n_cmds, sizeof(*cmds));
	if (IS_ERR(cmds))
		return PTR_ERR(cmds);
	err = iovaq_backend_flush(kf->be, cmds, fl->n_cmds);
	kfree(cmds);
	return err;
}

static int do_counters(struct kfile *kf, void *arg)
{
	struct iovaq_kshim_counters *o = arg;
	struct iovaq_kbe_counters c;

	if (o->reserved)
		return -EINVAL;
	iovaq_kbackend_counters(kf->be, &c);
	o->maps = c.maps;
	o->map_pages = c.map_pages;
	o->unmaps = c.unmaps;
	o->unmap_pages = c.unmap_pages;
	o->syncs = c.syncs;
	o->sync_tables = c.sync_tables;
	o->flush_all = c.flush_all;
	o->pinned_pages = c.pinned_pages;
	o->unpinned_pages = c.unpinned_pages;
	o->live_maps = c.live_maps;
	return 0;
}

static int do_bench(struct kfile *kf, void *arg)
{
	return iovaq_kbench_run(kf->be, arg);
}

struct ioctl_op {
	int (*fn)(struct kfile *kf, void *arg);
	size_t size;		/* sizeof the struct this module knows */
	size_t min_size;	/* its first version */
	bool bound;		/* needs a bound device */
	bool out;		/* copies the struct back */
};

#define IOCTL_OP(nr, f, type, last, b, o)                                          \
	[nr - IOVAQ_KSHIM_CMD_BASE] = { .fn = f, .size = sizeof(struct type),      \
					.min_size = offsetofend(struct type, last), \
					.bound = b, .out = o }

static const struct ioctl_op ops[] = {
	IOCTL_OP(IOVAQ_KSHIM_CMD_BIND, do_bind, iovaq_kshim_bind, reserved, false, false),
	IOCTL_OP(IOVAQ_KSHIM_CMD_CAPS, do_caps, iovaq_kshim_caps, apertures, true, true),
	IOCTL_OP(IOVAQ_KSHIM_CMD_MAP, do_map, iovaq_kshim_map, length, true, false),
	IOCTL_OP(IOVAQ_KSHIM_CMD_UNMAP, do_unmap, iovaq_kshim_unmap, length, true, true),
	IOCTL_OP(IOVAQ_KSHIM_CMD_FLUSH, do_flush, iovaq_kshim_flush, cmds_uptr, true, false),
	IOCTL_OP(IOVAQ_KSHIM_CMD_COUNTERS, do_counters, iovaq_kshim_counters, live_maps, true,
		 true),
	IOCTL_OP(IOVAQ_KSHIM_CMD_BENCH, do_bench, iovaq_kshim_bench, violations, true, true),
};

static long dev_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct kfile *kf = f->private_data;
	void __user *uarg = (void __user *)arg;
	const struct ioctl_op *op;
	unsigned int nr = _IOC_NR(cmd);
	union {
		struct iovaq_kshim_bind bind;
		struct iovaq_kshim_caps caps;
		struct iovaq_kshim_map map;
		struct iovaq_kshim_unmap unmap;
		struct iovaq_kshim_flush flush;
		struct iovaq_kshim_counters counters;
		struct iovaq_kshim_bench bench;
	} *buf;
	u32 usize;
	long ret;

	if (_IOC_TYPE(cmd) != IOVAQ_KSHIM_TYPE || _IOC_SIZE(cmd) || _IOC_DIR(cmd) != _IOC_NONE ||
	    nr < IOVAQ_KSHIM_CMD_BASE || nr - IOVAQ_KSHIM_CMD_BASE >= ARRAY_SIZE(ops))
		return -ENOTTY;
	op = &ops[nr - IOVAQ_KSHIM_CMD_BASE];
	if (get_user(usize, (u32 __user *)uarg))
		return -EFAULT;
	if (usize < op->min_size)
		return -EINVAL;
	buf = kzalloc(sizeof(*buf), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	ret = copy_struct_from_user(buf, op->size, uarg, usize);
	if (ret)
		goto out;
	mutex_lock(&kf->lock);
	if (op->bound && !kf->be)
		ret = -ENXIO;
	else
		ret = op->fn(kf, buf);
	mutex_unlock(&kf->lock);
	if (!ret && op->out) {
		*(u32 *)buf = min_t(u32, usize, op->size);
		if (copy_to_user(uarg, buf, min_t(size_t, usize, op->size)))
			ret = -EFAULT;
	}
out:
	kfree(buf);
	return ret;
}

static const struct file_operations dev_fops = {
	.owner = THIS_MODULE,
	.open = dev_open,
	.release = dev_release,
	.unlocked_ioctl = dev_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice iovaq_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "iovaq",
	.fops = &dev_fops,
	.mode = 0600,
};

int iovaq_dev_init(void)
{
	return misc_register(&iovaq_misc);
}

void iovaq_dev_exit(void)
{
	misc_deregister(&iovaq_misc);
}
