/* lun.c: LUN geometry and byte-addressed I/O (see lun.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * Any thread may call the I/O functions.  The data path never waits on
 * the network: lun_read() and lun_write() are asynchronous (lun_pread(),
 * lun_pwrite(), lun_flush() and probing are synchronous, for start-up,
 * fsync and tests).  The commands of one request
 * are submitted together and the last one to finish (on a session's RX
 * thread) calls the caller's callback.  Retries of a command are submitted
 * again from its completion, so no thread ever sleeps on a retry.  Writes
 * send the caller's buffer without a copy.
 *
 * l->range_lock protects l->ranges, the writes in flight or waiting, in
 * submission order.  A write starts only when no earlier write in the list
 * shares a block with it; when a write finishes, range_leave() starts the
 * waiting writes it was blocking.  That makes the read-modify-write of a
 * partial block atomic with respect to other writers through this mount
 * and keeps overlapping writes in submission order.  range_lock is a leaf:
 * nothing else is locked while it is held, and write_start() runs after it
 * is dropped.
 */
#include "lun.h"

#include <errno.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "iov.h"
#include "log.h"

/* How often a command is tried again after UNIT ATTENTION, NOT READY,
 * BUSY and the like before the error is returned. */
#define MAX_RETRIES 8
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

/* What to do with a finished task. */
enum verdict {
	VERDICT_OK,       /* GOOD */
	VERDICT_RETRY,    /* worth sending again */
	VERDICT_FAIL,     /* give up with the errno returned */
};

/* Decide what a finished task means; logs the cause of failures.  Returns
 * the verdict and sets *err for VERDICT_FAIL. */
static enum verdict task_verdict(struct lun *l, const struct iscsi_task *t,
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

static void build_rw_cdb(const struct lun *l, uint8_t cdb[16], bool write, bool fua,
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

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Count a finished request: its latency, or an error. */
static void count_request(struct lun *l, int64_t start_ns, int err)
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

/* ---- asynchronous reads ---- */

/* One command of a read. */
struct read_piece {
	struct iscsi_task task;       /* the READ command */
	struct read_req *req;         /* the read it belongs to */
	unsigned retries;             /* tries so far */
};

/* A read in flight: an aligned buffer filled by its pieces. */
struct read_req {
	struct lun *lun;              /* where from */
	lun_read_cb cb;               /* the caller's callback */
	void *opaque;                 /* the caller's argument */
	uint8_t *buf;                 /* the whole aligned range */
	size_t skew;                  /* offset of the caller's first byte in buf */
	size_t len;                   /* the caller's byte count */
	int64_t start_ns;             /* when it was submitted (monotonic) */
	atomic_uint pending;          /* pieces not yet finished */
	atomic_int err;               /* first error, 0 if none */
	unsigned npieces;             /* entries in pieces */
	struct read_piece pieces[];   /* the commands */
};

static void read_piece_done(struct iscsi_task *t)
{
	struct read_piece *piece = t->opaque;
	struct read_req *r = piece->req;
	int err;

	switch (task_verdict(r->lun, t, piece->retries, &err)) {
	case VERDICT_RETRY:
		piece->retries++;
		pool_submit(r->lun->pool, t);
		return;
	case VERDICT_OK:
		if (t->data_in_bytes < t->xfer_len) {
			log_error("%s: READ returned %u of %u bytes", r->lun->name,
				  t->data_in_bytes, t->xfer_len);
			err = EIO;
		}
		break;
	case VERDICT_FAIL:
		break;
	}
	if (err) {
		int zero = 0;
		atomic_compare_exchange_strong(&r->err, &zero, err);
	}
	if (atomic_fetch_sub(&r->pending, 1) != 1)
		return;
	err = atomic_load(&r->err);
	count_request(r->lun, r->start_ns, err);
	if (!err) {
		atomic_fetch_add(&r->lun->counters.reads, 1);
		atomic_fetch_add(&r->lun->counters.bytes_read, r->len);
	}
	r->cb(r->opaque, err, err ? NULL : r->buf + r->skew, err ? 0 : r->len);
	free(r->buf);
	free(r);
}

void lun_read(struct lun *l, uint64_t off, size_t len, lun_read_cb cb, void *opaque)
{
	if (off >= l->size || len == 0) {
		cb(opaque, 0, NULL, 0);
		return;
	}
	if (len > l->size - off)
		len = (size_t)(l->size - off);
	uint64_t first = off / l->block_size;
	uint64_t end = (off + len + l->block_size - 1) / l->block_size;
	size_t bytes = (size_t)((end - first) * l->block_size);
	unsigned npieces = (unsigned)((bytes + l->split - 1) / l->split);
	struct read_req *r = calloc(1, sizeof *r + npieces * sizeof r->pieces[0]);
	uint8_t *buf = malloc(bytes);

	if (!r || !buf) {
		free(r);
		free(buf);
		cb(opaque, ENOMEM, NULL, 0);
		return;
	}
	r->lun = l;
	r->cb = cb;
	r->opaque = opaque;
	r->buf = buf;
	r->skew = (size_t)(off - first * l->block_size);
	r->len = len;
	r->start_ns = now_ns();
	r->npieces = npieces;
	atomic_init(&r->pending, npieces);
	atomic_init(&r->err, 0);
	for (unsigned i = 0; i < npieces; i++) {
		struct read_piece *p = &r->pieces[i];
		size_t at = (size_t)i * l->split;
		uint32_t n = (uint32_t)(bytes - at < l->split ? bytes - at : l->split);
		p->req = r;
		p->task.lun = l->number;
		p->task.dir = TASK_DIR_READ;
		p->task.xfer_len = n;
		p->task.read_buf = buf + at;
		p->task.done = read_piece_done;
		p->task.opaque = p;
		build_rw_cdb(l, p->task.cdb, false, false, first + at / l->block_size,
			     n / l->block_size);
	}
	/* Submit after all are built: the last completion frees r. */
	for (unsigned i = 0; i < npieces; i++)
		pool_submit(l->pool, &r->pieces[i].task);
}

/* A synchronous read, for read-modify-write and tests. */
struct pread_wait {
	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* signalled when finished */
	bool finished;                /* the callback ran */
	int err;                      /* its error */
	void *dst;                    /* where the data goes */
	size_t got;                   /* bytes copied */
};

static void pread_cb(void *opaque, int err, const uint8_t *data, size_t len)
{
	struct pread_wait *w = opaque;
	if (!err)
		memcpy(w->dst, data, len);
	pthread_mutex_lock(&w->lock);
	w->err = err;
	w->got = len;
	w->finished = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

ssize_t lun_pread(struct lun *l, void *buf, size_t len, uint64_t off)
{
	struct pread_wait w = { .dst = buf };

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	lun_read(l, off, len, pread_cb, &w);
	pthread_mutex_lock(&w.lock);
	while (!w.finished)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
	pthread_mutex_destroy(&w.lock);
	pthread_cond_destroy(&w.cond);
	if (w.err) {
		errno = w.err;
		return -1;
	}
	return (ssize_t)w.got;
}

/* ---- writes ---- */

/* One WRITE command of a write request. */
struct write_piece {
	struct iscsi_task task;       /* the WRITE (UNMAP, WRITE SAME) command */
	struct write_req *req;        /* the write it belongs to */
	struct iovec iov[4];          /* its slice of the payload */
	uint8_t unmap_param[SCSI_UNMAP_PARAM_LEN]; /* UNMAP: its parameter list */
	unsigned retries;             /* tries so far */
};

/* What a write request does to its blocks. */
enum write_kind {
	WRITE_DATA,       /* the caller's bytes */
	WRITE_ZEROES,     /* zeros, deallocating where that reads back as zeros */
	WRITE_PUNCH,      /* deallocate; unaligned edges and leftovers zeroed */
};

/* A write in flight.  Its life: queued in l->ranges behind any earlier
 * overlapping write; started (edge blocks read when the range is not
 * block-aligned, then merged); its WRITE commands in flight; finished
 * (taken out of l->ranges, which may start the next overlapping write,
 * then the caller's callback). */
struct write_req {
	struct lun *lun;              /* where to */
	lun_write_cb cb;              /* the caller's callback */
	void *opaque;                 /* the caller's argument */
	enum write_kind kind;         /* data, zeros or a hole */
	bool fua;                     /* WRITE_DATA: Force Unit Access */
	int64_t start_ns;             /* when it was submitted (monotonic) */
	const uint8_t *buf;           /* WRITE_DATA: the caller's bytes (sent without a copy) */
	uint8_t *zeros;               /* zeroing: a zero-filled buffer, NULL if not needed */
	size_t len;                   /* the caller's byte count */
	size_t head;                  /* offset of buf[0] in block first */
	size_t tail;                  /* bytes of buf in block end - 1 when unaligned, else 0 */
	uint64_t first;               /* first block written */
	uint64_t end;                 /* one past the last block written */
	struct write_req *next;       /* l->ranges link, submission order (range_lock) */
	bool started;                 /* nothing earlier overlaps: it runs (range_lock) */
	struct write_req *ready_next; /* range_leave()'s list of writes to start */
	uint8_t *edge_head;           /* block first, read then merged; NULL if not needed */
	uint8_t *edge_tail;           /* block end - 1, read then merged; NULL if not needed */
	atomic_uint edges_pending;    /* edge reads not finished */
	atomic_uint pending;          /* WRITE commands not finished */
	atomic_int err;               /* first error, 0 if none */
	unsigned npieces;             /* entries in pieces */
	struct write_piece pieces[];  /* the commands */
};

static bool writes_overlap(const struct write_req *a, const struct write_req *b)
{
	return a->first < b->end && b->first < a->end;
}

static void write_set_error(struct write_req *w, int err)
{
	int zero = 0;
	if (err)
		atomic_compare_exchange_strong(&w->err, &zero, err);
}

/* Queue @w behind the writes submitted before it.  Returns true when
 * nothing earlier overlaps it, so the caller starts it now. */
static bool range_enter(struct lun *l, struct write_req *w)
{
	struct write_req **pp;
	bool blocked = false;

	pthread_mutex_lock(&l->range_lock);
	for (pp = &l->ranges; *pp; pp = &(*pp)->next)
		if (writes_overlap(*pp, w))
			blocked = true;
	w->next = NULL;
	w->started = !blocked;
	*pp = w;
	pthread_mutex_unlock(&l->range_lock);
	return !blocked;
}

static void write_start(struct write_req *w);

/* Take finished @w out of l->ranges, then start each waiting write that
 * no earlier write overlaps any more. */
static void range_leave(struct lun *l, struct write_req *w)
{
	struct write_req *ready = NULL, **tail = &ready;

	pthread_mutex_lock(&l->range_lock);
	for (struct write_req **pp = &l->ranges; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	for (struct write_req *c = l->ranges; c; c = c->next) {
		bool blocked = false;
		if (c->started)
			continue;
		for (struct write_req *e = l->ranges; e != c && !blocked; e = e->next)
			blocked = writes_overlap(e, c);
		if (blocked)
			continue;
		c->started = true;
		c->ready_next = NULL;
		*tail = c;
		tail = &c->ready_next;
	}
	pthread_mutex_unlock(&l->range_lock);
	while (ready) {
		struct write_req *next = ready->ready_next;
		write_start(ready);
		ready = next;
	}
}

static void write_finish(struct write_req *w)
{
	struct lun *l = w->lun;
	int err = atomic_load(&w->err);

	if (err == EROFS)
		l->write_protected = true;
	count_request(l, w->start_ns, err);
	if (!err) {
		switch (w->kind) {
		case WRITE_DATA:
			atomic_fetch_add(&l->counters.writes, 1);
			atomic_fetch_add(&l->counters.bytes_written, w->len);
			if (w->fua)
				atomic_fetch_add(&l->counters.fua_writes, 1);
			break;
		case WRITE_ZEROES:
			atomic_fetch_add(&l->counters.zeroings, 1);
			break;
		case WRITE_PUNCH:
			atomic_fetch_add(&l->counters.holes, 1);
			break;
		}
	}
	range_leave(l, w);
	w->cb(w->opaque, err);
	free(w->edge_head);
	free(w->edge_tail);
	free(w->zeros);
	free(w);
}

static void write_piece_done(struct iscsi_task *t)
{
	struct write_piece *p = t->opaque;
	struct write_req *w = p->req;
	int err;

	if (task_verdict(w->lun, t, p->retries, &err) == VERDICT_RETRY) {
		p->retries++;
		pool_submit(w->lun->pool, t);
		return;
	}
	write_set_error(w, err);
	if (atomic_fetch_sub(&w->pending, 1) == 1)
		write_finish(w);
}

/* ---- holes and zeros ---- */

/* How the interior (whole blocks) of a hole or zero range is sent. */
enum discard_method {
	DISCARD_UNMAP,            /* UNMAP: the LUN reads unmapped blocks as zeros */
	DISCARD_WRITE_SAME,       /* WRITE SAME(16) of a zero block with UNMAP set */
	DISCARD_WRITE_ZEROS,      /* plain WRITEs of zeros */
};

/* Commands at most this many blocks long when the LUN sets no limit. */
#define DISCARD_CHUNK_BLOCKS (1u << 22)

static enum discard_method discard_method(const struct lun *l)
{
	if (l->lbp.unmap && (l->lbp.lbprz || l->capacity.lbprz))
		return DISCARD_UNMAP;
	if (l->lbp.write_same16)
		return DISCARD_WRITE_SAME;
	return DISCARD_WRITE_ZEROS;   /* a hole is refused (EOPNOTSUPP) before this */
}

/* True when the LUN can make a hole that reads back as zeros. */
static bool can_punch(const struct lun *l)
{
	return discard_method(l) != DISCARD_WRITE_ZEROS;
}

/* Fill one piece (when @p is not NULL) with a command over blocks
 * [@lba, @lba + @blocks) of @w by @method. */
static void discard_piece(struct write_req *w, struct write_piece *p, enum discard_method method,
			  uint64_t lba, uint32_t blocks)
{
	struct lun *l = w->lun;

	if (!p)
		return;
	p->req = w;
	p->task.lun = l->number;
	p->task.done = write_piece_done;
	p->task.opaque = p;
	p->task.dir = TASK_DIR_WRITE;
	p->task.write_iov = p->iov;
	p->task.write_iovcnt = 1;
	switch (method) {
	case DISCARD_UNMAP:
		p->task.xfer_len = (uint32_t)scsi_unmap_param(p->unmap_param, sizeof p->unmap_param,
							       lba, blocks);
		p->iov[0] = (struct iovec){ p->unmap_param, p->task.xfer_len };
		scsi_cdb_unmap(p->task.cdb, (uint16_t)p->task.xfer_len);
		break;
	case DISCARD_WRITE_SAME:
		p->task.xfer_len = l->block_size;
		p->iov[0] = (struct iovec){ w->zeros, l->block_size };
		scsi_cdb_write_same16(p->task.cdb, lba, blocks, true);
		break;
	case DISCARD_WRITE_ZEROS:
		p->task.xfer_len = blocks * l->block_size;
		p->iov[0] = (struct iovec){ w->zeros, p->task.xfer_len };
		build_rw_cdb(l, p->task.cdb, true, false, lba, blocks);
		break;
	}
}

/* Cover blocks [@a, @b) with commands of at most @chunk blocks each;
 * returns how many (filling @out from index @n when it is not NULL). */
static unsigned discard_span(struct write_req *w, struct write_piece *out, unsigned n,
			     enum discard_method method, uint64_t a, uint64_t b, uint32_t chunk)
{
	unsigned count = 0;

	while (a < b) {
		uint32_t blocks = b - a < chunk ? (uint32_t)(b - a) : chunk;
		discard_piece(w, out ? &out[n + count] : NULL, method, a, blocks);
		count++;
		a += blocks;
	}
	return count;
}

/* Plan the commands of a hole or zero range: the partial edge blocks
 * written whole after merging zeros, the interior by the LUN's method
 * (UNMAP only on granularity-aligned blocks; the rest written as zeros).
 * Counts them, and fills @out when it is not NULL. */
static unsigned discard_plan(struct write_req *w, struct write_piece *out)
{
	struct lun *l = w->lun;
	uint32_t bs = l->block_size;
	uint32_t zero_chunk = l->split / bs;
	uint64_t a = w->first + (w->edge_head != NULL);
	uint64_t b = w->end - (w->edge_tail != NULL);
	unsigned n = 0;

	if (w->edge_head) {
		if (out) {
			discard_piece(w, &out[n], DISCARD_WRITE_ZEROS, w->first, 1);
			out[n].iov[0].iov_base = w->edge_head;
		}
		n++;
	}
	if (w->edge_tail) {
		if (out) {
			discard_piece(w, &out[n], DISCARD_WRITE_ZEROS, w->end - 1, 1);
			out[n].iov[0].iov_base = w->edge_tail;
		}
		n++;
	}
	if (a >= b)
		return n;
	switch (discard_method(l)) {
	case DISCARD_UNMAP: {
		uint64_t g = l->limits.unmap_granularity ? l->limits.unmap_granularity : 1;
		uint64_t align = l->limits.unmap_alignment_valid ? l->limits.unmap_alignment % g : 0;
		uint64_t ua = a + (g - (a + g - align) % g) % g;     /* first aligned block >= a */
		uint64_t ub = b - (b + g - align) % g;                /* last aligned boundary <= b */
		uint32_t chunk = l->limits.max_unmap_blocks && l->limits.max_unmap_blocks < DISCARD_CHUNK_BLOCKS ?
			l->limits.max_unmap_blocks : DISCARD_CHUNK_BLOCKS;
		if (ub <= ua) {                                       /* nothing aligned */
			n += discard_span(w, out, n, DISCARD_WRITE_ZEROS, a, b, zero_chunk);
			break;
		}
		n += discard_span(w, out, n, DISCARD_WRITE_ZEROS, a, ua, zero_chunk);
		n += discard_span(w, out, n, DISCARD_UNMAP, ua, ub, chunk);
		n += discard_span(w, out, n, DISCARD_WRITE_ZEROS, ub, b, zero_chunk);
		break;
	}
	case DISCARD_WRITE_SAME: {
		uint64_t max = l->limits.max_write_same_blocks;
		uint32_t chunk = max && max < DISCARD_CHUNK_BLOCKS ? (uint32_t)max : DISCARD_CHUNK_BLOCKS;
		n += discard_span(w, out, n, DISCARD_WRITE_SAME, a, b, chunk);
		break;
	}
	case DISCARD_WRITE_ZEROS:
		n += discard_span(w, out, n, DISCARD_WRITE_ZEROS, a, b, zero_chunk);
		break;
	}
	return n;
}

/* Send the commands discard_plan() made room for at lun_discard(). */
static void discard_send(struct write_req *w)
{
	static const char *const method_names[] = {
		[DISCARD_UNMAP] = "UNMAP", [DISCARD_WRITE_SAME] = "WRITE SAME(16) with UNMAP",
		[DISCARD_WRITE_ZEROS] = "writing zeros",
	};
	struct write_piece *pieces = w->pieces;
	unsigned npieces = discard_plan(w, pieces);

	log_debug("%s: %s blocks %llu..%llu: %u commands, interior by %s", w->lun->name,
		  w->kind == WRITE_PUNCH ? "hole over" : "zeroing", (unsigned long long)w->first,
		  (unsigned long long)w->end - 1, npieces, method_names[discard_method(w->lun)]);
	atomic_store(&w->pending, npieces);
	/* The last completion frees w: read nothing of it after that. */
	for (unsigned i = 0; i < npieces; i++)
		pool_submit(w->lun->pool, &pieces[i].task);
}

/* Send the WRITE commands: the whole blocks [first, end), built from the
 * merged edge blocks and the caller's buffer. */
static void write_send(struct write_req *w)
{
	struct lun *l = w->lun;
	uint32_t bs = l->block_size;
	size_t bytes = (size_t)((w->end - w->first) * bs);
	struct iovec iov[3];
	int n = 0;

	if (atomic_load(&w->err)) {
		write_finish(w);
		return;
	}
	if (w->kind != WRITE_DATA) {
		discard_send(w);
		return;
	}
	if (w->end - w->first == 1 && w->edge_head) {
		iov[n++] = (struct iovec){ w->edge_head, bs };
	} else {
		size_t done = 0, middle;
		if (w->edge_head) {
			iov[n++] = (struct iovec){ w->edge_head, bs };
			done = bs - w->head;
		}
		middle = w->len - done - w->tail;
		if (middle)
			iov[n++] = (struct iovec){ (void *)(w->buf + done), middle };
		if (w->edge_tail)
			iov[n++] = (struct iovec){ w->edge_tail, bs };
	}
	atomic_store(&w->pending, w->npieces);
	for (unsigned i = 0; i < w->npieces; i++) {
		struct write_piece *p = &w->pieces[i];
		size_t at = (size_t)i * l->split;
		uint32_t len = (uint32_t)(bytes - at < l->split ? bytes - at : l->split);
		p->req = w;
		p->task.lun = l->number;
		p->task.dir = TASK_DIR_WRITE;
		p->task.xfer_len = len;
		p->task.write_iov = p->iov;
		p->task.write_iovcnt = iov_slice(iov, n, at, len, p->iov, 4);
		p->task.done = write_piece_done;
		p->task.opaque = p;
		build_rw_cdb(l, p->task.cdb, true, w->fua, w->first + at / bs, len / bs);
	}
	/* Submit after all are built.  The last completion frees w, maybe
	 * before pool_submit() returns: read nothing of w after that. */
	struct write_piece *pieces = w->pieces;
	unsigned npieces = w->npieces;
	for (unsigned i = 0; i < npieces; i++)
		pool_submit(l->pool, &pieces[i].task);
}

/* An edge block arrived: merge the caller's bytes into it. */
static void write_edge_read(struct write_req *w, uint8_t *edge, uint64_t block, int err,
			    const uint8_t *data, size_t len)
{
	uint32_t bs = w->lun->block_size;

	if (!err && len != bs) {
		log_error("%s: read of block %llu for read-modify-write returned %zu bytes",
			  w->lun->name, (unsigned long long)block, len);
		err = EIO;
	}
	if (err) {
		write_set_error(w, err);
	} else {
		memcpy(edge, data, bs);
		if (block == w->first) {
			size_t n = w->end - w->first == 1 ? w->len : bs - w->head;
			if (w->buf)
				memcpy(edge + w->head, w->buf, n);
			else
				memset(edge + w->head, 0, n);
		} else if (w->buf) {
			memcpy(edge, w->buf + w->len - w->tail, w->tail);
		} else {
			memset(edge, 0, w->tail);
		}
	}
	if (atomic_fetch_sub(&w->edges_pending, 1) == 1)
		write_send(w);
}

static void write_head_read(void *opaque, int err, const uint8_t *data, size_t len)
{
	struct write_req *w = opaque;
	write_edge_read(w, w->edge_head, w->first, err, data, len);
}

static void write_tail_read(void *opaque, int err, const uint8_t *data, size_t len)
{
	struct write_req *w = opaque;
	write_edge_read(w, w->edge_tail, w->end - 1, err, data, len);
}

/* Nothing earlier overlaps @w: read its partial edge blocks, or send it. */
static void write_start(struct write_req *w)
{
	struct lun *l = w->lun;
	uint32_t bs = l->block_size;
	unsigned edges = (w->edge_head != NULL) + (w->edge_tail != NULL);

	if (edges == 0) {
		write_send(w);
		return;
	}
	/* The last edge read to finish goes on to send, and the write may
	 * finish and free w before lun_read() returns: decide from locals. */
	bool head = w->edge_head != NULL, tail = w->edge_tail != NULL;
	uint64_t head_off = w->first * bs, tail_off = (w->end - 1) * bs;

	atomic_store(&w->edges_pending, edges);
	if (head)
		lun_read(l, head_off, bs, write_head_read, w);
	if (tail)
		lun_read(l, tail_off, bs, write_tail_read, w);
}

/* A new write request of @kind over bytes [@off, @off + @len) (checked
 * by the caller) with its edge buffers; its pieces are counted and
 * allocated here too.  NULL on ENOMEM. */
static struct write_req *write_req_new(struct lun *l, enum write_kind kind, const void *buf,
				       size_t len, uint64_t off, lun_write_cb cb, void *opaque)
{
	uint32_t bs = l->block_size;
	uint64_t first = off / bs;
	uint64_t end = (off + len + bs - 1) / bs;
	bool one_block = end - first == 1;
	struct write_req proto = {
		.lun = l, .cb = cb, .opaque = opaque, .kind = kind, .buf = buf, .len = len,
		.first = first, .end = end, .start_ns = now_ns(),
		.head = (size_t)(off % bs), .tail = (size_t)((off + len) % bs),
	};
	unsigned npieces;
	struct write_req *w;

	/* A write inside one block needs that block once (as edge_head). */
	if (proto.head || (one_block && proto.tail))
		proto.edge_head = malloc(bs);
	if (proto.tail && !one_block)
		proto.edge_tail = malloc(bs);
	if (kind != WRITE_DATA)
		proto.zeros = calloc(1, l->split);
	if (((proto.head || (one_block && proto.tail)) && !proto.edge_head) ||
	    (proto.tail && !one_block && !proto.edge_tail) ||
	    (kind != WRITE_DATA && !proto.zeros))
		goto nomem;
	if (kind == WRITE_DATA)
		npieces = (unsigned)(((end - first) * bs + l->split - 1) / l->split);
	else
		npieces = discard_plan(&proto, NULL);
	w = calloc(1, sizeof *w + npieces * sizeof w->pieces[0]);
	if (!w)
		goto nomem;
	*w = proto;
	w->npieces = npieces;
	atomic_init(&w->err, 0);
	atomic_init(&w->pending, 0);
	atomic_init(&w->edges_pending, 0);
	return w;
nomem:
	free(proto.edge_head);
	free(proto.edge_tail);
	free(proto.zeros);
	return NULL;
}

void lun_write(struct lun *l, const void *buf, size_t len, uint64_t off, bool fua,
	       lun_write_cb cb, void *opaque)
{
	struct write_req *w;

	if (len == 0) {
		cb(opaque, 0);
		return;
	}
	if (off >= l->size || len > l->size - off) {
		cb(opaque, ENOSPC);
		return;
	}
	if (l->write_protected) {
		cb(opaque, EROFS);
		return;
	}
	w = write_req_new(l, WRITE_DATA, buf, len, off, cb, opaque);
	if (!w) {
		cb(opaque, ENOMEM);
		return;
	}
	w->fua = fua;
	if (range_enter(l, w))
		write_start(w);
}

bool lun_can_punch(const struct lun *l)
{
	return can_punch(l);
}

void lun_discard(struct lun *l, uint64_t off, uint64_t len, bool punch, lun_write_cb cb,
		 void *opaque)
{
	struct write_req *w;

	if (off >= l->size || len == 0) {
		cb(opaque, 0);
		return;
	}
	if (len > l->size - off)
		len = l->size - off;
	if (l->write_protected) {
		cb(opaque, EROFS);
		return;
	}
	if (punch && !can_punch(l)) {
		cb(opaque, EOPNOTSUPP);
		return;
	}
	if (len > SIZE_MAX)
		len = SIZE_MAX;
	w = write_req_new(l, punch ? WRITE_PUNCH : WRITE_ZEROES, NULL, (size_t)len, off, cb, opaque);
	if (!w) {
		cb(opaque, ENOMEM);
		return;
	}
	if (range_enter(l, w))
		write_start(w);
}

/* Waiting for an asynchronous write or flush: lun_pwrite(), lun_flush(). */
struct sync_wait {
	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* signalled when finished */
	bool finished;                /* the callback ran */
	int err;                      /* its error */
};

static void sync_wait_init(struct sync_wait *w)
{
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
}

static void sync_wait_done(void *opaque, int err)
{
	struct sync_wait *w = opaque;

	pthread_mutex_lock(&w->lock);
	w->err = err;
	w->finished = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Wait for the callback; returns 0, or -1 with errno. */
static int sync_wait_finish(struct sync_wait *w)
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

ssize_t lun_pwrite(struct lun *l, const void *buf, size_t len, uint64_t off)
{
	struct sync_wait w = { .finished = false };

	sync_wait_init(&w);
	lun_write(l, buf, len, off, false, sync_wait_done, &w);
	return sync_wait_finish(&w) < 0 ? -1 : (ssize_t)len;
}

/* A SYNCHRONIZE CACHE in flight. */
struct flush_req {
	struct iscsi_task task;       /* the command */
	struct lun *lun;              /* which LUN */
	lun_write_cb cb;              /* the caller's callback */
	void *opaque;                 /* the caller's argument */
	unsigned retries;             /* tries so far */
};

static void flush_done(struct iscsi_task *t)
{
	struct flush_req *f = t->opaque;
	struct lun *l = f->lun;
	int err;

	switch (task_verdict(l, t, f->retries, &err)) {
	case VERDICT_RETRY:
		f->retries++;
		pool_submit(l->pool, t);
		return;
	case VERDICT_OK:
		atomic_fetch_add(&l->counters.flushes, 1);
		break;
	case VERDICT_FAIL:
		if (err == EINVAL) {
			log_info("%s: target does not support SYNCHRONIZE CACHE; not sending it again",
				 l->name);
			l->has_sync_cache = false;
			err = 0;
		} else {
			log_error("%s: SYNCHRONIZE CACHE failed: %s", l->name, strerror(err));
		}
		break;
	}
	f->cb(f->opaque, err);
	free(f);
}

void lun_flush_async(struct lun *l, lun_write_cb cb, void *opaque)
{
	struct flush_req *f;

	if (!l->has_sync_cache) {
		cb(opaque, 0);
		return;
	}
	f = calloc(1, sizeof *f);
	if (!f) {
		cb(opaque, ENOMEM);
		return;
	}
	f->lun = l;
	f->cb = cb;
	f->opaque = opaque;
	f->task.lun = l->number;
	f->task.dir = TASK_DIR_NONE;
	f->task.done = flush_done;
	f->task.opaque = f;
	if (l->use16)
		scsi_cdb_sync_cache16(f->task.cdb, 0, 0);
	else
		scsi_cdb_sync_cache10(f->task.cdb, 0, 0);
	pool_submit(l->pool, &f->task);
}

int lun_flush(struct lun *l)
{
	struct sync_wait w = { .finished = false };

	sync_wait_init(&w);
	lun_flush_async(l, sync_wait_done, &w);
	return sync_wait_finish(&w);
}
