/* text.c: iSCSI key=value text: the strict iterator over what a target
 * sends and the negotiation of login and text keys (RFC 7143 sections 6
 * and 13), driven by one table with a row per key.
 *
 * Owns: the key table (name, result function, where the target may send
 * it, our value, where the outcome is stored), the parsing rules for
 * numbers and booleans, and what we answer to keys the target offers.
 *
 * Thread model: pure.  The only static data is the constant key table;
 * every call works on caller-owned structures.
 *
 * Decisions where RFC 7143 leaves room (see also text.h):
 * - The final pair must end in a NUL (6.1: "every key=value pair,
 *   including the last or only pair ..., MUST be followed by one null").
 *   NUL bytes after the last pair are accepted as padding; an empty pair
 *   between two pairs is malformed.
 * - Key names: letters, digits and . - + @ _ up to 63 characters.  The
 *   "begins with a capital letter" rule is not enforced: the RFC's own
 *   iSCSIProtocolLevel breaks it.
 * - Numbers: decimal without sign or leading zero, or 0x/0X hex, below
 *   2^64 (6.1 numerical-value).  Base64 (0b) is refused: no key we store
 *   needs it.
 * - A key the target sends twice in one negotiation is a protocol error,
 *   except TargetAddress.  Unknown keys are not tracked for repeats;
 *   their NotUnderstood answers are capped at TEXT_MAX_NOT_UNDERSTOOD.
 * - A target's own offer with a value out of the key's range is answered
 *   Reject (6.2.2 allows it); an answer to our offer out of range, or
 *   against the result function, fails the negotiation.
 * - Reject, Irrelevant or NotUnderstood answering our offer keeps the
 *   current value, except for AuthMethod (no way to log in).
 * - An unanswered offer fails at text_neg_finish() unless the RFC makes
 *   the answer optional (6.2.2: AND offered No, OR offered Yes).
 * - Keys only an initiator sends (InitiatorName, SessionType, ...) are
 *   ignored when a target echoes them.
 * - IFMarker/OFMarker/IFMarkInt/OFMarkInt (obsolete, 13.26) are answered
 *   Reject, as RFC 7143 recommends (SHOULD for the markers, MUST for the
 *   intervals).
 * - A list the target offers is answered with its first item we accept,
 *   in the target's order (6.2.1), even under DIGEST_PREF_AUTO.
 */
#include "text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "wire.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* RFC 7143 4.2.7.1 (after RFC 3720 3.2.6.1): iSCSI names are at most
 * 223 bytes. */
#define ISCSI_NAME_MAX 223

/* The result function of a key (RFC 7143 6.2). */
enum key_type {
	KT_LIST,     /* list of values: the answer is one of the offered */
	KT_AND,      /* boolean, result is the AND of both values */
	KT_OR,       /* boolean, result is the OR of both values */
	KT_MIN,      /* numerical, result is the smaller value */
	KT_MAX,      /* numerical, result is the larger value */
	KT_DECL_NUM, /* declarative number: each side states its own, no answer */
	KT_DECL_STR, /* declarative string, no answer */
	KT_OBSOLETE, /* RFC 3720 marker keys: answered Reject (13.26) */
};

/* Where the target may send a key: one bit per phase. */
enum {
	PH_SEC = 1 << 0,             /* login, security negotiation stage */
	PH_OPER = 1 << 1,            /* login, operational negotiation stage */
	PH_FFP = 1 << 2,             /* full feature phase (Text Response) */
	PH_LOGIN = PH_SEC | PH_OPER, /* either login stage */
	PH_ALL = PH_LOGIN | PH_FFP,  /* anywhere */
};

/* Per-key properties. */
enum {
	F_OFFER_DISC = 1 << 0,      /* we offer it in discovery sessions too */
	F_IRRELEVANT_DISC = 1 << 1, /* irrelevant to discovery: answer Irrelevant */
	F_REPEATABLE = 1 << 2,      /* may be sent more than once (TargetAddress) */
	F_INITIATOR_ONLY = 1 << 3,  /* only an initiator sends it: ignored from a target */
	F_MUST_AGREE = 1 << 4,      /* Reject/Irrelevant/NotUnderstood answer fails */
};

/* When we offer a key. */
enum offer_stage {
	OFFER_NEVER,       /* only answered, never offered */
	OFFER_SECURITY,    /* in the security stage */
	OFFER_OPERATIONAL, /* in the operational stage */
};

/* Where our value of a key comes from. */
enum ours_src {
	OURS_NONE,         /* we have no value (we never send it) */
	OURS_FIXED,        /* the row's fixed string */
	OURS_CFG_STR,      /* a const char * in struct text_config; NULL: not sent */
	OURS_CFG_U32,      /* a uint32_t in struct text_config, in decimal */
	OURS_CFG_BOOL,     /* a bool in struct text_config, as Yes/No */
	OURS_DIGEST,       /* an enum digest_pref in struct text_config, as a list */
	OURS_SESSION_TYPE, /* "Discovery" or "Normal" from text_config.discovery */
	OURS_AUTH_METHOD,  /* "CHAP,None" with text_config.chap set, else "None" */
};

/* How the outcome is stored in struct iscsi_params. */
enum par_kind {
	PAR_NONE,   /* not stored */
	PAR_BOOL,   /* a bool */
	PAR_DIGEST, /* a bool, true for the value "CRC32C" */
	PAR_U32,    /* a uint32_t */
	PAR_TPGT,   /* target_portal_group_tag and has_tpgt */
	PAR_STR,    /* a char array of par_size bytes */
};

/* One row of the key table. */
struct key_def {
	const char *name;      /* the key as it travels (keys are case-sensitive) */
	enum key_type type;    /* its result function */
	unsigned phases;       /* PH_* bits: where the target may send it */
	unsigned flags;        /* F_* bits */
	enum offer_stage offer; /* when we offer it */
	uint64_t min, max;     /* range of KT_MIN, KT_MAX, KT_DECL_NUM values */
	enum ours_src ours;    /* where our value comes from */
	const char *fixed;     /* OURS_FIXED: our value */
	size_t cfg_off;        /* OURS_CFG_*, OURS_DIGEST: offset in struct text_config */
	enum par_kind par;     /* how the outcome is stored */
	size_t par_off;        /* offset of the outcome in struct iscsi_params */
	size_t par_size;       /* PAR_STR: size of the array */
};

#define CFG(field) .cfg_off = offsetof(struct text_config, field)
#define PAR(kind, field) .par = (kind), .par_off = offsetof(struct iscsi_params, field)
#define PAR_ARRAY(field) PAR(PAR_STR, field), \
	.par_size = sizeof(((struct iscsi_params *)0)->field)
#define RANGE(lo, hi) .min = (lo), .max = (hi)

/* Every key we know (RFC 7143 sections 12 and 13).  Our offers go out in
 * this order. */
static const struct key_def keys[] = {
	/* security stage: who we are, what we want */
	{ "InitiatorName", KT_DECL_STR, PH_LOGIN, F_OFFER_DISC | F_INITIATOR_ONLY,
	  OFFER_SECURITY, .ours = OURS_CFG_STR, CFG(initiator_name) },
	{ "InitiatorAlias", KT_DECL_STR, PH_ALL, F_OFFER_DISC | F_INITIATOR_ONLY,
	  OFFER_SECURITY, .ours = OURS_CFG_STR, CFG(initiator_alias) },
	{ "SessionType", KT_DECL_STR, PH_LOGIN, F_OFFER_DISC | F_INITIATOR_ONLY,
	  OFFER_SECURITY, .ours = OURS_SESSION_TYPE },
	{ "TargetName", KT_DECL_STR, PH_ALL, 0,
	  OFFER_SECURITY, .ours = OURS_CFG_STR, CFG(target_name) },
	{ "AuthMethod", KT_LIST, PH_SEC, F_OFFER_DISC | F_MUST_AGREE,
	  OFFER_SECURITY, .ours = OURS_AUTH_METHOD, PAR_ARRAY(auth_method) },

	/* operational stage */
	{ "HeaderDigest", KT_LIST, PH_LOGIN, F_OFFER_DISC,
	  OFFER_OPERATIONAL, .ours = OURS_DIGEST, CFG(header_digest),
	  PAR(PAR_DIGEST, header_digest) },
	{ "DataDigest", KT_LIST, PH_LOGIN, F_OFFER_DISC,
	  OFFER_OPERATIONAL, .ours = OURS_DIGEST, CFG(data_digest),
	  PAR(PAR_DIGEST, data_digest) },
	{ "MaxConnections", KT_MIN, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, RANGE(1, 65535), .ours = OURS_FIXED, .fixed = "1",
	  PAR(PAR_U32, max_connections) },
	{ "InitialR2T", KT_OR, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, .ours = OURS_CFG_BOOL, CFG(initial_r2t),
	  PAR(PAR_BOOL, initial_r2t) },
	{ "ImmediateData", KT_AND, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, .ours = OURS_CFG_BOOL, CFG(immediate_data),
	  PAR(PAR_BOOL, immediate_data) },
	/* Declared by each side for itself: the target's value limits what we
	 * send.  Ours is recorded in max_recv_dsl by text_neg_offer(). */
	{ "MaxRecvDataSegmentLength", KT_DECL_NUM, PH_ALL, F_OFFER_DISC,
	  OFFER_OPERATIONAL, RANGE(512, 16777215), .ours = OURS_CFG_U32,
	  CFG(max_recv_dsl), PAR(PAR_U32, max_xmit_dsl) },
	{ "MaxBurstLength", KT_MIN, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, RANGE(512, 16777215), .ours = OURS_CFG_U32,
	  CFG(max_burst_length), PAR(PAR_U32, max_burst_length) },
	{ "FirstBurstLength", KT_MIN, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, RANGE(512, 16777215), .ours = OURS_CFG_U32,
	  CFG(first_burst_length), PAR(PAR_U32, first_burst_length) },
	{ "DefaultTime2Wait", KT_MAX, PH_LOGIN, 0,
	  OFFER_OPERATIONAL, RANGE(0, 3600), .ours = OURS_FIXED, .fixed = "2",
	  PAR(PAR_U32, default_time2wait) },
	/* 0: with ErrorRecoveryLevel 0 nothing survives a lost connection */
	{ "DefaultTime2Retain", KT_MIN, PH_LOGIN, 0,
	  OFFER_OPERATIONAL, RANGE(0, 3600), .ours = OURS_FIXED, .fixed = "0",
	  PAR(PAR_U32, default_time2retain) },
	{ "MaxOutstandingR2T", KT_MIN, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, RANGE(1, 65535), .ours = OURS_CFG_U32,
	  CFG(max_outstanding_r2t), PAR(PAR_U32, max_outstanding_r2t) },
	{ "DataPDUInOrder", KT_OR, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, .ours = OURS_FIXED, .fixed = "Yes",
	  PAR(PAR_BOOL, data_pdu_in_order) },
	{ "DataSequenceInOrder", KT_OR, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_OPERATIONAL, .ours = OURS_FIXED, .fixed = "Yes",
	  PAR(PAR_BOOL, data_sequence_in_order) },
	{ "ErrorRecoveryLevel", KT_MIN, PH_LOGIN, 0,
	  OFFER_OPERATIONAL, RANGE(0, 2), .ours = OURS_FIXED, .fixed = "0",
	  PAR(PAR_U32, error_recovery_level) },

	/* what the target declares */
	{ "TargetAlias", KT_DECL_STR, PH_ALL, 0,
	  OFFER_NEVER, PAR_ARRAY(target_alias) },
	{ "TargetPortalGroupTag", KT_DECL_NUM, PH_LOGIN, 0,
	  OFFER_NEVER, RANGE(0, 65535), PAR(PAR_TPGT, target_portal_group_tag) },
	/* in redirections and SendTargets; login and discovery read it with
	 * text_iter themselves */
	{ "TargetAddress", KT_DECL_STR, PH_ALL, F_REPEATABLE, OFFER_NEVER, .ours = OURS_NONE },
	{ "SendTargets", KT_DECL_STR, PH_FFP, F_INITIATOR_ONLY, OFFER_NEVER, .ours = OURS_NONE },

	/* only answered when a target offers them */
	{ "TaskReporting", KT_LIST, PH_LOGIN, F_IRRELEVANT_DISC,
	  OFFER_NEVER, .ours = OURS_FIXED, .fixed = "RFC3720" },
	/* we implement RFC 7143: level 1 */
	{ "iSCSIProtocolLevel", KT_MIN, PH_LOGIN, 0,
	  OFFER_NEVER, RANGE(0, 31), .ours = OURS_FIXED, .fixed = "1" },
	{ "IFMarker", KT_OBSOLETE, PH_LOGIN, 0, OFFER_NEVER, .ours = OURS_NONE },
	{ "OFMarker", KT_OBSOLETE, PH_LOGIN, 0, OFFER_NEVER, .ours = OURS_NONE },
	{ "IFMarkInt", KT_OBSOLETE, PH_LOGIN, 0, OFFER_NEVER, .ours = OURS_NONE },
	{ "OFMarkInt", KT_OBSOLETE, PH_LOGIN, 0, OFFER_NEVER, .ours = OURS_NONE },
};

_Static_assert(ARRAY_SIZE(keys) <= 64, "one bit per key in struct text_neg");

/* ---- small helpers ---- */

const char *text_shown_n(const void *s, size_t len, char buf[TEXT_SHOWN_SIZE])
{
	const unsigned char *p = s;
	size_t max = TEXT_SHOWN_SIZE - 4, i;

	for (i = 0; i < len && i < max; i++)
		buf[i] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	if (i < len) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

const char *text_shown(const char *s, char buf[TEXT_SHOWN_SIZE])
{
	return text_shown_n(s, strlen(s), buf);
}

/* Copy @s into @buf of @size bytes, cut short if needed. */
static void copy_str(char *buf, size_t size, const char *s)
{
	size_t len = strlen(s);

	if (len > size - 1)
		len = size - 1;
	memcpy(buf, s, len);
	buf[len] = '\0';
}

/* RFC 7143 6.1 key-name characters: letters, digits, . - + @ _ */
static bool key_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '+' ||
	       c == '@' || c == '_';
}

/* Numerical value per RFC 7143 6.1.  Returns 0 or -1 (no message). */
static int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		s += 2;
		if (*s == '\0')
			return -1;
		for (; *s; s++) {
			int d = hex_digit_value(*s);
			if (d < 0 || (v >> 60) != 0)
				return -1;
			v = v << 4 | (uint64_t)d;
		}
	} else {
		if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
			return -1;
		for (; *s; s++) {
			if (*s < '0' || *s > '9')
				return -1;
			uint64_t d = (uint64_t)(*s - '0');
			if (v > (UINT64_MAX - d) / 10)
				return -1;
			v = v * 10 + d;
		}
	}
	*out = v;
	return 0;
}

int text_parse_number(const char *key, const char *value, uint64_t *out)
{
	char vb[TEXT_SHOWN_SIZE];

	if (parse_u64(value, out) < 0) {
		err_set(EPROTO, "target sent %s=%s: not a decimal or 0x-hex number below 2^64",
			key, text_shown(value, vb));
		return -1;
	}
	return 0;
}

/* "Yes" or "No", exactly.  Returns 0 or -1 (no message). */
static int parse_bool(const char *s, bool *out)
{
	if (strcmp(s, "Yes") == 0)
		*out = true;
	else if (strcmp(s, "No") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

/* Is @item (of @len bytes) one of the comma-separated values of @list? */
static bool list_has(const char *list, const char *item, size_t len)
{
	const char *p = list;

	for (;;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);

		if (n == len && memcmp(p, item, len) == 0)
			return true;
		if (!comma)
			return false;
		p = comma + 1;
	}
}

/* Every item of a comma-separated list is 1..255 bytes. */
static bool list_well_formed(const char *list)
{
	for (const char *p = list;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == 0 || len > TEXT_MAX_SIMPLE_VALUE)
			return false;
		if (!comma)
			return true;
		p = comma + 1;
	}
}

/* The constants that are only answers (RFC 7143 6.2). */
static bool is_reserved(const char *v)
{
	return strcmp(v, "Reject") == 0 || strcmp(v, "Irrelevant") == 0 ||
	       strcmp(v, "NotUnderstood") == 0;
}

/* The PH_* bit of a stage. */
static unsigned phase_bit(enum iscsi_login_stage stage)
{
	switch (stage) {
	case ISCSI_STAGE_SECURITY: return PH_SEC;
	case ISCSI_STAGE_OPERATIONAL: return PH_OPER;
	default: return PH_FFP;
	}
}

/* A stage's name for messages. */
static const char *stage_name(enum iscsi_login_stage stage)
{
	switch (stage) {
	case ISCSI_STAGE_SECURITY: return "security negotiation stage";
	case ISCSI_STAGE_OPERATIONAL: return "operational negotiation stage";
	default: return "full feature phase";
	}
}

/* Row of the key table named @name (case-sensitive), or -1. */
static int find_key(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(keys[i].name, name) == 0)
			return (int)i;
	return -1;
}

/* Declarative keys are stated, never answered. */
static bool is_declarative(const struct key_def *k)
{
	return k->type == KT_DECL_NUM || k->type == KT_DECL_STR;
}

/* Our value of @k into @buf; false when we have none to send. */
static bool our_value(const struct text_neg *n, const struct key_def *k,
		      char *buf, size_t size)
{
	const char *cfg = (const char *)n->cfg;

	switch (k->ours) {
	case OURS_FIXED:
		copy_str(buf, size, k->fixed);
		return true;
	case OURS_CFG_STR: {
		const char *s = *(const char *const *)(cfg + k->cfg_off);
		if (!s)
			return false;
		copy_str(buf, size, s);
		return true;
	}
	case OURS_CFG_U32:
		snprintf(buf, size, "%" PRIu32, *(const uint32_t *)(cfg + k->cfg_off));
		return true;
	case OURS_CFG_BOOL:
		copy_str(buf, size, *(const bool *)(cfg + k->cfg_off) ? "Yes" : "No");
		return true;
	case OURS_DIGEST:
		switch (*(const enum digest_pref *)(cfg + k->cfg_off)) {
		case DIGEST_PREF_CRC32C: copy_str(buf, size, "CRC32C"); break;
		case DIGEST_PREF_AUTO: copy_str(buf, size, "None,CRC32C"); break;
		default: copy_str(buf, size, "None"); break;
		}
		return true;
	case OURS_SESSION_TYPE:
		copy_str(buf, size, n->cfg->discovery ? "Discovery" : "Normal");
		return true;
	case OURS_AUTH_METHOD:
		copy_str(buf, size, n->cfg->chap ? "CHAP,None" : "None");
		return true;
	case OURS_NONE:
		break;
	}
	return false;
}

/* ---- storing outcomes ---- */

/* Store a boolean outcome (PAR_BOOL rows). */
static void store_bool(struct text_neg *n, const struct key_def *k, bool v)
{
	if (k->par == PAR_BOOL)
		*(bool *)((char *)n->params + k->par_off) = v;
}

/* Store a numerical outcome (PAR_U32, PAR_TPGT rows). */
static void store_num(struct text_neg *n, const struct key_def *k, uint64_t v)
{
	char *p = (char *)n->params + k->par_off;

	/* the table's ranges keep every value within 32 (or 16) bits */
	if (k->par == PAR_U32) {
		*(uint32_t *)p = (uint32_t)v;
	} else if (k->par == PAR_TPGT) {
		n->params->target_portal_group_tag = (uint16_t)v;
		n->params->has_tpgt = true;
	}
}

/* Store a chosen value (PAR_DIGEST, PAR_STR rows). */
static void store_str(struct text_neg *n, const struct key_def *k, const char *v)
{
	char *p = (char *)n->params + k->par_off;

	if (k->par == PAR_DIGEST)
		*(bool *)p = strcmp(v, "CRC32C") == 0;
	else if (k->par == PAR_STR)
		copy_str(p, k->par_size, v);
}

/* ---- public: params and buffers ---- */

void text_params_defaults(struct iscsi_params *p)
{
	memset(p, 0, sizeof *p);
	p->header_digest = false;
	p->data_digest = false;
	p->max_connections = 1;
	p->initial_r2t = true;
	p->immediate_data = true;
	p->max_recv_dsl = 8192;
	p->max_xmit_dsl = 8192;
	p->max_burst_length = 262144;
	p->first_burst_length = 65536;
	p->default_time2wait = 2;
	p->default_time2retain = 20;
	p->max_outstanding_r2t = 1;
	p->data_pdu_in_order = true;
	p->data_sequence_in_order = true;
	p->error_recovery_level = 0;
	p->has_tpgt = false;
}

void text_buf_init(struct text_buf *b, uint8_t *storage, size_t cap)
{
	b->data = storage;
	b->len = 0;
	b->cap = cap;
}

int text_buf_add(struct text_buf *b, const char *key, const char *value)
{
	size_t klen = strlen(key), vlen = strlen(value);

	if (klen == 0 || klen > TEXT_MAX_KEY || vlen > TEXT_MAX_VALUE) {
		err_set(EINVAL, "cannot send key %.*s: key or value too long or empty",
			TEXT_MAX_KEY, key);
		return -1;
	}
	/* both lengths are bounded above, so this cannot overflow */
	if (b->len > b->cap || b->cap - b->len < klen + vlen + 2) {
		err_set(EMSGSIZE, "no room for %s=... in a %zu-byte text buffer",
			key, b->cap);
		return -1;
	}
	memcpy(b->data + b->len, key, klen);
	b->data[b->len + klen] = '=';
	memcpy(b->data + b->len + klen + 1, value, vlen);
	b->data[b->len + klen + 1 + vlen] = '\0';
	b->len += klen + vlen + 2;
	return 0;
}

/* ---- public: iterator ---- */

void text_iter_init(struct text_iter *it, const uint8_t *data, size_t len)
{
	it->p = data;
	it->end = data + len;
	it->failed = false;
	it->key[0] = '\0';
}

/* Mark the iterator failed; returns -1. */
static int iter_fail(struct text_iter *it)
{
	it->failed = true;
	return -1;
}

int text_iter_next(struct text_iter *it, const char **key, const char **value)
{
	char vb[TEXT_SHOWN_SIZE];
	const uint8_t *p = it->p, *nul, *eq;
	size_t klen, vlen;

	if (it->failed) {
		err_set(EPROTO, "malformed text from the target");
		return -1;
	}
	if (p == it->end)
		return 0;
	nul = memchr(p, '\0', (size_t)(it->end - p));
	if (!nul) {
		err_set(EPROTO, "text from the target does not end in a NUL: \"%s\"",
			text_shown_n(p, (size_t)(it->end - p), vb));
		return iter_fail(it);
	}
	if (nul == p) {
		/* NUL padding after the last pair ends the text; an empty
		 * pair anywhere else is malformed */
		for (const uint8_t *q = p; q < it->end; q++) {
			if (*q != '\0') {
				err_set(EPROTO, "empty key=value pair in text from the target");
				return iter_fail(it);
			}
		}
		it->p = it->end;
		return 0;
	}
	eq = memchr(p, '=', (size_t)(nul - p));
	if (!eq) {
		err_set(EPROTO, "text from the target has a pair without '=': \"%s\"",
			text_shown_n(p, (size_t)(nul - p), vb));
		return iter_fail(it);
	}
	klen = (size_t)(eq - p);
	vlen = (size_t)(nul - eq - 1);
	if (klen == 0) {
		err_set(EPROTO, "text from the target has a pair with an empty key: \"%s\"",
			text_shown_n(p, (size_t)(nul - p), vb));
		return iter_fail(it);
	}
	if (klen > TEXT_MAX_KEY) {
		err_set(EPROTO, "target sent a %zu-character key, over the %d RFC 7143 allows: \"%s\"",
			klen, TEXT_MAX_KEY, text_shown_n(p, klen, vb));
		return iter_fail(it);
	}
	for (size_t i = 0; i < klen; i++) {
		if (!key_char_ok(p[i])) {
			err_set(EPROTO, "target sent key \"%s\" with a character RFC 7143 does not allow in a key name",
				text_shown_n(p, klen, vb));
			return iter_fail(it);
		}
	}
	if (vlen > TEXT_MAX_VALUE) {
		err_set(EPROTO, "target sent a %zu-byte value for %s, over the %d we accept",
			vlen, text_shown_n(p, klen, vb), TEXT_MAX_VALUE);
		return iter_fail(it);
	}
	memcpy(it->key, p, klen);
	it->key[klen] = '\0';
	*key = it->key;
	*value = (const char *)eq + 1;
	it->p = nul + 1;
	return 1;
}

/* ---- public: negotiation ---- */

void text_neg_init(struct text_neg *n, const struct text_config *cfg,
		   struct iscsi_params *params)
{
	memset(n, 0, sizeof *n);
	n->cfg = cfg;
	n->params = params;
	n->stage = ISCSI_STAGE_SECURITY;
}

/* A configured number within lo..hi, else EINVAL. */
static int check_u32(const char *what, uint32_t v, uint32_t lo, uint32_t hi)
{
	if (v < lo || v > hi) {
		err_set(EINVAL, "%s %" PRIu32 " is outside %" PRIu32 "..%" PRIu32,
			what, v, lo, hi);
		return -1;
	}
	return 0;
}

/* A configured name present and at most @max bytes, else EINVAL. */
static int check_name(const char *what, const char *s, size_t max)
{
	if (!s || !*s) {
		err_set(EINVAL, "no %s to log in with", what);
		return -1;
	}
	if (strlen(s) > max) {
		err_set(EINVAL, "%s is longer than %zu bytes", what, max);
		return -1;
	}
	return 0;
}

/* One of the enum digest_pref values. */
static bool digest_pref_ok(enum digest_pref d)
{
	return d == DIGEST_PREF_NONE || d == DIGEST_PREF_CRC32C || d == DIGEST_PREF_AUTO;
}

/* Is the configuration usable for the offers of @stage? */
static int check_config(const struct text_config *c, enum iscsi_login_stage stage)
{
	if (stage == ISCSI_STAGE_SECURITY) {
		if (check_name("initiator name", c->initiator_name, ISCSI_NAME_MAX) < 0)
			return -1;
		if (c->initiator_alias &&
		    strlen(c->initiator_alias) > TEXT_MAX_SIMPLE_VALUE) {
			err_set(EINVAL, "initiator alias is longer than %d bytes",
				TEXT_MAX_SIMPLE_VALUE);
			return -1;
		}
		if (!c->discovery &&
		    check_name("target name", c->target_name, ISCSI_NAME_MAX) < 0)
			return -1;
		return 0;
	}
	if (!digest_pref_ok(c->header_digest) || !digest_pref_ok(c->data_digest)) {
		err_set(EINVAL, "unknown digest preference");
		return -1;
	}
	if (check_u32("MaxRecvDataSegmentLength", c->max_recv_dsl, 512, 16777215) < 0)
		return -1;
	if (c->discovery)
		return 0;
	if (check_u32("MaxBurstLength", c->max_burst_length, 512, 16777215) < 0 ||
	    check_u32("FirstBurstLength", c->first_burst_length, 512,
		      c->max_burst_length) < 0 ||
	    check_u32("MaxOutstandingR2T", c->max_outstanding_r2t, 1, 65535) < 0)
		return -1;
	return 0;
}

int text_neg_offer(struct text_neg *n, enum iscsi_login_stage stage,
		   struct text_buf *out)
{
	char val[TEXT_MAX_SIMPLE_VALUE + 1];
	enum offer_stage want;
	size_t saved_len = out->len;
	uint64_t offered = n->offered;

	switch (stage) {
	case ISCSI_STAGE_SECURITY:
		want = OFFER_SECURITY;
		break;
	case ISCSI_STAGE_OPERATIONAL:
		want = OFFER_OPERATIONAL;
		break;
	case ISCSI_STAGE_FULL_FEATURE:
		n->stage = stage;
		return 0;
	default:
		err_set(EINVAL, "no login stage %d", (int)stage);
		return -1;
	}
	if (check_config(n->cfg, stage) < 0)
		return -1;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key_def *k = &keys[i];
		uint64_t bit = UINT64_C(1) << i;

		if (k->offer != want || (offered & bit))
			continue;
		if (n->cfg->discovery && !(k->flags & F_OFFER_DISC))
			continue;
		/* the target offered it first and we answered */
		if (!is_declarative(k) && (n->received & bit))
			continue;
		if (!our_value(n, k, val, sizeof val))
			continue;
		if (text_buf_add(out, k->name, val) < 0) {
			out->len = saved_len;
			return -1;
		}
		offered |= bit;
	}
	n->offered = offered;
	n->stage = stage;
	if (stage == ISCSI_STAGE_OPERATIONAL)
		n->params->max_recv_dsl = n->cfg->max_recv_dsl; /* just declared */
	return 0;
}

/* A key the target sent that is not in the table. */
static int answer_unknown(struct text_neg *n, const char *key, const char *value,
			  struct text_buf *out)
{
	char vb[TEXT_SHOWN_SIZE];

	if (is_reserved(value)) {
		err_set(EPROTO, "target answered %s=%s, a key we never sent", key, value);
		return -1;
	}
	if (n->not_understood >= TEXT_MAX_NOT_UNDERSTOOD) {
		err_set(EPROTO, "target sent more than %d keys we do not understand (the last %s=%s)",
			TEXT_MAX_NOT_UNDERSTOOD, key, text_shown(value, vb));
		return -1;
	}
	n->not_understood++;
	log_debug("text: answering %s=NotUnderstood", key);
	return text_buf_add(out, key, "NotUnderstood");
}

/* A declaration from the target (no answer). */
static int take_declaration(struct text_neg *n, const struct key_def *k,
			    uint64_t bit, const char *value)
{
	char vb[TEXT_SHOWN_SIZE];
	uint64_t v;

	if (is_reserved(value)) {
		if (n->offered & bit) {
			/* an answer to our own declaration: nothing changes */
			log_debug("text: target answered our %s with %s", k->name, value);
			return 0;
		}
		err_set(EPROTO, "target declared %s=%s, a constant that is only an answer",
			k->name, value);
		return -1;
	}
	if (k->type == KT_DECL_STR) {
		if (strlen(value) > TEXT_MAX_SIMPLE_VALUE) {
			err_set(EPROTO, "target sent a %zu-byte %s, over the %d RFC 7143 allows",
				strlen(value), k->name, TEXT_MAX_SIMPLE_VALUE);
			return -1;
		}
		store_str(n, k, value);
		return 0;
	}
	if (text_parse_number(k->name, value, &v) < 0)
		return -1;
	if (v < k->min || v > k->max) {
		err_set(EPROTO, "target declared %s=%s, outside %" PRIu64 "..%" PRIu64,
			k->name, text_shown(value, vb), k->min, k->max);
		return -1;
	}
	store_num(n, k, v);
	return 0;
}

/* The target's answer to our offer of @k. */
static int take_answer(struct text_neg *n, const struct key_def *k, uint64_t bit,
		       const char *value)
{
	char ours[TEXT_MAX_SIMPLE_VALUE + 1], vb[TEXT_SHOWN_SIZE];
	uint64_t v, o;
	bool bv, bo = false;

	n->answered |= bit;
	our_value(n, k, ours, sizeof ours);
	if (is_reserved(value)) {
		if (k->flags & F_MUST_AGREE) {
			err_set(EACCES, "target answered %s=%s to our offer %s",
				k->name, value, ours);
			return -1;
		}
		if (strcmp(value, "NotUnderstood") == 0)
			log_warn("target does not understand %s=%s; keeping the default",
				 k->name, ours);
		else
			log_debug("text: target answered %s=%s; keeping the default",
				  k->name, value);
		return 0;
	}
	if (strlen(value) > TEXT_MAX_SIMPLE_VALUE) {
		err_set(EPROTO, "target answered %s with a %zu-byte value, over the %d RFC 7143 allows",
			k->name, strlen(value), TEXT_MAX_SIMPLE_VALUE);
		return -1;
	}

	switch (k->type) {
	case KT_LIST:
		if (strchr(value, ',') || !list_has(ours, value, strlen(value))) {
			err_set(EPROTO, "target answered %s=%s, not one of the values we offered (%s)",
				k->name, text_shown(value, vb), ours);
			return -1;
		}
		store_str(n, k, value);
		return 0;
	case KT_AND:
	case KT_OR:
		if (parse_bool(value, &bv) < 0) {
			err_set(EPROTO, "target answered %s=%s; a boolean is Yes or No",
				k->name, text_shown(value, vb));
			return -1;
		}
		parse_bool(ours, &bo);
		if (k->type == KT_AND && !bo && bv) {
			err_set(EPROTO, "target answered %s=Yes to our No (result function AND)",
				k->name);
			return -1;
		}
		if (k->type == KT_OR && bo && !bv) {
			err_set(EPROTO, "target answered %s=No to our Yes (result function OR)",
				k->name);
			return -1;
		}
		store_bool(n, k, bv);
		return 0;
	case KT_MIN:
	case KT_MAX:
		if (text_parse_number(k->name, value, &v) < 0)
			return -1;
		if (v < k->min || v > k->max) {
			err_set(EPROTO, "target answered %s=%s, outside %" PRIu64 "..%" PRIu64,
				k->name, text_shown(value, vb), k->min, k->max);
			return -1;
		}
		parse_u64(ours, &o);
		if (k->type == KT_MIN && v > o) {
			err_set(EPROTO, "target answered %s=%s, above our offer %s (result function Minimum)",
				k->name, text_shown(value, vb), ours);
			return -1;
		}
		if (k->type == KT_MAX && v < o) {
			err_set(EPROTO, "target answered %s=%s, below our offer %s (result function Maximum)",
				k->name, text_shown(value, vb), ours);
			return -1;
		}
		store_num(n, k, v);
		return 0;
	default:
		/* declarative and obsolete keys are never offered */
		return 0;
	}
}

/* A key the target offers: work out the outcome and answer it. */
static int answer_offer(struct text_neg *n, const struct key_def *k, uint64_t bit,
			const char *value, struct text_buf *out)
{
	char ours[TEXT_MAX_SIMPLE_VALUE + 1], num[24], vb[TEXT_SHOWN_SIZE];
	uint64_t v, o;
	bool bv, bo = false;

	if (is_reserved(value)) {
		err_set(EPROTO, "target offered %s=%s, a constant that is only an answer",
			k->name, value);
		return -1;
	}
	n->answered |= bit;
	if (k->type == KT_OBSOLETE) {
		log_debug("text: answering obsolete key %s with Reject", k->name);
		return text_buf_add(out, k->name, "Reject");
	}
	if (n->cfg->discovery && (k->flags & F_IRRELEVANT_DISC))
		return text_buf_add(out, k->name, "Irrelevant");
	our_value(n, k, ours, sizeof ours);

	switch (k->type) {
	case KT_LIST:
		if (!list_well_formed(value)) {
			err_set(EPROTO, "target offered %s=%s, a malformed list",
				k->name, text_shown(value, vb));
			return -1;
		}
		n->owed |= bit;     /* its choice, or Reject */
		/* its first value we support, in its order of preference */
		for (const char *p = value;;) {
			const char *comma = strchr(p, ',');
			size_t len = comma ? (size_t)(comma - p) : strlen(p);

			if (list_has(ours, p, len)) {
				char choice[TEXT_MAX_SIMPLE_VALUE + 1];
				memcpy(choice, p, len);
				choice[len] = '\0';
				store_str(n, k, choice);
				return text_buf_add(out, k->name, choice);
			}
			if (!comma)
				break;
			p = comma + 1;
		}
		log_warn("target offered %s=%s; we support only %s: answering Reject",
			 k->name, text_shown(value, vb), ours);
		return text_buf_add(out, k->name, "Reject");
	case KT_AND:
	case KT_OR:
		if (parse_bool(value, &bv) < 0) {
			err_set(EPROTO, "target offered %s=%s; a boolean is Yes or No",
				k->name, text_shown(value, vb));
			return -1;
		}
		parse_bool(ours, &bo);
		/* (AND offered No, OR offered Yes: the outcome is its value) */
		if (k->type == KT_AND ? bv : !bv)
			n->owed |= bit;
		bv = k->type == KT_AND ? (bv && bo) : (bv || bo);
		store_bool(n, k, bv);
		return text_buf_add(out, k->name, bv ? "Yes" : "No");
	case KT_MIN:
	case KT_MAX:
		if (text_parse_number(k->name, value, &v) < 0)
			return -1;
		n->owed |= bit;
		if (v < k->min || v > k->max) {
			log_warn("target offered %s=%s, outside %" PRIu64 "..%" PRIu64 ": answering Reject",
				 k->name, text_shown(value, vb), k->min, k->max);
			return text_buf_add(out, k->name, "Reject");
		}
		parse_u64(ours, &o);
		if (k->type == KT_MIN ? o < v : o > v)
			v = o;
		store_num(n, k, v);
		snprintf(num, sizeof num, "%" PRIu64, v);
		return text_buf_add(out, k->name, num);
	default:
		return 0;
	}
}

/* Key @key came in a stage where it cannot: -1 with err_set(). */
static int refuse_stage(const struct text_neg *n, const char *key, const char *value)
{
	char vb[TEXT_SHOWN_SIZE];

	err_set(EPROTO, "target sent %s=%s in the %s, where RFC 7143 does not allow it",
		key, text_shown(value, vb), stage_name(n->stage));
	return -1;
}

/* One key=value from the target. */
static int take_pair(struct text_neg *n, const char *key, const char *value,
		     struct text_buf *out)
{
	char vb[TEXT_SHOWN_SIZE];
	const struct key_def *k;
	uint64_t bit;
	int i;

	if (strncmp(key, "CHAP_", 5) == 0) {
		if (n->stage == ISCSI_STAGE_SECURITY)
			return 0;       /* the CHAP module reads these */
		return refuse_stage(n, key, value);
	}
	i = find_key(key);
	if (i < 0)
		return answer_unknown(n, key, value, out);
	k = &keys[i];
	bit = UINT64_C(1) << i;

	if ((n->received & bit) && !(k->flags & F_REPEATABLE)) {
		err_set(EPROTO, "target sent %s twice in one negotiation (again as %s=%s)",
			k->name, k->name, text_shown(value, vb));
		return -1;
	}
	n->received |= bit;
	if (!(k->phases & phase_bit(n->stage)))
		return refuse_stage(n, k->name, value);
	if (k->flags & F_INITIATOR_ONLY) {
		log_debug("text: ignoring %s from the target", k->name);
		return 0;
	}
	if (is_declarative(k))
		return take_declaration(n, k, bit, value);
	if (n->offered & bit)
		return take_answer(n, k, bit, value);
	return answer_offer(n, k, bit, value, out);
}

int text_neg_response(struct text_neg *n, const uint8_t *data, size_t len,
		      struct text_buf *out)
{
	struct text_iter it;
	const char *key, *value;
	int r;

	n->owed = 0;
	text_iter_init(&it, data, len);
	while ((r = text_iter_next(&it, &key, &value)) == 1)
		if (take_pair(n, key, value, out) < 0)
			return -1;
	return r;
}

/* We insist on a digest (DIGEST_PREF_CRC32C): was it granted? */
static int check_digest(const struct text_neg *n, const char *name,
			enum digest_pref pref, bool result)
{
	uint64_t bit = UINT64_C(1) << find_key(name);

	if (pref != DIGEST_PREF_CRC32C || result)
		return 0;
	if ((n->offered | n->received) & bit)
		err_set(EPROTO, "target refused %s=CRC32C, which we insist on", name);
	else
		err_set(EPROTO, "target ended the login without negotiating %s, and we insist "
			"on CRC32C", name);
	return -1;
}

int text_neg_finish(struct text_neg *n)
{
	char ours[TEXT_MAX_SIMPLE_VALUE + 1];
	struct iscsi_params *p = n->params;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		if (n->owed & (UINT64_C(1) << i)) {
			err_set(EPROTO, "target offered %s in the response that ends the login, "
				"leaving no room for our answer (RFC 7143 11.13.1)", keys[i].name);
			return -1;
		}
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key_def *k = &keys[i];
		uint64_t bit = UINT64_C(1) << i;
		bool o;

		if (!(n->offered & bit) || (n->answered & bit) || is_declarative(k))
			continue;
		our_value(n, k, ours, sizeof ours);
		/* RFC 7143 6.2.2: no answer needed when our value decides */
		if ((k->type == KT_AND || k->type == KT_OR) &&
		    parse_bool(ours, &o) == 0 && o == (k->type == KT_OR)) {
			store_bool(n, k, o);
			n->answered |= bit;
			continue;
		}
		err_set(EPROTO, "target did not answer our %s=%s", k->name, ours);
		return -1;
	}

	if (check_digest(n, "HeaderDigest", n->cfg->header_digest, p->header_digest) < 0 ||
	    check_digest(n, "DataDigest", n->cfg->data_digest, p->data_digest) < 0)
		return -1;

	/* 13.14: FirstBurstLength is irrelevant when no unsolicited data
	 * may be sent at all */
	if (p->initial_r2t && !p->immediate_data) {
		p->first_burst_length = 0;
	} else if (p->first_burst_length > p->max_burst_length) {
		/* RFC 7143 13.14 forbids it, but tgtd answers so when it is
		 * set up with a MaxBurstLength below our FirstBurstLength; it
		 * takes the unsolicited data its own answer allows (as
		 * open-iscsi sends it) */
		log_warn("target negotiated FirstBurstLength=%" PRIu32 " above MaxBurstLength=%"
			 PRIu32 " (RFC 7143 13.14); using them as negotiated",
			 p->first_burst_length, p->max_burst_length);
	}
	return 0;
}
