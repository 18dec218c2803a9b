/* target.c: opening a target of the mount (see target.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * target_open() runs on main() at start-up (target form) or on a FUSE
 * helper (discovery mounts, first use of a directory).  t->lock is held
 * for the whole open, login included, so concurrent first uses wait for
 * one login; it is taken before fs->grow_lock and before any pool or
 * session lock.  Once the files are added, t->opened is set (atomic):
 * from then on target_is_open() answers without the lock, which a rescan
 * may hold for seconds, so lookups are answered on the loops.
 *
 * Once open, a LUN's on_change hook (lun.h) runs on an event loop when
 * a Unit Attention reports a change: it only sets a flag under
 * t->rescan_lock and posts the target's rescan job unless it is queued
 * or runs (lock order: rescan_lock -> the rescan helpers' lock; neither
 * is held while waiting).  The job (one per target at a time, on the
 * process's rescan helpers, at most RESCAN_THREADS threads, so that the
 * threads stay bounded however many targets change at once, and more than
 * one so that a target that answers slowly does not hold every other
 * target's change behind its own) reads capacities or the LUN list
 * again with synchronous commands and adds or marks gone LUN files, the
 * latter under t->lock, so that it never races with the open adding the
 * first files; it tells the kernel afterwards, holding no lock of ours
 * (the kernel may need a FUSE handler to finish first, and a handler may
 * wait for t->lock).  One round per turn: while there is more work it
 * queues itself again behind the other targets' jobs, then ends;
 * target_free() takes it out of the queue, or waits for it to end, before
 * the pool goes.  A round whose commands failed (a timeout, a lost
 * connection) keeps what it could not read and has it read again later:
 * a timer on loop 0 (retry_timer, armed through retry_call, as only a
 * loop may arm its timers) posts the job again after RESCAN_RETRY_MS,
 * doubling, at most RESCAN_RETRIES times in a row; target_free()
 * disarms it on that loop.  Lock order: rescan_lock -> that loop's lock.
 */
#include "target.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "fs.h"
#include "log.h"
#include "lun.h"

#include "evloop.h"

/* LUNs listed per target at most (REPORT LUNS answers beyond are cut). */
#define TARGET_MAX_LUNS 1024

/* Threads that run the rescan jobs of every target, at most, and how long
 * one stays without a job.  Up to RESCAN_THREADS - 1 targets whose
 * commands are slow to answer (each up to -o cmd_timeout and its
 * escalation) leave the others' rescans a thread. */
#define RESCAN_THREADS 2
#define RESCAN_IDLE_MS 2000

/* A rescan that could not read what changed (a command failed: a
 * timeout, a lost connection, an error the target reports) is tried
 * again after RESCAN_RETRY_MS, doubling, up to RESCAN_RETRIES times;
 * then the change waits for the next one the target reports. */
#define RESCAN_RETRY_MS 1000
#define RESCAN_RETRIES 5

/* A held LUN whose check could not be done in those tries is checked
 * again this often (its I/O fails meanwhile: give_up_held()). */
#define IDENTITY_RECHECK_MS 10000

static struct helpers *rescanner;    /* the rescan helpers of the process */
static pthread_once_t rescanner_once = PTHREAD_ONCE_INIT;

static void rescanner_new(void)
{
	rescanner = helpers_on_demand(RESCAN_THREADS, RESCAN_IDLE_MS, "rescan");
}

struct fs_target *target_new(const struct session_config *cfg, const char *portal,
			     fuse_ino_t dir, long long only_lun)
{
	struct fs_target *t = calloc(1, sizeof *t);

	if (!t)
		return NULL;
	t->cfg = *cfg;
	/* the text config points into cfg: point it into our copy */
	t->cfg.text.initiator_name = t->cfg.initiator_name;
	t->cfg.text.target_name = t->cfg.target_name;
	snprintf(t->portal, sizeof t->portal, "%s", portal);
	t->dir = dir;
	t->only_lun = only_lun;
	t->files_max = TARGET_MAX_LUNS;
	atomic_init(&t->opened, false);
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->rescan_lock, NULL);
	pthread_cond_init(&t->rescan_cond, NULL);
	return t;
}

/* ---- changes reported by Unit Attentions ---- */

static void rescan_run(struct helper_job *job);
static void rescan_dropped(struct helper_job *job);
static bool retry_later_locked(struct fs_target *t, bool luns, bool capacity, bool identity);

/* The rescan job could not be posted (no thread could start): the flags
 * stay set, and it is tried again later, so that a held LUN does not
 * wait for a change that may never come.  Rescan lock held.  Returns true
 * when the tries for held LUNs ran out: the caller, once it let go of the
 * lock, calls pool_hold_failing_all() (the failures complete requests, whose paths
 * may take the rescan lock). */
static bool post_failed_locked(struct fs_target *t)
{
	log_warn("target %s: cannot start a thread to follow the change; trying again later",
		 t->cfg.target_name);
	return retry_later_locked(t, t->rescan_luns, t->rescan_capacity, t->rescan_identity);
}

/* Have the rescan job run for what the flags just set say (rescan lock
 * held), posting it unless it is queued or runs.  Returns what
 * post_failed_locked() does when it could not be posted, else false. */
static bool start_rescan_locked(struct fs_target *t)
{
	if (t->rescan_running)
		return false;
	pthread_once(&rescanner_once, rescanner_new);
	t->rescan_job = (struct helper_job){ .run = rescan_run, .drop = rescan_dropped };
	if (rescanner && helpers_post(rescanner, &t->rescan_job) == 0) {
		t->rescan_running = true;
		return false;
	}
	return post_failed_locked(t);
}

/* lun_change_fn of every LUN of @opaque, a target: on an event loop. */
static void lun_changed(struct lun *l, enum lun_change what, void *opaque)
{
	struct fs_target *t = opaque;

	bool give_up = false;

	(void)l;
	pthread_mutex_lock(&t->rescan_lock);
	if (!t->closing) {
		if (what == LUN_CHANGE_CAPACITY)
			t->rescan_capacity = true;
		else if (what == LUN_CHANGE_IDENTITY)
			t->rescan_identity = true;
		else
			t->rescan_luns = true;
		give_up = start_rescan_locked(t);
	}
	/* (closing: pool_destroy() fails what the hold keeps) */
	pthread_mutex_unlock(&t->rescan_lock);
	if (give_up)
		pool_hold_failing_all(t->pool);
}

/* pool_change_fn of the pool of @opaque, a target: the identity check of
 * a session that logged in again found that LUN @lun grew while it was
 * away, as a Unit Attention would have said had the session been there,
 * or met a Unit Attention itself (@what).  On an event loop, which may
 * not take t->lock to find that LUN: every capacity is read again, or the
 * LUN list. */
static void pool_changed(uint32_t lun, enum scsi_change what, void *opaque)
{
	struct fs_target *t = opaque;

	bool give_up = false;

	(void)lun;
	pthread_mutex_lock(&t->rescan_lock);
	if (!t->closing) {
		if (what == SCSI_CHANGE_LUNS) {
			t->rescan_luns = true;
		} else if (what == SCSI_CHANGE_IDENTITY) {
			t->rescan_identity = true;    /* held LUNs, checkable again */
		} else {
			t->rescan_capacity = true;
			t->rescan_all_capacities = true;
		}
		give_up = start_rescan_locked(t);
	}
	pthread_mutex_unlock(&t->rescan_lock);
	if (give_up)
		pool_hold_failing_all(t->pool);
}

/* Tell the pool what @l is (at its probe), so that a session that logs in
 * again checks it is still that LUN; pool_lun_resized() follows its
 * capacity. */
static int expect_lun(struct fs_target *t, struct lun *l)
{
	struct lun_identity id = {
		.lun = l->number,
		.block_size = l->block_size,
		.blocks = atomic_load(&l->blocks),
		.incarnation = l->incarnation,
	};

	snprintf(id.serial, sizeof id.serial, "%s", l->serial);
	snprintf(id.device_id, sizeof id.device_id, "%s", l->device_id);
	return pool_expect_lun(t->pool, &id);
}

/* A new LUN object of @t: its changes come to lun_changed(), and the
 * pool checks its identity after a reconnect.  Returns 0, or -1 with
 * err_set(ENOMEM). */
static int adopt_lun(struct fs_target *t, struct lun *l)
{
	l->on_change = lun_changed;
	l->change_opaque = t;
	return expect_lun(t, l);
}

/* Add the file of LUN @l (just probed) to @t's directory, within the
 * target's share of the inode table (files_max).  t->lock held.  Returns
 * its inode, or 0 with err_set(ENOSPC or ENOMEM), @l freed. */
static fuse_ino_t add_lun_file(struct fs_target *t, struct lun *l)
{
	fuse_ino_t ino = 0;

	/* before the file is seen: its hook is set */
	if (adopt_lun(t, l) < 0) {
		err_set(ENOMEM, "%s: out of memory; %s not shown", t->cfg.target_name, l->name);
		lun_free(l);
		return 0;
	}
	if (t->files_added < t->files_max)
		ino = fs_add_node(t->fs, t->dir, l->name, false, l, t);
	if (!ino) {
		err_set(ENOSPC, "%s: too many LUN files (%u added, those of LUNs gone since "
			"included); %s not shown", t->cfg.target_name, t->files_added, l->name);
		pool_forget_lun(t->pool, l->number);
		lun_free(l);
		return 0;
	}
	t->files_added++;
	return ino;
}

/* The live LUN file of @t for LUN @number, or NULL. */
static struct fs_node *lun_file(struct fs_target *t, uint32_t number)
{
	for (fuse_ino_t ino = 1;; ino++) {
		struct fs_node *n = fs_node(t->fs, ino);
		if (!n)
			return NULL;
		if (n->tgt == t && n->lun && n->lun->number == number && !atomic_load(&n->gone))
			return n;
	}
}

/* The live LUN file of @t named @name, or NULL. */
static struct fs_node *lun_file_named(struct fs_target *t, const char *name)
{
	for (fuse_ino_t ino = 1;; ino++) {
		struct fs_node *n = fs_node(t->fs, ino);
		if (!n)
			return NULL;
		if (n->tgt == t && n->lun && !atomic_load(&n->gone) && strcmp(n->name, name) == 0)
			return n;
	}
}

/* Names of t->dir whose change the kernel is to hear of. */
struct name_list {
	char (*names)[sizeof ((struct lun *)0)->name]; /* malloc()ed */
	size_t n;                     /* entries used */
	size_t cap;                   /* entries allocated */
};

static void name_list_add(struct name_list *nl, const char *name)
{
	if (nl->n == nl->cap) {
		size_t cap = nl->cap ? 2 * nl->cap : 8;
		void *p = realloc(nl->names, cap * sizeof *nl->names);
		if (!p)
			return;         /* the kernel learns when its cache expires (1 s) */
		nl->names = p;
		nl->cap = cap;
	}
	snprintf(nl->names[nl->n++], sizeof *nl->names, "%s", name);
}

static bool name_list_has(const struct name_list *nl, const char *name)
{
	for (size_t i = 0; i < nl->n; i++)
		if (strcmp(nl->names[i], name) == 0)
			return true;
	return false;
}

/* Whether a rescan that failed with @err may succeed when tried again: a
 * command that failed (a timeout, a lost connection, an error status),
 * not data that is unusable (EPROTO) nor a command the target refuses
 * (EOPNOTSUPP, EINVAL), which it would refuse again. */
static bool worth_retrying(int err)
{
	return err != EPROTO && err != EOPNOTSUPP && err != EINVAL;
}

/* Drop the file of LUN file @n, which is another unit now or unusable
 * (@why), so that the LUN is probed anew.  t->lock held. */
static void replace_lun_file(struct fs_target *t, struct fs_node *n, const char *why,
			     struct name_list *changed)
{
	log_info("target %s, %s: %s; its file is replaced, the old one's I/O fails",
		 t->cfg.target_name, n->name, why);
	if (fs_remove_node(t->fs, n->ino))
		pool_forget_lun(t->pool, n->lun->number);
	name_list_add(changed, n->name);
}

/* Probe LUN @number of @t and add its file (a disk LUN); its name goes to
 * @changed.  t->lock held.  Returns false when a command failed and the
 * probe is worth trying again. */
static bool add_new_lun(struct fs_target *t, uint32_t number, struct name_list *changed)
{
	struct lun *l;
	int rc = lun_probe(t->pool, t->cfg.target_name, number, &l);

	if (rc < 0) {
		log_error("target %s: new LUN %u: %s", t->cfg.target_name, number, err_msg());
		return !worth_retrying(err_errno());
	}
	if (rc == 0) {
		log_debug("target %s: LUN %u: %s; no file", t->cfg.target_name, number, err_msg());
		return true;
	}
	if (!add_lun_file(t, l)) {
		log_error("target %s", err_msg());
		return true;
	}
	log_info("target %s, %s: new LUN of %llu bytes; its file is added", t->cfg.target_name,
		 l->name, (unsigned long long)l->size);
	name_list_add(changed, l->name);
	return true;
}

/* The LUN list part of rescan_luns(), t->lock held: LUN files gone and
 * new ones, whose names go to @changed.  Returns false when a command
 * failed, so that what it was to read is read again later. */
static bool rescan_luns_locked(struct fs_target *t, struct name_list *changed)
{
	uint32_t *numbers = calloc(TARGET_MAX_LUNS, sizeof *numbers);
	int nluns;
	bool whole, done = true;

	if (!numbers) {
		log_error("target %s: out of memory reading the LUN list again", t->cfg.target_name);
		return false;
	}
	nluns = lun_list(t->pool, t->cfg.target_name, numbers, TARGET_MAX_LUNS, true, &whole);
	if (nluns < 0) {
		log_error("target %s: cannot read the LUN list again: %s", t->cfg.target_name,
			  err_msg());
		free(numbers);
		return !worth_retrying(err_errno());
	}
	/* a LUN missing from a list cut short may be there all the same:
	 * only a whole list removes files */
	if (!whole)
		log_warn("target %s: its LUN list is cut short of what it says it holds; "
			 "new LUNs are added, no file is removed", t->cfg.target_name);
	for (fuse_ino_t ino = 1; whole; ino++) {
		struct fs_node *n = fs_node(t->fs, ino);
		bool listed = false;

		if (!n)
			break;
		if (n->tgt != t || !n->lun || atomic_load(&n->gone))
			continue;
		for (int i = 0; i < nluns && !listed; i++)
			listed = numbers[i] == n->lun->number;
		if (listed)
			continue;
		if (!fs_remove_node(t->fs, n->ino))
			continue;
		/* not checked after a reconnect: another LUN with that
		 * number later is a new file, not a replacement */
		pool_forget_lun(t->pool, n->lun->number);
		log_info("target %s, %s: the target no longer reports the LUN; its file is removed",
			 t->cfg.target_name, n->name);
		name_list_add(changed, n->name);
	}
	/* new LUNs first, then whether those that stay are the units their
	 * files were made for (the target may have put another in one's place
	 * between two lists): a LUN slow to answer that check delays no new
	 * one, and a check that fails is not tried again (the next change
	 * checks again; a reconnect checks every LUN) */
	for (int i = 0; i < nluns; i++) {
		struct fs_node *had;

		if (t->only_lun >= 0 && numbers[i] != (uint32_t)t->only_lun)
			continue;
		had = lun_file(t, numbers[i]);
		if (had && pool_lun_is_replaced(t->pool, numbers[i])) {
			replace_lun_file(t, had, "found to be another unit or unusable before",
					 changed);
			had = NULL;
		}
		if (!had && !add_new_lun(t, numbers[i], changed))
			done = false;     /* a command failed: probe it again */
	}
	for (int i = 0; i < nluns; i++) {
		struct fs_node *had = lun_file(t, numbers[i]);
		char why[320];
		int rc;

		if (!had || name_list_has(changed, had->name))
			continue;         /* (added just now) */
		rc = lun_check_identity(had->lun);
		if (rc == 1)
			continue;
		if (rc < 0) {
			log_error("target %s, %s: cannot check it is the same unit: %s",
				  t->cfg.target_name, had->name, err_msg());
			continue;
		}
		snprintf(why, sizeof why, "another logical unit now (%s)", err_msg());
		replace_lun_file(t, had, why, changed);
		if (!add_new_lun(t, numbers[i], changed))
			done = false;
	}
	free(numbers);
	return done;
}

/* Whether error @err of a command of the check of a held LUN may pass
 * if the check is done again: not when the unit's blocks or data are
 * unusable as its file's (ESTALE, EPROTO) or the LUN is not there
 * (ENXIO). */
static bool check_worth_retrying(int err)
{
	return worth_retrying(err) && err != ESTALE && err != ENXIO;
}

/* Check each LUN of @t that a Unit Attention held (pool_hold_lun()), so
 * that no command reaches another unit put in its place: its serial
 * number and device identifier, then its capacity, as the probe read
 * them.  The same unit: its commands go on (pool_release_lun()); the
 * names of those whose size changed go to @resized.  Another unit, or
 * unusable as the file's: what waited fails with EIO, and the file goes
 * (its name to @changed), to be probed anew by the LUN list that
 * follows (*@list_again).  A command that failed: it stays held, to be
 * checked again later (returns false).  t->lock held. */
static bool check_held_locked(struct fs_target *t, struct name_list *changed,
			      struct name_list *resized, bool *list_again)
{
	bool done = true;

	for (fuse_ino_t ino = 1;; ino++) {
		struct fs_node *n = fs_node(t->fs, ino);
		char why[320];
		uint64_t old;
		int rc;

		if (!n)
			break;
		if (n->tgt != t || !n->lun || atomic_load(&n->gone) ||
		    !pool_lun_is_held(t->pool, n->lun->number))
			continue;
		struct lun *l = n->lun;
		rc = lun_check_identity(l);
		if (rc == 1) {
			rc = lun_reread_capacity(l, &old);
			if (rc >= 0) {
				pool_lun_resized(t->pool, l->number, atomic_load(&l->blocks));
				pool_release_lun(t->pool, l->number);
				log_debug("target %s, %s: the same unit; its commands go on",
					  t->cfg.target_name, n->name);
				if (rc == 1) {
					log_info("target %s, %s: capacity changed from %llu to %llu bytes",
						 t->cfg.target_name, n->name,
						 (unsigned long long)old, (unsigned long long)l->size);
					name_list_add(resized, n->name);
				}
				continue;
			}
		}
		if (rc < 0 && check_worth_retrying(err_errno())) {
			/* (said once: while its check keeps failing, it is
			 * tried every IDENTITY_RECHECK_MS) */
			if (!pool_lun_is_held_failing(t->pool, l->number))
				log_error("target %s, %s: cannot check it is the same unit: %s; "
					  "its commands wait", t->cfg.target_name, n->name, err_msg());
			done = false;
			continue;
		}
		snprintf(why, sizeof why, "%s (%s)", rc == 0 ? "another logical unit now" :
			 "unusable as its file now", err_msg());
		pool_lun_unusable(t->pool, l->number);    /* what waited fails */
		replace_lun_file(t, n, why, changed);
		*list_again = true;
	}
	return done;
}

/* The held LUNs of @t checked, then the kernel is told of the files that
 * changed.  Returns false when some are to be checked again later; sets
 * *@list_again when the LUN list is to be read (a file went). */
static bool rescan_identities(struct fs_target *t, bool *list_again)
{
	struct name_list changed = { NULL, 0, 0 }, resized = { NULL, 0, 0 };
	bool done;

	/* (also before the target is open: an open that failed part way
	 * leaves files whose LUNs may be held) */
	pthread_mutex_lock(&t->lock);
	done = check_held_locked(t, &changed, &resized, list_again);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < resized.n; i++) {
		struct fs_node *n = lun_file_named(t, resized.names[i]);
		if (n)
			fs_notify_resized(t->fs, n->ino);
	}
	for (size_t i = 0; i < changed.n; i++)
		fs_notify_entry(t->fs, t->dir, changed.names[i]);
	free(changed.names);
	free(resized.names);
	return done;
}

/* Read the capacity again of each LUN of @t that a Unit Attention marked,
 * or of all when @all (t->lock held, so that the open has added every
 * file); the names whose size changed go to @changed.  Returns false when
 * a command failed: those LUNs stay marked, to be read again later. */
static bool rescan_capacities_locked(struct fs_target *t, bool all, struct name_list *changed)
{
	bool done = true;

	for (fuse_ino_t ino = 1;; ino++) {
		struct fs_node *n = fs_node(t->fs, ino);
		uint64_t old;
		int rc;

		if (!n)
			break;
		if (n->tgt != t || !n->lun || atomic_load(&n->gone) ||
		    (!atomic_exchange(&n->lun->capacity_changed, false) && !all))
			continue;
		/* its commands fail: the next LUN list replaces its file */
		if (pool_lun_is_replaced(t->pool, n->lun->number))
			continue;
		rc = lun_reread_capacity(n->lun, &old);
		if (rc < 0) {
			log_error("target %s, %s", t->cfg.target_name, err_msg());
			/* addressed in blocks of the old size, its I/O would
			 * reach the wrong bytes */
			if (err_errno() == ESTALE) {
				pool_lun_unusable(t->pool, n->lun->number);
			} else if (worth_retrying(err_errno())) {
				atomic_store(&n->lun->capacity_changed, true);
				done = false;
			}
		} else {
			/* what a reconnect checks: the size read now, also when
			 * unchanged (a session's check may have taken a larger one
			 * for the LUN's, pool_lun_grew()) */
			pool_lun_resized(t->pool, n->lun->number, atomic_load(&n->lun->blocks));
			if (rc == 0) {
				log_info("target %s, %s: capacity unchanged (%llu bytes)",
					 t->cfg.target_name, n->name, (unsigned long long)old);
			} else {
				log_info("target %s, %s: capacity changed from %llu to %llu bytes",
					 t->cfg.target_name, n->name, (unsigned long long)old,
					 (unsigned long long)n->lun->size);
				name_list_add(changed, n->name);
			}
		}
	}
	return done;
}

/* Capacities, then the kernel is told of the files that changed size.
 * Returns false when some are to be read again later. */
static bool rescan_capacities(struct fs_target *t, bool all)
{
	struct name_list changed = { NULL, 0, 0 };
	bool done = true;

	pthread_mutex_lock(&t->lock);
	if (t->opened)
		done = rescan_capacities_locked(t, all, &changed);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < changed.n; i++) {
		struct fs_node *n = lun_file_named(t, changed.names[i]);
		if (n)
			fs_notify_resized(t->fs, n->ino);
	}
	free(changed.names);
	return done;
}

/* Read the LUN list of @t again: files of LUNs gone are removed, files of
 * new disk LUNs added (as at the open: only only_lun when it is set); then
 * the kernel is told.  Returns false when it is to be read again later. */
static bool rescan_luns(struct fs_target *t)
{
	struct name_list changed = { NULL, 0, 0 };
	bool done = true;

	pthread_mutex_lock(&t->lock);
	if (t->opened)
		done = rescan_luns_locked(t, &changed);
	pthread_mutex_unlock(&t->lock);
	for (size_t i = 0; i < changed.n; i++)
		fs_notify_entry(t->fs, t->dir, changed.names[i]);
	free(changed.names);
	return done;
}

/* ---- a rescan that failed, tried again later ---- */

/* retry_timer of a target fired, on its loop: the rescan runs again for
 * what failed. */
static void retry_fire(struct ev_timer *timer)
{
	struct fs_target *t = (struct fs_target *)((char *)timer -
						   offsetof(struct fs_target, retry_timer));

	bool give_up = false;

	pthread_mutex_lock(&t->rescan_lock);
	t->retry_pending = false;
	if (!t->closing) {
		t->rescan_luns |= t->retry_luns;
		t->rescan_capacity |= t->retry_capacity;
		t->rescan_identity |= t->retry_identity;
		t->retry_luns = t->retry_capacity = t->retry_identity = false;
		give_up = start_rescan_locked(t);
	}
	pthread_mutex_unlock(&t->rescan_lock);
	if (give_up)
		pool_hold_failing_all(t->pool);
}

/* retry_call of a target, on its loop: arm the timer (only the loop may). */
static void retry_arm(struct ev_call *call)
{
	struct fs_target *t = (struct fs_target *)((char *)call -
						   offsetof(struct fs_target, retry_call));
	int64_t at;

	pthread_mutex_lock(&t->rescan_lock);
	at = t->retry_at_ns;
	pthread_mutex_unlock(&t->rescan_lock);
	t->retry_timer.fire = retry_fire;
	evloop_timer_arm(evloop_at(0), &t->retry_timer, at);
}

/* A round of @t's rescan failed to read the LUN list (@luns) or some
 * capacities (@capacity), or to check some held LUNs (@identity): have
 * it run again for them later, or give up after RESCAN_RETRIES rounds in
 * a row.  Rescan lock held.  Returns true when it gave up checking held
 * LUNs (the caller fails them: give_up_held()). */
static bool retry_later_locked(struct fs_target *t, bool luns, bool capacity, bool identity)
{
	if (t->closing)
		return false;
	t->retry_luns |= luns;
	t->retry_capacity |= capacity;
	t->retry_identity |= identity;
	if (t->retry_pending)
		return false;     /* that retry reads these too */
	bool held = t->retry_identity;
	int64_t wait_ms;
	if (t->rescan_failures >= RESCAN_RETRIES) {
		log_error("target %s: the change it reported could not be read in %u tries; "
			  "it is read at the next change%s", t->cfg.target_name,
			  t->rescan_failures + 1, held ? " (held LUNs: checked again later)" : "");
		t->retry_luns = t->retry_capacity = false;
		t->rescan_failures = 0;   /* (a later change gets its tries) */
		if (!held)
			return false;
		/* a held LUN is not left without a check: its I/O fails
		 * meanwhile (the caller's pool_hold_failing_all()) */
		wait_ms = IDENTITY_RECHECK_MS;
	} else {
		wait_ms = (int64_t)RESCAN_RETRY_MS << t->rescan_failures;
		t->rescan_failures++;
		held = false;
	}
	t->retry_at_ns = mono_now_ns() + wait_ms * 1000000;
	t->retry_pending = true;
	t->retry_call.run = retry_arm;
	evloop_post(evloop_at(0), &t->retry_call);  /* (the pool's sessions run the loops) */
	return held;
}

/* On loop 0: neither the retry's call nor its timer runs after this. */
static void retry_cancel(void *arg)
{
	struct fs_target *t = arg;

	evloop_cancel(evloop_at(0), &t->retry_call);
	evloop_timer_cancel(evloop_at(0), &t->retry_timer);
}

/* The target whose rescan job is @job. */
static struct fs_target *target_of_job(struct helper_job *job)
{
	return (struct fs_target *)((char *)job - offsetof(struct fs_target, rescan_job));
}

/* The rescan job of @t is over (rescan lock held): target_free() may go
 * on, and the next change posts it again. */
static void rescan_ended_locked(struct fs_target *t)
{
	t->rescan_running = false;
	pthread_cond_broadcast(&t->rescan_cond);
}

/* The rescan job of a target, on the rescan helper: one round of the
 * rescans the flags ask for.  When they ask again meanwhile, the job goes
 * to the back of the queue, so that a target whose every answer reports a
 * change takes turns with the others instead of keeping the helper. */
static void rescan_run(struct helper_job *job)
{
	struct fs_target *t = target_of_job(job);

	pthread_mutex_lock(&t->rescan_lock);
	if (!t->closing && (t->rescan_luns || t->rescan_capacity || t->rescan_identity)) {
		bool luns = t->rescan_luns, capacity = t->rescan_capacity;
		bool identity = t->rescan_identity;
		bool all = t->rescan_all_capacities;
		bool luns_done = true, capacity_done = true, identity_done = true;
		t->rescan_luns = t->rescan_capacity = t->rescan_all_capacities = false;
		t->rescan_identity = false;
		pthread_mutex_unlock(&t->rescan_lock);
		/* held LUNs first: their commands wait for it */
		if (identity)
			identity_done = rescan_identities(t, &luns);
		if (capacity)
			capacity_done = rescan_capacities(t, all);
		if (luns)
			luns_done = rescan_luns(t);
		pthread_mutex_lock(&t->rescan_lock);
		if (!luns_done || !capacity_done || !identity_done) {
			if (retry_later_locked(t, !luns_done, !capacity_done, !identity_done)) {
				pthread_mutex_unlock(&t->rescan_lock);
				pool_hold_failing_all(t->pool);
				pthread_mutex_lock(&t->rescan_lock);
			}
		} else if (!t->retry_pending) {
			t->rescan_failures = 0;   /* (a retry pending keeps its count) */
		}
	}
	/* (the job is not touched after it is queued again) */
	bool give_up = false;
	if (t->closing || !(t->rescan_luns || t->rescan_capacity || t->rescan_identity)) {
		rescan_ended_locked(t);
	} else if (helpers_post(rescanner, &t->rescan_job) < 0) {
		rescan_ended_locked(t);
		give_up = post_failed_locked(t);
	}
	pthread_mutex_unlock(&t->rescan_lock);
	if (give_up)
		pool_hold_failing_all(t->pool);
}

/* The rescan helpers stopped before the job ran (they never do: the
 * contract of helper jobs). */
static void rescan_dropped(struct helper_job *job)
{
	struct fs_target *t = target_of_job(job);

	pthread_mutex_lock(&t->rescan_lock);
	rescan_ended_locked(t);
	pthread_mutex_unlock(&t->rescan_lock);
}

/* The files an earlier open of @t added before it failed on a later LUN
 * (unseen since: a lookup needs the open to succeed), now that the LUN
 * list reads @numbers: those of LUNs no longer listed go; the others'
 * capacity is read again (the open that failed may have taken the Unit
 * Attention that said it changed), and one whose logical block size
 * changed, whose data is unusable now or that a reconnect found to be
 * another unit goes too, to be probed anew.  Lock held.  Returns 0, or the
 * errno of a command that failed. */
static int recheck_earlier_files(struct fs_target *t, const uint32_t *numbers, int nluns)
{
	for (fuse_ino_t ino = 1;; ino++) {
		struct fs_node *n = fs_node(t->fs, ino);
		bool listed = false;
		uint64_t old;

		if (!n)
			return 0;
		if (n->tgt != t || !n->lun || atomic_load(&n->gone))
			continue;
		for (int i = 0; i < nluns && !listed; i++)
			listed = numbers[i] == n->lun->number;
		if (listed && !pool_lun_is_replaced(t->pool, n->lun->number)) {
			int rc = lun_reread_capacity(n->lun, &old);
			if (rc >= 0) {
				pool_lun_resized(t->pool, n->lun->number,
						 atomic_load(&n->lun->blocks));
				continue;
			}
			/* another block size, or data unusable now: the probe
			 * below decides */
			if (err_errno() != ESTALE && err_errno() != EPROTO)
				return err_errno() ? err_errno() : EIO;
		}
		/* not listed, or found replaced by a reconnect meanwhile */
		if (fs_remove_node(t->fs, n->ino))
			pool_forget_lun(t->pool, n->lun->number);
	}
}

/* Probe the LUNs of an opened pool and add their files, but for those
 * whose file an earlier open that failed part way added already (it stays,
 * checked again: recheck_earlier_files()).  Lock held. */
static int add_luns(struct fs *fs, struct fs_target *t)
{
	uint32_t *numbers = calloc(TARGET_MAX_LUNS, sizeof *numbers);
	int nluns = numbers ? lun_list(t->pool, t->cfg.target_name, numbers, TARGET_MAX_LUNS,
				       false, NULL) : -1;
	char skipped[512] = "";         /* why the first unusable LUN was skipped */
	unsigned nskipped = 0, added = 0;
	bool wanted_found = false;
	int err = 0;

	if (nluns < 0) {
		err = numbers ? err_errno() : ENOMEM;
		err_set(err ? err : EIO, "cannot list the LUNs of %s: %s", t->cfg.target_name,
			numbers ? err_msg() : "out of memory");
		free(numbers);
		return err ? err : EIO;
	}
	if (t->files_added && (err = recheck_earlier_files(t, numbers, nluns)) != 0)
		goto out;
	for (int i = 0; i < nluns; i++) {
		struct lun *l;
		int rc;

		if (t->only_lun >= 0 && numbers[i] != (uint32_t)t->only_lun)
			continue;
		if (lun_file(t, numbers[i])) {
			/* added by an open that failed on a later LUN */
			wanted_found = true;
			added++;
			continue;
		}
		rc = lun_probe(t->pool, t->cfg.target_name, numbers[i], &l);
		if (rc < 0 && t->only_lun < 0 && err_errno() == EPROTO) {
			/* The target's data about this LUN is unusable: serve
			 * the others.  The first reason waits, so that a target
			 * with no usable LUN fails with one line. */
			if (nskipped++ == 0)
				snprintf(skipped, sizeof skipped, "%s", err_msg());
			else
				log_error("%s; LUN skipped", err_msg());
			continue;
		}
		if (rc < 0) {
			err = err_errno() ? err_errno() : EIO;
			goto out;
		}
		if (rc == 0 && err_errno() == ENXIO)
			continue;         /* listed, but not there: no such LUN */
		if (t->only_lun >= 0)
			wanted_found = true;
		if (rc == 0) {
			if (t->only_lun >= 0) {
				err_set(ENOENT, "LUN %u of %s is not a disk", numbers[i],
					t->cfg.target_name);
				err = ENOENT;
				goto out;
			}
			continue;
		}
		if (!add_lun_file(t, l)) {
			err = err_errno() ? err_errno() : ENOSPC;
			goto out;
		}
		added++;
	}
	if (nskipped && added == 0) {
		err_set(EPROTO, "%s", skipped);
		err = EPROTO;
		goto out;
	}
	if (nskipped)
		log_error("%s; LUN skipped", skipped);
	if (t->only_lun >= 0 && !wanted_found) {
		err_set(ENOENT, "no such LUN: %lld on target %s", t->only_lun, t->cfg.target_name);
		err = ENOENT;
	}
out:
	free(numbers);
	return err;
}

bool target_is_open(struct fs_target *t)
{
	return atomic_load_explicit(&t->opened, memory_order_acquire);
}

int target_open(struct fs *fs, struct fs_target *t)
{
	int err = 0;

	if (target_is_open(t))
		return 0;             /* no lock: a rescan may hold it for seconds */
	pthread_mutex_lock(&t->lock);
	if (t->opened)
		goto out;
	if (t->open_err && mono_now_ns() - t->failed_at_ns < (int64_t)TARGET_RETRY_S * 1000000000) {
		err = t->open_err;
		goto out;
	}
	t->fs = fs;
	if (!t->pool) {
		t->pool = pool_create(&t->cfg, fs->sessions, fs->timeout_s);
		if (!t->pool) {
			err = err_errno() ? err_errno() : EIO;
			goto failed;
		}
		pool_set_change_hook(t->pool, pool_changed, t);
		atomic_store_explicit(&t->stats_pool, t->pool, memory_order_release);
	}
	err = add_luns(fs, t);
	if (err)
		goto failed;
	t->open_err = 0;
	/* after the files: whoever sees it set sees them */
	atomic_store_explicit(&t->opened, true, memory_order_release);
	goto out;
failed:
	/* EACCES (credentials), ENOENT (no such target) and the like: the
	 * directory answers with it, said once per attempt.  At start-up
	 * (target form) main() prints the reason instead. */
	if (fs->discovery)
		log_error("%s: %s", t->cfg.target_name, err_msg());
	t->open_err = err;
	t->failed_at_ns = mono_now_ns();
out:
	pthread_mutex_unlock(&t->lock);
	return err;
}

void target_free(struct fs_target *t)
{
	if (!t)
		return;
	/* a rescan not begun is called off, one in progress finishes its
	 * commands first; none starts after */
	pthread_mutex_lock(&t->rescan_lock);
	t->closing = true;
	if (t->rescan_running && helpers_withdraw(rescanner, &t->rescan_job))
		t->rescan_running = false;
	while (t->rescan_running)
		pthread_cond_wait(&t->rescan_cond, &t->rescan_lock);
	bool retry = t->retry_pending;
	pthread_mutex_unlock(&t->rescan_lock);
	/* (not under the lock: the timer takes it; once closing is set it
	 * only clears retry_pending) */
	if (retry)
		evloop_run_sync(evloop_at(0), retry_cancel, t);
	if (t->pool) {
		lun_reads_cancel(t->pool);
		pool_destroy(t->pool, 30000);
	}
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->rescan_lock);
	pthread_cond_destroy(&t->rescan_cond);
	free(t);
}
