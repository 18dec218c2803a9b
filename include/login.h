/* login.h: the login phase of one connection (RFC 7143 §6.3, §11.12-13).
 *
 * A state machine over the three stages: security (AuthMethod; CHAP,
 * one-way or mutual, when credentials are configured), operational
 * negotiation, full feature phase.  It runs synchronously on a freshly connected conn, before the
 * session's threads exist, with the conn's receive timeout bounding every
 * answer.
 */
#ifndef ISCSIFS_LOGIN_H
#define ISCSIFS_LOGIN_H

#include <stdint.h>

#include "conn.h"
#include "text.h"

/* Where the login left the session's sequence numbers and parameters. */
struct login_result {
	struct iscsi_params params;  /* negotiated operational parameters */
	uint16_t tsih;               /* target-assigned session handle */
	uint32_t cmdsn;              /* CmdSN of the first command to send */
	uint32_t exp_cmdsn;          /* target's ExpCmdSN from the last response */
	uint32_t max_cmdsn;          /* target's MaxCmdSN from the last response */
	uint32_t exp_statsn;         /* next StatSN we expect */
};

/* Log in on @c with ISID @isid (and @tsih, 0 for a new session), with
 * CHAP when cfg->chap is set.  On success returns 0 and fills @out; the
 * conn's digest flags are set as negotiated.  On failure returns -1 with
 * err_set() naming the cause in words a user understands ("target not
 * found: iqn...", "authorization failure", "authentication failed: target
 * rejected CHAP response for user alice", "target failed mutual
 * authentication: ...", "redirected to ...").  The errno is ENOENT for an
 * unknown target, EACCES for authentication/authorization, EPROTO for a
 * protocol violation, EIO otherwise.  A target that refuses our CHAP
 * algorithm list is tried once more offering MD5 only: then @c is closed
 * and connected again (conn_reconnect()), so @c must come from
 * conn_connect() for that retry to happen. */
int login_run(struct conn *c, const struct text_config *cfg, const uint8_t isid[6],
	      uint16_t tsih, struct login_result *out);

/* A human-readable text for a login status class/detail pair. */
const char *login_status_text(uint8_t status_class, uint8_t status_detail);

#endif /* ISCSIFS_LOGIN_H */
