/* clusterservice: etcd's Cluster service (MemberAdd, MemberRemove,
 * MemberUpdate, MemberPromote, MemberList) and the Maintenance methods
 * about the cluster (Status, MoveLeader), over core/server.h's membership
 * API; and etcd 3.4's learner rule for every service.
 *
 * Learners (etcd 3.4's gRPC interceptor): a member that is a learner of
 * the applied membership serves only Maintenance/Status and serializable
 * Range; every other RPC gets "etcdserver: rpc not supported for learner"
 * (CAIRN_ENOT_SUPPORTED_FOR_LEARNER, UNAVAILABLE), streams included
 * (except Maintenance/Snapshot). A member that was removed answers
 * CAIRN_EMEMBER_REMOVED.
 */
#ifndef CAIRN_NET_CLUSTERSERVICE_H
#define CAIRN_NET_CLUSTERSERVICE_H

#include <stdbool.h>

struct grpc_call;
struct grpc_server;
struct server;

/* Register the Cluster methods and Maintenance Status / MoveLeader. srv
 * and gs must outlive the registrations. 0, -EEXIST, -ENOMEM.
 * (net/kvservice.c's kvservice_register calls it.) */
int clusterservice_register(struct grpc_server *gs, struct server *srv);

/* For the start of every handler (unary, or a stream's open) that a
 * learner must refuse: when srv is a learner, or was removed, end call
 * with the error and return true (the handler then returns at once);
 * else false. */
bool cluster_refuse(struct server *srv, struct grpc_call *call);

#endif
