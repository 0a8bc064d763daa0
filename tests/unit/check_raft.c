/* check_raft: core/raft unit tests.
 *
 * A tiny deterministic world: members (struct tnode) with their own
 * "stable storage" (a log and a hard state, written at each ready), and a
 * network (struct tnet) that queues deep copies of messages and delivers
 * them in order unless the link is cut or a seeded coin drops them. After
 * every ready the world checks Election Safety (§5.2), Log Matching
 * (§5.3) and State Machine Safety (§5.4.3) across all members. Every
 * failure message starts with the seed; RAFT_SEED=<n> replays one.
 */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/raft/raft.h"
#include "core/util/log.h"

#define TN_MAX 5
#define TN_MAX_TERM 4096
#define TN_MAX_INDEX 8192
#define TN_MAX_MSGS 8192
#define TN_MAX_READS 4096

static unsigned long long g_seed = 1;

#define T_ASSERT(cond, fmt, ...)                                               \
	ck_assert_msg((cond), "seed %llu: " fmt, g_seed, ##__VA_ARGS__)

static uint64_t xorshift(uint64_t *s)
{
	uint64_t x = *s ? *s : 0x2545f4914f6cdd1dULL;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*s = x;
	return x;
}

static uint64_t tn_rand(void *arg)
{
	return xorshift(arg);
}

/* ---- stable storage of one member ---- */

struct tnode {
	uint64_t id;
	struct raft *r;
	bool up;
	uint64_t rng;
	struct raft_config cfg;
	/* storage */
	struct raft_hard_state hs;
	struct raft_entry *log; /* log[i].index == i + 1 */
	size_t n_log, cap_log;
	uint64_t applied;
	/* readies held back by async tests */
	struct raft_ready rd;
	bool rd_out;
	/* answered ReadIndex requests, in order */
	struct raft_read_state reads[64];
	size_t n_reads;
};

struct tmsg {
	struct raft_msg m;
};

struct tnet {
	struct tnode nodes[TN_MAX];
	size_t n;
	uint64_t voters[TN_MAX];
	uint64_t learners[TN_MAX];
	size_t n_snaps; /* SNAP messages seen */
	/* ReadIndex: the highest index committed anywhere when the read
	 * with ctx (< TN_MAX_READS) was asked; its answer must cover it */
	uint64_t read_need[TN_MAX_READS];
	uint64_t read_ctx; /* last ctx used */
	bool snap_fail;	   /* the "server" fails to send snapshots */
	struct tmsg *q;	   /* FIFO */
	size_t nq, capq;
	bool cut[TN_MAX + 1][TN_MAX + 1]; /* [from][to] by id */
	unsigned drop_pct;		  /* lose a message */
	unsigned dup_pct;		  /* deliver a message twice */
	bool reorder;			  /* shuffle each delivery round */
	bool async; /* fsyncs complete at random later times */
	uint64_t rng;
	/* global histories for the safety checks */
	uint64_t leader_of[TN_MAX_TERM];
	uint64_t applied_term[TN_MAX_INDEX];
	uint8_t applied_sum[TN_MAX_INDEX];
	uint64_t max_applied;
};

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0x5a;

	while (n--)
		s = (uint8_t)(s * 31 + *p++);
	return s;
}

static void store_entries(struct tnode *t, const struct raft_entry *e, size_t n)
{
	size_t i, at;

	if (!n)
		return;
	at = e[0].index - 1;
	ck_assert_uint_le(at, t->n_log);
	for (i = at; i < t->n_log; i++)
		free(t->log[i].data);
	t->n_log = at;
	if (t->n_log + n > t->cap_log) {
		t->cap_log = (t->n_log + n) * 2;
		t->log = realloc(t->log, t->cap_log * sizeof(*t->log));
		ck_assert_ptr_nonnull(t->log);
	}
	for (i = 0; i < n; i++) {
		struct raft_entry *d = &t->log[t->n_log++];

		*d = e[i];
		d->data = NULL;
		if (e[i].len) {
			d->data = malloc(e[i].len);
			ck_assert_ptr_nonnull(d->data);
			memcpy(d->data, e[i].data, e[i].len);
		}
	}
}

static void tnode_free_storage(struct tnode *t)
{
	size_t i;

	for (i = 0; i < t->n_log; i++)
		free(t->log[i].data);
	free(t->log);
	t->log = NULL;
	t->n_log = t->cap_log = 0;
}

/* ---- network ---- */

static void net_send(struct tnet *n, const struct raft_msg *m)
{
	struct tmsg *t;
	size_t i;

	if (n->nq == n->capq) {
		n->capq = n->capq ? n->capq * 2 : 64;
		n->q = realloc(n->q, n->capq * sizeof(*n->q));
		ck_assert_ptr_nonnull(n->q);
	}
	T_ASSERT(n->nq < TN_MAX_MSGS, "message storm");
	t = &n->q[n->nq++];
	t->m = *m;
	t->m.entries = NULL;
	if (m->n_entries) {
		t->m.entries = calloc(m->n_entries, sizeof(*m->entries));
		ck_assert_ptr_nonnull(t->m.entries);
		for (i = 0; i < m->n_entries; i++) {
			t->m.entries[i] = m->entries[i];
			t->m.entries[i].data = NULL;
			if (m->entries[i].len) {
				t->m.entries[i].data =
					malloc(m->entries[i].len);
				ck_assert_ptr_nonnull(t->m.entries[i].data);
				memcpy(t->m.entries[i].data, m->entries[i].data,
				       m->entries[i].len);
			}
		}
	}
}

static void msg_free(struct raft_msg *m)
{
	size_t i;

	for (i = 0; i < m->n_entries; i++)
		free(m->entries[i].data);
	free(m->entries);
}

static struct tnode *net_node(struct tnet *n, uint64_t id)
{
	ck_assert(id >= 1 && id <= n->n);
	return &n->nodes[id - 1];
}

/* ---- safety checks ---- */

static void check_safety(struct tnet *n)
{
	size_t a, b, i, m;
	struct tnode *x, *y;

	for (a = 0; a < n->n; a++) {
		x = &n->nodes[a];
		if (!x->r)
			continue;
		T_ASSERT(raft_check(x->r) == 0, "invariants of %llu",
			 (unsigned long long)x->id);
		if (raft_role(x->r) == RAFT_LEADER) {
			uint64_t t = raft_term(x->r);

			ck_assert_uint_lt(t, TN_MAX_TERM);
			/* §5.2 Election Safety */
			T_ASSERT(n->leader_of[t] == 0 ||
					 n->leader_of[t] == x->id,
				 "two leaders in term %llu: %llu and %llu",
				 (unsigned long long)t,
				 (unsigned long long)n->leader_of[t],
				 (unsigned long long)x->id);
			n->leader_of[t] = x->id;
		}
	}
	/* §5.3 Log Matching, on what is in stable storage. */
	for (a = 0; a < n->n; a++) {
		for (b = a + 1; b < n->n; b++) {
			x = &n->nodes[a];
			y = &n->nodes[b];
			m = x->n_log < y->n_log ? x->n_log : y->n_log;
			for (i = m; i > 0; i--)
				if (x->log[i - 1].term == y->log[i - 1].term)
					break;
			for (; i > 0; i--) {
				T_ASSERT(x->log[i - 1].term ==
							 y->log[i - 1].term &&
						 x->log[i - 1].len ==
							 y->log[i - 1].len,
					 "logs of %llu and %llu differ at %zu",
					 (unsigned long long)x->id,
					 (unsigned long long)y->id, i);
			}
		}
	}
}

/* The test encoding of a conf change: "A<id>" add a voter, "L<id>" add a
 * learner, "R<id>" remove. */
static void apply_conf_change(struct tnode *t, const struct raft_entry *e)
{
	enum raft_cc_type type = RAFT_CC_UPDATE_NODE;
	uint64_t id;

	ck_assert_uint_ge(e->len, 2);
	id = (uint64_t)(e->data[1] - '0');
	if (e->data[0] == 'A')
		type = RAFT_CC_ADD_NODE;
	else if (e->data[0] == 'L')
		type = RAFT_CC_ADD_LEARNER;
	else if (e->data[0] == 'R')
		type = RAFT_CC_REMOVE_NODE;
	T_ASSERT(raft_apply_conf_change(t->r, type, id) == 0,
		 "conf change on %llu", (unsigned long long)t->id);
}

/* §5.4.3 State Machine Safety: every member applies the same entry at an
 * index, exactly once, in order. */
static void apply(struct tnet *n, struct tnode *t, const struct raft_entry *e,
		  size_t k)
{
	size_t i;

	for (i = 0; i < k; i++) {
		T_ASSERT(e[i].index == t->applied + 1,
			 "member %llu applied %llu after %llu",
			 (unsigned long long)t->id,
			 (unsigned long long)e[i].index,
			 (unsigned long long)t->applied);
		ck_assert_uint_lt(e[i].index, TN_MAX_INDEX);
		if (n->applied_term[e[i].index]) {
			T_ASSERT(n->applied_term[e[i].index] == e[i].term &&
					 n->applied_sum[e[i].index] ==
						 sum(e[i].data, e[i].len),
				 "member %llu applied a different entry %llu",
				 (unsigned long long)t->id,
				 (unsigned long long)e[i].index);
		} else {
			n->applied_term[e[i].index] = e[i].term;
			n->applied_sum[e[i].index] = sum(e[i].data, e[i].len);
		}
		if (e[i].index > n->max_applied)
			n->max_applied = e[i].index;
		t->applied = e[i].index;
		if (e[i].type == RAFT_ENTRY_CONF_CHANGE)
			apply_conf_change(t, &e[i]);
	}
}

/* ---- driving members ---- */

/* First half of a ready, as the server does it at once: start the write
 * (the "fsync"), send the messages, apply what is committed. */
static bool node_ready_begin(struct tnet *n, struct tnode *t)
{
	struct raft_ready *rd = &t->rd;
	size_t i;

	if (!t->up || t->rd_out || !raft_has_ready(t->r))
		return false;
	raft_ready(t->r, rd);
	t->rd_out = true;
	T_ASSERT(rd->hs.term == raft_term(t->r) && rd->term == rd->hs.term,
		 "ready term");
	for (i = 0; i < rd->n_msgs; i++) {
		T_ASSERT(rd->msgs[i].from == t->id, "from");
		net_send(n, &rd->msgs[i]);
	}
	/* Invariant 5: what is handed out to apply is already durable. */
	for (i = 0; i < rd->n_committed; i++)
		T_ASSERT(rd->committed[i].index <= t->n_log &&
				 t->log[rd->committed[i].index - 1].term ==
					 rd->committed[i].term,
			 "member %llu applies %llu before it is durable",
			 (unsigned long long)t->id,
			 (unsigned long long)rd->committed[i].index);
	apply(n, t, rd->committed, rd->n_committed);
	for (i = 0; i < rd->n_read_states; i++) {
		const struct raft_read_state *q = &rd->read_states[i];

		/* §6.4: the read point covers every write committed before
		 * the read was asked. */
		if (q->ctx < TN_MAX_READS)
			T_ASSERT(q->index >= n->read_need[q->ctx],
				 "read %llu on %llu at %llu < %llu",
				 (unsigned long long)q->ctx,
				 (unsigned long long)t->id,
				 (unsigned long long)q->index,
				 (unsigned long long)n->read_need[q->ctx]);
		if (t->n_reads < 64)
			t->reads[t->n_reads++] = *q;
	}
	return true;
}

/* Second half: the "fsync" is done; only now is it in stable storage (a
 * crash before this loses rd's entries and hard state). */
static void node_ready_end(struct tnode *t)
{
	struct raft_ready *rd = &t->rd;

	if (!t->rd_out)
		return;
	if (rd->hard_state_changed)
		t->hs = rd->hs;
	store_entries(t, rd->entries, rd->n_entries);
	if (rd->n_entries)
		raft_persisted(t->r, rd->entries[rd->n_entries - 1].index,
			       rd->entries[rd->n_entries - 1].term);
	raft_advance(t->r, rd);
	t->rd_out = false;
}

static bool node_ready(struct tnet *n, struct tnode *t)
{
	if (!node_ready_begin(n, t))
		return false;
	node_ready_end(t);
	return true;
}

/* A crash: everything not in stable storage is lost. */
static void node_crash(struct tnode *t)
{
	raft_destroy(t->r);
	t->r = NULL;
	t->rd_out = false;
	t->up = false;
}

static int node_start(struct tnet *n, struct tnode *t)
{
	const struct raft_hard_state *hs = t->hs.term ? &t->hs : NULL;

	(void)n;
	return raft_create(&t->cfg, hs, t->log, t->n_log, t->applied, &t->r);
}

/* Members 1..members: voters 1..n_voters, then n_learners learners (the
 * start configuration of every member); the rest are outside the
 * configuration and start down (a test adds and starts them). */
static void net_init_conf(struct tnet *n, size_t members, size_t n_voters,
			  size_t n_learners, bool pre_vote, bool check_quorum)
{
	size_t i;
	char *env = getenv("RAFT_SEED");

	memset(n, 0, sizeof(*n));
	if (env)
		g_seed = strtoull(env, NULL, 10);
	n->rng = g_seed * 7919 + 1;
	n->n = members;
	for (i = 0; i < n_voters; i++)
		n->voters[i] = i + 1;
	for (i = 0; i < n_learners; i++)
		n->learners[i] = n_voters + i + 1;
	for (i = 0; i < members; i++) {
		struct tnode *t = &n->nodes[i];

		t->id = i + 1;
		t->up = true;
		t->rng = g_seed * 1000003 + t->id;
		t->cfg.id = t->id;
		t->cfg.voters = n->voters;
		t->cfg.n_voters = n_voters;
		t->cfg.learners = n->learners;
		t->cfg.n_learners = n_learners;
		t->cfg.election_tick = 10;
		t->cfg.heartbeat_tick = 1;
		t->cfg.pre_vote = pre_vote;
		t->cfg.check_quorum = check_quorum;
		t->cfg.rand = tn_rand;
		t->cfg.rand_arg = &t->rng;
		ck_assert_int_eq(node_start(n, t), 0);
		if (i >= n_voters + n_learners)
			node_crash(t); /* not a member yet */
	}
}

static void net_init(struct tnet *n, size_t members, bool pre_vote,
		     bool check_quorum)
{
	net_init_conf(n, members, members, 0, pre_vote, check_quorum);
}

static void net_free(struct tnet *n)
{
	size_t i;

	for (i = 0; i < n->nq; i++)
		msg_free(&n->q[i].m);
	free(n->q);
	for (i = 0; i < n->n; i++) {
		raft_destroy(n->nodes[i].r);
		tnode_free_storage(&n->nodes[i]);
	}
}

static void net_isolate(struct tnet *n, uint64_t id, bool cut)
{
	size_t j;

	for (j = 1; j <= n->n; j++) {
		n->cut[id][j] = cut;
		n->cut[j][id] = cut;
	}
}

/* What the server does with a SNAP message: stream its image (here: a
 * copy of the sender's stored log up to its applied index, which is what
 * its state machine holds), install it on the receiver (raft_restore) and
 * report the outcome to the sender's raft. */
static void net_install_snap(struct tnet *n, const struct raft_msg *m)
{
	struct tnode *l = net_node(n, m->from), *f = net_node(n, m->to);
	struct raft_snap_meta meta = {0};
	uint64_t v[TN_MAX], lr[TN_MAX];
	int err = -1;

	n->n_snaps++;
	T_ASSERT(m->snap.index > 0, "snap index");
	if (l->r && l->applied && f->up && f->r && !n->snap_fail &&
	    !n->cut[m->from][m->to]) {
		meta.index = l->applied;
		meta.term = l->log[l->applied - 1].term;
		raft_conf(l->r, v, &meta.n_voters, lr, &meta.n_learners,
			  TN_MAX);
		meta.voters = v;
		meta.learners = lr;
		err = raft_restore(f->r, &meta, m->from, m->term);
		if (err == 0) {
			store_entries(f, l->log, meta.index);
			f->applied = meta.index;
		}
	}
	if (l->r)
		raft_report_snapshot(l->r, m->to, err == 0 ? meta.index : 0);
}

/* Deliver what is queued now (not what it causes). Returns how many. */
static size_t net_deliver(struct tnet *n)
{
	size_t k = n->nq, i, done = 0;
	struct tmsg *batch;
	struct tnode *to;
	int err;

	if (!k)
		return 0;
	batch = n->q;
	n->q = NULL;
	n->nq = n->capq = 0;
	for (i = 0; n->reorder && i + 1 < k; i++) {
		size_t j = i + xorshift(&n->rng) % (k - i);
		struct tmsg tmp = batch[i];

		batch[i] = batch[j];
		batch[j] = tmp;
	}
	for (i = 0; i < k; i++) {
		struct raft_msg *m = &batch[i].m;
		int times = 1;

		if (m->type == RAFT_MSG_SNAP) {
			net_install_snap(n, m);
			done++;
			continue;
		}
		to = net_node(n, m->to);
		if (n->dup_pct && xorshift(&n->rng) % 100 < n->dup_pct)
			times = 2;
		while (times-- > 0 && to->up && to->r &&
		       !n->cut[m->from][m->to] &&
		       !(n->drop_pct &&
			 xorshift(&n->rng) % 100 < n->drop_pct)) {
			err = raft_step(to->r, m);
			T_ASSERT(err == 0, "step type %d to %llu: %d",
				 (int)m->type, (unsigned long long)m->to, err);
			done++;
		}
		msg_free(m);
	}
	free(batch);
	return done;
}

/* Run readies and deliveries until quiet (bounded). */
static void net_settle(struct tnet *n)
{
	int round;
	size_t i;
	bool busy;

	for (round = 0; round < 200; round++) {
		busy = false;
		for (i = 0; i < n->n; i++) {
			struct tnode *t = &n->nodes[i];

			if (!n->async) {
				busy |= node_ready(n, t);
				continue;
			}
			/* The fsync of an outstanding ready completes now
			 * or later; new work waits for it. */
			if (t->rd_out && xorshift(&n->rng) % 2)
				node_ready_end(t);
			busy |= t->rd_out;
			busy |= node_ready_begin(n, t);
		}
		check_safety(n);
		busy |= net_deliver(n) > 0;
		if (!busy)
			return;
	}
	T_ASSERT(0, "network did not settle");
}

static void net_tick(struct tnet *n)
{
	size_t i;

	for (i = 0; i < n->n; i++)
		if (n->nodes[i].up && n->nodes[i].r)
			raft_tick(n->nodes[i].r);
	net_settle(n);
}

static uint64_t net_leader(struct tnet *n)
{
	uint64_t lead = 0;
	size_t i;

	for (i = 0; i < n->n; i++) {
		struct tnode *t = &n->nodes[i];

		if (t->up && t->r && raft_role(t->r) == RAFT_LEADER &&
		    (!lead ||
		     raft_term(t->r) > raft_term(net_node(n, lead)->r)))
			lead = t->id;
	}
	return lead;
}

/* Tick until a leader exists that all up, connected members follow. */
static uint64_t net_elect(struct tnet *n, int max_ticks)
{
	uint64_t lead;
	size_t i;
	int k;
	bool agreed;

	for (k = 0; k < max_ticks; k++) {
		net_tick(n);
		lead = net_leader(n);
		if (!lead)
			continue;
		agreed = true;
		for (i = 0; i < n->n; i++) {
			struct tnode *t = &n->nodes[i];

			if (t->up && !n->cut[lead][t->id] &&
			    raft_leader(t->r) != lead)
				agreed = false;
		}
		if (agreed)
			return lead;
	}
	return 0;
}

/* net_init, then the leader it elects (the test fails if none is). */
static struct tnode *net_start(struct tnet *n, size_t members, bool pre_vote,
			       bool check_quorum)
{
	uint64_t lead;

	net_init(n, members, pre_vote, check_quorum);
	lead = net_elect(n, 100);
	T_ASSERT(lead, "no leader");
	return net_node(n, lead);
}

static uint64_t propose_str(struct tnode *t, const char *s)
{
	uint64_t idx = 0;
	int err = raft_propose(t->r, s, strlen(s), &idx);

	T_ASSERT(err == 0, "propose on %llu: %d", (unsigned long long)t->id,
		 err);
	return idx;
}

/* ---- single member ---- */

static void single_init(struct tnet *n)
{
	net_init(n, 1, false, false);
}

START_TEST(test_single_elects_on_timeout)
{
	struct tnet n;
	int k;

	single_init(&n);
	ck_assert_int_eq(raft_role(n.nodes[0].r), RAFT_FOLLOWER);
	/* §5.2: the randomized timeout is in [election_tick, 2*election_tick)
	 */
	for (k = 0; k < 9; k++) {
		raft_tick(n.nodes[0].r);
		T_ASSERT(raft_role(n.nodes[0].r) == RAFT_FOLLOWER, "early");
	}
	for (k = 0; k < 11 && raft_role(n.nodes[0].r) != RAFT_LEADER; k++)
		raft_tick(n.nodes[0].r);
	T_ASSERT(raft_role(n.nodes[0].r) == RAFT_LEADER, "no election");
	ck_assert_uint_eq(raft_term(n.nodes[0].r), 1);
	ck_assert_uint_eq(raft_leader(n.nodes[0].r), 1);
	/* The new term and the self-vote are in the next hard state. */
	node_ready(&n, &n.nodes[0]);
	ck_assert_uint_eq(n.nodes[0].hs.term, 1);
	ck_assert_uint_eq(n.nodes[0].hs.vote, 1);
	net_free(&n);
}
END_TEST

START_TEST(test_single_campaign_pre_vote)
{
	struct tnet n;
	struct raft_ready rd;

	net_init(&n, 1, true, true);
	ck_assert_int_eq(raft_campaign(n.nodes[0].r), 0);
	ck_assert_int_eq(raft_role(n.nodes[0].r), RAFT_LEADER);
	ck_assert_uint_eq(raft_term(n.nodes[0].r), 1);
	raft_ready(n.nodes[0].r, &rd);
	ck_assert(rd.hard_state_changed);
	ck_assert_uint_eq(rd.hs.term, 1);
	ck_assert_uint_eq(rd.hs.vote, 1);
	ck_assert_int_eq(rd.role, RAFT_LEADER);
	ck_assert_uint_eq(rd.leader, 1);
	/* §5.4.2: the leader's empty entry of its own term. */
	ck_assert_uint_eq(rd.n_entries, 1);
	ck_assert_uint_eq(rd.entries[0].index, 1);
	ck_assert_uint_eq(rd.entries[0].term, 1);
	ck_assert_uint_eq(rd.entries[0].len, 0);
	ck_assert_uint_eq(rd.n_msgs, 0);
	ck_assert_uint_eq(rd.n_committed, 0);
	raft_advance(n.nodes[0].r, &rd);
	ck_assert_int_eq(raft_campaign(n.nodes[0].r), 0); /* already */
	net_free(&n);
}
END_TEST

START_TEST(test_single_commit_after_persisted)
{
	struct tnet n;
	struct raft *r;
	struct raft_ready rd;
	uint64_t idx[3];
	int i;

	single_init(&n);
	r = n.nodes[0].r;
	ck_assert_int_eq(raft_propose(r, "x", 1, NULL), CAIRN_ENO_LEADER);
	ck_assert_int_eq(raft_campaign(r), 0);
	/* Group commit: three proposals, one batch. */
	for (i = 0; i < 3; i++) {
		char b[16];

		snprintf(b, sizeof(b), "v%d", i);
		ck_assert_int_eq(raft_propose(r, b, strlen(b), &idx[i]), 0);
		ck_assert_uint_eq(idx[i], (uint64_t)i + 2);
	}
	ck_assert(raft_has_ready(r));
	raft_ready(r, &rd);
	ck_assert_uint_eq(rd.n_entries, 4);
	ck_assert_uint_eq(rd.entries[3].index, 4);
	ck_assert_mem_eq(rd.entries[3].data, "v2", 2);
	ck_assert(!raft_has_ready(r)); /* one ready at a time */
	raft_advance(r, &rd);
	/* Handed to storage, not durable: nothing commits (§5.3/§10.2.1). */
	ck_assert_uint_eq(raft_commit_index(r), 0);
	ck_assert(!raft_has_ready(r));
	raft_persisted(r, 2, 1); /* a partial fsync report */
	ck_assert_uint_eq(raft_commit_index(r), 2);
	raft_persisted(r, 4, 7); /* wrong term: stale, ignored */
	ck_assert_uint_eq(raft_commit_index(r), 2);
	raft_persisted(r, 9, 1); /* never handed out: ignored */
	ck_assert_uint_eq(raft_commit_index(r), 2);
	raft_persisted(r, 4, 1);
	ck_assert_uint_eq(raft_commit_index(r), 4);
	ck_assert(raft_has_ready(r));
	raft_ready(r, &rd);
	ck_assert(rd.hard_state_changed);
	ck_assert_uint_eq(rd.hs.commit, 4);
	ck_assert_uint_eq(rd.n_entries, 0);
	ck_assert_uint_eq(rd.n_committed, 4);
	for (i = 0; i < 4; i++)
		ck_assert_uint_eq(rd.committed[i].index, (uint64_t)i + 1);
	ck_assert_mem_eq(rd.committed[1].data, "v0", 2);
	raft_advance(r, &rd);
	ck_assert_uint_eq(raft_applied_index(r), 4);
	ck_assert(!raft_has_ready(r));
	net_free(&n);
}
END_TEST

/* The lead's loop: proposals keep arriving while an fsync is in flight;
 * persisted+advance at fsync completion; committed entries come in the
 * next ready. */
START_TEST(test_single_async_loop)
{
	struct tnet n;
	struct tnode *t;
	uint64_t want = 0, idx;
	char b[32];
	int turn, k;

	single_init(&n);
	t = &n.nodes[0];
	ck_assert_int_eq(raft_campaign(t->r), 0);
	want = 1;
	for (turn = 0; turn < 50; turn++) {
		for (k = 0; k < turn % 4; k++) {
			snprintf(b, sizeof(b), "turn%d-%d", turn, k);
			idx = propose_str(t, b);
			ck_assert_uint_eq(idx, ++want);
		}
		if (!t->rd_out)
			node_ready_begin(&n, t);
		else if (turn % 2)
			node_ready_end(t); /* the fsync completed */
		check_safety(&n);
	}
	/* Drain. */
	for (k = 0; k < 10; k++) {
		node_ready_end(t);
		node_ready_begin(&n, t);
	}
	node_ready_end(t);
	ck_assert_uint_eq(raft_commit_index(t->r), want);
	ck_assert_uint_eq(t->applied, want);
	ck_assert_uint_eq(t->n_log, want);
	net_free(&n);
}
END_TEST

/* Restart from persisted hard state + log continues term and index. */
START_TEST(test_single_restart)
{
	struct tnet n;
	struct tnode *t;
	struct raft_ready rd;
	uint64_t idx;

	single_init(&n);
	t = &n.nodes[0];
	ck_assert_int_eq(raft_campaign(t->r), 0);
	propose_str(t, "a");
	propose_str(t, "b");
	net_settle(&n);
	net_settle(&n);
	ck_assert_uint_eq(t->applied, 3);
	propose_str(t, "c"); /* persisted, not applied before the crash */
	node_ready(&n, t);
	ck_assert_uint_eq(t->n_log, 4);
	ck_assert_uint_eq(t->hs.term, 1);
	raft_destroy(t->r);
	t->r = NULL;

	ck_assert_int_eq(node_start(&n, t), 0);
	ck_assert_uint_eq(raft_term(t->r), 1);
	ck_assert_uint_eq(raft_last_index(t->r), 4);
	ck_assert_uint_eq(raft_applied_index(t->r), 3);
	ck_assert_int_eq(raft_role(t->r), RAFT_FOLLOWER);
	ck_assert_int_eq(raft_campaign(t->r), 0);
	ck_assert_uint_eq(raft_term(t->r), 2);
	idx = propose_str(t, "d");
	ck_assert_uint_eq(idx, 6); /* 5 is the new term's empty entry */
	raft_ready(t->r, &rd);
	ck_assert_uint_eq(rd.hs.term, 2);
	ck_assert_uint_eq(rd.n_entries, 2);
	ck_assert_uint_eq(rd.entries[0].index, 5);
	ck_assert_uint_eq(rd.n_committed, 0);
	raft_persisted(t->r, 6, 2);
	raft_advance(t->r, &rd);
	raft_ready(t->r, &rd);
	/* "c" (term 1) commits through the term-2 entries, once (§5.4.2). */
	ck_assert_uint_eq(rd.n_committed, 3);
	ck_assert_uint_eq(rd.committed[0].index, 4);
	ck_assert_mem_eq(rd.committed[0].data, "c", 1);
	ck_assert_uint_eq(rd.committed[0].term, 1);
	ck_assert_mem_eq(rd.committed[2].data, "d", 1);
	raft_advance(t->r, &rd);
	net_free(&n);
}
END_TEST

/* Restart from a compaction point with an empty log (a WAL purged by a
 * snapshot marker): the leader's first entry follows snap_index and its
 * consistency check uses snap_term (§7). */
START_TEST(test_single_restart_from_snapshot)
{
	uint64_t voter = 1, idx = 0;
	struct raft_config cfg = {0};
	struct raft_hard_state hs = {.term = 3, .vote = 1, .commit = 50};
	struct raft_ready rd;
	struct raft *r;
	uint64_t t;

	cfg.id = 1;
	cfg.voters = &voter;
	cfg.n_voters = 1;
	cfg.election_tick = 10;
	cfg.heartbeat_tick = 1;
	cfg.snap_index = 50;
	cfg.snap_term = 3;
	/* applied below the compaction point is refused */
	ck_assert_int_eq(raft_create(&cfg, &hs, NULL, 0, 49, &r), -EINVAL);
	ck_assert_int_eq(raft_create(&cfg, &hs, NULL, 0, 50, &r), 0);
	ck_assert_uint_eq(raft_last_index(r), 50);
	ck_assert_int_eq(raft_entry_term(r, 50, &t), 0);
	ck_assert_uint_eq(t, 3);
	ck_assert_int_eq(raft_campaign(r), 0);
	for (int i = 0; i < 4 && raft_leader(r) != 1; i++) {
		raft_ready(r, &rd);
		raft_advance(r, &rd);
	}
	ck_assert_uint_eq(raft_leader(r), 1);
	ck_assert_uint_gt(raft_term(r), 3);
	ck_assert_int_eq(raft_propose(r, "x", 1, &idx), 0);
	ck_assert_uint_eq(idx, 52); /* 51 is the new term's empty entry */
	raft_ready(r, &rd);
	ck_assert_uint_eq(rd.entries[rd.n_entries - 1].index, 52);
	raft_advance(r, &rd);
	raft_persisted(r, 52, raft_term(r));
	ck_assert_uint_eq(raft_commit_index(r), 52);
	raft_ready(r, &rd);
	ck_assert_uint_eq(rd.n_committed, 2);
	ck_assert_uint_eq(rd.committed[0].index, 51);
	raft_advance(r, &rd);
	raft_destroy(r);
}
END_TEST

START_TEST(test_create_errors)
{
	uint64_t voters[] = {1, 1};
	struct raft_config cfg = {.id = 1,
				  .voters = voters,
				  .n_voters = 2,
				  .election_tick = 10,
				  .heartbeat_tick = 1};
	struct raft_entry log[2] = {{.term = 1, .index = 1},
				    {.term = 1, .index = 3}};
	struct raft_hard_state hs = {.term = 1, .commit = 1};
	struct raft *r = NULL;

	ck_assert_int_eq(raft_create(&cfg, NULL, NULL, 0, 0, &r), -EINVAL);
	cfg.n_voters = 1;
	cfg.election_tick = 1;
	ck_assert_int_eq(raft_create(&cfg, NULL, NULL, 0, 0, &r), -EINVAL);
	cfg.election_tick = 10;
	cfg.learners = voters; /* a learner that is also a voter */
	cfg.n_learners = 1;
	ck_assert_int_eq(raft_create(&cfg, NULL, NULL, 0, 0, &r), -EINVAL);
	cfg.learners = (uint64_t[]){0};
	ck_assert_int_eq(raft_create(&cfg, NULL, NULL, 0, 0, &r), -EINVAL);
	cfg.learners = (uint64_t[]){2, 2};
	cfg.n_learners = 2;
	ck_assert_int_eq(raft_create(&cfg, NULL, NULL, 0, 0, &r), -EINVAL);
	cfg.n_learners = 1;
	ck_assert_int_eq(raft_create(&cfg, &hs, log, 2, 0, &r), -EINVAL);
	hs.commit = 5;
	ck_assert_int_eq(raft_create(&cfg, &hs, log, 1, 0, &r), -EINVAL);
	hs.commit = 1;
	ck_assert_int_eq(raft_create(&cfg, &hs, log, 1, 0, &r), 0);
	ck_assert_int_eq(raft_step(r, &(struct raft_msg){.type = RAFT_MSG_APP,
							 .from = 2,
							 .to = 9,
							 .term = 1}),
			 -EINVAL);
	ck_assert_int_eq(raft_step(r, &(struct raft_msg){.type = RAFT_MSG_APP,
							 .from = 2,
							 .to = 1}),
			 -EINVAL); /* term 0: only PROP and READ_INDEX */
	ck_assert_int_eq(raft_step(r, &(struct raft_msg){.type = 99,
							 .from = 2,
							 .to = 1,
							 .term = 1}),
			 -EINVAL);
	ck_assert_int_eq(
		raft_step(r, &(struct raft_msg){.type = RAFT_MSG_READ_INDEX,
						.from = 2,
						.to = 1,
						.ctx = 1}),
		0);
	raft_destroy(r);
}
END_TEST

/* A torn write kept a ready's entries (term 2) but not its hard state
 * (term 1): the member restarts in term 2 with no vote (a vote is never
 * sent before its hard state is durable, §5.6), and persists it. */
START_TEST(test_restart_torn_hard_state)
{
	uint64_t voters[] = {1, 2, 3};
	struct raft_config cfg = {.id = 1,
				  .voters = voters,
				  .n_voters = 3,
				  .election_tick = 10,
				  .heartbeat_tick = 1};
	struct raft_entry log[2] = {{.term = 1, .index = 1},
				    {.term = 2, .index = 2}};
	struct raft_hard_state hs = {.term = 1, .vote = 2, .commit = 1};
	struct raft_ready rd;
	struct raft *r = NULL;

	ck_assert_int_eq(raft_create(&cfg, &hs, log, 2, 0, &r), 0);
	ck_assert_uint_eq(raft_term(r), 2);
	ck_assert_int_eq(raft_check(r), 0);
	ck_assert(raft_has_ready(r));
	raft_ready(r, &rd);
	ck_assert(rd.hard_state_changed);
	ck_assert_uint_eq(rd.hs.term, 2);
	ck_assert_uint_eq(rd.hs.vote, RAFT_NONE);
	raft_advance(r, &rd);
	raft_destroy(r);
	/* Entries after a snapshot (at 1, term 2) with a lower term are
	 * from another history: ignored (votes compare the snapshot's). */
	cfg.snap_index = 1;
	cfg.snap_term = 2;
	log[1].term = 1;
	hs.term = 2;
	hs.commit = 2;
	ck_assert_int_eq(raft_create(&cfg, &hs, log + 1, 1, 1, &r), 0);
	ck_assert_uint_eq(raft_last_index(r), 1);
	ck_assert_uint_eq(raft_commit_index(r), 1);
	ck_assert_int_eq(raft_check(r), 0);
	raft_destroy(r);
}
END_TEST

/* A candidate's term and self-vote are in a hard state before any vote
 * request leaves; a vote is durable before its grant leaves (§5.2, §5.6). */
START_TEST(test_vote_waits_for_hard_state)
{
	struct tnet n;
	struct tnode *a, *b;
	struct raft_ready rd;
	size_t i;

	net_init(&n, 3, false, false);
	a = &n.nodes[0];
	b = &n.nodes[1];
	ck_assert_int_eq(raft_campaign(a->r), 0);
	ck_assert_int_eq(raft_role(a->r), RAFT_CANDIDATE);
	raft_ready(a->r, &rd);
	ck_assert(rd.hard_state_changed);
	ck_assert_uint_eq(rd.hs.term, 1);
	ck_assert_uint_eq(rd.hs.vote, 1);
	ck_assert_uint_eq(rd.n_msgs, 0);
	raft_advance(a->r, &rd); /* hs durable now */
	raft_ready(a->r, &rd);
	ck_assert_uint_eq(rd.n_msgs, 2);
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(rd.msgs[i].type, RAFT_MSG_VOTE);
		ck_assert_uint_eq(rd.msgs[i].term, 1);
	}
	i = rd.msgs[0].to == 2 ? 0 : 1;
	ck_assert_uint_eq(rd.msgs[i].to, 2);
	ck_assert_int_eq(raft_step(b->r, &rd.msgs[i]), 0);
	raft_advance(a->r, &rd);
	raft_ready(b->r, &rd);
	ck_assert(rd.hard_state_changed);
	ck_assert_uint_eq(rd.hs.vote, 1);
	ck_assert_uint_eq(rd.n_msgs, 0); /* the grant waits */
	raft_advance(b->r, &rd);
	raft_ready(b->r, &rd);
	ck_assert_uint_eq(rd.n_msgs, 1);
	ck_assert_int_eq(rd.msgs[0].type, RAFT_MSG_VOTE_RESP);
	ck_assert(!rd.msgs[0].reject);
	ck_assert_int_eq(raft_step(a->r, &rd.msgs[0]), 0);
	raft_advance(b->r, &rd);
	ck_assert_int_eq(raft_role(a->r), RAFT_LEADER);
	net_free(&n);
}
END_TEST

/* A repeated vote request (its grant was lost) is answered again at once:
 * the vote is already durable (§5.2). */
START_TEST(test_vote_repeated_request)
{
	struct tnet n;
	struct tnode *b;
	struct raft_ready rd;
	struct raft_msg v = {
		.type = RAFT_MSG_VOTE, .from = 1, .to = 2, .term = 1};

	net_init(&n, 3, false, false);
	b = &n.nodes[1];
	ck_assert_int_eq(raft_step(b->r, &v), 0);
	raft_ready(b->r, &rd);
	ck_assert_uint_eq(rd.hs.vote, 1);
	ck_assert_uint_eq(rd.n_msgs, 0);
	raft_advance(b->r, &rd);
	raft_ready(b->r, &rd); /* the grant, lost by the network */
	ck_assert_uint_eq(rd.n_msgs, 1);
	raft_advance(b->r, &rd);
	ck_assert(!raft_has_ready(b->r));
	ck_assert_int_eq(raft_step(b->r, &v), 0);
	ck_assert(raft_has_ready(b->r));
	raft_ready(b->r, &rd);
	ck_assert(!rd.hard_state_changed);
	ck_assert_uint_eq(rd.n_msgs, 1);
	ck_assert_int_eq(rd.msgs[0].type, RAFT_MSG_VOTE_RESP);
	ck_assert(!rd.msgs[0].reject);
	raft_advance(b->r, &rd);
	/* Another candidate of the same term is refused. */
	v.from = 3;
	ck_assert_int_eq(raft_step(b->r, &v), 0);
	raft_ready(b->r, &rd);
	ck_assert_uint_eq(rd.n_msgs, 1);
	ck_assert(rd.msgs[0].reject);
	raft_advance(b->r, &rd);
	net_free(&n);
}
END_TEST

/* ---- three members ---- */

static void three_elect_once(bool pre_vote, bool check_quorum)
{
	struct tnet n;
	uint64_t lead;
	size_t i;

	net_init(&n, 3, pre_vote, check_quorum);
	lead = net_elect(&n, 100);
	T_ASSERT(lead != 0, "no leader (pre_vote %d)", pre_vote);
	for (i = 0; i < 3; i++) {
		T_ASSERT(raft_leader(n.nodes[i].r) == lead, "disagree");
		T_ASSERT(raft_term(n.nodes[i].r) ==
				 raft_term(net_node(&n, lead)->r),
			 "term");
	}
	/* Heartbeats keep it: no new election for a long while. */
	for (i = 0; i < 50; i++)
		net_tick(&n);
	T_ASSERT(net_leader(&n) == lead, "leader changed while healthy");
	net_free(&n);
}

START_TEST(test_three_election)
{
	unsigned long long base = g_seed;
	int s;

	log_set_level(LOG_WARN);
	/* §5.2 over many seeds, with and without pre-vote/check-quorum. */
	for (s = 0; s < 20; s++) {
		g_seed = base + (unsigned long long)s;
		three_elect_once(s & 1, s & 2);
	}
	log_set_level(LOG_INFO);
	g_seed = base;
}
END_TEST

START_TEST(test_three_replication)
{
	struct tnet n;
	struct tnode *l;
	uint64_t idx = 0;
	size_t i;
	char b[32];

	l = net_start(&n, 3, false, false);
	for (i = 0; i < 20; i++) {
		snprintf(b, sizeof(b), "k%zu", i);
		idx = propose_str(l, b);
	}
	net_settle(&n);
	net_tick(&n); /* a heartbeat carries the final commit index */
	for (i = 0; i < 3; i++) {
		T_ASSERT(n.nodes[i].applied == idx, "member %zu applied %llu",
			 i + 1, (unsigned long long)n.nodes[i].applied);
		T_ASSERT(n.nodes[i].n_log == idx, "log length");
	}
	net_free(&n);
}
END_TEST

/* §5.3: a follower that missed entries catches up through the consistency
 * check walking back to the point of agreement. */
START_TEST(test_three_catch_up)
{
	struct tnet n;
	struct tnode *l;
	uint64_t lead, lag, idx = 0;
	size_t i;
	char b[32];

	l = net_start(&n, 3, false, false);
	lead = l->id;
	lag = lead % 3 + 1;
	net_isolate(&n, lag, true);
	for (i = 0; i < 30; i++) {
		snprintf(b, sizeof(b), "k%zu", i);
		idx = propose_str(l, b);
		if (i % 7 == 0)
			net_settle(&n);
	}
	net_settle(&n);
	T_ASSERT(raft_commit_index(l->r) == idx, "majority commit");
	T_ASSERT(net_node(&n, lag)->applied < idx, "lagging");
	net_isolate(&n, lag, false);
	for (i = 0; i < 5; i++)
		net_tick(&n);
	T_ASSERT(net_leader(&n) == lead, "same leader");
	T_ASSERT(net_node(&n, lag)->applied == idx, "caught up: %llu",
		 (unsigned long long)net_node(&n, lag)->applied);
	net_free(&n);
}
END_TEST

/* §5.3 conflict resolution and §5.1 step-down: a partitioned leader keeps
 * appending uncommitted entries; the majority elects a new leader in a
 * higher term; on healing the old leader steps down and its conflicting
 * entries are replaced by the new leader's. */
static void partitioned_leader(bool pre_vote, bool check_quorum)
{
	struct tnet n;
	struct tnode *old, *nl;
	uint64_t lead, lead2, idx = 0, t1;
	size_t i;
	char b[32];

	old = net_start(&n, 3, pre_vote, check_quorum);
	lead = old->id;
	propose_str(old, "committed");
	net_settle(&n);
	t1 = raft_term(old->r);
	net_isolate(&n, lead, true);
	for (i = 0; i < 5; i++) {
		snprintf(b, sizeof(b), "lost%zu", i);
		propose_str(old, b);
	}
	net_settle(&n);
	ck_assert_uint_eq(old->n_log, raft_last_index(old->r));
	lead2 = 0;
	for (i = 0; i < 100 && !lead2; i++) {
		net_tick(&n);
		lead2 = net_leader(&n);
		if (lead2 == lead)
			lead2 = 0;
	}
	T_ASSERT(lead2 && lead2 != lead, "no new leader");
	nl = net_node(&n, lead2);
	T_ASSERT(raft_term(nl->r) > t1, "higher term");
	for (i = 0; i < 3; i++) {
		snprintf(b, sizeof(b), "new%zu", i);
		idx = propose_str(nl, b);
	}
	net_settle(&n);
	for (i = 0; check_quorum && i < 20; i++)
		net_tick(&n); /* at most two check periods */
	if (check_quorum)
		T_ASSERT(raft_role(old->r) != RAFT_LEADER &&
				 raft_term(old->r) == t1,
			 "check_quorum: isolated leader steps down, and "
			 "pre-vote keeps its term");
	net_isolate(&n, lead, false);
	for (i = 0; i < 5; i++)
		net_tick(&n);
	T_ASSERT(raft_role(old->r) == RAFT_FOLLOWER, "old leader stepped down");
	T_ASSERT(raft_term(old->r) == raft_term(nl->r), "term adopted");
	T_ASSERT(raft_leader(old->r) == lead2, "follows the new leader");
	T_ASSERT(old->applied == idx && old->n_log == idx, "caught up");
	for (i = 0; i < old->n_log; i++)
		T_ASSERT(old->log[i].term == nl->log[i].term,
			 "conflict replaced at %zu", i + 1);
	net_free(&n);
}

START_TEST(test_partitioned_leader)
{
	partitioned_leader(false, false);
}
END_TEST

START_TEST(test_partitioned_leader_pre_vote)
{
	partitioned_leader(true, true);
}
END_TEST

/* §5.4.2, Figure 8: a leader must not commit an entry of an earlier term
 * by counting replicas; here entry 2 (term 2) reaches a majority under a
 * term-4 leader, yet member 3 (last entry term 3) could still be elected
 * and overwrite it, so it stays uncommitted until an entry of term 4
 * reaches the majority. */
static void fig8_setup(struct tnet *n)
{
	static const uint64_t terms[3][3] = {{1, 2, 0}, {1, 0, 0}, {1, 3, 0}};
	struct raft_entry e;
	size_t i, j;
	uint8_t v;

	net_init(n, 3, false, false);
	for (i = 0; i < 3; i++) {
		struct tnode *t = &n->nodes[i];

		raft_destroy(t->r);
		t->r = NULL;
		t->cfg.max_msg_entries = 1;
		for (j = 0; j < 3 && terms[i][j]; j++) {
			v = (uint8_t)('a' + terms[i][j]);
			e = (struct raft_entry){.term = terms[i][j],
						.index = j + 1,
						.data = &v,
						.len = 1};
			store_entries(t, &e, 1);
		}
		t->hs = (struct raft_hard_state){.term = 3, .commit = 1};
		ck_assert_int_eq(node_start(n, t), 0);
	}
}

START_TEST(test_figure8_no_commit_by_counting)
{
	struct tnet n;
	struct tnode *s1, *s2, *s3;
	int k;

	fig8_setup(&n);
	s1 = &n.nodes[0];
	s2 = &n.nodes[1];
	s3 = &n.nodes[2];
	/* s1 wins term 4 with s2's vote; s3 refuses (its log is newer). */
	net_isolate(&n, 3, true);
	ck_assert_int_eq(raft_campaign(s1->r), 0);
	for (k = 0; k < 10 && raft_role(s1->r) != RAFT_LEADER; k++) {
		node_ready(&n, s1);
		node_ready(&n, s2);
		net_deliver(&n);
	}
	ck_assert_int_eq(raft_role(s1->r), RAFT_LEADER);
	ck_assert_uint_eq(raft_term(s1->r), 4);
	/* Replicate to s2 one entry per APP, and stop once s2 holds entry
	 * 2 but not the term-4 entry 3. */
	for (k = 0; k < 20 && s2->n_log < 2; k++) {
		node_ready(&n, s1);
		node_ready(&n, s2);
		net_deliver(&n);
	}
	ck_assert_uint_eq(s2->n_log, 2);
	ck_assert_uint_eq(s2->log[1].term, 2);
	node_ready(&n, s2); /* its ack of index 2 */
	/* Deliver only s2's acks to s1, drop s1's further appends. */
	for (k = 0; k < 5; k++) {
		size_t i, kept = 0;

		for (i = 0; i < n.nq; i++) {
			if (n.q[i].m.from == 2)
				n.q[kept++] = n.q[i];
			else
				msg_free(&n.q[i].m);
		}
		n.nq = kept;
		net_deliver(&n);
		node_ready(&n, s1);
		node_ready(&n, s2);
	}
	/* Entry 2 is on s1 and s2, a majority: still not committed. */
	T_ASSERT(raft_commit_index(s1->r) < 2, "committed by counting: %llu",
		 (unsigned long long)raft_commit_index(s1->r));
	check_safety(&n);
	/* s1 crashes; s3 can win term 5 with s2's vote and overwrite entry
	 * 2: that is why committing it would have been unsafe. */
	s1->up = false;
	net_isolate(&n, 3, false);
	ck_assert_int_eq(raft_campaign(s3->r), 0);
	for (k = 0; k < 200 && raft_role(s3->r) != RAFT_LEADER; k++)
		net_tick(&n);
	ck_assert_int_eq(raft_role(s3->r), RAFT_LEADER);
	net_settle(&n);
	net_tick(&n);
	ck_assert_uint_eq(s2->log[1].term, 3);
	T_ASSERT(s2->applied >= 2, "s3's entries committed");
	net_free(&n);
}
END_TEST

START_TEST(test_figure8_commit_through_current_term)
{
	struct tnet n;
	struct tnode *s1, *s2;
	int k;

	fig8_setup(&n);
	s1 = &n.nodes[0];
	s2 = &n.nodes[1];
	net_isolate(&n, 3, true);
	ck_assert_int_eq(raft_campaign(s1->r), 0);
	for (k = 0; k < 40; k++)
		net_settle(&n);
	ck_assert_int_eq(raft_role(s1->r), RAFT_LEADER);
	/* Once the term-4 entry 3 is on s2, entries 2 and 3 commit. */
	ck_assert_uint_eq(raft_commit_index(s1->r), 3);
	ck_assert_uint_eq(s1->applied, 3);
	net_tick(&n);
	ck_assert_uint_eq(s2->applied, 3);
	net_free(&n);
}
END_TEST

/* Entries between ready and advance: a follower's log is overwritten while
 * a ready holding the old entries is out; nothing dangles (ASan) and the
 * new entries are handed out again. */
START_TEST(test_truncate_during_ready)
{
	struct tnet n;
	struct tnode *f;
	struct raft_entry e[2];
	struct raft_msg m = {0};
	struct raft_ready rd;
	uint8_t x = 'x', y = 'y';

	net_init(&n, 3, false, false);
	f = &n.nodes[2];
	e[0] = (struct raft_entry){.term = 1, .index = 1, .data = &x, .len = 1};
	m = (struct raft_msg){.type = RAFT_MSG_APP,
			      .from = 1,
			      .to = 3,
			      .term = 1,
			      .entries = e,
			      .n_entries = 1};
	ck_assert_int_eq(raft_step(f->r, &m), 0);
	raft_ready(f->r, &rd);
	ck_assert_uint_eq(rd.n_entries, 1);
	/* A term-2 leader replaces entry 1 before the ready is advanced. */
	e[0] = (struct raft_entry){.term = 2, .index = 1, .data = &y, .len = 1};
	m.from = 2;
	m.term = 2;
	ck_assert_int_eq(raft_step(f->r, &m), 0);
	ck_assert_mem_eq(rd.entries[0].data, "x", 1); /* still valid */
	raft_persisted(f->r, 1, 1); /* the stale fsync report */
	raft_advance(f->r, &rd);
	ck_assert(raft_has_ready(f->r));
	raft_ready(f->r, &rd);
	ck_assert_uint_eq(rd.n_entries, 1);
	ck_assert_uint_eq(rd.entries[0].term, 2);
	ck_assert_mem_eq(rd.entries[0].data, "y", 1);
	ck_assert_uint_eq(rd.n_msgs, 0); /* not durable: no ack yet */
	raft_persisted(f->r, 1, 2);
	raft_advance(f->r, &rd);
	raft_ready(f->r, &rd);
	ck_assert_uint_eq(rd.n_msgs, 1);
	ck_assert_int_eq(rd.msgs[0].type, RAFT_MSG_APP_RESP);
	ck_assert_uint_eq(rd.msgs[0].to, 2);
	ck_assert_uint_eq(rd.msgs[0].index, 1);
	ck_assert(!rd.msgs[0].reject);
	raft_advance(f->r, &rd);
	net_free(&n);
}
END_TEST

START_TEST(test_compact)
{
	struct tnet n;
	struct tnode *t;
	uint64_t term;
	size_t i;

	single_init(&n);
	t = &n.nodes[0];
	ck_assert_int_eq(raft_campaign(t->r), 0);
	for (i = 0; i < 10; i++)
		propose_str(t, "v");
	net_settle(&n);
	ck_assert_uint_eq(t->applied, 11);
	raft_compact(t->r, 12, 1); /* past applied: refused */
	ck_assert_uint_eq(raft_first_index(t->r), 1);
	raft_compact(t->r, 8, 1);
	ck_assert_uint_eq(raft_first_index(t->r), 9);
	ck_assert_int_eq(raft_entry_term(t->r, 8, &term), 0);
	ck_assert_uint_eq(term, 1);
	ck_assert_int_eq(raft_entry_term(t->r, 7, &term), -ERANGE);
	ck_assert_int_eq(raft_entry_term(t->r, 12, &term), -ENOENT);
	propose_str(t, "w");
	net_settle(&n);
	ck_assert_uint_eq(t->applied, 12);
	net_free(&n);
}
END_TEST

static const struct raft_msg *find_app(const struct raft_ready *rd, uint64_t to)
{
	size_t i;

	for (i = 0; i < rd->n_msgs; i++)
		if (rd->msgs[i].type == RAFT_MSG_APP && rd->msgs[i].to == to &&
		    rd->msgs[i].n_entries)
			return &rd->msgs[i];
	return NULL;
}

/* Compaction while a ready holding those entries in a message is out: the
 * message stays valid until raft_advance (ASan checks). */
START_TEST(test_compact_during_ready)
{
	struct tnet n;
	struct tnode *l;
	const struct raft_msg *app = NULL;
	uint64_t lead, lag, idx = 0, term;
	size_t i;
	int k;

	l = net_start(&n, 3, false, false);
	lead = l->id;
	lag = lead % 3 + 1;
	net_isolate(&n, lag, true);
	for (i = 0; i < 10; i++)
		idx = propose_str(l, "payload");
	net_settle(&n);
	ck_assert_uint_eq(l->applied, idx);
	net_isolate(&n, lag, false);
	for (k = 0; k < 20 && !app; k++) {
		if (k % 4 == 0)
			raft_tick(l->r);
		node_ready_begin(&n, l);
		app = l->rd_out ? find_app(&l->rd, lag) : NULL;
		if (app)
			break;
		node_ready_end(l);
		net_deliver(&n);
		for (i = 0; i < 3; i++)
			if (n.nodes[i].id != lead)
				node_ready(&n, &n.nodes[i]);
		net_deliver(&n);
	}
	ck_assert_ptr_nonnull(app);
	ck_assert_int_eq(raft_entry_term(l->r, idx, &term), 0);
	raft_compact(l->r, idx, term);
	ck_assert_uint_eq(raft_first_index(l->r), idx + 1);
	for (i = 0; i < app->n_entries; i++)
		if (app->entries[i].len)
			ck_assert_mem_eq(app->entries[i].data, "payload", 7);
	node_ready_end(l);
	/* The copy already sent lets the lagging member catch up. */
	net_settle(&n);
	net_tick(&n);
	T_ASSERT(net_node(&n, lag)->applied == idx, "lag applied %llu",
		 (unsigned long long)net_node(&n, lag)->applied);
	net_free(&n);
}
END_TEST

/* ---- clusters: forwarding, ReadIndex, transfer, membership, snapshots,
 * flow control (issue 5) ---- */

/* The k-th member (k = 1, 2) other than id in a 3-member world. */
static struct tnode *other(struct tnet *n, uint64_t id, int k)
{
	return net_node(n, (id + (uint64_t)k - 1) % 3 + 1);
}

static uint64_t propose_cc(struct tnode *t, const char *cc)
{
	uint64_t idx = 0;
	int err = raft_propose_type(t->r, RAFT_ENTRY_CONF_CHANGE, cc,
				    strlen(cc), &idx);

	T_ASSERT(err == 0, "conf change %s on %llu: %d", cc,
		 (unsigned long long)t->id, err);
	return idx;
}

static size_t count_voters(struct tnode *t, size_t *n_learners)
{
	size_t nv = 0;

	raft_conf(t->r, NULL, &nv, NULL, n_learners, 0);
	return nv;
}

/* Thesis §6.2: a follower forwards a client's proposal to the leader. */
START_TEST(test_follower_propose_forwards)
{
	struct tnet n;
	struct tnode *l, *f;
	uint64_t lead, idx = 99;
	size_t i;

	net_init(&n, 3, true, true);
	ck_assert_int_eq(raft_propose(n.nodes[0].r, "x", 1, &idx),
			 CAIRN_ENO_LEADER);
	lead = net_elect(&n, 100);
	T_ASSERT(lead, "no leader");
	l = net_node(&n, lead);
	f = other(&n, lead, 1);
	ck_assert_int_eq(raft_propose(f->r, "fwd", 3, &idx), 0);
	ck_assert_uint_eq(idx, 0);
	net_settle(&n);
	idx = raft_last_index(l->r);
	for (i = 0; i < 3; i++)
		ck_assert_uint_eq(n.nodes[i].applied, idx);
	ck_assert_uint_eq(l->log[idx - 1].len, 3);
	ck_assert_mem_eq(l->log[idx - 1].data, "fwd", 3);
	ck_assert_uint_eq(l->log[idx - 1].term, raft_term(l->r));
	net_free(&n);
}
END_TEST

/* §6.4 ReadIndex: the leader answers only after a quorum acknowledged a
 * heartbeat round started after the request; the index is its commit. */
START_TEST(test_read_index_leader_needs_quorum)
{
	struct tnet n;
	struct tnode *l;
	uint64_t lead;

	l = net_start(&n, 3, false, false);
	lead = l->id;
	propose_str(l, "a");
	net_settle(&n);
	ck_assert_int_eq(raft_read_index(l->r, 0), -EINVAL);
	n.cut[other(&n, lead, 1)->id][lead] = true; /* acks lost */
	n.cut[other(&n, lead, 2)->id][lead] = true;
	ck_assert_int_eq(raft_read_index(l->r, 42), 0);
	net_settle(&n);
	net_tick(&n);
	ck_assert_uint_eq(l->n_reads, 0);
	n.cut[other(&n, lead, 2)->id][lead] = false; /* one ack: quorum */
	net_tick(&n);
	ck_assert_uint_eq(l->n_reads, 1);
	ck_assert_uint_eq(l->reads[0].ctx, 42);
	ck_assert_uint_eq(l->reads[0].index, raft_commit_index(l->r));
	net_free(&n);
}
END_TEST

/* §6.4 step 1: a new leader records no read index before an entry of its
 * term is committed (it may not know the latest commit yet). */
START_TEST(test_read_index_waits_for_term_commit)
{
	struct tnet n;
	struct tnode *c;
	int k;
	size_t i;

	net_init(&n, 3, false, false);
	c = &n.nodes[0];
	ck_assert_int_eq(raft_campaign(c->r), 0);
	for (k = 0; k < 10 && raft_role(c->r) != RAFT_LEADER; k++) {
		for (i = 0; i < 3; i++)
			node_ready(&n, &n.nodes[i]);
		net_deliver(&n);
	}
	ck_assert_int_eq(raft_role(c->r), RAFT_LEADER);
	ck_assert_uint_lt(raft_commit_index(c->r), raft_last_index(c->r));
	ck_assert_int_eq(raft_read_index(c->r, 7), 0);
	node_ready(&n, c);
	ck_assert_uint_eq(c->n_reads, 0);
	net_settle(&n);
	ck_assert_uint_eq(c->n_reads, 1);
	ck_assert_uint_eq(c->reads[0].ctx, 7);
	ck_assert_uint_eq(c->reads[0].index, raft_last_index(c->r));
	net_free(&n);
}
END_TEST

/* §6.4 on a follower: it asks the leader, which confirms and answers. */
START_TEST(test_read_index_follower)
{
	struct tnet n;
	struct tnode *l, *f;
	uint64_t lead;

	net_init(&n, 3, true, true);
	ck_assert_int_eq(raft_read_index(n.nodes[1].r, 3), CAIRN_ENO_LEADER);
	lead = net_elect(&n, 100);
	l = net_node(&n, lead);
	f = other(&n, lead, 1);
	propose_str(l, "a");
	net_settle(&n);
	ck_assert_int_eq(raft_read_index(f->r, 9), 0);
	ck_assert_int_eq(raft_read_index(f->r, 10), 0);
	net_settle(&n);
	ck_assert_uint_eq(f->n_reads, 2);
	ck_assert_uint_eq(f->reads[0].ctx, 9);
	ck_assert_uint_eq(f->reads[1].ctx, 10);
	ck_assert_uint_eq(f->reads[0].index, raft_commit_index(l->r));
	ck_assert_uint_eq(l->n_reads, 0);
	net_free(&n);
}
END_TEST

/* §6.4: a lone voter is its own quorum: the answer is in the next ready. */
START_TEST(test_read_index_lone_voter)
{
	struct tnet n;
	struct tnode *t;

	single_init(&n);
	t = &n.nodes[0];
	ck_assert_int_eq(raft_campaign(t->r), 0);
	propose_str(t, "a");
	net_settle(&n);
	ck_assert_int_eq(raft_read_index(t->r, 5), 0);
	ck_assert(raft_has_ready(t->r));
	node_ready(&n, t);
	ck_assert_uint_eq(t->n_reads, 1);
	ck_assert_uint_eq(t->reads[0].index, 2);
	net_free(&n);
}
END_TEST

/* §6.4: requests die with the leader's role; none is answered late. */
START_TEST(test_read_index_dropped_on_step_down)
{
	struct tnet n;
	struct tnode *l;
	uint64_t lead;
	int k;

	l = net_start(&n, 3, true, true);
	lead = l->id;
	net_isolate(&n, lead, true);
	ck_assert_int_eq(raft_read_index(l->r, 11), 0);
	for (k = 0; k < 25 && raft_role(l->r) == RAFT_LEADER; k++)
		net_tick(&n);
	ck_assert_int_ne(raft_role(l->r), RAFT_LEADER);
	net_isolate(&n, lead, false);
	T_ASSERT(net_elect(&n, 100), "no leader");
	net_tick(&n);
	ck_assert_uint_eq(l->n_reads, 0);
	net_free(&n);
}
END_TEST

/* Thesis §4.2.1 learners: replicated to, never counted in a quorum (commit
 * nor ReadIndex), never campaign; promotion makes them count. */
START_TEST(test_learner)
{
	struct tnet n;
	struct tnode *l, *v, *x;
	uint64_t lead, term, idx;
	size_t nl;
	int k;

	net_init_conf(&n, 3, 2, 1, false, false);
	lead = net_elect(&n, 100);
	T_ASSERT(lead == 1 || lead == 2, "leader %llu",
		 (unsigned long long)lead);
	l = net_node(&n, lead);
	v = net_node(&n, 3 - lead);
	x = net_node(&n, 3);
	idx = propose_str(l, "x");
	net_settle(&n);
	ck_assert_uint_eq(x->applied, idx);
	ck_assert_int_eq(raft_campaign(x->r), -EPERM);
	ck_assert_int_eq(raft_transfer_leader(l->r, 3),
			 CAIRN_EBAD_LEADER_TRANSFEREE);
	/* Not counted: with the other voter gone, nothing commits nor
	 * confirms a read, though the learner acknowledges. */
	net_isolate(&n, v->id, true);
	idx = propose_str(l, "y");
	ck_assert_int_eq(raft_read_index(l->r, 1), 0);
	net_settle(&n);
	net_tick(&n);
	ck_assert_uint_lt(raft_commit_index(l->r), idx);
	ck_assert_uint_eq(l->n_reads, 0);
	ck_assert_uint_eq(raft_last_index(x->r), idx);
	/* Never campaigns, however long it hears nothing. */
	net_isolate(&n, 3, true);
	term = raft_term(x->r);
	for (k = 0; k < 40; k++)
		raft_tick(x->r);
	net_settle(&n);
	ck_assert_uint_eq(raft_term(x->r), term);
	ck_assert_int_eq(raft_role(x->r), RAFT_FOLLOWER);
	net_isolate(&n, 3, false);
	net_isolate(&n, v->id, false);
	net_tick(&n);
	ck_assert_uint_eq(raft_commit_index(l->r), raft_last_index(l->r));
	/* Promotion: now leader + learner are a quorum of three. */
	propose_cc(l, "A3");
	net_settle(&n);
	ck_assert_uint_eq(count_voters(l, &nl), 3);
	ck_assert_uint_eq(nl, 0);
	ck_assert_uint_eq(count_voters(x, &nl), 3);
	net_isolate(&n, v->id, true);
	idx = propose_str(l, "z");
	net_settle(&n);
	ck_assert_uint_eq(raft_commit_index(l->r), idx);
	net_free(&n);
}
END_TEST

/* Thesis §4.1: one membership change at a time; a forwarded one is dropped
 * while one is pending. */
START_TEST(test_conf_change_one_at_a_time)
{
	struct tnet n;
	struct tnode *l, *f;
	uint64_t lead, idx, last;
	size_t i, cc = 0;

	net_init_conf(&n, 4, 3, 0, false, false);
	lead = net_elect(&n, 100);
	l = net_node(&n, lead);
	f = other(&n, lead, 1);
	idx = propose_cc(l, "L4");
	ck_assert_int_eq(
		raft_propose_type(l->r, RAFT_ENTRY_CONF_CHANGE, "R4", 2, NULL),
		CAIRN_ECONF_CHANGE_PENDING);
	/* Forwarded, then dropped by the leader. */
	ck_assert_int_eq(
		raft_propose_type(f->r, RAFT_ENTRY_CONF_CHANGE, "R4", 2, NULL),
		0);
	propose_str(l, "n"); /* normal entries are not held up */
	net_settle(&n);
	last = raft_last_index(l->r);
	ck_assert_uint_eq(l->applied, last);
	for (i = 0; i < last; i++)
		cc += l->log[i].type == RAFT_ENTRY_CONF_CHANGE;
	ck_assert_uint_eq(cc, 1);
	ck_assert_uint_gt(l->applied, idx);
	ck_assert_uint_eq(count_voters(l, &i), 3);
	ck_assert_uint_eq(i, 1);
	/* Applied: the next one is taken. */
	propose_cc(l, "R4");
	net_settle(&n);
	ck_assert_uint_eq(count_voters(f, &i), 3);
	ck_assert_uint_eq(i, 0);
	net_free(&n);
}
END_TEST

/* Thesis §4.1 (and etcd): a new leader may hold an unapplied conf change
 * among the entries it inherited, so it takes none until everything up to
 * its last index at election is applied. */
START_TEST(test_conf_change_pending_after_election)
{
	struct tnet n;
	struct tnode *l, *f;
	uint64_t lead;
	size_t i;
	int k;

	l = net_start(&n, 3, false, false);
	lead = l->id;
	f = other(&n, lead, 1);
	propose_cc(l, "U1"); /* an UPDATE_NODE: changes nothing in raft */
	node_ready(&n, l);
	net_deliver(&n); /* followers have it, not knowing it committed */
	net_isolate(&n, lead, true);
	ck_assert_int_eq(raft_campaign(f->r), 0);
	for (k = 0; k < 10 && raft_role(f->r) != RAFT_LEADER; k++) {
		for (i = 0; i < 3; i++)
			node_ready(&n, &n.nodes[i]);
		net_deliver(&n);
	}
	ck_assert_int_eq(raft_role(f->r), RAFT_LEADER);
	ck_assert_uint_lt(f->applied, raft_last_index(f->r) - 1);
	ck_assert_int_eq(
		raft_propose_type(f->r, RAFT_ENTRY_CONF_CHANGE, "U2", 2, NULL),
		CAIRN_ECONF_CHANGE_PENDING);
	propose_str(f, "n");
	net_settle(&n);
	ck_assert_uint_eq(f->applied, raft_last_index(f->r));
	propose_cc(f, "U2");
	net_free(&n);
}
END_TEST

/* Thesis §4.1 adding a server: it starts outside the configuration, the
 * leader probes it from its last index + 1 and it catches up; then it
 * counts in the quorum (3 of 4). */
START_TEST(test_add_member)
{
	struct tnet n;
	struct tnode *l, *x;
	struct raft_progress_info pi;
	uint64_t lead, idx, last;
	int k;

	net_init_conf(&n, 4, 3, 0, false, false);
	x = &n.nodes[3];
	lead = net_elect(&n, 100);
	l = net_node(&n, lead);
	for (k = 0; k < 5; k++)
		propose_str(l, "e");
	net_settle(&n);
	ck_assert_int_eq(raft_progress(l->r, 4, &pi), -ENOENT);
	idx = propose_cc(l, "A4");
	last = raft_last_index(l->r);
	net_settle(&n);
	ck_assert_uint_eq(count_voters(l, NULL), 4);
	ck_assert_int_eq(raft_progress(l->r, 4, &pi), 0);
	ck_assert_uint_eq(pi.match, 0);
	ck_assert_uint_eq(pi.next, last + 1);
	ck_assert_int_eq(pi.state, 0);
	ck_assert(!pi.learner);
	ck_assert_int_eq(raft_progress(other(&n, lead, 1)->r, 4, &pi),
			 CAIRN_ENOT_LEADER);
	ck_assert_int_eq(node_start(&n, x), 0);
	x->up = true;
	for (k = 0; k < 5; k++)
		net_tick(&n);
	ck_assert_uint_eq(x->applied, l->applied);
	ck_assert_uint_ge(x->applied, idx);
	ck_assert_uint_eq(count_voters(x, NULL), 4);
	ck_assert_int_eq(raft_progress(l->r, 4, &pi), 0);
	ck_assert_uint_eq(pi.match, raft_last_index(l->r));
	ck_assert_int_eq(pi.state, 1);
	/* Quorum of four is three. */
	net_isolate(&n, other(&n, lead, 1)->id, true);
	net_isolate(&n, other(&n, lead, 2)->id, true);
	idx = propose_str(l, "q");
	net_settle(&n);
	ck_assert_uint_lt(raft_commit_index(l->r), idx);
	net_isolate(&n, other(&n, lead, 1)->id, false);
	net_tick(&n);
	ck_assert_uint_eq(raft_commit_index(l->r), idx);
	net_free(&n);
}
END_TEST

/* Thesis §4.2.2: a removed leader steps down; a member outside the
 * configuration never campaigns and ignores TIMEOUT_NOW. */
START_TEST(test_remove_leader)
{
	struct tnet n;
	struct tnode *l;
	struct raft_msg m = {0};
	uint64_t lead, lead2, term;
	int k;

	l = net_start(&n, 3, true, true);
	lead = l->id;
	propose_cc(l, lead == 1 ? "R1" : lead == 2 ? "R2" : "R3");
	net_settle(&n);
	ck_assert_int_eq(raft_role(l->r), RAFT_FOLLOWER);
	ck_assert_uint_eq(count_voters(l, NULL), 2);
	ck_assert_int_eq(raft_campaign(l->r), -EPERM);
	net_isolate(&n, lead, true);
	lead2 = net_elect(&n, 100);
	T_ASSERT(lead2 && lead2 != lead, "no new leader");
	term = raft_term(l->r);
	for (k = 0; k < 40; k++)
		raft_tick(l->r);
	net_settle(&n);
	ck_assert_uint_eq(raft_term(l->r), term);
	m.type = RAFT_MSG_TIMEOUT_NOW;
	m.from = lead2;
	m.to = lead;
	m.term = term;
	ck_assert_int_eq(raft_step(l->r, &m), 0);
	ck_assert_int_eq(raft_role(l->r), RAFT_FOLLOWER);
	ck_assert_uint_eq(raft_term(l->r), term);
	net_free(&n);
}
END_TEST

/* Thesis §3.10 leadership transfer: the target campaigns at once (no
 * pre-vote: term + 1) and wins though the others are in their leader
 * lease (check_quorum); proposals are refused meanwhile. */
START_TEST(test_transfer_leader)
{
	struct tnet n;
	struct tnode *l, *t;
	uint64_t lead, term;
	size_t i;

	l = net_start(&n, 3, true, true);
	lead = l->id;
	t = other(&n, lead, 1);
	propose_str(l, "a");
	net_settle(&n);
	term = raft_term(l->r);
	ck_assert_int_eq(raft_transfer_leader(l->r, t->id), 0);
	ck_assert_uint_eq(raft_lead_transferee(l->r), t->id);
	ck_assert_int_eq(raft_propose(l->r, "b", 1, NULL),
			 CAIRN_ELEADER_TRANSFER);
	net_settle(&n);
	ck_assert_uint_eq(net_leader(&n), t->id);
	ck_assert_uint_eq(raft_term(t->r), term + 1);
	for (i = 0; i < 3; i++)
		ck_assert_uint_eq(raft_leader(n.nodes[i].r), t->id);
	ck_assert_uint_eq(raft_lead_transferee(l->r), RAFT_NONE);
	net_free(&n);
}
END_TEST

/* §3.10: the leader first brings the target up to date. */
START_TEST(test_transfer_catches_up_first)
{
	struct tnet n;
	struct tnode *l, *t;
	uint64_t lead, idx = 0;
	int k;

	l = net_start(&n, 3, false, true);
	lead = l->id;
	t = other(&n, lead, 2);
	n.cut[lead][t->id] = true;
	for (k = 0; k < 3; k++)
		idx = propose_str(l, "c");
	net_settle(&n);
	ck_assert_uint_lt(raft_last_index(t->r), idx);
	ck_assert_int_eq(raft_transfer_leader(l->r, t->id), 0);
	net_settle(&n);
	ck_assert_int_eq(raft_role(l->r), RAFT_LEADER); /* not caught up */
	n.cut[lead][t->id] = false;
	for (k = 0; k < 3 && net_leader(&n) != t->id; k++)
		net_tick(&n);
	ck_assert_uint_eq(net_leader(&n), t->id);
	ck_assert_uint_ge(t->applied, idx);
	net_free(&n);
}
END_TEST

/* §3.10: a transfer that cannot finish is abandoned after an election
 * timeout; forwarded proposals are dropped meanwhile; bad targets. */
START_TEST(test_transfer_timeout)
{
	struct tnet n;
	struct tnode *l, *t, *f;
	uint64_t lead, last;
	int k;

	l = net_start(&n, 3, false, true);
	lead = l->id;
	t = other(&n, lead, 1);
	f = other(&n, lead, 2);
	ck_assert_int_eq(raft_transfer_leader(f->r, lead), 0);
	ck_assert_int_eq(raft_transfer_leader(f->r, t->id), CAIRN_ENOT_LEADER);
	ck_assert_int_eq(raft_transfer_leader(l->r, lead),
			 CAIRN_EBAD_LEADER_TRANSFEREE);
	ck_assert_int_eq(raft_transfer_leader(l->r, 9),
			 CAIRN_EBAD_LEADER_TRANSFEREE);
	net_isolate(&n, t->id, true);
	propose_str(l, "a");
	net_settle(&n);
	ck_assert_int_eq(raft_transfer_leader(l->r, t->id), 0);
	last = raft_last_index(l->r);
	ck_assert_int_eq(raft_propose(f->r, "p", 1, NULL), 0);
	net_settle(&n);
	ck_assert_uint_eq(raft_last_index(l->r), last);
	for (k = 0; k < 9; k++)
		net_tick(&n);
	ck_assert_uint_eq(raft_lead_transferee(l->r), t->id);
	net_tick(&n);
	ck_assert_uint_eq(raft_lead_transferee(l->r), RAFT_NONE);
	ck_assert_int_eq(raft_role(l->r), RAFT_LEADER);
	propose_str(l, "b");
	net_free(&n);
}
END_TEST

/* Thesis §4.2.3 disruptive servers: with check_quorum, a member that heard
 * from its leader within the election timeout ignores a vote request of a
 * higher term, unless it comes from a leadership transfer. */
START_TEST(test_vote_ignored_in_lease)
{
	struct tnet n;
	struct tnode *f, *x;
	struct raft_msg m = {0};
	uint64_t lead, term;

	lead = net_start(&n, 3, false, true)->id;
	f = other(&n, lead, 1);
	x = other(&n, lead, 2);
	term = raft_term(f->r);
	m.type = RAFT_MSG_VOTE;
	m.from = x->id;
	m.to = f->id;
	m.term = term + 1;
	m.index = raft_last_index(x->r);
	raft_entry_term(x->r, m.index, &m.log_term);
	ck_assert_int_eq(raft_step(f->r, &m), 0);
	ck_assert_uint_eq(raft_term(f->r), term);
	ck_assert_uint_eq(raft_leader(f->r), lead);
	m.transfer = true;
	ck_assert_int_eq(raft_step(f->r, &m), 0);
	ck_assert_uint_eq(raft_term(f->r), term + 1);
	node_ready(&n, f);
	ck_assert_uint_eq(f->hs.vote, x->id);
	net_free(&n);
}
END_TEST

/* Paper §7 / thesis §5: a follower that needs compacted entries gets a
 * snapshot (SNAP in the leader's ready, installed with raft_restore),
 * then replication resumes from it. */
START_TEST(test_snapshot_catch_up)
{
	struct tnet n;
	struct tnode *l, *f;
	struct raft_progress_info pi;
	uint64_t lead, idx = 0, term;
	int k;

	l = net_start(&n, 3, false, false);
	lead = l->id;
	f = other(&n, lead, 1);
	net_isolate(&n, f->id, true);
	for (k = 0; k < 10; k++)
		idx = propose_str(l, "s");
	net_settle(&n);
	ck_assert_int_eq(raft_entry_term(l->r, idx, &term), 0);
	raft_compact(l->r, idx, term);
	ck_assert_uint_eq(raft_first_index(l->r), idx + 1);
	n.snap_fail = true; /* first the "server" fails to send it */
	net_isolate(&n, f->id, false);
	net_tick(&n);
	ck_assert_uint_ge(n.n_snaps, 1);
	ck_assert_uint_lt(f->applied, idx);
	ck_assert_int_eq(raft_progress(l->r, f->id, &pi), 0);
	ck_assert_int_ne(pi.state, 1);
	net_tick(&n); /* retried after a sign of life */
	ck_assert_uint_ge(n.n_snaps, 2);
	n.snap_fail = false;
	for (k = 0; k < 3; k++)
		net_tick(&n);
	ck_assert_uint_eq(f->applied, idx);
	ck_assert_uint_eq(raft_first_index(f->r), idx + 1);
	ck_assert_int_eq(raft_progress(l->r, f->id, &pi), 0);
	ck_assert_int_eq(pi.state, 1);
	ck_assert_uint_eq(pi.match, idx);
	idx = propose_str(l, "after");
	net_settle(&n);
	ck_assert_uint_eq(f->applied, idx);
	net_free(&n);
}
END_TEST

/* raft_restore's refusals (its contract in raft.h). */
START_TEST(test_restore_errors)
{
	struct tnet n;
	struct tnode *l, *f;
	struct raft_snap_meta meta = {0};
	uint64_t lead, term;

	lead = net_start(&n, 3, false, false)->id;
	/* A second term, so that an older one exists. */
	ck_assert_int_eq(raft_transfer_leader(net_node(&n, lead)->r,
					      other(&n, lead, 1)->id),
			 0);
	net_settle(&n);
	lead = net_leader(&n);
	l = net_node(&n, lead);
	f = other(&n, lead, 1);
	propose_str(l, "a");
	net_settle(&n);
	term = raft_term(f->r);
	ck_assert_uint_ge(term, 2);
	meta.voters = n.voters;
	meta.n_voters = 3;
	meta.index = raft_commit_index(f->r);
	meta.term = 1;
	ck_assert_int_eq(raft_restore(f->r, &meta, lead, term), -ESTALE);
	meta.index += 5;
	ck_assert_int_eq(raft_restore(f->r, &meta, lead, term - 1), -ESTALE);
	meta.term = term;
	ck_assert_int_eq(raft_restore(f->r, &meta, f->id, term), -EINVAL);
	ck_assert_int_eq(raft_restore(f->r, NULL, lead, term), -EINVAL);
	ck_assert_int_eq(raft_restore(l->r, &meta, f->id, term), -ESTALE);
	raft_ready(f->r, &f->rd);
	f->rd_out = true;
	ck_assert_int_eq(raft_restore(f->r, &meta, lead, term), -EBUSY);
	node_ready_end(f);
	ck_assert_int_eq(raft_restore(f->r, &meta, lead, term), 0);
	ck_assert_uint_eq(raft_commit_index(f->r), meta.index);
	ck_assert_uint_eq(raft_applied_index(f->r), meta.index);
	ck_assert_uint_eq(raft_last_index(f->r), meta.index);
	ck_assert_int_eq(raft_check(f->r), 0);
	net_free(&n);
}
END_TEST

/* etcd's raft.restore: a snapshot whose last entry the follower holds
 * keeps the entries after it (they may be acknowledged already); one it
 * does not hold replaces the whole log. */
START_TEST(test_restore_keeps_matching_suffix)
{
	struct tnet n;
	struct tnode *l, *f;
	struct raft_snap_meta meta = {0};
	uint64_t lead, x, y, term;

	l = net_start(&n, 3, false, false);
	lead = l->id;
	f = other(&n, lead, 1);
	x = propose_str(l, "x");
	node_ready(&n, l);
	y = propose_str(l, "y");
	node_ready(&n, l);
	net_deliver(&n);
	node_ready(&n, f);
	ck_assert_uint_eq(raft_last_index(f->r), y);
	ck_assert_uint_lt(raft_commit_index(f->r), x);
	term = raft_term(l->r);
	meta.voters = n.voters;
	meta.n_voters = 3;
	meta.index = x;
	meta.term = term;
	ck_assert_int_eq(raft_restore(f->r, &meta, lead, term), 0);
	f->applied = x; /* its state machine is the image */
	ck_assert_uint_eq(raft_last_index(f->r), y);
	ck_assert_uint_eq(raft_first_index(f->r), x + 1);
	ck_assert_uint_eq(raft_commit_index(f->r), x);
	ck_assert_uint_eq(raft_applied_index(f->r), x);
	ck_assert_int_eq(raft_check(f->r), 0);
	net_settle(&n);
	ck_assert_uint_eq(f->applied, y);
	/* Not holding meta's entry: the whole log goes. */
	meta.index = y + 5;
	ck_assert_int_eq(raft_restore(f->r, &meta, lead, term), 0);
	ck_assert_uint_eq(raft_last_index(f->r), y + 5);
	ck_assert_uint_eq(raft_first_index(f->r), y + 6);
	net_free(&n);
}
END_TEST

/* §4.2.3 / etcd tickElection: a member that may not campaign (a learner)
 * still lets its leader lease expire, so it grants others' votes. */
START_TEST(test_learner_lease_expires)
{
	struct tnet n;
	struct tnode *x;
	struct raft_msg m = {0};
	uint64_t lead, term;
	int k;

	net_init_conf(&n, 3, 2, 1, false, true);
	lead = net_elect(&n, 100);
	x = net_node(&n, 3);
	net_isolate(&n, 3, true);
	for (k = 0; k < 20; k++)
		raft_tick(x->r);
	term = raft_term(x->r);
	m.type = RAFT_MSG_VOTE;
	m.from = 3 - lead;
	m.to = 3;
	m.term = term + 1;
	m.index = raft_last_index(x->r);
	raft_entry_term(x->r, m.index, &m.log_term);
	ck_assert_int_eq(raft_step(x->r, &m), 0);
	ck_assert_uint_eq(raft_term(x->r), term + 1);
	net_free(&n);
}
END_TEST

/* §5.1: a stale leader's APP/heartbeat is answered with the higher term
 * (also without pre-vote and check-quorum), so a member that the leader
 * cannot otherwise reach brings about an election it can join. */
START_TEST(test_stale_leader_told_term)
{
	struct tnet n;
	struct tnode *l, *f;
	uint64_t lead, term;
	int k;

	l = net_start(&n, 3, false, false);
	lead = l->id;
	f = other(&n, lead, 1);
	net_isolate(&n, f->id, true);
	for (k = 0; k < 40; k++)
		raft_tick(f->r);
	net_settle(&n);
	term = raft_term(f->r);
	ck_assert_uint_gt(term, raft_term(l->r));
	/* Only the leader's messages reach f, and f's answers. */
	n.cut[lead][f->id] = false;
	n.cut[f->id][lead] = false;
	net_tick(&n);
	ck_assert_uint_ge(raft_term(l->r), term);
	ck_assert_int_ne(raft_role(l->r), RAFT_LEADER);
	net_isolate(&n, f->id, false);
	T_ASSERT(net_elect(&n, 100), "no leader");
	net_free(&n);
}
END_TEST

static size_t count_apps(const struct raft_ready *rd, uint64_t to, size_t *ents)
{
	size_t i, k = 0;

	for (i = 0; i < rd->n_msgs; i++) {
		if (rd->msgs[i].type != RAFT_MSG_APP || rd->msgs[i].to != to ||
		    !rd->msgs[i].n_entries)
			continue;
		k++;
		if (ents)
			*ents += rd->msgs[i].n_entries;
	}
	return k;
}

/* etcd's MaxInflightBytes: unacknowledged payload to a follower is
 * bounded; max_msg_bytes bounds one APP (one entry always goes). */
START_TEST(test_flow_control_bytes)
{
	struct tnet n;
	struct tnode *l, *f, *g;
	uint64_t lead;
	size_t i, to_f = 0, to_g = 0, ents = 0;
	char big[61];
	int k;

	net_init(&n, 3, false, false);
	for (i = 0; i < 3; i++) {
		raft_destroy(n.nodes[i].r);
		n.nodes[i].cfg.max_inflight_bytes = 100;
		n.nodes[i].cfg.max_msg_bytes = 100;
		ck_assert_int_eq(node_start(&n, &n.nodes[i]), 0);
	}
	memset(big, 'b', 60);
	big[60] = 0;
	lead = net_elect(&n, 100);
	l = net_node(&n, lead);
	f = other(&n, lead, 1);
	g = other(&n, lead, 2);
	propose_str(l, "x");
	net_settle(&n); /* both replicating now */
	n.cut[f->id][lead] = true;
	for (k = 0; k < 5; k++) {
		propose_str(l, big);
		node_ready_begin(&n, l);
		to_f += count_apps(&l->rd, f->id, NULL);
		to_g += count_apps(&l->rd, g->id, NULL);
		node_ready_end(l);
		for (i = 0; i < 4; i++) {
			net_deliver(&n);
			node_ready(&n, f);
			node_ready(&n, g);
		}
	}
	ck_assert_uint_eq(to_f, 2); /* 60, 120 >= 100: paused */
	ck_assert_uint_eq(to_g, 5);
	/* Three entries ready at once: 60 + 60 > 100, one per APP. */
	n.cut[f->id][lead] = false;
	for (k = 0; k < 3; k++)
		propose_str(l, big);
	node_ready_begin(&n, l);
	ck_assert_uint_eq(count_apps(&l->rd, g->id, &ents), 1);
	ck_assert_uint_eq(ents, 1);
	node_ready_end(l);
	net_settle(&n);
	net_tick(&n);
	ck_assert_uint_eq(f->applied, raft_last_index(l->r));
	ck_assert_uint_eq(g->applied, raft_last_index(l->r));
	net_free(&n);
}
END_TEST

/* Ask a read on t, remembering what it must cover. */
static void sim_read(struct tnet *n, struct tnode *t)
{
	uint64_t need = 0, ctx = ++n->read_ctx;
	size_t i;
	int err;

	for (i = 0; i < n->n; i++)
		if (n->nodes[i].r && raft_commit_index(n->nodes[i].r) > need)
			need = raft_commit_index(n->nodes[i].r);
	if (ctx < TN_MAX_READS)
		n->read_need[ctx] = need;
	err = raft_read_index(t->r, ctx);
	T_ASSERT(err == 0 || err == CAIRN_ENO_LEADER, "read: %d", err);
}

/* The cluster operations of a simulation step (c in [40, 60)). */
static void sim_cluster_op(struct tnet *n, struct tnode *t, uint64_t c,
			   uint64_t *rng)
{
	uint64_t term;
	int err;

	if (c < 46) {
		err = raft_propose(t->r, "fw", 2, NULL);
		T_ASSERT(err == 0 || err == CAIRN_ENO_LEADER ||
				 err == CAIRN_ELEADER_TRANSFER,
			 "propose: %d", err);
	} else if (c < 52) {
		sim_read(n, t);
	} else if (c < 54 && raft_role(t->r) == RAFT_LEADER) {
		err = raft_transfer_leader(t->r, xorshift(rng) % n->n + 1);
		T_ASSERT(err == 0 || err == CAIRN_EBAD_LEADER_TRANSFEREE,
			 "transfer: %d", err);
	} else if (c < 56 && t->applied > 3 && !t->rd_out &&
		   raft_entry_term(t->r, t->applied - 3, &term) == 0) {
		raft_compact(t->r, t->applied - 3, term);
	}
}

/* Seeded simulation: message loss, duplication and reordering,
 * partitions, fsyncs completing late, crashes (losing what was not yet
 * durable) and restarts from stable storage, proposals (also forwarded),
 * ReadIndex, leadership transfers, compaction and snapshots; the safety
 * checks run after every delivery round. In the end the network heals and
 * every member applies everything any member applied. */
static void simulate_once(size_t members, unsigned variant)
{
	struct tnet n;
	uint64_t rng, lead;
	int step, err;
	size_t i;
	char b[32];

	net_init(&n, members, variant & 1, variant & 2);
	n.async = variant & 4;
	n.reorder = variant & 8;
	n.dup_pct = (variant & 8) ? 5 : 0;
	rng = g_seed * 31 + 7;
	for (step = 0; step < 400; step++) {
		uint64_t c = xorshift(&rng) % 100;
		struct tnode *t = &n.nodes[xorshift(&rng) % members];
		bool chaos = step < 350;

		n.drop_pct = chaos ? 10 : 0;
		if (c < 3 && chaos) {
			net_isolate(&n, t->id,
				    !n.cut[t->id][t->id % members + 1]);
		} else if (c < 5 && chaos && t->up) {
			node_crash(t);
		} else if (c < 10 && !t->up) {
			ck_assert_int_eq(node_start(&n, t), 0);
			t->up = true;
		} else if (c < 40 && t->up && raft_role(t->r) == RAFT_LEADER) {
			snprintf(b, sizeof(b), "s%d", step);
			err = raft_propose(t->r, b, strlen(b), NULL);
			T_ASSERT(err == 0 || err == CAIRN_ELEADER_TRANSFER,
				 "propose: %d", err);
		} else if (c < 60 && t->up) {
			sim_cluster_op(&n, t, c, &rng);
		}
		if (!chaos) {
			for (i = 1; i <= members; i++)
				net_isolate(&n, (uint64_t)i, false);
			if (!t->up) {
				ck_assert_int_eq(node_start(&n, t), 0);
				t->up = true;
			}
		}
		net_tick(&n);
	}
	for (i = 0; i < members; i++) {
		if (!n.nodes[i].up) {
			ck_assert_int_eq(node_start(&n, &n.nodes[i]), 0);
			n.nodes[i].up = true;
		}
	}
	lead = net_elect(&n, 200);
	T_ASSERT(lead, "no leader after healing");
	for (i = 0; i < 20 && raft_lead_transferee(net_node(&n, lead)->r); i++)
		net_tick(&n); /* a transfer ends within an election timeout */
	lead = net_elect(&n, 200);
	T_ASSERT(lead, "no leader after the transfer");
	propose_str(net_node(&n, lead), "final");
	T_ASSERT(raft_last_index(net_node(&n, lead)->r) > 2, "no progress");
	for (i = 0; i < 5; i++)
		net_tick(&n);
	for (i = 0; i < members; i++)
		T_ASSERT(n.nodes[i].applied == n.max_applied,
			 "member %zu applied %llu of %llu", i + 1,
			 (unsigned long long)n.nodes[i].applied,
			 (unsigned long long)n.max_applied);
	net_free(&n);
}

static void simulate_many(size_t members, int runs, unsigned long long off)
{
	unsigned long long base = g_seed;
	int s;

	log_set_level(LOG_ERROR); /* hundreds of elections */
	for (s = 0; s < runs; s++) {
		g_seed = base + off + (unsigned long long)s;
		simulate_once(members, (unsigned)s % 16);
	}
	log_set_level(LOG_INFO);
	g_seed = base;
}

START_TEST(test_simulation_three)
{
	simulate_many(3, 48, 100);
}
END_TEST

START_TEST(test_simulation_five)
{
	simulate_many(5, 32, 200);
}
END_TEST

Suite *raft_suite(void)
{
	Suite *s = suite_create("raft");
	TCase *tc = tcase_create("single");

	tcase_add_test(tc, test_create_errors);
	tcase_add_test(tc, test_restart_torn_hard_state);
	tcase_add_test(tc, test_single_restart_from_snapshot);
	tcase_add_test(tc, test_single_elects_on_timeout);
	tcase_add_test(tc, test_single_campaign_pre_vote);
	tcase_add_test(tc, test_single_commit_after_persisted);
	tcase_add_test(tc, test_single_async_loop);
	tcase_add_test(tc, test_single_restart);
	tcase_add_test(tc, test_compact);
	suite_add_tcase(s, tc);

	tc = tcase_create("three");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_vote_waits_for_hard_state);
	tcase_add_test(tc, test_vote_repeated_request);
	tcase_add_test(tc, test_three_election);
	tcase_add_test(tc, test_three_replication);
	tcase_add_test(tc, test_three_catch_up);
	tcase_add_test(tc, test_partitioned_leader);
	tcase_add_test(tc, test_partitioned_leader_pre_vote);
	tcase_add_test(tc, test_figure8_no_commit_by_counting);
	tcase_add_test(tc, test_figure8_commit_through_current_term);
	tcase_add_test(tc, test_truncate_during_ready);
	tcase_add_test(tc, test_compact_during_ready);
	tcase_add_test(tc, test_follower_propose_forwards);
	tcase_add_test(tc, test_read_index_leader_needs_quorum);
	tcase_add_test(tc, test_read_index_waits_for_term_commit);
	tcase_add_test(tc, test_read_index_follower);
	tcase_add_test(tc, test_read_index_lone_voter);
	tcase_add_test(tc, test_read_index_dropped_on_step_down);
	tcase_add_test(tc, test_learner);
	tcase_add_test(tc, test_conf_change_one_at_a_time);
	tcase_add_test(tc, test_add_member);
	tcase_add_test(tc, test_conf_change_pending_after_election);
	tcase_add_test(tc, test_remove_leader);
	tcase_add_test(tc, test_transfer_leader);
	tcase_add_test(tc, test_transfer_catches_up_first);
	tcase_add_test(tc, test_transfer_timeout);
	tcase_add_test(tc, test_vote_ignored_in_lease);
	tcase_add_test(tc, test_snapshot_catch_up);
	tcase_add_test(tc, test_restore_errors);
	tcase_add_test(tc, test_restore_keeps_matching_suffix);
	tcase_add_test(tc, test_learner_lease_expires);
	tcase_add_test(tc, test_stale_leader_told_term);
	tcase_add_test(tc, test_flow_control_bytes);
	tcase_add_test(tc, test_simulation_three);
	tcase_add_test(tc, test_simulation_five);
	suite_add_tcase(s, tc);
	return s;
}
