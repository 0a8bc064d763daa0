/* Tests of the watch hub (core/watch.c) over a real MVCC on the sqlite
 * engine in a temp dir, with a capturing sink that can refuse (-EAGAIN)
 * like a full gRPC stream. */
#include <check.h>
#include <event2/event.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "core/watch.h"
#include "tests/unit/tmpdir.h"
#include "engines/engine.h"
#include "tests/unit/suites.h"

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
	suite_add_tcase(s, tc);
	return s;
}
