/* leaseservice: etcd's Lease service over the lessor — see leaseservice.h.
 *
 * On a cluster (etcd's model): only the leader's lessor is primary (it
 * alone knows expiries), so a follower forwards KeepAlive and TimeToLive
 * to the leader over the peer transport (PEER_REQ_LEASE,
 * PEER_REQ_LEASE_TTL: the etcd request protobuf out, the leader's
 * response protobuf back) and relays the answer; Grant and Revoke go
 * through raft from any member; Leases is answered locally. A forward is
 * retried (no leader known, leader changed, leader unreachable) until
 * etcd's request timeout, 5 s + 2 election timeouts, then fails as etcd
 * 3.4 does: "etcdserver: no leader" if none is known then, else
 * "etcdserver: request timed out". A learner refuses every Lease RPC
 * (cluster_refuse, net/clusterservice.h), KeepAlive at the stream's open.
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
 * On a follower each renewal is forwarded (at most KA_MAX_PENDING at a
 * time per stream; more are dropped like blocked replies) and answered
 * when the leader's answer comes; a half-close or a dead call ends the
 * call once the last forwarded renewal is answered, and frees its state
 * then (struct ka_stream outlives the call while forwards are pending).
 * Otherwise a dead call (reset, connection gone, server destroyed) is
 * finished at its close callback, and its state freed there.
 *
 * Every forward is on its service's list until it is done; the lessor's
 * close (core/lease.h lessor_set_close_cb) ends those still waiting for a
 * retry with "etcdserver: server stopped", so none outlives the server
 * (those waiting on the transport end with it: -ECANCELED).
 */
#include "net/leaseservice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <event2/event.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/lease.h"
#include "core/server.h"
#include "core/util/log.h"
#include "net/clusterservice.h"
#include "net/grpc.h"
#include "net/peer.h"
#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"
#include "net/rpcreply.h"

#define FWD_BASE_MS 5000  /* etcd's ReqTimeout: 5 s + 2 election timeouts */
#define FWD_RETRY_MS 100  /* after a refusal or a lost connection */
#define KA_MAX_PENDING 64 /* forwarded renewals per KeepAlive stream */

struct fwd;

/* What the Lease handlers share (their ctx): freed by the lessor's close. */
struct lease_svc {
	struct lessor *l;
	struct fwd *fwds; /* forwards not done yet */
};

static etcdserverpb_ResponseHeader header(struct lessor *l)
{
	return apply_header(server_apply_ctx(lessor_server(l)));
}

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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
	struct lessor *l = ((struct lease_svc *)ctx)->l;
	etcdserverpb_LeaseGrantRequest req = {0};
	uint8_t *buf = NULL;
	size_t blen = 0;
	int err =
		pbu_decode(&etcdserverpb_LeaseGrantRequest_msg, &req, msg, len);

	if (cluster_refuse(lessor_server(l), call))
		return; /* a learner: etcd refuses every Lease RPC there */
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
	struct lessor *l = ((struct lease_svc *)ctx)->l;
	etcdserverpb_LeaseRevokeRequest req = {0};
	int err = pbu_decode(&etcdserverpb_LeaseRevokeRequest_msg, &req, msg,
			     len);

	if (cluster_refuse(lessor_server(l), call))
		return; /* a learner: etcd refuses every Lease RPC there */
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

/* The encoded TimeToLiveResponse for req from this member's lessor into
 * *buf (malloc'd) — the leader's answer. 0, CAIRN_ELEASE_NOT_FOUND,
 * -ENOMEM. */
static int ttl_build(struct lessor *l,
		     const etcdserverpb_LeaseTimeToLiveRequest *req,
		     uint8_t **buf, size_t *blen)
{
	etcdserverpb_LeaseTimeToLiveResponse resp =
		etcdserverpb_LeaseTimeToLiveResponse_init_zero;
	struct key_list kl = {0};
	struct pbu_list pl;
	struct lease_info info;
	int err;

	lessor_sync_leader(l);
	if ((err = lessor_lookup(l, req->ID, &info)) < 0)
		return err;
	resp.has_header = true;
	resp.header = header(l);
	resp.ID = req->ID;
	resp.TTL = info.remaining;
	resp.grantedTTL = info.ttl;
	if (req->keys && info.n_keys > 0) {
		kl.v = malloc(info.n_keys * sizeof(*kl.v));
		kl.cap = info.n_keys;
		if (!kl.v ||
		    lessor_foreach_key(l, req->ID, add_key, &kl) != 0) {
			free(kl.v);
			return -ENOMEM;
		}
		pbu_set_bytes_list(&resp.keys, &pl, kl.v, kl.n);
	}
	err = pbu_encode_alloc(&etcdserverpb_LeaseTimeToLiveResponse_msg, &resp,
			       buf, blen);
	free(kl.v);
	return err;
}

/* etcd's answer for an unknown lease: TTL -1, no error. */
static void ttl_reply_unknown(struct grpc_call *call, struct lessor *l,
			      int64_t id)
{
	etcdserverpb_LeaseTimeToLiveResponse resp =
		etcdserverpb_LeaseTimeToLiveResponse_init_zero;

	resp.has_header = true;
	resp.header = header(l);
	resp.ID = id;
	resp.TTL = -1;
	rpc_reply_msg(call, &etcdserverpb_LeaseTimeToLiveResponse_msg, &resp);
}

/* ---- forwarding to the leader (follower side) --------------------------- */

typedef void (*fwd_done_fn)(void *arg, int err, const uint8_t *resp,
			    size_t len);

/* One KeepAlive or TimeToLive on its way to the leader. */
struct fwd {
	struct lessor *l;
	struct fwd *next, **pprev; /* on svc->fwds */
	uint8_t kind;		   /* PEER_REQ_LEASE or PEER_REQ_LEASE_TTL */
	uint8_t *req;
	size_t len;
	int64_t deadline_ms;
	struct event *retry_ev;
	fwd_done_fn done;
	void *arg;
};

static void fwd_try(struct fwd *f);

static void fwd_finish(struct fwd *f, int err, const uint8_t *resp, size_t len)
{
	*f->pprev = f->next;
	if (f->next)
		f->next->pprev = f->pprev;
	f->done(f->arg, err, resp, len);
	event_free(f->retry_ev);
	free(f->req);
	free(f);
}

static void fwd_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	fwd_try(arg);
}

static void fwd_later(struct fwd *f, int64_t ms)
{
	int64_t left = f->deadline_ms - mono_ms();
	struct timeval tv;

	if (ms > left)
		ms = left > 0 ? left : 0;
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(f->retry_ev, &tv);
}

static void fwd_reply(void *arg, int err, const void *resp, size_t len)
{
	struct fwd *f = arg;

	if (err == 0 || err == CAIRN_ELEASE_NOT_FOUND)
		fwd_finish(f, err, resp, len);
	else if (err == -ECANCELED) /* transport gone: server closing */
		fwd_finish(f, CAIRN_ESTOPPED, NULL, 0);
	else if (err == -ETIMEDOUT)
		fwd_finish(f, CAIRN_ETIMEOUT, NULL, 0);
	else /* not leader any more, unreachable, no handler yet: again */
		fwd_later(f, FWD_RETRY_MS);
}

/* The leader's answer as if forwarded: this member leads now. */
static int local_answer(struct lessor *l, uint8_t kind, const uint8_t *req,
			size_t len, uint8_t **buf, size_t *blen);

static void fwd_try(struct fwd *f)
{
	struct server *srv = lessor_server(f->l);
	struct peer_transport *t = server_peers(srv);
	uint64_t leader = server_leader(srv);
	int64_t left = f->deadline_ms - mono_ms();
	uint8_t *buf = NULL;
	size_t blen = 0;
	int err;

	if (left <= 0) {
		/* etcd 3.4: "no leader" when none showed up, else the
		 * leader did not answer: "request timed out" */
		fwd_finish(f, leader ? CAIRN_ETIMEOUT : CAIRN_ENO_LEADER, NULL,
			   0);
		return;
	}
	if (server_is_leader(srv)) {
		err = local_answer(f->l, f->kind, f->req, f->len, &buf, &blen);
		fwd_finish(f, err, buf, blen);
		free(buf);
		return;
	}
	if (!leader || !t) { /* wait for an election (etcd's waitLeader) */
		fwd_later(f, (int64_t)server_config(srv)->election_ms);
		return;
	}
	if (peer_request(t, leader, f->kind, f->req, f->len, (unsigned)left,
			 fwd_reply, f) < 0)
		fwd_later(f, FWD_RETRY_MS);
}

/* Forward the encoded request req (copied) of kind to the leader; done
 * gets the leader's encoded response (err 0) or CAIRN_ELEASE_NOT_FOUND,
 * CAIRN_ENO_LEADER, CAIRN_ETIMEOUT, CAIRN_ESTOPPED, -ENOMEM — exactly
 * once, never from inside this call. 0 or -ENOMEM (done not called). */
static int fwd_start(struct lease_svc *svc, uint8_t kind, const uint8_t *req,
		     size_t len, fwd_done_fn done, void *arg)
{
	struct lessor *l = svc->l;
	struct server *srv = lessor_server(l);
	struct fwd *f = calloc(1, sizeof(*f));

	if (!f)
		return -ENOMEM;
	f->l = l;
	f->kind = kind;
	f->done = done;
	f->arg = arg;
	f->deadline_ms = mono_ms() + FWD_BASE_MS +
			 2 * (int64_t)server_config(srv)->election_ms;
	f->req = malloc(len ? len : 1);
	f->retry_ev = evtimer_new(server_event_base(srv), fwd_retry_cb, f);
	if (!f->req || !f->retry_ev) {
		if (f->retry_ev)
			event_free(f->retry_ev);
		free(f->req);
		free(f);
		return -ENOMEM;
	}
	memcpy(f->req, req, len);
	f->len = len;
	f->next = svc->fwds;
	f->pprev = &svc->fwds;
	if (f->next)
		f->next->pprev = &f->next;
	svc->fwds = f;
	fwd_later(f, 0); /* first try from the loop: done never runs here */
	return 0;
}

/* ---- serving the followers (leader side) --------------------------------- */

/* Renew lease id in this member's lessor (the leader's): its encoded
 * LeaseKeepAliveResponse into *buf (malloc'd). */
static int keepalive_build(struct lessor *l, int64_t id, uint8_t **buf,
			   size_t *blen)
{
	etcdserverpb_LeaseKeepAliveResponse resp = {0};
	int err = lessor_keepalive(l, id, &resp.TTL);

	if (err < 0)
		return err;
	resp.has_header = true;
	resp.header = header(l);
	resp.ID = id;
	return pbu_encode_alloc(&etcdserverpb_LeaseKeepAliveResponse_msg, &resp,
				buf, blen);
}

static int local_keepalive(struct lessor *l, const uint8_t *req, size_t len,
			   uint8_t **buf, size_t *blen)
{
	etcdserverpb_LeaseKeepAliveRequest kr = {0};
	int err = pbu_decode(&etcdserverpb_LeaseKeepAliveRequest_msg, &kr, req,
			     len);

	return err < 0 ? err : keepalive_build(l, kr.ID, buf, blen);
}

static int local_answer(struct lessor *l, uint8_t kind, const uint8_t *req,
			size_t len, uint8_t **buf, size_t *blen)
{
	etcdserverpb_LeaseTimeToLiveRequest tr = {0};
	int err;

	if (kind == PEER_REQ_LEASE)
		return local_keepalive(l, req, len, buf, blen);
	err = pbu_decode(&etcdserverpb_LeaseTimeToLiveRequest_msg, &tr, req,
			 len);
	return err < 0 ? err : ttl_build(l, &tr, buf, blen);
}

/* peer_request_fn for PEER_REQ_LEASE and PEER_REQ_LEASE_TTL (arg: the
 * lessor; the kind is told apart by which handler slot called). */
static void serve(struct lessor *l, uint8_t kind, const void *req, size_t len,
		  struct peer_reply_ctx *rc)
{
	uint8_t *buf = NULL;
	size_t blen = 0;
	int err = CAIRN_ENOT_LEADER; /* the follower looks again */

	if (server_is_leader(lessor_server(l)))
		err = local_answer(l, kind, req, len, &buf, &blen);
	if (err == CAIRN_ENOT_LEADER || err == CAIRN_ELEASE_NOT_FOUND ||
	    err == 0)
		peer_reply(rc, err, buf, blen);
	else
		peer_reply(rc, err < 0 ? err : -EPROTO, NULL, 0);
	free(buf);
}

static void serve_keepalive(void *arg, uint64_t from, const void *req,
			    size_t len, struct peer_reply_ctx *rc)
{
	(void)from;
	serve(arg, PEER_REQ_LEASE, req, len, rc);
}

static void serve_ttl(void *arg, uint64_t from, const void *req, size_t len,
		      struct peer_reply_ctx *rc)
{
	(void)from;
	serve(arg, PEER_REQ_LEASE_TTL, req, len, rc);
}

/* ---- TimeToLive -----------------------------------------------------------
 */

struct ttl_fwd {
	struct grpc_call *call;
	struct lessor *l;
	int64_t id;
};

static void ttl_forwarded(void *arg, int err, const uint8_t *resp, size_t len)
{
	struct ttl_fwd *tf = arg;

	if (err == CAIRN_ELEASE_NOT_FOUND)
		ttl_reply_unknown(tf->call, tf->l, tf->id);
	else if (err == 0)
		grpc_call_reply(tf->call, resp, len);
	else
		rpc_fail(tf->call, err);
	free(tf);
}

static void h_ttl(struct grpc_call *call, const uint8_t *msg, size_t len,
		  void *ctx)
{
	struct lessor *l = ((struct lease_svc *)ctx)->l;
	etcdserverpb_LeaseTimeToLiveRequest req = {0};
	struct ttl_fwd *tf;
	uint8_t *buf = NULL;
	size_t blen = 0;
	int err = pbu_decode(&etcdserverpb_LeaseTimeToLiveRequest_msg, &req,
			     msg, len);

	if (cluster_refuse(lessor_server(l), call))
		return; /* a learner: etcd refuses every Lease RPC there */
	if (err == 0 && !server_is_leader(lessor_server(l))) {
		/* only the leader knows how long a lease has left */
		tf = calloc(1, sizeof(*tf));
		err = -ENOMEM;
		if (tf) {
			*tf = (struct ttl_fwd){call, l, req.ID};
			err = fwd_start(ctx, PEER_REQ_LEASE_TTL, msg, len,
					ttl_forwarded, tf);
			if (err == 0)
				return;
			free(tf);
		}
	}
	if (err == 0)
		err = ttl_build(l, &req, &buf, &blen);
	if (err == CAIRN_ELEASE_NOT_FOUND)
		ttl_reply_unknown(call, l, req.ID);
	else if (err < 0)
		rpc_fail(call, err);
	else
		grpc_call_reply(call, buf, blen);
	free(buf);
}

static void h_leases(struct grpc_call *call, const uint8_t *msg, size_t len,
		     void *ctx)
{
	struct lessor *l = ((struct lease_svc *)ctx)->l;
	etcdserverpb_LeaseLeasesResponse resp =
		etcdserverpb_LeaseLeasesResponse_init_zero;
	struct pbu_list pl;
	int64_t *ids = NULL;
	size_t n = 0;
	int err;

	(void)msg;
	(void)len;
	if (cluster_refuse(lessor_server(l), call))
		return;
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
	struct lease_svc *svc;
	struct lessor *l;
	struct grpc_call *call; /* NULL once ended */
	bool blocked;		/* the last send said -EAGAIN */
	bool closing;		/* closed by the client: end when idle */
	unsigned pending;	/* renewals forwarded to the leader */
};

static void ka_writable(struct grpc_call *call, void *arg)
{
	struct ka_stream *ks = arg;

	(void)call;
	ks->blocked = false;
}

static void ka_open(struct grpc_call *call, void *ctx)
{
	struct lease_svc *svc = ctx;
	struct ka_stream *ks;

	if (cluster_refuse(lessor_server(svc->l), call))
		return; /* a learner */
	ks = calloc(1, sizeof(*ks));
	if (!ks) {
		rpc_fail(call, -ENOMEM);
		return;
	}
	ks->svc = svc;
	ks->l = svc->l;
	ks->call = call;
	grpc_call_set_user(call, ks);
	grpc_call_set_writable_cb(call, ka_writable, ks);
}

/* End the call (once); ks lives on while forwards are pending, else it
 * is freed: the caller must not touch ks afterwards. */
static void ka_end(struct ka_stream *ks, int err)
{
	struct grpc_call *call = ks->call;

	if (call) {
		ks->call = NULL;
		grpc_call_set_user(call, NULL);
		if (err)
			rpc_fail(call, err);
		else
			grpc_call_finish(call, GRPC_OK, NULL);
	}
	if (ks->pending == 0)
		free(ks);
}

/* Send an encoded LeaseKeepAliveResponse (dropped while blocked).
 * 0, or an error to end the call with (ka_end). */
static int ka_send(struct ka_stream *ks, const uint8_t *buf, size_t len)
{
	int err;

	if (ks->blocked)
		return 0; /* renewed; the reply is dropped (see the top) */
	err = grpc_call_send(ks->call, buf, len);
	if (err == -EAGAIN)
		ks->blocked = true;
	return err < 0 && err != -EAGAIN && err != -EPIPE ? err : 0;
}

/* TTL 0 for an unknown lease: etcd's answer; the client says "not
 * found". */
static int ka_send_unknown(struct ka_stream *ks, int64_t id)
{
	etcdserverpb_LeaseKeepAliveResponse resp = {0};
	uint8_t buf[128];
	size_t blen;

	resp.has_header = true;
	resp.header = header(ks->l);
	resp.ID = id;
	if (pbu_encode_to(&etcdserverpb_LeaseKeepAliveResponse_msg, &resp, buf,
			  sizeof(buf), &blen) < 0)
		return -ENOMEM;
	return ka_send(ks, buf, blen);
}

struct ka_fwd {
	struct ka_stream *ks;
	int64_t id;
};

static void ka_forwarded(void *arg, int err, const uint8_t *resp, size_t len)
{
	struct ka_fwd *kf = arg;
	struct ka_stream *ks = kf->ks;
	int64_t id = kf->id;

	free(kf);
	ks->pending--;
	if (!ks->call) { /* ended meanwhile */
		if (ks->pending == 0)
			free(ks);
		return;
	}
	if (err == 0)
		err = ka_send(ks, resp, len);
	else if (err == CAIRN_ELEASE_NOT_FOUND)
		err = ka_send_unknown(ks, id);
	if (err || (ks->closing && ks->pending == 0))
		ka_end(ks, err); /* frees ks when nothing is pending */
}

static void ka_message(struct grpc_call *call, const uint8_t *msg, size_t len,
		       void *ctx)
{
	struct ka_stream *ks = grpc_call_get_user(call);
	etcdserverpb_LeaseKeepAliveRequest req = {0};
	uint8_t *buf = NULL;
	size_t blen = 0;
	struct ka_fwd *kf;
	int err;

	(void)ctx;
	if (!ks)
		return; /* open failed and ended the call */
	err = pbu_decode(&etcdserverpb_LeaseKeepAliveRequest_msg, &req, msg,
			 len);
	if (err == 0 && !server_is_leader(lessor_server(ks->l))) {
		/* renewals go to the leader's lessor, the primary */
		if (ks->pending >= KA_MAX_PENDING)
			return; /* dropped; the client renews again */
		err = -ENOMEM;
		if ((kf = malloc(sizeof(*kf)))) {
			*kf = (struct ka_fwd){ks, req.ID};
			err = fwd_start(ks->svc, PEER_REQ_LEASE, msg, len,
					ka_forwarded, kf);
			if (err == 0) {
				ks->pending++;
				return;
			}
			free(kf);
		}
	}
	if (err == 0)
		err = keepalive_build(ks->l, req.ID, &buf, &blen);
	if (err == CAIRN_ELEASE_NOT_FOUND)
		err = ka_send_unknown(ks, req.ID);
	else if (err == 0)
		err = ka_send(ks, buf, blen);
	else if (err == CAIRN_ENOT_LEADER)
		err = CAIRN_ENO_LEADER;
	free(buf);
	if (err)
		ka_end(ks, err);
}

static void ka_close(struct grpc_call *call, void *ctx)
{
	struct ka_stream *ks = grpc_call_get_user(call);

	(void)ctx;
	if (!ks)
		return;
	/* replies of local renewals were queued when their requests came;
	 * forwarded ones end the call when the last answer is in */
	ks->closing = true;
	if (ks->pending == 0)
		ka_end(ks, 0);
}

/* ---- registration ---------------------------------------------------------
 */

static const struct {
	const char *path;
	grpc_unary_fn fn;
} unary_rows[] = {
	{"/etcdserverpb.Lease/LeaseGrant", h_grant},
	{"/etcdserverpb.Lease/LeaseRevoke", h_revoke},
	{"/etcdserverpb.Lease/LeaseTimeToLive", h_ttl},
	{"/etcdserverpb.Lease/LeaseLeases", h_leases},
};

/* The lessor is closing (server_close, after the transport went): end
 * the forwards still waiting for a retry, then free the service. */
static void svc_close(void *arg)
{
	struct lease_svc *svc = arg;

	while (svc->fwds)
		fwd_finish(svc->fwds, CAIRN_ESTOPPED, NULL, 0);
	free(svc);
}

int leaseservice_register(struct grpc_server *gs, struct server *srv)
{
	static const struct grpc_stream_ops ka_ops = {ka_open, ka_message,
						      ka_close};
	struct lessor *l;
	struct lease_svc *svc;
	struct peer_transport *t;
	int err = lessor_start(srv, &l);

	if (err < 0)
		return err;
	if (!(svc = calloc(1, sizeof(*svc))))
		return -ENOMEM; /* the lessor goes with the server */
	svc->l = l;
	lessor_set_close_cb(l, svc_close, svc);
	/* the leader answers followers' renewals and TTL queries (the
	 * lessor's close hook removes these handlers) */
	if ((t = server_peers(srv))) {
		peer_set_request_handler(t, PEER_REQ_LEASE, serve_keepalive, l);
		peer_set_request_handler(t, PEER_REQ_LEASE_TTL, serve_ttl, l);
	}
	for (size_t i = 0; i < sizeof(unary_rows) / sizeof(unary_rows[0]);
	     i++) {
		err = grpc_server_register_unary(gs, unary_rows[i].path,
						 unary_rows[i].fn, svc);
		if (err < 0)
			return err;
	}
	return grpc_server_register_stream(
		gs, "/etcdserverpb.Lease/LeaseKeepAlive", &ka_ops, svc);
}
