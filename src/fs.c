/* fs.c: the FUSE low-level operations.
 *
 * NOTES ON THE THREAD MODEL
 *
 * The event loops of fuse_loop.c call these handlers, so a handler must
 * not block: the lookup and listing of a discovered target's directory
 * that is not open yet, which log in to the target, run on a helper thread
 * instead (fuse_loop_offload(): dir_job below), which replies from
 * there; once the target is open (target_is_open()), they are answered on
 * the loop, so a helper held by a hung login delays no other target.  The
 * inode table is only appended to, and a node marked gone stays (see fs.h), so lookups
 * take no lock.  Notifications (fs_notify_*()) come from target.c's rescan
 * thread, never from a handler.
 * Each request gets exactly one fuse_reply_*: reads, writes and seeks
 * that must ask the target (GET LBA STATUS) reply later, from the session
 * thread that completes the last command (libfuse allows a reply from any
 * thread); the other handlers reply before they return.  getattr never
 * waits: st_blocks is the LUN's allocation once lun_allocated() knows it,
 * its whole size until then.  A write keeps its request buffer (fuse_loop_take_buffer()) until
 * it completes, so its payload is never copied.
 *
 * This is the only file that turns an errno into a FUSE reply.
 */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "discovery.h"
#include "evloop.h"
#include "fuse_channel.h"
#include "fuse_loop.h"
#include "stats.h"
#include "log.h"
#include "pool.h"

int fs_reserve(struct fs *fs, size_t cap)
{
	fs->nodes = calloc(cap, sizeof *fs->nodes);
	if (!fs->nodes)
		return -1;
	fs->cap = cap;
	atomic_init(&fs->nnodes, 0);
	pthread_mutex_init(&fs->grow_lock, NULL);
	pthread_mutex_init(&fs->notify_lock, NULL);
	pthread_mutex_init(&fs->opens_lock, NULL);
	return 0;
}

/* Append a node; it becomes visible complete (release store of nnodes). */
static fuse_ino_t add_node(struct fs *fs, fuse_ino_t parent, const char *name, bool is_dir,
			   bool is_stats, struct lun *lun, struct fs_target *tgt)
{
	fuse_ino_t ino = 0;

	pthread_mutex_lock(&fs->grow_lock);
	size_t n = atomic_load_explicit(&fs->nnodes, memory_order_relaxed);
	if (n < fs->cap) {
		struct fs_node *node = &fs->nodes[n];
		memset(node, 0, sizeof *node);
		node->ino = n + 1;
		node->parent = parent ? parent : node->ino;
		node->is_dir = is_dir;
		node->is_stats = is_stats;
		snprintf(node->name, sizeof node->name, "%s", name);
		node->lun = lun;
		node->tgt = tgt;
		ino = node->ino;
		atomic_store_explicit(&fs->nnodes, n + 1, memory_order_release);
	} else {
		errno = ENOSPC;
	}
	pthread_mutex_unlock(&fs->grow_lock);
	return ino;
}

fuse_ino_t fs_add_node(struct fs *fs, fuse_ino_t parent, const char *name, bool is_dir,
		       struct lun *lun, struct fs_target *tgt)
{
	return add_node(fs, parent, name, is_dir, false, lun, tgt);
}

int fs_add_stats(struct fs *fs)
{
	fuse_ino_t dir = add_node(fs, 1, DISCOVERY_RESERVED_NAME, true, false, NULL, NULL);

	if (!dir || !add_node(fs, dir, "stats", false, true, NULL, NULL))
		return -1;
	return 0;
}

/* Nodes visible now. */
static size_t node_count(struct fs *fs)
{
	return atomic_load_explicit(&fs->nnodes, memory_order_acquire);
}

struct fs_node *fs_node(struct fs *fs, fuse_ino_t ino)
{
	if (ino == 0 || ino > node_count(fs))
		return NULL;
	return &fs->nodes[ino - 1];
}

void fs_set_session(struct fs *fs, struct fuse_session *se)
{
	pthread_mutex_lock(&fs->notify_lock);
	fs->se = se;
	pthread_mutex_unlock(&fs->notify_lock);
}

void fs_notify_resized(struct fs *fs, fuse_ino_t ino)
{
	pthread_mutex_lock(&fs->notify_lock);
	/* -ENOENT: the kernel has no such inode cached; nothing to drop */
	int rc = fs->se ? fuse_lowlevel_notify_inval_inode(fs->se, ino, 0, 0) : 0;
	pthread_mutex_unlock(&fs->notify_lock);
	if (rc < 0 && rc != -ENOENT)
		log_debug("inode %llu: cannot invalidate it in the kernel: %s",
			  (unsigned long long)ino, strerror(-rc));
}

void fs_notify_entry(struct fs *fs, fuse_ino_t parent, const char *name)
{
	pthread_mutex_lock(&fs->notify_lock);
	int rc = fs->se ? fuse_lowlevel_notify_inval_entry(fs->se, parent, name, strlen(name)) : 0;
	/* the directory's own attributes and cached listing */
	int rc2 = fs->se ? fuse_lowlevel_notify_inval_inode(fs->se, parent, 0, 0) : 0;
	pthread_mutex_unlock(&fs->notify_lock);
	if ((rc < 0 && rc != -ENOENT) || (rc2 < 0 && rc2 != -ENOENT))
		log_debug("%s: cannot invalidate the name in the kernel: %s", name,
			  strerror(rc < 0 ? -rc : -rc2));
}

bool fs_remove_node(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node *n = fs_node(fs, ino);

	return n && !atomic_exchange(&n->gone, true);
}

/* Is @n a live child of directory @dir? */
static bool child_of(const struct fs_node *n, fuse_ino_t dir)
{
	return n->parent == dir && n->ino != dir && !atomic_load(&n->gone);
}

/* A target's directory is used: open the target (log in, add its LUN
 * files) unless it is open.  Returns 0 or the errno to answer with. */
static int ensure_open(struct fs *fs, struct fs_node *dir)
{
	if (!dir->tgt || !fs->discovery || dir->ino == 1)
		return 0;
	return target_open(fs, dir->tgt);
}

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs_node *node_of(struct fs *fs, fuse_ino_t ino)
{
	return fs_node(fs, ino);
}

/* Whether LUN file @n is gone: the target stopped reporting its LUN.  Its
 * open files fail their I/O with EIO from then on, even when a LUN of the
 * same number comes back (a new file): that may be another device, which
 * a write through the old file must never reach. */
static bool lun_gone(const struct fs_node *n)
{
	return atomic_load_explicit(&n->gone, memory_order_relaxed);
}

/* The node of @ino when it is a LUN file still there, else NULL with *err
 * set. */
static struct fs_node *lun_node(struct fs *fs, fuse_ino_t ino, int *err)
{
	struct fs_node *n = node_of(fs, ino);

	*err = !n ? ENOENT : n->is_dir ? EISDIR : n->is_stats ? EBADF : lun_gone(n) ? EIO : 0;
	return *err ? NULL : n;
}

static bool lun_read_only(const struct fs *fs, const struct lun *l)
{
	return fs->read_only || l->write_protected;
}

static void fill_stat(const struct fs *fs, const struct fs_node *n, struct stat *st)
{
	memset(st, 0, sizeof *st);
	st->st_ino = n->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = fs->mount_time;
	if (n->is_dir) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		st->st_size = 0;
		return;
	}
	st->st_nlink = 1;
	if (n->is_stats) {
		/* Its size is unknown until read; direct_io makes reads work. */
		st->st_mode = S_IFREG | 0444;
		return;
	}
	st->st_mode = S_IFREG | (lun_read_only(fs, n->lun) ? 0444 : 0644);
	st->st_size = (off_t)n->lun->size;
	st->st_blksize = n->lun->opt_xfer && n->lun->opt_xfer <= (1u << 20) ?
		n->lun->opt_xfer : n->lun->block_size;
	/* what the map knows, or the whole size until the scan it starts
	 * has learnt all of it; none for a LUN gone (its number may be
	 * another unit's by now) */
	uint64_t allocated = n->lun->size;
	if (!lun_gone(n))
		lun_allocated(n->lun, &allocated);
	st->st_blocks = (blkcnt_t)((allocated + 511) / 512);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	fuse_channel_configure(conn);
	/* One lookup or listing per directory at a time (the kernel holds the
	 * others): a target whose open hangs then holds one FUSE helper
	 * however many ask for it, never all of them (badtarget-events.sh,
	 * case opens-hung).  The other directories' requests, answered on the
	 * loops, lose nothing. */
	conn->want &= ~FUSE_CAP_PARALLEL_DIROPS;
}

/* A lookup or listing of a directory that may have to open its target
 * (ensure_open() logs in): run on a helper thread, never on a loop. */
struct dir_job {
	struct helper_job job;        /* first: the pool's view of it */
	fuse_req_t req;               /* to reply to */
	fuse_ino_t ino;               /* the directory */
	bool listing;                 /* readdir (size, off), else lookup (name) */
	size_t size;                  /* readdir: the reply's size at most */
	off_t off;                    /* readdir: the entry to start from */
	char name[];                  /* lookup: the name, copied (the loop reuses
	                               * the request's buffer) */
};

static void lookup_in(fuse_req_t req, fuse_ino_t parent, const char *name);
static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);

static void dir_job_run(struct helper_job *job)
{
	struct dir_job *d = (struct dir_job *)job;

	if (d->listing)
		list_dir(d->req, d->ino, d->size, d->off);
	else
		lookup_in(d->req, d->ino, d->name);
	free(d);
}

/* The mount is going away before the job ran: the request still gets its
 * one reply. */
static void dir_job_drop(struct helper_job *job)
{
	struct dir_job *d = (struct dir_job *)job;

	fuse_reply_err(d->req, EINTR);
	free(d);
}

/* Hand the lookup of @name (NULL: the listing of @size bytes from @off)
 * in directory @ino to a helper when its target is not open yet (opening
 * it blocks).
 * Returns true when it did (the helper replies) or when it answered the
 * request with an error (no memory for the job: an event loop must never
 * open a target itself, its sessions' logins would wait for that very
 * loop), false when the caller goes on here. */
static bool offload_dir(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size,
			off_t off)
{
	struct fs *fs = fs_of(req);
	struct fs_node *dir = node_of(fs, ino);
	size_t name_len = name ? strlen(name) + 1 : 0;
	struct dir_job *d;

	if (!dir || !dir->is_dir || !dir->tgt || !fs->discovery || dir->ino == 1 ||
	    target_is_open(dir->tgt))
		return false;         /* nothing to open: no network involved */
	d = malloc(sizeof *d + name_len);
	if (!d) {
		fuse_reply_err(req, ENOMEM);
		return true;
	}
	*d = (struct dir_job){
		.job = { .run = dir_job_run, .drop = dir_job_drop },
		.req = req, .ino = ino, .listing = !name, .size = size, .off = off,
	};
	if (name)
		memcpy(d->name, name, name_len);
	if (fuse_loop_offload(&d->job) < 0) {
		free(d);
		if (!evloop_current())
			return false;     /* not on a loop: this thread may wait */
		fuse_reply_err(req, EAGAIN);
	}
	return true;
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!offload_dir(req, parent, name, 0, 0))
		lookup_in(req, parent, name);
}

static void lookup_in(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_node *dir = node_of(fs, parent);
	struct fuse_entry_param e;
	int err;

	if (!dir || !dir->is_dir) {
		fuse_reply_err(req, dir ? ENOTDIR : ENOENT);
		return;
	}
	err = ensure_open(fs, dir);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	for (size_t i = 0, count = node_count(fs); i < count; i++) {
		struct fs_node *n = &fs->nodes[i];
		if (child_of(n, parent) && strcmp(n->name, name) == 0) {
			memset(&e, 0, sizeof e);
			e.ino = n->ino;
			e.attr_timeout = 1.0;
			e.entry_timeout = 1.0;
			fill_stat(fs, n, &e.attr);
			fuse_reply_entry(req, &e);
			return;
		}
	}
	fuse_reply_err(req, ENOENT);
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n = node_of(fs, ino);
	struct stat st;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_stat(fs, n, &st);
	fuse_reply_attr(req, &st, 1.0);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n = node_of(fs, ino);
	struct stat st;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		/* A LUN's size is its capacity: only "truncating" to it is allowed. */
		if (n->is_dir) {
			fuse_reply_err(req, EISDIR);
			return;
		}
		if (n->is_stats || (uint64_t)attr->st_size != n->lun->size) {
			fuse_reply_err(req, EPERM);
			return;
		}
	}
	if (to_set & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* Times are not stored: accept and ignore them (touch works). */
	fill_stat(fs, n, &st);
	fuse_reply_attr(req, &st, 1.0);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	if (!offload_dir(req, ino, NULL, size, off))
		list_dir(req, ino, size, off);
}

/* Entry @index of a listing (its name, inode and kind) into the reply
 * being built in @buf (@size bytes, @used of them filled), unless it
 * comes before @off, the entry the caller asked to start from.  Each
 * entry's offset is its index + 1: where a listing resumes after it.
 * Indexes are stable: "." 0, ".." 1, a child its slot in the node table
 * + 2 (the table is only appended to, a gone node keeps its slot), so
 * a file removed between two parts of a listing moves no other file
 * under the offset already given.  Returns false when it does not fit:
 * the reply ends before it. */
static bool list_entry(fuse_req_t req, char *buf, size_t size, size_t *used, off_t off,
		       off_t index, const char *name, fuse_ino_t ino, bool is_dir)
{
	struct stat st = { .st_ino = ino, .st_mode = is_dir ? S_IFDIR : S_IFREG };
	size_t need;

	if (index < off)
		return true;
	need = fuse_add_direntry(req, buf + *used, size - *used, name, &st, index + 1);
	if (need > size - *used)
		return false;
	*used += need;
	return true;
}

static void list_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off)
{
	struct fs *fs = fs_of(req);
	struct fs_node *dir = node_of(fs, ino);
	char *buf;
	size_t used = 0;

	if (!dir) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!dir->is_dir) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	int err = ensure_open(fs, dir);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* ".", "..", then the children in the table's order: one pass over
	 * the table, however far into the listing @off is */
	if (list_entry(req, buf, size, &used, off, 0, ".", dir->ino, true) &&
	    list_entry(req, buf, size, &used, off, 1, "..", dir->parent, true)) {
		for (size_t j = 0, count = node_count(fs); j < count; j++) {
			struct fs_node *c = &fs->nodes[j];
			if (child_of(c, dir->ino) &&
			    !list_entry(req, buf, size, &used, off, (off_t)j + 2, c->name, c->ino,
					c->is_dir))
				break;
		}
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

/* An open statistics file: the snapshot taken when it was opened. */
struct stats_snapshot {
	char *text;                   /* stats_render()'s text */
	size_t len;                   /* its length */
};

static void stats_open(fuse_req_t req, struct fs *fs, struct fuse_file_info *fi)
{
	struct stats_snapshot *snap;

	if ((fi->flags & O_ACCMODE) != O_RDONLY) {
		fuse_reply_err(req, EACCES);
		return;
	}
	snap = malloc(sizeof *snap);
	if (!snap || !(snap->text = stats_render(fs, &snap->len))) {
		free(snap);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fi->fh = (uintptr_t)snap;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) != 0) {
		free(snap->text);
		free(snap);
	}
}

/* The reply goes from a copy: once the kernel has the data the reader may
 * close the file, and the release (another worker) frees the snapshot
 * while fuse_reply_buf() may still look at its buffer (ASan's writev
 * interceptor reads the iovecs after the call). */
static void stats_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct stats_snapshot *snap = (struct stats_snapshot *)(uintptr_t)fi->fh;

	if ((uint64_t)off >= snap->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	size_t len = size < snap->len - (size_t)off ? size : snap->len - (size_t)off;
	char *copy = malloc(len);
	if (!copy) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	memcpy(copy, snap->text + off, len);
	fuse_reply_buf(req, copy, len);
	free(copy);
}

/* An open LUN file (fi->fh). */
struct lun_open {
	atomic_uint_fast64_t lost_seen; /* the LUN's deferred errors that said a
	                                 * write may be lost, as many as this file
	                                 * was told of (by its fsync, EIO) or that
	                                 * came before it was opened: any thread */
	struct lun_open *prev, *next;   /* fs->opens_lock: in fs->opens */
};

/* Link @o into the mount's open files, or take it out (@linked false). */
static void opens_link(struct fs *fs, struct lun_open *o, bool linked)
{
	pthread_mutex_lock(&fs->opens_lock);
	if (linked) {
		o->prev = NULL;
		o->next = fs->opens;
		if (fs->opens)
			fs->opens->prev = o;
		fs->opens = o;
	} else {
		if (o->prev)
			o->prev->next = o->next;
		else
			fs->opens = o->next;
		if (o->next)
			o->next->prev = o->prev;
	}
	pthread_mutex_unlock(&fs->opens_lock);
}

void fs_free_opens(struct fs *fs)
{
	if (!fs->nodes)
		return;           /* (fs_reserve() never ran) */
	pthread_mutex_lock(&fs->opens_lock);
	struct lun_open *o = fs->opens;
	fs->opens = NULL;
	pthread_mutex_unlock(&fs->opens_lock);
	while (o) {
		struct lun_open *next = o->next;
		free(o);
		o = next;
	}
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n = node_of(fs, ino);

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->is_dir) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (n->is_stats) {
		stats_open(req, fs, fi);
		return;
	}
	if (atomic_load(&n->gone)) {
		fuse_reply_err(req, ENOENT);    /* the LUN left the target */
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY && lun_read_only(fs, n->lun)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if ((fi->flags & O_TRUNC) && n->lun->size != 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* what this open file has heard of lost writes: none before it */
	struct lun_open *o = calloc(1, sizeof *o);
	if (!o) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	atomic_init(&o->lost_seen, atomic_load(&n->lun->lost_reports));
	opens_link(fs, o, true);        /* before the reply: its release may follow */
	fi->fh = (uintptr_t)o;
	fi->direct_io = !fs->cache;
	fi->keep_cache = fs->cache;
	fi->nonseekable = 0;
	/* Writers of distinct ranges need not wait for each other: lun.c
	 * orders overlapping writes itself with its block-range lock. */
	fuse_channel_allow_parallel_writes();
	if (fuse_reply_open(req, fi) != 0) {
		opens_link(fs, o, false);   /* interrupted: no release follows */
		free(o);
	}
}

static void read_done(void *opaque, int err, const uint8_t *data, size_t len)
{
	fuse_req_t req = opaque;

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, (const char *)data, len);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_node *n = node_of(fs_of(req), ino);

	if (!n || n->is_dir) {
		fuse_reply_err(req, n ? EISDIR : ENOENT);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (n->is_stats) {
		stats_read(req, size, off, fi);
		return;
	}
	if (lun_gone(n)) {
		fuse_reply_err(req, EIO);
		return;
	}
	lun_read(n->lun, (uint64_t)off, size, read_done, req);
}

/* A write in flight: its request and the buffer its bytes live in. */
struct fs_write_ctx {
	fuse_req_t req;               /* to reply to */
	size_t size;                  /* bytes written on success */
	void *buffer;                 /* the request buffer taken from the loop, or a copy */
	bool taken;                   /* buffer is the loop's: give it back, else free it */
};

static void write_done(void *opaque, int err)
{
	struct fs_write_ctx *w = opaque;

	if (err)
		fuse_reply_err(w->req, err);
	else
		fuse_reply_write(w->req, w->size);
	if (w->taken)
		fuse_loop_release_buffer(w->buffer);
	else
		free(w->buffer);
	free(w);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		     off_t off, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int err;
	struct fs_node *n = lun_node(fs, ino, &err);
	struct fs_write_ctx *w;

	if (!n) {
		fuse_reply_err(req, err);
		return;
	}
	if (lun_read_only(fs, n->lun)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	w = malloc(sizeof *w);
	if (!w) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	w->req = req;
	w->size = size;
	/* Keep the request buffer itself alive until the write completes:
	 * the payload goes to the socket from there, never copied. */
	w->buffer = fuse_loop_take_buffer();
	w->taken = w->buffer != NULL;
	if (!w->buffer) {
		w->buffer = malloc(size ? size : 1);
		if (!w->buffer) {
			free(w);
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(w->buffer, buf, size);
		buf = w->buffer;
	}
	/* O_DSYNC (and O_SYNC, which includes it): Force Unit Access, so the
	 * acknowledged write is on stable media. */
	lun_write(n->lun, buf, size, (uint64_t)off, (fi->flags & O_DSYNC) != 0, write_done, w);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static void fsync_done(void *opaque, int err)
{
	fuse_reply_err(opaque, err);
}

/* Every write acknowledged before the fsync has completed on the target
 * (writes are acknowledged only when their commands have); SYNCHRONIZE
 * CACHE then makes them durable.  Nothing to flush on a read-only mount,
 * or a LUN write protected since before our first write; one that turned
 * write protected after it may still hold our writes in its cache. */
static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n = node_of(fs, ino);

	if (!n || n->is_dir || n->is_stats || fs->read_only || !lun_may_be_dirty(n->lun)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (lun_gone(n)) {
		fuse_reply_err(req, EIO);
		return;
	}
	struct lun_open *o = (struct lun_open *)(uintptr_t)fi->fh;
	if (!o) {               /* (every open of a LUN file sets it) */
		fuse_reply_err(req, EBADF);
		return;
	}
	lun_fsync_async(n->lun, &o->lost_seen, fsync_done, req);
}

static void fallocate_done(void *opaque, int err)
{
	fuse_reply_err(opaque, err);
}

/* fallocate(2) on a LUN file: its size is fixed, so only what keeps the
 * size works.  PUNCH_HOLE deallocates (EOPNOTSUPP when the LUN cannot
 * make a hole that reads back as zeros); ZERO_RANGE zeroes; plain
 * preallocation inside the LUN has nothing to do. */
static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int err;
	struct fs_node *n = lun_node(fs, ino, &err);
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;

	if (!n) {
		fuse_reply_err(req, err);
		return;
	}
	if ((mode & ~known) || ((mode & FALLOC_FL_PUNCH_HOLE) && (mode & FALLOC_FL_ZERO_RANGE))) {
		fuse_reply_err(req, EOPNOTSUPP);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (lun_read_only(fs, n->lun)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	bool past_end = (uint64_t)off > n->lun->size || (uint64_t)len > n->lun->size - (uint64_t)off;
	if (past_end && !(mode & FALLOC_FL_KEEP_SIZE)) {
		fuse_reply_err(req, ENOSPC);    /* the file cannot grow */
		return;
	}
	if (!(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))) {
		fuse_reply_err(req, 0);          /* every block exists already */
		return;
	}
	lun_discard(n->lun, (uint64_t)off, (uint64_t)len, mode & FALLOC_FL_PUNCH_HOLE,
		    fallocate_done, req);
}

static void seek_done(void *opaque, int err, uint64_t off)
{
	fuse_req_t req = opaque;

	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_lseek(req, (off_t)off);
}

/* SEEK_DATA and SEEK_HOLE (the kernel answers the other kinds itself):
 * from the LUN's provisioning (lun_seek()), replying later when the target
 * must be asked; all data with -o cache. */
static void fs_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n = node_of(fs, ino);

	if (!n || n->is_dir) {
		fuse_reply_err(req, n ? EISDIR : ENOENT);
		return;
	}
	if (n->is_stats) {
		/* its st_size is 0: every offset is at or past the end */
		fuse_reply_err(req, ENXIO);
		return;
	}
	if (whence != SEEK_DATA && whence != SEEK_HOLE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (lun_gone(n)) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (off < 0 || (uint64_t)off >= n->lun->size) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	if (fs->cache) {
		/* the kernel may hold written pages it has not sent yet, which
		 * the map cannot know: all data, as a regular file */
		fuse_reply_lseek(req, whence == SEEK_DATA ? off : (off_t)n->lun->size);
		return;
	}
	lun_seek(n->lun, (uint64_t)off, whence == SEEK_DATA, seek_done, req);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_node *n = node_of(fs_of(req), ino);

	if (n && n->is_stats && fi->fh) {
		struct stats_snapshot *snap = (struct stats_snapshot *)(uintptr_t)fi->fh;
		free(snap->text);
		free(snap);
	} else if (n && n->lun && fi->fh) {
		struct lun_open *o = (struct lun_open *)(uintptr_t)fi->fh;
		opens_link(fs_of(req), o, false);
		free(o);
	}
	fuse_reply_err(req, 0);
}

/* ---- names: the target's, never made, removed or renamed here ---- */

/* Every request that would change a directory: EPERM (EROFS on a
 * read-only mount), rather than libfuse's ENOSYS ("Function not
 * implemented"), which reads as a missing feature. */
static void names_fixed(fuse_req_t req)
{
	fuse_reply_err(req, fs_of(req)->read_only ? EROFS : EPERM);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	names_fixed(req);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	names_fixed(req);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	names_fixed(req);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	names_fixed(req);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	names_fixed(req);
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	names_fixed(req);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	names_fixed(req);
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv;
	uint64_t total = 0;

	size_t count = node_count(fs);
	for (size_t i = 0; i < count; i++)
		if (fs->nodes[i].lun && !atomic_load(&fs->nodes[i].gone))
			total += fs->nodes[i].lun->size;
	memset(&sv, 0, sizeof sv);
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = total / 4096;
	sv.f_files = count;
	sv.f_namemax = 255;
	sv.f_flag = fs->read_only ? ST_RDONLY : 0;
	fuse_reply_statfs(req, &sv);
}

/* ---- extended attributes: what iscsi-inq would show ---- */

/* Fill @out with the negotiated session parameter @key (an xattr name
 * after "user.iscsi.") of target @t, as its first session logged in; -1
 * if there is no such parameter. */
static int session_xattr(struct fs_target *t, const char *key, char *out, size_t cap)
{
	/* not t->pool, which a helper opening the target writes under t->lock */
	struct pool *pool = atomic_load_explicit(&t->stats_pool, memory_order_acquire);
	struct iscsi_params params;
	const struct iscsi_params *p = &params;

	if (!pool)
		return -1;
	pool_params(pool, &params);
	if (strcmp(key, "header_digest") == 0)
		snprintf(out, cap, "%s", p->header_digest ? "CRC32C" : "None");
	else if (strcmp(key, "data_digest") == 0)
		snprintf(out, cap, "%s", p->data_digest ? "CRC32C" : "None");
	else if (strcmp(key, "max_recv_data_segment_length") == 0)
		snprintf(out, cap, "%u", p->max_recv_dsl);
	else if (strcmp(key, "target_max_recv_data_segment_length") == 0)
		snprintf(out, cap, "%u", p->max_xmit_dsl);
	else if (strcmp(key, "max_burst_length") == 0)
		snprintf(out, cap, "%u", p->max_burst_length);
	else if (strcmp(key, "first_burst_length") == 0 && !p->first_burst_length)
		snprintf(out, cap, "Irrelevant");   /* InitialR2T=Yes, ImmediateData=No */
	else if (strcmp(key, "first_burst_length") == 0)
		snprintf(out, cap, "%u", p->first_burst_length);
	else if (strcmp(key, "initial_r2t") == 0)
		snprintf(out, cap, "%s", p->initial_r2t ? "Yes" : "No");
	else if (strcmp(key, "immediate_data") == 0)
		snprintf(out, cap, "%s", p->immediate_data ? "Yes" : "No");
	else if (strcmp(key, "max_outstanding_r2t") == 0)
		snprintf(out, cap, "%u", p->max_outstanding_r2t);
	else if (strcmp(key, "error_recovery_level") == 0)
		snprintf(out, cap, "%u", p->error_recovery_level);
	else if (strcmp(key, "auth_method") == 0)
		snprintf(out, cap, "%s", p->auth_method[0] ? p->auth_method : "None");
	else if (strcmp(key, "sessions") == 0)
		snprintf(out, cap, "%u", pool_size(pool));
	else
		return -1;
	return 0;
}

/* user.iscsi.provisioning: "thick", or "thin" with the LBPRZ bit, and
 * ", all data" when the LUN cannot report holes after all (its target
 * refused GET LBA STATUS or its answers). */
static void provisioning_xattr(const struct lun *l, char *out, size_t cap)
{
	if (!l->capacity.lbpme)
		snprintf(out, cap, "thick");
	else
		snprintf(out, cap, "thin lbprz=%d%s", l->capacity.lbprz ? 1 : 0,
			 l->capacity.lbprz && !lun_has_holes(l) ? ", all data" : "");
}

/* Fill @out with attribute @name of LUN file @n; -1 if there is none. */
static int xattr_value(const struct fs *fs, const struct fs_node *n, const char *name,
		       char *out, size_t cap)
{
	const struct lun *l = n->lun;

	if (strcmp(name, "user.iscsi.vendor") == 0)
		snprintf(out, cap, "%s", l->inquiry.vendor);
	else if (strcmp(name, "user.iscsi.product") == 0)
		snprintf(out, cap, "%s", l->inquiry.product);
	else if (strcmp(name, "user.iscsi.revision") == 0)
		snprintf(out, cap, "%s", l->inquiry.revision);
	else if (strcmp(name, "user.iscsi.serial") == 0)
		snprintf(out, cap, "%s", l->serial);
	else if (strcmp(name, "user.iscsi.device_id") == 0)
		snprintf(out, cap, "%s", l->device_id);
	else if (strcmp(name, "user.iscsi.block_size") == 0)
		snprintf(out, cap, "%u", l->block_size);
	else if (strcmp(name, "user.iscsi.physical_block_size") == 0)
		snprintf(out, cap, "%u", l->physical_block_size);
	else if (strcmp(name, "user.iscsi.max_transfer") == 0)
		snprintf(out, cap, "%u", l->max_xfer);
	else if (strcmp(name, "user.iscsi.target") == 0)
		snprintf(out, cap, "%s", n->tgt->cfg.target_name);
	else if (strcmp(name, "user.iscsi.portal") == 0)
		snprintf(out, cap, "%s", n->tgt->portal);
	else if (strcmp(name, "user.iscsi.lun") == 0)
		snprintf(out, cap, "%u", l->number);
	else if (strcmp(name, "user.iscsi.write_protected") == 0)
		snprintf(out, cap, "%d", l->write_protected ? 1 : 0);
	else if (strcmp(name, "user.iscsi.thin_provisioned") == 0)
		snprintf(out, cap, "%d", l->capacity.lbpme || l->lbp.provisioning_type == 2 ? 1 : 0);
	else if (strcmp(name, "user.iscsi.provisioning") == 0)
		provisioning_xattr(l, out, cap);
	else if (strcmp(name, "user.iscsi.discard") == 0)
		snprintf(out, cap, "%s", lun_can_punch(l) ? "hole" : "zero-write only");
	else if (strncmp(name, "user.iscsi.", 11) == 0)
		return session_xattr(n->tgt, name + 11, out, cap);
	else
		return -1;
	return 0;
}

static const char *const xattr_names[] = {
	"user.iscsi.vendor", "user.iscsi.product", "user.iscsi.revision",
	"user.iscsi.serial", "user.iscsi.device_id", "user.iscsi.block_size",
	"user.iscsi.physical_block_size", "user.iscsi.max_transfer",
	"user.iscsi.target", "user.iscsi.portal", "user.iscsi.lun",
	"user.iscsi.write_protected", "user.iscsi.thin_provisioned", "user.iscsi.provisioning",
	"user.iscsi.discard",
	/* the negotiated session parameters (session_xattr()) */
	"user.iscsi.header_digest", "user.iscsi.data_digest",
	"user.iscsi.max_recv_data_segment_length",
	"user.iscsi.target_max_recv_data_segment_length", "user.iscsi.max_burst_length",
	"user.iscsi.first_burst_length", "user.iscsi.initial_r2t", "user.iscsi.immediate_data",
	"user.iscsi.max_outstanding_r2t", "user.iscsi.error_recovery_level",
	"user.iscsi.auth_method", "user.iscsi.sessions",
};

static void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n = node_of(fs, ino);
	char value[512];

	if (!n || !n->lun || xattr_value(fs, n, name, value, sizeof value) < 0) {
		fuse_reply_err(req, n ? ENODATA : ENOENT);
		return;
	}
	size_t len = strlen(value);
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, len);
}

static void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_node *n = node_of(fs_of(req), ino);
	char list[2048];
	size_t len = 0;

	if (!n) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (n->lun)
		for (size_t i = 0; i < sizeof xattr_names / sizeof xattr_names[0]; i++) {
			size_t l = strlen(xattr_names[i]) + 1;
			memcpy(list + len, xattr_names[i], l);
			len += l;
		}
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, len);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.readdir = fs_readdir,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.fsync = fs_fsync,
	.fallocate = fs_fallocate,
	.release = fs_release,
	.statfs = fs_statfs,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.lseek = fs_lseek,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_unlink,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.create = fs_create,
};
