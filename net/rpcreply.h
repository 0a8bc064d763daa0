/* rpcreply: the ways a cairn service handler ends a unary gRPC call.
 *
 * Every error goes out with etcd's gRPC status and message from the one
 * error table (core/errors.h), so client libraries see etcd's text.
 */
#ifndef CAIRN_NET_RPCREPLY_H
#define CAIRN_NET_RPCREPLY_H

#include <pb.h>

struct apply_out;
struct grpc_call;

/* End call with err (a CAIRN_E* code or -errno). */
void rpc_fail(struct grpc_call *call, int err);

/* Encode m (of descriptor d) and reply with it, or fail with the encoding
 * error. m is only read. */
void rpc_reply_msg(struct grpc_call *call, const pb_msgdesc_t *d,
		   const void *m);

/* Reply with out->buf, or fail with out->err; frees out->buf. */
void rpc_reply_out(struct grpc_call *call, struct apply_out *out);

/* A server_done_fn whose arg is the call: rpc_reply_out. */
void rpc_done(void *call, struct apply_out *out);

#endif
