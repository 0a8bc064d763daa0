/* watchservice: etcd's Watch service — the bidirectional stream
 * /etcdserverpb.Watch/Watch over the watch hub (core/watch.h).
 *
 * Each gRPC stream is one hub stream: WatchCreateRequest,
 * WatchCancelRequest and WatchProgressRequest go to it; its responses are
 * encoded as WatchResponse (header revision, events with prev_kv when
 * asked, fragments of at most --max-request-bytes when the watcher asked
 * for fragment) and sent with the transport's back-pressure: a -EAGAIN
 * from grpc_call_send stops the stream until the call is writable again.
 * A client half-close ends the stream with OK, as etcd does.
 */
#ifndef CAIRN_NET_WATCHSERVICE_H
#define CAIRN_NET_WATCHSERVICE_H

#include <stdint.h>

struct grpc_server;
struct server;

/* Create the hub over srv's MVCC (its change hook feeds it; it is freed
 * by server_close through server_on_close) and register the Watch
 * method. srv and gs must outlive the registration; gs must be destroyed
 * before srv is closed (as main does). The periodic progress interval is
 * the config's --experimental-watch-progress-notify-interval.
 * 0, -ENOMEM, -ENOSPC (no server hook slot left), -EEXIST. */
int watchservice_register(struct grpc_server *gs, struct server *srv);


#endif
