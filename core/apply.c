/* apply: etcd's applier and request checks over MVCC.
 *
 * Invariants:
 *  1. A request either fails before it changes anything or runs to the
 *     end: every check a txn can fail (compacted/future revision in a
 *     range, ignore_value on a missing key, an unknown lease) runs on the
 *     chosen branch before the first write (etcd's checkRequests).
 *  2. A write txn that changes nothing does not bump the revision; the
 *     header revision is the store revision after the request.
 *  3. All memory of one response lives in one arena, freed after encoding.
 */
#include "core/apply.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "core/util/arena.h"
#include "net/proto/pbutil.h"
#include "net/proto/raft_internal.pb.h"

/* InternalRaftRequest field numbers of the requests applied here. */
enum {
	APPLY_FIELD_PUT = 4,
	APPLY_FIELD_DELETE_RANGE = 5,
	APPLY_FIELD_TXN = 6,
	APPLY_FIELD_COMPACTION = 7,
};

/* The recursive txn member of RequestOp/ResponseOp is a pointer (it breaks
 * the TxnRequest -> RequestOp -> TxnRequest cycle for nanopb). */
#define OP_TXN(op) ((op)->request.request_txn)
#define RESP_TXN(op) ((op)->response.response_txn)

/* ---- small helpers -------------------------------------------------- */

static bool slice_eq(const struct pbslice *a, const struct pbslice *b)
{
	return a->n == b->n && (a->n == 0 || memcmp(a->p, b->p, a->n) == 0);
}

static int slice_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	size_t n = an < bn ? an : bn;
	int c = n ? memcmp(a, b, n) : 0;

	if (c)
		return c;
	return an < bn ? -1 : an > bn;
}

/* etcd's mkGteRange: a range end of "\0" means "every key >= key". MVCC
 * takes the same "\0" form, so the end passes through unchanged. */
static void range_args(const struct pbslice *key, const struct pbslice *end,
		       const uint8_t **k, size_t *kl, const uint8_t **e,
		       size_t *el)
{
	*k = key->p;
	*kl = key->n;
	*e = end->p;
	*el = end->n;
}

static etcdserverpb_ResponseHeader make_header(const struct apply_ctx *a,
					       int64_t rev)
{
	etcdserverpb_ResponseHeader h = {0};

	h.cluster_id = a->cluster_id;
	h.member_id = a->member_id;
	h.revision = rev;
	h.raft_term = a->raft_term;
	return h;
}

static void free_range_result(void *p)
{
	mvcc_range_result_free(p);
}

/* A range result whose memory is owned by the arena. */
static struct mvcc_range_result *arena_result(struct arena *ar)
{
	struct mvcc_range_result *r = arena_alloc(ar, sizeof(*r));

	if (!r)
		return NULL;
	if (arena_defer(ar, free_range_result, r) < 0)
		return NULL;
	return r;
}

static void kv_to_pb(const struct mvcc_kv *kv, mvccpb_KeyValue *out)
{
	memset(out, 0, sizeof(*out));
	out->key.p = kv->key;
	out->key.n = kv->key_len;
	out->value.p = kv->value;
	out->value.n = kv->value_len;
	out->create_revision = kv->create_rev;
	out->mod_revision = kv->mod_rev;
	out->version = kv->version;
	out->lease = kv->lease;
}

static int set_kvs(struct arena *ar, pb_callback_t *cb,
		   struct mvcc_kv *const *kvs, size_t n, bool keys_only)
{
	struct pbu_kv *out = arena_alloc(ar, sizeof(*out) * (n ? n : 1));
	struct pbu_list *l = arena_alloc(ar, sizeof(*l));

	if (!out || !l)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		out[i].key = kvs[i]->key;
		out[i].key_len = kvs[i]->key_len;
		out[i].value = keys_only ? NULL : kvs[i]->value;
		out[i].value_len = keys_only ? 0 : kvs[i]->value_len;
		out[i].create_rev = kvs[i]->create_rev;
		out[i].mod_rev = kvs[i]->mod_rev;
		out[i].version = kvs[i]->version;
		out[i].lease = kvs[i]->lease;
	}
	pbu_set_kvs(cb, l, out, n);
	return 0;
}

static void encode_out(const pb_msgdesc_t *d, const void *msg, int err,
		       struct apply_out *out)
{
	out->buf = NULL;
	out->len = 0;
	out->err = err;
	if (err == 0)
		out->err = pbu_encode_alloc(d, msg, &out->buf, &out->len);
}

/* ---- request checks (etcd v3rpc/key.go) ------------------------------ */

int apply_check_range(const etcdserverpb_RangeRequest *r)
{
	if (r->key.n == 0)
		return CAIRN_EEMPTY_KEY;
	if (r->sort_order < 0 || r->sort_order > 2)
		return CAIRN_EINVALID_SORT;
	if (r->sort_target < 0 || r->sort_target > 4)
		return CAIRN_EINVALID_SORT;
	return 0;
}

int apply_check_put(const etcdserverpb_PutRequest *r)
{
	if (r->key.n == 0)
		return CAIRN_EEMPTY_KEY;
	if (r->ignore_value && r->value.n != 0)
		return CAIRN_EVALUE_PROVIDED;
	if (r->ignore_lease && r->lease != 0)
		return CAIRN_ELEASE_PROVIDED;
	return 0;
}

int apply_check_delete(const etcdserverpb_DeleteRangeRequest *r)
{
	return r->key.n == 0 ? CAIRN_EEMPTY_KEY : 0;
}

static int check_txn_ops(const etcdserverpb_TxnRequest *r, size_t max_ops);

static int check_op(const etcdserverpb_RequestOp *op, size_t max_ops)
{
	switch (op->which_request) {
	case etcdserverpb_RequestOp_request_range_tag:
		return apply_check_range(&op->request.request_range);
	case etcdserverpb_RequestOp_request_put_tag:
		return apply_check_put(&op->request.request_put);
	case etcdserverpb_RequestOp_request_delete_range_tag:
		return apply_check_delete(&op->request.request_delete_range);
	case etcdserverpb_RequestOp_request_txn_tag:
		if (!OP_TXN(op))
			return CAIRN_EKEY_NOT_FOUND;
		return check_txn_ops(OP_TXN(op), max_ops);
	default: /* an empty op: etcd answers "key not found" */
		return CAIRN_EKEY_NOT_FOUND;
	}
}

static int check_txn_ops(const etcdserverpb_TxnRequest *r, size_t max_ops)
{
	size_t opc = r->compare_count;
	int err;

	if (opc < r->success_count)
		opc = r->success_count;
	if (opc < r->failure_count)
		opc = r->failure_count;
	if (opc > max_ops)
		return CAIRN_ETOO_MANY_OPS;
	for (size_t i = 0; i < r->compare_count; i++)
		if (r->compare[i].key.n == 0)
			return CAIRN_EEMPTY_KEY;
	for (size_t i = 0; i < r->success_count; i++)
		if ((err = check_op(&r->success[i], max_ops - opc)) < 0)
			return err;
	for (size_t i = 0; i < r->failure_count; i++)
		if ((err = check_op(&r->failure[i], max_ops - opc)) < 0)
			return err;
	return 0;
}

/* etcd's checkIntervals: no key may be put twice, nor put and deleted,
 * in one txn; then- and else-branches of a nested txn may share puts. */
struct ivset {
	struct pbslice *lo, *hi; /* hi.n == 0: a point */
	size_t n, cap;
};

struct keyset {
	struct pbslice *k;
	size_t n, cap;
};

static int ivset_add(struct arena *ar, struct ivset *s, struct pbslice lo,
		     struct pbslice hi)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct pbslice *l = arena_alloc(ar, cap * sizeof(*l));
		struct pbslice *h = arena_alloc(ar, cap * sizeof(*h));

		if (!l || !h)
			return -ENOMEM;
		if (s->n) {
			memcpy(l, s->lo, s->n * sizeof(*l));
			memcpy(h, s->hi, s->n * sizeof(*h));
		}
		s->lo = l;
		s->hi = h;
		s->cap = cap;
	}
	s->lo[s->n] = lo;
	s->hi[s->n] = hi;
	s->n++;
	return 0;
}

static bool ivset_hits(const struct ivset *s, const struct pbslice *k)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct pbslice *lo = &s->lo[i], *hi = &s->hi[i];

		if (hi->n == 0) {
			if (slice_eq(lo, k))
				return true;
		} else if (slice_cmp(k->p, k->n, lo->p, lo->n) >= 0 &&
			   slice_cmp(k->p, k->n, hi->p, hi->n) < 0) {
			return true;
		}
	}
	return false;
}

static bool keyset_has(const struct keyset *s, const struct pbslice *k)
{
	for (size_t i = 0; i < s->n; i++)
		if (slice_eq(&s->k[i], k))
			return true;
	return false;
}

static int keyset_add(struct arena *ar, struct keyset *s, struct pbslice k)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		struct pbslice *n = arena_alloc(ar, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		if (s->n)
			memcpy(n, s->k, s->n * sizeof(*n));
		s->k = n;
		s->cap = cap;
	}
	s->k[s->n++] = k;
	return 0;
}

static int check_intervals(struct arena *ar, const etcdserverpb_RequestOp *ops,
			   size_t n, struct keyset *puts, struct ivset *dels);

static int merge_child(struct arena *ar, const etcdserverpb_TxnRequest *t,
		       struct keyset *puts, struct ivset *dels)
{
	struct keyset pthen = {0}, pelse = {0};
	struct ivset dthen = {0}, delse = {0};
	int err;

	err = check_intervals(ar, t->success, t->success_count, &pthen, &dthen);
	if (!err)
		err = check_intervals(ar, t->failure, t->failure_count, &pelse,
				      &delse);
	if (err)
		return err;
	for (size_t i = 0; i < pthen.n; i++) {
		if (keyset_has(puts, &pthen.k[i]) ||
		    ivset_hits(dels, &pthen.k[i]))
			return CAIRN_EDUPLICATE_KEY;
		if ((err = keyset_add(ar, puts, pthen.k[i])) < 0)
			return err;
	}
	for (size_t i = 0; i < pelse.n; i++) {
		/* then/else are exclusive: a key put by both is fine */
		if (keyset_has(puts, &pelse.k[i]) &&
		    !keyset_has(&pthen, &pelse.k[i]))
			return CAIRN_EDUPLICATE_KEY;
		if (ivset_hits(dels, &pelse.k[i]))
			return CAIRN_EDUPLICATE_KEY;
		if ((err = keyset_add(ar, puts, pelse.k[i])) < 0)
			return err;
	}
	for (size_t i = 0; i < dthen.n; i++)
		if ((err = ivset_add(ar, dels, dthen.lo[i], dthen.hi[i])) < 0)
			return err;
	for (size_t i = 0; i < delse.n; i++)
		if ((err = ivset_add(ar, dels, delse.lo[i], delse.hi[i])) < 0)
			return err;
	return 0;
}

static int check_intervals(struct arena *ar, const etcdserverpb_RequestOp *ops,
			   size_t n, struct keyset *puts, struct ivset *dels)
{
	int err;

	for (size_t i = 0; i < n; i++) {
		const etcdserverpb_DeleteRangeRequest *d;

		if (ops[i].which_request !=
		    etcdserverpb_RequestOp_request_delete_range_tag)
			continue;
		d = &ops[i].request.request_delete_range;
		if ((err = ivset_add(ar, dels, d->key, d->range_end)) < 0)
			return err;
	}
	for (size_t i = 0; i < n; i++) {
		if (ops[i].which_request !=
			    etcdserverpb_RequestOp_request_txn_tag ||
		    !OP_TXN(&ops[i]))
			continue;
		if ((err = merge_child(ar, OP_TXN(&ops[i]), puts, dels)) < 0)
			return err;
	}
	for (size_t i = 0; i < n; i++) {
		const struct pbslice *k;

		if (ops[i].which_request !=
		    etcdserverpb_RequestOp_request_put_tag)
			continue;
		k = &ops[i].request.request_put.key;
		if (keyset_has(puts, k) || ivset_hits(dels, k))
			return CAIRN_EDUPLICATE_KEY;
		if ((err = keyset_add(ar, puts, *k)) < 0)
			return err;
	}
	return 0;
}

int apply_check_txn(const etcdserverpb_TxnRequest *r, size_t max_txn_ops)
{
	struct arena ar = ARENA_INIT;
	struct keyset puts = {0};
	struct ivset dels = {0};
	int err = check_txn_ops(r, max_txn_ops);

	if (err == 0)
		err = check_intervals(&ar, r->success, r->success_count, &puts,
				      &dels);
	arena_free(&ar);
	return err;
}

/* ---- range ------------------------------------------------------------ */

static bool prune_kv(const etcdserverpb_RangeRequest *r, const struct mvcc_kv *kv)
{
	if (r->max_mod_revision && kv->mod_rev > r->max_mod_revision)
		return true;
	if (r->min_mod_revision && kv->mod_rev < r->min_mod_revision)
		return true;
	if (r->max_create_revision && kv->create_rev > r->max_create_revision)
		return true;
	if (r->min_create_revision && kv->create_rev < r->min_create_revision)
		return true;
	return false;
}

static int sort_target; /* qsort has no context argument */

static int cmp_int64(int64_t a, int64_t b)
{
	return a < b ? -1 : a > b;
}

static int kv_cmp(const void *pa, const void *pb)
{
	const struct mvcc_kv *a = *(struct mvcc_kv *const *)pa;
	const struct mvcc_kv *b = *(struct mvcc_kv *const *)pb;
	int c = 0;

	switch (sort_target) {
	case etcdserverpb_RangeRequest_SortTarget_VERSION:
		c = cmp_int64(a->version, b->version);
		break;
	case etcdserverpb_RangeRequest_SortTarget_CREATE:
		c = cmp_int64(a->create_rev, b->create_rev);
		break;
	case etcdserverpb_RangeRequest_SortTarget_MOD:
		c = cmp_int64(a->mod_rev, b->mod_rev);
		break;
	case etcdserverpb_RangeRequest_SortTarget_VALUE:
		c = slice_cmp(a->value, a->value_len, b->value, b->value_len);
		break;
	default:
		break;
	}
	/* ties keep key order, so results are deterministic */
	return c ? c : slice_cmp(a->key, a->key_len, b->key, b->key_len);
}

static void sort_kvs(struct mvcc_kv **v, size_t n, int target, int order)
{
	sort_target = target;
	qsort(v, n, sizeof(*v), kv_cmp);
	if (order == etcdserverpb_RangeRequest_SortOrder_DESCEND)
		for (size_t i = 0; i < n / 2; i++) {
			struct mvcc_kv *t = v[i];

			v[i] = v[n - 1 - i];
			v[n - 1 - i] = t;
		}
}

/* Fill resp from a range request, reading inside the write txn when
 * in_txn (so a txn's range sees its own earlier writes). */
static int do_range(struct apply_ctx *a, struct arena *ar, bool in_txn,
		    const etcdserverpb_RangeRequest *r,
		    etcdserverpb_RangeResponse *resp)
{
	struct mvcc_range_opts o = {0};
	struct mvcc_range_result *rr = arena_result(ar);
	struct mvcc_kv **v;
	const uint8_t *k, *e;
	size_t kl, el, n = 0;
	int order = r->sort_order, err;

	if (!rr)
		return -ENOMEM;
	o.rev = r->revision;
	o.limit = r->limit;
	o.count_only = r->count_only;
	/* values are dropped after sorting, so a sort by value needs them */
	o.keys_only = r->keys_only &&
		      r->sort_target != etcdserverpb_RangeRequest_SortTarget_VALUE;
	if (order != etcdserverpb_RangeRequest_SortOrder_NONE ||
	    r->min_mod_revision || r->max_mod_revision ||
	    r->min_create_revision || r->max_create_revision)
		o.limit = 0; /* fetch all; sort and cut afterwards */
	if (o.limit > 0)
		o.limit++; /* one extra tells "more" */
	range_args(&r->key, &r->range_end, &k, &kl, &e, &el);
	err = in_txn ? mvcc_txn_range(a->mvcc, k, kl, e, el, &o, rr)
		     : mvcc_range(a->mvcc, k, kl, e, el, &o, rr);
	if (err < 0)
		return err;
	v = arena_alloc(ar, sizeof(*v) * (rr->n ? rr->n : 1));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < rr->n; i++)
		if (!prune_kv(r, &rr->kvs[i]))
			v[n++] = &rr->kvs[i];
	if (r->sort_target != etcdserverpb_RangeRequest_SortTarget_KEY &&
	    order == etcdserverpb_RangeRequest_SortOrder_NONE)
		order = etcdserverpb_RangeRequest_SortOrder_ASCEND;
	if (order != etcdserverpb_RangeRequest_SortOrder_NONE)
		sort_kvs(v, n, r->sort_target, order);
	if (r->limit > 0 && n > (size_t)r->limit) {
		n = (size_t)r->limit;
		resp->more = true;
	}
	resp->has_header = true;
	resp->header = make_header(a, rr->rev);
	resp->count = rr->count;
	return set_kvs(ar, &resp->kvs, v, n, r->keys_only);
}

void apply_range(struct apply_ctx *a, const etcdserverpb_RangeRequest *r,
		 struct apply_out *out)
{
	struct arena ar = ARENA_INIT;
	etcdserverpb_RangeResponse resp = {0};
	int err = do_range(a, &ar, false, r, &resp);

	encode_out(&etcdserverpb_RangeResponse_msg, &resp, err, out);
	arena_free(&ar);
}

/* ---- writes ------------------------------------------------------------- */

static bool lease_ok(struct apply_ctx *a, int64_t lease)
{
	if (lease == 0)
		return true;
	return a->lease_exists && a->lease_exists(a->lease_arg, lease);
}

/* The current kv of key (inside the write txn), or NULL. */
static int get_one(struct apply_ctx *a, struct arena *ar, bool in_txn,
		   const struct pbslice *key, struct mvcc_kv **kv)
{
	struct mvcc_range_opts o = {0};
	struct mvcc_range_result *rr = arena_result(ar);
	int err;

	*kv = NULL;
	if (!rr)
		return -ENOMEM;
	err = in_txn ? mvcc_txn_range(a->mvcc, key->p, key->n, NULL, 0, &o, rr)
		     : mvcc_range(a->mvcc, key->p, key->n, NULL, 0, &o, rr);
	if (err < 0)
		return err;
	if (rr->n > 0)
		*kv = &rr->kvs[0];
	return 0;
}

/* etcd's checkPut: the errors a put can fail with, before any write. */
static int check_put(struct apply_ctx *a, struct arena *ar,
		     const etcdserverpb_PutRequest *p)
{
	struct mvcc_kv *prev;
	int err;

	if (p->ignore_value || p->ignore_lease) {
		if ((err = get_one(a, ar, false, &p->key, &prev)) < 0)
			return err;
		if (!prev)
			return CAIRN_EKEY_NOT_FOUND;
	}
	if (!lease_ok(a, p->lease))
		return CAIRN_ELEASE_NOT_FOUND;
	return 0;
}

/* Put inside an open write txn. */
static int do_put(struct apply_ctx *a, struct arena *ar,
		  const etcdserverpb_PutRequest *p,
		  etcdserverpb_PutResponse *resp)
{
	const uint8_t *val = p->value.p;
	size_t vlen = p->value.n;
	int64_t lease = p->lease;
	struct mvcc_kv *prev = NULL;
	int err;

	if (p->ignore_value || p->ignore_lease || p->prev_kv) {
		if ((err = get_one(a, ar, true, &p->key, &prev)) < 0)
			return err;
	}
	if ((p->ignore_value || p->ignore_lease) && !prev)
		return CAIRN_EKEY_NOT_FOUND;
	if (p->ignore_value) {
		val = prev->value;
		vlen = prev->value_len;
	}
	if (p->ignore_lease)
		lease = prev->lease;
	if (p->prev_kv && prev) {
		resp->has_prev_kv = true;
		kv_to_pb(prev, &resp->prev_kv);
	}
	resp->has_header = true;
	return mvcc_txn_put(a->mvcc, p->key.p, p->key.n, val, vlen, lease);
}

static int do_delete(struct apply_ctx *a, struct arena *ar,
		     const etcdserverpb_DeleteRangeRequest *d,
		     etcdserverpb_DeleteRangeResponse *resp)
{
	struct mvcc_range_result *prev = NULL;
	struct mvcc_kv **v;
	const uint8_t *k, *e;
	size_t kl, el;
	int64_t deleted = 0;
	int err;

	if (d->prev_kv && !(prev = arena_result(ar)))
		return -ENOMEM;
	range_args(&d->key, &d->range_end, &k, &kl, &e, &el);
	err = mvcc_txn_delete_range(a->mvcc, k, kl, e, el, &deleted, prev);
	if (err < 0)
		return err;
	resp->has_header = true;
	resp->deleted = deleted;
	if (!prev)
		return 0;
	v = arena_alloc(ar, sizeof(*v) * (prev->n ? prev->n : 1));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < prev->n; i++)
		v[i] = &prev->kvs[i];
	return set_kvs(ar, &resp->prev_kvs, v, prev->n, false);
}

/* ---- txn ---------------------------------------------------------------- */

static bool compare_kv(const etcdserverpb_Compare *c, const struct mvcc_kv *kv)
{
	int64_t want = 0, have = 0;
	int r;

	switch (c->target) {
	case etcdserverpb_Compare_CompareTarget_VALUE: {
		const struct pbslice *v = &c->target_union.value;
		static const struct pbslice none = {NULL, 0};

		if (c->which_target_union != etcdserverpb_Compare_value_tag)
			v = &none;
		r = slice_cmp(kv->value, kv->value_len, v->p, v->n);
		goto result;
	}
	case etcdserverpb_Compare_CompareTarget_CREATE:
		have = kv->create_rev;
		if (c->which_target_union ==
		    etcdserverpb_Compare_create_revision_tag)
			want = c->target_union.create_revision;
		break;
	case etcdserverpb_Compare_CompareTarget_MOD:
		have = kv->mod_rev;
		if (c->which_target_union == etcdserverpb_Compare_mod_revision_tag)
			want = c->target_union.mod_revision;
		break;
	case etcdserverpb_Compare_CompareTarget_VERSION:
		have = kv->version;
		if (c->which_target_union == etcdserverpb_Compare_version_tag)
			want = c->target_union.version;
		break;
	case etcdserverpb_Compare_CompareTarget_LEASE:
		have = kv->lease;
		if (c->which_target_union == etcdserverpb_Compare_lease_tag)
			want = c->target_union.lease;
		break;
	default:
		break;
	}
	r = cmp_int64(have, want);
result:
	switch (c->result) {
	case etcdserverpb_Compare_CompareResult_EQUAL:
		return r == 0;
	case etcdserverpb_Compare_CompareResult_NOT_EQUAL:
		return r != 0;
	case etcdserverpb_Compare_CompareResult_GREATER:
		return r > 0;
	case etcdserverpb_Compare_CompareResult_LESS:
		return r < 0;
	default:
		return true;
	}
}

static int apply_compare(struct apply_ctx *a, const etcdserverpb_Compare *c,
			 bool *ok)
{
	struct mvcc_range_opts o = {0};
	struct mvcc_range_result rr = {0};
	struct mvcc_kv zero = {0};
	int err;

	err = mvcc_range(a->mvcc, c->key.p, c->key.n, c->range_end.p,
			 c->range_end.n, &o, &rr);
	if (err < 0) {
		*ok = false; /* etcd: a failing range fails the compare */
		return 0;
	}
	if (rr.n == 0) {
		/* nothing to compare a value with; other targets see zeros */
		*ok = c->target != etcdserverpb_Compare_CompareTarget_VALUE &&
		      compare_kv(c, &zero);
	} else {
		*ok = true;
		for (size_t i = 0; i < rr.n && *ok; i++)
			*ok = compare_kv(c, &rr.kvs[i]);
	}
	mvcc_range_result_free(&rr);
	return 0;
}

/* The branch taken at each txn level, evaluated before any write (etcd's
 * compareToPath): path[0] for this txn, then its nested txns in order. */
struct txn_path {
	bool *taken;
	size_t n, cap;
};

static int path_push(struct arena *ar, struct txn_path *p, bool v)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		bool *t = arena_alloc(ar, cap);

		if (!t)
			return -ENOMEM;
		if (p->n)
			memcpy(t, p->taken, p->n);
		p->taken = t;
		p->cap = cap;
	}
	p->taken[p->n++] = v;
	return 0;
}

static const etcdserverpb_RequestOp *branch(const etcdserverpb_TxnRequest *t,
					    bool ok, size_t *n)
{
	*n = ok ? t->success_count : t->failure_count;
	return ok ? t->success : t->failure;
}

static int eval_path(struct apply_ctx *a, struct arena *ar,
		     const etcdserverpb_TxnRequest *t, struct txn_path *p)
{
	const etcdserverpb_RequestOp *ops;
	bool ok = true;
	size_t n;
	int err;

	for (size_t i = 0; i < t->compare_count && ok; i++)
		if ((err = apply_compare(a, &t->compare[i], &ok)) < 0)
			return err;
	if ((err = path_push(ar, p, ok)) < 0)
		return err;
	ops = branch(t, ok, &n);
	for (size_t i = 0; i < n; i++)
		if (ops[i].which_request ==
			    etcdserverpb_RequestOp_request_txn_tag &&
		    OP_TXN(&ops[i]) &&
		    (err = eval_path(a, ar, OP_TXN(&ops[i]), p)) < 0)
			return err;
	return 0;
}

static int check_range_rev(struct apply_ctx *a,
			   const etcdserverpb_RangeRequest *r)
{
	if (r->revision == 0)
		return 0;
	if (r->revision > mvcc_rev(a->mvcc))
		return CAIRN_EFUTURE_REV;
	if (r->revision < mvcc_compact_rev(a->mvcc))
		return CAIRN_ECOMPACTED;
	return 0;
}

/* etcd's checkRequests over the chosen path; *pos walks the path. */
static int check_path(struct apply_ctx *a, struct arena *ar,
		      const etcdserverpb_TxnRequest *t,
		      const struct txn_path *p, size_t *pos)
{
	const etcdserverpb_RequestOp *ops;
	size_t n;
	int err = 0;

	ops = branch(t, p->taken[(*pos)++], &n);
	for (size_t i = 0; i < n && !err; i++) {
		const etcdserverpb_RequestOp *op = &ops[i];

		switch (op->which_request) {
		case etcdserverpb_RequestOp_request_range_tag:
			err = check_range_rev(a, &op->request.request_range);
			break;
		case etcdserverpb_RequestOp_request_put_tag:
			err = check_put(a, ar, &op->request.request_put);
			break;
		case etcdserverpb_RequestOp_request_txn_tag:
			if (OP_TXN(op))
				err = check_path(a, ar, OP_TXN(op), p, pos);
			break;
		default:
			break;
		}
	}
	return err;
}

bool apply_txn_is_write(const etcdserverpb_TxnRequest *t)
{
	const etcdserverpb_RequestOp *sets[2] = {t->success, t->failure};
	size_t counts[2] = {t->success_count, t->failure_count};

	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < counts[s]; i++) {
			const etcdserverpb_RequestOp *op = &sets[s][i];

			if (op->which_request ==
				    etcdserverpb_RequestOp_request_put_tag ||
			    op->which_request ==
				    etcdserverpb_RequestOp_request_delete_range_tag)
				return true;
			if (op->which_request ==
				    etcdserverpb_RequestOp_request_txn_tag &&
			    OP_TXN(op) && apply_txn_is_write(OP_TXN(op)))
				return true;
		}
	return false;
}

static int exec_txn(struct apply_ctx *a, struct arena *ar, bool in_txn,
		    const etcdserverpb_TxnRequest *t, const struct txn_path *p,
		    size_t *pos, etcdserverpb_TxnResponse *resp);

static int exec_op(struct apply_ctx *a, struct arena *ar, bool in_txn,
		   const etcdserverpb_RequestOp *op, const struct txn_path *p,
		   size_t *pos, etcdserverpb_ResponseOp *r)
{
	switch (op->which_request) {
	case etcdserverpb_RequestOp_request_range_tag:
		r->which_response = etcdserverpb_ResponseOp_response_range_tag;
		return do_range(a, ar, in_txn, &op->request.request_range,
				&r->response.response_range);
	case etcdserverpb_RequestOp_request_put_tag:
		r->which_response = etcdserverpb_ResponseOp_response_put_tag;
		return do_put(a, ar, &op->request.request_put,
			      &r->response.response_put);
	case etcdserverpb_RequestOp_request_delete_range_tag:
		r->which_response =
			etcdserverpb_ResponseOp_response_delete_range_tag;
		return do_delete(a, ar, &op->request.request_delete_range,
				 &r->response.response_delete_range);
	case etcdserverpb_RequestOp_request_txn_tag:
		r->which_response = etcdserverpb_ResponseOp_response_txn_tag;
		RESP_TXN(r) = arena_alloc(ar, sizeof(*RESP_TXN(r)));
		if (!RESP_TXN(r))
			return -ENOMEM;
		return exec_txn(a, ar, in_txn, OP_TXN(op), p, pos, RESP_TXN(r));
	default:
		return CAIRN_EKEY_NOT_FOUND;
	}
}

static int exec_txn(struct apply_ctx *a, struct arena *ar, bool in_txn,
		    const etcdserverpb_TxnRequest *t, const struct txn_path *p,
		    size_t *pos, etcdserverpb_TxnResponse *resp)
{
	bool ok = p->taken[(*pos)++];
	const etcdserverpb_RequestOp *ops;
	size_t n;
	int err;

	ops = branch(t, ok, &n);
	resp->has_header = true;
	resp->succeeded = ok;
	resp->responses_count = (pb_size_t)n;
	resp->responses = arena_alloc(ar, sizeof(*resp->responses) * (n ? n : 1));
	if (!resp->responses)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		err = exec_op(a, ar, in_txn, &ops[i], p, pos,
			      &resp->responses[i]);
		if (err < 0)
			return err;
	}
	return 0;
}

/* Headers inside a txn response carry the txn's final revision. */
static void stamp_headers(struct apply_ctx *a, etcdserverpb_TxnResponse *t,
			  int64_t rev)
{
	t->header = make_header(a, rev);
	for (size_t i = 0; i < t->responses_count; i++) {
		etcdserverpb_ResponseOp *r = &t->responses[i];

		switch (r->which_response) {
		case etcdserverpb_ResponseOp_response_range_tag:
			/* a range keeps the revision it read at */
			break;
		case etcdserverpb_ResponseOp_response_put_tag:
			r->response.response_put.header = make_header(a, rev);
			break;
		case etcdserverpb_ResponseOp_response_delete_range_tag:
			r->response.response_delete_range.header =
				make_header(a, rev);
			break;
		case etcdserverpb_ResponseOp_response_txn_tag:
			stamp_headers(a, RESP_TXN(r), rev);
			break;
		}
	}
}

static int do_txn(struct apply_ctx *a, struct arena *ar,
		  const etcdserverpb_TxnRequest *t,
		  etcdserverpb_TxnResponse *resp)
{
	struct txn_path path = {0};
	bool write = apply_txn_is_write(t);
	size_t pos = 0;
	int64_t rev;
	int err;

	if ((err = eval_path(a, ar, t, &path)) < 0)
		return err;
	if ((err = check_path(a, ar, t, &path, &pos)) < 0)
		return err;
	pos = 0;
	if (!write) {
		err = exec_txn(a, ar, false, t, &path, &pos, resp);
		rev = mvcc_rev(a->mvcc);
	} else {
		if ((err = mvcc_txn_begin(a->mvcc)) < 0)
			return err;
		err = exec_txn(a, ar, true, t, &path, &pos, resp);
		/* checks ran first, so a failure here is a system error; the
		 * txn still ends so MVCC stays consistent */
		rev = mvcc_txn_end(a->mvcc);
	}
	if (err < 0)
		return err;
	stamp_headers(a, resp, rev);
	return 0;
}

/* ---- committed entries -------------------------------------------------- */

static void apply_put(struct apply_ctx *a, const etcdserverpb_PutRequest *p,
		      bool want, struct apply_out *out)
{
	struct arena ar = ARENA_INIT;
	etcdserverpb_PutResponse resp = {0};
	int64_t rev;
	int err;

	if (!lease_ok(a, p->lease)) {
		err = CAIRN_ELEASE_NOT_FOUND;
		goto done;
	}
	if ((err = mvcc_txn_begin(a->mvcc)) < 0)
		goto done;
	err = do_put(a, &ar, p, &resp);
	rev = mvcc_txn_end(a->mvcc);
	resp.header = make_header(a, rev);
done:
	if (want)
		encode_out(&etcdserverpb_PutResponse_msg, &resp, err, out);
	else
		out->err = err;
	arena_free(&ar);
}

static void apply_delete(struct apply_ctx *a,
			 const etcdserverpb_DeleteRangeRequest *d, bool want,
			 struct apply_out *out)
{
	struct arena ar = ARENA_INIT;
	etcdserverpb_DeleteRangeResponse resp = {0};
	int64_t rev;
	int err;

	if ((err = mvcc_txn_begin(a->mvcc)) < 0)
		goto done;
	err = do_delete(a, &ar, d, &resp);
	rev = mvcc_txn_end(a->mvcc);
	resp.header = make_header(a, rev);
done:
	if (want)
		encode_out(&etcdserverpb_DeleteRangeResponse_msg, &resp, err,
			   out);
	else
		out->err = err;
	arena_free(&ar);
}

static void apply_txn(struct apply_ctx *a, const etcdserverpb_TxnRequest *t,
		      bool want, struct apply_out *out)
{
	struct arena ar = ARENA_INIT;
	etcdserverpb_TxnResponse resp = {0};
	int err = do_txn(a, &ar, t, &resp);

	if (want)
		encode_out(&etcdserverpb_TxnResponse_msg, &resp, err, out);
	else
		out->err = err;
	arena_free(&ar);
}

static void apply_compaction(struct apply_ctx *a,
			     const etcdserverpb_CompactionRequest *c, bool want,
			     struct apply_out *out)
{
	etcdserverpb_CompactionResponse resp = {0};
	/* compaction runs to the end inside apply, so "physical" holds */
	int err = mvcc_compact(a->mvcc, c->revision);

	resp.has_header = true;
	resp.header = make_header(a, mvcc_rev(a->mvcc));
	if (want)
		encode_out(&etcdserverpb_CompactionResponse_msg, &resp, err,
			   out);
	else
		out->err = err;
}

void apply_txn_local(struct apply_ctx *a, const etcdserverpb_TxnRequest *t,
		     struct apply_out *out)
{
	apply_txn(a, t, true, out);
}

etcdserverpb_ResponseHeader apply_header(const struct apply_ctx *a)
{
	return make_header(a, mvcc_rev(a->mvcc));
}

etcdserverpb_ResponseHeader apply_header_at(const struct apply_ctx *a,
					    int64_t rev)
{
	return make_header(a, rev);
}

/* A request kind core/apply does not know: decode the whole (large)
 * InternalRaftRequest for the extension applier. */
static void apply_other(struct apply_ctx *a, const uint8_t *data, size_t len,
			bool want_resp, struct apply_out *out)
{
	etcdserverpb_InternalRaftRequest *req = calloc(1, sizeof(*req));

	if (!req) {
		out->err = -ENOMEM;
		return;
	}
	if (pbu_decode(&etcdserverpb_InternalRaftRequest_msg, req, data,
		       len) < 0)
		out->err = CAIRN_EBAD_REQUEST;
	else if (!a->ext || !a->ext(a->ext_arg, a, req, want_resp, out))
		out->err = CAIRN_EBAD_REQUEST;
	pb_release(&etcdserverpb_InternalRaftRequest_msg, req);
	free(req);
}

/* Decode a KV request into *m (a struct of desc's type); pb_release'd by
 * the caller. */
static int decode_req(const pb_msgdesc_t *desc, void *m, const uint8_t *p,
		      size_t n, struct apply_out *out)
{
	if (pbu_decode(desc, m, p, n) < 0) {
		out->err = CAIRN_EBAD_REQUEST;
		return -1;
	}
	return 0;
}

void apply_entry(struct apply_ctx *a, const uint8_t *data, size_t len,
		 bool want_resp, uint64_t *id, struct apply_out *out)
{
	union {
		etcdserverpb_PutRequest put;
		etcdserverpb_DeleteRangeRequest del;
		etcdserverpb_TxnRequest txn;
		etcdserverpb_CompactionRequest compact;
	} u;
	const pb_msgdesc_t *desc = NULL;
	const uint8_t *req;
	uint32_t field;
	size_t req_len;

	memset(out, 0, sizeof(*out));
	memset(&u, 0, sizeof(u));
	/* only the request inside is decoded: the whole InternalRaftRequest
	 * is a large struct whose decoding would cost more than the apply */
	if (pbu_unwrap_internal(data, len, id, &field, &req, &req_len) < 0) {
		out->err = CAIRN_EBAD_REQUEST;
		return;
	}
	switch (field) {
	case APPLY_FIELD_PUT:
		desc = &etcdserverpb_PutRequest_msg;
		if (decode_req(desc, &u.put, req, req_len, out) == 0)
			apply_put(a, &u.put, want_resp, out);
		break;
	case APPLY_FIELD_DELETE_RANGE:
		desc = &etcdserverpb_DeleteRangeRequest_msg;
		if (decode_req(desc, &u.del, req, req_len, out) == 0)
			apply_delete(a, &u.del, want_resp, out);
		break;
	case APPLY_FIELD_TXN:
		desc = &etcdserverpb_TxnRequest_msg;
		if (decode_req(desc, &u.txn, req, req_len, out) == 0)
			apply_txn(a, &u.txn, want_resp, out);
		break;
	case APPLY_FIELD_COMPACTION:
		desc = &etcdserverpb_CompactionRequest_msg;
		if (decode_req(desc, &u.compact, req, req_len, out) == 0)
			apply_compaction(a, &u.compact, want_resp, out);
		break;
	default:
		apply_other(a, data, len, want_resp, out);
		return;
	}
	pb_release(desc, &u);
}
