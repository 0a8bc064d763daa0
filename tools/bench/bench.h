/* cairn-bench: a gRPC load generator for any etcd v3 endpoint.
 *
 * Modules: opts.c (command line -> struct bench_cfg), run.c (the libevent
 * loop: connections, clients, the run's phases), report.c (text and JSON
 * results), with hist.h (latency histogram), reqgen.h (pre-encoded
 * requests) and h2c.h (HTTP/2 client connection) below them.
 */
#ifndef CAIRN_TOOLS_BENCH_BENCH_H
#define CAIRN_TOOLS_BENCH_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tools/bench/hist.h"

#define BENCH_MAX_ENDPOINTS 16
#define BENCH_NSTATUS 17 /* gRPC status codes 0..16 */

enum bench_workload {
	BENCH_NONE, /* only --preload */
	BENCH_PUT,
	BENCH_RANGE,
	BENCH_TXN_PUT,
	BENCH_DELETE,
	BENCH_MIXED, /* range or put, --read-ratio of them ranges */
};

struct bench_endpoint {
	char host[256];
	char port[16];
};

struct bench_cfg {
	enum bench_workload workload;
	struct bench_endpoint ep[BENCH_MAX_ENDPOINTS];
	unsigned nep;
	unsigned clients;     /* requests in flight at once */
	unsigned conns;	      /* HTTP/2 connections */
	uint64_t total;	      /* requests; 0 with duration_ms */
	uint64_t duration_ms; /* 0 with total */
	size_t key_size;      /* whole key, prefix included */
	size_t val_size;
	uint64_t key_space; /* distinct keys: numbers 0 .. key_space-1 */
	int sequential;	    /* keys in order (else seeded random) */
	uint64_t seed;
	char prefix[128];
	int serializable;  /* --consistency s */
	double read_ratio; /* mixed: share of ranges, 0..1 */
	uint64_t preload;  /* keys 0 .. preload-1 written first */
	unsigned batch;	   /* preload: puts per txn, 1..128 */
	int json;
	int quiet;
	int connect_timeout_ms;
	uint64_t drain_ms; /* wait for requests in flight at the end */
};

/* What one phase (preload or the workload) measured. */
struct bench_result {
	const char *name;  /* workload name */
	uint64_t requests; /* completed, ok or not */
	uint64_t errors;   /* requests with grpc-status != 0 or none */
	uint64_t by_status[BENCH_NSTATUS];
	uint64_t transport;  /* requests that got no gRPC status */
	uint64_t unfinished; /* still in flight when the run was cut */
	uint64_t keys;	     /* keys written (preload: batch * requests) */
	uint64_t resp_bytes;
	double seconds;
	double cpu_user, cpu_sys; /* the bench's own CPU, seconds */
	char first_error[200];	  /* first error's message, "" if none */
	int aborted;	 /* 1 if the run ended early (all conns lost) */
	struct hist lat; /* ns, completed requests (errors included) */
};

/* Parse argv into cfg (defaults first). Writes errors (naming the flag)
 * to err. Returns 0, 1 when --help was printed to out (caller exits 0), or
 * -EINVAL on a bad command line. */
int bench_parse(struct bench_cfg *cfg, int argc, char **argv, FILE *out,
		FILE *err);

/* The workload's name ("put", "range", ...), "preload" for BENCH_NONE. */
const char *bench_workload_name(enum bench_workload w);

/* Run the preload phase (if cfg->preload) then the workload (if any).
 * pre and res are the caller's; each is filled in for its phase (pre is
 * untouched when there is no preload). Progress goes to stderr unless
 * cfg->quiet. Returns 0, or a negative error when no connection could be
 * made (message on stderr); errors of individual requests are counted in
 * the results, not returned. */
int bench_run(const struct bench_cfg *cfg, struct bench_result *pre,
	      struct bench_result *res);

/* Print r as text (several lines) to out. */
void bench_report_text(FILE *out, const struct bench_cfg *cfg,
		       const struct bench_result *r);

/* Print r as one JSON object on one line to out. */
void bench_report_json(FILE *out, const struct bench_cfg *cfg,
		       const struct bench_result *r);

/* gRPC status name ("OK", "UNAVAILABLE", ...) for 0..16, else "?". */
const char *bench_status_name(int code);

#endif
