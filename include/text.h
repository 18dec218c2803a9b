/* text.h: iSCSI key=value text (RFC 7143 sections 6 and 13): a strict
 * iterator over what a target sends, and the table-driven negotiation of
 * the login and text keys with their result functions.
 *
 * The login module hands whole (reassembled) data segments to
 * text_neg_response() and sends what text_neg_offer() and
 * text_neg_response() append to a caller-provided struct text_buf.
 * Discovery (SendTargets) and CHAP read their keys with struct text_iter.
 *
 * Thread model: pure functions over caller-owned structures; no globals
 * that change.  A struct text_neg belongs to the one thread running its
 * login.
 */
#ifndef ISCSIFS_TEXT_H
#define ISCSIFS_TEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pdu.h"

struct chap_credentials;

/* RFC 7143 6.1: a key name has at most 63 characters. */
#define TEXT_MAX_KEY 63
/* Longest value text_iter accepts: a key=value pair must fit in 8192
 * bytes with its NUL (CHAP challenges are the longest we meet). */
#define TEXT_MAX_VALUE 8191
/* RFC 7143 6.1: a simple value (and each item of a list) is at most 255
 * bytes unless a key says otherwise. */
#define TEXT_MAX_SIMPLE_VALUE 255
/* Keys we answer NotUnderstood before we give up on the target. */
#define TEXT_MAX_NOT_UNDERSTOOD 64

/* Which data digest (or header digest) the user asked for. */
enum digest_pref {
	DIGEST_PREF_NONE,   /* offer "None": never a digest */
	DIGEST_PREF_CRC32C, /* offer "CRC32C" only: insist on the digest */
	DIGEST_PREF_AUTO,   /* offer "None,CRC32C": a digest only if the target insists */
};

/* What we offer: the initiator's side of the negotiation.  Strings and
 * the credentials are borrowed and must outlive the negotiation. */
struct text_config {
	const char *initiator_name;      /* InitiatorName, declared in the first login PDU */
	const char *initiator_alias;     /* InitiatorAlias, or NULL to send none */
	const char *target_name;         /* TargetName; NULL for a discovery session */
	bool discovery;                  /* SessionType=Discovery rather than Normal */
	enum digest_pref header_digest;  /* what we offer as HeaderDigest */
	enum digest_pref data_digest;    /* what we offer as DataDigest */
	uint32_t max_recv_dsl;           /* our MaxRecvDataSegmentLength (declared), 512..2^24-1 */
	uint32_t max_burst_length;       /* MaxBurstLength offered, 512..2^24-1 */
	uint32_t first_burst_length;     /* FirstBurstLength offered, 512..max_burst_length */
	uint32_t max_outstanding_r2t;    /* MaxOutstandingR2T offered, 1..65535 */
	bool immediate_data;             /* ImmediateData offered (Yes to use it) */
	bool initial_r2t;                /* InitialR2T offered (No to send unsolicited data) */
	const struct chap_credentials *chap; /* CHAP credentials (chap.h), NULL for none:
	                                  * AuthMethod=CHAP,None is offered when set */
};

/* A session's operational parameters: the RFC 7143 defaults until a
 * negotiation changes them (text_params_defaults()). */
struct iscsi_params {
	bool header_digest;              /* CRC32C on every header */
	bool data_digest;                /* CRC32C on every data segment */
	uint32_t max_connections;        /* MaxConnections (we offer 1) */
	bool initial_r2t;                /* InitialR2T: no unsolicited Data-Out PDUs */
	bool immediate_data;             /* ImmediateData: data may ride in the SCSI Command PDU */
	uint32_t max_recv_dsl;           /* ours: the most the target may send us in one PDU */
	uint32_t max_xmit_dsl;           /* the target's MaxRecvDataSegmentLength: the most we
	                                  * may send in one PDU (8192 if it declares none) */
	uint32_t max_burst_length;       /* MaxBurstLength: most data in one sequence */
	uint32_t first_burst_length;     /* FirstBurstLength: most unsolicited data per command;
	                                  * 0 after text_neg_finish() when InitialR2T=Yes and
	                                  * ImmediateData=No make it irrelevant */
	uint32_t default_time2wait;      /* DefaultTime2Wait, seconds */
	uint32_t default_time2retain;    /* DefaultTime2Retain, seconds */
	uint32_t max_outstanding_r2t;    /* MaxOutstandingR2T per task */
	bool data_pdu_in_order;          /* DataPDUInOrder */
	bool data_sequence_in_order;     /* DataSequenceInOrder */
	uint32_t error_recovery_level;   /* ErrorRecoveryLevel (we offer 0) */
	uint16_t target_portal_group_tag; /* TargetPortalGroupTag, valid when has_tpgt */
	bool has_tpgt;                   /* the target declared TargetPortalGroupTag */
	char target_alias[TEXT_MAX_SIMPLE_VALUE + 1]; /* TargetAlias, "" if none */
	char auth_method[16];            /* the AuthMethod the target chose ("None", "CHAP");
	                                  * "" before */
};

/* Set @p to the RFC 7143 defaults (section 13), max_xmit_dsl and
 * max_recv_dsl to 8192, no TPGT, empty alias and auth_method. */
void text_params_defaults(struct iscsi_params *p);

/* Caller-provided storage that key=value pairs are appended to. */
struct text_buf {
	uint8_t *data; /* the storage */
	size_t len;    /* bytes used */
	size_t cap;    /* bytes available at data */
};

/* Point @b at @cap bytes of @storage, empty. */
void text_buf_init(struct text_buf *b, uint8_t *storage, size_t cap);

/* Append "key=value\0".  Returns 0, or -1 with err_set(): EMSGSIZE if it
 * does not fit (nothing is appended), EINVAL for an empty key, a key over
 * TEXT_MAX_KEY or a value over TEXT_MAX_VALUE. */
int text_buf_add(struct text_buf *b, const char *key, const char *value);

/* One negotiation: a whole login (security and operational stages) or
 * one text exchange.  Initialise with text_neg_init(); the fields are
 * private to text.c. */
struct text_neg {
	const struct text_config *cfg; /* our side; borrowed */
	struct iscsi_params *params;   /* results are written here; borrowed */
	enum iscsi_login_stage stage;  /* stage of the last text_neg_offer(); SECURITY at first */
	uint64_t offered;              /* bit i: we sent row i of the key table */
	uint64_t answered;             /* bit i: our offer of row i has its outcome */
	uint64_t received;             /* bit i: the target sent row i (answer or its own offer) */
	unsigned not_understood;       /* NotUnderstood answers we have given */
	uint64_t owed;                 /* bit i: the last text_neg_response() answered the
	                                * target's offer of row i, and the target must hear
	                                * that answer to know the outcome (all but AND
	                                * offered No, OR offered Yes, Reject of an obsolete
	                                * key, Irrelevant) */
};

/* Start a negotiation of @cfg's offers into @params.  @params is left as
 * it is (call text_params_defaults() first for a new session). */
void text_neg_init(struct text_neg *n, const struct text_config *cfg,
		   struct iscsi_params *params);

/* Append our keys for @stage to @out and remember them as offered:
 *   SECURITY: InitiatorName, InitiatorAlias (if set), SessionType,
 *     TargetName (normal sessions), AuthMethod=None (CHAP,None when
 *     cfg->chap is set; the CHAP_* keys are login.c's).
 *   OPERATIONAL: HeaderDigest, DataDigest, MaxRecvDataSegmentLength and,
 *     for normal sessions, MaxConnections=1, InitialR2T, ImmediateData,
 *     MaxBurstLength, FirstBurstLength, DefaultTime2Wait=2,
 *     DefaultTime2Retain=0, MaxOutstandingR2T, DataPDUInOrder=Yes,
 *     DataSequenceInOrder=Yes, ErrorRecoveryLevel=0.
 *   FULL_FEATURE: nothing (a text exchange answers what the target sends).
 * A key is offered at most once per negotiation, and not at all if the
 * target already proposed it.  Records @stage for text_neg_response().
 * Returns 0, or -1 with err_set(): EINVAL for an unusable configuration
 * or stage, EMSGSIZE if @out is too small (then nothing is appended). */
int text_neg_offer(struct text_neg *n, enum iscsi_login_stage stage,
		   struct text_buf *out);

/* Take the keys of one whole Login or Text Response data segment.
 * Answers to our offers are checked against the key's result function
 * and stored in the params; keys the target offers are answered into
 * @out (unknown keys with NotUnderstood, obsolete marker keys with
 * Reject, keys irrelevant to a discovery session with Irrelevant);
 * declarations (MaxRecvDataSegmentLength, TargetAlias,
 * TargetPortalGroupTag) are stored; CHAP_* keys are skipped for the CHAP
 * module.  Returns 0, or -1 with err_set(): EPROTO naming the key and
 * value for malformed text or a violation of RFC 7143, EACCES when the
 * target refuses every AuthMethod we offered, EMSGSIZE if @out is full.
 * After -1 the negotiation is dead: fail the login. */
int text_neg_response(struct text_neg *n, const uint8_t *data, size_t len,
		      struct text_buf *out);

/* Call after the final response of the login, the one that moves to the
 * full feature phase (calling it more than once is harmless).  An offer
 * of the target's in that response whose answer it must hear fails: the
 * login ends there, the answer would never be sent (RFC 7143 11.13.1).
 * An offer of ours the RFC lets the target leave unanswered (AND offered
 * No, OR offered Yes) takes our value; any other unanswered offer fails.
 * Then checks what only the whole set shows: a digest we insist on was
 * granted (never negotiated, as when the target skips the operational
 * stage, is not granted); warns of FirstBurstLength above MaxBurstLength
 * (RFC 7143 13.14; tgtd answers so) and keeps both as negotiated; and
 * sets first_burst_length to 0 when InitialR2T=Yes and ImmediateData=No.
 * Returns 0, or -1 with err_set(EPROTO, ...). */
int text_neg_finish(struct text_neg *n);

/* Strict iterator over "key=value\0key=value\0..." from a target. */
struct text_iter {
	const uint8_t *p;            /* start of the next pair */
	const uint8_t *end;          /* end of the data */
	bool failed;                 /* a malformed pair was met: stay failed */
	char key[TEXT_MAX_KEY + 1];  /* the current key, NUL-terminated copy */
};

/* Iterate over @len bytes at @data (which must outlive the iterator). */
void text_iter_init(struct text_iter *it, const uint8_t *data, size_t len);

/* Next pair: returns 1 with *key pointing at it->key and *value into the
 * data (NUL-terminated there), 0 at the end, -1 with err_set(EPROTO, ...)
 * when malformed: no NUL at the end, a pair without '=', an empty key, a
 * key over TEXT_MAX_KEY or with characters RFC 7143 does not allow in key
 * names, a value over TEXT_MAX_VALUE, an empty pair.  NUL bytes after the
 * last pair are accepted as padding. */
int text_iter_next(struct text_iter *it, const char **key, const char **value);

/* Parse a numerical value as RFC 7143 6.1 writes it: a decimal constant
 * (no sign, no leading zero) or a hex constant ("0x" or "0X" and one or
 * more hex digits); either below 2^64.  Returns 0, or -1 with err_set(EPROTO, ...) naming @key. */
int text_parse_number(const char *key, const char *value, uint64_t *out);

/* Room for a value shown in a message (text_shown()). */
#define TEXT_SHOWN_SIZE 72

/* @len bytes at @s fit for a message: unprintable bytes become '?', and a
 * value longer than the room ends in "...".  Returns @buf.  For whatever
 * a target sends that a message names (keys, values, names). */
const char *text_shown_n(const void *s, size_t len, char buf[TEXT_SHOWN_SIZE]);

/* text_shown_n() of a NUL-terminated string. */
const char *text_shown(const char *s, char buf[TEXT_SHOWN_SIZE]);

#endif /* ISCSIFS_TEXT_H */
