/* config_priv: what the conf/ sources share and nothing else may use.
 *
 * The option table (config.c) is the single description of every flag:
 * its name (also the YAML key and, upper-snaked, the ETCD_* variable),
 * its type, the struct config field it sets, and its --help line. The
 * command-line, environment and YAML readers all go through
 * config_opt_set(), so a value means the same from every source.
 */
#ifndef CAIRN_CONF_CONFIG_PRIV_H
#define CAIRN_CONF_CONFIG_PRIV_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/config.h"

enum copt_type {
	COPT_STR,	   /* char * */
	COPT_BOOL,	   /* bool */
	COPT_U64,	   /* uint64_t, at most .max */
	COPT_DUR,	   /* uint64_t milliseconds, Go duration syntax */
	COPT_URLS,	   /* struct config_url * + size_t count at .noff */
	COPT_ENUM,	   /* char *, one of .choices ("a|b|c") */
	COPT_IGNORED,	   /* etcd flag with a value cairn ignores (warns) */
	COPT_IGNORED_BOOL, /* etcd boolean flag cairn ignores (warns) */
	COPT_REFUSED,	   /* etcd flag cairn cannot honour: error if set */
};

/* copt.flags */
#define COPT_NO_ENV 0x1	    /* not read from ETCD_* (help, version, ...) */
#define COPT_NO_YAML 0x2    /* not a config-file key */
#define COPT_HIDDEN 0x4	    /* described in the usage header, not a group */
#define COPT_URLS_EMPTY 0x8 /* an empty URL list is allowed */

struct copt {
	const char *name; /* flag name without dashes */
	enum copt_type type;
	size_t off;	     /* field offset in struct config */
	size_t noff;	     /* COPT_URLS: offset of the count */
	uint64_t max;	     /* COPT_U64: largest value accepted */
	const char *choices; /* COPT_ENUM: "new|existing" */
	unsigned flags;	     /* COPT_NO_ENV ... */
	const char *def;     /* default as --help shows it */
	const char *help;    /* one or more lines, '\n' separated */
};

/* Where an option's current value came from (config_parse bookkeeping). */
enum config_src {
	CONFIG_SRC_DEFAULT = 0,
	CONFIG_SRC_FLAG,
	CONFIG_SRC_ENV,
	CONFIG_SRC_FILE,
};

#define CONFIG_NOPTS_MAX 128

extern const struct copt config_opts[];
extern const size_t config_nopts;

/* The option named name[0..len) (no dashes), or NULL. */
const struct copt *config_opt_find(const char *name, size_t len);

/* Set o from the text val. what names the source in messages ("flag
 * --name", "ETCD_NAME", "name in /etc/cairn.yml"); yaml selects the YAML
 * extras (yes/no booleans, integer nanosecond durations).
 * Returns 0, -EINVAL (errbuf: invalid value "v" for <what>: <why>) or
 * -ENOMEM. */
int config_opt_set(struct config *c, const struct copt *o, const char *val,
		   const char *what, bool yaml, char *errbuf, size_t errlen);

/* Parse a comma-separated URL list. On success *out (heap, caller frees)
 * holds *n unique URLs. Returns 0, -EINVAL (*why static text, *bad the
 * offending element inside s and *badlen its length) or -ENOMEM. */
int config_urls_parse(const char *s, struct config_url **out, size_t *n,
		      const char **why, const char **bad, size_t *badlen);

/* Go's time.ParseDuration (non-negative only) into milliseconds; with
 * yaml, a bare integer is nanoseconds (etcd's YAML encodes a duration as
 * an integer). Returns 0 or -EINVAL with *why. */
int config_duration_parse(const char *s, bool yaml, uint64_t *ms,
			  const char **why);

/* Replace *dst with a copy of s. Returns 0 or -ENOMEM (then *dst kept). */
int config_str_set(char **dst, const char *s);

/* Load a YAML file into c, marking src[] for every key it sets. Returns
 * 0, -EBADMSG, -errno or -ENOMEM with errbuf. (config_yaml.c) */
int config_yaml_load(struct config *c, const char *path, uint8_t *src,
		     char *errbuf, size_t errlen);

/* snprintf into errbuf when errlen > 0. */
void config_errf(char *errbuf, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
