/* session.h: one iSCSI session (one connection, MaxConnections=1): the
 * task table, sequence numbers, its socket on an event loop, and the
 * state machine of its life (enum session_state).
 *
 * A task is one SCSI command.  Its owner fills in the CDB, direction,
 * buffers and a completion callback, and hands it to the pool, which gives
 * it to a session.  The loop that submits it, or the session's own event
 * loop, sends the command and any Data-Out; the session's loop places
 * Data-In straight into the task's read buffer, answers R2Ts by queueing
 * Data-Out, and on the final status calls task->done() exactly once, with
 * no lock held: on that loop, or on the loop that was still sending the
 * task's data when the status overtook it.
 *
 * Layers call down; news travels up only through callbacks.  A session
 * knows nothing of the pool that owns it: it is given a table of
 * callbacks (struct session_owner_ops) and an opaque pointer when it is
 * created, and tells its owner through them that it has room again, that
 * tasks are to be sent again elsewhere, that it reset a LUN, or what the
 * identity check found.  Each callback is optional; a session without an
 * owner (tests, fuzz harnesses) does the least: nothing is kicked, and a
 * task it would hand back fails with EIO.
 */
#ifndef ISCSIFS_SESSION_H
#define ISCSIFS_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "conn.h"
#include "scsi.h"
#include "text.h"

struct evloop;

struct pool;
struct session;
struct login_result;
struct iscsi_task;

/* Where a task's data flows. */
enum task_dir {
	TASK_DIR_NONE = 0,   /* no data (TEST UNIT READY, SYNCHRONIZE CACHE) */
	TASK_DIR_READ,       /* Data-In into read_buf */
	TASK_DIR_WRITE,      /* Data-Out from write_iov */
};

typedef void (*task_done_fn)(struct iscsi_task *task);

/* A SCSI command and, once done, its outcome. */
struct iscsi_task {
	/* Set by the owner before submitting; not changed after. */
	uint32_t lun;                 /* LUN number */
	uint8_t cdb[16];              /* the CDB, zero padded */
	enum task_dir dir;            /* data direction */
	uint32_t xfer_len;            /* Expected Data Transfer Length in bytes */
	uint8_t *read_buf;            /* READ: xfer_len bytes of room */
	const struct iovec *write_iov;/* WRITE: the payload (xfer_len bytes) */
	int write_iovcnt;             /* number of entries in write_iov */
	task_done_fn done;            /* called once when the task ends */
	void *opaque;                 /* for the owner */
	uint64_t incarnation;         /* the LUN object's (lun.h) for the data
	                               * path, 0 for the rest: the pool fails it
	                               * once its LUN number is another object's
	                               * or no file's (pool.c task_retired()) */
	bool past_hold;               /* goes out while its LUN is held (pool.h
	                               * pool_hold_lun()): a command that asks
	                               * the unit what it is, not one of the data
	                               * path */

	/* Outcome, valid in done(). */
	int result;                   /* 0: SCSI status below is valid; else an
	                               * errno for a transport failure (EIO) */
	uint8_t response;             /* iSCSI Response of the SCSI Response PDU
	                               * (RFC 7143 11.4.3): not 0, the target
	                               * failed the command and status means
	                               * nothing; scsi_outcome() decides */
	uint8_t status;               /* SCSI status byte */
	uint8_t sense[96];            /* sense data (without length prefix) */
	uint32_t sense_len;           /* bytes valid in sense */
	uint32_t residual;            /* residual count */
	bool underflow;               /* fewer bytes moved than xfer_len */
	bool overflow;                /* the target wanted to move more */
	uint32_t data_in_bytes;       /* bytes of Data-In placed in read_buf */
	int64_t sent_ns;              /* when the session took it (monotonic), for cmd_timeout */
	unsigned reissues;            /* times it was sent again after a lost connection
	                               * (only losses that count, see session_stop()) */
	uint64_t lost_at_login;       /* the count of logins (session.c) when it was
	                               * last taken off a lost connection */

	/* Session's bookkeeping; protected by the session lock. */
	int64_t pinned_ns;            /* pinned: when (monotonic); it may go to
	                               * other sessions after the replacement
	                               * timeout from then (session_tick()) */
	int32_t lost_tpgt;            /* pinned: the portal group tag of the lost
	                               * connection it was on, -1 when the target
	                               * gave none (session_stop()) */
	bool out_of_tries;            /* a write that was on the wire and has cost
	                               * more than MAX_REISSUES connections: it
	                               * waits pinned like any such write, then
	                               * fails with EIO instead of going again
	                               * (session_stop()) */
	struct session *session;      /* the session that carries it */
	uint32_t itt;                 /* Initiator Task Tag */
	uint32_t cmdsn;               /* CmdSN it was sent with */
	uint32_t exp_datasn;          /* next Data-In DataSN expected */
	uint32_t exp_r2tsn;           /* next R2T R2TSN expected (from 0 per command) */
	uint32_t r2t_outstanding;     /* R2Ts received and not yet fully answered */
	uint32_t data_out_asked;      /* WRITE: payload bytes from offset 0 on the
	                               * target has been sent or asked for without
	                               * a gap: the first burst (send_command()),
	                               * then each R2T's range; a status that says
	                               * done before it reaches xfer_len is a lie
	                               * (rx_scsi_rsp() for GOOD; task_verdict()) */
	unsigned tx_refs;             /* TX items still pointing at this task */
	bool finished;                /* status received (or aborted); done() once
	                               * tx_refs is 0 */
	bool reissue_when_released;   /* the target aborted it: once tx_refs is 0 it
	                               * goes back to the pool instead of done() */
	bool on_wire;                 /* a sender began sending it on the current
	                               * connection */
	struct iscsi_task *next;      /* pool queue or session command queue link */

	/* Pool's bookkeeping, set by pool_submit(). */
	struct pool *pool;            /* the pool it was submitted to */
	task_done_fn owner_done;      /* the owner's done(), restored before it runs */
};

/* Most portals of a target a session fails over between. */
#define SESSION_MAX_PORTALS 8

/* One portal of a target. */
struct session_portal {
	char host[256];               /* name or address, IPv6 without brackets */
	uint16_t port;                /* TCP port */
};

/* What a session needs to log in; shared by all sessions of a pool and
 * read-only once the pool is created. */
struct session_config {
	char host[256];               /* portal host (the first of portals) */
	uint16_t port;                /* portal port */
	struct session_portal portals[SESSION_MAX_PORTALS]; /* every portal of the target
	                               * (SendTargets): session i logs in at
	                               * portals[i % nportals] first, and a session whose
	                               * portal fails tries the next one */
	unsigned nportals;            /* entries of portals; 0: host:port alone */
	char target_name[224];        /* TargetName */
	char initiator_name[224];     /* InitiatorName */
	struct text_config text;      /* what we offer in login */
	unsigned queue_depth;         /* our cap on outstanding commands */
	int connect_timeout_ms;       /* connect and each login PDU */
	unsigned noop_interval_s;     /* keepalive NOP-Out after this much silence; 0 = off */
	unsigned noop_timeout_s;      /* connection failed when the NOP-In is this late */
	unsigned cmd_timeout_s;       /* connection dropped when a command is this late; 0 = off */
	unsigned replacement_timeout_s; /* how long the writes of a lost connection wait
	                               * for their session to be back before another
	                               * session may send them (set by pool_create()) */
	uint8_t isid_base[6];         /* ISID; the last byte is the slot index */
};

/* What a LUN of the mount was when it was probed, so that a session that
 * logs in again can tell it is still the same LUN (session_verify.c). */
struct lun_identity {
	uint32_t lun;                 /* LUN number */
	char serial[128];             /* VPD 0x80 unit serial at the probe, "" if none */
	char device_id[128];          /* VPD 0x83 designator at the probe, "" if none */
	uint32_t block_size;          /* logical block size in bytes */
	uint64_t blocks;              /* capacity in blocks, as last read */
	uint64_t incarnation;         /* the LUN object probed (lun.h): the data
	                               * path's tasks carry it (iscsi_task) */
};

/* The states of a session.  Only session_set_state() (session.c) changes
 * it, under the session lock, and only along the moves of its table of
 * legal transitions (a debug line each):
 *   LOGGING_IN     -> FULL_FEATURE (first login) or VERIFYING (again), or
 *                     back to RECONNECT_WAIT when the attempt failed;
 *   VERIFYING      -> FULL_FEATURE once every LUN is checked;
 *   FULL_FEATURE, VERIFYING -> DRAINING (the target asks for a logout)
 *                     -> LOGGING_OUT (nothing outstanding, Logout queued);
 *   VERIFYING, FULL_FEATURE, DRAINING, LOGGING_OUT (connected) ->
 *                     DROPPING (we shut the connection down) or
 *                     RECONNECT_WAIT (it failed: tasks given back);
 *   DROPPING       -> RECONNECT_WAIT -> LOGGING_IN;
 *   every state but CLOSED -> CLOSING (our logout) and CLOSED (for good).
 * A move the table does not allow is a bug: session_set_state() logs it
 * and aborts, except in a build with NDEBUG, where it logs it as an error
 * and makes the move anyway (the daemon keeps serving the other sessions,
 * and what asked for the move is the best guess of what is true). */
enum session_state {
	SESSION_LOGGING_IN = 0,   /* a login is under way: the first (before the
	                           * session has a loop) or, after a loss, an
	                           * attempt on the loop (login_loop.h); no connection */
	SESSION_VERIFYING,        /* logged in again: checking with commands of its
	                           * own that every LUN of the owner is the one
	                           * probed (session_verify.c); accepts none of the
	                           * owner's commands until FULL_FEATURE */
	SESSION_FULL_FEATURE,     /* full feature phase: accepts commands */
	SESSION_DRAINING,         /* the target asked for a logout (Async Message:
	                           * logout or renegotiation): no new commands
	                           * (EAGAIN), the outstanding ones finish, then
	                           * LOGGING_OUT; dropped at the target's deadline */
	SESSION_LOGGING_OUT,      /* the Logout the target asked for is queued or
	                           * sent; its answer ends the connection, which is
	                           * then recovered (DROPPING) */
	SESSION_DROPPING,         /* we shut the connection down (timeout, failed
	                           * send, failed identity check, the target's
	                           * logout done) and logged why: the loop's
	                           * error is only its echo; then RECONNECT_WAIT */
	SESSION_RECONNECT_WAIT,   /* connection lost, its tasks given back (writes
	                           * on the wire pinned): the loop waits
	                           * Time2Wait or the backoff before LOGGING_IN */
	SESSION_CLOSING,          /* our logout (session_logout_and_free()): no
	                           * commands; a recovery in progress gives up */
	SESSION_CLOSED,           /* for good: logged out, failed without recovery
	                           * (session_attach_fd()), or closed; every task
	                           * has ended and the loop lets go of it */
};
/* Number of states (for tables indexed by state). */
#define SESSION_STATES (SESSION_CLOSED + 1)

/* The name of @state for log lines ("full feature", ...). */
const char *session_state_name(enum session_state state);

/* Whether the state table allows the move @from -> @to (tests). */
bool session_transition_legal(enum session_state from, enum session_state to);

/* How a session tells its owner what happened: every member may be NULL
 * (then the session does what the comment says); @owner is the opaque
 * pointer given at creation.  None is called with a session lock held
 * unless its comment says so, and none may call back into the session
 * that calls it except as said. */
struct session_owner_ops {
	/* The session has room again (a task ended, the window opened, the
	 * session is back): move waiting work onto sessions.  Any thread;
	 * the session's loop calls it once for all the PDUs of one recv(),
	 * not once per PDU.  NULL: nothing is waiting anywhere. */
	void (*kick)(void *owner);
	/* Send the tasks of @list (linked by ->next, in CmdSN order; never
	 * NULL) again on any session: taken off a lost connection, aborted by
	 * the target, or pinned writes released.  The owner now holds them.
	 * NULL: each fails with EIO. */
	void (*requeue)(void *owner, struct iscsi_task *list);
	/* Session @from reset LUN @lun (LOGICAL UNIT RESET, function
	 * complete), which ended the commands of every other session there
	 * too (session_lun_reset_elsewhere()).  The loop.  NULL: ignored. */
	void (*lun_reset)(void *owner, const struct session *from, uint32_t lun);
	/* The identity check found LUN @checked->lun to be another than
	 * @checked (the owner's copy it compared with), by its capacity or
	 * block size (@by_capacity) or else by what names the unit: from now
	 * on the owner fails its commands.  Returns true when this call
	 * marked it (the session logs it), false when it already was, or
	 * when the owner's record of what the verdict is about changed since
	 * the copy (a rescan took a new capacity meanwhile: the verdict is
	 * about an old record).  NULL: false. */
	bool (*lun_replaced)(void *owner, const struct lun_identity *checked, bool by_capacity);
	/* The identity check found LUN @lun grown to @blocks: returns true when
	 * that is news to the owner (the session logs it).  It must not block
	 * or wait for commands.  NULL: false. */
	bool (*lun_grew)(void *owner, uint32_t lun, uint64_t blocks);
	/* A command of the identity check of LUN @lun failed on the target
	 * (not the connection: a HARDWARE ERROR, a refusal, retries used up):
	 * the check goes on without it, and the owner holds the LUN's
	 * commands until it has checked the LUN itself, as after a Unit
	 * Attention that says it may be another unit.  Returns true when
	 * this call held it (the session logs it), false when it already
	 * was.  It must not block or wait for commands.  No lock held.
	 * NULL: the connection is dropped and the check done again after
	 * the next login. */
	bool (*lun_unchecked)(void *owner, uint32_t lun);
	/* A command of the identity check met a Unit Attention on LUN @lun
	 * that says @change (SCSI_CHANGE_CAPACITY or SCSI_CHANGE_LUNS; the
	 * check sends it again): what a command of the owner's would have
	 * passed on.  It must not block or wait for commands.  No lock held.
	 * NULL: ignored. */
	void (*unit_attention)(void *owner, uint32_t lun, enum scsi_change change);
	/* A command of the identity check met a deferred error of a failure
	 * kind on LUN @lun: data of a write acknowledged before (perhaps on
	 * the connection lost) may not have reached the medium, which the
	 * LUN's next fsync must say.  It must not block.  No lock held.
	 * NULL: ignored. */
	void (*writes_lost)(void *owner, uint32_t lun);
	/* The LUNs a session that logged in again checks: their number, and a
	 * malloc()ed array in *@out (NULL when 0) that the session frees;
	 * -1 with err_set() on failure (the connection is dropped).  The
	 * loop.  NULL: none (FULL_FEATURE at once). */
	int (*expected_luns)(void *owner, struct lun_identity **out);
	/* Observer: @s moved @from -> @to.  Called by session_set_state()
	 * with the session lock held: it must not call into the session.
	 * NULL: nobody watches. */
	void (*state_changed)(void *owner, const struct session *s, enum session_state from,
			      enum session_state to);
};

/* Log in a session for slot @index of its owner (@ops, @owner: see struct
 * session_owner_ops; @ops may be NULL): on its portal of cfg (entry @index
 * of them, modulo their number), then on the others in turn; on each, a
 * target that drops the login or answers "try later" is tried again with
 * backoff within cfg->connect_timeout_ms, as login_connect() with a
 * retry does (its messages too).  The login runs on the session's event
 * loop (session_login.c); the caller waits.  Not on a loop.  Returns the
 * session in SESSION_FULL_FEATURE, its socket on that loop, or NULL with
 * err_set(). */
struct session *session_login(const struct session_owner_ops *ops, void *owner,
			      const struct session_config *cfg, unsigned index);

/* session_login() of slots 0 .. @n - 1 into @out, all at once.  Returns 0,
 * or -1 with err_set() saying why the lowest slot that failed failed; the
 * sessions that logged in are logged out again then, and @out holds
 * NULLs. */
int session_login_all(const struct session_owner_ops *ops, void *owner,
		      const struct session_config *cfg, unsigned n, struct session **out);

/* For tests and fuzz harnesses: a session over @fd, a stream socket that
 * is already connected and logged in with the outcome @lr (parameters,
 * sequence numbers; the conn's digests follow lr->params), owned as
 * session_login() says (@ops and @owner may be NULL: then nothing is
 * kicked, tasks given back fail with EIO, and tasks go in through
 * session_submit()).  Unlike session_login(), a lost connection is not
 * recovered: the session goes SESSION_CLOSED and its tasks fail with EIO.
 * The session owns @fd, also on failure.  Returns the session in
 * SESSION_FULL_FEATURE on an event loop, or NULL with err_set(). */
struct session *session_attach_fd(const struct session_owner_ops *ops, void *owner,
				  const struct session_config *cfg, unsigned index, int fd,
				  const struct login_result *lr);

/* For the fuzz harness: session_attach_fd(), but the session begins as
 * one that has just logged in again: SESSION_VERIFYING, checking with
 * commands of its own that the @n LUNs of @ids (copied) are the ones they
 * were, before it is SESSION_FULL_FEATURE (session_submit() fails with EIO
 * until then).  What it finds goes to @ops as for any session.  Returns
 * the session, or NULL with err_set(); it owns @fd as session_attach_fd()
 * does. */
struct session *session_attach_fd_verifying(const struct session_owner_ops *ops, void *owner,
					    const struct session_config *cfg, unsigned index,
					    int fd, const struct login_result *lr,
					    const struct lun_identity *ids, unsigned n);

/* Try to take @task: it fits in the CmdSN window and under queue_depth.
 * Returns 0 (accepted; done() will be called), or -1 with errno EAGAIN
 * (window or depth full, or draining for a logout the target asked for:
 * try another session or queue it) or EIO (not in full feature phase). */
int session_submit(struct session *s, struct iscsi_task *task);

/* Send the command the last session_submit() of this thread kept for it,
 * if any.  Called with no lock held. */
void session_send_pending(void);

/* Outstanding bytes, for choosing the least loaded session (approximate,
 * no lock). */
uint64_t session_load(const struct session *s);

/* The event loop that owns the session's socket (read-only once it is
 * logged in). */
struct evloop *session_loop(const struct session *s);

/* Whether the session is in full feature phase on a live connection:
 * SESSION_FULL_FEATURE, or DRAINING or LOGGING_OUT (which answer
 * session_submit() with EAGAIN).  Approximate, no lock. */
bool session_is_up(const struct session *s);

/* Whether the session is logged in or working to be (every state but
 * CLOSING and CLOSED): its owner may wait for it.  Approximate, no lock. */
bool session_is_alive(const struct session *s);

/* The session's state (approximate, no lock). */
enum session_state session_state_hint(const struct session *s);

/* Called about once a second on the session's loop once
 * session_tick_start() was (tests and the fuzz harness call it
 * themselves): sends a keepalive
 * NOP-Out after noop_interval_s of silence, and drops the connection (which
 * then recovers) when the NOP-In is late.  A command over cmd_timeout_s
 * is aborted (ABORT TASK) and sent again; an abort refused or unanswered
 * for cmd_timeout_s becomes a LOGICAL UNIT RESET, and a reset refused or
 * unanswered as long drops the connection (so does an ABORT TASK SET,
 * see session_lun_reset_elsewhere(), unanswered as long). */
void session_tick(struct session *s);

/* Have the session tick itself: session_tick() every second on a timer of
 * its own loop, until it is closed, so that no other thread touches it
 * for its timeouts.  Its owner calls it once, from a thread that is no
 * loop (the pool, once the session is made). */
void session_tick_start(struct session *s);

/* For the fuzz harness: session_tick() as if @ahead_ns nanoseconds more
 * had passed, so that a cmd_timeout or a retry delay is over at once. */
void session_tick_ahead(struct session *s, int64_t ahead_ns);

/* Another session of the pool reset LUN @lun, which ended this session's
 * commands there too, maybe without a word (TAS=0): when it has any on
 * the wire, it sends ABORT TASK SET of that LUN (after the function it
 * has out, if any), and those it ends are sent again.  No lock held. */
void session_lun_reset_elsewhere(struct session *s, uint32_t lun);

/* Log out (waiting up to @timeout_ms for the answer), stop the threads,
 * fail whatever is still outstanding with EIO, and free.  */
void session_logout_and_free(struct session *s, int timeout_ms);

/* The same in two steps, so that many sessions log out at once: queue
 * the Logout (no command is taken after it), then wait until @deadline
 * (CLOCK_MONOTONIC, deadline.h) for its answer, stop and free.  Each
 * session_logout_start() is followed by one session_logout_finish(). */
void session_logout_start(struct session *s);
void session_logout_finish(struct session *s, const struct timespec *deadline);

/* A copy of the negotiated parameters of the session's last login (a
 * reconnect writes them anew, under the session lock, which this takes). */
void session_params_copy(struct session *s, struct iscsi_params *out);

/* Counters for the stats file and tests. */
struct session_stats {
	uint64_t commands;        /* SCSI commands sent */
	uint64_t r2ts;            /* R2Ts answered */
	uint64_t data_out_pdus;   /* Data-Out PDUs sent */
	uint64_t bytes_read;      /* Data-In payload received */
	uint64_t bytes_written;   /* write payload sent */
	uint64_t reconnects;      /* successful reconnects */
	uint64_t timeouts;        /* commands that exceeded cmd_timeout */
	uint64_t aborts;          /* ABORT TASKs sent for them */
	uint64_t lu_resets;       /* LOGICAL UNIT RESETs sent (an abort failed) */
	uint64_t abort_sets;      /* ABORT TASK SETs sent (another session reset the LUN) */
	uint64_t verifications;   /* identity checks of the LUNs completed after a login */
	uint64_t luns_replaced;   /* LUNs this session found to be another LUN */
};
void session_get_stats(struct session *s, struct session_stats *out);

#endif /* ISCSIFS_SESSION_H */
