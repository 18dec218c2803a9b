/* test_login_loop.c: logins on an event loop (login_loop.h), beyond what
 * the login tests run through both drivers (test_login_chap.c,
 * test_login_redirect.c, test_login_deadline.c).
 *
 * Two scripted targets on 127.0.0.1 (scripted_target.h): one logs every
 * connection in; the other accepts connections and never answers (a hung
 * target daemon, or a firewall that passes only the handshake).  The
 * cases:
 *   - three logins to the hung target and one to the good one, all on one
 *     loop: the good one is done within a second while the hung ones
 *     still wait, and these fail at their deadline, not before, with the
 *     message login_connect() gives;
 *   - a login given up (login_loop_cancel()) while the target hangs: its
 *     callback never comes, and the target sees the connection closed;
 *   - a socket that takes the requests a few bytes at a time (the test's
 *     own sendmsg()): each request's rest goes on EPOLLOUT, and the login
 *     ends as it would;
 *   - a host name ("localhost") goes through a resolver thread and logs
 *     in; an address refused first (::1, where nothing listens) gives way
 *     to the next;
 *   - a name that does not resolve, and a port nobody listens on, fail
 *     with the messages of conn_connect().
 *
 * Thread model: the test thread starts logins on the loop and waits for
 * their callbacks (login_on_loop.h); each target's accept thread serves
 * or keeps its connections.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "login_on_loop.h"
#include "scripted_target.h"
#include "testlib.h"

/* The login timeout of the logins to the hung target. */
#define HUNG_MS 2000
/* How long a good login may take on a loaded machine (ASan, TSan). */
#define GOOD_MS 1000

/* While set, the test's sendmsg() below stands for a socket that is
 * nearly full: of the non-blocking sends (MSG_DONTWAIT), every other one
 * finds no room (EAGAIN) and the rest take at most 5 bytes. */
static atomic_bool trickle_sends;
static atomic_ulong sends_cut, sends_refused;   /* what it did */

typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags)
{
	static _Thread_local unsigned turn;
	sendmsg_fn real = (sendmsg_fn)dlsym(RTLD_NEXT, "sendmsg");

	if (!real) {
		errno = ENOSYS;
		return -1;
	}
	if (!atomic_load(&trickle_sends) || !(flags & MSG_DONTWAIT) || msg->msg_iovlen == 0)
		return real(fd, msg, flags);
	if (turn++ % 2 == 0) {
		atomic_fetch_add(&sends_refused, 1);
		errno = EAGAIN;
		return -1;
	}
	struct iovec first = msg->msg_iov[0];
	if (first.iov_len > 5)
		first.iov_len = 5;
	struct msghdr cut = *msg;
	cut.msg_iov = &first;
	cut.msg_iovlen = 1;
	atomic_fetch_add(&sends_cut, 1);
	return real(fd, &cut, flags);
}

/* A target that keeps its connections without a word. */
struct hung {
	struct scripted_target st;    /* listening socket and accept thread */
	pthread_mutex_t lock;         /* protects the fields below */
	pthread_cond_t cond;          /* broadcast when a connection is kept */
	int fds[8];                   /* lock: the connections kept */
	unsigned nfds;                /* lock: entries of fds */
};

static void hung_accepted(struct scripted_target *st, int fd)
{
	struct hung *h = st->opaque;

	pthread_mutex_lock(&h->lock);
	if (h->nfds < sizeof h->fds / sizeof h->fds[0])
		h->fds[h->nfds++] = fd;
	else
		close(fd);
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* The @nth connection kept (from 0), or -1 after 5 s. */
static int hung_conn(struct hung *h, unsigned nth)
{
	struct timespec dl = deadline_in_ms(5000);
	int rc = 0;

	pthread_mutex_lock(&h->lock);
	while (h->nfds <= nth && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&h->cond, &h->lock, &dl);
	int fd = h->nfds > nth ? h->fds[nth] : -1;
	pthread_mutex_unlock(&h->lock);
	return fd;
}

/* A target that logs every connection in, then closes it. */
static void good_accepted(struct scripted_target *st, int fd)
{
	(void)st;
	if (scripted_target_login(fd) == 0) {
		/* wait for the initiator to close (the test's conn_close()) */
		char byte;
		while (read(fd, &byte, 1) > 0)
			;
	}
	close(fd);
}

static struct session_config cfg;     /* the text configuration of every login */
static const uint8_t isid[6] = { 0x80, 1, 2, 3, 4, 5 };

static void test_hung_beside_good(struct evloop *loop, uint16_t hung_port, uint16_t good_port)
{
	struct loop_login hung[3], good;

	int64_t t0 = mono_now_ms();
	for (int i = 0; i < 3; i++)
		loop_login_start(&hung[i], loop, "127.0.0.1", hung_port, HUNG_MS, &cfg.text, isid);
	loop_login_start(&good, loop, "127.0.0.1", good_port, HUNG_MS, &cfg.text, isid);
	CHECK(loop_login_ended(&good, GOOD_MS));
	for (int i = 0; i < 3; i++)
		CHECK(!loop_login_ended(&hung[i], 0));
	struct conn c;
	CHECK(loop_login_wait(&good) == 0);
	c = good.c;
	CHECK(c.fd >= 0 && c.deadline_ns == 0 && c.rx.place == NULL);
	conn_close(&c);
	for (int i = 0; i < 3; i++) {
		int rc = loop_login_wait(&hung[i]);
		int64_t took = hung[i].ended_ms - t0;
		test_checks++;
		if (rc != -1 || hung[i].err != ETIMEDOUT ||
		    !strstr(hung[i].msg, "did not finish the login within 2 s") ||
		    took < HUNG_MS - 50 || took > HUNG_MS + 1500) {
			test_failures++;
			fprintf(stderr, "hung login %d: rc %d errno %d \"%s\" after %lld ms\n", i, rc,
				hung[i].err, hung[i].msg, (long long)took);
		}
	}
}

static void cancel_here(void *arg)
{
	struct loop_login *ll = arg;

	login_loop_cancel(ll->ll);
	ll->ll = NULL;
}

static void test_cancel(struct evloop *loop, struct hung *h, uint16_t hung_port)
{
	struct loop_login ll;

	pthread_mutex_lock(&h->lock);
	unsigned before = h->nfds;
	pthread_mutex_unlock(&h->lock);
	loop_login_start(&ll, loop, "127.0.0.1", hung_port, HUNG_MS, &cfg.text, isid);
	int fd = hung_conn(h, before);
	CHECK(fd >= 0);
	evloop_run_sync(loop, cancel_here, &ll);
	/* the target sees its end (after our Login Request); no callback
	 * comes, not even at the deadline */
	CHECK(fd >= 0 && scripted_target_sees_close(fd, 5000));
	CHECK(!loop_login_ended(&ll, HUNG_MS + 300));
	pthread_mutex_destroy(&ll.lock);
	pthread_cond_destroy(&ll.cond);
}

/* A socket that takes the Login Requests a few bytes at a time: the rest
 * of each waits for EPOLLOUT (SENDING), and the login ends all the same. */
static void test_trickled_sends(struct evloop *loop, uint16_t good_port)
{
	struct login_result lr;
	struct conn c;

	atomic_store(&trickle_sends, true);
	int rc = login_on_loop(loop, &c, "127.0.0.1", good_port, 5000, &cfg.text, isid, &lr);
	atomic_store(&trickle_sends, false);
	CHECK(rc == 0);
	if (rc == 0)
		conn_close(&c);
	/* two requests of a few hundred bytes, 5 at a time */
	CHECK(atomic_load(&sends_cut) > 40 && atomic_load(&sends_refused) > 40);
}

static void test_addresses(struct evloop *loop, uint16_t good_port)
{
	struct login_result lr;
	struct conn c;

	/* a name: the resolver; ::1 (if listed first) refuses, 127.0.0.1 serves */
	CHECK(login_on_loop(loop, &c, "localhost", good_port, 5000, &cfg.text, isid, &lr) == 0);
	conn_close(&c);

	/* a name that does not resolve (or whose lookup does not end) */
	int rc = login_on_loop(loop, &c, "no-such-host.invalid", good_port, 3000, &cfg.text, isid,
			       &lr);
	CHECK(rc == -1 && strstr(err_msg(), "cannot resolve host no-such-host.invalid"));

	/* a port nobody listens on: the target's port once it is closed */
	struct scripted_target gone;
	scripted_target_start(&gone, 1, good_accepted, NULL);
	uint16_t gone_port = gone.port;
	scripted_target_stop(&gone);
	rc = login_on_loop(loop, &c, "127.0.0.1", gone_port, 3000, &cfg.text, isid, &lr);
	char want[64];
	snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%u: Connection refused",
		 gone_port);
	CHECK(rc == -1 && err_errno() == ECONNREFUSED && strstr(err_msg(), want));
}

int main(void)
{
	struct hung h;
	struct scripted_target good;

	signal(SIGPIPE, SIG_IGN);
	log_set_level(LOG_LEVEL_ERROR);
	memset(&h, 0, sizeof h);
	pthread_mutex_init(&h.lock, NULL);
	pthread_cond_init(&h.cond, NULL);
	scripted_target_start(&h.st, 8, hung_accepted, &h);
	scripted_target_start(&good, 8, good_accepted, NULL);
	scripted_target_config(&cfg, good.port, "loop", 8);
	struct evloop *loop = login_test_loop();
	unsigned long started = login_loop_started(), succeeded = login_loop_succeeded();

	test_hung_beside_good(loop, h.st.port, good.port);
	test_cancel(loop, &h, h.st.port);
	test_trickled_sends(loop, good.port);
	test_addresses(loop, good.port);
	CHECK_EQ_U64(login_loop_started() - started, 9);
	CHECK_EQ_U64(login_loop_succeeded() - succeeded, 3);

	scripted_target_stop(&good);
	scripted_target_stop(&h.st);
	for (unsigned i = 0; i < h.nfds; i++)
		close(h.fds[i]);
	pthread_mutex_destroy(&h.lock);
	pthread_cond_destroy(&h.cond);
	return test_done("test_login_loop");
}
