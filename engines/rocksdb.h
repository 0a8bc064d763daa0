/* rocksdb: the RocksDB storage engine (engines/engine.h is the contract).
 *
 * Built when configure defines HAVE_ROCKSDB (link -lrocksdb); the registry
 * (engines/engine.c) lists it as "rocksdb". Uses only RocksDB's C API
 * (rocksdb/c.h).
 *
 * On disk: the engine path is a DIRECTORY (created if absent, its parent
 * must exist) holding one RocksDB database with a single column family.
 *
 * Why one column family with a bucket prefix, not a column family per
 * bucket: creating a column family is a MANIFEST write of its own, outside
 * any WriteBatch, so it cannot be atomic with the batch that creates the
 * bucket (engine.h wants a bucket created in an uncommitted batch to be
 * gone after a crash); and every column family has its own memtable, its
 * own SST files and pins the WAL files until it flushes, which costs
 * memory and disk on the small machines cairn targets (the conformance
 * suite creates 120 buckets). One key space keeps one memtable, one flush
 * and one compaction schedule. Key layout (all in the default CF):
 *
 *   KEY                              VALUE
 *   00 00 00 00                      "cairn-rocksdb 1" (format marker)
 *   00 00 00 00 | bucket name        bucket id, 4 bytes big-endian (>= 1)
 *   id (4 bytes BE) | user key       user value
 *
 * Big-endian ids keep each bucket's keys contiguous and in engine.h's
 * bytewise order. A bucket's registry entry goes into the same WriteBatch
 * as the first writes into it, so bucket creation is atomic with its batch.
 *
 * Beyond engine.h:
 *   - bucket names are 1..ROCKSDB_ENGINE_BUCKET_MAX bytes, else -EINVAL;
 *     keys 1..ROCKSDB_ENGINE_KEY_MAX bytes;
 *   - open refuses (-EINVAL) a RocksDB directory that has keys but not the
 *     format marker (an empty one is claimed) and a regular file that is
 *     not a snapshot container (below); a
 *     directory locked by another open (this or another process): -EBUSY;
 *     a missing parent directory: -ENOENT;
 *   - open of a regular file holding a snapshot container (what snapshot
 *     wrote) turns it into a database directory in place (see "Restore in
 *     place" below), so a copy written by snapshot opens like a bolt or
 *     sqlite file does;
 *   - commit(e, false) writes the batch to RocksDB's WAL (write(2), not
 *     fsynced): it survives a crash of the process, not of the machine.
 *     commit(e, true) fsyncs the WAL, which makes every earlier commit
 *     durable too, even when the batch is empty (then it is only a WAL
 *     sync);
 *   - errors map RocksDB's status text to -errno: -ENOSPC, -EACCES,
 *     -EROFS, -ENOENT, -EBUSY (lock held), -EINVAL, -ENOTSUP, else -EIO
 *     (I/O error, corruption). RocksDB's C API cannot report out of
 *     memory (C++ new throws and the process aborts); cairn's own
 *     allocations return -ENOMEM;
 *   - views are RocksDB snapshots; get returns a pinned slice (no copy);
 *     iterators carry their own bounds and must be closed before their
 *     view;
 *   - size: live SST bytes + WAL bytes; in_use: RocksDB's estimate of live
 *     SST data + WAL bytes (what is still in the memtables), at most size;
 *   - defrag returns -EBUSY while a view is open, commits a pending batch
 *     (without sync), flushes the memtable and compacts the whole key
 *     range down to the last level (tombstones dropped);
 *   - snapshot makes a RocksDB checkpoint (hard links to the SST files,
 *     after a memtable flush) in "<path>.snap-XXXXXX" next to the
 *     directory, writes it to fd as the container below and removes it;
 *     it uses only the thread-safe DB handle, so it may run on a helper
 *     thread while the owner thread commits.
 *
 * Snapshot container format (version 1). Integers little-endian.
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       8     magic "CAIRNRDB"
 *   8       4     format version (1)
 *   12      4     N, the number of files
 *   16      ...   N file entries, in strcmp order of their names:
 *     +0      2     L, name length, 1..255
 *     +2      L     name: a plain file name (no '/', no NUL, not "." or
 *                   "..") of the checkpoint directory
 *     +2+L    8     S, file size in bytes
 *     +10+L   S     the file's bytes
 *     +10+L+S 4     CRC-32C (core/util/crc32c.h) of the S bytes
 *   end     8     trailer "CAIRNEND"
 *
 * The files are a complete RocksDB database directory (CURRENT, MANIFEST,
 * OPTIONS, *.sst, *.log); unpacked into an empty directory it opens with
 * this engine, and with RocksDB's own tools (ldb) as a plain database.
 *
 * Restore in place (open of a container file at path P), crash-safe:
 *
 *   P=file ---unpack into P.unpack, fsync---> P=file, P.unpack=dir
 *          ---rename P -> P.archive----------> P.archive, P.unpack
 *          ---rename P.unpack -> P, fsync----> P=dir, P.archive
 *          ---unlink P.archive---------------> P=dir
 *
 * An open that finds one of the intermediate states finishes the steps
 * (a P.unpack next to a container file P is partial and is redone).
 */
#ifndef CAIRN_ENGINES_ROCKSDB_H
#define CAIRN_ENGINES_ROCKSDB_H

#include "engines/engine.h"

#define ROCKSDB_ENGINE_BUCKET_MAX 255
#define ROCKSDB_ENGINE_KEY_MAX (1u << 20)
#define ROCKSDB_ENGINE_MAGIC "CAIRNRDB"
#define ROCKSDB_ENGINE_TRAILER "CAIRNEND"

extern const struct engine_ops rocksdb_engine_ops;

/* Read one snapshot container from fd (at its current offset, reading
 * sequentially: a pipe or socket works) and unpack it into dir, which
 * must not exist yet and whose parent must. Files are fsynced, then dir.
 * On error dir is removed again.
 *
 * fd:  borrowed, read up to and including the trailer.
 * dir: borrowed for the call.
 * Errors: -EINVAL (not a container, bad name, CRC mismatch, truncated),
 * -EEXIST (dir exists), -ENOMEM, -errno of read/mkdir/open/write/fsync.
 */
int rocksdb_engine_restore(int fd, const char *dir);

#endif
