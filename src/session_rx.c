/* session_rx.c: what a session receives (see session.h; the thread model
 * is at the top of session.c).
 *
 * The session's event loop receives through the conn's pdu_rx (pdu_rx.h):
 * when the socket is readable, one recv() without waiting brings what the
 * socket has, and every PDU in it is handled before the next recv().  For
 * each PDU, rx_place() sees the header first and says where the data
 * segment goes (a Data-In's straight into its task's buffer, once the
 * header is found to fit it), then rx_handle() acts on the whole PDU.
 * The owner is kicked once per recv() that made room, not once per PDU.
 */
#include "session_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "log.h"
#include "scsi.h"

/* recv() calls one readable event gets at most, so that the loop's other
 * sessions and the FUSE device get their turn (the socket, still
 * readable, is reported again). */
#define RECVS_PER_WAKEUP 16

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
	/* Data-In answers reads.  A write's status comes in a SCSI Response,
	 * checked against the data the target asked for (rx_scsi_rsp()); a
	 * status-only Data-In saying GOOD would skip that check.  A command
	 * without data may have its status so, harmlessly. */
	if (t->dir == TASK_DIR_WRITE || (t->dir != TASK_DIR_READ && len))
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
	/* Only the loop takes tasks out of the table, so t stays valid while we read. */
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

static int rx_r2t(struct session *s, const union iscsi_bhs *bhs, bool *kick)
{
	const struct iscsi_bhs_r2t *h = &bhs->r2t;
	uint32_t offset = get_be32(h->buffer_offset);
	uint32_t length = get_be32(h->desired_len);
	uint32_t r2tsn = get_be32(h->r2tsn);

	/* (one with a data segment was refused by rx_place()) */
	struct tx_item *it = calloc(1, sizeof *it);
	if (!it) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	/* (commands that wait for the window go once it opens: not only
	 * after the next response, which may be seconds away) */
	*kick = session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
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
	/* R2TSNs count from 0 per command without a gap (RFC 7143 11.8.5):
	 * another says an R2T was lost or repeated, which only a new
	 * connection recovers at ErrorRecoveryLevel 0 (7.9) */
	if (r2tsn != t->exp_r2tsn) {
		uint32_t want = t->exp_r2tsn, itt = t->itt;

		pthread_mutex_unlock(&s->lock);
		free(it);
		VIOLATION(s, "protocol error: R2T R2TSN %u, expected %u (ITT 0x%x)", r2tsn, want,
			  itt);
	}
	t->exp_r2tsn++;
	it->kind = TX_DATA_OUT;
	it->task = t;
	it->ttt = get_be32(h->ttt);
	it->offset = offset;
	it->length = length;
	t->tx_refs++;
	t->r2t_outstanding++;   /* until its last Data-Out goes (send_data_out) */
	/* what it asked for so far, from offset 0 on (offsets never go back:
	 * DataSequenceInOrder=Yes): a range asked again adds nothing */
	if (offset <= t->data_out_asked && offset + length > t->data_out_asked)
		t->data_out_asked = offset + length;
	session_queue_ctl_locked(s, it);
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add_explicit(&s->st_r2ts, 1, memory_order_relaxed);
	return 0;
}

/* Our keepalive (ITT_PING) got its answer: a NOP-In, or a Reject of it.
 * (Still queued: the target echoed an ITT early.)  Lock held. */
static void ping_answered_locked(struct session *s)
{
	if (s->ping_state == PING_SENT)
		s->ping_state = PING_IDLE;
	else if (s->ping_state == PING_QUEUED)
		s->ping_state = PING_ANSWERED_EARLY;
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
	if (pdu_itt(bhs) == ITT_PING)
		ping_answered_locked(s);
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

/* Lines about a session's Asynchronous Message events: one a second at
 * most, so that a target sending them without end cannot fill the log. */
#define ASYNC_LOG_LINES 1
#define ASYNC_LOG_WINDOW_S 1

/* The target asked for a logout within @within seconds: FULL_FEATURE (or
 * VERIFYING: the check ends unfinished and is done again after the next
 * login) -> DRAINING, and the Logout goes once nothing is outstanding.
 * Returns whether that is news (a repeat changes nothing), with the
 * commands outstanding in *@outstanding.  The loop, no lock held. */
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
	session_logout_if_drained_locked(s);
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
		if (log_budget_take(&s->async_log, ASYNC_LOG_LINES, ASYNC_LOG_WINDOW_S, &unlogged))
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
		if (log_budget_take(&s->async_log, ASYNC_LOG_LINES, ASYNC_LOG_WINDOW_S, &unlogged))
			log_info("%s: ignoring asynchronous event %u (%u more since the last line)",
				 s->name, h->event, unlogged);
		return 0;
	}
}

/* Lines about rejected NOP-Outs: one a minute. */
#define NOP_REJECT_LOG_LINES 1
#define NOP_REJECT_LOG_WINDOW_S 60

/* A Reject of one of our NOP-Outs (@itt: ITT_PING, our keepalive, or the
 * reserved tag, an answer to the target's ping): nothing of a command is
 * lost, so the connection stays, and the keepalive counts as answered
 * (the target spoke), as Linux's initiator takes it.  StatSN advances
 * after a Reject (RFC 7143 11.17). */
static int rx_nop_rejected(struct session *s, const union iscsi_bhs *bhs, uint32_t itt)
{
	unsigned unlogged;

	pthread_mutex_lock(&s->lock);
	if (itt == ITT_PING)
		ping_answered_locked(s);
	session_update_statsn(s, get_be32(bhs->reject.statsn));
	session_update_window(s, get_be32(bhs->reject.exp_cmdsn), get_be32(bhs->reject.max_cmdsn));
	pthread_mutex_unlock(&s->lock);
	/* (protocol error, invalid field: said louder, ours may be at fault) */
	enum log_level level = bhs->reject.reason == 0x04 || bhs->reject.reason == 0x09 ?
		LOG_LEVEL_WARN : LOG_LEVEL_INFO;
	if (log_budget_take(&s->nop_reject_log, NOP_REJECT_LOG_LINES, NOP_REJECT_LOG_WINDOW_S,
			    &unlogged))
		log_msg(level, "%s: target rejected a NOP-Out %s (reason 0x%02x; %u more since the "
			"last line); the connection stays", s->name,
			itt == ITT_PING ? "keepalive" : "answer to its ping", bhs->reject.reason,
			unlogged);
	return 0;
}

static int rx_reject(struct session *s, const union iscsi_bhs *bhs, uint8_t *scratch)
{
	uint32_t len = pdu_data_len(bhs);

	if (len >= ISCSI_BHS_SIZE && (scratch[0] & ISCSI_OPCODE_MASK) == ISCSI_OP_NOP_OUT) {
		uint32_t itt = get_be32(scratch + 16);

		if (itt == ITT_PING || itt == ISCSI_RESERVED_TAG)
			return rx_nop_rejected(s, bhs, itt);
	}
	/* The rejected header is only reported, never used to find a task: at
	 * error recovery level 0 the connection is dropped and every task on
	 * it fails together. */
	err_set(EPROTO, "target rejected a %s (reason 0x%02x)",
		len >= ISCSI_BHS_SIZE ? pdu_opcode_name(scratch[0]) : "PDU",
		bhs->reject.reason);
	return -1;
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
		session_set_state(s, SESSION_DROPPING);  /* the loop then reconnects
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
		rc = rx_r2t(s, bhs, &kick);
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
		kick = rc == 0; /* a NOP-Out's: its MaxCmdSN may have opened the window */
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

void session_rx_setup(struct session *s)
{
	s->rx.s = s;
	s->rx.data_in = NULL;
	s->rx.kick_due = false;
	conn_rx_setup(&s->conn, rx_place, &s->rx, s->params.max_recv_dsl);
}

/* session_rx_ready() with a receive buffer in place. */
static int rx_ready(struct session *s)
{
	struct rx_ctx *x = &s->rx;

	for (unsigned n = 0;; n++) {
		int rc;
		while ((rc = conn_rx_next(&s->conn)) == PDU_RX_COMPLETE) {
			rc = rx_handle(x);
			if (rc != 0) {
				rx_kick(x);
				return rc;
			}
		}
		rx_kick(x);
		if (rc < 0)
			return -1;
		if (n == RECVS_PER_WAKEUP)
			return 0;       /* (still readable: the loop comes back) */
		rc = conn_rx_try(&s->conn);
		if (rc <= 0)
			return rc;      /* 0: nothing more now */
	}
}

int session_rx_ready(struct session *s)
{
	struct pdu_rx *rx = &s->conn.rx;
	uint8_t *lent = NULL;
	size_t cap;

	/* The loop's buffer, once the one the login left holds nothing: a
	 * session's socket needs a buffer only while it is read.  Without a
	 * loan (a receive inside a receive) conn_rx_try() gives the conn one
	 * of its own. */
	if (pdu_rx_drop_buffer(rx) && (lent = evloop_recv_buffer_borrow(&cap)) != NULL)
		pdu_rx_lend(rx, lent, cap);
	int rc = rx_ready(s);
	if (lent) {
		if (pdu_rx_unlend(rx, CONN_RX_BUFFER) < 0)
			rc = -1;
		evloop_recv_buffer_return();
	}
	return rc;
}
