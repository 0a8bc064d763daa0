/* bolt/node.c: the write path. A batch materializes only the nodes on the
 * paths it touches (like bbolt's per-transaction node cache); commit
 * rebalances them, then spills them bottom-up to freshly allocated pages.
 *
 * Invariants:
 * 1. A materialized node is a decoded copy of one committed page (pgid)
 *    or a new node (pgid 0); the committed page is never written, it is
 *    freed (pending, at the commit's txid) when the node is spilled or
 *    merged away.
 * 2. Every branch inode has a child page (pgid) or a materialized child
 *    (child, whose parent points back); keys routed to inode i are >= its
 *    key (any key below the first goes to inode 0).
 * 3. Inodes of a node are strictly ascending by key.
 * 4. Key/value pointers reference the mapping or the batch's copies, both
 *    alive until the commit ends.
 *
 * Node life:  committed page --materialize--> node --put/del/split-->
 *   node --rebalance (merge into a sibling: freed)--> node --spill-->
 *   new page(s), old page pending free at txid.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engines/bolt/bolt_int.h"

static struct bolt_node *node_new(bool leaf, struct bolt_node *parent)
{
	struct bolt_node *n = bolt_calloc(1, sizeof(*n));

	if (n) {
		n->leaf = leaf;
		n->parent = parent;
	}
	return n;
}

static int node_reserve(struct bolt_node *n, uint32_t need)
{
	uint32_t nc = n->cap ? n->cap : 16;
	struct bolt_inode *in;

	if (need <= n->cap)
		return 0;
	while (nc < need)
		nc *= 2;
	in = bolt_realloc(n->in, (size_t)nc * sizeof(*in));
	if (!in)
		return -ENOMEM;
	n->in = in;
	n->cap = nc;
	return 0;
}

static void node_free(struct bolt_node *n)
{
	uint32_t i;

	if (!n)
		return;
	if (!n->leaf)
		for (i = 0; i < n->n; i++)
			node_free(n->in[i].child);
	free(n->in);
	free(n);
}

void bolt_tree_drop(struct bolt_tree *t)
{
	node_free(t->root);
	t->root = NULL;
}

/* Decode page p (span bytes) into a new node. */
static int node_decode(const uint8_t *p, size_t span, uint64_t pgid,
		       struct bolt_node *parent, struct bolt_node **out)
{
	uint16_t fl = bolt_ld16(p + BOLT_PH_FLAGS);
	uint32_t i, cnt = bolt_ld16(p + BOLT_PH_COUNT);
	struct bolt_node *n;
	int err = -EIO;

	if (!(fl & (BOLT_FLAG_LEAF | BOLT_FLAG_BRANCH)))
		return -EIO;
	n = node_new((fl & BOLT_FLAG_LEAF) != 0, parent);
	if (!n)
		return -ENOMEM;
	n->pgid = pgid;
	if ((err = node_reserve(n, cnt)))
		goto fail;
	for (i = 0; i < cnt; i++) {
		struct bolt_inode *in = &n->in[i];

		memset(in, 0, sizeof(*in));
		err = bolt_elem(p, span, (int)i, n->leaf, &in->k, &in->kn,
				n->leaf ? &in->v : NULL,
				n->leaf ? &in->vn : NULL, &in->flags,
				&in->pgid);
		if (err)
			goto fail;
		if (!n->leaf)
			in->flags = 0;
	}
	n->n = cnt;
	*out = n;
	return 0;
fail:
	node_free(n);
	return err;
}

static int node_read(const struct bolt_rctx *rc, uint64_t pgid,
		     struct bolt_node *parent, struct bolt_node **out)
{
	const uint8_t *p;
	size_t span;
	int err = bolt_page(rc, pgid, &p, &span);

	if (err)
		return err;
	return node_decode(p, span, pgid, parent, out);
}

static int tree_root(const struct bolt_rctx *rc, struct bolt_tree *t)
{
	if (t->root)
		return 0;
	if (t->croot.inl)
		return node_decode(t->croot.inl, t->croot.inl_len, 0, NULL,
				   &t->root);
	if (t->croot.pgid == 0) { /* a bucket created in this batch */
		t->root = node_new(true, NULL);
		return t->root ? 0 : -ENOMEM;
	}
	return node_read(rc, t->croot.pgid, NULL, &t->root);
}

static int node_child(const struct bolt_rctx *rc, struct bolt_node *n,
		      uint32_t i, struct bolt_node **out)
{
	int err;

	if (!n->in[i].child) {
		err = node_read(rc, n->in[i].pgid, n, &n->in[i].child);
		if (err)
			return err;
	}
	*out = n->in[i].child;
	return 0;
}

/* First inode with key >= k; *eq when equal. */
static uint32_t node_search(const struct bolt_node *n, const uint8_t *k,
			    uint32_t kn, bool *eq)
{
	uint32_t lo = 0, hi = n->n;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (bolt_keycmp(n->in[mid].k, n->in[mid].kn, k, kn) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*eq = lo < n->n && bolt_keycmp(n->in[lo].k, n->in[lo].kn, k, kn) == 0;
	return lo;
}

static int tree_leaf(const struct bolt_rctx *rc, struct bolt_tree *t,
		     const uint8_t *k, uint32_t kn, struct bolt_node **out)
{
	struct bolt_node *n;
	int err, depth = 0;

	if ((err = tree_root(rc, t)))
		return err;
	for (n = t->root; !n->leaf;) {
		bool eq;
		uint32_t i = node_search(n, k, kn, &eq);

		if (n->n == 0 || ++depth > BOLT_MAX_DEPTH)
			return -EIO;
		if (!eq)
			i = i > 0 ? i - 1 : 0;
		if ((err = node_child(rc, n, i, &n)))
			return err;
	}
	*out = n;
	return 0;
}

static int node_insert_at(struct bolt_node *n, uint32_t i,
			  const struct bolt_inode *in)
{
	int err = node_reserve(n, n->n + 1);

	if (err)
		return err;
	memmove(n->in + i + 1, n->in + i, (n->n - i) * sizeof(*n->in));
	n->in[i] = *in;
	n->n++;
	return 0;
}

static void node_remove_at(struct bolt_node *n, uint32_t i)
{
	memmove(n->in + i, n->in + i + 1, (n->n - i - 1) * sizeof(*n->in));
	n->n--;
}

static uint32_t node_index_of(const struct bolt_node *p,
			      const struct bolt_node *c)
{
	uint32_t i;

	for (i = 0; i < p->n; i++)
		if (p->in[i].child == c)
			return i;
	return UINT32_MAX;
}

/* Split a node grown huge inside one batch in two halves, so inserts stay
 * O(log n) however many keys one batch adds; spill splits to pages. */
static int node_split_half(struct bolt_tree *t, struct bolt_node *n)
{
	struct bolt_node *s, *p = n->parent;
	struct bolt_inode sep = {0};
	uint32_t half = n->n / 2, i;
	int err;

	s = node_new(n->leaf, p);
	if (!s)
		return -ENOMEM;
	if ((err = node_reserve(s, n->n - half))) {
		node_free(s);
		return err;
	}
	memcpy(s->in, n->in + half, (n->n - half) * sizeof(*n->in));
	s->n = n->n - half;
	n->n = half;
	for (i = 0; !s->leaf && i < s->n; i++)
		if (s->in[i].child)
			s->in[i].child->parent = s;
	if (!p) {
		struct bolt_inode left = {0};

		p = node_new(false, NULL);
		if (!p)
			goto oom;
		left.k = n->in[0].k;
		left.kn = n->in[0].kn;
		left.child = n;
		if (node_insert_at(p, 0, &left)) {
			free(p);
			goto oom;
		}
		n->parent = p;
		s->parent = p;
		t->root = p;
	}
	sep.k = s->in[0].k;
	sep.kn = s->in[0].kn;
	sep.child = s;
	i = node_index_of(p, n);
	if (i == UINT32_MAX)
		goto undo;
	/* A first child may hold keys below its label (invariant 2): lower
	 * the label so the labels stay ascending with sep after it. */
	if (bolt_keycmp(p->in[i].k, p->in[i].kn, sep.k, sep.kn) >= 0) {
		p->in[i].k = n->in[0].k;
		p->in[i].kn = n->in[0].kn;
	}
	if ((err = node_insert_at(p, i + 1, &sep)))
		goto undo;
	if (p->n > BOLT_EAGER_SPLIT)
		return node_split_half(t, p);
	return 0;
oom:
	err = -ENOMEM;
undo:
	memcpy(n->in + half, s->in, s->n * sizeof(*n->in));
	n->n += s->n;
	for (i = 0; !n->leaf && i < n->n; i++)
		if (n->in[i].child)
			n->in[i].child->parent = n;
	free(s->in);
	free(s);
	return err ? err : -EIO;
}

int bolt_tree_put(const struct bolt_rctx *rc, struct bolt_tree *t,
		  const uint8_t *k, uint32_t kn, const uint8_t *v, uint32_t vn,
		  uint32_t flags)
{
	struct bolt_inode in = {
		.k = k, .kn = kn, .v = v, .vn = vn, .flags = flags};
	struct bolt_node *n;
	uint32_t i;
	bool eq;
	int err;

	if ((err = tree_leaf(rc, t, k, kn, &n)))
		return err;
	i = node_search(n, k, kn, &eq);
	if (eq) {
		n->in[i] = in;
		return 0;
	}
	if ((err = node_insert_at(n, i, &in)))
		return err;
	if (n->n > BOLT_EAGER_SPLIT)
		return node_split_half(t, n);
	return 0;
}

int bolt_tree_del(const struct bolt_rctx *rc, struct bolt_tree *t,
		  const uint8_t *k, uint32_t kn)
{
	struct bolt_node *n;
	uint32_t i;
	bool eq;
	int err;

	if ((err = tree_leaf(rc, t, k, kn, &n)))
		return err;
	i = node_search(n, k, kn, &eq);
	if (eq)
		node_remove_at(n, i);
	return 0;
}

/* ---- commit: rebalance ---- */

static size_t node_size(const struct bolt_node *n)
{
	size_t sz = BOLT_PAGE_HDR;
	uint32_t i;

	for (i = 0; i < n->n; i++)
		sz += BOLT_ELEM_SIZE + n->in[i].kn +
		      (n->leaf ? n->in[i].vn : 0);
	return sz;
}

/* Free the committed page of a node that goes away; pgid 0 is new. */
static int node_release(struct bolt_tx *tx, struct bolt_node *n)
{
	return n->pgid ? bolt_tx_free_page(tx, n->pgid) : 0;
}

static bool node_underfull(struct bolt_tx *tx, const struct bolt_node *n)
{
	uint32_t min = n->leaf ? 1 : 2;

	return n->n < min || node_size(n) < tx->psz / 4;
}

/* Move all of src's inodes to the end of dst (its left sibling). */
static int node_absorb(struct bolt_node *dst, struct bolt_node *src)
{
	uint32_t i;
	int err = node_reserve(dst, dst->n + src->n);

	if (err)
		return err;
	memcpy(dst->in + dst->n, src->in, src->n * sizeof(*src->in));
	for (i = 0; !dst->leaf && i < src->n; i++)
		if (src->in[i].child)
			src->in[i].child->parent = dst;
	dst->n += src->n;
	src->n = 0;
	return 0;
}

/* Merge children of n that fell below a quarter page into a sibling. */
static int node_rebalance(struct bolt_tx *tx, struct bolt_node *n)
{
	uint32_t i;
	int err;

	if (n->leaf)
		return 0;
	for (i = 0; i < n->n; i++)
		if (n->in[i].child &&
		    (err = node_rebalance(tx, n->in[i].child)))
			return err;
	for (i = 0; i < n->n;) {
		struct bolt_node *c = n->in[i].child, *l, *r;
		uint32_t li;

		if (c && c->n == 0) {
			/* an empty node goes, even an only child: a parent
			 * emptied so is removed one level up */
			if ((err = node_release(tx, c)))
				return err;
			node_free(c);
			node_remove_at(n, i);
			continue;
		}
		if (!c || n->n < 2 || !node_underfull(tx, c)) {
			i++;
			continue;
		}
		li = i == 0 ? 0 : i - 1; /* merge (li + 1) into li */
		if ((err = node_child(&tx->rc, n, li, &l)) ||
		    (err = node_child(&tx->rc, n, li + 1, &r)))
			return err;
		if (l->leaf != r->leaf)
			return -EIO;
		if ((err = node_absorb(l, r)) || (err = node_release(tx, r)))
			return err;
		node_free(r);
		node_remove_at(n, li + 1);
		i = li + 1; /* the merged node is big enough or alone */
	}
	return 0;
}

int bolt_tree_rebalance(struct bolt_tx *tx, struct bolt_tree *t)
{
	int err;

	if (!t->root)
		return 0;
	if ((err = node_rebalance(tx, t->root)))
		return err;
	/* A branch root with one child gives way to it (bbolt too). */
	while (!t->root->leaf && t->root->n <= 1) {
		struct bolt_node *old = t->root, *c;

		if (old->n == 0) {
			old->leaf = true;
			break;
		}
		if ((err = node_child(&tx->rc, old, 0, &c)))
			return err;
		if ((err = node_release(tx, old)))
			return err;
		c->parent = NULL;
		old->in[0].child = NULL;
		t->root = c;
		node_free(old);
	}
	return 0;
}

/* ---- commit: write pages ---- */

static void node_write(const struct bolt_node *n, uint32_t from, uint32_t to,
		       uint8_t *p, uint64_t pgid, uint32_t np)
{
	uint8_t *e = p + BOLT_PAGE_HDR, *d;
	uint32_t i;

	bolt_st64(p + BOLT_PH_ID, pgid);
	bolt_st16(p + BOLT_PH_FLAGS,
		  n->leaf ? BOLT_FLAG_LEAF : BOLT_FLAG_BRANCH);
	bolt_st16(p + BOLT_PH_COUNT, (uint16_t)(to - from));
	bolt_st32(p + BOLT_PH_OVERFLOW, np ? np - 1 : 0);
	d = e + (size_t)(to - from) * BOLT_ELEM_SIZE;
	for (i = from; i < to; i++, e += BOLT_ELEM_SIZE) {
		const struct bolt_inode *in = &n->in[i];

		if (n->leaf) {
			bolt_st32(e + BOLT_LE_FLAGS, in->flags);
			bolt_st32(e + BOLT_LE_POS, (uint32_t)(d - e));
			bolt_st32(e + BOLT_LE_KSIZE, in->kn);
			bolt_st32(e + BOLT_LE_VSIZE, in->vn);
		} else {
			bolt_st32(e + BOLT_BE_POS, (uint32_t)(d - e));
			bolt_st32(e + BOLT_BE_KSIZE, in->kn);
			bolt_st64(e + BOLT_BE_PGID, in->pgid);
		}
		memcpy(d, in->k, in->kn);
		d += in->kn;
		if (n->leaf && in->vn) {
			memcpy(d, in->v, in->vn);
			d += in->vn;
		}
	}
}

int bolt_tree_inline(struct bolt_tx *tx, struct bolt_tree *t, uint64_t seq,
		     uint8_t **out, uint32_t *outn)
{
	size_t sz;
	uint32_t i;
	uint8_t *buf;
	int err;

	if ((err = tree_root(&tx->rc, t)))
		return err;
	if (!t->root->leaf)
		return 0;
	for (i = 0; i < t->root->n; i++)
		if (t->root->in[i].flags & BOLT_LEAF_BUCKET)
			return 0;
	sz = node_size(t->root);
	if (sz > tx->psz / 4)
		return 0;
	buf = bolt_calloc(1, BOLT_BUCKET_HDR + sz);
	if (!buf)
		return -ENOMEM;
	if ((err = node_release(tx, t->root))) {
		free(buf);
		return err;
	}
	t->root->pgid = 0;
	bolt_st64(buf + BOLT_BH_ROOT, 0);
	bolt_st64(buf + BOLT_BH_SEQ, seq);
	node_write(t->root, 0, t->root->n, buf + BOLT_BUCKET_HDR, 0, 0);
	*out = buf;
	*outn = (uint32_t)(BOLT_BUCKET_HDR + sz);
	return 1;
}

/* Spilled pieces of one node: (first key, page) each. */
struct spill_out {
	struct bolt_inode *in;
	uint32_t n, cap;
};

static int out_add(struct spill_out *o, const struct bolt_inode *in)
{
	if (o->n == o->cap) {
		uint32_t nc = o->cap ? o->cap * 2 : 8;
		struct bolt_inode *p = bolt_realloc(o->in, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		o->in = p;
		o->cap = nc;
	}
	o->in[o->n++] = *in;
	return 0;
}

/* End of the chunk starting at from: bbolt's splitIndex with a fill. */
static uint32_t chunk_end(struct bolt_tx *tx, const struct bolt_node *n,
			  uint32_t from)
{
	size_t thr = (size_t)tx->psz * BOLT_FILL_PCT / 100, sz = BOLT_PAGE_HDR,
	       rest = BOLT_PAGE_HDR;
	uint32_t i;

	for (i = from; i < n->n; i++)
		rest += BOLT_ELEM_SIZE + n->in[i].kn +
			(n->leaf ? n->in[i].vn : 0);
	if (rest <= tx->psz || n->n - from <= 2 * BOLT_MIN_KEYS)
		return n->n;
	for (i = from; i < n->n - BOLT_MIN_KEYS; i++) {
		size_t el = BOLT_ELEM_SIZE + n->in[i].kn +
			    (n->leaf ? n->in[i].vn : 0);

		if (i - from >= BOLT_MIN_KEYS && sz + el > thr)
			break;
		sz += el;
	}
	return i;
}

static int node_spill(struct bolt_tx *tx, struct bolt_node *n,
		      struct spill_out *out)
{
	uint32_t i, from, to;
	int err;

	if (!n->leaf) {
		/* children first; each child becomes one or more inodes */
		struct spill_out kids = {0};

		for (i = 0; i < n->n; i++) {
			struct bolt_inode cur = n->in[i];

			if (!cur.child) {
				err = out_add(&kids, &cur);
			} else {
				err = node_spill(tx, cur.child, &kids);
				node_free(cur.child);
				n->in[i].child = NULL;
			}
			if (err) {
				for (; i < n->n; i++)
					node_free(n->in[i].child),
						n->in[i].child = NULL;
				free(kids.in);
				return err;
			}
		}
		free(n->in);
		n->in = kids.in;
		n->n = kids.n;
		n->cap = kids.cap;
	}
	if ((err = node_release(tx, n)))
		return err;
	n->pgid = 0;
	for (from = 0; from < n->n || (from == 0 && n->n == 0); from = to) {
		struct bolt_inode piece = {0};
		size_t sz = BOLT_PAGE_HDR;
		uint32_t np;
		uint64_t pgid;
		uint8_t *buf;

		to = chunk_end(tx, n, from);
		for (i = from; i < to; i++)
			sz += BOLT_ELEM_SIZE + n->in[i].kn +
			      (n->leaf ? n->in[i].vn : 0);
		np = (uint32_t)((sz + tx->psz - 1) / tx->psz);
		if ((err = bolt_tx_alloc(tx, np, &pgid)))
			return err;
		buf = bolt_calloc(np, tx->psz);
		if (!buf)
			return -ENOMEM;
		node_write(n, from, to, buf, pgid, np);
		if ((err = bolt_tx_dirty(tx, pgid, np, buf)))
			return err;
		if (n->n) {
			piece.k = n->in[from].k;
			piece.kn = n->in[from].kn;
		}
		piece.pgid = pgid;
		if ((err = out_add(out, &piece)))
			return err;
		if (n->n == 0)
			break;
	}
	return 0;
}

int bolt_tree_spill(struct bolt_tx *tx, struct bolt_tree *t,
		    uint64_t *root_pgid)
{
	struct spill_out out = {0};
	int err;

	if ((err = tree_root(&tx->rc, t)))
		return err;
	for (;;) {
		out.n = 0;
		err = node_spill(tx, t->root, &out);
		if (err)
			break;
		if (out.n == 1) {
			*root_pgid = out.in[0].pgid;
			break;
		}
		/* The root split: a new root above the pieces, spilled too. */
		node_free(t->root);
		t->root = node_new(false, NULL);
		if (!t->root) {
			err = -ENOMEM;
			break;
		}
		t->root->in = out.in;
		t->root->n = out.n;
		t->root->cap = out.cap;
		out.in = NULL;
		out.cap = 0;
	}
	free(out.in);
	return err;
}
