/* server_join: a member joining a running cluster (--initial-cluster-state
 * existing), both sides of it (issue 5).
 *
 * Joining (server_join_open, from server_members_open, before the WAL
 * exists): the member knows neither its member id nor the cluster's. It
 * asks the members of --initial-cluster (not itself), one after the other
 * for JOIN_ROUNDS rounds, with peer_join_request(PEER_REQ_JOIN,
 * {"peerURLs":[our advertised peer URLs]}) on a temporary transport,
 * running the event loop until an answer (each bounded by
 * JOIN_TIMEOUT_MS). The answer {"cluster":hex,"member":hex,"members":[etcd's
 * member JSON...]} gives the ids and the membership raft starts with.
 *
 * Serving (server_join_serve, the PEER_REQ_JOIN handler of every member):
 * find the member added with those peer URLs (etcd: "member not found"
 * otherwise) and answer with the applied membership.
 *
 * Threads: loop thread only.
 */
#include "core/server_int.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/members.h"
#include "core/util/log.h"
#include "net/peer.h"

#define JOIN_TIMEOUT_MS 2000
#define JOIN_ROUNDS 5
#define JOIN_PAUSE_MS 1000

struct join_state {
	bool done;
	int err;
	char *answer;
	size_t len;
};

static void join_msg(void *arg, const struct raft_msg *m)
{
	(void)arg;
	(void)m;
}

static void join_reply(void *arg, int err, const void *resp, size_t len)
{
	struct join_state *js = arg;

	js->done = true;
	js->err = err;
	if (err == 0 && (js->answer = malloc(len + 1))) {
		memcpy(js->answer, resp, len);
		js->answer[len] = '\0';
		js->len = len;
	} else if (err == 0) {
		js->err = -ENOMEM;
	}
}

static int hex_field(json_t *o, const char *name, uint64_t *v)
{
	const char *s = json_string_value(json_object_get(o, name));
	char *end;

	if (!s || !*s)
		return CAIRN_EBAD_REQUEST;
	*v = strtoull(s, &end, 16);
	return *end || *v == 0 ? CAIRN_EBAD_REQUEST : 0;
}

/* {"cluster":hex,"member":hex,"members":[...]} into s. */
static int join_parse(struct server *s, const char *buf, size_t len)
{
	json_t *o = json_loadb(buf, len, 0, NULL);
	char *list = NULL;
	int err = CAIRN_EBAD_REQUEST;

	if (o && hex_field(o, "cluster", &s->cluster_id) == 0 &&
	    hex_field(o, "member", &s->member_id) == 0 &&
	    (list = json_dumps(json_object_get(o, "members"), JSON_COMPACT)))
		err = members_from_list_json(&s->members->ms, list,
					     strlen(list));
	free(list);
	json_decref(o);
	if (err == 0 && !members_find(&s->members->ms, s->member_id))
		err = CAIRN_EBAD_REQUEST;
	return err;
}

static char *join_request(const struct config *c)
{
	size_t n = c->n_initial_advertise_peer_urls;
	char **urls = server_members_format_urls(c->initial_advertise_peer_urls,
						 n);
	json_t *a, *o;
	char *out;

	if (!urls)
		return NULL;
	a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(a, json_string(urls[i]));
	members_strv_free(urls, n);
	o = json_pack("{s:o}", "peerURLs", a);
	out = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	return out;
}

/* One request to peer p, running the loop until it is answered. */
static int join_one(struct server *s, struct peer_transport *t,
		    const struct config_peer *p, const char *req,
		    struct join_state *js)
{
	int err;

	memset(js, 0, sizeof(*js));
	err = peer_join_request(t, p->url.host, p->url.port, req, strlen(req),
				JOIN_TIMEOUT_MS, join_reply, js);
	if (err < 0)
		return err;
	/* bounded: the transport answers within JOIN_TIMEOUT_MS */
	while (!js->done)
		event_base_loop(s->base, EVLOOP_ONCE);
	return js->err;
}

/* Ask every other --initial-cluster member once. 0 (joined), or the last
 * error; *who names the member that answered it. */
static int join_round(struct server *s, struct peer_transport *t,
		      const char *req, const char **who)
{
	const struct config *c = s->cfg;
	int err = -ENOENT;

	for (size_t i = 0; i < c->n_initial_peers; i++) {
		const struct config_peer *p = &c->initial_peers[i];
		struct join_state js;

		if (strcmp(p->name, c->name) == 0)
			continue;
		err = join_one(s, t, p, req, &js);
		if (err == 0)
			err = join_parse(s, js.answer, js.len);
		free(js.answer);
		*who = p->name;
		if (err == 0 ||
		    (err <= CAIRN_EBASE && err != CAIRN_EMEMBER_NOT_FOUND))
			return err;
		if (err > CAIRN_EBASE)
			log_warn("cannot join through %s (%s:%u): %s", p->name,
				 p->url.host, p->url.port, strerror(-err));
	}
	return err;
}

static int join_ask(struct server *s, struct peer_transport *t, const char *req,
		    char *errbuf, size_t errlen)
{
	const char *who = "";
	int err = 0;

	for (int round = 0; round < JOIN_ROUNDS; round++) {
		struct timeval pause = {JOIN_PAUSE_MS / 1000,
					JOIN_PAUSE_MS % 1000 * 1000};

		if (round > 0) {
			/* the members may still be starting, or not have
			 * applied our addition yet: wait a little (the loop
			 * runs only this transport so far) */
			event_base_loopexit(s->base, &pause);
			event_base_dispatch(s->base);
		}
		err = join_round(s, t, req, &who);
		if (err == 0 ||
		    (err <= CAIRN_EBASE && err != CAIRN_EMEMBER_NOT_FOUND))
			break;
	}
	if (err == 0)
		return 0;
	if (err <= CAIRN_EBASE)
		snprintf(errbuf, errlen,
			 "cannot join the cluster through %s: %s (add this "
			 "member with `etcdctl member add` first)",
			 who, cairn_strerror(err));
	else
		snprintf(errbuf, errlen,
			 "cannot join the cluster: no member of "
			 "--initial-cluster answered (last error: %s)",
			 err == -ENOENT ? "no other member listed"
					: strerror(-err));
	return err;
}

int server_join_open(struct server *s, char *errbuf, size_t errlen)
{
	struct peer_config pc = {.self_id = 1}; /* unused: a join hello
						 * carries from = 0 */
	struct peer_transport *t = NULL;
	char *req = join_request(s->cfg);
	int err = req ? peer_transport_create(s->base, &pc, join_msg, NULL, &t)
		      : -ENOMEM;

	if (err == 0)
		err = join_ask(s, t, req, errbuf, errlen);
	else
		snprintf(errbuf, errlen, "cannot join: %s", strerror(-err));
	peer_transport_destroy(t);
	free(req);
	if (err == 0 &&
	    members_find(&s->members->ms, s->member_id)->n_client_urls > 0) {
		/* etcd's isMemberBootstrapped: it ran before and published;
		 * with its data gone it must not vote as if it had none */
		snprintf(errbuf, errlen,
			 "member %" PRIx64 " has already been bootstrapped",
			 s->member_id);
		return -EEXIST;
	}
	if (err == 0)
		log_info("joined cluster %" PRIx64 " as member %" PRIx64
			 " (%zu members)",
			 s->cluster_id, s->member_id, s->members->ms.n);
	return err;
}

/* A new member asks who it is: {"peerURLs":[...]} -> our membership. */
void server_join_serve(void *arg, uint64_t from, const void *req, size_t len,
		       struct peer_reply_ctx *rc)
{
	struct server *s = arg;
	const struct members *ms = &s->members->ms;
	json_t *o = json_loadb(req, len, 0, NULL), *a;
	const char **urls = NULL;
	const struct member *m = NULL;
	char *list = NULL, *ans = NULL;
	uint64_t id;
	size_t n;
	int err = CAIRN_EMEMBER_NOT_FOUND;

	(void)from;
	if (hex_field(o, "id", &id) == 0 && members_is_removed(ms, id)) {
		/* a removed member that never applied its removal asks */
		peer_reply(rc, CAIRN_EMEMBER_REMOVED, NULL, 0);
		json_decref(o);
		return;
	}
	a = json_object_get(o, "peerURLs");
	n = json_array_size(a);
	if (n && !(urls = calloc(n, sizeof(*urls))))
		err = -ENOMEM;
	if (urls) {
		for (size_t i = 0; i < n; i++)
			urls[i] = json_string_value(json_array_get(a, i));
		for (size_t i = 0; i < n; i++)
			if (!urls[i])
				n = 0;
		m = members_find_by_urls(ms, urls, n);
	}
	if (m) {
		err = -ENOMEM; /* unless the answer is made */
		if ((list = members_list_json(ms)) &&
		    asprintf(&ans,
			     "{\"cluster\":\"%" PRIx64 "\",\"member\":\"%" PRIx64
			     "\",\"members\":%s}",
			     s->cluster_id, m->id, list) < 0)
			ans = NULL;
	}
	if (ans)
		peer_reply(rc, 0, ans, strlen(ans));
	else
		peer_reply(rc, err, NULL, 0);
	free(ans);
	free(list);
	free(urls);
	json_decref(o);
}
