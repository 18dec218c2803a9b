/* pool.h: the sessions of one target, and the queue in front of them.
 *
 * The pool owns its sessions and calls down into them (session.h); they
 * tell it what happened only through the callbacks it gives each one at
 * creation (struct session_owner_ops, in pool.c), so nothing here is for
 * the sessions.  See the thread model notes at the top of pool.c.
 */
#ifndef ISCSIFS_POOL_H
#define ISCSIFS_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "session.h"

struct pool;

/* (struct lun_identity, what a LUN was at the probe, is in session.h: the
 * identity check of a session compares with it.) */

/* Log in @nsessions sessions to the target of @cfg.  All must succeed for
 * start-up to succeed (a partial pool would hide a misconfiguration).
 * I/O waits up to @replacement_timeout_s for a lost session to come back.
 * Returns the pool, or NULL with err_set() from the first failure. */
struct pool *pool_create(const struct session_config *cfg, unsigned nsessions,
			 unsigned replacement_timeout_s);

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

/* Wait (up to @timeout_ms) for every submitted task to finish, log out
 * every session and free the pool.  Logs nothing of its own: it also ends
 * a failed start-up, whose message must stay the only line. */
void pool_destroy(struct pool *p, int timeout_ms);

/* Register what LUN @id->lun is, as a new LUN object probed it (again,
 * when its file was gone and is back): every session that logs in again
 * checks it before it carries commands (pool_lun_resized() follows its
 * capacity).  Target layer; any thread but a session's.  Returns 0, or -1
 * with err_set(ENOMEM): the LUN must then get no file (none of its tasks
 * could be told from an old object's). */
int pool_expect_lun(struct pool *p, const struct lun_identity *id);

/* LUN @lun is no longer part of the mount (its file was removed): a
 * session that logs in again does not check it.  Target layer. */
void pool_forget_lun(struct pool *p, uint32_t lun);

/* Whether an identity check met a deferred error saying an earlier write
 * to LUN @lun was lost since the last call (cleared: said once): the
 * LUN's fsync then fails with EIO.  Any thread; takes the pool lock. */
bool pool_take_writes_lost(struct pool *p, uint32_t lun);

/* Session @s answered a command of LUN @lun with NOT READY, TARGET PORT
 * IN STANDBY or UNAVAILABLE STATE: its target port cannot reach that LU
 * now (ALUA states are per LU group: the other LUNs keep the session).
 * For @ms from now the pool sends the LUN's commands to its other
 * sessions, to @s only when none of them is up; said once in the log per
 * spell.  Nothing is avoided for a LUN without a record
 * (pool_expect_lun()).  Returns whether another session is up and not
 * avoided for it (a command sent again goes there at once). */
bool pool_avoid_session(struct pool *p, const struct session *s, uint32_t lun, unsigned ms);

/* The hook the identity check calls with what changed on LUN @lun that
 * the owner's commands cannot have seen: SCSI_CHANGE_CAPACITY when it grew
 * while a session was away (nothing else changed; the first session to
 * see it) or a Unit Attention of the check said its capacity changed,
 * SCSI_CHANGE_LUNS when one said the LUN list changed; SCSI_CHANGE_IDENTITY
 * (@lun 0: any) when a session is back after the replacement timeout and
 * LUNs are held, to be checked now.  On a session
 * thread, no lock held; it must not block or wait for commands.  Set by
 * the owner after pool_create(). */
typedef void (*pool_change_fn)(uint32_t lun, enum scsi_change what, void *opaque);
void pool_set_change_hook(struct pool *p, pool_change_fn fn, void *opaque);

/* Tell the pool's owner (its change hook) of @what on LUN @lun: also
 * from the LUN layer, for a Unit Attention met by a command of a LUN
 * without a file of its own (lun.c).  No lock held. */
void pool_tell_change(struct pool *p, uint32_t lun, enum scsi_change what);

/* LUN @lun is no longer what the mount probed (a rescan found another
 * logical block size): from now on its commands fail with EIO, as when a
 * session that logs in again finds it replaced.  Target layer; no pool
 * lock held. */
void pool_lun_unusable(struct pool *p, uint32_t lun);

/* LUN @lun has @blocks blocks now, as the target layer read it again:
 * what a session that logs in again checks.  Unlike pool_expect_lun(),
 * it leaves a LUN found replaced as it is (only a probe makes it usable
 * again).  Target layer. */
void pool_lun_resized(struct pool *p, uint32_t lun, uint64_t blocks);

/* A Unit Attention said LUN @lun may be another unit now: hold its
 * commands (but those marked past_hold, which check it) until
 * pool_release_lun(), or fail them with EIO when it is found replaced
 * (pool_lun_unusable()) or forgotten (pool_forget_lun()).  Returns true
 * when this call held it: the caller then has it checked; false when it
 * was held already, is replaced, or is no LUN of the mount.  Any thread,
 * no pool lock held. */
bool pool_hold_lun(struct pool *p, uint32_t lun);

/* Every held LUN's check could not be done: what waits for it fails with
 * EIO now, and its tasks fail at once until pool_release_lun() (or it is
 * replaced); one error line each.  Returns how many it marked.  Any
 * thread, no lock of the pool's owner held (what waited fails). */
unsigned pool_hold_failing_all(struct pool *p);

/* Whether LUN @lun is held and its check was given up
 * (pool_hold_failing_all()).  Target layer. */
bool pool_lun_is_held_failing(struct pool *p, uint32_t lun);

/* Whether LUN @lun is held (pool_hold_lun()).  Target layer. */
bool pool_lun_is_held(struct pool *p, uint32_t lun);

/* LUN @lun was checked to be the unit probed: what waited for that goes
 * on, at the head of the queue, in order.  Target layer. */
void pool_release_lun(struct pool *p, uint32_t lun);

/* Whether LUN @lun was found replaced or unusable (its commands fail).
 * Target layer. */
bool pool_lun_is_replaced(struct pool *p, uint32_t lun);

/* How many LUNs were found replaced (for the stats file). */
unsigned pool_replaced_count(struct pool *p);

/* One info line per session with its counters (at unmount). */
void pool_log_stats(struct pool *p);

/* A copy of the negotiated parameters of the pool's first session (taken
 * under its lock: a reconnect may be writing them). */
void pool_params(const struct pool *p, struct iscsi_params *out);

/* Number of sessions, and statistics of session @i. */
unsigned pool_size(const struct pool *p);
void pool_session_stats(struct pool *p, unsigned i, struct session_stats *out);

#endif /* ISCSIFS_POOL_H */
