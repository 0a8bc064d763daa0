/* leaseservice: etcd's Lease gRPC service — LeaseGrant, LeaseRevoke,
 * LeaseKeepAlive (bidirectional stream), LeaseTimeToLive, LeaseLeases —
 * over the lessor (core/lease.h).
 *
 * Grant and Revoke go through raft (the lessor's extension applier
 * answers them); a Grant without an ID gets a random positive one here,
 * before the proposal, so every member applies the same ID. KeepAlive,
 * TimeToLive and Leases are answered by the local lessor (the leader's,
 * which tracks expiry); a KeepAlive for an unknown lease answers TTL 0
 * and TimeToLive TTL -1, as etcd.
 */
#ifndef CAIRN_NET_LEASESERVICE_H
#define CAIRN_NET_LEASESERVICE_H

struct grpc_server;
struct server;

/* Start srv's lessor (lessor_start: call after server_open, before the
 * loop runs) and register the Lease methods on gs. gs must be destroyed
 * before srv is closed (the lessor goes with srv; open KeepAlive streams
 * are ended when gs is destroyed). 0, or lessor_start's errors, -EEXIST
 * (registered twice), -ENOMEM. */
int leaseservice_register(struct grpc_server *gs, struct server *srv);

#endif
