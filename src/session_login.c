/* session_login.c: the first login of a pool's sessions, all of them at
 * once, each on its own event loop (see session_login() and
 * session_login_all() in session.h).
 *
 * Each session logs in as login_connect() with a start-up retry would,
 * but without a thread of its own: a struct first_login drives it on the
 * session's loop.  It tries the session's own portal first, then the
 * target's others in turn (the sessions spread over the portals); on each
 * portal a login_loop (login_loop.h) makes one try, and a try that the
 * target dropped, or answered "try later", is made again after a pause on
 * a loop timer (login_retry_after(): the same backoff, limits and
 * messages as login_connect()), every try of a portal ending by the first
 * one's deadline.  Sessions on one loop, or on several, log in at the same
 * time, so opening a target of S sessions takes one login's time, not S.
 *
 * NOTES ON THE THREAD MODEL
 *
 * The caller (main at start-up, a FUSE helper opening a discovered
 * target, a test) posts each first_login's start to its session's loop
 * and waits on the batch's cond for each login to end; all of a
 * first_login but its outcome is the loop's.  The outcome (rc, errno,
 * message) is written under the batch lock, the session's conn and login
 * result before it; the loop lets go of the first_login with that unlock
 * and never touches it again, but in a cancel call the caller posted
 * (counted in the batch's cancels until it ran).  The caller takes each ended login at
 * once: it starts the session that logged in (session_start(): the loop
 * attaches it), so that no logged-in connection waits unwatched for a
 * slower login of the batch.  When one fails of itself, the target's
 * open fails whatever the others do: it posts each login still under way
 * a cancel call (its loop ends it at once instead of at its deadlines).
 * Once every login ended and every cancel call ran (both counts are zero,
 * and the array may go), it logs the started ones out again when one
 * failed, and reports the lowest slot that failed of itself.
 */
#include "session_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "log.h"
#include "login.h"
#include "login_loop.h"
#include "portal.h"

/* What the caller waits on. */
struct login_batch {
	pthread_mutex_t lock;         /* protects left and each first_login's outcome */
	pthread_cond_t cond;          /* signalled when a login ends, and when a
	                               * cancel call has run */
	unsigned left;                /* lock: logins not ended yet */
	unsigned cancels;             /* lock: cancel calls posted and not run yet */
};

/* The first login of one session. */
struct first_login {
	struct session *s;            /* the session (read-only pointer; its portal
	                               * fields and conn are the loop's until the
	                               * outcome is written) */
	struct login_batch *batch;    /* read-only: where the outcome goes */
	struct ev_call start_call;    /* loop: posted by the caller, begins it */
	struct ev_call cancel_call;   /* loop: posted by the caller once another
	                               * slot failed for good: ends it */
	struct ev_timer retry_timer;  /* loop: the pause before the next try */
	struct login_loop *ll;        /* loop: the try under way, or NULL */
	struct login_retry retry;     /* loop: the tries of the current portal */
	int64_t deadline_ns;          /* loop: when the current portal's tries end */
	unsigned portals_tried;       /* loop: portals given up so far */
	uint8_t isid[6];              /* read-only: the session's ISID */
	struct login_result lr;       /* the outcome's: what the login negotiated
	                               * (written before ended) */
	bool ended;                   /* batch lock: the login is over */
	bool taken;                   /* the caller's: it took the outcome (the
	                               * session started, or was given up) */
	bool cancelled;               /* batch lock: ended by cancel_call, not by
	                               * a failure of its own */
	int rc;                       /* batch lock: 0 logged in (s->conn), -1 failed */
	int err;                      /* batch lock: the failure's errno */
	char msg[512];                /* batch lock: the failure's message */
};

#define FIRST_OF(ptr, member) \
	((struct first_login *)((char *)(ptr) - offsetof(struct first_login, member)))

static void try_portal(struct first_login *fl);

/* The login is over (@rc; on failure err_*() says why): the outcome goes
 * to the caller, and the loop lets go of @fl. */
static void end_login(struct first_login *fl, int rc)
{
	struct login_batch *b = fl->batch;

	pthread_mutex_lock(&b->lock);
	fl->rc = rc;
	fl->err = rc < 0 ? err_errno() : 0;
	snprintf(fl->msg, sizeof fl->msg, "%s", rc < 0 ? err_msg() : "");
	fl->ended = true;
	b->left--;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* The tries of the current portal failed for good (err_*() says why):
 * the next portal, or the end. */
static void portal_failed(struct first_login *fl)
{
	struct session *s = fl->s;

	if (++fl->portals_tried >= session_portal_count(s->cfg)) {
		end_login(fl, -1);
		return;
	}
	char portal[PORTAL_TEXT_MAX];

	portal_format(portal, sizeof portal, s->portal_host, s->portal_port);
	log_debug("%s: portal %s: %s; trying the next", s->name, portal, err_msg());
	session_use_portal(s, s->index + fl->portals_tried);
	try_portal(fl);
}

static void try_done(void *arg, int rc, struct conn *c, const struct login_result *lr);

/* One try on the current portal, within its deadline. */
static void try_once(struct first_login *fl)
{
	struct session *s = fl->s;
	const struct session_config *cfg = s->cfg;

	fl->ll = login_loop_start_until(s->loop, s->portal_host, s->portal_port,
					cfg->connect_timeout_ms, fl->deadline_ns, &cfg->text,
					fl->isid, 0, try_done, fl);
	if (!fl->ll) {
		login_retry_end(&fl->retry);
		portal_failed(fl);
	}
}

/* The first try on the current portal. */
static void try_portal(struct first_login *fl)
{
	login_retry_begin(&fl->retry);
	fl->deadline_ns = mono_now_ns() + (int64_t)fl->s->cfg->connect_timeout_ms * 1000000;
	try_once(fl);
}

/* The pause after a dropped try is over. */
static void retry_fire(struct ev_timer *timer)
{
	try_once(FIRST_OF(timer, retry_timer));
}

/* A try ended (login_loop.h). */
static void try_done(void *arg, int rc, struct conn *c, const struct login_result *lr)
{
	struct first_login *fl = arg;
	struct session *s = fl->s;

	fl->ll = NULL;
	fl->lr = *lr;
	if (rc == 0) {
		s->conn = *c;
		end_login(fl, 0);
		return;
	}
	int pause_ms = login_retry_after(&fl->retry, lr, s->cfg->connect_timeout_ms,
					 s->portal_host, s->portal_port);
	if (pause_ms < 0) {
		portal_failed(fl);
		return;
	}
	evloop_timer_arm(s->loop, &fl->retry_timer, mono_now_ns() + (int64_t)pause_ms * 1000000);
}

/* On the session's loop: begin with the session's own portal. */
static void start_run(struct ev_call *call)
{
	struct first_login *fl = FIRST_OF(call, start_call);

	session_use_portal(fl->s, fl->s->index);
	try_portal(fl);
}

/* On the session's loop, once another slot of the batch failed for good
 * (the target's open fails whatever this login does): end it now rather
 * than at its deadlines, unless it ended already. */
static void cancel_run(struct ev_call *call)
{
	struct first_login *fl = FIRST_OF(call, cancel_call);
	struct login_batch *b = fl->batch;

	pthread_mutex_lock(&b->lock);
	bool ended = fl->ended;     /* (only this loop sets it) */
	pthread_mutex_unlock(&b->lock);
	if (!ended) {
		login_loop_cancel(fl->ll);
		fl->ll = NULL;
		evloop_timer_cancel(fl->s->loop, &fl->retry_timer);
	}
	pthread_mutex_lock(&b->lock);
	if (!ended) {
		fl->rc = -1;
		fl->err = ECANCELED;
		snprintf(fl->msg, sizeof fl->msg, "%s: login given up: another session failed",
			 fl->s->name);
		fl->cancelled = true;
		fl->ended = true;
		b->left--;
	}
	b->cancels--;
	pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* The caller: the login of @failed failed for good, so the target's open
 * fails; end the logins still under way at once. */
static void cancel_others(struct first_login *fls, unsigned n, struct login_batch *b,
			  const struct first_login *failed)
{
	for (unsigned i = 0; i < n; i++) {
		struct first_login *fl = &fls[i];

		if (fl == failed || !fl->s)
			continue;
		pthread_mutex_lock(&b->lock);
		bool post = !fl->ended;
		if (post)
			b->cancels++;
		pthread_mutex_unlock(&b->lock);
		if (post) {
			fl->cancel_call.run = cancel_run;
			evloop_post(fl->s->loop, &fl->cancel_call);
		}
	}
}

/* The caller, once @fl's login ended: start the session that logged in
 * (its loop watches it from now on), or free the one that did not. */
static void take_outcome(struct first_login *fl)
{
	struct session *s = fl->s;

	if (fl->rc == 0) {
		session_take_portal(s, &fl->lr);
		if (session_start(s, &fl->lr, SESSION_FULL_FEATURE) == 0)
			return;
		conn_close(&s->conn);
		fl->rc = -1;
		fl->err = err_errno();
		snprintf(fl->msg, sizeof fl->msg, "%s", err_msg());
	}
	free(s);
	fl->s = NULL;
}

/* A session for slot @index, not logged in, with its loop. */
static struct session *session_new(const struct session_owner_ops *ops, void *owner,
				   const struct session_config *cfg, unsigned index)
{
	struct session *s = session_alloc(ops, owner, cfg, index);

	if (!s)
		return NULL;
	s->loop = evloop_assign();
	if (!s->loop) {
		free(s);
		return NULL;
	}
	return s;
}

/* Log in the sessions of slots @first .. @first + @n - 1 into @out at
 * once.  Returns 0, or -1 with err_set() of the lowest slot that failed
 * (no session left then). */
static int login_sessions(const struct session_owner_ops *ops, void *owner,
			  const struct session_config *cfg, unsigned first, unsigned n,
			  struct session **out)
{
	struct login_batch batch = { .left = 0 };
	struct first_login *fls = calloc(n, sizeof *fls);
	unsigned failed = n;

	if (evloop_current()) {
		/* (a bug of the caller: the logins would wait for this loop) */
		free(fls);
		err_set(EDEADLK, "cannot log in from an event loop: it would wait for itself");
		return -1;
	}
	if (!fls) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	pthread_mutex_init(&batch.lock, NULL);
	pthread_cond_init(&batch.cond, NULL);
	for (unsigned i = 0; i < n; i++) {
		struct first_login *fl = &fls[i];

		fl->s = session_new(ops, owner, cfg, first + i);
		if (!fl->s) {
			fl->taken = true;
			fl->rc = -1;
			fl->err = err_errno();
			snprintf(fl->msg, sizeof fl->msg, "%s", err_msg());
			continue;
		}
		fl->batch = &batch;
		fl->start_call.run = start_run;
		fl->retry_timer.fire = retry_fire;
		memcpy(fl->isid, cfg->isid_base, 6);
		fl->isid[5] = (uint8_t)(fl->isid[5] + first + i);
		pthread_mutex_lock(&batch.lock);
		batch.left++;
		pthread_mutex_unlock(&batch.lock);
		evloop_post(fl->s->loop, &fl->start_call);
	}
	/* Each session starts as soon as its login ends: one logged in but not
	 * yet watched by its loop would leave the target's pings unanswered
	 * while a slower login of the batch goes on.  Every login ends by its
	 * deadlines: no timeout of our own. */
	bool giving_up = false;
	pthread_mutex_lock(&batch.lock);
	for (;;) {
		struct first_login *fl = NULL;

		for (unsigned i = 0; i < n && !fl; i++)
			if (fls[i].ended && !fls[i].taken)
				fl = &fls[i];
		if (!fl) {
			if (batch.left == 0 && batch.cancels == 0)
				break;
			pthread_cond_wait(&batch.cond, &batch.lock);
			continue;
		}
		/* (ended: the loop has let go of it) */
		fl->taken = true;
		bool own_failure = fl->rc != 0 && !fl->cancelled;
		pthread_mutex_unlock(&batch.lock);
		if (own_failure && !giving_up) {
			giving_up = true;
			cancel_others(fls, n, &batch, fl);
		}
		take_outcome(fl);
		pthread_mutex_lock(&batch.lock);
	}
	pthread_mutex_unlock(&batch.lock);

	/* the failure said is the lowest slot's that failed of itself */
	for (unsigned i = 0; i < n; i++) {
		out[i] = fls[i].rc == 0 ? fls[i].s : NULL;
		if (fls[i].rc != 0 && !fls[i].cancelled && failed == n)
			failed = i;
	}
	if (failed < n) {
		struct timespec deadline = deadline_in_ms(2000);
		for (unsigned i = 0; i < n; i++)
			if (out[i])
				session_logout_start(out[i]);
		for (unsigned i = 0; i < n; i++)
			if (out[i]) {
				session_logout_finish(out[i], &deadline);
				out[i] = NULL;
			}
		err_set(fls[failed].err, "%s", fls[failed].msg);
	}
	pthread_cond_destroy(&batch.cond);
	pthread_mutex_destroy(&batch.lock);
	free(fls);
	return failed < n ? -1 : 0;
}

struct session *session_login(const struct session_owner_ops *ops, void *owner,
			      const struct session_config *cfg, unsigned index)
{
	struct session *s;

	return login_sessions(ops, owner, cfg, index, 1, &s) == 0 ? s : NULL;
}

int session_login_all(const struct session_owner_ops *ops, void *owner,
		      const struct session_config *cfg, unsigned n, struct session **out)
{
	return login_sessions(ops, owner, cfg, 0, n, out);
}
