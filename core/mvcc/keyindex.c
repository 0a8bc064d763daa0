/* keyindex: see keyindex.h.
 *
 * Invariants:
 *  1. The tree is a B+tree of height ki->height (0: the root is a leaf).
 *     Every leaf is at depth height; leaves hold kidx_rec pointers in
 *     strictly increasing key order and are linked prev/next in that
 *     order from ki->first to ki->last. Only the root leaf of an empty
 *     tree has n == 0.
 *  2. An inner node with n children holds n-1 separators; sep[i] is the
 *     record that was the smallest key of kids[i+1]'s subtree when it was
 *     split off, so every key of kids[i] < sep[i] <= every key of
 *     kids[i+1]. A record appears as a separator at most once (an inner
 *     split moves its middle separator up, it does not copy it).
 *  3. Records are only freed by keyindex_compact (which rebuilds the whole
 *     tree) and keyindex_destroy, so separators never dangle. A record
 *     that moves on realloc is re-pointed in its leaf slot and in its
 *     separator slot, both found on the way down.
 *  4. Record layout (one malloc, packed: fields are read and written
 *     with memcpy, so nothing is padded for alignment):
 *        OFFSET              SIZE        DESCRIPTION
 *        0                   4           klen
 *        4                   4           ngen
 *        8                   4           nrev
 *        12                  klen        key bytes
 *        12+klen             20*ngen     generations: created (8), ver (8),
 *                                        start (4)
 *        12+klen+20*ngen     12*nrev     revisions: main (8), sub (4),
 *                                        ascending
 *     Generation g owns revs[start(g) .. start(g+1)) (the last one up to
 *     nrev). Every generation but the last is non-empty and ends
 *     with its tombstone. nrev == 0 means the key is empty (all compacted):
 *     it is invisible and removed by the next tree rebuild.
 */
#include "core/mvcc/keyindex.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define KIDX_LEAF_MAX 64
#define KIDX_KIDS_MAX 64
#define KIDX_DEPTH_MAX 24

/* A generation, unpacked (invariant 4 has the stored form). */
struct kidx_gen {
	int64_t created;
	int64_t ver;
	uint32_t start;
};

#define KIDX_GEN_SIZE 20
#define KIDX_REV_SIZE 12

struct kidx_rec {
	uint32_t klen;
	uint32_t ngen;
	uint32_t nrev;
	uint8_t key[];
};

struct kidx_leaf {
	unsigned n;
	struct kidx_leaf *prev, *next;
	struct kidx_rec *recs[KIDX_LEAF_MAX];
};

struct kidx_inner {
	unsigned n; /* children */
	struct kidx_rec *sep[KIDX_KIDS_MAX - 1];
	void *kids[KIDX_KIDS_MAX];
};

struct keyindex {
	void *root;
	unsigned height;
	struct kidx_leaf *first, *last;
	size_t nkeys;
	size_t bytes;
};

/* ---- records ---- */

static size_t kidx_rec_size(size_t klen, size_t ngen, size_t nrev)
{
	return offsetof(struct kidx_rec, key) + klen + ngen * KIDX_GEN_SIZE +
	       nrev * KIDX_REV_SIZE;
}

static size_t kidx_size(const struct kidx_rec *r)
{
	return kidx_rec_size(r->klen, r->ngen, r->nrev);
}

static uint8_t *kidx_gen_at(const struct kidx_rec *r, uint32_t g)
{
	return (uint8_t *)r->key + r->klen + (size_t)g * KIDX_GEN_SIZE;
}

static uint8_t *kidx_rev_at(const struct kidx_rec *r, uint32_t i)
{
	return kidx_gen_at(r, r->ngen) + (size_t)i * KIDX_REV_SIZE;
}

static struct kidx_gen kidx_gen_get(const struct kidx_rec *r, uint32_t g)
{
	const uint8_t *p = kidx_gen_at(r, g);
	struct kidx_gen x;

	memcpy(&x.created, p, 8);
	memcpy(&x.ver, p + 8, 8);
	memcpy(&x.start, p + 16, 4);
	return x;
}

static void kidx_gen_set(struct kidx_rec *r, uint32_t g, struct kidx_gen x)
{
	uint8_t *p = kidx_gen_at(r, g);

	memcpy(p, &x.created, 8);
	memcpy(p + 8, &x.ver, 8);
	memcpy(p + 16, &x.start, 4);
}

static uint32_t kidx_gen_start(const struct kidx_rec *r, uint32_t g)
{
	uint32_t v;

	memcpy(&v, kidx_gen_at(r, g) + 16, 4);
	return v;
}

static struct keyindex_rev kidx_rev_get(const struct kidx_rec *r, uint32_t i)
{
	const uint8_t *p = kidx_rev_at(r, i);
	struct keyindex_rev x;
	uint32_t sub;

	memcpy(&x.main, p, 8);
	memcpy(&sub, p + 8, 4);
	x.sub = sub;
	return x;
}

static void kidx_rev_set(struct kidx_rec *r, uint32_t i, struct keyindex_rev x)
{
	uint8_t *p = kidx_rev_at(r, i);
	uint32_t sub = (uint32_t)x.sub;

	memcpy(p, &x.main, 8);
	memcpy(p + 8, &sub, 4);
}

static int64_t kidx_rev_main(const struct kidx_rec *r, uint32_t i)
{
	int64_t v;

	memcpy(&v, kidx_rev_at(r, i), 8);
	return v;
}

/* End (exclusive) of generation g's revisions. */
static uint32_t kidx_gen_end(const struct kidx_rec *r, uint32_t g)
{
	return g + 1 < r->ngen ? kidx_gen_start(r, g + 1) : r->nrev;
}

static int kidx_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	if (c)
		return c;
	return al < bl ? -1 : al > bl;
}

static int kidx_rec_cmp(const struct kidx_rec *r, const uint8_t *k, size_t kl)
{
	return kidx_cmp(r->key, r->klen, k, kl);
}

static bool kidx_rev_gt(struct keyindex_rev a, struct keyindex_rev b)
{
	return a.main > b.main || (a.main == b.main && a.sub > b.sub);
}

/* A fresh record: one generation created at `created`, one revision. */
static struct kidx_rec *kidx_rec_new(const uint8_t *key, size_t klen,
				     int64_t created, struct keyindex_rev rev,
				     int64_t ver)
{
	struct kidx_rec *r = malloc(kidx_rec_size(klen, 1, 1));

	if (!r)
		return NULL;
	r->klen = (uint32_t)klen;
	r->ngen = 1;
	r->nrev = 1;
	memcpy(r->key, key, klen);
	kidx_gen_set(r, 0, (struct kidx_gen){created, ver, 0});
	kidx_rev_set(r, 0, rev);
	return r;
}

/* etcd's keyIndex.findGeneration: the generation holding at_rev, or -1. */
static int kidx_find_gen(const struct kidx_rec *r, int64_t at_rev)
{
	uint32_t last = r->ngen - 1;

	for (int g = (int)last; g >= 0; g--) {
		uint32_t s = kidx_gen_start(r, (uint32_t)g);
		uint32_t e = kidx_gen_end(r, (uint32_t)g);

		if (s == e)
			continue;
		/* a closed generation whose tombstone is at or before
		 * at_rev: the key was deleted then */
		if ((uint32_t)g != last && kidx_rev_main(r, e - 1) <= at_rev)
			return -1;
		if (kidx_rev_main(r, s) <= at_rev)
			return g;
	}
	return -1;
}

static int kidx_rec_get(const struct kidx_rec *r, int64_t at_rev,
			struct keyindex_hit *hit)
{
	struct kidx_gen gen;
	uint32_t end;
	int g;

	if (r->nrev == 0)
		return -ENOENT;
	g = kidx_find_gen(r, at_rev);
	if (g < 0)
		return -ENOENT;
	gen = kidx_gen_get(r, (uint32_t)g);
	end = kidx_gen_end(r, (uint32_t)g);
	for (uint32_t i = end; i > gen.start; i--) {
		if (kidx_rev_main(r, i - 1) <= at_rev) {
			hit->mod = kidx_rev_get(r, i - 1);
			hit->created = gen.created;
			/* ver counts the generation's revisions, some of
			 * which compaction may have dropped from the front */
			hit->ver = gen.ver - (int64_t)(end - i);
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- tree search ---- */

/* Index of the child of n to descend into for key: the number of
 * separators <= key. */
static unsigned kidx_inner_pick(const struct kidx_inner *n, const uint8_t *k,
				size_t kl)
{
	unsigned lo = 0, hi = n->n - 1;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (kidx_rec_cmp(n->sep[mid], k, kl) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Position of the first record >= key in leaf l. */
static unsigned kidx_leaf_lb(const struct kidx_leaf *l, const uint8_t *k,
			     size_t kl)
{
	unsigned lo = 0, hi = l->n;

	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;

		if (kidx_rec_cmp(l->recs[mid], k, kl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Where key is or would go. path[d]/idx[d] are the inner nodes and the
 * child taken at depth d (d < height); sep_slot is the separator slot
 * holding the key's record, if any (invariant 2). */
struct kidx_path {
	struct kidx_inner *node[KIDX_DEPTH_MAX];
	unsigned idx[KIDX_DEPTH_MAX];
	struct kidx_leaf *leaf;
	unsigned pos;
	bool found;
	struct kidx_rec **sep_slot;
};

static void kidx_descend(const struct keyindex *ki, const uint8_t *k, size_t kl,
			 struct kidx_path *p)
{
	void *n = ki->root;

	p->sep_slot = NULL;
	for (unsigned d = 0; d < ki->height; d++) {
		struct kidx_inner *in = n;
		unsigned i = kidx_inner_pick(in, k, kl);

		if (i > 0 && kidx_rec_cmp(in->sep[i - 1], k, kl) == 0)
			p->sep_slot = &in->sep[i - 1];
		p->node[d] = in;
		p->idx[d] = i;
		n = in->kids[i];
	}
	p->leaf = n;
	p->pos = kidx_leaf_lb(p->leaf, k, kl);
	p->found = p->pos < p->leaf->n &&
		   kidx_rec_cmp(p->leaf->recs[p->pos], k, kl) == 0;
}

static const struct kidx_rec *kidx_find(const struct keyindex *ki,
					const uint8_t *k, size_t kl)
{
	struct kidx_path p;

	kidx_descend(ki, k, kl, &p);
	return p.found ? p.leaf->recs[p.pos] : NULL;
}

/* ---- insert ---- */

/* Split a full leaf for an insert at pos. Appending past the end of the
 * last leaf (sequential keys) moves nothing, so such leaves stay full. */
static void kidx_leaf_split(struct keyindex *ki, struct kidx_leaf *l,
			    struct kidx_leaf *nl, unsigned pos)
{
	unsigned keep = (!l->next && pos == l->n) ? l->n : l->n / 2;

	nl->n = l->n - keep;
	memcpy(nl->recs, l->recs + keep, nl->n * sizeof(nl->recs[0]));
	l->n = keep;
	nl->prev = l;
	nl->next = l->next;
	if (l->next)
		l->next->prev = nl;
	else
		ki->last = nl;
	l->next = nl;
}

static void kidx_leaf_insert(struct kidx_leaf *l, unsigned pos,
			     struct kidx_rec *r)
{
	memmove(l->recs + pos + 1, l->recs + pos,
		(l->n - pos) * sizeof(l->recs[0]));
	l->recs[pos] = r;
	l->n++;
}

static void kidx_inner_insert(struct kidx_inner *in, unsigned i,
			      struct kidx_rec *sep, void *kid)
{
	/* the new child goes right of child i, sep between them */
	memmove(in->sep + i + 1, in->sep + i,
		(in->n - 1 - i) * sizeof(in->sep[0]));
	memmove(in->kids + i + 2, in->kids + i + 1,
		(in->n - 1 - i) * sizeof(in->kids[0]));
	in->sep[i] = sep;
	in->kids[i + 1] = kid;
	in->n++;
}

/* Split full inner node in (inserting sep/kid right of child i) into in
 * and ni; returns the separator that moves up. */
static struct kidx_rec *kidx_inner_split(struct kidx_inner *in,
					 struct kidx_inner *ni, unsigned i,
					 struct kidx_rec *sep, void *kid)
{
	struct kidx_rec *seps[KIDX_KIDS_MAX];
	void *kids[KIDX_KIDS_MAX + 1];
	unsigned nk = in->n + 1, left = nk / 2;

	memcpy(seps, in->sep, i * sizeof(seps[0]));
	seps[i] = sep;
	memcpy(seps + i + 1, in->sep + i, (in->n - 1 - i) * sizeof(seps[0]));
	memcpy(kids, in->kids, (i + 1) * sizeof(kids[0]));
	kids[i + 1] = kid;
	memcpy(kids + i + 2, in->kids + i + 1,
	       (in->n - 1 - i) * sizeof(kids[0]));

	in->n = left;
	memcpy(in->kids, kids, left * sizeof(kids[0]));
	memcpy(in->sep, seps, (left - 1) * sizeof(seps[0]));
	ni->n = nk - left;
	memcpy(ni->kids, kids + left, ni->n * sizeof(kids[0]));
	memcpy(ni->sep, seps + left, (ni->n - 1) * sizeof(seps[0]));
	return seps[left - 1];
}

/* Insert new record r where p (from kidx_descend) says. All nodes the
 * splits need are allocated first, so -ENOMEM leaves the tree as it was. */
static int kidx_insert(struct keyindex *ki, struct kidx_path *p,
		       struct kidx_rec *r)
{
	void *spare[KIDX_DEPTH_MAX + 2];
	unsigned need = 0, used = 0, d;
	struct kidx_rec *sep;
	void *kid;

	if (p->leaf->n == KIDX_LEAF_MAX) {
		need = 1;
		for (d = ki->height;
		     d > 0 && p->node[d - 1]->n == KIDX_KIDS_MAX; d--)
			need++;
		if (d == 0)
			need++; /* a new root */
	}
	for (unsigned i = 0; i < need; i++) {
		size_t sz = i == 0 ? sizeof(struct kidx_leaf)
				   : sizeof(struct kidx_inner);

		spare[i] = calloc(1, sz);
		if (!spare[i]) {
			while (i > 0)
				free(spare[--i]);
			return -ENOMEM;
		}
		ki->bytes += sz;
	}
	ki->nkeys++;
	if (p->leaf->n < KIDX_LEAF_MAX) {
		kidx_leaf_insert(p->leaf, p->pos, r);
		return 0;
	}

	struct kidx_leaf *nl = spare[used++];

	kidx_leaf_split(ki, p->leaf, nl, p->pos);
	/* in the append case the left leaf is still full and the right one
	 * empty: the record goes right */
	if (p->pos < p->leaf->n ||
	    (p->pos == p->leaf->n && p->leaf->n < KIDX_LEAF_MAX))
		kidx_leaf_insert(p->leaf, p->pos, r);
	else
		kidx_leaf_insert(nl, p->pos - p->leaf->n, r);
	sep = nl->recs[0];
	kid = nl;
	for (d = ki->height; d > 0; d--) {
		struct kidx_inner *in = p->node[d - 1];

		if (in->n < KIDX_KIDS_MAX) {
			kidx_inner_insert(in, p->idx[d - 1], sep, kid);
			return 0;
		}
		struct kidx_inner *ni = spare[used++];

		sep = kidx_inner_split(in, ni, p->idx[d - 1], sep, kid);
		kid = ni;
	}
	struct kidx_inner *root = spare[used++];

	root->n = 2;
	root->kids[0] = ki->root;
	root->kids[1] = kid;
	root->sep[0] = sep;
	ki->root = root;
	ki->height++;
	return 0;
}

/* Resize r (found at p) to size bytes, re-pointing its slots (inv. 3). */
static struct kidx_rec *kidx_resize(struct keyindex *ki, struct kidx_path *p,
				    struct kidx_rec *r, size_t size)
{
	size_t old = kidx_size(r);
	struct kidx_rec *nr = realloc(r, size);

	if (!nr)
		return NULL;
	ki->bytes = ki->bytes - old + size;
	p->leaf->recs[p->pos] = nr;
	if (p->sep_slot)
		*p->sep_slot = nr;
	return nr;
}

/* ---- public: lifecycle ---- */

int keyindex_create(struct keyindex **out)
{
	struct keyindex *ki = calloc(1, sizeof(*ki));
	struct kidx_leaf *l = calloc(1, sizeof(*l));

	if (!ki || !l) {
		free(ki);
		free(l);
		return -ENOMEM;
	}
	ki->root = ki->first = ki->last = l;
	ki->bytes = sizeof(*ki) + sizeof(*l);
	*out = ki;
	return 0;
}

static void kidx_free_nodes(void *n, unsigned height, bool recs)
{
	if (height == 0) {
		struct kidx_leaf *l = n;

		for (unsigned i = 0; recs && i < l->n; i++)
			free(l->recs[i]);
	} else {
		struct kidx_inner *in = n;

		for (unsigned i = 0; i < in->n; i++)
			kidx_free_nodes(in->kids[i], height - 1, recs);
	}
	free(n);
}

void keyindex_destroy(struct keyindex *ki)
{
	if (!ki)
		return;
	kidx_free_nodes(ki->root, ki->height, true);
	free(ki);
}

size_t keyindex_len(const struct keyindex *ki)
{
	return ki->nkeys;
}

size_t keyindex_bytes(const struct keyindex *ki)
{
	return ki->bytes;
}

/* ---- public: writes ---- */

static int kidx_add(struct keyindex *ki, const uint8_t *key, size_t klen,
		    struct keyindex_rev rev, bool restore, int64_t created,
		    int64_t ver)
{
	struct kidx_path p;
	struct kidx_rec *r;
	struct kidx_gen g;
	int err;

	if (klen == 0 || klen > UINT32_MAX || rev.sub < 0 ||
	    rev.sub > UINT32_MAX)
		return -EINVAL;
	kidx_descend(ki, key, klen, &p);
	if (!p.found) {
		if (!restore) {
			created = rev.main;
			ver = 1;
		}
		r = kidx_rec_new(key, klen, created, rev, ver);
		if (!r)
			return -ENOMEM;
		err = kidx_insert(ki, &p, r);
		if (err) {
			free(r);
			return err;
		}
		ki->bytes += kidx_size(r);
		return 0;
	}
	r = p.leaf->recs[p.pos];
	if (r->nrev == 0) {
		/* emptied by compaction, not yet unlinked: start afresh */
		if (!restore) {
			created = rev.main;
			ver = 1;
		}
		r = kidx_resize(ki, &p, r, kidx_rec_size(klen, 1, 1));
		if (!r)
			return -ENOMEM;
		r->ngen = 1;
		r->nrev = 1;
		kidx_gen_set(r, 0, (struct kidx_gen){created, ver, 0});
		kidx_rev_set(r, 0, rev);
		return 0;
	}
	if (!kidx_rev_gt(rev, kidx_rev_get(r, r->nrev - 1)))
		return -EINVAL;
	r = kidx_resize(ki, &p, r, kidx_rec_size(klen, r->ngen, r->nrev + 1));
	if (!r)
		return -ENOMEM;
	g = kidx_gen_get(r, r->ngen - 1);
	if (g.start == r->nrev) {
		/* first put after a tombstone: the new generation starts */
		g.created = rev.main;
		g.ver = 0;
	}
	g.ver++;
	kidx_gen_set(r, r->ngen - 1, g);
	kidx_rev_set(r, r->nrev++, rev);
	return 0;
}

int keyindex_put(struct keyindex *ki, const uint8_t *key, size_t klen,
		 struct keyindex_rev rev)
{
	return kidx_add(ki, key, klen, rev, false, 0, 0);
}

int keyindex_restore(struct keyindex *ki, const uint8_t *key, size_t klen,
		     int64_t created, struct keyindex_rev rev, int64_t ver)
{
	return kidx_add(ki, key, klen, rev, true, created, ver);
}

int keyindex_tombstone(struct keyindex *ki, const uint8_t *key, size_t klen,
		       struct keyindex_rev rev)
{
	struct kidx_path p;
	struct kidx_rec *r;
	struct kidx_gen g;
	uint8_t *revs;

	if (klen == 0 || rev.sub < 0 || rev.sub > UINT32_MAX)
		return -EINVAL;
	kidx_descend(ki, key, klen, &p);
	if (!p.found)
		return -ENOENT;
	r = p.leaf->recs[p.pos];
	if (r->nrev == 0 || kidx_gen_start(r, r->ngen - 1) == r->nrev)
		return -ENOENT;
	if (!kidx_rev_gt(rev, kidx_rev_get(r, r->nrev - 1)))
		return -EINVAL;
	r = kidx_resize(ki, &p, r,
			kidx_rec_size(klen, r->ngen + 1, r->nrev + 1));
	if (!r)
		return -ENOMEM;
	/* the revisions shift up by one generation slot */
	revs = kidx_rev_at(r, 0);
	memmove(revs + KIDX_GEN_SIZE, revs, (size_t)r->nrev * KIDX_REV_SIZE);
	g = kidx_gen_get(r, r->ngen - 1);
	g.ver++;
	kidx_gen_set(r, r->ngen - 1, g);
	kidx_gen_set(r, r->ngen, (struct kidx_gen){0, 0, r->nrev + 1});
	r->ngen++;
	kidx_rev_set(r, r->nrev++, rev);
	return 0;
}

/* ---- public: reads ---- */

int keyindex_get(const struct keyindex *ki, const uint8_t *key, size_t klen,
		 int64_t at_rev, struct keyindex_hit *hit)
{
	const struct kidx_rec *r = kidx_find(ki, key, klen);

	return r ? kidx_rec_get(r, at_rev, hit) : -ENOENT;
}

static void kidx_cursor_fix(struct keyindex_cursor *c)
{
	while (c->leaf && c->pos >= c->leaf->n) {
		c->leaf = c->leaf->next;
		c->pos = 0;
	}
}

void keyindex_seek_ge(const struct keyindex *ki, const uint8_t *key,
		      size_t klen, struct keyindex_cursor *c)
{
	struct kidx_path p;

	kidx_descend(ki, key, klen, &p);
	c->leaf = p.leaf;
	c->pos = p.pos;
	kidx_cursor_fix(c);
}

void keyindex_seek_first(const struct keyindex *ki, struct keyindex_cursor *c)
{
	c->leaf = ki->first;
	c->pos = 0;
	kidx_cursor_fix(c);
}

void keyindex_seek_lt(const struct keyindex *ki, const uint8_t *key,
		      size_t klen, struct keyindex_cursor *c)
{
	if (klen == 0) {
		c->leaf = ki->last;
		c->pos = ki->last->n;
	} else {
		struct kidx_path p;

		kidx_descend(ki, key, klen, &p);
		c->leaf = p.leaf;
		c->pos = p.pos;
	}
	/* step back from the first key >= key */
	keyindex_cursor_prev(c);
}

bool keyindex_cursor_key(const struct keyindex_cursor *c, const uint8_t **key,
			 size_t *klen)
{
	if (!c->leaf)
		return false;
	*key = c->leaf->recs[c->pos]->key;
	*klen = c->leaf->recs[c->pos]->klen;
	return true;
}

int keyindex_cursor_get(const struct keyindex_cursor *c, int64_t at_rev,
			struct keyindex_hit *hit)
{
	if (!c->leaf)
		return -ENOENT;
	return kidx_rec_get(c->leaf->recs[c->pos], at_rev, hit);
}

void keyindex_cursor_next(struct keyindex_cursor *c)
{
	if (!c->leaf)
		return;
	c->pos++;
	kidx_cursor_fix(c);
}

void keyindex_cursor_prev(struct keyindex_cursor *c)
{
	if (!c->leaf)
		return;
	while (c->leaf && c->pos == 0) {
		c->leaf = c->leaf->prev;
		c->pos = c->leaf ? c->leaf->n : 0;
	}
	if (c->leaf)
		c->pos--;
}

int keyindex_range(const struct keyindex *ki, const uint8_t *key, size_t klen,
		   const uint8_t *end, size_t elen, int64_t at_rev,
		   keyindex_visit_fn fn, void *arg)
{
	struct keyindex_cursor c;
	struct keyindex_hit hit;
	bool from_key = elen == 1 && end[0] == 0;
	const uint8_t *k;
	size_t kl;
	int rc;

	if (elen == 0) {
		if (keyindex_get(ki, key, klen, at_rev, &hit) != 0)
			return 0;
		return fn(arg, key, klen, &hit);
	}
	for (keyindex_seek_ge(ki, key, klen, &c);
	     keyindex_cursor_key(&c, &k, &kl); keyindex_cursor_next(&c)) {
		if (!from_key && kidx_cmp(k, kl, end, elen) >= 0)
			break;
		if (keyindex_cursor_get(&c, at_rev, &hit) != 0)
			continue;
		rc = fn(arg, k, kl, &hit);
		if (rc)
			return rc;
	}
	return 0;
}

/* ---- compaction ---- */

/* etcd's keyIndex.compact (+ doCompact) on one record, in place. Does not
 * shrink the allocation (the tree rebuild does, invariant 3). */
static void kidx_rec_compact(struct keyindex *ki, struct kidx_rec *r,
			     int64_t at_rev, keyindex_drop_fn drop, void *arg)
{
	uint32_t gi = 0, cut, last = r->ngen - 1, gstart;
	int64_t keep = -1;

	if (r->nrev == 0)
		return;
	/* first generation holding at_rev or created after it */
	while (gi < last && kidx_rev_main(r, kidx_gen_end(r, gi) - 1) <= at_rev)
		gi++;
	gstart = kidx_gen_start(r, gi);
	for (uint32_t i = kidx_gen_end(r, gi); i > gstart; i--) {
		if (kidx_rev_main(r, i - 1) <= at_rev) {
			keep = i - 1;
			break;
		}
	}
	cut = keep >= 0 ? (uint32_t)keep : gstart;
	if (gstart != kidx_gen_end(r, gi) && gi != last &&
	    kidx_gen_end(r, gi) - cut == 1) {
		/* only the tombstone is left: it goes too */
		gi++;
		cut = kidx_gen_start(r, gi);
	}
	for (uint32_t g = 0, i = 0; i < cut; i++) {
		while (i >= kidx_gen_end(r, g))
			g++;
		if (drop)
			drop(arg, r->key, r->klen, kidx_rev_get(r, i),
			     g != last && i == kidx_gen_end(r, g) - 1);
	}
	/* keep generations gi.. and revisions cut.. */
	uint32_t ngen = r->ngen - gi, nrev = r->nrev - cut;
	uint8_t *revs = kidx_rev_at(r, cut);

	ki->bytes -= kidx_size(r);
	memmove(kidx_gen_at(r, 0), kidx_gen_at(r, gi),
		(size_t)ngen * KIDX_GEN_SIZE);
	r->ngen = ngen;
	memmove(kidx_rev_at(r, 0), revs, (size_t)nrev * KIDX_REV_SIZE);
	r->nrev = nrev;
	for (uint32_t g = 0; g < ngen; g++) {
		struct kidx_gen x = kidx_gen_get(r, g);

		x.start = x.start > cut ? x.start - cut : 0;
		kidx_gen_set(r, g, x);
	}
	ki->bytes += kidx_size(r);
}

/* Rebuild the tree, packed, from the non-empty records (invariant 3:
 * only now may records move or be freed). */
static int kidx_rebuild(struct keyindex *ki)
{
	size_t live = 0, nnodes = 0, lvl[KIDX_DEPTH_MAX + 1], nlvl = 0;
	void **nodes = NULL, *oldroot = ki->root;
	unsigned oldheight = ki->height;
	struct kidx_leaf *l;
	size_t s;

	for (l = ki->first; l; l = l->next)
		for (unsigned i = 0; i < l->n; i++)
			live += l->recs[i]->nrev != 0;
	s = live ? (live + KIDX_LEAF_MAX - 1) / KIDX_LEAF_MAX : 1;
	for (;;) {
		lvl[nlvl++] = s;
		nnodes += s;
		if (s == 1 || nlvl > KIDX_DEPTH_MAX)
			break;
		s = (s + KIDX_KIDS_MAX - 1) / KIDX_KIDS_MAX;
	}
	nodes = calloc(nnodes, sizeof(*nodes));
	if (!nodes)
		return -ENOMEM;
	for (size_t i = 0; i < nnodes; i++) {
		nodes[i] = calloc(1, i < lvl[0] ? sizeof(struct kidx_leaf)
						: sizeof(struct kidx_inner));
		if (!nodes[i]) {
			while (i > 0)
				free(nodes[--i]);
			free(nodes);
			return -ENOMEM;
		}
	}
	/* fill the leaves, freeing empty records and shrinking the rest */
	size_t li = 0;
	struct kidx_leaf *nl = nodes[0];

	ki->nkeys = 0;
	for (l = ki->first; l; l = l->next) {
		for (unsigned i = 0; i < l->n; i++) {
			struct kidx_rec *r = l->recs[i], *sr;

			if (r->nrev == 0) {
				ki->bytes -= kidx_size(r);
				free(r);
				continue;
			}
			sr = realloc(r, kidx_size(r));
			r = sr ? sr : r;
			if (nl->n == KIDX_LEAF_MAX)
				nl = nodes[++li];
			nl->recs[nl->n++] = r;
			ki->nkeys++;
		}
	}
	for (size_t i = 0; i < lvl[0]; i++) {
		l = nodes[i];
		l->prev = i ? nodes[i - 1] : NULL;
		l->next = i + 1 < lvl[0] ? nodes[i + 1] : NULL;
	}
	ki->first = nodes[0];
	ki->last = nodes[lvl[0] - 1];
	/* inner levels: group KIDX_KIDS_MAX children per node */
	size_t base = 0;

	for (size_t v = 1; v < nlvl; v++) {
		size_t cbase = base;

		base += lvl[v - 1];
		for (size_t c = 0; c < lvl[v - 1]; c++) {
			struct kidx_inner *in = nodes[base + c / KIDX_KIDS_MAX];
			void *kid = nodes[cbase + c];

			if (in->n > 0) {
				void *m = kid;

				/* separator: the smallest key under kid */
				for (size_t h = v - 1; h > 0; h--)
					m = ((struct kidx_inner *)m)->kids[0];
				in->sep[in->n - 1] =
					((struct kidx_leaf *)m)->recs[0];
			}
			in->kids[in->n++] = kid;
		}
	}
	ki->root = nodes[nnodes - 1];
	ki->height = (unsigned)nlvl - 1;
	kidx_free_nodes(oldroot, oldheight, false);
	ki->bytes = sizeof(*ki) + lvl[0] * sizeof(struct kidx_leaf) +
		    (nnodes - lvl[0]) * sizeof(struct kidx_inner);
	for (l = ki->first; l; l = l->next)
		for (unsigned i = 0; i < l->n; i++)
			ki->bytes += kidx_size(l->recs[i]);
	free(nodes);
	return 0;
}

void keyindex_compact(struct keyindex *ki, int64_t at_rev,
		      keyindex_drop_fn drop, void *arg)
{
	for (struct kidx_leaf *l = ki->first; l; l = l->next)
		for (unsigned i = 0; i < l->n; i++)
			kidx_rec_compact(ki, l->recs[i], at_rev, drop, arg);
	/* on -ENOMEM emptied records stay, invisible (invariant 4) */
	(void)kidx_rebuild(ki);
}

/* ---- consistency check ---- */

struct kidx_walk {
	const struct kidx_leaf *next_leaf; /* expected by the links */
	const struct kidx_rec *prev;	   /* last key seen */
	size_t nkeys;
};

static int kidx_check_rec(const struct kidx_rec *r)
{
	uint32_t prev_start = 0;

	if (r->klen == 0 || r->ngen == 0)
		return -EFAULT;
	for (uint32_t g = 0; g < r->ngen; g++) {
		uint32_t s = kidx_gen_start(r, g), e = kidx_gen_end(r, g);

		if (s < prev_start || s > e || e > r->nrev)
			return -EFAULT;
		/* invariant 4: only the last generation may be empty */
		if (g + 1 < r->ngen && s == e)
			return -EFAULT;
		prev_start = s;
	}
	for (uint32_t i = 1; i < r->nrev; i++)
		if (!kidx_rev_gt(kidx_rev_get(r, i), kidx_rev_get(r, i - 1)))
			return -EFAULT;
	return 0;
}

/* Keys under n must lie in [lo, hi) (NULL: unbounded). */
static int kidx_check_node(const void *n, unsigned height,
			   const struct kidx_rec *lo, const struct kidx_rec *hi,
			   struct kidx_walk *w)
{
	if (height == 0) {
		const struct kidx_leaf *l = n;

		if (l != w->next_leaf)
			return -EFAULT;
		w->next_leaf = l->next;
		for (unsigned i = 0; i < l->n; i++) {
			const struct kidx_rec *r = l->recs[i];

			if (w->prev &&
			    kidx_rec_cmp(r, w->prev->key, w->prev->klen) <= 0)
				return -EFAULT;
			if (lo && kidx_rec_cmp(r, lo->key, lo->klen) < 0)
				return -EFAULT;
			if (hi && kidx_rec_cmp(r, hi->key, hi->klen) >= 0)
				return -EFAULT;
			if (kidx_check_rec(r))
				return -EFAULT;
			w->prev = r;
			w->nkeys++;
		}
		return 0;
	}
	const struct kidx_inner *in = n;

	if (in->n < 1 || in->n > KIDX_KIDS_MAX)
		return -EFAULT;
	for (unsigned i = 0; i < in->n; i++) {
		const struct kidx_rec *l = i ? in->sep[i - 1] : lo;
		const struct kidx_rec *h = i + 1 < in->n ? in->sep[i] : hi;

		if (kidx_check_node(in->kids[i], height - 1, l, h, w))
			return -EFAULT;
	}
	return 0;
}

int keyindex_check(const struct keyindex *ki)
{
	struct kidx_walk w = {ki->first, NULL, 0};

	if (ki->height >= KIDX_DEPTH_MAX)
		return -EFAULT;
	if (kidx_check_node(ki->root, ki->height, NULL, NULL, &w))
		return -EFAULT;
	/* every leaf visited in link order, the last one is ki->last */
	if (w.next_leaf != NULL || w.nkeys != ki->nkeys)
		return -EFAULT;
	if (ki->last->next != NULL || ki->first->prev != NULL)
		return -EFAULT;
	return 0;
}
