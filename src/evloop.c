/* evloop.c: the daemon's event loops (see evloop.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * Each loop thread has an epoll instance, an eventfd and a queue of
 * posted calls under its own lock.  One turn of a loop: run every posted
 * call, fire the timers that are due, wait in epoll_wait() until the
 * nearest timer (not at all when calls are queued), and hand each event to
 * its source's ready().  A post from another thread writes the eventfd
 * (once until the loop reads it: wake_pending); a post from the loop
 * itself only queues, since the loop runs the queue before it waits.
 *
 * Timers are a list sorted by deadline, touched only by their loop; the
 * few a loop has (one per session for its reconnect, one per pool for its
 * watchdog) make a heap not worth having.
 *
 * The loops block every signal (libfuse's handlers run on the main
 * thread).  evloops_stop() sets stopping and wakes them; each leaves at
 * the end of its turn.
 */
#include "evloop.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "completion.h"
#include "deadline.h"
#include "log.h"

/* Events one epoll_wait() returns at most. */
#define EVENTS_PER_WAIT 32

/* One loop thread. */
struct evloop {
	unsigned index;               /* 0..nloops-1; read-only */
	pthread_t tid;                /* the thread; read-only once started */
	int epfd;                     /* its epoll instance; read-only */
	int wake_fd;                  /* its eventfd; read-only */
	pthread_mutex_t lock;         /* protects the queue and wake_pending */
	struct ev_call *calls_head;   /* lock: posted calls, oldest first */
	struct ev_call *calls_tail;   /* lock: the newest */
	bool wake_pending;            /* lock: wake_fd written since the loop last read it */
	struct ev_timer *timers;      /* loop only: armed timers, soonest first */
	atomic_ulong wakeups;         /* epoll_wait() returns with events (loop writes) */
	uint8_t *recv_buf;            /* loop only: the receive buffer its sockets
	                               * share (EVLOOP_RECV_BUFFER bytes, allocated
	                               * at first use), or NULL */
	bool recv_buf_lent;           /* loop only: recv_buf is lent out */
};

/* The loops of the process. */
static struct {
	pthread_mutex_t lock;         /* protects the fields below, but loops
	                               * and count once started, which are
	                               * read-only until evloops_stop() */
	unsigned wanted;              /* lock: loops to start (evloops_configure()) */
	unsigned count;               /* loops running, 0 when stopped */
	struct evloop *loops;         /* count entries */
	unsigned next;                /* lock: evloop_assign()'s round robin */
	atomic_bool stopping;         /* evloops_stop(): leave at the end of the turn */
} all = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The loop this thread is. */
static _Thread_local struct evloop *current;

void evloops_configure(unsigned loops)
{
	pthread_mutex_lock(&all.lock);
	if (!all.count)
		all.wanted = loops > EVLOOPS_MAX ? EVLOOPS_MAX : loops;
	pthread_mutex_unlock(&all.lock);
}

unsigned evloops_count(void)
{
	return all.count;
}

struct evloop *evloop_at(unsigned i)
{
	return i < all.count ? &all.loops[i] : NULL;
}

struct evloop *evloop_current(void)
{
	return current;
}

unsigned evloop_index(const struct evloop *l)
{
	return l->index;
}

unsigned long evloop_wakeups(unsigned i)
{
	return i < all.count ? atomic_load_explicit(&all.loops[i].wakeups, memory_order_relaxed) : 0;
}

int evloop_cpu_ns(unsigned i, int64_t *ns)
{
	clockid_t clock;
	struct timespec ts;

	if (i >= all.count || pthread_getcpuclockid(all.loops[i].tid, &clock) != 0 ||
	    clock_gettime(clock, &ts) != 0)
		return -1;
	*ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	return 0;
}

/* Run the posted calls, the ones posted meanwhile too. */
static void run_calls(struct evloop *l)
{
	for (;;) {
		pthread_mutex_lock(&l->lock);
		struct ev_call *c = l->calls_head;
		if (c) {
			l->calls_head = c->next;
			if (!l->calls_head)
				l->calls_tail = NULL;
			c->next = NULL;
			c->queued = false;
		}
		pthread_mutex_unlock(&l->lock);
		if (!c)
			return;
		c->run(c);
	}
}

/* Fire the timers that are due; returns the wait until the next one in
 * milliseconds (-1: none armed). */
static int fire_timers(struct evloop *l)
{
	for (;;) {
		struct ev_timer *t = l->timers;
		if (!t)
			return -1;
		int64_t left = t->when_ns - mono_now_ns();
		if (left > 0)
			return (int)((left + 999999) / 1000000);
		l->timers = t->next;
		t->next = NULL;
		t->when_ns = 0;
		t->fire(t);
	}
}

/* Whether calls wait in the queue of @l. */
static bool calls_queued(struct evloop *l)
{
	pthread_mutex_lock(&l->lock);
	bool queued = l->calls_head != NULL;
	pthread_mutex_unlock(&l->lock);
	return queued;
}

static void *loop_main(void *arg)
{
	struct evloop *l = arg;
	struct epoll_event ev[EVENTS_PER_WAIT];
	sigset_t signals;
	char name[16];

	snprintf(name, sizeof name, "loop%u", l->index);
	pthread_setname_np(pthread_self(), name);   /* as ps -L and top -H show it */
	sigfillset(&signals);
	pthread_sigmask(SIG_BLOCK, &signals, NULL);
	current = l;
	while (!atomic_load(&all.stopping)) {
		run_calls(l);
		int wait_ms = fire_timers(l);
		if (calls_queued(l))
			wait_ms = 0;
		int n = epoll_wait(l->epfd, ev, EVENTS_PER_WAIT, wait_ms);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("event loop %u: epoll_wait: %s", l->index, strerror(errno));
			break;
		}
		if (n > 0)
			atomic_store_explicit(&l->wakeups,
					      atomic_load_explicit(&l->wakeups, memory_order_relaxed) + 1,
					      memory_order_relaxed);
		for (int i = 0; i < n; i++) {
			struct ev_source *src = ev[i].data.ptr;
			if (!src) {
				/* Read first, then clear wake_pending: a post in
				 * between writes again (one wake-up too many at
				 * worst), while the other order could swallow the
				 * write of a post whose wake_pending then stays set,
				 * and no later post would write at all. */
				uint64_t value;
				if (read(l->wake_fd, &value, sizeof value) < 0 && errno != EAGAIN)
					log_warn("event loop %u: reading its eventfd: %s", l->index,
						 strerror(errno));
				pthread_mutex_lock(&l->lock);
				l->wake_pending = false;
				pthread_mutex_unlock(&l->lock);
				continue;
			}
			src->ready(src, ev[i].events);
		}
	}
	current = NULL;
	return NULL;
}

/* Set up loop @l: its epoll instance, eventfd and lock.  0, or -1 with
 * err_set(). */
static int loop_init(struct evloop *l, unsigned index)
{
	struct epoll_event wake_ev = { .events = EPOLLIN, .data.ptr = NULL };

	memset(l, 0, sizeof *l);
	l->index = index;
	atomic_init(&l->wakeups, 0);
	pthread_mutex_init(&l->lock, NULL);
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->epfd < 0 || l->wake_fd < 0 ||
	    epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &wake_ev) < 0) {
		err_set(errno, "cannot set up event loop %u: %s", index, strerror(errno));
		return -1;
	}
	return 0;
}

static void loop_fini(struct evloop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	free(l->recv_buf);
	pthread_mutex_destroy(&l->lock);
}

/* The default number of loops: online CPUs, 1..8. */
static unsigned default_loops(void)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	return cpus < 1 ? 1 : cpus > 8 ? 8 : (unsigned)cpus;
}

/* evloops_start() with all.lock held. */
static int start_locked(void)
{
	if (all.count)
		return 0;
	unsigned n = all.wanted ? all.wanted : default_loops();
	struct evloop *loops = calloc(n, sizeof *loops);
	if (!loops) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < n; i++)
		loops[i].epfd = loops[i].wake_fd = -1;
	unsigned ready = 0, started = 0;
	for (; ready < n; ready++)
		if (loop_init(&loops[ready], ready) < 0)
			goto fail;
	atomic_store(&all.stopping, false);
	for (; started < n; started++) {
		int rc = pthread_create(&loops[started].tid, NULL, loop_main, &loops[started]);
		if (rc) {
			err_set(rc, "cannot start event loop %u: %s", started, strerror(rc));
			goto fail;
		}
	}
	all.loops = loops;
	all.count = n;
	return 0;

fail:
	atomic_store(&all.stopping, true);
	for (unsigned i = 0; i < started; i++) {
		const uint64_t one = 1;
		if (write(loops[i].wake_fd, &one, sizeof one) < 0)
			log_warn("cannot wake event loop %u: %s", i, strerror(errno));
		pthread_join(loops[i].tid, NULL);
	}
	for (unsigned i = 0; i <= ready && i < n; i++)
		loop_fini(&loops[i]);
	free(loops);
	return -1;
}

int evloops_start(void)
{
	pthread_mutex_lock(&all.lock);
	int rc = start_locked();
	pthread_mutex_unlock(&all.lock);
	return rc;
}

struct evloop *evloop_assign(void)
{
	struct evloop *l = NULL;

	pthread_mutex_lock(&all.lock);
	if (start_locked() == 0)
		l = &all.loops[all.next++ % all.count];
	pthread_mutex_unlock(&all.lock);
	return l;
}

void evloops_stop(void)
{
	pthread_mutex_lock(&all.lock);
	unsigned n = all.count;
	struct evloop *loops = all.loops;
	all.count = 0;
	all.loops = NULL;
	all.next = 0;
	atomic_store(&all.stopping, true);
	pthread_mutex_unlock(&all.lock);
	for (unsigned i = 0; i < n; i++) {
		const uint64_t one = 1;
		if (write(loops[i].wake_fd, &one, sizeof one) < 0)
			log_warn("cannot wake event loop %u: %s", i, strerror(errno));
	}
	for (unsigned i = 0; i < n; i++) {
		pthread_join(loops[i].tid, NULL);
		loop_fini(&loops[i]);
	}
	free(loops);
}

int evloop_add(struct evloop *l, struct ev_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, src->fd, &ev) < 0) {
		err_set(errno, "event loop %u: cannot watch descriptor %d: %s", l->index, src->fd,
			strerror(errno));
		return -1;
	}
	return 0;
}

int evloop_watch(struct evloop *l, struct ev_source *src, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, src->fd, &ev);
}

void evloop_remove(struct evloop *l, struct ev_source *src)
{
	/* (a descriptor closed already left the instance by itself) */
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, src->fd, NULL);
}

void evloop_post(struct evloop *l, struct ev_call *call)
{
	bool wake = false;

	pthread_mutex_lock(&l->lock);
	if (!call->queued) {
		call->queued = true;
		call->next = NULL;
		if (l->calls_tail)
			l->calls_tail->next = call;
		else
			l->calls_head = call;
		l->calls_tail = call;
		/* the loop itself runs its queue before it waits again */
		if (current != l && !l->wake_pending) {
			l->wake_pending = true;
			wake = true;
		}
	}
	pthread_mutex_unlock(&l->lock);
	if (wake) {
		const uint64_t one = 1;
		if (write(l->wake_fd, &one, sizeof one) < 0)
			log_warn("cannot wake event loop %u: %s", l->index, strerror(errno));
	}
}

void evloop_cancel(struct evloop *l, struct ev_call *call)
{
	pthread_mutex_lock(&l->lock);
	if (call->queued) {
		struct ev_call **pp = &l->calls_head, *prev = NULL;
		while (*pp && *pp != call) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		if (*pp) {
			*pp = call->next;
			if (l->calls_tail == call)
				l->calls_tail = prev;
		}
		call->queued = false;
		call->next = NULL;
	}
	pthread_mutex_unlock(&l->lock);
}

/* A call of evloop_run_sync() and its waiter. */
struct sync_call {
	struct ev_call call;          /* posted to the loop */
	void (*fn)(void *arg);        /* what to run there */
	void *arg;                    /* its argument */
	struct completion done;       /* posted once fn returned */
};

static void sync_call_run(struct ev_call *call)
{
	struct sync_call *sc = (struct sync_call *)call;

	sc->fn(sc->arg);
	completion_post(&sc->done, 0);
}

void evloop_run_sync(struct evloop *l, void (*fn)(void *arg), void *arg)
{
	if (current == l) {
		fn(arg);
		return;
	}
	struct sync_call sc = { .call.run = sync_call_run, .fn = fn, .arg = arg };

	completion_init(&sc.done);
	evloop_post(l, &sc.call);
	completion_wait(&sc.done);
}

uint8_t *evloop_recv_buffer_borrow(size_t *cap)
{
	struct evloop *l = current;

	if (!l || l->recv_buf_lent)
		return NULL;
	if (!l->recv_buf && !(l->recv_buf = malloc(EVLOOP_RECV_BUFFER)))
		return NULL;
	l->recv_buf_lent = true;
	*cap = EVLOOP_RECV_BUFFER;
	return l->recv_buf;
}

void evloop_recv_buffer_return(void)
{
	if (current)
		current->recv_buf_lent = false;
}

void evloop_timer_cancel(struct evloop *l, struct ev_timer *timer)
{
	if (!timer->when_ns)
		return;
	for (struct ev_timer **pp = &l->timers; *pp; pp = &(*pp)->next) {
		if (*pp == timer) {
			*pp = timer->next;
			break;
		}
	}
	timer->next = NULL;
	timer->when_ns = 0;
}

void evloop_timer_arm(struct evloop *l, struct ev_timer *timer, int64_t when_ns)
{
	evloop_timer_cancel(l, timer);
	if (when_ns <= 0)
		when_ns = 1;     /* (0 means "not armed") */
	struct ev_timer **pp = &l->timers;
	while (*pp && (*pp)->when_ns <= when_ns)
		pp = &(*pp)->next;
	timer->when_ns = when_ns;
	timer->next = *pp;
	*pp = timer;
}
