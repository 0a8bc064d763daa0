/* proto_interop_helper: the C half of tests/unit/proto_interop.py.
 *
 *   helper decode MSG     stdin: MSG's wire bytes; stdout: canonical lines
 *   helper roundtrip MSG  stdin: MSG's wire bytes; stdout: the same message
 *                         decoded and encoded again by nanopb
 *   helper encode CASE    stdout: a fixed message built with pbutil
 *
 * Canonical lines (the Python side prints the same from its own parse):
 * one "path=value" per present field, path being field numbers joined by
 * "." with "[i]" for repeated elements; a present submessage also prints
 * "path={}". Integers in decimal, bool as 1, bytes and strings in hex.
 * Presence follows proto3: a scalar is present when non-zero, a oneof
 * member when selected, a submessage when set. Exit status 0 on success,
 * 1 on a decode/encode failure, 2 on bad usage.
 */
#include <inttypes.h>
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

#define MSGS(X)                                                                \
	X(etcdserverpb_PutRequest)                                             \
	X(etcdserverpb_RangeRequest)                                           \
	X(etcdserverpb_DeleteRangeRequest)                                     \
	X(etcdserverpb_TxnRequest)                                             \
	X(etcdserverpb_Compare)                                                \
	X(etcdserverpb_CompactionRequest)                                      \
	X(etcdserverpb_WatchRequest)                                           \
	X(etcdserverpb_LeaseGrantRequest)                                      \
	X(etcdserverpb_AuthUserAddRequest)                                     \
	X(etcdserverpb_AuthRoleGrantPermissionRequest)                         \
	X(etcdserverpb_MemberAddRequest)                                       \
	X(etcdserverpb_AlarmRequest)                                           \
	X(etcdserverpb_RangeResponse)                                          \
	X(etcdserverpb_PutResponse)                                            \
	X(etcdserverpb_DeleteRangeResponse)                                    \
	X(etcdserverpb_TxnResponse)                                            \
	X(etcdserverpb_WatchResponse)                                          \
	X(etcdserverpb_LeaseTimeToLiveResponse)                                \
	X(etcdserverpb_LeaseLeasesResponse)                                    \
	X(etcdserverpb_MemberListResponse)                                     \
	X(etcdserverpb_StatusResponse)                                         \
	X(etcdserverpb_AuthRoleGetResponse)                                    \
	X(mvccpb_KeyValue)                                                     \
	X(mvccpb_Event)

static const struct {
	const char *name;
	const pb_msgdesc_t *desc;
} msgs[] = {
#define X(m) {#m, &m##_msg},
	MSGS(X)
#undef X
};

/* Room for any generated struct (the largest is under 1 KiB). */
typedef union {
	uint64_t u[1024];
	void *p;
} scratch_t;

static void print_msg(const pb_msgdesc_t *d, const void *msg,
		      const char *prefix);

static void print_hex(const char *path, const uint8_t *p, size_t n)
{
	printf("%s=", path);
	for (size_t i = 0; i < n; i++)
		printf("%02x", p[i]);
	printf("\n");
}

static int is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i])
			return 0;
	return 1;
}

/* One value of field it at p (an element for repeated fields). */
static void print_value(const pb_field_iter_t *it, const void *p,
			const char *path)
{
	char sub[256];

	switch (PB_LTYPE(it->type)) {
	case PB_LTYPE_BOOL:
		printf("%s=%d\n", path, *(const bool *)p ? 1 : 0);
		break;
	case PB_LTYPE_VARINT:
	case PB_LTYPE_SVARINT:
		if (it->data_size == 8)
			printf("%s=%" PRId64 "\n", path, *(const int64_t *)p);
		else
			printf("%s=%" PRId32 "\n", path, *(const int32_t *)p);
		break;
	case PB_LTYPE_UVARINT:
	case PB_LTYPE_FIXED32:
	case PB_LTYPE_FIXED64:
		if (it->data_size == 8)
			printf("%s=%" PRIu64 "\n", path, *(const uint64_t *)p);
		else
			printf("%s=%" PRIu32 "\n", path, *(const uint32_t *)p);
		break;
	case PB_LTYPE_BYTES: {
		const struct pbslice *s = p;

		print_hex(path, s->p, s->n);
		break;
	}
	case PB_LTYPE_STRING:
		print_hex(path, p, strlen(p));
		break;
	case PB_LTYPE_SUBMESSAGE:
		printf("%s={}\n", path);
		snprintf(sub, sizeof(sub), "%s.", path);
		print_msg(it->submsg_desc, p, sub);
		break;
	default:
		printf("%s=?ltype%u\n", path, (unsigned)PB_LTYPE(it->type));
	}
}

static void print_field(const pb_field_iter_t *it, const char *prefix)
{
	char path[256], elem[300];

	snprintf(path, sizeof(path), "%s%u", prefix, (unsigned)it->tag);
	if (PB_HTYPE(it->type) == PB_HTYPE_REPEATED) {
		pb_size_t n;
		const uint8_t *arr;

		if (PB_ATYPE(it->type) != PB_ATYPE_POINTER)
			return; /* callbacks print while decoding */
		n = *(const pb_size_t *)it->pSize;
		arr = *(void *const *)it->pField;
		for (pb_size_t i = 0; i < n; i++) {
			const void *el;

			snprintf(elem, sizeof(elem), "%s[%u]", path,
				 (unsigned)i);
			if (PB_LTYPE(it->type) == PB_LTYPE_STRING)
				el = ((char *const *)arr)[i];
			else
				el = arr + (size_t)i * it->data_size;
			print_value(it, el, elem);
		}
		return;
	}
	if (PB_HTYPE(it->type) == PB_HTYPE_ONEOF) {
		if (*(const pb_size_t *)it->pSize != it->tag)
			return;
	} else if (it->pSize) {
		if (!*(const bool *)it->pSize)
			return;
	} else if (PB_ATYPE(it->type) == PB_ATYPE_POINTER) {
		if (!it->pData || !*(const char *)it->pData)
			return;
	} else if (PB_ATYPE(it->type) == PB_ATYPE_CALLBACK) {
		if (PB_LTYPE(it->type) != PB_LTYPE_BYTES ||
		    !((const struct pbslice *)it->pData)->n)
			return;
	} else if (is_zero(it->pData, it->data_size)) {
		return;
	}
	print_value(it, it->pData, path);
}

static void print_msg(const pb_msgdesc_t *d, const void *msg,
		      const char *prefix)
{
	pb_field_iter_t it;

	if (!pb_field_iter_begin_const(&it, d, msg))
		return;
	do
		print_field(&it, prefix);
	while (pb_field_iter_next(&it));
}

/* Decode callback for the top-level pb_callback_t fields: print each
 * element as it arrives. */
struct cb_ctx {
	unsigned tag;
	unsigned n;
};

static bool print_cb(pb_istream_t *is, const pb_field_t *field, void **arg)
{
	struct cb_ctx *c = *arg;
	char path[64], sub[80];
	static scratch_t s;

	snprintf(path, sizeof(path), "%u[%u]", c->tag, c->n++);
	if (PB_LTYPE(field->type) == PB_LTYPE_BYTES) {
		struct pbslice v;

		if (!pbslice_take(is, &v))
			return false;
		print_hex(path, v.p, v.n);
		return true;
	}
	memset(&s, 0, sizeof(s));
	if (!pb_decode(is, field->submsg_desc, &s))
		return false;
	printf("%s={}\n", path);
	snprintf(sub, sizeof(sub), "%s.", path);
	print_msg(field->submsg_desc, &s, sub);
	pb_release(field->submsg_desc, &s);
	return true;
}

static uint8_t *read_all(size_t *len)
{
	size_t cap = 1 << 16, n = 0, got;
	uint8_t *b = malloc(cap), *nb;

	while (b && (got = fread(b + n, 1, cap - n, stdin)) > 0) {
		n += got;
		if (n == cap) {
			nb = realloc(b, cap *= 2);
			if (!nb)
				free(b);
			b = nb;
		}
	}
	*len = n;
	return b;
}

static int write_all(const uint8_t *b, size_t n)
{
	return fwrite(b, 1, n, stdout) == n && fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_decode(const pb_msgdesc_t *d, int reencode)
{
	static scratch_t msg;
	struct cb_ctx ctx[16];
	pb_field_iter_t it;
	size_t len, n = 0;
	uint8_t *in = read_all(&len), *out;
	int rc = 1;

	if (!in)
		return 1;
	memset(&msg, 0, sizeof(msg));
	/* Decode: print the top-level pb_callback_t fields as they arrive.
	 * Round trip: only the message's own fields, no callbacks. */
	if (!reencode && pb_field_iter_begin(&it, d, &msg)) {
		do {
			if (PB_ATYPE(it.type) == PB_ATYPE_CALLBACK &&
			    PB_HTYPE(it.type) == PB_HTYPE_REPEATED && n < 16) {
				pb_callback_t *cb = it.pData;

				ctx[n].tag = it.tag;
				ctx[n].n = 0;
				cb->funcs.decode = print_cb;
				cb->arg = &ctx[n++];
			}
		} while (pb_field_iter_next(&it));
	}
	if (pbu_decode(d, &msg, in, len)) {
		fprintf(stderr, "decode failed\n");
		goto out;
	}
	if (reencode) {
		if (pbu_encode_alloc(d, &msg, &out, &len) == 0) {
			rc = write_all(out, len);
			free(out);
		}
	} else {
		print_msg(d, &msg, "");
		rc = 0;
	}
	pb_release(d, &msg);
out:
	free(in);
	return rc;
}

/* ---- fixed messages for the other direction ----------------------------- */

static struct pbslice sl(const char *s)
{
	struct pbslice v = {(const uint8_t *)s, strlen(s)};
	return v;
}

static int emit(const pb_msgdesc_t *d, const void *msg)
{
	uint8_t *out;
	size_t len;
	int rc;

	if (pbu_encode_alloc(d, msg, &out, &len))
		return 1;
	rc = write_all(out, len);
	free(out);
	return rc;
}

static void fill_kvs(struct pbu_kv *kvs, char (*keys)[16], size_t n)
{
	for (size_t i = 0; i < n; i++) {
		kvs[i].key_len = (size_t)snprintf(keys[i], 16, "key-%07zu", i);
		kvs[i].key = (const uint8_t *)keys[i];
		kvs[i].value = (const uint8_t *)"value";
		kvs[i].value_len = i % 3 ? 5 : 0;
		kvs[i].create_rev = (int64_t)i + 1;
		kvs[i].mod_rev = (int64_t)i + 100;
		kvs[i].version = 1;
		kvs[i].lease = i % 2 ? 0 : 77;
	}
}

static int enc_rangeresp(void)
{
	enum { N = 70000 };
	etcdserverpb_RangeResponse r = etcdserverpb_RangeResponse_init_zero;
	struct pbu_kv *kvs = calloc(N, sizeof(*kvs));
	char(*keys)[16] = calloc(N, 16);
	struct pbu_list l;
	int rc = 1;

	if (kvs && keys) {
		fill_kvs(kvs, keys, N);
		r.has_header = true;
		r.header.cluster_id = 14841639068965178418ULL;
		r.header.member_id = 10276657743932975437ULL;
		r.header.revision = N + 100;
		r.header.raft_term = 2;
		r.count = N;
		r.more = true;
		pbu_set_kvs(&r.kvs, &l, kvs, N);
		rc = emit(etcdserverpb_RangeResponse_fields, &r);
	}
	free(kvs);
	free(keys);
	return rc;
}

static int enc_txnresp(void)
{
	etcdserverpb_TxnResponse r = etcdserverpb_TxnResponse_init_zero;
	etcdserverpb_ResponseOp ops[4], inner;
	etcdserverpb_TxnResponse inner_txn = etcdserverpb_TxnResponse_init_zero;
	struct pbu_kv kvs[3];
	char keys[3][16];
	struct pbu_list l1, l2, l3;

	memset(ops, 0, sizeof(ops));
	memset(&inner, 0, sizeof(inner));
	fill_kvs(kvs, keys, 3);
	r.has_header = true;
	r.header.revision = 42;
	r.succeeded = true;
	ops[0].which_response = etcdserverpb_ResponseOp_response_range_tag;
	ops[0].response.response_range.count = 3;
	pbu_set_kvs(&ops[0].response.response_range.kvs, &l1, kvs, 3);
	ops[1].which_response = etcdserverpb_ResponseOp_response_put_tag;
	ops[1].response.response_put.has_prev_kv = true;
	ops[1].response.response_put.prev_kv.key = sl("old");
	ops[1].response.response_put.prev_kv.mod_revision = 7;
	ops[2].which_response =
		etcdserverpb_ResponseOp_response_delete_range_tag;
	ops[2].response.response_delete_range.deleted = 2;
	pbu_set_kvs(&ops[2].response.response_delete_range.prev_kvs, &l2,
		    kvs + 1, 2);
	inner.which_response = etcdserverpb_ResponseOp_response_range_tag;
	pbu_set_kvs(&inner.response.response_range.kvs, &l3, kvs + 2, 1);
	inner_txn.responses_count = 1;
	inner_txn.responses = &inner;
	ops[3].which_response = etcdserverpb_ResponseOp_response_txn_tag;
	ops[3].response.response_txn = &inner_txn;
	r.responses_count = 4;
	r.responses = ops;
	return emit(etcdserverpb_TxnResponse_fields, &r);
}

static int enc_watchresp(void)
{
	etcdserverpb_WatchResponse r = etcdserverpb_WatchResponse_init_zero;
	struct pbu_kv prev = {
		(const uint8_t *)"k", 1, (const uint8_t *)"old", 3, 2, 4, 1, 0};
	struct pbu_event evs[2] = {
		{0,
		 {(const uint8_t *)"k", 1, (const uint8_t *)"new", 3, 2, 5, 2,
		  99},
		 &prev},
		{1, {(const uint8_t *)"k", 1, NULL, 0, 0, 6, 0, 0}, NULL},
	};
	struct pbu_list l;

	r.has_header = true;
	r.header.revision = 6;
	r.watch_id = 3;
	r.created = true;
	r.compact_revision = 1;
	r.cancel_reason = "because";
	r.fragment = true;
	pbu_set_events(&r.events, &l, evs, 2);
	return emit(etcdserverpb_WatchResponse_fields, &r);
}

static int enc_lease(void)
{
	etcdserverpb_LeaseTimeToLiveResponse r =
		etcdserverpb_LeaseTimeToLiveResponse_init_zero;
	struct pbslice keys[3] = {sl("foo"), {NULL, 0}, sl("bar")};
	struct pbu_list l;

	r.ID = 7587862072474545221LL;
	r.TTL = -1;
	r.grantedTTL = 60;
	pbu_set_bytes_list(&r.keys, &l, keys, 3);
	return emit(etcdserverpb_LeaseTimeToLiveResponse_fields, &r);
}

static int enc_leases(void)
{
	etcdserverpb_LeaseLeasesResponse r =
		etcdserverpb_LeaseLeasesResponse_init_zero;
	int64_t ids[3] = {1, -5, 7587862072474545221LL};
	struct pbu_list l;

	pbu_set_leases(&r.leases, &l, ids, 3);
	return emit(etcdserverpb_LeaseLeasesResponse_fields, &r);
}

static int enc_put(void)
{
	etcdserverpb_PutRequest r = etcdserverpb_PutRequest_init_zero;
	size_t n = 1536 * 1024;
	uint8_t *v = malloc(n);
	int rc;

	if (!v)
		return 1;
	for (size_t i = 0; i < n; i++)
		v[i] = (uint8_t)(i * 131 + 7);
	r.key = sl("big");
	r.value.p = v;
	r.value.n = n;
	r.lease = 5;
	r.prev_kv = true;
	rc = emit(etcdserverpb_PutRequest_fields, &r);
	free(v);
	return rc;
}

static int enc_irr(void)
{
	etcdserverpb_PutRequest put = etcdserverpb_PutRequest_init_zero;
	uint8_t *req, *out;
	size_t req_len, len;
	int rc;

	put.key = sl("foo");
	put.value = sl("bar");
	put.lease = 9;
	if (pbu_encode_alloc(etcdserverpb_PutRequest_fields, &put, &req,
			     &req_len))
		return 1;
	rc = pbu_wrap_internal(0x1234567890abcdefULL, 4, req, req_len, &out,
			       &len);
	free(req);
	if (rc)
		return 1;
	rc = write_all(out, len);
	free(out);
	return rc;
}

static const struct {
	const char *name;
	int (*fn)(void);
} cases[] = {
	{"rangeresp", enc_rangeresp},
	{"txnresp", enc_txnresp},
	{"watchresp", enc_watchresp},
	{"leasettl", enc_lease},
	{"leases", enc_leases},
	{"put", enc_put},
	{"irr", enc_irr},
};

int main(int argc, char **argv)
{
	if (argc != 3)
		goto usage;
	if (!strcmp(argv[1], "encode")) {
		for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
			if (!strcmp(argv[2], cases[i].name))
				return cases[i].fn();
		goto usage;
	}
	for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
		if (strcmp(argv[2], msgs[i].name))
			continue;
		if (!strcmp(argv[1], "decode"))
			return cmd_decode(msgs[i].desc, 0);
		if (!strcmp(argv[1], "roundtrip"))
			return cmd_decode(msgs[i].desc, 1);
	}
usage:
	fprintf(stderr, "usage: %s decode|roundtrip MSG | encode CASE\n",
		argv[0]);
	return 2;
}
