/* h2conn: one HTTP/2 connection (nghttp2 session on a bufferevent) and the
 * gRPC calls on its streams.
 *
 * Three levels, as in nghttp2's libevent example: server -> connection ->
 * call (one per request stream, the stream's user_data).
 *
 * A call has two owners, each a flag:
 *   transport  from the request HEADERS until nghttp2 closes the stream
 *              (or the connection is freed);
 *   handler    from dispatch (unary fn / stream open) until the handler
 *              ends it (reply / fail / finish).
 * It is freed when neither owns it and no handler callback for it is
 * running (busy == 0).
 *
 *   HEADERS --lookup--> unknown/bad: trailers-only, transport only
 *      |                                   |
 *      +--unary: msg + END_STREAM--> fn()  |  stream: open()
 *      |         handler owns ------------(reply/fail)--> trailers queued
 *      v                                   |
 *   stream closed (ours done, or RST, or conn gone) --> transport drops;
 *   if the handler still owns it, the call is dead (close() for streams).
 *
 * Invariants:
 *  1. nghttp2_session_send/mem_recv/del never run inside an nghttp2
 *     callback: everything that needs a send schedules flush_ev instead.
 *  2. A connection is freed only from flush_ev, a bufferevent callback or
 *     server destroy; never while an nghttp2 call is on the stack.
 *  3. c->calls lists every call object created on c and not yet freed
 *     (dead ones too), so freeing c can detach them all (call->conn NULL).
 *  4. call->tx holds framed response bytes not yet given to nghttp2; the
 *     data provider is "deferred" exactly when tx is empty and the call
 *     is not ended; trailers are submitted once, when tx is empty.
 *  5. Output: at most H2_OUT_HIGH_WATER (+ one frame) bytes sit in the
 *     bufferevent's output; above it reading is paused (back-pressure).
 *  6. Connection end: OPEN --nghttp2 done or fatal--> CLOSING (input
 *     discarded, output flushed) --empty--> SHUT_WR (FIN sent) --peer
 *     EOF / error / H2_CLOSE_TIMEOUT_SEC--> freed. Peer EOF or a socket
 *     error frees at once from any state.
 */
#include "net/grpc_int.h"

#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/errors.h"
#include "core/util/log.h"
#include "net/grpc_wire.h"

#define H2_OUT_HIGH_WATER (256u * 1024)
#define H2_STREAM_WINDOW (1u << 20)	  /* SETTINGS_INITIAL_WINDOW_SIZE */
#define H2_CONN_WINDOW (16u << 20)	  /* connection receive window */
#define H2_CLOSE_TIMEOUT_SEC 5		  /* flush before close, at most */
#define H2_PEER_LEN 64
/* Request header bytes kept per call: HPACK lets a few small frames
 * inflate to megabytes, so the stored metadata is capped (the stream is
 * reset beyond it); also advertised as SETTINGS_MAX_HEADER_LIST_SIZE. */
#define H2_MAX_HEADER_BYTES (64u * 1024)

struct grpc_md {
	struct grpc_md *next;
	char *value; /* points into the same allocation, after name */
	char name[];
};

struct h2conn {
	struct grpc_server *srv;
	LIST_ENTRY(h2conn) link;
	struct bufferevent *bev;
	nghttp2_session *ngh;
	struct event *flush_ev;
	LIST_HEAD(, grpc_call) calls;
	char peer[H2_PEER_LEN];
	bool closing;	  /* no more HTTP/2: flush, then shut, see below */
	bool shut_wr;	  /* our FIN sent; waiting for the peer's */
	bool doomed;	  /* free at the next flush_ev */
	bool read_paused; /* output above high water */
	bool notify;	  /* some call waits for its writable callback */
};

struct grpc_call {
	struct h2conn *conn; /* NULL once the connection is freed */
	LIST_ENTRY(grpc_call) link;
	const struct grpc_method *m; /* NULL until routed; unused when dead */
	int32_t sid;
	bool transport, handler; /* the two owners, see the top */
	int busy;		 /* handler callbacks on the stack */
	bool dead;		 /* stream or connection gone first */
	bool ended;		 /* handler ended it */
	bool done_tx;		 /* final status queued to nghttp2 side */
	bool headers_sent;	 /* response HEADERS submitted */
	bool closed_half;	 /* ops->close ran for the half-close */
	bool closed_dead;	 /* ops->close ran for the death */
	bool bad_method, bad_ctype;
	bool blocked, want_notify;
	int status;
	char *status_msg;
	struct grpc_framer fr;
	uint8_t *req;
	size_t req_len;
	struct evbuffer *tx;
	char *path, *encoding;
	struct grpc_md *md;
	size_t hdr_bytes; /* request header bytes seen, see H2_MAX_... */
	uint64_t deadline_us;
	void (*writable)(struct grpc_call *, void *);
	void *writable_arg;
	void *user;
	char peer[H2_PEER_LEN];
};

/* Run conn_flush_cb soon, outside any nghttp2 callback (invariant 1).
 * Activating an already active event is a no-op, so this batches. */
static void conn_schedule(struct h2conn *c)
{
	event_active(c->flush_ev, EV_TIMEOUT, 0);
}

/* ---- call lifetime ---------------------------------------------------- */

static void call_free(struct grpc_call *call)
{
	struct grpc_md *md, *next;

	if (call->conn)
		LIST_REMOVE(call, link);
	for (md = call->md; md; md = next) {
		next = md->next;
		free(md);
	}
	grpc_framer_reset(&call->fr);
	if (call->tx)
		evbuffer_free(call->tx);
	free(call->req);
	free(call->path);
	free(call->encoding);
	free(call->status_msg);
	free(call);
}

static void call_maybe_free(struct grpc_call *call)
{
	if (!call->transport && !call->handler && call->busy == 0)
		call_free(call);
}

static struct grpc_call *call_new(struct h2conn *c, int32_t sid)
{
	struct grpc_call *call = calloc(1, sizeof(*call));

	if (!call)
		return NULL;
	call->tx = evbuffer_new();
	if (!call->tx) {
		free(call);
		return NULL;
	}
	call->conn = c;
	call->sid = sid;
	call->transport = true;
	/* until the request's headers show them (nghttp2's own checks of
	 * required pseudo-headers are off: see conn_session_new) */
	call->bad_method = call->bad_ctype = true;
	memcpy(call->peer, c->peer, sizeof(call->peer));
	grpc_framer_init(&call->fr, c->srv->cfg.max_recv_bytes);
	LIST_INSERT_HEAD(&c->calls, call, link);
	return call;
}

/* Run the stream close callback, if the handler still owns call: once for
 * the half-close and once for the death (a handler that keeps producing
 * after the half-close must learn that the stream is gone). */
static void call_close_cb(struct grpc_call *call)
{
	bool *done = call->dead ? &call->closed_dead : &call->closed_half;

	if (!call->m || !call->m->stream || !call->handler || call->ended ||
	    *done)
		return;
	*done = true;
	call->busy++;
	call->m->ops.close(call, call->m->ctx);
	call->busy--;
}

/* ---- response side ---------------------------------------------------- */

static int call_submit_trailers(struct grpc_call *call)
{
	char code[16];
	nghttp2_nv nv[2] = {
		{ (uint8_t *)"grpc-status", (uint8_t *)code, 11, 0,
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"grpc-message", (uint8_t *)call->status_msg, 12,
		  call->status_msg ? strlen(call->status_msg) : 0,
		  NGHTTP2_NV_FLAG_NONE },
	};

	nv[0].valuelen = (size_t)snprintf(code, sizeof(code), "%d",
					  call->status);
	return nghttp2_submit_trailer(call->conn->ngh, call->sid, nv,
				      call->status_msg ? 2 : 1);
}

static ssize_t call_read_data(nghttp2_session *ngh, int32_t sid, uint8_t *buf,
			      size_t length, uint32_t *flags,
			      nghttp2_data_source *src, void *user)
{
	struct grpc_call *call = src->ptr;
	size_t have = evbuffer_get_length(call->tx);
	int n = 0;

	(void)ngh;
	(void)sid;
	(void)user;
	if (have) {
		n = evbuffer_remove(call->tx, buf, have < length ? have
								  : length);
		if (n < 0)
			return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
		have -= (size_t)n;
		if (call->blocked && have <= GRPC_STREAM_HIGH_WATER / 2) {
			call->blocked = false;
			call->want_notify = true;
			call->conn->notify = true;
		}
	}
	if (have)
		return n;
	if (!call->done_tx)
		return n ? n : NGHTTP2_ERR_DEFERRED;
	/* Data done: end it with trailers, not with END_STREAM on DATA. */
	*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
	if (call_submit_trailers(call))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return n;
}

/* Queue response HEADERS (with a data provider) or wake the provider. */
static int call_push(struct grpc_call *call)
{
	static const nghttp2_nv hdrs[] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3,
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12,
		  16, NGHTTP2_NV_FLAG_NONE },
	};
	nghttp2_data_provider prd = { .source.ptr = call,
				      .read_callback = call_read_data };
	int rv;

	if (call->headers_sent) {
		rv = nghttp2_session_resume_data(call->conn->ngh, call->sid);
		/* INVALID_ARGUMENT: not deferred, it will read on its own. */
		if (rv == NGHTTP2_ERR_INVALID_ARGUMENT)
			rv = 0;
	} else {
		call->headers_sent = true;
		rv = nghttp2_submit_response(call->conn->ngh, call->sid, hdrs,
					     2, &prd);
	}
	conn_schedule(call->conn);
	return rv;
}

/* Trailers-only response: HEADERS with status and END_STREAM. */
static int call_trailers_only(struct grpc_call *call)
{
	char code[16];
	nghttp2_nv nv[4] = {
		{ (uint8_t *)":status", (uint8_t *)"200", 7, 3,
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc", 12,
		  16, NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"grpc-status", (uint8_t *)code, 11, 0,
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"grpc-message", (uint8_t *)call->status_msg, 12,
		  call->status_msg ? strlen(call->status_msg) : 0,
		  NGHTTP2_NV_FLAG_NONE },
	};

	nv[2].valuelen = (size_t)snprintf(code, sizeof(code), "%d",
					  call->status);
	call->headers_sent = true;
	conn_schedule(call->conn);
	return nghttp2_submit_response(call->conn->ngh, call->sid, nv,
				       call->status_msg ? 4 : 3, NULL);
}

/* Queue the final status (once). On an out-of-memory for the message
 * text, the status still goes out, without text. */
static void call_respond(struct grpc_call *call, int status, const char *msg)
{
	int rv;

	if (call->done_tx || !call->transport)
		return;
	call->done_tx = true;
	call->status = status;
	if (msg && *msg)
		call->status_msg = grpc_wire_pct_encode(msg);
	if (call->headers_sent)
		rv = call_push(call);
	else
		rv = call_trailers_only(call);
	if (rv) {
		log_warn("grpc: %s: cannot queue status: %s", call->peer,
			 nghttp2_strerror(rv));
		nghttp2_submit_rst_stream(call->conn->ngh, NGHTTP2_FLAG_NONE,
					  call->sid, NGHTTP2_INTERNAL_ERROR);
	}
}

/* Queue one framed message on tx. 0 or -ENOMEM. */
static int call_queue_msg(struct grpc_call *call, const uint8_t *msg,
			  size_t len)
{
	uint8_t hdr[GRPC_WIRE_HDR_LEN];

	if (len > UINT32_MAX)
		return -EMSGSIZE;
	grpc_wire_put_hdr(hdr, (uint32_t)len);
	if (evbuffer_expand(call->tx, sizeof(hdr) + len) ||
	    evbuffer_add(call->tx, hdr, sizeof(hdr)) ||
	    (len && evbuffer_add(call->tx, msg, len)))
		return -ENOMEM;
	return 0;
}

/* ---- public call API -------------------------------------------------- */

bool grpc_call_alive(const struct grpc_call *call)
{
	return call->transport && !call->dead && !call->done_tx;
}

static void call_end(struct grpc_call *call, int status, const char *msg)
{
	if (call->ended) {
		log_error("grpc: call %s ended twice", call->path);
		return;
	}
	call->ended = true;
	call->handler = false;
	if (!call->dead && call->transport)
		call_respond(call, status, msg);
	call_maybe_free(call);
}

void grpc_call_reply(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	if (grpc_call_alive(call) && !call->ended &&
	    (call_queue_msg(call, msg, len) || call_push(call))) {
		call_end(call, GRPC_INTERNAL, "grpc: cannot queue response");
		return;
	}
	call_end(call, GRPC_OK, NULL);
}

void grpc_call_fail(struct grpc_call *call, int grpc_status,
		    const char *message)
{
	call_end(call, grpc_status, message);
}

void grpc_call_finish(struct grpc_call *call, int grpc_status,
		      const char *message)
{
	call_end(call, grpc_status, message);
}

int grpc_call_send(struct grpc_call *call, const uint8_t *msg, size_t len)
{
	int rv;

	if (!grpc_call_alive(call) || call->ended)
		return -EPIPE;
	rv = call_queue_msg(call, msg, len);
	if (rv)
		return rv;
	if (call_push(call))
		return -ENOMEM;
	if (evbuffer_get_length(call->tx) > GRPC_STREAM_HIGH_WATER) {
		call->blocked = true;
		return -EAGAIN;
	}
	return 0;
}

void grpc_call_set_writable_cb(struct grpc_call *call,
			       void (*fn)(struct grpc_call *, void *),
			       void *arg)
{
	call->writable = fn;
	call->writable_arg = arg;
}

void *grpc_call_get_user(const struct grpc_call *call)
{
	return call->user;
}

void grpc_call_set_user(struct grpc_call *call, void *user)
{
	call->user = user;
}

const char *grpc_call_peer(const struct grpc_call *call)
{
	return call->peer;
}

const char *grpc_call_path(const struct grpc_call *call)
{
	return call->path ? call->path : "";
}

const char *grpc_call_metadata(const struct grpc_call *call,
			       const char *name)
{
	const struct grpc_md *md, *first = NULL;

	/* The list is newest first; the first value sent is the last one. */
	for (md = call->md; md; md = md->next)
		if (strcmp(md->name, name) == 0)
			first = md;
	return first ? first->value : NULL;
}

uint64_t grpc_call_deadline_us(const struct grpc_call *call)
{
	return call->deadline_us;
}

/* ---- request side ----------------------------------------------------- */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}

static int call_add_md(struct grpc_call *call, const uint8_t *name,
		       size_t nlen, const uint8_t *value, size_t vlen)
{
	struct grpc_md *md = malloc(sizeof(*md) + nlen + vlen + 2);

	if (!md)
		return -ENOMEM;
	memcpy(md->name, name, nlen);
	md->name[nlen] = 0;
	md->value = md->name + nlen + 1;
	memcpy(md->value, value, vlen);
	md->value[vlen] = 0;
	md->next = call->md;
	call->md = md;
	return 0;
}

static char *dup_n(const uint8_t *p, size_t n)
{
	char *s = malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = 0;
	}
	return s;
}

static bool name_is(const uint8_t *name, size_t len, const char *lit)
{
	return len == strlen(lit) && memcmp(name, lit, len) == 0;
}

static int on_header(nghttp2_session *ngh, const nghttp2_frame *frame,
		     const uint8_t *name, size_t nlen, const uint8_t *value,
		     size_t vlen, uint8_t flags, void *user)
{
	struct grpc_call *call;
	uint64_t us;

	(void)flags;
	(void)user;
	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0; /* client trailers carry nothing we use */
	call = nghttp2_session_get_stream_user_data(ngh, frame->hd.stream_id);
	if (!call)
		return 0;
	call->hdr_bytes += nlen + vlen + 32; /* RFC 7541 entry size */
	if (call->hdr_bytes > H2_MAX_HEADER_BYTES)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
	if (name_is(name, nlen, ":path")) {
		free(call->path);
		call->path = dup_n(value, vlen);
		return call->path ? 0 : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (name_is(name, nlen, ":method")) {
		call->bad_method = !name_is(value, vlen, "POST");
		return 0;
	}
	if (name_is(name, nlen, "content-type")) {
		call->bad_ctype = vlen < 16 ||
				  memcmp(value, "application/grpc", 16) != 0 ||
				  (vlen > 16 && value[16] != '+' &&
				   value[16] != ';');
		return 0;
	}
	if (name_is(name, nlen, "grpc-timeout")) {
		char tmp[16];

		if (vlen < sizeof(tmp)) {
			memcpy(tmp, value, vlen);
			tmp[vlen] = 0;
			if (grpc_wire_parse_timeout(tmp, &us) == 0)
				call->deadline_us = now_us() + us;
		}
		return 0;
	}
	if (name_is(name, nlen, "grpc-encoding")) {
		free(call->encoding);
		call->encoding = dup_n(value, vlen);
		return call->encoding ? 0
				      : NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	}
	if (nlen && name[0] != ':' &&
	    call_add_md(call, name, nlen, value, vlen))
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
	return 0;
}

static int on_begin_headers(nghttp2_session *ngh, const nghttp2_frame *frame,
			    void *user)
{
	struct h2conn *c = user;
	struct grpc_call *call;

	if (frame->hd.type != NGHTTP2_HEADERS ||
	    frame->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	call = call_new(c, frame->hd.stream_id);
	if (!call)
		return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
	nghttp2_session_set_stream_user_data(ngh, frame->hd.stream_id, call);
	return 0;
}

/* Plain HTTP answer (not gRPC): grpc-go does this for a bad method or
 * content-type, and clients map the HTTP status to a gRPC code. */
static void call_http_error(struct grpc_call *call, const char *status)
{
	nghttp2_nv nv[] = {
		{ (uint8_t *)":status", (uint8_t *)status, 7, strlen(status),
		  NGHTTP2_NV_FLAG_NONE },
		{ (uint8_t *)"content-type", (uint8_t *)"text/plain", 12, 10,
		  NGHTTP2_NV_FLAG_NONE },
	};

	call->done_tx = call->headers_sent = true;
	nghttp2_submit_response(call->conn->ngh, call->sid, nv, 2, NULL);
	conn_schedule(call->conn);
}

static void call_unknown(struct grpc_call *call)
{
	const char *svc, *meth;
	size_t sl, ml;
	char buf[512];

	if (grpc_wire_split_path(call->path, &svc, &sl, &meth, &ml)) {
		snprintf(buf, sizeof(buf), "malformed method name: \"%.400s\"",
			 grpc_call_path(call));
	} else if (!grpc_server_has_service(call->conn->srv, svc, sl)) {
		snprintf(buf, sizeof(buf), "unknown service %.*s", (int)sl,
			 svc);
	} else {
		snprintf(buf, sizeof(buf), "unknown method %.*s for service %.*s",
			 (int)ml, meth, (int)sl, svc);
	}
	call_respond(call, GRPC_UNIMPLEMENTED, buf);
}

/* The request HEADERS are complete: route the call. */
static void call_route(struct grpc_call *call)
{
	if (call->bad_method) {
		call_http_error(call, "405");
		return;
	}
	if (call->bad_ctype) {
		call_http_error(call, "415");
		return;
	}
	if (call->encoding && strcmp(call->encoding, "identity") != 0) {
		char buf[200];

		/* grpc-go's text when no decompressor is installed. */
		snprintf(buf, sizeof(buf),
			 "grpc: Decompressor is not installed for grpc-encoding \"%.100s\"",
			 call->encoding);
		call_respond(call, GRPC_UNIMPLEMENTED, buf);
		return;
	}
	call->m = call->path ? grpc_server_lookup(call->conn->srv, call->path)
			     : NULL;
	if (!call->m) {
		call_unknown(call);
		return;
	}
	if (call->m->stream) {
		call->handler = true;
		call->busy++;
		call->m->ops.open(call, call->m->ctx);
		call->busy--;
	}
}

static void call_framer_error(struct grpc_call *call)
{
	char buf[160];

	switch (call->fr.err) {
	case GRPC_FRAMER_TOO_LARGE:
		snprintf(buf, sizeof(buf),
			 "grpc: received message larger than max (%u vs. %zu)",
			 call->fr.err_len, call->fr.max);
		call_respond(call, GRPC_RESOURCE_EXHAUSTED, buf);
		break;
	case GRPC_FRAMER_COMPRESSED:
		call_respond(call, GRPC_INTERNAL,
			     "grpc: compressed flag set with identity or empty encoding");
		break;
	case GRPC_FRAMER_BAD_FLAG:
		call_respond(call, GRPC_INTERNAL,
			     "grpc: received unexpected payload format");
		break;
	default:
		call_respond(call, GRPC_RESOURCE_EXHAUSTED,
			     "grpc: out of memory for request message");
		break;
	}
}

/* One complete request message; msg is ours (malloc'ed). */
static void call_message(struct grpc_call *call, uint8_t *msg, size_t len)
{
	if (!call->m->stream) {
		if (call->req) {
			free(msg);
			call_respond(call, GRPC_INTERNAL,
				     "grpc: server received more than one request message for a unary method");
			return;
		}
		call->req = msg;
		call->req_len = len;
		return;
	}
	if (call->handler && !call->ended) {
		call->busy++;
		call->m->ops.message(call, msg, len, call->m->ctx);
		call->busy--;
	}
	free(msg);
}

static int on_data_chunk(nghttp2_session *ngh, uint8_t flags, int32_t sid,
			 const uint8_t *data, size_t len, void *user)
{
	struct grpc_call *call = nghttp2_session_get_stream_user_data(ngh, sid);

	(void)flags;
	(void)user;
	while (call && call->m && !call->done_tx && !call->ended && len) {
		uint8_t *msg;
		size_t mlen, used;

		used = grpc_framer_feed(&call->fr, data, len, &msg, &mlen);
		data += used;
		len -= used;
		if (msg)
			call_message(call, msg, mlen);
		if (call->fr.err) {
			call_framer_error(call);
			break;
		}
	}
	return 0;
}

/* The client half-closed (END_STREAM). */
static void call_rx_done(struct grpc_call *call)
{
	if (!call->m || call->done_tx || call->ended)
		return;
	if (!grpc_framer_idle(&call->fr)) {
		call_respond(call, GRPC_INTERNAL,
			     "grpc: client sent a truncated message");
		return;
	}
	if (call->m->stream) {
		call_close_cb(call);
		return;
	}
	if (!call->req) {
		call_respond(call, GRPC_INTERNAL,
			     "grpc: server received no request message");
		return;
	}
	call->handler = true;
	call->busy++;
	call->m->unary(call, call->req, call->req_len, call->m->ctx);
	call->busy--;
}

static int on_frame_recv(nghttp2_session *ngh, const nghttp2_frame *frame,
			 void *user)
{
	struct grpc_call *call;

	(void)user;
	if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
		return 0;
	call = nghttp2_session_get_stream_user_data(ngh, frame->hd.stream_id);
	if (!call)
		return 0;
	call->busy++; /* keep call across route + rx_done */
	if (frame->hd.type == NGHTTP2_HEADERS &&
	    frame->headers.cat == NGHTTP2_HCAT_REQUEST)
		call_route(call);
	if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
		call_rx_done(call);
	call->busy--;
	call_maybe_free(call);
	return 0;
}

static int on_frame_send(nghttp2_session *ngh, const nghttp2_frame *frame,
			 void *user)
{
	int32_t sid = frame->hd.stream_id;

	(void)user;
	/* Like grpc-go: once our side ended the stream while the client is
	 * still sending, reset it (NO_ERROR) so neither side keeps state. */
	if (frame->hd.type == NGHTTP2_HEADERS &&
	    (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) &&
	    nghttp2_session_get_stream_remote_close(ngh, sid) == 0)
		nghttp2_submit_rst_stream(ngh, NGHTTP2_FLAG_NONE, sid,
					  NGHTTP2_NO_ERROR);
	return 0;
}

static int on_stream_close(nghttp2_session *ngh, int32_t sid, uint32_t err,
			   void *user)
{
	struct grpc_call *call = nghttp2_session_get_stream_user_data(ngh, sid);

	(void)err;
	(void)user;
	if (!call)
		return 0;
	nghttp2_session_set_stream_user_data(ngh, sid, NULL);
	if (call->handler)
		call->dead = true;
	call_close_cb(call);
	call->transport = false;
	call_maybe_free(call);
	return 0;
}

/* ---- connection ------------------------------------------------------- */

static void conn_kill(struct h2conn *c)
{
	c->doomed = true;
	event_active(c->flush_ev, EV_TIMEOUT, 0);
}

/* Closing, once the output (e.g. GOAWAY) is flushed: send FIN, and keep
 * reading (and discarding) until the peer's FIN or the timeout. Closing
 * with unread input would make the kernel send RST, and the peer could
 * lose the GOAWAY that tells it why. */
static void conn_shut(struct h2conn *c)
{
	if (c->shut_wr)
		return;
	c->shut_wr = true;
	if (shutdown(bufferevent_getfd(c->bev), SHUT_WR))
		conn_kill(c);
}

static void conn_begin_close(struct h2conn *c)
{
	struct timeval tv = { H2_CLOSE_TIMEOUT_SEC, 0 };

	if (c->closing)
		return;
	c->closing = true;
	c->read_paused = false;
	bufferevent_set_timeouts(c->bev, &tv, &tv);
	bufferevent_enable(c->bev, EV_READ);
}

/* Move nghttp2's pending output to the socket buffer, up to high water. */
static void conn_send(struct h2conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (evbuffer_get_length(out) < H2_OUT_HIGH_WATER) {
		const uint8_t *data;
		ssize_t n = nghttp2_session_mem_send(c->ngh, &data);

		if (n < 0) {
			log_debug("grpc: %s: send: %s", c->peer,
				  nghttp2_strerror((int)n));
			conn_kill(c);
			return;
		}
		if (n == 0)
			break;
		if (evbuffer_add(out, data, (size_t)n)) {
			conn_kill(c);
			return;
		}
	}
	if (!nghttp2_session_want_read(c->ngh) &&
	    !nghttp2_session_want_write(c->ngh))
		conn_begin_close(c);
	if (c->closing) {
		if (evbuffer_get_length(out) == 0)
			conn_shut(c);
		return;
	}
	if (evbuffer_get_length(out) >= H2_OUT_HIGH_WATER && !c->read_paused) {
		c->read_paused = true;
		bufferevent_disable(c->bev, EV_READ);
	}
}

/* Run writable callbacks of calls whose queue drained. */
static void conn_notify(struct h2conn *c)
{
	struct grpc_call *call;
	bool again = true;

	c->notify = false;
	while (again) {
		again = false;
		LIST_FOREACH(call, &c->calls, link) {
			if (!call->want_notify)
				continue;
			call->want_notify = false;
			if (!call->writable || !call->handler || call->ended ||
			    !grpc_call_alive(call))
				continue;
			call->busy++;
			call->writable(call, call->writable_arg);
			call->busy--;
			call_maybe_free(call);
			again = true; /* the list may have changed: rescan */
			break;
		}
	}
}

static void conn_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct h2conn *c = arg;

	(void)fd;
	(void)what;
	if (c->doomed) {
		h2conn_free(c);
		return;
	}
	conn_send(c);
	if (c->notify && !c->doomed) {
		conn_notify(c);
		conn_send(c);
	}
	if (c->doomed)
		h2conn_free(c);
}

static void conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct h2conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	if (c->closing) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (!c->doomed && evbuffer_get_length(in) > 0) {
		struct evbuffer_iovec v[16];
		int i, nv = evbuffer_peek(in, -1, NULL, v, 16);
		size_t used = 0;

		for (i = 0; i < nv; i++) {
			ssize_t rv = nghttp2_session_mem_recv(
				c->ngh, v[i].iov_base, v[i].iov_len);

			if (rv < 0) {
				log_debug("grpc: %s: recv: %s", c->peer,
					  nghttp2_strerror((int)rv));
				/* Send what nghttp2 queued (GOAWAY), then go. */
				conn_begin_close(c);
				evbuffer_drain(in, evbuffer_get_length(in));
				conn_send(c);
				return;
			}
			used += (size_t)rv;
		}
		evbuffer_drain(in, used);
	}
	conn_send(c);
	if (c->notify && !c->doomed)
		conn_schedule(c);
}

static void conn_write_cb(struct bufferevent *bev, void *arg)
{
	struct h2conn *c = arg;
	struct evbuffer *out = bufferevent_get_output(bev);

	if (c->closing) {
		if (evbuffer_get_length(out) == 0)
			conn_shut(c);
		return;
	}
	if (c->read_paused && evbuffer_get_length(out) < H2_OUT_HIGH_WATER) {
		c->read_paused = false;
		bufferevent_enable(bev, EV_READ);
	}
	conn_send(c);
	if (c->notify && !c->doomed)
		conn_schedule(c);
}

static void conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct h2conn *c = arg;

	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		log_debug("grpc: %s: connection closed (0x%x)", c->peer,
			  (unsigned)what);
		conn_kill(c);
	}
}

static int conn_session_new(struct h2conn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_option *opt;
	nghttp2_settings_entry iv[] = {
		{ NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS,
		  c->srv->cfg.max_concurrent_streams },
		{ NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2_STREAM_WINDOW },
		{ NGHTTP2_SETTINGS_ENABLE_PUSH, 0 },
		{ NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, H2_MAX_HEADER_BYTES },
	};
	int rv;

	rv = nghttp2_session_callbacks_new(&cbs);
	if (rv)
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_begin_headers_callback(
		cbs, on_begin_headers);
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs,
							     on_frame_recv);
	nghttp2_session_callbacks_set_on_frame_send_callback(cbs,
							     on_frame_send);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(
		cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_stream_close_callback(
		cbs, on_stream_close);
	/* nghttp2's HTTP messaging checks refuse an :authority holding a
	 * scheme ("http://127.0.0.1:2379"), which grpc-go (etcdctl with
	 * --endpoints http://...) sends and grpc-go servers accept; with them
	 * off, on_header/call_route check what a gRPC call needs (:path,
	 * POST, application/grpc) themselves. */
	rv = nghttp2_option_new(&opt);
	if (rv) {
		nghttp2_session_callbacks_del(cbs);
		return -ENOMEM;
	}
	nghttp2_option_set_no_http_messaging(opt, 1);
	rv = nghttp2_session_server_new2(&c->ngh, cbs, c, opt);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cbs);
	if (rv)
		return -ENOMEM;
	rv = nghttp2_submit_settings(c->ngh, NGHTTP2_FLAG_NONE, iv,
				     sizeof(iv) / sizeof(iv[0]));
	if (!rv)
		rv = nghttp2_session_set_local_window_size(
			c->ngh, NGHTTP2_FLAG_NONE, 0, H2_CONN_WINDOW);
	return rv ? -ENOMEM : 0;
}

int h2conn_start(struct grpc_server *s, int fd, const char *peer)
{
	struct h2conn *c = calloc(1, sizeof(*c));

	if (!c)
		goto fail_fd;
	c->srv = s;
	LIST_INIT(&c->calls);
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!c->bev)
		goto fail_fd;
	fd = -1;
	c->flush_ev = event_new(s->base, -1, 0, conn_flush_cb, c);
	if (!c->flush_ev || conn_session_new(c))
		goto fail;
	bufferevent_setcb(c->bev, conn_read_cb, conn_write_cb, conn_event_cb,
			  c);
	bufferevent_setwatermark(c->bev, EV_WRITE, H2_OUT_HIGH_WATER / 2, 0);
	if (bufferevent_enable(c->bev, EV_READ | EV_WRITE))
		goto fail;
	LIST_INSERT_HEAD(&s->conns, c, link);
	conn_send(c); /* our SETTINGS */
	return 0;
fail_fd:
	if (fd >= 0)
		close(fd);
fail:
	if (c) {
		if (c->ngh)
			nghttp2_session_del(c->ngh);
		if (c->flush_ev)
			event_free(c->flush_ev);
		if (c->bev)
			bufferevent_free(c->bev);
		free(c);
	}
	return -ENOMEM;
}

void h2conn_free(struct h2conn *c)
{
	struct grpc_call *call;

	/* Detach every call first (invariant 3); handler callbacks may end
	 * calls, which only touches calls not yet detached or themselves. */
	while ((call = LIST_FIRST(&c->calls))) {
		call->busy++;
		if (call->handler)
			call->dead = true;
		if (call->transport)
			call_close_cb(call);
		LIST_REMOVE(call, link);
		call->conn = NULL;
		call->transport = false;
		call->busy--;
		call_maybe_free(call);
	}
	LIST_REMOVE(c, link);
	nghttp2_session_del(c->ngh);
	event_free(c->flush_ev);
	bufferevent_free(c->bev);
	free(c);
}
