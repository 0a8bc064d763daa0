/* Unit tests for core/lease (the lessor) under simulated time, with a
 * real MVCC over the sqlite engine in a temp dir. Requests go through
 * core/apply's apply_entry with the lessor as its extension applier, as
 * the server applies raft entries. Expected behaviour is etcd 3.4's
 * lessor (lease/lessor.go). */
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/apply.h"
#include "core/errors.h"
#include "core/lease.h"
#include "core/mvcc/mvcc.h"
#include "core/server.h"
#include "engines/engine.h"
#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"
#include "tests/unit/tmpdir.h"

#define K(s) (const uint8_t *)(s), strlen(s)

static char tmpdir[64];
static char dbpath[128];
static struct engine_handle eh;
static struct mvcc *m;
static struct lessor *ls;
static struct apply_ctx actx;
static int64_t fake_now = 1000000;

static int64_t clock_fn(void *arg)
{
	(void)arg;
	return fake_now;
}

static void open_all(void)
{
	struct engine_config ecfg = {0, 0};
	struct lessor_config lcfg = {.min_ttl = 2, .now_ms = clock_fn};
	const char *name =
		engine_find("sqlite") ? "sqlite" : engine_default_name();

	ck_assert_int_eq(engine_open(name, dbpath, &ecfg, &eh), 0);
	ck_assert_int_eq(mvcc_open(&eh, &m), 0);
	ck_assert_int_eq(lessor_open(&lcfg, m, &eh, &ls), 0);
	mvcc_set_observer(m, lessor_on_change, ls);
	memset(&actx, 0, sizeof(actx));
	actx.mvcc = m;
	actx.lease_exists = lessor_exists;
	actx.lease_arg = ls;
	actx.ext = lessor_apply;
	actx.ext_arg = ls;
}

static void close_all(void)
{
	ck_assert_int_eq(lessor_check(ls), 0);
	ck_assert_int_eq(mvcc_commit(m, true), 0);
	lessor_close(ls);
	ls = NULL;
	mvcc_close(m);
	m = NULL;
	engine_close(&eh);
}

static void make_tmpdir(void)
{
	ut_tmpdir(tmpdir, sizeof(tmpdir), "check_lease");
}

static void remove_tmpdir(void)
{
	ut_rmtree(tmpdir);
}

static void setup(void)
{
	char dir[96];

	snprintf(dir, sizeof(dir), "%s/tXXXXXX", tmpdir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/db", dir);
	fake_now = 1000000;
	open_all();
}

static void teardown(void)
{
	if (ls)
		close_all();
}

/* ---- requests through apply_entry ------------------------------------- */

static int apply_msg(enum server_req kind, const pb_msgdesc_t *d,
		     const void *msg, struct apply_out *out)
{
	uint8_t *req = NULL, *ent = NULL;
	size_t rlen = 0, elen = 0;
	uint64_t id = 0;

	ck_assert_int_eq(pbu_encode_alloc(d, msg, &req, &rlen), 0);
	ck_assert_int_eq(
		pbu_wrap_internal(7, (uint32_t)kind, req, rlen, &ent, &elen),
		0);
	apply_entry(&actx, ent, elen, true, &id, out);
	ck_assert_uint_eq(id, 7);
	ck_assert_int_eq(lessor_check(ls), 0);
	free(req);
	free(ent);
	return out->err;
}

static int do_grant(int64_t id, int64_t ttl, int64_t *granted)
{
	etcdserverpb_LeaseGrantRequest r = {ttl, id};
	etcdserverpb_LeaseGrantResponse resp = {0};
	struct apply_out out;
	int err = apply_msg(SERVER_REQ_LEASE_GRANT,
			    &etcdserverpb_LeaseGrantRequest_msg, &r, &out);

	if (err == 0) {
		ck_assert_int_eq(
			pbu_decode(&etcdserverpb_LeaseGrantResponse_msg, &resp,
				   out.buf, out.len),
			0);
		ck_assert_int_eq(resp.ID, id);
		if (granted)
			*granted = resp.TTL;
		pb_release(&etcdserverpb_LeaseGrantResponse_msg, &resp);
	}
	free(out.buf);
	return err;
}

static int do_revoke(int64_t id)
{
	etcdserverpb_LeaseRevokeRequest r = {id};
	struct apply_out out;
	int err = apply_msg(SERVER_REQ_LEASE_REVOKE,
			    &etcdserverpb_LeaseRevokeRequest_msg, &r, &out);

	free(out.buf);
	return err;
}

static int do_put(const char *key, const char *val, int64_t lease)
{
	etcdserverpb_PutRequest r = etcdserverpb_PutRequest_init_zero;
	struct apply_out out;
	int err;

	r.key.p = (uint8_t *)key;
	r.key.n = strlen(key);
	r.value.p = (uint8_t *)val;
	r.value.n = strlen(val);
	r.lease = lease;
	err = apply_msg(SERVER_REQ_PUT, &etcdserverpb_PutRequest_msg, &r, &out);
	free(out.buf);
	return err;
}

static int do_checkpoint(int64_t id, int64_t remaining)
{
	etcdserverpb_LeaseCheckpoint cp = {id, remaining};
	etcdserverpb_LeaseCheckpointRequest r = {1, &cp};
	struct apply_out out;
	int err = apply_msg(SERVER_REQ_LEASE_CHECKPOINT,
			    &etcdserverpb_LeaseCheckpointRequest_msg, &r, &out);

	free(out.buf);
	return err;
}

static int64_t get_lease_of(const char *key)
{
	struct mvcc_range_result r;
	int64_t lease;

	ck_assert_int_eq(mvcc_range(m, K(key), NULL, 0, NULL, &r), 0);
	lease = r.n ? r.kvs[0].lease : -1;
	mvcc_range_result_free(&r);
	return lease;
}

static size_t n_keys(int64_t id)
{
	struct lease_info info;

	if (lessor_lookup(ls, id, &info) < 0)
		return (size_t)-1;
	return info.n_keys;
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(test_min_ttl)
{
	/* etcd defaults: heartbeat 100 ms, election 1000 ms -> 1.5 s -> 2 */
	ck_assert_int_eq(lease_min_ttl(1000, 100), 2);
	/* (3*10)/2 ticks of 500 ms = 7.5 s -> 8 */
	ck_assert_int_eq(lease_min_ttl(5000, 500), 8);
	/* 25 ticks: (3*25)/2 = 37 (integer) * 40 ms = 1.48 s -> 2 */
	ck_assert_int_eq(lease_min_ttl(1000, 40), 2);
}
END_TEST

START_TEST(test_grant_errors_and_min_ttl)
{
	int64_t ttl = 0;
	struct lease_info info;

	ck_assert_int_eq(do_grant(5, 1, &ttl), 0);
	ck_assert_int_eq(ttl, 2); /* raised to the minimum */
	ck_assert_int_eq(do_grant(5, 10, NULL), CAIRN_ELEASE_EXIST);
	ck_assert_int_eq(do_grant(6, LEASE_MAX_TTL + 1, NULL),
			 CAIRN_ELEASE_TTL_TOO_LARGE);
	ck_assert_int_eq(do_grant(7, LEASE_MAX_TTL, &ttl), 0);
	ck_assert_int_eq(ttl, LEASE_MAX_TTL);
	ck_assert_int_eq(do_grant(0, 10, NULL), CAIRN_ELEASE_NOT_FOUND);
	ck_assert_int_eq(lessor_count(ls), 2);
	ck_assert_int_eq(lessor_lookup(ls, 5, &info), 0);
	ck_assert_int_eq(info.ttl, 2);
	ck_assert_int_eq(lessor_lookup(ls, 6, &info), CAIRN_ELEASE_NOT_FOUND);
	ck_assert_int_eq(do_revoke(6), CAIRN_ELEASE_NOT_FOUND);
	/* a put naming an unknown lease is refused and writes nothing */
	ck_assert_int_eq(do_put("k", "v", 99), CAIRN_ELEASE_NOT_FOUND);
	ck_assert_int_eq(get_lease_of("k"), -1);
}
END_TEST

START_TEST(test_expiry_order_and_renew)
{
	int64_t ids[8], ttl = 0;

	lessor_promote(ls, 0);
	ck_assert_int_eq(do_grant(1, 10, NULL), 0);
	ck_assert_int_eq(do_grant(2, 5, NULL), 0);
	ck_assert_int_eq(do_grant(3, 20, NULL), 0);
	fake_now += 4999;
	ck_assert_uint_eq(lessor_expired(ls, ids, 8), 0);
	fake_now += 1;
	ck_assert_uint_eq(lessor_expired(ls, ids, 8), 1);
	ck_assert_int_eq(ids[0], 2);
	/* handed out once; again only after the retry interval */
	ck_assert_uint_eq(lessor_expired(ls, ids, 8), 0);
	/* renewing an expired lease: not found (it waits for its revoke) */
	ck_assert_int_eq(lessor_renew(ls, 2, &ttl, NULL),
			 CAIRN_ELEASE_NOT_FOUND);
	/* 6 s: lease 1 renewed, now expiring at 16 s (lease 3: 20 s) */
	fake_now += 1000;
	ck_assert_int_eq(lessor_renew(ls, 1, &ttl, NULL), 0);
	ck_assert_int_eq(ttl, 10);
	fake_now += 3000; /* 9 s: lease 2's retry is due */
	ck_assert_uint_eq(lessor_expired(ls, ids, 8), 1);
	ck_assert_int_eq(ids[0], 2);
	ck_assert_int_eq(do_revoke(2), 0);
	fake_now += 7000; /* 16 s: lease 1 */
	ck_assert_uint_eq(lessor_expired(ls, ids, 8), 1);
	ck_assert_int_eq(ids[0], 1);
	/* 20 s: lease 3 expires, and lease 1 (not revoked) is due again at
	 * 16 + 3 = 19 s: both, soonest first */
	fake_now += 4000;
	ck_assert_uint_eq(lessor_expired(ls, ids, 8), 2);
	ck_assert_int_eq(ids[0], 1);
	ck_assert_int_eq(ids[1], 3);
	/* a non-primary never expires anything and cannot renew */
	lessor_demote(ls);
	fake_now += 100000;
	ck_assert_uint_eq(lessor_expired(ls, ids, 8), 0);
	ck_assert_int_eq(lessor_renew(ls, 3, &ttl, NULL), CAIRN_ENOT_LEADER);
}
END_TEST

START_TEST(test_timetolive_and_list)
{
	struct lease_info info;
	int64_t *ids = NULL;
	size_t n = 0;

	lessor_promote(ls, 0);
	ck_assert_int_eq(do_grant(10, 100, NULL), 0);
	ck_assert_int_eq(do_grant(11, 50, NULL), 0);
	fake_now += 30500;
	ck_assert_int_eq(lessor_lookup(ls, 10, &info), 0);
	ck_assert_int_eq(info.ttl, 100);
	ck_assert_int_eq(info.remaining, 69); /* 69.5 s truncated, as etcd */
	ck_assert_int_eq(lessor_list(ls, &ids, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(ids[0], 11); /* soonest expiry first */
	ck_assert_int_eq(ids[1], 10);
	free(ids);
}
END_TEST

static int collect(void *arg, const uint8_t *key, size_t len)
{
	char *buf = arg;

	strncat(buf, (const char *)key, len);
	strcat(buf, ",");
	return 0;
}

START_TEST(test_attach_move_detach)
{
	struct apply_out out;
	etcdserverpb_DeleteRangeRequest d =
		etcdserverpb_DeleteRangeRequest_init_zero;
	char buf[256] = "";

	ck_assert_int_eq(do_grant(1, 60, NULL), 0);
	ck_assert_int_eq(do_grant(2, 60, NULL), 0);
	ck_assert_int_eq(do_put("a", "1", 1), 0);
	ck_assert_int_eq(do_put("b", "1", 1), 0);
	ck_assert_uint_eq(n_keys(1), 2);
	ck_assert_int_eq(lessor_foreach_key(ls, 1, collect, buf), 0);
	ck_assert(strcmp(buf, "a,b,") == 0 || strcmp(buf, "b,a,") == 0);
	/* overwriting with another lease moves the key */
	ck_assert_int_eq(do_put("a", "2", 2), 0);
	ck_assert_uint_eq(n_keys(1), 1);
	ck_assert_uint_eq(n_keys(2), 1);
	/* a put without a lease detaches */
	ck_assert_int_eq(do_put("a", "3", 0), 0);
	ck_assert_uint_eq(n_keys(2), 0);
	/* a delete detaches */
	d.key.p = (uint8_t *)"b";
	d.key.n = 1;
	ck_assert_int_eq(apply_msg(SERVER_REQ_DELETE_RANGE,
				   &etcdserverpb_DeleteRangeRequest_msg, &d,
				   &out),
			 0);
	free(out.buf);
	ck_assert_uint_eq(n_keys(1), 0);
	/* revoking lease 1 now deletes nothing: "a" and "b" stay as they are */
	ck_assert_int_eq(do_revoke(1), 0);
	ck_assert_int_eq(get_lease_of("a"), 0);
}
END_TEST

struct hist {
	int n_del;
	int64_t rev;
};

static int count_deletes(void *arg, int type, const struct mvcc_kv *kv)
{
	struct hist *h = arg;

	if (type == 1) {
		h->n_del++;
		h->rev = kv->mod_rev;
	}
	return 0;
}

START_TEST(test_revoke_one_revision)
{
	struct hist h = {0, 0};
	int64_t rev;

	ck_assert_int_eq(do_grant(42, 60, NULL), 0);
	ck_assert_int_eq(do_put("k/c", "1", 42), 0);
	ck_assert_int_eq(do_put("k/a", "1", 42), 0);
	ck_assert_int_eq(do_put("k/b", "1", 42), 0);
	ck_assert_int_eq(do_put("k/free", "1", 0), 0);
	rev = mvcc_rev(m);
	ck_assert_int_eq(do_revoke(42), 0);
	ck_assert_int_eq(mvcc_rev(m), rev + 1); /* one revision for all */
	ck_assert_int_eq(get_lease_of("k/a"), -1);
	ck_assert_int_eq(get_lease_of("k/b"), -1);
	ck_assert_int_eq(get_lease_of("k/c"), -1);
	ck_assert_int_eq(get_lease_of("k/free"), 0);
	ck_assert_int_eq(mvcc_history(m, rev + 1, 0, count_deletes, &h), 0);
	ck_assert_int_eq(h.n_del, 3);
	ck_assert_int_eq(h.rev, rev + 1);
	ck_assert(!lessor_exists(ls, 42));
	ck_assert_int_eq(do_revoke(42), CAIRN_ELEASE_NOT_FOUND);
	/* a lease without keys takes no revision */
	ck_assert_int_eq(do_grant(43, 60, NULL), 0);
	ck_assert_int_eq(do_revoke(43), 0);
	ck_assert_int_eq(mvcc_rev(m), rev + 1);
}
END_TEST

START_TEST(test_restart_restore)
{
	struct lease_info info;

	lessor_promote(ls, 0);
	ck_assert_int_eq(do_grant(1, 30, NULL), 0);
	ck_assert_int_eq(do_grant(2, 100, NULL), 0);
	ck_assert_int_eq(do_put("x", "1", 1), 0);
	ck_assert_int_eq(do_put("y", "1", 1), 0);
	ck_assert_int_eq(do_put("z", "1", 2), 0);
	ck_assert_int_eq(do_revoke(2), 0); /* gone, and its row too */
	ck_assert_int_eq(do_grant(3, 100, NULL), 0);
	fake_now += 20000;
	ck_assert_int_eq(do_checkpoint(3, 80), 0);
	close_all();
	/* a long downtime: nothing expires for it */
	fake_now += 3600 * 1000;
	open_all();
	ck_assert(!lessor_is_primary(ls));
	ck_assert_uint_eq(lessor_count(ls), 2);
	ck_assert_uint_eq(n_keys(1), 2);
	ck_assert_int_eq(lessor_lookup(ls, 2, &info), CAIRN_ELEASE_NOT_FOUND);
	ck_assert_int_eq(lessor_lookup(ls, 3, &info), 0);
	ck_assert_int_eq(info.checkpoint, 80);
	lessor_promote(ls, 0);
	ck_assert_int_eq(lessor_lookup(ls, 1, &info), 0);
	ck_assert_int_eq(info.remaining, 30); /* the full TTL again */
	ck_assert_int_eq(lessor_lookup(ls, 3, &info), 0);
	ck_assert_int_eq(info.remaining, 80); /* the checkpointed rest */
	/* and the restored attachments still drive a revoke */
	ck_assert_int_eq(do_revoke(1), 0);
	ck_assert_int_eq(get_lease_of("x"), -1);
	ck_assert_int_eq(get_lease_of("y"), -1);
}
END_TEST

/* Point the apply path and the change stream at lessor l. */
static void use_lessor(struct lessor *l)
{
	mvcc_set_observer(m, lessor_on_change, l);
	actx.lease_exists = lessor_exists;
	actx.lease_arg = l;
	actx.ext = lessor_apply;
	actx.ext_arg = l;
}

/* After a snapshot from the leader the state machine changed under the
 * lessor (issue 5): lessor_reload makes it the bucket's and MVCC's again,
 * keeping a primary primary with expiries started afresh. */
START_TEST(test_reload_after_snapshot)
{
	struct lessor_config lcfg = {.min_ttl = 2, .now_ms = clock_fn};
	struct lessor *other;
	struct lease_info info;
	int64_t ids[4];

	lessor_promote(ls, 0);
	ck_assert_int_eq(do_grant(1, 30, NULL), 0);
	ck_assert_int_eq(do_grant(2, 100, NULL), 0);
	ck_assert_int_eq(do_put("x", "1", 1), 0);
	ck_assert_int_eq(do_put("y", "1", 2), 0);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	/* another lessor over the same data plays "the leader's history":
	 * ls sees none of it */
	ck_assert_int_eq(lessor_open(&lcfg, m, &eh, &other), 0);
	use_lessor(other);
	ck_assert_int_eq(do_revoke(1), 0);
	ck_assert_int_eq(do_grant(3, 100, NULL), 0);
	ck_assert_int_eq(do_put("z", "1", 3), 0);
	ck_assert_int_eq(do_put("y", "2", 3), 0); /* moved from 2 to 3 */
	ck_assert_int_eq(do_checkpoint(2, 50), 0);
	ck_assert_int_eq(mvcc_commit(m, false), 0);
	lessor_close(other);
	use_lessor(ls);
	ck_assert_int_eq(lessor_lookup(ls, 1, &info), 0); /* stale */

	fake_now += 10000;
	ck_assert_int_eq(lessor_reload(ls, m, &eh), 0);
	ck_assert_int_eq(lessor_check(ls), 0);
	ck_assert(lessor_is_primary(ls));
	ck_assert_uint_eq(lessor_count(ls), 2);
	ck_assert_int_eq(lessor_lookup(ls, 1, &info), CAIRN_ELEASE_NOT_FOUND);
	ck_assert_int_eq(lessor_lookup(ls, 2, &info), 0);
	ck_assert_uint_eq(info.n_keys, 0);
	ck_assert_int_eq(info.remaining, 50); /* its checkpoint */
	ck_assert_int_eq(lessor_lookup(ls, 3, &info), 0);
	ck_assert_uint_eq(info.n_keys, 2);
	ck_assert_int_eq(info.remaining, 100);
	ck_assert_int_eq(get_lease_of("y"), 3);
	/* expiry runs from the reload: lease 2 at +50 s, 3 at +100 s */
	fake_now += 51000;
	ck_assert_uint_eq(lessor_expired(ls, ids, 4), 1);
	ck_assert_int_eq(ids[0], 2);
	/* the reloaded attachments drive a revoke */
	ck_assert_int_eq(do_revoke(3), 0);
	ck_assert_int_eq(get_lease_of("z"), -1);
	ck_assert_int_eq(get_lease_of("y"), -1);

	/* a non-primary stays one: nothing ever expires */
	lessor_demote(ls);
	ck_assert_int_eq(lessor_reload(ls, m, &eh), 0);
	ck_assert(!lessor_is_primary(ls));
	fake_now += 3600 * 1000;
	ck_assert_uint_eq(lessor_expired(ls, ids, 4), 0);
	ck_assert_int_eq(lessor_check(ls), 0);
}
END_TEST

START_TEST(test_checkpoints)
{
	etcdserverpb_LeaseCheckpoint cps[4];
	struct lease_info info;
	int64_t ttl;
	bool had = false;

	ck_assert_uint_eq(lessor_checkpoints(ls, cps, 4), 0); /* not primary */
	lessor_promote(ls, 0);
	ck_assert_int_eq(do_grant(1, 100, NULL), 0);
	ck_assert_int_eq(do_grant(2, 100, NULL), 0);
	ck_assert_uint_eq(lessor_checkpoints(ls, cps, 4), 0); /* full TTLs */
	fake_now += 30000;
	ck_assert_int_eq(lessor_renew(ls, 2, &ttl, &had), 0);
	ck_assert(!had);
	ck_assert_uint_eq(lessor_checkpoints(ls, cps, 4), 1);
	ck_assert_int_eq(cps[0].ID, 1);
	ck_assert_int_eq(cps[0].remaining_TTL, 70);
	ck_assert_int_eq(do_checkpoint(1, 70), 0);
	ck_assert_uint_eq(lessor_checkpoints(ls, cps, 4), 0); /* stored */
	/* a checkpoint of an unknown lease is ignored, as etcd */
	ck_assert_int_eq(do_checkpoint(77, 5), 0);
	/* a renew clears the checkpoint: a restart gets the full TTL */
	ck_assert_int_eq(lessor_renew(ls, 1, &ttl, &had), 0);
	ck_assert(had);
	ck_assert_int_eq(lessor_lookup(ls, 1, &info), 0);
	ck_assert_int_eq(info.checkpoint, 0);
	/* clean shutdown: remaining TTLs written outside raft */
	fake_now += 10000;
	ck_assert_int_eq(lessor_persist_remaining(ls), 0);
	close_all();
	open_all();
	lessor_promote(ls, 0);
	ck_assert_int_eq(lessor_lookup(ls, 1, &info), 0);
	ck_assert_int_eq(info.remaining, 90);
	ck_assert_int_eq(lessor_lookup(ls, 2, &info), 0);
	ck_assert_int_eq(info.remaining, 90);
}
END_TEST

START_TEST(test_many_leases_heap)
{
	int64_t ids[600];
	size_t n, total = 0;
	int64_t last = 0;

	lessor_promote(ls, 0);
	/* TTLs in a scrambled order; expiry must come out sorted */
	for (int i = 1; i <= 500; i++)
		ck_assert_int_eq(do_grant(i, 2 + (i * 37) % 500, NULL), 0);
	for (int step = 0; step < 600; step++) {
		fake_now += 1000;
		n = lessor_expired(ls, ids, 600);
		for (size_t j = 0; j < n; j++) {
			int64_t ttl = 2 + (ids[j] * 37) % 500;

			ck_assert_int_ge(ttl, last);
			last = ttl;
			ck_assert_int_eq(do_revoke(ids[j]), 0);
		}
		total += n;
	}
	ck_assert_uint_eq(total, 500);
	ck_assert_uint_eq(lessor_count(ls), 0);
}
END_TEST

Suite *lease_suite(void)
{
	Suite *s = suite_create("lease");
	TCase *tc = tcase_create("lessor");

	tcase_add_unchecked_fixture(tc, make_tmpdir, remove_tmpdir);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_min_ttl);
	tcase_add_test(tc, test_grant_errors_and_min_ttl);
	tcase_add_test(tc, test_expiry_order_and_renew);
	tcase_add_test(tc, test_timetolive_and_list);
	tcase_add_test(tc, test_attach_move_detach);
	tcase_add_test(tc, test_revoke_one_revision);
	tcase_add_test(tc, test_restart_restore);
	tcase_add_test(tc, test_checkpoints);
	tcase_add_test(tc, test_reload_after_snapshot);
	tcase_add_test(tc, test_many_leases_heap);
	suite_add_tcase(s, tc);
	return s;
}
