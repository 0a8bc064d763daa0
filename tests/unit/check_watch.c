/* Tests of the watch hub (core/watch.c) over a real MVCC on the sqlite
 * engine in a temp dir, with a capturing sink that can refuse (-EAGAIN)
 * like a full gRPC stream. */
#include <check.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "core/server_int.h"
#include "core/watch.h"
#include "engines/engine.h"
#include "tests/unit/suites.h"
#include "tests/unit/tmpdir.h"

/* ---- fixture: store, loop, hub ---- */

static char tmpdir[64];
static struct engine_handle eh;
static struct mvcc *m;
static struct event_base *base;
static struct watch_hub *hub;

/* One captured event / response (deep copies). */
struct cev {
	int type;
	char key[32], val[32], prev[32];
	bool has_prev;
	int64_t mod_rev;
};

struct cresp {
	int64_t id, rev, compact_rev;
	bool created, canceled;
	char reason[80];
	struct cev *evs;
	size_t n;
};

struct sink {
	struct cresp r[4096];
	size_t n;
	int block_after; /* > 0: say -EAGAIN when n reaches it */
	bool dead;
};

static int sink_send(void *arg, const struct watch_resp *r)
{
	struct sink *s = arg;
	struct cresp *c;

	if (s->dead)
		return -EPIPE;
	ck_assert_uint_lt(s->n, 4096);
	c = &s->r[s->n++];
	memset(c, 0, sizeof(*c));
	c->id = r->watch_id;
	c->rev = r->rev;
	c->compact_rev = r->compact_rev;
	c->created = r->created;
	c->canceled = r->canceled;
	if (r->cancel_reason)
		snprintf(c->reason, sizeof(c->reason), "%s", r->cancel_reason);
	c->n = r->n;
	c->evs = calloc(r->n ? r->n : 1, sizeof(*c->evs));
	ck_assert_ptr_nonnull(c->evs);
	for (size_t i = 0; i < r->n; i++) {
		const struct watch_event *e = &r->events[i];

		c->evs[i].type = e->type;
		snprintf(c->evs[i].key, 32, "%.*s", (int)e->kv.key_len,
			 e->kv.key);
		snprintf(c->evs[i].val, 32, "%.*s", (int)e->kv.value_len,
			 e->kv.value);
		c->evs[i].mod_rev = e->kv.mod_rev;
		if (e->prev) {
			c->evs[i].has_prev = true;
			snprintf(c->evs[i].prev, 32, "%.*s",
				 (int)e->prev->value_len, e->prev->value);
		}
	}
	if (s->block_after && s->n >= (size_t)s->block_after)
		return -EAGAIN;
	return 0;
}

static void sink_clear(struct sink *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->r[i].evs);
	s->n = 0;
}

static void open_hub(const struct watch_hub_config *cfg)
{
	ck_assert_int_eq(watch_hub_create(base, m, cfg, &hub), 0);
	mvcc_set_observer(m, watch_hub_observe, hub);
}

static void setup(void)
{
	struct engine_config cfg = {0, 0};
	char path[128];
	const char *name =
		engine_find("sqlite") ? "sqlite" : engine_default_name();

	ut_tmpdir(tmpdir, sizeof(tmpdir), "check_watch");
	snprintf(path, sizeof(path), "%s/db", tmpdir);
	ck_assert_int_eq(engine_open(name, path, &cfg, &eh), 0);
	ck_assert_int_eq(mvcc_open(&eh, &m), 0);
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(event_base_priority_init(base, 2), 0);
	hub = NULL;
}

static void teardown(void)
{
	mvcc_set_observer(m, NULL, NULL);
	watch_hub_destroy(hub);
	hub = NULL;
	event_base_free(base);
	mvcc_close(m);
	engine_close(&eh);
	ut_rmtree(tmpdir);
}

/* Run the loop until nothing is pending (bounded). */
static void spin(void)
{
	for (int i = 0; i < 2000; i++)
		event_base_loop(base, EVLOOP_NONBLOCK);
}

static int64_t put(const char *k, const char *v)
{
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	ck_assert_int_eq(mvcc_txn_put(m, (const uint8_t *)k, strlen(k),
				      (const uint8_t *)v, strlen(v), 0),
			 0);
	return mvcc_txn_end(m);
}

static int64_t del(const char *k)
{
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	ck_assert_int_eq(mvcc_txn_delete_range(m, (const uint8_t *)k, strlen(k),
					       NULL, 0, NULL, NULL),
			 0);
	return mvcc_txn_end(m);
}

static struct watch_req req_key(const char *k)
{
	struct watch_req r = {0};

	r.key = (const uint8_t *)k;
	r.klen = strlen(k);
	return r;
}

static struct watch_req req_range(const char *k, const char *end)
{
	struct watch_req r = req_key(k);

	r.end = (const uint8_t *)end;
	r.elen = strlen(end);
	return r;
}

/* All events the sink got for watcher id, flattened, into out[]. */
static size_t events_of(const struct sink *s, int64_t id, struct cev *out,
			size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < s->n; i++) {
		if (s->r[i].id != id)
			continue;
		for (size_t j = 0; j < s->r[i].n && n < cap; j++)
			out[n++] = s->r[i].evs[j];
	}
	return n;
}

/* ---- tests ---- */

START_TEST(test_keys_ranges_fromkey)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r;
	struct cev ev[16];
	int64_t id, r1;

	open_hub(NULL);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	r = req_key("a");
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), 0);
	ck_assert_int_eq(id, 0);
	r = req_range("b", "c");
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), 0);
	ck_assert_int_eq(id, 1);
	r = req_key("x");
	r.end = (const uint8_t *)""; /* from key */
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), 0);
	ck_assert_int_eq(id, 2);
	ck_assert_uint_eq(sk.n, 3);
	for (int i = 0; i < 3; i++)
		ck_assert(sk.r[i].created && sk.r[i].id == i);

	r1 = put("a", "1");
	put("ab", "no");
	put("b", "2");
	put("bzz", "3");
	put("c", "no");
	put("x", "4");
	put("zz", "5");
	del("a");
	spin();
	ck_assert_uint_eq(events_of(&sk, 0, ev, 16), 2);
	ck_assert_str_eq(ev[0].val, "1");
	ck_assert_int_eq(ev[0].mod_rev, r1);
	ck_assert_int_eq(ev[1].type, 1);
	ck_assert_int_eq(ev[1].mod_rev, r1 + 7);
	ck_assert_uint_eq(events_of(&sk, 1, ev, 16), 2);
	ck_assert_str_eq(ev[0].key, "b");
	ck_assert_str_eq(ev[1].key, "bzz");
	ck_assert_uint_eq(events_of(&sk, 2, ev, 16), 2);
	ck_assert_str_eq(ev[0].key, "x");
	ck_assert_str_eq(ev[1].key, "zz");
	/* live responses carry their revision, in order */
	for (size_t i = 4; i < sk.n; i++)
		ck_assert_int_gt(sk.r[i].rev, sk.r[i - 1].rev);
	watch_stream_destroy(st);
	ck_assert_uint_eq(watch_hub_count(hub, NULL), 0);
	sink_clear(&sk);
}
END_TEST

START_TEST(test_filters_prev_txn)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r;
	struct cev ev[16];

	open_hub(NULL);
	put("p/a", "0");
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	r = req_range("p/", "p0");
	r.noput = true;
	r.watch_id = 10;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	r = req_range("p/", "p0");
	r.nodelete = true;
	r.prev_kv = true;
	r.watch_id = 11;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	r = req_range("p/", "p0");
	r.prev_kv = true;
	r.watch_id = 12;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	/* one txn: three changes, one revision, one response per watcher */
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	mvcc_txn_put(m, (const uint8_t *)"p/a", 3, (const uint8_t *)"1", 1, 0);
	mvcc_txn_put(m, (const uint8_t *)"p/b", 3, (const uint8_t *)"2", 1, 0);
	mvcc_txn_end(m);
	del("p/a");
	spin();
	ck_assert_uint_eq(events_of(&sk, 10, ev, 16), 1);
	ck_assert_int_eq(ev[0].type, 1);
	ck_assert(!ev[0].has_prev);
	ck_assert_uint_eq(events_of(&sk, 11, ev, 16), 2);
	ck_assert_str_eq(ev[0].prev, "0");
	ck_assert(!ev[1].has_prev); /* p/b was new */
	ck_assert_uint_eq(events_of(&sk, 12, ev, 16), 3);
	ck_assert_int_eq(ev[2].type, 1);
	ck_assert(ev[2].has_prev);
	ck_assert_str_eq(ev[2].prev, "1");
	/* the txn's two events came as one response */
	for (size_t i = 3; i < sk.n; i++)
		if (sk.r[i].id == 12) {
			ck_assert_uint_eq(sk.r[i].n, 2);
			break;
		}
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

START_TEST(test_ids_cancel_refusals)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r = req_key("k");
	int64_t id;

	open_hub(NULL);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	r.watch_id = 1;
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), 0);
	r.watch_id = 0;
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), 0);
	ck_assert_int_eq(id, 0);
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), 0);
	ck_assert_int_eq(id, 2); /* 1 is taken */
	r.watch_id = 2;
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), -EEXIST);
	ck_assert(sk.r[sk.n - 1].created && sk.r[sk.n - 1].canceled);
	ck_assert_int_eq(sk.r[sk.n - 1].id, -1);
	ck_assert_str_eq(sk.r[sk.n - 1].reason, WATCH_EDUPLICATE_ID);
	r = req_range("b", "a");
	ck_assert_int_eq(watch_stream_watch(st, &r, &id), -EINVAL);
	ck_assert_str_eq(sk.r[sk.n - 1].reason, WATCH_EEMPTY_RANGE);
	ck_assert_uint_eq(watch_hub_count(hub, NULL), 3);
	ck_assert_int_eq(watch_stream_cancel(st, 1), 0);
	ck_assert(sk.r[sk.n - 1].canceled && sk.r[sk.n - 1].id == 1);
	ck_assert_int_eq(watch_stream_cancel(st, 1), -ENOENT);
	put("k", "v");
	spin();
	ck_assert_int_ne(sk.r[sk.n - 1].id, 1);
	ck_assert_uint_eq(watch_hub_count(hub, NULL), 2);
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

START_TEST(test_history_then_live)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r = req_key("h");
	struct cev ev[16];
	int64_t r1;

	open_hub(NULL);
	r1 = put("h", "1");
	put("other", "x");
	put("h", "2");
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	r.start_rev = r1;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	put("h", "3"); /* live before the catch-up ran: still in order */
	spin();
	ck_assert(sk.r[0].created);
	ck_assert_uint_eq(events_of(&sk, 0, ev, 16), 3);
	ck_assert_str_eq(ev[0].val, "1");
	ck_assert_str_eq(ev[1].val, "2");
	ck_assert_str_eq(ev[2].val, "3");
	put("h", "4");
	spin();
	ck_assert_uint_eq(events_of(&sk, 0, ev, 16), 4);
	ck_assert_str_eq(ev[3].val, "4");
	/* a future start revision filters until then */
	r.start_rev = mvcc_rev(m) + 2;
	r.watch_id = 9;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	put("h", "5");
	put("h", "6");
	spin();
	ck_assert_uint_eq(events_of(&sk, 9, ev, 16), 1);
	ck_assert_str_eq(ev[0].val, "6");
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

START_TEST(test_compacted_start)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r = req_key("c");
	struct cev ev[16];
	int64_t r1;

	open_hub(NULL);
	r1 = put("c", "1");
	put("c", "2");
	put("c", "3");
	ck_assert_int_eq(mvcc_compact(m, r1 + 1), 0);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	r.start_rev = r1;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	r.start_rev = r1 + 1; /* exactly the compact revision: served */
	r.watch_id = 5;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	spin();
	ck_assert(sk.r[0].created && sk.r[1].created);
	ck_assert(sk.r[2].canceled);
	ck_assert_int_eq(sk.r[2].id, 0);
	ck_assert_int_eq(sk.r[2].compact_rev, r1 + 1);
	ck_assert_uint_eq(events_of(&sk, 5, ev, 16), 2);
	ck_assert_str_eq(ev[0].val, "2");
	ck_assert_uint_eq(watch_hub_count(hub, NULL), 1);
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

/* The write path never waits: a blocked stream's watcher goes unsynced,
 * then catches up from history in chunks, exactly once, in order, while
 * another stream stays live. */
START_TEST(test_slow_stream_catches_up)
{
	struct watch_hub_config cfg = {0};
	struct sink slow = {0}, fast = {0};
	struct watch_stream *ss, *fs;
	struct watch_req r = req_range("s/", "s0");
	struct cev *ev = calloc(600, sizeof(*ev));
	size_t uns, n;
	int64_t first = 0, rev;
	char k[16];

	ck_assert_ptr_nonnull(ev);
	cfg.queue_max_events = 16;
	cfg.catchup_max_events = 7;
	open_hub(&cfg);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &slow, &ss), 0);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &fast, &fs), 0);
	ck_assert_int_eq(watch_stream_watch(ss, &r, NULL), 0);
	ck_assert_int_eq(watch_stream_watch(fs, &r, NULL), 0);
	slow.block_after = 3; /* created + 2 responses, then -EAGAIN */
	for (int i = 0; i < 500; i++) {
		snprintf(k, sizeof(k), "s/%03d", i);
		rev = put(k, k);
		if (!first)
			first = rev;
		if (i % 10 == 0)
			spin();
	}
	spin();
	watch_hub_count(hub, &uns);
	ck_assert_uint_eq(uns, 1);
	ck_assert_uint_eq(events_of(&fast, 0, ev, 600), 500);
	n = events_of(&slow, 0, ev, 600);
	ck_assert_uint_lt(n, 500);
	/* readable again: catch-up in chunks, then live */
	slow.block_after = 0;
	watch_stream_writable(ss);
	spin();
	watch_hub_count(hub, &uns);
	ck_assert_uint_eq(uns, 0);
	rev = put("s/zzz", "live");
	spin();
	n = events_of(&slow, 0, ev, 600);
	ck_assert_uint_eq(n, 501);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(ev[i].mod_rev, first + (int64_t)i);
	ck_assert_str_eq(ev[500].val, "live");
	ck_assert_int_eq(ev[500].mod_rev, rev);
	watch_stream_destroy(ss);
	watch_stream_destroy(fs);
	sink_clear(&slow);
	sink_clear(&fast);
	free(ev);
}
END_TEST

/* An unsynced watcher whose resume revision is compacted meanwhile is
 * canceled with the compact revision (etcd's syncWatchers). */
START_TEST(test_unsynced_compacted)
{
	struct watch_hub_config cfg = {0};
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r = req_key("u");
	int64_t rev = 0;

	cfg.queue_max_events = 2;
	open_hub(&cfg);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	sk.block_after = 1; /* the created response blocks it */
	for (int i = 0; i < 5; i++)
		rev = put("u", "x");
	ck_assert_int_eq(mvcc_compact(m, rev), 0);
	sk.block_after = 0;
	watch_stream_writable(st);
	spin();
	ck_assert(sk.r[sk.n - 1].canceled);
	ck_assert_int_eq(sk.r[sk.n - 1].compact_rev, rev);
	ck_assert_uint_eq(watch_hub_count(hub, NULL), 0);
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

START_TEST(test_progress)
{
	struct watch_hub_config cfg = {0};
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r = req_key("q");
	int64_t rev;
	bool got = false;

	cfg.progress_ms = 30;
	open_hub(&cfg);
	rev = put("q", "1");
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	r.progress_notify = true;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	ck_assert_int_eq(watch_stream_progress(st), 0);
	ck_assert_int_eq(sk.r[sk.n - 1].id, -1);
	ck_assert_int_eq(sk.r[sk.n - 1].rev, rev);
	/* unsynced: the reply waits for the catch-up */
	r.progress_notify = false;
	r.start_rev = rev;
	r.watch_id = 4;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	sink_clear(&sk);
	ck_assert_int_eq(watch_stream_progress(st), 0);
	ck_assert_uint_eq(sk.n, 0);
	spin();
	ck_assert_uint_eq(sk.n, 2);
	ck_assert_int_eq(sk.r[0].id, 4);
	ck_assert_int_eq(sk.r[1].id, -1);
	/* periodic, for progress_notify watchers only (bounded wait) */
	sink_clear(&sk);
	for (int i = 0; i < 100 && !got; i++) {
		struct timeval tv = {0, 10000};

		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
		for (size_t j = 0; j < sk.n; j++)
			if (sk.r[j].id == 0 && sk.r[j].n == 0 &&
			    sk.r[j].rev == rev)
				got = true;
	}
	ck_assert(got);
	for (size_t j = 0; j < sk.n; j++)
		ck_assert_int_ne(sk.r[j].id, 4);
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

/* The hub goes first (server_close): streams are detached, not freed. */
START_TEST(test_hub_destroy_detaches)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req r = req_key("d");

	open_hub(NULL);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), 0);
	put("d", "1");
	mvcc_set_observer(m, NULL, NULL);
	watch_hub_destroy(hub);
	hub = NULL;
	ck_assert_int_eq(watch_stream_watch(st, &r, NULL), -ESHUTDOWN);
	ck_assert_int_eq(watch_stream_cancel(st, 0), -ESHUTDOWN);
	watch_stream_writable(st);
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

/* A member installs a snapshot (issue 5): the engine under the mvcc is
 * replaced by another holding the same history and more, and mvcc is
 * reloaded in place. Watchers resume from their next revision in the
 * new store, then go on live. */
static void replace_store(int64_t compact_at)
{
	struct engine_config cfg = {0, 0};
	struct engine_handle oh;
	struct mvcc *om;
	const char *name = eh.ops->name;
	char path[128];

	/* the "leader": a=1 (2), a=2 (3), b=1 (4), c=1 (5) */
	snprintf(path, sizeof(path), "%s/leader", tmpdir);
	ck_assert_int_eq(engine_open(name, path, &cfg, &oh), 0);
	ck_assert_int_eq(mvcc_open(&oh, &om), 0);
	{
		struct mvcc *keep = m;

		m = om; /* put() works on m */
		put("a", "1");
		put("a", "2");
		put("b", "1");
		put("c", "1");
		if (compact_at)
			ck_assert_int_eq(mvcc_compact(m, compact_at), 0);
		ck_assert_int_eq(mvcc_set_consistent_index(m, 42), 0);
		ck_assert_int_eq(mvcc_commit(m, true), 0);
		m = keep;
	}
	mvcc_close(om);
	engine_close(&oh);
	/* the install: same struct engine_handle, same struct mvcc */
	mvcc_release_view(m);
	engine_close(&eh);
	ck_assert_int_eq(engine_open(name, path, &cfg, &eh), 0);
	ck_assert_int_eq(mvcc_reload(m), 0);
	ck_assert_uint_eq(mvcc_consistent_index(m), 42);
	ck_assert_int_eq(mvcc_rev(m), 5);
	watch_hub_restore(hub);
}

START_TEST(test_restore_resumes)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req ra = req_key("a"), rb = req_range("b", "d");
	struct cev ev[8];
	int64_t ida, idb;
	size_t n, unsynced;

	open_hub(NULL);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	ck_assert_int_eq(watch_stream_watch(st, &ra, &ida), 0);
	ck_assert_int_eq(watch_stream_watch(st, &rb, &idb), 0);
	ck_assert_int_eq(put("a", "1"), 2);
	spin();
	ck_assert_uint_eq(events_of(&sk, ida, ev, 8), 1);
	replace_store(0);
	ck_assert_uint_eq(watch_hub_count(hub, &unsynced), 2);
	ck_assert_uint_eq(unsynced, 2);
	spin();
	/* a: rev 3 only (rev 2 was handed already); b..d: revs 4 and 5 */
	n = events_of(&sk, ida, ev, 8);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ev[1].mod_rev, 3);
	ck_assert_str_eq(ev[1].val, "2");
	n = events_of(&sk, idb, ev, 8);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(ev[0].key, "b");
	ck_assert_str_eq(ev[1].key, "c");
	ck_assert_uint_eq(watch_hub_count(hub, &unsynced), 2);
	ck_assert_uint_eq(unsynced, 0);
	/* live again, through the observer mvcc_reload kept */
	ck_assert_int_eq(put("a", "3"), 6);
	spin();
	n = events_of(&sk, ida, ev, 8);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(ev[2].mod_rev, 6);
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

START_TEST(test_restore_compacted)
{
	struct sink sk = {0};
	struct watch_stream *st;
	struct watch_req ra = req_key("a"), rc = req_key("c");
	int64_t ida, idc;
	bool canceled_a = false, canceled_c = false;

	open_hub(NULL);
	ck_assert_int_eq(watch_stream_create(hub, sink_send, &sk, &st), 0);
	ck_assert_int_eq(watch_stream_watch(st, &ra, &ida), 0);
	ck_assert_int_eq(put("a", "1"), 2);
	spin();
	/* a future start (6) is past the compaction: it stays */
	rc.start_rev = 6;
	ck_assert_int_eq(watch_stream_watch(st, &rc, &idc), 0);
	replace_store(4); /* a needs revision 3: compacted in the new store */
	spin();
	for (size_t i = 0; i < sk.n; i++) {
		if (sk.r[i].id == ida && sk.r[i].canceled) {
			canceled_a = true;
			ck_assert_int_eq(sk.r[i].compact_rev, 4);
		}
		if (sk.r[i].id == idc && sk.r[i].canceled)
			canceled_c = true;
	}
	ck_assert(canceled_a);
	ck_assert(!canceled_c);
	ck_assert_uint_eq(watch_hub_count(hub, NULL), 1);
	watch_stream_destroy(st);
	sink_clear(&sk);
}
END_TEST

/* ---- the snapshot image between members (core/server_snap.c) ---- */

static char sdir[64];

static void snap_setup(void)
{
	ut_tmpdir(sdir, sizeof(sdir), "check_snapimg");
}

static void snap_teardown(void)
{
	ut_rmtree(sdir);
}

/* A "leader" store on engine `name` at sdir/src: keys with history, a
 * compaction, a lease and a member; consistent index 77. */
static void snap_make_src(const char *name, char *path, size_t cap)
{
	struct engine_config cfg = {0, 0};
	struct engine_handle h;
	struct mvcc *keep = m;

	snprintf(path, cap, "%s/src-%s", sdir, name);
	ck_assert_int_eq(engine_open(name, path, &cfg, &h), 0);
	ck_assert_int_eq(mvcc_open(&h, &m), 0);
	for (int i = 0; i < 50; i++) {
		char k[16], v[16];

		snprintf(k, sizeof(k), "k%03d", i);
		snprintf(v, sizeof(v), "v%d", i);
		put(k, v);
		put(k, "again");
	}
	del("k007");
	ck_assert_int_eq(mvcc_compact(m, 20), 0);
	ck_assert_int_eq(mvcc_set_consistent_index(m, 77), 0);
	ck_assert_int_eq(engine_bucket_create(&h, "lease"), 0);
	ck_assert_int_eq(engine_put(&h, "lease", "L1", 2, "lease-one", 9), 0);
	ck_assert_int_eq(engine_bucket_create(&h, "members"), 0);
	ck_assert_int_eq(engine_put(&h, "members", "m1", 2, "{}", 2), 0);
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	/* written after the image is taken: must not be in it */
	mvcc_close(m);
	m = keep;
	ck_assert_int_eq(engine_put(&h, "lease", "L2", 2, "late", 4), 0);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	engine_close(&h);
}

static void snap_write(const char *name, const char *src, const char *img,
		       bool with_late_write)
{
	struct engine_config cfg = {0, 0};
	struct engine_handle h;
	int fd;

	ck_assert_int_eq(engine_open(name, src, &cfg, &h), 0);
	fd = open(img, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	if (with_late_write) /* uncommitted: not in the image */
		ck_assert_int_eq(engine_put(&h, "lease", "L3", 2, "x", 1), 0);
	ck_assert_int_eq(server_snap_image_write(&h, 77, 3, fd), 0);
	close(fd);
	engine_close(&h);
}

static void snap_check_built(const char *name, const char *db)
{
	struct engine_config cfg = {0, 0};
	struct engine_handle h;
	struct engine_view *v;
	struct engine_slice val;
	struct mvcc_range_result rr;
	struct mvcc *mm;

	ck_assert_int_eq(engine_open(name, db, &cfg, &h), 0);
	ck_assert_int_eq(mvcc_open(&h, &mm), 0);
	ck_assert_uint_eq(mvcc_consistent_index(mm), 77);
	ck_assert_int_eq(mvcc_rev(mm), 102);
	ck_assert_int_eq(mvcc_compact_rev(mm), 20);
	ck_assert_int_eq(mvcc_range(mm, (const uint8_t *)"k", 1,
				    (const uint8_t *)"l", 1, NULL, &rr),
			 0);
	ck_assert_uint_eq(rr.n, 49);
	ck_assert_int_eq(rr.kvs[0].version, 2);
	ck_assert_int_eq(memcmp(rr.kvs[0].value, "again", 5), 0);
	mvcc_range_result_free(&rr);
	/* history after the compaction is there too */
	{
		struct mvcc_range_opts o = {0};

		o.rev = 21;
		ck_assert_int_eq(mvcc_range(mm, (const uint8_t *)"k", 1,
					    (const uint8_t *)"l", 1, &o, &rr),
				 0);
		ck_assert_uint_eq(rr.n, 10); /* k000..k009 exist at 21 */
		mvcc_range_result_free(&rr);
	}
	mvcc_close(mm);
	ck_assert_int_eq(engine_view_open(&h, &v), 0);
	ck_assert_int_eq(engine_get(&h, v, "lease", "L1", 2, &val), 0);
	ck_assert_int_eq(memcmp(val.p, "lease-one", 9), 0);
	ck_assert_int_eq(engine_get(&h, v, "members", "m1", 2, &val), 0);
	ck_assert_int_eq(engine_get(&h, v, "lease", "L3", 2, &val), -ENOENT);
	engine_view_close(&h, v);
	engine_close(&h);
}

/* Every engine's image builds into every engine, the same data. */
START_TEST(test_snapimg_roundtrip)
{
	const struct engine_ops *const *l = engine_list();

	for (size_t i = 0; l[i]; i++) {
		char src[128], img[128];

		snap_make_src(l[i]->name, src, sizeof(src));
		snprintf(img, sizeof(img), "%s/img-%s", sdir, l[i]->name);
		for (size_t j = 0; l[j]; j++) {
			char db[128];

			/* the image is consumed by the build */
			snap_write(l[i]->name, src, img, true);
			snprintf(db, sizeof(db), "%s/%s-to-%s.snap.db", sdir,
				 l[i]->name, l[j]->name);
			ck_assert_int_eq(server_snap_image_build(
						 img, l[j]->name, db, 77, 3),
					 0);
			ck_assert_int_ne(access(img, F_OK), 0);
			snap_check_built(l[j]->name, db);
		}
	}
}
END_TEST

/* A copy of img with its size cut to len, or byte off xor'ed with x. */
static void snap_corrupt(const char *img, const char *out, off_t len, off_t off,
			 uint8_t x)
{
	FILE *in = fopen(img, "rb"), *o = fopen(out, "wb");
	int c;
	off_t n = 0;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(o);
	while ((c = fgetc(in)) != EOF && (len < 0 || n < len)) {
		if (n == off)
			c ^= x;
		fputc(c, o);
		n++;
	}
	fclose(in);
	fclose(o);
}

/* A bad image is refused (never a crash), and leaves nothing behind. */
START_TEST(test_snapimg_bad)
{
	const char *name = engine_default_name();
	char src[128], img[128], bad[128], db[128];
	struct stat st;
	off_t size;

	snap_make_src(name, src, sizeof(src));
	snprintf(img, sizeof(img), "%s/img", sdir);
	snprintf(bad, sizeof(bad), "%s/bad", sdir);
	snprintf(db, sizeof(db), "%s/out.snap.db", sdir);
	snap_write(name, src, img, false);
	ck_assert_int_eq(stat(img, &st), 0);
	size = st.st_size;
	/* truncated anywhere: the header, a record, the end record */
	for (off_t cut = 0; cut < size; cut += size / 37 + 1) {
		snap_corrupt(img, bad, cut, -1, 0);
		ck_assert_int_eq(server_snap_image_build(bad, name, db, 77, 3),
				 CAIRN_ECORRUPT);
		ck_assert_int_ne(access(db, F_OK), 0);
	}
	snap_corrupt(img, bad, size - 1, -1, 0);
	ck_assert_int_eq(server_snap_image_build(bad, name, db, 77, 3),
			 CAIRN_ECORRUPT);
	/* wrong magic, another index or term than announced */
	snap_corrupt(img, bad, -1, 0, 0x20);
	ck_assert_int_eq(server_snap_image_build(bad, name, db, 77, 3),
			 CAIRN_ECORRUPT);
	snap_corrupt(img, bad, -1, -1, 0);
	ck_assert_int_eq(server_snap_image_build(bad, name, db, 78, 3),
			 CAIRN_ECORRUPT);
	snap_corrupt(img, bad, -1, -1, 0);
	ck_assert_int_eq(server_snap_image_build(bad, name, db, 77, 4),
			 CAIRN_ECORRUPT);
	/* trailing garbage */
	snap_corrupt(img, bad, -1, -1, 0);
	{
		FILE *f = fopen(bad, "ab");

		fputc(1, f);
		fclose(f);
	}
	ck_assert_int_eq(server_snap_image_build(bad, name, db, 77, 3),
			 CAIRN_ECORRUPT);
	/* flipped bytes in lengths and kinds: refused or built, no crash
	 * (the transport's CRC-32C catches flips in the data) */
	for (off_t off = 24; off < size; off += size / 53 + 1) {
		int err;

		snap_corrupt(img, bad, -1, off, 0xff);
		err = server_snap_image_build(bad, name, db, 77, 3);
		if (err < 0)
			ck_assert_int_ne(access(db, F_OK), 0);
	}
	ck_assert_int_ne(access(bad, F_OK), 0); /* consumed every time */
}
END_TEST

/* A crash between the WAL marker and the db swap: at start the engine
 * holds less than the marker and <index>.snap.db is there; recovery swaps
 * it in (a file, or a directory for rocksdb) and reloads MVCC in place. */
START_TEST(test_snap_recover)
{
	const struct engine_ops *const *l = engine_list();

	for (size_t i = 0; l[i]; i++) {
		struct engine_config ecfg = {0, 0};
		struct config cfg;
		struct server *s = calloc(1, sizeof(*s));
		char src[128], img[128], path[4400], errbuf[256];
		struct mvcc *before;

		ck_assert_ptr_nonnull(s);
		memset(&cfg, 0, sizeof(cfg));
		cfg.backend = (char *)l[i]->name;
		s->cfg = &cfg;
		snprintf(s->member_dir, sizeof(s->member_dir), "%s/m-%s/member",
			 sdir, l[i]->name);
		snprintf(path, sizeof(path), "%s/m-%s", sdir, l[i]->name);
		ck_assert_int_eq(mkdir(path, 0700), 0);
		ck_assert_int_eq(mkdir(s->member_dir, 0700), 0);
		snprintf(path, sizeof(path), "%s/snap", s->member_dir);
		ck_assert_int_eq(mkdir(path, 0700), 0);
		/* the old state: one key, index 5 */
		snprintf(path, sizeof(path), "%s/snap/db", s->member_dir);
		ck_assert_int_eq(engine_open(l[i]->name, path, &ecfg, &s->eng),
				 0);
		ck_assert_int_eq(mvcc_open(&s->eng, &s->mvcc), 0);
		before = m;
		m = s->mvcc;
		put("old", "1");
		m = before;
		ck_assert_int_eq(mvcc_set_consistent_index(s->mvcc, 5), 0);
		ck_assert_int_eq(mvcc_commit(s->mvcc, true), 0);
		s->applied_index = 5;
		/* the received image, built, but db not swapped yet */
		snap_make_src(l[i]->name, src, sizeof(src));
		snprintf(img, sizeof(img), "%s/img", sdir);
		snap_write(l[i]->name, src, img, false);
		snprintf(path, sizeof(path), "%s/snap/%016llx.snap.db",
			 s->member_dir, 77ull);
		ck_assert_int_eq(
			server_snap_image_build(img, l[i]->name, path, 77, 3),
			0);
		/* a partial image the transport was receiving at the crash */
		{
			char part[4400];
			FILE *pf;

			snprintf(part, sizeof(part), "%s/snap/peer-snap-x1",
				 s->member_dir);
			pf = fopen(part, "w");
			ck_assert_ptr_nonnull(pf);
			fclose(pf);
		}
		/* a marker at 77: finish the install */
		before = s->mvcc;
		ck_assert_int_eq(
			server_snap_recover(s, 77, errbuf, sizeof(errbuf)), 0);
		ck_assert_ptr_eq(s->mvcc, before);
		ck_assert_uint_eq(s->applied_index, 77);
		ck_assert_uint_eq(mvcc_consistent_index(s->mvcc), 77);
		ck_assert_int_eq(mvcc_rev(s->mvcc), 102);
		ck_assert_int_ne(access(path, F_OK), 0); /* moved into place */
		snprintf(path, sizeof(path), "%s/snap/peer-snap-x1",
			 s->member_dir);
		ck_assert_int_ne(access(path, F_OK), 0);
		/* again: nothing to do now */
		ck_assert_int_eq(
			server_snap_recover(s, 77, errbuf, sizeof(errbuf)), 0);
		ck_assert_uint_eq(s->applied_index, 77);
		mvcc_close(s->mvcc);
		engine_close(&s->eng);
		/* and it reopens as the new state */
		snprintf(path, sizeof(path), "%s/snap/db", s->member_dir);
		snap_check_built(l[i]->name, path);
		free(s);
	}
}
END_TEST

Suite *watch_suite(void)
{
	Suite *s = suite_create("watch");
	TCase *tc = tcase_create("hub");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_keys_ranges_fromkey);
	tcase_add_test(tc, test_filters_prev_txn);
	tcase_add_test(tc, test_ids_cancel_refusals);
	tcase_add_test(tc, test_history_then_live);
	tcase_add_test(tc, test_compacted_start);
	tcase_add_test(tc, test_slow_stream_catches_up);
	tcase_add_test(tc, test_unsynced_compacted);
	tcase_add_test(tc, test_progress);
	tcase_add_test(tc, test_hub_destroy_detaches);
	tcase_add_test(tc, test_restore_resumes);
	tcase_add_test(tc, test_restore_compacted);
	suite_add_tcase(s, tc);
	tc = tcase_create("snapimage");
	tcase_add_checked_fixture(tc, snap_setup, snap_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_snapimg_roundtrip);
	tcase_add_test(tc, test_snapimg_bad);
	tcase_add_test(tc, test_snap_recover);
	suite_add_tcase(s, tc);
	return s;
}
