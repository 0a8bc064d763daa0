/* Unit tests for core/mvcc/mvcc over the sqlite engine in a temp dir.
 * Expected values follow etcd 3.4 (checked against a real etcd): header
 * revision is the current one even for reads at an older rev; a read at
 * exactly the compact rev works; a delete takes a revision. */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "tests/unit/tmpdir.h"
#include "engines/engine.h"

#define K(s) (const uint8_t *)(s), strlen(s)
#define FROM_KEY (const uint8_t *)"", 1
#define SINGLE NULL, 0

static char tmpdir[64]; /* per tcase, made and removed in the parent */
static char dbpath[128];
static struct engine_handle eh;
static struct mvcc *m;

static void open_store(void)
{
	struct engine_config cfg = {0, 0};

	/* sqlite when built in (the schema tests read its rows back through
	 * engine.h only, so any engine works) */
	const char *name =
		engine_find("sqlite") ? "sqlite" : engine_default_name();

	ck_assert_int_eq(engine_open(name, dbpath, &cfg, &eh), 0);
	ck_assert_int_eq(mvcc_open(&eh, &m), 0);
}

static void close_store(void)
{
	mvcc_close(m);
	m = NULL;
	engine_close(&eh);
}

/* Unchecked fixture: runs in the parent even when a test fails, so the
 * temp dir always goes. */
static void make_tmpdir(void)
{
	ut_tmpdir(tmpdir, sizeof(tmpdir), "check_mvcc");
}

static void remove_tmpdir(void)
{
	ut_rmtree(tmpdir);
}

/* Each test gets a fresh database in its own dir under tmpdir (made in
 * the forked child, so no counter would survive to the next test). */
static void setup(void)
{
	char dir[96];

	snprintf(dir, sizeof(dir), "%s/tXXXXXX", tmpdir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/db", dir);
	open_store();
}

static void teardown(void)
{
	if (m)
		close_store();
}

static int64_t put1(const char *k, const char *v, int64_t lease)
{
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	ck_assert_int_eq(mvcc_txn_put(m, K(k), K(v), lease), 0);
	return mvcc_txn_end(m);
}

static int64_t del1(const uint8_t *k, size_t kl, const uint8_t *e, size_t el,
		    int64_t *n)
{
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	ck_assert_int_eq(mvcc_txn_delete_range(m, k, kl, e, el, n, NULL), 0);
	return mvcc_txn_end(m);
}

/* Range and check one kv (or none when v is NULL). */
static void expect_kv(const char *k, int64_t at, const char *v, int64_t c,
		      int64_t mod, int64_t ver)
{
	struct mvcc_range_opts o = {at, 0, false, false};
	struct mvcc_range_result r;

	ck_assert_int_eq(mvcc_range(m, K(k), SINGLE, &o, &r), 0);
	ck_assert_int_eq(r.rev, mvcc_rev(m));
	if (!v) {
		ck_assert_uint_eq(r.n, 0);
		ck_assert_int_eq(r.count, 0);
	} else {
		ck_assert_uint_eq(r.n, 1);
		ck_assert_int_eq(r.count, 1);
		ck_assert_uint_eq(r.kvs[0].key_len, strlen(k));
		ck_assert(memcmp(r.kvs[0].key, k, strlen(k)) == 0);
		ck_assert_uint_eq(r.kvs[0].value_len, strlen(v));
		ck_assert(memcmp(r.kvs[0].value, v, strlen(v)) == 0);
		ck_assert_int_eq(r.kvs[0].create_rev, c);
		ck_assert_int_eq(r.kvs[0].mod_rev, mod);
		ck_assert_int_eq(r.kvs[0].version, ver);
	}
	mvcc_range_result_free(&r);
}

static size_t engine_rows(const char *bucket)
{
	struct engine_view *v;
	struct engine_iter *it;
	struct engine_slice k, val;
	size_t n = 0;

	ck_assert_int_eq(engine_view_open(&eh, &v), 0);
	ck_assert_int_eq(
		engine_iter_open(&eh, v, bucket, NULL, 0, NULL, 0, false, &it),
		0);
	while (engine_iter_next(&eh, it, &k, &val) == 1)
		n++;
	engine_iter_close(&eh, it);
	engine_view_close(&eh, v);
	return n;
}

START_TEST(test_revisions)
{
	int64_t n;

	ck_assert_int_eq(mvcc_rev(m), 1);
	ck_assert_int_eq(mvcc_compact_rev(m), -1);
	ck_assert_int_eq(put1("a", "1", 0), 2);
	expect_kv("a", 0, "1", 2, 2, 1);
	ck_assert_int_eq(put1("a", "2", 0), 3);
	expect_kv("a", 0, "2", 2, 3, 2);
	expect_kv("a", 2, "1", 2, 2, 1);
	expect_kv("a", 1, NULL, 0, 0, 0);
	ck_assert_int_eq(put1("b", "x", 7), 4);
	/* two changes in one txn: one revision, subs 0 and 1 */
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	ck_assert_int_eq(mvcc_txn_begin(m), -EBUSY);
	ck_assert_int_eq(mvcc_txn_put(m, K("c"), K("3"), 0), 0);
	ck_assert_int_eq(mvcc_txn_put(m, K("d"), K(""), 0), 0);
	ck_assert_int_eq(mvcc_txn_end(m), 5);
	expect_kv("c", 0, "3", 5, 5, 1);
	expect_kv("d", 0, "", 5, 5, 1);
	/* an empty txn does not move the revision */
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	ck_assert_int_eq(mvcc_txn_end(m), 5);
	/* delete takes a revision; deleting nothing does not */
	ck_assert_int_eq(del1(K("a"), SINGLE, &n), 6);
	ck_assert_int_eq(n, 1);
	expect_kv("a", 0, NULL, 0, 0, 0);
	expect_kv("a", 5, "2", 2, 3, 2);
	ck_assert_int_eq(del1(K("a"), SINGLE, &n), 6);
	ck_assert_int_eq(n, 0);
	/* recreate: a new generation, version 1 */
	ck_assert_int_eq(put1("a", "3", 0), 7);
	expect_kv("a", 0, "3", 7, 7, 1);
	/* lease kept from the put */
	struct mvcc_range_result r;

	ck_assert_int_eq(mvcc_range(m, K("b"), SINGLE, NULL, &r), 0);
	ck_assert_int_eq(r.kvs[0].lease, 7);
	mvcc_range_result_free(&r);
	/* errors */
	struct mvcc_range_opts o = {8, 0, false, false};

	ck_assert_int_eq(mvcc_range(m, K("a"), SINGLE, &o, &r),
			 CAIRN_EFUTURE_REV);
	ck_assert_ptr_null(r.kvs);
	ck_assert_int_eq(mvcc_txn_put(m, K("a"), K("x"), 0), -EINVAL);
	ck_assert_int_eq(mvcc_txn_end(m), -EINVAL);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	expect_kv("a", 0, "3", 7, 7, 1);
	expect_kv("c", 0, "3", 5, 5, 1);
}
END_TEST

START_TEST(test_range_opts)
{
	struct mvcc_range_result r;
	struct mvcc_range_opts o = {0, 3, false, false};
	char k[16];

	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	for (int i = 9; i >= 0; i--) {
		snprintf(k, sizeof(k), "k%d", i);
		ck_assert_int_eq(mvcc_txn_put(m, K(k), K(k), 0), 0);
	}
	ck_assert_int_eq(mvcc_txn_put(m, K("l"), K("l"), 0), 0);
	ck_assert_int_eq(mvcc_txn_put(m, K("j"), K("j"), 0), 0);
	ck_assert_int_eq(mvcc_txn_end(m), 2);
	/* limit: n capped, count total, in key order */
	ck_assert_int_eq(mvcc_range(m, K("k"), K("l"), &o, &r), 0);
	ck_assert_uint_eq(r.n, 3);
	ck_assert_int_eq(r.count, 10);
	for (size_t i = 0; i < r.n; i++) {
		snprintf(k, sizeof(k), "k%d", (int)i);
		ck_assert(r.kvs[i].key_len == 2 &&
			  memcmp(r.kvs[i].key, k, 2) == 0);
		ck_assert(memcmp(r.kvs[i].value, k, 2) == 0);
		/* sub revisions in write order: k9 was sub 0 */
		ck_assert_int_eq(r.kvs[i].mod_rev, 2);
	}
	mvcc_range_result_free(&r);
	/* count_only */
	o = (struct mvcc_range_opts){0, 0, false, true};
	ck_assert_int_eq(mvcc_range(m, K("k"), K("l"), &o, &r), 0);
	ck_assert_uint_eq(r.n, 0);
	ck_assert_int_eq(r.count, 10);
	mvcc_range_result_free(&r);
	/* keys_only */
	o = (struct mvcc_range_opts){0, 0, true, false};
	ck_assert_int_eq(mvcc_range(m, K("k5"), FROM_KEY, &o, &r), 0);
	ck_assert_uint_eq(r.n, 6); /* k5..k9, l */
	ck_assert_ptr_null(r.kvs[0].value);
	ck_assert_uint_eq(r.kvs[0].value_len, 0);
	ck_assert_int_eq(r.kvs[0].version, 1);
	ck_assert(r.kvs[5].key_len == 1 && r.kvs[5].key[0] == 'l');
	mvcc_range_result_free(&r);
	/* all keys: "\0" .. from-key */
	ck_assert_int_eq(
		mvcc_range(m, (const uint8_t *)"", 1, FROM_KEY, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 12);
	ck_assert_int_eq(r.rev, 2);
	mvcc_range_result_free(&r);
	/* end before key: nothing */
	ck_assert_int_eq(mvcc_range(m, K("k5"), K("k1"), NULL, &r), 0);
	ck_assert_uint_eq(r.n, 0);
	mvcc_range_result_free(&r);
	ck_assert_int_eq(mvcc_range(m, K("zz"), SINGLE, NULL, &r), 0);
	ck_assert_int_eq(r.count, 0);
	mvcc_range_result_free(&r);
	ck_assert_int_eq(
		mvcc_range(m, (const uint8_t *)"", 0, SINGLE, NULL, &r),
		-EINVAL);
	/* reads at rev 1 see nothing */
	o = (struct mvcc_range_opts){1, 0, false, false};
	ck_assert_int_eq(mvcc_range(m, K("k"), K("l"), &o, &r), 0);
	ck_assert_int_eq(r.count, 0);
	ck_assert_int_eq(r.rev, 2);
	mvcc_range_result_free(&r);
}
END_TEST

START_TEST(test_txn_own_writes)
{
	struct mvcc_range_result r, prev;
	int64_t n;

	ck_assert_int_eq(put1("x", "0", 0), 2);
	ck_assert_int_eq(put1("y", "0", 0), 3);
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	/* before any change the txn reads at the current rev */
	ck_assert_int_eq(mvcc_txn_range(m, K("x"), SINGLE, NULL, &r), 0);
	ck_assert_int_eq(r.rev, 3);
	mvcc_range_result_free(&r);
	ck_assert_int_eq(mvcc_txn_put(m, K("x"), K("1"), 0), 0);
	ck_assert_int_eq(mvcc_txn_range(m, K("x"), SINGLE, NULL, &r), 0);
	ck_assert_uint_eq(r.n, 1);
	ck_assert_int_eq(r.rev, 4);
	ck_assert_int_eq(r.kvs[0].mod_rev, 4);
	ck_assert_int_eq(r.kvs[0].version, 2);
	ck_assert(r.kvs[0].value[0] == '1');
	mvcc_range_result_free(&r);
	/* outside readers still see rev 3 */
	ck_assert_int_eq(mvcc_range(m, K("x"), SINGLE, NULL, &r), 0);
	ck_assert(r.kvs[0].value[0] == '0');
	mvcc_range_result_free(&r);
	/* put twice in one txn: version counts both */
	ck_assert_int_eq(mvcc_txn_put(m, K("x"), K("2"), 0), 0);
	ck_assert_int_eq(mvcc_txn_delete_range(m, K("x"), K("z"), &n, &prev),
			 0);
	ck_assert_int_eq(n, 2);
	ck_assert_uint_eq(prev.n, 2);
	ck_assert(prev.kvs[0].value[0] == '2');
	ck_assert_int_eq(prev.kvs[0].version, 3);
	ck_assert_int_eq(prev.kvs[1].mod_rev, 3);
	mvcc_range_result_free(&prev);
	ck_assert_int_eq(mvcc_txn_range(m, K("x"), K("z"), NULL, &r), 0);
	ck_assert_int_eq(r.count, 0);
	mvcc_range_result_free(&r);
	ck_assert_int_eq(mvcc_commit(m, false), -EBUSY);
	ck_assert_int_eq(mvcc_compact(m, 2), -EBUSY);
	ck_assert_int_eq(mvcc_txn_end(m), 4);
	expect_kv("x", 0, NULL, 0, 0, 0);
	expect_kv("x", 3, "0", 2, 2, 1);
	ck_assert_int_eq(put1("x", "n", 0), 5);
	expect_kv("x", 0, "n", 5, 5, 1);
}
END_TEST

START_TEST(test_compaction)
{
	int64_t n;

	for (int i = 0; i < 5; i++)
		put1("a", "v", 0); /* revs 2..6 */
	put1("b", "v", 0);	   /* 7 */
	del1(K("b"), SINGLE, &n);  /* 8 */
	put1("c", "v", 0);	   /* 9 */
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 8);
	ck_assert_int_eq(mvcc_compact(m, 10), CAIRN_EFUTURE_REV);
	ck_assert_int_eq(mvcc_compact(m, 5), 0);
	ck_assert_int_eq(mvcc_compact_rev(m), 5);
	ck_assert_int_eq(mvcc_compact(m, 5), CAIRN_ECOMPACTED);
	ck_assert_int_eq(mvcc_compact(m, 4), CAIRN_ECOMPACTED);
	expect_kv("a", 5, "v", 2, 5, 4);
	expect_kv("a", 0, "v", 2, 6, 5);
	struct mvcc_range_opts o = {4, 0, false, false};
	struct mvcc_range_result r;

	ck_assert_int_eq(mvcc_range(m, K("a"), SINGLE, &o, &r),
			 CAIRN_ECOMPACTED);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	/* a@2,3,4 gone; a@5,6, b@7, b@8(t), c@9 stay */
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 5);
	/* compacting past the delete drops b entirely */
	ck_assert_int_eq(mvcc_compact(m, 9), 0);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 2); /* a@6, c@9 */
	expect_kv("a", 9, "v", 2, 6, 5);
	expect_kv("b", 9, NULL, 0, 0, 0);
	/* compaction of revisions still in the open batch */
	for (int i = 0; i < 3; i++)
		put1("c", "w", 0); /* 10..12 */
	expect_kv("c", 0, "w", 9, 12, 4);
	ck_assert_int_eq(mvcc_compact(m, 12), 0);
	expect_kv("c", 0, "w", 9, 12, 4);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 2); /* a@6, c@12 */
	expect_kv("c", 12, "w", 9, 12, 4);
}
END_TEST

/* The exact bytes etcd's tools expect in "key" and "meta". */
START_TEST(test_schema)
{
	struct engine_view *v;
	struct engine_slice val;
	struct mvcc_kv kv;
	int64_t n;
	static const uint8_t rev2[17] = {0, 0, 0, 0, 0, 0, 0, 2, '_',
					 0, 0, 0, 0, 0, 0, 0, 0};
	static const uint8_t rev3t[18] = {0, 0, 0, 0, 0, 0, 0, 3, '_',
					  0, 0, 0, 0, 0, 0, 0, 0, 't'};

	put1("foo", "bar", 5);
	del1(K("foo"), SINGLE, &n);
	ck_assert_int_eq(mvcc_set_consistent_index(m, 0x0102030405060708ull),
			 0);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	ck_assert_int_eq(engine_view_open(&eh, &v), 0);
	ck_assert_int_eq(engine_get(&eh, v, "key", rev2, 17, &val), 0);
	ck_assert_int_eq(mvcc_kv_decode(val.p, val.n, &kv), 0);
	ck_assert(kv.key_len == 3 && memcmp(kv.key, "foo", 3) == 0);
	ck_assert(kv.value_len == 3 && memcmp(kv.value, "bar", 3) == 0);
	ck_assert_int_eq(kv.create_rev, 2);
	ck_assert_int_eq(kv.mod_rev, 2);
	ck_assert_int_eq(kv.version, 1);
	ck_assert_int_eq(kv.lease, 5);
	ck_assert_int_eq(engine_get(&eh, v, "key", rev3t, 18, &val), 0);
	/* a tombstone's KeyValue holds the key only: 0a 03 'f' 'o' 'o' */
	ck_assert_uint_eq(val.n, 5);
	ck_assert(memcmp(val.p,
			 "\x0a\x03"
			 "foo",
			 5) == 0);
	ck_assert_int_eq(
		engine_get(&eh, v, "meta", K("consistent_index"), &val), 0);
	ck_assert(val.n == 8 && memcmp(val.p, "\1\2\3\4\5\6\7\10", 8) == 0);
	engine_view_close(&eh, v);
	ck_assert_uint_eq(mvcc_consistent_index(m), 0x0102030405060708ull);
}
END_TEST

START_TEST(test_reopen)
{
	int64_t n;
	char k[16];

	for (int i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "key%03d", i % 100);
		put1(k, k, i % 3);
	}
	del1(K("key050"), K("key060"), &n); /* 302 */
	ck_assert_int_eq(n, 10);
	ck_assert_int_eq(mvcc_compact(m, 250), 0);
	ck_assert_int_eq(mvcc_set_consistent_index(m, 42), 0);
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	put1("late", "x", 0); /* 303, never committed: lost on reopen */
	close_store();
	open_store();
	ck_assert_int_eq(mvcc_rev(m), 302);
	ck_assert_int_eq(mvcc_compact_rev(m), 250);
	ck_assert_uint_eq(mvcc_consistent_index(m), 42);
	expect_kv("late", 0, NULL, 0, 0, 0);
	/* key001 was put at 3, 103, 203 (version 3) */
	expect_kv("key001", 0, "key001", 3, 203, 3);
	expect_kv("key001", 250, "key001", 3, 203, 3);
	expect_kv("key055", 0, NULL, 0, 0, 0);
	expect_kv("key055", 301, "key055", 57, 257, 3);
	struct mvcc_range_opts o = {249, 0, false, false};
	struct mvcc_range_result r;

	ck_assert_int_eq(mvcc_range(m, K("key"), FROM_KEY, &o, &r),
			 CAIRN_ECOMPACTED);
	ck_assert_int_eq(mvcc_range(m, K("key"), FROM_KEY, NULL, &r), 0);
	ck_assert_int_eq(r.count, 90);
	mvcc_range_result_free(&r);
	/* writing goes on from the restored state */
	ck_assert_int_eq(put1("key001", "new", 0), 303);
	expect_kv("key001", 0, "new", 3, 303, 4);
	ck_assert_int_eq(put1("key055", "new", 0), 304);
	expect_kv("key055", 0, "new", 304, 304, 1);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	/* rev never goes below the compaction, even with every key gone */
	del1(K("a"), FROM_KEY, &n);
	ck_assert_int_eq(n, 91);
	ck_assert_int_eq(mvcc_compact(m, 305), 0);
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 0);
	close_store();
	open_store();
	ck_assert_int_eq(mvcc_rev(m), 305);
	ck_assert_int_eq(put1("z", "z", 0), 306);
}
END_TEST

/* A compaction scheduled (by etcd, or a crash) but not finished is
 * finished at open. */
START_TEST(test_finish_scheduled_compaction)
{
	static const uint8_t rev4[17] = {0, 0, 0, 0, 0, 0, 0, 4, '_',
					 0, 0, 0, 0, 0, 0, 0, 0};

	for (int i = 0; i < 4; i++)
		put1("a", "v", 0); /* 2..5 */
	ck_assert_int_eq(
		engine_put(&eh, "meta", K("scheduledCompactRev"), rev4, 17), 0);
	/* a tombstone whose puts an unfinished compaction already removed */
	static const uint8_t rev3t[18] = {0, 0, 0, 0, 0, 0, 0, 3, '_',
					  0, 0, 0, 0, 0, 0, 0, 1, 't'};
	ck_assert_int_eq(engine_put(&eh, "key", rev3t, 18,
				    "\x0a\x05"
				    "ghost",
				    7),
			 0);
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 5);
	close_store();
	open_store();
	ck_assert_int_eq(mvcc_compact_rev(m), 4);
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 2);
	expect_kv("a", 4, "v", 2, 4, 3);
}
END_TEST

struct events {
	int n;
	int type[8];
	int64_t mod[8], ver[8], prev_mod[8];
	char val[8][8];
};

static void observe(void *arg, int type, const struct mvcc_kv *kv,
		    const struct mvcc_kv *prev)
{
	struct events *e = arg;

	ck_assert_int_lt(e->n, 8);
	e->type[e->n] = type;
	e->mod[e->n] = kv->mod_rev;
	e->ver[e->n] = kv->version;
	e->prev_mod[e->n] = prev ? prev->mod_rev : 0;
	snprintf(e->val[e->n], 8, "%.*s", (int)kv->value_len,
		 kv->value ? (const char *)kv->value : "");
	e->n++;
}

START_TEST(test_observer)
{
	struct events e = {0};
	int64_t n;

	put1("a", "1", 0); /* 2, before the observer */
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	mvcc_set_observer(m, observe, &e);
	put1("a", "2", 0);	  /* 3 */
	put1("b", "1", 0);	  /* 4 */
	del1(K("a"), SINGLE, &n); /* 5 */
	ck_assert_int_eq(e.n, 3);
	ck_assert_int_eq(e.type[0], 0);
	ck_assert_int_eq(e.mod[0], 3);
	ck_assert_int_eq(e.ver[0], 2);
	ck_assert_int_eq(e.prev_mod[0], 2); /* from the engine */
	ck_assert_str_eq(e.val[0], "2");
	ck_assert_int_eq(e.prev_mod[1], 0); /* new key */
	ck_assert_int_eq(e.type[2], 1);
	ck_assert_int_eq(e.mod[2], 5);
	ck_assert_int_eq(e.ver[2], 0);
	ck_assert_int_eq(e.prev_mod[2], 3); /* from the uncommitted buffer */
	mvcc_set_observer(m, NULL, NULL);
	put1("c", "1", 0);
	ck_assert_int_eq(e.n, 3);
}
END_TEST

struct hist {
	int n, stop_at;
	int type[16];
	int64_t mod[16], ver[16];
	char key[16][4];
};

static int hist_fn(void *arg, int type, const struct mvcc_kv *kv)
{
	struct hist *h = arg;

	ck_assert_int_lt(h->n, 16);
	h->type[h->n] = type;
	h->mod[h->n] = kv->mod_rev;
	h->ver[h->n] = kv->version;
	snprintf(h->key[h->n], 4, "%.*s", (int)kv->key_len,
		 (const char *)kv->key);
	h->n++;
	return h->n == h->stop_at;
}

START_TEST(test_history)
{
	struct hist h = {0};
	int64_t n;

	put1("a", "1", 0);			/* 2 */
	ck_assert_int_eq(mvcc_txn_begin(m), 0); /* 3: b, c */
	ck_assert_int_eq(mvcc_txn_put(m, K("b"), K("1"), 0), 0);
	ck_assert_int_eq(mvcc_txn_put(m, K("c"), K("1"), 0), 0);
	ck_assert_int_eq(mvcc_txn_end(m), 3);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	del1(K("a"), SINGLE, &n); /* 4, uncommitted */
	put1("b", "2", 0);	  /* 5, uncommitted */
	ck_assert_int_eq(mvcc_txn_begin(m), 0);
	ck_assert_int_eq(mvcc_txn_put(m, K("z"), K("1"), 0), 0);
	/* the open txn's change is not history yet */
	ck_assert_int_eq(mvcc_history(m, 0, 0, hist_fn, &h), 0);
	ck_assert_int_eq(mvcc_txn_end(m), 6);
	ck_assert_int_eq(h.n, 5);
	static const char *keys[] = {"a", "b", "c", "a", "b"};
	static const int64_t mods[] = {2, 3, 3, 4, 5};
	for (int i = 0; i < 5; i++) {
		ck_assert_str_eq(h.key[i], keys[i]);
		ck_assert_int_eq(h.mod[i], mods[i]);
		ck_assert_int_eq(h.type[i], i == 3);
	}
	ck_assert_int_eq(h.ver[4], 2);
	/* a window, and stopping early */
	h = (struct hist){0};
	ck_assert_int_eq(mvcc_history(m, 3, 4, hist_fn, &h), 0);
	ck_assert_int_eq(h.n, 3);
	h = (struct hist){.stop_at = 2};
	ck_assert_int_eq(mvcc_history(m, 4, 0, hist_fn, &h), 0);
	ck_assert_int_eq(h.n, 2);
	ck_assert_int_eq(h.mod[1], 5);
	ck_assert_int_eq(mvcc_compact(m, 4), 0);
	h = (struct hist){0};
	ck_assert_int_eq(mvcc_history(m, 3, 0, hist_fn, &h), CAIRN_ECOMPACTED);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	ck_assert_int_eq(mvcc_history(m, 4, 0, hist_fn, &h), 0);
	/* the tombstone at 4 was compacted away: b@5, z@6 */
	ck_assert_int_eq(h.n, 2);
	ck_assert_str_eq(h.key[1], "z");
}
END_TEST

static int lease_sum(void *arg, const struct mvcc_kv *kv)
{
	int64_t *sum = arg;

	ck_assert(kv->key_len == 2 && kv->key[0] == 'k');
	*sum += kv->lease;
	return *sum >= 100; /* stop once past 100 */
}

START_TEST(test_foreach)
{
	int64_t sum = 0, n;

	put1("k1", "v", 10);
	put1("k2", "v", 0);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	put1("k3", "v", 30); /* uncommitted */
	put1("k4", "v", 40);
	del1(K("k4"), SINGLE, &n);
	put1("k5", "v", 100);
	put1("k6", "v", 1000); /* never reached: the walk stops at k5 */
	ck_assert_int_eq(mvcc_foreach(m, K("k"), FROM_KEY, lease_sum, &sum), 0);
	ck_assert_int_eq(sum, 140);
}
END_TEST

/* Many keys and values over several commits; random reads check values
 * from both the engine and the uncommitted buffer. */
START_TEST(test_bulk)
{
	char k[32], v[64];
	struct mvcc_range_result r;
	int64_t rev;

	for (int t = 0; t < 200; t++) {
		ck_assert_int_eq(mvcc_txn_begin(m), 0);
		for (int i = 0; i < 50; i++) {
			int id = (t * 50 + i) * 7919 % 5000;

			snprintf(k, sizeof(k), "/bulk/%05d", id);
			snprintf(v, sizeof(v), "value-%d-%d", id, t);
			ck_assert_int_eq(mvcc_txn_put(m, K(k), K(v), 0), 0);
		}
		rev = mvcc_txn_end(m);
		ck_assert_int_eq(rev, t + 2);
		if (t % 7 == 0)
			ck_assert_int_eq(mvcc_commit(m, false), 0);
	}
	ck_assert_int_eq(mvcc_range(m, K("/bulk/"), K("/bulk0"), NULL, &r), 0);
	ck_assert_int_eq(r.count, 5000);
	for (size_t i = 0; i < r.n; i++) {
		snprintf(k, sizeof(k), "/bulk/%05zu", i);
		ck_assert(memcmp(r.kvs[i].key, k, strlen(k)) == 0);
		ck_assert_int_eq(r.kvs[i].version, 2);
		snprintf(v, sizeof(v), "value-%zu-%lld", i,
			 (long long)(r.kvs[i].mod_rev - 2));
		ck_assert(r.kvs[i].value_len == strlen(v) &&
			  memcmp(r.kvs[i].value, v, strlen(v)) == 0);
	}
	mvcc_range_result_free(&r);
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	ck_assert_int_eq(mvcc_compact(m, mvcc_rev(m)), 0);
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	ck_assert_uint_eq(engine_rows(MVCC_BUCKET_KEY), 5000);
}
END_TEST

Suite *mvcc_suite(void)
{
	Suite *s = suite_create("mvcc");
	TCase *tc = tcase_create("sqlite");

	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_revisions);
	tcase_add_test(tc, test_range_opts);
	tcase_add_test(tc, test_txn_own_writes);
	tcase_add_test(tc, test_compaction);
	tcase_add_test(tc, test_schema);
	tcase_add_test(tc, test_reopen);
	tcase_add_test(tc, test_finish_scheduled_compaction);
	tcase_add_test(tc, test_observer);
	tcase_add_test(tc, test_history);
	tcase_add_test(tc, test_foreach);
	tcase_add_test(tc, test_bulk);
	suite_add_tcase(s, tc);
	return s;
}
