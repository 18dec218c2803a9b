/* login_loop.c: a login on an event loop (see login_loop.h).
 *
 * The states of one login (enum ll_state):
 *   RESOLVING   the portal's addresses are looked up (resolve.h: at once
 *               for a number, on a resolver thread for a name);
 *   CONNECTING  a non-blocking connect to one address is under way
 *               (EPOLLOUT says it ended); a refused address gives way to
 *               the next;
 *   SENDING     a Login Request is partly in the socket: the rest goes
 *               when it is writable again;
 *   RECEIVING   the answer is awaited (EPOLLIN): each recv() is parsed
 *               into as many parts as it brought, and each part goes to
 *               the login machine (login.h), which says what is next: the
 *               next request (SENDING, or RECEIVING at once when the
 *               socket took it whole), a connection elsewhere (a
 *               redirect, the MD5-only retry: CONNECTING again, or
 *               RESOLVING for a host name), done, or failed.
 * The deadline timer ends any of them.  Whatever ends the login (done,
 * failed, the deadline) goes through finish(), which lets go of the
 * socket, the timer and a lookup under way, calls the owner's callback
 * and frees the login; login_loop_cancel() does the same without the
 * callback.
 */
#include "login_loop.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "portal.h"
#include "resolve.h"

/* Where one login stands (see the top of this file). */
enum ll_state {
	LL_RESOLVING,   /* the portal's addresses are looked up (ll->lookup) */
	LL_CONNECTING,  /* a connect to the address before ll->next_addr is under way */
	LL_SENDING,     /* the socket took part of a request; EPOLLOUT for the rest */
	LL_RECEIVING,   /* the answer is awaited; EPOLLIN */
};

struct login_loop {
	struct evloop *loop;             /* the loop it runs on, and its only thread */
	enum ll_state state;             /* where it stands */
	struct ev_source src;            /* the socket, while the loop watches it
	                                  * (src.fd >= 0) */
	struct ev_timer deadline_timer;  /* the login's deadline */
	struct ev_call start_call;       /* the first step, posted by
	                                  * login_loop_start() */
	struct conn c;                   /* the connection (c.fd -1 between two) */
	struct login_machine *m;         /* the login's protocol */
	bool begun;                      /* an attempt was begun: the next connection
	                                  * is one the machine asked for */
	struct login_result lr;          /* the machine's result */
	int timeout_ms;                  /* the whole login's time */
	int64_t deadline_ns;             /* ... ending then (CLOCK_MONOTONIC) */
	char host[256];                  /* the portal being connected to */
	uint16_t port;                   /* ... its port */
	struct addrinfo *addrs;          /* its addresses (getaddrinfo()'s list) */
	struct addrinfo *next_addr;      /* the next to try; NULL: none left */
	int connect_errno;               /* why the last address failed */
	struct resolve_job *lookup;      /* LL_RESOLVING: the lookup under way (resolve.h) */
	login_loop_done_fn done;         /* the owner's callback */
	void *arg;                       /* ... and its argument */
};

static atomic_ulong logins_started, logins_succeeded;

#define LL_OF(ptr, member) \
	((struct login_loop *)((char *)(ptr) - offsetof(struct login_loop, member)))

static void step(struct login_loop *ll, int next);

unsigned long login_loop_started(void)
{
	return atomic_load(&logins_started);
}

unsigned long login_loop_succeeded(void)
{
	return atomic_load(&logins_succeeded);
}

/* ---- the end ---- */

/* Let go of the socket: stop watching it and close it (while connecting
 * it is only the watch's, not yet the conn's). */
static void drop_socket(struct login_loop *ll)
{
	if (ll->src.fd >= 0) {
		evloop_remove(ll->loop, &ll->src);
		if (ll->src.fd != ll->c.fd)
			close(ll->src.fd);
	}
	ll->src.fd = -1;
	conn_close(&ll->c);
}

/* Free everything of @ll but what was handed over. */
static void release(struct login_loop *ll)
{
	evloop_timer_cancel(ll->loop, &ll->deadline_timer);
	evloop_cancel(ll->loop, &ll->start_call);
	resolve_cancel(ll->lookup);
	ll->lookup = NULL;
	drop_socket(ll);
	if (ll->addrs)
		freeaddrinfo(ll->addrs);
	login_machine_free(ll->m);
	free(ll);
}

/* The login ended: @rc 0 (logged in) or -1 with err_set(). */
static void finish(struct login_loop *ll, int rc)
{
	struct conn handed;

	if (rc == 0) {
		/* the connection is the owner's, as login_connect() leaves it */
		evloop_remove(ll->loop, &ll->src);
		ll->src.fd = -1;
		handed = ll->c;
		handed.deadline_ns = 0;
		handed.rx.place = NULL;
		handed.rx.place_arg = NULL;
		handed.header_digest = ll->lr.params.header_digest;
		handed.data_digest = ll->lr.params.data_digest;
		ll->c.fd = -1;
		ll->c.rx = (struct pdu_rx){ .buf = NULL };
		atomic_fetch_add(&logins_succeeded, 1);
	} else {
		drop_socket(ll);
		memset(&handed, 0, sizeof handed);
		handed.fd = -1;
	}
	/* the callback may log, and so change err_*(): nothing else does */
	struct login_result lr = ll->lr;
	login_loop_done_fn done = ll->done;
	void *arg = ll->arg;
	release(ll);
	done(arg, rc, &handed, &lr);
}

void login_loop_cancel(struct login_loop *ll)
{
	if (ll)
		release(ll);
}

static void deadline_fire(struct ev_timer *timer)
{
	struct login_loop *ll = LL_OF(timer, deadline_timer);

	/* (as login_connect() words it: the first connection's own failure,
	 * or, once the login began, the login's) */
	if (ll->state == LL_RESOLVING && !ll->begun)
		err_set(ETIMEDOUT, "cannot resolve host %s: no answer within %g s", ll->host,
			ll->timeout_ms / 1000.0);
	else if (ll->state == LL_CONNECTING && !ll->begun)
		err_set(ETIMEDOUT, "cannot connect to %s: %s (no answer within %g s)", ll->c.peer,
			strerror(ETIMEDOUT), ll->timeout_ms / 1000.0);
	else
		err_set(ETIMEDOUT, "login failed: %s did not finish the login within %g s",
			ll->c.peer, ll->timeout_ms / 1000.0);
	finish(ll, -1);
}

/* ---- connecting ---- */

/* pdu_rx's place callback: the login machine checks the header of an
 * answer part and says where its text goes. */
static int place_part(void *arg, const union iscsi_bhs *bhs, uint8_t **dst)
{
	struct login_loop *ll = arg;

	return login_machine_place(ll->m, bhs, dst);
}

/* The connection to the current portal is made: the machine's next
 * attempt begins on it. */
static void connected(struct login_loop *ll, int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	ll->c.fd = fd;
	ll->c.nonblocking = true;
	if (pdu_rx_init(&ll->c.rx, CONN_RX_BUFFER) < 0) {
		finish(ll, -1);
		return;
	}
	/* the answers: every part's header to the machine, which checks it
	 * and says where its text goes */
	ll->c.rx.check_target = false;
	ll->c.rx.place = place_part;
	ll->c.rx.place_arg = ll;
	freeaddrinfo(ll->addrs);
	ll->addrs = ll->next_addr = NULL;
	if (!ll->begun) {
		ll->begun = true;
		step(ll, login_machine_begin(ll->m));
	} else {
		step(ll, login_machine_connected(ll->m, ll->c.peer));
	}
}

/* The connection the login needs cannot be made (err_set() says why):
 * the login fails, with the redirect it followed named. */
static void connect_failed(struct login_loop *ll)
{
	if (ll->begun)
		login_machine_connect_failed(ll->m);
	finish(ll, -1);
}

/* Start a connect to the next address of the portal, skipping those that
 * fail at once; when none is left the login fails. */
static void connect_next(struct login_loop *ll)
{
	while (ll->next_addr) {
		struct addrinfo *ai = ll->next_addr;
		ll->next_addr = ai->ai_next;
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0) {
			ll->connect_errno = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
			ll->connect_errno = errno;
			close(fd);
			continue;
		}
		ll->state = LL_CONNECTING;
		ll->src.fd = fd;
		if (evloop_add(ll->loop, &ll->src, EPOLLOUT) < 0) {
			ll->src.fd = -1;
			close(fd);
			connect_failed(ll);
			return;
		}
		return;
	}
	/* no address of the portal could be connected to */
	err_set(ll->connect_errno, "cannot connect to %s: %s", ll->c.peer,
		strerror(ll->connect_errno));
	connect_failed(ll);
}

/* The connect under way ended (the socket is writable, or failed). */
static void connect_ended(struct login_loop *ll)
{
	int fd = ll->src.fd;
	int soerr = 0;
	socklen_t len = sizeof soerr;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
		soerr = errno;
	if (soerr) {
		ll->connect_errno = soerr;
		evloop_remove(ll->loop, &ll->src);
		ll->src.fd = -1;
		close(fd);
		connect_next(ll);
		return;
	}
	connected(ll, fd);
}

/* The addresses of the portal are known (@rc 0, @res), or the lookup
 * failed (-1, err_set()): connect to them in turn. */
static void addresses_known(void *arg, int rc, struct addrinfo *res)
{
	struct login_loop *ll = arg;

	ll->lookup = NULL;
	if (rc < 0) {
		connect_failed(ll);
		return;
	}
	ll->addrs = ll->next_addr = res;
	ll->connect_errno = ECONNREFUSED;
	connect_next(ll);
}

/* Connect to @host:@port once its addresses are known (resolve.h: at
 * once for a numeric address, after the resolver's lookup for a name). */
static void connect_to(struct login_loop *ll, const char *host, uint16_t port)
{
	if (host != ll->host)
		snprintf(ll->host, sizeof ll->host, "%s", host);
	ll->port = port;
	/* (a new connection: what conn_connect() would have set) */
	memset(&ll->c, 0, sizeof ll->c);
	ll->c.fd = -1;
	portal_format(ll->c.peer, sizeof ll->c.peer, ll->host, port);
	snprintf(ll->c.host, sizeof ll->c.host, "%s", ll->host);
	ll->c.port = port;
	ll->c.connect_timeout_ms = ll->timeout_ms;
	ll->c.recv_timeout_ms = ll->timeout_ms;
	ll->c.deadline_ns = ll->deadline_ns;
	ll->state = LL_RESOLVING;
	ll->lookup = resolve_start(ll->loop, ll->host, port, addresses_known, ll);
	if (!ll->lookup)
		connect_failed(ll);
}

/* ---- the exchanges ---- */

/* Send the machine's next request: RECEIVING once the socket took it
 * whole (returns 0), SENDING while it has not (1); -1: the login failed
 * and is gone. */
static int send_request(struct login_loop *ll)
{
	union iscsi_bhs bhs;
	const uint8_t *text;
	size_t len;

	login_machine_request(ll->m, &bhs, &text, &len);
	struct iovec v = { (void *)text, len };
	int rc = conn_send_pdu(&ll->c, &bhs, &v, len ? 1 : 0, (uint32_t)len, false);
	if (rc < 0) {
		finish(ll, -1);
		return -1;
	}
	bool partial = rc == CONN_SEND_PARTIAL;
	ll->state = partial ? LL_SENDING : LL_RECEIVING;
	if (evloop_watch(ll->loop, &ll->src, partial ? EPOLLOUT : EPOLLIN) < 0) {
		err_set(errno, "%s: cannot watch the socket: %s", ll->c.peer, strerror(errno));
		finish(ll, -1);
		return -1;
	}
	return partial ? 1 : 0;
}

/* Do what the machine said (a LOGIN_STEP_*, or -1: failed). */
static void step(struct login_loop *ll, int next)
{
	switch (next) {
	case LOGIN_STEP_SEND:
		(void)send_request(ll);
		return;
	case LOGIN_STEP_DONE:
		finish(ll, 0);
		return;
	case LOGIN_STEP_CONNECT: {
		uint16_t port;
		const char *host = login_machine_portal(ll->m, &port);
		drop_socket(ll);
		connect_to(ll, host, port);
		return;
	}
	default:
		finish(ll, -1);
		return;
	}
}

/* The socket is readable: parse what came into answer parts, each taken
 * by the machine, until the socket has no more or the login moved on. */
static void receive(struct login_loop *ll)
{
	for (;;) {
		int rc = conn_rx_next(&ll->c);
		if (rc < 0) {
			finish(ll, -1);
			return;
		}
		if (rc == PDU_RX_COMPLETE) {
			int next = login_machine_take(ll->m, &ll->c.rx.bhs);
			if (next != LOGIN_STEP_SEND) {
				step(ll, next);
				return;
			}
			/* (a request still going out waits for EPOLLOUT; bytes the
			 * target sent ahead stay buffered until then) */
			if (send_request(ll) != 0)
				return;
			continue;
		}
		if (rc != PDU_RX_MORE) {
			err_set(EPROTO, "internal error: the login receiver of %s out of step",
				ll->c.peer);
			finish(ll, -1);
			return;
		}
		rc = conn_rx_try(&ll->c);
		if (rc < 0) {
			finish(ll, -1);
			return;
		}
		if (rc == 0)
			return;                 /* nothing more now: EPOLLIN again */
	}
}

static void sock_ready(struct ev_source *src, uint32_t events)
{
	struct login_loop *ll = LL_OF(src, src);

	(void)events;
	switch (ll->state) {
	case LL_CONNECTING:
		connect_ended(ll);
		return;
	case LL_SENDING: {
		int rc = conn_send_rest(&ll->c);
		if (rc < 0) {
			finish(ll, -1);
			return;
		}
		if (rc == 0) {
			ll->state = LL_RECEIVING;
			if (evloop_watch(ll->loop, &ll->src, EPOLLIN) < 0) {
				err_set(errno, "%s: cannot watch the socket: %s", ll->c.peer,
					strerror(errno));
				finish(ll, -1);
				return;
			}
			receive(ll);   /* (what the target sent ahead) */
		}
		return;
	}
	case LL_RECEIVING:
		receive(ll);
		return;
	case LL_RESOLVING:
		return;                 /* (no socket then) */
	}
}

/* ---- the start ---- */

static void start_run(struct ev_call *call)
{
	struct login_loop *ll = LL_OF(call, start_call);

	connect_to(ll, ll->host, ll->port);
}

struct login_loop *login_loop_start(struct evloop *loop, const char *host, uint16_t port,
				    int timeout_ms, const struct text_config *cfg,
				    const uint8_t isid[6], uint16_t tsih,
				    login_loop_done_fn done, void *arg)
{
	return login_loop_start_until(loop, host, port, timeout_ms,
				      mono_now_ns() + (int64_t)timeout_ms * 1000000, cfg, isid,
				      tsih, done, arg);
}

struct login_loop *login_loop_start_until(struct evloop *loop, const char *host,
					  uint16_t port, int timeout_ms, int64_t deadline_ns,
					  const struct text_config *cfg, const uint8_t isid[6],
					  uint16_t tsih, login_loop_done_fn done, void *arg)
{
	struct login_loop *ll = calloc(1, sizeof *ll);
	char peer[PORTAL_TEXT_MAX];

	if (!ll) {
		err_set(ENOMEM, "out of memory");
		return NULL;
	}
	portal_format(peer, sizeof peer, host, port);
	ll->m = login_machine_new(cfg, isid, tsih, &ll->lr, host, port, peer);
	if (!ll->m) {
		free(ll);
		return NULL;
	}
	atomic_fetch_add(&logins_started, 1);
	ll->loop = loop;
	ll->src.fd = -1;
	ll->src.ready = sock_ready;
	ll->c.fd = -1;
	ll->deadline_timer.fire = deadline_fire;
	ll->start_call.run = start_run;
	ll->timeout_ms = timeout_ms;
	ll->deadline_ns = deadline_ns;
	snprintf(ll->host, sizeof ll->host, "%s", host);
	ll->port = port;
	ll->done = done;
	ll->arg = arg;
	evloop_timer_arm(loop, &ll->deadline_timer, ll->deadline_ns);
	evloop_post(loop, &ll->start_call);
	return ll;
}
