/* session.c: one iSCSI session (see session.h): its state machine
 * (session_set_state() and the table of legal moves), the task table, the
 * RX thread, recovery and the life cycle.  Submission and the TX side are
 * in session_tx.c, task management (cmd_timeout) in session_tmf.c, the
 * identity check after a reconnect in session_verify.c; they share
 * session_internal.h.
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
 * (DROPPING), the RX thread's end (CLOSED), whether the TX thread runs
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
 * Each session has two threads of its own:
 *  - the TX thread writes the socket.  It sends, in order, the control
 *    queue (Data-Out answering R2Ts, NOP-Out answering NOP-In, Logout) and
 *    then the command queue (SCSI Commands with their immediate and
 *    unsolicited data).  The RX thread never writes, so it never blocks on
 *    a full socket send buffer, and a target that stops reading while it
 *    sends cannot deadlock us.  It runs while session_tx_may_run().
 *  - a FUSE loop thread (session_inline_sends()) that submits a command while
 *    both queues are empty and nobody writes sends that command itself
 *    (session_send_pending(), after the owner's lock is dropped): one
 *    thread wakeup less per command, which is most of the cost of small
 *    I/O.  s->tx_busy is the token: whoever holds it alone writes the
 *    socket, and sends what others queue meanwhile before it lets go (a
 *    loop a few PDUs, then it wakes the TX thread for the rest), so
 *    nobody wakes the TX thread while the socket is taken.  The socket
 *    blocks: a loop in an inline send to a target that stopped reading
 *    waits until the keepalive drops the connection (doc/architecture.md;
 *    it ends when the sockets move onto the loops, issue 13).
 *  - the RX thread is the only reader.  It validates every PDU, places
 *    Data-In straight into the task's buffer, queues Data-Out for R2Ts and
 *    completes tasks, calling task->done() with no lock held.  It also
 *    runs recovery: RECONNECT_WAIT, LOGGING_IN, VERIFYING.
 * Submitters (the FUSE loops, or the RX thread of any session through the
 * owner's kick) call session_submit(), which assigns ITT and CmdSN under
 * the session lock and appends to the command queue, so CmdSN order is
 * wire order.  The owner's watchdog calls session_tick() about once a
 * second (keepalive, cmd_timeout, the target's logout deadline, the
 * replacement timeout); it too may move the state (DROPPING).
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
 * -> session.
 *
 * A task's memory belongs to its owner, and done() may free it.  The TX
 * thread may still be writing a task's data when its status arrives (a
 * target may answer early, e.g. with CHECK CONDITION), so every TX item
 * holds a reference (tx_refs) and done() waits for the last one.
 *
 * When the connection is lost the RX thread stops the TX thread, takes
 * every task out of the table and hands it back to the owner to be sent
 * again, except writes that were on the wire: those wait in s->pinned
 * until this session has logged in again (stop_session() says why), and
 * then go back to the owner too.  The RX thread alone replaces s->conn,
 * under the lock, while no TX thread runs; other threads shut it down only
 * with the lock held and the session connected (session_connected()).
 *
 * A session that logged in again does not take the owner's commands at
 * once: it is SESSION_VERIFYING (session_is_up() false, so the pool does
 * not dispatch to it) while it checks with commands of its own (s->vtask,
 * one at a time, never in the pool) that every LUN the owner expects is
 * the one probed: VPD 0x80 and/or 0x83 as at the probe, READ CAPACITY.
 * Each answer's callback (RX thread, or TX) sends the next; a LUN found
 * to be another is reported (ops->lun_replaced: its commands fail with
 * EIO from then on).  Then the session is FULL_FEATURE, its pinned writes
 * go back to the owner and the owner is kicked.  Nothing waits for a lock
 * on the RX thread; retries after BUSY or NOT READY are sent by
 * session_tick().
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
#include "portal.h"
#include "login.h"
#include "scsi.h"
#include "session_internal.h"

/* Logins of all sessions of the process, counted: a connection that logged
 * in before a task's previous loss went down in the same outage as that
 * loss (see stop_session()). */
static _Atomic uint64_t logins;


const struct iscsi_params *session_params(const struct session *s)
{
	return &s->params;
}

uint64_t session_load(const struct session *s)
{
	return atomic_load_explicit(&s->load_bytes, memory_order_relaxed);
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

void session_update_window(struct session *s, uint32_t exp_cmdsn, uint32_t max_cmdsn)
{
	if (sn_lt(max_cmdsn, exp_cmdsn - 1))
		return;
	if (sn_lt(s->exp_cmdsn, exp_cmdsn))
		s->exp_cmdsn = exp_cmdsn;
	if (sn_lt(s->max_cmdsn, max_cmdsn))
		s->max_cmdsn = max_cmdsn;
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

static void logout_if_drained(struct session *s);

bool session_finish_task(struct session *s, struct iscsi_task *t)
{
	s->slots[slot_of(t->itt)] = NULL;
	s->outstanding--;
	logout_if_drained(s);
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

void session_task_end(struct session *s, struct iscsi_task *t)
{
	if (t->reissue_when_released)
		session_reissue(s, t);
	else
		t->done(t);
}

/* ---- RX thread ----
 *
 * The RX thread receives through the conn's pdu_rx (pdu_rx.h): one recv()
 * brings what the socket has, and every PDU in it is handled before the
 * next.  For each PDU, rx_place() sees the header first and says where
 * the data segment goes (a Data-In's straight into its task's buffer,
 * once the header is found to fit it), then rx_handle() acts on the whole
 * PDU. */

/* What the RX thread keeps from the header of a PDU to its end. */
struct rx_ctx {
	struct session *s;          /* whose RX thread this is */
	uint8_t *scratch;           /* the data segment of any PDU but a
	                             * Data-In (sense, async event, rejected
	                             * header): max_recv_dsl + 4 bytes */
	struct iscsi_task *data_in; /* the task of the Data-In under way,
	                             * found and checked by rx_place() */
	bool kick_due;              /* a PDU handled since the last kick may
	                             * have made room (a task ended, the window
	                             * opened): rx_loop() kicks the owner once
	                             * before it waits for the socket again */
};

/* The header of a Data-In: find its task and check that the data fits
 * where it goes (the task's buffer at its offset: *@dst). */
static int rx_data_in_place(struct session *s, const union iscsi_bhs *bhs,
			    struct iscsi_task **task, uint8_t **dst)
{
	const struct iscsi_bhs_data_in *h = &bhs->data_in;
	uint32_t len = pdu_data_len(bhs);
	uint32_t offset = get_be32(h->buffer_offset);
	uint32_t datasn = get_be32(h->datasn);
	bool status = h->flags & ISCSI_DATAIN_STATUS;

	pthread_mutex_lock(&s->lock);
	struct iscsi_task *t = session_find_task(s, pdu_itt(bhs));
	if (t && status)
		session_update_statsn(s, get_be32(h->statsn));
	session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	pthread_mutex_unlock(&s->lock);

	if (!t)
		VIOLATION(s, "protocol error: Data-In for unknown ITT 0x%x", pdu_itt(bhs));
	if (t->dir != TASK_DIR_READ && len)
		VIOLATION(s, "protocol error: Data-In for ITT 0x%x, which is not a read", t->itt);
	if (offset > t->xfer_len || len > t->xfer_len - offset)
		VIOLATION(s, "protocol error: Data-In offset %u length %u outside the %u-byte buffer of ITT 0x%x",
			  offset, len, t->xfer_len, t->itt);
	if (datasn != t->exp_datasn)
		VIOLATION(s, "protocol error: Data-In DataSN %u, expected %u (ITT 0x%x)",
			  datasn, t->exp_datasn, t->itt);
	/* We always negotiate DataPDUInOrder=Yes and DataSequenceInOrder=Yes
	 * (result function OR), so the data of a read arrives at continuously
	 * increasing offsets with no gaps or overlays (RFC 7143 13.19-20).
	 * Checking that makes data_in_bytes the length of the filled prefix:
	 * a target cannot count one range twice and leave another unwritten. */
	if (len && offset != t->data_in_bytes)
		VIOLATION(s, "protocol error: Data-In offset %u, expected %u (ITT 0x%x)",
			  offset, t->data_in_bytes, t->itt);
	if (status && !(h->flags & ISCSI_FLAG_FINAL))
		VIOLATION(s, "protocol error: Data-In with status but without the F bit (ITT 0x%x)",
			  t->itt);
	/* Only this thread completes tasks, so t stays valid while we read. */
	*task = t;
	*dst = len ? t->read_buf + offset : NULL;
	return 0;
}

/* A whole Data-In of @t, its data in place. */
static int rx_data_in(struct session *s, const union iscsi_bhs *bhs, struct iscsi_task *t,
		      bool *kick)
{
	const struct iscsi_bhs_data_in *h = &bhs->data_in;
	uint32_t len = pdu_data_len(bhs);
	bool status = h->flags & ISCSI_DATAIN_STATUS;

	t->exp_datasn++;
	t->data_in_bytes += len;
	atomic_fetch_add_explicit(&s->st_read, len, memory_order_relaxed);
	if (!status)
		return 0;

	t->status = h->status;
	t->residual = get_be32(h->residual);
	t->underflow = h->flags & ISCSI_RSP_UNDERFLOW;
	t->overflow = h->flags & ISCSI_RSP_OVERFLOW;
	pthread_mutex_lock(&s->lock);
	bool due = session_finish_task(s, t);
	pthread_mutex_unlock(&s->lock);
	if (due)
		t->done(t);
	*kick = true;
	return 0;
}

static int rx_scsi_rsp(struct session *s, const union iscsi_bhs *bhs, uint8_t *scratch,
		       bool *kick)
{
	const struct iscsi_bhs_scsi_rsp *h = &bhs->scsi_rsp;
	uint32_t len = pdu_data_len(bhs);

	pthread_mutex_lock(&s->lock);
	struct iscsi_task *t = session_find_task(s, pdu_itt(bhs));
	uint32_t asked = t ? t->data_out_asked : 0;
	session_update_statsn(s, get_be32(h->statsn));
	session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	pthread_mutex_unlock(&s->lock);
	if (!t)
		VIOLATION(s, "protocol error: SCSI Response for unknown ITT 0x%x", pdu_itt(bhs));
	/* GOOD without underflow says the whole payload arrived: a target
	 * cannot have it before it was sent unasked or asked for by R2T (an
	 * error status may come early, the rest being dropped: RFC 7143) */
	if (t->dir == TASK_DIR_WRITE && h->response == 0 && h->status == SCSI_STATUS_GOOD &&
	    !(h->flags & ISCSI_RSP_UNDERFLOW) && asked < t->xfer_len)
		VIOLATION(s, "protocol error: GOOD status for a %u-byte write of which the target asked for %u bytes (ITT 0x%x)",
			  t->xfer_len, asked, t->itt);

	if (h->response != 0)
		log_debug("%s: target failed ITT 0x%x with iSCSI response 0x%02x",
			  s->name, t->itt, h->response);
	t->response = h->response;
	t->status = h->status;
	t->residual = get_be32(h->residual);
	t->underflow = h->flags & ISCSI_RSP_UNDERFLOW;
	t->overflow = h->flags & ISCSI_RSP_OVERFLOW;
	if (len >= 2) {
		uint32_t sense_len = get_be16(scratch);
		if (sense_len > len - 2)
			VIOLATION(s, "protocol error: SenseLength %u in a %u-byte segment (ITT 0x%x)",
				  sense_len, len, t->itt);
		if (sense_len > sizeof t->sense)
			sense_len = sizeof t->sense;
		memcpy(t->sense, scratch + 2, sense_len);
		t->sense_len = sense_len;
	}
	pthread_mutex_lock(&s->lock);
	bool due = session_finish_task(s, t);
	pthread_mutex_unlock(&s->lock);
	if (due)
		t->done(t);
	*kick = true;
	return 0;
}

static int rx_r2t(struct session *s, const union iscsi_bhs *bhs)
{
	const struct iscsi_bhs_r2t *h = &bhs->r2t;
	uint32_t offset = get_be32(h->buffer_offset);
	uint32_t length = get_be32(h->desired_len);

	/* (one with a data segment was refused by rx_place()) */
	struct tx_item *it = calloc(1, sizeof *it);
	if (!it) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	struct iscsi_task *t = session_find_task(s, pdu_itt(bhs));
	const char *bad = NULL;
	if (!t)
		bad = "for an unknown ITT";
	else if (t->dir != TASK_DIR_WRITE)
		bad = "for a task that is not a write";
	else if (length == 0)
		bad = "asking for 0 bytes";
	else if (length > s->params.max_burst_length)
		bad = "longer than MaxBurstLength";
	else if (offset > t->xfer_len || length > t->xfer_len - offset)
		bad = "outside the transfer";
	else if (t->r2t_outstanding >= s->params.max_outstanding_r2t)
		bad = "beyond MaxOutstandingR2T";
	else if (get_be32(h->ttt) == ISCSI_RESERVED_TAG)
		bad = "with the reserved Target Transfer Tag";
	if (bad) {
		pthread_mutex_unlock(&s->lock);
		free(it);
		VIOLATION(s, "protocol error: R2T %s (ITT 0x%x, offset %u, length %u)", bad,
			  pdu_itt(bhs), offset, length);
	}
	it->kind = TX_DATA_OUT;
	it->task = t;
	it->ttt = get_be32(h->ttt);
	it->offset = offset;
	it->length = length;
	t->tx_refs++;
	t->r2t_outstanding++;   /* until its last Data-Out goes (send_data_out) */
	t->data_out_asked = length > t->xfer_len - t->data_out_asked ? t->xfer_len :
		t->data_out_asked + length;
	session_queue_ctl_locked(s, it);
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add_explicit(&s->st_r2ts, 1, memory_order_relaxed);
	return 0;
}

/* A NOP-In: the answer to our keepalive, news of the window, or a ping of
 * the target's (a Target Transfer Tag), which is answered with a NOP-Out
 * carrying its TTT and LUN (RFC 7143 11.18.4).  A ping carries no data
 * (11.19), so nothing is echoed; data that comes anyway is dropped.  A
 * target that pings faster than it takes the answers would grow their
 * queue without end: at NOP_ANSWERS_MAX unsent the connection is dropped,
 * as for a target that stops answering. */
static int rx_nop_in(struct session *s, const union iscsi_bhs *bhs)
{
	const struct iscsi_bhs_nop_in *h = &bhs->nop_in;
	uint32_t ttt = get_be32(h->ttt);

	pthread_mutex_lock(&s->lock);
	if (pdu_itt(bhs) == ITT_PING) {
		/* (our ping still queued: the target echoed an ITT early) */
		if (s->ping_state == PING_SENT)
			s->ping_state = PING_IDLE;
		else if (s->ping_state == PING_QUEUED)
			s->ping_state = PING_ANSWERED_EARLY;
	}
	if (pdu_itt(bhs) != ISCSI_RESERVED_TAG)
		session_update_statsn(s, get_be32(h->statsn));
	session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	if (ttt == ISCSI_RESERVED_TAG) {
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	if (s->nop_answers >= NOP_ANSWERS_MAX) {
		unsigned unsent = s->nop_answers;
		pthread_mutex_unlock(&s->lock);
		err_set(ENOBUFS, "target keeps sending NOP-In pings while the answers to %u are still unsent (it does not read the connection)",
			unsent);
		return -1;
	}
	struct tx_item *it = calloc(1, sizeof *it);
	if (!it) {
		pthread_mutex_unlock(&s->lock);
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	it->kind = TX_NOP_OUT;
	it->ttt = ttt;
	it->lun_wire = get_be64(h->lun);
	s->nop_answers++;
	session_queue_ctl_locked(s, it);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* Whether a line about an Asynchronous Message may be logged now: one a
 * second per session at most, so that a target sending them without end
 * cannot fill the log.  *@unlogged: the events since the last line that
 * had none.  RX thread. */
static bool async_log_due(struct session *s, unsigned *unlogged)
{
	int64_t now = mono_now_ns();

	if (s->async_logged_ns && now - s->async_logged_ns < 1000000000) {
		s->async_unlogged++;
		return false;
	}
	*unlogged = s->async_unlogged;
	s->async_unlogged = 0;
	s->async_logged_ns = now;
	return true;
}

/* The target asked for a logout within @within seconds: FULL_FEATURE (or
 * VERIFYING: the check ends unfinished and is done again after the next
 * login) -> DRAINING, and the Logout goes once nothing is outstanding.
 * Returns whether that is news (a repeat changes nothing), with the
 * commands outstanding in *@outstanding.  RX thread, no lock held. */
static bool drain_for_logout(struct session *s, unsigned within, unsigned *outstanding)
{
	pthread_mutex_lock(&s->lock);
	*outstanding = s->outstanding;
	bool news = s->state == SESSION_FULL_FEATURE || s->state == SESSION_VERIFYING;
	if (news) {
		if (s->state == SESSION_VERIFYING)
			session_verify_stop_locked(s);
		session_set_state(s, SESSION_DRAINING);
		s->logout_by_ns = mono_now_ns() + (int64_t)within * 1000000000;
	}
	logout_if_drained(s);
	pthread_mutex_unlock(&s->lock);
	return news;
}

static int rx_async(struct session *s, const union iscsi_bhs *bhs)
{
	const struct iscsi_bhs_async *h = &bhs->async;

	pthread_mutex_lock(&s->lock);
	session_update_statsn(s, get_be32(h->statsn));
	session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	pthread_mutex_unlock(&s->lock);
	unsigned unlogged = 0;
	switch (h->event) {
	case ISCSI_ASYNC_SCSI_EVENT:
		if (async_log_due(s, &unlogged))
			log_info("%s: target reported a SCSI asynchronous event (%u more since the last line)",
				 s->name, unlogged);
		return 0;
	case ISCSI_ASYNC_LOGOUT_REQUEST: {
		/* ErrorRecoveryLevel 0, one connection: no new commands, the
		 * outstanding ones finish, then Logout (within Parameter3
		 * seconds, or session_tick() drops the connection) and, as
		 * after a lost connection, a new login with the same ISID
		 * after DefaultTime2Wait; waiting commands go out then */
		unsigned within = get_be16(h->param3);
		unsigned outstanding;
		if (drain_for_logout(s, within, &outstanding))
			log_info("%s: target requests logout within %u s; logging out after %u outstanding commands, then in again",
				 s->name, within, outstanding);
		return 0;
	}
	case ISCSI_ASYNC_DROP_CONNECTION:
	case ISCSI_ASYNC_DROP_SESSION:
		/* Parameter2 is Time2Wait: how long before logging in again
		 * (RFC 7143 11.9.1), for this once instead of DefaultTime2Wait */
		s->next_time2wait_s = get_be16(h->param2);
		err_set(ECONNRESET, "target announced it drops the %s (Time2Wait %d s)",
			h->event == ISCSI_ASYNC_DROP_SESSION ? "session" : "connection",
			s->next_time2wait_s);
		return -1;
	case ISCSI_ASYNC_RENEGOTIATE: {
		/* ErrorRecoveryLevel 0 has no text negotiation in full feature
		 * phase here: the parameters are negotiated anew by a new
		 * login, reached as for a logout the target asked for (within
		 * Parameter3 seconds, RENEGOTIATE_WITHIN_S when it gives none) */
		unsigned within = get_be16(h->param3) ? get_be16(h->param3) : RENEGOTIATE_WITHIN_S;
		unsigned outstanding;
		if (drain_for_logout(s, within, &outstanding))
			log_info("%s: target asks to renegotiate parameters; logging out after %u outstanding commands, then in again",
				 s->name, outstanding);
		return 0;
	}
	default:
		if (async_log_due(s, &unlogged))
			log_info("%s: ignoring asynchronous event %u (%u more since the last line)",
				 s->name, h->event, unlogged);
		return 0;
	}
}

static int rx_reject(struct session *s, const union iscsi_bhs *bhs, uint8_t *scratch)
{
	uint32_t len = pdu_data_len(bhs);

	/* The rejected header is only reported, never used to find a task: at
	 * error recovery level 0 the connection is dropped and every task on
	 * it fails together. */
	err_set(EPROTO, "target rejected a %s (reason 0x%02x)",
		len >= ISCSI_BHS_SIZE ? pdu_opcode_name(scratch[0]) : "PDU",
		bhs->reject.reason);
	return -1;
}

/* A Logout the target asked for (rx_async()) goes now if nothing is
 * outstanding.  Lock held. */
static void logout_if_drained(struct session *s)
{
	if (s->state != SESSION_DRAINING || s->outstanding)
		return;
	struct tx_item *it = calloc(1, sizeof *it);
	if (!it)
		return;         /* session_tick() drops the connection at the deadline */
	it->kind = TX_LOGOUT;
	session_set_state(s, SESSION_LOGGING_OUT);
	session_queue_ctl_locked(s, it);
}

/* What a Logout Response's response code says (RFC 7143 11.15.1). */
static const char *logout_response_text(uint8_t response)
{
	switch (response) {
	case 0:
		return "closed";
	case 1:
		return "CID not found";
	case 2:
		return "connection recovery not supported";
	case 3:
		return "cleanup failed";
	default:
		return "reserved code";
	}
}

/* Returns 1 when the session's logout completed; -1 (the connection ends
 * and is recovered) after a logout the target asked for. */
static int rx_logout_rsp(struct session *s, const union iscsi_bhs *bhs)
{
	pthread_mutex_lock(&s->lock);
	bool asked = s->state == SESSION_CLOSING;   /* set before the request goes */
	bool requested = s->state == SESSION_LOGGING_OUT;   /* the target's wish */
	pthread_mutex_unlock(&s->lock);
	if (!asked && !requested)
		VIOLATION(s, "protocol error: Logout Response without a Logout Request");
	if (pdu_itt(bhs) != ITT_LOGOUT)
		VIOLATION(s, "protocol error: Logout Response with ITT 0x%x", pdu_itt(bhs));
	if (bhs->logout_rsp.response != 0)
		log_warn("%s: logout answered with response %u (%s)", s->name,
			 bhs->logout_rsp.response, logout_response_text(bhs->logout_rsp.response));
	/* (its Time2Wait and Time2Retain are for ErrorRecoveryLevel 2's task
	 * reassignment, to be ignored below it: RFC 7143 11.15.2-3) */
	if (asked)
		return 1;
	log_info("%s: logged out as the target asked", s->name);
	pthread_mutex_lock(&s->lock);
	if (s->state == SESSION_LOGGING_OUT)   /* (not CLOSING meanwhile) */
		session_set_state(s, SESSION_DROPPING);  /* rx_main() then reconnects
							   * without an error line */
	pthread_mutex_unlock(&s->lock);
	err_set(ECONNRESET, "logged out as the target asked");
	return -1;
}

/* pdu_rx_place_fn: the header of a PDU is known and within our limits
 * (pdu_check_received()): refuse what cannot come in full feature phase
 * and say where the data segment goes. */
static int rx_place(void *arg, const union iscsi_bhs *bhs, uint8_t **dst)
{
	struct rx_ctx *x = arg;
	struct session *s = x->s;

	atomic_store_explicit(&s->last_rx_ns, mono_now_ns(), memory_order_relaxed);
	*dst = NULL;
	switch (pdu_opcode(bhs)) {
	case ISCSI_OP_DATA_IN:
		return rx_data_in_place(s, bhs, &x->data_in, dst);
	case ISCSI_OP_SCSI_RSP:
	case ISCSI_OP_ASYNC_MSG:
	case ISCSI_OP_REJECT:
		*dst = x->scratch;
		return 0;
	case ISCSI_OP_R2T:
		if (pdu_data_len(bhs))
			VIOLATION(s, "protocol error: R2T with a data segment");
		return 0;
	case ISCSI_OP_NOP_IN:           /* data dropped: see rx_nop_in() */
	case ISCSI_OP_LOGOUT_RSP:
	case ISCSI_OP_TMF_RSP:
		return 0;
	default:
		err_set(EPROTO, "protocol error: unexpected %s in full feature phase",
			pdu_opcode_name(bhs->common.opcode));
		return -1;
	}
}

/* Act on the complete PDU in s->conn.rx: 0, 1 when the session's logout
 * completed, or -1 with err_set(). */
static int rx_handle(struct rx_ctx *x)
{
	struct session *s = x->s;
	const union iscsi_bhs *bhs = &s->conn.rx.bhs;
	bool kick = false;
	int rc;

	switch (pdu_opcode(bhs)) {
	case ISCSI_OP_DATA_IN:
		rc = rx_data_in(s, bhs, x->data_in, &kick);
		x->data_in = NULL;
		break;
	case ISCSI_OP_SCSI_RSP:
		rc = rx_scsi_rsp(s, bhs, x->scratch, &kick);
		break;
	case ISCSI_OP_R2T:
		rc = rx_r2t(s, bhs);
		break;
	case ISCSI_OP_NOP_IN:
		rc = rx_nop_in(s, bhs);
		kick = true;    /* its MaxCmdSN may have opened the window */
		break;
	case ISCSI_OP_ASYNC_MSG:
		rc = rx_async(s, bhs);
		kick = true;    /* as NOP-In */
		break;
	case ISCSI_OP_REJECT:
		rc = rx_reject(s, bhs, x->scratch);
		break;
	case ISCSI_OP_LOGOUT_RSP:
		rc = rx_logout_rsp(s, bhs);
		break;
	case ISCSI_OP_TMF_RSP:
		rc = session_rx_tmf_rsp(s, bhs);
		kick = true;    /* its MaxCmdSN may have opened the window */
		break;
	default:                /* (refused by rx_place()) */
		err_set(EPROTO, "internal error: %s reached the RX handler",
			pdu_opcode_name(bhs->common.opcode));
		rc = -1;
		break;
	}
	x->kick_due |= kick;
	return rc;
}

/* Kick the owner once for the PDUs handled since the last kick, if any
 * made room. */
static void rx_kick(struct rx_ctx *x)
{
	if (x->kick_due) {
		x->kick_due = false;
		session_owner_kick(x->s);
	}
}

/* Receive and handle PDUs until the connection fails (-1, err_set()) or
 * the logout completes (1): one recv() at a time, then every PDU it
 * completed.  The owner is kicked once per such batch, when the buffer
 * runs dry (and before returning), not once per PDU: a recv() that
 * brought the statuses of many commands drains the owner's queue once. */
static int rx_loop(struct session *s, struct rx_ctx *x)
{
	conn_rx_setup(&s->conn, rx_place, x, s->params.max_recv_dsl);
	for (;;) {
		int rc = conn_rx_next(&s->conn);
		if (rc < 0) {
			rx_kick(x);
			return -1;
		}
		if (rc == PDU_RX_MORE) {
			rx_kick(x);
			if (conn_rx_fill(&s->conn) < 0)
				return -1;
			continue;
		}
		rc = rx_handle(x);
		if (rc != 0) {
			rx_kick(x);
			return rc;
		}
	}
}

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

/* The connection is gone or closing: stop the TX thread and take every
 * task out of the session.  With @requeue they are sent again whole, in
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
 * with EIO.  Tasks whose status already came and that waited only for the
 * TX thread end with that status.
 *
 * @next is SESSION_RECONNECT_WAIT (with @requeue) or SESSION_CLOSED; a
 * session being closed (CLOSING) goes CLOSED whatever @next, and fails its
 * tasks.  Returns the state entered.  RX thread only. */
static enum session_state stop_session(struct session *s, enum session_state next,
				       bool requeue)
{
	pthread_mutex_lock(&s->lock);
	if (s->state == SESSION_CLOSING) {
		next = SESSION_CLOSED;
		requeue = false;
	}
	if (s->state != next)
		session_set_state(s, next);    /* (the TX thread stops: session_tx_may_run()) */
	s->down_since_ns = mono_now_ns();
	s->ping_state = PING_IDLE;                  /* that connection is gone */
	session_tmf_reset_locked(s);                /* and its task management */
	pthread_cond_broadcast(&s->tx_cond);
	pthread_mutex_unlock(&s->lock);

	conn_shutdown(&s->conn);
	if (s->tx_running) {
		pthread_join(s->tx_thread, NULL);
		s->tx_running = false;
	}
	/* a submitter still sending its command inline is done soon: the
	 * socket is shut down */
	pthread_mutex_lock(&s->lock);
	while (s->tx_busy)
		pthread_cond_wait(&s->socket_cond, &s->lock);
	pthread_mutex_unlock(&s->lock);

	/* The TX thread is gone: drop its references, then empty the table.
	 * A task whose status already came waited only for these references:
	 * it is done now (with that status). */
	struct iscsi_task *answered = NULL;
	pthread_mutex_lock(&s->lock);
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
			t->lost_at_login = atomic_load(&logins);
			if (counts && ++t->reissues > MAX_REISSUES) {
				log_error("%s: command 0x%02x on LUN %u failed %u connections; giving up",
					  s->name, t->cdb[0], t->lun, MAX_REISSUES);
				t->next = failed;
				failed = t;
				continue;
			}
			t->next = NULL;
			if (t->dir == TASK_DIR_WRITE && t->on_wire) {
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
			*ptail = s->pinned;    /* (empty: recover() takes them) */
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

/* Wait @ms, or less if the session is being closed.  Returns -1 when it is. */
static int recovery_wait(struct session *s, int64_t ms)
{
	struct timespec deadline = deadline_in_ms(ms);

	pthread_mutex_lock(&s->lock);
	while (s->state != SESSION_CLOSING &&
	       deadline_cond_wait(&s->state_cond, &s->lock, &deadline) != ETIMEDOUT)
		;
	int closing = s->state == SESSION_CLOSING;
	pthread_mutex_unlock(&s->lock);
	return closing ? -1 : 0;
}

/* After a login of @s: a permanent redirect (login_result.moved) sends the
 * later logins of this session straight to the portal it named; a
 * temporary one applies to that login only, so the next goes to the
 * portal of before.  Per session, since cfg is shared read-only: the other
 * sessions of the pool follow their own redirects.  RX thread, or
 * session_login() before it exists. */
/* Portals of cfg: at least the one of cfg->host. */
static unsigned portal_count(const struct session_config *cfg)
{
	return cfg->nportals ? cfg->nportals : 1;
}

/* Let the next logins go to entry @i (modulo their number) of cfg's
 * portals.  As take_portal(). */
static void use_portal(struct session *s, unsigned i)
{
	const struct session_config *cfg = s->cfg;

	s->portal_index = i % portal_count(cfg);
	if (cfg->nportals) {
		snprintf(s->portal_host, sizeof s->portal_host, "%s", cfg->portals[s->portal_index].host);
		s->portal_port = cfg->portals[s->portal_index].port;
	} else {
		snprintf(s->portal_host, sizeof s->portal_host, "%s", cfg->host);
		s->portal_port = cfg->port;
	}
}

static void take_portal(struct session *s, const struct login_result *lr)
{
	if (!lr->moved)
		return;
	char portal[PORTAL_TEXT_MAX];

	portal_format(portal, sizeof portal, lr->moved_host, lr->moved_port);
	log_debug("%s: target moved permanently to %s; later logins go there", s->name, portal);
	snprintf(s->portal_host, sizeof s->portal_host, "%s", lr->moved_host);
	s->portal_port = lr->moved_port;
}

/* Log in again with the same ISID (RFC 7143 session reinstatement) after
 * DefaultTime2Wait (or the Time2Wait of the Async Message that announced
 * the drop), then with capped exponential backoff and jitter
 * (RECONNECT_*_MS), until it works or the session is closed.  Returns 0
 * when the session is logged in again (TX thread running), verifying its
 * LUNs (session_verify_start()) before it takes the pool's commands, -1 when it
 * is being closed.  RX thread only; no TX thread runs meanwhile, so s->conn and
 * s->params are ours. */
static int recover(struct session *s)
{
	const struct session_config *cfg = s->cfg;
	int64_t start = mono_now_ns();
	unsigned seed = (unsigned)start ^ (s->index * 2654435761u);

	/* Under the lock: session_tick() and session_logout_and_free() shut
	 * s->conn down from other threads, and must never see the number of
	 * a descriptor that is being closed (and may be reused at once). */
	pthread_mutex_lock(&s->lock);
	conn_close(&s->conn);
	pthread_mutex_unlock(&s->lock);
	/* the target's word for this loss, else the negotiated default */
	unsigned time2wait_s = s->next_time2wait_s >= 0 ? (unsigned)s->next_time2wait_s :
		s->params.default_time2wait;
	s->next_time2wait_s = -1;
	for (unsigned attempt = 0;; attempt++) {
		int64_t delay;
		if (attempt == 0)
			delay = (int64_t)time2wait_s * 1000;
		else if (attempt < 3)
			delay = (int64_t)RECONNECT_FIRST_MS << (attempt - 1);
		else
			delay = RECONNECT_MAX_MS;
		if (delay > RECONNECT_TIME2WAIT_MAX_MS)
			delay = RECONNECT_TIME2WAIT_MAX_MS;
		delay += delay ? rand_r(&seed) % (delay / 4 + 1) : 0;
		if (recovery_wait(s, delay) < 0)
			return -1;
		pthread_mutex_lock(&s->lock);
		if (s->state == SESSION_CLOSING) {
			pthread_mutex_unlock(&s->lock);
			return -1;
		}
		session_set_state(s, SESSION_LOGGING_IN);
		pthread_mutex_unlock(&s->lock);

		struct conn c;
		struct login_result lr;
		uint8_t isid[6];
		memcpy(isid, cfg->isid_base, 6);
		isid[5] = (uint8_t)(isid[5] + s->index);
		if (login_connect(&c, s->portal_host, s->portal_port, cfg->connect_timeout_ms, 0,
				  &cfg->text, isid, 0, &lr) < 0) {
			log_warn("%s: reconnect attempt %u: %s", s->name, attempt + 1, err_msg());
			pthread_mutex_lock(&s->lock);
			bool closing = s->state == SESSION_CLOSING;
			if (!closing)
				session_set_state(s, SESSION_RECONNECT_WAIT);
			pthread_mutex_unlock(&s->lock);
			if (closing)
				return -1;
			/* the next attempt asks the target's next portal (where a
			 * permanent redirect sent us counts as the one in use) */
			use_portal(s, s->portal_index + 1);
			if (portal_count(cfg) > 1) {
				char portal[PORTAL_TEXT_MAX];

				portal_format(portal, sizeof portal, s->portal_host, s->portal_port);
				log_info("%s: trying portal %s next", s->name, portal);
			}
			continue;
		}
		take_portal(s, &lr);
		c.recv_timeout_ms = -1;
		conn_set_keepalive(&c, cfg->noop_interval_s, cfg->noop_timeout_s);
		pthread_mutex_lock(&s->lock);
		if (s->state == SESSION_CLOSING) {
			pthread_mutex_unlock(&s->lock);
			conn_close(&c);
			return -1;
		}
		s->conn = c;
		s->login_seq = atomic_fetch_add(&logins, 1) + 1;
		s->params = lr.params;
		s->tsih = lr.tsih;
		s->cmdsn = lr.cmdsn;
		s->exp_cmdsn = lr.exp_cmdsn;
		s->max_cmdsn = lr.max_cmdsn;
		s->exp_statsn = lr.exp_statsn;
		session_set_state(s, SESSION_VERIFYING);
		pthread_mutex_unlock(&s->lock);
		atomic_store_explicit(&s->last_rx_ns, mono_now_ns(), memory_order_relaxed);
		if (session_start_tx(s) < 0) {
			log_error("%s", err_msg());
			return -1;
		}
		atomic_fetch_add(&s->st_reconnects, 1);
		log_info("%s: reconnected to %s after %.1f s (%u attempts)", s->name,
			 s->conn.peer, (double)(mono_now_ns() - start) / 1e9, attempt + 1);
		/* the pinned writes and the pool's commands wait for the
		 * identity check (verify_finish()) */
		session_verify_start(s);
		return 0;
	}
}

static void *rx_main(void *arg)
{
	struct session *s = arg;
	/* our MaxRecvDataSegmentLength is fixed by configuration, so one
	 * scratch buffer serves every connection of the session */
	/* Data segments are checked against params.max_recv_dsl: what we
	 * declared, or the RFC default 8192 when the target skipped the
	 * operational stage; the larger of the two always fits. */
	uint32_t scratch_len = s->cfg->text.max_recv_dsl > 8192 ? s->cfg->text.max_recv_dsl : 8192;
	uint8_t *scratch = malloc(scratch_len + 4);
	struct rx_ctx x = { .s = s, .scratch = scratch };

	if (!scratch) {
		log_error("%s: out of memory", s->name);
		stop_session(s, SESSION_CLOSED, false);
		goto out;
	}
	for (;;) {
		int rc = rx_loop(s, &x);
		pthread_mutex_lock(&s->lock);
		bool closing = s->state == SESSION_CLOSING;
		/* then err_msg() is "... closed the connection" */
		bool dropped = s->state == SESSION_DROPPING;
		pthread_mutex_unlock(&s->lock);
		if (rc > 0 || closing) {
			if (rc < 0)
				log_debug("%s: connection ended during logout: %s", s->name, err_msg());
			stop_session(s, SESSION_CLOSED, false);
			break;
		}
		if (s->no_recover) {
			/* nowhere to reconnect to: the tasks fail */
			log_error("%s: %s", s->name, err_msg());
			stop_session(s, SESSION_CLOSED, false);
			break;
		}
		if (dropped)
			log_info("%s: connection dropped; reconnecting", s->name);
		else
			log_error("%s: %s; reconnecting", s->name, err_msg());
		if (stop_session(s, SESSION_RECONNECT_WAIT, true) == SESSION_CLOSED)
			break;          /* closed meanwhile */
		if (recover(s) < 0) {
			stop_session(s, SESSION_CLOSED, false);
			break;
		}
	}
out:
	/* (CLOSED: session_logout_and_free() joins this thread) */
	free(scratch);
	session_owner_kick(s);
	return NULL;
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
	if (s->state == SESSION_VERIFYING && s->verify_state != VERIFY_IDLE &&
	    s->verify_retry_ns && now >= s->verify_retry_ns)
		session_verify_send_locked(s);     /* after BUSY, NOT READY or a full window */
	if (!session_connected(s)) {
		/* Writes that waited the replacement timeout for this
		 * session: other sessions may have them now (or, when none
		 * is up either, the owner fails them). */
		struct iscsi_task *release = NULL;
		bool away = s->state == SESSION_RECONNECT_WAIT || s->state == SESSION_LOGGING_IN;
		if (away && s->pinned &&
		    now - s->down_since_ns > (int64_t)cfg->replacement_timeout_s * 1000000000) {
			release = s->pinned;
			s->pinned = NULL;
		}
		pthread_mutex_unlock(&s->lock);
		if (release) {
			log_warn("%s: not back after %u s; its writes may go on other sessions",
				 s->name, cfg->replacement_timeout_s);
			session_owner_requeue(s, release);
		}
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
	if (!why[0] && s->state == SESSION_DRAINING && now > s->logout_by_ns)
		snprintf(why, sizeof why, "%u commands still outstanding when the target wanted the logout",
			 s->outstanding);
	if (!why[0] && s->state == SESSION_LOGGING_OUT &&
	    now > s->logout_by_ns + (int64_t)(cfg->noop_timeout_s ? cfg->noop_timeout_s : 5) * 1000000000)
		snprintf(why, sizeof why, "no answer to the Logout the target asked for");
	if (why[0]) {
		/* With the lock held: the session is connected, so s->conn is
		 * the live connection (recover() closes and replaces it only
		 * under the lock, after the state left it).  The line first,
		 * so it comes before the RX thread's. */
		log_error("%s: %s; dropping the connection", s->name, why);
		session_drop_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- life cycle ---- */

/* Take the outcome @lr of the login on s->conn and start the threads:
 * the session moves from LOGGING_IN to @first (SESSION_FULL_FEATURE, or
 * SESSION_VERIFYING for session_attach_fd_verifying()).  Returns 0, or -1 with err_set();
 * the caller still owns s->conn then. */
static int session_start(struct session *s, const struct login_result *lr,
			 enum session_state first)
{
	const struct session_config *cfg = s->cfg;

	s->params = lr->params;
	s->tsih = lr->tsih;
	s->cmdsn = lr->cmdsn;
	s->exp_cmdsn = lr->exp_cmdsn;
	s->max_cmdsn = lr->max_cmdsn;
	s->exp_statsn = lr->exp_statsn;
	s->conn.recv_timeout_ms = -1;   /* the RX thread blocks; the watchdog pings */
	s->login_seq = atomic_fetch_add(&logins, 1) + 1;
	conn_set_keepalive(&s->conn, cfg->noop_interval_s, cfg->noop_timeout_s);
	s->nslots = cfg->queue_depth ? cfg->queue_depth : 1;
	if (s->nslots > MAX_SLOTS)
		s->nslots = MAX_SLOTS;
	s->slots = calloc(s->nslots, sizeof *s->slots);
	if (!s->slots) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->tx_cond, NULL);
	pthread_cond_init(&s->socket_cond, NULL);
	pthread_cond_init(&s->state_cond, NULL);
	pthread_mutex_lock(&s->lock);
	session_set_state(s, first);
	pthread_mutex_unlock(&s->lock);
	atomic_store(&s->last_rx_ns, mono_now_ns());
	if (session_start_tx(s) < 0)
		goto err_tx;
	if (pthread_create(&s->rx_thread, NULL, rx_main, s) != 0) {
		err_set(EAGAIN, "cannot start a thread");
		goto err_rx;
	}
	log_debug("%s: logged in to %s at %s, TSIH %u, MaxRecvDataSegmentLength %u/%u, "
		  "MaxBurstLength %u, FirstBurstLength %u, InitialR2T %s, ImmediateData %s, "
		  "MaxOutstandingR2T %u, digests %s/%s",
		  s->name, cfg->target_name, s->conn.peer, s->tsih, s->params.max_recv_dsl,
		  s->params.max_xmit_dsl, s->params.max_burst_length,
		  s->params.first_burst_length, s->params.initial_r2t ? "Yes" : "No",
		  s->params.immediate_data ? "Yes" : "No", s->params.max_outstanding_r2t,
		  s->params.header_digest ? "CRC32C" : "None",
		  s->params.data_digest ? "CRC32C" : "None");
	return 0;

err_rx:
	pthread_mutex_lock(&s->lock);
	session_set_state(s, SESSION_CLOSED);      /* the TX thread stops */
	pthread_cond_broadcast(&s->tx_cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->tx_thread, NULL);
err_tx:
	free(s->slots);
	s->slots = NULL;
	return -1;
}

struct session *session_login(const struct session_owner_ops *ops, void *owner,
			      const struct session_config *cfg, unsigned index)
{
	struct session *s = calloc(1, sizeof *s);
	struct login_result lr;
	uint8_t isid[6];

	if (!s) {
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	s->ops = ops;
	s->owner = owner;
	s->cfg = cfg;
	s->index = index;
	s->next_time2wait_s = -1;
	snprintf(s->name, sizeof s->name, "session %u", index);
	memcpy(isid, cfg->isid_base, 6);
	isid[5] = (uint8_t)(isid[5] + index);
	/* The sessions spread over the target's portals; one that cannot
	 * log in at its own tries the others.  At start-up a target that
	 * drops us during login is tried again within the connect timeout
	 * (login_connect()). */
	int rc = -1;
	for (unsigned k = 0; rc < 0 && k < portal_count(cfg); k++) {
		use_portal(s, index + k);
		rc = login_connect(&s->conn, s->portal_host, s->portal_port,
				   cfg->connect_timeout_ms, cfg->connect_timeout_ms, &cfg->text,
				   isid, 0, &lr);
		if (rc < 0 && k + 1 < portal_count(cfg)) {
			char portal[PORTAL_TEXT_MAX];

			portal_format(portal, sizeof portal, s->portal_host, s->portal_port);
			log_debug("%s: portal %s: %s; trying the next", s->name, portal, err_msg());
		}
	}
	if (rc < 0)
		goto err_connect;
	take_portal(s, &lr);
	if (session_start(s, &lr, SESSION_FULL_FEATURE) < 0)
		goto err_login;
	return s;

err_login:
	conn_close(&s->conn);
err_connect:
	free(s);
	return NULL;
}

/* session_attach_fd() that starts the session in state @first. */
static struct session *attach_fd(const struct session_owner_ops *ops, void *owner,
				 const struct session_config *cfg, unsigned index, int fd,
				 const struct login_result *lr, enum session_state first)
{
	struct session *s = calloc(1, sizeof *s);

	if (!s) {
		close(fd);
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	s->ops = ops;
	s->owner = owner;
	s->cfg = cfg;
	s->index = index;
	s->next_time2wait_s = -1;
	s->no_recover = true;
	snprintf(s->name, sizeof s->name, "session %u", index);
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

void session_logout_and_free(struct session *s, int timeout_ms)
{
	struct timespec deadline = deadline_in_ms(timeout_ms);

	pthread_mutex_lock(&s->lock);
	/* (DROPPING: the Logout stays queued; the TX thread sends nothing
	 * more on that connection) */
	bool was_up = session_connected(s) || s->state == SESSION_DROPPING;
	bool dropping = s->state == SESSION_DROPPING;
	if (s->state != SESSION_CLOSED && s->state != SESSION_CLOSING)
		session_set_state(s, SESSION_CLOSING);   /* wakes a recovery wait */
	if (was_up && !dropping) {
		struct tx_item *it = calloc(1, sizeof *it);
		if (it) {
			it->kind = TX_LOGOUT;
			session_queue_ctl_locked(s, it);
		}
	}
	while (s->state != SESSION_CLOSED) {
		if (deadline_cond_wait(&s->state_cond, &s->lock, &deadline) == ETIMEDOUT)
			break;
	}
	/* Logged out, failed, or no answer in time: end the connection
	 * (with the lock held, as in session_tick()).  A recovery in
	 * progress sees SESSION_CLOSING and gives up. */
	conn_shutdown(&s->conn);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->rx_thread, NULL);
	log_debug("%s: logged out", s->name);
	conn_close(&s->conn);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->tx_cond);
	pthread_cond_destroy(&s->socket_cond);
	pthread_cond_destroy(&s->state_cond);
	free(s->slots);
	free(s->verify_luns);
	free(s);
}
