/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * Magazine cache in front of an IOVA space (Bonwick & Adams, "Magazines and Vmem", USENIX
 * ATC 2001; Linux iova.c rcache; Peleg et al., ATC'15). See include/iovaq/cache.h for the
 * layers. Locking, outermost first:
 *
 *   front_registry_lock  (global: every cache's list of fronts, every thread's list, and
 *                         front->cache; slow paths only)
 *   cpu_slot.lock        (one per CPU slot: its magazines and counters)
 *   depot.lock           (one per class)
 *   space lock           (the tree)
 *   chk_lock             (IOVAQ_CACHE_CHECKED record; innermost, taken alone)
 *
 * A thread's front is written only by its thread, without locks or atomic read-modify-write
 * instructions. Other threads read its counters with relaxed loads (stats); they touch its
 * contents only when the owner cannot run concurrently: after the owner exited (the exit
 * callback holds the registry lock) or when the cache is destroyed or checked, which the API
 * requires to be quiescent. A drain therefore cannot empty other threads' fronts itself: it
 * bumps the epoch half of @key, and each owner empties its front on its next call.
 */
#include <iovaq/cache.h>
#include <iovaq/stats.h>
#include "space_priv.h"
#include "imap.h"
#include "cache_priv.h"

/*
 * A magazine holds 127 IOVAs and its count: exactly 1 KiB, a power of two, so that the
 * metadata allocator packs magazines without waste (Linux's iova_magazine makes the same
 * choice). 127 operations per depot exchange amortise the depot lock to under one percent of
 * the calls, while a CPU's two magazines per class pin at most 254 IOVAs of that class.
 */
#define MAG_SIZE 127
struct mag {
	uint64_t n;
	iovaq_iova_t iova[MAG_SIZE];
};
IOVAQ_STATIC_ASSERT(sizeof(struct mag) == 1024, "a magazine must be exactly 1 KiB");
IOVAQ_STATIC_ASSERT((sizeof(struct mag) & (sizeof(struct mag) - 1)) == 0,
		    "a magazine's size must be a power of two");

#define NCLS IOVAQ_CACHE_MAX_CLASSES

struct cpu_slot {
	iovaq_lock_t lock;
	struct mag *loaded[NCLS];
	struct mag *prev[NCLS];
	uint64_t hits[NCLS];	/* IOVAQ_CACHE_NO_FRONT mode only */
	uint64_t misses[NCLS];
	uint64_t frees[NCLS];
} __attribute__((aligned(IOVAQ_CACHELINE)));

struct depot {
	iovaq_lock_t lock;
	uint32_t n;		/* full magazines in @mags */
	struct mag **mags;	/* array of depot_max entries */
};

struct tstate;

/* A thread's front for one cache: per class a stack of up to @cap IOVAs. */
struct front {
	uint64_t id;			/* const: the cache's id */
	struct iovaq_cache *cache;	/* const while linked; registry lock */
	struct front *c_next, *c_prev;	/* the cache's list; registry lock */
	struct front *t_next, *t_prev;	/* the thread's list; registry lock */
	struct tstate *owner;		/* const */
	uint64_t seen_key;		/* owner only: the cache's key when last synced */
	iovaq_iova_t *stk[NCLS];	/* const: class c's stack, @cap entries */
	uint32_t cnt[NCLS];		/* owner writes; others read relaxed */
	uint64_t hits[NCLS];		/* owner writes; others read relaxed */
	uint64_t misses[NCLS];
	uint64_t frees[NCLS];
	iovaq_iova_t stack[];		/* class c at [c * cap, (c + 1) * cap) */
};

struct iovaq_cache {
	/* Read-mostly, set at creation. */
	struct iovaq_space *sp;
	const struct iovaq_alloc_hooks *hooks;
	uint64_t id;			/* unique, 1 .. 2^32 - 1 */
	uint32_t flags;
	uint64_t fast_max;		/* max_n, or 0 without a fast path: cache_create() */
	uint32_t cap;			/* front entries per class */
	uint32_t cap_shift;		/* ceil(log2(cap)): the stride of the class stacks */
	uint32_t depot_max;
	uint32_t n_cpus;
	uint32_t n_cls;
	uint64_t max_n;			/* largest class, granules */
	uint64_t granule;		/* bytes */
	unsigned int shift;
	iovaq_iova_t lo_iova, hi_iova;
	uint64_t span;			/* hi_iova - lo_iova */
	struct cpu_slot *slots;

	uint64_t mask[NCLS];		/* class c's size in bytes - 1 */
	/*
	 * id << 32 | drain epoch (mod 2^32), changed only by compare-and-swap. A thread's
	 * front is current when the key it last saw is still the cache's key: one compare
	 * covers "this is the cache I used last" and "no drain happened since".
	 */
	uint64_t key __attribute__((aligned(IOVAQ_CACHELINE)));

	struct depot depot[NCLS] __attribute__((aligned(IOVAQ_CACHELINE)));
	struct front *fronts;		/* registry lock */

	/* Counters, atomic. */
	uint64_t retries, fails, big_allocs, big_frees;
	uint64_t trimmed[NCLS];
	/* Per class: exited threads' front counters, and every IOVAQ_CACHE_BYPASS call. */
	uint64_t shared_hits[NCLS], shared_misses[NCLS], shared_frees[NCLS];
	uint64_t metadata_bytes;

	iovaq_lock_t chk_lock;
	struct iovaq_imap held;		/* chk_lock: iova -> granules (IOVAQ_CACHE_CHECKED) */
};

/* ---- per-thread state ------------------------------------------------------------------- */

/*
 * Each thread remembers the front it used last with the cache key it saw then: the fast path
 * needs one compare. Behind it, a tiny direct-mapped table from cache id to front serves
 * threads that alternate between caches without taking the registry lock. Ids are never
 * reused (until 2^32 caches have been created), so a stale entry for a destroyed cache can
 * never match.
 */
#define TSLOTS 8
struct tstate {
	uint64_t last_key;
	struct front *last;
	struct {
		uint64_t id;
		struct front *f;
	} slot[TSLOTS];
	struct front *list;	/* registry lock */
	int armed;		/* owner only */
};

static IOVAQ_TLS struct tstate tls;
static IOVAQ_DEFINE_LOCK(front_registry_lock);
static iovaq_once_t tkey_once = IOVAQ_ONCE_INIT;
static iovaq_thread_key_t tkey;
static int tkey_err;
static uint64_t next_cache_id;

static void thread_exit_cb(void *arg);

static void tkey_init(void)
{
	tkey_err = iovaq_thread_key_create(&tkey, thread_exit_cb);
}

static inline struct front *front_of(const struct iovaq_cache *c)
{
	unsigned int i = (unsigned int)(c->id & (TSLOTS - 1));

	return tls.slot[i].id == c->id ? tls.slot[i].f : NULL;
}

static inline iovaq_iova_t *front_stack(const struct iovaq_cache *c, struct front *f,
					unsigned int cls)
{
	(void)c;
	return f->stk[cls];
}

static size_t front_bytes(const struct iovaq_cache *c)
{
	return sizeof(struct front) + ((size_t)c->n_cls << c->cap_shift) * sizeof(iovaq_iova_t);
}

/* ceil(log2(n)) for n >= 1 without a branch: floor(log2(2n - 1)). */
static inline unsigned int class_of(uint64_t n)
{
	return iovaq_ilog2((n << 1) - 1);
}

/* ---- magazines, slots, depot ------------------------------------------------------------ */

static struct mag *mag_new(struct iovaq_cache *c)
{
	struct mag *m = iovaq__meta_alloc(c->hooks, &c->metadata_bytes, sizeof(*m));

	if (m)
		m->n = 0;
	return m;
}

static void mag_free(struct iovaq_cache *c, struct mag *m)
{
	iovaq__meta_free(c->hooks, &c->metadata_bytes, m, sizeof(*m));
}

/* Return every IOVA in @v (class @cls) to the space, under one acquisition of its lock. */
static void return_to_space(struct iovaq_cache *c, unsigned int cls, const iovaq_iova_t *v,
			    uint64_t n)
{
	uint64_t i;

	if (!n)
		return;
	iovaq__space_lock(c->sp);
	for (i = 0; i < n; i++)
		iovaq__space_free_locked(c->sp, v[i], 1ull << cls);
	iovaq__space_unlock(c->sp);
	iovaq_atomic_add(&c->trimmed[cls], n);
}

/*
 * Hand a full magazine to the depot. Returns NULL if the depot took it, or @m itself, emptied
 * into the space, if the depot was at its bound (the trim; Linux trims on a timer instead).
 */
static struct mag *depot_push(struct iovaq_cache *c, unsigned int cls, struct mag *m)
{
	struct depot *d = &c->depot[cls];

	iovaq_lock(&d->lock);
	if (d->n < c->depot_max) {
		d->mags[d->n++] = m;
		m = NULL;
	}
	iovaq_unlock(&d->lock);
	if (m) {
		return_to_space(c, cls, m->iova, m->n);
		m->n = 0;
	}
	return m;
}

static struct mag *depot_pop(struct iovaq_cache *c, unsigned int cls)
{
	struct depot *d = &c->depot[cls];
	struct mag *m = NULL;

	iovaq_lock(&d->lock);
	if (d->n)
		m = d->mags[--d->n];
	iovaq_unlock(&d->lock);
	return m;
}

/* Pop an IOVA of class @cls whose last byte is at or below @limit from a slot (lock held). */
static int slot_get(struct iovaq_cache *c, struct cpu_slot *s, unsigned int cls,
		    iovaq_iova_t limit, iovaq_iova_t *out)
{
	uint64_t last = (1ull << (cls + c->shift)) - 1;
	struct mag *m = s->loaded[cls], *t;
	uint64_t i;

	if (!m || !m->n) {
		t = s->prev[cls];
		if (t && t->n) {
			s->prev[cls] = m;
			s->loaded[cls] = m = t;
		} else {
			t = depot_pop(c, cls);
			if (!t)
				return -ENOENT;
			mag_free(c, m);
			s->loaded[cls] = m = t;
		}
	}
	/* Most callers have no limit; a limited one may skip entries (as Linux's rcache does). */
	for (i = m->n; i-- > 0;) {
		if (m->iova[i] <= limit - last && limit >= last) {
			*out = m->iova[i];
			m->iova[i] = m->iova[--m->n];
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * Push an IOVA into a slot (lock held); -ENOMEM if no magazine could be had, and then the
 * caller gives the IOVA to the space. Bonwick's exchange: a full loaded magazine becomes the
 * previous one, a full previous one goes to the depot, and the new loaded one is empty.
 */
static int slot_put(struct iovaq_cache *c, struct cpu_slot *s, unsigned int cls, iovaq_iova_t iova)
{
	struct mag *m = s->loaded[cls], *p = s->prev[cls], *e = NULL;

	if (!m || m->n == MAG_SIZE) {
		if (m && p && !p->n) {
			e = p;
			p = NULL;
		} else if (m && p) {
			e = depot_push(c, cls, p);	/* NULL if the depot kept it */
			p = NULL;
		}
		if (!e)
			e = mag_new(c);
		if (!e) {
			s->prev[cls] = p;
			return -ENOMEM;
		}
		if (m)
			p = m;
		s->prev[cls] = p;
		s->loaded[cls] = m = e;
	}
	m->iova[m->n++] = iova;
	return 0;
}

static struct cpu_slot *my_slot(struct iovaq_cache *c)
{
	return &c->slots[iovaq_cpu_id() % c->n_cpus];
}

/* ---- fronts ------------------------------------------------------------------------------ */

/*
 * Move the oldest @k IOVAs of class @cls from the front to the calling CPU's slot; what the
 * slot cannot take (no memory for a magazine) goes to the space.
 */
static void front_spill(struct iovaq_cache *c, struct front *f, unsigned int cls, uint32_t k)
{
	iovaq_iova_t *st = front_stack(c, f, cls);
	struct cpu_slot *s = my_slot(c);
	uint32_t n = f->cnt[cls], i, j = 0;

	iovaq_lock(&s->lock);
	for (i = 0; i < k; i++)
		if (slot_put(c, s, cls, st[i]))
			st[j++] = st[i];	/* keep for the space below */
	iovaq_unlock(&s->lock);
	return_to_space(c, cls, st, j);
	iovaq_memmove(st, st + k, (n - k) * sizeof(*st));
	IOVAQ_WRITE_ONCE(f->cnt[cls], n - k);
}

/* Fill the front's class @cls up to half its capacity from the calling CPU's slot. */
static void front_refill(struct iovaq_cache *c, struct front *f, unsigned int cls)
{
	iovaq_iova_t *st = front_stack(c, f, cls);
	struct cpu_slot *s = my_slot(c);
	uint32_t n = f->cnt[cls], want = c->cap / 2 ? c->cap / 2 : 1;

	iovaq_lock(&s->lock);
	while (n < want && !slot_get(c, s, cls, IOVAQ_LIMIT_NONE, &st[n]))
		n++;
	iovaq_unlock(&s->lock);
	IOVAQ_WRITE_ONCE(f->cnt[cls], n);
}

/* Return everything in a front to the space (a drain). Owner, or front quiescent. */
static void front_empty(struct iovaq_cache *c, struct front *f)
{
	unsigned int cls;

	for (cls = 0; cls < c->n_cls; cls++) {
		return_to_space(c, cls, front_stack(c, f, cls), f->cnt[cls]);
		IOVAQ_WRITE_ONCE(f->cnt[cls], 0);
	}
}

/* Fold an unlinked front's counters into the cache's totals. */
static void front_retire(struct iovaq_cache *c, struct front *f)
{
	unsigned int cls;

	for (cls = 0; cls < c->n_cls; cls++) {
		iovaq_atomic_add(&c->shared_hits[cls], f->hits[cls]);
		iovaq_atomic_add(&c->shared_misses[cls], f->misses[cls]);
		iovaq_atomic_add(&c->shared_frees[cls], f->frees[cls]);
	}
}

/* Registry lock held: unlink @f from its cache and its thread, and free it. */
static void front_unlink_free(struct iovaq_cache *c, struct front *f)
{
	if (f->c_prev)
		f->c_prev->c_next = f->c_next;
	else
		c->fronts = f->c_next;
	if (f->c_next)
		f->c_next->c_prev = f->c_prev;
	if (f->t_prev)
		f->t_prev->t_next = f->t_next;
	else
		f->owner->list = f->t_next;
	if (f->t_next)
		f->t_next->t_prev = f->t_prev;
	front_retire(c, f);
	iovaq__meta_free(c->hooks, &c->metadata_bytes, f, front_bytes(c));
}

/*
 * At thread exit: give every front's IOVAs back to the per-CPU layer, where other threads
 * will find them, and free the fronts.
 */
static void thread_exit_cb(void *arg)
{
	struct tstate *ts = arg;
	struct front *f;
	unsigned int cls;

	iovaq_lock(&front_registry_lock);
	while ((f = ts->list)) {
		struct iovaq_cache *c = f->cache;

		for (cls = 0; cls < c->n_cls; cls++)
			if (f->cnt[cls])
				front_spill(c, f, cls, f->cnt[cls]);
		front_unlink_free(c, f);
	}
	iovaq_memset(ts->slot, 0, sizeof(ts->slot));
	ts->armed = 0;
	iovaq_unlock(&front_registry_lock);
}

/* The calling thread's front for @c if it has one, even when the table lost track of it. */
static struct front *front_find(struct iovaq_cache *c)
{
	struct front *f;

	iovaq_lock(&front_registry_lock);
	for (f = tls.list; f && f->id != c->id; f = f->t_next)
		;
	iovaq_unlock(&front_registry_lock);
	return f;
}

/* The calling thread's front for @c, created on first use; NULL if it cannot be. */
static struct front *front_get_slow(struct iovaq_cache *c)
{
	struct front *f;
	unsigned int i;

	iovaq_once(&tkey_once, tkey_init);
	if (tkey_err)
		return NULL;
	iovaq_lock(&front_registry_lock);
	for (f = tls.list; f && f->id != c->id; f = f->t_next)
		;
	if (!f) {
		if (!tls.armed) {
			if (iovaq_thread_exit_arm(tkey, &tls))
				goto out;
			tls.armed = 1;
		}
		f = iovaq__meta_alloc(c->hooks, &c->metadata_bytes, front_bytes(c));
		if (!f)
			goto out;
		iovaq_memset(f, 0, sizeof(*f));
		f->id = c->id;
		f->cache = c;
		f->owner = &tls;
		f->seen_key = IOVAQ_READ_ONCE(c->key);
		for (i = 0; i < c->n_cls; i++)
			f->stk[i] = &f->stack[(size_t)i << c->cap_shift];
		f->c_next = c->fronts;
		if (c->fronts)
			c->fronts->c_prev = f;
		c->fronts = f;
		f->t_next = tls.list;
		if (tls.list)
			tls.list->t_prev = f;
		tls.list = f;
	}
	tls.slot[c->id & (TSLOTS - 1)].id = c->id;
	tls.slot[c->id & (TSLOTS - 1)].f = f;
out:
	iovaq_unlock(&front_registry_lock);
	return f;
}

/*
 * The calling thread's front, made current: created if needed, emptied into the space if a
 * drain happened since the thread last used it, and remembered for the fast path.
 */
static struct front *front_sync(struct iovaq_cache *c)
{
	uint64_t key = IOVAQ_READ_ONCE(c->key);
	struct front *f = front_of(c) ?: front_get_slow(c);

	if (!f)
		return NULL;
	if (f->seen_key != key) {
		front_empty(c, f);
		f->seen_key = key;
	}
	tls.last_key = key;
	tls.last = f;
	return f;
}

/* ---- checked mode ------------------------------------------------------------------------- */

static int held_add(struct iovaq_cache *c, iovaq_iova_t iova, uint64_t n)
{
	int err;

	iovaq_lock(&c->chk_lock);
	err = iovaq__imap_add(&c->held, iova, n, NULL);
	iovaq_unlock(&c->chk_lock);
	return err;
}

/* Remove @iova if it is held with exactly @n granules; -EINVAL otherwise. */
static int held_del(struct iovaq_cache *c, iovaq_iova_t iova, uint64_t n)
{
	struct iovaq_imap_ent *e;
	int err = -EINVAL;

	iovaq_lock(&c->chk_lock);
	e = iovaq__imap_find(&c->held, iova);
	if (e && e->val == n) {
		iovaq__imap_del(&c->held, e);
		err = 0;
	}
	iovaq_unlock(&c->chk_lock);
	return err;
}

/* ---- allocation and free ------------------------------------------------------------------ */

/* Allocate from the space; on -ENOSPC drain everything reachable and retry once. */
static int space_alloc_retry(struct iovaq_cache *c, uint64_t n, uint64_t lim, iovaq_iova_t *out)
{
	int err;

	IOVAQ_TRACE2(cache_miss, n, lim);	/* to the tree */
	iovaq__space_lock(c->sp);
	err = iovaq__space_alloc_locked(c->sp, n, lim, out);
	iovaq__space_unlock(c->sp);
	if (err != -ENOSPC || (c->flags & IOVAQ_CACHE_BYPASS))
		return err;
	iovaq_atomic_add(&c->retries, 1);
	iovaq_cache_drain(c);
	iovaq__space_lock(c->sp);
	err = iovaq__space_alloc_locked(c->sp, n, lim, out);
	iovaq__space_unlock(c->sp);
	return err;
}

/* Take a cached IOVA of class @cls at or below @limit: 0, or -ENOENT on a miss. */
static int cache_take(struct iovaq_cache *c, unsigned int cls, iovaq_iova_t limit,
		      iovaq_iova_t *out)
{
	uint64_t last = (1ull << (cls + c->shift)) - 1;
	struct cpu_slot *s;
	struct front *f;
	iovaq_iova_t *st;
	uint32_t i, n;
	int err;

	if (c->flags & IOVAQ_CACHE_BYPASS) {
		iovaq_atomic_add(&c->shared_misses[cls], 1);
		return -ENOENT;
	}
	f = (c->flags & IOVAQ_CACHE_NO_FRONT) || !IOVAQ_PORT_THREAD_FRONTS ? NULL : front_sync(c);
	if (!f) {
		s = my_slot(c);
		iovaq_lock(&s->lock);
		err = slot_get(c, s, cls, limit, out);
		if (err)
			s->misses[cls]++;
		else
			s->hits[cls]++;
		iovaq_unlock(&s->lock);
		return err;
	}
	if (!f->cnt[cls])
		front_refill(c, f, cls);
	st = front_stack(c, f, cls);
	n = f->cnt[cls];
	for (i = n; i-- > 0;) {
		if (limit >= last && st[i] <= limit - last) {
			*out = st[i];
			st[i] = st[n - 1];
			IOVAQ_WRITE_ONCE(f->cnt[cls], n - 1);
			IOVAQ_OWNER_INC(f->hits[cls]);
			return 0;
		}
	}
	IOVAQ_OWNER_INC(f->misses[cls]);
	return -ENOENT;
}

static __attribute__((__noinline__)) int alloc_slow(struct iovaq_cache *c, uint64_t n,
						iovaq_iova_t limit, iovaq_iova_t *out)
{
	iovaq_iova_t iova;
	unsigned int cls;
	uint64_t lim;
	int err;

	if (!c || !out || !n || n > (UINT64_MAX >> c->shift))
		return -EINVAL;
	err = iovaq__space_limit_granule(c->sp, limit, &lim);
	if (err)
		return err;
	if (n > c->max_n) {
		err = space_alloc_retry(c, n, lim, &iova);
		if (!err)
			iovaq_atomic_add(&c->big_allocs, 1);
	} else {
		cls = class_of(n);
		n = 1ull << cls;
		err = cache_take(c, cls, limit, &iova);
		if (err == -ENOENT)
			err = space_alloc_retry(c, n, lim, &iova);
	}
	if (!err && (c->flags & IOVAQ_CACHE_CHECKED)) {
		err = held_add(c, iova, n);
		if (err)	/* undo: the space takes it back, nothing is lost */
			iovaq_space_free(c->sp, iova, n);
	}
	if (err) {
		iovaq_atomic_add(&c->fails, 1);
		return err;
	}
	*out = iova;
	return 0;
}

/*
 * The fast paths: a hit in the calling thread's front. One unsigned compare covers a NULL-free
 * cache with a fast path (fast_max is max_n, or 0), n != 0 and n <= max_n;
 * everything else, and every miss, goes to the out-of-line slow path, so that the hit keeps
 * its register pressure (and prologue) small.
 */
int iovaq_cache_alloc(struct iovaq_cache *c, uint64_t n, iovaq_iova_t limit, iovaq_iova_t *out)
{
	struct front *f = tls.last;
	iovaq_iova_t iova;
	unsigned int cls;
	uint32_t k;

	if (iovaq_likely(c && n - 1 < c->fast_max && out &&
			 tls.last_key == IOVAQ_READ_ONCE(c->key))) {
		cls = class_of(n);
		k = f->cnt[cls];
		if (iovaq_likely(k)) {
			iova = f->stk[cls][k - 1];
			if (iovaq_likely(iova + c->mask[cls] <= limit)) {
				IOVAQ_WRITE_ONCE(f->cnt[cls], k - 1);
				IOVAQ_OWNER_INC(f->hits[cls]);
				*out = iova;
				return 0;
			}
		}
	}
	return alloc_slow(c, n, limit, out);
}

/* Cheap validity checks that need no lookup: class alignment and the space's bounds. */
static int free_plausible(const struct iovaq_cache *c, iovaq_iova_t iova, uint64_t bytes)
{
	return !(iova & (bytes - 1)) && iova >= c->lo_iova && iova <= c->hi_iova &&
	       bytes - 1 <= c->hi_iova - iova;
}

static __attribute__((__noinline__)) int free_slow(struct iovaq_cache *c, iovaq_iova_t iova,
					       uint64_t n)
{
	struct cpu_slot *s;
	struct front *f;
	unsigned int cls;
	int err;

	if (!c || !n || n > (UINT64_MAX >> c->shift))
		return -EINVAL;
	if (n > c->max_n) {
		if (c->flags & IOVAQ_CACHE_CHECKED && held_del(c, iova, n))
			return -EINVAL;
		err = iovaq_space_free(c->sp, iova, n);
		if (!err)
			iovaq_atomic_add(&c->big_frees, 1);
		else if (c->flags & IOVAQ_CACHE_CHECKED)
			held_add(c, iova, n);	/* cannot happen: held implies allocated */
		return err;
	}
	cls = class_of(n);
	n = 1ull << cls;
	if (!free_plausible(c, iova, n << c->shift))
		return -EINVAL;
	if ((c->flags & IOVAQ_CACHE_CHECKED) && held_del(c, iova, n))
		return -EINVAL;
	if (c->flags & IOVAQ_CACHE_BYPASS) {
		err = iovaq_space_free(c->sp, iova, n);
		if (!err)
			iovaq_atomic_add(&c->shared_frees[cls], 1);
		return err;
	}

	f = (c->flags & IOVAQ_CACHE_NO_FRONT) || !IOVAQ_PORT_THREAD_FRONTS ? NULL : front_sync(c);
	if (!f) {
		s = my_slot(c);
		iovaq_lock(&s->lock);
		err = slot_put(c, s, cls, iova);
		if (!err)
			s->frees[cls]++;
		iovaq_unlock(&s->lock);
		if (err)	/* no memory for a magazine: the space takes it */
			return_to_space(c, cls, &iova, 1);
		return 0;
	}
	if (f->cnt[cls] == c->cap)
		front_spill(c, f, cls, c->cap / 2 ? c->cap / 2 : 1);
	front_stack(c, f, cls)[f->cnt[cls]] = iova;
	IOVAQ_WRITE_ONCE(f->cnt[cls], f->cnt[cls] + 1);
	IOVAQ_OWNER_INC(f->frees[cls]);
	return 0;
}

int iovaq_cache_free(struct iovaq_cache *c, iovaq_iova_t iova, uint64_t n)
{
	struct front *f = tls.last;
	unsigned int cls;
	uint64_t mask;
	uint32_t k;

	if (iovaq_likely(c && n - 1 < c->fast_max && tls.last_key == IOVAQ_READ_ONCE(c->key))) {
		cls = class_of(n);
		mask = c->mask[cls];
		k = f->cnt[cls];
		/* Class-aligned and inside the span (mask <= span: see cache_create()). */
		if (iovaq_likely(!(iova & mask) && iova - c->lo_iova <= c->span - mask &&
				 k < c->cap)) {
			f->stk[cls][k] = iova;
			IOVAQ_WRITE_ONCE(f->cnt[cls], k + 1);
			IOVAQ_OWNER_INC(f->frees[cls]);
			return 0;
		}
	}
	return free_slow(c, iova, n);
}

/* ---- drain, create, destroy ------------------------------------------------------------- */

static void slot_empty(struct iovaq_cache *c, struct cpu_slot *s)
{
	unsigned int cls;

	for (cls = 0; cls < c->n_cls; cls++) {
		if (s->loaded[cls])
			return_to_space(c, cls, s->loaded[cls]->iova, s->loaded[cls]->n);
		if (s->prev[cls])
			return_to_space(c, cls, s->prev[cls]->iova, s->prev[cls]->n);
		mag_free(c, s->loaded[cls]);
		mag_free(c, s->prev[cls]);
		s->loaded[cls] = s->prev[cls] = NULL;
	}
}

static void depot_empty(struct iovaq_cache *c)
{
	unsigned int cls;
	struct mag *m;

	for (cls = 0; cls < c->n_cls; cls++) {
		while ((m = depot_pop(c, cls))) {
			return_to_space(c, cls, m->iova, m->n);
			mag_free(c, m);
		}
	}
}

/* Empty every per-CPU slot and the depot into the space. */
static void drain_shared(struct iovaq_cache *c)
{
	uint32_t i;

	for (i = 0; i < c->n_cpus; i++) {
		iovaq_lock(&c->slots[i].lock);
		slot_empty(c, &c->slots[i]);
		iovaq_unlock(&c->slots[i].lock);
	}
	depot_empty(c);
}

void iovaq_cache_drain(struct iovaq_cache *c)
{
	struct front *f;
	uint64_t key;

	if (!c)
		return;
	/* Other threads see the new epoch on their next call and empty their own fronts. */
	key = IOVAQ_READ_ONCE(c->key);
	while (!__atomic_compare_exchange_n(&c->key, &key,
					    (key & ~0xffffffffull) | (uint32_t)(key + 1), 0,
					    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
		;
	f = front_of(c) ?: front_find(c);
	if (f)
		front_sync(c);
	drain_shared(c);
}

static void cache_free_all(struct iovaq_cache *c)
{
	uint32_t i;

	for (i = 0; i < c->n_cls; i++) {
		iovaq__meta_free(c->hooks, &c->metadata_bytes, c->depot[i].mags,
				 c->depot_max * sizeof(struct mag *));
		iovaq_lock_destroy(&c->depot[i].lock);
	}
	if (c->slots) {
		for (i = 0; i < c->n_cpus; i++)
			iovaq_lock_destroy(&c->slots[i].lock);
		iovaq__meta_free(c->hooks, &c->metadata_bytes, c->slots,
				 c->n_cpus * sizeof(struct cpu_slot));
	}
	iovaq__imap_fini(&c->held);
	iovaq_lock_destroy(&c->chk_lock);
	iovaq_hooks_free(c->hooks, c, sizeof(*c));
}

int iovaq_cache_create(struct iovaq_space *sp, const struct iovaq_cache_opts *o,
		       struct iovaq_cache **out)
{
	const uint32_t known = IOVAQ_CACHE_NO_FRONT | IOVAQ_CACHE_CHECKED | IOVAQ_CACHE_BYPASS;
	uint64_t max_n;
	struct iovaq_cache *c;
	uint32_t i, cap, depot_max, n_cpus, flags;
	int err;

	if (!sp || !out)
		return -EINVAL;
	if (o) {
		err = iovaq_opts_check(o, sizeof(o->sz), sizeof(*o));
		if (err)
			return err;
	}
	max_n = IOVAQ_OPTS_GET(o, max_cached_granules, 0) ?: IOVAQ_CACHE_DEFAULT_MAX_GRANULES;
	cap = IOVAQ_OPTS_GET(o, front_cap, 0) ?: IOVAQ_CACHE_DEFAULT_FRONT_CAP;
	n_cpus = IOVAQ_OPTS_GET(o, n_cpus, 0) ?: iovaq_ncpus();
	depot_max = IOVAQ_OPTS_GET(o, depot_max, 0) ?: n_cpus;
	flags = IOVAQ_OPTS_GET(o, flags, 0);
	if (!iovaq_is_pow2(max_n) || max_n > (1ull << (NCLS - 1)) ||
	    max_n > (UINT64_MAX >> sp->shift) || cap > IOVAQ_CACHE_MAX_FRONT_CAP ||
	    (flags & ~known) || n_cpus > 65536 || depot_max > (1u << 20))
		return -EINVAL;

	c = iovaq_hooks_alloc(sp->hooks, sizeof(*c), IOVAQ_CACHELINE);
	if (!c)
		return -ENOMEM;
	iovaq_memset(c, 0, sizeof(*c));
	c->sp = sp;
	c->hooks = sp->hooks;
	c->id = iovaq_atomic_inc_return(&next_cache_id) & 0xffffffffu;
	if (!c->id)	/* 0 is "no cache" in every thread's table */
		c->id = iovaq_atomic_inc_return(&next_cache_id) & 0xffffffffu;
	c->key = c->id << 32;
	c->flags = flags;
	/* A class larger than the whole span can never be allocated: cap the classes there. */
	while (max_n > 1 && max_n - 1 > (sp->hi - sp->lo))
		max_n >>= 1;
	/*
	 * The fast paths test "n - 1 < fast_max", which is false for n == 0 (wraps), for
	 * n > max_n, and always when fast_max is 0 (a mode without the lock-free front).
	 */
	if (!(flags & (IOVAQ_CACHE_NO_FRONT | IOVAQ_CACHE_CHECKED | IOVAQ_CACHE_BYPASS)) &&
	    IOVAQ_PORT_THREAD_FRONTS)
		c->fast_max = max_n;
	/* Each class's stack starts at a power-of-two stride; it holds at most cap entries. */
	c->cap_shift = iovaq_order_ceil(cap);
	c->cap = cap;
	c->depot_max = depot_max;
	c->n_cpus = n_cpus;
	c->max_n = max_n;
	c->n_cls = iovaq_ilog2(max_n) + 1;
	c->shift = sp->shift;
	c->lo_iova = sp->lo_iova;
	c->hi_iova = sp->hi_iova;
	c->span = sp->hi_iova - sp->lo_iova;
	c->granule = sp->granule;
	for (i = 0; i < c->n_cls; i++)
		c->mask[i] = (c->granule << i) - 1;
	iovaq_lock_init(&c->chk_lock);
	iovaq__imap_init(&c->held, c->hooks, &c->metadata_bytes);
	for (i = 0; i < c->n_cls; i++)
		iovaq_lock_init(&c->depot[i].lock);
	c->slots = iovaq__meta_alloc(c->hooks, &c->metadata_bytes,
				     n_cpus * sizeof(struct cpu_slot));
	if (!c->slots)
		goto nomem;
	iovaq_memset(c->slots, 0, n_cpus * sizeof(struct cpu_slot));
	for (i = 0; i < n_cpus; i++)
		iovaq_lock_init(&c->slots[i].lock);
	for (i = 0; i < c->n_cls; i++) {
		c->depot[i].mags = iovaq__meta_alloc(c->hooks, &c->metadata_bytes,
						     depot_max * sizeof(struct mag *));
		if (!c->depot[i].mags)
			goto nomem;
	}
	*out = c;
	return 0;
nomem:
	cache_free_all(c);
	return -ENOMEM;
}

void iovaq_cache_destroy(struct iovaq_cache *c)
{
	struct front *f;
	__typeof__(&tls.slot[0]) slot;

	if (!c)
		return;
	iovaq_lock(&front_registry_lock);
	while ((f = c->fronts)) {
		front_empty(c, f);
		front_unlink_free(c, f);
	}
	iovaq_unlock(&front_registry_lock);
	/*
	 * Other threads keep a stale table entry for our id, which can never match again since
	 * ids are not reused; the calling thread forgets its own at once.
	 */
	slot = &tls.slot[c->id & (TSLOTS - 1)];
	if (slot->id == c->id)
		slot->id = 0;
	if (tls.last_key >> 32 == c->id)
		tls.last_key = 0;
	drain_shared(c);
	cache_free_all(c);
}

struct iovaq_space *iovaq_cache_space(const struct iovaq_cache *c)
{
	return c->sp;
}

/* ---- stats and check -------------------------------------------------------------------- */

int iovaq_cache_stats(struct iovaq_cache *c, struct iovaq_stats *st)
{
	struct iovaq_stats tmp;
	struct iovaq_class_stats *k;
	struct front *f;
	unsigned int cls;
	uint32_t i;
	int err;

	if (!c)
		return -EINVAL;
	err = iovaq_opts_check(st, offsetof(struct iovaq_stats, n_classes), SIZE_MAX);
	if (err)
		return err;
	iovaq_memset(&tmp, 0, sizeof(tmp));
	tmp.n_classes = c->n_cls;
	for (cls = 0; cls < c->n_cls; cls++) {
		k = &tmp.classes[cls];
		k->granules = 1ull << cls;
		k->hits = IOVAQ_READ_ONCE(c->shared_hits[cls]);
		k->misses = IOVAQ_READ_ONCE(c->shared_misses[cls]);
		k->frees = IOVAQ_READ_ONCE(c->shared_frees[cls]);
		k->trimmed = IOVAQ_READ_ONCE(c->trimmed[cls]);
	}
	iovaq_lock(&front_registry_lock);
	for (f = c->fronts; f; f = f->c_next) {
		for (cls = 0; cls < c->n_cls; cls++) {
			k = &tmp.classes[cls];
			k->hits += IOVAQ_READ_ONCE(f->hits[cls]);
			k->misses += IOVAQ_READ_ONCE(f->misses[cls]);
			k->frees += IOVAQ_READ_ONCE(f->frees[cls]);
			k->cached += IOVAQ_READ_ONCE(f->cnt[cls]);
		}
	}
	tmp.metadata_bytes += IOVAQ_READ_ONCE(c->metadata_bytes) + sizeof(*c);
	iovaq_unlock(&front_registry_lock);
	for (i = 0; i < c->n_cpus; i++) {
		struct cpu_slot *s = &c->slots[i];

		iovaq_lock(&s->lock);
		for (cls = 0; cls < c->n_cls; cls++) {
			k = &tmp.classes[cls];
			k->hits += s->hits[cls];
			k->misses += s->misses[cls];
			k->frees += s->frees[cls];
			k->cached += (s->loaded[cls] ? s->loaded[cls]->n : 0) +
				     (s->prev[cls] ? s->prev[cls]->n : 0);
		}
		iovaq_unlock(&s->lock);
	}
	for (cls = 0; cls < c->n_cls; cls++) {
		struct depot *d = &c->depot[cls];

		k = &tmp.classes[cls];
		iovaq_lock(&d->lock);
		k->depot_mags = d->n;
		for (i = 0; i < d->n; i++)
			k->cached += d->mags[i]->n;
		iovaq_unlock(&d->lock);
		tmp.cached_granules += k->cached << cls;
		tmp.cache_allocs += k->hits + k->misses;
		tmp.cache_frees += k->frees;
	}
	/* Without a front, misses are counted per slot only when they take the slot path. */
	tmp.cache_allocs += IOVAQ_READ_ONCE(c->big_allocs);
	tmp.cache_frees += IOVAQ_READ_ONCE(c->big_frees);
	tmp.cache_alloc_fail = IOVAQ_READ_ONCE(c->fails);
	tmp.cache_retries = IOVAQ_READ_ONCE(c->retries);
	iovaq__space_lock(c->sp);
	iovaq__space_stats_locked(c->sp, &tmp);
	iovaq__space_unlock(c->sp);
	tmp.sz = st->sz < sizeof(tmp) ? st->sz : sizeof(tmp);
	iovaq_memcpy(st, &tmp, tmp.sz);
	return 0;
}

struct cached_ent {
	iovaq_iova_t iova;
	uint64_t n;
};

static int cmp_cached(const void *a, const void *b)
{
	const struct cached_ent *x = a, *y = b;

	return x->iova < y->iova ? -1 : x->iova > y->iova;
}

static int visit_stack(const iovaq_iova_t *v, uint64_t n, unsigned int cls,
		       int (*fn)(void *, iovaq_iova_t, uint64_t), void *arg)
{
	uint64_t i;
	int ret;

	for (i = 0; i < n; i++) {
		ret = fn(arg, v[i], 1ull << cls);
		if (ret)
			return ret;
	}
	return 0;
}

int iovaq__cache_for_each_cached(struct iovaq_cache *c,
				 int (*fn)(void *arg, iovaq_iova_t iova, uint64_t n), void *arg)
{
	struct front *f;
	unsigned int cls;
	uint32_t s, j;
	int ret = 0;

	/* Quiescent by contract: read everything without the owners' cooperation. */
	iovaq_lock(&front_registry_lock);
	for (f = c->fronts; f && !ret; f = f->c_next)
		for (cls = 0; cls < c->n_cls && !ret; cls++)
			ret = visit_stack(front_stack(c, f, cls), f->cnt[cls], cls, fn, arg);
	for (s = 0; s < c->n_cpus && !ret; s++) {
		for (cls = 0; cls < c->n_cls && !ret; cls++) {
			struct mag *m = c->slots[s].loaded[cls], *p = c->slots[s].prev[cls];

			if (m)
				ret = visit_stack(m->iova, m->n, cls, fn, arg);
			if (p && !ret)
				ret = visit_stack(p->iova, p->n, cls, fn, arg);
		}
	}
	for (cls = 0; cls < c->n_cls && !ret; cls++)
		for (j = 0; j < c->depot[cls].n && !ret; j++)
			ret = visit_stack(c->depot[cls].mags[j]->iova, c->depot[cls].mags[j]->n, cls,
					  fn, arg);
	iovaq_unlock(&front_registry_lock);
	return ret;
}

uint64_t iovaq__cache_round(const struct iovaq_cache *c, uint64_t n)
{
	return n <= c->max_n ? 1ull << class_of(n) : n;
}

static int count_one(void *arg, iovaq_iova_t iova, uint64_t n)
{
	(void)iova;
	(void)n;
	(*(uint64_t *)arg)++;
	return 0;
}

struct collect_state {
	struct cached_ent *v;
	uint64_t k, cap;
};

static int collect_one(void *arg, iovaq_iova_t iova, uint64_t n)
{
	struct collect_state *cs = arg;

	if (cs->k == cs->cap)
		return -EUCLEAN;	/* changed between the passes: not quiescent */
	cs->v[cs->k++] = (struct cached_ent){ iova, n };
	return 0;
}

int iovaq_cache_check(struct iovaq_cache *c)
{
	struct collect_state cs = { 0 };
	struct cached_ent *v = NULL;
	uint64_t total = 0, k, i, allocs = 0;
	int err;

	if (!c)
		return -EINVAL;
	err = iovaq_space_check(c->sp);
	if (err)
		return err;
	iovaq__cache_for_each_cached(c, count_one, &total);
	if (total) {
		v = iovaq_hooks_alloc(c->hooks, total * sizeof(*v), 8);
		if (!v)
			return -ENOMEM;
	}
	cs.v = v;
	cs.cap = total;
	err = iovaq__cache_for_each_cached(c, collect_one, &cs);
	if (err || cs.k != total)
		err = -EUCLEAN;

	iovaq_sort(v, total, sizeof(*v), cmp_cached);
	iovaq__space_lock(c->sp);
	for (i = 0; i < total && !err; i++) {
		/* Each cached IOVA: a live space allocation of exactly its class, cached once. */
		if (iovaq__space_lookup_locked(c->sp, v[i].iova) != v[i].n ||
		    (v[i].iova & ((v[i].n << c->shift) - 1)) ||
		    (i && v[i].iova == v[i - 1].iova))
			err = -EUCLEAN;
	}
	iovaq__space_unlock(c->sp);
	if (!err && (c->flags & IOVAQ_CACHE_CHECKED)) {
		/* Held and cached together must be exactly the space's allocations. */
		iovaq_lock(&c->chk_lock);
		for (i = 0; c->held.e && i <= c->held.mask && !err; i++) {
			struct iovaq_imap_ent *e = &c->held.e[i];

			if (!e->key)
				continue;
			iovaq__space_lock(c->sp);
			if (iovaq__space_lookup_locked(c->sp, e->key) != e->val)
				err = -EUCLEAN;
			iovaq__space_unlock(c->sp);
		}
		k = c->held.n;
		iovaq_unlock(&c->chk_lock);
		if (!err) {
			iovaq_space_walk(c->sp, count_one, &allocs);
			if (allocs != k + total)
				err = -EUCLEAN;
		}
	}
	if (v)
		iovaq_hooks_free(c->hooks, v, total * sizeof(*v));
	return err;
}
