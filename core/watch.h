/* watch: the watch hub — etcd's watchableStore. Watchers by key and by
 * range, a synced and an unsynced group, and the fan-out of MVCC changes.
 *
 * Shape (etcd 3.4's mvcc/watchable_store.go, adapted to one loop thread):
 *   - A hub serves one mvcc. watch_hub_observe is the mvcc observer (the
 *     server fans its change hook out to it).
 *   - A stream (one gRPC Watch call) owns watchers and a bounded queue of
 *     events not yet handed to its sink. The write path only appends to
 *     that queue; a deferred flush (a zero timer, after this loop turn's
 *     I/O) groups the queued events into one response per revision per
 *     watcher and hands them to the sink.
 *   - A synced watcher gets live events through the queue. When its
 *     stream's queue is full, the stream's synced watchers drop their
 *     queued events and move to the unsynced group with the revision they
 *     must resume from; an unsynced watcher catches up from mvcc_history
 *     in bounded chunks while its sink accepts, then rejoins the synced
 *     group. So a slow client costs a bounded queue, never a stall.
 *   - The sink says -EAGAIN when its transport is full: the stream stops
 *     flushing (events keep queuing up to the bound) until the owner calls
 *     watch_stream_writable.
 *
 * Threads: the loop thread of the event_base only.
 */
#ifndef CAIRN_CORE_WATCH_H
#define CAIRN_CORE_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/mvcc/mvcc.h"

struct event_base;
struct watch_hub;
struct watch_stream;

/* Defaults used when a config field is 0. */
#define WATCH_QUEUE_MAX_EVENTS 4096	   /* queued per stream */
#define WATCH_QUEUE_MAX_BYTES (512 * 1024) /* event bytes per stream */
#define WATCH_CATCHUP_MAX_EVENTS 1024	   /* history per stream per turn */
#define WATCH_PROGRESS_MS (10 * 60 * 1000) /* etcd's default, 10 min */

/* etcd's texts (mvcc/watcher.go). */
#define WATCH_EDUPLICATE_ID                                                    \
	"mvcc: duplicate watch ID provided on the WatchStream"
#define WATCH_EEMPTY_RANGE "mvcc: watcher range is empty"

struct watch_hub_config {
	size_t queue_max_events;
	size_t queue_max_bytes;
	size_t catchup_max_events;
	uint64_t progress_ms; /* periodic progress_notify interval */
};

/* One event as a sink sees it: kv as mvcc's observer gives it (a delete:
 * key and mod_rev only); prev NULL unless the watcher asked for prev_kv
 * and the previous version exists (and is not compacted). */
struct watch_event {
	int type; /* 0 put, 1 delete (mvccpb.Event.EventType) */
	struct mvcc_kv kv;
	const struct mvcc_kv *prev;
};

/* One WatchResponse. rev is the header revision. Everything it points to
 * is valid during the sink call only. A progress response (periodic, or
 * the reply to watch_stream_progress with watch_id -1) has no events. */
struct watch_resp {
	int64_t watch_id;
	int64_t rev;
	bool created, canceled;
	int64_t compact_rev;
	const char *cancel_reason; /* NULL: none */
	const struct watch_event *events;
	size_t n;
	bool fragment; /* the watcher allows splitting this response */
};

/* The stream's owner's transport. Returns 0 (sent), -EAGAIN (taken, but
 * send no more until watch_stream_writable), -EPIPE (dead: dropped; the
 * stream stops sending until destroyed) or -ENOMEM (dropped; treated like
 * -EPIPE). Never calls back into the hub. */
typedef int (*watch_send_fn)(void *arg, const struct watch_resp *r);

/* A watch as WatchCreateRequest asks it. Bytes are copied. */
struct watch_req {
	const uint8_t *key;
	size_t klen;
	/* end NULL: the single key; end non-NULL with elen 0: every key >=
	 * key (etcd's range_end "\0"); else [key, end). */
	const uint8_t *end;
	size_t elen;
	int64_t start_rev; /* 0: from the next revision */
	int64_t watch_id;  /* 0: the stream picks one */
	bool prev_kv, noput, nodelete, progress_notify;
	bool fragment; /* passed on in each of its event responses */
};

/* Create a hub over m (borrowed; must outlive the hub) on base (borrowed;
 * its timers drive flushes, catch-up and progress). cfg may be NULL
 * (defaults); copied. The caller registers watch_hub_observe as m's change
 * observer. *out is the caller's until watch_hub_destroy.
 * Returns 0 or -ENOMEM. */
int watch_hub_create(struct event_base *base, struct mvcc *m,
		     const struct watch_hub_config *cfg,
		     struct watch_hub **out);

/* Free the hub and every watcher. Streams still open are detached: their
 * calls become no-ops (returning -ESHUTDOWN where they return an int) and
 * watch_stream_destroy still frees them. h NULL: no-op. */
void watch_hub_destroy(struct watch_hub *h);

/* The mvcc observer (mvcc_observer_fn; arg is the hub). Copies what
 * matching watchers need; never sends. */
void watch_hub_observe(void *arg, int type, const struct mvcc_kv *kv,
		       const struct mvcc_kv *prev);

/* Watchers in the hub, and how many of them are unsynced (for tests and
 * metrics). */
size_t watch_hub_count(const struct watch_hub *h, size_t *unsynced);

/* Open a stream with sink send(arg, ...) (arg borrowed until destroy).
 * *out is the caller's until watch_stream_destroy. 0 or -ENOMEM. */
int watch_stream_create(struct watch_hub *h, watch_send_fn send, void *arg,
			struct watch_stream **out);

/* Cancel every watcher of the stream (no responses) and free it. NULL:
 * no-op. Never call it from inside this stream's send callback. */
void watch_stream_destroy(struct watch_stream *s);

/* Create a watcher and send its created response (before any of its
 * events). Refusals are sent as etcd does (created and canceled, watch_id
 * -1, cancel_reason) and also returned: -EEXIST (watch_id in use on this
 * stream), -EINVAL (an empty range: end given and key >= end). A
 * start_rev below the compaction gets, after the created response, a
 * canceled response with compact_rev set (as etcd). *id (may be NULL):
 * the watcher's id. Other errors: -ENOMEM (nothing sent), -ESHUTDOWN. */
int watch_stream_watch(struct watch_stream *s, const struct watch_req *r,
		       int64_t *id);

/* Cancel watcher id and send {watch_id, canceled}. -ENOENT (unknown id,
 * nothing sent, as etcd), -ESHUTDOWN. */
int watch_stream_cancel(struct watch_stream *s, int64_t id);

/* On-demand progress: a response with watch_id -1 and the current
 * revision, sent once every watcher of the stream is synced and its queue
 * is flushed (at once when they already are). 0 or -ESHUTDOWN. */
int watch_stream_progress(struct watch_stream *s);

/* The sink can take more after an -EAGAIN: flush and resume catching up
 * (later, from the loop, never inside this call). */
void watch_stream_writable(struct watch_stream *s);

/* The hub's mvcc was replaced in place (mvcc_reload: a snapshot from the
 * leader was installed). Every watcher becomes unsynced and catches up
 * from the new store from the first revision it has not been handed
 * (what was queued is dropped and read again); one whose revision was
 * compacted in the new store is canceled with the compact revision, as
 * etcd does. Call it right after the reload, before new changes. */
void watch_hub_restore(struct watch_hub *h);

/* Change the periodic progress interval (ms; 0 = default). */
void watch_hub_set_progress_ms(struct watch_hub *h, uint64_t ms);

#endif
