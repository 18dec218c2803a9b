/* test_iobuf.c: the data buffers of large reads (src/iobuf.c).
 *
 * A large buffer freed is the next one of its class (the cache), a small
 * one is malloc()'s; the cache keeps at most IOBUF_CACHE_MAX bytes and
 * unmaps the rest; iobuf_trim() gives back only what sat idle for
 * IOBUF_IDLE_NS; a buffer larger than the largest class is mapped and
 * unmapped; every buffer holds its whole size; threads allocating and
 * freeing at once neither lose nor share a buffer.  Under AddressSanitizer
 * (IOBUF_CACHED 0) only the last three hold: no buffer is cached.
 */
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "iobuf.h"
#include "testlib.h"

#define MIB (1024 * 1024)

static void test_reuse(void)
{
	uint8_t *a = iobuf_alloc(MIB);
	CHECK(a != NULL);
	memset(a, 0xab, MIB);
	iobuf_free(a, MIB);
	CHECK_EQ_U64(iobuf_cached_bytes(), MIB);
	/* a size of the same class (rounded up to 1 MiB) gets it back */
	uint8_t *b = iobuf_alloc(MIB - 4096 + 1);
	CHECK(b == a);
	CHECK_EQ_U64(iobuf_cached_bytes(), 0);
	/* another class does not */
	uint8_t *c = iobuf_alloc(IOBUF_LARGE);
	CHECK(c != NULL && c != a);
	memset(c, 1, IOBUF_LARGE);
	iobuf_free(c, IOBUF_LARGE);
	iobuf_free(b, MIB - 4096 + 1);
	CHECK_EQ_U64(iobuf_cached_bytes(), MIB + IOBUF_LARGE);
	iobuf_trim(mono_now_ns() + IOBUF_IDLE_NS);
	CHECK_EQ_U64(iobuf_cached_bytes(), 0);
}

static void test_small_and_huge(void)
{
	uint8_t *s = iobuf_alloc(4096);
	CHECK(s != NULL);
	memset(s, 2, 4096);
	iobuf_free(s, 4096);
	void *z = iobuf_alloc(0);
	CHECK(z != NULL);
	iobuf_free(z, 0);
	CHECK_EQ_U64(iobuf_cached_bytes(), 0);
	size_t huge = (size_t)IOBUF_LARGE << 10;        /* past the largest class */
	uint8_t *h = iobuf_alloc(huge);
	CHECK(h != NULL);
	h[0] = h[huge - 1] = 3;
	iobuf_free(h, huge);
	CHECK_EQ_U64(iobuf_cached_bytes(), 0);
	iobuf_free(NULL, MIB);
}

/* The cache's bound, and the idle rule of iobuf_trim(). */
static void test_bound_and_trim(void)
{
	enum { N = IOBUF_CACHE_MAX / MIB + 4 };
	void *bufs[N];

	for (int i = 0; i < N; i++) {
		bufs[i] = iobuf_alloc(MIB);
		CHECK(bufs[i] != NULL);
	}
	for (int i = 0; i < N; i++)
		iobuf_free(bufs[i], MIB);
	CHECK_EQ_U64(iobuf_cached_bytes(), IOBUF_CACHE_MAX);
	/* just freed: a trim now keeps them */
	iobuf_trim(mono_now_ns());
	CHECK_EQ_U64(iobuf_cached_bytes(), IOBUF_CACHE_MAX);
	/* one taken and freed again is new; the rest are old later */
	void *again = iobuf_alloc(MIB);
	CHECK(again != NULL);
	int64_t before = mono_now_ns();
	iobuf_free(again, MIB);
	iobuf_trim(before + IOBUF_IDLE_NS - 1);
	CHECK_EQ_U64(iobuf_cached_bytes(), MIB);
	iobuf_trim(mono_now_ns() + IOBUF_IDLE_NS);
	CHECK_EQ_U64(iobuf_cached_bytes(), 0);
}

/* Threads that each fill their buffer with their own byte and check it
 * before freeing: a buffer handed to two at once would show. */
static void *churn(void *arg)
{
	uint8_t mark = (uint8_t)(uintptr_t)arg;
	bool ok = true;

	for (int i = 0; i < 2000 && ok; i++) {
		size_t size = (size_t)IOBUF_LARGE << (i % 4);
		uint8_t *b = iobuf_alloc(size);
		if (!b)
			return (void *)0;
		b[0] = b[size / 2] = b[size - 1] = mark;
		sched_yield();
		ok = b[0] == mark && b[size / 2] == mark && b[size - 1] == mark;
		iobuf_free(b, size);
	}
	return (void *)(uintptr_t)ok;
}

static void test_threads(void)
{
	pthread_t t[4];

	for (uintptr_t i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, churn, (void *)(i + 1)) == 0);
	for (int i = 0; i < 4; i++) {
		void *ok;
		CHECK(pthread_join(t[i], &ok) == 0);
		CHECK(ok == (void *)1);
	}
	CHECK(iobuf_cached_bytes() <= IOBUF_CACHE_MAX);
	iobuf_trim(mono_now_ns() + IOBUF_IDLE_NS);
	CHECK_EQ_U64(iobuf_cached_bytes(), 0);
}

int main(void)
{
	/* the cache is off under AddressSanitizer (iobuf.h): what it keeps
	 * is checked by the other builds */
	if (IOBUF_CACHED) {
		test_reuse();
		test_bound_and_trim();
	}
	test_small_and_huge();
	test_threads();
	return test_done("test_iobuf");
}
