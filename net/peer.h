/* peer: the peer transport — raft messages and snapshots between members.
 *
 * Streams. Every member dials one MESSAGE stream to each peer it sends
 * to, and accepts the peers' streams on its listener: raft messages flow
 * dialer -> acceptor only (the acceptor answers only the hello and the
 * requests, see Requests below), so a pair of members holds two TCP
 * connections, one per direction (etcd's rafthttp does the same), and
 * neither side ever has to break a tie
 * between two simultaneous dials. A snapshot goes over a SNAPSHOT stream
 * of its own, opened for that one transfer, so a snapshot of any size
 * never queues in front of a heartbeat.
 *
 * Identity. The first frame of every stream is a hello carrying the
 * cluster id, the sender's member id and the member id the sender
 * expects to reach. The acceptor refuses (logs why, answers with a
 * refusal, closes) a hello from another cluster, one meant for another
 * member, or one from a member it was not told about with peer_add();
 * the dialer logs the refusal and retries later with the longest backoff.
 *
 * Frames (all integers big-endian):
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     N: length of what follows (kind + payload), 1..max_frame+1
 *   4       1     kind (enum below)
 *   5       N-1   payload
 *
 *   kind             payload
 *   1 HELLO          u32 version (1), u8 stream (0 messages, 1 snapshot),
 *                    u64 cluster id, u64 from, u64 to          (29 bytes)
 *   2 HELLO_ACK      u8 status (PEER_HELLO_*), u64 cluster id, u64 member
 *                    id of the acceptor                        (17 bytes)
 *   3 MSG            raftpb.Message (net/proto/raft.proto)
 *   4 SNAP_BEGIN     u64 term, u64 index, u64 size (a hint, 0 unknown),
 *                    u64 raft_term, u32 n_voters, u32 n_learners (each
 *                    <= PEER_MAX_CONF_IDS), then the voters' and the
 *                    learners' u64 ids                 (40 + 8 x ids)
 *   5 SNAP_DATA      1..max_frame bytes of the snapshot
 *   6 SNAP_END       u64 total length, u32 crc32c of all the data
 *   7 SNAP_ACK       u8 status (0: stored, else failed)  acceptor->dialer
 *   8 REQ            u64 request id, u8 kind (PEER_REQ_*), request bytes
 *                                                          dialer->acceptor
 *   9 REP            u64 request id, i32 err (0, or the handler's negative
 *                    code), answer bytes (none when err)   acceptor->dialer
 *
 * Requests. A request to a known member goes as a REQ frame on our
 * message stream to it (queued like a vote: never evicted for room), and
 * its answer comes back as a REP frame on the same TCP connection — the
 * only frames an acceptor writes after the hello's answer. A member that
 * does not know its own id yet (joining) dials a stream of its own whose
 * hello has from 0 and cluster id 0 ("any") and to 0 ("whoever
 * listens"); the acceptor takes exactly one REQ of kind PEER_REQ_JOIN on
 * it (any other kind is answered -EACCES), answers it and closes. Ids are
 * the requester's, unique per transport; an answer whose id is not
 * pending (it timed out) is ignored.
 *
 * Any frame that breaks this (bad length, kind unexpected in the stream's
 * state, a payload that does not parse, a message not from the hello's
 * member or not to us) closes that connection and is counted; nothing
 * else is affected.
 *
 * Flow control. Each peer has a bounded queue of encoded frames (bytes
 * and messages, peer_config); frames move to the socket only while the
 * socket's own output buffer is small, so memory per peer is bounded by
 * the queue limits plus about PEER_SOCK_HIGH. When a new message does not
 * fit, the oldest queued messages that are not votes are dropped to make
 * room; if still no room, the new one is dropped (-EAGAIN). Raft
 * tolerates the loss; the drops are counted. The queue is kept while the
 * peer is unreachable, so what was sent just before a reconnect still
 * arrives.
 *
 * Reconnection. A lost or failed message stream is redialed after a
 * backoff that starts at backoff_min_ms, doubles per failure up to
 * backoff_max_ms, and resets once a hello is accepted. When a member we
 * are waiting to redial dials us (it restarted), we redial it at once.
 *
 * Threading: everything runs on the caller's event_base thread; no call
 * blocks except peer_add()'s name resolution (use numeric addresses on a
 * live server) and the snapshot reads and writes (a chunk at a time).
 */
#ifndef CAIRN_NET_PEER_H
#define CAIRN_NET_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "core/raft/raft.h"

struct event_base;
struct peer_transport;

#define PEER_DEFAULT_MAX_FRAME (4u << 20) /* > 2 x --max-request-bytes */
#define PEER_DEFAULT_QUEUE_BYTES (16u << 20)
#define PEER_DEFAULT_QUEUE_MSGS 4096
#define PEER_DEFAULT_MAX_ENTRIES 65536 /* per decoded message */
#define PEER_DEFAULT_BACKOFF_MIN_MS 50
#define PEER_DEFAULT_BACKOFF_MAX_MS 2000
#define PEER_DEFAULT_HELLO_TIMEOUT_MS 5000
#define PEER_SOCK_HIGH (256u << 10) /* socket output kept below this */
#define PEER_SNAP_CHUNK (64u << 10)
/* Most voters (and, apart, learners) in a message or snapshot's
 * membership: more is refused when sending and malformed when received. */
#define PEER_MAX_CONF_IDS 1024
/* Requests in flight per transport (peer_request: -EAGAIN past it). */
#define PEER_MAX_REQUESTS 1024
/* Largest join request (peer_join_request: -EMSGSIZE past it); an
 * acceptor closes a join stream announcing more, so a stranger cannot
 * make it buffer max_frame bytes. */
#define PEER_MAX_JOIN_BYTES (64u << 10)

/* HELLO_ACK status. */
enum peer_hello_status {
	PEER_HELLO_OK = 0,
	PEER_HELLO_WRONG_CLUSTER = 1,
	PEER_HELLO_WRONG_MEMBER = 2,
	PEER_HELLO_UNKNOWN_SENDER = 3,
	PEER_HELLO_BAD_VERSION = 4,
	PEER_HELLO_NO_SNAPSHOTS = 5,
};

/* Zero fields take the PEER_DEFAULT_* values. */
struct peer_config {
	uint64_t cluster_id; /* both ends must agree */
	uint64_t self_id;    /* != RAFT_NONE */
	size_t max_frame;    /* largest kind+payload accepted or sent, -1 */
	size_t max_queue_bytes, max_queue_msgs; /* per peer */
	size_t max_entries; /* entries in one received message */
	unsigned backoff_min_ms, backoff_max_ms;
	/* Bound on a hello's answer, on a stalled snapshot stream, and on a
	 * message stream whose pending output makes no progress (then it is
	 * closed and redialed). */
	unsigned hello_timeout_ms;
	/* Directory for received snapshots (copied); NULL: refused. */
	const char *snap_dir;
};

/* A received message. m and everything it points to (entries, their
 * data) belong to the transport and are valid only during the call; the
 * callee copies what it keeps (raft_step() does). The callee may call any
 * peer_* function except peer_transport_destroy(). */
typedef void (*peer_msg_fn)(void *arg, const struct raft_msg *m);

struct peer_snap_meta {
	uint64_t term, index; /* of the snapshot, passed through */
	uint64_t size;	      /* a hint for the receiver; 0: unknown */
	/* issue 5: passed through too. The sender's raft term (for
	 * raft_restore), and the membership as of index (arrays owned by
	 * the caller when sending — copied by peer_snapshot_send — by the
	 * transport during on_snap). At most PEER_MAX_CONF_IDS of each. */
	uint64_t raft_term;
	const uint64_t *voters;
	size_t n_voters;
	const uint64_t *learners;
	size_t n_learners;
};

/* A snapshot from member `from` was received whole (length and crc32c
 * checked) into the file path (in snap_dir). The callee owns the file
 * from now on (renames or unlinks it); path is valid during the call.
 * Same re-entrancy rule as peer_msg_fn. */
typedef void (*peer_snap_fn)(void *arg, uint64_t from,
			     const struct peer_snap_meta *meta,
			     const char *path);

/* Produce up to n bytes of a snapshot into buf: returns the count (> 0),
 * 0 at the end, or a negative -errno (the transfer fails with it). */
typedef ssize_t (*peer_snap_read_fn)(void *arg, void *buf, size_t n);

/* The transfer ended: 0 once the receiver acknowledged it stored the
 * snapshot; else -ECONNRESET/-ECONNREFUSED/-EPROTO (connection lost or
 * refused, or a failed store on the receiver), the read function's error,
 * -ECANCELED (peer_remove / peer_transport_destroy). Called exactly once,
 * never from within peer_snapshot_send(). */
typedef void (*peer_snap_done_fn)(void *arg, int err);

/* Drop traffic from -> to? TEST-ONLY fault switch. */
typedef bool (*peer_drop_fn)(void *arg, uint64_t from, uint64_t to);

/* Counters of one peer (peer_stats()). */
struct peer_stats {
	bool connected; /* message stream up (hello accepted) */
	size_t queued_msgs, queued_bytes;
	uint64_t sent_msgs;	 /* handed to the socket */
	uint64_t dropped_queue;	 /* lost to a full queue (either policy) */
	uint64_t dropped_filter; /* cut by the drop filter, both ways */
	uint64_t connects;	 /* hellos accepted on our dials */
	uint64_t refused;	 /* our hellos refused by the peer */
	uint64_t recv_msgs;	 /* delivered to on_msg from this peer */
};

/* Counters of the whole transport (inbound side). */
struct peer_transport_stats {
	uint64_t accepted;   /* inbound connections */
	uint64_t refused;    /* inbound hellos we refused */
	uint64_t bad_frames; /* inbound connections closed as malformed */
	uint64_t snaps_received;
};

/* Create a transport on base (borrowed: must outlive the transport).
 * cfg is copied (snap_dir too). on_msg (not NULL) gets every accepted
 * message, with arg. On 0, *out is the transport; free it with
 * peer_transport_destroy(). Errors: -EINVAL (self_id 0, on_msg NULL,
 * backoff_min > backoff_max), -ENOMEM. */
int peer_transport_create(struct event_base *base,
			  const struct peer_config *cfg, peer_msg_fn on_msg,
			  void *arg, struct peer_transport **out);

/* Close every connection, discard every queue, delete the received
 * snapshot files still partial, and free t. Snapshot sends in flight get
 * their done(-ECANCELED), and every request not yet called back its
 * cb(-ECANCELED) (even one already answered), from inside this call
 * (they must not call peer_* functions then). Answers still owed by
 * request handlers stay valid for peer_reply (which then only frees).
 * Must not be called from a peer_* callback. t may be NULL. */
void peer_transport_destroy(struct peer_transport *t);

/* Received snapshots go to on_snap (NULL: refuse them, the default
 * even with a snap_dir). */
void peer_set_snapshot_handler(struct peer_transport *t, peer_snap_fn on_snap,
			       void *arg);

/* Listen for peers on host:port (a numeric address; port 0 picks one,
 * see peer_listen_port()). One listener per transport. Errors: -EALREADY
 * (already listening), -EINVAL (host not numeric), -errno of
 * socket/bind/listen (e.g. -EADDRINUSE), -ENOMEM. */
int peer_listen(struct peer_transport *t, const char *host, uint16_t port);

/* The bound port of the listener, 0 when not listening. */
uint16_t peer_listen_port(const struct peer_transport *t);

/* Know member id at host:port (host copied; resolved now, blocking for a
 * name) and start dialing it. Errors: -EINVAL (id 0 or self_id),
 * -EEXIST (already known), -EHOSTUNREACH (host does not resolve),
 * -ENOMEM. */
int peer_add(struct peer_transport *t, uint64_t id, const char *host,
	     uint16_t port);

/* Forget member id: close its streams (both directions), discard its
 * queue, cancel its snapshot send (done(-ECANCELED) from inside this
 * call). Errors: -ENOENT (unknown id). */
int peer_remove(struct peer_transport *t, uint64_t id);

/* Queue a copy of m for m->to (m->from is ignored: self_id is sent).
 * Returns 0 (queued, or cut by the drop filter: a cut looks like network
 * loss), -EAGAIN (dropped: the queue is full even after dropping older
 * non-vote messages), -ENOENT (m->to unknown), -EMSGSIZE (encodes to more
 * than max_frame), -EINVAL (m NULL, unknown type, entries NULL with
 * n_entries > 0), -ENOMEM. Never blocks. */
int peer_send(struct peer_transport *t, const struct raft_msg *m);

/* Send a snapshot to member `to` on a stream of its own: meta is copied,
 * read(read_arg, ...) is called on the loop for PEER_SNAP_CHUNK bytes at
 * a time whenever the stream's socket buffer drains, and done(done_arg,
 * err) reports the end (see peer_snap_done_fn). read_arg and done_arg
 * must stay valid until done. Errors (done is then never called):
 * -ENOENT (to unknown), -EBUSY (a snapshot to `to` is in flight),
 * -EINVAL (NULL read or done), -ENOMEM, -ECONNREFUSED (the connection
 * could not even be started, e.g. out of file descriptors). */
int peer_snapshot_send(struct peer_transport *t, uint64_t to,
		       const struct peer_snap_meta *meta,
		       peer_snap_read_fn read, void *read_arg,
		       peer_snap_done_fn done, void *done_arg);

/* The same, reading fd (borrowed; from its current offset to EOF; the
 * caller keeps it open until done and closes it). */
int peer_snapshot_send_fd(struct peer_transport *t, uint64_t to,
			  const struct peer_snap_meta *meta, int fd,
			  peer_snap_done_fn done, void *done_arg);

/* TEST-ONLY fault switch: when drop(arg, from, to) is true, messages of
 * that direction are dropped silently: by peer_send() (from == self_id)
 * and on arrival (to == self_id). Snapshot streams are not filtered. drop
 * NULL heals everything. */
void peer_set_drop_filter(struct peer_transport *t, peer_drop_fn drop,
			  void *arg);

/* ---- requests between members (issue 5) ----------------------------
 *
 * Small request/reply exchanges beside the raft messages: lease
 * keep-alives and time-to-live queries a follower forwards to the leader,
 * member promotion checks forwarded to the leader, and the membership a
 * new member asks for when it joins (--initial-cluster-state existing).
 * Each request gets exactly one reply (or an error) within its timeout.
 * Payloads are opaque bytes, at most max_frame - 16. The drop filter
 * applies to requests and answers as to messages (a cut one times out).
 */
enum peer_req_kind {
	PEER_REQ_JOIN = 1,	/* members: who am I, what cluster (JSON) */
	PEER_REQ_LEASE = 2,	/* lessor: keep-alive (etcdserverpb.
				 * LeaseKeepAliveRequest -> Response) */
	PEER_REQ_PROMOTE = 3,	/* members: may this learner be promoted */
	PEER_REQ_LEASE_TTL = 4, /* lessor: LeaseTimeToLiveRequest ->
				 * Response */
	PEER_REQ_REMOVED = 5,	/* members: you were removed (8-byte id) */
	PEER_REQ_KINDS = 8
};

/* The answer to a request: err 0 and resp/len (valid during the call
 * only), or err < 0: -ETIMEDOUT (no reply in time), -ECONNREFUSED /
 * -ECONNRESET (could not reach, or lost the connection), -ENOENT (the
 * receiver has no handler for kind), -ECANCELED (transport destroyed:
 * then the callee must not call peer_* functions). Called exactly once,
 * never from within the call that sent the request. */
typedef void (*peer_reply_fn)(void *arg, int err, const void *resp, size_t len);

/* Send request `kind` with a copy of req[0..len) to known member `to`;
 * cb(arg, ...) gets the outcome within timeout_ms (> 0). It waits in the
 * peer's queue while the stream is down; the stream failing to come up
 * ends it with -ECONNREFUSED, the stream breaking after it came up with
 * -ECONNRESET, peer_remove(to) with -ECONNRESET.
 * 0, or -ENOENT (to unknown), -EMSGSIZE, -EINVAL (kind 0 or >=
 * PEER_REQ_KINDS, cb NULL, req NULL with len, timeout 0), -EAGAIN
 * (PEER_MAX_REQUESTS in flight, or the peer's queue is full), -ENOMEM
 * (then cb is not called). */
int peer_request(struct peer_transport *t, uint64_t to, uint8_t kind,
		 const void *req, size_t len, unsigned timeout_ms,
		 peer_reply_fn cb, void *arg);

/* The same to host:port as a member that does not know its member id
 * yet (a hello with from = 0, accepted only for PEER_REQ_JOIN requests,
 * and with cluster id 0 = "any"), on a connection of its own closed once
 * answered. The host is resolved now (blocking for a name). Errors as
 * peer_request (but not -ENOENT; -EMSGSIZE past PEER_MAX_JOIN_BYTES),
 * -EHOSTUNREACH (host does not resolve),
 * -ECONNREFUSED (could not even start connecting); later, through cb,
 * -ECONNREFUSED (not reachable, or the hello refused), -ECONNRESET,
 * -EPROTO (a malformed answer), -ETIMEDOUT, -ECANCELED. The answer must
 * come within the acceptor's hello_timeout_ms. */
int peer_join_request(struct peer_transport *t, const char *host, uint16_t port,
		      const void *req, size_t len, unsigned timeout_ms,
		      peer_reply_fn cb, void *arg);

/* Serving requests: fn(arg, from, req, len, rc) for requests of `kind`
 * (from is 0 for a JOIN from an unknown member; req valid during the call
 * only). The handler answers with peer_reply(rc, ...) exactly once, now
 * or later; rc stays valid until then, even past peer_transport_destroy
 * (if the requester or its connection is gone, the reply is dropped). A
 * request of a kind with no handler is answered -ENOENT. fn NULL removes
 * the handler; kinds outside 1..PEER_REQ_KINDS-1 are ignored. */
struct peer_reply_ctx;
typedef void (*peer_request_fn)(void *arg, uint64_t from, const void *req,
				size_t len, struct peer_reply_ctx *rc);
void peer_set_request_handler(struct peer_transport *t, uint8_t kind,
			      peer_request_fn fn, void *arg);
/* Answer: err 0 with resp[0..len) (copied; at most max_frame - 12 bytes,
 * else dropped), or err < 0 which the requester's cb receives as is (use
 * CAIRN_E* codes for errors a client should see; err > 0 is sent as
 * -EINVAL). An answer that cannot be sent (connection gone, its output
 * backed up past 1 MiB, cut by the drop filter) is dropped: the requester
 * times out. Frees rc. */
void peer_reply(struct peer_reply_ctx *rc, int err, const void *resp,
		size_t len);

/* Counters of peer id into *out. Errors: -ENOENT (unknown id). */
int peer_stats(const struct peer_transport *t, uint64_t id,
	       struct peer_stats *out);

void peer_transport_stats(const struct peer_transport *t,
			  struct peer_transport_stats *out);

#endif
