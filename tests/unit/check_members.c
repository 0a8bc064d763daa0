/* Unit tests for core/members: etcd's ids (checked against a real etcd
 * 3.4.23 cluster), etcd's member JSON, URL checks, and the membership
 * changes with etcd's validation and strict reconfiguration rules. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/members.h"
#include "net/proto/membership.pb.h"
#include "net/proto/pbutil.h"

/* etcd 3.4.23, --initial-cluster-token tok,
 * --initial-cluster n1=http://127.0.0.1:22101,n2=...22102,n3=...22103:
 * `etcdctl member list -w json` and `endpoint status -w json` said: */
#define ETCD_N1 15221717845125393387ull
#define ETCD_N2 2653394991617839004ull
#define ETCD_N3 4984496487588745451ull
#define ETCD_CLUSTER 4261718602898722231ull

static struct config_peer peer(const char *name, const char *host,
			       uint16_t port)
{
	struct config_peer p = {(char *)name, {"http", "", port}};

	strcpy(p.url.host, host);
	return p;
}

static void three(struct members *ms)
{
	struct config_peer ps[3] = {peer("n1", "127.0.0.1", 22101),
				    peer("n2", "127.0.0.1", 22102),
				    peer("n3", "127.0.0.1", 22103)};

	members_init(ms);
	ck_assert_int_eq(members_from_initial_cluster(ms, ps, 3, "tok"), 0);
}

/* Give every member a name: "started". */
static void start_all(struct members *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		ck_assert_int_eq(
			members_set_attrs(ms, ms->v[i].id, "x", NULL, 0), 0);
}

/* Clear every name: as members added but not started yet. */
static void stop_all(struct members *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		ck_assert_int_eq(
			members_set_attrs(ms, ms->v[i].id, "", NULL, 0), 0);
}

START_TEST(ids_match_etcd)
{
	struct members ms;

	three(&ms);
	ck_assert_uint_eq(ms.n, 3);
	ck_assert_ptr_nonnull(members_find(&ms, ETCD_N1));
	ck_assert_ptr_nonnull(members_find(&ms, ETCD_N2));
	ck_assert_ptr_nonnull(members_find(&ms, ETCD_N3));
	ck_assert_uint_eq(members_cluster_id(&ms), ETCD_CLUSTER);
	ck_assert_str_eq(members_find(&ms, ETCD_N1)->peer_urls[0],
			 "http://127.0.0.1:22101");
	ck_assert_str_eq(members_find(&ms, ETCD_N1)->name, "n1");
	ck_assert_uint_eq(members_find(&ms, ETCD_N1)->n_client_urls, 0);
	/* ascending ids */
	ck_assert_uint_eq(ms.v[0].id, ETCD_N2);
	ck_assert_uint_eq(ms.v[2].id, ETCD_N1);
	members_free(&ms);
}
END_TEST

START_TEST(id_urls_sorted_and_time)
{
	const char *a[] = {"http://b:2", "http://a:1"};
	const char *b[] = {"http://a:1", "http://b:2"};
	const char *one[] = {"http://127.0.0.1:22101"};
	int64_t t1 = 1700000000, t2 = 1700000001;

	ck_assert_uint_eq(members_compute_id(a, 2, "t", NULL),
			  members_compute_id(b, 2, "t", NULL));
	ck_assert_uint_ne(members_compute_id(a, 2, "t", NULL),
			  members_compute_id(a, 2, "u", NULL));
	ck_assert_uint_eq(members_compute_id(one, 1, "tok", NULL), ETCD_N1);
	/* a MemberAdd id depends on the second it was made in */
	ck_assert_uint_ne(members_compute_id(one, 1, NULL, &t1),
			  members_compute_id(one, 1, NULL, &t2));
	ck_assert_uint_eq(members_compute_id(one, 1, NULL, &t1),
			  members_compute_id(one, 1, "", &t1));
}
END_TEST

START_TEST(several_urls_per_name)
{
	struct config_peer ps[3] = {peer("a", "127.0.0.1", 2),
				    peer("b", "h", 3),
				    peer("a", "127.0.0.1", 1)};
	const char *urls[] = {"http://127.0.0.1:1", "http://127.0.0.1:2"};
	struct members ms;
	const struct member *m;

	members_init(&ms);
	ck_assert_int_eq(members_from_initial_cluster(&ms, ps, 3, "x"), 0);
	ck_assert_uint_eq(ms.n, 2);
	m = members_find(&ms, members_compute_id(urls, 2, "x", NULL));
	ck_assert_ptr_nonnull(m);
	ck_assert_uint_eq(m->n_peer_urls, 2);
	ck_assert_str_eq(m->peer_urls[0], "http://127.0.0.1:1");
	ck_assert_ptr_eq(members_find_by_urls(&ms, urls, 2), m);
	ck_assert_ptr_null(members_find_by_urls(&ms, urls, 1));
	members_free(&ms);
}
END_TEST

START_TEST(json_as_etcd)
{
	const char *peers[] = {"http://127.0.0.1:22102"};
	const char *clients[] = {"http://127.0.0.1:22002"};
	struct member m, back;
	bool promote = true;
	char *j;

	ck_assert_int_eq(member_init(&m, ETCD_N2, peers, 1, false), 0);
	j = members_member_json(&m);
	ck_assert_str_eq(j, "{\"id\":2653394991617839004,\"peerURLs\":"
			    "[\"http://127.0.0.1:22102\"]}");
	free(j);
	ck_assert_int_eq(members_set_attrs(&(struct members){&m, 1, NULL, 0},
					   ETCD_N2, "n2", clients, 1),
			 0);
	m.is_learner = true;
	m.id = ETCD_N1; /* above 2^63 */
	j = members_member_json(&m);
	ck_assert_str_eq(j, "{\"id\":15221717845125393387,\"peerURLs\":"
			    "[\"http://127.0.0.1:22102\"],\"isLearner\":true,"
			    "\"name\":\"n2\",\"clientURLs\":"
			    "[\"http://127.0.0.1:22002\"]}");
	ck_assert_int_eq(member_from_json(j, strlen(j), 7, &back, &promote), 0);
	ck_assert_uint_eq(back.id, 7);
	ck_assert(back.is_learner);
	ck_assert(!promote);
	ck_assert_str_eq(back.name, "n2");
	ck_assert_uint_eq(back.n_client_urls, 1);
	ck_assert_str_eq(back.client_urls[0], "http://127.0.0.1:22002");
	ck_assert_uint_eq(back.n_peer_urls, 1);
	free(j);
	member_clear(&back);
	member_clear(&m);

	j = members_promote_json(ETCD_N1);
	ck_assert_str_eq(j, "{\"id\":15221717845125393387,\"peerURLs\":null,"
			    "\"isPromote\":true}");
	ck_assert_int_eq(
		member_from_json(j, strlen(j), ETCD_N1, &back, &promote), 0);
	ck_assert(promote);
	ck_assert_uint_eq(back.n_peer_urls, 0);
	member_clear(&back);
	free(j);
	ck_assert_int_eq(member_from_json("[1]", 3, 1, &back, NULL),
			 CAIRN_EBAD_REQUEST);
	ck_assert_int_eq(
		member_from_json("{\"peerURLs\":[1]}", 16, 1, &back, NULL),
		CAIRN_EBAD_REQUEST);
	ck_assert_int_eq(member_from_json("{", 1, 1, &back, NULL),
			 CAIRN_EBAD_REQUEST);
}
END_TEST

START_TEST(list_json_round_trip)
{
	struct members ms, back;
	char *j;

	three(&ms);
	ck_assert_int_eq(members_set_attrs(&ms, ETCD_N1, "n1", NULL, 0), 0);
	ms.v[0].is_learner = true;
	j = members_list_json(&ms);
	ck_assert_ptr_nonnull(j);
	ck_assert_ptr_nonnull(strstr(j, "\"id\":\"d33e67bb65ec6beb\""));
	ck_assert_int_eq(members_from_list_json(&back, j, strlen(j)), 0);
	ck_assert_uint_eq(back.n, 3);
	ck_assert_str_eq(members_find(&back, ETCD_N1)->name, "n1");
	ck_assert(members_find(&back, ms.v[0].id)->is_learner);
	ck_assert_uint_eq(members_cluster_id(&back), ETCD_CLUSTER);
	free(j);
	members_free(&back);
	ck_assert_int_eq(members_from_list_json(&back, "[{\"id\":\"zz\"}]", 13),
			 CAIRN_EBAD_REQUEST);
	ck_assert_uint_eq(back.n, 0);
	members_free(&ms);
}
END_TEST

START_TEST(urls_checked_as_etcd)
{
	const char *good[] = {"http://127.0.0.1:1", " https://h:2 ",
			      "unix://x:1", "http://[::1]:3", "http://:4"};
	const char *bad[] = {"foo://x:1",   "http://x",	    "http://x:1/path",
			     "127.0.0.1:1", "http://[::1]", "http://a:b:c"};
	char host[64];
	uint16_t port;

	ck_assert_int_eq(members_check_urls(good, 5), 0);
	ck_assert_int_eq(members_check_urls(good, 0), CAIRN_EMEMBER_BAD_URLS);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(members_check_urls(&bad[i], 1) ==
				      CAIRN_EMEMBER_BAD_URLS,
			      "%s", bad[i]);
	ck_assert_int_eq(members_url_host_port("http://[::1]:2380", host,
					       sizeof(host), &port),
			 0);
	ck_assert_str_eq(host, "::1");
	ck_assert_uint_eq(port, 2380);
	ck_assert_int_eq(members_url_host_port(" http://127.0.0.1:22101", host,
					       sizeof(host), &port),
			 0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_uint_eq(port, 22101);
	ck_assert_int_eq(members_url_host_port("http://h:99999", host,
					       sizeof(host), &port),
			 -EINVAL);
	ck_assert_int_eq(
		members_url_host_port("http://hostname:1", host, 4, &port),
		-ENAMETOOLONG);
}
END_TEST

static void ctx_member(struct member *m, uint64_t id, const char *url,
		       bool learner)
{
	ck_assert_int_eq(member_init(m, id, &url, 1, learner), 0);
}

START_TEST(add_checks)
{
	struct members ms;
	struct member c;

	three(&ms);
	ctx_member(&c, 42, "http://127.0.0.1:22101", false);
	ck_assert_int_eq(
		members_check_change(&ms, MEMBERS_CC_ADD_NODE, 42, &c, false),
		CAIRN_EPEER_URL_EXIST);
	ck_assert_int_eq(members_check_change(&ms, MEMBERS_CC_ADD_NODE, ETCD_N1,
					      &c, false),
			 CAIRN_EMEMBER_EXIST);
	member_clear(&c);
	ctx_member(&c, 42, "http://127.0.0.1:22104", true);
	ck_assert_int_eq(members_apply_change(&ms, MEMBERS_CC_ADD_LEARNER, 42,
					      &c, false),
			 0);
	ck_assert(members_find(&ms, 42)->is_learner);
	ck_assert_str_eq(members_find(&ms, 42)->name, "");
	member_clear(&c);
	/* etcd 3.4 allows one learner */
	ctx_member(&c, 43, "http://127.0.0.1:22105", true);
	ck_assert_int_eq(members_check_change(&ms, MEMBERS_CC_ADD_LEARNER, 43,
					      &c, false),
			 CAIRN_ETOO_MANY_LEARNERS);
	c.is_learner = false;
	ck_assert_int_eq(
		members_apply_change(&ms, MEMBERS_CC_ADD_NODE, 43, &c, false),
		0);
	ck_assert(!members_find(&ms, 43)->is_learner);
	ck_assert_uint_eq(members_count_voters(&ms), 4);
	ck_assert_int_eq(members_check(&ms), 0);
	member_clear(&c);
	members_free(&ms);
}
END_TEST

START_TEST(promote_remove_update)
{
	struct members ms;
	struct member c;

	three(&ms);
	ctx_member(&c, 42, "http://127.0.0.1:22104", true);
	ck_assert_int_eq(members_apply_change(&ms, MEMBERS_CC_ADD_LEARNER, 42,
					      &c, false),
			 0);
	member_clear(&c);
	ck_assert_int_eq(members_check_change(&ms, MEMBERS_CC_ADD_NODE, ETCD_N1,
					      NULL, true),
			 CAIRN_EMEMBER_NOT_LEARNER);
	ck_assert_int_eq(
		members_check_change(&ms, MEMBERS_CC_ADD_NODE, 9, NULL, true),
		CAIRN_EMEMBER_NOT_FOUND);
	ck_assert_int_eq(
		members_apply_change(&ms, MEMBERS_CC_ADD_NODE, 42, NULL, true),
		0);
	ck_assert(!members_find(&ms, 42)->is_learner);

	/* update: URLs of another member are taken, its own are not */
	ctx_member(&c, 42, "http://127.0.0.1:22102", false);
	ck_assert_int_eq(members_check_change(&ms, MEMBERS_CC_UPDATE_NODE, 42,
					      &c, false),
			 CAIRN_EPEER_URL_EXIST);
	member_clear(&c);
	ctx_member(&c, 42, "http://127.0.0.1:22104", false);
	ck_assert_int_eq(members_check_change(&ms, MEMBERS_CC_UPDATE_NODE, 42,
					      &c, false),
			 0);
	member_clear(&c);
	ctx_member(&c, 42, "http://127.0.0.1:22999", false);
	ck_assert_int_eq(members_apply_change(&ms, MEMBERS_CC_UPDATE_NODE, 42,
					      &c, false),
			 0);
	ck_assert_str_eq(members_find(&ms, 42)->peer_urls[0],
			 "http://127.0.0.1:22999");
	ck_assert_int_eq(
		members_check_change(&ms, MEMBERS_CC_UPDATE_NODE, 9, &c, false),
		CAIRN_EMEMBER_NOT_FOUND);
	member_clear(&c);

	/* remove; a removed id never comes back */
	ck_assert_int_eq(members_check_change(&ms, MEMBERS_CC_REMOVE_NODE, 9,
					      NULL, false),
			 CAIRN_EMEMBER_NOT_FOUND);
	ck_assert_int_eq(members_apply_change(&ms, MEMBERS_CC_REMOVE_NODE, 42,
					      NULL, false),
			 0);
	ck_assert_ptr_null(members_find(&ms, 42));
	ck_assert(members_is_removed(&ms, 42));
	ctx_member(&c, 42, "http://127.0.0.1:22104", false);
	ck_assert_int_eq(
		members_check_change(&ms, MEMBERS_CC_ADD_NODE, 42, &c, false),
		CAIRN_EMEMBER_NOT_FOUND);
	member_clear(&c);
	ck_assert_uint_eq(ms.n, 3);
	ck_assert_int_eq(members_check(&ms), 0);
	members_free(&ms);
}
END_TEST

START_TEST(strict_reconfig)
{
	struct members ms;
	struct member c;

	three(&ms);
	ck_assert(members_ready_to_add_voter(&ms)); /* named: started */
	stop_all(&ms);
	/* nobody started: adding a voter would lose the quorum */
	ck_assert(!members_ready_to_add_voter(&ms));
	ck_assert_int_eq(members_set_attrs(&ms, ETCD_N1, "n1", NULL, 0), 0);
	ck_assert_int_eq(members_set_attrs(&ms, ETCD_N2, "n2", NULL, 0), 0);
	/* 2 started of 4 voters after the add: quorum 3 */
	ck_assert(!members_ready_to_add_voter(&ms));
	/* removing the unstarted n3 leaves 2 of 2 */
	ck_assert(members_ready_to_remove_voter(&ms, ETCD_N3));
	/* removing n1 leaves 1 started of 2: quorum 2 */
	ck_assert(!members_ready_to_remove_voter(&ms, ETCD_N1));
	start_all(&ms);
	ck_assert(members_ready_to_add_voter(&ms));
	ck_assert(members_ready_to_remove_voter(&ms, ETCD_N1));
	ctx_member(&c, 42, "http://127.0.0.1:22104", true);
	ck_assert_int_eq(members_apply_change(&ms, MEMBERS_CC_ADD_LEARNER, 42,
					      &c, false),
			 0);
	member_clear(&c);
	/* learners do not count */
	ck_assert_uint_eq(members_count_voters(&ms), 3);
	ck_assert(members_ready_to_promote(&ms, 42));
	members_free(&ms);

	/* a one-member cluster may grow to two (etcd's special case) */
	{
		struct config_peer p = peer("a", "127.0.0.1", 1);

		members_init(&ms);
		ck_assert_int_eq(members_from_initial_cluster(&ms, &p, 1, ""),
				 0);
		start_all(&ms);
		ck_assert(members_ready_to_add_voter(&ms));
		members_free(&ms);
	}
}
END_TEST

START_TEST(copy_and_removed)
{
	struct members ms, cp;

	three(&ms);
	ck_assert_int_eq(members_remove(&ms, ETCD_N2), 0);
	ck_assert_int_eq(members_remove(&ms, ETCD_N2), -ENOENT);
	ck_assert_int_eq(members_mark_removed(&ms, 5), 0);
	ck_assert_int_eq(members_copy(&cp, &ms), 0);
	ck_assert_uint_eq(cp.n, 2);
	ck_assert_uint_eq(cp.n_removed, 2);
	ck_assert_uint_eq(cp.removed[0], 5);
	ck_assert(members_is_removed(&cp, ETCD_N2));
	ck_assert_int_eq(members_add(&cp, &ms.v[0]), -EEXIST);
	ck_assert_int_eq(members_check(&cp), 0);
	/* a removed id that is still a member breaks invariant 1 */
	ck_assert_int_eq(members_mark_removed(&cp, cp.v[0].id), 0);
	ck_assert_int_eq(members_check(&cp), CAIRN_ECORRUPT);
	members_free(&cp);
	members_free(&ms);
	ck_assert_uint_eq(ms.n, 0);
}
END_TEST

/* The CONF_CHANGE entry data is etcd's raftpb.ConfChange on the wire:
 * gogoproto (proto2, nullable=false) writes ID, Type and NodeID even when
 * zero, then Context when set. Bytes as etcd's Marshal() gives them. */
START_TEST(conf_change_wire_as_etcd)
{
	static const uint8_t want[] = {0x08, 0x96, 0x01, 0x10, 0x00, 0x18,
				       0x05, 0x22, 0x02, '{',  '}'};
	static const uint8_t remove[] = {0x08, 0x00, 0x10, 0x01, 0x18, 0x07};
	membershippb_ConfChange cc, back;
	uint8_t *buf;
	size_t len;

	memset(&cc, 0, sizeof(cc));
	cc.has_ID = cc.has_Type = cc.has_NodeID = true;
	cc.ID = 150;
	cc.Type = membershippb_ConfChangeType_ConfChangeAddNode;
	cc.NodeID = 5;
	cc.Context.p = (const uint8_t *)"{}";
	cc.Context.n = 2;
	ck_assert_int_eq(
		pbu_encode_alloc(&membershippb_ConfChange_msg, &cc, &buf, &len),
		0);
	ck_assert_uint_eq(len, sizeof(want));
	ck_assert_mem_eq(buf, want, len);
	memset(&back, 0, sizeof(back));
	ck_assert_int_eq(
		pbu_decode(&membershippb_ConfChange_msg, &back, buf, len), 0);
	ck_assert_uint_eq(back.ID, 150);
	ck_assert_uint_eq(back.NodeID, 5);
	ck_assert_uint_eq(back.Context.n, 2);
	free(buf);

	memset(&cc, 0, sizeof(cc));
	cc.has_ID = cc.has_Type = cc.has_NodeID = true;
	cc.Type = membershippb_ConfChangeType_ConfChangeRemoveNode;
	cc.NodeID = 7;
	ck_assert_int_eq(
		pbu_encode_alloc(&membershippb_ConfChange_msg, &cc, &buf, &len),
		0);
	ck_assert_uint_eq(len, sizeof(remove));
	ck_assert_mem_eq(buf, remove, len);
	free(buf);
}
END_TEST

Suite *members_suite(void)
{
	Suite *s = suite_create("members");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, ids_match_etcd);
	tcase_add_test(tc, id_urls_sorted_and_time);
	tcase_add_test(tc, several_urls_per_name);
	tcase_add_test(tc, json_as_etcd);
	tcase_add_test(tc, list_json_round_trip);
	tcase_add_test(tc, urls_checked_as_etcd);
	tcase_add_test(tc, add_checks);
	tcase_add_test(tc, promote_remove_update);
	tcase_add_test(tc, strict_reconfig);
	tcase_add_test(tc, copy_and_removed);
	tcase_add_test(tc, conf_change_wire_as_etcd);
	suite_add_tcase(s, tc);
	return s;
}
