/* sqlite: the SQLite storage engine (engines/engine.h is the contract).
 *
 * On disk: one SQLite database at the engine path (plus "<path>-wal" and
 * "<path>-shm" while open), journal_mode=WAL, application_id 0x6361726e
 * ("carn") so that open() can refuse a database that is not cairn's.
 * Bucket B is the table "b_<hex(B)>" (k BLOB PRIMARY KEY, v BLOB)
 * WITHOUT ROWID: hex makes any bucket name a safe identifier, and keys
 * compare as blobs (memcmp, shorter first), which is engine.h's order.
 *
 * Built when configure defines HAVE_SQLITE (link -lsqlite3); the
 * registry (engines/engine.c) lists it as "sqlite".
 *
 * Beyond engine.h:
 *   - bucket names are 1..SQLITE_ENGINE_BUCKET_MAX bytes, else -EINVAL;
 *   - commit(e, false) is synchronous=NORMAL (in the WAL, not yet
 *     fsynced); commit(e, true) fsyncs the WAL, which also makes every
 *     earlier commit(e, false) durable, even when the batch is empty. If
 *     that fsync fails commit returns its -errno with the batch already
 *     committed (visible) but of unknown durability;
 *   - every error a statement returns maps to -errno: -ENOMEM, -ENOSPC
 *     (disk full), -EIO (I/O error, corruption), -EBUSY (locked by
 *     another process), -EROFS, -E2BIG, -EACCES, -EINVAL (not a cairn
 *     database, bad argument), -ENOENT (no such bucket/key/directory);
 *     if SQLite itself rolled the batch back, every later put/del fails
 *     with that error and commit returns it (the batch is never
 *     committed in part);
 *   - each open view holds one read-only SQLite connection (two file
 *     descriptors); up to 4 idle ones are pooled for the next views;
 *   - each open engine runs one helper thread of its own, with its own
 *     connection, that checkpoints the WAL into the database in the
 *     background once it passes 1000 pages, so that commit rarely
 *     fsyncs (commit itself copies the last few hundred pages, and all
 *     of them past 16000); if the thread cannot start, SQLite's own
 *     auto-checkpoint inside commit is used;
 *   - defrag returns -EBUSY while a view is open, commits a pending batch
 *     (without sync), then VACUUMs and truncates the WAL;
 *   - snapshot writes a VACUUM INTO copy (compact, consistent, itself a
 *     valid engine file) through a temporary file "<path>.snap-XXXXXX"
 *     next to the database; it opens its own connection, so it may run
 *     on a helper thread while the owner thread commits;
 *   - iterators must be closed before their view.
 */
#ifndef CAIRN_ENGINES_SQLITE_H
#define CAIRN_ENGINES_SQLITE_H

#include "engines/engine.h"

#define SQLITE_ENGINE_BUCKET_MAX 255

extern const struct engine_ops sqlite_engine_ops;

#endif
