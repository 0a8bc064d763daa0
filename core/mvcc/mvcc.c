/* mvcc: see mvcc.h.
 *
 * State machine of the write path (one txn at a time):
 *
 *   IDLE --mvcc_txn_begin--> IN_TXN --mvcc_txn_end--> IDLE
 *     |                        | put / delete_range / txn_range
 *     +--mvcc_commit / mvcc_compact (IDLE only; -EBUSY in a txn)
 *
 * Invariants:
 *  1. rev is the main revision of the last txn that changed something
 *     (1 on an empty store, never below compact_rev after open);
 *     committed_rev <= rev is the rev at the last successful engine
 *     commit. Every revision with main <= committed_rev is in the engine's
 *     committed data (or was compacted away); every one above it is in
 *     pend[] (still in the engine's open batch).
 *  2. pend[] is sorted by {main, sub} (revisions only grow), its encoded
 *     values live in arena[]; both are emptied by a successful commit.
 *  3. The key index holds exactly the revisions in the engine's key
 *     bucket (committed + batch), except garbage tombstones found at open
 *     and deleted there.
 *  4. In a txn every change takes {begin_rev + 1, nchanges++}; the index
 *     sees them at once (as etcd's), reads at <= rev do not.
 *  5. view is NULL or a view opened after the last commit; it is closed
 *     before every commit.
 *  6. compact_rev is -1 until the first compaction (etcd's initial
 *     compactMainRev), so every range rev >= 0 passes the compacted check.
 */
#include "core/mvcc/mvcc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pb.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "core/errors.h"
#include "core/mvcc/keyindex.h"
#include "core/util/log.h"
#include "engines/engine.h"
#include "net/proto/kv.pb.h"
#include "net/proto/pbslice.h"

#define MVCC_META_CI "consistent_index"
#define MVCC_META_SCHED "scheduledCompactRev"
#define MVCC_META_FINISHED "finishedCompactRev"
#define MVCC_ARENA_KEEP (4u << 20) /* arena capacity kept across commits */

struct mvcc_pend {
	int64_t main, sub;
	size_t off, len; /* encoded KeyValue in arena */
	bool tomb;
};

struct mvcc {
	struct engine_handle *h;
	struct keyindex *idx;
	int64_t rev, committed_rev, compact_rev;
	uint64_t ci;
	struct engine_view *view;

	bool in_txn;
	int64_t begin_rev, nchanges;
	size_t txn_first; /* first pend[] entry of the open txn */

	struct mvcc_pend *pend;
	size_t npend, pend_cap;
	uint8_t *arena;
	size_t alen, acap;

	mvcc_observer_fn obs;
	void *obs_arg;
};

/* ---- encodings ---- */

static void mvcc_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t mvcc_get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* etcd's revToBytes (+ appendMarkTombstone); returns the length. */
static size_t mvcc_rev_bytes(int64_t main, int64_t sub, bool tomb,
			     uint8_t out[MVCC_REV_BYTES + 1])
{
	mvcc_be64(out, (uint64_t)main);
	out[8] = '_';
	mvcc_be64(out + 9, (uint64_t)sub);
	if (!tomb)
		return MVCC_REV_BYTES;
	out[MVCC_REV_BYTES] = 't';
	return MVCC_REV_BYTES + 1;
}

static int mvcc_parse_rev(const uint8_t *k, size_t n, struct keyindex_rev *r,
			  bool *tomb)
{
	if ((n != MVCC_REV_BYTES && n != MVCC_REV_BYTES + 1) || k[8] != '_')
		return CAIRN_ECORRUPT;
	if (n == MVCC_REV_BYTES + 1 && k[MVCC_REV_BYTES] != 't')
		return CAIRN_ECORRUPT;
	r->main = (int64_t)mvcc_get_be64(k);
	r->sub = (int64_t)mvcc_get_be64(k + 9);
	*tomb = n == MVCC_REV_BYTES + 1;
	return 0;
}

int mvcc_kv_encode(const struct mvcc_kv *kv, uint8_t *buf, size_t cap,
		   size_t *len)
{
	mvccpb_KeyValue msg;
	pb_ostream_t os = pb_ostream_from_buffer(buf, cap);

	memset(&msg, 0, sizeof(msg));
	msg.key = (struct pbslice){kv->key, kv->key_len};
	msg.value = (struct pbslice){kv->value, kv->value_len};
	msg.create_revision = kv->create_rev;
	msg.mod_revision = kv->mod_rev;
	msg.version = kv->version;
	msg.lease = kv->lease;
	if (!pb_encode(&os, mvccpb_KeyValue_fields, &msg))
		return os.bytes_written >= cap ? -ENOSPC : -EINVAL;
	*len = os.bytes_written;
	return 0;
}

int mvcc_kv_decode(const uint8_t *buf, size_t len, struct mvcc_kv *kv)
{
	mvccpb_KeyValue msg;
	pb_istream_t is = pbslice_istream(buf, len);

	/* pb_decode leaves callback (pbslice) fields alone: absent bytes
	 * fields must read as empty */
	memset(&msg, 0, sizeof(msg));
	if (!pb_decode(&is, mvccpb_KeyValue_fields, &msg))
		return CAIRN_ECORRUPT;
	kv->key = msg.key.p;
	kv->key_len = msg.key.n;
	kv->value = msg.value.p;
	kv->value_len = msg.value.n;
	kv->create_rev = msg.create_revision;
	kv->mod_rev = msg.mod_revision;
	kv->version = msg.version;
	kv->lease = msg.lease;
	return 0;
}

/* ---- the uncommitted-value buffer (invariant 2) ---- */

static int mvcc_pend_add(struct mvcc *m, struct keyindex_rev rev, bool tomb,
			 const struct mvcc_kv *kv)
{
	size_t need = MVCC_KV_MAX_OVERHEAD + kv->key_len + kv->value_len;
	size_t len;
	int err;

	if (m->npend == m->pend_cap) {
		size_t cap = m->pend_cap ? m->pend_cap * 2 : 64;
		struct mvcc_pend *p = realloc(m->pend, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		m->pend = p;
		m->pend_cap = cap;
	}
	if (m->acap - m->alen < need) {
		size_t cap = m->acap ? m->acap : 4096;
		uint8_t *a;

		while (cap - m->alen < need)
			cap *= 2;
		a = realloc(m->arena, cap);
		if (!a)
			return -ENOMEM;
		m->arena = a;
		m->acap = cap;
	}
	err = mvcc_kv_encode(kv, m->arena + m->alen, need, &len);
	if (err)
		return err;
	m->pend[m->npend++] =
		(struct mvcc_pend){rev.main, rev.sub, m->alen, len, tomb};
	m->alen += len;
	return 0;
}

static void mvcc_pend_pop(struct mvcc *m)
{
	m->alen = m->pend[--m->npend].off;
}

static void mvcc_pend_clear(struct mvcc *m)
{
	m->npend = 0;
	m->alen = 0;
	if (m->acap > MVCC_ARENA_KEEP) {
		free(m->arena);
		m->arena = NULL;
		m->acap = 0;
	}
}

static const struct mvcc_pend *mvcc_pend_find(const struct mvcc *m,
					      struct keyindex_rev rev)
{
	size_t lo = 0, hi = m->npend;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct mvcc_pend *p = &m->pend[mid];

		if (p->main < rev.main ||
		    (p->main == rev.main && p->sub < rev.sub))
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < m->npend && m->pend[lo].main == rev.main &&
	    m->pend[lo].sub == rev.sub)
		return &m->pend[lo];
	return NULL;
}

/* ---- reads ---- */

void mvcc_release_view(struct mvcc *m)
{
	if (m->view) {
		engine_view_close(m->h, m->view);
		m->view = NULL;
	}
}

/* The stored KeyValue of put revision rev, decoded; bytes borrowed until
 * the next read. */
static int mvcc_fetch(struct mvcc *m, struct keyindex_rev rev,
		      struct mvcc_kv *kv)
{
	uint8_t rb[MVCC_REV_BYTES + 1];
	struct engine_slice val;
	int err;

	if (rev.main > m->committed_rev) {
		const struct mvcc_pend *p = mvcc_pend_find(m, rev);

		if (!p)
			return CAIRN_ECORRUPT;
		return mvcc_kv_decode(m->arena + p->off, p->len, kv);
	}
	if (!m->view) {
		err = engine_view_open(m->h, &m->view);
		if (err)
			return err;
	}
	err = engine_get(m->h, m->view, MVCC_BUCKET_KEY, rb,
			 mvcc_rev_bytes(rev.main, rev.sub, false, rb), &val);
	if (err == -ENOENT) {
		log_error("mvcc: revision %lld_%lld is indexed but not stored",
			  (long long)rev.main, (long long)rev.sub);
		return CAIRN_ECORRUPT;
	}
	if (err)
		return err;
	return mvcc_kv_decode(val.p, val.n, kv);
}

static int mvcc_res_grow(struct mvcc_range_result *r, size_t bytes)
{
	if (r->n == r->kvs_cap) {
		size_t cap = r->kvs_cap ? r->kvs_cap * 2 : 16;
		struct mvcc_kv *k = realloc(r->kvs, cap * sizeof(*k));

		if (!k)
			return -ENOMEM;
		r->kvs = k;
		r->kvs_cap = cap;
	}
	if (r->buf_cap - r->buf_len < bytes) {
		size_t cap = r->buf_cap ? r->buf_cap : 1024;
		uint8_t *b;

		while (cap - r->buf_len < bytes)
			cap *= 2;
		b = realloc(r->buf, cap);
		if (!b)
			return -ENOMEM;
		r->buf = b;
		r->buf_cap = cap;
	}
	return 0;
}

#define MVCC_NO_BYTES SIZE_MAX

/* Append kv, copying its bytes into r->buf. buf moves as it grows, so
 * key/value hold offsets (MVCC_NO_BYTES: none) until mvcc_res_finish. */
static int mvcc_res_push(struct mvcc_range_result *r, const struct mvcc_kv *kv,
			 bool with_value)
{
	size_t vlen = with_value ? kv->value_len : 0;
	struct mvcc_kv *o;
	int err = mvcc_res_grow(r, kv->key_len + vlen);

	if (err)
		return err;
	o = &r->kvs[r->n++];
	*o = *kv;
	memcpy(r->buf + r->buf_len, kv->key, kv->key_len);
	o->key = (const uint8_t *)(uintptr_t)r->buf_len;
	r->buf_len += kv->key_len;
	if (with_value) {
		if (vlen)
			memcpy(r->buf + r->buf_len, kv->value, vlen);
		o->value = (const uint8_t *)(uintptr_t)r->buf_len;
		r->buf_len += vlen;
	} else {
		o->value = (const uint8_t *)(uintptr_t)MVCC_NO_BYTES;
		o->value_len = 0;
	}
	return 0;
}

static void mvcc_res_finish(struct mvcc_range_result *r)
{
	for (size_t i = 0; i < r->n; i++) {
		struct mvcc_kv *kv = &r->kvs[i];
		uintptr_t v = (uintptr_t)kv->value;

		kv->key = r->buf + (uintptr_t)kv->key;
		kv->value = v == MVCC_NO_BYTES ? NULL : r->buf + v;
	}
}

void mvcc_range_result_free(struct mvcc_range_result *r)
{
	free(r->kvs);
	free(r->buf);
	memset(r, 0, sizeof(*r));
}

struct mvcc_rctx {
	struct mvcc *m;
	struct mvcc_range_result *out;
	int64_t limit;
	bool count_only, keys_only;
	bool nofetch; /* index data only: key, create, mod, version */
	int err;
};

static int mvcc_range_visit(void *arg, const uint8_t *key, size_t klen,
			    const struct keyindex_hit *hit)
{
	struct mvcc_rctx *c = arg;
	struct mvcc_kv kv;

	c->out->count++;
	if (c->count_only || (c->limit > 0 && (int64_t)c->out->n >= c->limit))
		return 0;
	if (c->nofetch) {
		kv = (struct mvcc_kv){.key = key,
				      .key_len = klen,
				      .create_rev = hit->created,
				      .mod_rev = hit->mod.main,
				      .version = hit->ver};
	} else {
		c->err = mvcc_fetch(c->m, hit->mod, &kv);
		if (c->err)
			return 1;
	}
	c->err = mvcc_res_push(c->out, &kv, !c->keys_only && !c->nofetch);
	return c->err ? 1 : 0;
}

/* etcd 3.4 storeTxnRead.rangeKeys with curRev = cur. */
static int mvcc_range_at(struct mvcc *m, int64_t cur, const uint8_t *key,
			 size_t klen, const uint8_t *end, size_t elen,
			 const struct mvcc_range_opts *o, bool nofetch,
			 struct mvcc_range_result *out)
{
	static const struct mvcc_range_opts none;
	struct mvcc_rctx c = {m, out, 0, false, false, nofetch, 0};
	int64_t rev;

	memset(out, 0, sizeof(*out));
	if (!o)
		o = &none;
	if (klen == 0)
		return -EINVAL;
	rev = o->rev;
	if (rev > cur)
		return CAIRN_EFUTURE_REV;
	if (rev <= 0)
		rev = cur;
	if (rev < m->compact_rev)
		return CAIRN_ECOMPACTED;
	c.limit = o->limit;
	c.count_only = o->count_only;
	c.keys_only = o->keys_only;
	keyindex_range(m->idx, key, klen, end, elen, rev, mvcc_range_visit, &c);
	if (c.err) {
		mvcc_range_result_free(out);
		return c.err;
	}
	mvcc_res_finish(out);
	out->rev = cur;
	return 0;
}

int mvcc_range(struct mvcc *m, const uint8_t *key, size_t klen,
	       const uint8_t *end, size_t elen, const struct mvcc_range_opts *o,
	       struct mvcc_range_result *out)
{
	return mvcc_range_at(m, m->rev, key, klen, end, elen, o, false, out);
}

struct mvcc_fctx {
	struct mvcc *m;
	mvcc_kv_fn fn;
	void *arg;
	int err;
};

static int mvcc_foreach_visit(void *arg, const uint8_t *key, size_t klen,
			      const struct keyindex_hit *hit)
{
	struct mvcc_fctx *c = arg;
	struct mvcc_kv kv;

	(void)key;
	(void)klen;
	c->err = mvcc_fetch(c->m, hit->mod, &kv);
	if (c->err)
		return 1;
	return c->fn(c->arg, &kv) ? 1 : 0;
}

int mvcc_foreach(struct mvcc *m, const uint8_t *key, size_t klen,
		 const uint8_t *end, size_t elen, mvcc_kv_fn fn, void *arg)
{
	struct mvcc_fctx c = {m, fn, arg, 0};

	if (klen == 0)
		return -EINVAL;
	keyindex_range(m->idx, key, klen, end, elen, m->rev, mvcc_foreach_visit,
		       &c);
	return c.err;
}

/* ---- write txn ---- */

/* etcd's storeTxnWrite read revision: the txn's own changes included. */
static int64_t mvcc_txn_read_rev(const struct mvcc *m)
{
	return m->begin_rev + (m->nchanges > 0);
}

int mvcc_txn_begin(struct mvcc *m)
{
	if (m->in_txn)
		return -EBUSY;
	m->in_txn = true;
	m->begin_rev = m->rev;
	m->nchanges = 0;
	m->txn_first = m->npend;
	return 0;
}

int mvcc_txn_range(struct mvcc *m, const uint8_t *key, size_t klen,
		   const uint8_t *end, size_t elen,
		   const struct mvcc_range_opts *o,
		   struct mvcc_range_result *out)
{
	if (!m->in_txn) {
		memset(out, 0, sizeof(*out));
		return -EINVAL;
	}
	return mvcc_range_at(m, mvcc_txn_read_rev(m), key, klen, end, elen, o,
			     false, out);
}

/* Write one change: buffer, engine batch, index — undone in reverse
 * order if a later step fails. */
static int mvcc_txn_change(struct mvcc *m, const struct mvcc_kv *kv, bool tomb)
{
	struct keyindex_rev r = {m->begin_rev + 1, m->nchanges};
	uint8_t rb[MVCC_REV_BYTES + 1];
	size_t rl = mvcc_rev_bytes(r.main, r.sub, tomb, rb);
	const struct mvcc_pend *p;
	int err;

	err = mvcc_pend_add(m, r, tomb, kv);
	if (err)
		return err;
	p = &m->pend[m->npend - 1];
	err = engine_put(m->h, MVCC_BUCKET_KEY, rb, rl, m->arena + p->off,
			 p->len);
	if (err)
		goto fail_pend;
	if (tomb)
		err = keyindex_tombstone(m->idx, kv->key, kv->key_len, r);
	else
		err = keyindex_put(m->idx, kv->key, kv->key_len, r);
	if (err)
		goto fail_engine;
	m->nchanges++;
	return 0;

fail_engine:
	(void)engine_del(m->h, MVCC_BUCKET_KEY, rb, rl);
fail_pend:
	mvcc_pend_pop(m);
	return err;
}

int mvcc_txn_put(struct mvcc *m, const uint8_t *key, size_t klen,
		 const uint8_t *val, size_t vlen, int64_t lease)
{
	int64_t rev = m->begin_rev + 1;
	struct keyindex_hit hit;
	struct mvcc_kv kv = {key, klen, val, vlen, rev, rev, 1, lease};

	if (!m->in_txn || klen == 0)
		return -EINVAL;
	/* etcd: an existing key keeps its create revision */
	if (keyindex_get(m->idx, key, klen, rev, &hit) == 0) {
		kv.create_rev = hit.created;
		kv.version = hit.ver + 1;
	}
	return mvcc_txn_change(m, &kv, false);
}

int mvcc_txn_delete_range(struct mvcc *m, const uint8_t *key, size_t klen,
			  const uint8_t *end, size_t elen, int64_t *deleted,
			  struct mvcc_range_result *prev)
{
	struct mvcc_range_result keys;
	struct mvcc_range_result *r = prev ? prev : &keys;
	int err;

	if (deleted)
		*deleted = 0;
	if (!m->in_txn || klen == 0) {
		memset(r, 0, sizeof(*r));
		return -EINVAL;
	}
	/* keys (and prev values) first: tombstoning changes the index */
	err = mvcc_range_at(m, mvcc_txn_read_rev(m), key, klen, end, elen, NULL,
			    prev == NULL, r);
	if (err)
		return err;
	for (size_t i = 0; i < r->n; i++) {
		struct mvcc_kv kv = {.key = r->kvs[i].key,
				     .key_len = r->kvs[i].key_len};

		err = mvcc_txn_change(m, &kv, true);
		if (err)
			goto fail;
		if (deleted)
			(*deleted)++;
	}
	if (!prev)
		mvcc_range_result_free(&keys);
	return 0;

fail:
	mvcc_range_result_free(r);
	return err;
}

/* Tell the observer about the txn's changes (mvcc.h). */
static void mvcc_notify(struct mvcc *m)
{
	for (size_t i = m->txn_first; i < m->npend; i++) {
		const struct mvcc_pend *p = &m->pend[i];
		struct mvcc_kv kv, prev;
		struct keyindex_hit hit;
		bool has_prev = false;

		if (mvcc_kv_decode(m->arena + p->off, p->len, &kv) != 0)
			continue;
		if (p->tomb)
			kv.mod_rev = m->rev;
		if (keyindex_get(m->idx, kv.key, kv.key_len, m->begin_rev,
				 &hit) == 0) {
			int err = mvcc_fetch(m, hit.mod, &prev);

			if (err)
				log_warn("mvcc: event without prev: %s",
					 cairn_strerror(err));
			has_prev = err == 0;
		}
		m->obs(m->obs_arg, p->tomb ? 1 : 0, &kv,
		       has_prev ? &prev : NULL);
	}
}

int64_t mvcc_txn_end(struct mvcc *m)
{
	if (!m->in_txn)
		return -EINVAL;
	m->in_txn = false;
	if (m->nchanges == 0)
		return m->rev;
	m->rev = m->begin_rev + 1;
	if (m->obs)
		mvcc_notify(m);
	return m->rev;
}

void mvcc_set_observer(struct mvcc *m, mvcc_observer_fn fn, void *arg)
{
	m->obs = fn;
	m->obs_arg = arg;
}

/* ---- history ---- */

/* One stored change to fn; 1 when fn asked to stop. */
static int mvcc_history_one(const uint8_t *k, size_t kl, const uint8_t *v,
			    size_t vl, mvcc_history_fn fn, void *arg, int *err)
{
	struct keyindex_rev r;
	struct mvcc_kv kv;
	bool tomb;

	*err = mvcc_parse_rev(k, kl, &r, &tomb);
	if (*err == 0)
		*err = mvcc_kv_decode(v, vl, &kv);
	if (*err)
		return 1;
	if (tomb)
		kv.mod_rev = r.main;
	return fn(arg, tomb ? 1 : 0, &kv) ? 1 : 0;
}

int mvcc_history(struct mvcc *m, int64_t from_rev, int64_t to_rev,
		 mvcc_history_fn fn, void *arg)
{
	uint8_t sb[MVCC_REV_BYTES + 1], eb[MVCC_REV_BYTES + 1];
	uint8_t rb[MVCC_REV_BYTES + 1];
	struct engine_iter *it = NULL;
	struct engine_slice k, v;
	int err = 0, rc = 0;

	if (from_rev < m->compact_rev)
		return CAIRN_ECOMPACTED;
	if (from_rev < 1)
		from_rev = 1;
	if (to_rev <= 0 || to_rev > m->rev)
		to_rev = m->rev; /* never the open txn's changes */
	/* committed revisions from the engine (invariant 1) */
	if (from_rev <= m->committed_rev) {
		int64_t last =
			to_rev < m->committed_rev ? to_rev : m->committed_rev;

		if (!m->view && (err = engine_view_open(m->h, &m->view)))
			return err;
		err = engine_iter_open(
			m->h, m->view, MVCC_BUCKET_KEY, sb,
			mvcc_rev_bytes(from_rev, 0, false, sb), eb,
			mvcc_rev_bytes(last + 1, 0, false, eb), false, &it);
		if (err)
			return err;
		while (rc == 0 &&
		       (err = engine_iter_next(m->h, it, &k, &v)) == 1)
			rc = mvcc_history_one(k.p, k.n, v.p, v.n, fn, arg,
					      &err);
		engine_iter_close(m->h, it);
		if (err < 0 || rc)
			return err < 0 ? err : 0;
	}
	/* then the uncommitted ones */
	for (size_t i = 0; rc == 0 && i < m->npend; i++) {
		const struct mvcc_pend *p = &m->pend[i];

		if (p->main < from_rev || p->main > to_rev)
			continue;
		rc = mvcc_history_one(
			rb, mvcc_rev_bytes(p->main, p->sub, p->tomb, rb),
			m->arena + p->off, p->len, fn, arg, &err);
	}
	return err;
}

/* ---- compaction, meta, commit ---- */

/* A revision compaction drops, to delete from the engine. */
struct mvcc_gone {
	int64_t main;
	uint32_t sub;
	bool tomb;
};

struct mvcc_dctx {
	struct mvcc *m;
	struct mvcc_gone *v;
	size_t n, cap;
	int err;
};

static void mvcc_gone_del(struct mvcc_dctx *d, const struct mvcc_gone *g)
{
	uint8_t rb[MVCC_REV_BYTES + 1];
	int err = engine_del(d->m->h, MVCC_BUCKET_KEY, rb,
			     mvcc_rev_bytes(g->main, g->sub, g->tomb, rb));

	if (err && !d->err)
		d->err = err;
}

/* The index reports drops in key order; they are collected and deleted
 * in revision order, which is the engine's key order (several times
 * faster on a B-tree) and the order etcd deletes in. */
static void mvcc_drop(void *arg, const uint8_t *key, size_t klen,
		      struct keyindex_rev rev, bool tomb)
{
	struct mvcc_dctx *d = arg;
	struct mvcc_gone g = {rev.main, (uint32_t)rev.sub, tomb};

	(void)key;
	(void)klen;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 1024;
		struct mvcc_gone *v = realloc(d->v, cap * sizeof(*v));

		if (!v) {
			/* out of memory: delete this one now, unsorted */
			mvcc_gone_del(d, &g);
			return;
		}
		d->v = v;
		d->cap = cap;
	}
	d->v[d->n++] = g;
}

static int mvcc_gone_cmp(const void *a, const void *b)
{
	const struct mvcc_gone *x = a, *y = b;

	if (x->main != y->main)
		return x->main < y->main ? -1 : 1;
	return (x->sub > y->sub) - (x->sub < y->sub);
}

static int mvcc_put_meta_rev(struct mvcc *m, const char *name, int64_t rev)
{
	uint8_t rb[MVCC_REV_BYTES + 1];

	return engine_put(m->h, MVCC_BUCKET_META, name, strlen(name), rb,
			  mvcc_rev_bytes(rev, 0, false, rb));
}

static int mvcc_do_compact(struct mvcc *m, int64_t rev)
{
	struct mvcc_dctx d = {m, NULL, 0, 0, 0};
	int err;

	err = mvcc_put_meta_rev(m, MVCC_META_SCHED, rev);
	if (err)
		return err;
	keyindex_compact(m->idx, rev, mvcc_drop, &d);
	qsort(d.v, d.n, sizeof(*d.v), mvcc_gone_cmp);
	for (size_t i = 0; i < d.n; i++)
		mvcc_gone_del(&d, &d.v[i]);
	free(d.v);
	if (d.err)
		return d.err;
	err = mvcc_put_meta_rev(m, MVCC_META_FINISHED, rev);
	if (err)
		return err;
	m->compact_rev = rev;
	return 0;
}

int mvcc_compact(struct mvcc *m, int64_t rev)
{
	if (m->in_txn)
		return -EBUSY;
	if (rev <= m->compact_rev)
		return CAIRN_ECOMPACTED;
	if (rev > m->rev)
		return CAIRN_EFUTURE_REV;
	return mvcc_do_compact(m, rev);
}

int mvcc_set_consistent_index(struct mvcc *m, uint64_t idx)
{
	uint8_t b[8];
	int err;

	mvcc_be64(b, idx);
	err = engine_put(m->h, MVCC_BUCKET_META, MVCC_META_CI,
			 strlen(MVCC_META_CI), b, sizeof(b));
	if (err == 0)
		m->ci = idx;
	return err;
}

int mvcc_commit(struct mvcc *m, bool sync)
{
	int err;

	if (m->in_txn)
		return -EBUSY;
	/* invariant 5: a view must not pin the data being replaced */
	mvcc_release_view(m);
	err = engine_commit(m->h, sync);
	if (err)
		return err;
	mvcc_pend_clear(m);
	m->committed_rev = m->rev;
	return 0;
}

int64_t mvcc_rev(const struct mvcc *m)
{
	return m->rev;
}

int64_t mvcc_compact_rev(const struct mvcc *m)
{
	return m->compact_rev;
}

uint64_t mvcc_consistent_index(const struct mvcc *m)
{
	return m->ci;
}

/* ---- open: etcd's store.restore ---- */

static int mvcc_read_meta_rev(struct mvcc *m, struct engine_view *v,
			      const char *name, int64_t *rev)
{
	struct engine_slice val;
	struct keyindex_rev r;
	bool tomb;
	int err;

	err = engine_get(m->h, v, MVCC_BUCKET_META, name, strlen(name), &val);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = mvcc_parse_rev(val.p, val.n, &r, &tomb);
	if (err || tomb)
		return CAIRN_ECORRUPT;
	*rev = r.main;
	return 0;
}

static int mvcc_read_meta(struct mvcc *m, struct engine_view *v, int64_t *sched)
{
	struct engine_slice val;
	int err;

	err = engine_get(m->h, v, MVCC_BUCKET_META, MVCC_META_CI,
			 strlen(MVCC_META_CI), &val);
	if (err == 0 && val.n != 8)
		return CAIRN_ECORRUPT;
	if (err == 0)
		m->ci = mvcc_get_be64(val.p);
	else if (err != -ENOENT)
		return err;
	err = mvcc_read_meta_rev(m, v, MVCC_META_FINISHED, &m->compact_rev);
	if (err)
		return err;
	return mvcc_read_meta_rev(m, v, MVCC_META_SCHED, sched);
}

struct mvcc_garbage {
	struct keyindex_rev *revs;
	size_t n, cap;
};

/* One stored revision into the index (etcd's restoreIntoIndex). */
static int mvcc_restore_one(struct mvcc *m, struct engine_slice k,
			    struct engine_slice v, struct mvcc_garbage *g)
{
	struct keyindex_rev r;
	struct mvcc_kv kv;
	bool tomb;
	int err;

	err = mvcc_parse_rev(k.p, k.n, &r, &tomb);
	if (err == 0)
		err = mvcc_kv_decode(v.p, v.n, &kv);
	if (err == 0 && kv.key_len == 0)
		err = CAIRN_ECORRUPT;
	if (err)
		return err;
	if (r.main > m->rev)
		m->rev = r.main;
	if (!tomb) {
		err = keyindex_restore(m->idx, kv.key, kv.key_len,
				       kv.create_rev, r, kv.version);
		return err == -EINVAL ? CAIRN_ECORRUPT : err;
	}
	err = keyindex_tombstone(m->idx, kv.key, kv.key_len, r);
	if (err == -EINVAL)
		return CAIRN_ECORRUPT;
	if (err != -ENOENT)
		return err;
	/* a tombstone whose generation's puts are gone: left behind by an
	 * unfinished etcd compaction; etcd skips it, we also delete it */
	if (g->n == g->cap) {
		size_t cap = g->cap ? g->cap * 2 : 16;
		struct keyindex_rev *p = realloc(g->revs, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		g->revs = p;
		g->cap = cap;
	}
	g->revs[g->n++] = r;
	return 0;
}

static int mvcc_restore(struct mvcc *m, int64_t *sched, struct mvcc_garbage *g)
{
	struct engine_view *v = NULL;
	struct engine_iter *it = NULL;
	struct engine_slice k, val;
	int err;

	err = engine_view_open(m->h, &v);
	if (err)
		return err;
	err = mvcc_read_meta(m, v, sched);
	if (err)
		goto out;
	err = engine_iter_open(m->h, v, MVCC_BUCKET_KEY, NULL, 0, NULL, 0,
			       false, &it);
	if (err)
		goto out;
	while ((err = engine_iter_next(m->h, it, &k, &val)) == 1) {
		err = mvcc_restore_one(m, k, val, g);
		if (err)
			goto out;
	}
out:
	if (it)
		engine_iter_close(m->h, it);
	engine_view_close(m->h, v);
	return err;
}

int mvcc_open(struct engine_handle *h, struct mvcc **out)
{
	struct mvcc_garbage g = {NULL, 0, 0};
	struct mvcc *m = calloc(1, sizeof(*m));
	int64_t sched = 0;
	int err;

	if (!m)
		return -ENOMEM;
	m->h = h;
	m->rev = 1;
	m->compact_rev = -1;
	err = keyindex_create(&m->idx);
	if (err)
		goto fail;
	err = engine_bucket_create(h, MVCC_BUCKET_KEY);
	if (err == 0)
		err = engine_bucket_create(h, MVCC_BUCKET_META);
	if (err == 0)
		err = engine_commit(h, false);
	if (err)
		goto fail;
	err = mvcc_restore(m, &sched, &g);
	if (err)
		goto fail;
	/* etcd: keys up to the compaction may all be gone */
	if (m->rev < m->compact_rev)
		m->rev = m->compact_rev;
	m->committed_rev = m->rev;
	for (size_t i = 0; i < g.n; i++) {
		uint8_t rb[MVCC_REV_BYTES + 1];

		if (g.revs[i].main >
		    (sched > m->compact_rev ? sched : m->compact_rev)) {
			log_warn("mvcc: stray tombstone at revision %lld",
				 (long long)g.revs[i].main);
			continue;
		}
		err = engine_del(h, MVCC_BUCKET_KEY, rb,
				 mvcc_rev_bytes(g.revs[i].main, g.revs[i].sub,
						true, rb));
		if (err)
			goto fail;
	}
	/* etcd: no scheduled compaction reads as 0, a stale one too */
	if (sched <= m->compact_rev)
		sched = 0;
	if (sched != 0) {
		log_info("mvcc: finishing compaction at revision %lld",
			 (long long)sched);
		err = mvcc_do_compact(m, sched);
		if (err)
			goto fail;
	}
	err = engine_commit(h, true);
	if (err)
		goto fail;
	free(g.revs);
	*out = m;
	return 0;

fail:
	free(g.revs);
	mvcc_close(m);
	return err;
}

/* Free what m holds (mvcc_close less the struct itself). */
static void mvcc_free_state(struct mvcc *m)
{
	mvcc_release_view(m);
	keyindex_destroy(m->idx);
	free(m->pend);
	free(m->arena);
}

int mvcc_reload(struct mvcc *m)
{
	struct mvcc *n;
	int err;

	if (m->in_txn)
		return -EBUSY;
	mvcc_release_view(m);
	err = mvcc_open(m->h, &n);
	if (err)
		return err;
	mvcc_free_state(m);
	/* the observer stays: it belongs to whoever set it, not to the data */
	n->obs = m->obs;
	n->obs_arg = m->obs_arg;
	*m = *n;
	free(n);
	return 0;
}

void mvcc_close(struct mvcc *m)
{
	if (!m)
		return;
	mvcc_free_state(m);
	free(m);
}
