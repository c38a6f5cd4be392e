/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/* Userspace stand-in for <linux/atomic.h>: the compiler's __atomic builtins, sequentially consistent. */
#ifndef KSTUB_LINUX_ATOMIC_H
#define KSTUB_LINUX_ATOMIC_H

#include <linux/types.h>

typedef struct {
	int counter;
} atomic_t;
typedef struct {
	s64 counter;
} atomic64_t;
#define ATOMIC_INIT(i) { (i) }
#define ATOMIC64_INIT(i) { (i) }

#define KSTUB_SEQ __ATOMIC_SEQ_CST
static inline int atomic_read(const atomic_t *v) { return __atomic_load_n(&v->counter, KSTUB_SEQ); }
static inline void atomic_set(atomic_t *v, int i) { __atomic_store_n(&v->counter, i, KSTUB_SEQ); }
static inline int atomic_dec_return(atomic_t *v) { return __atomic_sub_fetch(&v->counter, 1, KSTUB_SEQ); }
static inline int atomic_inc_return(atomic_t *v) { return __atomic_add_fetch(&v->counter, 1, KSTUB_SEQ); }
static inline s64 atomic64_read(const atomic64_t *v) { return __atomic_load_n(&v->counter, KSTUB_SEQ); }
static inline void atomic64_set(atomic64_t *v, s64 i) { __atomic_store_n(&v->counter, i, KSTUB_SEQ); }
static inline void atomic64_add(s64 i, atomic64_t *v) { __atomic_add_fetch(&v->counter, i, KSTUB_SEQ); }
static inline void atomic64_sub(s64 i, atomic64_t *v) { __atomic_sub_fetch(&v->counter, i, KSTUB_SEQ); }
static inline void atomic64_inc(atomic64_t *v) { atomic64_add(1, v); }
static inline void atomic64_dec(atomic64_t *v) { atomic64_sub(1, v); }

#endif
