/* log: raft's in-memory log (see struct raft_log in raft_int.h).
 *
 * Entries' data is copied once when an entry enters the log and freed when
 * it leaves (truncate, compact, free). While a ready is outstanding the
 * data of leaving entries is parked in the grave instead, because the
 * ready's arrays may still point at it.
 */
#include "core/raft/raft_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/log.h"

int raft_log_grow_scratch(struct raft_log *l)
{
	struct raft_entry *e;

	if (l->scratch_cap >= l->cap)
		return 0;
	e = realloc(l->scratch_a, l->cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	l->scratch_a = e;
	e = realloc(l->scratch_b, l->cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	l->scratch_b = e;
	l->scratch_cap = l->cap;
	return 0;
}

static int log_grow(struct raft_log *l, size_t need)
{
	struct raft_entry *e;
	size_t cap = l->cap ? l->cap : 64;

	if (need <= l->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	e = realloc(l->ents, cap * sizeof(*e));
	if (!e)
		return -ENOMEM;
	l->ents = e;
	l->cap = cap;
	/* The scratch arrays follow, so raft_ready() never allocates; not
	 * while a ready is out (rd points into them): raft_advance does it.
	 * Failure only makes readies smaller. */
	if (!l->hold)
		(void)raft_log_grow_scratch(l);
	return 0;
}

static void log_drop_data(struct raft_log *l, uint8_t *data)
{
	void **g;
	size_t cap;

	if (!data)
		return;
	if (!l->hold) {
		free(data);
		return;
	}
	if (l->n_grave == l->cap_grave) {
		cap = l->cap_grave ? l->cap_grave * 2 : 16;
		g = realloc(l->grave, cap * sizeof(*g));
		if (!g) {
			/* Freeing could hand the caller a dangling pointer;
			 * leaking a little on OOM is the lesser evil. */
			log_error("raft: out of memory, leaking an entry");
			return;
		}
		l->grave = g;
		l->cap_grave = cap;
	}
	l->grave[l->n_grave++] = data;
}

int raft_log_init(struct raft_log *l, const struct raft_entry *ents, size_t n,
		  uint64_t snap_index, uint64_t snap_term)
{
	memset(l, 0, sizeof(*l));
	l->snap_index = n > 0 ? ents[0].index - 1 : snap_index;
	/* Without a given compaction point, the term of snap_index is unknown
	 * until raft_compact() tells us (0 at the very start of history). */
	l->snap_term = l->snap_index == snap_index ? snap_term : 0;
	return raft_log_append(l, ents, n);
}

void raft_log_free(struct raft_log *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->ents[i].data);
	l->hold = false;
	raft_log_grave_flush(l);
	free(l->grave);
	free(l->ents);
	free(l->scratch_a);
	free(l->scratch_b);
	memset(l, 0, sizeof(*l));
}

uint64_t raft_log_last_index(const struct raft_log *l)
{
	return l->snap_index + l->n;
}

uint64_t raft_log_last_term(const struct raft_log *l)
{
	return l->n ? l->ents[l->n - 1].term : l->snap_term;
}

int raft_log_term(const struct raft_log *l, uint64_t index, uint64_t *term)
{
	if (index == 0 && l->snap_index == 0) {
		*term = 0; /* before the first entry ever */
		return 0;
	}
	if (index > raft_log_last_index(l))
		return -ENOENT;
	if (index < l->snap_index)
		return -ERANGE;
	if (index == l->snap_index) {
		if (l->snap_term == 0)
			return -ERANGE;
		*term = l->snap_term;
		return 0;
	}
	*term = l->ents[index - l->snap_index - 1].term;
	return 0;
}

bool raft_log_match_term(const struct raft_log *l, uint64_t index,
			 uint64_t term)
{
	uint64_t t;

	return raft_log_term(l, index, &t) == 0 && t == term;
}

struct raft_entry *raft_log_at(const struct raft_log *l, uint64_t index)
{
	if (index <= l->snap_index || index > raft_log_last_index(l))
		return NULL;
	return &l->ents[index - l->snap_index - 1];
}

bool raft_log_up_to_date(const struct raft_log *l, uint64_t index,
			 uint64_t term)
{
	uint64_t lt = raft_log_last_term(l);

	return term > lt || (term == lt && index >= raft_log_last_index(l));
}

int raft_log_append(struct raft_log *l, const struct raft_entry *ents, size_t n)
{
	size_t i, done;
	uint8_t *d;
	int err;

	err = log_grow(l, l->n + n);
	if (err)
		return err;
	for (done = 0; done < n; done++) {
		d = NULL;
		if (ents[done].len) {
			d = malloc(ents[done].len);
			if (!d)
				goto fail;
			memcpy(d, ents[done].data, ents[done].len);
		}
		l->ents[l->n + done] = ents[done];
		l->ents[l->n + done].data = d;
		l->ents[l->n + done].index = raft_log_last_index(l) + done + 1;
	}
	l->n += n;
	return 0;
fail:
	for (i = 0; i < done; i++)
		free(l->ents[l->n + i].data);
	return -ENOMEM;
}

int raft_log_append_owned(struct raft_log *l, uint64_t term, uint32_t type,
			  uint8_t *data, size_t len)
{
	struct raft_entry *e;
	int err;

	err = log_grow(l, l->n + 1);
	if (err)
		return err;
	e = &l->ents[l->n];
	e->term = term;
	e->index = raft_log_last_index(l) + 1;
	e->type = type;
	e->data = data;
	e->len = len;
	l->n++;
	return 0;
}

void raft_log_truncate(struct raft_log *l, uint64_t from)
{
	uint64_t keep;

	if (from <= l->snap_index || from > raft_log_last_index(l))
		return;
	keep = from - l->snap_index - 1;
	while (l->n > keep)
		log_drop_data(l, l->ents[--l->n].data);
	/* The new entries at from.. must be handed out (again) and made
	 * durable (again) before they count. */
	if (l->unstable > from)
		l->unstable = from;
	if (l->stable >= from)
		l->stable = from - 1;
}

void raft_log_compact(struct raft_log *l, uint64_t index)
{
	size_t drop, i;

	if (index <= l->snap_index || index > raft_log_last_index(l))
		return;
	drop = index - l->snap_index;
	l->snap_term = l->ents[drop - 1].term;
	for (i = 0; i < drop; i++)
		log_drop_data(l, l->ents[i].data);
	memmove(l->ents, l->ents + drop, (l->n - drop) * sizeof(*l->ents));
	l->n -= drop;
	l->snap_index = index;
}

void raft_log_grave_flush(struct raft_log *l)
{
	while (l->n_grave)
		free(l->grave[--l->n_grave]);
}

uint64_t raft_log_hint(const struct raft_log *l, uint64_t index, uint64_t term)
{
	uint64_t t;

	if (index > raft_log_last_index(l))
		index = raft_log_last_index(l);
	for (; index > 0; index--) {
		if (raft_log_term(l, index, &t) != 0)
			break; /* compacted: the leader will find out */
		if (t <= term)
			break;
	}
	return index;
}

void raft_log_restore(struct raft_log *l, uint64_t index, uint64_t term)
{
	while (l->n)
		log_drop_data(l, l->ents[--l->n].data);
	l->snap_index = index;
	l->snap_term = term;
	l->commit = l->applied = l->applying = l->stable = index;
	l->unstable = index + 1;
}

void raft_log_restore_keep(struct raft_log *l, uint64_t index)
{
	raft_log_compact(l, index);
	l->applied = l->applying = index;
	if (l->commit < index)
		l->commit = index;
	if (l->stable < index)
		l->stable = index;
	if (l->unstable < index + 1)
		l->unstable = index + 1;
}
