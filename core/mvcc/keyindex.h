/* keyindex: MVCC's in-memory index, key -> generations of revisions.
 *
 * This is etcd's treeIndex/keyIndex (mvcc/index.go, mvcc/key_index.go)
 * with the same semantics, in a layout built for memory:
 *   - keys order bytewise (memcmp, shorter first on a tie), in a B+tree of
 *     64-way nodes whose leaves are linked both ways (ordered scans in
 *     either direction, O(log n) seek);
 *   - one malloc per key, holding the key bytes inline followed by its
 *     generations and its revisions as flat arrays (no per-revision
 *     allocation); it is realloc'd as revisions are added or compacted.
 *
 * A key's history is a list of generations; a generation is the run of
 * revisions from a create up to and including the tombstone that ends it.
 * After a tombstone the key has an empty last generation; the next put
 * starts it (create revision = that put, version 1).
 *
 * Revisions passed to put/tombstone for one key must be strictly
 * increasing ({main, sub} order), as etcd's writer guarantees.
 *
 * Not thread safe: used from cairn's loop thread only.
 */
#ifndef CAIRN_CORE_MVCC_KEYINDEX_H
#define CAIRN_CORE_MVCC_KEYINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct keyindex;
struct kidx_leaf;

/* An MVCC revision: main = the write txn's revision, sub = the change's
 * position inside that txn. */
struct keyindex_rev {
	int64_t main;
	int64_t sub;
};

/* What a key looked like at some revision. */
struct keyindex_hit {
	struct keyindex_rev mod; /* the revision of the value visible */
	int64_t created;	 /* main revision that created the generation */
	int64_t ver;		 /* version: 1 at create, +1 per put */
};

/* A position in key order. Invalidated by any put/tombstone/restore/
 * compact on the index. */
struct keyindex_cursor {
	struct kidx_leaf *leaf;
	unsigned pos;
};

/* Create an empty index into *out (caller owns; keyindex_destroy).
 * Errors: -ENOMEM. */
int keyindex_create(struct keyindex **out);
/* Free the index and every key in it. NULL is a no-op. */
void keyindex_destroy(struct keyindex *ki);

/* Number of keys held (including keys whose last generation was ended by
 * a tombstone and not yet compacted away). */
size_t keyindex_len(const struct keyindex *ki);
/* Bytes requested from malloc by the index (keys and tree nodes; malloc's
 * own per-chunk overhead not included). */
size_t keyindex_bytes(const struct keyindex *ki);

/* Record a put of key at rev (etcd keyIndex.put). The key bytes are
 * copied. Errors: -ENOMEM; -EINVAL if klen == 0, rev.sub is outside
 * 0..UINT32_MAX (subs are stored in 32 bits), or rev is not greater than
 * the key's last revision. On error the index is unchanged. */
int keyindex_put(struct keyindex *ki, const uint8_t *key, size_t klen,
		 struct keyindex_rev rev);

/* Restore path (etcd keyIndex.restore): when the key is not in the index
 * (or holds no revision), insert it with one generation created at main
 * revision `created` whose only revision is rev, at version ver — the
 * earlier revisions may have been compacted away. When the key is already
 * there this is keyindex_put(rev). Errors: as keyindex_put. */
int keyindex_restore(struct keyindex *ki, const uint8_t *key, size_t klen,
		     int64_t created, struct keyindex_rev rev, int64_t ver);

/* Record a delete of key at rev: the tombstone ends the key's current
 * generation (etcd keyIndex.tombstone). Errors: -ENOENT if the key is
 * absent or already deleted (its last generation is empty); -EINVAL as
 * keyindex_put; -ENOMEM. On error the index is unchanged. */
int keyindex_tombstone(struct keyindex *ki, const uint8_t *key, size_t klen,
		       struct keyindex_rev rev);

/* The key as it was at main revision at_rev (etcd keyIndex.get): fills
 * *hit and returns 0, or -ENOENT if the key did not exist then (absent,
 * not yet created, deleted, or compacted). */
int keyindex_get(const struct keyindex *ki, const uint8_t *key, size_t klen,
		 int64_t at_rev, struct keyindex_hit *hit);

/* Visit, in key order, the keys of a range that exist at at_rev.
 * end/elen: elen == 0 (end ignored) means the single key `key`; end ==
 * "\0" (elen 1, a zero byte) means every key >= key; otherwise the keys k
 * with key <= k < end. fn gets borrowed key bytes (valid during the call
 * only; fn must not modify the index) and returns 0 to go on or non-zero
 * to stop. Returns 0, or fn's non-zero value when fn stopped the scan. */
typedef int (*keyindex_visit_fn)(void *arg, const uint8_t *key, size_t klen,
				 const struct keyindex_hit *hit);
int keyindex_range(const struct keyindex *ki, const uint8_t *key, size_t klen,
		   const uint8_t *end, size_t elen, int64_t at_rev,
		   keyindex_visit_fn fn, void *arg);

/* Compact at main revision at_rev (etcd keyIndex.compact on every key):
 * for each key keep the latest revision <= at_rev unless it is a
 * tombstone, drop every older revision, drop emptied generations, and
 * drop keys left with nothing. drop() is called once per revision removed
 * (tombstone true for a tombstone revision) so the caller can delete it
 * from the engine; the revisions not reported are exactly those still
 * needed. Key bytes passed to drop are valid during the call only; drop
 * must not modify the index. Never fails: if rebuilding the tree runs out
 * of memory, emptied keys simply stay (invisible) until the next
 * compaction. */
typedef void (*keyindex_drop_fn)(void *arg, const uint8_t *key, size_t klen,
				 struct keyindex_rev rev, bool tombstone);
void keyindex_compact(struct keyindex *ki, int64_t at_rev,
		      keyindex_drop_fn drop, void *arg);

/* Cursors: seek to the first key >= key (keyindex_seek_ge), to the last
 * key < key (keyindex_seek_lt; klen 0: the last key of the index), or to
 * the first key (keyindex_seek_first). keyindex_cursor_key gives the key
 * under the cursor (borrowed until the index changes) and returns false
 * when the cursor is past either end. next/prev move one key; moving from
 * past-the-end is a no-op. Keys with no revisions left may be visited;
 * keyindex_cursor_get at a revision tells whether the key exists then. */
void keyindex_seek_ge(const struct keyindex *ki, const uint8_t *key,
		      size_t klen, struct keyindex_cursor *c);
void keyindex_seek_lt(const struct keyindex *ki, const uint8_t *key,
		      size_t klen, struct keyindex_cursor *c);
void keyindex_seek_first(const struct keyindex *ki, struct keyindex_cursor *c);
bool keyindex_cursor_key(const struct keyindex_cursor *c, const uint8_t **key,
			 size_t *klen);
/* As keyindex_get for the key under the cursor; -ENOENT past the end. */
int keyindex_cursor_get(const struct keyindex_cursor *c, int64_t at_rev,
			struct keyindex_hit *hit);
void keyindex_cursor_next(struct keyindex_cursor *c);
void keyindex_cursor_prev(struct keyindex_cursor *c);

/* Walk the whole index and check the invariants listed at the top of
 * keyindex.c (tree shape and order, leaf links, key count, each key's
 * generations and revisions). For tests and debug builds: O(n).
 * Returns 0, or -EFAULT if something is broken. */
int keyindex_check(const struct keyindex *ki);

#endif
