/* server: one member's glue — see server.h for the write path.
 *
 * Invariants:
 *  1. Persist before acknowledge: a waiter hears back only after its entry
 *     was fdatasync'ed in the WAL, committed by raft and applied.
 *  2. At most one Ready is outstanding; while its fsync runs, proposals
 *     accumulate in raft and form the next batch (group commit).
 *  3. The engine batch of one apply round carries the applied index
 *     (consistent index), so replay after a crash is idempotent: raft
 *     hands out only entries after it.
 *  4. No callback frees the server.
 *  5. Every waiter ends exactly once: at apply, or failed by the sweep
 *     past the request timeout, or at close (server_read.c for held
 *     proposals and reads).
 *  6. Raft keeps at most RAFT_KEEP_ENTRIES / RAFT_KEEP_BYTES applied
 *     entries (plus one trim step) when the cluster has other members; a
 *     follower further behind gets a snapshot (server_snap.c).
 *
 * Ready loop:
 *
 *     propose/tick/step ──► ready_ev (low priority: after this turn's I/O)
 *          process_ready: raft_ready ─► send msgs ─► apply committed
 *                         ─► engine commit ─► read states
 *                         ─► wal_save + wal_sync (helper thread)
 *     on_synced: raft_persisted ─► raft_advance ─► process_ready
 *     (end of process_ready: leader change? ─► hooks, held proposals)
 *     tick: raft_tick, sweep of deadlines (waiters, held, reads)
 *
 * Proposals and linearizable reads are in server_read.c.
 */
#include "core/server_int.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "core/raft/raft.h"
#include "core/util/bio.h"
#include "core/util/log.h"
#include "engines/engine.h"
#include "net/peer.h"
#include "raftlog/wal.h"

/* Entries kept in raft's memory behind the applied index, for followers
 * that fall a little behind: etcd's 5000, and at most RAFT_KEEP_BYTES of
 * entry data (a txn of 128 puts makes a 16 KiB entry: 5000 of them would
 * be 80 MiB). A lone member has no follower to catch up, so it keeps
 * none. Trimmed in steps of RAFT_TRIM_STEP entries so the cost is
 * amortized. The ring remembers the sizes of the entries kept. */
#define RAFT_KEEP_ENTRIES 5000
#define RAFT_KEEP_BYTES (64ull << 20)
#define RAFT_TRIM_STEP 64
#define WINDOW_RING 8192 /* power of two > RAFT_KEEP_ENTRIES + step */
/* Waiters, held proposals and reads are swept at most this often. */
#define SWEEP_MS 50
/* etcd's ReqTimeout: 5 s + 2 x election timeout. */
#define REQ_TIMEOUT_BASE_MS 5000
/* Entry bytes per APP message (etcd's MaxSizePerMsg). */
#define RAFT_MAX_MSG_BYTES (1u << 20)
/* Members (voters, learners) the server handles. */
#define SERVER_MAX_MEMBERS 64
/* The engine batch is committed (without fsync) at most this often or
 * after this many applied entries, whichever comes first: etcd's
 * --backend-batch-interval and --backend-batch-limit defaults. Reads do
 * not wait for it: MVCC serves uncommitted revisions from its buffer. An
 * engine commit per loop turn would rewrite the same pages over and over
 * (measured: 13 KB written per put with one client on sqlite). */
#define ENGINE_BATCH_MS 100
#define ENGINE_BATCH_LIMIT 10000
/* And with fsync at most this often: an engine keeps the pages of its
 * last synced state until the next synced commit (bolt, for power-loss
 * safety), so rare syncs would let the file grow by a copy of the tree.
 * Costs the loop one engine fsync per interval under writes. */
#define ENGINE_SYNC_MS 5000

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- waiters ---------------------------------------------------------- */

static struct waiter **waiter_slot(struct server *s, uint64_t id)
{
	struct waiter **w = &s->waiters[(id * 0x9E3779B97F4A7C15ull) >> 52];

	while (*w && (*w)->id != id)
		w = &(*w)->next;
	return w;
}

int server_waiter_add(struct server *s, uint64_t id, server_done_fn done,
		      void *arg)
{
	struct waiter **slot = waiter_slot(s, id);
	struct waiter *w = malloc(sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->id = id;
	w->done = done;
	w->arg = arg;
	w->start_ms = server_now_ms();
	w->next = NULL;
	*slot = w;
	s->n_waiters++;
	return 0;
}

struct waiter *server_waiter_find(struct server *s, uint64_t id)
{
	return *waiter_slot(s, id);
}

struct waiter *server_waiter_take(struct server *s, uint64_t id)
{
	struct waiter **slot = waiter_slot(s, id);
	struct waiter *w = *slot;

	if (w) {
		*slot = w->next;
		w->next = NULL;
		s->n_waiters--;
	}
	return w;
}

/* A request that timed out while a new leader was elected most likely
 * went to the failed one (etcd's ErrTimeoutDueToLeaderFail). */
int server_timeout_error(const struct server *s, uint64_t start_ms)
{
	if (s->leader_elected_ms > start_ms)
		return CAIRN_ETIMEOUT_LEADER_FAIL;
	return CAIRN_ETIMEOUT;
}

/* Fail the waiters older than the request timeout: their entry was lost
 * (a leader change overwrote it, a forwarded proposal was dropped) or
 * the cluster cannot commit. */
static void waiters_sweep(struct server *s, uint64_t now)
{
	for (size_t b = 0; b < WAITER_BUCKETS && s->n_waiters; b++) {
		struct waiter **pw = &s->waiters[b];

		while (*pw) {
			struct waiter *w = *pw;
			struct apply_out out = {0};

			if (now - w->start_ms < s->req_timeout_ms) {
				pw = &w->next;
				continue;
			}
			*pw = w->next;
			s->n_waiters--;
			out.err = server_timeout_error(s, w->start_ms);
			w->done(w->arg, &out);
			free(w);
		}
	}
}

static void waiters_fail_all(struct server *s, int err)
{
	for (size_t b = 0; b < WAITER_BUCKETS; b++)
		while (s->waiters[b]) {
			struct waiter *w = s->waiters[b];
			struct apply_out out = {.err = err};

			s->waiters[b] = w->next;
			w->done(w->arg, &out);
			free(w);
		}
	s->n_waiters = 0;
}

/* ---- leadership ---------------------------------------------------------- */

size_t server_conf_size(const struct server *s, size_t *n_voters)
{
	uint64_t v[1], l[1];
	size_t nv = 0, nl = 0;

	raft_conf(s->raft, v, &nv, l, &nl, 0);
	if (n_voters)
		*n_voters = nv;
	return nv + nl;
}

/* After every Ready (and tick): a new leader releases what waited for
 * one; a change of leader fails the ReadIndex in flight (etcd's "leader
 * changed"); a change of role calls the leader hooks. */
static void note_leader(struct server *s)
{
	uint64_t lead = raft_leader(s->raft);
	bool leading = raft_role(s->raft) == RAFT_LEADER;

	if (lead != s->leader) {
		log_info("member %llx: leader %llx -> %llx at term %llu",
			 (unsigned long long)s->member_id,
			 (unsigned long long)s->leader,
			 (unsigned long long)lead,
			 (unsigned long long)raft_term(s->raft));
		s->leader = lead;
		if (lead != RAFT_NONE)
			s->leader_elected_ms = server_now_ms();
		server_reads_leader_changed(s);
	}
	if (leading != s->was_leader && !s->stopping) {
		s->was_leader = leading;
		for (size_t i = 0; i < s->n_leader_hooks; i++)
			s->leader_hooks[i].fn(s->leader_hooks[i].arg, leading);
	}
	if (lead != RAFT_NONE) {
		server_held_flush(s);
		server_reads_kick(s);
	}
}

int server_on_leader_change(struct server *s,
			    void (*fn)(void *arg, bool leader), void *arg)
{
	if (s->n_leader_hooks == SERVER_MAX_HOOKS)
		return -ENOSPC;
	s->leader_hooks[s->n_leader_hooks].fn = fn;
	s->leader_hooks[s->n_leader_hooks].arg = arg;
	s->n_leader_hooks++;
	return 0;
}

/* ---- the raft log window ------------------------------------------------- */

struct server_window_slot {
	uint64_t index, len;
};

static uint64_t window_len(const struct server *s, uint64_t index)
{
	const struct server_window_slot *w = &s->win[index & (WINDOW_RING - 1)];

	return w->index == index ? w->len : 0;
}

static void window_add(struct server *s, uint64_t index, size_t len)
{
	struct server_window_slot *w = &s->win[index & (WINDOW_RING - 1)];

	if (w->index > s->win_from)
		s->win_bytes -= w->len; /* more than the ring in one round */
	w->index = index;
	w->len = len;
	s->win_bytes += len;
}

/* raft's log now starts after from (a restore, or a trim). */
static void window_reset(struct server *s, uint64_t from)
{
	s->win_from = from;
	s->win_bytes = 0;
	for (size_t i = 0; i < WINDOW_RING; i++)
		if (s->win[i].index > from)
			s->win_bytes += s->win[i].len;
}

/* Keep RAFT_KEEP_ENTRIES applied entries in raft (none for a lone
 * member), and at most RAFT_KEEP_BYTES of their data. */
static void trim_raft_log(struct server *s)
{
	uint64_t first = raft_first_index(s->raft), idx, term, bytes;
	/* raft learns of this round's applies only at raft_advance */
	uint64_t applied = raft_applied_index(s->raft);
	uint64_t keep = server_conf_size(s, NULL) > 1 ? RAFT_KEEP_ENTRIES : 0;

	if (first == 0 || applied == 0)
		return;
	if (first - 1 != s->win_from)
		window_reset(s, first - 1);
	idx = s->win_from;
	if (applied >= first + keep + RAFT_TRIM_STEP)
		idx = applied - keep;
	bytes = s->win_bytes;
	for (uint64_t i = s->win_from + 1; i <= idx; i++)
		bytes -= window_len(s, i);
	if (bytes > RAFT_KEEP_BYTES)
		while (idx < applied && bytes > RAFT_KEEP_BYTES / 4 * 3)
			bytes -= window_len(s, ++idx);
	if (idx <= s->win_from || raft_entry_term(s->raft, idx, &term) < 0)
		return;
	raft_compact(s->raft, idx, term);
	if (raft_first_index(s->raft) == idx + 1) {
		s->win_from = idx;
		s->win_bytes = bytes;
	}
}

/* ---- the peer transport -------------------------------------------------- */

static void on_peer_msg(void *arg, const struct raft_msg *m)
{
	struct server *s = arg;
	int err;

	if (s->stopping || s->fatal)
		return;
	err = raft_step(s->raft, m);
	if (err == CAIRN_ECORRUPT) {
		server_fail_fatal(s, err,
				  "raft (a leader rewrote a committed entry)");
		return;
	}
	if (err < 0)
		log_debug("raft message %d from %llx dropped: %s", (int)m->type,
			  (unsigned long long)m->from, cairn_strerror(err));
	server_schedule_ready(s);
}

/* rd.msgs go out at once (raft.h: nothing in them waits for this
 * Ready's fsync); a snapshot streams on its own (server_snap.c). Lost
 * messages are retried by raft. */
static void send_msgs(struct server *s, const struct raft_ready *rd)
{
	for (size_t i = 0; i < rd->n_msgs && s->peers; i++) {
		const struct raft_msg *m = &rd->msgs[i];
		int err;

		if (m->type == RAFT_MSG_SNAP) {
			server_snap_send(s, m);
			continue;
		}
		err = peer_send(s->peers, m);
		if (err < 0 && err != -EAGAIN)
			log_debug("cannot send raft message %d to %llx: %s",
				  (int)m->type, (unsigned long long)m->to,
				  strerror(-err));
	}
}

/* The transport, listening on the first --listen-peer-urls URL (always,
 * also for a lone member, as etcd does). */
static int open_peers(struct server *s, char *errbuf, size_t errlen)
{
	struct peer_config pc = {0};
	char snap_dir[4200];
	const struct config_url *u;
	const char *host;
	size_t frame = 2 * s->cfg->max_request_bytes + RAFT_MAX_MSG_BYTES;
	int err;

	snprintf(snap_dir, sizeof(snap_dir), "%s/snap", s->member_dir);
	pc.cluster_id = s->cluster_id;
	pc.self_id = s->member_id;
	pc.max_frame =
		frame > PEER_DEFAULT_MAX_FRAME ? frame : PEER_DEFAULT_MAX_FRAME;
	pc.max_queue_bytes = 4 * pc.max_frame > PEER_DEFAULT_QUEUE_BYTES
				     ? 4 * pc.max_frame
				     : PEER_DEFAULT_QUEUE_BYTES;
	pc.snap_dir = snap_dir;
	err = peer_transport_create(s->base, &pc, on_peer_msg, s, &s->peers);
	if (err < 0) {
		snprintf(errbuf, errlen, "cannot create the peer transport: %s",
			 strerror(-err));
		return err;
	}
	if (s->cfg->n_listen_peer_urls == 0)
		return 0;
	u = &s->cfg->listen_peer_urls[0];
	if (strcmp(u->scheme, "http") != 0) {
		snprintf(errbuf, errlen,
			 "--listen-peer-urls %s://%s:%u: only http is "
			 "supported so far",
			 u->scheme, u->host, u->port);
		return -EPROTONOSUPPORT;
	}
	host = strcmp(u->host, "localhost") == 0 ? "127.0.0.1" : u->host;
	err = peer_listen(s->peers, host, u->port);
	if (err < 0)
		snprintf(errbuf, errlen, "cannot listen for peers on %s:%u: %s",
			 u->host, u->port, strerror(-err));
	return err;
}

/* ---- the Ready loop --------------------------------------------------- */

void server_schedule_ready(struct server *s)
{
	if (!s->rd_pending && !s->stopping)
		event_active(s->ready_ev, 0, 0);
}

uint64_t server_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Commit the engine batch now (no fsync: the WAL is the durability).
 * An error is fatal for the caller: MVCC's index would be ahead of the
 * engine (mvcc.h), and a restart replays the WAL from the engine's
 * index. */
int server_commit(struct server *s)
{
	uint64_t now;
	bool sync;
	int err;

	if (s->uncommitted == 0)
		return 0;
	now = server_now_ms();
	sync = now - s->engine_synced_ms >= ENGINE_SYNC_MS;
	err = mvcc_commit(s->mvcc, sync);
	if (err == 0) {
		s->uncommitted = 0;
		if (sync)
			s->engine_synced_ms = now;
	}
	return err;
}

static int schedule_commit(struct server *s)
{
	struct timeval tv = {0, ENGINE_BATCH_MS * 1000};

	if (evtimer_pending(s->commit_ev, NULL))
		return 0;
	return evtimer_add(s->commit_ev, &tv) < 0 ? -EIO : 0;
}

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	int err;

	(void)fd;
	(void)what;
	if (s->fatal)
		return;
	if ((err = server_commit(s)) < 0)
		server_fail_fatal(s, err, "engine commit");
}

/* Every --snapshot-count applied entries: make the engine durable, then
 * write a WAL snapshot marker so replay starts after it and older WAL
 * segments can go (etcd's snapshot + WAL purge, minus the .snap file,
 * since the engine itself is the snapshot of a one-member cluster).
 * The sync commit blocks the loop for one fsync per snapshot-count
 * entries. */
static void maybe_snapshot(struct server *s)
{
	int err;

	if (s->applied_index - s->snap_index < s->cfg->snapshot_count)
		return;
	err = mvcc_commit(s->mvcc, true);
	if (err == 0) {
		s->uncommitted = 0;
		err = wal_save_snapshot(s->wal, s->applied_index,
					s->applied_term);
	}
	if (err < 0) {
		log_warn("snapshot at index %llu failed: %s",
			 (unsigned long long)s->applied_index,
			 cairn_strerror(err));
		return;
	}
	s->snap_index = s->applied_index;
	s->marker_saved = s->snap_index;
}

static void apply_committed(struct server *s, const struct raft_entry *ents,
			    size_t n)
{
	int err;

	if (n == 0)
		return;
	s->actx.raft_term = raft_term(s->raft);
	for (size_t i = 0; i < n; i++) {
		const struct raft_entry *e = &ents[i];
		struct apply_out out;
		struct waiter *w = NULL;
		uint64_t id = 0;
		bool sys_err;

		if (e->index <= s->applied_index)
			continue; /* replayed and already in the engine */
		if (e->len > 0 || e->type != RAFT_ENTRY_NORMAL) {
			/* apply first to learn the id, then find its waiter:
			 * only a local proposal has one. Membership entries
			 * (conf changes, member attributes) first. */
			memset(&out, 0, sizeof(out));
			if (!server_members_apply(s, e, &id, &out))
				apply_entry(&s->actx, e->data, e->len,
					    s->n_waiters > 0, &id, &out);
			sys_err = out.err < 0 && out.err > CAIRN_EBASE;
			w = id ? server_waiter_take(s, id) : NULL;
			if (w) {
				w->done(w->arg, &out);
				free(w);
			} else {
				free(out.buf);
			}
			if (sys_err) {
				/* a client error (CAIRN_E*) changes nothing; a
				 * system error (-errno: memory, the engine) may
				 * have left a request half applied: stop before
				 * the engine commits it, as etcd panics */
				server_fail_fatal(s, out.err, "apply");
				return;
			}
		}
		s->applied_index = e->index;
		s->applied_term = e->term;
		window_add(s, e->index, e->len);
	}
	/* the applied index goes into the same engine batch (inv. 3) */
	err = mvcc_set_consistent_index(s->mvcc, s->applied_index);
	if (err == 0) {
		s->uncommitted += n;
		err = s->uncommitted >= ENGINE_BATCH_LIMIT
			      ? server_commit(s)
			      : schedule_commit(s);
	}
	if (err < 0) {
		server_fail_fatal(s, err, "engine commit");
		return;
	}
	trim_raft_log(s);
	maybe_snapshot(s);
}

static void on_synced(void *arg, int status);

/* A Ready must be fsynced before it is acknowledged when it carries
 * entries or changes the term or vote (what a vote or an append promised
 * must survive a crash); a commit-index-only change need not. */
static bool must_sync(const struct server *s, const struct raft_ready *rd)
{
	return rd->n_entries > 0 || rd->hs.term != s->hs_term ||
	       rd->hs.vote != s->hs_vote;
}

static int save_hard_state(struct server *s, const struct raft_hard_state *h)
{
	struct wal_hard_state hs = {h->term, h->vote, h->commit};

	s->hs_term = h->term;
	s->hs_vote = h->vote;
	return wal_save(s->wal, &hs, NULL, 0);
}

static int persist_ready(struct server *s, const struct raft_ready *rd)
{
	struct wal_entry stack[64] = {{0}}, *ents = stack;
	struct wal_hard_state hs;
	int err;

	if (rd->n_entries > 64) {
		ents = malloc(sizeof(*ents) * rd->n_entries);
		if (!ents)
			return -ENOMEM;
	}
	for (size_t i = 0; i < rd->n_entries; i++) {
		ents[i].index = rd->entries[i].index;
		ents[i].term = rd->entries[i].term;
		ents[i].type = rd->entries[i].type;
		ents[i].data = rd->entries[i].data;
		ents[i].len = rd->entries[i].len;
	}
	hs.term = rd->hs.term;
	hs.vote = rd->hs.vote;
	hs.commit = rd->hs.commit;
	if (rd->hard_state_changed) {
		s->hs_term = hs.term;
		s->hs_vote = hs.vote;
	}
	err = wal_save(s->wal, rd->hard_state_changed ? &hs : NULL, ents,
		       rd->n_entries);
	if (ents != stack)
		free(ents);
	if (err < 0)
		return err;
	err = wal_sync(s->wal, s->bio, on_synced, s);
	if (err == 0 && s->marker_saved) {
		s->marker_syncing = s->marker_saved; /* rides this sync */
		s->marker_saved = 0;
	}
	return err;
}

void server_fail_fatal(struct server *s, int err, const char *what)
{
	/* never retry an fsync: the page cache state is unknown */
	log_error("%s failed: %s; refusing further writes", what,
		  cairn_strerror(err));
	s->fatal = err;
	waiters_fail_all(s, CAIRN_ESTOPPED);
	server_held_fail_all(s, CAIRN_ESTOPPED);
	server_reads_fail_all(s, CAIRN_ESTOPPED);
}

static void process_ready(struct server *s)
{
	/* a received snapshot installs only between Readies */
	if (!s->rd_pending && !s->fatal && !s->stopping)
		server_snap_poll(s);
	while (!s->rd_pending && !s->fatal && raft_has_ready(s->raft)) {
		int err;

		raft_ready(s->raft, &s->rd);
		/* appends go out in parallel with our own fsync (raft.h) */
		send_msgs(s, &s->rd);
		/* committed entries are already durable: apply them while
		 * this Ready's new entries go to disk */
		apply_committed(s, s->rd.committed, s->rd.n_committed);
		if (s->fatal)
			return;
		server_reads_on_states(s, &s->rd);
		if (s->rd.n_entries == 0 && !s->rd.hard_state_changed) {
			raft_advance(s->raft, &s->rd);
			continue;
		}
		if (!must_sync(s, &s->rd)) {
			/* only the commit index moved: it can be recovered, so
			 * it rides along with the next fsync (etcd's MustSync) */
			err = save_hard_state(s, &s->rd.hs);
			if (err < 0) {
				server_fail_fatal(s, err, "WAL write");
				return;
			}
			raft_advance(s->raft, &s->rd);
			continue;
		}
		err = persist_ready(s, &s->rd);
		if (err < 0) {
			server_fail_fatal(s, err, "WAL write");
			return;
		}
		s->rd_pending = true;
	}
	if (s->fatal)
		return;
	server_reads_check_applied(s);
	note_leader(s);
}

static void on_synced(void *arg, int status)
{
	struct server *s = arg;
	const struct raft_ready *rd = &s->rd;

	if (s->closing) {
		s->rd_pending = false;
		return;
	}
	if (status < 0) {
		server_fail_fatal(s, status, "WAL fsync");
		s->rd_pending = false;
		return;
	}
	/* durable now: only this lets the leader count itself (inv. 1) */
	if (rd->n_entries > 0) {
		const struct raft_entry *last = &rd->entries[rd->n_entries - 1];

		raft_persisted(s->raft, last->index, last->term);
	}
	raft_advance(s->raft, &s->rd);
	s->rd_pending = false;
	if (s->marker_syncing) {
		/* the marker is durable now: older segments may go */
		if (wal_release_to(s->wal, s->marker_syncing) < 0)
			log_warn("cannot delete old WAL segments");
		s->marker_syncing = 0;
	}
	process_ready(s);
}

static void ready_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	process_ready(arg);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *s = arg;
	uint64_t now = server_now_ms();

	(void)fd;
	(void)what;
	raft_tick(s->raft);
	if (now - s->last_sweep_ms >= SWEEP_MS && !s->fatal) {
		s->last_sweep_ms = now;
		server_held_flush(s);
		server_held_sweep(s, now);
		waiters_sweep(s, now);
		server_reads_sweep(s, now);
	}
	server_schedule_ready(s);
}

/* ---- proposals and reads ------------------------------------------------ */

uint64_t server_next_id(struct server *s)
{
	return s->next_req_id++;
}

struct apply_ctx *server_apply_ctx(struct server *s)
{
	s->actx.raft_term = raft_term(s->raft);
	return &s->actx;
}

uint64_t server_member_id(const struct server *s)
{
	return s->member_id;
}

uint64_t server_leader(const struct server *s)
{
	return raft_leader(s->raft);
}

struct peer_transport *server_peers(const struct server *s)
{
	return s->peers;
}

const struct config *server_config(const struct server *s)
{
	return s->cfg;
}

void server_get_status(struct server *s, struct server_status *st)
{
	memset(st, 0, sizeof(*st));
	st->member_id = s->member_id;
	st->cluster_id = s->cluster_id;
	st->leader = raft_leader(s->raft);
	st->term = raft_term(s->raft);
	st->commit_index = raft_commit_index(s->raft);
	st->applied_index = s->applied_index;
	st->is_learner = server_is_learner(s);
	st->revision = mvcc_rev(s->mvcc);
	st->engine = s->eng.ops->name;
	engine_size(&s->eng, &st->db_size, &st->db_in_use);
}

int server_defrag(struct server *s)
{
	int err = server_commit(s);

	if (err < 0)
		return err;
	mvcc_release_view(s->mvcc); /* defrag wants no open views */
	return engine_defrag(&s->eng);
}

/* ---- hooks ----------------------------------------------------------- */

static void on_change(void *arg, int type, const struct mvcc_kv *kv,
		      const struct mvcc_kv *prev)
{
	struct server *s = arg;

	for (size_t i = 0; i < s->n_change_hooks; i++)
		s->change_hooks[i].fn(s->change_hooks[i].arg, type, kv, prev);
}

int server_on_change(struct server *s, mvcc_observer_fn fn, void *arg)
{
	if (s->n_change_hooks == SERVER_MAX_HOOKS)
		return -ENOSPC;
	s->change_hooks[s->n_change_hooks].fn = fn;
	s->change_hooks[s->n_change_hooks].arg = arg;
	if (s->n_change_hooks++ == 0)
		mvcc_set_observer(s->mvcc, on_change, s);
	return 0;
}

int server_on_close(struct server *s, void (*fn)(void *arg), void *arg)
{
	if (s->n_close_hooks == SERVER_MAX_HOOKS)
		return -ENOSPC;
	s->close_hooks[s->n_close_hooks].fn = fn;
	s->close_hooks[s->n_close_hooks].arg = arg;
	s->n_close_hooks++;
	return 0;
}

struct event_base *server_event_base(const struct server *s)
{
	return s->base;
}

struct bio *server_bio(const struct server *s)
{
	return s->bio;
}

struct mvcc *server_mvcc(const struct server *s)
{
	return s->mvcc;
}

struct engine_handle *server_engine(struct server *s)
{
	return &s->eng;
}

bool server_is_leader(const struct server *s)
{
	return raft_leader(s->raft) == s->member_id;
}

/* ---- open / close ------------------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int open_storage(struct server *s, char *errbuf, size_t errlen)
{
	struct engine_config ecfg = {0};
	char path[4200];
	int err;

	snprintf(s->member_dir, sizeof(s->member_dir), "%s/member",
		 s->cfg->data_dir);
	snprintf(path, sizeof(path), "%s/snap", s->member_dir);
	if ((err = mkdir_p(path, 0700)) < 0) {
		snprintf(errbuf, errlen, "cannot create %s: %s", path,
			 strerror(-err));
		return err;
	}
	snprintf(path, sizeof(path), "%s/snap/db", s->member_dir);
	ecfg.quota_bytes = s->cfg->quota_backend_bytes;
	err = engine_open(s->cfg->backend, path, &ecfg, &s->eng);
	if (err < 0) {
		snprintf(errbuf, errlen, "cannot open %s engine at %s: %s",
			 s->cfg->backend, path, cairn_strerror(err));
		return err;
	}
	err = mvcc_open(&s->eng, &s->mvcc);
	if (err < 0) {
		snprintf(errbuf, errlen, "cannot load the key index from %s: %s",
			 path, cairn_strerror(err));
		return err;
	}
	s->applied_index = mvcc_consistent_index(s->mvcc);
	return 0;
}

/* The WAL must cover the engine: a snapshot marker is written only after
 * the engine synced, and the log must reach the engine's applied index. */
static int check_replay(struct server *s, const struct wal_replay *rp,
			char *errbuf, size_t errlen)
{
	uint64_t last = rp->n_entries ? rp->entries[rp->n_entries - 1].index
				      : rp->snap_index;

	if (s->applied_index > last) {
		snprintf(errbuf, errlen,
			 "the engine holds index %llu but the WAL in %s/wal "
			 "ends at %llu",
			 (unsigned long long)s->applied_index, s->member_dir,
			 (unsigned long long)last);
		return CAIRN_ECORRUPT;
	}
	if (s->applied_index < rp->snap_index) {
		snprintf(errbuf, errlen,
			 "the WAL in %s/wal was purged to index %llu but the "
			 "engine holds only %llu",
			 s->member_dir, (unsigned long long)rp->snap_index,
			 (unsigned long long)s->applied_index);
		return CAIRN_ECORRUPT;
	}
	return 0;
}

/* One tick per --heartbeat-interval; voters and learners from the
 * membership (server_member.c), in the caller's arrays. */
static void raft_config_init(struct server *s, struct raft_config *rc,
			     uint64_t *voters, uint64_t *learners)
{
	size_t nv = 0, nl = 0;

	server_members_conf(s, voters, &nv, learners, &nl, SERVER_MAX_MEMBERS);
	rc->id = s->member_id;
	rc->voters = voters;
	rc->n_voters = nv;
	rc->learners = learners;
	rc->n_learners = nl;
	rc->heartbeat_tick = 1;
	rc->election_tick = (int)(s->cfg->election_ms / s->cfg->heartbeat_ms);
	if (rc->election_tick < 2)
		rc->election_tick = 10;
	rc->pre_vote = true;
	rc->check_quorum = true;
	rc->max_msg_entries = 1024;
	rc->max_inflight = 256;
	rc->max_msg_bytes = RAFT_MAX_MSG_BYTES;
}

/* Start raft from the WAL replay. Entries up to the engine's applied index
 * replayed without data (wal_open_after) and stay out of raft: its log
 * starts after them, with the applied entry as its compaction point. */
static int start_raft(struct server *s, struct wal_replay *rp, char *errbuf,
		      size_t errlen)
{
	struct raft_config rc = {0};
	struct raft_hard_state hs = {0};
	struct raft_entry *ents = NULL;
	uint64_t voters[SERVER_MAX_MEMBERS], learners[SERVER_MAX_MEMBERS];
	size_t skip = 0, n;
	int err = check_replay(s, rp, errbuf, errlen);

	if (err < 0)
		return err;
	raft_config_init(s, &rc, voters, learners);
	rc.snap_index = rp->snap_index;
	rc.snap_term = rp->snap_term;
	while (skip < rp->n_entries &&
	       rp->entries[skip].index <= s->applied_index) {
		rc.snap_index = rp->entries[skip].index;
		rc.snap_term = rp->entries[skip].term;
		skip++;
	}
	s->applied_term = rc.snap_term;
	s->snap_index = rp->snap_index;
	n = rp->n_entries - skip;
	if (n && !(ents = calloc(n, sizeof(*ents))))
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct wal_entry *w = &rp->entries[skip + i];

		ents[i].index = w->index;
		ents[i].term = w->term;
		ents[i].type = w->type;
		ents[i].data = (uint8_t *)w->data;
		ents[i].len = w->len;
	}
	if (rp->has_hs) {
		hs.term = rp->hs.term;
		hs.vote = rp->hs.vote;
		hs.commit = rp->hs.commit;
		s->hs_term = hs.term;
		s->hs_vote = hs.vote;
	}
	if (hs.commit < s->applied_index)
		hs.commit = s->applied_index;
	err = raft_create(&rc, rp->has_hs ? &hs : NULL, ents, n,
			  s->applied_index, &s->raft);
	free(ents);
	if (err < 0)
		snprintf(errbuf, errlen, "cannot start raft: %s",
			 cairn_strerror(err));
	return err;
}

/* A new WAL beside an engine that already holds applied entries (e.g.
 * etcd's member/snap/db copied in): the engine's state is a snapshot at
 * its consistent index, so the new log starts after it. The marker is
 * made durable before raft starts. */
static int adopt_engine(struct server *s, struct wal_replay *rp,
			char *errbuf, size_t errlen)
{
	int err;

	if (s->applied_index == 0 || rp->n_entries || rp->has_hs ||
	    rp->snap_index)
		return 0;
	log_info("the engine holds index %llu and the WAL is new: starting the "
		 "raft log after it",
		 (unsigned long long)s->applied_index);
	err = wal_save_snapshot(s->wal, s->applied_index, 1);
	if (err == 0)
		err = wal_sync_now(s->wal);
	if (err < 0) {
		snprintf(errbuf, errlen, "cannot write the WAL in %s/wal: %s",
			 s->member_dir, cairn_strerror(err));
		return err;
	}
	rp->snap_index = s->applied_index;
	rp->snap_term = 1;
	return 0;
}

static int open_wal(struct server *s, char *errbuf, size_t errlen)
{
	struct wal_replay rp;
	uint8_t meta[16];
	char path[4200];
	int err;

	memset(&rp, 0, sizeof(rp));
	put_be64(meta, s->member_id);
	put_be64(meta + 8, s->cluster_id);
	snprintf(path, sizeof(path), "%s/wal", s->member_dir);
	err = wal_open_after(path, meta, sizeof(meta), s->applied_index,
			     &s->wal, &rp);
	if (err < 0) {
		snprintf(errbuf, errlen, "cannot open the WAL in %s: %s", path,
			 rp.error[0] ? rp.error : cairn_strerror(err));
		wal_replay_free(&rp);
		return err;
	}
	if (rp.meta_len == sizeof(meta)) {
		/* an existing member keeps the ids it was created with */
		s->member_id = get_be64(rp.meta);
		s->cluster_id = get_be64(rp.meta + 8);
	}
	/* finish a snapshot install a crash interrupted (engine < marker) */
	err = server_snap_recover(s, rp.snap_index, errbuf, errlen);
	if (err == 0)
		err = adopt_engine(s, &rp, errbuf, errlen);
	if (err == 0)
		err = start_raft(s, &rp, errbuf, errlen);
	wal_replay_free(&rp);
	return err;
}

static int campaign_if_alone(struct server *s)
{
	uint64_t v[SERVER_MAX_MEMBERS], l[SERVER_MAX_MEMBERS];
	size_t nv = 0, nl = 0;

	server_members_conf(s, v, &nv, l, &nl, SERVER_MAX_MEMBERS);
	if (nv == 1 && v[0] == s->member_id)
		return raft_campaign(s->raft);
	return 0;
}

/* Does the WAL directory hold a segment (a member that ran before)? */
static bool wal_dir_has_wal(const struct server *s)
{
	char path[4200];
	struct dirent *d;
	bool found = false;
	DIR *dir;

	snprintf(path, sizeof(path), "%s/wal", s->member_dir);
	if (!(dir = opendir(path)))
		return false;
	while (!found && (d = readdir(dir))) {
		size_t n = strlen(d->d_name);

		found = n > 4 && strcmp(d->d_name + n - 4, ".wal") == 0;
	}
	closedir(dir);
	return found;
}

static int start_timers(struct server *s)
{
	struct timeval tv;

	s->ready_ev = event_new(s->base, -1, 0, ready_cb, s);
	s->tick_ev = event_new(s->base, -1, EV_PERSIST, tick_cb, s);
	s->commit_ev = evtimer_new(s->base, commit_cb, s);
	if (!s->ready_ev || !s->tick_ev || !s->commit_ev)
		return -ENOMEM;
	/* after this turn's socket I/O, so a turn's proposals form a batch */
	event_priority_set(s->ready_ev, 1);
	tv.tv_sec = (time_t)(s->cfg->heartbeat_ms / 1000);
	tv.tv_usec = (suseconds_t)((s->cfg->heartbeat_ms % 1000) * 1000);
	return event_add(s->tick_ev, &tv) < 0 ? -EIO : 0;
}

int server_open(struct event_base *base, const struct config *cfg,
		struct server **out, char *errbuf, size_t errlen)
{
	struct server *s = calloc(1, sizeof(*s));
	int err;

	if (!s)
		return -ENOMEM;
	s->base = base;
	s->cfg = cfg;
	s->req_timeout_ms = REQ_TIMEOUT_BASE_MS + 2 * cfg->election_ms;
	errbuf[0] = '\0';
	if (!(s->win = calloc(WINDOW_RING, sizeof(*s->win)))) {
		err = -ENOMEM;
		goto fail;
	}
	if ((err = open_storage(s, errbuf, errlen)) < 0)
		goto fail;
	if ((err = bio_create(base, 2, &s->bio)) < 0)
		goto fail;
	s->wal_exists = wal_dir_has_wal(s);
	/* membership first: it may decide the ids (a joining member) */
	if ((err = server_members_open(s, errbuf, errlen)) < 0)
		goto fail;
	if ((err = open_wal(s, errbuf, errlen)) < 0)
		goto fail;
	s->win_from = raft_first_index(s->raft) - 1;
	s->actx.mvcc = s->mvcc;
	s->actx.cluster_id = s->cluster_id;
	s->actx.member_id = s->member_id;
	/* etcd's idutil layout: member bits, then time, then a counter */
	s->next_req_id = (s->member_id & 0xffff) << 48 |
			 (((uint64_t)time(NULL) * 1000) & 0xffffffffffull) << 8;
	if ((err = open_peers(s, errbuf, errlen)) < 0 ||
	    (err = server_members_start(s)) < 0 ||
	    (err = server_snap_open(s)) < 0 || (err = start_timers(s)) < 0)
		goto fail;
	/* the only voter: no one to wait for, elect at once (fast start);
	 * several wait for the election timeout */
	if ((err = campaign_if_alone(s)) < 0)
		goto fail;
	/* the first Ready (which applies the entries replayed from the WAL)
	 * runs at the first loop turn: modules started after server_open
	 * (the lessor's extension applier) must see those entries */
	server_schedule_ready(s);
	*out = s;
	return 0;
fail:
	if (!errbuf[0])
		snprintf(errbuf, errlen, "%s", cairn_strerror(err));
	server_close(s);
	return err;
}

void server_close(struct server *s)
{
	if (!s)
		return;
	s->stopping = true;
	/* let the in-flight fsync finish and its entries apply: they may
	 * already be acknowledged to a client (bounded); before the close
	 * hooks, since applying them may need a module (the lessor) */
	for (int i = 0; i < 3000 && s->rd_pending && s->bio; i++)
		event_base_loop(s->base, EVLOOP_ONCE);
	/* snapshot transfers end first (they hold an engine view); then
	 * no more peer traffic, before the modules go: a request in flight
	 * ends (-ECANCELED) into state still alive */
	server_snap_close(s);
	peer_transport_destroy(s->peers);
	s->peers = NULL;
	server_members_close(s);
	while (s->n_close_hooks > 0) {
		s->n_close_hooks--;
		s->close_hooks[s->n_close_hooks].fn(
			s->close_hooks[s->n_close_hooks].arg);
	}
	waiters_fail_all(s, CAIRN_ESTOPPED);
	server_held_fail_all(s, CAIRN_ESTOPPED);
	server_reads_fail_all(s, CAIRN_ESTOPPED);
	if (s->tick_ev)
		event_free(s->tick_ev);
	if (s->ready_ev)
		event_free(s->ready_ev);
	if (s->commit_ev)
		event_free(s->commit_ev);
	/* drain the helpers before freeing what their callbacks touch */
	s->closing = true;
	if (s->bio)
		bio_destroy(s->bio);
	if (s->wal && wal_close(s->wal) < 0)
		log_warn("WAL close failed");
	if (s->mvcc) {
		/* after a fatal error the batch may hold a half-applied
		 * request: drop it; the WAL replays from the engine's index */
		if (!s->fatal && mvcc_commit(s->mvcc, true) < 0)
			log_warn("final engine sync failed");
		mvcc_close(s->mvcc);
	}
	if (s->raft)
		raft_destroy(s->raft);
	if (s->eng.e)
		engine_close(&s->eng);
	free(s->win);
	free(s);
}
