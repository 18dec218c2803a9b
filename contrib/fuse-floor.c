/* contrib/fuse-floor: the least a FUSE server can spend per request.
 *
 * A low-level libfuse server with one file, MNT/data, of SIZE bytes: reads
 * answer zeros from memory, writes are taken and dropped, fsync succeeds.
 * One thread reads /dev/fuse and replies (libfuse's own fuse_session_loop),
 * with the connection settings iscsifs uses (fuse_channel_configure(), fs_open():
 * direct I/O with parallel direct writes through src/fuse_channel.c,
 * 1 MiB writes, async reads, no writeback cache).  Whatever CPU
 * and context switches it spends per request are the FUSE round trip alone:
 * no initiator can reach a LUN through FUSE for less.  contrib/bench
 * measures it beside raw libiscsi and iscsifs (its "floor" column).
 *
 * Usage: fuse-floor SIZE MNT   (SIZE in bytes, or with a K, M or G suffix)
 * It runs in the foreground until MNT is unmounted (fusermount3 -u MNT).
 */
#include "fuse_channel.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define FILE_INO 2
#define FILE_NAME "data"
#define ZEROS_LEN (1u << 20)   /* the largest read the kernel sends (max_read) */

static uint64_t file_size;                 /* SIZE: the file's size in bytes */
static const char zeros[ZEROS_LEN];        /* what every read answers */

static void floor_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	fuse_channel_configure(conn);
}

static void fill_stat(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
	} else {
		st->st_mode = S_IFREG | 0644;
		st->st_nlink = 1;
		st->st_size = (off_t)file_size;
	}
}

static void floor_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != FUSE_ROOT_ID || strcmp(name, FILE_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e = { .ino = FILE_INO, .attr_timeout = 3600, .entry_timeout = 3600 };
	fill_stat(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void floor_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct stat st;
	fill_stat(ino, &st);
	fuse_reply_attr(req, &st, 3600);
}

static void floor_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	fi->direct_io = 1;
	fuse_channel_allow_parallel_writes();
	fuse_reply_open(req, fi);
}

static void floor_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	if (off < 0 || (uint64_t)off >= file_size)
		size = 0;
	else if (size > file_size - (uint64_t)off)
		size = (size_t)(file_size - (uint64_t)off);
	if (size > ZEROS_LEN)
		size = ZEROS_LEN;
	fuse_reply_buf(req, zeros, size);
}

static void floor_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
			off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)fi;
	if (off < 0 || (uint64_t)off > file_size || size > file_size - (uint64_t)off) {
		fuse_reply_err(req, ENOSPC);
		return;
	}
	fuse_reply_write(req, size);
}

static void floor_ok(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void floor_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void floor_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	(void)fi;
	if (ino != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	static const struct { const char *name; fuse_ino_t ino; mode_t mode; } entries[] = {
		{ ".", FUSE_ROOT_ID, S_IFDIR }, { "..", FUSE_ROOT_ID, S_IFDIR },
		{ FILE_NAME, FILE_INO, S_IFREG },
	};
	char buf[512];
	size_t used = 0;
	if (size > sizeof buf)
		size = sizeof buf;
	for (off_t i = off; i >= 0 && i < (off_t)(sizeof entries / sizeof entries[0]); i++) {
		struct stat st = { .st_ino = entries[i].ino, .st_mode = entries[i].mode };
		size_t len = fuse_add_direntry(req, buf + used, size - used, entries[i].name, &st, i + 1);
		if (len > size - used)
			break;
		used += len;
	}
	fuse_reply_buf(req, buf, used);
}

static const struct fuse_lowlevel_ops floor_ops = {
	.init = floor_init,
	.lookup = floor_lookup,
	.getattr = floor_getattr,
	.open = floor_open,
	.read = floor_read,
	.write = floor_write,
	.flush = floor_flush,
	.fsync = floor_ok,
	.readdir = floor_readdir,
};

/* SIZE: a positive number of bytes, with an optional K, M or G suffix. */
static int parse_size(const char *text, uint64_t *size)
{
	char *end;
	errno = 0;
	uintmax_t n = strtoumax(text, &end, 10);
	unsigned shift = 0;
	if (*end == 'K')
		shift = 10;
	else if (*end == 'M')
		shift = 20;
	else if (*end == 'G')
		shift = 30;
	if (shift)
		end++;
	if (errno || end == text || *end != '\0' || n == 0 || n > (UINT64_MAX >> 1 >> shift))
		return -1;
	*size = (uint64_t)n << shift;
	return 0;
}

int main(int argc, char **argv)
{
	if (argc != 3 || parse_size(argv[1], &file_size) != 0) {
		fprintf(stderr, "usage: fuse-floor SIZE MNT (SIZE: bytes, or a number with K, M or G)\n");
		return 2;
	}
	char *fuse_argv[] = { argv[0], "-o", "fsname=fuse-floor,subtype=floor", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, fuse_argv);
	struct fuse_session *se = fuse_session_new(&args, &floor_ops, sizeof floor_ops, NULL);
	if (!se) {
		fprintf(stderr, "fuse-floor: cannot start a FUSE session\n");
		return 1;
	}
	int status = 1;
	if (fuse_set_signal_handlers(se) != 0) {
		fprintf(stderr, "fuse-floor: cannot set signal handlers\n");
	} else {
		if (fuse_session_mount(se, argv[2]) != 0) {
			fprintf(stderr, "fuse-floor: cannot mount on %s\n", argv[2]);
		} else if (fuse_channel_install(se) != 0) {
			fprintf(stderr, "fuse-floor: cannot route /dev/fuse through fuse_channel\n");
			fuse_session_unmount(se);
		} else {
			status = fuse_session_loop(se) == 0 ? 0 : 1;
			fuse_session_unmount(se);
		}
		fuse_remove_signal_handlers(se);
	}
	fuse_session_destroy(se);
	return status;
}
