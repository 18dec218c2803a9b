/* fs.h: the FUSE low-level file system: a tree of directories and LUN
 * files.
 *
 * Nodes live in one array allocated once (fs_reserve()) and are only ever
 * appended: a target opened while mounted (discovery mounts) adds its LUN
 * files then, and so does a LUN the target reports later (REPORTED LUNS
 * DATA HAS CHANGED).  A node is complete before nnodes counts it (release
 * store, acquire loads), so readers take no lock; appenders take
 * grow_lock.  A LUN the target no longer reports keeps its node, marked
 * gone: names and listings skip it; open files of it keep their LUN (its
 * memory) but their I/O fails with EIO, since a LUN that comes back under
 * the same number may be another device.
 */
#ifndef ISCSIFS_FS_H
#define ISCSIFS_FS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/types.h>

#include "lun.h"
#include "target.h"

struct lun_open;   /* an open LUN file's state (fs.c) */

/* One inode: the root, a target directory, a LUN file, or the stats
 * directory and file. */
struct fs_node {
	fuse_ino_t ino;               /* inode number: index + 1 */
	fuse_ino_t parent;            /* parent directory's inode */
	bool is_dir;                  /* directory rather than file */
	bool is_stats;                /* the statistics file (lun is NULL) */
	char name[256];               /* name in the parent ("" for the root) */
	struct lun *lun;              /* LUN files: the LUN */
	struct fs_target *tgt;        /* a target's directory and LUN files: the target */
	atomic_bool gone;             /* the LUN left the target: no longer in its
	                               * directory (set once, by fs_remove_node()) */
};

/* The mount. */
struct fs {
	struct fs_node *nodes;        /* nodes[ino - 1], cap entries, never moved */
	size_t cap;                   /* entries allocated (fixed by fs_reserve()) */
	atomic_size_t nnodes;         /* entries complete and visible */
	pthread_mutex_t grow_lock;    /* serialises fs_add_node() */
	struct fs_target **targets;   /* every target of the mount (read-only once mounted) */
	size_t ntargets;              /* entries of targets */
	bool discovery;               /* the root lists targets, not LUN files (read-only) */
	bool read_only;               /* -o ro: every file 0444, writes EROFS */
	bool cache;                   /* -o cache: page cache instead of direct I/O */
	unsigned sessions;            /* -o sessions: per opened target */
	unsigned timeout_s;           /* -o timeout: replacement timeout of each pool */
	uid_t uid;                    /* owner shown for every inode */
	gid_t gid;                    /* group shown for every inode */
	struct timespec mount_time;   /* times shown for every inode */
	pthread_mutex_t notify_lock;  /* protects se */
	struct fuse_session *se;      /* notify_lock: the mounted session, for telling
	                               * the kernel what changed; NULL before the
	                               * mount and once the loop has ended */
	pthread_mutex_t opens_lock;   /* protects opens (a leaf: nothing is called
	                               * under it) */
	struct lun_open *opens;       /* opens_lock: the LUN files open and not
	                               * released yet (fs.c), freed by
	                               * fs_free_opens() at the end when the kernel
	                               * never released them (a lazy unmount with
	                               * files open) */
};

/* Allocate room for @cap nodes; call once before adding any.  0 or -1. */
int fs_reserve(struct fs *fs, size_t cap);

/* Free the state of the LUN files still open: after the FUSE session is
 * gone, when no request can come. */
void fs_free_opens(struct fs *fs);

/* Add a node under @parent (0: the root itself), of target @tgt (NULL for
 * none); returns its inode number, or 0 (ENOSPC when the reserved room is
 * used up). */
fuse_ino_t fs_add_node(struct fs *fs, fuse_ino_t parent, const char *name, bool is_dir,
		       struct lun *lun, struct fs_target *tgt);

/* Add the directory .iscsifs under the root with the read-only file
 * stats (counters of every LUN and session, see stats.h).  Returns 0, or
 * -1 (ENOSPC). */
int fs_add_stats(struct fs *fs);

/* The node of inode @ino, or NULL. */
struct fs_node *fs_node(struct fs *fs, fuse_ino_t ino);

/* Set (after the mount) or clear (once the loop ended) the FUSE session
 * the notifications below go to. */
void fs_set_session(struct fs *fs, struct fuse_session *se);

/* Tell the kernel that file @ino changed size: its attributes and cached
 * pages are dropped, so the next stat asks us.  Any thread except a FUSE
 * handler (the kernel may wait for that handler); no lock of the file
 * system held. */
void fs_notify_resized(struct fs *fs, fuse_ino_t ino);

/* Tell the kernel that the name @name in directory @parent appeared or
 * went away.  As fs_notify_resized(). */
void fs_notify_entry(struct fs *fs, fuse_ino_t parent, const char *name);

/* A LUN left its target: mark node @ino gone (tell the kernel with
 * fs_notify_entry() afterwards).  Returns whether it was live. */
bool fs_remove_node(struct fs *fs, fuse_ino_t ino);

/* The operations table for fuse_session_new(). */
extern const struct fuse_lowlevel_ops fs_ops;

#endif /* ISCSIFS_FS_H */
