/* grpc_wire: the pure, socket-free parts of gRPC over HTTP/2.
 *
 * Used by net/ (grpc.c, h2conn.c), cairn-bench's client (tools/bench)
 * and the unit tests. No I/O, no event loop, no global state: every
 * function here can be tested with byte strings alone.
 *
 * Length-prefixed message (gRPC "Length-Prefixed-Message"):
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       1     compressed flag: 0 plain, 1 compressed by grpc-encoding
 *   1       4     message length N, big-endian, unsigned
 *   5       N     message bytes
 */
#ifndef CAIRN_NET_GRPC_WIRE_H
#define CAIRN_NET_GRPC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRPC_WIRE_HDR_LEN 5
/* First allocation for a message body; it grows as bytes arrive. */
#define GRPC_FRAMER_FIRST_CHUNK 16384u

/* Write the 5-byte prefix for a message of len bytes (flag 0) into hdr. */
void grpc_wire_put_hdr(uint8_t hdr[GRPC_WIRE_HDR_LEN], uint32_t len);

/* Incremental parser of a stream of length-prefixed messages.
 *
 * States: HDR (collecting the 5-byte prefix) -> BODY (collecting N bytes)
 * -> back to HDR once the message has been handed out; any error is final.
 *
 *   HDR --5 bytes--> BODY --N bytes--> (message) --> HDR
 *    \--------------\--------------> ERROR (too large / compressed)
 */
enum grpc_framer_err {
	GRPC_FRAMER_OK = 0,
	GRPC_FRAMER_TOO_LARGE = 1,  /* prefix announced more than max */
	GRPC_FRAMER_COMPRESSED = 2, /* compressed flag set */
	GRPC_FRAMER_BAD_FLAG = 3,   /* flag byte neither 0 nor 1 */
	GRPC_FRAMER_NOMEM = 4,
};

struct grpc_framer {
	size_t max;	  /* largest message accepted */
	uint8_t hdr[GRPC_WIRE_HDR_LEN];
	size_t hdr_got;	  /* bytes of hdr collected */
	uint32_t len;	  /* announced length of the current message */
	uint8_t *buf;	  /* body of the current message (malloc'ed) */
	size_t cap;	  /* room in buf (plus 1), grows up to len */
	size_t got;	  /* body bytes collected */
	int err;	  /* enum grpc_framer_err, sticky */
	uint32_t err_len; /* the announced length when TOO_LARGE */
};

/* Start a framer that accepts messages of at most max bytes. */
void grpc_framer_init(struct grpc_framer *f, size_t max);

/* Free the body buffer (if any). The framer may be re-initialised. */
void grpc_framer_reset(struct grpc_framer *f);

/* Consume up to n bytes of p. Returns the number of bytes consumed; stops
 * early right after a message is complete (then *msg and *len are set, and
 * the caller owns *msg: free() it; an empty message gives a non-NULL
 * 1-byte allocation with *len == 0) or on error (f->err set, the rest of
 * the input should be discarded). With no complete message, *msg is NULL.
 */
size_t grpc_framer_feed(struct grpc_framer *f, const uint8_t *p, size_t n,
			uint8_t **msg, size_t *len);

/* True when the framer is between messages (no partial prefix or body). */
bool grpc_framer_idle(const struct grpc_framer *f);

/* Percent-encode a grpc-message value as the gRPC spec says: bytes outside
 * 0x20..0x7E, and '%', become "%XX" (upper-case hex). Returns a malloc'ed
 * NUL-terminated string the caller frees, or NULL when out of memory. */
char *grpc_wire_pct_encode(const char *msg);

/* Decode a percent-encoded grpc-message (invalid escapes are kept as they
 * are, as the spec asks). Returns malloc'ed string or NULL (no memory). */
char *grpc_wire_pct_decode(const char *s);

/* Split ":path" "/pkg.Service/Method" into service ("pkg.Service") and
 * method ("Method"), pointers into path with lengths. Returns 0, or
 * -EINVAL when path is not "/" service "/" method with both non-empty
 * (grpc-go then answers "malformed method name"). */
int grpc_wire_split_path(const char *path, const char **svc, size_t *svc_len,
			 const char **meth, size_t *meth_len);

/* Parse a grpc-timeout value ("1-8 digits" + unit H M S m u n) into
 * microseconds (rounded up, saturating). Returns 0 or -EINVAL. */
int grpc_wire_parse_timeout(const char *s, uint64_t *usec);

#endif
