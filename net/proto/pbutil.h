/* pbutil: the small helpers every user of the nanopb messages needs.
 *
 * Decoding: pbu_decode() decodes a whole message from a buffer with the
 * pbslice convention (net/proto/pbslice.h): bytes fields are slices of
 * that buffer, strings and repeated fields are malloc'd (FT_POINTER) and
 * freed by pb_release(). Encoding: into an exact-size malloc'd buffer or a
 * caller's buffer.
 *
 * Big repeated response fields (RangeResponse.kvs, DeleteRangeResponse.
 * prev_kvs, WatchResponse.events, LeaseTimeToLiveResponse.keys,
 * LeaseLeasesResponse.leases) are pb_callback_t: the pbu_set_*() helpers
 * make nanopb write them from an array the caller owns, and the
 * pbu_sink_*() helpers hand each decoded element to a caller's function.
 * pb_callback_t has room for one pointer, so each setter takes a small
 * caller-owned struct pbu_list that it fills in; the array and that
 * struct must both stay valid until the message is encoded.
 *
 * Raft entries carry etcdserverpb.InternalRaftRequest; pbu_wrap_internal()
 * builds one around an already encoded request without decoding it again.
 *
 * Everything here is reentrant and allocation-free unless stated.
 */
#ifndef CAIRN_NET_PROTO_PBUTIL_H
#define CAIRN_NET_PROTO_PBUTIL_H

#include <stddef.h>
#include <stdint.h>

/* pb_release(), pb_decode()/pb_encode() and the stream types come with
 * this header: every user of pbu_decode() needs pb_release(). */
#include <pb.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "net/proto/pbslice.h"

/* Deepest submessage nesting pbu_decode() accepts (a nested txn costs two
 * levels: TxnRequest -> RequestOp -> TxnRequest). Bounds the decoder's
 * recursion so a hostile request cannot exhaust the stack. */
#define PBU_MAX_DEPTH 64

/* InternalRaftRequest.header field number (RequestHeader). */
#define PBU_INTERNAL_HEADER_FIELD 100

/* Decode buf[0..len) as message type d into msg.
 * msg: the caller's struct; its contents on entry are ignored except its
 *   pb_callback_t fields (the big repeated response fields), which must
 *   hold NULL or a decode callback (e.g. set by pbu_sink_kvs()): start
 *   from <Msg>_init_zero or memset when decoding a message that has them.
 *   pbslice fields are cleared first, so an absent bytes field reads as
 *   {NULL, 0}.
 * buf: borrowed; every pbslice in msg (and those handed to sinks) points
 *   into it, so it must outlive them. Never written.
 * On success the caller owns msg's FT_POINTER allocations and frees them
 * with pb_release(d, msg) (before buf if it likes: slices own nothing).
 * Returns 0, or CAIRN_EBAD_REQUEST: malformed protobuf (truncated, bad wire
 * type, length past the end, zero tag, ...), nesting deeper than
 * PBU_MAX_DEPTH, out of memory while decoding, or a sink refused an
 * element. On failure nothing stays allocated in msg and its non-callback
 * fields hold nanopb's defaults, so a pb_release() is harmless. */
int pbu_decode(const pb_msgdesc_t *d, void *msg, const uint8_t *buf,
	       size_t len);

/* Exact encoded size of msg (type d) in *len.
 * Returns 0, or -EINVAL if nanopb cannot encode msg (a pbslice with bytes
 * but no pointer, an encode callback failed, ...). */
int pbu_encoded_size(const pb_msgdesc_t *d, const void *msg, size_t *len);

/* Encode msg (type d) into one malloc'd buffer of exactly *len bytes.
 * *out is the caller's to free(); it is non-NULL on success even when *len
 * is 0. msg is only read (encode callbacks run, twice: size then write).
 * Returns 0, -ENOMEM, or -EINVAL (as pbu_encoded_size()); on failure *out
 * is NULL and *len 0. */
int pbu_encode_alloc(const pb_msgdesc_t *d, const void *msg, uint8_t **out,
		     size_t *len);

/* Encode msg (type d) into buf[0..cap); *len is the number of bytes
 * written. Returns 0, -ENOSPC if the encoding is longer than cap (buf then
 * holds a partial encoding), or -EINVAL (as pbu_encoded_size()). */
int pbu_encode_to(const pb_msgdesc_t *d, const void *msg, uint8_t *buf,
		  size_t cap, size_t *len);

/* One mvccpb.KeyValue as the server holds it. key/value are borrowed. */
struct pbu_kv {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value;
	size_t value_len;
	int64_t create_rev, mod_rev, version, lease;
};

/* One mvccpb.Event. type is an mvccpb_Event_EventType (0 PUT, 1 DELETE);
 * prev_kv is NULL when there is none. */
struct pbu_event {
	int type;
	struct pbu_kv kv;
	const struct pbu_kv *prev_kv;
};

/* The one pointer a pb_callback_t can hold: filled in by pbu_set_*(),
 * owned by the caller, read during encoding. */
struct pbu_list {
	const void *items;
	size_t n;
};

/* Make cb (a repeated mvccpb.KeyValue field: RangeResponse.kvs,
 * DeleteRangeResponse.prev_kvs) encode kvs[0..n) as n KeyValue
 * submessages, zero fields omitted as proto3 does. l and kvs (and the
 * bytes they point to) must stay valid until encoding is done. n may be 0
 * (kvs may then be NULL). */
void pbu_set_kvs(pb_callback_t *cb, struct pbu_list *l,
		 const struct pbu_kv *kvs, size_t n);

/* The same for WatchResponse.events: n mvccpb.Event submessages. */
void pbu_set_events(pb_callback_t *cb, struct pbu_list *l,
		    const struct pbu_event *evs, size_t n);

/* The same for a repeated bytes field (LeaseTimeToLiveResponse.keys): n
 * length-delimited values, empty ones included (repeated elements are
 * always written). */
void pbu_set_bytes_list(pb_callback_t *cb, struct pbu_list *l,
			const struct pbslice *v, size_t n);

/* The same for LeaseLeasesResponse.leases: n LeaseStatus{ID: ids[i]}. */
void pbu_set_leases(pb_callback_t *cb, struct pbu_list *l, const int64_t *ids,
		    size_t n);

/* Receivers of decoded repeated callback fields (clients, tests, tools).
 * fn returns 0 to go on; anything else stops decoding, and pbu_decode()
 * then fails with CAIRN_EBAD_REQUEST while the sink keeps its own
 * record of why. The slices/pointers passed to fn point into the buffer
 * given to pbu_decode(). */
struct pbu_kv_sink {
	int (*fn)(void *arg, const struct pbu_kv *kv);
	void *arg;
};

struct pbu_bytes_sink {
	int (*fn)(void *arg, const uint8_t *p, size_t n);
	void *arg;
};

/* Set cb's decode callback so each KeyValue element goes to sink->fn.
 * sink must stay valid until decoding is done. */
void pbu_sink_kvs(pb_callback_t *cb, struct pbu_kv_sink *sink);

/* Set cb's decode callback so each repeated bytes element goes to
 * sink->fn. */
void pbu_sink_bytes(pb_callback_t *cb, struct pbu_bytes_sink *sink);

/* Build an etcdserverpb.InternalRaftRequest holding header {ID: id}
 * (field 100) and req[0..req_len) — an already encoded request message —
 * as field field_no (e.g. 4 put, 5 delete_range, 6 txn, 7 compaction,
 * 8 lease_grant, 9 lease_revoke, 1100.. auth), without re-encoding it.
 * Decoding the result with pbu_decode(etcdserverpb_InternalRaftRequest_
 * fields, ...) yields header.ID == id and has_<field> with the request.
 * *out is malloc'd, the caller's to free(). req is only read.
 * Returns 0, -EINVAL (field_no is not a message field of
 * InternalRaftRequest other than the header, or req is NULL with
 * req_len > 0), or -ENOMEM; on failure *out is NULL and *out_len 0. */
int pbu_wrap_internal(uint64_t id, uint32_t field_no, const uint8_t *req,
		      size_t req_len, uint8_t **out, size_t *out_len);

/* The other way: find the header ID and the one request field of an
 * encoded InternalRaftRequest without decoding the (large) whole message.
 * *req points into buf. Fields other than the header, the legacy ID and
 * length-delimited request fields are skipped; with several request
 * fields the last wins, as protobuf merging would have it.
 * Errors: CAIRN_EBAD_REQUEST (malformed, or no request field). */
int pbu_unwrap_internal(const uint8_t *buf, size_t len, uint64_t *id,
			uint32_t *field_no, const uint8_t **req,
			size_t *req_len);

#endif
