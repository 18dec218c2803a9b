/* login.c: the login phase (see login.h).
 *
 * States, one per stage of RFC 7143 §6.3:
 *   SECURITY     we declare who we are and agree on AuthMethod (None, or
 *                CHAP when the authentication module is configured);
 *   OPERATIONAL  the operational keys of text.c are negotiated;
 *   FULL_FEATURE reached when a response has T=1 and NSG=3.
 * Each exchange is a Login Request answered by a Login Response; a
 * response with C=1 is continued by an empty request until the whole text
 * has arrived.  A stage ends when the target answers with T=1; the target
 * may also skip the operational stage altogether.
 *
 * Runs synchronously on one conn before any session thread exists: no
 * locks.  The number of exchanges is bounded so that a target cannot keep
 * us in login forever.
 */
#include "login.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Most Login Request/Response exchanges in one login. */
#define MAX_EXCHANGES 32
/* Data segment we accept in one Login Response (the login-phase default
 * MaxRecvDataSegmentLength). */
#define LOGIN_MAX_SEGMENT 8192
/* Most text we collect for one stage across continued responses. */
#define LOGIN_MAX_TEXT ISCSI_MAX_TEXT
/* The login's Initiator Task Tag. */
#define LOGIN_ITT 0x10000000u

const char *login_status_text(uint8_t status_class, uint8_t status_detail)
{
	switch (status_class << 8 | status_detail) {
	case 0x0000: return "success";
	case 0x0101: return "target moved temporarily";
	case 0x0102: return "target moved permanently";
	case 0x0200: return "initiator error";
	case 0x0201: return "authentication failed";
	case 0x0202: return "authorization failure: this initiator may not access the target";
	case 0x0203: return "target not found";
	case 0x0204: return "target removed";
	case 0x0205: return "unsupported iSCSI version";
	case 0x0206: return "too many connections";
	case 0x0207: return "missing parameter";
	case 0x0208: return "cannot include connection in session";
	case 0x0209: return "session type not supported";
	case 0x020a: return "session does not exist";
	case 0x020b: return "invalid request during login";
	case 0x0300: return "target error";
	case 0x0301: return "service unavailable";
	case 0x0302: return "target out of resources";
	}
	switch (status_class) {
	case ISCSI_LOGIN_REDIRECT: return "redirected";
	case ISCSI_LOGIN_INITIATOR_ERROR: return "initiator error";
	case ISCSI_LOGIN_TARGET_ERROR: return "target error";
	default: return "unknown login status";
	}
}

/* The state of one login, threaded through the helpers below. */
struct login {
	struct conn *c;                   /* the connection */
	const struct text_config *cfg;    /* what we offer */
	const uint8_t *isid;              /* our session ID */
	uint16_t tsih;                    /* 0, then the target's */
	uint32_t cmdsn;                   /* CmdSN of every login request */
	uint32_t exp_statsn;              /* next StatSN expected */
	uint32_t exp_cmdsn, max_cmdsn;    /* last seen from the target */
	enum iscsi_login_stage stage;     /* current stage (CSG) */
	uint8_t *text;                    /* reassembled response text */
	size_t text_len;                  /* bytes in text */
};

static int send_request(struct login *l, bool transit, enum iscsi_login_stage next,
			const struct text_buf *data)
{
	union iscsi_bhs bhs;
	struct iovec v = { data ? data->data : NULL, data ? data->len : 0 };

	pdu_init(&bhs, ISCSI_OP_LOGIN_REQ, true);
	bhs.login_req.flags = (uint8_t)(l->stage << ISCSI_LOGIN_CSG_SHIFT);
	if (transit)
		bhs.login_req.flags |= ISCSI_LOGIN_TRANSIT | next;
	bhs.login_req.version_max = 0;
	bhs.login_req.version_min = 0;
	memcpy(bhs.login_req.isid, l->isid, 6);
	put_be16(bhs.login_req.tsih, l->tsih);
	put_be32(bhs.login_req.itt, LOGIN_ITT);
	put_be16(bhs.login_req.cid, 0);
	put_be32(bhs.login_req.cmdsn, l->cmdsn);
	put_be32(bhs.login_req.exp_statsn, l->exp_statsn);
	return conn_send_pdu(l->c, &bhs, &v, v.iov_len ? 1 : 0, (uint32_t)v.iov_len, false);
}

/* The redirect address, for the error message. */
static void redirect_address(const uint8_t *data, size_t len, char *out, size_t cap)
{
	struct text_iter it;
	const char *key, *value;

	snprintf(out, cap, "an address it did not give");
	text_iter_init(&it, data, len);
	while (text_iter_next(&it, &key, &value) == 1) {
		if (strcmp(key, "TargetAddress") == 0) {
			snprintf(out, cap, "%s", value);
			return;
		}
	}
}

/* Receive one Login Response (all its continued parts) into l->text.
 * Returns the response header of the last part in @rsp. */
static int recv_response(struct login *l, union iscsi_bhs *rsp)
{
	l->text_len = 0;
	for (;;) {
		if (conn_recv_bhs(l->c, rsp) < 0)
			return -1;
		if (pdu_check_received(rsp, LOGIN_MAX_SEGMENT) < 0)
			return -1;
		if (pdu_opcode(rsp) != ISCSI_OP_LOGIN_RSP) {
			if (pdu_opcode(rsp) == ISCSI_OP_REJECT)
				err_set(EPROTO, "target rejected our login request (reason 0x%02x)",
					rsp->reject.reason);
			else
				err_set(EPROTO, "protocol error: %s during login",
					pdu_opcode_name(rsp->common.opcode));
			return -1;
		}
		const struct iscsi_bhs_login_rsp *h = &rsp->login_rsp;
		uint32_t len = pdu_data_len(rsp);
		if (l->text_len + len > LOGIN_MAX_TEXT) {
			err_set(EPROTO, "protocol error: login text over %d bytes", LOGIN_MAX_TEXT);
			return -1;
		}
		if (conn_recv_data(l->c, l->text + l->text_len, len) < 0)
			return -1;
		l->text_len += len;
		if (get_be32(h->itt) != LOGIN_ITT) {
			err_set(EPROTO, "protocol error: Login Response for ITT 0x%x",
				get_be32(h->itt));
			return -1;
		}
		l->exp_statsn = get_be32(h->statsn) + 1;
		l->exp_cmdsn = get_be32(h->exp_cmdsn);
		l->max_cmdsn = get_be32(h->max_cmdsn);
		if (h->status_class != ISCSI_LOGIN_SUCCESS) {
			const char *what = login_status_text(h->status_class, h->status_detail);
			int e = EIO;
			if (h->status_class == ISCSI_LOGIN_REDIRECT) {
				char addr[256];
				redirect_address(l->text, l->text_len, addr, sizeof addr);
				err_set(EHOSTUNREACH, "login failed: %s to %s (redirects are not followed yet)",
					what, addr);
				return -1;
			}
			if (h->status_class == ISCSI_LOGIN_INITIATOR_ERROR) {
				switch (h->status_detail) {
				case 0x01: case 0x02: e = EACCES; break;
				case 0x03: case 0x04: e = ENOENT; break;
				default: e = EPROTO; break;
				}
			}
			if (e == ENOENT && l->cfg->target_name)
				err_set(e, "login failed: %s: %s", what, l->cfg->target_name);
			else
				err_set(e, "login failed: %s (status 0x%02x%02x)", what,
					h->status_class, h->status_detail);
			return -1;
		}
		if (h->version_active != 0) {
			err_set(EPROTO, "login failed: target speaks iSCSI version %u, not 0",
				h->version_active);
			return -1;
		}
		uint8_t csg = (h->flags >> ISCSI_LOGIN_CSG_SHIFT) & ISCSI_LOGIN_STAGE_MASK;
		if (csg != l->stage) {
			err_set(EPROTO, "protocol error: Login Response for stage %u, we are in %u",
				csg, l->stage);
			return -1;
		}
		if (!(h->flags & ISCSI_LOGIN_CONTINUE))
			return 0;
		if (h->flags & ISCSI_LOGIN_TRANSIT) {
			err_set(EPROTO, "protocol error: Login Response with both C and T bits");
			return -1;
		}
		/* more text follows: ask for it with an empty request */
		if (send_request(l, false, 0, NULL) < 0)
			return -1;
	}
}

int login_run(struct conn *c, const struct text_config *cfg, const uint8_t isid[6],
	      uint16_t tsih, struct login_result *out)
{
	struct login l = {
		.c = c, .cfg = cfg, .isid = isid, .tsih = tsih,
		.cmdsn = 1, .exp_statsn = 0, .stage = ISCSI_STAGE_SECURITY,
	};
	struct text_neg neg;
	uint8_t *sendbuf = malloc(LOGIN_MAX_SEGMENT);
	struct text_buf tb = { .data = sendbuf, .len = 0, .cap = LOGIN_MAX_SEGMENT };
	bool offered[4] = { false };
	int rc = -1;

	l.text = malloc(LOGIN_MAX_TEXT);
	if (!sendbuf || !l.text) {
		err_set(ENOMEM, "out of memory");
		goto out;
	}
	text_params_defaults(&out->params);
	text_neg_init(&neg, cfg, &out->params);

	for (int exchange = 0;; exchange++) {
		union iscsi_bhs rsp;
		enum iscsi_login_stage next = l.stage == ISCSI_STAGE_SECURITY ?
			ISCSI_STAGE_OPERATIONAL : ISCSI_STAGE_FULL_FEATURE;

		if (exchange == MAX_EXCHANGES) {
			err_set(EPROTO, "login failed: no agreement after %d exchanges",
				MAX_EXCHANGES);
			goto out;
		}
		if (!offered[l.stage]) {
			if (text_neg_offer(&neg, l.stage, &tb) < 0)
				goto out;
			offered[l.stage] = true;
		}
		if (send_request(&l, true, next, &tb) < 0)
			goto out;
		tb.len = 0;
		if (recv_response(&l, &rsp) < 0)
			goto out;
		if (text_neg_response(&neg, l.text, l.text_len, &tb) < 0)
			goto out;
		if (rsp.login_rsp.flags & ISCSI_LOGIN_TRANSIT) {
			uint8_t nsg = rsp.login_rsp.flags & ISCSI_LOGIN_STAGE_MASK;
			if (nsg == 2 || nsg <= l.stage) {
				err_set(EPROTO, "protocol error: target moves login from stage %u to %u",
					l.stage, nsg);
				goto out;
			}
			if (l.stage == ISCSI_STAGE_SECURITY && !out->params.auth_method[0]) {
				err_set(EPROTO, "login failed: target left the security stage without choosing an AuthMethod");
				goto out;
			}
			l.stage = nsg;
			if (nsg == ISCSI_STAGE_FULL_FEATURE) {
				l.tsih = get_be16(rsp.login_rsp.tsih);
				break;
			}
		}
	}
	if (text_neg_finish(&neg) < 0)
		goto out;
	out->tsih = l.tsih;
	out->cmdsn = l.cmdsn;
	out->exp_cmdsn = l.exp_cmdsn;
	out->max_cmdsn = l.max_cmdsn;
	out->exp_statsn = l.exp_statsn;
	c->header_digest = out->params.header_digest;
	c->data_digest = out->params.data_digest;
	rc = 0;
out:
	free(sendbuf);
	free(l.text);
	return rc;
}
