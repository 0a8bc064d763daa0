/* mvcc: etcd's multi-version key-value store over a storage engine.
 *
 * The model is etcd's (mvcc/kvstore*.go), kept exactly because clients
 * depend on it:
 *   - a global revision, 1 on an empty store; a write txn that changes
 *     anything takes the next main revision, its changes take sub 0,1,2..;
 *   - each key has create_rev, mod_rev, version (1 on create, +1 per put,
 *     reset by a delete) and lease; a delete writes a tombstone;
 *   - history stays until mvcc_compact.
 *
 * Engine schema (etcd's, so etcd tools read our files):
 *   bucket "key":
 *     KEY   OFFSET SIZE DESCRIPTION
 *           0      8    main revision, big-endian
 *           8      1    '_'
 *           9      8    sub revision, big-endian
 *           17     1    't' for a tombstone (absent otherwise)
 *     VALUE an mvccpb.KeyValue protobuf (a tombstone: only key set)
 *   bucket "meta":
 *     "consistent_index"    -> 8-byte big-endian uint64
 *     "scheduledCompactRev" -> the 17-byte encoding of {rev, 0}
 *     "finishedCompactRev"  -> the 17-byte encoding of {rev, 0}
 *
 * Write path and visibility: writes go into the engine's current batch;
 * mvcc_commit() commits it (the caller does so once per loop turn, not per
 * put). Until then the encoded values of uncommitted revisions also sit in
 * an in-memory buffer (etcd's txWriteBuffer idea), so reads see every txn
 * that has ended at once. Reads of committed revisions go through one
 * engine read view, opened on first use after each commit.
 *
 * Failure: an engine error inside a txn, a compaction or a commit leaves
 * the in-memory index ahead of the engine; etcd panics there. The caller
 * must treat such an error as fatal for this mvcc: close it and reopen
 * (the raft log is replayed from the stored consistent index).
 *
 * Threads: one thread (cairn's loop) uses an mvcc and its engine.
 */
#ifndef CAIRN_CORE_MVCC_MVCC_H
#define CAIRN_CORE_MVCC_MVCC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mvcc;
struct engine_handle;

#define MVCC_BUCKET_KEY "key"
#define MVCC_BUCKET_META "meta"
#define MVCC_REV_BYTES 17 /* main '_' sub; +1 for a tombstone's 't' */

/* One key-value as the client sees it (mvccpb.KeyValue). */
struct mvcc_kv {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
	int64_t create_rev, mod_rev, version, lease;
};

struct mvcc_range_opts {
	int64_t rev;	 /* read at this revision; 0 (or < 0) = current */
	int64_t limit;	 /* at most this many kvs; 0 (or < 0) = no limit */
	bool keys_only;	 /* kvs without values (value NULL, value_len 0) */
	bool count_only; /* no kvs at all, only count */
};

struct mvcc_range_result {
	struct mvcc_kv *kvs; /* n entries in key order */
	size_t n;
	int64_t count; /* total matching, ignoring limit */
	int64_t rev;   /* the store's current revision (etcd's response
			* header revision), not opts.rev */
	/* private: the memory that owns the bytes kvs point to */
	uint8_t *buf;
	size_t buf_len, buf_cap, kvs_cap;
};

/* Open the MVCC store on engine h (which the caller opened and keeps
 * owning; it must outlive the mvcc). Creates buckets "key" and "meta" if
 * absent, reads meta, rebuilds the key index by scanning "key" in
 * revision order (as etcd's restore does), finishes a compaction that was
 * scheduled but not finished, and commits (sync) what that changed.
 * *out is the caller's; free with mvcc_close.
 * Errors: -ENOMEM; CAIRN_ECORRUPT for a malformed key or value in the
 * "key" bucket or a malformed meta value; the engine's -errno. */
int mvcc_open(struct engine_handle *h, struct mvcc **out);

/* Rebuild m in place from its engine handle, after the caller closed the
 * engine and opened another data file in the same struct engine_handle
 * (a snapshot from the leader replaced the state): every pointer to m
 * stays valid, the observer stays set, everything else (key index,
 * revisions, consistent index) is read afresh as mvcc_open does. Call
 * mvcc_release_view(m) BEFORE closing the old engine (a view must not
 * outlive its engine). On error m still describes the old data, whose
 * engine is gone: the caller must treat it as fatal.
 * Errors: -EBUSY (a write txn is open), mvcc_open's errors. */
int mvcc_reload(struct mvcc *m);

/* Free the store. An open txn is abandoned; the engine batch is neither
 * committed nor discarded (the engine's close discards it). NULL: no-op. */
void mvcc_close(struct mvcc *m);

/* Current revision (the last txn that changed anything; 1 when empty). */
int64_t mvcc_rev(const struct mvcc *m);
/* Revision of the last compaction (-1: never compacted, as etcd). */
int64_t mvcc_compact_rev(const struct mvcc *m);
/* The consistent index last set (or read from meta at open; 0 if none). */
uint64_t mvcc_consistent_index(const struct mvcc *m);

/* Range over [key, end) at revision o->rev (NULL o: current, no limit).
 * end/elen: elen == 0 means the single key `key`; end == "\0" (elen 1,
 * one zero byte) means every key >= key; otherwise keys k with
 * key <= k < end. Mirrors etcd 3.4 rangeKeys: rev > current ->
 * CAIRN_EFUTURE_REV; rev < compact rev -> CAIRN_ECOMPACTED (reading at
 * exactly the compact rev works). On success *out is filled (kvs in key
 * order; their bytes valid until mvcc_range_result_free(out), which the
 * caller must call); on error *out is zeroed and needs no free.
 * Other errors: -EINVAL (klen == 0), -ENOMEM, CAIRN_ECORRUPT, engine
 * -errno. While a write txn is open this reads the state before the txn
 * (mvcc_txn_range sees the txn's writes). */
int mvcc_range(struct mvcc *m, const uint8_t *key, size_t klen,
	       const uint8_t *end, size_t elen, const struct mvcc_range_opts *o,
	       struct mvcc_range_result *out);
/* Free what a range (or a delete's prev) put in r and zero it. */
void mvcc_range_result_free(struct mvcc_range_result *r);

/* Begin the one write txn. Errors: -EBUSY if one is open. */
int mvcc_txn_begin(struct mvcc *m);
/* mvcc_range inside the write txn: it sees the txn's own earlier writes
 * (etcd: current rev + 1 once the txn has changed something). */
int mvcc_txn_range(struct mvcc *m, const uint8_t *key, size_t klen,
		   const uint8_t *end, size_t elen,
		   const struct mvcc_range_opts *o,
		   struct mvcc_range_result *out);
/* Put key = val with lease (0: none). Bytes are copied.
 * Errors: -EINVAL (no txn open, klen == 0), -ENOMEM, engine -errno. */
int mvcc_txn_put(struct mvcc *m, const uint8_t *key, size_t klen,
		 const uint8_t *val, size_t vlen, int64_t lease);
/* Delete every key of the range (end as mvcc_range) that exists now;
 * *deleted (may be NULL) is how many. prev: NULL, or filled like a range
 * result with the deleted kvs (free with mvcc_range_result_free; zeroed on
 * error). Errors: as mvcc_txn_put. */
int mvcc_txn_delete_range(struct mvcc *m, const uint8_t *key, size_t klen,
			  const uint8_t *end, size_t elen, int64_t *deleted,
			  struct mvcc_range_result *prev);
/* Close the txn: bumps the revision iff it changed anything, then calls
 * the observer for each change in order. Returns the current revision
 * afterwards (or -EINVAL if no txn is open). */
int64_t mvcc_txn_end(struct mvcc *m);

/* Compact at rev: drops from the key index and the engine batch every
 * revision older than the latest one <= rev of each key (and that one
 * too if it is a tombstone), writing scheduledCompactRev and
 * finishedCompactRev to "meta" in the same batch.
 * Errors: CAIRN_ECOMPACTED if rev <= compact rev, CAIRN_EFUTURE_REV if
 * rev > current rev, -EBUSY inside a write txn, engine -errno (fatal, see
 * the top of this file). */
int mvcc_compact(struct mvcc *m, int64_t rev);

/* Record the raft index of the last applied entry: written to "meta" in
 * the current engine batch (so it commits atomically with the writes of
 * that entry). Errors: engine -errno. */
int mvcc_set_consistent_index(struct mvcc *m, uint64_t idx);

/* Commit the engine batch (sync: durable on return). Uncommitted values
 * leave the in-memory buffer. Errors: -EBUSY inside a write txn; the
 * engine's commit errors (fatal, see the top of this file). */
int mvcc_commit(struct mvcc *m, bool sync);

/* Close the engine read view mvcc keeps between commits (e.g. before an
 * engine defrag, which wants no open views); the next read reopens it. */
void mvcc_release_view(struct mvcc *m);

/* Observer (the watch hub): fn(arg, type, kv, prev) for each change, in
 * order, at mvcc_txn_end after the revision moved. type 0 = put, 1 =
 * delete. kv: a put's new kv; for a delete, the key with mod_rev = the
 * delete's revision and everything else 0 (as etcd's events). prev: the
 * key as it was before the txn, or NULL if it did not exist. Both are
 * valid during the call only. fn must not start a write txn. fn NULL:
 * no observer. */
typedef void (*mvcc_observer_fn)(void *arg, int type, const struct mvcc_kv *kv,
				 const struct mvcc_kv *prev);
void mvcc_set_observer(struct mvcc *m, mvcc_observer_fn fn, void *arg);

/* Stream the kvs of a range (end as mvcc_range) at the current revision
 * in key order, one at a time, without building a result: for whole-store
 * walks such as re-attaching keys to their leases at start (etcd's
 * restore does that from the same data). kv's bytes are valid during the
 * call only; fn returns 0 to go on, non-zero to stop (mvcc_foreach then
 * returns 0); fn must not write, compact or commit.
 * Errors: -EINVAL (klen == 0), CAIRN_ECORRUPT, engine -errno. */
typedef int (*mvcc_kv_fn)(void *arg, const struct mvcc_kv *kv);
int mvcc_foreach(struct mvcc *m, const uint8_t *key, size_t klen,
		 const uint8_t *end, size_t elen, mvcc_kv_fn fn, void *arg);

/* History, for watchers that start in the past (etcd's syncWatchers):
 * fn(arg, type, kv) for every change with from_rev <= main revision <=
 * to_rev (to_rev <= 0 or past the current rev: up to the current rev), in
 * revision order, committed or not. type and kv as for the observer (a
 * delete: key and mod_rev only). kv is valid during the call only; fn
 * returns 0 to go on, non-zero to stop (mvcc_history then returns 0).
 * fn must not write, compact or commit.
 * Errors: CAIRN_ECOMPACTED if from_rev < compact rev (as etcd's watch:
 * history from exactly the compact rev is served); CAIRN_ECORRUPT;
 * -ENOMEM; engine -errno. */
typedef int (*mvcc_history_fn)(void *arg, int type, const struct mvcc_kv *kv);
int mvcc_history(struct mvcc *m, int64_t from_rev, int64_t to_rev,
		 mvcc_history_fn fn, void *arg);

/* KeyValue codec (mvccpb.KeyValue via nanopb), kept behind two functions
 * so it can be rewired. encode: into buf[0..cap), *len written; -ENOSPC
 * if cap is too small (MVCC_KV_MAX_OVERHEAD + key + value always fits),
 * -EINVAL. decode: kv's key/value point into buf (borrowed);
 * CAIRN_ECORRUPT if buf is not a KeyValue. */
#define MVCC_KV_MAX_OVERHEAD 80
int mvcc_kv_encode(const struct mvcc_kv *kv, uint8_t *buf, size_t cap,
		   size_t *len);
int mvcc_kv_decode(const uint8_t *buf, size_t len, struct mvcc_kv *kv);

#endif
