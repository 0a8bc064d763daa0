#include "net/rpcreply.h"

#include <stdlib.h>

#include "core/apply.h"
#include "core/errors.h"
#include "net/grpc.h"
#include "net/proto/pbutil.h"

void rpc_fail(struct grpc_call *call, int err)
{
	grpc_call_fail(call, cairn_grpc_status(err), cairn_strerror(err));
}

void rpc_reply_msg(struct grpc_call *call, const pb_msgdesc_t *d,
		   const void *m)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	int err = pbu_encode_alloc(d, m, &buf, &len);

	if (err < 0)
		rpc_fail(call, err);
	else
		grpc_call_reply(call, buf, len);
	free(buf);
}

void rpc_reply_out(struct grpc_call *call, struct apply_out *out)
{
	if (out->err)
		rpc_fail(call, out->err);
	else
		grpc_call_reply(call, out->buf, out->len);
	free(out->buf);
	out->buf = NULL;
}

void rpc_done(void *call, struct apply_out *out)
{
	rpc_reply_out(call, out);
}
