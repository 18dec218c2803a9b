/* retry.h: sending a command again after a pause, without a thread
 * sleeping on it.
 *
 * A command answered BUSY, TASK SET FULL, ACA ACTIVE or NOT READY is worth
 * sending again, but not at once: the target asked us to back off.  Its
 * completion runs on a session's event loop, which must not sleep, so it
 * hands the task to retry_later(): a timer on an event loop submits it to
 * its pool again when the pause is over.
 */
#ifndef ISCSIFS_RETRY_H
#define ISCSIFS_RETRY_H

#include "pool.h"
#include "session.h"

/* Submit @task to @pool again in @delay_ms milliseconds, as pool_submit()
 * would (its done() is called exactly once, later).  Meanwhile the pool
 * counts the task as in flight (pool_hold()), so pool_destroy() waits for
 * it.  Any thread; never blocks.  When the timer cannot be had (out of
 * memory, no event loop) the task is submitted at once. */
void retry_later(struct pool *pool, struct iscsi_task *task, unsigned delay_ms);

#endif /* ISCSIFS_RETRY_H */
