/* lun_sparse.c: where a LUN's data and holes are (lseek SEEK_DATA and
 * SEEK_HOLE) and how much of it is allocated (st_blocks), from GET LBA
 * STATUS (see lun.h).
 *
 * Only a LUN that reports LBPME=1 and LBPRZ=1 in READ CAPACITY(16) has a
 * map (l->map): its deallocated and anchored blocks read as zeros, so they
 * are holes.  Every other LUN, and one whose target refused GET LBA STATUS
 * or answered it malformed (l->map_refused, said in one log line), is all
 * data with one hole at the end of the file, as a regular file.  An answer
 * that is right but for running past the capacity we know has the capacity
 * read again first (the LUN may have grown): only the next one past that
 * same capacity is refused.
 *
 * A seek walks the blocks from its offset: what the map knows answers at
 * once; at the first unknown block it sends one GET LBA STATUS (at most
 * LBA_STATUS_DESCS descriptors), takes what it says, keeps it in the map
 * and walks on.  Blocks we wrote stay data in the map whatever an answer
 * says (lun_map.h), and an answer's hole ends at the first block the map
 * knows holds data: a target whose answers lag behind our writes must not
 * make them holes to a sparse copy.  After SEEK_MAX_QUERIES commands it answers what is safe
 * without knowing: data where it stands (SEEK_DATA), the end of the file
 * (SEEK_HOLE).  A scan (started by lun_allocated(), one per LUN at a time)
 * walks the same way to the end, to learn the whole map for st_blocks; it
 * stops when the map is full (MAP_MAX_EXTENTS), or when its answers make
 * too little progress (SCAN_SLACK), and is not started again until the
 * map is emptied.
 *
 * The map forgets what the target said when a session reconnected since
 * it was last looked at (another initiator may have written meanwhile),
 * on every Unit Attention (lun.c) and when the capacity changes; blocks
 * we wrote stay data (lun_map.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * lun_seek() and lun_allocated() run on any thread and never wait on the
 * network: a seek that needs the target goes on from the completion of
 * its command, on a session thread, and calls its callback there.  The
 * map has its own lock (lun_map.h); the flags of struct lun used here are
 * atomics.
 */
#include "lun.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "lun_internal.h"
#include "lun_map.h"

/* Descriptors one GET LBA STATUS asks room for, and its allocation
 * length. */
#define LBA_STATUS_DESCS 256u
#define LBA_STATUS_ALLOC (SCSI_LBA_STATUS_HEADER + LBA_STATUS_DESCS * SCSI_LBA_STATUS_DESC)
/* Commands one seek sends at most before it answers without knowing. */
#define SEEK_MAX_QUERIES 64u
/* Answers in a row a scan may see go stale (our writes) before it stops;
 * the next lun_allocated() starts another. */
#define SCAN_MAX_STALE 4u
/* Extents a map keeps at most (24 bytes each). */
#define MAP_MAX_EXTENTS (1u << 16)
/* A scan sends at most this many commands more than twice the extents the
 * map holds: a target answers each with a run to the next change of
 * state, so its answers add an extent at least every other command; one
 * that cuts its runs into crumbs would keep a scan going for ever (a LUN
 * of 2^40 blocks answered a block at a time). */
#define SCAN_SLACK 64u

/* What a walk looks for. */
enum seek_goal {
	GOAL_DATA,    /* SEEK_DATA: the first data block at or after the offset */
	GOAL_HOLE,    /* SEEK_HOLE: the first hole block, or the end of the file */
	GOAL_SCAN,    /* learn the map to the end (for st_blocks), no caller */
};

/* One walk over the blocks of a LUN, with its GET LBA STATUS command. */
struct seek_req {
	struct iscsi_task task;       /* the GET LBA STATUS in flight */
	struct lun *lun;              /* which LUN */
	enum seek_goal goal;          /* what it looks for */
	uint64_t off;                 /* the byte offset asked (seeks) */
	uint64_t at;                  /* the block the walk stands on: none
	                               * before it is the answer */
	unsigned queries;             /* commands sent so far */
	unsigned retries;             /* tries of the command in flight */
	unsigned stale;               /* GOAL_SCAN: answers in a row not kept */
	uint64_t gen;                 /* the map's ticket for this command */
	bool keep;                    /* the ticket is good: keep the answer */
	uint64_t past_end;            /* past_capacity(): the block the answer
	                               * runs to, past the capacity */
	char why[256];                /* past_capacity(): why it was refused */
	lun_seek_cb cb;               /* the caller's callback (seeks) */
	void *opaque;                 /* its argument */
	uint8_t data[LBA_STATUS_ALLOC];                  /* the parameter data */
	struct scsi_lba_status desc[LBA_STATUS_DESCS];   /* it, decoded */
	struct lun_map_extent ext[LBA_STATUS_DESCS];     /* it, as extents */
};

bool lun_has_holes(const struct lun *l)
{
	return l->map && !atomic_load(&l->map_refused);
}

/* Drop the map when a session of the pool reconnected since the last
 * look: what another initiator wrote meanwhile is not in it. */
static void check_reconnects(struct lun *l)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < pool_size(l->pool); i++) {
		struct session_stats st;
		pool_session_stats(l->pool, i, &st);
		sum += st.reconnects;
	}
	if (atomic_exchange(&l->map_reconnects, sum) != sum) {
		log_debug("target %s, %s: a session reconnected; provisioning map dropped",
			  l->target, l->name);
		lun_map_drop(l->map);
	}
}

/* The target refused GET LBA STATUS, or we refuse its answer (@why says
 * which): all data from now on, said once. */
static void refuse(struct lun *l, const char *why)
{
	if (!atomic_exchange(&l->map_refused, true))
		log_warn("target %s, %s: %s; the file reads as all data, without holes",
			 l->target, l->name, why);
	lun_map_drop(l->map);
}

/* End walk @r with @err or the byte offset of block @block (not before
 * the offset asked; the end of the file at most). */
static void seek_finish(struct seek_req *r, int err, uint64_t block)
{
	struct lun *l = r->lun;

	if (r->goal == GOAL_SCAN) {
		atomic_store(&l->map_scanning, false);
	} else {
		uint64_t size = l->size, off = block * l->block_size;
		if (off < r->off)
			off = r->off;
		if (off > size)
			off = size;
		r->cb(r->opaque, err, err ? 0 : off);
	}
	free(r);
}

/* Block @block of @l, not known, is taken for data from now on (one
 * block, as if learnt from the target; not when the map is changing). */
static void take_for_data(struct lun *l, uint64_t block)
{
	struct lun_map_extent e = { block, block + 1, LUN_MAP_DATA };
	uint64_t gen;

	if (lun_has_holes(l) && lun_map_ticket(l->map, &gen))
		lun_map_learn(l->map, gen, &e, 1);
}

/* Answer @r without the target: what is always true of a block not known
 * to be a hole, standing on block r->at. */
static void seek_unknown(struct seek_req *r)
{
	switch (r->goal) {
	case GOAL_DATA:
		/* data here, and so it stays: a SEEK_HOLE from here that learns
		 * it is a hole would answer this very offset, and a copy that
		 * walks SEEK_DATA, SEEK_HOLE, SEEK_DATA... would not move on */
		take_for_data(r->lun, r->at);
		seek_finish(r, 0, r->at);
		break;
	case GOAL_HOLE:
		seek_finish(r, 0, r->lun->blocks); /* the end of the file */
		break;
	case GOAL_SCAN:
		seek_finish(r, 0, 0);
		break;
	}
}

static void query_done(struct iscsi_task *t);
static void capacity_done(struct iscsi_task *t);

/* Send the command in r->task.cdb (@done its completion; @alloc bytes
 * into r->data at most). */
static void send(struct seek_req *r, uint32_t alloc, void (*done)(struct iscsi_task *))
{
	struct lun *l = r->lun;

	r->retries = 0;
	r->task.lun = l->number;
	r->task.incarnation = l->incarnation;
	r->task.dir = TASK_DIR_READ;
	r->task.xfer_len = alloc;
	r->task.read_buf = r->data;
	r->task.done = done;
	r->task.opaque = r;
	pool_submit(l->pool, &r->task);
}

/* Send GET LBA STATUS for block r->at. */
static void query(struct seek_req *r)
{
	struct lun *l = r->lun;

	r->keep = lun_map_ticket(l->map, &r->gen);
	r->queries++;
	memset(&r->task, 0, sizeof r->task);
	scsi_cdb_get_lba_status(r->task.cdb, r->at, LBA_STATUS_ALLOC);
	atomic_fetch_add(&l->counters.lba_status_cmds, 1);
	send(r, LBA_STATUS_ALLOC, query_done);
}

/* The answer of @r (@len bytes), refused for @why, is right but for
 * running past the capacity we know?  The LUN may have grown, and the
 * Unit Attention that says so not reached us yet, or never come.  The
 * first such answer at a capacity has READ CAPACITY(16) asked, and the
 * walk answers from its completion; an answer past a capacity being
 * checked, or found grown (until the rescan takes the new size), is
 * answered without knowing.  Returns false when the answer is to be
 * refused. */
static bool past_capacity(struct seek_req *r, size_t len, const char *why)
{
	struct lun *l = r->lun;
	int none = PAST_NONE;
	size_t count;

	if (scsi_parse_lba_status(r->data, len, LBA_STATUS_ALLOC, r->at, UINT64_MAX, r->desc,
				  LBA_STATUS_DESCS, &count) < 0)
		return false;
	if (!atomic_compare_exchange_strong(&l->map_past, &none, PAST_CHECKING)) {
		seek_unknown(r);
		return true;
	}
	r->past_end = r->desc[count - 1].lba + r->desc[count - 1].blocks;
	snprintf(r->why, sizeof r->why, "%s", why);
	memset(&r->task, 0, sizeof r->task);
	scsi_cdb_read_capacity16(r->task.cdb, SCSI_READ_CAPACITY16_LEN);
	send(r, SCSI_READ_CAPACITY16_LEN, capacity_done);
	return true;
}

/* READ CAPACITY(16) of past_capacity() answered: a capacity that holds the
 * answer is passed on as its Unit Attention would (lun.c), for the rescan
 * to take; else the answer is refused. */
static void capacity_done(struct iscsi_task *t)
{
	struct seek_req *r = t->opaque;
	struct lun *l = r->lun;
	struct scsi_capacity cap;
	int err;

	switch (task_verdict_resend(l, t, &r->retries, &err)) {
	case VERDICT_RETRY:
		return;
	case VERDICT_OK:
		break;
	case VERDICT_UNSUPPORTED:
	case VERDICT_FAIL:
		/* unknown still: the next answer past it asks again */
		atomic_store(&l->map_past, PAST_NONE);
		seek_unknown(r);
		return;
	}
	if (scsi_parse_read_capacity16(r->data, t->data_in_bytes, &cap) == 0 &&
	    cap.blocks >= r->past_end) {
		log_debug("target %s, %s: GET LBA STATUS runs to block %" PRIu64
			  ", READ CAPACITY(16) says %" PRIu64 " blocks now: reading the capacity again",
			  l->target, l->name, r->past_end, cap.blocks);
		/* (a rescan that took a new size meanwhile reset it: left so) */
		int checking = PAST_CHECKING;
		atomic_compare_exchange_strong(&l->map_past, &checking, PAST_GROWN);
		atomic_store(&l->capacity_changed, true);
		if (l->on_change)
			l->on_change(l, LUN_CHANGE_CAPACITY, l->change_opaque);
	} else {
		refuse(l, r->why);
		atomic_store(&l->map_past, PAST_NONE);
	}
	seek_unknown(r);
}

/* Walk on from r->at through what the map knows; answer, or send the
 * next command. */
static void walk(struct seek_req *r)
{
	struct lun *l = r->lun;
	uint64_t blocks = l->blocks;

	for (;;) {
		if (atomic_load(&l->map_refused)) {
			seek_unknown(r);
			return;
		}
		if (r->at >= blocks) {
			/* SEEK_DATA past the last data: ENXIO; SEEK_HOLE: the end */
			seek_finish(r, r->goal == GOAL_DATA ? ENXIO : 0, blocks);
			return;
		}
		if (r->goal == GOAL_SCAN) {
			r->at = lun_map_next_unknown(l->map, r->at);
			if (r->at >= blocks) {
				seek_finish(r, 0, 0);
				return;
			}
			break;
		}
		uint64_t run_end;
		enum lun_map_state s = lun_map_lookup(l->map, r->at, &run_end);
		if (s == LUN_MAP_UNKNOWN)
			break;
		if ((s == LUN_MAP_DATA) == (r->goal == GOAL_DATA)) {
			seek_finish(r, 0, r->at);
			return;
		}
		r->at = run_end;
	}
	if (r->queries >= SEEK_MAX_QUERIES && r->goal != GOAL_SCAN) {
		seek_unknown(r);
		return;
	}
	query(r);
}

/* The first block in [@from, @end) that map @m knows holds data; @end
 * when none does. */
static uint64_t first_known_data(struct lun_map *m, uint64_t from, uint64_t end)
{
	while (from < end) {
		uint64_t run_end;
		if (lun_map_lookup(m, from, &run_end) == LUN_MAP_DATA)
			return from;
		if (run_end <= from)          /* past the capacity the map covers */
			break;
		from = run_end;
	}
	return end;
}

static void query_done(struct iscsi_task *t)
{
	struct seek_req *r = t->opaque;
	struct lun *l = r->lun;
	size_t count = 0, n = 0;
	int err;

	switch (task_verdict_resend(l, t, &r->retries, &err)) {
	case VERDICT_RETRY:
		return;
	case VERDICT_OK:
		break;
	case VERDICT_UNSUPPORTED:
		refuse(l, "GET LBA STATUS is not supported");
		seek_unknown(r);
		return;
	case VERDICT_FAIL:
		/* this walk goes without; the next one asks again */
		seek_unknown(r);
		return;
	}
	if (scsi_parse_lba_status(r->data, t->data_in_bytes, LBA_STATUS_ALLOC, r->at, l->blocks,
				  r->desc, LBA_STATUS_DESCS, &count) < 0) {
		char why[256];
		snprintf(why, sizeof why, "%s: answer refused", err_msg());
		if (past_capacity(r, t->data_in_bytes, why))
			return;
		refuse(l, why);
		seek_unknown(r);
		return;
	}
	/* As extents, equal neighbours merged. */
	for (size_t i = 0; i < count; i++) {
		enum lun_map_state s = r->desc[i].mapped ? LUN_MAP_DATA : LUN_MAP_HOLE;
		if (n > 0 && r->ext[n - 1].state == s) {
			r->ext[n - 1].end += r->desc[i].blocks;
			continue;
		}
		r->ext[n++] = (struct lun_map_extent){
			r->desc[i].lba, r->desc[i].lba + r->desc[i].blocks, s,
		};
	}
	int kept = r->keep ? lun_map_learn(l->map, r->gen, r->ext, n) : 0;
	if (r->goal == GOAL_SCAN && r->queries >= SCAN_SLACK + 2 * lun_map_extents(l->map)) {
		log_debug("target %s, %s: a scan of the provisioning map sent %u commands for %zu "
			  "extents; no scan until the map is dropped", l->target, l->name, r->queries,
			  lun_map_extents(l->map));
		lun_map_give_up_scans(l->map);
		seek_finish(r, 0, 0);
		return;
	}
	if (r->goal == GOAL_SCAN) {
		if (kept < 0 || (kept == 0 && ++r->stale >= SCAN_MAX_STALE)) {
			seek_finish(r, 0, 0);       /* full, or our writes keep it stale */
			return;
		}
		if (kept > 0)
			r->stale = 0;
		walk(r);
		return;
	}
	/* The answer was asked after the seek began: it holds for the seek,
	 * kept in the map or not, but for the data the map knows of in what
	 * it calls holes (our own writes, which a target's answers may lag
	 * behind). */
	for (size_t i = 0; i < n; i++) {
		uint64_t from = r->ext[i].start > r->at ? r->ext[i].start : r->at;
		if (r->ext[i].state == LUN_MAP_DATA) {
			if (r->goal == GOAL_DATA) {
				seek_finish(r, 0, from);
				return;
			}
		} else {
			uint64_t data = first_known_data(l->map, from, r->ext[i].end);
			if (data > from && r->goal == GOAL_HOLE) {
				seek_finish(r, 0, from);
				return;
			}
			if (data < r->ext[i].end) {
				r->at = data;
				if (r->goal == GOAL_DATA)
					seek_finish(r, 0, data);
				else
					walk(r);   /* on past that data, by the map */
				return;
			}
		}
		r->at = r->ext[i].end;
	}
	walk(r);
}

/* A new walk of @l for @goal from byte @off. */
static struct seek_req *seek_req_new(struct lun *l, enum seek_goal goal, uint64_t off,
				     lun_seek_cb cb, void *opaque)
{
	struct seek_req *r = calloc(1, sizeof *r);

	if (!r)
		return NULL;
	r->lun = l;
	r->goal = goal;
	r->off = off;
	r->at = off / l->block_size;
	r->cb = cb;
	r->opaque = opaque;
	return r;
}

void lun_seek(struct lun *l, uint64_t off, bool data, lun_seek_cb cb, void *opaque)
{
	uint64_t size = l->size;
	struct seek_req *r;

	if (off >= size) {
		cb(opaque, ENXIO, 0);
		return;
	}
	if (!lun_has_holes(l)) {
		/* all data: data where asked, the one hole at the end */
		cb(opaque, 0, data ? off : size);
		return;
	}
	check_reconnects(l);
	r = seek_req_new(l, data ? GOAL_DATA : GOAL_HOLE, off, cb, opaque);
	if (!r) {
		cb(opaque, ENOMEM, 0);
		return;
	}
	walk(r);
}

bool lun_allocated(struct lun *l, uint64_t *bytes)
{
	uint64_t data_blocks;

	*bytes = l->size;
	if (!lun_has_holes(l))
		return false;
	check_reconnects(l);
	if (lun_map_allocated(l->map, &data_blocks)) {
		*bytes = data_blocks * l->block_size;
		return true;
	}
	/* one scan at a time, and none while the map cannot hold the LUN's
	 * extents: st_blocks stays the whole size then */
	if (lun_map_scannable(l->map) && !atomic_exchange(&l->map_scanning, true)) {
		struct seek_req *r = seek_req_new(l, GOAL_SCAN, 0, NULL, NULL);
		if (!r)
			atomic_store(&l->map_scanning, false);
		else
			walk(r);
	}
	return false;
}

size_t lun_extents_known(struct lun *l)
{
	return l->map ? lun_map_extents(l->map) : 0;
}

int lun_sparse_init(struct lun *l)
{
	if (!l->capacity.lbpme || !l->capacity.lbprz)
		return 0;
	l->map = lun_map_new(l->blocks, MAP_MAX_EXTENTS);
	if (!l->map) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	return 0;
}

void lun_sparse_changing(struct lun *l)
{
	if (l->map)
		lun_map_change_begin(l->map);
}

void lun_sparse_changed(struct lun *l, uint64_t first, uint64_t end, bool written)
{
	if (!l->map)
		return;
	/* the runs we wrote forgotten, a target that lags behind our writes
	 * could make them holes again: no holes from then on */
	if (!lun_map_change_end(l->map, first, end,
				written ? LUN_MAP_WRITTEN : LUN_MAP_UNKNOWN))
		refuse(l, "the provisioning map has no room left for the blocks written through "
		       "the mount");
}

void lun_sparse_drop(struct lun *l)
{
	if (l->map)
		lun_map_drop(l->map);
}

void lun_sparse_capacity_unchanged(struct lun *l)
{
	/* a size we took for grown is not: the next answer past it is
	 * checked again (and refused, if READ CAPACITY agrees) */
	int grown = PAST_GROWN;
	atomic_compare_exchange_strong(&l->map_past, &grown, PAST_NONE);
}

void lun_sparse_resize(struct lun *l, uint64_t blocks)
{
	if (l->map)
		lun_map_resize(l->map, blocks);
	/* answers past the new capacity get a check of their own */
	atomic_store(&l->map_past, PAST_NONE);
}
