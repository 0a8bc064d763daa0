/* peer_req: requests between members over the peer transport (contract
 * in net/peer.h, frames REQ/REP in its table; invariants 7 and 8 at the
 * top of net/peer.c).
 *
 * A request we send:
 *
 *   peer_request ──> pending (t->reqs: timer armed, REQ queued/sent)
 *                      │ REP / timeout / stream lost / peer_remove
 *                      ▼
 *                    done (t->done_*: outcome recorded) ──req_ev──> cb
 *
 * Answers are copied and delivered from req_ev, so no user callback ever
 * runs inside a socket callback of the transport or a peer_* call.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/log.h"
#include "net/peer_int.h"

/* ---- requests (invariants 7 and 8) ------------------------------------ */

static void req_purge_frame(struct peer_transport *t, uint64_t to, uint64_t id)
{
	struct peer *p = peer_find(t, to);
	struct peer_frame **fp, *f, *prev = NULL;

	if (!p)
		return;
	for (fp = &p->qhead; (f = *fp); prev = f, fp = &f->next) {
		if (f->req_id != id)
			continue;
		*fp = f->next;
		if (p->qtail == f)
			p->qtail = prev;
		p->st.queued_msgs--;
		p->st.queued_bytes -= f->len;
		free(f);
		return;
	}
}

/* Request r is over: record the outcome (resp copied) and move it to the
 * done list; req_ev delivers it. */
void peer_req_done(struct peer_req *r, int err, const uint8_t *resp, size_t len)
{
	struct peer_transport *t = r->t;
	struct peer_req **rp;

	for (rp = &t->reqs; *rp && *rp != r; rp = &(*rp)->next)
		;
	if (!*rp)
		return; /* already done */
	*rp = r->next;
	r->next = NULL;
	evtimer_del(r->timer);
	if (r->to)
		req_purge_frame(t, r->to, r->id);
	if (r->jc) {
		struct peer_conn *jc = r->jc;

		r->jc = NULL;
		jc->jreq = NULL;
		peer_conn_kill(jc);
	}
	r->err = err;
	if (err == 0 && len) {
		r->resp = malloc(len);
		if (r->resp) {
			memcpy(r->resp, resp, len);
			r->len = len;
		} else {
			r->err = -ENOMEM;
		}
	}
	if (t->done_tail)
		t->done_tail->next = r;
	else
		t->done_head = r;
	t->done_tail = r;
	event_active(t->req_ev, EV_TIMEOUT, 0);
}

static void req_free(struct peer_req *r)
{
	r->t->n_reqs--;
	if (r->timer)
		event_free(r->timer);
	free(r->resp);
	free(r);
}

void peer_req_deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_transport *t = arg;
	struct peer_req *r;

	(void)fd;
	(void)what;
	while ((r = t->done_head)) {
		t->done_head = r->next;
		if (!t->done_head)
			t->done_tail = NULL;
		r->cb(r->arg, r->err, r->err ? NULL : r->resp,
		      r->err ? 0 : r->len);
		req_free(r);
	}
}

static void req_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	peer_req_done(arg, -ETIMEDOUT, NULL, 0);
}

/* Every pending request to member `to` fails with err. */
void peer_req_fail_member(struct peer_transport *t, uint64_t to, int err)
{
	struct peer_req *r, *next;

	for (r = t->reqs; r; r = next) {
		next = r->next;
		if (r->to == to)
			peer_req_done(r, err, NULL, 0);
	}
}

static int req_new(struct peer_transport *t, uint64_t to, unsigned timeout_ms,
		   peer_reply_fn cb, void *arg, struct peer_req **out)
{
	struct peer_req *r;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};

	if (t->n_reqs >= PEER_MAX_REQUESTS)
		return -EAGAIN;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->timer = evtimer_new(t->base, req_timeout_cb, r);
	if (!r->timer) {
		free(r);
		return -ENOMEM;
	}
	r->t = t;
	r->id = ++t->next_req_id;
	r->to = to;
	r->cb = cb;
	r->arg = arg;
	t->n_reqs++;
	r->next = t->reqs;
	t->reqs = r;
	evtimer_add(r->timer, &tv);
	*out = r;
	return 0;
}

/* Forget r without calling back (the sending call fails instead). */
static void req_drop(struct peer_req *r)
{
	struct peer_req **rp;

	for (rp = &r->t->reqs; *rp && *rp != r; rp = &(*rp)->next)
		;
	if (*rp)
		*rp = r->next;
	req_free(r);
}

static struct peer_frame *req_frame(uint64_t id, uint8_t kind, const void *req,
				    size_t len)
{
	struct peer_frame *f = peer_frame_new(F_REQ, REQ_HDR + len);

	if (!f)
		return NULL;
	put_u64(f->buf + HDR, id);
	f->buf[HDR + 8] = kind;
	if (len)
		memcpy(f->buf + HDR + REQ_HDR, req, len);
	f->vote = true; /* never evicted: the requester waits for it */
	f->req_id = id;
	return f;
}

static int req_check(const struct peer_transport *t, const void *req,
		     size_t len, unsigned timeout_ms, peer_reply_fn cb)
{
	if (!cb || (len && !req) || timeout_ms == 0)
		return -EINVAL;
	if (len > t->cfg.max_frame - 16)
		return -EMSGSIZE;
	return 0;
}

int peer_request(struct peer_transport *t, uint64_t to, uint8_t kind,
		 const void *req, size_t len, unsigned timeout_ms,
		 peer_reply_fn cb, void *arg)
{
	struct peer *p;
	struct peer_frame *f;
	struct peer_req *r;
	int rc = req_check(t, req, len, timeout_ms, cb);

	if (rc)
		return rc;
	if (kind == 0 || kind >= PEER_REQ_KINDS)
		return -EINVAL;
	if (!(p = peer_find(t, to)))
		return -ENOENT;
	rc = req_new(t, to, timeout_ms, cb, arg, &r);
	if (rc)
		return rc;
	if (t->drop && t->drop(t->drop_arg, t->cfg.self_id, to)) {
		p->st.dropped_filter++;
		return 0; /* lost: it times out */
	}
	f = req_frame(r->id, kind, req, len);
	if (!f) {
		req_drop(r);
		return -ENOMEM;
	}
	rc = peer_queue_push(p, f);
	if (rc) {
		req_drop(r);
		return rc;
	}
	peer_flush(p);
	return 0;
}

/* A REP frame on the stream we dialed to member `from` (0: a join). */
int peer_rep_handle(struct peer_transport *t, uint64_t from, const uint8_t *pl,
		    size_t plen)
{
	struct peer_req *r;
	uint64_t id;
	int err;

	if (plen < REP_HDR)
		return -EPROTO;
	id = get_u64(pl);
	err = (int)(int32_t)get_u32(pl + 8);
	if (err > 0)
		err = -EPROTO;
	for (r = t->reqs; r && r->id != id; r = r->next)
		;
	if (!r || r->to != from)
		return 0; /* answered after its timeout: ignored */
	peer_req_done(r, err, pl + REP_HDR, plen - REP_HDR);
	return 0;
}

/* ---- serving requests ------------------------------------------------- */

void peer_set_request_handler(struct peer_transport *t, uint8_t kind,
			      peer_request_fn fn, void *arg)
{
	if (kind == 0 || kind >= PEER_REQ_KINDS)
		return;
	t->handlers[kind].fn = fn;
	t->handlers[kind].arg = arg;
}

static bool rep_may_send(const struct peer_conn *c, size_t len)
{
	const struct peer_transport *t = c->t;

	if (c->dead || (c->state != C_MSGS && c->state != C_JOIN))
		return false;
	if (len > t->cfg.max_frame - REP_HDR ||
	    evbuffer_get_length(bufferevent_get_output(c->bev)) > REP_OUT_MAX)
		return false;
	return !(c->id && t->drop &&
		 t->drop(t->drop_arg, t->cfg.self_id, c->id));
}

static void rep_write(struct peer_conn *c, uint64_t id, int err,
		      const void *resp, size_t len)
{
	struct peer_frame *f = peer_frame_new(F_REP, REP_HDR + len);

	if (!f)
		return;
	put_u64(f->buf + HDR, id);
	put_u32(f->buf + HDR + 8, (uint32_t)(err > 0 ? -EINVAL : err));
	if (len)
		memcpy(f->buf + HDR + REP_HDR, resp, len);
	peer_frame_write(c->bev, f);
	if (c->state == C_JOIN) { /* one request per join stream */
		c->state = C_CLOSING;
		bufferevent_disable(c->bev, EV_READ);
	}
}

void peer_reply(struct peer_reply_ctx *rc, int err, const void *resp,
		size_t len)
{
	struct peer_conn *c = rc->c;
	struct peer_reply_ctx **pp;

	if (c) {
		for (pp = &c->rcs; *pp && *pp != rc; pp = &(*pp)->next)
			;
		if (*pp)
			*pp = rc->next;
		if (err)
			len = 0;
		if (rep_may_send(c, len))
			rep_write(c, rc->id, err, resp, len);
	}
	free(rc);
}

/* A REQ frame on an inbound message stream or join stream. */
int peer_conn_req(struct peer_conn *c, const uint8_t *pl, size_t plen)
{
	struct peer_transport *t = c->t;
	struct peer_reply_ctx *rc;
	uint8_t kind;

	if (plen < REQ_HDR)
		return -EPROTO;
	kind = pl[8];
	if (c->state == C_MSGS && t->drop &&
	    t->drop(t->drop_arg, c->id, t->cfg.self_id))
		return 0; /* lost */
	rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->c = c;
	rc->id = get_u64(pl);
	rc->next = c->rcs;
	c->rcs = rc;
	if (c->state == C_JOIN && kind != PEER_REQ_JOIN) {
		log_warn("peer: %s: a member with no id may only join, not "
			 "send requests of kind %u; refused",
			 c->name, kind);
		t->st.refused++;
		peer_reply(rc, -EACCES, NULL, 0);
		return 0;
	}
	if (kind == 0 || kind >= PEER_REQ_KINDS || !t->handlers[kind].fn) {
		peer_reply(rc, -ENOENT, NULL, 0);
		return 0;
	}
	t->handlers[kind].fn(t->handlers[kind].arg, c->id, pl + REQ_HDR,
			     plen - REQ_HDR, rc);
	return 0;
}

/* ---- joining: a request on a stream of its own ----------------------- */

static void joinout_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const uint8_t *pl;
	size_t plen;
	uint8_t kind;
	int rc;

	while (c->jreq) {
		rc = peer_frame_next(c->t, in, &kind, &pl, &plen);
		if (rc == 0)
			return;
		if (rc > 0 && c->state == J_HELLO && kind == F_HELLO_ACK &&
		    plen == ACK_LEN) {
			if (pl[0] != PEER_HELLO_OK) {
				log_warn("peer: %s refused our join: %s",
					 c->name, peer_hello_status_str(pl[0]));
				peer_req_done(c->jreq, -ECONNREFUSED, NULL, 0);
				return;
			}
			c->state = J_WAIT;
			evbuffer_drain(in, HDR + plen);
			continue;
		}
		if (rc > 0 && c->state == J_WAIT && kind == F_REP &&
		    plen >= REP_HDR && get_u64(pl) == c->jreq->id) {
			peer_rep_handle(c->t, 0, pl, plen); /* kills c */
			return;
		}
		log_warn("peer: %s: unexpected answer to our join", c->name);
		peer_req_done(c->jreq, -EPROTO, NULL, 0);
		return;
	}
}

static void joinout_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer_conn *c = arg;
	uint8_t h[HELLO_LEN];

	if (!c->jreq)
		return;
	if (what & BEV_EVENT_CONNECTED) {
		peer_set_nodelay(bev);
		/* from 0, cluster 0 ("any"), to 0 ("whoever listens") */
		put_u32(h, PEER_VERSION);
		h[4] = STREAM_MSGS;
		memset(h + 5, 0, 24);
		if (peer_write_small(bev, F_HELLO, h, sizeof(h)) ||
		    peer_frame_write(bev, c->jframe)) {
			c->jframe = NULL;
			peer_req_done(c->jreq, -ENOMEM, NULL, 0);
			return;
		}
		c->jframe = NULL; /* the bufferevent's now */
		c->state = J_HELLO;
		return;
	}
	peer_req_done(c->jreq,
		      c->state == J_CONNECT ? -ECONNREFUSED : -ECONNRESET, NULL,
		      0);
}

static int join_conn(struct peer_transport *t, struct peer_req *r,
		     const char *host, uint16_t port, const void *req,
		     size_t len)
{
	struct sockaddr_storage addr;
	int addrlen, rc = peer_addr_resolve(host, port, &addr, &addrlen);
	struct peer_conn *c;

	if (rc)
		return rc;
	if (!(c = peer_conn_new(t)))
		return -ENOMEM;
	if (!(c->jframe = req_frame(r->id, PEER_REQ_JOIN, req, len))) {
		peer_conn_free(c);
		return -ENOMEM;
	}
	c->state = J_CONNECT;
	if ((rc = peer_conn_dial(c, &addr, addrlen, host, port)))
		return rc;
	c->jreq = r;
	r->jc = c;
	bufferevent_setcb(c->bev, joinout_read_cb, NULL, joinout_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, HDR + t->cfg.max_frame);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

int peer_join_request(struct peer_transport *t, const char *host, uint16_t port,
		      const void *req, size_t len, unsigned timeout_ms,
		      peer_reply_fn cb, void *arg)
{
	struct peer_req *r;
	int rc = req_check(t, req, len, timeout_ms, cb);

	if (rc)
		return rc;
	if (!host)
		return -EINVAL;
	if (len > PEER_MAX_JOIN_BYTES)
		return -EMSGSIZE;
	rc = req_new(t, 0, timeout_ms, cb, arg, &r);
	if (rc)
		return rc;
	rc = join_conn(t, r, host, port, req, len);
	if (rc)
		req_drop(r);
	return rc;
}
