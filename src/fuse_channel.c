/* fuse_channel.c: reads and writes on /dev/fuse for libfuse, unchanged but
 * for one thing: open replies marked by fuse_channel_allow_parallel_writes()
 * get FOPEN_PARALLEL_DIRECT_WRITES (Linux 6.2+; older kernels ignore the
 * bit).  libfuse 3.14 has no fuse_file_info field for it.  Also the
 * connection settings of the data path (fuse_channel_configure()), which
 * contrib/fuse-floor shares.
 *
 * Thread model: fuse_reply_open() writes its reply synchronously on the
 * thread that calls it, so a thread-local mark set just before the call
 * identifies that one reply; no table, no lock.
 */
#include "fuse_channel.h"

#include <linux/fuse.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <unistd.h>

/* Set by the open handler, consumed by the next reply on this thread. */
static _Thread_local bool parallel_open_reply;

void fuse_channel_allow_parallel_writes(void)
{
	parallel_open_reply = true;
}

static ssize_t channel_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	if (parallel_open_reply) {
		parallel_open_reply = false;
		/* iov[0] is the fuse_out_header, iov[1] the fuse_open_out */
		if (count >= 2 && iov[0].iov_len == sizeof(struct fuse_out_header) &&
		    ((struct fuse_out_header *)iov[0].iov_base)->error == 0 &&
		    iov[1].iov_len == sizeof(struct fuse_open_out)) {
			struct fuse_open_out *out = iov[1].iov_base;
			out->open_flags |= FOPEN_PARALLEL_DIRECT_WRITES;
		}
	}
	return writev(fd, iov, count);
}

static ssize_t channel_read(int fd, void *buf, size_t len, void *userdata)
{
	return read(fd, buf, len);
}

void fuse_channel_configure(struct fuse_conn_info *conn)
{
	conn->max_write = 1u << 20;
	conn->max_readahead = 1u << 20;
	/* Never the writeback cache, not even for -o cache (which keeps
	 * pages, writing through): with it the kernel owns a file's size.
	 * It takes writes at and past the end into its cache, grows the
	 * file, and later sends them merged with the writes before them,
	 * which fail then (ENOSPC at fsync, the blocks inside lost); and it
	 * no longer takes the size the target reports after a capacity
	 * change. */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	/* Let the kernel send several reads of one file at once. */
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
}

int fuse_channel_install(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.writev = channel_writev,
		.read = channel_read,
	};

	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}
