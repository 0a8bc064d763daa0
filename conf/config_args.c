/* config_args: command line, ETCD_* environment, and what derives from them.
 *
 * config_parse() runs these steps; each may end it:
 *
 *   scan argv ──(-h/--help)──> show_help, return 0
 *     │  (unknown flag, missing value, stray argument: -EINVAL)
 *   apply flag values ──(bad value: -EINVAL)
 *     │──(--version)──> show_version, return 0
 *     ├──(--config-file or ETCD_CONFIG_FILE)──> reset to defaults, load
 *     │      the YAML file, derive; flags and env ignored (warned)
 *   apply ETCD_* not shadowed by a flag ──(bad value: -EBADMSG)
 *   derive data_dir, initial_cluster, advertise-client-urls rule
 *
 * Invariants:
 *  1. Flag values are applied (hence checked) before anything else, as
 *     Go's flag package does: a bad flag is reported even when a config
 *     file would have replaced it.
 *  2. src[i] records where option i's value came from; derivations only
 *     fill options still at CONFIG_SRC_DEFAULT.
 */
#include "conf/config_priv.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/util/log.h"

extern char **environ;

struct flag_arg {
	const struct copt *o;
	const char *val; /* NULL: a bare boolean flag */
};

static size_t opt_index(const char *name)
{
	return (size_t)(config_opt_find(name, strlen(name)) - config_opts);
}

static bool is_help(const char *name, size_t len)
{
	return (len == 1 && name[0] == 'h') ||
	       (len == 4 && memcmp(name, "help", 4) == 0);
}

/* One argv element (and maybe its value) at argv[*i] into *fa. Returns 1
 * when help was asked for, 0 or -EINVAL. */
static int scan_one(int argc, char **argv, int *i, struct flag_arg *fa,
		    char *errbuf, size_t errlen)
{
	const char *a = argv[*i], *name, *eq;
	size_t len;

	if (a[0] != '-' || a[1] == '\0') {
		config_errf(errbuf, errlen, "'%s' is not a valid flag", a);
		return -EINVAL;
	}
	name = a + (a[1] == '-' ? 2 : 1);
	if (!*name || *name == '-' || *name == '=') {
		config_errf(errbuf, errlen, "bad flag syntax: %s", a);
		return -EINVAL;
	}
	eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	if (is_help(name, len))
		return 1;
	fa->o = config_opt_find(name, len);
	if (!fa->o) {
		config_errf(errbuf, errlen, "unknown flag --%.*s (see --help)",
			    (int)len, name);
		return -EINVAL;
	}
	if (eq) {
		fa->val = eq + 1;
	} else if (fa->o->type == COPT_BOOL ||
		   fa->o->type == COPT_IGNORED_BOOL) {
		fa->val = NULL;
	} else if (*i + 1 < argc) {
		/* As Go's flag package: the next word is the value, even
		 * when it starts with '-'. */
		fa->val = argv[++*i];
	} else {
		config_errf(errbuf, errlen, "missing value for flag --%s",
			    fa->o->name);
		return -EINVAL;
	}
	return 0;
}

static int scan_args(struct config *c, int argc, char **argv,
		     struct flag_arg *fa, size_t *nfa, char *errbuf,
		     size_t errlen)
{
	int i, r;

	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			if (i + 1 < argc) {
				config_errf(errbuf, errlen,
					    "'%s' is not a valid flag",
					    argv[i + 1]);
				return -EINVAL;
			}
			break;
		}
		r = scan_one(argc, argv, &i, &fa[*nfa], errbuf, errlen);
		if (r < 0)
			return r;
		if (r == 1) {
			c->show_help = true;
			return 0;
		}
		(*nfa)++;
	}
	return 0;
}

static int apply_flags(struct config *c, const struct flag_arg *fa, size_t nfa,
		       uint8_t *src, char *errbuf, size_t errlen)
{
	char what[96];
	size_t i;
	int err;

	for (i = 0; i < nfa; i++) {
		snprintf(what, sizeof(what), "flag --%s", fa[i].o->name);
		err = config_opt_set(c, fa[i].o, fa[i].val ? fa[i].val : "true",
				     what, false, errbuf, errlen);
		if (err < 0)
			return err;
		src[fa[i].o - config_opts] = CONFIG_SRC_FLAG;
	}
	return 0;
}

/* "ETCD_MAX_TXN_OPS" -> the max-txn-ops row, or NULL. */
static const struct copt *env_opt(const char *key, size_t klen)
{
	char name[64];
	size_t i;

	if (klen - 5 >= sizeof(name))
		return NULL;
	for (i = 5; i < klen; i++) {
		char ch = key[i];

		if (islower((unsigned char)ch) || ch == '-')
			return NULL; /* etcd only maps upper snake case */
		name[i - 5] =
			ch == '_' ? '-' : (char)tolower((unsigned char)ch);
	}
	return config_opt_find(name, klen - 5);
}

static bool env_special(const char *key, size_t klen)
{
	return (klen == 16 && memcmp(key, "ETCD_CONFIG_FILE", 16) == 0) ||
	       (klen == 21 && memcmp(key, "ETCD_UNSUPPORTED_ARCH", 21) == 0);
}

static int env_one(struct config *c, const char *kv, uint8_t *src, char *errbuf,
		   size_t errlen)
{
	const char *eq = strchr(kv, '='), *val;
	const struct copt *o;
	char what[96];
	size_t klen;
	int err;

	if (strncmp(kv, "ETCD_", 5) != 0 || !eq)
		return 0;
	klen = (size_t)(eq - kv);
	val = eq + 1;
	if (env_special(kv, klen))
		return 0;
	o = env_opt(kv, klen);
	if (!o || (o->flags & COPT_NO_ENV)) {
		log_warn("unrecognized environment variable %.*s", (int)klen,
			 kv);
		return 0;
	}
	if (!*val)
		return 0; /* etcd ignores empty variables */
	if (src[o - config_opts] == CONFIG_SRC_FLAG) {
		log_warn("conflicting environment variable %.*s is shadowed by "
			 "corresponding command-line flag --%s: the flag wins",
			 (int)klen, kv, o->name);
		return 0;
	}
	snprintf(what, sizeof(what), "%.*s", (int)klen, kv);
	err = config_opt_set(c, o, val, what, false, errbuf, errlen);
	if (err < 0)
		return err == -EINVAL ? -EBADMSG : err;
	log_info("recognized and used environment variable %s", kv);
	src[o - config_opts] = CONFIG_SRC_ENV;
	return 0;
}

static int apply_env(struct config *c, char **envp, uint8_t *src, char *errbuf,
		     size_t errlen)
{
	int err;

	for (; *envp; envp++) {
		err = env_one(c, *envp, src, errbuf, errlen);
		if (err < 0)
			return err;
	}
	return 0;
}

static const char *env_get(char **envp, const char *key)
{
	size_t klen = strlen(key);

	for (; *envp; envp++)
		if (strncmp(*envp, key, klen) == 0 && (*envp)[klen] == '=')
			return *envp + klen + 1;
	return NULL;
}

/* "${name}=${url}" for each advertised peer URL, as etcd's
 * InitialClusterFromName. */
static int derive_initial_cluster(struct config *c)
{
	const char *name = c->name && *c->name ? c->name : CONFIG_DEFAULT_NAME;
	size_t i, len, per = strlen(name) + 2 + 300;
	char *s, *p;
	int n;

	s = malloc(per * c->n_initial_advertise_peer_urls + 1);
	if (!s)
		return -ENOMEM;
	p = s;
	*p = '\0';
	for (i = 0; i < c->n_initial_advertise_peer_urls; i++) {
		len = (size_t)sprintf(p, "%s%s=", i ? "," : "", name);
		p += len;
		n = config_url_format(&c->initial_advertise_peer_urls[i], p,
				      per - len);
		p += n > 0 ? n : 0;
	}
	free(c->initial_cluster);
	c->initial_cluster = s;
	return 0;
}

static int derive(struct config *c, const uint8_t *src, bool cmdline)
{
	char *dir;
	int err;

	if (src[opt_index("data-dir")] == CONFIG_SRC_DEFAULT || !c->data_dir ||
	    !*c->data_dir) {
		if (asprintf(&dir, "%s.cairn", c->name ? c->name : "") < 0)
			return -ENOMEM;
		free(c->data_dir);
		c->data_dir = dir;
	}
	if (src[opt_index("initial-cluster")] == CONFIG_SRC_DEFAULT) {
		err = derive_initial_cluster(c);
		if (err < 0)
			return err;
	}
	/* etcd: listening elsewhere but advertising the default would send
	 * clients to the wrong place, so the default is dropped and
	 * config_validate() asks for --advertise-client-urls. */
	if (cmdline &&
	    src[opt_index("listen-client-urls")] != CONFIG_SRC_DEFAULT &&
	    src[opt_index("advertise-client-urls")] == CONFIG_SRC_DEFAULT) {
		free(c->advertise_client_urls);
		c->advertise_client_urls = NULL;
		c->n_advertise_client_urls = 0;
	}
	return 0;
}

int config_load_file(struct config *c, const char *path, char *errbuf,
		     size_t errlen)
{
	uint8_t src[CONFIG_NOPTS_MAX] = {0};
	int err;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (c->defaults_err)
		return c->defaults_err;
	err = config_yaml_load(c, path, src, errbuf, errlen);
	if (err < 0)
		return err;
	err = config_str_set(&c->config_file, path);
	if (err < 0)
		return err;
	return derive(c, src, false);
}

static void warn_ignored(const struct flag_arg *fa, size_t nfa, char **envp)
{
	const char *eq;
	size_t i;

	for (i = 0; i < nfa; i++) {
		if (strcmp(fa[i].o->name, "config-file") != 0)
			log_warn("flag --%s ignored: a config file is given",
				 fa[i].o->name);
	}
	for (; *envp; envp++) {
		eq = strchr(*envp, '=');
		if (strncmp(*envp, "ETCD_", 5) == 0 && eq && eq[1] &&
		    !env_special(*envp, (size_t)(eq - *envp)))
			log_warn("environment variable %.*s ignored: a config "
				 "file is given",
				 (int)(eq - *envp), *envp);
	}
}

/* Start again from the defaults and read only the file (etcd's rule). */
static int from_file(struct config *c, const char *file,
		     const struct flag_arg *fa, size_t nfa, char **envp,
		     char *errbuf, size_t errlen)
{
	char *path = strdup(file), *backend = strdup(c->backend);
	int err = -ENOMEM;

	if (!path || !backend)
		goto fail;
	warn_ignored(fa, nfa, envp);
	log_info("loading server configuration from %s", path);
	config_free(c);
	config_defaults(c, backend);
	err = config_load_file(c, path, errbuf, errlen);
fail:
	if (err == -ENOMEM)
		config_errf(errbuf, errlen, "out of memory");
	free(path);
	free(backend);
	return err;
}

int config_parse(struct config *c, int argc, char **argv, char **envp,
		 char *errbuf, size_t errlen)
{
	uint8_t src[CONFIG_NOPTS_MAX] = {0};
	char *def_backend = NULL;
	struct flag_arg *fa;
	const char *file;
	size_t nfa = 0;
	int err;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (c->defaults_err)
		return c->defaults_err;
	envp = envp ? envp : environ;
	fa = calloc(argc > 0 ? (size_t)argc : 1, sizeof(*fa));
	def_backend = strdup(c->backend ? c->backend : "");
	err = -ENOMEM;
	if (!fa || !def_backend)
		goto out;
	err = scan_args(c, argc, argv, fa, &nfa, errbuf, errlen);
	if (err < 0 || c->show_help)
		goto out;
	err = apply_flags(c, fa, nfa, src, errbuf, errlen);
	if (err < 0 || c->show_version)
		goto out;
	file = c->config_file;
	if (!file || !*file)
		file = env_get(envp, "ETCD_CONFIG_FILE");
	if (file && *file) {
		/* c->backend may hold a --backend value: restore the default
		 * so from_file() starts from config_defaults() exactly. */
		err = config_str_set(&c->backend, def_backend);
		if (err == 0)
			err = from_file(c, file, fa, nfa, envp, errbuf, errlen);
		goto out;
	}
	err = apply_env(c, envp, src, errbuf, errlen);
	if (err == 0)
		err = derive(c, src, true);
out:
	if (err == -ENOMEM)
		config_errf(errbuf, errlen, "out of memory");
	free(def_backend);
	free(fa);
	return err;
}
