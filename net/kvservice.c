/* kvservice: etcd's KV service and Maintenance Alarm / Defragment over the
 * server (net/clusterservice.c has Cluster, Status and MoveLeader).
 *
 * Request memory: a handler's msg stays valid until its call is finished
 * (net/grpc.h), so decoded requests point into it (pbslice) and proposals
 * copy it once into the raft entry.
 */
#include "net/kvservice.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/server.h"
#include "core/util/log.h"
#include "net/clusterservice.h"
#include "net/grpc.h"
#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"
#include "net/rpcreply.h"

/* ---- writes: through raft ------------------------------------------------ */

static void propose(struct grpc_call *call, struct server *srv,
		    enum server_req kind, const uint8_t *msg, size_t len)
{
	int err = server_propose(srv, kind, msg, len, rpc_done, call);

	if (err < 0)
		rpc_fail(call, err);
}

static void h_put(struct grpc_call *call, const uint8_t *msg, size_t len,
		  void *ctx)
{
	etcdserverpb_PutRequest req = {0};
	int err;

	if (cluster_refuse(ctx, call))
		return;
	err = pbu_decode(&etcdserverpb_PutRequest_msg, &req, msg, len);
	if (err == 0)
		err = apply_check_put(&req);
	pb_release(&etcdserverpb_PutRequest_msg, &req);
	if (err < 0)
		rpc_fail(call, err);
	else
		propose(call, ctx, SERVER_REQ_PUT, msg, len);
}

static void h_delete(struct grpc_call *call, const uint8_t *msg, size_t len,
		     void *ctx)
{
	etcdserverpb_DeleteRangeRequest req = {0};
	int err;

	if (cluster_refuse(ctx, call))
		return;
	err = pbu_decode(&etcdserverpb_DeleteRangeRequest_msg, &req, msg, len);
	if (err == 0)
		err = apply_check_delete(&req);
	pb_release(&etcdserverpb_DeleteRangeRequest_msg, &req);
	if (err < 0)
		rpc_fail(call, err);
	else
		propose(call, ctx, SERVER_REQ_DELETE_RANGE, msg, len);
}

static void h_compact(struct grpc_call *call, const uint8_t *msg, size_t len,
		      void *ctx)
{
	etcdserverpb_CompactionRequest req = {0};
	int err;

	if (cluster_refuse(ctx, call))
		return;
	err = pbu_decode(&etcdserverpb_CompactionRequest_msg, &req, msg, len);
	pb_release(&etcdserverpb_CompactionRequest_msg, &req);
	if (err < 0)
		rpc_fail(call, err);
	else
		propose(call, ctx, SERVER_REQ_COMPACTION, msg, len);
}

/* ---- reads: local, after the read index for linearizable ones ---------- */

struct read_req {
	struct server *srv;
	struct grpc_call *call;
	bool is_txn;
	union {
		etcdserverpb_RangeRequest range;
		etcdserverpb_TxnRequest txn;
	} u;
};

static void read_free(struct read_req *r)
{
	if (r->is_txn)
		pb_release(&etcdserverpb_TxnRequest_msg, &r->u.txn);
	else
		pb_release(&etcdserverpb_RangeRequest_msg, &r->u.range);
	free(r);
}

static void read_run(void *arg, int err)
{
	struct read_req *r = arg;
	struct apply_out out = {0};

	if (err < 0) {
		rpc_fail(r->call, err);
	} else {
		struct apply_ctx *a = server_apply_ctx(r->srv);

		if (r->is_txn)
			apply_txn_local(a, &r->u.txn, &out);
		else
			apply_range(a, &r->u.range, &out);
		rpc_reply_out(r->call, &out);
	}
	read_free(r);
}

static void serve_read(struct read_req *r, bool serializable)
{
	if (serializable)
		read_run(r, 0);
	else
		server_read_index(r->srv, read_run, r);
}

static void h_range(struct grpc_call *call, const uint8_t *msg, size_t len,
		    void *ctx)
{
	struct read_req *r = calloc(1, sizeof(*r));
	int err;

	if (!r) {
		rpc_fail(call, -ENOMEM);
		return;
	}
	r->srv = ctx;
	r->call = call;
	err = pbu_decode(&etcdserverpb_RangeRequest_msg, &r->u.range, msg, len);
	/* a learner serves serializable ranges only (etcd 3.4) */
	if ((err < 0 || !r->u.range.serializable) &&
	    cluster_refuse(ctx, call)) {
		read_free(r);
		return;
	}
	if (err == 0)
		err = apply_check_range(&r->u.range);
	if (err < 0) {
		rpc_fail(call, err);
		read_free(r);
		return;
	}
	serve_read(r, r->u.range.serializable);
}

static void h_txn(struct grpc_call *call, const uint8_t *msg, size_t len,
		  void *ctx)
{
	struct server *srv = ctx;
	struct read_req *r;
	int err;

	if (cluster_refuse(ctx, call))
		return;
	if (!(r = calloc(1, sizeof(*r)))) {
		rpc_fail(call, -ENOMEM);
		return;
	}
	r->srv = srv;
	r->call = call;
	r->is_txn = true;
	err = pbu_decode(&etcdserverpb_TxnRequest_msg, &r->u.txn, msg, len);
	if (err == 0)
		err = apply_check_txn(&r->u.txn,
				      server_config(srv)->max_txn_ops);
	if (err < 0) {
		rpc_fail(call, err);
		read_free(r);
		return;
	}
	if (!apply_txn_is_write(&r->u.txn)) {
		serve_read(r, false);
		return;
	}
	read_free(r);
	propose(call, srv, SERVER_REQ_TXN, msg, len);
}

/* ---- Maintenance and Cluster ------------------------------------------- */

static void h_alarm(struct grpc_call *call, const uint8_t *msg, size_t len,
		    void *ctx)
{
	etcdserverpb_AlarmResponse resp = {0};

	(void)msg;
	(void)len;
	if (cluster_refuse(ctx, call))
		return;
	/* no alarm can be raised yet (no quota enforcement, no corruption
	 * check): every action answers with the empty alarm list */
	resp.has_header = true;
	resp.header = apply_header(server_apply_ctx(ctx));
	rpc_reply_msg(call, &etcdserverpb_AlarmResponse_msg, &resp);
}

static void h_defrag(struct grpc_call *call, const uint8_t *msg, size_t len,
		     void *ctx)
{
	etcdserverpb_DefragmentResponse resp = {0};
	int err;

	if (cluster_refuse(ctx, call))
		return;
	(void)msg;
	(void)len;
	if ((err = server_defrag(ctx)) < 0) {
		rpc_fail(call, err);
		return;
	}
	resp.has_header = true;
	resp.header = apply_header(server_apply_ctx(ctx));
	rpc_reply_msg(call, &etcdserverpb_DefragmentResponse_msg, &resp);
}

/* ---- HTTP/1.1: /health and /version ------------------------------------- */

static void http_json(struct evhttp_request *req, int code, json_t *obj)
{
	struct evbuffer *b = evbuffer_new();
	char *s = json_dumps(obj, JSON_COMPACT);

	json_decref(obj);
	if (!b || !s) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		goto out;
	}
	evbuffer_add(b, s, strlen(s));
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Service Unavailable",
			  b);
out:
	if (b)
		evbuffer_free(b);
	free(s);
}

static void http_health(struct evhttp_request *req, void *arg)
{
	struct server_status st;
	bool ok;

	server_get_status(arg, &st);
	ok = st.leader != 0;
	http_json(req, ok ? 200 : 503,
		  json_pack("{s:s}", "health", ok ? "true" : "false"));
}

static void http_version(struct evhttp_request *req, void *arg)
{
	(void)arg;
	http_json(req, 200,
		  json_pack("{s:s, s:s}", "etcdserver", CAIRN_ETCD_VERSION,
			    "etcdcluster", CAIRN_ETCD_CLUSTER_VERSION));
}

/* ---- registration ------------------------------------------------------ */

struct unary_row {
	const char *path;
	grpc_unary_fn fn;
};

static const struct unary_row unary_rows[] = {
	{"/etcdserverpb.KV/Range", h_range},
	{"/etcdserverpb.KV/Put", h_put},
	{"/etcdserverpb.KV/DeleteRange", h_delete},
	{"/etcdserverpb.KV/Txn", h_txn},
	{"/etcdserverpb.KV/Compact", h_compact},
	{"/etcdserverpb.Maintenance/Alarm", h_alarm},
	{"/etcdserverpb.Maintenance/Defragment", h_defrag},
};

int kvservice_register(struct grpc_server *gs, struct server *srv)
{
	struct evhttp *http = grpc_server_http(gs);
	int err;

	for (size_t i = 0; i < sizeof(unary_rows) / sizeof(unary_rows[0]);
	     i++) {
		err = grpc_server_register_unary(gs, unary_rows[i].path,
						 unary_rows[i].fn, srv);
		if (err < 0)
			return err;
	}
	if ((err = clusterservice_register(gs, srv)) < 0)
		return err;
	if (http && (evhttp_set_cb(http, "/health", http_health, srv) < 0 ||
		     evhttp_set_cb(http, "/version", http_version, srv) < 0))
		return -ENOMEM;
	return 0;
}
