/* crc32c.h: CRC32C (Castagnoli, polynomial 0x1EDC6F41) as iSCSI header and
 * data digests use it (RFC 7143 section 13.1, vectors in RFC 3720 B.4).
 *
 * The value returned by crc32c() / crc32c_end() goes on the wire
 * least-significant byte first: put_le32(wire, crc32c(buf, len)).  For the
 * 32 zero bytes of RFC 3720 B.4 the value is 0x8a9136aa and the wire bytes
 * are aa 36 91 8a.
 *
 * Thread model: pure functions.  The implementation (SSE4.2 instruction or
 * slice-by-8 table) is chosen once, on first use, under pthread_once; any
 * thread may call any function at any time.
 */
#ifndef ISCSIFS_CRC32C_H
#define ISCSIFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* The CRC32C of @len bytes at @buf, e.g. crc32c("123456789", 9) ==
 * 0xe3069283.  @buf may be NULL when @len is 0 (the result is then 0). */
uint32_t crc32c(const void *buf, size_t len);

/* Incremental form, for a digest over several pieces (BHS then AHS, or a
 * data segment then its padding):
 *
 *	uint32_t st = crc32c_begin();
 *	st = crc32c_update(st, a, alen);
 *	st = crc32c_update(st, b, blen);
 *	value = crc32c_end(st);
 *
 * gives the same value as crc32c() over the concatenation.  The state is
 * an opaque running value: only pass it to crc32c_update()/crc32c_end(). */
uint32_t crc32c_begin(void);
uint32_t crc32c_update(uint32_t state, const void *buf, size_t len);
uint32_t crc32c_end(uint32_t state);

/* The implementation crc32c_update() uses: "sse4.2" or "table". */
const char *crc32c_impl(void);

/* For tests: crc32c_update() forced onto the portable table code, so the
 * table path is checked on CPUs where crc32c_update() uses the hardware. */
uint32_t crc32c_update_table(uint32_t state, const void *buf, size_t len);

#endif /* ISCSIFS_CRC32C_H */
