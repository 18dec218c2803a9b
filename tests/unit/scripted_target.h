/* scripted_target.h: the in-process scripted iSCSI target of the unit
 * tests that run real sessions over TCP (test_pool.c, test_clock_step.c,
 * test_session.c).  Header-only, static inline functions; built on the
 * login wire of login_peer.h.
 *
 * What every one of those tests needs, and only that:
 *   - a listening socket on 127.0.0.1 (an ephemeral port) and an accept
 *     thread that hands each new connection to the test's accepted()
 *     callback (scripted_target_start(), scripted_target_stop());
 *   - the login of a connection: security stage with AuthMethod=None,
 *     every operational key answered with the initiator's own first value
 *     (scripted_target_login());
 *   - a full feature phase that answers SCSI Commands with GOOD, NOP-Outs
 *     that want an answer with a NOP-In and the Logout Request with its
 *     response, the test seeing each PDU before its answer goes (delays
 *     and counters are the test's own: scripted_target_serve(), or
 *     scripted_target_serve_logged_in() after a login of the test's own
 *     making);
 *   - the session configuration that logs in to it
 *     (scripted_target_config()).
 * How a test answers beyond that (Data-In, R2T, Reject ...) stays in the
 * test.
 *
 * Thread model: the accept thread runs accepted(); what that does with
 * the socket (serve it there, start a thread for it, hand it to the test
 * thread) is the test's.  stop is the only field the test thread and the
 * accept thread share.
 */
#ifndef ISCSIFS_SCRIPTED_TARGET_H
#define ISCSIFS_SCRIPTED_TARGET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deadline.h"
#include "login_peer.h"
#include "session.h"

/* The listening side of a scripted target. */
struct scripted_target {
	int listen_fd;                /* bound to 127.0.0.1:port */
	uint16_t port;                /* its port */
	atomic_bool stop;             /* set by scripted_target_stop(): the accept thread ends */
	pthread_t thread;             /* the accept thread */
	/* Called on the accept thread with each accepted connection; owns @fd. */
	void (*accepted)(struct scripted_target *t, int fd);
	void *opaque;                 /* the test's own state, for accepted() */
};

static inline uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Whether the initiator closes its end of @fd within @wait_ms; what it
 * sent before (a Login Request nobody answered) is read and dropped. */
static inline bool scripted_target_sees_close(int fd, int wait_ms)
{
	int64_t until = mono_now_ms() + wait_ms;
	char buf[512];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int left = (int)(until - mono_now_ms());
		if (left <= 0 || poll(&pfd, 1, left) != 1)
			return false;
		ssize_t n = read(fd, buf, sizeof buf);
		if (n <= 0)
			return n == 0;
	}
}

/* Log the connection on @fd in: security stage (AuthMethod=None), then
 * operational, into full feature phase; @seen(@arg, bhs), when set, gets
 * the first Login Request's header.  Returns 0, -1 when the initiator
 * left. */
static inline int scripted_target_login_seen(int fd, void (*seen)(void *arg, const uint8_t *bhs),
					     void *arg)
{
	struct answer a = { .len = 0 };
	struct request r;

	if (read_request(fd, &r) < 0)
		return -1;
	if (seen)
		seen(arg, r.bhs);
	if ((r.bhs[1] >> 2 & 3) == 0) {          /* CSG security */
		if (value_of(&r, "AuthMethod"))
			add(&a, "AuthMethod", "None");
		respond(fd, &r, 0x80 | 1, 0, 0, &a);
		if (read_request(fd, &r) < 0)
			return -1;
	}
	answer_operational(fd, &r);
	return 0;
}

static inline int scripted_target_login(int fd)
{
	return scripted_target_login_seen(fd, NULL, NULL);
}

/* Answer the connection on @fd, logged in, in full feature phase: SCSI
 * Commands with GOOD, NOP-Outs that want an answer with a NOP-In, the
 * Logout Request with its response (and end there); the answers to our
 * own pings are taken without a word.  The window the target opens is
 * @window commands.  @seen(@arg, bhs), when set, is called with the header
 * of each PDU about to be answered, before the answer goes.  Returns when
 * the connection ends; the caller closes @fd. */
static inline void scripted_target_serve_logged_in(int fd, unsigned window,
						   void (*seen)(void *arg, const uint8_t *bhs),
						   void *arg)
{
	uint32_t statsn = 0;
	bool have_statsn = false;
	uint8_t bhs[48], skip[8192];

	while (read_all(fd, bhs, 48) == 0) {
		uint32_t dlen = (uint32_t)bhs[5] << 16 | (uint32_t)bhs[6] << 8 | bhs[7];
		uint32_t padded = (dlen + 3) & ~3u;
		uint8_t rsp[48] = { 0 };
		uint8_t opcode = bhs[0] & 0x3f;
		uint32_t cmdsn = get32(bhs + 24);

		if (bhs[4] || padded > sizeof skip || (padded && read_all(fd, skip, padded) < 0))
			return;                  /* no AHS, no data beyond a ping's */
		if (!have_statsn) {
			statsn = get32(bhs + 28);    /* the initiator's ExpStatSN */
			have_statsn = true;
		}
		if (opcode == 0x00 && get32(bhs + 16) == 0xffffffffu)
			continue;                /* a reply to our ping: no answer */
		if (seen)
			seen(arg, bhs);
		memcpy(rsp + 16, bhs + 16, 4);          /* ITT */
		put32(rsp + 24, statsn++);
		put32(rsp + 28, cmdsn + 1);             /* ExpCmdSN */
		put32(rsp + 32, cmdsn + window);        /* MaxCmdSN */
		if (opcode == 0x01) {                   /* SCSI Command */
			rsp[0] = 0x21;
			rsp[1] = 0x80;
		} else if (opcode == 0x00) {            /* NOP-Out */
			rsp[0] = 0x20;
			rsp[1] = 0x80;
			memset(rsp + 20, 0xff, 4);      /* TTT */
			put32(rsp + 28, cmdsn);
			put32(rsp + 32, cmdsn - 1 + window);
		} else if (opcode == 0x06) {            /* Logout Request */
			rsp[0] = 0x26;
			rsp[1] = 0x80;
			(void)!write(fd, rsp, 48);
			return;
		} else {
			return;
		}
		if (write(fd, rsp, 48) != 48)
			return;
	}
}

/* Log the connection on @fd in, then serve it as
 * scripted_target_serve_logged_in() does.  @seen is also called with the
 * header of the first Login Request (its ISID says which session of a
 * pool it is). */
static inline void scripted_target_serve(int fd, unsigned window,
					 void (*seen)(void *arg, const uint8_t *bhs), void *arg)
{
	if (scripted_target_login_seen(fd, seen, arg) < 0)
		return;
	scripted_target_serve_logged_in(fd, window, seen, arg);
}

static inline void *scripted_target_main(void *arg)
{
	struct scripted_target *t = arg;

	while (!atomic_load(&t->stop)) {
		struct pollfd p = { .fd = t->listen_fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(t->listen_fd, NULL, NULL);
		if (fd >= 0)
			t->accepted(t, fd);
	}
	return NULL;
}

/* Listen on 127.0.0.1 (@backlog connections waiting at most) and start
 * the accept thread, which hands each connection to @accepted (with
 * t->opaque set to @opaque).  Exits the test (99) when it cannot. */
static inline void scripted_target_start(struct scripted_target *t, int backlog,
					 void (*accepted)(struct scripted_target *t, int fd),
					 void *opaque)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof sa;

	t->accepted = accepted;
	t->opaque = opaque;
	atomic_store(&t->stop, false);
	t->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->listen_fd < 0 || bind(t->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(t->listen_fd, backlog) < 0 ||
	    getsockname(t->listen_fd, (struct sockaddr *)&sa, &slen) < 0) {
		perror("scripted target");
		exit(99);
	}
	t->port = ntohs(sa.sin_port);
	if (pthread_create(&t->thread, NULL, scripted_target_main, t) != 0) {
		perror("pthread_create");
		exit(99);
	}
}

/* End the accept thread and close the listening socket.  Connections
 * already handed to accepted() are the test's to end. */
static inline void scripted_target_stop(struct scripted_target *t)
{
	atomic_store(&t->stop, true);
	pthread_join(t->thread, NULL);
	close(t->listen_fd);
}

/* A session configuration that logs in to the target at 127.0.0.1:@port
 * as iqn.2026-11.org.iscsifs:test-@word to iqn.2026-11.org.iscsifs.test:@word:
 * no digests, ImmediateData=Yes, InitialR2T=Yes, @queue_depth, a 5 s
 * connect timeout.  The test sets the rest (keepalive, timeouts).  The
 * text configuration points into @cfg: fill it where it stays. */
static inline void scripted_target_config(struct session_config *cfg, uint16_t port,
					  const char *word, unsigned queue_depth)
{
	*cfg = (struct session_config){
		.host = "127.0.0.1",
		.port = port,
		.queue_depth = queue_depth,
		.connect_timeout_ms = 5000,
		.isid_base = { 0x80, 0x12, 0x34, 0x56, 0x78, 0x00 },
	};
	snprintf(cfg->target_name, sizeof cfg->target_name, "iqn.2026-11.org.iscsifs.test:%s",
		 word);
	snprintf(cfg->initiator_name, sizeof cfg->initiator_name,
		 "iqn.2026-11.org.iscsifs:test-%s", word);
	cfg->text = (struct text_config){
		.initiator_name = cfg->initiator_name, .target_name = cfg->target_name,
		.header_digest = DIGEST_PREF_NONE, .data_digest = DIGEST_PREF_NONE,
		.max_recv_dsl = 8192, .max_burst_length = 262144, .first_burst_length = 65536,
		.max_outstanding_r2t = 1, .immediate_data = true, .initial_r2t = true,
	};
}

#endif /* ISCSIFS_SCRIPTED_TARGET_H */
