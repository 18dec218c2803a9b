/* session_tx.c: submitting commands to a session and writing its socket
 * (see session.h; the thread model is at the top of session.c).
 *
 * A submitter puts a task in the table under the session lock, which
 * assigns its ITT and CmdSN, and either queues it for the session's loop
 * or, on a loop while nobody writes, keeps it to send itself once it
 * holds no lock (session_send_pending()).  Whoever holds the socket
 * (s->tx_busy) sends the control queue first (Data-Out answering R2Ts,
 * NOP-Out, Logout, TMF), then the commands, each with the immediate and
 * unsolicited data negotiated, and sends what others queue meanwhile
 * before it lets go.  Each TX item holds a reference on its task
 * (tx_refs); the last one dropped after the status came completes it.
 *
 * The socket never blocks.  When it is full, the PDU under way stays half
 * sent in the conn (conn_send_pdu(): CONN_SEND_PARTIAL) with a reference
 * on the task whose data it points to (s->tx_hold), the rest of a burst
 * goes back to the head of the control queue, and s->tx_blocked stops
 * every sender until the loop, woken by EPOLLOUT, has sent that PDU
 * (session_tx_resume()); then it sends the queues.  So a target that
 * stops reading holds no thread: the keepalive drops it in time.
 *
 * The state decides: session_submit() takes commands in FULL_FEATURE only
 * (EAGAIN while DRAINING or LOGGING_OUT for a logout the target asked
 * for, EIO otherwise); a sender sends while session_tx_may_run() and
 * sends nothing in DROPPING; a failed send moves a connected session to
 * DROPPING (send_failed()).  The sender of a TMF request moves task
 * management from TMF_QUEUED to TMF_SENT (session_tmf_sent_locked()), the
 * sender of the keepalive its ping_state.  All under s->lock.
 */
#include "session_internal.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "deadline.h"
#include "iov.h"
#include "log.h"

/* ---- submission ---- */

/* A command this thread took the socket for in session_submit() and is to
 * send in session_send_pending(), once it holds no lock. */
static _Thread_local struct {
	struct session *session;      /* whose socket; its tx_busy is ours */
	struct iscsi_task *task;      /* the command, in the table, not queued */
} pending;

/* Put @t in the table and the command queue (or keep it for an inline
 * send).  Lock held; the caller checked the state.  Returns 0, or -1 with
 * errno EAGAIN (window or depth full). */
int session_submit_locked(struct session *s, struct iscsi_task *t)
{
	/* (a logout the target asked for: the task waits in the pool for
	 * another session, or for this one to be back) */
	if (s->state == SESSION_DRAINING || s->state == SESSION_LOGGING_OUT ||
	    s->outstanding >= s->nslots || sn_lt(s->max_cmdsn, s->cmdsn)) {
		/* a window that stays closed while commands wait: session_tick() */
		if (sn_lt(s->max_cmdsn, s->cmdsn) && !s->window_wait_since_ns &&
		    (s->state == SESSION_FULL_FEATURE || s->state == SESSION_VERIFYING))
			s->window_wait_since_ns = mono_now_ns();
		errno = EAGAIN;
		return -1;
	}
	unsigned slot = s->next_slot;
	while (s->slots[slot])
		slot = (slot + 1) % s->nslots;
	s->next_slot = (slot + 1) % s->nslots;
	s->itt_generation = (s->itt_generation + 1) & 0xfffff;
	if (s->itt_generation == 0xfffff)   /* keep clear of the reserved tags */
		s->itt_generation = 0;
	t->itt = s->itt_generation << SLOT_BITS | slot;
	t->cmdsn = s->cmdsn++;
	t->session = s;
	t->exp_datasn = 0;
	t->exp_r2tsn = 0;
	t->r2t_outstanding = 0;
	t->data_out_asked = 0;
	t->tx_refs = 1;                   /* the command queue's reference */
	t->finished = false;
	t->reissue_when_released = false;
	t->on_wire = false;
	t->result = 0;
	t->response = 0;
	t->status = 0;
	t->sense_len = 0;
	t->residual = 0;
	t->underflow = t->overflow = false;
	t->data_in_bytes = 0;
	t->sent_ns = mono_now_ns();
	t->next = NULL;
	s->slots[slot] = t;
	s->outstanding++;
	atomic_fetch_add_explicit(&s->load_bytes, t->xfer_len ? t->xfer_len : 1,
				  memory_order_relaxed);
	if (evloop_current() && t != &s->vtask && !pending.task && !s->tx_busy &&
	    !s->tx_blocked && !s->cmd_head && !s->ctl_head) {
		/* nothing waits to be sent: the loop that submits sends it
		 * itself (session_send_pending()), sparing a wakeup of the
		 * session's loop */
		s->tx_busy = true;
		t->on_wire = true;
		pending.session = s;
		pending.task = t;
	} else {
		if (s->cmd_tail)
			s->cmd_tail->next = t;
		else
			s->cmd_head = t;
		s->cmd_tail = t;
		session_tx_kick_locked(s);
	}
	return 0;
}

int session_submit(struct session *s, struct iscsi_task *t)
{
	pthread_mutex_lock(&s->lock);
	if (s->state != SESSION_FULL_FEATURE && s->state != SESSION_DRAINING &&
	    s->state != SESSION_LOGGING_OUT) {
		pthread_mutex_unlock(&s->lock);
		errno = EIO;   /* (DRAINING, LOGGING_OUT: EAGAIN below) */
		return -1;
	}
	int rc = session_submit_locked(s, t);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- sending ---- */

#define SLICE_MAX 32
/* PDUs a loop sends of what was queued while it sent its own command to
 * another loop's session. */
#define INLINE_DRAIN_MAX 8

/* What a send step returns besides 0 (all of it went) and -1 (failed):
 * the socket is full (s->tx_blocked set by socket_full_locked()). */
#define SENT_PART CONN_SEND_PARTIAL

/* The socket is full: nobody sends until the loop has sent the rest of
 * the PDU in the conn, which holds @t's data (or none: NULL).  Lock held,
 * the caller holds the socket. */
static void socket_full_locked(struct session *s, struct iscsi_task *t)
{
	s->tx_blocked = true;
	if (t) {
		t->tx_refs++;
		s->tx_hold = t;
	}
	/* (not watched yet: session_attach_loop() reads tx_blocked) */
	session_watch_locked(s);
}

uint32_t session_sock_events(const struct session *s)
{
	return EPOLLIN | (s->tx_blocked ? EPOLLOUT : 0);
}

void session_watch_locked(struct session *s)
{
	if (s->src.fd >= 0)
		evloop_watch(s->loop, &s->src, session_sock_events(s));
}

/* conn_send_pdu() for the sender: SENT_PART marks the socket full with
 * @t's data held. */
static int send_pdu(struct session *s, struct iscsi_task *t, union iscsi_bhs *bhs,
		    const struct iovec *iov, int iovcnt, uint32_t len, bool more)
{
	int rc = conn_send_pdu(&s->conn, bhs, iov, iovcnt, len, more);

	if (rc == SENT_PART) {
		pthread_mutex_lock(&s->lock);
		socket_full_locked(s, len ? t : NULL);
		pthread_mutex_unlock(&s->lock);
	}
	return rc;
}

/* Send the Data-Out PDUs of @it (a TX_DATA_OUT item: [offset,
 * offset+length) of its task's payload), each at most the target's
 * MaxRecvDataSegmentLength, DataSN counting on from it->datasn, F on the
 * last; it->ttt is the R2T's tag or 0xffffffff for unsolicited data.
 * Returns 0 when all went, SENT_PART when the socket filled (@it then
 * says what is left: it->length 0 when nothing is), or -1. */
static int send_data_out(struct session *s, struct tx_item *it, bool more)
{
	struct iscsi_task *t = it->task;
	uint32_t max = s->params.max_xmit_dsl;

	while (it->length > 0) {
		uint32_t len = it->length < max ? it->length : max;
		struct iovec v[SLICE_MAX];
		int n = iov_slice(t->write_iov, t->write_iovcnt, it->offset, len, v, SLICE_MAX);
		if (n < 0) {
			err_set(EINVAL, "%s: write payload of ITT 0x%x too fragmented",
				s->name, t->itt);
			return -1;
		}
		union iscsi_bhs bhs;
		pdu_init(&bhs, ISCSI_OP_DATA_OUT, false);
		if (len == it->length)
			bhs.data_out.flags = ISCSI_FLAG_FINAL;
		put_be64(bhs.data_out.lun, pdu_lun_encode(t->lun));
		put_be32(bhs.data_out.itt, t->itt);
		put_be32(bhs.data_out.ttt, it->ttt);
		pthread_mutex_lock(&s->lock);
		put_be32(bhs.data_out.exp_statsn, s->exp_statsn);
		/* An R2T is outstanding until its last Data-Out (RFC 7143
		 * 13.17).  Counted down before that PDU goes, so the R2T the
		 * target sends in answer never finds the count still up. */
		if (len == it->length && it->ttt != ISCSI_RESERVED_TAG && t->r2t_outstanding)
			t->r2t_outstanding--;
		pthread_mutex_unlock(&s->lock);
		put_be32(bhs.data_out.datasn, it->datasn);
		put_be32(bhs.data_out.buffer_offset, it->offset);
		int rc = send_pdu(s, t, &bhs, v, n, len, more || len < it->length);
		if (rc < 0)
			return -1;
		it->datasn++;
		it->offset += len;
		it->length -= len;
		atomic_fetch_add_explicit(&s->st_data_out, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->st_written, len, memory_order_relaxed);
		if (rc == SENT_PART)
			return SENT_PART;
	}
	return 0;
}

/* Put @it, a burst the full socket cut, back at the head of the control
 * queue: it goes on first once the socket takes more.  Lock held. */
static void requeue_first_locked(struct session *s, struct tx_item *it)
{
	it->next = s->ctl_head;
	s->ctl_head = it;
	if (!s->ctl_tail)
		s->ctl_tail = it;
}

/* Send a SCSI Command with its immediate data and unsolicited Data-Out, as
 * negotiated: immediate data up to FirstBurstLength and the target's
 * MaxRecvDataSegmentLength when ImmediateData=Yes; Data-Out up to
 * FirstBurstLength when InitialR2T=No; the rest waits for R2Ts.  Returns
 * 0, SENT_PART (unsolicited data left waits at the head of the control
 * queue) or -1. */
static int send_command(struct session *s, struct iscsi_task *t, bool more)
{
	const struct iscsi_params *p = &s->params;
	union iscsi_bhs bhs;
	uint32_t immediate = 0, unsolicited = 0;

	pdu_init(&bhs, ISCSI_OP_SCSI_CMD, false);
	bhs.scsi_cmd.flags = ISCSI_FLAG_FINAL | ISCSI_CMD_ATTR_SIMPLE;
	if (t->dir == TASK_DIR_READ)
		bhs.scsi_cmd.flags |= ISCSI_CMD_READ;
	if (t->dir == TASK_DIR_WRITE) {
		bhs.scsi_cmd.flags |= ISCSI_CMD_WRITE;
		uint32_t first = t->xfer_len < p->first_burst_length ?
			t->xfer_len : p->first_burst_length;
		if (p->immediate_data)
			immediate = first < p->max_xmit_dsl ? first : p->max_xmit_dsl;
		if (!p->initial_r2t)
			unsolicited = first - immediate;
		if (unsolicited)
			bhs.scsi_cmd.flags &= (uint8_t)~ISCSI_FLAG_FINAL;
	}
	put_be64(bhs.scsi_cmd.lun, pdu_lun_encode(t->lun));
	put_be32(bhs.scsi_cmd.itt, t->itt);
	put_be32(bhs.scsi_cmd.exp_xfer_len, t->xfer_len);
	put_be32(bhs.scsi_cmd.cmdsn, t->cmdsn);
	struct tx_item *rest = NULL;
	if (unsolicited) {
		rest = calloc(1, sizeof *rest);
		if (!rest) {
			err_set(ENOMEM, "%s: out of memory", s->name);
			return -1;
		}
		rest->kind = TX_DATA_OUT;
		rest->task = t;
		rest->ttt = ISCSI_RESERVED_TAG;
		rest->offset = immediate;
		rest->length = unsolicited;
	}
	pthread_mutex_lock(&s->lock);
	put_be32(bhs.scsi_cmd.exp_statsn, s->exp_statsn);
	/* before it is on the wire: the status may come at once */
	t->data_out_asked = immediate + unsolicited;
	if (rest)
		t->tx_refs++;           /* the unsolicited burst's */
	pthread_mutex_unlock(&s->lock);
	memcpy(bhs.scsi_cmd.cdb, t->cdb, 16);

	struct iovec v[SLICE_MAX];
	int n = 0;
	if (immediate) {
		n = iov_slice(t->write_iov, t->write_iovcnt, 0, immediate, v, SLICE_MAX);
		if (n < 0) {
			err_set(EINVAL, "%s: write payload too fragmented", s->name);
			n = -1;
		} else {
			atomic_fetch_add_explicit(&s->st_written, immediate, memory_order_relaxed);
		}
	}
	int rc = n < 0 ? -1 : send_pdu(s, t, &bhs, v, n, immediate, more || unsolicited);
	if (rc >= 0)
		atomic_fetch_add_explicit(&s->st_commands, 1, memory_order_relaxed);
	if (rc == 0 && rest)
		rc = send_data_out(s, rest, more);
	if (!rest)
		return rc;
	pthread_mutex_lock(&s->lock);
	if (rc == SENT_PART && rest->length) {
		requeue_first_locked(s, rest);      /* keeps its reference */
		rest = NULL;
	} else {
		t->tx_refs--;   /* (the command's own reference is still held) */
	}
	pthread_mutex_unlock(&s->lock);
	free(rest);
	return rc;
}

/* CmdSN and ExpStatSN are at the same place in every immediate PDU we
 * send: send_immediate() fills them in through the NOP-Out's names. */
_Static_assert(offsetof(struct iscsi_bhs_logout_req, cmdsn) ==
	       offsetof(struct iscsi_bhs_nop_out, cmdsn), "CmdSN offset");
_Static_assert(offsetof(struct iscsi_bhs_tmf_req, cmdsn) ==
	       offsetof(struct iscsi_bhs_nop_out, cmdsn), "CmdSN offset");
_Static_assert(offsetof(struct iscsi_bhs_logout_req, exp_statsn) ==
	       offsetof(struct iscsi_bhs_nop_out, exp_statsn), "ExpStatSN offset");
_Static_assert(offsetof(struct iscsi_bhs_tmf_req, exp_statsn) ==
	       offsetof(struct iscsi_bhs_nop_out, exp_statsn), "ExpStatSN offset");

/* Send @bhs, an immediate PDU without data (NOP-Out, Logout, TMF), with
 * the current CmdSN (not advanced: RFC 7143 3.2.2.1) and ExpStatSN. */
static int send_immediate(struct session *s, union iscsi_bhs *bhs)
{
	pthread_mutex_lock(&s->lock);
	put_be32(bhs->nop_out.cmdsn, s->cmdsn);
	put_be32(bhs->nop_out.exp_statsn, s->exp_statsn);
	if (pdu_opcode(bhs) == ISCSI_OP_TMF_REQ && pdu_itt(bhs) == s->tmf_itt) {
		/* before it is on the wire: the answer may come at once (not
		 * for a request whose function ended while it was queued:
		 * that answer is ignored, and the next one has its own) */
		session_tmf_sent_locked(s, s->cmdsn);
	}
	pthread_mutex_unlock(&s->lock);
	return send_pdu(s, NULL, bhs, NULL, 0, 0, false);
}

/* The answer to a NOP-In that asked for one (its TTT and LUN echoed). */
static int send_nop_out(struct session *s, uint32_t ttt, uint64_t lun_wire)
{
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_NOP_OUT, true);
	bhs.nop_out.flags = ISCSI_FLAG_FINAL;
	put_be64(bhs.nop_out.lun, lun_wire);
	put_be32(bhs.nop_out.itt, ISCSI_RESERVED_TAG);
	put_be32(bhs.nop_out.ttt, ttt);
	return send_immediate(s, &bhs);
}

/* A keepalive: a NOP-Out with our own ITT, answered by a NOP-In. */
static int send_ping(struct session *s)
{
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_NOP_OUT, true);
	bhs.nop_out.flags = ISCSI_FLAG_FINAL;
	put_be32(bhs.nop_out.itt, ITT_PING);
	put_be32(bhs.nop_out.ttt, ISCSI_RESERVED_TAG);
	return send_immediate(s, &bhs);
}

static int send_logout(struct session *s)
{
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_LOGOUT_REQ, true);
	bhs.logout_req.flags = ISCSI_FLAG_FINAL | ISCSI_LOGOUT_CLOSE_SESSION;
	put_be32(bhs.logout_req.itt, ITT_LOGOUT);
	return send_immediate(s, &bhs);
}

/* A Task Management Function Request, immediate (it must pass commands
 * stuck in the window): ABORT TASK of it->ref_itt, ABORT TASK SET or
 * LOGICAL UNIT RESET. */
static int send_tmf(struct session *s, const struct tx_item *it)
{
	union iscsi_bhs bhs;
	bool abort_task = it->function == ISCSI_TMF_ABORT_TASK;

	pdu_init(&bhs, ISCSI_OP_TMF_REQ, true);
	bhs.tmf_req.flags = ISCSI_FLAG_FINAL | it->function;
	put_be64(bhs.tmf_req.lun, it->lun_wire);
	put_be32(bhs.tmf_req.itt, it->itt);
	put_be32(bhs.tmf_req.ref_itt, abort_task ? it->ref_itt : ISCSI_RESERVED_TAG);
	put_be32(bhs.tmf_req.ref_cmdsn, abort_task ? it->ref_cmdsn : 0);
	return send_immediate(s, &bhs);
}

/* Drop one TX reference of @t; completes it if its status already came. */
static void tx_release(struct session *s, struct iscsi_task *t)
{
	pthread_mutex_lock(&s->lock);
	bool due = --t->tx_refs == 0 && t->finished;
	pthread_mutex_unlock(&s->lock);
	if (due)
		session_task_end(s, t);
}

/* A send failed (err_msg() says why): log it and shut the connection
 * down; the loop then sees the connection end, and the line it logs is
 * only the echo (SESSION_DROPPING).  During our own logout (CLOSING) the
 * connection ends anyway: a debug line, as the loop's.  The sender holds
 * the socket (tx_busy). */
static void send_failed(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	bool closing = s->state == SESSION_CLOSING;
	if (closing)
		log_debug("%s: during logout: %s", s->name, err_msg());
	else
		log_error("%s: %s", s->name, err_msg());
	if (session_connected(s))
		session_drop_locked(s);
	else
		conn_shutdown(&s->conn);
	pthread_mutex_unlock(&s->lock);
}

/* Send the next queued PDU: the control queue first, then the commands.
 * Lock held on entry and on return, dropped while sending; the caller
 * holds the socket (tx_busy) and saw a queue that is not empty.  Returns
 * 0, SENT_PART (the socket is full: stop) or -1. */
static int send_next_queued(struct session *s)
{
	int rc = 0;

	if (s->ctl_head) {
		struct tx_item *it = s->ctl_head;
		s->ctl_head = it->next;
		if (!s->ctl_head)
			s->ctl_tail = NULL;
		if (it->kind == TX_NOP_OUT)
			s->nop_answers--;
		else if (it->kind == TX_PING && s->ping_state == PING_QUEUED)
			s->ping_state = PING_SENT;
		else if (it->kind == TX_PING && s->ping_state == PING_ANSWERED_EARLY)
			s->ping_state = PING_IDLE;
		bool more = s->ctl_head || s->cmd_head;
		pthread_mutex_unlock(&s->lock);
		switch (it->kind) {
		case TX_DATA_OUT:
			rc = send_data_out(s, it, more);
			if (rc == SENT_PART && it->length) {
				pthread_mutex_lock(&s->lock);
				requeue_first_locked(s, it);   /* with its reference */
				return rc;
			}
			tx_release(s, it->task);
			break;
		case TX_NOP_OUT:
			rc = send_nop_out(s, it->ttt, it->lun_wire);
			break;
		case TX_PING:
			rc = send_ping(s);
			break;
		case TX_LOGOUT:
			rc = send_logout(s);
			break;
		case TX_TMF:
			rc = send_tmf(s, it);
			break;
		}
		free(it);
	} else {
		struct iscsi_task *t = s->cmd_head;
		s->cmd_head = t->next;
		if (!s->cmd_head)
			s->cmd_tail = NULL;
		t->on_wire = true;
		bool more = s->ctl_head || s->cmd_head;
		pthread_mutex_unlock(&s->lock);
		rc = send_command(s, t, more);
		tx_release(s, t);
	}
	pthread_mutex_lock(&s->lock);
	return rc;
}

/* Whether a queue holds something to send.  Lock held. */
static bool tx_queued(const struct session *s)
{
	return s->ctl_head || s->cmd_head;
}

/* Whether the holder of the socket is to send on: something is queued,
 * the socket takes it, and the connection is not being dropped.  Lock
 * held. */
static bool tx_more(const struct session *s)
{
	return tx_queued(s) && !s->tx_blocked && s->state != SESSION_DROPPING &&
		session_tx_may_run(s);
}

/* Let go of the socket.  What was queued meanwhile and not sent goes to
 * the loop, which nobody posted to while the socket was taken
 * (session_tx_kick_locked()); session_stop() may wait for the socket.
 * Lock held. */
static void tx_release_socket(struct session *s)
{
	s->tx_busy = false;
	session_tx_kick_locked(s);
	pthread_cond_broadcast(&s->socket_cond);
}

void session_tx_kick_locked(struct session *s)
{
	if (!s->tx_busy && !s->tx_blocked && tx_queued(s) && s->state != SESSION_DROPPING &&
	    session_tx_may_run(s))
		evloop_post(s->loop, &s->tx_call);
}

/* Send what is queued while tx_more(), at most @max PDUs (0: no limit);
 * a failed send fails the connection.  Lock held, the caller holds the
 * socket. */
static void send_queued(struct session *s, unsigned max)
{
	int rc = 0;

	for (unsigned n = 0; rc >= 0 && (!max || n < max) && tx_more(s); n++)
		rc = send_next_queued(s);
	if (rc < 0) {
		pthread_mutex_unlock(&s->lock);
		send_failed(s);
		pthread_mutex_lock(&s->lock);
	}
}

void session_send_pending(void)
{
	struct session *s = pending.session;
	struct iscsi_task *t = pending.task;

	if (!t)
		return;
	pending.session = NULL;
	pending.task = NULL;
	pthread_mutex_lock(&s->lock);
	bool more = tx_queued(s);
	pthread_mutex_unlock(&s->lock);
	int rc = send_command(s, t, more);
	/* the reference is dropped with the socket, in one step: once
	 * session_stop() sees the socket free, the task is no longer ours */
	pthread_mutex_lock(&s->lock);
	bool due = --t->tx_refs == 0 && t->finished;
	if (rc < 0) {
		pthread_mutex_unlock(&s->lock);
		send_failed(s);
		pthread_mutex_lock(&s->lock);
	} else {
		/* What others queued while we sent goes now, on this thread,
		 * which is running anyway: posting it to the session's loop
		 * would cost more than sending it.  A few PDUs at most on
		 * another loop's session, so that this loop is soon back to
		 * its own; the rest is the session's loop's. */
		send_queued(s, evloop_current() == s->loop ? 0 : INLINE_DRAIN_MAX);
	}
	tx_release_socket(s);
	pthread_mutex_unlock(&s->lock);
	if (due)
		session_task_end(s, t);
}

void session_tx_run(struct ev_call *call)
{
	struct session *s = (struct session *)((char *)call - offsetof(struct session, tx_call));

	pthread_mutex_lock(&s->lock);
	if (!s->tx_busy && tx_more(s)) {
		s->tx_busy = true;
		send_queued(s, 0);
		tx_release_socket(s);
	}
	pthread_mutex_unlock(&s->lock);
}

void session_tx_resume(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	if (!s->tx_blocked || s->tx_busy) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->tx_busy = true;
	pthread_mutex_unlock(&s->lock);
	int rc = conn_send_rest(&s->conn);
	pthread_mutex_lock(&s->lock);
	struct iscsi_task *ended = NULL;
	if (rc != SENT_PART) {
		s->tx_blocked = false;
		struct iscsi_task *t = s->tx_hold;
		s->tx_hold = NULL;
		if (t && --t->tx_refs == 0 && t->finished)
			ended = t;
		session_watch_locked(s);
		if (rc < 0) {
			pthread_mutex_unlock(&s->lock);
			send_failed(s);
			pthread_mutex_lock(&s->lock);
		} else {
			send_queued(s, 0);
		}
	}
	tx_release_socket(s);
	pthread_mutex_unlock(&s->lock);
	if (ended)
		session_task_end(s, ended);
}

struct iscsi_task *session_tx_forget_locked(struct session *s)
{
	struct iscsi_task *t = s->tx_hold;

	conn_send_forget(&s->conn);
	s->tx_blocked = false;
	s->tx_hold = NULL;
	return t && --t->tx_refs == 0 && t->finished ? t : NULL;
}

int session_queue_ctl_locked(struct session *s, struct tx_item *it)
{
	it->next = NULL;
	if (s->ctl_tail)
		s->ctl_tail->next = it;
	else
		s->ctl_head = it;
	s->ctl_tail = it;
	/* (whoever holds the socket sends it before letting go) */
	session_tx_kick_locked(s);
	return 0;
}
