/* iobuf.c: the data buffers of large reads (see iobuf.h).
 *
 * Size classes are the powers of two from IOBUF_LARGE to 64 MiB; a larger
 * buffer is mapped and unmapped each time.  Each class keeps its
 * free buffers on a stack linked through their first bytes (a free
 * buffer's contents are ours), newest on top, each stamped with when it
 * was freed: the allocation takes the newest (its pages are the likeliest
 * to be resident), and iobuf_trim() unmaps from the bottom, the oldest.
 * Only the touched pages of a mapping count in RSS, so rounding a size up
 * to its class costs address space, not memory.
 */
#include "iobuf.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "deadline.h"

/* Classes: IOBUF_LARGE << 0 .. IOBUF_LARGE << 9 (64 MiB); larger buffers
 * are not cached. */
#define NCLASSES 10

/* The head of a free buffer in the cache. */
struct free_buf {
	struct free_buf *below;       /* the one freed before it, or NULL */
	int64_t freed_ns;             /* when it was freed (CLOCK_MONOTONIC) */
};

static struct {
	pthread_mutex_t lock;         /* protects the fields below (a leaf) */
	struct free_buf *top[NCLASSES]; /* lock: each class's stack, newest first */
	size_t cached;                /* lock: bytes on the stacks, by class size */
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The class of @size (>= IOBUF_LARGE), or -1 for none (too large). */
static int class_of(size_t size)
{
	size_t c = IOBUF_LARGE;

	for (int i = 0; i < NCLASSES; i++, c <<= 1)
		if (size <= c)
			return i;
	return -1;
}

static size_t class_size(int i)
{
	return (size_t)IOBUF_LARGE << i;
}

static void *map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void *iobuf_alloc(size_t size)
{
	if (size < IOBUF_LARGE || !IOBUF_CACHED)
		return malloc(size ? size : 1);
	int i = class_of(size);
	if (i < 0)
		return map(size);
	pthread_mutex_lock(&cache.lock);
	struct free_buf *b = cache.top[i];
	if (b) {
		cache.top[i] = b->below;
		cache.cached -= class_size(i);
	}
	pthread_mutex_unlock(&cache.lock);
	return b ? (void *)b : map(class_size(i));
}

void iobuf_free(void *buf, size_t size)
{
	if (!buf)
		return;
	if (size < IOBUF_LARGE || !IOBUF_CACHED) {
		free(buf);
		return;
	}
	int i = class_of(size);
	if (i < 0) {
		munmap(buf, size);
		return;
	}
	size_t len = class_size(i);
	struct free_buf *b = buf;
	bool kept = false;
	b->freed_ns = mono_now_ns();
	pthread_mutex_lock(&cache.lock);
	if (cache.cached + len <= IOBUF_CACHE_MAX) {
		b->below = cache.top[i];
		cache.top[i] = b;
		cache.cached += len;
		kept = true;
	}
	pthread_mutex_unlock(&cache.lock);
	if (!kept)
		munmap(buf, len);
}

void iobuf_trim(int64_t now_ns)
{
	struct free_buf *old[NCLASSES] = { 0 };

	pthread_mutex_lock(&cache.lock);
	for (int i = 0; i < NCLASSES; i++) {
		/* the stack is newest first: cut it at the first old one */
		struct free_buf **at = &cache.top[i];
		while (*at && now_ns - (*at)->freed_ns < IOBUF_IDLE_NS)
			at = &(*at)->below;
		old[i] = *at;
		*at = NULL;
		for (struct free_buf *b = old[i]; b; b = b->below)
			cache.cached -= class_size(i);
	}
	pthread_mutex_unlock(&cache.lock);
	for (int i = 0; i < NCLASSES; i++) {
		while (old[i]) {
			struct free_buf *b = old[i];
			old[i] = b->below;
			munmap(b, class_size(i));
		}
	}
}

size_t iobuf_cached_bytes(void)
{
	pthread_mutex_lock(&cache.lock);
	size_t n = cache.cached;
	pthread_mutex_unlock(&cache.lock);
	return n;
}
