/* watchservice: the Watch stream over the watch hub (see watchservice.h).
 *
 * One struct wsvc_call per gRPC stream, the call's user pointer; it owns
 * the hub stream. The call is ended (and both freed) on the client's
 * half-close or the stream's death; the hub never calls the sink after
 * watch_stream_destroy.
 */
#include "net/watchservice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/server.h"
#include "core/util/log.h"
#include "core/watch.h"
#include "net/clusterservice.h"
#include "net/grpc.h"
#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"
#include "net/rpcreply.h"

#define WSVC_GRPC_OVERHEAD (512 * 1024)

struct wsvc {
	struct server *srv;
	struct watch_hub *hub;
	size_t max_bytes; /* fragment size: --max-request-bytes */
	struct pbu_event *evs;
	struct pbu_kv *prevs;
	size_t evs_cap;
};

struct wsvc_call {
	struct wsvc *w;
	struct grpc_call *call;
	struct watch_stream *ws;
};

/* ---- responses --------------------------------------------------------- */

static int evs_reserve(struct wsvc *w, size_t n)
{
	struct pbu_event *e;
	struct pbu_kv *p;
	size_t nc = w->evs_cap ? w->evs_cap : 16;

	if (n <= w->evs_cap)
		return 0;
	while (nc < n)
		nc *= 2;
	e = realloc(w->evs, nc * sizeof(*e));
	if (e)
		w->evs = e;
	p = realloc(w->prevs, nc * sizeof(*p));
	if (p)
		w->prevs = p;
	if (!e || !p)
		return -ENOMEM;
	w->evs_cap = nc;
	return 0;
}

static struct pbu_kv to_pbu(const struct mvcc_kv *kv)
{
	struct pbu_kv p = {kv->key,	  kv->key_len,	  kv->value,
			   kv->value_len, kv->create_rev, kv->mod_rev,
			   kv->version,	  kv->lease};
	return p;
}

/* The encoded size of resp with events[from, to). */
static int part_size(struct wsvc_call *c, etcdserverpb_WatchResponse *resp,
		     size_t from, size_t to, size_t *len)
{
	struct pbu_list l;

	pbu_set_events(&resp->events, &l, c->w->evs + from, to - from);
	return pbu_encoded_size(&etcdserverpb_WatchResponse_msg, resp, len);
}

static int encode_send(struct wsvc_call *c, etcdserverpb_WatchResponse *resp,
		       size_t from, size_t to)
{
	struct pbu_list l;
	uint8_t *buf = NULL;
	size_t len = 0;
	int err;

	pbu_set_events(&resp->events, &l, c->w->evs + from, to - from);
	err = pbu_encode_alloc(&etcdserverpb_WatchResponse_msg, resp, &buf,
			       &len);
	if (err < 0)
		return err;
	err = grpc_call_send(c->call, buf, len);
	free(buf);
	return err;
}

/* etcd's sendFragments: whole if small or a single event; else parts of
 * under max_bytes (at least one event each), fragment on all but the
 * last. */
static int send_fragments(struct wsvc_call *c, etcdserverpb_WatchResponse *resp,
			  size_t n)
{
	size_t len, base, one, i = 0;
	int err, last = 0;

	if ((err = part_size(c, resp, 0, n, &len)) < 0)
		return err;
	if (len < c->w->max_bytes || n < 2)
		return encode_send(c, resp, 0, n);
	while (i < n) {
		size_t j = i + 1;

		if ((err = part_size(c, resp, i, i, &base)) < 0 ||
		    (err = part_size(c, resp, i, j, &len)) < 0)
			return err;
		/* grow the part while it stays under the limit; a repeated
		 * field's size is the sum of its elements', so each event is
		 * sized once, alone (base: the response without events) */
		while (j < n) {
			if ((err = part_size(c, resp, j, j + 1, &one)) < 0)
				return err;
			if (len + (one - base) >= c->w->max_bytes)
				break;
			len += one - base;
			j++;
		}
		resp->fragment = j < n;
		err = encode_send(c, resp, i, j);
		if (err == -EPIPE || err == -ENOMEM || err == -EINVAL)
			return err;
		if (err == -EAGAIN)
			last = err;
		i = j;
	}
	return last;
}

static int wsvc_send(void *arg, const struct watch_resp *r)
{
	struct wsvc_call *c = arg;
	struct wsvc *w = c->w;
	etcdserverpb_WatchResponse resp = etcdserverpb_WatchResponse_init_zero;

	if (!grpc_call_alive(c->call))
		return -EPIPE;
	if (evs_reserve(w, r->n) < 0)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++) {
		w->evs[i].type = r->events[i].type;
		w->evs[i].kv = to_pbu(&r->events[i].kv);
		w->evs[i].prev_kv = NULL;
		if (r->events[i].prev) {
			w->prevs[i] = to_pbu(r->events[i].prev);
			w->evs[i].prev_kv = &w->prevs[i];
		}
	}
	resp.has_header = true;
	resp.header = apply_header_at(server_apply_ctx(w->srv), r->rev);
	resp.watch_id = r->watch_id;
	resp.created = r->created;
	resp.canceled = r->canceled;
	resp.compact_revision = r->compact_rev;
	resp.cancel_reason = (char *)r->cancel_reason;
	if (r->fragment && r->n > 1)
		return send_fragments(c, &resp, r->n);
	return encode_send(c, &resp, 0, r->n);
}

static void wsvc_writable(struct grpc_call *call, void *arg)
{
	struct wsvc_call *c = arg;

	(void)call;
	watch_stream_writable(c->ws);
}

/* ---- requests ---------------------------------------------------------- */

static int on_create(struct wsvc_call *c,
		     const etcdserverpb_WatchCreateRequest *cr)
{
	struct watch_req r = {0};

	r.key = cr->key.p;
	r.klen = cr->key.n;
	/* etcd: range_end "\0" means every key >= key */
	if (cr->range_end.n == 1 && cr->range_end.p[0] == 0) {
		r.end = (const uint8_t *)"";
	} else if (cr->range_end.n > 0) {
		r.end = cr->range_end.p;
		r.elen = cr->range_end.n;
	}
	r.start_rev = cr->start_revision;
	r.watch_id = cr->watch_id;
	r.prev_kv = cr->prev_kv;
	r.progress_notify = cr->progress_notify;
	r.fragment = cr->fragment;
	for (pb_size_t i = 0; i < cr->filters_count; i++) {
		if (cr->filters[i] ==
		    etcdserverpb_WatchCreateRequest_FilterType_NOPUT)
			r.noput = true;
		else if (cr->filters[i] ==
			 etcdserverpb_WatchCreateRequest_FilterType_NODELETE)
			r.nodelete = true;
	}
	return watch_stream_watch(c->ws, &r, NULL);
}

static void on_message(struct grpc_call *call, const uint8_t *msg, size_t len,
		       void *ctx)
{
	struct wsvc_call *c = grpc_call_get_user(call);
	etcdserverpb_WatchRequest req = etcdserverpb_WatchRequest_init_zero;
	int err;

	(void)ctx;
	if (!c)
		return;
	err = pbu_decode(&etcdserverpb_WatchRequest_msg, &req, msg, len);
	if (err < 0) {
		log_debug("watch: malformed request from %s",
			  grpc_call_peer(call));
		return;
	}
	switch (req.which_request_union) {
	case etcdserverpb_WatchRequest_create_request_tag:
		err = on_create(c, &req.request_union.create_request);
		break;
	case etcdserverpb_WatchRequest_cancel_request_tag:
		/* an unknown id gets no response, as etcd */
		watch_stream_cancel(c->ws,
				    req.request_union.cancel_request.watch_id);
		break;
	case etcdserverpb_WatchRequest_progress_request_tag:
		watch_stream_progress(c->ws);
		break;
	default:
		break; /* etcd ignores an empty request */
	}
	pb_release(&etcdserverpb_WatchRequest_msg, &req);
	if (err == -ENOMEM) {
		grpc_call_set_user(call, NULL);
		watch_stream_destroy(c->ws);
		free(c);
		rpc_fail(call, -ENOMEM);
	}
}

static void on_open(struct grpc_call *call, void *ctx)
{
	struct wsvc_call *c;

	/* etcd serves no watch on a learner (its stream interceptor) */
	if (cluster_refuse(((struct wsvc *)ctx)->srv, call))
		return;
	c = calloc(1, sizeof(*c));
	if (!c || watch_stream_create(((struct wsvc *)ctx)->hub, wsvc_send, c,
				      &c->ws) < 0) {
		free(c);
		rpc_fail(call, -ENOMEM);
		return;
	}
	c->w = ctx;
	c->call = call;
	grpc_call_set_user(call, c);
	grpc_call_set_writable_cb(call, wsvc_writable, c);
}

/* Half-close or death: etcd ends the stream when the client stops
 * sending, so both end the call here. */
static void on_close(struct grpc_call *call, void *ctx)
{
	struct wsvc_call *c = grpc_call_get_user(call);

	(void)ctx;
	grpc_call_set_user(call, NULL);
	grpc_call_set_writable_cb(call, NULL, NULL);
	if (c) {
		watch_stream_destroy(c->ws);
		free(c);
	}
	grpc_call_finish(call, 0, NULL);
}

/* ---- registration ------------------------------------------------------ */

/* A snapshot from the leader replaced the store: watchers resync. */
static void wsvc_restore(void *arg)
{
	struct wsvc *w = arg;

	watch_hub_restore(w->hub);
}

static void wsvc_free(void *arg)
{
	struct wsvc *w = arg;

	watch_hub_destroy(w->hub);
	free(w->evs);
	free(w->prevs);
	free(w);
}

int watchservice_register(struct grpc_server *gs, struct server *srv)
{
	static const struct grpc_stream_ops ops = {on_open, on_message,
						   on_close};
	struct watch_hub_config cfg = {0};
	struct wsvc *w = calloc(1, sizeof(*w));
	int err = -ENOMEM;

	if (!w)
		return -ENOMEM;
	w->srv = srv;
	/* etcd 3.4 fragments at --max-request-bytes plus its grpc overhead
	 * allowance (v3rpc/watch.go) */
	w->max_bytes = server_config(srv)->max_request_bytes;
	if (!w->max_bytes)
		w->max_bytes = 1572864; /* etcd's default, 1.5 MiB */
	w->max_bytes += WSVC_GRPC_OVERHEAD;
	cfg.progress_ms = server_config(srv)->watch_progress_notify_ms;
	if ((err = watch_hub_create(server_event_base(srv), server_mvcc(srv),
				    &cfg, &w->hub)) < 0)
		goto fail;
	if ((err = server_on_change(srv, watch_hub_observe, w->hub)) < 0)
		goto fail;
	if ((err = server_on_close(srv, wsvc_free, w)) < 0) {
		/* the change hook stays (nothing removes one), so w does */
		log_error("watch: no server hook slot left");
		return err;
	}
	if ((err = server_on_restore(srv, wsvc_restore, w)) < 0)
		log_warn("watch: no restore hook (%s): watchers will not "
			 "resync after a snapshot install",
			 cairn_strerror(err));
	return grpc_server_register_stream(gs, "/etcdserverpb.Watch/Watch",
					   &ops, w);
fail:
	wsvc_free(w);
	return err;
}
