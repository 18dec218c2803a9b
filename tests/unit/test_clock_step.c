/* test_clock_step.c: a step of the wall clock neither stalls nor hurries
 * a wait of the daemon (deadline.h and its users).
 *
 * Stepping the real wall clock (date -s) would disturb every other test
 * running at the same time, so this program steps it for itself only: it
 * is linked with -Wl,--wrap=clock_gettime, and every clock_gettime() of
 * the daemon's code linked into it comes through wrap_clock_gettime()
 * below, which shifts CLOCK_REALTIME by wall_step_s seconds.  The kernel's
 * own clocks are untouched, and they are what pthread_cond_timedwait()
 * and sem_timedwait() compare a deadline with: a deadline read from the
 * shifted wall clock is off by the shift, exactly as if the clock had
 * been stepped by as much right after it was read.  CLOCK_MONOTONIC is
 * never shifted.
 *
 * The cases:
 *   - deadline_in_ms() lies the asked time ahead on CLOCK_MONOTONIC, its
 *     nanoseconds normalised;
 *   - mono_now_ns() and mono_now_ms() read CLOCK_MONOTONIC, with the wall
 *     clock an hour ahead or behind;
 *   - deadline_cond_wait() and deadline_sem_wait() end at their deadline,
 *     not earlier and not much later, with the wall clock an hour ahead
 *     or behind;
 *   - the pool's watchdog keeps sending keepalive NOP-Outs (one second of
 *     silence each, -o noop_interval=1) with the wall clock read an hour
 *     ahead: a wall-clock deadline would sleep an hour;
 *   - pool_destroy() waits for a command the target answers after a
 *     second, and the session then logs out properly, with the wall
 *     clock read an hour behind: a wall-clock deadline would have passed
 *     already, the command would be cut off and fail.
 * The scripted target (scripted_target.h) runs in this process on
 * 127.0.0.1.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "scripted_target.h"
#include "testlib.h"

/* Seconds added to every CLOCK_REALTIME reading of this program. */
static atomic_long wall_step_s;

int __real_clock_gettime(clockid_t clock, struct timespec *ts);
int __wrap_clock_gettime(clockid_t clock, struct timespec *ts);

/* What the daemon's code reads as the time (see the top of the file). */
int __wrap_clock_gettime(clockid_t clock, struct timespec *ts)
{
	int rc = __real_clock_gettime(clock, ts);

	if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE))
		ts->tv_sec += (time_t)atomic_load(&wall_step_s);
	return rc;
}

static int64_t real_mono_ms(void)
{
	struct timespec ts;
	__real_clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the helper itself ---- */

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

/* deadline_in_ms(ms) lies ms ahead of CLOCK_MONOTONIC. */
static void test_deadline_values(void)
{
	static const int64_t ms[] = { 0, 1, 999, 1000, 1001, 1500, 86400000, -5 };

	for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
		struct timespec before, after;
		__real_clock_gettime(CLOCK_MONOTONIC, &before);
		struct timespec d = deadline_in_ms(ms[i]);
		__real_clock_gettime(CLOCK_MONOTONIC, &after);
		int64_t want = ms[i] > 0 ? ms[i] * 1000000 : 0;
		CHECK(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
		CHECK(ts_ns(&d) >= ts_ns(&before) + want);
		CHECK(ts_ns(&d) <= ts_ns(&after) + want);
	}
}

/* mono_now_ns() and mono_now_ms() read CLOCK_MONOTONIC, whatever the
 * wall clock says. */
static void test_now_values(long step_s)
{
	struct timespec before, after;

	atomic_store(&wall_step_s, step_s);
	__real_clock_gettime(CLOCK_MONOTONIC, &before);
	int64_t ns = mono_now_ns();
	int64_t ms = mono_now_ms();
	__real_clock_gettime(CLOCK_MONOTONIC, &after);
	CHECK(ns >= ts_ns(&before) && ns <= ts_ns(&after));
	CHECK(ms >= ts_ns(&before) / 1000000 && ms <= ts_ns(&after) / 1000000);
	atomic_store(&wall_step_s, 0);
}

/* Both waits end at a deadline 300 ms ahead: not before, and well
 * before a second has gone (whatever the wall clock says). */
static void test_waits(long step_s)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
	sem_t sem;

	atomic_store(&wall_step_s, step_s);
	int64_t start = real_mono_ms();
	struct timespec d = deadline_in_ms(300);
	pthread_mutex_lock(&lock);
	int rc;
	while ((rc = deadline_cond_wait(&cond, &lock, &d)) == 0)
		;
	pthread_mutex_unlock(&lock);
	int64_t took = real_mono_ms() - start;
	printf("condition variable, wall clock %+ld s: ETIMEDOUT after %lld ms\n", step_s,
	       (long long)took);
	CHECK_EQ_U64(rc, ETIMEDOUT);
	CHECK(took >= 300 && took < 1000);

	CHECK(sem_init(&sem, 0, 0) == 0);
	start = real_mono_ms();
	d = deadline_in_ms(300);
	while ((rc = deadline_sem_wait(&sem, &d)) < 0 && errno == EINTR)
		;
	took = real_mono_ms() - start;
	printf("semaphore, wall clock %+ld s: %s after %lld ms\n", step_s,
	       rc < 0 ? strerror(errno) : "taken", (long long)took);
	CHECK(rc < 0 && errno == ETIMEDOUT);
	CHECK(took >= 300 && took < 1000);
	sem_post(&sem);
	d = deadline_in_ms(300);
	CHECK(deadline_sem_wait(&sem, &d) == 0);     /* a posted one is taken */
	sem_destroy(&sem);
	atomic_store(&wall_step_s, 0);
}

/* ---- the scripted target ---- */

/* The target (scripted_target.h), one connection at a time, with what
 * this test adds: a late answer and counters. */
struct target {
	struct scripted_target st;   /* listening socket and accept thread */
	unsigned hold_ms;            /* each SCSI Command is answered this late */
	atomic_uint pings;           /* NOP-Outs that asked for an answer */
	atomic_uint commands;        /* SCSI Commands answered */
	atomic_uint logouts;         /* Logout Requests answered */
};

/* Before each answer goes: count it; a SCSI Command waits hold_ms. */
static void target_seen(void *arg, const uint8_t *bhs)
{
	struct target *t = arg;

	switch (bhs[0] & 0x3f) {
	case 0x00:                              /* NOP-Out */
		atomic_fetch_add(&t->pings, 1);
		break;
	case 0x01:                              /* SCSI Command */
		usleep(t->hold_ms * 1000u);
		atomic_fetch_add(&t->commands, 1);
		break;
	case 0x06:                              /* Logout Request */
		atomic_fetch_add(&t->logouts, 1);
		break;
	}
}

/* On the accept thread: serve the connection there, then close it. */
static void target_accepted(struct scripted_target *st, int fd)
{
	scripted_target_serve(fd, 16, target_seen, st->opaque);
	close(fd);
}

/* A pool of one session to @t, keepalive after @noop_s of silence.  One
 * pool at a time: its text config points into the static cfg. */
static struct pool *pool_to(struct target *t, unsigned noop_s)
{
	static struct session_config cfg;

	scripted_target_config(&cfg, t->st.port, "clock", 4);
	cfg.noop_interval_s = noop_s;
	cfg.noop_timeout_s = 5;
	struct pool *p = pool_create(&cfg, 1, 10);
	if (!p) {
		fprintf(stderr, "pool_create: %s\n", err_msg());
		exit(99);
	}
	return p;
}

/* The shift really reaches clock_gettime(CLOCK_REALTIME) (else the
 * cases below would prove nothing). */
static void test_shift_applies(void)
{
	struct timespec ts;

	atomic_store(&wall_step_s, 3600);
	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_store(&wall_step_s, 0);
	long ahead = (long)(ts.tv_sec - time(NULL));
	CHECK(ahead >= 3599 && ahead <= 3601);
}

/* Keepalives go on with the wall clock read an hour ahead. */
static void test_watchdog_ticks(void)
{
	struct target t = { .st.listen_fd = -1 };

	scripted_target_start(&t.st, 4, target_accepted, &t);
	atomic_store(&wall_step_s, 3600);
	struct pool *p = pool_to(&t, 1);
	usleep(4500 * 1000);
	unsigned pings = atomic_load(&t.pings);
	printf("wall clock +3600 s: %u keepalive NOP-Outs in 4.5 s (noop_interval 1 s)\n", pings);
	CHECK(pings >= 2);
	pool_destroy(p, 2000);
	atomic_store(&wall_step_s, 0);
	scripted_target_stop(&t.st);
}

/* A command in flight at pool_destroy(). */
struct held {
	struct iscsi_task task;        /* a TEST UNIT READY */
	atomic_bool done;              /* its done() ran */
	atomic_int result;             /* and its result */
};

static void held_done(struct iscsi_task *task)
{
	struct held *h = (struct held *)task;

	atomic_store(&h->result, task->result ? task->result : task->status);
	atomic_store(&h->done, true);
}

/* Unmount waits for the command in flight, then logs out, with the wall
 * clock read an hour behind. */
static void test_destroy_waits(void)
{
	struct target t = { .st.listen_fd = -1, .hold_ms = 1000 };
	struct held h = { .task = { .lun = 0, .dir = TASK_DIR_NONE, .done = held_done } };

	scripted_target_start(&t.st, 4, target_accepted, &t);
	atomic_store(&wall_step_s, -3600);
	struct pool *p = pool_to(&t, 0);
	pool_submit(p, &h.task);
	usleep(100 * 1000);
	int64_t start = real_mono_ms();
	pool_destroy(p, 5000);
	int64_t took = real_mono_ms() - start;
	atomic_store(&wall_step_s, 0);
	scripted_target_stop(&t.st);
	printf("wall clock -3600 s: pool_destroy() took %lld ms; the command %s (%d); %u logouts\n",
	       (long long)took, atomic_load(&h.done) ? "ended" : "never ended",
	       atomic_load(&h.result), atomic_load(&t.logouts));
	CHECK(atomic_load(&h.done));
	CHECK_EQ_U64(atomic_load(&h.result), 0);
	CHECK_EQ_U64(atomic_load(&t.commands), 1);
	CHECK_EQ_U64(atomic_load(&t.logouts), 1);
	CHECK(took >= 700 && took < 5000);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);       /* the target writes to a closed socket */
	test_shift_applies();
	test_deadline_values();
	test_now_values(3600);
	test_now_values(-3600);
	test_waits(3600);
	test_waits(-3600);
	test_watchdog_ticks();
	test_destroy_waits();
	return test_done("test_clock_step");
}
