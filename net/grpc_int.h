/* grpc_int: what grpc.c (server, listeners, protocol sniffing, routing)
 * and h2conn.c (one HTTP/2 connection and its calls) share. Not a public
 * contract: only net/grpc*.c and net/h2conn.c include it.
 */
#ifndef CAIRN_NET_GRPC_INT_H
#define CAIRN_NET_GRPC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "net/grpc.h"

struct h2conn;

struct grpc_method {
	char *path;
	bool stream;
	grpc_unary_fn unary;
	struct grpc_stream_ops ops;
	void *ctx;
};

struct grpc_listener {
	struct evconnlistener *lev;
	struct event *retry; /* re-enables lev after an accept error */
};

struct grpc_sniff;

struct grpc_server {
	struct event_base *base;
	struct grpc_server_config cfg; /* defaults filled in */
	struct evhttp *http;
	struct evconnlistener *http_lev; /* owned by http; never listens */
	void (*http_accept)(struct evconnlistener *, int, struct sockaddr *,
			    int, void *); /* evhttp's accept callback */
	struct grpc_listener *lis;
	size_t n_lis;
	uint16_t port;
	struct grpc_method **methods;
	size_t n_methods, cap_methods;
	LIST_HEAD(, grpc_sniff) sniffs;
	LIST_HEAD(, h2conn) conns;
};

/* The method registered for path, or NULL. */
const struct grpc_method *grpc_server_lookup(const struct grpc_server *s,
					     const char *path);

/* True when some registered path belongs to service svc (svc_len bytes). */
bool grpc_server_has_service(const struct grpc_server *s, const char *svc,
			     size_t svc_len);

/* Serve fd (connected, non-blocking; ownership passes in) as HTTP/2.
 * peer is copied. Returns 0, or -ENOMEM (fd closed then). */
int h2conn_start(struct grpc_server *s, int fd, const char *peer);

/* Free a connection now (never from inside its nghttp2 callbacks):
 * open calls become dead, streaming calls get ops->close. */
void h2conn_free(struct h2conn *c);

#endif
