/* test_login_deadline.c: logins and discoveries that never end (issue 12,
 * items 2 and 3) against a scripted target.
 *
 * Each row of the table is one target behaviour: answers that carry
 * nothing (continued Login Responses without text, NOP-Ins, Async
 * Messages, continued Text Responses without text) sent forever, answers
 * that keep coming but never finish (a few bytes of text, or a header a
 * byte at a time), silence, and the slow but legal forms (as many empty
 * continuations or NOP-Ins as the caps take, then the answer).  The real
 * login_connect() or discovery_run() runs against it over TCP on
 * 127.0.0.1 with a connect timeout of TIMEOUT_MS, which is also the
 * deadline of the whole login or discovery.  Each row says how it must
 * end (errno and words of the message, or success), whether it must end
 * by a cap (well before the deadline) or at the deadline, and for the
 * NOP-Ins that ask for an answer, that each got its NOP-Out.  Every login
 * row runs a second time through the event loop's driver (login_loop.h),
 * which must end the same way at the same time.  A last test
 * sends into a peer that never reads: the send stops at the deadline.
 *
 * Thread model: the test thread runs the login or discovery; one target
 * thread per row, joined before the next.  The row's copy is written by
 * the target thread and read by the test thread only after the join.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "deadline.h"
#include "discovery.h"
#include "log.h"
#include "login.h"
#include "login_on_loop.h"
#include "login_peer.h"
#include "testlib.h"

/* The connect timeout, and so the deadline, of every row. */
#define TIMEOUT_MS 1000
/* How late after the deadline a row may end (a loaded machine, ASan). */
#define SLACK_MS 1500
/* The pause of the trickling targets. */
#define TRICKLE_MS 100

/* What the scripted target does. */
enum act {
	/* at login, in the security stage */
	L_EMPTY_FOREVER,    /* every Login Response C=1 without text */
	L_EMPTY_THEN_OK,    /* LOGIN_MAX_EMPTY of those, then the answer */
	L_TEXT_TRICKLE,     /* C=1 with 4 bytes of text every TRICKLE_MS, forever */
	L_BYTE_TRICKLE,     /* a Login Response one byte every TRICKLE_MS */
	L_SILENT,           /* no answer at all */
	/* in the discovery session, instead of the SendTargets answer */
	D_NOP_FOREVER,      /* NOP-Ins, every other one asking for a NOP-Out */
	D_ASYNC_FOREVER,    /* Async Messages */
	D_EMPTY_FOREVER,    /* continued Text Responses without text */
	D_TEXT_TRICKLE,     /* continued Text Responses of 4 bytes every TRICKLE_MS */
	D_NOPS_THEN_OK,     /* DISCOVERY_MAX_EMPTY NOP-Ins (odd ones ask), then the answer */
};

/* One row and what it must come to. */
struct row {
	const char *name;             /* for failure messages */
	bool discovery;               /* discovery_run(), else login_connect() */
	enum act act;                 /* the target's behaviour */
	/* expected */
	int rc;                       /* the result */
	int err;                      /* its errno when it fails */
	const char *words;            /* in its message when it fails */
	bool at_deadline;             /* ends at the deadline, not before */
	/* seen by the target thread */
	int fd;                       /* listening socket */
	uint16_t port;                /* its port */
	int nop_outs;                 /* NOP-Out answers with the right TTT */
	int wrong;                    /* PDUs it did not expect */
};

static const struct row rows[] = {
	{ .name = "login: empty continuations forever", .act = L_EMPTY_FOREVER, .rc = -1,
	  .err = EPROTO,
	  .words = "sent more than 8 continued Login Responses without text (C=1, empty)" },
	{ .name = "login: as many empty continuations as the cap takes", .act = L_EMPTY_THEN_OK },
	{ .name = "login: text trickled in forever", .act = L_TEXT_TRICKLE, .rc = -1,
	  .err = ETIMEDOUT, .words = "did not finish the login within 1 s", .at_deadline = true },
	{ .name = "login: a header a byte at a time", .act = L_BYTE_TRICKLE, .rc = -1,
	  .err = ETIMEDOUT, .words = "did not finish the login within 1 s", .at_deadline = true },
	{ .name = "login: no answer", .act = L_SILENT, .rc = -1, .err = ETIMEDOUT,
	  .words = "did not finish the login within 1 s", .at_deadline = true },
	{ .name = "discovery: NOP-Ins forever", .discovery = true, .act = D_NOP_FOREVER, .rc = -1,
	  .err = EPROTO,
	  .words = "sent more than 16 PDUs that carry nothing instead of the answer (17 NOP-In, 0 Async" },
	{ .name = "discovery: Async Messages forever", .discovery = true, .act = D_ASYNC_FOREVER,
	  .rc = -1, .err = EPROTO, .words = "(0 NOP-In, 17 Async Message, 0 continued" },
	{ .name = "discovery: empty continuations forever", .discovery = true,
	  .act = D_EMPTY_FOREVER, .rc = -1, .err = EPROTO,
	  .words = "(0 NOP-In, 0 Async Message, 17 continued Text Responses without text)" },
	{ .name = "discovery: text trickled in forever", .discovery = true, .act = D_TEXT_TRICKLE,
	  .rc = -1, .err = ETIMEDOUT, .words = "did not finish the answer within 1 s",
	  .at_deadline = true },
	{ .name = "discovery: as many NOP-Ins as the cap takes", .discovery = true,
	  .act = D_NOPS_THEN_OK },
	{ .name = "discovery: a login that never ends", .discovery = true, .act = L_EMPTY_FOREVER,
	  .rc = -1, .err = EPROTO, .words = "continued Login Responses without text" },
	{ .name = "discovery: a login that trickles", .discovery = true, .act = L_TEXT_TRICKLE,
	  .rc = -1, .err = ETIMEDOUT, .words = "did not finish the login within 1 s",
	  .at_deadline = true },
};

static void pause_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

/* ---- the scripted target ---- */

/* Send one PDU of the full feature phase: @op, @flags, ITT, TTT and
 * @len bytes of @data.  Returns -1 once the initiator has gone. */
static int send_ffp(int fd, uint8_t op, uint8_t flags, uint32_t itt, uint32_t ttt,
		    const void *data, size_t len)
{
	static const uint8_t pad[4];
	uint8_t bhs[48] = { op, flags };

	bhs[5] = (uint8_t)(len >> 16);
	bhs[6] = (uint8_t)(len >> 8);
	bhs[7] = (uint8_t)len;
	for (int i = 0; i < 4; i++) {
		bhs[16 + i] = (uint8_t)(itt >> (24 - 8 * i));
		bhs[20 + i] = (uint8_t)(ttt >> (24 - 8 * i));
	}
	bhs[31] = 2;                                      /* ExpCmdSN */
	bhs[35] = 9;                                      /* MaxCmdSN */
	if (send(fd, bhs, 48, MSG_NOSIGNAL) != 48 ||
	    (len && send(fd, data, len, MSG_NOSIGNAL) != (ssize_t)len) ||
	    send(fd, pad, (4 - len % 4) % 4, MSG_NOSIGNAL) < 0)
		return -1;
	return 0;
}

static uint32_t field32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The login of a target that behaves: security, operational, full
 * feature phase, starting from the request @r already read; @auth: the
 * initiator offered AuthMethod (in @r or the request @r continues). */
static int login_ok(int fd, struct request *r, bool auth)
{
	struct answer a = { .len = 0 };

	if (auth)
		add(&a, "AuthMethod", "None");
	respond(fd, r, 0x80 | 1, 0, 0, &a);
	if (read_request(fd, r) < 0)
		return -1;
	answer_operational(fd, r);
	return 0;
}

/* The security stage of a row whose act is a login one. */
static int misbehave_at_login(struct row *rw, int fd, struct request *r)
{
	static const uint8_t header[48] = { 0x23, 0x40 };
	bool auth = value_of(r, "AuthMethod") != NULL;

	switch (rw->act) {
	case L_EMPTY_FOREVER:
		for (;;) {
			respond(fd, r, 0x40, 0, 0, NULL);
			if (read_request(fd, r) < 0)
				return -1;
		}
	case L_EMPTY_THEN_OK:
		for (int i = 0; i < LOGIN_MAX_EMPTY; i++) {
			respond(fd, r, 0x40, 0, 0, NULL);
			if (read_request(fd, r) < 0)
				return -1;
		}
		return login_ok(fd, r, auth);
	case L_TEXT_TRICKLE:
		for (;;) {
			struct answer a = { .len = 4 };
			memcpy(a.text, "X-Tr", 4);
			pause_ms(TRICKLE_MS);
			respond(fd, r, 0x40, 0, 0, &a);
			if (read_request(fd, r) < 0)
				return -1;
		}
	case L_BYTE_TRICKLE:
		for (size_t i = 0; i < sizeof header; i++) {
			pause_ms(TRICKLE_MS);
			if (send(fd, header + i, 1, MSG_NOSIGNAL) != 1)
				return -1;
		}
		return -1;
	case L_SILENT:
		return -1;
	default:
		return login_ok(fd, r, auth);
	}
}

/* In the discovery session: the Text Request @r was read; misbehave. */
static void misbehave_in_discovery(struct row *rw, int fd, struct request *r)
{
	uint32_t itt = field32(r->bhs + 16);

	for (uint32_t n = 0;; n++) {
		switch (rw->act) {
		case D_NOP_FOREVER:
			if (send_ffp(fd, 0x20, 0x80, 0xffffffff, n % 2 ? 0x100 + n : 0xffffffff,
				     NULL, 0) < 0)
				return;
			break;
		case D_ASYNC_FOREVER:
			if (send_ffp(fd, 0x32, 0x80, 0xffffffff, 0, NULL, 0) < 0)
				return;
			break;
		case D_EMPTY_FOREVER:
		case D_TEXT_TRICKLE:
			if (rw->act == D_TEXT_TRICKLE)
				pause_ms(TRICKLE_MS);
			if (send_ffp(fd, 0x24, 0x40, itt, 0x100 + n, "Targ",
				     rw->act == D_TEXT_TRICKLE ? 4 : 0) < 0 ||
			    read_request(fd, r) < 0)
				return;
			if ((r->bhs[0] & 0x3f) != 0x04 || field32(r->bhs + 20) != 0x100 + n) {
				rw->wrong++;
				return;
			}
			break;
		case D_NOPS_THEN_OK:
			if (n == DISCOVERY_MAX_EMPTY) {
				static const char text[] = "TargetName=iqn.2026-11.org.iscsifs.test:t\0"
					"TargetAddress=127.0.0.1:3260,1";
				/* the answer, then the Logout Response */
				if (send_ffp(fd, 0x24, 0x80, itt, 0xffffffff, text, sizeof text) == 0 &&
				    read_request(fd, r) == 0 && (r->bhs[0] & 0x3f) == 0x06)
					send_ffp(fd, 0x26, 0x80, field32(r->bhs + 16), 0, NULL, 0);
				return;
			}
			if (send_ffp(fd, 0x20, 0x80, 0xffffffff, n % 2 ? 0x100 + n : 0xffffffff,
				     NULL, 0) < 0)
				return;
			if (n % 2) {
				if (read_request(fd, r) < 0)
					return;
				if ((r->bhs[0] & 0x3f) == 0x00 && field32(r->bhs + 16) == 0xffffffff &&
				    field32(r->bhs + 20) == 0x100 + n)
					rw->nop_outs++;
				else
					rw->wrong++;
			}
			break;
		default:
			return;
		}
	}
}

static void *target_main(void *arg)
{
	struct row *rw = arg;
	struct request r;
	int fd = accept(rw->fd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (read_request(fd, &r) == 0 && misbehave_at_login(rw, fd, &r) == 0 &&
	    read_request(fd, &r) == 0) {
		if ((r.bhs[0] & 0x3f) == 0x04)
			misbehave_in_discovery(rw, fd, &r);
		else
			rw->wrong++;
	}
	/* until our side closes */
	while (read(fd, &r, sizeof r.bhs) > 0)
		;
	close(fd);
	return NULL;
}

/* ---- the rows ---- */

/* Run row @proto; a login row @on_loop through the event loop's driver
 * (login_loop.h), which must end the same way at the same time. */
static void run(const struct row *proto, bool on_loop)
{
	struct row *rw = calloc(1, sizeof *rw);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof sa;
	struct text_config text = {
		.initiator_name = "iqn.2026-11.org.iscsifs:test",
		.target_name = "iqn.2026-11.org.iscsifs.test:t",
		.header_digest = DIGEST_PREF_NONE, .data_digest = DIGEST_PREF_NONE,
		.max_recv_dsl = 8192, .max_burst_length = 262144, .first_burst_length = 65536,
		.max_outstanding_r2t = 1, .immediate_data = true, .initial_r2t = true,
	};
	static const uint8_t isid[6] = { 0x80, 1, 2, 3, 4, 0 };
	pthread_t th;
	int rc, err;
	char msg[512];
	bool deadline_cleared = true;

	*rw = *proto;
	rw->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (rw->fd < 0 || bind(rw->fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(rw->fd, 4) < 0 || getsockname(rw->fd, (struct sockaddr *)&sa, &slen) < 0 ||
	    pthread_create(&th, NULL, target_main, rw) != 0) {
		perror("scripted target");
		exit(99);
	}
	rw->port = ntohs(sa.sin_port);

	int64_t start = mono_now_ms();
	if (rw->discovery) {
		struct session_config cfg = { .port = rw->port, .text = text,
					      .connect_timeout_ms = TIMEOUT_MS };
		struct discovery d;
		snprintf(cfg.host, sizeof cfg.host, "127.0.0.1");
		memcpy(cfg.isid_base, isid, sizeof isid);
		rc = discovery_run(&cfg, &d);
		if (rc == 0) {
			CHECK_EQ_U64(d.ntargets, 1);
			discovery_free(&d);
		}
	} else {
		struct login_result lr;
		struct conn c;
		if (on_loop)
			rc = login_on_loop(login_test_loop(), &c, "127.0.0.1", rw->port, TIMEOUT_MS,
					   &text, isid, &lr);
		else
			rc = login_connect(&c, "127.0.0.1", rw->port, TIMEOUT_MS, 0, &text, isid,
					   0, &lr);
		if (rc == 0) {
			deadline_cleared = c.deadline_ns == 0;
			conn_close(&c);
		}
	}
	int64_t took = mono_now_ms() - start;
	err = rc < 0 ? err_errno() : 0;
	snprintf(msg, sizeof msg, "%s", rc < 0 ? err_msg() : "");
	pthread_join(th, NULL);
	close(rw->fd);

	bool ok = rc == rw->rc && deadline_cleared && rw->wrong == 0;
	if (rc < 0)
		ok = ok && err == rw->err && strstr(msg, rw->words);
	/* a cap ends it well before the deadline; the deadline ends it on time */
	if (rw->at_deadline)
		ok = ok && took >= TIMEOUT_MS - 50 && took <= TIMEOUT_MS + SLACK_MS;
	else
		ok = ok && took < TIMEOUT_MS;
	if (rw->act == D_NOPS_THEN_OK)
		ok = ok && rw->nop_outs == DISCOVERY_MAX_EMPTY / 2;
	test_checks++;
	if (!ok) {
		test_failures++;
		fprintf(stderr, "row \"%s\"%s: rc %d errno %d \"%s\" after %lld ms, deadline %s, "
			"%d NOP-Out answers, %d unexpected PDUs\n", rw->name,
			on_loop ? " (on a loop)" : "", rc, err, msg,
			(long long)took, deadline_cleared ? "cleared" : "left set", rw->nop_outs,
			rw->wrong);
	}
	free(rw);
}

/* A peer that never reads: a send under a deadline ends there, with
 * ETIMEDOUT, instead of blocking for ever. */
static void test_send_deadline(void)
{
	int sv[2];
	int small = 4096;
	struct conn c;
	static uint8_t data[1 << 20];
	struct iovec v = { data, sizeof data };
	union iscsi_bhs bhs;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		perror("socketpair");
		exit(99);
	}
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	CHECK(conn_attach_fd(&c, sv[0], "silent peer", -1) == 0);
	c.deadline_ns = conn_deadline_after(300);
	pdu_init(&bhs, ISCSI_OP_TEXT_REQ, true);
	int64_t start = mono_now_ms();
	CHECK(conn_send_pdu(&c, &bhs, &v, 1, sizeof data, false) < 0);
	int64_t took = mono_now_ms() - start;
	CHECK(err_errno() == ETIMEDOUT);
	CHECK(strstr(err_msg(), "silent peer: out of time while sending") != NULL);
	CHECK(took >= 250 && took <= 300 + SLACK_MS);
	CHECK(conn_deadline_passed(&c));
	conn_close(&c);
	close(sv[1]);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		run(&rows[i], false);
		if (!rows[i].discovery)
			run(&rows[i], true);
	}
	test_send_deadline();
	return test_done("test_login_deadline");
}
