/* server_int: the private parts of one member shared by core/server.c
 * (Ready loop, proposals, reads, peers), core/server_member.c (membership:
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
#include "core/raft/raft.h"
#include "core/server.h"
#include "engines/engine.h"

struct bio;
struct event;
struct mvcc;
struct peer_transport;
struct raft;
struct wal;
struct server_members;
struct server_snap;

#define WAITER_BUCKETS 4096

struct waiter {
	uint64_t id;
	server_done_fn done;
	void *arg;
	struct waiter *next;
};

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

	/* ---- cluster wiring (server.c) ---- */
	struct peer_transport *peers;

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
/* A fresh request id, unique across members (member id bits + time). */
uint64_t server_next_id(struct server *s);
uint64_t server_now_ms(void);

/* ---- server_member.c ---- */

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
void server_snap_close(struct server *s);

#endif
