/* raft: Raft consensus as a pure state machine (etcd-io/raft RawNode style).
 *
 * No I/O, no clock, no threads, no hidden allocation per tick. The caller
 * drives it with raft_tick() (its clock), raft_step() (messages from peers),
 * raft_propose() and raft_campaign(), and collects the work to do with
 * raft_ready() / raft_advance():
 *
 *   loop turn:
 *     raft_propose(...) for each client request (they share one batch);
 *     if (raft_has_ready(r)) {
 *         raft_ready(r, &rd);
 *         append rd.entries and rd.hs to the WAL, start an async fsync;
 *         send rd.msgs (at once: see the durability contract below);
 *         apply rd.committed (now or after the fsync, either is fine);
 *     }
 *   fsync done:
 *     raft_persisted(r, last index, last term of rd.entries);
 *     raft_advance(r, &rd);
 *
 * Durability contract (why the messages may be sent before the fsync):
 *  - raft never puts in rd.msgs a message that depends on state not yet
 *    durable. Votes and vote requests wait until the term/vote they carry
 *    was in an advanced ready (raft_advance == "rd.hs is durable"); a
 *    follower's append acknowledgement waits for raft_persisted() of the
 *    entries it acknowledges. A leader's appends go out in parallel with its
 *    own fsync (Raft thesis §10.2.1): it counts itself toward the commit
 *    quorum only through raft_persisted().
 *  - rd.committed only holds entries durable on this member, so applying
 *    them before the fsync of the same ready is safe.
 *  - So raft_advance() must wait for the fsync of rd.hs (the lead's loop
 *    does); calling it earlier would let a vote leave before it is
 *    durable. One member sends no messages, so there it cannot matter.
 *  - The leader appends an empty RAFT_ENTRY_NORMAL entry (len 0) at the
 *    start of its term (§5.4.2, §8); the applier must skip it.
 *  - One member: raft_campaign() (or the first election timeout) makes it
 *    leader at once; a proposal commits when raft_persisted() covers it
 *    and is handed out in the next ready's rd.committed.
 *
 * Threading: none. One raft object belongs to one thread (the reactor).
 */
#ifndef CAIRN_CORE_RAFT_RAFT_H
#define CAIRN_CORE_RAFT_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RAFT_NONE 0

enum raft_role {
	RAFT_FOLLOWER,
	RAFT_PRE_CANDIDATE,
	RAFT_CANDIDATE,
	RAFT_LEADER
};

enum raft_entry_type { RAFT_ENTRY_NORMAL = 0, RAFT_ENTRY_CONF_CHANGE = 1 };

struct raft_entry {
	uint64_t term, index;
	uint32_t type; /* enum raft_entry_type */
	uint8_t *data; /* NULL when len == 0 */
	size_t len;
};

struct raft_hard_state {
	uint64_t term, vote, commit;
};

enum raft_msg_type {
	RAFT_MSG_APP,	    /* index/log_term: entry before entries[] */
	RAFT_MSG_APP_RESP,  /* index: last matching index, or rejected one */
	RAFT_MSG_VOTE,	    /* index/log_term: candidate's last entry */
	RAFT_MSG_VOTE_RESP, /* reject: vote refused */
	RAFT_MSG_PRE_VOTE,  /* term: the term the candidate would use */
	RAFT_MSG_PRE_VOTE_RESP,
	RAFT_MSG_HEARTBEAT, /* commit: min(leader commit, peer's match) */
	RAFT_MSG_HEARTBEAT_RESP,
	/* Added for clusters (issue 5). */
	RAFT_MSG_PROP,		  /* follower -> leader: entries to append
				   * (forwarded proposals; term 0 allowed) */
	RAFT_MSG_READ_INDEX,	  /* follower -> leader: ctx, term 0 allowed */
	RAFT_MSG_READ_INDEX_RESP, /* leader -> follower: index, ctx; reject
				   * when the leader cannot serve it now */
	RAFT_MSG_SNAP,		  /* leader -> follower: snap (see below) */
	RAFT_MSG_TIMEOUT_NOW,	  /* leader -> transferee: campaign at once */
};

/* Snapshot metadata: the state machine image covers every entry <= index
 * (whose term is term), and the membership as of index. In a message the
 * arrays belong to the sender (raft or the transport) as for entries. */
struct raft_snap_meta {
	uint64_t index, term;
	const uint64_t *voters;
	size_t n_voters;
	const uint64_t *learners;
	size_t n_learners;
};

/* A message. APP_RESP rejections carry reject_hint (a guess of the last
 * index that may match) and log_term (the term there).
 * ctx: a non-zero read context on READ_INDEX / READ_INDEX_RESP and on the
 * HEARTBEAT / HEARTBEAT_RESP round that confirms it (0: none); on the
 * wire it is raftpb.Message.context, 8 bytes big-endian.
 * transfer: on VOTE / PRE_VOTE (and their responses' requests), the
 * election was started by TIMEOUT_NOW, so voters must not ignore it for
 * having heard from a leader recently (etcd's "CampaignTransfer"
 * context).
 * snap: on SNAP only. The leader's raft fills index/term with its
 * compaction point and its current membership; the server replaces all
 * of it with the image it actually sends (its applied index, that
 * entry's term, raft_conf()). */
struct raft_msg {
	enum raft_msg_type type;
	uint64_t from, to, term, log_term, index, commit;
	bool reject;
	uint64_t reject_hint;
	struct raft_entry *entries;
	size_t n_entries;
	uint64_t ctx;
	bool transfer;
	struct raft_snap_meta snap;
};

/* A ReadIndex result: once the applied index reaches index, a read that
 * asked with ctx sees every write acknowledged before it asked (§6.4). */
struct raft_read_state {
	uint64_t ctx, index;
};

struct raft_config {
	uint64_t id;		  /* this member, != RAFT_NONE */
	const uint64_t *voters;	  /* all voting members (incl. id), copied */
	size_t n_voters;	  /* a member not in voters never campaigns */
	const uint64_t *learners; /* non-voting members, copied; disjoint */
	size_t n_learners;	  /* from voters */
	int election_tick;	  /* e.g. 10; > heartbeat_tick */
	int heartbeat_tick;	  /* e.g. 1; > 0 */
	bool pre_vote;		  /* §9.6 pre-vote before a real election */
	bool check_quorum;	  /* leader steps down without a live quorum */
	uint64_t (*rand)(void *arg); /* NULL: internal PRNG seeded by id */
	void *rand_arg;
	size_t max_msg_entries; /* entries per APP; 0: 1024 */
	size_t max_inflight;	/* APPs in flight per follower; 0: 256 */
	/* Unacknowledged APP payload (sum of entries' len) per follower
	 * above which the leader stops sending it more; 0: 32 MiB. */
	size_t max_inflight_bytes;
	/* Entries' len per APP (etcd's MaxSizePerMsg); 0: 1 MiB. An APP
	 * always carries at least one entry, however large. */
	size_t max_msg_bytes;
	/* The compaction point of the persisted log (0, 0: none): entries
	 * <= snap_index live only in the state machine, and the log given
	 * to raft_create starts at snap_index + 1 (or is empty). */
	uint64_t snap_index, snap_term;
};

struct raft_ready {
	bool hard_state_changed;
	struct raft_hard_state hs; /* always filled */
	/* To persist (append/overwrite from entries[0].index, dropping any
	 * persisted entry at or after it) before raft_persisted() for them. */
	struct raft_entry *entries;
	size_t n_entries;
	struct raft_entry *committed; /* to apply, in order; durable already */
	size_t n_committed;
	struct raft_msg *msgs; /* to send; may be sent at once */
	size_t n_msgs;
	struct raft_read_state *read_states; /* answered ReadIndex requests */
	size_t n_read_states;
	uint64_t leader; /* soft state, always filled */
	enum raft_role role;
	uint64_t term;
};

struct raft;

/* Create a member from its persisted state.
 * cfg: copied (voters too); hs: NULL for a fresh member, else the last
 * persisted hard state; log/n_log: the persisted entries, contiguous
 * indexes in order (first_index .. last), copied (data too) — the caller
 * keeps ownership of its array. If log[0].index > 1, call raft_compact(r,
 * log[0].index - 1, term) next to tell raft the term of the entry before.
 * applied: last index the state machine already holds; entries <= applied
 * are never handed out in rd.committed.
 * On success *out is a new raft, free it with raft_destroy().
 * Errors: -EINVAL (bad config: id 0, ticks, an id 0 or repeated among
 * voters and learners, or in both; log not
 * contiguous or terms decreasing or data NULL with len > 0; a log without
 * hs; commit/applied past the last entry, applied before log[0].index - 1),
 * -ENOMEM. A log whose last term is above hs->term (a torn write kept a
 * ready's entries but not its hard state) is accepted: raft takes that
 * term with no vote, and the next ready carries the new hard state.
 * Entries after the compaction point with a term below snap_term (left
 * after a snapshot installed over a conflicting log) are ignored. */
int raft_create(const struct raft_config *cfg, const struct raft_hard_state *hs,
		const struct raft_entry *log, size_t n_log, uint64_t applied,
		struct raft **out);

/* Free r and every entry it holds. r may be NULL. Invalidates any ready. */
void raft_destroy(struct raft *r);

/* One unit of logical time (a heartbeat interval in practice). A follower
 * campaigns after a randomized timeout in [election_tick, 2*election_tick);
 * a leader sends heartbeats every heartbeat_tick and, with check_quorum,
 * steps down if a quorum was not heard from in election_tick ticks.
 * Messages that could not be queued for lack of memory are dropped (the
 * protocol retries), so this never fails. */
void raft_tick(struct raft *r);

/* Handle a message from a peer; copies what it keeps (entries' data).
 * Returns 0 (also for stale or ignored messages), -EINVAL (m->to is not
 * this member, m->from is RAFT_NONE or this member, term 0, unknown type,
 * entries NULL with n_entries > 0, entries not numbered m->index + 1...),
 * -ENOMEM (the message is then dropped, as if lost), CAIRN_ECORRUPT (a
 * leader asked to overwrite a committed entry: the cluster is broken). */
int raft_step(struct raft *r, const struct raft_msg *m);

/* Start an election now (pre-vote first if configured). A one-member
 * cluster becomes leader at once. Returns 0 (also when already leader),
 * -EPERM (this member is not a voter), -ENOMEM. */
int raft_campaign(struct raft *r);

/* Append a NORMAL entry with a copy of data[0..len) (data may be NULL when
 * len is 0). On the leader, on 0, *index (if not NULL) is the entry's
 * index; it is committed once rd.committed holds it, and may yet be lost
 * if leadership changes first (the caller detects that by a different
 * entry at index). On a follower that knows a leader the entry is
 * forwarded (see "clusters" below) and *index is 0.
 * Errors: CAIRN_ENO_LEADER (no leader known), CAIRN_ELEADER_TRANSFER (this
 * leader is handing over), CAIRN_ECONF_CHANGE_PENDING (a CONF_CHANGE while
 * an earlier one is not applied), -EINVAL (data NULL with len > 0),
 * -ENOMEM. */
int raft_propose(struct raft *r, const void *data, size_t len, uint64_t *index);

/* Same with an explicit entry type (enum raft_entry_type). */
int raft_propose_type(struct raft *r, uint32_t type, const void *data,
		      size_t len, uint64_t *index);

/* Is there work for raft_ready()? Always false while a ready is
 * outstanding (between raft_ready() and raft_advance()). */
bool raft_has_ready(const struct raft *r);

/* Fill rd with everything pending. The arrays (and entry data they point
 * to) are owned by raft and stay valid until raft_advance(r, rd); calls
 * to raft_step/propose/tick/persisted/compact in between do not invalidate
 * them. Only one ready may be outstanding at a time. */
void raft_ready(struct raft *r, struct raft_ready *rd);

/* The caller has handed rd->entries to storage (possibly still being
 * fsynced: durability of entries is reported by raft_persisted()), rd->hs
 * IS durable, rd->msgs were sent and rd->committed applied. rd must be the
 * outstanding ready. */
void raft_advance(struct raft *r, const struct raft_ready *rd);

/* Entries up to index (whose entry has this term) are durable on this
 * member. Lets the leader count itself toward the commit quorum and a
 * follower acknowledge appends. Stale reports (the entry was overwritten
 * since: its term differs) and reports past what was handed out in a
 * ready are ignored. */
void raft_persisted(struct raft *r, uint64_t index, uint64_t term);

uint64_t raft_leader(const struct raft *r); /* RAFT_NONE if unknown */
uint64_t raft_term(const struct raft *r);
enum raft_role raft_role(const struct raft *r);
uint64_t raft_commit_index(const struct raft *r);
uint64_t raft_last_index(const struct raft *r);
uint64_t raft_first_index(const struct raft *r); /* oldest entry kept */
uint64_t raft_applied_index(const struct raft *r);

/* Term of the entry at index into *term. Returns 0, -ERANGE (compacted
 * away, or the compaction point's term is unknown), -ENOENT (past the
 * last entry). index 0 has term 0 (while nothing is compacted). */
int raft_entry_term(const struct raft *r, uint64_t index, uint64_t *term);

/* Drop entries <= index from memory (they are applied and persisted
 * elsewhere); raft keeps index/term of the last dropped entry for the
 * consistency check. Ignored (and logged) when index is past the applied
 * or the durable index, or term is not the term of the entry at index.
 * After a restart from a log starting at first > 1, call it with
 * (first - 1, its term) to set the compaction point's term.
 * A follower that needs dropped entries then gets a snapshot (a SNAP
 * message in a ready, see raft_report_snapshot below). */
void raft_compact(struct raft *r, uint64_t index, uint64_t term);

/* ---- clusters (issue 5) ------------------------------------------------
 *
 * Proposals on a follower: raft_propose() on a follower that knows a
 * leader forwards the entry in a PROP message and returns 0 with *index
 * 0 (unknown); the caller learns the outcome when an entry it recognizes
 * (e.g. by a request id inside data) is committed, or times out. With no
 * leader known it returns CAIRN_ENO_LEADER; during a leadership transfer
 * the leader refuses with CAIRN_ELEADER_TRANSFER. A leader drops PROP
 * messages it cannot take (transfer in progress), as lost. */

/* ReadIndex (§6.4): ask for a read point. ctx (!= 0) is the caller's
 * unique tag. The answer comes in a later ready's read_states with the
 * same ctx, after the leader confirmed with a quorum heartbeat round that
 * it still leads and has committed an entry of its term; a follower asks
 * the leader. A lone voter answers in the next ready. Requests may be
 * lost (leader change, message loss): the caller bounds its wait.
 * Returns 0, CAIRN_ENO_LEADER (no leader known), -EINVAL (ctx 0),
 * -ENOMEM. */
int raft_read_index(struct raft *r, uint64_t ctx);

/* Leadership transfer (thesis §3.10): the leader stops taking proposals,
 * brings `to` up to date, then sends it TIMEOUT_NOW; `to` campaigns at
 * once (skipping pre-vote). Abandoned after an election timeout.
 * Returns 0 (started, or `to` already leads), CAIRN_ENOT_LEADER,
 * CAIRN_EBAD_LEADER_TRANSFEREE (to is not a voter, or is this member). */
int raft_transfer_leader(struct raft *r, uint64_t to);
uint64_t raft_lead_transferee(const struct raft *r); /* RAFT_NONE: none */

/* Membership changes, one member at a time (thesis §4.1). The caller
 * proposes a RAFT_ENTRY_CONF_CHANGE entry with raft_propose_type() (its
 * data is the caller's encoding; raft does not read it); raft refuses it
 * with CAIRN_ECONF_CHANGE_PENDING while an earlier one is not yet applied
 * (and a forwarded one is dropped). When the caller applies a committed
 * CONF_CHANGE entry it calls raft_apply_conf_change(), and only then does
 * the change take effect (the configuration is the applied one, as in
 * etcd). ADD_NODE adds a voter or promotes a learner; ADD_LEARNER adds a
 * learner (a learner replicates but never votes nor counts in a quorum
 * nor campaigns); REMOVE_NODE removes either; UPDATE_NODE changes nothing
 * in raft. A removed leader steps down; a removed member stops
 * campaigning. Changes are idempotent (a member may replay entries its
 * starting configuration already reflects): adding a present voter, or
 * ADD_LEARNER of a voter, or removing an absent member, changes nothing
 * and returns 0. Returns 0, -EINVAL (id 0, unknown type), -ENOMEM. */
enum raft_cc_type {
	RAFT_CC_ADD_NODE = 0,
	RAFT_CC_REMOVE_NODE = 1,
	RAFT_CC_UPDATE_NODE = 2,
	RAFT_CC_ADD_LEARNER = 3,
};
int raft_apply_conf_change(struct raft *r, enum raft_cc_type type, uint64_t id);

/* The current (applied) configuration: fills up to cap ids of each kind
 * and returns the counts in *n_voters / *n_learners (call with cap 0 to
 * size the arrays). */
void raft_conf(const struct raft *r, uint64_t *voters, size_t *n_voters,
	       uint64_t *learners, size_t *n_learners, size_t cap);

/* The leader's view of member id's replication (for promotion checks and
 * status). Returns 0, -ENOENT (not a member), CAIRN_ENOT_LEADER. */
struct raft_progress_info {
	uint64_t match, next;
	bool learner, recent_active;
	int state; /* 0 probe, 1 replicate, 2 snapshot */
};
int raft_progress(const struct raft *r, uint64_t id,
		  struct raft_progress_info *out);

/* Snapshots. When a follower needs entries the leader compacted away, the
 * leader's raft puts a SNAP message for it in a ready and marks it as
 * waiting for a snapshot (no APPs to it meanwhile). The server does not
 * send that message with the raft messages: it streams its state machine
 * image (see raft_msg.snap) and then reports the outcome with
 * raft_report_snapshot(r, to, index of the image) or (r, to, 0) on
 * failure; either way replication to `to` resumes by probing, at the
 * member's acknowledgement (raft_restore sends one) or its next heartbeat
 * response. So report success once the member has installed the image
 * (or nearly): a probe it rejects for lack of the image asks for another
 * snapshot. */
void raft_report_snapshot(struct raft *r, uint64_t to, uint64_t index);

/* Follower: install a snapshot received from the leader `from` in term
 * `term`. The caller has ALREADY made the image and a WAL snapshot marker
 * for meta->index durable (and replaced its state machine). raft drops its
 * log up to meta->index (all of it, unless it holds meta's last entry
 * (index and term): then the entries after it stay, as in etcd, since
 * they may be acknowledged already), sets applied and the compaction
 * point to meta->index (and commit, if lower), takes
 * meta's membership, and acknowledges to `from`. Returns 0, -ESTALE (term
 * older than ours, or meta->index <= the commit index: discard the image
 * and keep the old state — so check raft_commit_index() first), -EBUSY (a
 * ready is outstanding: retry after raft_advance), -EINVAL, -ENOMEM. */
int raft_restore(struct raft *r, const struct raft_snap_meta *meta,
		 uint64_t from, uint64_t term);

/* Debug aid: check the invariants listed in raft.c; returns 0 or
 * CAIRN_ECORRUPT (and logs which one failed). */
int raft_check(const struct raft *r);

#endif
