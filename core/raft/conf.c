/* conf: membership (voters and learners, thesis §4.1 one change at a time)
 * and snapshots (§5 of the paper, §5 of the thesis) for core/raft.
 * Contract in raft.h; the progress states in raft_int.h.
 *
 * Invariants (checked by raft_check, numbered as in raft.c):
 *   8. One membership change at a time: a leader takes a CONF_CHANGE entry
 *      only when every entry up to pending_conf_index (its last conf
 *      change, or its last index when elected) is applied; so at most one
 *      conf change of its term is above the applied index.
 *   9. Learners are in prs but never counted in a quorum (commit, votes,
 *      check-quorum, ReadIndex) and never campaign; ids in prs are unique
 *      and non-zero; a leader is a voter of its own configuration.
 *  13. A member in SNAPSHOT state gets no APP until the snapshot's outcome
 *      (raft_report_snapshot) or an APP_RESP at or past pending_snapshot.
 */
#include "core/raft/raft_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/errors.h"
#include "core/util/log.h"

static bool id_in(const uint64_t *ids, size_t n, uint64_t id)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

int raft_conf_check(const uint64_t *voters, size_t n_voters,
		    const uint64_t *learners, size_t n_learners)
{
	size_t i;

	for (i = 0; i < n_voters; i++)
		if (voters[i] == RAFT_NONE || id_in(voters, i, voters[i]))
			return -EINVAL;
	for (i = 0; i < n_learners; i++)
		if (learners[i] == RAFT_NONE ||
		    id_in(learners, i, learners[i]) ||
		    id_in(voters, n_voters, learners[i]))
			return -EINVAL;
	return 0;
}

bool raft_is_voter(struct raft *r, uint64_t id)
{
	struct raft_progress *pr = raft_pr_find(r, id);

	return pr && !pr->learner;
}

void raft_conf_free(struct raft *r)
{
	size_t i;

	for (i = 0; i < r->n_prs; i++)
		raft_pr_free(&r->prs[i]);
	free(r->prs);
	free(r->scratch_match);
	r->prs = NULL;
	r->scratch_match = NULL;
	r->n_prs = 0;
}

/* Progress for a member new to the configuration: probing from the last
 * index + 1, counted active so check-quorum gives it a chance. */
static int conf_new_pr(struct raft *r, struct raft_progress *pr, uint64_t id,
		       bool learner)
{
	int err;

	err = raft_pr_init(pr, id, learner, r->max_inflight,
			   r->max_inflight_bytes);
	if (err)
		return err;
	raft_pr_reset(pr, raft_log_last_index(&r->log));
	pr->recent_active = true;
	if (id == r->id)
		pr->match = r->log.stable;
	return 0;
}

int raft_conf_set(struct raft *r, const uint64_t *voters, size_t n_voters,
		  const uint64_t *learners, size_t n_learners)
{
	size_t n = n_voters + n_learners, i, k;
	struct raft_progress *prs, *old;
	uint64_t *sm, id;
	bool learner;

	prs = calloc(n + 1, sizeof(*prs));
	sm = calloc(n + 1, sizeof(*sm));
	if (!prs || !sm)
		goto nomem;
	for (k = 0; k < n; k++) {
		learner = k >= n_voters;
		id = learner ? learners[k - n_voters] : voters[k];
		old = raft_pr_find(r, id);
		if (old) {
			prs[k] = *old;
			prs[k].learner = learner;
		} else if (conf_new_pr(r, &prs[k], id, learner)) {
			goto nomem;
		}
	}
	/* Commit: free the progress of members that left. */
	for (i = 0; i < r->n_prs; i++)
		if (!id_in(voters, n_voters, r->prs[i].id) &&
		    !id_in(learners, n_learners, r->prs[i].id))
			raft_pr_free(&r->prs[i]);
	free(r->prs);
	free(r->scratch_match);
	r->prs = prs;
	r->scratch_match = sm;
	r->n_prs = n;
	return 0;
nomem:
	for (i = 0; prs && i < n; i++)
		if (prs[i].id && !raft_pr_find(r, prs[i].id))
			raft_pr_free(&prs[i]);
	free(prs);
	free(sm);
	return -ENOMEM;
}

/* After a change: a removed leader steps down, a removed transferee ends
 * the transfer, and a smaller quorum may commit or confirm reads. */
static void conf_changed(struct raft *r)
{
	if (!raft_is_voter(r, r->id) && r->role != RAFT_FOLLOWER) {
		log_info("raft %llx: no longer a voter, stepping down",
			 (unsigned long long)r->id);
		raft_become_follower(r, r->term, RAFT_NONE);
		return;
	}
	if (r->role != RAFT_LEADER)
		return;
	if (r->lead_transferee != RAFT_NONE &&
	    !raft_is_voter(r, r->lead_transferee))
		r->lead_transferee = RAFT_NONE;
	(void)raft_leader_maybe_commit(r);
	raft_read_start(r);
	if (r->n_prs > 1)
		r->bcast_pending = true; /* probe new members, tell commit */
}

/* The current lists with id added (as learner or voter) or removed. */
static int conf_edit(struct raft *r, uint64_t id, int op)
{
	uint64_t *v = calloc(r->n_prs + 1, sizeof(*v));
	uint64_t *l = calloc(r->n_prs + 1, sizeof(*l));
	size_t nv = 0, nl = 0, i;
	int err = -ENOMEM;

	if (!v || !l)
		goto out;
	for (i = 0; i < r->n_prs; i++) {
		if (r->prs[i].id == id)
			continue;
		if (r->prs[i].learner)
			l[nl++] = r->prs[i].id;
		else
			v[nv++] = r->prs[i].id;
	}
	if (op == RAFT_CC_ADD_NODE)
		v[nv++] = id;
	else if (op == RAFT_CC_ADD_LEARNER)
		l[nl++] = id;
	err = raft_conf_set(r, v, nv, l, nl);
out:
	free(v);
	free(l);
	return err;
}

int raft_apply_conf_change(struct raft *r, enum raft_cc_type type, uint64_t id)
{
	struct raft_progress *pr;
	int err;

	if (id == RAFT_NONE)
		return -EINVAL;
	pr = raft_pr_find(r, id);
	switch (type) {
	case RAFT_CC_ADD_NODE:
		if (pr && !pr->learner)
			return 0;
		break;
	case RAFT_CC_ADD_LEARNER:
	case RAFT_CC_UPDATE_NODE:
		if (pr || type == RAFT_CC_UPDATE_NODE)
			return 0;
		break;
	case RAFT_CC_REMOVE_NODE:
		if (!pr)
			return 0;
		break;
	default:
		return -EINVAL;
	}
	if (pr && type == RAFT_CC_ADD_NODE) {
		pr->learner = false; /* promotion keeps the progress */
		err = 0;
	} else {
		err = conf_edit(r, id, (int)type);
	}
	if (err)
		return err;
	log_info("raft %llx: conf change %d of %llx applied",
		 (unsigned long long)r->id, (int)type, (unsigned long long)id);
	conf_changed(r);
	return 0;
}

void raft_conf(const struct raft *r, uint64_t *voters, size_t *n_voters,
	       uint64_t *learners, size_t *n_learners, size_t cap)
{
	size_t i, nv = 0, nl = 0;

	for (i = 0; i < r->n_prs; i++) {
		if (r->prs[i].learner) {
			if (nl < cap && learners)
				learners[nl] = r->prs[i].id;
			nl++;
		} else {
			if (nv < cap && voters)
				voters[nv] = r->prs[i].id;
			nv++;
		}
	}
	if (n_voters)
		*n_voters = nv;
	if (n_learners)
		*n_learners = nl;
}

int raft_progress(const struct raft *r, uint64_t id,
		  struct raft_progress_info *out)
{
	const struct raft_progress *pr = raft_pr_find(r, id);

	if (r->role != RAFT_LEADER)
		return CAIRN_ENOT_LEADER;
	if (!pr)
		return -ENOENT;
	out->match = id == r->id ? r->log.stable : pr->match;
	out->next = id == r->id ? raft_log_last_index(&r->log) + 1 : pr->next;
	out->learner = pr->learner;
	out->recent_active = id == r->id || pr->recent_active;
	out->state = (int)pr->state;
	return 0;
}

/* ---- snapshots ---- */

void raft_send_snap(struct raft *r, struct raft_progress *pr)
{
	struct raft_msg m = {0};

	if (pr->state == RAFT_PR_SNAPSHOT)
		return;
	m.type = RAFT_MSG_SNAP;
	m.to = pr->id;
	m.snap.index = r->log.snap_index;
	m.snap.term = r->log.snap_term;
	m.commit = r->log.commit;
	if (raft_send(r, &m, NULL, 0))
		return; /* retried at the next append */
	log_info("raft %llx: member %llx needs a snapshot (next %llu, "
		 "compacted to %llu)",
		 (unsigned long long)r->id, (unsigned long long)pr->id,
		 (unsigned long long)pr->next,
		 (unsigned long long)r->log.snap_index);
	raft_pr_become_snapshot(pr, r->log.snap_index);
}

void raft_report_snapshot(struct raft *r, uint64_t to, uint64_t index)
{
	struct raft_progress *pr = raft_pr_find(r, to);

	if (r->role != RAFT_LEADER || !pr || pr->state != RAFT_PR_SNAPSHOT)
		return;
	pr->pending_snapshot = index; /* next = max(match, index) + 1 */
	raft_pr_become_probe(pr);
	/* As etcd: wait for the member's acknowledgement of the install
	 * (raft_restore queues one) or, after a failure, for a sign of life
	 * (a heartbeat response) before the next probe. */
	pr->probe_sent = true;
}

static int restore_check(const struct raft *r,
			 const struct raft_snap_meta *meta, uint64_t from,
			 uint64_t term)
{
	if (!meta || from == RAFT_NONE || from == r->id || term == 0 ||
	    meta->index == 0 || meta->term == 0 || meta->term > term ||
	    (meta->n_voters && !meta->voters) ||
	    (meta->n_learners && !meta->learners) ||
	    raft_conf_check(meta->voters, meta->n_voters, meta->learners,
			    meta->n_learners))
		return -EINVAL;
	if (r->rd_out)
		return -EBUSY;
	if (term < r->term || meta->index <= r->log.commit ||
	    (term == r->term && r->role == RAFT_LEADER))
		return -ESTALE;
	return 0;
}

int raft_restore(struct raft *r, const struct raft_snap_meta *meta,
		 uint64_t from, uint64_t term)
{
	struct raft_msg m = {0};
	int err;

	err = restore_check(r, meta, from, term);
	if (!err)
		err = raft_conf_set(r, meta->voters, meta->n_voters,
				    meta->learners, meta->n_learners);
	if (err)
		return err;
	if (term > r->term || r->role != RAFT_FOLLOWER)
		raft_become_follower(r, term, from);
	r->leader = from;
	r->election_elapsed = 0;
	raft_outbox_drop_range(&r->out, 0, UINT64_MAX);
	if (raft_log_match_term(&r->log, meta->index, meta->term)) {
		/* As etcd: keep what follows, it may be acknowledged. */
		raft_log_restore_keep(&r->log, meta->index);
	} else {
		r->pending_ack = 0;
		raft_log_restore(&r->log, meta->index, meta->term);
	}
	log_info("raft %llx: restored a snapshot at %llu/%llu from %llx",
		 (unsigned long long)r->id, (unsigned long long)meta->index,
		 (unsigned long long)meta->term, (unsigned long long)from);
	m.type = RAFT_MSG_APP_RESP;
	m.to = from;
	m.index = meta->index;
	(void)raft_send(r, &m, NULL, 0); /* lost: the leader probes again */
	return 0;
}
