/* pool.h: the sessions of one target, and the queue in front of them.
 *
 * See the thread model notes at the top of pool.c.
 */
#ifndef ISCSIFS_POOL_H
#define ISCSIFS_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "session.h"

struct pool;

/* What a LUN of the mount was when it was probed, so that a session that
 * logs in again can tell it is still the same LUN (see recover() in
 * session.c). */
struct lun_identity {
	uint32_t lun;                 /* LUN number */
	char serial[128];             /* VPD 0x80 unit serial at the probe, "" if none */
	char device_id[128];          /* VPD 0x83 designator at the probe, "" if none */
	uint32_t block_size;          /* logical block size in bytes */
	uint64_t blocks;              /* capacity in blocks, as last read */
};

/* Log in @nsessions sessions to the target of @cfg.  All must succeed for
 * start-up to succeed (a partial pool would hide a misconfiguration).
 * I/O waits up to @replacement_timeout_s for a lost session to come back.
 * Returns the pool, or NULL with err_set() from the first failure. */
struct pool *pool_create(const struct session_config *cfg, unsigned nsessions,
			 unsigned replacement_timeout_s);

/* A session lost its connection: put its tasks (a list linked by ->next,
 * in CmdSN order; may be NULL) back at the head of the queue and dispatch
 * them again.  Also used by a session that is back for the writes it held
 * meanwhile (stop_session() in session.c). */
void pool_requeue(struct pool *p, struct iscsi_task *list);

/* Hand @task to the least loaded session, or queue it (FIFO) when every
 * session's window is full.  task->done() is always called exactly once,
 * possibly before this returns (immediate failure: no session up). */
void pool_submit(struct pool *p, struct iscsi_task *task);

/* Submit and wait: for start-up and the slow paths (RMW, SYNCHRONIZE
 * CACHE).  Returns task->result as 0 or -1 with errno set; the SCSI status
 * and sense are in @task.  @task->done must be NULL (the pool sets it). */
int pool_exec(struct pool *p, struct iscsi_task *task);

/* Count one more task as in flight without submitting it (a retry that
 * waits for its backoff, see retry.h): pool_destroy() waits for it as for
 * a submitted task.  Each pool_hold() is ended by one pool_release(),
 * after the task was submitted again (or finished). */
void pool_hold(struct pool *p);
void pool_release(struct pool *p);

/* Called by a session when it has room again (a task finished, the window
 * opened): moves queued tasks onto sessions.  Called with no lock held.
 * Does nothing when @p is NULL (a session attached without a pool by
 * session_attach_fd()). */
void pool_kick(struct pool *p);

/* Wait (up to @timeout_ms) for every submitted task to finish, log out
 * every session and free the pool.  Logs nothing of its own: it also ends
 * a failed start-up, whose message must stay the only line. */
void pool_destroy(struct pool *p, int timeout_ms);

/* Register (or update, after the capacity was read again) what LUN
 * @id->lun is: every session that logs in again checks it before it
 * carries commands.  Target layer; any thread but a session's. */
void pool_expect_lun(struct pool *p, const struct lun_identity *id);

/* LUN @lun is no longer part of the mount (its file was removed): a
 * session that logs in again does not check it.  Target layer. */
void pool_forget_lun(struct pool *p, uint32_t lun);

/* The hook the identity check calls when a LUN grew while a session was
 * away (nothing else changed): on a session thread, no lock held; it must
 * not block or wait for commands.  Set by the owner after pool_create(). */
typedef void (*pool_grew_fn)(uint32_t lun, void *opaque);
void pool_set_grew_hook(struct pool *p, pool_grew_fn fn, void *opaque);

/* A session found LUN @lun grown to @blocks: unless the pool knows that
 * capacity already (another session said so, or it was read again), take
 * it as the LUN's, tell the pool's owner (pool_set_grew_hook()) and
 * return true, so that only the first session says it in the log. */
bool pool_lun_grew(struct pool *p, uint32_t lun, uint64_t blocks);

/* Session @from reset LUN @lun (LOGICAL UNIT RESET, function complete),
 * which ended the commands of every other session there too: each of
 * them with commands on it aborts its task set of that LUN and sends
 * again what that ends (session_lun_reset_elsewhere()).  A session's RX
 * thread, no lock held. */
void pool_lun_reset(struct pool *p, const struct session *from, uint32_t lun);

/* A copy of the identities to check, leaving out LUNs already replaced:
 * their number, and a malloc()ed array in *@out (NULL when 0).  Returns
 * -1 with err_set() on ENOMEM. */
int pool_expected_luns(struct pool *p, struct lun_identity **out);

/* LUN @lun is not the one probed (a session found another serial, block
 * size, a smaller capacity, or no LUN): from now on every command for it
 * fails with EIO, those waiting in the queue at once.  Returns true when
 * this call marked it (the caller logs it), false when it already was
 * (or @p is NULL: a session attached without a pool). */
bool pool_lun_replaced(struct pool *p, uint32_t lun);

/* How many LUNs were found replaced (for the stats file). */
unsigned pool_replaced_count(struct pool *p);

/* One info line per session with its counters (at unmount). */
void pool_log_stats(struct pool *p);

/* The negotiated parameters of the pool's first session. */
const struct iscsi_params *pool_params(const struct pool *p);

/* Number of sessions, and statistics of session @i. */
unsigned pool_size(const struct pool *p);
void pool_session_stats(struct pool *p, unsigned i, struct session_stats *out);

#endif /* ISCSIFS_POOL_H */
