/* bolt/freelist.c: free pages and pages pending release, like bbolt's
 * array freelist.
 *
 * Invariants:
 * 1. ids[] is sorted ascending without duplicates; a page is in ids[] or
 *    in one pending list or in neither (then a tree or meta uses it).
 * 2. Each queue (pend, pin) is ordered by txid ascending, one entry per
 *    freeing txid.
 * 3. Pages freed by txid T are moved to ids[] only by release(R, S) with
 *    T <= R, where R is the oldest txid any reader still reads: those
 *    readers' trees do not contain the pages.
 * 4. Pages in pin (of the last synced tree S, freed by T > S) also wait
 *    for T <= S, i.e. a synced commit at or after T: until then a power
 *    loss may bring S back, and S's tree must be intact.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engines/bolt/bolt_int.h"

static int fl_grow(uint64_t **a, size_t *cap, size_t need)
{
	size_t nc = *cap ? *cap : 64;
	uint64_t *p;

	if (need <= *cap)
		return 0;
	while (nc < need)
		nc *= 2;
	p = bolt_realloc(*a, nc * sizeof(*p));
	if (!p)
		return -ENOMEM;
	*a = p;
	*cap = nc;
	return 0;
}

static void pq_destroy(struct bolt_pendq *q)
{
	size_t i;

	for (i = 0; i < q->n; i++)
		free(q->p[i].ids);
	free(q->p);
	memset(q, 0, sizeof(*q));
}

void bolt_fl_destroy(struct bolt_freelist *fl)
{
	pq_destroy(&fl->pend);
	pq_destroy(&fl->pin);
	free(fl->ids);
	memset(fl, 0, sizeof(*fl));
}

int bolt_fl_alloc(struct bolt_freelist *fl, uint32_t np, uint64_t *pgid)
{
	size_t i, run = 0;

	if (np == 0 || fl->n == 0)
		return -ENOENT;
	if (np == 1) {
		/* The highest id: O(1), and keeps low pages for runs. */
		*pgid = fl->ids[--fl->n];
		return 0;
	}
	for (i = 0; i < fl->n; i++) {
		if (i > 0 && fl->ids[i] == fl->ids[i - 1] + 1)
			run++;
		else
			run = 1;
		if (run == np) {
			size_t first = i + 1 - np;

			*pgid = fl->ids[first];
			memmove(fl->ids + first, fl->ids + i + 1,
				(fl->n - i - 1) * sizeof(uint64_t));
			fl->n -= np;
			return 0;
		}
	}
	return -ENOENT;
}

/* Merge sorted src[0..n) into ids[]. */
static int fl_merge(struct bolt_freelist *fl, const uint64_t *src, size_t n)
{
	size_t i, j, k;
	int err;

	if (n == 0)
		return 0;
	err = fl_grow(&fl->ids, &fl->cap, fl->n + n);
	if (err)
		return err;
	i = fl->n;
	j = n;
	k = fl->n + n;
	while (j > 0) {
		if (i > 0 && fl->ids[i - 1] > src[j - 1])
			fl->ids[--k] = fl->ids[--i];
		else
			fl->ids[--k] = src[--j];
	}
	fl->n += n;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int bolt_fl_unalloc(struct bolt_freelist *fl, uint64_t pgid, uint32_t np)
{
	uint64_t one[64];
	uint32_t i, done;
	int err;

	for (done = 0; done < np; done += i) {
		for (i = 0; i < 64 && done + i < np; i++)
			one[i] = pgid + done + i;
		err = fl_merge(fl, one, i);
		if (err)
			return err;
	}
	return 0;
}

static int pq_free(struct bolt_pendq *q, uint64_t txid, uint64_t pgid,
		   uint32_t np)
{
	struct bolt_pending *p;
	uint32_t i;
	int err;

	if (q->n == 0 || q->p[q->n - 1].txid != txid) {
		if (q->n == q->cap) {
			size_t nc = q->cap ? q->cap * 2 : 8;
			struct bolt_pending *np2;

			np2 = bolt_realloc(q->p, nc * sizeof(*np2));
			if (!np2)
				return -ENOMEM;
			q->p = np2;
			q->cap = nc;
		}
		p = &q->p[q->n++];
		memset(p, 0, sizeof(*p));
		p->txid = txid;
	}
	p = &q->p[q->n - 1];
	err = fl_grow(&p->ids, &p->cap, p->n + np);
	if (err)
		return err;
	for (i = 0; i < np; i++)
		p->ids[p->n++] = pgid + i;
	return 0;
}

int bolt_fl_free(struct bolt_freelist *fl, uint64_t txid, uint64_t pgid,
		 uint32_t np, bool pin)
{
	return pq_free(pin ? &fl->pin : &fl->pend, txid, pgid, np);
}

static void pq_rollback(struct bolt_pendq *q, uint64_t txid)
{
	if (q->n && q->p[q->n - 1].txid == txid) {
		free(q->p[q->n - 1].ids);
		q->n--;
	}
}

void bolt_fl_rollback(struct bolt_freelist *fl, uint64_t txid)
{
	pq_rollback(&fl->pend, txid);
	pq_rollback(&fl->pin, txid);
}

/* Move the entries of q with txid <= upto into ids[]. */
static int pq_release(struct bolt_freelist *fl, struct bolt_pendq *q,
		      uint64_t upto)
{
	size_t k = 0;
	int err = 0;

	while (k < q->n && q->p[k].txid <= upto) {
		struct bolt_pending *p = &q->p[k];

		qsort(p->ids, p->n, sizeof(uint64_t), cmp_u64);
		err = fl_merge(fl, p->ids, p->n);
		if (err)
			break;
		free(p->ids);
		k++;
	}
	if (k) {
		memmove(q->p, q->p + k, (q->n - k) * sizeof(*q->p));
		q->n -= k;
	}
	return err;
}

int bolt_fl_release(struct bolt_freelist *fl, uint64_t readers,
		    uint64_t synced)
{
	int err = pq_release(fl, &fl->pend, readers);

	if (!err)
		err = pq_release(fl, &fl->pin,
				 synced < readers ? synced : readers);
	return err;
}

size_t bolt_fl_count(const struct bolt_freelist *fl)
{
	size_t i, n = fl->n;

	for (i = 0; i < fl->pend.n; i++)
		n += fl->pend.p[i].n;
	for (i = 0; i < fl->pin.n; i++)
		n += fl->pin.p[i].n;
	return n;
}

static size_t pq_copy(const struct bolt_pendq *q, uint64_t *out)
{
	size_t i, p = 0;

	for (i = 0; i < q->n; i++) {
		if (q->p[i].n)
			memcpy(out + p, q->p[i].ids,
			       q->p[i].n * sizeof(uint64_t));
		p += q->p[i].n;
	}
	return p;
}

/* Every commit writes this list: sort only the (few) pending ids, then
 * merge them with the sorted free ids from the back, in place. */
void bolt_fl_copyall(const struct bolt_freelist *fl, uint64_t *out)
{
	size_t i, p, k;
	size_t j = fl->n;

	p = pq_copy(&fl->pend, out);
	p += pq_copy(&fl->pin, out + p);
	if (p > 1)
		qsort(out, p, sizeof(uint64_t), cmp_u64);
	i = p;
	k = p + fl->n;
	while (j > 0) {
		if (i > 0 && out[i - 1] > fl->ids[j - 1])
			out[--k] = out[--i];
		else
			out[--k] = fl->ids[--j];
	}
}

int bolt_fl_set(struct bolt_freelist *fl, const uint64_t *ids, size_t n)
{
	bolt_fl_destroy(fl);
	if (n == 0)
		return 0;
	if (fl_grow(&fl->ids, &fl->cap, n))
		return -ENOMEM;
	memcpy(fl->ids, ids, n * sizeof(uint64_t));
	qsort(fl->ids, n, sizeof(uint64_t), cmp_u64);
	fl->n = n;
	return 0;
}
