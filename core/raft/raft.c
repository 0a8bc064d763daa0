/* raft: the consensus state machine (contract in raft.h). Files: raft.c
 * (roles, elections, replication), ready.c (outbox, ready/advance), log.c
 * (in-memory log), progress.c (leader's view of each member), conf.c
 * (membership, snapshots), read.c (ReadIndex, leadership transfer),
 * check.c (raft_check: these invariants, verified).
 *
 * Safety properties (Raft paper, Figure 3), and where they are upheld:
 *  1. Election Safety (§5.2): at most one leader per term. A member votes
 *     once per term (vote is hard state, and a vote response leaves only
 *     after the vote is durable: outbox seq, raft_advance), and a leader
 *     needs votes from a majority of voters (raft_tally).
 *  2. Leader Append-Only (§5.3): a leader never overwrites or deletes its
 *     entries; raft_log_truncate is reached only from handle_append, which
 *     runs only in follower role.
 *  3. Log Matching (§5.3): an APP carries the index/term of the entry before
 *     its entries; a follower accepts only if its log has that entry, then
 *     drops its entries from the first conflicting one (handle_append).
 *  4. Leader Completeness (§5.4): votes go only to candidates whose log is
 *     at least as up-to-date as the voter's (§5.4.1, raft_log_up_to_date),
 *     and a leader commits an entry only if it has its own term (§5.4.2,
 *     leader_maybe_commit), so earlier-term entries commit through it.
 *  5. State Machine Safety (§5.4.3): entries are handed out for apply once,
 *     in order, only when committed and durable here (raft_ready), and a
 *     committed entry is never truncated (handle_append: CAIRN_ECORRUPT).
 * And the durability rules behind them (§5.6, "persist before respond"):
 *  6. No message depending on a term or vote leaves before that term/vote
 *     was in an advanced ready (seq <= tv_durable_seq; ready.c).
 *  7. A follower acknowledges an index only when it is durable here
 *     (follower_ack / raft_persisted); a leader counts itself toward the
 *     commit quorum only through its durable index.
 * Clusters (thesis chapters 3, 4, 6; details next to the code):
 *  8. One membership change at a time (thesis §4.1): a leader takes a
 *     CONF_CHANGE only when pending_conf_index (its last one, or its last
 *     index when elected) is applied (leader_can_take; conf.c).
 *  9. Learners replicate but never count in a quorum (commit, votes,
 *     check-quorum, ReadIndex) and never campaign; a member not in the
 *     configuration never campaigns nor obeys TIMEOUT_NOW (conf.c).
 * 10. ReadIndex requests live only on a leader and die with its role
 *     (raft_reset); the read index is recorded only once an entry of the
 *     leader's term is committed (thesis §6.4 step 1; read.c).
 * 11. A read is answered only after a quorum of voters acknowledged a
 *     heartbeat round started after it (§6.4 step 3; read.c).
 * 12. During a leadership transfer (§3.10) the leader takes no proposal;
 *     the transfer ends with the role or after an election timeout. A
 *     vote request of a transfer bypasses the leader lease (step_term),
 *     every other one is ignored within it when check_quorum is set.
 * 13. No APP goes to a member waiting for a snapshot (conf.c).
 *
 * Roles (etcd-io/raft's, with the function behind each transition):
 *
 *            timeout, pre_vote            pre-vote quorum
 *   FOLLOWER ---------------> PRE_CANDIDATE -------------> CANDIDATE
 *      |  ^  timeout, no pre_vote                            |   |
 *      |  +------------------------------------------------- | --+ vote
 *      +-------------------------------------------------->  |     quorum
 *      ^   higher term / APP or HEARTBEAT of this term       v
 *      +-------------------- (become_follower) ------------ LEADER
 *                 higher term; check_quorum without a quorum
 *
 *   become_pre_candidate / become_candidate (raft_do_campaign; also
 *   straight to CANDIDATE on TIMEOUT_NOW, thesis §3.10), become_leader
 *   (raft_tally), become_follower (raft_step, tick_leader, and conf.c:
 *   a leader removed from the configuration, raft_restore).
 */
#include "core/raft/raft_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util/log.h"

#define RAFT_DEFAULT_MSG_ENTRIES 1024
#define RAFT_DEFAULT_INFLIGHT 256
#define RAFT_DEFAULT_INFLIGHT_BYTES (32u << 20)
#define RAFT_DEFAULT_MSG_BYTES (1u << 20)

/* ---- randomness and helpers ---- */

static uint64_t raft_rand(struct raft *r)
{
	uint64_t z;

	if (r->rand)
		return r->rand(r->rand_arg);
	/* splitmix64: deterministic per member, so runs are reproducible. */
	z = (r->rand_state += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void raft_randomize_timeout(struct raft *r)
{
	r->randomized_timeout =
		r->election_tick +
		(int)(raft_rand(r) % (uint64_t)r->election_tick);
}

size_t raft_quorum(const struct raft *r)
{
	size_t i, n = 0;

	for (i = 0; i < r->n_prs; i++)
		n += !r->prs[i].learner;
	return n / 2 + 1;
}

struct raft_progress *raft_pr_find(const struct raft *r, uint64_t id)
{
	size_t i;

	for (i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

static bool raft_is_self(const struct raft *r, const struct raft_progress *pr)
{
	return pr->id == r->id;
}

/* ---- role transitions ---- */

static void raft_reset(struct raft *r, uint64_t term)
{
	uint64_t last = raft_log_last_index(&r->log);
	size_t i;

	if (r->term != term) {
		r->term = term;
		r->vote = RAFT_NONE;
		r->tv_seq++;
	}
	r->leader = RAFT_NONE;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	raft_randomize_timeout(r);
	r->bcast_pending = false;
	r->pending_ack = 0;
	r->ack_to = RAFT_NONE;
	r->lead_transferee = RAFT_NONE;
	r->n_rq = 0; /* ReadIndex requests die with the role (inv. 10) */
	for (i = 0; i < r->n_prs; i++) {
		raft_pr_reset(&r->prs[i], last);
		if (raft_is_self(r, &r->prs[i]))
			r->prs[i].match = r->log.stable;
	}
}

void raft_become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
	raft_reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->leader = leader;
	log_debug("raft %llx: follower in term %llu (leader %llx)",
		  (unsigned long long)r->id, (unsigned long long)term,
		  (unsigned long long)leader);
}

#define become_follower raft_become_follower

static void become_pre_candidate(struct raft *r)
{
	size_t i;

	/* Pre-vote changes neither term nor vote (§9.6): nothing to persist,
	 * and a partitioned member does not inflate the cluster's term. */
	r->role = RAFT_PRE_CANDIDATE;
	r->leader = RAFT_NONE;
	for (i = 0; i < r->n_prs; i++)
		r->prs[i].vote = 0;
}

static void become_candidate(struct raft *r)
{
	raft_reset(r, r->term + 1);
	r->vote = r->id;
	r->tv_seq++;
	r->role = RAFT_CANDIDATE;
}

static int become_leader(struct raft *r)
{
	struct raft_progress *pr;
	int err;

	raft_reset(r, r->term);
	r->role = RAFT_LEADER;
	r->leader = r->id;
	pr = raft_pr_find(r, r->id);
	if (pr)
		raft_pr_become_replicate(pr);
	/* Any entry up to here may be an unapplied conf change (inv. 8). */
	r->pending_conf_index = raft_log_last_index(&r->log);
	/* An entry of the new term, so that earlier-term entries commit
	 * through it (§5.4.2) without waiting for a client. */
	err = raft_log_append_owned(&r->log, r->term, RAFT_ENTRY_NORMAL, NULL,
				    0);
	if (err)
		log_warn("raft: no memory for the leader's empty entry");
	log_info("raft %llx: leader in term %llu", (unsigned long long)r->id,
		 (unsigned long long)r->term);
	raft_bcast_append(r);
	return err;
}

/* ---- leader: replication and commit ---- */

/* Send pr the entries from pr->next on (or just the commit index if
 * empty). Returns true if a message was queued. */
static bool send_append_ex(struct raft *r, struct raft_progress *pr,
			   bool if_empty, bool force)
{
	struct raft_msg m = {0};
	uint64_t prev, prev_term, last = raft_log_last_index(&r->log);
	struct raft_entry *ents;
	size_t n = 0, i, bytes = 0;
	int err;

	if (raft_pr_paused(pr) && !(force && pr->state == RAFT_PR_REPLICATE))
		return false;
	prev = pr->next - 1;
	err = raft_log_term(&r->log, prev, &prev_term);
	if (err == -ERANGE) {
		/* The entries this member needs are compacted away. */
		raft_send_snap(r, pr);
		return false;
	}
	if (err)
		return false;
	if (pr->next <= last) {
		n = last - pr->next + 1;
		if (n > r->max_msg_entries)
			n = r->max_msg_entries;
	}
	if (n == 0 && !if_empty)
		return false;
	if (pr->state == RAFT_PR_REPLICATE && raft_pr_paused(pr))
		n = 0; /* forced through a full window: only probe */
	ents = n ? raft_log_at(&r->log, pr->next) : NULL;
	for (i = 0; i < n; i++) {
		if (i && bytes + ents[i].len > r->max_msg_bytes)
			break; /* the first one always goes */
		bytes += ents[i].len;
	}
	n = i;
	m.type = RAFT_MSG_APP;
	m.to = pr->id;
	m.index = prev;
	m.log_term = prev_term;
	m.commit = r->log.commit;
	if (raft_send(r, &m, ents, n))
		return false;
	raft_pr_sent(pr, prev + n, n, bytes);
	return true;
}

bool raft_send_append(struct raft *r, struct raft_progress *pr, bool if_empty)
{
	return send_append_ex(r, pr, if_empty, false);
}

void raft_bcast_append(struct raft *r)
{
	size_t i;

	for (i = 0; i < r->n_prs; i++)
		if (!raft_is_self(r, &r->prs[i]))
			raft_send_append(r, &r->prs[i], true);
}

/* ctx: the read round to confirm (0: the pending one, if any). */
void raft_bcast_heartbeat(struct raft *r, uint64_t ctx)
{
	struct raft_msg m;
	struct raft_progress *pr;
	size_t i;

	if (!ctx)
		ctx = raft_read_pending_seq(r);
	for (i = 0; i < r->n_prs; i++) {
		pr = &r->prs[i];
		if (raft_is_self(r, pr))
			continue;
		memset(&m, 0, sizeof(m));
		m.type = RAFT_MSG_HEARTBEAT;
		m.to = pr->id;
		m.ctx = ctx;
		/* Never more than the member is known to hold: its commit
		 * must point into a log that matches ours. */
		m.commit =
			pr->match < r->log.commit ? pr->match : r->log.commit;
		raft_send(r, &m, NULL, 0);
	}
}

/* §5.3/§5.4.2: commit the highest index durable on a majority, but only if
 * it has the current term. */
uint64_t raft_quorum_value(struct raft *r,
			   uint64_t (*val)(const struct raft *r,
					   const struct raft_progress *pr))
{
	uint64_t *v = r->scratch_match, x;
	size_t i, j, n = 0;

	for (i = 0; i < r->n_prs; i++) {
		if (r->prs[i].learner)
			continue;
		x = val(r, &r->prs[i]);
		for (j = n; j > 0 && v[j - 1] < x; j--)
			v[j] = v[j - 1];
		v[j] = x;
		n++;
	}
	return n ? v[raft_quorum(r) - 1] : 0; /* descending: quorum-th largest */
}

static uint64_t durable_index(const struct raft *r,
			      const struct raft_progress *pr)
{
	return raft_is_self(r, pr) ? r->log.stable : pr->match;
}

bool raft_leader_maybe_commit(struct raft *r)
{
	uint64_t x = raft_quorum_value(r, durable_index), t;

	if (x <= r->log.commit)
		return false;
	if (raft_log_term(&r->log, x, &t) != 0 || t != r->term)
		return false;
	r->log.commit = x;
	raft_read_start(r); /* an entry of this term is committed now */
	return true;
}

static bool quorum_active(struct raft *r)
{
	size_t i, n = 0;

	for (i = 0; i < r->n_prs; i++)
		if (!r->prs[i].learner &&
		    (raft_is_self(r, &r->prs[i]) || r->prs[i].recent_active))
			n++;
	return n >= raft_quorum(r);
}

/* ---- elections ---- */

static int raft_do_campaign(struct raft *r, bool pre, bool transfer);

/* Count votes for the current (pre-)election; act on a result. */
static int raft_tally(struct raft *r)
{
	size_t i, yes = 0, no = 0, q = raft_quorum(r);

	for (i = 0; i < r->n_prs; i++) {
		if (r->prs[i].learner)
			continue;
		yes += r->prs[i].vote > 0;
		no += r->prs[i].vote < 0;
	}
	if (yes >= q) {
		if (r->role == RAFT_PRE_CANDIDATE)
			return raft_do_campaign(r, false, false);
		return become_leader(r);
	}
	if (no >= q)
		become_follower(r, r->term, RAFT_NONE);
	return 0;
}

/* transfer: started by TIMEOUT_NOW (§3.10), so voters must not ignore it
 * for their leader lease. */
static int raft_do_campaign(struct raft *r, bool pre, bool transfer)
{
	struct raft_progress *self = raft_pr_find(r, r->id);
	struct raft_msg m;
	uint64_t vote_term;
	size_t i;
	int err;

	if (!self || self->learner)
		return -EPERM;
	if (pre) {
		become_pre_candidate(r);
		vote_term = r->term + 1;
	} else {
		become_candidate(r);
		vote_term = r->term;
	}
	self->vote = 1;
	for (i = 0; i < r->n_prs; i++) {
		if (raft_is_self(r, &r->prs[i]) || r->prs[i].learner)
			continue;
		memset(&m, 0, sizeof(m));
		m.type = pre ? RAFT_MSG_PRE_VOTE : RAFT_MSG_VOTE;
		m.to = r->prs[i].id;
		m.term = vote_term;
		m.index = raft_log_last_index(&r->log);
		m.log_term = raft_log_last_term(&r->log);
		m.transfer = transfer;
		err = raft_send(r, &m, NULL, 0);
		if (err)
			return err;
	}
	/* Last: with one voter this wins at once (and may recurse once from
	 * pre-vote into the real election). */
	return raft_tally(r);
}

static int handle_vote(struct raft *r, const struct raft_msg *m)
{
	bool pre = m->type == RAFT_MSG_PRE_VOTE;
	struct raft_msg resp = {0};
	bool can_vote;

	can_vote = r->vote == m->from ||
		   (r->vote == RAFT_NONE && r->leader == RAFT_NONE) ||
		   (pre && m->term > r->term);
	resp.type = pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
	resp.to = m->from;
	if (can_vote && raft_log_up_to_date(&r->log, m->index, m->log_term)) {
		resp.term = m->term;
		if (!pre && r->vote != m->from) {
			r->vote = m->from;
			r->tv_seq++; /* the grant waits for this (inv. 6) */
		}
		if (!pre)
			r->election_elapsed = 0;
	} else {
		resp.term = r->term;
		resp.reject = true;
	}
	return raft_send(r, &resp, NULL, 0);
}

static int handle_vote_resp(struct raft *r, const struct raft_msg *m)
{
	struct raft_progress *pr = raft_pr_find(r, m->from);
	bool pre = m->type == RAFT_MSG_PRE_VOTE_RESP;

	if ((pre && r->role != RAFT_PRE_CANDIDATE) ||
	    (!pre && r->role != RAFT_CANDIDATE))
		return 0;
	if (!pr || pr->vote != 0)
		return 0;
	pr->vote = m->reject ? -1 : 1;
	return raft_tally(r);
}

/* ---- follower: appends ---- */

static int send_app_resp(struct raft *r, uint64_t to, uint64_t index)
{
	struct raft_msg m = {0};

	m.type = RAFT_MSG_APP_RESP;
	m.to = to;
	m.index = index;
	return raft_send(r, &m, NULL, 0);
}

/* Acknowledge index to the leader, now if durable, else once it is
 * (invariant 7). */
static int follower_ack(struct raft *r, uint64_t to, uint64_t index)
{
	if (index <= r->log.stable)
		return send_app_resp(r, to, index);
	if (r->ack_to != to)
		r->pending_ack = 0;
	r->ack_to = to;
	if (index > r->pending_ack)
		r->pending_ack = index;
	return 0;
}

void raft_follower_flush_ack(struct raft *r)
{
	uint64_t idx;

	if (!r->pending_ack || r->role != RAFT_FOLLOWER ||
	    r->ack_to != r->leader)
		return;
	idx = r->pending_ack < r->log.stable ? r->pending_ack : r->log.stable;
	if (send_app_resp(r, r->ack_to, idx) == 0 && idx == r->pending_ack)
		r->pending_ack = 0;
}

static void raft_commit_to(struct raft *r, uint64_t index)
{
	uint64_t last = raft_log_last_index(&r->log);

	if (index > last)
		index = last;
	if (index > r->log.commit)
		r->log.commit = index;
}

static void raft_truncate(struct raft *r, uint64_t from)
{
	raft_outbox_drop_range(&r->out, from, UINT64_MAX);
	if (r->rd_out && r->rd_ents_last >= from)
		r->rd_ents_last = from - 1; /* those must be handed again */
	if (r->pending_ack >= from)
		r->pending_ack = from - 1;
	raft_log_truncate(&r->log, from);
}

static int reject_append(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {0};
	uint64_t hint, ht = 0;

	hint = raft_log_hint(&r->log, m->index, m->log_term);
	(void)raft_log_term(&r->log, hint, &ht);
	resp.type = RAFT_MSG_APP_RESP;
	resp.to = m->from;
	resp.index = m->index;
	resp.reject = true;
	resp.reject_hint = hint;
	resp.log_term = ht;
	return raft_send(r, &resp, NULL, 0);
}

/* §5.3: the consistency check, then drop conflicting entries and append. */
static int handle_append(struct raft *r, const struct raft_msg *m)
{
	uint64_t conflict = 0, lastnewi;
	size_t i, skip;
	int err;

	for (i = 0; i < m->n_entries; i++)
		if (m->entries[i].index != m->index + 1 + i ||
		    m->entries[i].term > m->term)
			return -EINVAL;
	if (m->index < r->log.commit)
		return follower_ack(r, m->from, r->log.commit);
	/* Entries up to snap_index are committed, hence match (§5.4.3). */
	if (m->index != r->log.snap_index &&
	    !raft_log_match_term(&r->log, m->index, m->log_term))
		return reject_append(r, m);
	for (i = 0; i < m->n_entries; i++) {
		if (!raft_log_match_term(&r->log, m->entries[i].index,
					 m->entries[i].term)) {
			conflict = m->entries[i].index;
			break;
		}
	}
	if (conflict) {
		if (conflict <= r->log.commit) {
			log_error("raft %llx: entry %llu conflicts with a "
				  "committed entry",
				  (unsigned long long)r->id,
				  (unsigned long long)conflict);
			return CAIRN_ECORRUPT;
		}
		skip = conflict - m->index - 1;
		raft_truncate(r, conflict);
		err = raft_log_append(&r->log, m->entries + skip,
				      m->n_entries - skip);
		if (err)
			return err;
	}
	lastnewi = m->index + m->n_entries;
	raft_commit_to(r, m->commit < lastnewi ? m->commit : lastnewi);
	return follower_ack(r, m->from, lastnewi);
}

static int handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
	struct raft_msg resp = {0};

	raft_commit_to(r, m->commit);
	resp.type = RAFT_MSG_HEARTBEAT_RESP;
	resp.to = m->from;
	resp.ctx = m->ctx; /* acknowledges a ReadIndex round (§6.4) */
	return raft_send(r, &resp, NULL, 0);
}

/* ---- per-role step ---- */

int raft_leader_append(struct raft *r, uint32_t type, uint8_t *data, size_t len)
{
	int err;

	err = raft_log_append_owned(&r->log, r->term, type, data, len);
	if (err)
		return err;
	if (type == RAFT_ENTRY_CONF_CHANGE)
		r->pending_conf_index = raft_log_last_index(&r->log);
	/* One APP per follower per ready, not per proposal (group commit). */
	if (r->n_prs > 1)
		r->bcast_pending = true;
	return 0;
}

/* May the leader take an entry of this type now? 0 or the error. */
static int leader_can_take(const struct raft *r, uint32_t type)
{
	if (r->lead_transferee != RAFT_NONE)
		return CAIRN_ELEADER_TRANSFER;
	/* §4.1: one membership change at a time (invariant 8). */
	if (type == RAFT_ENTRY_CONF_CHANGE &&
	    r->pending_conf_index > r->log.applied)
		return CAIRN_ECONF_CHANGE_PENDING;
	return 0;
}

/* A private copy of a proposal's data[0..len) into *out (NULL when len
 * is 0): 0 or -ENOMEM. */
static int prop_copy(const void *data, size_t len, uint8_t **out)
{
	*out = NULL;
	if (!len)
		return 0;
	*out = malloc(len);
	if (!*out)
		return -ENOMEM;
	memcpy(*out, data, len);
	return 0;
}

/* Copy data[0..len) and append it as a new entry of the leader's term. */
static int leader_propose(struct raft *r, uint32_t type, const void *data,
			  size_t len)
{
	uint8_t *d;
	int err;

	err = leader_can_take(r, type);
	if (!err)
		err = prop_copy(data, len, &d);
	if (err)
		return err;
	err = raft_leader_append(r, type, d, len);
	if (err)
		free(d);
	return err;
}

/* Forwarded proposals: entries the leader cannot take are dropped, as
 * lost (the proposer times out). */
static int leader_take_props(struct raft *r, const struct raft_msg *m)
{
	size_t i;
	int err;

	for (i = 0; i < m->n_entries; i++) {
		err = leader_propose(r, m->entries[i].type, m->entries[i].data,
				     m->entries[i].len);
		if (err == -ENOMEM)
			return err;
	}
	return 0;
}

static void leader_app_rejected(struct raft *r, struct raft_progress *pr,
				const struct raft_msg *m)
{
	uint64_t hint = m->reject_hint;

	if (m->log_term)
		hint = raft_log_hint(&r->log, hint, m->log_term);
	if (raft_pr_maybe_decr(pr, m->index, hint)) {
		if (pr->state == RAFT_PR_REPLICATE)
			raft_pr_become_probe(pr);
		raft_send_append(r, pr, true);
	}
}

static void leader_app_acked(struct raft *r, struct raft_progress *pr,
			     const struct raft_msg *m)
{
	if (m->index > raft_log_last_index(&r->log))
		return; /* not from this term's log */
	if (!raft_pr_maybe_update(pr, m->index))
		return;
	/* In SNAPSHOT: it has what the snapshot would give it. */
	if (pr->state == RAFT_PR_PROBE ||
	    (pr->state == RAFT_PR_SNAPSHOT &&
	     pr->match >= pr->pending_snapshot))
		raft_pr_become_replicate(pr);
	else if (pr->state == RAFT_PR_REPLICATE)
		raft_pr_infl_free_to(pr, m->index);
	/* A new commit index goes to everyone; then fill this member's
	 * window (bounded by max_inflight and max_inflight_bytes). */
	if (raft_leader_maybe_commit(r))
		raft_bcast_append(r);
	while (raft_send_append(r, pr, false))
		;
	raft_transfer_check(r, pr);
}

static int step_leader(struct raft *r, const struct raft_msg *m)
{
	struct raft_progress *pr = raft_pr_find(r, m->from);

	if (!pr)
		return 0;
	switch (m->type) {
	case RAFT_MSG_PROP:
		return leader_take_props(r, m);
	case RAFT_MSG_READ_INDEX:
		return m->ctx ? raft_read_leader(r, m->from, m->ctx) : 0;
	case RAFT_MSG_APP_RESP:
		pr->recent_active = true;
		if (m->reject)
			leader_app_rejected(r, pr, m);
		else
			leader_app_acked(r, pr, m);
		return 0;
	case RAFT_MSG_HEARTBEAT_RESP:
		if (m->ctx)
			raft_read_ack(r, pr, m->ctx);
		pr->recent_active = true;
		pr->probe_sent = false;
		/* APPs sent optimistically (REPLICATE) may all have been
		 * lost, and nothing else would tell: an APP, empty if need
		 * be and even through a full window, makes the follower
		 * reject the gap and the leader probe back (etcd does the
		 * same). */
		if (pr->match < raft_log_last_index(&r->log))
			send_append_ex(r, pr, true, true);
		return 0;
	default:
		return 0;
	}
}

static int step_candidate(struct raft *r, const struct raft_msg *m)
{
	switch (m->type) {
	case RAFT_MSG_APP:
		become_follower(r, m->term, m->from);
		return handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		become_follower(r, m->term, m->from);
		return handle_heartbeat(r, m);
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PRE_VOTE_RESP:
		return handle_vote_resp(r, m);
	default:
		return 0;
	}
}

static int step_follower(struct raft *r, const struct raft_msg *m)
{
	switch (m->type) {
	case RAFT_MSG_APP:
		r->election_elapsed = 0;
		r->leader = m->from;
		return handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		r->election_elapsed = 0;
		r->leader = m->from;
		return handle_heartbeat(r, m);
	case RAFT_MSG_READ_INDEX_RESP:
		if (m->reject || !m->ctx)
			return 0;
		return raft_read_push(r, m->ctx, m->index);
	case RAFT_MSG_TIMEOUT_NOW:
		/* §3.10: campaign at once, skipping pre-vote; a member not
		 * in the config (or a learner) ignores it. */
		if (!raft_is_voter(r, r->id))
			return 0;
		log_info("raft %llx: leadership transferred by %llx",
			 (unsigned long long)r->id,
			 (unsigned long long)m->from);
		return raft_do_campaign(r, false, true);
	default:
		return 0;
	}
}

static bool is_vote(enum raft_msg_type t)
{
	return t == RAFT_MSG_VOTE || t == RAFT_MSG_PRE_VOTE;
}

static bool from_leader(enum raft_msg_type t)
{
	return t == RAFT_MSG_APP || t == RAFT_MSG_HEARTBEAT;
}

/* Terms first (§5.1): a higher term makes us a follower, a lower one is
 * stale. Returns 1 if m was fully handled here. */
static int step_term(struct raft *r, const struct raft_msg *m, int *err)
{
	struct raft_msg resp = {0};
	bool in_lease;

	*err = 0;
	if (m->term > r->term) {
		/* With check_quorum, a member that heard from a live leader
		 * within the timeout ignores disruptive candidates (§9.6). */
		in_lease = r->check_quorum && r->leader != RAFT_NONE &&
			   r->election_elapsed < r->election_tick;
		if (is_vote(m->type) && in_lease && !m->transfer)
			return 1;
		if (m->type == RAFT_MSG_PRE_VOTE ||
		    (m->type == RAFT_MSG_PRE_VOTE_RESP && !m->reject))
			return 0; /* pre-vote terms are hypothetical */
		become_follower(r, m->term,
				from_leader(m->type) ? m->from : RAFT_NONE);
		return 0;
	}
	if (m->term == r->term)
		return 0;
	if (from_leader(m->type)) {
		/* §5.1: tell a stale leader our term so it steps down;
		 * without this, pre-vote could leave it in charge forever,
		 * and a member that missed the conf changes naming the
		 * current voters would never be reached. */
		resp.type = RAFT_MSG_APP_RESP;
		resp.to = m->from;
		*err = raft_send(r, &resp, NULL, 0);
	} else if (m->type == RAFT_MSG_PRE_VOTE) {
		resp.type = RAFT_MSG_PRE_VOTE_RESP;
		resp.to = m->from;
		resp.reject = true;
		*err = raft_send(r, &resp, NULL, 0);
	}
	return 1;
}

/* ---- public API ---- */

static int raft_check_config(const struct raft_config *cfg)
{
	if (!cfg || cfg->id == RAFT_NONE || cfg->heartbeat_tick <= 0 ||
	    cfg->election_tick <= cfg->heartbeat_tick)
		return -EINVAL;
	if ((cfg->n_voters && !cfg->voters) ||
	    (cfg->n_learners && !cfg->learners))
		return -EINVAL;
	return raft_conf_check(cfg->voters, cfg->n_voters, cfg->learners,
			       cfg->n_learners);
}

static int raft_check_log(const struct raft_entry *log, size_t n,
			  const struct raft_hard_state *hs, uint64_t applied,
			  uint64_t snap_index)
{
	uint64_t last = n ? log[n - 1].index : snap_index;
	size_t i;

	if (n && !log)
		return -EINVAL;
	if (snap_index && n && log[0].index != snap_index + 1)
		return -EINVAL;
	if (applied < snap_index)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (log[i].index != log[0].index + i || log[i].index == 0)
			return -EINVAL;
		if (i && log[i].term < log[i - 1].term)
			return -EINVAL;
		if (log[i].len && !log[i].data)
			return -EINVAL;
	}
	if (hs && hs->commit > last)
		return -EINVAL;
	if (!hs && n)
		return -EINVAL;
	if (applied > last || (n && applied < log[0].index - 1))
		return -EINVAL;
	return 0;
}

int raft_create(const struct raft_config *cfg, const struct raft_hard_state *hs,
		const struct raft_entry *log, size_t n_log, uint64_t applied,
		struct raft **out)
{
	struct raft_hard_state h;
	struct raft *r;
	int err;

	err = raft_check_config(cfg);
	if (err)
		return err;
	if (n_log && log && cfg->snap_term && log[0].term < cfg->snap_term) {
		/* Terms never decrease along a log: entries after a snapshot
		 * with a lower term are from another history (a snapshot
		 * installed over a conflicting log); they count for nothing. */
		log_warn("raft %llx: ignoring %zu stale entries after the "
			 "snapshot at %llu/%llu",
			 (unsigned long long)cfg->id, n_log,
			 (unsigned long long)cfg->snap_index,
			 (unsigned long long)cfg->snap_term);
		n_log = 0;
		if (hs && hs->commit > cfg->snap_index) {
			h = *hs;
			h.commit = cfg->snap_index;
			hs = &h;
		}
	}
	err = raft_check_log(log, n_log, hs, applied, cfg->snap_index);
	if (err)
		return err;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->id = cfg->id;
	r->election_tick = cfg->election_tick;
	r->heartbeat_tick = cfg->heartbeat_tick;
	r->pre_vote = cfg->pre_vote;
	r->check_quorum = cfg->check_quorum;
	r->rand = cfg->rand;
	r->rand_arg = cfg->rand_arg;
	r->rand_state = cfg->id;
	r->max_msg_entries = cfg->max_msg_entries ? cfg->max_msg_entries
						  : RAFT_DEFAULT_MSG_ENTRIES;
	r->max_inflight =
		cfg->max_inflight ? cfg->max_inflight : RAFT_DEFAULT_INFLIGHT;
	r->max_msg_bytes = cfg->max_msg_bytes ? cfg->max_msg_bytes
					      : RAFT_DEFAULT_MSG_BYTES;
	r->max_inflight_bytes = cfg->max_inflight_bytes
					? cfg->max_inflight_bytes
					: RAFT_DEFAULT_INFLIGHT_BYTES;
	err = raft_conf_set(r, cfg->voters, cfg->n_voters, cfg->learners,
			    cfg->n_learners);
	if (err)
		goto fail;
	err = raft_log_init(&r->log, log, n_log, cfg->snap_index,
			    cfg->snap_term);
	if (err)
		goto fail;
	if (hs) {
		r->term = hs->term;
		r->vote = hs->vote;
		r->log.commit = hs->commit;
		r->prev_hs = *hs;
	}
	if (n_log && log[n_log - 1].term > r->term) {
		/* A torn write kept a ready's entries but not its hard state:
		 * no vote of that term ever left (they wait for the hard
		 * state), so take the term with no vote; it is persisted by
		 * the next ready before any message leaves. */
		r->term = log[n_log - 1].term;
		r->vote = RAFT_NONE;
		r->tv_seq++;
	}
	/* The state machine may be ahead of the persisted commit index:
	 * anything applied was committed. */
	if (applied > r->log.commit)
		r->log.commit = applied;
	r->log.applied = r->log.applying = applied;
	r->log.stable = raft_log_last_index(&r->log);
	r->log.unstable = r->log.stable + 1;
	r->role = r->prev_role = RAFT_FOLLOWER;
	raft_reset(r, r->term);
	*out = r;
	return 0;
fail:
	raft_destroy(r);
	return err;
}

void raft_destroy(struct raft *r)
{
	if (!r)
		return;
	raft_conf_free(r);
	raft_read_free(r);
	free(r->rd_conf); /* a ready was outstanding */
	raft_log_free(&r->log);
	raft_outbox_free(&r->out);
	raft_outbox_free(&r->handed);
	free(r);
}

static void tick_leader(struct raft *r)
{
	size_t i;

	r->heartbeat_elapsed++;
	r->election_elapsed++;
	if (r->election_elapsed >= r->election_tick) {
		r->election_elapsed = 0;
		if (r->lead_transferee != RAFT_NONE) {
			log_warn("raft %llx: leadership transfer to %llx timed "
				 "out",
				 (unsigned long long)r->id,
				 (unsigned long long)r->lead_transferee);
			r->lead_transferee = RAFT_NONE; /* §3.10: abort */
		}
		if (r->check_quorum && !quorum_active(r)) {
			log_warn("raft %llx: no quorum heard from, stepping "
				 "down",
				 (unsigned long long)r->id);
			become_follower(r, r->term, RAFT_NONE);
			return;
		}
		for (i = 0; i < r->n_prs; i++)
			r->prs[i].recent_active = false;
	}
	if (r->heartbeat_elapsed >= r->heartbeat_tick) {
		r->heartbeat_elapsed = 0;
		raft_bcast_heartbeat(r, 0);
	}
}

void raft_tick(struct raft *r)
{
	struct raft_progress *self;

	if (r->role == RAFT_LEADER) {
		tick_leader(r);
		return;
	}
	if (r->election_elapsed < r->randomized_timeout)
		r->election_elapsed++;
	if (r->election_elapsed < r->randomized_timeout)
		return;
	/* A member that may not campaign (learner, not in its config) lets
	 * its elapsed time stand (capped), so its leader lease expires and
	 * it grants the votes of others (as etcd's tickElection). */
	self = raft_pr_find(r, r->id);
	if (!self || self->learner)
		return;
	r->election_elapsed = 0;
	(void)raft_do_campaign(r, r->pre_vote, false);
}

/* PROP and READ_INDEX may carry term 0 (etcd's local messages): they do
 * not depend on the sender's term. */
static bool term_free(enum raft_msg_type t)
{
	return t == RAFT_MSG_PROP || t == RAFT_MSG_READ_INDEX;
}

static int raft_check_msg(const struct raft *r, const struct raft_msg *m)
{
	size_t i;

	/* A term of UINT64_MAX would leave no term to campaign in. */
	if (!m || m->to != r->id || m->from == RAFT_NONE || m->from == r->id ||
	    (m->term == 0 && !term_free(m->type)) || m->term == UINT64_MAX ||
	    (unsigned)m->type > RAFT_MSG_TIMEOUT_NOW ||
	    (m->n_entries && !m->entries))
		return -EINVAL;
	for (i = 0; i < m->n_entries; i++)
		if (m->entries[i].len && !m->entries[i].data)
			return -EINVAL;
	return 0;
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
	int err;

	err = raft_check_msg(r, m);
	if (err)
		return err;
	if (m->term != 0 && step_term(r, m, &err))
		return err;
	if (is_vote(m->type))
		return handle_vote(r, m);
	switch (r->role) {
	case RAFT_LEADER:
		return step_leader(r, m);
	case RAFT_CANDIDATE:
	case RAFT_PRE_CANDIDATE:
		return step_candidate(r, m);
	default:
		return step_follower(r, m);
	}
}

int raft_campaign(struct raft *r)
{
	if (r->role == RAFT_LEADER)
		return 0;
	return raft_do_campaign(r, r->pre_vote, false);
}

/* Follower: forward a proposal to the leader in a PROP (term 0), with a
 * private copy of the data owned by the queued message. */
static int forward_propose(struct raft *r, uint32_t type, const void *data,
			   size_t len)
{
	struct raft_entry e = {0};
	struct raft_msg m = {0};
	uint8_t *d;
	int err;

	err = prop_copy(data, len, &d);
	if (err)
		return err;
	e.type = type;
	e.data = d;
	e.len = len;
	m.type = RAFT_MSG_PROP;
	m.to = r->leader;
	err = raft_send_owned(r, &m, &e, 1, d);
	if (err)
		free(d);
	return err;
}

int raft_propose_type(struct raft *r, uint32_t type, const void *data,
		      size_t len, uint64_t *index)
{
	int err;

	if (index)
		*index = 0;
	if (len && !data)
		return -EINVAL;
	if (r->role != RAFT_LEADER) {
		if (r->leader == RAFT_NONE)
			return CAIRN_ENO_LEADER;
		return forward_propose(r, type, data, len);
	}
	err = leader_propose(r, type, data, len);
	if (err)
		return err;
	if (index)
		*index = raft_log_last_index(&r->log);
	return 0;
}

int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index)
{
	return raft_propose_type(r, RAFT_ENTRY_NORMAL, data, len, index);
}

uint64_t raft_leader(const struct raft *r)
{
	return r->leader;
}

uint64_t raft_term(const struct raft *r)
{
	return r->term;
}

enum raft_role raft_role(const struct raft *r)
{
	return r->role;
}

uint64_t raft_commit_index(const struct raft *r)
{
	return r->log.commit;
}

uint64_t raft_last_index(const struct raft *r)
{
	return raft_log_last_index(&r->log);
}

uint64_t raft_first_index(const struct raft *r)
{
	return r->log.snap_index + 1;
}

uint64_t raft_applied_index(const struct raft *r)
{
	return r->log.applied;
}

int raft_entry_term(const struct raft *r, uint64_t index, uint64_t *term)
{
	return raft_log_term(&r->log, index, term);
}

void raft_compact(struct raft *r, uint64_t index, uint64_t term)
{
	struct raft_log *l = &r->log;

	if (index == l->snap_index && l->snap_term == 0) {
		l->snap_term = term; /* restart: learn the compaction term */
		return;
	}
	if (index <= l->snap_index)
		return;
	if (index > l->applied || index > l->stable ||
	    !raft_log_match_term(l, index, term)) {
		log_warn("raft %llx: refusing to compact to %llu/%llu "
			 "(applied %llu, durable %llu)",
			 (unsigned long long)r->id, (unsigned long long)index,
			 (unsigned long long)term,
			 (unsigned long long)l->applied,
			 (unsigned long long)l->stable);
		return;
	}
	raft_outbox_drop_range(&r->out, 0, index);
	raft_log_compact(l, index);
}
