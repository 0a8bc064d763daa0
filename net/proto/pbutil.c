/* pbutil: nanopb helpers (contract in pbutil.h).
 *
 * Invariants:
 *  1. Nothing here keeps state between calls: a pb_callback_t set by
 *     pbu_set_*() / pbu_sink_*() points at the caller's struct only.
 *  2. pbu_decode() never leaves an allocation behind on failure and never
 *     lets nanopb recurse deeper than PBU_MAX_DEPTH (checked by a
 *     schema-driven walk over the wire bytes before decoding).
 *  3. Encoders produce exactly what nanopb would for the same struct:
 *     repeated callback elements are encoded through the generated
 *     descriptors (mvccpb_KeyValue_fields, ...), not by hand, so field
 *     numbers live only in the .proto files. The one exception is
 *     pbu_wrap_internal(), which writes two length-delimited fields whose
 *     numbers it checks against InternalRaftRequest's descriptor.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <pb.h>
#include <pb_common.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "core/errors.h"
#include "net/proto/kv.pb.h"
#include "net/proto/pbslice.h"
#include "net/proto/pbutil.h"
#include "net/proto/raft_internal.pb.h"
#include "net/proto/rpc.pb.h"

/* ---- decoding ----------------------------------------------------------- */

/* A zeroed stand-in for any message struct: pb_field_iter reads pointer
 * fields through its base (never writes), and the depth walk needs
 * descriptors only. Every generated struct is far smaller (the largest,
 * InternalRaftRequest, is under 1 KiB). */
static uint64_t pbu_shadow[1024];
_Static_assert(sizeof(etcdserverpb_InternalRaftRequest) < sizeof(pbu_shadow),
	       "pbu_shadow must hold any message struct");

static int pbu_walk(const pb_msgdesc_t *d, const uint8_t *buf, size_t len,
		    int depth)
{
	pb_istream_t is = pb_istream_from_buffer(buf, len);
	pb_field_iter_t it;
	bool have = pb_field_iter_begin_const(&it, d, pbu_shadow);

	while (is.bytes_left) {
		pb_wire_type_t wt;
		uint32_t tag;
		bool eof;

		if (!pb_decode_tag(&is, &wt, &tag, &eof) || tag == 0)
			return CAIRN_EBAD_REQUEST;
		if (wt == PB_WT_STRING && have &&
		    pb_field_iter_find(&it, tag) &&
		    PB_LTYPE_IS_SUBMSG(it.type) && it.submsg_desc) {
			pb_istream_t sub;
			int err;

			if (depth >= PBU_MAX_DEPTH)
				return CAIRN_EBAD_REQUEST;
			if (!pb_make_string_substream(&is, &sub))
				return CAIRN_EBAD_REQUEST;
			err = pbu_walk(it.submsg_desc, sub.state,
				       sub.bytes_left, depth + 1);
			if (err)
				return err;
			if (!pb_close_string_substream(&is, &sub))
				return CAIRN_EBAD_REQUEST;
		} else if (!pb_skip_field(&is, wt)) {
			return CAIRN_EBAD_REQUEST;
		}
	}
	return 0;
}

int pbu_decode(const pb_msgdesc_t *d, void *msg, const uint8_t *buf, size_t len)
{
	pb_istream_t is;
	int err = 0;

	pbslice_clear(d, msg);
	if (len && !buf)
		err = CAIRN_EBAD_REQUEST;
	if (!err)
		err = pbu_walk(d, buf, len, 0);
	if (err) {
		/* Decoding nothing gives msg nanopb's defaults (NULL
		 * pointers), so the caller may still pb_release() it. */
		is = pbslice_istream(NULL, 0);
		if (!pb_decode(&is, d, msg))
			pb_release(d, msg);
		return err;
	}
	is = pbslice_istream(buf, len);
	if (!pb_decode(&is, d, msg)) {
		/* nanopb has already released what it allocated; this keeps
		 * that promise independent of the runtime's build options. */
		pb_release(d, msg);
		return CAIRN_EBAD_REQUEST;
	}
	return 0;
}

/* ---- encoding ----------------------------------------------------------- */

int pbu_encoded_size(const pb_msgdesc_t *d, const void *msg, size_t *len)
{
	if (!pb_get_encoded_size(len, d, msg))
		return -EINVAL;
	return 0;
}

int pbu_encode_alloc(const pb_msgdesc_t *d, const void *msg, uint8_t **out,
		     size_t *len)
{
	uint8_t *buf = NULL;
	size_t size, got;
	int err;

	*out = NULL;
	*len = 0;
	err = pbu_encoded_size(d, msg, &size);
	if (err)
		goto fail;
	buf = malloc(size ? size : 1);
	if (!buf) {
		err = -ENOMEM;
		goto fail;
	}
	err = pbu_encode_to(d, msg, buf, size, &got);
	if (err || got != size) {
		/* A callback that writes differently on its second run. */
		err = -EINVAL;
		goto fail;
	}
	*out = buf;
	*len = size;
	return 0;
fail:
	free(buf);
	return err;
}

int pbu_encode_to(const pb_msgdesc_t *d, const void *msg, uint8_t *buf,
		  size_t cap, size_t *len)
{
	pb_ostream_t os = pb_ostream_from_buffer(buf, cap);

	*len = 0;
	if (!pb_encode(&os, d, msg)) {
		/* nanopb's only way to say "did not fit". */
		if (os.errmsg && !strcmp(os.errmsg, "stream full"))
			return -ENOSPC;
		return -EINVAL;
	}
	*len = os.bytes_written;
	return 0;
}

/* ---- repeated callback fields: encode ----------------------------------- */

static void pbu_kv_to_msg(const struct pbu_kv *kv, mvccpb_KeyValue *m)
{
	memset(m, 0, sizeof(*m));
	m->key.p = kv->key;
	m->key.n = kv->key_len;
	m->create_revision = kv->create_rev;
	m->mod_revision = kv->mod_rev;
	m->version = kv->version;
	m->value.p = kv->value;
	m->value.n = kv->value_len;
	m->lease = kv->lease;
}

static bool pbu_enc_kvs(pb_ostream_t *os, const pb_field_t *field,
			void *const *arg)
{
	const struct pbu_list *l = *arg;
	const struct pbu_kv *kvs = l->items;
	mvccpb_KeyValue m;

	for (size_t i = 0; i < l->n; i++) {
		pbu_kv_to_msg(&kvs[i], &m);
		if (!pb_encode_tag_for_field(os, field) ||
		    !pb_encode_submessage(os, mvccpb_KeyValue_fields, &m))
			return false;
	}
	return true;
}

static bool pbu_enc_events(pb_ostream_t *os, const pb_field_t *field,
			   void *const *arg)
{
	const struct pbu_list *l = *arg;
	const struct pbu_event *evs = l->items;
	mvccpb_Event m;

	for (size_t i = 0; i < l->n; i++) {
		memset(&m, 0, sizeof(m));
		m.type = (mvccpb_Event_EventType)evs[i].type;
		m.has_kv = true;
		pbu_kv_to_msg(&evs[i].kv, &m.kv);
		if (evs[i].prev_kv) {
			m.has_prev_kv = true;
			pbu_kv_to_msg(evs[i].prev_kv, &m.prev_kv);
		}
		if (!pb_encode_tag_for_field(os, field) ||
		    !pb_encode_submessage(os, mvccpb_Event_fields, &m))
			return false;
	}
	return true;
}

static bool pbu_enc_bytes(pb_ostream_t *os, const pb_field_t *field,
			  void *const *arg)
{
	const struct pbu_list *l = *arg;
	const struct pbslice *v = l->items;

	for (size_t i = 0; i < l->n; i++) {
		if (v[i].n && !v[i].p)
			PB_RETURN_ERROR(os, "pbslice without bytes");
		if (!pb_encode_tag_for_field(os, field) ||
		    !pb_encode_string(os, v[i].n ? v[i].p : (const uint8_t *)"",
				      v[i].n))
			return false;
	}
	return true;
}

static bool pbu_enc_leases(pb_ostream_t *os, const pb_field_t *field,
			   void *const *arg)
{
	const struct pbu_list *l = *arg;
	const int64_t *ids = l->items;
	etcdserverpb_LeaseStatus m;

	for (size_t i = 0; i < l->n; i++) {
		m.ID = ids[i];
		if (!pb_encode_tag_for_field(os, field) ||
		    !pb_encode_submessage(os, etcdserverpb_LeaseStatus_fields,
					  &m))
			return false;
	}
	return true;
}

static void
pbu_set(pb_callback_t *cb, struct pbu_list *l, const void *items, size_t n,
	bool (*enc)(pb_ostream_t *, const pb_field_t *, void *const *))
{
	l->items = items;
	l->n = n;
	cb->funcs.encode = enc;
	cb->arg = l;
}

void pbu_set_kvs(pb_callback_t *cb, struct pbu_list *l,
		 const struct pbu_kv *kvs, size_t n)
{
	pbu_set(cb, l, kvs, n, pbu_enc_kvs);
}

void pbu_set_events(pb_callback_t *cb, struct pbu_list *l,
		    const struct pbu_event *evs, size_t n)
{
	pbu_set(cb, l, evs, n, pbu_enc_events);
}

void pbu_set_bytes_list(pb_callback_t *cb, struct pbu_list *l,
			const struct pbslice *v, size_t n)
{
	pbu_set(cb, l, v, n, pbu_enc_bytes);
}

void pbu_set_leases(pb_callback_t *cb, struct pbu_list *l, const int64_t *ids,
		    size_t n)
{
	pbu_set(cb, l, ids, n, pbu_enc_leases);
}

/* ---- repeated callback fields: decode ----------------------------------- */

static bool pbu_dec_kv(pb_istream_t *is, const pb_field_t *field, void **arg)
{
	const struct pbu_kv_sink *s = *arg;
	mvccpb_KeyValue m = mvccpb_KeyValue_init_zero;
	struct pbu_kv kv;

	(void)field;
	if (!pb_decode(is, mvccpb_KeyValue_fields, &m))
		return false;
	kv.key = m.key.p;
	kv.key_len = m.key.n;
	kv.value = m.value.p;
	kv.value_len = m.value.n;
	kv.create_rev = m.create_revision;
	kv.mod_rev = m.mod_revision;
	kv.version = m.version;
	kv.lease = m.lease;
	if (s->fn(s->arg, &kv))
		PB_RETURN_ERROR(is, "kv sink stopped");
	return true;
}

static bool pbu_dec_bytes(pb_istream_t *is, const pb_field_t *field, void **arg)
{
	const struct pbu_bytes_sink *s = *arg;
	struct pbslice v;

	(void)field;
	if (!pbslice_take(is, &v))
		return false;
	if (s->fn(s->arg, v.p, v.n))
		PB_RETURN_ERROR(is, "bytes sink stopped");
	return true;
}

void pbu_sink_kvs(pb_callback_t *cb, struct pbu_kv_sink *sink)
{
	cb->funcs.decode = pbu_dec_kv;
	cb->arg = sink;
}

void pbu_sink_bytes(pb_callback_t *cb, struct pbu_bytes_sink *sink)
{
	cb->funcs.decode = pbu_dec_bytes;
	cb->arg = sink;
}

/* ---- InternalRaftRequest ------------------------------------------------ */

static size_t pbu_varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* Is field_no a submessage field of InternalRaftRequest (not the header)? */
static bool pbu_internal_field_ok(uint32_t field_no)
{
	pb_field_iter_t it;

	if (field_no == PBU_INTERNAL_HEADER_FIELD)
		return false;
	if (!pb_field_iter_begin_const(
		    &it, etcdserverpb_InternalRaftRequest_fields, pbu_shadow))
		return false;
	return pb_field_iter_find(&it, field_no) && PB_LTYPE_IS_SUBMSG(it.type);
}

int pbu_wrap_internal(uint64_t id, uint32_t field_no, const uint8_t *req,
		      size_t req_len, uint8_t **out, size_t *out_len)
{
	uint8_t *buf = NULL;
	size_t hdr_len, size;
	pb_ostream_t os;
	int err = -EINVAL;

	*out = NULL;
	*out_len = 0;
	if (!pbu_internal_field_ok(field_no) || (req_len && !req))
		goto fail;
	/* RequestHeader{ID: id}: proto3 omits a zero ID. */
	hdr_len = id ? 1 + pbu_varint_len(id) : 0;
	size = pbu_varint_len(PBU_INTERNAL_HEADER_FIELD << 3) +
	       pbu_varint_len(hdr_len) + hdr_len +
	       pbu_varint_len((uint64_t)field_no << 3) +
	       pbu_varint_len(req_len) + req_len;
	buf = malloc(size);
	if (!buf) {
		err = -ENOMEM;
		goto fail;
	}
	os = pb_ostream_from_buffer(buf, size);
	if (!pb_encode_tag(&os, PB_WT_STRING, PBU_INTERNAL_HEADER_FIELD) ||
	    !pb_encode_varint(&os, hdr_len) ||
	    (id && (!pb_encode_tag(&os, PB_WT_VARINT, 1) ||
		    !pb_encode_varint(&os, id))) ||
	    !pb_encode_tag(&os, PB_WT_STRING, field_no) ||
	    !pb_encode_string(&os, req_len ? req : (const uint8_t *)"",
			      req_len) ||
	    os.bytes_written != size)
		goto fail; /* cannot happen: size is exact */
	*out = buf;
	*out_len = size;
	return 0;
fail:
	free(buf);
	return err;
}

/* Read RequestHeader.ID (field 1) from a header submessage. */
static bool pbu_header_id(pb_istream_t *sub, uint64_t *id)
{
	while (sub->bytes_left) {
		pb_wire_type_t wt;
		uint32_t tag;
		bool eof;

		if (!pb_decode_tag(sub, &wt, &tag, &eof))
			return false;
		if (tag == 1 && wt == PB_WT_VARINT) {
			if (!pb_decode_varint(sub, id))
				return false;
		} else if (!pb_skip_field(sub, wt)) {
			return false;
		}
	}
	return true;
}

int pbu_unwrap_internal(const uint8_t *buf, size_t len, uint64_t *id,
			uint32_t *field_no, const uint8_t **req,
			size_t *req_len)
{
	pb_istream_t is = pbslice_istream(buf, len);

	*id = 0;
	*field_no = 0;
	*req = NULL;
	*req_len = 0;
	while (is.bytes_left) {
		pb_wire_type_t wt;
		uint32_t tag;
		bool eof;
		pb_istream_t sub;

		if (!pb_decode_tag(&is, &wt, &tag, &eof))
			return CAIRN_EBAD_REQUEST;
		if (tag == 1 && wt == PB_WT_VARINT) { /* legacy ID */
			if (!pb_decode_varint(&is, id))
				return CAIRN_EBAD_REQUEST;
			continue;
		}
		if (wt != PB_WT_STRING) {
			if (!pb_skip_field(&is, wt))
				return CAIRN_EBAD_REQUEST;
			continue;
		}
		if (!pb_make_string_substream(&is, &sub))
			return CAIRN_EBAD_REQUEST;
		if (tag == PBU_INTERNAL_HEADER_FIELD) {
			if (!pbu_header_id(&sub, id))
				return CAIRN_EBAD_REQUEST;
		} else if (pbu_internal_field_ok(tag)) {
			*field_no = tag;
			*req = sub.state; /* a buffer stream: state is the cursor */
			*req_len = sub.bytes_left;
			sub.state = (uint8_t *)sub.state + sub.bytes_left;
			sub.bytes_left = 0;
		} else if (!pb_read(&sub, NULL, sub.bytes_left)) {
			return CAIRN_EBAD_REQUEST;
		}
		if (!pb_close_string_substream(&is, &sub))
			return CAIRN_EBAD_REQUEST;
	}
	return *field_no ? 0 : CAIRN_EBAD_REQUEST;
}
