/* session_recover.c: the end of a session's connection and the way back
 * (see session.h; the thread model is at the top of session.c).
 *
 * The session's loop watches its socket (session_attach_loop()).  When
 * the connection ends (an error, the target's close, our shutdown), the
 * loop stops watching it, takes every task out (session_stop()) and, for a
 * session that recovers, waits DefaultTime2Wait (or the Time2Wait an Async
 * Message gave), then backs off with jitter between attempts
 * (RECONNECT_*_MS) on a timer of its own: nothing sleeps.  A login attempt
 * runs on the loop too (login_loop.h: a non-blocking connect, CHAP,
 * redirects, under one deadline), so a target that never answers holds
 * only its own session's attempt; its end (login_done()) watches the new
 * connection or arms the next attempt.  All of the recovery is the loop's.
 *
 * session_close_on_loop() ends all of it for session_logout_and_free():
 * the timer, a login under way, the posted calls and the watch.
 */
#include "session_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "deadline.h"
#include "log.h"
#include "login.h"
#include "login_loop.h"
#include "portal.h"

/* Logins of all sessions of the process, counted: a connection that logged
 * in before a task's previous loss went down in the same outage as that
 * loss (see session_stop()). */
static _Atomic uint64_t logins;

uint64_t session_next_login_seq(void)
{
	return atomic_fetch_add(&logins, 1) + 1;
}

void session_take_login(struct session *s, const struct login_result *lr)
{
	s->params = lr->params;
	s->tsih = lr->tsih;
	s->cmdsn = lr->cmdsn;
	s->exp_cmdsn = lr->exp_cmdsn;
	s->max_cmdsn = lr->max_cmdsn;
	s->window_wait_since_ns = 0;
	s->exp_statsn = lr->exp_statsn;
	s->login_seq = session_next_login_seq();
	s->logged_in_ns = mono_now_ns();
}

#define SESSION_OF(ptr, member) \
	((struct session *)((char *)(ptr) - offsetof(struct session, member)))

/* Order tasks by CmdSN (serial arithmetic): insertion into a short list. */
static struct iscsi_task *insert_by_cmdsn(struct iscsi_task *list, struct iscsi_task *t)
{
	struct iscsi_task **pp = &list;
	while (*pp && sn_lt((*pp)->cmdsn, t->cmdsn))
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
	return list;
}

/* The connection is gone or closing: wait for whoever still sends (a loop
 * in a non-blocking send, soon done: the socket is shut down), forget the
 * PDU a full socket cut, and take every task out of the session.  With @requeue they are sent again whole, in
 * CmdSN order: reads, and writes that never reached the wire, go back to
 * the pool at once, for whichever session is up first; writes that were
 * (even partly) sent wait in s->pinned until this session has logged in
 * again.  The target may still hold the old connection, with a copy of
 * such a write in its receive buffer or in the network (TCP retransmits
 * what we had sent even after we closed); sent again on another session
 * and then overwritten by a newer write, that stale copy would land later
 * and undo the newer data.  Logging in again with the same ISID makes the
 * target end the old connection and its tasks first (session
 * reinstatement), so after it nothing of the old connection can land.
 * (After the replacement timeout session_tick() lets other sessions have
 * them after all.)  Without @requeue every task, pinned ones too, fails
 * with EIO.  Tasks whose status already came and that waited only for a
 * sender end with that status.
 *
 * @next is SESSION_RECONNECT_WAIT (with @requeue) or SESSION_CLOSED; a
 * session being closed (CLOSING) goes CLOSED whatever @next, and fails its
 * tasks.  Returns the state entered.  The loop only. */
enum session_state session_stop(struct session *s, enum session_state next,
				       bool requeue)
{
	pthread_mutex_lock(&s->lock);
	if (s->state == SESSION_CLOSING) {
		next = SESSION_CLOSED;
		requeue = false;
	}
	if (s->state != next)
		session_set_state(s, next);    /* (nobody sends: session_tx_may_run()) */
	/* (a session that logged in again and was lost before it took
	 * commands, in its identity check, is still down since then) */
	if (!s->down_since_ns)
		s->down_since_ns = mono_now_ns();
	s->ping_state = PING_IDLE;                  /* that connection is gone */
	session_tmf_reset_locked(s);                /* and its task management */
	conn_shutdown(&s->conn);
	/* a loop still sending is done soon: the socket is shut down */
	while (s->tx_busy)
		pthread_cond_wait(&s->socket_cond, &s->lock);

	/* Nobody sends any more: drop the senders' references, then empty
	 * the table.  A task whose status already came waited only for these
	 * references: it is done now (with that status). */
	struct iscsi_task *answered = session_tx_forget_locked(s);
	if (answered)
		answered->next = NULL;
	while (s->ctl_head) {
		struct tx_item *it = s->ctl_head;
		s->ctl_head = it->next;
		if (it->task && --it->task->tx_refs == 0 && it->task->finished) {
			it->task->next = answered;
			answered = it->task;
		}
		free(it);
	}
	s->ctl_tail = NULL;
	s->nop_answers = 0;
	for (struct iscsi_task *t = s->cmd_head, *after; t; t = after) {
		after = t->next;
		if (--t->tx_refs == 0 && t->finished && t != &s->vtask) {
			t->next = answered;
			answered = t;
		}
	}
	s->cmd_head = s->cmd_tail = NULL;
	struct iscsi_task *list = NULL;
	for (unsigned i = 0; i < s->nslots; i++) {
		struct iscsi_task *t = s->slots[i];
		if (!t)
			continue;
		session_finish_task(s, t);
		t->finished = false;
		if (t != &s->vtask)     /* the identity check ends with the connection */
			list = insert_by_cmdsn(list, t);
	}
	session_verify_stop_locked(s);
	pthread_mutex_unlock(&s->lock);

	if (requeue) {
		/* A command that has cost a connection several times is not
		 * sent again: the target is likely choking on it. */
		struct iscsi_task *again = NULL, **tail = &again, *failed = NULL;
		struct iscsi_task *pinned = NULL, **ptail = &pinned;
		unsigned npinned = 0;
		while (list) {
			struct iscsi_task *t = list;
			list = t->next;
			/* Counted only when it was sent on a connection that
			 * logged in after its previous loss: when a target
			 * dies, its sessions notice one after the other, and a
			 * command handed from each to the next on the way must
			 * not run out of tries in one outage. */
			bool counts = t->on_wire && s->login_seq > t->lost_at_login;
			bool pin = t->dir == TASK_DIR_WRITE && t->on_wire;
			t->lost_at_login = atomic_load(&logins);
			if (counts && ++t->reissues > MAX_REISSUES) {
				log_error("%s: command 0x%02x on LUN %u failed %u connections; giving up%s",
					  s->name, t->cdb[0], t->lun, t->reissues,
					  pin ? " once the session is back (a copy of it may still land)" : "");
				/* a write on the wire fails only when its copy
				 * can no longer land after a newer write */
				if (!pin) {
					t->next = failed;
					failed = t;
					continue;
				}
				t->out_of_tries = true;
			}
			t->next = NULL;
			if (pin) {
				*ptail = t;
				ptail = &t->next;
				npinned++;
			} else {
				*tail = t;
				tail = &t->next;
			}
		}
		if (pinned) {
			pthread_mutex_lock(&s->lock);
			int32_t tpgt = s->params.has_tpgt ? s->params.target_portal_group_tag : -1;
			int64_t now = mono_now_ns();
			for (struct iscsi_task *t = pinned; t; t = t->next) {
				t->lost_tpgt = tpgt;
				t->pinned_ns = now;
			}
			/* (empty, unless the last login was in another
			 * portal group: verify_finish()) */
			*ptail = s->pinned;
			s->pinned = pinned;
			pthread_mutex_unlock(&s->lock);
			log_debug("%s: %u writes wait for the session to log in again", s->name,
				  npinned);
		}
		session_owner_requeue(s, again);
		list = failed;
	} else {
		pthread_mutex_lock(&s->lock);
		struct iscsi_task *pinned = s->pinned;
		s->pinned = NULL;
		pthread_mutex_unlock(&s->lock);
		while (pinned) {
			struct iscsi_task *t = pinned;
			pinned = t->next;
			t->next = list;
			list = t;
		}
	}
	while (answered) {
		struct iscsi_task *t = answered;
		answered = t->next;
		session_task_end(s, t);
	}
	while (list) {
		struct iscsi_task *t = list;
		list = t->next;
		t->result = EIO;
		t->done(t);
	}
	return next;
}


struct iscsi_task *session_take_pinned_locked(struct session *s,
					      bool (*take)(const struct session *s,
							   const struct iscsi_task *t,
							   const void *arg),
					      const void *arg)
{
	struct iscsi_task *out = NULL, **tail = &out, **pp = &s->pinned;

	while (*pp) {
		struct iscsi_task *t = *pp;
		if (take(s, t, arg)) {
			*pp = t->next;
			t->next = NULL;
			*tail = t;
			tail = &t->next;
		} else {
			pp = &t->next;
		}
	}
	return out;
}

void session_release_pinned(struct session *s, struct iscsi_task *list)
{
	struct iscsi_task *again = NULL, **tail = &again;

	while (list) {
		struct iscsi_task *t = list;
		list = t->next;
		t->next = NULL;
		if (t->out_of_tries) {
			t->result = EIO;
			t->done(t);
			continue;
		}
		*tail = t;
		tail = &t->next;
	}
	session_owner_requeue(s, again);
}

unsigned session_portal_count(const struct session_config *cfg)
{
	return cfg->nportals ? cfg->nportals : 1;
}

void session_use_portal(struct session *s, unsigned i)
{
	const struct session_config *cfg = s->cfg;

	s->portal_index = i % session_portal_count(cfg);
	if (cfg->nportals) {
		snprintf(s->portal_host, sizeof s->portal_host, "%s", cfg->portals[s->portal_index].host);
		s->portal_port = cfg->portals[s->portal_index].port;
	} else {
		snprintf(s->portal_host, sizeof s->portal_host, "%s", cfg->host);
		s->portal_port = cfg->port;
	}
}

void session_take_portal(struct session *s, const struct login_result *lr)
{
	if (!lr->moved)
		return;
	char portal[PORTAL_TEXT_MAX];

	portal_format(portal, sizeof portal, lr->moved_host, lr->moved_port);
	log_debug("%s: target moved permanently to %s; later logins go there", s->name, portal);
	snprintf(s->portal_host, sizeof s->portal_host, "%s", lr->moved_host);
	s->portal_port = lr->moved_port;
}


/* ---- the socket on the loop ---- */

static void conn_ended(struct session *s, int rc);

/* The socket is ready (ev_source.ready): send on (EPOLLOUT: the rest of a
 * PDU the full socket cut), receive; an end of the connection is handled
 * here. */
static void sock_ready(struct ev_source *src, uint32_t events)
{
	struct session *s = SESSION_OF(src, src);

	if (events & EPOLLOUT)
		session_tx_resume(s);
	if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
		return;
	int rc = session_rx_ready(s);
	if (rc != 0)
		conn_ended(s, rc);
}

void session_attach_loop(struct session *s)
{
	session_rx_setup(s);
	if (conn_set_nonblocking(&s->conn) < 0) {
		log_error("%s: %s", s->name, err_msg());
		conn_ended(s, -1);
		return;
	}
	pthread_mutex_lock(&s->lock);
	s->src.fd = s->conn.fd;
	int rc = evloop_add(s->loop, &s->src, session_sock_events(s));
	if (rc < 0)
		s->src.fd = -1;
	pthread_mutex_unlock(&s->lock);
	if (rc < 0) {
		log_error("%s: %s", s->name, err_msg());
		conn_ended(s, -1);
		return;
	}
	/* what was queued before the socket was watched */
	session_tx_run(&s->tx_call);
	/* What the target sent right behind the last Login Response, in the
	 * same segment, is in the receiver's buffer already, and epoll tells
	 * nothing of it: it is read now (a NOP-In ping would otherwise wait,
	 * unanswered, for the target's next bytes). */
	if (!pdu_rx_idle(&s->conn.rx))
		sock_ready(&s->src, EPOLLIN);
}

/* Stop watching the socket.  The loop only. */
static void detach_loop(struct session *s)
{
	if (s->src.fd < 0)
		return;
	evloop_remove(s->loop, &s->src);
	pthread_mutex_lock(&s->lock);
	s->src.fd = -1;         /* (socket_full_locked() watches no more) */
	pthread_mutex_unlock(&s->lock);
}

/* ---- recovery ---- */

static void arm_retry(struct session *s);

/* The connection ended: session_rx_ready() returned @rc (-1 with
 * err_set(), or 1: our logout completed).  Close, fail or reconnect.  The
 * loop only. */
static void conn_ended(struct session *s, int rc)
{
	detach_loop(s);
	pthread_mutex_lock(&s->lock);
	bool closing = s->state == SESSION_CLOSING;
	/* then err_msg() is "... closed the connection" */
	bool dropped = s->state == SESSION_DROPPING;
	pthread_mutex_unlock(&s->lock);
	if (rc > 0 || closing) {
		if (rc < 0)
			log_debug("%s: connection ended during logout: %s", s->name, err_msg());
		session_stop(s, SESSION_CLOSED, false);
		session_owner_kick(s);
		return;
	}
	if (s->no_recover) {
		/* nowhere to reconnect to: the tasks fail */
		log_error("%s: %s", s->name, err_msg());
		session_stop(s, SESSION_CLOSED, false);
		session_owner_kick(s);
		return;
	}
	if (dropped)
		log_info("%s: connection dropped; reconnecting", s->name);
	else
		log_error("%s: %s; reconnecting", s->name, err_msg());
	if (session_stop(s, SESSION_RECONNECT_WAIT, true) == SESSION_CLOSED) {
		session_owner_kick(s);   /* closed meanwhile */
		return;
	}
	/* Under the lock: session_tick() and session_logout_and_free() shut
	 * s->conn down from other threads, and must never see the number of
	 * a descriptor that is being closed (and may be reused at once). */
	pthread_mutex_lock(&s->lock);
	conn_close(&s->conn);
	pthread_mutex_unlock(&s->lock);
	s->attempt = 0;
	s->outage_ns = mono_now_ns();
	if (s->outage_ns - s->logged_in_ns < (int64_t)RECONNECT_QUICK_LOSS_MS * 1000000)
		s->quick_losses++;
	else
		s->quick_losses = 0;
	s->seed = (unsigned)s->outage_ns ^ (s->index * 2654435761u);
	arm_retry(s);
}

/* The backoff before attempt @n (from 1) of an outage: RECONNECT_FIRST_MS
 * doubling up to RECONNECT_MAX_MS. */
static int64_t backoff_ms(unsigned n)
{
	return n < 3 ? (int64_t)RECONNECT_FIRST_MS << (n - 1) : RECONNECT_MAX_MS;
}

/* Arm the wait before login attempt s->attempt: the target's Time2Wait
 * for the first (the one an Async Message gave for this loss, else the
 * negotiated DefaultTime2Wait), but no less than the backoff of the quick
 * losses in a row; then the backoff of the attempts; each plus up to a
 * quarter of jitter.  The loop only. */
static void arm_retry(struct session *s)
{
	int64_t delay;

	if (s->attempt == 0) {
		unsigned time2wait_s = s->next_time2wait_s >= 0 ? (unsigned)s->next_time2wait_s :
			s->params.default_time2wait;
		s->next_time2wait_s = -1;
		delay = (int64_t)time2wait_s * 1000;
		if (s->quick_losses && delay < backoff_ms(s->quick_losses))
			delay = backoff_ms(s->quick_losses);
	} else {
		delay = backoff_ms(s->attempt);
	}
	if (delay > RECONNECT_TIME2WAIT_MAX_MS)
		delay = RECONNECT_TIME2WAIT_MAX_MS;
	delay += delay ? rand_r(&s->seed) % (delay / 4 + 1) : 0;
	evloop_timer_arm(s->loop, &s->retry_timer, mono_now_ns() + delay * 1000000);
}

static void login_done(void *arg, int rc, struct conn *c, const struct login_result *lr);

/* The wait is over: the next login attempt starts, unless the session is
 * being closed. */
static void retry_fire(struct ev_timer *timer)
{
	struct session *s = SESSION_OF(timer, retry_timer);
	const struct session_config *cfg = s->cfg;
	uint8_t isid[6];

	pthread_mutex_lock(&s->lock);
	if (s->state != SESSION_RECONNECT_WAIT) {
		/* (CLOSING: session_logout_and_free() ends it) */
		pthread_mutex_unlock(&s->lock);
		return;
	}
	session_set_state(s, SESSION_LOGGING_IN);
	pthread_mutex_unlock(&s->lock);
	/* the same ISID: RFC 7143 session reinstatement */
	memcpy(isid, cfg->isid_base, 6);
	isid[5] = (uint8_t)(isid[5] + s->index);
	s->login = login_loop_start(s->loop, s->portal_host, s->portal_port,
				    cfg->connect_timeout_ms, &cfg->text, isid, 0, login_done, s);
	if (!s->login) {
		struct login_result none = { .status_class = 0 };
		struct conn closed = { .fd = -1 };
		login_done(s, -1, &closed, &none);
	}
}

/* A login attempt failed (err_*() says why): the next one asks the
 * target's next portal, after the wait. */
static void attempt_failed(struct session *s)
{
	const struct session_config *cfg = s->cfg;

	log_warn("%s: reconnect attempt %u: %s", s->name, s->attempt + 1, err_msg());
	/* (where a permanent redirect sent us counts as the portal in use) */
	session_use_portal(s, s->portal_index + 1);
	if (session_portal_count(cfg) > 1) {
		char portal[PORTAL_TEXT_MAX];

		portal_format(portal, sizeof portal, s->portal_host, s->portal_port);
		log_info("%s: trying portal %s next", s->name, portal);
	}
	s->attempt++;
	pthread_mutex_lock(&s->lock);
	bool closing = s->state == SESSION_CLOSING;
	if (!closing)
		session_set_state(s, SESSION_RECONNECT_WAIT);
	pthread_mutex_unlock(&s->lock);
	if (!closing)
		arm_retry(s);
}

/* The login attempt ended (login_loop.h): a connection logged in with
 * the same ISID becomes the session's (VERIFYING), watched at once, its
 * LUNs checked before the session takes the owner's commands; a failure
 * arms the next attempt.  The loop only. */
static void login_done(void *arg, int rc, struct conn *c, const struct login_result *lr)
{
	struct session *s = arg;
	const struct session_config *cfg = s->cfg;

	s->login = NULL;
	if (rc < 0) {
		attempt_failed(s);
		return;
	}
	session_take_portal(s, lr);
	conn_set_keepalive(c, cfg->noop_interval_s, cfg->noop_timeout_s);
	pthread_mutex_lock(&s->lock);
	if (s->state == SESSION_CLOSING) {
		pthread_mutex_unlock(&s->lock);
		conn_close(c);
		return;
	}
	s->conn = *c;
	session_take_login(s, lr);
	atomic_store_explicit(&s->last_rx_ns, mono_now_ns(), memory_order_relaxed);
	/* counted before the session can go on to FULL_FEATURE: whoever
	 * sees it back sees the reconnect counted */
	atomic_fetch_add(&s->st_reconnects, 1);
	session_set_state(s, SESSION_VERIFYING);
	pthread_mutex_unlock(&s->lock);
	log_info("%s: reconnected to %s after %.1f s (%u attempts)", s->name, s->conn.peer,
		 (double)(mono_now_ns() - s->outage_ns) / 1e9, s->attempt + 1);
	session_attach_loop(s);
	pthread_mutex_lock(&s->lock);
	bool verifying = s->state == SESSION_VERIFYING && s->src.fd >= 0;
	pthread_mutex_unlock(&s->lock);
	/* the pinned writes and the pool's commands wait for the identity
	 * check (verify_finish()) */
	if (verifying)
		session_verify_start(s);
}

int session_recovery_init(struct session *s)
{
	s->tx_call.run = session_tx_run;
	s->retry_timer.fire = retry_fire;
	s->src.fd = -1;
	s->src.ready = sock_ready;
	return 0;
}

void session_close_on_loop(void *arg)
{
	struct session *s = arg;

	evloop_timer_cancel(s->loop, &s->retry_timer);
	evloop_timer_cancel(s->loop, &s->tick_timer);
	login_loop_cancel(s->login);
	s->login = NULL;
	detach_loop(s);
	pthread_mutex_lock(&s->lock);
	bool closed = s->state == SESSION_CLOSED;
	pthread_mutex_unlock(&s->lock);
	if (!closed)
		session_stop(s, SESSION_CLOSED, false);
	evloop_cancel(s->loop, &s->tx_call);
}
