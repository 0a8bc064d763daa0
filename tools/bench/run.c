/* run: cairn-bench's event loop — connections, clients and phases.
 *
 * Everything runs on one libevent loop thread. A client is one request in
 * flight at a time: when its response completes (done()), it records the
 * latency and at once sends its next request on the same connection, so
 * cfg->clients requests are always in flight, spread over cfg->conns
 * HTTP/2 connections as concurrent streams.
 *
 * A run has up to two phases, each with its own result: PRELOAD (keys
 * 0..preload-1 in txns of cfg->batch puts) then WORK (the workload).
 *
 *   phase_start --> ISSUING --(limit reached | --duration timer)-->
 *     DRAINING --(inflight == 0)--> loop break --> phase done
 *   DRAINING --(drain timeout | every conn dead | stall)--> loop break,
 *     res->aborted = 1
 *
 * Invariants:
 *   1. r->inflight == number of clients with a request submitted and not
 *      completed == sum of h2c_inflight() over the connections.
 *   2. r->issued <= r->limit; a request is counted in res->requests only
 *      once it completed (errors included).
 *   3. The hot path (done() -> issue()) allocates nothing of its own:
 *      the key is patched into the client's pre-encoded template.
 */
#include "tools/bench/bench.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>

#include "tools/bench/h2c.h"
#include "tools/bench/reqgen.h"

enum phase { PH_PRELOAD, PH_WORK };

struct client {
	struct h2c_req req; /* the request in flight */
	struct run *run;
	struct h2c_conn *conn;
	struct reqgen_tmpl t[2]; /* [0] main, [1] mixed: the put */
	unsigned nt;
	uint64_t t0;	/* ns, when the request was submitted */
	uint64_t nkeys; /* keys in the request in flight */
	int busy;
};

struct run {
	const struct bench_cfg *cfg;
	struct event_base *base;
	struct h2c_conn **conns;
	unsigned nconns;
	struct client *cl;
	unsigned ncl;
	enum phase phase;
	struct bench_result *res;
	uint64_t limit; /* requests this phase may send */
	uint64_t issued;
	uint64_t inflight;
	uint64_t next_key; /* sequential keys and preload batches */
	uint64_t rng;	   /* xorshift64* state */
	int stopping;
	uint64_t start_ns, last_done_ns;
	uint64_t tick_count, tick_done;
	struct event *tick, *stop;
	struct rusage ru0;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng_next(struct run *r)
{
	r->rng ^= r->rng >> 12;
	r->rng ^= r->rng << 25;
	r->rng ^= r->rng >> 27;
	return r->rng * 0x2545F4914F6CDD1DULL;
}

static uint64_t pick_key(struct run *r)
{
	if (r->cfg->sequential)
		return r->next_key++ % r->cfg->key_space;
	return rng_next(r) % r->cfg->key_space;
}

/* Preload: the next batch into c->t[0] (rebuilt smaller for the last). */
static int prep_preload(struct run *r, struct client *c)
{
	const struct bench_cfg *cfg = r->cfg;
	uint64_t left = cfg->preload - r->next_key;
	unsigned n = left < cfg->batch ? (unsigned)left : cfg->batch, i;
	struct reqgen_spec s = {
		.kind = REQGEN_TXN_PUT,
		.prefix = cfg->prefix,
		.key_size = cfg->key_size,
		.val_size = cfg->val_size,
		.nkeys = n,
	};

	if (n != c->t[0].nkeys) {
		reqgen_free(&c->t[0]);
		if (reqgen_build(&c->t[0], &s))
			return -ENOMEM;
	}
	for (i = 0; i < n; i++)
		reqgen_set_key(&c->t[0], i, r->next_key++);
	c->nkeys = n;
	return 0;
}

/* Send c's next request; 0 if it went, else c stays idle. */
static int issue(struct client *c)
{
	struct run *r = c->run;
	struct reqgen_tmpl *t = &c->t[0];

	if (r->stopping || r->issued >= r->limit)
		return -1;
	if (r->phase == PH_PRELOAD) {
		if (prep_preload(r, c))
			return -1;
	} else {
		if (c->nt == 2 &&
		    (double)(rng_next(r) >> 11) * 0x1p-53 >= r->cfg->read_ratio)
			t = &c->t[1];
		reqgen_set_key(t, 0, pick_key(r));
		c->nkeys = 1;
	}
	c->req.body = t->buf;
	c->req.body_len = t->len;
	c->t0 = now_ns();
	if (h2c_submit(c->conn, t->path, &c->req))
		return -1;
	c->busy = 1;
	r->issued++;
	r->inflight++;
	return 0;
}

static void count_status(struct bench_result *res, const struct h2c_req *q)
{
	if (q->grpc_status == 0)
		return;
	res->errors++;
	if (q->grpc_status == H2C_TRANSPORT)
		res->transport++;
	else
		res->by_status[q->grpc_status]++;
	if (!res->first_error[0])
		snprintf(res->first_error, sizeof(res->first_error), "%s%s%s",
			 q->grpc_status == H2C_TRANSPORT
				 ? ""
				 : bench_status_name(q->grpc_status),
			 q->grpc_status == H2C_TRANSPORT ? "" : ": ", q->msg);
}

static void done(void *arg, struct h2c_req *q)
{
	struct client *c =
		(struct client *)((char *)q - offsetof(struct client, req));
	struct run *r = arg;
	uint64_t t = now_ns();

	c->busy = 0;
	r->inflight--;
	r->last_done_ns = t;
	hist_record(&r->res->lat, t - c->t0);
	r->res->requests++;
	r->res->resp_bytes += q->resp_bytes;
	if (!q->grpc_status)
		r->res->keys += c->nkeys;
	count_status(r->res, q);
	if (issue(c) && !r->inflight)
		event_base_loopbreak(r->base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	uint64_t done_now = r->res->requests;
	double secs;

	(void)fd;
	(void)what;
	r->tick_count++;
	secs = (double)(now_ns() - r->start_ns) / 1e9;
	if (!r->cfg->quiet)
		fprintf(stderr,
			"[%6.1fs] %s: %llu done, %llu/s, %llu errors, "
			"%llu in flight\n",
			secs, r->res->name, (unsigned long long)done_now,
			(unsigned long long)(done_now - r->tick_done),
			(unsigned long long)r->res->errors,
			(unsigned long long)r->inflight);
	r->tick_done = done_now;
	/* Bounded waits: give up when nothing completed for drain_ms. */
	if (r->inflight &&
	    now_ns() - r->last_done_ns > r->cfg->drain_ms * 1000000u) {
		fprintf(stderr,
			"cairn-bench: no response for %llu ms with %llu "
			"in flight; giving up\n",
			(unsigned long long)r->cfg->drain_ms,
			(unsigned long long)r->inflight);
		r->res->aborted = 1;
		event_base_loopbreak(r->base);
	}
}

/* --duration is over: stop sending; the last responses drain. */
static void on_stop(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	(void)fd;
	(void)what;
	r->stopping = 1;
	if (!r->inflight)
		event_base_loopbreak(r->base);
}

static int build_templates(struct run *r, struct client *c)
{
	const struct bench_cfg *cfg = r->cfg;
	struct reqgen_spec s = {
		.prefix = cfg->prefix,
		.key_size = cfg->key_size,
		.val_size = cfg->val_size,
		.serializable = cfg->serializable,
		.nkeys = 1,
	};
	int rc;

	c->nt = 1;
	switch (cfg->workload) {
	case BENCH_PUT:
		s.kind = REQGEN_PUT;
		break;
	case BENCH_RANGE:
		s.kind = REQGEN_RANGE;
		break;
	case BENCH_TXN_PUT:
		s.kind = REQGEN_TXN_PUT;
		break;
	case BENCH_DELETE:
		s.kind = REQGEN_DELETE;
		break;
	case BENCH_MIXED:
		s.kind = REQGEN_RANGE;
		c->nt = 2;
		break;
	default:
		return -EINVAL;
	}
	rc = reqgen_build(&c->t[0], &s);
	if (rc || c->nt == 1)
		return rc;
	s.kind = REQGEN_PUT;
	return reqgen_build(&c->t[1], &s);
}

static void free_templates(struct run *r)
{
	unsigned i;

	for (i = 0; i < r->ncl; i++) {
		reqgen_free(&r->cl[i].t[0]);
		reqgen_free(&r->cl[i].t[1]);
		r->cl[i].t[0].nkeys = 0;
	}
}

static double tv_secs(const struct timeval *a, const struct timeval *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_usec - a->tv_usec) / 1e6;
}

/* Clients queued behind the server's stream limit measure that queue too:
 * say so, and how to avoid it. */
static void warn_streams(const struct run *r)
{
	unsigned per_conn = (r->ncl + r->nconns - 1) / r->nconns;
	uint32_t max = h2c_peer_max_streams(r->conns[0]);

	if (!r->cfg->quiet && per_conn > max)
		fprintf(stderr,
			"cairn-bench: warning: %u clients per connection "
			"but the server allows %u streams per connection; the "
			"rest queued in the bench (use more --conns)\n",
			per_conn, max);
}

static void phase_finish(struct run *r)
{
	struct rusage ru1;
	unsigned i;
	const char *why;

	getrusage(RUSAGE_SELF, &ru1);
	r->res->cpu_user = tv_secs(&r->ru0.ru_utime, &ru1.ru_utime);
	r->res->cpu_sys = tv_secs(&r->ru0.ru_stime, &ru1.ru_stime);
	r->res->seconds = (double)(now_ns() - r->start_ns) / 1e9;
	r->res->unfinished = r->inflight;
	if (r->inflight || (!r->stopping && r->issued < r->limit))
		r->res->aborted = 1;
	for (i = 0; i < r->nconns; i++) {
		if (!h2c_alive(r->conns[i], &why) && !r->res->first_error[0])
			snprintf(r->res->first_error,
				 sizeof(r->res->first_error), "%s", why);
	}
	evtimer_del(r->tick);
	evtimer_del(r->stop);
	free_templates(r);
	warn_streams(r);
}

static int phase_run(struct run *r, enum phase ph, struct bench_result *res)
{
	const struct bench_cfg *cfg = r->cfg;
	struct timeval one = {1, 0}, dur;
	unsigned i;
	int rc;

	memset(res, 0, sizeof(*res));
	hist_reset(&res->lat);
	res->name = bench_workload_name(ph == PH_PRELOAD ? BENCH_NONE
							 : cfg->workload);
	r->phase = ph;
	r->res = res;
	r->issued = r->inflight = r->next_key = r->tick_done = 0;
	r->stopping = 0;
	if (ph == PH_PRELOAD)
		r->limit = (cfg->preload + cfg->batch - 1) / cfg->batch;
	else
		r->limit = cfg->total ? cfg->total : UINT64_MAX;
	for (i = 0; ph == PH_WORK && i < r->ncl; i++) {
		rc = build_templates(r, &r->cl[i]);
		if (rc) {
			free_templates(r);
			return rc;
		}
	}
	getrusage(RUSAGE_SELF, &r->ru0);
	event_base_update_cache_time(r->base); /* timers count from now */
	r->start_ns = r->last_done_ns = now_ns();
	evtimer_add(r->tick, &one);
	if (ph == PH_WORK && cfg->duration_ms) {
		dur.tv_sec = (time_t)(cfg->duration_ms / 1000);
		dur.tv_usec = (suseconds_t)(cfg->duration_ms % 1000) * 1000;
		evtimer_add(r->stop, &dur);
	}
	for (i = 0; i < r->ncl; i++)
		issue(&r->cl[i]);
	for (i = 0; i < r->nconns; i++)
		h2c_flush(r->conns[i]);
	if (r->inflight)
		event_base_dispatch(r->base);
	phase_finish(r);
	return 0;
}

static int run_connect(struct run *r)
{
	const struct bench_cfg *cfg = r->cfg;
	const struct bench_endpoint *ep;
	unsigned i;
	int rc;

	for (i = 0; i < r->nconns; i++) {
		ep = &cfg->ep[i % cfg->nep];
		rc = h2c_connect(r->base, ep->host, ep->port,
				 cfg->connect_timeout_ms, done, r,
				 &r->conns[i]);
		if (rc) {
			fprintf(stderr, "cairn-bench: connect %s:%s: %s\n",
				ep->host, ep->port, strerror(-rc));
			return rc;
		}
	}
	for (i = 0; i < r->ncl; i++) {
		r->cl[i].run = r;
		r->cl[i].conn = r->conns[i % r->nconns];
	}
	return 0;
}

static void run_free(struct run *r)
{
	unsigned i;

	if (r->cl)
		free_templates(r);
	for (i = 0; r->conns && i < r->nconns; i++)
		h2c_free(r->conns[i]);
	h2c_pool_trim();
	free(r->conns);
	free(r->cl);
	if (r->tick)
		event_free(r->tick);
	if (r->stop)
		event_free(r->stop);
	if (r->base)
		event_base_free(r->base);
}

int bench_run(const struct bench_cfg *cfg, struct bench_result *pre,
	      struct bench_result *res)
{
	struct run r;
	int rc = -ENOMEM;

	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.rng = cfg->seed * 0x9E3779B97F4A7C15ULL + 0x2545F4914F6CDD1DULL;
	r.nconns = cfg->conns;
	r.ncl = cfg->clients;
	r.base = event_base_new();
	r.conns = calloc(r.nconns, sizeof(*r.conns));
	r.cl = calloc(r.ncl, sizeof(*r.cl));
	if (!r.base || !r.conns || !r.cl)
		goto fail;
	r.tick = event_new(r.base, -1, EV_PERSIST, on_tick, &r);
	r.stop = evtimer_new(r.base, on_stop, &r);
	if (!r.tick || !r.stop)
		goto fail;
	rc = run_connect(&r);
	if (rc)
		goto fail;
	if (cfg->preload) {
		rc = phase_run(&r, PH_PRELOAD, pre);
		if (rc || pre->aborted)
			goto fail;
	}
	if (cfg->workload != BENCH_NONE)
		rc = phase_run(&r, PH_WORK, res);
fail:
	if (rc == -ENOMEM)
		fprintf(stderr, "cairn-bench: out of memory\n");
	run_free(&r);
	return rc;
}
