/* session_tmf.c: task management of a session (cmd_timeout; see
 * session.h, and the thread model at the top of session.c).
 *
 * A command unanswered for cmd_timeout seconds is aborted (ABORT TASK);
 * an abort refused or unanswered, or a write's answered "task does not
 * exist", becomes a LOGICAL UNIT RESET; a reset
 * refused or unanswered drops the connection, which is then recovered.
 * One function at a time per session: the sub-machine of enum tmf_state
 * (session_internal.h), changed only by tmf_set_state() under s->lock,
 * with a debug line per move; which function is out is s->tmf_function.
 * What the target aborted is taken out of the session and handed to the
 * owner (ops->requeue) to be sent again, on any session.
 * Each function has an ITT of its own (ITT_TMF_FIRST on, see
 * session_internal.h): an answer that comes after its function ended (an
 * ABORT TASK answered only once the LU reset that followed it went) is
 * told from the answer awaited, and ignored with a log line.  A request
 * still unsent when the next function starts is dropped from the queue.
 *
 * A LOGICAL UNIT RESET ends the commands of every I_T nexus on that LUN
 * (SAM-5 6.3.3), so those of the pool's other sessions too: with TAS=1
 * each gets TASK ABORTED status (lun.c sends it again), with TAS=0 none
 * ever gets an answer.  Which of them the reset caught, no session can
 * tell: there is no order between connections.  So each other session with
 * commands on that LUN sends ABORT TASK SET of its own: on the session
 * that sends it, the rules are plain (RFC 7143 4.2.3.3): it ends every
 * command before it in CmdSN order (the target waits for those still on
 * their way) and none after, and the statuses of those already done come
 * before its answer.  The session that reset the LUN tells its owner
 * (ops->lun_reset), which calls session_lun_reset_elsewhere() on the
 * others.
 *
 * Thread model: the answer is handled on the session's loop, the deadlines on
 * its tick (session_tick(), on the same loop), TMF_QUEUED -> TMF_SENT on the
 * thread that sends the request; all under s->lock.
 */
#include "session_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "deadline.h"
#include "log.h"
#include "wire.h"

/* What a Task Management Function Response says (RFC 7143 §11.6.1). */
static const char *tmf_response_text(uint8_t response)
{
	switch (response) {
	case 0: return "function complete";
	case 1: return "task does not exist";
	case 2: return "LUN does not exist";
	case 3: return "task still allegiant";
	case 4: return "task allegiance reassignment not supported";
	case 5: return "task management function not supported";
	case 6: return "function authorization failed";
	case 255: return "function rejected";
	default: return "unknown response";
	}
}

/* The name of a function (ISCSI_TMF_*), for log lines. */
static const char *tmf_name(uint8_t function)
{
	switch (function) {
	case ISCSI_TMF_ABORT_TASK: return "ABORT TASK";
	case ISCSI_TMF_LUN_RESET: return "LOGICAL UNIT RESET";
	case ISCSI_TMF_ABORT_TASK_SET: return "ABORT TASK SET";
	default: return "no task management";
	}
}

/* ---- the sub-machine (enum tmf_state) ---- */

const char *session_tmf_state_name(enum tmf_state state)
{
	switch (state) {
	case TMF_IDLE: return "idle";
	case TMF_QUEUED: return "queued";
	case TMF_SENT: return "sent";
	}
	return "invalid";
}

/* The moves tmf_set_state() allows, by the state moved from (bit of the
 * state moved to). */
static const unsigned tmf_moves[] = {
	[TMF_IDLE] = 1u << TMF_QUEUED,
	[TMF_QUEUED] = 1u << TMF_QUEUED | 1u << TMF_SENT | 1u << TMF_IDLE,
	[TMF_SENT] = 1u << TMF_QUEUED | 1u << TMF_IDLE,
};

bool session_tmf_transition_legal(enum tmf_state from, enum tmf_state to)
{
	return session_fsm_legal(tmf_moves, sizeof tmf_moves / sizeof tmf_moves[0], from, to);
}

/* The only place s->tmf_state changes.  An illegal move logs and aborts
 * (with NDEBUG: logs and moves), as session_set_state().  Lock held. */
static void tmf_set_state(struct session *s, enum tmf_state to)
{
	enum tmf_state from = s->tmf_state;

	session_fsm_check(s->name, "task management", session_tmf_transition_legal(from, to),
			  session_tmf_state_name(from), session_tmf_state_name(to));
	s->tmf_state = to;
	log_debug("%s: task management %s -> %s (%s, ITT 0x%x, LUN %u)", s->name,
		  session_tmf_state_name(from), session_tmf_state_name(to),
		  tmf_name(s->tmf_function), s->tmf_itt, s->tmf_lun);
}

void session_tmf_sent_locked(struct session *s, uint32_t cmdsn)
{
	if (s->tmf_state != TMF_QUEUED)
		return;
	s->tmf_cmdsn = cmdsn;
	tmf_set_state(s, TMF_SENT);
}

void session_tmf_reset_locked(struct session *s)
{
	if (s->tmf_state != TMF_IDLE)
		tmf_set_state(s, TMF_IDLE);
	s->abort_set_due = false;
}

/* Take out of the control queue a TMF request still unsent: the function
 * it was for ended (timed out) before it went.  At most one is ever
 * queued, so the target cannot make them pile up by not reading.  Lock
 * held. */
static void drop_unsent_tmf_locked(struct session *s)
{
	for (struct tx_item **pp = &s->ctl_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
		struct tx_item *it = *pp;
		if (it->kind != TX_TMF)
			continue;
		*pp = it->next;
		if (s->ctl_tail == it)
			s->ctl_tail = prev;
		log_debug("%s: task management ITT 0x%x dropped unsent", s->name, it->itt);
		free(it);
		return;
	}
}

/* Queue a TMF request of @function (ISCSI_TMF_*), with an ITT of its own:
 * TMF_QUEUED.  Lock held.  Returns 0, or -1 on ENOMEM (the caller drops
 * the connection instead). */
static int start_tmf(struct session *s, uint8_t function, uint32_t lun, uint32_t ref_itt,
		     uint32_t ref_cmdsn)
{
	struct tx_item *it = calloc(1, sizeof *it);

	if (!it)
		return -1;
	drop_unsent_tmf_locked(s);
	it->kind = TX_TMF;
	it->function = function;
	it->itt = ITT_TMF_FIRST + s->tmf_count++ % ITT_TMF_COUNT;
	it->lun_wire = pdu_lun_encode(lun);
	it->ref_itt = ref_itt;
	it->ref_cmdsn = ref_cmdsn;
	s->tmf_function = function;
	s->tmf_itt = it->itt;
	s->tmf_lun = lun;
	s->tmf_sent_ns = mono_now_ns();
	tmf_set_state(s, TMF_QUEUED);
	atomic_fetch_add(function == ISCSI_TMF_ABORT_TASK ? &s->st_aborts :
			 function == ISCSI_TMF_ABORT_TASK_SET ? &s->st_abort_sets :
			 &s->st_lu_resets, 1);
	session_queue_ctl_locked(s, it);
	return 0;
}

/* Whether @itt is the ITT of a function this session started (one of
 * ITT_TMF_FIRST + 0 .. tmf_count - 1, modulo ITT_TMF_COUNT).  Lock held. */
static bool tmf_itt_used(const struct session *s, uint32_t itt)
{
	if (itt - ITT_TMF_FIRST >= ITT_TMF_COUNT)
		return false;
	return s->tmf_count >= ITT_TMF_COUNT || itt - ITT_TMF_FIRST < s->tmf_count;
}

/* Whether a command on @lun has gone to the target and is unanswered.
 * Lock held. */
static bool sent_task_on(const struct session *s, uint32_t lun)
{
	for (unsigned i = 0; i < s->nslots; i++) {
		const struct iscsi_task *t = s->slots[i];
		if (t && t->lun == lun && t->on_wire && !t->finished)
			return true;
	}
	return false;
}

/* The ABORT TASK SET another session's reset asked for (abort_set_due),
 * once no other function is out, if commands on that LUN are still on
 * the wire.  Lock held. */
static void start_due_abort_set_locked(struct session *s)
{
	if (!s->abort_set_due || s->tmf_state != TMF_IDLE)
		return;
	s->abort_set_due = false;
	if (!sent_task_on(s, s->abort_set_lun))
		return;
	if (start_tmf(s, ISCSI_TMF_ABORT_TASK_SET, s->abort_set_lun, 0, 0) < 0)
		log_warn("%s: out of memory for an ABORT TASK SET of LUN %u; its commands wait for cmd_timeout",
			 s->name, s->abort_set_lun);
	else
		log_info("%s: LUN %u was reset from another session; aborting the task set here",
			 s->name, s->abort_set_lun);
}

void session_lun_reset_elsewhere(struct session *s, uint32_t lun)
{
	pthread_mutex_lock(&s->lock);
	/* (logged in, also while draining for a logout: its commands on that
	 * LUN may have ended too) */
	bool up = s->state == SESSION_FULL_FEATURE || s->state == SESSION_DRAINING ||
		s->state == SESSION_LOGGING_OUT;
	if (up && s->abort_set_due && s->abort_set_lun != lun) {
		log_info("%s: LUN %u was reset from another session while an ABORT TASK SET of LUN %u waits here; its commands wait for cmd_timeout",
			 s->name, lun, s->abort_set_lun);
	} else if (up) {
		s->abort_set_due = true;       /* now, or after the function out */
		s->abort_set_lun = lun;
		start_due_abort_set_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
}

/* The target aborted @t: take it out of the session (table, command
 * queue, Data-Out still queued for it) and onto *@again to be sent anew,
 * or, while a sender still sends its data (or a PDU of it waits for room
 * in the socket: s->tx_hold), mark it to be sent anew when that ends.
 * The loop, lock held. */
static void abort_locally(struct session *s, struct iscsi_task *t, struct iscsi_task **again)
{
	for (struct iscsi_task **pp = &s->cmd_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			if (s->cmd_tail == t)
				s->cmd_tail = prev;
			t->tx_refs--;
			break;
		}
	for (struct tx_item **pp = &s->ctl_head, *prev = NULL; *pp;) {
		struct tx_item *it = *pp;
		if (it->kind == TX_DATA_OUT && it->task == t) {
			*pp = it->next;
			if (s->ctl_tail == it)
				s->ctl_tail = prev;
			t->tx_refs--;
			free(it);
			continue;
		}
		prev = it;
		pp = &it->next;
	}
	t->reissue_when_released = true;
	if (session_finish_task(s, t)) {
		t->next = *again;
		*again = t;
	}
}

/* Send every task of @list (linked by ->next) again.  No lock held. */
static void reissue_list(struct session *s, struct iscsi_task *list)
{
	while (list) {
		struct iscsi_task *t = list;
		list = t->next;
		session_reissue(s, t);
	}
}

/* ---- the answer (the loop) ---- */

int session_rx_tmf_rsp(struct session *s, const union iscsi_bhs *bhs)
{
	const struct iscsi_bhs_tmf_rsp *h = &bhs->tmf_rsp;
	struct iscsi_task *again = NULL;
	unsigned n = 0;

	/* (its data segment, if any, was dropped by the receiver) */
	pthread_mutex_lock(&s->lock);
	uint8_t function = s->tmf_function;
	uint32_t itt = pdu_itt(bhs);
	bool current = s->tmf_state != TMF_IDLE && itt == s->tmf_itt;
	if (!current && tmf_itt_used(s, itt)) {
		/* An answer to a function that ended (it timed out and the
		 * next one went, or it was answered already): what it did is
		 * covered by what came after it.  Its StatSN counts. */
		session_update_statsn(s, get_be32(h->statsn));
		session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
		pthread_mutex_unlock(&s->lock);
		/* (a target may send them without end: one line a second) */
		unsigned unlogged = 0;
		if (log_budget_take(&s->late_tmf_log, 1, 1, &unlogged))
			log_info("%s: late Task Management Response (ITT 0x%x, \"%s\") to a request that ended; ignored (%u more since the last line)",
				 s->name, itt, tmf_response_text(h->response), unlogged);
		return 0;
	}
	if (!current || s->tmf_state != TMF_SENT) {
		/* (not sent yet: queued behind other PDUs, the answer guessed) */
		pthread_mutex_unlock(&s->lock);
		VIOLATION(s, "protocol error: unexpected Task Management Response (ITT 0x%x)", itt);
	}
	session_update_statsn(s, get_be32(h->statsn));
	session_update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	tmf_set_state(s, TMF_IDLE);
	uint32_t lun = s->tmf_lun, ref_itt = s->tmf_ref_itt;
	uint8_t opcode = s->tmf_opcode, response = h->response;

	struct iscsi_task *ref = function == ISCSI_TMF_ABORT_TASK ? session_find_task(s, ref_itt) : NULL;
	/* "does not exist" for a write whose status never came, and whose
	 * data all went: it may be the target's lookup that failed, not the
	 * write (RFC 7143 11.5.1 has it answer "function complete" for a task
	 * that never arrived within the window).  Sent again, a copy it still
	 * carries out could land after a newer write of the same blocks: an
	 * LU reset, below, ends it for sure.  A read goes again, and so does
	 * a write whose data has not all gone: no target carries that out. */
	bool write_unended = response == 1 && ref && ref->dir == TASK_DIR_WRITE &&
		ref->tx_refs == 0 && ref->data_out_asked >= ref->xfer_len;
	if (function == ISCSI_TMF_ABORT_TASK && (response == 0 || response == 1) && !write_unended) {
		/* "does not exist": it never arrived, or its status did
		 * (then it is no longer in the table) */
		if (ref)
			abort_locally(s, ref, &again);
		start_due_abort_set_locked(s);
		pthread_mutex_unlock(&s->lock);
		if (ref)
			log_info("%s: command 0x%02x (ITT 0x%x) on LUN %u aborted (%s); sending it again",
				 s->name, opcode, ref_itt, lun, tmf_response_text(response));
		else
			log_info("%s: command ITT 0x%x was answered before its abort", s->name,
				 ref_itt);
		reissue_list(s, again);
		return 0;
	}
	if (function == ISCSI_TMF_ABORT_TASK) {
		int rc = start_tmf(s, ISCSI_TMF_LUN_RESET, lun, 0, 0);
		pthread_mutex_unlock(&s->lock);
		if (rc < 0) {
			err_set(ENOMEM, "out of memory for a LOGICAL UNIT RESET");
			return -1;
		}
		log_warn("%s: target answered ABORT TASK of ITT 0x%x with \"%s\"; resetting LUN %u",
			 s->name, ref_itt, tmf_response_text(response), lun);
		return 0;
	}
	if (response != 0 && function == ISCSI_TMF_ABORT_TASK_SET) {
		/* not worth a new connection: cmd_timeout finds them */
		start_due_abort_set_locked(s);
		pthread_mutex_unlock(&s->lock);
		log_warn("%s: target answered ABORT TASK SET of LUN %u with \"%s\"; its commands here wait for cmd_timeout",
			 s->name, lun, tmf_response_text(response));
		return 0;
	}
	if (response != 0) {
		pthread_mutex_unlock(&s->lock);
		err_set(EIO, "target answered LOGICAL UNIT RESET of LUN %u with \"%s\"", lun,
			tmf_response_text(response));
		return -1;
	}
	/* It ended this session's commands on the LUN that came before it
	 * in CmdSN order (the target waited for any still on their way),
	 * not those after; the statuses of those already done came first. */
	uint32_t fence = s->tmf_cmdsn;
	for (unsigned i = 0; i < s->nslots; i++) {
		struct iscsi_task *t = s->slots[i];
		if (t && t->lun == lun && !t->finished && sn_lt(t->cmdsn, fence)) {
			abort_locally(s, t, &again);
			n++;
		}
	}
	start_due_abort_set_locked(s);
	pthread_mutex_unlock(&s->lock);
	if (function == ISCSI_TMF_ABORT_TASK_SET) {
		log_warn("%s: ABORT TASK SET of LUN %u ended %u commands; sending them again",
			 s->name, lun, n);
	} else {
		log_warn("%s: LUN %u reset; %u commands sent again", s->name, lun, n);
		/* it ended the other sessions' commands there too */
		if (s->ops && s->ops->lun_reset)
			s->ops->lun_reset(s->owner, s, lun);
	}
	reissue_list(s, again);
	return 0;
}

/* ---- the deadlines (session_tick()) ---- */

void session_tmf_tick_locked(struct session *s, int64_t now, char *why, size_t why_len)
{
	const struct session_config *cfg = s->cfg;

	if (!cfg->cmd_timeout_s)
		return;
	/* ABORT TASK, then LOGICAL UNIT RESET, then drop the connection:
	 * each step waits cmd_timeout for its answer */
	int64_t limit = (int64_t)cfg->cmd_timeout_s * 1000000000;
	if (s->tmf_state == TMF_IDLE) {
		for (unsigned i = 0; i < s->nslots; i++) {
			struct iscsi_task *t = s->slots[i];
			if (!t || t->finished || now - t->sent_ns <= limit)
				continue;
			atomic_fetch_add(&s->st_timeouts, 1);
			s->tmf_ref_itt = t->itt;
			s->tmf_opcode = t->cdb[0];
			if (start_tmf(s, ISCSI_TMF_ABORT_TASK, t->lun, t->itt, t->cmdsn) < 0)
				snprintf(why, why_len, "out of memory for an ABORT TASK");
			else
				log_warn("%s: command 0x%02x (ITT 0x%x) unanswered for %u s on LUN %u; aborting it",
					 s->name, t->cdb[0], t->itt, cfg->cmd_timeout_s, t->lun);
			break;
		}
	} else if (now - s->tmf_sent_ns > limit && s->tmf_function == ISCSI_TMF_ABORT_TASK) {
		log_warn("%s: no answer to ABORT TASK of ITT 0x%x within %u s; resetting LUN %u",
			 s->name, s->tmf_ref_itt, cfg->cmd_timeout_s, s->tmf_lun);
		if (start_tmf(s, ISCSI_TMF_LUN_RESET, s->tmf_lun, 0, 0) < 0)
			snprintf(why, why_len, "out of memory for a LOGICAL UNIT RESET");
	} else if (now - s->tmf_sent_ns > limit) {
		snprintf(why, why_len, "no answer to %s of LUN %u within %u s",
			 tmf_name(s->tmf_function), s->tmf_lun, cfg->cmd_timeout_s);
	}
}
