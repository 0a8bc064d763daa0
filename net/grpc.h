/* grpc: the gRPC server transport — HTTP/2 (nghttp2) and HTTP/1.1 (evhttp)
 * on the same TCP ports, driven by one libevent loop.
 *
 * A listener accepts a connection and peeks at its first bytes (bounded
 * by handshake_timeout_ms): the HTTP/2 client preface "PRI * HTTP/2.0..."
 * (prior knowledge, what etcd's http:// endpoints use) makes it an HTTP/2
 * connection served by nghttp2; anything else is handed to the evhttp
 * returned by grpc_server_http() (GET /health, /version, JSON gateway).
 *
 * gRPC requests (POST :path "/pkg.Service/Method", content-type
 * application/grpc) are routed to the handler registered for the path.
 * Unknown paths get UNIMPLEMENTED with grpc-go's texts ("unknown service
 * S", "unknown method M for service S", "malformed method name: ...");
 * messages above max_recv_bytes get RESOURCE_EXHAUSTED "grpc: received
 * message larger than max (N vs. M)"; a grpc-encoding other than identity
 * gets UNIMPLEMENTED "grpc: Decompressor is not installed for
 * grpc-encoding ..." and a compressed flag without one INTERNAL (grpc-go's
 * texts). A bad :method or content-type gets HTTP 405 / 415 like grpc-go.
 * These replies come from the transport; handlers never see such calls.
 *
 * Resource bounds: a request message costs memory as its bytes arrive
 * (not as announced); request metadata is capped at 64 KiB per call;
 * SETTINGS_MAX_CONCURRENT_STREAMS bounds streams per connection; when a
 * connection's unsent output passes 256 KiB the server stops reading it
 * until it drains; grpc_call_send says -EAGAIN above
 * GRPC_STREAM_HIGH_WATER per stream. Malformed HTTP/2 gets GOAWAY or
 * RST_STREAM from nghttp2; the connection is then flushed and closed.
 *
 * Threads: everything here runs on the loop thread of the event_base.
 *
 * Lifetime of a call (struct grpc_call):
 *  - It is created by the transport and handed to the handler (unary fn,
 *    or stream ops->open). From then on it stays valid until the handler
 *    ends it: grpc_call_reply or grpc_call_fail (unary), grpc_call_finish
 *    or grpc_call_fail (stream). That call frees it; the handler must not
 *    touch the pointer afterwards.
 *  - If the client resets the stream, the connection dies, or the server
 *    is destroyed first, the call becomes "dead": grpc_call_alive() is
 *    false, sends return -EPIPE, replies are dropped; the memory is still
 *    freed only when the handler ends it. So a handler never sees a
 *    dangling call, and must always end every call it was given.
 *  - The transport never frees a call while a handler callback for it is
 *    on the stack, and ending a call from inside any callback is allowed.
 */
#ifndef CAIRN_NET_GRPC_H
#define CAIRN_NET_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp;
struct grpc_server;
struct grpc_call;

/* Defaults used when a field is 0. */
#define GRPC_DEFAULT_MAX_RECV_BYTES (4u * 1024 * 1024) /* grpc-go's */
#define GRPC_DEFAULT_MAX_STREAMS 1000u
#define GRPC_MAX_STREAMS_CAP 100000u /* larger values are lowered to it */
#define GRPC_DEFAULT_HANDSHAKE_MS 5000u
/* Bytes queued on one stream above which grpc_call_send says -EAGAIN. */
#define GRPC_STREAM_HIGH_WATER (1024u * 1024)

struct grpc_server_config {
	size_t max_recv_bytes;		 /* largest request message */
	/* SETTINGS_MAX_CONCURRENT_STREAMS per connection. 0, and UINT32_MAX
	 * (etcd's default, meaning "no limit"), give
	 * GRPC_DEFAULT_MAX_STREAMS: every open stream can hold up to
	 * max_recv_bytes, so "no limit" is not a safe default. */
	uint32_t max_concurrent_streams;
	uint32_t handshake_timeout_ms;	 /* first bytes must come by then */
};

/* Create a server on base (borrowed; must outlive the server). cfg may be
 * NULL (all defaults); it is copied. *out is owned by the caller until
 * grpc_server_destroy. Returns 0 or -ENOMEM. */
int grpc_server_create(struct event_base *base,
		       const struct grpc_server_config *cfg,
		       struct grpc_server **out);

/* Close listeners and connections and free the server (s may be NULL).
 * Streaming calls still open get ops->close; calls still owned by
 * handlers become dead and are freed when the handler ends them. Must
 * not be called from inside a callback of this server (handler, evhttp
 * callback); from a signal event or after the loop returned is fine. */
void grpc_server_destroy(struct grpc_server *s);

/* Listen on host:port (host: numeric address or name; NULL or "" means
 * all IPv4 addresses; port 0 picks a free port, see grpc_server_port).
 * May be called several times. Returns 0, -EADDRINUSE, -EACCES,
 * -EADDRNOTAVAIL or another -errno of socket/bind/listen, -ENOENT when
 * host does not resolve, -ENOMEM. */
int grpc_server_listen(struct grpc_server *s, const char *host,
		       uint16_t port);

/* The port of the most recent successful grpc_server_listen (useful with
 * port 0), or 0 when there is none. */
uint16_t grpc_server_port(const struct grpc_server *s);

/* The evhttp serving HTTP/1.1 requests on the same ports; owned by the
 * server (valid until grpc_server_destroy). Register evhttp_set_cb() or
 * evhttp_set_gencb() handlers on it. */
struct evhttp *grpc_server_http(struct grpc_server *s);

/* Unary handler: called once the request's single message and END_STREAM
 * have arrived. msg (len bytes, never NULL) is owned by the call and valid
 * until the call is ended, so zero-copy pointers into it are fine. The
 * handler must end the call exactly once (grpc_call_reply or
 * grpc_call_fail), now or later. */
typedef void (*grpc_unary_fn)(struct grpc_call *call, const uint8_t *msg,
			      size_t len, void *ctx);

/* Streaming handler (Watch, LeaseKeepAlive).
 *  open:    the request headers arrived; the call is now the handler's.
 *  message: one request message; msg is valid only during the callback.
 *  close:   the client half-closed (grpc_call_alive() still true), or
 *           the stream died (grpc_call_alive() false). A handler that
 *           keeps the call open after the half-close (to go on sending)
 *           gets close a second time if the stream then dies. After a
 *           close with the call dead, the handler must call
 *           grpc_call_finish (or grpc_call_fail), now or later; after a
 *           half-close it should finish once it has sent everything. No
 *           callback comes after the handler ended the call. */
struct grpc_stream_ops {
	void (*open)(struct grpc_call *call, void *ctx);
	void (*message)(struct grpc_call *call, const uint8_t *msg,
			size_t len, void *ctx);
	void (*close)(struct grpc_call *call, void *ctx);
};

/* Register a handler for path ("/etcdserverpb.KV/Range"; copied). ops is
 * copied; ctx is borrowed and passed to every callback. Returns 0,
 * -EEXIST (path already registered), -EINVAL (path not "/svc/method"),
 * -ENOMEM. */
int grpc_server_register_unary(struct grpc_server *s, const char *path,
			       grpc_unary_fn fn, void *ctx);
int grpc_server_register_stream(struct grpc_server *s, const char *path,
				const struct grpc_stream_ops *ops, void *ctx);

/* Unary: send msg (copied) and OK trailers; ends and frees the call. */
void grpc_call_reply(struct grpc_call *call, const uint8_t *msg, size_t len);

/* Unary or stream: end with grpc_status (enum grpc_status of
 * core/errors.h) and message (may be NULL; copied, percent-encoded on the
 * wire). Trailers-only if nothing was sent yet. Ends and frees the call. */
void grpc_call_fail(struct grpc_call *call, int grpc_status,
		    const char *message);

/* Stream: queue one response message (copied). Returns 0; -EAGAIN when
 * more than GRPC_STREAM_HIGH_WATER bytes are now queued on this stream
 * (the message IS queued; stop producing until the writable callback);
 * -EPIPE when the call is dead (message dropped); -ENOMEM. */
int grpc_call_send(struct grpc_call *call, const uint8_t *msg, size_t len);

/* Called (from the loop, never from inside grpc_call_send) once the
 * stream's queue drained below half the high-water mark after a send
 * returned -EAGAIN. arg is borrowed. fn NULL clears it. */
void grpc_call_set_writable_cb(struct grpc_call *call,
			       void (*fn)(struct grpc_call *, void *),
			       void *arg);

/* Stream: send trailers with grpc_status/message; ends and frees the call
 * (same as grpc_call_fail, named for the normal end of a stream). */
void grpc_call_finish(struct grpc_call *call, int grpc_status,
		      const char *message);

/* False once the client reset the stream, the connection closed, the
 * server was destroyed, or the transport itself already ended the stream
 * with an error (e.g. a streaming request message above max_recv_bytes:
 * RESOURCE_EXHAUSTED); then sends return -EPIPE and the handler should
 * just finish the call. */
bool grpc_call_alive(const struct grpc_call *call);

/* Opaque handler pointer kept on the call (NULL initially). */
void *grpc_call_get_user(const struct grpc_call *call);
void grpc_call_set_user(struct grpc_call *call, void *user);

/* Peer address "127.0.0.1:5555" or "[::1]:5555"; valid as long as the
 * call. */
const char *grpc_call_peer(const struct grpc_call *call);

/* The request's :path ("/etcdserverpb.KV/Range"); valid as long as the
 * call. */
const char *grpc_call_path(const struct grpc_call *call);

/* Value of request metadata name (lower-case, e.g. "token",
 * "authorization"), or NULL when absent; valid as long as the call. When
 * the header is repeated, the first value. */
const char *grpc_call_metadata(const struct grpc_call *call,
			       const char *name);

/* Deadline from grpc-timeout as CLOCK_MONOTONIC microseconds, or 0 when
 * the client sent none. */
uint64_t grpc_call_deadline_us(const struct grpc_call *call);

#endif
