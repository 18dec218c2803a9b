/* lun.h: one logical unit: what it is, how big, and byte-addressed I/O
 * on it.
 *
 * lun.c turns byte ranges into SCSI commands: it aligns them to blocks,
 * splits them at the LUN's maximum transfer length, does read-modify-write
 * of partial edge blocks under a block-range lock (so two writers of the
 * same block never tear it), retries Unit Attentions at once and BUSY,
 * TASK SET FULL, ACA ACTIVE and NOT READY after a growing pause (a few
 * times, then EIO), and maps what is left to an errno.
 *
 * Unit Attentions that say something changed are passed on: CAPACITY DATA
 * HAS CHANGED marks the LUN (capacity_changed) and REPORTED LUNS DATA HAS
 * CHANGED is about the whole target; both call the owner's on_change(),
 * which has the capacity (lun_reread_capacity()) or the LUN list read
 * again on a thread of its own: the Unit Attention arrives on a session
 * thread, which must not wait for commands.
 */
#ifndef ISCSIFS_LUN_H
#define ISCSIFS_LUN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "log.h"
#include "pool.h"
#include "scsi.h"

struct write_req;
struct lun;
struct lun_map;

/* What a Unit Attention said changed. */
enum lun_change {
	LUN_CHANGE_CAPACITY,   /* CAPACITY DATA HAS CHANGED (2A/09): this LUN's size */
	LUN_CHANGE_LUNS,       /* REPORTED LUNS DATA HAS CHANGED (3F/0E): the target's LUNs */
	LUN_CHANGE_IDENTITY,   /* a Unit Attention on this LUN's own command said it
	                        * may be another unit now (a power on or reset,
	                        * 29h; 3Fh/03h, 05h or 0Eh): its commands are held
	                        * (pool_hold_lun()) until the owner checks it and
	                        * calls pool_release_lun(), or finds it replaced */
};

/* What is known of GET LBA STATUS answers that run past the capacity
 * (lun_sparse.c). */
enum lun_past {
	PAST_NONE,       /* none since the capacity last changed */
	PAST_CHECKING,   /* one came: READ CAPACITY(16) asked whether the LUN grew */
	PAST_GROWN,      /* it grew: the rescan is to take the new size */
};

/* The owner's hook for changes: called on a session thread with no lock
 * held; it must not block or wait for commands. */
typedef void (*lun_change_fn)(struct lun *l, enum lun_change what, void *opaque);

/* Requests by latency: bucket i counts those that took [2^i, 2^(i+1))
 * microseconds (bucket 0 also the faster ones). */
#define LUN_LATENCY_BUCKETS 32

/* What happened on a LUN since the mount; atomics, updated by any thread,
 * read without a lock (each value on its own is exact). */
struct lun_counters {
	atomic_uint_fast64_t reads;          /* read requests finished */
	atomic_uint_fast64_t writes;         /* write requests finished */
	atomic_uint_fast64_t bytes_read;     /* bytes returned by reads */
	atomic_uint_fast64_t bytes_written;  /* bytes written */
	atomic_uint_fast64_t fua_writes;     /* writes sent with FUA (O_DSYNC) */
	atomic_uint_fast64_t holes;          /* holes punched */
	atomic_uint_fast64_t zeroings;       /* ranges zeroed */
	atomic_uint_fast64_t flushes;        /* SYNCHRONIZE CACHE sent */
	atomic_uint_fast64_t errors;         /* requests that failed */
	atomic_uint_fast64_t retries;        /* commands sent again (UA, BUSY, NOT READY...) */
	atomic_uint_fast64_t unit_attentions;/* Unit Attentions seen */
	atomic_uint_fast64_t lba_status_cmds;/* GET LBA STATUS commands sent */
	atomic_uint_fast64_t latency[LUN_LATENCY_BUCKETS]; /* requests by latency */
};

struct lun {
	struct pool *pool;            /* the sessions of the LUN's target */
	uint32_t number;              /* LUN number */
	uint64_t incarnation;         /* read-only: this object among all the
	                               * process probed (from 1): its tasks carry
	                               * it, so that none of the old reaches a
	                               * unit probed anew under its number */
	char name[16];                /* "lun3": the file name */
	char target[224];             /* the target's IQN, for log lines */
	/* The capacity: changed only by lun_reread_capacity() (any thread
	 * reads it, an atomic load each; size is blocks * block_size). */
	_Atomic uint64_t blocks;      /* capacity in logical blocks */
	_Atomic uint64_t size;        /* capacity in bytes */
	atomic_bool capacity_changed; /* a Unit Attention said so; cleared by the
	                               * one who reads the capacity again */
	/* Geometry and limits, read-only after lun_probe(). */
	uint32_t block_size;          /* logical block size in bytes */
	uint32_t physical_block_size; /* from LBPPBE */
	uint32_t max_xfer;            /* bytes per command at most (the LUN's limit) */
	uint32_t split;               /* requests are cut into commands of this size */
	uint32_t opt_xfer;            /* optimal transfer size in bytes, 0 if unknown */
	bool use16;                   /* READ/WRITE(16) rather than (10) */
	atomic_bool write_protected;  /* MODE SENSE WP, or DATA PROTECT seen (any thread sets it) */
	atomic_bool fua;              /* WRITE takes the FUA bit: MODE SENSE DPOFUA, until
	                               * a FUA write is refused (any thread clears
	                               * it); else FUA writes are flushed after */
	atomic_uint_fast64_t lost_reports; /* deferred errors so far that said an
	                               * earlier write may be lost (any thread adds):
	                               * each open file's next fsync fails after one
	                               * (lun_fsync_async()), and a write that must
	                               * reach stable media by a flush fails if one
	                               * came during it */
	atomic_bool unmap_refused;    /* UNMAP refused though VPD 0xB2 says LBPU: not
	                               * sent again (any thread sets it) */
	atomic_bool write_same_refused; /* the same for WRITE SAME(16) and LBPWS */
	atomic_bool wrote;            /* a write or zeroing was started (any thread
	                               * sets it): a flush is owed even once
	                               * write_protected */
	atomic_bool has_sync_cache;   /* SYNCHRONIZE CACHE not refused (any thread clears it) */
	atomic_bool sync_cache16;     /* SYNCHRONIZE CACHE(16), not (10): use16 and (16)
	                               * not refused (any thread clears it) */
	struct scsi_inquiry inquiry;  /* standard INQUIRY */
	char serial[128];             /* VPD 0x80, "" if none */
	char device_id[128];          /* VPD 0x83, "" if none */
	struct scsi_block_limits limits; /* VPD 0xB0 (zeros if absent) */
	struct scsi_lbp lbp;          /* VPD 0xB2 (zeros if absent) */
	struct scsi_capacity capacity;/* READ CAPACITY result */

	pthread_mutex_t range_lock;   /* protects ranges */
	struct write_req *ranges;     /* range_lock: writes in flight or waiting, in submission order */
	/* Provisioning (lun_sparse.c). */
	struct lun_map *map;          /* what is known of the LUN's data and holes
	                               * (its own lock); NULL when it has none to
	                               * report (not LBPME=1 with LBPRZ=1): all
	                               * data.  Set by lun_probe(). */
	atomic_bool map_refused;      /* the target refused GET LBA STATUS or its
	                               * answer: all data from then on */
	atomic_int map_past;          /* enum lun_past: GET LBA STATUS answers past
	                               * the capacity (lun_sparse.c) */
	atomic_bool map_scanning;     /* a scan for lun_allocated() runs */
	atomic_uint_fast64_t map_reconnects; /* the pool's reconnects when the map was
	                               * last looked at */
	struct lun_counters counters; /* statistics (atomics) */
	struct log_budget log_budget; /* lines about its commands' outcomes, but
	                               * failures (atomics) */
	struct log_budget failure_log; /* lines about its commands' failures, a
	                               * budget apart so that a storm of retries
	                               * never hides one (atomics) */
	lun_change_fn on_change;      /* the owner's hook, NULL for none; set before
	                               * the LUN is used, read-only then */
	void *change_opaque;          /* its argument */
};

/* The LUN numbers of target @target (its IQN, for log lines): REPORT
 * LUNS, or just LUN 0 when the target refuses it (ILLEGAL REQUEST), unless
 * @strict (then that is an error); any other failure is an error.
 * *@whole (when not NULL) says whether they are all the LUNs the target
 * reports: false when its data was cut short of what it said it holds, or
 * held more than @max.  Each number once, in the order first listed (a LUN
 * listed again, in any addressing method, is logged and left out).
 * Synchronous.  Returns the count (up to @max), or -1 with err_set(). */
int lun_list(struct pool *pool, const char *target, uint32_t *luns, size_t max, bool strict,
	     bool *whole);

/* Find out what LUN @number is.  Returns 1 and a new lun for a
 * direct-access block device, 0 (and no lun; err_msg() says what it is,
 * err_errno() ENXIO when the target says it is not there) for anything
 * else, -1 with
 * err_set() on failure: EPROTO (message starting "lunN: ") when what the
 * target returned about this LUN is unusable (short or lying INQUIRY or
 * READ CAPACITY data, a bad block length, capacity 0), so that other LUNs
 * may still be served. */
int lun_probe(struct pool *pool, const char *target, uint32_t number, struct lun **out);

/* Whether @l is still the logical unit it was at the probe: the unit
 * serial number (VPD 0x80) and device identifier (VPD 0x83) it had then,
 * read again.  Synchronous: not on a session thread.  Returns 1 when they
 * match; 0 when one differs, a page it had is refused now or the LUN is
 * not there (err_set() says which); -1 with err_set() when a command
 * failed, or EPROTO when a page's data cannot be read. */
int lun_check_identity(struct lun *l);

/* Read the capacity of @l again (READ CAPACITY(16) or (10) as at the
 * probe) and take it: size and blocks change, the rest of the geometry
 * does not (a new logical block size is refused: ESTALE, the LUN is no
 * longer what its file was made for).  Synchronous: not on a session
 * thread.  Returns 1 when the capacity changed (the old size in
 * *@old_size), 0 when it did not, -1 with err_set(). */
int lun_reread_capacity(struct lun *l, uint64_t *old_size);

void lun_free(struct lun *l);

/* Asynchronous read of @len bytes at @off (clamped at the end of the LUN).
 * @cb runs exactly once, on some thread, with 0 and the data (valid only
 * during the call), or an errno. */
typedef void (*lun_read_cb)(void *opaque, int err, const uint8_t *data, size_t len);
void lun_read(struct lun *l, uint64_t off, size_t len, lun_read_cb cb, void *opaque);

/* Fail with EIO the reads of LUNs of pool @p that wait for room in the
 * budget of read buffers (lun_read.c), before @p is destroyed: none is
 * started after. */
void lun_reads_cancel(struct pool *p);

/* Reads that waited for room in the budget of read buffers, since the
 * start of the process. */
unsigned long lun_read_waits(void);

/* Whether a flush of @l may be owed: it can be written, or writes were
 * started before it turned write protected (their data may wait in the
 * target's cache). */
bool lun_may_be_dirty(const struct lun *l);

/* Synchronous read into @buf; returns bytes read or -1 with errno. */
ssize_t lun_pread(struct lun *l, void *buf, size_t len, uint64_t off);

/* Asynchronous write of @len bytes from @buf at @off (with @fua, Force
 * Unit Access: on stable media when acknowledged): the whole range, or
 * nothing past the end (ENOSPC).  @buf is sent without a copy and must stay
 * valid until @cb runs, exactly once, on some thread, with 0 or an errno
 * (ENOSPC, EROFS, EIO, ...).  A write waits for every earlier write that
 * shares a block with it, so overlapping writes reach the LUN in the order
 * they were submitted and a partial block's read-modify-write is never
 * torn. */
typedef void (*lun_write_cb)(void *opaque, int err);
void lun_write(struct lun *l, const void *buf, size_t len, uint64_t off, bool fua,
	       lun_write_cb cb, void *opaque);

/* Make bytes [@off, @off + @len) read as zeros (clamped at the end of the
 * LUN), ordered with writes like lun_write().  With @punch the blocks are
 * deallocated: WRITE SAME(16) of zeros with UNMAP where the LUN takes it,
 * else UNMAP where it reads unmapped blocks as zeros (LBPRZ); unaligned
 * edges, and with UNMAP the blocks off the unmap granularity, are written
 * as zeros; EOPNOTSUPP when the LUN can do neither.  Without @punch the
 * range is zeroed by WRITE SAME(16) where the LUN takes it, else by plain
 * WRITEs of zeros: never by UNMAP, which a target may leave undone. */
void lun_discard(struct lun *l, uint64_t off, uint64_t len, bool punch, lun_write_cb cb,
		 void *opaque);

/* Whether lun_discard() with @punch can work on @l. */
bool lun_can_punch(const struct lun *l);

/* Synchronous lun_write(): returns @len, or -1 with errno. */
ssize_t lun_pwrite(struct lun *l, const void *buf, size_t len, uint64_t off);

/* ---- provisioning: data and holes (lun_sparse.c) ----
 * Holes are reported only by a LUN with LBPME=1 and LBPRZ=1 (its
 * deallocated and anchored blocks read as zeros) whose target answers GET
 * LBA STATUS well; every other LUN is all data, as a regular file. */

/* Whether @l may report holes. */
bool lun_has_holes(const struct lun *l);

/* Where the first data (@data: SEEK_DATA) or hole (SEEK_HOLE) at or after
 * byte @off is: @cb runs exactly once, on some thread (a session's when
 * the target had to be asked), with 0 and the byte offset, or ENXIO when
 * @off is at or past the end (SEEK_DATA: or no data follows), or ENOMEM.
 * The end of the file counts as a hole.  Unknown blocks (the target did
 * not answer, or SEEK_MAX_QUERIES commands were not enough) count as
 * data. */
typedef void (*lun_seek_cb)(void *opaque, int err, uint64_t off);
void lun_seek(struct lun *l, uint64_t off, bool data, lun_seek_cb cb, void *opaque);

/* The bytes of @l that hold data, for st_blocks: true with *@bytes when
 * the whole map is known; else false with *@bytes the capacity, and a
 * scan of the map is started (in the background) unless one runs.
 * Never waits. */
bool lun_allocated(struct lun *l, uint64_t *bytes);

/* How many extents of @l's map are known (for the stats file). */
size_t lun_extents_known(struct lun *l);

/* SYNCHRONIZE CACHE for the whole LUN, for the fsync of one open file
 * whose count of deferred errors seen is *@seen (l->lost_reports when it
 * was opened, then at its last fsync); @cb runs exactly once with 0 or
 * an errno.  A target that refuses the command (ILLEGAL REQUEST) is not
 * asked again and the flush succeeds: it has no volatile cache to flush.
 * EIO when a deferred error (of any command) said since *@seen that data
 * of an earlier write may be lost (*@seen then takes the count: each
 * open file hears of it once, as Linux tells every file open when a
 * write-back failed), or the identity check of a reconnect met one since
 * the last such flush of the LUN. */
void lun_fsync_async(struct lun *l, atomic_uint_fast64_t *seen, lun_write_cb cb,
		     void *opaque);

#endif /* ISCSIFS_LUN_H */
