/* session_verify.c: the identity check of a session that logged in again
 * (SESSION_VERIFYING, see session.h).  Before the session takes any of
 * its owner's commands it sends its own, one at a time, for every LUN the
 * owner expects (ops->expected_luns): INQUIRY VPD 0x80 and/or 0x83 as the
 * LUN had them at the probe, then READ CAPACITY(16), or (10).  A LUN that
 * is another (serial, device id, block size, smaller capacity, gone), or
 * answers with data that cannot be used, is reported to the owner
 * (ops->lun_replaced), whose I/O to it then fails with EIO; a capacity
 * that grew too (ops->lun_grew), and what a Unit Attention a step met
 * says changed (ops->unit_attention: the owner's commands never see it).
 * A LUN whose command the target fails (HARDWARE ERROR, a refusal,
 * retries used up) is left to the owner's own check (ops->lun_unchecked:
 * its commands wait for it) and the check goes on: another login would
 * meet the same answer.  A lost connection, or a command aborted, drops
 * the connection for another recovery round.  What a
 * step's status and sense mean is decided by scsi_outcome() (scsi.h), as
 * for every command; here only what each action means for the step.
 *
 * The check is a sub-machine of the session: enum verify_state
 * (session_internal.h) says which step of LUN s->verify_i is out,
 * VERIFY_IDLE that none is; verify_set_state() alone changes it, along
 * the moves of its table, with a debug line each.  When every LUN is
 * checked the session goes SESSION_FULL_FEATURE, hands its pinned writes
 * to the owner (ops->requeue) and kicks it.
 *
 * Thread model: the steps complete on the session's RX (or TX) thread
 * (verify_done()); session_tick() resends a step after BUSY or NOT READY.
 * Everything here runs under s->lock except where a comment says not; the
 * owner's callbacks are called without it.
 */
#include "session_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "log.h"
#include "scsi.h"

/* ---- the sub-machine (enum verify_state) ---- */

const char *session_verify_state_name(enum verify_state state)
{
	switch (state) {
	case VERIFY_IDLE: return "idle";
	case VERIFY_SERIAL: return "serial";
	case VERIFY_DEVICE_ID: return "device id";
	case VERIFY_CAPACITY16: return "capacity(16)";
	case VERIFY_CAPACITY10: return "capacity(10)";
	}
	return "invalid";
}

/* Bit of a step in a row of verify_moves. */
#define STEP(st) (1u << (st))
/* The steps a LUN can begin with (verify_first_step()). */
#define FIRST_STEPS (STEP(VERIFY_SERIAL) | STEP(VERIFY_DEVICE_ID) | STEP(VERIFY_CAPACITY16))
/* The moves verify_set_state() allows, by the state moved from: a step
 * goes on to a later one of its LUN or the first of the next LUN, or ends
 * the check. */
static const unsigned verify_moves[] = {
	[VERIFY_IDLE] = FIRST_STEPS,
	[VERIFY_SERIAL] = FIRST_STEPS | STEP(VERIFY_IDLE),
	[VERIFY_DEVICE_ID] = FIRST_STEPS | STEP(VERIFY_IDLE),
	[VERIFY_CAPACITY16] = FIRST_STEPS | STEP(VERIFY_CAPACITY10) | STEP(VERIFY_IDLE),
	[VERIFY_CAPACITY10] = FIRST_STEPS | STEP(VERIFY_IDLE),
};
#undef FIRST_STEPS
#undef STEP

bool session_verify_transition_legal(enum verify_state from, enum verify_state to)
{
	return session_fsm_legal(verify_moves, sizeof verify_moves / sizeof verify_moves[0], from,
				 to);
}

/* The only place s->verify_state changes.  An illegal move logs and
 * aborts (with NDEBUG: logs and moves), as session_set_state().  Lock
 * held. */
static void verify_set_state(struct session *s, enum verify_state to)
{
	enum verify_state from = s->verify_state;

	session_fsm_check(s->name, "identity check", session_verify_transition_legal(from, to),
			  session_verify_state_name(from), session_verify_state_name(to));
	s->verify_state = to;
	log_debug("%s: identity check %s -> %s (LUN entry %u of %u)", s->name,
		  session_verify_state_name(from), session_verify_state_name(to), s->verify_i,
		  s->verify_n);
}

void session_verify_stop_locked(struct session *s)
{
	if (s->verify_state != VERIFY_IDLE)
		verify_set_state(s, VERIFY_IDLE);
	free(s->verify_luns);
	s->verify_luns = NULL;
	s->verify_retry_ns = 0;
}

/* ---- identity check after a login (SESSION_VERIFYING) ---- */

static void verify_done(struct iscsi_task *t);

/* The step of @id to begin with from @step on: the VPD pages the LUN had
 * at the probe, then its capacity. */
static enum verify_state verify_first_step(const struct lun_identity *id, enum verify_state step)
{
	if (step == VERIFY_SERIAL && !id->serial[0])
		step = VERIFY_DEVICE_ID;
	if (step == VERIFY_DEVICE_ID && !id->device_id[0])
		step = VERIFY_CAPACITY16;
	return step;
}

/* Send the command of the current step.  Lock held, SESSION_VERIFYING,
 * s->vtask not in flight.  A full window: session_tick() tries again. */
void session_verify_send_locked(struct session *s)
{
	const struct lun_identity *id = &s->verify_luns[s->verify_i];
	struct iscsi_task *t = &s->vtask;

	memset(t, 0, sizeof *t);
	t->lun = id->lun;
	t->dir = TASK_DIR_READ;
	switch (s->verify_state) {
	case VERIFY_IDLE:
		return;         /* (not checking: nothing to send) */
	case VERIFY_SERIAL:
		scsi_cdb_inquiry(t->cdb, true, 0x80, 255);
		t->xfer_len = 255;
		break;
	case VERIFY_DEVICE_ID:
		scsi_cdb_inquiry(t->cdb, true, 0x83, 255);
		t->xfer_len = 255;
		break;
	case VERIFY_CAPACITY16:
		scsi_cdb_read_capacity16(t->cdb, SCSI_READ_CAPACITY16_LEN);
		t->xfer_len = SCSI_READ_CAPACITY16_LEN;
		break;
	case VERIFY_CAPACITY10:
		scsi_cdb_read_capacity10(t->cdb);
		t->xfer_len = 8;
		break;
	}
	t->read_buf = s->vbuf;
	t->done = verify_done;
	t->opaque = s;
	s->verify_retry_ns = 0;
	if (session_submit_locked(s, t) < 0)
		s->verify_retry_ns = mono_now_ns();
}

/* session_take_pinned_locked() predicate: lost in portal group *@arg (an
 * int32_t, -1 when the login named none), or where the target named none. */
static bool lost_in_group(const struct session *s, const struct iscsi_task *t,
			  const void *arg)
{
	int32_t tpgt = *(const int32_t *)arg;

	(void)s;
	return t->lost_tpgt < 0 || tpgt < 0 || t->lost_tpgt == tpgt;
}

/* Take out of s->pinned the writes whose connection the login just made
 * ended: those lost in the portal group it logged in to (or where the
 * target named none).  A login in another group is another session to
 * the target (RFC 7143: a session is named by ISID and portal group), so
 * the old one, with what it still carries, lives on there until it ends;
 * those writes wait on for the replacement timeout (session_tick()).
 * Lock held. */
static struct iscsi_task *take_ended_pinned_locked(struct session *s)
{
	int32_t tpgt = s->params.has_tpgt ? s->params.target_portal_group_tag : -1;
	struct iscsi_task *ended = session_take_pinned_locked(s, lost_in_group, &tpgt);
	unsigned kept = 0;
	int32_t kept_tpgt = -1;

	for (const struct iscsi_task *t = s->pinned; t; t = t->next) {
		kept++;
		kept_tpgt = t->lost_tpgt;
	}
	if (kept)
		log_warn("%s: logged in again in portal group %d; %u writes lost in group %d wait "
			 "for the replacement timeout (%u s from their loss)", s->name, tpgt, kept,
			 kept_tpgt, s->cfg->replacement_timeout_s);
	return ended;
}

/* Every LUN checked: the session takes the owner's commands, its pinned
 * writes first.  No lock held. */
static void verify_finish(struct session *s)
{
	pthread_mutex_lock(&s->lock);
	if (s->state != SESSION_VERIFYING) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	unsigned n = s->verify_luns ? s->verify_n : 0;
	session_verify_stop_locked(s);
	session_set_state(s, SESSION_FULL_FEATURE);
	/* The target ended the old connection before it let us in: the
	 * writes that were on it may go anywhere now (those of a replaced
	 * LUN fail in the pool). */
	struct iscsi_task *pinned = take_ended_pinned_locked(s);
	pthread_mutex_unlock(&s->lock);
	atomic_fetch_add(&s->st_verifications, 1);
	log_debug("%s: identity of %u LUNs checked; taking commands", s->name, n);
	session_release_pinned(s, pinned);
	session_owner_kick(s);
}

/* The identity check cannot go on (@why): drop the connection, which is
 * then recovered and checked again.  Lock held, SESSION_VERIFYING (so
 * s->conn is the live connection, as in session_tick()). */
static void verify_drop_locked(struct session *s, const char *why)
{
	log_error("%s: target %s: cannot check the identity of its LUNs: %s; dropping the connection",
		  s->name, s->cfg->target_name, why);
	session_drop_locked(s);
}

/* Compare what a step of the check returned (GOOD status) with @id: what
 * differs, or data that cannot be used (the same every time it is asked:
 * dropping the connection for it would only loop), into @why (the LUN is
 * another, or unusable); a capacity that grew into *@grew_to (left alone
 * otherwise); the next step of this LUN into *@next, VERIFY_IDLE when it
 * is done.  *@unusable says that @why is about the data, not a
 * difference. */
static void verify_compare(struct session *s, const struct lun_identity *id,
			   enum verify_state step, const struct iscsi_task *t, char *why,
			   size_t why_cap, bool *unusable, uint64_t *grew_to,
			   enum verify_state *next)
{
	char got[128] = "";
	struct scsi_capacity cap;

	*next = VERIFY_IDLE;
	if (step == VERIFY_SERIAL || step == VERIFY_DEVICE_ID) {
		const char *want = step == VERIFY_SERIAL ? id->serial : id->device_id;
		const char *what = step == VERIFY_SERIAL ? "serial" : "device id";
		int rc;
		if (t->data_in_bytes >= 1 && (s->vbuf[0] >> 5) == 3) {
			snprintf(why, why_cap, "no LUN %u any more (%s was \"%s\")", id->lun, what,
				 want);
			return;
		}
		if (step == VERIFY_SERIAL)
			rc = scsi_parse_vpd_serial(s->vbuf, t->data_in_bytes, got, sizeof got);
		else
			rc = scsi_parse_vpd_device_id(s->vbuf, t->data_in_bytes, got, sizeof got);
		if (rc < 0) {
			*unusable = true;
			snprintf(why, why_cap, "VPD page 0x%02x: %s",
				 step == VERIFY_SERIAL ? 0x80 : 0x83, err_msg());
			return;
		}
		if (strcmp(got, want) != 0) {
			snprintf(why, why_cap, "%s \"%s\", was \"%s\"", what, got, want);
			return;
		}
		*next = verify_first_step(id, step == VERIFY_SERIAL ? VERIFY_DEVICE_ID :
					  VERIFY_CAPACITY16);
		return;
	}
	int rc = step == VERIFY_CAPACITY16 ?
		scsi_parse_read_capacity16(s->vbuf, t->data_in_bytes, &cap) :
		scsi_parse_read_capacity10(s->vbuf, t->data_in_bytes, &cap);
	if (rc < 0) {
		*unusable = true;
		snprintf(why, why_cap, "%s", err_msg());
		return;
	}
	if (rc == 1 && id->blocks <= UINT32_MAX) {
		/* (10) and too big for it: it is bigger than it was */
		snprintf(why, why_cap, "capacity beyond READ CAPACITY(10), was %llu blocks",
			 (unsigned long long)id->blocks);
		return;
	}
	if (cap.block_size != id->block_size)
		snprintf(why, why_cap, "block size %u bytes, was %u", cap.block_size,
			 id->block_size);
	else if (rc == 1)
		;   /* 2^32 blocks or more, as it had, after (16) failed: all
		     * that (10) can say, and no sign of another unit */
	else if (cap.blocks < id->blocks)
		snprintf(why, why_cap, "capacity %llu blocks, was %llu (shrank)",
			 (unsigned long long)cap.blocks, (unsigned long long)id->blocks);
	else if (cap.blocks > id->blocks)
		*grew_to = cap.blocks;
}

/* The answer to a command of the identity check: compare, retry, mark the
 * LUN replaced, or drop the connection; then the next command, or UP.
 * On a session thread (RX, or TX), no lock held. */
static void verify_done(struct iscsi_task *t)
{
	struct session *s = t->opaque;
	char why[512] = "", fail[300] = "";
	uint64_t grew_to = 0;
	bool retry = false, later = false;
	enum scsi_change ua = SCSI_CHANGE_NONE;    /* what a Unit Attention said */
	bool lost = false;                         /* a deferred error said a write was lost */
	bool by_capacity = false;                  /* a verdict of READ CAPACITY's answer */
	bool unusable = false;                     /* why: its data, not a difference */
	char unchecked[300] = "";                  /* a command failed on the target: the
	                                            * owner checks the LUN (lun_unchecked) */

	pthread_mutex_lock(&s->lock);
	if (s->state != SESSION_VERIFYING || s->verify_state == VERIFY_IDLE) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	struct lun_identity id = s->verify_luns[s->verify_i];
	/* (next: VERIFY_IDLE when this LUN is done) */
	enum verify_state step = s->verify_state, next = VERIFY_IDLE;

	if (t->result) {
		snprintf(fail, sizeof fail, "LUN %u: command 0x%02x aborted", id.lun, t->cdb[0]);
	} else {
		struct scsi_outcome o;

		scsi_outcome(t->response, t->status, t->sense, t->sense_len, &o);
		switch (o.action) {
		case SCSI_ACT_DONE:
			verify_compare(s, &id, step, t, why, sizeof why, &unusable, &grew_to,
				       &next);
			by_capacity = step == VERIFY_CAPACITY16 || step == VERIFY_CAPACITY10;
			break;
		case SCSI_ACT_RETRY:    /* POWER ON OR RESET greets a restarted target */
		case SCSI_ACT_BACKOFF:  /* BUSY, NOT READY: the session's next tick */
			retry = true;
			later = o.action == SCSI_ACT_BACKOFF;
			ua = o.change;  /* taken here: the owner's commands never see it */
			lost = o.earlier_lost;  /* nor this, said once */
			log_msg(o.level, "%s: target %s, lun%u: %s (CDB 0x%02x) in the identity check; "
				"sending it again", s->name, s->cfg->target_name, id.lun, o.text,
				t->cdb[0]);
			break;
		case SCSI_ACT_UNSUPPORTED:
			if (step == VERIFY_CAPACITY16)
				next = VERIFY_CAPACITY10;       /* as at the probe */
			else if (step == VERIFY_SERIAL || step == VERIFY_DEVICE_ID)
				snprintf(why, sizeof why, "VPD page 0x%02x it had is refused",
					 step == VERIFY_SERIAL ? 0x80 : 0x83);
			else
				snprintf(unchecked, sizeof unchecked, "%s (CDB 0x%02x)", o.text,
					 t->cdb[0]);
			break;
		case SCSI_ACT_FAIL:
			if (o.err == ENXIO)
				snprintf(why, sizeof why, "no LUN %u any more (%s)", id.lun, o.text);
			else if (step == VERIFY_CAPACITY16)
				next = VERIFY_CAPACITY10;       /* the probe takes (10) on any failure */
			else
				snprintf(unchecked, sizeof unchecked, "%s (CDB 0x%02x)", o.text,
					 t->cdb[0]);
			break;
		}
	}
	if (retry && ++s->verify_retries > VERIFY_MAX_RETRIES) {
		snprintf(unchecked, sizeof unchecked, "command 0x%02x still refused after %u retries",
			 t->cdb[0], VERIFY_MAX_RETRIES);
		retry = false;
	}
	/* The same answer would come after another login: the LUN is left
	 * to the owner's check, the others go on (without an owner that
	 * checks, the connection is dropped as for a transport failure). */
	if (unchecked[0] && !(s->ops && s->ops->lun_unchecked)) {
		snprintf(fail, sizeof fail, "LUN %u: %s", id.lun, unchecked);
		unchecked[0] = '\0';
	}
	if (fail[0]) {
		verify_drop_locked(s, fail);
	} else if (retry) {
		if (later)      /* the session's next tick (about a second) */
			s->verify_retry_ns = mono_now_ns() + 500000000;
		else
			session_verify_send_locked(s);
	}
	pthread_mutex_unlock(&s->lock);
	if (ua != SCSI_CHANGE_NONE && s->ops && s->ops->unit_attention)
		s->ops->unit_attention(s->owner, id.lun, ua);
	if (lost && s->ops && s->ops->writes_lost)
		s->ops->writes_lost(s->owner, id.lun);
	if (fail[0] || retry)
		return;

	if (unchecked[0]) {
		/* (said by the session that held it: the others meet the same) */
		if (s->ops->lun_unchecked(s->owner, id.lun))
			log_error("target %s, lun%u: %s in the identity check after the reconnect; "
				  "its commands wait until it is checked", s->cfg->target_name,
				  id.lun, unchecked);
		next = VERIFY_IDLE;
	}

	if (why[0]) {
		if (s->ops && s->ops->lun_replaced && s->ops->lun_replaced(s->owner, &id, by_capacity)) {
			atomic_fetch_add(&s->st_replaced, 1);
			log_error("target %s, lun%u: %s after the reconnect: %s; "
				  "its I/O fails with EIO until remounted", s->cfg->target_name,
				  id.lun, unusable ? "unusable data" : "another LUN", why);
		}
		next = VERIFY_IDLE;
	} else if (grew_to && s->ops && s->ops->lun_grew &&
		   s->ops->lun_grew(s->owner, id.lun, grew_to)) {
		/* news (the first session to see it): its file takes the new size */
		log_info("target %s, lun%u: capacity grew from %llu to %llu blocks while the session was away",
			 s->cfg->target_name, id.lun, (unsigned long long)id.blocks,
			 (unsigned long long)grew_to);
	}

	pthread_mutex_lock(&s->lock);
	if (s->state != SESSION_VERIFYING || s->verify_state == VERIFY_IDLE) {
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->verify_retries = 0;
	if (next == VERIFY_IDLE) {
		if (++s->verify_i == s->verify_n) {
			pthread_mutex_unlock(&s->lock);
			verify_finish(s);
			return;
		}
		next = verify_first_step(&s->verify_luns[s->verify_i], VERIFY_SERIAL);
	}
	verify_set_state(s, next);
	session_verify_send_locked(s);
	pthread_mutex_unlock(&s->lock);
}

/* Begin the identity check of a session that logged in again (state
 * SESSION_VERIFYING, on its loop): the LUNs its owner expects, or
 * none (then FULL_FEATURE at once).  The loop, no lock held. */
void session_verify_start(struct session *s)
{
	struct lun_identity *luns = NULL;
	int n = s->ops && s->ops->expected_luns ? s->ops->expected_luns(s->owner, &luns) : 0;

	if (n < 0) {
		pthread_mutex_lock(&s->lock);
		if (s->state == SESSION_VERIFYING)
			verify_drop_locked(s, err_msg());
		pthread_mutex_unlock(&s->lock);
		return;
	}
	session_verify_luns(s, luns, (unsigned)n);
}

void session_verify_luns(struct session *s, struct lun_identity *luns, unsigned n)
{
	pthread_mutex_lock(&s->lock);
	if (n == 0 || s->state != SESSION_VERIFYING) {
		pthread_mutex_unlock(&s->lock);
		free(luns);
		verify_finish(s);
		return;
	}
	session_verify_stop_locked(s);     /* (a check begun before: none) */
	s->verify_luns = luns;
	s->verify_n = n;
	s->verify_i = 0;
	s->verify_retries = 0;
	verify_set_state(s, verify_first_step(&luns[0], VERIFY_SERIAL));
	log_debug("%s: checking the identity of %u LUNs", s->name, n);
	session_verify_send_locked(s);
	pthread_mutex_unlock(&s->lock);
}
