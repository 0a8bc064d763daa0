/* server_snap: snapshots between members — the state machine image a
 * leader streams to a follower behind its compacted log, and how the
 * follower installs it (issue 5).
 *
 * Leader (server_snap_send, for each RAFT_MSG_SNAP the Ready loop hands
 * over): commit the engine batch, open an engine read view (a consistent
 * snapshot of the state at the applied index, cheap on every engine, and
 * undisturbed by later commits), and stream the image encoded from that
 * view, PEER_SNAP_CHUNK bytes at a time as the snapshot stream drains
 * (peer_snapshot_send's read callback, on the loop). No temporary copy is
 * written on the leader; each transfer holds one view (at most one per
 * follower: the transport refuses a second one with -EBUSY) and closes it
 * when done. Then raft_report_snapshot(to, index, or 0 on failure). A
 * follower that got an image is not sent another for two election
 * timeouts (it builds and installs the first meanwhile, and until then
 * its raft rejects appends, so the leader's raft asks again); such a
 * request is answered with raft_report_snapshot(to, 0) at once.
 *
 * The image is engine-neutral (buckets of key/value pairs), so members
 * running different engines can exchange images. Integers big-endian:
 *
 *   OFFSET  SIZE  DESCRIPTION
 *   0       8     magic "CAIRNSN1"
 *   8       8     index: raft index of the last entry in the image
 *   16      8     term of that entry
 *   24      ...   records, then the end record:
 *     pair:   u8 1, u8 B (1..255), B bytes bucket name,
 *             u32 K (1..SNAP_MAX_KEY), K bytes key,
 *             u32 V (0..SNAP_MAX_VALUE), V bytes value
 *     end:    u8 0, u64 number of pairs; nothing may follow.
 * The transport checks length and CRC-32C of the whole stream; the
 * parser still checks every bound (a bad image is refused, never a crash).
 *
 * Follower: the transport stores a received image in a file and calls
 * on_snap. An image not past the commit index is dropped. Otherwise a
 * helper thread (BIO_QUEUE_SNAP) builds a new engine data file from it,
 * member/snap/<index %016x>.snap.db (etcd's name), synced. Then, when no
 * Ready is outstanding (server_snap_poll), it is installed:
 *
 *   1. WAL snapshot marker (index, term), fdatasync   <- commit point
 *   2. close MVCC's view and the engine; <idx>.snap.db -> db (rename;
 *      a directory engine: db -> db.old, new -> db, remove db.old)
 *   3. reopen the engine, mvcc_reload (same struct mvcc), check its
 *      consistent index is the image's
 *   4. applied index/term, raft_restore, on_restore hooks, Ready
 *
 * Crash at any point (invariant 3): before 1, the old db and the old WAL
 * restart as before (the unused .snap.db is deleted at start); after 1,
 * the WAL says the state is at index but the db (old, or missing between
 * the two renames) holds less: server_snap_recover() at start finds
 * <index>.snap.db and does step 2 again. After 2 the db holds index.
 *
 * Invariants:
 *  1. The image of a transfer is read from one view opened right after a
 *     commit at the applied index: its meta.consistent_index is the
 *     image's index (checked before sending).
 *  2. At most one image is being built, and at most one built image
 *     waits for installation (the newest; an older one is deleted).
 *  3. A WAL marker at index N is made durable only once N.snap.db is
 *     complete and synced, and before db is replaced.
 *  4. No view of the old engine survives its close: install ends every
 *     transfer in flight first (their reads then fail with -ECANCELED).
 *  5. Objects a callback can still reach after server_snap_close (a
 *     transfer's read/done, a build job's done) are orphaned, not freed;
 *     their last callback frees them.
 */
#include "core/server_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/config.h"
#include "core/errors.h"
#include "core/mvcc/mvcc.h"
#include "core/raft/raft.h"
#include "core/util/bio.h"
#include "core/util/fdio.h"
#include "core/util/log.h"
#include "engines/engine.h"
#include "net/peer.h"
#include "raftlog/wal.h"

#define SNAP_MAGIC "CAIRNSN1"
#define SNAP_HDR 24
#define SNAP_MAX_NAME 255
#define SNAP_MAX_KEY (1u << 20)
#define SNAP_MAX_VALUE (64u << 20)
#define SNAP_BUILD_BATCH (8u << 20) /* bytes put per engine commit */
#define SNAP_REC_PAIR 1
#define SNAP_REC_END 0

/* etcd's buckets: every one a member keeps travels in the image. */
static const char *const snap_buckets[] = {
	"key",	   "meta",  "lease", "members",	  "members_removed",
	"cluster", "alarm", "auth",  "authUsers", "authRoles",
};
#define SNAP_NBUCKETS (sizeof(snap_buckets) / sizeof(snap_buckets[0]))

struct snap_out;
struct snap_build;

/* Followers that received an image lately: it takes them a moment to
 * build and install it, and meanwhile their raft still rejects appends,
 * so the leader's raft asks for another snapshot; it waits this long
 * (in election timeouts) before sending one again. */
#define SNAP_RECENT 8
#define SNAP_RESEND_ELECTIONS 2

struct server_snap {
	struct server *s;
	struct snap_out *outs; /* transfers in flight */
	struct {
		uint64_t to, ms;
	} recent[SNAP_RECENT];	  /* last successful sends */
	struct snap_build *build; /* being built on a helper (inv. 2) */
	struct snap_build *ready; /* built, waiting for server_snap_poll */
	struct {
		void (*fn)(void *arg);
		void *arg;
	} hooks[SERVER_MAX_HOOKS];
	size_t n_hooks;
};

static void put_be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- files ------------------------------------------------------------- */

/* sqlite's side files of the db at path; absent is fine. */
static void rm_side_files(const char *path)
{
	char side[4620]; /* path (up to 4608) and a suffix */

	snprintf(side, sizeof(side), "%s-wal", path);
	unlink(side);
	snprintf(side, sizeof(side), "%s-shm", path);
	unlink(side);
}

/* An engine's data at path and sqlite's side files. */
static int rm_db(const char *path)
{
	rm_side_files(path);
	return fd_rm_tree(path);
}

static void snap_db_path(const struct server *s, uint64_t index, char *out,
			 size_t cap)
{
	snprintf(out, cap, "%s/snap/%016llx.snap.db", s->member_dir,
		 (unsigned long long)index);
}

/* TEST-ONLY named failpoints: with CAIRN_FAILPOINT=name in the
 * environment, the process exits at that point as if it crashed (the
 * crash tests of an install: snap-before-marker, snap-after-marker,
 * snap-mid-swap, snap-swapped). */
static void failpoint(const char *name)
{
	const char *fp = getenv("CAIRN_FAILPOINT");

	if (fp && strcmp(fp, name) == 0) {
		log_error("failpoint %s: exiting", name);
		_exit(99);
	}
}

/* Put the engine data at src in the place of dst (both in one directory,
 * engine closed). A file replaces a file atomically; sqlite's side files
 * of the old db must not meet the new one. A directory engine needs two
 * renames: a crash between them leaves no dst, and the WAL marker
 * (written before) makes server_snap_recover redo this from src. */
static int replace_db(const char *src, const char *dst, const char *dir)
{
	char side[4300];
	struct stat st;
	int err;

	rm_side_files(dst);
	if (lstat(dst, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(side, sizeof(side), "%s.old", dst);
		if ((err = fd_rm_tree(side)) < 0)
			return err;
		if (rename(dst, side) < 0)
			return -errno;
		failpoint("snap-mid-swap");
		if (rename(src, dst) < 0)
			return -errno;
		if ((err = fd_fsync_dir(dir)) < 0)
			return err;
		return fd_rm_tree(side);
	}
	if (rename(src, dst) < 0)
		return -errno;
	return fd_fsync_dir(dir);
}

/* ---- leader: one transfer, encoded from a view -------------------------- */

struct snap_out {
	struct server_snap *ss; /* NULL: orphaned (inv. 5) or ended */
	uint64_t to, index, term;
	struct engine_handle *h;
	struct engine_view *view;
	struct engine_iter *it;
	size_t bucket; /* the bucket `it` scans, or the next to open */
	uint64_t count;
	bool header_done, end_done;
	uint8_t *stage; /* encoded bytes not yet handed to the transport */
	size_t slen, soff, scap;
	uint64_t *ids; /* meta's voters, then learners */
	struct snap_out *next;
};

static void out_close_view(struct snap_out *o)
{
	if (o->it)
		engine_iter_close(o->h, o->it);
	o->it = NULL;
	if (o->view)
		engine_view_close(o->h, o->view);
	o->view = NULL;
}

static int stage_reserve(struct snap_out *o, size_t n)
{
	uint8_t *p;

	if (n <= o->scap)
		return 0;
	if (!(p = realloc(o->stage, n)))
		return -ENOMEM;
	o->stage = p;
	o->scap = n;
	return 0;
}

static int stage_pair(struct snap_out *o, const char *b,
		      const struct engine_slice *k,
		      const struct engine_slice *v)
{
	size_t bl = strlen(b), n = 2 + bl + 4 + k->n + 4 + v->n;
	uint8_t *p;
	int err;

	if (k->n == 0 || k->n > SNAP_MAX_KEY || v->n > SNAP_MAX_VALUE)
		return CAIRN_ECORRUPT;
	if ((err = stage_reserve(o, n)) < 0)
		return err;
	p = o->stage;
	*p++ = SNAP_REC_PAIR;
	*p++ = (uint8_t)bl;
	memcpy(p, b, bl);
	p += bl;
	put_be(p, k->n, 4);
	memcpy(p + 4, k->p, k->n);
	p += 4 + k->n;
	put_be(p, v->n, 4);
	if (v->n)
		memcpy(p + 4, v->p, v->n);
	o->slen = n;
	o->count++;
	return 0;
}

/* Fill the stage with the next piece of the image: 1, or 0 at the end,
 * or an error. */
static int stage_next(struct snap_out *o)
{
	struct engine_slice k, v;
	int rc;

	o->slen = o->soff = 0;
	if (!o->header_done) {
		if ((rc = stage_reserve(o, SNAP_HDR)) < 0)
			return rc;
		memcpy(o->stage, SNAP_MAGIC, 8);
		put_be(o->stage + 8, o->index, 8);
		put_be(o->stage + 16, o->term, 8);
		o->slen = SNAP_HDR;
		o->header_done = true;
		return 1;
	}
	while (o->bucket < SNAP_NBUCKETS) {
		if (!o->it) {
			rc = engine_iter_open(o->h, o->view,
					      snap_buckets[o->bucket], NULL, 0,
					      NULL, 0, false, &o->it);
			if (rc == -ENOENT) { /* absent bucket: nothing in it */
				o->bucket++;
				continue;
			}
			if (rc < 0)
				return rc;
		}
		rc = engine_iter_next(o->h, o->it, &k, &v);
		if (rc < 0)
			return rc;
		if (rc == 1) {
			rc = stage_pair(o, snap_buckets[o->bucket], &k, &v);
			return rc < 0 ? rc : 1;
		}
		engine_iter_close(o->h, o->it);
		o->it = NULL;
		o->bucket++;
	}
	if (o->end_done)
		return 0;
	if ((rc = stage_reserve(o, 9)) < 0)
		return rc;
	o->stage[0] = SNAP_REC_END;
	put_be(o->stage + 1, o->count, 8);
	o->slen = 9;
	o->end_done = true;
	return 1;
}

static ssize_t out_read(void *arg, void *buf, size_t n)
{
	struct snap_out *o = arg;
	size_t done = 0;

	if (!o->view)
		return -ECANCELED; /* ended by install or close (inv. 4) */
	while (done < n) {
		size_t c;

		if (o->soff == o->slen) {
			int rc = stage_next(o);

			if (rc < 0)
				return rc;
			if (rc == 0)
				break;
		}
		c = o->slen - o->soff;
		if (c > n - done)
			c = n - done;
		memcpy((uint8_t *)buf + done, o->stage + o->soff, c);
		o->soff += c;
		done += c;
	}
	return (ssize_t)done;
}

static void out_free(struct snap_out *o)
{
	out_close_view(o);
	free(o->stage);
	free(o->ids);
	free(o);
}

static void out_unlink(struct server_snap *ss, struct snap_out *o)
{
	for (struct snap_out **p = &ss->outs; *p; p = &(*p)->next)
		if (*p == o) {
			*p = o->next;
			break;
		}
}

static uint64_t *recent_slot(struct server_snap *ss, uint64_t to)
{
	size_t oldest = 0;

	for (size_t i = 0; i < SNAP_RECENT; i++) {
		if (ss->recent[i].to == to)
			return &ss->recent[i].ms;
		if (ss->recent[i].ms < ss->recent[oldest].ms)
			oldest = i;
	}
	ss->recent[oldest].to = to;
	ss->recent[oldest].ms = 0;
	return &ss->recent[oldest].ms;
}

/* Sent `to` an image so lately that it is probably still installing it. */
static bool sent_lately(struct server_snap *ss, uint64_t to)
{
	uint64_t ms = *recent_slot(ss, to);

	return ms && server_now_ms() - ms <
			     SNAP_RESEND_ELECTIONS * ss->s->cfg->election_ms;
}

static void out_done(void *arg, int err)
{
	struct snap_out *o = arg;
	struct server_snap *ss = o->ss;

	if (ss) {
		struct server *s = ss->s;

		out_unlink(ss, o);
		if (err < 0)
			log_warn(
				"snapshot at index %llu to member %llx failed: "
				"%s",
				(unsigned long long)o->index,
				(unsigned long long)o->to, cairn_strerror(err));
		else
			log_info("sent snapshot at index %llu (%llu pairs) to "
				 "member %llx",
				 (unsigned long long)o->index,
				 (unsigned long long)o->count,
				 (unsigned long long)o->to);
		if (err == 0)
			*recent_slot(ss, o->to) = server_now_ms();
		/* either way replication to `to` resumes by probing */
		raft_report_snapshot(s->raft, o->to, err < 0 ? 0 : o->index);
		server_schedule_ready(s);
	}
	out_free(o);
}

/* The membership as of the applied index (raft's applied configuration),
 * into o->ids and meta. */
static int out_conf(struct server *s, struct snap_out *o,
		    struct peer_snap_meta *meta)
{
	size_t nv = 0, nl = 0, cap;

	raft_conf(s->raft, NULL, &nv, NULL, &nl, 0);
	cap = nv > nl ? nv : nl;
	if (!(o->ids = calloc(2 * cap + 1, sizeof(uint64_t))))
		return -ENOMEM;
	raft_conf(s->raft, o->ids, &nv, o->ids + cap, &nl, cap);
	meta->voters = o->ids;
	meta->n_voters = nv;
	meta->learners = o->ids + cap;
	meta->n_learners = nl;
	return 0;
}

/* Open the view the image is read from (inv. 1). */
static int out_open_view(struct server *s, struct snap_out *o)
{
	static const char ci_key[] = "consistent_index";
	struct engine_slice v;
	int err;

	/* the view must hold every applied entry */
	if ((err = mvcc_commit(s->mvcc, false)) < 0) {
		server_fail_fatal(s, err, "engine commit");
		return err;
	}
	s->uncommitted = 0;
	o->h = &s->eng;
	if ((err = engine_view_open(o->h, &o->view)) < 0)
		return err;
	err = engine_get(o->h, o->view, MVCC_BUCKET_META, ci_key,
			 sizeof(ci_key) - 1, &v);
	if (err == 0 && (v.n != 8 || get_be(v.p, 8) != s->applied_index))
		err = CAIRN_ECORRUPT;
	return err;
}

void server_snap_send(struct server *s, const struct raft_msg *m)
{
	struct server_snap *ss = s->snap;
	struct peer_snap_meta meta = {0};
	struct snap_out *o;
	int err = -ENOMEM;

	if (!ss || s->stopping || s->fatal || !s->peers)
		return;
	for (o = ss->outs; o; o = o->next)
		if (o->to == m->to)
			return; /* its end reports to raft */
	if (sent_lately(ss, m->to)) {
		/* not a failure of the link: probe again later */
		raft_report_snapshot(s->raft, m->to, 0);
		server_schedule_ready(s);
		return;
	}
	if (!(o = calloc(1, sizeof(*o))))
		goto fail;
	o->to = m->to;
	o->index = s->applied_index;
	o->term = s->applied_term;
	if ((err = out_open_view(s, o)) < 0 ||
	    (err = out_conf(s, o, &meta)) < 0)
		goto fail;
	meta.index = o->index;
	meta.term = o->term;
	meta.raft_term = raft_term(s->raft);
	{
		uint64_t size = 0, in_use = 0;

		if (engine_size(&s->eng, &size, &in_use) == 0)
			meta.size = in_use; /* a hint only */
	}
	err = peer_snapshot_send(s->peers, o->to, &meta, out_read, o, out_done,
				 o);
	if (err < 0)
		goto fail;
	o->ss = ss;
	o->next = ss->outs;
	ss->outs = o;
	log_info("sending snapshot at index %llu (term %llu) to member %llx",
		 (unsigned long long)o->index, (unsigned long long)o->term,
		 (unsigned long long)o->to);
	return;
fail:
	log_warn("cannot send a snapshot to member %llx: %s",
		 (unsigned long long)m->to, cairn_strerror(err));
	if (o)
		out_free(o);
	if (err != -EBUSY) {
		raft_report_snapshot(s->raft, m->to, 0);
		server_schedule_ready(s);
	}
}

/* End every transfer (inv. 4): their done callbacks come later from the
 * transport and only free them. */
static void outs_cancel(struct server_snap *ss)
{
	struct snap_out *o;

	while ((o = ss->outs)) {
		ss->outs = o->next;
		out_close_view(o);
		o->ss = NULL;
		raft_report_snapshot(ss->s->raft, o->to, 0);
	}
}

/* ---- follower: building the engine data from a received image ---------- */

struct snap_build {
	struct server_snap *ss; /* NULL: orphaned (inv. 5) */
	struct bio_job job;
	uint64_t from, index, term, raft_term;
	uint64_t *ids; /* voters then learners */
	size_t n_voters, n_learners;
	const char *backend;
	struct engine_config ecfg;
	char in[4200];	/* the received image, unlinked by the job */
	char out[4200]; /* <index>.snap.db */
	char dir[4200];
};

static void build_free(struct snap_build *b, bool remove_out)
{
	if (remove_out && b->out[0] && rm_db(b->out) < 0)
		log_warn("cannot remove %s", b->out);
	free(b->ids);
	free(b);
}

static int read_exact(FILE *f, void *buf, size_t n)
{
	if (n && fread(buf, 1, n, f) != n)
		return CAIRN_ECORRUPT; /* short: truncated image */
	return 0;
}

/* One pair record (its kind byte already read) into the engine batch. */
static int build_pair(FILE *f, struct engine_handle *h, uint8_t **buf,
		      size_t *cap, size_t *bytes)
{
	uint8_t hdr[4];
	char name[SNAP_MAX_NAME + 1];
	size_t bl, kl, vl;
	int err;

	if ((err = read_exact(f, hdr, 1)) < 0)
		return err;
	bl = hdr[0];
	if (bl == 0 || (err = read_exact(f, name, bl)) < 0)
		return CAIRN_ECORRUPT;
	name[bl] = '\0';
	if (strlen(name) != bl || (err = read_exact(f, hdr, 4)) < 0)
		return CAIRN_ECORRUPT;
	kl = get_be(hdr, 4);
	if (kl == 0 || kl > SNAP_MAX_KEY)
		return CAIRN_ECORRUPT;
	if (kl + 4 + SNAP_MAX_VALUE > *cap) {
		uint8_t *p = realloc(*buf, kl + 4 + SNAP_MAX_VALUE);

		if (!p)
			return -ENOMEM;
		*buf = p;
		*cap = kl + 4 + SNAP_MAX_VALUE;
	}
	if ((err = read_exact(f, *buf, kl + 4)) < 0)
		return err;
	vl = get_be(*buf + kl, 4);
	if (vl > SNAP_MAX_VALUE || (err = read_exact(f, *buf + kl, vl)) < 0)
		return CAIRN_ECORRUPT;
	if ((err = engine_bucket_create(h, name)) < 0)
		return err;
	*bytes += kl + vl;
	return engine_put(h, name, *buf, kl, *buf + kl, vl);
}

/* The image in f into the open engine h: header checked against b. */
static int build_fill(struct snap_build *b, FILE *f, struct engine_handle *h)
{
	uint8_t hdr[SNAP_HDR], *buf = NULL;
	size_t cap = 0, bytes = 0;
	uint64_t count = 0;
	int err, kind;

	if ((err = read_exact(f, hdr, SNAP_HDR)) < 0)
		return err;
	if (memcmp(hdr, SNAP_MAGIC, 8) || get_be(hdr + 8, 8) != b->index ||
	    get_be(hdr + 16, 8) != b->term)
		return CAIRN_ECORRUPT;
	for (size_t i = 0; i < SNAP_NBUCKETS; i++)
		if ((err = engine_bucket_create(h, snap_buckets[i])) < 0)
			return err;
	while ((kind = fgetc(f)) == SNAP_REC_PAIR) {
		if ((err = build_pair(f, h, &buf, &cap, &bytes)) < 0)
			break;
		count++;
		if (bytes >= SNAP_BUILD_BATCH) { /* bound the batch's memory */
			if ((err = engine_commit(h, false)) < 0)
				break;
			bytes = 0;
		}
	}
	free(buf);
	if (err < 0)
		return err;
	if (kind != SNAP_REC_END || read_exact(f, hdr, 8) < 0 ||
	    get_be(hdr, 8) != count || fgetc(f) != EOF)
		return CAIRN_ECORRUPT;
	return engine_commit(h, true);
}

/* Only the data file moves into place: a sqlite WAL left beside it
 * (its close normally checkpoints and removes it) would be lost. */
static int side_files_empty(const char *out)
{
	char side[4300];
	struct stat st;

	snprintf(side, sizeof(side), "%s-wal", out);
	if (stat(side, &st) == 0 && st.st_size > 0) {
		log_warn("snapshot: %s was not checkpointed", side);
		return -EIO;
	}
	return 0;
}

/* Helper thread: touches only b and the files it names. */
static void build_work(struct bio_job *j)
{
	struct snap_build *b = j->data;
	struct engine_handle h = {0};
	FILE *f = NULL;
	int err;

	if ((err = rm_db(b->out)) < 0)
		goto out;
	if (!(f = fopen(b->in, "rb"))) {
		err = -errno;
		goto out;
	}
	if ((err = engine_open(b->backend, b->out, &b->ecfg, &h)) < 0)
		goto out;
	err = build_fill(b, f, &h);
	engine_close(&h);
	if (err == 0)
		err = side_files_empty(b->out);
	if (err == 0)
		err = fd_fsync_dir(b->dir);
out:
	if (f)
		fclose(f);
	unlink(b->in);
	if (err < 0)
		rm_db(b->out);
	j->status = err;
}

static void install(struct server_snap *ss);

static void build_done(struct bio_job *j)
{
	struct snap_build *b = j->data;
	struct server_snap *ss = b->ss;

	if (!ss) { /* orphaned: the server is closing */
		build_free(b, true);
		return;
	}
	ss->build = NULL;
	if (j->status < 0) {
		log_warn("snapshot at index %llu from member %llx refused: %s",
			 (unsigned long long)b->index,
			 (unsigned long long)b->from,
			 cairn_strerror(j->status));
		build_free(b, false);
		return;
	}
	if (ss->ready) /* inv. 2: keep the newest */
		build_free(ss->ready, true);
	ss->ready = b;
	server_snap_poll(ss->s);
}

static int build_start(struct server_snap *ss, uint64_t from,
		       const struct peer_snap_meta *meta, const char *path)
{
	struct server *s = ss->s;
	size_t n = meta->n_voters + meta->n_learners;
	struct snap_build *b = calloc(1, sizeof(*b));

	if (!b || !(b->ids = calloc(n + 1, sizeof(uint64_t)))) {
		free(b);
		return -ENOMEM;
	}
	if (meta->n_voters)
		memcpy(b->ids, meta->voters, meta->n_voters * sizeof(uint64_t));
	if (meta->n_learners)
		memcpy(b->ids + meta->n_voters, meta->learners,
		       meta->n_learners * sizeof(uint64_t));
	b->n_voters = meta->n_voters;
	b->n_learners = meta->n_learners;
	b->ss = ss;
	b->from = from;
	b->index = meta->index;
	b->term = meta->term;
	b->raft_term = meta->raft_term;
	b->backend = s->cfg->backend;
	b->ecfg.quota_bytes = s->cfg->quota_backend_bytes;
	snprintf(b->in, sizeof(b->in), "%s", path);
	snap_db_path(s, meta->index, b->out, sizeof(b->out));
	snprintf(b->dir, sizeof(b->dir), "%s/snap", s->member_dir);
	b->job.work = build_work;
	b->job.done = build_done;
	b->job.data = b;
	if (bio_submit(s->bio, BIO_QUEUE_SNAP, &b->job) < 0) {
		b->out[0] = '\0';
		build_free(b, false);
		return CAIRN_ESTOPPED;
	}
	ss->build = b;
	return 0;
}

static void on_snap(void *arg, uint64_t from, const struct peer_snap_meta *meta,
		    const char *path)
{
	struct server_snap *ss = arg;
	struct server *s = ss->s;
	const char *why = NULL;
	int err;

	if (s->stopping || s->fatal)
		why = "the server is stopping";
	else if (meta->index <= raft_commit_index(s->raft) ||
		 meta->index <= s->applied_index)
		why = "not past the commit index";
	else if (ss->build || (ss->ready && ss->ready->index >= meta->index))
		why = "another one is being installed";
	else if (meta->n_voters == 0 || meta->term == 0)
		why = "no membership or term";
	if (!why && (err = build_start(ss, from, meta, path)) < 0)
		why = cairn_strerror(err);
	if (why) {
		log_info("snapshot at index %llu from member %llx ignored: %s",
			 (unsigned long long)meta->index,
			 (unsigned long long)from, why);
		unlink(path);
	}
}

/* ---- the image alone (tests, tools) ------------------------------------ */

int server_snap_image_write(struct engine_handle *h, uint64_t index,
			    uint64_t term, int fd)
{
	struct snap_out o = {0};
	uint8_t *buf = malloc(PEER_SNAP_CHUNK);
	ssize_t n = 0;
	int err;

	if (!buf)
		return -ENOMEM;
	o.h = h;
	o.index = index;
	o.term = term;
	err = engine_view_open(h, &o.view);
	while (err == 0 && (n = out_read(&o, buf, PEER_SNAP_CHUNK)) > 0)
		err = fd_write_all(fd, buf, (size_t)n);
	if (err == 0 && n < 0)
		err = (int)n;
	out_close_view(&o);
	free(o.stage);
	free(buf);
	return err;
}

int server_snap_image_build(const char *image, const char *backend,
			    const char *out, uint64_t index, uint64_t term)
{
	struct snap_build b = {0};
	const char *slash = strrchr(out, '/');

	if (!slash || strlen(image) >= sizeof(b.in) ||
	    strlen(out) >= sizeof(b.out))
		return -EINVAL;
	b.index = index;
	b.term = term;
	b.backend = backend;
	snprintf(b.in, sizeof(b.in), "%s", image);
	snprintf(b.out, sizeof(b.out), "%s", out);
	snprintf(b.dir, sizeof(b.dir), "%.*s", (int)(slash - out), out);
	b.job.data = &b;
	build_work(&b.job);
	return b.job.status;
}

/* ---- follower: installing a built image -------------------------------- */

/* Steps 2 and 3 of the install: the engine data of index replaces db. */
static int swap_engine(struct server *s, uint64_t index)
{
	struct engine_config ecfg = {0};
	char src[4200], dst[4200], dir[4200];
	int err;

	snap_db_path(s, index, src, sizeof(src));
	snprintf(dst, sizeof(dst), "%s/snap/db", s->member_dir);
	snprintf(dir, sizeof(dir), "%s/snap", s->member_dir);
	mvcc_release_view(s->mvcc);
	engine_close(&s->eng);
	s->eng.e = NULL;
	if ((err = replace_db(src, dst, dir)) < 0)
		return err;
	failpoint("snap-swapped");
	ecfg.quota_bytes = s->cfg->quota_backend_bytes;
	if ((err = engine_open(s->cfg->backend, dst, &ecfg, &s->eng)) < 0)
		return err;
	if ((err = mvcc_reload(s->mvcc)) < 0)
		return err;
	if (mvcc_consistent_index(s->mvcc) != index) {
		log_error("the snapshot db holds index %llu, not %llu",
			  (unsigned long long)mvcc_consistent_index(s->mvcc),
			  (unsigned long long)index);
		return CAIRN_ECORRUPT;
	}
	s->applied_index = index;
	s->uncommitted = 0;
	return 0;
}

/* Step 1: the commit point (inv. 3). 0, -EBUSY (a WAL sync in flight:
 * retry later) or a fatal error. */
static int save_marker(struct server *s, uint64_t index, uint64_t term)
{
	int err = wal_save_snapshot(s->wal, index, term);

	if (err == 0)
		err = wal_sync_now(s->wal);
	return err;
}

static void run_restore_hooks(struct server_snap *ss)
{
	for (size_t i = 0; i < ss->n_hooks; i++)
		ss->hooks[i].fn(ss->hooks[i].arg);
}

static void install(struct server_snap *ss)
{
	struct server *s = ss->s;
	struct snap_build *b = ss->ready;
	struct raft_snap_meta rm = {b->index,
				    b->term,
				    b->ids,
				    b->n_voters,
				    b->ids + b->n_voters,
				    b->n_learners};
	int err;

	if (b->index <= raft_commit_index(s->raft) ||
	    b->raft_term < raft_term(s->raft)) {
		log_info("snapshot at index %llu is stale now: dropped",
			 (unsigned long long)b->index);
		ss->ready = NULL;
		build_free(b, true);
		return;
	}
	failpoint("snap-before-marker");
	if ((err = save_marker(s, b->index, b->term)) == -EBUSY)
		return; /* a WAL sync runs: the next poll retries */
	ss->ready = NULL;
	outs_cancel(ss);
	if (err == 0)
		failpoint("snap-after-marker");
	if (err == 0)
		err = swap_engine(s, b->index);
	if (err < 0) {
		/* after the marker: a restart finishes the install */
		server_fail_fatal(s, err, "snapshot install");
		build_free(b, false);
		return;
	}
	s->applied_term = b->term;
	s->snap_index = b->index;
	if (wal_release_to(s->wal, b->index) < 0)
		log_warn("cannot delete old WAL segments");
	err = raft_restore(s->raft, &rm, b->from, b->raft_term);
	if (err < 0) {
		server_fail_fatal(s, err, "raft restore");
		build_free(b, false);
		return;
	}
	log_info("installed snapshot at index %llu from member %llx",
		 (unsigned long long)b->index, (unsigned long long)b->from);
	build_free(b, false);
	run_restore_hooks(ss);
	server_schedule_ready(s);
}

void server_snap_poll(struct server *s)
{
	struct server_snap *ss = s->snap;

	if (!ss || !ss->ready || s->rd_pending || s->stopping || s->fatal)
		return;
	install(ss);
}

/* ---- start and stop -------------------------------------------------------
 */

/* Leftovers of an install that did not finish, at start (before the
 * transport exists): every <index>.snap.db but keep (0: none), db.old,
 * and partial received images. */
static void remove_leftovers(struct server *s, uint64_t keep)
{
	char dir[4200], path[4608], keep_name[64];
	struct dirent *de;
	DIR *d;

	snprintf(dir, sizeof(dir), "%s/snap", s->member_dir);
	snprintf(keep_name, sizeof(keep_name), "%016llx.snap.db",
		 (unsigned long long)keep);
	if (!(d = opendir(dir)))
		return;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);

		/* peer-snap-*: images the transport was receiving */
		if (strcmp(de->d_name, "db.old") != 0 &&
		    strncmp(de->d_name, "peer-snap-", 10) != 0 &&
		    (n < 8 || strcmp(de->d_name + n - 8, ".snap.db") != 0))
			continue;
		if (keep && !strcmp(de->d_name, keep_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		log_info("removing %s (an unfinished snapshot install)", path);
		rm_db(path);
	}
	closedir(d);
}

int server_snap_recover(struct server *s, uint64_t snap_index, char *errbuf,
			size_t errlen)
{
	char path[4200];
	struct stat st;
	int err;

	if (s->applied_index >= snap_index) {
		remove_leftovers(s, 0);
		return 0;
	}
	snap_db_path(s, snap_index, path, sizeof(path));
	if (lstat(path, &st) < 0) {
		remove_leftovers(s, 0);
		return 0; /* nothing to finish: the caller reports the gap */
	}
	remove_leftovers(s, snap_index);
	log_info("finishing the install of the snapshot at index %llu",
		 (unsigned long long)snap_index);
	if ((err = swap_engine(s, snap_index)) < 0) {
		snprintf(errbuf, errlen, "cannot install the snapshot %s: %s",
			 path, cairn_strerror(err));
		return err;
	}
	return 0;
}

/* s->snap, created on first use: server_on_restore may come first. */
static struct server_snap *snap_get(struct server *s)
{
	if (!s->snap && (s->snap = calloc(1, sizeof(*s->snap))))
		s->snap->s = s;
	return s->snap;
}

int server_snap_open(struct server *s)
{
	struct server_snap *ss = snap_get(s);

	if (!ss)
		return -ENOMEM;
	if (s->peers)
		peer_set_snapshot_handler(s->peers, on_snap, ss);
	return 0;
}

int server_on_restore(struct server *s, void (*fn)(void *arg), void *arg)
{
	struct server_snap *ss = snap_get(s);

	if (!ss)
		return -ENOMEM;
	if (ss->n_hooks == SERVER_MAX_HOOKS)
		return -ENOSPC;
	ss->hooks[ss->n_hooks].fn = fn;
	ss->hooks[ss->n_hooks].arg = arg;
	ss->n_hooks++;
	return 0;
}

void server_snap_close(struct server *s)
{
	struct server_snap *ss = s->snap;
	struct snap_out *o;

	if (!ss)
		return;
	if (s->peers)
		peer_set_snapshot_handler(s->peers, NULL, NULL);
	while ((o = ss->outs)) { /* the transport's done frees them */
		ss->outs = o->next;
		out_close_view(o);
		o->ss = NULL;
	}
	if (ss->build)
		ss->build->ss = NULL; /* its done frees it */
	if (ss->ready)
		build_free(ss->ready, true);
	free(ss);
	s->snap = NULL;
}
