/* clusterservice: etcd's Cluster service, Status and MoveLeader.
 *
 * Membership changes are proposed through the server and answered when
 * applied: the server hands back the membership after the change
 * (members_list_json text), which becomes the response's member list, as
 * etcd's membersToProtoMembers (sorted by id). Cluster responses carry
 * etcd's ClusterServer header: cluster id, member id and raft term, no
 * revision.
 */
#include "net/clusterservice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/errors.h"
#include "core/members.h"
#include "core/server.h"
#include "net/grpc.h"
#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"
#include "net/rpcreply.h"

/* etcd's MoveLeader waits for the client's deadline; without one, this. */
#define MOVE_LEADER_TIMEOUT_MS 5000

bool cluster_refuse(struct server *srv, struct grpc_call *call)
{
	int err = 0;

	if (server_members_removed(srv))
		err = CAIRN_EMEMBER_REMOVED;
	else if (server_is_learner(srv))
		err = CAIRN_ENOT_SUPPORTED_FOR_LEARNER;
	if (err)
		rpc_fail(call, err);
	return err != 0;
}

static etcdserverpb_ResponseHeader cluster_header(struct server *srv)
{
	etcdserverpb_ResponseHeader h = apply_header(server_apply_ctx(srv));

	h.revision = 0; /* etcd's ClusterServer.header() has none */
	return h;
}

/* ms as protobuf members: pointers into ms (valid while ms is). */
static etcdserverpb_Member *proto_members(const struct members *ms)
{
	etcdserverpb_Member *v = calloc(ms->n ? ms->n : 1, sizeof(*v));

	for (size_t i = 0; v && i < ms->n; i++) {
		const struct member *m = &ms->v[i];

		v[i].ID = m->id;
		v[i].name = m->name;
		v[i].peerURLs = m->peer_urls;
		v[i].peerURLs_count = (pb_size_t)m->n_peer_urls;
		v[i].clientURLs = m->client_urls;
		v[i].clientURLs_count = (pb_size_t)m->n_client_urls;
		v[i].isLearner = m->is_learner;
	}
	return v;
}

/* ---- MemberList --------------------------------------------------------- */

static void h_member_list(struct grpc_call *call, const uint8_t *msg,
			  size_t len, void *ctx)
{
	struct server *srv = ctx;
	const struct members *ms = server_members(srv);
	etcdserverpb_MemberListResponse resp = {0};

	(void)msg;
	(void)len;
	if (cluster_refuse(srv, call))
		return;
	/* etcd 3.4 serves it from the local membership (not linearizable) */
	resp.has_header = true;
	resp.header = cluster_header(srv);
	resp.members = proto_members(ms);
	resp.members_count = (pb_size_t)ms->n;
	if (!resp.members)
		rpc_fail(call, -ENOMEM);
	else
		rpc_reply_msg(call, &etcdserverpb_MemberListResponse_msg,
			      &resp);
	free(resp.members);
}

/* ---- changes ----------------------------------------------------------- */

enum change_kind { CH_ADD, CH_REMOVE, CH_UPDATE, CH_PROMOTE };

struct change {
	struct grpc_call *call;
	struct server *srv;
	enum change_kind kind;
	uint64_t added; /* CH_ADD: the new member's id */
};

/* Every change response is {header 1, members 2} but MemberAdd's
 * {header 1, member 2, members 3}. */
static void reply_change(struct change *c, const struct members *ms)
{
	etcdserverpb_Member *v = proto_members(ms);
	etcdserverpb_ResponseHeader h = cluster_header(c->srv);
	pb_size_t n = (pb_size_t)ms->n;
	const struct member *m;

	if (!v) {
		rpc_fail(c->call, -ENOMEM);
		return;
	}
	if (c->kind == CH_ADD) {
		etcdserverpb_MemberAddResponse r = {0};

		r.has_header = true;
		r.header = h;
		r.members = v;
		r.members_count = n;
		if ((m = members_find(ms, c->added))) {
			/* etcd: {ID, PeerURLs, IsLearner} of the new member */
			r.has_member = true;
			r.member.ID = m->id;
			r.member.peerURLs = m->peer_urls;
			r.member.peerURLs_count = (pb_size_t)m->n_peer_urls;
			r.member.isLearner = m->is_learner;
		}
		rpc_reply_msg(c->call, &etcdserverpb_MemberAddResponse_msg, &r);
	} else {
		/* Remove, Update and Promote responses share one layout */
		etcdserverpb_MemberRemoveResponse r = {0};

		r.has_header = true;
		r.header = h;
		r.members = v;
		r.members_count = n;
		rpc_reply_msg(c->call, &etcdserverpb_MemberRemoveResponse_msg,
			      &r);
	}
	free(v);
}

static void change_done(void *arg, struct apply_out *out)
{
	struct change *c = arg;
	struct members ms;
	int err = out->err;

	if (err == 0)
		err = members_from_list_json(&ms, (const char *)out->buf,
					     out->len);
	free(out->buf);
	if (err < 0) {
		rpc_fail(c->call, err);
	} else {
		reply_change(c, &ms);
		members_free(&ms);
	}
	free(c);
}

static struct change *change_new(struct grpc_call *call, void *ctx,
				 enum change_kind kind)
{
	struct change *c;

	if (cluster_refuse(ctx, call))
		return NULL;
	if (!(c = calloc(1, sizeof(*c)))) {
		rpc_fail(call, -ENOMEM);
		return NULL;
	}
	c->call = call;
	c->srv = ctx;
	c->kind = kind;
	return c;
}

/* err from starting the change: fail the call (done will not come). */
static void change_started(struct change *c, int err)
{
	if (err < 0) {
		rpc_fail(c->call, err);
		free(c);
	}
}

static void h_member_add(struct grpc_call *call, const uint8_t *msg, size_t len,
			 void *ctx)
{
	etcdserverpb_MemberAddRequest req = {0};
	struct change *c = change_new(call, ctx, CH_ADD);
	int err;

	if (!c)
		return;
	err = pbu_decode(&etcdserverpb_MemberAddRequest_msg, &req, msg, len);
	if (err == 0)
		err = server_member_add(c->srv,
					(const char *const *)req.peerURLs,
					req.peerURLs_count, req.isLearner,
					&c->added, change_done, c);
	pb_release(&etcdserverpb_MemberAddRequest_msg, &req);
	change_started(c, err);
}

static void h_member_remove(struct grpc_call *call, const uint8_t *msg,
			    size_t len, void *ctx)
{
	etcdserverpb_MemberRemoveRequest req = {0};
	struct change *c = change_new(call, ctx, CH_REMOVE);
	int err;

	if (!c)
		return;
	err = pbu_decode(&etcdserverpb_MemberRemoveRequest_msg, &req, msg, len);
	if (err == 0)
		err = server_member_remove(c->srv, req.ID, change_done, c);
	change_started(c, err);
}

static void h_member_update(struct grpc_call *call, const uint8_t *msg,
			    size_t len, void *ctx)
{
	etcdserverpb_MemberUpdateRequest req = {0};
	struct change *c = change_new(call, ctx, CH_UPDATE);
	int err;

	if (!c)
		return;
	err = pbu_decode(&etcdserverpb_MemberUpdateRequest_msg, &req, msg, len);
	if (err == 0)
		err = server_member_update(c->srv, req.ID,
					   (const char *const *)req.peerURLs,
					   req.peerURLs_count, change_done, c);
	pb_release(&etcdserverpb_MemberUpdateRequest_msg, &req);
	change_started(c, err);
}

static void h_member_promote(struct grpc_call *call, const uint8_t *msg,
			     size_t len, void *ctx)
{
	etcdserverpb_MemberPromoteRequest req = {0};
	struct change *c = change_new(call, ctx, CH_PROMOTE);
	int err;

	if (!c)
		return;
	err = pbu_decode(&etcdserverpb_MemberPromoteRequest_msg, &req, msg,
			 len);
	if (err == 0)
		err = server_member_promote(c->srv, req.ID, change_done, c);
	change_started(c, err);
}

/* ---- Maintenance: Status, MoveLeader --------------------------------- */

static void h_status(struct grpc_call *call, const uint8_t *msg, size_t len,
		     void *ctx)
{
	struct server *srv = ctx;
	etcdserverpb_StatusResponse resp = {0};
	struct server_status st;
	char *no_leader = (char *)cairn_strerror(CAIRN_ENO_LEADER);

	(void)msg;
	(void)len;
	/* served on learners too (etcd's isRPCSupportedForLearner) */
	server_get_status(srv, &st);
	resp.has_header = true;
	resp.header = apply_header(server_apply_ctx(srv));
	resp.version = (char *)CAIRN_ETCD_VERSION;
	resp.dbSize = (int64_t)st.db_size;
	resp.dbSizeInUse = (int64_t)st.db_in_use;
	resp.leader = st.leader;
	resp.raftIndex = st.commit_index;
	resp.raftTerm = st.term;
	resp.raftAppliedIndex = st.applied_index;
	resp.isLearner = server_is_learner(srv);
	if (st.leader == 0) {
		resp.errors = &no_leader;
		resp.errors_count = 1;
	}
	rpc_reply_msg(call, &etcdserverpb_StatusResponse_msg, &resp);
}

static void move_done(void *arg, int err)
{
	struct grpc_call *call = arg;
	etcdserverpb_MoveLeaderResponse resp = {0};

	if (err < 0)
		rpc_fail(call, err);
	else /* etcd answers an empty MoveLeaderResponse, no header */
		rpc_reply_msg(call, &etcdserverpb_MoveLeaderResponse_msg,
			      &resp);
}

/* What is left of the client's deadline (CLOCK_MONOTONIC, as grpc's). */
static uint64_t call_timeout_ms(struct grpc_call *call)
{
	uint64_t dl = grpc_call_deadline_us(call), now;
	struct timespec ts;

	if (!dl)
		return MOVE_LEADER_TIMEOUT_MS;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
	return dl > now ? (dl - now) / 1000 : 0;
}

static void h_move_leader(struct grpc_call *call, const uint8_t *msg,
			  size_t len, void *ctx)
{
	struct server *srv = ctx;
	etcdserverpb_MoveLeaderRequest req = {0};
	int err;

	if (cluster_refuse(srv, call))
		return;
	err = pbu_decode(&etcdserverpb_MoveLeaderRequest_msg, &req, msg, len);
	if (err == 0)
		err = server_move_leader(srv, req.targetID,
					 call_timeout_ms(call), move_done,
					 call);
	if (err < 0)
		rpc_fail(call, err);
}

/* ---- registration ------------------------------------------------------ */

static const struct {
	const char *path;
	grpc_unary_fn fn;
} rows[] = {
	{"/etcdserverpb.Cluster/MemberAdd", h_member_add},
	{"/etcdserverpb.Cluster/MemberRemove", h_member_remove},
	{"/etcdserverpb.Cluster/MemberUpdate", h_member_update},
	{"/etcdserverpb.Cluster/MemberList", h_member_list},
	{"/etcdserverpb.Cluster/MemberPromote", h_member_promote},
	{"/etcdserverpb.Maintenance/Status", h_status},
	{"/etcdserverpb.Maintenance/MoveLeader", h_move_leader},
};

int clusterservice_register(struct grpc_server *gs, struct server *srv)
{
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		int err = grpc_server_register_unary(gs, rows[i].path,
						     rows[i].fn, srv);

		if (err < 0)
			return err;
	}
	return 0;
}
