/* sqlite: the SQLite storage engine (contract: engines/engine.h,
 * specifics: engines/sqlite.h).
 *
 * One writer connection holds the implicit batch as one SQLite write
 * transaction. Each read view borrows its own read-only connection from a
 * small pool and pins a WAL snapshot in it, so commits never disturb an
 * open view and views never block the writer. Statements are prepared
 * once (per bucket, per connection) and reset after use: nothing on the
 * hot path parses SQL, and get/iter hand out SQLite's own column buffers.
 * A checkpointer thread (struct sq_ckpt) copies the WAL back into the
 * database so that commits rarely wait for an fsync.
 *
 * Batch state machine (writer connection, e->batch):
 *
 *          first put/del/bucket_create: sq_batch_begin (BEGIN IMMEDIATE)
 *   IDLE ------------------------------------------------------> OPEN
 *    ^  <-- commit ok (COMMIT) / commit fails, close (ROLLBACK) --  |
 *    |                                                              |
 *    |                 a statement failed and SQLite rolled the     |
 *    |                 transaction back by itself (sq_write_failed) |
 *    +---- commit (returns broken_err, sq_batch_discard) <--- BROKEN
 *
 * Invariants:
 * 1. batch == OPEN <=> the writer connection is inside a transaction
 *    (!sqlite3_get_autocommit). In IDLE and BROKEN it is not.
 * 2. In BROKEN every put/del/bucket_create fails with broken_err until
 *    commit reports it: a batch is never committed in part.
 * 3. A struct sq_bucket with pending set had its table created in the
 *    open batch; when that batch is discarded, so is the bucket.
 * 4. Writer statements are reset before the call that stepped them
 *    returns, so they pin no page and no bound buffer of the caller.
 * 5. A reader in e->pool has no open transaction and all its statements
 *    reset. A view owns exactly one reader, inside a read transaction
 *    pinned by a first read (sq_view_open), until view_close.
 * 6. A reader's cached scan statement is used by at most one iterator at
 *    a time (scan_busy); a second iterator prepares its own.
 * 7. At most one checkpoint runs at a time: the writer checkpoints in
 *    sq_wal_hook only while the checkpointer thread is idle (ck.busy),
 *    and only the writer wakes it.
 * 8. Connections close checkpointer first, readers next, writer last: the
 *    last one to close checkpoints and removes the WAL.
 */
#ifdef HAVE_SQLITE /* the whole file: configure found libsqlite3 */

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "core/util/fdio.h"
#include "core/util/log.h"
#include "engines/sqlite.h"

#define SQ_APP_ID 0x6361726e	    /* "carn" */
#define SQ_BUSY_MS 5000		    /* WAL recovery, checkpoint races */
/* Writer page cache. The kernel's page cache holds the db file anyway, so
 * a small private cache costs little read speed (measured: none on
 * point reads over 100k keys) and keeps RSS low on small machines. */
#define SQ_DEFAULT_CACHE (2u << 20)
#define SQ_POOL_MAX 4		    /* idle readers kept open */
#define SQ_COPY_BUF (256u << 10)    /* snapshot copy buffer */
#define SQ_SCAN_VARIANTS 4	    /* (reverse ? 2 : 0) + (end ? 1 : 0) */
#define SQ_CKPT_FRAMES 1000	    /* WAL frames that wake the checkpointer */
#define SQ_CKPT_TAIL 512   /* frames commit copies itself to restart the WAL */
#define SQ_CKPT_HARD 16000 /* frames past which commit always copies */

enum sq_batch { SQ_IDLE, SQ_OPEN, SQ_BROKEN };

struct sq_bucket {
	char *name;
	char *table; /* "b_<hex(name)>", a safe identifier */
	sqlite3_stmt *put;
	sqlite3_stmt *del;
	bool pending; /* created in the open batch */
};

struct sq_rbucket {
	char *name;
	sqlite3_stmt *get;
	sqlite3_stmt *scan[SQ_SCAN_VARIANTS];
	bool scan_busy[SQ_SCAN_VARIANTS];
};

struct sq_reader {
	sqlite3 *db;
	sqlite3_stmt *begin, *end, *pin;
	struct sq_rbucket **b;
	size_t nb, cap;
	struct sq_reader *next; /* e->pool link while idle */
};

/* The background checkpointer: copies the WAL back into the database
 * off the committing thread (SQLite's auto-checkpoint would fsync twice
 * inside some commits: milliseconds on the loop, far more on an SD card).
 * It touches only its own connection and the fields below, under mu. */
struct sq_ckpt {
	pthread_t th;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	sqlite3 *db;  /* the thread's own connection */
	bool want;    /* a pass is requested */
	bool busy;    /* a pass is running */
	unsigned gen; /* WAL restarts seen by the writer */
	int frames;   /* WAL frames at the last commit */
	int done;     /* frames of this WAL the last pass copied */
	bool stop;    /* exit now; the last close checkpoints anyway */
	bool started; /* th runs (else SQLite's auto-checkpoint is on) */
};

struct engine {
	char *path;
	char *wal_path;
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *rollback;
	sqlite3_stmt *page_count, *page_size, *freelist;
	struct sq_bucket **b;
	size_t nb, cap;
	struct sq_bucket *last; /* most recently used bucket */
	enum sq_batch batch;
	int broken_err;
	bool unsynced; /* a commit since the last WAL fsync */
	struct sq_reader *pool;
	int npool;
	int views;
	int reader_cache_kib;
	struct sq_ckpt ck;
};

struct engine_view {
	struct engine *e;
	struct sq_reader *r;
	sqlite3_stmt *last_get; /* holds the value get returned */
};

struct engine_iter {
	sqlite3_stmt *st;
	bool *busy; /* the reader's scan_busy slot, or NULL if st is ours */
	bool done;
};

static const uint8_t sq_empty[1];

static const char *const sq_scan_sql[SQ_SCAN_VARIANTS] = {
	"SELECT k, v FROM %s WHERE k >= ?1 ORDER BY k ASC",
	"SELECT k, v FROM %s WHERE k >= ?1 AND k < ?2 ORDER BY k ASC",
	"SELECT k, v FROM %s WHERE k >= ?1 ORDER BY k DESC",
	"SELECT k, v FROM %s WHERE k >= ?1 AND k < ?2 ORDER BY k DESC",
};

/* ---- errors and small helpers ---- */

static int sq_errno(sqlite3 *db, int rc)
{
	int sys = db ? sqlite3_system_errno(db) : 0;

	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_NOTADB:
		return -EINVAL;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
		return sys > 0 ? -sys : -EIO;
	default:
		return -EIO;
	}
}

static int sq_err(sqlite3 *db, int rc, const char *what)
{
	log_warn("sqlite: %s: %s (%d)", what,
		 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc), rc);
	return sq_errno(db, rc);
}

static bool sq_name_ok(const char *bucket)
{
	size_t n;

	if (!bucket)
		return false;
	n = strlen(bucket);
	return n > 0 && n <= SQLITE_ENGINE_BUCKET_MAX;
}

/* "b_" + lowercase hex: any byte string becomes a plain identifier. */
static char *sq_table_name(const char *bucket)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, n = strlen(bucket);
	char *t = malloc(2 * n + 3);

	if (!t)
		return NULL;
	t[0] = 'b';
	t[1] = '_';
	for (i = 0; i < n; i++) {
		t[2 + 2 * i] = hex[(uint8_t)bucket[i] >> 4];
		t[3 + 2 * i] = hex[(uint8_t)bucket[i] & 15];
	}
	t[2 * n + 2] = '\0';
	return t;
}

static int sq_unhex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Inverse of sq_table_name: 0 and *out (malloc'd), 1 if table is not a
 * bucket table, -ENOMEM. */
static int sq_bucket_name(const char *table, char **out)
{
	size_t i, n;
	char *name;

	if (strncmp(table, "b_", 2) != 0)
		return 1;
	table += 2;
	n = strlen(table);
	if (n == 0 || n % 2 || n / 2 > SQLITE_ENGINE_BUCKET_MAX)
		return 1;
	name = malloc(n / 2 + 1);
	if (!name)
		return -ENOMEM;
	for (i = 0; i < n / 2; i++) {
		int hi = sq_unhex(table[2 * i]),
		    lo = sq_unhex(table[2 * i + 1]);

		if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
			free(name);
			return 1;
		}
		name[i] = (char)(hi << 4 | lo);
	}
	name[n / 2] = '\0';
	*out = name;
	return 0;
}

static int sq_prepare(sqlite3 *db, const char *sql, sqlite3_stmt **st)
{
	int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, st,
				    NULL);

	return rc == SQLITE_OK ? 0 : sq_err(db, rc, sql);
}

/* Prepare a statement on table: fmt has one %s for the table name. */
static int sq_prepare_on(sqlite3 *db, const char *fmt, const char *table,
			 sqlite3_stmt **st)
{
	char *sql = sqlite3_mprintf(fmt, table);
	int err;

	if (!sql)
		return -ENOMEM;
	err = sq_prepare(db, sql, st);
	sqlite3_free(sql);
	return err;
}

/* Step a statement that returns no row, then reset it. */
static int sq_run(sqlite3 *db, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return sq_err(db, rc, what);
}

static int sq_exec(sqlite3 *db, const char *sql)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : sq_err(db, rc, sql);
}

/* One integer from a one-row statement (PRAGMA x). */
static int sq_int(sqlite3 *db, sqlite3_stmt *st, int64_t *out)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return sq_err(db, rc, sqlite3_sql(st));
	return 0;
}

static int sq_int_sql(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int err = sq_prepare(db, sql, &st);

	if (err)
		return err;
	err = sq_int(db, st, out);
	sqlite3_finalize(st);
	return err;
}

/* ---- writer-side bucket cache ---- */

static void sq_bucket_free(struct sq_bucket *b)
{
	if (!b)
		return;
	sqlite3_finalize(b->put);
	sqlite3_finalize(b->del);
	free(b->table);
	free(b->name);
	free(b);
}

/* Add a bucket to the cache; takes ownership of name. */
static int sq_bucket_add(struct engine *e, char *name, bool pending)
{
	struct sq_bucket *b = calloc(1, sizeof(*b));

	if (!b)
		goto fail;
	b->name = name;
	b->table = sq_table_name(name);
	if (!b->table)
		goto fail;
	b->pending = pending;
	if (e->nb == e->cap) {
		size_t cap = e->cap ? 2 * e->cap : 16;
		struct sq_bucket **nb = realloc(e->b, cap * sizeof(*nb));

		if (!nb)
			goto fail;
		e->b = nb;
		e->cap = cap;
	}
	e->b[e->nb++] = b;
	return 0;
fail:
	if (b)
		sq_bucket_free(b);
	else
		free(name);
	return -ENOMEM;
}

static struct sq_bucket *sq_bucket_find(struct engine *e, const char *bucket)
{
	size_t i;

	if (e->last && strcmp(e->last->name, bucket) == 0)
		return e->last;
	for (i = 0; i < e->nb; i++) {
		if (strcmp(e->b[i]->name, bucket) == 0) {
			e->last = e->b[i];
			return e->b[i];
		}
	}
	return NULL;
}

static int sq_buckets_load(struct engine *e)
{
	sqlite3_stmt *st;
	int rc, err;

	err = sq_prepare(e->db,
			 "SELECT name FROM sqlite_master WHERE type = 'table'",
			 &st);
	if (err)
		return err;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);
		char *name = NULL;

		err = t ? sq_bucket_name(t, &name) : -ENOMEM;
		if (err == 1)
			continue; /* not a bucket table */
		if (err == 0)
			err = sq_bucket_add(e, name, false);
		if (err)
			goto out;
	}
	err = rc == SQLITE_DONE ? 0 : sq_err(e->db, rc, "load buckets");
out:
	sqlite3_finalize(st);
	return err;
}

/* ---- the batch ---- */

/* Debug-only check of invariants 1 and 2. */
static void sq_check(const struct engine *e)
{
	assert((e->batch == SQ_OPEN) == !sqlite3_get_autocommit(e->db));
	assert((e->batch == SQ_BROKEN) == (e->broken_err != 0));
	(void)e;
}

static int sq_batch_begin(struct engine *e)
{
	int err;

	sq_check(e);
	if (e->batch == SQ_OPEN)
		return 0;
	if (e->batch == SQ_BROKEN)
		return e->broken_err;
	err = sq_run(e->db, e->begin, "BEGIN");
	if (err)
		return err;
	e->batch = SQ_OPEN;
	return 0;
}

/* A write statement failed with rc. If SQLite rolled the whole
 * transaction back on its own (I/O error, disk full, OOM), the batch is
 * lost: remember it so that commit reports it (invariant 2). */
static int sq_write_failed(struct engine *e, int rc, const char *what)
{
	int err = sq_err(e->db, rc, what);

	if (e->batch == SQ_OPEN && sqlite3_get_autocommit(e->db)) {
		e->batch = SQ_BROKEN;
		e->broken_err = err;
	}
	return err;
}

/* The batch is gone (rolled back): drop buckets it created (inv. 3). */
static void sq_batch_discard(struct engine *e)
{
	size_t i, n = 0;

	if (!sqlite3_get_autocommit(e->db))
		sq_run(e->db, e->rollback, "ROLLBACK");
	for (i = 0; i < e->nb; i++) {
		if (e->b[i]->pending)
			sq_bucket_free(e->b[i]);
		else
			e->b[n++] = e->b[i];
	}
	e->nb = n;
	e->last = NULL;
	e->batch = SQ_IDLE;
	e->broken_err = 0;
	sq_check(e);
}

static int sq_bucket_create(struct engine *e, const char *bucket)
{
	char *name = NULL, *sql = NULL;
	struct sq_bucket *b;
	int rc, err;

	if (!sq_name_ok(bucket))
		return -EINVAL;
	if (sq_bucket_find(e, bucket))
		return 0;
	err = sq_batch_begin(e);
	if (err)
		return err;
	name = strdup(bucket);
	if (!name)
		return -ENOMEM;
	err = sq_bucket_add(e, name, true);
	if (err)
		return err;
	b = e->b[e->nb - 1];
	sql = sqlite3_mprintf("CREATE TABLE IF NOT EXISTS %s "
			      "(k BLOB PRIMARY KEY, v BLOB) WITHOUT ROWID",
			      b->table);
	if (!sql) {
		err = -ENOMEM;
		goto fail;
	}
	rc = sqlite3_exec(e->db, sql, NULL, NULL, NULL);
	sqlite3_free(sql);
	if (rc != SQLITE_OK) {
		err = sq_write_failed(e, rc, "create bucket");
		goto fail;
	}
	return 0;
fail:
	e->nb--;
	e->last = NULL;
	sq_bucket_free(b);
	return err;
}

/* Bucket for a write: -EINVAL bad arguments, -ENOENT no such bucket. */
static int sq_write_prep(struct engine *e, const char *bucket, const void *key,
			 size_t klen, struct sq_bucket **out)
{
	if (!sq_name_ok(bucket) || !key || klen == 0 || klen > INT_MAX)
		return -EINVAL;
	*out = sq_bucket_find(e, bucket);
	if (!*out)
		return -ENOENT;
	return sq_batch_begin(e);
}

static int sq_put(struct engine *e, const char *bucket, const void *key,
		  size_t klen, const void *val, size_t vlen)
{
	struct sq_bucket *b;
	int rc, err;

	if (vlen > INT_MAX || (!val && vlen))
		return -EINVAL;
	err = sq_write_prep(e, bucket, key, klen, &b);
	if (err)
		return err;
	if (!b->put) {
		err = sq_prepare_on(e->db,
				    "INSERT OR REPLACE INTO %s (k, v) "
				    "VALUES (?1, ?2)",
				    b->table, &b->put);
		if (err)
			return err;
	}
	/* STATIC: SQLite reads the buffers only inside this step; a
	 * non-NULL pointer keeps an empty value a blob, not NULL. */
	sqlite3_bind_blob(b->put, 1, key, (int)klen, SQLITE_STATIC);
	sqlite3_bind_blob(b->put, 2, vlen ? val : sq_empty, (int)vlen,
			  SQLITE_STATIC);
	rc = sqlite3_step(b->put);
	sqlite3_reset(b->put);
	return rc == SQLITE_DONE ? 0 : sq_write_failed(e, rc, "put");
}

static int sq_del(struct engine *e, const char *bucket, const void *key,
		  size_t klen)
{
	struct sq_bucket *b;
	int rc, err;

	err = sq_write_prep(e, bucket, key, klen, &b);
	if (err)
		return err;
	if (!b->del) {
		err = sq_prepare_on(e->db, "DELETE FROM %s WHERE k = ?1",
				    b->table, &b->del);
		if (err)
			return err;
	}
	sqlite3_bind_blob(b->del, 1, key, (int)klen, SQLITE_STATIC);
	rc = sqlite3_step(b->del);
	sqlite3_reset(b->del);
	return rc == SQLITE_DONE ? 0 : sq_write_failed(e, rc, "del");
}

/* fsync the WAL: what synchronous=FULL would do at COMMIT (SQLite does
 * not allow changing synchronous inside a transaction, and this also
 * covers earlier unsynced commits). */
static int sq_wal_sync(struct engine *e)
{
	sqlite3_file *f = NULL;
	int rc;

	rc = sqlite3_file_control(e->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
				  &f);
	if (rc == SQLITE_OK && f && f->pMethods) {
		rc = f->pMethods->xSync(f, SQLITE_SYNC_NORMAL);
		if (rc != SQLITE_OK)
			return sq_err(e->db, rc, "fsync wal");
	} else {
		/* No WAL file open: a full checkpoint syncs the database. */
		int err = sq_exec(e->db, "PRAGMA wal_checkpoint(FULL)");

		if (err)
			return err;
	}
	e->unsynced = false;
	return 0;
}

static int sq_commit(struct engine *e, bool sync)
{
	size_t i;
	int rc, err;

	sq_check(e);
	if (e->batch == SQ_BROKEN) {
		err = e->broken_err;
		sq_batch_discard(e);
		return err;
	}
	if (e->batch == SQ_IDLE)
		return sync && e->unsynced ? sq_wal_sync(e) : 0;
	rc = sqlite3_step(e->commit);
	sqlite3_reset(e->commit);
	if (rc != SQLITE_DONE) {
		err = sq_err(e->db, rc, "COMMIT");
		sq_batch_discard(e);
		return err;
	}
	for (i = 0; i < e->nb; i++)
		e->b[i]->pending = false;
	e->batch = SQ_IDLE;
	e->unsynced = true;
	sq_check(e);
	/* COMMIT put the batch in the WAL; only the fsync makes it durable,
	 * and a failed fsync leaves it committed but of unknown durability. */
	return sync ? sq_wal_sync(e) : 0;
}

/* ---- background checkpoints ---- */

static void *sq_ckpt_main(void *arg)
{
	struct sq_ckpt *ck = arg;
	unsigned gen;
	int rc, done;

	pthread_mutex_lock(&ck->mu);
	for (;;) {
		while (!ck->want && !ck->stop)
			pthread_cond_wait(&ck->cv, &ck->mu);
		if (ck->stop)
			break;
		ck->want = false;
		ck->busy = true;
		gen = ck->gen;
		pthread_mutex_unlock(&ck->mu);
		/* PASSIVE never blocks the writer nor waits for readers: it
		 * copies what no open view still needs, the rest next time. */
		done = 0;
		rc = sqlite3_wal_checkpoint_v2(
			ck->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, &done);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY)
			log_warn("sqlite: checkpoint: %s (%d)",
				 sqlite3_errmsg(ck->db), rc);
		pthread_mutex_lock(&ck->mu);
		ck->busy = false;
		/* A count from before a WAL restart means nothing now. */
		ck->done = rc == SQLITE_OK && gen == ck->gen ? done : 0;
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

/* Called by SQLite after each commit of the writer (writer thread), with
 * the number of frames in the WAL.
 *
 * The WAL restarts from its beginning only once a checkpoint has copied
 * every frame, which a background pass racing the writer rarely does. So
 * the thread copies the bulk and the writer copies the last few frames
 * itself (at most SQ_CKPT_TAIL: a short stall, not a long one). */
static int sq_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct sq_ckpt *ck = arg;
	bool inline_ckpt = false;

	pthread_mutex_lock(&ck->mu);
	if (frames < ck->frames) { /* the WAL restarted */
		ck->gen++;
		ck->done = 0;
	}
	ck->frames = frames;
	if (frames >= SQ_CKPT_FRAMES && !ck->busy) {
		/* Past SQ_CKPT_HARD the writer helps whatever the cost,
		 * rather than let the WAL grow without bound. */
		inline_ckpt = frames - ck->done <= SQ_CKPT_TAIL ||
			      frames >= SQ_CKPT_HARD;
		if (!inline_ckpt && !ck->want) {
			ck->want = true;
			pthread_cond_signal(&ck->cv);
		}
	}
	pthread_mutex_unlock(&ck->mu);
	/* The thread is idle and only this thread wakes it: the two never
	 * race for the checkpoint lock. */
	if (inline_ckpt)
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
	return SQLITE_OK;
}

static int sq_ckpt_open(struct sq_ckpt *ck, const char *path)
{
	int rc = sqlite3_open_v2(path, &ck->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
				 NULL);

	if (rc != SQLITE_OK)
		return sq_err(ck->db, rc, "open checkpointer");
	sqlite3_busy_timeout(ck->db, SQ_BUSY_MS);
	return sq_exec(ck->db, "PRAGMA synchronous = NORMAL");
}

/* Start the checkpointer; if that fails, fall back to SQLite's own
 * auto-checkpoint inside commit (slower, still correct). */
static void sq_ckpt_start(struct engine *e)
{
	struct sq_ckpt *ck = &e->ck;

	if (pthread_mutex_init(&ck->mu, NULL))
		goto fallback;
	if (pthread_cond_init(&ck->cv, NULL)) {
		pthread_mutex_destroy(&ck->mu);
		goto fallback;
	}
	if (sq_ckpt_open(ck, e->path) ||
	    pthread_create(&ck->th, NULL, sq_ckpt_main, ck)) {
		sqlite3_close_v2(ck->db);
		ck->db = NULL;
		pthread_cond_destroy(&ck->cv);
		pthread_mutex_destroy(&ck->mu);
		goto fallback;
	}
	ck->started = true;
	sqlite3_wal_hook(e->db, sq_wal_hook, ck); /* replaces autocheckpoint */
	return;
fallback:
	log_warn("sqlite: %s: no checkpoint thread, checkpoints in commit",
		 e->path);
	sqlite3_wal_autocheckpoint(e->db, SQ_CKPT_FRAMES);
}

static void sq_ckpt_stop(struct engine *e)
{
	struct sq_ckpt *ck = &e->ck;

	if (!ck->started)
		return;
	sqlite3_wal_hook(e->db, NULL, NULL);
	pthread_mutex_lock(&ck->mu);
	ck->stop = true;
	pthread_cond_signal(&ck->cv);
	pthread_mutex_unlock(&ck->mu);
	pthread_join(ck->th, NULL);
	sqlite3_close_v2(ck->db);
	ck->db = NULL;
	pthread_cond_destroy(&ck->cv);
	pthread_mutex_destroy(&ck->mu);
	ck->started = false;
}

/* ---- open / close ---- */

/* The first read: a file that is not a SQLite database fails here
 * (-EINVAL), before anything is written to it. */
static int sq_app_id(struct engine *e, int64_t *app)
{
	return sq_int_sql(e->db, "PRAGMA application_id", app);
}

/* Refuse a SQLite file that is not cairn's; claim a fresh one. */
static int sq_claim(struct engine *e, int64_t app)
{
	int64_t ntables = 0;
	char sql[64];
	int err;

	if (app == SQ_APP_ID)
		return 0;
	err = sq_int_sql(e->db, "SELECT count(*) FROM sqlite_master", &ntables);
	if (err)
		return err;
	if (app != 0 || ntables != 0) {
		log_warn("sqlite: %s is not a cairn database", e->path);
		return -EINVAL;
	}
	/* Written after sq_configure, so in WAL mode: no fsync at open. */
	snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", SQ_APP_ID);
	return sq_exec(e->db, sql);
}

static int sq_configure(struct engine *e, const struct engine_config *cfg)
{
	uint64_t cache =
		cfg && cfg->cache_bytes ? cfg->cache_bytes : SQ_DEFAULT_CACHE;
	uint64_t kib = cache / 1024;
	sqlite3_stmt *st = NULL;
	const char *mode;
	char sql[128];
	int rc, err;

	if (kib < 256)
		kib = 256;
	if (kib > INT_MAX)
		kib = INT_MAX;
	/* Each view has its own connection and page cache: keep them small,
	 * recent pages are in the WAL and the OS page cache anyway. */
	e->reader_cache_kib = (int)(kib / 8 < 256 ? 256 : kib / 8);
	snprintf(sql, sizeof(sql),
		 "PRAGMA synchronous = NORMAL; PRAGMA cache_size = -%llu; "
		 "PRAGMA temp_store = MEMORY",
		 (unsigned long long)kib);
	/* Views rely on WAL snapshots; without WAL (e.g. a filesystem with
	 * no shared memory) readers would block the writer: refuse. */
	err = sq_prepare(e->db, "PRAGMA journal_mode = WAL", &st);
	if (err)
		return err;
	rc = sqlite3_step(st);
	mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0)
				: NULL;
	if (rc != SQLITE_ROW)
		err = sq_err(e->db, rc, "journal_mode");
	else if (!mode || strcmp(mode, "wal") != 0) {
		log_warn("sqlite: %s: cannot use WAL mode", e->path);
		err = -ENOTSUP;
	}
	sqlite3_finalize(st);
	return err ? err : sq_exec(e->db, sql);
}

static int sq_prepare_writer(struct engine *e)
{
	int err;

	if ((err = sq_prepare(e->db, "BEGIN IMMEDIATE", &e->begin)) ||
	    (err = sq_prepare(e->db, "COMMIT", &e->commit)) ||
	    (err = sq_prepare(e->db, "ROLLBACK", &e->rollback)) ||
	    (err = sq_prepare(e->db, "PRAGMA page_count", &e->page_count)) ||
	    (err = sq_prepare(e->db, "PRAGMA page_size", &e->page_size)) ||
	    (err = sq_prepare(e->db, "PRAGMA freelist_count", &e->freelist)))
		return err;
	return 0;
}

static void sq_reader_free(struct sq_reader *r);

static void sq_close(struct engine *e)
{
	size_t i;

	if (!e)
		return;
	if (e->views)
		log_error("sqlite: close with %d views open", e->views);
	if (e->db && e->batch != SQ_IDLE)
		sq_batch_discard(e);
	sq_ckpt_stop(e);
	while (e->pool) {
		struct sq_reader *r = e->pool;

		e->pool = r->next;
		sq_reader_free(r);
	}
	for (i = 0; i < e->nb; i++)
		sq_bucket_free(e->b[i]);
	free(e->b);
	sqlite3_finalize(e->begin);
	sqlite3_finalize(e->commit);
	sqlite3_finalize(e->rollback);
	sqlite3_finalize(e->page_count);
	sqlite3_finalize(e->page_size);
	sqlite3_finalize(e->freelist);
	/* The last connection to close checkpoints and removes the WAL. */
	if (e->db)
		sqlite3_close_v2(e->db);
	free(e->wal_path);
	free(e->path);
	free(e);
}

static int sq_open(const char *path, const struct engine_config *cfg,
		   struct engine **out)
{
	struct engine *e;
	int64_t app = 0;
	int rc, err;

	*out = NULL;
	if (!path || !*path)
		return -EINVAL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->path = strdup(path);
	e->wal_path = malloc(strlen(path) + 5);
	if (!e->path || !e->wal_path) {
		err = -ENOMEM;
		goto fail;
	}
	sprintf(e->wal_path, "%s-wal", path);
	rc = sqlite3_open_v2(path, &e->db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				     SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK) {
		err = sq_err(e->db, rc, path);
		goto fail;
	}
	sqlite3_busy_timeout(e->db, SQ_BUSY_MS);
	if ((err = sq_app_id(e, &app)) || (err = sq_configure(e, cfg)) ||
	    (err = sq_claim(e, app)) || (err = sq_prepare_writer(e)) ||
	    (err = sq_buckets_load(e)))
		goto fail;
	sq_ckpt_start(e);
	*out = e;
	return 0;
fail:
	sq_close(e);
	return err;
}

/* ---- readers and views ---- */

static void sq_rbucket_free(struct sq_rbucket *rb)
{
	int i;

	sqlite3_finalize(rb->get);
	for (i = 0; i < SQ_SCAN_VARIANTS; i++)
		sqlite3_finalize(rb->scan[i]);
	free(rb->name);
	free(rb);
}

static void sq_reader_free(struct sq_reader *r)
{
	size_t i;

	if (!r)
		return;
	for (i = 0; i < r->nb; i++)
		sq_rbucket_free(r->b[i]);
	free(r->b);
	sqlite3_finalize(r->begin);
	sqlite3_finalize(r->end);
	sqlite3_finalize(r->pin);
	sqlite3_close_v2(r->db);
	free(r);
}

static int sq_reader_new(struct engine *e, struct sq_reader **out)
{
	struct sq_reader *r = calloc(1, sizeof(*r));
	char sql[64];
	int rc, err;

	if (!r)
		return -ENOMEM;
	rc = sqlite3_open_v2(e->path, &r->db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		err = sq_err(r->db, rc, "open reader");
		goto fail;
	}
	sqlite3_busy_timeout(r->db, SQ_BUSY_MS);
	snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%d",
		 e->reader_cache_kib);
	if ((err = sq_exec(r->db, sql)) ||
	    (err = sq_prepare(r->db, "BEGIN", &r->begin)) ||
	    (err = sq_prepare(r->db, "COMMIT", &r->end)) ||
	    (err = sq_prepare(r->db, "SELECT 1 FROM sqlite_master LIMIT 1",
			      &r->pin)))
		goto fail;
	*out = r;
	return 0;
fail:
	sq_reader_free(r);
	return err;
}

static int sq_view_open(struct engine *e, struct engine_view **out)
{
	struct engine_view *v = calloc(1, sizeof(*v));
	struct sq_reader *r = NULL;
	int err;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	if (e->pool) {
		r = e->pool;
		e->pool = r->next;
		e->npool--;
	} else {
		err = sq_reader_new(e, &r);
		if (err)
			goto fail;
	}
	r->next = NULL;
	/* BEGIN alone takes no snapshot in WAL mode; the first read does. */
	err = sq_run(r->db, r->begin, "BEGIN");
	if (err)
		goto fail;
	err = sq_run(r->db, r->pin, "pin snapshot");
	if (err) {
		sq_run(r->db, r->end, "COMMIT");
		goto fail;
	}
	v->e = e;
	v->r = r;
	e->views++;
	*out = v;
	return 0;
fail:
	sq_reader_free(r);
	free(v);
	return err;
}

static void sq_view_close(struct engine_view *v)
{
	struct engine *e;
	struct sq_reader *r;

	if (!v)
		return;
	e = v->e;
	r = v->r;
	if (v->last_get)
		sqlite3_reset(v->last_get);
	if (sq_run(r->db, r->end, "end view") == 0 && e->npool < SQ_POOL_MAX) {
		r->next = e->pool;
		e->pool = r;
		e->npool++;
	} else {
		sq_reader_free(r);
	}
	e->views--;
	free(v);
}

/* The reader's statements for bucket, preparing them on first use.
 * -ENOENT if the bucket's table is not in this view's snapshot. */
static int sq_rbucket_get(struct sq_reader *r, const char *bucket,
			  struct sq_rbucket **out)
{
	struct sq_rbucket *rb = NULL;
	char *table = NULL;
	size_t i;
	int rc, err;

	if (!sq_name_ok(bucket))
		return -EINVAL;
	for (i = 0; i < r->nb; i++) {
		if (strcmp(r->b[i]->name, bucket) == 0) {
			*out = r->b[i];
			return 0;
		}
	}
	table = sq_table_name(bucket);
	rb = calloc(1, sizeof(*rb));
	if (!table || !rb || !(rb->name = strdup(bucket))) {
		err = -ENOMEM;
		goto fail;
	}
	{
		char *sql =
			sqlite3_mprintf("SELECT v FROM %s WHERE k = ?1", table);

		if (!sql) {
			err = -ENOMEM;
			goto fail;
		}
		rc = sqlite3_prepare_v3(r->db, sql, -1,
					SQLITE_PREPARE_PERSISTENT, &rb->get,
					NULL);
		sqlite3_free(sql);
	}
	if (rc != SQLITE_OK) {
		/* Tables are never dropped, so "no such table" now means
		 * the bucket is absent from this snapshot: not cached. */
		err = rc == SQLITE_ERROR ? -ENOENT
					 : sq_err(r->db, rc, "prepare get");
		goto fail;
	}
	if (r->nb == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 16;
		struct sq_rbucket **nb = realloc(r->b, cap * sizeof(*nb));

		if (!nb) {
			err = -ENOMEM;
			goto fail;
		}
		r->b = nb;
		r->cap = cap;
	}
	r->b[r->nb++] = rb;
	free(table);
	*out = rb;
	return 0;
fail:
	if (rb)
		sq_rbucket_free(rb);
	free(table);
	return err;
}

static int sq_get(struct engine_view *v, const char *bucket, const void *key,
		  size_t klen, struct engine_slice *val)
{
	struct sq_rbucket *rb;
	sqlite3_stmt *st;
	int rc, err;

	if (v->last_get) {
		sqlite3_reset(v->last_get);
		v->last_get = NULL;
	}
	assert(!sqlite3_get_autocommit(v->r->db)); /* invariant 5 */
	if (!key || klen == 0 || klen > INT_MAX)
		return -EINVAL;
	err = sq_rbucket_get(v->r, bucket, &rb);
	if (err)
		return err;
	st = rb->get;
	sqlite3_bind_blob(st, 1, key, (int)klen, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);

		/* The value stays in SQLite's row buffer until the next
		 * call on v resets st: no copy. */
		val->n = (size_t)sqlite3_column_bytes(st, 0);
		val->p = p ? p : sq_empty;
		v->last_get = st;
		return 0;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? -ENOENT : sq_err(v->r->db, rc, "get");
}

static int sq_iter_stmt(struct sq_reader *r, struct sq_rbucket *rb, int var,
			struct engine_iter *it)
{
	char *table;
	int err;

	if (rb->scan[var] && !rb->scan_busy[var]) {
		it->st = rb->scan[var];
		it->busy = &rb->scan_busy[var];
		*it->busy = true;
		return 0;
	}
	table = sq_table_name(rb->name);
	if (!table)
		return -ENOMEM;
	err = sq_prepare_on(r->db, sq_scan_sql[var], table, &it->st);
	free(table);
	if (err)
		return err;
	if (!rb->scan[var]) { /* first use: keep it in the cache */
		rb->scan[var] = it->st;
		it->busy = &rb->scan_busy[var];
		*it->busy = true;
	}
	return 0;
}

static int sq_iter_open(struct engine_view *v, const char *bucket,
			const void *start, size_t slen, const void *end,
			size_t elen, bool reverse, struct engine_iter **out)
{
	struct engine_iter *it = calloc(1, sizeof(*it));
	struct sq_rbucket *rb;
	bool has_end = end && elen;
	int err;

	*out = NULL;
	if (!it)
		return -ENOMEM;
	if (slen > INT_MAX || elen > INT_MAX) {
		err = -EINVAL;
		goto fail;
	}
	err = sq_rbucket_get(v->r, bucket, &rb);
	if (err == -ENOENT) { /* absent bucket: an empty scan */
		it->done = true;
		*out = it;
		return 0;
	}
	if (err)
		goto fail;
	err = sq_iter_stmt(v->r, rb, (reverse ? 2 : 0) + (has_end ? 1 : 0), it);
	if (err)
		goto fail;
	/* TRANSIENT: SQLite compares each row with the bounds, and the
	 * caller's buffers need not outlive iter_open. */
	if (start && slen)
		sqlite3_bind_blob(it->st, 1, start, (int)slen,
				  SQLITE_TRANSIENT);
	else
		sqlite3_bind_zeroblob(it->st, 1, 0); /* x'' <= every key */
	if (has_end)
		sqlite3_bind_blob(it->st, 2, end, (int)elen, SQLITE_TRANSIENT);
	*out = it;
	return 0;
fail:
	free(it);
	return err;
}

static int sq_iter_next(struct engine_iter *it, struct engine_slice *key,
			struct engine_slice *val)
{
	const void *p;
	int rc;

	if (it->done)
		return 0;
	rc = sqlite3_step(it->st);
	if (rc == SQLITE_ROW) {
		key->p = sqlite3_column_blob(it->st, 0);
		key->n = (size_t)sqlite3_column_bytes(it->st, 0);
		p = sqlite3_column_blob(it->st, 1);
		val->n = (size_t)sqlite3_column_bytes(it->st, 1);
		val->p = p ? p : sq_empty;
		return 1;
	}
	it->done = true;
	return rc == SQLITE_DONE
		       ? 0
		       : sq_err(sqlite3_db_handle(it->st), rc, "scan");
}

static void sq_iter_close(struct engine_iter *it)
{
	if (!it)
		return;
	if (it->st) {
		sqlite3_reset(it->st);
		if (it->busy)
			*it->busy = false;
		else
			sqlite3_finalize(it->st);
	}
	free(it);
}

/* ---- maintenance ---- */

static int sq_size(struct engine *e, uint64_t *size, uint64_t *in_use)
{
	int64_t pages = 0, psize = 0, nfree = 0;
	struct stat st;
	int err;

	if ((err = sq_int(e->db, e->page_count, &pages)) ||
	    (err = sq_int(e->db, e->page_size, &psize)) ||
	    (err = sq_int(e->db, e->freelist, &nfree)))
		return err;
	*size = (uint64_t)(pages * psize);
	if (stat(e->wal_path, &st) == 0)
		*size += (uint64_t)st.st_size;
	*in_use = (uint64_t)((pages - nfree) * psize);
	return 0;
}

static int sq_defrag(struct engine *e)
{
	int err;

	if (e->views)
		return -EBUSY;
	if (e->batch != SQ_IDLE) {
		err = sq_commit(e, false);
		if (err)
			return err;
	}
	err = sq_exec(e->db, "VACUUM");
	if (err)
		return err;
	/* Give the space back: copy the WAL in and cut it to zero. */
	return sq_exec(e->db, "PRAGMA wal_checkpoint(TRUNCATE)");
}

static int sq_copy(int from, int to, uint64_t *written)
{
	uint8_t *buf = malloc(SQ_COPY_BUF);
	off_t off = 0;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r = pread(from, buf, SQ_COPY_BUF, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			break;
		}
		if (r == 0)
			break;
		err = fd_write_all(to, buf, (size_t)r);
		if (err)
			break;
		off += r;
	}
	*written = (uint64_t)off;
	free(buf);
	return err;
}

/* Runs on any thread: touches only e->path (immutable) and its own
 * connection, never the writer's. */
static int sq_snapshot(struct engine *e, int fd, uint64_t *written)
{
	sqlite3 *db = NULL;
	char *tmp, *sql = NULL;
	int tfd = -1, rc, err;

	*written = 0;
	tmp = malloc(strlen(e->path) + 16);
	if (!tmp)
		return -ENOMEM;
	sprintf(tmp, "%s.snap-XXXXXX", e->path);
	/* VACUUM INTO writes a compact, consistent copy; it accepts an
	 * existing empty file, which mkstemp gives us race-free. */
	tfd = mkstemp(tmp);
	if (tfd < 0) {
		err = -errno;
		free(tmp);
		return err;
	}
	rc = sqlite3_open_v2(e->path, &db,
			     SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		err = sq_err(db, rc, "snapshot open");
		goto fail;
	}
	sqlite3_busy_timeout(db, SQ_BUSY_MS);
	sql = sqlite3_mprintf("VACUUM INTO %Q", tmp);
	if (!sql) {
		err = -ENOMEM;
		goto fail;
	}
	err = sq_exec(db, sql);
	if (err)
		goto fail;
	err = sq_copy(tfd, fd, written);
fail:
	sqlite3_free(sql);
	sqlite3_close_v2(db);
	unlink(tmp);
	close(tfd);
	free(tmp);
	return err;
}

static const char *sq_lib_version(void)
{
	return sqlite3_libversion();
}

const struct engine_ops sqlite_engine_ops = {
	.version = ENGINE_OPS_VERSION,
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.bucket_create = sq_bucket_create,
	.put = sq_put,
	.del = sq_del,
	.commit = sq_commit,
	.view_open = sq_view_open,
	.view_close = sq_view_close,
	.get = sq_get,
	.iter_open = sq_iter_open,
	.iter_next = sq_iter_next,
	.iter_close = sq_iter_close,
	.size = sq_size,
	.defrag = sq_defrag,
	.snapshot = sq_snapshot,
	.lib_version = sq_lib_version,
};

#endif /* HAVE_SQLITE */
