/* h2c: a minimal gRPC-over-HTTP/2 client connection for cairn-bench.
 *
 * One h2c_conn is one cleartext HTTP/2 connection (prior knowledge, as
 * etcd's http:// endpoints speak) driven by nghttp2's client session on
 * the caller's libevent loop. Requests are unary gRPC calls whose body is
 * already framed (5-byte prefix + message); many may be in flight at once,
 * each as its own stream. The response body is counted, not kept: the
 * caller learns the gRPC status (from the trailers, or from a trailers-
 * only response) and the grpc-message of errors.
 *
 * Cost per request: one nghttp2 stream (from h2c's block cache, see
 * h2c_pool_trim(), so no malloc in steady state), header
 * fields sent from the caller's static table (HPACK indexes them after the
 * first request), the body copied once into nghttp2's frame buffer. All
 * frames produced in one loop turn go out in one write().
 *
 * Connection states:
 *   h2c_connect() --> OPEN --(peer closes, I/O or protocol error)--> DEAD
 *   OPEN --(GOAWAY received)--> DRAINING: new submits fail with -ENOTCONN,
 *   streams in flight finish (or fail when the server closes: DEAD)
 *   DEAD: every request in flight is completed with H2C_TRANSPORT and new
 *   submits fail with -ENOTCONN; h2c_free() in any state.
 */
#ifndef CAIRN_TOOLS_BENCH_H2C_H
#define CAIRN_TOOLS_BENCH_H2C_H

#include <stddef.h>
#include <stdint.h>

#include <event2/event.h>
#include <nghttp2/nghttp2.h>

/* grpc_status of a request that got no gRPC status (stream reset, HTTP
 * error status, connection lost). */
#define H2C_TRANSPORT (-1)
#define H2C_MSG_MAX 160

struct h2c_conn;

/* One request in flight; owned by the caller, who must keep it (and body)
 * valid and unchanged from h2c_submit() until its done callback ran. */
struct h2c_req {
	const uint8_t *body; /* the framed request */
	size_t body_len;
	/* filled in by h2c */
	size_t sent;	       /* body bytes handed to nghttp2 */
	size_t resp_bytes;     /* response DATA bytes received */
	int grpc_status;       /* 0..16, or H2C_TRANSPORT */
	int http_status;       /* :status, 0 if none came */
	char msg[H2C_MSG_MAX]; /* grpc-message (or why), "" if none */
	/* private to h2c: the connection's list of requests in flight */
	struct h2c_req *prev, *next;
};

/* Called once per request when its stream closes, from inside the loop
 * (possibly from within h2c_submit()'s or the read handler's nghttp2
 * call): the callback may submit new requests on any connection, and
 * must not free the connection (h2c_free() only outside callbacks). */
typedef void (*h2c_done_fn)(void *arg, struct h2c_req *req);

/* Connect to host:port (numeric or resolvable; blocking resolve and a
 * connect bounded by timeout_ms), start the HTTP/2 session and register
 * the socket with base. authority is copied (the :authority header).
 * done(arg, req) is called for every completed request.
 * On success *out is the caller's to h2c_free().
 * Returns 0, -EINVAL (bad host/port), -EHOSTUNREACH (name not resolved),
 * -ETIMEDOUT, a -errno from socket/connect, -ENOMEM, or -EPROTO (nghttp2
 * refused to start the session). */
int h2c_connect(struct event_base *base, const char *host, const char *port,
		int timeout_ms, h2c_done_fn done, void *arg,
		struct h2c_conn **out);

/* Start the unary call path (e.g. "/etcdserverpb.KV/Put") with req's body.
 * path must stay valid until the request completes (a string literal).
 * Frames are queued; they are written when the loop turn's handlers call
 * h2c_flush() (the read handler does, after processing input), so a
 * caller outside a handler calls h2c_flush() itself.
 * Returns 0, -ENOTCONN (connection dead or draining), or -ENOMEM. */
int h2c_submit(struct h2c_conn *c, const char *path, struct h2c_req *req);

/* Write all queued frames that the socket takes now; the rest goes out
 * when the socket is writable. Errors kill the connection (see states). */
void h2c_flush(struct h2c_conn *c);

/* The server's SETTINGS_MAX_CONCURRENT_STREAMS (nghttp2's assumption,
 * unlimited, until the server's SETTINGS arrived). Requests past it wait
 * in nghttp2's queue, and that wait counts in their latency. */
uint32_t h2c_peer_max_streams(const struct h2c_conn *c);

/* Number of requests submitted and not yet completed. */
size_t h2c_inflight(const struct h2c_conn *c);

/* 1 while the connection takes new requests, 0 once it is draining or
 * dead; why (connection-owned, valid until h2c_free()) says what
 * happened, "" while usable. */
int h2c_alive(const struct h2c_conn *c, const char **why);

/* Give back to malloc the blocks h2c keeps cached for nghttp2 (all
 * connections of the process share one cache; it only grows to the
 * high-water mark of requests in flight). Call after the last h2c_free(). */
void h2c_pool_trim(void);

/* Close the socket and free everything. Requests still in flight are NOT
 * completed (their done callback never runs). NULL-safe. */
void h2c_free(struct h2c_conn *c);

#endif
