/* Unit tests for conf/: flags, ETCD_* variables, the YAML file, validation
 * and --help, checked against etcd 3.4's behaviour and messages. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/config.h"
#include "conf/config_priv.h"

#define MAXARGS 80

static char errbuf[512];
static char *no_env[] = {NULL};

/* Parse "cairn" + the NULL-terminated argument list with envp. */
static int parse_env(struct config *c, char **envp, ...)
{
	char *argv[MAXARGS] = {"cairn"};
	int argc = 1;
	va_list ap;

	va_start(ap, envp);
	while (argc < MAXARGS - 1 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	argv[argc] = NULL;
	config_defaults(c, "bolt");
	ck_assert_int_eq(c->defaults_err, 0);
	return config_parse(c, argc, argv, envp, errbuf, sizeof(errbuf));
}

#define PARSE(c, ...) parse_env(c, no_env, __VA_ARGS__, NULL)
#define PARSE0(c) parse_env(c, no_env, NULL)

/* Expect parsing to fail with err and exactly msg. */
#define PARSE_ERR(err, msg, ...)                                               \
	do {                                                                   \
		struct config c_;                                              \
		ck_assert_int_eq(PARSE(&c_, __VA_ARGS__), err);                \
		ck_assert_str_eq(errbuf, msg);                                 \
		config_free(&c_);                                              \
	} while (0)

/* Expect parse to pass and validate to fail with msg. */
#define VALIDATE_ERR(msg, ...)                                                 \
	do {                                                                   \
		struct config c_;                                              \
		ck_assert_int_eq(PARSE(&c_, __VA_ARGS__), 0);                  \
		ck_assert_int_eq(config_validate(&c_, errbuf, sizeof(errbuf)), \
				 -EINVAL);                                     \
		ck_assert_str_eq(errbuf, msg);                                 \
		config_free(&c_);                                              \
	} while (0)

static void url_eq(const struct config_url *u, const char *scheme,
		   const char *host, unsigned port)
{
	ck_assert_str_eq(u->scheme, scheme);
	ck_assert_str_eq(u->host, host);
	ck_assert_uint_eq(u->port, port);
}

/* stderr capture, to check the warnings etcd would print. */
static char cap_dir[64];
static int cap_saved = -1;

static void capture_start(void)
{
	char path[128];
	int fd;

	strcpy(cap_dir, "/tmp/check_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(cap_dir));
	snprintf(path, sizeof(path), "%s/stderr", cap_dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	cap_saved = dup(STDERR_FILENO);
	ck_assert_int_ge(cap_saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

static char *capture_end(void)
{
	static char buf[16384];
	char path[128];
	ssize_t n;
	int fd;

	dup2(cap_saved, STDERR_FILENO);
	close(cap_saved);
	snprintf(path, sizeof(path), "%s/stderr", cap_dir);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	unlink(path);
	rmdir(cap_dir);
	return buf;
}

START_TEST(test_defaults)
{
	struct config c;

	ck_assert_int_eq(PARSE0(&c), 0);
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_str_eq(c.name, "default");
	ck_assert_str_eq(c.data_dir, "default.cairn");
	ck_assert_str_eq(c.wal_dir, "");
	ck_assert_str_eq(c.backend, "bolt");
	ck_assert_uint_eq(c.n_listen_client_urls, 1);
	url_eq(&c.listen_client_urls[0], "http", "localhost", 2379);
	ck_assert_uint_eq(c.n_advertise_client_urls, 1);
	url_eq(&c.advertise_client_urls[0], "http", "localhost", 2379);
	ck_assert_uint_eq(c.n_listen_peer_urls, 1);
	url_eq(&c.listen_peer_urls[0], "http", "localhost", 2380);
	ck_assert_uint_eq(c.n_initial_advertise_peer_urls, 1);
	url_eq(&c.initial_advertise_peer_urls[0], "http", "localhost", 2380);
	ck_assert_uint_eq(c.n_listen_metrics_urls, 0);
	ck_assert_str_eq(c.initial_cluster, "default=http://localhost:2380");
	ck_assert_str_eq(c.initial_cluster_state, "new");
	ck_assert_str_eq(c.initial_cluster_token, "etcd-cluster");
	ck_assert_uint_eq(c.heartbeat_ms, 100);
	ck_assert_uint_eq(c.election_ms, 1000);
	ck_assert_uint_eq(c.snapshot_count, 100000);
	ck_assert_uint_eq(c.quota_backend_bytes, 0);
	ck_assert_uint_eq(c.max_request_bytes, 1572864);
	ck_assert_uint_eq(c.max_txn_ops, 128);
	ck_assert_uint_eq(c.max_concurrent_streams, 4294967295ULL);
	ck_assert_uint_eq(c.grpc_keepalive_min_time_ms, 5000);
	ck_assert_uint_eq(c.grpc_keepalive_interval_ms, 7200000);
	ck_assert_uint_eq(c.grpc_keepalive_timeout_ms, 20000);
	ck_assert_str_eq(c.auto_compaction_mode, "periodic");
	ck_assert_str_eq(c.auto_compaction_retention, "0");
	ck_assert_uint_eq(c.auto_compaction_period_ms, 0);
	ck_assert(c.strict_reconfig_check);
	ck_assert(!c.force_new_cluster && !c.debug && !c.enable_v2);
	ck_assert(!c.client_cert_auth && !c.auto_tls && !c.peer_auto_tls);
	ck_assert_str_eq(c.cert_file, "");
	ck_assert_str_eq(c.peer_trusted_ca_file, "");
	ck_assert_str_eq(c.logger, "capnslog");
	ck_assert_str_eq(c.log_outputs, "default");
	ck_assert_str_eq(c.log_level, "info");
	ck_assert_int_eq(config_log_level(&c), LOG_INFO);
	ck_assert(!c.show_help && !c.show_version);
	ck_assert_ptr_null(c.config_file);
	ck_assert_uint_eq(c.n_initial_peers, 1);
	ck_assert_str_eq(c.initial_peers[0].name, "default");
	url_eq(&c.initial_peers[0].url, "http", "localhost", 2380);
	config_free(&c);
	config_free(&c); /* idempotent */
	ck_assert_ptr_null(c.name);
}
END_TEST

START_TEST(test_flag_forms)
{
	struct config c;

	ck_assert_int_eq(
		PARSE(&c, "--name", "n1", "--data-dir=/var/lib/x",
		      "-max-txn-ops", "64", "-snapshot-count=5",
		      "--heartbeat-interval", "0x10", "--election-timeout=500",
		      "--wal-dir", "/wal", "--quota-backend-bytes",
		      "8589934592", "--max-request-bytes=2097152",
		      "--max-concurrent-streams", "100",
		      "--grpc-keepalive-min-time", "1m30s",
		      "--grpc-keepalive-interval=0",
		      "--grpc-keepalive-timeout=1.5s", "--listen-client-urls",
		      "http://127.0.0.1:2379, HTTPS://[::1]:2390",
		      "--advertise-client-urls=http://node1.example.com:2379",
		      "--listen-metrics-urls", "http://0.0.0.0:2381",
		      "--initial-cluster-token", "tok",
		      "--initial-cluster-state=existing",
		      "--auto-compaction-mode", "revision",
		      "--auto-compaction-retention", "1000", "--backend",
		      "sqlite", "--log-level", "warn", "--logger=zap",
		      "--log-outputs", "stderr", "--cert-file", "/c.pem",
		      "--key-file=/k.pem", "--trusted-ca-file", "/ca.pem",
		      "--peer-cert-file", "/pc.pem", "--peer-key-file",
		      "/pk.pem", "--peer-trusted-ca-file", "/pca.pem", "--"),
		0);
	ck_assert_str_eq(c.name, "n1");
	ck_assert_str_eq(c.data_dir, "/var/lib/x");
	ck_assert_str_eq(c.wal_dir, "/wal");
	ck_assert_uint_eq(c.max_txn_ops, 64);
	ck_assert_uint_eq(c.snapshot_count, 5);
	ck_assert_uint_eq(c.heartbeat_ms, 16);
	ck_assert_uint_eq(c.election_ms, 500);
	ck_assert_uint_eq(c.quota_backend_bytes, 8589934592ULL);
	ck_assert_uint_eq(c.max_request_bytes, 2097152);
	ck_assert_uint_eq(c.max_concurrent_streams, 100);
	ck_assert_uint_eq(c.grpc_keepalive_min_time_ms, 90000);
	ck_assert_uint_eq(c.grpc_keepalive_interval_ms, 0);
	ck_assert_uint_eq(c.grpc_keepalive_timeout_ms, 1500);
	ck_assert_uint_eq(c.n_listen_client_urls, 2);
	url_eq(&c.listen_client_urls[0], "http", "127.0.0.1", 2379);
	url_eq(&c.listen_client_urls[1], "https", "::1", 2390);
	ck_assert_uint_eq(c.n_advertise_client_urls, 1);
	url_eq(&c.advertise_client_urls[0], "http", "node1.example.com", 2379);
	ck_assert_uint_eq(c.n_listen_metrics_urls, 1);
	url_eq(&c.listen_metrics_urls[0], "http", "0.0.0.0", 2381);
	ck_assert_str_eq(c.initial_cluster_token, "tok");
	ck_assert_str_eq(c.initial_cluster_state, "existing");
	ck_assert_str_eq(c.auto_compaction_mode, "revision");
	ck_assert_str_eq(c.auto_compaction_retention, "1000");
	ck_assert_str_eq(c.backend, "sqlite");
	ck_assert_str_eq(c.log_level, "warn");
	ck_assert_int_eq(config_log_level(&c), LOG_WARN);
	ck_assert_str_eq(c.logger, "zap");
	ck_assert_str_eq(c.log_outputs, "stderr");
	ck_assert_str_eq(c.cert_file, "/c.pem");
	ck_assert_str_eq(c.key_file, "/k.pem");
	ck_assert_str_eq(c.trusted_ca_file, "/ca.pem");
	ck_assert_str_eq(c.peer_cert_file, "/pc.pem");
	ck_assert_str_eq(c.peer_key_file, "/pk.pem");
	ck_assert_str_eq(c.peer_trusted_ca_file, "/pca.pem");
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.auto_compaction_revs, 1000);
	config_free(&c);

	/* The last of a repeated flag wins; duplicate URLs collapse. */
	ck_assert_int_eq(PARSE(&c, "--name", "a", "--name=b",
			       "--listen-peer-urls",
			       "http://10.0.0.1:2380,http://10.0.0.1:2380"),
			 0);
	ck_assert_str_eq(c.name, "b");
	ck_assert_uint_eq(c.n_listen_peer_urls, 1);
	config_free(&c);

	/* As Go's flag package: the next word is the value, dashes or not. */
	ck_assert_int_eq(PARSE(&c, "--name", "--weird"), 0);
	ck_assert_str_eq(c.name, "--weird");
	config_free(&c);
}
END_TEST

START_TEST(test_bool_forms)
{
	static const struct {
		const char *arg;
		bool want;
	} cases[] = {
		{"--force-new-cluster", true},
		{"-force-new-cluster", true},
		{"--force-new-cluster=true", true},
		{"--force-new-cluster=1", true},
		{"--force-new-cluster=T", true},
		{"--force-new-cluster=false", false},
		{"--force-new-cluster=0", false},
		{"--force-new-cluster=F", false},
	};
	struct config c;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(PARSE(&c, (char *)cases[i].arg), 0);
		ck_assert_msg(c.force_new_cluster == cases[i].want, "%s",
			      cases[i].arg);
		config_free(&c);
	}
	ck_assert_int_eq(PARSE(&c, "--strict-reconfig-check=false", "--debug",
			       "--client-cert-auth", "--auto-tls",
			       "--peer-client-cert-auth", "--peer-auto-tls",
			       "--enable-v2=true", "--enable-pprof"),
			 0);
	ck_assert(!c.strict_reconfig_check && c.debug && c.client_cert_auth);
	ck_assert(c.auto_tls && c.peer_client_cert_auth && c.peer_auto_tls);
	ck_assert(c.enable_v2 && c.enable_pprof);
	ck_assert_int_eq(config_log_level(&c), LOG_DEBUG);
	config_free(&c);
	/* "--flag true" leaves "true" as a stray argument, as in etcd. */
	PARSE_ERR(-EINVAL, "'true' is not a valid flag", "--debug", "true");
}
END_TEST

START_TEST(test_env)
{
	char *env[] = {"PATH=/bin",
		       "ETCD_NAME=envn",
		       "ETCD_MAX_TXN_OPS=7",
		       "ETCD_FORCE_NEW_CLUSTER=true",
		       "ETCD_INITIAL_ADVERTISE_PEER_URLS=http://10.0.0.1:2380",
		       "ETCD_GRPC_KEEPALIVE_INTERVAL=30s",
		       "ETCD_BACKEND=rocksdb",
		       "ETCD_LOG_LEVEL=error",
		       "ETCD_DATA_DIR=",
		       "ETCDCTL_API=3",
		       NULL};
	struct config c;

	ck_assert_int_eq(parse_env(&c, env, NULL), 0);
	ck_assert_str_eq(c.name, "envn");
	ck_assert_uint_eq(c.max_txn_ops, 7);
	ck_assert(c.force_new_cluster);
	ck_assert_uint_eq(c.grpc_keepalive_interval_ms, 30000);
	ck_assert_str_eq(c.backend, "rocksdb");
	ck_assert_int_eq(config_log_level(&c), LOG_ERROR);
	/* empty ETCD_DATA_DIR is ignored: derived from the name */
	ck_assert_str_eq(c.data_dir, "envn.cairn");
	ck_assert_str_eq(c.initial_cluster, "envn=http://10.0.0.1:2380");
	config_free(&c);
}
END_TEST

START_TEST(test_env_precedence)
{
	char *env[] = {"ETCD_NAME=envn", "ETCD_MAX_TXN_OPS=7", "ETCD_FOOBAR=1",
		       NULL};
	struct config c;
	char *out;
	int err;

	capture_start();
	err = parse_env(&c, env, "--name", "flagn", NULL);
	out = capture_end();
	ck_assert_int_eq(err, 0);
	ck_assert_str_eq(c.name, "flagn");   /* the flag wins */
	ck_assert_uint_eq(c.max_txn_ops, 7); /* the env still applies */
	ck_assert_str_eq(c.data_dir, "flagn.cairn");
	ck_assert_ptr_nonnull(strstr(out, "WARN"));
	ck_assert_ptr_nonnull(strstr(out, "ETCD_NAME is shadowed by "
					  "corresponding command-line flag "
					  "--name"));
	ck_assert_ptr_nonnull(
		strstr(out, "unrecognized environment variable ETCD_FOOBAR"));
	config_free(&c);
}
END_TEST

START_TEST(test_env_errors)
{
	char *bad_num[] = {"ETCD_MAX_TXN_OPS=abc", NULL};
	char *bad_bool[] = {"ETCD_DEBUG=yes", NULL};
	char *bad_url[] = {"ETCD_LISTEN_CLIENT_URLS=unix://sock", NULL};
	struct config c;

	ck_assert_int_eq(parse_env(&c, bad_num, NULL), -EBADMSG);
	ck_assert_str_eq(errbuf, "invalid value \"abc\" for ETCD_MAX_TXN_OPS: "
				 "not a number");
	config_free(&c);
	ck_assert_int_eq(parse_env(&c, bad_bool, NULL), -EBADMSG);
	ck_assert_str_eq(errbuf, "invalid value \"yes\" for ETCD_DEBUG: not a "
				 "boolean (true or false)");
	config_free(&c);
	ck_assert_int_eq(parse_env(&c, bad_url, NULL), -EBADMSG);
	ck_assert_str_eq(errbuf, "invalid value \"unix://sock\" for "
				 "ETCD_LISTEN_CLIENT_URLS: unix:// URLs are "
				 "not supported");
	config_free(&c);
	/* A flag hides a bad variable: it is never parsed. */
	ck_assert_int_eq(parse_env(&c, bad_num, "--max-txn-ops", "3", NULL), 0);
	ck_assert_uint_eq(c.max_txn_ops, 3);
	config_free(&c);
}
END_TEST

START_TEST(test_errors)
{
	PARSE_ERR(-EINVAL, "unknown flag --foo (see --help)", "--foo");
	PARSE_ERR(-EINVAL, "unknown flag --foo (see --help)", "--foo=1");
	PARSE_ERR(-EINVAL, "missing value for flag --name", "--name");
	PARSE_ERR(-EINVAL, "'extra' is not a valid flag", "--debug", "extra");
	PARSE_ERR(-EINVAL, "'x' is not a valid flag", "--", "x");
	PARSE_ERR(-EINVAL, "bad flag syntax: ---name", "---name", "x");
	PARSE_ERR(-EINVAL,
		  "invalid value \"abc\" for flag --max-txn-ops: not a number",
		  "--max-txn-ops", "abc");
	PARSE_ERR(-EINVAL,
		  "invalid value \"12k\" for flag --max-request-bytes: not a "
		  "number",
		  "--max-request-bytes=12k");
	PARSE_ERR(-EINVAL,
		  "invalid value \"-1\" for flag --snapshot-count: must not be "
		  "negative",
		  "--snapshot-count", "-1");
	PARSE_ERR(-EINVAL,
		  "invalid value \"4294967296\" for flag "
		  "--max-concurrent-streams: out of range",
		  "--max-concurrent-streams", "4294967296");
	PARSE_ERR(
		-EINVAL,
		"invalid value \"5x\" for flag --grpc-keepalive-min-time: not "
		"a duration (e.g. 5s, 100ms, 2h)",
		"--grpc-keepalive-min-time", "5x");
	PARSE_ERR(
		-EINVAL,
		"invalid value \"5\" for flag --grpc-keepalive-timeout: not a "
		"duration (e.g. 5s, 100ms, 2h)",
		"--grpc-keepalive-timeout", "5");
	PARSE_ERR(-EINVAL,
		  "invalid value \"-5s\" for flag --grpc-keepalive-interval: "
		  "must not be negative",
		  "--grpc-keepalive-interval=-5s");
	PARSE_ERR(-EINVAL,
		  "invalid value \"maybe\" for flag --debug: not a boolean "
		  "(true or false)",
		  "--debug=maybe");
	PARSE_ERR(-EINVAL,
		  "invalid value \"old\" for flag --initial-cluster-state: "
		  "must be one of new, existing",
		  "--initial-cluster-state", "old");
	PARSE_ERR(-EINVAL,
		  "invalid value \"daily\" for flag --auto-compaction-mode: "
		  "must be one of periodic, revision",
		  "--auto-compaction-mode=daily");
	PARSE_ERR(-EINVAL,
		  "invalid value \"loud\" for flag --log-level: must be one of "
		  "debug, info, warn, error, panic, fatal",
		  "--log-level", "loud");
	PARSE_ERR(-EINVAL,
		  "invalid value \"ftp://h:1\" for flag --listen-client-urls: "
		  "URL scheme must be http or https",
		  "--listen-client-urls", "ftp://h:1");
	PARSE_ERR(-EINVAL,
		  "invalid value \"unix://localhost:1\" for flag "
		  "--listen-client-urls: unix:// URLs are not supported",
		  "--listen-client-urls", "unix://localhost:1");
	PARSE_ERR(-EINVAL,
		  "invalid value \"http://localhost\" for flag "
		  "--listen-peer-urls: URL address does not have the form "
		  "\"host:port\"",
		  "--listen-peer-urls", "http://localhost");
	PARSE_ERR(-EINVAL,
		  "invalid value \"http://localhost:65536\" for flag "
		  "--advertise-client-urls: bad port (must be 1-65535)",
		  "--advertise-client-urls", "http://localhost:65536");
	PARSE_ERR(-EINVAL,
		  "invalid value \"http://localhost:0\" for flag "
		  "--advertise-client-urls: bad port (must be 1-65535)",
		  "--advertise-client-urls", "http://localhost:0");
	PARSE_ERR(-EINVAL,
		  "invalid value \"http://localhost:2379/v3\" for flag "
		  "--listen-client-urls: URL must not contain a path",
		  "--listen-client-urls", "http://localhost:2379/v3");
	PARSE_ERR(-EINVAL,
		  "invalid value \"localhost:2379\" for flag "
		  "--listen-client-urls: URL must look like http://host:port",
		  "--listen-client-urls", "localhost:2379");
	PARSE_ERR(-EINVAL,
		  "invalid value \"http://:2379\" for flag "
		  "--listen-client-urls: missing host",
		  "--listen-client-urls", "http://:2379");
	PARSE_ERR(-EINVAL,
		  "invalid value \"http://::1:2379\" for flag "
		  "--listen-client-urls: IPv6 address must be in brackets",
		  "--listen-client-urls", "http://::1:2379");
	PARSE_ERR(-EINVAL,
		  "invalid value \"http://a:1,http://b\" for flag "
		  "--initial-advertise-peer-urls: URL address does not have "
		  "the form \"host:port\" (\"http://b\")",
		  "--initial-advertise-peer-urls", "http://a:1,http://b");
	PARSE_ERR(-EINVAL, "flag --discovery is not supported by cairn",
		  "--discovery", "https://discovery.etcd.io/x");
}
END_TEST

START_TEST(test_ignored_flags)
{
	struct config c;
	char *out;
	int err;

	capture_start();
	err = PARSE(&c, "--max-wals", "10", "--pre-vote", "--cors=*",
		    "--experimental-initial-corrupt-check=true",
		    "--discovery=");
	out = capture_end();
	ck_assert_int_eq(err, 0);
	ck_assert_ptr_nonnull(
		strstr(out, "flag --max-wals is not implemented by cairn"));
	ck_assert_ptr_nonnull(strstr(out, "flag --pre-vote"));
	config_free(&c);
	PARSE_ERR(-EINVAL,
		  "invalid value \"maybe\" for flag --pre-vote: not a boolean "
		  "(true or false)",
		  "--pre-vote=maybe");
}
END_TEST

START_TEST(test_help_version)
{
	char *env[] = {"ETCD_MAX_TXN_OPS=abc", NULL};
	struct config c;

	ck_assert_int_eq(PARSE(&c, "-h"), 0);
	ck_assert(c.show_help);
	config_free(&c);
	/* Help stops parsing, as Go's flag package does. */
	ck_assert_int_eq(PARSE(&c, "--help", "--no-such-flag"), 0);
	ck_assert(c.show_help);
	config_free(&c);
	ck_assert_int_eq(PARSE(&c, "-help"), 0);
	ck_assert(c.show_help);
	config_free(&c);
	/* --version is acted on before the environment is read. */
	ck_assert_int_eq(parse_env(&c, env, "--version", NULL), 0);
	ck_assert(c.show_version);
	config_free(&c);
	PARSE_ERR(-EINVAL, "unknown flag --nope (see --help)", "--nope",
		  "--help");
}
END_TEST

START_TEST(test_initial_cluster_derivation)
{
	struct config c;

	ck_assert_int_eq(PARSE(&c, "--name", "n1"), 0);
	ck_assert_str_eq(c.initial_cluster, "n1=http://localhost:2380");
	ck_assert_str_eq(c.data_dir, "n1.cairn");
	config_free(&c);

	ck_assert_int_eq(PARSE(&c, "--name", "n1",
			       "--initial-advertise-peer-urls",
			       "http://10.0.0.1:2380,https://[fe80::1]:2390"),
			 0);
	ck_assert_str_eq(c.initial_cluster,
			 "n1=http://10.0.0.1:2380,n1=https://[fe80::1]:2390");
	config_free(&c);

	ck_assert_int_eq(
		PARSE(&c, "--name", "n1", "--data-dir", "/d",
		      "--initial-cluster",
		      "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380"),
		0);
	ck_assert_str_eq(c.data_dir, "/d");
	ck_assert_str_eq(c.initial_cluster,
			 "n1=http://10.0.0.1:2380,n2=http://10.0.0.2:2380");
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.n_initial_peers, 2);
	ck_assert_str_eq(c.initial_peers[0].name, "n1");
	url_eq(&c.initial_peers[0].url, "http", "10.0.0.1", 2380);
	ck_assert_str_eq(c.initial_peers[1].name, "n2");
	url_eq(&c.initial_peers[1].url, "http", "10.0.0.2", 2380);
	/* validate twice: no leak, same answer */
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.n_initial_peers, 2);
	config_free(&c);

	/* an empty --data-dir falls back to ${name}.cairn, as in etcd */
	ck_assert_int_eq(PARSE(&c, "--name=x", "--data-dir="), 0);
	ck_assert_str_eq(c.data_dir, "x.cairn");
	config_free(&c);
}
END_TEST

START_TEST(test_validate)
{
	struct config c;

	VALIDATE_ERR("--election-timeout[100ms] should be at least as 5 times "
		     "as --heartbeat-interval[100ms]",
		     "--election-timeout", "100");
	VALIDATE_ERR("--election-timeout[1000ms] should be at least as 5 times "
		     "as --heartbeat-interval[300ms]",
		     "--heartbeat-interval", "300");
	VALIDATE_ERR("--heartbeat-interval must be >0 (set to 0ms)",
		     "--heartbeat-interval", "0");
	VALIDATE_ERR("--election-timeout must be >0 (set to 0ms)",
		     "--election-timeout", "0");
	VALIDATE_ERR("--election-timeout[60000ms] is too long, and should be "
		     "set less than 50000ms",
		     "--election-timeout", "60000");
	VALIDATE_ERR("--advertise-client-urls is required when "
		     "--listen-client-urls is set explicitly",
		     "--listen-client-urls", "http://127.0.0.1:2379");
	VALIDATE_ERR("expected IP in URL for binding (http://example.com:2379)",
		     "--listen-client-urls", "http://example.com:2379",
		     "--advertise-client-urls", "http://example.com:2379");
	VALIDATE_ERR("expected IP in URL for binding (http://node:2380)",
		     "--listen-peer-urls", "http://node:2380");
	VALIDATE_ERR("--listen-peer-urls must not be empty",
		     "--listen-peer-urls", "");
	VALIDATE_ERR("invalid value \"n1\" for --initial-cluster: each member "
		     "must be name=URL (\"n1\")",
		     "--initial-cluster", "n1");
	VALIDATE_ERR("invalid value \"a=http://1.2.3.4:1,b=ftp://x:1\" for "
		     "--initial-cluster: URL scheme must be http or https "
		     "(\"b=ftp://x:1\")",
		     "--initial-cluster", "a=http://1.2.3.4:1,b=ftp://x:1");
	VALIDATE_ERR("TLS key/cert (--cert-file, --key-file) must be provided "
		     "for client URLs with HTTPS scheme",
		     "--listen-client-urls", "https://127.0.0.1:2379",
		     "--advertise-client-urls", "https://127.0.0.1:2379");
	VALIDATE_ERR("--peer-cert-file and --peer-key-file must be given "
		     "together",
		     "--peer-cert-file", "/c.pem");
	VALIDATE_ERR("invalid value \"1h\" for --auto-compaction-retention: "
		     "not a number of revisions",
		     "--auto-compaction-mode", "revision",
		     "--auto-compaction-retention", "1h");
	VALIDATE_ERR("invalid value \"abc\" for --auto-compaction-retention: "
		     "not a number of hours or a duration (e.g. 1h, 30m)",
		     "--auto-compaction-retention", "abc");

	/* https with auto-tls is fine; retention units */
	ck_assert_int_eq(PARSE(&c, "--listen-peer-urls", "https://0.0.0.0:2380",
			       "--peer-auto-tls", "--auto-compaction-retention",
			       "5"),
			 0);
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.auto_compaction_period_ms, 5ULL * 3600 * 1000);
	config_free(&c);
	ck_assert_int_eq(PARSE(&c, "--auto-compaction-retention", "30m"), 0);
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.auto_compaction_period_ms, 30ULL * 60 * 1000);
	ck_assert_uint_eq(c.auto_compaction_revs, 0);
	config_free(&c);
	/* ipv6 and localhost bind addresses are fine */
	ck_assert_int_eq(PARSE(&c, "--listen-client-urls",
			       "http://[::]:2379,http://localhost:12379",
			       "--advertise-client-urls", "http://h:2379"),
			 0);
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	config_free(&c);
}
END_TEST

/* Parse, validate, then config_verify_bootstrap(); returns its result. */
static int bootstrap(int join, ...)
{
	char *argv[MAXARGS] = {"cairn"};
	struct config c;
	int argc = 1, err;
	va_list ap;

	va_start(ap, join);
	while (argc < MAXARGS - 1 && (argv[argc] = va_arg(ap, char *)))
		argc++;
	va_end(ap);
	config_defaults(&c, "bolt");
	ck_assert_int_eq(
		config_parse(&c, argc, argv, no_env, errbuf, sizeof(errbuf)),
		0);
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	err = config_verify_bootstrap(&c, join, errbuf, sizeof(errbuf));
	config_free(&c);
	return err;
}

START_TEST(test_verify_bootstrap)
{
	ck_assert_int_eq(bootstrap(false, NULL), 0);
	ck_assert_int_eq(bootstrap(false, "--name", "n1", NULL), 0);
	ck_assert_int_eq(bootstrap(false, "--name", "n3", "--initial-cluster",
				   "n1=http://10.0.0.1:2380", NULL),
			 -EINVAL);
	ck_assert_str_eq(errbuf, "couldn't find local name \"n3\" in the "
				 "initial cluster configuration");
	ck_assert_int_eq(bootstrap(false, "--name", "n1", "--initial-cluster",
				   "n1=http://10.0.0.1:2380",
				   "--initial-advertise-peer-urls",
				   "http://10.0.0.9:2380", NULL),
			 -EINVAL);
	ck_assert_str_eq(errbuf,
			 "--initial-cluster has n1=http://10.0.0.1:2380 "
			 "but missing from "
			 "--initial-advertise-peer-urls="
			 "http://10.0.0.9:2380");
	/* joining an existing cluster does not compare the URLs */
	ck_assert_int_eq(bootstrap(true, "--name", "n1", "--initial-cluster",
				   "n1=http://10.0.0.1:2380",
				   "--initial-advertise-peer-urls",
				   "http://10.0.0.9:2380", NULL),
			 0);
	ck_assert_int_eq(bootstrap(false, "--name", "n1", "--initial-cluster",
				   "n1=http://10.0.0.1:2380",
				   "--initial-advertise-peer-urls",
				   "http://10.0.0.1:2380,http://10.0.0.2:2380",
				   NULL),
			 -EINVAL);
	ck_assert_str_eq(errbuf, "--initial-advertise-peer-urls has "
				 "http://10.0.0.2:2380 but missing from "
				 "--initial-cluster=n1=http://10.0.0.1:2380,"
				 "n1=http://10.0.0.2:2380");
	ck_assert_int_eq(bootstrap(false, "--name", "n1", "--initial-cluster",
				   "n1=http://10.0.0.1:2380,"
				   "n2=http://10.0.0.1:2380",
				   "--initial-advertise-peer-urls",
				   "http://10.0.0.1:2380", NULL),
			 -EINVAL);
	ck_assert_str_eq(errbuf, "initial cluster n1=http://10.0.0.1:2380,"
				 "n2=http://10.0.0.1:2380 has duplicate url");
	ck_assert_int_eq(bootstrap(false, "--name", "n2", "--initial-cluster",
				   "n1=http://10.0.0.1:2380,"
				   "n2=http://10.0.0.2:2380,"
				   "n3=http://10.0.0.3:2380",
				   "--initial-advertise-peer-urls",
				   "http://10.0.0.2:2380", NULL),
			 0);
}
END_TEST

static char *write_file(char *dir, const char *name, const char *text)
{
	static char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

static const char *sample_yaml =
	"# This is the configuration file for the etcd server.\n"
	"name: 'y1'\n"
	"data-dir: /var/lib/y1\n"
	"wal-dir:\n"
	"snapshot-count: 10000\n"
	"heartbeat-interval: 200\n"
	"election-timeout: 2000\n"
	"quota-backend-bytes: 0\n"
	"listen-peer-urls: http://10.0.0.1:2380\n"
	"listen-client-urls: http://10.0.0.1:2379,http://127.0.0.1:2379\n"
	"max-snapshots: 5\n"
	"max-wals: 5\n"
	"cors:\n"
	"initial-advertise-peer-urls: http://10.0.0.1:2380\n"
	"advertise-client-urls: http://10.0.0.1:2379\n"
	"discovery:\n"
	"initial-cluster: y1=http://10.0.0.1:2380,y2=http://10.0.0.2:2380\n"
	"initial-cluster-token: 'etcd-cluster'\n"
	"initial-cluster-state: 'existing'\n"
	"strict-reconfig-check: false\n"
	"enable-v2: false\n"
	"enable-pprof: true\n"
	"proxy: 'off'\n"
	"client-transport-security:\n"
	"  cert-file: /c.pem\n"
	"  key-file: /k.pem\n"
	"  client-cert-auth: yes\n"
	"  trusted-ca-file: /ca.pem\n"
	"  auto-tls: false\n"
	"peer-transport-security:\n"
	"  cert-file: /pc.pem\n"
	"  key-file: /pk.pem\n"
	"  client-cert-auth: true\n"
	"  trusted-ca-file:\n"
	"  auto-tls: false\n"
	"  allowed-cn: foo\n"
	"debug: false\n"
	"logger: zap\n"
	"log-outputs: [stderr]\n"
	"log-level: debug\n"
	"force-new-cluster: false\n"
	"auto-compaction-mode: periodic\n"
	"auto-compaction-retention: \"1\"\n"
	"max-request-bytes: 1048576\n"
	"max-txn-ops: 256\n"
	"grpc-keepalive-min-time: 5000000000\n"
	"grpc-keepalive-interval: 1m\n"
	"backend: sqlite\n"
	"no-such-key: 1\n";

START_TEST(test_yaml)
{
	char dir[] = "/tmp/check_config.XXXXXX", *path, *out;
	char env_file[300];
	char *env[] = {"ETCD_NAME=fromenv", env_file, NULL};
	struct config c;
	int err;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	path = write_file(dir, "etcd.conf.yml", sample_yaml);

	capture_start();
	err = parse_env(&c, env, "--config-file", path, "--name", "fromflag",
			"--backend", "rocksdb", NULL);
	out = capture_end();
	ck_assert_msg(err == 0, "%d %s", err, errbuf);
	ck_assert_ptr_nonnull(strstr(out, "flag --name ignored"));
	ck_assert_ptr_nonnull(strstr(out, "ETCD_NAME ignored"));
	ck_assert_ptr_nonnull(strstr(out, "unknown key no-such-key"));
	ck_assert_ptr_nonnull(
		strstr(out, "peer-transport-security.allowed-cn"));
	ck_assert_ptr_nonnull(strstr(out, "key max-wals in "));
	ck_assert_str_eq(c.config_file, path);
	ck_assert_str_eq(c.name, "y1");
	ck_assert_str_eq(c.data_dir, "/var/lib/y1");
	ck_assert_str_eq(c.wal_dir, "");
	ck_assert_uint_eq(c.snapshot_count, 10000);
	ck_assert_uint_eq(c.heartbeat_ms, 200);
	ck_assert_uint_eq(c.election_ms, 2000);
	ck_assert_uint_eq(c.n_listen_client_urls, 2);
	url_eq(&c.listen_client_urls[1], "http", "127.0.0.1", 2379);
	url_eq(&c.listen_peer_urls[0], "http", "10.0.0.1", 2380);
	url_eq(&c.advertise_client_urls[0], "http", "10.0.0.1", 2379);
	ck_assert_str_eq(c.initial_cluster,
			 "y1=http://10.0.0.1:2380,y2=http://10.0.0.2:2380");
	ck_assert_str_eq(c.initial_cluster_state, "existing");
	ck_assert(!c.strict_reconfig_check && c.enable_pprof);
	ck_assert_str_eq(c.cert_file, "/c.pem");
	ck_assert_str_eq(c.key_file, "/k.pem");
	ck_assert_str_eq(c.trusted_ca_file, "/ca.pem");
	ck_assert(c.client_cert_auth && c.peer_client_cert_auth);
	ck_assert_str_eq(c.peer_cert_file, "/pc.pem");
	ck_assert_str_eq(c.peer_key_file, "/pk.pem");
	ck_assert_str_eq(c.peer_trusted_ca_file, "");
	ck_assert_str_eq(c.logger, "zap");
	ck_assert_str_eq(c.log_outputs, "stderr");
	ck_assert_int_eq(config_log_level(&c), LOG_DEBUG);
	ck_assert_uint_eq(c.max_request_bytes, 1048576);
	ck_assert_uint_eq(c.max_txn_ops, 256);
	ck_assert_uint_eq(c.grpc_keepalive_min_time_ms, 5000);
	ck_assert_uint_eq(c.grpc_keepalive_interval_ms, 60000);
	ck_assert_str_eq(c.backend, "sqlite");
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.auto_compaction_period_ms, 3600000);
	config_free(&c);

	/* ETCD_CONFIG_FILE, a minimal file: derivations from its name, and
	 * --backend on the command line is ignored too. */
	path = write_file(dir, "min.yml", "name: m1\n");
	snprintf(env_file, sizeof(env_file), "ETCD_CONFIG_FILE=%s", path);
	ck_assert_int_eq(parse_env(&c, env, "--backend", "rocksdb", NULL), 0);
	ck_assert_str_eq(c.name, "m1");
	ck_assert_str_eq(c.data_dir, "m1.cairn");
	ck_assert_str_eq(c.initial_cluster, "m1=http://localhost:2380");
	ck_assert_str_eq(c.backend, "bolt");
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	config_free(&c);

	/* An empty file is all defaults. */
	path = write_file(dir, "empty.yml", "");
	ck_assert_int_eq(PARSE(&c, "--config-file", path), 0);
	ck_assert_str_eq(c.name, "default");
	config_free(&c);

	/* config_load_file() directly */
	config_defaults(&c, "bolt");
	path = write_file(dir, "direct.yml", "max-txn-ops: 9\n");
	ck_assert_int_eq(config_load_file(&c, path, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.max_txn_ops, 9);
	config_free(&c);

	unlink(write_file(dir, "etcd.conf.yml", ""));
	unlink(write_file(dir, "min.yml", ""));
	unlink(write_file(dir, "empty.yml", ""));
	unlink(write_file(dir, "direct.yml", ""));
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_yaml_errors)
{
	char dir[] = "/tmp/check_config.XXXXXX", *path, want[600];
	struct config c;

	ck_assert_ptr_nonnull(mkdtemp(dir));

	path = write_file(dir, "syntax.yml", "name: a\n  bad: [\n");
	ck_assert_int_eq(PARSE(&c, "--config-file", path), -EBADMSG);
	snprintf(want, sizeof(want), "config file %s: line ", path);
	ck_assert_ptr_nonnull(strstr(errbuf, want));
	config_free(&c);
	unlink(path);

	path = write_file(dir, "num.yml", "name: a\nmax-txn-ops: abc\n");
	ck_assert_int_eq(PARSE(&c, "--config-file", path), -EBADMSG);
	snprintf(want, sizeof(want),
		 "invalid value \"abc\" for key max-txn-ops in %s: not a "
		 "number",
		 path);
	ck_assert_str_eq(errbuf, want);
	config_free(&c);
	unlink(path);

	path = write_file(dir, "tls.yml",
			  "peer-transport-security:\n  auto-tls: maybe\n");
	ck_assert_int_eq(PARSE(&c, "--config-file", path), -EBADMSG);
	snprintf(want, sizeof(want),
		 "invalid value \"maybe\" for key "
		 "peer-transport-security.auto-tls in %s: not a boolean (true "
		 "or false)",
		 path);
	ck_assert_str_eq(errbuf, want);
	config_free(&c);
	unlink(path);

	path = write_file(dir, "list.yml", "- a\n- b\n");
	ck_assert_int_eq(PARSE(&c, "--config-file", path), -EBADMSG);
	snprintf(want, sizeof(want),
		 "config file %s: line 1: the top level must be a mapping of "
		 "keys to values",
		 path);
	ck_assert_str_eq(errbuf, want);
	config_free(&c);
	unlink(path);

	path = write_file(dir, "map.yml", "name:\n  a: b\n");
	ck_assert_int_eq(PARSE(&c, "--config-file", path), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(
		errbuf, "name must be a value or a list, not a mapping"));
	config_free(&c);
	unlink(path);

	snprintf(want, sizeof(want), "%s/missing.yml", dir);
	ck_assert_int_eq(PARSE(&c, "--config-file", want), -ENOENT);
	ck_assert_ptr_nonnull(strstr(errbuf, "cannot read config file"));
	ck_assert_ptr_nonnull(strstr(errbuf, "No such file or directory"));
	config_free(&c);

	/* Flags are checked before the file replaces them (Go's order). */
	PARSE_ERR(-EINVAL,
		  "invalid value \"x\" for flag --max-txn-ops: not a number",
		  "--config-file", want, "--max-txn-ops", "x");
	ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

/* "--name" as a whole word of text (followed by a blank or newline). */
static bool has_flag(const char *text, const char *name)
{
	size_t len = strlen(name);
	const char *p = text;

	while ((p = strstr(p, "--"))) {
		p += 2;
		if (strncmp(p, name, len) == 0 &&
		    (p[len] == ' ' || p[len] == '\n'))
			return true;
	}
	return false;
}

START_TEST(test_help)
{
	/* The flags the brief and etcd's units rely on, by name. */
	static const char *const must[] = {"name",
					   "data-dir",
					   "wal-dir",
					   "listen-client-urls",
					   "advertise-client-urls",
					   "listen-peer-urls",
					   "initial-advertise-peer-urls",
					   "initial-cluster",
					   "initial-cluster-state",
					   "initial-cluster-token",
					   "heartbeat-interval",
					   "election-timeout",
					   "snapshot-count",
					   "quota-backend-bytes",
					   "max-request-bytes",
					   "max-txn-ops",
					   "max-concurrent-streams",
					   "grpc-keepalive-min-time",
					   "grpc-keepalive-interval",
					   "grpc-keepalive-timeout",
					   "auto-compaction-mode",
					   "auto-compaction-retention",
					   "listen-metrics-urls",
					   "enable-pprof",
					   "logger",
					   "log-outputs",
					   "log-level",
					   "debug",
					   "force-new-cluster",
					   "strict-reconfig-check",
					   "enable-v2",
					   "cert-file",
					   "key-file",
					   "client-cert-auth",
					   "trusted-ca-file",
					   "auto-tls",
					   "peer-cert-file",
					   "peer-key-file",
					   "peer-client-cert-auth",
					   "peer-trusted-ca-file",
					   "peer-auto-tls",
					   "version",
					   "help",
					   "config-file",
					   "backend"};
	char *text = NULL;
	size_t len = 0, i;
	FILE *f = open_memstream(&text, &len);

	ck_assert_ptr_nonnull(f);
	config_print_help(f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(strstr(text, "Usage:"));
	ck_assert_ptr_nonnull(strstr(text, "\nMember:\n  --name 'default'\n"
					   "    Human-readable name for this "
					   "member.\n"));
	ck_assert_ptr_nonnull(strstr(text, "--data-dir '${name}.cairn'"));
	for (i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
		ck_assert_msg(has_flag(text, must[i]), "help lacks --%s",
			      must[i]);
	}
	/* and every row of the table, ignored ones included */
	for (i = 0; i < config_nopts; i++) {
		ck_assert_msg(has_flag(text, config_opts[i].name),
			      "help lacks --%s", config_opts[i].name);
	}
	free(text);
}
END_TEST

/* etcd's cluster flags keep etcd's meaning; --experimental-test-faults is
 * cairn's, off by default, and --help says it is for tests only. */
START_TEST(test_cluster_flags)
{
	char *env[] = {"ETCD_EXPERIMENTAL_TEST_FAULTS=true", NULL};
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	struct config c;

	ck_assert_int_eq(PARSE(&c, "--name", "m2", "--initial-cluster",
			       "m1=http://127.0.0.1:2380,m2=http://127.0.0.1:"
			       "2381",
			       "--initial-advertise-peer-urls",
			       "http://127.0.0.1:2381", "--listen-peer-urls",
			       "http://127.0.0.1:2381", "--initial-cluster-state",
			       "existing", "--initial-cluster-token", "tok",
			       "--heartbeat-interval", "50",
			       "--election-timeout", "500", "--snapshot-count",
			       "1000"),
			 0);
	ck_assert(!c.test_faults);
	ck_assert_str_eq(c.initial_cluster_state, "existing");
	ck_assert_str_eq(c.initial_cluster_token, "tok");
	ck_assert_uint_eq(c.heartbeat_ms, 50);
	ck_assert_uint_eq(c.election_ms, 500);
	ck_assert_uint_eq(c.snapshot_count, 1000);
	ck_assert_int_eq(config_validate(&c, errbuf, sizeof(errbuf)), 0);
	ck_assert_uint_eq(c.n_initial_peers, 2);
	ck_assert_str_eq(c.initial_peers[1].name, "m2");
	url_eq(&c.initial_peers[1].url, "http", "127.0.0.1", 2381);
	ck_assert_int_eq(config_verify_bootstrap(&c, true, errbuf,
						 sizeof(errbuf)),
			 0);
	config_free(&c);
	PARSE_ERR(-EINVAL,
		  "invalid value \"maybe\" for flag --initial-cluster-state: "
		  "must be one of new, existing",
		  "--initial-cluster-state", "maybe");

	ck_assert_int_eq(PARSE(&c, "--experimental-test-faults"), 0);
	ck_assert(c.test_faults);
	config_free(&c);
	ck_assert_int_eq(parse_env(&c, env, NULL), 0);
	ck_assert(c.test_faults);
	config_free(&c);

	f = open_memstream(&text, &len);
	ck_assert_ptr_nonnull(f);
	config_print_help(f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_ptr_nonnull(strstr(text, "  --experimental-test-faults "
					   "'false'\n    TEST ONLY"));
	free(text);
}
END_TEST

START_TEST(test_url_format)
{
	struct config_url u = {"https", "::1", 2379};
	char buf[64];

	ck_assert_int_eq(config_url_format(&u, buf, sizeof(buf)), 18);
	ck_assert_str_eq(buf, "https://[::1]:2379");
	strcpy(u.scheme, "http");
	strcpy(u.host, "10.1.2.3");
	ck_assert_int_gt(config_url_format(&u, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "http://10.1.2.3:2379");
	ck_assert_int_eq(config_url_format(&u, buf, 8), -ENOSPC);
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("config");

	tcase_set_timeout(tc, 10);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_flag_forms);
	tcase_add_test(tc, test_bool_forms);
	tcase_add_test(tc, test_env);
	tcase_add_test(tc, test_env_precedence);
	tcase_add_test(tc, test_env_errors);
	tcase_add_test(tc, test_errors);
	tcase_add_test(tc, test_ignored_flags);
	tcase_add_test(tc, test_help_version);
	tcase_add_test(tc, test_initial_cluster_derivation);
	tcase_add_test(tc, test_validate);
	tcase_add_test(tc, test_verify_bootstrap);
	tcase_add_test(tc, test_yaml);
	tcase_add_test(tc, test_yaml_errors);
	tcase_add_test(tc, test_help);
	tcase_add_test(tc, test_url_format);
	tcase_add_test(tc, test_cluster_flags);
	suite_add_tcase(s, tc);
	return s;
}
