/* hist: a small HdrHistogram-like latency histogram (log-linear buckets).
 *
 * Values are unsigned 64-bit integers (cairn-bench records nanoseconds).
 * Values below 2 * HIST_SUB are counted exactly; above that each power of
 * two [2^k, 2^(k+1)) is split into HIST_SUB equal buckets, so any value is
 * known to within 1 / HIST_SUB (under 0.8%) of itself. Values from 2^HIST_
 * MAX_BITS up land in the last bucket (min, max and mean stay exact).
 *
 * Recording is one clz, a shift and an increment: no allocation, no
 * floating point. The struct is plain memory (about 36 KB): embed it or
 * allocate it; hist_reset() makes it empty; hist_merge() adds two.
 */
#ifndef CAIRN_TOOLS_BENCH_HIST_H
#define CAIRN_TOOLS_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS) /* buckets per power of two */
#define HIST_MAX_BITS 42	       /* 2^42 ns is about 73 minutes */
#define HIST_NBUCKETS                                                          \
	(2 * HIST_SUB + (HIST_MAX_BITS - HIST_SUB_BITS - 1) * HIST_SUB)

struct hist {
	uint64_t count;
	uint64_t min, max; /* exact; min is UINT64_MAX when empty */
	double sum;	   /* exact enough for the mean */
	uint64_t b[HIST_NBUCKETS];
};

/* Empty h. */
void hist_reset(struct hist *h);

/* Count one value v. */
void hist_record(struct hist *h, uint64_t v);

/* Add every value counted in src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);

/* The value at percentile p (0 < p <= 100): the highest value equivalent
 * to the bucket holding the ceil(p/100 * count)-th smallest value, clamped
 * to [min, max] (so p = 100 gives max exactly). 0 when h is empty. */
uint64_t hist_percentile(const struct hist *h, double p);

/* Mean of the values, 0 when empty. */
double hist_mean(const struct hist *h);

/* Bucket index of v, and the lowest and highest value of bucket i (for
 * tests and for anyone walking the buckets). i < HIST_NBUCKETS. */
unsigned hist_index(uint64_t v);
uint64_t hist_lowest(unsigned i);
uint64_t hist_highest(unsigned i);

#endif
