/* testfault: the TEST-ONLY peer-traffic drop switch (testfault.h). */
#include "net/testfault.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/server.h"
#include "core/util/log.h"
#include "net/peer.h"

#define TESTFAULT_MAX_IDS 64
#define TESTFAULT_MAX_BODY 4096

struct testfault {
	struct server *srv;
	uint64_t ids[TESTFAULT_MAX_IDS];
	size_t n;
};

static bool listed(const struct testfault *tf, uint64_t id)
{
	for (size_t i = 0; i < tf->n; i++)
		if (tf->ids[i] == id)
			return true;
	return false;
}

/* The transport asks with from == us for what we send and to == us for
 * what we receive: one of the two ends listed cuts the message. */
static bool drop(void *arg, uint64_t from, uint64_t to)
{
	const struct testfault *tf = arg;

	return listed(tf, from) || listed(tf, to);
}

/* Parse "id,id,..." (hex, blanks allowed) into ids. Returns the count or
 * -EINVAL. */
static int parse_ids(char *body, uint64_t *ids)
{
	int n = 0;
	char *save = NULL;

	for (char *tok = strtok_r(body, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		char *end;
		unsigned long long v;

		tok += strspn(tok, " \t\r\n");
		if (!*tok)
			continue;
		errno = 0;
		v = strtoull(tok, &end, 16);
		end += strspn(end, " \t\r\n");
		if (errno || *end || v == 0 || n == TESTFAULT_MAX_IDS)
			return -EINVAL;
		ids[n++] = v;
	}
	return n;
}

static void reply(struct evhttp_request *req, int code, const char *reason,
		  const struct testfault *tf)
{
	struct evbuffer *b = evbuffer_new();

	if (!b) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	if (tf) {
		evbuffer_add_printf(b, "{\"drop\":[");
		for (size_t i = 0; i < tf->n; i++)
			evbuffer_add_printf(b, "%s\"%llx\"", i ? "," : "",
					    (unsigned long long)tf->ids[i]);
		evbuffer_add_printf(b, "]}\n");
	} else {
		evbuffer_add_printf(b, "{\"error\":\"%s\"}\n", reason);
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evhttp_send_reply(req, code, reason, b);
	evbuffer_free(b);
}

static void http_drop(struct evhttp_request *req, void *arg)
{
	struct testfault *tf = arg;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct peer_transport *t = server_peers(tf->srv);
	uint64_t ids[TESTFAULT_MAX_IDS];
	char body[TESTFAULT_MAX_BODY + 1];
	size_t len = evbuffer_get_length(in);
	int n;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_PUT) {
		reply(req, 405, "Method Not Allowed", NULL);
		return;
	}
	if (!t) {
		reply(req, 503, "Service Unavailable", NULL);
		return;
	}
	if (len > TESTFAULT_MAX_BODY) {
		reply(req, 400, "Bad Request", NULL);
		return;
	}
	evbuffer_remove(in, body, len);
	body[len] = '\0';
	if ((n = parse_ids(body, ids)) < 0) {
		reply(req, 400, "Bad Request", NULL);
		return;
	}
	memcpy(tf->ids, ids, sizeof(ids[0]) * (size_t)n);
	tf->n = (size_t)n;
	peer_set_drop_filter(t, tf->n ? drop : NULL, tf->n ? tf : NULL);
	log_warn("TEST FAULT: dropping peer traffic with %zu member(s)", tf->n);
	reply(req, 200, "OK", tf);
}

static void testfault_free(void *arg)
{
	struct testfault *tf = arg;
	struct peer_transport *t = server_peers(tf->srv);

	if (t)
		peer_set_drop_filter(t, NULL, NULL);
	free(tf);
}

int testfault_register(struct evhttp *http, struct server *srv)
{
	struct testfault *tf;
	int err;

	if (!http)
		return -EINVAL;
	if (!(tf = calloc(1, sizeof(*tf))))
		return -ENOMEM;
	tf->srv = srv;
	if ((err = server_on_close(srv, testfault_free, tf)) < 0) {
		free(tf);
		return err;
	}
	if (evhttp_set_cb(http, "/cairn/test/drop", http_drop, tf) < 0)
		return -ENOMEM; /* tf is freed by the close hook */
	log_warn("--experimental-test-faults: PUT /cairn/test/drop is enabled "
		 "(TEST ONLY)");
	return 0;
}
