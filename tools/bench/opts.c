/* opts: cairn-bench's command line (see bench.h, README.md). */
#include "tools/bench/bench.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "tools/bench/reqgen.h"

static const char *const usage_text =
	"usage: cairn-bench [flags] [put|range|txn-put|delete|mixed]\n"
	"  --endpoints H:P,..  servers (default 127.0.0.1:2379)\n"
	"  --clients N         requests in flight at once (default 1)\n"
	"  --conns M           HTTP/2 connections, shared (default 1)\n"
	"  --total N           requests to send (default 10000)\n"
	"  --duration D        run for D instead (10s, 500ms, 2m)\n"
	"  --key-size N        bytes per key with prefix (default 16)\n"
	"  --val-size N        bytes per value (default 8)\n"
	"  --key-space N       distinct keys (default 10000)\n"
	"  --sequential-keys   keys 0,1,2.. (default: seeded random)\n"
	"  --seed N            seed of the random keys (default 1)\n"
	"  --prefix P          key prefix (default bench/)\n"
	"  --consistency l|s   range: linearizable/serializable (l)\n"
	"  --read-ratio R      mixed: share of ranges (default 0.5)\n"
	"  --preload N         first write keys 0..N-1 in txns\n"
	"  --batch N           puts per preload txn, 1..128 (128)\n"
	"  --json              one JSON line instead of the text\n"
	"  --quiet             no progress lines on stderr\n"
	"  --connect-timeout D connect bound (default 5s)\n"
	"  --drain-timeout D   give up after D without a response (10s)\n";

enum {
	O_ENDPOINTS = 256,
	O_CLIENTS,
	O_CONNS,
	O_TOTAL,
	O_DURATION,
	O_KEY_SIZE,
	O_VAL_SIZE,
	O_KEY_SPACE,
	O_SEQ,
	O_SEED,
	O_PREFIX,
	O_CONSISTENCY,
	O_READ_RATIO,
	O_PRELOAD,
	O_BATCH,
	O_JSON,
	O_QUIET,
	O_CONNECT_TIMEOUT,
	O_DRAIN_TIMEOUT,
	O_HELP,
};

static const struct option long_opts[] = {
	{"endpoints", required_argument, NULL, O_ENDPOINTS},
	{"clients", required_argument, NULL, O_CLIENTS},
	{"conns", required_argument, NULL, O_CONNS},
	{"total", required_argument, NULL, O_TOTAL},
	{"duration", required_argument, NULL, O_DURATION},
	{"key-size", required_argument, NULL, O_KEY_SIZE},
	{"val-size", required_argument, NULL, O_VAL_SIZE},
	{"key-space", required_argument, NULL, O_KEY_SPACE},
	{"key-space-size", required_argument, NULL, O_KEY_SPACE},
	{"sequential-keys", no_argument, NULL, O_SEQ},
	{"seed", required_argument, NULL, O_SEED},
	{"prefix", required_argument, NULL, O_PREFIX},
	{"consistency", required_argument, NULL, O_CONSISTENCY},
	{"read-ratio", required_argument, NULL, O_READ_RATIO},
	{"preload", required_argument, NULL, O_PRELOAD},
	{"batch", required_argument, NULL, O_BATCH},
	{"json", no_argument, NULL, O_JSON},
	{"quiet", no_argument, NULL, O_QUIET},
	{"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
	{"drain-timeout", required_argument, NULL, O_DRAIN_TIMEOUT},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0},
};

static const char *const wl_names[] = {
	[BENCH_NONE] = "preload",  [BENCH_PUT] = "put",
	[BENCH_RANGE] = "range",   [BENCH_TXN_PUT] = "txn-put",
	[BENCH_DELETE] = "delete", [BENCH_MIXED] = "mixed",
};

const char *bench_workload_name(enum bench_workload w)
{
	return wl_names[w];
}

static void set_defaults(struct bench_cfg *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->ep[0].host, "127.0.0.1");
	strcpy(c->ep[0].port, "2379");
	c->nep = 1;
	c->clients = 1;
	c->conns = 1;
	c->total = 10000;
	c->key_size = 16;
	c->val_size = 8;
	c->key_space = 10000;
	c->seed = 1;
	strcpy(c->prefix, "bench/");
	c->read_ratio = 0.5;
	c->batch = REQGEN_MAX_KEYS;
	c->connect_timeout_ms = 5000;
	c->drain_ms = 10000;
}

/* A whole number in [lo, hi]. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

/* "10s", "500ms", "2m", "1h", or plain seconds; result in ms, > 0. */
static int parse_duration(const char *s, uint64_t *ms)
{
	char *end;
	double v, mul = 1000;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v <= 0)
		return -EINVAL;
	if (!strcmp(end, "ms"))
		mul = 1;
	else if (!strcmp(end, "m"))
		mul = 60000;
	else if (!strcmp(end, "h"))
		mul = 3600000;
	else if (*end && strcmp(end, "s"))
		return -EINVAL;
	*ms = (uint64_t)(v * mul + 0.5);
	return *ms ? 0 : -EINVAL;
}

/* One "host:port", "[v6]:port" or "http://host:port" into ep. */
static int parse_one_ep(const char *s, size_t n, struct bench_endpoint *ep)
{
	const char *colon, *hs = s;
	size_t hl;

	if (n > 7 && !strncmp(s, "http://", 7)) {
		s += 7;
		n -= 7;
		hs = s;
	}
	colon = memrchr(s, ':', n);
	if (!colon || colon == s ||
	    (size_t)(s + n - colon - 1) >= sizeof(ep->port) ||
	    s + n - colon - 1 == 0)
		return -EINVAL;
	hl = (size_t)(colon - hs);
	if (hs[0] == '[' && hl >= 2 && hs[hl - 1] == ']') {
		hs++;
		hl -= 2;
	}
	if (!hl || hl >= sizeof(ep->host))
		return -EINVAL;
	memcpy(ep->host, hs, hl);
	ep->host[hl] = 0;
	memcpy(ep->port, colon + 1, (size_t)(s + n - colon - 1));
	ep->port[s + n - colon - 1] = 0;
	return 0;
}

static int parse_endpoints(struct bench_cfg *c, const char *s)
{
	const char *p = s, *comma;
	size_t n;

	c->nep = 0;
	while (*p) {
		comma = strchr(p, ',');
		n = comma ? (size_t)(comma - p) : strlen(p);
		if (c->nep >= BENCH_MAX_ENDPOINTS ||
		    parse_one_ep(p, n, &c->ep[c->nep]))
			return -EINVAL;
		c->nep++;
		p += n + (comma ? 1 : 0);
	}
	return c->nep ? 0 : -EINVAL;
}

static int parse_workload(struct bench_cfg *c, const char *s)
{
	unsigned i;

	for (i = BENCH_PUT; i <= BENCH_MIXED; i++) {
		if (!strcmp(s, wl_names[i])) {
			c->workload = (enum bench_workload)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_ratio(const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || v < 0 || v > 1)
		return -EINVAL;
	*out = v;
	return 0;
}

/* A flag with a whole-number value in [lo, hi], stored as unsigned. */
static int set_uint(unsigned *dst, const char *a, uint64_t lo, uint64_t hi)
{
	uint64_t v;
	int rc = parse_u64(a, lo, hi, &v);

	if (!rc)
		*dst = (unsigned)v;
	return rc;
}

static int set_size(size_t *dst, const char *a, uint64_t lo, uint64_t hi)
{
	uint64_t v;
	int rc = parse_u64(a, lo, hi, &v);

	if (!rc)
		*dst = (size_t)v;
	return rc;
}

static int set_prefix(struct bench_cfg *c, const char *a)
{
	if (strlen(a) >= sizeof(c->prefix))
		return -EINVAL;
	strcpy(c->prefix, a);
	return 0;
}

static int set_consistency(struct bench_cfg *c, const char *a)
{
	if (strcmp(a, "l") && strcmp(a, "s"))
		return -EINVAL;
	c->serializable = a[0] == 's';
	return 0;
}

static int set_connect_timeout(struct bench_cfg *c, const char *a)
{
	uint64_t v;
	int rc = parse_duration(a, &v);

	if (!rc)
		c->connect_timeout_ms = v > 600000 ? 600000 : (int)v;
	return rc;
}

/* Apply one flag; -EINVAL if its value is bad. --total and --duration
 * exclude each other: the last one given wins. */
static int apply_opt(struct bench_cfg *c, int o, const char *a)
{
	switch (o) {
	case O_ENDPOINTS:
		return parse_endpoints(c, a);
	case O_CLIENTS:
		return set_uint(&c->clients, a, 1, 100000);
	case O_CONNS:
		return set_uint(&c->conns, a, 1, 1000);
	case O_TOTAL:
		c->duration_ms = 0;
		return parse_u64(a, 1, UINT64_MAX / 2, &c->total);
	case O_DURATION:
		c->total = 0;
		return parse_duration(a, &c->duration_ms);
	case O_KEY_SIZE:
		return set_size(&c->key_size, a, 1, 1 << 20);
	case O_VAL_SIZE:
		return set_size(&c->val_size, a, 0, 64 << 20);
	case O_KEY_SPACE:
		return parse_u64(a, 1, UINT64_MAX / 2, &c->key_space);
	case O_SEQ:
		c->sequential = 1;
		return 0;
	case O_SEED:
		return parse_u64(a, 0, UINT64_MAX, &c->seed);
	case O_PREFIX:
		return set_prefix(c, a);
	case O_CONSISTENCY:
		return set_consistency(c, a);
	case O_READ_RATIO:
		return parse_ratio(a, &c->read_ratio);
	case O_PRELOAD:
		return parse_u64(a, 1, UINT64_MAX / 2, &c->preload);
	case O_BATCH:
		return set_uint(&c->batch, a, 1, REQGEN_MAX_KEYS);
	case O_JSON:
		c->json = 1;
		return 0;
	case O_QUIET:
		c->quiet = 1;
		return 0;
	case O_CONNECT_TIMEOUT:
		return set_connect_timeout(c, a);
	case O_DRAIN_TIMEOUT:
		return parse_duration(a, &c->drain_ms);
	}
	return -EINVAL;
}

/* Checks across flags: the keys must fit in key_size. */
static int check_cfg(const struct bench_cfg *c, FILE *err)
{
	size_t plen = strlen(c->prefix);
	uint64_t space = c->key_space;

	if (c->preload > space)
		space = c->preload;
	if (c->key_size < plen + reqgen_digits_for(space)) {
		fprintf(err,
			"cairn-bench: --key-size %zu is too small for "
			"prefix '%s' and %llu keys (needs %zu)\n",
			c->key_size, c->prefix, (unsigned long long)space,
			plen + reqgen_digits_for(space));
		return -EINVAL;
	}
	if (c->workload == BENCH_NONE && !c->preload) {
		fprintf(err, "cairn-bench: name a workload or give --preload "
			     "(--help for usage)\n");
		return -EINVAL;
	}
	return 0;
}

int bench_parse(struct bench_cfg *cfg, int argc, char **argv, FILE *out,
		FILE *err)
{
	int o, idx;

	set_defaults(cfg);
	optind = 0; /* glibc: full re-initialisation (tests parse often) */
	opterr = 0;
	while ((o = getopt_long(argc, argv, "", long_opts, &idx)) != -1) {
		if (o == O_HELP) {
			fputs(usage_text, out);
			return 1;
		}
		if (o == '?' || o == ':') {
			fprintf(err,
				"cairn-bench: unknown flag or missing value: "
				"%s\n",
				argv[optind - 1]);
			return -EINVAL;
		}
		if (apply_opt(cfg, o, optarg)) {
			fprintf(err, "cairn-bench: bad value for --%s: '%s'\n",
				long_opts[idx].name, optarg ? optarg : "");
			return -EINVAL;
		}
	}
	if (optind < argc && parse_workload(cfg, argv[optind])) {
		fprintf(err, "cairn-bench: unknown workload '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	if (optind + 1 < argc) {
		fprintf(err, "cairn-bench: unexpected argument '%s'\n",
			argv[optind + 1]);
		return -EINVAL;
	}
	return check_cfg(cfg, err);
}
