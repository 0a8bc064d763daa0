/* kvservice: etcd's gRPC services on top of the server — KV (Range, Put,
 * DeleteRange, Txn, Compact), Maintenance (Alarm, Defragment), and through
 * net/clusterservice.h the Cluster service, Status and MoveLeader — and
 * GET /health and /version on the HTTP/1.1 side of the client port.
 *
 * Each handler decodes the request (nanopb), runs etcd's API-level checks,
 * and either serves it locally (reads) or proposes it through raft
 * (writes), replying when the server calls back. Methods not registered
 * here answer UNIMPLEMENTED (the gRPC layer does that).
 */
#ifndef CAIRN_NET_KVSERVICE_H
#define CAIRN_NET_KVSERVICE_H

struct grpc_server;
struct server;

/* Register every method and HTTP endpoint (clusterservice_register's
 * too). srv and gs must outlive the registrations. 0 or -ENOMEM. */
int kvservice_register(struct grpc_server *gs, struct server *srv);

#endif
