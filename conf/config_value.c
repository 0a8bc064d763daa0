/* config_value: text -> typed value, with Go's (hence etcd's) syntax.
 *
 * Numbers follow strconv.ParseUint(s, 0, ...): decimal, 0x hex, 0 octal,
 * no sign. Booleans follow strconv.ParseBool (1 t T TRUE true True and the
 * 0/f/false forms); the YAML reader adds yes/no/on/off as YAML 1.1 does.
 * Durations follow time.ParseDuration ("300ms", "1h30m", "1.5s", "0").
 * URLs follow etcd's types.NewURLs: scheme://host:port, no path.
 */
#include "conf/config_priv.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/util/log.h"

static int u64_parse(const char *s, uint64_t max, uint64_t *out,
		     const char **why)
{
	unsigned long long v;
	char *end;

	if (s[0] == '-') {
		*why = "must not be negative";
		return -EINVAL;
	}
	if (!isdigit((unsigned char)s[0])) {
		*why = "not a number";
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end != '\0') {
		*why = "not a number";
		return -EINVAL;
	}
	if (errno == ERANGE || v > max) {
		*why = "out of range";
		return -EINVAL;
	}
	*out = v;
	return 0;
}

static int bool_parse(const char *s, bool yaml, bool *out)
{
	static const char *const yes[] = {"1",	  "t",	  "T",
					  "TRUE", "true", "True"};
	static const char *const no[] = {"0",	  "f",	   "F",
					 "FALSE", "false", "False"};
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcmp(s, yes[i]) == 0)
			return *out = true, 0;
		if (strcmp(s, no[i]) == 0)
			return *out = false, 0;
	}
	if (yaml && (strcasecmp(s, "yes") == 0 || strcasecmp(s, "on") == 0))
		return *out = true, 0;
	if (yaml && (strcasecmp(s, "no") == 0 || strcasecmp(s, "off") == 0))
		return *out = false, 0;
	return -EINVAL;
}

/* One unit of a Go duration, longest names first where they share a
 * prefix ("ms" before "m"). */
static const struct {
	const char *name;
	uint64_t ns;
} dur_units[] = {
	{"ns", 1ULL},		{"us", 1000ULL},
	{"\xc2\xb5s", 1000ULL}, /* U+00B5 micro sign */
	{"\xce\xbcs", 1000ULL}, /* U+03BC greek mu */
	{"ms", 1000000ULL},	{"s", 1000000000ULL},
	{"m", 60000000000ULL},	{"h", 3600000000000ULL},
};

static const char *dur_unit(const char *s, uint64_t *ns)
{
	size_t i, len;

	for (i = 0; i < sizeof(dur_units) / sizeof(dur_units[0]); i++) {
		len = strlen(dur_units[i].name);
		if (strncmp(s, dur_units[i].name, len) == 0) {
			*ns = dur_units[i].ns;
			return s + len;
		}
	}
	return NULL;
}

/* One "<int>[.<frac>]<unit>" element; adds its value to *total. */
static const char *dur_elem(const char *s, long double *total)
{
	long double v = 0, scale = 1;
	bool digits = false;
	uint64_t unit;

	for (; isdigit((unsigned char)*s); s++, digits = true)
		v = v * 10 + (*s - '0');
	if (*s == '.') {
		for (s++; isdigit((unsigned char)*s); s++, digits = true) {
			scale /= 10;
			v += scale * (*s - '0');
		}
	}
	if (!digits)
		return NULL;
	s = dur_unit(s, &unit);
	if (!s)
		return NULL;
	*total += v * (long double)unit;
	return s;
}

int config_duration_parse(const char *s, bool yaml, uint64_t *ms,
			  const char **why)
{
	long double total = 0;
	uint64_t ns;
	const char *p = s;

	*why = "not a duration (e.g. 5s, 100ms, 2h)";
	if (yaml && u64_parse(s, INT64_MAX, &ns, why) == 0)
		return *ms = ns / 1000000, 0;
	*why = "not a duration (e.g. 5s, 100ms, 2h)";
	if (*p == '-') {
		*why = "must not be negative";
		return -EINVAL;
	}
	if (*p == '+')
		p++;
	if (strcmp(p, "0") == 0)
		return *ms = 0, 0;
	if (*p == '\0')
		return -EINVAL;
	while (*p) {
		p = dur_elem(p, &total);
		if (!p)
			return -EINVAL;
	}
	if (total > (long double)INT64_MAX) {
		*why = "out of range";
		return -EINVAL;
	}
	*ms = (uint64_t)(total / 1000000.0L);
	return 0;
}

static bool host_ok(const char *h)
{
	for (; *h; h++)
		if (!isalnum((unsigned char)*h) && !strchr("-._", *h))
			return false;
	return true;
}

/* "host:port" or "[v6]:port" (authority of len bytes) into u. */
static int authority_parse(const char *a, size_t len, struct config_url *u,
			   const char **why)
{
	const char *colon, *host = a, *hend;
	unsigned long port = 0;
	size_t i;

	if (memchr(a, '@', len))
		return *why = "URL must not contain user info", -EINVAL;
	if (len && a[0] == '[') {
		hend = memchr(a, ']', len);
		if (!hend || hend + 1 == a + len || hend[1] != ':')
			goto noport;
		host = a + 1;
		colon = hend + 1;
	} else {
		colon = memrchr(a, ':', len);
		if (!colon)
			goto noport;
		hend = colon;
		if (memchr(a, ':', (size_t)(colon - a)))
			return *why = "IPv6 address must be in brackets",
			       -EINVAL;
	}
	if (hend == host)
		return *why = "missing host", -EINVAL;
	if ((size_t)(hend - host) >= sizeof(u->host))
		return *why = "host name too long", -EINVAL;
	memcpy(u->host, host, (size_t)(hend - host));
	u->host[hend - host] = '\0';
	if (host != a) {
		unsigned char buf[16];

		if (inet_pton(AF_INET6, u->host, buf) != 1)
			return *why = "bad IPv6 address", -EINVAL;
	} else if (!host_ok(u->host)) {
		return *why = "bad host name", -EINVAL;
	}
	for (i = (size_t)(colon + 1 - a); i < len; i++) {
		if (!isdigit((unsigned char)a[i]) || port > 65535)
			goto badport;
		port = port * 10 + (unsigned long)(a[i] - '0');
	}
	if (colon + 1 == a + len)
		goto noport;
	if (port == 0 || port > 65535)
		goto badport;
	u->port = (uint16_t)port;
	return 0;
noport:
	*why = "URL address does not have the form \"host:port\"";
	return -EINVAL;
badport:
	*why = "bad port (must be 1-65535)";
	return -EINVAL;
}

static int url_parse(const char *s, size_t len, struct config_url *u,
		     const char **why)
{
	const char *sep = memmem(s, len, "://", 3);
	const char *auth, *end = s + len;
	size_t slen;

	memset(u, 0, sizeof(*u));
	if (!sep)
		return *why = "URL must look like http://host:port", -EINVAL;
	slen = (size_t)(sep - s);
	if ((slen == 4 && strncasecmp(s, "unix", 4) == 0) ||
	    (slen == 5 && strncasecmp(s, "unixs", 5) == 0))
		return *why = "unix:// URLs are not supported", -EINVAL;
	if (!(slen == 4 && strncasecmp(s, "http", 4) == 0) &&
	    !(slen == 5 && strncasecmp(s, "https", 5) == 0))
		return *why = "URL scheme must be http or https", -EINVAL;
	for (size_t i = 0; i < slen; i++)
		u->scheme[i] = (char)tolower((unsigned char)s[i]);
	auth = sep + 3;
	for (const char *p = auth; p < end; p++) {
		if (*p == '/' || *p == '?' || *p == '#')
			return *why = "URL must not contain a path", -EINVAL;
	}
	return authority_parse(auth, (size_t)(end - auth), u, why);
}

static bool url_same(const struct config_url *a, const struct config_url *b)
{
	return a->port == b->port && strcmp(a->scheme, b->scheme) == 0 &&
	       strcmp(a->host, b->host) == 0;
}

/* Trim blanks around s[0..*len). */
static const char *trim(const char *s, size_t *len)
{
	while (*len && isspace((unsigned char)s[0]))
		s++, (*len)--;
	while (*len && isspace((unsigned char)s[*len - 1]))
		(*len)--;
	return s;
}

int config_urls_parse(const char *s, struct config_url **out, size_t *n,
		      const char **why, const char **bad, size_t *badlen)
{
	struct config_url *v = NULL, u;
	size_t cap = 1, cnt = 0, len, i;
	const char *p = s, *comma, *e;
	int err;

	for (e = s; *e; e++)
		cap += *e == ',';
	*bad = s, *badlen = strlen(s);
	len = *badlen;
	if (trim(s, &len), len == 0)
		goto done; /* empty list; the caller decides if that is ok */
	v = calloc(cap, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (;;) {
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		e = trim(p, &len);
		*bad = e, *badlen = len;
		err = url_parse(e, len, &u, why);
		if (err < 0)
			goto fail;
		for (i = 0; i < cnt && !url_same(&v[i], &u); i++)
			;
		if (i == cnt)
			v[cnt++] = u;
		if (!comma)
			break;
		p = comma + 1;
	}
done:
	free(*out);
	*out = v;
	*n = cnt;
	return 0;
fail:
	free(v);
	return err;
}

static int set_urls(struct config *c, const struct copt *o, const char *val,
		    const char *what, char *errbuf, size_t errlen)
{
	struct config_url **dst = (void *)((char *)c + o->off);
	size_t *n = (void *)((char *)c + o->noff), badlen;
	const char *why, *bad;
	int err;

	err = config_urls_parse(val, dst, n, &why, &bad, &badlen);
	if (err == -EINVAL && strchr(val, ','))
		config_errf(errbuf, errlen,
			    "invalid value \"%s\" for %s: %s (\"%.*s\")", val,
			    what, why, (int)badlen, bad);
	else if (err == -EINVAL)
		config_errf(errbuf, errlen, "invalid value \"%s\" for %s: %s",
			    val, what, why);
	return err;
}

static bool enum_ok(const char *choices, const char *val)
{
	size_t len = strlen(val);
	const char *p = choices;

	while (p) {
		if (strncmp(p, val, len) == 0 && (p[len] == '|' || !p[len]))
			return true;
		p = strchr(p, '|');
		p = p ? p + 1 : NULL;
	}
	return false;
}

static int set_typed(struct config *c, const struct copt *o, const char *val,
		     bool yaml, const char **why)
{
	void *field = (char *)c + o->off;
	bool b;

	switch (o->type) {
	case COPT_STR:
		return config_str_set(field, val);
	case COPT_ENUM:
		if (!enum_ok(o->choices, val))
			return *why = "not one of the allowed values", -EINVAL;
		return config_str_set(field, val);
	case COPT_BOOL:
	case COPT_IGNORED_BOOL:
		if (bool_parse(val, yaml, &b) < 0)
			return *why = "not a boolean (true or false)", -EINVAL;
		if (o->type == COPT_BOOL)
			*(bool *)field = b;
		return 0;
	case COPT_U64:
		return u64_parse(val, o->max, field, why);
	case COPT_DUR:
		return config_duration_parse(val, yaml, field, why);
	default:
		return 0;
	}
}

int config_opt_set(struct config *c, const struct copt *o, const char *val,
		   const char *what, bool yaml, char *errbuf, size_t errlen)
{
	const char *why = "bad value";
	int err;

	if (o->type == COPT_URLS)
		return set_urls(c, o, val, what, errbuf, errlen);
	if (o->type == COPT_REFUSED) {
		if (!*val)
			return 0;
		config_errf(errbuf, errlen, "%s is not supported by cairn",
			    what);
		return -EINVAL;
	}
	err = set_typed(c, o, val, yaml, &why);
	if (err == -EINVAL && o->type == COPT_ENUM) {
		char list[128];
		size_t i, j = 0;

		/* "a|b|c" -> "a, b, c" */
		for (i = 0; o->choices[i] && j + 3 < sizeof(list); i++) {
			if (o->choices[i] == '|')
				list[j++] = ',', list[j++] = ' ';
			else
				list[j++] = o->choices[i];
		}
		list[j] = '\0';
		config_errf(errbuf, errlen,
			    "invalid value \"%s\" for %s: must be one of %s",
			    val, what, list);
	} else if (err == -EINVAL) {
		config_errf(errbuf, errlen, "invalid value \"%s\" for %s: %s",
			    val, what, why);
	}
	if (err == 0 && o->type >= COPT_IGNORED)
		log_warn("%s is not implemented by cairn: ignored", what);
	return err;
}
