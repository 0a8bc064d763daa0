/* echo_server: a small program over net/grpc.h for the python tests.
 *
 *   echo_server [-p PORT] [-m MAX_RECV_BYTES] [-H HANDSHAKE_MS] [-v]
 *
 * Prints "PORT <n>" on stdout once listening on 127.0.0.1; SIGTERM or
 * SIGINT stops it cleanly (everything freed, for leak checkers).
 *
 * Methods:
 *   /test.Echo/Unary     reply with the request bytes
 *   /test.Echo/Slow      reply with the request bytes after 100 ms (timer)
 *   /test.Echo/Fail      INVALID_ARGUMENT, ECHO_FAIL_MSG
 *   /test.Echo/Stream    bidi: echo each message; OK on half-close
 *   /test.Echo/Flood     stream: first message = u32 count, u32 size (BE);
 *                        sends count messages of size bytes, honouring
 *                        -EAGAIN and the writable callback
 *   /test.Echo/Peer      reply with grpc_call_peer() + " " + metadata "x-k"
 *   /test.Echo/Stats     "eagain=N writable=M": how often Flood was
 *                        throttled by -EAGAIN and resumed by the callback
 *   /etcdserverpb.KV/Range  empty reply (a valid empty RangeResponse)
 *   GET /health          {"health":"true"} over HTTP/1.1
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "core/errors.h"
#include "core/util/log.h"
#include "net/grpc.h"

#define ECHO_FAIL_MSG "bad request: 100% wrong, caf\xc3\xa9\tok"

struct slow {
	LIST_ENTRY(slow) link;
	struct grpc_call *call;
	struct event *ev;
	const uint8_t *msg;
	size_t len;
};

static LIST_HEAD(, slow) slows = LIST_HEAD_INITIALIZER(slows);
static struct event_base *base;
static unsigned long n_eagain, n_writable;

static void echo_unary(struct grpc_call *call, const uint8_t *msg, size_t len,
		       void *ctx)
{
	(void)ctx;
	grpc_call_reply(call, msg, len);
}

static void slow_free(struct slow *sl)
{
	LIST_REMOVE(sl, link);
	event_free(sl->ev);
	free(sl);
}

static void slow_fire(evutil_socket_t fd, short what, void *arg)
{
	struct slow *sl = arg;

	(void)fd;
	(void)what;
	/* Dead calls (client gone) are fine: the reply is dropped. */
	grpc_call_reply(sl->call, sl->msg, sl->len);
	slow_free(sl);
}

static void echo_slow(struct grpc_call *call, const uint8_t *msg, size_t len,
		      void *ctx)
{
	struct timeval tv = { 0, 100000 };
	struct slow *sl = calloc(1, sizeof(*sl));

	(void)ctx;
	if (!sl)
		goto fail;
	sl->ev = evtimer_new(base, slow_fire, sl);
	if (!sl->ev)
		goto fail;
	sl->call = call;
	sl->msg = msg; /* zero-copy: valid until the call is ended */
	sl->len = len;
	LIST_INSERT_HEAD(&slows, sl, link);
	evtimer_add(sl->ev, &tv);
	return;
fail:
	free(sl);
	grpc_call_fail(call, GRPC_RESOURCE_EXHAUSTED, "out of memory");
}

static void echo_fail(struct grpc_call *call, const uint8_t *msg, size_t len,
		      void *ctx)
{
	(void)msg;
	(void)len;
	(void)ctx;
	grpc_call_fail(call, GRPC_INVALID_ARGUMENT, ECHO_FAIL_MSG);
}

static void echo_peer(struct grpc_call *call, const uint8_t *msg, size_t len,
		      void *ctx)
{
	const char *k = grpc_call_metadata(call, "x-k");
	char buf[256];
	int n;

	(void)msg;
	(void)len;
	(void)ctx;
	n = snprintf(buf, sizeof(buf), "%s %s", grpc_call_peer(call),
		     k ? k : "-");
	grpc_call_reply(call, (const uint8_t *)buf, (size_t)n);
}

static void echo_stats(struct grpc_call *call, const uint8_t *msg, size_t len,
		       void *ctx)
{
	char buf[64];
	int n;

	(void)msg;
	(void)len;
	(void)ctx;
	n = snprintf(buf, sizeof(buf), "eagain=%lu writable=%lu", n_eagain,
		     n_writable);
	grpc_call_reply(call, (const uint8_t *)buf, (size_t)n);
}

static void kv_range(struct grpc_call *call, const uint8_t *msg, size_t len,
		     void *ctx)
{
	(void)msg;
	(void)len;
	(void)ctx;
	grpc_call_reply(call, NULL, 0);
}

/* Bidi echo. */
static void stream_open(struct grpc_call *call, void *ctx)
{
	(void)call;
	(void)ctx;
}

static void stream_msg(struct grpc_call *call, const uint8_t *msg, size_t len,
		       void *ctx)
{
	(void)ctx;
	grpc_call_send(call, msg, len); /* -EAGAIN: queued anyway */
}

static void stream_close(struct grpc_call *call, void *ctx)
{
	(void)ctx;
	grpc_call_finish(call, GRPC_OK, NULL);
}

/* Flood: a producer that respects back-pressure. */
struct flood {
	uint32_t left, size;
	uint8_t *buf;
	bool started;
};

static void flood_end(struct grpc_call *call, struct flood *f, int status)
{
	free(f->buf);
	free(f);
	grpc_call_set_user(call, NULL);
	grpc_call_finish(call, status, status ? "flood aborted" : NULL);
}

static void flood_pump(struct grpc_call *call, void *arg)
{
	struct flood *f = arg;

	if (f->started)
		n_writable++;
	f->started = true;
	while (f->left > 0) {
		int rv;

		f->buf[0] = (uint8_t)f->left;
		rv = grpc_call_send(call, f->buf, f->size);
		if (rv == -EPIPE) {
			flood_end(call, f, GRPC_CANCELLED);
			return;
		}
		f->left--;
		if (rv == -EAGAIN) {
			n_eagain++;
			return; /* resumed by the writable callback */
		}
	}
	flood_end(call, f, GRPC_OK);
}

static void flood_msg(struct grpc_call *call, const uint8_t *msg, size_t len,
		      void *ctx)
{
	struct flood *f;

	(void)ctx;
	if (grpc_call_get_user(call) || len != 8) {
		return;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return;
	f->left = (uint32_t)msg[0] << 24 | (uint32_t)msg[1] << 16 |
		  (uint32_t)msg[2] << 8 | msg[3];
	f->size = (uint32_t)msg[4] << 24 | (uint32_t)msg[5] << 16 |
		  (uint32_t)msg[6] << 8 | msg[7];
	f->buf = calloc(1, f->size + 1);
	if (!f->buf) {
		free(f);
		return;
	}
	grpc_call_set_user(call, f);
	grpc_call_set_writable_cb(call, flood_pump, f);
	flood_pump(call, f);
}

static void flood_close(struct grpc_call *call, void *ctx)
{
	struct flood *f = grpc_call_get_user(call);

	(void)ctx;
	if (f && grpc_call_alive(call))
		return; /* half-close: keep producing, we end it ourselves */
	if (f)
		flood_end(call, f, GRPC_CANCELLED);
	else
		grpc_call_finish(call, GRPC_OK, NULL);
}

static void health_cb(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	(void)arg;
	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add_printf(b, "{\"health\":\"true\"}");
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	event_base_loopexit(base, NULL);
}

int main(int argc, char **argv)
{
	static const struct grpc_stream_ops echo_ops = {
		stream_open, stream_msg, stream_close };
	static const struct grpc_stream_ops flood_ops = {
		stream_open, flood_msg, flood_close };
	struct grpc_server_config cfg = { 0 };
	struct grpc_server *s = NULL;
	struct event *sigs[2] = { NULL, NULL };
	uint16_t port = 0;
	int opt, rv, ret = 1;

	while ((opt = getopt(argc, argv, "p:m:H:v")) != -1) {
		switch (opt) {
		case 'v': log_set_level(LOG_DEBUG); break;
		case 'p': port = (uint16_t)atoi(optarg); break;
		case 'm': cfg.max_recv_bytes = strtoul(optarg, NULL, 0); break;
		case 'H': cfg.handshake_timeout_ms = (uint32_t)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: %s [-p port] [-m max_recv] [-H ms] [-v]\n",
				argv[0]);
			return 2;
		}
	}
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (!base || grpc_server_create(base, &cfg, &s))
		goto out;
	if (grpc_server_register_unary(s, "/test.Echo/Unary", echo_unary, NULL) ||
	    grpc_server_register_unary(s, "/test.Echo/Slow", echo_slow, NULL) ||
	    grpc_server_register_unary(s, "/test.Echo/Fail", echo_fail, NULL) ||
	    grpc_server_register_unary(s, "/test.Echo/Peer", echo_peer, NULL) ||
	    grpc_server_register_unary(s, "/test.Echo/Stats", echo_stats, NULL) ||
	    grpc_server_register_stream(s, "/test.Echo/Stream", &echo_ops, NULL) ||
	    grpc_server_register_stream(s, "/test.Echo/Flood", &flood_ops, NULL) ||
	    grpc_server_register_unary(s, "/etcdserverpb.KV/Range", kv_range,
				       NULL))
		goto out;
	evhttp_set_cb(grpc_server_http(s), "/health", health_cb, NULL);
	rv = grpc_server_listen(s, "127.0.0.1", port);
	if (rv) {
		fprintf(stderr, "listen: %s\n", strerror(-rv));
		goto out;
	}
	sigs[0] = evsignal_new(base, SIGTERM, on_signal, NULL);
	sigs[1] = evsignal_new(base, SIGINT, on_signal, NULL);
	if (!sigs[0] || !sigs[1] || evsignal_add(sigs[0], NULL) ||
	    evsignal_add(sigs[1], NULL))
		goto out;
	printf("PORT %u\n", grpc_server_port(s));
	fflush(stdout);
	event_base_dispatch(base);
	ret = 0;
out:
	/* Destroy first: pending slow calls become dead, then end them. */
	grpc_server_destroy(s);
	while (!LIST_EMPTY(&slows)) {
		struct slow *sl = LIST_FIRST(&slows);

		grpc_call_reply(sl->call, sl->msg, sl->len);
		slow_free(sl);
	}
	for (int i = 0; i < 2; i++)
		if (sigs[i])
			event_free(sigs[i]);
	if (base)
		event_base_free(base);
	return ret;
}
