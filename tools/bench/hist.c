/* hist: log-linear latency histogram (see hist.h).
 *
 * Bucket layout, with S = HIST_SUB:
 *   index 0 .. 2S-1          value v itself (width 1)
 *   index 2S + (k-1)*S + j   values [(S+j) << k, (S+j+1) << k), k >= 1,
 *                            j in [0, S): width 2^k
 * Invariants:
 *   1. hist_lowest(hist_index(v)) <= v <= hist_highest(hist_index(v)) for
 *      every v < 2^HIST_MAX_BITS.
 *   2. Buckets are ordered: hist_highest(i) + 1 == hist_lowest(i + 1).
 *   3. sum of b[] == count.
 */
#include "tools/bench/hist.h"

#include <string.h>

void hist_reset(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

unsigned hist_index(uint64_t v)
{
	unsigned msb, k, idx;

	if (v < 2 * HIST_SUB)
		return (unsigned)v;
	msb = 63 - (unsigned)__builtin_clzll(v);
	k = msb - HIST_SUB_BITS; /* v >> k is in [S, 2S) */
	idx = 2 * HIST_SUB + (k - 1) * HIST_SUB +
	      (unsigned)((v >> k) - HIST_SUB);
	return idx < HIST_NBUCKETS ? idx : HIST_NBUCKETS - 1;
}

uint64_t hist_lowest(unsigned i)
{
	unsigned k, j;

	if (i < 2 * HIST_SUB)
		return i;
	k = (i - 2 * HIST_SUB) / HIST_SUB + 1;
	j = (i - 2 * HIST_SUB) % HIST_SUB;
	return (uint64_t)(HIST_SUB + j) << k;
}

uint64_t hist_highest(unsigned i)
{
	if (i + 1 >= HIST_NBUCKETS)
		return UINT64_MAX;
	return hist_lowest(i + 1) - 1;
}

void hist_record(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v < h->min)
		h->min = v;
	if (v > h->max)
		h->max = v;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	unsigned i;

	if (!src->count)
		return;
	for (i = 0; i < HIST_NBUCKETS; i++)
		dst->b[i] += src->b[i];
	dst->count += src->count;
	dst->sum += src->sum;
	if (src->min < dst->min)
		dst->min = src->min;
	if (src->max > dst->max)
		dst->max = src->max;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	uint64_t rank, seen = 0, v;
	unsigned i;

	if (!h->count)
		return 0;
	if (p >= 100.0)
		return h->max;
	rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_NBUCKETS; i++) {
		seen += h->b[i];
		if (seen >= rank)
			break;
	}
	v = hist_highest(i < HIST_NBUCKETS ? i : HIST_NBUCKETS - 1);
	if (v > h->max)
		v = h->max;
	if (v < h->min)
		v = h->min;
	return v;
}

double hist_mean(const struct hist *h)
{
	return h->count ? h->sum / (double)h->count : 0.0;
}
