/* Unit tests of core/util/bio: FIFO per queue, parallel queues, completions
 * on the loop thread, drain on destroy. Every wait is bounded. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/util/bio.h"

#define NJOBS 200

struct tjob {
	struct bio_job job;
	int id;
	struct tstate *st;
};

struct tstate {
	pthread_mutex_t mu;
	int order[NJOBS]; /* ids in the order work ran */
	int nrun;
	int running; /* jobs of the queue inside work right now */
	int overlap; /* set if two jobs of one queue ever overlapped */
	int ndone;
	int want;
	pthread_t loop_thread;
	int done_off_loop;
	struct event_base *base;
};

static void tjob_work(struct bio_job *j)
{
	struct tjob *t = j->data;
	struct tstate *st = t->st;

	pthread_mutex_lock(&st->mu);
	if (st->running++)
		st->overlap = 1;
	pthread_mutex_unlock(&st->mu);
	if (t->id % 17 == 0)
		usleep(1000); /* let other helpers try to overtake */
	pthread_mutex_lock(&st->mu);
	st->order[st->nrun++] = t->id;
	st->running--;
	pthread_mutex_unlock(&st->mu);
	j->status = t->id;
}

static void tjob_done(struct bio_job *j)
{
	struct tjob *t = j->data;
	struct tstate *st = t->st;

	if (!pthread_equal(pthread_self(), st->loop_thread))
		st->done_off_loop = 1;
	ck_assert_int_eq(j->status, t->id);
	if (++st->ndone == st->want && st->base)
		event_base_loopbreak(st->base);
}

static void tstate_init(struct tstate *st, struct event_base *base, int want)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->mu, NULL);
	st->loop_thread = pthread_self();
	st->base = base;
	st->want = want;
}

static void loop_bounded(struct event_base *base, int secs)
{
	struct timeval tv = {secs, 0};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

START_TEST(test_bio_fifo_one_queue)
{
	struct event_base *base = event_base_new();
	struct tjob *jobs = calloc(NJOBS, sizeof(*jobs));
	struct tstate st;
	struct bio *b;

	ck_assert_ptr_nonnull(base);
	ck_assert_ptr_nonnull(jobs);
	tstate_init(&st, base, NJOBS);
	ck_assert_int_eq(bio_create(base, 4, &b), 0);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i].id = i;
		jobs[i].st = &st;
		jobs[i].job.work = tjob_work;
		jobs[i].job.done = tjob_done;
		jobs[i].job.data = &jobs[i];
		ck_assert_int_eq(bio_submit(b, BIO_QUEUE_WAL, &jobs[i].job), 0);
	}
	loop_bounded(base, 10);
	ck_assert_int_eq(st.ndone, NJOBS);
	ck_assert_int_eq(st.overlap, 0);
	ck_assert_int_eq(st.done_off_loop, 0);
	for (int i = 0; i < NJOBS; i++)
		ck_assert_int_eq(st.order[i], i);
	ck_assert_uint_eq(bio_pending(b), 0);
	bio_destroy(b);
	event_base_free(base);
	free(jobs);
}
END_TEST

/* Two jobs on different queues wait for each other: passes only if they
 * really run at the same time on two helpers. */
struct rendezvous {
	struct bio_job job;
	pthread_mutex_t *mu;
	pthread_cond_t *cv;
	int *arrived;
	int *ndone;
	struct event_base *base;
};

static void rv_work(struct bio_job *j)
{
	struct rendezvous *r = j->data;
	struct timespec dl;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += 5;
	pthread_mutex_lock(r->mu);
	(*r->arrived)++;
	pthread_cond_broadcast(r->cv);
	while (*r->arrived < 2 && err == 0)
		err = pthread_cond_timedwait(r->cv, r->mu, &dl);
	pthread_mutex_unlock(r->mu);
	j->status = err ? -ETIMEDOUT : 0;
}

static void rv_done(struct bio_job *j)
{
	struct rendezvous *r = j->data;

	ck_assert_int_eq(j->status, 0);
	if (++*r->ndone == 2)
		event_base_loopbreak(r->base);
}

START_TEST(test_bio_queues_parallel)
{
	struct event_base *base = event_base_new();
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	int arrived = 0, ndone = 0;
	struct rendezvous r[2];
	struct bio *b;

	ck_assert_int_eq(bio_create(base, 2, &b), 0);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct rendezvous){.job = {.work = rv_work,
						   .done = rv_done,
						   .data = &r[i]},
					   .mu = &mu,
					   .cv = &cv,
					   .arrived = &arrived,
					   .ndone = &ndone,
					   .base = base};
		ck_assert_int_eq(
			bio_submit(b, i ? BIO_QUEUE_ENGINE : BIO_QUEUE_WAL,
				   &r[i].job),
			0);
	}
	loop_bounded(base, 10);
	ck_assert_int_eq(ndone, 2);
	bio_destroy(b);
	event_base_free(base);
}
END_TEST

/* bio_destroy runs every queued job and delivers its completion. */
START_TEST(test_bio_destroy_drains)
{
	struct event_base *base = event_base_new();
	struct tjob *jobs = calloc(NJOBS, sizeof(*jobs));
	struct tstate st;
	struct bio *b;

	tstate_init(&st, NULL, NJOBS);
	ck_assert_int_eq(bio_create(base, 3, &b), 0);
	for (int i = 0; i < NJOBS; i++) {
		jobs[i] = (struct tjob){.id = i, .st = &st};
		jobs[i].job = (struct bio_job){tjob_work, tjob_done, 0,
					       &jobs[i], NULL};
		ck_assert_int_eq(bio_submit(b, i % BIO_NQUEUES, &jobs[i].job),
				 0);
	}
	bio_destroy(b); /* no loop turn ever ran */
	ck_assert_int_eq(st.nrun, NJOBS);
	ck_assert_int_eq(st.ndone, NJOBS);
	ck_assert_int_eq(st.done_off_loop, 0);
	event_base_free(base);
	free(jobs);
}
END_TEST

START_TEST(test_bio_run_sync_and_errors)
{
	struct event_base *base = event_base_new();
	struct tstate st;
	struct tjob t = {.id = 7, .st = &st};
	struct bio *b;

	tstate_init(&st, NULL, 1);
	t.job = (struct bio_job){tjob_work, tjob_done, 0, &t, NULL};
	bio_run_sync(&t.job);
	ck_assert_int_eq(st.nrun, 1);
	ck_assert_int_eq(st.ndone, 1);
	ck_assert_int_eq(t.job.status, 7);

	ck_assert_int_eq(bio_create(NULL, 1, &b), -EINVAL);
	ck_assert_int_eq(bio_create(base, 0, &b), -EINVAL);
	ck_assert_int_eq(bio_create(base, BIO_MAX_THREADS + 1, &b), -EINVAL);
	ck_assert_int_eq(bio_create(base, 1, &b), 0);
	ck_assert_int_eq(bio_submit(b, -1, &t.job), -EINVAL);
	ck_assert_int_eq(bio_submit(b, BIO_NQUEUES, &t.job), -EINVAL);
	ck_assert_int_eq(bio_submit(b, 0, NULL), -EINVAL);
	bio_destroy(b);
	bio_destroy(NULL);
	event_base_free(base);
}
END_TEST

Suite *bio_suite(void)
{
	Suite *s = suite_create("bio");
	TCase *tc = tcase_create("bio");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_bio_fifo_one_queue);
	tcase_add_test(tc, test_bio_queues_parallel);
	tcase_add_test(tc, test_bio_destroy_drains);
	tcase_add_test(tc, test_bio_run_sync_and_errors);
	suite_add_tcase(s, tc);
	return s;
}
