/* wal: segmented, checksummed, group-committed write-ahead log (wal.h).
 *
 * Invariants:
 *  1. Every record on disk carries crc32c(previous record's crc, its own
 *     bytes 4 .. 12+len); the chain crosses segments through the CRC record
 *     at each segment head. enc_crc is the crc of the last record encoded
 *     (pending included), so encoding alone fixes every record's bytes.
 *  2. A segment file exists under its final name only after its head (and
 *     the records of the batch that created it) were fsynced: it is created
 *     as <name>.tmp, preallocated, written, fsynced, renamed, and then the
 *     directory is fsynced. So a final-named segment always has a valid
 *     head, and a bad head is corruption, never a torn write.
 *  3. A segment is sealed (ftruncated to its last record, fsynced) before
 *     the next one is created, so only the tail may end in zeros/garbage.
 *  4. Preallocated space is zeros, and the all-zero record header is
 *     invalid (type 0): unwritten space reads as "end of log".
 *  5. While busy, the in-flight batch, fd and fd_off belong to the helper
 *     thread running the job; the loop touches none of them until the
 *     done callback. Everything else in struct wal is loop-thread only.
 *  6. segs[] lists exactly the final-named files this WAL knows, in
 *     sequence order; segs[nsegs - 1] is the tail that fd writes to.
 *  7. failed != 0 is sticky: no save or sync is accepted afterwards (an
 *     fsync error may have dropped dirty pages; retrying could lie).
 *
 * Sync states:
 *
 *   IDLE --wal_sync--> BUSY (job on BIO_QUEUE_WAL) --done--> IDLE | FAILED
 *   IDLE --wal_sync_now (inline)------------------------> IDLE | FAILED
 *   wal_save / wal_save_snapshot: encode into `pending` in IDLE or BUSY.
 */
#include "raftlog/wal.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/util/bio.h"
#include "core/util/crc32c.h"
#include "core/util/fdio.h"
#include "core/util/log.h"

#define WAL_NAME_LEN 37 /* 16 hex, '-', 16 hex, ".wal" */
#define WAL_ARENA_BLOCK (1u << 20)
#define WAL_KEEP_BUF (8u << 20) /* a batch buffer above this is freed */

/* Bytes [off, ...) of a batch go to a new segment (seq, first_index). */
struct wal_cut {
	size_t off;
	uint64_t seq, first_index;
};

struct wal_batch {
	uint8_t *buf;
	size_t len, cap;
	struct wal_cut *cuts;
	size_t ncuts, cuts_cap;
	uint64_t snap_index; /* the marker durable once this batch is */
	uint64_t seg_size;   /* preallocation of segments it creates */
	int inject;	     /* failpoint: fail with this before writing */
};

struct wal_seg {
	uint64_t seq, first_index;
};

struct wal {
	char *dir;
	int fd;		 /* the tail segment (invariant 5) */
	uint64_t fd_off; /* end of written data in it */
	uint64_t seg_size;
	struct wal_seg *segs;
	size_t nsegs, segs_cap;

	/* Encoder state: where the next pending record lands. */
	uint64_t enc_seq, enc_off, last_index;
	uint32_t enc_crc;
	uint8_t *meta;
	size_t meta_len;
	struct wal_hard_state hs;
	bool has_hs, has_snap;
	uint64_t snap_index, snap_term, durable_snap;

	struct wal_batch pending, inflight;
	bool busy;
	int failed;
	int inject;
	struct bio_job job;
	void (*cb)(void *arg, int status);
	void *cb_arg;
};

/* Debug-only check of invariants 5, 6 and 7 (loop-side view). */
static void wal_check(const struct wal *w)
{
#ifndef NDEBUG
	assert(w->nsegs >= 1);
	for (size_t i = 1; i < w->nsegs; i++)
		assert(w->segs[i].seq == w->segs[i - 1].seq + 1);
	assert(w->enc_seq >= w->segs[w->nsegs - 1].seq);
	if (!w->busy) {
		assert(w->inflight.len == 0 && w->inflight.ncuts == 0);
		assert(w->failed || w->fd >= 0);
	}
#else
	(void)w;
#endif
}

/* ---- little helpers ------------------------------------------------ */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
	return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static size_t wal_rec_size(size_t len)
{
	return (WAL_REC_HEADER + len + 7) & ~(size_t)7;
}

static char *wal_seg_path(const char *dir, uint64_t seq, uint64_t first,
			  const char *suffix)
{
	char *p;

	if (asprintf(&p, "%s/%016llx-%016llx.wal%s", dir,
		     (unsigned long long)seq, (unsigned long long)first,
		     suffix) < 0)
		return NULL;
	return p;
}

/* mkdir -p, fsyncing the parent of every directory it creates so the new
 * name survives a crash. */
static int wal_mkdir_p(const char *dir)
{
	char *path = strdup(dir), *s;
	int err = 0;

	if (!path)
		return -ENOMEM;
	for (s = path + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;

		*s = '\0';
		if (mkdir(path, 0700) == 0) {
			char *slash = strrchr(path, '/');

			if (slash && slash != path) {
				*slash = '\0';
				err = fd_fsync_dir(path);
				*slash = '/';
			} else {
				err = fd_fsync_dir(slash ? "/" : ".");
			}
			if (err)
				break;
		} else if (errno != EEXIST) {
			err = -errno;
			break;
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(path);
	return err ? err : fd_fsync_dir(dir);
}

/* ---- encoding (loop thread, no syscalls) ---------------------------- */

static int wal_batch_reserve(struct wal_batch *b, size_t more)
{
	size_t cap = b->cap ? b->cap : 4096;
	uint8_t *nb;

	if (b->len + more <= b->cap)
		return 0;
	while (cap < b->len + more)
		cap *= 2;
	nb = realloc(b->buf, cap);
	if (!nb)
		return -ENOMEM;
	b->buf = nb;
	b->cap = cap;
	return 0;
}

static int wal_put(struct wal *w, uint8_t type, const void *a, size_t alen,
		   const void *d, size_t dlen)
{
	struct wal_batch *b = &w->pending;
	size_t len = alen + dlen, size = wal_rec_size(len);
	uint32_t seed = w->enc_crc;
	uint8_t *p;

	if (wal_batch_reserve(b, size))
		return -ENOMEM;
	p = b->buf + b->len;
	memset(p, 0, size);
	put_le32(p + 4, (uint32_t)len);
	p[8] = type;
	if (alen)
		memcpy(p + WAL_REC_HEADER, a, alen);
	if (dlen)
		memcpy(p + WAL_REC_HEADER + alen, d, dlen);
	if (type == WAL_REC_CRC)
		seed = get_le32(p + WAL_REC_HEADER);
	w->enc_crc = crc32c(seed, p + 4, 8 + len);
	put_le32(p, w->enc_crc);
	b->len += size;
	w->enc_off += size;
	return 0;
}

static int wal_put_hs(struct wal *w)
{
	uint8_t pl[24];

	put_le64(pl, w->hs.term);
	put_le64(pl + 8, w->hs.vote);
	put_le64(pl + 16, w->hs.commit);
	return wal_put(w, WAL_REC_HARD_STATE, pl, sizeof(pl), NULL, 0);
}

static int wal_put_snap(struct wal *w)
{
	uint8_t pl[16];

	put_le64(pl, w->snap_index);
	put_le64(pl + 8, w->snap_term);
	return wal_put(w, WAL_REC_SNAPSHOT, pl, sizeof(pl), NULL, 0);
}

/* Start segment seq in the pending batch: CRC head, then what makes the
 * segment self-describing (metadata, last hard state and marker), so old
 * segments can be deleted without losing them. */
static int wal_cut(struct wal *w, uint64_t seq, uint64_t first_index)
{
	struct wal_batch *b = &w->pending;
	uint8_t pl[4];

	if (b->ncuts == b->cuts_cap) {
		size_t n = b->cuts_cap ? 2 * b->cuts_cap : 4;
		struct wal_cut *nc = realloc(b->cuts, n * sizeof(*nc));

		if (!nc)
			return -ENOMEM;
		b->cuts = nc;
		b->cuts_cap = n;
	}
	b->cuts[b->ncuts++] = (struct wal_cut){b->len, seq, first_index};
	w->enc_seq = seq;
	w->enc_off = 0;
	put_le32(pl, w->enc_crc);
	if (wal_put(w, WAL_REC_CRC, pl, 4, NULL, 0) ||
	    wal_put(w, WAL_REC_METADATA, w->meta, w->meta_len, NULL, 0) ||
	    (w->has_hs && wal_put_hs(w)) || (w->has_snap && wal_put_snap(w)))
		return -ENOMEM;
	return 0;
}

static int wal_maybe_cut(struct wal *w, uint64_t first_index)
{
	if (w->enc_off < w->seg_size)
		return 0;
	return wal_cut(w, w->enc_seq + 1, first_index);
}

/* Everything a failed save must put back, so it saves nothing. */
struct wal_enc_state {
	size_t len, ncuts;
	uint64_t enc_seq, enc_off, last_index, snap_index, snap_term;
	uint32_t enc_crc;
	struct wal_hard_state hs;
	bool has_hs, has_snap;
};

static void wal_enc_save(const struct wal *w, struct wal_enc_state *s)
{
	s->len = w->pending.len;
	s->ncuts = w->pending.ncuts;
	s->enc_seq = w->enc_seq;
	s->enc_off = w->enc_off;
	s->last_index = w->last_index;
	s->snap_index = w->snap_index;
	s->snap_term = w->snap_term;
	s->enc_crc = w->enc_crc;
	s->hs = w->hs;
	s->has_hs = w->has_hs;
	s->has_snap = w->has_snap;
}

static void wal_enc_restore(struct wal *w, const struct wal_enc_state *s)
{
	w->pending.len = s->len;
	w->pending.ncuts = s->ncuts;
	w->enc_seq = s->enc_seq;
	w->enc_off = s->enc_off;
	w->last_index = s->last_index;
	w->snap_index = s->snap_index;
	w->snap_term = s->snap_term;
	w->enc_crc = s->enc_crc;
	w->hs = s->hs;
	w->has_hs = s->has_hs;
	w->has_snap = s->has_snap;
}

static int wal_put_entry(struct wal *w, const struct wal_entry *e)
{
	uint8_t hdr[WAL_ENTRY_HEADER];

	if (wal_maybe_cut(w, e->index))
		return -ENOMEM;
	put_le64(hdr, e->index);
	put_le64(hdr + 8, e->term);
	put_le32(hdr + 16, e->type);
	if (wal_put(w, WAL_REC_ENTRY, hdr, sizeof(hdr), e->data, e->len))
		return -ENOMEM;
	w->last_index = e->index;
	return 0;
}

int wal_save(struct wal *w, const struct wal_hard_state *hs,
	     const struct wal_entry *ents, size_t n)
{
	struct wal_enc_state st;
	int err = 0;

	wal_check(w);
	if (w->failed)
		return w->failed;
	if (n && !ents)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if (ents[i].len > WAL_MAX_ENTRY_DATA ||
		    (ents[i].len && !ents[i].data))
			return -EINVAL;
	wal_enc_save(w, &st);
	/* Entries before the hard state: its commit may point into them. */
	for (size_t i = 0; i < n && !err; i++)
		err = wal_put_entry(w, &ents[i]);
	if (!err && hs) {
		w->hs = *hs;
		w->has_hs = true;
		err = wal_maybe_cut(w, w->last_index + 1);
		if (!err)
			err = wal_put_hs(w);
	}
	if (err)
		wal_enc_restore(w, &st);
	return err;
}

int wal_save_snapshot(struct wal *w, uint64_t index, uint64_t term)
{
	struct wal_enc_state st;
	int err;

	if (w->failed)
		return w->failed;
	wal_enc_save(w, &st);
	w->snap_index = index;
	w->snap_term = term;
	w->has_snap = true;
	err = wal_maybe_cut(w, w->last_index + 1);
	if (!err)
		err = wal_put_snap(w);
	if (err)
		wal_enc_restore(w, &st);
	return err;
}

/* ---- writing (helper thread, or inline for wal_sync_now) ------------ */

/* Seal the tail: cut the preallocated zeros off so a sealed segment ends
 * exactly at its last record (invariant 3). */
static int wal_seal(int fd, uint64_t end)
{
	if (ftruncate(fd, (off_t)end) < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Create segment c holding bytes p[0..len) (invariant 2); *fd on success. */
static int wal_create_seg(const char *dir, const struct wal_cut *c,
			  uint64_t seg_size, const uint8_t *p, size_t len,
			  int *fdp)
{
	char *tmp = wal_seg_path(dir, c->seq, c->first_index, ".tmp");
	char *fin = wal_seg_path(dir, c->seq, c->first_index, "");
	int fd = -1, err;

	if (!tmp || !fin) {
		err = -ENOMEM;
		goto fail;
	}
	fd = open(tmp, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	err = -posix_fallocate(fd, 0, (off_t)seg_size);
	if (!err)
		err = fd_pwrite_all(fd, p, len, 0);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (!err && rename(tmp, fin) < 0)
		err = -errno;
	if (!err)
		err = fd_fsync_dir(dir);
	if (err)
		goto fail;
	*fdp = fd;
	free(tmp);
	free(fin);
	return 0;
fail:
	if (fd >= 0) {
		close(fd);
		unlink(tmp);
	}
	free(tmp);
	free(fin);
	return err;
}

static int wal_write_batch(struct wal *w, const struct wal_batch *b)
{
	size_t pos = 0;
	int err;

	if (b->inject)
		return b->inject;
	for (size_t k = 0; k <= b->ncuts; k++) {
		size_t end = k < b->ncuts ? b->cuts[k].off : b->len;
		const uint8_t *p = b->buf + pos;

		if (k == 0 && end > pos) {
			err = fd_pwrite_all(w->fd, p, end - pos, w->fd_off);
			if (err)
				return err;
			w->fd_off += end - pos;
		} else if (k > 0) {
			int fd = -1;

			/* The old tail is durable and sealed before the new
			 * one exists: only the last segment can be torn. */
			if (w->fd >= 0) {
				err = wal_seal(w->fd, w->fd_off);
				if (err)
					return err;
				close(w->fd);
				w->fd = -1;
			}
			err = wal_create_seg(w->dir, &b->cuts[k - 1],
					     b->seg_size, p, end - pos, &fd);
			if (err)
				return err;
			w->fd = fd;
			w->fd_off = end - pos;
		}
		pos = end;
	}
	/* A new segment was fsynced whole; otherwise the appends need it. */
	if (b->ncuts == 0 && b->len && fdatasync(w->fd) < 0)
		return -errno;
	return 0;
}

static void wal_batch_reset(struct wal_batch *b)
{
	b->len = 0;
	b->ncuts = 0;
	b->inject = 0;
	if (b->cap > WAL_KEEP_BUF) {
		free(b->buf);
		b->buf = NULL;
		b->cap = 0;
	}
}

static void wal_batch_free(struct wal_batch *b)
{
	free(b->buf);
	free(b->cuts);
	memset(b, 0, sizeof(*b));
}

/* Loop thread: take pending as the batch to write. */
static void wal_begin(struct wal *w)
{
	struct wal_batch t = w->inflight;

	w->inflight = w->pending;
	w->pending = t;
	w->inflight.snap_index = w->snap_index;
	w->inflight.seg_size = w->seg_size;
	w->inflight.inject = w->inject;
	w->inject = 0;
}

static int wal_push_seg(struct wal *w, uint64_t seq, uint64_t first)
{
	if (w->nsegs == w->segs_cap) {
		size_t n = w->segs_cap ? 2 * w->segs_cap : 8;
		struct wal_seg *ns = realloc(w->segs, n * sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		w->segs = ns;
		w->segs_cap = n;
	}
	w->segs[w->nsegs++] = (struct wal_seg){seq, first};
	return 0;
}

/* Loop thread: account for the written batch. */
static int wal_finish(struct wal *w, int err)
{
	struct wal_batch *b = &w->inflight;

	for (size_t k = 0; !err && k < b->ncuts; k++)
		err = wal_push_seg(w, b->cuts[k].seq, b->cuts[k].first_index);
	if (err) {
		if (!w->failed)
			w->failed = err;
		log_error("wal: %s: write failed, refusing further writes: %s",
			  w->dir, strerrordesc_np(-err));
	} else {
		w->durable_snap = b->snap_index;
	}
	wal_batch_reset(b);
	return err;
}

static void wal_job_work(struct bio_job *j)
{
	struct wal *w = j->data;

	j->status = wal_write_batch(w, &w->inflight);
}

static void wal_job_done(struct bio_job *j)
{
	struct wal *w = j->data;
	int err = wal_finish(w, j->status);

	w->busy = false;
	/* Last: cb may wal_sync again, or even wal_close. */
	w->cb(w->cb_arg, err);
}

int wal_sync(struct wal *w, struct bio *b, void (*cb)(void *arg, int status),
	     void *arg)
{
	int err;

	if (!b || !cb)
		return -EINVAL;
	wal_check(w);
	if (w->busy)
		return -EBUSY;
	if (w->failed)
		return w->failed;
	wal_begin(w);
	w->job = (struct bio_job){
		.work = wal_job_work, .done = wal_job_done, .data = w};
	w->cb = cb;
	w->cb_arg = arg;
	err = bio_submit(b, BIO_QUEUE_WAL, &w->job);
	if (err) {
		/* Undo wal_begin: the records stay pending. */
		struct wal_batch t = w->inflight;

		w->inject = t.inject;
		w->inflight = w->pending;
		w->pending = t;
		return err;
	}
	w->busy = true;
	return 0;
}

static int wal_write_inline(struct wal *w)
{
	wal_begin(w);
	return wal_finish(w, wal_write_batch(w, &w->inflight));
}

int wal_sync_now(struct wal *w)
{
	wal_check(w);
	if (w->busy)
		return -EBUSY;
	if (w->failed)
		return w->failed;
	return wal_write_inline(w);
}

/* ---- replay ---------------------------------------------------------- */

struct wal_arena_block {
	struct wal_arena_block *next;
	size_t used, cap;
	uint8_t data[];
};

static uint8_t *wal_arena_alloc(struct wal_replay *rp, size_t n)
{
	struct wal_arena_block *a = rp->arena;

	if (!a || a->cap - a->used < n) {
		size_t cap = n > WAL_ARENA_BLOCK / 4 ? n : WAL_ARENA_BLOCK;
		struct wal_arena_block *nb = malloc(sizeof(*nb) + cap);

		if (!nb)
			return NULL;
		nb->used = 0;
		nb->cap = cap;
		/* A big private block goes behind the current one, so the
		 * current block keeps filling. */
		if (a && cap != WAL_ARENA_BLOCK) {
			nb->next = a->next;
			a->next = nb;
		} else {
			nb->next = a;
			rp->arena = nb;
		}
		a = nb;
	}
	a->used += n;
	return a->data + a->used - n;
}

void wal_replay_free(struct wal_replay *rp)
{
	struct wal_arena_block *a = rp->arena, *next;

	for (; a; a = next) {
		next = a->next;
		free(a);
	}
	free(rp->meta);
	free(rp->entries);
	rp->arena = NULL;
	rp->meta = NULL;
	rp->entries = NULL;
	rp->n_entries = 0;
	rp->meta_len = 0;
}

/* The state of a replay in progress. */
struct wal_reader {
	struct wal_replay *rp;
	size_t head, cap; /* entries[head .. rp->n_entries) are live */
	uint32_t crc;	  /* chain: crc of the last valid record */
	bool have_crc;
	const char *path; /* segment being read, for messages */
	uint64_t keep_after; /* entries <= this replay without their data */
};

struct wal_rec {
	uint8_t type;
	const uint8_t *pl;
	size_t len, size;
	uint32_t crc;
};

/* Structure of the record at off, without its crc. NULL if plausible,
 * else why not. */
static const char *wal_rec_shape(const uint8_t *p, size_t size, size_t off,
				 struct wal_rec *r)
{
	const uint8_t *h = p + off;

	if (size - off < WAL_REC_HEADER)
		return "record header cut short";
	r->crc = get_le32(h);
	r->len = get_le32(h + 4);
	r->type = h[8];
	if (h[9] || h[10] || h[11])
		return "reserved bytes not zero";
	if (r->type < WAL_REC_CRC || r->type > WAL_REC_SNAPSHOT)
		return "bad record type";
	if (r->len > WAL_MAX_PAYLOAD ||
	    (r->type == WAL_REC_CRC && r->len != 4) ||
	    (r->type == WAL_REC_METADATA && r->len > WAL_MAX_META) ||
	    (r->type == WAL_REC_ENTRY && r->len < WAL_ENTRY_HEADER) ||
	    (r->type == WAL_REC_HARD_STATE && r->len != 24) ||
	    (r->type == WAL_REC_SNAPSHOT && r->len != 16))
		return "bad record length";
	r->size = wal_rec_size(r->len);
	if (size - off < r->size)
		return "record cut short";
	for (size_t i = WAL_REC_HEADER + r->len; i < r->size; i++)
		if (h[i])
			return "padding not zero";
	r->pl = h + WAL_REC_HEADER;
	return NULL;
}

static const char *wal_rec_check(const uint8_t *p, size_t size, size_t off,
				 uint32_t seed, struct wal_rec *r)
{
	const char *why = wal_rec_shape(p, size, off, r);

	if (why)
		return why;
	if (r->type == WAL_REC_CRC)
		seed = get_le32(r->pl);
	if (crc32c(seed, p + off + 4, 8 + r->len) != r->crc)
		return "crc mismatch";
	return NULL;
}

/* Is there a record after the bad one at off that verifies against the
 * chain? Then the bad record is damage in the middle, not a torn tail.
 * Candidates: the record right after any plausible record r >= off,
 * chained from r's crc (or, for r == off, from what r's crc should have
 * been); and any plausible record chained from the crc field at off (the
 * case of a damaged length at off). */
static bool wal_valid_after(const uint8_t *p, size_t size, size_t off,
			    uint32_t chain)
{
	struct wal_rec r, n;
	uint32_t bad_crc = size - off >= 4 ? get_le32(p + off) : 0;

	for (size_t q = off; q < size && size - q >= WAL_REC_HEADER; q += 8) {
		if (q > off && !wal_rec_check(p, size, q, bad_crc, &n))
			return true;
		if (wal_rec_shape(p, size, q, &r) ||
		    size - q - r.size < WAL_REC_HEADER)
			continue;
		if (!wal_rec_check(p, size, q + r.size, r.crc, &n))
			return true;
		if (q == off &&
		    !wal_rec_check(p, size, q + r.size,
				   crc32c(chain, p + q + 4, 8 + r.len), &n))
			return true;
	}
	return false;
}

/* Give back the pages of [from, to) of a mapped segment: replay reads a
 * segment once, front to back, so without this a 64 MiB segment would be
 * resident all at once while it is read (RSS at restart). */
static void wal_drop_pages(const uint8_t *base, size_t from, size_t to)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	from = (from + pg - 1) & ~(pg - 1);
	to &= ~(pg - 1);
	if (to > from)
		madvise((void *)(base + from), to - from, MADV_DONTNEED);
}

#define WAL_DROP_STEP (4u << 20)

/* Is [off, size) of a mapped segment all zeros? Pages are given back as
 * they are checked. */
static bool wal_all_zero(const uint8_t *base, size_t off, size_t size)
{
	static const uint8_t zeros[4096];
	size_t dropped = off;

	for (size_t n; off < size; off += n) {
		n = size - off < sizeof(zeros) ? size - off : sizeof(zeros);
		if (memcmp(base + off, zeros, n))
			return false;
		if (off - dropped >= WAL_DROP_STEP) {
			wal_drop_pages(base, dropped, off);
			dropped = off;
		}
	}
	return true;
}

/* Bytes from off up to the last non-zero byte: what a repair discards. */
static size_t wal_dirty_len(const uint8_t *p, size_t size, size_t off)
{
	while (size > off && !p[size - 1])
		size--;
	return size - off;
}

static int wal_fail(struct wal_replay *rp, const char *path, size_t off,
		    const char *why)
{
	snprintf(rp->error, sizeof(rp->error), "wal: %s: offset %zu: %s", path,
		 off, why);
	log_error("%s", rp->error);
	return -EBADMSG;
}

static int wal_apply_entry(struct wal_reader *rd, const struct wal_rec *r,
			   size_t off)
{
	struct wal_replay *rp = rd->rp;
	struct wal_entry e = {get_le64(r->pl), get_le64(r->pl + 8),
			      get_le32(r->pl + 16), NULL,
			      r->len - WAL_ENTRY_HEADER};
	size_t live = rp->n_entries - rd->head;

	if (live) {
		uint64_t first = rp->entries[rd->head].index;
		uint64_t last = rp->entries[rp->n_entries - 1].index;

		if (e.index > last + 1)
			return wal_fail(rp, rd->path, off, "entry index gap");
		/* Raft overwrite: index i replaces i and all after it. */
		if (e.index <= last)
			rp->n_entries = rd->head +
					(e.index > first ? e.index - first : 0);
	}
	if (rp->n_entries == rd->cap) {
		size_t n = rd->cap ? 2 * rd->cap : 256;
		struct wal_entry *ne = realloc(rp->entries, n * sizeof(*ne));

		if (!ne)
			return -ENOMEM;
		rp->entries = ne;
		rd->cap = n;
	}
	if (e.index <= rd->keep_after) {
		/* the caller's state machine holds it: index and term only */
		e.len = 0;
	} else if (e.len) {
		uint8_t *d = wal_arena_alloc(rp, e.len);

		if (!d)
			return -ENOMEM;
		memcpy(d, r->pl + WAL_ENTRY_HEADER, e.len);
		e.data = d;
	}
	rp->entries[rp->n_entries++] = e;
	return 0;
}

/* Drop live entries with index <= index. */
static void wal_drop_to(struct wal_reader *rd, uint64_t index)
{
	struct wal_replay *rp = rd->rp;

	while (rd->head < rp->n_entries && rp->entries[rd->head].index <= index)
		rd->head++;
}

static int wal_apply(struct wal_reader *rd, const struct wal_rec *r, size_t off)
{
	struct wal_replay *rp = rd->rp;

	switch (r->type) {
	case WAL_REC_CRC:
		return wal_fail(rp, rd->path, off, "CRC record inside segment");
	case WAL_REC_METADATA:
		free(rp->meta);
		rp->meta = malloc(r->len ? r->len : 1);
		if (!rp->meta)
			return -ENOMEM;
		memcpy(rp->meta, r->pl, r->len);
		rp->meta_len = r->len;
		return 0;
	case WAL_REC_ENTRY:
		return wal_apply_entry(rd, r, off);
	case WAL_REC_HARD_STATE:
		rp->hs = (struct wal_hard_state){get_le64(r->pl),
						 get_le64(r->pl + 8),
						 get_le64(r->pl + 16)};
		rp->has_hs = true;
		return 0;
	default: /* WAL_REC_SNAPSHOT */
		rp->snap_index = get_le64(r->pl);
		rp->snap_term = get_le64(r->pl + 8);
		wal_drop_to(rd, rp->snap_index);
		return 0;
	}
}

/* Replay one segment mapped at p. *end: where valid records stop. */
static int wal_read_seg(struct wal_reader *rd, const uint8_t *p, size_t size,
			bool last, size_t *end)
{
	struct wal_rec r;
	const char *why;
	size_t off = 0, dropped = 0;
	int err;

	why = wal_rec_shape(p, size, 0, &r);
	if (!why && r.type != WAL_REC_CRC)
		why = "segment does not start with a CRC record";
	if (!why && rd->have_crc && get_le32(r.pl) != rd->crc)
		why = "CRC record does not match the previous segment";
	if (!why)
		why = wal_rec_check(p, size, 0, 0, &r);
	if (why) /* invariant 2: a final-named head is never torn */
		return wal_fail(rd->rp, rd->path, 0, why);
	rd->crc = r.crc;
	rd->have_crc = true;
	for (off = r.size; off < size; off += r.size) {
		why = wal_rec_check(p, size, off, rd->crc, &r);
		if (why)
			break;
		err = wal_apply(rd, &r, off);
		if (err)
			return err;
		rd->crc = r.crc;
		if (off - dropped >= WAL_DROP_STEP) {
			/* records are copied out: their pages can go */
			wal_drop_pages(p, dropped, off);
			dropped = off;
		}
	}
	*end = off;
	if (off == size || (last && wal_all_zero(p, off, size)))
		return 0;
	if (!last || wal_valid_after(p, size, off, rd->crc))
		return wal_fail(rd->rp, rd->path, off, why);
	log_warn("wal: %s: torn write at offset %zu (%s): truncating it away "
		 "(%zu bytes)",
		 rd->path, off, why, wal_dirty_len(p, size, off));
	return 1; /* caller truncates */
}

static int wal_name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int wal_name_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return (n == WAL_NAME_LEN && !strcmp(d->d_name + 33, ".wal")) ||
	       (n == WAL_NAME_LEN + 4 && !strcmp(d->d_name + 33, ".wal.tmp"));
}

/* List segments into w->segs, sorted, and remove stale *.tmp files. A
 * break in the sequence means older segments whose deletion was not yet
 * durable: only the run after the last break is the log. */
static int wal_list(struct wal *w)
{
	struct dirent **names;
	int n = scandir(w->dir, &names, wal_name_filter, wal_name_cmp);
	int err = 0;

	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		unsigned long long seq, first;
		char *path;

		if (strlen(nm) != WAL_NAME_LEN) {
			if (asprintf(&path, "%s/%s", w->dir, nm) >= 0) {
				log_warn("wal: removing unfinished %s", path);
				unlink(path);
				free(path);
			}
			continue;
		}
		if (err || sscanf(nm, "%16llx-%16llx.wal", &seq, &first) != 2)
			continue;
		if (w->nsegs && w->segs[w->nsegs - 1].seq + 1 != seq) {
			log_warn("wal: %s: sequence break before %s, ignoring "
				 "%zu older segment(s)",
				 w->dir, nm, w->nsegs);
			w->nsegs = 0;
		}
		err = wal_push_seg(w, seq, first);
	}
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return err;
}

static int wal_map(const char *path, bool last, int *fdp, uint8_t **pp,
		   size_t *sizep)
{
	struct stat st;
	int fd = open(path, (last ? O_RDWR : O_RDONLY) | O_CLOEXEC);

	*pp = NULL;
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		goto fail;
	*sizep = (size_t)st.st_size;
	if (st.st_size > 0) {
		*pp = mmap(NULL, *sizep, PROT_READ, MAP_PRIVATE, fd, 0);
		if (*pp == MAP_FAILED) {
			*pp = NULL;
			goto fail;
		}
	}
	*fdp = fd;
	return 0;
fail:
	close(fd);
	return -errno;
}

/* Cut a torn tail off and restore the zeroed preallocation. */
static int wal_repair(int fd, size_t end, uint64_t seg_size)
{
	if (ftruncate(fd, (off_t)end) < 0)
		return -errno;
	if (seg_size > end) {
		int err = posix_fallocate(fd, 0, (off_t)seg_size);

		if (err)
			return -err;
	}
	return fsync(fd) < 0 ? -errno : 0;
}

static int wal_replay_all(struct wal *w, struct wal_replay *rp,
			  uint64_t keep_after)
{
	struct wal_reader rd = {.rp = rp, .keep_after = keep_after};
	int err = 0;

	for (size_t i = 0; i < w->nsegs && !err; i++) {
		bool last = i + 1 == w->nsegs;
		char *path = wal_seg_path(w->dir, w->segs[i].seq,
					  w->segs[i].first_index, "");
		uint8_t *p = NULL;
		size_t size = 0, end = 0;
		int fd = -1;

		err = path ? wal_map(path, last, &fd, &p, &size) : -ENOMEM;
		if (!err) {
			rd.path = path;
			err = wal_read_seg(&rd, p, size, last, &end);
		}
		if (p)
			munmap(p, size);
		if (err == 1)
			err = wal_repair(fd, end, w->seg_size);
		if (!err && last) {
			w->fd = fd;
			w->fd_off = end;
			w->enc_off = end;
			fd = -1;
		}
		if (fd >= 0)
			close(fd);
		if (err && err != -EBADMSG && !rp->error[0])
			snprintf(rp->error, sizeof(rp->error), "wal: %s: %s",
				 path ? path : w->dir, strerrordesc_np(-err));
		free(path);
	}
	if (err)
		return err;
	wal_drop_to(&rd, rp->snap_index);
	rp->n_entries -= rd.head;
	memmove(rp->entries, rp->entries + rd.head,
		rp->n_entries * sizeof(*rp->entries));
	w->enc_crc = rd.crc;
	return 0;
}

/* Load the recovered state into the encoder, so appends continue. */
static int wal_adopt(struct wal *w, const struct wal_replay *rp)
{
	w->meta_len = rp->meta_len;
	w->meta = malloc(rp->meta_len ? rp->meta_len : 1);
	if (!w->meta)
		return -ENOMEM;
	if (rp->meta_len)
		memcpy(w->meta, rp->meta, rp->meta_len);
	w->hs = rp->hs;
	w->has_hs = rp->has_hs;
	w->snap_index = w->durable_snap = rp->snap_index;
	w->snap_term = rp->snap_term;
	w->has_snap = rp->snap_index || rp->snap_term;
	w->last_index = rp->n_entries ? rp->entries[rp->n_entries - 1].index
				      : rp->snap_index;
	w->enc_seq = w->segs[w->nsegs - 1].seq;
	return 0;
}

/* A brand-new WAL: segment 0 holding CRC(0) and the metadata. */
static int wal_create(struct wal *w, const void *meta, size_t meta_len,
		      struct wal_replay *rp)
{
	int err;

	w->meta = malloc(meta_len ? meta_len : 1);
	rp->meta = malloc(meta_len ? meta_len : 1);
	if (!w->meta || !rp->meta)
		return -ENOMEM;
	if (meta_len) {
		memcpy(w->meta, meta, meta_len);
		memcpy(rp->meta, meta, meta_len);
	}
	w->meta_len = rp->meta_len = meta_len;
	err = wal_cut(w, 0, 0);
	if (!err)
		err = wal_write_inline(w);
	if (err)
		snprintf(rp->error, sizeof(rp->error),
			 "wal: %s: creating segment 0: %s", w->dir,
			 strerrordesc_np(-err));
	return err;
}

int wal_open(const char *dir, const void *meta, size_t meta_len,
	     struct wal **out, struct wal_replay *rp)
{
	return wal_open_after(dir, meta, meta_len, 0, out, rp);
}

int wal_open_after(const char *dir, const void *meta, size_t meta_len,
		   uint64_t keep_after, struct wal **out,
		   struct wal_replay *rp)
{
	struct wal *w;
	int err;

	if (!rp)
		return -EINVAL;
	memset(rp, 0, sizeof(*rp));
	if (!dir || !out || meta_len > WAL_MAX_META || (meta_len && !meta)) {
		snprintf(rp->error, sizeof(rp->error), "wal: bad arguments");
		return -EINVAL;
	}
	w = calloc(1, sizeof(*w));
	if (!w || !(w->dir = strdup(dir))) {
		err = -ENOMEM;
		goto fail;
	}
	w->fd = -1;
	w->seg_size = WAL_SEGMENT_SIZE;
	err = wal_mkdir_p(dir);
	if (!err)
		err = wal_list(w);
	if (err) {
		snprintf(rp->error, sizeof(rp->error), "wal: %s: %s", dir,
			 strerrordesc_np(-err));
		goto fail;
	}
	if (w->nsegs == 0) {
		err = wal_create(w, meta, meta_len, rp);
	} else {
		err = wal_replay_all(w, rp, keep_after);
		if (!err)
			err = wal_adopt(w, rp);
	}
	if (err)
		goto fail;
	*out = w;
	return 0;
fail:
	if (err == -ENOMEM && !rp->error[0])
		snprintf(rp->error, sizeof(rp->error), "wal: out of memory");
	wal_replay_free(rp);
	if (w)
		w->busy = false;
	wal_close(w);
	return err;
}

int wal_close(struct wal *w)
{
	if (!w)
		return 0;
	if (w->busy)
		return -EBUSY;
	if (w->fd >= 0)
		close(w->fd);
	wal_batch_free(&w->pending);
	wal_batch_free(&w->inflight);
	free(w->segs);
	free(w->meta);
	free(w->dir);
	free(w);
	return 0;
}

void wal_set_segment_size(struct wal *w, uint64_t bytes)
{
	w->seg_size =
		bytes < WAL_MIN_SEGMENT_SIZE ? WAL_MIN_SEGMENT_SIZE : bytes;
}

int wal_release_to(struct wal *w, uint64_t index)
{
	size_t k = 0;
	int err = 0;

	wal_check(w);
	/* Only behind a durable snapshot marker: never leave a hole. */
	if (index > w->durable_snap)
		index = w->durable_snap;
	/* Segment k holds only entries below the next one's first index. */
	while (k + 1 < w->nsegs && w->segs[k + 1].first_index <= index + 1) {
		char *path = wal_seg_path(w->dir, w->segs[k].seq,
					  w->segs[k].first_index, "");

		if (!path) {
			err = -ENOMEM;
			break;
		}
		if (unlink(path) < 0 && errno != ENOENT) {
			err = -errno;
			free(path);
			break;
		}
		free(path);
		k++;
	}
	memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof(*w->segs));
	w->nsegs -= k;
	return err ? err : (int)k;
}

uint64_t wal_last_index(const struct wal *w)
{
	return w->last_index;
}

int wal_error(const struct wal *w)
{
	return w->failed;
}

void wal_inject_error(struct wal *w, int err)
{
	w->inject = err;
}
