/* ready: the hand-over between raft and its caller — the outbox of
 * messages, raft_ready(), raft_advance() and raft_persisted().
 *
 * Invariants (numbers 6 and 7 of raft.c, made concrete):
 *  1. A message is queued with the term/vote seq current when it was made;
 *     it goes into a ready only once that seq is durable (tv_durable_seq,
 *     set by raft_advance of the ready that carried the hard state).
 *  2. The messages of a ready are a prefix of the outbox, in order.
 *  3. While a ready is out (rd_out), nothing it points into moves or is
 *     freed: its messages live in the handed outbox (not grown until
 *     advance), its entries in the log's scratch arrays (idem), and data
 *     of entries dropped meanwhile waits in the log's grave; forwarded
 *     proposals' data (outbox own[]), the SNAP messages' membership
 *     (rd_conf) and the read states (rs_handed) are freed or reused only
 *     at raft_advance.
 *
 *   idle --raft_ready--> out --raft_advance--> idle
 *   (raft_has_ready is false while out; raft_persisted may come either
 *   side of raft_advance)
 */
#include "core/raft/raft_int.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/log.h"

/* ---- outbox ---- */

static int outbox_grow(struct raft_outbox *o, size_t msgs, size_t ents)
{
	size_t cap;
	void *p;

	if (msgs > o->cap) {
		cap = o->cap ? o->cap : 16;
		while (cap < msgs)
			cap *= 2;
		p = realloc(o->msgs, cap * sizeof(*o->msgs));
		if (!p)
			return -ENOMEM;
		o->msgs = p;
		p = realloc(o->off, cap * sizeof(*o->off));
		if (!p)
			return -ENOMEM;
		o->off = p;
		p = realloc(o->seq, cap * sizeof(*o->seq));
		if (!p)
			return -ENOMEM;
		o->seq = p;
		p = realloc(o->own, cap * sizeof(*o->own));
		if (!p)
			return -ENOMEM;
		o->own = p;
		o->cap = cap;
	}
	if (ents > o->cap_ents) {
		cap = o->cap_ents ? o->cap_ents : 64;
		while (cap < ents)
			cap *= 2;
		p = realloc(o->ents, cap * sizeof(*o->ents));
		if (!p)
			return -ENOMEM;
		o->ents = p;
		o->cap_ents = cap;
	}
	return 0;
}

static void outbox_free_owned(struct raft_outbox *o)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		free(o->own[i]);
		o->own[i] = NULL;
	}
}

void raft_outbox_free(struct raft_outbox *o)
{
	outbox_free_owned(o);
	free(o->own);
	free(o->msgs);
	free(o->off);
	free(o->seq);
	free(o->ents);
	memset(o, 0, sizeof(*o));
}

/* Queue m (entries are shallow copies of log entries: the data stays the
 * log's). Tagged with the current term/vote seq (invariant 6). */
int raft_send(struct raft *r, struct raft_msg *m, const struct raft_entry *ents,
	      size_t n)
{
	return raft_send_owned(r, m, ents, n, NULL);
}

int raft_send_owned(struct raft *r, struct raft_msg *m,
		    const struct raft_entry *ents, size_t n, void *own)
{
	struct raft_outbox *o = &r->out;
	int err;

	err = outbox_grow(o, o->n + 1, o->n_ents + n);
	if (err) {
		log_warn("raft: dropping a message: out of memory");
		return err;
	}
	/* Keep the handed outbox as large, so raft_ready() can move all of
	 * it; never while a ready is out: rd.msgs points into it. */
	if (!r->rd_out)
		(void)outbox_grow(&r->handed, o->cap, o->cap_ents);
	m->from = r->id;
	/* PROP and READ_INDEX go with term 0 (raft_step's term_free). */
	if (m->term == 0 && m->type != RAFT_MSG_PROP &&
	    m->type != RAFT_MSG_READ_INDEX)
		m->term = r->term;
	m->entries = NULL;
	m->n_entries = n;
	o->msgs[o->n] = *m;
	o->off[o->n] = o->n_ents;
	o->seq[o->n] = r->tv_seq;
	o->own[o->n] = own;
	o->n++;
	if (n)
		memcpy(o->ents + o->n_ents, ents, n * sizeof(*ents));
	o->n_ents += n;
	return 0;
}

/* Forget queued APPs carrying entries in [lo, hi]: their data is about to
 * be freed. Dropping a message is always safe (as if lost). */
void raft_outbox_drop_range(struct raft_outbox *o, uint64_t lo, uint64_t hi)
{
	size_t i, k = 0;
	uint64_t a, b;

	for (i = 0; i < o->n; i++) {
		if (o->msgs[i].n_entries && o->msgs[i].type == RAFT_MSG_APP) {
			a = o->ents[o->off[i]].index;
			b = a + o->msgs[i].n_entries - 1;
			if (a <= hi && b >= lo)
				continue;
		}
		o->msgs[k] = o->msgs[i];
		o->off[k] = o->off[i];
		o->seq[k] = o->seq[i];
		o->own[k] = o->own[i];
		k++;
	}
	o->n = k;
}

/* ---- ready ---- */

/* Debug builds: the O(1) part of raft_check() at every hand-over (the
 * full check walks the log; tests call it). */
static void ready_assert(const struct raft *r)
{
	const struct raft_log *l = &r->log;
	uint64_t last = raft_log_last_index(l);

	(void)r;
	(void)l;
	(void)last;
	assert(l->snap_index <= l->applied && l->applied <= l->applying);
	assert(l->applying <= l->commit && l->applying <= l->stable);
	assert(l->commit <= last && l->stable <= last);
	assert(l->unstable <= last + 1);
	assert(r->tv_durable_seq <= r->tv_seq);
	assert((r->role == RAFT_LEADER) == (r->leader == r->id));
}

static uint64_t raft_apply_limit(const struct raft *r)
{
	/* Invariant 5: hand out only what is committed AND durable here. */
	return r->log.commit < r->log.stable ? r->log.commit : r->log.stable;
}

bool raft_has_ready(const struct raft *r)
{
	if (r->rd_out)
		return false;
	if (r->bcast_pending && r->role == RAFT_LEADER)
		return true;
	if (r->term != r->prev_hs.term || r->vote != r->prev_hs.vote ||
	    r->log.commit != r->prev_hs.commit || r->tv_seq != r->rd_tv_seq)
		return true;
	if (r->leader != r->prev_leader || r->role != r->prev_role)
		return true;
	if (r->log.unstable <= raft_log_last_index(&r->log))
		return true;
	if (raft_apply_limit(r) > r->log.applied)
		return true;
	if (r->n_rs)
		return true;
	return r->out.n && r->out.seq[0] <= r->tv_durable_seq;
}

static void ready_slice(const struct raft *r, struct raft_entry *dst,
			uint64_t lo, uint64_t hi, struct raft_entry **p,
			size_t *n)
{
	*p = NULL;
	*n = 0;
	if (lo > hi)
		return;
	*n = hi - lo + 1;
	if (*n > r->log.scratch_cap)
		*n = r->log.scratch_cap; /* the rest goes in the next ready */
	if (*n == 0)
		return;
	memcpy(dst, raft_log_at(&r->log, lo), *n * sizeof(*dst));
	*p = dst;
}

/* The membership for a SNAP message, valid until raft_advance (built once
 * per ready; on allocation failure the lists are left empty, and the
 * server fills them anyway: see raft_msg.snap). */
static void ready_snap_conf(struct raft *r, struct raft_snap_meta *snap)
{
	size_t nv = 0, nl = 0, i;

	snap->voters = snap->learners = NULL;
	snap->n_voters = snap->n_learners = 0;
	if (!r->rd_conf) {
		r->rd_conf = malloc((r->n_prs + 1) * sizeof(*r->rd_conf));
		if (!r->rd_conf)
			return;
		for (i = 0; i < r->n_prs; i++)
			if (!r->prs[i].learner)
				r->rd_conf[nv++] = r->prs[i].id;
		for (i = 0; i < r->n_prs; i++)
			if (r->prs[i].learner)
				r->rd_conf[nv + nl++] = r->prs[i].id;
		r->rd_conf[r->n_prs] = nv; /* remember the split */
	}
	nv = r->rd_conf[r->n_prs];
	snap->voters = r->rd_conf;
	snap->n_voters = nv;
	snap->learners = r->rd_conf + nv;
	snap->n_learners = r->n_prs - nv;
}

/* Move the sendable prefix of the pending outbox into the handed one. */
static void ready_msgs(struct raft *r, struct raft_ready *rd)
{
	struct raft_outbox *o = &r->out, *h = &r->handed;
	size_t i, k, n;

	h->n = 0;
	h->n_ents = 0;
	for (k = 0; k < o->n; k++) {
		n = o->msgs[k].n_entries;
		if (o->seq[k] > r->tv_durable_seq || h->n == h->cap ||
		    h->n_ents + n > h->cap_ents)
			break;
		h->msgs[h->n] = o->msgs[k];
		h->msgs[h->n].entries = n ? h->ents + h->n_ents : NULL;
		h->own[h->n] = o->own[k];
		if (o->msgs[k].type == RAFT_MSG_SNAP)
			ready_snap_conf(r, &h->msgs[h->n].snap);
		if (n)
			memcpy(h->ents + h->n_ents, o->ents + o->off[k],
			       n * sizeof(*h->ents));
		h->n_ents += n;
		h->n++;
	}
	rd->msgs = h->n ? h->msgs : NULL;
	rd->n_msgs = h->n;
	/* Keep the rest, entries included, at the front. */
	if (k == o->n) {
		o->n = 0;
		o->n_ents = 0;
		return;
	}
	n = o->off[k];
	if (o->n_ents > n)
		memmove(o->ents, o->ents + n,
			(o->n_ents - n) * sizeof(*o->ents));
	o->n_ents -= n;
	for (i = k; i < o->n; i++) {
		o->msgs[i - k] = o->msgs[i];
		o->off[i - k] = o->off[i] - n;
		o->seq[i - k] = o->seq[i];
		o->own[i - k] = o->own[i];
	}
	o->n -= k;
}

/* Swap the answered reads into the ready (no allocation). */
static void ready_reads(struct raft *r, struct raft_ready *rd)
{
	struct raft_read_state *t = r->rs_handed;
	size_t cap = r->cap_rs_handed;

	r->rs_handed = r->rs;
	r->cap_rs_handed = r->cap_rs;
	rd->read_states = r->n_rs ? r->rs_handed : NULL;
	rd->n_read_states = r->n_rs;
	r->rs = t;
	r->cap_rs = cap;
	r->n_rs = 0;
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
	uint64_t last = raft_log_last_index(&r->log), hi;

	ready_assert(r);
	memset(rd, 0, sizeof(*rd));
	if (r->rd_out) {
		log_error("raft: raft_ready() with a ready outstanding");
		return;
	}
	if (r->bcast_pending && r->role == RAFT_LEADER)
		raft_bcast_append(r);
	r->bcast_pending = false;

	rd->hs.term = r->term;
	rd->hs.vote = r->vote;
	rd->hs.commit = r->log.commit;
	rd->hard_state_changed = memcmp(&rd->hs, &r->prev_hs, sizeof(rd->hs));
	r->prev_hs = rd->hs;

	/* Persist before ack: these leave no message until raft_persisted. */
	ready_slice(r, r->log.scratch_a, r->log.unstable, last, &rd->entries,
		    &rd->n_entries);
	r->rd_ents_last =
		rd->n_entries ? r->log.unstable + rd->n_entries - 1 : 0;
	hi = raft_apply_limit(r);
	ready_slice(r, r->log.scratch_b, r->log.applied + 1, hi, &rd->committed,
		    &rd->n_committed);
	r->rd_applying = r->log.applied + rd->n_committed;
	r->log.applying = r->rd_applying;
	ready_msgs(r, rd);
	ready_reads(r, rd);

	rd->leader = r->prev_leader = r->leader;
	rd->role = r->prev_role = r->role;
	rd->term = r->term;
	r->rd_tv_seq = r->tv_seq;
	r->rd_out = true;
	r->log.hold = true;
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
	(void)rd;
	if (!r->rd_out)
		return;
	/* rd->hs is durable: messages that waited for it may go. */
	r->tv_durable_seq = r->rd_tv_seq;
	if (r->rd_ents_last && r->rd_ents_last >= r->log.unstable)
		r->log.unstable = r->rd_ents_last + 1;
	if (r->rd_applying > r->log.applied)
		r->log.applied = r->rd_applying;
	r->log.applying = r->log.applied;
	outbox_free_owned(&r->handed); /* forwarded proposals' data */
	free(r->rd_conf);
	r->rd_conf = NULL;
	r->handed.n = 0;
	r->handed.n_ents = 0;
	r->rd_ents_last = 0;
	r->rd_out = false;
	r->log.hold = false;
	raft_log_grave_flush(&r->log);
	/* Catch up with growth during the ready (failure: smaller readies). */
	(void)raft_log_grow_scratch(&r->log);
	(void)outbox_grow(&r->handed, r->out.cap, r->out.cap_ents);
	ready_assert(r);
}

void raft_persisted(struct raft *r, uint64_t index, uint64_t term)
{
	uint64_t handed = r->log.unstable - 1;
	struct raft_progress *self;

	if (r->rd_out && r->rd_ents_last > handed)
		handed = r->rd_ents_last;
	if (index > handed || index <= r->log.stable)
		return;
	if (!raft_log_match_term(&r->log, index, term))
		return; /* overwritten since: a stale report */
	r->log.stable = index;
	if (r->role == RAFT_LEADER) {
		self = raft_pr_find(r, r->id);
		if (self)
			self->match = index;
		if (raft_leader_maybe_commit(r) && r->n_prs > 1)
			r->bcast_pending = true; /* tell followers */
		return;
	}
	raft_follower_flush_ack(r);
}
