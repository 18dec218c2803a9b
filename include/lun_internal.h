/* lun_internal.h: what lun.c, lun_read.c and lun_write.c share.  Not for
 * other modules: they use lun.h.
 */
#ifndef ISCSIFS_LUN_INTERNAL_H
#define ISCSIFS_LUN_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "deadline.h"
#include "lun.h"

/* How often a command is tried again after UNIT ATTENTION, NOT READY,
 * BUSY, NO SENSE, a deferred error and the like before the error is
 * returned. */
#define MAX_RETRIES 8
/* The pause before a retry after BUSY, TASK SET FULL, ACA ACTIVE or NOT
 * READY: RETRY_PAUSE_MS, doubling with each retry, at most
 * RETRY_PAUSE_MAX_MS; MAX_RETRIES of them come to about 2.3 s before the
 * command fails with EIO.  Unit Attentions and ABORTED COMMAND are retried
 * at once. */
#define RETRY_PAUSE_MS 10
#define RETRY_PAUSE_MAX_MS 1000
/* A LU in a transition (becoming ready, an ALUA state change: struct
 * scsi_outcome's transition) is given longer: TRANSITION_RETRIES retries,
 * the pauses growing as above, come to about 60 s, as Linux's ALUA
 * handler waits for a transition by default. */
#define TRANSITION_RETRIES 66
/* A target port that cannot reach a LU now (NOT READY, TARGET PORT IN
 * STANDBY or UNAVAILABLE STATE: ALUA) is avoided this long
 * (pool_avoid_session()): its session's commands go to the others, and
 * after it one command finds out whether the port serves again. */
#define PORT_AVOID_MS 5000

/* A line about a command of @l at @level, within the LUN's budget of
 * lines (lun.c): the lines a target can cause again and again go here. */
void lun_log(struct lun *l, enum log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* lun_fsync_async() that tells nothing of deferred errors (the fsyncs
 * do): the flush that stands in for FUA (lun_write.c). */
void lun_flush_quiet(struct lun *l, lun_write_cb cb, void *opaque);

/* What to do with a finished task. */
enum verdict {
	VERDICT_OK,          /* it did what was asked */
	VERDICT_RETRY,       /* worth sending again */
	VERDICT_FAIL,        /* give up with the errno returned */
	VERDICT_UNSUPPORTED, /* the LU does not implement it: the caller's
			      * fallback, else fail with the errno returned
			      * (EOPNOTSUPP) */
};

/* Decide what a finished task means, by scsi_outcome() (the one table of
 * SCSI outcomes), within MAX_RETRIES retries; logs the cause of failures,
 * retries and refusals (one line each, naming target and LUN, at the
 * table's level), counts retries and Unit Attentions, and passes changes
 * a Unit Attention reports to l->on_change.  Returns the verdict; sets
 * *err for VERDICT_FAIL and VERDICT_UNSUPPORTED and *delay_ms, the pause
 * before sending it again, for VERDICT_RETRY.  A READ or WRITE that the
 * table fails with EINVAL (ILLEGAL REQUEST without a rule of its own)
 * fails with EIO. */
enum verdict task_verdict(struct lun *l, const struct iscsi_task *t, unsigned retries,
			  int *err, unsigned *delay_ms);

/* task_verdict() of an asynchronous command, whose *@retries counts its
 * tries: a retry is sent from here (lun_resubmit() after the pause), and
 * then the caller has nothing more to do (VERDICT_RETRY). */
enum verdict task_verdict_resend(struct lun *l, struct iscsi_task *t, unsigned *retries,
				 int *err);

/* Send @t of @l again after @delay_ms (0: at once), as pool_submit(). */
void lun_resubmit(struct lun *l, struct iscsi_task *t, unsigned delay_ms);

/* READ or WRITE (16 or 10, as the LUN takes) of @blocks blocks at @lba. */
void build_rw_cdb(const struct lun *l, uint8_t cdb[16], bool write, bool fua, uint64_t lba,
		  uint32_t blocks);

/* Count a finished request submitted at @start_ns (mono_now_ns()): its
 * latency, or an error. */
void count_request(struct lun *l, int64_t start_ns, int err);

/* ---- the provisioning map (lun_sparse.c) ---- */

/* Give @l a map when it reports LBPME=1 and LBPRZ=1 (after READ
 * CAPACITY).  Returns 0, or -1 with err_set(ENOMEM). */
int lun_sparse_init(struct lun *l);
/* A write or discard of blocks of @l starts (before its commands go). */
void lun_sparse_changing(struct lun *l);
/* It ended, over blocks [@first, @end): @written, they hold data now;
 * else (a discard, a failure) what they hold is not known. */
void lun_sparse_changed(struct lun *l, uint64_t first, uint64_t end, bool written);
/* Forget what is known (a Unit Attention). */
void lun_sparse_drop(struct lun *l);
/* The capacity changed to @blocks. */
void lun_sparse_resize(struct lun *l, uint64_t blocks);
/* The capacity was read again and has not changed. */
void lun_sparse_capacity_unchanged(struct lun *l);

#endif /* ISCSIFS_LUN_INTERNAL_H */
