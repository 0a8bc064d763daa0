/* snapshot: the Maintenance.Snapshot stream (etcdctl snapshot save).
 *
 * Streams a consistent copy of the engine's data in etcd 3.4's form: 32 KiB
 * blobs, remaining_bytes counting down, then the SHA-256 of the copy as a
 * last blob. For the bolt engine the copy is a bbolt file that etcdctl
 * snapshot status/restore and etcd read; other engines send their own
 * format. The copy is made on a helper thread (bio queue
 * BIO_QUEUE_SNAP) into a temporary file beside the db, removed after.
 */
#ifndef CAIRN_NET_SNAPSHOT_H
#define CAIRN_NET_SNAPSHOT_H

struct grpc_server;
struct server;

/* Register /etcdserverpb.Maintenance/Snapshot. 0, or the registration's
 * -errno. srv must outlive gs's calls. */
int snapshot_register(struct grpc_server *gs, struct server *srv);

#endif
