/* snapshot: Maintenance.Snapshot — stream a consistent copy of the engine.
 *
 * As etcd 3.4 does: the copy is sent in 32 KiB blobs with remaining_bytes
 * counting down, then one last message whose blob is the SHA-256 of
 * everything sent (etcdctl snapshot restore checks it).
 *
 * States of one transfer:
 *
 *   COPYING  --bio job done-->  SENDING  --all sent-->  finished
 *      |                          |  ^ -EAGAIN: wait for the writable cb
 *      +--call died--> (job still runs) --done--> freed
 *
 * Invariants:
 *  1. The engine copy is written on a helper thread into a temporary file
 *     next to the db; the loop only reads that file back, a chunk at a
 *     time, so a large db never sits in memory or blocks the loop.
 *  2. The transfer is freed exactly once: when the call is over and no
 *     bio job refers to it.
 */
#include "net/snapshot.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/server.h"
#include "core/util/bio.h"
#include "core/util/log.h"
#include "engines/engine.h"
#include "net/grpc.h"
#include "net/proto/pbutil.h"
#include "net/proto/rpc.pb.h"
#include "net/rpcreply.h"

#define SNAP_CHUNK (32 * 1024)

struct snap_xfer {
	struct server *srv;
	struct grpc_call *call; /* NULL once the call ended */
	struct bio_job job;
	bool job_running, started;
	int fd;
	char path[4200];
	uint64_t size, sent;
	EVP_MD_CTX *sha;
	uint8_t chunk[SNAP_CHUNK];
	uint8_t msg[SNAP_CHUNK + 64];
};

static void xfer_free(struct snap_xfer *x)
{
	if (x->sha)
		EVP_MD_CTX_free(x->sha);
	if (x->fd >= 0)
		close(x->fd);
	if (x->path[0])
		unlink(x->path);
	free(x);
}

/* End the call (if still ours) and free the transfer unless the helper
 * thread still uses it (inv. 2). */
static void xfer_end(struct snap_xfer *x, int err)
{
	if (x->call) {
		grpc_call_set_writable_cb(x->call, NULL, NULL);
		grpc_call_set_user(x->call, NULL);
		if (err)
			rpc_fail(x->call, err);
		else
			grpc_call_finish(x->call, GRPC_OK, NULL);
		x->call = NULL;
	}
	if (!x->job_running)
		xfer_free(x);
}

/* Encode and queue one SnapshotResponse; 0, -EAGAIN (queued, wait), or
 * an error that ends the transfer. */
static int send_blob(struct snap_xfer *x, const uint8_t *blob, size_t n,
		     uint64_t remaining)
{
	etcdserverpb_SnapshotResponse resp = {0};
	size_t len = 0;
	int err;

	resp.remaining_bytes = remaining;
	resp.blob.p = blob;
	resp.blob.n = n;
	err = pbu_encode_to(&etcdserverpb_SnapshotResponse_msg, &resp, x->msg,
			    sizeof(x->msg), &len);
	if (err < 0)
		return err;
	return grpc_call_send(x->call, x->msg, len);
}

static void pump(struct snap_xfer *x);

static void on_writable(struct grpc_call *call, void *arg)
{
	(void)call;
	pump(arg);
}

/* Send chunks until the stream is full, then the hash, then finish. */
static void pump(struct snap_xfer *x)
{
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int dlen = 0;
	int err = 0;

	while (x->sent < x->size) {
		size_t want = x->size - x->sent < SNAP_CHUNK
				      ? (size_t)(x->size - x->sent)
				      : SNAP_CHUNK;
		ssize_t n = pread(x->fd, x->chunk, want, (off_t)x->sent);

		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			break;
		}
		x->sent += (uint64_t)n;
		EVP_DigestUpdate(x->sha, x->chunk, (size_t)n);
		err = send_blob(x, x->chunk, (size_t)n, x->size - x->sent);
		if (err == -EAGAIN) {
			grpc_call_set_writable_cb(x->call, on_writable, x);
			return;
		}
		if (err < 0)
			break;
	}
	if (err == 0) {
		EVP_DigestFinal_ex(x->sha, digest, &dlen);
		err = send_blob(x, digest, dlen, 0);
		if (err == -EAGAIN)
			err = 0; /* queued: the trailers follow it */
	}
	if (err < 0 && err != -EPIPE)
		log_warn("snapshot: %s", cairn_strerror(err));
	xfer_end(x, err == -EPIPE ? 0 : err);
}

static void copy_work(struct bio_job *j)
{
	struct snap_xfer *x = j->data;
	struct engine_handle *h = server_engine(x->srv);
	uint64_t written = 0;

	j->status = engine_snapshot(h, x->fd, &written);
	x->size = written;
}

static void copy_done(struct bio_job *j)
{
	struct snap_xfer *x = j->data;

	x->job_running = false;
	if (!x->call) { /* the client went away meanwhile */
		xfer_free(x);
		return;
	}
	if (j->status < 0) {
		log_warn("snapshot: engine copy failed: %s",
			 cairn_strerror(j->status));
		xfer_end(x, j->status);
		return;
	}
	log_info("sending a snapshot of %llu bytes to %s",
		 (unsigned long long)x->size, grpc_call_peer(x->call));
	x->sha = EVP_MD_CTX_new();
	if (!x->sha || EVP_DigestInit_ex(x->sha, EVP_sha256(), NULL) != 1) {
		xfer_end(x, -ENOMEM);
		return;
	}
	pump(x);
}

static int start_copy(struct snap_xfer *x)
{
	const struct config *c = server_config(x->srv);

	int err = server_commit(x->srv); /* the copy shows every applied write */

	if (err < 0)
		return err;
	snprintf(x->path, sizeof(x->path), "%s/member/snap/db.send-XXXXXX",
		 c->data_dir);
	x->fd = mkstemp(x->path);
	if (x->fd < 0) {
		x->path[0] = '\0';
		return -errno;
	}
	x->job.work = copy_work;
	x->job.done = copy_done;
	x->job.data = x;
	x->job_running = true;
	if (bio_submit(server_bio(x->srv), BIO_QUEUE_SNAP, &x->job) < 0) {
		x->job_running = false;
		return CAIRN_ESTOPPED;
	}
	return 0;
}

static void snap_open(struct grpc_call *call, void *ctx)
{
	struct snap_xfer *x = calloc(1, sizeof(*x));

	if (!x) {
		rpc_fail(call, -ENOMEM);
		return;
	}
	x->srv = ctx;
	x->call = call;
	x->fd = -1;
	grpc_call_set_user(call, x);
}

static void snap_message(struct grpc_call *call, const uint8_t *msg,
			 size_t len, void *ctx)
{
	struct snap_xfer *x = grpc_call_get_user(call);
	int err;

	(void)msg;
	(void)len;
	(void)ctx;
	if (!x || x->started)
		return; /* SnapshotRequest is empty; one is enough */
	x->started = true;
	if ((err = start_copy(x)) < 0)
		xfer_end(x, err);
}

static void snap_close(struct grpc_call *call, void *ctx)
{
	struct snap_xfer *x = grpc_call_get_user(call);

	(void)ctx;
	if (!x)
		return;
	if (grpc_call_alive(call) && x->started)
		return; /* half-close after the request: keep sending */
	/* dead, or closed without a request */
	xfer_end(x, 0);
}

int snapshot_register(struct grpc_server *gs, struct server *srv)
{
	static const struct grpc_stream_ops ops = {snap_open, snap_message,
						   snap_close};

	return grpc_server_register_stream(
		gs, "/etcdserverpb.Maintenance/Snapshot", &ops, srv);
}
