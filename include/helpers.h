/* helpers.h: a small fixed pool of helper threads for the work that must
 * not run on an event loop (fuse_loop.c): whatever may wait on the
 * network or hold a lock for long, such as the first lookup in a
 * discovered target's directory, which logs in to the target.
 *
 * A job is posted by a loop and run once on one of the helpers, in the
 * order posted; the job replies to FUSE itself when it is done.  A job
 * still queued when the pool stops is dropped instead (its drop()
 * answers the request), so every request gets its one reply.
 *
 * Thread model: helpers_post() from any thread; helpers_start() and
 * helpers_stop() from one thread (the one that runs the FUSE loop).
 */
#ifndef ISCSIFS_HELPERS_H
#define ISCSIFS_HELPERS_H

#include <stdbool.h>

/* One piece of work; the poster embeds it in its own allocation. */
struct helper_job {
	void (*run)(struct helper_job *job);   /* the work; frees the job */
	void (*drop)(struct helper_job *job);  /* called instead of run() when the
	                                        * pool stops first; frees the job */
	struct helper_job *next;               /* helpers lock: the queue's link */
};

struct helpers;

/* Start @threads helper threads (signals blocked).  NULL with errno set
 * when none could start. */
struct helpers *helpers_start(unsigned threads);

/* Queue @job for the next idle helper. */
void helpers_post(struct helpers *h, struct helper_job *job);

/* Take @job out of the queue if no helper has taken it yet: then it will
 * never run (nor be dropped), and its memory is the caller's again.
 * Returns whether it was still queued. */
bool helpers_withdraw(struct helpers *h, struct helper_job *job);
/* Jobs run so far (for the statistics file). */
unsigned long helpers_jobs_run(struct helpers *h);

/* Let the running jobs finish, drop the queued ones, join the threads
 * and free @h.  No helpers_post() may come during or after. */
void helpers_stop(struct helpers *h);

#endif /* ISCSIFS_HELPERS_H */
