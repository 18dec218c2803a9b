/* lun.c: what a LUN is (REPORT LUNS, INQUIRY, VPD pages, READ CAPACITY,
 * MODE SENSE) and what lun_read.c and lun_write.c share: the verdict on a
 * finished command, CDBs, counters, waiting for a callback.
 *
 * Probing is synchronous (start-up); the data path is asynchronous (see
 * lun_read.c and lun_write.c for their thread models).
 */
#include "lun.h"
#include "lun_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* Largest transfer per command we issue whatever the LUN allows. */
#define MAX_XFER_CAP (8u << 20)
/* Large requests are cut into commands of this size so that the sessions
 * of the pool carry one request in parallel: one sequential writer (dd)
 * gets the pool's concurrency.  Measured on tgtd over loopback: 1 MiB
 * writes went from 212 MB/s as one command to 865 MB/s as four. */
#define SPLIT_SIZE (256u << 10)
/* Largest transfer of the 10-byte READ/WRITE, in blocks. */
#define MAX_BLOCKS_10 0xffffu


/* ---- errors from a finished task ---- */

enum verdict task_verdict(struct lun *l, const struct iscsi_task *t,
				 unsigned retries, int *err)
{
	struct scsi_sense sense;
	char what[160];

	*err = 0;
	if (t->result) {
		*err = t->result;
		return VERDICT_FAIL;
	}
	switch (t->status) {
	case SCSI_STATUS_GOOD:
	case SCSI_STATUS_CONDITION_MET:
		return VERDICT_OK;
	case SCSI_STATUS_CHECK_CONDITION:
		if (scsi_sense_parse(t->sense, t->sense_len, &sense) < 0 || !sense.valid) {
			log_error("%s: CHECK CONDITION without usable sense data", l->name);
			*err = EIO;
			return VERDICT_FAIL;
		}
		*err = scsi_sense_to_errno(&sense);
		scsi_sense_describe(&sense, what, sizeof what);
		if (*err == 0)
			return VERDICT_OK;          /* RECOVERED ERROR, NO SENSE */
		if (*err == EAGAIN && retries < MAX_RETRIES) {
			/* a Unit Attention is rare and worth a line (power on,
			 * reset, changes); NOT READY and ABORTED COMMAND may
			 * repeat */
			if (sense.key == SCSI_SENSE_UNIT_ATTENTION) {
				atomic_fetch_add(&l->counters.unit_attentions, 1);
				/* POWER ON OR RESET greets every new session:
				 * routine; other Unit Attentions are news */
				if (sense.asc == 0x29)
					log_debug("%s: %s; retrying", l->name, what);
				else
					log_info("%s: %s; retrying", l->name, what);
			} else {
				log_debug("%s: %s; retrying", l->name, what);
			}
			atomic_fetch_add(&l->counters.retries, 1);
			return VERDICT_RETRY;
		}
		if (*err == EAGAIN)
			*err = EIO;
		if (*err == EINVAL && sense.asc == 0x20)
			log_debug("%s: %s (CDB 0x%02x)", l->name, what, t->cdb[0]);
		else
			log_error("%s: %s (CDB 0x%02x)", l->name, what, t->cdb[0]);
		return VERDICT_FAIL;
	default:
		*err = scsi_status_to_errno(t->status);
		if (*err == EAGAIN && retries < MAX_RETRIES) {
			atomic_fetch_add(&l->counters.retries, 1);
			return VERDICT_RETRY;
		}
		log_error("%s: SCSI status %s (0x%02x) (CDB 0x%02x)", l->name,
			  scsi_status_name(t->status), t->status, t->cdb[0]);
		if (*err == EAGAIN || *err == 0)
			*err = EIO;
		return VERDICT_FAIL;
	}
}

/* ---- synchronous commands (probe, flush) ---- */

/* Run one command synchronously with Data-In into @buf (or no data),
 * retrying what is worth retrying.  Returns 0, or -1 with err_set(). */
static int lun_command(struct pool *pool, struct lun *l_for_log, uint32_t lun,
		       const uint8_t cdb[16], void *buf, uint32_t len, uint32_t *got)
{
	struct lun dummy = { .number = lun };
	struct lun *l = l_for_log;

	if (!l) {
		snprintf(dummy.name, sizeof dummy.name, "lun%u", lun);
		l = &dummy;
	}
	for (unsigned retries = 0;; retries++) {
		struct iscsi_task t = {
			.lun = lun,
			.dir = buf ? TASK_DIR_READ : TASK_DIR_NONE,
			.xfer_len = buf ? len : 0,
			.read_buf = buf,
		};
		int err;

		memcpy(t.cdb, cdb, 16);
		if (pool_exec(pool, &t) < 0 && t.result) {
			err_set(t.result, "%s: command 0x%02x failed: connection lost", l->name, cdb[0]);
			return -1;
		}
		switch (task_verdict(l, &t, retries, &err)) {
		case VERDICT_OK:
			if (got)
				*got = t.data_in_bytes;
			return 0;
		case VERDICT_RETRY:
			if (retries > 2)
				usleep(10000u << (retries < 6 ? retries : 6));
			continue;
		case VERDICT_FAIL:
			err_set(err, "%s: command 0x%02x failed: %s", l->name, cdb[0], strerror(err));
			return -1;
		}
	}
}

int lun_list(struct pool *pool, uint32_t *luns, size_t max)
{
	uint32_t alloc = 16 + 8 * 256;
	uint8_t cdb[16];
	uint32_t got = 0;
	size_t n = 0, count = 0;
	uint8_t *buf = NULL;
	uint64_t *wire = NULL;
	int rc;

	/* Ask once with room for 256 LUNs, and again with the size the
	 * target says it needs (bounded) when that was not enough. */
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
		if (lun_command(pool, NULL, 0, cdb, buf, alloc, &got) < 0) {
			log_info("REPORT LUNS failed (%s); trying LUN 0 alone", err_msg());
			free(buf);
			free(wire);
			luns[0] = 0;
			return 1;
		}
		rc = scsi_parse_report_luns(buf, got, wire, (alloc - 8) / 8, &count);
		if (rc < 0) {
			free(buf);
			free(wire);
			return -1;
		}
		uint64_t needed = scsi_report_luns_needed(buf, got);
		if (rc == 0 || needed <= alloc || needed > 16 + 8 * 16384)
			break;
		alloc = (uint32_t)needed;
	}
	for (size_t i = 0; i < count && n < max; i++) {
		int64_t number = pdu_lun_decode(wire[i]);
		if (number < 0) {
			log_warn("skipping LUN 0x%016llx: addressing method not supported",
				 (unsigned long long)wire[i]);
			continue;
		}
		luns[n++] = (uint32_t)number;
	}
	free(wire);
	free(buf);
	return (int)n;
}

/* Probe what the LUN is; fill geometry and limits. */
int lun_probe(struct pool *pool, uint32_t number, struct lun **out)
{
	struct lun *l = calloc(1, sizeof *l);
	uint8_t cdb[16], buf[512];
	uint32_t got;
	bool vpd_b0 = false, vpd_b2 = false, vpd_80 = false, vpd_83 = false;
	bool wp = false;

	*out = NULL;
	if (!l) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	l->pool = pool;
	l->number = number;
	snprintf(l->name, sizeof l->name, "lun%u", number);

	/* TEST UNIT READY clears the power-on Unit Attention; a LUN still not
	 * ready after the retries is reported by the commands below. */
	scsi_cdb_test_unit_ready(cdb);
	if (lun_command(pool, l, number, cdb, NULL, 0, NULL) < 0 && errno != EIO &&
	    errno != EINVAL)
		log_debug("%s: TEST UNIT READY: %s", l->name, err_msg());

	scsi_cdb_inquiry(cdb, false, 0, 96);
	if (lun_command(pool, l, number, cdb, buf, 96, &got) < 0)
		goto err;
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
	if (lun_command(pool, l, number, cdb, buf, 255, &got) == 0) {
		scsi_parse_vpd_supported(buf, got, 0x80, &vpd_80);
		scsi_parse_vpd_supported(buf, got, 0x83, &vpd_83);
		scsi_parse_vpd_supported(buf, got, 0xb0, &vpd_b0);
		scsi_parse_vpd_supported(buf, got, 0xb2, &vpd_b2);
	}
	if (vpd_80) {
		scsi_cdb_inquiry(cdb, true, 0x80, 255);
		if (lun_command(pool, l, number, cdb, buf, 255, &got) == 0)
			scsi_parse_vpd_serial(buf, got, l->serial, sizeof l->serial);
	}
	if (vpd_83) {
		scsi_cdb_inquiry(cdb, true, 0x83, 255);
		if (lun_command(pool, l, number, cdb, buf, 255, &got) == 0)
			scsi_parse_vpd_device_id(buf, got, l->device_id, sizeof l->device_id);
	}
	if (vpd_b0) {
		scsi_cdb_inquiry(cdb, true, 0xb0, 64);
		if (lun_command(pool, l, number, cdb, buf, 64, &got) == 0 &&
		    scsi_parse_vpd_block_limits(buf, got, &l->limits) < 0)
			memset(&l->limits, 0, sizeof l->limits);
	}
	if (vpd_b2) {
		scsi_cdb_inquiry(cdb, true, 0xb2, 64);
		if (lun_command(pool, l, number, cdb, buf, 64, &got) == 0 &&
		    scsi_parse_vpd_lbp(buf, got, &l->lbp) < 0)
			memset(&l->lbp, 0, sizeof l->lbp);
	}

	/* Capacity: READ CAPACITY(16), or (10) where the target lacks it. */
	scsi_cdb_read_capacity16(cdb, 32);
	if (lun_command(pool, l, number, cdb, buf, 32, &got) == 0) {
		if (scsi_parse_read_capacity16(buf, got, &l->capacity) < 0)
			goto err_parse;
		l->use16 = true;
	} else {
		scsi_cdb_read_capacity10(cdb);
		if (lun_command(pool, l, number, cdb, buf, 8, &got) < 0)
			goto err;
		int rc = scsi_parse_read_capacity10(buf, got, &l->capacity);
		if (rc < 0)
			goto err_parse;
		if (rc == 1) {
			err_set(EIO, "%s: capacity needs READ CAPACITY(16), which the target refused",
				l->name);
			goto err;
		}
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
	if (l->limits.opt_transfer_blocks)
		l->opt_xfer = l->limits.opt_transfer_blocks * l->block_size;

	/* Write protection: MODE SENSE(6), or (10) where (6) is refused. */
	scsi_cdb_mode_sense6(cdb, 0x3f, 255);
	if (lun_command(pool, l, number, cdb, buf, 255, &got) == 0) {
		scsi_parse_mode_sense_wp(buf, got, false, &wp);
	} else {
		scsi_cdb_mode_sense10(cdb, 0x3f, 255);
		if (lun_command(pool, l, number, cdb, buf, 255, &got) == 0)
			scsi_parse_mode_sense_wp(buf, got, true, &wp);
	}
	atomic_init(&l->write_protected, wp);
	atomic_init(&l->has_sync_cache, true);
	pthread_mutex_init(&l->range_lock, NULL);
	log_debug("%s: %llu blocks of %u bytes, max transfer %u, %s%s, vendor \"%s\" product \"%s\" serial \"%s\"",
		  l->name, (unsigned long long)l->blocks, l->block_size, l->max_xfer,
		  l->use16 ? "16-byte CDBs" : "10-byte CDBs",
		  l->write_protected ? ", write protected" : "",
		  l->inquiry.vendor, l->inquiry.product, l->serial);
	*out = l;
	return 1;

err_parse:      /* what the target returned is unusable: EPROTO, named */
	err_set(EPROTO, "%s: %s", l->name, err_msg());
err:
	free(l);
	return -1;
}

void lun_free(struct lun *l)
{
	if (!l)
		return;
	pthread_mutex_destroy(&l->range_lock);
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

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void count_request(struct lun *l, int64_t start_ns, int err)
{
	int64_t us = (now_ns() - start_ns) / 1000;
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

void sync_wait_init(struct sync_wait *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

void sync_wait_done(void *opaque, int err)
{
	struct sync_wait *w = opaque;

	pthread_mutex_lock(&w->lock);
	w->err = err;
	w->finished = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int sync_wait_finish(struct sync_wait *w)
{
	pthread_mutex_lock(&w->lock);
	while (!w->finished)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	if (w->err) {
		errno = w->err;
		return -1;
	}
	return 0;
}
