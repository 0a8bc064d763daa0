/* config_yaml: etcd's YAML config file (etcd.conf.yml.sample) via libyaml.
 *
 * The file is one mapping: keys are the flag names ("name", "data-dir",
 * "max-request-bytes", ...); TLS settings nest as etcd's do:
 *   client-transport-security: {cert-file, key-file, client-cert-auth,
 *                               trusted-ca-file, auto-tls}
 *   peer-transport-security:   the same, meaning the --peer-* flags.
 * A null value ("wal-dir:" or "~") keeps the default, as etcd's does. A
 * sequence is joined with commas (etcd's log-outputs is a list). Durations
 * are integer nanoseconds as in etcd's files, or cairn's "5s" strings.
 * Unknown keys are ignored with a warning (etcd ignores them silently).
 */
#include "conf/config_priv.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/util/log.h"

struct yload {
	struct config *c;
	yaml_document_t *doc;
	const char *path;
	uint8_t *src;
	char *errbuf;
	size_t errlen;
};

static const char *const tls_keys[] = {"cert-file", "key-file",
				       "client-cert-auth", "trusted-ca-file",
				       "auto-tls"};

static bool is_null(const yaml_node_t *v)
{
	const char *s;

	if (v->type != YAML_SCALAR_NODE ||
	    v->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	s = (const char *)v->data.scalar.value;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") ||
	       !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static int bad(struct yload *y, const yaml_node_t *n, const char *msg,
	       const char *key)
{
	config_errf(y->errbuf, y->errlen, "config file %s: line %lu: %s%s",
		    y->path, (unsigned long)n->start_mark.line + 1, key, msg);
	return -EBADMSG;
}

/* A scalar as is, a sequence of scalars joined by ','. *out is heap. */
static int node_text(struct yload *y, const yaml_node_t *v, const char *key,
		     char **out)
{
	yaml_node_item_t *it;
	yaml_node_t *e;
	size_t len = 1;
	char *s;

	if (v->type == YAML_SCALAR_NODE) {
		*out = strdup((const char *)v->data.scalar.value);
		return *out ? 0 : -ENOMEM;
	}
	if (v->type != YAML_SEQUENCE_NODE)
		return bad(y, v, " must be a value or a list, not a mapping",
			   key);
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		e = yaml_document_get_node(y->doc, *it);
		if (!e || e->type != YAML_SCALAR_NODE)
			return bad(y, v, " must be a list of values", key);
		len += e->data.scalar.length + 1;
	}
	s = calloc(1, len);
	if (!s)
		return -ENOMEM;
	for (it = v->data.sequence.items.start; it < v->data.sequence.items.top;
	     it++) {
		e = yaml_document_get_node(y->doc, *it);
		if (*s)
			strcat(s, ",");
		strcat(s, (const char *)e->data.scalar.value);
	}
	*out = s;
	return 0;
}

/* key (flag name) = v; label names it as the user wrote it. */
static int load_value(struct yload *y, const char *name, const char *label,
		      const yaml_node_t *v)
{
	const struct copt *o = config_opt_find(name, strlen(name));
	char what[512], *text = NULL;
	int err;

	if (!o || (o->flags & COPT_NO_YAML)) {
		log_warn("config file %s: unknown key %s ignored", y->path,
			 label);
		return 0;
	}
	if (is_null(v))
		return 0;
	err = node_text(y, v, label, &text);
	if (err < 0)
		return err;
	snprintf(what, sizeof(what), "key %s in %s", label, y->path);
	err = config_opt_set(y->c, o, text, what, true, y->errbuf, y->errlen);
	free(text);
	if (err == -EINVAL)
		return -EBADMSG;
	if (err == 0)
		y->src[o - config_opts] = CONFIG_SRC_FILE;
	return err;
}

/* One key of client-/peer-transport-security. */
static int load_tls(struct yload *y, const char *section, const char *key,
		    const yaml_node_t *v)
{
	bool peer = strncmp(section, "peer-", 5) == 0;
	char name[64], label[128];
	size_t i;

	snprintf(label, sizeof(label), "%s.%s", section, key);
	for (i = 0; i < sizeof(tls_keys) / sizeof(tls_keys[0]); i++) {
		if (strcmp(key, tls_keys[i]) == 0)
			break;
	}
	if (i == sizeof(tls_keys) / sizeof(tls_keys[0])) {
		log_warn("config file %s: key %s is not implemented by cairn: "
			 "ignored",
			 y->path, label);
		return 0;
	}
	snprintf(name, sizeof(name), "%s%s", peer ? "peer-" : "", key);
	return load_value(y, name, label, v);
}

static int load_map(struct yload *y, const yaml_node_t *map,
		    const char *section)
{
	yaml_node_pair_t *p;
	yaml_node_t *k, *v;
	const char *key;
	int err;

	for (p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
	     p++) {
		k = yaml_document_get_node(y->doc, p->key);
		v = yaml_document_get_node(y->doc, p->value);
		if (!k || !v || k->type != YAML_SCALAR_NODE)
			return bad(y, map, "keys must be plain names", "");
		key = (const char *)k->data.scalar.value;
		if (section) {
			err = load_tls(y, section, key, v);
		} else if (!strcmp(key, "client-transport-security") ||
			   !strcmp(key, "peer-transport-security")) {
			if (is_null(v))
				continue;
			if (v->type != YAML_MAPPING_NODE)
				return bad(y, v, " must be a mapping", key);
			err = load_map(y, v, key);
		} else {
			err = load_value(y, key, key, v);
		}
		if (err < 0)
			return err;
	}
	return 0;
}

static int load_doc(struct yload *y)
{
	yaml_node_t *root = yaml_document_get_root_node(y->doc);

	if (!root)
		return 0; /* an empty file: all defaults */
	if (root->type != YAML_MAPPING_NODE)
		return bad(y, root,
			   "the top level must be a mapping of keys "
			   "to values",
			   "");
	return load_map(y, root, NULL);
}

int config_yaml_load(struct config *c, const char *path, uint8_t *src,
		     char *errbuf, size_t errlen)
{
	struct yload y = {c, NULL, path, src, errbuf, errlen};
	yaml_parser_t parser;
	yaml_document_t doc;
	FILE *f;
	int err;

	f = fopen(path, "rb");
	if (!f) {
		err = -errno;
		config_errf(errbuf, errlen, "cannot read config file %s: %s",
			    path, strerror(-err));
		return err;
	}
	err = -ENOMEM;
	if (!yaml_parser_initialize(&parser))
		goto fail_file;
	yaml_parser_set_input_file(&parser, f);
	if (!yaml_parser_load(&parser, &doc)) {
		err = parser.error == YAML_MEMORY_ERROR ? -ENOMEM : -EBADMSG;
		config_errf(errbuf, errlen, "config file %s: line %lu: %s",
			    path, (unsigned long)parser.problem_mark.line + 1,
			    parser.problem ? parser.problem : "cannot parse");
		goto fail_parser;
	}
	y.doc = &doc;
	err = load_doc(&y);
	yaml_document_delete(&doc);
fail_parser:
	yaml_parser_delete(&parser);
fail_file:
	fclose(f);
	return err;
}
