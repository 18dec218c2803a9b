/* session_internal.h: what the files of one session share (session.c,
 * session_tx.c, session_tmf.c, session_verify.c): the task table and queue
 * layouts, struct session with the lock of each field, the state machines
 * (the session's own, enum session_state in session.h, and its two
 * sub-machines: task management, enum tmf_state, and the identity check,
 * enum verify_state), and the few functions one file calls in the other.
 * Not for other modules: they use session.h.  Nothing here knows the
 * pool: the session reaches its owner only through s->ops.
 */
#ifndef ISCSIFS_SESSION_INTERNAL_H
#define ISCSIFS_SESSION_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "conn.h"
#include "evloop.h"
#include "helpers.h"
#include "log.h"
#include "session.h"
#include "text.h"

/* Task table size: ITTs are (generation << 12) | slot. */
#define SLOT_BITS 12
#define MAX_SLOTS (1u << SLOT_BITS)
/* ITTs of our own non-SCSI requests, all in generation 0xfffff, which no
 * command ever gets (session_submit_locked()). */
#define ITT_LOGOUT 0xfffffffeu
#define ITT_PING 0xfffffffdu
/* Task management requests: the n-th of a session has ITT
 * ITT_TMF_FIRST + n % ITT_TMF_COUNT, so each has its own while it is out
 * (one at a time) and an answer to one that ended is told from the answer
 * to the one out now (RFC 7143: a task tag names one task session-wide
 * while that task exists). */
#define ITT_TMF_FIRST 0xfffff000u
#define ITT_TMF_COUNT 0x800u
/* Answers to the target's NOP-In pings (RFC 7143 11.19: each one with a
 * Target Transfer Tag must be answered) queued and not yet sent: one more
 * means the target sends pings faster than it takes the answers (it does
 * not read the connection), and the connection is dropped.  A real target
 * has one ping out at a time. */
#define NOP_ANSWERS_MAX 16
/* A renegotiation the target asks for without a deadline: the new login
 * comes within this many seconds. */
#define RENEGOTIATE_WITHIN_S 5
/* Times a command is sent again on a new connection before it fails. */
#define MAX_REISSUES 3
/* Reconnect backoff: after DefaultTime2Wait, 0.5 s, 1 s, then every 2 s,
 * each plus up to a quarter of jitter.  A target that comes back is found
 * within 2.5 s (the replacement timeout is counted from the loss, not from
 * it), and a dead portal costs each session one connect(2) per 2 s. */
#define RECONNECT_FIRST_MS 500
#define RECONNECT_MAX_MS 2000
/* The target's DefaultTime2Wait is honoured up to this much. */
#define RECONNECT_TIME2WAIT_MAX_MS 10000
/* A connection lost sooner than this after its login counts as a quick
 * loss: the wait before the next login is then at least the backoff of
 * the quick losses in a row (as the attempts of one outage), whatever
 * Time2Wait the target gave: a target that drops every connection at once
 * with Time2Wait 0 cannot make us log in again and again without pause. */
#define RECONNECT_QUICK_LOSS_MS 5000

/* An identity check command answered with a Unit Attention, NOT READY or
 * BUSY is sent again this many times (the latter two a second apart, by
 * session_tick()) before the session gives up and reconnects. */
#define VERIFY_MAX_RETRIES 10

/* Kinds of work for the sender besides commands. */
enum tx_kind {
	TX_DATA_OUT,   /* answer an R2T (or unsolicited data): Data-Out PDUs for
	                * [offset, offset+length), the first with DataSN datasn */
	TX_NOP_OUT,    /* answer a NOP-In that asked for one (ttt) */
	TX_PING,       /* keepalive: a NOP-Out that asks for a NOP-In */
	TX_LOGOUT,     /* close the session */
	TX_TMF,        /* a Task Management Function Request (ABORT TASK, LU RESET) */
};

/* The task management sub-machine (session_tmf.c): one function out at a
 * time.  A command over cmd_timeout is aborted; when the abort fails or
 * goes unanswered the LU is reset; when that fails or goes unanswered the
 * connection is dropped (and recovered).  Each step waits at most
 * cmd_timeout for its answer.  Which function is out is s->tmf_function;
 * only tmf_set_state() (session_tmf.c) changes the state, along the moves
 * of its table:
 *   IDLE -> QUEUED (a function starts) -> SENT (it went on the wire)
 *   -> IDLE (its answer came);
 *   QUEUED, SENT -> QUEUED (the next function replaces it: timed out, or
 *   the abort refused);
 *   QUEUED, SENT -> IDLE (the connection is gone). */
enum tmf_state {
	TMF_IDLE = 0,     /* no function out */
	TMF_QUEUED,       /* the request of s->tmf_function is in the control
	                   * queue, not yet on the wire (s->tmf_cmdsn unset) */
	TMF_SENT,         /* it went with CmdSN s->tmf_cmdsn; its answer is
	                   * awaited until cmd_timeout */
};

/* The identity check sub-machine (session_verify.c): which command of
 * the LUN s->verify_i is out (or waits to be sent again, verify_retry_ns).
 * Only verify_set_state() changes it: from IDLE to the first step of the
 * first LUN (verify_first_step()), from any step to the next step of the
 * same LUN or the first of the next, CAPACITY16 -> CAPACITY10 (refused),
 * and back to IDLE when the check ends, fails or the connection goes. */
enum verify_state {
	VERIFY_IDLE = 0,      /* not checking (s->verify_luns NULL) */
	VERIFY_SERIAL,        /* INQUIRY VPD 0x80 (the LUN had a serial) */
	VERIFY_DEVICE_ID,     /* INQUIRY VPD 0x83 (the LUN had a designator) */
	VERIFY_CAPACITY16,    /* READ CAPACITY(16) */
	VERIFY_CAPACITY10,    /* READ CAPACITY(10): the target refused (16) */
};

/* The keepalive: our NOP-Out that asks for a NOP-In (ITT_PING), one at a
 * time.  Changed under the lock by session_tick() (IDLE -> QUEUED), the TX
 * side as it sends it (QUEUED -> SENT, ANSWERED_EARLY -> IDLE), the RX
 * thread on its NOP-In (SENT -> IDLE, QUEUED -> ANSWERED_EARLY) and
 * session_stop() (-> IDLE). */
enum ping_state {
	PING_IDLE = 0,        /* none out: session_tick() may queue one */
	PING_QUEUED,          /* queued, not yet sent; its answer is awaited */
	PING_SENT,            /* sent; its NOP-In is awaited until noop_timeout */
	PING_ANSWERED_EARLY,  /* a NOP-In with ITT_PING came while ours was still
	                       * queued: nothing is awaited, but no other may be
	                       * queued until that one went */
};

/* An item of the control queue. */
struct tx_item {
	enum tx_kind kind;          /* what to send */
	struct iscsi_task *task;    /* TX_DATA_OUT: the task (holds a tx_ref) */
	uint32_t ttt;               /* TX_DATA_OUT: the R2T's TTT; TX_NOP_OUT: the NOP-In's */
	uint32_t offset;            /* TX_DATA_OUT: BufferOffset of the next PDU */
	uint32_t length;            /* TX_DATA_OUT: bytes of the burst still to send */
	uint32_t datasn;            /* TX_DATA_OUT: DataSN of the next PDU (a burst
	                             * the full socket cut resumes where it was) */
	uint64_t lun_wire;          /* TX_NOP_OUT: LUN field to echo; TX_TMF: the LUN */
	uint8_t function;           /* TX_TMF: ISCSI_TMF_ABORT_TASK, _ABORT_TASK_SET or _LUN_RESET */
	uint32_t itt;               /* TX_TMF: the request's own ITT (s->tmf_itt) */
	uint32_t ref_itt;           /* TX_TMF: ABORT TASK: the task's ITT */
	uint32_t ref_cmdsn;         /* TX_TMF: ABORT TASK: the task's CmdSN */
	struct tx_item *next;       /* queue link */
};

/* What the receiver keeps from the header of a PDU to its end (the
 * session's loop only). */
struct rx_ctx {
	struct session *s;          /* whose receiver this is */
	uint8_t *scratch;           /* the data segment of any PDU but a
	                             * Data-In (sense, async event, rejected
	                             * header): max_recv_dsl + 4 bytes */
	struct iscsi_task *data_in; /* the task of the Data-In under way,
	                             * found and checked by rx_place() */
	bool kick_due;              /* a PDU handled since the last kick may
	                             * have made room (a task ended, the window
	                             * opened): the owner is kicked once before
	                             * the loop waits for the socket again */
};

/* One session.  The lock (or thread) that protects each field is named
 * beside it; "loop" is the session's event loop (s->loop), which alone
 * receives, handles the connection's end and runs the reconnect, login
 * attempts included; "recovery" is the loop's reconnect (or, before the
 * session starts, its first login: session_login.c, on the same loop, then
 * the thread that waited for it).  Its state (s->state) and the
 * sub-machines' (tmf_state, verify_state, ping_state) are changed by
 * several threads, always under s->lock: the loop (PDUs, recovery), a
 * sender (a failed send), its tick (session_tick(), on its loop or, in
 * tests, the test thread), the
 * identity check's callbacks and session_logout_and_free(). */
struct session {
	const struct session_owner_ops *ops; /* the owner's callbacks (session.h), or
	                                     * NULL; read-only */
	void *owner;                        /* their argument; read-only */
	const struct session_config *cfg;   /* read-only */
	unsigned index;                     /* slot in the owner; last byte of ISID */
	char portal_host[256];              /* recovery (the first login before): where
	                                     * logins go: one of cfg's portals, or the
	                                     * one a permanent redirect named (take_portal()) */
	uint16_t portal_port;               /* as portal_host */
	unsigned portal_index;              /* as portal_host: the entry of cfg's portals
	                                     * in use (use_portal()) */
	char name[64];                      /* "session N" for log lines; read-only */
	struct conn conn;                   /* sent on by whoever holds tx_busy (a
	                                     * loop), received on by the loop;
	                                     * replaced under the lock by the
	                                     * recovery while not connected */
	struct iscsi_params params;         /* negotiated; replaced with conn */
	uint16_t tsih;                      /* as params */
	struct evloop *loop;                /* read-only: the event loop that owns the
	                                     * socket, the receiver and the timers */
	struct ev_source src;               /* the socket on the loop; src.fd is
	                                     * written by the loop under the lock:
	                                     * the socket while the loop watches it
	                                     * (for EPOLLIN, and EPOLLOUT while
	                                     * tx_blocked: session_watch_locked()),
	                                     * -1 otherwise */
	struct ev_call tx_call;             /* posted to the loop: send what is queued */
	struct ev_timer retry_timer;        /* loop: the wait before the next login */
	struct ev_timer tick_timer;         /* loop: session_tick() each second, once
	                                     * session_tick_start() armed it */
	struct login_loop *login;           /* loop: the login attempt under way
	                                     * (LOGGING_IN), else NULL */
	unsigned attempt;                   /* recovery: login attempts of this outage */
	unsigned quick_losses;              /* recovery: connections lost in a row each
	                                     * within RECONNECT_QUICK_LOSS_MS of its login */
	int64_t logged_in_ns;               /* recovery: when the connection logged in */
	int64_t outage_ns;                  /* recovery: when this outage began */
	unsigned seed;                      /* recovery: for the backoff's jitter */
	struct rx_ctx rx;                   /* loop: the receiver's context */
	bool no_recover;                    /* read-only: made by session_attach_fd(), so a
	                                     * lost connection fails the tasks with EIO
	                                     * instead of reconnecting */
	_Atomic int64_t last_rx_ns;         /* when the last PDU arrived (loop writes) */

	pthread_mutex_t lock;               /* protects everything below */
	pthread_cond_t socket_cond;         /* broadcast when tx_busy is cleared
	                                     * (session_stop() waits for it) */
	pthread_cond_t state_cond;          /* broadcast on every move of state:
	                                     * logout waits for CLOSED */
	enum session_state state;           /* lock: where the session is in its life
	                                     * (session.h); session_set_state() only */
	bool logout_awaited;                /* lock: session_logout_start() found the
	                                     * session connected: its Logout's answer
	                                     * (CLOSED) is waited for */
	uint32_t cmdsn;                     /* lock: CmdSN of the next command */
	uint32_t exp_cmdsn;                 /* lock: target's ExpCmdSN */
	uint32_t max_cmdsn;                 /* lock: target's MaxCmdSN */
	uint32_t exp_statsn;                /* lock: next StatSN expected */
	struct iscsi_task **slots;          /* lock: tasks by ITT slot */
	unsigned nslots;                    /* size of slots (queue_depth) */
	unsigned outstanding;               /* lock: tasks in slots */
	uint32_t itt_generation;            /* lock: bumps on each allocation */
	unsigned next_slot;                 /* lock: where the slot search starts */
	struct iscsi_task *cmd_head, *cmd_tail;   /* lock: commands to send */
	struct tx_item *ctl_head, *ctl_tail;      /* lock: control PDUs to send */
	bool tx_busy;                       /* lock: a thread is writing the socket (the
	                                     * loop, or another loop sending its own
	                                     * command inline); one at a time */
	bool tx_blocked;                    /* lock: the socket was full: part of a PDU
	                                     * waits in conn.tx, nobody sends until the
	                                     * loop has sent it (EPOLLOUT) */
	struct iscsi_task *tx_hold;         /* lock: tx_blocked: the task whose data
	                                     * that PDU points to (holds a tx_ref), or
	                                     * NULL */
	enum ping_state ping_state;         /* lock: our keepalive NOP-Out */
	unsigned nop_answers;               /* lock: TX_NOP_OUT items queued, not yet sent
	                                     * (at most NOP_ANSWERS_MAX) */
	int64_t ping_sent_ns;               /* lock: when the keepalive was queued */
	int64_t down_since_ns;              /* lock: when the first connection lost
	                                     * since the session was last in full
	                                     * feature phase was lost; 0 while it is
	                                     * (the replacement timeout of s->pinned
	                                     * counts from there) */
	int next_time2wait_s;               /* loop: the Time2Wait an Async Message
	                                     * gave for the next login, -1 for none
	                                     * (DefaultTime2Wait) */
	uint64_t login_seq;                 /* lock: the count of logins when this
	                                     * connection logged in */
	struct iscsi_task *pinned;          /* lock: writes that were on the wire of a
	                                     * lost connection, those of each loss in
	                                     * CmdSN order, the latest loss's first
	                                     * (overlapping writes are ordered by the
	                                     * LUN's range list, not here): they wait
	                                     * for this session to log in again in the
	                                     * portal group they were lost in (see
	                                     * session_stop(), verify_finish()) or for
	                                     * the replacement timeout from their
	                                     * task->pinned_ns (session_tick()) */
	int64_t window_wait_since_ns;       /* lock: when a command first found the
	                                     * CmdSN window closed since it was last
	                                     * open (or the login); 0: none did.  Past
	                                     * cmd_timeout the connection is dropped
	                                     * (session_tick()) */
	int64_t logout_by_ns;               /* lock: DRAINING: the target's deadline
	                                     * for the Logout it asked for;
	                                     * LOGGING_OUT: when that Logout was
	                                     * queued (its answer is due within
	                                     * noop_timeout) */
	enum tmf_state tmf_state;           /* lock: the task management sub-machine;
	                                     * tmf_set_state() only */
	uint8_t tmf_function;               /* lock: not TMF_IDLE: the function out
	                                     * (ISCSI_TMF_ABORT_TASK, _LUN_RESET, or
	                                     * _ABORT_TASK_SET: another session of the
	                                     * owner reset that LUN, which ended this
	                                     * session's commands on it too, maybe
	                                     * silently) */
	uint32_t tmf_itt;                   /* lock: the ITT of that function (or of the
	                                     * last one, when none is out) */
	uint32_t tmf_count;                 /* lock: functions started on this session:
	                                     * ITT_TMF_FIRST + tmf_count % ITT_TMF_COUNT is
	                                     * the next one's ITT */
	uint32_t tmf_ref_itt;               /* lock: ABORT TASK: ITT of the task aborted */
	uint32_t tmf_lun;                   /* lock: the LUN of the task or of the reset */
	uint8_t tmf_opcode;                 /* lock: ABORT TASK: CDB opcode, for log lines */
	int64_t tmf_sent_ns;                /* lock: when it was queued */
	uint32_t tmf_cmdsn;                 /* lock: TMF_SENT: the CmdSN it went with: a
	                                     * task set function ends the session's
	                                     * commands before it, not after */
	bool abort_set_due;                 /* lock: another session reset abort_set_lun
	                                     * while a TMF was out here: an ABORT TASK SET
	                                     * of it follows that TMF's answer (a queue of
	                                     * one, not a state: see session_tmf.c) */
	uint32_t abort_set_lun;             /* lock: as abort_set_due */
	enum verify_state verify_state;     /* lock: the identity check sub-machine;
	                                     * verify_set_state() only */
	struct iscsi_task vtask;            /* lock: the identity check's command (one at
	                                     * a time; in the table like any task, but
	                                     * never requeued: session_stop() skips it) */
	uint8_t vbuf[256];                  /* lock: its Data-In */
	struct lun_identity *verify_luns;   /* lock: not VERIFY_IDLE: what the LUNs must be
	                                     * (the owner's expected_luns, malloc()ed) */
	unsigned verify_n;                  /* lock: entries of verify_luns */
	unsigned verify_i;                  /* lock: the entry being checked */
	unsigned verify_retries;            /* lock: times this step was sent again */
	int64_t verify_retry_ns;            /* lock: when session_tick() sends the step
	                                     * again (BUSY, NOT READY); 0: nothing waits */

	struct log_budget async_log;        /* lines about Asynchronous Message
	                                     * events: one a second (atomics) */
	struct log_budget late_tmf_log;     /* lines about answers to task management
	                                     * requests that ended: one a second */
	struct log_budget nop_reject_log;   /* lines about NOP-Outs the target
	                                     * rejected: one a minute */

	_Atomic uint64_t load_bytes;        /* outstanding bytes (hint, no lock) */
	_Atomic int state_hint;             /* copy of state for lock-free readers */
	/* statistics (relaxed atomics) */
	_Atomic uint64_t st_commands, st_r2ts, st_data_out, st_read, st_written;
	_Atomic uint64_t st_reconnects, st_timeouts, st_aborts, st_lu_resets, st_abort_sets;
	_Atomic uint64_t st_verifications, st_replaced;
};

/* ---- session.c, for the other session_*.c ---- */

/* The only place s->state changes: move to @to, with its lock-free copy,
 * a debug line, a broadcast of state_cond and the owner's observer
 * (ops->state_changed).  A move its table does not allow logs an error
 * line naming the session and both states and aborts (with NDEBUG: the
 * line, then the move).  Lock held. */
void session_set_state(struct session *s, enum session_state to);

/* The checks shared by the transition functions of the session's three
 * machines (session_set_state(), the task management one of
 * session_tmf.c, the identity check one of session_verify.c).
 * session_fsm_legal(): whether @moves (@n rows, by the state moved from;
 * in each, the bit of every state it may move to) allows @from -> @to; a
 * state outside the table never moves.  session_fsm_check(): for an
 * illegal move, log "@who: illegal @machine transition @from -> @to" and
 * abort (with NDEBUG: only the line; the caller moves). */
bool session_fsm_legal(const unsigned *moves, unsigned n, unsigned from, unsigned to);
void session_fsm_check(const char *who, const char *machine, bool legal, const char *from,
		       const char *to);

/* Whether the current connection may be sent on: it is logged in, maybe
 * being dropped or logged out.  Lock held. */
bool session_tx_may_run(const struct session *s);

/* Whether the connection is logged in and ours to use (VERIFYING,
 * FULL_FEATURE, DRAINING, LOGGING_OUT): the watchdog's deadlines apply,
 * and s->conn may be shut down with the lock held.  Lock held. */
bool session_connected(const struct session *s);

/* Shut the connection down because of @why (already logged by the caller):
 * the session goes DROPPING and the loop's error is only the echo.
 * Lock held, session_connected(). */
void session_drop_locked(struct session *s);

/* session_submit() with the lock held, also in SESSION_VERIFYING (for the
 * session's own commands).  Returns 0, or -1 with errno as
 * session_submit(). */
int session_submit_locked(struct session *s, struct iscsi_task *t);

/* A task whose status came (or that was aborted) and that no TX item
 * points at any more: done(), or, aborted, sent again.  No lock held. */
void session_task_end(struct session *s, struct iscsi_task *t);

/* Take ExpCmdSN/MaxCmdSN from a target PDU; RFC 7143 §4.2.2.1: ignore a
 * MaxCmdSN below ExpCmdSN - 1 and values that go backwards.  Returns
 * whether it opened a window that a command found closed (the owner is
 * then worth a kick).  Lock held. */
bool session_update_window(struct session *s, uint32_t exp_cmdsn, uint32_t max_cmdsn);

/* ExpStatSN past @statsn.  Lock held. */
void session_update_statsn(struct session *s, uint32_t statsn);

/* The task of ITT @itt in the table, or NULL.  Lock held. */
struct iscsi_task *session_find_task(struct session *s, uint32_t itt);

/* Take a task out of the table; returns whether done() is due now (no TX
 * item holds it).  Lock held. */
bool session_finish_task(struct session *s, struct iscsi_task *t);

/* Send @t again (on any session of the owner) after the target aborted
 * it, or fail it with EIO when it has cost too much already or there is
 * no owner to take it.  No lock held. */
void session_reissue(struct session *s, struct iscsi_task *t);

/* Tell the owner: room again (ops->kick), or give it @list to send again
 * (ops->requeue; without one every task of it fails with EIO; @list may
 * be NULL).  No lock held. */
void session_owner_kick(struct session *s);
void session_owner_requeue(struct session *s, struct iscsi_task *list);

/* A protocol violation on the loop: say what (err_set()) and return
 * -1 from the handler, which fails the connection. */
#define VIOLATION(s, ...)                                                   \
	do {                                                                \
		err_set(EPROTO, __VA_ARGS__);                               \
		return -1;                                                  \
	} while (0)

/* A Logout the target asked for (DRAINING) goes now if nothing is
 * outstanding: LOGGING_OUT, the Logout queued.  Lock held. */
void session_logout_if_drained_locked(struct session *s);

/* ---- session_rx.c, for session_recover.c ---- */

/* Ready the receiver for the connection in s->conn (the loop, before it
 * watches the socket). */
void session_rx_setup(struct session *s);

/* The socket is readable: receive without waiting and handle every PDU
 * that came.  Returns 0 (nothing more now), 1 (our logout completed) or
 * -1 with err_set() (the connection failed).  The loop only. */
int session_rx_ready(struct session *s);

/* ---- session_recover.c, for session.c ---- */

/* The next count of logins of the process, for s->login_seq. */
uint64_t session_next_login_seq(void);

/* Take the outcome @lr of a login: negotiated parameters, TSIH, the
 * sequence numbers, and the next login_seq.  Before the session has a
 * loop (session_start()), or under s->lock by the recovery. */
void session_take_login(struct session *s, const struct login_result *lr);

/* Portals of cfg: at least the one of cfg->host. */
unsigned session_portal_count(const struct session_config *cfg);

/* Let the next logins go to entry @i (modulo their number) of cfg's
 * portals.  As session_take_portal(). */
void session_use_portal(struct session *s, unsigned i);

/* After a login of @s: a permanent redirect (login_result.moved) sends the
 * later logins of this session straight to the portal it named; a
 * temporary one applies to that login only, so the next goes to the
 * portal of before.  Per session, since cfg is shared read-only: the other
 * sessions of the pool follow their own redirects.  The recovery, or
 * the first login's waiter before the session starts. */
void session_take_portal(struct session *s, const struct login_result *lr);

/* A session for slot @index of its owner, not connected (no socket, no
 * loop), named "session N".  NULL with err_set() on ENOMEM.  session.c. */
struct session *session_alloc(const struct session_owner_ops *ops, void *owner,
			      const struct session_config *cfg, unsigned index);

/* Take the outcome @lr of the login on s->conn and hand the connection to
 * an event loop (s->loop, or one assigned now): the session moves from
 * LOGGING_IN to @first (SESSION_FULL_FEATURE, or SESSION_VERIFYING for
 * session_attach_fd_verifying()).  Not on a loop (it waits for the loop to
 * attach the session).  Returns 0, or -1 with err_set(); the caller still
 * owns s->conn then.  session.c. */
int session_start(struct session *s, const struct login_result *lr, enum session_state first);

/* Set up the session's call, timer and socket watch.  Returns 0. */
int session_recovery_init(struct session *s);

/* On the loop: watch the connection in s->conn (non-blocking), and send
 * what was queued before.  A failure is a lost connection. */
void session_attach_loop(struct session *s);

/* On the loop (evloop_run_sync()), for session_logout_and_free(): cancel
 * the timer, a login attempt under way and the posted calls, stop watching
 * the socket, and end the session (CLOSED) if it is not yet. */
void session_close_on_loop(void *arg);

/* The connection is gone or closing: everything out of the session (see
 * session_recover.c).  The loop only. */
enum session_state session_stop(struct session *s, enum session_state next, bool requeue);

/* Take out of s->pinned the writes @take(@s, task, @arg) says, in their
 * order (NULL when none).  Lock held. */
struct iscsi_task *session_take_pinned_locked(struct session *s,
					      bool (*take)(const struct session *s,
							   const struct iscsi_task *t,
							   const void *arg),
					      const void *arg);

/* Writes pinned for @s (taken out of s->pinned by the caller) may go now:
 * nothing of the connection they were on can land any more, or the
 * replacement timeout passed.  Those out of tries fail with EIO, the
 * others go to the owner.  No lock held. */
void session_release_pinned(struct session *s, struct iscsi_task *list);

/* ---- session_tmf.c, for session.c ---- */

/* The Task Management Function Response: the aborted tasks go out again;
 * an abort the target refused becomes an LU reset; a reset it refused
 * fails the connection.  The loop, no lock held.  Returns 0, or -1 with
 * err_set(). */
int session_rx_tmf_rsp(struct session *s, const union iscsi_bhs *bhs);

/* The cmd_timeout deadlines of session_tick(): start the next function
 * for a command or TMF overdue, or say in @why (@why_len bytes) why the
 * connection is to be dropped.  Lock held, session_connected(). */
void session_tmf_tick_locked(struct session *s, int64_t now, char *why, size_t why_len);

/* The request of the function out went on the wire with CmdSN @cmdsn
 * (TMF_QUEUED -> TMF_SENT).  The sender, lock held. */
void session_tmf_sent_locked(struct session *s, uint32_t cmdsn);

/* The connection is gone: no function is out any more, none is due.
 * Lock held. */
void session_tmf_reset_locked(struct session *s);

/* The name of a task management state, and whether the move @from -> @to
 * is in its table (tests). */
const char *session_tmf_state_name(enum tmf_state state);
bool session_tmf_transition_legal(enum tmf_state from, enum tmf_state to);

/* ---- session_tx.c, for session.c ---- */

/* Queue a control PDU (Data-Out, NOP-Out, ping, Logout, TMF) to go before
 * the commands not yet sent.  Lock held.  Returns 0. */
int session_queue_ctl_locked(struct session *s, struct tx_item *it);

/* Have the loop send what is queued, unless someone holds the socket
 * (they send it before they let go) or it is full (EPOLLOUT does).  Lock
 * held. */
void session_tx_kick_locked(struct session *s);

/* The events the loop watches the socket for: EPOLLIN, and EPOLLOUT while
 * the socket is full.  Lock held. */
uint32_t session_sock_events(const struct session *s);

/* Tell the loop those events (after tx_blocked changed), if it watches the
 * socket.  Lock held. */
void session_watch_locked(struct session *s);

/* On the loop: send what is queued (s->tx_call). */
void session_tx_run(struct ev_call *call);

/* On the loop, the socket writable again: send the rest of the PDU the
 * full socket cut, then what is queued. */
void session_tx_resume(struct session *s);

/* The connection is gone: forget the partial PDU and drop its hold.
 * Returns the held task when that was its last reference and its status
 * came (the caller ends it), else NULL.  Lock held, nobody sending. */
struct iscsi_task *session_tx_forget_locked(struct session *s);

/* ---- session_verify.c, for session.c ---- */

/* A session that logged in again (SESSION_VERIFYING) starts checking the
 * identity of the LUNs its owner expects (ops->expected_luns); it goes
 * SESSION_FULL_FEATURE when done.  No lock held; the loop. */
void session_verify_start(struct session *s);

/* Begin the identity check of @luns (@n entries, malloc()ed; taken over),
 * or, with none, go SESSION_FULL_FEATURE at once.  As
 * session_verify_start(), which gets them from the owner; any thread, no
 * lock held. */
void session_verify_luns(struct session *s, struct lun_identity *luns, unsigned n);

/* Send the current step of the check again (after BUSY, NOT READY or a
 * full window).  Lock held, SESSION_VERIFYING, not VERIFY_IDLE. */
void session_verify_send_locked(struct session *s);

/* The check ends unfinished (the connection is gone, or the target asked
 * for a logout): back to VERIFY_IDLE, verify_luns freed.  Lock held. */
void session_verify_stop_locked(struct session *s);

/* The name of a step of the check, and whether the move @from -> @to is
 * in its table (tests). */
const char *session_verify_state_name(enum verify_state state);
bool session_verify_transition_legal(enum verify_state from, enum verify_state to);

#endif /* ISCSIFS_SESSION_INTERNAL_H */
