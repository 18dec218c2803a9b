/* mount_tree.h: the tree a mount starts with.
 *
 * The target form (iscsi://HOST/TARGET[/LUN]) logs in to the target at
 * start-up, lists and probes its LUNs and puts one file per disk LUN in
 * the root, so that a failure is reported before the mount exists.  The
 * portal form (iscsi://HOST/) turns what SendTargets discovery found into
 * one directory per target; each logs in on its first use (target.h).
 * The nodes are reserved here once for the whole life of the mount
 * (fs.h): room for MOUNT_TREE_MAX_LUNS files, or MOUNT_TREE_MAX_LUNS_DISCOVERED
 * per discovered target.
 *
 * Thread model: main() only, at start-up, before the FUSE session exists.
 */
#ifndef ISCSIFS_MOUNT_TREE_H
#define ISCSIFS_MOUNT_TREE_H

#include <stddef.h>

#include "discovery.h"
#include "fs.h"
#include "session.h"

/* LUN files of a target-form mount at most. */
#define MOUNT_TREE_MAX_LUNS 1024
/* LUN files per target of a discovery mount at most. */
#define MOUNT_TREE_MAX_LUNS_DISCOVERED 256

/* The target form: open the target of @cfg at @portal (its "host:port"
 * text), keeping only LUN @only_lun when it is 0 or more, and add its
 * files to the root of the empty @fs.  Returns 0, or -1 with err_set()
 * saying why (the target's or the login's reason, or out of memory). */
int mount_tree_target(struct fs *fs, const struct session_config *cfg, const char *portal,
		      long long only_lun);

/* The portal form: a directory in the root of the empty @fs for each
 * target of @d, whose sessions start from @cfg with that target's name,
 * portals and ISIDs (seeded by @mountpoint).  Nothing logs in yet.
 * Returns 0, or -1 with err_set(ENOMEM). */
int mount_tree_portal(struct fs *fs, const struct session_config *cfg,
		      const struct discovery *d, const char *mountpoint);

/* The LUN files in @fs. */
size_t mount_tree_luns(const struct fs *fs);

#endif /* ISCSIFS_MOUNT_TREE_H */
