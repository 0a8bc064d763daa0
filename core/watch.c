/* watch: the watch hub (see watch.h for the shape).
 *
 * Invariants:
 *  1. A synced watcher w has had every matching event with revision <
 *     the revision being observed now either handed to its sink or queued
 *     on its stream; w->min_rev filters out what it must not see (a
 *     start_rev in the future, or what a catch-up already delivered).
 *  2. An unsynced watcher has had every matching event with revision <
 *     w->min_rev handed to its sink or queued, and nothing after; it is
 *     never given live events.
 *  3. A stream's queue is in revision order, holds at most
 *     queue_max_events entries and queue_max_bytes (a catch-up chunk may
 *     pass either by one revision), and is drained front to back: live
 *     events leave as one response per revision per watcher, a catch-up
 *     chunk as one response per watcher (etcd's unsynced batches), so
 *     each watcher sees its events in revision order.
 *  4. Catch-up runs only on an empty, unblocked queue, so queued history
 *     (revisions <= the current one) precedes every later live event.
 *  5. A watch_ev is shared by the queue entries that point to it and freed
 *     with the last one.
 *
 * Watcher states:
 *
 *   watch (start_rev 0 or future) ──► SYNCED ◄──── catch-up reached the
 *   watch (start_rev <= current) ──► UNSYNCED ─┘   current revision
 *                     SYNCED ── queue full ──► UNSYNCED (queued events
 *                                               dropped, min_rev = resume)
 *                   UNSYNCED ── min_rev < compact rev ──► canceled, freed
 */
#include "core/watch.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util/log.h"

/* One change, shared by the queue entries of every watcher it matched. */
struct watch_ev {
	int refs;
	int type;
	struct mvcc_kv kv;
	struct mvcc_kv prev;
	bool has_prev;
	uint8_t *prev_buf; /* prev's bytes (filled after a history scan) */
	size_t bytes;
	uint8_t data[]; /* kv key, kv value */
};

struct watcher {
	struct watch_stream *s;
	int64_t id;
	int64_t min_rev;
	uint8_t *key, *end; /* end NULL: one key; elen 0: from key */
	size_t klen, elen;
	bool synced, prev_kv, noput, nodelete, progress_notify, fragment;
	bool sent; /* an event left since the last progress tick */
	uint64_t stamp;
	struct watcher *snext, *sprev; /* the stream's watchers */
	struct watcher *inext, *iprev; /* hash chain or range list */
	size_t bucket;
};

struct wq_ent {
	struct watcher *w; /* NULL: consumed or canceled */
	struct watch_ev *ev;
	bool batch; /* from a catch-up chunk: sent per watcher, not per rev */
};

struct watch_stream {
	struct watch_hub *h; /* NULL once the hub is gone */
	watch_send_fn send;
	void *arg;
	struct watcher *watchers;
	size_t nunsynced;
	int64_t next_id;
	struct wq_ent *q;
	size_t qhead, qlen, qcap, qbytes;
	bool blocked, dead, progress_pending;
	bool client_ids; /* some id was client-chosen: auto ids must probe */
	struct watch_stream *next, *prev;
};

struct watch_hub {
	struct event_base *base;
	struct mvcc *m;
	struct watch_hub_config cfg;
	struct event *run_ev, *progress_ev;
	bool run_armed;
	struct watch_stream *streams;
	struct watcher **buckets; /* single-key watchers by key hash */
	size_t nbuckets, nkeyed;
	struct watcher *ranges; /* range and from-key watchers */
	size_t nwatchers, nunsynced;
	int64_t rev; /* the last revision observed (or mvcc's at creation) */
	uint64_t stamp;
	struct watch_event *scratch; /* one response's events */
	size_t scratch_cap;
};

/* ---- events ------------------------------------------------------------ */

static struct watch_ev *ev_make(int type, const struct mvcc_kv *kv,
				const struct mvcc_kv *prev)
{
	size_t n = kv->key_len + kv->value_len;
	struct watch_ev *ev;

	if (prev)
		n += prev->key_len + prev->value_len;
	ev = malloc(sizeof(*ev) + n);
	if (!ev)
		return NULL;
	ev->refs = 1;
	ev->type = type;
	ev->kv = *kv;
	ev->kv.key = ev->data;
	memcpy(ev->data, kv->key, kv->key_len);
	ev->kv.value = ev->data + kv->key_len;
	if (kv->value_len)
		memcpy(ev->data + kv->key_len, kv->value, kv->value_len);
	ev->has_prev = prev != NULL;
	ev->prev_buf = NULL;
	ev->bytes = sizeof(*ev) + n;
	if (prev) {
		uint8_t *p = ev->data + kv->key_len + kv->value_len;

		ev->prev = *prev;
		ev->prev.key = p;
		memcpy(p, prev->key, prev->key_len);
		ev->prev.value = p + prev->key_len;
		if (prev->value_len)
			memcpy(p + prev->key_len, prev->value, prev->value_len);
	}
	return ev;
}

static void ev_unref(struct watch_ev *ev)
{
	if (ev && --ev->refs == 0) {
		free(ev->prev_buf);
		free(ev);
	}
}

/* ---- matching index ---------------------------------------------------- */

static size_t key_hash(const uint8_t *k, size_t n)
{
	uint64_t x = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		x = (x ^ k[i]) * 1099511628211ull;
	return (size_t)x;
}

static bool watcher_matches(const struct watcher *w, const uint8_t *k, size_t n)
{
	size_t m;
	int c;

	if (!w->end)
		return n == w->klen && memcmp(k, w->key, n) == 0;
	m = n < w->klen ? n : w->klen;
	c = memcmp(k, w->key, m);
	if (c < 0 || (c == 0 && n < w->klen))
		return false; /* k < key */
	if (w->elen == 0)
		return true;
	m = n < w->elen ? n : w->elen;
	c = memcmp(k, w->end, m);
	return c < 0 || (c == 0 && n < w->elen);
}

static void list_push(struct watcher **head, struct watcher *w)
{
	w->iprev = NULL;
	w->inext = *head;
	if (*head)
		(*head)->iprev = w;
	*head = w;
}

static int index_grow(struct watch_hub *h)
{
	size_t nb = h->nbuckets ? h->nbuckets * 4 : 64;
	struct watcher **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < h->nbuckets; i++) {
		struct watcher *w = h->buckets[i], *next;

		for (; w; w = next) {
			next = w->inext;
			w->bucket = key_hash(w->key, w->klen) & (nb - 1);
			list_push(&b[w->bucket], w);
		}
	}
	free(h->buckets);
	h->buckets = b;
	h->nbuckets = nb;
	return 0;
}

static int index_add(struct watch_hub *h, struct watcher *w)
{
	if (w->end) {
		list_push(&h->ranges, w);
		return 0;
	}
	if (h->nkeyed >= h->nbuckets && index_grow(h) < 0)
		return -ENOMEM;
	w->bucket = key_hash(w->key, w->klen) & (h->nbuckets - 1);
	list_push(&h->buckets[w->bucket], w);
	h->nkeyed++;
	return 0;
}

static void index_del(struct watch_hub *h, struct watcher *w)
{
	struct watcher **head = w->end ? &h->ranges : &h->buckets[w->bucket];

	if (w->iprev)
		w->iprev->inext = w->inext;
	else
		*head = w->inext;
	if (w->inext)
		w->inext->iprev = w->iprev;
	if (!w->end)
		h->nkeyed--;
}

/* ---- streams: the queue ------------------------------------------------ */

static void arm_run(struct watch_hub *h)
{
	static const struct timeval now = {0, 0};

	/* a zero timer, not event_active: it runs after this turn's socket
	 * I/O, so a long catch-up never starves the loop */
	if (!h->run_armed && evtimer_add(h->run_ev, &now) == 0)
		h->run_armed = true;
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

static void set_unsynced(struct watcher *w)
{
	struct watch_stream *s = w->s;

	if (!w->synced)
		return;
	w->synced = false;
	s->nunsynced++;
	s->h->nunsynced++;
}

static void set_synced(struct watcher *w)
{
	struct watch_stream *s = w->s;

	if (w->synced)
		return;
	w->synced = true;
	s->nunsynced--;
	s->h->nunsynced--;
}

static void queue_drop(struct watch_stream *s)
{
	for (size_t i = s->qhead; i < s->qlen; i++)
		ev_unref(s->q[i].ev);
	s->qhead = s->qlen = s->qbytes = 0;
}

/* Move every watcher of s to the unsynced group: a synced one resumes
 * from rev (it was handed, or has queued, every event before rev:
 * invariant 1), a watcher with queued events from the first of them; the
 * queue is dropped and catch-up starts at the next run. */
static void stream_resync(struct watch_stream *s, int64_t rev)
{
	struct watcher *w;

	for (w = s->watchers; w; w = w->snext)
		if (w->synced && w->min_rev < rev)
			w->min_rev = rev;
	for (size_t i = s->qhead; i < s->qlen; i++)
		if (s->q[i].w)
			s->q[i].w->min_rev = min64(s->q[i].w->min_rev,
						   s->q[i].ev->kv.mod_rev);
	for (w = s->watchers; w; w = w->snext)
		set_unsynced(w);
	queue_drop(s);
	arm_run(s->h);
}

/* The queue is full while rev is being observed: the stream's watchers
 * catch up from history later. */
static void queue_overflow(struct watch_stream *s, int64_t rev)
{
	stream_resync(s, rev);
	log_debug("watch: stream queue full at revision %lld, its watchers "
		  "catch up from history",
		  (long long)rev);
}

/* Append without the bounds (the caller checked them). */
static int queue_push(struct watch_stream *s, struct watcher *w,
		      struct watch_ev *ev, bool batch)
{
	if (s->qlen == s->qcap) {
		size_t live = s->qlen - s->qhead;

		if (s->qhead > 0 && live < s->qcap / 2) {
			memmove(s->q, s->q + s->qhead, live * sizeof(*s->q));
		} else {
			size_t nc = s->qcap ? s->qcap * 2 : 16;
			struct wq_ent *q = realloc(s->q, nc * sizeof(*q));

			if (!q)
				return -ENOMEM;
			memmove(q, q + s->qhead, live * sizeof(*q));
			s->q = q;
			s->qcap = nc;
		}
		s->qhead = 0;
		s->qlen = live;
	}
	s->q[s->qlen].w = w;
	s->q[s->qlen].ev = ev;
	s->q[s->qlen].batch = batch;
	s->qlen++;
	s->qbytes += ev->bytes;
	ev->refs++;
	return 0;
}

static bool queue_full(const struct watch_stream *s, size_t bytes)
{
	const struct watch_hub_config *c = &s->h->cfg;

	return s->qlen - s->qhead >= c->queue_max_events ||
	       s->qbytes + bytes > c->queue_max_bytes;
}

static bool passes_filters(const struct watcher *w, int type)
{
	return !(type == 0 ? w->noput : w->nodelete);
}

/* ---- the write path ---------------------------------------------------- */

struct observe {
	struct watch_hub *h;
	int type;
	const struct mvcc_kv *kv, *prev;
	struct watch_ev *plain, *with_prev;
};

static void observe_one(struct observe *o, struct watcher *w)
{
	struct watch_stream *s = w->s;
	struct watch_ev **evp;

	if (!w->synced || s->dead || o->kv->mod_rev < w->min_rev ||
	    !passes_filters(w, o->type))
		return;
	evp = w->prev_kv && o->prev ? &o->with_prev : &o->plain;
	if (!*evp)
		*evp = ev_make(o->type, o->kv,
			       evp == &o->plain ? NULL : o->prev);
	if (!*evp || queue_full(s, (*evp)->bytes) ||
	    queue_push(s, w, *evp, false)) {
		queue_overflow(s, o->kv->mod_rev);
		return;
	}
	arm_run(s->h);
}

void watch_hub_observe(void *arg, int type, const struct mvcc_kv *kv,
		       const struct mvcc_kv *prev)
{
	struct observe o = {arg, type, kv, prev, NULL, NULL};
	struct watch_hub *h = arg;
	struct watcher *w, *next;

	if (kv->mod_rev > h->rev)
		h->rev = kv->mod_rev;
	if (h->nkeyed) {
		size_t b = key_hash(kv->key, kv->key_len) & (h->nbuckets - 1);

		for (w = h->buckets[b]; w; w = next) {
			next = w->inext;
			if (watcher_matches(w, kv->key, kv->key_len))
				observe_one(&o, w);
		}
	}
	for (w = h->ranges; w; w = next) {
		next = w->inext;
		if (watcher_matches(w, kv->key, kv->key_len))
			observe_one(&o, w);
	}
	ev_unref(o.plain);
	ev_unref(o.with_prev);
}

/* ---- sending ----------------------------------------------------------- */

/* Hand one response to the sink; 0 to go on, -EAGAIN/-EPIPE to stop. */
static int stream_send(struct watch_stream *s, const struct watch_resp *r)
{
	int err;

	if (s->dead)
		return -EPIPE;
	err = s->send(s->arg, r);
	if (err == -EAGAIN) {
		s->blocked = true;
	} else if (err < 0) {
		s->dead = true;
		queue_drop(s);
		err = -EPIPE;
	}
	return err;
}

static int scratch_reserve(struct watch_hub *h, size_t n)
{
	struct watch_event *p;
	size_t nc;

	if (n <= h->scratch_cap)
		return 0;
	nc = h->scratch_cap ? h->scratch_cap : 16;
	while (nc < n)
		nc *= 2;
	p = realloc(h->scratch, nc * sizeof(*p));
	if (!p)
		return -ENOMEM;
	h->scratch = p;
	h->scratch_cap = nc;
	return 0;
}

static void fill_event(struct watch_event *e, const struct watcher *w,
		       const struct watch_ev *ev)
{
	e->type = ev->type;
	e->kv = ev->kv;
	e->prev = w->prev_kv && ev->has_prev ? &ev->prev : NULL;
}

static void ent_consume(struct watch_stream *s, struct wq_ent *e)
{
	s->qbytes -= e->ev->bytes;
	ev_unref(e->ev);
	e->ev = NULL;
	e->w = NULL;
}

/* Send the response of watcher q[i].w for the revision window [i, end):
 * its events there, in order. */
static int send_group(struct watch_stream *s, size_t i, size_t end, bool dup)
{
	struct watch_hub *h = s->h;
	struct watcher *w = s->q[i].w;
	struct watch_resp r = {0};
	size_t n = 0;
	int err;

	for (size_t j = i; j < end; j++) {
		if (s->q[j].w != w)
			continue;
		if (scratch_reserve(h, n + 1) < 0)
			return -ENOMEM;
		fill_event(&h->scratch[n++], w, s->q[j].ev);
		if (!dup)
			break;
	}
	r.watch_id = w->id;
	/* etcd: a live response carries its revision, a catch-up batch the
	 * current one */
	r.rev = s->q[i].batch ? mvcc_rev(h->m) : s->q[i].ev->kv.mod_rev;
	r.events = h->scratch;
	r.n = n;
	r.fragment = w->fragment;
	err = stream_send(s, &r);
	if (err == -EPIPE)
		return err;
	/* -EAGAIN: the sink took it */
	w->sent = true;
	for (size_t j = i; j < end && n; j++)
		if (s->q[j].w == w) {
			if (w->min_rev <= s->q[j].ev->kv.mod_rev)
				w->min_rev = s->q[j].ev->kv.mod_rev + 1;
			ent_consume(s, &s->q[j]);
			n--;
		}
	return err;
}

/* Whether some watcher appears twice in q[i, end) (a txn's revision with
 * several events for one watcher): then responses gather them. */
static bool window_dup(struct watch_stream *s, size_t i, size_t end)
{
	uint64_t st = ++s->h->stamp;
	bool dup = false;

	for (; i < end; i++) {
		struct watcher *w = s->q[i].w;

		if (!w)
			continue;
		if (w->stamp == st)
			dup = true;
		w->stamp = st;
	}
	return dup;
}

/* Drain the queue into the sink until it is empty, blocked or dead. */
static int queue_flush(struct watch_stream *s)
{
	int err = 0;

	while (s->qhead < s->qlen && !s->blocked && !s->dead) {
		int64_t rev;
		size_t end;
		bool dup;

		if (!s->q[s->qhead].w) {
			s->qhead++;
			continue;
		}
		rev = s->q[s->qhead].ev->kv.mod_rev;
		/* a window: one revision of live events, or a whole catch-up
		 * chunk (etcd sends a watcher's history in one response) */
		for (end = s->qhead; end < s->qlen; end++)
			if (s->q[end].w &&
			    (s->q[end].batch != s->q[s->qhead].batch ||
			     (!s->q[end].batch &&
			      s->q[end].ev->kv.mod_rev != rev)))
				break;
		dup = window_dup(s, s->qhead, end);
		for (size_t i = s->qhead; i < end && err == 0; i++)
			if (s->q[i].w)
				err = send_group(s, i, end, dup);
		if (err == -ENOMEM) {
			queue_overflow(s, rev);
			return err;
		}
		if (err)
			break;
	}
	if (s->qhead == s->qlen)
		s->qhead = s->qlen = 0;
	return err;
}

/* ---- catch-up from history --------------------------------------------- */

/* Streams that read a chunk of history per run of the hub. */
#define WATCH_CATCHUP_STREAMS_PER_RUN 4

struct catchup {
	struct watch_stream *s;
	size_t budget, n, bytes;
	int64_t last_rev, stop_rev;
	int err;
};

static int catchup_one(void *arg, int type, const struct mvcc_kv *kv)
{
	struct catchup *c = arg;
	struct watch_stream *s = c->s;
	struct watch_ev *ev = NULL;

	if ((c->n >= c->budget || c->bytes >= s->h->cfg.queue_max_bytes) &&
	    kv->mod_rev != c->last_rev) {
		c->stop_rev = kv->mod_rev; /* stop on a revision boundary */
		return 1;
	}
	c->last_rev = kv->mod_rev;
	for (struct watcher *w = s->watchers; w; w = w->snext) {
		if (w->synced || kv->mod_rev < w->min_rev ||
		    !passes_filters(w, type) ||
		    !watcher_matches(w, kv->key, kv->key_len))
			continue;
		if (!ev && !(ev = ev_make(type, kv, NULL)))
			goto nomem;
		if (queue_push(s, w, ev, true) < 0)
			goto nomem;
		c->n++;
		c->bytes += ev->bytes;
	}
	ev_unref(ev);
	return 0;
nomem:
	ev_unref(ev);
	c->err = -ENOMEM;
	return 1;
}

/* The previous version of each queued history event whose watcher wants
 * it (etcd reads it at mod_rev - 1; compacted or absent: none). */
static void catchup_prevs(struct watch_stream *s)
{
	struct mvcc *m = s->h->m;

	for (size_t i = s->qhead; i < s->qlen; i++) {
		struct watch_ev *ev = s->q[i].ev;
		struct mvcc_range_opts o = {0};
		struct mvcc_range_result r;
		size_t n;

		if (!s->q[i].w || !s->q[i].w->prev_kv || ev->has_prev ||
		    ev->prev_buf || ev->kv.mod_rev <= 1)
			continue;
		o.rev = ev->kv.mod_rev - 1;
		if (mvcc_range(m, ev->kv.key, ev->kv.key_len, NULL, 0, &o, &r))
			continue;
		if (r.n == 1) {
			n = r.kvs[0].key_len + r.kvs[0].value_len;
			ev->prev_buf = malloc(n ? n : 1);
			if (ev->prev_buf) {
				ev->prev = r.kvs[0];
				memcpy(ev->prev_buf, r.kvs[0].key,
				       r.kvs[0].key_len);
				if (r.kvs[0].value_len)
					memcpy(ev->prev_buf + r.kvs[0].key_len,
					       r.kvs[0].value,
					       r.kvs[0].value_len);
				ev->prev.key = ev->prev_buf;
				ev->prev.value =
					ev->prev_buf + r.kvs[0].key_len;
				ev->has_prev = true;
			}
		}
		mvcc_range_result_free(&r);
	}
}

static void watcher_free(struct watcher *w);

/* Cancel and remove the unsynced watchers that need history below
 * `below`: etcd's syncWatchers on a compacted revision tells each the
 * compact revision (and, in 3.4, no cancel_reason); a history that
 * cannot be read gives the reason instead. */
static int cancel_unsynced(struct watch_stream *s, int64_t below,
			   int64_t compact_rev, const char *reason)
{
	struct watcher *w, *next;
	int err = 0;

	for (w = s->watchers; w && err != -EPIPE; w = next) {
		struct watch_resp r = {0};

		next = w->snext;
		if (w->synced || w->min_rev >= below)
			continue;
		r.watch_id = w->id;
		r.canceled = true;
		r.compact_rev = compact_rev;
		r.cancel_reason = reason;
		err = stream_send(s, &r);
		watcher_free(w);
	}
	return err;
}

/* One bounded chunk of history for the stream's unsynced watchers, into
 * the (empty) queue. */
static int stream_catchup(struct watch_stream *s)
{
	struct watch_hub *h = s->h;
	struct catchup c = {s, h->cfg.catchup_max_events, 0, 0, 0, 0, 0};
	int64_t from = INT64_MAX, cur = mvcc_rev(h->m);
	int64_t crev = mvcc_compact_rev(h->m);
	struct watcher *w;
	int err;

	for (w = s->watchers; w; w = w->snext)
		if (!w->synced)
			from = min64(from, w->min_rev);
	if (from == INT64_MAX)
		return 0;
	if (from < crev) {
		if ((err = cancel_unsynced(s, crev, crev, NULL)) < 0)
			return err;
		return 0; /* the next run goes on with the others */
	}
	err = mvcc_history(h->m, from, cur, catchup_one, &c);
	if (err == 0)
		err = c.err;
	if (err == CAIRN_ECOMPACTED)
		return 0; /* raced with nothing on one thread; retried */
	if (err < 0) {
		/* retrying would spin the loop on a broken engine: the
		 * watchers end, and the client may watch again */
		log_warn("watch: catch-up from revision %lld: %s; canceling "
			 "the stream's unsynced watchers",
			 (long long)from, cairn_strerror(err));
		queue_drop(s);
		cancel_unsynced(s, INT64_MAX, 0, cairn_strerror(err));
		return err;
	}
	catchup_prevs(s);
	for (w = s->watchers; w; w = w->snext) {
		if (w->synced)
			continue;
		if (c.stop_rev) {
			if (w->min_rev < c.stop_rev)
				w->min_rev = c.stop_rev;
		} else {
			/* invariant 1 from here: all up to cur is queued */
			if (w->min_rev < cur + 1)
				w->min_rev = cur + 1;
			set_synced(w);
		}
	}
	return 0;
}

static void send_progress_all(struct watch_stream *s)
{
	struct watch_resp r = {0};

	r.watch_id = -1;
	r.rev = mvcc_rev(s->h->m);
	if (stream_send(s, &r) != -EPIPE)
		s->progress_pending = false;
}

/* Flush, then one catch-up chunk and its flush; true if more to do. */
static bool stream_run(struct watch_stream *s, bool may_catch_up,
		       bool *caught_up)
{
	if (s->dead || s->blocked)
		return false;
	if (queue_flush(s) < 0 || s->blocked || s->dead)
		return false;
	if (s->nunsynced) {
		if (!may_catch_up)
			return true;
		*caught_up = true;
		if (stream_catchup(s) < 0)
			return false; /* dead, or its unsynced watchers ended */
		if (queue_flush(s) < 0 || s->blocked || s->dead)
			return false;
	}
	if (s->progress_pending && !s->nunsynced && s->qhead == s->qlen)
		send_progress_all(s);
	return s->nunsynced > 0 && !s->blocked;
}

static void stream_unlink(struct watch_hub *h, struct watch_stream *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		h->streams = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

/* Append the list done (linked by next) at the tail of h->streams. */
static void streams_append(struct watch_hub *h, struct watch_stream *done)
{
	struct watch_stream *t = h->streams;

	if (!done)
		return;
	while (t && t->next)
		t = t->next;
	for (struct watch_stream *s = done, *next; s; s = next) {
		next = s->next;
		s->prev = t;
		s->next = NULL;
		if (t)
			t->next = s;
		else
			h->streams = s;
		t = s;
	}
}

/* Every stream flushes; at most WATCH_CATCHUP_STREAMS_PER_RUN read a
 * chunk of history, and those go to the back of the list, so many slow
 * streams take turns instead of filling one loop turn. */
static void on_run(evutil_socket_t fd, short what, void *arg)
{
	struct watch_hub *h = arg;
	struct watch_stream *s, *next, *done = NULL, **tail = &done;
	int budget = WATCH_CATCHUP_STREAMS_PER_RUN;
	bool again = false;

	(void)fd;
	(void)what;
	h->run_armed = false;
	for (s = h->streams; s; s = next) {
		bool caught_up = false;

		next = s->next;
		if (stream_run(s, budget > 0, &caught_up))
			again = true;
		if (caught_up) {
			budget--;
			stream_unlink(h, s);
			*tail = s;
			tail = &s->next;
		}
	}
	streams_append(h, done);
	if (again)
		arm_run(h);
}

/* etcd's progress notify: watchers that asked for it, synced, with no
 * event sent since the last tick, get an empty response at the current
 * revision. */
static void on_progress(evutil_socket_t fd, short what, void *arg)
{
	struct watch_hub *h = arg;
	int64_t rev = mvcc_rev(h->m);

	(void)fd;
	(void)what;
	for (struct watch_stream *s = h->streams; s; s = s->next) {
		bool idle = s->qhead == s->qlen && !s->blocked && !s->dead;

		for (struct watcher *w = s->watchers; w; w = w->snext) {
			struct watch_resp r = {0};

			if (idle && w->progress_notify && w->synced &&
			    !w->sent) {
				r.watch_id = w->id;
				r.rev = rev;
				if (stream_send(s, &r) < 0)
					idle = false;
			}
			w->sent = false;
		}
	}
}

/* ---- hub --------------------------------------------------------------- */

static int progress_arm(struct watch_hub *h)
{
	struct timeval tv = {(time_t)(h->cfg.progress_ms / 1000),
			     (suseconds_t)(h->cfg.progress_ms % 1000) * 1000};

	return event_add(h->progress_ev, &tv) < 0 ? -ENOMEM : 0;
}

int watch_hub_create(struct event_base *base, struct mvcc *m,
		     const struct watch_hub_config *cfg, struct watch_hub **out)
{
	struct watch_hub *h = calloc(1, sizeof(*h));

	*out = NULL;
	if (!h)
		return -ENOMEM;
	h->base = base;
	h->m = m;
	h->rev = mvcc_rev(m);
	if (cfg)
		h->cfg = *cfg;
	if (!h->cfg.queue_max_events)
		h->cfg.queue_max_events = WATCH_QUEUE_MAX_EVENTS;
	if (!h->cfg.queue_max_bytes)
		h->cfg.queue_max_bytes = WATCH_QUEUE_MAX_BYTES;
	if (!h->cfg.catchup_max_events)
		h->cfg.catchup_max_events = WATCH_CATCHUP_MAX_EVENTS;
	if (!h->cfg.progress_ms)
		h->cfg.progress_ms = WATCH_PROGRESS_MS;
	h->run_ev = evtimer_new(base, on_run, h);
	h->progress_ev = event_new(base, -1, EV_PERSIST, on_progress, h);
	if (!h->run_ev || !h->progress_ev || progress_arm(h) < 0)
		goto fail;
	/* after the socket work of a turn, beside the raft Ready batch */
	event_priority_set(h->run_ev, 1);
	*out = h;
	return 0;
fail:
	watch_hub_destroy(h);
	return -ENOMEM;
}

void watch_hub_restore(struct watch_hub *h)
{
	struct watch_stream *s;

	for (s = h->streams; s; s = s->next)
		if (!s->dead)
			stream_resync(s, h->rev + 1);
	log_info("watch: the store was replaced at revision %lld (was %lld): "
		 "%zu watchers catch up from history",
		 (long long)mvcc_rev(h->m), (long long)h->rev, h->nwatchers);
	h->rev = mvcc_rev(h->m);
}

void watch_hub_set_progress_ms(struct watch_hub *h, uint64_t ms)
{
	h->cfg.progress_ms = ms ? ms : WATCH_PROGRESS_MS;
	event_del(h->progress_ev);
	progress_arm(h);
}

static void stream_detach(struct watch_stream *s)
{
	while (s->watchers)
		watcher_free(s->watchers);
	queue_drop(s);
	s->h = NULL;
}

void watch_hub_destroy(struct watch_hub *h)
{
	if (!h)
		return;
	while (h->streams) {
		struct watch_stream *s = h->streams;

		h->streams = s->next;
		stream_detach(s);
		s->next = s->prev = NULL;
	}
	if (h->run_ev)
		event_free(h->run_ev);
	if (h->progress_ev)
		event_free(h->progress_ev);
	free(h->buckets);
	free(h->scratch);
	free(h);
}

size_t watch_hub_count(const struct watch_hub *h, size_t *unsynced)
{
	if (unsynced)
		*unsynced = h->nunsynced;
	return h->nwatchers;
}

/* ---- streams and watchers ---------------------------------------------- */

int watch_stream_create(struct watch_hub *h, watch_send_fn send, void *arg,
			struct watch_stream **out)
{
	struct watch_stream *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->h = h;
	s->send = send;
	s->arg = arg;
	s->next = h->streams;
	if (h->streams)
		h->streams->prev = s;
	h->streams = s;
	*out = s;
	return 0;
}

static void watcher_free(struct watcher *w)
{
	struct watch_stream *s = w->s;
	struct watch_hub *h = s->h;

	/* its queued events go with it: nothing after the cancel */
	for (size_t i = s->qhead; i < s->qlen; i++)
		if (s->q[i].w == w)
			ent_consume(s, &s->q[i]);
	set_synced(w); /* only to leave the unsynced counts */
	index_del(h, w);
	h->nwatchers--;
	if (w->sprev)
		w->sprev->snext = w->snext;
	else
		s->watchers = w->snext;
	if (w->snext)
		w->snext->sprev = w->sprev;
	free(w->key);
	free(w);
}

void watch_stream_destroy(struct watch_stream *s)
{
	struct watch_hub *h;

	if (!s)
		return;
	h = s->h;
	if (h) {
		stream_detach(s);
		stream_unlink(h, s);
	}
	free(s->q);
	free(s);
}

static struct watcher *find_watcher(struct watch_stream *s, int64_t id)
{
	for (struct watcher *w = s->watchers; w; w = w->snext)
		if (w->id == id)
			return w;
	return NULL;
}

static int refuse(struct watch_stream *s, int err, const char *why)
{
	struct watch_resp r = {0};

	r.watch_id = -1;
	r.rev = mvcc_rev(s->h->m);
	r.created = true;
	r.canceled = true;
	r.cancel_reason = why;
	stream_send(s, &r);
	return err;
}

static int key_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);

	return c ? c : (an > bn) - (an < bn);
}

static struct watcher *watcher_new(struct watch_stream *s,
				   const struct watch_req *r)
{
	struct watcher *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->key = malloc(r->klen + r->elen + 1);
	if (!w->key) {
		free(w);
		return NULL;
	}
	memcpy(w->key, r->key, r->klen);
	w->klen = r->klen;
	if (r->end) {
		w->end = w->key + r->klen;
		if (r->elen)
			memcpy(w->end, r->end, r->elen);
		w->elen = r->elen;
	}
	w->s = s;
	w->prev_kv = r->prev_kv;
	w->noput = r->noput;
	w->nodelete = r->nodelete;
	w->progress_notify = r->progress_notify;
	w->fragment = r->fragment;
	return w;
}

int watch_stream_watch(struct watch_stream *s, const struct watch_req *r,
		       int64_t *id)
{
	struct watch_hub *h = s->h;
	struct watch_resp cr = {0};
	struct watcher *w;
	int64_t cur;

	if (!h)
		return -ESHUTDOWN;
	if (r->end && r->elen && key_cmp(r->key, r->klen, r->end, r->elen) >= 0)
		return refuse(s, -EINVAL, WATCH_EEMPTY_RANGE);
	if (r->watch_id && find_watcher(s, r->watch_id))
		return refuse(s, -EEXIST, WATCH_EDUPLICATE_ID);
	if (!(w = watcher_new(s, r)))
		return -ENOMEM;
	if (index_add(h, w) < 0) {
		free(w->key);
		free(w);
		return -ENOMEM;
	}
	if (r->watch_id) {
		w->id = r->watch_id;
		s->client_ids = true;
	} else {
		/* ids below next_id were handed out: only a client's own
		 * choice can collide (a linear probe; etcd's loop too) */
		while (s->client_ids && find_watcher(s, s->next_id))
			s->next_id++;
		w->id = s->next_id++;
	}
	w->snext = s->watchers;
	if (s->watchers)
		s->watchers->sprev = w;
	s->watchers = w;
	h->nwatchers++;
	cur = mvcc_rev(h->m);
	/* etcd: no start, or one in the future, is synced (and filtered by
	 * min_rev); a past one catches up from history */
	w->synced = true;
	w->min_rev = r->start_rev > 0 ? r->start_rev : cur + 1;
	if (r->start_rev > 0 && r->start_rev <= cur) {
		set_unsynced(w);
		arm_run(h);
	}
	if (id)
		*id = w->id;
	/* the created response goes out before anything of this watcher is
	 * queued (it is sent now; its events only at the next run) */
	cr.watch_id = w->id;
	cr.rev = cur;
	cr.created = true;
	stream_send(s, &cr);
	return 0;
}

int watch_stream_cancel(struct watch_stream *s, int64_t id)
{
	struct watch_resp r = {0};
	struct watcher *w;

	if (!s->h)
		return -ESHUTDOWN;
	if (!(w = find_watcher(s, id)))
		return -ENOENT;
	watcher_free(w);
	r.watch_id = id;
	r.rev = mvcc_rev(s->h->m);
	r.canceled = true;
	stream_send(s, &r);
	return 0;
}

int watch_stream_progress(struct watch_stream *s)
{
	if (!s->h)
		return -ESHUTDOWN;
	s->progress_pending = true;
	if (!s->nunsynced && s->qhead == s->qlen && !s->blocked)
		send_progress_all(s);
	else
		arm_run(s->h);
	return 0;
}

void watch_stream_writable(struct watch_stream *s)
{
	if (!s->h || s->dead)
		return;
	s->blocked = false;
	arm_run(s->h);
}
