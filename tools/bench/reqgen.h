/* reqgen: pre-encoded gRPC request bodies whose keys are patched in place.
 *
 * A template is one gRPC Length-Prefixed-Message (5-byte prefix + an
 * etcdserverpb request encoded by nanopb) built once, plus the offsets of
 * the key bytes that change from request to request. Sending request i is
 * then reqgen_set_key() (a few byte stores) and handing buf[0..len) to
 * HTTP/2: no encoding, no allocation on the hot path.
 *
 * Keys: a key is the prefix followed by a key number in decimal, zero
 * padded to fill key_size bytes ("bench/0000000042"), so that keys sort in
 * number order and ranges over the prefix find what --preload wrote.
 * Only the digits are patched; the prefix is part of the template.
 *
 * How the key offsets are found: the request is encoded twice, once with
 * every digit placeholder 0xfe and once with 0xfd; the bytes that differ
 * are exactly the digits (lengths and tags are the same in both), in
 * encoding order, which is the order of the keys in the request.
 *
 * Values: val_size bytes of 'a'..'z' repeating (constant, never patched).
 */
#ifndef CAIRN_TOOLS_BENCH_REQGEN_H
#define CAIRN_TOOLS_BENCH_REQGEN_H

#include <stddef.h>
#include <stdint.h>

#include "net/grpc_wire.h"

/* Most keys one template holds (etcd's default --max-txn-ops). */
#define REQGEN_MAX_KEYS 128
#define REQGEN_HDR_LEN GRPC_WIRE_HDR_LEN

enum reqgen_kind {
	REQGEN_PUT,	/* KV/Put: PutRequest{key, value} */
	REQGEN_RANGE,	/* KV/Range: RangeRequest{key, serializable} */
	REQGEN_DELETE,	/* KV/DeleteRange: DeleteRangeRequest{key} */
	REQGEN_TXN_PUT, /* KV/Txn: TxnRequest{success: nkeys puts} */
};

struct reqgen_spec {
	enum reqgen_kind kind;
	const char *prefix; /* borrowed during reqgen_build() only */
	size_t key_size;    /* whole key, prefix included */
	size_t val_size;    /* PUT and TXN_PUT */
	int serializable;   /* RANGE */
	unsigned nkeys;	    /* TXN_PUT: 1..REQGEN_MAX_KEYS; else 1 */
};

struct reqgen_tmpl {
	uint8_t *buf; /* owned: 5-byte prefix + message */
	size_t len;
	const char *path; /* static string: the gRPC method path */
	unsigned nkeys;
	size_t ndigits;		     /* key_size - strlen(prefix) */
	size_t off[REQGEN_MAX_KEYS]; /* offset in buf of each key's digits */
};

/* Build t from spec. t is the caller's; on success t->buf is malloc'd and
 * freed by reqgen_free(). Keys start as all '0' digits.
 * Returns 0, -EINVAL (key_size <= strlen(prefix), nkeys out of range, a
 * message over 4 GiB), -ENOMEM, or a pbu_encode error. On failure t holds
 * nothing to free. */
int reqgen_build(struct reqgen_tmpl *t, const struct reqgen_spec *spec);

/* Free t->buf (t may then be built again). NULL-safe on t->buf. */
void reqgen_free(struct reqgen_tmpl *t);

/* Number of decimal digits that key numbers 0 .. n-1 need (1 for n <= 10). */
size_t reqgen_digits_for(uint64_t n);

/* Write key number num as t->ndigits zero-padded digits into key i of t
 * (i < t->nkeys). Returns 0, or -ERANGE if num has more digits than fit
 * (t is then unchanged). */
int reqgen_set_key(struct reqgen_tmpl *t, unsigned i, uint64_t num);

/* Write key number num as ndigits zero-padded digits into out[0..ndigits)
 * (no NUL). Returns 0 or -ERANGE as reqgen_set_key(). */
int reqgen_format_num(char *out, size_t ndigits, uint64_t num);

#endif
