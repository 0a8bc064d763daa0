/* bolt_int.h: the bolt engine's internal structures, shared by its files
 * (bolt.c ops and commit, cursor.c read path, node.c write path,
 * freelist.c, check.c). Not a public contract: see bolt.h.
 */
#ifndef CAIRN_ENGINES_BOLT_INT_H
#define CAIRN_ENGINES_BOLT_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "engines/bolt/bolt.h"
#include "engines/bolt/format.h"
#include "engines/engine.h"

#define BOLT_MAX_DEPTH 48	      /* B+tree depth guard against loops */
#define BOLT_MAX_KEY (64u << 10)      /* engine.h: keys up to 64 KiB */
#define BOLT_MAX_VAL ((1u << 31) - 2) /* bbolt's MaxValueSize */
#define BOLT_FILL_PCT 90      /* split fill; etcd's for sequential keys */
#ifndef BOLT_EAGER_SPLIT      /* a test build may lower it to stress splits */
#define BOLT_EAGER_SPLIT 2048 /* inodes: split during a batch above */
#endif

/* A read-only MAP_SHARED mapping of the file; refcounted so a view keeps
 * the mapping it started with after a commit remaps a grown file. */
struct bolt_map {
	uint8_t *base;
	size_t len;
	int refs; /* under engine.mu */
};

struct bolt_meta {
	uint32_t psz;
	uint32_t flags;
	uint64_t root, seq;
	uint64_t freelist;
	uint64_t pgid; /* high water */
	uint64_t txid;
};

/* Where a read walks pages: one mapping plus the bounds of one meta. */
struct bolt_rctx {
	const uint8_t *base;
	size_t len;
	uint32_t psz;
	uint64_t hw;
};

/* The root of one B+tree: a page, or an inline leaf page (bucket value). */
struct bolt_root {
	uint64_t pgid;
	const uint8_t *inl; /* non-NULL: inline page of inl_len bytes */
	size_t inl_len;
};

/* ---- allocation, with a failure hook for tests ---- */

/* Test hook (bolt_test_fail_alloc): allocations left before every one
 * fails; < 0: never. Not atomic: tests set it with no helper running. */
extern long bolt_alloc_countdown;

static inline bool bolt_alloc_fails(void)
{
	if (bolt_alloc_countdown < 0)
		return false;
	if (bolt_alloc_countdown == 0)
		return true;
	bolt_alloc_countdown--;
	return false;
}

static inline void *bolt_malloc(size_t n)
{
	return bolt_alloc_fails() ? NULL : malloc(n);
}

static inline void *bolt_calloc(size_t n, size_t sz)
{
	return bolt_alloc_fails() ? NULL : calloc(n, sz);
}

static inline void *bolt_realloc(void *p, size_t n)
{
	return bolt_alloc_fails() ? NULL : realloc(p, n);
}

static inline char *bolt_strdup(const char *s)
{
	return bolt_alloc_fails() ? NULL : strdup(s);
}

static inline char *bolt_strndup(const char *s, size_t n)
{
	return bolt_alloc_fails() ? NULL : strndup(s, n);
}

/* ---- freelist.c ---- */
struct bolt_pending {
	uint64_t txid;
	uint64_t *ids;
	size_t n, cap;
};

struct bolt_pendq {
	struct bolt_pending *p; /* ascending txid */
	size_t n, cap;
};

struct bolt_freelist {
	uint64_t *ids; /* sorted, free now */
	size_t n, cap;
	struct bolt_pendq pend; /* freed: waiting for the readers */
	struct bolt_pendq pin;	/* of the synced tree: also for a sync */
};

void bolt_fl_destroy(struct bolt_freelist *fl);
/* Take npages contiguous free pages: 0 and *pgid, or -ENOENT. */
int bolt_fl_alloc(struct bolt_freelist *fl, uint32_t npages, uint64_t *pgid);
/* Give back pages taken by bolt_fl_alloc (a failed commit). */
int bolt_fl_unalloc(struct bolt_freelist *fl, uint64_t pgid, uint32_t np);
/* Pages [pgid, pgid+np) freed by txid: pending until released; pin:
 * they belong to the last synced tree (freelist.c invariant 4). */
int bolt_fl_free(struct bolt_freelist *fl, uint64_t txid, uint64_t pgid,
		 uint32_t np, bool pin);
/* Drop pending and pinned pages of txid (a failed commit). */
void bolt_fl_rollback(struct bolt_freelist *fl, uint64_t txid);
/* Make reusable: pending pages freed by transactions <= readers (the
 * oldest txid a reader reads), pinned ones freed by transactions <= both
 * readers and synced (the last synced txid). */
int bolt_fl_release(struct bolt_freelist *fl, uint64_t readers,
		    uint64_t synced);
size_t bolt_fl_count(const struct bolt_freelist *fl);
/* All free and pending ids, sorted, into out (bolt_fl_count() slots). */
void bolt_fl_copyall(const struct bolt_freelist *fl, uint64_t *out);
/* Replace the free set by n sorted ids (copied); pending is emptied. */
int bolt_fl_set(struct bolt_freelist *fl, const uint64_t *ids, size_t n);

/* ---- cursor.c: read path over committed pages ---- */
struct bolt_cursor {
	struct bolt_rctx rc;
	struct bolt_root root;
	struct {
		const uint8_t *p;
		size_t span;
		int n, i;
		bool leaf;
	} st[BOLT_MAX_DEPTH];
	int depth;
};

/* The page pgid with its overflow: 0 and *p, *span, or -EIO. */
int bolt_page(const struct bolt_rctx *rc, uint64_t pgid, const uint8_t **p,
	      size_t *span);
/* Element i of page p (span bytes): key and, for a leaf, value/flags;
 * for a branch the child pgid. -EIO when it points outside the page. */
int bolt_elem(const uint8_t *p, size_t span, int i, bool leaf,
	      const uint8_t **k, uint32_t *kn, const uint8_t **v, uint32_t *vn,
	      uint32_t *flags, uint64_t *child);
int bolt_keycmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);
/* A bucket value (header [+ inline page]) as a tree root. -EIO if bad. */
int bolt_bucket_root(const uint8_t *v, uint32_t vn, struct bolt_root *r,
		     uint64_t *seq);

void bolt_cursor_init(struct bolt_cursor *c, const struct bolt_rctx *rc,
		      const struct bolt_root *root);
/* Each: 1 positioned on an element, 0 past either end, -EIO. */
int bolt_cursor_seek(struct bolt_cursor *c, const void *k, size_t kn);
int bolt_cursor_first(struct bolt_cursor *c);
int bolt_cursor_last(struct bolt_cursor *c);
int bolt_cursor_next(struct bolt_cursor *c);
int bolt_cursor_prev(struct bolt_cursor *c);
int bolt_cursor_cur(struct bolt_cursor *c, const uint8_t **k, uint32_t *kn,
		    const uint8_t **v, uint32_t *vn, uint32_t *flags);
/* Exact lookup: 0 with the element, -ENOENT, -EIO. */
int bolt_tree_get(const struct bolt_rctx *rc, const struct bolt_root *root,
		  const void *k, size_t kn, const uint8_t **v, uint32_t *vn,
		  uint32_t *flags);
/* A top-level bucket of the tree rooted at the meta's root. */
int bolt_bucket_find(const struct bolt_rctx *rc, uint64_t root_pgid,
		     const char *name, struct bolt_root *r);

/* ---- node.c: write path (materialized nodes of one transaction) ---- */
struct bolt_node;

struct bolt_inode {
	const uint8_t *k, *v; /* into the map or the batch's copies */
	uint32_t kn, vn;
	uint32_t flags;		 /* leaf: BOLT_LEAF_BUCKET */
	uint64_t pgid;		 /* branch: child page, 0 if new */
	struct bolt_node *child; /* branch: materialized child */
};

struct bolt_node {
	struct bolt_node *parent;
	struct bolt_inode *in;
	uint32_t n, cap;
	uint64_t pgid; /* page it was read from; 0 when new */
	bool leaf;
};

/* A dirty page run built by a commit. */
struct bolt_dirty {
	uint64_t pgid;
	uint32_t np;
	uint8_t *buf;
};

/* The last synced transaction S (format.h's slot rule): its txid, high
 * water and the pages free in it (sorted): a page below hw and not in
 * free[] belongs to S's tree (or is its freelist page). */
struct bolt_synced {
	uint64_t txid, hw;
	uint64_t *free;
	size_t nfree;
};

/* One commit in progress (or the batch's read side before it). */
struct bolt_tx {
	struct bolt_rctx rc;
	uint32_t psz;
	uint64_t txid;
	uint64_t hw; /* grows as pages are taken past the high water */
	struct bolt_freelist *fl;
	const struct bolt_synced *sy;
	struct bolt_dirty *dirty;
	size_t ndirty, capdirty;
	struct {
		uint64_t pgid;
		uint32_t np;
	} * allocs; /* taken from the freelist, for a rollback */
	size_t nallocs, capallocs;
};

/* A tree under change: its root as committed and its materialized root. */
struct bolt_tree {
	struct bolt_root croot;
	struct bolt_node *root;
};

int bolt_tree_put(const struct bolt_rctx *rc, struct bolt_tree *t,
		  const uint8_t *k, uint32_t kn, const uint8_t *v, uint32_t vn,
		  uint32_t flags);
int bolt_tree_del(const struct bolt_rctx *rc, struct bolt_tree *t,
		  const uint8_t *k, uint32_t kn);
/* Merge underfull nodes, free emptied pages (into tx's pending). */
int bolt_tree_rebalance(struct bolt_tx *tx, struct bolt_tree *t);
/* The tree as an inline bucket value (header + page) if it fits: 1 and
 * *out (malloc'd, owned by the caller), else 0; -ENOMEM. Frees the old
 * root page when it inlines. */
int bolt_tree_inline(struct bolt_tx *tx, struct bolt_tree *t, uint64_t seq,
		     uint8_t **out, uint32_t *outn);
/* Write every materialized node to new pages: 0 and *root_pgid. */
int bolt_tree_spill(struct bolt_tx *tx, struct bolt_tree *t,
		    uint64_t *root_pgid);
void bolt_tree_drop(struct bolt_tree *t);
int bolt_tx_alloc(struct bolt_tx *tx, uint32_t np, uint64_t *pgid);
int bolt_tx_free_page(struct bolt_tx *tx, uint64_t pgid);
int bolt_tx_dirty(struct bolt_tx *tx, uint64_t pgid, uint32_t np, uint8_t *buf);

/* ---- bolt.c: the engine ---- */
struct bolt_wbucket {
	char *name;
	struct bolt_tree tree;
	uint64_t seq;
	bool created; /* absent from the committed root bucket */
};

struct engine {
	char *path;
	int fd;
	uint32_t psz;
	const struct bolt_file_ops *fops;
	bool strict; /* run bolt_check after every commit */

	pthread_mutex_t mu; /* meta, map, readers, defragging: snapshot */
	struct bolt_meta meta;
	struct bolt_map *map;
	uint64_t file_size;
	uint64_t *readers; /* txids of open views and snapshots */
	size_t nreaders, capreaders;
	bool defragging;

	struct bolt_freelist fl; /* owner thread only */
	struct bolt_synced sy;	 /* owner thread only */
	int views;
	bool unsynced; /* a commit(false) since the last synced commit */
	bool poisoned; /* a meta write failed: commits fail until reopen */

	struct bolt_wbucket *wb; /* the batch: buckets it touches */
	size_t nwb, capwb;
	uint8_t **copies; /* the batch's key/value copies */
	size_t ncopies, capcopies;
};

/* ---- bolt.c internals, shared by commit.c, view.c, maint.c ---- */
struct engine_view {
	struct engine *e;
	struct bolt_map *map;  /* a reference: alive while the view is */
	struct bolt_meta meta; /* pinned: its txid is in e->readers */
	struct bolt_rctx rc;
};

struct engine_iter {
	struct engine_view *v;
	struct bolt_cursor c;
	bool has_bucket, started, done, reverse;
	uint8_t *start, *end; /* copies of the bounds */
	size_t slen, elen;
};

/* The file layer: whole writes (-errno, -EIO on a zero write) and sync. */
int bolt_f_writev(struct engine *e, struct iovec *iov, int cnt, off_t off);
int bolt_f_write(struct engine *e, const void *p, size_t n, off_t off);
int bolt_f_sync(struct engine *e);
/* Plain fd I/O for snapshots: whole or -errno/-EIO. */
int bolt_read_full(int fd, uint8_t *p, size_t n, off_t off);
/* Meta m into a full page with header id. */
void bolt_meta_encode(const struct bolt_meta *m, uint8_t *page, uint64_t id);
/* The running boot's tag (format.h; 0 if unknown) and the flags of a
 * meta written now, synced or not. */
uint32_t bolt_boot_tag(void);
uint32_t bolt_meta_flags(bool sync);
/* Open may use m (format.h's open rule): synced or from this boot. */
bool bolt_meta_trusted(const struct bolt_meta *m);
/* S := the committed meta (after a synced commit or at open), its free
 * pages copied from the in-memory freelist. Out of memory: no free pages
 * (every page below S's high water counts as S's: safe, the file grows
 * until the next synced commit). */
void bolt_synced_set(struct engine *e);
/* Make the committed meta, written unsynced, synced: fdatasync, rewrite
 * it with flags 0 in its own page (the one not holding S), fdatasync.
 * 0; -errno from the file (after the first sync: e->poisoned); -ENOMEM. */
int bolt_seal(struct engine *e);
/* A new mapping of len bytes of fd with one reference. */
int bolt_map_new(int fd, size_t len, struct bolt_map **out);
/* Drop a reference (under e->mu); the last one unmaps. NULL is fine. */
void bolt_map_unref(struct bolt_map *m);
/* Read context of the committed meta over the current mapping. */
struct bolt_rctx bolt_e_rctx(const struct engine *e);
/* bbolt's file growth: double from 32 KiB to 1 GiB, then 1 GiB steps. */
uint64_t bolt_grow_size(uint64_t need);
/* The readers list (under e->mu). */
int bolt_readers_add(struct engine *e, uint64_t txid);
void bolt_readers_del(struct engine *e, uint64_t txid);
uint64_t bolt_readers_min(struct engine *e);
/* (Re)open e->path into e (fd, lock, meta, map, freelist); unload undoes. */
int bolt_load(struct engine *e);
void bolt_unload(struct engine *e);
/* End the batch: drop its trees and copies. */
void bolt_batch_reset(struct engine *e);
/* Keep p (malloc'd) until the batch ends. */
int bolt_batch_keep(struct engine *e, uint8_t *p);

/* The ops (engine.h semantics; bolt.h for what is bolt's own). */
int bolt_open(const char *path, const struct engine_config *cfg,
	      struct engine **out);
void bolt_close(struct engine *e);
int bolt_bucket_create(struct engine *e, const char *bucket);
int bolt_put(struct engine *e, const char *bucket, const void *key, size_t klen,
	     const void *val, size_t vlen);
int bolt_del(struct engine *e, const char *bucket, const void *key,
	     size_t klen);
int bolt_commit(struct engine *e, bool sync);
int bolt_view_open(struct engine *e, struct engine_view **out);
void bolt_view_close(struct engine_view *v);
int bolt_get(struct engine_view *v, const char *bucket, const void *key,
	     size_t klen, struct engine_slice *val);
int bolt_iter_open(struct engine_view *v, const char *bucket, const void *start,
		   size_t slen, const void *end, size_t elen, bool reverse,
		   struct engine_iter **out);
int bolt_iter_next(struct engine_iter *it, struct engine_slice *key,
		   struct engine_slice *val);
void bolt_iter_close(struct engine_iter *it);
int bolt_size(struct engine *e, uint64_t *size, uint64_t *in_use);
int bolt_snapshot(struct engine *e, int fd, uint64_t *written);
int bolt_defrag(struct engine *e);

/* ---- check.c ---- */
int bolt_check_tree(const struct bolt_rctx *rc, const struct bolt_root *r,
		    uint8_t *seen, char *err, size_t errlen);
/* Walk every page reachable from the meta (trees, nested buckets) and
 * count each in seen[] (hw bytes). Used by the checker and to rebuild a
 * freelist that was not synced. */
int bolt_mark_reachable(const struct bolt_rctx *rc, uint64_t root,
			uint8_t *seen, char *err, size_t errlen);

#endif
