/* fs.h: the FUSE low-level file system: a tree of directories and LUN
 * files, built once at start-up and read-only afterwards.
 */
#ifndef ISCSIFS_FS_H
#define ISCSIFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lun.h"

/* One inode: the root, a target directory, or a LUN file. */
struct fs_node {
	fuse_ino_t ino;               /* inode number: index + 1 */
	fuse_ino_t parent;            /* parent directory's inode */
	bool is_dir;                  /* directory rather than LUN file */
	bool is_stats;                /* the statistics file (lun is NULL) */
	char name[256];               /* name in the parent ("" for the root) */
	struct lun *lun;              /* LUN files: the LUN */
	const char *target;           /* LUN files: the target IQN */
};

/* The mount: read-only after start-up, so no lock. */
struct fs {
	struct fs_node *nodes;        /* nodes[ino - 1] */
	size_t nnodes;                /* entries used */
	size_t cap;                   /* entries allocated */
	bool read_only;               /* -o ro: every file 0444, writes EROFS */
	bool cache;                   /* -o cache: page cache instead of direct I/O */
	const char *portal;           /* "host:port" for xattrs */
	uid_t uid;                    /* owner shown for every inode */
	gid_t gid;                    /* group shown for every inode */
	struct timespec mount_time;   /* times shown for every inode */
};

/* Add a node under @parent; returns its inode number or 0 (ENOMEM). */
fuse_ino_t fs_add_node(struct fs *fs, fuse_ino_t parent, const char *name, bool is_dir,
		       struct lun *lun, const char *target);

/* Add the directory .iscsifs under the root with the read-only file
 * stats (counters of every LUN and session, see stats.h).  Returns 0, or
 * -1 (ENOMEM). */
int fs_add_stats(struct fs *fs);

/* The operations table for fuse_session_new(). */
extern const struct fuse_lowlevel_ops fs_ops;

#endif /* ISCSIFS_FS_H */
