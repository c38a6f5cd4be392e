/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * A program outside the project, built by check-install.sh against an installed libiovaq
 * (through pkg-config and through find_package), to prove the installed headers, libraries and
 * package files work together.
 */
#include <iovaq/iovaq.h>

#include <stdio.h>
#include <string.h>

int main(void)
{
	/* One 4 GiB aperture; IOVA 0 is reserved by the library. */
	const struct iovaq_range ap = { .start = 0, .last = 0xffffffffULL };
	IOVAQ_OPTS(iovaq_space_opts, opts, .apertures = &ap, .n_apertures = 1);
	struct iovaq_space *sp = NULL;
	iovaq_iova_t iova = 0;
	int err;

	/* The library loaded at run time must be the one the headers describe. */
	if (iovaq_version_number() != IOVAQ_VERSION_NUMBER ||
	    strcmp(iovaq_version(), IOVAQ_VERSION_STRING) != 0) {
		fprintf(stderr, "consumer: headers are %s, library is %s\n", IOVAQ_VERSION_STRING,
			iovaq_version());
		return 1;
	}

	err = iovaq_space_create(&opts, &sp);
	if (err) {
		fprintf(stderr, "consumer: iovaq_space_create: %d (%s)\n", err,
			iovaq_strerror(err));
		return 1;
	}
	err = iovaq_space_alloc(sp, 1, IOVAQ_LIMIT_NONE, &iova);
	if (err) {
		fprintf(stderr, "consumer: iovaq_space_alloc: %d (%s)\n", err, iovaq_strerror(err));
		iovaq_space_destroy(sp);
		return 1;
	}
	if (iova == 0 || iova > ap.last || iova % iovaq_space_granule(sp) != 0) {
		fprintf(stderr, "consumer: bad IOVA %#llx\n", (unsigned long long)iova);
		iovaq_space_destroy(sp);
		return 1;
	}
	err = iovaq_space_free(sp, iova, 1);
	if (err) {
		fprintf(stderr, "consumer: iovaq_space_free: %d (%s)\n", err, iovaq_strerror(err));
		iovaq_space_destroy(sp);
		return 1;
	}
	iovaq_space_destroy(sp);

	printf("consumer: libiovaq %s ok\n", iovaq_version());
	return 0;
}
