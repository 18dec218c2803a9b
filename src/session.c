/* session.c: one iSCSI session in full feature phase (see session.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * Each session has two threads of its own:
 *  - the TX thread writes the socket.  It sends, in order, the control
 *    queue (Data-Out answering R2Ts, NOP-Out answering NOP-In, Logout) and
 *    then the command queue (SCSI Commands with their immediate and
 *    unsolicited data).  The RX thread never writes, so it never blocks on
 *    a full socket send buffer, and a target that stops reading while it
 *    sends cannot deadlock us.
 *  - a FUSE worker (session_inline_sends()) that submits a command while
 *    both queues are empty and nobody writes sends that command itself
 *    (session_send_pending(), after the pool lock is dropped): one thread
 *    wakeup less per command, which is most of the cost of small I/O.
 *    s->tx_busy is the token: whoever holds it alone writes the socket,
 *    and sends what others queue meanwhile before it lets go (a worker a
 *    few PDUs, then it wakes the TX thread for the rest), so nobody wakes
 *    the TX thread while the socket is taken.
 *  - the RX thread is the only reader.  It validates every PDU, places
 *    Data-In straight into the task's buffer, queues Data-Out for R2Ts and
 *    completes tasks, calling task->done() with no lock held.
 * Submitters (FUSE workers, or the RX thread of any session through
 * pool_kick) call session_submit(), which assigns ITT and CmdSN under the
 * session lock and appends to the command queue, so CmdSN order is wire
 * order.
 *
 * One mutex per session, s->lock, protects the task table, the sequence
 * numbers, both queues and the state.  It is never held across a system
 * call on the socket.  Lock order: pool -> session.
 *
 * A task's memory belongs to its owner, and done() may free it.  The TX
 * thread may still be writing a task's data when its status arrives (a
 * target may answer early, e.g. with CHECK CONDITION), so every TX item
 * holds a reference (tx_refs) and done() waits for the last one.
 *
 * When the connection is lost the RX thread stops the TX thread, takes
 * every task out of the table and hands it back to the pool to be sent
 * again, except writes that were on the wire: those wait in s->pinned
 * until this session has logged in again (stop_session() says why), and
 * then go back to the pool too.  The RX thread alone replaces s->conn,
 * under the lock, while no TX thread runs; other threads shut it down only
 * with the lock held and the session up (or verifying).
 *
 * A session that logged in again does not take the pool's commands at
 * once: it is SESSION_VERIFYING (session_is_up() false, so the pool does
 * not dispatch to it) while it checks with commands of its own (s->vtask,
 * one at a time, never in the pool) that every LUN registered with the
 * pool is the one probed: VPD 0x80 and/or 0x83 as at the probe, READ
 * CAPACITY.  Each answer's callback (RX thread, or TX) sends the next; a
 * LUN found to be another is marked replaced in the pool (its commands
 * fail with EIO from then on).  Then the session is UP, its pinned writes
 * go back to the pool and the pool is kicked.  Nothing waits for a lock
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

#include "iov.h"
#include "log.h"
#include "login.h"
#include "pool.h"
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
	return atomic_load_explicit(&s->state_hint, memory_order_relaxed) == SESSION_UP;
}

enum session_state session_state_hint(const struct session *s)
{
	return (enum session_state)atomic_load_explicit(&s->state_hint, memory_order_relaxed);
}

/* Set the state (lock held) and its lock-free copy. */
void session_set_state(struct session *s, enum session_state state)
{
	s->state = state;
	atomic_store_explicit(&s->state_hint, state, memory_order_relaxed);
}

int64_t session_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
	out->verifications = atomic_load(&s->st_verifications);
	out->luns_replaced = atomic_load(&s->st_replaced);
}

/* ---- sequence numbers (lock held) ---- */

/* Take ExpCmdSN/MaxCmdSN from a target PDU; RFC 7143 §4.2.2.1: ignore a
 * MaxCmdSN below ExpCmdSN - 1 and values that go backwards. */
static void update_window(struct session *s, uint32_t exp_cmdsn, uint32_t max_cmdsn)
{
	if (sn_lt(max_cmdsn, exp_cmdsn - 1))
		return;
	if (sn_lt(s->exp_cmdsn, exp_cmdsn))
		s->exp_cmdsn = exp_cmdsn;
	if (sn_lt(s->max_cmdsn, max_cmdsn))
		s->max_cmdsn = max_cmdsn;
}

static void update_statsn(struct session *s, uint32_t statsn)
{
	if (sn_le(s->exp_statsn, statsn))
		s->exp_statsn = statsn + 1;
}

/* ---- task table (lock held) ---- */

static int slot_of(uint32_t itt)
{
	return (int)(itt & (MAX_SLOTS - 1));
}

static struct iscsi_task *find_task(struct session *s, uint32_t itt)
{
	unsigned slot = (unsigned)slot_of(itt);
	if (itt == ISCSI_RESERVED_TAG || slot >= s->nslots)
		return NULL;
	struct iscsi_task *t = s->slots[slot];
	return t && t->itt == itt ? t : NULL;
}

static void logout_if_drained(struct session *s);

/* Take a task out of the table; returns whether done() is due now. */
static bool finish_task(struct session *s, struct iscsi_task *t)
{
	s->slots[slot_of(t->itt)] = NULL;
	s->outstanding--;
	logout_if_drained(s);
	atomic_fetch_sub_explicit(&s->load_bytes, t->xfer_len ? t->xfer_len : 1,
				  memory_order_relaxed);
	t->finished = true;
	return t->tx_refs == 0;
}

/* ---- submission ---- */

/* Whether this thread may send its own commands (session_inline_sends()). */
static _Thread_local bool inline_ok;

/* A command this thread took the socket for in session_submit() and is to
 * send in session_send_pending(), once it holds no lock. */
static _Thread_local struct {
	struct session *session;      /* whose socket; its tx_busy is ours */
	struct iscsi_task *task;      /* the command, in the table, not queued */
} pending;

void session_inline_sends(bool allowed)
{
	inline_ok = allowed;
}

/* Put @t in the table and the command queue (or keep it for an inline
 * send).  Lock held; the caller checked the state.  Returns 0, or -1 with
 * errno EAGAIN (window or depth full). */
int session_submit_locked(struct session *s, struct iscsi_task *t)
{
	/* (a logout the target asked for: the task waits in the pool for
	 * another session, or for this one to be back) */
	if (s->logout_asked || s->outstanding >= s->nslots || sn_lt(s->max_cmdsn, s->cmdsn)) {
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
	t->r2t_outstanding = 0;
	t->tx_refs = 1;                   /* the command queue's reference */
	t->finished = false;
	t->reissue_when_released = false;
	t->on_wire = false;
	t->result = 0;
	t->status = 0;
	t->sense_len = 0;
	t->residual = 0;
	t->underflow = t->overflow = false;
	t->data_in_bytes = 0;
	t->sent_ns = session_now_ns();
	t->next = NULL;
	s->slots[slot] = t;
	s->outstanding++;
	atomic_fetch_add_explicit(&s->load_bytes, t->xfer_len ? t->xfer_len : 1,
				  memory_order_relaxed);
	if (inline_ok && t != &s->vtask && !pending.task && !s->tx_busy && !s->dropped &&
	    !s->cmd_head && !s->ctl_head) {
		/* nothing waits to be sent: the caller sends it itself
		 * (session_send_pending()), sparing the TX thread's wakeup */
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
		/* whoever holds the socket sends it before letting go */
		if (!s->tx_busy)
			pthread_cond_signal(&s->tx_cond);
	}
	return 0;
}

int session_submit(struct session *s, struct iscsi_task *t)
{
	pthread_mutex_lock(&s->lock);
	if (s->state != SESSION_UP) {
		pthread_mutex_unlock(&s->lock);
		errno = EIO;
		return -1;
	}
	int rc = session_submit_locked(s, t);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- TX thread ---- */

#define SLICE_MAX 32
/* PDUs a FUSE worker sends of what was queued while it sent its own. */
#define INLINE_DRAIN_MAX 8

/* Send Data-Out PDUs covering [offset, offset+length) of @t's payload,
 * each at most the target's MaxRecvDataSegmentLength, DataSN from 0, F on
 * the last.  @ttt is the R2T's tag or 0xffffffff for unsolicited data. */
static int send_data_out(struct session *s, struct iscsi_task *t, uint32_t ttt,
			 uint32_t offset, uint32_t length, bool more)
{
	uint32_t datasn = 0;
	uint32_t max = s->params.max_xmit_dsl;

	while (length > 0) {
		uint32_t len = length < max ? length : max;
		struct iovec v[SLICE_MAX];
		int n = iov_slice(t->write_iov, t->write_iovcnt, offset, len, v, SLICE_MAX);
		if (n < 0) {
			err_set(EINVAL, "%s: write payload of ITT 0x%x too fragmented",
				s->name, t->itt);
			return -1;
		}
		union iscsi_bhs bhs;
		pdu_init(&bhs, ISCSI_OP_DATA_OUT, false);
		if (len == length)
			bhs.data_out.flags = ISCSI_FLAG_FINAL;
		put_be64(bhs.data_out.lun, pdu_lun_encode(t->lun));
		put_be32(bhs.data_out.itt, t->itt);
		put_be32(bhs.data_out.ttt, ttt);
		pthread_mutex_lock(&s->lock);
		put_be32(bhs.data_out.exp_statsn, s->exp_statsn);
		/* An R2T is outstanding until its last Data-Out (RFC 7143
		 * 13.17).  Counted down before that PDU goes, so the R2T the
		 * target sends in answer never finds the count still up. */
		if (len == length && ttt != ISCSI_RESERVED_TAG && t->r2t_outstanding)
			t->r2t_outstanding--;
		pthread_mutex_unlock(&s->lock);
		put_be32(bhs.data_out.datasn, datasn++);
		put_be32(bhs.data_out.buffer_offset, offset);
		if (conn_send_pdu(&s->conn, &bhs, v, n, len, more || len < length) < 0)
			return -1;
		atomic_fetch_add_explicit(&s->st_data_out, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&s->st_written, len, memory_order_relaxed);
		offset += len;
		length -= len;
	}
	return 0;
}

/* Send a SCSI Command with its immediate data and unsolicited Data-Out, as
 * negotiated: immediate data up to FirstBurstLength and the target's
 * MaxRecvDataSegmentLength when ImmediateData=Yes; Data-Out up to
 * FirstBurstLength when InitialR2T=No; the rest waits for R2Ts. */
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
	pthread_mutex_lock(&s->lock);
	put_be32(bhs.scsi_cmd.exp_statsn, s->exp_statsn);
	pthread_mutex_unlock(&s->lock);
	memcpy(bhs.scsi_cmd.cdb, t->cdb, 16);

	struct iovec v[SLICE_MAX];
	int n = 0;
	if (immediate) {
		n = iov_slice(t->write_iov, t->write_iovcnt, 0, immediate, v, SLICE_MAX);
		if (n < 0) {
			err_set(EINVAL, "%s: write payload too fragmented", s->name);
			return -1;
		}
		atomic_fetch_add_explicit(&s->st_written, immediate, memory_order_relaxed);
	}
	if (conn_send_pdu(&s->conn, &bhs, v, n, immediate, more || unsolicited) < 0)
		return -1;
	atomic_fetch_add_explicit(&s->st_commands, 1, memory_order_relaxed);
	if (unsolicited)
		return send_data_out(s, t, ISCSI_RESERVED_TAG, immediate, unsolicited, more);
	return 0;
}

static int send_nop_out(struct session *s, uint32_t ttt, uint64_t lun_wire)
{
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_NOP_OUT, true);
	bhs.nop_out.flags = ISCSI_FLAG_FINAL;
	put_be64(bhs.nop_out.lun, lun_wire);
	put_be32(bhs.nop_out.itt, ISCSI_RESERVED_TAG);
	put_be32(bhs.nop_out.ttt, ttt);
	pthread_mutex_lock(&s->lock);
	put_be32(bhs.nop_out.cmdsn, s->cmdsn);
	put_be32(bhs.nop_out.exp_statsn, s->exp_statsn);
	pthread_mutex_unlock(&s->lock);
	return conn_send_pdu(&s->conn, &bhs, NULL, 0, 0, false);
}

/* A keepalive: a NOP-Out with our own ITT, answered by a NOP-In. */
static int send_ping(struct session *s)
{
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_NOP_OUT, true);
	bhs.nop_out.flags = ISCSI_FLAG_FINAL;
	put_be32(bhs.nop_out.itt, ITT_PING);
	put_be32(bhs.nop_out.ttt, ISCSI_RESERVED_TAG);
	pthread_mutex_lock(&s->lock);
	put_be32(bhs.nop_out.cmdsn, s->cmdsn);
	put_be32(bhs.nop_out.exp_statsn, s->exp_statsn);
	pthread_mutex_unlock(&s->lock);
	return conn_send_pdu(&s->conn, &bhs, NULL, 0, 0, false);
}

static int send_logout(struct session *s)
{
	union iscsi_bhs bhs;

	pdu_init(&bhs, ISCSI_OP_LOGOUT_REQ, true);
	bhs.logout_req.flags = ISCSI_FLAG_FINAL | ISCSI_LOGOUT_CLOSE_SESSION;
	put_be32(bhs.logout_req.itt, ITT_LOGOUT);
	pthread_mutex_lock(&s->lock);
	put_be32(bhs.logout_req.cmdsn, s->cmdsn);
	put_be32(bhs.logout_req.exp_statsn, s->exp_statsn);
	pthread_mutex_unlock(&s->lock);
	return conn_send_pdu(&s->conn, &bhs, NULL, 0, 0, false);
}

/* A Task Management Function Request, immediate (it must pass commands
 * stuck in the window): ABORT TASK of it->ref_itt, or LOGICAL UNIT RESET. */
static int send_tmf(struct session *s, const struct tx_item *it)
{
	union iscsi_bhs bhs;
	bool abort_task = it->function == ISCSI_TMF_ABORT_TASK;

	pdu_init(&bhs, ISCSI_OP_TMF_REQ, true);
	bhs.tmf_req.flags = ISCSI_FLAG_FINAL | it->function;
	put_be64(bhs.tmf_req.lun, it->lun_wire);
	put_be32(bhs.tmf_req.itt, ITT_TMF);
	put_be32(bhs.tmf_req.ref_itt, abort_task ? it->ref_itt : ISCSI_RESERVED_TAG);
	put_be32(bhs.tmf_req.ref_cmdsn, abort_task ? it->ref_cmdsn : 0);
	pthread_mutex_lock(&s->lock);
	put_be32(bhs.tmf_req.cmdsn, s->cmdsn);
	put_be32(bhs.tmf_req.exp_statsn, s->exp_statsn);
	pthread_mutex_unlock(&s->lock);
	return conn_send_pdu(&s->conn, &bhs, NULL, 0, 0, false);
}

/* Send @t again (on any session of the pool) after the target aborted
 * it, or fail it with EIO when it has cost too much already or there is
 * no pool.  No lock held. */
static void reissue(struct session *s, struct iscsi_task *t)
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
	if (!s->pool || ++t->reissues > MAX_REISSUES) {
		log_error("%s: command 0x%02x on LUN %u aborted %u times; giving up", s->name,
			  t->cdb[0], t->lun, t->reissues);
		t->result = EIO;
		t->done(t);
		return;
	}
	pool_requeue(s->pool, t);
}

/* A task whose status came (or that was aborted) and that no TX item
 * points at any more: done(), or, aborted, sent again.  No lock held. */
static void task_end(struct session *s, struct iscsi_task *t)
{
	if (t->reissue_when_released)
		reissue(s, t);
	else
		t->done(t);
}

/* Drop one TX reference of @t; completes it if its status already came. */
static void tx_release(struct session *s, struct iscsi_task *t)
{
	pthread_mutex_lock(&s->lock);
	bool due = --t->tx_refs == 0 && t->finished;
	pthread_mutex_unlock(&s->lock);
	if (due)
		task_end(s, t);
}

/* A send failed (err_msg() says why): log it and shut the connection
 * down; the RX thread then fails the session, and the line it logs is
 * only the echo (s->dropped).  The sender holds the socket (tx_busy). */
static void send_failed(struct session *s)
{
	log_error("%s: %s", s->name, err_msg());
	pthread_mutex_lock(&s->lock);
	s->dropped = true;
	pthread_mutex_unlock(&s->lock);
	conn_shutdown(&s->conn);
}

/* Send the next queued PDU: the control queue first, then the commands.
 * Lock held on entry and on return, dropped while sending; the caller
 * holds the socket (tx_busy) and saw a queue that is not empty. */
static int send_next_queued(struct session *s)
{
	int rc = 0;

	if (s->ctl_head) {
		struct tx_item *it = s->ctl_head;
		s->ctl_head = it->next;
		if (!s->ctl_head)
			s->ctl_tail = NULL;
		bool more = s->ctl_head || s->cmd_head;
		pthread_mutex_unlock(&s->lock);
		switch (it->kind) {
		case TX_DATA_OUT:
			rc = send_data_out(s, it->task, it->ttt, it->offset, it->length, more);
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

/* Let go of the socket.  What was queued meanwhile goes to the TX thread,
 * which nobody woke while the socket was taken (session_submit_locked(),
 * queue_ctl()); stop_session() may wait for the socket.  Lock held. */
static void tx_release_socket(struct session *s)
{
	s->tx_busy = false;
	if (tx_queued(s) && !s->dropped)
		pthread_cond_signal(&s->tx_cond);
	pthread_cond_broadcast(&s->socket_cond);
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
	 * stop_session() sees the socket free, the task is no longer ours */
	pthread_mutex_lock(&s->lock);
	bool due = --t->tx_refs == 0 && t->finished;
	/* What other submitters queued while we sent goes now, on this
	 * thread, which is running anyway: waking the TX thread for it would
	 * cost more than sending it.  A few PDUs at most, so that a worker
	 * is soon back to serve FUSE; the rest is the TX thread's. */
	for (unsigned n = 0; rc == 0 && n < INLINE_DRAIN_MAX && tx_queued(s) && !s->dropped; n++)
		rc = send_next_queued(s);
	if (rc < 0) {
		pthread_mutex_unlock(&s->lock);
		send_failed(s);
		pthread_mutex_lock(&s->lock);
	}
	tx_release_socket(s);
	pthread_mutex_unlock(&s->lock);
	if (due)
		task_end(s, t);
}

static void *tx_main(void *arg)
{
	struct session *s = arg;
	bool failed = false;    /* a send failed: nothing more goes on this connection */

	pthread_mutex_lock(&s->lock);
	for (;;) {
		while (s->tx_run && (failed || s->dropped || s->tx_busy || !tx_queued(s)))
			pthread_cond_wait(&s->tx_cond, &s->lock);
		if (!s->tx_run)
			break;
		s->tx_busy = true;
		/* everything queued, also what comes while we send; nothing
		 * once the connection is shut down (the rest stays queued for
		 * stop_session()) */
		while (!failed && !s->dropped && s->tx_run && tx_queued(s)) {
			if (send_next_queued(s) < 0) {
				failed = true;
				pthread_mutex_unlock(&s->lock);
				send_failed(s);
				pthread_mutex_lock(&s->lock);
			}
		}
		s->tx_busy = false;
		pthread_cond_broadcast(&s->socket_cond);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

static int queue_ctl(struct session *s, struct tx_item *it)
{
	/* lock held */
	it->next = NULL;
	if (s->ctl_tail)
		s->ctl_tail->next = it;
	else
		s->ctl_head = it;
	s->ctl_tail = it;
	/* whoever holds the socket sends it before letting go */
	if (!s->tx_busy)
		pthread_cond_signal(&s->tx_cond);
	return 0;
}

/* ---- task management (cmd_timeout) ---- */

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

/* Queue a TMF request and enter @state.  Lock held.  Returns 0, or -1 on
 * ENOMEM (the caller drops the connection instead). */
static int start_tmf(struct session *s, enum tmf_state state, uint32_t lun, uint32_t ref_itt,
		     uint32_t ref_cmdsn)
{
	struct tx_item *it = calloc(1, sizeof *it);

	if (!it)
		return -1;
	it->kind = TX_TMF;
	it->function = state == TMF_ABORT ? ISCSI_TMF_ABORT_TASK : ISCSI_TMF_LUN_RESET;
	it->lun_wire = pdu_lun_encode(lun);
	it->ref_itt = ref_itt;
	it->ref_cmdsn = ref_cmdsn;
	s->tmf_state = state;
	s->tmf_lun = lun;
	s->tmf_sent_ns = session_now_ns();
	atomic_fetch_add(state == TMF_ABORT ? &s->st_aborts : &s->st_lu_resets, 1);
	queue_ctl(s, it);
	return 0;
}

/* The target aborted @t: take it out of the session (table, command
 * queue, Data-Out still queued for it) and onto *@again to be sent anew,
 * or, while the TX thread still sends its data, mark it to be sent anew
 * when that ends.  RX thread, lock held. */
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
	if (finish_task(s, t)) {
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
		reissue(s, t);
	}
}

/* ---- RX thread ---- */

/* A protocol violation: log it and fail the session. */
#define VIOLATION(s, ...)                                                   \
	do {                                                                \
		err_set(EPROTO, __VA_ARGS__);                               \
		return -1;                                                  \
	} while (0)

static int rx_data_in(struct session *s, const union iscsi_bhs *bhs, bool *kick)
{
	const struct iscsi_bhs_data_in *h = &bhs->data_in;
	uint32_t len = pdu_data_len(bhs);
	uint32_t offset = get_be32(h->buffer_offset);
	uint32_t datasn = get_be32(h->datasn);
	bool status = h->flags & ISCSI_DATAIN_STATUS;

	pthread_mutex_lock(&s->lock);
	struct iscsi_task *t = find_task(s, pdu_itt(bhs));
	if (t && status)
		update_statsn(s, get_be32(h->statsn));
	update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
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
	if (conn_recv_data(&s->conn, len ? t->read_buf + offset : NULL, len) < 0)
		return -1;
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
	bool due = finish_task(s, t);
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

	if (conn_recv_data(&s->conn, scratch, len) < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	struct iscsi_task *t = find_task(s, pdu_itt(bhs));
	update_statsn(s, get_be32(h->statsn));
	update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	pthread_mutex_unlock(&s->lock);
	if (!t)
		VIOLATION(s, "protocol error: SCSI Response for unknown ITT 0x%x", pdu_itt(bhs));

	if (h->response != 0) {
		log_warn("%s: target failed ITT 0x%x with iSCSI response 0x%02x",
			 s->name, t->itt, h->response);
		t->result = EIO;
	}
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
	bool due = finish_task(s, t);
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

	if (pdu_data_len(bhs))
		VIOLATION(s, "protocol error: R2T with a data segment");
	struct tx_item *it = calloc(1, sizeof *it);
	if (!it) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	struct iscsi_task *t = find_task(s, pdu_itt(bhs));
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
	queue_ctl(s, it);
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add_explicit(&s->st_r2ts, 1, memory_order_relaxed);
	return 0;
}

static int rx_nop_in(struct session *s, const union iscsi_bhs *bhs)
{
	const struct iscsi_bhs_nop_in *h = &bhs->nop_in;
	uint32_t ttt = get_be32(h->ttt);

	if (conn_recv_data(&s->conn, NULL, pdu_data_len(bhs)) < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	if (pdu_itt(bhs) == ITT_PING)
		s->ping_outstanding = false;
	if (pdu_itt(bhs) != ISCSI_RESERVED_TAG)
		update_statsn(s, get_be32(h->statsn));
	update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	if (ttt != ISCSI_RESERVED_TAG) {
		struct tx_item *it = calloc(1, sizeof *it);
		if (!it) {
			pthread_mutex_unlock(&s->lock);
			err_set(ENOMEM, "out of memory");
			return -1;
		}
		it->kind = TX_NOP_OUT;
		it->ttt = ttt;
		it->lun_wire = get_be64(h->lun);
		queue_ctl(s, it);
	}
	pthread_mutex_unlock(&s->lock);
	return 0;
}

static int rx_async(struct session *s, const union iscsi_bhs *bhs, uint8_t *scratch)
{
	const struct iscsi_bhs_async *h = &bhs->async;

	if (conn_recv_data(&s->conn, scratch, pdu_data_len(bhs)) < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	update_statsn(s, get_be32(h->statsn));
	update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	pthread_mutex_unlock(&s->lock);
	switch (h->event) {
	case ISCSI_ASYNC_SCSI_EVENT:
		log_info("%s: target reported a SCSI asynchronous event", s->name);
		return 0;
	case ISCSI_ASYNC_LOGOUT_REQUEST: {
		/* ErrorRecoveryLevel 0, one connection: no new commands, the
		 * outstanding ones finish, then Logout (within Parameter3
		 * seconds, or session_tick() drops the connection) and, as
		 * after a lost connection, a new login with the same ISID
		 * after DefaultTime2Wait; waiting commands go out then */
		unsigned within = get_be16(h->param3);
		pthread_mutex_lock(&s->lock);
		unsigned outstanding = s->outstanding;
		if (!s->logout_asked) {
			s->logout_asked = true;
			s->logout_by_ns = session_now_ns() + (int64_t)within * 1000000000;
		}
		logout_if_drained(s);
		pthread_mutex_unlock(&s->lock);
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
		pthread_mutex_lock(&s->lock);
		unsigned outstanding = s->outstanding;
		if (!s->logout_asked) {
			s->logout_asked = true;
			s->logout_by_ns = session_now_ns() + (int64_t)within * 1000000000;
		}
		logout_if_drained(s);
		pthread_mutex_unlock(&s->lock);
		log_info("%s: target asks to renegotiate parameters; logging out after %u outstanding commands, then in again",
			 s->name, outstanding);
		return 0;
	}
	default:
		log_info("%s: ignoring asynchronous event %u", s->name, h->event);
		return 0;
	}
}

static int rx_reject(struct session *s, const union iscsi_bhs *bhs, uint8_t *scratch)
{
	uint32_t len = pdu_data_len(bhs);

	if (conn_recv_data(&s->conn, scratch, len) < 0)
		return -1;
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
	if (!s->logout_asked || s->logout_sent || s->outstanding || s->state != SESSION_UP)
		return;
	struct tx_item *it = calloc(1, sizeof *it);
	if (!it)
		return;         /* session_tick() drops the connection at the deadline */
	it->kind = TX_LOGOUT;
	s->logout_sent = true;
	queue_ctl(s, it);
}

/* Returns 1 when the session's logout completed; -1 (the connection ends
 * and is recovered) after a logout the target asked for. */
static int rx_logout_rsp(struct session *s, const union iscsi_bhs *bhs)
{
	if (conn_recv_data(&s->conn, NULL, pdu_data_len(bhs)) < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	bool asked = s->state == SESSION_CLOSING;   /* set before the request goes */
	bool requested = s->logout_sent;            /* the target's wish */
	pthread_mutex_unlock(&s->lock);
	if (!asked && !requested)
		VIOLATION(s, "protocol error: Logout Response without a Logout Request");
	if (pdu_itt(bhs) != ITT_LOGOUT)
		VIOLATION(s, "protocol error: Logout Response with ITT 0x%x", pdu_itt(bhs));
	if (bhs->logout_rsp.response != 0)
		log_warn("%s: logout answered with response %u", s->name,
			 bhs->logout_rsp.response);
	/* (its Time2Wait and Time2Retain are for ErrorRecoveryLevel 2's task
	 * reassignment, to be ignored below it: RFC 7143 11.15.2-3) */
	if (asked)
		return 1;
	log_info("%s: logged out as the target asked", s->name);
	pthread_mutex_lock(&s->lock);
	s->dropped = true;     /* rx_main() then reconnects without an error line */
	pthread_mutex_unlock(&s->lock);
	err_set(ECONNRESET, "logged out as the target asked");
	return -1;
}

/* The answer to our ABORT TASK or LOGICAL UNIT RESET: the aborted tasks
 * go out again; an abort the target refused becomes an LU reset; a reset
 * it refused fails the connection (which is then recovered). */
static int rx_tmf_rsp(struct session *s, const union iscsi_bhs *bhs)
{
	const struct iscsi_bhs_tmf_rsp *h = &bhs->tmf_rsp;
	struct iscsi_task *again = NULL;
	unsigned n = 0;

	if (conn_recv_data(&s->conn, NULL, pdu_data_len(bhs)) < 0)
		return -1;
	pthread_mutex_lock(&s->lock);
	enum tmf_state state = s->tmf_state;
	if (state == TMF_IDLE || pdu_itt(bhs) != ITT_TMF) {
		pthread_mutex_unlock(&s->lock);
		VIOLATION(s, "protocol error: unexpected Task Management Response (ITT 0x%x)",
			  pdu_itt(bhs));
	}
	update_statsn(s, get_be32(h->statsn));
	update_window(s, get_be32(h->exp_cmdsn), get_be32(h->max_cmdsn));
	s->tmf_state = TMF_IDLE;
	uint32_t lun = s->tmf_lun, ref_itt = s->tmf_ref_itt;
	uint8_t opcode = s->tmf_opcode, response = h->response;

	if (state == TMF_ABORT && (response == 0 || response == 1)) {
		/* "does not exist": it never arrived, or its status did
		 * (then it is no longer in the table) */
		struct iscsi_task *t = find_task(s, ref_itt);
		if (t)
			abort_locally(s, t, &again);
		pthread_mutex_unlock(&s->lock);
		if (t)
			log_info("%s: command 0x%02x (ITT 0x%x) on LUN %u aborted (%s); sending it again",
				 s->name, opcode, ref_itt, lun, tmf_response_text(response));
		else
			log_info("%s: command ITT 0x%x was answered before its abort", s->name,
				 ref_itt);
		reissue_list(s, again);
		return 0;
	}
	if (state == TMF_ABORT) {
		int rc = start_tmf(s, TMF_LU_RESET, lun, 0, 0);
		pthread_mutex_unlock(&s->lock);
		if (rc < 0) {
			err_set(ENOMEM, "out of memory for a LOGICAL UNIT RESET");
			return -1;
		}
		log_warn("%s: target answered ABORT TASK of ITT 0x%x with \"%s\"; resetting LUN %u",
			 s->name, ref_itt, tmf_response_text(response), lun);
		return 0;
	}
	if (response != 0) {
		pthread_mutex_unlock(&s->lock);
		err_set(EIO, "target answered LOGICAL UNIT RESET of LUN %u with \"%s\"", lun,
			tmf_response_text(response));
		return -1;
	}
	/* the reset ended every task of the LUN (of every initiator) */
	for (unsigned i = 0; i < s->nslots; i++) {
		struct iscsi_task *t = s->slots[i];
		if (t && t->lun == lun) {
			abort_locally(s, t, &again);
			n++;
		}
	}
	pthread_mutex_unlock(&s->lock);
	log_warn("%s: LUN %u reset; %u commands sent again", s->name, lun, n);
	reissue_list(s, again);
	return 0;
}

/* Read and handle PDUs until the connection fails (-1, err_set()) or the
 * logout completes (1). */
static int rx_loop(struct session *s, uint8_t *scratch)
{
	for (;;) {
		union iscsi_bhs bhs;
		bool kick = false;
		int rc;

		if (conn_recv_bhs(&s->conn, &bhs) < 0 ||
		    pdu_check_received(&bhs, s->params.max_recv_dsl) < 0)
			return -1;
		atomic_store_explicit(&s->last_rx_ns, session_now_ns(), memory_order_relaxed);
		switch (pdu_opcode(&bhs)) {
		case ISCSI_OP_DATA_IN:
			rc = rx_data_in(s, &bhs, &kick);
			break;
		case ISCSI_OP_SCSI_RSP:
			rc = rx_scsi_rsp(s, &bhs, scratch, &kick);
			break;
		case ISCSI_OP_R2T:
			rc = rx_r2t(s, &bhs);
			break;
		case ISCSI_OP_NOP_IN:
			rc = rx_nop_in(s, &bhs);
			kick = true;    /* its MaxCmdSN may have opened the window */
			break;
		case ISCSI_OP_ASYNC_MSG:
			rc = rx_async(s, &bhs, scratch);
			kick = true;    /* as NOP-In */
			break;
		case ISCSI_OP_REJECT:
			rc = rx_reject(s, &bhs, scratch);
			break;
		case ISCSI_OP_LOGOUT_RSP:
			rc = rx_logout_rsp(s, &bhs);
			break;
		case ISCSI_OP_TMF_RSP:
			rc = rx_tmf_rsp(s, &bhs);
			kick = true;    /* its MaxCmdSN may have opened the window */
			break;
		default:
			err_set(EPROTO, "protocol error: unexpected %s in full feature phase",
				pdu_opcode_name(bhs.common.opcode));
			rc = -1;
			break;
		}
		if (kick)
			pool_kick(s->pool);
		if (rc != 0)
			return rc;
	}
}

static int start_tx(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	s->tx_run = true;
	pthread_mutex_unlock(&s->lock);
	if (pthread_create(&s->tx_thread, NULL, tx_main, s) != 0) {
		err_set(EAGAIN, "%s: cannot start a thread", s->name);
		return -1;
	}
	s->tx_running = true;
	return 0;
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
 * TX thread end with that status.  RX thread only. */
static void stop_session(struct session *s, enum session_state next, bool requeue)
{
	pthread_mutex_lock(&s->lock);
	session_set_state(s, next);
	s->down_since_ns = session_now_ns();
	s->tx_run = false;
	s->ping_outstanding = false;
	s->logout_asked = s->logout_sent = false;   /* that connection is gone */
	s->tmf_state = TMF_IDLE;                    /* and its task management */
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
		finish_task(s, t);
		t->finished = false;
		if (t != &s->vtask)     /* the identity check ends with the connection */
			list = insert_by_cmdsn(list, t);
	}
	free(s->verify_luns);
	s->verify_luns = NULL;
	s->verify_retry_ns = 0;
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
		pool_requeue(s->pool, again);
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
		task_end(s, t);
	}
	while (list) {
		struct iscsi_task *t = list;
		list = t->next;
		t->result = EIO;
		t->done(t);
	}
}

/* Wait @ms, or less if the session is being closed.  Returns -1 when it is. */
static int recovery_wait(struct session *s, int64_t ms)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += (time_t)(ms / 1000);
	deadline.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (s->state != SESSION_CLOSING &&
	       pthread_cond_timedwait(&s->state_cond, &s->lock, &deadline) != ETIMEDOUT)
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
	log_debug("%s: target moved permanently to %s:%u; later logins go there", s->name,
		  lr->moved_host, lr->moved_port);
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
	int64_t start = session_now_ns();
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

		struct conn c;
		struct login_result lr;
		uint8_t isid[6];
		memcpy(isid, cfg->isid_base, 6);
		isid[5] = (uint8_t)(isid[5] + s->index);
		if (login_connect(&c, s->portal_host, s->portal_port, cfg->connect_timeout_ms, 0,
				  &cfg->text, isid, 0, &lr) < 0) {
			log_warn("%s: reconnect attempt %u: %s", s->name, attempt + 1, err_msg());
			/* the next attempt asks the target's next portal (where a
			 * permanent redirect sent us counts as the one in use) */
			use_portal(s, s->portal_index + 1);
			if (portal_count(cfg) > 1)
				log_info("%s: trying portal %s:%u next", s->name, s->portal_host,
					 s->portal_port);
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
		atomic_store_explicit(&s->last_rx_ns, session_now_ns(), memory_order_relaxed);
		if (start_tx(s) < 0) {
			log_error("%s", err_msg());
			return -1;
		}
		atomic_fetch_add(&s->st_reconnects, 1);
		log_info("%s: reconnected to %s after %.1f s (%u attempts)", s->name,
			 s->conn.peer, (double)(session_now_ns() - start) / 1e9, attempt + 1);
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

	if (!scratch) {
		log_error("%s: out of memory", s->name);
		stop_session(s, SESSION_DOWN, false);
		goto out;
	}
	for (;;) {
		int rc = rx_loop(s, scratch);
		pthread_mutex_lock(&s->lock);
		bool closing = s->state == SESSION_CLOSING;
		bool dropped = s->dropped;   /* then err_msg() is "... closed the connection" */
		s->dropped = false;
		pthread_mutex_unlock(&s->lock);
		if (rc > 0 || closing) {
			if (rc < 0)
				log_debug("%s: connection ended during logout: %s", s->name, err_msg());
			stop_session(s, SESSION_DOWN, false);
			break;
		}
		if (s->no_recover) {
			/* nowhere to reconnect to: the tasks fail */
			log_error("%s: %s", s->name, err_msg());
			stop_session(s, SESSION_DOWN, false);
			break;
		}
		if (dropped)
			log_info("%s: connection dropped; reconnecting", s->name);
		else
			log_error("%s: %s; reconnecting", s->name, err_msg());
		stop_session(s, SESSION_RECOVERING, true);
		if (recover(s) < 0) {
			stop_session(s, SESSION_DOWN, false);
			break;
		}
	}
out:
	pthread_mutex_lock(&s->lock);
	s->rx_done = true;
	pthread_cond_broadcast(&s->state_cond);
	pthread_mutex_unlock(&s->lock);
	free(scratch);
	pool_kick(s->pool);
	return NULL;
}

void session_tick(struct session *s)
{
	const struct session_config *cfg = s->cfg;
	int64_t now = session_now_ns();
	int64_t last_rx = atomic_load_explicit(&s->last_rx_ns, memory_order_relaxed);
	char why[160] = "";

	pthread_mutex_lock(&s->lock);
	if (s->state == SESSION_VERIFYING && s->verify_luns && s->verify_retry_ns &&
	    now >= s->verify_retry_ns)
		session_verify_send_locked(s);     /* after BUSY, NOT READY or a full window */
	if (s->state != SESSION_UP && s->state != SESSION_VERIFYING) {
		/* Writes that waited the replacement timeout for this
		 * session: other sessions may have them now (or, when none
		 * is up either, the pool fails them). */
		struct iscsi_task *release = NULL;
		if (s->state == SESSION_RECOVERING && s->pinned &&
		    now - s->down_since_ns > (int64_t)cfg->replacement_timeout_s * 1000000000) {
			release = s->pinned;
			s->pinned = NULL;
		}
		pthread_mutex_unlock(&s->lock);
		if (release) {
			log_warn("%s: not back after %u s; its writes may go on other sessions",
				 s->name, cfg->replacement_timeout_s);
			pool_requeue(s->pool, release);
		}
		return;
	}
	if (s->ping_outstanding && cfg->noop_timeout_s &&
	    now - s->ping_sent_ns > (int64_t)cfg->noop_timeout_s * 1000000000 &&
	    now - last_rx > (int64_t)cfg->noop_timeout_s * 1000000000) {
		snprintf(why, sizeof why, "no answer to a NOP-Out within %u s", cfg->noop_timeout_s);
	} else if (!s->ping_outstanding && cfg->noop_interval_s &&
		   now - last_rx > (int64_t)cfg->noop_interval_s * 1000000000) {
		struct tx_item *it = calloc(1, sizeof *it);
		if (it) {
			it->kind = TX_PING;
			s->ping_outstanding = true;
			s->ping_sent_ns = now;
			queue_ctl(s, it);
		}
	}
	if (!why[0] && cfg->cmd_timeout_s) {
		/* ABORT TASK, then LOGICAL UNIT RESET, then drop the
		 * connection: each step waits cmd_timeout for its answer */
		int64_t limit = (int64_t)cfg->cmd_timeout_s * 1000000000;
		if (s->tmf_state == TMF_IDLE) {
			for (unsigned i = 0; i < s->nslots; i++) {
				struct iscsi_task *t = s->slots[i];
				if (!t || t->finished || now - t->sent_ns <= limit)
					continue;
				atomic_fetch_add(&s->st_timeouts, 1);
				s->tmf_ref_itt = t->itt;
				s->tmf_opcode = t->cdb[0];
				if (start_tmf(s, TMF_ABORT, t->lun, t->itt, t->cmdsn) < 0)
					snprintf(why, sizeof why, "out of memory for an ABORT TASK");
				else
					log_warn("%s: command 0x%02x (ITT 0x%x) unanswered for %u s on LUN %u; aborting it",
						 s->name, t->cdb[0], t->itt, cfg->cmd_timeout_s, t->lun);
				break;
			}
		} else if (now - s->tmf_sent_ns > limit && s->tmf_state == TMF_ABORT) {
			log_warn("%s: no answer to ABORT TASK of ITT 0x%x within %u s; resetting LUN %u",
				 s->name, s->tmf_ref_itt, cfg->cmd_timeout_s, s->tmf_lun);
			if (start_tmf(s, TMF_LU_RESET, s->tmf_lun, 0, 0) < 0)
				snprintf(why, sizeof why, "out of memory for a LOGICAL UNIT RESET");
		} else if (now - s->tmf_sent_ns > limit) {
			snprintf(why, sizeof why, "no answer to LOGICAL UNIT RESET of LUN %u within %u s",
				 s->tmf_lun, cfg->cmd_timeout_s);
		}
	}
	if (!why[0] && s->logout_asked && !s->logout_sent && now > s->logout_by_ns)
		snprintf(why, sizeof why, "%u commands still outstanding when the target wanted the logout",
			 s->outstanding);
	if (!why[0] && s->logout_sent &&
	    now > s->logout_by_ns + (int64_t)(cfg->noop_timeout_s ? cfg->noop_timeout_s : 5) * 1000000000)
		snprintf(why, sizeof why, "no answer to the Logout the target asked for");
	if (why[0]) {
		/* With the lock held: the session is up, so s->conn is the
		 * live connection (recover() closes and replaces it only
		 * under the lock, after the state left SESSION_UP).  The line
		 * first, so it comes before the RX thread's. */
		s->dropped = true;
		log_error("%s: %s; dropping the connection", s->name, why);
		conn_shutdown(&s->conn);
	}
	pthread_mutex_unlock(&s->lock);
}

/* ---- life cycle ---- */

/* Take the outcome @lr of the login on s->conn and start the threads:
 * the session is then SESSION_UP.  Returns 0, or -1 with err_set(); the
 * caller still owns s->conn then. */
static int session_start(struct session *s, const struct login_result *lr)
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
	session_set_state(s, SESSION_UP);
	atomic_store(&s->last_rx_ns, session_now_ns());
	if (start_tx(s) < 0)
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
	s->tx_run = false;
	pthread_cond_broadcast(&s->tx_cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->tx_thread, NULL);
err_tx:
	free(s->slots);
	s->slots = NULL;
	return -1;
}

struct session *session_login(struct pool *pool, const struct session_config *cfg,
			      unsigned index)
{
	struct session *s = calloc(1, sizeof *s);
	struct login_result lr;
	uint8_t isid[6];

	if (!s) {
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	s->pool = pool;
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
		if (rc < 0 && k + 1 < portal_count(cfg))
			log_debug("%s: portal %s:%u: %s; trying the next", s->name, s->portal_host,
				 s->portal_port, err_msg());
	}
	if (rc < 0)
		goto err_connect;
	take_portal(s, &lr);
	if (session_start(s, &lr) < 0)
		goto err_login;
	return s;

err_login:
	conn_close(&s->conn);
err_connect:
	free(s);
	return NULL;
}

struct session *session_attach_fd(struct pool *pool, const struct session_config *cfg,
				  unsigned index, int fd, const struct login_result *lr)
{
	struct session *s = calloc(1, sizeof *s);

	if (!s) {
		close(fd);
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	s->pool = pool;
	s->cfg = cfg;
	s->index = index;
	s->next_time2wait_s = -1;
	s->no_recover = true;
	snprintf(s->name, sizeof s->name, "session %u", index);
	if (conn_attach_fd(&s->conn, fd, "attached peer", -1) < 0)
		goto err_attach;
	s->conn.header_digest = lr->params.header_digest;
	s->conn.data_digest = lr->params.data_digest;
	if (session_start(s, lr) < 0)
		goto err_start;
	return s;

err_start:
	conn_close(&s->conn);
err_attach:
	free(s);
	return NULL;
}

void session_logout_and_free(struct session *s, int timeout_ms)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}

	pthread_mutex_lock(&s->lock);
	bool was_up = s->state == SESSION_UP || s->state == SESSION_VERIFYING;
	if (s->state != SESSION_DOWN)
		session_set_state(s, SESSION_CLOSING);
	if (was_up) {
		struct tx_item *it = calloc(1, sizeof *it);
		if (it) {
			it->kind = TX_LOGOUT;
			queue_ctl(s, it);
		}
	}
	pthread_cond_broadcast(&s->state_cond);  /* wakes a recovery wait */
	while (!s->rx_done) {
		if (pthread_cond_timedwait(&s->state_cond, &s->lock, &deadline) == ETIMEDOUT)
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
