/* bolt: cairn's native storage engine, one file in bbolt's on-disk format
 * (etcd's backend; the format is engines/bolt/format.h). engines/engine.h
 * is the contract; this header adds what is bolt's own.
 *
 * Model: a copy-on-write B+tree per bucket, buckets are the top-level
 * buckets of the root bucket (etcd's "key", "meta", ...). A commit writes
 * the dirty pages to pages that no committed tree uses, then the meta
 * page txid % 2; readers read a MAP_SHARED read-only mapping and never
 * block the writer, which writes with pwrite.
 *
 * Beyond engine.h:
 *   - open takes an exclusive flock on the file (-EBUSY if another
 *     process, e.g. etcd, holds it); a foreign or damaged file whose two
 *     meta pages are both invalid is -EINVAL; an existing file keeps its
 *     page size (1..64 KiB, from its meta), a new one gets the OS page
 *     size; a meta saying the freelist was not synced (bbolt's
 *     NoFreelistSync) is fine: the freelist is rebuilt by a tree walk;
 *     open writes when the newest meta is an unsynced one of this boot
 *     (after a process crash): it makes it synced first (fdatasync, meta
 *     rewritten, fdatasync; their -errno fail the open);
 *   - bucket names are 1..64 KiB bytes, keys 1..64 KiB, values up to
 *     2 GiB - 2 (bbolt's limit), else -EINVAL; a put/del/bucket_create
 *     that fails changes nothing and the batch stays open;
 *   - memory: a batch decodes only the pages on the paths it touches
 *     (plus siblings it merges with) and holds copies of its keys and
 *     values; a commit holds its dirty pages until written; no cache;
 *   - commit(e, true): write pages, fdatasync, write meta, fdatasync; a
 *     crash or power loss at any byte leaves the last such commit
 *     intact. commit(e, false) does the same writes in the same order
 *     without fdatasync and flags its meta unsynced (format.h): it
 *     survives a process crash (a reopen in the same boot opens the
 *     newest commit, making it synced first: two fdatasyncs); after a
 *     power loss (any subset of its writes lost or torn) the file opens
 *     at the last synced commit, logging that later ones were dropped.
 *     commit(e, true) with an empty batch after unsynced ones makes the
 *     newest durable (fdatasync, its meta rewritten synced, fdatasync);
 *   - pages freed by transaction T are reused only once every open view
 *     and snapshot reads a meta of txid >= T, and, if they belong to the
 *     tree of the last synced commit S, once a synced commit follows T:
 *     between synced commits the file may grow by S's rewritten pages;
 *   - txids grow but may skip one (a commit after an unsynced one takes
 *     the parity that keeps S's meta page unwritten);
 *   - defrag returns -EBUSY while a view or snapshot is open; it commits
 *     the pending batch, copies every bucket into "<path>.defrag" and
 *     renames it over the file (like etcd's defrag);
 *   - snapshot is bbolt's Tx.WriteTo: two meta pages then the data pages
 *     up to the high water, read with pread; safe on a helper thread while
 *     the owner thread commits (it pins its txid under a mutex);
 *   - size: the file size; in_use: (high water - free - pending) * page;
 *   - errors: -ENOMEM, -EIO (short write, a page pointing outside the
 *     file: corruption; every call after a defrag that could not reopen
 *     the file), -ENOSPC and other -errno from the file calls. A commit
 *     whose data fdatasync fails returns its error with the batch
 *     discarded and nothing changed; when writing or syncing the meta
 *     fails, the file may hold the new meta already, so every later
 *     commit returns -EIO until the engine is closed and reopened (which
 *     picks whichever meta is valid).
 *   - buckets hold no nested buckets through this API; nested buckets in
 *     a foreign file are kept, skipped by get and scans, walked by the
 *     checker and dropped by defrag.
 */
#ifndef CAIRN_ENGINES_BOLT_H
#define CAIRN_ENGINES_BOLT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "engines/engine.h"

extern const struct engine_ops bolt_engine_ops;

/* The file layer every write of an engine goes through. Each returns what
 * the libc call returns (-1 with errno set on failure). ctx is passed
 * back. The default calls pwritev/fdatasync/ftruncate. */
struct bolt_file_ops {
	ssize_t (*pwritev)(void *ctx, int fd, const struct iovec *iov, int cnt,
			   off_t off);
	int (*fdatasync)(void *ctx, int fd);
	int (*ftruncate)(void *ctx, int fd, off_t len);
	void *ctx;
};

/* Test hooks (process-wide; set before opening the engines they affect;
 * not thread-safe). ops NULL restores the default file layer; ops must
 * outlive the engines opened with it. strict: run bolt_check after every
 * commit and fail the commit with -EIO (logging why) on any damage. */
void bolt_test_set_file_ops(const struct bolt_file_ops *ops);
void bolt_test_set_strict(bool strict);
/* Test hook: the boot tag unsynced metas carry and open trusts (format.h);
 * a new nonzero tag simulates a reboot (power loss), 0 restores the real
 * one. Returns the tag in effect before. */
uint32_t bolt_test_set_boot_tag(uint32_t tag);
/* Test hook: after `after` more successful allocations inside the engine,
 * every allocation fails (-ENOMEM paths) until called again; -1: never.
 * Returns the previous countdown (0: allocations were failing). */
long bolt_test_fail_alloc(long after);

/* Consistency check of the committed state of e: the current meta page
 * valid and the other one older if valid; every page below the high
 * water used exactly once: by a tree (buckets, nested buckets, overflow),
 * the freelist page, or as a free/pending id; keys strictly ordered in
 * every node and inside its parent's bounds; the on-disk freelist equal
 * to the in-memory one. 0 if sound, else -EIO with a description in err
 * (errlen bytes; may be NULL); -ENOMEM. Owner thread (a batch may be
 * open: it checks what is committed). */
int bolt_check(struct engine *e, char *err, size_t errlen);

/* The txid of the last commit (tests, tools). */
uint64_t bolt_txid(struct engine *e);

#endif
