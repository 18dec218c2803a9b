/* lun_read.c: reading a LUN, and SYNCHRONIZE CACHE (see lun.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * Any thread may call lun_read(); it never waits on the network.  A read
 * is cut into commands of at most l->split bytes, submitted together to
 * the pool; the last one to finish, on a session's event loop, calls the
 * caller's callback with the data, which the session placed straight into
 * the request's buffer.  A retry (Unit Attention, BUSY, ...) is submitted
 * again from its completion, after a pause by the retry timer (retry.h)
 * when the target asked for one: no thread sleeps on it.  lun_pread() and
 * lun_flush() wait for the asynchronous forms.
 *
 * THE BUDGET OF READ BUFFERS
 *
 * A read's buffer holds its whole range until the reply, so reads of
 * IOBUF_LARGE bytes or more share one budget over the process,
 * READ_BUDGET bytes of buffers in flight: a read that would go past it
 * waits, in order of arrival, until reads that end give the room back
 * (one larger than the whole budget goes alone), or READ_WAIT_MAX_NS at
 * most (a timer on loop 0 starts it then, over the budget).  A waiting
 * read holds its pool (pool_hold()) until its commands are submitted, and
 * lun_reads_cancel() fails those of a pool about to be destroyed.  Smaller
 * reads take no part: their buffers are small and their number is
 * bounded by the queue depths.  budget.lock is a leaf: nothing is called
 * under it.
 */
#include "lun.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "completion.h"
#include "deadline.h"
#include "evloop.h"
#include "iobuf.h"
#include "log.h"
#include "lun_internal.h"

/* Bytes of large read buffers in flight at most (see above).  64 targets
 * each read with 1 MiB requests at once held 64 MiB of buffers without
 * it (a peak RSS of 70 MiB); 24 MiB is still more than one target with
 * sessions=4 and queue_depth=32 keeps busy with 1 MiB reads. */
#define READ_BUDGET (24u << 20)
/* A read waits for room this long at most: past it, it starts over the
 * budget, so that reads that do not end (a target that stopped
 * answering keeps its reads until -o timeout) hold the other targets'
 * for a second, not for ever. */
#define READ_WAIT_MAX_NS 1000000000LL

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
	uint8_t *buf;                 /* the whole aligned range (iobuf_alloc()) */
	size_t bytes;                 /* its size */
	uint64_t first;               /* its first block */
	size_t skew;                  /* offset of the caller's first byte in buf */
	size_t len;                   /* the caller's byte count */
	int64_t start_ns;             /* when it was asked for (monotonic) */
	atomic_uint pending;          /* pieces not yet finished */
	atomic_int err;               /* first error, 0 if none */
	bool budgeted;                /* its buffer counts in the budget */
	struct read_req *next;        /* budget.lock: the next read waiting */
	unsigned npieces;             /* entries in pieces */
	struct read_piece pieces[];   /* the commands */
};

static void budget_arm(struct ev_call *call);
static void budget_due(struct ev_timer *timer);

/* The budget of large read buffers (see the top of the file). */
static struct {
	pthread_mutex_t lock;              /* protects the fields below; a leaf */
	size_t used;                       /* lock: bytes of the buffers of reads started */
	struct read_req *head, *tail;      /* lock: reads waiting, in arrival order */
	unsigned long waits;               /* lock: reads that waited, since the start */
	bool armed;                        /* lock: timer is armed, or arm is posted */
	struct ev_timer timer;             /* loop 0: the oldest waiting read is due */
	struct ev_call arm;                /* posted to loop 0: arm timer */
} budget = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.timer = { .fire = budget_due },
	.arm = { .run = budget_arm },
};

static void read_start(struct read_req *r);

/* Whether a read of @bytes may start now.  budget.lock held. */
static bool budget_fits_locked(size_t bytes)
{
	return budget.used == 0 || budget.used + bytes <= READ_BUDGET;
}

/* Take @r's room in the budget, or queue it: whether it may start now. */
static bool budget_take(struct read_req *r)
{
	pthread_mutex_lock(&budget.lock);
	bool now = !budget.head && budget_fits_locked(r->bytes);
	if (now) {
		budget.used += r->bytes;
	} else {
		r->next = NULL;
		if (budget.tail)
			budget.tail->next = r;
		else
			budget.head = r;
		budget.tail = r;
		budget.waits++;
	}
	/* (no loop yet: the reads that end start it, as ever) */
	bool arm = !now && !budget.armed && evloops_count() > 0;
	if (arm)
		budget.armed = true;
	pthread_mutex_unlock(&budget.lock);
	if (arm)    /* (only loop 0 arms its timers; posting works from it too) */
		evloop_post(evloop_at(0), &budget.arm);
	return now;
}

/* On loop 0: the oldest waiting read is due READ_WAIT_MAX_NS after it
 * came: start every read that waited that long, past the budget if need
 * be (reads that do not end, of a target that stopped answering, must not
 * hold the others' for longer), and arm for the next, if any. */
static void budget_due(struct ev_timer *timer)
{
	int64_t now = mono_now_ns(), next = 0;
	struct read_req *go = NULL, **tail = &go;

	(void)timer;
	pthread_mutex_lock(&budget.lock);
	while (budget.head && now - budget.head->start_ns >= READ_WAIT_MAX_NS) {
		struct read_req *r = budget.head;
		budget.head = r->next;
		if (!budget.head)
			budget.tail = NULL;
		budget.used += r->bytes;
		r->next = NULL;
		*tail = r;
		tail = &r->next;
	}
	if (budget.head)
		next = budget.head->start_ns + READ_WAIT_MAX_NS;
	else
		budget.armed = false;
	pthread_mutex_unlock(&budget.lock);
	if (next)
		evloop_timer_arm(evloop_at(0), &budget.timer, next);
	while (go) {
		struct read_req *r = go;
		go = r->next;
		read_start(r);
	}
}

/* budget.arm, on loop 0: arm the timer for the oldest waiting read. */
static void budget_arm(struct ev_call *call)
{
	(void)call;
	pthread_mutex_lock(&budget.lock);
	int64_t due = budget.head ? budget.head->start_ns + READ_WAIT_MAX_NS : mono_now_ns();
	pthread_mutex_unlock(&budget.lock);
	evloop_timer_arm(evloop_at(0), &budget.timer, due);
}

/* This thread is in budget_give()'s loop (a read it started may end at
 * once, and give back its room from inside it). */
static _Thread_local bool giving;

/* Give back @bytes a read held, and start the reads waiting that fit now,
 * in order: one at a time, each taken off under the lock, by the
 * outermost call on this thread. */
static void budget_give(size_t bytes)
{
	pthread_mutex_lock(&budget.lock);
	budget.used -= bytes;
	pthread_mutex_unlock(&budget.lock);
	if (giving)
		return;
	giving = true;
	for (;;) {
		struct read_req *r = NULL;
		pthread_mutex_lock(&budget.lock);
		if (budget.head && budget_fits_locked(budget.head->bytes)) {
			r = budget.head;
			budget.head = r->next;
			if (!budget.head)
				budget.tail = NULL;
			budget.used += r->bytes;
		}
		pthread_mutex_unlock(&budget.lock);
		if (!r)
			break;
		read_start(r);
	}
	giving = false;
}

unsigned long lun_read_waits(void)
{
	pthread_mutex_lock(&budget.lock);
	unsigned long n = budget.waits;
	pthread_mutex_unlock(&budget.lock);
	return n;
}

void lun_reads_cancel(struct pool *p)
{
	struct read_req *gone = NULL;

	pthread_mutex_lock(&budget.lock);
	struct read_req **at = &budget.head, *last = NULL;
	while (*at) {
		struct read_req *r = *at;
		if (r->lun->pool == p) {
			*at = r->next;
			r->next = gone;
			gone = r;
		} else {
			last = r;
			at = &r->next;
		}
	}
	budget.tail = last;
	pthread_mutex_unlock(&budget.lock);
	while (gone) {
		struct read_req *r = gone;
		gone = r->next;
		r->cb(r->opaque, EIO, NULL, 0);
		free(r);
		pool_release(p);
	}
}

/* The end of @r (its callback ran, or it never started): its memory, and
 * its room in the budget. */
static void read_free(struct read_req *r)
{
	bool budgeted = r->budgeted;
	size_t bytes = r->bytes;

	iobuf_free(r->buf, r->bytes);
	free(r);
	if (budgeted)
		budget_give(bytes);
}

static void read_piece_done(struct iscsi_task *t)
{
	struct read_piece *piece = t->opaque;
	struct read_req *r = piece->req;
	int err;

	switch (task_verdict_resend(r->lun, t, &piece->retries, &err)) {
	case VERDICT_RETRY:
		return;
	case VERDICT_OK:
		if (t->data_in_bytes < t->xfer_len) {
			lun_log(r->lun, LOG_LEVEL_ERROR, "target %s, %s: READ returned %u of %u bytes",
				r->lun->target, r->lun->name, t->data_in_bytes, t->xfer_len);
			err = EIO;
		}
		break;
	case VERDICT_UNSUPPORTED:
		lun_log(r->lun, LOG_LEVEL_ERROR, "target %s, %s: READ refused as not supported",
			r->lun->target, r->lun->name);
		err = EIO;
		break;
	case VERDICT_FAIL:
		/* past the end: the LUN shrank under the read, which has no
		 * space to run out of */
		if (err == ENOSPC)
			err = EIO;
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
	read_free(r);
}

/* Allocate @r's buffer and submit its commands.  A read that waited in
 * the budget ends its hold on the pool once they are submitted. */
static void read_start(struct read_req *r)
{
	struct lun *l = r->lun;
	struct pool *pool = l->pool;
	bool held = r->bytes >= IOBUF_LARGE;

	r->buf = iobuf_alloc(r->bytes);
	if (!r->buf) {
		r->cb(r->opaque, ENOMEM, NULL, 0);
		read_free(r);
		if (held)
			pool_release(pool);
		return;
	}
	for (unsigned i = 0; i < r->npieces; i++) {
		struct read_piece *p = &r->pieces[i];
		size_t at = (size_t)i * l->split;
		uint32_t n = (uint32_t)(r->bytes - at < l->split ? r->bytes - at : l->split);
		p->req = r;
		p->task.lun = l->number;
		p->task.incarnation = l->incarnation;
		p->task.dir = TASK_DIR_READ;
		p->task.xfer_len = n;
		p->task.read_buf = r->buf + at;
		p->task.done = read_piece_done;
		p->task.opaque = p;
		build_rw_cdb(l, p->task.cdb, false, false, r->first + at / l->block_size,
			     n / l->block_size);
	}
	/* Submit after all are built: the last completion frees r. */
	unsigned npieces = r->npieces;
	for (unsigned i = 0; i < npieces; i++)
		pool_submit(pool, &r->pieces[i].task);
	if (held)
		pool_release(pool);
}

void lun_read(struct lun *l, uint64_t off, size_t len, lun_read_cb cb, void *opaque)
{
	uint64_t size = l->size;      /* one snapshot: the capacity may change */

	if (off >= size || len == 0) {
		cb(opaque, 0, NULL, 0);
		return;
	}
	if (len > size - off)
		len = (size_t)(size - off);
	uint64_t first = off / l->block_size;
	uint64_t end = (off + len + l->block_size - 1) / l->block_size;
	size_t bytes = (size_t)((end - first) * l->block_size);
	unsigned npieces = (unsigned)((bytes + l->split - 1) / l->split);
	struct read_req *r = calloc(1, sizeof *r + npieces * sizeof r->pieces[0]);

	if (!r) {
		cb(opaque, ENOMEM, NULL, 0);
		return;
	}
	r->lun = l;
	r->cb = cb;
	r->opaque = opaque;
	r->bytes = bytes;
	r->first = first;
	r->skew = (size_t)(off - first * l->block_size);
	r->len = len;
	r->start_ns = mono_now_ns();
	r->npieces = npieces;
	atomic_init(&r->pending, npieces);
	atomic_init(&r->err, 0);
	if (bytes < IOBUF_LARGE) {
		read_start(r);
		return;
	}
	/* held from here until its commands are submitted (read_start()),
	 * also while it waits for room */
	pool_hold(l->pool);
	r->budgeted = true;
	if (budget_take(r))
		read_start(r);
}

/* A synchronous read, for read-modify-write and tests. */
struct pread_wait {
	struct completion done;       /* posted by pread_cb() */
	void *dst;                    /* where the data goes */
	size_t got;                   /* bytes copied (written before done is posted) */
};

static void pread_cb(void *opaque, int err, const uint8_t *data, size_t len)
{
	struct pread_wait *w = opaque;
	if (!err)
		memcpy(w->dst, data, len);
	w->got = len;
	completion_post(&w->done, err);
}

ssize_t lun_pread(struct lun *l, void *buf, size_t len, uint64_t off)
{
	struct pread_wait w = { .dst = buf };

	completion_init(&w.done);
	lun_read(l, off, len, pread_cb, &w);
	if (completion_wait(&w.done) < 0)
		return -1;
	return (ssize_t)w.got;
}

/* A SYNCHRONIZE CACHE in flight. */
struct flush_req {
	struct iscsi_task task;       /* the command */
	struct lun *lun;              /* which LUN */
	lun_write_cb cb;              /* the caller's callback */
	void *opaque;                 /* the caller's argument */
	unsigned retries;             /* tries so far */
	atomic_uint_fast64_t *seen;   /* a flush for fsync: the open file's count of
	                               * deferred errors seen; NULL: tells none */
};

/* @err, or EIO when a deferred error said that data of an earlier write
 * may be lost: one our commands met since the open file's count *@seen
 * (which takes the count now: said once to each file), or one the
 * identity check of a reconnect met since the LUN's last fsync
 * (pool_take_writes_lost(): said once). */
static int flush_verdict(struct lun *l, int err, atomic_uint_fast64_t *seen)
{
	uint64_t now = atomic_load(&l->lost_reports);
	bool ours = atomic_exchange(seen, now) != now;

	if (!pool_take_writes_lost(l->pool, l->number) && !ours)
		return err;
	log_error("target %s, %s: the flush fails: a deferred error said data of an earlier "
		  "write may be lost", l->target, l->name);
	return err ? err : EIO;
}

static void flush_done(struct iscsi_task *t)
{
	struct flush_req *f = t->opaque;
	struct lun *l = f->lun;
	int err;

	switch (task_verdict_resend(l, t, &f->retries, &err)) {
	case VERDICT_RETRY:
		return;
	case VERDICT_OK:
		atomic_fetch_add(&l->counters.flushes, 1);
		break;
	case VERDICT_UNSUPPORTED:
		err = 0;
		if (t->cdb[0] == SCSI_OP_SYNC_CACHE16) {
			/* SBC-3 makes (16) optional: (10) with 0 blocks
			 * covers the whole medium, whatever its size */
			log_debug("%s: SYNCHRONIZE CACHE(16) refused; using (10)", l->name);
			atomic_store(&l->sync_cache16, false);
			f->retries = 0;
			scsi_cdb_sync_cache10(t->cdb, 0, 0);
			lun_resubmit(l, t, 0);
			return;
		}
		/* as a LUN without a volatile cache: nothing to flush */
		log_info("target %s, %s: SYNCHRONIZE CACHE not supported; not sending it again",
			 l->target, l->name);
		atomic_store(&l->has_sync_cache, false);
		break;
	case VERDICT_FAIL:
		lun_log(l, LOG_LEVEL_ERROR, "target %s, %s: SYNCHRONIZE CACHE failed: %s", l->target,
			l->name, strerror(err));
		break;
	}
	f->cb(f->opaque, f->seen ? flush_verdict(l, err, f->seen) : err);
	free(f);
}

/* lun_fsync_async(), and lun_flush_quiet() with no @seen. */
static void flush_async(struct lun *l, atomic_uint_fast64_t *seen, lun_write_cb cb,
			void *opaque)
{
	struct flush_req *f;

	if (!l->has_sync_cache) {
		cb(opaque, seen ? flush_verdict(l, 0, seen) : 0);
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
	f->seen = seen;
	f->task.lun = l->number;
	f->task.incarnation = l->incarnation;
	f->task.dir = TASK_DIR_NONE;
	f->task.done = flush_done;
	f->task.opaque = f;
	if (atomic_load(&l->sync_cache16))
		scsi_cdb_sync_cache16(f->task.cdb, 0, 0);
	else
		scsi_cdb_sync_cache10(f->task.cdb, 0, 0);
	pool_submit(l->pool, &f->task);
}

void lun_fsync_async(struct lun *l, atomic_uint_fast64_t *seen, lun_write_cb cb,
		     void *opaque)
{
	flush_async(l, seen, cb, opaque);
}

void lun_flush_quiet(struct lun *l, lun_write_cb cb, void *opaque)
{
	flush_async(l, NULL, cb, opaque);
}

