/* server_read: proposals and linearizable reads on any member (the
 * client side of the write and read paths; server.c runs the Ready loop).
 *
 * Invariants:
 *  1. Every proposal and every read ends exactly once: applied (or read
 *     index applied), refused at the call, or failed by a sweep at its
 *     deadline (the request timeout; "no leader" after NO_LEADER_WAIT
 *     without one) or at close (CAIRN_ESTOPPED).
 *  2. Held proposals reach raft in arrival order, and none is proposed
 *     after it failed.
 *  3. At most one ReadIndex is in flight; reads arriving meanwhile form
 *     the next batch (etcd's linearizableReadLoop).
 *
 * A proposal:
 *
 *     server_propose ─► raft_propose (a follower's raft forwards it)
 *        └─(no leader / transfer)─► held ─(leader known: note_leader,
 *          tick)─► raft_propose;  held > 2 election timeouts without a
 *          leader ─► CAIRN_ENO_LEADER
 *     the waiter ends at apply (server.c) or at the request timeout
 *
 * A linearizable read:
 *
 *     server_read_index ─► rq ─(no batch in flight, a leader known)─►
 *     rb_flight: raft_read_index(ctx) ─(read state ctx)─► rb_wait
 *     ─(applied >= index)─► cb(0)
 *     rb_flight re-asks with a new ctx every READ_RETRY_MS; a leader
 *     change fails it (CAIRN_ELEADER_CHANGED).
 *
 * Threads: loop thread only.
 */
#include "core/server_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/raft/raft.h"
#include "net/proto/pbutil.h"

/* Proposals held while no leader is known: etcd's 5000 in-flight bound,
 * and a bound on their bytes. */
#define MAX_HELD 5000
#define MAX_HELD_BYTES (64ull << 20)
/* etcd's maxGapBetweenApplyAndCommitIndex: refuse new proposals while
 * applying lags this far behind the commit index. */
#define MAX_APPLY_GAP 5000
/* A ReadIndex without an answer is asked again (a message was lost). */
#define READ_RETRY_MS 500

/* ---- proposals held while no leader is known ------------------------- */

struct server_held {
	uint64_t id, start_ms;
	uint8_t *data; /* the wrapped InternalRaftRequest, owned */
	size_t len;
	struct server_held *next;
};

static struct server_held *held_pop(struct server *s)
{
	struct server_held *h = s->held;

	s->held = h->next;
	if (!s->held)
		s->held_tail = NULL;
	s->n_held--;
	s->held_bytes -= h->len;
	return h;
}

/* End the held proposal h (popped) with err, through its waiter if it
 * still has one. */
static void held_end(struct server *s, struct server_held *h, int err)
{
	struct waiter *w = server_waiter_take(s, h->id);
	struct apply_out out = {.err = err};

	free(h->data);
	free(h);
	if (w) {
		w->done(w->arg, &out);
		free(w);
	}
}

/* Hold a proposal (takes data) until a leader is known. 0, or
 * CAIRN_ETOO_MANY_REQUESTS past etcd's in-flight bound, -ENOMEM (data is
 * freed either way on failure). */
int server_held_add(struct server *s, uint64_t id, uint8_t *data, size_t len)
{
	struct server_held *h;

	if (s->n_held >= MAX_HELD || s->held_bytes + len > MAX_HELD_BYTES) {
		free(data);
		return CAIRN_ETOO_MANY_REQUESTS;
	}
	if (!(h = calloc(1, sizeof(*h)))) {
		free(data);
		return -ENOMEM;
	}
	h->id = id;
	h->start_ms = server_now_ms();
	h->data = data;
	h->len = len;
	if (s->held_tail)
		s->held_tail->next = h;
	else
		s->held = h;
	s->held_tail = h;
	s->n_held++;
	s->held_bytes += len;
	return 0;
}

static bool raft_holds_back(int err)
{
	return err == CAIRN_ENO_LEADER || err == CAIRN_ELEADER_TRANSFER;
}

/* Hand the held proposals to raft, oldest first, while it takes them. */
void server_held_flush(struct server *s)
{
	bool any = false;

	while (s->held && !s->stopping && !s->fatal) {
		int err;

		if (!server_waiter_find(s, s->held->id)) {
			held_end(s, held_pop(s), 0); /* timed out: never */
			continue;
		}
		err = raft_propose(s->raft, s->held->data, s->held->len, NULL);
		if (raft_holds_back(err))
			break;
		any = true;
		if (err < 0) {
			held_end(s, held_pop(s), err);
		} else {
			struct server_held *h = held_pop(s);

			free(h->data);
			free(h);
		}
	}
	if (any)
		server_schedule_ready(s);
}

/* Held proposals are in start order: fail from the front those held
 * two election timeouts without a leader ("no leader"), and drop those
 * whose waiter the request timeout already failed (server.c). */
void server_held_sweep(struct server *s, uint64_t now)
{
	uint64_t no_leader_wait = 2 * s->cfg->election_ms;
	bool no_leader = raft_leader(s->raft) == RAFT_NONE;

	while (s->held) {
		if (!server_waiter_find(s, s->held->id))
			held_end(s, held_pop(s), 0);
		else if (no_leader && now - s->held->start_ms >= no_leader_wait)
			held_end(s, held_pop(s), CAIRN_ENO_LEADER);
		else
			break;
	}
}

void server_held_fail_all(struct server *s, int err)
{
	while (s->held)
		held_end(s, held_pop(s), err);
}

/* ---- linearizable reads -------------------------------------------------- */

struct server_read {
	void (*cb)(void *arg, int err);
	void *arg;
	uint64_t start_ms;
	int err; /* set when it is failed by the sweep */
	struct server_read *next;
};

/* Reads that share one ReadIndex. ctx is the one asked last; an answer
 * to the one before (prev_ctx, re-asked after READ_RETRY_MS) counts too. */
struct server_read_batch {
	uint64_t ctx, prev_ctx, index, sent_ms;
	struct server_read *head;
	struct server_read_batch *next;
};

/* Call and free every read of list with err (or each read's own err
 * when err is 1). The lists they came from are consistent already:
 * a callback may start a new read. */
static void reads_end(struct server_read *list, int err)
{
	while (list) {
		struct server_read *r = list;

		list = r->next;
		r->cb(r->arg, err == 1 ? r->err : err);
		free(r);
	}
}

static void rq_append(struct server *s, struct server_read *list)
{
	while (list) {
		struct server_read *r = list;

		list = r->next;
		r->next = NULL;
		if (s->rq_tail)
			s->rq_tail->next = r;
		else
			s->rq = r;
		s->rq_tail = r;
	}
}

static void read_ask(struct server *s, struct server_read_batch *b)
{
	int err;

	b->prev_ctx = b->ctx;
	b->ctx = server_next_id(s);
	b->sent_ms = server_now_ms();
	err = raft_read_index(s->raft, b->ctx);
	if (err == 0) {
		server_schedule_ready(s);
		return;
	}
	s->rb_flight = NULL;
	if (err == CAIRN_ENO_LEADER) {
		/* held until a leader is known (reads_sweep bounds it) */
		struct server_read *rest = s->rq;

		s->rq = s->rq_tail = NULL;
		rq_append(s, b->head);
		rq_append(s, rest);
		free(b);
		return;
	}
	reads_end(b->head, err);
	free(b);
}

/* Ask for a read index for every read waiting, unless one is in flight
 * (etcd's linearizableReadLoop: reads arriving meanwhile form the next
 * batch) or no leader is known. */
void server_reads_kick(struct server *s)
{
	struct server_read_batch *b;

	if (s->rb_flight || !s->rq || raft_leader(s->raft) == RAFT_NONE ||
	    s->stopping || s->fatal)
		return;
	if (!(b = calloc(1, sizeof(*b)))) {
		struct server_read *list = s->rq;

		s->rq = s->rq_tail = NULL;
		reads_end(list, -ENOMEM);
		return;
	}
	b->head = s->rq;
	s->rq = s->rq_tail = NULL;
	s->rb_flight = b;
	read_ask(s, b);
}

/* Serve the batches whose read index is applied. */
void server_reads_check_applied(struct server *s)
{
	struct server_read_batch **pb = &s->rb_wait, *done = NULL;

	s->rb_wait_tail = NULL;
	while (*pb) {
		struct server_read_batch *b = *pb;

		if (b->index <= s->applied_index) {
			*pb = b->next;
			b->next = done;
			done = b;
		} else {
			s->rb_wait_tail = b;
			pb = &b->next;
		}
	}
	while (done) {
		struct server_read_batch *b = done;

		done = b->next;
		reads_end(b->head, 0);
		free(b);
	}
}

void server_reads_on_states(struct server *s, const struct raft_ready *rd)
{
	for (size_t i = 0; i < rd->n_read_states; i++) {
		const struct raft_read_state *rs = &rd->read_states[i];
		struct server_read_batch *b = s->rb_flight;

		if (!b || (rs->ctx != b->ctx && rs->ctx != b->prev_ctx))
			continue; /* an answer to a batch failed since */
		s->rb_flight = NULL;
		b->index = rs->index;
		b->next = NULL;
		if (s->rb_wait_tail)
			s->rb_wait_tail->next = b;
		else
			s->rb_wait = b;
		s->rb_wait_tail = b;
	}
	server_reads_kick(s);
}

/* Move the expired reads of *list to *dead, each with its error. */
static void reads_expire(struct server *s, struct server_read **list,
			 uint64_t now, bool held, struct server_read **dead)
{
	bool no_leader = raft_leader(s->raft) == RAFT_NONE;

	while (*list) {
		struct server_read *r = *list;
		uint64_t age = now - r->start_ms;

		if (age >= s->req_timeout_ms)
			r->err = CAIRN_ETIMEOUT;
		else if (held && no_leader && age >= 2 * s->cfg->election_ms)
			r->err = CAIRN_ENO_LEADER;
		else {
			list = &r->next;
			continue;
		}
		*list = r->next;
		r->next = *dead;
		*dead = r;
	}
}

void server_reads_sweep(struct server *s, uint64_t now)
{
	struct server_read *dead = NULL;
	struct server_read_batch **pb;

	reads_expire(s, &s->rq, now, true, &dead);
	s->rq_tail = s->rq;
	while (s->rq_tail && s->rq_tail->next)
		s->rq_tail = s->rq_tail->next;
	if (s->rb_flight) {
		reads_expire(s, &s->rb_flight->head, now, false, &dead);
		if (!s->rb_flight->head) {
			free(s->rb_flight);
			s->rb_flight = NULL;
		}
	}
	s->rb_wait_tail = NULL;
	for (pb = &s->rb_wait; *pb;) {
		struct server_read_batch *b = *pb;

		reads_expire(s, &b->head, now, false, &dead);
		if (!b->head) {
			*pb = b->next;
			free(b);
		} else {
			s->rb_wait_tail = b;
			pb = &b->next;
		}
	}
	/* a lost ReadIndex request or answer: ask again */
	if (s->rb_flight && now - s->rb_flight->sent_ms >= READ_RETRY_MS)
		read_ask(s, s->rb_flight);
	server_reads_kick(s);
	reads_end(dead, 1);
}

void server_reads_fail_all(struct server *s, int err)
{
	struct server_read *list = s->rq;

	s->rq = s->rq_tail = NULL;
	reads_end(list, err);
	if (s->rb_flight) {
		struct server_read_batch *b = s->rb_flight;

		s->rb_flight = NULL;
		reads_end(b->head, err);
		free(b);
	}
	while (s->rb_wait) {
		struct server_read_batch *b = s->rb_wait;

		s->rb_wait = b->next;
		if (!s->rb_wait)
			s->rb_wait_tail = NULL;
		reads_end(b->head, err);
		free(b);
	}
}

/* The leader changed: the ReadIndex in flight fails (etcd's "leader
 * changed"); its reads' clients retry. */
void server_reads_leader_changed(struct server *s)
{
	struct server_read_batch *b = s->rb_flight;

	if (!b)
		return;
	s->rb_flight = NULL;
	reads_end(b->head, CAIRN_ELEADER_CHANGED);
	free(b);
}

/* ---- the API ------------------------------------------------------------ */

int server_propose(struct server *s, enum server_req kind, const uint8_t *req,
		   size_t len, server_done_fn done, void *arg)
{
	uint8_t *data = NULL;
	size_t dlen = 0;
	uint64_t id;
	int err;

	if (s->stopping || s->fatal)
		return CAIRN_ESTOPPED;
	if (server_members_removed(s))
		return CAIRN_EMEMBER_REMOVED;
	/* etcd: applying lags too far behind committing */
	if (raft_commit_index(s->raft) > s->applied_index + MAX_APPLY_GAP)
		return CAIRN_ETOO_MANY_REQUESTS;
	id = server_next_id(s);
	err = pbu_wrap_internal(id, (uint32_t)kind, req, len, &data, &dlen);
	if (err < 0)
		return err;
	if (dlen > s->cfg->max_request_bytes) {
		free(data);
		return CAIRN_EREQUEST_TOO_LARGE;
	}
	/* the waiter first: once proposed, the entry will apply, and its
	 * client must hear of it */
	if ((err = server_waiter_add(s, id, done, arg)) < 0) {
		free(data);
		return err;
	}
	/* a follower's raft forwards it to the leader; without a leader
	 * (or during a transfer) it is held, behind those held already */
	err = s->held ? CAIRN_ENO_LEADER
		      : raft_propose(s->raft, data, dlen, NULL);
	if (raft_holds_back(err))
		err = server_held_add(s, id, data, dlen);
	else
		free(data);
	if (err < 0) {
		free(server_waiter_take(s, id));
		return err;
	}
	server_schedule_ready(s);
	return 0;
}

/* The only voter, leading, with everything committed applied: no other
 * leader can exist and every acknowledged write is applied, so a read
 * needs no heartbeat round. */
static bool lone_leader(const struct server *s)
{
	size_t nv;

	return raft_role(s->raft) == RAFT_LEADER &&
	       s->applied_index >= raft_commit_index(s->raft) &&
	       (server_conf_size(s, &nv), nv == 1);
}

void server_read_index(struct server *s, void (*cb)(void *arg, int err),
		       void *arg)
{
	struct server_read *r;

	if (s->stopping || s->fatal) {
		cb(arg, CAIRN_ESTOPPED);
		return;
	}
	if (server_members_removed(s)) {
		cb(arg, CAIRN_EMEMBER_REMOVED);
		return;
	}
	if (lone_leader(s)) {
		cb(arg, 0);
		return;
	}
	if (!(r = calloc(1, sizeof(*r)))) {
		cb(arg, -ENOMEM);
		return;
	}
	r->cb = cb;
	r->arg = arg;
	r->start_ms = server_now_ms();
	rq_append(s, r);
	server_reads_kick(s);
}
