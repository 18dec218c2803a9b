/* helpers.c: the helper thread pool (see helpers.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * The queue is a singly linked FIFO under h->lock; helpers wait on
 * h->cond for a job or for stopping.  A job runs with no lock of ours
 * held, so it may block as long as it needs to.  helpers_stop() sets
 * stopping, wakes every helper, and joins them: a helper finishes the job
 * it runs, then leaves without taking another; the jobs left in the queue
 * are dropped on the stopping thread.
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* The pool. */
struct helpers {
	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* signalled on a new job and on stopping */
	struct helper_job *head;      /* lock: the oldest queued job, NULL if none */
	struct helper_job *tail;      /* lock: the newest queued job */
	bool stopping;                /* lock: helpers_stop() began: take no more jobs */
	unsigned long jobs_run;       /* lock: jobs started so far */
	unsigned nthreads;            /* threads started (fixed once started) */
	pthread_t *threads;           /* their ids, nthreads entries */
};

static void *helper_main(void *arg)
{
	struct helpers *h = arg;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_mutex_lock(&h->lock);
	for (;;) {
		while (!h->head && !h->stopping)
			pthread_cond_wait(&h->cond, &h->lock);
		if (h->stopping)
			break;
		struct helper_job *job = h->head;
		h->head = job->next;
		if (!h->head)
			h->tail = NULL;
		h->jobs_run++;
		pthread_mutex_unlock(&h->lock);
		job->run(job);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

struct helpers *helpers_start(unsigned threads)
{
	struct helpers *h = calloc(1, sizeof *h);

	if (!h || !(h->threads = calloc(threads, sizeof *h->threads))) {
		free(h);
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	for (; h->nthreads < threads; h->nthreads++) {
		int rc = pthread_create(&h->threads[h->nthreads], NULL, helper_main, h);
		if (rc) {
			log_error("cannot start a helper thread: %s", strerror(rc));
			break;
		}
	}
	if (h->nthreads == 0) {
		helpers_stop(h);
		errno = EAGAIN;
		return NULL;
	}
	return h;
}

void helpers_post(struct helpers *h, struct helper_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&h->lock);
	if (h->tail)
		h->tail->next = job;
	else
		h->head = job;
	h->tail = job;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

bool helpers_withdraw(struct helpers *h, struct helper_job *job)
{
	bool found = false;

	pthread_mutex_lock(&h->lock);
	for (struct helper_job **pp = &h->head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != job)
			continue;
		*pp = job->next;
		if (h->tail == job)
			h->tail = prev;
		found = true;
		break;
	}
	pthread_mutex_unlock(&h->lock);
	return found;
}

unsigned long helpers_jobs_run(struct helpers *h)
{
	pthread_mutex_lock(&h->lock);
	unsigned long n = h->jobs_run;
	pthread_mutex_unlock(&h->lock);
	return n;
}

void helpers_stop(struct helpers *h)
{
	struct helper_job *left;

	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	for (unsigned i = 0; i < h->nthreads; i++)
		pthread_join(h->threads[i], NULL);
	/* every helper has left: the queue is ours alone */
	left = h->head;
	while (left) {
		struct helper_job *next = left->next;
		left->drop(left);
		left = next;
	}
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h->threads);
	free(h);
}
