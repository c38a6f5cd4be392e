/* SPDX-License-Identifier: GPL-2.0-only OR BSD-2-Clause */
/*
 * The "sim" backend: a software VT-d-like IOMMU. See include/iovaq/sim.h for what it models.
 *
 * One lock (@lock) protects everything; DMA, map, unmap and flush serialise on it. The model's
 * timing is not the host's: costs come from struct iovaq_sim_cost, never from the clock.
 *
 * Page table. Level 4 is the root; a level-L table covers 2^(12 + 9L) bytes; an entry of a
 * level-1 table maps 4 KiB, a leaf entry of a level-2 table 2 MiB. A table emptied by an unmap
 * that covers its whole span (Linux frees no other) is unlinked from its parent at once, but
 * not freed: it waits on a quarantine list
 * until a non-leaf invalidation covers its range, because until then a paging-structure cache
 * entry may still point to it. Hardware would read a freed (perhaps reused) page through such
 * an entry; the sim reports it instead (IOVAQ_FAULT_STALE_TABLE), and counts a leaf-only
 * command that covers a quarantined table (IOVAQ_FAULT_BAD_LEAF_INVAL).
 *
 * Stale hits. Every mapping has a unique id; IOTLB entries remember the id they were filled
 * from. A hit whose id no longer matches the page table (unmapped, or remapped elsewhere) is a
 * stale hit: it succeeds, as it would on hardware, but the sim leaves host memory alone.
 */
#include <iovaq/sim.h>
#include "backend_priv.h"

#define PT_LEVELS 4
#define PT_ENTRIES 512
#define PT_SHIFT 12
#define PT_BITS 9

/* Leaf or table entry bits; table and host addresses are 4 KiB aligned. */
#define PTE_PRESENT 0x1ul
#define PTE_READ 0x2ul
#define PTE_WRITE 0x4ul
#define PTE_LEAF 0x8ul
#define PTE_FLAGS 0xffful

struct smap {
	iovaq_iova_t iova;
	uint64_t len;
	uint64_t id;
	uint64_t pages_left;	/* granules still mapped */
};

struct ptab;

struct pte {
	uintptr_t v;		/* child table or host page, | PTE_* */
	struct smap *m;		/* leaf: its mapping */
};

struct ptab {
	struct pte e[PT_ENTRIES];
	iovaq_iova_t base;	/* first IOVA covered */
	uint32_t used;		/* present entries */
	uint8_t level;
	uint8_t freed;		/* unlinked, waiting in quarantine */
	struct ptab *qnext;	/* quarantine, or the current map's new tables */
	struct ptab *parent;	/* NULL for the root */
};

/* IOTLB entry; tag 0 means empty. A tag is (page number << 1 | large) + 1. */
struct tlbe {
	uint64_t tag;
	uintptr_t host;		/* host address of the (4 KiB or 2 MiB) page */
	uint64_t map_id;
	uint64_t lru;
	uint32_t prot;
};

/* Paging-structure cache entry: key (iova >> shift) + 1, 0 empty; points to a table. */
struct psce {
	uint64_t key;
	struct ptab *t;
	uint64_t lru;
};

#define FAULT_LOG 256

struct sim {
	struct iovaq_backend be;
	iovaq_lock_t lock;
	struct iovaq_sim_cost cost;
	uint32_t flags;
	uint32_t sets, ways;
	uint32_t psc_n[3];
	uint64_t salt;
	uint64_t tick;			/* LRU clock */
	uint64_t next_map_id;
	struct ptab *root;
	struct ptab *quarantine;
	uint64_t quarantined;		/* tables on @quarantine */
	struct ptab *fresh;		/* tables created by the map in progress, newest first */
	iovaq_iova_t last;		/* last IOVA of the aperture */
	struct tlbe *tlb;
	struct psce *psc[3];
	uint64_t fail_nth[IOVAQ_SIM_OP_NR];
	int fail_err[IOVAQ_SIM_OP_NR];
	struct iovaq_fault log[FAULT_LOG];
	uint32_t log_head, log_n;
	struct iovaq_sim_counters c;
};

static inline struct sim *to_sim(struct iovaq_backend *be)
{
	return iovaq_container_of(be, struct sim, be);
}

void iovaq_sim_cost_defaults(struct iovaq_sim_cost *cost)
{
	*cost = (struct iovaq_sim_cost){
		.mem_ref_ns = 90,
		.iotlb_hit_ns = 2,
		.inval_cmd_ns = 50,
		.inval_wait_ns = 1000,
		.trap_ns = 2500,
		.rewalk_ns = 20,
		.map_ns = 30,
		.unmap_ns = 30,
		.table_ns = 200,
	};
}

/* ---- page table ----------------------------------------------------------------------- */

static inline unsigned int level_shift(unsigned int level)
{
	return PT_SHIFT + PT_BITS * (level - 1);
}

static inline unsigned int pt_index(iovaq_iova_t iova, unsigned int level)
{
	return (unsigned int)(iova >> level_shift(level)) & (PT_ENTRIES - 1);
}

static inline struct ptab *pte_table(const struct pte *e)
{
	return (struct ptab *)(e->v & ~PTE_FLAGS);
}

static inline int pte_is_table(const struct pte *e)
{
	return (e->v & PTE_PRESENT) && !(e->v & PTE_LEAF);
}

static struct ptab *ptab_new(struct sim *s, unsigned int level, iovaq_iova_t base)
{
	struct ptab *t = iovaq_hooks_alloc(s->be.hooks, sizeof(*t), 4096);

	if (!t)
		return NULL;
	iovaq_memset(t, 0, sizeof(*t));
	t->level = (uint8_t)level;
	t->base = base;
	s->c.table_pages++;
	return t;
}

static void ptab_release(struct sim *s, struct ptab *t)
{
	s->quarantined--;
	s->c.table_pages--;
	s->c.table_pages_freed++;
	iovaq_hooks_free(s->be.hooks, t, sizeof(*t));
}

/*
 * The leaf entry that maps @iova now, or NULL; *@level receives its level (1, or 2 for a
 * 2 MiB leaf). A pure lookup: no counters, no caches.
 */
static struct pte *pt_leaf(struct sim *s, iovaq_iova_t iova, unsigned int *level)
{
	struct ptab *t = s->root;
	unsigned int l;

	for (l = PT_LEVELS; l >= 1; l--) {
		struct pte *e = &t->e[pt_index(iova, l)];

		if (!(e->v & PTE_PRESENT))
			return NULL;
		if (e->v & PTE_LEAF) {
			*level = l;
			return e;
		}
		t = pte_table(e);
	}
	return NULL;
}

/* Bytes from @iova to the end of the region an absent entry at @level leaves unmapped. */
static uint64_t skip_bytes(iovaq_iova_t iova, unsigned int level)
{
	uint64_t size = 1ull << level_shift(level);

	return size - (iova & (size - 1));
}

/* Bytes from @iova to the end of the absent entry that ends the walk for @iova. */
static uint64_t pt_absent_bytes(struct sim *s, iovaq_iova_t iova)
{
	struct ptab *t = s->root;
	unsigned int l;

	for (l = PT_LEVELS; l >= 1; l--) {
		struct pte *e = &t->e[pt_index(iova, l)];

		if (!(e->v & PTE_PRESENT))
			return skip_bytes(iova, l);
		t = pte_table(e);
	}
	return 1ull << PT_SHIFT;
}

/* Is anything mapped in [iova, iova + len)? Skips absent subtrees whole. */
static int pt_any_mapped(struct sim *s, iovaq_iova_t iova, uint64_t len)
{
	iovaq_iova_t end = iova + len;

	while (iova < end) {
		struct ptab *t = s->root;
		unsigned int l;
		uint64_t step = 0;

		for (l = PT_LEVELS; l >= 1; l--) {
			struct pte *e = &t->e[pt_index(iova, l)];

			if (!(e->v & PTE_PRESENT)) {
				step = skip_bytes(iova, l);
				break;
			}
			if (e->v & PTE_LEAF)
				return 1;
			t = pte_table(e);
		}
		if (iova + step < iova)	/* wrapped at the top of the address space */
			return 0;
		iova += step;
	}
	return 0;
}

/*
 * Unlink an empty table from its parent chain and quarantine it; parents that become empty
 * follow (never the root). @path[l] is the table at level l on the way to it.
 *
 * As Linux's VT-d driver does, a table is freed only when the unmap [first, last] covers the
 * table's whole span. Otherwise another IOVA of that span could be mapped again (creating a
 * new table) while a paging-structure cache still points to the old one, before any
 * invalidation: the device would walk a freed page.
 */
static void pt_prune(struct sim *s, struct ptab **path, iovaq_iova_t iova, unsigned int level,
		     iovaq_iova_t first, iovaq_iova_t last)
{
	unsigned int l;

	for (l = level; l < PT_LEVELS; l++) {
		struct ptab *t = path[l];
		struct ptab *p = path[l + 1];
		uint64_t span = 1ull << level_shift(l + 1);

		if (t->used || t->base < first || t->base + (span - 1) > last)
			return;
		p->e[pt_index(iova, l + 1)].v = 0;
		p->used--;
		t->freed = 1;
		t->qnext = s->quarantine;
		s->quarantine = t;
		s->quarantined++;
	}
}

/* Clear the leaf at @iova (which must exist) for an unmap of [first, last]; its bytes. */
static uint64_t pt_clear(struct sim *s, iovaq_iova_t iova, iovaq_iova_t first, iovaq_iova_t last)
{
	struct ptab *path[PT_LEVELS + 1];
	struct ptab *t = s->root;
	unsigned int l;

	for (l = PT_LEVELS; l >= 1; l--) {
		struct pte *e = &t->e[pt_index(iova, l)];

		path[l] = t;
		if (e->v & PTE_LEAF) {
			struct smap *m = e->m;
			uint64_t bytes = 1ull << level_shift(l);

			e->v = 0;
			e->m = NULL;
			t->used--;
			m->pages_left -= bytes >> PT_SHIFT;
			if (!m->pages_left)
				iovaq_hooks_free(s->be.hooks, m, sizeof(*m));
			pt_prune(s, path, iova, l, first, last);
			return bytes;
		}
		t = pte_table(e);
	}
	return 0;	/* not reached: callers check first */
}

/*
 * Install one leaf of @bytes (4 KiB or 2 MiB) at @iova. Returns 0 or -ENOMEM; tables created
 * for a leaf that could not be installed are left empty and linked (the caller unwinds).
 */
static int pt_set(struct sim *s, iovaq_iova_t iova, uintptr_t host, uint64_t bytes,
		  unsigned int prot, struct smap *m, uint64_t *new_tables)
{
	unsigned int leaf_level = bytes == (1ull << level_shift(2)) ? 2 : 1;
	struct ptab *t = s->root;
	unsigned int l;

	for (l = PT_LEVELS; l > leaf_level; l--) {
		struct pte *e = &t->e[pt_index(iova, l)];

		if (!(e->v & PTE_PRESENT)) {
			struct ptab *c = ptab_new(s, l - 1,
						  iova & ~((1ull << level_shift(l)) - 1));

			if (!c)
				return -ENOMEM;
			(*new_tables)++;
			c->parent = t;
			c->qnext = s->fresh;
			s->fresh = c;
			e->v = (uintptr_t)c | PTE_PRESENT;
			t->used++;
		}
		t = pte_table(e);
	}
	t->e[pt_index(iova, leaf_level)].v = host | PTE_PRESENT | PTE_LEAF |
					     ((prot & IOVAQ_PROT_READ) ? PTE_READ : 0) |
					     ((prot & IOVAQ_PROT_WRITE) ? PTE_WRITE : 0);
	t->e[pt_index(iova, leaf_level)].m = m;
	t->used++;
	return 0;
}

/* Clear a leaf installed by the current, failing map (lock held throughout); its bytes. */
static uint64_t pt_unset_fresh(struct sim *s, iovaq_iova_t iova)
{
	struct ptab *t = s->root;
	unsigned int l;

	for (l = PT_LEVELS; l >= 1; l--) {
		struct pte *e = &t->e[pt_index(iova, l)];

		if (e->v & PTE_LEAF) {
			*e = (struct pte){ 0, NULL };
			t->used--;
			return 1ull << level_shift(l);
		}
		t = pte_table(e);
	}
	return 1ull << PT_SHIFT;	/* not reached */
}

/*
 * Unwinding a failed map: free the tables it created that stayed empty, newest (deepest)
 * first. No walk ran since they were created, so no cache can point to them. Tables that
 * existed before are left alone, empty or not: a cache may still point to those.
 */
static void pt_drop_fresh(struct sim *s)
{
	struct ptab *t;

	while ((t = s->fresh)) {
		s->fresh = t->qnext;
		t->qnext = NULL;
		if (t->used)
			continue;
		t->parent->e[pt_index(t->base, t->level + 1u)].v = 0;
		t->parent->used--;
		s->c.table_pages--;
		iovaq_hooks_free(s->be.hooks, t, sizeof(*t));
	}
}

static void pt_keep_fresh(struct sim *s)
{
	struct ptab *t;

	while ((t = s->fresh)) {
		s->fresh = t->qnext;
		t->qnext = NULL;
	}
}

static void pt_free_all(struct sim *s, struct ptab *t)
{
	unsigned int i;

	for (i = 0; i < PT_ENTRIES; i++) {
		struct pte *e = &t->e[i];

		if (pte_is_table(e) && t->level > 1) {
			pt_free_all(s, pte_table(e));
		} else if ((e->v & PTE_PRESENT) && e->m) {
			struct smap *m = e->m;
			uint64_t bytes = 1ull << level_shift(t->level);

			m->pages_left -= bytes >> PT_SHIFT;
			if (!m->pages_left)
				iovaq_hooks_free(s->be.hooks, m, sizeof(*m));
		}
	}
	iovaq_hooks_free(s->be.hooks, t, sizeof(*t));
}

/* Is a level-1 table linked for the 2 MiB region of @iova? */
static int pt_has_l1(struct sim *s, iovaq_iova_t iova)
{
	struct ptab *t = s->root;
	unsigned int l;

	for (l = PT_LEVELS; l >= 2; l--) {
		struct pte *e = &t->e[pt_index(iova, l)];

		if (!pte_is_table(e))
			return 0;
		t = pte_table(e);
	}
	return 1;
}

/* Quarantine @t and every table below it (all empty: the unmap cleared their range). */
static void pt_quarantine_tree(struct sim *s, struct ptab *t)
{
	unsigned int i;

	for (i = 0; i < PT_ENTRIES && t->level > 1; i++)
		if (pte_is_table(&t->e[i]))
			pt_quarantine_tree(s, pte_table(&t->e[i]));
	t->freed = 1;
	t->qnext = s->quarantine;
	s->quarantine = t;
	s->quarantined++;
}

/*
 * Linux's rule, whole: after an unmap of [first, last], every table whose span lies inside it
 * goes, also one emptied earlier by a narrower unmap (pt_prune only sees the leaves' paths).
 */
static void pt_free_covered(struct sim *s, struct ptab *t, iovaq_iova_t first,
			    iovaq_iova_t last)
{
	uint64_t span = 1ull << level_shift(t->level);	/* bytes per entry of @t */
	uint64_t t_last = t->base + (span * PT_ENTRIES - 1);
	unsigned int i, lo, hi;

	if (t->level == 1 || first > t_last || last < t->base)
		return;
	/* Only the entries that intersect [first, last]: an unmap costs its range, not 512. */
	lo = first > t->base ? pt_index(first, t->level) : 0;
	hi = last < t_last ? pt_index(last, t->level) : PT_ENTRIES - 1;
	for (i = lo; i <= hi; i++) {
		struct pte *e = &t->e[i];
		iovaq_iova_t b = t->base + (uint64_t)i * span, l = b + (span - 1);

		if (!pte_is_table(e) || b > last || l < first)
			continue;
		if (b >= first && l <= last) {
			pt_quarantine_tree(s, pte_table(e));
			e->v = 0;
			t->used--;
		} else {
			pt_free_covered(s, pte_table(e), first, last);
		}
	}
}

/* ---- fault injection and fault log ------------------------------------------------------ */

static int injected(struct sim *s, enum iovaq_sim_op op)
{
	if (s->fail_nth[op] && !--s->fail_nth[op])
		return s->fail_err[op];
	return 0;
}

static void log_fault(struct sim *s, iovaq_iova_t iova, uint32_t reason, int write)
{
	uint32_t i = (s->log_head + s->log_n) % FAULT_LOG;

	if (s->log_n == FAULT_LOG)
		s->log_head = (s->log_head + 1) % FAULT_LOG;	/* drop the oldest */
	else
		s->log_n++;
	s->log[i] = (struct iovaq_fault){ .iova = iova, .reason = reason,
					  .write = write ? 1u : 0u, .t_ns = iovaq_now_ns() };
	if (reason != IOVAQ_FAULT_BAD_LEAF_INVAL)
		s->c.faults++;
}

/* ---- map and unmap ---------------------------------------------------------------------- */

static int sim_map(struct iovaq_backend *be, iovaq_iova_t iova, void *host, size_t len,
		   unsigned int prot)
{
	struct sim *s = to_sim(be);
	const uint64_t big = 1ull << level_shift(2);
	uint64_t off = 0, tables = 0, pages = len >> PT_SHIFT;
	struct smap *m;
	int err;

	iovaq_lock(&s->lock);
	err = injected(s, IOVAQ_SIM_OP_MAP);
	if (err)
		goto out;
	if (pt_any_mapped(s, iova, len)) {
		err = -EEXIST;
		goto out;
	}
	m = iovaq_hooks_alloc(be->hooks, sizeof(*m), 8);
	if (!m) {
		err = -ENOMEM;
		goto out;
	}
	*m = (struct smap){ .iova = iova, .len = len, .id = ++s->next_map_id,
			    .pages_left = pages };
	while (off < len) {
		uint64_t bytes = 1ull << PT_SHIFT;
		uintptr_t h = (uintptr_t)host + off;

		if ((s->flags & IOVAQ_SIM_LARGE_PAGES) && !((iova + off) & (big - 1)) &&
		    !(h & (big - 1)) && len - off >= big && !pt_has_l1(s, iova + off))
			bytes = big;
		err = pt_set(s, iova + off, h, bytes, prot, m, &tables);
		if (err)
			break;
		off += bytes;
	}
	if (err) {
		/* Unwind: no walk ran meanwhile, so nothing cached these entries or tables. */
		uint64_t done = off;

		for (off = 0; off < done;)
			off += pt_unset_fresh(s, iova + off);
		pt_drop_fresh(s);
		iovaq_hooks_free(be->hooks, m, sizeof(*m));
		goto out;
	}
	pt_keep_fresh(s);
	s->c.maps++;
	s->c.mapped_pages += pages;
	s->c.cpu_map_ns += pages * s->cost.map_ns + tables * s->cost.table_ns;
	if (s->flags & IOVAQ_SIM_CACHING_MODE) {
		/* The guest must invalidate after a map so the vIOMMU sees it: one trap. */
		s->c.traps++;
		s->c.cpu_map_ns += s->cost.trap_ns + s->cost.inval_cmd_ns + s->cost.inval_wait_ns;
	}
out:
	iovaq_unlock(&s->lock);
	return err;
}

static int sim_unmap(struct iovaq_backend *be, iovaq_iova_t iova, size_t len)
{
	struct sim *s = to_sim(be);
	iovaq_iova_t end = iova + len, last = end - 1, first;
	uint64_t pages = 0, q0;
	unsigned int level;
	struct pte *e;
	int err;

	iovaq_lock(&s->lock);
	err = injected(s, IOVAQ_SIM_OP_UNMAP);
	if (err)
		goto out;
	/* Whole mappings only: the mappings at both ends must start and end exactly there. */
	e = pt_leaf(s, iova, &level);
	if (e && e->m->iova != iova) {
		err = -EINVAL;
		goto out;
	}
	e = pt_leaf(s, last, &level);
	if (e && e->m->iova + e->m->len != end) {
		err = -EINVAL;
		goto out;
	}
	if (!pt_any_mapped(s, iova, len)) {
		err = -ENOENT;
		goto out;
	}
	q0 = s->quarantined;
	first = iova;
	while (iova < end) {
		e = pt_leaf(s, iova, &level);
		if (e) {
			uint64_t bytes = pt_clear(s, iova, first, last);

			pages += bytes >> PT_SHIFT;
			iova += bytes;
		} else {
			/* Skip the whole absent (or empty) region. */
			uint64_t step = pt_absent_bytes(s, iova);

			if (iova + step < iova)
				break;
			iova += step;
		}
	}
	pt_free_covered(s, s->root, first, last);
	s->c.unmaps++;
	s->c.mapped_pages -= pages;
	s->c.cpu_unmap_ns += pages * s->cost.unmap_ns + (s->quarantined - q0) * s->cost.table_ns;
	if (s->quarantined != q0)
		err = IOVAQ_UNMAP_FREED_TABLES;
out:
	iovaq_unlock(&s->lock);
	return err;
}

/* ---- caches ----------------------------------------------------------------------------- */

static inline uint64_t tlb_tag(iovaq_iova_t iova, int large)
{
	unsigned int sh = large ? level_shift(2) : PT_SHIFT;

	return (((iova >> sh) << 1) | (large ? 1u : 0u)) + 1;
}

static inline struct tlbe *tlb_set(struct sim *s, uint64_t tag)
{
	uint64_t h = (tag ^ s->salt) * 0x9e3779b97f4a7c15ull;

	return &s->tlb[((h >> 32) & (s->sets - 1)) * s->ways];
}

static struct tlbe *tlb_lookup(struct sim *s, iovaq_iova_t iova)
{
	int large;

	for (large = 0; large < 2; large++) {
		uint64_t tag = tlb_tag(iova, large);
		struct tlbe *set = tlb_set(s, tag);
		uint32_t w;

		for (w = 0; w < s->ways; w++) {
			if (set[w].tag == tag) {
				set[w].lru = ++s->tick;
				return &set[w];
			}
		}
	}
	return NULL;
}

static void tlb_fill(struct sim *s, iovaq_iova_t iova, int large, uintptr_t host,
		     uint64_t map_id, uint32_t prot)
{
	uint64_t tag = tlb_tag(iova, large);
	struct tlbe *set = tlb_set(s, tag), *victim = &set[0];
	uint32_t w;

	for (w = 0; w < s->ways; w++) {
		if (!set[w].tag) {
			victim = &set[w];
			break;
		}
		if (set[w].lru < victim->lru)
			victim = &set[w];
	}
	*victim = (struct tlbe){ .tag = tag, .host = host, .map_id = map_id,
				 .lru = ++s->tick, .prot = prot };
}

/* The IOVA range [first, last] an IOTLB entry translates. */
static void tlb_range(const struct tlbe *t, iovaq_iova_t *first, iovaq_iova_t *last)
{
	uint64_t v = t->tag - 1;
	unsigned int sh = (v & 1) ? level_shift(2) : PT_SHIFT;

	*first = (v >> 1) << sh;
	*last = *first + (1ull << sh) - 1;
}

/* PSC level i caches pointers to level (3 - i) tables, keyed by iova >> level_shift(4 - i). */
static inline unsigned int psc_shift(unsigned int i)
{
	return level_shift(PT_LEVELS - i);
}

static struct psce *psc_lookup(struct sim *s, unsigned int i, iovaq_iova_t iova)
{
	uint64_t key = (iova >> psc_shift(i)) + 1;
	uint32_t k;

	for (k = 0; k < s->psc_n[i]; k++) {
		if (s->psc[i][k].key == key) {
			s->psc[i][k].lru = ++s->tick;
			return &s->psc[i][k];
		}
	}
	return NULL;
}

static void psc_fill(struct sim *s, unsigned int i, iovaq_iova_t iova, struct ptab *t)
{
	struct psce *v = &s->psc[i][0];
	uint32_t k;

	for (k = 0; k < s->psc_n[i]; k++) {
		if (!s->psc[i][k].key) {
			v = &s->psc[i][k];
			break;
		}
		if (s->psc[i][k].lru < v->lru)
			v = &s->psc[i][k];
	}
	*v = (struct psce){ .key = (iova >> psc_shift(i)) + 1, .t = t, .lru = ++s->tick };
}

/* ---- translation ------------------------------------------------------------------------ */

/* References of a walk that read @g guest table entries: 1-D, or 2-D when nested. */
static uint64_t walk_cost_refs(const struct sim *s, uint64_t g)
{
	/*
	 * Nested: each guest table pointer is a guest-physical address the host translates with
	 * its own 4-level walk before it can be read (g * (4 + 1)), and the final guest-physical
	 * address needs one more host walk (4): 24 for g = 4 (Bhargava et al., ASPLOS'08).
	 */
	return (s->flags & IOVAQ_SIM_NESTED) ? g * (PT_LEVELS + 1) + PT_LEVELS : g;
}

struct xlate {
	uintptr_t host;		/* host address of the granule */
	int stale;
	uint64_t refs;
	int miss;
};

/*
 * Translate the granule at @iova for an access needing @need (PTE_READ or PTE_WRITE).
 * Returns 0, or a fault reason.
 */
static uint32_t translate(struct sim *s, iovaq_iova_t iova, uintptr_t need, struct xlate *x)
{
	struct tlbe *hit = tlb_lookup(s, iova);
	struct ptab *t = NULL;
	unsigned int l, start = PT_LEVELS, i, level;
	uint64_t g = 0;
	struct pte *e;

	x->refs = 0;
	x->miss = 0;
	x->stale = 0;
	if (iova > s->last)	/* beyond the table's reach: no translation exists */
		return IOVAQ_FAULT_NOT_MAPPED;
	if (hit) {
		iovaq_iova_t first, last;

		s->c.iotlb_hits++;
		if (!(hit->prot & need))
			return IOVAQ_FAULT_PERM;
		tlb_range(hit, &first, &last);
		x->host = hit->host + (iova - first);
		e = pt_leaf(s, iova, &level);
		x->stale = !e || e->m->id != hit->map_id;
		return 0;
	}
	s->c.iotlb_misses++;
	x->miss = 1;
	/* The deepest paging-structure cache hit saves the reads above it. */
	for (i = 3; i-- > 0;) {
		struct psce *p = psc_lookup(s, i, iova);

		if (p) {
			s->c.psc_hits[i]++;
			t = p->t;
			start = PT_LEVELS - 1 - i;
			break;
		}
		s->c.psc_misses[i]++;
	}
	if (!t)
		t = s->root;
	for (l = start; l >= 1; l--) {
		if (t->freed) {
			x->refs = walk_cost_refs(s, g);
			return IOVAQ_FAULT_STALE_TABLE;
		}
		e = &t->e[pt_index(iova, l)];
		g++;
		if (!(e->v & PTE_PRESENT))
			break;
		if (e->v & PTE_LEAF) {
			uint64_t size = 1ull << level_shift(l);
			uint32_t prot = ((e->v & PTE_READ) ? PTE_READ : 0) |
					((e->v & PTE_WRITE) ? PTE_WRITE : 0);

			x->refs = walk_cost_refs(s, g);
			tlb_fill(s, iova, l == 2, e->v & ~PTE_FLAGS, e->m->id, prot);
			if (!(e->v & need))
				return IOVAQ_FAULT_PERM;
			x->host = (e->v & ~PTE_FLAGS) + (iova & (size - 1));
			return 0;
		}
		t = pte_table(e);
		if (l > 1)
			psc_fill(s, PT_LEVELS - l, iova, t);
	}
	x->refs = walk_cost_refs(s, g);
	return IOVAQ_FAULT_NOT_MAPPED;
}

int iovaq_sim_dma(struct iovaq_sim *sim, iovaq_iova_t iova, void *buf, size_t len, int write,
		  struct iovaq_sim_access *res)
{
	struct sim *s = (struct sim *)sim;
	struct iovaq_sim_access a = { 0 };
	uintptr_t need = write ? PTE_WRITE : PTE_READ;
	uint8_t *b = buf;
	int err = 0;

	if (!s || !buf || !len || iova + (len - 1) < iova)
		return -EINVAL;
	iovaq_lock(&s->lock);
	a.t_ns = iovaq_now_ns();
	s->c.dma_calls++;
	while (len) {
		uint64_t room = (1ull << PT_SHIFT) - (iova & ((1ull << PT_SHIFT) - 1));
		size_t n = len < room ? len : (size_t)room;
		struct xlate x;
		uint32_t why = translate(s, iova, need, &x);
		uint64_t ns = s->cost.iotlb_hit_ns + x.refs * s->cost.mem_ref_ns;

		a.modeled_ns += ns;
		a.walk_refs += x.refs;
		a.iotlb_misses += (uint64_t)x.miss;
		s->c.walk_refs += x.refs;
		s->c.device_ns += ns;
		if (why) {
			log_fault(s, iova, why, write);
			err = -EFAULT;
			break;
		}
		a.pages++;
		s->c.dma_pages++;
		if (x.stale) {
			a.stale_pages++;
			s->c.stale_hits++;
		} else if (write) {
			iovaq_memcpy((void *)x.host, b, n);
		} else {
			iovaq_memcpy(b, (const void *)x.host, n);
		}
		b += n;
		iova += n;
		len -= n;
	}
	iovaq_unlock(&s->lock);
	if (res)
		*res = a;
	return err;
}

/* ---- invalidation ----------------------------------------------------------------------- */

static int overlaps(iovaq_iova_t a0, iovaq_iova_t a1, iovaq_iova_t b0, iovaq_iova_t b1)
{
	return a0 <= b1 && b0 <= a1;
}

/* Drop IOTLB entries (and without @leaf, paging-structure entries) inside [first, last]. */
static void inval_range(struct sim *s, iovaq_iova_t first, iovaq_iova_t last, int leaf)
{
	struct ptab **pq, *q;
	uint32_t i, k;

	for (i = 0; i < s->sets * s->ways; i++) {
		iovaq_iova_t f, l;

		if (!s->tlb[i].tag)
			continue;
		tlb_range(&s->tlb[i], &f, &l);
		if (overlaps(f, l, first, last))
			s->tlb[i].tag = 0;
	}
	/* A quarantined table in the range makes a leaf-only command wrong: report it. */
	for (q = s->quarantine; q; q = q->qnext) {
		iovaq_iova_t tl = q->base + (1ull << level_shift(q->level + 1u)) - 1;

		if (leaf && overlaps(q->base, tl, first, last)) {
			s->c.bad_leaf_invals++;
			log_fault(s, first, IOVAQ_FAULT_BAD_LEAF_INVAL, 0);
			break;
		}
	}
	if (leaf)
		return;
	for (i = 0; i < 3; i++) {
		for (k = 0; k < s->psc_n[i]; k++) {
			struct psce *p = &s->psc[i][k];
			iovaq_iova_t f, l;

			if (!p->key)
				continue;
			f = (p->key - 1) << psc_shift(i);
			l = f + (1ull << psc_shift(i)) - 1;
			if (overlaps(f, l, first, last))
				p->key = 0;
		}
	}
	/* No cache entry can reach a quarantined table of the range any more: free it. */
	for (pq = &s->quarantine; (q = *pq);) {
		iovaq_iova_t tl = q->base + (1ull << level_shift(q->level + 1u)) - 1;

		if (overlaps(q->base, tl, first, last)) {
			*pq = q->qnext;
			ptab_release(s, q);
		} else {
			pq = &q->qnext;
		}
	}
}

static int sim_flush(struct iovaq_backend *be, const struct iovaq_inval *cmds, size_t n)
{
	struct sim *s = to_sim(be);
	uint64_t ns = 0;
	size_t i;
	int err;

	iovaq_lock(&s->lock);
	err = injected(s, IOVAQ_SIM_OP_FLUSH);
	if (err)
		goto out;
	for (i = 0; i < n; i++) {
		const struct iovaq_inval *c = &cmds[i];
		iovaq_iova_t first = 0, last = UINT64_MAX;
		uint64_t covered = s->c.mapped_pages;

		if (c->kind == IOVAQ_INVAL_PAGES) {
			first = c->iova;
			last = c->iova + (1ull << (PT_SHIFT + c->am)) - 1;
			covered = 1ull << c->am;
		} else if (c->kind == IOVAQ_INVAL_RANGE) {
			first = c->iova;
			last = c->last;
			covered = ((last - first) >> PT_SHIFT) + 1;
		}
		inval_range(s, first, last, c->flags & IOVAQ_INVAL_LEAF);
		s->c.inval_cmds[c->kind]++;
		if (c->flags & IOVAQ_INVAL_LEAF)
			s->c.inval_leaf++;
		ns += s->cost.inval_cmd_ns;
		if (s->flags & IOVAQ_SIM_CACHING_MODE) {
			/* The hypervisor traps on the command and re-walks what it covers. */
			s->c.traps++;
			ns += s->cost.trap_ns + covered * s->cost.rewalk_ns;
		}
	}
	s->c.flushes++;
	s->c.cpu_flush_submit_ns += ns;
	s->c.cpu_flush_wait_ns += s->cost.inval_wait_ns;
	s->c.cpu_flush_ns += ns + s->cost.inval_wait_ns;
out:
	iovaq_unlock(&s->lock);
	return err;
}

static int sim_faults(struct iovaq_backend *be, struct iovaq_fault *out, size_t max)
{
	struct sim *s = to_sim(be);
	size_t n = 0;

	iovaq_lock(&s->lock);
	while (n < max && s->log_n) {
		out[n++] = s->log[s->log_head];
		s->log_head = (s->log_head + 1) % FAULT_LOG;
		s->log_n--;
	}
	iovaq_unlock(&s->lock);
	return (int)n;
}

/* ---- open, close, public extras --------------------------------------------------------- */

static void sim_free(struct sim *s)
{
	struct ptab *q;
	unsigned int i;

	while ((q = s->quarantine)) {
		s->quarantine = q->qnext;
		iovaq_hooks_free(s->be.hooks, q, sizeof(*q));
	}
	if (s->root)
		pt_free_all(s, s->root);
	for (i = 0; i < 3; i++)
		iovaq_hooks_free(s->be.hooks, s->psc[i], s->psc_n[i] * sizeof(struct psce));
	iovaq_hooks_free(s->be.hooks, s->tlb, (size_t)s->sets * s->ways * sizeof(struct tlbe));
	iovaq_lock_destroy(&s->lock);
	iovaq_hooks_free(s->be.hooks, s, sizeof(*s));
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int sim_open(const void *backend_opts, const struct iovaq_alloc_hooks *hooks,
		    struct iovaq_backend **out)
{
	const struct iovaq_sim_opts *o = backend_opts;
	const uint32_t known = IOVAQ_SIM_NESTED | IOVAQ_SIM_CACHING_MODE | IOVAQ_SIM_LARGE_PAGES;
	const struct iovaq_sim_cost *cost;
	uint32_t sets, ways, flags, max_am, bits, psc[3], i;
	struct iovaq_backend_caps *caps;
	struct sim *s;
	int err;

	if (o) {
		err = iovaq_opts_check(o, sizeof(o->sz), sizeof(*o));
		if (err)
			return err;
	}
	sets = IOVAQ_OPTS_GET(o, iotlb_sets, 0) ?: IOVAQ_SIM_DEFAULT_IOTLB_SETS;
	ways = IOVAQ_OPTS_GET(o, iotlb_ways, 0) ?: IOVAQ_SIM_DEFAULT_IOTLB_WAYS;
	flags = IOVAQ_OPTS_GET(o, flags, 0);
	max_am = IOVAQ_OPTS_HAS(o, max_am) && o->max_am ? o->max_am : IOVAQ_SIM_DEFAULT_MAX_AM;
	bits = IOVAQ_OPTS_GET(o, aperture_bits, 0) ?: 48;
	for (i = 0; i < 3; i++) {
		psc[i] = IOVAQ_OPTS_HAS(o, psc_entries) ? o->psc_entries[i] : 0;
		if (!psc[i])
			psc[i] = IOVAQ_SIM_DEFAULT_PSC_ENTRIES;
		if (psc[i] > IOVAQ_SIM_MAX_PSC_ENTRIES)
			return -EINVAL;
	}
	if (!iovaq_is_pow2(sets) || sets > 4096 || !ways || ways > 64 || (flags & ~known) ||
	    max_am > 51 || bits < 32 || bits > 48)
		return -EINVAL;

	s = iovaq_hooks_alloc(hooks, sizeof(*s), IOVAQ_CACHELINE);
	if (!s)
		return -ENOMEM;
	iovaq_memset(s, 0, sizeof(*s));
	s->be.ops = &iovaq_sim_ops;
	s->be.hooks = hooks;
	iovaq_lock_init(&s->lock);
	cost = IOVAQ_OPTS_GET(o, cost, NULL);
	if (cost)
		s->cost = *cost;
	else
		iovaq_sim_cost_defaults(&s->cost);
	s->flags = flags;
	s->sets = sets;
	s->ways = ways;
	s->salt = splitmix64(IOVAQ_OPTS_GET(o, seed, 0));
	s->c.sz = sizeof(s->c);
	s->tlb = iovaq_hooks_alloc(hooks, (size_t)sets * ways * sizeof(struct tlbe), 64);
	if (!s->tlb)
		goto nomem;
	iovaq_memset(s->tlb, 0, (size_t)sets * ways * sizeof(struct tlbe));
	for (i = 0; i < 3; i++) {
		s->psc_n[i] = psc[i];
		s->psc[i] = iovaq_hooks_alloc(hooks, psc[i] * sizeof(struct psce), 64);
		if (!s->psc[i])
			goto nomem;
		iovaq_memset(s->psc[i], 0, psc[i] * sizeof(struct psce));
	}
	s->root = ptab_new(s, PT_LEVELS, 0);
	if (!s->root)
		goto nomem;

	caps = &s->be.caps;
	caps->sz = sizeof(*caps);
	caps->flags = IOVAQ_CAP_FAULTS |
		      ((flags & IOVAQ_SIM_CACHING_MODE) ? IOVAQ_CAP_CACHING_MODE : 0);
	caps->granule = 1ull << PT_SHIFT;
	caps->page_sizes = caps->granule |
			   ((flags & IOVAQ_SIM_LARGE_PAGES) ? 1ull << level_shift(2) : 0);
	caps->n_apertures = 1;
	caps->apertures[0] = (struct iovaq_range){ 1ull << PT_SHIFT, (1ull << bits) - 1 };
	s->last = (1ull << bits) - 1;
	caps->inval_kinds = (1u << IOVAQ_INVAL_PAGES) | (1u << IOVAQ_INVAL_DOMAIN) |
			    (1u << IOVAQ_INVAL_GLOBAL);
	caps->max_am = (uint8_t)max_am;
	caps->leaf_hint = 1;
	caps->cost_flush_ns = s->cost.inval_wait_ns;
	caps->cost_cmd_ns = s->cost.inval_cmd_ns;
	caps->cost_map_ns = s->cost.map_ns;
	caps->cost_unmap_ns = s->cost.unmap_ns;
	/*
	 * Under caching mode every command traps, and the hypervisor re-walks what it covers:
	 * the range of a page-selective command, every mapping for a domain-wide one.
	 */
	caps->cost_domain_ns = s->cost.inval_cmd_ns;
	if (flags & IOVAQ_SIM_CACHING_MODE) {
		caps->cost_trap_ns = s->cost.trap_ns;
		caps->cost_cmd_ns += s->cost.trap_ns;
		caps->cost_map_ns += s->cost.trap_ns;
		caps->cost_domain_ns += s->cost.trap_ns;
		caps->cost_domain_page_ns = s->cost.rewalk_ns;
		caps->cost_inval_page_ns = s->cost.rewalk_ns;
	}
	*out = &s->be;
	return 0;
nomem:
	sim_free(s);
	return -ENOMEM;
}

static void sim_close(struct iovaq_backend *be)
{
	sim_free(to_sim(be));
}

const struct iovaq_backend_ops iovaq_sim_ops = {
	.name = "sim",
	.open = sim_open,
	.close = sim_close,
	.map = sim_map,
	.unmap = sim_unmap,
	.flush = sim_flush,
	.faults = sim_faults,
};

struct iovaq_sim *iovaq_sim_of(struct iovaq_backend *be)
{
	return be && be->ops == &iovaq_sim_ops ? (struct iovaq_sim *)to_sim(be) : NULL;
}

int iovaq_sim_get_counters(struct iovaq_sim *sim, struct iovaq_sim_counters *out)
{
	struct sim *s = (struct sim *)sim;
	size_t sz;
	int err;

	if (!s)
		return -EINVAL;
	err = iovaq_opts_check(out, offsetof(struct iovaq_sim_counters, dma_calls) +
				    sizeof(uint64_t), SIZE_MAX);
	if (err)
		return err;
	sz = out->sz < sizeof(s->c) ? out->sz : sizeof(s->c);
	iovaq_lock(&s->lock);
	iovaq_memcpy(out, &s->c, sz);
	iovaq_unlock(&s->lock);
	out->sz = sz;
	return 0;
}

void iovaq_sim_reset_counters(struct iovaq_sim *sim)
{
	struct sim *s = (struct sim *)sim;
	uint64_t mapped, tables;

	if (!s)
		return;
	iovaq_lock(&s->lock);
	mapped = s->c.mapped_pages;
	tables = s->c.table_pages;
	iovaq_memset(&s->c, 0, sizeof(s->c));
	s->c.sz = sizeof(s->c);
	s->c.mapped_pages = mapped;
	s->c.table_pages = tables;
	iovaq_unlock(&s->lock);
}

int iovaq_sim_fail_nth(struct iovaq_sim *sim, enum iovaq_sim_op op, uint64_t nth, int err)
{
	struct sim *s = (struct sim *)sim;

	if (!s || (unsigned int)op >= IOVAQ_SIM_OP_NR || err >= 0)
		return -EINVAL;
	iovaq_lock(&s->lock);
	s->fail_nth[op] = nth;
	s->fail_err[op] = err;
	iovaq_unlock(&s->lock);
	return 0;
}
