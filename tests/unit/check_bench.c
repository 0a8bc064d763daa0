/* Unit tests of cairn-bench's pure parts: the latency histogram
 * (tools/bench/hist.c), the pre-encoded request templates
 * (tools/bench/reqgen.c, checked by decoding them with nanopb) and the
 * command line (tools/bench/opts.c). The HTTP/2 client and the loop are
 * covered by tests/integration/test_bench.sh against a real server. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"
#include "tools/bench/bench.h"
#include "tools/bench/hist.h"
#include "tools/bench/reqgen.h"

/* ---- hist ------------------------------------------------------------ */

START_TEST(hist_buckets_cover_values)
{
	uint64_t v;
	unsigned i;

	/* inv. 1: every value falls inside its own bucket */
	for (v = 0; v < 100000; v++) {
		i = hist_index(v);
		ck_assert_uint_le(hist_lowest(i), v);
		ck_assert_uint_ge(hist_highest(i), v);
	}
	for (v = 100000; v < (1ull << 41); v = v * 3 + 7) {
		i = hist_index(v);
		ck_assert_uint_le(hist_lowest(i), v);
		ck_assert_uint_ge(hist_highest(i), v);
		/* relative error within 1/HIST_SUB */
		ck_assert_uint_le(hist_highest(i) - hist_lowest(i),
				  v / HIST_SUB + 1);
	}
	/* inv. 2: buckets tile the number line */
	for (i = 0; i + 2 < HIST_NBUCKETS; i++)
		ck_assert_uint_eq(hist_highest(i) + 1, hist_lowest(i + 1));
	ck_assert_uint_eq(hist_index(UINT64_MAX), HIST_NBUCKETS - 1);
}
END_TEST

START_TEST(hist_percentiles)
{
	static struct hist h, h2;
	uint64_t v, p50, p99;

	hist_reset(&h);
	ck_assert_uint_eq(hist_percentile(&h, 50), 0);
	ck_assert(hist_mean(&h) == 0.0);
	/* 1..1000 us in ns */
	for (v = 1; v <= 1000; v++)
		hist_record(&h, v * 1000);
	ck_assert_uint_eq(h.count, 1000);
	ck_assert_uint_eq(h.min, 1000);
	ck_assert_uint_eq(h.max, 1000000);
	ck_assert_uint_eq(hist_percentile(&h, 100), 1000000);
	ck_assert(hist_mean(&h) == 500500.0);
	p50 = hist_percentile(&h, 50);
	p99 = hist_percentile(&h, 99);
	ck_assert_uint_ge(p50, 500000);
	ck_assert_uint_le(p50, 500000 + 500000 / HIST_SUB + 1);
	ck_assert_uint_ge(p99, 990000);
	ck_assert_uint_le(p99, 990000 + 990000 / HIST_SUB + 1);
	/* small values are exact */
	hist_reset(&h2);
	for (v = 1; v <= 100; v++)
		hist_record(&h2, v);
	ck_assert_uint_eq(hist_percentile(&h2, 50), 50);
	ck_assert_uint_eq(hist_percentile(&h2, 90), 90);
	ck_assert_uint_eq(hist_percentile(&h2, 99.9), 100);
	ck_assert_uint_eq(hist_percentile(&h2, 0.001), 1);
	/* merge adds counts, keeps exact min/max */
	hist_merge(&h, &h2);
	ck_assert_uint_eq(h.count, 1100);
	ck_assert_uint_eq(h.min, 1);
	ck_assert_uint_eq(h.max, 1000000);
}
END_TEST

/* ---- reqgen ---------------------------------------------------------- */

static int slice_is(struct pbslice s, const char *str)
{
	return s.n == strlen(str) && !memcmp(s.p, str, s.n);
}

static const uint8_t *msg_of(const struct reqgen_tmpl *t, size_t *len)
{
	uint32_t n = (uint32_t)t->buf[1] << 24 | (uint32_t)t->buf[2] << 16 |
		     (uint32_t)t->buf[3] << 8 | t->buf[4];

	ck_assert_uint_eq(t->buf[0], 0);
	ck_assert_uint_eq(n + REQGEN_HDR_LEN, t->len);
	*len = n;
	return t->buf + REQGEN_HDR_LEN;
}

START_TEST(reqgen_put_patch)
{
	struct reqgen_spec s = {.kind = REQGEN_PUT,
				.prefix = "p/",
				.key_size = 8,
				.val_size = 30,
				.nkeys = 1};
	etcdserverpb_PutRequest put;
	struct reqgen_tmpl t;
	const uint8_t *m;
	size_t len;

	ck_assert_int_eq(reqgen_build(&t, &s), 0);
	ck_assert_str_eq(t.path, "/etcdserverpb.KV/Put");
	ck_assert_uint_eq(t.ndigits, 6);
	m = msg_of(&t, &len);
	memset(&put, 0, sizeof(put));
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_PutRequest_fields, &put, m, len), 0);
	ck_assert(slice_is(put.key, "p/000000"));
	ck_assert(slice_is(put.value, "abcdefghijklmnopqrstuvwxyzabcd"));
	ck_assert_int_eq(reqgen_set_key(&t, 0, 4217), 0);
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_PutRequest_fields, &put, m, len), 0);
	ck_assert(slice_is(put.key, "p/004217"));
	ck_assert_int_eq(reqgen_set_key(&t, 0, 999999), 0);
	ck_assert_int_eq(reqgen_set_key(&t, 0, 1000000), -ERANGE);
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_PutRequest_fields, &put, m, len), 0);
	ck_assert(slice_is(put.key, "p/999999")); /* unchanged */
	reqgen_free(&t);
}
END_TEST

START_TEST(reqgen_range_delete)
{
	struct reqgen_spec s = {.kind = REQGEN_RANGE,
				.prefix = "",
				.key_size = 3,
				.serializable = 1,
				.nkeys = 1};
	etcdserverpb_RangeRequest rr;
	etcdserverpb_DeleteRangeRequest dr;
	struct reqgen_tmpl t;
	const uint8_t *m;
	size_t len;

	ck_assert_int_eq(reqgen_build(&t, &s), 0);
	ck_assert_str_eq(t.path, "/etcdserverpb.KV/Range");
	ck_assert_int_eq(reqgen_set_key(&t, 0, 7), 0);
	m = msg_of(&t, &len);
	memset(&rr, 0, sizeof(rr));
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_RangeRequest_fields, &rr, m, len), 0);
	ck_assert(slice_is(rr.key, "007"));
	ck_assert_uint_eq(rr.range_end.n, 0);
	ck_assert(rr.serializable);
	reqgen_free(&t);

	s.kind = REQGEN_DELETE;
	ck_assert_int_eq(reqgen_build(&t, &s), 0);
	ck_assert_str_eq(t.path, "/etcdserverpb.KV/DeleteRange");
	ck_assert_int_eq(reqgen_set_key(&t, 0, 123), 0);
	m = msg_of(&t, &len);
	memset(&dr, 0, sizeof(dr));
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_DeleteRangeRequest_fields, &dr, m, len),
		0);
	ck_assert(slice_is(dr.key, "123"));
	reqgen_free(&t);
}
END_TEST

START_TEST(reqgen_txn_batch)
{
	struct reqgen_spec s = {.kind = REQGEN_TXN_PUT,
				.prefix = "bench/",
				.key_size = 16,
				.val_size = 300,
				.nkeys = REQGEN_MAX_KEYS};
	etcdserverpb_TxnRequest txn = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_PutRequest *p;
	struct reqgen_tmpl t;
	const uint8_t *m;
	char want[17];
	size_t len;
	unsigned i;

	ck_assert_int_eq(reqgen_build(&t, &s), 0);
	ck_assert_uint_eq(t.nkeys, REQGEN_MAX_KEYS);
	for (i = 0; i < t.nkeys; i++)
		ck_assert_int_eq(reqgen_set_key(&t, i, 5000 + i), 0);
	m = msg_of(&t, &len);
	ck_assert_int_eq(
		pbu_decode(etcdserverpb_TxnRequest_fields, &txn, m, len), 0);
	ck_assert_uint_eq(txn.compare_count, 0);
	ck_assert_uint_eq(txn.failure_count, 0);
	ck_assert_uint_eq(txn.success_count, REQGEN_MAX_KEYS);
	for (i = 0; i < txn.success_count; i++) {
		ck_assert_uint_eq(txn.success[i].which_request,
				  etcdserverpb_RequestOp_request_put_tag);
		p = &txn.success[i].request.request_put;
		snprintf(want, sizeof(want), "bench/%010u", 5000 + i);
		ck_assert(slice_is(p->key, want));
		ck_assert_uint_eq(p->value.n, 300);
	}
	pb_release(etcdserverpb_TxnRequest_fields, &txn);
	reqgen_free(&t);
}
END_TEST

START_TEST(reqgen_bad_specs)
{
	struct reqgen_spec s = {
		.kind = REQGEN_PUT, .prefix = "abc", .key_size = 3, .nkeys = 1};
	struct reqgen_tmpl t;
	char d[4];

	ck_assert_int_eq(reqgen_build(&t, &s), -EINVAL); /* no digits */
	s.key_size = 4;
	s.nkeys = 2; /* only txns hold several keys */
	ck_assert_int_eq(reqgen_build(&t, &s), -EINVAL);
	s.kind = REQGEN_TXN_PUT;
	s.nkeys = REQGEN_MAX_KEYS + 1;
	ck_assert_int_eq(reqgen_build(&t, &s), -EINVAL);
	ck_assert_uint_eq(reqgen_digits_for(1), 1);
	ck_assert_uint_eq(reqgen_digits_for(10), 1);
	ck_assert_uint_eq(reqgen_digits_for(11), 2);
	ck_assert_uint_eq(reqgen_digits_for(10000), 4);
	ck_assert_uint_eq(reqgen_digits_for(10001), 5);
	ck_assert_int_eq(reqgen_format_num(d, 4, 42), 0);
	ck_assert(!memcmp(d, "0042", 4));
	ck_assert_int_eq(reqgen_format_num(d, 2, 420), -ERANGE);
}
END_TEST

/* ---- opts ------------------------------------------------------------ */

static int parse(struct bench_cfg *c, const char *line)
{
	char buf[512], *argv[32], *tok, *save = NULL;
	int argc = 0;
	FILE *null = fopen("/dev/null", "w");
	int rc;

	snprintf(buf, sizeof(buf), "cairn-bench %s", line);
	for (tok = strtok_r(buf, " ", &save); tok && argc < 31;
	     tok = strtok_r(NULL, " ", &save))
		argv[argc++] = tok;
	argv[argc] = NULL;
	rc = bench_parse(c, argc, argv, null, null);
	fclose(null);
	return rc;
}

START_TEST(opts_defaults_and_flags)
{
	struct bench_cfg c;

	ck_assert_int_eq(parse(&c, "put"), 0);
	ck_assert_int_eq(c.workload, BENCH_PUT);
	ck_assert_uint_eq(c.nep, 1);
	ck_assert_str_eq(c.ep[0].host, "127.0.0.1");
	ck_assert_str_eq(c.ep[0].port, "2379");
	ck_assert_uint_eq(c.total, 10000);
	ck_assert_uint_eq(c.clients, 1);
	ck_assert_int_eq(parse(&c, "--endpoints http://a:1,[::1]:2,b.c:3 "
				   "--clients 64 --conns 4 --duration 1.5s "
				   "--consistency s range"),
			 0);
	ck_assert_int_eq(c.workload, BENCH_RANGE);
	ck_assert_uint_eq(c.nep, 3);
	ck_assert_str_eq(c.ep[0].host, "a");
	ck_assert_str_eq(c.ep[1].host, "::1");
	ck_assert_str_eq(c.ep[1].port, "2");
	ck_assert_str_eq(c.ep[2].host, "b.c");
	ck_assert_uint_eq(c.clients, 64);
	ck_assert_uint_eq(c.conns, 4);
	ck_assert_uint_eq(c.duration_ms, 1500);
	ck_assert_uint_eq(c.total, 0);
	ck_assert(c.serializable);
	ck_assert_int_eq(parse(&c, "--preload 500 --batch 10"), 0);
	ck_assert_int_eq(c.workload, BENCH_NONE);
	ck_assert_uint_eq(c.preload, 500);
	ck_assert_int_eq(parse(&c, "--duration 250ms --read-ratio 0.25 "
				   "--sequential-keys mixed"),
			 0);
	ck_assert_uint_eq(c.duration_ms, 250);
	ck_assert(c.read_ratio == 0.25);
	ck_assert(c.sequential);
}
END_TEST

START_TEST(opts_errors)
{
	struct bench_cfg c;

	ck_assert_int_eq(parse(&c, ""), -EINVAL); /* nothing to do */
	ck_assert_int_eq(parse(&c, "fly"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--clients 0 put"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--clients -3 put"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--duration 10x put"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--consistency q range"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--read-ratio 1.5 mixed"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--batch 129 --preload 5"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--endpoints nohost put"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--endpoints a: put"), -EINVAL);
	ck_assert_int_eq(parse(&c, "--nope put"), -EINVAL);
	ck_assert_int_eq(parse(&c, "put range"), -EINVAL);
	/* 10 digits + "bench/" does not fit in 12 bytes */
	ck_assert_int_eq(parse(&c, "--key-size 12 --key-space 10000000000 "
				   "put"),
			 -EINVAL);
	ck_assert_int_eq(parse(&c, "--key-size 12 --key-space 1000000 put"), 0);
	ck_assert_int_eq(parse(&c, "--help"), 1);
}
END_TEST

Suite *bench_suite(void)
{
	Suite *s = suite_create("bench");
	TCase *tc = tcase_create("hist");

	tcase_add_test(tc, hist_buckets_cover_values);
	tcase_add_test(tc, hist_percentiles);
	suite_add_tcase(s, tc);
	tc = tcase_create("reqgen");
	tcase_add_test(tc, reqgen_put_patch);
	tcase_add_test(tc, reqgen_range_delete);
	tcase_add_test(tc, reqgen_txn_batch);
	tcase_add_test(tc, reqgen_bad_specs);
	suite_add_tcase(s, tc);
	tc = tcase_create("opts");
	tcase_add_test(tc, opts_defaults_and_flags);
	tcase_add_test(tc, opts_errors);
	suite_add_tcase(s, tc);
	return s;
}
