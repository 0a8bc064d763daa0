/* bolt/maint.c: size, snapshot (bbolt's Tx.WriteTo) and defrag (a
 * compact copy renamed over the file, like etcd's defrag).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/util/fdio.h"
#include "core/util/log.h"
#include "engines/bolt/bolt_int.h"

#define BOLT_COPY_BUF (1u << 20)
#define BOLT_DEFRAG_BATCH (32u << 20) /* bytes per defrag commit */

int bolt_size(struct engine *e, uint64_t *size, uint64_t *in_use)
{
	uint64_t freep = bolt_fl_count(&e->fl);

	if (!e->map)
		return -EIO;
	*size = e->file_size;
	*in_use = (e->meta.pgid > freep ? e->meta.pgid - freep : 0) * e->psz;
	if (*in_use > *size)
		*in_use = *size;
	return 0;
}

uint64_t bolt_txid(struct engine *e)
{
	return e->meta.txid;
}

/* bbolt's Tx.WriteTo: meta 0 (txid), meta 1 (txid - 1), data pages. */
static int snap_copy(int src, int dst, const struct bolt_meta *pin,
		     uint64_t *written)
{
	struct bolt_meta m = *pin;
	uint64_t off, end = pin->pgid * pin->psz;
	uint8_t *buf = bolt_calloc(1, BOLT_COPY_BUF);
	int err;

	if (!buf)
		return -ENOMEM;
	if (m.txid == 0)
		m.txid = 1; /* meta 1 must not wrap to the highest txid */
	m.flags = 0; /* the copy's metas are as synced as the copy is */
	memset(buf, 0, 2 * (size_t)m.psz);
	bolt_meta_encode(&m, buf, 0);
	m.txid--;
	bolt_meta_encode(&m, buf + m.psz, 1);
	err = fd_write_all(dst, buf, 2 * (size_t)m.psz);
	for (off = 2ull * m.psz; !err && off < end;) {
		size_t n = end - off < BOLT_COPY_BUF ? (size_t)(end - off)
						     : BOLT_COPY_BUF;

		err = bolt_read_full(src, buf, n, (off_t)off);
		if (!err)
			err = fd_write_all(dst, buf, n);
		off += n;
	}
	free(buf);
	if (!err)
		*written = end;
	return err;
}

int bolt_snapshot(struct engine *e, int fd, uint64_t *written)
{
	struct bolt_meta pin;
	int src = -1, err;

	*written = 0;
	pthread_mutex_lock(&e->mu);
	if (e->defragging || !e->map) {
		pthread_mutex_unlock(&e->mu);
		return -EBUSY;
	}
	pin = e->meta;
	/* invariant 5: the pin keeps every page of this meta unwritten */
	err = bolt_readers_add(e, pin.txid);
	if (!err && (src = dup(e->fd)) < 0) {
		err = -errno;
		bolt_readers_del(e, pin.txid);
	}
	pthread_mutex_unlock(&e->mu);
	if (err)
		return err;
	err = snap_copy(src, fd, &pin, written);
	close(src);
	pthread_mutex_lock(&e->mu);
	bolt_readers_del(e, pin.txid);
	pthread_mutex_unlock(&e->mu);
	return err;
}

/* Copy every top-level bucket of v into n, committing every few MiB. */
static int defrag_copy(struct engine_view *v, struct engine *n)
{
	struct bolt_root root = {.pgid = v->meta.root};
	struct bolt_cursor c;
	const uint8_t *k, *val;
	uint32_t kn, vn, fl;
	size_t pending = 0;
	int rc, err = 0;

	bolt_cursor_init(&c, &v->rc, &root);
	for (rc = bolt_cursor_first(&c); rc == 1 && !err;
	     rc = bolt_cursor_next(&c)) {
		struct engine_iter *it = NULL;
		struct engine_slice ks, vs;
		char *name;

		if ((err = bolt_cursor_cur(&c, &k, &kn, &val, &vn, &fl)))
			break;
		if (!(fl & BOLT_LEAF_BUCKET) || memchr(k, 0, kn))
			continue; /* engine.h buckets are C strings */
		if (!(name = bolt_strndup((const char *)k, kn)))
			return -ENOMEM;
		err = bolt_bucket_create(n, name);
		if (!err)
			err = bolt_iter_open(v, name, NULL, 0, NULL, 0, false,
					     &it);
		while (!err && (rc = bolt_iter_next(it, &ks, &vs)) == 1) {
			err = bolt_put(n, name, ks.p, ks.n, vs.p, vs.n);
			pending += ks.n + vs.n + 32;
			if (!err && pending > BOLT_DEFRAG_BATCH) {
				err = bolt_commit(n, false);
				pending = 0;
			}
		}
		if (!err && rc < 0)
			err = rc;
		bolt_iter_close(it);
		free(name);
		rc = 1;
	}
	if (!err && rc < 0)
		err = rc;
	return err ? err : bolt_commit(n, true);
}

static int sync_dir(const char *path)
{
	char *d = bolt_strdup(path), *slash;
	int fd, err = 0;

	if (!d)
		return -ENOMEM;
	slash = strrchr(d, '/');
	if (slash == d)
		slash[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		strcpy(d, ".");
	fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	free(d);
	return err;
}

int bolt_defrag(struct engine *e)
{
	struct engine_view *v = NULL;
	struct engine *n = NULL;
	char *tmp = NULL;
	int err;

	if (!e->map)
		return -EIO;
	pthread_mutex_lock(&e->mu);
	err = e->nreaders || e->views ? -EBUSY : 0;
	if (!err)
		e->defragging = true;
	pthread_mutex_unlock(&e->mu);
	if (err)
		return err;
	if ((err = bolt_commit(e, false)))
		goto out;
	err = -ENOMEM;
	tmp = bolt_malloc(strlen(e->path) + sizeof(".defrag"));
	if (!tmp)
		goto out;
	sprintf(tmp, "%s.defrag", e->path);
	unlink(tmp);
	if ((err = bolt_open(tmp, NULL, &n)) || (err = bolt_view_open(e, &v)))
		goto out;
	err = defrag_copy(v, n);
	bolt_view_close(v);
	v = NULL;
	if (err)
		goto out;
	bolt_close(n);
	n = NULL;
	if (rename(tmp, e->path) < 0) {
		err = -errno;
		goto out;
	}
	if ((err = sync_dir(e->path)))
		goto out;
	bolt_unload(e);
	err = bolt_load(e);
	if (err)
		log_error("bolt: reopen %s after defrag: %d", e->path, err);
out:
	if (v)
		bolt_view_close(v);
	if (n)
		bolt_close(n);
	if (tmp && err)
		unlink(tmp);
	free(tmp);
	pthread_mutex_lock(&e->mu);
	e->defragging = false;
	pthread_mutex_unlock(&e->mu);
	return err;
}
