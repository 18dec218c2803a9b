/* evloop.h: the daemon's event loops: K threads, each waiting with epoll
 * on the descriptors it owns (the FUSE device, the sockets of its
 * sessions), on its own eventfd for work posted from other threads, and
 * on its timers.
 *
 * The loops are process-wide.  evloops_configure() sets their number
 * before the first use; the first evloop_assign() (a session that logs
 * in) or evloops_start() starts them, so a daemon that forks starts them
 * in the child.  evloops_stop() ends them once nothing uses them.
 *
 * What runs on a loop must not block: no wait on the network, no lock
 * held for long, no wait for another loop (evloop_run_sync() from a loop
 * runs only what is its own).
 *
 * Thread model: evloop_add(), evloop_watch(), evloop_post(),
 * evloop_cancel() and evloop_run_sync() from any thread; the timer
 * functions and evloop_remove() only on the loop itself.  A source's
 * ready(), a call's run() and a timer's fire() run on the loop, one at a
 * time, with no lock of the loop's held.
 */
#ifndef ISCSIFS_EVLOOP_H
#define ISCSIFS_EVLOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Loops at most (-o loops=). */
#define EVLOOPS_MAX 64

struct evloop;

/* A descriptor a loop watches; the owner embeds it in its own struct. */
struct ev_source {
	int fd;                                   /* the descriptor */
	/* @events (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP, ...) are ready */
	void (*ready)(struct ev_source *src, uint32_t events);
};

/* Work to run once on a loop; the poster embeds it in its own struct. */
struct ev_call {
	void (*run)(struct ev_call *call);        /* the work, on the loop */
	struct ev_call *next;                     /* loop lock: the queue's link */
	bool queued;                              /* loop lock: in the queue (a
	                                           * second post is a no-op) */
};

/* A deadline on a loop; its owner embeds it in its own struct. */
struct ev_timer {
	void (*fire)(struct ev_timer *timer);     /* at the deadline, on the loop */
	int64_t when_ns;                          /* loop only: CLOCK_MONOTONIC
	                                           * deadline; 0 = not armed */
	struct ev_timer *next;                    /* loop only: the armed list,
	                                           * soonest first */
};

/* The number of loops to start (1..EVLOOPS_MAX; 0: online CPUs, at most
 * 8).  Before the loops start; later calls are ignored. */
void evloops_configure(unsigned loops);

/* Start the loops if they are not running.  Returns 0, or -1 with
 * err_set(). */
int evloops_start(void);

/* The number of loops (0 before they start). */
unsigned evloops_count(void);

/* Loop @i (0..evloops_count()-1). */
struct evloop *evloop_at(unsigned i);

/* A loop for a new owner of descriptors (a session): round robin over the
 * loops, started if need be.  NULL with err_set() when they cannot
 * start. */
struct evloop *evloop_assign(void);

/* The loop the calling thread is, or NULL. */
struct evloop *evloop_current(void);

/* The index of @l, for log lines and statistics. */
unsigned evloop_index(const struct evloop *l);

/* epoll_wait() returns with events of loop @i so far. */
unsigned long evloop_wakeups(unsigned i);

/* The CPU time loop @i's thread has used so far, in nanoseconds (one
 * system call: for occasional use).  0, or -1 (no such loop). */
int evloop_cpu_ns(unsigned i, int64_t *ns);

/* Watch @src for @events (EPOLLIN, EPOLLOUT, EPOLLEXCLUSIVE, ...;
 * level-triggered).  Returns 0, or -1 with err_set(). */
int evloop_add(struct evloop *l, struct ev_source *src, uint32_t events);

/* Change the events of a watched @src (not one added with
 * EPOLLEXCLUSIVE).  Returns 0, or -1 with errno (ENOENT: not watched). */
int evloop_watch(struct evloop *l, struct ev_source *src, uint32_t events);

/* Stop watching @src.  On @l only: no ready() of @src comes after it. */
void evloop_remove(struct evloop *l, struct ev_source *src);

/* Run @call on @l soon (after the events being handled, before the next
 * wait).  A call already queued stays queued once. */
void evloop_post(struct evloop *l, struct ev_call *call);

/* Take @call out of the queue of @l if it is there.  Whether it ran
 * already is not said. */
void evloop_cancel(struct evloop *l, struct ev_call *call);

/* Run @fn(@arg) on @l and wait until it returned; on @l itself it is
 * called at once.  Not from another loop (loops never wait for each
 * other). */
void evloop_run_sync(struct evloop *l, void (*fn)(void *arg), void *arg);

/* Arm @timer on @l for @when_ns (CLOCK_MONOTONIC; re-arms one that is
 * armed).  On @l only. */
void evloop_timer_arm(struct evloop *l, struct ev_timer *timer, int64_t when_ns);

/* Disarm @timer if armed.  On @l only. */
void evloop_timer_cancel(struct evloop *l, struct ev_timer *timer);

/* A receive buffer of the calling loop's, lent to one receiver at a time
 * for the length of one handling of a readable socket, so that the
 * sockets of a loop share one buffer instead of holding one each.  Sets
 * *@cap to its size (EVLOOP_RECV_BUFFER).  NULL when the caller is no
 * loop, the buffer is lent already (a receive inside a receive) or cannot
 * be allocated: the receiver then uses a buffer of its own.  On the loop
 * only; evloop_recv_buffer_return() gives it back. */
#define EVLOOP_RECV_BUFFER (64 * 1024)
uint8_t *evloop_recv_buffer_borrow(size_t *cap);
void evloop_recv_buffer_return(void);

/* End the loops: each finishes what it handles and leaves; nothing may
 * use them during or after (a later evloops_start() starts them anew). */
void evloops_stop(void);

#endif /* ISCSIFS_EVLOOP_H */
