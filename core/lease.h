/* lease: etcd's lessor (lease/lessor.go, 3.4) — leases with a TTL, the
 * keys attached to them, expiry decided by the leader and carried out as a
 * Revoke through raft, and persistence in the engine's "lease" bucket.
 *
 * Two kinds of operations, kept apart because raft needs them apart:
 *   - applied ones (lessor_grant, lessor_revoke, lessor_checkpoint, and
 *     the extension applier lessor_apply that calls them) change the
 *     replicated state; they run on every member in log order, from the
 *     raft apply path only, and are deterministic given their arguments
 *     (a server-chosen lease ID is chosen before the proposal);
 *   - leader-local ones (lessor_promote/demote, lessor_renew,
 *     lessor_expired, lessor_checkpoints) deal with time: only the primary
 *     (the leader's lessor) tracks expiries; elsewhere every lease lives
 *     "forever" until a Revoke entry arrives.
 *
 * Time: milliseconds of a monotonic clock, injectable for tests
 * (struct lessor_config.now_ms).
 *
 * Key attachment follows MVCC's change stream (lessor_on_change is an
 * mvcc_observer_fn): a put with lease L attaches the key to L (moving it
 * from any other lease), a put without one or a delete detaches it.
 *
 * Engine schema (etcd's, so etcd tools read our files):
 *   bucket "lease":
 *     KEY   OFFSET SIZE DESCRIPTION
 *           0      8    lease ID, big-endian int64
 *     VALUE a leasepb.Lease protobuf {ID, TTL, RemainingTTL}; RemainingTTL
 *           is the last checkpointed remaining TTL in seconds (0: none,
 *           the full TTL applies)
 *
 * Restart (etcd's semantics, plus checkpoints): leases are loaded from
 * the bucket and keys re-attached by walking MVCC; a lease is never
 * expired for the downtime: on promotion its expiry becomes now + its
 * checkpointed remaining TTL, or now + TTL when it has none.
 *
 * Threads: loop thread only.
 */
#ifndef CAIRN_CORE_LEASE_H
#define CAIRN_CORE_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/apply.h"
#include "core/mvcc/mvcc.h"
#include "net/proto/raft_internal.pb.h"

struct engine_handle;
struct server;
struct lessor;

#define LEASE_BUCKET "lease"
#define LEASE_MAX_TTL 9000000000LL /* seconds; etcd's MaxLeaseTTL */
/* An expired lease whose Revoke did not take effect is handed out again
 * by lessor_expired after this long (etcd's expiredLeaseRetryInterval). */
#define LEASE_RETRY_MS 3000
/* How often the leader checkpoints remaining TTLs through raft (etcd's
 * default checkpoint interval). */
#define LEASE_CHECKPOINT_MS (5 * 60 * 1000)
/* Most checkpoints in one LeaseCheckpointRequest (etcd's batch size). */
#define LEASE_CHECKPOINT_BATCH 1000

/* A monotonic clock in milliseconds. */
typedef int64_t (*lease_clock_fn)(void *arg);

struct lessor_config {
	int64_t min_ttl;       /* seconds; a smaller granted TTL is raised */
	lease_clock_fn now_ms; /* NULL: CLOCK_MONOTONIC */
	void *clock_arg;
};

/* Create a lessor over m and h (borrowed; both must outlive it): creates
 * the "lease" bucket in h's batch if absent, loads every lease stored in
 * it (committed data) and attaches each key of m whose kv.lease names one
 * (keys naming an unknown lease are left unattached, as etcd does). The
 * lessor starts as a non-primary. *out is the caller's; free with
 * lessor_close. Errors: -ENOMEM, CAIRN_ECORRUPT (a malformed row in
 * "lease"), m's and h's -errno. */
int lessor_open(const struct lessor_config *cfg, struct mvcc *m,
		struct engine_handle *h, struct lessor **out);

/* Free the lessor (NULL: no-op). Writes nothing. */
void lessor_close(struct lessor *l);

/* Forget every lease and reload them from the "lease" bucket of h and
 * the attachments from m (borrowed from now on, as in lessor_open): after
 * the state machine was replaced by a snapshot. A primary stays primary
 * (expiries start again: now + checkpointed remaining TTL, else TTL).
 * Errors as lessor_open (the lessor may then be partly loaded). */
int lessor_reload(struct lessor *l, struct mvcc *m, struct engine_handle *h);

/* The smallest TTL the server grants, as etcd computes it from its raft
 * timing: ceil(((3 * election_ms / heartbeat_ms) / 2) * heartbeat_ms s). */
int64_t lease_min_ttl(uint64_t election_ms, uint64_t heartbeat_ms);

/* ---- applied operations (raft apply path) ---------------------------- */

/* Grant lease id with ttl seconds (raised to min_ttl); *granted (may be
 * NULL) gets the TTL granted. Persisted in h's batch. On the primary the
 * lease expires at now + TTL, elsewhere never (until promoted).
 * Errors: CAIRN_ELEASE_NOT_FOUND (id 0), CAIRN_ELEASE_TTL_TOO_LARGE
 * (ttl > LEASE_MAX_TTL), CAIRN_ELEASE_EXIST, -ENOMEM, engine -errno. */
int lessor_grant(struct lessor *l, int64_t id, int64_t ttl, int64_t *granted);

/* Revoke lease id: deletes every attached key in one MVCC write txn (one
 * revision, keys in byte order as etcd; no revision when it has none),
 * then the lease and its row. Errors: CAIRN_ELEASE_NOT_FOUND, -ENOMEM,
 * MVCC's and the engine's -errno (fatal for the mvcc, see mvcc.h). */
int lessor_revoke(struct lessor *l, int64_t id);

/* Record that lease id has remaining_ttl seconds left (0: clear it, the
 * full TTL applies again), persisted in its row. The expiry is not
 * touched: it is used at the next promotion. Unknown id: ignored (0),
 * as etcd. Errors: -ENOMEM, engine -errno. */
int lessor_checkpoint(struct lessor *l, int64_t id, int64_t remaining_ttl);

/* apply_ext_fn for struct apply_ctx.ext (arg: the lessor): handles
 * InternalRaftRequest lease_grant, lease_revoke and lease_checkpoint and
 * fills out as apply_entry does (LeaseGrantResponse {header, ID, TTL},
 * LeaseRevokeResponse, LeaseCheckpointResponse, or out->err). Returns
 * false for any other request. */
bool lessor_apply(void *arg, struct apply_ctx *a,
		  const etcdserverpb_InternalRaftRequest *req, bool want_resp,
		  struct apply_out *out);

/* For struct apply_ctx.lease_exists (arg: the lessor). */
bool lessor_exists(void *arg, int64_t id);

/* mvcc_observer_fn (arg: the lessor): keeps the key attachments. */
void lessor_on_change(void *arg, int type, const struct mvcc_kv *kv,
		      const struct mvcc_kv *prev);

/* ---- leader-local operations ----------------------------------------- */

/* Become primary: every lease expires at now + extend_ms + (its
 * checkpointed remaining TTL, else its TTL). No-op if already primary. */
void lessor_promote(struct lessor *l, int64_t extend_ms);
/* Stop tracking expiry: every lease lives until revoked. */
void lessor_demote(struct lessor *l);
bool lessor_is_primary(const struct lessor *l);

/* KeepAlive: the lease expires at now + TTL again; *ttl gets its TTL.
 * *had_checkpoint (may be NULL) says whether it carried a checkpointed
 * remaining TTL, which this clears locally: the caller should replicate
 * the clearing with a checkpoint of 0 (etcd does the same).
 * Errors: CAIRN_ENOT_LEADER (not primary), CAIRN_ELEASE_NOT_FOUND
 * (unknown, or expired and waiting for its revoke). */
int lessor_renew(struct lessor *l, int64_t id, int64_t *ttl,
		 bool *had_checkpoint);

/* Leases whose expiry has passed (primary only), soonest first, at most
 * max ids into ids; each one handed out is not handed out again for
 * LEASE_RETRY_MS unless renewed (the caller proposes its Revoke; if that
 * gets lost it is retried). Returns how many. */
size_t lessor_expired(struct lessor *l, int64_t *ids, size_t max);

/* Remaining TTLs to checkpoint (primary only): every lease with a whole
 * second or more left that differs from its stored checkpoint, into
 * cps[0..max) (ID, remaining_TTL in seconds, rounded up). Returns how
 * many; call again after they are applied to get the rest. */
size_t lessor_checkpoints(struct lessor *l, etcdserverpb_LeaseCheckpoint *cps,
			  size_t max);

/* Write every lease's remaining TTL into its row in h's current batch,
 * outside raft (primary only; a no-op elsewhere): at a clean shutdown,
 * so a restart resumes the remaining TTLs instead of the full ones.
 * Errors: -ENOMEM, engine -errno. */
int lessor_persist_remaining(struct lessor *l);

/* ---- queries ---------------------------------------------------------- */

struct lease_info {
	int64_t id;
	int64_t ttl;	    /* granted TTL, seconds */
	int64_t remaining;  /* seconds left, truncated (etcd's TimeToLive);
			     * on a non-primary the checkpointed remaining
			     * TTL, else the TTL */
	int64_t checkpoint; /* stored remaining TTL (0: none) */
	size_t n_keys;
};

/* Errors: CAIRN_ELEASE_NOT_FOUND. */
int lessor_lookup(const struct lessor *l, int64_t id, struct lease_info *out);

/* fn(arg, key, len) for each key attached to lease id, in no particular
 * order; key is valid until the lessor next changes. fn returns non-zero
 * to stop (returned as is). Errors: CAIRN_ELEASE_NOT_FOUND. */
int lessor_foreach_key(const struct lessor *l, int64_t id,
		       int (*fn)(void *arg, const uint8_t *key, size_t len),
		       void *arg);

/* Every lease id, soonest expiry first: *ids is malloc'd (the caller
 * frees it; non-NULL on success even when *n is 0). Errors: -ENOMEM. */
int lessor_list(const struct lessor *l, int64_t **ids, size_t *n);

size_t lessor_count(const struct lessor *l);

/* Check the invariants at the top of lease.c (heap order and slots, the
 * id and key tables against the lease lists, and that a non-primary
 * tracks no expiry). 0, or CAIRN_ECORRUPT naming the broken one in the
 * log. For tests and debug builds; O(leases + keys). */
int lessor_check(const struct lessor *l);

/* ---- running inside a server ------------------------------------------ */

/* Create the lessor of srv (min TTL from srv's raft timing) and wire it:
 * apply_ctx lease_exists and ext, the change hook, a close hook (which
 * persists remaining TTLs if primary, removes the PEER_REQ_LEASE*
 * handlers from server_peers(srv) and frees everything), a leader-change
 * hook (only the leader's lessor is primary: promote/demote), a restore
 * hook (lessor_reload after a snapshot from the leader), and a timer
 * that every 500 ms follows leadership too, proposes a Revoke for each
 * expired lease (leader only) and every LEASE_CHECKPOINT_MS the
 * remaining TTLs. Call after server_open and before the loop runs (the
 * WAL entries replayed at the first Ready may hold lease requests).
 * *out is borrowed: valid until server_close.
 * Errors: as lessor_open, -ENOSPC (no hook slot left), -ENOMEM. */
int lessor_start(struct server *srv, struct lessor **out);

/* On a started lessor: fn(arg) runs first in its close hook (during
 * server_close, after the peer transport went, the lessor still whole):
 * for the owner of state the lessor's users hold (net/leaseservice.c's
 * forwards). One callback; a second call replaces the first. */
void lessor_set_close_cb(struct lessor *l, void (*fn)(void *arg), void *arg);

/* The server a started lessor runs in (NULL for lessor_open's). */
struct server *lessor_server(const struct lessor *l);

/* On a started lessor: follow the server's leadership now (promote or
 * demote). Called by lessor_renew's users before asking, by the
 * leader-change hook and by the tick. A promotion on a member of a
 * cluster of more than one extends every lease by --election-timeout
 * (etcd's Promote(electionTimeout)); a lone member's does not. */
void lessor_sync_leader(struct lessor *l);

/* KeepAlive as a server does it: lessor_sync_leader, lessor_renew, and if
 * a checkpoint was cleared, propose its checkpoint of 0. Errors as
 * lessor_renew. */
int lessor_keepalive(struct lessor *l, int64_t id, int64_t *ttl);

#endif
