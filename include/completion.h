/* completion.h: a synchronous caller waiting for one asynchronous callback.
 *
 * The caller puts a struct completion on its stack, completion_init()s it,
 * starts an asynchronous request whose callback ends in completion_post()
 * (or is completion_post_cb() itself), and completion_wait()s: that
 * returns once the callback has run, with the error it reported, and
 * destroys the completion.  The callback may run on any thread, before or
 * after the wait begins, and exactly once; it must not touch the
 * completion after completion_post().  Whatever else the callback hands
 * over (bytes read, say) it writes before completion_post(), and the
 * caller reads it after completion_wait(): the lock orders the two.
 *
 * No deadline: the requests waited for end by themselves (a command fails
 * at the latest when its session gives up; see session.h).
 *
 * Header-only; the lock is a leaf, held only inside these functions.
 */
#ifndef ISCSIFS_COMPLETION_H
#define ISCSIFS_COMPLETION_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>

/* One awaited callback. */
struct completion {
	pthread_mutex_t lock;         /* protects done and err */
	pthread_cond_t cond;          /* signalled once done is set */
	bool done;                    /* lock: the callback has run */
	int err;                      /* lock: what it reported, 0 or an errno */
};

/* Ready @c for one callback. */
static inline void completion_init(struct completion *c)
{
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	c->done = false;
	c->err = 0;
}

/* The callback: record @err (0 for success) and wake the waiter.  @c
 * may be gone as soon as this returns. */
static inline void completion_post(struct completion *c, int err)
{
	pthread_mutex_lock(&c->lock);
	c->err = err;
	c->done = true;
	pthread_cond_signal(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* completion_post() in the shape of a callback taking (opaque, err), such
 * as lun_write_cb: @opaque is the struct completion. */
static inline void completion_post_cb(void *opaque, int err)
{
	completion_post(opaque, err);
}

/* Wait until the callback has run, then destroy @c.  Returns 0 when it
 * reported success, else -1 with errno set to what it reported. */
static inline int completion_wait(struct completion *c)
{
	int err;

	pthread_mutex_lock(&c->lock);
	while (!c->done)
		pthread_cond_wait(&c->cond, &c->lock);
	err = c->err;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	if (err) {
		errno = err;
		return -1;
	}
	return 0;
}

#endif /* ISCSIFS_COMPLETION_H */
