/* target.c: opening a target of the mount (see target.h).
 *
 * NOTES ON THE THREAD MODEL
 *
 * target_open() runs on main() at start-up (target form) or on a FUSE
 * worker (discovery mounts, first use of a directory).  t->lock is held
 * for the whole open, login included, so concurrent first uses wait for
 * one login; it is taken before fs->grow_lock and before any pool or
 * session lock.
 */
#include "target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "log.h"
#include "lun.h"

/* LUNs listed per target at most (REPORT LUNS answers beyond are cut). */
#define TARGET_MAX_LUNS 1024

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
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
	pthread_mutex_init(&t->lock, NULL);
	return t;
}

/* Probe the LUNs of an opened pool and add their files.  Lock held. */
static int add_luns(struct fs *fs, struct fs_target *t)
{
	uint32_t *numbers = calloc(TARGET_MAX_LUNS, sizeof *numbers);
	int nluns = numbers ? lun_list(t->pool, numbers, TARGET_MAX_LUNS) : -1;
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
	for (int i = 0; i < nluns; i++) {
		struct lun *l;
		int rc;

		if (t->only_lun >= 0 && numbers[i] != (uint32_t)t->only_lun)
			continue;
		rc = lun_probe(t->pool, numbers[i], &l);
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
		if (!fs_add_node(fs, t->dir, l->name, false, l, t)) {
			err_set(ENOSPC, "%s: too many LUN files; %s not shown", t->cfg.target_name,
				l->name);
			lun_free(l);
			err = ENOSPC;
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

int target_open(struct fs *fs, struct fs_target *t)
{
	int err = 0;

	pthread_mutex_lock(&t->lock);
	if (t->opened)
		goto out;
	if (t->open_err && mono_ns() - t->failed_at_ns < (int64_t)TARGET_RETRY_S * 1000000000) {
		err = t->open_err;
		goto out;
	}
	if (!t->pool) {
		t->pool = pool_create(&t->cfg, fs->sessions, fs->timeout_s);
		if (!t->pool) {
			err = err_errno() ? err_errno() : EIO;
			goto failed;
		}
	}
	err = add_luns(fs, t);
	if (err)
		goto failed;
	t->opened = true;
	t->open_err = 0;
	goto out;
failed:
	/* EACCES (credentials), ENOENT (no such target) and the like: the
	 * directory answers with it, said once per attempt.  At start-up
	 * (target form) main() prints the reason instead. */
	if (fs->discovery)
		log_error("%s: %s", t->cfg.target_name, err_msg());
	t->open_err = err;
	t->failed_at_ns = mono_ns();
out:
	pthread_mutex_unlock(&t->lock);
	return err;
}

void target_free(struct fs_target *t)
{
	if (!t)
		return;
	if (t->pool)
		pool_destroy(t->pool, 30000);
	pthread_mutex_destroy(&t->lock);
	free(t);
}
