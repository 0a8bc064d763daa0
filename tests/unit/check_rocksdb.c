/* check_rocksdb: what engines/rocksdb.h promises beyond engine.h (the
 * shared conformance suite in check_engine.c covers engine.h itself once
 * the engine is registered): buckets across reopen, a view that outlives
 * memtable flushes and compactions, synced and unsynced durability
 * (a forked child that dies without closing), the snapshot container
 * round trip and its damage detection, restore in place and its crash
 * states, foreign and locked directories.
 *
 * Uses rocksdb_engine_ops directly, so it runs whether or not the
 * registry lists the engine. Every test works in its own mkdtemp
 * directory, removed at the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "engines/engine.h"
#include "tests/unit/suites.h"
#include "tests/unit/tmpdir.h"

#ifdef HAVE_ROCKSDB
#include <rocksdb/c.h>

#include "engines/rocksdb.h"

struct cr_fx {
	struct engine_handle h;
	char dir[256];
	char path[512];
};

static void cr_open(struct cr_fx *f)
{
	struct engine_config cfg = {.cache_bytes = 2u << 20};
	int err = rocksdb_engine_ops.open(f->path, &cfg, &f->h.e);

	ck_assert_msg(err == 0, "open %s: %d", f->path, err);
	f->h.ops = &rocksdb_engine_ops;
}

static void cr_start(struct cr_fx *f)
{
	const char *t = getenv("TMPDIR");

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/check_rocksdb.XXXXXX",
		 t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
	cr_open(f);
}

static void cr_close(struct cr_fx *f)
{
	if (f->h.e)
		f->h.ops->close(f->h.e);
	f->h.e = NULL;
}

static void cr_stop(struct cr_fx *f)
{
	cr_close(f);
	ut_rmtree(f->dir);
}

static void cr_reopen(struct cr_fx *f)
{
	cr_close(f);
	cr_open(f);
}

static void cr_put(struct cr_fx *f, const char *b, const char *k, const char *v)
{
	int err = engine_put(&f->h, b, k, strlen(k), v, strlen(v));

	ck_assert_msg(err == 0, "put %s/%s: %d", b, k, err);
}

/* get(b, k) in a fresh view is want (NULL: -ENOENT). */
static void cr_expect(struct cr_fx *f, const char *b, const char *k,
		      const char *want)
{
	struct engine_view *v;
	struct engine_slice s;
	int err;

	ck_assert_int_eq(engine_view_open(&f->h, &v), 0);
	err = engine_get(&f->h, v, b, k, strlen(k), &s);
	if (!want) {
		ck_assert_msg(err == -ENOENT, "get %s/%s: %d", b, k, err);
	} else {
		ck_assert_msg(err == 0, "get %s/%s: %d", b, k, err);
		ck_assert_msg(s.n == strlen(want) && !memcmp(s.p, want, s.n),
			      "get %s/%s: got %.*s want %s", b, k, (int)s.n,
			      (const char *)s.p, want);
	}
	engine_view_close(&f->h, v);
}

/* Number of keys in bucket b in view v. */
static int cr_count(struct cr_fx *f, struct engine_view *v, const char *b)
{
	struct engine_iter *it;
	struct engine_slice k, s;
	int n = 0, rc;

	ck_assert_int_eq(
		engine_iter_open(&f->h, v, b, NULL, 0, NULL, 0, false, &it), 0);
	while ((rc = engine_iter_next(&f->h, it, &k, &s)) == 1)
		ck_assert_int_lt(++n, 10000000);
	ck_assert_int_eq(rc, 0);
	engine_iter_close(&f->h, it);
	return n;
}

/* Number of SST files in the database directory. */
static int cr_nsst(struct cr_fx *f)
{
	DIR *d = opendir(f->path);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		n += l > 4 && strcmp(de->d_name + l - 4, ".sst") == 0;
	}
	closedir(d);
	return n;
}

/* Buckets come back after a reopen from the registry; an uncommitted
 * one does not, and a bucket created after the reopen gets a fresh id
 * (none of the old buckets' keys show up in it). */
START_TEST(test_rocksdb_reopen_buckets)
{
	struct cr_fx f;
	struct engine_view *v;

	cr_start(&f);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ck_assert_int_eq(engine_bucket_create(&f.h, "meta"), 0);
	cr_put(&f, "key", "k1", "v1");
	cr_put(&f, "meta", "consistent_index", "7");
	ck_assert_int_eq(engine_commit(&f.h, false), 0);
	ck_assert_int_eq(engine_bucket_create(&f.h, "pending"), 0);
	cr_put(&f, "pending", "p", "x");
	cr_reopen(&f);		       /* discards the batch with "pending" */
	cr_put(&f, "key", "k2", "v2"); /* no bucket_create needed */
	ck_assert_int_eq(engine_put(&f.h, "pending", "p", 1, "x", 1), -ENOENT);
	ck_assert_int_eq(engine_bucket_create(&f.h, "lease"), 0);
	ck_assert_int_eq(engine_commit(&f.h, true), 0);
	cr_reopen(&f);
	cr_expect(&f, "key", "k1", "v1");
	cr_expect(&f, "key", "k2", "v2");
	cr_expect(&f, "meta", "consistent_index", "7");
	cr_expect(&f, "pending", "p", NULL);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ck_assert_int_eq(cr_count(&f, v, "key"), 2);
	ck_assert_int_eq(cr_count(&f, v, "meta"), 1);
	ck_assert_int_eq(cr_count(&f, v, "lease"), 0);
	ck_assert_int_eq(cr_count(&f, v, "pending"), 0);
	engine_view_close(&f.h, v);
	cr_stop(&f);
}
END_TEST

/* A view keeps its snapshot through enough later writes to flush the
 * memtable several times and compact: overwrites, deletes and a defrag
 * later, it still sees exactly what was committed when it opened. */
START_TEST(test_rocksdb_view_many_commits)
{
	enum { NK = 500, ROUNDS = 40, VL = 2048 };
	char *val = malloc(VL + 1);
	struct cr_fx f;
	struct engine_view *old;
	struct engine_slice s;
	uint32_t k;
	int r;

	ck_assert_ptr_nonnull(val);
	cr_start(&f);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	for (k = 0; k < NK; k++)
		ck_assert_int_eq(
			engine_put(&f.h, "key", &k, sizeof(k), "old", 3), 0);
	ck_assert_int_eq(engine_commit(&f.h, false), 0);
	ck_assert_int_eq(engine_view_open(&f.h, &old), 0);
	/* ~40 MB of overwrites: several 8 MiB memtables flush and L0
	 * compactions run while the view is open. */
	for (r = 0; r < ROUNDS; r++) {
		memset(val, 'a' + r % 26, VL);
		for (k = 0; k < NK; k++) {
			if ((k + (uint32_t)r) % 7 == 0)
				ck_assert_int_eq(
					engine_del(&f.h, "key", &k, sizeof(k)),
					0);
			else
				ck_assert_int_eq(engine_put(&f.h, "key", &k,
							    sizeof(k), val, VL),
						 0);
		}
		ck_assert_int_eq(engine_commit(&f.h, false), 0);
	}
	/* The memtables holding the view's data did flush. */
	ck_assert_int_gt(cr_nsst(&f), 0);
	for (k = 0; k < NK; k++) {
		ck_assert_int_eq(
			engine_get(&f.h, old, "key", &k, sizeof(k), &s), 0);
		ck_assert_uint_eq(s.n, 3);
		ck_assert_int_eq(memcmp(s.p, "old", 3), 0);
	}
	ck_assert_int_eq(cr_count(&f, old, "key"), NK);
	/* defrag refuses while the view pins the old data. */
	ck_assert_int_eq(f.h.ops->defrag(f.h.e), -EBUSY);
	engine_view_close(&f.h, old);
	ck_assert_int_eq(f.h.ops->defrag(f.h.e), 0);
	/* The newest state: round ROUNDS-1 deleted k with (k+39)%7 == 0. */
	k = 3; /* (3 + 39) % 7 == 0 */
	cr_expect(&f, "key", "x", NULL);
	{
		struct engine_view *v;

		ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
		ck_assert_int_eq(engine_get(&f.h, v, "key", &k, sizeof(k), &s),
				 -ENOENT);
		k = 4;
		ck_assert_int_eq(engine_get(&f.h, v, "key", &k, sizeof(k), &s),
				 0);
		ck_assert_uint_eq(s.n, VL);
		ck_assert_int_eq(s.p[0], 'a' + (ROUNDS - 1) % 26);
		engine_view_close(&f.h, v);
	}
	cr_stop(&f);
	free(val);
}
END_TEST

/* commit(true) is on disk at return; an empty synced commit is a WAL
 * sync and returns 0. */
START_TEST(test_rocksdb_sync_durable)
{
	struct cr_fx f;
	int i;

	cr_start(&f);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	for (i = 0; i < 100; i++) {
		char k[16];

		snprintf(k, sizeof(k), "k%03d", i);
		cr_put(&f, "key", k, k);
		ck_assert_int_eq(engine_commit(&f.h, i % 10 == 9), 0);
	}
	ck_assert_int_eq(engine_commit(&f.h, true), 0); /* empty */
	cr_reopen(&f);
	for (i = 0; i < 100; i += 9) {
		char k[16];

		snprintf(k, sizeof(k), "k%03d", i);
		cr_expect(&f, "key", k, k);
	}
	cr_stop(&f);
}
END_TEST

/* Wait for pid, at most ~30 s; kill it if it hangs. */
static int cr_wait(pid_t pid)
{
	int st = 0, i;

	for (i = 0; i < 3000; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		ck_assert_int_eq(r, 0);
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	ck_abort_msg("child %d did not finish", (int)pid);
	return -1;
}

/* A process that commits without sync and dies without closing (no
 * flush, no destructor): the commit is in the WAL and a reopen finds it;
 * its uncommitted batch is gone. Also: a second process gets -EBUSY. */
START_TEST(test_rocksdb_process_crash)
{
	struct cr_fx f;
	pid_t pid;
	int st;

	cr_start(&f);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	cr_put(&f, "key", "before", "1");
	ck_assert_int_eq(engine_commit(&f.h, true), 0);
	/* Another process cannot open it while we hold it. */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct engine *e = NULL;

		_exit(rocksdb_engine_ops.open(f.path, NULL, &e) == -EBUSY ? 0
									  : 1);
	}
	st = cr_wait(pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	cr_close(&f); /* the next child takes the lock */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct engine *e = NULL;
		int ok = rocksdb_engine_ops.open(f.path, NULL, &e) == 0;

		ok = ok && rocksdb_engine_ops.bucket_create(e, "meta") == 0;
		ok = ok &&
		     rocksdb_engine_ops.put(e, "key", "crash", 5, "2", 1) == 0;
		ok = ok &&
		     rocksdb_engine_ops.put(e, "meta", "ci", 2, "9", 1) == 0;
		ok = ok && rocksdb_engine_ops.commit(e, false) == 0;
		ok = ok &&
		     rocksdb_engine_ops.put(e, "key", "lost", 4, "3", 1) == 0;
		_exit(ok ? 0 : 1); /* no close: a crash */
	}
	st = cr_wait(pid);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	cr_open(&f);
	cr_expect(&f, "key", "before", "1");
	cr_expect(&f, "key", "crash", "2");
	cr_expect(&f, "meta", "ci", "9");
	cr_expect(&f, "key", "lost", NULL);
	cr_stop(&f);
}
END_TEST

/* Snapshot into a file, restore with rocksdb_engine_restore into a new
 * directory, open it: the committed data, not the open batch. */
START_TEST(test_rocksdb_snapshot_roundtrip)
{
	enum { NK = 3000 };
	char snap[400], dir2[400], dir3[400];
	struct cr_fx f, g;
	struct engine_view *v;
	struct stat st;
	uint64_t written = 0;
	uint8_t *buf;
	uint32_t k;
	int fd;

	cr_start(&f);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ck_assert_int_eq(engine_bucket_create(&f.h, "meta"), 0);
	for (k = 0; k < NK; k++)
		ck_assert_int_eq(
			engine_put(&f.h, "key", &k, sizeof(k), &k, sizeof(k)),
			0);
	cr_put(&f, "meta", "consistent_index", "42");
	ck_assert_int_eq(engine_commit(&f.h, false), 0);
	cr_put(&f, "key", "uncommitted", "x");

	snprintf(snap, sizeof(snap), "%s/snap", f.dir);
	fd = open(snap, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(f.h.ops->snapshot(f.h.e, fd, &written), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_uint_eq(written, (uint64_t)st.st_size);
	ck_assert_uint_gt(written, 24);

	/* Restore from the start of the stream. */
	snprintf(dir2, sizeof(dir2), "%s/restored", f.dir);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(rocksdb_engine_restore(fd, dir2), 0);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(rocksdb_engine_restore(fd, dir2), -EEXIST);

	memset(&g, 0, sizeof(g));
	memcpy(g.dir, f.dir, sizeof(g.dir));
	snprintf(g.path, sizeof(g.path), "%s", dir2);
	cr_open(&g);
	cr_expect(&g, "meta", "consistent_index", "42");
	cr_expect(&g, "key", "uncommitted", NULL);
	ck_assert_int_eq(engine_view_open(&g.h, &v), 0);
	ck_assert_int_eq(cr_count(&g, v, "key"), NK);
	engine_view_close(&g.h, v);
	cr_put(&g, "key", "new", "y"); /* a live engine */
	ck_assert_int_eq(engine_commit(&g.h, true), 0);
	cr_close(&g);

	/* One flipped byte in the middle: CRC mismatch, nothing left. */
	buf = malloc(st.st_size);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(pread(fd, buf, st.st_size, 0), st.st_size);
	buf[st.st_size / 2] ^= 0x40;
	ck_assert_int_eq(pwrite(fd, buf, st.st_size, 0), st.st_size);
	snprintf(dir3, sizeof(dir3), "%s/bad", f.dir);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(rocksdb_engine_restore(fd, dir3), -EINVAL);
	ck_assert_int_eq(stat(dir3, &st) == 0 ? 0 : errno, ENOENT);
	/* Truncated: no trailer. */
	buf[st.st_size / 2] ^= 0x40;
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(pwrite(fd, buf, 100, 0), 100);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	ck_assert_int_eq(rocksdb_engine_restore(fd, dir3), -EINVAL);
	ck_assert_int_eq(stat(dir3, &st) == 0 ? 0 : errno, ENOENT);
	free(buf);
	close(fd);

	/* The open batch of f is untouched by the snapshot. */
	ck_assert_int_eq(engine_commit(&f.h, false), 0);
	cr_expect(&f, "key", "uncommitted", "x");
	cr_stop(&f);
}
END_TEST

/* open of a container file turns it into a directory in place, and an
 * open after a crash in the middle of that finishes the job. */
START_TEST(test_rocksdb_restore_in_place)
{
	char p[400], archive[420], unpack[420];
	struct cr_fx f, g;
	struct stat st;
	uint64_t written;
	int fd;

	cr_start(&f);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	cr_put(&f, "key", "a", "1");
	ck_assert_int_eq(engine_commit(&f.h, false), 0);
	snprintf(p, sizeof(p), "%s/copy", f.dir);
	snprintf(archive, sizeof(archive), "%s.archive", p);
	snprintf(unpack, sizeof(unpack), "%s.unpack", p);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(f.h.ops->snapshot(f.h.e, fd, &written), 0);
	ck_assert_int_eq(close(fd), 0);

	memset(&g, 0, sizeof(g));
	snprintf(g.path, sizeof(g.path), "%s", p);
	cr_open(&g);
	cr_expect(&g, "key", "a", "1");
	cr_close(&g);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(stat(archive, &st), -1);

	/* Crash state: after "rename P -> P.archive", before the swap. */
	ck_assert_int_eq(rename(p, unpack), 0);
	fd = open(archive, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(f.h.ops->snapshot(f.h.e, fd, &written), 0);
	ck_assert_int_eq(close(fd), 0);
	cr_open(&g);
	cr_expect(&g, "key", "a", "1");
	cr_close(&g);
	ck_assert_int_eq(stat(archive, &st), -1);
	ck_assert_int_eq(stat(unpack, &st), -1);

	/* Crash state: a partial P.unpack next to the container P. */
	ut_rmtree(p);
	ck_assert_int_eq(mkdir(unpack, 0700), 0);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(f.h.ops->snapshot(f.h.e, fd, &written), 0);
	ck_assert_int_eq(close(fd), 0);
	cr_open(&g);
	cr_expect(&g, "key", "a", "1");
	cr_close(&g);
	cr_stop(&f);
}
END_TEST

/* Names, foreign and locked directories, the version string. */
START_TEST(test_rocksdb_specifics)
{
	char longname[300], p[400];
	struct cr_fx f;
	struct engine *e2 = NULL;
	rocksdb_options_t *o;
	rocksdb_writeoptions_t *wo;
	rocksdb_t *db;
	char *msg = NULL;

	cr_start(&f);
	ck_assert_uint_gt(strlen(f.h.ops->lib_version()), 0);
	ck_assert_str_eq(f.h.ops->name, "rocksdb");
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(engine_bucket_create(&f.h, ""), -EINVAL);
	ck_assert_int_eq(engine_bucket_create(&f.h, longname), -EINVAL);
	longname[ROCKSDB_ENGINE_BUCKET_MAX] = '\0';
	ck_assert_int_eq(engine_bucket_create(&f.h, longname), 0);
	cr_put(&f, longname, "k", "v");
	ck_assert_int_eq(engine_commit(&f.h, false), 0);
	/* A second open of the same directory: locked. */
	ck_assert_int_eq(rocksdb_engine_ops.open(f.path, NULL, &e2), -EBUSY);
	ck_assert_ptr_null(e2);
	cr_reopen(&f);
	cr_expect(&f, longname, "k", "v");
	cr_close(&f);

	/* A RocksDB database that is not cairn's is refused. */
	snprintf(p, sizeof(p), "%s/foreign", f.dir);
	o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(o, 1);
	db = rocksdb_open(o, p, &msg);
	ck_assert_ptr_null(msg);
	wo = rocksdb_writeoptions_create();
	rocksdb_put(db, wo, "x", 1, "y", 1, &msg);
	ck_assert_ptr_null(msg);
	rocksdb_close(db);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_options_destroy(o);
	ck_assert_int_eq(rocksdb_engine_ops.open(p, NULL, &e2), -EINVAL);
	/* No parent directory. */
	snprintf(p, sizeof(p), "%s/no/such/db", f.dir);
	ck_assert_int_eq(rocksdb_engine_ops.open(p, NULL, &e2), -ENOENT);
	cr_stop(&f);
}
END_TEST

Suite *rocksdb_suite(void)
{
	Suite *s = suite_create("rocksdb");
	TCase *tc = tcase_create("rocksdb");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_rocksdb_reopen_buckets);
	tcase_add_test(tc, test_rocksdb_view_many_commits);
	tcase_add_test(tc, test_rocksdb_sync_durable);
	tcase_add_test(tc, test_rocksdb_process_crash);
	tcase_add_test(tc, test_rocksdb_snapshot_roundtrip);
	tcase_add_test(tc, test_rocksdb_restore_in_place);
	tcase_add_test(tc, test_rocksdb_specifics);
	suite_add_tcase(s, tc);
	return s;
}

#else /* !HAVE_ROCKSDB: an empty suite keeps the runner's table fixed */

Suite *rocksdb_suite(void)
{
	return suite_create("rocksdb");
}

#endif
