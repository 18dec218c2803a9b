/* test_login_chap.c: the CHAP steps of login.c against a scripted target.
 *
 * A thread listens on 127.0.0.1 and plays the target of one scenario per
 * table row: what it answers to AuthMethod, which CHAP_A it picks on each
 * connection, whether it rejects our list or our response, what it sends
 * as CHAP_I, CHAP_C and (mutual) CHAP_N / CHAP_R.  The real login_run()
 * logs in over TCP, so the retry offering MD5 only (a new connection)
 * runs as it does against tgtd.  Each row says how the login must end
 * (success, or the errno and words of the message), how many
 * connections it takes, and the script checks what we sent: AuthMethod,
 * the CHAP_A offer of each connection, a CHAP_R that verifies.  Every
 * row runs twice: with login_run(), and through the event loop's driver
 * (login_loop.h), which must come to the same end.
 *
 * Thread model: the test thread runs login_run() or waits for the loop's
 * login (login_on_loop.h); one target thread per
 * scenario, joined before the next.  The scenario struct is written by
 * the target thread and read by the test thread only after the join.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "chap.h"
#include "conn.h"
#include "log.h"
#include "login.h"
#include "login_on_loop.h"
#include "login_peer.h"
#include "testlib.h"

#define USER "alice"
#define SECRET "alice-secret-123"
#define TARGET_USER "tgt"
#define TARGET_SECRET "target-secret-456"
#define MAX_CONNS 3

/* How the scripted target answers our mutual challenge. */
enum mutual_reply {
	MR_RIGHT,        /* CHAP_N=tgt and the right CHAP_R (hex) */
	MR_RIGHT_BASE64, /* the same, CHAP_R in base64 */
	MR_MISSING,      /* neither CHAP_N nor CHAP_R */
	MR_WRONG_SECRET, /* a CHAP_R made with another secret */
	MR_WRONG_NAME,   /* CHAP_N=impostor */
};

/* One scenario: the target's behaviour and what the login must do. */
struct scenario {
	const char *name;             /* for failure messages */
	bool chap;                    /* we have credentials */
	bool mutual;                  /* ... and ask the target to authenticate */
	const char *auth_answer;      /* AuthMethod answer ("CHAP" when NULL) */
	bool transit_on_choice;       /* T=1 with AuthMethod=CHAP: skips CHAP */
	bool transit_on_none;         /* T=1 with AuthMethod=None, to our T=0 */
	bool transit_on_challenge;    /* T=1 with the challenge: skips our response */
	const char *alg[MAX_CONNS];   /* CHAP_A answer per connection ("5" when NULL) */
	bool reject_list[MAX_CONNS];  /* login reject (0x0200) instead of a challenge */
	bool reject_response[MAX_CONNS]; /* login reject (0x0201) of our response */
	const char *chap_i;           /* CHAP_I sent ("7" when NULL) */
	const char *chap_c;           /* CHAP_C sent (a fixed 16 bytes when NULL) */
	bool reflect;                 /* on a later connection, send our earlier CHAP_C back */
	enum mutual_reply reply;      /* mutual: how the target answers */
	bool stray_response;          /* one-way: send CHAP_N/CHAP_R anyway */

	/* expected */
	int rc;                       /* login_run()'s result */
	int err;                      /* its errno when it fails */
	const char *words;            /* in its message when it fails */
	int conns;                    /* connections the login takes */
	const char *second_offer;     /* CHAP_A offered on connection 2, if any */

	/* seen by the target thread */
	int fd;                       /* the listening socket */
	int nconns;                   /* connections accepted */
	char auth_offer[64];          /* AuthMethod we offered (first connection) */
	char alg_offer[MAX_CONNS][32];/* CHAP_A we offered per connection */
	bool response_ok;             /* our last CHAP_R verified */
	char our_challenge[CHAP_HEX_SIZE(CHAP_CHALLENGE_LEN)]; /* our last CHAP_C */
};

/* ---- the scripted target's behaviour ---- */

static struct chap_secret secret_of(const char *text)
{
	struct chap_secret s = { { 0 }, 0 };

	chap_secret_set(&s, text, strlen(text));
	return s;
}

/* The challenge the target sends on connection @n. */
static const char *target_challenge(struct scenario *sc, int n)
{
	if (sc->reflect && n > 0 && sc->our_challenge[0])
		return sc->our_challenge;
	return sc->chap_c ? sc->chap_c : "0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a";
}

/* Check our CHAP_N / CHAP_R against what the target sent. */
static bool response_verifies(const struct request *r, int alg, const char *chap_i,
			      const char *chap_c)
{
	struct chap_secret s = secret_of(SECRET);
	uint8_t chal[CHAP_MAX_BINARY], resp[CHAP_MAX_BINARY];
	size_t clen, rlen;
	const char *n = value_of(r, "CHAP_N"), *rv = value_of(r, "CHAP_R");
	/* (read apart from the code under test: decimal or 0x hex) */
	unsigned long id = strtoul(chap_i, NULL, 0);

	return n && rv && strcmp(n, USER) == 0 && id <= 255 &&
	       chap_parse_binary("CHAP_C", chap_c, chal, &clen) == 0 &&
	       chap_parse_binary("CHAP_R", rv, resp, &rlen) == 0 &&
	       chap_verify(alg, (uint8_t)id, &s, chal, clen, resp, rlen);
}

/* Base64 of @len bytes into @out (enough room assumed). */
static void base64(const uint8_t *in, size_t len, char *out)
{
	static const char d[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < len ? in[i + 2] : 0);
		out[o++] = d[v >> 18 & 63];
		out[o++] = d[v >> 12 & 63];
		out[o++] = i + 1 < len ? d[v >> 6 & 63] : '=';
		out[o++] = i + 2 < len ? d[v & 63] : '=';
	}
	out[o] = '\0';
}

/* The target's CHAP_N / CHAP_R answering our mutual challenge in @r. */
static void add_mutual_reply(struct scenario *sc, const struct request *r, int alg,
			     struct answer *a)
{
	struct chap_secret s = secret_of(sc->reply == MR_WRONG_SECRET ? "not-the-secret-1" :
					 TARGET_SECRET);
	uint8_t chal[CHAP_MAX_BINARY], digest[CHAP_MAX_DIGEST], id = 0;
	char text[2 + 2 * CHAP_MAX_BINARY + 1];
	size_t clen = 0;
	int dlen;

	if (sc->reply == MR_MISSING)
		return;
	if (!value_of(r, "CHAP_I") || !value_of(r, "CHAP_C") ||
	    chap_parse_identifier(value_of(r, "CHAP_I"), &id) < 0 ||
	    chap_parse_binary("CHAP_C", value_of(r, "CHAP_C"), chal, &clen) < 0)
		return;
	dlen = chap_compute(alg, id, &s, chal, clen, digest);
	if (dlen < 0)
		return;
	if (sc->reply == MR_RIGHT_BASE64) {
		memcpy(text, "0b", 2);
		base64(digest, (size_t)dlen, text + 2);
	} else {
		chap_format_binary(digest, (size_t)dlen, text, sizeof text);
	}
	add(a, "CHAP_N", sc->reply == MR_WRONG_NAME ? "impostor" : TARGET_USER);
	add(a, "CHAP_R", text);
}

/* The security stage of one connection.  Returns 0 when the login may
 * go on to the operational stage, -1 when the connection is done. */
static int serve_security(struct scenario *sc, int fd, int n)
{
	struct request r;
	struct answer a = { .len = 0 };
	const char *alg_text = sc->alg[n] ? sc->alg[n] : "5";
	const char *chap_i = sc->chap_i ? sc->chap_i : "7";
	const char *chap_c = target_challenge(sc, n);
	int alg = atoi(alg_text);

	if (read_request(fd, &r) < 0)
		return -1;
	if (n == 0)
		snprintf(sc->auth_offer, sizeof sc->auth_offer, "%s",
			 value_of(&r, "AuthMethod") ? value_of(&r, "AuthMethod") : "");
	add(&a, "AuthMethod", sc->auth_answer ? sc->auth_answer : sc->chap ? "CHAP" : "None");
	if (!sc->chap || (sc->auth_answer && strcmp(sc->auth_answer, "None") == 0)) {
		/* T=1 only in answer to T=1 (RFC 7143): a request that offers
		 * CHAP stays in the stage, and the next one leaves it */
		if (!(r.bhs[1] & 0x80) && !sc->transit_on_none) {
			respond(fd, &r, 0, 0, 0, &a);
			if (read_request(fd, &r) < 0)
				return -1;
			a.len = 0;
		}
		respond(fd, &r, 0x80 | 1, 0, 0, &a);            /* on to operational */
		return 0;
	}
	respond(fd, &r, sc->transit_on_choice ? 0x80 | 1 : 0, 0, 0, &a);
	if (sc->transit_on_choice)
		return -1;

	if (read_request(fd, &r) < 0)
		return -1;
	snprintf(sc->alg_offer[n], sizeof sc->alg_offer[n], "%s",
		 value_of(&r, "CHAP_A") ? value_of(&r, "CHAP_A") : "");
	if (sc->reject_list[n]) {
		respond(fd, &r, 0, 2, 0, NULL);
		return -1;
	}
	a.len = 0;
	add(&a, "CHAP_A", alg_text);
	add(&a, "CHAP_I", chap_i);
	add(&a, "CHAP_C", chap_c);
	respond(fd, &r, sc->transit_on_challenge ? 0x80 | 1 : 0, 0, 0, &a);
	if (sc->transit_on_challenge || read_request(fd, &r) < 0)
		return -1;

	sc->response_ok = response_verifies(&r, alg, chap_i, chap_c);
	if (value_of(&r, "CHAP_C"))
		snprintf(sc->our_challenge, sizeof sc->our_challenge, "%s", value_of(&r, "CHAP_C"));
	if (sc->reject_response[n] || !sc->response_ok) {
		respond(fd, &r, 0, 2, 1, NULL);
		return -1;
	}
	a.len = 0;
	if (sc->mutual)
		add_mutual_reply(sc, &r, alg, &a);
	if (sc->stray_response) {
		add(&a, "CHAP_N", TARGET_USER);
		add(&a, "CHAP_R", "0x00112233445566778899aabbccddeeff");
	}
	respond(fd, &r, 0x80 | 1, 0, 0, &a);
	return 0;
}

static void *target_main(void *arg)
{
	struct scenario *sc = arg;

	for (int n = 0; n < MAX_CONNS; n++) {
		struct request r;
		int fd = accept(sc->fd, NULL, NULL);

		if (fd < 0)
			break;
		sc->nconns++;
		if (serve_security(sc, fd, n) == 0 && read_request(fd, &r) == 0)
			answer_operational(fd, &r);
		/* wait for our side to close, as a target that rejected would */
		while (read(fd, &r, sizeof r.bhs) > 0)
			;
		close(fd);
	}
	return NULL;
}

/* ---- running a scenario ---- */

static const struct scenario scenarios[] = {
	{ .name = "no credentials: None only", .chap = false, .rc = 0, .conns = 1 },
	{ .name = "one-way, MD5", .chap = true, .rc = 0, .conns = 1 },
	{ .name = "one-way, SHA3-256", .chap = true, .alg = { "8" }, .rc = 0, .conns = 1 },
	{ .name = "one-way, SHA-1", .chap = true, .alg = { "6" }, .rc = 0, .conns = 1 },
	{ .name = "one-way, base64 challenge", .chap = true, .alg = { "7" },
	  .chap_c = "0bABEiM0RVZneImaq7zN3u/w==", .rc = 0, .conns = 1 },
	{ .name = "one-way, target chooses None", .chap = true, .auth_answer = "None",
	  .rc = 0, .conns = 1 },
	/* RFC 7143: T=1 only in answer to T=1 */
	{ .name = "one-way, None leaving the stage unasked", .chap = true, .auth_answer = "None",
	  .transit_on_none = true, .rc = -1, .err = EPROTO, .words = "T=1 in answer to T=0",
	  .conns = 1 },
	{ .name = "mutual", .chap = true, .mutual = true, .alg = { "7" }, .rc = 0, .conns = 1 },
	{ .name = "mutual, base64 answer", .chap = true, .mutual = true,
	  .reply = MR_RIGHT_BASE64, .rc = 0, .conns = 1 },
	{ .name = "mutual, no answer", .chap = true, .mutual = true, .reply = MR_MISSING,
	  .rc = -1, .err = EACCES, .words = "target failed mutual authentication", .conns = 1 },
	{ .name = "mutual, wrong answer", .chap = true, .mutual = true,
	  .reply = MR_WRONG_SECRET, .rc = -1, .err = EACCES,
	  .words = "target failed mutual authentication: wrong CHAP response", .conns = 1 },
	{ .name = "mutual, wrong name", .chap = true, .mutual = true, .reply = MR_WRONG_NAME,
	  .rc = -1, .err = EACCES, .words = "target failed mutual authentication: it answered as",
	  .conns = 1 },
	{ .name = "mutual, target chooses None", .chap = true, .mutual = true,
	  .auth_answer = "None", .rc = -1, .err = EACCES,
	  .words = "target failed mutual authentication: it chose AuthMethod=None", .conns = 1 },
	{ .name = "list refused with CHAP_A=Reject: MD5 retry", .chap = true,
	  .alg = { "Reject", "5" }, .rc = 0, .conns = 2, .second_offer = "5" },
	{ .name = "list refused with a login reject: MD5 retry", .chap = true,
	  .reject_list = { true }, .rc = 0, .conns = 2, .second_offer = "5" },
	{ .name = "SHA-256 response rejected (tgtd): MD5 retry", .chap = true,
	  .alg = { "7", "5" }, .reject_response = { true }, .rc = 0, .conns = 2,
	  .second_offer = "5" },
	{ .name = "wrong secret: one retry, then the message", .chap = true,
	  .alg = { "7", "5", "5" }, .reject_response = { true, true, true }, .rc = -1,
	  .err = EACCES, .words = "authentication failed: target rejected CHAP response for user "
	  USER, .conns = 2, .second_offer = "5" },
	{ .name = "MD5 response rejected: no retry", .chap = true,
	  .reject_response = { true }, .rc = -1, .err = EACCES,
	  .words = "target rejected CHAP response for user " USER, .conns = 1 },
	{ .name = "retry answered with SHA-256", .chap = true, .alg = { "Reject", "7" },
	  .rc = -1, .err = EPROTO, .words = "not the 5 we offered", .conns = 2 },
	{ .name = "reflected challenge", .chap = true, .mutual = true, .alg = { "7", "5" },
	  .reject_response = { true }, .reflect = true, .rc = -1, .err = EACCES,
	  .words = "sent back our own CHAP challenge", .conns = 2 },
	{ .name = "skips CHAP after choosing it", .chap = true, .transit_on_choice = true,
	  .rc = -1, .err = EACCES, .words = "skipped", .conns = 1 },
	{ .name = "skips our response", .chap = true, .transit_on_challenge = true,
	  .rc = -1, .err = EACCES, .words = "skipped CHAP", .conns = 1 },
	{ .name = "CHAP_I out of range", .chap = true, .chap_i = "256", .rc = -1,
	  .err = EPROTO, .words = "CHAP_I", .conns = 1 },
	/* a number of RFC 7143 6.1 (LIO reads a 0x CHAP_I as hex too) */
	{ .name = "CHAP_I in hex", .chap = true, .chap_i = "0x1F", .rc = 0, .conns = 1 },
	{ .name = "CHAP_I in hex, out of range", .chap = true, .chap_i = "0x100", .rc = -1,
	  .err = EPROTO, .words = "CHAP_I", .conns = 1 },
	{ .name = "CHAP_C odd length", .chap = true, .chap_c = "0x123", .rc = -1,
	  .err = EPROTO, .words = "odd number", .conns = 1 },
	{ .name = "CHAP_C empty", .chap = true, .chap_c = "0x", .rc = -1, .err = EPROTO,
	  .words = "empty", .conns = 1 },
	{ .name = "CHAP_R from a target we did not challenge", .chap = true,
	  .stray_response = true, .rc = -1, .err = EPROTO, .words = "did not challenge",
	  .conns = 1 },
};

/* Run scenario @proto with login_run(), or @on_loop with the event loop's
 * driver (login_loop.h), which must come to the same end. */
static void run(const struct scenario *proto, bool on_loop)
{
	struct scenario *sc = calloc(1, sizeof *sc);
	struct chap_credentials cred;
	struct text_config cfg = {
		.initiator_name = "iqn.2026-11.org.iscsifs:test",
		.target_name = "iqn.2026-11.org.iscsifs.test:chap",
		.header_digest = DIGEST_PREF_NONE, .data_digest = DIGEST_PREF_NONE,
		.max_recv_dsl = 8192, .max_burst_length = 262144, .first_burst_length = 65536,
		.max_outstanding_r2t = 1, .immediate_data = true, .initial_r2t = true,
	};
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof sa;
	static const uint8_t isid[6] = { 0x80, 1, 2, 3, 4, 0 };
	struct login_result lr;
	struct conn c;
	pthread_t th;
	int rc;

	*sc = *proto;
	memset(&cred, 0, sizeof cred);
	snprintf(cred.user, sizeof cred.user, USER);
	chap_secret_set(&cred.secret, SECRET, strlen(SECRET));
	if (sc->mutual) {
		cred.mutual = true;
		snprintf(cred.target_user, sizeof cred.target_user, TARGET_USER);
		chap_secret_set(&cred.target_secret, TARGET_SECRET, strlen(TARGET_SECRET));
	}
	cfg.chap = sc->chap ? &cred : NULL;

	sc->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sc->fd < 0 || bind(sc->fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(sc->fd, 4) < 0 || getsockname(sc->fd, (struct sockaddr *)&sa, &slen) < 0 ||
	    pthread_create(&th, NULL, target_main, sc) != 0) {
		perror("scripted target");
		exit(99);
	}
	if (on_loop) {
		rc = login_on_loop(login_test_loop(), &c, "127.0.0.1", ntohs(sa.sin_port), 5000,
				   &cfg, isid, &lr);
	} else {
		rc = conn_connect(&c, "127.0.0.1", ntohs(sa.sin_port), 5000);
		if (rc == 0)
			rc = login_run(&c, &cfg, isid, 0, &lr);
	}
	int err = rc < 0 ? err_errno() : 0;
	char msg[512];
	snprintf(msg, sizeof msg, "%s", rc < 0 ? err_msg() : "");
	conn_close(&c);
	shutdown(sc->fd, SHUT_RDWR);
	pthread_join(th, NULL);
	close(sc->fd);

	test_checks++;
	if (rc != sc->rc || (rc < 0 && (err != sc->err || !strstr(msg, sc->words))) ||
	    sc->nconns != sc->conns ||
	    (sc->second_offer && strcmp(sc->alg_offer[1], sc->second_offer) != 0) ||
	    strcmp(sc->auth_offer, sc->chap ? "CHAP,None" : "None") != 0 ||
	    (sc->chap && sc->conns == 1 && !sc->auth_answer && !sc->transit_on_choice &&
	     strcmp(sc->alg_offer[0], "8,7,6,5") != 0) ||
	    (rc == 0 && sc->chap && !sc->auth_answer && !sc->response_ok)) {
		test_failures++;
		fprintf(stderr, "scenario \"%s\"%s: rc %d errno %d \"%s\", %d connections, "
			"AuthMethod=%s, CHAP_A offers \"%s\" \"%s\", response %s\n",
			sc->name, on_loop ? " (on a loop)" : "", rc, err, msg, sc->nconns, sc->auth_offer, sc->alg_offer[0],
			sc->alg_offer[1], sc->response_ok ? "verified" : "not verified");
	}
	for (const char *s = msg; rc < 0 && *s; s++)
		CHECK(strncmp(s, SECRET, strlen(SECRET)) != 0 &&
		      strncmp(s, TARGET_SECRET, strlen(TARGET_SECRET)) != 0);
	chap_credentials_wipe(&cred);
	free(sc);
}

int main(void)
{
	log_set_level(LOG_LEVEL_ERROR);
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
		run(&scenarios[i], false);
		run(&scenarios[i], true);
	}
	return test_done("test_login_chap");
}
