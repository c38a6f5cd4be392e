/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
#include <iovaq/version.h>
#include "port.h"

const char *iovaq_version(void)
{
	return IOVAQ_VERSION_STRING;
}

unsigned int iovaq_version_number(void)
{
	return IOVAQ_VERSION_NUMBER;
}
