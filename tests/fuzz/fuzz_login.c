/* fuzz_login.c: libFuzzer harness for the login phase (login.c): the
 * real login_run() on a socketpair whose other end plays the target and
 * sends the fuzzer's bytes as its Login Responses.
 *
 * Input: byte 0 is our configuration, as in fuzz_text.c (bit 0
 * discovery, bits 1-2 and 3-4 HeaderDigest and DataDigest preferences,
 * bit 5 ImmediateData, bit 6 InitialR2T, bit 7 an InitiatorAlias); the
 * rest is the byte stream of the target: BHS, data segment, padding, for
 * as many responses as the login takes.  The peer sends it all at once
 * and then closes, so the login ends at the latest at end of input; what
 * the initiator sends is read and discarded.
 *
 * Checked promises (login.h): a failed login says why (errno and
 * message); a successful one leaves parameters in their RFC 7143 ranges,
 * the conn's digest flags as negotiated, and never more text than the
 * target sent.
 *
 * Thread model: the harness thread runs the login; the peer thread of
 * fuzz_peer.h plays the target.
 */
#include <errno.h>
#include <string.h>

#include "conn.h"
#include "fuzz.h"
#include "fuzz_peer.h"
#include "login.h"
#include "text.h"

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

/* What a successful login may leave, whatever the target said. */
static void check_result(const struct text_config *cfg, const struct login_result *lr,
			 const struct conn *c)
{
	const struct iscsi_params *p = &lr->params;

	FUZZ_ASSERT(c->header_digest == p->header_digest);
	FUZZ_ASSERT(c->data_digest == p->data_digest);
	FUZZ_ASSERT(p->max_xmit_dsl >= 512 && p->max_xmit_dsl <= 16777215);
	FUZZ_ASSERT(p->max_recv_dsl >= 512 && p->max_recv_dsl <= 16777215);
	FUZZ_ASSERT(p->max_burst_length >= 512 && p->max_burst_length <= 16777215);
	FUZZ_ASSERT(p->max_outstanding_r2t >= 1 && p->max_outstanding_r2t <= 65535);
	FUZZ_ASSERT(p->error_recovery_level == 0);
	FUZZ_ASSERT(p->data_pdu_in_order && p->data_sequence_in_order);
	/* (FirstBurstLength may exceed MaxBurstLength: kept as negotiated,
	 * as tgtd answers it, text.h) */
	if (p->initial_r2t && !p->immediate_data)
		FUZZ_ASSERT(p->first_burst_length == 0);
	else
		FUZZ_ASSERT(p->first_burst_length >= 512 &&
			    p->first_burst_length <= cfg->first_burst_length);
	if (cfg->header_digest == DIGEST_PREF_NONE)
		FUZZ_ASSERT(!p->header_digest);
	if (cfg->data_digest == DIGEST_PREF_NONE)
		FUZZ_ASSERT(!p->data_digest);
	/* insisted on: granted, or no login */
	if (cfg->header_digest == DIGEST_PREF_CRC32C)
		FUZZ_ASSERT(p->header_digest);
	if (cfg->data_digest == DIGEST_PREF_CRC32C)
		FUZZ_ASSERT(p->data_digest);
	FUZZ_ASSERT(p->auth_method[0] != '\0');
	FUZZ_ASSERT(memchr(p->target_alias, '\0', sizeof p->target_alias));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t isid[6] = { 0x80, 0x12, 0x34, 0x56, 0x78, 0x00 };
	struct text_config cfg;
	struct login_result lr;
	struct fuzz_peer peer;
	struct conn c;
	int sv[2];

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
	cfg.max_recv_dsl = 262144;
	cfg.max_burst_length = 16777215;
	cfg.first_burst_length = 262144;
	cfg.max_outstanding_r2t = 16;

	fuzz_socketpair(sv);
	if (conn_attach_fd(&c, sv[0], "fuzz target", 10000) < 0)
		abort();
	fuzz_peer_start(&peer, sv[1], data + 1, size - 1);
	if (login_run(&c, &cfg, isid, 0, &lr) == 0) {
		log_debug("fuzz_login: logged in, TSIH %u, digests %d/%d",
			  lr.tsih, lr.params.header_digest, lr.params.data_digest);
		check_result(&cfg, &lr, &c);
	} else {
		int e = err_errno();
		log_debug("fuzz_login: login failed: %s", err_msg());
		FUZZ_ASSERT(e != 0 && err_msg()[0] != '\0');
	}
	FUZZ_ASSERT(c.bytes_received <= size - 1);
	conn_close(&c);
	fuzz_peer_join(&peer);
	return 0;
}
