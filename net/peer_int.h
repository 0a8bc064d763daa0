/* peer_int: what net/peer.c (streams, messages, snapshots) and
 * net/peer_req.c (requests) share. Not a public interface: the contract
 * is net/peer.h, the wire format its frame table, the invariants the list
 * at the top of net/peer.c.
 */
#ifndef CAIRN_NET_PEER_INT_H
#define CAIRN_NET_PEER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "net/peer.h"
#include "net/peer_codec.h"

#define PEER_VERSION 1
#define HDR 5 /* u32 length + u8 kind */
#define HELLO_LEN 29
#define ACK_LEN 17
#define SNAP_BEGIN_LEN 40 /* without the member ids */

enum frame_kind {
	F_HELLO = 1,
	F_HELLO_ACK = 2,
	F_MSG = 3,
	F_SNAP_BEGIN = 4,
	F_SNAP_DATA = 5,
	F_SNAP_END = 6,
	F_SNAP_ACK = 7,
	F_REQ = 8,
	F_REP = 9,
};

#define REQ_HDR 9  /* u64 id, u8 kind */
#define REP_HDR 12 /* u64 id, i32 err */
/* An answer waiting in an acceptor's socket beyond this is dropped (the
 * requester times out): a stalled requester cannot grow our memory. */
#define REP_OUT_MAX (4 * PEER_SOCK_HIGH)

enum stream_kind { STREAM_MSGS = 0, STREAM_SNAP = 1 };

enum peer_state { P_IDLE, P_CONNECTING, P_HELLO, P_UP };

enum conn_state {
	C_HELLO,
	C_MSGS,
	C_SNAP_BEGIN,
	C_SNAP_DATA,
	C_CLOSING,
	C_JOIN, /* from an unknown member: one JOIN request */
	S_CONNECT,
	S_HELLO,
	S_DATA,
	S_ACK,
	J_CONNECT, /* outbound join: connect, hello, wait for the answer */
	J_HELLO,
	J_WAIT,
};

struct peer_frame {
	struct peer_frame *next;
	bool vote;	 /* never evicted to make room (votes, requests) */
	uint64_t req_id; /* a REQ frame's request, else 0 */
	size_t len;
	uint8_t buf[];
};

struct peer {
	struct peer_transport *t;
	struct peer *next;
	uint64_t id;
	char *host;
	uint16_t port;
	struct sockaddr_storage addr;
	int addrlen;
	enum peer_state state;
	struct bufferevent *bev;
	struct event *retry_ev;
	unsigned backoff_ms;
	struct peer_frame *qhead, *qtail;
	struct peer_stats st;
	struct peer_conn *snap; /* outbound snapshot in flight */
};

struct peer_conn {
	struct peer_transport *t;
	struct peer_conn *next;
	struct bufferevent *bev;
	enum conn_state state;
	bool dead;   /* killed, waiting on the reap list (invariant 4) */
	uint64_t id; /* the hello's sender (inbound) or the target (out) */
	char name[64];
	/* Snapshot, either direction. */
	struct peer_snap_meta meta; /* ids: in conf_ids (ours) */
	uint64_t *conf_ids;
	uint64_t bytes;
	uint32_t crc;
	int fd;	    /* inbound: the file being written, or -1 */
	char *path; /* inbound: its name while we own it */
	peer_snap_read_fn read;
	void *read_arg;
	peer_snap_done_fn done; /* invariant 5 */
	void *done_arg;
	bool eof;
	/* Requests: inbound, the answers still owed (rc->c == this);
	 * outbound join, its request. */
	struct peer_reply_ctx *rcs;
	struct peer_req *jreq;
	struct peer_frame *jframe; /* the join's REQ until connected */
};

/* A request we sent (invariant 7). */
struct peer_req {
	struct peer_transport *t;
	struct peer_req *next;
	uint64_t id;
	uint64_t to;	      /* member, or 0 for a join */
	struct peer_conn *jc; /* the join's own connection */
	struct event *timer;
	peer_reply_fn cb;
	void *arg;
	int err; /* once done */
	uint8_t *resp;
	size_t len;
};

/* A request we serve: freed by peer_reply. */
struct peer_reply_ctx {
	struct peer_conn *c; /* NULL once the connection is gone */
	struct peer_reply_ctx *next;
	uint64_t id;
};

struct peer_transport {
	struct event_base *base;
	struct peer_config cfg;
	char *snap_dir;
	peer_msg_fn on_msg;
	void *arg;
	peer_snap_fn on_snap;
	void *snap_arg;
	peer_drop_fn drop;
	void *drop_arg;
	struct evconnlistener *lev;
	uint16_t port;
	struct peer *peers;
	struct peer_conn *conns, *reap;
	struct event *reap_ev;
	struct peer_transport_stats st;
	struct peer_codec codec; /* decode scratch, reused */
	/* Requests (invariant 7): pending, then done (delivered by req_ev). */
	struct peer_req *reqs, *done_head, *done_tail;
	size_t n_reqs;
	uint64_t next_req_id;
	struct event *req_ev;
	struct {
		peer_request_fn fn;
		void *arg;
	} handlers[PEER_REQ_KINDS];
};

static inline void put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static inline uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline uint64_t get_u64(const uint8_t *p)
{
	return (uint64_t)get_u32(p) << 32 | get_u32(p + 4);
}

/* net/peer.c */
struct peer *peer_find(const struct peer_transport *t, uint64_t id);
/* A frame of kind with room for plen payload bytes (malloc'd), or NULL. */
struct peer_frame *peer_frame_new(enum frame_kind kind, size_t plen);
/* Hand f to bev (which frees it once written); -ENOMEM (f freed). */
int peer_frame_write(struct bufferevent *bev, struct peer_frame *f);
int peer_write_small(struct bufferevent *bev, enum frame_kind kind,
		     const uint8_t *payload, size_t plen);
/* The next whole frame in `in`: 1 (kind, payload, plen set; the caller
 * drains HDR + plen), 0 (need more bytes), -EPROTO (bad length). */
int peer_frame_next(struct peer_transport *t, struct evbuffer *in,
		    uint8_t *kind, const uint8_t **payload, size_t *plen);
const char *peer_hello_status_str(unsigned s);
void peer_set_nodelay(struct bufferevent *bev);
struct peer_conn *peer_conn_new(struct peer_transport *t);
void peer_conn_kill(struct peer_conn *c); /* invariant 4 */
void peer_conn_free(struct peer_conn *c); /* never linked, or reaped */
/* Start connecting the outbound stream c (its state set) to addr, named
 * host:port, and link it on t->conns: 0, or -ENOMEM / -ECONNREFUSED with
 * c freed. The caller sets the callbacks after (none runs inside). */
int peer_conn_dial(struct peer_conn *c, const struct sockaddr_storage *addr,
		   int addrlen, const char *host, uint16_t port);
/* Queue f for p (bounded, invariant 1): 0 or -EAGAIN (f freed). */
int peer_queue_push(struct peer *p, struct peer_frame *f);
void peer_flush(struct peer *p);
int peer_addr_resolve(const char *host, uint16_t port,
		      struct sockaddr_storage *addr, int *addrlen);

/* net/peer_req.c */
void peer_req_done(struct peer_req *r, int err, const uint8_t *resp,
		   size_t len);
void peer_req_fail_member(struct peer_transport *t, uint64_t to, int err);
void peer_req_deliver_cb(evutil_socket_t fd, short what, void *arg);
int peer_rep_handle(struct peer_transport *t, uint64_t from, const uint8_t *pl,
		    size_t plen);
int peer_conn_req(struct peer_conn *c, const uint8_t *pl, size_t plen);

#endif
