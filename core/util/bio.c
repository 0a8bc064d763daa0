/* bio: helper threads for blocking disk work (see bio.h).
 *
 * DESIGN. One mutex guards the queues, the done list and the counters; a
 * condition variable wakes helpers. A helper takes the head of the first
 * queue (round robin) that has work and is not busy, marks that queue busy
 * so its next job waits, runs work() without the lock, then moves the job
 * to the done list and bumps the eventfd. The loop's event callback swaps
 * the done list out under the lock and runs the done callbacks unlocked,
 * so a done callback may submit again.
 *
 * Invariants (under mu):
 *  1. A job is on exactly one of: a queue, "running" (owned by one
 *     helper, its queue marked busy), the done list, or nowhere (delivered).
 *  2. q[i].busy is 1 iff a helper is running a job of queue i; hence jobs
 *     of one queue run one at a time, in FIFO order.
 *  3. pending == queued + running jobs.
 *  4. Once stopping is set no job is accepted; helpers exit only when no
 *     queue holds a job, so bio_destroy drains everything.
 *
 * Job states:  submitted --helper--> running --> done list --loop--> done()
 */
#include "core/util/bio.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core/util/log.h"

struct bio_queue {
	struct bio_job *head, *tail;
	int busy;
};

struct bio {
	struct event_base *base;
	struct event *ev;
	int efd;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct bio_queue q[BIO_NQUEUES];
	struct bio_job *done_head, *done_tail;
	uint64_t pending;
	unsigned next_q; /* round-robin start, so no queue starves */
	int stopping;
	int nthreads;
	pthread_t th[BIO_MAX_THREADS];
};

static void bio_list_push(struct bio_job **head, struct bio_job **tail,
			  struct bio_job *j)
{
	j->next = NULL;
	if (*tail)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

/* Under mu: the next runnable job, its queue marked busy; or NULL. */
static struct bio_job *bio_take(struct bio *b, int *qi)
{
	for (unsigned k = 0; k < BIO_NQUEUES; k++) {
		unsigned i = (b->next_q + k) % BIO_NQUEUES;
		struct bio_queue *q = &b->q[i];
		struct bio_job *j = q->head;

		if (!j || q->busy)
			continue;
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->busy = 1;
		b->next_q = i + 1;
		*qi = (int)i;
		return j;
	}
	return NULL;
}

static int bio_any_queued(struct bio *b)
{
	for (int i = 0; i < BIO_NQUEUES; i++)
		if (b->q[i].head)
			return 1;
	return 0;
}

static void bio_wake_loop(struct bio *b)
{
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: the loop will wake. */
	if (write(b->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_error("bio: eventfd write: %s", strerrordesc_np(errno));
}

static void *bio_main(void *arg)
{
	struct bio *b = arg;
	struct bio_job *j;
	int qi;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		j = bio_take(b, &qi);
		if (!j) {
			if (b->stopping && !bio_any_queued(b))
				break;
			pthread_cond_wait(&b->cv, &b->mu);
			continue;
		}
		pthread_mutex_unlock(&b->mu);
		j->work(j);
		pthread_mutex_lock(&b->mu);
		b->q[qi].busy = 0;
		b->pending--;
		bio_list_push(&b->done_head, &b->done_tail, j);
		bio_wake_loop(b);
		/* The queue is free again: wake a helper for its next job. */
		pthread_cond_broadcast(&b->cv);
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

static void bio_deliver(struct bio *b)
{
	struct bio_job *j, *next;

	pthread_mutex_lock(&b->mu);
	j = b->done_head;
	b->done_head = b->done_tail = NULL;
	pthread_mutex_unlock(&b->mu);
	for (; j; j = next) {
		next = j->next; /* done() may free j */
		if (j->done)
			j->done(j);
	}
}

static void bio_on_event(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_error("bio: eventfd read: %s", strerrordesc_np(errno));
	bio_deliver(arg);
}

static void bio_stop_threads(struct bio *b)
{
	pthread_mutex_lock(&b->mu);
	b->stopping = 1;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	for (int i = 0; i < b->nthreads; i++)
		pthread_join(b->th[i], NULL);
	b->nthreads = 0;
}

int bio_create(struct event_base *base, int nthreads, struct bio **out)
{
	struct bio *b;
	int err;

	if (!base || !out || nthreads < 1 || nthreads > BIO_MAX_THREADS)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->base = base;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->efd < 0) {
		err = -errno;
		goto fail;
	}
	b->ev = event_new(base, b->efd, EV_READ | EV_PERSIST, bio_on_event, b);
	if (!b->ev || event_add(b->ev, NULL) < 0) {
		err = b->ev ? -EIO : -ENOMEM;
		goto fail;
	}
	for (; b->nthreads < nthreads; b->nthreads++) {
		err = -pthread_create(&b->th[b->nthreads], NULL, bio_main, b);
		if (err)
			goto fail;
	}
	*out = b;
	return 0;
fail:
	bio_stop_threads(b);
	if (b->ev)
		event_free(b->ev);
	if (b->efd >= 0)
		close(b->efd);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
	return err;
}

void bio_destroy(struct bio *b)
{
	if (!b)
		return;
	bio_stop_threads(b);
	event_free(b->ev);
	/* Every job has run its work; hand the rest of the completions out. */
	bio_deliver(b);
	close(b->efd);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

int bio_submit(struct bio *b, int q, struct bio_job *j)
{
	int err = 0;

	if (!b || q < 0 || q >= BIO_NQUEUES || !j || !j->work)
		return -EINVAL;
	pthread_mutex_lock(&b->mu);
	if (b->stopping) {
		err = -ESHUTDOWN;
		goto out;
	}
	bio_list_push(&b->q[q].head, &b->q[q].tail, j);
	b->pending++;
	pthread_cond_signal(&b->cv);
out:
	pthread_mutex_unlock(&b->mu);
	return err;
}

void bio_run_sync(struct bio_job *j)
{
	j->work(j);
	if (j->done)
		j->done(j);
}

uint64_t bio_pending(struct bio *b)
{
	uint64_t n;

	pthread_mutex_lock(&b->mu);
	n = b->pending;
	pthread_mutex_unlock(&b->mu);
	return n;
}
