/* pbslice: zero-copy bytes fields for nanopb (contract in pbslice.h).
 *
 * Invariants:
 *  1. A decoded slice points into the caller's buffer, never into nanopb's
 *     temporaries: only a stream made by pbslice_istream() (recognised by
 *     its read callback, which string substreams inherit) may yield one.
 *  2. A slice field consumes its whole length-delimited payload on decode,
 *     so nanopb calls the callback exactly once per occurrence (a later
 *     occurrence of the same field replaces the slice, as protobuf's
 *     "last one wins" requires).
 *  3. Only callback fields of type bytes that are not repeated are slices;
 *     every other callback field is a pb_callback_t and is handed to
 *     pb_default_field_callback() untouched.
 */
#include <string.h>

#include <pb.h>
#include <pb_common.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include "net/proto/pbslice.h"

/* Every generated header, for the prototypes of the <Msg>_callback
 * functions defined at the bottom of this file. */
#include "net/proto/auth.pb.h"
#include "net/proto/etcdserver.pb.h"
#include "net/proto/kv.pb.h"
#include "net/proto/lease.pb.h"
#include "net/proto/raft_internal.pb.h"
#include "net/proto/rpc.pb.h"

/* The same as nanopb's private buf_read(); being ours is what lets a
 * callback tell a pbslice_istream (or a substream of one) apart. */
static bool pbslice_buf_read(pb_istream_t *is, pb_byte_t *buf, size_t count)
{
	const pb_byte_t *src = is->state;

	is->state = (pb_byte_t *)is->state + count;
	if (buf)
		memcpy(buf, src, count);
	return true;
}

pb_istream_t pbslice_istream(const uint8_t *buf, size_t len)
{
	pb_istream_t is = pb_istream_from_buffer(buf, len);

	is.callback = pbslice_buf_read;
	return is;
}

static bool pbslice_is_slice(const pb_field_t *field)
{
	return PB_ATYPE(field->type) == PB_ATYPE_CALLBACK &&
	       PB_LTYPE(field->type) == PB_LTYPE_BYTES &&
	       PB_HTYPE(field->type) != PB_HTYPE_REPEATED;
}

bool pbslice_take(pb_istream_t *is, struct pbslice *out)
{
	/* Invariant 1: a scalar wire type on a bytes tag arrives in a stack
	 * copy made with nanopb's own reader; reject it. */
	if (is->callback != pbslice_buf_read)
		PB_RETURN_ERROR(is, "pbslice needs pbslice_istream");
	out->p = is->bytes_left ? is->state : NULL;
	out->n = is->bytes_left;
	/* Invariant 2: consume everything without copying. */
	is->state = (pb_byte_t *)is->state + is->bytes_left;
	is->bytes_left = 0;
	return true;
}

static bool pbslice_decode(pb_istream_t *is, const pb_field_t *field)
{
	if (!pbslice_take(is, field->pData))
		return false;
	if (PB_HTYPE(field->type) == PB_HTYPE_ONEOF)
		*(pb_size_t *)field->pSize = field->tag;
	return true;
}

static bool pbslice_encode(pb_ostream_t *os, const pb_field_t *field)
{
	const struct pbslice *s = field->pData;

	if (PB_HTYPE(field->type) == PB_HTYPE_ONEOF) {
		if (*(const pb_size_t *)field->pSize != field->tag)
			return true;
	} else if (s->n == 0) {
		return true; /* proto3: a default value is not on the wire */
	}
	if (s->n && !s->p)
		PB_RETURN_ERROR(os, "pbslice without bytes");
	if (!pb_encode_tag_for_field(os, field))
		return false;
	/* An empty oneof member may have p == NULL; never hand memcpy NULL. */
	return pb_encode_string(os, s->n ? s->p : (const uint8_t *)"", s->n);
}

bool pbslice_field_cb(pb_istream_t *is, pb_ostream_t *os,
		      const pb_field_t *field)
{
	if (!pbslice_is_slice(field))
		return pb_default_field_callback(is, os, field);
	if (is)
		return pbslice_decode(is, field);
	if (os)
		return pbslice_encode(os, field);
	return true;
}

void pbslice_clear(const pb_msgdesc_t *desc, void *msg)
{
	pb_field_iter_t it;

	if (!pb_field_iter_begin(&it, desc, msg))
		return;
	do {
		if (pbslice_is_slice(&it)) {
			memset(it.pData, 0, sizeof(struct pbslice));
		} else if (PB_ATYPE(it.type) == PB_ATYPE_STATIC &&
			   PB_LTYPE_IS_SUBMSG(it.type) &&
			   PB_HTYPE(it.type) != PB_HTYPE_REPEATED &&
			   PB_HTYPE(it.type) != PB_HTYPE_ONEOF) {
			/* A oneof submessage is zeroed by nanopb itself when
			 * it is selected; a repeated one is initialised per
			 * element. */
			pbslice_clear(it.submsg_desc, it.pData);
		}
	} while (pb_field_iter_next(&it));
}

/* One definition per generated "extern bool <Msg>_callback(...)".
 * net/proto/pbslice_list.h is written by gen-callbacks.sh from the
 * generated headers, so the set always matches what nanopb declared. */
#define PBSLICE_MSG(msg)                                                       \
	bool msg##_callback(pb_istream_t *is, pb_ostream_t *os,                \
			    const pb_field_t *field)                           \
	{                                                                      \
		return pbslice_field_cb(is, os, field);                        \
	}
#include "net/proto/pbslice_list.h"
#undef PBSLICE_MSG
