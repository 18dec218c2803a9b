/* lun.c: what a LUN is (REPORT LUNS, INQUIRY, VPD pages, READ CAPACITY,
 * MODE SENSE) and what lun_read.c and lun_write.c share: the verdict on a
 * finished command, CDBs, counters, waiting for a callback.
 *
 * Probing is synchronous (start-up); the data path is asynchronous (see
 * lun_read.c and lun_write.c for their thread models).
 */
#include "lun.h"
#include "lun_internal.h"

#include <stdarg.h>
#include <errno.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "lun_map.h"
#include "retry.h"

/* Largest transfer per command we issue whatever the LUN allows. */
#define MAX_XFER_CAP (8u << 20)
/* Large requests are cut into commands of this size so that the sessions
 * of the pool carry one request in parallel: one sequential writer (dd)
 * gets the pool's concurrency.  Measured on tgtd over loopback: 1 MiB
 * writes went from 212 MB/s as one command to 865 MB/s as four. */
#define SPLIT_SIZE (256u << 10)
/* The most REPORT LUNS data asked for: 16384 LUNs (no target of ours has
 * more; a mount uses at most TARGET_MAX_LUNS of them). */
#define REPORT_LUNS_MAX (8u + 8u * 16384u)
/* Largest transfer of the 10-byte READ/WRITE, in blocks. */
#define MAX_BLOCKS_10 0xffffu


/* LUN objects probed so far in the process (struct lun incarnation). */
static _Atomic uint64_t incarnations;

/* ---- errors from a finished task ---- */

/* The pause before retry number @retries + 1 of a command the target
 * asked us to back off from. */
static unsigned backoff_ms(unsigned retries)
{
	unsigned ms = RETRY_PAUSE_MS << (retries < 8 ? retries : 8);

	return ms < RETRY_PAUSE_MAX_MS ? ms : RETRY_PAUSE_MAX_MS;
}

/* Whether Unit Attention change @change, met by a LUN's own command, may
 * mean that another unit answers under its number now: a power on or
 * reset (a new unit comes up with one), its inquiry data changed, or the
 * LUN list (the unit may be one of the changes). */
static bool unit_may_differ(enum scsi_change change)
{
	return change == SCSI_CHANGE_RESET || change == SCSI_CHANGE_IDENTITY ||
	       change == SCSI_CHANGE_LUNS;
}

/* Pass change @what (of a Unit Attention) of @l on: to its file's owner
 * (l->on_change), or, for a LUN without one (one being probed, or the
 * stand-in LUN 0 that asks REPORT LUNS: lun_command()), to the pool's
 * owner, which reads every capacity, the LUN list or the held LUNs again:
 * a Unit Attention is said once, and must not be lost with the stand-in. */
static void tell_change(struct lun *l, enum scsi_change what)
{
	if (l->on_change) {
		l->on_change(l, what == SCSI_CHANGE_CAPACITY ? LUN_CHANGE_CAPACITY :
			     what == SCSI_CHANGE_LUNS ? LUN_CHANGE_LUNS : LUN_CHANGE_IDENTITY,
			     l->change_opaque);
	} else if (l->pool) {
		pool_tell_change(l->pool, l->number, what);
	}
}

/* A Unit Attention on @l (@o), met by a command of @opcode: count it,
 * forget the provisioning map and pass on what it says changed.  One that
 * says the unit may be another holds its commands until the owner has
 * checked it (before the command that met it goes again): a write must
 * not reach a unit put in its place. */
static void unit_attention(struct lun *l, const struct scsi_outcome *o, uint8_t opcode)
{
	atomic_fetch_add(&l->counters.unit_attentions, 1);
	/* whatever it says, another initiator may have been at work */
	lun_sparse_drop(l);
	/* (a LUN being probed is not the pool's yet: not held.  LUN 0 is,
	 * when REPORT LUNS, asked through a stand-in, meets REPORTED LUNS
	 * DATA HAS CHANGED, as for a command of its own) */
	if (l->pool && unit_may_differ(o->change) && pool_hold_lun(l->pool, l->number))
		tell_change(l, SCSI_CHANGE_IDENTITY);
	switch (o->change) {
	case SCSI_CHANGE_CAPACITY:
		atomic_store(&l->capacity_changed, true);
		tell_change(l, SCSI_CHANGE_CAPACITY);
		break;
	case SCSI_CHANGE_LUNS:
		/* (REPORT LUNS itself goes again: the list read is the new one) */
		if (opcode != SCSI_OP_REPORT_LUNS)
			tell_change(l, SCSI_CHANGE_LUNS);
		break;
	case SCSI_CHANGE_RESET:
	case SCSI_CHANGE_IDENTITY:
	case SCSI_CHANGE_NONE:
		break;
	}
}

/* What the retry line adds about a Unit Attention's change. */
static const char *change_note(enum scsi_change change)
{
	switch (change) {
	case SCSI_CHANGE_CAPACITY: return "reading the capacity again; ";
	case SCSI_CHANGE_LUNS: return "reading the LUN list again; ";
	case SCSI_CHANGE_IDENTITY: return "checking it is the same unit; ";
	case SCSI_CHANGE_RESET:
	case SCSI_CHANGE_NONE: break;
	}
	return "";
}

/* Lines about one LUN's command outcomes that may be logged per window,
 * and the window: a target that answers every command with a Unit
 * Attention or BUSY cannot fill the log. */
#define LUN_LOG_LINES 20
#define LUN_LOG_WINDOW_S 10

/* log_msg() of a line about a command of @l at @level, within the LUN's
 * budget of lines (log.h): errors have one, the rest (retries, notes)
 * another, so that the retries cannot use up the lines that say what
 * failed; the first line after some were left out says how many.  Errors
 * are the lines that say data may be lost: a command that failed, and a
 * deferred error about an earlier write (a retry of this command, but
 * the news is the write it reports).  Debug lines (-d) are never left
 * out. */
void lun_log(struct lun *l, enum log_level level, const char *fmt, ...)
{
	char line[768];
	unsigned left_out = 0;
	va_list ap;

	if (level > log_level_current)
		return;
	struct log_budget *b = level <= LOG_LEVEL_ERROR ? &l->failure_log : &l->log_budget;
	if (level < LOG_LEVEL_DEBUG && !log_budget_take(b, LUN_LOG_LINES, LUN_LOG_WINDOW_S, &left_out))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (left_out)
		log_msg(level, "%s (%u more lines about %s's commands left out before this one)",
			line, left_out, l->name);
	else
		log_msg(level, "%s", line);
}

/* Whether @opcode is a READ or a WRITE of the data path. */
static bool is_read_write(uint8_t opcode)
{
	return opcode == SCSI_OP_READ10 || opcode == SCSI_OP_READ16 ||
		opcode == SCSI_OP_WRITE10 || opcode == SCSI_OP_WRITE16;
}

/* A command of @l that the target answered as done, but whose data did
 * not all move as it must: VERDICT_OK, or VERDICT_FAIL with EIO in *@err
 * (one line says why). */
static enum verdict check_transfer(struct lun *l, const struct iscsi_task *t, int *err)
{
	/* it cannot have done with data it never asked for (status that
	 * comes early is an error status: RFC 7143 11.4.2), unless its
	 * residual says it took less (the caller's check) */
	if (t->dir == TASK_DIR_WRITE &&
	    (uint64_t)t->data_out_asked + (t->underflow ? t->residual : 0) < t->xfer_len) {
		lun_log(l, LOG_LEVEL_ERROR, "target %s, %s: command 0x%02x answered as done when "
			"the target had asked for %u of its %u bytes of data", l->target, l->name,
			t->cdb[0], t->data_out_asked, t->xfer_len);
		*err = EIO;
		return VERDICT_FAIL;
	}
	/* the target meant a longer transfer: other blocks, or blocks of
	 * another size, than those asked */
	if (t->overflow && is_read_write(t->cdb[0])) {
		lun_log(l, LOG_LEVEL_ERROR, "target %s, %s: command 0x%02x of %u bytes answered "
			"with a residual overflow of %u bytes", l->target, l->name, t->cdb[0],
			t->xfer_len, t->residual);
		*err = EIO;
		return VERDICT_FAIL;
	}
	return VERDICT_OK;
}

enum verdict task_verdict(struct lun *l, const struct iscsi_task *t,
			  unsigned retries, int *err, unsigned *delay_ms)
{
	struct scsi_outcome o;

	*err = 0;
	*delay_ms = 0;
	if (t->result) {
		*err = t->result;
		return VERDICT_FAIL;
	}
	/* nearly every command: what scsi_outcome() makes of GOOD (done,
	 * nothing to log), without building its text */
	if (t->response == 0 && t->status == SCSI_STATUS_GOOD)
		return check_transfer(l, t, err);
	scsi_outcome(t->response, t->status, t->sense, t->sense_len, &o);
	switch (o.action) {
	case SCSI_ACT_DONE:
		if (o.level < LOG_LEVEL_DEBUG)      /* RECOVERED ERROR */
			lun_log(l, o.level, "target %s, %s: %s (CDB 0x%02x)", l->target, l->name,
				o.text, t->cdb[0]);
		return check_transfer(l, t, err);
	case SCSI_ACT_RETRY:
	case SCSI_ACT_BACKOFF: {
		unsigned limit = o.transition ? TRANSITION_RETRIES : MAX_RETRIES;
		if (o.earlier_lost)     /* each open file's next fsync says so */
			atomic_fetch_add(&l->lost_reports, 1);
		if (retries >= limit) {
			lun_log(l, LOG_LEVEL_ERROR, "target %s, %s: %s, still after %u retries (CDB 0x%02x)",
				l->target, l->name, o.text, limit, t->cdb[0]);
			*err = o.err;
			return VERDICT_FAIL;
		}
		atomic_fetch_add(&l->counters.retries, 1);
		if (o.sense.valid && o.sense.key == SCSI_SENSE_UNIT_ATTENTION && !o.sense.deferred)
			unit_attention(l, &o, t->cdb[0]);
		/* a port in ALUA standby: at once through another if one is up */
		if (o.port_inaccessible && t->session && l->pool &&
		    pool_avoid_session(l->pool, t->session, t->lun, PORT_AVOID_MS))
			*delay_ms = 0;
		else if (o.action == SCSI_ACT_BACKOFF)
			*delay_ms = backoff_ms(retries);
		lun_log(l, o.level, "target %s, %s: %s; %sretry %u of %u in %u ms", l->target, l->name,
			o.text, change_note(o.change), retries + 1, limit, *delay_ms);
		return VERDICT_RETRY;
	}
	case SCSI_ACT_UNSUPPORTED:
		lun_log(l, o.level, "target %s, %s: %s (CDB 0x%02x)", l->target, l->name, o.text,
			t->cdb[0]);
		*err = o.err;
		return VERDICT_UNSUPPORTED;
	case SCSI_ACT_FAIL:
		break;
	}
	lun_log(l, o.level, "target %s, %s: %s (CDB 0x%02x)", l->target, l->name, o.text, t->cdb[0]);
	*err = o.err;
	/* ILLEGAL REQUEST without a rule of its own (EINVAL) on a READ or
	 * WRITE we built: the target's trouble, not the caller's invalid
	 * argument.  Other commands keep EINVAL: probing, rescans and holes
	 * take it for "refused" and go without. */
	if (*err == EINVAL && is_read_write(t->cdb[0]))
		*err = EIO;
	return VERDICT_FAIL;
}

void lun_resubmit(struct lun *l, struct iscsi_task *t, unsigned delay_ms)
{
	retry_later(l->pool, t, delay_ms);
}

enum verdict task_verdict_resend(struct lun *l, struct iscsi_task *t, unsigned *retries,
				 int *err)
{
	unsigned delay_ms;
	enum verdict v = task_verdict(l, t, *retries, err, &delay_ms);

	if (v == VERDICT_RETRY) {
		(*retries)++;
		lun_resubmit(l, t, delay_ms);
	}
	return v;
}

/* ---- synchronous commands (probe, flush) ---- */

/* Run one command synchronously with Data-In into @buf (or no data),
 * retrying what is worth retrying.  Returns 0, or -1 with err_set():
 * EOPNOTSUPP when the LU does not implement the command (logged at debug
 * level only: the caller has a fallback or does without). */
static int lun_command(struct pool *pool, struct lun *l_for_log, const char *target,
		       uint32_t lun, const uint8_t cdb[16], void *buf, uint32_t len,
		       uint32_t *got)
{
	struct lun dummy = { .number = lun, .pool = pool };
	struct lun *l = l_for_log;

	if (!l) {
		snprintf(dummy.name, sizeof dummy.name, "lun%u", lun);
		snprintf(dummy.target, sizeof dummy.target, "%s", target);
		l = &dummy;
	}
	for (unsigned retries = 0;; retries++) {
		struct iscsi_task t = {
			.lun = lun,
			.dir = buf ? TASK_DIR_READ : TASK_DIR_NONE,
			.xfer_len = buf ? len : 0,
			.read_buf = buf,
			/* the probe's, the rescan's and the identity
			 * check's questions: never held */
			.past_hold = true,
		};
		int err;
		unsigned delay_ms;

		memcpy(t.cdb, cdb, 16);
		if (pool_exec(pool, &t) < 0 && t.result) {
			err_set(t.result, "%s: command 0x%02x failed: connection lost", l->name, cdb[0]);
			return -1;
		}
		switch (task_verdict(l, &t, retries, &err, &delay_ms)) {
		case VERDICT_OK:
			if (got)
				*got = t.data_in_bytes;
			return 0;
		case VERDICT_RETRY:
			/* synchronous: this thread may wait */
			if (delay_ms)
				usleep(delay_ms * 1000u);
			continue;
		case VERDICT_UNSUPPORTED:
			err_set(err, "%s: command 0x%02x not supported", l->name, cdb[0]);
			return -1;
		case VERDICT_FAIL:
			err_set(err, "%s: command 0x%02x failed: %s", l->name, cdb[0], strerror(err));
			return -1;
		}
	}
}

int lun_list(struct pool *pool, const char *target, uint32_t *luns, size_t max, bool strict,
	     bool *whole)
{
	uint32_t alloc = 16 + 8 * 256;
	uint8_t cdb[16];
	uint32_t got = 0;
	uint64_t needed = 0;
	size_t n = 0, count = 0;
	uint8_t *buf = NULL;
	uint64_t *wire = NULL;
	int rc;

	/* Ask once with room for 256 LUNs, and again with the size the
	 * target says it needs, up to REPORT_LUNS_MAX, when that was not
	 * enough. */
	for (int attempt = 0; attempt < 2; attempt++) {
		free(buf);
		free(wire);
		buf = malloc(alloc);
		wire = calloc((alloc - 8) / 8, sizeof *wire);
		if (!buf || !wire) {
			free(buf);
			free(wire);
			err_set(ENOMEM, "out of memory");
			return -1;
		}
		scsi_cdb_report_luns(cdb, alloc);
		if (lun_command(pool, NULL, target, 0, cdb, buf, alloc, &got) < 0) {
			free(buf);
			free(wire);
			/* refused (ILLEGAL REQUEST): the target cannot report.
			 * Anything else (a timeout, a lost connection, a HARDWARE
			 * ERROR) says nothing about its LUNs: LUN 0 alone would
			 * hide the others for as long as the mount lasts */
			if (strict || (err_errno() != EOPNOTSUPP && err_errno() != EINVAL))
				return -1;
			log_info("REPORT LUNS refused (%s); trying LUN 0 alone", err_msg());
			luns[0] = 0;
			if (whole)
				*whole = false;
			return 1;
		}
		rc = scsi_parse_report_luns(buf, got, wire, (alloc - 8) / 8, &count);
		if (rc < 0) {
			free(buf);
			free(wire);
			return -1;
		}
		needed = scsi_report_luns_needed(buf, got);
		if (rc == 0 || needed <= alloc || alloc == REPORT_LUNS_MAX)
			break;
		alloc = needed < REPORT_LUNS_MAX ? (uint32_t)needed : REPORT_LUNS_MAX;
	}
	/* A LUN listed twice (again, or in another addressing method that
	 * decodes to the same number) is one LUN: the first entry counts. */
	size_t i, repeated = 0;
	uint64_t first_repeat = 0;
	for (i = 0; i < count && n < max; i++) {
		int64_t number = pdu_lun_decode(wire[i]);
		if (number < 0) {
			log_warn("skipping LUN 0x%016llx: addressing method not supported",
				 (unsigned long long)wire[i]);
			continue;
		}
		size_t k = 0;
		while (k < n && luns[k] != (uint32_t)number)
			k++;
		if (k < n) {
			if (repeated++ == 0)
				first_repeat = wire[i];
			continue;
		}
		luns[n++] = (uint32_t)number;
	}
	if (repeated)
		log_warn("target %s lists a LUN more than once (%zu repeats, the first 0x%016llx); "
			 "each LUN is used once", target, repeated, (unsigned long long)first_repeat);
	/* the LUNs the target says it has: more than were read when they
	 * were more than REPORT_LUNS_MAX holds */
	uint64_t listed = needed > alloc ? (needed - 8) / 8 : count;
	if (i < count || listed > count)
		log_warn("target %s reports %llu LUNs; only the first %zu are used", target,
			 (unsigned long long)listed, i < count ? max : count);
	if (whole)
		*whole = rc == 0 && i == count;
	free(wire);
	free(buf);
	return (int)n;
}

/* READ CAPACITY(16), or (10) where (16) fails, into @cap; says in
 * *@rc16 which one answered.  Returns 0, or -1 with err_set() (EPROTO
 * when the data is unusable, before the "lunN: " prefix). */
static int read_capacity(struct pool *pool, struct lun *l, struct scsi_capacity *cap,
			 bool *rc16)
{
	uint8_t cdb[16], buf[SCSI_READ_CAPACITY16_LEN];
	char rc16_failed[256];
	uint32_t got;

	scsi_cdb_read_capacity16(cdb, sizeof buf);
	if (lun_command(pool, l, l->target, l->number, cdb, buf, sizeof buf, &got) == 0) {
		*rc16 = true;
		return scsi_parse_read_capacity16(buf, got, cap) < 0 ? -1 : 0;
	}
	int rc16_err = err_errno();
	snprintf(rc16_failed, sizeof rc16_failed, "%s", err_msg());
	*rc16 = false;
	scsi_cdb_read_capacity10(cdb);
	if (lun_command(pool, l, l->target, l->number, cdb, buf, 8, &got) < 0)
		return -1;
	int rc = scsi_parse_read_capacity10(buf, got, cap);
	if (rc < 0)
		return -1;
	if (rc == 1 && (rc16_err == EOPNOTSUPP || rc16_err == EINVAL)) {
		/* 2^32 blocks or more: SBC-3 sends us to READ CAPACITY(16),
		 * which the target refused, so the capacity is unknown and
		 * the LUN unusable (EPROTO: the LUN is skipped) */
		err_set(EPROTO, "READ CAPACITY(10) says 2^32 blocks or more, and READ CAPACITY(16), "
			"which SBC-3 requires then, is refused: the capacity is unknown");
		return -1;
	}
	if (rc == 1) {
		/* (16) failed otherwise: its failure, to be retried as such,
		 * not a verdict on the LUN */
		err_set(rc16_err, "%s", rc16_failed);
		return -1;
	}
	return 0;
}

int lun_probe(struct pool *pool, const char *target, uint32_t number, struct lun **out)
{
	struct lun *l = calloc(1, sizeof *l);
	uint8_t cdb[16], buf[512];
	uint32_t got;
	bool vpd_b0 = false, vpd_b2 = false, vpd_80 = false, vpd_83 = false;
	bool wp = false, dpofua = false;

	*out = NULL;
	if (!l) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	l->pool = pool;
	l->number = number;
	l->incarnation = atomic_fetch_add(&incarnations, 1) + 1;
	snprintf(l->name, sizeof l->name, "lun%u", number);
	snprintf(l->target, sizeof l->target, "%s", target);

	/* TEST UNIT READY clears the power-on Unit Attention; a LUN still not
	 * ready after the retries is reported by the commands below. */
	scsi_cdb_test_unit_ready(cdb);
	if (lun_command(pool, l, target, number, cdb, NULL, 0, NULL) < 0) {
		if (err_errno() == ENXIO)
			goto not_there;
		log_debug("%s: TEST UNIT READY: %s", l->name, err_msg());
	}

	scsi_cdb_inquiry(cdb, false, 0, 96);
	if (lun_command(pool, l, target, number, cdb, buf, 96, &got) < 0) {
		if (err_errno() == ENXIO)
			goto not_there;
		goto err;
	}
	if (scsi_parse_inquiry(buf, got, &l->inquiry) < 0)
		goto err_parse;
	if (l->inquiry.qualifier != 0 || l->inquiry.device_type != 0) {
		log_debug("%s: peripheral type 0x%02x, qualifier %u: not a disk, skipped",
			  l->name, l->inquiry.device_type, l->inquiry.qualifier);
		err_set(ENODEV, "peripheral device type 0x%02x%s, not a disk",
			l->inquiry.device_type, l->inquiry.qualifier ? " (not connected)" : "");
		free(l);
		return 0;
	}

	scsi_cdb_inquiry(cdb, true, 0x00, 255);
	if (lun_command(pool, l, target, number, cdb, buf, 255, &got) == 0) {
		scsi_parse_vpd_supported(buf, got, 0x80, &vpd_80);
		scsi_parse_vpd_supported(buf, got, 0x83, &vpd_83);
		scsi_parse_vpd_supported(buf, got, 0xb0, &vpd_b0);
		scsi_parse_vpd_supported(buf, got, 0xb2, &vpd_b2);
	}
	if (vpd_80) {
		scsi_cdb_inquiry(cdb, true, 0x80, 255);
		if (lun_command(pool, l, target, number, cdb, buf, 255, &got) == 0)
			scsi_parse_vpd_serial(buf, got, l->serial, sizeof l->serial);
	}
	if (vpd_83) {
		scsi_cdb_inquiry(cdb, true, 0x83, 255);
		if (lun_command(pool, l, target, number, cdb, buf, 255, &got) == 0)
			scsi_parse_vpd_device_id(buf, got, l->device_id, sizeof l->device_id);
	}
	if (vpd_b0) {
		scsi_cdb_inquiry(cdb, true, 0xb0, 64);
		if (lun_command(pool, l, target, number, cdb, buf, 64, &got) == 0 &&
		    scsi_parse_vpd_block_limits(buf, got, &l->limits) < 0)
			memset(&l->limits, 0, sizeof l->limits);
	}
	if (vpd_b2) {
		scsi_cdb_inquiry(cdb, true, 0xb2, 64);
		if (lun_command(pool, l, target, number, cdb, buf, 64, &got) == 0 &&
		    scsi_parse_vpd_lbp(buf, got, &l->lbp) < 0)
			memset(&l->lbp, 0, sizeof l->lbp);
	}

	/* Capacity: READ CAPACITY(16), or (10) where the target lacks it. */
	if (read_capacity(pool, l, &l->capacity, &l->use16) < 0) {
		if (err_errno() == EPROTO)
			goto err_parse;
		goto err;
	}
	l->blocks = l->capacity.blocks;
	l->block_size = l->capacity.block_size;
	l->size = l->blocks * l->block_size;
	l->physical_block_size = l->block_size << (l->capacity.lbppbe < 8 ? l->capacity.lbppbe : 0);
	if (l->blocks > 0xffffffffULL)
		l->use16 = true;

	/* Largest transfer per command. */
	uint64_t max = MAX_XFER_CAP;
	if (l->limits.max_transfer_blocks &&
	    (uint64_t)l->limits.max_transfer_blocks * l->block_size < max)
		max = (uint64_t)l->limits.max_transfer_blocks * l->block_size;
	if (!l->use16 && (uint64_t)MAX_BLOCKS_10 * l->block_size < max)
		max = (uint64_t)MAX_BLOCKS_10 * l->block_size;
	if (max < l->block_size)
		max = l->block_size;
	l->max_xfer = (uint32_t)(max / l->block_size * l->block_size);
	l->split = l->max_xfer < SPLIT_SIZE ? l->max_xfer :
		(SPLIT_SIZE + l->block_size - 1) / l->block_size * l->block_size;
	/* one that does not fit in 32 bits is of no use as a size to read */
	uint64_t opt = (uint64_t)l->limits.opt_transfer_blocks * l->block_size;
	l->opt_xfer = opt <= UINT32_MAX ? (uint32_t)opt : 0;

	/* Write protection: MODE SENSE(6), or (10) where (6) is refused. */
	scsi_cdb_mode_sense6(cdb, 0x3f, 255);
	if (lun_command(pool, l, target, number, cdb, buf, 255, &got) == 0) {
		scsi_parse_mode_sense_wp(buf, got, false, &wp, &dpofua);
	} else {
		scsi_cdb_mode_sense10(cdb, 0x3f, 255);
		if (lun_command(pool, l, target, number, cdb, buf, 255, &got) == 0)
			scsi_parse_mode_sense_wp(buf, got, true, &wp, &dpofua);
	}
	if (lun_sparse_init(l) < 0)
		goto err;
	atomic_init(&l->write_protected, wp);
	atomic_init(&l->fua, dpofua);
	atomic_init(&l->has_sync_cache, true);
	atomic_init(&l->sync_cache16, l->use16);
	pthread_mutex_init(&l->range_lock, NULL);
	log_debug("%s: %llu blocks of %u bytes, max transfer %u, %s%s, vendor \"%s\" product \"%s\" serial \"%s\"",
		  l->name, (unsigned long long)l->blocks, l->block_size, l->max_xfer,
		  l->use16 ? "16-byte CDBs" : "10-byte CDBs",
		  l->write_protected ? ", write protected" : "",
		  l->inquiry.vendor, l->inquiry.product, l->serial);
	*out = l;
	return 1;

not_there:      /* LOGICAL UNIT NOT SUPPORTED, where SPC-4 wants qualifier
		 * 011b: listed, but not served to us (the line is logged) */
	err_set(ENXIO, "logical unit not supported");
	free(l);
	return 0;

err_parse:      /* what the target returned is unusable: EPROTO, named */
	err_set(EPROTO, "%s: %s", l->name, err_msg());
err:
	free(l);
	return -1;
}

int lun_check_identity(struct lun *l)
{
	/* the VPD pages that name the unit, as lun_probe() read them */
	const struct {
		uint8_t page;
		const char *had;      /* what the probe read, "" if nothing */
		int (*parse)(const uint8_t *buf, size_t len, char *out, size_t cap);
		const char *what;
	} names[] = {
		{ 0x80, l->serial, scsi_parse_vpd_serial, "unit serial number" },
		{ 0x83, l->device_id, scsi_parse_vpd_device_id, "device identifier" },
	};
	uint8_t cdb[16], buf[256];
	char now[128];
	uint32_t got;

	/* As the check after a reconnect (session_verify.c): a page the unit
	 * had and now refuses, or a LUN no longer there, is another unit;
	 * data that cannot be read is no proof of the same one */
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!names[i].had[0])
			continue;
		scsi_cdb_inquiry(cdb, true, names[i].page, 255);
		if (lun_command(l->pool, l, l->target, l->number, cdb, buf, 255, &got) < 0) {
			int err = err_errno();
			if (err == EOPNOTSUPP) {
				err_set(ENODEV, "VPD page 0x%02x it had is refused", names[i].page);
				return 0;
			}
			if (err == ENXIO) {
				err_set(ENODEV, "no LUN %u any more (%s)", l->number, err_msg());
				return 0;
			}
			return -1;
		}
		if (got >= 1 && buf[0] >> 5 == 3) {
			err_set(ENODEV, "no LUN %u any more (%s was \"%s\")", l->number,
				names[i].what, names[i].had);
			return 0;
		}
		if (names[i].parse(buf, got, now, sizeof now) < 0) {
			err_set(EPROTO, "VPD page 0x%02x: %s", names[i].page, err_msg());
			return -1;
		}
		if (strcmp(now, names[i].had) != 0) {
			err_set(ENODEV, "%s \"%s\", not \"%s\"", names[i].what, now, names[i].had);
			return 0;
		}
	}
	return 1;
}

int lun_reread_capacity(struct lun *l, uint64_t *old_size)
{
	struct scsi_capacity cap;
	bool rc16;

	*old_size = l->size;
	if (read_capacity(l->pool, l, &cap, &rc16) < 0) {
		err_set(err_errno(), "%s: cannot read the new capacity: %s", l->name, err_msg());
		return -1;
	}
	if (cap.block_size != l->block_size) {
		err_set(ESTALE, "%s: the logical block size changed from %u to %u bytes; "
			"its I/O fails from now on: remount to use the LUN", l->name,
			l->block_size, cap.block_size);
		return -1;
	}
	uint64_t blocks = cap.blocks;
	/* 10-byte CDBs (chosen at the probe) address 2^32 blocks */
	if (!l->use16 && blocks > 0x100000000ULL) {
		log_warn("target %s, %s: the new capacity needs 16-byte CDBs; using its first 2^32 blocks",
			 l->target, l->name);
		blocks = 0x100000000ULL;
	}
	if (blocks == l->blocks) {
		lun_sparse_capacity_unchanged(l);
		return 0;
	}
	/* blocks first: a reader that sees the new size sees its blocks */
	atomic_store(&l->blocks, blocks);
	atomic_store(&l->size, blocks * l->block_size);
	lun_sparse_resize(l, blocks);
	return 1;
}

void lun_free(struct lun *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->range_lock);
	lun_map_free(l->map);
	free(l);
}

/* ---- CDBs for the data path ---- */

void build_rw_cdb(const struct lun *l, uint8_t cdb[16], bool write, bool fua,
			 uint64_t lba, uint32_t blocks)
{
	if (l->use16) {
		if (write)
			scsi_cdb_write16(cdb, lba, blocks, fua);
		else
			scsi_cdb_read16(cdb, lba, blocks);
	} else {
		if (write)
			scsi_cdb_write10(cdb, (uint32_t)lba, (uint16_t)blocks, fua);
		else
			scsi_cdb_read10(cdb, (uint32_t)lba, (uint16_t)blocks);
	}
}

void count_request(struct lun *l, int64_t start_ns, int err)
{
	int64_t us = (mono_now_ns() - start_ns) / 1000;
	unsigned bucket = 0;

	if (err) {
		atomic_fetch_add(&l->counters.errors, 1);
		return;
	}
	while (us > 1 && bucket < LUN_LATENCY_BUCKETS - 1) {
		us >>= 1;
		bucket++;
	}
	atomic_fetch_add(&l->counters.latency[bucket], 1);
}
