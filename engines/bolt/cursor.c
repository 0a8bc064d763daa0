/* bolt/cursor.c: the read path over committed pages (a view's mapping).
 *
 * Invariants:
 * 1. Every page or element touched is bounds-checked against the mapping
 *    and the meta's high water: a damaged file gives -EIO, never a fault.
 * 2. A cursor's stack holds the path from the root to a leaf; depth 0
 *    means it is past either end (and stays there until repositioned).
 * 3. Keys and values returned point into the mapping: valid while the
 *    view (which holds a reference on the mapping) is open.
 */
#include <errno.h>
#include <string.h>

#include "engines/bolt/bolt_int.h"

int bolt_keycmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

int bolt_page(const struct bolt_rctx *rc, uint64_t pgid, const uint8_t **p,
	      size_t *span)
{
	const uint8_t *pg;
	uint64_t ov;

	if (pgid < 2 || pgid >= rc->hw ||
	    (pgid + 1) * (uint64_t)rc->psz > rc->len)
		return -EIO;
	pg = rc->base + pgid * rc->psz;
	ov = bolt_ld32(pg + BOLT_PH_OVERFLOW);
	if (pgid + ov >= rc->hw || (pgid + 1 + ov) * rc->psz > rc->len)
		return -EIO;
	*p = pg;
	*span = (size_t)(1 + ov) * rc->psz;
	return 0;
}

int bolt_elem(const uint8_t *p, size_t span, int i, bool leaf,
	      const uint8_t **k, uint32_t *kn, const uint8_t **v, uint32_t *vn,
	      uint32_t *flags, uint64_t *child)
{
	size_t off = BOLT_PAGE_HDR + (size_t)i * BOLT_ELEM_SIZE;
	const uint8_t *e = p + off;
	uint64_t pos, ks, vs = 0;

	if (off + BOLT_ELEM_SIZE > span)
		return -EIO;
	if (leaf) {
		pos = bolt_ld32(e + BOLT_LE_POS);
		ks = bolt_ld32(e + BOLT_LE_KSIZE);
		vs = bolt_ld32(e + BOLT_LE_VSIZE);
		if (flags)
			*flags = bolt_ld32(e + BOLT_LE_FLAGS);
	} else {
		pos = bolt_ld32(e + BOLT_BE_POS);
		ks = bolt_ld32(e + BOLT_BE_KSIZE);
		if (child)
			*child = bolt_ld64(e + BOLT_BE_PGID);
	}
	if (off + pos + ks + vs > span)
		return -EIO;
	*k = e + pos;
	*kn = (uint32_t)ks;
	if (v) {
		*v = e + pos + ks;
		*vn = (uint32_t)vs;
	}
	return 0;
}

int bolt_bucket_root(const uint8_t *v, uint32_t vn, struct bolt_root *r,
		     uint64_t *seq)
{
	if (vn < BOLT_BUCKET_HDR)
		return -EIO;
	memset(r, 0, sizeof(*r));
	r->pgid = bolt_ld64(v + BOLT_BH_ROOT);
	if (seq)
		*seq = bolt_ld64(v + BOLT_BH_SEQ);
	if (r->pgid == 0) {
		if (vn < BOLT_BUCKET_HDR + BOLT_PAGE_HDR)
			return -EIO;
		r->inl = v + BOLT_BUCKET_HDR;
		r->inl_len = vn - BOLT_BUCKET_HDR;
		if (!(bolt_ld16(r->inl + BOLT_PH_FLAGS) & BOLT_FLAG_LEAF))
			return -EIO;
	}
	return 0;
}

void bolt_cursor_init(struct bolt_cursor *c, const struct bolt_rctx *rc,
		      const struct bolt_root *root)
{
	c->rc = *rc;
	c->root = *root;
	c->depth = 0;
}

/* Push page pgid (0 with an inline root: the inline page). */
static int cur_push(struct bolt_cursor *c, uint64_t pgid, bool inl)
{
	const uint8_t *p;
	size_t span;
	uint16_t fl;
	int err;

	if (c->depth >= BOLT_MAX_DEPTH)
		return -EIO;
	if (inl) {
		p = c->root.inl;
		span = c->root.inl_len;
	} else if ((err = bolt_page(&c->rc, pgid, &p, &span))) {
		return err;
	}
	fl = bolt_ld16(p + BOLT_PH_FLAGS);
	if (!(fl & (BOLT_FLAG_LEAF | BOLT_FLAG_BRANCH)))
		return -EIO;
	c->st[c->depth].p = p;
	c->st[c->depth].span = span;
	c->st[c->depth].n = bolt_ld16(p + BOLT_PH_COUNT);
	c->st[c->depth].leaf = (fl & BOLT_FLAG_LEAF) != 0;
	c->st[c->depth].i = 0;
	if (!c->st[c->depth].leaf && c->st[c->depth].n == 0)
		return -EIO; /* an empty branch has no child to go to */
	c->depth++;
	return 0;
}

static int cur_push_root(struct bolt_cursor *c)
{
	c->depth = 0;
	return cur_push(c, c->root.pgid, c->root.inl != NULL);
}

static int cur_child(struct bolt_cursor *c, uint64_t *child)
{
	const uint8_t *k;
	uint32_t kn;
	int d = c->depth - 1;

	return bolt_elem(c->st[d].p, c->st[d].span, c->st[d].i, false, &k, &kn,
			 NULL, NULL, NULL, child);
}

/* From the top of the stack down to a leaf, always first or last child. */
static int cur_descend(struct bolt_cursor *c, bool last)
{
	uint64_t child;
	int err;

	for (;;) {
		int d = c->depth - 1;

		if (last)
			c->st[d].i = c->st[d].n - 1;
		else
			c->st[d].i = 0;
		if (c->st[d].leaf)
			return 0;
		if ((err = cur_child(c, &child)) ||
		    (err = cur_push(c, child, false)))
			return err;
	}
}

/* One element forward, or back: up while the frame is spent, then down
 * to the first (last) element of the next (previous) subtree. */
static int cur_step(struct bolt_cursor *c, bool back)
{
	int err;

	for (;;) {
		uint64_t child;
		int d;

		if (c->depth == 0)
			return 0;
		d = c->depth - 1;
		if (back ? c->st[d].i <= 0 || c->st[d].i > c->st[d].n
			 : c->st[d].i + 1 >= c->st[d].n) {
			c->depth--;
			continue;
		}
		c->st[d].i += back ? -1 : 1;
		if (c->st[d].leaf)
			return 1;
		if ((err = cur_child(c, &child)) ||
		    (err = cur_push(c, child, false)) ||
		    (err = cur_descend(c, back)))
			return err;
		d = c->depth - 1;
		if (c->st[d].n > 0)
			return 1;
		c->st[d].i = 0; /* an empty leaf: step up */
	}
}

int bolt_cursor_next(struct bolt_cursor *c)
{
	return cur_step(c, false);
}

int bolt_cursor_prev(struct bolt_cursor *c)
{
	return cur_step(c, true);
}

int bolt_cursor_first(struct bolt_cursor *c)
{
	int err = cur_push_root(c);

	if (err || (err = cur_descend(c, false)))
		return err;
	if (c->st[c->depth - 1].n > 0)
		return 1;
	return bolt_cursor_next(c);
}

int bolt_cursor_last(struct bolt_cursor *c)
{
	int err = cur_push_root(c);

	if (err || (err = cur_descend(c, true)))
		return err;
	if (c->st[c->depth - 1].n > 0)
		return 1;
	c->st[c->depth - 1].i = 0;
	return bolt_cursor_prev(c);
}

/* Index of the first element with key >= k (leaf), or of the last with
 * key <= k, at least 0 (branch). */
static int cur_search(struct bolt_cursor *c, const void *k, size_t kn, int *idx)
{
	int d = c->depth - 1, lo = 0, hi = c->st[d].n, err;
	bool leaf = c->st[d].leaf;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		const uint8_t *mk;
		uint32_t mkn;

		err = bolt_elem(c->st[d].p, c->st[d].span, mid, leaf, &mk, &mkn,
				NULL, NULL, NULL, NULL);
		if (err)
			return err;
		if (bolt_keycmp(mk, mkn, k, kn) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!leaf) {
		/* lo: first >= k; the child is lo if equal, else lo - 1 */
		if (lo < c->st[d].n) {
			const uint8_t *mk;
			uint32_t mkn;

			err = bolt_elem(c->st[d].p, c->st[d].span, lo, false,
					&mk, &mkn, NULL, NULL, NULL, NULL);
			if (err)
				return err;
			if (bolt_keycmp(mk, mkn, k, kn) == 0) {
				*idx = lo;
				return 0;
			}
		}
		lo = lo > 0 ? lo - 1 : 0;
	}
	*idx = lo;
	return 0;
}

int bolt_cursor_seek(struct bolt_cursor *c, const void *k, size_t kn)
{
	int err = cur_push_root(c);

	if (err)
		return err;
	for (;;) {
		int d = c->depth - 1, i;
		uint64_t child;

		if ((err = cur_search(c, k, kn, &i)))
			return err;
		c->st[d].i = i;
		if (c->st[d].leaf) {
			if (i < c->st[d].n)
				return 1;
			c->st[d].i = c->st[d].n - 1;
			return bolt_cursor_next(c);
		}
		if ((err = cur_child(c, &child)) ||
		    (err = cur_push(c, child, false)))
			return err;
	}
}

int bolt_cursor_cur(struct bolt_cursor *c, const uint8_t **k, uint32_t *kn,
		    const uint8_t **v, uint32_t *vn, uint32_t *flags)
{
	int d = c->depth - 1;

	if (c->depth == 0)
		return -EINVAL;
	return bolt_elem(c->st[d].p, c->st[d].span, c->st[d].i, true, k, kn, v,
			 vn, flags, NULL);
}

int bolt_tree_get(const struct bolt_rctx *rc, const struct bolt_root *root,
		  const void *k, size_t kn, const uint8_t **v, uint32_t *vn,
		  uint32_t *flags)
{
	struct bolt_cursor c;
	const uint8_t *ck;
	uint32_t ckn;
	int rcode;

	bolt_cursor_init(&c, rc, root);
	rcode = bolt_cursor_seek(&c, k, kn);
	if (rcode <= 0)
		return rcode == 0 ? -ENOENT : rcode;
	rcode = bolt_cursor_cur(&c, &ck, &ckn, v, vn, flags);
	if (rcode)
		return rcode;
	return bolt_keycmp(ck, ckn, k, kn) == 0 ? 0 : -ENOENT;
}

int bolt_bucket_find(const struct bolt_rctx *rc, uint64_t root_pgid,
		     const char *name, struct bolt_root *r)
{
	struct bolt_root root = {.pgid = root_pgid};
	const uint8_t *v;
	uint32_t vn, flags;
	int err;

	err = bolt_tree_get(rc, &root, name, strlen(name), &v, &vn, &flags);
	if (err)
		return err;
	if (!(flags & BOLT_LEAF_BUCKET))
		return -ENOENT;
	return bolt_bucket_root(v, vn, r, NULL);
}
