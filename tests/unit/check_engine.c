/* check_engine: the engine conformance suite, run against every engine
 * in engine_list() (each test is a Check loop test over the engines), plus
 * the registry itself, plus (when built) the sqlite engine's own promises
 * (engines/sqlite.h): a failing allocator under SQLite, bucket names,
 * defrag, foreign databases and the background checkpointer.
 *
 * Each test works in its own mkdtemp directory under one base directory
 * that the (unchecked, parent-side) teardown removes, so a failing test
 * in a forked child leaves nothing behind.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/log.h"
#include "engines/engine.h"
#include "tests/unit/suites.h"
#include "tests/unit/tmpdir.h"

#ifdef HAVE_SQLITE
#include <sqlite3.h>
#endif

static char ce_base[256];

struct ce_fx {
	const struct engine_ops *ops;
	struct engine_handle h;
	char dir[512];
	char path[600];
};

static void ce_base_setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(ce_base, sizeof(ce_base), "%s/check_engine.XXXXXX",
		 t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(ce_base));
}

static void ce_base_teardown(void)
{
	ut_rmtree(ce_base);
	ce_base[0] = '\0';
}

static int ce_nengines(void)
{
	const struct engine_ops *const *l = engine_list();
	int n = 0;

	while (l[n])
		n++;
	return n;
}

static void ce_open(struct ce_fx *f)
{
	struct engine_config cfg = {.cache_bytes = 4u << 20};
	int err = engine_open(f->ops->name, f->path, &cfg, &f->h);

	ck_assert_msg(err == 0, "%s: open %s: %d", f->ops->name, f->path, err);
}

static void ce_start(struct ce_fx *f, int i)
{
	memset(f, 0, sizeof(*f));
	f->ops = engine_list()[i];
	ck_assert_ptr_nonnull(f->ops);
	snprintf(f->dir, sizeof(f->dir), "%s/%s.XXXXXX", ce_base, f->ops->name);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/db", f->dir);
	ce_open(f);
}

static void ce_stop(struct ce_fx *f)
{
	engine_close(&f->h);
	ut_rmtree(f->dir);
}

static void ce_reopen(struct ce_fx *f)
{
	engine_close(&f->h);
	ce_open(f);
}

static void ce_put(struct ce_fx *f, const char *b, const char *k, const char *v)
{
	int err = engine_put(&f->h, b, k, strlen(k), v, strlen(v));

	ck_assert_msg(err == 0, "%s: put %s/%s: %d", f->ops->name, b, k, err);
}

static void ce_commit(struct ce_fx *f, bool sync)
{
	ck_assert_int_eq(engine_commit(&f->h, sync), 0);
}

/* Expect get(b, k) in v to be want (NULL: -ENOENT). */
static void ce_expect(struct ce_fx *f, struct engine_view *v, const char *b,
		      const char *k, const char *want)
{
	struct engine_slice s = {0};
	int err = engine_get(&f->h, v, b, k, strlen(k), &s);

	if (!want) {
		ck_assert_msg(err == -ENOENT, "%s: get %s/%s: %d, want ENOENT",
			      f->ops->name, b, k, err);
		return;
	}
	ck_assert_msg(err == 0, "%s: get %s/%s: %d", f->ops->name, b, k, err);
	ck_assert_msg(s.n == strlen(want) && memcmp(s.p, want, s.n) == 0,
		      "%s: get %s/%s: got %.*s want %s", f->ops->name, b, k,
		      (int)s.n, (const char *)s.p, want);
}

/* Same, in a fresh view. */
static void ce_expect_now(struct ce_fx *f, const char *b, const char *k,
			  const char *want)
{
	struct engine_view *v;

	ck_assert_int_eq(engine_view_open(&f->h, &v), 0);
	ce_expect(f, v, b, k, want);
	engine_view_close(&f->h, v);
}

/* Scan b in [start, end) and compare the keys, in order, with want
 * (a space-separated list; "" for none). Values must equal "v" + key. */
static void ce_scan(struct ce_fx *f, struct engine_view *v, const char *b,
		    const char *start, const char *end, bool reverse,
		    const char *want)
{
	char got[4096] = "", val[256];
	struct engine_iter *it;
	struct engine_slice k, s;
	size_t n = 0;
	int rc, steps = 0;

	ck_assert_int_eq(engine_iter_open(&f->h, v, b, start,
					  start ? strlen(start) : 0, end,
					  end ? strlen(end) : 0, reverse, &it),
			 0);
	while ((rc = engine_iter_next(&f->h, it, &k, &s)) == 1) {
		ck_assert_int_lt(++steps, 1000);
		ck_assert_uint_lt(n + k.n + 2, sizeof(got));
		if (n)
			got[n++] = ' ';
		memcpy(got + n, k.p, k.n);
		n += k.n;
		got[n] = '\0';
		snprintf(val, sizeof(val), "v%.*s", (int)k.n,
			 (const char *)k.p);
		ck_assert_msg(s.n == strlen(val) && !memcmp(s.p, val, s.n),
			      "%s: value of %.*s", f->ops->name, (int)k.n,
			      (const char *)k.p);
	}
	ck_assert_int_eq(rc, 0);
	/* The end is sticky. */
	ck_assert_int_eq(engine_iter_next(&f->h, it, &k, &s), 0);
	engine_iter_close(&f->h, it);
	ck_assert_msg(strcmp(got, want) == 0,
		      "%s: scan [%s,%s)%s: got '%s' want '%s'", f->ops->name,
		      start ? start : "-", end ? end : "-",
		      reverse ? " rev" : "", got, want);
}

static void ce_putkv(struct ce_fx *f, const char *b, const char *k)
{
	char v[256];

	snprintf(v, sizeof(v), "v%s", k);
	ce_put(f, b, k, v);
}

/* ---- registry ---- */

START_TEST(test_registry)
{
	const struct engine_ops *const *l = engine_list();
	struct engine_handle h;
	int i;

	ck_assert_ptr_nonnull(l[0]);
	ck_assert_str_eq(l[0]->name, engine_default_name());
	for (i = 0; l[i]; i++) {
		ck_assert_ptr_eq(engine_find(l[i]->name), l[i]);
		ck_assert_int_eq(l[i]->version, ENGINE_OPS_VERSION);
		ck_assert_ptr_nonnull(l[i]->lib_version());
		ck_assert_uint_gt(strlen(l[i]->lib_version()), 0);
	}
	ck_assert_ptr_null(engine_find("no-such-engine"));
	ck_assert_ptr_null(engine_find(NULL));
	ck_assert_int_eq(
		engine_open("no-such-engine", "/nonexistent/db", NULL, &h),
		-ENOENT);
	ck_assert_ptr_null(h.e);
	engine_close(&h); /* harmless on a failed open */
}
END_TEST

/* ---- conformance, looped over engine_list() ---- */

START_TEST(test_put_get_del)
{
	struct ce_fx f;
	struct engine_view *v;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_commit(&f.h, false), 0); /* empty batch */
	ck_assert_int_eq(engine_commit(&f.h, true), 0);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_put(&f, "key", "a", "1");
	ce_put(&f, "key", "b", "2");
	ce_put(&f, "key", "a", "3");	     /* overwrite inside the batch */
	ce_expect_now(&f, "key", "a", NULL); /* not committed yet */
	ce_commit(&f, false);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ce_expect(&f, v, "key", "a", "3");
	ce_expect(&f, v, "key", "b", "2");
	ce_expect(&f, v, "key", "c", NULL);
	engine_view_close(&f.h, v);

	ck_assert_int_eq(engine_del(&f.h, "key", "a", 1), 0);
	ck_assert_int_eq(engine_del(&f.h, "key", "zz", 2), 0); /* absent */
	ce_put(&f, "key", "b", "22");
	ce_commit(&f, true);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ce_expect(&f, v, "key", "a", NULL);
	ce_expect(&f, v, "key", "b", "22");
	/* The previous value stays valid until the next call. */
	{
		struct engine_slice s1, s2;

		ck_assert_int_eq(engine_get(&f.h, v, "key", "b", 1, &s1), 0);
		ck_assert_int_eq(s1.n, 2);
		ck_assert_int_eq(memcmp(s1.p, "22", 2), 0);
		ck_assert_int_eq(engine_get(&f.h, v, "key", "b", 1, &s2), 0);
		ck_assert_int_eq(memcmp(s2.p, "22", 2), 0);
	}
	engine_view_close(&f.h, v);
	/* Bad arguments. */
	ck_assert_int_eq(engine_put(&f.h, "key", "", 0, "x", 1), -EINVAL);
	ce_stop(&f);
}
END_TEST

START_TEST(test_scan_order_and_bounds)
{
	static const char *keys[] = {"b", "a",	"ab", "abc", "b0",
				     "c", "aa", "ba", "bb",  "d"};
	struct ce_fx f;
	struct engine_view *v;
	size_t i;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		ce_putkv(&f, "key", keys[i]);
	ce_commit(&f, false);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ce_scan(&f, v, "key", NULL, NULL, false, "a aa ab abc b b0 ba bb c d");
	ce_scan(&f, v, "key", NULL, NULL, true, "d c bb ba b0 b abc ab aa a");
	ce_scan(&f, v, "key", "ab", "b0", false, "ab abc b");
	ce_scan(&f, v, "key", "ab", "b0", true, "b abc ab");
	ce_scan(&f, v, "key", "abd", NULL, false, "b b0 ba bb c d");
	ce_scan(&f, v, "key", "abd", NULL, true, "d c bb ba b0 b");
	ce_scan(&f, v, "key", NULL, "ab", false, "a aa");
	ce_scan(&f, v, "key", NULL, "ab", true, "aa a");
	ce_scan(&f, v, "key", "b", "b", false, ""); /* empty range */
	ce_scan(&f, v, "key", "c", "b", true, "");  /* inverted range */
	ce_scan(&f, v, "key", "e", NULL, false, "");
	ce_scan(&f, v, "key", "", "", false, "a aa ab abc b b0 ba bb c d");
	engine_view_close(&f.h, v);
	ce_stop(&f);
}
END_TEST

START_TEST(test_scan_binary_keys)
{
	/* Bytewise order: 0x00 and 0xff bytes, prefixes shorter first. */
	static const uint8_t k[][3] = {{0xff, 0, 0},	{0x00, 0, 0},
				       {0x7f, 0x80, 0}, {0x80, 0, 0},
				       {0x00, 0x00, 0}, {0xff, 0xff, 0}};
	static const size_t kl[] = {1, 1, 2, 1, 2, 2};
	static const int order[] = {1, 4, 2, 3, 0, 5};
	struct ce_fx f;
	struct engine_view *v;
	struct engine_iter *it;
	struct engine_slice ks, vs;
	int i, n = 0;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	for (i = 0; i < 6; i++)
		ck_assert_int_eq(engine_put(&f.h, "key", k[i], kl[i], &i, 1),
				 0);
	ce_commit(&f, false);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ck_assert_int_eq(
		engine_iter_open(&f.h, v, "key", NULL, 0, NULL, 0, false, &it),
		0);
	while (engine_iter_next(&f.h, it, &ks, &vs) == 1) {
		ck_assert_int_lt(n, 6);
		ck_assert_uint_eq(ks.n, kl[order[n]]);
		ck_assert_int_eq(memcmp(ks.p, k[order[n]], ks.n), 0);
		ck_assert_uint_eq(vs.n, 1);
		n++;
	}
	ck_assert_int_eq(n, 6);
	engine_iter_close(&f.h, it);
	/* [0x00 0x00, 0xff): reverse. */
	ck_assert_int_eq(
		engine_iter_open(&f.h, v, "key", k[4], 2, k[0], 1, true, &it),
		0);
	for (n = 3; engine_iter_next(&f.h, it, &ks, &vs) == 1; n--) {
		ck_assert_int_ge(n, 1);
		ck_assert_int_eq(memcmp(ks.p, k[order[n]], ks.n), 0);
	}
	ck_assert_int_eq(n, 0);
	engine_iter_close(&f.h, it);
	engine_view_close(&f.h, v);
	ce_stop(&f);
}
END_TEST

START_TEST(test_concurrent_iters)
{
	struct ce_fx f;
	struct engine_view *v;
	struct engine_iter *a, *b;
	struct engine_slice ka, va, kb, vb;
	int na = 0, nb = 0;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_putkv(&f, "key", "1");
	ce_putkv(&f, "key", "2");
	ce_putkv(&f, "key", "3");
	ce_commit(&f, false);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ck_assert_int_eq(
		engine_iter_open(&f.h, v, "key", NULL, 0, NULL, 0, false, &a),
		0);
	ck_assert_int_eq(
		engine_iter_open(&f.h, v, "key", NULL, 0, NULL, 0, false, &b),
		0);
	/* Interleave two scans and point gets in one view. */
	while (engine_iter_next(&f.h, a, &ka, &va) == 1) {
		ck_assert_int_eq(engine_iter_next(&f.h, b, &kb, &vb), 1);
		ck_assert_int_eq(ka.n, 1);
		ck_assert_int_eq(kb.n, 1);
		ck_assert_int_eq(*ka.p, '1' + na);
		ck_assert_int_eq(*kb.p, '1' + nb);
		ce_expect(&f, v, "key", "2", "v2");
		na++;
		nb++;
	}
	ck_assert_int_eq(na, 3);
	ck_assert_int_eq(engine_iter_next(&f.h, b, &kb, &vb), 0);
	engine_iter_close(&f.h, a);
	engine_iter_close(&f.h, b);
	/* The cached statements are reusable after close. */
	ce_scan(&f, v, "key", NULL, NULL, true, "3 2 1");
	ce_scan(&f, v, "key", NULL, NULL, true, "3 2 1");
	engine_view_close(&f.h, v);
	ce_stop(&f);
}
END_TEST

START_TEST(test_view_isolation)
{
	struct ce_fx f;
	struct engine_view *old, *cur;
	int i;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_putkv(&f, "key", "a");
	ce_commit(&f, false);
	/* No read in the old view before the commits: the view is the
	 * snapshot at open, not at its first read. */
	ck_assert_int_eq(engine_view_open(&f.h, &old), 0);
	ce_put(&f, "key", "a", "changed");
	ce_putkv(&f, "key", "b");
	ck_assert_int_eq(engine_bucket_create(&f.h, "lease"), 0);
	ce_putkv(&f, "lease", "l1");
	ce_commit(&f, true);
	/* More commits while the old view stays open. */
	for (i = 0; i < 50; i++) {
		char k[16];

		snprintf(k, sizeof(k), "x%02d", i);
		ce_putkv(&f, "key", k);
		ce_commit(&f, false);
	}
	ck_assert_int_eq(engine_view_open(&f.h, &cur), 0);
	ce_expect(&f, old, "key", "a", "va");
	ce_expect(&f, old, "key", "b", NULL);
	ce_expect(&f, old, "lease", "l1", NULL);
	ce_scan(&f, old, "key", NULL, NULL, false, "a");
	ce_scan(&f, old, "lease", NULL, NULL, false, "");
	ce_expect(&f, cur, "key", "a", "changed");
	ce_expect(&f, cur, "key", "b", "vb");
	ce_expect(&f, cur, "lease", "l1", "vl1");
	ce_scan(&f, cur, "key", "b", "x01", false, "b x00");
	engine_view_close(&f.h, old);
	engine_view_close(&f.h, cur);
	ce_stop(&f);
}
END_TEST

static void ce_fill(uint8_t *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 31 + seed * 7 + (i >> 9)) & 0xff);
}

START_TEST(test_value_sizes)
{
	static const size_t sizes[] = {0,    1,	    100,    4095,
				       4096, 65536, 300000, 1536 * 1024};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	uint8_t *buf = malloc(sizes[N - 1]), *want = malloc(sizes[N - 1]);
	struct ce_fx f;
	struct engine_view *v;
	struct engine_iter *it;
	struct engine_slice ks, vs;
	size_t i;

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(want);
	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	for (i = 0; i < N; i++) {
		uint8_t k = (uint8_t)('a' + i);

		ce_fill(buf, sizes[i], (unsigned)i);
		ck_assert_int_eq(engine_put(&f.h, "key", &k, 1, buf, sizes[i]),
				 0);
	}
	memset(buf, 0, sizes[N - 1]); /* the engine must have copied */
	ce_commit(&f, true);
	ce_reopen(&f);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	for (i = 0; i < N; i++) {
		uint8_t k = (uint8_t)('a' + i);

		ce_fill(want, sizes[i], (unsigned)i);
		ck_assert_int_eq(engine_get(&f.h, v, "key", &k, 1, &vs), 0);
		ck_assert_uint_eq(vs.n, sizes[i]);
		ck_assert(vs.n == 0 || memcmp(vs.p, want, vs.n) == 0);
	}
	ck_assert_int_eq(
		engine_iter_open(&f.h, v, "key", NULL, 0, NULL, 0, true, &it),
		0);
	for (i = N; engine_iter_next(&f.h, it, &ks, &vs) == 1;) {
		ck_assert_uint_gt(i, 0);
		i--;
		ce_fill(want, sizes[i], (unsigned)i);
		ck_assert_uint_eq(ks.n, 1);
		ck_assert_int_eq(ks.p[0], 'a' + (int)i);
		ck_assert_uint_eq(vs.n, sizes[i]);
		ck_assert(vs.n == 0 || memcmp(vs.p, want, vs.n) == 0);
	}
	ck_assert_uint_eq(i, 0);
	engine_iter_close(&f.h, it);
	engine_view_close(&f.h, v);
	ce_stop(&f);
	free(buf);
	free(want);
}
END_TEST

START_TEST(test_delete_reinsert)
{
	struct ce_fx f;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_put(&f, "key", "k", "one");
	ce_commit(&f, false);
	ck_assert_int_eq(engine_del(&f.h, "key", "k", 1), 0);
	ce_commit(&f, false);
	ce_expect_now(&f, "key", "k", NULL);
	ce_put(&f, "key", "k", "two");
	ce_commit(&f, false);
	ce_expect_now(&f, "key", "k", "two");
	/* Delete then reinsert in one batch, and the other way round. */
	ck_assert_int_eq(engine_del(&f.h, "key", "k", 1), 0);
	ce_put(&f, "key", "k", "three");
	ce_put(&f, "key", "j", "x");
	ck_assert_int_eq(engine_del(&f.h, "key", "j", 1), 0);
	ce_commit(&f, false);
	ce_expect_now(&f, "key", "k", "three");
	ce_expect_now(&f, "key", "j", NULL);
	ce_reopen(&f);
	ce_expect_now(&f, "key", "k", "three");
	ce_expect_now(&f, "key", "j", NULL);
	ce_stop(&f);
}
END_TEST

START_TEST(test_many_buckets)
{
	enum { NB = 120 };
	char name[NB][64];
	struct ce_fx f;
	struct engine_view *v;
	int i;

	ce_start(&f, _i);
	for (i = 0; i < NB; i++) {
		/* Names a naive SQL or path mapping would choke on. */
		snprintf(name[i], sizeof(name[i]), "%s%d",
			 i % 4 == 0   ? "b"
			 : i % 4 == 1 ? "with space \"quote\" 'x'; DROP "
			 : i % 4 == 2 ? "ünïcødé/../"
				      : "authUsers",
			 i);
		ck_assert_int_eq(engine_bucket_create(&f.h, name[i]), 0);
		ck_assert_int_eq(engine_bucket_create(&f.h, name[i]), 0);
		ce_put(&f, name[i], "same", name[i]);
	}
	ce_commit(&f, false);
	ce_reopen(&f);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	for (i = 0; i < NB; i++) {
		char k[16];

		ce_expect(&f, v, name[i], "same", name[i]);
		snprintf(k, sizeof(k), "%d", i);
		ce_put(&f, name[i], k, "later");
	}
	ce_commit(&f, false);
	/* The old view sees one key per bucket, a new one two. */
	for (i = 0; i < NB; i += 7) {
		char k[16];

		snprintf(k, sizeof(k), "%d", i);
		ce_expect(&f, v, name[i], k, NULL);
		ce_expect_now(&f, name[i], k, "later");
	}
	engine_view_close(&f.h, v);
	ce_stop(&f);
}
END_TEST

START_TEST(test_absent_bucket)
{
	struct ce_fx f;
	struct engine_view *v;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_put(&f.h, "nope", "k", 1, "v", 1), -ENOENT);
	ck_assert_int_eq(engine_del(&f.h, "nope", "k", 1), -ENOENT);
	ce_commit(&f, false);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ce_expect(&f, v, "nope", "k", NULL);
	ce_scan(&f, v, "nope", NULL, NULL, false, "");
	ce_scan(&f, v, "nope", "a", "z", true, "");
	engine_view_close(&f.h, v);
	/* A bucket created in the batch takes writes in that batch. */
	ck_assert_int_eq(engine_bucket_create(&f.h, "meta"), 0);
	ce_put(&f, "meta", "k", "v");
	ce_expect_now(&f, "meta", "k", NULL);
	ce_commit(&f, false);
	ce_expect_now(&f, "meta", "k", "v");
	ce_stop(&f);
}
END_TEST

START_TEST(test_reopen_keeps_committed)
{
	struct ce_fx f;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_put(&f, "key", "kept", "1");
	ce_commit(&f, false);
	ce_put(&f, "key", "lost", "2");
	ce_put(&f, "key", "kept", "overwritten");
	ck_assert_int_eq(engine_bucket_create(&f.h, "lostbucket"), 0);
	ce_put(&f, "lostbucket", "x", "y");
	ce_reopen(&f); /* close discards the open batch */
	ce_expect_now(&f, "key", "kept", "1");
	ce_expect_now(&f, "key", "lost", NULL);
	ce_expect_now(&f, "lostbucket", "x", NULL);
	ck_assert_int_eq(engine_put(&f.h, "lostbucket", "x", 1, "y", 1),
			 -ENOENT);
	ce_put(&f, "key", "after", "3");
	ce_commit(&f, true);
	ce_reopen(&f);
	ce_expect_now(&f, "key", "after", "3");
	ce_stop(&f);
}
END_TEST

START_TEST(test_atomic_meta)
{
	static const uint8_t ci[] = "consistent_index";
	struct ce_fx f;
	struct engine_view *v;
	struct engine_slice s;
	uint64_t idx;
	int round;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "meta"), 0);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_commit(&f, true);
	for (round = 1; round <= 3; round++) {
		char k[16], want[24];

		idx = (uint64_t)round;
		snprintf(k, sizeof(k), "rev%d", round);
		ce_putkv(&f, "key", k);
		ck_assert_int_eq(engine_put(&f.h, "meta", ci, sizeof(ci) - 1,
					    &idx, sizeof(idx)),
				 0);
		if (round != 2)
			ce_commit(&f, round == 3);
		ce_reopen(&f);
		/* Either data and index together, or neither. */
		ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
		ck_assert_int_eq(
			engine_get(&f.h, v, "meta", ci, sizeof(ci) - 1, &s), 0);
		ck_assert_uint_eq(s.n, sizeof(idx));
		memcpy(&idx, s.p, sizeof(idx));
		ck_assert_uint_eq(idx, round == 2 ? 1 : (uint64_t)round);
		snprintf(want, sizeof(want), "v%s", k);
		ce_expect(&f, v, "key", k, round == 2 ? NULL : want);
		engine_view_close(&f.h, v);
	}
	ce_stop(&f);
}
END_TEST

START_TEST(test_size_grows)
{
	enum { NK = 256, VL = 16384 };
	uint8_t *val = malloc(VL);
	uint64_t size0, used0, size1, used1;
	struct ce_fx f;
	int i;

	ck_assert_ptr_nonnull(val);
	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_commit(&f, false);
	ck_assert_int_eq(f.ops->size(f.h.e, &size0, &used0), 0);
	ck_assert_uint_le(used0, size0);
	for (i = 0; i < NK; i++) {
		uint32_t k = (uint32_t)i;

		ce_fill(val, VL, (unsigned)i);
		ck_assert_int_eq(
			engine_put(&f.h, "key", &k, sizeof(k), val, VL), 0);
	}
	ce_commit(&f, false);
	ck_assert_int_eq(f.ops->size(f.h.e, &size1, &used1), 0);
	ck_assert_uint_le(used1, size1);
	ck_assert_uint_ge(used1, used0 + (uint64_t)NK * VL);
	ck_assert_uint_ge(size1, size0 + (uint64_t)NK * VL);
	ce_stop(&f);
	free(val);
}
END_TEST

START_TEST(test_defrag)
{
	enum { NK = 200, VL = 8192 };
	uint8_t *val = calloc(1, VL);
	uint64_t size1, used1, size2, used2;
	struct ce_fx f;
	struct engine_view *v;
	struct engine_slice s;
	uint32_t k;

	ck_assert_ptr_nonnull(val);
	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	for (k = 0; k < NK; k++)
		ck_assert_int_eq(
			engine_put(&f.h, "key", &k, sizeof(k), val, VL), 0);
	ce_commit(&f, false);
	for (k = 1; k < NK; k++)
		ck_assert_int_eq(engine_del(&f.h, "key", &k, sizeof(k)), 0);
	ce_commit(&f, false);
	ck_assert_int_eq(f.ops->size(f.h.e, &size1, &used1), 0);
	ck_assert_int_eq(f.ops->defrag(f.h.e), 0);
	ck_assert_int_eq(f.ops->size(f.h.e, &size2, &used2), 0);
	ck_assert_uint_le(used2, size2);
	ck_assert_uint_lt(size2, size1);
	ck_assert_uint_lt(size2, (uint64_t)NK * VL / 4);
	k = 0;
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ck_assert_int_eq(engine_get(&f.h, v, "key", &k, sizeof(k), &s), 0);
	ck_assert_uint_eq(s.n, VL);
	k = 1;
	ck_assert_int_eq(engine_get(&f.h, v, "key", &k, sizeof(k), &s),
			 -ENOENT);
	engine_view_close(&f.h, v);
	/* Writes still work after a defrag. */
	ce_put(&f, "key", "after", "defrag");
	ce_commit(&f, false);
	ce_expect_now(&f, "key", "after", "defrag");
	ce_stop(&f);
	free(val);
}
END_TEST

START_TEST(test_snapshot)
{
	struct ce_fx f, g;
	struct stat st;
	uint64_t written = 0;
	int fd;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ck_assert_int_eq(engine_bucket_create(&f.h, "meta"), 0);
	ce_putkv(&f, "key", "a");
	ce_putkv(&f, "key", "b");
	ce_put(&f, "meta", "consistent_index", "42");
	ce_commit(&f, false);
	ce_putkv(&f, "key", "uncommitted");

	g = f; /* the copy lives in the same temp dir */
	snprintf(g.path, sizeof(g.path), "%s/copy", f.dir);
	fd = open(g.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(f.ops->snapshot(f.h.e, fd, &written), 0);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_eq(stat(g.path, &st), 0);
	ck_assert_uint_gt(written, 0);
	ck_assert_uint_eq(written, (uint64_t)st.st_size);
	/* The batch in progress is untouched and still commits. */
	ce_commit(&f, false);
	ce_expect_now(&f, "key", "uncommitted", "vuncommitted");

	memset(&g.h, 0, sizeof(g.h));
	ce_open(&g);
	{
		struct engine_view *v;

		ck_assert_int_eq(engine_view_open(&g.h, &v), 0);
		ce_scan(&g, v, "key", NULL, NULL, false, "a b");
		ce_expect(&g, v, "meta", "consistent_index", "42");
		engine_view_close(&g.h, v);
	}
	ce_put(&g, "key", "c", "vc"); /* the copy is a live engine */
	ce_commit(&g, true);
	engine_close(&g.h);
	ce_stop(&f);
}
END_TEST

struct ce_snap_job {
	struct ce_fx *f;
	int fd;
	uint64_t written;
	int err;
	atomic_bool done;
};

static void *ce_snap_thread(void *arg)
{
	struct ce_snap_job *j = arg;

	j->err = j->f->ops->snapshot(j->f->h.e, j->fd, &j->written);
	atomic_store(&j->done, true);
	return NULL;
}

/* snapshot on a helper thread while the owner thread keeps committing:
 * the copy is one consistent commit (meta "n" counts the keys). */
START_TEST(test_snapshot_concurrent)
{
	struct ce_snap_job job = {0};
	struct ce_fx f, g;
	struct engine_view *v;
	struct engine_iter *it;
	struct engine_slice ks, vs;
	pthread_t th;
	uint32_t i, n, count = 0;

	ce_start(&f, _i);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ck_assert_int_eq(engine_bucket_create(&f.h, "meta"), 0);
	for (i = 0; i < 2000; i++) /* something to copy */
		ck_assert_int_eq(
			engine_put(&f.h, "key", &i, sizeof(i), &i, sizeof(i)),
			0);
	ck_assert_int_eq(engine_put(&f.h, "meta", "n", 1, &i, sizeof(i)), 0);
	ce_commit(&f, false);
	g = f;
	snprintf(g.path, sizeof(g.path), "%s/copy", f.dir);
	job.f = &f;
	job.fd = open(g.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(job.fd, 0);
	atomic_init(&job.done, false);
	ck_assert_int_eq(pthread_create(&th, NULL, ce_snap_thread, &job), 0);
	/* Bounded: at most 200000 commits, normally far fewer. */
	for (; i < 200000 && !atomic_load(&job.done); i++) {
		uint32_t m = i + 1;

		ck_assert_int_eq(
			engine_put(&f.h, "key", &i, sizeof(i), &i, sizeof(i)),
			0);
		ck_assert_int_eq(
			engine_put(&f.h, "meta", "n", 1, &m, sizeof(m)), 0);
		ce_commit(&f, false);
	}
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(job.err, 0);
	ck_assert_int_eq(close(job.fd), 0);
	ck_assert_uint_gt(job.written, 0);

	memset(&g.h, 0, sizeof(g.h));
	ce_open(&g);
	ck_assert_int_eq(engine_view_open(&g.h, &v), 0);
	ck_assert_int_eq(engine_get(&g.h, v, "meta", "n", 1, &vs), 0);
	ck_assert_uint_eq(vs.n, sizeof(n));
	memcpy(&n, vs.p, sizeof(n));
	ck_assert_int_eq(
		engine_iter_open(&g.h, v, "key", NULL, 0, NULL, 0, false, &it),
		0);
	while (engine_iter_next(&g.h, it, &ks, &vs) == 1)
		count++;
	engine_iter_close(&g.h, it);
	engine_view_close(&g.h, v);
	ck_assert_uint_ge(n, 2000);
	ck_assert_uint_eq(count, n);
	engine_close(&g.h);
	ce_stop(&f);
}
END_TEST

START_TEST(test_not_an_engine_file)
{
	struct ce_fx f;
	char junk[8192];
	int fd;

	ce_start(&f, _i);
	engine_close(&f.h);
	snprintf(f.path, sizeof(f.path), "%s/junk", f.dir);
	memset(junk, 'J', sizeof(junk));
	fd = open(f.path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, junk, sizeof(junk)), (int)sizeof(junk));
	close(fd);
	ck_assert_int_eq(engine_open(f.ops->name, f.path, NULL, &f.h), -EINVAL);
	ck_assert_ptr_null(f.h.e);
	snprintf(f.path, sizeof(f.path), "%s/no/such/dir/db", f.dir);
	ck_assert_int_lt(engine_open(f.ops->name, f.path, NULL, &f.h), 0);
	ck_assert_ptr_null(f.h.e);
	ce_stop(&f);
}
END_TEST

#ifdef HAVE_SQLITE
/* ---- sqlite only: a failing allocator under SQLite ---- */

static sqlite3_mem_methods ce_mem_orig;
static bool ce_mem_installed;
static long ce_mem_countdown = -1; /* allocations left; -1: never fail */
static long ce_mem_failed;

static bool ce_mem_fail(void)
{
	if (ce_mem_countdown < 0)
		return false;
	if (ce_mem_countdown == 0) {
		ce_mem_failed++;
		return true; /* and every allocation after, until reset */
	}
	ce_mem_countdown--;
	return false;
}

static void *ce_malloc(int n)
{
	return ce_mem_fail() ? NULL : ce_mem_orig.xMalloc(n);
}

static void *ce_realloc(void *p, int n)
{
	return ce_mem_fail() ? NULL : ce_mem_orig.xRealloc(p, n);
}

static void ce_mem_install(void)
{
	sqlite3_mem_methods m;

	if (ce_mem_installed)
		return;
	ck_assert_int_eq(sqlite3_shutdown(), SQLITE_OK);
	ck_assert_int_eq(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &ce_mem_orig),
			 SQLITE_OK);
	m = ce_mem_orig;
	m.xMalloc = ce_malloc;
	m.xRealloc = ce_realloc;
	ck_assert_int_eq(sqlite3_config(SQLITE_CONFIG_MALLOC, &m), SQLITE_OK);
	ck_assert_int_eq(sqlite3_initialize(), SQLITE_OK);
	ce_mem_installed = true;
}

/* Out of memory at every point of a batch, its commit and a read: errors
 * come back as -errno, never a crash; a commit that fails leaves none of
 * its batch, one that succeeds keeps every put that succeeded; the
 * engine works normally afterwards. */
START_TEST(test_sqlite_oom)
{
	enum { NK = 20, MAXN = 1000, STRIDE = 7 };
	struct ce_fx f;
	long n, clean_runs = 0;

	ce_mem_install();
	log_set_level(LOG_ERROR); /* hundreds of expected warnings */
	/* A stride keeps the run short; the failure is persistent, so every
	 * point of the sequence still meets a failing allocation. */
	for (n = 0; n < MAXN && clean_runs < 3; n += STRIDE) {
		int put_rc[NK + 1], commit_rc, i;
		struct engine_view *v;
		char k[16];

		memset(&f, 0, sizeof(f));
		f.ops = engine_find("sqlite");
		snprintf(f.dir, sizeof(f.dir), "%s/oom.XXXXXX", ce_base);
		ck_assert_ptr_nonnull(mkdtemp(f.dir));
		snprintf(f.path, sizeof(f.path), "%s/db", f.dir);
		ce_open(&f);
		ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
		ck_assert_int_eq(engine_bucket_create(&f.h, "meta"), 0);
		ce_commit(&f, false);

		ce_mem_failed = 0;
		ce_mem_countdown = n;
		for (i = 0; i < NK; i++) {
			snprintf(k, sizeof(k), "k%02d", i);
			put_rc[i] =
				engine_put(&f.h, "key", k, strlen(k), "v", 1);
			ck_assert_int_le(put_rc[i], 0);
		}
		put_rc[NK] = engine_put(&f.h, "meta", "ci", 2, "7", 1);
		commit_rc = engine_commit(&f.h, false);
		ck_assert_int_le(commit_rc, 0);
		if (engine_view_open(&f.h, &v) == 0) {
			struct engine_slice s;
			struct engine_iter *it;

			ck_assert_int_le(
				engine_get(&f.h, v, "key", "k00", 3, &s), 0);
			if (engine_iter_open(&f.h, v, "key", NULL, 0, NULL, 0,
					     true, &it) == 0) {
				while (engine_iter_next(&f.h, it, &s, &s) == 1)
					;
				engine_iter_close(&f.h, it);
			}
			engine_view_close(&f.h, v);
		}
		ce_mem_countdown = -1;
		if (!ce_mem_failed)
			clean_runs++;

		/* Still a working engine. */
		ce_put(&f, "key", "after", "ok");
		ce_commit(&f, false);
		ce_reopen(&f);
		ce_expect_now(&f, "key", "after", "ok");
		for (i = 0; i < NK; i++) {
			bool want = commit_rc == 0 && put_rc[i] == 0;

			snprintf(k, sizeof(k), "k%02d", i);
			ce_expect_now(&f, "key", k, want ? "v" : NULL);
		}
		ce_expect_now(&f, "meta", "ci",
			      commit_rc == 0 && put_rc[NK] == 0 ? "7" : NULL);
		ce_stop(&f);
	}
	log_set_level(LOG_INFO);
	/* The sweep reached allocation counts where nothing failed. */
	ck_assert_int_eq(clean_runs, 3);
}
END_TEST

static void ce_start_sqlite(struct ce_fx *f)
{
	const struct engine_ops *const *l = engine_list();
	int i;

	for (i = 0; l[i] && strcmp(l[i]->name, "sqlite") != 0; i++)
		;
	ce_start(f, i);
}

/* Enough commits to wake the background checkpointer many times and
 * restart the WAL, with a view pinning an old snapshot for the first
 * half: views stay isolated and every commit survives a reopen. */
START_TEST(test_sqlite_checkpoints)
{
	enum { NC = 600, PER = 8, VL = 3000 };
	uint8_t *val = malloc(VL);
	struct ce_fx f;
	struct engine_view *old, *v;
	struct engine_slice s;
	uint32_t c, j, k;

	ck_assert_ptr_nonnull(val);
	ce_start_sqlite(&f);
	ck_assert_int_eq(engine_bucket_create(&f.h, "key"), 0);
	ce_put(&f, "key", "first", "1");
	ce_commit(&f, false);
	ck_assert_int_eq(engine_view_open(&f.h, &old), 0);
	for (c = 0; c < NC; c++) {
		if (c == NC / 2) {
			ce_expect(&f, old, "key", "first", "1");
			k = 0;
			ck_assert_int_eq(
				engine_get(&f.h, old, "key", &k, sizeof(k), &s),
				-ENOENT);
			engine_view_close(&f.h, old);
		}
		for (j = 0; j < PER; j++) {
			k = c * PER + j;
			ce_fill(val, VL, k);
			ck_assert_int_eq(
				engine_put(&f.h, "key", &k, sizeof(k), val, VL),
				0);
		}
		ce_commit(&f, c % 100 == 99);
		if (c % 50 == 0) { /* a short view now and then */
			ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
			ck_assert_int_eq(
				engine_get(&f.h, v, "key", &k, sizeof(k), &s),
				0);
			ck_assert_uint_eq(s.n, VL);
			engine_view_close(&f.h, v);
		}
	}
	ce_reopen(&f);
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	for (k = 0; k < NC * PER; k++) {
		ce_fill(val, VL, k);
		ck_assert_int_eq(engine_get(&f.h, v, "key", &k, sizeof(k), &s),
				 0);
		ck_assert_uint_eq(s.n, VL);
		ck_assert_int_eq(memcmp(s.p, val, VL), 0);
	}
	engine_view_close(&f.h, v);
	ce_stop(&f);
	free(val);
}
END_TEST

/* What engines/sqlite.h promises beyond engine.h. */
START_TEST(test_sqlite_specifics)
{
	char longname[300];
	struct ce_fx f;
	struct engine_view *v;
	sqlite3 *db;

	ce_start_sqlite(&f);
	ck_assert_str_eq(f.ops->lib_version(), sqlite3_libversion());
	/* Bucket names: 1..SQLITE_ENGINE_BUCKET_MAX bytes. */
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	ck_assert_int_eq(engine_bucket_create(&f.h, ""), -EINVAL);
	ck_assert_int_eq(engine_bucket_create(&f.h, longname), -EINVAL);
	longname[255] = '\0';
	ck_assert_int_eq(engine_bucket_create(&f.h, longname), 0);
	ce_put(&f, longname, "k", "v");
	ce_commit(&f, false);
	/* defrag: -EBUSY under a view; commits a pending batch. */
	ck_assert_int_eq(engine_view_open(&f.h, &v), 0);
	ck_assert_int_eq(f.ops->defrag(f.h.e), -EBUSY);
	engine_view_close(&f.h, v);
	ce_put(&f, longname, "pending", "p");
	ck_assert_int_eq(f.ops->defrag(f.h.e), 0);
	ce_expect_now(&f, longname, "pending", "p");
	ce_reopen(&f);
	ce_expect_now(&f, longname, "k", "v");
	engine_close(&f.h);

	/* A SQLite database that is not cairn's is refused, untouched. */
	snprintf(f.path, sizeof(f.path), "%s/foreign", f.dir);
	ck_assert_int_eq(sqlite3_open(f.path, &db), SQLITE_OK);
	ck_assert_int_eq(
		sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL),
		SQLITE_OK);
	sqlite3_close(db);
	ck_assert_int_eq(engine_open("sqlite", f.path, NULL, &f.h), -EINVAL);
	ce_stop(&f);
}
END_TEST
#endif

Suite *engine_suite(void)
{
	Suite *s = suite_create("engine");
	TCase *tc = tcase_create("registry");
	int n = ce_nengines();

	tcase_add_test(tc, test_registry);
	suite_add_tcase(s, tc);

	tc = tcase_create("conformance");
	tcase_add_unchecked_fixture(tc, ce_base_setup, ce_base_teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, test_put_get_del, 0, n);
	tcase_add_loop_test(tc, test_scan_order_and_bounds, 0, n);
	tcase_add_loop_test(tc, test_scan_binary_keys, 0, n);
	tcase_add_loop_test(tc, test_concurrent_iters, 0, n);
	tcase_add_loop_test(tc, test_view_isolation, 0, n);
	tcase_add_loop_test(tc, test_value_sizes, 0, n);
	tcase_add_loop_test(tc, test_delete_reinsert, 0, n);
	tcase_add_loop_test(tc, test_many_buckets, 0, n);
	tcase_add_loop_test(tc, test_absent_bucket, 0, n);
	tcase_add_loop_test(tc, test_reopen_keeps_committed, 0, n);
	tcase_add_loop_test(tc, test_atomic_meta, 0, n);
	tcase_add_loop_test(tc, test_size_grows, 0, n);
	tcase_add_loop_test(tc, test_defrag, 0, n);
	tcase_add_loop_test(tc, test_snapshot, 0, n);
	tcase_add_loop_test(tc, test_snapshot_concurrent, 0, n);
	tcase_add_loop_test(tc, test_not_an_engine_file, 0, n);
	suite_add_tcase(s, tc);

#ifdef HAVE_SQLITE
	tc = tcase_create("sqlite_faults");
	tcase_add_unchecked_fixture(tc, ce_base_setup, ce_base_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_sqlite_oom);
	tcase_add_test(tc, test_sqlite_specifics);
	tcase_add_test(tc, test_sqlite_checkpoints);
	suite_add_tcase(s, tc);
#endif
	return s;
}
