/* apply: etcd's KV semantics on top of MVCC — request validation, the
 * applier for committed raft entries (Put, DeleteRange, Txn, Compaction),
 * and local Range reads — producing encoded protobuf responses.
 *
 * Mirrors etcd 3.4's v3rpc request checks (key.go) and applierV3backend
 * (apply.go): the same order of checks, the same errors, the same header
 * revisions, so clients see what etcd would send.
 *
 * Threads: loop thread only. Requests are nanopb structs decoded from the
 * wire (bytes fields are struct pbslice into the caller's buffer).
 */
#ifndef CAIRN_CORE_APPLY_H
#define CAIRN_CORE_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/proto/raft_internal.pb.h"
#include "net/proto/rpc.pb.h"

struct apply_out;

struct mvcc;

struct apply_ctx;

/* An extension applier (e.g. the lessor): handles the InternalRaftRequest
 * kinds core/apply does not know (lease grant/revoke/checkpoint ...).
 * Returns true if it handled req (then out is filled as apply_entry says),
 * false to let apply_entry answer CAIRN_EBAD_REQUEST. */
typedef bool (*apply_ext_fn)(void *arg, struct apply_ctx *a,
			     const etcdserverpb_InternalRaftRequest *req,
			     bool want_resp, struct apply_out *out);

struct apply_ctx {
	struct mvcc *mvcc;		/* borrowed */
	uint64_t cluster_id, member_id; /* for response headers */
	uint64_t raft_term;		/* updated by the server before apply */
	/* Does lease id exist? NULL: no lease exists (before the lessor). */
	bool (*lease_exists)(void *arg, int64_t id);
	void *lease_arg;
	apply_ext_fn ext; /* NULL: none */
	void *ext_arg;
};

/* An encoded response, malloc'ed; the receiver frees buf. */
struct apply_out {
	int err; /* 0, or a CAIRN_E* / -errno the client gets instead */
	uint8_t *buf;
	size_t len;
};

/* API-level request checks, before a request is proposed (etcd's
 * v3rpc checkXRequest). 0 or CAIRN_EEMPTY_KEY, CAIRN_EVALUE_PROVIDED,
 * CAIRN_ELEASE_PROVIDED, CAIRN_EINVALID_SORT, CAIRN_ETOO_MANY_OPS,
 * CAIRN_EDUPLICATE_KEY, CAIRN_EKEY_NOT_FOUND (empty txn op). */
int apply_check_range(const etcdserverpb_RangeRequest *r);
int apply_check_put(const etcdserverpb_PutRequest *r);
int apply_check_delete(const etcdserverpb_DeleteRangeRequest *r);
int apply_check_txn(const etcdserverpb_TxnRequest *r, size_t max_txn_ops);

/* Serve a Range from local MVCC (serializable, or linearizable once the
 * read index is applied). out->buf is an encoded RangeResponse, or
 * out->err is CAIRN_ECOMPACTED / CAIRN_EFUTURE_REV / -ENOMEM. */
void apply_range(struct apply_ctx *a, const etcdserverpb_RangeRequest *r,
		 struct apply_out *out);

/* Does the txn (or a nested one) put or delete? A read-only txn is served
 * locally like a Range (etcd does the same), never through raft. */
bool apply_txn_is_write(const etcdserverpb_TxnRequest *t);

/* Serve a read-only txn from local MVCC; out as for apply_range. */
void apply_txn_local(struct apply_ctx *a, const etcdserverpb_TxnRequest *t,
		     struct apply_out *out);

/* Fill a response header at the current revision, or at rev. */
etcdserverpb_ResponseHeader apply_header(const struct apply_ctx *a);
etcdserverpb_ResponseHeader apply_header_at(const struct apply_ctx *a,
					    int64_t rev);

/* Apply one committed entry: an encoded InternalRaftRequest.
 * *id is set to its header ID (0 if none) so the caller can find the
 * waiting client. With want_resp, out gets the encoded response (or the
 * error); without, nothing is encoded. An entry that does not decode is
 * skipped with out->err = CAIRN_EBAD_REQUEST (it was validated before it
 * was proposed, so this means a foreign or corrupt entry). */
void apply_entry(struct apply_ctx *a, const uint8_t *data, size_t len,
		 bool want_resp, uint64_t *id, struct apply_out *out);

#endif
