/* crc32c.c: CRC32C digests, with the SSE4.2 crc32 instruction where the
 * CPU has it and a slice-by-8 table everywhere else.
 *
 * Owns: the lookup tables and the choice of implementation.
 *
 * Thread model: crc32c_setup() runs exactly once, under pthread_once, the
 * first time any entry point is called; it fills the tables and picks the
 * implementation.  pthread_once orders those writes before every later
 * read, so afterwards all state is read-only and any thread may compute
 * digests concurrently without locks.
 *
 * The state passed between crc32c_update() calls is the CRC register
 * (initialised to all ones, reflected bit order, complemented at the end),
 * which is exactly what the crc32 instruction works on, so both
 * implementations can continue each other's state.
 */
#include "crc32c.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "wire.h"

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* 0x1EDC6F41 with its bits reversed: the CRC register shifts right. */
#define CRC32C_POLY_REFLECTED 0x82f63b78u

typedef uint32_t (*crc32c_fn)(uint32_t state, const uint8_t *p, size_t len);

/* crc_table[0][b]: the register after feeding byte b into a zero register.
 * crc_table[k][b]: the same followed by k zero bytes, so eight bytes can be
 * folded in with eight independent look-ups (slice-by-8).
 * Written by crc32c_setup() only. */
static uint32_t crc_table[8][256];

/* The implementation crc32c_update() calls, and its name.
 * Written by crc32c_setup() only. */
static crc32c_fn update_impl;
static const char *update_impl_name;

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;

static uint32_t update_table(uint32_t crc, const uint8_t *p, size_t len)
{
	while (len >= 8) {
		uint32_t lo = get_le32(p) ^ crc;
		uint32_t hi = get_le32(p + 4);

		crc = crc_table[7][lo & 0xff] ^
		      crc_table[6][(lo >> 8) & 0xff] ^
		      crc_table[5][(lo >> 16) & 0xff] ^
		      crc_table[4][lo >> 24] ^
		      crc_table[3][hi & 0xff] ^
		      crc_table[2][(hi >> 8) & 0xff] ^
		      crc_table[1][(hi >> 16) & 0xff] ^
		      crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return crc;
}

#if defined(__x86_64__)

__attribute__((target("sse4.2")))
static uint32_t update_sse42(uint32_t crc, const uint8_t *p, size_t len)
{
	uint64_t crc64;

	/* Single bytes up to an 8-byte boundary, then whole quadwords. */
	while (len > 0 && ((uintptr_t)p & 7) != 0) {
		crc = _mm_crc32_u8(crc, *p++);
		len--;
	}
	crc64 = crc;
	while (len >= 8) {
		uint64_t word;

		memcpy(&word, p, sizeof word);
		crc64 = _mm_crc32_u64(crc64, word);
		p += 8;
		len -= 8;
	}
	crc = (uint32_t)crc64;
	while (len--)
		crc = _mm_crc32_u8(crc, *p++);
	return crc;
}

static bool cpu_has_crc32c(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
}

#else /* no hardware implementation on this architecture */

static const crc32c_fn update_sse42 = update_table;

static bool cpu_has_crc32c(void)
{
	return false;
}

#endif

static void crc32c_setup(void)
{
	for (unsigned int b = 0; b < 256; b++) {
		uint32_t crc = b;

		for (int bit = 0; bit < 8; bit++)
			crc = (crc >> 1) ^ (CRC32C_POLY_REFLECTED & -(crc & 1));
		crc_table[0][b] = crc;
	}
	for (unsigned int b = 0; b < 256; b++) {
		for (int k = 1; k < 8; k++) {
			uint32_t prev = crc_table[k - 1][b];

			crc_table[k][b] = crc_table[0][prev & 0xff] ^ (prev >> 8);
		}
	}

	if (cpu_has_crc32c()) {
		update_impl = update_sse42;
		update_impl_name = "sse4.2";
	} else {
		update_impl = update_table;
		update_impl_name = "table";
	}
}

static void crc32c_ensure_setup(void)
{
	/* pthread_once cannot fail with a valid once control and routine. */
	(void)pthread_once(&setup_once, crc32c_setup);
}

uint32_t crc32c_begin(void)
{
	return 0xffffffffu;
}

uint32_t crc32c_update(uint32_t state, const void *buf, size_t len)
{
	if (len == 0)
		return state;
	crc32c_ensure_setup();
	return update_impl(state, buf, len);
}

uint32_t crc32c_update_table(uint32_t state, const void *buf, size_t len)
{
	if (len == 0)
		return state;
	crc32c_ensure_setup();
	return update_table(state, buf, len);
}

uint32_t crc32c_end(uint32_t state)
{
	return ~state;
}

uint32_t crc32c(const void *buf, size_t len)
{
	return crc32c_end(crc32c_update(crc32c_begin(), buf, len));
}

const char *crc32c_impl(void)
{
	crc32c_ensure_setup();
	return update_impl_name;
}
