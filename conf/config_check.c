/* config_check: config_validate(), the cross-field checks.
 *
 * Order and messages follow etcd 3.4's embed.Config.Validate() where etcd
 * has the check, so the first error a user sees is the one etcd shows.
 */
#include "conf/config_priv.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/log.h"

#define ERR(...) (config_errf(errbuf, errlen, __VA_ARGS__), -EINVAL)

/* etcd's checkBindURLs: a listener needs an address, not a name. */
static int check_bind(const struct config_url *u, size_t n, char *errbuf,
		      size_t errlen)
{
	unsigned char buf[16];
	char s[300];
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(u[i].host, "localhost") == 0 ||
		    inet_pton(AF_INET, u[i].host, buf) == 1 ||
		    inet_pton(AF_INET6, u[i].host, buf) == 1)
			continue;
		config_url_format(&u[i], s, sizeof(s));
		return ERR("expected IP in URL for binding (%s)", s);
	}
	return 0;
}

static int check_urls(const struct config *c, char *errbuf, size_t errlen)
{
	int err;

	err = check_bind(c->listen_peer_urls, c->n_listen_peer_urls, errbuf,
			 errlen);
	if (err == 0)
		err = check_bind(c->listen_client_urls, c->n_listen_client_urls,
				 errbuf, errlen);
	if (err == 0)
		err = check_bind(c->listen_metrics_urls,
				 c->n_listen_metrics_urls, errbuf, errlen);
	if (err < 0)
		return err;
	if (!c->n_listen_peer_urls)
		return ERR("--listen-peer-urls must not be empty");
	if (!c->n_listen_client_urls)
		return ERR("--listen-client-urls must not be empty");
	if (!c->n_initial_advertise_peer_urls)
		return ERR("--initial-advertise-peer-urls must not be empty");
	return 0;
}

static int check_timing(const struct config *c, char *errbuf, size_t errlen)
{
	if (c->heartbeat_ms == 0)
		return ERR("--heartbeat-interval must be >0 (set to %llums)",
			   (unsigned long long)c->heartbeat_ms);
	if (c->election_ms == 0)
		return ERR("--election-timeout must be >0 (set to %llums)",
			   (unsigned long long)c->election_ms);
	if (5 * c->heartbeat_ms > c->election_ms)
		return ERR("--election-timeout[%llums] should be at least as 5 "
			   "times as --heartbeat-interval[%llums]",
			   (unsigned long long)c->election_ms,
			   (unsigned long long)c->heartbeat_ms);
	if (c->election_ms > CONFIG_MAX_ELECTION_MS)
		return ERR("--election-timeout[%llums] is too long, and should "
			   "be set less than %dms",
			   (unsigned long long)c->election_ms,
			   CONFIG_MAX_ELECTION_MS);
	return 0;
}

/* One "name=url" of --initial-cluster into p. */
static int peer_parse(const char *s, size_t len, struct config_peer *p,
		      const char **why)
{
	const char *eq = memchr(s, '=', len), *bad;
	struct config_url *u = NULL;
	size_t n = 0, badlen;
	char *url;
	int err;

	if (!eq || eq == s)
		return *why = "each member must be name=URL", -EINVAL;
	url = strndup(eq + 1, len - (size_t)(eq + 1 - s));
	p->name = strndup(s, (size_t)(eq - s));
	if (!url || !p->name) {
		free(url);
		return -ENOMEM;
	}
	err = config_urls_parse(url, &u, &n, why, &bad, &badlen);
	free(url);
	if (err == 0 && n != 1)
		err = (*why = "each member must be name=URL", -EINVAL);
	if (err == 0)
		p->url = u[0];
	free(u);
	return err;
}

static int check_cluster(struct config *c, char *errbuf, size_t errlen)
{
	const char *s = c->initial_cluster ? c->initial_cluster : "";
	const char *why = NULL, *comma;
	size_t cap = 1, len;
	int err;

	for (const char *p = s; *p; p++)
		cap += *p == ',';
	c->initial_peers = calloc(cap, sizeof(*c->initial_peers));
	if (!c->initial_peers)
		return -ENOMEM;
	while (*s) {
		while (isspace((unsigned char)*s))
			s++;
		comma = strchr(s, ',');
		len = comma ? (size_t)(comma - s) : strlen(s);
		while (len && isspace((unsigned char)s[len - 1]))
			len--;
		err = peer_parse(s, len, &c->initial_peers[c->n_initial_peers],
				 &why);
		c->n_initial_peers++; /* the name is owned even on error */
		if (err == -EINVAL)
			return ERR(
				"invalid value \"%s\" for --initial-cluster: "
				"%s (\"%.*s\")",
				c->initial_cluster, why, (int)len, s);
		if (err < 0)
			return err;
		if (!comma)
			break;
		s = comma + 1;
	}
	return 0;
}

static bool has_https(const struct config_url *u, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(u[i].scheme, "https") == 0)
			return true;
	return false;
}

static int check_tls_pair(const char *cert, const char *key, bool auto_tls,
			  bool https, const char *prefix, char *errbuf,
			  size_t errlen)
{
	if (!*cert != !*key)
		return ERR("--%scert-file and --%skey-file must be given "
			   "together",
			   prefix, prefix);
	if (https && !*cert && !auto_tls)
		return ERR("TLS key/cert (--%scert-file, --%skey-file) must be "
			   "provided for %s URLs with HTTPS scheme",
			   prefix, prefix, *prefix ? "peer" : "client");
	return 0;
}

static int check_tls(const struct config *c, char *errbuf, size_t errlen)
{
	int err;

	err = check_tls_pair(
		c->cert_file, c->key_file, c->auto_tls,
		has_https(c->listen_client_urls, c->n_listen_client_urls), "",
		errbuf, errlen);
	if (err < 0)
		return err;
	return check_tls_pair(
		c->peer_cert_file, c->peer_key_file, c->peer_auto_tls,
		has_https(c->listen_peer_urls, c->n_listen_peer_urls), "peer-",
		errbuf, errlen);
}

/* etcd: a bare integer is hours (periodic) or revisions (revision);
 * periodic also takes a duration ("30m"). */
static int check_retention(struct config *c, char *errbuf, size_t errlen)
{
	const char *r = c->auto_compaction_retention;
	bool periodic = strcmp(c->auto_compaction_mode, "periodic") == 0;
	const char *why;
	unsigned long long v;
	char *end;

	c->auto_compaction_period_ms = 0;
	c->auto_compaction_revs = 0;
	if (!*r)
		return 0;
	errno = 0;
	v = strtoull(r, &end, 10);
	if (isdigit((unsigned char)r[0]) && !*end && errno == 0) {
		if (!periodic)
			c->auto_compaction_revs = v;
		else if (v > UINT64_MAX / 3600000ULL)
			return ERR("invalid value \"%s\" for "
				   "--auto-compaction-retention: out of range",
				   r);
		else
			c->auto_compaction_period_ms = v * 3600000ULL;
		return 0;
	}
	if (periodic &&
	    config_duration_parse(r, false, &c->auto_compaction_period_ms,
				  &why) == 0)
		return 0;
	if (periodic)
		why = "not a number of hours or a duration (e.g. 1h, 30m)";
	else
		why = "not a number of revisions";
	return ERR("invalid value \"%s\" for --auto-compaction-retention: %s",
		   r, why);
}

static void warn_unused(const struct config *c)
{
	if (c->quota_backend_bytes > CONFIG_MAX_QUOTA_BYTES)
		log_warn("--quota-backend-bytes %llu exceeds maximum "
			 "recommended "
			 "quota %llu",
			 (unsigned long long)c->quota_backend_bytes,
			 (unsigned long long)CONFIG_MAX_QUOTA_BYTES);
	if (c->max_request_bytes > CONFIG_MAX_REQUEST_BYTES_WARN)
		log_warn("--max-request-bytes %llu exceeds maximum recommended "
			 "size %llu",
			 (unsigned long long)c->max_request_bytes,
			 (unsigned long long)CONFIG_MAX_REQUEST_BYTES_WARN);
	if (c->enable_v2)
		log_warn("--enable-v2: cairn does not serve the etcd v2 API");
	if (c->enable_pprof)
		log_warn(
			"--enable-pprof: cairn has no pprof endpoint, ignored");
	if (strcmp(c->log_outputs, "default") != 0 &&
	    strcmp(c->log_outputs, "stderr") != 0)
		log_warn("--log-outputs %s: cairn logs to stderr",
			 c->log_outputs);
}

int config_validate(struct config *c, char *errbuf, size_t errlen)
{
	size_t i;
	int err;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (c->defaults_err)
		return c->defaults_err;
	for (i = 0; i < c->n_initial_peers; i++)
		free(c->initial_peers[i].name);
	free(c->initial_peers);
	c->initial_peers = NULL;
	c->n_initial_peers = 0;
	err = check_urls(c, errbuf, errlen);
	if (err == 0)
		err = check_timing(c, errbuf, errlen);
	/* last in etcd's order, because a proxy may not need it */
	if (err == 0 && !c->n_advertise_client_urls)
		err = ERR("--advertise-client-urls is required when "
			  "--listen-client-urls is set explicitly");
	if (err == 0)
		err = check_cluster(c, errbuf, errlen);
	if (err == 0)
		err = check_tls(c, errbuf, errlen);
	if (err == 0)
		err = check_retention(c, errbuf, errlen);
	if (err == 0 && (!c->backend || !*c->backend))
		err = ERR("--backend must name a storage engine");
	if (err == 0)
		warn_unused(c);
	if (err == -ENOMEM)
		config_errf(errbuf, errlen, "out of memory");
	return err;
}

static bool url_in(const struct config_url *u, const struct config_url *v,
		   size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (u->port == v[i].port && !strcmp(u->scheme, v[i].scheme) &&
		    !strcmp(u->host, v[i].host))
			return true;
	return false;
}

/* Append "[,]name=url" to buf (size len, always terminated). */
static void list_add(char *buf, size_t len, const char *name,
		     const struct config_url *u)
{
	size_t used = strlen(buf);
	char s[300];

	config_url_format(u, s, sizeof(s));
	snprintf(buf + used, len - used, "%s%s%s%s", used ? "," : "",
		 name ? name : "", name ? "=" : "", s);
}

/* etcd's advertiseMatchesCluster, comparing URLs as written (etcd also
 * resolves host names before giving up; cairn does not). */
static int check_advertise(const struct config *c, char *errbuf, size_t errlen)
{
	char miss[1024] = "", other[1024] = "";
	size_t i;

	for (i = 0; i < c->n_initial_peers; i++) {
		const struct config_peer *p = &c->initial_peers[i];

		if (!strcmp(p->name, c->name) &&
		    !url_in(&p->url, c->initial_advertise_peer_urls,
			    c->n_initial_advertise_peer_urls))
			list_add(miss, sizeof(miss), p->name, &p->url);
	}
	for (i = 0; i < c->n_initial_advertise_peer_urls; i++)
		list_add(other, sizeof(other), NULL,
			 &c->initial_advertise_peer_urls[i]);
	if (*miss)
		return ERR("--initial-cluster has %s but missing from "
			   "--initial-advertise-peer-urls=%s",
			   miss, other);
	other[0] = '\0';
	for (i = 0; i < c->n_initial_advertise_peer_urls; i++) {
		const struct config_url *u = &c->initial_advertise_peer_urls[i];
		bool found = false;

		for (size_t j = 0; j < c->n_initial_peers && !found; j++)
			found = !strcmp(c->initial_peers[j].name, c->name) &&
				url_in(u, &c->initial_peers[j].url, 1);
		if (!found)
			list_add(miss, sizeof(miss), NULL, u);
		list_add(other, sizeof(other), c->name, u);
	}
	if (*miss)
		return ERR("--initial-advertise-peer-urls has %s but missing "
			   "from --initial-cluster=%s",
			   miss, other);
	return 0;
}

int config_verify_bootstrap(const struct config *c, bool join_existing,
			    char *errbuf, size_t errlen)
{
	size_t i, j;
	int err;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	for (i = 0; i < c->n_initial_peers; i++)
		if (!strcmp(c->initial_peers[i].name, c->name))
			break;
	if (i == c->n_initial_peers)
		return ERR("couldn't find local name \"%s\" in the initial "
			   "cluster configuration",
			   c->name);
	if (!join_existing) {
		err = check_advertise(c, errbuf, errlen);
		if (err < 0)
			return err;
	}
	for (i = 0; i < c->n_initial_peers; i++)
		for (j = 0; j < i; j++)
			if (url_in(&c->initial_peers[i].url,
				   &c->initial_peers[j].url, 1))
				return ERR("initial cluster %s has duplicate "
					   "url",
					   c->initial_cluster);
	return 0;
}
