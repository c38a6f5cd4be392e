/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * IOVA space allocator: an AVL tree of the live allocations (and reserved holes), keyed by
 * first granule. Each node also owns the free gap that ends right before it, and every node
 * summarises its subtree with the largest gap length and the largest naturally aligned
 * power-of-two block that fits in one of its gaps. A search for n granules therefore prunes
 * every subtree that cannot hold the request and costs O(log n) in the worst case, where
 * Linux's rbtree walk is linear in bad cases (EiovaR, FAST'15; Linux 4.7's per-CPU caching
 * commit).
 *
 * The span [lo, hi] runs from the first granule of the lowest aperture to the last granule
 * of the highest one. Everything in it that is not usable (IOVA 0, the gaps between
 * apertures, caller-given holes) is a "hole" node, and a sentinel node of size 0 sits at
 * hi + 1, so that every free granule belongs to exactly one node's gap. The space is thus
 * partitioned at every moment into gaps (free), hole nodes (reserved) and allocation nodes,
 * which is the invariant iovaq_space_check() verifies.
 */
#include "space_priv.h"
#include <iovaq/stats.h>

struct snode {
	struct snode *left, *right, *parent;
	uint64_t start;		/* first granule */
	uint64_t n;		/* granules covered; 0 only for the end sentinel */
	uint64_t gap;		/* free granules ending right before @start */
	uint64_t max_gap;	/* largest @gap in this subtree */
	int8_t gap_order;	/* largest k with an aligned 2^k block inside @gap, -1 if none */
	int8_t max_order;	/* largest @gap_order in this subtree */
	uint8_t height;		/* AVL height, leaves are 1 */
	uint8_t hole;		/* reserved hole or sentinel: never freed */
};

/*
 * Nodes come from chunks of the metadata allocator so that the tree path does not call the
 * allocator per operation. A chunk is 16 KiB: big enough to amortise the call, small enough
 * not to matter for a space with a handful of allocations.
 */
#define SNODE_CHUNK_BYTES 16384u
struct snode_chunk {
	struct snode_chunk *next;
	/* Keeps every node on its own cache line (chunks are cache-line aligned). */
	char pad[IOVAQ_CACHELINE - sizeof(struct snode_chunk *)];
	struct snode nodes[];
};
#define SNODE_PER_CHUNK ((SNODE_CHUNK_BYTES - sizeof(struct snode_chunk)) / sizeof(struct snode))
IOVAQ_STATIC_ASSERT(SNODE_PER_CHUNK >= 64, "a node chunk must amortise its allocation");
/* Heights stay below 1.44 log2(2^64) < 93 and orders below 64: both fit in a byte. */
IOVAQ_STATIC_ASSERT(sizeof(struct snode) == IOVAQ_CACHELINE, "a node must be one cache line");

/* One allocation request, in granules. */
struct sreq {
	uint64_t n;
	uint64_t mask;	/* alignment - 1 */
	int order;	/* log2(n) if n is a power of two (aligned request), else -1 */
	uint64_t lim;	/* last usable granule */
};

void *iovaq__meta_alloc(const struct iovaq_alloc_hooks *h, uint64_t *counter, size_t size)
{
	void *p = iovaq_hooks_alloc(h, size, IOVAQ_CACHELINE);

	if (p)
		iovaq_atomic_add(counter, size);
	return p;
}

void iovaq__meta_free(const struct iovaq_alloc_hooks *h, uint64_t *counter, void *p, size_t size)
{
	if (!p)
		return;
	iovaq_atomic_add(counter, (uint64_t)0 - size);
	iovaq_hooks_free(h, p, size);
}

static struct snode *snode_get(struct iovaq_space *sp)
{
	struct snode *x = sp->free_nodes;
	struct snode_chunk *ch;
	size_t i;

	if (iovaq_unlikely(!x)) {
		ch = iovaq__meta_alloc(sp->hooks, &sp->metadata_bytes, SNODE_CHUNK_BYTES);
		if (!ch)
			return NULL;
		ch->next = sp->chunks;
		sp->chunks = ch;
		for (i = 0; i < SNODE_PER_CHUNK; i++) {
			ch->nodes[i].left = sp->free_nodes;
			sp->free_nodes = &ch->nodes[i];
		}
		x = sp->free_nodes;
	}
	sp->free_nodes = x->left;
	sp->tree_nodes++;
	return x;
}

static void snode_put(struct iovaq_space *sp, struct snode *x)
{
	x->left = sp->free_nodes;
	sp->free_nodes = x;
	sp->tree_nodes--;
}

/* Largest k such that a 2^k-aligned block of 2^k granules fits in [g0, g0 + len). */
static int8_t gap_order_of(uint64_t g0, uint64_t len)
{
	unsigned int k;
	uint64_t s;

	if (!len)
		return -1;
	k = iovaq_ilog2(len);
	s = (g0 + (1ull << k) - 1) & ~((1ull << k) - 1);
	/* An interval of 2^k or more granules always holds an aligned 2^(k-1) block. */
	if (s + (1ull << k) > g0 + len)
		k--;
	return (int8_t)k;
}

static inline unsigned int h_of(const struct snode *x)
{
	return x ? x->height : 0;
}

static void snode_set_gap(struct snode *x, uint64_t gap)
{
	x->gap = gap;
	x->gap_order = gap_order_of(x->start - gap, gap);
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static inline int8_t max_i8(int8_t a, int8_t b)
{
	return a > b ? a : b;
}

/*
 * Recompute height and subtree summaries of @x from its children; returns the balance factor
 * (left height - right height). Absent children count as height 0, gap 0, order -1.
 */
static inline int snode_update(struct snode *x)
{
	const struct snode *l = x->left, *r = x->right;
	unsigned int hl = 0, hr = 0;
	uint64_t mg = x->gap;
	int8_t mo = x->gap_order;

	if (l) {
		hl = l->height;
		mg = max_u64(mg, l->max_gap);
		mo = max_i8(mo, l->max_order);
	}
	if (r) {
		hr = r->height;
		mg = max_u64(mg, r->max_gap);
		mo = max_i8(mo, r->max_order);
	}
	x->height = (uint8_t)(1 + (hl > hr ? hl : hr));
	x->max_gap = mg;
	x->max_order = mo;
	return (int)hl - (int)hr;
}

/* Make @nw take @old's place under @old's parent (or as the root). */
static void replace_child(struct iovaq_space *sp, struct snode *old, struct snode *nw)
{
	struct snode *p = old->parent;

	if (!p)
		sp->root = nw;
	else if (p->left == old)
		p->left = nw;
	else
		p->right = nw;
	if (nw)
		nw->parent = p;
}

static struct snode *rot_right(struct iovaq_space *sp, struct snode *x)
{
	struct snode *l = x->left;

	replace_child(sp, x, l);
	x->left = l->right;
	if (x->left)
		x->left->parent = x;
	l->right = x;
	x->parent = l;
	snode_update(x);
	snode_update(l);
	return l;
}

static struct snode *rot_left(struct iovaq_space *sp, struct snode *x)
{
	struct snode *r = x->right;

	replace_child(sp, x, r);
	x->right = r->left;
	if (x->right)
		x->right->parent = x;
	r->left = x;
	x->parent = r;
	snode_update(x);
	snode_update(r);
	return r;
}

/*
 * Restore heights, balance and summaries from @x up to the root after @x's children or gap
 * changed, and after @also's gap changed, @also being @x or one of its ancestors (or NULL).
 * It stops at the first subtree above @also whose height and summaries come out as they
 * were: nothing above it can have changed. That keeps the typical update to a few levels,
 * where a recursive rebuild recomputes every level of the path.
 */
static void fix_up(struct iovaq_space *sp, struct snode *x, const struct snode *also)
{
	while (x) {
		uint8_t h = x->height;
		uint64_t mg = x->max_gap;
		int8_t mo = x->max_order;
		int bf = snode_update(x);

		if (iovaq_unlikely(bf > 1)) {
			if (h_of(x->left->left) < h_of(x->left->right))
				rot_left(sp, x->left);
			x = rot_right(sp, x);
		} else if (iovaq_unlikely(bf < -1)) {
			if (h_of(x->right->right) < h_of(x->right->left))
				rot_right(sp, x->right);
			x = rot_left(sp, x);
		}
		if (x == also)
			also = NULL;	/* passed it: from here on only real change goes on */
		else if (!also && x->height == h && x->max_gap == mg && x->max_order == mo)
			return;
		x = x->parent;
	}
}

static struct snode *leftmost(struct snode *x)
{
	while (x->left)
		x = x->left;
	return x;
}

/* In-order successor through parent links; NULL for the last node. */
static struct snode *successor(struct snode *x)
{
	if (x->right)
		return leftmost(x->right);
	while (x->parent && x->parent->right == x)
		x = x->parent;
	return x->parent;
}

/*
 * Unlink @x. Its successor @succ has already absorbed x's gap and granules. With two children,
 * the successor (the right subtree's minimum) takes x's place.
 */
static void tree_unlink(struct iovaq_space *sp, struct snode *x, struct snode *succ)
{
	struct snode *from;

	if (!x->left || !x->right) {
		struct snode *child = x->left ? x->left : x->right;

		from = x->parent;
		replace_child(sp, x, child);
		if (x->right) {
			/* succ is the child subtree's minimum: below from, on its way up. */
			fix_up(sp, succ, from);
			return;
		}
	} else {
		/* succ == leftmost(x->right): it has no left child. */
		from = succ->parent == x ? succ : succ->parent;
		if (succ->parent != x) {
			replace_child(sp, succ, succ->right);
			succ->right = x->right;
			succ->right->parent = succ;
		}
		replace_child(sp, x, succ);
		succ->left = x->left;
		succ->left->parent = succ;
		succ->height = x->height;	/* its old summary is meaningless here */
		succ->max_gap = x->max_gap;
		succ->max_order = x->max_order;
	}
	/* Otherwise succ is an ancestor of from (or from itself). */
	fix_up(sp, from, succ);
}

/*
 * Find where [s, s + n) would go inside the gap [g0, g1] (inclusive) of a node: the highest
 * position whose last granule is at or below the request's limit.
 */
static int gap_place(uint64_t g0, uint64_t g1, const struct sreq *r, uint64_t *s)
{
	uint64_t cand;

	if (g1 > r->lim)
		g1 = r->lim;
	if (g1 < g0 || g1 - g0 + 1 < r->n)
		return 0;
	cand = (g1 - r->n + 1) & ~r->mask;
	if (cand < g0)
		return 0;
	*s = cand;
	return 1;
}

static inline int subtree_may_fit(const struct snode *x, const struct sreq *r)
{
	return x && (r->order >= 0 ? x->max_order >= r->order : x->max_gap >= r->n);
}

/*
 * The node whose gap holds the highest fitting position at or below r->lim, or NULL. Called
 * only on a subtree that may fit.
 *
 * The summaries are exact for subtrees that lie wholly at or below the limit, so there a
 * positive summary guarantees success and the search never backtracks. Only the nodes on the
 * path that straddles the limit can fail after a positive summary, and each of them fails in
 * O(1) besides its one descent: O(log n) in all. Left descents loop; right ones recurse, and
 * only where a failure must be able to come back.
 */
static struct snode *tree_find(struct snode *x, const struct sreq *r, uint64_t *s)
{
	struct snode *hit;
	uint64_t g0;

	for (;;) {
		g0 = x->start - x->gap;
		if (g0 <= r->lim) {
			if (subtree_may_fit(x->right, r)) {
				hit = tree_find(x->right, r, s);
				if (hit)
					return hit;
			}
			if (x->gap && gap_place(g0, x->start - 1, r, s))
				return x;
		}
		/* Below this node everything lies under g0, which may still be above the limit. */
		x = x->left;
		if (!subtree_may_fit(x, r))
			return NULL;
	}
}

/* Lowest node that starts above granule @g (the sentinel guarantees one exists below hi+1). */
static struct snode *tree_next_above(struct snode *t, uint64_t g)
{
	struct snode *best = NULL;

	while (t) {
		if (t->start > g) {
			best = t;
			t = t->left;
		} else {
			t = t->right;
		}
	}
	return best;
}

/* Node starting exactly at granule @g, or NULL. */
static struct snode *tree_lookup(struct snode *t, uint64_t g)
{
	while (t && t->start != g)
		t = g < t->start ? t->left : t->right;
	return t;
}

/*
 * Carve [s, s + n) out of the gap of @host, which holds it. The new node is host's in-order
 * predecessor, so it hangs as the rightmost leaf of host's left subtree (or as its left
 * child): no descent from the root is needed.
 */
static int carve(struct iovaq_space *sp, struct snode *host, uint64_t s, uint64_t n, int hole)
{
	struct snode *x = snode_get(sp), *p;
	uint64_t g0 = host->start - host->gap;

	if (!x)
		return -ENOMEM;
	x->left = x->right = NULL;
	x->start = s;
	x->n = n;
	x->hole = (uint8_t)hole;
	x->height = 1;
	snode_set_gap(x, s - g0);
	snode_update(x);
	snode_set_gap(host, host->start - (s + n));
	if (!host->left) {
		host->left = x;
		x->parent = host;
	} else {
		for (p = host->left; p->right; p = p->right)
			;
		p->right = x;
		x->parent = p;
	}
	fix_up(sp, x->parent, host);	/* host is an ancestor of x */
	sp->free_granules -= n;
	if (!hole)
		sp->allocated_granules += n;
	return 0;
}

int iovaq__space_limit_granule(const struct iovaq_space *sp, iovaq_iova_t limit, uint64_t *out)
{
	uint64_t g = limit >> sp->shift;

	/* Only a granule that ends at or below the limit is usable. */
	if ((limit & (sp->granule - 1)) != sp->granule - 1) {
		if (!g)
			return -EINVAL;
		g--;
	}
	if (g < sp->lo)
		return -EINVAL;
	*out = g;
	return 0;
}

static int size_ok(const struct iovaq_space *sp, uint64_t n)
{
	return n && n <= (UINT64_MAX >> sp->shift);
}

int iovaq__space_alloc_locked(struct iovaq_space *sp, uint64_t n, uint64_t lim,
			      iovaq_iova_t *out)
{
	struct sreq r = { .n = n, .mask = 0, .order = -1, .lim = lim };
	struct snode *host;
	uint64_t s = 0;
	int err;

	if (iovaq_is_pow2(n)) {
		r.order = (int)iovaq_ilog2(n);
		r.mask = n - 1;
	}
	host = subtree_may_fit(sp->root, &r) ? tree_find(sp->root, &r, &s) : NULL;
	if (!host) {
		sp->n_fail++;
		return -ENOSPC;
	}
	err = carve(sp, host, s, n, 0);
	if (err)
		return err;
	sp->n_allocs++;
	*out = s << sp->shift;
	return 0;
}

int iovaq__space_free_locked(struct iovaq_space *sp, iovaq_iova_t iova, uint64_t n)
{
	struct snode *x, *succ;

	if (!n || (iova & (sp->granule - 1)))
		return -EINVAL;
	x = tree_lookup(sp->root, iova >> sp->shift);
	if (!x || x->hole || x->n != n)
		return -EINVAL;
	/* The successor (the sentinel at worst) absorbs the freed range and the gap before it. */
	succ = successor(x);
	snode_set_gap(succ, succ->gap + x->n + x->gap);
	tree_unlink(sp, x, succ);
	snode_put(sp, x);
	sp->free_granules += n;
	sp->allocated_granules -= n;
	sp->n_frees++;
	return 0;
}

uint64_t iovaq__space_lookup_locked(struct iovaq_space *sp, iovaq_iova_t iova)
{
	struct snode *x;

	if (iova & (sp->granule - 1))
		return 0;
	x = tree_lookup(sp->root, iova >> sp->shift);
	return x && !x->hole ? x->n : 0;
}

/* Is [s, s + n) inside one aperture? (granule numbers) */
static int in_one_aperture(const struct iovaq_space *sp, uint64_t s, uint64_t n)
{
	size_t i;

	for (i = 0; i < sp->n_ap; i++)
		if (s >= sp->ap[i].start && s <= sp->ap[i].last && n - 1 <= sp->ap[i].last - s)
			return 1;
	return 0;
}

/* Reserve or allocate exactly [s, s + n); -EBUSY if any of it is not free. */
static int take_fixed(struct iovaq_space *sp, uint64_t s, uint64_t n, int hole)
{
	struct snode *host = tree_next_above(sp->root, s);

	if (!host || s < host->start - host->gap || n > host->start - s)
		return -EBUSY;
	return carve(sp, host, s, n, hole);
}

static int cmp_range(const void *a, const void *b)
{
	const struct iovaq_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static void space_free_all(struct iovaq_space *sp)
{
	struct snode_chunk *ch, *next;

	for (ch = sp->chunks; ch; ch = next) {
		next = ch->next;
		iovaq__meta_free(sp->hooks, &sp->metadata_bytes, ch, SNODE_CHUNK_BYTES);
	}
	iovaq_lock_destroy(&sp->lock);
	iovaq_hooks_free(sp->hooks, sp, sizeof(*sp));
}

/* Convert, sort and merge the holes (granule numbers, inclusive); returns how many remain. */
static size_t collect_holes(const struct iovaq_space *sp, const struct iovaq_space_opts *o,
			    struct iovaq_range *h)
{
	const struct iovaq_range *res = IOVAQ_OPTS_GET(o, reserved, NULL);
	size_t nres = IOVAQ_OPTS_GET(o, n_reserved, 0), n = 0, i, m;

	for (i = 0; i + 1 < sp->n_ap; i++)
		if (sp->ap[i].last + 1 < sp->ap[i + 1].start)
			h[n++] = (struct iovaq_range){ sp->ap[i].last + 1, sp->ap[i + 1].start - 1 };
	if (sp->lo == 0)
		h[n++] = (struct iovaq_range){ 0, 0 };
	for (i = 0; i < nres; i++) {
		uint64_t a = res[i].start >> sp->shift, b = res[i].last >> sp->shift;

		if (b < sp->lo || a > sp->hi)
			continue;
		h[n++] = (struct iovaq_range){ a < sp->lo ? sp->lo : a, b > sp->hi ? sp->hi : b };
	}
	iovaq_sort(h, n, sizeof(*h), cmp_range);
	for (i = 0, m = 0; i < n; i++) {
		if (m && h[i].start <= h[m - 1].last + 1) {
			if (h[i].last > h[m - 1].last)
				h[m - 1].last = h[i].last;
		} else {
			h[m++] = h[i];
		}
	}
	return m;
}

int iovaq_space_create(const struct iovaq_space_opts *o, struct iovaq_space **out)
{
	const struct iovaq_alloc_hooks *hooks;
	/* Too large for a kernel stack (5 KiB): allocated for the duration of the call. */
	const size_t holes_sz = (IOVAQ_SPACE_MAX_APERTURES + IOVAQ_SPACE_MAX_RESERVED + 1) *
				sizeof(struct iovaq_range);
	struct iovaq_range *holes;
	const struct iovaq_range *aps;
	struct iovaq_space *sp;
	struct snode *end;
	uint64_t granule;
	size_t nap, nres, nh, i;
	int err;

	if (!out)
		return -EINVAL;
	err = iovaq_opts_check(o, offsetof(struct iovaq_space_opts, n_apertures) + sizeof(size_t),
			       sizeof(*o));
	if (err)
		return err;
	granule = IOVAQ_OPTS_GET(o, granule, 0) ?: IOVAQ_DEFAULT_GRANULE;
	/* iovaq_opts_check() refused a NULL @o; IOVAQ_OPTS_GET() tests it again. */
	/* cppcheck-suppress nullPointerRedundantCheck */
	aps = o->apertures;
	/* cppcheck-suppress nullPointerRedundantCheck */
	nap = o->n_apertures;
	nres = IOVAQ_OPTS_GET(o, n_reserved, 0);
	if (!iovaq_is_pow2(granule) || granule < 512 || granule > (1ull << 30) || !aps || !nap ||
	    nap > IOVAQ_SPACE_MAX_APERTURES || nres > IOVAQ_SPACE_MAX_RESERVED ||
	    (nres && !IOVAQ_OPTS_GET(o, reserved, NULL)))
		return -EINVAL;
	hooks = IOVAQ_OPTS_GET(o, hooks, NULL) ?: iovaq_default_alloc_hooks();
	if (!hooks->alloc || !hooks->free)
		return -EINVAL;

	sp = iovaq_hooks_alloc(hooks, sizeof(*sp), IOVAQ_CACHELINE);
	if (!sp)
		return -ENOMEM;
	iovaq_memset(sp, 0, sizeof(*sp));
	sp->hooks = hooks;
	sp->granule = granule;
	sp->shift = iovaq_ilog2(granule);
	sp->n_ap = nap;
	for (i = 0; i < nap; i++) {
		if (aps[i].start > aps[i].last || (aps[i].start & (granule - 1)) ||
		    ((aps[i].last + 1) & (granule - 1)))
			goto inval;
		sp->ap[i].start = aps[i].start >> sp->shift;
		sp->ap[i].last = aps[i].last >> sp->shift;
		sp->total_granules += sp->ap[i].last - sp->ap[i].start + 1;
	}
	iovaq_sort(sp->ap, nap, sizeof(sp->ap[0]), cmp_range);
	for (i = 0; i + 1 < nap; i++)
		if (sp->ap[i].last >= sp->ap[i + 1].start)
			goto inval;
	/* Adjacent apertures are one contiguous range of IOVAs: merge them. */
	for (i = 1, nap = 1; i < sp->n_ap; i++) {
		if (sp->ap[i].start == sp->ap[nap - 1].last + 1)
			sp->ap[nap - 1].last = sp->ap[i].last;
		else
			sp->ap[nap++] = sp->ap[i];
	}
	sp->n_ap = nap;
	sp->lo = sp->ap[0].start;
	sp->hi = sp->ap[nap - 1].last;
	sp->lo_iova = sp->lo << sp->shift;
	sp->hi_iova = ((sp->hi + 1) << sp->shift) - 1;
	iovaq_lock_init(&sp->lock);

	/* The sentinel at hi + 1 owns the whole span as its gap; holes are carved out of it. */
	end = snode_get(sp);
	if (!end)
		goto nomem;
	iovaq_memset(end, 0, sizeof(*end));	/* no parent, no children */
	end->start = sp->hi + 1;
	end->hole = 1;
	snode_set_gap(end, sp->hi + 1 - sp->lo);
	snode_update(end);
	sp->root = end;
	sp->tree_nodes = 1;
	sp->free_granules = sp->hi - sp->lo + 1;

	holes = iovaq_hooks_alloc(hooks, holes_sz, sizeof(uint64_t));
	if (!holes)
		goto nomem;
	nh = collect_holes(sp, o, holes);
	for (i = 0, err = 0; i < nh && err != -ENOMEM; i++)
		err = take_fixed(sp, holes[i].start, holes[i].last - holes[i].start + 1, 1);
	iovaq_hooks_free(hooks, holes, holes_sz);
	if (err == -ENOMEM)
		goto nomem;
	/* Holes inside the apertures: everything in them that is not free. */
	sp->reserved_granules = sp->total_granules - sp->free_granules;
	if (!sp->free_granules)
		goto inval_locked;
	*out = sp;
	return 0;

nomem:
	space_free_all(sp);
	return -ENOMEM;
inval_locked:
	space_free_all(sp);
	return -EINVAL;
inval:
	iovaq_hooks_free(hooks, sp, sizeof(*sp));
	return -EINVAL;
}

void iovaq_space_destroy(struct iovaq_space *sp)
{
	if (sp)
		space_free_all(sp);
}

int iovaq_space_alloc(struct iovaq_space *sp, uint64_t n, iovaq_iova_t limit, iovaq_iova_t *out)
{
	uint64_t lim;
	int err;

	if (!sp || !out || !size_ok(sp, n))
		return -EINVAL;
	err = iovaq__space_limit_granule(sp, limit, &lim);
	if (err)
		return err;
	iovaq__space_lock(sp);
	err = iovaq__space_alloc_locked(sp, n, lim, out);
	iovaq__space_unlock(sp);
	return err;
}

int iovaq_space_alloc_fixed(struct iovaq_space *sp, iovaq_iova_t iova, uint64_t n)
{
	uint64_t s;
	int err;

	if (!sp || !size_ok(sp, n) || (iova & (sp->granule - 1)))
		return -EINVAL;
	s = iova >> sp->shift;
	if (!in_one_aperture(sp, s, n))
		return -EINVAL;
	iovaq__space_lock(sp);
	err = take_fixed(sp, s, n, 0);
	if (!err)
		sp->n_allocs++;
	iovaq__space_unlock(sp);
	return err;
}

int iovaq_space_free(struct iovaq_space *sp, iovaq_iova_t iova, uint64_t n)
{
	int err;

	if (!sp)
		return -EINVAL;
	iovaq__space_lock(sp);
	err = iovaq__space_free_locked(sp, iova, n);
	iovaq__space_unlock(sp);
	return err;
}

uint64_t iovaq_space_granule(const struct iovaq_space *sp)
{
	return sp->granule;
}

void iovaq__space_stats_locked(struct iovaq_space *sp, struct iovaq_stats *st)
{
	st->version = IOVAQ_STATS_VERSION;
	st->granule = sp->granule;
	st->total_granules = sp->total_granules;
	st->reserved_granules = sp->reserved_granules;
	st->free_granules = sp->free_granules;
	st->allocated_granules = sp->allocated_granules;
	st->space_allocs = sp->n_allocs;
	st->space_frees = sp->n_frees;
	st->space_alloc_fail = sp->n_fail;
	st->tree_nodes = sp->tree_nodes;
	st->metadata_bytes += IOVAQ_READ_ONCE(sp->metadata_bytes) + sizeof(*sp);
}

int iovaq_space_stats(struct iovaq_space *sp, struct iovaq_stats *st)
{
	struct iovaq_stats tmp;
	int err;

	if (!sp)
		return -EINVAL;
	err = iovaq_opts_check(st, offsetof(struct iovaq_stats, n_classes), SIZE_MAX);
	if (err)
		return err;
	iovaq_memset(&tmp, 0, sizeof(tmp));
	iovaq__space_lock(sp);
	iovaq__space_stats_locked(sp, &tmp);
	iovaq__space_unlock(sp);
	tmp.sz = st->sz < sizeof(tmp) ? st->sz : sizeof(tmp);
	iovaq_memcpy(st, &tmp, tmp.sz);
	return 0;
}

/* State of an in-order walk for iovaq_space_check(). */
struct check_state {
	const struct iovaq_space *sp;
	uint64_t next;		/* first granule after the previous node */
	uint64_t gaps, allocated, holes, nodes;
	int bad;
};

/* Returns the subtree height, checking order, balance and summaries on the way. */
static unsigned int check_node(const struct snode *x, struct check_state *cs)
{
	unsigned int hl, hr;
	uint64_t mg;
	int8_t mo;

	if (!x || cs->bad)
		return 0;
	hl = check_node(x->left, cs);
	if (cs->bad)
		return 0;
	/* In-order: the node's gap must start exactly where the previous node ended. */
	if (x->gap > x->start || x->start - x->gap != cs->next ||
	    x->gap_order != gap_order_of(x->start - x->gap, x->gap)) {
		cs->bad = 1;
		return 0;
	}
	cs->next = x->start + x->n;
	cs->gaps += x->gap;
	cs->nodes++;
	if (x->hole)
		cs->holes += x->n;
	else
		cs->allocated += x->n;
	if (!x->n && (x->start != cs->sp->hi + 1 || !x->hole)) {
		cs->bad = 1;
		return 0;
	}
	hr = check_node(x->right, cs);
	if (cs->bad)
		return 0;
	mg = x->gap;
	mo = x->gap_order;
	if (x->left && x->left->max_gap > mg)
		mg = x->left->max_gap;
	if (x->right && x->right->max_gap > mg)
		mg = x->right->max_gap;
	if (x->left && x->left->max_order > mo)
		mo = x->left->max_order;
	if (x->right && x->right->max_order > mo)
		mo = x->right->max_order;
	if ((x->left && x->left->parent != x) || (x->right && x->right->parent != x) ||
	    hl > hr + 1 || hr > hl + 1 || x->height != 1 + (hl > hr ? hl : hr) ||
	    x->max_gap != mg || x->max_order != mo)
		cs->bad = 1;
	return x->height;
}

/* Is every free gap inside an aperture? Gaps never cross a hole, so checking ends suffices. */
static int gaps_in_apertures(const struct iovaq_space *sp, const struct snode *x)
{
	if (!x)
		return 1;
	if (x->gap && !in_one_aperture(sp, x->start - x->gap, x->gap))
		return 0;
	return gaps_in_apertures(sp, x->left) && gaps_in_apertures(sp, x->right);
}

int iovaq_space_check(struct iovaq_space *sp)
{
	struct check_state cs = { .sp = sp };
	int err = 0;

	if (!sp)
		return -EINVAL;
	iovaq__space_lock(sp);
	cs.next = sp->lo;
	check_node(sp->root, &cs);
	if (cs.bad || !sp->root || sp->root->parent || cs.next != sp->hi + 1 || cs.gaps != sp->free_granules ||
	    cs.allocated != sp->allocated_granules || cs.nodes != sp->tree_nodes ||
	    cs.gaps + cs.allocated + cs.holes != sp->hi - sp->lo + 1 ||
	    cs.holes < sp->hi - sp->lo + 1 - sp->total_granules ||
	    !gaps_in_apertures(sp, sp->root))
		err = -EUCLEAN;
	iovaq__space_unlock(sp);
	return err;
}

static int walk_node(const struct iovaq_space *sp, const struct snode *x, iovaq_space_walk_fn fn,
		     void *arg)
{
	int ret;

	if (!x)
		return 0;
	ret = walk_node(sp, x->left, fn, arg);
	if (ret)
		return ret;
	if (!x->hole) {
		ret = fn(arg, x->start << sp->shift, x->n);
		if (ret)
			return ret;
	}
	return walk_node(sp, x->right, fn, arg);
}

int iovaq_space_walk(struct iovaq_space *sp, iovaq_space_walk_fn fn, void *arg)
{
	int ret;

	if (!sp || !fn)
		return -EINVAL;
	iovaq__space_lock(sp);
	ret = walk_node(sp, sp->root, fn, arg);
	iovaq__space_unlock(sp);
	return ret;
}
