/* bolt/view.c: read views and iterators. A view pins the meta of the last
 * commit (its txid in the readers list, so no page of that tree is
 * reused) and a reference on the mapping that covers it; everything it
 * returns points into that mapping, valid until the view closes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engines/bolt/bolt_int.h"

int bolt_view_open(struct engine *e, struct engine_view **out)
{
	struct engine_view *v = bolt_calloc(1, sizeof(*v));
	int err;

	*out = NULL;
	if (!v)
		return -ENOMEM;
	pthread_mutex_lock(&e->mu);
	err = e->map ? bolt_readers_add(e, e->meta.txid) : -EIO;
	if (!err) {
		v->e = e;
		v->meta = e->meta;
		v->map = e->map;
		v->map->refs++;
		v->rc = bolt_e_rctx(e);
		e->views++;
	}
	pthread_mutex_unlock(&e->mu);
	if (err) {
		free(v);
		return err;
	}
	*out = v;
	return 0;
}

void bolt_view_close(struct engine_view *v)
{
	struct engine *e;

	if (!v)
		return;
	e = v->e;
	pthread_mutex_lock(&e->mu);
	bolt_readers_del(e, v->meta.txid);
	bolt_map_unref(v->map);
	e->views--;
	pthread_mutex_unlock(&e->mu);
	free(v);
}

int bolt_get(struct engine_view *v, const char *bucket, const void *key,
	     size_t klen, struct engine_slice *val)
{
	struct bolt_root r;
	const uint8_t *p;
	uint32_t n, flags;
	int err;

	if (!bucket || !*bucket || !key || klen == 0)
		return -ENOENT;
	err = bolt_bucket_find(&v->rc, v->meta.root, bucket, &r);
	if (err)
		return err;
	err = bolt_tree_get(&v->rc, &r, key, klen, &p, &n, &flags);
	if (err)
		return err;
	if (flags & BOLT_LEAF_BUCKET)
		return -ENOENT; /* a nested bucket is not a value */
	val->p = p;
	val->n = n;
	return 0;
}

int bolt_iter_open(struct engine_view *v, const char *bucket, const void *start,
		   size_t slen, const void *end, size_t elen, bool reverse,
		   struct engine_iter **out)
{
	struct engine_iter *it = bolt_calloc(1, sizeof(*it));
	struct bolt_root r;
	int err;

	*out = NULL;
	if (!it)
		return -ENOMEM;
	it->v = v;
	it->reverse = reverse;
	err = bucket && *bucket
		      ? bolt_bucket_find(&v->rc, v->meta.root, bucket, &r)
		      : -ENOENT;
	if (err && err != -ENOENT)
		goto fail;
	it->has_bucket = err == 0;
	if (it->has_bucket)
		bolt_cursor_init(&it->c, &v->rc, &r);
	err = -ENOMEM;
	if (start && slen) {
		if (!(it->start = bolt_malloc(slen)))
			goto fail;
		memcpy(it->start, start, slen);
		it->slen = slen;
	}
	if (end && elen) {
		if (!(it->end = bolt_malloc(elen)))
			goto fail;
		memcpy(it->end, end, elen);
		it->elen = elen;
	}
	*out = it;
	return 0;
fail:
	free(it->start);
	free(it);
	return err;
}

static int iter_first(struct engine_iter *it)
{
	int rc;

	if (!it->reverse)
		return it->start ? bolt_cursor_seek(&it->c, it->start, it->slen)
				 : bolt_cursor_first(&it->c);
	if (!it->end)
		return bolt_cursor_last(&it->c);
	rc = bolt_cursor_seek(&it->c, it->end, it->elen);
	if (rc == 1)
		return bolt_cursor_prev(&it->c);
	return rc == 0 ? bolt_cursor_last(&it->c) : rc;
}

static int iter_step(struct engine_iter *it)
{
	return it->reverse ? bolt_cursor_prev(&it->c)
			   : bolt_cursor_next(&it->c);
}

int bolt_iter_next(struct engine_iter *it, struct engine_slice *key,
		   struct engine_slice *val)
{
	const uint8_t *k, *v;
	uint32_t kn, vn, flags;
	int rc;

	if (it->done || !it->has_bucket)
		return 0;
	rc = it->started ? iter_step(it) : iter_first(it);
	it->started = true;
	for (; rc > 0; rc = iter_step(it)) {
		if ((rc = bolt_cursor_cur(&it->c, &k, &kn, &v, &vn, &flags)))
			break;
		if (!it->reverse && it->end &&
		    bolt_keycmp(k, kn, it->end, it->elen) >= 0)
			break;
		if (it->reverse && it->start &&
		    bolt_keycmp(k, kn, it->start, it->slen) < 0)
			break;
		if (!(flags & BOLT_LEAF_BUCKET)) {
			key->p = k;
			key->n = kn;
			val->p = v;
			val->n = vn;
			return 1;
		}
	}
	it->done = true;
	return rc < 0 ? rc : 0;
}

void bolt_iter_close(struct engine_iter *it)
{
	if (!it)
		return;
	free(it->start);
	free(it->end);
	free(it);
}
