/* chap.h: CHAP for the iSCSI security stage (RFC 7143 §12.1.3, RFC 1994).
 *
 * The response to a challenge is H(I || secret || C): the one-byte
 * identifier CHAP_I, the shared secret, the challenge CHAP_C, hashed with
 * the algorithm CHAP_A chose.  This module owns the algorithms (through
 * OpenSSL EVP), the strict parsing of what a target sends as CHAP_I,
 * CHAP_C and CHAP_R, the encoding of what we send, fresh challenges from
 * RAND_bytes, and the credentials a mount holds.  The login state machine
 * that uses it is in login.c.
 *
 * Secrets never leave struct chap_secret except into a digest; nothing
 * here logs.  Responses are compared with CRYPTO_memcmp, secrets wiped
 * with OPENSSL_cleanse.
 *
 * Thread model: pure functions over caller-owned data.  A struct
 * chap_credentials is written once at start-up and read-only afterwards,
 * so every session's login may read it at the same time.
 */
#ifndef ISCSIFS_CHAP_H
#define ISCSIFS_CHAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest CHAP name (CHAP_N) we send or accept. */
#define CHAP_MAX_NAME 255
/* Longest secret we hold, in bytes. */
#define CHAP_MAX_SECRET 255
/* RFC 7143 §12.1.3: C and R are at most 1024 bytes once decoded. */
#define CHAP_MAX_BINARY 1024
/* Largest digest of the algorithms below (SHA-256, SHA3-256). */
#define CHAP_MAX_DIGEST 32
/* Bytes of the challenge we send in mutual CHAP. */
#define CHAP_CHALLENGE_LEN 32
/* RFC 7143 §9.2.1: a secret of fewer than 96 random bits needs IPsec. */
#define CHAP_MIN_SECRET_ADVISED 12
/* Longest text chap_format_binary() writes: "0x", two digits a byte, NUL. */
#define CHAP_HEX_SIZE(n) (2 + 2 * (n) + 1)

/* The CHAP_A values (IANA "PPP Authentication Algorithms", RFC 7143). */
enum chap_alg {
	CHAP_ALG_MD5 = 5,       /* MD5, 16-byte digest; every target has it */
	CHAP_ALG_SHA1 = 6,      /* SHA-1, 20 bytes */
	CHAP_ALG_SHA256 = 7,    /* SHA-256, 32 bytes */
	CHAP_ALG_SHA3_256 = 8,  /* SHA3-256, 32 bytes */
};

/* A shared secret: any bytes but NUL and newline. */
struct chap_secret {
	uint8_t bytes[CHAP_MAX_SECRET]; /* the secret; bytes past len are zero */
	size_t len;                     /* bytes used, 0 when none is set */
};

/* Who we are to a target and who the target must be to us.  Set up once
 * at start-up (credentials.c), borrowed read-only by every login, wiped
 * at exit with chap_credentials_wipe(). */
struct chap_credentials {
	char user[CHAP_MAX_NAME + 1];        /* our CHAP_N */
	struct chap_secret secret;           /* proves to the target that we are user */
	bool mutual;                         /* the target must authenticate itself too */
	char target_user[CHAP_MAX_NAME + 1]; /* mutual: the CHAP_N the target must answer with */
	struct chap_secret target_secret;    /* mutual: what the target proves it knows */
};

/* Digest length of @alg in bytes, 0 for a value we do not support. */
size_t chap_digest_size(int alg);

/* A name for messages ("MD5", "SHA-256", ...), "unknown" otherwise. */
const char *chap_alg_name(int alg);

/* The response H(id || secret || challenge) into @out (CHAP_MAX_DIGEST
 * bytes of room).  Returns the digest length, or -1 with err_set():
 * EINVAL for an algorithm we do not support, ENOSYS when OpenSSL refuses
 * it (MD5 in FIPS mode, for one). */
int chap_compute(int alg, uint8_t id, const struct chap_secret *secret,
		 const uint8_t *challenge, size_t challenge_len, uint8_t *out);

/* Whether @response (of @response_len bytes) is the right answer to
 * @challenge with @id and @secret.  Compared in constant time; a wrong
 * length or an algorithm we cannot compute is simply false. */
bool chap_verify(int alg, uint8_t id, const struct chap_secret *secret,
		 const uint8_t *challenge, size_t challenge_len,
		 const uint8_t *response, size_t response_len);

/* CHAP_I: a number 0..255, decimal (no sign, no leading zero) or "0x"
 * hex (RFC 7143 6.1's numbers; LIO reads it so).  Returns 0, or -1 with
 * err_set(EPROTO, ...) naming the value. */
int chap_parse_identifier(const char *value, uint8_t *out);

/* CHAP_A as the target answers it: one value we support, as CHAP_I's.
 * Returns 0, or -1 with err_set(EPROTO, ...). */
int chap_parse_algorithm(const char *value, enum chap_alg *out);

/* A large binary value (CHAP_C, CHAP_R) of key @key: "0x"/"0X" and an
 * even number of hex digits, or "0b"/"0B" and padded base64.  Refused:
 * an empty value, an odd number of hex digits, a character outside the
 * encoding, misplaced or excess '=' padding, non-zero unused base64 bits,
 * more than CHAP_MAX_BINARY bytes.  @out has CHAP_MAX_BINARY bytes of
 * room.  Returns 0 and sets *len, or -1 with err_set(EPROTO, ...). */
int chap_parse_binary(const char *key, const char *value, uint8_t *out, size_t *len);

/* @len bytes as "0x" and lowercase hex into @out of @cap bytes (at least
 * CHAP_HEX_SIZE(len)).  Returns 0, or -1 with err_set(EMSGSIZE) when it
 * does not fit. */
int chap_format_binary(const uint8_t *data, size_t len, char *out, size_t cap);

/* A fresh identifier and @len bytes of challenge from RAND_bytes.
 * Returns 0, or -1 with err_set(EIO) when the generator fails. */
int chap_new_challenge(uint8_t *id, uint8_t *challenge, size_t len);

/* Store @len bytes of @data as the secret.  Returns 0, or -1 with
 * err_set(EINVAL): empty, longer than CHAP_MAX_SECRET, or holding a NUL
 * or a newline.  @s is wiped first either way. */
int chap_secret_set(struct chap_secret *s, const void *data, size_t len);

/* Whether two secrets are the same bytes (constant time for equal
 * lengths). */
bool chap_secret_equal(const struct chap_secret *a, const struct chap_secret *b);

/* Wipe a secret. */
void chap_secret_wipe(struct chap_secret *s);

/* Wipe everything in @c (both secrets and the names). */
void chap_credentials_wipe(struct chap_credentials *c);

#endif /* ISCSIFS_CHAP_H */
