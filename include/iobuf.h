/* iobuf.h: the data buffers of large reads.
 *
 * A buffer of IOBUF_LARGE bytes or more is a mapping of its own (mmap()),
 * its size rounded up to a power of two; a freed one waits in a small
 * cache for the next read of its size class, so a stream of 1 MiB reads
 * reuses a few buffers instead of mapping (and faulting in) each one.
 * The cache holds at most IOBUF_CACHE_MAX bytes, and iobuf_trim() gives
 * back what sat unused in it for IOBUF_IDLE_NS: memory a burst of reads
 * used goes back to the system soon after, which glibc's heaps do not do
 * (64 targets read at once with 1 MiB requests left 117 MiB RSS behind).
 * A smaller buffer is plain malloc().
 *
 * Thread model: any thread; one leaf lock inside (held for a list
 * operation, never across a system call).
 */
#ifndef ISCSIFS_IOBUF_H
#define ISCSIFS_IOBUF_H

#include <stddef.h>
#include <stdint.h>

/* From this size on a buffer is mapped and cached. */
#define IOBUF_LARGE (128 * 1024)
/* The bytes of free buffers the cache keeps at most (by class size). */
#define IOBUF_CACHE_MAX (8u << 20)
/* A cached buffer unused this long goes back to the system. */
#define IOBUF_IDLE_NS 2000000000LL

/* Under AddressSanitizer every buffer is malloc()'s, so that a write past
 * the end of a read's buffer is caught as on any heap block (ASan does
 * not watch mappings): IOBUF_CACHED is 0 and the cache stays empty. */
#if defined(__SANITIZE_ADDRESS__)
#define IOBUF_CACHED 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define IOBUF_CACHED 0
#endif
#endif
#ifndef IOBUF_CACHED
#define IOBUF_CACHED 1
#endif

/* A buffer of @size bytes (at least 1), or NULL with errno ENOMEM. */
void *iobuf_alloc(size_t size);

/* Free @buf, which iobuf_alloc(@size) returned (NULL: nothing). */
void iobuf_free(void *buf, size_t size);

/* Give back the cached buffers freed before @now_ns - IOBUF_IDLE_NS
 * (CLOCK_MONOTONIC).  Cheap when there are none; any thread, as often as
 * it likes (the main thread calls it every 200 ms while it waits for the
 * unmount: fuse_loop_run()). */
void iobuf_trim(int64_t now_ns);

/* Bytes in the cache now (tests). */
size_t iobuf_cached_bytes(void);

#endif /* ISCSIFS_IOBUF_H */
