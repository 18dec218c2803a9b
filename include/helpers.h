/* helpers.h: small pools of helper threads for the work that must not
 * run on an event loop: whatever may wait on the network or hold a lock
 * for long, such as the first lookup in a discovered target's directory
 * (which logs in to the target, fuse_loop.c), a host name lookup
 * (resolve.c) or a target's rescan after a Unit Attention (target.c).
 *
 * A job is posted from any thread and run once on one of the helpers, in
 * the order posted; the job reports its end itself (a FUSE reply, a
 * posted call).  A job still queued when the pool stops is dropped
 * instead (its drop() answers for it), so every job ends one way.
 *
 * Two kinds of pool:
 *   - helpers_start(N): N threads from the start until helpers_stop()
 *     (a job never waits for a thread to start);
 *   - helpers_on_demand(MAX, IDLE_MS): no thread until a job comes; a
 *     thread is started for a job that finds none idle, up to MAX at
 *     once, and a thread idle for IDLE_MS leaves.  The number of threads
 *     stays bounded however many jobs come (they queue), and a pool that
 *     is rarely used costs no thread between uses.
 *
 * Thread model: helpers_post(), helpers_withdraw() and the counters from
 * any thread, a job included; helpers_stop() from one thread, once, and
 * never from a job of the pool.
 */
#ifndef ISCSIFS_HELPERS_H
#define ISCSIFS_HELPERS_H

#include <stdbool.h>

/* One piece of work; the poster embeds it in its own allocation. */
struct helper_job {
	void (*run)(struct helper_job *job);   /* the work; may free the job */
	void (*drop)(struct helper_job *job);  /* called instead of run() when the
	                                        * pool stops first; may free the job */
	struct helper_job *next;               /* helpers lock: the queue's link */
};

struct helpers;

/* Start @threads helper threads (signals blocked) that stay until
 * helpers_stop(), each named @name (its comm, as ps -L and top -H show
 * it; at most 15 bytes kept).  NULL with errno set when none could start. */
struct helpers *helpers_start(unsigned threads, const char *name);

/* A pool that starts up to @max threads (signals blocked, named @name) as
 * jobs come, each leaving after @idle_ms without a job.  NULL with errno
 * ENOMEM. */
struct helpers *helpers_on_demand(unsigned max, unsigned idle_ms, const char *name);

/* Queue @job for the next idle helper, starting one if none is idle and
 * the pool may.  Returns 0, or -1 with errno (EAGAIN) when the pool has
 * no thread and none could start: then @job was not queued and is the
 * caller's again. */
int helpers_post(struct helpers *h, struct helper_job *job);

/* Take @job out of the queue if no helper has taken it yet: then it will
 * never run (nor be dropped), and its memory is the caller's again.
 * Returns whether it was still queued. */
bool helpers_withdraw(struct helpers *h, struct helper_job *job);

/* Jobs run so far (for the statistics file). */
unsigned long helpers_jobs_run(struct helpers *h);

/* Threads of the pool alive now (idle or running a job). */
unsigned helpers_threads(struct helpers *h);

/* Let the running jobs finish, drop the queued ones, wait for every
 * thread to leave and free @h.  No helpers_post() may come during or
 * after. */
void helpers_stop(struct helpers *h);

#endif /* ISCSIFS_HELPERS_H */
