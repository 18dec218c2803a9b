/* fuse_loop.c: serving the FUSE device from the event loops (see
 * fuse_loop.h, evloop.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * fuse_loop_run() starts the helper pool, then adds the FUSE device fd
 * (made non-blocking) to loop 0 with EPOLLEXCLUSIVE, and waits.  The same
 * loops own the sessions' sockets.  The other loops watch the device too
 * only while the loops watching it are busy (the spill, below): each
 * watching loop is woken for requests whenever the ones before it are not
 * waiting, so a second loop watching under a load the first keeps up with
 * costs a wake-up per request or two and a preemption on a machine whose
 * CPUs are shared, and saves nothing (doc/bench.md).  On a wake-up a loop reads and handles
 * requests until the device has none (libfuse returns -EAGAIN) or
 * READS_PER_WAKEUP were handled, so that its other events get their turn;
 * the device stays readable and level-triggered epoll reports it again.
 * Handlers do not wait on the network: reads and writes complete later on
 * the loop of the session that carried them, and what may block is
 * offloaded to the helper pool (helpers.h).
 *
 * The loops block signals: fuse_loop_catch_signals()'s handler runs on
 * another thread and only sets stop_signal, which the waiting main thread
 * notices within 200 ms (on CLOCK_MONOTONIC: deadline.h).  The session is
 * not exited then, as libfuse's own handlers would: libfuse 3.14 drops,
 * unanswered, a request it reads once the session has exited.  When the
 * file system is unmounted, the read of the loop that sees it fails with
 * ENODEV, libfuse exits the session, and that loop stops watching the
 * device and posts finished.  Either way the main thread first runs the
 * caller's quiesce step while the loops still answer requests
 * (fs_set_session(NULL) waits for a notification in flight, which may
 * wait in the kernel for a lookup's answer), then takes the device off
 * every loop (on the loop: evloop_run_sync()), and only then exits the
 * session; the loops go on serving the sessions until they are logged
 * out.
 *
 * The spill: every LOOP_SPILL_WINDOW_MS at most, loop 0, when it handles
 * requests, reads the CPU time of the watching loops (0..spilled) and
 * loop_spill_next() (loop_spill.h) says whether one loop more or one
 * fewer should watch.  The ask is a post to that loop (want_watch,
 * spill_call), which then adds or removes the device itself.  Only loop 0
 * decides, and loop 0 always watches; with one loop there is nothing to
 * decide.
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
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "mountinfo.h"
#include "evloop.h"
#include "iobuf.h"
#include "loop_spill.h"

/* Requests one loop handles per wake-up at most. */
#define READS_PER_WAKEUP 32
/* Request buffers kept for reuse at most (each about 1 MiB). */
#define SPARE_BUFFERS 8

struct fuse_loop;

/* The FUSE device on one event loop. */
struct loop {
	struct ev_source src;         /* the device fd on the loop */
	struct fuse_loop *shared;     /* what every loop of the mount shares */
	struct evloop *ev;            /* the event loop */
	unsigned index;               /* 0..nloops-1, in the statistics */
	atomic_bool watching;         /* src is on the loop (written by the loop only;
	                               * read by loop 0's spill check and the statistics) */
	bool add_failed_told;         /* the loop only: a failed add was logged */
	bool added;                   /* watch_on_loop() put src on the loop (written
	                               * there once, read by the main thread after) */
	struct fuse_buf buf;          /* the loop only: the buffer of its next request */
	atomic_ulong requests;        /* requests handled (written by the loop only) */
	atomic_bool want_watch;       /* loops 1..: whether loop 0 wants this loop to
	                               * watch the device (written by loop 0, read here) */
	atomic_ulong spills;          /* times loop 0 set want_watch (written by loop 0) */
	struct ev_call spill_call;    /* posted by loop 0 when want_watch changed */
};

/* Loop 0's view of the spill (see the notes); loop 0 only. */
struct spill {
	unsigned spilled;             /* loops 1..spilled are asked to watch */
	int64_t window_start_ns;      /* CLOCK_MONOTONIC start of the window, 0: none */
	int64_t window_cpu_ns;        /* CPU time of loops 0..spilled at its start */
};

/* What the loops of a mount share (read-only while they run, but for the
 * atomics and the semaphore). */
struct fuse_loop {
	struct fuse_session *se;      /* the session served (thread-safe calls only) */
	int fuse_fd;                  /* its device fd, non-blocking */
	struct helpers *helpers;      /* where blocking handlers run */
	unsigned nloops;              /* entries of loops */
	struct loop *loops;           /* the loops */
	sem_t finished;               /* posted by a loop that saw the session end */
	struct spill spill;           /* loop 0 only: which loops watch */
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
	return helpers_post(current_loop->shared->helpers, job);
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
		out[i].wakeups = evloop_wakeups(evloop_index(fl->loops[i].ev));
		out[i].watching = atomic_load(&fl->loops[i].watching);
		out[i].spills = atomic_load_explicit(&fl->loops[i].spills, memory_order_relaxed);
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

/* Stop watching the device on this loop (the session ended, or the spill
 * asks), if it does. */
static void unwatch(struct loop *l)
{
	if (!atomic_load(&l->watching))
		return;
	evloop_remove(l->ev, &l->src);
	atomic_store(&l->watching, false);
	free(l->buf.mem);
	l->buf.mem = NULL;
}

/* The CPU time loops 0..@last have used so far, or -1. */
static int64_t watchers_cpu_ns(const struct fuse_loop *fl, unsigned last)
{
	int64_t sum = 0;

	for (unsigned i = 0; i <= last; i++) {
		int64_t ns;
		if (evloop_cpu_ns(evloop_index(fl->loops[i].ev), &ns) < 0)
			return -1;
		sum += ns;
	}
	return sum;
}

/* On loop 0, after it handled requests: once a window has passed, ask one
 * loop more or one fewer to watch the device if the watching loops' CPU
 * time over it says so (see the notes). */
static void spill_check(struct fuse_loop *fl)
{
	struct spill *s = &fl->spill;
	int64_t now = mono_now_ns();

	const int64_t window_ns = LOOP_SPILL_WINDOW_MS * 1000000LL;
	if (s->window_start_ns && now - s->window_start_ns < window_ns)
		return;
	/* A loop asked to watch a window ago that does not could not add the
	 * device: off the count, and asked again when the load says so. */
	struct loop *last = &fl->loops[s->spilled];
	if (s->spilled > 0 && !atomic_load(&last->watching)) {
		atomic_store(&last->want_watch, false);
		evloop_post(last->ev, &last->spill_call);
		s->spilled--;
		s->window_start_ns = 0;
	}
	int64_t cpu = watchers_cpu_ns(fl, s->spilled);
	if (cpu < 0)
		return;
	/* a window that spans an idle spell says nothing of the load now:
	 * a fresh one */
	if (s->window_start_ns && now - s->window_start_ns <= LOOP_SPILL_STALE_WINDOWS * window_ns) {
		/* CPUs' worth of work the watching loops did over the window */
		double busy = (double)(cpu - s->window_cpu_ns) / (double)(now - s->window_start_ns);
		unsigned next = loop_spill_next(s->spilled, busy, fl->nloops);
		struct loop *asked = NULL;
		if (next > s->spilled) {
			asked = &fl->loops[next];
			count(&asked->spills);
		} else if (next < s->spilled) {
			asked = &fl->loops[s->spilled];
		}
		s->spilled = next;
		if (asked) {
			atomic_store(&asked->want_watch, asked->index <= s->spilled);
			evloop_post(asked->ev, &asked->spill_call);   /* a no-op if queued */
			cpu = watchers_cpu_ns(fl, s->spilled);       /* over the new set */
			if (cpu < 0) {
				s->window_start_ns = 0;
				return;
			}
		}
	}
	s->window_start_ns = now;
	s->window_cpu_ns = cpu;
}

/* Watch the device on this loop or stop, as loop 0 asks (ev_call.run). */
static void spill_changed(struct ev_call *call)
{
	struct loop *l = (struct loop *)((char *)call - offsetof(struct loop, spill_call));

	if (!atomic_load(&l->want_watch)) {
		unwatch(l);
	} else if (!atomic_load(&l->watching) && !fuse_session_exited(l->shared->se)) {
		/* (on failure loop 0 takes it off its count after a window
		 * and may ask again: told once) */
		if (evloop_add(l->ev, &l->src, EPOLLIN | EPOLLEXCLUSIVE) == 0)
			atomic_store(&l->watching, true);
		else if (!l->add_failed_told)
			log_warn("loop %u cannot watch the FUSE device: %s", l->index, err_msg());
		l->add_failed_told |= !atomic_load(&l->watching);
	}
}

/* The device is readable (ev_source.ready). */
static void device_ready(struct ev_source *src, uint32_t events)
{
	struct loop *l = (struct loop *)src;
	struct fuse_loop *fl = l->shared;

	(void)events;
	if (!atomic_load(&l->watching))
		return;
	/* (until the main thread takes the device off, see fuse_loop_run()) */
	current_loop = l;
	bool serving = serve_requests(l, &l->buf);
	current_loop = NULL;
	if (!serving) {
		/* (level-triggered: a dead device would be reported forever) */
		unwatch(l);
		sem_post(&fl->finished);
	} else if (l->index == 0 && fl->nloops > 1) {
		spill_check(fl);
	}
}

/* Put the device on the loop of @arg (evloop_run_sync()). */
static void watch_on_loop(void *arg)
{
	struct loop *l = arg;

	if (evloop_add(l->ev, &l->src, EPOLLIN | EPOLLEXCLUSIVE) < 0)
		log_error("%s", err_msg());
	else
	{
		atomic_store(&l->watching, true);
		l->added = true;
	}
}

/* Take the device off the loop of @arg (evloop_run_sync()). */
static void unwatch_on_loop(void *arg)
{
	unwatch(arg);
}

/* How long files still open when a signal asked the mount to end are
 * served after the mount was taken out of the namespace. */
#define DETACH_GRACE_MS 30000

extern char **environ;

/* The signal that asked the mount to end, 0 while none did; set by the
 * handler of fuse_loop_catch_signals(), read by the main thread (a
 * lock-free atomic: async-signal-safe). */
static atomic_int stop_signal;
/* A second signal came: the files still open are not waited for. */
static atomic_bool stop_forced;

/* What fuse_loop_run() did to the mount, for fuse_loop_unmount(); the
 * main thread only. */
static struct {
	bool detached;              /* a signal took it out of the namespace */
	dev_t dev;                  /* its device (the mount table's, at
	                             * the start), 0 when unknown */
} mount_state;

static void catch_stop(int signo)
{
	if (atomic_load(&stop_signal))
		atomic_store(&stop_forced, true);
	atomic_store(&stop_signal, signo);
}

int fuse_loop_catch_signals(void)
{
	static const int signals[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa = { .sa_handler = catch_stop };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
		if (sigaction(signals[i], &sa, NULL) < 0)
			return -1;
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

bool fuse_loop_stop_requested(void)
{
	return atomic_load(&stop_signal) != 0;
}

/* Run fusermount3 with @argv[1..]: where libfuse installs it, else by
 * PATH.  Returns whether it ran and exited 0. */
static bool run_fusermount(char *argv[])
{
	static const char *const paths[] = { "/usr/bin/fusermount3", "/bin/fusermount3" };
	pid_t pid;
	int ws, rc = -1;

	for (size_t i = 0; i < sizeof paths / sizeof paths[0] && rc != 0; i++)
		rc = access(paths[i], X_OK) == 0 ?
			posix_spawn(&pid, paths[i], NULL, NULL, argv, environ) : -1;
	if (rc != 0 && posix_spawnp(&pid, "fusermount3", NULL, NULL, argv, environ) != 0)
		return false;
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return false;
	return WIFEXITED(ws) && WEXITSTATUS(ws) == 0;
}

/* Take @mountpoint out of the namespace now and unmount it once its last
 * file is closed (MNT_DETACH, else fusermount3 -u -z): the kernel then
 * ends the connection itself (the loops' read sees ENODEV), and what is
 * open until then is served.  Only while the path still shows our mount
 * (mount_state.dev): never one stacked on it.  Returns whether it is
 * detached; says why not. */
static bool detach_mount(const char *mountpoint)
{
	dev_t dev;

	if (!mountinfo_find(mountpoint, &dev) || (mount_state.dev && dev != mount_state.dev)) {
		log_error("%s does not show this mount any more; not unmounting it", mountpoint);
		return false;
	}
	if (umount2(mountpoint, MNT_DETACH) == 0)
		return true;
	int err = errno;
	char *argv[] = { "fusermount3", "-u", "-z", "-q", (char *)mountpoint, NULL };
	if (run_fusermount(argv))
		return true;
	log_error("unmounting %s: %s, and fusermount3 -u -z failed", mountpoint, strerror(err));
	return false;
}

/* Whether the kernel has ended the connection of device fd @fd. */
static bool connection_ended(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = 0 };

	return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLERR);
}

void fuse_loop_unmount(struct fuse_session *se)
{
	int fd = fuse_session_fd(se);

	if (!mount_state.detached) {
		fuse_session_unmount(se);
		return;
	}
	/* Out of the namespace: libfuse's unmount by path would take
	 * whatever is mounted there now, unless it sees the connection
	 * ended (POLLERR: then it only closes the descriptor and frees its
	 * record).  A connection still up (files kept open past the grace)
	 * is ended by dropping our reference to the device: the descriptor
	 * becomes the write end of a pipe without a reader, which polls as
	 * POLLERR too. */
	if (!connection_ended(fd)) {
		int p[2];
		if (pipe2(p, O_CLOEXEC) == 0) {
			close(p[0]);
			dup2(p[1], fd);
			close(p[1]);
		}
	}
	if (connection_ended(fd))
		fuse_session_unmount(se);
	else
		log_error("cannot end the FUSE connection of a detached mount");
}

int fuse_loop_run(struct fuse_session *se, const char *mountpoint, void (*quiesce)(void *arg),
		  void *arg)
{
	struct fuse_loop fl = { .se = se, .fuse_fd = fuse_session_fd(se) };
	unsigned watching = 0;
	int64_t detached_ns = 0;
	int flags;

	/* (from the mount table: a stat() of the mount point here would be a
	 * request nobody reads yet) */
	mount_state.detached = false;
	if (!mountinfo_find(mountpoint, &mount_state.dev))
		mount_state.dev = 0;

	if (evloops_start() < 0) {
		log_error("%s", err_msg());
		return -1;
	}
	fl.nloops = evloops_count();
	fl.loops = calloc(fl.nloops, sizeof *fl.loops);
	if (!fl.loops || sem_init(&fl.finished, 0, 0) < 0) {
		log_error("cannot set up the event loops: %s", strerror(errno));
		free(fl.loops);
		return -1;
	}
	flags = fcntl(fl.fuse_fd, F_GETFL);
	if (flags < 0 || fcntl(fl.fuse_fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		log_error("cannot make the FUSE device non-blocking: %s", strerror(errno));
		goto out;
	}
	fl.helpers = helpers_on_demand(FUSE_LOOP_HELPERS, FUSE_HELPER_IDLE_MS, "opener");
	if (!fl.helpers)
		goto out;
	spares_accept(true);
	/* every entry first: a loop reads the others' (fuse_loop_counters())
	 * from its first request on */
	for (unsigned i = 0; i < fl.nloops; i++) {
		struct loop *l = &fl.loops[i];
		l->src.fd = fl.fuse_fd;
		l->src.ready = device_ready;
		l->shared = &fl;
		l->ev = evloop_at(i);
		l->index = i;
		atomic_init(&l->requests, 0);
		atomic_init(&l->watching, false);
		atomic_init(&l->want_watch, false);
		atomic_init(&l->spills, 0);
		l->spill_call.run = spill_changed;
	}
	/* loop 0; the others when it is busy (the spill) */
	evloop_run_sync(fl.loops[0].ev, watch_on_loop, &fl.loops[0]);
	watching = fl.loops[0].added;
	/* Wait for a loop to see the session end (an unmount, or a read
	 * error); give back the read buffers a burst left idle meanwhile.  A
	 * signal (stop_signal) unmounts lazily and goes on waiting, so that
	 * files still open are served until they are closed, DETACH_GRACE_MS
	 * at most, or until a second signal. */
	while (watching > 0 && !fuse_session_exited(se)) {
		int64_t now = mono_now_ns();
		int signo = atomic_load(&stop_signal);
		if (signo && !detached_ns) {
			log_info("%s: unmounting %s (files still open are served until closed, "
				 "%d s at most)", strsignal(signo), mountpoint, DETACH_GRACE_MS / 1000);
			detached_ns = now;
			mount_state.detached = detach_mount(mountpoint);
			if (!mount_state.detached)
				break;           /* unmounted by path below, as it stands */
		} else if (detached_ns && atomic_load(&stop_forced)) {
			log_warn("a second signal: the I/O of files of %s still open is cut off",
				 mountpoint);
			break;
		} else if (detached_ns && now - detached_ns > (int64_t)DETACH_GRACE_MS * 1000000) {
			log_warn("files of %s still open after %d s; their I/O is cut off",
				 mountpoint, DETACH_GRACE_MS / 1000);
			break;
		}
		struct timespec until = deadline_in_ms(200);
		if (deadline_sem_wait(&fl.finished, &until) == 0)
			break;
		iobuf_trim(mono_now_ns());
	}
	if (quiesce)
		quiesce(arg);     /* the loops still answer requests */
	/* loop 0 first: it posts no spill call after it; each other loop runs
	 * a spill call posted before ahead of its unwatch */
	for (unsigned i = 0; i < fl.nloops; i++)
		evloop_run_sync(fl.loops[i].ev, unwatch_on_loop, &fl.loops[i]);
	/* no loop reads the device any more: nothing read is dropped */
	fuse_session_exit(se);
	/* no loop posts jobs any more */
	helpers_stop(fl.helpers);
	spares_accept(false);
out:
	sem_destroy(&fl.finished);
	free(fl.loops);
	return watching > 0 ? 0 : -1;
}
