/* server_int: the private parts of one member shared by core/server.c
 * (Ready loop, peers, timers), core/server_read.c (proposals, linearizable
 * reads), core/server_member.c (membership:
 * bootstrap, join, conf changes, member attributes) and core/server_snap.c
 * (snapshots sent to and received from peers). Nothing outside those
 * files includes it (tests excepted).
 *
 * Each file owns the fields of its section of struct server and the
 * functions it defines below; the others only call them.
 */
#ifndef CAIRN_CORE_SERVER_INT_H
#define CAIRN_CORE_SERVER_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "core/apply.h"
#include "core/members.h"
#include "core/raft/raft.h"
#include "core/server.h"
#include "engines/engine.h"

struct bio;
struct event;
struct mvcc;
struct peer_transport;
struct peer_reply_ctx;
struct raft;
struct wal;
struct server_members;
struct server_snap;

#define WAITER_BUCKETS 4096

struct waiter {
	uint64_t id;
	server_done_fn done;
	void *arg;
	uint64_t start_ms; /* server_now_ms() at server_waiter_add */
	struct waiter *next;
};

struct server_held;
struct server_read;
struct server_read_batch;
struct server_window_slot;

struct server {
	struct event_base *base;
	const struct config *cfg;
	char member_dir[4096];

	struct engine_handle eng;
	struct mvcc *mvcc;
	struct bio *bio;
	struct wal *wal;
	struct raft *raft;
	struct apply_ctx actx;

	uint64_t member_id, cluster_id;
	uint64_t next_req_id;
	uint64_t applied_index, applied_term;
	uint64_t hs_term, hs_vote; /* last term/vote handed to the WAL */
	uint64_t snap_index;	/* last WAL snapshot marker (engine synced) */
	uint64_t marker_saved;	/* a marker waiting for the next WAL sync */
	uint64_t marker_syncing; /* a marker in the WAL sync in flight */

	struct waiter *waiters[WAITER_BUCKETS];
	size_t n_waiters;

	struct {
		mvcc_observer_fn fn;
		void *arg;
	} change_hooks[SERVER_MAX_HOOKS];
	size_t n_change_hooks;
	struct {
		void (*fn)(void *arg);
		void *arg;
	} close_hooks[SERVER_MAX_HOOKS];
	size_t n_close_hooks;

	struct event *tick_ev, *ready_ev, *commit_ev;
	uint64_t uncommitted;	/* entries applied since the engine commit */
	uint64_t engine_synced_ms; /* monotonic time of the last sync commit */
	struct raft_ready rd;
	bool rd_pending; /* a Ready waits for its fsync */
	bool stopping;
	bool closing;	 /* helpers are being drained: callbacks do nothing */
	int fatal;	 /* a WAL write/fsync failed: refuse everything */

	/* ---- cluster wiring (server.c, server_read.c) ---- */
	struct peer_transport *peers;
	bool wal_exists;	   /* member/wal held a WAL when opened */
	uint64_t req_timeout_ms;   /* etcd's: 5 s + 2 x election timeout */
	uint64_t leader;	   /* raft's leader at the last check */
	bool was_leader;	   /* this member led at the last check */
	uint64_t leader_elected_ms; /* when a new leader was last seen */
	uint64_t last_sweep_ms;
	/* proposals held while no leader is known (FIFO) */
	struct server_held *held, *held_tail;
	size_t n_held, held_bytes;
	/* linearizable reads: not yet asked; the one ReadIndex in flight;
	 * answered and waiting for the applied index (FIFO) */
	struct server_read *rq, *rq_tail;
	struct server_read_batch *rb_flight;
	struct server_read_batch *rb_wait, *rb_wait_tail;
	struct {
		void (*fn)(void *arg, bool leader);
		void *arg;
	} leader_hooks[SERVER_MAX_HOOKS];
	size_t n_leader_hooks;
	/* the applied entries raft keeps: sizes by index (a ring) */
	struct server_window_slot *win;
	uint64_t win_bytes; /* sum of len of entries (win_from, applied] */
	uint64_t win_from;  /* raft's compaction point as last seen */

	/* ---- membership (server_member.c) ---- */
	struct server_members *members;

	/* ---- snapshots between members (server_snap.c) ---- */
	struct server_snap *snap;
};


/* ---- server.c, for the other two ---- */

/* Run the Ready loop at the end of this loop turn. */
void server_schedule_ready(struct server *s);
/* A WAL/engine failure: refuse everything from now on (never retried). */
void server_fail_fatal(struct server *s, int err, const char *what);
/* Register / take the waiter of request id (the id inside the proposal). */
int server_waiter_add(struct server *s, uint64_t id, server_done_fn done,
		      void *arg);
struct waiter *server_waiter_take(struct server *s, uint64_t id);
/* The waiter of id, left in place; NULL if none (ended already). */
struct waiter *server_waiter_find(struct server *s, uint64_t id);
/* A fresh request id, unique across members (member id bits + time). */
uint64_t server_next_id(struct server *s);
uint64_t server_now_ms(void);
/* The error of a request that timed out after starting at start_ms:
 * CAIRN_ETIMEOUT_LEADER_FAIL if a new leader was elected since, else
 * CAIRN_ETIMEOUT. */
int server_timeout_error(const struct server *s, uint64_t start_ms);
/* Members in raft's applied configuration (voters + learners); the
 * voters alone in *n_voters when not NULL. */
size_t server_conf_size(const struct server *s, size_t *n_voters);

/* ---- server_read.c, for server.c ---- */

/* Held proposals (a proposal made while no leader is known). data: the
 * wrapped request, taken (freed on failure too). 0, or
 * CAIRN_ETOO_MANY_REQUESTS, -ENOMEM. The waiter of id is the caller's. */
int server_held_add(struct server *s, uint64_t id, uint8_t *data, size_t len);
/* Hand the held proposals to raft while it takes them (a leader known). */
void server_held_flush(struct server *s);
/* Fail those held past their deadline through their waiters. */
void server_held_sweep(struct server *s, uint64_t now_ms);
void server_held_fail_all(struct server *s, int err);
/* Linearizable reads: ask for a read index if reads wait and none is in
 * flight; take the read states of rd; serve those whose index is
 * applied; fail or re-ask at deadlines; fail the one in flight (leader
 * changed); fail all (close, fatal). */
void server_reads_kick(struct server *s);
void server_reads_on_states(struct server *s, const struct raft_ready *rd);
void server_reads_check_applied(struct server *s);
void server_reads_sweep(struct server *s, uint64_t now_ms);
void server_reads_leader_changed(struct server *s);
void server_reads_fail_all(struct server *s, int err);

/* ---- server_member.c, server_join.c ---- */

struct move_wait;

struct server_members {
	struct members ms;	  /* applied membership (invariant 1) */
	bool removed;		  /* removed: shutting down */
	struct event *publish_ev; /* retries publishing our attributes */
	uint64_t publish_id;	  /* request id of the last attempt */
	bool published;
	bool publish_warned;
	bool restore_hooked;	 /* server_on_restore done (or failed) */
	struct move_wait *moves; /* MoveLeader calls waiting */
	struct event *probe_ev;	 /* leaderless: were we removed? */
	unsigned leaderless;	 /* probe periods without a leader */
	size_t probe_next;	 /* the member asked next */
};

/* server_join.c: ask the cluster who we are (--initial-cluster-state
 * existing with no data): fills s->member_id, s->cluster_id and
 * s->members->ms. 0, or an error described in errbuf. */
int server_join_open(struct server *s, char *errbuf, size_t errlen);
/* server_join.c: the PEER_REQ_JOIN handler (arg: the server). */
void server_join_serve(void *arg, uint64_t from, const void *req, size_t len,
		       struct peer_reply_ctx *rc);
/* The n URLs of u formatted as strings (config_url_format), in an array
 * of n + 1 for members_strv_free; NULL without memory. */
struct config_url;
char **server_members_format_urls(const struct config_url *u, size_t n);


/* After open_storage, before the WAL opens: decide this member's id, the
 * cluster id and the membership (from the engine's members bucket; or,
 * for a new member, from --initial-cluster, or for
 * --initial-cluster-state existing, by asking a peer), and create
 * s->members. 0 or an error described in errbuf. */
int server_members_open(struct server *s, char *errbuf, size_t errlen);
/* The membership raft starts with (cap: array sizes). */
void server_members_conf(struct server *s, uint64_t *voters, size_t *n_voters,
			 uint64_t *learners, size_t *n_learners, size_t cap);
/* After raft and the peer transport exist: add every other member to
 * the transport, and start publishing this member's attributes. */
int server_members_start(struct server *s);
/* apply_committed calls this first for every committed entry. It applies
 * CONF_CHANGE entries (members bucket, raft_apply_conf_change, peers) and
 * the member-attribute requests, sets *id to the request id inside (0:
 * none) and *out, and returns true; false: not a membership entry. */
bool server_members_apply(struct server *s, const struct raft_entry *e,
			  uint64_t *id, struct apply_out *out);
void server_members_close(struct server *s);

/* ---- server_snap.c ---- */

/* After the peer transport exists: receive snapshots from peers. */
int server_snap_open(struct server *s);
/* The Ready loop hands every RAFT_MSG_SNAP here instead of peer_send():
 * stream the image at the applied index and report to raft when done. */
void server_snap_send(struct server *s, const struct raft_msg *m);
/* Called when no Ready is outstanding: install a received image that
 * waits (raft_restore needs no outstanding ready). */
void server_snap_poll(struct server *s);
/* Ends every transfer in flight and
 * forgets the handler; call it before peer_transport_destroy and before
 * the engine closes (a transfer holds an engine view). */
void server_snap_close(struct server *s);
/* At start, after the WAL replay (snap_index: its last snapshot marker)
 * and before raft starts: when the engine holds less than the marker (a
 * crash in the middle of an install), put the received image
 * member/snap/<snap_index>.snap.db in place of the engine data and reload
 * MVCC (s->applied_index follows). Also deletes leftovers of unfinished
 * installs. 0 (also when there is nothing to do), or an error described
 * in errbuf. */
int server_snap_recover(struct server *s, uint64_t snap_index, char *errbuf,
			size_t errlen);
/* The image format alone (server_snap.c documents it), for tests and
 * tools. write: the image of h's committed data (an engine read view, so
 * writes may go on), labelled index/term, to fd. 0, the engine's -errno,
 * CAIRN_ECORRUPT (a pair too large for the format), -errno of write.
 * build: the image file at `image` (consumed: unlinked) into a new engine
 * `backend` at out (removed first if present; removed again on error),
 * synced. 0, CAIRN_ECORRUPT (not an image of index/term, truncated,
 * malformed), -ENOMEM, the engine's -errno. */
struct engine_handle;
int server_snap_image_write(struct engine_handle *h, uint64_t index,
			    uint64_t term, int fd);
int server_snap_image_build(const char *image, const char *backend,
			    const char *out, uint64_t index, uint64_t term);

#endif
