/* login_on_loop.h: a login on an event loop (login_loop.h) that the test
 * thread waits for, so that the login unit tests (test_login_redirect.c,
 * test_login_deadline.c, test_login_loop.c) run their scenarios through
 * the loop's driver as well as through login_connect().  Header-only,
 * static functions.
 *
 * Thread model: the test thread starts the login on the loop
 * (evloop_run_sync()) and waits; the loop runs it and its end, which
 * fills struct loop_login under its lock.
 */
#ifndef ISCSIFS_LOGIN_ON_LOOP_H
#define ISCSIFS_LOGIN_ON_LOOP_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "deadline.h"
#include "evloop.h"
#include "log.h"
#include "login.h"
#include "login_loop.h"

/* One login on a loop: what it was asked, and how it ended. */
struct loop_login {
	/* asked (read on the loop by the start) */
	const char *host;             /* the portal */
	uint16_t port;                /* ... its port */
	int timeout_ms;               /* the login's time */
	const struct text_config *cfg; /* what we offer */
	const uint8_t *isid;          /* our session ID */
	struct evloop *loop;          /* where it runs */
	struct login_loop *ll;        /* loop only: the login, until it ended */

	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* broadcast when it ended */
	bool ended;                   /* lock: done() was called (or the start failed) */
	int rc;                       /* lock: its result */
	int err;                      /* lock: its errno when it failed */
	char msg[512];                /* lock: its message when it failed */
	struct conn c;                /* lock: the connection when it succeeded */
	struct login_result lr;       /* lock: its result */
	int64_t ended_ms;             /* lock: when it ended (mono_now_ms()) */
};

/* The loop of the login tests: loop 0, started once. */
static struct evloop *login_test_loop(void)
{
	evloops_configure(1);
	if (evloops_start() < 0) {
		fprintf(stderr, "cannot start an event loop: %s\n", err_msg());
		exit(99);
	}
	return evloop_at(0);
}

/* On the loop: the login ended. */
static void loop_login_done(void *arg, int rc, struct conn *c, const struct login_result *lr)
{
	struct loop_login *ll = arg;

	pthread_mutex_lock(&ll->lock);
	ll->ll = NULL;
	ll->rc = rc;
	ll->err = rc < 0 ? err_errno() : 0;
	snprintf(ll->msg, sizeof ll->msg, "%s", rc < 0 ? err_msg() : "");
	ll->c = *c;
	ll->lr = *lr;
	ll->ended = true;
	ll->ended_ms = mono_now_ms();
	pthread_cond_broadcast(&ll->cond);
	pthread_mutex_unlock(&ll->lock);
}

/* On the loop: start it. */
static void loop_login_start_here(void *arg)
{
	struct loop_login *ll = arg;

	ll->ll = login_loop_start(ll->loop, ll->host, ll->port, ll->timeout_ms, ll->cfg,
				  ll->isid, 0, loop_login_done, ll);
	if (!ll->ll) {
		pthread_mutex_lock(&ll->lock);
		ll->rc = -1;
		ll->err = err_errno();
		snprintf(ll->msg, sizeof ll->msg, "start: %s", err_msg());
		ll->c.fd = -1;
		ll->ended = true;
		ll->ended_ms = mono_now_ms();
		pthread_cond_broadcast(&ll->cond);
		pthread_mutex_unlock(&ll->lock);
	}
}

/* Start a login to @host:@port on @loop; loop_login_wait() ends it. */
static void loop_login_start(struct loop_login *ll, struct evloop *loop, const char *host,
			     uint16_t port, int timeout_ms, const struct text_config *cfg,
			     const uint8_t *isid)
{
	memset(ll, 0, sizeof *ll);
	pthread_mutex_init(&ll->lock, NULL);
	pthread_cond_init(&ll->cond, NULL);
	ll->host = host;
	ll->port = port;
	ll->timeout_ms = timeout_ms;
	ll->cfg = cfg;
	ll->isid = isid;
	ll->loop = loop;
	evloop_run_sync(loop, loop_login_start_here, ll);
}

/* Whether it ended, waiting at most @wait_ms. */
static bool loop_login_ended(struct loop_login *ll, int wait_ms)
{
	struct timespec dl = deadline_in_ms(wait_ms);
	int rc = 0;

	pthread_mutex_lock(&ll->lock);
	while (!ll->ended && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&ll->cond, &ll->lock, &dl);
	bool ended = ll->ended;
	pthread_mutex_unlock(&ll->lock);
	return ended;
}

/* Wait for its end (its timeout and 5 s more: a login the deadline does
 * not end is a failure of the test: exit 1), and free its lock.  Returns
 * its result, with err_set() on the test thread as the login said. */
static int loop_login_wait(struct loop_login *ll)
{
	if (!loop_login_ended(ll, ll->timeout_ms + 5000)) {
		fprintf(stderr, "a login on the loop to %s:%u did not end by its deadline\n",
			ll->host, ll->port);
		exit(1);
	}
	pthread_mutex_destroy(&ll->lock);
	pthread_cond_destroy(&ll->cond);
	if (ll->rc < 0)
		err_set(ll->err, "%s", ll->msg);
	return ll->rc;
}

/* login_connect() without start-up retries, on @loop: the same contract. */
static int login_on_loop(struct evloop *loop, struct conn *c, const char *host, uint16_t port,
			 int timeout_ms, const struct text_config *cfg, const uint8_t isid[6],
			 struct login_result *out)
{
	struct loop_login ll;

	loop_login_start(&ll, loop, host, port, timeout_ms, cfg, isid);
	int rc = loop_login_wait(&ll);
	*c = ll.c;
	*out = ll.lr;
	return rc;
}

#endif /* ISCSIFS_LOGIN_ON_LOOP_H */
