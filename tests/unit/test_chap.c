/* test_chap.c: unit tests of chap.c.
 *
 * Known-answer vectors for every CHAP_A algorithm: each expected digest
 * was computed independently with Python's hashlib over the bytes
 * id || secret || challenge (RFC 1994 §2.2, RFC 7143 §12.1.3), e.g.
 *   python3 -c 'import hashlib; print(hashlib.sha3_256(bytes([42]) +
 *       b"0123456789secret" + bytes(range(32))).hexdigest())'
 * Then tables of CHAP_I, CHAP_A, CHAP_C/CHAP_R values that the strict
 * parsers accept and refuse, the encoder, challenges and secrets.
 *
 * Thread model: single-threaded test program.
 */
#include <errno.h>
#include <stdlib.h>

#include "chap.h"
#include "log.h"
#include "testlib.h"

/* Hex text into bytes (test data is well-formed).  Returns the length. */
static size_t unhex(const char *hex, uint8_t *out)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned v;
		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* One known answer. */
struct kat {
	int alg;               /* CHAP_A */
	uint8_t id;            /* CHAP_I */
	const char *secret;    /* the secret, as text */
	const char *challenge; /* CHAP_C, hex without 0x */
	const char *expected;  /* H(id || secret || challenge), hex */
};

#define C16 "00112233445566778899aabbccddeeff"
#define C32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

static const struct kat kats[] = {
	{ CHAP_ALG_MD5, 0x00, "abcdefghijkl", C16, "368f797f87624790ba6eacaeede00853" },
	{ CHAP_ALG_MD5, 0x2a, "0123456789secret", C32, "47aaef47fd10f5e7e5cd088e666d7117" },
	{ CHAP_ALG_MD5, 0xff, "x", "ff", "6b6b7de0957f254f98ca3bfb20a2b69e" },
	{ CHAP_ALG_SHA1, 0x00, "abcdefghijkl", C16,
	  "e9d6bbf1124efcbe080cad958e43f538ee0b0824" },
	{ CHAP_ALG_SHA1, 0x2a, "0123456789secret", C32,
	  "9d42846e2dbcb9db21a13e8a2098d0510f553f08" },
	{ CHAP_ALG_SHA1, 0xff, "x", "ff", "59d6ac2b172aa129b05e213038419a7d7b8c1410" },
	{ CHAP_ALG_SHA256, 0x00, "abcdefghijkl", C16,
	  "3e8c53ad285b6dfc0b27cb0e95f2f51bb97e2c3f0438053f0a5ebeec842751fa" },
	{ CHAP_ALG_SHA256, 0x2a, "0123456789secret", C32,
	  "7b24a83dcd417dcd4e783640a08955d2e7b9dbec414db9458ca80202393a6718" },
	{ CHAP_ALG_SHA256, 0xff, "x", "ff",
	  "75e8170dd8a9bc66185ad01f71a6c02b30850ce9a52a099f8e0e73682696627e" },
	{ CHAP_ALG_SHA3_256, 0x00, "abcdefghijkl", C16,
	  "ec207ec57e06cf65847c142690345c5735ac6e93a1f98662f78b0f3b5717ff2e" },
	{ CHAP_ALG_SHA3_256, 0x2a, "0123456789secret", C32,
	  "f6ee6c833aa753c80c628521420ed414c830b69da038210baf25eb585681031c" },
	{ CHAP_ALG_SHA3_256, 0xff, "x", "ff",
	  "4f2bbd5f40f3bd1ee1ba2d371b171ddcdff26fa4816ad8d08a93e60bd4acf49d" },
};

static void test_known_answers(void)
{
	for (size_t i = 0; i < sizeof kats / sizeof kats[0]; i++) {
		const struct kat *k = &kats[i];
		struct chap_secret s = { { 0 }, 0 };
		uint8_t chal[64], want[CHAP_MAX_DIGEST], got[CHAP_MAX_DIGEST], bad[CHAP_MAX_DIGEST];
		size_t clen = unhex(k->challenge, chal), wlen = unhex(k->expected, want);

		CHECK(chap_secret_set(&s, k->secret, strlen(k->secret)) == 0);
		CHECK_EQ_U64(chap_digest_size(k->alg), wlen);
		CHECK_EQ_U64(chap_compute(k->alg, k->id, &s, chal, clen, got), wlen);
		if (memcmp(got, want, wlen) != 0) {
			test_failures++;
			fprintf(stderr, "known answer %zu (%s) differs\n", i, chap_alg_name(k->alg));
		}
		CHECK(chap_verify(k->alg, k->id, &s, chal, clen, want, wlen));
		/* one bit off, one byte short, another identifier: refused */
		memcpy(bad, want, wlen);
		bad[wlen - 1] ^= 1;
		CHECK(!chap_verify(k->alg, k->id, &s, chal, clen, bad, wlen));
		CHECK(!chap_verify(k->alg, k->id, &s, chal, clen, want, wlen - 1));
		CHECK(!chap_verify(k->alg, (uint8_t)(k->id + 1), &s, chal, clen, want, wlen));
		chap_secret_wipe(&s);
	}
}

static void test_algorithms(void)
{
	struct chap_secret s = { { 0 }, 0 };
	uint8_t out[CHAP_MAX_DIGEST], chal[1] = { 0 };

	CHECK_STR(chap_alg_name(CHAP_ALG_MD5), "MD5");
	CHECK_STR(chap_alg_name(CHAP_ALG_SHA3_256), "SHA3-256");
	CHECK_STR(chap_alg_name(4), "unknown");
	CHECK_EQ_U64(chap_digest_size(9), 0);
	CHECK(chap_secret_set(&s, "abcdefghijkl", 12) == 0);
	CHECK(chap_compute(4, 1, &s, chal, 1, out) == -1 && err_errno() == EINVAL);
	CHECK(!chap_verify(9, 1, &s, chal, 1, out, 16));
}

/* A value the parsers accept, with what it means. */
struct good_binary {
	const char *value;    /* as the target sends it */
	const char *hex;      /* the bytes, hex */
};

static const struct good_binary good_binaries[] = {
	{ "0x" C16, C16 },
	{ "0X00FFaB", "00ffab" },
	{ "0bABEiM0RVZneImaq7zN3u/w==", C16 },
	{ "0B/w==", "ff" },
	{ "0b/+4=", "ffee" },
	{ "0b/+7d", "ffeedd" },
	{ "0b+/8=", "fbff" },
};

static const char *const bad_binaries[] = {
	"",              /* empty */
	"0x",            /* no digits */
	"0b",            /* no digits */
	"0x123",         /* odd number of digits */
	"0x12g4",        /* not a hex digit */
	"0x 1234",       /* space */
	"1234",          /* no prefix */
	"0c1234",        /* unknown prefix */
	"x1234",         /* no leading 0 */
	"0b/w=",         /* not a multiple of four */
	"0b/w",          /* padding missing */
	"0b/w===",       /* too much padding */
	"0b====",        /* only padding */
	"0b/w=A",        /* '=' in the middle */
	"0b/x==",        /* non-zero unused bits */
	"0b/+5=",        /* non-zero unused bits */
	"0b/w-=",        /* not base64 */
};

static void test_binary(void)
{
	static uint8_t out[CHAP_MAX_BINARY], want[64];
	size_t len;

	for (size_t i = 0; i < sizeof good_binaries / sizeof good_binaries[0]; i++) {
		size_t wlen = unhex(good_binaries[i].hex, want);
		CHECK(chap_parse_binary("CHAP_C", good_binaries[i].value, out, &len) == 0);
		CHECK_EQ_U64(len, wlen);
		CHECK(memcmp(out, want, wlen) == 0);
	}
	for (size_t i = 0; i < sizeof bad_binaries / sizeof bad_binaries[0]; i++) {
		int rc = chap_parse_binary("CHAP_C", bad_binaries[i], out, &len);
		if (rc != -1 || err_errno() != EPROTO) {
			test_failures++;
			fprintf(stderr, "CHAP_C=%s was not refused\n", bad_binaries[i]);
		}
		test_checks++;
	}
}

/* 1024 bytes pass, 1025 do not, in both encodings. */
static void test_binary_limits(void)
{
	static uint8_t out[CHAP_MAX_BINARY];
	char *hex = malloc(2 + 2 * 1025 + 1), *b64 = malloc(2 + 4 * 342 + 1);
	size_t len;

	memcpy(hex, "0x", 2);
	memset(hex + 2, 'a', 2 * 1025);
	hex[2 + 2 * 1025] = '\0';
	CHECK(chap_parse_binary("CHAP_C", hex, out, &len) == -1);
	CHECK(strstr(err_msg(), "1025-byte") != NULL);
	hex[2 + 2 * 1024] = '\0';
	CHECK(chap_parse_binary("CHAP_C", hex, out, &len) == 0);
	CHECK_EQ_U64(len, 1024);

	/* 342 groups of four: 1026 bytes, 1025 with one '=', 1024 with two */
	memcpy(b64, "0b", 2);
	memset(b64 + 2, 'A', 4 * 342);
	b64[2 + 4 * 342] = '\0';
	CHECK(chap_parse_binary("CHAP_R", b64, out, &len) == -1);
	b64[2 + 4 * 342 - 1] = '=';
	CHECK(chap_parse_binary("CHAP_R", b64, out, &len) == -1);
	b64[2 + 4 * 342 - 2] = '=';
	CHECK(chap_parse_binary("CHAP_R", b64, out, &len) == 0);
	CHECK_EQ_U64(len, 1024);
	free(hex);
	free(b64);
}

static void test_identifier(void)
{
	/* numbers of RFC 7143 6.1: decimal, or hex after 0x */
	static const char *const good[] = { "0", "1", "9", "42", "255", "0x1", "0X1f", "0xff",
					    "0x00FF" };
	static const unsigned good_values[] = { 0, 1, 9, 42, 255, 1, 31, 255, 255 };
	static const char *const bad[] = {
		"", "256", "1000", "-1", "+1", "01", "00", "0x", "0x100", "0xg", "x1", "1a", " 1",
		"1 ", "99999999999", "0x1ffffffff",
	};
	uint8_t id;

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		CHECK(chap_parse_identifier(good[i], &id) == 0);
		CHECK_EQ_U64(id, good_values[i]);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int rc = chap_parse_identifier(bad[i], &id);
		if (rc != -1 || err_errno() != EPROTO) {
			test_failures++;
			fprintf(stderr, "CHAP_I=%s was not refused\n", bad[i]);
		}
		test_checks++;
	}
}

static void test_algorithm_values(void)
{
	static const char *const bad[] = { "", "4", "9", "05", "0x4", "5,7", "MD5", "Reject" };
	enum chap_alg a;

	CHECK(chap_parse_algorithm("5", &a) == 0 && a == CHAP_ALG_MD5);
	CHECK(chap_parse_algorithm("6", &a) == 0 && a == CHAP_ALG_SHA1);
	CHECK(chap_parse_algorithm("7", &a) == 0 && a == CHAP_ALG_SHA256);
	CHECK(chap_parse_algorithm("8", &a) == 0 && a == CHAP_ALG_SHA3_256);
	CHECK(chap_parse_algorithm("0x5", &a) == 0 && a == CHAP_ALG_MD5);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK(chap_parse_algorithm(bad[i], &a) == -1 && err_errno() == EPROTO);
}

static void test_format(void)
{
	static const uint8_t data[] = { 0x00, 0x01, 0xab, 0xff };
	char out[CHAP_HEX_SIZE(4)];
	uint8_t back[CHAP_MAX_BINARY];
	size_t len;

	CHECK(chap_format_binary(data, sizeof data, out, sizeof out) == 0);
	CHECK_STR(out, "0x0001abff");
	CHECK(chap_parse_binary("CHAP_R", out, back, &len) == 0);
	CHECK(len == sizeof data && memcmp(back, data, len) == 0);
	CHECK(chap_format_binary(data, sizeof data, out, sizeof out - 1) == -1);
	CHECK_EQ_U64(err_errno(), EMSGSIZE);
}

static void test_challenge(void)
{
	uint8_t id1, id2, c1[CHAP_CHALLENGE_LEN], c2[CHAP_CHALLENGE_LEN];

	CHECK(chap_new_challenge(&id1, c1, sizeof c1) == 0);
	CHECK(chap_new_challenge(&id2, c2, sizeof c2) == 0);
	CHECK(memcmp(c1, c2, sizeof c1) != 0);
	CHECK(chap_new_challenge(&id1, c1, CHAP_MAX_BINARY + 1) == -1);
}

static void test_secrets(void)
{
	struct chap_secret a = { { 0 }, 0 }, b = { { 0 }, 0 };
	char longer[CHAP_MAX_SECRET + 1];
	static const uint8_t zero[sizeof a.bytes];

	CHECK(chap_secret_set(&a, "", 0) == -1 && err_errno() == EINVAL);
	CHECK(chap_secret_set(&a, "ab\ncd", 5) == -1);
	CHECK(chap_secret_set(&a, "ab\0cd", 5) == -1);
	memset(longer, 's', sizeof longer);
	CHECK(chap_secret_set(&a, longer, sizeof longer) == -1);
	CHECK(chap_secret_set(&a, longer, sizeof longer - 1) == 0);
	CHECK_EQ_U64(a.len, CHAP_MAX_SECRET);
	CHECK(chap_secret_set(&a, "first-secret", 12) == 0);
	CHECK(chap_secret_set(&b, "first-secret", 12) == 0);
	CHECK(chap_secret_equal(&a, &b));
	CHECK(chap_secret_set(&b, "first-secreT", 12) == 0);
	CHECK(!chap_secret_equal(&a, &b));
	CHECK(chap_secret_set(&b, "first-secret-", 13) == 0);
	CHECK(!chap_secret_equal(&a, &b));
	/* a failed set leaves nothing behind */
	CHECK(chap_secret_set(&a, "", 0) == -1);
	CHECK(a.len == 0 && memcmp(a.bytes, zero, sizeof zero) == 0);

	struct chap_credentials c;
	memset(&c, 0x55, sizeof c);
	chap_credentials_wipe(&c);
	CHECK(c.secret.len == 0 && c.target_secret.len == 0 && c.user[0] == '\0' && !c.mutual);
}

int main(void)
{
	test_known_answers();
	test_algorithms();
	test_binary();
	test_binary_limits();
	test_identifier();
	test_algorithm_values();
	test_format();
	test_challenge();
	test_secrets();
	return test_done("test_chap");
}
