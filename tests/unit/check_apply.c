/* apply: etcd's KV semantics, driven through the real path — requests
 * encoded with nanopb, wrapped in an InternalRaftRequest, applied to MVCC
 * over the default engine, responses decoded again. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/apply.h"
#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "engines/engine.h"
#include "net/proto/pbutil.h"
#include "tests/unit/tmpdir.h"

static char dir[] = "/tmp/check_apply.XXXXXX";
static struct engine_handle eng;
static struct mvcc *mv;
static struct apply_ctx actx;
static uint64_t next_id = 1;

static void setup(void)
{
	char path[256];
	struct engine_config cfg = {0};

	ut_tmpdir(dir, sizeof(dir), "check_apply");
	snprintf(path, sizeof(path), "%s/db", dir);
	ck_assert_int_eq(engine_open(engine_default_name(), path, &cfg, &eng), 0);
	ck_assert_int_eq(mvcc_open(&eng, &mv), 0);
	memset(&actx, 0, sizeof(actx));
	actx.mvcc = mv;
	actx.cluster_id = 7;
	actx.member_id = 9;
	actx.raft_term = 2;
}

static void teardown(void)
{
	mvcc_close(mv);
	engine_close(&eng);
	ut_rmtree(dir);
}

static struct pbslice S(const char *s)
{
	struct pbslice v = {(const uint8_t *)s, strlen(s)};

	return v;
}

/* Encode msg, wrap it as InternalRaftRequest field `field`, apply it. */
static struct apply_out run(uint32_t field, const pb_msgdesc_t *d,
			    const void *msg)
{
	struct apply_out out;
	uint8_t *req = NULL, *ent = NULL;
	size_t rlen = 0, elen = 0;
	uint64_t id = 0, want = next_id++;

	ck_assert_int_eq(pbu_encode_alloc(d, msg, &req, &rlen), 0);
	ck_assert_int_eq(pbu_wrap_internal(want, field, req, rlen, &ent, &elen),
			 0);
	apply_entry(&actx, ent, elen, true, &id, &out);
	ck_assert_uint_eq(id, want);
	free(req);
	free(ent);
	return out;
}

static int64_t put(const char *k, const char *v)
{
	etcdserverpb_PutRequest p = {0};
	etcdserverpb_PutResponse r = {0};
	struct apply_out out;

	p.key = S(k);
	p.value = S(v);
	out = run(4, &etcdserverpb_PutRequest_msg, &p);
	ck_assert_int_eq(out.err, 0);
	ck_assert_int_eq(pbu_decode(&etcdserverpb_PutResponse_msg, &r, out.buf,
				    out.len),
			 0);
	free(out.buf);
	ck_assert(r.has_header);
	ck_assert_uint_eq(r.header.cluster_id, 7);
	ck_assert_uint_eq(r.header.member_id, 9);
	ck_assert_uint_eq(r.header.raft_term, 2);
	return r.header.revision;
}

/* Decoding side of RangeResponse.kvs: collect into a fixed array. */
struct kvs_seen {
	int n;
	char keys[16][32];
	char vals[16][32];
	int64_t ver[16], mod[16];
};

static bool collect_kv(pb_istream_t *is, const pb_field_t *f, void **arg)
{
	struct kvs_seen *s = *arg;
	mvccpb_KeyValue kv = {0};

	(void)f;
	if (!pb_decode(is, &mvccpb_KeyValue_msg, &kv))
		return false;
	if (s->n < 16) {
		snprintf(s->keys[s->n], 32, "%.*s", (int)kv.key.n, kv.key.p);
		snprintf(s->vals[s->n], 32, "%.*s", (int)kv.value.n, kv.value.p);
		s->ver[s->n] = kv.version;
		s->mod[s->n] = kv.mod_revision;
	}
	s->n++;
	return true;
}

static int range(etcdserverpb_RangeRequest *q, struct kvs_seen *seen,
		 etcdserverpb_RangeResponse *r)
{
	struct apply_out out;
	int err;

	memset(seen, 0, sizeof(*seen));
	memset(r, 0, sizeof(*r));
	apply_range(&actx, q, &out);
	if (out.err)
		return out.err;
	r->kvs.funcs.decode = collect_kv;
	r->kvs.arg = seen;
	err = pbu_decode(&etcdserverpb_RangeResponse_msg, r, out.buf, out.len);
	free(out.buf);
	return err;
}

START_TEST(test_put_revisions)
{
	etcdserverpb_RangeRequest q = {0};
	etcdserverpb_RangeResponse r;
	struct kvs_seen seen;

	ck_assert_int_eq(put("a", "1"), 2);
	ck_assert_int_eq(put("a", "2"), 3);
	ck_assert_int_eq(put("b", "x"), 4);
	q.key = S("a");
	ck_assert_int_eq(range(&q, &seen, &r), 0);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_str_eq(seen.vals[0], "2");
	ck_assert_int_eq(seen.ver[0], 2);
	ck_assert_int_eq(seen.mod[0], 3);
	ck_assert_int_eq(r.header.revision, 4);
	ck_assert_int_eq(r.count, 1);
}
END_TEST

START_TEST(test_range_sort_limit_filters)
{
	etcdserverpb_RangeRequest q = {0};
	etcdserverpb_RangeResponse r;
	struct kvs_seen seen;

	put("k1", "c");
	put("k2", "a");
	put("k3", "b");
	put("k2", "a2");
	q.key = S("k");
	q.range_end = S("l");
	q.sort_target = etcdserverpb_RangeRequest_SortTarget_VALUE;
	q.sort_order = etcdserverpb_RangeRequest_SortOrder_DESCEND;
	q.limit = 2;
	ck_assert_int_eq(range(&q, &seen, &r), 0);
	ck_assert_int_eq(seen.n, 2);
	ck_assert_str_eq(seen.vals[0], "c");
	ck_assert_str_eq(seen.vals[1], "b");
	ck_assert(r.more);
	ck_assert_int_eq(r.count, 3);

	memset(&q, 0, sizeof(q));
	q.key = S("k");
	q.range_end = S("l");
	q.min_mod_revision = 4; /* k3 at 4, k2 at 5 */
	ck_assert_int_eq(range(&q, &seen, &r), 0);
	ck_assert_int_eq(seen.n, 2);
	ck_assert_str_eq(seen.keys[0], "k2");
	ck_assert_str_eq(seen.keys[1], "k3");

	memset(&q, 0, sizeof(q));
	q.key = S("k");
	q.range_end = S("l");
	q.revision = 3; /* before k3 and the second k2 */
	ck_assert_int_eq(range(&q, &seen, &r), 0);
	ck_assert_int_eq(seen.n, 2);
	ck_assert_str_eq(seen.vals[1], "a");

	q.revision = 99;
	ck_assert_int_eq(range(&q, &seen, &r), CAIRN_EFUTURE_REV);
}
END_TEST

START_TEST(test_put_ignore_and_lease_errors)
{
	etcdserverpb_PutRequest p = {0};
	struct apply_out out;

	p.key = S("missing");
	p.ignore_value = true;
	out = run(4, &etcdserverpb_PutRequest_msg, &p);
	ck_assert_int_eq(out.err, CAIRN_EKEY_NOT_FOUND);
	ck_assert_str_eq(cairn_strerror(out.err), "etcdserver: key not found");

	memset(&p, 0, sizeof(p));
	p.key = S("k");
	p.lease = 123;
	out = run(4, &etcdserverpb_PutRequest_msg, &p);
	ck_assert_int_eq(out.err, CAIRN_ELEASE_NOT_FOUND);
	ck_assert_int_eq(mvcc_rev(mv), 1); /* nothing was written */

	memset(&p, 0, sizeof(p));
	p.key = S("k");
	p.value = S("v");
	p.ignore_value = true;
	ck_assert_int_eq(apply_check_put(&p), CAIRN_EVALUE_PROVIDED);
	p.key = S("");
	ck_assert_int_eq(apply_check_put(&p), CAIRN_EEMPTY_KEY);
}
END_TEST

static etcdserverpb_RequestOp op_put(const char *k, const char *v)
{
	etcdserverpb_RequestOp op = {0};

	op.which_request = etcdserverpb_RequestOp_request_put_tag;
	op.request.request_put.key = S(k);
	op.request.request_put.value = S(v);
	return op;
}

START_TEST(test_txn_compare_branches)
{
	etcdserverpb_TxnRequest t = {0};
	etcdserverpb_TxnResponse r = {0};
	etcdserverpb_Compare c = {0};
	etcdserverpb_RequestOp ok[2], bad[1];
	struct apply_out out;

	put("x", "1");
	c.key = S("x");
	c.target = etcdserverpb_Compare_CompareTarget_VALUE;
	c.result = etcdserverpb_Compare_CompareResult_EQUAL;
	c.which_target_union = etcdserverpb_Compare_value_tag;
	c.target_union.value = S("1");
	ok[0] = op_put("x", "2");
	ok[1] = op_put("y", "2");
	bad[0] = op_put("z", "0");
	t.compare_count = 1;
	t.compare = &c;
	t.success_count = 2;
	t.success = ok;
	t.failure_count = 1;
	t.failure = bad;
	out = run(6, &etcdserverpb_TxnRequest_msg, &t);
	ck_assert_int_eq(out.err, 0);
	ck_assert_int_eq(pbu_decode(&etcdserverpb_TxnResponse_msg, &r, out.buf,
				    out.len),
			 0);
	free(out.buf);
	ck_assert(r.succeeded);
	ck_assert_int_eq(r.responses_count, 2);
	/* two puts in one txn: one revision */
	ck_assert_int_eq(r.header.revision, 3);
	pb_release(&etcdserverpb_TxnResponse_msg, &r);

	/* now x == "2": the compare fails and the failure branch runs */
	out = run(6, &etcdserverpb_TxnRequest_msg, &t);
	ck_assert_int_eq(out.err, 0);
	memset(&r, 0, sizeof(r));
	ck_assert_int_eq(pbu_decode(&etcdserverpb_TxnResponse_msg, &r, out.buf,
				    out.len),
			 0);
	free(out.buf);
	ck_assert(!r.succeeded);
	ck_assert_int_eq(r.header.revision, 4);
	pb_release(&etcdserverpb_TxnResponse_msg, &r);
}
END_TEST

START_TEST(test_txn_checks)
{
	etcdserverpb_TxnRequest t = {0};
	etcdserverpb_RequestOp ops[3];
	etcdserverpb_RequestOp del = {0};

	ops[0] = op_put("a", "1");
	ops[1] = op_put("a", "2");
	t.success = ops;
	t.success_count = 2;
	ck_assert_int_eq(apply_check_txn(&t, 128), CAIRN_EDUPLICATE_KEY);
	ck_assert_int_eq(apply_check_txn(&t, 1), CAIRN_ETOO_MANY_OPS);

	/* a put inside a deleted range is a duplicate too */
	del.which_request = etcdserverpb_RequestOp_request_delete_range_tag;
	del.request.request_delete_range.key = S("a");
	del.request.request_delete_range.range_end = S("b");
	ops[0] = del;
	ops[1] = op_put("a1", "x");
	ck_assert_int_eq(apply_check_txn(&t, 128), CAIRN_EDUPLICATE_KEY);
	ops[1] = op_put("b", "x");
	ck_assert_int_eq(apply_check_txn(&t, 128), 0);

	/* an empty op is etcd's "key not found" */
	memset(&ops[2], 0, sizeof(ops[2]));
	t.success_count = 3;
	ck_assert_int_eq(apply_check_txn(&t, 128), CAIRN_EKEY_NOT_FOUND);
}
END_TEST

START_TEST(test_compaction)
{
	etcdserverpb_CompactionRequest c = {0};
	etcdserverpb_RangeRequest q = {0};
	etcdserverpb_RangeResponse r;
	struct kvs_seen seen;
	struct apply_out out;

	put("a", "1");
	put("a", "2");
	put("a", "3");
	c.revision = 3;
	out = run(7, &etcdserverpb_CompactionRequest_msg, &c);
	ck_assert_int_eq(out.err, 0);
	free(out.buf);
	q.key = S("a");
	q.revision = 2;
	ck_assert_int_eq(range(&q, &seen, &r), CAIRN_ECOMPACTED);
	q.revision = 3;
	ck_assert_int_eq(range(&q, &seen, &r), 0);
	ck_assert_str_eq(seen.vals[0], "2");
	out = run(7, &etcdserverpb_CompactionRequest_msg, &c);
	ck_assert_int_eq(out.err, CAIRN_ECOMPACTED);
	c.revision = 100;
	out = run(7, &etcdserverpb_CompactionRequest_msg, &c);
	ck_assert_int_eq(out.err, CAIRN_EFUTURE_REV);
}
END_TEST

START_TEST(test_delete_prev_kv)
{
	etcdserverpb_DeleteRangeRequest d = {0};
	etcdserverpb_DeleteRangeResponse r = {0};
	struct kvs_seen seen = {0};
	struct apply_out out;

	put("p/1", "a");
	put("p/2", "b");
	put("q", "c");
	d.key = S("p/");
	d.range_end = S("p0");
	d.prev_kv = true;
	out = run(5, &etcdserverpb_DeleteRangeRequest_msg, &d);
	ck_assert_int_eq(out.err, 0);
	r.prev_kvs.funcs.decode = collect_kv;
	r.prev_kvs.arg = &seen;
	ck_assert_int_eq(pbu_decode(&etcdserverpb_DeleteRangeResponse_msg, &r,
				    out.buf, out.len),
			 0);
	free(out.buf);
	ck_assert_int_eq(r.deleted, 2);
	ck_assert_int_eq(seen.n, 2);
	ck_assert_str_eq(seen.vals[1], "b");
	ck_assert_int_eq(r.header.revision, 5);
}
END_TEST

Suite *apply_suite(void)
{
	Suite *s = suite_create("apply");
	TCase *tc = tcase_create("kv");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_put_revisions);
	tcase_add_test(tc, test_range_sort_limit_filters);
	tcase_add_test(tc, test_put_ignore_and_lease_errors);
	tcase_add_test(tc, test_txn_compare_branches);
	tcase_add_test(tc, test_txn_checks);
	tcase_add_test(tc, test_compaction);
	tcase_add_test(tc, test_delete_prev_kv);
	suite_add_tcase(s, tc);
	return s;
}
