/* test_login_redirect.c: login redirects (RFC 7143 §11.13.5) and the
 * start-up retry of login_connect().
 *
 * First the TargetAddress of a redirect as login_parse_redirect() reads it
 * (a table of texts).  Then scripted portals: NPORTALS listening sockets
 * on 127.0.0.1, each told per scenario what to do with the logins it
 * gets: log in (AuthMethod=None, the operational keys echoed), redirect
 * temporarily or permanently to another portal (or to a broken address),
 * drop the connection, or answer "service unavailable" a number of times
 * first.  The real login_run() / login_connect() log in over TCP, so each
 * redirect is a new connection as it is against a real target; each row
 * says how the login must end, where (which portal), what login_result
 * reports as moved, and how many connections each portal saw.  Every
 * scenario without a start-up retry runs a second time through the event
 * loop's driver (login_loop.h), which must come to the same end.
 *
 * Thread model: the test thread runs the login; one target thread per
 * scenario polls the listeners and serves one connection at a time (the
 * login is sequential), joined before the next scenario.  The counts it
 * writes are read by the test thread only after the join.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "login.h"
#include "login_on_loop.h"
#include "login_peer.h"
#include "testlib.h"

#define NPORTALS 3

/* What a portal does with a login. */
enum portal_act {
	ACT_SERVE = 0,    /* log in */
	ACT_TEMP,         /* status 0x0101 to portal .to */
	ACT_PERM,         /* status 0x0102 to portal .to */
	ACT_RAW,          /* status 0x0101 with the text .raw (a bad redirect) */
	ACT_DROP,         /* close the connection after the first request */
	ACT_UNAVAILABLE,  /* status 0x0301, service unavailable */
};

/* One portal of a scenario. */
struct portal_plan {
	enum portal_act act;          /* what it does */
	int to;                       /* ACT_TEMP, ACT_PERM: which portal it names */
	const char *raw;              /* ACT_RAW: the TargetAddress value sent */
	int first;                    /* ACT_DROP, ACT_UNAVAILABLE: only this many
	                               * times (0: always), then ACT_SERVE */
};

/* One scenario and what it must come to. */
struct scenario {
	const char *name;             /* for failure messages */
	struct portal_plan plan[NPORTALS]; /* per portal */
	bool use_connect;             /* login_connect() rather than login_run() */
	int retry_ms;                 /* login_connect(): its retry_ms */

	/* expected */
	int rc;                       /* the login's result */
	int err;                      /* its errno when it fails */
	const char *words;            /* in its message when it fails */
	int ends_at;                  /* success: the portal the conn is left on */
	int moved_to;                 /* success: the portal login_result.moved names, -1 none */
	int conns[NPORTALS];          /* connections each portal accepts (-N: at
	                               * least N, where timing decides) */

	/* seen by the target thread */
	int fd[NPORTALS];             /* listening sockets */
	uint16_t port[NPORTALS];      /* their ports */
	int seen[NPORTALS];           /* connections accepted */
	atomic_bool stop;             /* the test is done: leave */
};

/* ---- the scripted portals ---- */

/* A port nobody listens on (bound, then closed). */
static uint16_t closed_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port = 0;

	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Serve one connection on portal @i. */
static void serve(struct scenario *sc, int i, int fd)
{
	const struct portal_plan *pl = &sc->plan[i];
	enum portal_act act = pl->act;
	struct answer a = { .len = 0 };
	struct request r;
	char addr[300];

	if ((act == ACT_DROP || act == ACT_UNAVAILABLE) && pl->first && sc->seen[i] > pl->first)
		act = ACT_SERVE;
	if (read_request(fd, &r) < 0)
		return;
	switch (act) {
	case ACT_SERVE:
		if (value_of(&r, "AuthMethod"))
			add(&a, "AuthMethod", "None");
		respond(fd, &r, 0x80 | 1, 0, 0, &a);              /* on to operational */
		if (read_request(fd, &r) == 0)
			answer_operational(fd, &r);
		break;
	case ACT_TEMP:
	case ACT_PERM:
		snprintf(addr, sizeof addr, "127.0.0.1:%u,1", sc->port[pl->to]);
		add(&a, "TargetAddress", addr);
		respond(fd, &r, 0, 1, act == ACT_TEMP ? 1 : 2, &a);
		break;
	case ACT_RAW:
		if (pl->raw)
			add(&a, "TargetAddress", pl->raw);
		respond(fd, &r, 0, 1, 1, &a);
		break;
	case ACT_DROP:
		return;
	case ACT_UNAVAILABLE:
		respond(fd, &r, 0, 3, 1, NULL);
		break;
	}
	/* wait for our side to close, as a target that redirected would */
	while (read(fd, &r, sizeof r.bhs) > 0)
		;
}

static void *target_main(void *arg)
{
	struct scenario *sc = arg;

	while (!atomic_load(&sc->stop)) {
		struct pollfd p[NPORTALS];
		for (int i = 0; i < NPORTALS; i++)
			p[i] = (struct pollfd){ .fd = sc->fd[i], .events = POLLIN };
		if (poll(p, NPORTALS, 100) <= 0)
			continue;
		for (int i = 0; i < NPORTALS; i++) {
			if (!(p[i].revents & POLLIN))
				continue;
			int fd = accept(sc->fd[i], NULL, NULL);
			if (fd < 0)
				continue;
			sc->seen[i]++;
			serve(sc, i, fd);
			close(fd);
		}
	}
	return NULL;
}

/* ---- the scenarios ---- */

static const struct scenario scenarios[] = {
	{ .name = "temporary redirect", .plan = { { ACT_TEMP, 1 } },
	  .rc = 0, .ends_at = 1, .moved_to = -1, .conns = { 1, 1 } },
	{ .name = "permanent redirect", .plan = { { ACT_PERM, 1 } },
	  .rc = 0, .ends_at = 1, .moved_to = 1, .conns = { 1, 1 } },
	{ .name = "permanent, then temporary: the permanent one is kept",
	  .plan = { { ACT_PERM, 1 }, { ACT_TEMP, 2 } },
	  .rc = 0, .ends_at = 2, .moved_to = 1, .conns = { 1, 1, 1 } },
	{ .name = "temporary, then permanent", .plan = { { ACT_TEMP, 1 }, { ACT_PERM, 2 } },
	  .rc = 0, .ends_at = 2, .moved_to = 2, .conns = { 1, 1, 1 } },
	{ .name = "redirect to itself", .plan = { { ACT_TEMP, 0 } },
	  .rc = -1, .err = ELOOP, .words = "login failed: too many redirects (8;",
	  .conns = { LOGIN_MAX_REDIRECTS + 1 } },
	{ .name = "two portals pointing at each other",
	  .plan = { { ACT_TEMP, 1 }, { ACT_PERM, 0 } },
	  .rc = -1, .err = ELOOP, .words = "too many redirects",
	  .conns = { LOGIN_MAX_REDIRECTS / 2 + 1, LOGIN_MAX_REDIRECTS / 2 } },
	{ .name = "redirect without TargetAddress", .plan = { { ACT_RAW, 0, NULL } },
	  .rc = -1, .err = EPROTO,
	  .words = "login failed: target moved temporarily, but no TargetAddress",
	  .conns = { 1 } },
	{ .name = "redirect to port 0", .plan = { { ACT_RAW, 0, "127.0.0.1:0" } },
	  .rc = -1, .err = EPROTO, .words = "TargetAddress 127.0.0.1:0: bad port", .conns = { 1 } },
	{ .name = "redirect to an address with control characters (issue 12 item 8)",
	  .plan = { { ACT_RAW, 0, "127.0.0.1\x1b[2J\x07:3260" } }, .rc = -1, .err = EPROTO,
	  .words = "login failed: target moved temporarily, but TargetAddress with byte 0x1b",
	  .conns = { 1 } },
	{ .name = "redirect to an unclosed IPv6 bracket", .plan = { { ACT_RAW, 0, "[::1:3260" } },
	  .rc = -1, .err = EPROTO, .words = "unclosed '['", .conns = { 1 } },
	{ .name = "redirect to a closed port", .plan = { { ACT_RAW, 0, "" } },
	  .rc = -1, .err = ECONNREFUSED, .words = "redirected from 127.0.0.1:", .conns = { 1 } },
	{ .name = "login_connect follows redirects too", .use_connect = true,
	  .plan = { { ACT_PERM, 1 } }, .rc = 0, .ends_at = 1, .moved_to = 1, .conns = { 1, 1 } },
	{ .name = "drops twice: start-up retry", .use_connect = true, .retry_ms = 5000,
	  .plan = { { ACT_DROP, 0, NULL, 2 } },
	  .rc = 0, .ends_at = 0, .moved_to = -1, .conns = { 3 } },
	{ .name = "service unavailable once: start-up retry", .use_connect = true,
	  .retry_ms = 5000, .plan = { { ACT_UNAVAILABLE, 0, NULL, 1 } },
	  .rc = 0, .ends_at = 0, .moved_to = -1, .conns = { 2 } },
	{ .name = "drops: no retry without retry_ms", .use_connect = true,
	  .plan = { { ACT_DROP, 0, NULL, 2 } }, .rc = -1, .err = EPIPE,
	  .words = "closed the connection", .conns = { 1 } },
	{ .name = "drops always: gives up within retry_ms", .use_connect = true,
	  .retry_ms = 800, .plan = { { ACT_DROP } }, .rc = -1, .err = EPIPE,
	  .words = "closed the connection (", .conns = { -2 } },
	{ .name = "a redirect, then a drop: retried from the first portal", .use_connect = true,
	  .retry_ms = 5000, .plan = { { ACT_TEMP, 1 }, { ACT_DROP, 0, NULL, 1 } },
	  .rc = 0, .ends_at = 1, .moved_to = -1, .conns = { 2, 2 } },
};

/* Run scenario @proto: with login_run() or login_connect() as it says,
 * or @on_loop with the loop's driver (login_loop.h), which must come to
 * the same end. */
static void run(const struct scenario *proto, bool on_loop)
{
	struct scenario *sc = calloc(1, sizeof *sc);
	struct text_config cfg = {
		.initiator_name = "iqn.2026-11.org.iscsifs:test",
		.target_name = "iqn.2026-11.org.iscsifs.test:redirect",
		.header_digest = DIGEST_PREF_NONE, .data_digest = DIGEST_PREF_NONE,
		.max_recv_dsl = 8192, .max_burst_length = 262144, .first_burst_length = 65536,
		.max_outstanding_r2t = 1, .immediate_data = true, .initial_r2t = true,
	};
	static const uint8_t isid[6] = { 0x80, 1, 2, 3, 4, 0 };
	struct login_result lr;
	struct conn c;
	pthread_t th;
	int rc;

	*sc = *proto;
	for (int i = 0; i < NPORTALS; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET,
					  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		socklen_t slen = sizeof sa;
		sc->fd[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (sc->fd[i] < 0 || bind(sc->fd[i], (struct sockaddr *)&sa, sizeof sa) < 0 ||
		    listen(sc->fd[i], 4) < 0 ||
		    getsockname(sc->fd[i], (struct sockaddr *)&sa, &slen) < 0) {
			perror("scripted portal");
			exit(99);
		}
		sc->port[i] = ntohs(sa.sin_port);
	}
	/* "a closed port": the raw address "" is made one here */
	char closed[32];
	if (sc->plan[0].act == ACT_RAW && sc->plan[0].raw && !sc->plan[0].raw[0]) {
		snprintf(closed, sizeof closed, "127.0.0.1:%u", closed_port());
		sc->plan[0].raw = closed;
	}
	if (pthread_create(&th, NULL, target_main, sc) != 0) {
		perror("pthread_create");
		exit(99);
	}
	if (on_loop) {
		rc = login_on_loop(login_test_loop(), &c, "127.0.0.1", sc->port[0], 5000, &cfg,
				   isid, &lr);
	} else if (sc->use_connect) {
		rc = login_connect(&c, "127.0.0.1", sc->port[0], 5000, sc->retry_ms, &cfg, isid, 0,
				   &lr);
	} else {
		rc = conn_connect(&c, "127.0.0.1", sc->port[0], 5000);
		if (rc == 0)
			rc = login_run(&c, &cfg, isid, 0, &lr);
	}
	int err = rc < 0 ? err_errno() : 0;
	char msg[512];
	snprintf(msg, sizeof msg, "%s", rc < 0 ? err_msg() : "");
	uint16_t ended_port = c.port;
	conn_close(&c);
	atomic_store(&sc->stop, true);
	pthread_join(th, NULL);
	for (int i = 0; i < NPORTALS; i++)
		close(sc->fd[i]);

	bool ok = rc == sc->rc;
	if (rc < 0)
		ok = ok && err == sc->err && strstr(msg, sc->words);
	else
		ok = ok && ended_port == sc->port[sc->ends_at] &&
		     lr.moved == (sc->moved_to >= 0) &&
		     (sc->moved_to < 0 || (lr.moved_port == sc->port[sc->moved_to] &&
					   strcmp(lr.moved_host, "127.0.0.1") == 0));
	for (int i = 0; i < NPORTALS; i++)
		ok = ok && (sc->conns[i] < 0 ? sc->seen[i] >= -sc->conns[i] :
			    sc->seen[i] == sc->conns[i]);
	/* retries say how many tries they made, within retry_ms */
	if (rc < 0 && sc->retry_ms && sc->seen[0] > 1)
		ok = ok && strstr(msg, " tries in ");
	test_checks++;
	if (!ok) {
		test_failures++;
		fprintf(stderr, "scenario \"%s\"%s: rc %d errno %d \"%s\", ended on port %u "
			"(portals %u %u %u), moved %d to %u, connections %d %d %d\n",
			sc->name, on_loop ? " (on a loop)" : "", rc, err, msg, ended_port, sc->port[0], sc->port[1], sc->port[2],
			rc == 0 && lr.moved, rc == 0 ? lr.moved_port : 0, sc->seen[0], sc->seen[1],
			sc->seen[2]);
	}
	free(sc);
}

/* ---- TargetAddress of a redirect ---- */

#define SEG(s) (const uint8_t *)(s), sizeof(s) - 1

static void test_parse(void)
{
	static const struct {
		const uint8_t *text;
		size_t len;
		int rc;
		const char *host;
		unsigned port;
	} cases[] = {
		{ SEG("TargetAddress=10.0.0.5:3261,2\0"), 0, "10.0.0.5", 3261 },
		{ SEG("TargetAddress=10.0.0.5\0"), 0, "10.0.0.5", 3260 },
		{ SEG("TargetAddress=store.example.com,1\0"), 0, "store.example.com", 3260 },
		{ SEG("TargetAddress=[fe80::1]:860,7\0"), 0, "fe80::1", 860 },
		{ SEG("TargetAddress=[::1]\0"), 0, "::1", 3260 },
		{ SEG("X-Vendor=1\0TargetAddress=192.0.2.1:3262\0TargetPortalGroupTag=3\0"), 0,
		  "192.0.2.1", 3262 },
		{ SEG("TargetAddress=192.0.2.1:3262\0\0\0"), 0, "192.0.2.1", 3262 },  /* padding */
		{ SEG(""), -1, NULL, 0 },
		{ SEG("TargetAlias=x\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1\0TargetAddress=10.0.0.2\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1:\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1:65536\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1:0\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1:x\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1,t\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1:3260 junk\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=[fe80::1\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=[]:3260\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1\x1b[2J:3260\0"), -1, NULL, 0 },
		{ SEG("TargetAddress=10.0.0.1"), -1, NULL, 0 },                    /* no NUL */
		{ SEG("=10.0.0.1\0"), -1, NULL, 0 },
	};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char host[256] = "unchanged";
		uint16_t port = 0;
		int rc = login_parse_redirect(cases[i].text, cases[i].len, host, sizeof host,
					      &port);
		test_checks++;
		if (rc != cases[i].rc || (rc == 0 && (strcmp(host, cases[i].host) != 0 ||
						      port != cases[i].port))) {
			test_failures++;
			fprintf(stderr, "parse case %zu: rc %d host \"%s\" port %u (%s)\n", i, rc,
				host, port, rc < 0 ? err_msg() : "");
		}
		if (rc < 0)
			CHECK(err_errno() == EPROTO);
	}

	/* a host longer than the caller's buffer is refused, not cut */
	char small[8];
	uint16_t port;
	CHECK(login_parse_redirect(SEG("TargetAddress=very-long-host.example:3260\0"), small,
				   sizeof small, &port) < 0);
}

int main(void)
{
	test_parse();
	for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
		run(&scenarios[i], false);
		/* the loop's driver has no start-up retry */
		if (!scenarios[i].retry_ms)
			run(&scenarios[i], true);
	}
	return test_done("test_login_redirect");
}
