/* Unit tests for core/server.c and core/server_read.c on a cluster: three
 * members in this process, on one event loop, talking over loopback peer
 * sockets (ports 21500-21599), with the peer drop filter as the network
 * fault. Every wait is bounded (run_until). */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "core/server.h"
#include "net/peer.h"
#include "net/proto/pbutil.h"
#include "tests/unit/tmpdir.h"

#define N 3
#define BASE_PORT 21500
#define HB_MS 20
#define EL_MS 200

struct member {
	struct config cfg;
	struct server *srv;
	int became_leader, lost_leadership;
};

static struct event_base *base;
static struct member mem[N];
static char dir[256];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void on_leader(void *arg, bool leader)
{
	struct member *m = arg;

	if (leader)
		m->became_leader++;
	else
		m->lost_leadership++;
}

static void member_start(int i)
{
	char name[8], data[300], cu[64], pu[64], ic[256], err[512];
	int p = BASE_PORT; /* reused by every test: listeners reuse addr */
	char *envp[] = {NULL};
	char *argv[] = {"cairn",
			"--name",
			name,
			"--data-dir",
			data,
			"--listen-client-urls",
			cu,
			"--advertise-client-urls",
			cu,
			"--listen-peer-urls",
			pu,
			"--initial-advertise-peer-urls",
			pu,
			"--initial-cluster",
			ic,
			"--initial-cluster-token",
			"check-server",
			"--heartbeat-interval",
			"20",
			"--election-timeout",
			"200",
			NULL};
	struct member *m = &mem[i];

	snprintf(name, sizeof(name), "m%d", i);
	snprintf(data, sizeof(data), "%s/m%d", dir, i);
	snprintf(cu, sizeof(cu), "http://127.0.0.1:%d", p + 2 * i);
	snprintf(pu, sizeof(pu), "http://127.0.0.1:%d", p + 2 * i + 1);
	snprintf(ic, sizeof(ic),
		 "m0=http://127.0.0.1:%d,m1=http://127.0.0.1:%d,"
		 "m2=http://127.0.0.1:%d",
		 p + 1, p + 3, p + 5);
	config_defaults(&m->cfg, "bolt");
	ck_assert_int_eq(config_parse(&m->cfg,
				      (int)(sizeof(argv) / sizeof(argv[0])) - 1,
				      argv, envp, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(m->cfg.election_ms, EL_MS);
	ck_assert_msg(config_validate(&m->cfg, err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_msg(server_open(base, &m->cfg, &m->srv, err, sizeof(err)) ==
			      0,
		      "%s", err);
	ck_assert_int_eq(server_on_leader_change(m->srv, on_leader, m), 0);
}

static void setup(void)
{
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(event_base_priority_init(base, 2), 0);
	ut_tmpdir(dir, sizeof(dir), "check_server");
	memset(mem, 0, sizeof(mem));
	for (int i = 0; i < N; i++)
		member_start(i);
}

static void teardown(void)
{
	for (int i = 0; i < N; i++) {
		server_close(mem[i].srv);
		config_free(&mem[i].cfg);
	}
	event_base_free(base);
	ut_rmtree(dir);
}

/* Run the loop until cond() holds or ms pass; returns cond(). */
static bool run_until(bool (*cond)(void *), void *arg, uint64_t ms)
{
	struct timeval tv = {0, 10000};
	uint64_t end = now_ms() + ms;

	while (!cond(arg) && now_ms() < end) {
		event_base_loopexit(base, &tv);
		event_base_loop(base, EVLOOP_ONCE);
	}
	return cond(arg);
}

/* The member all three agree leads, or -1. */
static int agreed_leader(void)
{
	uint64_t l = server_leader(mem[0].srv);

	for (int i = 0; i < N; i++)
		if (l == 0 || server_leader(mem[i].srv) != l)
			return -1;
	for (int i = 0; i < N; i++)
		if (server_member_id(mem[i].srv) == l)
			return i;
	return -1;
}

static bool have_leader(void *arg)
{
	(void)arg;
	return agreed_leader() >= 0;
}

static int wait_leader(void)
{
	ck_assert_msg(run_until(have_leader, NULL, 5000), "no leader in 5 s");
	return agreed_leader();
}

struct result {
	bool done;
	int err;
};

static void on_done(void *arg, struct apply_out *out)
{
	struct result *r = arg;

	r->done = true;
	r->err = out->err;
	free(out->buf);
}

static void on_read(void *arg, int err)
{
	struct result *r = arg;

	r->done = true;
	r->err = err;
}

static bool is_done(void *arg)
{
	return ((struct result *)arg)->done;
}

static int put(struct server *s, const char *k, const char *v, struct result *r)
{
	etcdserverpb_PutRequest p = {0};
	uint8_t *buf = NULL;
	size_t len = 0;
	int err;

	p.key.p = (const uint8_t *)k;
	p.key.n = strlen(k);
	p.value.p = (const uint8_t *)v;
	p.value.n = strlen(v);
	ck_assert_int_eq(
		pbu_encode_alloc(&etcdserverpb_PutRequest_msg, &p, &buf, &len),
		0);
	memset(r, 0, sizeof(*r));
	err = server_propose(s, SERVER_REQ_PUT, buf, len, on_done, r);
	free(buf);
	return err;
}

static bool drop_all(void *arg, uint64_t from, uint64_t to)
{
	(void)arg;
	(void)from;
	(void)to;
	return true;
}

static bool lost_leader(void *arg)
{
	return server_leader(arg) == 0;
}

/* One leader; its hook (and no other) heard of it; status agrees. */
START_TEST(test_elect_hooks_status)
{
	int l = wait_leader();
	struct server_status st0, st;

	ck_assert(server_is_leader(mem[l].srv));
	server_get_status(mem[0].srv, &st0);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(mem[i].became_leader, i == l);
		ck_assert_int_eq(mem[i].lost_leadership, 0);
		server_get_status(mem[i].srv, &st);
		ck_assert_uint_eq(st.leader, server_member_id(mem[l].srv));
		ck_assert_uint_eq(st.term, st0.term);
		ck_assert_uint_eq(st.cluster_id, st0.cluster_id);
		ck_assert(!st.is_learner);
	}
}
END_TEST

/* A follower's proposal is forwarded and applied; a linearizable read on
 * the other follower then sees it (ReadIndex waits for the apply). */
START_TEST(test_follower_propose_and_read)
{
	int l = wait_leader(), f1 = (l + 1) % N, f2 = (l + 2) % N;
	struct result w, r;
	int64_t rev;

	ck_assert_int_eq(put(mem[f1].srv, "k", "v", &w), 0);
	ck_assert(run_until(is_done, &w, 5000));
	ck_assert_int_eq(w.err, 0);
	rev = mvcc_rev(server_mvcc(mem[f1].srv));
	memset(&r, 0, sizeof(r));
	server_read_index(mem[f2].srv, on_read, &r);
	ck_assert(run_until(is_done, &r, 5000));
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_ge(mvcc_rev(server_mvcc(mem[f2].srv)), rev);
	/* on the leader too (a heartbeat round) */
	memset(&r, 0, sizeof(r));
	server_read_index(mem[l].srv, on_read, &r);
	ck_assert(run_until(is_done, &r, 5000));
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_ge(mvcc_rev(server_mvcc(mem[l].srv)), rev);
}
END_TEST

/* A member cut off from everyone loses its leader; its proposals and
 * reads are held, then fail "no leader" after about 2 election timeouts;
 * past etcd's 5000 held, proposals are refused at once. */
START_TEST(test_no_leader)
{
	int l = wait_leader(), f = (l + 1) % N, n = 0, err;
	struct result w, r, *many = calloc(5001, sizeof(*many));
	uint64_t t0;

	ck_assert_ptr_nonnull(many);
	peer_set_drop_filter(server_peers(mem[f].srv), drop_all, NULL);
	ck_assert(run_until(lost_leader, mem[f].srv, 5000));
	t0 = now_ms();
	ck_assert_int_eq(put(mem[f].srv, "k", "v", &w), 0);
	memset(&r, 0, sizeof(r));
	server_read_index(mem[f].srv, on_read, &r);
	ck_assert(!r.done);
	ck_assert(run_until(is_done, &w, 5000));
	ck_assert(run_until(is_done, &r, 5000));
	ck_assert_int_eq(w.err, CAIRN_ENO_LEADER);
	ck_assert_int_eq(r.err, CAIRN_ENO_LEADER);
	ck_assert_uint_ge(now_ms() - t0, 2 * EL_MS - HB_MS);
	ck_assert_uint_le(now_ms() - t0, 2 * EL_MS + 500);
	/* the bound on held proposals */
	while ((err = put(mem[f].srv, "k", "v", &many[n])) == 0 && n < 5000)
		n++;
	ck_assert_int_eq(n, 5000);
	ck_assert_int_eq(err, CAIRN_ETOO_MANY_REQUESTS);
	ck_assert(run_until(is_done, &many[4999], 5000));
	ck_assert_int_eq(many[0].err, CAIRN_ENO_LEADER);
	ck_assert_int_eq(many[4999].err, CAIRN_ENO_LEADER);
	/* healed: it follows the leader again and its writes go through */
	peer_set_drop_filter(server_peers(mem[f].srv), NULL, NULL);
	ck_assert(run_until(have_leader, NULL, 5000));
	ck_assert_int_eq(put(mem[f].srv, "k2", "v2", &w), 0);
	ck_assert(run_until(is_done, &w, 5000));
	ck_assert_int_eq(w.err, 0);
	free(many);
}
END_TEST

/* A leader cut off from the majority: its proposal never commits and
 * times out (etcd's request timeout, 5 s + 2 x election timeout); it
 * steps down (its hook hears of it) and the others elect a new leader. */
START_TEST(test_isolated_leader_times_out)
{
	int l = wait_leader(), f1 = (l + 1) % N, f2 = (l + 2) % N;
	struct result w;
	uint64_t t0;

	peer_set_drop_filter(server_peers(mem[l].srv), drop_all, NULL);
	t0 = now_ms();
	ck_assert_int_eq(put(mem[l].srv, "lost", "v", &w), 0);
	ck_assert(run_until(is_done, &w, 8000));
	ck_assert_int_eq(w.err, CAIRN_ETIMEOUT);
	ck_assert_uint_ge(now_ms() - t0, 5000 + 2 * EL_MS);
	ck_assert_int_eq(mem[l].lost_leadership, 1);
	ck_assert_uint_ne(server_leader(mem[f1].srv), 0);
	ck_assert_uint_eq(server_leader(mem[f1].srv),
			  server_leader(mem[f2].srv));
	ck_assert_uint_ne(server_leader(mem[f1].srv),
			  server_member_id(mem[l].srv));
}
END_TEST

Suite *server_suite(void)
{
	Suite *s = suite_create("server");
	TCase *tc = tcase_create("cluster");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_elect_hooks_status);
	tcase_add_test(tc, test_follower_propose_and_read);
	tcase_add_test(tc, test_no_leader);
	tcase_add_test(tc, test_isolated_leader_times_out);
	suite_add_tcase(s, tc);
	return s;
}
