/* test_text.c: unit tests of text.c, the key=value negotiation.
 *
 * Tables of one-pair exchanges check every result function (list, AND,
 * OR, Minimum, Maximum, declarative) both as answers to our offers and as
 * offers from the target; more tables check the strict iterator and the
 * number parser on malformed input; whole exchanges modelled on what tgtd
 * and istgt send check a login end to end.
 *
 * Thread model: single-threaded test program.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "log.h"
#include "text.h"
#include "testlib.h"

/* A data segment from a C string literal with explicit NULs. */
#define SEG(s) (const uint8_t *)(s), (sizeof(s) - 1)

#define PSIZE 4096

/* The configuration most tests start from. */
static struct text_config base_cfg(void)
{
	return (struct text_config){
		.initiator_name = "iqn.2026-11.org.iscsifs:test",
		.initiator_alias = NULL,
		.target_name = "iqn.2001-04.com.example:disk1",
		.discovery = false,
		.header_digest = DIGEST_PREF_AUTO,
		.data_digest = DIGEST_PREF_AUTO,
		.max_recv_dsl = 262144,
		.max_burst_length = 131072,
		.first_burst_length = 65536,
		.max_outstanding_r2t = 8,
		.immediate_data = true,
		.initial_r2t = false,
	};
}

/* One negotiation with its buffers. */
struct fixture {
	struct text_config cfg;     /* our side */
	struct iscsi_params params; /* outcome */
	struct text_neg neg;        /* state */
	uint8_t storage[PSIZE];     /* for out */
	struct text_buf out;        /* what we would send */
};

static void fx_init(struct fixture *f, void (*tweak)(struct text_config *))
{
	f->cfg = base_cfg();
	if (tweak)
		tweak(&f->cfg);
	text_params_defaults(&f->params);
	text_neg_init(&f->neg, &f->cfg, &f->params);
	text_buf_init(&f->out, f->storage, sizeof f->storage);
}

/* Feed one "Key=Value" pair (NUL appended) to the negotiation. */
static int fx_pair(struct fixture *f, const char *pair)
{
	static uint8_t data[PSIZE];
	size_t len = strlen(pair);

	memcpy(data, pair, len);
	data[len] = '\0';
	return text_neg_response(&f->neg, data, len + 1, &f->out);
}

/* Value of @key in a buffer of pairs, or NULL. */
static const char *buf_get(const struct text_buf *b, const char *key)
{
	size_t klen = strlen(key);
	const char *p = (const char *)b->data, *end = p + b->len;

	while (p < end) {
		if (strncmp(p, key, klen) == 0 && p[klen] == '=')
			return p + klen + 1;
		p += strlen(p) + 1;
	}
	return NULL;
}

static size_t buf_pairs(const struct text_buf *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\0';
	return n;
}

/* ---- config tweaks for the tables ---- */

static void tw_discovery(struct text_config *c)
{
	c->discovery = true;
	c->target_name = NULL;
}

static void tw_digest_none(struct text_config *c)
{
	c->header_digest = c->data_digest = DIGEST_PREF_NONE;
}

static void tw_digest_crc(struct text_config *c)
{
	c->header_digest = c->data_digest = DIGEST_PREF_CRC32C;
}

/* ImmediateData=No (AND) and InitialR2T=Yes (OR): answers optional */
static void tw_no_unsolicited(struct text_config *c)
{
	c->immediate_data = false;
	c->initial_r2t = true;
}

/* ---- defaults and buffers ---- */

static void test_defaults(void)
{
	struct iscsi_params p;

	memset(&p, 0xa5, sizeof p);
	text_params_defaults(&p);
	CHECK(!p.header_digest);
	CHECK(!p.data_digest);
	CHECK_EQ_U64(p.max_connections, 1);
	CHECK(p.initial_r2t);
	CHECK(p.immediate_data);
	CHECK_EQ_U64(p.max_recv_dsl, 8192);
	CHECK_EQ_U64(p.max_xmit_dsl, 8192);
	CHECK_EQ_U64(p.max_burst_length, 262144);
	CHECK_EQ_U64(p.first_burst_length, 65536);
	CHECK_EQ_U64(p.default_time2wait, 2);
	CHECK_EQ_U64(p.default_time2retain, 20);
	CHECK_EQ_U64(p.max_outstanding_r2t, 1);
	CHECK(p.data_pdu_in_order);
	CHECK(p.data_sequence_in_order);
	CHECK_EQ_U64(p.error_recovery_level, 0);
	CHECK(!p.has_tpgt);
	CHECK_STR(p.target_alias, "");
	CHECK_STR(p.auth_method, "");
}

static void test_buf(void)
{
	uint8_t store[12];
	struct text_buf b;

	text_buf_init(&b, store, sizeof store);
	CHECK(text_buf_add(&b, "A", "1") == 0);           /* 4 bytes */
	CHECK(text_buf_add(&b, "Bb", "22") == 0);         /* 6 bytes */
	CHECK_EQ_U64(b.len, 10);
	CHECK(memcmp(store, "A=1\0Bb=22\0", 10) == 0);
	CHECK(text_buf_add(&b, "C", "") == -1);           /* 3 > 2 left */
	CHECK_EQ_U64(err_errno(), EMSGSIZE);
	CHECK_EQ_U64(b.len, 10);
	text_buf_init(&b, store, 3);
	CHECK(text_buf_add(&b, "C", "") == 0);            /* exactly fits */
	CHECK_EQ_U64(b.len, 3);
	CHECK(text_buf_add(&b, "", "x") == -1);
	CHECK_EQ_U64(err_errno(), EINVAL);
	char longkey[TEXT_MAX_KEY + 2];
	memset(longkey, 'K', sizeof longkey - 1);
	longkey[sizeof longkey - 1] = '\0';
	CHECK(text_buf_add(&b, longkey, "x") == -1);
	CHECK_EQ_U64(err_errno(), EINVAL);
}

/* ---- numbers ---- */

static const struct {
	const char *text; /* value as sent */
	int ret;          /* 0 or -1 */
	uint64_t want;    /* value when ret is 0 */
} number_cases[] = {
	{ "0", 0, 0 },
	{ "7", 0, 7 },
	{ "512", 0, 512 },
	{ "16777215", 0, 16777215 },
	{ "18446744073709551615", 0, UINT64_MAX },
	{ "18446744073709551616", -1, 0 },       /* 2^64 */
	{ "99999999999999999999999", -1, 0 },
	{ "0x200", 0, 512 },
	{ "0X1f", 0, 31 },
	{ "0xFFFFFFFFFFFFFFFF", 0, UINT64_MAX },
	{ "0x0000000000000000001", 0, 1 },       /* leading zeros in hex */
	{ "0x10000000000000000", -1, 0 },        /* 2^64 */
	{ "0x", -1, 0 },
	{ "0xg", -1, 0 },
	{ "", -1, 0 },
	{ "01", -1, 0 },                          /* no leading zero */
	{ "00", -1, 0 },
	{ "+1", -1, 0 },
	{ "-1", -1, 0 },
	{ " 1", -1, 0 },
	{ "1 ", -1, 0 },
	{ "12a", -1, 0 },
	{ "1e3", -1, 0 },
	{ "0b AA==", -1, 0 },                     /* base64 */
	{ "0bAA==", -1, 0 },
	{ "1.5", -1, 0 },
};

static void test_numbers(void)
{
	for (size_t i = 0; i < sizeof number_cases / sizeof number_cases[0]; i++) {
		uint64_t v = 12345;
		int r = text_parse_number("K", number_cases[i].text, &v);

		CHECK_EQ_U64(r, number_cases[i].ret);
		if (r != number_cases[i].ret)
			fprintf(stderr, "  number case \"%s\"\n", number_cases[i].text);
		if (r == 0)
			CHECK_EQ_U64(v, number_cases[i].want);
		else
			CHECK_EQ_U64(err_errno(), EPROTO);
	}
}

/* ---- iterator ---- */

static void test_iter_good(void)
{
	struct text_iter it;
	const char *k, *v;

	text_iter_init(&it, SEG("A=1\0Bee=\0C=x=y\0"));
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK_STR(k, "A");
	CHECK_STR(v, "1");
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK_STR(k, "Bee");
	CHECK_STR(v, "");
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK_STR(k, "C");
	CHECK_STR(v, "x=y");                      /* value runs past '=' */
	CHECK(text_iter_next(&it, &k, &v) == 0);
	CHECK(text_iter_next(&it, &k, &v) == 0);

	text_iter_init(&it, NULL, 0);
	CHECK(text_iter_next(&it, &k, &v) == 0);

	/* NUL padding after the last pair */
	text_iter_init(&it, SEG("A=1\0\0\0\0"));
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK(text_iter_next(&it, &k, &v) == 0);

	/* key characters RFC 7143 allows, and the lower-case iSCSIProtocolLevel */
	text_iter_init(&it, SEG("X-com.example_k+1@a=v\0iSCSIProtocolLevel=1\0"));
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK_STR(k, "X-com.example_k+1@a");
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK_STR(k, "iSCSIProtocolLevel");
}

/* Build "K...K=V...V\0" with @klen and @vlen characters into @buf. */
static size_t make_pair(uint8_t *buf, size_t klen, size_t vlen)
{
	memset(buf, 'K', klen);
	buf[klen] = '=';
	memset(buf + klen + 1, 'v', vlen);
	buf[klen + 1 + vlen] = '\0';
	return klen + vlen + 2;
}

static void test_iter_limits(void)
{
	static uint8_t buf[TEXT_MAX_VALUE + 200];
	struct text_iter it;
	const char *k, *v;
	size_t len;

	len = make_pair(buf, TEXT_MAX_KEY, 1);
	text_iter_init(&it, buf, len);
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK_EQ_U64(strlen(k), TEXT_MAX_KEY);

	len = make_pair(buf, TEXT_MAX_KEY + 1, 1);
	text_iter_init(&it, buf, len);
	CHECK(text_iter_next(&it, &k, &v) == -1);
	CHECK_EQ_U64(err_errno(), EPROTO);

	len = make_pair(buf, 1, TEXT_MAX_VALUE);
	text_iter_init(&it, buf, len);
	CHECK(text_iter_next(&it, &k, &v) == 1);
	CHECK_EQ_U64(strlen(v), TEXT_MAX_VALUE);

	len = make_pair(buf, 1, TEXT_MAX_VALUE + 1);
	text_iter_init(&it, buf, len);
	CHECK(text_iter_next(&it, &k, &v) == -1);
}

/* Malformed data: the first pair is fine, the second is not. */
static const struct {
	const char *what;    /* for the failure message */
	const char *data;    /* the bytes */
	size_t len;          /* their number */
} bad_iter[] = {
#define BAD(what, s) { what, s, sizeof(s) - 1 }
	BAD("no final NUL", "A=1\0B=2"),
	BAD("no final NUL, no '='", "A=1\0B"),
	BAD("no '='", "A=1\0B\0"),
	BAD("empty key", "A=1\0=2\0"),
	BAD("empty pair between pairs", "A=1\0\0B=2\0"),
	BAD("space in key", "A=1\0B C=2\0"),
	BAD("NUL-free junk", "A=1\0\x01\x02\x03"),
	BAD("control character in key", "A=1\0B\x01=2\0"),
	BAD("non-ASCII key", "A=1\0K\xc3\xa9y=2\0"),
	BAD("padding then junk", "A=1\0\0\0X"),
#undef BAD
};

static void test_iter_bad(void)
{
	for (size_t i = 0; i < sizeof bad_iter / sizeof bad_iter[0]; i++) {
		struct text_iter it;
		const char *k, *v;
		int r1, r2, r3;

		text_iter_init(&it, (const uint8_t *)bad_iter[i].data, bad_iter[i].len);
		r1 = text_iter_next(&it, &k, &v);
		r2 = text_iter_next(&it, &k, &v);
		r3 = text_iter_next(&it, &k, &v);    /* stays failed */
		CHECK(r1 == 1 && r2 == -1 && r3 == -1);
		CHECK_EQ_U64(err_errno(), EPROTO);
		if (!(r1 == 1 && r2 == -1 && r3 == -1))
			fprintf(stderr, "  iterator case: %s\n", bad_iter[i].what);
	}
}

/* ---- offers ---- */

static void test_offer_security(void)
{
	struct fixture f;
	static const char want_normal[] =
		"InitiatorName=iqn.2026-11.org.iscsifs:test\0"
		"SessionType=Normal\0"
		"TargetName=iqn.2001-04.com.example:disk1\0"
		"AuthMethod=None\0";
	static const char want_disc[] =
		"InitiatorName=iqn.2026-11.org.iscsifs:test\0"
		"InitiatorAlias=box\0"
		"SessionType=Discovery\0"
		"AuthMethod=None\0";

	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, sizeof want_normal - 1);
	CHECK(memcmp(f.storage, want_normal, sizeof want_normal - 1) == 0);
	/* each key once per negotiation */
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, sizeof want_normal - 1);

	fx_init(&f, tw_discovery);
	f.cfg.initiator_alias = "box";
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, sizeof want_disc - 1);
	CHECK(memcmp(f.storage, want_disc, sizeof want_disc - 1) == 0);
}

static void test_offer_operational(void)
{
	struct fixture f;
	static const char want_normal[] =
		"HeaderDigest=None,CRC32C\0"
		"DataDigest=None,CRC32C\0"
		"MaxConnections=1\0"
		"InitialR2T=No\0"
		"ImmediateData=Yes\0"
		"MaxRecvDataSegmentLength=262144\0"
		"MaxBurstLength=131072\0"
		"FirstBurstLength=65536\0"
		"DefaultTime2Wait=2\0"
		"DefaultTime2Retain=0\0"
		"MaxOutstandingR2T=8\0"
		"DataPDUInOrder=Yes\0"
		"DataSequenceInOrder=Yes\0"
		"ErrorRecoveryLevel=0\0";
	static const char want_disc[] =
		"HeaderDigest=None\0"
		"DataDigest=None\0"
		"MaxRecvDataSegmentLength=262144\0";

	fx_init(&f, NULL);
	CHECK_EQ_U64(f.params.max_recv_dsl, 8192);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, sizeof want_normal - 1);
	CHECK(memcmp(f.storage, want_normal, sizeof want_normal - 1) == 0);
	CHECK_EQ_U64(f.params.max_recv_dsl, 262144);  /* declared: now ours */
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, sizeof want_normal - 1);

	fx_init(&f, tw_discovery);
	tw_digest_none(&f.cfg);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, sizeof want_disc - 1);
	CHECK(memcmp(f.storage, want_disc, sizeof want_disc - 1) == 0);

	fx_init(&f, tw_digest_crc);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK_STR(buf_get(&f.out, "HeaderDigest"), "CRC32C");
	CHECK_STR(buf_get(&f.out, "DataDigest"), "CRC32C");

	/* the full feature phase offers nothing */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_FULL_FEATURE, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, 0);
}

static void test_offer_errors(void)
{
	struct fixture f;
	uint8_t small[40];

	/* too small a buffer: nothing appended, nothing marked offered */
	fx_init(&f, NULL);
	text_buf_init(&f.out, small, sizeof small);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == -1);
	CHECK_EQ_U64(err_errno(), EMSGSIZE);
	CHECK_EQ_U64(f.out.len, 0);
	text_buf_init(&f.out, f.storage, sizeof f.storage);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK_EQ_U64(buf_pairs(&f.out), 14);

	static const struct {
		const char *what;           /* the broken setting */
		enum iscsi_login_stage stage; /* where it is noticed */
	} cases[] = {
		{ "no initiator name", ISCSI_STAGE_SECURITY },
		{ "normal session without target", ISCSI_STAGE_SECURITY },
		{ "FirstBurstLength above MaxBurstLength", ISCSI_STAGE_OPERATIONAL },
		{ "MaxRecvDataSegmentLength 100", ISCSI_STAGE_OPERATIONAL },
		{ "MaxBurstLength 2^24", ISCSI_STAGE_OPERATIONAL },
		{ "MaxOutstandingR2T 0", ISCSI_STAGE_OPERATIONAL },
		{ "initiator name of 224 bytes", ISCSI_STAGE_SECURITY },
	};
	static char longname[225];
	memset(longname, 'n', 224);
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fx_init(&f, NULL);
		switch (i) {
		case 0: f.cfg.initiator_name = ""; break;
		case 1: f.cfg.target_name = NULL; break;
		case 2: f.cfg.first_burst_length = 262144; break;
		case 3: f.cfg.max_recv_dsl = 100; break;
		case 4: f.cfg.max_burst_length = 16777216; break;
		case 5: f.cfg.max_outstanding_r2t = 0; break;
		case 6: f.cfg.initiator_name = longname; break;
		}
		int r = text_neg_offer(&f.neg, cases[i].stage, &f.out);
		CHECK(r == -1 && err_errno() == EINVAL && f.out.len == 0);
		if (r != -1)
			fprintf(stderr, "  config case: %s\n", cases[i].what);
	}
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, (enum iscsi_login_stage)2, &f.out) == -1);
}

/* ---- one pair at a time: result functions ---- */

/* What a case checks in the params after the exchange. */
enum want_kind {
	W_NONE, /* nothing */
	W_BOOL, /* a bool at off */
	W_U32,  /* a uint32_t at off */
	W_TPGT, /* target_portal_group_tag, has_tpgt */
	W_STR,  /* a char array at off */
};

struct pair_case {
	const char *pair;    /* what the target sends */
	bool offer;          /* we offered the operational keys first */
	void (*tweak)(struct text_config *c); /* NULL: base_cfg() */
	int ret;             /* text_neg_response() result */
	const char *answer;  /* "Key=Value" we must send back; NULL: nothing */
	enum want_kind kind; /* what to check */
	size_t off;          /* offsetof in struct iscsi_params */
	uint64_t want;       /* W_BOOL, W_U32, W_TPGT */
	const char *want_s;  /* W_STR */
	const char *msg;     /* the error message must contain this */
};

#define OFF(f) offsetof(struct iscsi_params, f)
#define WB(f, v) .kind = W_BOOL, .off = OFF(f), .want = (v)
#define WU(f, v) .kind = W_U32, .off = OFF(f), .want = (v)
#define WS(f, v) .kind = W_STR, .off = OFF(f), .want_s = (v)
#define ANS .offer = true
#define PROP .offer = false
#define FAIL .ret = -1

static const struct pair_case pair_cases[] = {
	/* list: HeaderDigest/DataDigest, offered None,CRC32C */
	{ "HeaderDigest=None", ANS, WB(header_digest, 0) },
	{ "HeaderDigest=CRC32C", ANS, WB(header_digest, 1) },
	{ "DataDigest=CRC32C", ANS, WB(data_digest, 1) },
	{ "HeaderDigest=CRC32C,None", ANS, FAIL, .msg = "not one of the values we offered" },
	{ "HeaderDigest=MD5", ANS, FAIL, .msg = "HeaderDigest=MD5" },
	{ "HeaderDigest=crc32c", ANS, FAIL },
	{ "HeaderDigest=", ANS, FAIL },
	{ "HeaderDigest=CRC32C", ANS, .tweak = tw_digest_none, FAIL },
	{ "HeaderDigest=None", ANS, .tweak = tw_digest_crc, FAIL },
	{ "HeaderDigest=CRC32C", ANS, .tweak = tw_digest_crc, WB(header_digest, 1) },
	/* OR, offered No */
	{ "InitialR2T=Yes", ANS, WB(initial_r2t, 1) },
	{ "InitialR2T=No", ANS, WB(initial_r2t, 0) },
	{ "InitialR2T=yes", ANS, FAIL, .msg = "Yes or No" },
	{ "InitialR2T=1", ANS, FAIL },
	{ "InitialR2T=No", ANS, .tweak = tw_no_unsolicited, FAIL, .msg = "result function OR" },
	{ "InitialR2T=Yes", ANS, .tweak = tw_no_unsolicited, WB(initial_r2t, 1) },
	{ "DataPDUInOrder=No", ANS, FAIL },
	{ "DataSequenceInOrder=Yes", ANS, WB(data_sequence_in_order, 1) },
	/* AND, offered Yes */
	{ "ImmediateData=No", ANS, WB(immediate_data, 0) },
	{ "ImmediateData=Yes", ANS, WB(immediate_data, 1) },
	{ "ImmediateData=Yes", ANS, .tweak = tw_no_unsolicited, FAIL, .msg = "result function AND" },
	{ "ImmediateData=No", ANS, .tweak = tw_no_unsolicited, WB(immediate_data, 0) },
	/* Minimum, offered 131072 */
	{ "MaxBurstLength=65536", ANS, WU(max_burst_length, 65536) },
	{ "MaxBurstLength=131072", ANS, WU(max_burst_length, 131072) },
	{ "MaxBurstLength=512", ANS, WU(max_burst_length, 512) },
	{ "MaxBurstLength=0x10000", ANS, WU(max_burst_length, 65536) },
	{ "MaxBurstLength=131073", ANS, FAIL, .msg = "MaxBurstLength=131073, above our offer 131072" },
	{ "MaxBurstLength=100", ANS, FAIL, .msg = "MaxBurstLength=100, outside 512..16777215" },
	{ "MaxBurstLength=16777216", ANS, FAIL },
	{ "MaxBurstLength=065536", ANS, FAIL, .msg = "not a decimal" },
	{ "MaxBurstLength=+65536", ANS, FAIL },
	{ "MaxBurstLength=65536x", ANS, FAIL },
	{ "MaxBurstLength=99999999999999999999999", ANS, FAIL },
	{ "MaxBurstLength=", ANS, FAIL },
	{ "FirstBurstLength=512", ANS, WU(first_burst_length, 512) },
	{ "FirstBurstLength=65537", ANS, FAIL },
	{ "MaxOutstandingR2T=1", ANS, WU(max_outstanding_r2t, 1) },
	{ "MaxOutstandingR2T=0", ANS, FAIL },
	{ "MaxOutstandingR2T=9", ANS, FAIL },
	{ "MaxConnections=1", ANS, WU(max_connections, 1) },
	{ "MaxConnections=2", ANS, FAIL },
	{ "DefaultTime2Retain=0", ANS, WU(default_time2retain, 0) },
	{ "DefaultTime2Retain=20", ANS, FAIL },
	{ "ErrorRecoveryLevel=0", ANS, WU(error_recovery_level, 0) },
	{ "ErrorRecoveryLevel=1", ANS, FAIL },
	/* Maximum, offered 2 */
	{ "DefaultTime2Wait=2", ANS, WU(default_time2wait, 2) },
	{ "DefaultTime2Wait=5", ANS, WU(default_time2wait, 5) },
	{ "DefaultTime2Wait=1", ANS, FAIL, .msg = "below our offer 2" },
	{ "DefaultTime2Wait=3601", ANS, FAIL },
	/* the reserved answers keep the current value */
	{ "MaxBurstLength=Reject", ANS, WU(max_burst_length, 262144) },
	{ "MaxBurstLength=Irrelevant", ANS, WU(max_burst_length, 262144) },
	{ "ImmediateData=NotUnderstood", ANS, WB(immediate_data, 1) },
	{ "HeaderDigest=Reject", ANS, WB(header_digest, 0) },
	/* declarations */
	{ "MaxRecvDataSegmentLength=65536", ANS, WU(max_xmit_dsl, 65536) },
	{ "MaxRecvDataSegmentLength=65536", PROP, WU(max_xmit_dsl, 65536) },
	{ "MaxRecvDataSegmentLength=512", PROP, WU(max_xmit_dsl, 512) },
	{ "MaxRecvDataSegmentLength=511", PROP, FAIL, .msg = "outside 512..16777215" },
	{ "MaxRecvDataSegmentLength=16777216", PROP, FAIL },
	{ "MaxRecvDataSegmentLength=Irrelevant", ANS, WU(max_xmit_dsl, 8192) },
	{ "MaxRecvDataSegmentLength=Irrelevant", PROP, FAIL },
	{ "TargetPortalGroupTag=1", PROP, .kind = W_TPGT, .want = 1 },
	{ "TargetPortalGroupTag=0x10", PROP, .kind = W_TPGT, .want = 16 },
	{ "TargetPortalGroupTag=65535", PROP, .kind = W_TPGT, .want = 65535 },
	{ "TargetPortalGroupTag=65536", PROP, FAIL },
	{ "TargetPortalGroupTag=one", PROP, FAIL },
	{ "TargetAlias=Disk One: backup", PROP, WS(target_alias, "Disk One: backup") },
	{ "TargetAddress=192.0.2.1:3260,1", PROP },
	{ "TargetName=iqn.2001-04.com.example:disk1", ANS },
	/* keys only initiators send are ignored */
	{ "InitiatorName=iqn.x", PROP },
	{ "SessionType=Normal", PROP },
	/* unknown, obsolete and skipped keys */
	{ "X-com.example.feature=on", PROP, .answer = "X-com.example.feature=NotUnderstood" },
	{ "FutureKey=1", ANS, .answer = "FutureKey=NotUnderstood" },
	{ "X-com.example.feature=Reject", PROP, FAIL, .msg = "never sent" },
	{ "IFMarker=No", PROP, .answer = "IFMarker=Reject" },
	{ "OFMarker=Yes", PROP, .answer = "OFMarker=Reject" },
	{ "IFMarkInt=2048~8192", PROP, .answer = "IFMarkInt=Reject" },
	{ "OFMarkInt=1", PROP, .answer = "OFMarkInt=Reject" },
	{ "CHAP_A=5", PROP },   /* (the security stage: the CHAP module's) */
	{ "TaskReporting=ResponseFence,RFC3720", PROP, .answer = "TaskReporting=RFC3720" },
	{ "TaskReporting=FastAbort", PROP, .answer = "TaskReporting=Reject" },
	{ "iSCSIProtocolLevel=2", PROP, .answer = "iSCSIProtocolLevel=1" },
	{ "iSCSIProtocolLevel=0", PROP, .answer = "iSCSIProtocolLevel=0" },
	{ "iSCSIProtocolLevel=32", PROP, .answer = "iSCSIProtocolLevel=Reject" },
	/* offers from the target, answered by the result function */
	{ "HeaderDigest=CRC32C,None", PROP, .answer = "HeaderDigest=CRC32C", WB(header_digest, 1) },
	{ "HeaderDigest=None,CRC32C", PROP, .answer = "HeaderDigest=None", WB(header_digest, 0) },
	{ "HeaderDigest=MD5,CRC32C", PROP, .answer = "HeaderDigest=CRC32C", WB(header_digest, 1) },
	{ "DataDigest=CRC32C", PROP, .tweak = tw_digest_none, .answer = "DataDigest=Reject", WB(data_digest, 0) },
	{ "HeaderDigest=CRC32C,,None", PROP, FAIL, .msg = "malformed list" },
	{ "HeaderDigest=Reject", PROP, FAIL, .msg = "only an answer" },
	{ "MaxBurstLength=16384", PROP, .answer = "MaxBurstLength=16384", WU(max_burst_length, 16384) },
	{ "MaxBurstLength=1000000", PROP, .answer = "MaxBurstLength=131072", WU(max_burst_length, 131072) },
	{ "MaxBurstLength=100", PROP, .answer = "MaxBurstLength=Reject", WU(max_burst_length, 262144) },
	{ "MaxBurstLength=12k", PROP, FAIL },
	{ "MaxBurstLength=16384", PROP, .tweak = tw_discovery, .answer = "MaxBurstLength=Irrelevant", WU(max_burst_length, 262144) },
	{ "DefaultTime2Wait=1", PROP, .answer = "DefaultTime2Wait=2", WU(default_time2wait, 2) },
	{ "DefaultTime2Wait=10", PROP, .answer = "DefaultTime2Wait=10", WU(default_time2wait, 10) },
	{ "DefaultTime2Retain=60", PROP, .answer = "DefaultTime2Retain=0", WU(default_time2retain, 0) },
	{ "ErrorRecoveryLevel=2", PROP, .answer = "ErrorRecoveryLevel=0", WU(error_recovery_level, 0) },
	{ "ErrorRecoveryLevel=3", PROP, .answer = "ErrorRecoveryLevel=Reject" },
	{ "MaxConnections=8", PROP, .answer = "MaxConnections=1", WU(max_connections, 1) },
	{ "MaxOutstandingR2T=4", PROP, .answer = "MaxOutstandingR2T=4", WU(max_outstanding_r2t, 4) },
	{ "ImmediateData=Yes", PROP, .answer = "ImmediateData=Yes", WB(immediate_data, 1) },
	{ "ImmediateData=No", PROP, .answer = "ImmediateData=No", WB(immediate_data, 0) },
	{ "InitialR2T=Yes", PROP, .answer = "InitialR2T=Yes", WB(initial_r2t, 1) },
	{ "InitialR2T=No", PROP, .answer = "InitialR2T=No", WB(initial_r2t, 0) },
	{ "InitialR2T=No", PROP, .tweak = tw_no_unsolicited, .answer = "InitialR2T=Yes", WB(initial_r2t, 1) },
	{ "InitialR2T=Maybe", PROP, FAIL },
	{ "DataPDUInOrder=No", PROP, .answer = "DataPDUInOrder=Yes", WB(data_pdu_in_order, 1) },
	{ "ErrorRecoveryLevel=0", PROP, .tweak = tw_discovery, .answer = "ErrorRecoveryLevel=0" },
	/* security keys outside the security stage */
	{ "AuthMethod=None", ANS, FAIL, .msg = "operational negotiation stage" },
	{ "CHAP_C=0x0123456789abcdef", ANS, FAIL, .msg = "operational negotiation stage" },
};

static void run_pair_case(const struct pair_case *c)
{
	struct fixture f;
	int r;

	fx_init(&f, c->tweak);
	if (c->offer) {
		CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
		f.out.len = 0;
	}
	r = fx_pair(&f, c->pair);
	if (r != c->ret) {
		test_checks++;
		test_failures++;
		fprintf(stderr, "%s:%d: \"%s\" (%s): returned %d, expected %d (%s)\n",
			__FILE__, __LINE__, c->pair, c->offer ? "answer" : "offer",
			r, c->ret, r ? err_msg() : "");
		return;
	}
	if (r < 0) {
		CHECK(err_errno() == EPROTO);
		if (c->msg && !strstr(err_msg(), c->msg)) {
			test_checks++;
			test_failures++;
			fprintf(stderr, "%s:%d: \"%s\": message \"%s\" lacks \"%s\"\n",
				__FILE__, __LINE__, c->pair, err_msg(), c->msg);
		}
		return;
	}
	if (c->answer) {
		size_t len = strlen(c->answer) + 1;
		CHECK(f.out.len == len && memcmp(f.storage, c->answer, len) == 0);
		if (!(f.out.len == len && memcmp(f.storage, c->answer, len) == 0))
			fprintf(stderr, "  \"%s\": answer \"%.*s\", expected \"%s\"\n",
				c->pair, (int)f.out.len, (const char *)f.storage, c->answer);
	} else {
		CHECK_EQ_U64(f.out.len, 0);
	}

	const char *field = (const char *)&f.params + c->off;
	switch (c->kind) {
	case W_BOOL:
		CHECK_EQ_U64(*(const bool *)field, c->want);
		break;
	case W_U32:
		CHECK_EQ_U64(*(const uint32_t *)field, c->want);
		break;
	case W_TPGT:
		CHECK(f.params.has_tpgt);
		CHECK_EQ_U64(f.params.target_portal_group_tag, c->want);
		break;
	case W_STR:
		CHECK_STR(field, c->want_s);
		break;
	case W_NONE:
		break;
	}
}

static void test_pairs(void)
{
	for (size_t i = 0; i < sizeof pair_cases / sizeof pair_cases[0]; i++)
		run_pair_case(&pair_cases[i]);
}

/* ---- malformed and hostile responses ---- */

static void test_response_errors(void)
{
	struct fixture f;

	/* the same key twice in one data segment, and across responses */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("MaxBurstLength=8192\0MaxBurstLength=8192\0"),
				&f.out) == -1);
	CHECK(strstr(err_msg(), "MaxBurstLength twice") != NULL);

	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("TargetAlias=a\0"), &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("TargetAlias=b\0"), &f.out) == -1);
	CHECK_EQ_U64(err_errno(), EPROTO);

	/* a target offer followed by the same key again */
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, SEG("MaxBurstLength=8192\0"), &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("MaxBurstLength=4096\0"), &f.out) == -1);

	/* TargetAddress may repeat */
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, SEG("TargetAddress=192.0.2.1:3260,1\0"
					    "TargetAddress=[2001:db8::1]:3260,1\0"),
				&f.out) == 0);

	/* malformed text fails the negotiation */
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, SEG("TargetAlias=a"), &f.out) == -1);
	CHECK(strstr(err_msg(), "does not end in a NUL") != NULL);
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, SEG("TargetAlias\0"), &f.out) == -1);

	/* a 256-byte alias is over the simple-value limit */
	{
		char pair[300] = "TargetAlias=";
		memset(pair + 12, 'a', 256);
		pair[12 + 256] = '\0';
		fx_init(&f, NULL);
		CHECK(fx_pair(&f, pair) == -1);
		pair[12 + 255] = '\0';
		fx_init(&f, NULL);
		CHECK(fx_pair(&f, pair) == 0);
		CHECK_EQ_U64(strlen(f.params.target_alias), 255);
	}

	/* an unprintable value is shown safely in the message */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("MaxBurstLength=1\x1b[2J\0"), &f.out) == -1);
	CHECK(strchr(err_msg(), '\x1b') == NULL);

	/* operational keys in the full feature phase */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_FULL_FEATURE, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("MaxBurstLength=8192\0"), &f.out) == -1);
	CHECK(strstr(err_msg(), "full feature phase") != NULL);
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_FULL_FEATURE, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("TargetAlias=x\0MaxRecvDataSegmentLength=4096\0"),
				&f.out) == 0);
	CHECK_EQ_U64(f.params.max_xmit_dsl, 4096);
}

static void test_flood(void)
{
	static uint8_t data[200000];
	struct fixture f;
	size_t len = 0;

	/* 10000 unknown keys: answers stop at the cap and the negotiation fails */
	for (int i = 0; i < 10000; i++)
		len += (size_t)sprintf((char *)data + len, "X-k%d=v", i) + 1;
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, data, len, &f.out) == -1);
	CHECK_EQ_U64(err_errno(), EPROTO);
	CHECK(strstr(err_msg(), "more than 64 keys") != NULL);
	CHECK_EQ_U64(buf_pairs(&f.out), TEXT_MAX_NOT_UNDERSTOOD);

	/* exactly the cap is still fine */
	len = 0;
	for (int i = 0; i < TEXT_MAX_NOT_UNDERSTOOD; i++)
		len += (size_t)sprintf((char *)data + len, "X-k%d=v", i) + 1;
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, data, len, &f.out) == 0);
	CHECK_EQ_U64(buf_pairs(&f.out), TEXT_MAX_NOT_UNDERSTOOD);

	/* CHAP keys cost nothing */
	len = 0;
	for (int i = 0; i < 10000; i++)
		len += (size_t)sprintf((char *)data + len, "CHAP_X%d=v", i) + 1;
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, data, len, &f.out) == 0);
	CHECK_EQ_U64(f.out.len, 0);

	/* answers that do not fit fail with EMSGSIZE */
	uint8_t small[16];
	fx_init(&f, NULL);
	text_buf_init(&f.out, small, sizeof small);
	CHECK(text_neg_response(&f.neg, SEG("X-long-key-name=1\0"), &f.out) == -1);
	CHECK_EQ_U64(err_errno(), EMSGSIZE);
}

/* ---- security stage ---- */

static void test_security(void)
{
	struct fixture f;

	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG("TargetPortalGroupTag=1\0AuthMethod=None\0"),
				&f.out) == 0);
	CHECK_STR(f.params.auth_method, "None");
	CHECK(f.params.has_tpgt);
	CHECK(text_neg_finish(&f.neg) == 0);

	/* the target wants CHAP, which we did not offer */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("AuthMethod=Reject\0"), &f.out) == -1);
	CHECK_EQ_U64(err_errno(), EACCES);
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("AuthMethod=CHAP\0"), &f.out) == -1);
	CHECK_EQ_U64(err_errno(), EPROTO);

	/* AuthMethod unanswered: finish fails */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("TargetPortalGroupTag=1\0"), &f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == -1);
	CHECK(strstr(err_msg(), "did not answer our AuthMethod=None") != NULL);

	/* the target offering AuthMethod itself */
	fx_init(&f, NULL);
	CHECK(text_neg_response(&f.neg, SEG("AuthMethod=CHAP,None\0"), &f.out) == 0);
	CHECK_STR(buf_get(&f.out, "AuthMethod"), "None");
	CHECK_STR(f.params.auth_method, "None");
	f.out.len = 0;
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK(buf_get(&f.out, "AuthMethod") == NULL);   /* not offered again */
}

/* ---- finish ---- */

/* Everything a target answers to base_cfg()'s operational offers. */
#define ALL_ANSWERS                                                     \
	"HeaderDigest=None\0DataDigest=None\0MaxConnections=1\0"        \
	"InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=131072\0"     \
	"FirstBurstLength=65536\0DefaultTime2Wait=2\0"                  \
	"DefaultTime2Retain=0\0MaxOutstandingR2T=8\0"                   \
	"DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0"                 \
	"ErrorRecoveryLevel=0\0"

static void test_finish(void)
{
	struct fixture f;

	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG(ALL_ANSWERS), &f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == 0);
	CHECK(text_neg_finish(&f.neg) == 0);              /* harmless again */
	CHECK_EQ_U64(f.params.first_burst_length, 65536);

	/* a required answer missing */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG("HeaderDigest=None\0DataDigest=None\0"),
				&f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == -1);
	CHECK(strstr(err_msg(), "did not answer our MaxConnections=1") != NULL);

	/* optional answers (OR offered Yes, AND offered No) may be missing */
	fx_init(&f, tw_no_unsolicited);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	f.params.data_pdu_in_order = false;                /* finish sets it */
	CHECK(text_neg_response(&f.neg, SEG(
		"HeaderDigest=None\0DataDigest=None\0MaxConnections=1\0"
		"MaxBurstLength=131072\0FirstBurstLength=65536\0DefaultTime2Wait=2\0"
		"DefaultTime2Retain=0\0MaxOutstandingR2T=8\0ErrorRecoveryLevel=0\0"),
		&f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == 0);
	CHECK(f.params.initial_r2t);
	CHECK(!f.params.immediate_data);
	CHECK(f.params.data_pdu_in_order);
	CHECK(f.params.data_sequence_in_order);
	/* InitialR2T=Yes and ImmediateData=No: FirstBurstLength irrelevant */
	CHECK_EQ_U64(f.params.first_burst_length, 0);

	/* FirstBurstLength above MaxBurstLength (RFC 7143 13.14 forbids it,
	 * tgtd set up with a small MaxBurstLength answers so, and takes the
	 * unsolicited data of its own answer): kept as negotiated */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG(
		"HeaderDigest=None\0DataDigest=None\0MaxConnections=1\0"
		"InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=8192\0"
		"FirstBurstLength=65536\0DefaultTime2Wait=2\0"
		"DefaultTime2Retain=0\0MaxOutstandingR2T=8\0"
		"ErrorRecoveryLevel=0\0"), &f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == 0);
	CHECK_EQ_U64(f.params.first_burst_length, 65536);
	CHECK_EQ_U64(f.params.max_burst_length, 8192);

	/* a digest we insist on, refused */
	fx_init(&f, tw_digest_crc);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG(
		"HeaderDigest=Reject\0DataDigest=CRC32C\0MaxConnections=1\0"
		"InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=131072\0"
		"FirstBurstLength=65536\0DefaultTime2Wait=2\0"
		"DefaultTime2Retain=0\0MaxOutstandingR2T=8\0"
		"ErrorRecoveryLevel=0\0"), &f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == -1);
	CHECK(strstr(err_msg(), "HeaderDigest=CRC32C") != NULL);

	/* ... and granted */
	fx_init(&f, tw_digest_crc);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(text_neg_response(&f.neg, SEG(
		"HeaderDigest=CRC32C\0DataDigest=CRC32C\0MaxConnections=1\0"
		"InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=131072\0"
		"FirstBurstLength=65536\0DefaultTime2Wait=2\0"
		"DefaultTime2Retain=0\0MaxOutstandingR2T=8\0"
		"ErrorRecoveryLevel=0\0"), &f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == 0);
	CHECK(f.params.header_digest && f.params.data_digest);

	/* nothing offered: nothing to fail */
	fx_init(&f, NULL);
	CHECK(text_neg_finish(&f.neg) == 0);

	/* ... but a digest we insist on, never negotiated (the target ended
	 * the login in the security stage) */
	fx_init(&f, tw_digest_crc);
	CHECK(text_neg_finish(&f.neg) == -1);
	CHECK(strstr(err_msg(), "without negotiating HeaderDigest") != NULL);

	/* the target's offers in the response that ends the login: those
	 * whose answer decides the outcome fail (it would never be sent);
	 * those the RFC needs no answer to (AND offered No, OR offered Yes)
	 * pass */
	static const struct {
		const char *offer;   /* in the last response */
		bool owed;           /* the login fails */
	} last_offers[] = {
		{ "HeaderDigest=CRC32C", true }, { "MaxBurstLength=8192", true },
		{ "ImmediateData=Yes", true }, { "InitialR2T=No", true },
		{ "ImmediateData=No", false }, { "InitialR2T=Yes", false },
	};
	for (size_t i = 0; i < sizeof last_offers / sizeof last_offers[0]; i++) {
		fx_init(&f, NULL);
		CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
		CHECK(fx_pair(&f, "AuthMethod=None") == 0);
		f.neg.stage = ISCSI_STAGE_OPERATIONAL;
		CHECK(fx_pair(&f, last_offers[i].offer) == 0);
		CHECK(text_neg_finish(&f.neg) == (last_offers[i].owed ? -1 : 0));
		CHECK(!last_offers[i].owed ||
		      strstr(err_msg(), "in the response that ends the login") != NULL);
	}
	/* ... as does an offer answered in an earlier exchange */
	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK(fx_pair(&f, "AuthMethod=None") == 0);
	f.neg.stage = ISCSI_STAGE_OPERATIONAL;
	CHECK(fx_pair(&f, "MaxBurstLength=8192") == 0);
	CHECK(fx_pair(&f, "TargetAlias=x") == 0);       /* the next response */
	CHECK(text_neg_finish(&f.neg) == 0);
}

/* ---- whole logins as real targets answer ---- */

/* tgtd: TargetPortalGroupTag before AuthMethod; in the operational stage
 * it answers every key in our order with its own defaults (InitialR2T=Yes,
 * MaxOutstandingR2T=1) and declares its MaxRecvDataSegmentLength. */
static void test_tgtd_login(void)
{
	struct fixture f;

	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG("TargetPortalGroupTag=1\0AuthMethod=None\0"),
				&f.out) == 0);
	CHECK_EQ_U64(f.out.len, 0);
	CHECK(text_neg_finish(&f.neg) == 0);

	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK_EQ_U64(buf_pairs(&f.out), 14);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG(
		"HeaderDigest=None\0DataDigest=None\0MaxConnections=1\0"
		"InitialR2T=Yes\0ImmediateData=Yes\0MaxBurstLength=131072\0"
		"FirstBurstLength=65536\0DefaultTime2Wait=2\0"
		"DefaultTime2Retain=0\0MaxOutstandingR2T=1\0"
		"DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0"
		"ErrorRecoveryLevel=0\0MaxRecvDataSegmentLength=8192\0"),
		&f.out) == 0);
	CHECK_EQ_U64(f.out.len, 0);
	CHECK(text_neg_finish(&f.neg) == 0);

	const struct iscsi_params *p = &f.params;
	CHECK(!p->header_digest && !p->data_digest);
	CHECK(p->initial_r2t);
	CHECK(p->immediate_data);
	CHECK_EQ_U64(p->max_recv_dsl, 262144);
	CHECK_EQ_U64(p->max_xmit_dsl, 8192);
	CHECK_EQ_U64(p->max_burst_length, 131072);
	CHECK_EQ_U64(p->first_burst_length, 65536);
	CHECK_EQ_U64(p->default_time2wait, 2);
	CHECK_EQ_U64(p->default_time2retain, 0);
	CHECK_EQ_U64(p->max_outstanding_r2t, 1);
	CHECK_EQ_U64(p->error_recovery_level, 0);
	CHECK(p->has_tpgt && p->target_portal_group_tag == 1);
	CHECK_STR(p->auth_method, "None");
}

/* istgt: TargetAlias with the security answers; operational answers over
 * two responses (the first not final), smaller bursts, MaxOutstandingR2T
 * lowered, digests granted, and offers of its own (OFMarker, an unknown
 * key, MaxRecvDataSegmentLength). */
static void test_istgt_login(void)
{
	struct fixture f;

	fx_init(&f, NULL);
	f.cfg.initiator_alias = "iscsifs";
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG(
		"TargetAlias=istgt disk1\0TargetPortalGroupTag=1\0AuthMethod=None\0"),
		&f.out) == 0);
	CHECK(text_neg_finish(&f.neg) == 0);

	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG(
		"HeaderDigest=CRC32C\0DataDigest=None\0MaxConnections=1\0"
		"InitialR2T=No\0ImmediateData=Yes\0MaxBurstLength=65536\0"
		"FirstBurstLength=16384\0OFMarker=No\0X-org.istgt.Queue=32\0"),
		&f.out) == 0);
	CHECK_STR(buf_get(&f.out, "OFMarker"), "Reject");
	CHECK_STR(buf_get(&f.out, "X-org.istgt.Queue"), "NotUnderstood");
	CHECK_EQ_U64(buf_pairs(&f.out), 2);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG(
		"DefaultTime2Wait=2\0DefaultTime2Retain=0\0MaxOutstandingR2T=4\0"
		"DataPDUInOrder=Yes\0DataSequenceInOrder=Yes\0ErrorRecoveryLevel=0\0"
		"MaxRecvDataSegmentLength=262144\0"), &f.out) == 0);
	CHECK_EQ_U64(f.out.len, 0);
	CHECK(text_neg_finish(&f.neg) == 0);

	const struct iscsi_params *p = &f.params;
	CHECK(p->header_digest && !p->data_digest);
	CHECK(!p->initial_r2t && p->immediate_data);
	CHECK_EQ_U64(p->max_xmit_dsl, 262144);
	CHECK_EQ_U64(p->max_burst_length, 65536);
	CHECK_EQ_U64(p->first_burst_length, 16384);
	CHECK_EQ_U64(p->max_outstanding_r2t, 4);
	CHECK_STR(p->target_alias, "istgt disk1");
}

/* A discovery session: only digests and MaxRecvDataSegmentLength. */
static void test_discovery_login(void)
{
	struct fixture f;

	fx_init(&f, tw_discovery);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	CHECK(buf_get(&f.out, "TargetName") == NULL);
	CHECK_STR(buf_get(&f.out, "SessionType"), "Discovery");
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG("TargetPortalGroupTag=1\0AuthMethod=None\0"),
				&f.out) == 0);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK_EQ_U64(buf_pairs(&f.out), 3);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG(
		"HeaderDigest=None\0DataDigest=None\0MaxRecvDataSegmentLength=32768\0"
		"MaxBurstLength=262144\0"), &f.out) == 0);
	CHECK_STR(buf_get(&f.out, "MaxBurstLength"), "Irrelevant");
	CHECK(text_neg_finish(&f.neg) == 0);
	CHECK_EQ_U64(f.params.max_xmit_dsl, 32768);
}

/* A key the target offered in the security stage is not offered again. */
static void test_offer_after_target(void)
{
	struct fixture f;

	fx_init(&f, NULL);
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_SECURITY, &f.out) == 0);
	f.out.len = 0;
	CHECK(text_neg_response(&f.neg, SEG(
		"AuthMethod=None\0MaxBurstLength=65536\0MaxRecvDataSegmentLength=8192\0"),
		&f.out) == 0);
	CHECK_STR(buf_get(&f.out, "MaxBurstLength"), "65536");
	f.out.len = 0;
	CHECK(text_neg_offer(&f.neg, ISCSI_STAGE_OPERATIONAL, &f.out) == 0);
	CHECK(buf_get(&f.out, "MaxBurstLength") == NULL);
	/* both sides declare their own MaxRecvDataSegmentLength */
	CHECK_STR(buf_get(&f.out, "MaxRecvDataSegmentLength"), "262144");
	CHECK_EQ_U64(buf_pairs(&f.out), 13);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	test_defaults();
	test_buf();
	test_numbers();
	test_iter_good();
	test_iter_limits();
	test_iter_bad();
	test_offer_security();
	test_offer_operational();
	test_offer_errors();
	test_pairs();
	test_response_errors();
	test_flood();
	test_security();
	test_finish();
	test_tgtd_login();
	test_istgt_login();
	test_discovery_login();
	test_offer_after_target();
	return test_done("test_text");
}
