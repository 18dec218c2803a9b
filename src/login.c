/* login.c: the login phase (see login.h).
 *
 * States, one per stage of RFC 7143 §6.3:
 *   SECURITY     we declare who we are and agree on AuthMethod (None, or
 *                CHAP when credentials are configured: see "CHAP" below);
 *   OPERATIONAL  the operational keys of text.c are negotiated;
 *   FULL_FEATURE reached when a response has T=1 and NSG=3.
 * Each exchange is a Login Request answered by a Login Response; a
 * response with C=1 is continued by an empty request until the whole text
 * has arrived.  A stage ends when the target answers with T=1; the target
 * may also skip the operational stage altogether.
 *
 * CHAP (RFC 7143 §12.1.3), steps of enum auth_step:
 *   I->T  AuthMethod=CHAP,None                      (T=0)
 *   T->I  AuthMethod=CHAP
 *   I->T  CHAP_A=8,7,6,5                            (T=0)
 *   T->I  CHAP_A=<one of them>, CHAP_I, CHAP_C
 *   I->T  CHAP_N, CHAP_R [mutual: CHAP_I, CHAP_C]   (T=1)
 *   T->I  [mutual: CHAP_N, CHAP_R]                  (T=1, NSG operational)
 * A target that refuses the algorithm list (a login reject, CHAP_A=Reject,
 * an answer we did not offer) or rejects a response made with SHA-x is
 * tried once more on a new connection offering only CHAP_A=5 (MD5): older
 * targets know only MD5, and tgtd reads CHAP_A=7 as SHA-1, not SHA-256.
 * With credentials configured, a target may still choose AuthMethod=None
 * (we offered it), except that mutual CHAP refuses None for a normal
 * session: the target must prove who it is.  A target that leaves the
 * security stage before CHAP is finished fails the login.  Secrets stay in
 * struct chap_credentials (chap.c computes with them); nothing here logs
 * a secret, a challenge or a response.
 *
 * Redirects (RFC 7143 §11.13.5): a Login Response with status class 1
 * names another portal in TargetAddress.  login_run() closes the
 * connection, connects there and starts the login over (CHAP included),
 * at most LOGIN_MAX_REDIRECTS times, so two targets pointing at each other
 * cannot keep us going round.  A temporary redirect (0x0101) applies to
 * this login only; a permanent one (0x0102) is also handed to the caller
 * (login_result.moved), which may log in there directly next time.
 *
 * One attempt (a connection's login from the first request to the full
 * feature phase) is a machine that does no I/O (struct attempt): it gives
 * the next request, says where each part of an answer goes, and takes the
 * part's header, answering "send the next request", "done" or "failed".
 * The whole login, attempts, redirects and the MD5 retry, is a machine
 * around it (struct login_machine, login.h): login_run() drives it on a
 * blocking conn, login_loop.c on an event loop.
 *
 * Runs synchronously on one conn before any session thread exists: no
 * locks.  A target cannot keep us in login forever: the exchanges are at
 * most MAX_EXCHANGES, the continued responses that bring no text at most
 * LOGIN_MAX_EMPTY, and the whole of login_connect() (connects, redirects,
 * retries) has one deadline on CLOCK_MONOTONIC, its @timeout_ms (the
 * connect timeout, from -o timeout), which every wait for the target
 * honours (struct conn, deadline_ns): a target that keeps talking without
 * ever finishing, or trickles its answers a byte at a time, fails the
 * login as one that falls silent does.
 */
#include "login.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chap.h"
#include "deadline.h"
#include "discovery.h"
#include "log.h"
#include "portal.h"

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

/* Where authentication stands in the security stage. */
enum auth_step {
	AUTH_NOT_USED,    /* no credentials: AuthMethod=None is all we offer */
	AUTH_OFFERING,    /* AuthMethod=CHAP,None goes out with the next request */
	AUTH_OFFERED,     /* it went out; the target's choice is awaited */
	AUTH_CHOSEN,      /* the target chose CHAP: CHAP_A goes out next */
	AUTH_ALGORITHMS,  /* CHAP_A went out; CHAP_A, CHAP_I, CHAP_C are awaited */
	AUTH_CHALLENGED,  /* the target's challenge is here: our response goes out next */
	AUTH_RESPONDED,   /* our response went out; the verdict is awaited (mutual:
	                   * with the target's CHAP_N and CHAP_R) */
	AUTH_DONE,        /* authenticated, or AuthMethod=None accepted */
};

/* The CHAP state of one login_run(), across its attempts. */
struct auth {
	const struct chap_credentials *cred; /* what we prove and check; NULL: no CHAP */
	bool discovery;                 /* a discovery session: None is fine even when mutual */
	enum auth_step step;            /* where this attempt stands */
	bool md5_only;                  /* this attempt offers CHAP_A=5 alone (the retry) */
	bool retry_md5;                 /* this attempt failed in a way an MD5-only offer may fix */
	enum chap_alg alg;              /* the algorithm the target chose */
	uint8_t target_id;              /* the target's CHAP_I */
	uint8_t target_challenge[CHAP_MAX_BINARY]; /* the target's CHAP_C, decoded */
	size_t target_challenge_len;    /* bytes in target_challenge */
	uint8_t our_id;                 /* mutual: the CHAP_I we sent */
	uint8_t our_challenge[CHAP_CHALLENGE_LEN]; /* mutual: the CHAP_C we sent */
	bool issued;                    /* our_challenge went out (in this or an earlier attempt) */
};

/* The CHAP_* keys of one Login Response: values point into its text. */
struct chap_keys {
	const char *a;  /* CHAP_A, NULL when absent */
	const char *i;  /* CHAP_I */
	const char *c;  /* CHAP_C */
	const char *n;  /* CHAP_N */
	const char *r;  /* CHAP_R */
};

/* The state of one login, threaded through the helpers below. */
struct login {
	const char *peer;                 /* the connection's "host:port", for messages */
	const struct text_config *cfg;    /* what we offer */
	const uint8_t *isid;              /* our session ID */
	uint16_t tsih;                    /* 0, then the target's */
	uint32_t cmdsn;                   /* CmdSN of every login request */
	uint32_t exp_statsn;              /* next StatSN expected */
	uint32_t exp_cmdsn, max_cmdsn;    /* last seen from the target */
	enum iscsi_login_stage stage;     /* current stage (CSG) */
	uint8_t *text;                    /* reassembled response text */
	size_t text_len;                  /* bytes in text */
	unsigned empty_continues;         /* Login Responses with C=1 and no text so far */
	uint8_t status_class;             /* of a Login Response that failed the login, else 0 */
	uint8_t status_detail;            /* its status detail */
	char redirect_host[256];          /* status class 1: the portal it names */
	uint16_t redirect_port;           /* ... and its port */
	struct auth *auth;                /* CHAP state (login_run()'s, outlives attempts) */
};

/* The header of a Login Request of @l with @len bytes of text: leaving
 * the stage for @next when @transit. */
static void build_request(const struct login *l, bool transit, enum iscsi_login_stage next,
			  union iscsi_bhs *bhs)
{
	pdu_init(bhs, ISCSI_OP_LOGIN_REQ, true);
	bhs->login_req.flags = (uint8_t)(l->stage << ISCSI_LOGIN_CSG_SHIFT);
	if (transit)
		bhs->login_req.flags |= ISCSI_LOGIN_TRANSIT | next;
	bhs->login_req.version_max = 0;
	bhs->login_req.version_min = 0;
	memcpy(bhs->login_req.isid, l->isid, 6);
	put_be16(bhs->login_req.tsih, l->tsih);
	put_be32(bhs->login_req.itt, LOGIN_ITT);
	put_be16(bhs->login_req.cid, 0);
	put_be32(bhs->login_req.cmdsn, l->cmdsn);
	put_be32(bhs->login_req.exp_statsn, l->exp_statsn);
}

int login_parse_redirect(const uint8_t *text, size_t len, char *host, size_t host_cap,
			 uint16_t *port)
{
	struct text_iter it;
	const char *key, *value;
	struct discovery_portal portal;
	bool found = false;
	int r;

	text_iter_init(&it, text, len);
	while ((r = text_iter_next(&it, &key, &value)) == 1) {
		if (strcmp(key, "TargetAddress") != 0)
			continue;
		if (found) {
			err_set(EPROTO, "more than one TargetAddress in the redirect");
			return -1;
		}
		/* the same form as in a SendTargets answer (RFC 7143 §13.9) */
		if (discovery_parse_address(value, &portal) < 0)
			return -1;
		found = true;
	}
	if (r < 0)
		return -1;
	if (!found) {
		err_set(EPROTO, "no TargetAddress in the redirect");
		return -1;
	}
	if (strlen(portal.host) >= host_cap) {
		err_set(EPROTO, "a %zu-byte host name in the redirect", strlen(portal.host));
		return -1;
	}
	snprintf(host, host_cap, "%s", portal.host);
	*port = portal.port;
	return 0;
}

/* The header @rsp of a part of a Login Response came: check it, and say
 * where its @len bytes of text go (after what the earlier parts of the
 * response brought).  Returns 0, or -1 with err_set(). */
static int response_place(struct login *l, const union iscsi_bhs *rsp, uint8_t **dst)
{
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
	if (l->text_len + pdu_data_len(rsp) > LOGIN_MAX_TEXT) {
		err_set(EPROTO, "protocol error: login text over %d bytes", LOGIN_MAX_TEXT);
		return -1;
	}
	*dst = l->text + l->text_len;
	return 0;
}

/* What response_part() returns besides -1. */
enum part_verdict {
	PART_LAST = 0,   /* the response is whole: its text is l->text */
	PART_MORE = 1,   /* C=1: an empty request asks for the rest */
};

/* A part of a Login Response, header @rsp, its text placed where
 * response_place() said.  Returns PART_LAST, PART_MORE, or -1 with
 * err_set() (a failed login: l->status_class says how when the target
 * answered so). */
static int response_part(struct login *l, const union iscsi_bhs *rsp)
{
	const struct iscsi_bhs_login_rsp *h = &rsp->login_rsp;
	uint32_t len = pdu_data_len(rsp);

	l->text_len += len;
	if (get_be32(h->itt) != LOGIN_ITT) {
		err_set(EPROTO, "protocol error: Login Response for ITT 0x%x", get_be32(h->itt));
		return -1;
	}
	l->exp_statsn = get_be32(h->statsn) + 1;
	l->exp_cmdsn = get_be32(h->exp_cmdsn);
	l->max_cmdsn = get_be32(h->max_cmdsn);
	if (h->status_class != ISCSI_LOGIN_SUCCESS) {
		l->status_class = h->status_class;
		l->status_detail = h->status_detail;
		const char *what = login_status_text(h->status_class, h->status_detail);
		int e = EIO;
		if (h->status_class == ISCSI_LOGIN_REDIRECT) {
			char where[PORTAL_TEXT_MAX];
			if (login_parse_redirect(l->text, l->text_len, l->redirect_host,
						 sizeof l->redirect_host, &l->redirect_port) < 0) {
				err_set(EPROTO, "login failed: %s, but %s", what, err_msg());
				l->status_class = 0;    /* nothing to follow */
				return -1;
			}
			portal_format(where, sizeof where, l->redirect_host, l->redirect_port);
			err_set(EHOSTUNREACH, "login failed: %s to %s", what, where);
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
		return PART_LAST;
	if (h->flags & ISCSI_LOGIN_TRANSIT) {
		err_set(EPROTO, "protocol error: Login Response with both C and T bits");
		return -1;
	}
	if (len == 0 && ++l->empty_continues > LOGIN_MAX_EMPTY) {
		err_set(EPROTO, "login failed: %s sent more than %d continued Login Responses "
			"without text (C=1, empty)", l->peer, LOGIN_MAX_EMPTY);
		return -1;
	}
	return PART_MORE;
}

/* ---- CHAP in the security stage ---- */

/* The one-line message for a failed mutual authentication. */
#define MUTUAL_FAILED "target failed mutual authentication"

/* Remember one CHAP_* value of a response; a repeat is a protocol error. */
static int keep_chap_key(const char **slot, const char *key, const char *value)
{
	if (*slot) {
		err_set(EPROTO, "protocol error: target sent %s twice", key);
		return -1;
	}
	*slot = value;
	return 0;
}

/* Collect the CHAP_* keys of the response text in l->text (already
 * checked well-formed by text_neg_response()). */
static int collect_chap_keys(const struct login *l, struct chap_keys *k)
{
	struct text_iter it;
	const char *key, *value;
	int r;

	memset(k, 0, sizeof *k);
	text_iter_init(&it, l->text, l->text_len);
	while ((r = text_iter_next(&it, &key, &value)) == 1) {
		const char **slot = NULL;

		if (strncmp(key, "CHAP_", 5) != 0)
			continue;
		switch (key[5]) {
		case 'A': slot = &k->a; break;
		case 'I': slot = &k->i; break;
		case 'C': slot = &k->c; break;
		case 'N': slot = &k->n; break;
		case 'R': slot = &k->r; break;
		}
		if (!slot || key[6] != '\0') {
			err_set(EPROTO, "protocol error: target sent %s, a key CHAP does not have", key);
			return -1;
		}
		if (keep_chap_key(slot, key, value) < 0)
			return -1;
	}
	return r;
}

/* Any CHAP key at all in @k? */
static bool has_chap_keys(const struct chap_keys *k)
{
	return k->a || k->i || k->c || k->n || k->r;
}

/* The target answered AuthMethod (step AUTH_OFFERED). */
static int take_auth_method(struct login *l, const struct chap_keys *k, bool transit,
			    const char *method)
{
	struct auth *a = l->auth;

	if (has_chap_keys(k)) {
		err_set(EPROTO, "protocol error: target sent CHAP keys before choosing AuthMethod=CHAP");
		return -1;
	}
	if (strcmp(method, "CHAP") == 0) {
		if (transit) {
			err_set(EACCES, "login failed: target chose CHAP and skipped it (left the security stage)");
			return -1;
		}
		a->step = AUTH_CHOSEN;
		return 0;
	}
	if (strcmp(method, "None") == 0) {
		if (a->cred->mutual && !a->discovery) {
			err_set(EACCES, MUTUAL_FAILED ": it chose AuthMethod=None");
			return -1;
		}
		a->step = AUTH_DONE;    /* (said when the stage is left: check_security_done()) */
		return 0;
	}
	err_set(EPROTO, "protocol error: target did not answer our AuthMethod=CHAP,None");
	return -1;
}

/* CHAP_A as the target answered our list.  Sets a->retry_md5 when an
 * MD5-only offer may fare better. */
static int take_algorithm(struct auth *a, const char *value)
{
	const char *offer = a->md5_only ? "5" : "8,7,6,5";

	if (!value || strcmp(value, "Reject") == 0 || strcmp(value, "NotUnderstood") == 0 ||
	    strcmp(value, "Irrelevant") == 0) {
		a->retry_md5 = true;
		err_set(EACCES, "authentication failed: target refused CHAP_A=%s (answered %s)",
			offer, value ? value : "nothing");
		return -1;
	}
	if (chap_parse_algorithm(value, &a->alg) < 0) {
		a->retry_md5 = true;
		return -1;
	}
	if (a->md5_only && a->alg != CHAP_ALG_MD5) {
		err_set(EPROTO, "authentication failed: target chose CHAP_A=%d, not the 5 we offered",
			a->alg);
		return -1;
	}
	return 0;
}

/* The target's CHAP_A, CHAP_I and CHAP_C (step AUTH_ALGORITHMS). */
static int take_challenge(struct auth *a, const struct chap_keys *k, bool transit)
{
	if (transit) {
		err_set(EACCES, "login failed: target skipped CHAP (left the security stage without a challenge)");
		return -1;
	}
	if (k->n || k->r) {
		err_set(EPROTO, "protocol error: target sent CHAP_N or CHAP_R before our response");
		return -1;
	}
	if (take_algorithm(a, k->a) < 0)
		return -1;
	if (!k->i || !k->c) {
		err_set(EPROTO, "protocol error: target chose CHAP_A=%d but sent no %s", a->alg,
			!k->i ? "CHAP_I" : "CHAP_C");
		return -1;
	}
	if (chap_parse_identifier(k->i, &a->target_id) < 0 ||
	    chap_parse_binary("CHAP_C", k->c, a->target_challenge, &a->target_challenge_len) < 0)
		return -1;
	if (a->issued && a->target_challenge_len == sizeof a->our_challenge &&
	    memcmp(a->target_challenge, a->our_challenge, sizeof a->our_challenge) == 0) {
		err_set(EACCES, MUTUAL_FAILED ": it sent back our own CHAP challenge");
		return -1;
	}
	log_debug("login: target chose CHAP with %s", chap_alg_name(a->alg));
	a->step = AUTH_CHALLENGED;
	return 0;
}

/* Append our CHAP_N, CHAP_R and, for mutual CHAP, our CHAP_I, CHAP_C. */
static int add_chap_response(struct auth *a, struct text_buf *tb)
{
	const struct chap_credentials *cred = a->cred;
	uint8_t response[CHAP_MAX_DIGEST];
	char hex[CHAP_HEX_SIZE(CHAP_CHALLENGE_LEN)], id[4];
	int len, rc = -1;

	len = chap_compute(a->alg, a->target_id, &cred->secret, a->target_challenge,
			   a->target_challenge_len, response);
	if (len < 0 || chap_format_binary(response, (size_t)len, hex, sizeof hex) < 0 ||
	    text_buf_add(tb, "CHAP_N", cred->user) < 0 || text_buf_add(tb, "CHAP_R", hex) < 0)
		goto out;
	if (cred->mutual) {
		if (chap_new_challenge(&a->our_id, a->our_challenge, sizeof a->our_challenge) < 0)
			goto out;
		a->issued = true;
		if (a->target_challenge_len == sizeof a->our_challenge &&
		    memcmp(a->target_challenge, a->our_challenge, sizeof a->our_challenge) == 0) {
			err_set(EACCES, MUTUAL_FAILED ": its CHAP challenge equals ours");
			goto out;
		}
		snprintf(id, sizeof id, "%u", a->our_id);
		if (chap_format_binary(a->our_challenge, sizeof a->our_challenge, hex,
				       sizeof hex) < 0 ||
		    text_buf_add(tb, "CHAP_I", id) < 0 || text_buf_add(tb, "CHAP_C", hex) < 0)
			goto out;
	}
	log_debug("login: answering the CHAP challenge as %s%s", cred->user,
		  cred->mutual ? " and challenging the target" : "");
	rc = 0;
out:
	OPENSSL_cleanse(response, sizeof response);
	return rc;
}

/* The target's answer to our response, with mutual CHAP its own CHAP_N
 * and CHAP_R (step AUTH_RESPONDED). */
static int take_verdict(struct auth *a, const struct chap_keys *k)
{
	const struct chap_credentials *cred = a->cred;
	uint8_t response[CHAP_MAX_BINARY];
	size_t len;

	if (k->a || k->i || k->c) {
		err_set(EPROTO, "protocol error: target sent CHAP_A, CHAP_I or CHAP_C after our response");
		return -1;
	}
	if (!cred->mutual) {
		if (k->n || k->r) {
			err_set(EPROTO, "protocol error: target sent CHAP_N or CHAP_R though we did not challenge it");
			return -1;
		}
		a->step = AUTH_DONE;
		log_debug("login: CHAP accepted for %s", cred->user);
		return 0;
	}
	if (!k->n || !k->r) {
		err_set(EACCES, MUTUAL_FAILED ": it did not answer our challenge");
		return -1;
	}
	if (strcmp(k->n, cred->target_user) != 0) {
		char shown[TEXT_SHOWN_SIZE];
		err_set(EACCES, MUTUAL_FAILED ": it answered as \"%s\", not %s",
			text_shown(k->n, shown), cred->target_user);
		return -1;
	}
	if (chap_parse_binary("CHAP_R", k->r, response, &len) < 0) {
		err_set(EACCES, MUTUAL_FAILED ": %s", err_msg());
		return -1;
	}
	if (!chap_verify(a->alg, a->our_id, &cred->target_secret, a->our_challenge,
			 sizeof a->our_challenge, response, len)) {
		err_set(EACCES, MUTUAL_FAILED ": wrong CHAP response for target user %s",
			cred->target_user);
		return -1;
	}
	a->step = AUTH_DONE;
	log_debug("login: CHAP accepted for %s; target authenticated as %s", cred->user,
		  cred->target_user);
	return 0;
}

/* Before a security-stage request: append the CHAP keys of this step and
 * say whether the request asks to leave the stage. */
static int auth_before_send(struct auth *a, struct text_buf *tb, bool *transit)
{
	*transit = false;
	switch (a->step) {
	case AUTH_NOT_USED:
	case AUTH_DONE:
		*transit = true;
		return 0;
	case AUTH_OFFERING:
		a->step = AUTH_OFFERED;
		return 0;
	case AUTH_CHOSEN:
		a->step = AUTH_ALGORITHMS;
		return text_buf_add(tb, "CHAP_A", a->md5_only ? "5" : "8,7,6,5");
	case AUTH_CHALLENGED:
		*transit = true;
		a->step = AUTH_RESPONDED;
		return add_chap_response(a, tb);
	default:
		err_set(EPROTO, "internal error: login sends in CHAP step %d", (int)a->step);
		return -1;
	}
}

/* After a successful security-stage response: take its CHAP keys. */
static int auth_after_response(struct login *l, const union iscsi_bhs *rsp,
			       const struct iscsi_params *params)
{
	struct auth *a = l->auth;
	bool transit = rsp->login_rsp.flags & ISCSI_LOGIN_TRANSIT;
	struct chap_keys k;

	if (collect_chap_keys(l, &k) < 0)
		return -1;
	switch (a->step) {
	case AUTH_OFFERED:
		return take_auth_method(l, &k, transit, params->auth_method);
	case AUTH_ALGORITHMS:
		return take_challenge(a, &k, transit);
	case AUTH_RESPONDED:
		return take_verdict(a, &k);
	default:
		if (has_chap_keys(&k)) {
			err_set(EPROTO, "protocol error: target sent CHAP keys outside a CHAP exchange");
			return -1;
		}
		return 0;
	}
}

/* A Login Response rejected the login during CHAP: say so in the words
 * of the issue and decide whether an MD5-only offer is worth a try. */
static void auth_explain_reject(struct login *l)
{
	struct auth *a = l->auth;
	uint8_t d = l->status_detail;
	bool auth_like = d == 0x00 || d == 0x01 || d == 0x07 || d == 0x0b;

	if (l->status_class != ISCSI_LOGIN_INITIATOR_ERROR || !auth_like)
		return;
	if (a->step == AUTH_ALGORITHMS) {
		a->retry_md5 = true;
		err_set(EACCES, "authentication failed: target rejected CHAP_A=%s (status 0x02%02x)",
			a->md5_only ? "5" : "8,7,6,5", d);
	} else if (a->step == AUTH_RESPONDED) {
		a->retry_md5 = a->alg != CHAP_ALG_MD5;
		err_set(EACCES, "authentication failed: target rejected CHAP response for user %s",
			a->cred->user);
	}
}

/* Leaving the security stage: CHAP must be finished if it was chosen,
 * and an AuthMethod must have been agreed. */
static int check_security_done(const struct login *l, const struct iscsi_params *params)
{
	enum auth_step step = l->auth->step;

	if (step != AUTH_NOT_USED && step != AUTH_DONE) {
		err_set(EACCES, "login failed: target left the security stage before CHAP was finished");
		return -1;
	}
	if (!params->auth_method[0]) {
		err_set(EPROTO, "login failed: target left the security stage without choosing an AuthMethod");
		return -1;
	}
	if (step == AUTH_DONE && strcmp(params->auth_method, "None") == 0 && !l->auth->discovery)
		log_warn("target %s asks for no authentication; the CHAP credentials are not used",
			 l->cfg->target_name);
	return 0;
}

/* ---- one login attempt, as a machine fed Login Responses ---- */

/* What attempt_start() and attempt_take() return besides -1 (the login
 * failed: err_set(), and l->status_class when the target said so). */
enum attempt_step {
	ATTEMPT_DONE = 0,   /* full feature phase: the result is filled in */
	ATTEMPT_SEND = 1,   /* attempt_request() has the next request */
};

/* One login attempt on one connection, from the first Login Request to
 * the full feature phase.  It does no I/O: whoever drives it sends the
 * request attempt_request() gives, places each part of the answer where
 * attempt_place() says and hands its header to attempt_take(), until the
 * attempt is done or fails.  struct login_machine holds it. */
struct attempt {
	struct login *l;                  /* the login (stage, sequence numbers, text) */
	struct login_result *out;         /* filled in as the login goes; whole when done */
	struct text_neg neg;              /* the operational negotiation (text.c) */
	uint8_t *sendbuf;                 /* the text of the next request */
	struct text_buf tb;               /* over sendbuf: answers and offers gather here */
	bool offered[4];                  /* our offers of each stage went out */
	int exchange;                     /* request/response exchanges begun */
	bool transit;                     /* the next request asks to leave the stage */
	enum iscsi_login_stage next;      /* ... for this stage */
	bool asked_transit;               /* the exchange's request (not an empty one
	                                   * asking for the rest of an answer) asked
	                                   * to leave the stage: the answer may
	                                   * leave it only then */
};

/* Make the request of the next exchange: our answers (already in tb),
 * the offers of this stage if they have not gone, the CHAP step.
 * Returns ATTEMPT_SEND, or -1 with err_set(). */
static int attempt_prepare(struct attempt *a)
{
	struct login *l = a->l;

	if (a->exchange++ == MAX_EXCHANGES) {
		err_set(EPROTO, "login failed: no agreement after %d exchanges", MAX_EXCHANGES);
		return -1;
	}
	a->next = l->stage == ISCSI_STAGE_SECURITY ? ISCSI_STAGE_OPERATIONAL :
						     ISCSI_STAGE_FULL_FEATURE;
	a->transit = true;
	if (!a->offered[l->stage]) {
		if (text_neg_offer(&a->neg, l->stage, &a->tb) < 0)
			return -1;
		a->offered[l->stage] = true;
	}
	if (l->stage == ISCSI_STAGE_SECURITY && auth_before_send(l->auth, &a->tb, &a->transit) < 0)
		return -1;
	a->asked_transit = a->transit;
	l->text_len = 0;        /* the answer's text starts anew */
	return ATTEMPT_SEND;
}

/* Begin an attempt of @l, whose result goes to @out.  Returns
 * ATTEMPT_SEND, or -1 with err_set(); attempt_end() in both cases. */
static int attempt_start(struct attempt *a, struct login *l, struct login_result *out)
{
	memset(a, 0, sizeof *a);
	a->l = l;
	a->out = out;
	a->sendbuf = malloc(LOGIN_MAX_SEGMENT);
	a->tb = (struct text_buf){ .data = a->sendbuf, .len = 0, .cap = LOGIN_MAX_SEGMENT };
	l->text = malloc(LOGIN_MAX_TEXT);
	if (!a->sendbuf || !l->text) {
		err_set(ENOMEM, "out of memory");
		return -1;
	}
	text_params_defaults(&out->params);
	text_neg_init(&a->neg, l->cfg, &out->params);
	return attempt_prepare(a);
}

/* The request to send now: its header in @bhs, its text at *@text (*@len
 * bytes, maybe none), which stays valid until the next attempt_take(). */
static void attempt_request(struct attempt *a, union iscsi_bhs *bhs, const uint8_t **text,
			    size_t *len)
{
	build_request(a->l, a->transit, a->next, bhs);
	*text = a->tb.data;
	*len = a->tb.len;
	a->tb.len = 0;          /* (what the answer brings is gathered anew) */
}

/* Where the text of the answer part with header @rsp goes.  Returns 0, or
 * -1 with err_set(). */
static int attempt_place(struct attempt *a, const union iscsi_bhs *rsp, uint8_t **dst)
{
	return response_place(a->l, rsp, dst);
}

/* An answer part came, header @rsp, its text where attempt_place() said.
 * Returns ATTEMPT_SEND (attempt_request() has the next request: an empty
 * one for the rest of a continued answer, or the next exchange's),
 * ATTEMPT_DONE, or -1 with err_set(). */
static int attempt_take(struct attempt *a, const union iscsi_bhs *rsp)
{
	struct login *l = a->l;
	struct login_result *out = a->out;
	int part = response_part(l, rsp);

	if (part < 0) {
		if (l->stage == ISCSI_STAGE_SECURITY && l->status_class)
			auth_explain_reject(l);
		return -1;
	}
	if (part == PART_MORE) {
		/* ask for the rest with an empty request */
		a->transit = false;
		a->next = 0;
		return ATTEMPT_SEND;
	}
	if (text_neg_response(&a->neg, l->text, l->text_len, &a->tb) < 0)
		return -1;
	if (l->stage == ISCSI_STAGE_SECURITY && auth_after_response(l, rsp, &out->params) < 0)
		return -1;
	if (rsp->login_rsp.flags & ISCSI_LOGIN_TRANSIT) {
		uint8_t nsg = rsp->login_rsp.flags & ISCSI_LOGIN_STAGE_MASK;
		/* "the T bit MUST NOT be set to 1 if the T bit in the request
		 * was set to 0" (RFC 7143, Login Response): a stage we did not
		 * finish, as the security stage while we offer CHAP, cannot be
		 * left for us.  (A CHAP skipped so was refused above, louder.) */
		if (!a->asked_transit) {
			err_set(EPROTO, "protocol error: target leaves login stage %u, though our request did not ask to (T=1 in answer to T=0)",
				l->stage);
			return -1;
		}
		if (nsg == 2 || nsg <= l->stage) {
			err_set(EPROTO, "protocol error: target moves login from stage %u to %u",
				l->stage, nsg);
			return -1;
		}
		if (l->stage == ISCSI_STAGE_SECURITY && check_security_done(l, &out->params) < 0)
			return -1;
		l->stage = nsg;
		if (nsg == ISCSI_STAGE_FULL_FEATURE) {
			l->tsih = get_be16(rsp->login_rsp.tsih);
			if (text_neg_finish(&a->neg) < 0)
				return -1;
			out->tsih = l->tsih;
			out->cmdsn = l->cmdsn;
			/* The first command takes the login's CmdSN (RFC 7143
			 * 4.2.2.1); a target that expects another would drop
			 * those below it unanswered: numbered from its */
			if (l->exp_cmdsn != l->cmdsn) {
				log_warn("target expects CmdSN %u after the login, not %u; "
					 "numbering commands from %u", l->exp_cmdsn, l->cmdsn,
					 l->exp_cmdsn);
				out->cmdsn = l->exp_cmdsn;
			}
			out->exp_cmdsn = l->exp_cmdsn;
			out->max_cmdsn = l->max_cmdsn;
			out->exp_statsn = l->exp_statsn;
			return ATTEMPT_DONE;
		}
	}
	return attempt_prepare(a);
}

/* Free what the attempt holds. */
static void attempt_end(struct attempt *a)
{
	free(a->sendbuf);
	a->sendbuf = NULL;
	free(a->l->text);
	a->l->text = NULL;
}

/* ---- the whole login: attempts, redirects, the MD5 retry ---- */

/* login_run() as a machine that does no I/O (login.h): attempts one after
 * the other, each on a connection of its own when the last one ended in a
 * redirect or a CHAP algorithm refusal. */
struct login_machine {
	const struct text_config *cfg;    /* what we offer */
	uint8_t isid[6];                  /* our session ID */
	uint16_t tsih;                    /* 0 for a new session, else the target's */
	struct login_result *out;         /* the result, filled in as the login goes */
	struct auth auth;                 /* CHAP, across the attempts */
	struct login l;                   /* the attempt under way: stage, numbers */
	struct attempt a;                 /* ... and its machine */
	bool attempt_live;                /* a is started: attempt_end() is due */
	unsigned hops;                    /* redirects followed */
	char host[256];                   /* the portal of the connection; on
	                                   * LOGIN_STEP_CONNECT, the one to connect to */
	uint16_t port;                    /* ... and its port */
	bool can_connect;                 /* the driver can connect elsewhere (a
	                                   * conn that is not an attached fd) */
	char peer[300];                   /* the connection's "host:port" for messages */
	bool redirecting;                 /* the connect asked for follows a redirect */
	bool permanent;                   /* ... a permanent one (0x0102) */
	char why[700];                    /* "redirected from A to B": a failed
	                                   * connect's message begins so */
};

struct login_machine *login_machine_new(const struct text_config *cfg, const uint8_t isid[6],
					uint16_t tsih, struct login_result *out, const char *host,
					uint16_t port, const char *peer)
{
	struct login_machine *m = calloc(1, sizeof *m);

	if (!m) {
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	m->cfg = cfg;
	memcpy(m->isid, isid, 6);
	m->tsih = tsih;
	m->out = out;
	m->auth = (struct auth){
		.cred = cfg->chap, .discovery = cfg->discovery,
		.step = cfg->chap ? AUTH_OFFERING : AUTH_NOT_USED,
	};
	m->can_connect = host && host[0];
	snprintf(m->host, sizeof m->host, "%s", host ? host : "");
	m->port = port;
	snprintf(m->peer, sizeof m->peer, "%s", peer);
	out->moved = false;
	out->moved_host[0] = '\0';
	out->moved_port = 0;
	out->status_class = 0;
	out->status_detail = 0;
	return m;
}

int login_machine_begin(struct login_machine *m)
{
	if (m->attempt_live)
		attempt_end(&m->a);
	/* what ended an earlier attempt is not this one's */
	m->out->status_class = 0;
	m->out->status_detail = 0;
	m->l = (struct login){
		.peer = m->peer, .cfg = m->cfg, .isid = m->isid, .tsih = m->tsih,
		.cmdsn = 1, .exp_statsn = 0, .stage = ISCSI_STAGE_SECURITY,
		.auth = &m->auth,
	};
	m->attempt_live = true;
	return attempt_start(&m->a, &m->l, m->out);
}

void login_machine_request(struct login_machine *m, union iscsi_bhs *bhs,
			   const uint8_t **text, size_t *len)
{
	attempt_request(&m->a, bhs, text, len);
}

int login_machine_place(struct login_machine *m, const union iscsi_bhs *rsp, uint8_t **dst)
{
	return attempt_place(&m->a, rsp, dst);
}

/* The attempt failed: a redirect to follow or an MD5-only retry asks for
 * a connection (LOGIN_STEP_CONNECT); else -1, the error as it is. */
static int attempt_failed(struct login_machine *m)
{
	struct login *l = &m->l;
	struct auth *auth = &m->auth;

	m->out->status_class = l->status_class;
	m->out->status_detail = l->status_detail;
	if (l->status_class == ISCSI_LOGIN_REDIRECT) {
		/* another portal: the login starts over there, CHAP with the
		 * full algorithm list again */
		char where[PORTAL_TEXT_MAX];

		portal_format(where, sizeof where, l->redirect_host, l->redirect_port);
		if (++m->hops > LOGIN_MAX_REDIRECTS) {
			err_set(ELOOP, "login failed: too many redirects (%d; the last from %s to %s)",
				LOGIN_MAX_REDIRECTS, m->peer, where);
			return -1;
		}
		if (!m->can_connect) {
			err_set(EHOSTUNREACH, "login failed: target moved to %s, which this connection cannot follow",
				where);
			return -1;
		}
		log_debug("login: %s at %s to %s (redirect %u); following",
			  login_status_text(l->status_class, l->status_detail), m->peer, where,
			  m->hops);
		snprintf(m->why, sizeof m->why, "redirected from %s to %s", m->peer, where);
		m->redirecting = true;
		m->permanent = l->status_detail == 0x02;
		snprintf(m->host, sizeof m->host, "%s", l->redirect_host);
		m->port = l->redirect_port;
		auth->step = m->cfg->chap ? AUTH_OFFERING : AUTH_NOT_USED;
		auth->md5_only = false;
		auth->retry_md5 = false;
		return LOGIN_STEP_CONNECT;
	}
	if (!auth->retry_md5 || auth->md5_only)
		return -1;
	log_debug("login: %s; trying again offering CHAP_A=5 (MD5) only", err_msg());
	if (!m->can_connect) {
		err_set(ENOTCONN, "cannot connect %s again: it was not made by connecting", m->peer);
		return -1;
	}
	m->redirecting = false;
	auth->md5_only = true;
	auth->retry_md5 = false;
	auth->step = AUTH_OFFERING;
	return LOGIN_STEP_CONNECT;
}

int login_machine_take(struct login_machine *m, const union iscsi_bhs *rsp)
{
	int step = attempt_take(&m->a, rsp);

	if (step == ATTEMPT_SEND)
		return LOGIN_STEP_SEND;
	if (step == ATTEMPT_DONE) {
		m->out->status_class = 0;
		m->out->status_detail = 0;
		return LOGIN_STEP_DONE;
	}
	return attempt_failed(m);
}

const char *login_machine_portal(const struct login_machine *m, uint16_t *port)
{
	*port = m->port;
	return m->host;
}

int login_machine_connected(struct login_machine *m, const char *peer)
{
	snprintf(m->peer, sizeof m->peer, "%s", peer);
	if (m->redirecting && m->permanent) {
		m->out->moved = true;
		snprintf(m->out->moved_host, sizeof m->out->moved_host, "%s", m->host);
		m->out->moved_port = m->port;
	}
	return login_machine_begin(m);
}

void login_machine_connect_failed(struct login_machine *m)
{
	if (m->redirecting)
		err_set(err_errno(), "login failed: %s: %s", m->why, err_msg());
}

void login_machine_free(struct login_machine *m)
{
	if (!m)
		return;
	if (m->attempt_live)
		attempt_end(&m->a);
	OPENSSL_cleanse(m, sizeof *m);
	free(m);
}

/* Send the request of @m on the blocking @c and receive the answer's
 * header and text.  Returns what login_machine_take() says, or -1 with
 * err_set(). */
static int exchange_blocking(struct login_machine *m, struct conn *c)
{
	union iscsi_bhs bhs;
	const uint8_t *text;
	size_t len;
	uint8_t *dst;

	login_machine_request(m, &bhs, &text, &len);
	struct iovec v = { (void *)text, len };
	if (conn_send_pdu(c, &bhs, &v, len ? 1 : 0, (uint32_t)len, false) < 0 ||
	    conn_recv_bhs(c, &bhs) < 0 || login_machine_place(m, &bhs, &dst) < 0 ||
	    conn_recv_data(c, dst, pdu_data_len(&bhs)) < 0)
		return -1;
	return login_machine_take(m, &bhs);
}

int login_run(struct conn *c, const struct text_config *cfg, const uint8_t isid[6],
	      uint16_t tsih, struct login_result *out)
{
	struct login_machine *m = login_machine_new(cfg, isid, tsih, out, c->host, c->port,
						    c->peer);
	int step = m ? login_machine_begin(m) : -1;

	while (step == LOGIN_STEP_SEND || step == LOGIN_STEP_CONNECT) {
		if (step == LOGIN_STEP_SEND) {
			step = exchange_blocking(m, c);
			continue;
		}
		/* a new connection, within the same deadline */
		uint16_t port;
		const char *host = login_machine_portal(m, &port);
		int timeout_ms = c->connect_timeout_ms;
		int64_t deadline_ns = c->deadline_ns;

		conn_close(c);
		if (conn_connect_until(c, host, port, timeout_ms, deadline_ns) < 0) {
			login_machine_connect_failed(m);
			step = -1;
			break;
		}
		step = login_machine_connected(m, c->peer);
	}
	if (step == LOGIN_STEP_DONE) {
		c->header_digest = out->params.header_digest;
		c->data_digest = out->params.data_digest;
	}
	login_machine_free(m);
	return step == LOGIN_STEP_DONE ? 0 : -1;
}

/* Whether a failed login is worth trying again at start-up: the target
 * dropped the connection while we logged in, or said "try later". */
static bool login_may_retry(const struct login_result *lr)
{
	int e = err_errno();

	if (lr->status_class)
		return lr->status_class == ISCSI_LOGIN_TARGET_ERROR;
	return e == EPIPE || e == ECONNRESET;
}

void login_retry_begin(struct login_retry *r)
{
	r->start_ms = mono_now_ms();
	r->delay_ms = 100;
	r->tries = 1;
}

void login_retry_end(const struct login_retry *r)
{
	if (r->tries > 1)
		err_set(err_errno(), "%s%s (%u tries in %.1f s)",
			strncmp(err_msg(), "login failed", 12) ? "login failed: " : "",
			err_msg(), r->tries, (double)(mono_now_ms() - r->start_ms) / 1000.0);
}

int login_retry_after(struct login_retry *r, const struct login_result *lr, int retry_ms,
		      const char *host, uint16_t port)
{
	int pause_ms = r->delay_ms;

	if (retry_ms <= 0 || !login_may_retry(lr) ||
	    mono_now_ms() + pause_ms - r->start_ms >= retry_ms) {
		login_retry_end(r);
		return -1;
	}
	char portal[PORTAL_TEXT_MAX];

	portal_format(portal, sizeof portal, host, port);
	log_debug("login to %s: %s; trying again in %d ms", portal, err_msg(), pause_ms);
	r->delay_ms = pause_ms < 1000 ? pause_ms * 2 : 2000;
	r->tries++;
	return pause_ms;
}

int login_connect(struct conn *c, const char *host, uint16_t port, int timeout_ms,
		  int retry_ms, const struct text_config *cfg, const uint8_t isid[6],
		  uint16_t tsih, struct login_result *out)
{
	int64_t deadline_ns = conn_deadline_after(timeout_ms);
	struct login_retry r;

	login_retry_begin(&r);
	for (;;) {
		out->status_class = 0;
		if (conn_connect_until(c, host, port, timeout_ms, deadline_ns) < 0) {
			login_retry_end(&r);
			return -1;
		}
		if (login_run(c, cfg, isid, tsih, out) == 0) {
			/* full feature phase: the session's own timeouts from now on */
			c->deadline_ns = 0;
			return 0;
		}
		if (err_errno() == ETIMEDOUT && conn_deadline_passed(c))
			err_set(ETIMEDOUT, "login failed: %s did not finish the login within %g s",
				c->peer, timeout_ms / 1000.0);
		conn_close(c);
		int pause_ms = login_retry_after(&r, out, retry_ms, host, port);
		if (pause_ms < 0)
			return -1;
		struct timespec ts = { pause_ms / 1000, (long)(pause_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
}
