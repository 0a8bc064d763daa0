/* config: cairn's start-up configuration, etcd 3.4 compatible.
 *
 * Sources, highest precedence first (etcd's rules):
 *   1. --config-file PATH (or ETCD_CONFIG_FILE): etcd's YAML file. When it
 *      is given, every other flag and ETCD_* variable is ignored (a warning
 *      names them); only --help and --version still act.
 *   2. command-line flags: "--flag value", "--flag=value", "-flag value";
 *      booleans "--flag" or "--flag=true|false" (never "--flag true": as in
 *      Go's flag package the "true" would be a stray argument).
 *   3. ETCD_<UPPER_SNAKE> environment variables (ETCD_MAX_TXN_OPS=...),
 *      empty values ignored. A variable shadowed by a flag given on the
 *      command line loses and logs a warning; an unknown ETCD_* variable
 *      logs a warning.
 *   4. defaults (config_defaults()), etcd's, except data-dir "${name}.cairn".
 *
 * Derived after parsing: data_dir "${name}.cairn" when unset or empty;
 * initial_cluster "${name}=${url}" for each --initial-advertise-peer-urls
 * URL when not given; when --listen-client-urls is given by flag/env without
 * --advertise-client-urls, the advertise list is emptied and
 * config_validate() fails as etcd does.
 *
 * Flags etcd 3.4 has and cairn does not implement (--max-wals, --cors,
 * --auth-token, --experimental-*, ...) are accepted and ignored with a
 * warning so existing units keep working; --discovery and --discovery-srv
 * are refused (cairn cannot bootstrap that way).
 *
 * Exit codes, mirroring etcd: a bad command line (-EINVAL) exits 2; a bad
 * ETCD_* value or config file (-EBADMSG, -errno) and a config_validate()
 * failure exit 1.
 *
 * Messages written to errbuf are one line without a trailing newline and
 * without a program-name prefix: main prints "cairn: %s\n".
 *
 * Not thread-safe; called once at start-up before the loop runs.
 */
#ifndef CAIRN_CONF_CONFIG_H
#define CAIRN_CONF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/util/log.h"

/* etcd's defaults. */
#define CONFIG_DEFAULT_NAME "default"
#define CONFIG_DEFAULT_CLIENT_URL "http://localhost:2379"
#define CONFIG_DEFAULT_PEER_URL "http://localhost:2380"
#define CONFIG_DEFAULT_CLUSTER_TOKEN "etcd-cluster"
#define CONFIG_DEFAULT_HEARTBEAT_MS 100
#define CONFIG_DEFAULT_ELECTION_MS 1000
#define CONFIG_MAX_ELECTION_MS 50000
#define CONFIG_DEFAULT_SNAPSHOT_COUNT 100000
/* --quota-backend-bytes 0 means this (etcd's DefaultQuotaBytes). */
#define CONFIG_DEFAULT_QUOTA_BYTES (2ULL * 1024 * 1024 * 1024)
/* etcd warns above these. */
#define CONFIG_MAX_QUOTA_BYTES (8ULL * 1024 * 1024 * 1024)
#define CONFIG_MAX_REQUEST_BYTES_WARN (10ULL * 1024 * 1024)
#define CONFIG_DEFAULT_MAX_REQUEST_BYTES 1572864
#define CONFIG_DEFAULT_MAX_TXN_OPS 128
#define CONFIG_DEFAULT_MAX_STREAMS 4294967295ULL
#define CONFIG_DEFAULT_KEEPALIVE_MIN_TIME_MS 5000
#define CONFIG_DEFAULT_KEEPALIVE_INTERVAL_MS (2ULL * 3600 * 1000)
#define CONFIG_DEFAULT_KEEPALIVE_TIMEOUT_MS 20000
#define CONFIG_DEFAULT_WATCH_PROGRESS_MS (10 * 60 * 1000)

/* One parsed URL: scheme "http" or "https" (lower case); host without
 * brackets (an IPv6 literal is stored as "::1"); port 1..65535. */
struct config_url {
	char scheme[8];
	char host[256];
	uint16_t port;
};

/* One "name=url" entry of --initial-cluster (filled by config_validate). */
struct config_peer {
	char *name;
	struct config_url url;
};

/* Every char * is NULL or heap memory owned by the struct (config_free).
 * Arrays of URLs are heap arrays of n_* entries. Durations are in
 * milliseconds (sub-millisecond parts are truncated). */
struct config {
	/* Member */
	char *name;
	char *data_dir;
	char *wal_dir; /* "" = DATA_DIR/member/wal */
	uint64_t snapshot_count;
	uint64_t heartbeat_ms;
	uint64_t election_ms;
	uint64_t quota_backend_bytes; /* 0 = CONFIG_DEFAULT_QUOTA_BYTES */
	uint64_t max_request_bytes;
	uint64_t max_txn_ops;
	uint64_t max_concurrent_streams; /* <= UINT32_MAX */
	uint64_t grpc_keepalive_min_time_ms;
	uint64_t grpc_keepalive_interval_ms; /* 0 = disabled */
	uint64_t grpc_keepalive_timeout_ms;  /* 0 = disabled */
	/* --experimental-watch-progress-notify-interval */
	uint64_t watch_progress_notify_ms;
	struct config_url *listen_client_urls;
	size_t n_listen_client_urls;
	struct config_url *listen_peer_urls;
	size_t n_listen_peer_urls;
	struct config_url *listen_metrics_urls; /* may be empty */
	size_t n_listen_metrics_urls;

	/* Clustering */
	struct config_url *advertise_client_urls;
	size_t n_advertise_client_urls;
	struct config_url *initial_advertise_peer_urls;
	size_t n_initial_advertise_peer_urls;
	char *initial_cluster;
	char *initial_cluster_state; /* "new" or "existing" */
	char *initial_cluster_token;
	bool strict_reconfig_check;
	bool enable_v2;		    /* accepted; v2 is not served (warning) */
	char *auto_compaction_mode; /* "periodic" or "revision" */
	char *auto_compaction_retention; /* as given: "0", "1h", "100" */

	/* Security: stored as given; the server says what it supports. */
	char *cert_file;
	char *key_file;
	char *trusted_ca_file;
	bool client_cert_auth;
	bool auto_tls;
	char *peer_cert_file;
	char *peer_key_file;
	char *peer_trusted_ca_file;
	bool peer_client_cert_auth;
	bool peer_auto_tls;

	/* Logging, profiling, unsafe */
	char *logger;	   /* "capnslog" or "zap"; accepted, cairn has one */
	char *log_outputs; /* accepted, comma separated */
	char *log_level;   /* debug|info|warn|error (panic, fatal = error) */
	bool debug;	   /* --debug: same as --log-level=debug */
	bool enable_pprof; /* accepted, ignored (warning) */
	bool force_new_cluster;

	/* cairn's own */
	char *backend;
	bool test_faults;  /* --experimental-test-faults: TEST ONLY */
	char *config_file; /* the YAML file used, or NULL */
	bool show_help;
	bool show_version;

	/* Filled by config_validate(). */
	struct config_peer *initial_peers; /* parsed initial_cluster */
	size_t n_initial_peers;
	uint64_t auto_compaction_period_ms; /* periodic mode; 0 = off */
	uint64_t auto_compaction_revs;	    /* revision mode; 0 = off */

	/* -ENOMEM when config_defaults() ran out of memory: the next
	 * config_parse()/config_validate() returns it. */
	int defaults_err;
};

/* Fill c with etcd's defaults (see the CONFIG_DEFAULT_* values) and
 * backend = default_backend (the caller passes engine_default_name();
 * copied). Overwrites c without freeing: call on a fresh struct or after
 * config_free(). On out of memory sets c->defaults_err = -ENOMEM; c is
 * still safe to pass to config_free(). */
void config_defaults(struct config *c, const char *default_backend);

/* Parse argv[1..argc-1] and then envp (NULL = environ), or the config file
 * when --config-file / ETCD_CONFIG_FILE names one, into c, which must hold
 * config_defaults(). argv and envp are only read during the call.
 * On -h/--help or --version, sets show_help/show_version and returns 0
 * without reading the environment or a file; the caller prints and exits 0.
 * Does not run the cross-field checks: call config_validate() next.
 * Returns:
 *   0        success (warnings went to log_warn);
 *   -EINVAL  bad command line: unknown flag, missing value, bad number,
 *            duration, boolean, URL or enum value, stray argument;
 *   -EBADMSG bad ETCD_* value, or a config file that is not valid YAML or
 *            holds a bad value;
 *   -errno   the config file could not be read (-ENOENT, -EACCES, ...);
 *   -ENOMEM  out of memory.
 * On error errbuf (errlen bytes, may be 0) holds one line naming the
 * flag / variable / key and the value, e.g.
 *   invalid value "abc" for flag --max-txn-ops: not a number
 *   unknown flag --foo (see --help)
 * and c is partly updated but still safe to pass to config_free(). */
int config_parse(struct config *c, int argc, char **argv, char **envp,
		 char *errbuf, size_t errlen);

/* Load only a YAML config file into c (holding config_defaults()), as
 * config_parse() does for --config-file, then derive data_dir and
 * initial_cluster. Returns 0, -EBADMSG (bad YAML or value), -errno
 * (unreadable file) or -ENOMEM; errbuf as above. */
int config_load_file(struct config *c, const char *path, char *errbuf,
		     size_t errlen);

/* Cross-field checks, with etcd's messages where etcd has one:
 * listen URLs must use an IP address or "localhost"; heartbeat and
 * election > 0, election >= 5 * heartbeat, election <= 50000 ms;
 * --advertise-client-urls non-empty; listen client/peer and advertise peer
 * URLs non-empty; --initial-cluster "name=url,..." well formed; https
 * listen URLs need a cert and key (or auto-tls); cert and key given
 * together; --auto-compaction-retention valid for the mode;
 * --backend non-empty. Fills initial_peers and auto_compaction_*.
 * Logs warnings (quota above 8 GiB, request size above 10 MiB, --enable-v2,
 * --enable-pprof). Returns 0, -EINVAL (errbuf says why) or -ENOMEM. */
int config_validate(struct config *c, char *errbuf, size_t errlen);

/* etcd's start-up checks of --initial-cluster for a member with no data
 * yet (VerifyBootstrap, or VerifyJoinExisting when join_existing, i.e.
 * --initial-cluster-state existing): this member's --name is in it; for a
 * new cluster its URLs there equal --initial-advertise-peer-urls (compared
 * as written: unlike etcd, host names are not resolved); no URL appears
 * twice. Needs c after a successful config_validate(). The server calls it
 * only when the data directory holds no WAL yet, as etcd does.
 * Returns 0 or -EINVAL with etcd's message in errbuf. */
int config_verify_bootstrap(const struct config *c, bool join_existing,
			    char *errbuf, size_t errlen);

/* The level to pass to log_set_level(): --debug or --log-level. */
enum log_level config_log_level(const struct config *c);

/* Write u as "scheme://host:port" (IPv6 host in brackets) into buf.
 * Returns the length, or -ENOSPC if buf (len bytes) is too small. */
int config_url_format(const struct config_url *u, char *buf, size_t len);

/* etcd-like --help text: every flag with its default and meaning. */
void config_print_help(FILE *f);

/* Free everything c owns and zero it. NULL-safe; idempotent. */
void config_free(struct config *c);

#endif
