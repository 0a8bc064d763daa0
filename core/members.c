/* members: the membership value — see members.h.
 *
 * Invariants of a struct members:
 *  1. v is sorted by id, ids unique and != 0; removed is sorted, unique,
 *     and no removed id is in v.
 *  2. Every member's name is non-NULL and its peer URLs are sorted.
 *  3. At most MEMBERS_MAX_LEARNERS learners are added through
 *     members_apply_change (loading stored data takes what is there).
 */
#include "core/members.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"
#include "core/errors.h"

/* ---- ids ---------------------------------------------------------------- */

static uint64_t sha1_prefix(const void *buf, size_t len)
{
	unsigned char h[SHA_DIGEST_LENGTH];
	uint64_t v = 0;

	SHA1(buf, len, h);
	for (int i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return v;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

uint64_t members_compute_id(const char *const *peer_urls, size_t n,
			    const char *token, const int64_t *unix_secs)
{
	const char **sorted = calloc(n ? n : 1, sizeof(*sorted));
	size_t len = 32 + (token ? strlen(token) : 0), off = 0;
	char *buf;
	uint64_t id = 0;

	for (size_t i = 0; i < n; i++)
		len += strlen(peer_urls[i]);
	buf = malloc(len);
	if (!sorted || !buf)
		goto out;
	memcpy(sorted, peer_urls, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_str);
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(sorted[i]);

		memcpy(buf + off, sorted[i], l);
		off += l;
	}
	if (token) {
		memcpy(buf + off, token, strlen(token));
		off += strlen(token);
	}
	if (unix_secs)
		off += (size_t)snprintf(buf + off, len - off, "%" PRId64,
					*unix_secs);
	id = sha1_prefix(buf, off);
out:
	free(sorted);
	free(buf);
	return id;
}

uint64_t members_cluster_id(const struct members *ms)
{
	uint8_t *b = malloc(ms->n ? 8 * ms->n : 1);
	uint64_t id;

	if (!b)
		return 0;
	/* v is sorted by id (invariant 1), as etcd's MemberIDs() */
	for (size_t i = 0; i < ms->n; i++)
		for (int k = 0; k < 8; k++)
			b[8 * i + (size_t)k] =
				(uint8_t)(ms->v[i].id >> (56 - 8 * k));
	id = sha1_prefix(b, 8 * ms->n);
	free(b);
	return id;
}

/* ---- URLs ------------------------------------------------------------- */

/* s[0..*len) without surrounding spaces (Go's strings.TrimSpace). */
static const char *trim(const char *s, size_t *len)
{
	while (*len && isspace((unsigned char)*s))
		s++, (*len)--;
	while (*len && isspace((unsigned char)s[*len - 1]))
		(*len)--;
	return s;
}

static bool scheme_ok(const char *s, size_t n)
{
	static const char *const ok[] = {"http", "https", "unix", "unixs"};

	for (size_t i = 0; i < 4; i++)
		if (strlen(ok[i]) == n && strncmp(s, ok[i], n) == 0)
			return true;
	return false;
}

/* The authority of url (after "scheme://") and its length; NULL when url
 * has no acceptable scheme or has a path. */
static const char *authority(const char *url, size_t len, size_t *alen)
{
	const char *sep = memchr(url, ':', len), *a, *end;

	if (!sep || !scheme_ok(url, (size_t)(sep - url)) ||
	    (size_t)(sep - url) + 3 > len || strncmp(sep, "://", 3) != 0)
		return NULL;
	a = sep + 3;
	end = url + len;
	for (const char *p = a; p < end; p++)
		if (*p == '/' || *p == '?' || *p == '#')
			return NULL; /* a path (etcd: "must not contain a path")
				      */
	*alen = (size_t)(end - a);
	return a;
}

/* Go's net.SplitHostPort: host and port text of a[0..n). */
static int split_host_port(const char *a, size_t n, const char **host,
			   size_t *hlen, const char **port, size_t *plen)
{
	const char *colon;

	if (n && a[0] == '[') {
		const char *rb = memchr(a, ']', n);

		if (!rb || rb + 1 >= a + n || rb[1] != ':')
			return -EINVAL;
		*host = a + 1;
		*hlen = (size_t)(rb - a - 1);
		colon = rb + 1;
	} else {
		colon = NULL;
		for (const char *p = a; p < a + n; p++)
			if (*p == ':') {
				if (colon)
					return -EINVAL; /* too many colons */
				colon = p;
			}
		if (!colon)
			return -EINVAL;
		*host = a;
		*hlen = (size_t)(colon - a);
	}
	*port = colon + 1;
	*plen = (size_t)(a + n - *port);
	return 0;
}

int members_check_urls(const char *const *urls, size_t n)
{
	if (n == 0)
		return CAIRN_EMEMBER_BAD_URLS;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(urls[i]), alen, hl, pl;
		const char *u = trim(urls[i], &len), *a, *h, *p;

		a = authority(u, len, &alen);
		if (!a || split_host_port(a, alen, &h, &hl, &p, &pl) < 0)
			return CAIRN_EMEMBER_BAD_URLS;
	}
	return 0;
}

int members_url_host_port(const char *url, char *host, size_t cap,
			  uint16_t *port)
{
	size_t len = strlen(url), alen, hl, pl;
	const char *u = trim(url, &len), *a, *h, *p;
	unsigned long v = 0;

	a = authority(u, len, &alen);
	if (!a || split_host_port(a, alen, &h, &hl, &p, &pl) < 0 || pl == 0 ||
	    pl > 5)
		return -EINVAL;
	for (size_t i = 0; i < pl; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -EINVAL;
		v = v * 10 + (unsigned long)(p[i] - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	if (hl + 1 > cap)
		return -ENAMETOOLONG;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (uint16_t)v;
	return 0;
}

/* ---- one member ---------------------------------------------------------- */

void members_strv_free(char **v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* Copies of v[0..n), trimmed; NULL only on out of memory (n 0: a valid
 * empty array). */
static char **dup_strv(const char *const *v, size_t n)
{
	char **out = calloc(n ? n : 1, sizeof(*out));

	for (size_t i = 0; out && i < n; i++) {
		size_t len = strlen(v[i]);
		const char *s = trim(v[i], &len);

		if (!(out[i] = strndup(s, len))) {
			members_strv_free(out, i);
			return NULL;
		}
	}
	return out;
}

int member_init(struct member *m, uint64_t id, const char *const *peer_urls,
		size_t n, bool is_learner)
{
	memset(m, 0, sizeof(*m));
	m->id = id;
	m->is_learner = is_learner;
	m->name = strdup("");
	m->peer_urls = dup_strv(peer_urls, n);
	m->client_urls = dup_strv(NULL, 0);
	if (!m->name || !m->peer_urls || !m->client_urls) {
		member_clear(m);
		return -ENOMEM;
	}
	m->n_peer_urls = n;
	qsort(m->peer_urls, n, sizeof(char *), cmp_str);
	return 0;
}

void member_clear(struct member *m)
{
	free(m->name);
	members_strv_free(m->peer_urls, m->n_peer_urls);
	members_strv_free(m->client_urls, m->n_client_urls);
	memset(m, 0, sizeof(*m));
}

static int set_client(struct member *m, const char *name,
		      const char *const *client_urls, size_t n)
{
	char *nm = strdup(name ? name : "");
	char **cu = dup_strv(client_urls, n);

	if (!nm || !cu) {
		free(nm);
		members_strv_free(cu, n);
		return -ENOMEM;
	}
	free(m->name);
	members_strv_free(m->client_urls, m->n_client_urls);
	m->name = nm;
	m->client_urls = cu;
	m->n_client_urls = n;
	return 0;
}

int member_copy(struct member *dst, const struct member *src)
{
	int err = member_init(dst, src->id, (const char *const *)src->peer_urls,
			      src->n_peer_urls, src->is_learner);

	if (err == 0 && (err = set_client(dst, src->name,
					  (const char *const *)src->client_urls,
					  src->n_client_urls)) < 0)
		member_clear(dst);
	return err;
}

bool member_is_started(const struct member *m)
{
	return m->name && m->name[0];
}

/* ---- JSON ------------------------------------------------------------- */

static json_t *strv_json(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_string(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* Every field of m but the id, in Go's order. */
static json_t *member_obj(const struct member *m)
{
	json_t *o = json_object();
	json_t *peers = m->n_peer_urls ? strv_json(m->peer_urls, m->n_peer_urls)
				       : json_null();
	int bad = !o || !peers;

	bad = bad || json_object_set_new(o, "peerURLs", peers) < 0;
	if (!bad && m->is_learner)
		bad = json_object_set_new(o, "isLearner", json_true()) < 0;
	if (!bad && m->name && m->name[0])
		bad = json_object_set_new(o, "name", json_string(m->name)) < 0;
	if (!bad && m->n_client_urls)
		bad = json_object_set_new(
			      o, "clientURLs",
			      strv_json(m->client_urls, m->n_client_urls)) < 0;
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* {"id":<id as an unsigned number>, + the rest of o: jansson's integers
 * are signed 64-bit, etcd's ids use all 64 bits. */
static char *with_numeric_id(uint64_t id, json_t *o)
{
	char *rest =
		o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	char *out = NULL;

	json_decref(o);
	if (!rest)
		return NULL;
	/* rest is "{}" or "{...}": splice the id in front */
	if (asprintf(&out, "{\"id\":%" PRIu64 "%s%s", id,
		     strcmp(rest, "{}") == 0 ? "" : ",", rest + 1) < 0)
		out = NULL;
	free(rest);
	return out;
}

char *members_member_json(const struct member *m)
{
	return with_numeric_id(m->id, member_obj(m));
}

char *members_promote_json(uint64_t id)
{
	json_t *o = json_pack("{s:n, s:b}", "peerURLs", "isPromote", 1);

	return with_numeric_id(id, o);
}

/* A JSON array of strings (or null / absent) into a new string array. */
static int json_strv(json_t *a, char ***out, size_t *n)
{
	const char **tmp;
	size_t cnt;

	*out = NULL;
	*n = 0;
	if (!a || json_is_null(a)) {
		*out = dup_strv(NULL, 0);
		return *out ? 0 : -ENOMEM;
	}
	if (!json_is_array(a))
		return CAIRN_EBAD_REQUEST;
	cnt = json_array_size(a);
	tmp = calloc(cnt ? cnt : 1, sizeof(*tmp));
	if (!tmp)
		return -ENOMEM;
	for (size_t i = 0; i < cnt; i++)
		if (!(tmp[i] = json_string_value(json_array_get(a, i)))) {
			free(tmp);
			return CAIRN_EBAD_REQUEST;
		}
	*out = dup_strv(tmp, cnt);
	free(tmp);
	if (!*out)
		return -ENOMEM;
	*n = cnt;
	return 0;
}

static int member_from_obj(json_t *o, uint64_t id, struct member *m,
			   bool *is_promote)
{
	json_t *name = json_object_get(o, "name");
	char **peers = NULL, **clients = NULL;
	size_t np = 0, nc = 0;
	int err;

	memset(m, 0, sizeof(*m));
	if (!json_is_object(o) || (name && !json_is_string(name)))
		return CAIRN_EBAD_REQUEST;
	if ((err = json_strv(json_object_get(o, "peerURLs"), &peers, &np)) <
		    0 ||
	    (err = json_strv(json_object_get(o, "clientURLs"), &clients, &nc)) <
		    0)
		goto out;
	err = member_init(m, id, (const char *const *)peers, np,
			  json_is_true(json_object_get(o, "isLearner")));
	if (err == 0 &&
	    (err = set_client(m, name ? json_string_value(name) : "",
			      (const char *const *)clients, nc)) < 0)
		member_clear(m);
	if (is_promote)
		*is_promote = json_is_true(json_object_get(o, "isPromote"));
out:
	members_strv_free(peers, np);
	members_strv_free(clients, nc);
	return err;
}

int member_from_json(const char *buf, size_t len, uint64_t id, struct member *m,
		     bool *is_promote)
{
	/* as reals: an id above 2^63 would fail jansson's integer parse */
	json_t *o = json_loadb(buf, len, JSON_DECODE_INT_AS_REAL, NULL);
	int err = member_from_obj(o, id, m, is_promote);

	json_decref(o);
	return err;
}

/* ---- the membership ------------------------------------------------------ */

void members_init(struct members *ms)
{
	memset(ms, 0, sizeof(*ms));
}

void members_free(struct members *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		member_clear(&ms->v[i]);
	free(ms->v);
	free(ms->removed);
	members_init(ms);
}

static size_t find_pos(const struct members *ms, uint64_t id)
{
	size_t lo = 0, hi = ms->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ms->v[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct member *members_find(const struct members *ms, uint64_t id)
{
	size_t i = find_pos(ms, id);

	return i < ms->n && ms->v[i].id == id ? &ms->v[i] : NULL;
}

static struct member *find_mut(struct members *ms, uint64_t id)
{
	return (struct member *)members_find(ms, id);
}

int members_add(struct members *ms, const struct member *m)
{
	size_t i = find_pos(ms, m->id);
	struct member *v;

	if (i < ms->n && ms->v[i].id == m->id)
		return -EEXIST;
	v = realloc(ms->v, (ms->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	ms->v = v;
	memmove(&v[i + 1], &v[i], (ms->n - i) * sizeof(*v));
	if (member_copy(&v[i], m) < 0) {
		memmove(&v[i], &v[i + 1], (ms->n - i) * sizeof(*v));
		return -ENOMEM;
	}
	ms->n++;
	return 0;
}

int members_copy(struct members *dst, const struct members *src)
{
	members_init(dst);
	for (size_t i = 0; i < src->n; i++)
		if (members_add(dst, &src->v[i]) < 0)
			goto fail;
	for (size_t i = 0; i < src->n_removed; i++)
		if (members_mark_removed(dst, src->removed[i]) < 0)
			goto fail;
	return 0;
fail:
	members_free(dst);
	return -ENOMEM;
}

bool members_is_removed(const struct members *ms, uint64_t id)
{
	for (size_t i = 0; i < ms->n_removed; i++)
		if (ms->removed[i] == id)
			return true;
	return false;
}

int members_mark_removed(struct members *ms, uint64_t id)
{
	uint64_t *r;
	size_t i = 0;

	if (members_is_removed(ms, id))
		return 0;
	r = realloc(ms->removed, (ms->n_removed + 1) * sizeof(*r));
	if (!r)
		return -ENOMEM;
	ms->removed = r;
	while (i < ms->n_removed && r[i] < id)
		i++;
	memmove(&r[i + 1], &r[i], (ms->n_removed - i) * sizeof(*r));
	r[i] = id;
	ms->n_removed++;
	return 0;
}

int members_remove(struct members *ms, uint64_t id)
{
	size_t i = find_pos(ms, id);

	if (i == ms->n || ms->v[i].id != id)
		return -ENOENT;
	if (members_mark_removed(ms, id) < 0)
		return -ENOMEM;
	member_clear(&ms->v[i]);
	memmove(&ms->v[i], &ms->v[i + 1], (ms->n - i - 1) * sizeof(*ms->v));
	ms->n--;
	return 0;
}

int members_set_attrs(struct members *ms, uint64_t id, const char *name,
		      const char *const *client_urls, size_t n)
{
	struct member *m = find_mut(ms, id);

	return m ? set_client(m, name, client_urls, n) : -ENOENT;
}

size_t members_count_voters(const struct members *ms)
{
	size_t n = 0;

	for (size_t i = 0; i < ms->n; i++)
		n += !ms->v[i].is_learner;
	return n;
}

/* Same URL sets (peer URLs are kept sorted). */
static bool same_urls(const struct member *m, const char *const *urls, size_t n)
{
	size_t hit = 0;

	if (m->n_peer_urls != n)
		return false;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			if (strcmp(urls[i], m->peer_urls[j]) == 0) {
				hit++;
				break;
			}
	return hit == n;
}

const struct member *members_find_by_urls(const struct members *ms,
					  const char *const *urls, size_t n)
{
	for (size_t i = 0; i < ms->n; i++)
		if (same_urls(&ms->v[i], urls, n))
			return &ms->v[i];
	return NULL;
}

int members_from_initial_cluster(struct members *ms,
				 const struct config_peer *peers, size_t n,
				 const char *token)
{
	char **urls = calloc(n ? n : 1, sizeof(*urls));
	bool *done = calloc(n ? n : 1, sizeof(*done));
	int err = urls && done ? 0 : -ENOMEM;

	for (size_t i = 0; err == 0 && i < n; i++) {
		size_t cnt = 0;
		struct member m;

		if (done[i])
			continue;
		/* every URL of this name, as etcd's URLsMap */
		for (size_t j = i; err == 0 && j < n; j++) {
			char buf[300];

			if (strcmp(peers[j].name, peers[i].name) != 0)
				continue;
			done[j] = true;
			if (config_url_format(&peers[j].url, buf, sizeof(buf)) <
			    0)
				err = CAIRN_EMEMBER_BAD_URLS;
			else if (!(urls[cnt++] = strdup(buf)))
				err = -ENOMEM;
		}
		if (err == 0)
			err = member_init(&m, 0, (const char *const *)urls, cnt,
					  false);
		/* etcd's NewMember(name, ...): named from the start */
		if (err == 0 && set_client(&m, peers[i].name, NULL, 0) < 0) {
			member_clear(&m);
			err = -ENOMEM;
		}
		if (err == 0) {
			m.id = members_compute_id((const char *const *)urls,
						  cnt, token, NULL);
			err = members_add(ms, &m);
			member_clear(&m);
		}
		for (size_t j = 0; j < cnt; j++)
			free(urls[j]);
	}
	free(urls);
	free(done);
	if (err < 0)
		members_free(ms);
	return err;
}

/* Is any of ctx's peer URLs used by a member other than skip? */
static bool urls_taken(const struct members *ms, const struct member *ctx,
		       uint64_t skip)
{
	for (size_t i = 0; i < ms->n; i++) {
		if (ms->v[i].id == skip)
			continue;
		for (size_t a = 0; a < ctx->n_peer_urls; a++)
			for (size_t b = 0; b < ms->v[i].n_peer_urls; b++)
				if (strcmp(ctx->peer_urls[a],
					   ms->v[i].peer_urls[b]) == 0)
					return true;
	}
	return false;
}

static int check_add(const struct members *ms, uint64_t id,
		     const struct member *ctx, bool is_promote)
{
	const struct member *m = members_find(ms, id);
	size_t learners = 0;

	if (is_promote) {
		if (!m)
			return CAIRN_EMEMBER_NOT_FOUND;
		return m->is_learner ? 0 : CAIRN_EMEMBER_NOT_LEARNER;
	}
	if (m)
		return CAIRN_EMEMBER_EXIST;
	if (!ctx)
		return CAIRN_EBAD_REQUEST;
	if (urls_taken(ms, ctx, 0))
		return CAIRN_EPEER_URL_EXIST;
	if (!ctx->is_learner)
		return 0;
	for (size_t i = 0; i < ms->n; i++)
		learners += ms->v[i].is_learner;
	return learners + 1 > MEMBERS_MAX_LEARNERS ? CAIRN_ETOO_MANY_LEARNERS
						   : 0;
}

int members_check_change(const struct members *ms, enum members_cc type,
			 uint64_t id, const struct member *ctx, bool is_promote)
{
	if (members_is_removed(ms, id))
		return CAIRN_EMEMBER_NOT_FOUND; /* etcd: ErrIDRemoved */
	switch (type) {
	case MEMBERS_CC_ADD_NODE:
	case MEMBERS_CC_ADD_LEARNER:
		return check_add(ms, id, ctx, is_promote);
	case MEMBERS_CC_REMOVE_NODE:
		return members_find(ms, id) ? 0 : CAIRN_EMEMBER_NOT_FOUND;
	case MEMBERS_CC_UPDATE_NODE:
		if (!members_find(ms, id))
			return CAIRN_EMEMBER_NOT_FOUND;
		if (!ctx)
			return CAIRN_EBAD_REQUEST;
		return urls_taken(ms, ctx, id) ? CAIRN_EPEER_URL_EXIST : 0;
	}
	return CAIRN_EBAD_REQUEST;
}

static int set_peer_urls(struct member *m, const struct member *ctx)
{
	struct member tmp;
	int err = member_init(&tmp, m->id, (const char *const *)ctx->peer_urls,
			      ctx->n_peer_urls, m->is_learner);

	if (err < 0)
		return err;
	members_strv_free(m->peer_urls, m->n_peer_urls);
	m->peer_urls = tmp.peer_urls;
	m->n_peer_urls = tmp.n_peer_urls;
	tmp.peer_urls = NULL;
	tmp.n_peer_urls = 0;
	member_clear(&tmp);
	return 0;
}

int members_apply_change(struct members *ms, enum members_cc type, uint64_t id,
			 const struct member *ctx, bool is_promote)
{
	int err = members_check_change(ms, type, id, ctx, is_promote);
	struct member add;

	if (err < 0)
		return err;
	switch (type) {
	case MEMBERS_CC_ADD_NODE:
	case MEMBERS_CC_ADD_LEARNER:
		if (is_promote) {
			find_mut(ms, id)->is_learner = false;
			return 0;
		}
		if ((err = member_copy(&add, ctx)) < 0)
			return err;
		add.id = id;
		add.is_learner = type == MEMBERS_CC_ADD_LEARNER;
		err = members_add(ms, &add);
		member_clear(&add);
		return err;
	case MEMBERS_CC_REMOVE_NODE:
		return members_remove(ms, id);
	case MEMBERS_CC_UPDATE_NODE:
		/* etcd 3.4 replaces RaftAttributes whole, which would also
		 * clear isLearner; only the URLs change here */
		return set_peer_urls(find_mut(ms, id), ctx);
	}
	return CAIRN_EBAD_REQUEST;
}

/* ---- strict reconfiguration -------------------------------------------- */

static void count_started_voters(const struct members *ms, uint64_t skip,
				 size_t *voters, size_t *started)
{
	*voters = *started = 0;
	for (size_t i = 0; i < ms->n; i++) {
		const struct member *m = &ms->v[i];

		if (m->is_learner || m->id == skip)
			continue;
		(*voters)++;
		*started += member_is_started(m);
	}
}

bool members_ready_to_add_voter(const struct members *ms)
{
	size_t voters, started;

	count_started_voters(ms, 0, &voters, &started);
	voters++; /* the one being added */
	if (started == 1 && voters == 2)
		return true; /* growing a one-member cluster (etcd) */
	return started >= voters / 2 + 1;
}

bool members_ready_to_remove_voter(const struct members *ms, uint64_t id)
{
	size_t voters, started;

	count_started_voters(ms, id, &voters, &started);
	return started >= voters / 2 + 1;
}

bool members_ready_to_promote(const struct members *ms, uint64_t id)
{
	size_t voters, started;

	(void)id;
	count_started_voters(ms, 0, &voters, &started);
	/* the learner counts for the future quorum, as started */
	voters++;
	started++;
	return started >= voters / 2 + 1;
}

/* ---- invariants ---------------------------------------------------------- */

static bool member_ok(const struct member *m)
{
	if (m->id == 0 || !m->name || (m->n_peer_urls && !m->peer_urls) ||
	    (m->n_client_urls && !m->client_urls))
		return false;
	for (size_t i = 1; i < m->n_peer_urls; i++)
		if (strcmp(m->peer_urls[i - 1], m->peer_urls[i]) > 0)
			return false;
	return true;
}

int members_check(const struct members *ms)
{
	for (size_t i = 0; i < ms->n; i++)
		if (!member_ok(&ms->v[i]) ||
		    (i > 0 && ms->v[i - 1].id >= ms->v[i].id) ||
		    members_is_removed(ms, ms->v[i].id))
			return CAIRN_ECORRUPT; /* invariants 1, 2 */
	for (size_t i = 1; i < ms->n_removed; i++)
		if (ms->removed[i - 1] >= ms->removed[i])
			return CAIRN_ECORRUPT;
	return 0;
}

/* ---- cairn's member-to-member list -------------------------------------- */

char *members_list_json(const struct members *ms)
{
	json_t *a = json_array();
	char *out;

	for (size_t i = 0; a && i < ms->n; i++) {
		json_t *o = member_obj(&ms->v[i]);
		char hex[17];

		snprintf(hex, sizeof(hex), "%" PRIx64, ms->v[i].id);
		if (!o || json_object_set_new(o, "id", json_string(hex)) < 0 ||
		    json_array_append_new(a, o) < 0) {
			json_decref(o);
			json_decref(a);
			return NULL;
		}
	}
	if (!a)
		return NULL;
	out = json_dumps(a, JSON_COMPACT);
	json_decref(a);
	return out;
}

static int parse_hex_id(json_t *v, uint64_t *id)
{
	const char *s = json_string_value(v);
	char *end;

	if (!s || !*s)
		return CAIRN_EBAD_REQUEST;
	errno = 0;
	*id = strtoull(s, &end, 16);
	return *end || errno || *id == 0 ? CAIRN_EBAD_REQUEST : 0;
}

int members_from_list_json(struct members *ms, const char *buf, size_t len)
{
	json_t *a = json_loadb(buf, len, 0, NULL);
	int err = json_is_array(a) ? 0 : CAIRN_EBAD_REQUEST;

	members_init(ms);
	for (size_t i = 0; err == 0 && i < json_array_size(a); i++) {
		json_t *o = json_array_get(a, i);
		struct member m;
		uint64_t id;

		if ((err = parse_hex_id(json_object_get(o, "id"), &id)) < 0 ||
		    (err = member_from_obj(o, id, &m, NULL)) < 0)
			break;
		err = members_add(ms, &m);
		member_clear(&m);
	}
	json_decref(a);
	if (err < 0)
		members_free(ms);
	return err;
}
