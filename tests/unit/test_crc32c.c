/* test_crc32c.c: CRC32C against the RFC 3720 B.4 vectors, with both the
 * implementation crc32c() picked and the portable table code; random
 * buffers at unaligned starts and odd lengths must agree between the two,
 * and incremental digests must equal one-shot ones.
 *
 * Single-threaded, except test_threads(), which races first use.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "testlib.h"
#include "wire.h"

/* RFC 3720 B.4: "An iSCSI - SCSI Read (10) Command PDU". */
static const uint8_t read10_pdu[48] = {
	0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
	0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
	0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
};

struct vector {
	const char *name;     /* for failure messages */
	uint8_t data[48];     /* the message */
	size_t len;           /* its length */
	uint8_t wire[4];      /* the digest bytes as RFC 3720 prints them */
	uint32_t value;       /* the same as crc32c() returns it */
};

static struct vector vectors[7];
static size_t nvectors;

static void add_vector(const char *name, const void *data, size_t len,
		       uint32_t value, const uint8_t wire[4])
{
	struct vector *v = &vectors[nvectors++];

	v->name = name;
	memcpy(v->data, data, len);
	v->len = len;
	v->value = value;
	memcpy(v->wire, wire, 4);
}

static void setup_vectors(void)
{
	uint8_t buf[32];

	add_vector("empty", "", 0, 0x00000000, (const uint8_t[]){ 0, 0, 0, 0 });
	add_vector("123456789", "123456789", 9, 0xe3069283,
		   (const uint8_t[]){ 0x83, 0x92, 0x06, 0xe3 });
	memset(buf, 0x00, sizeof buf);
	add_vector("32 zeros", buf, 32, 0x8a9136aa,
		   (const uint8_t[]){ 0xaa, 0x36, 0x91, 0x8a });
	memset(buf, 0xff, sizeof buf);
	add_vector("32 ones", buf, 32, 0x62a8ab43,
		   (const uint8_t[]){ 0x43, 0xab, 0xa8, 0x62 });
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	add_vector("incrementing", buf, 32, 0x46dd794e,
		   (const uint8_t[]){ 0x4e, 0x79, 0xdd, 0x46 });
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	add_vector("decrementing", buf, 32, 0x113fdb5c,
		   (const uint8_t[]){ 0x5c, 0xdb, 0x3f, 0x11 });
	add_vector("read10 pdu", read10_pdu, sizeof read10_pdu, 0xd9963a56,
		   (const uint8_t[]){ 0x56, 0x3a, 0x96, 0xd9 });
}

static uint32_t table_oneshot(const void *buf, size_t len)
{
	return crc32c_end(crc32c_update_table(crc32c_begin(), buf, len));
}

static void test_vectors(void)
{
	for (size_t i = 0; i < nvectors; i++) {
		const struct vector *v = &vectors[i];
		uint8_t wire[4];

		CHECK_EQ_U64(crc32c(v->data, v->len), v->value);
		CHECK_EQ_U64(table_oneshot(v->data, v->len), v->value);
		put_le32(wire, crc32c(v->data, v->len));
		CHECK(memcmp(wire, v->wire, 4) == 0);
		if (crc32c(v->data, v->len) != v->value)
			fprintf(stderr, "  vector: %s\n", v->name);
	}
	CHECK_EQ_U64(crc32c(NULL, 0), 0);
}

/* Split every vector at every point, and feed it one byte at a time. */
static void test_incremental(void)
{
	for (size_t i = 0; i < nvectors; i++) {
		const struct vector *v = &vectors[i];

		for (size_t cut = 0; cut <= v->len; cut++) {
			uint32_t st = crc32c_begin();

			st = crc32c_update(st, v->data, cut);
			st = crc32c_update(st, v->data + cut, v->len - cut);
			CHECK_EQ_U64(crc32c_end(st), v->value);

			/* The two implementations continue each other. */
			st = crc32c_update_table(crc32c_begin(), v->data, cut);
			st = crc32c_update(st, v->data + cut, v->len - cut);
			CHECK_EQ_U64(crc32c_end(st), v->value);
		}

		uint32_t st = crc32c_begin();
		for (size_t k = 0; k < v->len; k++)
			st = crc32c_update(st, v->data + k, 1);
		CHECK_EQ_U64(crc32c_end(st), v->value);
	}
}

/* A deterministic generator, so failures reproduce. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 16);
}

/* Bit-at-a-time reference, independent of both implementations' tables. */
static uint32_t crc32c_bitwise(const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	while (len--) {
		crc ^= *p++;
		for (int b = 0; b < 8; b++)
			crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static void test_random(void)
{
	enum { MAXLEN = 8192 + 64 };
	uint8_t *buf = malloc(MAXLEN);
	int mismatches = 0;

	CHECK(buf != NULL);
	if (!buf)
		return;
	for (size_t i = 0; i < MAXLEN; i++)
		buf[i] = (uint8_t)rng();

	for (int round = 0; round < 2000; round++) {
		size_t start = rng() % 16;
		size_t len = round < 200 ? (size_t)round : rng() % (MAXLEN - 16);
		const uint8_t *p = buf + start;
		uint32_t ref = crc32c_bitwise(p, len);

		if (crc32c(p, len) != ref || table_oneshot(p, len) != ref)
			mismatches++;

		/* Three pieces at random cut points, alternating paths. */
		size_t a = len ? rng() % (len + 1) : 0;
		size_t b = a + (len - a ? rng() % (len - a + 1) : 0);
		uint32_t st = crc32c_begin();
		st = crc32c_update(st, p, a);
		st = crc32c_update_table(st, p + a, b - a);
		st = crc32c_update(st, p + b, len - b);
		if (crc32c_end(st) != ref)
			mismatches++;
	}
	CHECK(mismatches == 0);
	free(buf);
}

static void *thread_digest(void *arg)
{
	uint32_t *out = arg;

	*out = crc32c(read10_pdu, sizeof read10_pdu);
	return NULL;
}

/* First use from several threads at once (the setup runs once). */
static void test_threads(void)
{
	pthread_t t[4];
	uint32_t out[4] = { 0 };

	for (int i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, thread_digest, &out[i]) == 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK_EQ_U64(out[i], 0xd9963a56);
	}
}

int main(void)
{
	setup_vectors();
	test_threads();
	test_vectors();
	test_incremental();
	test_random();
	printf("crc32c implementation: %s\n", crc32c_impl());
	CHECK(strcmp(crc32c_impl(), "sse4.2") == 0 ||
	      strcmp(crc32c_impl(), "table") == 0);
	return test_done("test_crc32c");
}
