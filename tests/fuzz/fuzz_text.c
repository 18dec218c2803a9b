/* fuzz_text.c: libFuzzer harness for iSCSI key=value text from a target
 * (text.c): the strict iterator, number parsing, and the negotiation
 * (text_neg_offer(), text_neg_response(), text_neg_finish()) fed with
 * arbitrary Login and Text Response data.
 *
 * Input:
 *   byte 0   our configuration: bit 0 discovery session, bits 1-2 and 3-4
 *            the HeaderDigest and DataDigest preferences (3 = AUTO), bit 5
 *            ImmediateData, bit 6 InitialR2T, bit 7 send an InitiatorAlias;
 *   then     records of one byte stage (low two bits: the CSG of the
 *            response, 3 = full feature phase), a 16-bit big-endian
 *            length and that many bytes of response text (cut short at
 *            the end of the input).
 * Each record is one response of the negotiation; before the first
 * response of a stage our offers for that stage are made, as login.c
 * does.  The negotiation stops at its first failure; text_neg_finish()
 * runs at the end when nothing failed.  Separately, the text of every
 * record goes through text_iter and back through text_buf_add().
 *
 * Checked promises (text.h): what we append to the answer buffer is
 * itself well-formed text; a pair the iterator yields re-encodes to the
 * same bytes; negotiated parameters stay in their RFC 7143 ranges and
 * obey the result functions against what we offered.
 *
 * Thread model: single-threaded.
 */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "text.h"
#include "wire.h"

/* Our answer buffer: the size login.c gives it. */
#define OUT_CAP 8192

/* Our offers (what mount_config.c configures, scaled down a little so that
 * the Minimum and Maximum result functions have room both ways). */
#define OUR_MAX_RECV_DSL 65536
#define OUR_MAX_BURST 1048576
#define OUR_FIRST_BURST 65536
#define OUR_MAX_R2T 4

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

static enum digest_pref digest_of(unsigned bits)
{
	switch (bits & 3) {
	case 0: return DIGEST_PREF_NONE;
	case 1: return DIGEST_PREF_CRC32C;
	default: return DIGEST_PREF_AUTO;
	}
}

/* The text we send must parse as well-formed text: it is what a target
 * reads from us. */
static void check_our_text(const struct text_buf *b)
{
	struct text_iter it;
	const char *key, *value;
	int r;

	FUZZ_ASSERT(b->len <= b->cap);
	text_iter_init(&it, b->data, b->len);
	while ((r = text_iter_next(&it, &key, &value)) == 1)
		FUZZ_ASSERT(strlen(value) <= TEXT_MAX_VALUE);
	FUZZ_ASSERT(r == 0);
}

/* Iterate over @len bytes at @data; re-encode each pair and compare. */
static void iterate(const uint8_t *data, size_t len)
{
	uint8_t *copy = malloc(len ? len : 1);
	uint8_t *again = malloc(len + 1);
	struct text_iter it;
	struct text_buf b;
	const char *key, *value;
	size_t consumed = 0;
	int r;

	if (!copy || !again)
		abort();
	memcpy(copy, data, len);
	text_buf_init(&b, again, len + 1);
	text_iter_init(&it, copy, len);
	while ((r = text_iter_next(&it, &key, &value)) == 1) {
		size_t klen = strlen(key), vlen = strlen(value);
		uint64_t v;

		FUZZ_ASSERT(klen >= 1 && klen <= TEXT_MAX_KEY && vlen <= TEXT_MAX_VALUE);
		/* the value points into the data, the pair is where we left off */
		FUZZ_ASSERT((const uint8_t *)value >= copy + consumed + klen + 1);
		FUZZ_ASSERT((const uint8_t *)value + vlen < copy + len);
		FUZZ_ASSERT(memcmp(copy + consumed, key, klen) == 0 && copy[consumed + klen] == '=');
		consumed += klen + vlen + 2;
		if (text_parse_number(key, value, &v) < 0)
			FUZZ_ASSERT(err_errno() == EPROTO);
		FUZZ_ASSERT(text_buf_add(&b, key, value) == 0);
	}
	FUZZ_ASSERT(r == 0 || r == -1);
	if (r == 0) {
		/* the whole text was pairs and NUL padding */
		FUZZ_ASSERT(b.len == consumed);
		FUZZ_ASSERT(memcmp(again, copy, consumed) == 0);
		for (size_t i = consumed; i < len; i++)
			FUZZ_ASSERT(copy[i] == '\0');
	} else {
		/* a failed iterator stays failed */
		FUZZ_ASSERT(text_iter_next(&it, &key, &value) == -1);
	}
	free(copy);
	free(again);
}

/* What a successful negotiation may leave in @p, whatever the target said;
 * @operational: our operational-stage offers were made. */
static void check_params(const struct text_config *cfg, const struct iscsi_params *p,
			 bool operational)
{
	FUZZ_ASSERT(p->max_xmit_dsl >= 512 && p->max_xmit_dsl <= 16777215);
	FUZZ_ASSERT(p->max_recv_dsl >= 512 && p->max_recv_dsl <= 16777215);
	FUZZ_ASSERT(p->max_burst_length >= 512 && p->max_burst_length <= 16777215);
	FUZZ_ASSERT(p->max_outstanding_r2t >= 1 && p->max_outstanding_r2t <= 65535);
	FUZZ_ASSERT(p->max_connections >= 1);
	FUZZ_ASSERT(p->error_recovery_level == 0);
	FUZZ_ASSERT(p->data_pdu_in_order && p->data_sequence_in_order);
	FUZZ_ASSERT(p->default_time2wait <= 3600 && p->default_time2retain <= 3600);
	if (p->initial_r2t && !p->immediate_data)
		FUZZ_ASSERT(p->first_burst_length == 0);
	else
		FUZZ_ASSERT(p->first_burst_length >= 512 &&
			    p->first_burst_length <= p->max_burst_length);
	/* a digest only where we offered one; always where we insist on it
	 * and the operational stage took place */
	if (cfg->header_digest == DIGEST_PREF_NONE)
		FUZZ_ASSERT(!p->header_digest);
	if (cfg->data_digest == DIGEST_PREF_NONE)
		FUZZ_ASSERT(!p->data_digest);
	if (operational && cfg->header_digest == DIGEST_PREF_CRC32C)
		FUZZ_ASSERT(p->header_digest);
	if (operational && cfg->data_digest == DIGEST_PREF_CRC32C)
		FUZZ_ASSERT(p->data_digest);
	if (operational)
		FUZZ_ASSERT(p->max_recv_dsl == cfg->max_recv_dsl);
	if (operational && !cfg->discovery) {
		/* we offered these: the result functions bound the outcome */
		FUZZ_ASSERT(p->max_burst_length <= cfg->max_burst_length);
		FUZZ_ASSERT(p->max_outstanding_r2t <= cfg->max_outstanding_r2t);
		FUZZ_ASSERT(p->max_connections == 1);
		FUZZ_ASSERT(!p->immediate_data || cfg->immediate_data);
		FUZZ_ASSERT(p->initial_r2t || !cfg->initial_r2t);
	}
	FUZZ_ASSERT(memchr(p->target_alias, '\0', sizeof p->target_alias));
	FUZZ_ASSERT(memchr(p->auth_method, '\0', sizeof p->auth_method));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t out_storage[OUT_CAP];
	struct text_config cfg;
	struct iscsi_params params;
	struct text_neg neg;
	struct text_buf out;
	bool offered[4] = { false };
	bool failed = false;

	if (size < 1)
		return 0;
	memset(&cfg, 0, sizeof cfg);
	cfg.initiator_name = "iqn.2024-01.org.example:fuzz";
	cfg.initiator_alias = (data[0] & 0x80) ? "fuzz alias" : NULL;
	cfg.target_name = "iqn.2024-01.org.example:target";
	cfg.discovery = data[0] & 0x01;
	cfg.header_digest = digest_of(data[0] >> 1);
	cfg.data_digest = digest_of(data[0] >> 3);
	cfg.immediate_data = data[0] & 0x20;
	cfg.initial_r2t = data[0] & 0x40;
	cfg.max_recv_dsl = OUR_MAX_RECV_DSL;
	cfg.max_burst_length = OUR_MAX_BURST;
	cfg.first_burst_length = OUR_FIRST_BURST;
	cfg.max_outstanding_r2t = OUR_MAX_R2T;

	text_params_defaults(&params);
	text_neg_init(&neg, &cfg, &params);
	text_buf_init(&out, out_storage, sizeof out_storage);

	size_t off = 1;
	while (off + 3 <= size) {
		enum iscsi_login_stage stage = (enum iscsi_login_stage)(data[off] & 3);
		size_t len = get_be16(data + off + 1);

		off += 3;
		if (len > size - off)
			len = size - off;
		/* a copy of exactly the record, so that ASan sees any read
		 * beyond it */
		uint8_t *rec = malloc(len ? len : 1);
		if (!rec)
			abort();
		memcpy(rec, data + off, len);
		off += len;

		iterate(rec, len);
		if (!failed) {
			out.len = 0;
			if (!offered[stage]) {
				offered[stage] = true;
				if (text_neg_offer(&neg, stage, &out) < 0) {
					FUZZ_ASSERT(stage == 2);
					FUZZ_ASSERT(err_errno() == EINVAL);
					failed = true;
				}
			}
			if (!failed && text_neg_response(&neg, rec, len, &out) < 0) {
				int e = err_errno();
				FUZZ_ASSERT(e == EPROTO || e == EACCES || e == EMSGSIZE);
				failed = true;
			}
			check_our_text(&out);
		}
		free(rec);
	}
	if (!failed && text_neg_finish(&neg) == 0)
		check_params(&cfg, &params, offered[ISCSI_STAGE_OPERATIONAL]);
	return 0;
}
