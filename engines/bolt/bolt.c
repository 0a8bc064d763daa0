/* bolt/bolt.c: the bolt engine: the file layer, meta pages, mappings,
 * open/close, the write batch and the ops table. commit.c commits the
 * batch, view.c reads, maint.c does size/snapshot/defrag, node.c is the
 * write path's B+tree, cursor.c the read path's, freelist.c and check.c
 * what their names say. engines/bolt/bolt.h is the contract,
 * engines/bolt/format.h the file format.
 *
 * Invariants:
 * 1. Committed pages are never written: a commit writes only pages that
 *    are free (no committed tree of any open reader uses them) or above
 *    the high water; then the meta page txid % 2. With sync: pages,
 *    fdatasync, meta, fdatasync, so the previous meta stays valid until
 *    the new one is durable and a torn new meta fails its checksum.
 * 2. e->meta is the last committed meta; e->map maps at least its high
 *    water. Views and snapshots register their txid in readers[] (under
 *    mu); pages freed by txid T are reused only when every reader's txid
 *    is >= T (bolt_fl_release at the start of each commit).
 * 3. A mapping lives while referenced: by the engine (the current one)
 *    and by each view opened on it; the last unref unmaps it.
 * 4. The batch (wb[], copies[]) only reads committed pages through
 *    e->map, which no commit replaces while the batch is open; a commit,
 *    failed or not, ends the batch.
 * 5. Only the owner thread writes; snapshot (any thread) takes mu to pin
 *    a meta, then reads with pread pages that its pin protects.
 * 6. Power loss: e->sy is the last synced transaction S. Until the next
 *    synced commit, S's meta page and the pages of S's tree are not
 *    written: later txids have the other parity (format.h's slot rule),
 *    and a page of S's tree freed after S is pinned (freelist.c
 *    invariant 4); pages free in S or above its high water are reused as
 *    usual. So whatever subset of the unsynced writes reaches the disk,
 *    S's meta and tree are intact, and open falls back to S when the
 *    newer meta is unsynced from an earlier boot.
 *
 * States of the newest meta (S: the last synced transaction):
 *   SYNCED (it is S) --commit(false)--> UNSYNCED (in S's other page)
 *   UNSYNCED --commit(false)--> UNSYNCED (same page, txid + 2)
 *   UNSYNCED --commit(true), empty or not--> SYNCED (the new S)
 *   SYNCED --commit(true)--> SYNCED (the other page, the new S)
 *   open: the newest trusted meta (format.h); one UNSYNCED from this
 *   boot is made SYNCED first (bolt_seal).
 *
 * States of the batch:
 *   EMPTY --put/del/bucket_create--> OPEN --commit ok--> EMPTY
 *                                    OPEN --commit error / close--> EMPTY
 *                                         (nothing of it is visible)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/log.h"
#include "engines/bolt/bolt_int.h"

/* ---- the file layer (a test can swap it) ---- */

static ssize_t df_pwritev(void *ctx, int fd, const struct iovec *iov, int cnt,
			  off_t off)
{
	(void)ctx;
	return pwritev(fd, iov, cnt, off);
}

static int df_fdatasync(void *ctx, int fd)
{
	(void)ctx;
	return fdatasync(fd);
}

static int df_ftruncate(void *ctx, int fd, off_t len)
{
	(void)ctx;
	return ftruncate(fd, len);
}

static const struct bolt_file_ops bolt_default_fops = {
	.pwritev = df_pwritev,
	.fdatasync = df_fdatasync,
	.ftruncate = df_ftruncate,
};

static const struct bolt_file_ops *bolt_fops = &bolt_default_fops;
static bool bolt_strict;
long bolt_alloc_countdown = -1;

void bolt_test_set_file_ops(const struct bolt_file_ops *ops)
{
	bolt_fops = ops ? ops : &bolt_default_fops;
}

void bolt_test_set_strict(bool strict)
{
	bolt_strict = strict;
}

long bolt_test_fail_alloc(long after)
{
	long left = bolt_alloc_countdown;

	bolt_alloc_countdown = after;
	return left;
}

/* Write iov fully at off through the file layer. */
int bolt_f_writev(struct engine *e, struct iovec *iov, int cnt, off_t off)
{
	while (cnt > 0) {
		ssize_t w =
			e->fops->pwritev(e->fops->ctx, e->fd, iov, cnt, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -EIO;
		off += w;
		while (cnt > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int bolt_f_write(struct engine *e, const void *p, size_t n, off_t off)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = n};

	return bolt_f_writev(e, &iov, 1, off);
}

int bolt_f_sync(struct engine *e)
{
	return e->fops->fdatasync(e->fops->ctx, e->fd) < 0 ? -errno : 0;
}

int bolt_read_full(int fd, uint8_t *p, size_t n, off_t off)
{
	while (n > 0) {
		ssize_t r = pread(fd, p, n, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

/* ---- meta ---- */

void bolt_meta_encode(const struct bolt_meta *m, uint8_t *page, uint64_t id)
{
	uint8_t *d = page + BOLT_PAGE_HDR;

	bolt_st64(page + BOLT_PH_ID, id);
	bolt_st16(page + BOLT_PH_FLAGS, BOLT_FLAG_META);
	bolt_st16(page + BOLT_PH_COUNT, 0);
	bolt_st32(page + BOLT_PH_OVERFLOW, 0);
	bolt_st32(d + BOLT_M_MAGIC, BOLT_MAGIC);
	bolt_st32(d + BOLT_M_VERSION, BOLT_VERSION);
	bolt_st32(d + BOLT_M_PAGESIZE, m->psz);
	bolt_st32(d + BOLT_M_FLAGS, m->flags);
	bolt_st64(d + BOLT_M_ROOT, m->root);
	bolt_st64(d + BOLT_M_SEQ, m->seq);
	bolt_st64(d + BOLT_M_FREELIST, m->freelist);
	bolt_st64(d + BOLT_M_PGID, m->pgid);
	bolt_st64(d + BOLT_M_TXID, m->txid);
	bolt_st64(d + BOLT_M_CHECKSUM, bolt_fnv64a(d, BOLT_M_CHECKSUM));
}

/* ---- synced and unsynced metas (format.h: cairn's meta flags) ---- */

static uint32_t bolt_boot_override;
static uint32_t bolt_boot_real;
static pthread_once_t bolt_boot_once = PTHREAD_ONCE_INIT;

/* The tag of this boot: 31 bits of a hash of the kernel's boot id, which
 * changes at every boot (so after every power loss). */
static void boot_tag_read(void)
{
	char id[64];
	ssize_t n = 0;
	uint64_t h;
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		n = read(fd, id, sizeof(id));
		close(fd);
	}
	if (n < 16) {
		log_warn("bolt: no boot id: unsynced commits are dropped "
			 "at every open");
		return;
	}
	h = bolt_fnv64a((const uint8_t *)id, (size_t)n);
	bolt_boot_real = (uint32_t)(h ^ (h >> 32)) & 0x7fffffffu;
	if (!bolt_boot_real)
		bolt_boot_real = 1;
}

uint32_t bolt_boot_tag(void)
{
	if (bolt_boot_override)
		return bolt_boot_override;
	pthread_once(&bolt_boot_once, boot_tag_read);
	return bolt_boot_real;
}

uint32_t bolt_test_set_boot_tag(uint32_t tag)
{
	uint32_t prev = bolt_boot_tag();

	bolt_boot_override = tag & 0x7fffffffu;
	return prev;
}

uint32_t bolt_meta_flags(bool sync)
{
	return sync ? 0
		    : BOLT_MF_UNSYNCED | bolt_boot_tag() << BOLT_MF_BOOT_SHIFT;
}

bool bolt_meta_trusted(const struct bolt_meta *m)
{
	uint32_t tag = bolt_boot_tag();

	return !(m->flags & BOLT_MF_UNSYNCED) ||
	       (tag && m->flags >> BOLT_MF_BOOT_SHIFT == tag);
}

void bolt_synced_set(struct engine *e)
{
	size_t n = bolt_fl_count(&e->fl);
	uint64_t *ids = bolt_malloc((n ? n : 1) * sizeof(*ids));

	free(e->sy.free);
	e->sy.free = ids;
	e->sy.nfree = ids ? n : 0;
	e->sy.txid = e->meta.txid;
	e->sy.hw = e->meta.pgid;
	if (ids)
		bolt_fl_copyall(&e->fl, ids);
	else
		log_warn("bolt: %s: out of memory: every page freed until the "
			 "next synced commit stays pinned",
			 e->path);
}

/* 0 if page holds a valid meta (magic, version, checksum). */
static int meta_decode(const uint8_t *page, struct bolt_meta *m)
{
	const uint8_t *d = page + BOLT_PAGE_HDR;

	if (bolt_ld32(d + BOLT_M_MAGIC) != BOLT_MAGIC ||
	    bolt_ld32(d + BOLT_M_VERSION) != BOLT_VERSION ||
	    bolt_ld64(d + BOLT_M_CHECKSUM) != bolt_fnv64a(d, BOLT_M_CHECKSUM))
		return -EINVAL;
	m->psz = bolt_ld32(d + BOLT_M_PAGESIZE);
	m->flags = bolt_ld32(d + BOLT_M_FLAGS);
	m->root = bolt_ld64(d + BOLT_M_ROOT);
	m->seq = bolt_ld64(d + BOLT_M_SEQ);
	m->freelist = bolt_ld64(d + BOLT_M_FREELIST);
	m->pgid = bolt_ld64(d + BOLT_M_PGID);
	m->txid = bolt_ld64(d + BOLT_M_TXID);
	return 0;
}

/* ---- mappings ---- */

int bolt_map_new(int fd, size_t len, struct bolt_map **out)
{
	struct bolt_map *m = bolt_calloc(1, sizeof(*m));

	if (!m)
		return -ENOMEM;
	m->base = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (m->base == MAP_FAILED) {
		int err = -errno;

		free(m);
		return err;
	}
	m->len = len;
	m->refs = 1;
	*out = m;
	return 0;
}

/* Caller holds e->mu (or is the only user). */
void bolt_map_unref(struct bolt_map *m)
{
	if (m && --m->refs == 0) {
		munmap(m->base, m->len);
		free(m);
	}
}

struct bolt_rctx bolt_e_rctx(const struct engine *e)
{
	struct bolt_rctx rc = {.base = e->map->base,
			       .len = e->map->len,
			       .psz = e->psz,
			       .hw = e->meta.pgid};

	return rc;
}

/* bbolt's mmapSize: double from 32 KiB to 1 GiB, then 1 GiB steps. */
uint64_t bolt_grow_size(uint64_t need)
{
	uint64_t gib = 1ull << 30;
	unsigned i;

	for (i = 15; i <= 30; i++)
		if (need <= (1ull << i))
			return 1ull << i;
	return (need + gib - 1) / gib * gib;
}

/* ---- readers (views and snapshots): under mu ---- */

int bolt_readers_add(struct engine *e, uint64_t txid)
{
	if (e->nreaders == e->capreaders) {
		size_t nc = e->capreaders ? e->capreaders * 2 : 16;
		uint64_t *p = bolt_realloc(e->readers, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		e->readers = p;
		e->capreaders = nc;
	}
	e->readers[e->nreaders++] = txid;
	return 0;
}

void bolt_readers_del(struct engine *e, uint64_t txid)
{
	size_t i;

	for (i = 0; i < e->nreaders; i++)
		if (e->readers[i] == txid) {
			e->readers[i] = e->readers[--e->nreaders];
			return;
		}
}

/* Oldest txid any reader sees (the current txid with none). */
uint64_t bolt_readers_min(struct engine *e)
{
	uint64_t m = e->meta.txid;
	size_t i;

	for (i = 0; i < e->nreaders; i++)
		if (e->readers[i] < m)
			m = e->readers[i];
	return m;
}

/* ---- open ---- */

/* A new file: bbolt's init (two metas, empty freelist, empty root). */
static int file_init(struct engine *e)
{
	uint8_t *buf = bolt_calloc(4, e->psz);
	struct bolt_meta m = {
		.psz = e->psz, .root = 3, .freelist = 2, .pgid = 4};
	int err, i;

	if (!buf)
		return -ENOMEM;
	for (i = 0; i < 2; i++) {
		m.txid = (uint64_t)i;
		bolt_meta_encode(&m, buf + (size_t)i * e->psz, (uint64_t)i);
	}
	bolt_st64(buf + 2 * e->psz + BOLT_PH_ID, 2);
	bolt_st16(buf + 2 * e->psz + BOLT_PH_FLAGS, BOLT_FLAG_FREELIST);
	bolt_st64(buf + 3 * e->psz + BOLT_PH_ID, 3);
	bolt_st16(buf + 3 * e->psz + BOLT_PH_FLAGS, BOLT_FLAG_LEAF);
	err = bolt_f_write(e, buf, 4 * (size_t)e->psz, 0);
	if (!err)
		err = bolt_f_sync(e);
	free(buf);
	return err;
}

/* format.h's open rule: the newest trusted valid meta (0 or 1). */
static int meta_choose(const struct engine *e, const struct bolt_meta m[2],
		       const int ok[2])
{
	int i, best = -1, newest = -1;

	for (i = 0; i < 2; i++) {
		if (!ok[i])
			continue;
		if (newest < 0 || m[i].txid > m[newest].txid)
			newest = i;
		if (bolt_meta_trusted(&m[i]) &&
		    (best < 0 || m[i].txid > m[best].txid))
			best = i;
	}
	if (best < 0) {
		/* not made by cairn's protocol: damage, or another writer */
		log_error("bolt: %s: no synced meta; opening unsynced commit "
			  "%llu, which may be damaged",
			  e->path, (unsigned long long)m[newest].txid);
		return newest;
	}
	if (best != newest)
		log_warn("bolt: %s: unsynced commit %llu was written before a "
			 "reboot (power loss?): opening the last synced commit "
			 "%llu; later commits are dropped",
			 e->path, (unsigned long long)m[newest].txid,
			 (unsigned long long)m[best].txid);
	return best;
}

static int meta_pick(struct engine *e, uint64_t fsize)
{
	uint8_t *buf = bolt_malloc(65536 + 4096);
	struct bolt_meta m[2];
	int ok[2], err;
	uint32_t psz = 4096;

	if (!buf)
		return -ENOMEM;
	ok[0] = ok[1] = 0;
	if (fsize >= 4096 && bolt_read_full(e->fd, buf, 4096, 0) == 0 &&
	    meta_decode(buf, &m[0]) == 0)
		ok[0] = 1, psz = m[0].psz;
	if (psz < 1024 || psz > 65536 || (psz & (psz - 1)))
		ok[0] = 0, psz = 4096;
	if (fsize >= 2ull * psz && bolt_read_full(e->fd, buf, 4096, psz) == 0 &&
	    meta_decode(buf, &m[1]) == 0 && m[1].psz == psz)
		ok[1] = 1;
	free(buf);
	if (!ok[0] && !ok[1])
		return -EINVAL;
	e->meta = m[meta_choose(e, m, ok)];
	e->psz = psz;
	err = -EINVAL;
	if (e->meta.pgid < 4 || e->meta.pgid * (uint64_t)psz > fsize ||
	    e->meta.root < 2 || e->meta.root >= e->meta.pgid ||
	    (e->meta.freelist != BOLT_PGID_NONE &&
	     (e->meta.freelist < 2 || e->meta.freelist >= e->meta.pgid)))
		return err;
	return 0;
}

/* The freelist as written, or (not synced) every unreachable page. */
static int freelist_load(struct engine *e)
{
	struct bolt_rctx rc = bolt_e_rctx(e);
	const uint8_t *p;
	uint64_t cnt, i, *ids = NULL, n = 0;
	size_t span, off = BOLT_PAGE_HDR;
	uint8_t *seen = NULL;
	int err;

	if (e->meta.freelist == BOLT_PGID_NONE) {
		seen = bolt_calloc(e->meta.pgid, 1);
		ids = bolt_malloc(e->meta.pgid * sizeof(*ids));
		err = -ENOMEM;
		if (!seen || !ids)
			goto out;
		err = bolt_mark_reachable(&rc, e->meta.root, seen, NULL, 0);
		if (err)
			goto out;
		for (i = 2; i < e->meta.pgid; i++)
			if (!seen[i])
				ids[n++] = i;
		err = bolt_fl_set(&e->fl, ids, n);
		goto out;
	}
	if ((err = bolt_page(&rc, e->meta.freelist, &p, &span)))
		return err;
	if (!(bolt_ld16(p + BOLT_PH_FLAGS) & BOLT_FLAG_FREELIST))
		return -EIO;
	cnt = bolt_ld16(p + BOLT_PH_COUNT);
	if (cnt == BOLT_FREELIST_ESCAPE) {
		cnt = bolt_ld64(p + off);
		off += 8;
	}
	if (cnt > (span - off) / 8)
		return -EIO;
	ids = bolt_malloc((cnt ? cnt : 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (i = 0; i < cnt; i++) {
		ids[i] = bolt_ld64(p + off + 8 * i);
		if (ids[i] < 2 || ids[i] >= e->meta.pgid) {
			err = -EIO;
			goto out;
		}
	}
	err = bolt_fl_set(&e->fl, ids, cnt);
out:
	free(seen);
	free(ids);
	return err;
}

void bolt_unload(struct engine *e)
{
	bolt_map_unref(e->map);
	e->map = NULL;
	if (e->fd >= 0)
		close(e->fd);
	e->fd = -1;
	bolt_fl_destroy(&e->fl);
	free(e->sy.free);
	memset(&e->sy, 0, sizeof(e->sy));
	e->unsynced = false;
}

int bolt_load(struct engine *e)
{
	struct stat st;
	int err;

	e->fd = open(e->path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (e->fd < 0)
		return -errno;
	/* Exclusive like bbolt: never two writers (e.g. etcd) on one file. */
	if (flock(e->fd, LOCK_EX | LOCK_NB) < 0) {
		err = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto fail;
	}
	if (fstat(e->fd, &st) < 0) {
		err = -errno;
		goto fail;
	}
	if (st.st_size == 0) {
		long ps = sysconf(_SC_PAGESIZE);

		e->psz = ps > 0 ? (uint32_t)ps : 4096;
		if ((err = file_init(e)))
			goto fail;
		st.st_size = 4 * (off_t)e->psz;
	}
	if ((err = meta_pick(e, (uint64_t)st.st_size)))
		goto fail;
	e->file_size = (uint64_t)st.st_size;
	if ((err = bolt_map_new(e->fd, (size_t)st.st_size, &e->map)))
		goto fail;
	if ((err = freelist_load(e)))
		goto fail;
	/* an unsynced meta from this boot (a process crash): make it S */
	if ((e->meta.flags & BOLT_MF_UNSYNCED) && (err = bolt_seal(e)))
		goto fail;
	bolt_synced_set(e);
	return 0;
fail:
	bolt_unload(e);
	return err;
}

void bolt_batch_reset(struct engine *e);

int bolt_open(const char *path, const struct engine_config *cfg,
	      struct engine **out)
{
	struct engine *e;
	int err;

	(void)cfg; /* no cache: the page cache is the cache */
	*out = NULL;
	if (!path || !*path)
		return -EINVAL;
	e = bolt_calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->fd = -1;
	e->fops = bolt_fops;
	e->strict = bolt_strict;
	e->path = bolt_strdup(path);
	if (!e->path || pthread_mutex_init(&e->mu, NULL)) {
		free(e->path);
		free(e);
		return -ENOMEM;
	}
	if ((err = bolt_load(e))) {
		pthread_mutex_destroy(&e->mu);
		free(e->path);
		free(e);
		return err;
	}
	*out = e;
	return 0;
}

void bolt_close(struct engine *e)
{
	if (!e)
		return;
	if (e->views || e->nreaders)
		log_error("bolt: close with %d views open", e->views);
	bolt_batch_reset(e);
	free(e->wb);
	free(e->copies);
	bolt_unload(e);
	free(e->readers);
	pthread_mutex_destroy(&e->mu);
	free(e->path);
	free(e);
}

/* ---- the batch ---- */

void bolt_batch_reset(struct engine *e)
{
	size_t i;

	for (i = 0; i < e->nwb; i++) {
		bolt_tree_drop(&e->wb[i].tree);
		free(e->wb[i].name);
	}
	e->nwb = 0;
	for (i = 0; i < e->ncopies; i++)
		free(e->copies[i]);
	e->ncopies = 0;
}

int bolt_batch_keep(struct engine *e, uint8_t *p)
{
	if (e->ncopies == e->capcopies) {
		size_t nc = e->capcopies ? e->capcopies * 2 : 256;
		uint8_t **c = bolt_realloc(e->copies, nc * sizeof(*c));

		if (!c)
			return -ENOMEM;
		e->copies = c;
		e->capcopies = nc;
	}
	e->copies[e->ncopies++] = p;
	return 0;
}

/* The batch's bucket named name, found or (create) added. -ENOENT. */
static int wb_get(struct engine *e, const char *name, bool create,
		  struct bolt_wbucket **out)
{
	struct bolt_root r = {0};
	struct bolt_rctx rc;
	struct bolt_wbucket *w;
	size_t i, nl;
	int err;

	if (!name || !(nl = strlen(name)) || nl > BOLT_MAX_KEY)
		return -EINVAL;
	if (!e->map)
		return -EIO; /* a failed reopen after defrag */
	for (i = 0; i < e->nwb; i++)
		if (strcmp(e->wb[i].name, name) == 0) {
			*out = &e->wb[i];
			return 0;
		}
	rc = bolt_e_rctx(e);
	err = bolt_bucket_find(&rc, e->meta.root, name, &r);
	if (err && (err != -ENOENT || !create))
		return err;
	if (e->nwb == e->capwb) {
		size_t nc = e->capwb ? e->capwb * 2 : 16;
		struct bolt_wbucket *p = bolt_realloc(e->wb, nc * sizeof(*p));

		if (!p)
			return -ENOMEM;
		e->wb = p;
		e->capwb = nc;
	}
	w = &e->wb[e->nwb];
	memset(w, 0, sizeof(*w));
	w->name = bolt_strdup(name);
	if (!w->name)
		return -ENOMEM;
	w->created = err == -ENOENT;
	if (!w->created) {
		w->tree.croot = r;
		/* the sequence lives in the bucket header */
		{
			struct bolt_root root = {.pgid = e->meta.root};
			const uint8_t *v;
			uint32_t vn, fl;

			if (bolt_tree_get(&rc, &root, name, nl, &v, &vn, &fl) ==
				    0 &&
			    vn >= BOLT_BUCKET_HDR)
				w->seq = bolt_ld64(v + BOLT_BH_SEQ);
		}
	}
	e->nwb++;
	*out = w;
	return 0;
}

int bolt_bucket_create(struct engine *e, const char *bucket)
{
	struct bolt_wbucket *w;

	return wb_get(e, bucket, true, &w);
}

int bolt_put(struct engine *e, const char *bucket, const void *key, size_t klen,
	     const void *val, size_t vlen)
{
	struct bolt_wbucket *w;
	struct bolt_rctx rc;
	uint8_t *c;
	int err;

	if (!key || klen == 0 || klen > BOLT_MAX_KEY || vlen > BOLT_MAX_VAL ||
	    (vlen && !val))
		return -EINVAL;
	if ((err = wb_get(e, bucket, false, &w)))
		return err;
	c = bolt_malloc(klen + vlen + 1);
	if (!c)
		return -ENOMEM;
	memcpy(c, key, klen);
	if (vlen)
		memcpy(c + klen, val, vlen);
	if ((err = bolt_batch_keep(e, c))) {
		free(c);
		return err;
	}
	rc = bolt_e_rctx(e);
	return bolt_tree_put(&rc, &w->tree, c, (uint32_t)klen, c + klen,
			     (uint32_t)vlen, 0);
}

int bolt_del(struct engine *e, const char *bucket, const void *key, size_t klen)
{
	struct bolt_wbucket *w;
	struct bolt_rctx rc;
	int err;

	if (!key || klen == 0 || klen > BOLT_MAX_KEY)
		return -EINVAL;
	if ((err = wb_get(e, bucket, false, &w)))
		return err;
	rc = bolt_e_rctx(e);
	return bolt_tree_del(&rc, &w->tree, key, (uint32_t)klen);
}

static const char *bolt_lib_version(void)
{
	return "1.3 (bbolt format 2)";
}

const struct engine_ops bolt_engine_ops = {
	.version = ENGINE_OPS_VERSION,
	.name = "bolt",
	.open = bolt_open,
	.close = bolt_close,
	.bucket_create = bolt_bucket_create,
	.put = bolt_put,
	.del = bolt_del,
	.commit = bolt_commit,
	.view_open = bolt_view_open,
	.view_close = bolt_view_close,
	.get = bolt_get,
	.iter_open = bolt_iter_open,
	.iter_next = bolt_iter_next,
	.iter_close = bolt_iter_close,
	.size = bolt_size,
	.defrag = bolt_defrag,
	.snapshot = bolt_snapshot,
	.lib_version = bolt_lib_version,
};
