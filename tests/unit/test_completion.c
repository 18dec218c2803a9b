/* test_completion.c: one caller waiting for one callback
 * (include/completion.h).
 *
 * The cases: a callback that ran before the wait began; one that runs on
 * another thread while the caller waits (the wait must not end before
 * it, and what the callback wrote before posting is seen after); the
 * error it reports comes back as -1 and errno, through
 * completion_post_cb() too; and many short rounds in a row, where the
 * caller destroys the completion as soon as the wait ends (the sanitizer
 * builds catch a callback that still touches it).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "completion.h"
#include "testlib.h"

/* An asynchronous request as the tests play it: a thread that sleeps,
 * hands over a result and posts. */
struct request {
	struct completion done;       /* what the caller waits on */
	unsigned delay_ms;            /* how long the "request" takes */
	int err;                      /* the error it reports */
	int result;                   /* handed over before posting */
	atomic_bool posted;           /* set right before completion_post() */
	bool via_cb;                  /* post through completion_post_cb() */
};

static void *request_main(void *arg)
{
	struct request *r = arg;
	struct timespec ts = { r->delay_ms / 1000, (long)(r->delay_ms % 1000) * 1000000L };
	void (*cb)(void *opaque, int err) = completion_post_cb;

	nanosleep(&ts, NULL);
	r->result = 42;
	atomic_store(&r->posted, true);
	if (r->via_cb)
		cb(&r->done, r->err);
	else
		completion_post(&r->done, r->err);
	return NULL;
}

/* Start the request, wait for it; returns completion_wait()'s answer and
 * its errno in *@err_out. */
static int run(struct request *r, int *err_out)
{
	pthread_t thread;
	int rc;

	completion_init(&r->done);
	if (pthread_create(&thread, NULL, request_main, r) != 0) {
		perror("pthread_create");
		exit(99);
	}
	errno = 0;
	rc = completion_wait(&r->done);
	*err_out = errno;
	CHECK(atomic_load(&r->posted));    /* the wait did not end early */
	CHECK(r->result == 42);            /* and sees what was handed over */
	pthread_join(thread, NULL);
	return rc;
}

/* Posted before anyone waits: the wait returns at once. */
static void test_posted_first(void)
{
	struct completion c;

	completion_init(&c);
	completion_post(&c, 0);
	CHECK(completion_wait(&c) == 0);

	completion_init(&c);
	completion_post(&c, EIO);
	errno = 0;
	CHECK(completion_wait(&c) == -1);
	CHECK_EQ_U64(errno, EIO);
}

static void test_waits_for_the_callback(void)
{
	static const struct {
		unsigned delay_ms;
		int err;
		bool via_cb;
	} cases[] = {
		{ 100, 0, false },
		{ 100, ENOSPC, false },
		{ 50, 0, true },
		{ 50, EROFS, true },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct request r = { .delay_ms = cases[i].delay_ms, .err = cases[i].err,
				     .via_cb = cases[i].via_cb };
		int err;
		int rc = run(&r, &err);

		CHECK(rc == (cases[i].err ? -1 : 0));
		if (cases[i].err)
			CHECK_EQ_U64(err, cases[i].err);
	}
}

/* Callbacks that race with the start of the wait, and a completion
 * destroyed as soon as the wait ends, many times over. */
static void test_many_rounds(void)
{
	for (unsigned i = 0; i < 500; i++) {
		struct request r = { .delay_ms = 0, .err = i % 2 ? EIO : 0 };
		int err;
		int rc = run(&r, &err);

		CHECK(rc == (i % 2 ? -1 : 0));
	}
}

int main(void)
{
	test_posted_first();
	test_waits_for_the_callback();
	test_many_rounds();
	return test_done("test_completion");
}
