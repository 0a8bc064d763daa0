/* server_member: membership on a running member — bootstrap and join,
 * conf changes through raft, member attributes, MoveLeader.
 *
 * Invariants:
 *  1. sm->ms is the membership as of the applied index, and the engine's
 *     "members" / "members_removed" buckets hold the same in the batch
 *     that carries that index (writes go into server_engine()'s batch).
 *     One exception: a member told by a peer that it was removed records
 *     its own removal at once (it may never apply that entry).
 *  2. raft's configuration changes only through raft_apply_conf_change,
 *     called here when a CONF_CHANGE entry passes etcd's validation on
 *     the applied membership; every member validates the same entries
 *     against the same membership, so all decide alike. A rejected entry
 *     changes nothing (etcd applies it with NodeID none).
 *  3. Applying is idempotent against a newer starting membership (a
 *     joining member replays older conf changes): a change whose effect
 *     is already there fails validation and is skipped.
 *  4. s->peers knows every member of sm->ms but this one (and a removed
 *     member until it was told, or could not be told, of its removal).
 *
 * Entry formats: CONF_CHANGE entries hold membershippb.ConfChange (the
 * wire twin of etcd's raftpb.ConfChange): {ID: request id, Type, NodeID,
 * Context: etcd's member JSON (add, update) or promotion context}. Member
 * attributes travel in NORMAL entries as an InternalRaftRequest with
 * field 1301 (membershippb.AttrRaftRequest, see membership.proto).
 */
#include "core/server_int.h"

#include <assert.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/members.h"
#include "core/mvcc/mvcc.h"
#include "core/util/log.h"
#include "net/peer.h"
#include "net/proto/membership.pb.h"
#include "net/proto/pbutil.h"

#define BUCKET_MEMBERS "members"
#define BUCKET_REMOVED "members_removed"
#define PUBLISH_RETRY_MS 1000
#define PROBE_MS 2000 /* a leaderless member asks if it was removed */
#define FORWARD_TIMEOUT_MS 5000
#define REMOVAL_NOTE_MS 1000


/* nanopb calls this for ConfChange.Context (membership.options). */
bool membershippb_ConfChange_callback(pb_istream_t *is, pb_ostream_t *os,
				      const pb_field_t *field)
{
	return pbslice_field_cb(is, os, field);
}

/* ---- storage (invariant 1) ---------------------------------------------- */

static void id_key(uint64_t id, char *buf, size_t cap)
{
	snprintf(buf, cap, "%" PRIx64, id); /* etcd's types.ID.String() */
}

static int store_member(struct server *s, const struct member *m)
{
	char key[17], *json = members_member_json(m);
	int err;

	if (!json)
		return -ENOMEM;
	id_key(m->id, key, sizeof(key));
	err = engine_put(server_engine(s), BUCKET_MEMBERS, key, strlen(key),
			 json, strlen(json));
	free(json);
	return err;
}

static int store_removed(struct server *s, uint64_t id)
{
	char key[17];
	int err;

	id_key(id, key, sizeof(key));
	err = engine_del(server_engine(s), BUCKET_MEMBERS, key, strlen(key));
	if (err == 0)
		err = engine_put(server_engine(s), BUCKET_REMOVED, key,
				 strlen(key), "removed", 7);
	return err;
}

static int store_all(struct server *s, const struct members *ms)
{
	int err = 0;

	for (size_t i = 0; err == 0 && i < ms->n; i++)
		err = store_member(s, &ms->v[i]);
	for (size_t i = 0; err == 0 && i < ms->n_removed; i++)
		err = store_removed(s, ms->removed[i]);
	return err;
}

static int load_bucket(struct server *s, struct engine_view *v,
		       const char *bucket, struct members *ms)
{
	struct engine_handle *h = server_engine(s);
	struct engine_iter *it;
	struct engine_slice k, val;
	int rc, err = engine_iter_open(h, v, bucket, NULL, 0, NULL, 0, false,
				       &it);

	while (err == 0 && (rc = engine_iter_next(h, it, &k, &val)) > 0) {
		char key[17];
		struct member m;
		uint64_t id;

		if (k.n == 0 || k.n > 16)
			continue;
		memcpy(key, k.p, k.n);
		key[k.n] = '\0';
		id = strtoull(key, NULL, 16);
		if (strcmp(bucket, BUCKET_REMOVED) == 0) {
			err = members_mark_removed(ms, id);
			continue;
		}
		err = member_from_json((const char *)val.p, val.n, id, &m,
				       NULL);
		if (err == 0) {
			err = members_add(ms, &m);
			member_clear(&m);
		}
	}
	if (err == 0 && rc < 0)
		err = rc;
	if (it)
		engine_iter_close(h, it);
	return err;
}

static int load_members(struct server *s, struct members *ms)
{
	struct engine_handle *h = server_engine(s);
	struct engine_view *v;
	int err = engine_view_open(h, &v);

	if (err < 0)
		return err;
	err = load_bucket(s, v, BUCKET_MEMBERS, ms);
	if (err == 0)
		err = load_bucket(s, v, BUCKET_REMOVED, ms);
	engine_view_close(h, v);
	return err;
}

/* ---- peers (invariant 4) ---------------------------------------------- */

static void peer_link(struct server *s, const struct member *m)
{
	char host[256];
	uint16_t port;
	int err = -EINVAL;

	if (!s->peers || m->id == s->member_id)
		return;
	for (size_t i = 0; err < 0 && i < m->n_peer_urls; i++)
		err = members_url_host_port(m->peer_urls[i], host, sizeof(host),
					    &port);
	if (err == 0)
		err = peer_add(s->peers, m->id, host, port);
	if (err < 0 && err != -EEXIST)
		log_warn("cannot reach member %" PRIx64 " at %s: %s", m->id,
			 m->n_peer_urls ? m->peer_urls[0] : "(no URL)",
			 strerror(-err));
}

static void peer_unlink(struct server *s, uint64_t id)
{
	if (s->peers && id != s->member_id)
		peer_remove(s->peers, id);
}

/* Tell a removed member it was removed, then forget it. Raft stops
 * sending to it once the removal applies, so it would never learn the
 * entry committed (etcd's peers answer it 410 Gone for the same reason). */
struct removal_note {
	struct server *s;
	uint64_t id;
};

static void removal_noted(void *arg, int err, const void *resp, size_t len)
{
	struct removal_note *n = arg;

	(void)resp;
	(void)len;
	if (err < 0 && err != -ECANCELED)
		log_info("could not tell member %" PRIx64 " of its removal: %s",
			 n->id, cairn_strerror(err));
	if (err != -ECANCELED) /* else the transport is going away */
		peer_unlink(n->s, n->id);
	free(n);
}

static void peer_unlink_removed(struct server *s, uint64_t id)
{
	struct removal_note *n;
	uint8_t be[8];

	if (!s->peers || id == s->member_id)
		return;
	n = malloc(sizeof(*n));
	for (int i = 0; i < 8; i++)
		be[i] = (uint8_t)(id >> (56 - 8 * i));
	if (n) {
		n->s = s;
		n->id = id;
	}
	if (!n || peer_request(s->peers, id, PEER_REQ_REMOVED, be, 8,
			       REMOVAL_NOTE_MS, removal_noted, n) < 0) {
		free(n);
		peer_unlink(s, id);
	}
}

/* ---- open: bootstrap, restart or join ----------------------------------- */

char **server_members_format_urls(const struct config_url *u, size_t n)
{
	char **v = calloc(n + 1, sizeof(*v));

	for (size_t i = 0; v && i < n; i++) {
		char buf[300];

		config_url_format(&u[i], buf, sizeof(buf));
		if (!(v[i] = strdup(buf))) {
			members_strv_free(v, i);
			return NULL;
		}
	}
	return v;
}

static int open_new(struct server *s, char *errbuf, size_t errlen)
{
	struct server_members *sm = s->members;
	const struct config *c = s->cfg;
	const struct member *me = NULL;
	int err;

	err = members_from_initial_cluster(&sm->ms, c->initial_peers,
					   c->n_initial_peers,
					   c->initial_cluster_token);
	if (err < 0) {
		snprintf(errbuf, errlen, "--initial-cluster: %s",
			 cairn_strerror(err));
		return err;
	}
	for (size_t i = 0; i < sm->ms.n && !me; i++)
		if (strcmp(sm->ms.v[i].name, c->name) == 0)
			me = &sm->ms.v[i];
	if (!me) {
		snprintf(errbuf, errlen,
			 "couldn't find local name \"%s\" in the initial "
			 "cluster "
			 "configuration",
			 c->name);
		return -EINVAL;
	}
	s->member_id = me->id;
	s->cluster_id = members_cluster_id(&sm->ms);
	return 0;
}

int server_members_open(struct server *s, char *errbuf, size_t errlen)
{
	const struct config *c = s->cfg;
	struct server_members *sm = calloc(1, sizeof(*sm));
	bool join = strcmp(c->initial_cluster_state, "existing") == 0;
	struct engine_handle *h = server_engine(s);
	int err;

	if (!sm)
		return -ENOMEM;
	s->members = sm;
	members_init(&sm->ms);
	if ((err = engine_bucket_create(h, BUCKET_MEMBERS)) < 0 ||
	    (err = engine_bucket_create(h, BUCKET_REMOVED)) < 0)
		return err;
	if (s->wal_exists) {
		if ((err = load_members(s, &sm->ms)) < 0) {
			snprintf(errbuf, errlen, "cannot load the members: %s",
				 cairn_strerror(err));
			return err;
		}
		if (sm->ms.n > 0)
			return 0; /* the WAL's meta gives the ids */
		log_info("no members stored: taking --initial-cluster");
		err = open_new(s, errbuf, errlen);
	} else {
		if ((err = config_verify_bootstrap(c, join, errbuf, errlen)) <
		    0)
			return err;
		err = join ? server_join_open(s, errbuf, errlen)
			   : open_new(s, errbuf, errlen);
	}
	/* durable before the WAL exists: a restart with a WAL must find the
	 * members (a joined member cannot rebuild them from its flags) */
	if (err == 0 && ((err = store_all(s, &sm->ms)) < 0 ||
			 (err = mvcc_commit(server_mvcc(s), true)) < 0))
		snprintf(errbuf, errlen, "cannot store the members: %s",
			 cairn_strerror(err));
	return err;
}

void server_members_conf(struct server *s, uint64_t *voters, size_t *n_voters,
			 uint64_t *learners, size_t *n_learners, size_t cap)
{
	const struct members *ms = &s->members->ms;

	*n_voters = *n_learners = 0;
	for (size_t i = 0; i < ms->n; i++) {
		const struct member *m = &ms->v[i];

		if (m->is_learner && *n_learners < cap)
			learners[(*n_learners)++] = m->id;
		else if (!m->is_learner && *n_voters < cap)
			voters[(*n_voters)++] = m->id;
	}
}

/* ---- member attributes (etcd's publish) ---------------------------------- */

static void on_restore(void *arg);

static int publish(struct server *s)
{
	struct server_members *sm = s->members;
	membershippb_AttrRaftRequest r;
	uint8_t *buf = NULL;
	size_t n = s->cfg->n_advertise_client_urls, len;
	char **urls = server_members_format_urls(s->cfg->advertise_client_urls,
						 n);
	int err = -ENOMEM;

	memset(&r, 0, sizeof(r));
	if (!urls)
		return err;
	sm->publish_id = server_next_id(s);
	r.has_header = r.header.has_ID = true;
	r.header.ID = sm->publish_id;
	r.has_cluster_member_attr_set = true;
	r.cluster_member_attr_set.has_member_ID = true;
	r.cluster_member_attr_set.member_ID = s->member_id;
	r.cluster_member_attr_set.has_member_attributes = true;
	r.cluster_member_attr_set.member_attributes.name = s->cfg->name;
	r.cluster_member_attr_set.member_attributes.client_urls = urls;
	r.cluster_member_attr_set.member_attributes.client_urls_count =
		(pb_size_t)n;
	err = pbu_encode_alloc(&membershippb_AttrRaftRequest_msg, &r, &buf,
			       &len);
	members_strv_free(urls, n);
	if (err == 0)
		err = raft_propose(s->raft, buf, len, NULL);
	free(buf);
	if (err == 0)
		server_schedule_ready(s);
	return err;
}

static void publish_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct server_members *sm = s->members;
	struct timeval tv = {PUBLISH_RETRY_MS / 1000,
			     (PUBLISH_RETRY_MS % 1000) * 1000};

	(void)fd;
	(void)what;
	if (!sm->restore_hooked) {
		/* here, not in server_members_start: server_snap_open (which
		 * takes the hooks) runs after it; no snapshot can be installed
		 * before the loop runs */
		if (server_on_restore(s, on_restore, s) < 0)
			log_warn("members will not follow snapshot installs");
		sm->restore_hooked = true; /* tried once */
	}
	if (sm->published || sm->removed || s->stopping)
		return;
	/* until applied: a proposal may be lost with a leader change */
	if (raft_leader(s->raft) != RAFT_NONE && publish(s) < 0 &&
	    !sm->publish_warned) {
		log_warn("cannot publish this member's attributes yet "
			 "(retrying)");
		sm->publish_warned = true;
	}
	evtimer_add(sm->publish_ev, &tv);
}

/* Every NORMAL entry comes through apply_attrs: look for field 1301
 * among the top-level fields only, skipping the others whole (a client's
 * request is not decoded here). */
static bool has_attr_field(const uint8_t *buf, size_t len)
{
	pb_istream_t is = pb_istream_from_buffer(buf, len);

	while (is.bytes_left) {
		pb_wire_type_t wt;
		uint32_t tag;
		bool eof;

		if (!pb_decode_tag(&is, &wt, &tag, &eof))
			return false;
		if (tag ==
		    membershippb_AttrRaftRequest_cluster_member_attr_set_tag)
			return true;
		if (!pb_skip_field(&is, wt))
			return false;
	}
	return false;
}

/* A NORMAL entry holding member attributes? (field 1301) */
static bool apply_attrs(struct server *s, const struct raft_entry *e,
			uint64_t *id)
{
	struct server_members *sm = s->members;
	membershippb_AttrRaftRequest r;
	const membershippb_ClusterMemberAttrSetRequest *a;
	int err;

	if (!has_attr_field(e->data, e->len))
		return false;
	memset(&r, 0, sizeof(r));
	if (pbu_decode(&membershippb_AttrRaftRequest_msg, &r, e->data, e->len) <
	    0)
		return false;
	if (!r.has_cluster_member_attr_set) {
		pb_release(&membershippb_AttrRaftRequest_msg, &r);
		return false;
	}
	*id = r.header.ID;
	a = &r.cluster_member_attr_set;
	err = members_set_attrs(
		&sm->ms, a->member_ID,
		a->member_attributes.name ? a->member_attributes.name : "",
		(const char *const *)a->member_attributes.client_urls,
		a->member_attributes.client_urls_count);
	if (err == 0)
		err = store_member(s, members_find(&sm->ms, a->member_ID));
	if (err < 0 && err != -ENOENT)
		server_fail_fatal(s, err, "member attributes");
	/* -ENOENT: a removed member's late publish (etcd skips it too) */
	if (err == 0 && a->member_ID == s->member_id &&
	    r.header.ID == sm->publish_id && !sm->published) {
		sm->published = true;
		log_info("published local member to cluster through raft");
	}
	pb_release(&membershippb_AttrRaftRequest_msg, &r);
	return true;
}

/* ---- conf changes: apply ------------------------------------------------- */

static void on_self_removed(struct server *s)
{
	struct timeval tv = {0, 0};
	uint64_t ms = 10 * s->cfg->heartbeat_ms; /* etcd: 10 ticks */

	if (s->members->removed)
		return; /* told by a peer, then applied it (or the reverse) */
	s->members->removed = true;
	log_warn("the member has been permanently removed from the cluster");
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000 * 1000);
	/* main closes the server once the loop returns; the answer to the
	 * client that removed us leaves first */
	event_base_loopexit(s->base, &tv);
}

/* Effects of an accepted change beyond the model: storage, raft, peers. */
static int change_effects(struct server *s, enum members_cc type, uint64_t id)
{
	const struct member *m = members_find(&s->members->ms, id);
	int err = 0;

	switch (type) {
	case MEMBERS_CC_ADD_NODE:
	case MEMBERS_CC_ADD_LEARNER:
		err = store_member(s, m);
		peer_link(s, m);
		break;
	case MEMBERS_CC_REMOVE_NODE:
		err = store_removed(s, id);
		peer_unlink_removed(s, id);
		break;
	case MEMBERS_CC_UPDATE_NODE:
		err = store_member(s, m);
		peer_unlink(s, id);
		peer_link(s, m);
		break;
	}
	if (err == 0)
		err = raft_apply_conf_change(s->raft, (enum raft_cc_type)type,
					     id);
	if (err == 0 && type == MEMBERS_CC_REMOVE_NODE && id == s->member_id)
		on_self_removed(s);
	return err;
}

static int decode_cc(const struct raft_entry *e, membershippb_ConfChange *cc,
		     struct member *ctx, bool *has_ctx, bool *promote)
{
	int err;

	memset(cc, 0, sizeof(*cc));
	*has_ctx = *promote = false;
	err = pbu_decode(&membershippb_ConfChange_msg, cc, e->data, e->len);
	if (err < 0 || (unsigned)cc->Type > MEMBERS_CC_ADD_LEARNER)
		return CAIRN_EBAD_REQUEST;
	if (cc->Context.n == 0)
		return 0;
	err = member_from_json((const char *)cc->Context.p, cc->Context.n,
			       cc->NodeID, ctx, promote);
	*has_ctx = err == 0;
	return err;
}

static const char *cc_name(enum members_cc type, bool promote)
{
	static const char *const names[] = {"addition", "removal", "update",
					    "learner addition"};

	if (promote)
		return "promotion";
	return (unsigned)type < 4 ? names[type] : "conf change";
}

static void apply_conf_change(struct server *s, const struct raft_entry *e,
			      uint64_t *id, struct apply_out *out)
{
	struct server_members *sm = s->members;
	membershippb_ConfChange cc;
	struct member ctx;
	bool has_ctx, promote;
	int err = decode_cc(e, &cc, &ctx, &has_ctx, &promote);
	enum members_cc type = (enum members_cc)cc.Type;

	*id = cc.ID;
	if (err == 0)
		err = members_apply_change(&sm->ms, type, cc.NodeID,
					   has_ctx ? &ctx : NULL, promote);
	if (has_ctx)
		member_clear(&ctx);
	if (err == 0)
		err = change_effects(s, type, cc.NodeID);
	/* a system error (memory, the engine: the membership may be half
	 * changed) stops the member in apply_committed, as for any request */
	if (err <= CAIRN_EBASE) {
		log_info("%s of member %" PRIx64 " refused: %s",
			 cc_name(type, promote), cc.NodeID,
			 cairn_strerror(err));
	} else if (err == 0) {
		log_info("applied %s of member %" PRIx64 " (%zu members)",
			 cc_name(type, promote), cc.NodeID, sm->ms.n);
	}
	out->err = err;
	assert(members_check(&sm->ms) == 0);
	if (err == 0) {
		out->buf = (uint8_t *)members_list_json(&sm->ms);
		out->len = out->buf ? strlen((char *)out->buf) : 0;
		if (!out->buf)
			out->err = -ENOMEM;
	}
}

bool server_members_apply(struct server *s, const struct raft_entry *e,
			  uint64_t *id, struct apply_out *out)
{
	memset(out, 0, sizeof(*out));
	*id = 0;
	if (e->type == RAFT_ENTRY_CONF_CHANGE) {
		apply_conf_change(s, e, id, out);
		return true;
	}
	return e->type == RAFT_ENTRY_NORMAL && e->len > 0 &&
	       apply_attrs(s, e, id);
}

/* ---- conf changes: propose ---------------------------------------------- */

static int propose_cc(struct server *s, enum members_cc type, uint64_t node,
		      const char *context, server_done_fn done, void *arg)
{
	membershippb_ConfChange cc;
	uint8_t *buf = NULL;
	size_t len;
	int err;

	memset(&cc, 0, sizeof(cc));
	/* proto2 with etcd's nullable=false: every field is written */
	cc.has_ID = cc.has_Type = cc.has_NodeID = true;
	cc.ID = server_next_id(s);
	cc.Type = (membershippb_ConfChangeType)type;
	cc.NodeID = node;
	if (context) {
		cc.Context.p = (const uint8_t *)context;
		cc.Context.n = strlen(context);
	}
	if ((err = pbu_encode_alloc(&membershippb_ConfChange_msg, &cc, &buf,
				    &len)) < 0)
		return err;
	/* the waiter first: once proposed, the entry may apply */
	if ((err = server_waiter_add(s, cc.ID, done, arg)) == 0) {
		err = raft_propose_type(s->raft, RAFT_ENTRY_CONF_CHANGE, buf,
					len, NULL);
		if (err < 0)
			free(server_waiter_take(s, cc.ID));
	}
	free(buf);
	if (err == 0)
		server_schedule_ready(s);
	return err;
}

static int can_propose(const struct server *s)
{
	if (s->stopping || s->fatal)
		return CAIRN_ESTOPPED;
	if (s->members->removed)
		return CAIRN_EMEMBER_REMOVED;
	return raft_leader(s->raft) == RAFT_NONE ? CAIRN_ENO_LEADER : 0;
}

/* etcd's isConnectedFullySince / numConnectedSince, with "connected" for
 * "active for HealthInterval": the transport's message stream is up. */
static bool peer_up(const struct server *s, uint64_t id)
{
	struct peer_stats st;

	return id == s->member_id ||
	       (s->peers && peer_stats(s->peers, id, &st) == 0 && st.connected);
}

static size_t voters_up(const struct server *s)
{
	const struct members *ms = &s->members->ms;
	size_t n = 0;

	for (size_t i = 0; i < ms->n; i++)
		n += !ms->v[i].is_learner && peer_up(s, ms->v[i].id);
	return n;
}

static int may_add(const struct server *s, bool is_learner)
{
	const struct members *ms = &s->members->ms;

	if (!s->cfg->strict_reconfig_check)
		return 0;
	if (!is_learner && !members_ready_to_add_voter(ms))
		return CAIRN_EMEMBER_NOT_ENOUGH_STARTED;
	return voters_up(s) == members_count_voters(ms) ? 0 : CAIRN_EUNHEALTHY;
}

static int may_remove(const struct server *s, uint64_t id)
{
	const struct members *ms = &s->members->ms;
	const struct member *m = members_find(ms, id);
	size_t voters = members_count_voters(ms);

	if (!s->cfg->strict_reconfig_check || (m && m->is_learner))
		return 0;
	if (!members_ready_to_remove_voter(ms, id))
		return CAIRN_EMEMBER_NOT_ENOUGH_STARTED;
	if (id != s->member_id && !peer_up(s, id))
		return 0; /* a member that is down is not in the quorum */
	return voters_up(s) - 1 < 1 + (voters - 1) / 2 ? CAIRN_EUNHEALTHY : 0;
}

int server_member_add(struct server *s, const char *const *peer_urls, size_t n,
		      bool is_learner, uint64_t *id, server_done_fn done,
		      void *arg)
{
	int64_t now = (int64_t)time(NULL);
	struct member m;
	char *json;
	int err = members_check_urls(peer_urls, n);

	if (err == 0)
		err = can_propose(s);
	if (err == 0)
		err = may_add(s, is_learner);
	if (err < 0)
		return err;
	/* etcd's NewMember("", urls, "", &now) */
	*id = members_compute_id(peer_urls, n, NULL, &now);
	if ((err = member_init(&m, *id, peer_urls, n, is_learner)) < 0)
		return err;
	json = members_member_json(&m);
	member_clear(&m);
	if (!json)
		return -ENOMEM;
	err = propose_cc(
		s, is_learner ? MEMBERS_CC_ADD_LEARNER : MEMBERS_CC_ADD_NODE,
		*id, json, done, arg);
	free(json);
	return err;
}

int server_member_remove(struct server *s, uint64_t id, server_done_fn done,
			 void *arg)
{
	int err = can_propose(s);

	if (err == 0)
		err = may_remove(s, id);
	return err < 0 ? err
		       : propose_cc(s, MEMBERS_CC_REMOVE_NODE, id, NULL, done,
				    arg);
}

int server_member_update(struct server *s, uint64_t id,
			 const char *const *peer_urls, size_t n,
			 server_done_fn done, void *arg)
{
	struct member m;
	char *json;
	int err = can_propose(s);

	/* etcd 3.4 does not check the URLs of an update */
	if (err < 0 || (err = member_init(&m, id, peer_urls, n, false)) < 0)
		return err;
	json = members_member_json(&m);
	member_clear(&m);
	if (!json)
		return -ENOMEM;
	err = propose_cc(s, MEMBERS_CC_UPDATE_NODE, id, json, done, arg);
	free(json);
	return err;
}

/* etcd's isLearnerReady: only the leader knows the learner's progress;
 * a member it has no progress for passes (the apply check decides). */
static int learner_ready(const struct server *s, uint64_t id)
{
	struct raft_progress_info lp, me;
	int err = raft_progress(s->raft, id, &lp);

	if (err == -ENOENT)
		return 0;
	if (err < 0)
		return err;
	if ((err = raft_progress(s->raft, s->member_id, &me)) < 0)
		return err;
	return lp.match * 100 < me.match * MEMBERS_READY_PERCENT
		       ? CAIRN_ELEARNER_NOT_READY
		       : 0;
}

static int promote_here(struct server *s, uint64_t id, server_done_fn done,
			void *arg)
{
	char *json;
	int err = learner_ready(s, id);

	if (err == 0 && s->cfg->strict_reconfig_check &&
	    !members_ready_to_promote(&s->members->ms, id))
		err = CAIRN_EMEMBER_NOT_ENOUGH_STARTED;
	if (err < 0)
		return err;
	if (!(json = members_promote_json(id)))
		return -ENOMEM;
	err = propose_cc(s, MEMBERS_CC_ADD_NODE, id, json, done, arg);
	free(json);
	return err;
}

/* A promotion a follower forwarded to the leader (PEER_REQ_PROMOTE). */
struct promote_fwd {
	server_done_fn done;
	void *arg;
};

static void promote_fwd_reply(void *arg, int err, const void *resp, size_t len)
{
	struct promote_fwd *f = arg;
	struct apply_out out = {.err = err};

	if (err == 0 && (out.buf = malloc(len + 1))) {
		memcpy(out.buf, resp, len);
		out.buf[len] = '\0';
		out.len = len;
	} else if (err == 0) {
		out.err = -ENOMEM;
	} else if (err == -ECANCELED) {
		out.err = CAIRN_ESTOPPED; /* the transport is going away */
	} else if (err > CAIRN_EBASE) {
		/* the transport's -errno: the leader did not answer */
		out.err = CAIRN_ETIMEOUT;
	}
	f->done(f->arg, &out);
	free(f);
}

int server_member_promote(struct server *s, uint64_t id, server_done_fn done,
			  void *arg)
{
	uint64_t leader = raft_leader(s->raft);
	struct promote_fwd *f;
	uint8_t be[8];
	int err = can_propose(s);

	if (err < 0)
		return err;
	if (leader == s->member_id)
		return promote_here(s, id, done, arg);
	if (!(f = malloc(sizeof(*f))))
		return -ENOMEM;
	f->done = done;
	f->arg = arg;
	for (int i = 0; i < 8; i++)
		be[i] = (uint8_t)(id >> (56 - 8 * i));
	err = peer_request(s->peers, leader, PEER_REQ_PROMOTE, be, 8,
			   FORWARD_TIMEOUT_MS, promote_fwd_reply, f);
	if (err < 0) {
		free(f);
		return err == -ENOENT ? CAIRN_ENO_LEADER : err;
	}
	return 0;
}

/* ---- requests from other members ------------------------------------------
 */

static void promote_answer(void *arg, struct apply_out *out)
{
	peer_reply(arg, out->err, out->buf, out->err ? 0 : out->len);
	free(out->buf);
}

static void on_promote_req(void *arg, uint64_t from, const void *req,
			   size_t len, struct peer_reply_ctx *rc)
{
	struct server *s = arg;
	const uint8_t *p = req;
	uint64_t id = 0;
	int err;

	(void)from;
	if (len != 8) {
		peer_reply(rc, CAIRN_EBAD_REQUEST, NULL, 0);
		return;
	}
	for (int i = 0; i < 8; i++)
		id = id << 8 | p[i];
	err = can_propose(s);
	if (err == 0)
		err = raft_leader(s->raft) == s->member_id
			      ? promote_here(s, id, promote_answer, rc)
			      : CAIRN_ENOT_LEADER;
	if (err < 0)
		peer_reply(rc, err, NULL, 0);
}

/* A member tells us we were removed (we may never apply it ourselves). */
static void on_removed_req(void *arg, uint64_t from, const void *req,
			   size_t len, struct peer_reply_ctx *rc)
{
	struct server *s = arg;
	const uint8_t *p = req;
	uint64_t id = 0;

	for (size_t i = 0; i < 8 && len == 8; i++)
		id = id << 8 | p[i];
	if (from == 0 || id != s->member_id) {
		peer_reply(rc, CAIRN_EBAD_REQUEST, NULL, 0);
		return;
	}
	peer_reply(rc, 0, NULL, 0);
	/* remembered for a restart (committed at close at the latest): the
	 * one write outside the apply path, invariant 1's exception */
	if (!s->members->removed && store_removed(s, s->member_id) < 0)
		log_warn("cannot record this member's removal");
	on_self_removed(s);
}


/* ---- leaderless: were we removed while down? ---------------------------
 *
 * A member removed while it was down (or cut off) never applies its
 * removal, and the others refuse its connections as an unknown sender;
 * etcd's peers answer it 410 Gone and it stops. Here, after two probe
 * periods without a leader, it asks one member at a time (JOIN request
 * with its id) and stops if the answer is CAIRN_EMEMBER_REMOVED. */

static void probe_reply(void *arg, int err, const void *resp, size_t len)
{
	struct server *s = arg;

	(void)resp;
	(void)len;
	if (err != CAIRN_EMEMBER_REMOVED || s->members->removed)
		return;
	if (store_removed(s, s->member_id) < 0)
		log_warn("cannot record this member's removal");
	on_self_removed(s);
}

static void probe_one(struct server *s)
{
	struct server_members *sm = s->members;
	const struct member *m;
	char host[256], *req = NULL;
	uint16_t port;

	if (sm->ms.n < 2)
		return;
	m = &sm->ms.v[sm->probe_next++ % sm->ms.n];
	if (m->id == s->member_id)
		m = &sm->ms.v[sm->probe_next++ % sm->ms.n];
	if (!m->n_peer_urls ||
	    members_url_host_port(m->peer_urls[0], host, sizeof(host), &port) <
		    0 ||
	    asprintf(&req, "{\"id\":\"%" PRIx64 "\"}", s->member_id) < 0)
		return;
	/* the reply comes from the loop, with s alive (close is after the
	 * transport is destroyed, which answers it -ECANCELED) */
	peer_join_request(s->peers, host, port, req, strlen(req), PROBE_MS,
			  probe_reply, s);
	free(req);
}

static void probe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	struct server_members *sm = s->members;
	struct timeval tv = {PROBE_MS / 1000, PROBE_MS % 1000 * 1000};

	(void)fd;
	(void)what;
	if (sm->removed || s->stopping)
		return;
	sm->leaderless =
		raft_leader(s->raft) == RAFT_NONE ? sm->leaderless + 1 : 0;
	if (sm->leaderless >= 2 && s->peers)
		probe_one(s);
	evtimer_add(sm->probe_ev, &tv);
}

/* ---- MoveLeader ------------------------------------------------------- */

struct move_wait {
	struct server *s;
	uint64_t target, deadline_ms;
	void (*cb)(void *arg, int err);
	void *arg;
	struct event *ev;
	struct move_wait *next;
};

static void move_end(struct move_wait *w, int err)
{
	struct move_wait **p = &w->s->members->moves;

	while (*p != w)
		p = &(*p)->next;
	*p = w->next;
	event_free(w->ev);
	w->cb(w->arg, err);
	free(w);
}

static void move_check(evutil_socket_t fd, short what, void *arg)
{
	struct move_wait *w = arg;
	struct server *s = w->s;
	struct timeval tv = {(time_t)(s->cfg->heartbeat_ms / 1000),
			     (suseconds_t)(s->cfg->heartbeat_ms % 1000 * 1000)};

	(void)fd;
	(void)what;
	if (raft_leader(s->raft) == w->target)
		move_end(w, 0);
	else if (server_now_ms() >= w->deadline_ms)
		move_end(w, CAIRN_ETIMEOUT_LEADER_TRANSFER);
	else
		evtimer_add(w->ev, &tv);
}

int server_move_leader(struct server *s, uint64_t target, uint64_t timeout_ms,
		       void (*cb)(void *arg, int err), void *arg)
{
	const struct member *m = members_find(&s->members->ms, target);
	struct move_wait *w;
	struct timeval now = {0, 0};
	int err;

	if (s->stopping || s->fatal)
		return CAIRN_ESTOPPED;
	if (raft_leader(s->raft) != s->member_id)
		return CAIRN_ENOT_LEADER;
	if (!m || m->is_learner)
		return CAIRN_EBAD_LEADER_TRANSFEREE;
	if (!(w = calloc(1, sizeof(*w))) ||
	    !(w->ev = evtimer_new(s->base, move_check, w))) {
		free(w);
		return -ENOMEM;
	}
	if (target != s->member_id &&
	    (err = raft_transfer_leader(s->raft, target)) < 0) {
		event_free(w->ev);
		free(w);
		return err;
	}
	server_schedule_ready(s);
	w->s = s;
	w->target = target;
	w->deadline_ms = server_now_ms() + timeout_ms;
	w->cb = cb;
	w->arg = arg;
	w->next = s->members->moves;
	s->members->moves = w;
	evtimer_add(w->ev, &now);
	return 0;
}

/* ---- start, restore, close ----------------------------------------------- */

/* A snapshot replaced the engine: the membership is the stored one. */
static void on_restore(void *arg)
{
	struct server *s = arg;
	struct server_members *sm = s->members;
	struct members fresh;

	members_init(&fresh);
	if (load_members(s, &fresh) < 0 || fresh.n == 0) {
		log_warn("cannot reload the members after a snapshot");
		members_free(&fresh);
		return;
	}
	for (size_t i = 0; i < sm->ms.n; i++)
		if (!members_find(&fresh, sm->ms.v[i].id))
			peer_unlink(s, sm->ms.v[i].id);
	for (size_t i = 0; i < fresh.n; i++)
		peer_link(s, &fresh.v[i]); /* -EEXIST for known ones */
	members_free(&sm->ms);
	sm->ms = fresh;
	if (!members_find(&sm->ms, s->member_id) &&
	    members_is_removed(&sm->ms, s->member_id) && !sm->removed)
		on_self_removed(s);
}

int server_members_start(struct server *s)
{
	struct server_members *sm = s->members;
	struct timeval now = {0, 0};

	if (members_is_removed(&sm->ms, s->member_id)) {
		/* etcd's peers would refuse it the same way */
		log_error("member %" PRIx64 " %s", s->member_id,
			  "has been permanently removed from the cluster");
		sm->removed = true;
		return CAIRN_EMEMBER_REMOVED;
	}
	for (size_t i = 0; i < sm->ms.n; i++)
		peer_link(s, &sm->ms.v[i]);
	if (s->peers) {
		peer_set_request_handler(s->peers, PEER_REQ_JOIN,
					 server_join_serve, s);
		peer_set_request_handler(s->peers, PEER_REQ_PROMOTE,
					 on_promote_req, s);
		peer_set_request_handler(s->peers, PEER_REQ_REMOVED,
					 on_removed_req, s);
	}
	sm->publish_ev = evtimer_new(s->base, publish_cb, s);
	sm->probe_ev = evtimer_new(s->base, probe_cb, s);
	if (!sm->publish_ev || !sm->probe_ev)
		return -ENOMEM;
	evtimer_add(sm->publish_ev, &now);
	evtimer_add(sm->probe_ev, &now);
	return 0;
}

void server_members_close(struct server *s)
{
	struct server_members *sm = s->members;

	if (!sm)
		return;
	while (sm->moves)
		move_end(sm->moves, CAIRN_ESTOPPED);
	/* s->peers is already destroyed here (server_close's order) */
	if (sm->publish_ev)
		event_free(sm->publish_ev);
	if (sm->probe_ev)
		event_free(sm->probe_ev);
	members_free(&sm->ms);
	free(sm);
	s->members = NULL;
}

/* ---- queries ------------------------------------------------------------ */

const struct members *server_members(const struct server *s)
{
	return &s->members->ms;
}

bool server_is_learner(const struct server *s)
{
	const struct member *m;

	if (!s->members)
		return false;
	m = members_find(&s->members->ms, s->member_id);
	return m && m->is_learner;
}

bool server_members_removed(const struct server *s)
{
	return s->members && s->members->removed;
}
