/* session.c: one iSCSI session (see session.h): its state machine
 * (session_set_state() and the table of legal moves), the task table, the
 * one-second tick and the life cycle.  What it receives is in
 * session_rx.c, submission and sending in session_tx.c, the end of a
 * connection and the reconnect in session_recover.c, task management
 * (cmd_timeout) in session_tmf.c, the identity check after a reconnect in
 * session_verify.c; they share session_internal.h.
 *
 * THE STATE MACHINE
 *
 * s->state (enum session_state, session.h) is where the session is in its
 * life; session_set_state() is the only place it changes, under s->lock,
 * checking each move against legal_moves[] (an illegal one is a bug: a
 * log line and abort(), or with NDEBUG the line and the move), logging
 * it at debug level and telling the owner's observer.  What used to be
 * booleans beside the state are states or sub-machines now: the Logout
 * the target asked for (DRAINING, LOGGING_OUT), a connection we shut down
 * (DROPPING), the end (CLOSED), whether the connection may be sent on
 * (session_tx_may_run()), the keepalive (enum ping_state), task
 * management (enum tmf_state, session_tmf.c) and the identity check (enum
 * verify_state, session_verify.c).
 *
 * THE OWNER
 *
 * The session never calls its owner (the pool) by name: news goes up
 * through s->ops (struct session_owner_ops): room again (kick), tasks to
 * send again elsewhere (requeue), a LUN reset (lun_reset), and what the
 * identity check finds (expected_luns, lun_replaced, lun_grew).  They are
 * called with no session lock held (but state_changed, the observer).
 *
 * NOTES ON THE THREAD MODEL
 *
 * A session has no thread of its own.  It belongs to one event loop
 * (s->loop, evloop.h) for its life, which watches its non-blocking socket:
 *  - the loop alone receives (session_rx.c).  It validates every PDU,
 *    places Data-In straight into the task's buffer, queues Data-Out for
 *    R2Ts and completes tasks, calling task->done() with no lock held; it
 *    handles the end of the connection and runs the reconnect's timer
 *    (session_recover.c), login attempts included (login_loop.h).
 *  - whoever holds s->tx_busy alone writes the socket: the session's loop
 *    (s->tx_call, posted when something is queued while nobody holds it),
 *    or any loop that submits a command while both queues are empty,
 *    which sends it itself (session_send_pending(), after the owner's lock
 *    is dropped): no wakeup of another thread per command, which is most
 *    of the cost of small I/O.  The holder sends what others queue
 *    meanwhile before it lets go.  The socket never blocks: when it is
 *    full the rest waits for EPOLLOUT on the loop (session_tx.c), so a
 *    target that stops reading holds no thread.
 * Submitters (the loops, or any thread through the owner's kick) call
 * session_submit(), which assigns ITT and CmdSN under the session lock
 * and appends to the command queue, so CmdSN order is wire order.  The
 * session's own timer on its loop calls session_tick() once a second
 * (session_tick_start(): keepalive, cmd_timeout, the target's logout
 * deadline, the replacement timeout); it too may move the state
 * (DROPPING).
 *
 * Every queue the target can fill is bounded: Data-Out items by the R2Ts
 * a task may have outstanding (MaxOutstandingR2T, checked in rx_r2t())
 * times the task table; answers to the target's NOP-In pings by
 * NOP_ANSWERS_MAX (beyond it the connection is dropped); our keepalive
 * and task management requests to one queued each, Logout requests to
 * one for the target's wish and one for our close.  Lines about
 * Asynchronous Messages are logged one a second at most.
 *
 * One mutex per session, s->lock, protects the task table, the sequence
 * numbers, both queues, the state and the sub-machines.  It is never held
 * across a system call on the socket (but shutdown(2)), nor while an
 * owner's callback runs (but the observer's).  Lock order: owner (pool)
 * -> session -> the loop's queue lock (evloop_post()).
 *
 * A task's memory belongs to its owner, and done() may free it.  A sender
 * may still be writing a task's data when its status arrives (a target
 * may answer early, e.g. with CHECK CONDITION), so every TX item, and the
 * PDU a full socket cut (s->tx_hold), holds a reference (tx_refs) and
 * done() waits for the last one.
 *
 * When the connection is lost the loop waits for the sender, takes every
 * task out of the table and hands it back to the owner to be sent again,
 * except writes that were on the wire: those wait in s->pinned until this
 * session has logged in again (session_stop() says why), and then go back
 * to the owner too.  Only the loop's recovery replaces s->conn, under
 * the lock, while the session is not connected; other threads shut it down
 * only with the lock held and the session connected
 * (session_connected()).
 *
 * A session that logged in again does not take the owner's commands at
 * once: it is SESSION_VERIFYING (session_is_up() false, so the pool does
 * not dispatch to it) while it checks with commands of its own (s->vtask,
 * one at a time, never in the pool) that every LUN the owner expects is
 * the one probed: VPD 0x80 and/or 0x83 as at the probe, READ CAPACITY.
 * Each answer's callback (on the loop) sends the next; a LUN found to be
 * another is reported (ops->lun_replaced: its commands fail with EIO
 * from then on).  Then the session is FULL_FEATURE, its pinned writes go
 * back to the owner and the owner is kicked.  Nothing waits for a lock on
 * the loop; retries after BUSY or NOT READY are sent by session_tick().
 */
#include "session.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "iov.h"
#include "log.h"
#include "login.h"
#include "scsi.h"
#include "session_internal.h"


void session_params_copy(struct session *s, struct iscsi_params *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->params;
	pthread_mutex_unlock(&s->lock);
}

uint64_t session_load(const struct session *s)
{
	return atomic_load_explicit(&s->load_bytes, memory_order_relaxed);
}

struct evloop *session_loop(const struct session *s)
{
	return s->loop;
}

bool session_is_up(const struct session *s)
{
	int st = atomic_load_explicit(&s->state_hint, memory_order_relaxed);

	return st == SESSION_FULL_FEATURE || st == SESSION_DRAINING || st == SESSION_LOGGING_OUT;
}

bool session_is_alive(const struct session *s)
{
	int st = atomic_load_explicit(&s->state_hint, memory_order_relaxed);

	return st != SESSION_CLOSING && st != SESSION_CLOSED;
}

enum session_state session_state_hint(const struct session *s)
{
	return (enum session_state)atomic_load_explicit(&s->state_hint, memory_order_relaxed);
}

/* ---- the state machine (session.h, enum session_state) ---- */

const char *session_state_name(enum session_state state)
{
	switch (state) {
	case SESSION_LOGGING_IN: return "logging in";
	case SESSION_VERIFYING: return "verifying identity";
	case SESSION_FULL_FEATURE: return "full feature";
	case SESSION_DRAINING: return "draining for logout";
	case SESSION_LOGGING_OUT: return "logging out (target's wish)";
	case SESSION_DROPPING: return "dropping the connection";
	case SESSION_RECONNECT_WAIT: return "waiting to reconnect";
	case SESSION_CLOSING: return "closing";
	case SESSION_CLOSED: return "closed";
	}
	return "invalid state";
}

/* Bit of state @st in a row of legal_moves. */
#define TO(st) (1u << (st))
/* The moves session_set_state() allows, by the state moved from. */
static const unsigned legal_moves[SESSION_STATES] = {
	[SESSION_LOGGING_IN] = TO(SESSION_FULL_FEATURE) | TO(SESSION_VERIFYING) |
		TO(SESSION_RECONNECT_WAIT) | TO(SESSION_CLOSING) | TO(SESSION_CLOSED),
	[SESSION_VERIFYING] = TO(SESSION_FULL_FEATURE) | TO(SESSION_DRAINING) |
		TO(SESSION_DROPPING) | TO(SESSION_RECONNECT_WAIT) | TO(SESSION_CLOSING) |
		TO(SESSION_CLOSED),
	[SESSION_FULL_FEATURE] = TO(SESSION_DRAINING) | TO(SESSION_DROPPING) |
		TO(SESSION_RECONNECT_WAIT) | TO(SESSION_CLOSING) | TO(SESSION_CLOSED),
	[SESSION_DRAINING] = TO(SESSION_LOGGING_OUT) | TO(SESSION_DROPPING) |
		TO(SESSION_RECONNECT_WAIT) | TO(SESSION_CLOSING) | TO(SESSION_CLOSED),
	[SESSION_LOGGING_OUT] = TO(SESSION_DROPPING) | TO(SESSION_RECONNECT_WAIT) |
		TO(SESSION_CLOSING) | TO(SESSION_CLOSED),
	[SESSION_DROPPING] = TO(SESSION_RECONNECT_WAIT) | TO(SESSION_CLOSING) |
		TO(SESSION_CLOSED),
	[SESSION_RECONNECT_WAIT] = TO(SESSION_LOGGING_IN) | TO(SESSION_CLOSING) |
		TO(SESSION_CLOSED),
	[SESSION_CLOSING] = TO(SESSION_CLOSED),
	[SESSION_CLOSED] = 0,
};
#undef TO

bool session_fsm_legal(const unsigned *moves, unsigned n, unsigned from, unsigned to)
{
	return from < n && to < n && (moves[from] & 1u << to);
}

void session_fsm_check(const char *who, const char *machine, bool legal, const char *from,
		       const char *to)
{
	if (legal)
		return;
	log_error("%s: illegal %s transition %s -> %s", who, machine, from, to);
#ifndef NDEBUG
	abort();
#endif
}

bool session_transition_legal(enum session_state from, enum session_state to)
{
	return session_fsm_legal(legal_moves, SESSION_STATES, from, to);
}

void session_set_state(struct session *s, enum session_state to)
{
	enum session_state from = s->state;

	session_fsm_check(s->name, "state", session_transition_legal(from, to),
			  session_state_name(from), session_state_name(to));
	s->state = to;
	if (to == SESSION_FULL_FEATURE)
		s->down_since_ns = 0;
	atomic_store_explicit(&s->state_hint, to, memory_order_relaxed);
	log_debug("%s: %s -> %s", s->name, session_state_name(from), session_state_name(to));
	pthread_cond_broadcast(&s->state_cond);
	if (s->ops && s->ops->state_changed)
		s->ops->state_changed(s->owner, s, from, to);
}

bool session_tx_may_run(const struct session *s)
{
	switch (s->state) {
	case SESSION_VERIFYING:
	case SESSION_FULL_FEATURE:
	case SESSION_DRAINING:
	case SESSION_LOGGING_OUT:
	case SESSION_DROPPING:
	case SESSION_CLOSING:
		return true;
	case SESSION_LOGGING_IN:
	case SESSION_RECONNECT_WAIT:
	case SESSION_CLOSED:
		return false;
	}
	return false;
}

bool session_connected(const struct session *s)
{
	return s->state == SESSION_VERIFYING || s->state == SESSION_FULL_FEATURE ||
		s->state == SESSION_DRAINING || s->state == SESSION_LOGGING_OUT;
}

void session_drop_locked(struct session *s)
{
	session_set_state(s, SESSION_DROPPING);
	conn_shutdown(&s->conn);
}

/* ---- the owner (session.h, struct session_owner_ops) ---- */

void session_owner_kick(struct session *s)
{
	if (s->ops && s->ops->kick)
		s->ops->kick(s->owner);
}

void session_owner_requeue(struct session *s, struct iscsi_task *list)
{
	if (!list)
		return;
	if (s->ops && s->ops->requeue) {
		s->ops->requeue(s->owner, list);
		return;
	}
	while (list) {
		struct iscsi_task *t = list;
		list = t->next;
		t->next = NULL;
		t->result = EIO;
		t->done(t);
	}
}

void session_get_stats(struct session *s, struct session_stats *out)
{
	out->commands = atomic_load(&s->st_commands);
	out->r2ts = atomic_load(&s->st_r2ts);
	out->data_out_pdus = atomic_load(&s->st_data_out);
	out->bytes_read = atomic_load(&s->st_read);
	out->bytes_written = atomic_load(&s->st_written);
	out->reconnects = atomic_load(&s->st_reconnects);
	out->timeouts = atomic_load(&s->st_timeouts);
	out->aborts = atomic_load(&s->st_aborts);
	out->lu_resets = atomic_load(&s->st_lu_resets);
	out->abort_sets = atomic_load(&s->st_abort_sets);
	out->verifications = atomic_load(&s->st_verifications);
	out->luns_replaced = atomic_load(&s->st_replaced);
}

/* ---- sequence numbers (lock held) ---- */

bool session_update_window(struct session *s, uint32_t exp_cmdsn, uint32_t max_cmdsn)
{
	if (sn_lt(max_cmdsn, exp_cmdsn - 1))
		return false;
	if (sn_lt(s->exp_cmdsn, exp_cmdsn))
		s->exp_cmdsn = exp_cmdsn;
	if (sn_lt(s->max_cmdsn, max_cmdsn))
		s->max_cmdsn = max_cmdsn;
	if (sn_lt(s->max_cmdsn, s->cmdsn) || !s->window_wait_since_ns)
		return false;
	s->window_wait_since_ns = 0;      /* open: nothing waits for it */
	return true;
}

void session_update_statsn(struct session *s, uint32_t statsn)
{
	if (sn_le(s->exp_statsn, statsn))
		s->exp_statsn = statsn + 1;
}

/* ---- task table (lock held) ---- */

static int slot_of(uint32_t itt)
{
	return (int)(itt & (MAX_SLOTS - 1));
}

struct iscsi_task *session_find_task(struct session *s, uint32_t itt)
{
	unsigned slot = (unsigned)slot_of(itt);
	if (itt == ISCSI_RESERVED_TAG || slot >= s->nslots)
		return NULL;
	struct iscsi_task *t = s->slots[slot];
	return t && t->itt == itt ? t : NULL;
}

bool session_finish_task(struct session *s, struct iscsi_task *t)
{
	s->slots[slot_of(t->itt)] = NULL;
	s->outstanding--;
	session_logout_if_drained_locked(s);
	atomic_fetch_sub_explicit(&s->load_bytes, t->xfer_len ? t->xfer_len : 1,
				  memory_order_relaxed);
	t->finished = true;
	return t->tx_refs == 0;
}

void session_reissue(struct session *s, struct iscsi_task *t)
{
	t->finished = false;
	t->reissue_when_released = false;
	t->next = NULL;
	if (t == &s->vtask) {
		/* the identity check's own: its callback reconnects */
		t->result = EIO;
		t->done(t);
		return;
	}
	if (!s->ops || !s->ops->requeue) {
		log_error("%s: command 0x%02x on LUN %u aborted; no owner to send it again", s->name,
			  t->cdb[0], t->lun);
		t->result = EIO;
		t->done(t);
		return;
	}
	if (++t->reissues > MAX_REISSUES) {
		log_error("%s: command 0x%02x on LUN %u aborted %u times; giving up", s->name,
			  t->cdb[0], t->lun, t->reissues);
		t->result = EIO;
		t->done(t);
		return;
	}
	session_owner_requeue(s, t);
}

/* session_take_pinned_locked() predicate: pinned longer than the
 * replacement timeout before *@arg (an int64_t, now). */
static bool pinned_timed_out(const struct session *s, const struct iscsi_task *t,
			     const void *arg)
{
	return *(const int64_t *)arg - t->pinned_ns >
	       (int64_t)s->cfg->replacement_timeout_s * 1000000000;
}

void session_task_end(struct session *s, struct iscsi_task *t)
{
	if (t->reissue_when_released)
		session_reissue(s, t);
	else
		t->done(t);
}

void session_logout_if_drained_locked(struct session *s)
{
	if (s->state != SESSION_DRAINING || s->outstanding)
		return;
	struct tx_item *it = calloc(1, sizeof *it);
	if (!it)
		return;         /* session_tick() drops the connection at the deadline */
	it->kind = TX_LOGOUT;
	session_set_state(s, SESSION_LOGGING_OUT);
	/* its answer is due as a ping's, whatever time the target gave */
	s->logout_by_ns = mono_now_ns();
	session_queue_ctl_locked(s, it);
}

void session_tick(struct session *s)
{
	session_tick_ahead(s, 0);
}

void session_tick_ahead(struct session *s, int64_t ahead_ns)
{
	const struct session_config *cfg = s->cfg;
	int64_t now = mono_now_ns() + ahead_ns;
	int64_t last_rx = atomic_load_explicit(&s->last_rx_ns, memory_order_relaxed);
	char why[160] = "";

	pthread_mutex_lock(&s->lock);
	/* Writes that waited the replacement timeout for this session, which
	 * is not back (also when it logs in again and again but never ends
	 * its identity check), or is back in another portal group: other
	 * sessions may have them now (or, when none is up either, the owner
	 * fails them). */
	struct iscsi_task *release = session_take_pinned_locked(s, pinned_timed_out, &now);
	if (release) {
		bool back = s->state == SESSION_FULL_FEATURE;
		pthread_mutex_unlock(&s->lock);
		log_warn("%s: not back%s after %u s; its writes may go on other sessions",
			 s->name, back ? " in their portal group" : "", cfg->replacement_timeout_s);
		session_release_pinned(s, release);
		pthread_mutex_lock(&s->lock);
	}
	if (s->state == SESSION_VERIFYING && s->verify_state != VERIFY_IDLE &&
	    s->verify_retry_ns && now >= s->verify_retry_ns)
		session_verify_send_locked(s);     /* after BUSY, NOT READY or a full window */
	if (!session_connected(s)) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	bool ping_out = s->ping_state == PING_QUEUED || s->ping_state == PING_SENT;
	if (ping_out && cfg->noop_timeout_s &&
	    now - s->ping_sent_ns > (int64_t)cfg->noop_timeout_s * 1000000000 &&
	    now - last_rx > (int64_t)cfg->noop_timeout_s * 1000000000) {
		snprintf(why, sizeof why, "no answer to a NOP-Out within %u s", cfg->noop_timeout_s);
	} else if (s->ping_state == PING_IDLE && cfg->noop_interval_s &&
		   now - last_rx > (int64_t)cfg->noop_interval_s * 1000000000) {
		/* (one at a time: a NOP-In with our ITT that came before our
		 * NOP-Out went must not make a second one queue) */
		struct tx_item *it = calloc(1, sizeof *it);
		if (it) {
			it->kind = TX_PING;
			s->ping_state = PING_QUEUED;
			s->ping_sent_ns = now;
			session_queue_ctl_locked(s, it);
		}
	}
	if (!why[0])
		session_tmf_tick_locked(s, now, why, sizeof why);
	if (!why[0] && s->window_wait_since_ns && cfg->cmd_timeout_s &&
	    now - s->window_wait_since_ns > (int64_t)cfg->cmd_timeout_s * 1000000000)
		snprintf(why, sizeof why, "the CmdSN window stayed closed for %u s while commands waited",
			 cfg->cmd_timeout_s);
	if (!why[0] && s->state == SESSION_DRAINING && now > s->logout_by_ns)
		snprintf(why, sizeof why, "%u commands still outstanding when the target wanted the logout",
			 s->outstanding);
	if (!why[0] && s->state == SESSION_LOGGING_OUT &&
	    now > s->logout_by_ns + (int64_t)(cfg->noop_timeout_s ? cfg->noop_timeout_s : 5) * 1000000000)
		snprintf(why, sizeof why, "no answer to the Logout the target asked for");
	if (why[0]) {
		/* With the lock held: the session is connected, so s->conn is
		 * the live connection (the loop closes it and replaces it only
		 * under the lock, after the state left it).  The line first,
		 * so it comes before the loop's. */
		log_error("%s: %s; dropping the connection", s->name, why);
		session_drop_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
}

/* The session's second, on its loop: tick, and arm the next. */
static void tick_fire(struct ev_timer *timer)
{
	struct session *s = (struct session *)((char *)timer - offsetof(struct session, tick_timer));

	session_tick(s);
	evloop_timer_arm(s->loop, &s->tick_timer, mono_now_ns() + 1000000000);
}

/* Arm the first second (evloop_run_sync()). */
static void tick_arm(void *arg)
{
	struct session *s = arg;

	s->tick_timer.fire = tick_fire;
	evloop_timer_arm(s->loop, &s->tick_timer, mono_now_ns() + 1000000000);
}

void session_tick_start(struct session *s)
{
	evloop_run_sync(s->loop, tick_arm, s);
}

/* ---- life cycle ---- */

/* session_attach_loop() through evloop_run_sync(). */
static void attach_on_loop(void *arg)
{
	session_attach_loop(arg);
}

int session_start(struct session *s, const struct login_result *lr, enum session_state first)
{
	const struct session_config *cfg = s->cfg;

	session_take_login(s, lr);
	conn_set_keepalive(&s->conn, cfg->noop_interval_s, cfg->noop_timeout_s);
	s->nslots = cfg->queue_depth ? cfg->queue_depth : 1;
	if (s->nslots > MAX_SLOTS)
		s->nslots = MAX_SLOTS;
	/* our MaxRecvDataSegmentLength is fixed by configuration, so one
	 * scratch buffer serves every connection of the session.  Data
	 * segments are checked against params.max_recv_dsl: what we
	 * declared, or the RFC default 8192 when the target skipped the
	 * operational stage; the larger of the two always fits. */
	uint32_t scratch_len = cfg->text.max_recv_dsl > 8192 ? cfg->text.max_recv_dsl : 8192;
	s->slots = calloc(s->nslots, sizeof *s->slots);
	s->rx.scratch = malloc(scratch_len + 4);
	if (!s->slots || !s->rx.scratch) {
		err_set(ENOMEM, "out of memory");
		goto err;
	}
	if (session_recovery_init(s) < 0)
		goto err;
	if (!s->loop)
		s->loop = evloop_assign();
	if (!s->loop)
		goto err;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->socket_cond, NULL);
	pthread_cond_init(&s->state_cond, NULL);
	pthread_mutex_lock(&s->lock);
	session_set_state(s, first);
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->last_rx_ns, mono_now_ns());
	log_debug("%s: logged in to %s at %s, TSIH %u, MaxRecvDataSegmentLength %u/%u, "
		  "MaxBurstLength %u, FirstBurstLength %u, InitialR2T %s, ImmediateData %s, "
		  "MaxOutstandingR2T %u, digests %s/%s; event loop %u",
		  s->name, cfg->target_name, s->conn.peer, s->tsih, s->params.max_recv_dsl,
		  s->params.max_xmit_dsl, s->params.max_burst_length,
		  s->params.first_burst_length, s->params.initial_r2t ? "Yes" : "No",
		  s->params.immediate_data ? "Yes" : "No", s->params.max_outstanding_r2t,
		  s->params.header_digest ? "CRC32C" : "None",
		  s->params.data_digest ? "CRC32C" : "None", evloop_index(s->loop));
	/* (from here on the loop owns the connection: a failure to watch it
	 * is a lost connection, handled there) */
	evloop_run_sync(s->loop, attach_on_loop, s);
	return 0;

err:
	free(s->slots);
	s->slots = NULL;
	free(s->rx.scratch);
	s->rx.scratch = NULL;
	return -1;
}

struct session *session_alloc(const struct session_owner_ops *ops, void *owner,
			      const struct session_config *cfg, unsigned index)
{
	struct session *s = calloc(1, sizeof *s);

	if (!s) {
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	s->ops = ops;
	s->owner = owner;
	s->cfg = cfg;
	s->index = index;
	s->next_time2wait_s = -1;
	s->conn.fd = -1;
	snprintf(s->name, sizeof s->name, "session %u", index);
	return s;
}

/* session_attach_fd() that starts the session in state @first. */
static struct session *attach_fd(const struct session_owner_ops *ops, void *owner,
				 const struct session_config *cfg, unsigned index, int fd,
				 const struct login_result *lr, enum session_state first)
{
	struct session *s = session_alloc(ops, owner, cfg, index);

	if (!s) {
		close(fd);
		return NULL;
	}
	s->no_recover = true;
	if (conn_attach_fd(&s->conn, fd, "attached peer", -1) < 0)
		goto err_attach;
	s->conn.header_digest = lr->params.header_digest;
	s->conn.data_digest = lr->params.data_digest;
	if (session_start(s, lr, first) < 0)
		goto err_start;
	return s;

err_start:
	conn_close(&s->conn);
err_attach:
	free(s);
	return NULL;
}

struct session *session_attach_fd(const struct session_owner_ops *ops, void *owner,
				  const struct session_config *cfg, unsigned index, int fd,
				  const struct login_result *lr)
{
	return attach_fd(ops, owner, cfg, index, fd, lr, SESSION_FULL_FEATURE);
}

struct session *session_attach_fd_verifying(const struct session_owner_ops *ops, void *owner,
					    const struct session_config *cfg, unsigned index,
					    int fd, const struct login_result *lr,
					    const struct lun_identity *ids, unsigned n)
{
	struct lun_identity *copy = n ? malloc(n * sizeof *copy) : NULL;

	if (n && !copy) {
		close(fd);
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	if (n)
		memcpy(copy, ids, n * sizeof *copy);
	struct session *s = attach_fd(ops, owner, cfg, index, fd, lr, SESSION_VERIFYING);
	if (!s) {
		free(copy);
		return NULL;
	}
	session_verify_luns(s, copy, n);
	return s;
}

void session_logout_start(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	/* (DROPPING: the Logout stays queued; nothing more is sent on that
	 * connection.  LOGGING_OUT: the Logout the target asked for is
	 * queued or sent already, and nothing may follow it: its answer,
	 * CLOSING by then, is taken for ours.) */
	bool was_up = session_connected(s) || s->state == SESSION_DROPPING;
	bool logout_queued = s->state == SESSION_DROPPING || s->state == SESSION_LOGGING_OUT;
	if (s->state != SESSION_CLOSED && s->state != SESSION_CLOSING)
		session_set_state(s, SESSION_CLOSING);   /* a recovery gives up */
	if (was_up && !logout_queued) {
		struct tx_item *it = calloc(1, sizeof *it);
		if (it) {
			it->kind = TX_LOGOUT;
			session_queue_ctl_locked(s, it);
		}
	}
	/* (not connected: nothing to wait for; the loop closes at the end) */
	s->logout_awaited = was_up;
	pthread_mutex_unlock(&s->lock);
}

void session_logout_finish(struct session *s, const struct timespec *deadline)
{
	pthread_mutex_lock(&s->lock);
	while (s->logout_awaited && s->state != SESSION_CLOSED) {
		if (deadline_cond_wait(&s->state_cond, &s->lock, deadline) == ETIMEDOUT)
			break;
	}
	/* Logged out, failed, or no answer in time: end the connection
	 * (with the lock held, as in session_tick()). */
	conn_shutdown(&s->conn);
	pthread_mutex_unlock(&s->lock);
	/* the loop lets go: its timer, a login attempt under way, posted
	 * calls and watch; the tasks still there fail */
	evloop_run_sync(s->loop, session_close_on_loop, s);
	log_debug("%s: logged out", s->name);
	conn_close(&s->conn);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->socket_cond);
	pthread_cond_destroy(&s->state_cond);
	free(s->slots);
	free(s->rx.scratch);
	free(s->verify_luns);
	free(s);
}

void session_logout_and_free(struct session *s, int timeout_ms)
{
	struct timespec deadline = deadline_in_ms(timeout_ms);

	session_logout_start(s);
	session_logout_finish(s, &deadline);
}
