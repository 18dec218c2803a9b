/* target.h: one target of a mount: how to reach it, its session pool, and
 * the LUN files it adds to the file system once it is opened.
 *
 * A target-form mount opens its one target at start-up.  A discovery mount
 * shows one directory per discovered target and opens a target when its
 * directory is first used (lookup or readdir); an open target stays open
 * until unmount.  A target that fails to open (login rejected, for one)
 * makes its directory answer with that errno; it is tried again at most
 * every TARGET_RETRY_S seconds.
 *
 * While open, the target's LUN files follow what Unit Attentions report:
 * CAPACITY DATA HAS CHANGED has that LUN's capacity read again (the file
 * size changes), REPORTED LUNS DATA HAS CHANGED the LUN list (files of new
 * disk LUNs appear, files of LUNs gone disappear).  That work, which waits
 * for commands, is a rescan job of the target, run on the process's
 * rescan helpers (at most two threads, started when a change comes,
 * leaving when idle: however many targets change at once, they take
 * turns, and one slow target leaves the others a thread); the kernel is
 * told so that stat and ls show the change.
 */
#ifndef ISCSIFS_TARGET_H
#define ISCSIFS_TARGET_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "evloop.h"
#include "helpers.h"
#include "pool.h"
#include "portal.h"
#include "session.h"

struct fs;

/* A failed open is not tried again sooner than this. */
#define TARGET_RETRY_S 10

struct fs_target {
	struct session_config cfg;    /* how to reach and log in (read-only) */
	char portal[PORTAL_TEXT_MAX]; /* "host:port" ("[v6]:port") for xattrs (read-only) */
	fuse_ino_t dir;               /* the directory of its LUN files (read-only) */
	long long only_lun;           /* add only this LUN, -1 for all (read-only) */
	unsigned files_max;           /* LUN files it may add, those of LUNs gone
	                               * since included: its share of the inode
	                               * table, so that a target whose LUNs come
	                               * and go without end cannot take the
	                               * others' (read-only once the mount is
	                               * built) */
	pthread_mutex_t lock;         /* protects the fields below; held while opening */
	struct pool *pool;            /* lock: its sessions once opened, else NULL */
	struct pool *_Atomic stats_pool; /* t->pool for readers that must not wait
	                               * for the lock (the stats file and the
	                               * session xattrs, on an event loop, while
	                               * a helper holds it to open the target):
	                               * stored once the pool exists, never
	                               * cleared while the mount is served */
	atomic_bool opened;           /* its LUN files are in the file system: set
	                               * once, under lock; read by anyone
	                               * (target_is_open()) */
	unsigned files_added;         /* lock: LUN files added so far */
	int open_err;                 /* lock: errno of the last failed open, 0 if none */
	int64_t failed_at_ns;         /* lock: when that open failed (monotonic) */
	struct fs *fs;                /* the mount; set by the first target_open() */
	pthread_mutex_t rescan_lock;  /* protects the fields below (taken on event
	                               * loops, never held while waiting; held
	                               * while the rescan job is posted or
	                               * withdrawn: before the helpers' lock) */
	pthread_cond_t rescan_cond;   /* signalled when the rescan job ends */
	struct helper_job rescan_job; /* rescan_lock: on the rescan helper while
	                               * rescan_running */
	bool rescan_luns;             /* rescan_lock: the LUN list is to be read again */
	bool rescan_capacity;         /* rescan_lock: some LUN has capacity_changed set */
	bool rescan_identity;         /* rescan_lock: some LUN is held until it is checked
	                               * to be the same unit (pool_hold_lun()) */
	bool rescan_all_capacities;   /* rescan_lock: and every LUN's is to be read
	                               * (one grew while a session was away) */
	bool rescan_running;          /* rescan_lock: the rescan job is queued or runs */
	unsigned rescan_failures;     /* rescan_lock: rounds in a row that failed
	                               * to read what changed (a command that
	                               * timed out, say), each tried again later */
	bool retry_luns;              /* rescan_lock: the retry reads the LUN list */
	bool retry_identity;          /* rescan_lock: the retry checks the held LUNs */
	bool retry_capacity;          /* rescan_lock: the retry reads the capacities
	                               * marked capacity_changed */
	bool retry_pending;           /* rescan_lock: retry_call is posted or
	                               * retry_timer armed */
	int64_t retry_at_ns;          /* rescan_lock: when the retry is due
	                               * (monotonic) */
	struct ev_call retry_call;    /* posted to loop 0 to arm retry_timer */
	struct ev_timer retry_timer;  /* loop 0 only: the retry's deadline */
	bool closing;                 /* rescan_lock: target_free() began: no new rescan */
};

/* A new, closed target for @cfg whose files go under directory @dir.
 * NULL on ENOMEM. */
struct fs_target *target_new(const struct session_config *cfg, const char *portal,
			     fuse_ino_t dir, long long only_lun);

/* Whether @t is open: its LUN files are in the file system, and a lookup
 * or listing of its directory needs no network.  Any thread; never waits. */
bool target_is_open(struct fs_target *t);

/* Open @t unless it is open: log in its pool (fs->sessions sessions),
 * list and probe its LUNs, add a file per disk LUN under t->dir.  LUNs
 * whose data is unusable are skipped with a log line while others are
 * usable.  Returns 0, or an errno with err_set() saying why (ENOENT: no
 * such LUN or not a disk when only_lun is set; the login's errno). */
int target_open(struct fs *fs, struct fs_target *t);

/* Log out and free (after the FUSE session has stopped). */
void target_free(struct fs_target *t);

#endif /* ISCSIFS_TARGET_H */
