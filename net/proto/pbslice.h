/* pbslice: zero-copy bytes fields for nanopb.
 *
 * Debian's nanopb runtime is built with a 16-bit pb_size_t, so its own
 * bytes arrays stop at 64 KiB; etcd values go to 1.5 MiB. Every protobuf
 * `bytes` field in net/proto/ is therefore generated as FT_CALLBACK with
 * callback_datatype "struct pbslice" (see net/proto/cairn.options), and
 * each generated <Msg>_callback delegates to pbslice_field_cb().
 *
 * Decoding: the slice points into the input buffer (pbslice_istream()
 * only); it is valid as long as that buffer is. Nothing is allocated.
 * Encoding: a non-empty slice is written (an empty singular one is skipped,
 * as proto3 does; a oneof member is written even when empty). The bytes
 * must stay valid until pb_encode returns.
 *
 * Which fields are slices: a callback field whose protobuf type is bytes
 * and that is not repeated (singular or oneof member). Every other callback
 * field of the same message (a repeated bytes or repeated message field,
 * which are plain pb_callback_t, see cairn.options) goes to nanopb's
 * pb_default_field_callback().
 */
#ifndef CAIRN_NET_PROTO_PBSLICE_H
#define CAIRN_NET_PROTO_PBSLICE_H

#include <stddef.h>
#include <stdint.h>

struct pbslice {
	const uint8_t *p;
	size_t n;
};

#ifdef PB_H_INCLUDED
/* Only code that includes nanopb sees the functions below; the generated
 * headers include this file right after <pb.h>. */

/* An input stream over buf[0..len) whose slices may point into buf.
 * Decode with it (pbu_decode() does): on any other stream, including
 * nanopb's own pb_istream_from_buffer(), a pbslice field fails to decode
 * with "pbslice needs pbslice_istream" rather than point at memory that
 * will not outlive the call (nanopb hands scalar-wire-type values to
 * callbacks in a stack buffer). buf is borrowed, never written, and must
 * outlive every slice decoded from it. */
pb_istream_t pbslice_istream(const uint8_t *buf, size_t len);

/* Take the rest of is (a length-delimited value being decoded) as *out
 * without copying, for decode callbacks of bytes-like fields (pbutil's
 * repeated-bytes sink uses it). Fails, with is's errmsg set, unless is
 * comes from pbslice_istream(). */
bool pbslice_take(pb_istream_t *is, struct pbslice *out);

/* The one body of every generated <Msg>_callback (nanopb calls it with
 * exactly one of is/os non-NULL).
 * Decode (is != NULL): the slice becomes the field's bytes in place and,
 * for a oneof member, the oneof's which_ field is set to its tag.
 * Encode (os != NULL): tag + length + bytes; an empty singular slice is
 * skipped; a oneof member is written only when selected, even if empty;
 * a slice with n > 0 and p == NULL is an error.
 * Returns false (with the stream's errmsg) on failure. */
bool pbslice_field_cb(pb_istream_t *is, pb_ostream_t *os,
		      const pb_field_t *field);

/* Zero every pbslice field of msg and of its singular static
 * submessages, leaving pb_callback_t fields (decode callbacks the caller
 * set) alone. nanopb's pb_decode() does not initialise callback fields,
 * so this is what makes an absent bytes field read as empty. */
void pbslice_clear(const pb_msgdesc_t *desc, void *msg);
#endif

#endif
