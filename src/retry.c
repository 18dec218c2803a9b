/* retry.c: the timer behind retry_later() (see retry.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * One timer thread for the process, started on first use (pthread_once)
 * and never stopped: it sleeps on a condition variable while nothing is
 * due and holds no memory of its own, so exiting with it is harmless.
 * Waiting retries form a list sorted by due time; any thread adds to it
 * (retry_later()), the timer thread takes the due ones off and calls
 * pool_submit() for each after dropping the lock, then pool_release() to
 * end the hold retry_later() took.  timer_lock protects the list and is a
 * leaf: nothing else is locked while it is held.
 */
#include "retry.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "deadline.h"
#include "log.h"

/* A task waiting for its pause to end. */
struct retry_entry {
	int64_t due_ns;              /* when to submit it (CLOCK_MONOTONIC) */
	struct pool *pool;           /* where to */
	struct iscsi_task *task;     /* what */
	struct retry_entry *next;    /* the list, by due_ns */
};

static pthread_once_t timer_once = PTHREAD_ONCE_INIT; /* starts the timer on first use */
static pthread_mutex_t timer_lock = PTHREAD_MUTEX_INITIALIZER; /* protects the fields below */
static pthread_cond_t timer_cond = PTHREAD_COND_INITIALIZER; /* signalled when the list's
                                                             * head changes */
static struct retry_entry *timer_list;  /* timer_lock: waiting retries, soonest first */
static bool timer_running;              /* written once by timer_start(), read after
                                         * pthread_once() returns */

static void *timer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&timer_lock);
	for (;;) {
		if (!timer_list) {
			pthread_cond_wait(&timer_cond, &timer_lock);
			continue;
		}
		int64_t due = timer_list->due_ns;
		if (due > mono_now_ns()) {
			struct timespec until = {
				.tv_sec = (time_t)(due / 1000000000),
				.tv_nsec = (long)(due % 1000000000),
			};
			deadline_cond_wait(&timer_cond, &timer_lock, &until);
			continue;
		}
		struct retry_entry *e = timer_list;
		timer_list = e->next;
		pthread_mutex_unlock(&timer_lock);
		pool_submit(e->pool, e->task);
		pool_release(e->pool);
		free(e);
		pthread_mutex_lock(&timer_lock);
	}
	return NULL;
}

static void timer_start(void)
{
	pthread_t thread;

	if (pthread_create(&thread, NULL, timer_main, NULL) != 0) {
		log_warn("cannot start the retry timer thread: retries are sent without a pause");
		return;
	}
	pthread_detach(thread);
	timer_running = true;
}

void retry_later(struct pool *pool, struct iscsi_task *task, unsigned delay_ms)
{
	struct retry_entry *e;

	pthread_once(&timer_once, timer_start);
	if (delay_ms == 0 || !timer_running || !(e = malloc(sizeof *e))) {
		pool_submit(pool, task);
		return;
	}
	e->due_ns = mono_now_ns() + (int64_t)delay_ms * 1000000;
	e->pool = pool;
	e->task = task;
	pool_hold(pool);
	pthread_mutex_lock(&timer_lock);
	struct retry_entry **pp = &timer_list;
	while (*pp && (*pp)->due_ns <= e->due_ns)
		pp = &(*pp)->next;
	e->next = *pp;
	*pp = e;
	if (timer_list == e)
		pthread_cond_signal(&timer_cond);
	pthread_mutex_unlock(&timer_lock);
}
