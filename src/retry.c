/* retry.c: sending a command again after a pause (see retry.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * Each waiting retry is a timer on an event loop (evloop.h): the loop of
 * the thread that asks, which is where completions run, or any loop when a
 * helper or the main thread asks (the timer is then armed by a call posted
 * to that loop, since a loop's timers are its own).  When it fires, the
 * loop calls pool_submit() and then pool_release() to end the hold
 * retry_later() took.  No thread sleeps, and no lock is needed: an entry
 * belongs to its loop from the moment it is armed.
 */
#include "retry.h"

#include <stddef.h>
#include <stdlib.h>

#include "deadline.h"
#include "evloop.h"

/* A task waiting for its pause to end. */
struct retry_entry {
	struct ev_timer timer;       /* on loop: fires when the pause is over */
	struct ev_call arm;          /* posted to loop from another thread: arms timer */
	struct evloop *loop;         /* the loop it waits on */
	int64_t due_ns;              /* when to submit it (CLOCK_MONOTONIC) */
	struct pool *pool;           /* where to */
	struct iscsi_task *task;     /* what */
};

static void retry_fire(struct ev_timer *timer)
{
	struct retry_entry *e = (struct retry_entry *)timer;

	pool_submit(e->pool, e->task);
	pool_release(e->pool);
	free(e);
}

static void retry_arm(struct ev_call *call)
{
	struct retry_entry *e = (struct retry_entry *)((char *)call -
						       offsetof(struct retry_entry, arm));

	evloop_timer_arm(e->loop, &e->timer, e->due_ns);
}

void retry_later(struct pool *pool, struct iscsi_task *task, unsigned delay_ms)
{
	struct evloop *loop = delay_ms ? evloop_current() : NULL;
	struct retry_entry *e;

	if (delay_ms && !loop)
		loop = evloop_assign();
	if (!loop || !(e = calloc(1, sizeof *e))) {
		pool_submit(pool, task);
		return;
	}
	e->timer.fire = retry_fire;
	e->arm.run = retry_arm;
	e->loop = loop;
	e->due_ns = mono_now_ns() + (int64_t)delay_ms * 1000000;
	e->pool = pool;
	e->task = task;
	pool_hold(pool);
	if (loop == evloop_current())
		evloop_timer_arm(loop, &e->timer, e->due_ns);
	else
		evloop_post(loop, &e->arm);
}
