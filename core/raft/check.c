/* check: raft_check(), the invariants listed at the top of raft.c (and
 * of ready.c, progress.c, conf.c and read.c) verified on a live member.
 * Debug aid: tests call it after every step; it walks the whole log.
 */
#include "core/raft/raft_int.h"

#include "core/errors.h"
#include "core/util/log.h"

#define RAFT_CHECK(cond)                                                       \
	do {                                                                   \
		if (!(cond)) {                                                 \
			log_error("raft %llx: invariant failed: %s",           \
				  (unsigned long long)r->id, #cond);           \
			return CAIRN_ECORRUPT;                                 \
		}                                                              \
	} while (0)

static int raft_check_prs(const struct raft *r)
{
	const struct raft_progress *pr;
	size_t i, j;

	for (i = 0; i < r->n_prs; i++) {
		pr = &r->prs[i];
		RAFT_CHECK(pr->id != RAFT_NONE);
		for (j = 0; j < i; j++)
			RAFT_CHECK(r->prs[j].id != pr->id);
		if (r->role != RAFT_LEADER || pr->id == r->id)
			continue;
		RAFT_CHECK(pr->match < pr->next);
		RAFT_CHECK(pr->infl_count <= pr->infl_cap);
		RAFT_CHECK(pr->state == RAFT_PR_REPLICATE ||
			   (pr->infl_count == 0 && pr->infl_bytes == 0));
		RAFT_CHECK(pr->state != RAFT_PR_SNAPSHOT ||
			   pr->pending_snapshot > 0);
	}
	return 0;
}

/* Invariant 8: at most one conf change of the leader's term above the
 * applied index, and none past pending_conf_index. */
static int raft_check_conf_change(const struct raft *r)
{
	const struct raft_log *l = &r->log;
	uint64_t i, last = raft_log_last_index(l);
	const struct raft_entry *e;
	size_t n = 0;

	RAFT_CHECK(r->pending_conf_index <= last);
	for (i = l->applied + 1; i <= last; i++) {
		e = raft_log_at(l, i);
		if (!e || e->type != RAFT_ENTRY_CONF_CHANGE ||
		    e->term != r->term)
			continue;
		n++;
		RAFT_CHECK(i <= r->pending_conf_index);
	}
	RAFT_CHECK(n <= 1);
	return 0;
}

/* Invariants 9-12. */
static int raft_check_cluster(const struct raft *r)
{
	const struct raft_progress *self = raft_pr_find(r, r->id);
	const struct raft_progress *pr = raft_pr_find(r, r->lead_transferee);
	uint64_t prev_seq = 0;
	size_t i;
	int err;

	err = raft_check_prs(r);
	if (err)
		return err;
	RAFT_CHECK(r->n_rq == 0 || r->role == RAFT_LEADER);
	for (i = 0; i < r->n_rq; i++) {
		RAFT_CHECK(r->rq[i].seq == 0 || i == 0 || r->rq[i - 1].seq);
		RAFT_CHECK(r->rq[i].seq == 0 || r->rq[i].seq >= prev_seq);
		RAFT_CHECK(r->rq[i].seq <= r->read_seq);
		RAFT_CHECK(r->rq[i].index <= r->log.commit);
		prev_seq = r->rq[i].seq;
	}
	if (r->role != RAFT_FOLLOWER)
		RAFT_CHECK(self && !self->learner);
	RAFT_CHECK(r->lead_transferee == RAFT_NONE ||
		   (r->role == RAFT_LEADER && pr && !pr->learner &&
		    pr->id != r->id));
	if (r->role == RAFT_LEADER)
		return raft_check_conf_change(r);
	return 0;
}

int raft_check(const struct raft *r)
{
	const struct raft_log *l = &r->log;
	uint64_t last = raft_log_last_index(l);
	size_t i;

	RAFT_CHECK(l->snap_index <= l->applied);
	RAFT_CHECK(l->applied <= l->applying);
	RAFT_CHECK(l->applying <= l->commit && l->applying <= l->stable);
	RAFT_CHECK(l->commit <= last && l->stable <= last);
	RAFT_CHECK(l->unstable <= last + 1);
	for (i = 0; i < l->n; i++) {
		RAFT_CHECK(l->ents[i].index == l->snap_index + 1 + i);
		RAFT_CHECK(l->ents[i].term <= r->term);
		RAFT_CHECK(i == 0 || l->ents[i].term >= l->ents[i - 1].term);
	}
	RAFT_CHECK((r->role == RAFT_LEADER) == (r->leader == r->id));
	RAFT_CHECK(r->role != RAFT_CANDIDATE || r->vote == r->id);
	RAFT_CHECK(r->tv_durable_seq <= r->tv_seq);
	return raft_check_cluster(r);
}
