/* Unit tests for core/mvcc/keyindex: etcd's keyIndex cases (mvcc/
 * key_index_test.go: TestKeyIndexGet, TestKeyIndexCompactAndKeep), then a
 * seeded random model check of put/tombstone/get/range/compact over many
 * keys, then ordered iteration both ways over a large index. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/mvcc/keyindex.h"

#define K(s) (const uint8_t *)(s), strlen(s)

static struct keyindex_rev R(int64_t main, int64_t sub) {
	return (struct keyindex_rev){main, sub};
}

/* etcd's newTestKeyIndex: foo with 3 generations, revs 2..16. */
static struct keyindex *
etcd_test_index(void)
{
	struct keyindex *ki;

	ck_assert_int_eq(keyindex_create(&ki), 0);
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(2, 0)), 0);
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(4, 0)), 0);
	ck_assert_int_eq(keyindex_tombstone(ki, K("foo"), R(6, 0)), 0);
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(8, 0)), 0);
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(10, 0)), 0);
	ck_assert_int_eq(keyindex_tombstone(ki, K("foo"), R(12, 0)), 0);
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(14, 0)), 0);
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(14, 1)), 0);
	ck_assert_int_eq(keyindex_tombstone(ki, K("foo"), R(16, 0)), 0);
	return ki;
}

struct drops {
	struct keyindex_rev revs[64];
	bool tomb[64];
	int n;
};

static void drop_rec(void *arg, const uint8_t *key, size_t klen,
		     struct keyindex_rev rev, bool tombstone)
{
	struct drops *d = arg;

	(void)key;
	(void)klen;
	ck_assert_int_lt(d->n, 64);
	d->revs[d->n] = rev;
	d->tomb[d->n++] = tombstone;
}

START_TEST(test_get_generations)
{
	static const struct {
		int64_t at, mod, modsub, created, ver;
	} t[] = {
		{17, 0, 0, 0, 0},   {16, 0, 0, 0, 0},  {15, 14, 1, 14, 2},
		{14, 14, 1, 14, 2}, {13, 0, 0, 0, 0},  {12, 0, 0, 0, 0},
		{11, 10, 0, 8, 2},  {10, 10, 0, 8, 2}, {9, 8, 0, 8, 1},
		{8, 8, 0, 8, 1},    {7, 0, 0, 0, 0},   {6, 0, 0, 0, 0},
		{5, 4, 0, 2, 2},    {4, 4, 0, 2, 2},   {3, 0, 0, 0, 0},
		{2, 0, 0, 0, 0},    {1, 0, 0, 0, 0},   {0, 0, 0, 0, 0},
	};
	struct keyindex *ki = etcd_test_index();
	struct drops d = {0};
	struct keyindex_hit h;

	/* as etcd's TestKeyIndexGet: compacted at 4 first */
	keyindex_compact(ki, 4, drop_rec, &d);
	ck_assert_int_eq(d.n, 1);
	ck_assert_int_eq(d.revs[0].main, 2);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = keyindex_get(ki, K("foo"), t[i].at, &h);

		if (t[i].mod == 0) {
			ck_assert_msg(rc == -ENOENT, "at %lld",
				      (long long)t[i].at);
			continue;
		}
		ck_assert_msg(rc == 0, "at %lld", (long long)t[i].at);
		ck_assert_int_eq(h.mod.main, t[i].mod);
		ck_assert_int_eq(h.mod.sub, t[i].modsub);
		ck_assert_int_eq(h.created, t[i].created);
		ck_assert_int_eq(h.ver, t[i].ver);
	}
	/* absent keys, deleted keys */
	ck_assert_int_eq(keyindex_get(ki, K("fo"), 100, &h), -ENOENT);
	ck_assert_int_eq(keyindex_tombstone(ki, K("foo"), R(17, 0)), -ENOENT);
	ck_assert_int_eq(keyindex_tombstone(ki, K("bar"), R(17, 0)), -ENOENT);
	/* revisions must go forward */
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(16, 0)), -EINVAL);
	ck_assert_int_eq(keyindex_put(ki, K(""), R(20, 0)), -EINVAL);
	/* recreate after delete: a new generation, version 1 */
	ck_assert_int_eq(keyindex_put(ki, K("foo"), R(20, 0)), 0);
	ck_assert_int_eq(keyindex_get(ki, K("foo"), 20, &h), 0);
	ck_assert_int_eq(h.created, 20);
	ck_assert_int_eq(h.ver, 1);
	ck_assert_uint_eq(keyindex_len(ki), 1);
	keyindex_destroy(ki);
}
END_TEST

START_TEST(test_compact_and_keep)
{
	/* dropped revisions (main*10+sub) for each compaction rev 1..16,
	 * from etcd's TestKeyIndexCompactAndKeep */
	static const int64_t all[] = {20, 40, 60, 80, 100, 120, 140, 141, 160};
	static const int ndrop[17] = {0, 0, 0, 0, 1, 1, 3, 3, 3,
				      3, 4, 4, 6, 6, 7, 7, 9};

	for (int at = 1; at <= 16; at++) {
		struct keyindex *ki = etcd_test_index();
		struct drops d = {0};
		struct keyindex_hit h, h2;
		struct keyindex *ref = etcd_test_index();

		keyindex_compact(ki, at, drop_rec, &d);
		ck_assert_msg(d.n == ndrop[at], "at %d: %d drops", at, d.n);
		for (int i = 0; i < d.n; i++) {
			int64_t v = d.revs[i].main * 10 + d.revs[i].sub;

			ck_assert_int_eq(v, all[i]);
			ck_assert_int_eq(d.tomb[i],
					 v == 60 || v == 120 || v == 160);
		}
		ck_assert_uint_eq(keyindex_len(ki), at == 16 ? 0 : 1);
		/* answers at or after the compaction rev do not change */
		for (int r = at; r <= 18; r++) {
			int a = keyindex_get(ki, K("foo"), r, &h);
			int b = keyindex_get(ref, K("foo"), r, &h2);

			ck_assert_int_eq(a, b);
			if (a == 0) {
				ck_assert_int_eq(h.mod.main, h2.mod.main);
				ck_assert_int_eq(h.mod.sub, h2.mod.sub);
				ck_assert_int_eq(h.created, h2.created);
				ck_assert_int_eq(h.ver, h2.ver);
			}
		}
		/* compacting again at the same rev drops nothing more */
		d.n = 0;
		keyindex_compact(ki, at, drop_rec, &d);
		ck_assert_int_eq(d.n, 0);
		keyindex_destroy(ki);
		keyindex_destroy(ref);
	}
}
END_TEST

START_TEST(test_restore)
{
	struct keyindex *ki;
	struct keyindex_hit h;

	ck_assert_int_eq(keyindex_create(&ki), 0);
	/* earlier revisions compacted away: created 3, now at version 5 */
	ck_assert_int_eq(keyindex_restore(ki, K("a"), 3, R(9, 2), 5), 0);
	ck_assert_int_eq(keyindex_restore(ki, K("a"), 0, R(11, 0), 0), 0);
	ck_assert_int_eq(keyindex_get(ki, K("a"), 10, &h), 0);
	ck_assert_int_eq(h.created, 3);
	ck_assert_int_eq(h.ver, 5);
	ck_assert_int_eq(keyindex_get(ki, K("a"), 11, &h), 0);
	ck_assert_int_eq(h.ver, 6);
	ck_assert_int_eq(h.mod.main, 11);
	ck_assert_int_eq(keyindex_get(ki, K("a"), 8, &h), -ENOENT);
	keyindex_destroy(ki);
}
END_TEST

/* ---- random model check ---- */

struct mev {
	int64_t main, sub;
	bool tomb, present;
};

struct mkey {
	uint8_t k[12];
	size_t kl;
	struct mev *ev;
	size_t nev, cap;
};

static int mkey_cmp(const void *a, const void *b)
{
	const struct mkey *x = a, *y = b;
	size_t n = x->kl < y->kl ? x->kl : y->kl;
	int c = memcmp(x->k, y->k, n);

	return c ? c : (x->kl > y->kl) - (x->kl < y->kl);
}

/* etcd semantics straight from the event list. */
static int model_get(const struct mkey *mk, int64_t at, struct keyindex_hit *h)
{
	ssize_t i, j;

	for (i = (ssize_t)mk->nev - 1; i >= 0 && mk->ev[i].main > at; i--)
		;
	if (i < 0 || mk->ev[i].tomb)
		return -ENOENT;
	for (j = i; j > 0 && !mk->ev[j - 1].tomb; j--)
		;
	h->mod = R(mk->ev[i].main, mk->ev[i].sub);
	h->created = mk->ev[j].main;
	h->ver = i - j + 1;
	return 0;
}

static bool model_live(const struct mkey *mk)
{
	return mk->nev && !mk->ev[mk->nev - 1].tomb;
}

static void model_add(struct mkey *mk, int64_t main, int64_t sub, bool tomb)
{
	if (mk->nev == mk->cap) {
		mk->cap = mk->cap ? mk->cap * 2 : 4;
		mk->ev = realloc(mk->ev, mk->cap * sizeof(*mk->ev));
		ck_assert_ptr_nonnull(mk->ev);
	}
	mk->ev[mk->nev++] = (struct mev){main, sub, tomb, true};
}

struct collect {
	const struct mkey *keys;
	size_t nkeys;
	size_t *idx; /* positions of visited keys in keys[] */
	struct keyindex_hit *hits;
	size_t n;
	size_t limit;
};

static int collect_fn(void *arg, const uint8_t *key, size_t klen,
		      const struct keyindex_hit *hit)
{
	struct collect *c = arg;
	struct mkey probe;

	memcpy(probe.k, key, klen);
	probe.kl = klen;
	const struct mkey *m =
		bsearch(&probe, c->keys, c->nkeys, sizeof(*c->keys), mkey_cmp);

	ck_assert_ptr_nonnull(m);
	c->idx[c->n] = (size_t)(m - c->keys);
	c->hits[c->n++] = *hit;
	return c->limit && c->n == c->limit ? 1 : 0;
}

struct mdrop {
	struct mkey *keys;
	size_t nkeys;
	size_t n;
};

static void model_drop(void *arg, const uint8_t *key, size_t klen,
		       struct keyindex_rev rev, bool tomb)
{
	struct mdrop *d = arg;
	struct mkey probe, *m;
	size_t i;

	memcpy(probe.k, key, klen);
	probe.kl = klen;
	m = bsearch(&probe, d->keys, d->nkeys, sizeof(*d->keys), mkey_cmp);
	ck_assert_ptr_nonnull(m);
	for (i = 0; i < m->nev; i++)
		if (m->ev[i].main == rev.main && m->ev[i].sub == rev.sub)
			break;
	ck_assert(i < m->nev);
	ck_assert(m->ev[i].present);
	ck_assert_int_eq(m->ev[i].tomb, tomb);
	m->ev[i].present = false;
	d->n++;
}

/* Expected drops of compaction at c: present events <= c except the
 * latest such one when it is a put. */
static size_t model_expected_drops(const struct mkey *mk, int64_t c)
{
	size_t n = 0;
	ssize_t last = -1;

	for (size_t i = 0; i < mk->nev; i++)
		if (mk->ev[i].present && mk->ev[i].main <= c) {
			n++;
			last = (ssize_t)i;
		}
	if (last >= 0 && !mk->ev[last].tomb)
		n--;
	return n;
}

static void check_ranges(struct keyindex *ki, struct mkey *keys, size_t nk,
			 int64_t lo_rev, int64_t rev, unsigned *seed)
{
	size_t *idx = malloc(nk * sizeof(*idx));
	struct keyindex_hit *hits = malloc(nk * sizeof(*hits));

	ck_assert(idx && hits);
	for (int t = 0; t < 60; t++) {
		size_t a = (size_t)rand_r(seed) % nk,
		       b = (size_t)rand_r(seed) % (nk + 1);
		int64_t at = lo_rev + rand_r(seed) % (rev - lo_rev + 2);
		struct collect c = {keys, nk, idx, hits, 0, 0};
		struct keyindex_hit h;
		size_t n = 0;
		bool from = (t % 5) == 0, single = (t % 7) == 0;

		if (single)
			keyindex_range(ki, keys[a].k, keys[a].kl, NULL, 0, at,
				       collect_fn, &c);
		else if (from)
			keyindex_range(ki, keys[a].k, keys[a].kl,
				       (const uint8_t *)"", 1, at, collect_fn,
				       &c);
		else if (b < nk)
			keyindex_range(ki, keys[a].k, keys[a].kl, keys[b].k,
				       keys[b].kl, at, collect_fn, &c);
		else
			continue;
		size_t stop = single ? a + 1 : (from ? nk : b);

		for (size_t i = a; i < stop; i++) {
			if (model_get(&keys[i], at, &h) != 0)
				continue;
			ck_assert_uint_lt(n, c.n);
			ck_assert_uint_eq(c.idx[n], i);
			ck_assert_int_eq(c.hits[n].mod.main, h.mod.main);
			ck_assert_int_eq(c.hits[n].mod.sub, h.mod.sub);
			ck_assert_int_eq(c.hits[n].created, h.created);
			ck_assert_int_eq(c.hits[n].ver, h.ver);
			n++;
		}
		ck_assert_uint_eq(n, c.n);
	}
	free(idx);
	free(hits);
}

START_TEST(test_random_model)
{
	unsigned seed = 20261121u + (unsigned)_i;
	static const uint8_t alpha[] = {0x00, 'a', 'b', 0xff};
	size_t nk = 3000, i;
	struct mkey *keys = calloc(nk, sizeof(*keys));
	struct keyindex *ki;
	int64_t rev = 1, compacted = 0;

	ck_assert_ptr_nonnull(keys);
	fprintf(stderr, "keyindex random seed %u\n", seed);
	for (i = 0; i < nk; i++) {
		keys[i].kl = 1 + (size_t)rand_r(&seed) % 12;
		for (size_t j = 0; j < keys[i].kl; j++)
			keys[i].k[j] = alpha[rand_r(&seed) % 4];
	}
	qsort(keys, nk, sizeof(*keys), mkey_cmp);
	/* dedupe */
	size_t w = 0;

	for (i = 0; i < nk; i++)
		if (w == 0 || mkey_cmp(&keys[w - 1], &keys[i]) != 0)
			keys[w++] = keys[i];
	nk = w;
	ck_assert_int_eq(keyindex_create(&ki), 0);
	for (int round = 0; round < 6; round++) {
		for (int txn = 0; txn < 3000; txn++) {
			int nch = 1 + rand_r(&seed) % 3;

			rev++;
			for (int s = 0; s < nch; s++) {
				struct mkey *m =
					&keys[(size_t)rand_r(&seed) % nk];
				bool del = rand_r(&seed) % 4 == 0;

				/* a txn touches a key once (etcd refuses
				 * duplicates), so skip repeats */
				if (m->nev && m->ev[m->nev - 1].main == rev)
					continue;
				if (del) {
					int rc = keyindex_tombstone(
						ki, m->k, m->kl, R(rev, s));

					ck_assert_int_eq(rc, model_live(m)
								     ? 0
								     : -ENOENT);
					if (rc == 0)
						model_add(m, rev, s, true);
				} else {
					ck_assert_int_eq(
						keyindex_put(ki, m->k, m->kl,
							     R(rev, s)),
						0);
					model_add(m, rev, s, false);
				}
			}
		}
		ck_assert_int_eq(keyindex_check(ki), 0);
		check_ranges(ki, keys, nk, compacted, rev, &seed);
		/* compact somewhere in the recent past */
		int64_t c = compacted + 1 + rand_r(&seed) % (rev - compacted);
		size_t want = 0;
		struct mdrop d = {keys, nk, 0};

		for (i = 0; i < nk; i++)
			want += model_expected_drops(&keys[i], c);
		keyindex_compact(ki, c, model_drop, &d);
		ck_assert_uint_eq(d.n, want);
		compacted = c;
		ck_assert_int_eq(keyindex_check(ki), 0);
		check_ranges(ki, keys, nk, compacted, rev, &seed);
		/* keys left = keys with a present event */
		size_t left = 0;

		for (i = 0; i < nk; i++) {
			bool any = false;

			for (size_t e = 0; e < keys[i].nev; e++)
				any |= keys[i].ev[e].present;
			left += any;
		}
		ck_assert_uint_eq(keyindex_len(ki), left);
	}
	keyindex_destroy(ki);
	for (i = 0; i < nk; i++)
		free(keys[i].ev);
	free(keys);
}
END_TEST

static void key_of(unsigned i, char *buf)
{
	/* a scattered order of fixed-width keys */
	sprintf(buf, "/registry/pods/%08x", i * 2654435761u);
}

START_TEST(test_many_keys_iterate)
{
	const unsigned n = 200000;
	struct keyindex *ki;
	struct keyindex_cursor c;
	const uint8_t *k, *prevk = NULL;
	size_t kl, prevl = 0;
	char buf[64];
	unsigned cnt = 0;

	ck_assert_int_eq(keyindex_create(&ki), 0);
	for (unsigned i = 0; i < n; i++) {
		key_of(i, buf);
		ck_assert_int_eq(keyindex_put(ki, K(buf), R(2 + i, 0)), 0);
	}
	ck_assert_uint_eq(keyindex_len(ki), n);
	ck_assert_int_eq(keyindex_check(ki), 0);
	fprintf(stderr, "keyindex: %u keys of 23 bytes, %zu bytes (%.1f/key)\n",
		n, keyindex_bytes(ki), (double)keyindex_bytes(ki) / n);
	for (keyindex_seek_first(ki, &c); keyindex_cursor_key(&c, &k, &kl);
	     keyindex_cursor_next(&c)) {
		if (prevk)
			ck_assert(memcmp(prevk, k, kl) < 0);
		prevk = k;
		prevl = kl;
		cnt++;
	}
	ck_assert_uint_eq(cnt, n);
	cnt = 0;
	prevk = NULL;
	for (keyindex_seek_lt(ki, NULL, 0, &c);
	     keyindex_cursor_key(&c, &k, &kl); keyindex_cursor_prev(&c)) {
		if (prevk)
			ck_assert(memcmp(prevk, k, kl) > 0);
		prevk = k;
		cnt++;
	}
	ck_assert_uint_eq(cnt, n);
	(void)prevl;
	/* seek: ge lands on the key itself, lt on its predecessor */
	for (unsigned i = 0; i < 1000; i++) {
		struct keyindex_cursor c2;
		struct keyindex_hit h;

		key_of(i * 37, buf);
		keyindex_seek_ge(ki, K(buf), &c);
		ck_assert(keyindex_cursor_key(&c, &k, &kl));
		ck_assert(kl == strlen(buf) && memcmp(k, buf, kl) == 0);
		ck_assert_int_eq(keyindex_cursor_get(&c, 1u << 30, &h), 0);
		ck_assert_int_eq(h.mod.main, 2 + i * 37);
		keyindex_seek_lt(ki, K(buf), &c2);
		if (keyindex_cursor_key(&c2, &k, &kl)) {
			keyindex_cursor_next(&c2);
			ck_assert(keyindex_cursor_key(&c2, &k, &kl));
			ck_assert(memcmp(k, buf, kl) == 0);
		}
	}
	/* sequential appends keep leaves full */
	struct keyindex *seq;

	ck_assert_int_eq(keyindex_create(&seq), 0);
	for (unsigned i = 0; i < n; i++) {
		sprintf(buf, "/registry/pods/%08u", i);
		ck_assert_int_eq(keyindex_put(seq, K(buf), R(2 + i, 0)), 0);
	}
	fprintf(stderr, "keyindex: sequential %u keys, %zu bytes (%.1f/key)\n",
		n, keyindex_bytes(seq), (double)keyindex_bytes(seq) / n);
	/* delete everything, compact: the index empties */
	for (unsigned i = 0; i < n; i++) {
		sprintf(buf, "/registry/pods/%08u", i);
		ck_assert_int_eq(
			keyindex_tombstone(seq, K(buf), R(2 + n + i, 0)), 0);
	}
	ck_assert_int_eq(keyindex_check(seq), 0);
	keyindex_compact(seq, 2 + 2 * n, NULL, NULL);
	ck_assert_uint_eq(keyindex_len(seq), 0);
	ck_assert_int_eq(keyindex_check(seq), 0);
	keyindex_seek_first(seq, &c);
	ck_assert(!keyindex_cursor_key(&c, &k, &kl));
	ck_assert_int_eq(keyindex_put(seq, K("again"), R(3 * n, 0)), 0);
	ck_assert_uint_eq(keyindex_len(seq), 1);
	keyindex_destroy(seq);
	keyindex_destroy(ki);
}
END_TEST

Suite *keyindex_suite(void)
{
	Suite *s = suite_create("keyindex");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_get_generations);
	tcase_add_test(tc, test_compact_and_keep);
	tcase_add_test(tc, test_restore);
	tcase_add_loop_test(tc, test_random_model, 0, 3);
	tcase_add_test(tc, test_many_keys_iterate);
	suite_add_tcase(s, tc);
	return s;
}
