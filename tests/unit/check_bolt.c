/* check_bolt: the bolt engine's own promises (engines/bolt/bolt.h), on top
 * of the engine conformance suite (check_engine.c) that runs on it too:
 *   - the consistency checker after every commit of a random workload
 *     (strict mode), contents compared with a model after each commit;
 *   - crash simulation: a file layer that logs the writes since the last
 *     fdatasync and, at a random operation of a commit, "crashes": a
 *     power loss keeps a random subset of the unsynced sectors (and a new
 *     boot tag), a kill -9 all of them; after reopen the last synced
 *     commit (or the crashing one, if its meta was written) is intact
 *     and the checker finds nothing; with unsynced commits between the
 *     synced ones, a power loss opens at the last synced commit exactly
 *     and a kill -9 at the newest; many seeded rounds, the seed printed;
 *   - the bbolt format of a new file, inline buckets, snapshots, and a
 *     file whose freelist was not synced (etcd with NoFreelistSync);
 *   - views across file growth (remap) and page reuse, defrag -EBUSY;
 *   - large values (overflow pages), many keys (100k; 1M when
 *     CAIRN_LARGE_TESTS=1).
 * Seeds: CAIRN_TEST_SEED=n replays one seed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "engines/bolt/bolt.h"
#include "engines/bolt/format.h"
#include "engines/engine.h"
#include "tests/unit/tmpdir.h"

Suite *bolt_suite(void);

static char cb_dir[256];

/* The base directory: made and removed in the parent (an unchecked
 * fixture), so a test that crashes in its forked child leaves nothing. */
static void cb_base_setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(cb_dir, sizeof(cb_dir), "%s/check_bolt.XXXXXX",
		 t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(cb_dir));
}

static void cb_base_teardown(void)
{
	ut_rmtree(cb_dir);
	cb_dir[0] = '\0';
}

/* Every test starts strict with the real file layer and allocator. */
static void cb_setup(void)
{
	bolt_test_set_strict(true);
	bolt_test_set_file_ops(NULL);
	bolt_test_fail_alloc(-1);
}

static void cb_teardown(void)
{
	bolt_test_set_boot_tag(0);
	bolt_test_set_strict(false);
	bolt_test_set_file_ops(NULL);
	bolt_test_fail_alloc(-1);
}

static void cb_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", cb_dir, name);
}

static struct engine_handle cb_open(const char *path)
{
	struct engine_handle h = {&bolt_engine_ops, NULL};
	int err = bolt_engine_ops.open(path, NULL, &h.e);

	ck_assert_msg(err == 0, "open %s: %d", path, err);
	return h;
}

static void cb_check(struct engine_handle *h)
{
	char why[256];
	int err = bolt_check(h->e, why, sizeof(why));

	ck_assert_msg(err == 0, "check: %s", why);
}

/* ---- a tiny deterministic PRNG and the key/value model ---- */

static uint64_t cb_rand(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static uint64_t cb_seed(void)
{
	const char *s = getenv("CAIRN_TEST_SEED");

	return s && *s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ getpid();
}

struct model {
	uint32_t n;
	uint32_t *vlen; /* UINT32_MAX: absent */
	uint32_t *ver;	/* value content seed */
};

static void model_init(struct model *m, uint32_t n)
{
	m->n = n;
	m->vlen = malloc(n * sizeof(*m->vlen));
	m->ver = calloc(n, sizeof(*m->ver));
	ck_assert_ptr_nonnull(m->vlen);
	ck_assert_ptr_nonnull(m->ver);
	memset(m->vlen, 0xff, n * sizeof(*m->vlen));
}

static void model_copy(struct model *dst, const struct model *src)
{
	memcpy(dst->vlen, src->vlen, src->n * sizeof(*src->vlen));
	memcpy(dst->ver, src->ver, src->n * sizeof(*src->ver));
}

static void model_free(struct model *m)
{
	free(m->vlen);
	free(m->ver);
}

static size_t cb_key(uint32_t i, char *k)
{
	return (size_t)sprintf(k, "k%08" PRIu32, i * 2654435761u % 100000007u);
}

static void cb_val(uint8_t *p, uint32_t n, uint32_t i, uint32_t ver)
{
	uint32_t j, x = i * 31u + ver * 7919u;

	for (j = 0; j < n; j++)
		p[j] = (uint8_t)(x + j * 13u + (j >> 8));
}

static uint32_t cb_vlen(uint64_t *rs, uint32_t big)
{
	uint64_t r = cb_rand(rs) % 1000;

	if (r < 900)
		return (uint32_t)(cb_rand(rs) % 120);
	if (r < 990)
		return (uint32_t)(cb_rand(rs) % 6000);
	return (uint32_t)(cb_rand(rs) % big);
}

/* One random batch of ops into bucket b, mirrored in m. */
static void cb_batch(struct engine_handle *h, const char *b, struct model *m,
		     uint64_t *rs, int ops, uint32_t big)
{
	static uint8_t *buf;
	char k[32];
	int i;

	if (!buf)
		buf = malloc(4u << 20);
	ck_assert_ptr_nonnull(buf);
	for (i = 0; i < ops; i++) {
		uint32_t x = (uint32_t)(cb_rand(rs) % m->n);
		size_t kl = cb_key(x, k);

		if (cb_rand(rs) % 3 == 0) {
			ck_assert_int_eq(engine_del(h, b, k, kl), 0);
			m->vlen[x] = UINT32_MAX;
		} else {
			uint32_t vl = cb_vlen(rs, big);

			m->ver[x]++;
			cb_val(buf, vl, x, m->ver[x]);
			ck_assert_int_eq(engine_put(h, b, k, kl, buf, vl), 0);
			m->vlen[x] = vl;
		}
	}
}

/* 0 if bucket b holds exactly m (scan and gets), else 1. */
static int cb_verify(struct engine_handle *h, const char *b,
		     const struct model *m)
{
	static uint8_t *buf;
	struct engine_view *v;
	struct engine_iter *it;
	struct engine_slice ks, vs;
	uint32_t i, present = 0, seen = 0;
	int bad = 0, rc;
	char k[32];

	if (!buf)
		buf = malloc(4u << 20);
	ck_assert_ptr_nonnull(buf);
	ck_assert_int_eq(engine_view_open(h, &v), 0);
	for (i = 0; i < m->n && !bad; i++) {
		size_t kl = cb_key(i, k);
		int err = engine_get(h, v, b, k, kl, &vs);

		if (m->vlen[i] == UINT32_MAX) {
			bad = err != -ENOENT;
			continue;
		}
		present++;
		cb_val(buf, m->vlen[i], i, m->ver[i]);
		bad = err != 0 || vs.n != m->vlen[i] ||
		      (vs.n && memcmp(vs.p, buf, vs.n));
	}
	ck_assert_int_eq(
		engine_iter_open(h, v, b, NULL, 0, NULL, 0, false, &it), 0);
	while (!bad && (rc = engine_iter_next(h, it, &ks, &vs)) == 1)
		seen++;
	engine_iter_close(h, it);
	engine_view_close(h, v);
	return bad || seen != present;
}

/* ---- the checker after every commit of a random workload ---- */

START_TEST(test_random_checked)
{
	uint64_t seed = cb_seed(), rs;
	struct engine_handle h;
	struct model m;
	char path[512];
	int round;

	rs = seed | 1;
	fprintf(stderr, "bolt random workload: seed %" PRIu64 "\n", seed);
	cb_path(path, sizeof(path), "random.db");
	h = cb_open(path);
	model_init(&m, 4000);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	ck_assert_int_eq(engine_commit(&h, false), 0);
	for (round = 0; round < 60; round++) {
		int ops = (int)(cb_rand(&rs) % (round % 10 == 0 ? 3000 : 200));

		cb_batch(&h, "key", &m, &rs, ops, 300000);
		/* strict mode: bolt_check ran inside the commit */
		ck_assert_int_eq(engine_commit(&h, round % 4 == 0), 0);
		ck_assert_msg(cb_verify(&h, "key", &m) == 0,
			      "seed %" PRIu64 " round %d: contents differ",
			      seed, round);
		if (round % 15 == 14) {
			engine_close(&h);
			h = cb_open(path);
			cb_check(&h);
		}
	}
	/* delete everything: the tree collapses to an inline bucket */
	for (uint32_t i = 0; i < m.n; i++) {
		char k[32];
		size_t kl = cb_key(i, k);

		ck_assert_int_eq(engine_del(&h, "key", k, kl), 0);
		m.vlen[i] = UINT32_MAX;
	}
	ck_assert_int_eq(engine_commit(&h, true), 0);
	ck_assert_int_eq(cb_verify(&h, "key", &m), 0);
	{
		uint64_t size, used;

		ck_assert_int_eq(engine_size(&h, &size, &used), 0);
		/* metas, root, and the freelist (8 bytes a page): the rest
		 * is free */
		ck_assert_uint_le(used, 4 * 4096 + size / 512 + 4096);
	}
	engine_close(&h);
	model_free(&m);
}
END_TEST

/* ---- crash simulation ---- */

/* The file layer of the simulation: writes go to the file at once (the
 * page cache: the engine's mapping sees them) and are logged with the
 * bytes they replaced until the next fdatasync. A crash refuses every
 * later operation; a power loss then undoes, newest first, each logged
 * write wholly, not at all, or sector by sector at random (so each
 * sector ends up as of the last sync or as some later write left it)
 * and cuts the file to its size at the last sync; a process crash
 * (kill -9) keeps everything. */
struct sim_write {
	off_t off;
	size_t n;
	uint8_t *old; /* what the write replaced */
};

struct sim {
	int fd; /* the fd writes apply to */
	struct sim_write *w;
	size_t nw, capw;
	long ops_left; /* <0: never crash */
	bool power;    /* the crash is a power loss, else a kill -9 */
	bool crashed;
	bool meta_written; /* a write to page 0/1 since arming */
	off_t synced_size; /* at the last fdatasync; <0 unknown */
	uint64_t rs;
};

static struct sim cb_sim;

static void sim_undo(struct sim *s, const struct sim_write *w, bool partial)
{
	size_t sec;

	for (sec = 0; sec < w->n; sec += 512) {
		size_t n = w->n - sec < 512 ? w->n - sec : 512;

		if (partial && cb_rand(&s->rs) % 2)
			continue;
		ck_assert_int_eq(pwrite(s->fd, w->old + sec, n, w->off + sec),
				 (ssize_t)n);
	}
}

static void sim_drop_all(struct sim *s)
{
	size_t i;

	for (i = 0; i < s->nw; i++)
		free(s->w[i].old);
	s->nw = 0;
}

static void sim_crash(struct sim *s)
{
	size_t i;

	for (i = s->nw; s->power && i-- > 0;) {
		uint64_t r = cb_rand(&s->rs) % 3;

		if (r == 1)
			sim_undo(s, &s->w[i], false);
		else if (r == 2)
			sim_undo(s, &s->w[i], true);
	}
	if (s->power && s->synced_size >= 0)
		ck_assert_int_eq(ftruncate(s->fd, s->synced_size), 0);
	sim_drop_all(s);
	s->crashed = true;
}

static bool sim_step(struct sim *s)
{
	if (s->crashed)
		return false;
	if (s->ops_left == 0) {
		sim_crash(s);
		return false;
	}
	if (s->ops_left > 0)
		s->ops_left--;
	return true;
}

static ssize_t sim_pwritev(void *ctx, int fd, const struct iovec *iov, int cnt,
			   off_t off)
{
	struct sim *s = ctx;
	struct sim_write *w;
	size_t n = 0;
	ssize_t got;
	int i;

	if (!sim_step(s)) {
		errno = EIO;
		return -1;
	}
	s->fd = fd;
	for (i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	if (s->nw == s->capw) {
		s->capw = s->capw ? s->capw * 2 : 64;
		s->w = realloc(s->w, s->capw * sizeof(*s->w));
		ck_assert_ptr_nonnull(s->w);
	}
	w = &s->w[s->nw];
	w->old = calloc(1, n ? n : 1);
	ck_assert_ptr_nonnull(w->old);
	got = pread(fd, w->old, n, off); /* past the end: zeros */
	ck_assert_int_ge(got, 0);
	w->off = off;
	w->n = n;
	s->nw++;
	ck_assert_int_eq(pwritev(fd, iov, cnt, off), (ssize_t)n);
	if (off < 2 * 4096)
		s->meta_written = true;
	return (ssize_t)n;
}

static int sim_fdatasync(void *ctx, int fd)
{
	struct sim *s = ctx;
	struct stat st;

	if (!sim_step(s)) {
		errno = EIO;
		return -1;
	}
	s->fd = fd;
	sim_drop_all(s);
	ck_assert_int_eq(fstat(fd, &st), 0);
	s->synced_size = st.st_size;
	return fdatasync(fd);
}

static int sim_ftruncate(void *ctx, int fd, off_t len)
{
	struct sim *s = ctx;

	if (!sim_step(s)) {
		errno = EIO;
		return -1;
	}
	return ftruncate(fd, len);
}

static const struct bolt_file_ops cb_sim_ops = {
	.pwritev = sim_pwritev,
	.fdatasync = sim_fdatasync,
	.ftruncate = sim_ftruncate,
	.ctx = &cb_sim,
};

static void sim_start(uint64_t seed)
{
	free(cb_sim.w);
	memset(&cb_sim, 0, sizeof(cb_sim));
	cb_sim.rs = seed ^ 0x9e3779b97f4a7c15ull;
	cb_sim.ops_left = -1;
	cb_sim.power = true;
	cb_sim.synced_size = -1;
	bolt_test_set_file_ops(&cb_sim_ops);
}

static void sim_stop(void)
{
	bolt_test_set_file_ops(NULL);
	sim_drop_all(&cb_sim);
	free(cb_sim.w);
	cb_sim.w = NULL;
	cb_sim.capw = 0;
}

/* Synced commits only: a crash inside one keeps the previous one, or the
 * crashing one once its meta was written. */
static void crash_rounds(uint64_t seed, int rounds)
{
	struct engine_handle h;
	struct model cur, next;
	char path[512];
	uint64_t rs = seed | 1;
	int round, crashes = 0, advanced = 0;

	fprintf(stderr, "bolt crash simulation: seed %" PRIu64 "\n", seed);
	snprintf(path, sizeof(path), "%s/crash-%" PRIu64 ".db", cb_dir, seed);
	sim_start(seed);
	h = cb_open(path);
	model_init(&cur, 1500);
	model_init(&next, 1500);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	for (round = 0; round < rounds; round++) {
		int err;

		model_copy(&next, &cur);
		cb_batch(&h, "key", &next, &rs, 1 + (int)(cb_rand(&rs) % 400),
			 40000);
		/* a commit is about 4..30 file operations: crash in it
		 * most of the time, after it sometimes */
		cb_sim.ops_left = (long)(cb_rand(&rs) % 24);
		cb_sim.meta_written = false;
		err = engine_commit(&h, true);
		if (err == 0) {
			model_copy(&cur, &next);
			cb_sim.ops_left = -1;
			continue;
		}
		crashes++;
		ck_assert_int_eq(err, -EIO);
		engine_close(&h);
		cb_sim.crashed = false;
		cb_sim.ops_left = -1;
		h = cb_open(path);
		cb_check(&h);
		if (cb_verify(&h, "key", &cur) != 0) {
			/* only a crash after the meta write may move on */
			ck_assert_msg(cb_sim.meta_written,
				      "seed %" PRIu64 " round %d: lost the "
				      "last synced commit",
				      seed, round);
			ck_assert_msg(cb_verify(&h, "key", &next) == 0,
				      "seed %" PRIu64 " round %d: neither the "
				      "old nor the new state",
				      seed, round);
			model_copy(&cur, &next);
			advanced++;
		}
	}
	ck_assert_int_eq(cb_verify(&h, "key", &cur), 0);
	engine_close(&h);
	sim_stop();
	fprintf(stderr, "  %d rounds, %d crashes, %d kept the torn commit\n",
		rounds, crashes, advanced);
	ck_assert_int_gt(crashes, 0);
	model_free(&cur);
	model_free(&next);
}

START_TEST(test_crash_simulation)
{
	uint64_t seed = cb_seed();
	int i;

	if (getenv("CAIRN_TEST_SEED")) {
		crash_rounds(seed, 150);
		return;
	}
	for (i = 0; i < 6; i++)
		crash_rounds(seed + (uint64_t)i * 1000003u, 80);
}
END_TEST

/* Unsynced commits between synced ones (the server's pattern), then a
 * crash at a random file operation of a random later commit: after a
 * power loss (a new boot tag) the file opens at the last synced commit,
 * or at the synced commit in flight once its meta was written; after a
 * kill -9 (same boot) at the newest commit whose meta was written. */
struct power_models {
	struct model synced, latest, next;
};

/* Commits until the armed crash: 0 and the in-flight commit was synced
 * (1) or not (0) in *sync. */
static void power_commits(struct engine_handle *h, struct power_models *pm,
			  uint64_t *rs, bool *sync)
{
	for (;;) {
		int err;

		model_copy(&pm->next, &pm->latest);
		cb_batch(h, "key", &pm->next, rs, 1 + (int)(cb_rand(rs) % 150),
			 40000);
		*sync = cb_rand(rs) % 6 == 0;
		cb_sim.meta_written = false;
		err = engine_commit(h, *sync);
		if (err) {
			ck_assert_int_eq(err, -EIO);
			return;
		}
		model_copy(&pm->latest, &pm->next);
		if (*sync)
			model_copy(&pm->synced, &pm->next);
	}
}

static void power_rounds(uint64_t seed, int rounds)
{
	struct engine_handle h;
	struct power_models pm;
	char path[512];
	uint64_t rs = seed | 1;
	int round, power = 0, dropped = 0, kept = 0;

	fprintf(stderr, "bolt power loss simulation: seed %" PRIu64 "\n",
		seed);
	snprintf(path, sizeof(path), "%s/power-%" PRIu64 ".db", cb_dir, seed);
	sim_start(seed);
	bolt_test_set_boot_tag((uint32_t)cb_rand(&rs) | 1);
	h = cb_open(path);
	model_init(&pm.synced, 1500);
	model_init(&pm.latest, 1500);
	model_init(&pm.next, 1500);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	for (round = 0; round < rounds; round++) {
		const struct model *want;
		bool sync, mw;

		/* commits are 4..30 operations: crash in one of the next
		 * few, synced or not */
		cb_sim.ops_left = (long)(cb_rand(&rs) % 100);
		cb_sim.power = cb_rand(&rs) % 4 != 0;
		power_commits(&h, &pm, &rs, &sync);
		mw = cb_sim.meta_written; /* open may write a meta too */
		engine_close(&h);
		if (cb_sim.power) /* a reboot */
			bolt_test_set_boot_tag((uint32_t)cb_rand(&rs) | 1);
		cb_sim.crashed = false;
		cb_sim.ops_left = -1;
		h = cb_open(path);
		cb_check(&h);
		if (!cb_sim.power)
			want = mw ? &pm.next : &pm.latest;
		else if (sync && mw &&
			 cb_verify(&h, "key", &pm.synced) != 0)
			want = &pm.next; /* its meta reached the disk */
		else
			want = &pm.synced;
		ck_assert_msg(cb_verify(&h, "key", want) == 0,
			      "seed %" PRIu64 " round %d (%s, in a %s commit): "
			      "not the expected state",
			      seed, round,
			      cb_sim.power ? "power loss" : "kill -9",
			      sync ? "synced" : "unsynced");
		power += cb_sim.power;
		if (cb_sim.power && want == &pm.synced &&
		    cb_verify(&h, "key", &pm.latest) != 0)
			dropped++; /* unsynced commits were lost */
		if (!cb_sim.power && want != &pm.synced &&
		    cb_verify(&h, "key", &pm.synced) != 0)
			kept++; /* unsynced commits survived a kill -9 */
		model_copy(&pm.synced, want);
		model_copy(&pm.latest, want);
	}
	engine_close(&h);
	sim_stop();
	bolt_test_set_boot_tag(0);
	fprintf(stderr,
		"  %d crashes, %d power losses (%d dropped unsynced "
		"commits), %d kill -9 keeping unsynced commits\n",
		rounds, power, dropped, kept);
	ck_assert_int_gt(dropped, 0);
	ck_assert_int_gt(kept, 0);
	model_free(&pm.synced);
	model_free(&pm.latest);
	model_free(&pm.next);
}

START_TEST(test_power_loss_unsynced)
{
	uint64_t seed = cb_seed();
	int i;

	if (getenv("CAIRN_TEST_SEED")) {
		power_rounds(seed, 200);
		return;
	}
	for (i = 0; i < 4; i++)
		power_rounds(seed + (uint64_t)i * 1000003u, 100);
}
END_TEST

/* ---- out of memory at every allocation of a batch and its commit ---- */

/* A put/del that fails changes nothing; a commit that fails leaves the
 * committed data as it was and the engine usable; one that succeeds
 * holds every op that succeeded. */
START_TEST(test_out_of_memory)
{
	struct engine_handle h;
	struct model cur, next;
	char path[512];
	long k, left = 0, failures = 0;

	bolt_test_set_strict(false); /* bolt_check allocates too */
	cb_path(path, sizeof(path), "oom.db");
	h = cb_open(path);
	model_init(&cur, 2500);
	model_init(&next, 2500);
	{
		uint64_t rs = 42;

		ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
		cb_batch(&h, "key", &cur, &rs, 3000, 9000);
		ck_assert_int_eq(engine_commit(&h, true), 0);
	}
	for (k = 0; k < 100000; k++) {
		uint64_t rs = 7 + (uint64_t)k % 5;
		static uint8_t buf[9000];
		int i, err;

		model_copy(&next, &cur);
		bolt_test_fail_alloc(k);
		for (i = 0; i < 150; i++) {
			uint32_t x = (uint32_t)(cb_rand(&rs) % next.n);
			uint32_t vl = cb_vlen(&rs, 9000);
			char key[32];
			size_t kl = cb_key(x, key);

			if (cb_rand(&rs) % 3 == 0) {
				err = engine_del(&h, "key", key, kl);
				if (err == 0)
					next.vlen[x] = UINT32_MAX;
			} else {
				cb_val(buf, vl, x, next.ver[x] + 1);
				err = engine_put(&h, "key", key, kl, buf, vl);
				if (err == 0) {
					next.ver[x]++;
					next.vlen[x] = vl;
				}
			}
			ck_assert_msg(err == 0 || err == -ENOMEM, "op: %d",
				      err);
		}
		err = engine_commit(&h, k % 2 == 0);
		left = bolt_test_fail_alloc(-1);
		ck_assert_msg(err == 0 || err == -ENOMEM, "commit: %d", err);
		if (err == 0)
			model_copy(&cur, &next);
		else
			failures++;
		ck_assert_msg(cb_verify(&h, "key", &cur) == 0,
			      "allocation %ld: contents differ", k);
		cb_check(&h);
		if (left > 0)
			break; /* no allocation failed: every path was tried */
	}
	fprintf(stderr,
		"bolt out of memory: %ld allocation points, %ld "
		"failed commits\n",
		k + 1, failures);
	ck_assert_int_gt(left, 0);
	ck_assert_int_gt(failures, 0);
	engine_close(&h);
	h = cb_open(path);
	ck_assert_int_eq(cb_verify(&h, "key", &cur), 0);
	cb_check(&h);
	engine_close(&h);
	model_free(&cur);
	model_free(&next);
}
END_TEST

/* ---- format ---- */

static void cb_read(const char *path, uint8_t *buf, size_t n, off_t off)
{
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, n, off), (ssize_t)n);
	close(fd);
}

static void cb_meta(const uint8_t *page, uint64_t id, uint64_t txid)
{
	const uint8_t *d = page + BOLT_PAGE_HDR;

	ck_assert_uint_eq(bolt_ld64(page + BOLT_PH_ID), id);
	ck_assert_uint_eq(bolt_ld16(page + BOLT_PH_FLAGS), BOLT_FLAG_META);
	ck_assert_uint_eq(bolt_ld32(d + 0), 0xED0CDAEDu);
	ck_assert_uint_eq(bolt_ld32(d + 4), 2);
	ck_assert_uint_eq(bolt_ld32(d + 8), 4096);
	ck_assert_uint_eq(bolt_ld64(d + 48), txid);
	ck_assert_uint_eq(bolt_ld64(d + 56), bolt_fnv64a(d, 56));
}

START_TEST(test_format_new_file)
{
	uint8_t buf[4 * 4096];
	struct engine_handle h;
	char path[512];

	if (sysconf(_SC_PAGESIZE) != 4096)
		return; /* the byte offsets below assume 4 KiB pages */
	cb_path(path, sizeof(path), "fmt.db");
	h = cb_open(path);
	cb_check(&h);
	engine_close(&h);
	cb_read(path, buf, sizeof(buf), 0);
	cb_meta(buf, 0, 0);
	cb_meta(buf + 4096, 1, 1);
	/* bbolt's init: root bucket at 3, freelist at 2, high water 4 */
	ck_assert_uint_eq(bolt_ld64(buf + 16 + 16), 3);
	ck_assert_uint_eq(bolt_ld64(buf + 16 + 32), 2);
	ck_assert_uint_eq(bolt_ld64(buf + 16 + 40), 4);
	ck_assert_uint_eq(bolt_ld16(buf + 2 * 4096 + 8), BOLT_FLAG_FREELIST);
	ck_assert_uint_eq(bolt_ld16(buf + 3 * 4096 + 8), BOLT_FLAG_LEAF);
	ck_assert_uint_eq(bolt_ld16(buf + 3 * 4096 + 10), 0);

	/* txid 2 writes meta page 0; a small bucket is inline */
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "meta"), 0);
	ck_assert_int_eq(engine_put(&h, "meta", "ci", 2, "12345678", 8), 0);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	ck_assert_uint_eq(bolt_txid(h.e), 2);
	engine_close(&h);
	cb_read(path, buf, 4096, 0);
	cb_meta(buf, 0, 2);
	{
		uint64_t root = bolt_ld64(buf + 16 + 16);
		uint8_t pg[4096];
		const uint8_t *e = pg + 16, *k;

		cb_read(path, pg, sizeof(pg), (off_t)root * 4096);
		ck_assert_uint_eq(bolt_ld16(pg + 8), BOLT_FLAG_LEAF);
		ck_assert_uint_eq(bolt_ld16(pg + 10), 1);
		ck_assert_uint_eq(bolt_ld32(e + 0), BOLT_LEAF_BUCKET);
		ck_assert_uint_eq(bolt_ld32(e + 8), 4);
		k = e + bolt_ld32(e + 4);
		ck_assert_int_eq(memcmp(k, "meta", 4), 0);
		/* value: header {root 0, seq 0} + inline leaf page */
		ck_assert_uint_eq(bolt_ld64(k + 4), 0);
		ck_assert_uint_eq(bolt_ld16(k + 4 + 16 + 8), BOLT_FLAG_LEAF);
		ck_assert_uint_eq(bolt_ld16(k + 4 + 16 + 10), 1);
		ck_assert_uint_eq(bolt_ld32(e + 12), 16 + 16 + 16 + 2 + 8);
	}
}
END_TEST

/* format.h's slot rule and meta flags: unsynced commits never write the
 * meta page of the last synced one (txids skip to the other parity) and
 * carry the unsynced bit; synced ones carry flags 0, like bbolt. */
static uint32_t cb_meta_flags(const char *path, uint64_t slot, uint64_t txid)
{
	uint8_t pg[4096];

	cb_read(path, pg, sizeof(pg), (off_t)slot * 4096);
	cb_meta(pg, slot, txid);
	return bolt_ld32(pg + BOLT_PAGE_HDR + BOLT_M_FLAGS);
}

START_TEST(test_format_unsynced_slots)
{
	static const struct {
		bool sync;
		uint64_t txid;
	} steps[] = {{true, 2}, {false, 3}, {false, 5}, {true, 7},
		     {false, 8}, {false, 10}, {true, 12}, {true, 13}};
	struct engine_handle h;
	char path[512];
	uint32_t tag = bolt_test_set_boot_tag(0x1234);
	size_t i;

	(void)tag;
	if (sysconf(_SC_PAGESIZE) != 4096)
		return;
	cb_path(path, sizeof(path), "slots.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		uint64_t t = steps[i].txid;

		ck_assert_int_eq(engine_put(&h, "key", &i, sizeof(i), "v", 1),
				 0);
		ck_assert_int_eq(engine_commit(&h, steps[i].sync), 0);
		ck_assert_uint_eq(bolt_txid(h.e), t);
		ck_assert_uint_eq(cb_meta_flags(path, t % 2, t),
				  steps[i].sync ? 0 : 1u | 0x1234u << 1);
	}
	/* an empty synced commit after an unsynced one rewrites its meta
	 * synced, in place */
	ck_assert_int_eq(engine_put(&h, "key", "x", 1, "v", 1), 0);
	ck_assert_int_eq(engine_commit(&h, false), 0);
	ck_assert_uint_eq(bolt_txid(h.e), 14);
	ck_assert_uint_eq(cb_meta_flags(path, 0, 14), 1u | 0x1234u << 1);
	ck_assert_uint_eq(cb_meta_flags(path, 1, 13), 0);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	ck_assert_uint_eq(bolt_txid(h.e), 14);
	ck_assert_uint_eq(cb_meta_flags(path, 0, 14), 0);
	/* a reopen in the same boot keeps an unsynced commit and makes it
	 * synced; after a reboot it is dropped */
	ck_assert_int_eq(engine_put(&h, "key", "y", 1, "v", 1), 0);
	ck_assert_int_eq(engine_commit(&h, false), 0);
	ck_assert_uint_eq(bolt_txid(h.e), 15);
	engine_close(&h);
	h = cb_open(path);
	cb_check(&h);
	ck_assert_uint_eq(bolt_txid(h.e), 15);
	ck_assert_uint_eq(cb_meta_flags(path, 1, 15), 0);
	ck_assert_int_eq(engine_put(&h, "key", "z", 1, "v", 1), 0);
	ck_assert_int_eq(engine_commit(&h, false), 0);
	ck_assert_uint_eq(bolt_txid(h.e), 16);
	engine_close(&h);
	bolt_test_set_boot_tag(0x4321);
	h = cb_open(path);
	cb_check(&h); /* the dropped newer meta is allowed */
	ck_assert_uint_eq(bolt_txid(h.e), 15);
	{
		struct engine_view *v;
		struct engine_slice s;

		ck_assert_int_eq(engine_view_open(&h, &v), 0);
		ck_assert_int_eq(engine_get(&h, v, "key", "y", 1, &s), 0);
		ck_assert_int_eq(engine_get(&h, v, "key", "z", 1, &s),
				 -ENOENT);
		engine_view_close(&h, v);
	}
	/* the next commit takes the dropped meta's page */
	ck_assert_int_eq(engine_put(&h, "key", "w", 1, "v", 1), 0);
	ck_assert_int_eq(engine_commit(&h, false), 0);
	ck_assert_uint_eq(bolt_txid(h.e), 16);
	cb_check(&h);
	engine_close(&h);
}
END_TEST

/* Unsynced commits rewriting the same keys reuse the pages they wrote:
 * the file grows by the synced tree's pages they replace, not by every
 * commit; the next synced commit frees those too. */
START_TEST(test_unsynced_growth)
{
	struct engine_handle h;
	char path[512], k[16];
	uint64_t size, used, rs = 99;
	int i, c;

	bolt_test_set_strict(false); /* checked below */
	cb_path(path, sizeof(path), "growth.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < 5000; i++) {
		snprintf(k, sizeof(k), "%06d", i);
		ck_assert_int_eq(engine_put(&h, "key", k, 6, "value-0", 7), 0);
	}
	ck_assert_int_eq(engine_commit(&h, true), 0);
	for (c = 0; c < 3000; c++) {
		for (i = 0; i < 5; i++) {
			snprintf(k, sizeof(k), "%06d",
				 (int)(cb_rand(&rs) % 5000));
			ck_assert_int_eq(engine_put(&h, "key", k, 6, "value-1",
						    7),
					 0);
		}
		ck_assert_int_eq(engine_commit(&h, false), 0);
	}
	cb_check(&h);
	ck_assert_int_eq(engine_size(&h, &size, &used), 0);
	/* about 5000 * 30 bytes of tree: 40 pages; 3000 commits of ~8 new
	 * pages each would be 100 MiB without reuse */
	ck_assert_uint_lt(size, 2u << 20);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	ck_assert_int_eq(engine_put(&h, "key", "000001", 6, "x", 1), 0);
	ck_assert_int_eq(engine_commit(&h, false), 0);
	cb_check(&h);
	ck_assert_int_eq(engine_size(&h, &size, &used), 0);
	ck_assert_uint_lt(used, 1u << 20);
	engine_close(&h);
}
END_TEST

START_TEST(test_format_snapshot)
{
	struct engine_handle h, g;
	char path[512], copy[512];
	uint8_t buf[2 * 4096];
	uint64_t written;
	struct stat st;
	int fd, i;

	cb_path(path, sizeof(path), "src.db");
	cb_path(copy, sizeof(copy), "copy.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < 5000; i++) {
		char k[16];

		snprintf(k, sizeof(k), "%08d", i);
		ck_assert_int_eq(engine_put(&h, "key", k, 8, k, 8), 0);
	}
	ck_assert_int_eq(engine_commit(&h, false), 0);
	fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(engine_snapshot(&h, fd, &written), 0);
	close(fd);
	ck_assert_int_eq(stat(copy, &st), 0);
	ck_assert_uint_eq(written, (uint64_t)st.st_size);
	cb_read(copy, buf, sizeof(buf), 0);
	cb_meta(buf, 0, bolt_txid(h.e));
	cb_meta(buf + 4096, 1, bolt_txid(h.e) - 1);
	/* a snapshot of an unsynced commit is a synced file */
	ck_assert_uint_eq(bolt_ld32(buf + 16 + BOLT_M_FLAGS), 0);
	ck_assert_uint_eq(bolt_ld32(buf + 4096 + 16 + BOLT_M_FLAGS), 0);
	ck_assert_uint_eq(bolt_ld64(buf + 16 + 40) * 4096, written);
	engine_close(&h);
	g = cb_open(copy);
	cb_check(&g);
	{
		struct engine_view *v;
		struct engine_slice s;

		ck_assert_int_eq(engine_view_open(&g, &v), 0);
		ck_assert_int_eq(engine_get(&g, v, "key", "00004999", 8, &s),
				 0);
		ck_assert_int_eq(memcmp(s.p, "00004999", 8), 0);
		engine_view_close(&g, v);
	}
	engine_close(&g);
}
END_TEST

/* A file whose meta says "freelist not synced" (etcd may run bbolt with
 * NoFreelistSync): open rebuilds the freelist from reachability. */
START_TEST(test_unsynced_freelist)
{
	struct engine_handle h;
	char path[512];
	uint8_t page[4096];
	uint64_t txid;
	int fd, i;

	cb_path(path, sizeof(path), "nofl.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < 3000; i++) {
		char k[16];

		snprintf(k, sizeof(k), "%08d", i);
		ck_assert_int_eq(engine_put(&h, "key", k, 8, "v", 1), 0);
		if (i % 500 == 499)
			ck_assert_int_eq(engine_commit(&h, true), 0);
	}
	txid = bolt_txid(h.e);
	engine_close(&h);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, page, 4096, (off_t)(txid % 2) * 4096), 4096);
	bolt_st64(page + 16 + BOLT_M_FREELIST, BOLT_PGID_NONE);
	bolt_st64(page + 16 + BOLT_M_CHECKSUM,
		  bolt_fnv64a(page + 16, BOLT_M_CHECKSUM));
	ck_assert_int_eq(pwrite(fd, page, 4096, (off_t)(txid % 2) * 4096),
			 4096);
	close(fd);
	h = cb_open(path);
	cb_check(&h); /* free = every page not reachable */
	ck_assert_int_eq(engine_put(&h, "key", "new", 3, "x", 1), 0);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	engine_close(&h);
	h = cb_open(path);
	cb_check(&h);
	engine_close(&h);
}
END_TEST

/* ---- views: growth, remap, reuse ---- */

START_TEST(test_view_survives_growth)
{
	struct engine_handle h;
	struct engine_view *old;
	struct engine_slice s;
	char path[512];
	uint8_t *big = malloc(1u << 20);
	uint64_t size0, size1, used;
	int i;

	ck_assert_ptr_nonnull(big);
	cb_path(path, sizeof(path), "grow.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	ck_assert_int_eq(engine_put(&h, "key", "a", 1, "old-a", 5), 0);
	ck_assert_int_eq(engine_commit(&h, false), 0);
	ck_assert_int_eq(engine_size(&h, &size0, &used), 0);
	ck_assert_int_eq(engine_view_open(&h, &old), 0);
	ck_assert_int_eq(engine_get(&h, old, "key", "a", 1, &s), 0);
	/* many commits that grow the file (remaps) and rewrite "a" */
	for (i = 0; i < 40; i++) {
		char k[16];

		memset(big, i, 1u << 20);
		snprintf(k, sizeof(k), "big%02d", i);
		ck_assert_int_eq(
			engine_put(&h, "key", k, strlen(k), big, 1u << 20), 0);
		ck_assert_int_eq(engine_put(&h, "key", "a", 1, k, strlen(k)),
				 0);
		ck_assert_int_eq(engine_commit(&h, false), 0);
	}
	ck_assert_int_eq(engine_size(&h, &size1, &used), 0);
	ck_assert_uint_gt(size1, size0 + (40u << 20));
	/* the slice from before the remaps still reads the old mapping */
	ck_assert_int_eq(s.n, 5);
	ck_assert_int_eq(memcmp(s.p, "old-a", 5), 0);
	ck_assert_int_eq(engine_get(&h, old, "key", "a", 1, &s), 0);
	ck_assert_int_eq(memcmp(s.p, "old-a", 5), 0);
	ck_assert_int_eq(engine_get(&h, old, "key", "big00", 5, &s), -ENOENT);
	ck_assert_int_eq(engine_defrag(&h), -EBUSY);
	engine_view_close(&h, old);
	{
		struct engine_view *v;

		ck_assert_int_eq(engine_view_open(&h, &v), 0);
		ck_assert_int_eq(engine_get(&h, v, "key", "big17", 5, &s), 0);
		ck_assert_uint_eq(s.n, 1u << 20);
		ck_assert_uint_eq(s.p[12345], 17);
		engine_view_close(&h, v);
	}
	/* deleting the big values frees their pages; defrag shrinks */
	for (i = 0; i < 40; i++) {
		char k[16];

		snprintf(k, sizeof(k), "big%02d", i);
		ck_assert_int_eq(engine_del(&h, "key", k, strlen(k)), 0);
	}
	ck_assert_int_eq(engine_commit(&h, true), 0);
	ck_assert_int_eq(engine_size(&h, &size1, &used), 0);
	ck_assert_uint_lt(used, 1u << 20);
	ck_assert_int_eq(engine_defrag(&h), 0);
	cb_check(&h);
	ck_assert_int_eq(engine_size(&h, &size1, &used), 0);
	ck_assert_uint_lt(size1, 1u << 20);
	engine_close(&h);
	free(big);
}
END_TEST

/* Pages freed while a view is open are not reused under it. */
START_TEST(test_no_reuse_under_view)
{
	struct engine_handle h;
	struct engine_view *v;
	struct engine_iter *it;
	struct engine_slice ks, vs;
	char path[512], k[16], val[64];
	int i, round, n = 0;

	cb_path(path, sizeof(path), "reuse.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < 2000; i++) {
		snprintf(k, sizeof(k), "%06d", i);
		snprintf(val, sizeof(val), "first-%06d", i);
		ck_assert_int_eq(engine_put(&h, "key", k, 6, val, 12), 0);
	}
	ck_assert_int_eq(engine_commit(&h, false), 0);
	ck_assert_int_eq(engine_view_open(&h, &v), 0);
	for (round = 0; round < 20; round++) {
		for (i = round; i < 2000; i += 3) {
			snprintf(k, sizeof(k), "%06d", i);
			snprintf(val, sizeof(val), "round%02d-%06d", round, i);
			ck_assert_int_eq(engine_put(&h, "key", k, 6, val, 14),
					 0);
		}
		ck_assert_int_eq(engine_commit(&h, false), 0);
	}
	ck_assert_int_eq(
		engine_iter_open(&h, v, "key", NULL, 0, NULL, 0, false, &it),
		0);
	while (engine_iter_next(&h, it, &ks, &vs) == 1) {
		snprintf(val, sizeof(val), "first-%06d", n);
		ck_assert_uint_eq(vs.n, 12);
		ck_assert_int_eq(memcmp(vs.p, val, 12), 0);
		n++;
	}
	engine_iter_close(&h, it);
	ck_assert_int_eq(n, 2000);
	engine_view_close(&h, v);
	engine_close(&h);
}
END_TEST

/* ---- large values, many keys ---- */

START_TEST(test_large_values)
{
	static const uint32_t sizes[] = {
		4080, 4096, 8193, 1u << 20, (3u << 20) + 17, 6u << 20};
	struct engine_handle h;
	struct engine_view *v;
	struct engine_slice s;
	char path[512];
	uint8_t *buf = malloc(6u << 20), *want = malloc(6u << 20);
	size_t i;

	ck_assert_ptr_nonnull(buf);
	ck_assert_ptr_nonnull(want);
	cb_path(path, sizeof(path), "large.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < 6; i++) {
		char k[8];

		snprintf(k, sizeof(k), "v%zu", i);
		cb_val(buf, sizes[i], (uint32_t)i, 1);
		ck_assert_int_eq(engine_put(&h, "key", k, 2, buf, sizes[i]), 0);
	}
	/* a 64 KiB key */
	memset(buf, 'K', 65536);
	ck_assert_int_eq(engine_put(&h, "key", buf, 65536, "big key", 7), 0);
	ck_assert_int_eq(engine_put(&h, "key", buf, 65537, "x", 1), -EINVAL);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	engine_close(&h);
	h = cb_open(path);
	cb_check(&h);
	ck_assert_int_eq(engine_view_open(&h, &v), 0);
	for (i = 0; i < 6; i++) {
		char k[8];

		snprintf(k, sizeof(k), "v%zu", i);
		cb_val(want, sizes[i], (uint32_t)i, 1);
		ck_assert_int_eq(engine_get(&h, v, "key", k, 2, &s), 0);
		ck_assert_uint_eq(s.n, sizes[i]);
		ck_assert_int_eq(memcmp(s.p, want, s.n), 0);
	}
	ck_assert_int_eq(engine_get(&h, v, "key", buf, 65536, &s), 0);
	ck_assert_int_eq(memcmp(s.p, "big key", 7), 0);
	engine_view_close(&h, v);
	/* overwrite with small values: the overflow pages come back */
	for (i = 0; i < 6; i++) {
		char k[8];

		snprintf(k, sizeof(k), "v%zu", i);
		ck_assert_int_eq(engine_put(&h, "key", k, 2, "s", 1), 0);
	}
	ck_assert_int_eq(engine_commit(&h, true), 0);
	{
		uint64_t size, used;

		ck_assert_int_eq(engine_size(&h, &size, &used), 0);
		ck_assert_uint_lt(used, 1u << 20);
	}
	engine_close(&h);
	free(buf);
	free(want);
}
END_TEST

static void many_keys(uint32_t n, uint32_t per_commit)
{
	struct engine_handle h;
	struct engine_view *v;
	struct engine_iter *it;
	struct engine_slice ks, vs;
	char path[512], k[32], prev[32] = "";
	uint32_t i, cnt = 0;

	snprintf(path, sizeof(path), "%s/many-%" PRIu32 ".db", cb_dir, n);
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < n; i++) {
		/* etcd's revision keys come in order; these are shuffled */
		uint32_t x = (uint32_t)((uint64_t)i * 2654435761u % n);
		int kl = snprintf(k, sizeof(k), "%010" PRIu32, x);

		ck_assert_int_eq(
			engine_put(&h, "key", k, (size_t)kl, &x, sizeof(x)), 0);
		if (i % per_commit == per_commit - 1)
			ck_assert_int_eq(engine_commit(&h, false), 0);
	}
	ck_assert_int_eq(engine_commit(&h, true), 0);
	engine_close(&h);
	h = cb_open(path);
	cb_check(&h);
	ck_assert_int_eq(engine_view_open(&h, &v), 0);
	ck_assert_int_eq(
		engine_iter_open(&h, v, "key", NULL, 0, NULL, 0, false, &it),
		0);
	while (engine_iter_next(&h, it, &ks, &vs) == 1) {
		ck_assert_uint_eq(ks.n, 10);
		ck_assert_int_lt(memcmp(prev, ks.p, 10), 0);
		memcpy(prev, ks.p, 10);
		prev[10] = '\0';
		ck_assert_uint_eq(vs.n, 4);
		cnt++;
	}
	engine_iter_close(&h, it);
	engine_view_close(&h, v);
	ck_assert_uint_eq(cnt, n);
	/* delete every other key in one batch: rebalancing merges */
	for (i = 0; i < n; i += 2) {
		int kl = snprintf(k, sizeof(k), "%010" PRIu32, i);

		ck_assert_int_eq(engine_del(&h, "key", k, (size_t)kl), 0);
	}
	ck_assert_int_eq(engine_commit(&h, true), 0);
	ck_assert_int_eq(engine_view_open(&h, &v), 0);
	for (i = 0; i < n; i += n / 997 + 1) {
		int kl = snprintf(k, sizeof(k), "%010" PRIu32, i);

		ck_assert_int_eq(engine_get(&h, v, "key", k, (size_t)kl, &vs),
				 i % 2 ? 0 : -ENOENT);
	}
	engine_view_close(&h, v);
	engine_close(&h);
	unlink(path);
}

START_TEST(test_many_keys)
{
	many_keys(100000, 20000);
}
END_TEST

/* More than 0xFFFF free pages: the freelist page's count escape. */
static void freelist_escape(void)
{
	struct engine_handle h;
	char path[512], k[16];
	uint8_t *val = calloc(1, 1u << 20);
	uint64_t size, used;
	int i;

	ck_assert_ptr_nonnull(val);
	cb_path(path, sizeof(path), "escape.db");
	h = cb_open(path);
	ck_assert_int_eq(engine_bucket_create(&h, "key"), 0);
	for (i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "%04d", i);
		ck_assert_int_eq(engine_put(&h, "key", k, 4, val, 1u << 20), 0);
	}
	ck_assert_int_eq(engine_commit(&h, false), 0);
	for (i = 0; i < 300; i++) {
		snprintf(k, sizeof(k), "%04d", i);
		ck_assert_int_eq(engine_del(&h, "key", k, 4), 0);
	}
	ck_assert_int_eq(engine_commit(&h, true), 0);
	cb_check(&h);
	engine_close(&h);
	h = cb_open(path);
	cb_check(&h);
	ck_assert_int_eq(engine_size(&h, &size, &used), 0);
	ck_assert_uint_gt(size / 4096 - used / 4096, 0xFFFF);
	ck_assert_int_eq(engine_put(&h, "key", "x", 1, val, 100000), 0);
	ck_assert_int_eq(engine_commit(&h, true), 0);
	cb_check(&h);
	engine_close(&h);
	unlink(path); /* 300 MiB: do not keep it until the teardown */
	free(val);
}

START_TEST(test_million_keys)
{
	if (!getenv("CAIRN_LARGE_TESTS") ||
	    strcmp(getenv("CAIRN_LARGE_TESTS"), "1") != 0)
		return;
	bolt_test_set_strict(false); /* one check at the end is enough */
	many_keys(1000000, 100000);
	freelist_escape();
}
END_TEST

START_TEST(test_locked_and_foreign)
{
	struct engine_handle h;
	struct engine *e2 = NULL;
	char path[512];

	cb_path(path, sizeof(path), "locked.db");
	h = cb_open(path);
	/* a second open of the same file (another process) is refused */
	ck_assert_int_eq(bolt_engine_ops.open(path, NULL, &e2), -EBUSY);
	ck_assert_ptr_null(e2);
	engine_close(&h);
	/* bad arguments */
	h = cb_open(path);
	ck_assert_int_eq(engine_put(&h, "", "k", 1, "v", 1), -EINVAL);
	ck_assert_int_eq(engine_put(&h, "nope", "k", 1, "v", 1), -ENOENT);
	engine_close(&h);
}
END_TEST

Suite *bolt_suite(void)
{
	Suite *s = suite_create("bolt");
	TCase *tc = tcase_create("bolt");

	tcase_add_unchecked_fixture(tc, cb_base_setup, cb_base_teardown);
	tcase_add_checked_fixture(tc, cb_setup, cb_teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_format_new_file);
	tcase_add_test(tc, test_format_unsynced_slots);
	tcase_add_test(tc, test_unsynced_growth);
	tcase_add_test(tc, test_format_snapshot);
	tcase_add_test(tc, test_unsynced_freelist);
	tcase_add_test(tc, test_random_checked);
	tcase_add_test(tc, test_crash_simulation);
	tcase_add_test(tc, test_power_loss_unsynced);
	tcase_add_test(tc, test_out_of_memory);
	tcase_add_test(tc, test_view_survives_growth);
	tcase_add_test(tc, test_no_reuse_under_view);
	tcase_add_test(tc, test_large_values);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_million_keys);
	tcase_add_test(tc, test_locked_and_foreign);
	suite_add_tcase(s, tc);
	return s;
}
