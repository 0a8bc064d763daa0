/* raft_int: the private parts of core/raft shared by raft.c, ready.c,
 * log.c and progress.c. Not part of the contract; nothing outside core/raft
 * includes it (tests excepted).
 */
#ifndef CAIRN_CORE_RAFT_RAFT_INT_H
#define CAIRN_CORE_RAFT_RAFT_INT_H

#include "core/raft/raft.h"

/* The in-memory log. Indexes (all in entries, 0 = none):
 *
 *   snap_index <= applied <= applying <= commit <= last
 *                          applying <= stable <= last
 *   [snap_index+1 .. last] are in ents[], ents[i].index == snap_index+1+i
 *   [unstable .. last] were never handed out in a ready for persistence
 *
 * scratch_a/scratch_b (scratch_cap entries) follow the capacity of ents
 * when no ready is out, so raft_ready() can copy a slice of the log into
 * them without allocating (it cannot fail); it hands out at most
 * scratch_cap entries of each kind.
 * grave holds data of dropped entries that an outstanding ready may still
 * point to; it is freed at raft_advance().
 */
struct raft_log {
	struct raft_entry *ents;
	size_t n, cap;
	struct raft_entry *scratch_a, *scratch_b;
	size_t scratch_cap;
	uint64_t snap_index, snap_term; /* snap_term 0: unknown (restart) */
	uint64_t commit;
	uint64_t applied;  /* advanced past the caller's apply */
	uint64_t applying; /* handed in rd.committed, not yet advanced */
	uint64_t stable;   /* durable here (raft_persisted) */
	uint64_t unstable; /* first index not yet handed for persistence */
	void **grave;
	size_t n_grave, cap_grave;
	bool hold; /* a ready is outstanding: free into grave */
};

int raft_log_init(struct raft_log *l, const struct raft_entry *ents, size_t n,
		  uint64_t snap_index, uint64_t snap_term);
void raft_log_free(struct raft_log *l);
uint64_t raft_log_last_index(const struct raft_log *l);
uint64_t raft_log_last_term(const struct raft_log *l);
/* 0, -ERANGE (compacted/unknown), -ENOENT (past last). */
int raft_log_term(const struct raft_log *l, uint64_t index, uint64_t *term);
bool raft_log_match_term(const struct raft_log *l, uint64_t index,
			 uint64_t term);
/* Entry at index; NULL if not in memory. Valid until the log changes. */
struct raft_entry *raft_log_at(const struct raft_log *l, uint64_t index);
/* §5.4.1: is (index, term) at least as up-to-date as our last entry? */
bool raft_log_up_to_date(const struct raft_log *l, uint64_t index,
			 uint64_t term);
/* Append copies of ents (data copied) after the last entry; ents[0].index
 * must be last + 1. -ENOMEM leaves the log unchanged. */
int raft_log_append(struct raft_log *l, const struct raft_entry *ents,
		    size_t n);
/* Append one entry taking data as is (already a private copy). */
int raft_log_append_owned(struct raft_log *l, uint64_t term, uint32_t type,
			  uint8_t *data, size_t len);
/* Drop entries >= from (they conflict with the leader's). */
void raft_log_truncate(struct raft_log *l, uint64_t from);
/* Drop entries <= index (index in the log, term its term). */
void raft_log_compact(struct raft_log *l, uint64_t index);
/* Drop every entry: the state machine holds all up to index (whose term
 * is term), which becomes the compaction, commit, applied and durable
 * index (a snapshot was installed). */
void raft_log_restore(struct raft_log *l, uint64_t index, uint64_t term);
/* Same when the log holds the snapshot's last entry: entries after index
 * stay (they may be acknowledged already), entries up to it go. */
void raft_log_restore_keep(struct raft_log *l, uint64_t index);
/* Grow the scratch arrays to the log's capacity: 0 or -ENOMEM. */
int raft_log_grow_scratch(struct raft_log *l);
/* Free what raft_log_truncate/compact parked while a ready was out. */
void raft_log_grave_flush(struct raft_log *l);
/* etcd's findConflictByTerm: the largest index <= index whose term is
 * <= term (a guess of where the leader's log and ours match). */
uint64_t raft_log_hint(const struct raft_log *l, uint64_t index, uint64_t term);

/* Replication progress of one member, as the leader sees it.
 *
 *   PROBE --(append accepted)--> REPLICATE --(append rejected)--> PROBE
 *     |  ^                                                          |
 *     |  +--(raft_report_snapshot, or APP_RESP >= pending_snapshot)-+
 *     +--(next compacted away)--> SNAPSHOT <--(next compacted away)-+
 *   PROBE: one APP at a time (probe_sent) until the match is found.
 *   REPLICATE: pipelined APPs, next moved optimistically; at most
 *              max_inflight unacknowledged APPs (the ring infl) and
 *              max_inflight_bytes of their payload (infl_bytes).
 *   SNAPSHOT: next is compacted away; a SNAP message went out for
 *             pending_snapshot and no APP goes until the outcome.
 */
enum raft_pr_state { RAFT_PR_PROBE, RAFT_PR_REPLICATE, RAFT_PR_SNAPSHOT };

struct raft_progress {
	uint64_t id;
	bool learner; /* never counted in quorums, never campaigns */
	uint64_t match, next;
	enum raft_pr_state state;
	bool probe_sent;
	bool recent_active; /* heard from since the last check_quorum */
	int vote;	    /* 0 unknown, 1 granted, -1 refused */
	uint64_t *infl;	    /* ring of last indexes of APPs in flight */
	size_t *infl_sz;    /* and of their payload bytes */
	size_t infl_start, infl_count, infl_cap;
	size_t infl_bytes, infl_bytes_cap; /* payload in flight, its bound */
	uint64_t pending_snapshot; /* SNAPSHOT: index of the SNAP sent */
	uint64_t read_ack; /* highest read round (seq) it acknowledged */
};

void raft_pr_reset(struct raft_progress *pr, uint64_t last);
bool raft_pr_paused(const struct raft_progress *pr);
void raft_pr_become_probe(struct raft_progress *pr);
void raft_pr_become_replicate(struct raft_progress *pr);
void raft_pr_become_snapshot(struct raft_progress *pr, uint64_t index);
bool raft_pr_maybe_update(struct raft_progress *pr, uint64_t index);
bool raft_pr_maybe_decr(struct raft_progress *pr, uint64_t rejected,
			uint64_t hint);
/* An APP with n entries (bytes of payload) up to last_sent went out. */
void raft_pr_sent(struct raft_progress *pr, uint64_t last_sent, size_t n,
		  size_t bytes);
void raft_pr_infl_free_to(struct raft_progress *pr, uint64_t index);
/* Allocate the in-flight rings (cap APPs, bytes_cap payload): 0/-ENOMEM. */
int raft_pr_init(struct raft_progress *pr, uint64_t id, bool learner,
		 size_t cap, size_t bytes_cap);
void raft_pr_free(struct raft_progress *pr);

/* Messages waiting for a ready. seq[i]: the term/vote change that must be
 * durable before msgs[i] may leave (see raft.h "durability contract").
 * off[i]: where msgs[i]'s entries start in ents (pointers are fixed up
 * only when handed out, because ents may move as it grows). */
struct raft_outbox {
	struct raft_msg *msgs;
	size_t *off;
	uint64_t *seq;
	void **own; /* data owned by msgs[i] (a forwarded proposal) or NULL */
	size_t n, cap;
	struct raft_entry *ents;
	size_t n_ents, cap_ents;
};

/* A ReadIndex request held by the leader (§6.4). seq 0: waiting for an
 * entry of the leader's term to commit; else the heartbeat round (read_seq
 * value) that must be acknowledged by a quorum of voters. */
struct raft_read_req {
	uint64_t ctx, from, index, seq;
};

struct raft {
	uint64_t id;
	struct raft_progress *prs; /* voters and learners (incl. this one) */
	size_t n_prs;
	uint64_t *scratch_match; /* n_prs, for the commit median */
	int election_tick, heartbeat_tick;
	bool pre_vote, check_quorum;
	uint64_t (*rand)(void *arg);
	void *rand_arg;
	uint64_t rand_state;
	size_t max_msg_entries, max_msg_bytes, max_inflight, max_inflight_bytes;

	/* hard state */
	uint64_t term, vote;
	struct raft_log log;

	/* soft state */
	enum raft_role role;
	uint64_t leader;
	int election_elapsed, heartbeat_elapsed, randomized_timeout;
	bool bcast_pending; /* leader: proposals since the last broadcast */

	/* follower: acknowledge (pending_ack) to ack_to once durable */
	uint64_t pending_ack, ack_to;

	/* leader: last index that may hold an unapplied conf change */
	uint64_t pending_conf_index;
	uint64_t lead_transferee; /* leader: transfer target or RAFT_NONE */

	/* leader: ReadIndex requests in arrival order; started ones (seq
	 * != 0) form a prefix. read_seq: last heartbeat round started. */
	struct raft_read_req *rq;
	size_t n_rq, cap_rq;
	uint64_t read_seq;
	/* answered reads for the next ready, and those of the outstanding
	 * one (swapped at raft_ready) */
	struct raft_read_state *rs, *rs_handed;
	size_t n_rs, cap_rs, cap_rs_handed;
	/* membership for the SNAP messages of the outstanding ready */
	uint64_t *rd_conf;

	/* ready bookkeeping */
	uint64_t tv_seq;		/* bumped on each term/vote change */
	uint64_t tv_durable_seq;	/* last seq of an advanced ready */
	struct raft_hard_state prev_hs; /* as of the last ready */
	uint64_t prev_leader;
	enum raft_role prev_role;
	bool rd_out;		   /* a ready is outstanding */
	uint64_t rd_tv_seq;	   /* tv_seq handed in the last ready */
	uint64_t rd_ents_last;	   /* last entry index handed in it, or 0 */
	uint64_t rd_applying;	   /* last committed index handed in it */
	struct raft_outbox out;	   /* pending */
	struct raft_outbox handed; /* owned by the outstanding ready */
};

/* raft.c, for ready.c, conf.c and read.c */
struct raft_progress *raft_pr_find(const struct raft *r,
				   uint64_t id); /* or NULL */
bool raft_leader_maybe_commit(struct raft *r);
void raft_follower_flush_ack(struct raft *r);
void raft_bcast_append(struct raft *r);
bool raft_send_append(struct raft *r, struct raft_progress *pr, bool if_empty);
void raft_bcast_heartbeat(struct raft *r, uint64_t ctx);
size_t raft_quorum(const struct raft *r);
/* The highest value val(r, pr) that a quorum of voters reached (the
 * quorum-th largest; 0 without voters). Uses scratch_match. */
uint64_t raft_quorum_value(struct raft *r,
			   uint64_t (*val)(const struct raft *r,
					   const struct raft_progress *pr));
void raft_become_follower(struct raft *r, uint64_t term, uint64_t leader);
/* Leader: append a new entry of its term taking data; 0 or -ENOMEM. */
int raft_leader_append(struct raft *r, uint32_t type, uint8_t *data,
		       size_t len);

/* conf.c: membership (voters, learners) and snapshots. */
/* Replace the membership (ids checked by the caller): 0 or -ENOMEM (r
 * unchanged). Progress of members kept is kept. */
int raft_conf_set(struct raft *r, const uint64_t *voters, size_t n_voters,
		  const uint64_t *learners, size_t n_learners);
void raft_conf_free(struct raft *r);
/* Config check for raft_create: voters and learners non-zero, unique. */
int raft_conf_check(const uint64_t *voters, size_t n_voters,
		    const uint64_t *learners, size_t n_learners);
/* Leader: pr's next entries are compacted away: queue a SNAP. */
void raft_send_snap(struct raft *r, struct raft_progress *pr);
/* Is id a voter? */
bool raft_is_voter(struct raft *r, uint64_t id);

/* read.c: ReadIndex (§6.4) and leadership transfer (§3.10). */
/* Leader: a READ_INDEX from `from` (r->id: local). 0 or -ENOMEM. */
int raft_read_leader(struct raft *r, uint64_t from, uint64_t ctx);
/* Leader: an entry of its term committed: start held requests. */
void raft_read_start(struct raft *r);
/* Leader: HEARTBEAT_RESP m acknowledged read round m->ctx. */
void raft_read_ack(struct raft *r, struct raft_progress *pr, uint64_t ctx);
/* Follower: READ_INDEX_RESP; or a local answer. 0 or -ENOMEM. */
int raft_read_push(struct raft *r, uint64_t ctx, uint64_t index);
/* Leader: the read round to put in heartbeats (0: none pending). */
uint64_t raft_read_pending_seq(const struct raft *r);
void raft_read_free(struct raft *r);
/* Leader: pr acknowledged; if it is the transferee and caught up, send
 * it TIMEOUT_NOW. */
void raft_transfer_check(struct raft *r, struct raft_progress *pr);

/* ready.c, for raft.c. raft_send: queue m to m->to with entries (shallow
 * copies: data stays the log's); fills from/term; 0 or -ENOMEM (dropped). */
int raft_send(struct raft *r, struct raft_msg *m, const struct raft_entry *ents,
	      size_t n);
/* Same, and own (may be NULL) is freed once the message was handed out
 * and advanced, or dropped. On error own stays the caller's. */
int raft_send_owned(struct raft *r, struct raft_msg *m,
		    const struct raft_entry *ents, size_t n, void *own);
/* Forget queued APPs carrying entries in [lo, hi]: their data is about to
 * be freed. Dropping a message is always safe (as if lost). */
void raft_outbox_drop_range(struct raft_outbox *o, uint64_t lo, uint64_t hi);
void raft_outbox_free(struct raft_outbox *o);

#endif
