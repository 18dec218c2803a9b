/* test_evloop.c: the event loops (src/evloop.c).
 *
 * The cases: calls posted from another thread run on the loop, in the
 * order posted, and one posted twice while queued runs once; a cancelled
 * call never runs; evloop_run_sync() waits for its function and runs it on
 * the loop; timers fire in deadline order, a cancelled one never and a
 * re-armed one at its new deadline, none early; a readable descriptor is
 * reported to its source until it is removed; the loops stop and start
 * again; and eight threads posting to one loop as fast as it runs their
 * calls never see a post lost (each waits for its call, at most 5 s:
 * a wake-up swallowed by a race leaves the loop asleep with calls queued).
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "evloop.h"
#include "testlib.h"

/* How long a wait of the test lasts at most, in milliseconds. */
#define WAIT_MS 3000

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* What the calls, timers and sources of a case record. */
struct record {
	struct evloop *loop;          /* the loop they belong to */
	atomic_int order[16];         /* ids in the order they ran */
	atomic_int claimed;           /* entries of order taken */
	atomic_int count;             /* entries of order written: the last
	                               * access of a record, so that the test may
	                               * drop it once it sees the count */
	atomic_bool off_loop;         /* one ran off its loop */
	int64_t fired_ns[16];         /* timers: when each id fired (on the loop) */
};

static void record_add(struct record *r, int id)
{
	int n = atomic_fetch_add(&r->claimed, 1);
	if (n < 16)
		atomic_store(&r->order[n], id);
	if (evloop_current() != r->loop)
		atomic_store(&r->off_loop, true);
	atomic_fetch_add(&r->count, 1);
}

/* Wait until @r has @n entries (or WAIT_MS passed); then a little more,
 * so that an entry too many would show. */
static bool wait_count(struct record *r, int n)
{
	for (int i = 0; i < WAIT_MS && atomic_load(&r->count) < n; i++)
		sleep_ms(1);
	sleep_ms(50);
	return atomic_load(&r->count) == n;
}

/* A posted call of the tests. */
struct test_call {
	struct ev_call call;          /* first: the loop's view */
	struct record *r;             /* where it records */
	int id;                       /* what it records; 0: wait for gate */
	atomic_bool *gate;            /* id 0: holds the loop until it is set */
};

static void call_run(struct ev_call *call)
{
	struct test_call *c = (struct test_call *)call;

	if (c->id == 0) {
		for (int i = 0; i < WAIT_MS && !atomic_load(c->gate); i++)
			sleep_ms(1);
		return;
	}
	record_add(c->r, c->id);
}

static void test_posts(void)
{
	struct record r = { .loop = evloop_at(0) };
	atomic_bool gate = false;
	struct test_call hold = { .call.run = call_run, .id = 0, .gate = &gate };
	struct test_call c[4];

	for (int i = 0; i < 4; i++)
		c[i] = (struct test_call){ .call.run = call_run, .r = &r, .id = i + 1 };
	/* the loop is held: everything below queues behind */
	evloop_post(r.loop, &hold.call);
	evloop_post(r.loop, &c[0].call);
	evloop_post(r.loop, &c[1].call);
	evloop_post(r.loop, &c[1].call);        /* queued already: runs once */
	evloop_post(r.loop, &c[2].call);
	evloop_post(r.loop, &c[3].call);
	evloop_cancel(r.loop, &c[2].call);       /* never runs */
	atomic_store(&gate, true);
	CHECK(wait_count(&r, 3));
	CHECK_EQ_U64(atomic_load(&r.order[0]), 1);
	CHECK_EQ_U64(atomic_load(&r.order[1]), 2);
	CHECK_EQ_U64(atomic_load(&r.order[2]), 4);
	CHECK(!atomic_load(&r.off_loop));
	/* a call that ran may be posted again */
	evloop_post(r.loop, &c[0].call);
	CHECK(wait_count(&r, 4));
}

/* evloop_run_sync() runs this on the loop. */
static void sync_fn(void *arg)
{
	struct record *r = arg;

	sleep_ms(100);          /* the caller waits for it */
	record_add(r, 7);
}

static void test_run_sync(void)
{
	struct record r = { .loop = evloop_at(evloops_count() - 1) };

	evloop_run_sync(r.loop, sync_fn, &r);
	CHECK_EQ_U64(atomic_load(&r.count), 1);
	CHECK(!atomic_load(&r.off_loop));
}

/* A timer of the tests. */
struct test_timer {
	struct ev_timer timer;        /* first: the loop's view */
	struct record *r;             /* where it records */
	int id;                       /* what it records */
};

static void timer_fire(struct ev_timer *timer)
{
	struct test_timer *t = (struct test_timer *)timer;

	if (t->id < 16)
		t->r->fired_ns[t->id] = mono_now_ns();
	record_add(t->r, t->id);
}

/* What arm_timers() arms, and when. */
struct timer_case {
	struct record *r;             /* the case's record */
	struct test_timer t[4];       /* the timers */
	int64_t start_ns;             /* when they were armed */
};

static void arm_timers(void *arg)
{
	struct timer_case *tc = arg;
	struct evloop *l = tc->r->loop;

	tc->start_ns = mono_now_ns();
	evloop_timer_arm(l, &tc->t[0].timer, tc->start_ns + 300 * 1000000LL);
	evloop_timer_arm(l, &tc->t[1].timer, tc->start_ns + 100 * 1000000LL);
	evloop_timer_arm(l, &tc->t[2].timer, tc->start_ns + 200 * 1000000LL);
	evloop_timer_arm(l, &tc->t[3].timer, tc->start_ns + 50 * 1000000LL);
	evloop_timer_cancel(l, &tc->t[2].timer);                             /* never */
	evloop_timer_arm(l, &tc->t[3].timer, tc->start_ns + 400 * 1000000LL); /* moved */
}

static void test_timers(void)
{
	struct record r = { .loop = evloop_at(0) };
	struct timer_case tc = { .r = &r };

	for (int i = 0; i < 4; i++)
		tc.t[i] = (struct test_timer){ .timer.fire = timer_fire, .r = &r, .id = i };
	evloop_run_sync(r.loop, arm_timers, &tc);
	CHECK(wait_count(&r, 3));
	CHECK_EQ_U64(atomic_load(&r.order[0]), 1);
	CHECK_EQ_U64(atomic_load(&r.order[1]), 0);
	CHECK_EQ_U64(atomic_load(&r.order[2]), 3);
	CHECK(!atomic_load(&r.off_loop));
	/* none early (the loop rounds its wait up, never down) */
	CHECK(r.fired_ns[1] - tc.start_ns >= 100 * 1000000LL);
	CHECK(r.fired_ns[0] - tc.start_ns >= 300 * 1000000LL);
	CHECK(r.fired_ns[3] - tc.start_ns >= 400 * 1000000LL);
}

/* A descriptor of the tests. */
struct test_source {
	struct ev_source src;         /* first: the loop's view */
	struct record *r;             /* where it records */
};

static void source_ready(struct ev_source *src, uint32_t events)
{
	struct test_source *s = (struct test_source *)src;
	char byte;

	if ((events & EPOLLIN) && read(src->fd, &byte, 1) == 1)
		record_add(s->r, byte);
}

static void remove_source(void *arg)
{
	struct test_source *s = arg;

	evloop_remove(s->r->loop, &s->src);
}

static void test_source(void)
{
	struct record r = { .loop = evloop_at(0) };
	struct test_source s = { .src.ready = source_ready, .r = &r };
	int sv[2];

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
	s.src.fd = sv[0];
	CHECK(evloop_add(r.loop, &s.src, EPOLLIN) == 0);
	/* three bytes at once: level-triggered, each read is reported */
	CHECK(write(sv[1], "\x05\x06\x07", 3) == 3);
	CHECK(wait_count(&r, 3));
	CHECK_EQ_U64(atomic_load(&r.order[2]), 7);
	evloop_run_sync(r.loop, remove_source, &s);
	CHECK(write(sv[1], "\x08", 1) == 1);
	CHECK(wait_count(&r, 3));        /* no longer reported */
	close(sv[0]);
	close(sv[1]);
}

/* One poster of test_no_lost_wakeup(). */
struct poster {
	pthread_t thread;             /* its thread */
	struct evloop *loop;          /* where it posts */
	atomic_int stuck;             /* posts not run within 5 s */
	int posts;                    /* how many it makes */
};

/* A call whose run sets done. */
struct flag_call {
	struct ev_call call;          /* first: the loop's view */
	atomic_bool done;             /* set on the loop */
};

static void flag_run(struct ev_call *call)
{
	atomic_store(&((struct flag_call *)call)->done, true);
}

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	struct flag_call c = { .call.run = flag_run };

	for (int i = 0; i < p->posts; i++) {
		atomic_store(&c.done, false);
		evloop_post(p->loop, &c.call);
		int64_t until = mono_now_ns() + 5000000000LL;
		while (!atomic_load(&c.done) && mono_now_ns() < until)
			sched_yield();
		if (!atomic_load(&c.done)) {
			atomic_fetch_add(&p->stuck, 1);
			return NULL;    /* (the call stays queued: the test fails) */
		}
	}
	return NULL;
}

static void test_no_lost_wakeup(void)
{
	struct poster p[8];

	for (int i = 0; i < 8; i++) {
		p[i] = (struct poster){ .loop = evloop_at(1), .posts = 5000 };
		atomic_init(&p[i].stuck, 0);
		CHECK(pthread_create(&p[i].thread, NULL, poster_main, &p[i]) == 0);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(p[i].thread, NULL);
		CHECK_EQ_U64(atomic_load(&p[i].stuck), 0);
	}
}

int main(void)
{
	evloops_configure(2);
	CHECK(evloops_start() == 0);
	CHECK_EQ_U64(evloops_count(), 2);
	CHECK(evloop_current() == NULL);
	test_posts();
	test_run_sync();
	test_timers();
	test_source();
	test_no_lost_wakeup();
	evloops_stop();
	CHECK_EQ_U64(evloops_count(), 0);
	/* started again on demand */
	CHECK(evloop_assign() != NULL);
	CHECK_EQ_U64(evloops_count(), 2);
	test_posts();
	evloops_stop();
	return test_done("test_evloop");
}
