/* linz_load: the history file parser (format in linz.h).
 *
 * Invariants:
 *   1. Keys and values are interned: equal strings get equal ids, so the
 *      model compares ints. Value id 0 is "~" (absent); "-" never gets an id
 *      (it is LINZ_NONE).
 *   2. An op is stored only after every field of its line parsed; a
 *      malformed line fails the whole load (a checker that skips lines it
 *      does not understand could call a broken history linearizable).
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tests/linearizability/linz.h"

struct strtab {
	char **names;
	size_t n, cap;
	uint32_t *slots; /* open addressing: 0 empty, else id + 1 */
	size_t nslots;	 /* power of two */
};

struct tables {
	struct strtab keys, values;
};

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
	return h;
}

static int strtab_grow(struct strtab *t)
{
	size_t ns = t->nslots ? t->nslots * 2 : 1024, i;
	uint32_t *slots = calloc(ns, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (i = 0; i < t->n; i++) {
		size_t j = str_hash(t->names[i]) & (ns - 1);

		while (slots[j])
			j = (j + 1) & (ns - 1);
		slots[j] = (uint32_t)i + 1;
	}
	free(t->slots);
	t->slots = slots;
	t->nslots = ns;
	return 0;
}

/* strtab_intern: the id of S, added if new; -ENOMEM. */
static int64_t strtab_intern(struct strtab *t, const char *s)
{
	size_t j;
	char *copy;

	if ((t->n + 1) * 2 > t->nslots && strtab_grow(t) < 0)
		return -ENOMEM;
	j = str_hash(s) & (t->nslots - 1);
	while (t->slots[j]) {
		if (!strcmp(t->names[t->slots[j] - 1], s))
			return t->slots[j] - 1;
		j = (j + 1) & (t->nslots - 1);
	}
	if (t->n == t->cap) {
		size_t nc = t->cap ? t->cap * 2 : 256;
		char **nn = realloc(t->names, nc * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		t->names = nn;
		t->cap = nc;
	}
	copy = strdup(s);
	if (!copy)
		return -ENOMEM;
	t->names[t->n] = copy;
	t->slots[j] = (uint32_t)t->n + 1;
	return (int64_t)t->n++;
}

static void strtab_free(struct strtab *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->names[i]);
	free(t->names);
	free(t->slots);
}

void linz_history_free(struct linz_history *h)
{
	struct tables *tb;

	if (!h)
		return;
	tb = h->priv;
	if (tb) {
		strtab_free(&tb->keys);
		strtab_free(&tb->values);
		free(tb);
	}
	free(h->ops);
	free(h);
}

static int parse_time(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || end == s || v < 0 || v == LLONG_MAX)
		return -EINVAL;
	*out = v;
	return 0;
}

/* parse_value: "-" is LINZ_NONE, "~" is LINZ_ABSENT, else an interned id. */
static int parse_value(struct tables *tb, const char *s, int32_t *out)
{
	int64_t id;

	if (!strcmp(s, "-")) {
		*out = LINZ_NONE;
		return 0;
	}
	id = strtab_intern(&tb->values, s);
	if (id < 0)
		return (int)id;
	if (id > INT32_MAX)
		return -EINVAL;
	*out = (int32_t)id;
	return 0;
}

static int parse_kind(const char *s, enum linz_kind *k)
{
	static const char *names[] = {"put", "get", "cas", "delete"};
	int i;

	for (i = 0; i < 4; i++) {
		if (!strcmp(s, names[i])) {
			*k = (enum linz_kind)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int parse_status(const char *s, enum linz_status *st)
{
	if (!strcmp(s, "ok"))
		*st = LINZ_OK;
	else if (!strcmp(s, "fail"))
		*st = LINZ_FAIL;
	else if (!strcmp(s, "unknown"))
		*st = LINZ_UNKNOWN;
	else
		return -EINVAL;
	return 0;
}

/* parse_output: the OUTPUT field of an ok op, by kind. */
static int parse_output(struct tables *tb, struct linz_op *op, const char *s)
{
	switch (op->kind) {
	case LINZ_GET:
		if (parse_value(tb, s, &op->out) < 0 || op->out == LINZ_NONE)
			return -EINVAL;
		return 0;
	case LINZ_CAS:
		if (!strcmp(s, "true"))
			op->out = 1;
		else if (!strcmp(s, "false"))
			op->out = 0;
		else
			return -EINVAL;
		return 0;
	case LINZ_DEL:
		if (!strcmp(s, "-"))
			op->out = -1;
		else if (!strcmp(s, "0") || !strcmp(s, "1"))
			op->out = s[0] - '0';
		else
			return -EINVAL;
		return 0;
	case LINZ_PUT:
		op->out = -1;
		return 0;
	}
	return -EINVAL;
}

/* check_args: the argument fields make sense for the kind. */
static int check_args(const struct linz_op *op)
{
	switch (op->kind) {
	case LINZ_PUT:
		return op->arg1 > 0 ? 0 : -EINVAL;
	case LINZ_CAS:
		return op->arg1 != LINZ_NONE && op->arg2 > 0 ? 0 : -EINVAL;
	default:
		return 0;
	}
}

static int parse_line(struct tables *tb, char *line, struct linz_op *op,
		      const char **why)
{
	char *tok[11], *save = NULL, *p;
	int n = 0, rc;
	int64_t key;

	for (p = strtok_r(line, " \t\r\n", &save); p && n < 11;
	     p = strtok_r(NULL, " \t\r\n", &save)) {
		if (p[0] == '#') /* a comment to the end of the line */
			break;
		tok[n++] = p;
	}
	*why = "want 9 or 10 fields";
	if (n < 9 || n > 10)
		return -EINVAL;
	*why = "bad client, op or status";
	op->client = atoi(tok[0]);
	if (parse_kind(tok[1], &op->kind) < 0 ||
	    parse_status(tok[7], &op->status) < 0)
		return -EINVAL;
	key = strtab_intern(&tb->keys, tok[2]);
	if (key < 0)
		return (int)key;
	op->key = (uint32_t)key;
	*why = "bad arguments for this op";
	rc = parse_value(tb, tok[3], &op->arg1);
	if (!rc)
		rc = parse_value(tb, tok[4], &op->arg2);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0 || check_args(op) < 0)
		return -EINVAL;
	*why = "bad times";
	if (parse_time(tok[5], &op->inv) < 0)
		return -EINVAL;
	if (op->status == LINZ_UNKNOWN) {
		op->ret = LINZ_INF;
	} else if (parse_time(tok[6], &op->ret) < 0 || op->ret < op->inv) {
		return -EINVAL;
	}
	*why = "bad revision";
	op->rev = -1;
	if (n == 10 && strcmp(tok[9], "-") &&
	    (parse_time(tok[9], &op->rev) < 0 || op->status != LINZ_OK))
		return -EINVAL;
	*why = "bad output for this op";
	op->out = -1;
	if (op->status == LINZ_OK)
		return parse_output(tb, op, tok[8]);
	return 0;
}

static int push_op(struct linz_history *h, size_t *cap,
		   const struct linz_op *op)
{
	if (h->nops == *cap) {
		size_t nc = *cap ? *cap * 2 : 1024;
		struct linz_op *n = realloc(h->ops, nc * sizeof(*n));

		if (!n)
			return -ENOMEM;
		h->ops = n;
		*cap = nc;
	}
	h->ops[h->nops++] = *op;
	return 0;
}

int linz_history_load(FILE *f, const char *name, struct linz_history **out,
		      char *err, size_t errlen)
{
	struct linz_history *h = calloc(1, sizeof(*h));
	struct tables *tb = calloc(1, sizeof(*tb));
	char *line = NULL, *p;
	size_t len = 0, cap = 0;
	int lineno = 0, rc = -ENOMEM;
	const char *why = "";
	struct linz_op op;

	if (!h || !tb)
		goto fail;
	h->priv = tb;
	/* id 0 must be "~" (invariant 1) */
	if (strtab_intern(&tb->values, "~") != LINZ_ABSENT)
		goto fail;
	while (getline(&line, &len, f) >= 0) {
		lineno++;
		for (p = line; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '#' || *p == '\n' || *p == '\r' || !*p)
			continue;
		memset(&op, 0, sizeof(op));
		rc = parse_line(tb, line, &op, &why);
		if (rc < 0)
			goto bad;
		op.line = lineno;
		rc = push_op(h, &cap, &op);
		if (rc < 0)
			goto fail;
	}
	rc = -EIO;
	if (ferror(f)) {
		why = "read error";
		goto bad;
	}
	free(line);
	h->keys = tb->keys.names;
	h->nkeys = tb->keys.n;
	h->values = tb->values.names;
	h->nvalues = tb->values.n;
	*out = h;
	return 0;
bad:
	if (rc == -EINVAL || rc == -EIO)
		snprintf(err, errlen, "%s:%d: %s", name, lineno, why);
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "%s: out of memory", name);
	free(line);
	if (!h || !h->priv)
		free(tb);
	linz_history_free(h);
	return rc;
}
