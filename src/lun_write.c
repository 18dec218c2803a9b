/* lun_write.c: writing a LUN, and making ranges of it read as zeros
 * (holes, zeroing) (see lun.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * Any thread may call lun_write() and lun_discard(); neither waits on the
 * network.  The commands of one write are submitted together and the
 * last one to finish (on a session's event loop) calls the caller's
 * callback.  Writes send the caller's buffer without a copy.  A hole or
 * zero range is planned by discard_plan.c and sent at most DISCARD_SLOTS
 * commands at a time: the thread that finishes one command sends the
 * plan's next from the same slot (w->next_piece hands out each once);
 * the last slot to run out calls the callback.  A hole sends its first
 * UNMAP or WRITE SAME alone, before any other command: a LUN that refuses
 * it then fails the hole with nothing written (w->lead).
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "completion.h"
#include "discard_plan.h"
#include "iov.h"
#include "log.h"
#include "lun_internal.h"

/* ---- writes ---- */

/* One WRITE command of a write request. */
struct write_piece {
	struct iscsi_task task;       /* the WRITE (UNMAP, WRITE SAME) command */
	struct write_req *req;        /* the write it belongs to */
	struct iovec iov[4];          /* its slice of the payload */
	uint8_t unmap_param[SCSI_UNMAP_PARAM_LEN]; /* UNMAP: its parameter list */
	unsigned retries;             /* tries so far */
};

/* Commands of one hole or zero range in flight at most: a plan may hold
 * billions of them (zeroing a big LUN), so they go a few at a time, each
 * finished piece taking the plan's next command. */
#define DISCARD_SLOTS 64u

/* write_req.lead when a plan's commands all go at once. */
#define NO_LEAD UINT64_MAX

/* What a write request does to its blocks. */
enum write_kind {
	WRITE_DATA,       /* the caller's bytes */
	WRITE_ZEROES,     /* zeros (WRITE SAME with UNMAP may deallocate them) */
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
	atomic_bool flush_after;      /* fua on a LUN that does not take the FUA bit
	                               * (l->fua): sent without it, then
	                               * SYNCHRONIZE CACHE before the callback */
	uint64_t lost_at_start;       /* l->lost_reports when it was submitted: one
	                               * more by the end of that flush, and its
	                               * data, acknowledged from the cache, may be
	                               * lost (fua_flushed()) */
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
	struct discard_plan plan;     /* holes and zeros: every command (discard_plan.h) */
	atomic_uint_fast64_t next_piece; /* holes and zeros: the plan's next command to send */
	atomic_bool replan;           /* zeros: the LUN refused the plan's UNMAP or WRITE
	                               * SAME; once its commands out have ended, the
	                               * range is planned and sent again without it */
	uint64_t lead;                /* holes: the plan's first UNMAP or WRITE SAME,
	                               * sent alone before the rest (NO_LEAD: none,
	                               * every command goes at once); set before a
	                               * plan's first command is sent */
	atomic_bool leading;          /* holes: the lead is out, alone */
	unsigned npieces;             /* entries in pieces */
	struct write_piece pieces[];  /* the commands (holes and zeros: slots reused
	                               * for the plan's commands, in order) */
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
			if (w->fua && !atomic_load(&w->flush_after))
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
	/* a failed write may have reached part of its blocks */
	lun_sparse_changed(l, w->first, w->end, w->kind == WRITE_DATA && !err);
	range_leave(l, w);
	w->cb(w->opaque, err);
	free(w->edge_head);
	free(w->edge_tail);
	free(w->zeros);
	free(w);
}

static bool discard_next(struct write_req *w, struct write_piece *p);
static bool discard_send_rest(struct write_req *w);
static void discard_plan(struct write_req *w);
static void discard_send(struct write_req *w);

/* The SYNCHRONIZE CACHE that stands in for FUA on write @opaque ended.
 * A deferred error that came while the write ran (on its pieces, or on
 * that flush before it was sent again) says data acknowledged from the
 * cache may be lost, this write's perhaps: it fails with EIO, not
 * only the next fsync of each open file (which the writer of O_DSYNC may
 * never call). */
static void fua_flushed(void *opaque, int err)
{
	struct write_req *w = opaque;
	struct lun *l = w->lun;

	if (!err && atomic_load(&l->lost_reports) != w->lost_at_start) {
		lun_log(l, LOG_LEVEL_ERROR, "target %s, %s: a write that must reach stable media "
			"fails: a deferred error during it said data of an earlier write may be "
			"lost", l->target, l->name);
		err = EIO;
	}
	write_set_error(w, err);
	write_finish(w);
}

/* Piece @p of FUA write @w was refused as not supported: the FUA bit, as
 * far as we know (DPOFUA said it was taken).  From now on the LUN's FUA
 * writes go without it, flushed after; @p is sent again so.  Returns
 * whether it was (false: the refusal is the WRITE's). */
static bool fua_refused(struct write_req *w, struct write_piece *p)
{
	struct lun *l = w->lun;
	uint8_t op = p->task.cdb[0];

	if (!w->fua || (op != SCSI_OP_WRITE10 && op != SCSI_OP_WRITE16) ||
	    !(p->task.cdb[1] & SCSI_CDB_FUA))
		return false;
	if (atomic_exchange(&l->fua, false))
		log_warn("target %s, %s: WRITE with FUA refused; writes that must reach stable "
			 "media are flushed with SYNCHRONIZE CACHE instead", l->target, l->name);
	atomic_store(&w->flush_after, true);
	p->task.cdb[1] &= (uint8_t)~SCSI_CDB_FUA;
	p->retries = 0;
	lun_resubmit(l, &p->task, 0);
	return true;
}

/* How the middle of a hole (@punch) or zero range goes, which must read
 * back as zeros.  WRITE SAME(16) of a zero block with the UNMAP bit comes
 * first: the target deallocates what it can and must write zeros over the
 * rest.  An UNMAP is only a request, which a target may leave undone in
 * whole or in part and still answer GOOD (SBC lets the device server keep
 * any of its blocks mapped; cases unmap-noop, unmap-only-noop): a zero
 * range is written rather than trusted to it, as Linux zeroes a disk
 * without WRITE SAME, and only a hole, which nothing else can make there,
 * goes by UNMAP where the LUN has no WRITE SAME(16) and reads unmapped
 * blocks as zeros (LBPRZ), for whole granules. */
static enum discard_method discard_method(const struct lun *l, bool punch)
{
	if (l->lbp.write_same16 && !atomic_load(&l->write_same_refused))
		return DISCARD_WRITE_SAME;
	if (punch && l->lbp.unmap && (l->lbp.lbprz || l->capacity.lbprz) &&
	    !atomic_load(&l->unmap_refused))
		return DISCARD_UNMAP;
	return DISCARD_WRITE_ZEROS;   /* a hole is refused (EOPNOTSUPP) before this */
}

/* True when the LUN can make a hole that reads back as zeros. */
static bool can_punch(const struct lun *l)
{
	return discard_method(l, true) != DISCARD_WRITE_ZEROS;
}

/* How the middle of hole or zero range @w goes. */
static enum discard_method request_method(const struct write_req *w)
{
	return discard_method(w->lun, w->kind == WRITE_PUNCH);
}

/* Piece @p of hole or zero range @w, an UNMAP or WRITE SAME, was refused
 * (@err): the LUN's VPD page said it takes the command, but it does not.
 * It is not sent again (discard_method()), said once.  The range is then
 * planned again without it (w->replan: UNMAP after WRITE SAME, or for a
 * zero range plain WRITEs of zeros), unless it is a hole and nothing else
 * can make one (EOPNOTSUPP).  Returns the error for @w, 0 when it is
 * planned again. */
static int discard_refused(struct write_req *w, struct write_piece *p, int err)
{
	struct lun *l = w->lun;
	bool unmap = p->task.cdb[0] == SCSI_OP_UNMAP;

	if (!atomic_exchange(unmap ? &l->unmap_refused : &l->write_same_refused, true))
		log_warn("target %s, %s: %s refused (%s), though the LUN says it takes it; "
			 "not sent again", l->target, l->name, unmap ? "UNMAP" : "WRITE SAME(16)",
			 strerror(err));
	if (w->kind != WRITE_ZEROES && !can_punch(l))
		return EOPNOTSUPP;
	atomic_store(&w->replan, true);
	return 0;
}

static void write_piece_done(struct iscsi_task *t)
{
	struct write_piece *p = t->opaque;
	struct write_req *w = p->req;
	int err;

	switch (task_verdict_resend(w->lun, t, &p->retries, &err)) {
	case VERDICT_RETRY:
		return;
	case VERDICT_UNSUPPORTED:
		if (fua_refused(w, p))
			return;
		/* UNMAP and WRITE SAME are optional: not sent again; a WRITE
		 * the LU refuses is an I/O error */
		if (t->cdb[0] == SCSI_OP_UNMAP || t->cdb[0] == SCSI_OP_WRITE_SAME16) {
			err = discard_refused(w, p, err);
		} else {
			lun_log(w->lun, LOG_LEVEL_ERROR, "target %s, %s: WRITE refused as not supported",
				w->lun->target, w->lun->name);
			err = EIO;
		}
		break;
	case VERDICT_OK:
		/* GOOD with a residual on a WRITE or a WRITE SAME: the target
		 * took only part of the data (of WRITE SAME's one block: none
		 * of it, case write-same-residual).  Not so for UNMAP, whose
		 * data is a parameter list: tgtd answers UNMAP with GOOD and the
		 * whole list as residual, and the blocks are unmapped all the
		 * same (discard.sh showed it while UNMAP came before WRITE SAME). */
		if (t->underflow && t->residual && t->cdb[0] != SCSI_OP_UNMAP) {
			lun_log(w->lun, LOG_LEVEL_ERROR,
				"target %s, %s: %s took %u of %u bytes (GOOD status with residual %u)",
				w->lun->target, w->lun->name,
				t->cdb[0] == SCSI_OP_WRITE_SAME16 ? "WRITE SAME(16)" : "WRITE",
				t->residual < t->xfer_len ? t->xfer_len - t->residual : 0, t->xfer_len,
				t->residual);
			err = EIO;
		}
		break;
	case VERDICT_FAIL:
		/* ILLEGAL REQUEST of another kind (EINVAL): refused too */
		if (err == EINVAL &&
		    (t->cdb[0] == SCSI_OP_UNMAP || t->cdb[0] == SCSI_OP_WRITE_SAME16))
			err = discard_refused(w, p, err);
		break;
	}
	write_set_error(w, err);
	if (atomic_exchange(&w->leading, false)) {
		/* the lead, alone: the rest goes only once it did */
		if (discard_send_rest(w))
			return;
	} else if (discard_next(w, p)) {
		return;
	}
	if (atomic_fetch_sub(&w->pending, 1) != 1)
		return;
	if (atomic_exchange(&w->replan, false) && !atomic_load(&w->err)) {
		discard_plan(w);
		discard_send(w);
		return;
	}
	if (atomic_load(&w->flush_after) && !atomic_load(&w->err)) {
		lun_flush_quiet(w->lun, fua_flushed, w);
		return;
	}
	write_finish(w);
}

/* ---- holes and zeros ---- */

/* Plan the commands of hole or zero range @w (its blocks and edge
 * buffers set) by what its LUN offers. */
static void discard_plan(struct write_req *w)
{
	const struct lun *l = w->lun;
	struct discard_limits lim = {
		.method = request_method(w),
		.granularity = l->limits.unmap_granularity,
		.alignment = l->limits.unmap_alignment,
		.alignment_valid = l->limits.unmap_alignment_valid,
		.max_unmap_blocks = l->limits.max_unmap_blocks,
		.max_write_same_blocks = l->limits.max_write_same_blocks,
		.zero_blocks = l->split / l->block_size,
	};

	discard_plan_make(&w->plan, w->first, w->end, w->edge_head != NULL, w->edge_tail != NULL,
			  &lim);
}

/* Make slot @p of @w the command @s of its plan. */
static void discard_piece(struct write_req *w, struct write_piece *p, const struct discard_span *s)
{
	struct lun *l = w->lun;

	memset(p, 0, sizeof *p);     /* a slot is reused: nothing of the last command stays */
	p->req = w;
	p->task.lun = l->number;
	p->task.incarnation = l->incarnation;
	p->task.done = write_piece_done;
	p->task.opaque = p;
	p->task.dir = TASK_DIR_WRITE;
	p->task.write_iov = p->iov;
	p->task.write_iovcnt = 1;
	switch (s->op) {
	case DISCARD_OP_UNMAP:
		p->task.xfer_len = (uint32_t)scsi_unmap_param(p->unmap_param, sizeof p->unmap_param,
							       s->lba, s->blocks);
		p->iov[0] = (struct iovec){ p->unmap_param, p->task.xfer_len };
		scsi_cdb_unmap(p->task.cdb, (uint16_t)p->task.xfer_len);
		break;
	case DISCARD_OP_WRITE_SAME:
		p->task.xfer_len = l->block_size;
		p->iov[0] = (struct iovec){ w->zeros, l->block_size };
		scsi_cdb_write_same16(p->task.cdb, s->lba, s->blocks, true);
		break;
	case DISCARD_OP_ZEROS:
	case DISCARD_OP_EDGE:
		p->task.xfer_len = s->blocks * l->block_size;
		p->iov[0] = (struct iovec){ w->zeros, p->task.xfer_len };
		if (s->op == DISCARD_OP_EDGE)
			p->iov[0].iov_base = s->lba == w->first && w->edge_head ? w->edge_head : w->edge_tail;
		build_rw_cdb(l, p->task.cdb, true, false, s->lba, s->blocks);
		break;
	}
}

/* Command @k of the plan of @w but its lead (the lead is sent first, on
 * its own) into @s; false when there is no such command. */
static bool discard_piece_after_lead(const struct write_req *w, uint64_t k,
				     struct discard_span *s)
{
	if (w->lead != NO_LEAD && k >= w->lead)
		k++;
	return discard_plan_piece(&w->plan, k, s);
}

/* The first UNMAP or WRITE SAME of the plan of hole @w, which is sent
 * before any other of its commands; NO_LEAD for a zero range (a refusal
 * there has it planned again, as plain WRITEs: nothing to keep unwritten)
 * or a plan without one. */
static uint64_t discard_lead(const struct write_req *w)
{
	uint64_t k = 0;

	if (w->kind != WRITE_PUNCH)
		return NO_LEAD;
	for (unsigned i = 0; i < w->plan.nseg; i++) {
		enum discard_op op = w->plan.seg[i].op;
		if (op == DISCARD_OP_UNMAP || op == DISCARD_OP_WRITE_SAME)
			return k;
		k += w->plan.seg[i].pieces;
	}
	return NO_LEAD;
}

/* A command of hole or zero range @w finished in slot @p: when nothing
 * failed and the plan has more, send its next command from @p.  Returns
 * false when the slot is done with. */
static bool discard_next(struct write_req *w, struct write_piece *p)
{
	struct discard_span s;
	uint64_t k;

	if (w->kind == WRITE_DATA || atomic_load(&w->err) || atomic_load(&w->replan))
		return false;
	k = atomic_fetch_add(&w->next_piece, 1);
	if (!discard_piece_after_lead(w, k, &s))
		return false;
	discard_piece(w, p, &s);
	pool_submit(w->lun->pool, &p->task);
	return true;
}

/* Send the first @n (> 0, at most w->npieces) commands of hole or zero
 * range @w but its lead, one per slot; each slot sends the next as its
 * command finishes (discard_next()). */
static void discard_send_slots(struct write_req *w, unsigned n)
{
	struct write_piece *pieces = w->pieces;

	for (unsigned i = 0; i < n; i++) {
		struct discard_span s;
		discard_piece_after_lead(w, i, &s);
		discard_piece(w, &pieces[i], &s);
	}
	atomic_store(&w->next_piece, n);
	atomic_store(&w->pending, n);
	/* The last completion frees w: read nothing of it after that. */
	for (unsigned i = 0; i < n; i++)
		pool_submit(w->lun->pool, &pieces[i].task);
}

/* Send the first commands of hole or zero range @w: its lead alone when
 * it has one (discard_lead()), else one per slot. */
static void discard_send(struct write_req *w)
{
	static const char *const method_names[] = {
		[DISCARD_UNMAP] = "UNMAP", [DISCARD_WRITE_SAME] = "WRITE SAME(16) with UNMAP",
		[DISCARD_WRITE_ZEROS] = "writing zeros",
	};
	struct write_piece *pieces = w->pieces;
	/* (slots for the first plan; one made again may have fewer commands) */
	unsigned npieces = w->plan.pieces < w->npieces ? (unsigned)w->plan.pieces : w->npieces;

	log_debug("%s: %s blocks %llu..%llu: %llu commands, interior by %s", w->lun->name,
		  w->kind == WRITE_PUNCH ? "hole over" : "zeroing", (unsigned long long)w->first,
		  (unsigned long long)w->end - 1, (unsigned long long)w->plan.pieces,
		  method_names[request_method(w)]);
	if (npieces == 0) {           /* no block: cannot happen, but never hang */
		write_finish(w);
		return;
	}
	w->lead = discard_lead(w);
	if (w->lead != NO_LEAD) {
		/* A refusal of the lead fails a hole (EOPNOTSUPP) that must
		 * then have changed nothing: the edges and zeros wait for it. */
		struct discard_span s;
		discard_plan_piece(&w->plan, w->lead, &s);
		discard_piece(w, &pieces[0], &s);
		atomic_store(&w->next_piece, 0);
		atomic_store(&w->pending, 1);
		atomic_store(&w->leading, true);
		pool_submit(w->lun->pool, &pieces[0].task);
		return;
	}
	discard_send_slots(w, npieces);
}

/* The lead of hole @w ended, its slot the only one out (w->pending 1):
 * when it did and the plan has more, send the rest, taking over that
 * count.  Returns false when nothing was sent (the caller ends @w, or
 * plans it again). */
static bool discard_send_rest(struct write_req *w)
{
	uint64_t rest = w->plan.pieces - 1;

	if (atomic_load(&w->err) || atomic_load(&w->replan) || rest == 0)
		return false;
	discard_send_slots(w, rest < w->npieces ? (unsigned)rest : w->npieces);
	return true;
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
		p->task.incarnation = l->incarnation;
		p->task.dir = TASK_DIR_WRITE;
		p->task.xfer_len = len;
		p->task.write_iov = p->iov;
		p->task.write_iovcnt = iov_slice(iov, n, at, len, p->iov, 4);
		p->task.done = write_piece_done;
		p->task.opaque = p;
		build_rw_cdb(l, p->task.cdb, true, w->fua && !atomic_load(&w->flush_after),
			     w->first + at / bs, len / bs);
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
		lun_log(w->lun, LOG_LEVEL_ERROR,
			"target %s, %s: read of block %llu for read-modify-write returned %zu bytes",
			w->lun->target, w->lun->name, (unsigned long long)block, len);
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
		.first = first, .end = end, .start_ns = mono_now_ns(),
		.lost_at_start = atomic_load(&l->lost_reports),
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
	if (kind == WRITE_DATA) {
		npieces = (unsigned)(((end - first) * bs + l->split - 1) / l->split);
	} else {
		discard_plan(&proto);
		npieces = proto.plan.pieces < DISCARD_SLOTS ? (unsigned)proto.plan.pieces : DISCARD_SLOTS;
	}
	w = calloc(1, sizeof *w + npieces * sizeof w->pieces[0]);
	if (!w)
		goto nomem;
	*w = proto;
	w->npieces = npieces;
	atomic_init(&w->err, 0);
	atomic_init(&w->pending, 0);
	atomic_init(&w->edges_pending, 0);
	atomic_init(&w->next_piece, 0);
	atomic_init(&w->leading, false);
	w->lead = NO_LEAD;
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
	uint64_t size = l->size;      /* one snapshot: the capacity may change */

	if (len == 0) {
		cb(opaque, 0);
		return;
	}
	if (off >= size || len > size - off) {
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
	atomic_init(&w->flush_after, fua && !atomic_load(&l->fua));
	atomic_store(&l->wrote, true);
	lun_sparse_changing(l);
	if (range_enter(l, w))
		write_start(w);
}

bool lun_may_be_dirty(const struct lun *l)
{
	return !atomic_load(&l->write_protected) || atomic_load(&l->wrote);
}

bool lun_can_punch(const struct lun *l)
{
	return can_punch(l);
}

void lun_discard(struct lun *l, uint64_t off, uint64_t len, bool punch, lun_write_cb cb,
		 void *opaque)
{
	struct write_req *w;
	uint64_t size = l->size;      /* one snapshot: the capacity may change */

	/* what the LUN cannot do is said whatever the range, as a file
	 * system says it */
	if (l->write_protected) {
		cb(opaque, EROFS);
		return;
	}
	if (punch && !can_punch(l)) {
		cb(opaque, EOPNOTSUPP);
		return;
	}
	if (off >= size || len == 0) {
		cb(opaque, 0);
		return;
	}
	if (len > size - off)
		len = size - off;
	if (len > SIZE_MAX)
		len = SIZE_MAX;
	w = write_req_new(l, punch ? WRITE_PUNCH : WRITE_ZEROES, NULL, (size_t)len, off, cb, opaque);
	if (!w) {
		cb(opaque, ENOMEM);
		return;
	}
	atomic_store(&l->wrote, true);
	lun_sparse_changing(l);
	if (range_enter(l, w))
		write_start(w);
}

ssize_t lun_pwrite(struct lun *l, const void *buf, size_t len, uint64_t off)
{
	struct completion done;

	completion_init(&done);
	lun_write(l, buf, len, off, false, completion_post_cb, &done);
	return completion_wait(&done) < 0 ? -1 : (ssize_t)len;
}
