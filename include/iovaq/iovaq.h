/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * libiovaq: IOVA allocation and IOTLB-invalidation batching.
 * The umbrella header: include this one.
 */
#ifndef IOVAQ_IOVAQ_H
#define IOVAQ_IOVAQ_H

#include <iovaq/common.h>
#include <iovaq/version.h>
#include <iovaq/space.h>
#include <iovaq/cache.h>
#include <iovaq/stats.h>
#include <iovaq/backend.h>
#include <iovaq/sim.h>
#include <iovaq/domain.h>

#endif /* IOVAQ_IOVAQ_H */
