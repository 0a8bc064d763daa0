/* Unit tests of net/grpc: the pure wire helpers (framing, grpc-message
 * escaping, path splitting, grpc-timeout), then the server in-process
 * with a tiny nghttp2 client over loopback (routing, trailers, limits,
 * HTTP/1.1 hand-off, call lifetime across destroy). Every wait is bounded.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>

#include "core/errors.h"
#include "net/grpc.h"
#include "net/grpc_wire.h"

/* ---- framer ----------------------------------------------------------- */

static size_t frame_msg(uint8_t *out, const char *s, size_t n)
{
	grpc_wire_put_hdr(out, (uint32_t)n);
	memcpy(out + 5, s, n);
	return n + 5;
}

START_TEST(test_put_hdr)
{
	uint8_t h[5];

	grpc_wire_put_hdr(h, 0x01020304);
	ck_assert_mem_eq(h, "\x00\x01\x02\x03\x04", 5);
}
END_TEST

START_TEST(test_framer_whole_and_split)
{
	struct grpc_framer f;
	uint8_t buf[64], *msg;
	size_t n = frame_msg(buf, "hello", 5), len, used = 0, i;

	grpc_framer_init(&f, 100);
	used = grpc_framer_feed(&f, buf, n, &msg, &len);
	ck_assert_uint_eq(used, n);
	ck_assert_ptr_nonnull(msg);
	ck_assert_uint_eq(len, 5);
	ck_assert_mem_eq(msg, "hello", 5);
	free(msg);
	ck_assert(grpc_framer_idle(&f));

	/* One byte at a time: the message appears exactly at the last. */
	for (i = 0; i < n; i++) {
		ck_assert_uint_eq(grpc_framer_feed(&f, buf + i, 1, &msg, &len),
				  1);
		if (i + 1 < n) {
			ck_assert_ptr_null(msg);
			ck_assert(!grpc_framer_idle(&f));
		}
	}
	ck_assert_ptr_nonnull(msg);
	ck_assert_mem_eq(msg, "hello", 5);
	free(msg);
	grpc_framer_reset(&f);
}
END_TEST

START_TEST(test_framer_two_and_empty)
{
	struct grpc_framer f;
	uint8_t buf[64], *msg;
	size_t n, len, used;

	n = frame_msg(buf, "", 0);
	n += frame_msg(buf + n, "ab", 2);
	grpc_framer_init(&f, 100);
	used = grpc_framer_feed(&f, buf, n, &msg, &len);
	ck_assert_uint_eq(used, 5); /* stops right after the first message */
	ck_assert_ptr_nonnull(msg); /* empty, but a real message */
	ck_assert_uint_eq(len, 0);
	free(msg);
	used += grpc_framer_feed(&f, buf + used, n - used, &msg, &len);
	ck_assert_uint_eq(used, n);
	ck_assert_uint_eq(len, 2);
	ck_assert_mem_eq(msg, "ab", 2);
	free(msg);
	ck_assert_uint_eq(grpc_framer_feed(&f, buf, 0, &msg, &len), 0);
	ck_assert_ptr_null(msg);
	grpc_framer_reset(&f);
}
END_TEST

START_TEST(test_framer_limits_and_flags)
{
	struct grpc_framer f;
	uint8_t hdr[5], *msg, big[200];
	size_t len;

	/* Exactly max is accepted. */
	grpc_framer_init(&f, 195);
	memset(big, 'x', sizeof(big));
	frame_msg(big, (const char *)big + 5, 195);
	ck_assert_uint_eq(grpc_framer_feed(&f, big, 200, &msg, &len), 200);
	ck_assert_uint_eq(len, 195);
	free(msg);

	/* max + 1: error from the prefix alone, before any body byte. */
	grpc_framer_init(&f, 194);
	grpc_wire_put_hdr(hdr, 195);
	grpc_framer_feed(&f, hdr, 5, &msg, &len);
	ck_assert_ptr_null(msg);
	ck_assert_int_eq(f.err, GRPC_FRAMER_TOO_LARGE);
	ck_assert_uint_eq(f.err_len, 195);
	ck_assert_uint_eq(grpc_framer_feed(&f, hdr, 5, &msg, &len), 0);
	grpc_framer_reset(&f);

	/* A huge announced length costs nothing until bytes arrive. */
	grpc_framer_init(&f, 0xffffffffu);
	grpc_wire_put_hdr(hdr, 0xfffffff0u);
	grpc_framer_feed(&f, hdr, 5, &msg, &len);
	ck_assert_int_eq(f.err, 0);
	ck_assert_uint_le(f.cap, GRPC_FRAMER_FIRST_CHUNK);
	grpc_framer_reset(&f);

	grpc_framer_init(&f, 100);
	hdr[0] = 1;
	grpc_framer_feed(&f, hdr, 5, &msg, &len);
	ck_assert_int_eq(f.err, GRPC_FRAMER_COMPRESSED);
	grpc_framer_reset(&f);

	grpc_framer_init(&f, 100);
	hdr[0] = 7;
	grpc_framer_feed(&f, hdr, 5, &msg, &len);
	ck_assert_int_eq(f.err, GRPC_FRAMER_BAD_FLAG);
	grpc_framer_reset(&f);
}
END_TEST

START_TEST(test_framer_grows)
{
	struct grpc_framer f;
	size_t n = 300000, off = 0, len = 0;
	uint8_t *in = malloc(n + 5), *msg = NULL;

	ck_assert_ptr_nonnull(in);
	grpc_wire_put_hdr(in, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		in[5 + i] = (uint8_t)(i * 7);
	grpc_framer_init(&f, n);
	while (off < n + 5 && !msg) {
		size_t k = n + 5 - off < 999 ? n + 5 - off : 999;

		off += grpc_framer_feed(&f, in + off, k, &msg, &len);
	}
	ck_assert_uint_eq(off, n + 5);
	ck_assert_ptr_nonnull(msg);
	ck_assert_uint_eq(len, n);
	ck_assert_mem_eq(msg, in + 5, n);
	free(msg);
	free(in);
	grpc_framer_reset(&f);
}
END_TEST

/* ---- escaping, paths, timeouts ---------------------------------------- */

START_TEST(test_pct)
{
	char *e = grpc_wire_pct_encode("a b%c\t\xc3\xa9~\x7f"), *d;

	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(e, "a b%25c%09%C3%A9~%7F");
	d = grpc_wire_pct_decode(e);
	ck_assert_str_eq(d, "a b%c\t\xc3\xa9~\x7f");
	free(d);
	free(e);
	d = grpc_wire_pct_decode("100%zz%4"); /* bad escapes kept */
	ck_assert_str_eq(d, "100%zz%4");
	free(d);
	e = grpc_wire_pct_encode("");
	ck_assert_str_eq(e, "");
	free(e);
}
END_TEST

START_TEST(test_split_path)
{
	const char *s, *m;
	size_t sl, ml;

	ck_assert_int_eq(grpc_wire_split_path("/etcdserverpb.KV/Range", &s,
					      &sl, &m, &ml), 0);
	ck_assert_uint_eq(sl, 15);
	ck_assert(strncmp(s, "etcdserverpb.KV", sl) == 0);
	ck_assert_str_eq(m, "Range");
	ck_assert_uint_eq(ml, 5);
	/* Like grpc-go: the method is after the last '/'. */
	ck_assert_int_eq(grpc_wire_split_path("/a/b/c", &s, &sl, &m, &ml), 0);
	ck_assert_uint_eq(sl, 3);
	ck_assert_str_eq(m, "c");
	ck_assert_int_eq(grpc_wire_split_path(NULL, &s, &sl, &m, &ml), -EINVAL);
	ck_assert_int_eq(grpc_wire_split_path("", &s, &sl, &m, &ml), -EINVAL);
	ck_assert_int_eq(grpc_wire_split_path("a/b", &s, &sl, &m, &ml),
			 -EINVAL);
	ck_assert_int_eq(grpc_wire_split_path("/", &s, &sl, &m, &ml), -EINVAL);
	ck_assert_int_eq(grpc_wire_split_path("/svc", &s, &sl, &m, &ml),
			 -EINVAL);
	ck_assert_int_eq(grpc_wire_split_path("/svc/", &s, &sl, &m, &ml),
			 -EINVAL);
	ck_assert_int_eq(grpc_wire_split_path("//m", &s, &sl, &m, &ml),
			 -EINVAL);
}
END_TEST

START_TEST(test_timeout)
{
	uint64_t us;

	ck_assert_int_eq(grpc_wire_parse_timeout("100m", &us), 0);
	ck_assert_uint_eq(us, 100000);
	ck_assert_int_eq(grpc_wire_parse_timeout("2S", &us), 0);
	ck_assert_uint_eq(us, 2000000);
	ck_assert_int_eq(grpc_wire_parse_timeout("1H", &us), 0);
	ck_assert_uint_eq(us, 3600000000ULL);
	ck_assert_int_eq(grpc_wire_parse_timeout("3M", &us), 0);
	ck_assert_uint_eq(us, 180000000ULL);
	ck_assert_int_eq(grpc_wire_parse_timeout("7u", &us), 0);
	ck_assert_uint_eq(us, 7);
	ck_assert_int_eq(grpc_wire_parse_timeout("1500n", &us), 0);
	ck_assert_uint_eq(us, 2); /* rounded up */
	ck_assert_int_eq(grpc_wire_parse_timeout("99999999H", &us), 0);
	ck_assert_int_eq(grpc_wire_parse_timeout("123456789S", &us), -EINVAL);
	ck_assert_int_eq(grpc_wire_parse_timeout("S", &us), -EINVAL);
	ck_assert_int_eq(grpc_wire_parse_timeout("10x", &us), -EINVAL);
	ck_assert_int_eq(grpc_wire_parse_timeout("10", &us), -EINVAL);
	ck_assert_int_eq(grpc_wire_parse_timeout("10mm", &us), -EINVAL);
}
END_TEST

/* ---- in-process server ------------------------------------------------ */

struct fix {
	struct event_base *base;
	struct grpc_server *s;
	struct grpc_call *held; /* a call a handler kept */
	int stream_msgs, stream_closes, stream_dead_closes;
};

static struct fix fx;

static void h_echo(struct grpc_call *call, const uint8_t *msg, size_t len,
		   void *ctx)
{
	ck_assert_ptr_eq(ctx, &fx);
	grpc_call_reply(call, msg, len);
}

static void h_fail(struct grpc_call *call, const uint8_t *msg, size_t len,
		   void *ctx)
{
	(void)msg;
	(void)len;
	(void)ctx;
	grpc_call_fail(call, GRPC_NOT_FOUND, "no 100%");
}

static void h_hold(struct grpc_call *call, const uint8_t *msg, size_t len,
		   void *ctx)
{
	(void)msg;
	(void)len;
	(void)ctx;
	fx.held = call; /* ended later by the test */
}

static void st_open(struct grpc_call *call, void *ctx)
{
	(void)ctx;
	fx.held = call;
}

static void st_msg(struct grpc_call *call, const uint8_t *msg, size_t len,
		   void *ctx)
{
	(void)ctx;
	fx.stream_msgs++;
	ck_assert_int_eq(grpc_call_send(call, msg, len), 0);
}

static void st_close(struct grpc_call *call, void *ctx)
{
	(void)ctx;
	fx.stream_closes++;
	if (!grpc_call_alive(call))
		fx.stream_dead_closes++;
	/* Keep it: the test ends it (checks ending after close is fine). */
}

static void fix_setup(size_t max_recv)
{
	static const struct grpc_stream_ops ops = { st_open, st_msg,
						    st_close };
	struct grpc_server_config cfg = { .max_recv_bytes = max_recv };

	memset(&fx, 0, sizeof(fx));
	fx.base = event_base_new();
	ck_assert_ptr_nonnull(fx.base);
	ck_assert_int_eq(grpc_server_create(fx.base, &cfg, &fx.s), 0);
	ck_assert_int_eq(grpc_server_register_unary(fx.s, "/t.S/Echo", h_echo,
						    &fx), 0);
	ck_assert_int_eq(grpc_server_register_unary(fx.s, "/t.S/Fail", h_fail,
						    &fx), 0);
	ck_assert_int_eq(grpc_server_register_unary(fx.s, "/t.S/Hold", h_hold,
						    &fx), 0);
	ck_assert_int_eq(grpc_server_register_stream(fx.s, "/t.S/Bidi", &ops,
						     &fx), 0);
	ck_assert_int_eq(grpc_server_listen(fx.s, "127.0.0.1", 0), 0);
	ck_assert_uint_ne(grpc_server_port(fx.s), 0);
}

static void fix_teardown(void)
{
	grpc_server_destroy(fx.s);
	event_base_free(fx.base);
}

static int connect_port(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

static double mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A one-stream nghttp2 client: what came back for the request. */
struct reply {
	nghttp2_session *ngh;
	int fd;
	int32_t sid;
	char status[8], grpc_status[8], grpc_message[128];
	uint8_t body[4096];
	size_t body_len, req_len, req_off;
	const uint8_t *req;
	bool end_req; /* END_STREAM after the request bytes */
	bool closed;
	uint32_t rst;
};

static int cl_header(nghttp2_session *ngh, const nghttp2_frame *frame,
		     const uint8_t *name, size_t nlen, const uint8_t *value,
		     size_t vlen, uint8_t flags, void *user)
{
	struct reply *r = user;
	char *dst = NULL;
	size_t cap = 0;

	(void)ngh;
	(void)frame;
	(void)flags;
	if (nlen == 7 && !memcmp(name, ":status", 7)) {
		dst = r->status;
		cap = sizeof(r->status);
	} else if (nlen == 11 && !memcmp(name, "grpc-status", 11)) {
		dst = r->grpc_status;
		cap = sizeof(r->grpc_status);
	} else if (nlen == 12 && !memcmp(name, "grpc-message", 12)) {
		dst = r->grpc_message;
		cap = sizeof(r->grpc_message);
	}
	if (dst)
		snprintf(dst, cap, "%.*s", (int)vlen, value);
	return 0;
}

static int cl_data(nghttp2_session *ngh, uint8_t flags, int32_t sid,
		   const uint8_t *data, size_t len, void *user)
{
	struct reply *r = user;

	(void)ngh;
	(void)flags;
	(void)sid;
	ck_assert_uint_le(r->body_len + len, sizeof(r->body));
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	return 0;
}

static int cl_close(nghttp2_session *ngh, int32_t sid, uint32_t err,
		    void *user)
{
	struct reply *r = user;

	(void)ngh;
	(void)sid;
	r->closed = true;
	r->rst = err;
	return 0;
}

static ssize_t cl_read(nghttp2_session *ngh, int32_t sid, uint8_t *buf,
		       size_t length, uint32_t *flags,
		       nghttp2_data_source *src, void *user)
{
	struct reply *r = user;
	size_t n = r->req_len - r->req_off;

	(void)ngh;
	(void)sid;
	(void)src;
	if (n > length)
		n = length;
	memcpy(buf, r->req + r->req_off, n);
	r->req_off += n;
	if (r->req_off == r->req_len) {
		if (r->end_req)
			*flags |= NGHTTP2_DATA_FLAG_EOF;
		else if (n == 0)
			return NGHTTP2_ERR_DEFERRED;
	}
	return (ssize_t)n;
}

/* Drive server loop and client until pred() or limit seconds. */
static bool pump(struct reply *r, bool (*pred)(struct reply *), double limit)
{
	double end = mono() + limit;

	while (mono() < end) {
		const uint8_t *out;
		uint8_t in[16384];
		ssize_t n;

		while ((n = nghttp2_session_mem_send(r->ngh, &out)) > 0)
			ck_assert_int_eq(write(r->fd, out, (size_t)n), n);
		event_base_loop(fx.base, EVLOOP_NONBLOCK);
		n = read(r->fd, in, sizeof(in));
		if (n > 0)
			ck_assert_int_eq(nghttp2_session_mem_recv(r->ngh, in,
								  (size_t)n),
					 n);
		if (pred(r))
			return true;
		if (n <= 0)
			usleep(1000);
	}
	return false;
}

static bool is_closed(struct reply *r)
{
	return r->closed;
}

/* Open a connection and send one request on path with body (framed by
 * the caller); end says whether to half-close after it. */
static void call_start(struct reply *r, const char *path, const uint8_t *req,
		       size_t len, bool end)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_data_provider prd = { .read_callback = cl_read };
	nghttp2_nv hdrs[] = {
		{ (uint8_t *)":method", (uint8_t *)"POST", 7, 4, 0 },
		{ (uint8_t *)":scheme", (uint8_t *)"http", 7, 4, 0 },
		{ (uint8_t *)":path", (uint8_t *)path, 5, strlen(path), 0 },
		{ (uint8_t *)":authority", (uint8_t *)"x", 10, 1, 0 },
		{ (uint8_t *)"content-type", (uint8_t *)"application/grpc",
		  12, 16, 0 },
		{ (uint8_t *)"te", (uint8_t *)"trailers", 2, 8, 0 },
	};

	memset(r, 0, sizeof(*r));
	r->req = req;
	r->req_len = len;
	r->end_req = end;
	r->fd = connect_port(grpc_server_port(fx.s));
	ck_assert_int_eq(nghttp2_session_callbacks_new(&cbs), 0);
	nghttp2_session_callbacks_set_on_header_callback(cbs, cl_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs,
								  cl_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs,
							       cl_close);
	ck_assert_int_eq(nghttp2_session_client_new(&r->ngh, cbs, r), 0);
	nghttp2_session_callbacks_del(cbs);
	/* nghttp2 (>= 1.0) sends the client magic itself. */
	ck_assert_int_eq(nghttp2_submit_settings(r->ngh, 0, NULL, 0), 0);
	r->sid = nghttp2_submit_request(r->ngh, NULL, hdrs, 6, &prd, NULL);
	ck_assert_int_gt(r->sid, 0);
}

static void call_stop(struct reply *r)
{
	nghttp2_session_del(r->ngh);
	close(r->fd);
}

START_TEST(test_h2_unary_echo)
{
	struct reply r;
	uint8_t req[32];
	size_t n = frame_msg(req, "ping", 4);

	fix_setup(0);
	call_start(&r, "/t.S/Echo", req, n, true);
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_uint_eq(r.rst, 0);
	ck_assert_str_eq(r.status, "200");
	ck_assert_str_eq(r.grpc_status, "0");
	ck_assert_uint_eq(r.body_len, n);
	ck_assert_mem_eq(r.body, req, n);
	call_stop(&r);
	fix_teardown();
}
END_TEST

START_TEST(test_h2_fail_and_unknown)
{
	struct reply r;
	uint8_t req[32];
	size_t n = frame_msg(req, "x", 1);

	fix_setup(0);
	call_start(&r, "/t.S/Fail", req, n, true);
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_str_eq(r.grpc_status, "5");
	ck_assert_str_eq(r.grpc_message, "no 100%25");
	ck_assert_uint_eq(r.body_len, 0);
	call_stop(&r);

	call_start(&r, "/t.S/Nope", req, n, true);
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_str_eq(r.grpc_status, "12");
	ck_assert_str_eq(r.grpc_message, "unknown method Nope for service t.S");
	call_stop(&r);

	call_start(&r, "/u.V/Nope", req, n, true);
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_str_eq(r.grpc_message, "unknown service u.V");
	call_stop(&r);

	/* nghttp2 itself resets a :path without a leading '/'. */
	call_start(&r, "/nonsense", req, n, true);
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_str_eq(r.grpc_status, "12");
	ck_assert_str_eq(r.grpc_message,
			 "malformed method name: \"/nonsense\"");
	call_stop(&r);
	fix_teardown();
}
END_TEST

START_TEST(test_h2_too_large_and_no_message)
{
	struct reply r;
	uint8_t req[64];
	size_t n = frame_msg(req, "0123456789A", 11);

	fix_setup(10);
	call_start(&r, "/t.S/Echo", req, n, true);
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_str_eq(r.grpc_status, "8");
	ck_assert_str_eq(r.grpc_message,
			 "grpc: received message larger than max (11 vs. 10)");
	call_stop(&r);

	call_start(&r, "/t.S/Echo", req, 0, true); /* END_STREAM, no msg */
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_str_eq(r.grpc_status, "13");
	call_stop(&r);

	call_start(&r, "/t.S/Echo", req, 3, true); /* truncated prefix */
	ck_assert(pump(&r, is_closed, 5));
	ck_assert_str_eq(r.grpc_status, "13");
	call_stop(&r);
	fix_teardown();
}
END_TEST

/* A handler keeps a unary call; the client resets; the call is dead but
 * valid until the handler ends it. */
START_TEST(test_h2_dead_call_then_reply)
{
	struct reply r;
	uint8_t req[32];
	size_t n = frame_msg(req, "z", 1);
	double end;

	fix_setup(0);
	call_start(&r, "/t.S/Hold", req, n, true);
	end = mono() + 5;
	while (!fx.held && mono() < end)
		pump(&r, is_closed, 0.01);
	ck_assert_ptr_nonnull(fx.held);
	ck_assert(grpc_call_alive(fx.held));
	ck_assert_str_eq(grpc_call_path(fx.held), "/t.S/Hold");
	ck_assert_int_eq(nghttp2_submit_rst_stream(r.ngh, 0, r.sid,
						   NGHTTP2_CANCEL), 0);
	end = mono() + 5;
	while (grpc_call_alive(fx.held) && mono() < end)
		pump(&r, is_closed, 0.01);
	ck_assert(!grpc_call_alive(fx.held));
	grpc_call_reply(fx.held, (const uint8_t *)"late", 4); /* dropped */
	call_stop(&r);
	fix_teardown();
}
END_TEST

/* Bidi stream: messages echo, half-close calls close (alive), destroy of
 * the server calls close again (dead), and ending afterwards is fine. */
START_TEST(test_h2_stream_and_destroy)
{
	struct reply r;
	uint8_t req[64];
	size_t n = frame_msg(req, "one", 3);

	n += frame_msg(req + n, "two", 3);
	fix_setup(0);
	call_start(&r, "/t.S/Bidi", req, n, true);
	pump(&r, is_closed, 0.3);
	ck_assert_ptr_nonnull(fx.held);
	ck_assert_int_eq(fx.stream_msgs, 2);
	ck_assert_int_eq(fx.stream_closes, 1);
	ck_assert_int_eq(fx.stream_dead_closes, 0);
	ck_assert_uint_eq(r.body_len, n);
	ck_assert_mem_eq(r.body, req, n);
	ck_assert(!r.closed); /* no trailers until the handler finishes */
	grpc_server_destroy(fx.s);
	fx.s = NULL;
	ck_assert_int_eq(fx.stream_closes, 2);
	ck_assert_int_eq(fx.stream_dead_closes, 1);
	ck_assert(!grpc_call_alive(fx.held));
	ck_assert_int_eq(grpc_call_send(fx.held, req, 1), -EPIPE);
	grpc_call_finish(fx.held, GRPC_OK, NULL);
	call_stop(&r);
	event_base_free(fx.base);
}
END_TEST

static bool got_http(struct reply *r)
{
	return r->body_len > 0 && memmem(r->body, r->body_len, "\r\n\r\n", 4);
}

static void http_ok(struct evhttp_request *req, void *arg)
{
	struct evbuffer *b = evbuffer_new();

	(void)arg;
	evbuffer_add_printf(b, "fine");
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

START_TEST(test_http1_handoff)
{
	const char get[] = "GET /health HTTP/1.0\r\n\r\n";
	struct reply r;
	double end;
	ssize_t n;

	fix_setup(0);
	evhttp_set_cb(grpc_server_http(fx.s), "/health", http_ok, NULL);
	memset(&r, 0, sizeof(r));
	r.fd = connect_port(grpc_server_port(fx.s));
	ck_assert_int_eq(write(r.fd, get, sizeof(get) - 1), sizeof(get) - 1);
	end = mono() + 5;
	while (!got_http(&r) && mono() < end) {
		event_base_loop(fx.base, EVLOOP_NONBLOCK);
		n = read(r.fd, r.body + r.body_len,
			 sizeof(r.body) - r.body_len - 1);
		if (n > 0)
			r.body_len += (size_t)n;
		else
			usleep(1000);
	}
	ck_assert(got_http(&r));
	ck_assert(strncmp((char *)r.body, "HTTP/1.0 200", 12) == 0 ||
		  strncmp((char *)r.body, "HTTP/1.1 200", 12) == 0);
	close(r.fd);
	fix_teardown();
}
END_TEST

START_TEST(test_register_and_listen_errors)
{
	static const struct grpc_stream_ops bad = { NULL, NULL, NULL };
	struct grpc_server *s2;

	fix_setup(0);
	ck_assert_int_eq(grpc_server_register_unary(fx.s, "/t.S/Echo", h_echo,
						    NULL), -EEXIST);
	ck_assert_int_eq(grpc_server_register_unary(fx.s, "noslash", h_echo,
						    NULL), -EINVAL);
	ck_assert_int_eq(grpc_server_register_stream(fx.s, "/t.S/X", &bad,
						     NULL), -EINVAL);
	ck_assert_int_eq(grpc_server_create(fx.base, NULL, &s2), 0);
	ck_assert_int_eq(grpc_server_listen(s2, "127.0.0.1",
					    grpc_server_port(fx.s)),
			 -EADDRINUSE);
	ck_assert_int_eq(grpc_server_listen(s2, "no.such.host.invalid", 0),
			 -ENOENT);
	ck_assert_int_eq(grpc_server_port(s2), 0);
	grpc_server_destroy(s2);
	grpc_server_destroy(NULL);
	fix_teardown();
}
END_TEST

Suite *grpc_suite(void)
{
	Suite *s = suite_create("grpc");
	TCase *wire = tcase_create("wire");
	TCase *srv = tcase_create("server");

	tcase_add_test(wire, test_put_hdr);
	tcase_add_test(wire, test_framer_whole_and_split);
	tcase_add_test(wire, test_framer_two_and_empty);
	tcase_add_test(wire, test_framer_limits_and_flags);
	tcase_add_test(wire, test_framer_grows);
	tcase_add_test(wire, test_pct);
	tcase_add_test(wire, test_split_path);
	tcase_add_test(wire, test_timeout);
	suite_add_tcase(s, wire);

	tcase_set_timeout(srv, 30);
	tcase_add_test(srv, test_h2_unary_echo);
	tcase_add_test(srv, test_h2_fail_and_unknown);
	tcase_add_test(srv, test_h2_too_large_and_no_message);
	tcase_add_test(srv, test_h2_dead_call_then_reply);
	tcase_add_test(srv, test_h2_stream_and_destroy);
	tcase_add_test(srv, test_http1_handoff);
	tcase_add_test(srv, test_register_and_listen_errors);
	suite_add_tcase(s, srv);
	return s;
}
