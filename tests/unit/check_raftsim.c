/* check_raftsim: a seeded, deterministic simulation of a core/raft cluster
 * (issue 5). Everything, down to raft's election timeouts, comes from one
 * seed, so any run replays exactly (test_raftsim_replays checks that).
 *
 * RUNNING
 *   make check            runs RAFTSIM_DEFAULT_SEEDS seeds (1, 2, ...) in
 *                         well under 30 s;
 *   RAFTSIM_SEEDS=20000 CK_RUN_SUITE=raftsim tests/unit/check_cairn
 *                         the opt-in long run (RAFTSIM_FIRST=k starts at
 *                         seed k);
 *   RAFTSIM_SEED=1234 CK_RUN_SUITE=raftsim tests/unit/check_cairn
 *                         replays one seed (RAFTSIM_TRACE=1 prints every
 *                         event of it).
 * A failure prints the seed, the step, what broke and that replay command;
so does a crash or a hang inside raft (signal handler, alarm).
 *
 * THE MODEL (one seed = one cluster of 3 or 5 voters, odd seeds 5; the
 * seed also picks pre-vote, check-quorum, fault rates, torn writes, and
 * raft's message and flow-control limits, from its defaults to a few
 * entries)
 *  - Members (ids 1..SIM_IDS): a raft plus modelled storage. The WAL has a
 *    durable part (hard state, entries after a compaction point); a ready's
 *    entries and hard state are written and fsynced after a random delay,
 *    then raft_persisted() + raft_advance(). A crash loses the write in
 *    flight; in "torn" seeds it keeps a prefix of its records (entries
 *    first, then the hard state, as raftlog/wal.c writes them), as a
 *    record-level WAL does. The state machine folds applied entries into a
 *    hash chain (and holds the membership, as etcd's backend does); it is
 *    made durable at random points, and a restart resumes from that
 *    (raft_create(..., applied = durable state machine index)).
 *  - Network: every message is deep-copied into an event with a random
 *    delay (some long: reordering); loss and duplication rates per seed;
 *    partitions (two groups, the leader alone, or one-way cuts) change
 *    over time. Half the crashes hit the leader, some a member in
 *    mid-fsync. A member may also pause (a stalled process) for up to 20
 *    ticks: everything addressed to it waits.
 *  - Clock: each member ticks with its own period (100 +- 5 time units).
 *  - Clients: proposals to random members (followers forward), ReadIndex,
 *    leadership transfers, membership changes one at a time (add learner,
 *    promote, remove, add voter; a new member boots when its addition is
 *    committed, a removed one stops a little after), log compaction after
 *    apply, snapshot transfer (a SNAP message becomes, after a delay, the
 *    sender's state machine image installed with raft_restore() on the
 *    target, then raft_report_snapshot() on the sender).
 *  - Faults stop after a random number of ticks: the network heals, loss
 *    and duplication stop, every member (not removed) is up, clients
 *    stop writing (the backlog is bounded: a member down for long may
 *    have hundreds of entries to catch up on through a small window).
 *
 * CHECKED AFTER EVERY STEP (one event: a tick, a delivery, an fsync ...)
 *  1. Election Safety (§5.2): at most one leader per term, ever.
 *  2. Log Matching (§5.3), over the durable logs: every (index, term) ever
 *     made durable anywhere has one content and one previous term, which
 *     by induction makes equal (index, term) imply equal prefixes.
 *  3. Leader Completeness (§5.4): every entry known committed in term <= T
 *     is in the log of the leader of term T (checked when a leader is
 *     first seen and when a commit is first seen); a member's commit index
 *     never covers an entry other than the committed one.
 *  4. State Machine Safety (§5.4.3): members apply entries in order, and
 *     the same entry (and the same state, by the hash chain) at an index;
 *     an installed snapshot has the state of that index.
 *  5. Read safety (§6.4): a read state's index is >= every commit index
 *     known anywhere when the read was asked (so it sees every write
 *     acknowledged before it), and it comes back to the member that asked.
 *  6. Contract: rd.committed is durable, raft_step() accepts the messages
 *     raft sent, a restart from durable state is accepted, the durable
 *     term never goes back nor a durable vote changes within its term, a
 *     granted vote and an append acknowledgement leave only once durable
 *     (§5.6), a commit index never goes back, only voters campaign,
 *     raft_check() holds and raft's configuration is the state
 *     machine's.
 *  7. Liveness: after the faults stop, within SIM_LIVE_TICKS ticks a leader
 *     is followed by every member of its configuration, a proposal commits
 *     and is applied on all of them, and a ReadIndex on each is answered.
 *
 * The cluster features of raft.h ("clusters (issue 5)") were written in
 * parallel with this file; it still runs without any of them (struct
 * features), but test_raftsim fails unless all of them work.
 */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/raft/raft.h"
#include "core/util/log.h"
#include "tests/unit/suites.h"

#define RAFTSIM_DEFAULT_SEEDS 1500
#define SIM_IDS 9	       /* member ids 1..9; never reused */
#define SIM_TICK 100	       /* time units per tick */
#define SIM_LIVE_TICKS 300     /* liveness bound after the faults stop */
#define SIM_MAX_EVENTS 4000000 /* per seed: a runaway is a failure */

/* ---- randomness ---- */

static uint64_t splitmix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	uint64_t s = h ^ (v * 0xff51afd7ed558ccdULL);

	return splitmix(&s);
}

static uint64_t node_rand(void *arg)
{
	return splitmix(arg);
}

/* ---- the model ---- */

/* A state machine image: what has been applied, folded into a hash chain,
 * and the membership (bit i = member i) as of index. */
struct image {
	uint64_t index, term, hash;
	uint32_t voters, learners, removed;
};

/* A write handed to the WAL and not yet fsynced (copies). */
struct wal_write {
	struct raft_entry *ents;
	size_t n;
	bool has_hs;
	struct raft_hard_state hs;
};

struct node {
	uint64_t id;
	bool started, up, removed;
	uint64_t inc;	       /* incarnation: bumps at each boot */
	uint64_t paused_until; /* a stalled process (GC, swap, SIGSTOP) */
	struct raft *r;
	uint64_t rng;
	int period;
	/* durable */
	struct raft_hard_state hs;
	struct raft_entry *log; /* log[i].index == snap_index + 1 + i */
	size_t n_log, cap_log;
	uint64_t snap_index, snap_term;
	struct image sm_disk;
	/* volatile */
	struct image sm;
	struct raft_ready rd;
	bool rd_out, apply_late;
	struct wal_write w;
	uint64_t chk_commit; /* commit checked against history up to here */
	bool snap_pending;   /* an image arrived, waits for the ready */
	struct image snap_img;
	uint64_t snap_from, snap_msg_term;
};

enum ev_kind {
	EV_TICK,
	EV_MSG,
	EV_FSYNC,
	EV_SNAP,
	EV_SNAP_DONE,
	EV_STOP,
	EV_CLIENT,
	EV_FAULT,
	EV_HEAL
};

struct ev {
	uint64_t at, seq;
	enum ev_kind kind;
	uint64_t node, inc, peer, term, index;
	struct raft_msg m; /* EV_MSG: a deep copy */
	struct image img;  /* EV_SNAP */
};

struct rreq {
	uint64_t node, min;
};

struct reg_slot {
	uint64_t index, term, ehash, prev_term;
};

struct hist {
	uint64_t term, ehash, cum; /* applied */
};

struct crec {
	uint64_t term, obs; /* committed, and the term it was seen in */
};

struct features {
	bool read_index, transfer, conf, snap;
};

struct stats {
	uint64_t steps, msgs, crashes, torn, restarts, elections, commits;
	uint64_t reads, reads_ok, transfers, confs, snaps, snaps_installed;
	uint64_t compactions, pauses;
};

struct sim {
	uint64_t seed, rng, now, seq;
	bool trace;
	struct features f;
	/* per-seed parameters */
	size_t n_init;
	uint32_t init_voters;
	bool pre_vote, check_quorum, torn;
	unsigned loss, dup, slow, compact_pct, conf_pct;
	size_t max_msg_entries, max_inflight, max_inflight_bytes;
	size_t max_msg_bytes;
	uint64_t chaos_end;
	bool chaos, done;
	uint64_t final_index, final_hash, final_term;
	uint64_t live_leader, live_ctx; /* reads asked after the faults */
	uint32_t live_answered;
	struct node nodes[SIM_IDS + 1];
	uint32_t cut[SIM_IDS + 1]; /* bit b of cut[a]: a cannot reach b */
	struct ev **heap;
	size_t nh, caph;
	/* histories */
	uint64_t *leader_of;
	size_t cap_terms;
	struct hist *applied;
	size_t n_applied, cap_applied;
	struct crec *committed;
	size_t n_committed, cap_committed;
	struct reg_slot *reg;
	size_t n_reg, cap_reg;
	struct rreq *reads;
	size_t n_reads, cap_reads;
	uint64_t req_id, next_id;
	struct stats st;
};

static void sim_fail(struct sim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn));

static void sim_fail(struct sim *s, const char *fmt, ...)
{
	char what[600];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	fprintf(stderr,
		"raftsim: seed %llu step %llu (time %llu): %s\n"
		"replay: RAFTSIM_SEED=%llu CK_RUN_SUITE=raftsim "
		"tests/unit/check_cairn\n",
		(unsigned long long)s->seed, (unsigned long long)s->st.steps,
		(unsigned long long)s->now, what, (unsigned long long)s->seed);
	ck_abort_msg("seed %llu step %llu: %s; replay: RAFTSIM_SEED=%llu "
		     "CK_RUN_SUITE=raftsim tests/unit/check_cairn",
		     (unsigned long long)s->seed,
		     (unsigned long long)s->st.steps, what,
		     (unsigned long long)s->seed);
	abort(); /* not reached */
}

#define SIM_CHECK(s, cond, ...)                                                \
	do {                                                                   \
		if (!(cond))                                                   \
			sim_fail((s), __VA_ARGS__);                            \
	} while (0)

#define ULL(x) ((unsigned long long)(x))

static uint64_t rnd(struct sim *s, uint64_t n)
{
	return n ? splitmix(&s->rng) % n : 0;
}

static bool chance(struct sim *s, unsigned pct)
{
	return rnd(s, 100) < pct;
}

static size_t mask_ids(uint32_t mask, uint64_t *ids);

static void *grow(struct sim *s, void *p, size_t *cap, size_t need, size_t size)
{
	size_t c = *cap ? *cap : 16;

	if (need <= *cap)
		return p;
	while (c < need)
		c *= 2;
	p = realloc(p, c * size);
	SIM_CHECK(s, p != NULL, "out of memory");
	memset((char *)p + *cap * size, 0, (c - *cap) * size);
	*cap = c;
	return p;
}

/* A lone member (leader after raft_campaign) or a follower of three, for
 * sim_detect. NULL on failure. */
static struct raft *probe_raft(size_t n_voters)
{
	static const uint64_t voters[3] = {1, 2, 3};
	struct raft_config cfg = {0};
	struct raft *r = NULL;

	cfg.id = 1;
	cfg.voters = voters;
	cfg.n_voters = n_voters;
	cfg.election_tick = 10;
	cfg.heartbeat_tick = 1;
	if (raft_create(&cfg, NULL, NULL, 0, 0, &r) != 0)
		return NULL;
	if (n_voters == 1 && raft_campaign(r) != 0) {
		raft_destroy(r);
		return NULL;
	}
	return r;
}

/* Do raft's cluster features work (a smoke test before the simulation,
 * which needs all of them)? By behaviour: stand-ins for them were linked
 * while they were being written. */
static void sim_detect(struct features *f)
{
	struct raft *r = probe_raft(1), *fo = probe_raft(3);
	struct raft_snap_meta meta = {.index = 5, .term = 1};
	uint64_t v[4], l[4];
	size_t nv = 0, nl = 0;

	memset(f, 0, sizeof(*f));
	if (!r || !fo)
		goto out;
	f->read_index = raft_read_index(r, 1) == 0;
	f->transfer =
		raft_transfer_leader(r, 2) == CAIRN_EBAD_LEADER_TRANSFEREE;
	if (raft_apply_conf_change(r, RAFT_CC_ADD_LEARNER, 2) == 0) {
		raft_conf(r, v, &nv, l, &nl, 4);
		f->conf = nv == 1 && v[0] == 1 && nl == 1 && l[0] == 2;
	}
	meta.voters = v;
	meta.n_voters = mask_ids(0xe, v);
	f->snap = raft_restore(fo, &meta, 2, 1) == 0 &&
		  raft_commit_index(fo) == 5;
out:
	raft_destroy(r);
	raft_destroy(fo);
}

/* ---- events: a binary heap on (at, seq) ---- */

static bool ev_before(const struct ev *a, const struct ev *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void ev_push(struct sim *s, struct ev *e)
{
	size_t i;

	e->seq = s->seq++;
	s->heap = grow(s, s->heap, &s->caph, s->nh + 1, sizeof(*s->heap));
	i = s->nh++;
	while (i && ev_before(e, s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = e;
}

static struct ev *ev_new(struct sim *s, enum ev_kind kind, uint64_t delay)
{
	struct ev *e = calloc(1, sizeof(*e));

	SIM_CHECK(s, e != NULL, "out of memory");
	e->kind = kind;
	e->at = s->now + delay;
	ev_push(s, e);
	return e;
}

static struct ev *ev_pop(struct sim *s)
{
	struct ev *top, *last;
	size_t i = 0, c;

	if (!s->nh)
		return NULL;
	top = s->heap[0];
	last = s->heap[--s->nh];
	for (;;) {
		c = 2 * i + 1;
		if (c >= s->nh)
			break;
		if (c + 1 < s->nh && ev_before(s->heap[c + 1], s->heap[c]))
			c++;
		if (!ev_before(s->heap[c], last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (s->nh)
		s->heap[i] = last;
	return top;
}

static void entries_free(struct raft_entry *e, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(e[i].data);
	free(e);
}

static void ev_free(struct ev *e)
{
	if (e->kind == EV_MSG)
		entries_free(e->m.entries, e->m.n_entries);
	free(e);
}

/* Deep copies of entries (data too). */
static struct raft_entry *entries_dup(struct sim *s, const struct raft_entry *e,
				      size_t n)
{
	struct raft_entry *d;
	size_t i;

	if (!n)
		return NULL;
	d = calloc(n, sizeof(*d));
	SIM_CHECK(s, d != NULL, "out of memory");
	for (i = 0; i < n; i++) {
		d[i] = e[i];
		d[i].data = NULL;
		if (e[i].len) {
			d[i].data = malloc(e[i].len);
			SIM_CHECK(s, d[i].data != NULL, "out of memory");
			memcpy(d[i].data, e[i].data, e[i].len);
		}
	}
	return d;
}

static uint64_t entry_hash(const struct raft_entry *e)
{
	uint64_t h = mix(e->type + 1, e->len);
	size_t i;

	for (i = 0; i < e->len; i++)
		h = mix(h, e->data[i]);
	return h;
}

static struct node *node_of(struct sim *s, uint64_t id)
{
	SIM_CHECK(s, id >= 1 && id <= SIM_IDS, "bad member id %llu", ULL(id));
	return &s->nodes[id];
}

static size_t mask_ids(uint32_t mask, uint64_t *ids)
{
	size_t n = 0;
	uint64_t id;

	for (id = 1; id <= SIM_IDS; id++)
		if (mask & (1u << id))
			ids[n++] = id;
	return n;
}

static int popcount(uint32_t m)
{
	return __builtin_popcount(m);
}

/* ---- check 2: Log Matching over durable logs (registry) ---- */

static struct reg_slot *reg_find(struct sim *s, uint64_t index, uint64_t term)
{
	size_t i = mix(index, term) & (s->cap_reg - 1);

	while (s->reg[i].index &&
	       (s->reg[i].index != index || s->reg[i].term != term))
		i = (i + 1) & (s->cap_reg - 1);
	return &s->reg[i];
}

static void reg_rehash(struct sim *s)
{
	struct reg_slot *old = s->reg;
	size_t i, oldcap = s->cap_reg;

	s->cap_reg = oldcap ? oldcap * 2 : 1024;
	s->reg = calloc(s->cap_reg, sizeof(*s->reg));
	SIM_CHECK(s, s->reg != NULL, "out of memory");
	for (i = 0; i < oldcap; i++)
		if (old[i].index)
			*reg_find(s, old[i].index, old[i].term) = old[i];
	free(old);
}

static void reg_entry(struct sim *s, struct node *n, const struct raft_entry *e,
		      uint64_t prev_term)
{
	uint64_t h = entry_hash(e);
	struct reg_slot *r;

	SIM_CHECK(s, e->term >= prev_term && e->term > 0,
		  "member %llu: durable entry %llu has term %llu after %llu",
		  ULL(n->id), ULL(e->index), ULL(e->term), ULL(prev_term));
	if (2 * (s->n_reg + 1) > s->cap_reg)
		reg_rehash(s);
	r = reg_find(s, e->index, e->term);
	if (!r->index) {
		*r = (struct reg_slot){e->index, e->term, h, prev_term};
		s->n_reg++;
		return;
	}
	SIM_CHECK(s, r->ehash == h && r->prev_term == prev_term,
		  "log matching: member %llu made durable entry %llu term %llu "
		  "(previous term %llu) unlike another log's (previous term "
		  "%llu%s)",
		  ULL(n->id), ULL(e->index), ULL(e->term), ULL(prev_term),
		  ULL(r->prev_term), r->ehash == h ? "" : ", other content");
}

/* ---- durable storage ---- */

static uint64_t log_last(const struct node *n)
{
	return n->snap_index + n->n_log;
}

static const struct raft_entry *log_at(const struct node *n, uint64_t index)
{
	if (index <= n->snap_index || index > log_last(n))
		return NULL;
	return &n->log[index - n->snap_index - 1];
}

static uint64_t log_term_at(const struct node *n, uint64_t index)
{
	const struct raft_entry *e = log_at(n, index);

	if (index == n->snap_index)
		return n->snap_term;
	return e ? e->term : 0;
}

static void log_truncate(struct node *n, uint64_t from)
{
	size_t keep = from - n->snap_index - 1, i;

	for (i = keep; i < n->n_log; i++)
		free(n->log[i].data);
	n->n_log = keep;
}

/* §5.2/§5.6: the durable term never goes back, and a durable vote is
 * never changed within its term (one vote per term, even across crashes;
 * a torn write can only lose a vote, which never left). */
static void hs_keep(struct sim *s, struct node *n,
		    const struct raft_hard_state *hs)
{
	const struct raft_hard_state *o = &n->hs;

	SIM_CHECK(s,
		  hs->term >= o->term && (hs->term > o->term || !o->vote ||
					  hs->vote == o->vote),
		  "member %llu: durable hard state term %llu vote %llu "
		  "replaced by term %llu vote %llu",
		  ULL(n->id), ULL(o->term), ULL(o->vote), ULL(hs->term),
		  ULL(hs->vote));
	n->hs = *hs;
}

/* The WAL's snapshot marker: entries up to index are dropped; the ones
 * after it are kept if they follow (index, term), else dropped too (raft
 * drops them: they belong to another history). */
static void log_restore(struct node *n, uint64_t index, uint64_t term)
{
	const struct raft_entry *e = log_at(n, index);
	size_t drop, i;

	if (!e || e->term != term) {
		log_truncate(n, n->snap_index + 1);
		n->snap_index = index;
		n->snap_term = term;
		return;
	}
	drop = index - n->snap_index;
	for (i = 0; i < drop; i++)
		free(n->log[i].data);
	memmove(n->log, n->log + drop, (n->n_log - drop) * sizeof(*n->log));
	n->n_log -= drop;
	n->snap_index = index;
	n->snap_term = term;
}

/* The first k entries of the pending write (and its hard state) reach
 * the disk. */
static void wal_keep(struct sim *s, struct node *n, size_t k, bool hs)
{
	struct wal_write *w = &n->w;
	size_t i;

	if (k) {
		uint64_t first = w->ents[0].index;

		SIM_CHECK(s, first > n->snap_index && first <= log_last(n) + 1,
			  "member %llu: ready entries from %llu, durable log "
			  "%llu..%llu",
			  ULL(n->id), ULL(first), ULL(n->snap_index + 1),
			  ULL(log_last(n)));
		log_truncate(n, first);
		n->log = grow(s, n->log, &n->cap_log, n->n_log + k,
			      sizeof(*n->log));
	}
	for (i = 0; i < k; i++) {
		reg_entry(s, n, &w->ents[i],
			  log_term_at(n, w->ents[i].index - 1));
		n->log[n->n_log++] = w->ents[i];
		w->ents[i].data = NULL; /* moved */
	}
	if (hs)
		hs_keep(s, n, &w->hs);
	entries_free(w->ents, w->n);
	memset(w, 0, sizeof(*w));
}

/* ---- histories: checks 1, 3, 4 ---- */

static void hist_leader(struct sim *s, struct node *n);

static void check_leader_has(struct sim *s, struct node *l, uint64_t i)
{
	uint64_t t = 0;
	int err = raft_entry_term(l->r, i, &t);

	if (err == -ERANGE || !s->committed[i].term)
		return; /* compacted: in its state machine */
	SIM_CHECK(s, err == 0 && t == s->committed[i].term,
		  "leader completeness: leader %llu of term %llu has %s at "
		  "committed index %llu (term %llu, committed by term %llu)",
		  ULL(l->id), ULL(raft_term(l->r)),
		  err ? "no entry" : "another entry", ULL(i),
		  ULL(s->committed[i].term), ULL(s->committed[i].obs));
}

static void hist_commit(struct sim *s, struct node *n)
{
	uint64_t c = raft_commit_index(n->r), i, t, id;

	while (s->n_committed < c) {
		i = ++s->n_committed;
		s->committed = grow(s, s->committed, &s->cap_committed, i + 1,
				    sizeof(*s->committed));
		t = 0;
		if (raft_entry_term(n->r, i, &t) != 0)
			t = i < s->n_applied + 1 ? s->applied[i].term : 0;
		s->committed[i] = (struct crec){t, raft_term(n->r)};
		s->st.commits++;
		for (id = 1; id <= SIM_IDS; id++) {
			struct node *l = &s->nodes[id];

			if (l->up && raft_role(l->r) == RAFT_LEADER &&
			    raft_term(l->r) >= s->committed[i].obs)
				check_leader_has(s, l, i);
		}
	}
	/* A member's commit index covers only committed entries. */
	for (i = n->chk_commit + 1; i <= c; i++) {
		if (raft_entry_term(n->r, i, &t) == 0 && s->committed[i].term)
			SIM_CHECK(s, t == s->committed[i].term,
				  "member %llu commits index %llu term %llu, "
				  "but term %llu was committed there",
				  ULL(n->id), ULL(i), ULL(t),
				  ULL(s->committed[i].term));
	}
	SIM_CHECK(s, c >= n->chk_commit,
		  "member %llu: commit index went back from %llu to %llu",
		  ULL(n->id), ULL(n->chk_commit), ULL(c));
	n->chk_commit = c;
}

static void hist_leader(struct sim *s, struct node *n)
{
	uint64_t t = raft_term(n->r), i;

	s->leader_of = grow(s, s->leader_of, &s->cap_terms, t + 1,
			    sizeof(*s->leader_of));
	if (s->leader_of[t] == n->id)
		return;
	SIM_CHECK(s, s->leader_of[t] == 0,
		  "election safety: members %llu and %llu both lead term %llu",
		  ULL(s->leader_of[t]), ULL(n->id), ULL(t));
	s->leader_of[t] = n->id;
	s->st.elections++;
	if (s->trace)
		fprintf(stderr, "  %llu leads term %llu\n", ULL(n->id), ULL(t));
	for (i = 1; i <= s->n_committed; i++)
		if (s->committed[i].obs <= t)
			check_leader_has(s, n, i);
}

static void check_conf(struct sim *s, struct node *n)
{
	uint64_t v[SIM_IDS + 1], l[SIM_IDS + 1];
	size_t nv = 0, nl = 0, i;
	uint32_t mv = 0, ml = 0;

	if (!s->f.conf)
		return;
	raft_conf(n->r, v, &nv, l, &nl, SIM_IDS + 1);
	SIM_CHECK(s, nv <= SIM_IDS && nl <= SIM_IDS, "raft_conf counts");
	for (i = 0; i < nv; i++)
		mv |= 1u << v[i];
	for (i = 0; i < nl; i++)
		ml |= 1u << l[i];
	SIM_CHECK(s, mv == n->sm.voters && ml == n->sm.learners,
		  "member %llu: raft's configuration (voters %#x learners %#x) "
		  "is not the applied one (%#x, %#x)",
		  ULL(n->id), mv, ml, n->sm.voters, n->sm.learners);
}

static void check_step(struct sim *s)
{
	uint64_t id;

	for (id = 1; id <= SIM_IDS; id++) {
		struct node *n = &s->nodes[id];

		if (!n->up)
			continue;
		if (raft_role(n->r) == RAFT_LEADER)
			hist_leader(s, n);
		/* Learners and removed members never campaign (§4.2.1). */
		SIM_CHECK(s,
			  raft_role(n->r) == RAFT_FOLLOWER ||
				  (n->sm.voters & (1u << id)),
			  "member %llu is %s but not a voter (voters %#x)",
			  ULL(id),
			  raft_role(n->r) == RAFT_LEADER ? "leader"
							 : "campaigning",
			  n->sm.voters);
		hist_commit(s, n);
		SIM_CHECK(s, raft_check(n->r) == 0, "raft_check of member %llu",
			  ULL(id));
		check_conf(s, n);
	}
}

/* ---- state machine ---- */

static void node_boot(struct sim *s, struct node *n);

static void hook_started(struct sim *s, uint64_t id)
{
	struct node *x = node_of(s, id);

	if (x->started)
		return;
	x->started = true;
	x->sm_disk = (struct image){.voters = s->init_voters};
	node_boot(s, x);
	ev_new(s, EV_TICK, rnd(s, SIM_TICK))->node = id;
}

/* Apply a CONF_CHANGE entry: 'C', type, id. Removed ids never come back
 * (etcd refuses them: the change is applied as a no-op). */
static void sm_conf_change(struct sim *s, struct node *n,
			   const struct raft_entry *e, bool first)
{
	struct image *m = &n->sm;
	uint32_t bit;
	int type, err;
	uint64_t id;
	bool changed = false;

	SIM_CHECK(s, e->len >= 3 && e->data[0] == 'C',
		  "conf change entry %llu malformed", ULL(e->index));
	type = e->data[1];
	id = e->data[2];
	bit = 1u << id;
	if (type != RAFT_CC_REMOVE_NODE && (m->removed & bit))
		return;
	if (type == RAFT_CC_ADD_NODE && !(m->voters & bit)) {
		m->voters |= bit;
		m->learners &= ~bit;
		changed = true;
	} else if (type == RAFT_CC_ADD_LEARNER &&
		   !((m->voters | m->learners) & bit)) {
		m->learners |= bit;
		changed = true;
	} else if (type == RAFT_CC_REMOVE_NODE &&
		   ((m->voters | m->learners) & bit)) {
		m->voters &= ~bit;
		m->learners &= ~bit;
		m->removed |= bit;
		changed = true;
	}
	err = raft_apply_conf_change(n->r, (enum raft_cc_type)type, id);
	SIM_CHECK(s, err == 0,
		  "member %llu: raft_apply_conf_change(%d, %llu): %d",
		  ULL(n->id), type, ULL(id), err);
	if (!first || !changed)
		return;
	s->st.confs++;
	if (s->trace)
		fprintf(stderr, "  conf change %d of %llu committed at %llu\n",
			type, ULL(id), ULL(e->index));
	if (type == RAFT_CC_REMOVE_NODE) {
		struct ev *stop = ev_new(s, EV_STOP, rnd(s, 3 * SIM_TICK));

		node_of(s, id)->removed = true;
		stop->node = id;
	} else {
		hook_started(s, id);
	}
}

static void sm_apply(struct sim *s, struct node *n, const struct raft_entry *e)
{
	uint64_t eh = entry_hash(e), cum = mix(mix(n->sm.hash, e->term), eh);
	bool first = e->index > s->n_applied;
	struct hist *h;

	SIM_CHECK(s, e->index == n->sm.index + 1,
		  "member %llu applies %llu after %llu", ULL(n->id),
		  ULL(e->index), ULL(n->sm.index));
	if (first) {
		SIM_CHECK(s, e->index == s->n_applied + 1,
			  "member %llu applies %llu, none applied %llu",
			  ULL(n->id), ULL(e->index), ULL(s->n_applied + 1));
		s->applied = grow(s, s->applied, &s->cap_applied, e->index + 1,
				  sizeof(*s->applied));
		s->applied[e->index] = (struct hist){e->term, eh, cum};
		s->n_applied = e->index;
	}
	h = &s->applied[e->index];
	SIM_CHECK(s, h->term == e->term && h->ehash == eh && h->cum == cum,
		  "state machine safety: member %llu applies at %llu an entry "
		  "of term %llu (%s), another member applied term %llu there",
		  ULL(n->id), ULL(e->index), ULL(e->term),
		  h->ehash == eh ? "same data, other history" : "other data",
		  ULL(h->term));
	if (e->type == RAFT_ENTRY_CONF_CHANGE)
		sm_conf_change(s, n, e, first);
	n->sm.index = e->index;
	n->sm.term = e->term;
	n->sm.hash = cum;
	if (chance(s, 30))
		n->sm_disk = n->sm; /* the engine commits */
}

static void sm_apply_all(struct sim *s, struct node *n,
			 const struct raft_entry *e, size_t k)
{
	size_t i;

	for (i = 0; i < k && n->up; i++)
		sm_apply(s, n, &e[i]);
}

/* ---- members: boot, crash, readies ---- */

static void node_boot(struct sim *s, struct node *n)
{
	uint64_t v[SIM_IDS], l[SIM_IDS];
	struct raft_config cfg = {0};
	const struct raft_hard_state *hs = NULL;
	int err;

	cfg.id = n->id;
	cfg.voters = v;
	cfg.n_voters = mask_ids(n->sm_disk.voters, v);
	cfg.learners = l;
	cfg.n_learners = mask_ids(n->sm_disk.learners, l);
	cfg.election_tick = 10;
	cfg.heartbeat_tick = 1;
	cfg.pre_vote = s->pre_vote;
	cfg.check_quorum = s->check_quorum;
	cfg.rand = node_rand;
	cfg.rand_arg = &n->rng;
	cfg.max_msg_entries = s->max_msg_entries;
	cfg.max_inflight = s->max_inflight;
	cfg.max_inflight_bytes = s->max_inflight_bytes;
	cfg.max_msg_bytes = s->max_msg_bytes;
	cfg.snap_index = n->snap_index;
	cfg.snap_term = n->snap_term;
	if (n->hs.term || n->n_log)
		hs = &n->hs;
	err = raft_create(&cfg, hs, n->log, n->n_log, n->sm_disk.index, &n->r);
	SIM_CHECK(s, err == 0,
		  "member %llu cannot restart from its durable state: "
		  "raft_create %d (hard state term %llu vote %llu commit %llu, "
		  "log %llu..%llu, last term %llu, compaction point %llu term "
		  "%llu, applied %llu)",
		  ULL(n->id), err, ULL(n->hs.term), ULL(n->hs.vote),
		  ULL(n->hs.commit), ULL(n->snap_index + 1), ULL(log_last(n)),
		  ULL(log_term_at(n, log_last(n))), ULL(n->snap_index),
		  ULL(n->snap_term), ULL(n->sm_disk.index));
	n->sm = n->sm_disk;
	n->up = true;
	n->inc++;
	n->rd_out = false;
	n->chk_commit = n->sm.index;
	if (s->trace)
		fprintf(stderr,
			"  %llu boots (term %llu, log %llu..%llu, "
			"applied %llu)\n",
			ULL(n->id), ULL(n->hs.term), ULL(n->snap_index + 1),
			ULL(log_last(n)), ULL(n->sm.index));
}

/* Everything not fsynced is lost; in torn seeds a prefix of the write in
 * flight may have reached the disk. */
static void node_crash(struct sim *s, struct node *n)
{
	size_t k = 0;
	bool hs = false;

	if (n->rd_out && s->torn && chance(s, 50)) {
		k = rnd(s, n->w.n + 2);
		hs = k == n->w.n + 1 && n->w.has_hs;
		if (k > n->w.n)
			k = n->w.n;
		s->st.torn += k || hs;
	}
	if (n->rd_out)
		wal_keep(s, n, k, hs);
	raft_destroy(n->r);
	n->r = NULL;
	n->up = false;
	n->paused_until = 0;
	n->rd_out = false;
	n->snap_pending = false;
	if (s->trace)
		fprintf(stderr, "  %llu crashes (kept %zu entries%s)\n",
			ULL(n->id), k, hs ? " and the hard state" : "");
}

static uint64_t net_delay(struct sim *s)
{
	if (s->chaos && chance(s, s->slow))
		return 30 + rnd(s, 300);
	return 1 + rnd(s, 30);
}

static void net_send(struct sim *s, const struct raft_msg *m)
{
	int copies = (s->chaos && chance(s, s->dup)) ? 2 : 1;
	struct ev *e;

	s->st.msgs++;
	while (copies-- > 0) {
		if (s->chaos && chance(s, s->loss))
			continue;
		e = ev_new(s, EV_MSG, net_delay(s));
		e->m = *m;
		e->m.entries = entries_dup(s, m->entries, m->n_entries);
		e->m.snap = (struct raft_snap_meta){0};
		e->node = m->to;
	}
}

static void net_deliver(struct sim *s, struct ev *e)
{
	struct node *to = node_of(s, e->m.to);
	int err;

	if (!to->up || (s->cut[e->m.from] & (1u << e->m.to)))
		return;
	err = raft_step(to->r, &e->m);
	SIM_CHECK(s, err == 0,
		  "member %llu: raft_step(type %d from %llu term %llu index "
		  "%llu, %zu entries): %d",
		  ULL(to->id), (int)e->m.type, ULL(e->m.from), ULL(e->m.term),
		  ULL(e->m.index), e->m.n_entries, err);
}

/* A SNAP message: stream the state machine image as it is now. */
static void snap_start(struct sim *s, struct node *n, const struct raft_msg *m)
{
	struct ev *e;

	SIM_CHECK(s, s->f.snap, "member %llu sent SNAP without snapshots",
		  ULL(n->id));
	SIM_CHECK(s, n->sm.index >= m->snap.index && m->snap.index > 0,
		  "member %llu: SNAP for %llu at %llu, applied only %llu",
		  ULL(n->id), ULL(m->to), ULL(m->snap.index), ULL(n->sm.index));
	e = ev_new(s, EV_SNAP, 50 + rnd(s, 350));
	e->node = m->to;
	e->peer = n->id;
	e->inc = n->inc;
	e->term = m->term;
	e->img = n->sm;
	s->st.snaps++;
}

static void check_durable(struct sim *s, struct node *n,
			  const struct raft_ready *rd)
{
	size_t i;

	for (i = 0; i < rd->n_committed; i++) {
		const struct raft_entry *c = &rd->committed[i];
		const struct raft_entry *d = log_at(n, c->index);

		SIM_CHECK(s, d && d->term == c->term,
			  "member %llu is handed entry %llu to apply before it "
			  "is durable",
			  ULL(n->id), ULL(c->index));
	}
}

/* §5.6, "persist before respond": an append acknowledgement covers only
 * durable entries, a granted vote is durable before it leaves. */
static void check_msg_durable(struct sim *s, struct node *n,
			      const struct raft_msg *m)
{
	if (m->type == RAFT_MSG_APP_RESP && !m->reject)
		SIM_CHECK(s, m->index <= log_last(n),
			  "member %llu acknowledges %llu, durable up to %llu",
			  ULL(n->id), ULL(m->index), ULL(log_last(n)));
	/* (a durable later term also rules out a second vote in m->term) */
	if (m->type == RAFT_MSG_VOTE_RESP && !m->reject)
		SIM_CHECK(s,
			  n->hs.term > m->term || (n->hs.term == m->term &&
						   n->hs.vote == m->to),
			  "member %llu grants its term %llu vote to %llu, "
			  "durable: term %llu vote %llu",
			  ULL(n->id), ULL(m->term), ULL(m->to), ULL(n->hs.term),
			  ULL(n->hs.vote));
}

static void read_states(struct sim *s, struct node *n,
			const struct raft_ready *rd)
{
	size_t i;

	for (i = 0; i < rd->n_read_states; i++) {
		const struct raft_read_state *rs = &rd->read_states[i];
		const struct rreq *q;

		SIM_CHECK(s, rs->ctx >= 1 && rs->ctx <= s->n_reads,
			  "member %llu: read state for unknown ctx %llu",
			  ULL(n->id), ULL(rs->ctx));
		q = &s->reads[rs->ctx - 1];
		SIM_CHECK(s, q->node == n->id,
			  "member %llu got the read state of %llu's ctx %llu",
			  ULL(n->id), ULL(q->node), ULL(rs->ctx));
		SIM_CHECK(
			s, rs->index >= q->min,
			"read safety: member %llu read ctx %llu at index %llu, "
			"but %llu was committed when it asked",
			ULL(n->id), ULL(rs->ctx), ULL(rs->index), ULL(q->min));
		s->st.reads_ok++;
		if (s->live_ctx && rs->ctx >= s->live_ctx)
			s->live_answered |= 1u << n->id;
	}
}

static void snap_install(struct sim *s, struct node *n);

/* Log compaction after apply, up to what the durable state machine holds
 * (a restart needs the entries after it). */
static void maybe_compact(struct sim *s, struct node *n)
{
	uint64_t hi = n->sm_disk.index, idx, term;

	/* Without snapshots a member behind the compaction point is lost. */
	if (!s->f.snap || !chance(s, s->compact_pct))
		return;
	if (raft_applied_index(n->r) < hi)
		hi = raft_applied_index(n->r);
	if (hi <= n->snap_index || hi > log_last(n))
		return;
	idx = hi - rnd(s, hi - n->snap_index < 4 ? hi - n->snap_index : 4);
	term = log_at(n, idx)->term;
	log_restore(n, idx, term); /* keeps what follows */
	raft_compact(n->r, idx, term);
	SIM_CHECK(
		s, raft_first_index(n->r) > idx,
		"member %llu: raft_compact(%llu, %llu) ignored (applied %llu)",
		ULL(n->id), ULL(idx), ULL(term), ULL(raft_applied_index(n->r)));
	s->st.compactions++;
	if (s->trace)
		fprintf(stderr, "  %llu compacts to %llu\n", ULL(n->id),
			ULL(idx));
}

/* The fsync of the outstanding ready completed. */
static void node_synced(struct sim *s, struct node *n)
{
	struct raft_ready *rd = &n->rd;

	wal_keep(s, n, n->w.n, n->w.has_hs);
	if (rd->n_entries)
		raft_persisted(n->r, rd->entries[rd->n_entries - 1].index,
			       rd->entries[rd->n_entries - 1].term);
	if (n->apply_late)
		sm_apply_all(s, n, rd->committed, rd->n_committed);
	raft_advance(n->r, rd);
	n->rd_out = false;
	maybe_compact(s, n);
	if (n->snap_pending)
		snap_install(s, n);
}

static void node_ready(struct sim *s, struct node *n)
{
	struct raft_ready *rd = &n->rd;
	struct ev *e;
	size_t i;

	if (!n->up || n->rd_out || n->paused_until > s->now ||
	    !raft_has_ready(n->r))
		return;
	raft_ready(n->r, rd);
	n->rd_out = true;
	n->w.ents = entries_dup(s, rd->entries, rd->n_entries);
	n->w.n = rd->n_entries;
	n->w.has_hs = rd->hard_state_changed;
	n->w.hs = rd->hs;
	/* Messages leave before the fsync (raft.h durability contract). */
	for (i = 0; i < rd->n_msgs; i++) {
		SIM_CHECK(s, rd->msgs[i].from == n->id, "message from %llu",
			  ULL(rd->msgs[i].from));
		check_msg_durable(s, n, &rd->msgs[i]);
		if (rd->msgs[i].type == RAFT_MSG_SNAP)
			snap_start(s, n, &rd->msgs[i]);
		else
			net_send(s, &rd->msgs[i]);
	}
	check_durable(s, n, rd);
	read_states(s, n, rd);
	n->apply_late = chance(s, 50);
	if (!n->apply_late)
		sm_apply_all(s, n, rd->committed, rd->n_committed);
	if (!rd->n_entries && !rd->hard_state_changed) {
		node_synced(s, n); /* nothing to write */
		return;
	}
	e = ev_new(s, EV_FSYNC, 5 + rnd(s, 55));
	e->node = n->id;
	e->inc = n->inc;
}

/* ---- snapshots ---- */

static void snap_arrive(struct sim *s, struct ev *e)
{
	struct node *from = node_of(s, e->peer), *to = node_of(s, e->node);
	struct ev *done;
	bool ok;

	if (!from->up || from->inc != e->inc)
		return; /* the stream died with its sender */
	ok = to->up && !(s->cut[e->peer] & (1u << e->node)) &&
	     !(s->cut[e->node] & (1u << e->peer)) &&
	     !(s->chaos && chance(s, s->loss));
	done = ev_new(s, EV_SNAP_DONE, 1 + rnd(s, 20));
	done->node = e->peer;
	done->inc = e->inc;
	done->peer = e->node;
	done->index = ok ? e->img.index : 0;
	if (!ok)
		return;
	if (!to->snap_pending || to->snap_img.index < e->img.index) {
		to->snap_pending = true;
		to->snap_img = e->img;
		to->snap_from = e->peer;
		to->snap_msg_term = e->term;
	}
	if (!to->rd_out)
		snap_install(s, to);
}

/* As the server does: check it is newer, make the image and the WAL's
 * snapshot marker durable, then raft_restore. */
static void snap_install(struct sim *s, struct node *n)
{
	const struct image img = n->snap_img;
	uint64_t v[SIM_IDS], l[SIM_IDS];
	struct raft_snap_meta meta = {0};
	int err;

	n->snap_pending = false;
	if (raft_term(n->r) > n->snap_msg_term ||
	    raft_commit_index(n->r) >= img.index)
		return; /* stale: keep the old state */
	SIM_CHECK(s,
		  img.index <= s->n_applied &&
			  s->applied[img.index].cum == img.hash,
		  "snapshot from %llu at %llu differs from what was applied",
		  ULL(n->snap_from), ULL(img.index));
	n->sm_disk = n->sm = img;
	log_restore(n, img.index, img.term);
	meta.index = img.index;
	meta.term = img.term;
	meta.voters = v;
	meta.n_voters = mask_ids(img.voters, v);
	meta.learners = l;
	meta.n_learners = mask_ids(img.learners, l);
	err = raft_restore(n->r, &meta, n->snap_from, n->snap_msg_term);
	SIM_CHECK(s, err == 0, "member %llu: raft_restore(%llu) from %llu: %d",
		  ULL(n->id), ULL(img.index), ULL(n->snap_from), err);
	SIM_CHECK(s,
		  raft_commit_index(n->r) == img.index &&
			  raft_applied_index(n->r) == img.index,
		  "member %llu: after raft_restore(%llu) commit %llu applied "
		  "%llu",
		  ULL(n->id), ULL(img.index), ULL(raft_commit_index(n->r)),
		  ULL(raft_applied_index(n->r)));
	n->chk_commit = img.index;
	s->st.snaps_installed++;
	if (s->trace)
		fprintf(stderr, "  %llu installs the snapshot at %llu\n",
			ULL(n->id), ULL(img.index));
}

/* ---- clients ---- */

static struct node *pick(struct sim *s, bool up)
{
	uint64_t ids[SIM_IDS], id;
	size_t k = 0;

	for (id = 1; id <= SIM_IDS; id++) {
		struct node *n = &s->nodes[id];

		if (n->started && n->up == up && (up || !n->removed) &&
		    n->paused_until <= s->now)
			ids[k++] = id;
	}
	return k ? &s->nodes[ids[rnd(s, k)]] : NULL;
}

static struct node *find_leader(struct sim *s)
{
	struct node *best = NULL;
	uint64_t id;

	for (id = 1; id <= SIM_IDS; id++) {
		struct node *n = &s->nodes[id];

		if (n->up && raft_role(n->r) == RAFT_LEADER &&
		    n->paused_until <= s->now &&
		    (!best || raft_term(n->r) > raft_term(best->r)))
			best = n;
	}
	return best;
}

static bool propose_ok(int err)
{
	return err == 0 || err == CAIRN_ENOT_LEADER ||
	       err == CAIRN_ENO_LEADER || err == CAIRN_ELEADER_TRANSFER;
}

static void client_propose(struct sim *s, struct node *n)
{
	uint64_t req = ++s->req_id, idx = 0;
	uint8_t b[9] = {'P'};
	int err;

	memcpy(b + 1, &req, sizeof(req));
	err = raft_propose(n->r, b, sizeof(b), &idx);
	SIM_CHECK(s, propose_ok(err), "member %llu: raft_propose: %d",
		  ULL(n->id), err);
	SIM_CHECK(s,
		  err || raft_role(n->r) != RAFT_LEADER ||
			  idx == raft_last_index(n->r),
		  "leader %llu: proposal at %llu, last %llu", ULL(n->id),
		  ULL(idx), ULL(raft_last_index(n->r)));
}

static void client_read(struct sim *s, struct node *n)
{
	uint64_t ctx = s->n_reads + 1;
	int err;

	err = raft_read_index(n->r, ctx);
	SIM_CHECK(s, err == 0 || err == CAIRN_ENO_LEADER,
		  "member %llu: raft_read_index: %d", ULL(n->id), err);
	if (err)
		return;
	s->reads = grow(s, s->reads, &s->cap_reads, ctx, sizeof(*s->reads));
	/* Every write acknowledged so far is within this. */
	s->reads[s->n_reads++] = (struct rreq){n->id, s->n_committed};
	s->st.reads++;
}

static void client_transfer(struct sim *s)
{
	struct node *l = find_leader(s);
	uint64_t v[SIM_IDS], to;
	size_t nv;
	int err;

	if (!l || !(nv = mask_ids(l->sm.voters, v)))
		return;
	to = v[rnd(s, nv)];
	err = raft_transfer_leader(l->r, to);
	SIM_CHECK(s,
		  err == 0 ||
			  (err == CAIRN_EBAD_LEADER_TRANSFEREE && to == l->id),
		  "leader %llu: raft_transfer_leader(%llu): %d", ULL(l->id),
		  ULL(to), err);
	s->st.transfers += err == 0;
}

/* A learner is promoted once it is nearly caught up (etcd's rule). */
static bool learner_ready(struct node *l, uint64_t id)
{
	struct raft_progress_info pi;

	return raft_progress(l->r, id, &pi) == 0 &&
	       pi.match + 10 >= raft_last_index(l->r);
}

/* One membership change, chosen from the leader's applied configuration:
 * promote a learner, add a learner or a voter, remove a member. */
static void client_conf(struct sim *s)
{
	struct node *l = find_leader(s), *p;
	uint64_t ids[SIM_IDS], id = 0, req = ++s->req_id;
	uint32_t vm, lm;
	uint8_t b[11];
	int type = 0, err, c = (int)rnd(s, 3);
	size_t k;

	if (!l)
		return;
	vm = l->sm.voters;
	lm = l->sm.learners;
	if (lm && chance(s, 60)) {
		k = mask_ids(lm, ids);
		id = ids[rnd(s, k)];
		type = RAFT_CC_ADD_NODE;
		if (!learner_ready(l, id))
			return;
	} else if (c == 0 && popcount(lm) < 2 && s->next_id <= SIM_IDS) {
		id = s->next_id;
		type = RAFT_CC_ADD_LEARNER;
	} else if (c == 1 && popcount(vm) < 5 && s->next_id <= SIM_IDS) {
		id = s->next_id;
		type = RAFT_CC_ADD_NODE;
	} else if (c == 2) {
		k = mask_ids(vm | lm, ids);
		id = ids[rnd(s, k)];
		type = RAFT_CC_REMOVE_NODE;
		if ((vm & (1u << id)) && popcount(vm) <= 3)
			return;
	}
	if (!id)
		return;
	p = chance(s, 70) ? l : pick(s, true);
	b[0] = 'C';
	b[1] = (uint8_t)type;
	b[2] = (uint8_t)id;
	memcpy(b + 3, &req, sizeof(req));
	err = raft_propose_type(p->r, RAFT_ENTRY_CONF_CHANGE, b, sizeof(b),
				NULL);
	SIM_CHECK(s, propose_ok(err) || err == CAIRN_ECONF_CHANGE_PENDING,
		  "member %llu: conf change proposal: %d", ULL(p->id), err);
	if (!err && id == s->next_id)
		s->next_id++;
}

static void client(struct sim *s)
{
	struct node *n = pick(s, true);
	uint64_t c = rnd(s, 100);

	if (!n)
		return;
	if (c < 55 && s->chaos) /* afterwards, only the final proposal */
		client_propose(s, n);
	else if (c < 75 && s->f.read_index)
		client_read(s, n);
	else if (c < 78 && s->chaos && s->f.transfer)
		client_transfer(s);
	else if (c < 78 + s->conf_pct && s->chaos && s->f.conf)
		client_conf(s);
}

/* ---- faults ---- */

static void partition(struct sim *s)
{
	uint32_t group = (uint32_t)rnd(s, 1u << (SIM_IDS + 1)) & ~1u;
	uint64_t a, b;

	for (a = 1; a <= SIM_IDS; a++) {
		s->cut[a] = 0;
		for (b = 1; b <= SIM_IDS; b++)
			if (!(group >> a & 1) != !(group >> b & 1))
				s->cut[a] |= 1u << b;
	}
}

/* Half the crashes hit the leader, some hit a member in mid-fsync. */
static struct node *crash_victim(struct sim *s)
{
	struct node *n = find_leader(s);
	uint64_t id, c = rnd(s, 100);

	if (c < 50 && n)
		return n;
	for (id = 1; c < 75 && id <= SIM_IDS; id++)
		if (s->nodes[id].up && s->nodes[id].rd_out)
			return &s->nodes[id];
	return pick(s, true);
}

static void fault(struct sim *s)
{
	uint64_t c = rnd(s, 100), a, b;
	struct node *n;

	if (c < 15 && (n = crash_victim(s))) {
		node_crash(s, n);
		s->st.crashes++;
	} else if (c >= 15 && c < 50 && (n = pick(s, false))) {
		node_boot(s, n);
		s->st.restarts++;
	} else if (c >= 50 && c < 65) {
		partition(s);
	} else if (c >= 65 && c < 80) {
		memset(s->cut, 0, sizeof(s->cut));
	} else if (c >= 80 && c < 85 && (n = find_leader(s))) {
		memset(s->cut, 0, sizeof(s->cut));
		for (a = 1; a <= SIM_IDS; a++)
			if (a != n->id) {
				s->cut[a] |= 1u << n->id;
				s->cut[n->id] |= 1u << a;
			}
	} else if (c >= 92 && c < 97 && (n = pick(s, true))) {
		n->paused_until = s->now + 100 + rnd(s, 20 * SIM_TICK);
		s->st.pauses++;
	} else if (c >= 85 && c < 92) {
		a = 1 + rnd(s, SIM_IDS);
		b = 1 + rnd(s, SIM_IDS);
		if (a != b)
			s->cut[a] |= 1u << b;
	}
}

/* The faults stop: the network heals, every member is up, removed
 * members are gone. */
static void heal(struct sim *s)
{
	uint64_t id;

	s->chaos = false;
	memset(s->cut, 0, sizeof(s->cut));
	for (id = 1; id <= SIM_IDS; id++) {
		struct node *n = &s->nodes[id];

		n->paused_until = 0;
		if (n->started && n->removed && n->up)
			node_crash(s, n);
		else if (n->started && !n->removed && !n->up)
			node_boot(s, n);
	}
	if (s->trace)
		fprintf(stderr, "  faults stop\n");
}

/* Is there no final proposal, or was it overwritten, or lost with a
 * leader (the current leader does not have it)? */
static bool final_lost(struct sim *s, struct node *l)
{
	uint64_t t = 0;
	int err;

	if (!s->final_index)
		return true;
	if (s->final_index <= s->n_applied)
		return s->applied[s->final_index].ehash != s->final_hash;
	err = raft_entry_term(l->r, s->final_index, &t);
	return err == -ENOENT || (err == 0 && t != s->final_term);
}

/* For a liveness failure: every running member's state. */
static void live_status(struct sim *s, char *buf, size_t cap)
{
	static const char roles[] = "FPCL";
	size_t len = 0;
	uint64_t id;
	int k;

	for (id = 1; id <= SIM_IDS && len + 1 < cap; id++) {
		struct node *n = &s->nodes[id];

		if (!n->up)
			continue;
		k = snprintf(buf + len, cap - len,
			     "%s%llu:%c/%llu/%llu/%llu/%llu/%llu",
			     len ? " " : "", ULL(id), roles[raft_role(n->r)],
			     ULL(raft_term(n->r)), ULL(raft_leader(n->r)),
			     ULL(n->sm.index), ULL(raft_commit_index(n->r)),
			     ULL(raft_last_index(n->r)));
		if (k < 0)
			break;
		len += (size_t)k;
	}
}

/* Then a ReadIndex on every member is answered (asked again of a new
 * leader: a leader change drops pending reads). */
static bool live_reads(struct sim *s, struct node *l, const uint64_t *ids,
		       size_t k)
{
	uint32_t want = 0;
	size_t i;

	if (!s->f.read_index)
		return true;
	for (i = 0; i < k; i++)
		want |= 1u << ids[i];
	if ((s->live_answered & want) == want)
		return true;
	if (s->live_leader == l->id)
		return false;
	s->live_leader = l->id;
	s->live_ctx = s->n_reads + 1;
	for (i = 0; i < k; i++)
		if (!(s->live_answered & (1u << ids[i])))
			client_read(s, &s->nodes[ids[i]]);
	return false;
}

/* Check 7: a leader followed by its whole configuration, then a proposal
 * applied by all of it, within SIM_LIVE_TICKS ticks of healing. */
static void live_step(struct sim *s)
{
	struct node *l = find_leader(s);
	uint64_t ids[SIM_IDS], req;
	uint8_t b[9] = {'F'};
	struct raft_entry fe = {0};
	size_t k, i;
	char st[400] = "";

	if (s->chaos)
		return;
	if (s->now > s->chaos_end + SIM_LIVE_TICKS * SIM_TICK)
		live_status(s, st, sizeof(st));
	SIM_CHECK(s, s->now <= s->chaos_end + SIM_LIVE_TICKS * SIM_TICK,
		  "liveness: %s %d ticks after the faults stopped (final "
		  "entry %llu; member:role/term/leader/applied/commit/last: "
		  "%s)",
		  !s->final_index ? "no leader followed by all its members"
		  : !s->live_ctx  ? "the final proposal is not applied by all"
				 : "a ReadIndex is not answered on all members",
		  SIM_LIVE_TICKS, ULL(s->final_index), st);
	if (!l)
		return;
	k = mask_ids(l->sm.voters | l->sm.learners, ids);
	for (i = 0; i < k; i++)
		if (!s->nodes[ids[i]].up ||
		    raft_leader(s->nodes[ids[i]].r) != l->id)
			return;
	if (final_lost(s, l)) {
		req = ++s->req_id;
		memcpy(b + 1, &req, sizeof(req));
		fe.data = b;
		fe.len = sizeof(b);
		if (raft_propose(l->r, b, sizeof(b), &s->final_index) != 0)
			s->final_index = 0;
		s->final_term = raft_term(l->r);
		s->final_hash = entry_hash(&fe);
		return;
	}
	for (i = 0; i < k; i++)
		if (s->nodes[ids[i]].sm.index < s->final_index)
			return;
	s->done = live_reads(s, l, ids, k);
}

/* ---- the loop ---- */

static void trace_ev(struct sim *s, const struct ev *e)
{
	static const char *const kinds[] = {"tick",   "msg",	  "fsync",
					    "snap",   "snapdone", "stop",
					    "client", "fault",	  "heal"};

	if (e->kind == EV_TICK)
		return;
	fprintf(stderr, "%llu %s", ULL(s->now), kinds[e->kind]);
	if (e->kind == EV_MSG)
		fprintf(stderr,
			" type %d %llu->%llu term %llu index %llu "
			"logterm %llu n %zu commit %llu%s",
			(int)e->m.type, ULL(e->m.from), ULL(e->m.to),
			ULL(e->m.term), ULL(e->m.index), ULL(e->m.log_term),
			e->m.n_entries, ULL(e->m.commit),
			e->m.reject ? " reject" : "");
	else if (e->kind != EV_CLIENT && e->kind != EV_FAULT)
		fprintf(stderr, " node %llu", ULL(e->node));
	fputc('\n', stderr);
}

/* A paused member does nothing until it resumes: what happens to it
 * (ticks, deliveries, fsync completions, snapshot callbacks) waits. */
static bool ev_held(struct sim *s, struct ev *e)
{
	struct node *n;

	if (e->kind == EV_STOP || e->kind >= EV_CLIENT)
		return false;
	n = node_of(s, e->node);
	if (n->paused_until <= e->at)
		return false;
	e->at = n->paused_until;
	ev_push(s, e);
	return true;
}

static void sim_event(struct sim *s, struct ev *e)
{
	struct node *n = e->node ? node_of(s, e->node) : NULL;

	switch (e->kind) {
	case EV_TICK:
		if (n->up)
			raft_tick(n->r);
		ev_new(s, EV_TICK, (uint64_t)n->period)->node = n->id;
		break;
	case EV_MSG:
		net_deliver(s, e);
		break;
	case EV_FSYNC:
		if (n->up && n->inc == e->inc && n->rd_out)
			node_synced(s, n);
		break;
	case EV_SNAP:
		snap_arrive(s, e);
		break;
	case EV_SNAP_DONE:
		if (n->up && n->inc == e->inc)
			raft_report_snapshot(n->r, e->peer, e->index);
		break;
	case EV_STOP:
		if (n->up)
			node_crash(s, n);
		break;
	case EV_CLIENT:
		client(s);
		ev_new(s, EV_CLIENT, 10 + rnd(s, 50));
		break;
	case EV_FAULT:
		if (!s->chaos)
			break;
		fault(s);
		ev_new(s, EV_FAULT, 50 + rnd(s, 500));
		break;
	case EV_HEAL:
		heal(s);
		break;
	}
}

static void sim_init(struct sim *s, uint64_t seed)
{
	uint64_t id, c;

	memset(s, 0, sizeof(*s));
	s->seed = seed;
	s->rng = seed * 0x2545f4914f6cdd1dULL + 1;
	sim_detect(&s->f);
	s->trace = getenv("RAFTSIM_TRACE") != NULL;
	s->n_init = (seed & 1) ? 5 : 3;
	s->init_voters = ((1u << (s->n_init + 1)) - 1) & ~1u;
	s->pre_vote = chance(s, 50);
	s->check_quorum = chance(s, 50);
	s->torn = chance(s, 50);
	s->loss = (unsigned)rnd(s, 20);
	s->dup = (unsigned)rnd(s, 10);
	s->slow = (unsigned)rnd(s, 10);
	s->compact_pct = (unsigned)rnd(s, 25);
	s->conf_pct = 8;
	c = rnd(s, 4); /* entries per APP: etcd's default, or small */
	s->max_msg_entries = c == 0 ? 0 : c == 1 ? 1 : 1 + rnd(s, 8);
	/* Flow control: raft's defaults, or a window of a few entries (of
	 * 9 to 11 bytes each here). */
	if (chance(s, 50)) {
		s->max_inflight = 2 + rnd(s, 4);
		s->max_inflight_bytes = 9 * (2 + rnd(s, 8));
		s->max_msg_bytes = 9 * (1 + rnd(s, 4));
	}
	s->chaos = true;
	s->chaos_end = (150 + rnd(s, 250)) * SIM_TICK;
	s->next_id = s->n_init + 1;
	for (id = 1; id <= SIM_IDS; id++) {
		s->nodes[id].id = id;
		s->nodes[id].rng = seed * 1000003 + id;
		s->nodes[id].period = SIM_TICK - 5 + (int)rnd(s, 11);
	}
	for (id = 1; id <= s->n_init; id++)
		hook_started(s, id);
	ev_new(s, EV_CLIENT, rnd(s, 50));
	ev_new(s, EV_FAULT, 100 + rnd(s, 400));
	ev_new(s, EV_HEAL, s->chaos_end);
}

static void sim_free(struct sim *s)
{
	uint64_t id;
	size_t i;

	for (id = 1; id <= SIM_IDS; id++) {
		struct node *n = &s->nodes[id];

		raft_destroy(n->r);
		log_truncate(n, n->snap_index + 1);
		free(n->log);
		entries_free(n->w.ents, n->w.n);
	}
	for (i = 0; i < s->nh; i++)
		ev_free(s->heap[i]);
	free(s->heap);
	free(s->leader_of);
	free(s->applied);
	free(s->committed);
	free(s->reg);
	free(s->reads);
}

static void sim_run(struct sim *s)
{
	struct ev *e;
	uint64_t id;

	while (!s->done) {
		e = ev_pop(s);
		SIM_CHECK(s, e != NULL && s->st.steps < SIM_MAX_EVENTS,
			  "runaway simulation");
		s->now = e->at;
		s->st.steps++;
		if (s->trace)
			trace_ev(s, e);
		if (ev_held(s, e))
			continue;
		sim_event(s, e);
		ev_free(e);
		for (id = 1; id <= SIM_IDS; id++)
			node_ready(s, &s->nodes[id]);
		check_step(s);
		live_step(s);
	}
}

static void stats_add(struct stats *t, const struct stats *a)
{
	uint64_t *d = (uint64_t *)t;
	const uint64_t *x = (const uint64_t *)a;
	size_t i;

	for (i = 0; i < sizeof(*t) / sizeof(uint64_t); i++)
		d[i] += x[i];
}

/* ---- a crash or hang inside raft still names its seed ---- */

static const struct sim *volatile g_cur; /* the run in progress */

static size_t put_str(char *b, size_t n, const char *str)
{
	while (*str && n < 255)
		b[n++] = *str++;
	return n;
}

static size_t put_u64(char *b, size_t n, uint64_t v)
{
	char d[24];
	size_t k = 0;

	do
		d[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < sizeof(d));
	while (k && n < 255)
		b[n++] = d[--k];
	return n;
}

/* Async-signal-safe: formats by hand, one write(), then dies of sig. */
static void on_fatal(int sig)
{
	const struct sim *s = g_cur;
	char b[256];
	size_t n = 0;

	if (s) {
		n = put_str(b, n, "raftsim: seed ");
		n = put_u64(b, n, s->seed);
		n = put_str(b, n, " step ");
		n = put_u64(b, n, s->st.steps);
		n = put_str(b, n, sig == SIGALRM ? ": hangs" : ": signal ");
		n = sig == SIGALRM ? n : put_u64(b, n, (uint64_t)sig);
		n = put_str(b, n, "\nreplay: RAFTSIM_SEED=");
		n = put_u64(b, n, s->seed);
		n = put_str(b, n,
			    " CK_RUN_SUITE=raftsim "
			    "tests/unit/check_cairn\n");
		if (write(STDERR_FILENO, b, n) < 0)
			n = 0;
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* alarm_secs: report a hang (as SIGALRM) before Check's timeout. */
static void catch_fatal(unsigned alarm_secs)
{
	static const int sigs[] = {SIGSEGV, SIGBUS,  SIGFPE,
				   SIGILL,  SIGABRT, SIGALRM};
	size_t i;

	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], on_fatal);
	alarm(alarm_secs);
}

/* Runs one seed; returns a fingerprint of the run (steps, last applied
 * index and the state there) for the determinism test. */
static uint64_t sim_once(uint64_t seed, struct stats *tot)
{
	struct sim *s = calloc(1, sizeof(*s));
	uint64_t fp;

	ck_assert_ptr_nonnull(s);
	sim_init(s, seed);
	g_cur = s;
	sim_run(s);
	g_cur = NULL;
	stats_add(tot, &s->st);
	fp = mix(mix(s->st.steps, s->n_applied),
		 s->n_applied ? s->applied[s->n_applied].cum : 0);
	sim_free(s);
	free(s);
	return fp;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 10) : dflt;
}

static uint64_t seeds_wanted(void)
{
	return getenv("RAFTSIM_SEED")
		       ? 1
		       : env_u64("RAFTSIM_SEEDS", RAFTSIM_DEFAULT_SEEDS);
}

/* Check's timeout for the run: ~10 ms a seed on a slow, shared machine,
 * with a wide margin. */
static unsigned run_timeout(void)
{
	return 120 + (unsigned)(seeds_wanted() / 2);
}

START_TEST(test_raftsim)
{
	uint64_t first = env_u64("RAFTSIM_SEED", env_u64("RAFTSIM_FIRST", 1));
	uint64_t n = seeds_wanted(), i;
	struct stats tot = {0};
	struct features f;
	struct timespec t0, t1;
	double secs;

	catch_fatal(run_timeout() - 10);
	/* Thousands of elections: raft's log only when tracing. */
	log_set_level(getenv("RAFTSIM_TRACE") ? LOG_DEBUG : LOG_ERROR);
	sim_detect(&f);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++)
		sim_once(first + i, &tot);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_set_level(LOG_INFO);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	       (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr,
		"raftsim: seeds %llu..%llu in %.1f s: %llu steps, %llu "
		"elections, %llu commits, %llu crashes (%llu torn), %llu "
		"pauses, %llu "
		"reads answered of %llu, %llu transfers, %llu conf changes, "
		"%llu compactions, %llu snapshots sent, %llu installed\n",
		ULL(first), ULL(first + n - 1), secs, ULL(tot.steps),
		ULL(tot.elections), ULL(tot.commits), ULL(tot.crashes),
		ULL(tot.torn), ULL(tot.pauses), ULL(tot.reads_ok),
		ULL(tot.reads), ULL(tot.transfers), ULL(tot.confs),
		ULL(tot.compactions), ULL(tot.snaps), ULL(tot.snaps_installed));
	ck_assert_msg(f.read_index && f.transfer && f.conf && f.snap,
		      "core/raft lacks a cluster feature: read index %d, "
		      "transfer %d, membership %d, snapshots %d",
		      f.read_index, f.transfer, f.conf, f.snap);
	/* The runs must have exercised what they claim to check. */
	ck_assert_uint_gt(tot.elections, 0);
	ck_assert_uint_gt(tot.commits, 0);
	if (n >= 50) {
		ck_assert_uint_gt(tot.crashes, 0);
		ck_assert_uint_gt(tot.pauses, 0);
		ck_assert(!f.read_index || tot.reads_ok > 0);
		ck_assert(!f.conf || tot.confs > 0);
		ck_assert(!f.snap || tot.snaps_installed > 0);
	}
}
END_TEST

/* A seed replays exactly: what a printed seed is worth. */
START_TEST(test_raftsim_replays)
{
	struct stats tot = {0};
	uint64_t a, b;

	catch_fatal(100);
	log_set_level(LOG_ERROR);
	a = sim_once(7, &tot);
	b = sim_once(7, &tot);
	ck_assert_uint_eq(a, b);
	ck_assert_uint_ne(a, sim_once(8, &tot));
	log_set_level(LOG_INFO);
}
END_TEST

Suite *raftsim_suite(void)
{
	Suite *s = suite_create("raftsim");
	TCase *tc = tcase_create("sim");

	tcase_set_timeout(tc, run_timeout());
	tcase_add_test(tc, test_raftsim_replays);
	tcase_add_test(tc, test_raftsim);
	suite_add_tcase(s, tc);
	return s;
}
