/* fuse_loop.h: serving the FUSE device from the event loops (evloop.h),
 * where a handler may keep its request's buffer after it returns and
 * hands blocking work to a helper thread.
 *
 * fuse_loop_run() puts the FUSE device (non-blocking, EPOLLEXCLUSIVE: one
 * idle loop wakes per request) on each of the K event loops, which also
 * own the sessions' sockets; a loop reads many requests per wake-up.
 * A handler runs on the loop that read its request, so it must not block:
 * what may wait on the network goes to the helper pool
 * (fuse_loop_offload(), helpers.h), which replies when done.
 *
 * libfuse's own loop reuses each worker's buffer for the next request, so
 * an asynchronous write would have to copy its payload.  Here a write
 * handler takes the buffer (fuse_loop_take_buffer()), sends the payload
 * straight from it, and gives it back when the write completes
 * (fuse_loop_release_buffer()); the loop takes a spare buffer for its next
 * request.
 */
#ifndef ISCSIFS_FUSE_LOOP_H
#define ISCSIFS_FUSE_LOOP_H

#define FUSE_USE_VERSION 314
#include <stdbool.h>

#include <fuse_lowlevel.h>

#include "helpers.h"

/* Helper threads beside the loops, for the handlers that block (the first
 * lookup in a discovered target's directory, which opens the target):
 * started as such a handler comes, at most FUSE_LOOP_HELPERS at once, each
 * gone after FUSE_HELPER_IDLE_MS without one.  A target whose logins hang
 * holds one helper until -o timeout, however many requests wait for it
 * (the kernel sends one lookup or listing per directory at a time: fs.c
 * asks for no parallel directory operations), so up to
 * FUSE_LOOP_HELPERS - 1 such targets leave the others' opens unaffected. */
#define FUSE_LOOP_HELPERS 3
#define FUSE_HELPER_IDLE_MS 2000

/* The counters of one loop, for the statistics file. */
struct fuse_loop_counters {
	unsigned long requests;       /* FUSE requests read and handled */
	unsigned long wakeups;        /* returns from epoll_wait() with events */
	bool watching;                /* it watches the FUSE device now (loop 0
	                               * always; the others while it is busy) */
	unsigned long spills;         /* times loop 0 asked it to start watching */
};

/* Make SIGINT, SIGTERM and SIGHUP end fuse_loop_run() (SIGPIPE ignored),
 * instead of libfuse's fuse_set_signal_handlers(), whose handlers exit the
 * session at once: libfuse 3.14 then drops the next request it reads,
 * unanswered, and a process waits on it until the unmount aborts the
 * connection (and so may the unmount, behind a notification that waits
 * on that request's lock).  A second signal cuts the wait for files
 * still open short.  Returns 0, or -1 with errno. */
int fuse_loop_catch_signals(void);

/* Whether a signal caught so asked the mount to end (also before
 * fuse_loop_run()). */
bool fuse_loop_stop_requested(void);

/* Unmount after fuse_loop_run(): fuse_session_unmount(), unless a signal
 * took the mount out of the namespace (then the path may hold another
 * mount: the connection is ended, aborted if need be, never unmounted by
 * path). */
void fuse_loop_unmount(struct fuse_session *se);

/* Serve @se on the event loops (evloop.h; started if need be) with
 * up to FUSE_LOOP_HELPERS helpers until the file system is unmounted.  A
 * signal caught by fuse_loop_catch_signals() unmounts @mountpoint lazily
 * (out of the namespace at once, unmounted by the kernel when its last
 * file is closed): files still open are served until closed, 30 s at
 * most or until a second signal, so that the I/O in flight is answered;
 * if the lazy unmount fails it stops at once.  Then @quiesce(@arg)
 * (may be NULL) runs while the loops still answer requests, before they
 * stop reading the device and the session exits: what waits there for
 * a kernel call (a notification blocked on a directory lock that a lookup
 * holds) gets its answer instead of waiting for ever.  Returns 0, or -1
 * when it could not start. */
int fuse_loop_run(struct fuse_session *se, const char *mountpoint, void (*quiesce)(void *arg),
		  void *arg);

/* In a request handler called by fuse_loop_run(): take ownership of the
 * buffer holding the current request.  The pointers libfuse passed to the
 * handler stay valid until the caller gives the returned pointer to
 * fuse_loop_release_buffer().  Returns NULL when the handler runs outside
 * fuse_loop_run() (copy then). */
void *fuse_loop_take_buffer(void);

/* Give back a buffer fuse_loop_take_buffer() returned (from any thread,
 * also after fuse_loop_run() has returned): kept as a spare for the
 * loops, or freed. */
void fuse_loop_release_buffer(void *buffer);

/* In a request handler called by fuse_loop_run(): run @job on a helper
 * thread instead of this loop.  Returns 0, or -1 outside fuse_loop_run()
 * (run the work in place then). */
int fuse_loop_offload(struct helper_job *job);

/* On a loop thread: the number of loops of the mount (0 elsewhere); the
 * counters of the first @max of them go to @out, the jobs the helpers ran
 * to *@helper_jobs. */
unsigned fuse_loop_counters(struct fuse_loop_counters *out, unsigned max,
			    unsigned long *helper_jobs);

#endif /* ISCSIFS_FUSE_LOOP_H */
