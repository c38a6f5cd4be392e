/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* The usage example of README.md: a 4 GiB IOVA space with a magazine cache in front. */
#include <iovaq/iovaq.h>
#include <stdio.h>

int main(void)
{
	const struct iovaq_range ap = { .start = 0, .last = 0xffffffffULL }; /* [start, last] */
	const struct iovaq_range msi = { IOVAQ_X86_MSI_START, IOVAQ_X86_MSI_LAST };
	IOVAQ_OPTS(iovaq_space_opts, so, .apertures = &ap, .n_apertures = 1, .reserved = &msi,
		   .n_reserved = 1); /* granule 0: 4 KiB */
	struct iovaq_space *sp = NULL;
	struct iovaq_cache *c = NULL;
	iovaq_iova_t iova;
	int err;

	err = iovaq_space_create(&so, &sp);
	if (!err)
		err = iovaq_cache_create(sp, NULL, &c); /* NULL: default options */
	/* 16 granules (64 KiB), aligned to 64 KiB, below a 32-bit device's DMA mask. */
	if (!err)
		err = iovaq_cache_alloc(c, 16, 0xffffffffULL, &iova);
	if (!err) {
		printf("IOVA %#llx, 64 KiB\n", (unsigned long long)iova);
		err = iovaq_cache_free(c, iova, 16); /* the size given to alloc */
	}
	iovaq_cache_destroy(c); /* cached IOVAs return to the space; NULL is fine */
	iovaq_space_destroy(sp);
	if (err)
		fprintf(stderr, "basic: %s\n", iovaq_strerror(err));
	return err ? 1 : 0;
}
