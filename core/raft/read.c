/* read: ReadIndex (Raft thesis §6.4, etcd's ReadOnlySafe) and leadership
 * transfer (§3.10). Contract in raft.h; state in struct raft (rq, rs,
 * read_seq, lead_transferee) and struct raft_progress (read_ack).
 *
 * ReadIndex on the leader, per request:
 *
 *   held (seq 0) --entry of the term committed--> started (index, seq)
 *   started --quorum of voters acked heartbeat round >= seq--> answered
 *   any --role change (raft_reset)--> dropped
 *
 * Invariants (checked by raft_check, numbered as in raft.c):
 *  10. Requests exist only on a leader; started ones form a prefix of rq
 *      with increasing seq <= read_seq and index <= commit; an index was
 *      recorded only once the leader had committed an entry of its term,
 *      so it covers every entry committed before the request (§6.4 (1)).
 *  11. A request is answered only after a quorum of voters (learners
 *      never count) acknowledged a heartbeat sent after it was started
 *      (read_ack >= seq), so the leader still led then (§6.4 (3)).
 *  12. A transfer target is a voter other than the leader, and the leader
 *      takes no proposal while it is set (§3.10).
 */
#include "core/raft/raft_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util/log.h"

/* ---- ReadIndex ---- */

void raft_read_free(struct raft *r)
{
	free(r->rq);
	free(r->rs);
	free(r->rs_handed);
	r->rq = NULL;
	r->rs = r->rs_handed = NULL;
	r->n_rq = r->cap_rq = r->n_rs = r->cap_rs = r->cap_rs_handed = 0;
}

int raft_read_push(struct raft *r, uint64_t ctx, uint64_t index)
{
	struct raft_read_state *p;
	size_t cap;

	if (r->n_rs == r->cap_rs) {
		cap = r->cap_rs ? r->cap_rs * 2 : 8;
		p = realloc(r->rs, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		r->rs = p;
		r->cap_rs = cap;
	}
	r->rs[r->n_rs].ctx = ctx;
	r->rs[r->n_rs].index = index;
	r->n_rs++;
	return 0;
}

static bool committed_in_term(const struct raft *r)
{
	uint64_t t;

	return raft_log_term(&r->log, r->log.commit, &t) == 0 && t == r->term;
}

/* Answer one confirmed request: locally, or to the follower that asked.
 * A failure to queue loses the answer (the caller's wait is bounded). */
static void read_answer(struct raft *r, const struct raft_read_req *q)
{
	struct raft_msg m = {0};

	if (q->from == r->id) {
		(void)raft_read_push(r, q->ctx, q->index);
		return;
	}
	m.type = RAFT_MSG_READ_INDEX_RESP;
	m.to = q->from;
	m.index = q->index;
	m.ctx = q->ctx;
	(void)raft_send(r, &m, NULL, 0);
}

/* The highest round a quorum of voters acknowledged (invariant 11). */
static uint64_t read_acked(const struct raft *r,
			   const struct raft_progress *pr)
{
	return pr->id == r->id ? r->read_seq : pr->read_ack;
}

static uint64_t read_confirmed(struct raft *r)
{
	return raft_quorum_value(r, read_acked);
}

/* Answer the confirmed prefix of the queue. */
static void read_release(struct raft *r)
{
	uint64_t ok = read_confirmed(r);
	size_t k = 0;

	while (k < r->n_rq && r->rq[k].seq && r->rq[k].seq <= ok)
		read_answer(r, &r->rq[k++]);
	if (!k)
		return;
	memmove(r->rq, r->rq + k, (r->n_rq - k) * sizeof(*r->rq));
	r->n_rq -= k;
}

void raft_read_start(struct raft *r)
{
	size_t i;
	bool started = false;

	if (r->role != RAFT_LEADER || !committed_in_term(r))
		return;
	for (i = 0; i < r->n_rq; i++) {
		if (r->rq[i].seq)
			continue;
		if (!started)
			r->read_seq++;
		started = true;
		r->rq[i].index = r->log.commit;
		r->rq[i].seq = r->read_seq;
	}
	read_release(r); /* a lone voter confirms at once */
	if (started && r->n_rq)
		raft_bcast_heartbeat(r, r->read_seq);
}

int raft_read_leader(struct raft *r, uint64_t from, uint64_t ctx)
{
	struct raft_read_req *p;
	size_t cap;

	if (r->n_rq == r->cap_rq) {
		cap = r->cap_rq ? r->cap_rq * 2 : 8;
		p = realloc(r->rq, cap * sizeof(*p));
		if (!p)
			return -ENOMEM;
		r->rq = p;
		r->cap_rq = cap;
	}
	p = &r->rq[r->n_rq++];
	p->ctx = ctx;
	p->from = from;
	p->index = 0;
	p->seq = 0;
	raft_read_start(r); /* waits if no entry of the term is committed */
	return 0;
}

void raft_read_ack(struct raft *r, struct raft_progress *pr, uint64_t ctx)
{
	if (ctx > r->read_seq || ctx <= pr->read_ack)
		return; /* not a round of ours, or old news */
	pr->read_ack = ctx;
	if (!pr->learner)
		read_release(r);
}

uint64_t raft_read_pending_seq(const struct raft *r)
{
	return r->n_rq && r->rq[0].seq ? r->read_seq : 0;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
	struct raft_msg m = {0};

	if (ctx == 0)
		return -EINVAL;
	if (r->role == RAFT_LEADER)
		return raft_read_leader(r, r->id, ctx);
	if (r->leader == RAFT_NONE)
		return CAIRN_ENO_LEADER;
	m.type = RAFT_MSG_READ_INDEX;
	m.to = r->leader;
	m.ctx = ctx;
	return raft_send(r, &m, NULL, 0);
}

/* ---- leadership transfer ---- */

static void send_timeout_now(struct raft *r, uint64_t to)
{
	struct raft_msg m = {0};

	m.type = RAFT_MSG_TIMEOUT_NOW;
	m.to = to;
	(void)raft_send(r, &m, NULL, 0);
}

void raft_transfer_check(struct raft *r, struct raft_progress *pr)
{
	if (r->role == RAFT_LEADER && pr->id == r->lead_transferee &&
	    pr->match == raft_log_last_index(&r->log))
		send_timeout_now(r, pr->id);
}

int raft_transfer_leader(struct raft *r, uint64_t to)
{
	struct raft_progress *pr;

	if (r->role != RAFT_LEADER)
		return to != RAFT_NONE && r->leader == to ? 0
							  : CAIRN_ENOT_LEADER;
	if (to == r->id || !raft_is_voter(r, to))
		return CAIRN_EBAD_LEADER_TRANSFEREE;
	if (r->lead_transferee == to)
		return 0; /* already under way */
	pr = raft_pr_find(r, to);
	log_info("raft %llx: transferring leadership to %llx",
		 (unsigned long long)r->id, (unsigned long long)to);
	r->lead_transferee = to;
	r->election_elapsed = 0; /* abandoned after an election timeout */
	if (pr->match == raft_log_last_index(&r->log))
		send_timeout_now(r, to);
	else
		raft_send_append(r, pr, true);
	return 0;
}

uint64_t raft_lead_transferee(const struct raft *r)
{
	return r->lead_transferee;
}
