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
 * watchservice_progress_ms() at the time of the call.
 * 0, -ENOMEM, -ENOSPC (no server hook slot left), -EEXIST. */
int watchservice_register(struct grpc_server *gs, struct server *srv);

/* The periodic progress_notify interval in ms: etcd's
 * --experimental-watch-progress-notify-interval (a Go duration, "10m",
 * "5s", "500ms", "1m30s") looked up in argv (--flag=value or --flag
 * value) and then in ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL;
 * default 10 minutes. The config module accepts and ignores the flag, so
 * main calls this with its argv before watchservice_register.
 * Returns 0, or -EINVAL for a malformed or non-positive duration (then
 * the interval is unchanged). */
int watchservice_progress_from_args(int argc, char **argv);
uint64_t watchservice_progress_ms(void);

#endif
