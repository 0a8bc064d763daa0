/* cairn: an etcd-compatible, strongly consistent key-value server.
 *
 * main: parse the configuration, open the member, serve the client URLs on
 * one libevent loop, and shut down cleanly on SIGINT/SIGTERM.
 */
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/server.h"
#include "core/util/log.h"
#include "engines/engine.h"
#include "net/grpc.h"
#include "net/kvservice.h"
#include "net/snapshot.h"
#include "net/testfault.h"
#include "net/watchservice.h"
#include "net/leaseservice.h"

/* etcd's grpc server accepts this much beyond --max-request-bytes, so a
 * slightly larger request reaches the server's own size check. */
#define GRPC_OVERHEAD_BYTES (512 * 1024)

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	log_info("received %s, shutting down", strsignal((int)sig));
	event_base_loopexit(arg, NULL);
}

static void print_version(void)
{
	printf("cairn Version: %s\n", PACKAGE_VERSION);
	printf("etcd API Version: %s\n", CAIRN_ETCD_VERSION);
	printf("Storage engines:");
	for (const struct engine_ops *const *e = engine_list(); *e; e++)
		printf(" %s", (*e)->name);
	printf(" (default %s)\n", engine_default_name());
}

static int listen_all(struct grpc_server *gs, const struct config *c,
		      char *urls, size_t cap)
{
	size_t n = 0;

	urls[0] = '\0';
	for (size_t i = 0; i < c->n_listen_client_urls; i++) {
		const struct config_url *u = &c->listen_client_urls[i];
		int err;

		if (strcmp(u->scheme, "http") != 0) {
			log_error("--listen-client-urls %s://%s:%u: only http "
				  "is supported so far",
				  u->scheme, u->host, u->port);
			return -EPROTONOSUPPORT;
		}
		err = grpc_server_listen(gs, u->host, u->port);
		if (err < 0) {
			log_error("cannot listen on %s:%u: %s", u->host,
				  u->port, strerror(-err));
			return err;
		}
		n += (size_t)snprintf(urls + n, n < cap ? cap - n : 0,
				      "%shttp://%s:%u", i ? "," : "", u->host,
				      u->port);
	}
	return 0;
}

static int serve(struct config *c)
{
	struct grpc_server_config gcfg = {0};
	struct event_base *base = NULL;
	struct grpc_server *gs = NULL;
	struct server *srv = NULL;
	struct event *sigint = NULL, *sigterm = NULL;
	char err_msg[1024], urls[2048];
	int err = -ENOMEM;

	base = event_base_new();
	/* priority 0: sockets and timers; 1: the raft Ready batch */
	if (!base || event_base_priority_init(base, 2) < 0)
		goto out;
	err = server_open(base, c, &srv, err_msg, sizeof(err_msg));
	if (err < 0) {
		log_error("cannot start: %s", err_msg);
		goto out;
	}
	gcfg.max_recv_bytes = c->max_request_bytes + GRPC_OVERHEAD_BYTES;
	gcfg.max_concurrent_streams = (uint32_t)c->max_concurrent_streams;
	if ((err = grpc_server_create(base, &gcfg, &gs)) < 0 ||
	    (err = kvservice_register(gs, srv)) < 0 ||
	    (err = snapshot_register(gs, srv)) < 0 ||
	    (err = watchservice_register(gs, srv)) < 0 ||
	    (err = leaseservice_register(gs, srv)) < 0 ||
	    (c->test_faults &&
	     (err = testfault_register(grpc_server_http(gs), srv)) < 0) ||
	    (err = listen_all(gs, c, urls, sizeof(urls))) < 0)
		goto out;
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	if (!sigint || !sigterm || evsignal_add(sigint, NULL) < 0 ||
	    evsignal_add(sigterm, NULL) < 0) {
		err = -ENOMEM;
		goto out;
	}
	log_info("ready to serve client requests on %s (name %s, data dir %s, "
		 "engine %s)",
		 urls, c->name, c->data_dir, c->backend);
	event_base_dispatch(base);
	err = 0;
out:
	if (sigint)
		event_free(sigint);
	if (sigterm)
		event_free(sigterm);
	/* calls still waiting on the server become dead first, then the
	 * server fails its waiters into them */
	grpc_server_destroy(gs);
	server_close(srv);
	if (base)
		event_base_free(base);
	return err;
}

int main(int argc, char **argv)
{
	struct config c;
	char err_msg[1024];
	int err;

	signal(SIGPIPE, SIG_IGN);
	config_defaults(&c, engine_default_name());
	err = config_parse(&c, argc, argv, NULL, err_msg, sizeof(err_msg));
	if (err == 0 && !c.show_help && !c.show_version)
		err = config_validate(&c, err_msg, sizeof(err_msg));
	if (err < 0) {
		/* etcd: 2 for a bad command line, 1 for env/file/validation */
		fprintf(stderr, "cairn: %s\n", err_msg);
		config_free(&c);
		return err == -EINVAL ? 2 : 1;
	}
	if (c.show_help || c.show_version) {
		if (c.show_help)
			config_print_help(stdout);
		else
			print_version();
		config_free(&c);
		return 0;
	}
	log_set_level(config_log_level(&c));
	if (!engine_find(c.backend)) {
		fprintf(stderr, "cairn: invalid value \"%s\" for flag "
				"--backend: engines built:",
			c.backend);
		for (const struct engine_ops *const *e = engine_list(); *e; e++)
			fprintf(stderr, " %s", (*e)->name);
		fprintf(stderr, "\n");
		config_free(&c);
		return 2;
	}
	err = serve(&c);
	config_free(&c);
	return err < 0 ? 1 : 0;
}
