/* config: the option table, defaults, --help, and small helpers.
 *
 * Invariants:
 *  1. Every flag cairn accepts has exactly one row in config_opts[]; the
 *     argv, ETCD_* and YAML readers and --help all read that row, so a
 *     flag cannot exist in one place and be missing in another.
 *  2. Every char * in struct config is NULL or owned heap memory, and every
 *     URL array holds exactly its n_* entries, at every point where the
 *     struct is visible to a caller (so config_free() is always safe).
 *  3. Rows of one --help section are contiguous; config_groups[] names
 *     the first row of each.
 */
#include "conf/config_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F(field) offsetof(struct config, field)
#define STR(n, field, def, help)                                               \
	{                                                                      \
		n, COPT_STR, F(field), 0, 0, NULL, 0, def, help                \
	}
#define BOOL(n, field, help)                                                   \
	{                                                                      \
		n, COPT_BOOL, F(field), 0, 0, NULL, 0, "'false'", help         \
	}
#define U64(n, field, max, def, help)                                          \
	{                                                                      \
		n, COPT_U64, F(field), 0, max, NULL, 0, def, help              \
	}
#define DUR(n, field, def, help)                                               \
	{                                                                      \
		n, COPT_DUR, F(field), 0, 0, NULL, 0, def, help                \
	}
#define URLS(n, field, fl, def, help)                                          \
	{                                                                      \
		n, COPT_URLS, F(field), F(n_##field), 0, NULL, fl, def, help   \
	}
#define ENUM(n, field, ch, def, help)                                          \
	{                                                                      \
		n, COPT_ENUM, F(field), 0, 0, ch, 0, def, help                 \
	}
#define IGN(n)                                                                 \
	{                                                                      \
		n, COPT_IGNORED, 0, 0, 0, NULL, 0, NULL, NULL                  \
	}
#define IGNB(n)                                                                \
	{                                                                      \
		n, COPT_IGNORED_BOOL, 0, 0, 0, NULL, 0, NULL, NULL             \
	}
#define REFUSE(n)                                                              \
	{                                                                      \
		n, COPT_REFUSED, 0, 0, 0, NULL, 0, NULL, NULL                  \
	}

/* Table order is --help order; config_groups[] names where sections start. */
const struct copt config_opts[] = {
	/* Member */
	STR("name", name, "'default'", "Human-readable name for this member."),
	STR("data-dir", data_dir, "'${name}.cairn'",
	    "Path to the data directory."),
	STR("wal-dir", wal_dir, "''", "Path to the dedicated wal directory."),
	U64("snapshot-count", snapshot_count, UINT64_MAX, "'100000'",
	    "Number of committed transactions to trigger a snapshot to disk."),
	U64("heartbeat-interval", heartbeat_ms, UINT32_MAX, "'100'",
	    "Time (in milliseconds) of a heartbeat interval."),
	U64("election-timeout", election_ms, UINT32_MAX, "'1000'",
	    "Time (in milliseconds) for an election to timeout. See tuning "
	    "documentation for details."),
	URLS("listen-peer-urls", listen_peer_urls, 0, "'http://localhost:2380'",
	     "List of URLs to listen on for peer traffic."),
	URLS("listen-client-urls", listen_client_urls, 0,
	     "'http://localhost:2379'",
	     "List of URLs to listen on for client traffic."),
	U64("quota-backend-bytes", quota_backend_bytes, INT64_MAX, "'0'",
	    "Raise alarms when backend size exceeds the given quota (0 "
	    "defaults to low space quota)."),
	U64("max-txn-ops", max_txn_ops, UINT32_MAX, "'128'",
	    "Maximum number of operations permitted in a transaction."),
	U64("max-request-bytes", max_request_bytes, UINT32_MAX, "'1572864'",
	    "Maximum client request size in bytes the server will accept."),
	U64("max-concurrent-streams", max_concurrent_streams, UINT32_MAX,
	    "'math.MaxUint32'",
	    "Maximum concurrent streams that each client can open at a time."),
	DUR("grpc-keepalive-min-time", grpc_keepalive_min_time_ms, "'5s'",
	    "Minimum duration interval that a client should wait before "
	    "pinging server."),
	DUR("grpc-keepalive-interval", grpc_keepalive_interval_ms, "'2h'",
	    "Frequency duration of server-to-client ping to check if a "
	    "connection is alive (0 to disable)."),
	DUR("grpc-keepalive-timeout", grpc_keepalive_timeout_ms, "'20s'",
	    "Additional duration of wait before closing a non-responsive "
	    "connection (0 to disable)."),

	/* Clustering */
	URLS("initial-advertise-peer-urls", initial_advertise_peer_urls, 0,
	     "'http://localhost:2380'",
	     "List of this member's peer URLs to advertise to the rest of the "
	     "cluster."),
	STR("initial-cluster", initial_cluster,
	    "'default=http://localhost:2380'",
	    "Initial cluster configuration for bootstrapping."),
	ENUM("initial-cluster-state", initial_cluster_state, "new|existing",
	     "'new'", "Initial cluster state ('new' or 'existing')."),
	STR("initial-cluster-token", initial_cluster_token, "'etcd-cluster'",
	    "Initial cluster token for the etcd cluster during bootstrap.\n"
	    "Specifying this can protect you from unintended cross-cluster "
	    "interaction when running multiple clusters."),
	URLS("advertise-client-urls", advertise_client_urls, 0,
	     "'http://localhost:2379'",
	     "List of this member's client URLs to advertise to the public.\n"
	     "The client URLs advertised should be accessible to machines that "
	     "talk to etcd cluster. etcd client libraries parse these URLs to "
	     "connect to the cluster."),
	{"strict-reconfig-check", COPT_BOOL, F(strict_reconfig_check), 0, 0,
	 NULL, 0, "'true'",
	 "Reject reconfiguration requests that would cause quorum loss."},
	STR("auto-compaction-retention", auto_compaction_retention, "'0'",
	    "Auto compaction retention length. 0 means disable auto "
	    "compaction."),
	ENUM("auto-compaction-mode", auto_compaction_mode, "periodic|revision",
	     "'periodic'",
	     "Interpret 'auto-compaction-retention' one of: periodic|revision. "
	     "'periodic' for duration based retention, defaulting to hours if "
	     "no time unit is provided (e.g. '5m'). 'revision' for revision "
	     "number based retention."),
	BOOL("enable-v2", enable_v2,
	     "Accept etcd V2 client requests. [cairn] Not supported: accepted "
	     "and ignored."),

	/* Security */
	STR("cert-file", cert_file, "''",
	    "Path to the client server TLS cert file."),
	STR("key-file", key_file, "''",
	    "Path to the client server TLS key file."),
	BOOL("client-cert-auth", client_cert_auth,
	     "Enable client cert authentication."),
	STR("trusted-ca-file", trusted_ca_file, "''",
	    "Path to the client server TLS trusted CA cert file."),
	BOOL("auto-tls", auto_tls, "Client TLS using generated certificates."),
	STR("peer-cert-file", peer_cert_file, "''",
	    "Path to the peer server TLS cert file."),
	STR("peer-key-file", peer_key_file, "''",
	    "Path to the peer server TLS key file."),
	BOOL("peer-client-cert-auth", peer_client_cert_auth,
	     "Enable peer client cert authentication."),
	STR("peer-trusted-ca-file", peer_trusted_ca_file, "''",
	    "Path to the peer server TLS trusted CA file."),
	BOOL("peer-auto-tls", peer_auto_tls,
	     "Peer TLS using self-generated certificates if --peer-key-file "
	     "and --peer-cert-file are not provided."),

	/* Profiling and Monitoring */
	BOOL("enable-pprof", enable_pprof,
	     "Enable runtime profiling data via HTTP server. [cairn] Accepted "
	     "and ignored."),
	URLS("listen-metrics-urls", listen_metrics_urls, COPT_URLS_EMPTY, "''",
	     "List of URLs to listen on for the metrics and health endpoints."),

	/* Logging */
	ENUM("logger", logger, "capnslog|zap", "'capnslog'",
	     "Specify 'zap' for structured logging or 'capnslog'. [cairn] "
	     "Accepted; cairn has one log format."),
	STR("log-outputs", log_outputs, "'default'",
	    "Specify 'stdout' or 'stderr' to skip journald logging even when "
	    "running under systemd, or list of comma separated output targets. "
	    "[cairn] Accepted; cairn logs to stderr."),
	ENUM("log-level", log_level, "debug|info|warn|error|panic|fatal",
	     "'info'",
	     "Configures log level. Only supports debug, info, warn, error, "
	     "panic, or fatal."),

	/* Unsafe */
	BOOL("force-new-cluster", force_new_cluster,
	     "Force to create a new one-member cluster."),
	BOOL("debug", debug,
	     "Enable debug-level logging. Use '--log-level=debug' instead."),

	/* Experimental */
	DUR("experimental-watch-progress-notify-interval",
	    watch_progress_notify_ms, "'10m0s'",
	    "Duration of periodic watch progress notifications."),

	/* cairn */
	STR("backend", backend, "(built-in default engine)",
	    "Storage engine: one of the engines this binary was built with "
	    "(bolt, sqlite, rocksdb)."),
	BOOL("experimental-test-faults", test_faults,
	     "TEST ONLY, never in production: serve PUT /cairn/test/drop on "
	     "the client URLs,\nwhose body (comma-separated hex member ids) "
	     "makes this member drop the peer\ntraffic to and from those "
	     "members; an empty body heals."),

	/* Usage header */
	{"config-file", COPT_STR, F(config_file), 0, 0, NULL,
	 COPT_NO_ENV | COPT_NO_YAML | COPT_HIDDEN, "''",
	 "Path to the server configuration file."},
	{"version", COPT_BOOL, F(show_version), 0, 0, NULL,
	 COPT_NO_ENV | COPT_NO_YAML | COPT_HIDDEN, "'false'",
	 "Print the version and exit."},
	{"help", COPT_BOOL, F(show_help), 0, 0, NULL,
	 COPT_NO_ENV | COPT_NO_YAML | COPT_HIDDEN, "'false'",
	 "Show the help information and exit."},

	/* etcd 3.4 flags cairn does not implement */
	IGN("max-snapshots"),
	IGN("max-wals"),
	IGN("backend-batch-interval"),
	IGN("backend-batch-limit"),
	IGN("discovery-fallback"),
	IGN("discovery-proxy"),
	IGN("discovery-srv-name"),
	IGN("client-crl-file"),
	IGN("client-cert-allowed-hostname"),
	IGN("peer-crl-file"),
	IGN("peer-cert-allowed-cn"),
	IGN("peer-cert-allowed-hostname"),
	IGN("cipher-suites"),
	IGN("cors"),
	IGN("host-whitelist"),
	IGN("auth-token"),
	IGN("bcrypt-cost"),
	IGN("auth-token-ttl"),
	IGN("metrics"),
	IGN("proxy"),
	IGN("proxy-failure-wait"),
	IGN("proxy-refresh-interval"),
	IGN("proxy-dial-timeout"),
	IGN("proxy-write-timeout"),
	IGN("proxy-read-timeout"),
	IGN("log-output"),
	IGN("log-package-levels"),
	IGN("experimental-corrupt-check-time"),
	IGN("experimental-enable-v2v3"),
	IGN("experimental-backend-bbolt-freelist-type"),
	IGN("experimental-compaction-batch-limit"),
	IGN("experimental-warning-apply-duration"),
	IGNB("initial-election-tick-advance"),
	IGNB("pre-vote"),
	IGNB("experimental-initial-corrupt-check"),
	IGNB("experimental-enable-lease-checkpoint"),
	IGNB("experimental-enable-lease-checkpoint-persist"),
	IGNB("experimental-peer-skip-client-san-verification"),
	IGNB("enable-grpc-gateway"),
	IGNB("unsafe-no-fsync"),
	REFUSE("discovery"),
	REFUSE("discovery-srv"),
};

const size_t config_nopts = sizeof(config_opts) / sizeof(config_opts[0]);

_Static_assert(sizeof(config_opts) / sizeof(config_opts[0]) <= CONFIG_NOPTS_MAX,
	       "raise CONFIG_NOPTS_MAX");

/* --help sections: the first flag of each, in table order. */
static const struct {
	const char *first;
	const char *title;
} config_groups[] = {
	{"name", "Member"},
	{"initial-advertise-peer-urls", "Clustering"},
	{"cert-file", "Security"},
	{"enable-pprof", "Profiling and Monitoring"},
	{"logger", "Logging"},
	{"force-new-cluster", "Unsafe feature"},
	{"backend", "cairn"},
};

const struct copt *config_opt_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < config_nopts; i++) {
		if (strlen(config_opts[i].name) == len &&
		    memcmp(config_opts[i].name, name, len) == 0)
			return &config_opts[i];
	}
	return NULL;
}

void config_errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!errbuf || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

int config_str_set(char **dst, const char *s)
{
	char *copy = strdup(s);

	if (!copy)
		return -ENOMEM;
	free(*dst);
	*dst = copy;
	return 0;
}

/* Set a default string; remember running out of memory for later. */
static void def_str(struct config *c, char **dst, const char *s)
{
	if (config_str_set(dst, s) < 0)
		c->defaults_err = -ENOMEM;
}

static void def_url(struct config *c, struct config_url **dst, size_t *n,
		    const char *s)
{
	const char *why, *bad;
	size_t badlen;

	if (config_urls_parse(s, dst, n, &why, &bad, &badlen) < 0)
		c->defaults_err = -ENOMEM; /* the defaults are valid URLs */
}

void config_defaults(struct config *c, const char *default_backend)
{
	memset(c, 0, sizeof(*c));
	def_str(c, &c->name, CONFIG_DEFAULT_NAME);
	def_str(c, &c->data_dir, CONFIG_DEFAULT_NAME ".cairn");
	def_str(c, &c->wal_dir, "");
	c->snapshot_count = CONFIG_DEFAULT_SNAPSHOT_COUNT;
	c->heartbeat_ms = CONFIG_DEFAULT_HEARTBEAT_MS;
	c->election_ms = CONFIG_DEFAULT_ELECTION_MS;
	c->max_request_bytes = CONFIG_DEFAULT_MAX_REQUEST_BYTES;
	c->max_txn_ops = CONFIG_DEFAULT_MAX_TXN_OPS;
	c->max_concurrent_streams = CONFIG_DEFAULT_MAX_STREAMS;
	c->grpc_keepalive_min_time_ms = CONFIG_DEFAULT_KEEPALIVE_MIN_TIME_MS;
	c->grpc_keepalive_interval_ms = CONFIG_DEFAULT_KEEPALIVE_INTERVAL_MS;
	c->grpc_keepalive_timeout_ms = CONFIG_DEFAULT_KEEPALIVE_TIMEOUT_MS;
	c->watch_progress_notify_ms = CONFIG_DEFAULT_WATCH_PROGRESS_MS;
	def_url(c, &c->listen_client_urls, &c->n_listen_client_urls,
		CONFIG_DEFAULT_CLIENT_URL);
	def_url(c, &c->advertise_client_urls, &c->n_advertise_client_urls,
		CONFIG_DEFAULT_CLIENT_URL);
	def_url(c, &c->listen_peer_urls, &c->n_listen_peer_urls,
		CONFIG_DEFAULT_PEER_URL);
	def_url(c, &c->initial_advertise_peer_urls,
		&c->n_initial_advertise_peer_urls, CONFIG_DEFAULT_PEER_URL);
	def_str(c, &c->initial_cluster,
		CONFIG_DEFAULT_NAME "=" CONFIG_DEFAULT_PEER_URL);
	def_str(c, &c->initial_cluster_state, "new");
	def_str(c, &c->initial_cluster_token, CONFIG_DEFAULT_CLUSTER_TOKEN);
	c->strict_reconfig_check = true;
	def_str(c, &c->auto_compaction_mode, "periodic");
	def_str(c, &c->auto_compaction_retention, "0");
	def_str(c, &c->cert_file, "");
	def_str(c, &c->key_file, "");
	def_str(c, &c->trusted_ca_file, "");
	def_str(c, &c->peer_cert_file, "");
	def_str(c, &c->peer_key_file, "");
	def_str(c, &c->peer_trusted_ca_file, "");
	def_str(c, &c->logger, "capnslog");
	def_str(c, &c->log_outputs, "default");
	def_str(c, &c->log_level, "info");
	def_str(c, &c->backend, default_backend ? default_backend : "");
}

void config_free(struct config *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < config_nopts; i++) {
		const struct copt *o = &config_opts[i];

		if (o->type == COPT_STR || o->type == COPT_ENUM ||
		    o->type == COPT_URLS)
			free(*(void **)((char *)c + o->off));
	}
	for (i = 0; i < c->n_initial_peers; i++)
		free(c->initial_peers[i].name);
	free(c->initial_peers);
	memset(c, 0, sizeof(*c));
}

enum log_level config_log_level(const struct config *c)
{
	const char *l = c->log_level ? c->log_level : "info";

	if (c->debug || strcmp(l, "debug") == 0)
		return LOG_DEBUG;
	if (strcmp(l, "warn") == 0)
		return LOG_WARN;
	if (strcmp(l, "error") == 0 || strcmp(l, "panic") == 0 ||
	    strcmp(l, "fatal") == 0)
		return LOG_ERROR;
	return LOG_INFO;
}

int config_url_format(const struct config_url *u, char *buf, size_t len)
{
	bool v6 = strchr(u->host, ':') != NULL;
	int n;

	n = snprintf(buf, len, v6 ? "%s://[%s]:%u" : "%s://%s:%u", u->scheme,
		     u->host, (unsigned)u->port);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

static const char *group_title(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(config_groups) / sizeof(config_groups[0]); i++)
		if (strcmp(config_groups[i].first, name) == 0)
			return config_groups[i].title;
	return NULL;
}

/* Help lines are indented by four spaces, as etcd's are. */
static void help_text(FILE *f, const char *text)
{
	const char *nl;

	while ((nl = strchr(text, '\n'))) {
		fprintf(f, "    %.*s\n", (int)(nl - text), text);
		text = nl + 1;
	}
	fprintf(f, "    %s\n", text);
}

static void help_list(FILE *f, enum copt_type t1, enum copt_type t2)
{
	size_t i, col = 0;

	for (i = 0; i < config_nopts; i++) {
		const struct copt *o = &config_opts[i];

		if (o->type != t1 && o->type != t2)
			continue;
		if (col && col + strlen(o->name) + 3 > 78) {
			fputs("\n", f);
			col = 0;
		}
		col += (size_t)fprintf(f, "%s--%s", col ? " " : "  ", o->name);
	}
	fputs("\n", f);
}

void config_print_help(FILE *f)
{
	size_t i;

	fputs("Usage:\n\n"
	      "  cairn [flags]\n"
	      "    Start a cairn server (etcd v3 API compatible).\n\n"
	      "  cairn --version\n"
	      "    Show the version of cairn.\n\n"
	      "  cairn -h | --help\n"
	      "    Show the help information about cairn.\n\n"
	      "  cairn --config-file\n"
	      "    Path to the server configuration file (etcd's YAML format). "
	      "Note that if a configuration file is provided, other command "
	      "line flags and environment variables will be ignored.\n",
	      f);
	for (i = 0; i < config_nopts; i++) {
		const struct copt *o = &config_opts[i];
		const char *title = group_title(o->name);

		if (o->type >= COPT_IGNORED || (o->flags & COPT_HIDDEN))
			continue;
		if (title)
			fprintf(f, "\n%s:\n", title);
		fprintf(f, "  --%s %s\n", o->name, o->def);
		help_text(f, o->help);
	}
	fputs("\nAccepted for compatibility with etcd 3.4 and ignored "
	      "(a warning is logged):\n",
	      f);
	help_list(f, COPT_IGNORED, COPT_IGNORED_BOOL);
	fputs("\nNot supported (an error if set):\n", f);
	help_list(f, COPT_REFUSED, COPT_REFUSED);
	fputs("\nEvery flag can also be set by an environment variable named\n"
	      "ETCD_<FLAG IN UPPER CASE, '-' AS '_'>, e.g. ETCD_DATA_DIR; a "
	      "flag given on the\ncommand line wins over the variable.\n",
	      f);
}
