/* grpc: the server object — listeners, protocol sniffing, method registry.
 * The HTTP/2 side (connections, streams, calls) lives in h2conn.c.
 *
 * A new connection goes through:
 *
 *   accept --> SNIFF --24 bytes == preface------> h2conn_start (HTTP/2)
 *                |----first byte that differs---> evhttp_get_request
 *                |----EOF / error / timeout-----> close
 *                `----a prefix of the preface---> peek again after 2, 4,
 *                                                 8 ... 128 ms
 *
 * Invariants:
 *  1. A sniffing connection owns its fd until it hands it over (to nghttp2
 *     or evhttp) or closes it; it is on s->sniffs exactly while it owns it.
 *  2. Bytes are only peeked (MSG_PEEK) while sniffing, so whoever takes
 *     the fd sees the stream from its first byte.
 *  3. Sniffing is bounded by cfg.handshake_timeout_ms from accept.
 */
#include "net/grpc_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "core/util/log.h"
#include "net/grpc_wire.h"

#define SNIFF_POLL_USEC 2000	  /* first re-peek after a partial preface */
#define SNIFF_POLL_MAX_USEC 128000 /* backoff cap: trickling costs little */
#define ACCEPT_RETRY_MSEC 100	  /* pause after EMFILE and friends */
#define GRPC_PEER_LEN 64

static const char h2_preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
#define H2_PREFACE_LEN (sizeof(h2_preface) - 1)

struct grpc_sniff {
	struct grpc_server *s;
	LIST_ENTRY(grpc_sniff) link;
	int fd;
	struct event *ev;	/* EV_READ, or a poll timer (fd -1) */
	uint64_t deadline_ms;	/* CLOCK_MONOTONIC */
	uint32_t poll_us;	/* next re-peek delay, doubles */
	struct sockaddr_storage sa;
	socklen_t salen;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void peer_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;

		inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(in->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;

		inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(in6->sin6_port));
	} else {
		snprintf(buf, len, "unknown");
	}
}

/* ---- sniffing --------------------------------------------------------- */

static void sniff_free(struct grpc_sniff *sn, bool close_fd)
{
	LIST_REMOVE(sn, link);
	if (sn->ev)
		event_free(sn->ev);
	if (close_fd && sn->fd >= 0)
		close(sn->fd);
	free(sn);
}

static void sniff_cb(evutil_socket_t fd, short what, void *arg);

/* Wait for bytes (EV_READ) or, after a partial preface, poll (timer). */
static int sniff_arm(struct grpc_sniff *sn, bool poll)
{
	uint64_t now = mono_ms();
	uint64_t left = sn->deadline_ms > now ? sn->deadline_ms - now : 0;
	struct timeval tv = { (time_t)(left / 1000),
			      (suseconds_t)(left % 1000) * 1000 };

	if (sn->ev)
		event_free(sn->ev);
	sn->ev = event_new(sn->s->base, poll ? -1 : sn->fd,
			   poll ? 0 : EV_READ, sniff_cb, sn);
	if (!sn->ev)
		return -ENOMEM;
	if (poll) {
		sn->poll_us = sn->poll_us ? sn->poll_us * 2 : SNIFF_POLL_USEC;
		if (sn->poll_us > SNIFF_POLL_MAX_USEC)
			sn->poll_us = SNIFF_POLL_MAX_USEC;
		if (left * 1000 > sn->poll_us) {
			tv.tv_sec = 0;
			tv.tv_usec = (suseconds_t)sn->poll_us;
		}
	}
	return event_add(sn->ev, &tv) ? -ENOMEM : 0;
}

static void sniff_to_http1(struct grpc_sniff *sn)
{
	struct grpc_server *s = sn->s;
	int fd = sn->fd;

	sn->fd = -1;
	if (s->http_accept)
		s->http_accept(s->http_lev, fd, (struct sockaddr *)&sn->sa,
			       (int)sn->salen, s->http);
	else
		close(fd);
	sniff_free(sn, false);
}

static void sniff_to_h2(struct grpc_sniff *sn)
{
	struct grpc_server *s = sn->s;
	char peer[GRPC_PEER_LEN];
	int fd = sn->fd, one = 1;

	peer_format((struct sockaddr *)&sn->sa, peer, sizeof(peer));
	sn->fd = -1;
	sniff_free(sn, false);
	/* gRPC is request/response: small frames must not wait for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (h2conn_start(s, fd, peer))
		log_warn("grpc: %s: cannot start HTTP/2: out of memory", peer);
}

static void sniff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct grpc_sniff *sn = arg;
	char buf[H2_PREFACE_LEN];
	ssize_t n;

	(void)fd;
	(void)what;
	n = recv(sn->fd, buf, sizeof(buf), MSG_PEEK);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		if (mono_ms() < sn->deadline_ms && !sniff_arm(sn, false))
			return;
		goto drop;
	}
	if (n <= 0)
		goto drop; /* EOF before any byte, or a socket error */
	if (memcmp(buf, h2_preface, (size_t)n) != 0) {
		sniff_to_http1(sn);
		return;
	}
	if ((size_t)n == H2_PREFACE_LEN) {
		sniff_to_h2(sn);
		return;
	}
	/* A prefix of the preface: EV_READ would fire at once again (the
	 * bytes are still there), so poll until the rest or the deadline. */
	if (mono_ms() < sn->deadline_ms && !sniff_arm(sn, true))
		return;
drop:
	log_debug("grpc: dropping connection: no complete first request");
	sniff_free(sn, true);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct grpc_server *s = arg;
	struct grpc_sniff *sn = calloc(1, sizeof(*sn));

	(void)lev;
	if (!sn)
		goto fail;
	sn->s = s;
	sn->fd = fd;
	sn->salen = (socklen_t)salen < sizeof(sn->sa) ? (socklen_t)salen
						      : sizeof(sn->sa);
	memcpy(&sn->sa, sa, sn->salen);
	sn->deadline_ms = mono_ms() + s->cfg.handshake_timeout_ms;
	LIST_INSERT_HEAD(&s->sniffs, sn, link);
	if (sniff_arm(sn, false)) {
		sniff_free(sn, true);
		log_warn("grpc: out of memory accepting a connection");
	}
	return;
fail:
	log_warn("grpc: out of memory accepting a connection");
	close(fd);
}

static void accept_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	evconnlistener_enable(arg);
}

/* EMFILE, ENFILE, ENOBUFS, ENOMEM: the pending connection stays in the
 * backlog and the listener would fire again at once, so pause it. */
static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct grpc_server *s = arg;
	struct timeval tv = { 0, ACCEPT_RETRY_MSEC * 1000 };
	size_t i;

	log_warn("grpc: accept: %s; pausing %d ms", strerror(errno),
		 ACCEPT_RETRY_MSEC);
	for (i = 0; i < s->n_lis; i++) {
		if (s->lis[i].lev == lev) {
			evconnlistener_disable(lev);
			evtimer_add(s->lis[i].retry, &tv);
		}
	}
}

/* ---- the evhttp hand-off ---------------------------------------------- */

/* libevent has no public "serve this accepted fd" call (evhttp_get_request
 * is static in http.c). Its only entry is the accept callback that
 * evhttp_bind_listener installs on a listener. So we bind evhttp to a
 * disabled, never-listening listener and call that callback ourselves with
 * our fd, as the listener would after accept(). struct evconnlistener is
 * opaque: we find the callback as the pointer two slots before user_data
 * (cb, errorcb, user_data are consecutive in every libevent 2.x), and
 * check what we found: user_data must be the evhttp and errorcb NULL.
 * If the layout ever differs, HTTP/1.1 is refused with an error logged,
 * and HTTP/2 keeps working. */
static int server_hook_http(struct grpc_server *s)
{
	void *slots[8];
	int fd, i;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	s->http_lev = evconnlistener_new(s->base, NULL, NULL,
					 LEV_OPT_CLOSE_ON_FREE |
						 LEV_OPT_DISABLED,
					 0, fd);
	if (!s->http_lev) {
		close(fd);
		return -ENOMEM;
	}
	/* From here evhttp owns the listener (freed by evhttp_free). */
	if (!evhttp_bind_listener(s->http, s->http_lev)) {
		evconnlistener_free(s->http_lev);
		s->http_lev = NULL;
		return -ENOMEM;
	}
	memcpy(slots, s->http_lev, sizeof(slots));
	for (i = 2; i < 8; i++) {
		if (slots[i] == s->http && slots[i - 1] == NULL &&
		    slots[i - 2] != NULL) {
			memcpy(&s->http_accept, &slots[i - 2],
			       sizeof(s->http_accept));
			return 0;
		}
	}
	log_error("grpc: cannot hook evhttp on this libevent; HTTP/1.1 "
		  "requests will be refused");
	return 0;
}

/* ---- server ----------------------------------------------------------- */

int grpc_server_create(struct event_base *base,
		       const struct grpc_server_config *cfg,
		       struct grpc_server **out)
{
	struct grpc_server *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->base = base;
	if (cfg)
		s->cfg = *cfg;
	if (!s->cfg.max_recv_bytes)
		s->cfg.max_recv_bytes = GRPC_DEFAULT_MAX_RECV_BYTES;
	if (s->cfg.max_recv_bytes > UINT32_MAX)
		s->cfg.max_recv_bytes = UINT32_MAX;
	if (!s->cfg.max_concurrent_streams ||
	    s->cfg.max_concurrent_streams == UINT32_MAX)
		s->cfg.max_concurrent_streams = GRPC_DEFAULT_MAX_STREAMS;
	if (s->cfg.max_concurrent_streams > GRPC_MAX_STREAMS_CAP)
		s->cfg.max_concurrent_streams = GRPC_MAX_STREAMS_CAP;
	if (!s->cfg.handshake_timeout_ms)
		s->cfg.handshake_timeout_ms = GRPC_DEFAULT_HANDSHAKE_MS;
	LIST_INIT(&s->sniffs);
	LIST_INIT(&s->conns);
	s->http = evhttp_new(base);
	if (!s->http || server_hook_http(s)) {
		if (s->http)
			evhttp_free(s->http);
		free(s);
		return -ENOMEM;
	}
	*out = s;
	return 0;
}

void grpc_server_destroy(struct grpc_server *s)
{
	size_t i;

	if (!s)
		return;
	for (i = 0; i < s->n_lis; i++) {
		evconnlistener_free(s->lis[i].lev);
		event_free(s->lis[i].retry);
	}
	free(s->lis);
	while (!LIST_EMPTY(&s->sniffs))
		sniff_free(LIST_FIRST(&s->sniffs), true);
	while (!LIST_EMPTY(&s->conns))
		h2conn_free(LIST_FIRST(&s->conns));
	evhttp_free(s->http);
	for (i = 0; i < s->n_methods; i++) {
		free(s->methods[i]->path);
		free(s->methods[i]);
	}
	free(s->methods);
	free(s);
}

static int listen_addr(struct grpc_server *s, const struct addrinfo *ai,
		       int *fd_out)
{
	int fd, one = 1, err;

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK |
					   SOCK_CLOEXEC, ai->ai_protocol);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 1024)) {
		err = -errno;
		close(fd);
		return err;
	}
	(void)s;
	*fd_out = fd;
	return 0;
}

static uint16_t fd_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len))
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int grpc_server_listen(struct grpc_server *s, const char *host,
		       uint16_t port)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE,
				  .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *res = NULL, *ai;
	struct grpc_listener *nl, *l = NULL;
	char ps[8];
	int fd = -1, rv;

	if (!host || !*host)
		host = "0.0.0.0";
	snprintf(ps, sizeof(ps), "%u", port);
	rv = getaddrinfo(host, ps, &hints, &res);
	if (rv)
		return rv == EAI_MEMORY ? -ENOMEM : -ENOENT;
	rv = -EADDRNOTAVAIL;
	for (ai = res; ai; ai = ai->ai_next)
		if ((rv = listen_addr(s, ai, &fd)) == 0)
			break;
	freeaddrinfo(res);
	if (rv)
		return rv;
	nl = realloc(s->lis, (s->n_lis + 1) * sizeof(*nl));
	if (!nl)
		goto fail;
	s->lis = nl;
	l = &nl[s->n_lis];
	l->lev = evconnlistener_new(s->base, accept_cb, s,
				    LEV_OPT_CLOSE_ON_FREE, -1, fd);
	if (!l->lev)
		goto fail;
	fd = -1; /* the listener owns it now */
	l->retry = evtimer_new(s->base, accept_resume_cb, l->lev);
	if (!l->retry)
		goto fail;
	evconnlistener_set_error_cb(l->lev, accept_error_cb);
	s->n_lis++;
	s->port = fd_port(evconnlistener_get_fd(l->lev));
	return 0;
fail:
	if (l && l->lev)
		evconnlistener_free(l->lev);
	if (fd >= 0)
		close(fd);
	return -ENOMEM;
}

uint16_t grpc_server_port(const struct grpc_server *s)
{
	return s->port;
}

struct evhttp *grpc_server_http(struct grpc_server *s)
{
	return s->http;
}

/* ---- registry --------------------------------------------------------- */

const struct grpc_method *grpc_server_lookup(const struct grpc_server *s,
					     const char *path)
{
	size_t i;

	if (!path)
		return NULL;
	for (i = 0; i < s->n_methods; i++)
		if (strcmp(s->methods[i]->path, path) == 0)
			return s->methods[i];
	return NULL;
}

bool grpc_server_has_service(const struct grpc_server *s, const char *svc,
			     size_t svc_len)
{
	size_t i;

	for (i = 0; i < s->n_methods; i++) {
		const char *p = s->methods[i]->path;

		if (strncmp(p + 1, svc, svc_len) == 0 && p[1 + svc_len] == '/')
			return true;
	}
	return false;
}

static int server_register(struct grpc_server *s,
			   const struct grpc_method *m)
{
	const char *svc, *meth;
	size_t sl, ml;
	struct grpc_method *nm, **na;

	if (grpc_wire_split_path(m->path, &svc, &sl, &meth, &ml))
		return -EINVAL;
	if (grpc_server_lookup(s, m->path))
		return -EEXIST;
	if (s->n_methods == s->cap_methods) {
		size_t cap = s->cap_methods ? s->cap_methods * 2 : 16;

		na = realloc(s->methods, cap * sizeof(*na));
		if (!na)
			return -ENOMEM;
		s->methods = na;
		s->cap_methods = cap;
	}
	/* One allocation per method: calls keep pointers to it. */
	nm = malloc(sizeof(*nm));
	if (!nm)
		return -ENOMEM;
	*nm = *m;
	nm->path = strdup(m->path);
	if (!nm->path) {
		free(nm);
		return -ENOMEM;
	}
	s->methods[s->n_methods++] = nm;
	return 0;
}

int grpc_server_register_unary(struct grpc_server *s, const char *path,
			       grpc_unary_fn fn, void *ctx)
{
	struct grpc_method m = { .path = (char *)path, .unary = fn,
				 .ctx = ctx };

	if (!fn)
		return -EINVAL;
	return server_register(s, &m);
}

int grpc_server_register_stream(struct grpc_server *s, const char *path,
				const struct grpc_stream_ops *ops, void *ctx)
{
	struct grpc_method m = { .path = (char *)path, .stream = true,
				 .ctx = ctx };

	if (!ops || !ops->open || !ops->message || !ops->close)
		return -EINVAL;
	m.ops = *ops;
	return server_register(s, &m);
}
