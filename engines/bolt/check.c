/* bolt/check.c: the consistency checker (bbolt's Tx.Check, stricter).
 *
 * What a sound file satisfies (each violation is reported):
 * 1. The current meta page (txid % 2) decodes with a valid checksum and
 *    equals the engine's meta; the other one, if valid and trusted
 *    (format.h's open rule), is older; if the current one is unsynced,
 *    the other is the last synced meta S (the slot rule).
 * 2. Every page in [0, high water) is used exactly once: a meta page (0,
 *    1), the freelist page(s), a page listed as free, or a page of a
 *    tree (bucket trees reached through the root bucket, with overflow).
 * 3. Keys are strictly ascending in every page, and the keys under
 *    branch element i lie in [key i, key i+1).
 * 4. The freelist on disk lists exactly the engine's free and pending
 *    pages.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engines/bolt/bolt_int.h"

struct ck {
	const struct bolt_rctx *rc;
	uint8_t *seen;
	char *err;
	size_t errlen;
};

static int ck_fail(struct ck *c, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return -EIO;
}

static int ck_mark(struct ck *c, uint64_t pgid, uint64_t np, const char *what)
{
	uint64_t i;

	for (i = pgid; i < pgid + np; i++) {
		if (i >= c->rc->hw)
			return ck_fail(c,
				       "%s page %" PRIu64
				       " beyond high water %" PRIu64,
				       what, i, c->rc->hw);
		if (c->seen[i]++)
			return ck_fail(c, "page %" PRIu64 " (%s) used twice", i,
				       what);
	}
	return 0;
}

struct bound {
	const uint8_t *k;
	uint32_t kn;
};

static int ck_tree(struct ck *c, const struct bolt_root *r, uint64_t pgid,
		   struct bound lo, struct bound hi, int depth);

/* One page (or inline page) and, below it, its subtree. */
static int ck_page(struct ck *c, const struct bolt_root *r, const uint8_t *p,
		   size_t span, uint64_t pgid, struct bound lo, struct bound hi,
		   int depth)
{
	uint16_t fl = bolt_ld16(p + BOLT_PH_FLAGS);
	int i, n = bolt_ld16(p + BOLT_PH_COUNT), err;
	bool leaf = (fl & BOLT_FLAG_LEAF) != 0;
	struct bound prev = {NULL, 0};

	if (!(fl & (BOLT_FLAG_LEAF | BOLT_FLAG_BRANCH)))
		return ck_fail(c, "page %" PRIu64 ": flags 0x%x not a node",
			       pgid, fl);
	if (pgid && bolt_ld64(p + BOLT_PH_ID) != pgid)
		return ck_fail(c, "page %" PRIu64 ": header id %" PRIu64, pgid,
			       bolt_ld64(p + BOLT_PH_ID));
	if (!leaf && n == 0)
		return ck_fail(c, "page %" PRIu64 ": empty branch", pgid);
	for (i = 0; i < n; i++) {
		const uint8_t *k, *v = NULL;
		uint32_t kn, vn = 0, efl = 0;
		uint64_t child = 0;
		struct bound nlo, nhi;

		err = bolt_elem(p, span, i, leaf, &k, &kn, &v, &vn, &efl,
				&child);
		if (err)
			return ck_fail(c,
				       "page %" PRIu64 " element %d outside "
				       "the page",
				       pgid, i);
		if (prev.k && bolt_keycmp(prev.k, prev.kn, k, kn) >= 0)
			return ck_fail(c,
				       "page %" PRIu64 ": keys out of order "
				       "at element %d",
				       pgid, i);
		if (lo.k && bolt_keycmp(k, kn, lo.k, lo.kn) < 0)
			return ck_fail(c,
				       "page %" PRIu64 ": key %d below its "
				       "parent's bound",
				       pgid, i);
		if (hi.k && bolt_keycmp(k, kn, hi.k, hi.kn) >= 0)
			return ck_fail(c,
				       "page %" PRIu64 ": key %d above its "
				       "parent's bound",
				       pgid, i);
		prev.k = k;
		prev.kn = kn;
		if (leaf) {
			struct bolt_root sub;

			if (!(efl & BOLT_LEAF_BUCKET))
				continue;
			if (bolt_bucket_root(v, vn, &sub, NULL))
				return ck_fail(c,
					       "page %" PRIu64 ": bad bucket "
					       "value at %d",
					       pgid, i);
			err = ck_tree(c, &sub, sub.pgid, (struct bound){0},
				      (struct bound){0}, depth + 1);
			if (err)
				return err;
			continue;
		}
		nlo.k = k;
		nlo.kn = kn;
		nhi = hi;
		if (i + 1 < n) {
			const uint8_t *k2;
			uint32_t kn2;

			if (bolt_elem(p, span, i + 1, false, &k2, &kn2, NULL,
				      NULL, NULL, NULL))
				return ck_fail(c,
					       "page %" PRIu64 " element %d "
					       "outside the page",
					       pgid, i + 1);
			nhi.k = k2;
			nhi.kn = kn2;
		}
		if ((err = ck_tree(c, r, child, nlo, nhi, depth + 1)))
			return err;
	}
	return 0;
}

static int ck_tree(struct ck *c, const struct bolt_root *r, uint64_t pgid,
		   struct bound lo, struct bound hi, int depth)
{
	const uint8_t *p;
	size_t span;
	int err;

	if (depth > BOLT_MAX_DEPTH)
		return ck_fail(c, "tree deeper than %d", BOLT_MAX_DEPTH);
	if (pgid == 0 && r->inl)
		return ck_page(c, r, r->inl, r->inl_len, 0, lo, hi, depth);
	if (bolt_page(c->rc, pgid, &p, &span))
		return ck_fail(c, "page %" PRIu64 " outside the file", pgid);
	if ((err = ck_mark(c, pgid, span / c->rc->psz, "tree")))
		return err;
	return ck_page(c, r, p, span, pgid, lo, hi, depth);
}

int bolt_mark_reachable(const struct bolt_rctx *rc, uint64_t root,
			uint8_t *seen, char *err, size_t errlen)
{
	struct ck c = {rc, seen, err, errlen};
	struct bolt_root r = {.pgid = root};

	return ck_tree(&c, &r, root, (struct bound){0}, (struct bound){0}, 0);
}

int bolt_check_tree(const struct bolt_rctx *rc, const struct bolt_root *r,
		    uint8_t *seen, char *err, size_t errlen)
{
	struct ck c = {rc, seen, err, errlen};

	return ck_tree(&c, r, r->pgid, (struct bound){0}, (struct bound){0}, 0);
}

static int ck_metas(struct ck *c, const struct engine *e)
{
	const uint8_t *mine = c->rc->base + (e->meta.txid % 2) * e->psz;
	const uint8_t *other = c->rc->base + ((e->meta.txid + 1) % 2) * e->psz;
	const uint8_t *d = mine + BOLT_PAGE_HDR;

	if (bolt_ld32(d + BOLT_M_MAGIC) != BOLT_MAGIC ||
	    bolt_ld64(d + BOLT_M_CHECKSUM) != bolt_fnv64a(d, BOLT_M_CHECKSUM))
		return ck_fail(c, "meta page %" PRIu64 " invalid",
			       e->meta.txid % 2);
	if (bolt_ld64(d + BOLT_M_TXID) != e->meta.txid ||
	    bolt_ld64(d + BOLT_M_ROOT) != e->meta.root ||
	    bolt_ld64(d + BOLT_M_PGID) != e->meta.pgid ||
	    bolt_ld64(d + BOLT_M_FREELIST) != e->meta.freelist)
		return ck_fail(c, "meta page differs from the engine's meta");
	if (bolt_ld32(d + BOLT_M_FLAGS) != e->meta.flags)
		return ck_fail(c, "meta page flags differ from the engine's");
	d = other + BOLT_PAGE_HDR;
	if (bolt_ld32(d + BOLT_M_MAGIC) == BOLT_MAGIC &&
	    bolt_ld64(d + BOLT_M_CHECKSUM) == bolt_fnv64a(d, BOLT_M_CHECKSUM)) {
		struct bolt_meta o = {.flags = bolt_ld32(d + BOLT_M_FLAGS),
				      .txid = bolt_ld64(d + BOLT_M_TXID)};

		if (o.txid >= e->meta.txid && bolt_meta_trusted(&o))
			return ck_fail(c, "the other meta page is newer");
		if ((e->meta.flags & BOLT_MF_UNSYNCED) &&
		    (o.flags || o.txid != e->sy.txid))
			return ck_fail(c,
				       "unsynced meta %" PRIu64 " but the "
				       "other is not synced meta %" PRIu64,
				       e->meta.txid, e->sy.txid);
	} else if (e->meta.flags & BOLT_MF_UNSYNCED) {
		return ck_fail(c, "unsynced meta %" PRIu64 " and no synced one",
			       e->meta.txid);
	}
	return 0;
}

/* The freelist page's ids into ids[] (malloc'd), marking its pages. */
static int ck_freelist(struct ck *c, const struct engine *e, uint64_t **ids,
		       uint64_t *n)
{
	const uint8_t *p;
	size_t span, off = BOLT_PAGE_HDR;
	uint64_t cnt, i;
	int err;

	*ids = NULL;
	*n = 0;
	if (e->meta.freelist == BOLT_PGID_NONE)
		return 0;
	if (bolt_page(c->rc, e->meta.freelist, &p, &span) ||
	    !(bolt_ld16(p + BOLT_PH_FLAGS) & BOLT_FLAG_FREELIST))
		return ck_fail(c, "freelist page %" PRIu64 " invalid",
			       e->meta.freelist);
	if ((err = ck_mark(c, e->meta.freelist, span / e->psz, "freelist")))
		return err;
	cnt = bolt_ld16(p + BOLT_PH_COUNT);
	if (cnt == BOLT_FREELIST_ESCAPE) {
		cnt = bolt_ld64(p + off);
		off += 8;
	}
	if (cnt > (span - off) / 8)
		return ck_fail(c, "freelist count %" PRIu64 " too big", cnt);
	*ids = bolt_malloc((cnt + 1) * sizeof(**ids));
	if (!*ids)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		(*ids)[i] = bolt_ld64(p + off + 8 * i);
		if (i && (*ids)[i] <= (*ids)[i - 1])
			return ck_fail(c, "freelist not sorted at %" PRIu64, i);
		if ((err = ck_mark(c, (*ids)[i], 1, "free")))
			return err;
	}
	*n = cnt;
	return 0;
}

int bolt_check(struct engine *e, char *err, size_t errlen)
{
	struct bolt_rctx rc = {e->map->base, e->map->len, e->psz, e->meta.pgid};
	struct ck c = {&rc, NULL, err, errlen};
	uint64_t *disk = NULL, nd = 0, *mem = NULL, nm, i;
	int rcode;

	if (err && errlen)
		err[0] = '\0';
	c.seen = bolt_calloc(rc.hw ? rc.hw : 1, 1);
	nm = bolt_fl_count(&e->fl);
	mem = bolt_malloc((nm + 1) * sizeof(*mem));
	if (!c.seen || !mem) {
		rcode = -ENOMEM;
		goto out;
	}
	bolt_fl_copyall(&e->fl, mem);
	c.seen[0] = c.seen[1] = 1;
	if ((rcode = ck_metas(&c, e)) ||
	    (rcode = ck_freelist(&c, e, &disk, &nd)) ||
	    (rcode = bolt_mark_reachable(&rc, e->meta.root, c.seen, err,
					 errlen)))
		goto out;
	if (e->meta.freelist == BOLT_PGID_NONE) {
		for (i = 0; i < nm; i++)
			if ((rcode = ck_mark(&c, mem[i], 1, "free")))
				goto out;
	} else if (nd != nm || (nm && memcmp(disk, mem, nm * sizeof(*mem)))) {
		rcode = ck_fail(&c,
				"freelist on disk (%" PRIu64 " ids) differs "
				"from memory (%" PRIu64 ")",
				nd, nm);
		goto out;
	}
	for (i = 0; i < rc.hw; i++)
		if (c.seen[i] != 1) {
			rcode = ck_fail(&c,
					"page %" PRIu64 " unreachable "
					"(leaked)",
					i);
			goto out;
		}
out:
	free(c.seen);
	free(mem);
	free(disk);
	return rcode;
}
