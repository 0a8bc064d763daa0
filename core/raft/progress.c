/* progress: the leader's view of one member's log (struct raft_progress and
 * its state diagram are in raft_int.h).
 *
 * Invariants (while leader):
 *  1. match < next; entries <= match are known to be in the member's log
 *     and durable there.
 *  2. In REPLICATE, infl holds the last index of each APP sent and not yet
 *     acknowledged, increasing; never more than infl_cap of them, and
 *     infl_bytes is the sum of their payload (infl_sz).
 *  3. In SNAPSHOT, nothing is sent until the snapshot's outcome.
 */
#include "core/raft/raft_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int raft_pr_init(struct raft_progress *pr, uint64_t id, bool learner,
		 size_t cap, size_t bytes_cap)
{
	memset(pr, 0, sizeof(*pr));
	pr->id = id;
	pr->learner = learner;
	pr->infl_cap = cap;
	pr->infl_bytes_cap = bytes_cap;
	pr->infl = calloc(cap, sizeof(*pr->infl));
	pr->infl_sz = calloc(cap, sizeof(*pr->infl_sz));
	if (!pr->infl || !pr->infl_sz) {
		raft_pr_free(pr);
		return -ENOMEM;
	}
	return 0;
}

void raft_pr_free(struct raft_progress *pr)
{
	free(pr->infl);
	free(pr->infl_sz);
	pr->infl = NULL;
	pr->infl_sz = NULL;
}

static void pr_infl_clear(struct raft_progress *pr)
{
	pr->infl_start = 0;
	pr->infl_count = 0;
	pr->infl_bytes = 0;
}

void raft_pr_reset(struct raft_progress *pr, uint64_t last)
{
	pr->match = 0;
	pr->next = last + 1;
	pr->state = RAFT_PR_PROBE;
	pr->probe_sent = false;
	pr->recent_active = false;
	pr->vote = 0;
	pr->pending_snapshot = 0;
	pr->read_ack = 0;
	pr_infl_clear(pr);
}

bool raft_pr_paused(const struct raft_progress *pr)
{
	switch (pr->state) {
	case RAFT_PR_PROBE:
		return pr->probe_sent;
	case RAFT_PR_REPLICATE:
		return pr->infl_count >= pr->infl_cap ||
		       pr->infl_bytes >= pr->infl_bytes_cap;
	default:
		return true;
	}
}

void raft_pr_become_probe(struct raft_progress *pr)
{
	uint64_t snap =
		pr->state == RAFT_PR_SNAPSHOT ? pr->pending_snapshot : 0;

	pr->state = RAFT_PR_PROBE;
	pr->probe_sent = false;
	pr->pending_snapshot = 0;
	pr_infl_clear(pr);
	/* Restart from just after what is known to match (or to be in the
	 * snapshot it was sent). */
	pr->next = (pr->match > snap ? pr->match : snap) + 1;
}

void raft_pr_become_replicate(struct raft_progress *pr)
{
	pr->state = RAFT_PR_REPLICATE;
	pr->probe_sent = false;
	pr->pending_snapshot = 0;
	pr_infl_clear(pr);
	pr->next = pr->match + 1;
}

void raft_pr_become_snapshot(struct raft_progress *pr, uint64_t index)
{
	pr->state = RAFT_PR_SNAPSHOT;
	pr->probe_sent = false;
	pr->pending_snapshot = index;
	pr_infl_clear(pr);
}

/* An APP_RESP acknowledged index: returns true if it told us something. */
bool raft_pr_maybe_update(struct raft_progress *pr, uint64_t index)
{
	bool updated = false;

	if (pr->match < index) {
		pr->match = index;
		updated = true;
		pr->probe_sent = false;
	}
	if (pr->next < index + 1)
		pr->next = index + 1;
	return updated;
}

/* An APP_RESP rejected index with hint: returns false if stale. */
bool raft_pr_maybe_decr(struct raft_progress *pr, uint64_t rejected,
			uint64_t hint)
{
	if (pr->state == RAFT_PR_REPLICATE) {
		if (rejected <= pr->match)
			return false; /* an old, reordered rejection */
		pr->next = pr->match + 1;
		return true;
	}
	/* SNAPSHOT: waits for the snapshot's outcome. PROBE: only the
	 * rejection of the probe in flight counts. */
	if (pr->state == RAFT_PR_SNAPSHOT || pr->next - 1 != rejected)
		return false;
	pr->next = (rejected < hint + 1 ? rejected : hint + 1);
	if (pr->next < pr->match + 1)
		pr->next = pr->match + 1;
	if (pr->next < 1)
		pr->next = 1;
	pr->probe_sent = false;
	return true;
}

void raft_pr_sent(struct raft_progress *pr, uint64_t last_sent, size_t n,
		  size_t bytes)
{
	size_t at;

	switch (pr->state) {
	case RAFT_PR_REPLICATE:
		if (n == 0)
			return;
		pr->next = last_sent + 1;
		at = (pr->infl_start + pr->infl_count) % pr->infl_cap;
		pr->infl[at] = last_sent;
		pr->infl_sz[at] = bytes;
		pr->infl_count++;
		pr->infl_bytes += bytes;
		return;
	case RAFT_PR_PROBE:
		pr->probe_sent = true;
		return;
	default:
		return;
	}
}

void raft_pr_infl_free_to(struct raft_progress *pr, uint64_t index)
{
	while (pr->infl_count && pr->infl[pr->infl_start] <= index) {
		pr->infl_bytes -= pr->infl_sz[pr->infl_start];
		pr->infl_start = (pr->infl_start + 1) % pr->infl_cap;
		pr->infl_count--;
	}
}
