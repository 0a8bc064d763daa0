/* leaseservice: etcd's Lease service over the lessor — see leaseservice.h.
 *
 * KeepAlive stream, per call:
 *
 *     open ──► serving ──(client half-close)──► finished OK
 *                │ ▲
 *   send -EAGAIN │ │ writable
 *                ▼ │
 *              blocked: renewals still happen, their replies are
 *              dropped (the client renews again; memory stays bounded)
 *
 * A dead call (reset, connection gone, server destroyed) is finished at
 * its close callback, and its state freed there.
 */
#include "net/leaseservice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "core/errors.h"
#include "core/lease.h"
#include "core/server.h"
#include "core/util/log.h"
#include "net/grpc.h"
#include "net/rpcreply.h"
#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"



static etcdserverpb_ResponseHeader header(struct lessor *l)
{
	return apply_header(server_apply_ctx(lessor_server(l)));
}

/* ---- Grant, Revoke: through raft ------------------------------------ */


/* A random positive ID not in use (etcd: a generated request ID with the
 * sign bit cleared). 63 random bits make a clash with any ID ever used
 * vanishingly unlikely; one in use now is skipped. */
static int64_t new_lease_id(struct lessor *l)
{
	for (;;) {
		uint64_t r = 0;

		if (getrandom(&r, sizeof(r), 0) != sizeof(r))
			r = (uint64_t)random() << 32 ^ (uint64_t)random();
		r &= INT64_MAX;
		if (r != 0 && !lessor_exists(l, (int64_t)r))
			return (int64_t)r;
	}
}

static void h_grant(struct grpc_call *call, const uint8_t *msg, size_t len,
		    void *ctx)
{
	struct lessor *l = ctx;
	etcdserverpb_LeaseGrantRequest req = {0};
	uint8_t *buf = NULL;
	size_t blen = 0;
	int err = pbu_decode(&etcdserverpb_LeaseGrantRequest_msg, &req, msg,
			     len);

	if (err == 0 && req.TTL > LEASE_MAX_TTL)
		err = CAIRN_ELEASE_TTL_TOO_LARGE;
	if (err == 0 && req.ID == 0) {
		req.ID = new_lease_id(l);
		err = pbu_encode_alloc(&etcdserverpb_LeaseGrantRequest_msg,
				       &req, &buf, &blen);
	}
	if (err == 0)
		err = server_propose(lessor_server(l), SERVER_REQ_LEASE_GRANT,
				     buf ? buf : msg, buf ? blen : len,
				     rpc_done, call);
	free(buf);
	if (err < 0)
		rpc_fail(call, err);
}

static void h_revoke(struct grpc_call *call, const uint8_t *msg, size_t len,
		     void *ctx)
{
	struct lessor *l = ctx;
	etcdserverpb_LeaseRevokeRequest req = {0};
	int err = pbu_decode(&etcdserverpb_LeaseRevokeRequest_msg, &req, msg,
			     len);

	/* an unknown lease is refused before raft; one revoked meanwhile
	 * gets the same error from the applier */
	if (err == 0 && !lessor_exists(l, req.ID))
		err = CAIRN_ELEASE_NOT_FOUND;
	if (err == 0)
		err = server_propose(lessor_server(l), SERVER_REQ_LEASE_REVOKE,
				     msg, len, rpc_done, call);
	if (err < 0)
		rpc_fail(call, err);
}

/* ---- TimeToLive, Leases: local ------------------------------------------ */

struct key_list {
	struct pbslice *v;
	size_t n, cap;
};

static int add_key(void *arg, const uint8_t *key, size_t len)
{
	struct key_list *kl = arg;

	if (kl->n == kl->cap)
		return -ENOMEM;
	kl->v[kl->n].p = (uint8_t *)key;
	kl->v[kl->n].n = len;
	kl->n++;
	return 0;
}

static void h_ttl(struct grpc_call *call, const uint8_t *msg, size_t len,
		  void *ctx)
{
	struct lessor *l = ctx;
	etcdserverpb_LeaseTimeToLiveRequest req = {0};
	etcdserverpb_LeaseTimeToLiveResponse resp =
		etcdserverpb_LeaseTimeToLiveResponse_init_zero;
	struct key_list kl = {0};
	struct pbu_list pl;
	struct lease_info info;
	int err = pbu_decode(&etcdserverpb_LeaseTimeToLiveRequest_msg, &req,
			     msg, len);

	if (err < 0) {
		rpc_fail(call, err);
		return;
	}
	lessor_sync_leader(l);
	resp.has_header = true;
	resp.header = header(l);
	resp.ID = req.ID;
	if (lessor_lookup(l, req.ID, &info) < 0) {
		resp.TTL = -1; /* etcd's answer for an unknown lease */
		rpc_reply_msg(call, &etcdserverpb_LeaseTimeToLiveResponse_msg,
			  &resp);
		return;
	}
	resp.TTL = info.remaining;
	resp.grantedTTL = info.ttl;
	if (req.keys && info.n_keys > 0) {
		kl.v = malloc(info.n_keys * sizeof(*kl.v));
		kl.cap = info.n_keys;
		if (!kl.v ||
		    lessor_foreach_key(l, req.ID, add_key, &kl) != 0) {
			free(kl.v);
			rpc_fail(call, -ENOMEM);
			return;
		}
		pbu_set_bytes_list(&resp.keys, &pl, kl.v, kl.n);
	}
	rpc_reply_msg(call, &etcdserverpb_LeaseTimeToLiveResponse_msg, &resp);
	free(kl.v);
}

static void h_leases(struct grpc_call *call, const uint8_t *msg, size_t len,
		     void *ctx)
{
	struct lessor *l = ctx;
	etcdserverpb_LeaseLeasesResponse resp =
		etcdserverpb_LeaseLeasesResponse_init_zero;
	struct pbu_list pl;
	int64_t *ids = NULL;
	size_t n = 0;
	int err;

	(void)msg;
	(void)len;
	if ((err = lessor_list(l, &ids, &n)) < 0) {
		rpc_fail(call, err);
		return;
	}
	resp.has_header = true;
	resp.header = header(l);
	pbu_set_leases(&resp.leases, &pl, ids, n);
	rpc_reply_msg(call, &etcdserverpb_LeaseLeasesResponse_msg, &resp);
	free(ids);
}

/* ---- KeepAlive stream ------------------------------------------------- */

struct ka_stream {
	struct lessor *l;
	bool blocked; /* the last send said -EAGAIN */
};

static void ka_writable(struct grpc_call *call, void *arg)
{
	struct ka_stream *ks = arg;

	(void)call;
	ks->blocked = false;
}

static void ka_open(struct grpc_call *call, void *ctx)
{
	struct ka_stream *ks = calloc(1, sizeof(*ks));

	if (!ks) {
		rpc_fail(call, -ENOMEM);
		return;
	}
	ks->l = ctx;
	grpc_call_set_user(call, ks);
	grpc_call_set_writable_cb(call, ka_writable, ks);
}

static void ka_end(struct grpc_call *call, int err)
{
	free(grpc_call_get_user(call));
	grpc_call_set_user(call, NULL);
	if (err)
		rpc_fail(call, err);
	else
		grpc_call_finish(call, GRPC_OK, NULL);
}

static void ka_message(struct grpc_call *call, const uint8_t *msg, size_t len,
		       void *ctx)
{
	struct ka_stream *ks = grpc_call_get_user(call);
	etcdserverpb_LeaseKeepAliveRequest req = {0};
	etcdserverpb_LeaseKeepAliveResponse resp = {0};
	uint8_t buf[128];
	size_t blen;
	int err;

	(void)ctx;
	if (!ks)
		return; /* open failed and ended the call */
	err = pbu_decode(&etcdserverpb_LeaseKeepAliveRequest_msg, &req, msg,
			 len);
	if (err == 0)
		err = lessor_keepalive(ks->l, req.ID, &resp.TTL);
	if (err == CAIRN_ELEASE_NOT_FOUND) {
		err = 0; /* etcd answers TTL 0; the client says "not found" */
		resp.TTL = 0;
	} else if (err == CAIRN_ENOT_LEADER) {
		err = CAIRN_ENO_LEADER;
	}
	if (err < 0) {
		ka_end(call, err);
		return;
	}
	resp.has_header = true;
	resp.header = header(ks->l);
	resp.ID = req.ID;
	if (ks->blocked)
		return; /* renewed; the reply is dropped (see the top) */
	err = pbu_encode_to(&etcdserverpb_LeaseKeepAliveResponse_msg, &resp,
			    buf, sizeof(buf), &blen);
	if (err == 0)
		err = grpc_call_send(call, buf, blen);
	if (err == -EAGAIN)
		ks->blocked = true;
	else if (err < 0 && err != -EPIPE)
		ka_end(call, err);
}

static void ka_close(struct grpc_call *call, void *ctx)
{
	(void)ctx;
	/* every reply was queued when its request came: done either way */
	ka_end(call, 0);
}

/* ---- registration --------------------------------------------------------- */

static const struct {
	const char *path;
	grpc_unary_fn fn;
} unary_rows[] = {
	{"/etcdserverpb.Lease/LeaseGrant", h_grant},
	{"/etcdserverpb.Lease/LeaseRevoke", h_revoke},
	{"/etcdserverpb.Lease/LeaseTimeToLive", h_ttl},
	{"/etcdserverpb.Lease/LeaseLeases", h_leases},
};

int leaseservice_register(struct grpc_server *gs, struct server *srv)
{
	static const struct grpc_stream_ops ka_ops = {ka_open, ka_message,
						      ka_close};
	struct lessor *l;
	int err = lessor_start(srv, &l);

	if (err < 0)
		return err;
	for (size_t i = 0; i < sizeof(unary_rows) / sizeof(unary_rows[0]); i++) {
		err = grpc_server_register_unary(gs, unary_rows[i].path,
						 unary_rows[i].fn, l);
		if (err < 0)
			return err;
	}
	return grpc_server_register_stream(gs, "/etcdserverpb.Lease/LeaseKeepAlive",
					   &ka_ops, l);
}
