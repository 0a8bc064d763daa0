/* testfault: the TEST-ONLY fault switch, for cluster tests (never for
 * production use). Enabled only by cairn's --experimental-test-faults;
 * without it the route below is never registered (404).
 *
 *   PUT /cairn/test/drop   body: comma-separated hex member ids
 *                          ("8e9e05c52164694d,91bc3c398fb3c146"), spaces
 *                          and newlines allowed; empty body: heal.
 *
 * From then on this member drops the raft messages it would send to, and
 * those it receives from, the listed members (peer_set_drop_filter():
 * snapshot streams and peer requests are not cut). Listing this member's
 * own id cuts it off from everyone. Each PUT replaces the previous set.
 * Answers 200 {"drop":["<id>",...]}, 400 for a bad body, 405 for another
 * method, 503 before the peer transport exists.
 *
 * Threading: loop thread (evhttp callbacks).
 */
#ifndef CAIRN_NET_TESTFAULT_H
#define CAIRN_NET_TESTFAULT_H

struct evhttp;
struct server;

/* Register PUT /cairn/test/drop on http (borrowed) for srv. The state is
 * freed by a server_on_close hook, which also heals. 0, -EINVAL (http
 * NULL), -ENOMEM, or -ENOSPC (no close hook slot left). */
int testfault_register(struct evhttp *http, struct server *srv);

#endif
