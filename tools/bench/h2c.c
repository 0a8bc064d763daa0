/* h2c: gRPC client connection over nghttp2 + libevent (see h2c.h).
 *
 * Invariants:
 *   1. A request is on c->reqs exactly from a successful h2c_submit()
 *      until its done callback is called, and c->inflight counts them.
 *   2. Output is written in order: c->out[out_off..out_len) (bytes nghttp2
 *      already produced) always goes before anything mem_send makes next.
 *   3. c->wev is pending only while c->out holds unwritten bytes.
 *   4. Once c->dead is set, nghttp2 is never called again except by
 *      nghttp2_session_del() in h2c_free(); the socket is closed.
 */
#include "tools/bench/h2c.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/grpc_wire.h"

#define H2C_OUT_BATCH 65536 /* stop pulling frames past this much */
#define H2C_READ_BUF 65536
#define H2C_WINDOW (1 << 24) /* per-stream receive window */
#define H2C_CONN_WINDOW (1 << 30)
#define H2C_STATUS_NONE (-2) /* no grpc-status header seen yet */

/* nghttp2's allocator: a cache of freed blocks in size classes, so that in
 * steady state the stream, frame and header copies of a request reuse the
 * blocks the previous request freed instead of calling malloc. One loop
 * thread: no locking. Each block has a 16-byte header (keeps malloc's
 * alignment) holding its class (1..POOL_NCLASS, capacity class *
 * POOL_GRAIN) or 0 and its size for blocks too big to cache. */
#define POOL_GRAIN 64
#define POOL_NCLASS 32 /* blocks up to 2 KiB are cached */
#define POOL_KEEP 8192 /* most free blocks kept per class */
#define POOL_HDR 16

struct pool_blk {
	struct pool_blk *next;
};

static struct pool_blk *pool_free[POOL_NCLASS + 1];
static size_t pool_nfree[POOL_NCLASS + 1];

static void *pool_malloc(size_t size, void *ud)
{
	size_t cls = (size + POOL_GRAIN - 1) / POOL_GRAIN, *h;
	struct pool_blk *b;

	(void)ud;
	if (!cls)
		cls = 1;
	if (cls <= POOL_NCLASS && (b = pool_free[cls])) {
		pool_free[cls] = b->next;
		pool_nfree[cls]--;
		return b;
	}
	if (cls > POOL_NCLASS)
		cls = 0;
	h = malloc(POOL_HDR + (cls ? cls * POOL_GRAIN : size));
	if (!h)
		return NULL;
	h[0] = cls;
	h[1] = size;
	return (char *)h + POOL_HDR;
}

static void pool_release(void *p, void *ud)
{
	size_t *h, cls;
	struct pool_blk *b = p;

	(void)ud;
	if (!p)
		return;
	h = (size_t *)((char *)p - POOL_HDR);
	cls = h[0];
	if (cls && pool_nfree[cls] < POOL_KEEP) {
		b->next = pool_free[cls];
		pool_free[cls] = b;
		pool_nfree[cls]++;
		return;
	}
	free(h);
}

static void *pool_calloc(size_t n, size_t size, void *ud)
{
	void *p;

	if (size && n > SIZE_MAX / size)
		return NULL;
	p = pool_malloc(n * size, ud);
	if (p)
		memset(p, 0, n * size);
	return p;
}

static void *pool_realloc(void *p, size_t size, void *ud)
{
	size_t *h, cap;
	void *np;

	if (!p)
		return pool_malloc(size, ud);
	h = (size_t *)((char *)p - POOL_HDR);
	cap = h[0] ? h[0] * POOL_GRAIN : h[1];
	if (h[0] && size <= cap && size)
		return p;
	np = pool_malloc(size, ud);
	if (!np)
		return NULL;
	memcpy(np, p, size < cap ? size : cap);
	pool_release(p, ud);
	return np;
}

static nghttp2_mem pool_mem = {
	NULL, pool_malloc, pool_release, pool_calloc, pool_realloc,
};

void h2c_pool_trim(void)
{
	struct pool_blk *b;
	size_t cls;

	for (cls = 1; cls <= POOL_NCLASS; cls++) {
		while ((b = pool_free[cls])) {
			pool_free[cls] = b->next;
			free((char *)b - POOL_HDR);
		}
		pool_nfree[cls] = 0;
	}
}

struct h2c_conn {
	struct event_base *base;
	int fd;
	struct event *rev, *wev;
	nghttp2_session *s;
	h2c_done_fn done;
	void *arg;
	char authority[256];
	struct h2c_req *reqs; /* in flight (inv. 1) */
	size_t inflight;
	int dead;
	int goaway; /* the server sent GOAWAY: no new streams */
	char why[128];
	uint8_t *out;
	size_t out_off, out_len, out_cap;
};

static void req_unlink(struct h2c_conn *c, struct h2c_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		c->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	r->prev = r->next = NULL;
	c->inflight--;
}

static void req_finish(struct h2c_conn *c, struct h2c_req *r)
{
	req_unlink(c, r);
	c->done(c->arg, r);
}

/* The connection is over: fail every request in flight (inv. 1, 4). */
static void conn_kill(struct h2c_conn *c, const char *fmt, const char *detail)
{
	struct h2c_req *r;

	if (c->dead)
		return;
	c->dead = 1;
	snprintf(c->why, sizeof(c->why), fmt, detail);
	event_del(c->rev);
	event_del(c->wev);
	close(c->fd);
	c->fd = -1;
	while ((r = c->reqs)) {
		r->grpc_status = H2C_TRANSPORT;
		snprintf(r->msg, sizeof(r->msg), "%s", c->why);
		req_finish(c, r);
	}
}

static int out_append(struct h2c_conn *c, const uint8_t *p, size_t n)
{
	size_t cap;
	uint8_t *nb;

	if (c->out_len + n > c->out_cap) {
		cap = c->out_cap ? c->out_cap : H2C_OUT_BATCH;
		while (cap < c->out_len + n)
			cap *= 2;
		nb = realloc(c->out, cap);
		if (!nb)
			return -ENOMEM;
		c->out = nb;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Write c->out; 1 if all of it went, 0 if the socket is full, -1 dead. */
static int out_write(struct h2c_conn *c)
{
	ssize_t n;

	while (c->out_off < c->out_len) {
		n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			event_add(c->wev, NULL); /* inv. 3 */
			return 0;
		}
		if (n < 0) {
			conn_kill(c, "write: %s", strerror(errno));
			return -1;
		}
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	event_del(c->wev);
	return 1;
}

void h2c_flush(struct h2c_conn *c)
{
	const uint8_t *d;
	ssize_t n;

	while (!c->dead && out_write(c) == 1) {
		while (c->out_len < H2C_OUT_BATCH) {
			n = nghttp2_session_mem_send(c->s, &d);
			if (n < 0) {
				conn_kill(c, "nghttp2: %s",
					  nghttp2_strerror((int)n));
				return;
			}
			if (n == 0)
				break;
			if (out_append(c, d, (size_t)n)) {
				conn_kill(c, "%s", "out of memory");
				return;
			}
		}
		if (!c->out_len)
			return;
	}
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
	static uint8_t buf[H2C_READ_BUF]; /* one loop thread */
	struct h2c_conn *c = arg;
	ssize_t n, rv;

	(void)what;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		conn_kill(c, "%s",
			  n ? strerror(errno) : "closed by the server");
		return;
	}
	rv = nghttp2_session_mem_recv(c->s, buf, (size_t)n);
	if (rv < 0) {
		conn_kill(c, "nghttp2: %s", nghttp2_strerror((int)rv));
		return;
	}
	h2c_flush(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	h2c_flush(arg);
}

static int cb_header(nghttp2_session *s, const nghttp2_frame *f,
		     const uint8_t *name, size_t nlen, const uint8_t *value,
		     size_t vlen, uint8_t flags, void *ud)
{
	struct h2c_req *r;

	(void)vlen;
	(void)flags;
	(void)ud;
	if (f->hd.type != NGHTTP2_HEADERS)
		return 0;
	r = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
	if (!r)
		return 0;
	if (nlen == 7 && !memcmp(name, ":status", 7)) {
		r->http_status = atoi((const char *)value);
	} else if (nlen == 11 && !memcmp(name, "grpc-status", 11)) {
		r->grpc_status = atoi((const char *)value);
		if (r->grpc_status < 0 || r->grpc_status > 16)
			r->grpc_status = 2; /* UNKNOWN, as gRPC does */
	} else if (nlen == 12 && !memcmp(name, "grpc-message", 12)) {
		/* nghttp2 NUL-terminates header values */
		char *m = grpc_wire_pct_decode((const char *)value);

		snprintf(r->msg, sizeof(r->msg), "%s",
			 m ? m : (const char *)value);
		free(m);
	}
	return 0;
}

static int cb_data(nghttp2_session *s, uint8_t flags, int32_t id,
		   const uint8_t *data, size_t len, void *ud)
{
	struct h2c_req *r = nghttp2_session_get_stream_user_data(s, id);

	(void)flags;
	(void)data;
	(void)ud;
	if (r)
		r->resp_bytes += len;
	return 0;
}

static int cb_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct h2c_conn *c = ud;

	(void)s;
	if (f->hd.type == NGHTTP2_GOAWAY && !c->goaway) {
		c->goaway = 1;
		snprintf(c->why, sizeof(c->why), "server sent GOAWAY (%s)",
			 nghttp2_http2_strerror(f->goaway.error_code));
	}
	return 0;
}

static int cb_close(nghttp2_session *s, int32_t id, uint32_t err, void *ud)
{
	struct h2c_req *r = nghttp2_session_get_stream_user_data(s, id);
	struct h2c_conn *c = ud;

	if (!r)
		return 0;
	if (r->grpc_status == H2C_STATUS_NONE) {
		r->grpc_status = H2C_TRANSPORT;
		if (err != NGHTTP2_NO_ERROR)
			snprintf(r->msg, sizeof(r->msg), "stream reset: %s",
				 nghttp2_http2_strerror(err));
		else
			snprintf(r->msg, sizeof(r->msg),
				 "no grpc-status (HTTP %d)", r->http_status);
	}
	req_finish(c, r);
	return 0;
}

static ssize_t body_read(nghttp2_session *s, int32_t id, uint8_t *buf,
			 size_t len, uint32_t *flags, nghttp2_data_source *src,
			 void *ud)
{
	struct h2c_req *r = src->ptr;
	size_t n = r->body_len - r->sent;

	(void)s;
	(void)id;
	(void)ud;
	if (n > len)
		n = len;
	memcpy(buf, r->body + r->sent, n);
	r->sent += n;
	if (r->sent == r->body_len)
		*flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

#define NV(n, v, vl)                                                           \
	{                                                                      \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vl),           \
			NGHTTP2_NV_FLAG_NO_COPY_NAME |                         \
				NGHTTP2_NV_FLAG_NO_COPY_VALUE                  \
	}

int h2c_submit(struct h2c_conn *c, const char *path, struct h2c_req *r)
{
	nghttp2_nv nva[] = {
		NV(":method", "POST", 4),
		NV(":scheme", "http", 4),
		NV(":path", path, strlen(path)),
		NV(":authority", c->authority, strlen(c->authority)),
		NV("content-type", "application/grpc", 16),
		NV("te", "trailers", 8),
	};
	nghttp2_data_provider dp;
	int32_t id;

	if (c->dead || c->goaway)
		return -ENOTCONN;
	r->sent = 0;
	r->resp_bytes = 0;
	r->grpc_status = H2C_STATUS_NONE;
	r->http_status = 0;
	r->msg[0] = 0;
	dp.source.ptr = r;
	dp.read_callback = body_read;
	id = nghttp2_submit_request(c->s, NULL, nva,
				    sizeof(nva) / sizeof(nva[0]), &dp, r);
	if (id < 0)
		return id == NGHTTP2_ERR_NOMEM ? -ENOMEM : -ENOTCONN;
	r->prev = NULL;
	r->next = c->reqs;
	if (c->reqs)
		c->reqs->prev = r;
	c->reqs = r;
	c->inflight++;
	return 0;
}

uint32_t h2c_peer_max_streams(const struct h2c_conn *c)
{
	return nghttp2_session_get_remote_settings(
		c->s, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
}

size_t h2c_inflight(const struct h2c_conn *c)
{
	return c->inflight;
}

int h2c_alive(const struct h2c_conn *c, const char **why)
{
	if (why)
		*why = c->dead || c->goaway ? c->why : "";
	return !c->dead && !c->goaway;
}

/* Connect one address, waiting at most timeout_ms. Returns fd or -errno. */
static int dial(const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd pfd;
	int fd, err = 0, one = 1;
	socklen_t el = sizeof(err);

	fd = socket(ai->ai_family,
		    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
		    ai->ai_protocol);
	if (fd < 0)
		return -errno;
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		if (errno != EINPROGRESS) {
			err = errno;
			goto fail;
		}
		pfd.fd = fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, timeout_ms) != 1) {
			err = ETIMEDOUT;
			goto fail;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err)
			goto fail;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
fail:
	close(fd);
	return -err;
}

static int resolve_dial(const char *host, const char *port, int timeout_ms)
{
	struct addrinfo hints, *res = NULL, *ai;
	int fd = -EHOSTUNREACH;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if (getaddrinfo(host, port, &hints, &res))
		return -EHOSTUNREACH;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = dial(ai, timeout_ms);
		if (fd >= 0)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

static int session_start(struct h2c_conn *c)
{
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, H2C_WINDOW},
	};
	int rv;

	if (nghttp2_session_callbacks_new(&cbs))
		return -ENOMEM;
	nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_close);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame);
	rv = nghttp2_session_client_new3(&c->s, cbs, c, NULL, &pool_mem);
	nghttp2_session_callbacks_del(cbs);
	if (rv)
		return -ENOMEM;
	if (nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, 2) ||
	    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0,
						  H2C_CONN_WINDOW))
		return -EPROTO;
	return 0;
}

int h2c_connect(struct event_base *base, const char *host, const char *port,
		int timeout_ms, h2c_done_fn done, void *arg,
		struct h2c_conn **out)
{
	struct h2c_conn *c;
	int rc;

	*out = NULL;
	if (!host[0] || !port[0])
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base = base;
	c->done = done;
	c->arg = arg;
	c->fd = resolve_dial(host, port, timeout_ms);
	if (c->fd < 0) {
		rc = c->fd;
		goto fail;
	}
	snprintf(c->authority, sizeof(c->authority), "%s:%s", host, port);
	rc = -ENOMEM;
	c->rev = event_new(base, c->fd, EV_READ | EV_PERSIST, on_read, c);
	c->wev = event_new(base, c->fd, EV_WRITE | EV_PERSIST, on_write, c);
	if (!c->rev || !c->wev)
		goto fail;
	rc = session_start(c);
	if (rc)
		goto fail;
	if (event_add(c->rev, NULL)) {
		rc = -ENOMEM;
		goto fail;
	}
	h2c_flush(c); /* connection preface and SETTINGS */
	*out = c;
	return 0;
fail:
	h2c_free(c);
	return rc;
}

void h2c_free(struct h2c_conn *c)
{
	if (!c)
		return;
	if (c->rev)
		event_free(c->rev);
	if (c->wev)
		event_free(c->wev);
	if (c->fd >= 0)
		close(c->fd);
	nghttp2_session_del(c->s);
	free(c->out);
	free(c);
}
