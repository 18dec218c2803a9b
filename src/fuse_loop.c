/* fuse_loop.c: the multithreaded FUSE loop (see fuse_loop.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * fuse_loop_run() starts N workers and waits.  Each worker reads one
 * request from /dev/fuse into its buffer and processes it; handlers do not
 * wait on the network (reads and writes complete later on a session's RX
 * thread), so a few workers serve any load.  Workers block signals: the
 * handlers libfuse installed run on another thread and exit the session,
 * which the waiting main thread notices within 200 ms (on
 * CLOCK_MONOTONIC: deadline.h).  Workers can be
 * cancelled only while they wait for a request, never inside a handler.
 *
 * A buffer belongs to one worker at a time; current_buffer and
 * buffer_taken are thread-local and describe the request being processed
 * on this thread.
 */
#include "fuse_loop.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "log.h"
#include "session.h"

/* The buffer of the request this thread is processing (NULL outside). */
static _Thread_local void *current_buffer;
/* Set by fuse_loop_take_buffer(): the worker must not reuse the buffer. */
static _Thread_local bool buffer_taken;

/* What the workers share. */
struct fuse_loop {
	struct fuse_session *se;      /* the session served (thread-safe calls only) */
	sem_t finished;               /* posted by a worker that leaves the loop */
};

void *fuse_loop_take_buffer(void)
{
	if (!current_buffer)
		return NULL;
	buffer_taken = true;
	return current_buffer;
}

/* Cancellation cleanup: a worker cancelled in its read frees its buffer. */
static void free_buffer(void *arg)
{
	struct fuse_buf *buf = arg;
	free(buf->mem);
	buf->mem = NULL;
}

static void *worker(void *arg)
{
	struct fuse_loop *loop = arg;
	struct fuse_buf buf;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	session_inline_sends(true);   /* its commands skip the TX thread when it is idle */
	memset(&buf, 0, sizeof buf);
	pthread_cleanup_push(free_buffer, &buf);
	while (!fuse_session_exited(loop->se)) {
		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		int res = fuse_session_receive_buf(loop->se, &buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0) {
			if (res < 0) {
				log_error("reading the FUSE device: %s", strerror(-res));
				fuse_session_exit(loop->se);
			}
			break;
		}
		current_buffer = buf.mem;
		buffer_taken = false;
		fuse_session_process_buf(loop->se, &buf);
		current_buffer = NULL;
		if (buffer_taken)
			buf.mem = NULL;    /* the next receive allocates a fresh one */
	}
	pthread_cleanup_pop(1);
	sem_post(&loop->finished);
	return NULL;
}

int fuse_loop_run(struct fuse_session *se, unsigned threads)
{
	struct fuse_loop loop = { .se = se };
	pthread_t *tids = calloc(threads, sizeof *tids);
	unsigned started = 0;

	if (!tids || sem_init(&loop.finished, 0, 0) < 0) {
		free(tids);
		return -1;
	}
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	for (; started < threads; started++) {
		int rc = pthread_create(&tids[started], NULL, worker, &loop);
		if (rc) {
			log_error("cannot start a FUSE worker: %s", strerror(rc));
			break;
		}
	}
	if (started > 0) {
		/* Wait for a worker to leave (unmount) or for a signal
		 * handler, on whichever thread it ran, to exit the session. */
		while (!fuse_session_exited(se)) {
			struct timespec until = deadline_in_ms(200);
			if (deadline_sem_wait(&loop.finished, &until) == 0)
				break;
		}
		fuse_session_exit(se);
	}
	for (unsigned i = 0; i < started; i++)
		pthread_cancel(tids[i]);
	for (unsigned i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	sem_destroy(&loop.finished);
	free(tids);
	return started > 0 ? 0 : -1;
}
