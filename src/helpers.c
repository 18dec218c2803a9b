/* helpers.c: the helper thread pools (see helpers.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * The queue is a singly linked FIFO under h->lock; helpers wait on
 * h->cond for a job or for stopping, an on-demand pool's until their idle
 * time is up.  A job runs with no lock of ours held, so it may block as
 * long as it needs to.
 *
 * The threads are detached: a thread that leaves (idle, or stopping)
 * counts itself out under the lock as the last thing it does with the
 * pool, and helpers_stop() waits for the count to reach zero.  A job is
 * queued before the thread meant for it starts, so a thread that starts
 * late still finds it.
 *
 * helpers_stop() sets stopping, wakes every helper and waits until none is
 * alive: a helper finishes the job it runs, then leaves without taking
 * another; the jobs left in the queue are dropped on the stopping thread.
 */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "log.h"

/* The pool. */
struct helpers {
	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* signalled on a new job and on stopping */
	pthread_cond_t left_cond;     /* signalled when the last thread left */
	struct helper_job *head;      /* lock: the oldest queued job, NULL if none */
	struct helper_job *tail;      /* lock: the newest queued job */
	unsigned queued;              /* lock: jobs in the queue */
	bool stopping;                /* lock: helpers_stop() began: take no more jobs */
	unsigned long jobs_run;       /* lock: jobs started so far */
	unsigned alive;               /* lock: threads started and not yet left */
	unsigned idle;                /* lock: of those, waiting for a job */
	unsigned max;                 /* read-only: threads at most */
	unsigned idle_ms;             /* read-only: a thread idle this long
	                               * leaves; 0: never (helpers_start()) */
	char name[16];                /* read-only: its threads' name (comm) */
};

static void *helper_main(void *arg)
{
	struct helpers *h = arg;

	pthread_setname_np(pthread_self(), h->name);
	pthread_mutex_lock(&h->lock);
	for (;;) {
		if (!h->head && !h->stopping) {
			struct timespec until = deadline_in_ms(h->idle_ms);
			int rc = 0;

			h->idle++;
			while (!h->head && !h->stopping && rc != ETIMEDOUT)
				rc = h->idle_ms ? deadline_cond_wait(&h->cond, &h->lock, &until)
						: pthread_cond_wait(&h->cond, &h->lock);
			h->idle--;
			if (!h->head && !h->stopping)
				break;          /* idle too long */
		}
		if (h->stopping)
			break;
		struct helper_job *job = h->head;
		h->head = job->next;
		if (!h->head)
			h->tail = NULL;
		h->queued--;
		h->jobs_run++;
		pthread_mutex_unlock(&h->lock);
		job->run(job);
		pthread_mutex_lock(&h->lock);
	}
	if (--h->alive == 0)
		pthread_cond_broadcast(&h->left_cond);
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

/* Start one more thread.  Lock held.  Returns 0 or an error number. */
static int start_thread_locked(struct helpers *h)
{
	pthread_attr_t attr;
	pthread_t id;
	sigset_t all, old;
	int rc;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	/* the thread starts with every signal blocked: they are main's */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&id, &attr, helper_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc == 0)
		h->alive++;
	return rc;
}

/* A pool of at most @max threads named @name, none started. */
static struct helpers *pool_new(unsigned max, unsigned idle_ms, const char *name)
{
	struct helpers *h = calloc(1, sizeof *h);

	if (!h) {
		errno = ENOMEM;
		return NULL;
	}
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	pthread_cond_init(&h->left_cond, NULL);
	h->max = max ? max : 1;
	h->idle_ms = idle_ms;
	snprintf(h->name, sizeof h->name, "%s", name);
	return h;
}

struct helpers *helpers_start(unsigned threads, const char *name)
{
	struct helpers *h = pool_new(threads, 0, name);
	int rc = 0;

	if (!h)
		return NULL;
	pthread_mutex_lock(&h->lock);
	while (h->alive < h->max && (rc = start_thread_locked(h)) == 0)
		;
	unsigned alive = h->alive;
	pthread_mutex_unlock(&h->lock);
	if (rc)
		log_error("cannot start a helper thread: %s", strerror(rc));
	if (alive == 0) {
		helpers_stop(h);
		errno = EAGAIN;
		return NULL;
	}
	return h;
}

struct helpers *helpers_on_demand(unsigned max, unsigned idle_ms, const char *name)
{
	return pool_new(max, idle_ms ? idle_ms : 1, name);
}

int helpers_post(struct helpers *h, struct helper_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&h->lock);
	/* every idle thread is spoken for by a queued job: one more thread */
	if (h->idle <= h->queued && h->alive < h->max) {
		int rc = start_thread_locked(h);

		if (rc && h->alive == 0) {
			pthread_mutex_unlock(&h->lock);
			errno = rc;
			return -1;
		}
		/* (otherwise the threads alive take it in turn) */
	}
	if (h->tail)
		h->tail->next = job;
	else
		h->head = job;
	h->tail = job;
	h->queued++;
	pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
	return 0;
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
		h->queued--;
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

unsigned helpers_threads(struct helpers *h)
{
	pthread_mutex_lock(&h->lock);
	unsigned n = h->alive;
	pthread_mutex_unlock(&h->lock);
	return n;
}

void helpers_stop(struct helpers *h)
{
	struct helper_job *left;

	pthread_mutex_lock(&h->lock);
	h->stopping = true;
	pthread_cond_broadcast(&h->cond);
	while (h->alive > 0)
		pthread_cond_wait(&h->left_cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
	/* every helper has left (each let go of the lock for good): the
	 * queue is ours alone */
	left = h->head;
	while (left) {
		struct helper_job *next = left->next;
		left->drop(left);
		left = next;
	}
	pthread_cond_destroy(&h->left_cond);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
