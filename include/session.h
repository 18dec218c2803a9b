/* session.h: one iSCSI session (one connection, MaxConnections=1) in full
 * feature phase: the task table, sequence numbers, and the two threads that
 * move PDUs.
 *
 * A task is one SCSI command.  Its owner fills in the CDB, direction,
 * buffers and a completion callback, and hands it to the pool, which gives
 * it to a session.  The session's TX thread sends the command and any
 * Data-Out; the RX thread places Data-In straight into the task's read
 * buffer, answers R2Ts by queueing Data-Out for the TX thread, and on the
 * final status calls task->done() exactly once, on a session thread (RX, or
 * TX when the status overtook the last Data-Out), with no lock held.
 */
#ifndef ISCSIFS_SESSION_H
#define ISCSIFS_SESSION_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "conn.h"
#include "text.h"

struct pool;
struct session;
struct login_result;
struct iscsi_task;
struct lun_identity;

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
	                               * (only losses that count, see stop_session()) */
	uint64_t lost_at_login;       /* the count of logins (session.c) when it was
	                               * last taken off a lost connection */

	/* Session's bookkeeping; protected by the session lock. */
	struct session *session;      /* the session that carries it */
	uint32_t itt;                 /* Initiator Task Tag */
	uint32_t cmdsn;               /* CmdSN it was sent with */
	uint32_t exp_datasn;          /* next Data-In DataSN expected */
	uint32_t r2t_outstanding;     /* R2Ts received and not yet fully answered */
	uint32_t data_out_asked;      /* WRITE: payload bytes the target has been
	                               * sent or asked for: the first burst
	                               * (send_command()) plus each R2T's length,
	                               * at most xfer_len; a GOOD status before it
	                               * reaches xfer_len is a lie (rx_scsi_rsp()) */
	unsigned tx_refs;             /* TX items still pointing at this task */
	bool finished;                /* status received (or aborted); done() once
	                               * tx_refs is 0 */
	bool reissue_when_released;   /* the target aborted it: once tx_refs is 0 it
	                               * goes back to the pool instead of done() */
	bool on_wire;                 /* the TX thread (or its submitter, sending it
	                               * inline) began sending it on the current
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

/* States of a session. */
enum session_state {
	SESSION_DOWN = 0,     /* finished: logged out, or closed for good */
	SESSION_UP,           /* full feature phase; accepts commands */
	SESSION_RECOVERING,   /* connection lost; logging in again (same ISID);
	                       * its tasks went back to the pool */
	SESSION_CLOSING,      /* logout requested; accepts no commands */
	SESSION_VERIFYING,    /* logged in again; checking with commands of its
	                       * own that every LUN of the pool is the one
	                       * probed (pool_expect_lun()); accepts no commands
	                       * of the pool until it is UP */
};

/* Log in a session for slot @index of @pool.  Synchronous.  Returns the
 * session in SESSION_UP with its threads running, or NULL with err_set(). */
struct session *session_login(struct pool *pool, const struct session_config *cfg,
			      unsigned index);

/* For tests and fuzz harnesses: a session over @fd, a stream socket that
 * is already connected and logged in with the outcome @lr (parameters,
 * sequence numbers; the conn's digests follow lr->params).  @pool may be
 * NULL: then nothing is kicked or requeued, and tasks go in through
 * session_submit().  Unlike session_login(), a lost connection is not
 * recovered: the session goes SESSION_DOWN and its tasks fail with EIO.
 * The session owns @fd, also on failure.  Returns the session in
 * SESSION_UP with its threads running, or NULL with err_set(). */
struct session *session_attach_fd(struct pool *pool, const struct session_config *cfg,
				  unsigned index, int fd, const struct login_result *lr);

/* For the fuzz harness: session_attach_fd(), but the session begins as
 * one that has just logged in again: SESSION_VERIFYING, checking with
 * commands of its own that the @n LUNs of @ids (copied) are the ones they
 * were, before it is SESSION_UP (session_submit() fails with EIO until
 * then).  With @pool NULL a LUN found to be another is marked nowhere.
 * Returns the session, or NULL with err_set(); it owns @fd as
 * session_attach_fd() does. */
struct session *session_attach_fd_verifying(struct pool *pool, const struct session_config *cfg,
					    unsigned index, int fd, const struct login_result *lr,
					    const struct lun_identity *ids, unsigned n);

/* Try to take @task: it fits in the CmdSN window and under queue_depth.
 * Returns 0 (accepted; done() will be called), or -1 with errno EAGAIN
 * (window or depth full: try another session or queue it) or EIO (the
 * session is not up). */
int session_submit(struct session *s, struct iscsi_task *task);

/* Let the calling thread send the commands it submits itself when the
 * session has nothing else to send (FUSE workers: it spares a TX thread
 * wakeup per command).  Such a thread must call session_send_pending()
 * after each session_submit(), once it holds no lock (the pool does). */
void session_inline_sends(bool allowed);

/* Send the command the last session_submit() of this thread kept for it,
 * if any.  Called with no lock held. */
void session_send_pending(void);

/* Outstanding bytes, for choosing the least loaded session (approximate,
 * no lock). */
uint64_t session_load(const struct session *s);

/* Whether the session accepts commands (approximate, no lock). */
bool session_is_up(const struct session *s);

/* The session's state (approximate, no lock). */
enum session_state session_state_hint(const struct session *s);

/* Called about once a second by the pool's watchdog: sends a keepalive
 * NOP-Out after noop_interval_s of silence, and drops the connection (which
 * then recovers) when the NOP-In is late.  A command over cmd_timeout_s
 * is aborted (ABORT TASK) and sent again; an abort refused or unanswered
 * for cmd_timeout_s becomes a LOGICAL UNIT RESET, and a reset refused or
 * unanswered as long drops the connection (so does an ABORT TASK SET,
 * see session_lun_reset_elsewhere(), unanswered as long). */
void session_tick(struct session *s);

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

/* The negotiated parameters (read-only once up). */
const struct iscsi_params *session_params(const struct session *s);

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
