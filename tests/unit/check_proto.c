/* check_proto: the nanopb contract (net/proto/) — round trips of etcd's
 * messages under the pbslice convention, the pbutil helpers, and hostile
 * input. Wire compatibility with a real implementation is checked
 * separately by tests/unit/proto_interop.py. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pb_common.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "core/errors.h"
#include "net/proto/kv.pb.h"
#include "net/proto/pbslice.h"
#include "net/proto/pbutil.h"
#include "net/proto/raft_internal.pb.h"
#include "net/proto/rpc.pb.h"
#include "tests/unit/suites.h"

#define PUT_VALUE_LEN (1536 * 1024)
#define RANGE_KVS 70000

static struct pbslice sl(const char *s)
{
	struct pbslice v = {(const uint8_t *)s, strlen(s)};
	return v;
}

static void assert_slice(struct pbslice v, const char *want)
{
	ck_assert_uint_eq(v.n, strlen(want));
	if (v.n)
		ck_assert_mem_eq(v.p, want, v.n);
}

/* Encode with pbu_encode_alloc and check pbu_encode_to/pbu_encoded_size
 * agree with it byte for byte. */
static uint8_t *enc(const pb_msgdesc_t *d, const void *msg, size_t *len)
{
	uint8_t *out, *again;
	size_t size, got;

	ck_assert_int_eq(pbu_encode_alloc(d, msg, &out, len), 0);
	ck_assert_ptr_nonnull(out);
	ck_assert_int_eq(pbu_encoded_size(d, msg, &size), 0);
	ck_assert_uint_eq(size, *len);
	again = malloc(size + 1);
	ck_assert_ptr_nonnull(again);
	ck_assert_int_eq(pbu_encode_to(d, msg, again, size, &got), 0);
	ck_assert_uint_eq(got, size);
	if (size)
		ck_assert_mem_eq(again, out, size);
	free(again);
	return out;
}

START_TEST(put_big_value_round_trip)
{
	etcdserverpb_PutRequest in = etcdserverpb_PutRequest_init_zero;
	etcdserverpb_PutRequest out;
	uint8_t *value = malloc(PUT_VALUE_LEN), *buf;
	size_t len;

	ck_assert_ptr_nonnull(value);
	for (size_t i = 0; i < PUT_VALUE_LEN; i++)
		value[i] = (uint8_t)(i * 131 + 7);
	in.key = sl("/registry/pods/default/big");
	in.value.p = value;
	in.value.n = PUT_VALUE_LEN;
	in.lease = 0x7a1b2c3d4e5f6071;
	in.prev_kv = true;
	in.ignore_lease = true;
	buf = enc(etcdserverpb_PutRequest_fields, &in, &len);
	ck_assert_uint_gt(len, PUT_VALUE_LEN);

	memset(&out, 0xa5, sizeof(out)); /* pbu_decode must not trust it */
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_PutRequest_fields, &out, buf, len), 0);
	assert_slice(out.key, "/registry/pods/default/big");
	ck_assert_uint_eq(out.value.n, PUT_VALUE_LEN);
	/* Zero-copy: the value is a slice of the input buffer. */
	ck_assert(out.value.p > buf && out.value.p + out.value.n <= buf + len);
	ck_assert_mem_eq(out.value.p, value, PUT_VALUE_LEN);
	ck_assert_int_eq(out.lease, 0x7a1b2c3d4e5f6071);
	ck_assert(out.prev_kv && out.ignore_lease && !out.ignore_value);
	pb_release(etcdserverpb_PutRequest_fields, &out);
	free(buf);
	free(value);
}
END_TEST

START_TEST(range_request_round_trip)
{
	etcdserverpb_RangeRequest in = etcdserverpb_RangeRequest_init_zero;
	etcdserverpb_RangeRequest out;
	uint8_t *buf;
	size_t len;

	in.key = sl("a");
	in.range_end.p = (const uint8_t *)"\0";
	in.range_end.n = 1;
	in.limit = 10;
	in.revision = -1;
	in.sort_order = etcdserverpb_RangeRequest_SortOrder_DESCEND;
	in.sort_target = etcdserverpb_RangeRequest_SortTarget_MOD;
	in.serializable = true;
	in.keys_only = true;
	in.min_mod_revision = 3;
	in.max_create_revision = 1LL << 40;
	buf = enc(etcdserverpb_RangeRequest_fields, &in, &len);
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_RangeRequest_fields, &out, buf, len),
		0);
	assert_slice(out.key, "a");
	ck_assert_uint_eq(out.range_end.n, 1);
	ck_assert_int_eq(out.range_end.p[0], 0);
	ck_assert_int_eq(out.limit, 10);
	ck_assert_int_eq(out.revision, -1);
	ck_assert_int_eq(out.sort_order,
			 etcdserverpb_RangeRequest_SortOrder_DESCEND);
	ck_assert_int_eq(out.sort_target,
			 etcdserverpb_RangeRequest_SortTarget_MOD);
	ck_assert(out.serializable && out.keys_only && !out.count_only);
	ck_assert_int_eq(out.min_mod_revision, 3);
	ck_assert_int_eq(out.max_mod_revision, 0);
	ck_assert_int_eq(out.max_create_revision, 1LL << 40);
	pb_release(etcdserverpb_RangeRequest_fields, &out);
	free(buf);
}
END_TEST

START_TEST(empty_bytes_follow_proto3)
{
	etcdserverpb_PutRequest put = etcdserverpb_PutRequest_init_zero;
	etcdserverpb_Compare cmp = etcdserverpb_Compare_init_zero;
	uint8_t buf[64];
	size_t len;

	/* An empty singular bytes field is not on the wire... */
	put.lease = 1;
	ck_assert_int_eq(pbu_encode_to(etcdserverpb_PutRequest_fields, &put,
				       buf, sizeof(buf), &len),
			 0);
	ck_assert_uint_eq(len, 2);
	ck_assert_int_eq(buf[0], 0x18); /* field 3 varint */
	/* ...but a selected oneof member is, even when empty. */
	cmp.which_target_union = etcdserverpb_Compare_value_tag;
	ck_assert_int_eq(pbu_encode_to(etcdserverpb_Compare_fields, &cmp, buf,
				       sizeof(buf), &len),
			 0);
	ck_assert_uint_eq(len, 2);
	ck_assert_int_eq(buf[0], (7 << 3) | 2);
	ck_assert_int_eq(buf[1], 0);
	memset(&cmp, 0x5a, sizeof(cmp));
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_Compare_fields, &cmp, buf, len), 0);
	ck_assert_uint_eq(cmp.which_target_union,
			  etcdserverpb_Compare_value_tag);
	ck_assert_uint_eq(cmp.target_union.value.n, 0);
	ck_assert_uint_eq(cmp.key.n, 0);
	ck_assert_uint_eq(cmp.range_end.n, 0);
}
END_TEST

START_TEST(last_occurrence_wins)
{
	/* key "a", key "bc": protobuf keeps the last. */
	static const uint8_t wire[] = {0x0a, 1, 'a', 0x0a, 2, 'b', 'c'};
	etcdserverpb_PutRequest out;

	ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields, &out, wire,
				    sizeof(wire)),
			 0);
	assert_slice(out.key, "bc");
}
END_TEST

/* txn: compare[key=="v1" by value, version>3];
 * success[put, range, txn{compare[mod<9], success[delete_range]}];
 * failure[delete_range] */
START_TEST(txn_nested_round_trip)
{
	etcdserverpb_Compare cmp[2], inner_cmp;
	etcdserverpb_RequestOp succ[3], fail_op, inner_op;
	etcdserverpb_TxnRequest in = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_TxnRequest inner_txn = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_TxnRequest out;
	etcdserverpb_TxnRequest *nested;
	uint8_t *buf;
	size_t len;

	memset(cmp, 0, sizeof(cmp));
	memset(succ, 0, sizeof(succ));
	memset(&fail_op, 0, sizeof(fail_op));
	memset(&inner_cmp, 0, sizeof(inner_cmp));
	memset(&inner_op, 0, sizeof(inner_op));
	cmp[0].result = etcdserverpb_Compare_CompareResult_EQUAL;
	cmp[0].target = etcdserverpb_Compare_CompareTarget_VALUE;
	cmp[0].key = sl("k1");
	cmp[0].which_target_union = etcdserverpb_Compare_value_tag;
	cmp[0].target_union.value = sl("v1");
	cmp[1].result = etcdserverpb_Compare_CompareResult_GREATER;
	cmp[1].target = etcdserverpb_Compare_CompareTarget_VERSION;
	cmp[1].key = sl("k2");
	cmp[1].range_end = sl("k3");
	cmp[1].which_target_union = etcdserverpb_Compare_version_tag;
	cmp[1].target_union.version = 3;
	succ[0].which_request = etcdserverpb_RequestOp_request_put_tag;
	succ[0].request.request_put.key = sl("k1");
	succ[0].request.request_put.value = sl("v2");
	succ[1].which_request = etcdserverpb_RequestOp_request_range_tag;
	succ[1].request.request_range.key = sl("k");
	succ[1].request.request_range.range_end = sl("l");
	succ[1].request.request_range.limit = 5;
	inner_cmp.result = etcdserverpb_Compare_CompareResult_LESS;
	inner_cmp.target = etcdserverpb_Compare_CompareTarget_MOD;
	inner_cmp.key = sl("k4");
	inner_cmp.which_target_union = etcdserverpb_Compare_mod_revision_tag;
	inner_cmp.target_union.mod_revision = 9;
	inner_op.which_request =
		etcdserverpb_RequestOp_request_delete_range_tag;
	inner_op.request.request_delete_range.key = sl("k4");
	inner_op.request.request_delete_range.prev_kv = true;
	inner_txn.compare_count = 1;
	inner_txn.compare = &inner_cmp;
	inner_txn.success_count = 1;
	inner_txn.success = &inner_op;
	succ[2].which_request = etcdserverpb_RequestOp_request_txn_tag;
	succ[2].request.request_txn = &inner_txn;
	fail_op.which_request = etcdserverpb_RequestOp_request_delete_range_tag;
	fail_op.request.request_delete_range.key = sl("k5");
	in.compare_count = 2;
	in.compare = cmp;
	in.success_count = 3;
	in.success = succ;
	in.failure_count = 1;
	in.failure = &fail_op;
	buf = enc(etcdserverpb_TxnRequest_fields, &in, &len);

	ck_assert_int_eq(
		pbu_decode(etcdserverpb_TxnRequest_fields, &out, buf, len), 0);
	ck_assert_uint_eq(out.compare_count, 2);
	ck_assert_int_eq(out.compare[0].target,
			 etcdserverpb_Compare_CompareTarget_VALUE);
	assert_slice(out.compare[0].key, "k1");
	ck_assert_uint_eq(out.compare[0].which_target_union,
			  etcdserverpb_Compare_value_tag);
	assert_slice(out.compare[0].target_union.value, "v1");
	ck_assert_int_eq(out.compare[1].result,
			 etcdserverpb_Compare_CompareResult_GREATER);
	assert_slice(out.compare[1].range_end, "k3");
	ck_assert_uint_eq(out.compare[1].which_target_union,
			  etcdserverpb_Compare_version_tag);
	ck_assert_int_eq(out.compare[1].target_union.version, 3);
	ck_assert_uint_eq(out.success_count, 3);
	ck_assert_uint_eq(out.success[0].which_request,
			  etcdserverpb_RequestOp_request_put_tag);
	assert_slice(out.success[0].request.request_put.key, "k1");
	assert_slice(out.success[0].request.request_put.value, "v2");
	ck_assert_uint_eq(out.success[1].which_request,
			  etcdserverpb_RequestOp_request_range_tag);
	assert_slice(out.success[1].request.request_range.range_end, "l");
	ck_assert_int_eq(out.success[1].request.request_range.limit, 5);
	ck_assert_uint_eq(out.success[2].which_request,
			  etcdserverpb_RequestOp_request_txn_tag);
	nested = out.success[2].request.request_txn;
	ck_assert_ptr_nonnull(nested);
	ck_assert_uint_eq(nested->compare_count, 1);
	ck_assert_int_eq(nested->compare[0].target_union.mod_revision, 9);
	ck_assert_uint_eq(nested->success_count, 1);
	ck_assert_uint_eq(nested->failure_count, 0);
	assert_slice(nested->success[0].request.request_delete_range.key, "k4");
	ck_assert(nested->success[0].request.request_delete_range.prev_kv);
	ck_assert_uint_eq(out.failure_count, 1);
	assert_slice(out.failure[0].request.request_delete_range.key, "k5");
	/* pb_release frees the nested arrays too (ASan/LSan checks it). */
	pb_release(etcdserverpb_TxnRequest_fields, &out);
	ck_assert_ptr_null(out.compare);
	ck_assert_ptr_null(out.success);
	free(buf);
}
END_TEST

struct kv_check {
	size_t seen;
	int bad;
};

static int kv_check_fn(void *arg, const struct pbu_kv *kv)
{
	struct kv_check *c = arg;
	char want[32];
	int n = snprintf(want, sizeof(want), "key-%07zu", c->seen);

	if (kv->key_len != (size_t)n || memcmp(kv->key, want, n) ||
	    kv->mod_rev != (int64_t)c->seen + 100 ||
	    kv->create_rev != (int64_t)c->seen + 1 || kv->version != 1 ||
	    kv->lease != (c->seen % 2 ? 0 : 77) ||
	    kv->value_len != (c->seen % 3 ? 5 : 0))
		c->bad++;
	c->seen++;
	return 0;
}

START_TEST(range_response_70000_kvs)
{
	etcdserverpb_RangeResponse in = etcdserverpb_RangeResponse_init_zero;
	etcdserverpb_RangeResponse out = etcdserverpb_RangeResponse_init_zero;
	struct pbu_kv *kvs = calloc(RANGE_KVS, sizeof(*kvs));
	char(*keys)[16] = calloc(RANGE_KVS, 16);
	struct pbu_kv_sink sink;
	struct kv_check check = {0, 0};
	struct pbu_list list;
	uint8_t *buf;
	size_t len;

	ck_assert(kvs && keys);
	for (size_t i = 0; i < RANGE_KVS; i++) {
		kvs[i].key_len = snprintf(keys[i], 16, "key-%07zu", i);
		kvs[i].key = (const uint8_t *)keys[i];
		kvs[i].value = (const uint8_t *)"value";
		kvs[i].value_len = i % 3 ? 5 : 0;
		kvs[i].create_rev = i + 1;
		kvs[i].mod_rev = i + 100;
		kvs[i].version = 1;
		kvs[i].lease = i % 2 ? 0 : 77;
	}
	in.has_header = true;
	in.header.cluster_id = 0xdeadbeefcafe;
	in.header.revision = RANGE_KVS + 100;
	in.count = RANGE_KVS;
	in.more = true;
	pbu_set_kvs(&in.kvs, &list, kvs, RANGE_KVS);
	buf = enc(etcdserverpb_RangeResponse_fields, &in, &len);

	sink.fn = kv_check_fn;
	sink.arg = &check;
	pbu_sink_kvs(&out.kvs, &sink);
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_RangeResponse_fields, &out, buf, len),
		0);
	ck_assert_uint_eq(check.seen, RANGE_KVS);
	ck_assert_int_eq(check.bad, 0);
	ck_assert(out.has_header);
	ck_assert_uint_eq(out.header.cluster_id, 0xdeadbeefcafe);
	ck_assert_int_eq(out.header.revision, RANGE_KVS + 100);
	ck_assert_int_eq(out.count, RANGE_KVS);
	ck_assert(out.more);
	free(buf);

	/* An empty list writes nothing for the field. */
	pbu_set_kvs(&in.kvs, &list, NULL, 0);
	in.has_header = false;
	in.count = 0;
	in.more = false;
	buf = enc(etcdserverpb_RangeResponse_fields, &in, &len);
	ck_assert_uint_eq(len, 0);
	free(buf);
	free(kvs);
	free(keys);
}
END_TEST

static int stop_fn(void *arg, const struct pbu_kv *kv)
{
	(void)kv;
	return ++*(int *)arg >= 2;
}

START_TEST(sink_can_stop_decoding)
{
	etcdserverpb_DeleteRangeResponse in =
		etcdserverpb_DeleteRangeResponse_init_zero;
	etcdserverpb_DeleteRangeResponse out =
		etcdserverpb_DeleteRangeResponse_init_zero;
	struct pbu_kv kvs[3] = {{.key = (const uint8_t *)"a", .key_len = 1},
				{.key = (const uint8_t *)"b", .key_len = 1},
				{.key = (const uint8_t *)"c", .key_len = 1}};
	struct pbu_list list;
	struct pbu_kv_sink sink;
	int calls = 0;
	uint8_t *buf;
	size_t len;

	in.deleted = 3;
	pbu_set_kvs(&in.prev_kvs, &list, kvs, 3);
	buf = enc(etcdserverpb_DeleteRangeResponse_fields, &in, &len);
	sink.fn = stop_fn;
	sink.arg = &calls;
	pbu_sink_kvs(&out.prev_kvs, &sink);
	ck_assert_int_eq(pbu_decode(etcdserverpb_DeleteRangeResponse_fields,
				    &out, buf, len),
			 CAIRN_EBAD_REQUEST);
	ck_assert_int_eq(calls, 2);
	free(buf);
}
END_TEST

static int collect_bytes(void *arg, const uint8_t *p, size_t n)
{
	char *acc = arg;

	if (n)
		strncat(acc, (const char *)p, n);
	strcat(acc, "|");
	return 0;
}

START_TEST(lease_keys_and_leases)
{
	etcdserverpb_LeaseTimeToLiveResponse in =
		etcdserverpb_LeaseTimeToLiveResponse_init_zero;
	etcdserverpb_LeaseTimeToLiveResponse out =
		etcdserverpb_LeaseTimeToLiveResponse_init_zero;
	etcdserverpb_LeaseLeasesResponse lin =
		etcdserverpb_LeaseLeasesResponse_init_zero;
	struct pbslice keys[3] = {sl("foo"), {NULL, 0}, sl("bar")};
	int64_t ids[2] = {1, -5};
	struct pbu_bytes_sink sink;
	struct pbu_list list, list2;
	char acc[64] = "";
	uint8_t *buf;
	size_t len;

	in.ID = 42;
	in.TTL = 10;
	in.grantedTTL = 60;
	pbu_set_bytes_list(&in.keys, &list, keys, 3);
	buf = enc(etcdserverpb_LeaseTimeToLiveResponse_fields, &in, &len);
	sink.fn = collect_bytes;
	sink.arg = acc;
	pbu_sink_bytes(&out.keys, &sink);
	ck_assert_int_eq(pbu_decode(etcdserverpb_LeaseTimeToLiveResponse_fields,
				    &out, buf, len),
			 0);
	ck_assert_str_eq(acc, "foo||bar|");
	ck_assert_int_eq(out.ID, 42);
	ck_assert_int_eq(out.grantedTTL, 60);
	free(buf);

	pbu_set_leases(&lin.leases, &list2, ids, 2);
	buf = enc(etcdserverpb_LeaseLeasesResponse_fields, &lin, &len);
	/* field 2 {field 1: 1}, field 2 {field 1: -5 as a 10-byte varint} */
	ck_assert_uint_eq(len, 4 + 13);
	ck_assert_int_eq(buf[0], 0x12);
	ck_assert_int_eq(buf[1], 2);
	ck_assert_int_eq(buf[2], 0x08);
	ck_assert_int_eq(buf[3], 1);
	free(buf);
}
END_TEST

struct ev_check {
	int n;
	mvccpb_Event ev[2];
};

static bool ev_decode(pb_istream_t *is, const pb_field_t *field, void **arg)
{
	struct ev_check *c = *arg;

	(void)field;
	if (c->n >= 2)
		return false;
	return pb_decode(is, mvccpb_Event_fields, &c->ev[c->n++]);
}

START_TEST(watch_events)
{
	etcdserverpb_WatchResponse in = etcdserverpb_WatchResponse_init_zero;
	etcdserverpb_WatchResponse out = etcdserverpb_WatchResponse_init_zero;
	struct pbu_kv prev = {.key = (const uint8_t *)"k",
			      .key_len = 1,
			      .value = (const uint8_t *)"old",
			      .value_len = 3,
			      .mod_rev = 4};
	struct pbu_event evs[2] = {
		{0,
		 {(const uint8_t *)"k", 1, (const uint8_t *)"new", 3, 2, 5, 2,
		  0},
		 &prev},
		{1, {(const uint8_t *)"k", 1, NULL, 0, 0, 6, 0, 0}, NULL},
	};
	struct ev_check c;
	struct pbu_list list;
	uint8_t *buf;
	size_t len;

	memset(&c, 0, sizeof(c));
	in.watch_id = 7;
	in.has_header = true;
	in.header.revision = 6;
	pbu_set_events(&in.events, &list, evs, 2);
	buf = enc(etcdserverpb_WatchResponse_fields, &in, &len);
	out.events.funcs.decode = ev_decode;
	out.events.arg = &c;
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_WatchResponse_fields, &out, buf, len),
		0);
	ck_assert_int_eq(out.watch_id, 7);
	ck_assert_int_eq(c.n, 2);
	ck_assert_int_eq(c.ev[0].type, mvccpb_Event_EventType_PUT);
	assert_slice(c.ev[0].kv.value, "new");
	ck_assert_int_eq(c.ev[0].kv.mod_revision, 5);
	ck_assert(c.ev[0].has_prev_kv);
	assert_slice(c.ev[0].prev_kv.value, "old");
	ck_assert_int_eq(c.ev[1].type, mvccpb_Event_EventType_DELETE);
	ck_assert(!c.ev[1].has_prev_kv);
	ck_assert_int_eq(c.ev[1].kv.mod_revision, 6);
	free(buf);
}
END_TEST

START_TEST(strings_are_pointers)
{
	etcdserverpb_MemberListResponse in =
		etcdserverpb_MemberListResponse_init_zero;
	etcdserverpb_MemberListResponse out;
	etcdserverpb_Member m[2];
	char *purls[2] = {"http://10.0.0.1:2380", "http://10.0.0.1:2381"};
	char *curls[1] = {"http://10.0.0.1:2379"};
	uint8_t *buf;
	size_t len;

	memset(m, 0, sizeof(m));
	m[0].ID = 0x8e9e05c52164694d;
	m[0].name = "infra1";
	m[0].peerURLs_count = 2;
	m[0].peerURLs = purls;
	m[0].clientURLs_count = 1;
	m[0].clientURLs = curls;
	m[1].ID = 2;
	m[1].isLearner = true;
	in.members_count = 2;
	in.members = m;
	buf = enc(etcdserverpb_MemberListResponse_fields, &in, &len);
	ck_assert_int_eq(pbu_decode(etcdserverpb_MemberListResponse_fields,
				    &out, buf, len),
			 0);
	ck_assert_uint_eq(out.members_count, 2);
	ck_assert_uint_eq(out.members[0].ID, 0x8e9e05c52164694d);
	ck_assert_str_eq(out.members[0].name, "infra1");
	ck_assert_uint_eq(out.members[0].peerURLs_count, 2);
	ck_assert_str_eq(out.members[0].peerURLs[1], "http://10.0.0.1:2381");
	ck_assert_str_eq(out.members[0].clientURLs[0], "http://10.0.0.1:2379");
	ck_assert_ptr_null(out.members[1].name);
	ck_assert(out.members[1].isLearner);
	pb_release(etcdserverpb_MemberListResponse_fields, &out);
	free(buf);
}
END_TEST

START_TEST(internal_raft_request_wrap)
{
	etcdserverpb_PutRequest put = etcdserverpb_PutRequest_init_zero;
	etcdserverpb_TxnRequest txn = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_RequestOp op;
	etcdserverpb_InternalRaftRequest irr;
	uint8_t *req, *buf;
	size_t req_len, len;

	put.key = sl("foo");
	put.value = sl("bar");
	put.lease = 9;
	req = enc(etcdserverpb_PutRequest_fields, &put, &req_len);
	ck_assert_int_eq(pbu_wrap_internal(0x1234567890abcdefULL, 4, req,
					   req_len, &buf, &len),
			 0);
	/* Garbage in: nested slices (irr.range.key...) must read empty. */
	memset(&irr, 0xa5, sizeof(irr));
	ck_assert_int_eq(pbu_decode(etcdserverpb_InternalRaftRequest_fields,
				    &irr, buf, len),
			 0);
	ck_assert(irr.has_header);
	ck_assert_uint_eq(irr.header.ID, 0x1234567890abcdefULL);
	ck_assert_ptr_null(irr.header.username);
	ck_assert(irr.has_put && !irr.has_txn && !irr.has_range);
	assert_slice(irr.put.key, "foo");
	assert_slice(irr.put.value, "bar");
	ck_assert_int_eq(irr.put.lease, 9);
	ck_assert_uint_eq(irr.range.key.n, 0);
	ck_assert_ptr_null(irr.range.key.p);
	ck_assert_uint_eq(irr.txn.success_count, 0);
	/* The request bytes are carried verbatim. */
	ck_assert_mem_eq(buf + len - req_len, req, req_len);
	pb_release(etcdserverpb_InternalRaftRequest_fields, &irr);
	free(buf);
	free(req);

	/* A txn (field 6) with a pointer array inside, and ID 0. */
	memset(&op, 0, sizeof(op));
	op.which_request = etcdserverpb_RequestOp_request_put_tag;
	op.request.request_put.key = sl("x");
	txn.success_count = 1;
	txn.success = &op;
	req = enc(etcdserverpb_TxnRequest_fields, &txn, &req_len);
	ck_assert_int_eq(pbu_wrap_internal(0, 6, req, req_len, &buf, &len), 0);
	ck_assert_int_eq(pbu_decode(etcdserverpb_InternalRaftRequest_fields,
				    &irr, buf, len),
			 0);
	ck_assert(irr.has_header && irr.has_txn);
	ck_assert_uint_eq(irr.header.ID, 0);
	ck_assert_uint_eq(irr.txn.success_count, 1);
	assert_slice(irr.txn.success[0].request.request_put.key, "x");
	pb_release(etcdserverpb_InternalRaftRequest_fields, &irr);
	free(buf);

	/* An empty request (e.g. AuthEnableRequest, field 1000). */
	ck_assert_int_eq(pbu_wrap_internal(5, 1000, NULL, 0, &buf, &len), 0);
	ck_assert_int_eq(pbu_decode(etcdserverpb_InternalRaftRequest_fields,
				    &irr, buf, len),
			 0);
	ck_assert(irr.has_auth_enable && irr.header.ID == 5);
	pb_release(etcdserverpb_InternalRaftRequest_fields, &irr);
	free(buf);

	/* Not message fields of InternalRaftRequest. */
	ck_assert_int_eq(pbu_wrap_internal(1, 1, req, req_len, &buf, &len),
			 -EINVAL);
	ck_assert_ptr_null(buf);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(pbu_wrap_internal(1, 0, req, req_len, &buf, &len),
			 -EINVAL);
	ck_assert_int_eq(pbu_wrap_internal(1, 100, req, req_len, &buf, &len),
			 -EINVAL);
	ck_assert_int_eq(pbu_wrap_internal(1, 99, req, req_len, &buf, &len),
			 -EINVAL);
	ck_assert_int_eq(pbu_wrap_internal(1, 4, NULL, 3, &buf, &len), -EINVAL);
	free(req);
}
END_TEST

static int decode_txn(const uint8_t *buf, size_t len)
{
	etcdserverpb_TxnRequest out;
	int err = pbu_decode(etcdserverpb_TxnRequest_fields, &out, buf, len);

	if (!err)
		pb_release(etcdserverpb_TxnRequest_fields, &out);
	return err;
}

START_TEST(malformed_input)
{
	etcdserverpb_TxnRequest txn = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_RequestOp ops[2];
	etcdserverpb_PutRequest put;
	uint8_t *buf;
	size_t len;

	/* Every truncation of a txn either decodes or fails cleanly (ASan
	 * and LSan watch the failures); cutting inside the last op fails. */
	memset(ops, 0, sizeof(ops));
	ops[0].which_request = etcdserverpb_RequestOp_request_put_tag;
	ops[0].request.request_put.key = sl("some-key");
	ops[0].request.request_put.value = sl("some-value");
	ops[1].which_request = etcdserverpb_RequestOp_request_delete_range_tag;
	ops[1].request.request_delete_range.key = sl("other-key");
	txn.success_count = 2;
	txn.success = ops;
	buf = enc(etcdserverpb_TxnRequest_fields, &txn, &len);
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut ? cut : 1);

		ck_assert_ptr_nonnull(copy);
		memcpy(copy, buf, cut);
		int err = decode_txn(copy, cut);
		ck_assert(err == 0 || err == CAIRN_EBAD_REQUEST);
		if (cut > len - 5)
			ck_assert_int_eq(err, CAIRN_EBAD_REQUEST);
		free(copy);
	}
	free(buf);

	{ /* key with wire type varint: must not slice a temporary */
		static const uint8_t w[] = {0x08, 0x05};
		ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields,
					    &put, w, sizeof(w)),
				 CAIRN_EBAD_REQUEST);
	}
	{ /* key with fixed64 wire type */
		static const uint8_t w[] = {0x09, 1, 2, 3, 4, 5, 6, 7, 8};
		ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields,
					    &put, w, sizeof(w)),
				 CAIRN_EBAD_REQUEST);
	}
	{ /* wire types 3, 4 (groups), 6, 7 */
		static const uint8_t w[][2] = {
			{0x0b, 0}, {0x0c, 0}, {0x0e, 0}, {0x0f, 0}};
		for (int i = 0; i < 4; i++)
			ck_assert_int_eq(
				pbu_decode(etcdserverpb_PutRequest_fields, &put,
					   w[i], 2),
				CAIRN_EBAD_REQUEST);
	}
	{ /* value with a 4 GiB length, and with a 2^63 length */
		static const uint8_t w[] = {0x12, 0xff, 0xff, 0xff,
					    0xff, 0x0f, 'x'};
		static const uint8_t w2[] = {0x12, 0xff, 0xff, 0xff, 0xff, 0xff,
					     0xff, 0xff, 0xff, 0x7f, 'x'};
		ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields,
					    &put, w, sizeof(w)),
				 CAIRN_EBAD_REQUEST);
		ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields,
					    &put, w2, sizeof(w2)),
				 CAIRN_EBAD_REQUEST);
	}
	{ /* over-long varint, zero tag */
		static const uint8_t w[] = {0x18, 0xff, 0xff, 0xff, 0xff, 0xff,
					    0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
		static const uint8_t z[] = {0x00, 0x00};
		ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields,
					    &put, w, sizeof(w)),
				 CAIRN_EBAD_REQUEST);
		ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields,
					    &put, z, sizeof(z)),
				 CAIRN_EBAD_REQUEST);
	}
	{ /* a truncated submessage inside a txn: success op claims 10
	   * bytes, has 2 */
		static const uint8_t w[] = {0x12, 0x0a, 0x12, 0x00};
		ck_assert_int_eq(decode_txn(w, sizeof(w)), CAIRN_EBAD_REQUEST);
	}
	/* Unknown fields are skipped, as protobuf requires. */
	{
		static const uint8_t w[] = {0xf8, 0x07, 0x01, 0x0a, 1, 'k'};
		ck_assert_int_eq(pbu_decode(etcdserverpb_PutRequest_fields,
					    &put, w, sizeof(w)),
				 0);
		assert_slice(put.key, "k");
	}
}
END_TEST

/* Write v as a varint ending just before end; returns its length. */
static size_t varint_back(uint8_t *end, uint64_t v)
{
	uint8_t tmp[10];
	size_t n = 0;

	do {
		tmp[n] = v & 0x7f;
		v >>= 7;
		if (v)
			tmp[n] |= 0x80;
		n++;
	} while (v);
	memcpy(end - n, tmp, n);
	return n;
}

/* n nested txns, TxnRequest{success: RequestOp{request_txn: ...}}, built
 * back to front so a deep one costs linear time. */
static uint8_t *nest_txn(int n, size_t *len)
{
	size_t cap = 16 + (size_t)n * 12, pos = cap;
	uint8_t *b = malloc(cap);

	ck_assert_ptr_nonnull(b);
	for (int i = 0; i < n; i++) {
		pos -= varint_back(b + pos, cap - pos);
		b[--pos] = (4 << 3) | PB_WT_STRING; /* RequestOp.request_txn */
		pos -= varint_back(b + pos, cap - pos);
		b[--pos] = (2 << 3) | PB_WT_STRING; /* TxnRequest.success */
	}
	*len = cap - pos;
	memmove(b, b + pos, *len);
	return b;
}

START_TEST(nesting_is_bounded)
{
	uint8_t *b;
	size_t len;

	/* Each txn level is two message levels below the top TxnRequest. */
	b = nest_txn(PBU_MAX_DEPTH / 2, &len);
	ck_assert_int_eq(decode_txn(b, len), 0);
	free(b);
	b = nest_txn(PBU_MAX_DEPTH / 2 + 1, &len);
	ck_assert_int_eq(decode_txn(b, len), CAIRN_EBAD_REQUEST);
	free(b);
	/* Far deeper than any stack would take unchecked. */
	b = nest_txn(200000, &len);
	ck_assert_int_eq(decode_txn(b, len), CAIRN_EBAD_REQUEST);
	free(b);
}
END_TEST

START_TEST(encode_errors)
{
	etcdserverpb_PutRequest put = etcdserverpb_PutRequest_init_zero;
	etcdserverpb_HashRequest empty = etcdserverpb_HashRequest_init_zero;
	uint8_t small[4], *out;
	size_t len;

	put.key = sl("longer than four");
	ck_assert_int_eq(pbu_encode_to(etcdserverpb_PutRequest_fields, &put,
				       small, sizeof(small), &len),
			 -ENOSPC);
	put.key.p = NULL; /* n > 0 without bytes */
	ck_assert_int_eq(pbu_encode_alloc(etcdserverpb_PutRequest_fields, &put,
					  &out, &len),
			 -EINVAL);
	ck_assert_ptr_null(out);
	ck_assert_int_eq(pbu_encode_alloc(etcdserverpb_HashRequest_fields,
					  &empty, &out, &len),
			 0);
	ck_assert_ptr_nonnull(out);
	ck_assert_uint_eq(len, 0);
	free(out);
}
END_TEST

START_TEST(slices_need_pbslice_istream)
{
	static const uint8_t w[] = {0x0a, 1, 'k'};
	etcdserverpb_PutRequest put = etcdserverpb_PutRequest_init_zero;
	pb_istream_t is = pb_istream_from_buffer(w, sizeof(w));

	ck_assert(!pb_decode(&is, etcdserverpb_PutRequest_fields, &put));
	is = pbslice_istream(w, sizeof(w));
	ck_assert(pb_decode(&is, etcdserverpb_PutRequest_fields, &put));
	ck_assert_ptr_eq(put.key.p, w + 2);
}
END_TEST

/* Seeded random corruption of a valid InternalRaftRequest: every result
 * is a clean decode or CAIRN_EBAD_REQUEST (ASan/LSan watch the rest). */
START_TEST(mutations_never_crash)
{
	etcdserverpb_TxnRequest txn = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_TxnRequest inner = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_InternalRaftRequest irr;
	etcdserverpb_Compare cmp;
	etcdserverpb_RequestOp ops[2];
	uint8_t *req, *buf, *copy;
	size_t req_len, len;
	unsigned seed = 20261121, ok = 0;

	memset(&cmp, 0, sizeof(cmp));
	memset(ops, 0, sizeof(ops));
	cmp.key = sl("k");
	cmp.which_target_union = etcdserverpb_Compare_value_tag;
	cmp.target_union.value = sl("v");
	ops[0].which_request = etcdserverpb_RequestOp_request_put_tag;
	ops[0].request.request_put.key = sl("k");
	ops[0].request.request_put.value = sl("value");
	inner.compare_count = 1;
	inner.compare = &cmp;
	ops[1].which_request = etcdserverpb_RequestOp_request_txn_tag;
	ops[1].request.request_txn = &inner;
	txn.compare_count = 1;
	txn.compare = &cmp;
	txn.success_count = 2;
	txn.success = ops;
	req = enc(etcdserverpb_TxnRequest_fields, &txn, &req_len);
	ck_assert_int_eq(pbu_wrap_internal(77, 6, req, req_len, &buf, &len), 0);
	copy = malloc(len);
	ck_assert_ptr_nonnull(copy);
	for (int i = 0; i < 20000; i++) {
		size_t cut = len - rand_r(&seed) % 4;
		int flips = 1 + rand_r(&seed) % 3, err;

		memcpy(copy, buf, len);
		while (flips--)
			copy[rand_r(&seed) % len] ^=
				(uint8_t)(1u << (rand_r(&seed) % 8));
		err = pbu_decode(etcdserverpb_InternalRaftRequest_fields, &irr,
				 copy, cut);
		ck_assert_msg(err == 0 || err == CAIRN_EBAD_REQUEST,
			      "iteration %d (seed 20261121): %d", i, err);
		if (!err) {
			ok++;
			pb_release(etcdserverpb_InternalRaftRequest_fields,
				   &irr);
		}
	}
	ck_assert_uint_gt(ok, 0); /* some mutations stay valid protobuf */
	free(copy);
	free(buf);
	free(req);
}
END_TEST

/* pbslice_field_cb() is the callback of every message with a pbslice
 * field; a pb_callback_t field of such a message (none today) must still
 * reach its own encode/decode functions. */
START_TEST(mixed_callbacks_delegate)
{
	etcdserverpb_LeaseTimeToLiveResponse r =
		etcdserverpb_LeaseTimeToLiveResponse_init_zero;
	struct pbslice keys[2] = {sl("a"), sl("bc")};
	static const uint8_t want[] = {0x2a, 1, 'a', 0x2a, 2, 'b', 'c'};
	struct pbu_list l;
	pb_field_iter_t it;
	uint8_t buf[16];
	pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));

	pbu_set_bytes_list(&r.keys, &l, keys, 2);
	ck_assert(pb_field_iter_begin(
		&it, etcdserverpb_LeaseTimeToLiveResponse_fields, &r));
	ck_assert(pb_field_iter_find(&it, 5));
	ck_assert(pbslice_field_cb(NULL, &os, &it));
	ck_assert_uint_eq(os.bytes_written, sizeof(want));
	ck_assert_mem_eq(buf, want, sizeof(want));
}
END_TEST

/* pbu_unwrap_internal finds what pbu_wrap_internal wrote, without
 * decoding the whole InternalRaftRequest, and refuses damaged input. */
START_TEST(unwrap_internal_round_trip)
{
	static const uint8_t req[] = {0x0a, 0x03, 'k', 'e', 'y'};
	const uint8_t *got;
	uint8_t *buf = NULL;
	size_t len = 0, got_len;
	uint64_t id;
	uint32_t field;

	ck_assert_int_eq(pbu_wrap_internal(0xfeedbeefULL, 6, req, sizeof(req),
					   &buf, &len),
			 0);
	ck_assert_int_eq(pbu_unwrap_internal(buf, len, &id, &field, &got,
					     &got_len),
			 0);
	ck_assert_uint_eq(id, 0xfeedbeefULL);
	ck_assert_uint_eq(field, 6);
	ck_assert_uint_eq(got_len, sizeof(req));
	ck_assert_mem_eq(got, req, sizeof(req));
	/* every truncation is refused or finds no request */
	for (size_t cut = 0; cut < len; cut++)
		ck_assert_int_eq(pbu_unwrap_internal(buf, cut, &id, &field,
						     &got, &got_len),
				 CAIRN_EBAD_REQUEST);
	free(buf);
	/* an empty request still counts: field 7 with zero bytes */
	ck_assert_int_eq(pbu_wrap_internal(0, 7, NULL, 0, &buf, &len), 0);
	ck_assert_int_eq(pbu_unwrap_internal(buf, len, &id, &field, &got,
					     &got_len),
			 0);
	ck_assert_uint_eq(id, 0);
	ck_assert_uint_eq(field, 7);
	ck_assert_uint_eq(got_len, 0);
	free(buf);
}
END_TEST

Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("codec");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, put_big_value_round_trip);
	tcase_add_test(tc, unwrap_internal_round_trip);
	tcase_add_test(tc, range_request_round_trip);
	tcase_add_test(tc, empty_bytes_follow_proto3);
	tcase_add_test(tc, last_occurrence_wins);
	tcase_add_test(tc, txn_nested_round_trip);
	tcase_add_test(tc, range_response_70000_kvs);
	tcase_add_test(tc, sink_can_stop_decoding);
	tcase_add_test(tc, lease_keys_and_leases);
	tcase_add_test(tc, watch_events);
	tcase_add_test(tc, strings_are_pointers);
	tcase_add_test(tc, internal_raft_request_wrap);
	tcase_add_test(tc, malformed_input);
	tcase_add_test(tc, nesting_is_bounded);
	tcase_add_test(tc, encode_errors);
	tcase_add_test(tc, slices_need_pbslice_istream);
	tcase_add_test(tc, mutations_never_crash);
	tcase_add_test(tc, mixed_callbacks_delegate);
	suite_add_tcase(s, tc);
	return s;
}
