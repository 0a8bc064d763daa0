/* Tests of net/peer: real sockets on 127.0.0.1 (port 0), one event_base
 * per test, every wait bounded by a deadline (pt_run_until). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "core/util/crc32c.h"
#include "net/peer.h"
#include "net/peer_codec.h"
#include "tests/unit/suites.h"

#define PT_CLUSTER 0xc1a55e5ULL
#define PT_MAX_NODES 3
#define PT_MAX_RECS 4096

struct pt_node {
	struct peer_transport *t;
	uint64_t id;
	uint16_t port;
	struct raft_msg recs[PT_MAX_RECS]; /* deep copies */
	size_t n_recs;
	uint64_t hb_max_lat_us, hb_during_snap;
	bool snap_in_flight;
	char snap_path[256];
	struct peer_snap_meta snap_meta;
	uint64_t snap_ids[8]; /* voters then learners */
	uint64_t snap_from;
	int snaps;
};

static struct event_base *pt_base;
static struct pt_node pt_nodes[PT_MAX_NODES];
static bool pt_remove_on_msg; /* on_msg forgets the sender (re-entrancy) */

static uint64_t pt_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void pt_on_msg(void *arg, const struct raft_msg *m)
{
	struct pt_node *n = arg;
	struct raft_msg *c;

	if (m->type == RAFT_MSG_HEARTBEAT && m->commit > 1000000) {
		/* commit carries the send time (snapshot test) */
		uint64_t lat = pt_now_us() - m->commit;

		if (lat > n->hb_max_lat_us)
			n->hb_max_lat_us = lat;
		if (pt_nodes[0].snap_in_flight)
			n->hb_during_snap++;
		return;
	}
	ck_assert_uint_lt(n->n_recs, PT_MAX_RECS);
	if (pt_remove_on_msg) {
		/* Frees the stream this message is being read from: the
		 * message must stay readable until we return. */
		ck_assert_int_eq(peer_remove(n->t, m->from), 0);
		pt_remove_on_msg = false;
	}
	c = &n->recs[n->n_recs++];
	*c = *m;
	c->entries = NULL;
	if (m->n_entries) {
		c->entries = calloc(m->n_entries, sizeof(*c->entries));
		ck_assert_ptr_nonnull(c->entries);
		for (size_t i = 0; i < m->n_entries; i++) {
			c->entries[i] = m->entries[i];
			if (m->entries[i].len) {
				c->entries[i].data = malloc(m->entries[i].len);
				ck_assert_ptr_nonnull(c->entries[i].data);
				memcpy(c->entries[i].data, m->entries[i].data,
				       m->entries[i].len);
			}
		}
	}
}

static void pt_clear_recs(struct pt_node *n)
{
	for (size_t i = 0; i < n->n_recs; i++) {
		for (size_t j = 0; j < n->recs[i].n_entries; j++)
			free(n->recs[i].entries[j].data);
		free(n->recs[i].entries);
	}
	n->n_recs = 0;
}

static struct peer_config pt_cfg(uint64_t id)
{
	struct peer_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.cluster_id = PT_CLUSTER;
	cfg.self_id = id;
	cfg.backoff_min_ms = 10;
	cfg.backoff_max_ms = 100;
	cfg.hello_timeout_ms = 2000;
	return cfg;
}

/* Start node i (id i+1) on port (0: any) with cfg. */
static void pt_start_cfg(int i, uint16_t port, const struct peer_config *cfg)
{
	struct pt_node *n = &pt_nodes[i];

	n->id = cfg->self_id;
	ck_assert_int_eq(
		peer_transport_create(pt_base, cfg, pt_on_msg, n, &n->t), 0);
	ck_assert_int_eq(peer_listen(n->t, "127.0.0.1", port), 0);
	n->port = peer_listen_port(n->t);
	ck_assert_uint_ne(n->port, 0);
}

static void pt_start(int i, uint16_t port)
{
	struct peer_config cfg = pt_cfg((uint64_t)i + 1);

	pt_start_cfg(i, port, &cfg);
}

static void pt_stop(int i)
{
	pt_clear_recs(&pt_nodes[i]);
	peer_transport_destroy(pt_nodes[i].t);
	pt_nodes[i].t = NULL;
}

/* Every started node knows every other one. */
static void pt_mesh(int n)
{
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			if (i != j)
				ck_assert_int_eq(
					peer_add(pt_nodes[i].t, pt_nodes[j].id,
						 "127.0.0.1", pt_nodes[j].port),
					0);
}

static void pt_setup(void)
{
	memset(pt_nodes, 0, sizeof(pt_nodes));
	pt_base = event_base_new();
	ck_assert_ptr_nonnull(pt_base);
}

static void pt_teardown(void)
{
	for (int i = 0; i < PT_MAX_NODES; i++)
		if (pt_nodes[i].t)
			pt_stop(i);
	event_base_free(pt_base);
}

/* Run the loop until cond(arg) or ms pass; returns cond's last value. */
struct pt_wait {
	bool (*cond)(void *);
	void *arg;
	uint64_t deadline;
	bool ok;
};

static void pt_tick(evutil_socket_t fd, short what, void *arg)
{
	struct pt_wait *w = arg;

	(void)fd;
	(void)what;
	if ((w->cond && w->cond(w->arg)) || pt_now_us() >= w->deadline) {
		w->ok = w->cond && w->cond(w->arg);
		event_base_loopbreak(pt_base);
	}
}

static bool pt_run_until(bool (*cond)(void *), void *arg, unsigned ms)
{
	struct pt_wait w = {cond, arg, pt_now_us() + ms * 1000ULL, false};
	struct timeval tv = {0, 2000};
	struct event *ev = event_new(pt_base, -1, EV_PERSIST, pt_tick, &w);

	ck_assert_ptr_nonnull(ev);
	event_add(ev, &tv);
	event_base_dispatch(pt_base);
	event_free(ev);
	return w.ok;
}

static void pt_run_for(unsigned ms)
{
	pt_run_until(NULL, NULL, ms);
}

struct pt_count {
	struct pt_node *n;
	size_t want;
};

static bool pt_has_recs(void *arg)
{
	struct pt_count *c = arg;

	return c->n->n_recs >= c->want;
}

static bool pt_wait_recs(int i, size_t want, unsigned ms)
{
	struct pt_count c = {&pt_nodes[i], want};

	return pt_run_until(pt_has_recs, &c, ms);
}

static bool pt_connected(void *arg)
{
	const uint64_t *ids = arg; /* from, to */
	struct peer_stats st;

	return peer_stats(pt_nodes[ids[0] - 1].t, ids[1], &st) == 0 &&
	       st.connected;
}

/* A port nobody listens on (bound then closed; loopback reuse is rare). */
static uint16_t pt_free_port(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	close(fd);
	return ntohs(sa.sin_port);
}

static struct raft_msg pt_msg(enum raft_msg_type type, uint64_t to,
			      uint64_t seed)
{
	struct raft_msg m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.to = to;
	m.term = seed * 7 + 1;
	m.log_term = seed * 5 + 2;
	m.index = seed * 3 + 3;
	m.commit = seed + 4;
	m.reject = seed & 1;
	m.reject_hint = seed * 11 + 5;
	return m;
}

static void pt_assert_msg_eq(const struct raft_msg *a, const struct raft_msg *b,
			     uint64_t from)
{
	ck_assert_int_eq(a->type, b->type);
	ck_assert_uint_eq(b->from, from);
	ck_assert_uint_eq(a->to, b->to);
	ck_assert_uint_eq(a->term, b->term);
	ck_assert_uint_eq(a->log_term, b->log_term);
	ck_assert_uint_eq(a->index, b->index);
	ck_assert_uint_eq(a->commit, b->commit);
	ck_assert_int_eq(a->reject, b->reject);
	ck_assert_uint_eq(a->reject_hint, b->reject_hint);
	ck_assert_uint_eq(a->ctx, b->ctx);
	ck_assert_int_eq(a->transfer, b->transfer);
	ck_assert_uint_eq(a->snap.index, b->snap.index);
	ck_assert_uint_eq(a->snap.term, b->snap.term);
	ck_assert_uint_eq(a->snap.n_voters, b->snap.n_voters);
	ck_assert_uint_eq(a->snap.n_learners, b->snap.n_learners);
	ck_assert_uint_eq(a->n_entries, b->n_entries);
	for (size_t i = 0; i < a->n_entries; i++) {
		const struct raft_entry *x = &a->entries[i],
					*y = &b->entries[i];

		ck_assert_uint_eq(x->term, y->term);
		ck_assert_uint_eq(x->index, y->index);
		ck_assert_uint_eq(x->type, y->type);
		ck_assert_uint_eq(x->len, y->len);
		if (x->len)
			ck_assert_int_eq(memcmp(x->data, y->data, x->len), 0);
		else
			ck_assert_ptr_null(y->data);
	}
}

/* Every message type, with entries (empty, small, a conf change, 1 MiB),
 * crosses between three transports with every field intact. */
START_TEST(test_exchange_all_types)
{
	static const enum raft_msg_type types[] = {
		RAFT_MSG_APP,
		RAFT_MSG_APP_RESP,
		RAFT_MSG_VOTE,
		RAFT_MSG_VOTE_RESP,
		RAFT_MSG_PRE_VOTE,
		RAFT_MSG_PRE_VOTE_RESP,
		RAFT_MSG_HEARTBEAT,
		RAFT_MSG_HEARTBEAT_RESP,
		RAFT_MSG_PROP,
		RAFT_MSG_READ_INDEX,
		RAFT_MSG_READ_INDEX_RESP,
		RAFT_MSG_SNAP,
		RAFT_MSG_TIMEOUT_NOW,
	};
	const size_t nt = sizeof(types) / sizeof(types[0]);
	struct raft_msg sent[2][13];
	struct raft_entry ents[4];
	size_t big = 1u << 20;
	uint8_t *bigbuf = malloc(big), small[] = "hello raft";
	static const uint64_t ids[] = {1, 2, 3, 4};

	ck_assert_ptr_nonnull(bigbuf);
	for (size_t i = 0; i < big; i++)
		bigbuf[i] = (uint8_t)(i * 131 + (i >> 9));
	for (int i = 0; i < 3; i++)
		pt_start(i, 0);
	pt_mesh(3);
	memset(ents, 0, sizeof(ents));
	ents[0] = (struct raft_entry){3, 10, RAFT_ENTRY_NORMAL, NULL, 0};
	ents[1] = (struct raft_entry){3, 11, RAFT_ENTRY_NORMAL, small,
				      sizeof(small)};
	ents[2] = (struct raft_entry){4, 12, RAFT_ENTRY_CONF_CHANGE, small, 5};
	ents[3] = (struct raft_entry){4, 13, RAFT_ENTRY_NORMAL, bigbuf, big};
	/* 1 -> 2 and 3 -> 1, every type; APPs carry the entries. */
	for (size_t k = 0; k < nt; k++) {
		sent[0][k] = pt_msg(types[k], 2, k);
		sent[1][k] = pt_msg(types[k], 1, k + 100);
		if (types[k] == RAFT_MSG_APP || types[k] == RAFT_MSG_PROP) {
			sent[0][k].entries = sent[1][k].entries = ents;
			sent[0][k].n_entries = sent[1][k].n_entries = 4;
			sent[1][k].n_entries = 3;
		}
		if (types[k] == RAFT_MSG_READ_INDEX ||
		    types[k] == RAFT_MSG_READ_INDEX_RESP ||
		    types[k] == RAFT_MSG_HEARTBEAT)
			sent[0][k].ctx = sent[1][k].ctx =
				0x1122334455667788ULL + k;
		if (types[k] == RAFT_MSG_VOTE || types[k] == RAFT_MSG_PRE_VOTE)
			sent[1][k].transfer = true;
		if (types[k] == RAFT_MSG_SNAP)
			sent[0][k].snap = sent[1][k].snap =
				(struct raft_snap_meta){50, 4,	     ids,
							3,  ids + 3, 1};
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &sent[0][k]), 0);
		ck_assert_int_eq(peer_send(pt_nodes[2].t, &sent[1][k]), 0);
	}
	ck_assert(pt_wait_recs(1, nt, 5000));
	ck_assert(pt_wait_recs(0, nt, 5000));
	pt_run_for(20);
	ck_assert_uint_eq(pt_nodes[1].n_recs, nt); /* nothing more */
	ck_assert_uint_eq(pt_nodes[2].n_recs, 0);
	for (size_t k = 0; k < nt; k++) {
		pt_assert_msg_eq(&sent[0][k], &pt_nodes[1].recs[k], 1);
		pt_assert_msg_eq(&sent[1][k], &pt_nodes[0].recs[k], 3);
	}
	{
		struct peer_stats st;

		ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
		ck_assert(st.connected);
		ck_assert_uint_eq(st.sent_msgs, nt);
		ck_assert_uint_eq(st.dropped_queue, 0);
		ck_assert_int_eq(peer_stats(pt_nodes[1].t, 1, &st), 0);
		ck_assert_uint_eq(st.recv_msgs, nt);
	}
	free(bigbuf);
}
END_TEST

START_TEST(test_api_errors)
{
	struct peer_config cfg = pt_cfg(1);
	struct peer_transport *t;
	struct raft_msg m = pt_msg(RAFT_MSG_HEARTBEAT, 9, 1);
	struct peer_stats st;

	cfg.self_id = 0;
	ck_assert_int_eq(
		peer_transport_create(pt_base, &cfg, pt_on_msg, NULL, &t),
		-EINVAL);
	cfg.self_id = 1;
	ck_assert_int_eq(peer_transport_create(pt_base, &cfg, NULL, NULL, &t),
			 -EINVAL);
	pt_start(0, 0);
	t = pt_nodes[0].t;
	ck_assert_int_eq(peer_listen(t, "127.0.0.1", 0), -EALREADY);
	ck_assert_int_eq(peer_add(t, 1, "127.0.0.1", 1), -EINVAL);
	ck_assert_int_eq(peer_add(t, 0, "127.0.0.1", 1), -EINVAL);
	ck_assert_int_eq(peer_add(t, 2, "127.0.0.1", pt_free_port()), 0);
	ck_assert_int_eq(peer_add(t, 2, "127.0.0.1", 1), -EEXIST);
	ck_assert_int_eq(peer_send(t, &m), -ENOENT);
	m.to = 2;
	m.type = (enum raft_msg_type)99;
	ck_assert_int_eq(peer_send(t, &m), -EINVAL);
	m.type = RAFT_MSG_APP;
	m.n_entries = 1;
	ck_assert_int_eq(peer_send(t, &m), -EINVAL);
	ck_assert_int_eq(peer_stats(t, 5, &st), -ENOENT);
	ck_assert_int_eq(peer_remove(t, 5), -ENOENT);
	ck_assert_int_eq(peer_remove(t, 2), 0);
	ck_assert_int_eq(peer_stats(t, 2, &st), -ENOENT);
}
END_TEST

/* A peer that is not up yet is reached once it starts (redial with
 * backoff); the message queued meanwhile arrives. */
START_TEST(test_late_start)
{
	uint16_t port = pt_free_port();
	struct raft_msg m = pt_msg(RAFT_MSG_VOTE, 2, 42);
	uint64_t ids[2] = {1, 2};
	struct peer_stats st;

	pt_start(0, 0);
	ck_assert_int_eq(peer_add(pt_nodes[0].t, 2, "127.0.0.1", port), 0);
	ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	pt_run_for(300); /* several failed dials */
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert(!st.connected);
	ck_assert_uint_eq(st.queued_msgs, 1);
	pt_start(1, port);
	ck_assert_int_eq(
		peer_add(pt_nodes[1].t, 1, "127.0.0.1", pt_nodes[0].port), 0);
	/* Redials are at most backoff_max_ms (100) apart. */
	ck_assert(pt_wait_recs(1, 1, 1000));
	pt_assert_msg_eq(&m, &pt_nodes[1].recs[0], 1);
	ck_assert(pt_run_until(pt_connected, ids, 1000));
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert_uint_eq(st.connects, 1);
	ck_assert_uint_eq(st.queued_msgs, 0);
}
END_TEST

/* Kill one side and start it again on the same port: the other side
 * notices, redials, and messages flow again. */
START_TEST(test_restart_reconnects)
{
	struct raft_msg m = pt_msg(RAFT_MSG_HEARTBEAT, 2, 1);
	uint64_t ids[2] = {1, 2};
	uint16_t port;
	struct peer_stats st;
	int tries;

	pt_start(0, 0);
	pt_start(1, 0);
	pt_mesh(2);
	ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert(pt_wait_recs(1, 1, 3000));
	port = pt_nodes[1].port;
	pt_stop(1);
	pt_run_for(100);
	ck_assert(!pt_connected(ids));
	pt_start(1, port);
	ck_assert_int_eq(
		peer_add(pt_nodes[1].t, 1, "127.0.0.1", pt_nodes[0].port), 0);
	/* A message written into the dying stream may be lost: resend. */
	for (tries = 0; tries < 100 && pt_nodes[1].n_recs == 0; tries++) {
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
		pt_wait_recs(1, 1, 50);
	}
	ck_assert_uint_ge(pt_nodes[1].n_recs, 1);
	pt_assert_msg_eq(&m, &pt_nodes[1].recs[0], 1);
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert_uint_eq(st.connects, 2);
}
END_TEST

/* A member that comes back (dials us) is redialed at once, not after the
 * backoff that grew while it was down. */
START_TEST(test_reconnect_on_inbound)
{
	struct peer_config cfg = pt_cfg(1);
	uint64_t ids[2] = {1, 2};
	uint16_t port = pt_free_port();
	uint64_t t0;

	cfg.backoff_min_ms = 10;
	cfg.backoff_max_ms = 10000;
	pt_start_cfg(0, 0, &cfg);
	ck_assert_int_eq(peer_add(pt_nodes[0].t, 2, "127.0.0.1", port), 0);
	pt_run_for(1500); /* failed dials: the backoff is > 1 s now */
	ck_assert(!pt_connected(ids));
	pt_start(1, port);
	t0 = pt_now_us();
	ck_assert_int_eq(
		peer_add(pt_nodes[1].t, 1, "127.0.0.1", pt_nodes[0].port), 0);
	ck_assert(pt_run_until(pt_connected, ids, 3000));
	ck_assert_uint_lt(pt_now_us() - t0, 500000);
}
END_TEST

static bool pt_refused(void *arg)
{
	const uint64_t *ids = arg; /* node index, peer id */
	struct peer_stats st;

	return peer_stats(pt_nodes[ids[0]].t, ids[1], &st) == 0 &&
	       st.refused >= 2;
}

/* A member of another cluster, and a dial that reaches the wrong member,
 * are refused by the acceptor; nothing is delivered. */
START_TEST(test_identity_refused)
{
	struct peer_config other = pt_cfg(2);
	struct raft_msg m = pt_msg(RAFT_MSG_HEARTBEAT, 2, 1);
	uint64_t w[2] = {0, 2};
	struct peer_transport_stats ts;
	struct peer_stats st;

	other.cluster_id = PT_CLUSTER + 1;
	pt_start(0, 0);
	pt_start_cfg(1, 0, &other);
	pt_mesh(2);
	ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert(pt_run_until(pt_refused, w, 3000));
	ck_assert_uint_eq(pt_nodes[1].n_recs, 0);
	peer_transport_stats(pt_nodes[1].t, &ts);
	ck_assert_uint_ge(ts.refused, 2);
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert(!st.connected);
	ck_assert_uint_eq(st.connects, 0);
	ck_assert_uint_eq(st.queued_msgs, 1); /* kept for a real peer */
	pt_stop(1);

	/* Same cluster, but node 0 believes member 3 lives at member 2's
	 * address. Node 2 knows member 1, so only the id is wrong. */
	pt_start(1, 0);
	ck_assert_int_eq(
		peer_add(pt_nodes[1].t, 1, "127.0.0.1", pt_nodes[0].port), 0);
	ck_assert_int_eq(
		peer_add(pt_nodes[0].t, 3, "127.0.0.1", pt_nodes[1].port), 0);
	m.to = 3;
	ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	w[1] = 3;
	ck_assert(pt_run_until(pt_refused, w, 3000));
	ck_assert_uint_eq(pt_nodes[1].n_recs, 0);

	/* And a sender the acceptor was never told about (node 0's member 2
	 * now at the new address). */
	ck_assert_int_eq(peer_remove(pt_nodes[1].t, 1), 0);
	ck_assert_int_eq(peer_remove(pt_nodes[0].t, 3), 0);
	ck_assert_int_eq(peer_remove(pt_nodes[0].t, 2), 0);
	ck_assert_int_eq(
		peer_add(pt_nodes[0].t, 2, "127.0.0.1", pt_nodes[1].port), 0);
	w[1] = 2;
	m.to = 2;
	ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert(pt_run_until(pt_refused, w, 3000));
	ck_assert_uint_eq(pt_nodes[1].n_recs, 0);
}
END_TEST

/* ---- raw-socket tests: garbage and oversized frames -------------------- */

static int pt_raw_connect(uint16_t port)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	ck_assert_int_ge(fd, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void pt_put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void pt_raw_hello(int fd, uint64_t cluster, uint64_t from, uint64_t to,
			 uint8_t stream)
{
	uint8_t f[5 + 29];

	pt_put_be(f, 30, 4);
	f[4] = 1;
	pt_put_be(f + 5, 1, 4);
	f[9] = stream;
	pt_put_be(f + 10, cluster, 8);
	pt_put_be(f + 18, from, 8);
	pt_put_be(f + 26, to, 8);
	ck_assert_int_eq(write(fd, f, sizeof(f)), (ssize_t)sizeof(f));
}

/* Has the server closed fd? (reads and discards what it sent first) */
static bool pt_raw_closed(void *arg)
{
	int fd = *(int *)arg;
	uint8_t buf[256];
	ssize_t r;

	while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		;
	return r == 0 || (r < 0 && errno == ECONNRESET);
}

/* Send n bytes of buf on fd, expect the server to close fd within ms,
 * close it. A macro so that a failure names the caller's line. */
#define PT_RAW_SEND_REFUSED(fd, buf, n, ms)                                  \
	do {                                                                 \
		ck_assert_int_eq(write(fd, buf, n), (ssize_t)(n));          \
		ck_assert(pt_run_until(pt_raw_closed, &(fd), ms));          \
		close(fd);                                                   \
	} while (0)

/* Has the server closed fd? Keeps what it sent for pt_raw_read. */
static bool pt_raw_closed_keep(void *arg)
{
	struct pollfd p = {*(int *)arg, POLLRDHUP, 0};

	return poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP));
}

/* Read what fd holds until EOF (bounded by n). */
static ssize_t pt_raw_read(int fd, uint8_t *buf, size_t n)
{
	size_t got = 0;
	ssize_t r;

	while (got < n && (r = recv(fd, buf + got, n - got, 0)) > 0)
		got += (size_t)r;
	return (ssize_t)got;
}

static uint64_t pt_get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static void pt_assert_still_works(void)
{
	struct raft_msg m = pt_msg(RAFT_MSG_APP_RESP, 2, 9);
	size_t before = pt_nodes[1].n_recs;

	ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert(pt_wait_recs(1, before + 1, 3000));
	pt_assert_msg_eq(&m, &pt_nodes[1].recs[before], 1);
}

START_TEST(test_garbage_frames)
{
	static const uint8_t junk_pb[] = {
		0x05, 3,    0xff, 0xff, 0xff,
		0xff, 0xff, 0xff, 0xff}; /* bad varint */
	uint8_t f[16];
	struct peer_transport_stats ts;
	int fd;

	pt_start(0, 0);
	pt_start(1, 0);
	pt_mesh(2);
	pt_assert_still_works();

	/* 1. An oversized length before anything else. */
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_put_be(f, 0xfffffff0u, 4);
	f[4] = 3;
	PT_RAW_SEND_REFUSED(fd, f, 5, 3000);

	/* 2. A good hello (as member 1), then a MSG that does not parse. */
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_raw_hello(fd, PT_CLUSTER, 1, 2, 0);
	memcpy(f + 4, junk_pb, sizeof(junk_pb));
	f[4] = 3;
	pt_put_be(f, sizeof(junk_pb), 4);
	PT_RAW_SEND_REFUSED(fd, f, 4 + sizeof(junk_pb), 3000);

	/* 3. A zero length, then 4. an unknown frame kind after a hello. */
	fd = pt_raw_connect(pt_nodes[1].port);
	memset(f, 0, 8);
	PT_RAW_SEND_REFUSED(fd, f, 8, 3000);
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_raw_hello(fd, PT_CLUSTER, 1, 2, 0);
	pt_put_be(f, 2, 4);
	f[4] = 77;
	f[5] = 0;
	PT_RAW_SEND_REFUSED(fd, f, 6, 3000);

	/* 5. A hello announced as 1 MiB: refused at its header, well before
	 * the hello timeout (2 s), not buffered while it trickles in. */
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_put_be(f, 1u << 20, 4);
	f[4] = 1;
	PT_RAW_SEND_REFUSED(fd, f, 6, 1000);

	peer_transport_stats(pt_nodes[1].t, &ts);
	ck_assert_uint_eq(ts.bad_frames, 5);
	ck_assert_uint_eq(pt_nodes[1].n_recs, 1); /* nothing from the junk */
	/* The raw hellos as member 1 replaced node 0's real stream (newest
	 * wins); node 0 notices, redials, and the transport works on. */
	pt_assert_still_works();
}
END_TEST

/* on_msg may remove the very member whose stream it is reading: the
 * frame stays valid, the rest of that stream is discarded, and the member
 * can be added again. */
START_TEST(test_remove_from_callback)
{
	struct raft_entry e = {2, 5, RAFT_ENTRY_NORMAL, NULL, 0};
	struct raft_msg m = pt_msg(RAFT_MSG_APP, 2, 3);
	static uint8_t blob[10000]; /* all 5 leave in one flush */

	memset(blob, 0xa5, sizeof(blob));
	e.data = blob;
	e.len = sizeof(blob);
	m.entries = &e;
	m.n_entries = 1;
	pt_start(0, 0);
	pt_start(1, 0);
	pt_mesh(2);
	pt_assert_still_works();
	pt_remove_on_msg = true;
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert(pt_wait_recs(1, 2, 3000));
	pt_run_for(100);
	ck_assert_uint_eq(pt_nodes[1].n_recs, 2); /* the rest: refused */
	pt_assert_msg_eq(&m, &pt_nodes[1].recs[1], 1);
	ck_assert_int_eq(
		peer_add(pt_nodes[1].t, 1, "127.0.0.1", pt_nodes[0].port), 0);
	pt_assert_still_works();
}
END_TEST

/* The queue is bounded in messages and bytes: old non-vote messages are
 * dropped first, then new ones; votes are kept. */
START_TEST(test_queue_bounded)
{
	struct peer_config cfg = pt_cfg(1);
	struct raft_msg m = pt_msg(RAFT_MSG_HEARTBEAT, 2, 1);
	struct raft_entry e = {1, 1, RAFT_ENTRY_NORMAL, NULL, 0};
	struct peer_stats st;
	static uint8_t blob[300000];

	cfg.max_queue_msgs = 10;
	cfg.max_queue_bytes = 1u << 20;
	cfg.max_frame = 512u << 10;
	pt_start_cfg(0, 0, &cfg);
	ck_assert_int_eq(
		peer_add(pt_nodes[0].t, 2, "127.0.0.1", pt_free_port()), 0);
	for (int i = 0; i < 100; i++)
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert_uint_eq(st.queued_msgs, 10);
	ck_assert_uint_eq(st.dropped_queue, 90);
	m.type = RAFT_MSG_VOTE;
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), -EAGAIN);
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert_uint_eq(st.queued_msgs, 10);
	ck_assert_uint_eq(st.dropped_queue, 101);
	ck_assert_int_eq(peer_remove(pt_nodes[0].t, 2), 0);

	/* Bytes: 300 KB entries, 1 MiB of queue: at most 3 fit. */
	ck_assert_int_eq(
		peer_add(pt_nodes[0].t, 2, "127.0.0.1", pt_free_port()), 0);
	e.data = blob;
	e.len = sizeof(blob);
	m.type = RAFT_MSG_APP;
	m.entries = &e;
	m.n_entries = 1;
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert_uint_eq(st.queued_msgs, 3);
	ck_assert_uint_le(st.queued_bytes, 1u << 20);
	ck_assert_uint_eq(st.dropped_queue, 17);
	/* Larger than max_frame: refused outright. */
	e.len = 600000;
	{
		uint8_t *big = calloc(1, e.len);

		ck_assert_ptr_nonnull(big);
		e.data = big;
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), -EMSGSIZE);
		free(big);
	}
}
END_TEST

/* The drop filter cuts member 1 off both ways, then heals. */
static bool pt_cut_1(void *arg, uint64_t from, uint64_t to)
{
	(void)arg;
	return from == 1 || to == 1;
}

START_TEST(test_drop_filter)
{
	struct raft_msg a = pt_msg(RAFT_MSG_HEARTBEAT, 2, 1);
	struct raft_msg b = pt_msg(RAFT_MSG_HEARTBEAT_RESP, 1, 2);
	struct raft_msg c = pt_msg(RAFT_MSG_APP_RESP, 3, 3);
	struct peer_stats st;

	for (int i = 0; i < 3; i++)
		pt_start(i, 0);
	pt_mesh(3);
	/* Only node 1 and 2 cut: the filter works from either end. */
	peer_set_drop_filter(pt_nodes[0].t, pt_cut_1, NULL);
	peer_set_drop_filter(pt_nodes[1].t, pt_cut_1, NULL);
	for (int i = 0; i < 5; i++) {
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &a), 0);
		ck_assert_int_eq(peer_send(pt_nodes[1].t, &b), 0);
		ck_assert_int_eq(peer_send(pt_nodes[1].t, &c), 0);
	}
	ck_assert(pt_wait_recs(2, 5, 3000)); /* 2 -> 3 flows */
	pt_run_for(200);
	ck_assert_uint_eq(pt_nodes[0].n_recs, 0);
	ck_assert_uint_eq(pt_nodes[1].n_recs, 0);
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert_uint_eq(st.dropped_filter, 5);
	ck_assert_int_eq(peer_stats(pt_nodes[1].t, 1, &st), 0);
	ck_assert_uint_eq(st.dropped_filter, 5);

	/* Cut only at the receiver: node 3 sends to 1, node 1 filters. */
	c.to = 1;
	ck_assert_int_eq(peer_send(pt_nodes[2].t, &c), 0);
	pt_run_for(200);
	ck_assert_uint_eq(pt_nodes[0].n_recs, 0);
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 3, &st), 0);
	ck_assert_uint_eq(st.dropped_filter, 1);

	peer_set_drop_filter(pt_nodes[0].t, NULL, NULL);
	peer_set_drop_filter(pt_nodes[1].t, NULL, NULL);
	ck_assert_int_eq(peer_send(pt_nodes[0].t, &a), 0);
	ck_assert_int_eq(peer_send(pt_nodes[1].t, &b), 0);
	ck_assert(pt_wait_recs(1, 1, 3000));
	ck_assert(pt_wait_recs(0, 1, 3000));
	pt_assert_msg_eq(&a, &pt_nodes[1].recs[0], 1);
	pt_assert_msg_eq(&b, &pt_nodes[0].recs[0], 2);
}
END_TEST

/* ---- snapshots ---------------------------------------------------------- */

static char pt_dir[64];
static int pt_done_err = 1;
static int pt_done_calls;
static uint64_t pt_hb_sent;

static void pt_on_snap(void *arg, uint64_t from,
		       const struct peer_snap_meta *meta, const char *path)
{
	struct pt_node *n = arg;

	n->snaps++;
	n->snap_from = from;
	n->snap_meta = *meta;
	/* the arrays are the transport's: keep copies */
	ck_assert_uint_le(meta->n_voters + meta->n_learners, 8);
	memcpy(n->snap_ids, meta->voters ? meta->voters : n->snap_ids,
	       meta->n_voters * sizeof(uint64_t));
	memcpy(n->snap_ids + meta->n_voters,
	       meta->learners ? meta->learners : n->snap_ids,
	       meta->n_learners * sizeof(uint64_t));
	n->snap_meta.voters = n->snap_meta.learners = NULL;
	snprintf(n->snap_path, sizeof(n->snap_path), "%s", path);
}

static void pt_snap_done(void *arg, int err)
{
	(void)arg;
	pt_done_err = err;
	pt_done_calls++;
	pt_nodes[0].snap_in_flight = false;
}

static bool pt_snap_over(void *arg)
{
	(void)arg;
	return pt_done_calls > 0;
}

static void pt_hb_cb(evutil_socket_t fd, short what, void *arg)
{
	struct raft_msg m = pt_msg(RAFT_MSG_HEARTBEAT, 2, 0);

	(void)fd;
	(void)what;
	(void)arg;
	m.commit = pt_now_us(); /* the receiver measures the delay */
	if (peer_send(pt_nodes[0].t, &m) == 0)
		pt_hb_sent++;
}

static uint32_t pt_file_crc(const char *path, off_t *size)
{
	uint8_t buf[65536];
	uint32_t crc = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	*size = 0;
	while ((r = read(fd, buf, sizeof(buf))) > 0) {
		crc = crc32c(crc, buf, (size_t)r);
		*size += r;
	}
	close(fd);
	return crc;
}

/* A snapshot of 24 MiB goes over its own stream while heartbeats every
 * 2 ms keep arriving on the message stream without delay. */
START_TEST(test_snapshot_with_heartbeats)
{
	const size_t size = 24u << 20;
	struct peer_config cfg = pt_cfg(2);
	uint64_t voters[3] = {1, 2, 0xabcdef0123456789ULL}, learners[1] = {9};
	struct peer_snap_meta meta = {.term = 7,
				      .index = 12345,
				      .size = size,
				      .raft_term = 8,
				      .voters = voters,
				      .n_voters = 3,
				      .learners = learners,
				      .n_learners = 1};
	char src[128];
	uint8_t *buf = malloc(1u << 20);
	struct timeval tv = {0, 2000};
	struct event *hb;
	uint32_t want_crc = 0;
	off_t got_size;
	uint64_t t0, t1;
	int fd;

	ck_assert_ptr_nonnull(buf);
	snprintf(pt_dir, sizeof(pt_dir), "/tmp/check_peer.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(pt_dir));
	snprintf(src, sizeof(src), "%s/src", pt_dir);
	fd = open(src, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	for (size_t off = 0; off < size; off += 1u << 20) {
		for (size_t i = 0; i < 1u << 20; i++)
			buf[i] = (uint8_t)((off + i) * 2654435761u >> 13);
		ck_assert_int_eq(write(fd, buf, 1u << 20), 1 << 20);
		want_crc = crc32c(want_crc, buf, 1u << 20);
	}
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);

	cfg.snap_dir = pt_dir;
	pt_start(0, 0);
	pt_start_cfg(1, 0, &cfg);
	peer_set_snapshot_handler(pt_nodes[1].t, pt_on_snap, &pt_nodes[1]);
	pt_mesh(2);
	{
		struct raft_msg m = pt_msg(RAFT_MSG_HEARTBEAT, 2, 1);
		ck_assert_int_eq(peer_send(pt_nodes[0].t, &m), 0);
		ck_assert(pt_wait_recs(1, 1, 3000)); /* stream is up */
	}
	hb = event_new(pt_base, -1, EV_PERSIST, pt_hb_cb, NULL);
	ck_assert_ptr_nonnull(hb);
	event_add(hb, &tv);
	pt_run_for(20);
	pt_done_calls = 0;
	pt_nodes[0].snap_in_flight = true;
	t0 = pt_now_us();
	ck_assert_int_eq(peer_snapshot_send_fd(pt_nodes[0].t, 2, &meta, fd,
					       pt_snap_done, NULL),
			 0);
	ck_assert_int_eq(peer_snapshot_send_fd(pt_nodes[0].t, 2, &meta, fd,
					       pt_snap_done, NULL),
			 -EBUSY);
	voters[0] = learners[0] = 0; /* copied by the send */
	ck_assert(pt_run_until(pt_snap_over, NULL, 20000));
	t1 = pt_now_us();
	pt_run_for(20);
	event_free(hb);
	close(fd);

	ck_assert_int_eq(pt_done_err, 0);
	ck_assert_int_eq(pt_done_calls, 1);
	ck_assert_int_eq(pt_nodes[1].snaps, 1);
	ck_assert_uint_eq(pt_nodes[1].snap_from, 1);
	ck_assert_uint_eq(pt_nodes[1].snap_meta.term, 7);
	ck_assert_uint_eq(pt_nodes[1].snap_meta.index, 12345);
	ck_assert_uint_eq(pt_nodes[1].snap_meta.size, size);
	ck_assert_uint_eq(pt_nodes[1].snap_meta.raft_term, 8);
	ck_assert_uint_eq(pt_nodes[1].snap_meta.n_voters, 3);
	ck_assert_uint_eq(pt_nodes[1].snap_meta.n_learners, 1);
	ck_assert_uint_eq(pt_nodes[1].snap_ids[0], 1);
	ck_assert_uint_eq(pt_nodes[1].snap_ids[1], 2);
	ck_assert_uint_eq(pt_nodes[1].snap_ids[2], 0xabcdef0123456789ULL);
	ck_assert_uint_eq(pt_nodes[1].snap_ids[3], 9);
	ck_assert_uint_eq(pt_file_crc(pt_nodes[1].snap_path, &got_size),
			  want_crc);
	ck_assert_int_eq(got_size, (off_t)size);
	fprintf(stderr,
		"check_peer: %zu MiB snapshot in %llu ms; %llu heartbeats "
		"arrived during it, worst heartbeat delay %llu us\n",
		size >> 20, (unsigned long long)(t1 - t0) / 1000,
		(unsigned long long)pt_nodes[1].hb_during_snap,
		(unsigned long long)pt_nodes[1].hb_max_lat_us);
	/* Heartbeats flowed during the transfer, and none waited behind the
	 * snapshot: the worst delay is far below the transfer time. */
	ck_assert_uint_ge(pt_nodes[1].hb_during_snap, 1);
	ck_assert_uint_lt(pt_nodes[1].hb_max_lat_us, 100000);
	ck_assert_uint_lt(pt_nodes[1].hb_max_lat_us, (t1 - t0) / 2 + 20000);
	unlink(pt_nodes[1].snap_path);
	unlink(src);
	ck_assert_int_eq(rmdir(pt_dir), 0);
	free(buf);
}
END_TEST

/* A refused snapshot (receiver has no snap_dir) and a removed peer end
 * with done called once with an error, and leave no file behind. */
START_TEST(test_snapshot_refused)
{
	struct peer_snap_meta meta = {.term = 1, .index = 1};
	int fds[2];

	pt_start(0, 0);
	pt_start(1, 0);
	pt_mesh(2);
	ck_assert_int_eq(pipe(fds), 0);
	close(fds[1]); /* an empty snapshot */
	{
		struct peer_snap_meta bad = meta;
		static uint64_t many[PEER_MAX_CONF_IDS + 1];

		bad.voters = many;
		bad.n_voters = PEER_MAX_CONF_IDS + 1;
		ck_assert_int_eq(peer_snapshot_send_fd(pt_nodes[0].t, 2, &bad,
						       fds[0], pt_snap_done,
						       NULL),
				 -EINVAL);
		bad.n_voters = 0;
		bad.n_learners = 2; /* learners NULL */
		ck_assert_int_eq(peer_snapshot_send_fd(pt_nodes[0].t, 2, &bad,
						       fds[0], pt_snap_done,
						       NULL),
				 -EINVAL);
	}
	pt_done_calls = 0;
	ck_assert_int_eq(peer_snapshot_send_fd(pt_nodes[0].t, 2, &meta, fds[0],
					       pt_snap_done, NULL),
			 0);
	ck_assert_int_eq(peer_snapshot_send_fd(pt_nodes[0].t, 3, &meta, fds[0],
					       pt_snap_done, NULL),
			 -ENOENT);
	ck_assert(pt_run_until(pt_snap_over, NULL, 3000));
	ck_assert_int_eq(pt_done_err, -ECONNREFUSED);
	ck_assert_int_eq(pt_done_calls, 1);

	/* Cancelled by peer_remove: done runs inside it, once. */
	pt_done_calls = 0;
	ck_assert_int_eq(peer_snapshot_send_fd(pt_nodes[0].t, 2, &meta, fds[0],
					       pt_snap_done, NULL),
			 0);
	ck_assert_int_eq(peer_remove(pt_nodes[0].t, 2), 0);
	ck_assert_int_eq(pt_done_calls, 1);
	ck_assert_int_eq(pt_done_err, -ECANCELED);
	pt_run_for(50);
	ck_assert_int_eq(pt_done_calls, 1);
	close(fds[0]);
}
END_TEST

/* A sender whose source fails half-way gets its error back; the receiver
 * drops the partial file. A stream with a bad checksum is refused. */
static int pt_reads;

static ssize_t pt_failing_read(void *arg, void *buf, size_t n)
{
	(void)arg;
	if (++pt_reads > 20)
		return -EIO;
	memset(buf, 0x5a, n);
	return (ssize_t)n;
}

static bool pt_dir_empty(void *arg)
{
	DIR *d = opendir(pt_dir);
	struct dirent *de;
	int n = 0;

	(void)arg;
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n == 0;
}

START_TEST(test_snapshot_failures)
{
	struct peer_config cfg = pt_cfg(2);
	struct peer_snap_meta meta = {.term = 3, .index = 30};
	struct peer_transport_stats ts;
	uint8_t f[80];
	int fd;

	snprintf(pt_dir, sizeof(pt_dir), "/tmp/check_peer.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(pt_dir));
	cfg.snap_dir = pt_dir;
	pt_start(0, 0);
	pt_start_cfg(1, 0, &cfg);
	peer_set_snapshot_handler(pt_nodes[1].t, pt_on_snap, &pt_nodes[1]);
	pt_mesh(2);

	pt_reads = 0;
	pt_done_calls = 0;
	ck_assert_int_eq(peer_snapshot_send(pt_nodes[0].t, 2, &meta,
					    pt_failing_read, NULL, pt_snap_done,
					    NULL),
			 0);
	ck_assert(pt_run_until(pt_snap_over, NULL, 3000));
	ck_assert_int_eq(pt_done_err, -EIO);
	ck_assert(pt_run_until(pt_dir_empty, NULL, 3000));
	ck_assert_int_eq(pt_nodes[1].snaps, 0);

	/* Raw: hello (snapshot stream), BEGIN, 3 bytes, END with a bad crc. */
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_raw_hello(fd, PT_CLUSTER, 1, 2, 1);
	pt_put_be(f, 41, 4);
	f[4] = 4;
	memset(f + 5, 0, 40);
	pt_put_be(f + 45, 4, 4);
	f[49] = 5;
	memcpy(f + 50, "abc", 3);
	pt_put_be(f + 53, 13, 4);
	f[57] = 6;
	pt_put_be(f + 58, 3, 8);
	pt_put_be(f + 66, 0xdeadbeef, 4);
	PT_RAW_SEND_REFUSED(fd, f, 70, 3000);
	peer_transport_stats(pt_nodes[1].t, &ts);
	ck_assert_uint_eq(ts.bad_frames, 1);
	ck_assert_uint_eq(ts.snaps_received, 0);
	/* Raw BEGINs with too many voters, and with a count that does not
	 * match the length: both malformed. */
	for (int k = 0; k < 2; k++) {
		size_t nv = k ? 3 : PEER_MAX_CONF_IDS + 1, len = 41 + 8 * nv;
		uint8_t *b = calloc(1, 4 + len);

		ck_assert_ptr_nonnull(b);
		pt_put_be(b, k ? len - 8 : len, 4);
		b[4] = 4;
		pt_put_be(b + 5 + 32, nv, 4);
		fd = pt_raw_connect(pt_nodes[1].port);
		pt_raw_hello(fd, PT_CLUSTER, 1, 2, 1);
		PT_RAW_SEND_REFUSED(fd, b, 4 + len - (k ? 8 : 0), 3000);
		free(b);
	}
	/* A BEGIN announced as 1 MiB: refused at its header, before the
	 * hello timeout (2 s). */
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_raw_hello(fd, PT_CLUSTER, 1, 2, 1);
	pt_put_be(f, 1u << 20, 4);
	f[4] = 4;
	PT_RAW_SEND_REFUSED(fd, f, 6, 1000);
	peer_transport_stats(pt_nodes[1].t, &ts);
	ck_assert_uint_eq(ts.bad_frames, 4);
	ck_assert_uint_eq(ts.snaps_received, 0);
	ck_assert(pt_run_until(pt_dir_empty, NULL, 3000));
	ck_assert_int_eq(pt_nodes[1].snaps, 0);
	ck_assert_int_eq(rmdir(pt_dir), 0);
}
END_TEST

/* ---- the codec alone (net/peer_codec.h) -------------------------------- */

static struct peer_codec *pc_new(size_t max_entries)
{
	struct peer_codec *c = calloc(1, sizeof(*c));

	ck_assert_ptr_nonnull(c);
	c->max_entries = max_entries;
	return c;
}

static void pc_free(struct peer_codec *c)
{
	peer_codec_free(c);
	free(c);
}

/* Encode m from `from`, decode it into *out (valid while buf and c are). */
static int pc_roundtrip(struct peer_codec *c, const struct raft_msg *m,
			uint64_t from, uint8_t **buf, struct raft_msg *out)
{
	size_t size;

	ck_assert_int_eq(peer_codec_size(m, from, &size), 0);
	*buf = malloc(size ? size : 1);
	ck_assert_ptr_nonnull(*buf);
	ck_assert_int_eq(peer_codec_encode(m, from, *buf, size), 0);
	return peer_codec_decode(c, *buf, size, out);
}

/* PROP (entries, term 0), READ_INDEX / READ_INDEX_RESP / HEARTBEAT(_RESP)
 * with a ctx, VOTE / PRE_VOTE with transfer, TIMEOUT_NOW, and SNAP with
 * its metadata: every field survives. */
START_TEST(test_codec_new_types)
{
	struct peer_codec *c = pc_new(16);
	uint8_t data[] = "forwarded";
	struct raft_entry ents[2] = {
		{0, 0, RAFT_ENTRY_NORMAL, data, sizeof(data)},
		{0, 0, RAFT_ENTRY_CONF_CHANGE, data, 3},
	};
	static const uint64_t voters[] = {1, 2, 0xfedcba9876543210ULL};
	static const uint64_t learners[] = {77};
	struct {
		enum raft_msg_type type;
		uint64_t ctx;
		bool transfer;
	} cases[] = {
		{RAFT_MSG_PROP, 0, false},
		{RAFT_MSG_READ_INDEX, 0x0102030405060708ULL, false},
		{RAFT_MSG_READ_INDEX_RESP, UINT64_MAX, false},
		{RAFT_MSG_HEARTBEAT, 1, false},
		{RAFT_MSG_HEARTBEAT_RESP, 0x8000000000000000ULL, false},
		{RAFT_MSG_VOTE, 0, true},
		{RAFT_MSG_PRE_VOTE, 0, true},
		{RAFT_MSG_VOTE, 0, false},
		{RAFT_MSG_TIMEOUT_NOW, 0, false},
		{RAFT_MSG_SNAP, 0, false},
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct raft_msg m = pt_msg(cases[k].type, 2, k), d;
		uint8_t *buf;

		m.ctx = cases[k].ctx;
		m.transfer = cases[k].transfer;
		if (m.type == RAFT_MSG_PROP) {
			m.term = 0;
			m.entries = ents;
			m.n_entries = 2;
		}
		if (m.type == RAFT_MSG_SNAP) {
			m.snap = (struct raft_snap_meta){1000, 9,	 voters,
							 3,    learners, 1};
		}
		ck_assert_int_eq(pc_roundtrip(c, &m, 5, &buf, &d), 0);
		pt_assert_msg_eq(&m, &d, 5);
		ck_assert_uint_eq(d.ctx, m.ctx);
		ck_assert_int_eq(d.transfer, m.transfer);
		if (m.type == RAFT_MSG_SNAP) {
			ck_assert_uint_eq(d.snap.index, 1000);
			ck_assert_uint_eq(d.snap.term, 9);
			ck_assert_uint_eq(d.snap.n_voters, 3);
			ck_assert_uint_eq(d.snap.n_learners, 1);
			for (int i = 0; i < 3; i++)
				ck_assert_uint_eq(d.snap.voters[i], voters[i]);
			ck_assert_uint_eq(d.snap.learners[0], 77);
		} else {
			ck_assert_uint_eq(d.snap.n_voters, 0);
			ck_assert_ptr_null(d.snap.voters);
		}
		free(buf);
	}
	pc_free(c);
}
END_TEST

/* Protobuf writer for hand-made inputs. */
struct pc_buf {
	uint8_t b[16384];
	size_t n;
};

static void pc_varint(struct pc_buf *w, uint64_t v)
{
	do {
		ck_assert_uint_lt(w->n, sizeof(w->b));
		w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
}

static void pc_bytes(struct pc_buf *w, unsigned field, const uint8_t *p,
		     size_t n)
{
	pc_varint(w, field << 3 | 2);
	pc_varint(w, n);
	ck_assert_uint_le(w->n + n, sizeof(w->b));
	memcpy(w->b + w->n, p, n);
	w->n += n;
}

/* A MsgSnap whose ConfState holds n voters, packed or not. */
static void pc_snap_msg(struct pc_buf *w, size_t n, bool packed)
{
	struct pc_buf cs = {.n = 0}, md = {.n = 0}, sn = {.n = 0},
		      ids = {.n = 0};

	for (size_t i = 0; i < n; i++) {
		if (!packed)
			pc_varint(&cs, 1 << 3 | 0);
		pc_varint(packed ? &ids : &cs, i + 1);
	}
	if (packed)
		pc_bytes(&cs, 1, ids.b, ids.n);
	pc_bytes(&md, 1, cs.b, cs.n);
	pc_varint(&md, 2 << 3 | 0);
	pc_varint(&md, 42);
	pc_bytes(&sn, 2, md.b, md.n);
	w->n = 0;
	pc_varint(w, 1 << 3 | 0);
	pc_varint(w, 7); /* MsgSnap */
	pc_varint(w, 2 << 3 | 0);
	pc_varint(w, 1); /* to */
	pc_bytes(w, 9, sn.b, sn.n);
}

/* Every decoded count is bounded; odd contexts and unknown types are
 * handled as documented. */
START_TEST(test_codec_bounds)
{
	struct peer_codec *c = pc_new(2);
	struct pc_buf *w = calloc(1, sizeof(*w));
	struct raft_msg m = pt_msg(RAFT_MSG_APP, 2, 1), d;
	struct raft_entry ents[3];
	uint64_t many[PEER_MAX_CONF_IDS + 1] = {0};
	uint8_t big[65], *buf;
	size_t size;

	ck_assert_ptr_nonnull(w);
	/* entries past max_entries */
	memset(ents, 0, sizeof(ents));
	m.entries = ents;
	m.n_entries = 3;
	ck_assert_int_eq(pc_roundtrip(c, &m, 1, &buf, &d), -EPROTO);
	free(buf);
	m.n_entries = 2;
	ck_assert_int_eq(pc_roundtrip(c, &m, 1, &buf, &d), 0);
	ck_assert_uint_eq(d.n_entries, 2);
	free(buf);
	/* the encoder refuses what a decoder would refuse */
	m = pt_msg(RAFT_MSG_SNAP, 2, 1);
	m.snap.voters = many;
	m.snap.n_voters = PEER_MAX_CONF_IDS + 1;
	ck_assert_int_eq(peer_codec_size(&m, 1, &size), -EINVAL);
	m.snap.n_voters = 1;
	m.snap.learners = NULL;
	m.snap.n_learners = 1;
	ck_assert_int_eq(peer_codec_size(&m, 1, &size), -EINVAL);
	m = pt_msg(RAFT_MSG_HEARTBEAT, 2, 1);
	m.ctx = 5;
	m.transfer = true;
	ck_assert_int_eq(peer_codec_size(&m, 1, &size), -EINVAL);
	/* hand-made: voters at the bound pass, one more fails, both ways */
	for (int packed = 0; packed < 2; packed++) {
		pc_snap_msg(w, PEER_MAX_CONF_IDS, packed);
		ck_assert_int_eq(peer_codec_decode(c, w->b, w->n, &d), 0);
		ck_assert_int_eq(d.type, RAFT_MSG_SNAP);
		ck_assert_uint_eq(d.snap.index, 42);
		ck_assert_uint_eq(d.snap.n_voters, PEER_MAX_CONF_IDS);
		ck_assert_uint_eq(d.snap.voters[PEER_MAX_CONF_IDS - 1],
				  PEER_MAX_CONF_IDS);
		pc_snap_msg(w, PEER_MAX_CONF_IDS + 1, packed);
		ck_assert_int_eq(peer_codec_decode(c, w->b, w->n, &d), -EPROTO);
	}
	/* context: 65 bytes is malformed, 5 bytes is ignored */
	memset(big, 0xab, sizeof(big));
	w->n = 0;
	pc_varint(w, 1 << 3 | 0);
	pc_varint(w, 8); /* MsgHeartbeat */
	pc_bytes(w, 12, big, 5);
	ck_assert_int_eq(peer_codec_decode(c, w->b, w->n, &d), 0);
	ck_assert_int_eq(d.type, RAFT_MSG_HEARTBEAT);
	ck_assert_uint_eq(d.ctx, 0);
	ck_assert(!d.transfer);
	pc_bytes(w, 12, big, 65);
	ck_assert_int_eq(peer_codec_decode(c, w->b, w->n, &d), -EPROTO);
	/* a type outside the table (MsgHup) */
	w->n = 0;
	pc_varint(w, 1 << 3 | 0);
	pc_varint(w, 0);
	ck_assert_int_eq(peer_codec_decode(c, w->b, w->n, &d), -ENOTSUP);
	/* truncated input */
	pc_snap_msg(w, 3, false);
	ck_assert_int_eq(peer_codec_decode(c, w->b, w->n - 1, &d), -EPROTO);
	free(w);
	pc_free(c);
}
END_TEST

/* ---- requests ----------------------------------------------------------- */

struct pt_rep {
	int calls, err;
	char buf[64];
	size_t len;
};

static struct peer_reply_ctx *pt_held[8]; /* answers owed by "hold" */
static int pt_n_held;
static uint64_t pt_req_from;

static void pt_reply_cb(void *arg, int err, const void *resp, size_t len)
{
	struct pt_rep *r = arg;

	r->calls++;
	r->err = err;
	r->len = len;
	ck_assert_uint_le(len, sizeof(r->buf));
	if (len)
		memcpy(r->buf, resp, len);
}

/* "err": answers -EPERM; "hold": answers later (pt_held); else echoes
 * with a "re:" prefix. */
static void pt_req_handler(void *arg, uint64_t from, const void *req,
			   size_t len, struct peer_reply_ctx *rc)
{
	char out[64];

	(void)arg;
	pt_req_from = from;
	if (len == 3 && !memcmp(req, "err", 3)) {
		peer_reply(rc, -EPERM, "ignored", 7);
	} else if (len == 4 && !memcmp(req, "hold", 4)) {
		ck_assert_int_lt(pt_n_held, 8);
		pt_held[pt_n_held++] = rc;
	} else {
		ck_assert_uint_le(len, sizeof(out) - 3);
		memcpy(out, "re:", 3);
		memcpy(out + 3, req, len);
		peer_reply(rc, 0, out, len + 3);
	}
}

static bool pt_has_held(void *arg)
{
	(void)arg;
	return pt_n_held > 0;
}

static bool pt_rep_done(void *arg)
{
	return ((struct pt_rep *)arg)->calls > 0;
}

static void pt_setup_reqs(void)
{
	pt_n_held = 0;
	pt_req_from = 0;
	pt_start(0, 0);
	pt_start(1, 0);
	pt_mesh(2);
	peer_set_request_handler(pt_nodes[1].t, PEER_REQ_LEASE, pt_req_handler,
				 NULL);
	peer_set_request_handler(pt_nodes[1].t, PEER_REQ_JOIN, pt_req_handler,
				 NULL);
}

/* An answer, an error, a late answer, a kind without a handler; the
 * callback never runs inside peer_request. */
START_TEST(test_request_reply)
{
	struct pt_rep a = {0}, b = {0}, c = {0}, d = {0};
	struct peer_transport *t;

	pt_setup_reqs();
	t = pt_nodes[0].t;
	ck_assert_int_eq(peer_request(t, 2, PEER_REQ_LEASE, "ping", 4, 3000,
				      pt_reply_cb, &a),
			 0);
	ck_assert_int_eq(peer_request(t, 2, PEER_REQ_LEASE, "err", 3, 3000,
				      pt_reply_cb, &b),
			 0);
	ck_assert_int_eq(peer_request(t, 2, PEER_REQ_LEASE, "hold", 4, 3000,
				      pt_reply_cb, &c),
			 0);
	ck_assert_int_eq(peer_request(t, 2, PEER_REQ_PROMOTE, "x", 1, 3000,
				      pt_reply_cb, &d),
			 0);
	ck_assert_int_eq(a.calls + b.calls + c.calls + d.calls, 0);
	ck_assert(pt_run_until(pt_rep_done, &a, 3000));
	ck_assert(pt_run_until(pt_rep_done, &d, 3000));
	ck_assert_int_eq(a.err, 0);
	ck_assert_uint_eq(a.len, 7);
	ck_assert_int_eq(memcmp(a.buf, "re:ping", 7), 0);
	ck_assert_uint_eq(pt_req_from, 1);
	ck_assert_int_eq(b.calls, 1);
	ck_assert_int_eq(b.err, -EPERM);
	ck_assert_uint_eq(b.len, 0); /* no body with an error */
	ck_assert_int_eq(d.err, -ENOENT);
	ck_assert_int_eq(c.calls, 0);
	ck_assert_int_eq(pt_n_held, 1);
	peer_reply(pt_held[0], 0, "late", 4);
	ck_assert(pt_run_until(pt_rep_done, &c, 3000));
	ck_assert_int_eq(c.err, 0);
	ck_assert_int_eq(memcmp(c.buf, "late", 4), 0);
	pt_run_for(30);
	ck_assert_int_eq(a.calls + b.calls + c.calls + d.calls, 4);
	/* raft messages still flow beside the requests */
	pt_assert_still_works();
	/* argument errors: cb is never called */
	ck_assert_int_eq(peer_request(t, 3, PEER_REQ_LEASE, "x", 1, 100,
				      pt_reply_cb, &a),
			 -ENOENT);
	ck_assert_int_eq(peer_request(t, 2, 0, "x", 1, 100, pt_reply_cb, &a),
			 -EINVAL);
	ck_assert_int_eq(peer_request(t, 2, PEER_REQ_KINDS, "x", 1, 100,
				      pt_reply_cb, &a),
			 -EINVAL);
	ck_assert_int_eq(
		peer_request(t, 2, PEER_REQ_LEASE, "x", 1, 0, pt_reply_cb, &a),
		-EINVAL);
	ck_assert_int_eq(peer_request(t, 2, PEER_REQ_LEASE, NULL, 1, 100,
				      pt_reply_cb, &a),
			 -EINVAL);
	ck_assert_int_eq(peer_request(t, 2, PEER_REQ_LEASE, "x",
				      PEER_DEFAULT_MAX_FRAME, 100, pt_reply_cb,
				      &a),
			 -EMSGSIZE);
	pt_run_for(20);
	ck_assert_int_eq(a.calls, 1);
}
END_TEST

/* A stream that got an answer and then idles stays up: libevent re-arms
 * the hello's read timeout at the next read; the dialer's read side may
 * idle (it once dropped and redialed the stream hello_timeout after every
 * answer, losing what was queued). */
START_TEST(test_idle_after_reply)
{
	struct peer_config cfg0 = pt_cfg(1), cfg1 = pt_cfg(2);
	struct pt_rep a = {0};
	struct peer_stats st;

	cfg0.hello_timeout_ms = cfg1.hello_timeout_ms = 200;
	pt_start_cfg(0, 0, &cfg0);
	pt_start_cfg(1, 0, &cfg1);
	pt_mesh(2);
	peer_set_request_handler(pt_nodes[1].t, PEER_REQ_LEASE, pt_req_handler,
				 NULL);
	ck_assert_int_eq(peer_request(pt_nodes[0].t, 2, PEER_REQ_LEASE, "ping",
				      4, 3000, pt_reply_cb, &a),
			 0);
	ck_assert(pt_run_until(pt_rep_done, &a, 3000));
	ck_assert_int_eq(a.err, 0);
	pt_run_for(700); /* > 3 x hello_timeout_ms of silence */
	ck_assert_int_eq(peer_stats(pt_nodes[0].t, 2, &st), 0);
	ck_assert(st.connected);
	ck_assert_uint_eq(st.connects, 1);
	ck_assert_int_eq(peer_stats(pt_nodes[1].t, 1, &st), 0);
	ck_assert_uint_eq(st.connects, 1);
	pt_assert_still_works();
}
END_TEST

static bool pt_cut_all(void *arg, uint64_t from, uint64_t to)
{
	(void)arg;
	(void)from;
	(void)to;
	return true;
}

/* No answer in time: -ETIMEDOUT, once; the late answer is ignored. A cut
 * (drop filter) request times out too. An unreachable member: refused. */
START_TEST(test_request_timeout)
{
	struct pt_rep a = {0}, b = {0}, c = {0};
	uint64_t t0;

	pt_setup_reqs();
	t0 = pt_now_us();
	ck_assert_int_eq(peer_request(pt_nodes[0].t, 2, PEER_REQ_LEASE, "hold",
				      4, 150, pt_reply_cb, &a),
			 0);
	ck_assert(pt_run_until(pt_rep_done, &a, 3000));
	ck_assert_int_eq(a.err, -ETIMEDOUT);
	ck_assert_uint_ge(pt_now_us() - t0, 140000);
	ck_assert_int_eq(pt_n_held, 1);
	peer_reply(pt_held[0], 0, "late", 4);
	pt_run_for(50);
	ck_assert_int_eq(a.calls, 1);

	peer_set_drop_filter(pt_nodes[0].t, pt_cut_all, NULL);
	ck_assert_int_eq(peer_request(pt_nodes[0].t, 2, PEER_REQ_LEASE, "ping",
				      4, 100, pt_reply_cb, &b),
			 0);
	ck_assert(pt_run_until(pt_rep_done, &b, 3000));
	ck_assert_int_eq(b.err, -ETIMEDOUT);
	peer_set_drop_filter(pt_nodes[0].t, NULL, NULL);

	ck_assert_int_eq(
		peer_add(pt_nodes[0].t, 3, "127.0.0.1", pt_free_port()), 0);
	t0 = pt_now_us();
	ck_assert_int_eq(peer_request(pt_nodes[0].t, 3, PEER_REQ_LEASE, "ping",
				      4, 10000, pt_reply_cb, &c),
			 0);
	ck_assert(pt_run_until(pt_rep_done, &c, 5000));
	ck_assert_int_eq(c.err, -ECONNREFUSED);
	ck_assert_uint_lt(pt_now_us() - t0, 5000000);

	/* peer_remove of the member asked: -ECONNRESET, later, once */
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(peer_request(pt_nodes[0].t, 2, PEER_REQ_LEASE, "hold",
				      4, 10000, pt_reply_cb, &c),
			 0);
	ck_assert_int_eq(peer_remove(pt_nodes[0].t, 2), 0);
	ck_assert_int_eq(c.calls, 0);
	ck_assert(pt_run_until(pt_rep_done, &c, 3000));
	ck_assert_int_eq(c.err, -ECONNRESET);
	pt_run_for(30);
	ck_assert_int_eq(c.calls, 1);
}
END_TEST

/* The member answering goes away: the stream breaks, -ECONNRESET; at most
 * PEER_MAX_REQUESTS in flight; destroying the transport cancels the rest
 * (inside the call) and an answer owed by a destroyed transport is safe. */
START_TEST(test_request_lost_and_destroyed)
{
	static struct pt_rep many[PEER_MAX_REQUESTS];
	struct pt_rep a = {0}, extra = {0};
	int calls = 0;

	pt_setup_reqs();
	ck_assert_int_eq(peer_request(pt_nodes[0].t, 2, PEER_REQ_LEASE, "hold",
				      4, 10000, pt_reply_cb, &a),
			 0);
	ck_assert(pt_run_until(pt_has_held, NULL, 3000));
	pt_stop(1); /* owes an answer: pt_held[0] outlives its transport */
	peer_reply(pt_held[0], 0, "gone", 4);
	ck_assert(pt_run_until(pt_rep_done, &a, 5000));
	ck_assert_int_eq(a.err, -ECONNRESET);

	memset(many, 0, sizeof(many));
	for (int i = 0; i < PEER_MAX_REQUESTS; i++)
		ck_assert_int_eq(peer_request(pt_nodes[0].t, 2, PEER_REQ_LEASE,
					      "x", 1, 60000, pt_reply_cb,
					      &many[i]),
				 0);
	ck_assert_int_eq(peer_request(pt_nodes[0].t, 2, PEER_REQ_LEASE, "x", 1,
				      60000, pt_reply_cb, &extra),
			 -EAGAIN);
	pt_stop(0);
	for (int i = 0; i < PEER_MAX_REQUESTS; i++) {
		ck_assert_int_eq(many[i].err, -ECANCELED);
		calls += many[i].calls;
	}
	ck_assert_int_eq(calls, PEER_MAX_REQUESTS);
	ck_assert_int_eq(extra.calls, 0);
}
END_TEST

/* A member without an id joins: its JOIN is served (from 0); a join
 * stream may carry nothing but JOIN; a join hello naming another cluster
 * is refused. */
START_TEST(test_join_request)
{
	struct peer_config cfg = pt_cfg(99);
	struct pt_rep a = {0}, b = {0};
	uint8_t f[64], in[64];
	ssize_t n = 0;
	int fd;

	pt_setup_reqs();
	cfg.cluster_id = 0; /* does not know the cluster yet */
	pt_start_cfg(2, 0, &cfg);
	ck_assert_int_eq(peer_join_request(pt_nodes[2].t, "127.0.0.1",
					   pt_nodes[1].port, "me", 2, 3000,
					   pt_reply_cb, &a),
			 0);
	ck_assert(pt_run_until(pt_rep_done, &a, 3000));
	ck_assert_int_eq(a.err, 0);
	ck_assert_int_eq(memcmp(a.buf, "re:me", 5), 0);
	ck_assert_uint_eq(pt_req_from, 0);
	ck_assert_int_eq(peer_join_request(pt_nodes[2].t, "127.0.0.1",
					   pt_free_port(), "me", 2, 3000,
					   pt_reply_cb, &b),
			 0);
	ck_assert(pt_run_until(pt_rep_done, &b, 3000));
	ck_assert_int_eq(b.err, -ECONNREFUSED);

	/* Raw: a join hello, then a LEASE request: answered -EACCES, closed. */
	pt_req_from = 77;
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_raw_hello(fd, 0, 0, 0, 0);
	pt_put_be(f, 1 + 9 + 4, 4);
	f[4] = 8; /* REQ */
	pt_put_be(f + 5, 42, 8);
	f[13] = PEER_REQ_LEASE;
	memcpy(f + 14, "ping", 4);
	ck_assert_int_eq(write(fd, f, 18), 18);
	ck_assert(pt_run_until(pt_raw_closed_keep, &fd, 3000));
	n = pt_raw_read(fd, in, sizeof(in));
	/* HELLO_ACK (5 + 17) then REP (5 + 12) */
	ck_assert_int_eq(n, 22 + 17);
	ck_assert_int_eq(in[22 + 4], 9);
	ck_assert_uint_eq(pt_get_be(in + 27, 8), 42);
	ck_assert_int_eq((int32_t)pt_get_be(in + 35, 4), -EACCES);
	close(fd);
	ck_assert_uint_eq(pt_req_from, 77); /* the handler never ran */

	/* Raw: a join hello naming another cluster is refused. */
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_raw_hello(fd, PT_CLUSTER + 1, 0, 0, 0);
	ck_assert(pt_run_until(pt_raw_closed_keep, &fd, 3000));
	n = pt_raw_read(fd, in, sizeof(in));
	ck_assert_int_eq(n, 22);
	ck_assert_int_eq(in[5], PEER_HELLO_WRONG_CLUSTER);
	close(fd);

	/* A join request past PEER_MAX_JOIN_BYTES: refused when sending;
	 * announced on a raw join stream: closed at its header, before the
	 * hello timeout (2 s), with no answer to it. */
	{
		static uint8_t big[PEER_MAX_JOIN_BYTES + 1];

		ck_assert_int_eq(peer_join_request(pt_nodes[2].t, "127.0.0.1",
						   pt_nodes[1].port, big,
						   sizeof(big), 3000,
						   pt_reply_cb, &b),
				 -EMSGSIZE);
	}
	fd = pt_raw_connect(pt_nodes[1].port);
	pt_raw_hello(fd, 0, 0, 0, 0);
	pt_put_be(f, 1 + 9 + PEER_MAX_JOIN_BYTES + 1, 4);
	f[4] = 8; /* REQ */
	ck_assert_int_eq(write(fd, f, 5), 5);
	ck_assert(pt_run_until(pt_raw_closed_keep, &fd, 1000));
	/* at most the hello's ack (unsent if the kill came first) */
	ck_assert_int_le(pt_raw_read(fd, in, sizeof(in)), 22);
	close(fd);
}
END_TEST

Suite *peer_suite(void)
{
	Suite *s = suite_create("peer");
	TCase *tc = tcase_create("transport");

	tcase_add_checked_fixture(tc, pt_setup, pt_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_exchange_all_types);
	tcase_add_test(tc, test_api_errors);
	tcase_add_test(tc, test_late_start);
	tcase_add_test(tc, test_restart_reconnects);
	tcase_add_test(tc, test_reconnect_on_inbound);
	tcase_add_test(tc, test_identity_refused);
	tcase_add_test(tc, test_garbage_frames);
	tcase_add_test(tc, test_remove_from_callback);
	tcase_add_test(tc, test_queue_bounded);
	tcase_add_test(tc, test_drop_filter);
	tcase_add_test(tc, test_snapshot_with_heartbeats);
	tcase_add_test(tc, test_snapshot_refused);
	tcase_add_test(tc, test_snapshot_failures);
	tcase_add_test(tc, test_request_reply);
	tcase_add_test(tc, test_idle_after_reply);
	tcase_add_test(tc, test_request_timeout);
	tcase_add_test(tc, test_request_lost_and_destroyed);
	tcase_add_test(tc, test_join_request);
	suite_add_tcase(s, tc);
	tc = tcase_create("codec");
	tcase_add_test(tc, test_codec_new_types);
	tcase_add_test(tc, test_codec_bounds);
	suite_add_tcase(s, tc);
	return s;
}
