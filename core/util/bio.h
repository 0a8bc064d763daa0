/* bio: a small fixed pool of helper threads for blocking disk work.
 *
 * The Redis bio model. The loop thread owns all state; a job whose work
 * blocks (fdatasync, engine commit, snapshot write, unlink of big files)
 * is handed to a helper thread, and its completion comes back to the loop
 * through an eventfd watched by a libevent event:
 *
 *   loop: bio_submit(j) --> queue[q] --> helper: j->work(j)
 *         loop: j->done(j) <-- done list + eventfd <--'
 *
 * Jobs of one queue run in submission order, one at a time (so a WAL
 * write never overtakes the previous one); jobs of different queues may
 * run in parallel on different helpers. A job never migrates its done
 * callback off the loop thread.
 */
#ifndef CAIRN_CORE_UTIL_BIO_H
#define CAIRN_CORE_UTIL_BIO_H

#include <stdint.h>

struct event_base;

/* Queues; each is FIFO and serial. Users pick one by what they touch. */
enum {
	BIO_QUEUE_WAL = 0,    /* raftlog/wal: write + fdatasync of segments */
	BIO_QUEUE_ENGINE = 1, /* engine commits and defragment */
	BIO_QUEUE_SNAP = 2,   /* raft snapshot files */
	BIO_QUEUE_MISC = 3,   /* anything else (unlinks, closes) */
	BIO_NQUEUES = 8,      /* queue numbers are 0 .. BIO_NQUEUES - 1 */
};

#define BIO_MAX_THREADS 16

struct bio_job {
	/* Runs on a helper thread: may block, must not touch loop state;
	 * reports its result in status. Required. */
	void (*work)(struct bio_job *j);
	/* Runs on the loop thread after work returned. May free the job (bio
	 * never touches it afterwards) and may submit new jobs. Optional. */
	void (*done)(struct bio_job *j);
	int status; /* set by work (0 or negative errno), read by done */
	void *data; /* free for the job's owner */
	/* private to bio: */
	struct bio_job *next;
};

struct bio;

/* Create a pool of nthreads helpers whose completions are delivered on base.
 *
 * base: the loop; borrowed, must outlive the pool. nthreads: 1 ..
 * BIO_MAX_THREADS (more threads than queues in use is harmless).
 * *out: on success a new pool, owned by the caller (bio_destroy).
 * Errors: -EINVAL (NULL base/out, bad nthreads), -ENOMEM, -errno from
 * eventfd/pthread_create, -EIO if libevent refuses the event.
 */
int bio_create(struct event_base *base, int nthreads, struct bio **out);

/* Stop the pool: waits until every queued job has run its work, joins the
 * helpers, then runs the done callbacks not yet delivered, inline on the
 * calling thread (which must be the loop thread, outside any done
 * callback). No job may be submitted during or after. NULL is a no-op.
 */
void bio_destroy(struct bio *b);

/* Queue j on queue q. j is owned by the caller and must stay valid and
 * untouched until its done callback runs (or, without done, until
 * bio_destroy returns). Loop thread only.
 * Errors: -EINVAL (bad q, NULL job or work), -ESHUTDOWN (pool stopping).
 */
int bio_submit(struct bio *b, int q, struct bio_job *j);

/* Run j->work then j->done inline on the calling thread: the same job
 * without a pool, for start-up paths and tests. */
void bio_run_sync(struct bio_job *j);

/* Jobs submitted and not yet completed (work not finished), all queues. */
uint64_t bio_pending(struct bio *b);

#endif
