/* engine: the one seam between cairn's core and a storage engine.
 *
 * An engine stores named buckets of ordered (key, value) byte pairs in one
 * data file (or directory) and gives:
 *   - one implicit write batch: put/del/bucket_create accumulate, commit
 *     makes them visible and (with sync) durable, atomically: after a crash
 *     either all of a committed batch is there or none of it;
 *   - read views: a consistent snapshot of the last commit when the view
 *     was opened, in which point gets and ordered scans run; later commits
 *     do not disturb an open view; readers never block the writer and the
 *     writer never blocks readers;
 *   - size reporting, defragmentation and a full consistent copy to a file
 *     descriptor (for the Snapshot RPC and backups).
 *
 * Keys order bytewise (memcmp, shorter first on a tie). Keys are 1..64 KiB,
 * values 0..(at least) 2 MiB.
 *
 * Threads: an engine and its views/iterators are used from one thread at
 * a time (cairn's loop thread), except where an op says otherwise.
 *
 * Errors: 0 on success, -errno (-ENOMEM, -EIO, -ENOENT for a missing
 * bucket or key, -EINVAL for bad arguments), never a crash.
 *
 * Bucket names are etcd's: "key", "meta", "lease", "members",
 * "members_removed", "cluster", "alarm", "auth", "authUsers", "authRoles".
 */
#ifndef CAIRN_ENGINES_ENGINE_H
#define CAIRN_ENGINES_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENGINE_OPS_VERSION 1

struct engine;	    /* one open data file; the implementation's struct */
struct engine_view; /* a read snapshot */
struct engine_iter; /* an ordered scan inside a view */

/* A borrowed byte range. Lifetime is stated where one is returned. */
struct engine_slice {
	const uint8_t *p;
	size_t n;
};

struct engine_config {
	/* Advisory: an engine may cap its caches to this many bytes. */
	uint64_t cache_bytes;
	/* Advisory upper bound on the data size (--quota-backend-bytes). */
	uint64_t quota_bytes;
};

struct engine_ops {
	int version; /* ENGINE_OPS_VERSION */
	const char *name; /* "bolt", "sqlite", "rocksdb" */

	/* Open (creating if absent) the engine's data at path, e.g.
	 * DATA_DIR/member/snap/db. *out is owned by the caller; free with
	 * close. Errors: -errno; -EINVAL if the file is not this engine's. */
	int (*open)(const char *path, const struct engine_config *cfg,
		    struct engine **out);
	/* Close; an uncommitted batch is discarded. Views must be closed. */
	void (*close)(struct engine *e);

	/* Write batch. bucket_create is idempotent. put/del into a bucket
	 * that does not exist (in committed data or this batch): -ENOENT.
	 * del of an absent key is 0. The engine copies keys and values. */
	int (*bucket_create)(struct engine *e, const char *bucket);
	int (*put)(struct engine *e, const char *bucket, const void *key,
		   size_t klen, const void *val, size_t vlen);
	int (*del)(struct engine *e, const char *bucket, const void *key,
		   size_t klen);
	/* Commit the batch (an empty batch is a no-op returning 0). With
	 * sync the data is on stable storage when commit returns. On error
	 * the batch is discarded and committed data is unchanged. */
	int (*commit)(struct engine *e, bool sync);

	/* Read views: a snapshot of the committed data now. Owned by the
	 * caller; close before closing the engine. */
	int (*view_open)(struct engine *e, struct engine_view **out);
	void (*view_close)(struct engine_view *v);
	/* Point get: 0 and *val set (valid until the next call on v or its
	 * close), or -ENOENT (no such key or bucket). */
	int (*get)(struct engine_view *v, const char *bucket, const void *key,
		   size_t klen, struct engine_slice *val);
	/* Ordered scan of keys k with start <= k < end (end NULL/0: to the
	 * last key; start NULL/0: from the first). reverse walks from the
	 * largest such key down. An absent bucket yields an empty scan. */
	int (*iter_open)(struct engine_view *v, const char *bucket,
			 const void *start, size_t slen, const void *end,
			 size_t elen, bool reverse, struct engine_iter **out);
	/* 1 and key/val set (valid until the next iter call), 0 at the end,
	 * or -errno. */
	int (*iter_next)(struct engine_iter *it, struct engine_slice *key,
			 struct engine_slice *val);
	void (*iter_close)(struct engine_iter *it);

	/* Bytes the data takes on disk, and bytes in use by live data. */
	int (*size)(struct engine *e, uint64_t *size, uint64_t *in_use);
	/* Reclaim free space (may block; no views may be open). */
	int (*defrag)(struct engine *e);
	/* Write a consistent copy of the committed data to fd, in the
	 * engine's own file format (bolt: a bbolt file). May run on a helper
	 * thread while the loop commits; *written is the byte count. */
	int (*snapshot)(struct engine *e, int fd, uint64_t *written);
	/* Library version, e.g. "3.40.1" for sqlite. Static string. */
	const char *(*lib_version)(void);
};

/* Registry of the engines built in (configure decides which). */
const struct engine_ops *engine_find(const char *name);
/* NULL-terminated list of built-in engines, default first. */
const struct engine_ops *const *engine_list(void);
/* The default engine's name. */
const char *engine_default_name(void);

/* An open engine with its ops: what the core holds. */
struct engine_handle {
	const struct engine_ops *ops;
	struct engine *e;
};

static inline int engine_put(struct engine_handle *h, const char *b,
			     const void *k, size_t kl, const void *v, size_t vl)
{
	return h->ops->put(h->e, b, k, kl, v, vl);
}

static inline int engine_del(struct engine_handle *h, const char *b,
			     const void *k, size_t kl)
{
	return h->ops->del(h->e, b, k, kl);
}

static inline int engine_bucket_create(struct engine_handle *h, const char *b)
{
	return h->ops->bucket_create(h->e, b);
}

static inline int engine_commit(struct engine_handle *h, bool sync)
{
	return h->ops->commit(h->e, sync);
}

static inline int engine_view_open(struct engine_handle *h,
				   struct engine_view **out)
{
	return h->ops->view_open(h->e, out);
}

static inline void engine_view_close(struct engine_handle *h,
				     struct engine_view *v)
{
	h->ops->view_close(v);
}

static inline int engine_get(struct engine_handle *h, struct engine_view *v,
			     const char *b, const void *k, size_t kl,
			     struct engine_slice *val)
{
	return h->ops->get(v, b, k, kl, val);
}

static inline int engine_iter_open(struct engine_handle *h,
				   struct engine_view *v, const char *b,
				   const void *s, size_t sl, const void *e,
				   size_t el, bool reverse,
				   struct engine_iter **out)
{
	return h->ops->iter_open(v, b, s, sl, e, el, reverse, out);
}

static inline int engine_iter_next(struct engine_handle *h,
				   struct engine_iter *it,
				   struct engine_slice *k,
				   struct engine_slice *v)
{
	return h->ops->iter_next(it, k, v);
}

static inline void engine_iter_close(struct engine_handle *h,
				     struct engine_iter *it)
{
	h->ops->iter_close(it);
}

static inline int engine_size(struct engine_handle *h, uint64_t *size,
			      uint64_t *in_use)
{
	return h->ops->size(h->e, size, in_use);
}

static inline int engine_defrag(struct engine_handle *h)
{
	return h->ops->defrag(h->e);
}

static inline int engine_snapshot(struct engine_handle *h, int fd,
				  uint64_t *written)
{
	return h->ops->snapshot(h->e, fd, written);
}

/* Open engine `name` at path into *h. -ENOENT if no such engine is built
 * in; otherwise the engine's open errors. */
int engine_open(const char *name, const char *path,
		const struct engine_config *cfg, struct engine_handle *h);
void engine_close(struct engine_handle *h);

#endif
