/* server: the glue of one cairn member — data directory, WAL, raft, MVCC,
 * proposals and their waiters, the Ready loop, and timers.
 *
 * Write path (DESIGN.md): server_propose() wraps the client's encoded
 * request in an InternalRaftRequest and hands it to raft; at the end of
 * the loop turn every pending proposal forms one Ready whose entries are
 * written to the WAL and fdatasync'ed by a helper thread (group commit);
 * once durable, raft commits them, core/apply applies them to MVCC inside
 * one engine batch together with the applied index, and each waiter's
 * callback gets the encoded response.
 *
 * Threads: loop thread only.
 */
#ifndef CAIRN_CORE_SERVER_H
#define CAIRN_CORE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/apply.h"
#include "core/mvcc/mvcc.h"

struct event_base;
struct config;
struct server;

/* The version cairn reports as etcd's (clients gate features on it). */
#define CAIRN_ETCD_VERSION "3.4.0"
#define CAIRN_ETCD_CLUSTER_VERSION "3.4.0"

/* InternalRaftRequest field numbers (raft_internal.proto). */
enum server_req {
	SERVER_REQ_PUT = 4,
	SERVER_REQ_DELETE_RANGE = 5,
	SERVER_REQ_TXN = 6,
	SERVER_REQ_COMPACTION = 7,
	SERVER_REQ_LEASE_GRANT = 8,
	SERVER_REQ_LEASE_REVOKE = 9,
	SERVER_REQ_LEASE_CHECKPOINT = 11,
};

/* Called once per proposal on the loop thread: out->err or out->buf (the
 * encoded response; the callee takes ownership and frees it). */
typedef void (*server_done_fn)(void *arg, struct apply_out *out);

/* Open the member's data (creating it when new), replay the WAL after the
 * engine's consistent index, and start raft. cfg must outlive the server.
 * 0, or -errno / CAIRN_E*; on failure errbuf names what and where. */
int server_open(struct event_base *base, const struct config *cfg,
		struct server **out, char *errbuf, size_t errlen);

/* Stop accepting proposals, wait for the in-flight fsync, commit the
 * engine durably and release everything. Waiters get CAIRN_ESTOPPED. */
void server_close(struct server *s);

/* Propose an encoded request (a PutRequest, DeleteRangeRequest,
 * TxnRequest or CompactionRequest, by kind). Copies req. On any member: a
 * follower's raft forwards it to the leader; with no leader known (or
 * during a leadership transfer) it is held until there is one. done is
 * called exactly once, later, never from inside this call: with the
 * result once the entry is applied here, or out->err = CAIRN_ENO_LEADER
 * (held about 2 election timeouts without a leader), CAIRN_ETIMEOUT or
 * CAIRN_ETIMEOUT_LEADER_FAIL (not applied within etcd's request timeout,
 * 5 s + 2 x --election-timeout; the entry may still apply later),
 * CAIRN_ESTOPPED. Returns 0, or CAIRN_EREQUEST_TOO_LARGE,
 * CAIRN_ETOO_MANY_REQUESTS (5000 held, or applying 5000 entries behind
 * the commit index), CAIRN_EMEMBER_REMOVED, CAIRN_ESTOPPED, -ENOMEM
 * (then done is not called). */
int server_propose(struct server *s, enum server_req kind, const uint8_t *req,
		   size_t len, server_done_fn done, void *arg);

/* The context for local reads (Range, read-only Txn). Valid until
 * server_close. A linearizable read must first pass server_read_index. */
struct apply_ctx *server_apply_ctx(struct server *s);

/* Linearizable read barrier: cb(arg, 0) once this member has applied
 * everything committed when the read arrived (ReadIndex: reads arriving
 * while one is asked share the next), or cb(arg, err):
 * CAIRN_ELEADER_CHANGED (the leader changed while asked),
 * CAIRN_ENO_LEADER (none known for about 2 election timeouts),
 * CAIRN_ETIMEOUT (the request timeout), CAIRN_EMEMBER_REMOVED,
 * CAIRN_ESTOPPED, -ENOMEM. May call cb before returning (a lone voter
 * answers at once). Learners are refused by the services, not here. */
void server_read_index(struct server *s, void (*cb)(void *arg, int err),
		       void *arg);

struct server_status {
	uint64_t member_id, cluster_id, leader, term;
	uint64_t commit_index, applied_index;
	int64_t revision;
	uint64_t db_size, db_in_use;
	bool is_learner;
	const char *engine;
};

void server_get_status(struct server *s, struct server_status *st);

/* Commit the engine batch now, without fsync (it is otherwise committed
 * every 100 ms or 10 000 applied entries). For readers of the engine
 * itself, e.g. a snapshot copy. 0 or the engine's error (fatal: the
 * server then refuses writes). */
int server_commit(struct server *s);

/* Defragment the engine (blocks the loop, as etcd's defrag blocks the
 * member). 0 or the engine's -errno. */
int server_defrag(struct server *s);

/* ---- hooks for the modules built on the server (watch, lease) ----- */

#define SERVER_MAX_HOOKS 4

/* Call fn for every MVCC change (see mvcc_set_observer: the server owns
 * the one observer slot and fans it out, in registration order).
 * 0, or -ENOSPC past SERVER_MAX_HOOKS. */
int server_on_change(struct server *s, mvcc_observer_fn fn, void *arg);

/* Call fn(arg) in server_close, in reverse registration order, once the
 * in-flight fsync is done and its entries applied, while MVCC and the
 * engine are still open (free what uses them; writes into the engine
 * batch are committed with sync right after). 0, or -ENOSPC. */
int server_on_close(struct server *s, void (*fn)(void *arg), void *arg);

struct event_base *server_event_base(const struct server *s);
/* The helper-thread pool (core/util/bio.h), for slow disk work. */
struct bio *server_bio(const struct server *s);
struct mvcc *server_mvcc(const struct server *s);
/* The engine, for buckets beside MVCC's (e.g. "lease"): writes go into
 * the current batch, which commits with the applied index. */
struct engine_handle *server_engine(struct server *s);
bool server_is_leader(const struct server *s);

/* The config the server runs with (for member lists and URLs). */
const struct config *server_config(const struct server *s);

/* ---- clusters (issue 5) ------------------------------------------------ */

struct peer_transport;

uint64_t server_member_id(const struct server *s);
/* The leader this member knows of, 0 (RAFT_NONE) if none. */
uint64_t server_leader(const struct server *s);
/* The peer transport (NULL until server_open finished). */
struct peer_transport *server_peers(const struct server *s);

/* Call fn(arg, leader) whenever this member becomes leader (true) or
 * stops being leader (false), after the Ready that changed it was
 * handled, in registration order. fn may propose or read. 0, or -ENOSPC
 * past SERVER_MAX_HOOKS. (server.c) */
int server_on_leader_change(struct server *s,
			    void (*fn)(void *arg, bool leader), void *arg);

/* Call fn(arg) right after the state machine (MVCC, engine) was replaced
 * by a snapshot received from the leader: modules reload what they keep
 * of it (leases) and resync what depends on it (watchers). Hooks run in
 * registration order. May be called any time during or after
 * server_open (before server_snap_open too). 0, -ENOSPC (past
 * SERVER_MAX_HOOKS), -ENOMEM. (server_snap.c) */
int server_on_restore(struct server *s, void (*fn)(void *arg), void *arg);

/* ---- membership (server_member.c) ----------------------------------------
 *
 * Changes go through raft as etcd's raftpb.ConfChange entries and take
 * effect when applied, on every member alike. done (server_done_fn) is
 * called exactly once, never from inside the call: out->err (a CAIRN_E*
 * code: etcd's validation at apply, CAIRN_ETIMEOUT, CAIRN_ESTOPPED ...) or
 * out->buf/len = the membership after the change as members_list_json()
 * text (core/members.h; done owns buf). The immediate errors below mean
 * done will not be called. All: CAIRN_EMEMBER_REMOVED (this member was
 * removed), CAIRN_ENO_LEADER, CAIRN_ESTOPPED, -ENOMEM. */

struct members;

/* The applied membership; valid until the next entry is applied (use it
 * within the current callback). */
const struct members *server_members(const struct server *s);
/* Is this member a learner of the applied membership? */
bool server_is_learner(const struct server *s);
/* Has this member applied its own removal? (then it shuts down) */
bool server_members_removed(const struct server *s);

/* etcd's MemberAdd: a new member with peer_urls (copied), its id (etcd's:
 * SHA-1 of the URLs and the current second) in *id. Errors also:
 * CAIRN_EMEMBER_BAD_URLS, CAIRN_EMEMBER_NOT_ENOUGH_STARTED,
 * CAIRN_EUNHEALTHY (strict reconfiguration checks). */
int server_member_add(struct server *s, const char *const *peer_urls,
		      size_t n, bool is_learner, uint64_t *id,
		      server_done_fn done, void *arg);
/* etcd's MemberRemove. Errors also: CAIRN_EMEMBER_NOT_ENOUGH_STARTED,
 * CAIRN_EUNHEALTHY. */
int server_member_remove(struct server *s, uint64_t id, server_done_fn done,
			 void *arg);
/* etcd's MemberUpdate: id's peer URLs become peer_urls (copied). */
int server_member_update(struct server *s, uint64_t id,
			 const char *const *peer_urls, size_t n,
			 server_done_fn done, void *arg);
/* etcd's MemberPromote. On the leader: CAIRN_ELEARNER_NOT_READY (its
 * match index is below MEMBERS_READY_PERCENT of the leader's) or
 * CAIRN_EMEMBER_NOT_ENOUGH_STARTED now; a follower forwards the whole
 * promotion to the leader (the list in out->buf is then the leader's). */
int server_member_promote(struct server *s, uint64_t id, server_done_fn done,
			  void *arg);

/* etcd's MoveLeader: on the leader only (else CAIRN_ENOT_LEADER), to a
 * voter (else CAIRN_EBAD_LEADER_TRANSFEREE). cb(arg, 0) once `target`
 * leads as seen here, or cb(arg, CAIRN_ETIMEOUT_LEADER_TRANSFER) after
 * timeout_ms, or CAIRN_ESTOPPED; never from inside the call. Returns 0
 * or the errors named (then cb is not called), -ENOMEM. */
int server_move_leader(struct server *s, uint64_t target, uint64_t timeout_ms,
		       void (*cb)(void *arg, int err), void *arg);

#endif
