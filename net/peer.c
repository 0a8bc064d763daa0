/* peer: the peer transport (contract and wire format in net/peer.h).
 *
 * Invariants:
 *  1. A peer's queue holds whole encoded frames; qmsgs/qbytes count them
 *     exactly and never pass max_queue_msgs/max_queue_bytes.
 *  2. Frames leave the queue only in state UP, and only while the socket's
 *     output buffer is under PEER_SOCK_HIGH: memory per peer is bounded.
 *  3. A peer in state IDLE has its retry timer armed and no bufferevent;
 *     in every other state it has a bufferevent and no armed timer.
 *  4. A connection (struct peer_conn: an inbound stream, or an outbound
 *     snapshot stream) is never freed inside its own callback: peer_conn_kill()
 *     disables it and moves it to the reap list, freed from reap_ev before
 *     the loop sleeps. So a frame being handled stays readable even if a
 *     user callback kills its connection.
 *  5. An outbound snapshot calls its done callback exactly once: whoever
 *     clears conn->done calls it (snap_finish()).
 *  6. No received frame is acted on before its whole length is buffered,
 *     and no length past max_frame + 1 is ever buffered (read watermark).
 *  7. A request we sent is on t->reqs (pending: its timer armed, its REQ
 *     frame queued or sent) or on the done list (its answer or error
 *     recorded), never both; its callback runs exactly once, from req_ev
 *     on the loop (never from inside a peer_* call or a socket callback)
 *     or from peer_transport_destroy. n_reqs counts both lists and never
 *     passes PEER_MAX_REQUESTS.
 *  8. A struct peer_reply_ctx is on its connection's rcs list while the
 *     connection lives; peer_conn_kill sets its c to NULL, so peer_reply never
 *     touches a freed connection or transport.
 *
 * Peer (message stream we dial) state machine:
 *
 *   IDLE --retry timer--> CONNECTING --connected, hello sent--> HELLO
 *     ^                        |                                  |
 *     |        error/EOF/timeout/refused (peer_lost, backoff)     | ack ok
 *     +------------------------+-------------------------- UP <---+
 *
 * Inbound connection: HELLO -> MSGS (messages and requests) | JOIN (one
 * request, from 0) | SNAP_BEGIN -> SNAP_DATA -> CLOSING; a refusal, a
 * SNAP_ACK or a JOIN's answer goes to CLOSING (killed once flushed).
 * Outbound join (net/peer_req.c): J_CONNECT -> J_HELLO -> J_WAIT -> done.
 * Outbound snapshot: S_CONNECT -> S_HELLO -> S_DATA -> S_ACK -> done.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "core/util/crc32c.h"
#include "core/util/fdio.h"
#include "core/util/log.h"
#include "net/peer_int.h"

/* ---- small helpers ---------------------------------------------------- */

static void addr_name(const struct sockaddr *sa, char *buf, size_t n)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(buf, n, "%s:%u", host, port);
}

void peer_set_nodelay(struct bufferevent *bev)
{
	int one = 1;
	evutil_socket_t fd = bufferevent_getfd(bev);

	if (fd >= 0)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Read and write timeouts in ms; 0 is none. */
static void set_timeouts(struct bufferevent *bev, unsigned rms, unsigned wms)
{
	struct timeval r = {rms / 1000, (rms % 1000) * 1000};
	struct timeval w = {wms / 1000, (wms % 1000) * 1000};

	bufferevent_set_timeouts(bev, rms ? &r : NULL, wms ? &w : NULL);
}

/* A read timeout on a stream whose read side may idle (the dialer's
 * message stream: the acceptor only answers requests; the acceptor's
 * once up): not an error. libevent (2.1) re-arms a read timeout that
 * set_timeouts() cleared at the next read on a persistent event, so it
 * can fire there; read on. Returns true when what was such a timeout. */
static bool idle_read_timeout(struct bufferevent *bev, short what, bool up)
{
	if (!up || (what & (BEV_EVENT_TIMEOUT | BEV_EVENT_READING)) !=
			   (BEV_EVENT_TIMEOUT | BEV_EVENT_READING))
		return false;
	bufferevent_enable(bev, EV_READ); /* libevent disabled it */
	return true;
}

static void set_timeout(struct bufferevent *bev, unsigned ms)
{
	set_timeouts(bev, ms, ms);
}

struct peer *peer_find(const struct peer_transport *t, uint64_t id)
{
	struct peer *p;

	for (p = t->peers; p; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

struct peer_frame *peer_frame_new(enum frame_kind kind, size_t plen)
{
	struct peer_frame *f = malloc(sizeof(*f) + HDR + plen);

	if (!f)
		return NULL;
	f->next = NULL;
	f->vote = false;
	f->req_id = 0;
	f->len = HDR + plen;
	put_u32(f->buf, (uint32_t)(plen + 1));
	f->buf[4] = (uint8_t)kind;
	return f;
}

static void frame_cleanup(const void *data, size_t len, void *extra)
{
	(void)data;
	(void)len;
	free(extra);
}

/* Hand f to the bufferevent (which frees it once written). */
int peer_frame_write(struct bufferevent *bev, struct peer_frame *f)
{
	struct evbuffer *out = bufferevent_get_output(bev);

	if (evbuffer_add_reference(out, f->buf, f->len, frame_cleanup, f)) {
		free(f);
		return -ENOMEM;
	}
	return 0;
}

int peer_write_small(struct bufferevent *bev, enum frame_kind kind,
		     const uint8_t *payload, size_t plen)
{
	struct peer_frame *f = peer_frame_new(kind, plen);

	if (!f)
		return -ENOMEM;
	memcpy(f->buf + HDR, payload, plen);
	return peer_frame_write(bev, f);
}

/* The next whole frame in `in`: 1 (kind, payload, plen set; the caller
 * drains HDR + plen), 0 (need more bytes), -EPROTO (bad length). */
int peer_frame_next(struct peer_transport *t, struct evbuffer *in,
		    uint8_t *kind, const uint8_t **payload, size_t *plen)
{
	uint8_t hdr[4];
	size_t have = evbuffer_get_length(in);
	uint32_t n;
	const uint8_t *p;

	if (have < 4)
		return 0;
	evbuffer_copyout(in, hdr, 4);
	n = get_u32(hdr);
	if (n == 0 || n > t->cfg.max_frame + 1)
		return -EPROTO;
	if (have < 4 + (size_t)n)
		return 0;
	p = evbuffer_pullup(in, 4 + (ssize_t)n);
	if (!p)
		return -ENOMEM;
	*kind = p[4];
	*payload = p + HDR;
	*plen = n - 1;
	return 1;
}

static void hello_fill(const struct peer_transport *t, uint8_t *h,
		       enum stream_kind kind, uint64_t to)
{
	put_u32(h, PEER_VERSION);
	h[4] = (uint8_t)kind;
	put_u64(h + 5, t->cfg.cluster_id);
	put_u64(h + 13, t->cfg.self_id);
	put_u64(h + 21, to);
}

const char *peer_hello_status_str(unsigned s)
{
	switch (s) {
	case PEER_HELLO_OK:
		return "ok";
	case PEER_HELLO_WRONG_CLUSTER:
		return "wrong cluster id";
	case PEER_HELLO_WRONG_MEMBER:
		return "wrong member id";
	case PEER_HELLO_UNKNOWN_SENDER:
		return "unknown sender";
	case PEER_HELLO_BAD_VERSION:
		return "unsupported version";
	case PEER_HELLO_NO_SNAPSHOTS:
		return "snapshots not accepted";
	}
	return "unknown status";
}

/* Check a HELLO_ACK from the member we dialed; 0 or a negative errno,
 * with the reason logged. */
static int hello_ack_check(const struct peer_transport *t, uint64_t id,
			   const char *what, const uint8_t *pl, size_t plen)
{
	if (plen != ACK_LEN) {
		log_warn("peer: %s of member %016llx: malformed hello answer",
			 what, (unsigned long long)id);
		return -EPROTO;
	}
	if (pl[0] != PEER_HELLO_OK) {
		log_warn("peer: member %016llx refused our %s: %s (its "
			 "cluster %016llx member %016llx; ours %016llx "
			 "member %016llx)",
			 (unsigned long long)id, what,
			 peer_hello_status_str(pl[0]),
			 (unsigned long long)get_u64(pl + 1),
			 (unsigned long long)get_u64(pl + 9),
			 (unsigned long long)t->cfg.cluster_id,
			 (unsigned long long)t->cfg.self_id);
		return -ECONNREFUSED;
	}
	if (get_u64(pl + 1) != t->cfg.cluster_id || get_u64(pl + 9) != id) {
		log_warn("peer: %s: the member at the address of %016llx is "
			 "%016llx of cluster %016llx; closing",
			 what, (unsigned long long)id,
			 (unsigned long long)get_u64(pl + 9),
			 (unsigned long long)get_u64(pl + 1));
		return -ECONNREFUSED;
	}
	return 0;
}

/* ---- MSG frames (net/peer_codec.h) ---------------------------------- */

static bool is_vote(enum raft_msg_type type)
{
	return type == RAFT_MSG_VOTE || type == RAFT_MSG_VOTE_RESP ||
	       type == RAFT_MSG_PRE_VOTE || type == RAFT_MSG_PRE_VOTE_RESP;
}

/* Encode m as a MSG frame into *out. */
static int msg_encode(const struct peer_transport *t, const struct raft_msg *m,
		      struct peer_frame **out)
{
	struct peer_frame *f;
	size_t size;
	int rc = peer_codec_size(m, t->cfg.self_id, &size);

	if (rc)
		return rc;
	if (size > t->cfg.max_frame)
		return -EMSGSIZE;
	f = peer_frame_new(F_MSG, size);
	if (!f)
		return -ENOMEM;
	rc = peer_codec_encode(m, t->cfg.self_id, f->buf + HDR, size);
	if (rc) {
		free(f);
		return rc;
	}
	f->vote = is_vote(m->type);
	*out = f;
	return 0;
}

/* ---- connections: kill and reap (invariant 4) ------------------------- */

static void conn_unlink(struct peer_conn **list, struct peer_conn *c)
{
	for (; *list; list = &(*list)->next) {
		if (*list == c) {
			*list = c->next;
			return;
		}
	}
}

void peer_conn_kill(struct peer_conn *c)
{
	struct peer_transport *t = c->t;

	if (c->dead)
		return;
	c->dead = true;
	if (c->bev) {
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (c->path) { /* a partial snapshot: not anyone's yet */
		unlink(c->path);
		free(c->path);
		c->path = NULL;
	}
	for (struct peer_reply_ctx *rc = c->rcs; rc; rc = rc->next)
		rc->c = NULL; /* invariant 8 */
	c->rcs = NULL;
	if (c->jreq) {
		struct peer_req *r = c->jreq;

		c->jreq = NULL;
		r->jc = NULL;
		peer_req_done(r, -ECONNRESET, NULL, 0);
	}
	conn_unlink(&t->conns, c);
	c->next = t->reap;
	t->reap = c;
	event_active(t->reap_ev, EV_TIMEOUT, 0);
}

void peer_conn_free(struct peer_conn *c)
{
	if (c->bev)
		bufferevent_free(c->bev);
	free(c->conf_ids);
	free(c->jframe);
	free(c);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct peer_transport *t = arg;
	struct peer_conn *c;

	(void)fd;
	(void)what;
	while ((c = t->reap)) {
		t->reap = c->next;
		peer_conn_free(c);
	}
}

/* Outbound snapshot over: invariant 5. */
static void snap_finish(struct peer_conn *c, int err)
{
	peer_snap_done_fn done = c->done;
	struct peer *p = peer_find(c->t, c->id);

	if (p && p->snap == c)
		p->snap = NULL;
	c->done = NULL;
	peer_conn_kill(c);
	if (done)
		done(c->done_arg, err);
}

/* ---- the dialing side of a message stream ----------------------------- */

static void peer_dial(struct peer *p);

static void peer_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	peer_dial(arg);
}

static void peer_lost(struct peer *p, const char *why)
{
	struct timeval tv;

	/* Answers to requests on this stream will never come. */
	peer_req_fail_member(p->t, p->id,
			     p->state == P_UP ? -ECONNRESET : -ECONNREFUSED);
	if (p->state == P_UP)
		log_info("peer: stream to member %016llx lost (%s)",
			 (unsigned long long)p->id, why);
	else
		log_debug("peer: dial of member %016llx failed (%s)",
			  (unsigned long long)p->id, why);
	if (p->bev) {
		bufferevent_free(p->bev);
		p->bev = NULL;
	}
	p->state = P_IDLE;
	p->st.connected = false;
	tv.tv_sec = p->backoff_ms / 1000;
	tv.tv_usec = (p->backoff_ms % 1000) * 1000;
	evtimer_add(p->retry_ev, &tv);
	p->backoff_ms *= 2;
	if (p->backoff_ms > p->t->cfg.backoff_max_ms)
		p->backoff_ms = p->t->cfg.backoff_max_ms;
}

/* Move queued frames to the socket while it is not backed up (inv. 2). */
void peer_flush(struct peer *p)
{
	struct evbuffer *out;
	struct peer_frame *f;

	if (p->state != P_UP)
		return;
	out = bufferevent_get_output(p->bev);
	while ((f = p->qhead) && evbuffer_get_length(out) < PEER_SOCK_HIGH) {
		p->qhead = f->next;
		if (!p->qhead)
			p->qtail = NULL;
		p->st.queued_msgs--;
		p->st.queued_bytes -= f->len;
		if (peer_frame_write(p->bev, f) == 0)
			p->st.sent_msgs++;
		else
			p->st.dropped_queue++;
	}
}

/* The acceptor's answer to our hello: 0 (stream up) or -1 (p lost). */
static int peer_hello_ack(struct peer *p, uint8_t kind, const uint8_t *pl,
			  size_t plen)
{
	struct bufferevent *bev = p->bev;

	if (kind != F_HELLO_ACK) {
		peer_lost(p, "malformed hello answer");
		return -1;
	}
	if (hello_ack_check(p->t, p->id, "message stream", pl, plen)) {
		p->st.refused++;
		p->backoff_ms = p->t->cfg.backoff_max_ms;
		peer_lost(p, "refused");
		return -1;
	}
	p->state = P_UP;
	p->st.connected = true;
	p->st.connects++;
	p->backoff_ms = p->t->cfg.backoff_min_ms;
	/* The acceptor writes only answers to requests; a stream whose
	 * pending output makes no progress for that long is dead (a silent
	 * partition). */
	set_timeouts(bev, 0, p->t->cfg.hello_timeout_ms);
	bufferevent_setwatermark(bev, EV_READ, 0, HDR + p->t->cfg.max_frame);
	log_info("peer: stream to member %016llx up",
		 (unsigned long long)p->id);
	return 0;
}

/* From the acceptor: the hello's answer, then REP frames only. REP
 * handling calls no user code (invariant 7), so p stays valid. */
static void peer_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer *p = arg;
	struct peer_transport *t = p->t;
	struct evbuffer *in = bufferevent_get_input(bev);
	const uint8_t *pl;
	size_t plen;
	uint8_t kind;
	int rc;

	for (;;) {
		rc = peer_frame_next(t, in, &kind, &pl, &plen);
		if (rc == 0)
			break;
		if (rc < 0) {
			peer_lost(p, "malformed frame from the acceptor");
			return;
		}
		if (p->state == P_HELLO) {
			if (peer_hello_ack(p, kind, pl, plen))
				return;
		} else if (p->state == P_UP && kind == F_REP) {
			if (t->drop &&
			    t->drop(t->drop_arg, p->id, t->cfg.self_id))
				p->st.dropped_filter++;
			else if (peer_rep_handle(t, p->id, pl, plen)) {
				peer_lost(p, "malformed answer");
				return;
			}
		} else {
			peer_lost(p, "unexpected data from the acceptor");
			return;
		}
		evbuffer_drain(in, HDR + plen);
	}
	peer_flush(p);
}

static void peer_write_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	peer_flush(arg);
}

static void peer_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer *p = arg;
	uint8_t h[HELLO_LEN];

	if (what & BEV_EVENT_CONNECTED) {
		peer_set_nodelay(bev);
		hello_fill(p->t, h, STREAM_MSGS, p->id);
		if (peer_write_small(bev, F_HELLO, h, sizeof(h))) {
			peer_lost(p, "out of memory");
			return;
		}
		p->state = P_HELLO;
		return;
	}
	if (idle_read_timeout(bev, what, p->state == P_UP))
		return;
	peer_lost(p, what & BEV_EVENT_TIMEOUT ? "timeout"
		     : what & BEV_EVENT_EOF   ? "closed by peer"
					    : strerror(EVUTIL_SOCKET_ERROR()));
}

static void peer_dial(struct peer *p)
{
	struct bufferevent *bev;

	bev = bufferevent_socket_new(p->t->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		peer_lost(p, "out of memory");
		return;
	}
	p->bev = bev;
	p->state = P_CONNECTING;
	/* No callbacks yet: a connect that fails at once (-1) has libevent
	 * run the event callback inside the call; a refusal after 0 is
	 * reported later, from the loop. */
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&p->addr,
				       p->addrlen) < 0) {
		peer_lost(p, "connect failed");
		return;
	}
	bufferevent_setcb(bev, peer_read_cb, peer_write_cb, peer_event_cb, p);
	bufferevent_setwatermark(bev, EV_WRITE, PEER_SOCK_HIGH / 2, 0);
	bufferevent_setwatermark(bev, EV_READ, 0, HDR + ACK_LEN);
	set_timeout(bev, p->t->cfg.hello_timeout_ms);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

/* ---- the accepting side ----------------------------------------------- */

/* Member p just dialed us: it is up again (restarted), so a dial of ours
 * waiting out a backoff that grew while it was down goes now. */
static void peer_wake(struct peer *p)
{
	if (!p || p->state != P_IDLE)
		return;
	evtimer_del(p->retry_ev);
	p->backoff_ms = p->t->cfg.backoff_min_ms;
	peer_dial(p);
}

static void conn_refuse(struct peer_conn *c, unsigned status)
{
	struct peer_transport *t = c->t;
	uint8_t ack[ACK_LEN];

	t->st.refused++;
	ack[0] = (uint8_t)status;
	put_u64(ack + 1, t->cfg.cluster_id);
	put_u64(ack + 9, t->cfg.self_id);
	c->state = C_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	if (peer_write_small(c->bev, F_HELLO_ACK, ack, sizeof(ack)))
		peer_conn_kill(c);
}

/* Only the newest message stream from a member is kept: an older one is
 * a leftover of a restart of that member. */
static void conn_kill_older(struct peer_conn *c)
{
	struct peer_conn *o, *next;

	for (o = c->t->conns; o; o = next) {
		next = o->next;
		if (o != c && o->id == c->id && o->state == C_MSGS)
			peer_conn_kill(o);
	}
}

static int conn_hello(struct peer_conn *c, const uint8_t *pl, size_t plen)
{
	struct peer_transport *t = c->t;
	uint64_t cluster, from, to;
	unsigned stream, status = PEER_HELLO_OK;
	uint8_t ack[ACK_LEN];

	if (plen != HELLO_LEN)
		return -EPROTO;
	stream = pl[4];
	cluster = get_u64(pl + 5);
	from = get_u64(pl + 13);
	to = get_u64(pl + 21);
	if (get_u32(pl) != PEER_VERSION || stream > STREAM_SNAP ||
	    (from == 0 && stream != STREAM_MSGS))
		status = PEER_HELLO_BAD_VERSION;
	else if (from == 0) /* a joining member: cluster and target 0 = any */
		status = cluster && cluster != t->cfg.cluster_id
				 ? PEER_HELLO_WRONG_CLUSTER
			 : to && to != t->cfg.self_id ? PEER_HELLO_WRONG_MEMBER
						      : PEER_HELLO_OK;
	else if (cluster != t->cfg.cluster_id)
		status = PEER_HELLO_WRONG_CLUSTER;
	else if (to != t->cfg.self_id)
		status = PEER_HELLO_WRONG_MEMBER;
	else if (!peer_find(t, from))
		status = PEER_HELLO_UNKNOWN_SENDER;
	else if (stream == STREAM_SNAP && (!t->snap_dir || !t->on_snap))
		status = PEER_HELLO_NO_SNAPSHOTS;
	if (status != PEER_HELLO_OK) {
		log_warn("peer: refused connection from %s: %s (it is member "
			 "%016llx of cluster %016llx and wants member %016llx; "
			 "we are member %016llx of cluster %016llx)",
			 c->name, peer_hello_status_str(status),
			 (unsigned long long)from, (unsigned long long)cluster,
			 (unsigned long long)to,
			 (unsigned long long)t->cfg.self_id,
			 (unsigned long long)t->cfg.cluster_id);
		conn_refuse(c, status);
		return 0;
	}
	c->id = from;
	ack[0] = PEER_HELLO_OK;
	put_u64(ack + 1, t->cfg.cluster_id);
	put_u64(ack + 9, t->cfg.self_id);
	if (peer_write_small(c->bev, F_HELLO_ACK, ack, sizeof(ack)))
		return -ENOMEM;
	if (from == 0) {
		c->state = C_JOIN; /* the hello timeout bounds the answer */
	} else if (stream == STREAM_MSGS) {
		c->state = C_MSGS;
		set_timeout(c->bev, 0); /* a message stream may idle */
		conn_kill_older(c);
		peer_wake(peer_find(t, from));
	} else {
		c->state = C_SNAP_BEGIN; /* the hello timeout stays: stalls */
	}
	return 0;
}

static int conn_msg(struct peer_conn *c, const uint8_t *pl, size_t plen)
{
	struct peer_transport *t = c->t;
	struct peer *p = peer_find(t, c->id);
	struct raft_msg m;
	int rc = peer_codec_decode(&t->codec, pl, plen, &m);

	if (rc == -ENOTSUP) {
		log_debug("peer: message of unknown type from %016llx ignored",
			  (unsigned long long)c->id);
		return 0;
	}
	if (rc)
		return rc;
	if (m.from != c->id || m.to != t->cfg.self_id) {
		log_warn("peer: message from %016llx to %016llx on the stream "
			 "of member %016llx",
			 (unsigned long long)m.from, (unsigned long long)m.to,
			 (unsigned long long)c->id);
		return -EPROTO;
	}
	if (!p)
		return -ENOENT;
	if (t->drop && t->drop(t->drop_arg, m.from, m.to)) {
		p->st.dropped_filter++;
		return 0;
	}
	p->st.recv_msgs++;
	t->on_msg(t->arg, &m);
	return 0;
}

/* SNAP_BEGIN's membership into c->conf_ids (bounded). */
static int snap_begin_ids(struct peer_conn *c, const uint8_t *pl, size_t plen)
{
	size_t nv, nl;

	if (plen < SNAP_BEGIN_LEN)
		return -EPROTO;
	nv = get_u32(pl + 32);
	nl = get_u32(pl + 36);
	if (nv > PEER_MAX_CONF_IDS || nl > PEER_MAX_CONF_IDS ||
	    plen != SNAP_BEGIN_LEN + 8 * (nv + nl))
		return -EPROTO;
	if (nv + nl) {
		c->conf_ids = calloc(nv + nl, sizeof(uint64_t));
		if (!c->conf_ids)
			return -ENOMEM;
	}
	for (size_t i = 0; i < nv + nl; i++)
		c->conf_ids[i] = get_u64(pl + SNAP_BEGIN_LEN + 8 * i);
	c->meta.voters = nv ? c->conf_ids : NULL;
	c->meta.n_voters = nv;
	c->meta.learners = nl ? c->conf_ids + nv : NULL;
	c->meta.n_learners = nl;
	return 0;
}

static int snap_begin(struct peer_conn *c, const uint8_t *pl, size_t plen)
{
	struct peer_transport *t = c->t;
	int rc = snap_begin_ids(c, pl, plen);

	if (rc)
		return rc;
	c->meta.term = get_u64(pl);
	c->meta.index = get_u64(pl + 8);
	c->meta.size = get_u64(pl + 16);
	c->meta.raft_term = get_u64(pl + 24);
	if (asprintf(&c->path, "%s/peer-snap-XXXXXX", t->snap_dir) < 0) {
		c->path = NULL;
		return -ENOMEM;
	}
	c->fd = mkstemp(c->path);
	if (c->fd < 0) {
		log_error("peer: cannot create a snapshot file in %s: %s",
			  t->snap_dir, strerror(errno));
		free(c->path);
		c->path = NULL;
		return -errno;
	}
	c->state = C_SNAP_DATA;
	return 0;
}

static void snap_ack(struct peer_conn *c, uint8_t status)
{
	c->state = C_CLOSING;
	bufferevent_disable(c->bev, EV_READ);
	if (peer_write_small(c->bev, F_SNAP_ACK, &status, 1))
		peer_conn_kill(c);
}

static int snap_end(struct peer_conn *c, const uint8_t *pl, size_t plen)
{
	struct peer_transport *t = c->t;
	char *path;

	if (plen != 12)
		return -EPROTO;
	if (get_u64(pl) != c->bytes || get_u32(pl + 8) != c->crc) {
		log_warn("peer: snapshot from %016llx damaged (%llu bytes)",
			 (unsigned long long)c->id,
			 (unsigned long long)c->bytes);
		return -EPROTO;
	}
	close(c->fd);
	c->fd = -1;
	path = c->path;
	c->path = NULL; /* the handler owns the file now */
	t->st.snaps_received++;
	snap_ack(c, 0);
	t->on_snap(t->snap_arg, c->id, &c->meta, path);
	free(path);
	return 0;
}

static int snap_data(struct peer_conn *c, uint8_t kind, const uint8_t *pl,
		     size_t plen)
{
	int rc;

	if (kind == F_SNAP_END)
		return snap_end(c, pl, plen);
	if (kind != F_SNAP_DATA || plen == 0)
		return -EPROTO;
	rc = fd_write_all(c->fd, pl, plen);
	if (rc) {
		log_error("peer: writing snapshot %s: %s", c->path,
			  strerror(-rc));
		snap_ack(c, 1);
		return 0;
	}
	c->crc = crc32c(c->crc, pl, plen);
	c->bytes += plen;
	return 0;
}

static int conn_frame(struct peer_conn *c, uint8_t kind, const uint8_t *pl,
		      size_t plen)
{
	switch (c->state) {
	case C_HELLO:
		return kind == F_HELLO ? conn_hello(c, pl, plen) : -EPROTO;
	case C_MSGS:
		if (kind == F_REQ)
			return peer_conn_req(c, pl, plen);
		return kind == F_MSG ? conn_msg(c, pl, plen) : -EPROTO;
	case C_JOIN:
		return kind == F_REQ ? peer_conn_req(c, pl, plen) : -EPROTO;
	case C_SNAP_BEGIN:
		return kind == F_SNAP_BEGIN ? snap_begin(c, pl, plen) : -EPROTO;
	case C_SNAP_DATA:
		return snap_data(c, kind, pl, plen);
	default:
		return -EPROTO;
	}
}

static void conn_bad(struct peer_conn *c, int rc)
{
	c->t->st.bad_frames++;
	log_warn("peer: closing connection from %s (member %016llx): "
		 "malformed stream (%s)",
		 c->name, (unsigned long long)c->id, strerror(-rc));
	peer_conn_kill(c);
}

/* The largest payload a frame may announce in c's state: a hello, a
 * SNAP_BEGIN and a join are small, so a stranger cannot make us buffer
 * max_frame bytes (trickled under the hello timeout) before it said who
 * it is. */
static size_t conn_max_payload(const struct peer_conn *c)
{
	switch (c->state) {
	case C_HELLO:
		return HELLO_LEN;
	case C_SNAP_BEGIN:
		return SNAP_BEGIN_LEN + 16 * (size_t)PEER_MAX_CONF_IDS;
	case C_JOIN:
		return REQ_HDR + PEER_MAX_JOIN_BYTES;
	default:
		return c->t->cfg.max_frame;
	}
}

/* Does the partial frame at the head of `in` announce more than max? */
static bool frame_len_over(struct evbuffer *in, size_t max)
{
	uint8_t hdr[4];

	if (evbuffer_copyout(in, hdr, 4) != 4)
		return false;
	return get_u32(hdr) > max + 1;
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const uint8_t *pl;
	size_t plen;
	uint8_t kind;
	int rc;

	while (c->state != C_CLOSING) {
		rc = peer_frame_next(c->t, in, &kind, &pl, &plen);
		if (rc == 0 && frame_len_over(in, conn_max_payload(c)))
			rc = -EPROTO;
		if (rc == 0)
			return;
		if (rc > 0)
			rc = conn_frame(c, kind, pl, plen);
		if (rc < 0) {
			if (!c->dead) /* not killed by a callback meanwhile */
				conn_bad(c, rc);
			return;
		}
		if (c->dead)
			return; /* by a user callback (invariant 4) */
		evbuffer_drain(in, HDR + plen);
	}
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;

	if (c->state == C_CLOSING &&
	    evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		peer_conn_kill(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer_conn *c = arg;

	if (idle_read_timeout(bev, what, c->state == C_MSGS))
		return;
	if (what & BEV_EVENT_TIMEOUT)
		log_warn("peer: connection from %s timed out", c->name);
	if (c->path)
		log_warn("peer: snapshot from %016llx cut short after %llu "
			 "bytes; partial file removed",
			 (unsigned long long)c->id,
			 (unsigned long long)c->bytes);
	peer_conn_kill(c);
}

struct peer_conn *peer_conn_new(struct peer_transport *t)
{
	struct peer_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->t = t;
	c->fd = -1;
	return c;
}

int peer_conn_dial(struct peer_conn *c, const struct sockaddr_storage *addr,
		   int addrlen, const char *host, uint16_t port)
{
	struct peer_transport *t = c->t;

	c->bev = bufferevent_socket_new(t->base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev) {
		peer_conn_free(c);
		return -ENOMEM;
	}
	snprintf(c->name, sizeof(c->name), "%s:%u", host, port);
	if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)addr,
				       addrlen) < 0) {
		peer_conn_free(c);
		return -ECONNREFUSED;
	}
	c->next = t->conns;
	t->conns = c;
	return 0;
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct peer_transport *t = arg;
	struct peer_conn *c = peer_conn_new(t);

	(void)lev;
	(void)salen;
	if (!c)
		goto fail;
	c->bev = bufferevent_socket_new(t->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto fail;
	addr_name(sa, c->name, sizeof(c->name));
	t->st.accepted++;
	c->state = C_HELLO;
	c->next = t->conns;
	t->conns = c;
	peer_set_nodelay(c->bev);
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
			  c);
	/* Invariant 6: never buffer more than one largest frame. */
	bufferevent_setwatermark(c->bev, EV_READ, 0, HDR + t->cfg.max_frame);
	set_timeout(c->bev, t->cfg.hello_timeout_ms);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return;
fail:
	log_error("peer: out of memory accepting a connection");
	free(c);
	evutil_closesocket(fd);
}

/* ---- outbound snapshot stream ----------------------------------------- */

static void snap_pump(struct peer_conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	size_t chunk = PEER_SNAP_CHUNK < c->t->cfg.max_frame
			       ? PEER_SNAP_CHUNK
			       : c->t->cfg.max_frame;

	while (!c->eof && evbuffer_get_length(out) < PEER_SOCK_HIGH) {
		struct peer_frame *f = peer_frame_new(F_SNAP_DATA, chunk);
		ssize_t n;

		if (!f) {
			snap_finish(c, -ENOMEM);
			return;
		}
		n = c->read(c->read_arg, f->buf + HDR, chunk);
		if (n < 0 || (size_t)n > chunk) {
			free(f);
			snap_finish(c, n < 0 ? (int)n : -EINVAL);
			return;
		}
		if (n == 0) {
			uint8_t end[12];

			free(f);
			put_u64(end, c->bytes);
			put_u32(end + 8, c->crc);
			c->eof = true;
			c->state = S_ACK;
			set_timeout(c->bev, c->t->cfg.hello_timeout_ms);
			if (peer_write_small(c->bev, F_SNAP_END, end,
					     sizeof(end)))
				snap_finish(c, -ENOMEM);
			return;
		}
		put_u32(f->buf, (uint32_t)n + 1);
		f->len = HDR + (size_t)n;
		c->crc = crc32c(c->crc, f->buf + HDR, (size_t)n);
		c->bytes += (uint64_t)n;
		if (peer_frame_write(c->bev, f)) {
			snap_finish(c, -ENOMEM);
			return;
		}
	}
}

static int snap_begin_send(struct peer_conn *c)
{
	const struct peer_snap_meta *m = &c->meta;
	size_t n = m->n_voters + m->n_learners;
	uint8_t *b = malloc(SNAP_BEGIN_LEN + 8 * n);
	int rc;

	if (!b)
		return -ENOMEM;
	put_u64(b, m->term);
	put_u64(b + 8, m->index);
	put_u64(b + 16, m->size);
	put_u64(b + 24, m->raft_term);
	put_u32(b + 32, (uint32_t)m->n_voters);
	put_u32(b + 36, (uint32_t)m->n_learners);
	for (size_t i = 0; i < n; i++)
		put_u64(b + SNAP_BEGIN_LEN + 8 * i, c->conf_ids[i]);
	rc = peer_write_small(c->bev, F_SNAP_BEGIN, b, SNAP_BEGIN_LEN + 8 * n);
	free(b);
	return rc;
}

/* Copy meta's membership into c (the caller's arrays are borrowed only
 * during peer_snapshot_send). */
static int snap_meta_copy(struct peer_conn *c, const struct peer_snap_meta *m)
{
	size_t n = m->n_voters + m->n_learners;

	if (m->n_voters > PEER_MAX_CONF_IDS ||
	    m->n_learners > PEER_MAX_CONF_IDS || (m->n_voters && !m->voters) ||
	    (m->n_learners && !m->learners))
		return -EINVAL;
	c->meta = *m;
	if (n && !(c->conf_ids = calloc(n, sizeof(uint64_t))))
		return -ENOMEM;
	if (m->n_voters)
		memcpy(c->conf_ids, m->voters, m->n_voters * sizeof(uint64_t));
	if (m->n_learners)
		memcpy(c->conf_ids + m->n_voters, m->learners,
		       m->n_learners * sizeof(uint64_t));
	c->meta.voters = m->n_voters ? c->conf_ids : NULL;
	c->meta.learners = m->n_learners ? c->conf_ids + m->n_voters : NULL;
	return 0;
}

static void snapout_read_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	const uint8_t *pl;
	size_t plen;
	uint8_t kind;
	int rc = peer_frame_next(c->t, in, &kind, &pl, &plen);

	if (rc == 0)
		return;
	if (rc < 0)
		goto bad;
	if (c->state == S_HELLO && kind == F_HELLO_ACK) {
		rc = hello_ack_check(c->t, c->id, "snapshot stream", pl, plen);
		if (rc) {
			snap_finish(c, rc);
			return;
		}
		evbuffer_drain(in, HDR + plen);
		if (snap_begin_send(c)) {
			snap_finish(c, -ENOMEM);
			return;
		}
		c->state = S_DATA;
		/* Nothing comes back until the end: only writes may stall. */
		set_timeouts(bev, 0, c->t->cfg.hello_timeout_ms);
		snap_pump(c);
		return;
	}
	if (c->state == S_ACK && kind == F_SNAP_ACK && plen == 1) {
		if (pl[0])
			log_warn("peer: member %016llx failed to store our "
				 "snapshot",
				 (unsigned long long)c->id);
		snap_finish(c, pl[0] ? -EPROTO : 0);
		return;
	}
bad:
	log_warn("peer: snapshot stream to %016llx: unexpected answer",
		 (unsigned long long)c->id);
	snap_finish(c, -EPROTO);
}

static void snapout_write_cb(struct bufferevent *bev, void *arg)
{
	struct peer_conn *c = arg;

	(void)bev;
	if (c->state == S_DATA)
		snap_pump(c);
}

static void snapout_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct peer_conn *c = arg;
	uint8_t h[HELLO_LEN];

	if (what & BEV_EVENT_CONNECTED) {
		peer_set_nodelay(bev);
		hello_fill(c->t, h, STREAM_SNAP, c->id);
		if (peer_write_small(bev, F_HELLO, h, sizeof(h)))
			snap_finish(c, -ENOMEM);
		else
			c->state = S_HELLO;
		return;
	}
	snap_finish(c, c->state == S_CONNECT ? -ECONNREFUSED : -ECONNRESET);
}

int peer_snapshot_send(struct peer_transport *t, uint64_t to,
		       const struct peer_snap_meta *meta,
		       peer_snap_read_fn read, void *read_arg,
		       peer_snap_done_fn done, void *done_arg)
{
	struct peer *p = peer_find(t, to);
	struct peer_conn *c;
	int rc;

	if (!read || !done || !meta)
		return -EINVAL;
	if (!p)
		return -ENOENT;
	if (p->snap)
		return -EBUSY;
	c = peer_conn_new(t);
	if (!c)
		return -ENOMEM;
	rc = snap_meta_copy(c, meta);
	if (rc) {
		peer_conn_free(c);
		return rc;
	}
	c->id = to;
	c->state = S_CONNECT;
	c->read = read;
	c->read_arg = read_arg;
	c->done = done;
	c->done_arg = done_arg;
	/* Callbacks only after the connect call, as in peer_dial(): so done
	 * never runs from inside this function. */
	rc = peer_conn_dial(c, &p->addr, p->addrlen, p->host, p->port);
	if (rc)
		return rc;
	p->snap = c;
	bufferevent_setcb(c->bev, snapout_read_cb, snapout_write_cb,
			  snapout_event_cb, c);
	bufferevent_setwatermark(c->bev, EV_WRITE, PEER_SOCK_HIGH / 2, 0);
	set_timeout(c->bev, t->cfg.hello_timeout_ms);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	return 0;
}

static ssize_t fd_read(void *arg, void *buf, size_t n)
{
	int fd = (int)(intptr_t)arg;
	ssize_t r;

	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

int peer_snapshot_send_fd(struct peer_transport *t, uint64_t to,
			  const struct peer_snap_meta *meta, int fd,
			  peer_snap_done_fn done, void *done_arg)
{
	if (fd < 0)
		return -EINVAL;
	return peer_snapshot_send(t, to, meta, fd_read, (void *)(intptr_t)fd,
				  done, done_arg);
}

/* ---- public: lifecycle and peers --------------------------------------- */

#define DEFAULT(field, value)                                                  \
	do {                                                                   \
		if (!t->cfg.field)                                             \
			t->cfg.field = (value);                                \
	} while (0)

int peer_transport_create(struct event_base *base,
			  const struct peer_config *cfg, peer_msg_fn on_msg,
			  void *arg, struct peer_transport **out)
{
	struct peer_transport *t;

	if (!base || !cfg || !on_msg || cfg->self_id == RAFT_NONE)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->base = base;
	t->cfg = *cfg;
	t->on_msg = on_msg;
	t->arg = arg;
	DEFAULT(max_frame, PEER_DEFAULT_MAX_FRAME);
	DEFAULT(max_queue_bytes, PEER_DEFAULT_QUEUE_BYTES);
	DEFAULT(max_queue_msgs, PEER_DEFAULT_QUEUE_MSGS);
	DEFAULT(max_entries, PEER_DEFAULT_MAX_ENTRIES);
	t->codec.max_entries = t->cfg.max_entries;
	DEFAULT(backoff_min_ms, PEER_DEFAULT_BACKOFF_MIN_MS);
	DEFAULT(backoff_max_ms, PEER_DEFAULT_BACKOFF_MAX_MS);
	DEFAULT(hello_timeout_ms, PEER_DEFAULT_HELLO_TIMEOUT_MS);
	if (t->cfg.backoff_min_ms > t->cfg.backoff_max_ms ||
	    t->cfg.max_frame > UINT32_MAX - 1) {
		free(t);
		return -EINVAL;
	}
	if (cfg->snap_dir && !(t->snap_dir = strdup(cfg->snap_dir)))
		goto fail;
	t->cfg.snap_dir = t->snap_dir;
	t->reap_ev = event_new(base, -1, 0, reap_cb, t);
	t->req_ev = event_new(base, -1, 0, peer_req_deliver_cb, t);
	if (!t->reap_ev || !t->req_ev)
		goto fail;
	*out = t;
	return 0;
fail:
	if (t->reap_ev)
		event_free(t->reap_ev);
	if (t->req_ev)
		event_free(t->req_ev);
	free(t->snap_dir);
	free(t);
	return -ENOMEM;
}

static void peer_free(struct peer *p)
{
	struct peer_frame *f;

	if (p->snap)
		snap_finish(p->snap, -ECANCELED);
	while ((f = p->qhead)) {
		p->qhead = f->next;
		free(f);
	}
	if (p->bev)
		bufferevent_free(p->bev);
	if (p->retry_ev)
		event_free(p->retry_ev);
	free(p->host);
	free(p);
}

void peer_transport_destroy(struct peer_transport *t)
{
	struct peer *p;
	struct peer_conn *c;

	if (!t)
		return;
	/* Every request ends with -ECANCELED, answered or not. */
	while (t->reqs)
		peer_req_done(t->reqs, -ECANCELED, NULL, 0);
	for (struct peer_req *r = t->done_head; r; r = r->next)
		r->err = -ECANCELED;
	peer_req_deliver_cb(-1, 0, t);
	while ((p = t->peers)) {
		t->peers = p->next;
		peer_free(p);
	}
	while ((c = t->conns)) {
		if (c->done)
			snap_finish(c, -ECANCELED); /* moves c to reap */
		else
			peer_conn_kill(c);
	}
	reap_cb(-1, 0, t);
	if (t->lev)
		evconnlistener_free(t->lev);
	event_free(t->reap_ev);
	event_free(t->req_ev);
	peer_codec_free(&t->codec);
	free(t->snap_dir);
	free(t);
}

void peer_set_snapshot_handler(struct peer_transport *t, peer_snap_fn on_snap,
			       void *arg)
{
	t->on_snap = on_snap;
	t->snap_arg = arg;
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	(void)lev;
	(void)arg;
	log_warn("peer: accept: %s", strerror(EVUTIL_SOCKET_ERROR()));
}

int peer_listen(struct peer_transport *t, const char *host, uint16_t port)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
	int len;
	socklen_t blen = sizeof(ss);

	if (t->lev)
		return -EALREADY;
	memset(&ss, 0, sizeof(ss));
	if (host && inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = htons(port);
		len = sizeof(*in);
	} else if (host && inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		len = sizeof(*in6);
	} else {
		return -EINVAL;
	}
	errno = 0;
	t->lev = evconnlistener_new_bind(t->base, accept_cb, t,
					 LEV_OPT_CLOSE_ON_FREE |
						 LEV_OPT_REUSEABLE,
					 -1, (struct sockaddr *)&ss, len);
	if (!t->lev)
		return errno ? -errno : -ENOMEM;
	evconnlistener_set_error_cb(t->lev, accept_error_cb);
	if (getsockname(evconnlistener_get_fd(t->lev), (struct sockaddr *)&ss,
			&blen) == 0)
		t->port =
			ntohs(ss.ss_family == AF_INET6
				      ? ((struct sockaddr_in6 *)&ss)->sin6_port
				      : ((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

uint16_t peer_listen_port(const struct peer_transport *t)
{
	return t->lev ? t->port : 0;
}

int peer_addr_resolve(const char *host, uint16_t port,
		      struct sockaddr_storage *addr, int *addrlen)
{
	struct addrinfo hints, *res = NULL;
	char sport[8];

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(sport, sizeof(sport), "%u", port);
	if (getaddrinfo(host, sport, &hints, &res) || !res)
		return -EHOSTUNREACH;
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*addrlen = (int)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int peer_resolve(struct peer *p)
{
	return peer_addr_resolve(p->host, p->port, &p->addr, &p->addrlen);
}

int peer_add(struct peer_transport *t, uint64_t id, const char *host,
	     uint16_t port)
{
	struct peer *p;
	int rc = -ENOMEM;

	if (id == RAFT_NONE || id == t->cfg.self_id || !host)
		return -EINVAL;
	if (peer_find(t, id))
		return -EEXIST;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->t = t;
	p->id = id;
	p->port = port;
	p->backoff_ms = t->cfg.backoff_min_ms;
	p->host = strdup(host);
	p->retry_ev = evtimer_new(t->base, peer_retry_cb, p);
	if (!p->host || !p->retry_ev)
		goto fail;
	rc = peer_resolve(p);
	if (rc)
		goto fail;
	p->next = t->peers;
	t->peers = p;
	peer_dial(p);
	return 0;
fail:
	peer_free(p);
	return rc;
}

int peer_remove(struct peer_transport *t, uint64_t id)
{
	struct peer **pp, *p;
	struct peer_conn *c, *next;

	for (pp = &t->peers; *pp && (*pp)->id != id; pp = &(*pp)->next)
		;
	if (!(p = *pp))
		return -ENOENT;
	peer_req_fail_member(t, id, -ECONNRESET);
	*pp = p->next;
	for (c = t->conns; c; c = next) {
		next = c->next;
		if (c->id == id && c != p->snap)
			peer_conn_kill(c);
	}
	peer_free(p);
	return 0;
}

/* ---- public: sending --------------------------------------------------- */

/* Drop the oldest non-vote frame; false if there is none. */
static bool queue_evict(struct peer *p)
{
	struct peer_frame **fp, *f, *prev = NULL;

	for (fp = &p->qhead; (f = *fp); prev = f, fp = &f->next) {
		if (f->vote)
			continue;
		*fp = f->next;
		if (p->qtail == f)
			p->qtail = prev;
		p->st.queued_msgs--;
		p->st.queued_bytes -= f->len;
		p->st.dropped_queue++;
		free(f);
		return true;
	}
	return false;
}

int peer_queue_push(struct peer *p, struct peer_frame *f)
{
	const struct peer_config *cfg = &p->t->cfg;

	if (f->len > cfg->max_queue_bytes)
		goto drop;
	while (p->st.queued_msgs + 1 > cfg->max_queue_msgs ||
	       p->st.queued_bytes + f->len > cfg->max_queue_bytes)
		if (!queue_evict(p))
			goto drop;
	if (p->qtail)
		p->qtail->next = f;
	else
		p->qhead = f;
	p->qtail = f;
	p->st.queued_msgs++;
	p->st.queued_bytes += f->len;
	return 0;
drop:
	p->st.dropped_queue++;
	free(f);
	return -EAGAIN;
}

int peer_send(struct peer_transport *t, const struct raft_msg *m)
{
	struct peer *p;
	struct peer_frame *f;
	int rc;

	if (!m || !peer_codec_type_ok(m->type) || (m->n_entries && !m->entries))
		return -EINVAL;
	p = peer_find(t, m->to);
	if (!p)
		return -ENOENT;
	if (t->drop && t->drop(t->drop_arg, t->cfg.self_id, m->to)) {
		p->st.dropped_filter++;
		return 0;
	}
	rc = msg_encode(t, m, &f);
	if (rc)
		return rc;
	rc = peer_queue_push(p, f);
	if (rc)
		return rc;
	peer_flush(p);
	return 0;
}

void peer_set_drop_filter(struct peer_transport *t, peer_drop_fn drop,
			  void *arg)
{
	t->drop = drop;
	t->drop_arg = arg;
}

int peer_stats(const struct peer_transport *t, uint64_t id,
	       struct peer_stats *out)
{
	const struct peer *p = peer_find(t, id);

	if (!p)
		return -ENOENT;
	*out = p->st;
	return 0;
}

void peer_transport_stats(const struct peer_transport *t,
			  struct peer_transport_stats *out)
{
	*out = t->st;
}
