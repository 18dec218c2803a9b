/* test_helpers.c: the helper thread pool (src/helpers.c).
 *
 * The cases: many jobs each run exactly once; two jobs that each wait for
 * the other finish, so the two helpers run at once; a job still queued
 * when the pool stops is dropped (its drop() runs, never its run()) while
 * the jobs already running finish first; an on-demand pool has no thread
 * until a job comes, never more than its maximum however many jobs wait,
 * none again once idle for its time, and starts one for the next job.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "helpers.h"
#include "testlib.h"

/* A job of the tests. */
struct test_job {
	struct helper_job job;        /* first: the pool's view */
	atomic_int ran;               /* run() calls */
	atomic_int dropped;           /* drop() calls */
	atomic_bool *gate;            /* when set: run() waits until it is true */
	atomic_int *running;          /* when set: counted up while run() waits */
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void job_run(struct helper_job *job)
{
	struct test_job *t = (struct test_job *)job;

	if (t->running)
		atomic_fetch_add(t->running, 1);
	/* (bounded: a pool that runs one job at a time fails, not hangs) */
	for (int i = 0; t->gate && !atomic_load(t->gate) && i < 2000; i++)
		sleep_ms(1);
	atomic_fetch_add(&t->ran, 1);
}

static void job_drop(struct helper_job *job)
{
	struct test_job *t = (struct test_job *)job;
	atomic_fetch_add(&t->dropped, 1);
}

static void job_init(struct test_job *t, atomic_bool *gate, atomic_int *running)
{
	t->job = (struct helper_job){ .run = job_run, .drop = job_drop };
	atomic_init(&t->ran, 0);
	atomic_init(&t->dropped, 0);
	t->gate = gate;
	t->running = running;
}

/* Wait up to 5 s for *@n to reach @want. */
static bool wait_for(atomic_int *n, int want)
{
	for (int i = 0; i < 5000 && atomic_load(n) < want; i++)
		sleep_ms(1);
	return atomic_load(n) >= want;
}

static void test_every_job_runs_once(void)
{
	enum { JOBS = 200 };
	struct test_job *jobs = calloc(JOBS, sizeof *jobs);
	struct helpers *h = helpers_start(2, "test");

	CHECK(jobs && h);
	if (!jobs || !h)
		return;
	for (int i = 0; i < JOBS; i++) {
		job_init(&jobs[i], NULL, NULL);
		helpers_post(h, &jobs[i].job);
	}
	for (int i = 0; i < 5000 && helpers_jobs_run(h) < JOBS; i++)
		sleep_ms(1);
	CHECK_EQ_U64(helpers_jobs_run(h), JOBS);
	helpers_stop(h);
	for (int i = 0; i < JOBS; i++) {
		CHECK_EQ_U64(atomic_load(&jobs[i].ran), 1);
		CHECK_EQ_U64(atomic_load(&jobs[i].dropped), 0);
	}
	free(jobs);
}

/* Two jobs that both wait on one gate, opened once both run. */
static void test_two_at_once(void)
{
	struct test_job a, b;
	atomic_bool gate = false;
	atomic_int running = 0;
	struct helpers *h = helpers_start(2, "test");

	CHECK(h);
	if (!h)
		return;
	job_init(&a, &gate, &running);
	job_init(&b, &gate, &running);
	helpers_post(h, &a.job);
	helpers_post(h, &b.job);
	CHECK(wait_for(&running, 2));
	atomic_store(&gate, true);
	helpers_stop(h);
	CHECK_EQ_U64(atomic_load(&a.ran) + atomic_load(&b.ran), 2);
}

struct stopper {
	struct helpers *h;            /* the pool to stop */
	atomic_bool done;             /* helpers_stop() returned */
};

static void *stop_main(void *arg)
{
	struct stopper *s = arg;
	helpers_stop(s->h);
	atomic_store(&s->done, true);
	return NULL;
}

static void test_stop_drops_queued(void)
{
	struct test_job busy[2], queued[3];
	atomic_bool gate = false;
	atomic_int running = 0;
	struct stopper s = { .h = helpers_start(2, "test") };
	pthread_t tid;

	CHECK(s.h);
	if (!s.h)
		return;
	atomic_init(&s.done, false);
	for (int i = 0; i < 2; i++) {
		job_init(&busy[i], &gate, &running);
		helpers_post(s.h, &busy[i].job);
	}
	CHECK(wait_for(&running, 2));     /* both helpers are taken */
	for (int i = 0; i < 3; i++) {
		job_init(&queued[i], NULL, NULL);
		helpers_post(s.h, &queued[i].job);
	}
	CHECK(pthread_create(&tid, NULL, stop_main, &s) == 0);
	sleep_ms(300);                    /* the stop has begun and waits */
	CHECK(!atomic_load(&s.done));     /* ... for the running jobs */
	atomic_store(&gate, true);
	pthread_join(tid, NULL);
	for (int i = 0; i < 2; i++)
		CHECK_EQ_U64(atomic_load(&busy[i].ran), 1);
	for (int i = 0; i < 3; i++) {
		CHECK_EQ_U64(atomic_load(&queued[i].ran), 0);
		CHECK_EQ_U64(atomic_load(&queued[i].dropped), 1);
	}
}

/* Wait up to 5 s for the pool @h to have @want threads. */
static bool wait_threads(struct helpers *h, unsigned want)
{
	for (int i = 0; i < 5000 && helpers_threads(h) != want; i++)
		sleep_ms(1);
	return helpers_threads(h) == want;
}

static void test_on_demand(void)
{
	enum { JOBS = 6 };
	struct test_job held[JOBS], later;
	atomic_bool gate = false;
	atomic_int running = 0;
	struct helpers *h = helpers_on_demand(2, 200, "test");

	CHECK(h);
	if (!h)
		return;
	CHECK_EQ_U64(helpers_threads(h), 0);          /* none before a job */
	for (int i = 0; i < JOBS; i++) {
		job_init(&held[i], &gate, &running);
		CHECK(helpers_post(h, &held[i].job) == 0);
	}
	CHECK(wait_for(&running, 2));
	sleep_ms(100);
	/* six jobs wait on the gate: two threads run two of them, no more */
	CHECK_EQ_U64(atomic_load(&running), 2);
	CHECK_EQ_U64(helpers_threads(h), 2);
	atomic_store(&gate, true);
	for (int i = 0; i < 5000 && helpers_jobs_run(h) < JOBS; i++)
		sleep_ms(1);
	CHECK_EQ_U64(helpers_jobs_run(h), JOBS);
	/* idle for 200 ms: both leave */
	CHECK(wait_threads(h, 0));
	/* and the next job starts one again */
	job_init(&later, NULL, NULL);
	CHECK(helpers_post(h, &later.job) == 0);
	for (int i = 0; i < 5000 && !atomic_load(&later.ran); i++)
		sleep_ms(1);
	CHECK_EQ_U64(atomic_load(&later.ran), 1);
	CHECK(helpers_threads(h) <= 1);
	helpers_stop(h);                   /* (with a thread idle, most likely) */
	for (int i = 0; i < JOBS; i++)
		CHECK_EQ_U64(atomic_load(&held[i].ran), 1);
}

int main(void)
{
	test_every_job_runs_once();
	test_two_at_once();
	test_stop_drops_queued();
	test_on_demand();
	return test_done("test_helpers");
}
