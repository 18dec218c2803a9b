/* chap.c: CHAP algorithms, value codecs and challenges (see chap.h).
 *
 * Owns: the table of CHAP_A values and their OpenSSL digests, the strict
 * parsers of CHAP_I / CHAP_A / CHAP_C / CHAP_R values, the hex encoder of
 * what we send, RAND_bytes challenges, and secret storage.
 *
 * Decisions where RFC 7143 leaves room:
 * - Hex values must have an even number of digits: half a byte is refused
 *   rather than guessed (no target we know sends it).
 * - Base64 must be padded to a multiple of four characters and its unused
 *   low bits must be zero, so each value has exactly one encoding.
 * - CHAP_I and CHAP_A are numbers (RFC 7143 12.1.3): decimal without a
 *   leading zero, or 0x/0X hex (section 6.1's numerical values), within
 *   0..255.
 *
 * Thread model: pure; the only static data is the constant table.
 */
#include "chap.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "text.h"
#include "wire.h"

/* One supported CHAP_A value. */
struct chap_alg_def {
	int value;                  /* the CHAP_A number */
	const char *name;           /* for messages */
	size_t digest_size;         /* bytes of its digest */
	const EVP_MD *(*md)(void);  /* the OpenSSL digest */
};

static const struct chap_alg_def algs[] = {
	{ CHAP_ALG_MD5, "MD5", 16, EVP_md5 },
	{ CHAP_ALG_SHA1, "SHA-1", 20, EVP_sha1 },
	{ CHAP_ALG_SHA256, "SHA-256", 32, EVP_sha256 },
	{ CHAP_ALG_SHA3_256, "SHA3-256", 32, EVP_sha3_256 },
};

/* The table row of @alg, or NULL. */
static const struct chap_alg_def *find_alg(int alg)
{
	for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
		if (algs[i].value == alg)
			return &algs[i];
	return NULL;
}

size_t chap_digest_size(int alg)
{
	const struct chap_alg_def *a = find_alg(alg);

	return a ? a->digest_size : 0;
}

const char *chap_alg_name(int alg)
{
	const struct chap_alg_def *a = find_alg(alg);

	return a ? a->name : "unknown";
}

/* ---- responses ---- */

int chap_compute(int alg, uint8_t id, const struct chap_secret *secret,
		 const uint8_t *challenge, size_t challenge_len, uint8_t *out)
{
	const struct chap_alg_def *a = find_alg(alg);
	EVP_MD_CTX *ctx;
	unsigned int len = 0;
	int ok;

	if (!a) {
		err_set(EINVAL, "CHAP algorithm %d is not supported", alg);
		return -1;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	ok = EVP_DigestInit_ex(ctx, a->md(), NULL) &&
	     EVP_DigestUpdate(ctx, &id, 1) &&
	     EVP_DigestUpdate(ctx, secret->bytes, secret->len) &&
	     EVP_DigestUpdate(ctx, challenge, challenge_len) &&
	     EVP_DigestFinal_ex(ctx, out, &len);
	EVP_MD_CTX_free(ctx);       /* cleanses the digest state */
	if (!ok || len != a->digest_size) {
		err_set(ENOSYS, "OpenSSL cannot compute %s for CHAP (disabled by policy?)",
			a->name);
		return -1;
	}
	return (int)len;
}

bool chap_verify(int alg, uint8_t id, const struct chap_secret *secret,
		 const uint8_t *challenge, size_t challenge_len,
		 const uint8_t *response, size_t response_len)
{
	uint8_t expected[CHAP_MAX_DIGEST];
	int len = chap_compute(alg, id, secret, challenge, challenge_len, expected);
	bool same;

	if (len < 0 || (size_t)len != response_len)
		return false;
	same = CRYPTO_memcmp(expected, response, response_len) == 0;
	OPENSSL_cleanse(expected, sizeof expected);
	return same;
}

/* ---- parsing what a target sends ---- */

/* A number at most @max: decimal without sign or leading zero, or "0x"
 * hex.  -1 if not. */
static int parse_small_number(const char *s, unsigned max, unsigned *out)
{
	unsigned v = 0, base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	} else if (s[0] == '0' && s[1] != '\0') {
		return -1;
	}
	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = (unsigned)(*s - 'A' + 10);
		else
			return -1;
		v = v * base + d;
		if (v > max)
			return -1;
	}
	*out = v;
	return 0;
}

int chap_parse_identifier(const char *value, uint8_t *out)
{
	char vb[TEXT_SHOWN_SIZE];
	unsigned v;

	if (parse_small_number(value, 255, &v) < 0) {
		err_set(EPROTO, "target sent CHAP_I=%s: not a number 0..255 (decimal or 0x hex)", text_shown(value, vb));
		return -1;
	}
	*out = (uint8_t)v;
	return 0;
}

int chap_parse_algorithm(const char *value, enum chap_alg *out)
{
	char vb[TEXT_SHOWN_SIZE];
	unsigned v;

	if (parse_small_number(value, 255, &v) < 0 || !find_alg((int)v)) {
		err_set(EPROTO, "target chose CHAP_A=%s, not an algorithm we support",
			text_shown(value, vb));
		return -1;
	}
	*out = (enum chap_alg)v;
	return 0;
}

/* Value of a base64 digit (RFC 4648 §4), -1 for anything else. */
static int base64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Hex digits (after "0x") into @out.  Returns 0, or -1 with a message. */
static int decode_hex(const char *key, const char *s, uint8_t *out, size_t *len)
{
	size_t n = strlen(s);

	if (n == 0) {
		err_set(EPROTO, "target sent an empty %s", key);
		return -1;
	}
	if (n % 2) {
		err_set(EPROTO, "target sent %s with an odd number of hex digits (%zu)", key, n);
		return -1;
	}
	if (n / 2 > CHAP_MAX_BINARY) {
		err_set(EPROTO, "target sent a %zu-byte %s, over the %d RFC 7143 allows",
			n / 2, key, CHAP_MAX_BINARY);
		return -1;
	}
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_digit_value(s[i]), lo = hex_digit_value(s[i + 1]);
		if (hi < 0 || lo < 0) {
			err_set(EPROTO, "target sent %s with a character that is not a hex digit", key);
			return -1;
		}
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return 0;
}

/* How many '=' end @s (of @n characters), for base64. */
static size_t base64_padding(const char *s, size_t n)
{
	size_t pad = 0;

	while (pad < n && s[n - 1 - pad] == '=')
		pad++;
	return pad;
}

/* Base64 (after "0b") into @out.  Returns 0, or -1 with a message. */
static int decode_base64(const char *key, const char *s, uint8_t *out, size_t *len)
{
	size_t n = strlen(s), pad, bytes;
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	if (n == 0) {
		err_set(EPROTO, "target sent an empty %s", key);
		return -1;
	}
	pad = base64_padding(s, n);
	if (n % 4 || pad > 2 || pad == n) {
		err_set(EPROTO, "target sent %s in malformed base64 (length %zu, %zu '=')",
			key, n, pad);
		return -1;
	}
	bytes = n / 4 * 3 - pad;
	if (bytes > CHAP_MAX_BINARY) {
		err_set(EPROTO, "target sent a %zu-byte %s, over the %d RFC 7143 allows",
			bytes, key, CHAP_MAX_BINARY);
		return -1;
	}
	for (size_t i = 0; i < n - pad; i++) {
		int v = base64_value(s[i]);
		if (v < 0) {
			err_set(EPROTO, "target sent %s with a character that is not base64", key);
			return -1;
		}
		acc = (acc << 6 | (uint32_t)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* the bits left over must be zero: one encoding per value */
	if (acc & ((1u << bits) - 1)) {
		err_set(EPROTO, "target sent %s in base64 with non-zero padding bits", key);
		return -1;
	}
	*len = o;
	return 0;
}

int chap_parse_binary(const char *key, const char *value, uint8_t *out, size_t *len)
{
	char vb[TEXT_SHOWN_SIZE];

	if (value[0] == '0' && (value[1] == 'x' || value[1] == 'X'))
		return decode_hex(key, value + 2, out, len);
	if (value[0] == '0' && (value[1] == 'b' || value[1] == 'B'))
		return decode_base64(key, value + 2, out, len);
	err_set(EPROTO, "target sent %s=%s: neither 0x-hex nor 0b-base64", key, text_shown(value, vb));
	return -1;
}

/* ---- what we send ---- */

int chap_format_binary(const uint8_t *data, size_t len, char *out, size_t cap)
{
	static const char digits[] = "0123456789abcdef";

	if (cap < CHAP_HEX_SIZE(len)) {
		err_set(EMSGSIZE, "no room for a %zu-byte CHAP value", len);
		return -1;
	}
	out[0] = '0';
	out[1] = 'x';
	for (size_t i = 0; i < len; i++) {
		out[2 + 2 * i] = digits[data[i] >> 4];
		out[3 + 2 * i] = digits[data[i] & 15];
	}
	out[2 + 2 * len] = '\0';
	return 0;
}

int chap_new_challenge(uint8_t *id, uint8_t *challenge, size_t len)
{
	if (len > CHAP_MAX_BINARY || RAND_bytes(id, 1) != 1 ||
	    RAND_bytes(challenge, (int)len) != 1) {
		err_set(EIO, "cannot make a CHAP challenge: the random generator failed");
		return -1;
	}
	return 0;
}

/* ---- secrets ---- */

int chap_secret_set(struct chap_secret *s, const void *data, size_t len)
{
	chap_secret_wipe(s);
	if (len == 0) {
		err_set(EINVAL, "the secret is empty");
		return -1;
	}
	if (len > CHAP_MAX_SECRET) {
		err_set(EINVAL, "the secret is longer than %d bytes", CHAP_MAX_SECRET);
		return -1;
	}
	if (memchr(data, '\0', len) || memchr(data, '\n', len)) {
		err_set(EINVAL, "the secret holds a NUL or newline byte");
		return -1;
	}
	memcpy(s->bytes, data, len);
	s->len = len;
	return 0;
}

bool chap_secret_equal(const struct chap_secret *a, const struct chap_secret *b)
{
	return a->len == b->len && CRYPTO_memcmp(a->bytes, b->bytes, a->len) == 0;
}

void chap_secret_wipe(struct chap_secret *s)
{
	OPENSSL_cleanse(s, sizeof *s);
}

void chap_credentials_wipe(struct chap_credentials *c)
{
	OPENSSL_cleanse(c, sizeof *c);
}
