/* bolt/commit.c: committing the batch (engines/bolt/bolt.c has the
 * invariants). One commit, in order:
 *   0. take the next txid of the parity not holding the last synced
 *      meta S (format.h's slot rule);
 *   1. release pages no reader can see any more (freelist pending) and
 *      pinned pages of synced trees older than S (bolt.c invariant 6);
 *   2. per touched bucket: rebalance, then inline it or spill its nodes to
 *      new pages; put each bucket's new value into the root bucket;
 *   3. spill the root bucket; free the old freelist page, write the new
 *      one (free + pending ids);
 *   4. grow the file if the high water passed its end (map it anew);
 *   5. write the dirty pages in page order, contiguous runs in one
 *      pwritev; fdatasync (sync);
 *   6. write meta txid % 2, flagged unsynced unless sync; fdatasync
 *      (sync);
 *   7. publish the meta and mapping (under mu), end the batch; with sync
 *      it is the new S.
 * Any error before 6 undoes the allocations and frees of 2..3 and drops
 * the batch: the committed state is unchanged. An error in 6 may leave
 * the new meta on disk: the engine refuses commits until reopened.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/log.h"
#include "engines/bolt/bolt_int.h"

#define BOLT_IOV_MAX 512

int bolt_tx_alloc(struct bolt_tx *tx, uint32_t np, uint64_t *pgid)
{
	if (bolt_fl_alloc(tx->fl, np, pgid) == 0) {
		if (tx->nallocs == tx->capallocs) {
			size_t nc = tx->capallocs ? tx->capallocs * 2 : 64;
			void *p = bolt_realloc(tx->allocs,
					       nc * sizeof(*tx->allocs));

			if (!p) {
				bolt_fl_unalloc(tx->fl, *pgid, np);
				return -ENOMEM;
			}
			tx->allocs = p;
			tx->capallocs = nc;
		}
		tx->allocs[tx->nallocs].pgid = *pgid;
		tx->allocs[tx->nallocs].np = np;
		tx->nallocs++;
		return 0;
	}
	*pgid = tx->hw;
	tx->hw += np;
	return 0;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Does page pgid belong to the last synced tree S? Below S's high water
 * and not free in S. A node's pages were allocated together, so its
 * first page answers for all of them. */
static bool tx_in_synced(const struct bolt_tx *tx, uint64_t pgid)
{
	const struct bolt_synced *sy = tx->sy;

	return pgid < sy->hw && (!sy->nfree ||
				 !bsearch(&pgid, sy->free, sy->nfree,
					  sizeof(pgid), u64_cmp));
}

int bolt_tx_free_page(struct bolt_tx *tx, uint64_t pgid)
{
	const uint8_t *p;
	size_t span;
	int err = bolt_page(&tx->rc, pgid, &p, &span);

	if (err)
		return err;
	/* invariant 6 (bolt.c): S's pages wait for the next synced commit;
	 * pages written since S can be rewritten as soon as no reader
	 * sees them, so the file grows by at most S's tree */
	return bolt_fl_free(tx->fl, tx->txid, pgid, (uint32_t)(span / tx->psz),
			    tx_in_synced(tx, pgid));
}

int bolt_tx_dirty(struct bolt_tx *tx, uint64_t pgid, uint32_t np, uint8_t *buf)
{
	if (tx->ndirty == tx->capdirty) {
		size_t nc = tx->capdirty ? tx->capdirty * 2 : 64;
		struct bolt_dirty *d = bolt_realloc(tx->dirty, nc * sizeof(*d));

		if (!d) {
			free(buf);
			return -ENOMEM;
		}
		tx->dirty = d;
		tx->capdirty = nc;
	}
	tx->dirty[tx->ndirty].pgid = pgid;
	tx->dirty[tx->ndirty].np = np;
	tx->dirty[tx->ndirty].buf = buf;
	tx->ndirty++;
	return 0;
}

static void tx_end(struct bolt_tx *tx, bool failed)
{
	size_t i;

	if (failed) {
		for (i = 0; i < tx->nallocs; i++)
			bolt_fl_unalloc(tx->fl, tx->allocs[i].pgid,
					tx->allocs[i].np);
		bolt_fl_rollback(tx->fl, tx->txid);
	}
	for (i = 0; i < tx->ndirty; i++)
		free(tx->dirty[i].buf);
	free(tx->dirty);
	free(tx->allocs);
}

/* The new value of each touched bucket, into the root bucket's tree. */
static int commit_buckets(struct engine *e, struct bolt_tx *tx,
			  struct bolt_tree *rt)
{
	size_t i;
	int err;

	for (i = 0; i < e->nwb; i++) {
		struct bolt_wbucket *w = &e->wb[i];
		uint8_t *val = NULL;
		uint32_t vn = 0;
		uint64_t root;

		if (!w->tree.root && !w->created)
			continue; /* looked up only: its value is unchanged */
		if ((err = bolt_tree_rebalance(tx, &w->tree)))
			return err;
		err = bolt_tree_inline(tx, &w->tree, w->seq, &val, &vn);
		if (err < 0)
			return err;
		if (err == 0) {
			if ((err = bolt_tree_spill(tx, &w->tree, &root)))
				return err;
			vn = BOLT_BUCKET_HDR;
			if (!(val = bolt_malloc(vn)))
				return -ENOMEM;
			bolt_st64(val + BOLT_BH_ROOT, root);
			bolt_st64(val + BOLT_BH_SEQ, w->seq);
		}
		if ((err = bolt_batch_keep(e, val))) {
			free(val);
			return err;
		}
		err = bolt_tree_put(&tx->rc, rt, (const uint8_t *)w->name,
				    (uint32_t)strlen(w->name), val, vn,
				    BOLT_LEAF_BUCKET);
		if (err)
			return err;
	}
	return 0;
}

/* Allocate and fill the freelist page(s): free + pending ids. */
static int commit_freelist(struct engine *e, struct bolt_tx *tx, uint64_t *pgid)
{
	size_t cnt = bolt_fl_count(&e->fl), sz, off = BOLT_PAGE_HDR;
	uint32_t np;
	uint8_t *buf;
	uint64_t *ids;
	int err;

	if (e->meta.freelist != BOLT_PGID_NONE &&
	    (err = bolt_tx_free_page(tx, e->meta.freelist)))
		return err;
	cnt = bolt_fl_count(&e->fl);
	sz = BOLT_PAGE_HDR + 8 * (cnt + 1);
	np = (uint32_t)((sz + tx->psz - 1) / tx->psz);
	if ((err = bolt_tx_alloc(tx, np, pgid)))
		return err;
	cnt = bolt_fl_count(&e->fl); /* the allocation may have taken some */
	buf = bolt_calloc(np, tx->psz);
	ids = bolt_malloc((cnt + 1) * sizeof(*ids));
	if (!buf || !ids) {
		free(buf);
		free(ids);
		return -ENOMEM;
	}
	bolt_fl_copyall(&e->fl, ids);
	bolt_st64(buf + BOLT_PH_ID, *pgid);
	bolt_st16(buf + BOLT_PH_FLAGS, BOLT_FLAG_FREELIST);
	bolt_st32(buf + BOLT_PH_OVERFLOW, np - 1);
	if (cnt >= BOLT_FREELIST_ESCAPE) {
		bolt_st16(buf + BOLT_PH_COUNT, BOLT_FREELIST_ESCAPE);
		bolt_st64(buf + off, cnt);
		off += 8;
	} else {
		bolt_st16(buf + BOLT_PH_COUNT, (uint16_t)cnt);
	}
	for (size_t i = 0; i < cnt; i++)
		bolt_st64(buf + off + 8 * i, ids[i]);
	free(ids);
	return bolt_tx_dirty(tx, *pgid, np, buf);
}

static int dirty_cmp(const void *a, const void *b)
{
	const struct bolt_dirty *x = a, *y = b;

	return x->pgid < y->pgid ? -1 : x->pgid > y->pgid;
}

/* Dirty pages in page order, contiguous runs in one pwritev each. */
static int commit_write(struct engine *e, struct bolt_tx *tx)
{
	struct iovec iov[BOLT_IOV_MAX];
	size_t i = 0;
	int err;

	qsort(tx->dirty, tx->ndirty, sizeof(*tx->dirty), dirty_cmp);
	while (i < tx->ndirty) {
		uint64_t start = tx->dirty[i].pgid, next = start;
		int cnt = 0;

		while (i < tx->ndirty && cnt < BOLT_IOV_MAX &&
		       tx->dirty[i].pgid == next) {
			iov[cnt].iov_base = tx->dirty[i].buf;
			iov[cnt].iov_len = (size_t)tx->dirty[i].np * tx->psz;
			next += tx->dirty[i].np;
			cnt++;
			i++;
		}
		err = bolt_f_writev(e, iov, cnt, (off_t)(start * tx->psz));
		if (err)
			return err;
	}
	return 0;
}

/* Grow the file (and map it anew) to hold hw pages. */
static int commit_grow(struct engine *e, uint64_t hw, struct bolt_map **nm,
		       uint64_t *nsize)
{
	uint64_t need = hw * e->psz, sz;
	int err;

	*nm = NULL;
	*nsize = e->file_size;
	if (need <= e->file_size)
		return 0;
	sz = bolt_grow_size(need);
	if (e->fops->ftruncate(e->fops->ctx, e->fd, (off_t)sz) < 0)
		return -errno;
	if ((err = bolt_map_new(e->fd, (size_t)sz, nm)))
		return err;
	*nsize = sz;
	return 0;
}

static int commit_meta(struct engine *e, const struct bolt_meta *m, bool sync)
{
	uint8_t *page = bolt_calloc(1, e->psz);
	int err;

	if (!page)
		return -ENOMEM;
	bolt_meta_encode(m, page, m->txid % 2);
	err = bolt_f_write(e, page, e->psz, (off_t)((m->txid % 2) * e->psz));
	free(page);
	/* the meta is durable only after this sync (invariant 1) */
	if (!err && sync)
		err = bolt_f_sync(e);
	return err;
}

int bolt_seal(struct engine *e)
{
	struct bolt_meta m = e->meta;
	int err;

	/* the unsynced commits' pages (and meta) durable first */
	if ((err = bolt_f_sync(e)))
		return err;
	m.flags = bolt_meta_flags(true);
	/* its own page: the one not holding S, so a torn write falls back
	 * to S */
	if ((err = commit_meta(e, &m, true))) {
		e->poisoned = true;
		log_error("bolt: %s: sealing meta %llu failed (%d); no more "
			  "commits until it is reopened",
			  e->path, (unsigned long long)m.txid, err);
		return err;
	}
	pthread_mutex_lock(&e->mu);
	e->meta = m;
	pthread_mutex_unlock(&e->mu);
	e->unsynced = false;
	return 0;
}

/* Did the batch touch anything (beyond looking buckets up)? */
static bool batch_changes(const struct engine *e)
{
	size_t i;

	for (i = 0; i < e->nwb; i++)
		if (e->wb[i].tree.root || e->wb[i].created)
			return true;
	return false;
}

int bolt_commit(struct engine *e, bool sync)
{
	struct bolt_tx tx = {0};
	struct bolt_tree rt = {0};
	struct bolt_meta m = e->meta;
	struct bolt_map *nm = NULL, *old;
	uint64_t nsize, minr;
	int err;

	if (!e->map || e->poisoned) {
		bolt_batch_reset(e);
		return -EIO; /* a failed reopen after defrag, a failed meta */
	}
	if (!batch_changes(e)) {
		bolt_batch_reset(e);
		/* the newest meta says unsynced: rewrite it synced */
		if (sync && e->unsynced) {
			if ((err = bolt_seal(e)))
				return err;
			bolt_synced_set(e);
		}
		return 0;
	}
	pthread_mutex_lock(&e->mu);
	minr = bolt_readers_min(e);
	pthread_mutex_unlock(&e->mu);
	tx.rc = bolt_e_rctx(e);
	tx.psz = e->psz;
	/* format.h's slot rule: never the meta page of S */
	tx.txid = e->meta.txid + 1;
	if (tx.txid % 2 == e->sy.txid % 2)
		tx.txid++;
	tx.hw = e->meta.pgid;
	tx.fl = &e->fl;
	tx.sy = &e->sy;
	/* invariants 2 and 6: reuse what no reader can see any more and no
	 * power loss can bring back */
	if ((err = bolt_fl_release(&e->fl, minr, e->sy.txid)))
		goto fail;
	rt.croot.pgid = e->meta.root;
	if ((err = commit_buckets(e, &tx, &rt)) ||
	    (err = bolt_tree_rebalance(&tx, &rt)) ||
	    (err = bolt_tree_spill(&tx, &rt, &m.root)) ||
	    (err = commit_freelist(e, &tx, &m.freelist)))
		goto fail;
	m.pgid = tx.hw;
	m.txid = tx.txid;
	m.flags = bolt_meta_flags(sync);
	if ((err = commit_grow(e, tx.hw, &nm, &nsize)) ||
	    (err = commit_write(e, &tx)))
		goto fail;
	/* data pages durable before the meta that points at them */
	if (sync && (err = bolt_f_sync(e)))
		goto fail;
	if ((err = commit_meta(e, &m, sync))) {
		/* the new meta may be on disk already, pointing at pages a
		 * retry would reuse: refuse further commits until a reopen */
		e->poisoned = true;
		log_error("bolt: %s: writing meta %llu failed (%d); no more "
			  "commits until it is reopened",
			  e->path, (unsigned long long)m.txid, err);
		goto fail;
	}
	pthread_mutex_lock(&e->mu);
	e->meta = m;
	if (nm) {
		old = e->map;
		e->map = nm;
		e->file_size = nsize;
		bolt_map_unref(old);
	}
	pthread_mutex_unlock(&e->mu);
	e->unsynced = !sync;
	tx_end(&tx, false);
	bolt_tree_drop(&rt);
	bolt_batch_reset(e);
	if (sync)
		bolt_synced_set(e); /* the new S */
	if (e->strict) {
		char why[256];

		if ((err = bolt_check(e, why, sizeof(why)))) {
			log_error("bolt: check after commit %llu: %s",
				  (unsigned long long)m.txid, why);
			return err;
		}
	}
	return 0;
fail:
	if (nm) {
		pthread_mutex_lock(&e->mu);
		bolt_map_unref(nm);
		pthread_mutex_unlock(&e->mu);
	}
	tx_end(&tx, true);
	bolt_tree_drop(&rt);
	bolt_batch_reset(e);
	return err;
}
