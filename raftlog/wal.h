/* wal: cairn's write-ahead log, the durability of every raft entry.
 *
 * A client write is acknowledged only after its ENTRY record is
 * fdatasync'ed here. The WAL is a directory of segment files
 *
 *     <dir>/%016llx-%016llx.wal      (sequence, first raft index in it)
 *
 * e.g. 0000000000000000-0000000000000000.wal, like etcd's. The last
 * segment is the tail being appended; every other one is sealed (truncated
 * to its last record). Segments are preallocated with zeros, and a zero
 * record header reads as "end of log".
 *
 * ON-DISK FORMAT (all integers little-endian)
 *
 * Record:
 *   OFFSET  SIZE  DESCRIPTION
 *   0       4     crc: crc32c(seed, bytes 4 .. 12+len) where seed is the
 *                 crc field of the previous record (for a segment's first
 *                 record, the CRC record itself, the seed is its payload)
 *   4       4     len: payload length, 0 .. WAL_MAX_PAYLOAD
 *   8       1     type: WAL_REC_* below (0 is never valid: zeros = end)
 *   9       3     reserved, zero
 *   12      len   payload (by type, below)
 *   12+len  pad   zero padding so the record size is a multiple of 8
 *
 * Payloads:
 *   WAL_REC_CRC (1), first record of every segment, len 4:
 *     0   4   crc field of the last record of the previous segment
 *             (0 in the very first segment)
 *   WAL_REC_METADATA (2), len 0 .. WAL_MAX_META: opaque bytes given to
 *     wal_open() at creation (member/cluster ids); repeated after the CRC
 *     record of every segment so each segment is self-describing.
 *   WAL_REC_ENTRY (3), len 20 + data_len (data_len <= WAL_MAX_ENTRY_DATA):
 *     0   8   raft index
 *     8   8   raft term
 *     16  4   entry type (opaque to the WAL: normal, conf change ...)
 *     20  n   entry data
 *   WAL_REC_HARD_STATE (4), len 24:
 *     0   8   term   8   8   vote   16  8   commit
 *   WAL_REC_SNAPSHOT (5), len 16: a snapshot marker; entries with index
 *     <= this index may be dropped by replay.
 *     0   8   index  8   8   term
 *
 * Segment layout: CRC, METADATA, then (if any were saved earlier) the last
 * HARD_STATE and SNAPSHOT, then records as saved, then zeros (tail only).
 *
 * Recovery rules (wal_open):
 *  - every record's crc, length, type and padding is verified;
 *  - in the LAST segment, a record cut short, or zeros / garbage after the
 *    last valid record, is a torn write: zeros are simply the end; garbage
 *    is truncated away (and logged);
 *  - a bad record followed by a record that verifies against the chain,
 *    or any bad record in a sealed segment, a CRC record that does not
 *    match the previous segment, or a gap in the entry indexes, is
 *    corruption: -EBADMSG, with the file and byte offset in rp->error.
 *
 * Threads: every function here is called on the loop thread. The only I/O
 * off the loop is the write + fdatasync job that wal_sync() hands to bio.
 */
#ifndef CAIRN_RAFTLOG_WAL_H
#define CAIRN_RAFTLOG_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bio;

enum wal_rec_type {
	WAL_REC_CRC = 1,
	WAL_REC_METADATA = 2,
	WAL_REC_ENTRY = 3,
	WAL_REC_HARD_STATE = 4,
	WAL_REC_SNAPSHOT = 5,
};

#define WAL_REC_HEADER 12u
#define WAL_ENTRY_HEADER 20u
#define WAL_MAX_ENTRY_DATA (64u << 20) /* one entry's data, 64 MiB */
#define WAL_MAX_META (1u << 20)	       /* metadata, 1 MiB */
#define WAL_MAX_PAYLOAD (WAL_ENTRY_HEADER + WAL_MAX_ENTRY_DATA)
#define WAL_SEGMENT_SIZE (64ull << 20) /* default roll size, 64 MiB */
#define WAL_MIN_SEGMENT_SIZE 4096ull

struct wal_entry {
	uint64_t index, term;
	uint32_t type;
	const uint8_t *data;
	size_t len;
};

struct wal_hard_state {
	uint64_t term, vote, commit;
};

/* What wal_open() recovered. Filled by wal_open, freed by
 * wal_replay_free(); every pointer inside is owned by the replay and valid
 * until wal_replay_free (it does not depend on the struct wal). */
struct wal_replay {
	uint8_t *meta; /* the metadata given at creation */
	size_t meta_len;
	struct wal_hard_state hs; /* the last hard state saved ... */
	bool has_hs;		  /* ... if any */
	uint64_t snap_index;	  /* the last snapshot marker (0, 0: none) */
	uint64_t snap_term;
	/* The log after snap_index, consecutive indexes, in index order: a
	 * later record for index i replaced i and everything after it. */
	struct wal_entry *entries;
	size_t n_entries;
	char error[256]; /* why wal_open failed, naming file and offset */
	/* private: */
	void *arena;
};

struct wal;

/* Open (or create) the WAL in dir and replay it.
 *
 * dir: the WAL directory (e.g. DATA_DIR/member/wal); created with its
 *      missing parents, each fsynced, if absent. Copied.
 * meta, meta_len: written as the METADATA record when the WAL is created;
 *      ignored when it exists (the stored one is returned in rp->meta).
 *      meta_len <= WAL_MAX_META. Borrowed for the call.
 * *out: on success the open WAL, owned by the caller (wal_close); appends
 *      continue at the end of the last segment.
 * rp:  required; on success filled as described at struct wal_replay
 *      (caller frees with wal_replay_free). On failure it holds nothing
 *      to free, and rp->error says why.
 * A torn tail is repaired (truncated, re-preallocated, fsynced) and
 * logged; leftover *.tmp files of an interrupted segment creation are
 * removed.
 * Errors: -EINVAL (NULL args, meta too large), -EBADMSG (corruption: bad
 * record, bad CRC chain, entry index gap), -ENOMEM, -errno of mkdir, open,
 * read, ftruncate, fsync (e.g. -EACCES, -EIO, -ENOSPC).
 */
int wal_open(const char *dir, const void *meta, size_t meta_len,
	     struct wal **out, struct wal_replay *rp);

/* Free what a successful wal_open put in rp; rp itself is the caller's.
 * Safe on a zeroed or already freed replay. */
void wal_replay_free(struct wal_replay *rp);

/* wal_open, for a caller whose state machine already holds the entries
 * up to keep_after (e.g. the engine's consistent index): those replay
 * with their index, term and type but without data (len 0), so a long
 * log does not have to fit in memory at restart. */
int wal_open_after(const char *dir, const void *meta, size_t meta_len,
		   uint64_t keep_after, struct wal **out,
		   struct wal_replay *rp);

/* Close the WAL: fds and memory. Records saved but not synced are dropped
 * (never acknowledged, so nothing is lost that was promised). May be
 * called from a wal_sync callback. NULL is a no-op.
 * Errors: -EBUSY if a wal_sync job is in flight (the WAL stays open).
 */
int wal_close(struct wal *w);

/* Roll to a new segment once the tail holds at least bytes bytes
 * (default WAL_SEGMENT_SIZE; min WAL_MIN_SEGMENT_SIZE, smaller values are
 * raised). Applies to records saved afterwards and to preallocation. */
void wal_set_segment_size(struct wal *w, uint64_t bytes);

/* Encode a hard state and/or entries into the pending buffer: copies,
 * no I/O, no syscall. Not durable until a wal_sync* completes.
 *
 * hs: NULL = unchanged. ents[0..n): borrowed for the call; each
 *     entry's len <= WAL_MAX_ENTRY_DATA, indexes need not follow the last
 *     one (an index <= the last one overwrites the log from there).
 * Errors: -EINVAL (entry too large, NULL ents with n > 0; nothing is
 * saved), -ENOMEM (nothing is saved), or the sticky write error of an
 * earlier failed sync (-EIO, -ENOSPC ...): the WAL refuses all writes.
 */
int wal_save(struct wal *w, const struct wal_hard_state *hs,
	     const struct wal_entry *ents, size_t n);

/* Encode a snapshot marker (index, term) into the pending buffer; replay
 * drops entries <= index. Errors as wal_save. */
int wal_save_snapshot(struct wal *w, uint64_t index, uint64_t term);

/* Make everything saved so far durable, off the loop thread.
 *
 * Hands the pending buffer to one job on bio queue BIO_QUEUE_WAL that
 * writes it (rolling segments as needed) and fdatasyncs; then calls
 * cb(arg, status) on the loop thread: status 0 = durable, or the -errno
 * of the failed write/fsync, after which the WAL refuses all writes (an
 * fsync error is fatal: the server must exit; it is never retried).
 * wal_save calls made while the job runs go to a new pending buffer: the
 * next wal_sync, typically from cb, writes them as one group.
 * b: the pool, borrowed; cb required; arg passed through untouched.
 * Errors (cb is then not called): -EBUSY (a sync is in flight), -EINVAL
 * (NULL b/cb), the sticky error, -errno of bio_submit.
 */
int wal_sync(struct wal *w, struct bio *b, void (*cb)(void *arg, int status),
	     void *arg);

/* The same, blocking on the calling thread (start-up, tests, tools).
 * Errors: -EBUSY (a wal_sync is in flight), the sticky error, or the
 * -errno of this write/fsync (which becomes sticky). */
int wal_sync_now(struct wal *w);

/* Delete whole sealed segments whose entries all have index <= index
 * (never the last segment). index is clamped to the last snapshot marker
 * saved, so replay never finds a hole. unlink() runs on the calling
 * thread: metadata only, no fsync (a deletion lost in a crash leaves an
 * older run of segments that wal_open ignores). Allowed while a sync is in
 * flight (the job only touches the last segment). Returns the number of
 * segments deleted, or -ENOMEM, or -errno of unlink (segments before the
 * failing one stay deleted). */
int wal_release_to(struct wal *w, uint64_t index);

/* The last entry index saved (pending included); 0 if none. */
uint64_t wal_last_index(const struct wal *w);

/* The sticky error, 0 while the WAL accepts writes. */
int wal_error(const struct wal *w);

/* Test hook (named failpoint): the next sync job fails with err (a
 * negative errno, e.g. -EIO or -ENOSPC) before writing anything, exactly
 * as a failed write would. 0 clears it. */
void wal_inject_error(struct wal *w, int err);

#endif
