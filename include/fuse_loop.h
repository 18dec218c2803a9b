/* fuse_loop.h: our multithreaded loop over the FUSE device, in which a
 * handler may keep its request's buffer after it returns.
 *
 * libfuse's own loop reuses each worker's buffer for the next request, so
 * an asynchronous write would have to copy its payload.  Here a write
 * handler takes the buffer (fuse_loop_take_buffer()), sends the payload
 * straight from it, and frees it when the write completes; the worker
 * gets a fresh buffer for its next request.
 */
#ifndef ISCSIFS_FUSE_LOOP_H
#define ISCSIFS_FUSE_LOOP_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

/* Serve @se with @threads workers until the file system is unmounted or a
 * signal ends the session.  Returns 0, or -1 when no worker could start. */
int fuse_loop_run(struct fuse_session *se, unsigned threads);

/* In a request handler called by fuse_loop_run(): take ownership of the
 * buffer holding the current request.  The pointers libfuse passed to the
 * handler stay valid until the caller free()s the returned pointer.
 * Returns NULL when the handler runs outside fuse_loop_run() (copy then). */
void *fuse_loop_take_buffer(void);

#endif /* ISCSIFS_FUSE_LOOP_H */
