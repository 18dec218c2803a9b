/* test_pool.c: how the session pool spreads work (pool.c), against a
 * scripted target in this process.
 *
 * The target (scripted_target.h) listens on 127.0.0.1 (an ephemeral port), logs every
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
 *   - one session: everything goes through it (the degenerate pool);
 *   - a target that takes 300 ms over each login: the four sessions of a
 *     pool are in their logins at the same time (they were one after the
 *     other), and the pool is there in one login's time;
 *   - a target that refuses session 0's login at once and holds the others
 *     2 s: pool_create() fails at once with session 0's reason, the other
 *     logins given up rather than waited for;
 *   - a target that holds session 0's login 2 s and pings session 1 (a
 *     NOP-In wanting an answer) as soon as its login ends: the answer comes
 *     at once, not once session 0 is in (each session is watched by its
 *     loop as soon as its own login ends).
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "deadline.h"
#include "log.h"
#include "pool.h"
#include "session.h"
#include "scripted_target.h"
#include "testlib.h"
#include "wire.h"

/* Connections the scripted target serves at once (sessions of a pool). */
#define MAX_CONNS 8
/* Commands the target lets each session have outstanding (MaxCmdSN). */
#define TARGET_WINDOW 64

/* The scripted target (scripted_target.h), with what this test adds:
 * per-session delays and counters. */
struct target {
	struct scripted_target st;         /* listening socket and accept thread */
	unsigned delay_us[MAX_CONNS];      /* per session of the pool (its index,
	                                    * from the ISID the connection logs in
	                                    * with: the sessions log in at once, so
	                                    * the accept order is any) */
	atomic_uint conns;                 /* connections accepted so far */
	pthread_t conn_threads[MAX_CONNS]; /* one per connection */
	atomic_uint commands[MAX_CONNS];   /* SCSI Commands answered per session */
	atomic_bool cmdsn_disorder;        /* a connection saw a CmdSN not one above the last */
	unsigned login_hold_us;            /* how long each login is held */
	int hold_only;                     /* the one session whose login is held,
	                                    * or -1: every session's */
	bool refuse_first;                 /* session 0's login is refused at once
	                                    * (authentication failed), not held */
	int ping_session;                  /* the session pinged as soon as it is
	                                    * logged in, or -1: none */
	_Atomic long long ping_answer_ms;  /* how long its answer took, -1: none
	                                    * (yet), -2: something else came */
	atomic_uint logging_in;            /* connections holding their login now */
	atomic_uint most_logging_in;       /* the most at once */
};

/* One connection of the target. */
struct target_conn {
	struct target *t;                  /* the target */
	unsigned index;                    /* accept order */
	unsigned session;                  /* the session's index (its ISID; its thread) */
	int fd;                            /* its socket */
	uint32_t last_cmdsn;               /* CmdSN of the last SCSI Command (its thread) */
	bool have_cmdsn;                   /* last_cmdsn is set (its thread) */
};

/* Before the GOOD of a SCSI Command goes: check that its CmdSN is one
 * above the last, wait the session's delay, count it.  (And the first
 * Login Request: which session the connection is.) */
static void target_seen(void *arg, const uint8_t *bhs)
{
	struct target_conn *c = arg;
	struct target *t = c->t;
	uint32_t cmdsn = get32(bhs + 24);

	if ((bhs[0] & 0x3f) == 0x03) {
		/* the first Login Request: the last ISID byte is the pool's
		 * base (scripted_target_config(): 0) plus the session's index */
		c->session = bhs[13] % MAX_CONNS;
		if (t->refuse_first && c->session == 0) {
			struct request r = { .len = 0 };

			memcpy(r.bhs, bhs, sizeof r.bhs);
			respond(c->fd, &r, 0, 2, 1, NULL);     /* 0x0201 */
			shutdown(c->fd, SHUT_RDWR);          /* (the rest fails) */
			return;
		}
		if (t->login_hold_us && (t->hold_only < 0 || (unsigned)t->hold_only == c->session)) {
			unsigned now = atomic_fetch_add(&t->logging_in, 1) + 1;
			unsigned most = atomic_load(&t->most_logging_in);
			while (now > most &&
			       !atomic_compare_exchange_weak(&t->most_logging_in, &most, now))
				;
			usleep(t->login_hold_us);
			atomic_fetch_sub(&t->logging_in, 1);
		}
		return;
	}
	if ((bhs[0] & 0x3f) != 0x01)
		return;
	if (c->have_cmdsn && cmdsn != c->last_cmdsn + 1)
		atomic_store(&t->cmdsn_disorder, true);
	c->last_cmdsn = cmdsn;
	c->have_cmdsn = true;
	if (t->delay_us[c->session])
		usleep(t->delay_us[c->session]);
	atomic_fetch_add(&t->commands[c->session], 1);
}

/* Ping the initiator on @c, just logged in: a NOP-In wanting an answer
 * (Target Transfer Tag 0x1234; ExpCmdSN and MaxCmdSN as the login left
 * them), and time the NOP-Out that answers it, the next PDU to come. */
static void ping_and_time(struct target_conn *c)
{
	uint8_t nop[48] = { 0x20, 0x80 }, got[48];
	int64_t start = mono_now_ms();
	struct pollfd p = { .fd = c->fd, .events = POLLIN };
	long long answer = -2;
	int one = 1;

	/* not held back by Nagle behind the Login Response, whose ACK the
	 * initiator may delay 40 ms */
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	memset(nop + 16, 0xff, 4);         /* ITT: reserved, unsolicited */
	put32(nop + 20, 0x1234);           /* TTT: answer wanted */
	put32(nop + 28, 1);                /* ExpCmdSN, as at the login */
	put32(nop + 32, 1);                /* MaxCmdSN */
	if (write(c->fd, nop, sizeof nop) != (ssize_t)sizeof nop)
		return;
	if (poll(&p, 1, 10000) == 1 && read_all(c->fd, got, sizeof got) == 0 &&
	    (got[0] & 0x3f) == 0x00 && get32(got + 16) == 0xffffffffu && get32(got + 20) == 0x1234)
		answer = mono_now_ms() - start;
	atomic_store(&c->t->ping_answer_ms, answer);
}

static void *target_conn_main(void *arg)
{
	struct target_conn *c = arg;

	if (scripted_target_login_seen(c->fd, target_seen, c) == 0) {
		if (c->t->ping_session >= 0 && (unsigned)c->t->ping_session == c->session)
			ping_and_time(c);
		scripted_target_serve_logged_in(c->fd, TARGET_WINDOW, target_seen, c);
	}
	close(c->fd);
	free(c);
	return NULL;
}

/* On the accept thread: each connection gets a thread of its own. */
static void target_accepted(struct scripted_target *st, int fd)
{
	struct target *t = st->opaque;
	unsigned i = atomic_load(&t->conns);
	struct target_conn *c = malloc(sizeof *c);

	if (i >= MAX_CONNS || !c) {
		free(c);
		close(fd);
		return;
	}
	*c = (struct target_conn){ .t = t, .index = i, .fd = fd };
	if (pthread_create(&t->conn_threads[i], NULL, target_conn_main, c) != 0) {
		close(fd);
		free(c);
		return;
	}
	atomic_store(&t->conns, i + 1);
}

/* After pool_destroy(): every connection has logged out and ended. */
static void target_stop(struct target *t)
{
	scripted_target_stop(&t->st);
	for (unsigned i = 0; i < atomic_load(&t->conns); i++)
		pthread_join(t->conn_threads[i], NULL);
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
	unsigned most_logging_in;         /* the most sessions in their logins at once */
	int64_t create_ms;                /* pool_create()'s time */
	long long ping_answer_ms;         /* how long the ping's answer took (see
	                                   * struct target) */
};

/* How the target treats the logins of a run (NULL: it answers each at
 * once). */
struct login_script {
	unsigned hold_ms;                 /* each login held this long */
	int hold_only;                    /* only this session's, or -1: every one */
	bool refuse_first;                /* session 0's refused at once */
	int ping_session;                 /* pinged once logged in, or -1: none */
};

/* Submit @total TEST UNIT READYs through a pool of @nsessions sessions
 * (queue_depth @depth), at most @window in flight, with the target's
 * per-session delays @delay_us and its logins as @script says (NULL:
 * answered at once).  Returns 0, -1 when the pool cannot be made (err_*()
 * says why). */
static int run(unsigned nsessions, unsigned depth, unsigned window, unsigned total,
	       const unsigned *delay_us, const struct login_script *script,
	       struct run_result *out)
{
	struct target t = { .st.listen_fd = -1 };
	struct session_config cfg;
	struct load l = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	int64_t start;

	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < nsessions; i++)
		t.delay_us[i] = delay_us ? delay_us[i] : 0;
	t.hold_only = -1;
	t.ping_session = -1;
	atomic_init(&t.ping_answer_ms, -1);
	if (script) {
		t.login_hold_us = script->hold_ms * 1000;
		t.hold_only = script->hold_only;
		t.refuse_first = script->refuse_first;
		t.ping_session = script->ping_session;
	}
	scripted_target_start(&t.st, MAX_CONNS, target_accepted, &t);
	scripted_target_config(&cfg, t.st.port, "pool", depth);
	start = mono_now_ms();
	struct pool *p = pool_create(&cfg, nsessions, 10);
	out->create_ms = mono_now_ms() - start;
	out->most_logging_in = atomic_load(&t.most_logging_in);
	out->ping_answer_ms = atomic_load(&t.ping_answer_ms);
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

	CHECK(run(N, 32, 64, TOTAL, delays, NULL, &r) == 0);
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

	CHECK(run(N, 32, 64, TOTAL, delays, NULL, &r) == 0);
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

	CHECK(run(N, DEPTH, 256, TOTAL, delays, NULL, &r) == 0);
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

	CHECK(run(1, 8, 32, 500, NULL, NULL, &r) == 0);
	print_spread("one session", 1, &r);
	CHECK_EQ_U64(r.done, 500);
	CHECK_EQ_U64(r.failed, 0);
	CHECK_EQ_U64(r.per_session[0], 500);
}

/* Every login held 300 ms by the target: the sessions log in at once. */
static void test_logins_at_once(void)
{
	enum { N = 4, HOLD_MS = 300 };
	struct run_result r;

	const struct login_script held = { .hold_ms = HOLD_MS, .hold_only = -1, .ping_session = -1 };

	CHECK(run(N, 8, 32, 100, NULL, &held, &r) == 0);
	printf("%u sessions, logins held %d ms: %u at once at most, the pool made in %lld ms\n",
	       N, HOLD_MS, r.most_logging_in, (long long)r.create_ms);
	CHECK_EQ_U64(r.done, 100);
	CHECK_EQ_U64(r.most_logging_in, N);
	/* one after the other would be N * HOLD_MS at least */
	CHECK(r.create_ms < (N - 1) * HOLD_MS);
}

/* Session 0's login refused at once, the others held 2 s: the pool fails
 * at once, with session 0's reason. */
static void test_refused_fails_fast(void)
{
	enum { N = 4, HOLD_MS = 2000 };
	struct run_result r;

	const struct login_script refused = {
		.hold_ms = HOLD_MS, .hold_only = -1, .refuse_first = true, .ping_session = -1,
	};

	CHECK(run(N, 8, 32, 100, NULL, &refused, &r) < 0);
	printf("session 0 refused, the others held %d ms: pool_create() failed in %lld ms: %s\n",
	       HOLD_MS, (long long)r.create_ms, err_msg());
	CHECK_EQ_U64(err_errno(), EACCES);
	CHECK(strstr(err_msg(), "authentication failed") != NULL);
	CHECK(r.create_ms < HOLD_MS / 2);
}

/* Session 0's login held 2 s, session 1 pinged once logged in: its
 * answer comes while session 0's login goes on. */
static void test_started_as_logged_in(void)
{
	enum { N = 4, HOLD_MS = 2000 };
	const struct login_script script = { .hold_ms = HOLD_MS, .hold_only = 0, .ping_session = 1 };
	struct run_result r;

	CHECK(run(N, 8, 32, 100, NULL, &script, &r) == 0);
	printf("session 0's login held %d ms: session 1's answer to a ping took %lld ms, the pool made in %lld ms\n",
	       HOLD_MS, r.ping_answer_ms, (long long)r.create_ms);
	CHECK_EQ_U64(r.done, 100);
	CHECK(r.create_ms >= HOLD_MS);
	CHECK(r.ping_answer_ms >= 0);
	/* watched only once every login ended, it would be HOLD_MS */
	CHECK(r.ping_answer_ms < HOLD_MS / 2);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);   /* (the refusing target writes to a closed socket) */
	test_equal();
	test_slow_session();
	test_queueing();
	test_single();
	test_logins_at_once();
	test_refused_fails_fast();
	test_started_as_logged_in();
	return test_done("test_pool");
}
