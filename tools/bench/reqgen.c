/* reqgen: pre-encoded request templates (see reqgen.h).
 *
 * Invariants:
 *   1. t->buf[0..5) is the gRPC prefix of t->buf[5..len): flag 0, length
 *      len - 5 big-endian.
 *   2. For each i < nkeys, t->buf[off[i] .. off[i] + ndigits) are key i's
 *      digits, and nothing else in buf depends on their values.
 */
#include "tools/bench/reqgen.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"

#define PH_A 0xfe
#define PH_B 0xfd

/* Keys and value of one build, shared by every op (nanopb only reads). */
struct gen_bufs {
	uint8_t *key[REQGEN_MAX_KEYS];
	uint8_t *val;
};

static void gen_bufs_free(struct gen_bufs *g, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		free(g->key[i]);
	free(g->val);
}

static void fill_keys(struct gen_bufs *g, const struct reqgen_spec *s,
		      size_t plen, uint8_t ph)
{
	unsigned i;

	for (i = 0; i < s->nkeys; i++) {
		memcpy(g->key[i], s->prefix, plen);
		memset(g->key[i] + plen, ph, s->key_size - plen);
	}
}

static void put_req(etcdserverpb_PutRequest *p, const struct gen_bufs *g,
		    unsigned i, const struct reqgen_spec *s)
{
	memset(p, 0, sizeof(*p));
	p->key.p = g->key[i];
	p->key.n = s->key_size;
	p->value.p = g->val;
	p->value.n = s->val_size;
}

/* Encode the request for s with the current key bytes into *out. */
static int encode(const struct reqgen_spec *s, const struct gen_bufs *g,
		  uint8_t **out, size_t *len)
{
	etcdserverpb_PutRequest put;
	etcdserverpb_RangeRequest rr = etcdserverpb_RangeRequest_init_zero;
	etcdserverpb_DeleteRangeRequest dr =
		etcdserverpb_DeleteRangeRequest_init_zero;
	etcdserverpb_TxnRequest txn = etcdserverpb_TxnRequest_init_zero;
	etcdserverpb_RequestOp ops[REQGEN_MAX_KEYS];
	unsigned i;

	switch (s->kind) {
	case REQGEN_PUT:
		put_req(&put, g, 0, s);
		return pbu_encode_alloc(etcdserverpb_PutRequest_fields, &put,
					out, len);
	case REQGEN_RANGE:
		rr.key.p = g->key[0];
		rr.key.n = s->key_size;
		rr.serializable = s->serializable != 0;
		return pbu_encode_alloc(etcdserverpb_RangeRequest_fields, &rr,
					out, len);
	case REQGEN_DELETE:
		dr.key.p = g->key[0];
		dr.key.n = s->key_size;
		return pbu_encode_alloc(etcdserverpb_DeleteRangeRequest_fields,
					&dr, out, len);
	case REQGEN_TXN_PUT:
		memset(ops, 0, sizeof(ops));
		for (i = 0; i < s->nkeys; i++) {
			ops[i].which_request =
				etcdserverpb_RequestOp_request_put_tag;
			put_req(&ops[i].request.request_put, g, i, s);
		}
		txn.success_count = (pb_size_t)s->nkeys;
		txn.success = ops;
		return pbu_encode_alloc(etcdserverpb_TxnRequest_fields, &txn,
					out, len);
	}
	return -EINVAL;
}

static const char *kind_path(enum reqgen_kind k)
{
	switch (k) {
	case REQGEN_PUT:
		return "/etcdserverpb.KV/Put";
	case REQGEN_RANGE:
		return "/etcdserverpb.KV/Range";
	case REQGEN_DELETE:
		return "/etcdserverpb.KV/DeleteRange";
	case REQGEN_TXN_PUT:
		return "/etcdserverpb.KV/Txn";
	}
	return NULL;
}

/* Record in t the start of each run of differing bytes of a and b; each
 * run must be exactly ndigits long and there must be nkeys of them. */
static int find_keys(struct reqgen_tmpl *t, const uint8_t *a, const uint8_t *b,
		     size_t len)
{
	size_t i = 0, run;
	unsigned n = 0;

	while (i < len) {
		if (a[i] == b[i]) {
			i++;
			continue;
		}
		for (run = 0; i + run < len && a[i + run] != b[i + run]; run++)
			;
		if (run != t->ndigits || n >= t->nkeys)
			return -EINVAL;
		t->off[n++] = i + REQGEN_HDR_LEN;
		i += run;
	}
	return n == t->nkeys ? 0 : -EINVAL;
}

static int check_spec(const struct reqgen_spec *s, size_t plen)
{
	if (s->key_size <= plen || !kind_path(s->kind))
		return -EINVAL;
	if (s->nkeys < 1 || s->nkeys > REQGEN_MAX_KEYS)
		return -EINVAL;
	if (s->kind != REQGEN_TXN_PUT && s->nkeys != 1)
		return -EINVAL;
	return 0;
}

static int alloc_bufs(struct gen_bufs *g, const struct reqgen_spec *s)
{
	unsigned i;
	size_t j;

	memset(g, 0, sizeof(*g));
	g->val = malloc(s->val_size ? s->val_size : 1);
	if (!g->val)
		return -ENOMEM;
	for (j = 0; j < s->val_size; j++)
		g->val[j] = (uint8_t)('a' + j % 26);
	for (i = 0; i < s->nkeys; i++) {
		g->key[i] = malloc(s->key_size);
		if (!g->key[i]) {
			gen_bufs_free(g, i);
			return -ENOMEM;
		}
	}
	return 0;
}

int reqgen_build(struct reqgen_tmpl *t, const struct reqgen_spec *spec)
{
	size_t plen = strlen(spec->prefix), la = 0, lb = 0;
	uint8_t *a = NULL, *b = NULL;
	struct gen_bufs g;
	unsigned i;
	int rc;

	memset(t, 0, sizeof(*t));
	rc = check_spec(spec, plen);
	if (rc)
		return rc;
	rc = alloc_bufs(&g, spec);
	if (rc)
		return rc;
	t->nkeys = spec->nkeys;
	t->ndigits = spec->key_size - plen;
	t->path = kind_path(spec->kind);
	fill_keys(&g, spec, plen, PH_A);
	rc = encode(spec, &g, &a, &la);
	if (rc)
		goto fail;
	fill_keys(&g, spec, plen, PH_B);
	rc = encode(spec, &g, &b, &lb);
	if (rc)
		goto fail;
	rc = -EINVAL;
	if (la != lb || la > UINT32_MAX || find_keys(t, a, b, la))
		goto fail;
	rc = -ENOMEM;
	t->buf = malloc(la + REQGEN_HDR_LEN);
	if (!t->buf)
		goto fail;
	grpc_wire_put_hdr(t->buf, (uint32_t)la);
	memcpy(t->buf + REQGEN_HDR_LEN, a, la);
	t->len = la + REQGEN_HDR_LEN;
	for (i = 0; i < t->nkeys; i++)
		memset(t->buf + t->off[i], '0', t->ndigits);
	rc = 0;
fail:
	free(a);
	free(b);
	gen_bufs_free(&g, spec->nkeys);
	if (rc)
		memset(t, 0, sizeof(*t));
	return rc;
}

void reqgen_free(struct reqgen_tmpl *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = 0;
}

size_t reqgen_digits_for(uint64_t n)
{
	size_t d = 1;
	uint64_t top = n ? n - 1 : 0;

	while (top >= 10) {
		top /= 10;
		d++;
	}
	return d;
}

int reqgen_format_num(char *out, size_t ndigits, uint64_t num)
{
	size_t i = ndigits;

	while (i > 0) {
		out[--i] = (char)('0' + num % 10);
		num /= 10;
		if (!num)
			break;
	}
	if (num)
		return -ERANGE;
	while (i > 0)
		out[--i] = '0';
	return 0;
}

int reqgen_set_key(struct reqgen_tmpl *t, unsigned i, uint64_t num)
{
	char tmp[24];
	size_t nd = t->ndigits;

	/* Format aside first so a failure leaves t unchanged (inv. 2). */
	if (nd <= sizeof(tmp)) {
		if (reqgen_format_num(tmp, nd, num))
			return -ERANGE;
		memcpy(t->buf + t->off[i], tmp, nd);
		return 0;
	}
	if (reqgen_digits_for(num + 1) > nd)
		return -ERANGE;
	return reqgen_format_num((char *)t->buf + t->off[i], nd, num);
}
