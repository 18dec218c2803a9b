/* deadline.h: deadlines on CLOCK_MONOTONIC, and the waits that end at one.
 *
 * Every timeout of iscsifs is measured on CLOCK_MONOTONIC, the clock that
 * nobody sets: a step of the wall clock (date -s, an NTP step, a virtual
 * machine resumed) must neither stall a keepalive for as long as the step
 * nor end a wait before its time.  mono_now_ns() and mono_now_ms() read
 * that clock, for durations and times to compare (rather than a
 * clock_gettime() of each file's own).  A deadline is an absolute time on that
 * clock; deadline_in_ms() makes one, deadline_cond_wait() and
 * deadline_sem_wait() wait until it.  Both name the clock at the wait
 * (pthread_cond_clockwait(), sem_clockwait()), so a condition variable
 * needs no clock attribute of its own: one made with
 * PTHREAD_COND_INITIALIZER or pthread_cond_init(c, NULL) waits correctly.
 * No pthread_cond_timedwait() or sem_timedwait() is used anywhere: those
 * read CLOCK_REALTIME unless told otherwise.
 *
 * Header-only; any thread.
 */
#ifndef ISCSIFS_DEADLINE_H
#define ISCSIFS_DEADLINE_H

#include <pthread.h>
#include <semaphore.h>
#include <stdint.h>
#include <time.h>

/* The clock of every deadline. */
#define DEADLINE_CLOCK CLOCK_MONOTONIC

/* Now on DEADLINE_CLOCK, in nanoseconds (for measuring durations). */
static inline int64_t mono_now_ns(void)
{
	struct timespec ts;

	clock_gettime(DEADLINE_CLOCK, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Now on DEADLINE_CLOCK, in whole milliseconds (for durations in ms). */
static inline int64_t mono_now_ms(void)
{
	return mono_now_ns() / 1000000;
}

/* The deadline @ms milliseconds from now (0 or less: now). */
static inline struct timespec deadline_in_ms(int64_t ms)
{
	struct timespec ts;

	clock_gettime(DEADLINE_CLOCK, &ts);
	if (ms > 0) {
		ts.tv_sec += (time_t)(ms / 1000);
		ts.tv_nsec += (long)(ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
	}
	return ts;
}

/* pthread_cond_wait() on @cond (@lock held) that ends at @deadline at the
 * latest.  Returns 0 when woken (perhaps spuriously: check the
 * condition), ETIMEDOUT once the deadline has passed (the error numbers
 * of pthread_cond_clockwait()). */
static inline int deadline_cond_wait(pthread_cond_t *cond, pthread_mutex_t *lock,
				     const struct timespec *deadline)
{
	return pthread_cond_clockwait(cond, lock, DEADLINE_CLOCK, deadline);
}

/* sem_wait() on @sem that ends at @deadline at the latest.  Returns 0
 * when the semaphore was taken, -1 with errno ETIMEDOUT (or EINTR: a
 * signal came) otherwise. */
static inline int deadline_sem_wait(sem_t *sem, const struct timespec *deadline)
{
	return sem_clockwait(sem, DEADLINE_CLOCK, deadline);
}

#endif /* ISCSIFS_DEADLINE_H */
