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
 *   - one session: everything goes through it (the degenerate pool).
 */
#include <errno.h>
#include <pthread.h>
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
 * per-connection delays and counters. */
struct target {
	struct scripted_target st;         /* listening socket and accept thread */
	unsigned delay_us[MAX_CONNS];      /* per connection, in accept order */
	atomic_uint conns;                 /* connections accepted so far */
	pthread_t conn_threads[MAX_CONNS]; /* one per connection */
	atomic_uint commands[MAX_CONNS];   /* SCSI Commands answered per connection */
	atomic_bool cmdsn_disorder;        /* a connection saw a CmdSN not one above the last */
};

/* One connection of the target. */
struct target_conn {
	struct target *t;                  /* the target */
	unsigned index;                    /* accept order */
	int fd;                            /* its socket */
	uint32_t last_cmdsn;               /* CmdSN of the last SCSI Command (its thread) */
	bool have_cmdsn;                   /* last_cmdsn is set (its thread) */
};

/* Before the GOOD of a SCSI Command goes: check that its CmdSN is one
 * above the last, wait the connection's delay, count it. */
static void target_seen(void *arg, const uint8_t *bhs)
{
	struct target_conn *c = arg;
	struct target *t = c->t;
	uint32_t cmdsn = get32(bhs + 24);

	if ((bhs[0] & 0x3f) != 0x01)
		return;
	if (c->have_cmdsn && cmdsn != c->last_cmdsn + 1)
		atomic_store(&t->cmdsn_disorder, true);
	c->last_cmdsn = cmdsn;
	c->have_cmdsn = true;
	if (t->delay_us[c->index])
		usleep(t->delay_us[c->index]);
	atomic_fetch_add(&t->commands[c->index], 1);
}

static void *target_conn_main(void *arg)
{
	struct target_conn *c = arg;

	scripted_target_serve(c->fd, TARGET_WINDOW, target_seen, c);
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
};

/* Submit @total TEST UNIT READYs through a pool of @nsessions sessions
 * (queue_depth @depth), at most @window in flight, with the target's
 * per-connection delays @delay_us.  Returns 0, -1 when the pool cannot
 * be made. */
static int run(unsigned nsessions, unsigned depth, unsigned window, unsigned total,
	       const unsigned *delay_us, struct run_result *out)
{
	struct target t = { .st.listen_fd = -1 };
	struct session_config cfg;
	struct load l = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };
	int64_t start;

	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < nsessions; i++)
		t.delay_us[i] = delay_us ? delay_us[i] : 0;
	scripted_target_start(&t.st, MAX_CONNS, target_accepted, &t);
	scripted_target_config(&cfg, t.st.port, "pool", depth);
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
