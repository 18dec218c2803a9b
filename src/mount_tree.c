/* mount_tree.c: the tree a mount starts with (see mount_tree.h). */
#include "mount_tree.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "mount_config.h"
#include "portal.h"
#include "target.h"

size_t mount_tree_luns(const struct fs *fs)
{
	size_t n = 0;

	for (size_t i = 0; i < fs->nnodes; i++)
		n += fs->nodes[i].lun != NULL;
	return n;
}

/* Add @t to the mount's list of targets.  0, or -1 (ENOMEM). */
static int remember_target(struct fs *fs, struct fs_target *t)
{
	struct fs_target **list = realloc(fs->targets, (fs->ntargets + 1) * sizeof *list);

	if (!list)
		return -1;
	fs->targets = list;
	fs->targets[fs->ntargets++] = t;
	return 0;
}

/* Out of memory: err_set() it, return -1. */
static int out_of_memory(void)
{
	err_set(ENOMEM, "out of memory");
	return -1;
}

int mount_tree_target(struct fs *fs, const struct session_config *cfg, const char *portal,
		      long long only_lun)
{
	struct fs_target *t;

	if (fs_reserve(fs, 3 + MOUNT_TREE_MAX_LUNS) < 0 ||
	    !fs_add_node(fs, 0, "", true, NULL, NULL) ||
	    !(t = target_new(cfg, portal, 1, only_lun)) || remember_target(fs, t) < 0)
		return out_of_memory();
	fs->nodes[0].tgt = t;    /* nothing reads the tree yet */
	if (target_open(fs, t))
		return -1;
	if (mount_tree_luns(fs) == 0)
		log_warn("target %s has no disk LUNs; the mount will be empty", cfg->target_name);
	return 0;
}

/* The sessions' configuration of target @dt of a discovery: @cfg with
 * that target's name, every portal it has (for the sessions to spread
 * over and fail over between) and its own ISIDs, stable per mount. */
static void discovered_config(struct session_config *tc, const struct session_config *cfg,
			      const struct discovery_target *dt, const char *mountpoint)
{
	*tc = *cfg;
	snprintf(tc->target_name, sizeof tc->target_name, "%s", dt->name);
	if (dt->nportals > 0) {
		snprintf(tc->host, sizeof tc->host, "%s", dt->portals[0].host);
		tc->port = dt->portals[0].port;
	}
	tc->nportals = 0;
	for (unsigned k = 0; k < dt->nportals && k < SESSION_MAX_PORTALS; k++) {
		snprintf(tc->portals[k].host, sizeof tc->portals[k].host, "%s",
			 dt->portals[k].host);
		tc->portals[k].port = dt->portals[k].port;
		tc->nportals = k + 1;
	}
	mount_config_isid(tc->isid_base, tc->initiator_name, tc->target_name, mountpoint);
}

int mount_tree_portal(struct fs *fs, const struct session_config *cfg,
		      const struct discovery *d, const char *mountpoint)
{
	if (fs_reserve(fs, 3 + d->ntargets * (1 + MOUNT_TREE_MAX_LUNS_DISCOVERED)) < 0 ||
	    !fs_add_node(fs, 0, "", true, NULL, NULL))
		return out_of_memory();
	for (size_t i = 0; i < d->ntargets; i++) {
		const struct discovery_target *dt = &d->targets[i];
		struct session_config tc;
		char portal[PORTAL_TEXT_MAX];
		struct fs_target *t;
		fuse_ino_t dir;

		discovered_config(&tc, cfg, dt, mountpoint);
		portal_format(portal, sizeof portal, tc.host, tc.port);
		dir = fs_add_node(fs, 1, dt->name, true, NULL, NULL);
		t = dir ? target_new(&tc, portal, dir, -1) : NULL;
		if (!t || remember_target(fs, t) < 0) {
			free(t);
			return out_of_memory();
		}
		t->files_max = MOUNT_TREE_MAX_LUNS_DISCOVERED;   /* its room, reserved above */
		fs->nodes[dir - 1].tgt = t;    /* nothing reads the tree yet */
		log_info("target %s at %s", dt->name, portal);
	}
	if (d->ntargets == 0) {
		char portal[PORTAL_TEXT_MAX];

		portal_format(portal, sizeof portal, cfg->host, cfg->port);
		log_warn("discovery on %s found no targets; the mount will be empty", portal);
	}
	return 0;
}
