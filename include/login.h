/* login.h: the login phase of one connection (RFC 7143 §6.3, §11.12-13).
 *
 * A state machine over the three stages: security (AuthMethod; CHAP,
 * one-way or mutual, when credentials are configured), operational
 * negotiation, full feature phase.  login_run() runs it synchronously on a
 * freshly connected conn (login, discovery at start-up), with the conn's receive timeout bounding every
 * answer and its deadline (login_connect()'s) the whole login.
 */
#ifndef ISCSIFS_LOGIN_H
#define ISCSIFS_LOGIN_H

#include <stdbool.h>
#include <stddef.h>
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
	/* Redirects (status class 1) the login followed, see login_run(). */
	bool moved;                  /* one was permanent (0x0102): the target
	                              * asks to be logged in to at moved_host
	                              * from now on */
	char moved_host[256];        /* that portal's host (IPv6 without brackets) */
	uint16_t moved_port;         /* and its port */
	/* On failure: the status of the Login Response that ended the login,
	 * 0/0 when none did (no answer, a dropped connection, a violation). */
	uint8_t status_class;        /* its Status-Class */
	uint8_t status_detail;       /* its Status-Detail */
};

/* Most redirects one login follows before it fails with "login failed:
 * too many redirects (...)": a target sending us round in circles. */
#define LOGIN_MAX_REDIRECTS 8

/* Most Login Responses with C=1 and an empty data segment one login
 * attempt takes; the next fails it.  They carry nothing, and a target
 * that sends only these would keep us asking for the rest forever. */
#define LOGIN_MAX_EMPTY 8

/* Log in on @c with ISID @isid (and @tsih, 0 for a new session), with
 * CHAP when cfg->chap is set.  The login ends by c->deadline_ns when it
 * is set: a wait past it fails the login with ETIMEDOUT; redirects and
 * the MD5 retry keep it.  A target that sends more than a few continued
 * Login Responses without text fails the login (EPROTO).  On success
 * returns 0 and fills @out; the
 * conn's digest flags are set as negotiated.  On failure returns -1 with
 * err_set() naming the cause in words a user understands ("target not
 * found: iqn...", "authorization failure", "authentication failed: target
 * rejected CHAP response for user alice", "target failed mutual
 * authentication: ...", "too many redirects (...)").  The errno is ENOENT
 * for an unknown target, EACCES for authentication/authorization, EPROTO
 * for a protocol violation, ELOOP for too many redirects, EIO otherwise.
 * A target that refuses our CHAP algorithm list is tried once more
 * offering MD5 only: then @c is closed and connected again
 * (conn_reconnect()).
 *
 * Redirects (RFC 7143 §11.13.5, "target moved temporarily/permanently")
 * are followed: @c is closed, connected to the TargetAddress of the
 * answer (within c->connect_timeout_ms) and the login starts over there,
 * at most LOGIN_MAX_REDIRECTS times.  Afterwards @c is connected where the
 * login ended.  A permanent redirect is reported in out->moved (the last
 * one when there were several); what to do with it is the caller's
 * choice.  Both need @c to come from conn_connect(): on an attached fd a
 * redirect fails the login. */
int login_run(struct conn *c, const struct text_config *cfg, const uint8_t isid[6],
	      uint16_t tsih, struct login_result *out);

/* ---- the same login as a machine that does no I/O ----
 *
 * login_run() is a driver of it on a blocking conn; login_loop.h drives it
 * on an event loop.  The driver sends the request login_machine_request()
 * gives, receives the answer a part at a time (each part's header checked
 * and its text placed where login_machine_place() says) and hands each
 * part's header to login_machine_take(), which says what comes next.  The
 * messages and errno of a failure are login_run()'s. */

/* What the login machine asks of its driver (besides -1, failed). */
enum login_step {
	LOGIN_STEP_DONE = 0,    /* full feature phase: the result is filled in,
	                         * the digests are result->params' */
	LOGIN_STEP_SEND = 1,    /* send login_machine_request()'s request and
	                         * receive its answer */
	LOGIN_STEP_CONNECT = 2, /* close the connection, connect to
	                         * login_machine_portal() (within the login's
	                         * deadline), then login_machine_connected(),
	                         * or login_machine_connect_failed() */
};

struct login_machine;

/* A login with what login_run() takes, on a connection to @host:@port
 * (host "" for one that cannot be made again: an attached fd) known as
 * @peer in messages; its result goes to @out.  NULL with err_set(ENOMEM). */
struct login_machine *login_machine_new(const struct text_config *cfg, const uint8_t isid[6],
					uint16_t tsih, struct login_result *out, const char *host,
					uint16_t port, const char *peer);
/* Start the first attempt on the connection: LOGIN_STEP_SEND, or -1. */
int login_machine_begin(struct login_machine *m);
/* The request to send: its header in @bhs (DataSegmentLength is the
 * sender's to set), its text at *@text, *@len bytes, valid until the next
 * login_machine_take(). */
void login_machine_request(struct login_machine *m, union iscsi_bhs *bhs,
			   const uint8_t **text, size_t *len);
/* Where the text of the answer part with header @rsp goes (*@dst, room for
 * its DataSegmentLength).  Returns 0, or -1 with err_set(): the login
 * failed. */
int login_machine_place(struct login_machine *m, const union iscsi_bhs *rsp, uint8_t **dst);
/* An answer part is whole (header @rsp, text placed).  Returns a
 * LOGIN_STEP_*, or -1 with err_set(). */
int login_machine_take(struct login_machine *m, const union iscsi_bhs *rsp);
/* Where LOGIN_STEP_CONNECT asks to connect: the host, and its port in
 * *@port. */
const char *login_machine_portal(const struct login_machine *m, uint16_t *port);
/* The connection LOGIN_STEP_CONNECT asked for is made (@peer: its
 * "host:port"): the next attempt begins.  LOGIN_STEP_SEND, or -1. */
int login_machine_connected(struct login_machine *m, const char *peer);
/* The connection LOGIN_STEP_CONNECT asked for failed with err_set(): the
 * message is completed (which redirect it followed), and the login failed. */
void login_machine_connect_failed(struct login_machine *m);
/* Free @m (NULL is fine), wiping what CHAP held. */
void login_machine_free(struct login_machine *m);

/* Connect @c to @host:@port and login_run() there, all of it (connects,
 * redirects, retries) within @timeout_ms: one deadline on CLOCK_MONOTONIC
 * for the whole login, as iscsid's login timeout; a target still not done
 * then fails it with ETIMEDOUT, "login failed: HOST:PORT did not finish
 * the login within N s".
 * With @retry_ms > 0 (start-up), a target that drops the connection during
 * the login, or answers it with a target error (status class 3: "service
 * unavailable", "out of resources": try again later), is tried again with
 * backoff (0.1 s doubling to 2 s) for as long as the next try starts
 * within @retry_ms of the first (and before the deadline).  Returns 0 with
 * @c connected, logged in and without a deadline, or -1 with err_set()
 * (login_run()'s, with the number of tries when there were several) and
 * @c closed. */
int login_connect(struct conn *c, const char *host, uint16_t port, int timeout_ms,
		  int retry_ms, const struct text_config *cfg, const uint8_t isid[6],
		  uint16_t tsih, struct login_result *out);

/* The start-up retry of login_connect(), for a driver of its own (the
 * sessions' first logins on their loops, session_login.c): the tries of
 * one portal, begun with login_retry_begin(). */
struct login_retry {
	int64_t start_ms;             /* when the first try began (monotonic) */
	int delay_ms;                 /* the next pause */
	unsigned tries;               /* tries so far, the one under way included */
};

void login_retry_begin(struct login_retry *r);

/* A try failed (err_*() says why; @lr: what the target answered): the
 * pause in ms before the next try, counted (logged at debug level), when
 * login_connect() with @retry_ms would try again; or -1 when the login
 * failed for good (then as login_retry_end()). */
int login_retry_after(struct login_retry *r, const struct login_result *lr, int retry_ms,
		      const char *host, uint16_t port);

/* The login failed for good: err_set() names the tries and the time they
 * took when there were several, as login_connect() does. */
void login_retry_end(const struct login_retry *r);

/* The portal a redirecting Login Response names: the one
 * TargetAddress=host[:port][,portal-group-tag] among the @len bytes of
 * key=value text at @text (IPv6 hosts in brackets; port 3260 when
 * absent).  Fills @host (@host_cap bytes) and @port.  Returns 0, or -1
 * with err_set(EPROTO) when the text is malformed or has no TargetAddress,
 * more than one, or one that is not host[:port][,tag]. */
int login_parse_redirect(const uint8_t *text, size_t len, char *host, size_t host_cap,
			 uint16_t *port);

/* A human-readable text for a login status class/detail pair. */
const char *login_status_text(uint8_t status_class, uint8_t status_detail);

#endif /* ISCSIFS_LOGIN_H */
