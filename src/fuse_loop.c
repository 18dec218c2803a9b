/* fuse_loop.c: the event loops over the FUSE device (see fuse_loop.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * fuse_loop_run() starts the helper pool, then K loop threads, and waits.
 * Each loop has its own epoll instance holding the FUSE device fd (the fd
 * made non-blocking, registered in every instance with EPOLLEXCLUSIVE, so
 * a request wakes one idle loop rather than all) and its own eventfd.  On
 * a wake-up a loop reads and handles requests until the device has none
 * (libfuse returns -EAGAIN) or READS_PER_WAKEUP were handled, so that its
 * other events get their turn; the device stays readable and
 * level-triggered epoll reports it again.  Handlers do not wait on the
 * network: reads and writes complete later on a session's RX thread, and
 * what may block is offloaded to the helper pool (helpers.h).  Sessions
 * still have their own RX and TX threads in this version; a loop sends
 * its commands itself when the session's socket is idle
 * (session_inline_sends()).
 *
 * Loops block signals: the handlers libfuse installed run on another
 * thread and exit the session, which the waiting main thread notices
 * within 200 ms (on CLOCK_MONOTONIC: deadline.h).  When the file system
 * is unmounted, the read of the loop that sees it fails with ENODEV,
 * libfuse exits the session, and that loop posts finished.  Either way
 * the main thread then sets stopping and writes every loop's eventfd;
 * each loop leaves at its next wake-up (a handler is never interrupted).
 *
 * A request buffer belongs to one loop at a time; current_buffer and
 * buffer_taken are thread-local and describe the request being handled
 * on this thread.  A write takes its buffer; it comes back through
 * fuse_loop_release_buffer() on the thread that completes the write and
 * waits in spares for the next loop that needs one.
 */
#include "fuse_loop.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "session.h"

/* Requests one loop handles per wake-up at most. */
#define READS_PER_WAKEUP 32
/* Request buffers kept for reuse at most (each about 1 MiB). */
#define SPARE_BUFFERS 8

/* epoll_event.data.u32 of a loop's two fds. */
enum loop_source {
	SOURCE_FUSE,                  /* the FUSE device: requests to read */
	SOURCE_WAKE,                  /* the loop's eventfd: look at stopping */
};

struct fuse_loop;

/* One loop thread. */
struct loop {
	struct fuse_loop *shared;     /* what every loop of the mount shares */
	unsigned index;               /* 0..nloops-1, in the statistics */
	pthread_t tid;                /* the thread (valid when started) */
	bool started;                 /* the thread was created (main thread only) */
	int epfd;                     /* its epoll instance, -1 before */
	int wake_fd;                  /* its eventfd, -1 before */
	atomic_ulong requests;        /* requests handled (written by the loop only) */
	atomic_ulong wakeups;         /* epoll_wait() returns with events (likewise) */
};

/* What the loops of a mount share (read-only while they run, but for the
 * atomics and the semaphore). */
struct fuse_loop {
	struct fuse_session *se;      /* the session served (thread-safe calls only) */
	int fuse_fd;                  /* its device fd, non-blocking */
	struct helpers *helpers;      /* where blocking handlers run */
	unsigned nloops;              /* entries of loops */
	struct loop *loops;           /* the loops */
	atomic_bool stopping;         /* set by the main thread: loops leave */
	sem_t finished;               /* posted by a loop that saw the session end */
};

/* Buffers given back by writes, for the loops' next requests. */
static struct {
	pthread_mutex_t lock;         /* protects the fields below */
	bool accepting;               /* lock: a fuse_loop_run() runs: keep buffers */
	unsigned count;               /* lock: entries of buf in use */
	void *buf[SPARE_BUFFERS];     /* lock: the spare buffers */
} spares = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The loop this thread is (NULL on any other thread). */
static _Thread_local struct loop *current_loop;
/* The buffer of the request this thread is handling (NULL outside). */
static _Thread_local void *current_buffer;
/* Set by fuse_loop_take_buffer(): the loop must not reuse the buffer. */
static _Thread_local bool buffer_taken;

void *fuse_loop_take_buffer(void)
{
	if (!current_buffer)
		return NULL;
	buffer_taken = true;
	return current_buffer;
}

void fuse_loop_release_buffer(void *buffer)
{
	pthread_mutex_lock(&spares.lock);
	if (spares.accepting && spares.count < SPARE_BUFFERS) {
		spares.buf[spares.count++] = buffer;
		buffer = NULL;
	}
	pthread_mutex_unlock(&spares.lock);
	free(buffer);
}

/* A spare buffer, or NULL (libfuse allocates one then). */
static void *spare_take(void)
{
	void *buffer = NULL;

	pthread_mutex_lock(&spares.lock);
	if (spares.count > 0)
		buffer = spares.buf[--spares.count];
	pthread_mutex_unlock(&spares.lock);
	return buffer;
}

/* Start or stop keeping spare buffers; stopping frees those kept. */
static void spares_accept(bool accept)
{
	pthread_mutex_lock(&spares.lock);
	spares.accepting = accept;
	while (!accept && spares.count > 0)
		free(spares.buf[--spares.count]);
	pthread_mutex_unlock(&spares.lock);
}

int fuse_loop_offload(struct helper_job *job)
{
	if (!current_loop)
		return -1;
	helpers_post(current_loop->shared->helpers, job);
	return 0;
}

unsigned fuse_loop_counters(struct fuse_loop_counters *out, unsigned max,
			    unsigned long *helper_jobs)
{
	const struct fuse_loop *fl;

	*helper_jobs = 0;
	if (!current_loop)
		return 0;
	fl = current_loop->shared;
	for (unsigned i = 0; i < fl->nloops && i < max; i++) {
		out[i].requests = atomic_load_explicit(&fl->loops[i].requests,
						       memory_order_relaxed);
		out[i].wakeups = atomic_load_explicit(&fl->loops[i].wakeups,
						      memory_order_relaxed);
	}
	*helper_jobs = helpers_jobs_run(fl->helpers);
	return fl->nloops;
}

/* Add one to a counter only its loop writes. */
static void count(atomic_ulong *counter)
{
	atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + 1,
			      memory_order_relaxed);
}

/* Read and handle requests until the device has none or
 * READS_PER_WAKEUP were handled.  Returns false once the session has
 * ended (unmount, or a read error, said in the log). */
static bool serve_requests(struct loop *l, struct fuse_buf *buf)
{
	struct fuse_session *se = l->shared->se;

	for (unsigned n = 0; n < READS_PER_WAKEUP; n++) {
		if (!buf->mem)
			buf->mem = spare_take();
		int res = fuse_session_receive_buf(se, buf);
		if (res == -EAGAIN)
			return true;
		if (res == -EINTR)
			continue;
		if (res <= 0) {
			/* 0: libfuse saw ENODEV (unmounted) and exited the session */
			if (res < 0) {
				log_error("reading the FUSE device: %s", strerror(-res));
				fuse_session_exit(se);
			}
			return false;
		}
		current_buffer = buf->mem;
		buffer_taken = false;
		fuse_session_process_buf(se, buf);
		current_buffer = NULL;
		if (buffer_taken)
			buf->mem = NULL;    /* the next request goes into another buffer */
		count(&l->requests);
	}
	return true;
}

static void *loop_main(void *arg)
{
	struct loop *l = arg;
	struct fuse_loop *fl = l->shared;
	struct fuse_buf buf;
	sigset_t all;
	bool serving = true;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	session_inline_sends(true);   /* its commands skip the TX thread when it is idle */
	current_loop = l;
	memset(&buf, 0, sizeof buf);
	while (serving && !atomic_load(&fl->stopping) && !fuse_session_exited(fl->se)) {
		struct epoll_event ev[2];
		int n = epoll_wait(l->epfd, ev, 2, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("loop %u: waiting for events: %s", l->index, strerror(errno));
			fuse_session_exit(fl->se);
			break;
		}
		count(&l->wakeups);
		for (int i = 0; i < n && serving; i++) {
			if (ev[i].data.u32 == SOURCE_WAKE) {
				uint64_t value;
				if (read(l->wake_fd, &value, sizeof value) < 0 && errno != EAGAIN)
					log_warn("loop %u: reading its eventfd: %s", l->index,
						 strerror(errno));
			} else {
				serving = serve_requests(l, &buf);
			}
		}
	}
	free(buf.mem);
	current_loop = NULL;
	sem_post(&fl->finished);
	return NULL;
}

/* Give loop @l of @fl its epoll instance and eventfd.  0, or -1 with the
 * reason logged. */
static int loop_init(struct fuse_loop *fl, struct loop *l, unsigned index)
{
	struct epoll_event fuse_ev = { .events = EPOLLIN | EPOLLEXCLUSIVE,
				       .data.u32 = SOURCE_FUSE };
	struct epoll_event wake_ev = { .events = EPOLLIN, .data.u32 = SOURCE_WAKE };

	l->shared = fl;
	l->index = index;
	atomic_init(&l->requests, 0);
	atomic_init(&l->wakeups, 0);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->epfd < 0 || l->wake_fd < 0 ||
	    epoll_ctl(l->epfd, EPOLL_CTL_ADD, fl->fuse_fd, &fuse_ev) < 0 ||
	    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &wake_ev) < 0) {
		log_error("cannot set up event loop %u: %s", index, strerror(errno));
		return -1;
	}
	return 0;
}

/* Tell every started loop to leave, and wait for them. */
static void loops_stop(struct fuse_loop *fl)
{
	const uint64_t one = 1;

	atomic_store(&fl->stopping, true);
	for (unsigned i = 0; i < fl->nloops; i++)
		if (fl->loops[i].started && write(fl->loops[i].wake_fd, &one, sizeof one) < 0)
			log_warn("cannot wake loop %u: %s", i, strerror(errno));
	for (unsigned i = 0; i < fl->nloops; i++)
		if (fl->loops[i].started)
			pthread_join(fl->loops[i].tid, NULL);
}

int fuse_loop_run(struct fuse_session *se, unsigned loops)
{
	struct fuse_loop fl = { .se = se, .fuse_fd = fuse_session_fd(se), .nloops = loops };
	unsigned started = 0;
	int flags;

	atomic_init(&fl.stopping, false);
	fl.loops = calloc(loops, sizeof *fl.loops);
	if (!fl.loops || sem_init(&fl.finished, 0, 0) < 0) {
		log_error("cannot set up the event loops: %s", strerror(errno));
		free(fl.loops);
		return -1;
	}
	for (unsigned i = 0; i < loops; i++)
		fl.loops[i].epfd = fl.loops[i].wake_fd = -1;
	flags = fcntl(fl.fuse_fd, F_GETFL);
	if (flags < 0 || fcntl(fl.fuse_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		log_error("cannot make the FUSE device non-blocking: %s", strerror(errno));
		goto out;
	}
	fl.helpers = helpers_start(FUSE_LOOP_HELPERS);
	if (!fl.helpers)
		goto out;
	spares_accept(true);
	for (unsigned i = 0; i < loops; i++)
		if (loop_init(&fl, &fl.loops[i], i) < 0)
			goto stop;
	for (; started < loops; started++) {
		int rc = pthread_create(&fl.loops[started].tid, NULL, loop_main, &fl.loops[started]);
		if (rc) {
			log_error("cannot start event loop %u: %s", started, strerror(rc));
			break;
		}
		fl.loops[started].started = true;
	}
	/* Wait for a loop to leave (unmount) or for a signal handler, on
	 * whichever thread it ran, to exit the session. */
	while (started > 0 && !fuse_session_exited(se)) {
		struct timespec until = deadline_in_ms(200);
		if (deadline_sem_wait(&fl.finished, &until) == 0)
			break;
	}
	fuse_session_exit(se);
stop:
	loops_stop(&fl);
	/* the loops are gone: no job is posted any more */
	helpers_stop(fl.helpers);
	spares_accept(false);
out:
	for (unsigned i = 0; i < loops; i++) {
		if (fl.loops[i].epfd >= 0)
			close(fl.loops[i].epfd);
		if (fl.loops[i].wake_fd >= 0)
			close(fl.loops[i].wake_fd);
	}
	sem_destroy(&fl.finished);
	free(fl.loops);
	return started > 0 ? 0 : -1;
}
