/* test_pool.c: how the session pool spreads work (pool.c), against a
 * scripted target in this process.
 *
 * The target listens on 127.0.0.1 (an ephemeral port), logs every
 * connection in (AuthMethod=None, every operational key answered with our
 * own first value) and answers each SCSI Command with GOOD status, after
 * a delay that is set per connection: a slow session is a connection
 * whose answers take longer.  It opens a window of TARGET_WINDOW commands.
 *
 * The cases, each a fresh pool of real sessions (pool_create(), the
 * daemon's code) submitting TEST UNIT READYs as FUSE workers would (a
 * bounded number in flight, completions on the sessions' RX threads):
 *   - equal sessions share the work: each carries a fair part of it;
 *   - a slow session carries less than the fast ones, but still carries
 *     commands (it is not starved), and no task waits without bound;
 *   - more work than every window together (queue_depth 2): tasks wait
 *     in the pool's queue, all complete, and they leave it in submission
 *     order (FIFO): on each session a later task has a higher CmdSN;
 *   - one session: everything goes through it (the degenerate pool).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "login_peer.h"
#include "testlib.h"
#include "wire.h"

/* Connections the scripted target serves at once (sessions of a pool). */
#define MAX_CONNS 8
/* Commands the target lets each session have outstanding (MaxCmdSN). */
#define TARGET_WINDOW 64

/* The scripted target. */
struct target {
	int listen_fd;                     /* bound to 127.0.0.1:port */
	uint16_t port;                     /* its port */
	unsigned delay_us[MAX_CONNS];      /* per connection, in accept order */
	atomic_uint conns;                 /* connections accepted so far */
	atomic_bool stop;                  /* set to end the accept thread */
	pthread_t thread;                  /* the accept thread */
	pthread_t conn_threads[MAX_CONNS]; /* one per connection */
	int conn_fds[MAX_CONNS];           /* their sockets */
	atomic_uint commands[MAX_CONNS];   /* SCSI Commands answered per connection */
	atomic_bool cmdsn_disorder;        /* a connection saw a CmdSN not one above the last */
};

/* One connection of the target. */
struct target_conn {
	struct target *t;                  /* the target */
	unsigned index;                    /* accept order */
	int fd;                            /* its socket */
};

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Log the connection in: security stage (AuthMethod=None), operational
 * stage, full feature phase.  Returns 0, -1 when the initiator left. */
static int target_login(int fd)
{
	struct answer a = { .len = 0 };
	struct request r;

	if (read_request(fd, &r) < 0)
		return -1;
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

/* Full feature phase: answer SCSI Commands with GOOD, NOP-Outs that want
 * an answer with a NOP-In, a Logout Request with its response. */
static void *target_conn_main(void *arg)
{
	struct target_conn *c = arg;
	struct target *t = c->t;
	uint32_t statsn = 0, last_cmdsn = 0;
	bool have_statsn = false, have_cmdsn = false;
	uint8_t bhs[48], skip[8192];

	if (target_login(c->fd) < 0)
		goto out;
	while (read_all(c->fd, bhs, 48) == 0) {
		uint32_t dlen = (uint32_t)bhs[5] << 16 | (uint32_t)bhs[6] << 8 | bhs[7];
		uint32_t padded = (dlen + 3) & ~3u;
		uint8_t rsp[48] = { 0 };
		uint8_t opcode = bhs[0] & 0x3f;
		uint32_t cmdsn = get32(bhs + 24);

		if (bhs[4] || padded > sizeof skip || (padded && read_all(c->fd, skip, padded) < 0))
			break;                   /* no AHS, no data beyond a ping's */
		if (!have_statsn) {
			statsn = get32(bhs + 28);    /* the initiator's ExpStatSN */
			have_statsn = true;
		}
		memcpy(rsp + 16, bhs + 16, 4);          /* ITT */
		put32(rsp + 24, statsn++);
		put32(rsp + 28, cmdsn + 1);             /* ExpCmdSN */
		put32(rsp + 32, cmdsn + TARGET_WINDOW); /* MaxCmdSN */
		if (opcode == 0x01) {                   /* SCSI Command */
			if (have_cmdsn && cmdsn != last_cmdsn + 1)
				atomic_store(&t->cmdsn_disorder, true);
			last_cmdsn = cmdsn;
			have_cmdsn = true;
			if (t->delay_us[c->index])
				usleep(t->delay_us[c->index]);
			rsp[0] = 0x21;
			rsp[1] = 0x80;
			atomic_fetch_add(&t->commands[c->index], 1);
		} else if (opcode == 0x00) {            /* NOP-Out */
			if (get32(bhs + 16) == 0xffffffffu) {
				statsn--;               /* a reply to our ping: no answer */
				continue;
			}
			rsp[0] = 0x20;
			rsp[1] = 0x80;
			memset(rsp + 20, 0xff, 4);      /* TTT */
			put32(rsp + 28, cmdsn);
			put32(rsp + 32, cmdsn - 1 + TARGET_WINDOW);
		} else if (opcode == 0x06) {            /* Logout Request */
			rsp[0] = 0x26;
			rsp[1] = 0x80;
			if (write(c->fd, rsp, 48) != 48)
				break;
			break;
		} else {
			break;
		}
		if (write(c->fd, rsp, 48) != 48)
			break;
	}
out:
	close(c->fd);
	free(c);
	return NULL;
}

static void *target_main(void *arg)
{
	struct target *t = arg;

	while (!atomic_load(&t->stop)) {
		struct pollfd p = { .fd = t->listen_fd, .events = POLLIN };
		if (poll(&p, 1, 50) <= 0)
			continue;
		int fd = accept(t->listen_fd, NULL, NULL);
		unsigned i = atomic_load(&t->conns);
		if (fd < 0)
			continue;
		struct target_conn *c = malloc(sizeof *c);
		if (i >= MAX_CONNS || !c) {
			free(c);
			close(fd);
			continue;
		}
		*c = (struct target_conn){ .t = t, .index = i, .fd = fd };
		if (pthread_create(&t->conn_threads[i], NULL, target_conn_main, c) != 0) {
			close(fd);
			free(c);
			continue;
		}
		atomic_store(&t->conns, i + 1);
	}
	return NULL;
}

static void target_start(struct target *t)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof sa;

	t->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (t->listen_fd < 0 || bind(t->listen_fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
	    listen(t->listen_fd, MAX_CONNS) < 0 ||
	    getsockname(t->listen_fd, (struct sockaddr *)&sa, &slen) < 0) {
		perror("scripted target");
		exit(99);
	}
	t->port = ntohs(sa.sin_port);
	if (pthread_create(&t->thread, NULL, target_main, t) != 0) {
		perror("pthread_create");
		exit(99);
	}
}

/* After pool_destroy(): every connection has logged out and ended. */
static void target_stop(struct target *t)
{
	atomic_store(&t->stop, true);
	pthread_join(t->thread, NULL);
	for (unsigned i = 0; i < atomic_load(&t->conns); i++)
		pthread_join(t->conn_threads[i], NULL);
	close(t->listen_fd);
}

/* ---- the initiator side: submitters as FUSE workers would be ---- */

/* What a case submits and what came back. */
struct load {
	pthread_mutex_t lock;          /* protects the fields below */
	pthread_cond_t cond;           /* signalled on each completion */
	unsigned in_flight;            /* lock: submitted, not yet done */
	unsigned done;                 /* lock: completed */
	unsigned failed;               /* lock: completed with an error */
	struct session **session_of;   /* lock: by seq, the session that carried it */
	uint32_t *cmdsn_of;            /* lock: by seq, the CmdSN it was sent with */
};

/* One submitted command. */
struct job {
	struct iscsi_task task;        /* the command */
	struct load *load;             /* where it reports */
	unsigned seq;                  /* submission order */
};

static void job_done(struct iscsi_task *task)
{
	struct job *j = (struct job *)task;
	struct load *l = j->load;

	pthread_mutex_lock(&l->lock);
	l->in_flight--;
	l->done++;
	if (task->result != 0 || task->status != 0)
		l->failed++;
	l->session_of[j->seq] = task->session;
	l->cmdsn_of[j->seq] = task->cmdsn;
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
	free(j);
}

/* Whether the tasks of each session carry CmdSNs that rise with their
 * submission order: the pool hands tasks out in the order they came. */
static bool fifo_kept(const struct load *l, unsigned total)
{
	struct session *seen[MAX_CONNS] = { 0 };
	uint32_t last[MAX_CONNS] = { 0 };

	for (unsigned seq = 0; seq < total; seq++) {
		unsigned k = 0;
		while (k < MAX_CONNS && seen[k] && seen[k] != l->session_of[seq])
			k++;
		if (k == MAX_CONNS)
			return false;
		if (seen[k] && !sn_lt(last[k], l->cmdsn_of[seq]))
			return false;
		seen[k] = l->session_of[seq];
		last[k] = l->cmdsn_of[seq];
	}
	return true;
}

/* The outcome of one run. */
struct run_result {
	uint64_t per_session[MAX_CONNS];  /* commands each session sent (its stats) */
	unsigned done, failed;            /* completions, errors among them */
	bool fifo;                        /* on every session, CmdSNs rise with submission order */
	bool target_disorder;             /* a session's CmdSNs were not consecutive */
	int64_t ms;                       /* wall time */
};

/* Submit @total TEST UNIT READYs through a pool of @nsessions sessions
 * (queue_depth @depth), at most @window in flight, with the target's
 * per-connection delays @delay_us.  Returns 0, -1 when the pool cannot
 * be made. */
static int run(unsigned nsessions, unsigned depth, unsigned window, unsigned total,
	       const unsigned *delay_us, struct run_result *out)
{
	struct target t = { .listen_fd = -1 };
	struct session_config cfg = {
		.host = "127.0.0.1",
		.target_name = "iqn.2026-11.org.iscsifs.test:pool",
		.initiator_name = "iqn.2026-11.org.iscsifs:test-pool",
		.queue_depth = depth,
		.connect_timeout_ms = 5000,
		.isid_base = { 0x80, 0x12, 0x34, 0x56, 0x78, 0x00 },
	};
	struct load l = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	int64_t start;

	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < nsessions; i++)
		t.delay_us[i] = delay_us ? delay_us[i] : 0;
	target_start(&t);
	cfg.port = t.port;
	cfg.text = (struct text_config){
		.initiator_name = cfg.initiator_name, .target_name = cfg.target_name,
		.header_digest = DIGEST_PREF_NONE, .data_digest = DIGEST_PREF_NONE,
		.max_recv_dsl = 8192, .max_burst_length = 262144, .first_burst_length = 65536,
		.max_outstanding_r2t = 1, .immediate_data = true, .initial_r2t = true,
	};
	struct pool *p = pool_create(&cfg, nsessions, 10);
	if (!p) {
		fprintf(stderr, "pool_create: %s\n", err_msg());
		target_stop(&t);
		return -1;
	}
	l.session_of = calloc(total, sizeof *l.session_of);
	l.cmdsn_of = calloc(total, sizeof *l.cmdsn_of);
	if (!l.session_of || !l.cmdsn_of)
		exit(99);
	start = mono_now_ms();
	for (unsigned seq = 0; seq < total; seq++) {
		struct job *j = calloc(1, sizeof *j);
		if (!j)
			exit(99);
		pthread_mutex_lock(&l.lock);
		while (l.in_flight >= window)
			pthread_cond_wait(&l.cond, &l.lock);
		l.in_flight++;
		pthread_mutex_unlock(&l.lock);
		j->load = &l;
		j->seq = seq;
		j->task.lun = 0;
		j->task.dir = TASK_DIR_NONE;   /* TEST UNIT READY: cdb all zero */
		j->task.done = job_done;
		pool_submit(p, &j->task);
	}
	pthread_mutex_lock(&l.lock);
	while (l.done < total)
		pthread_cond_wait(&l.cond, &l.lock);
	out->done = l.done;
	out->failed = l.failed;
	pthread_mutex_unlock(&l.lock);
	out->fifo = fifo_kept(&l, total);
	out->ms = mono_now_ms() - start;
	for (unsigned i = 0; i < nsessions; i++) {
		struct session_stats st;
		pool_session_stats(p, i, &st);
		out->per_session[i] = st.commands;
	}
	pool_destroy(p, 5000);
	target_stop(&t);
	out->target_disorder = atomic_load(&t.cmdsn_disorder);
	free(l.session_of);
	free(l.cmdsn_of);
	return 0;
}

static void print_spread(const char *name, unsigned n, const struct run_result *r)
{
	printf("%s: %u commands in %lld ms; per session:", name, r->done, (long long)r->ms);
	for (unsigned i = 0; i < n; i++)
		printf(" %llu", (unsigned long long)r->per_session[i]);
	printf("%s\n", r->fifo ? "; FIFO kept" : "; FIFO broken");
}

/* Equal sessions: each carries between half and twice its fair share. */
static void test_equal(void)
{
	enum { N = 4, TOTAL = 4000 };
	static const unsigned delays[N] = { 200, 200, 200, 200 };
	struct run_result r;

	CHECK(run(N, 32, 64, TOTAL, delays, &r) == 0);
	print_spread("equal sessions", N, &r);
	CHECK_EQ_U64(r.done, TOTAL);
	CHECK_EQ_U64(r.failed, 0);
	uint64_t sum = 0;
	for (unsigned i = 0; i < N; i++) {
		sum += r.per_session[i];
		CHECK(r.per_session[i] >= TOTAL / N / 2);
		CHECK(r.per_session[i] <= TOTAL / N * 2);
	}
	CHECK_EQ_U64(sum, TOTAL);
	CHECK(r.fifo);
	CHECK(!r.target_disorder);
}

/* A session ten times slower than the others carries less, but carries
 * commands; every task completes. */
static void test_slow_session(void)
{
	enum { N = 4, TOTAL = 3000 };
	static const unsigned delays[N] = { 2000, 200, 200, 200 };
	struct run_result r;

	CHECK(run(N, 32, 64, TOTAL, delays, &r) == 0);
	print_spread("one slow session", N, &r);
	CHECK_EQ_U64(r.done, TOTAL);
	CHECK_EQ_U64(r.failed, 0);
	CHECK(r.per_session[0] > 0);                 /* not starved */
	for (unsigned i = 1; i < N; i++)
		CHECK(r.per_session[0] < r.per_session[i]);
	CHECK(r.fifo);
	CHECK(!r.target_disorder);
}

/* More in flight than every queue_depth together: tasks wait in the
 * pool's FIFO queue; all complete, every session carries its part, and
 * the queue is drained in submission order. */
static void test_queueing(void)
{
	enum { N = 4, DEPTH = 2, TOTAL = 2000 };
	static const unsigned delays[N] = { 300, 300, 300, 300 };
	struct run_result r;

	CHECK(run(N, DEPTH, 256, TOTAL, delays, &r) == 0);
	print_spread("queue_depth 2, 256 in flight", N, &r);
	CHECK_EQ_U64(r.done, TOTAL);
	CHECK_EQ_U64(r.failed, 0);
	for (unsigned i = 0; i < N; i++)
		CHECK(r.per_session[i] >= TOTAL / N / 2);
	CHECK(r.fifo);
	CHECK(!r.target_disorder);
}

/* One session carries everything. */
static void test_single(void)
{
	struct run_result r;

	CHECK(run(1, 8, 32, 500, NULL, &r) == 0);
	print_spread("one session", 1, &r);
	CHECK_EQ_U64(r.done, 500);
	CHECK_EQ_U64(r.failed, 0);
	CHECK_EQ_U64(r.per_session[0], 500);
}

int main(void)
{
	test_equal();
	test_slow_session();
	test_queueing();
	test_single();
	return test_done("test_pool");
}
