/* fuse_channel.h: our own I/O on /dev/fuse, to set open flags that
 * libfuse 3.14 has no field for.
 */
#ifndef ISCSIFS_FUSE_CHANNEL_H
#define ISCSIFS_FUSE_CHANNEL_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

/* In the init handler: the data path's connection settings (1 MiB
 * writes and readahead, async reads, never the writeback cache), shared
 * by iscsifs and contrib/fuse-floor so that the floor measures the same
 * round trip. */
void fuse_channel_configure(struct fuse_conn_info *conn);

/* After fuse_session_mount(): route the session's reads and writes through
 * this module.  Returns 0, or -1 (the session keeps libfuse's own I/O). */
int fuse_channel_install(struct fuse_session *se);

/* Call in an open handler right before fuse_reply_open() on the same
 * thread: the reply then carries FOPEN_PARALLEL_DIRECT_WRITES, so the
 * kernel lets several direct writes to the file run at once (it otherwise
 * takes the inode lock exclusively for each). */
void fuse_channel_allow_parallel_writes(void);

#endif /* ISCSIFS_FUSE_CHANNEL_H */
