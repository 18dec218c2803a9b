/* test_session.c: one session (session*.c) alone, against a target this
 * test plays itself, with a fake owner that records every callback.
 *
 * The test thread is the target: it reads what the session sends on its
 * end of the connection and answers byte by byte as a target would (the
 * BHS fields at their RFC 7143 offsets, written here, not with pdu.c).
 * The session runs on an event loop of the process (evloop.h).  The
 * owner is a table of callbacks (struct session_owner_ops) that only
 * records: kicks, tasks handed back (requeue), the LUNs the identity check
 * asks for, and every state transition (the observer).
 *
 * The cases:
 *   - a READ answered with Data-In carrying status: the data lands in the
 *     buffer, the owner is kicked;
 *   - a WRITE with InitialR2T=Yes and no immediate data: the target's R2T
 *     is answered with Data-Out PDUs of MaxRecvDataSegmentLength, DataSN
 *     and offsets in order, the payload intact;
 *   - a Reject: the connection fails, and a session that may not recover
 *     (session_attach_fd()) closes and fails its task with EIO;
 *   - a command over cmd_timeout (session_tick_ahead()): ABORT TASK of it
 *     goes, and once the target answers "function complete" the task is
 *     handed back to the owner (requeue) to be sent again;
 *   - a connection the target drops (Async Message, Time2Wait 0) under a
 *     session that logged in itself (session_login()): the read goes back
 *     to the owner at once, the write that was on the wire only once the
 *     session has logged in again and checked identities, and the session
 *     moves full feature -> waiting to reconnect -> logging in ->
 *     verifying identity -> full feature; then it carries commands again;
 *   - the same target then logs the session in again and again but
 *     closes each connection in the identity check: the write comes back
 *     to the owner after the replacement timeout all the same;
 *   - a logout the target asked for, not answered yet when the session
 *     is closed: no second Logout goes, and its answer ends the close;
 *   - a NOP-In ping in the same segment as the last Login Response is
 *     answered at once, though no more bytes come;
 *   - a session that ticks itself (session_tick_start()) sends its
 *     keepalive NOP-Outs with no one calling session_tick();
 *   - two sessions lose their connections and A's target hangs in the
 *     login: B is back within a second all the same, and A, closed while
 *     its login hangs, is gone at once;
 *   - a target that stops reading while eight writes go out with
 *     immediate and unsolicited data: the socket fills, the session's
 *     event loop stays free (a call posted to it runs at once), and once
 *     the target reads again every PDU arrives whole and in order;
 *   - the transition tables, and an illegal move caught: the session
 *     aborts with a line naming both states (NDEBUG: logs and moves);
 *   - session_login() called on an event loop fails at once with EDEADLK
 *     (its login would run on the loops and wait for the calling one).
 */
#include <errno.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deadline.h"
#include "evloop.h"
#include "log.h"
#include "login.h"
#include "session.h"
#include "scripted_target.h"
#include "session_internal.h"
#include "testlib.h"

/* How long any wait of the test lasts at most before it counts as failed. */
#define WAIT_MS 5000
/* Most transitions one case records. */
#define MAX_MOVES 32
/* Most tasks the owner is handed back in one case. */
#define MAX_REQUEUED 8

/* ---- the fake owner ---- */

/* What the session told its owner. */
struct owner {
	pthread_mutex_t lock;                   /* protects the fields below */
	pthread_cond_t cond;                    /* broadcast on every callback */
	unsigned kicks;                         /* lock: kick() calls */
	unsigned requeue_calls;                 /* lock: requeue() calls */
	struct iscsi_task *requeued[MAX_REQUEUED]; /* lock: tasks handed back, in order */
	unsigned nrequeued;                     /* lock: entries of requeued */
	unsigned expected_calls;                /* lock: expected_luns() calls */
	unsigned nexpect;                       /* LUNs expected_luns() gives (1, 2, ...;
	                                         * set before the session starts) */
	enum session_state from[MAX_MOVES];     /* lock: transitions seen, from ... */
	enum session_state to[MAX_MOVES];       /* lock: ... to */
	unsigned nmoves;                        /* lock: entries of from and to */
};

static void owner_kick(void *opaque)
{
	struct owner *o = opaque;

	pthread_mutex_lock(&o->lock);
	o->kicks++;
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

static void owner_requeue(void *opaque, struct iscsi_task *list)
{
	struct owner *o = opaque;

	pthread_mutex_lock(&o->lock);
	o->requeue_calls++;
	while (list) {
		struct iscsi_task *t = list;
		list = t->next;
		t->next = NULL;
		if (o->nrequeued < MAX_REQUEUED)
			o->requeued[o->nrequeued++] = t;
	}
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

/* LUNs 1 to o->nexpect, of 100 blocks of 512 bytes, without VPD pages
 * (each is checked with READ CAPACITY); none: the check ends at once. */
static int owner_expected_luns(void *opaque, struct lun_identity **out)
{
	struct owner *o = opaque;

	pthread_mutex_lock(&o->lock);
	o->expected_calls++;
	pthread_mutex_unlock(&o->lock);
	*out = NULL;
	if (!o->nexpect)
		return 0;
	*out = calloc(o->nexpect, sizeof **out);
	if (!*out)
		return -1;
	for (unsigned i = 0; i < o->nexpect; i++)
		(*out)[i] = (struct lun_identity){ .lun = i + 1, .block_size = 512, .blocks = 100 };
	return (int)o->nexpect;
}

/* The observer: with the session lock held (lock order session -> owner). */
static void owner_state_changed(void *opaque, const struct session *s, enum session_state from,
				enum session_state to)
{
	struct owner *o = opaque;

	(void)s;
	pthread_mutex_lock(&o->lock);
	if (o->nmoves < MAX_MOVES) {
		o->from[o->nmoves] = from;
		o->to[o->nmoves] = to;
		o->nmoves++;
	}
	pthread_cond_broadcast(&o->cond);
	pthread_mutex_unlock(&o->lock);
}

static const struct session_owner_ops owner_ops = {
	.kick = owner_kick,
	.requeue = owner_requeue,
	.expected_luns = owner_expected_luns,
	.state_changed = owner_state_changed,
};

static void owner_init(struct owner *o)
{
	memset(o, 0, sizeof *o);
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->cond, NULL);
}

static void owner_fini(struct owner *o)
{
	pthread_mutex_destroy(&o->lock);
	pthread_cond_destroy(&o->cond);
}

/* Wait until the owner was handed back @n tasks in all.  Returns whether
 * it was within @ms. */
static bool wait_requeued_ms(struct owner *o, unsigned n, unsigned ms)
{
	struct timespec dl = deadline_in_ms(ms);
	int rc = 0;

	pthread_mutex_lock(&o->lock);
	while (o->nrequeued < n && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&o->cond, &o->lock, &dl);
	bool ok = o->nrequeued >= n;
	pthread_mutex_unlock(&o->lock);
	return ok;
}

/* The same within WAIT_MS. */
static bool wait_requeued(struct owner *o, unsigned n)
{
	return wait_requeued_ms(o, n, WAIT_MS);
}

/* Wait until the owner was kicked at least once.  Returns whether it was
 * within WAIT_MS (the session kicks after it called done()). */
static bool wait_kicked(struct owner *o)
{
	struct timespec dl = deadline_in_ms(WAIT_MS);
	int rc = 0;

	pthread_mutex_lock(&o->lock);
	while (o->kicks == 0 && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&o->cond, &o->lock, &dl);
	bool ok = o->kicks > 0;
	pthread_mutex_unlock(&o->lock);
	return ok;
}

/* Wait until the observer saw a move into @state (the @nth one, from 1).
 * Returns whether it was within WAIT_MS. */
static bool wait_moved_to(struct owner *o, enum session_state state, unsigned nth)
{
	struct timespec dl = deadline_in_ms(WAIT_MS);
	int rc = 0;
	bool ok = false;

	pthread_mutex_lock(&o->lock);
	for (;;) {
		unsigned seen = 0;
		for (unsigned i = 0; i < o->nmoves; i++)
			seen += o->to[i] == state;
		ok = seen >= nth;
		if (ok || rc == ETIMEDOUT)
			break;
		rc = deadline_cond_wait(&o->cond, &o->lock, &dl);
	}
	pthread_mutex_unlock(&o->lock);
	return ok;
}

/* Whether the observer saw exactly the moves of @want (@n pairs of from
 * and to), in order. */
static bool moves_are(struct owner *o, const enum session_state (*want)[2], unsigned n)
{
	pthread_mutex_lock(&o->lock);
	bool same = o->nmoves == n;
	for (unsigned i = 0; same && i < n; i++)
		same = o->from[i] == want[i][0] && o->to[i] == want[i][1];
	if (!same) {
		fprintf(stderr, "transitions seen:");
		for (unsigned i = 0; i < o->nmoves; i++)
			fprintf(stderr, " [%s -> %s]", session_state_name(o->from[i]),
				session_state_name(o->to[i]));
		fprintf(stderr, "\n");
	}
	pthread_mutex_unlock(&o->lock);
	return same;
}

/* ---- tasks ---- */

/* A task the test submits and waits for. */
struct job {
	struct iscsi_task task;        /* what the session sees; task.opaque = this */
	pthread_mutex_t lock;          /* protects calls */
	pthread_cond_t cond;           /* signalled by done() */
	unsigned calls;                /* lock: done() calls */
	uint8_t buf[16384];            /* READ: the buffer; WRITE: the payload */
	struct iovec iov[2];           /* WRITE: the payload in two pieces */
};

static void job_done(struct iscsi_task *t)
{
	struct job *j = t->opaque;

	pthread_mutex_lock(&j->lock);
	j->calls++;
	pthread_cond_signal(&j->cond);
	pthread_mutex_unlock(&j->lock);
}

/* A job of @dir moving @len bytes (WRITE: a payload of a known pattern in
 * two uneven pieces); CDB opcode @opcode. */
static struct job *job_new(enum task_dir dir, uint32_t len, uint8_t opcode)
{
	struct job *j = calloc(1, sizeof *j);

	if (!j || len > sizeof j->buf)
		exit(99);
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	j->task.dir = dir;
	j->task.xfer_len = len;
	j->task.cdb[0] = opcode;
	j->task.done = job_done;
	j->task.opaque = j;
	if (dir == TASK_DIR_READ) {
		j->task.read_buf = j->buf;
	} else if (dir == TASK_DIR_WRITE) {
		for (uint32_t i = 0; i < len; i++)
			j->buf[i] = (uint8_t)(i * 7 + 3);
		j->iov[0] = (struct iovec){ j->buf, len / 3 };
		j->iov[1] = (struct iovec){ j->buf + len / 3, len - len / 3 };
		j->task.write_iov = j->iov;
		j->task.write_iovcnt = 2;
	}
	return j;
}

/* Wait for done(); returns whether it was called, exactly once. */
static bool job_wait(struct job *j)
{
	struct timespec dl = deadline_in_ms(WAIT_MS);
	int rc = 0;

	pthread_mutex_lock(&j->lock);
	while (j->calls == 0 && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&j->cond, &j->lock, &dl);
	unsigned calls = j->calls;
	pthread_mutex_unlock(&j->lock);
	return calls == 1;
}

static void job_free(struct job *j)
{
	pthread_mutex_destroy(&j->lock);
	pthread_cond_destroy(&j->cond);
	free(j);
}

/* ---- the target's end of the connection ---- */

/* One connection as the target sees it. */
struct peer {
	int fd;                        /* the target's socket */
	uint32_t statsn;               /* StatSN of the next response */
	uint32_t exp_cmdsn;            /* the next CmdSN it expects */
};

/* One PDU the session sent. */
struct pdu_in {
	uint8_t bhs[48];               /* its header */
	uint8_t data[16384];           /* its data segment (no digests in use) */
	uint32_t len;                  /* bytes of data */
};

/* Read @len bytes, waiting at most WAIT_MS for each piece.  Returns 0, -1
 * on end of connection or time out. */
static int peer_read(struct peer *p, void *buf, size_t len)
{
	for (size_t got = 0; got < len;) {
		struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
		if (poll(&pfd, 1, WAIT_MS) <= 0)
			return -1;
		ssize_t n = read(p->fd, (uint8_t *)buf + got, len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* The next PDU the session sends.  Returns 0, or -1 (then *in says
 * nothing). */
static int peer_recv(struct peer *p, struct pdu_in *in)
{
	uint8_t pad[4];

	if (peer_read(p, in->bhs, 48) < 0)
		return -1;
	in->len = (uint32_t)in->bhs[5] << 16 | (uint32_t)in->bhs[6] << 8 | in->bhs[7];
	if (in->bhs[4] || in->len > sizeof in->data)
		return -1;
	if (peer_read(p, in->data, in->len) < 0 || peer_read(p, pad, (4 - in->len % 4) % 4) < 0)
		return -1;
	return 0;
}

/* Send a PDU of @opcode: @bhs (48 bytes, opcode and sequence numbers
 * filled in here) and @len bytes of @data.  StatSN advances when
 * @status_sn. */
static void peer_send(struct peer *p, uint8_t *bhs, const void *data, uint32_t len,
		      bool status_sn)
{
	uint8_t pad[4] = { 0 };

	bhs[5] = (uint8_t)(len >> 16);
	bhs[6] = (uint8_t)(len >> 8);
	bhs[7] = (uint8_t)len;
	put32(bhs + 24, status_sn ? p->statsn++ : p->statsn);
	put32(bhs + 28, p->exp_cmdsn);                 /* ExpCmdSN */
	put32(bhs + 32, p->exp_cmdsn + 63);            /* MaxCmdSN: a window of 64 */
	size_t padding = (4 - len % 4) % 4;
	if (write(p->fd, bhs, 48) != 48 || (len && write(p->fd, data, len) != (ssize_t)len) ||
	    (padding && write(p->fd, pad, padding) != (ssize_t)padding))
		fprintf(stderr, "test target: write of PDU 0x%02x failed: %s\n", bhs[0],
			strerror(errno));
}

/* Read the next PDU and check that it is a SCSI Command for @t; the
 * target then expects the next CmdSN. */
static bool peer_expect_command(struct peer *p, struct pdu_in *in, const struct iscsi_task *t)
{
	if (peer_recv(p, in) < 0 || (in->bhs[0] & 0x3f) != ISCSI_OP_SCSI_CMD)
		return false;
	p->exp_cmdsn = get32(in->bhs + 24) + 1;
	return get32(in->bhs + 16) == t->itt && get32(in->bhs + 24) == t->cmdsn &&
		get32(in->bhs + 20) == t->xfer_len && in->bhs[32] == t->cdb[0];
}

/* A SCSI Response to the command of ITT @itt: GOOD, no sense. */
static void peer_send_good(struct peer *p, uint32_t itt)
{
	uint8_t bhs[48] = { ISCSI_OP_SCSI_RSP, 0x80 };

	put32(bhs + 16, itt);
	peer_send(p, bhs, NULL, 0, true);
}

/* Answer the session's Logout Request (in a thread of its own, so that
 * the test thread can call session_logout_and_free()). */
static void *peer_logout_main(void *arg)
{
	struct peer *p = arg;
	struct pdu_in *in = malloc(sizeof *in);

	while (in && peer_recv(p, in) == 0) {
		if ((in->bhs[0] & 0x3f) != ISCSI_OP_LOGOUT_REQ)
			continue;
		uint8_t bhs[48] = { ISCSI_OP_LOGOUT_RSP, 0x80 };
		memcpy(bhs + 16, in->bhs + 16, 4);
		peer_send(p, bhs, NULL, 0, true);
		break;
	}
	free(in);
	return NULL;
}

/* Log the session out while the target answers, then close the target's
 * end. */
static void logout(struct session *s, struct peer *p)
{
	pthread_t th;

	if (pthread_create(&th, NULL, peer_logout_main, p) != 0)
		exit(99);
	session_logout_and_free(s, WAIT_MS);
	pthread_join(th, NULL);
	close(p->fd);
}

/* session_logout_and_free(@arg, WAIT_MS), in a thread of its own. */
static void *close_main(void *arg)
{
	session_logout_and_free(arg, WAIT_MS);
	return NULL;
}

/* ---- sessions over a socketpair (session_attach_fd()) ---- */

/* The configuration and login outcome of an attached session: no
 * digests, our MaxRecvDataSegmentLength 8192, the target's 4096,
 * InitialR2T=Yes, ImmediateData=No, a window of 64. */
static void attached_params(struct session_config *cfg, struct login_result *lr,
			    unsigned cmd_timeout_s)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->host, sizeof cfg->host, "socketpair");
	snprintf(cfg->target_name, sizeof cfg->target_name, "iqn.2026-11.org.iscsifs.test:session");
	snprintf(cfg->initiator_name, sizeof cfg->initiator_name, "iqn.2026-11.org.iscsifs:test");
	cfg->text.max_recv_dsl = 8192;
	cfg->queue_depth = 8;
	cfg->cmd_timeout_s = cmd_timeout_s;

	memset(lr, 0, sizeof *lr);
	text_params_defaults(&lr->params);
	lr->params.header_digest = false;
	lr->params.data_digest = false;
	lr->params.immediate_data = false;
	lr->params.initial_r2t = true;
	lr->params.max_recv_dsl = 8192;
	lr->params.max_xmit_dsl = 4096;
	lr->params.max_burst_length = 262144;
	lr->params.first_burst_length = 65536;
	lr->params.max_outstanding_r2t = 1;
	lr->tsih = 1;
	lr->cmdsn = 1;
	lr->exp_cmdsn = 1;
	lr->max_cmdsn = 64;
	lr->exp_statsn = 1;
}

/* A session attached to one end of a socketpair, the target (@p) at the
 * other, reporting to @o. */
static struct session *attach(struct owner *o, struct peer *p, struct session_config *cfg,
			      unsigned cmd_timeout_s)
{
	struct login_result lr;
	int sv[2];

	attached_params(cfg, &lr, cmd_timeout_s);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		exit(99);
	*p = (struct peer){ .fd = sv[1], .statsn = 1, .exp_cmdsn = 1 };
	struct session *s = session_attach_fd(&owner_ops, o, cfg, 0, sv[0], &lr);
	if (!s) {
		fprintf(stderr, "session_attach_fd: %s\n", err_msg());
		exit(99);
	}
	return s;
}

/* The target asks for a logout within 60 s (Async Message) and does not
 * answer the Logout at once; the session is closed meanwhile: no second
 * Logout goes (RFC 7143 11.14: nothing is sent after a Logout, and the
 * two would share one ITT), and the answer to the one sent ends the
 * close.  (A second Logout went.) */
static void test_close_while_logging_out(void)
{
	struct owner o;
	struct peer p;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);
	pthread_t th;

	owner_init(&o);
	struct session *s = attach(&o, &p, &cfg, 0);
	uint8_t async[48] = { ISCSI_OP_ASYNC_MSG, 0x80 };
	put32(async + 16, 0xffffffffu);
	async[36] = ISCSI_ASYNC_LOGOUT_REQUEST;
	async[43] = 60;                              /* Parameter3: within 60 s */
	peer_send(&p, async, NULL, 0, true);
	/* nothing outstanding: the Logout goes at once */
	bool got = in && peer_recv(&p, in) == 0;
	CHECK(got && (in->bhs[0] & 0x3f) == ISCSI_OP_LOGOUT_REQ);
	if (!got || pthread_create(&th, NULL, close_main, s) != 0)
		exit(1);
	uint32_t itt = get32(in->bhs + 16);
	struct pollfd pfd = { .fd = p.fd, .events = POLLIN };
	int more = poll(&pfd, 1, 500);
	CHECK_EQ_U64(more, 0);
	if (more > 0 && peer_recv(&p, in) == 0)
		fprintf(stderr, "after the Logout came PDU 0x%02x (ITT 0x%x)\n", in->bhs[0] & 0x3f,
			get32(in->bhs + 16));
	uint8_t rsp[48] = { ISCSI_OP_LOGOUT_RSP, 0x80 };
	put32(rsp + 16, itt);
	peer_send(&p, rsp, NULL, 0, true);
	pthread_join(th, NULL);
	close(p.fd);
	free(in);
	owner_fini(&o);
}

/* A READ answered by one Data-In with status. */
static void test_read(void)
{
	struct owner o;
	struct peer p;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *j = job_new(TASK_DIR_READ, 4096, 0x28);

	owner_init(&o);
	struct session *s = attach(&o, &p, &cfg, 0);
	CHECK(session_is_up(s));
	CHECK(session_submit(s, &j->task) == 0);
	CHECK(in && peer_expect_command(&p, in, &j->task));
	CHECK(in->bhs[1] & 0x40);                      /* R */

	uint8_t data[4096];
	for (unsigned i = 0; i < sizeof data; i++)
		data[i] = (uint8_t)(i ^ 0x5a);
	uint8_t bhs[48] = { ISCSI_OP_DATA_IN, 0x80 | 0x01 };   /* F, S; status GOOD */
	put32(bhs + 16, j->task.itt);
	put32(bhs + 20, 0xffffffffu);
	peer_send(&p, bhs, data, sizeof data, true);

	CHECK(job_wait(j));
	CHECK_EQ_U64(j->task.result, 0);
	CHECK_EQ_U64(j->task.status, 0);
	CHECK_EQ_U64(j->task.data_in_bytes, 4096);
	CHECK(memcmp(j->buf, data, sizeof data) == 0);
	CHECK(wait_kicked(&o));                        /* room again */
	pthread_mutex_lock(&o.lock);
	CHECK_EQ_U64(o.nrequeued, 0);
	pthread_mutex_unlock(&o.lock);

	logout(s, &p);
	static const enum session_state moves[][2] = {
		{ SESSION_LOGGING_IN, SESSION_FULL_FEATURE },
		{ SESSION_FULL_FEATURE, SESSION_CLOSING },
		{ SESSION_CLOSING, SESSION_CLOSED },
	};
	CHECK(moves_are(&o, moves, 3));
	job_free(j);
	free(in);
	owner_fini(&o);
}

/* A WRITE of 8192 bytes with InitialR2T=Yes and no immediate data: all of
 * it goes in answer to one R2T, as two Data-Out PDUs of the target's
 * MaxRecvDataSegmentLength (4096). */
static void test_write_r2t(void)
{
	struct owner o;
	struct peer p;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *j = job_new(TASK_DIR_WRITE, 8192, 0x2a);
	const uint32_t ttt = 0x1234;

	owner_init(&o);
	struct session *s = attach(&o, &p, &cfg, 0);
	CHECK(session_submit(s, &j->task) == 0);
	CHECK(in && peer_expect_command(&p, in, &j->task));
	CHECK(in->bhs[1] & 0x20);                      /* W */
	CHECK(in->bhs[1] & 0x80);                      /* F: no unsolicited Data-Out */
	CHECK_EQ_U64(in->len, 0);                      /* no immediate data */

	uint8_t r2t[48] = { ISCSI_OP_R2T, 0x80 };
	put32(r2t + 16, j->task.itt);
	put32(r2t + 20, ttt);
	put32(r2t + 36, 0);                            /* R2TSN */
	put32(r2t + 40, 0);                            /* BufferOffset */
	put32(r2t + 44, 8192);                         /* Desired Data Transfer Length */
	peer_send(&p, r2t, NULL, 0, false);

	for (uint32_t k = 0; k < 2; k++) {
		bool got = peer_recv(&p, in) == 0;
		CHECK(got);
		if (!got)
			break;
		CHECK_EQ_U64(in->bhs[0] & 0x3f, ISCSI_OP_DATA_OUT);
		CHECK_EQ_U64(get32(in->bhs + 16), j->task.itt);
		CHECK_EQ_U64(get32(in->bhs + 20), ttt);
		CHECK_EQ_U64(get32(in->bhs + 36), k);          /* DataSN */
		CHECK_EQ_U64(get32(in->bhs + 40), k * 4096);   /* BufferOffset */
		CHECK_EQ_U64(in->len, 4096);
		CHECK_EQ_U64(!!(in->bhs[1] & 0x80), k == 1);   /* F on the last */
		CHECK(memcmp(in->data, j->buf + k * 4096, 4096) == 0);
	}
	peer_send_good(&p, j->task.itt);
	CHECK(job_wait(j));
	CHECK_EQ_U64(j->task.result, 0);
	CHECK_EQ_U64(j->task.status, 0);

	struct session_stats st;
	session_get_stats(s, &st);
	CHECK_EQ_U64(st.r2ts, 1);
	CHECK_EQ_U64(st.data_out_pdus, 2);
	CHECK_EQ_U64(st.bytes_written, 8192);
	logout(s, &p);
	job_free(j);
	free(in);
	owner_fini(&o);
}

/* A Reject of the command: the connection fails; an attached session does
 * not recover, so it closes and the task fails with EIO. */
static void test_reject(void)
{
	struct owner o;
	struct peer p;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *j = job_new(TASK_DIR_NONE, 0, 0x00);

	owner_init(&o);
	struct session *s = attach(&o, &p, &cfg, 0);
	CHECK(session_submit(s, &j->task) == 0);
	CHECK(in && peer_expect_command(&p, in, &j->task));

	uint8_t bhs[48] = { ISCSI_OP_REJECT, 0x80, 0x04 };   /* protocol error */
	put32(bhs + 16, 0xffffffffu);
	peer_send(&p, bhs, in->bhs, 48, true);

	CHECK(job_wait(j));
	CHECK_EQ_U64(j->task.result, EIO);
	CHECK(wait_moved_to(&o, SESSION_CLOSED, 1));
	CHECK(session_state_hint(s) == SESSION_CLOSED);
	CHECK(!session_is_up(s) && !session_is_alive(s));
	CHECK_EQ_U64(session_submit(s, &j->task), -1);
	CHECK_EQ_U64(errno, EIO);

	session_logout_and_free(s, WAIT_MS);   /* (closed: no Logout goes) */
	close(p.fd);
	static const enum session_state moves[][2] = {
		{ SESSION_LOGGING_IN, SESSION_FULL_FEATURE },
		{ SESSION_FULL_FEATURE, SESSION_CLOSED },
	};
	CHECK(moves_are(&o, moves, 2));
	pthread_mutex_lock(&o.lock);
	CHECK_EQ_U64(o.nrequeued, 0);
	pthread_mutex_unlock(&o.lock);
	job_free(j);
	free(in);
	owner_fini(&o);
}

/* A Reject of our keepalive NOP-Out: the connection stays, and the window
 * the Reject opens is taken at once (the owner is kicked: before, a
 * Reject only dropped the connection, and once it no longer did, commands
 * held for a shut window waited for the next response). */
static void test_reject_ping(void)
{
	struct owner o;
	struct peer p;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *j = job_new(TASK_DIR_NONE, 0, 0x00);

	owner_init(&o);
	struct session *s = attach(&o, &p, &cfg, 0);
	uint8_t nop_out[48] = { ISCSI_OP_NOP_OUT | 0x40, 0x80 };
	put32(nop_out + 16, 0xfffffffdu);                /* ITT_PING */
	put32(nop_out + 20, 0xffffffffu);
	uint8_t bhs[48] = { ISCSI_OP_REJECT, 0x80, 0x05 };   /* not supported */
	put32(bhs + 16, 0xffffffffu);
	pthread_mutex_lock(&o.lock);
	o.kicks = 0;
	pthread_mutex_unlock(&o.lock);
	peer_send(&p, bhs, nop_out, 48, true);
	CHECK(wait_kicked(&o));
	CHECK(session_state_hint(s) == SESSION_FULL_FEATURE);
	CHECK(session_submit(s, &j->task) == 0);          /* the connection works */
	CHECK(in && peer_expect_command(&p, in, &j->task));
	uint8_t rsp[48] = { ISCSI_OP_SCSI_RSP, 0x80 };
	put32(rsp + 16, j->task.itt);
	peer_send(&p, rsp, NULL, 0, true);
	CHECK(job_wait(j));
	CHECK_EQ_U64(j->task.result, 0);

	logout(s, &p);
	static const enum session_state moves[][2] = {
		{ SESSION_LOGGING_IN, SESSION_FULL_FEATURE },
		{ SESSION_FULL_FEATURE, SESSION_CLOSING },
		{ SESSION_CLOSING, SESSION_CLOSED },
	};
	CHECK(moves_are(&o, moves, 3));
	job_free(j);
	free(in);
	owner_fini(&o);
}

/* A READ unanswered past cmd_timeout: ABORT TASK of it goes (its own ITT,
 * the task's ITT and CmdSN); "function complete" hands the task back to
 * the owner to be sent again. */
static void test_abort_task(void)
{
	struct owner o;
	struct peer p;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *j = job_new(TASK_DIR_READ, 512, 0x28);

	owner_init(&o);
	struct session *s = attach(&o, &p, &cfg, 1);
	CHECK(session_submit(s, &j->task) == 0);
	CHECK(in && peer_expect_command(&p, in, &j->task));

	session_tick_ahead(s, 2000000000LL);   /* as if 2 s had gone by */
	bool got = peer_recv(&p, in) == 0;
	CHECK(got);
	CHECK_EQ_U64(in->bhs[0], 0x40 | ISCSI_OP_TMF_REQ);   /* immediate */
	CHECK_EQ_U64(in->bhs[1], 0x80 | ISCSI_TMF_ABORT_TASK);
	CHECK_EQ_U64(get32(in->bhs + 20), j->task.itt);        /* Referenced Task Tag */
	CHECK_EQ_U64(get32(in->bhs + 32), j->task.cmdsn);      /* RefCmdSN */
	uint32_t tmf_itt = get32(in->bhs + 16);
	CHECK(tmf_itt != j->task.itt && tmf_itt != 0xffffffffu);

	uint8_t bhs[48] = { ISCSI_OP_TMF_RSP, 0x80, 0 };       /* function complete */
	put32(bhs + 16, tmf_itt);
	peer_send(&p, bhs, NULL, 0, true);

	CHECK(wait_requeued(&o, 1));
	pthread_mutex_lock(&o.lock);
	CHECK(o.nrequeued == 1 && o.requeued[0] == &j->task);
	pthread_mutex_unlock(&o.lock);
	CHECK_EQ_U64(j->task.reissues, 1);
	pthread_mutex_lock(&j->lock);
	CHECK_EQ_U64(j->calls, 0);             /* handed back, not done */
	pthread_mutex_unlock(&j->lock);

	struct session_stats st;
	session_get_stats(s, &st);
	CHECK_EQ_U64(st.timeouts, 1);
	CHECK_EQ_U64(st.aborts, 1);
	CHECK_EQ_U64(st.lu_resets, 0);
	CHECK(session_is_up(s));               /* the connection stays */
	logout(s, &p);
	job_free(j);
	free(in);
	owner_fini(&o);
}

/* A call that records that it ran on the session's loop. */
static void mark_ran(void *arg)
{
	*(bool *)arg = true;
}

/* Eight writes of 16 KiB with ImmediateData=Yes and InitialR2T=No (4 KiB
 * immediate, 12 KiB unsolicited in three Data-Out) to a target that does
 * not read: the small socket buffers fill after a few PDUs.  The session
 * must not hold its loop while it waits for room: a call posted to the
 * loop runs within a second.  Once the target reads, each command comes
 * with its immediate data and its three Data-Out (DataSN 0..2, offsets
 * 4096 on, F on the last), the payload intact, none cut or repeated. */
static void test_full_socket(void)
{
	enum { NWRITES = 8, LEN = 16384 };
	struct owner o;
	struct peer p;
	struct session_config cfg;
	struct login_result lr;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *j[NWRITES];
	int sv[2];
	int small = 4096;

	owner_init(&o);
	attached_params(&cfg, &lr, 0);
	lr.params.immediate_data = true;
	lr.params.initial_r2t = false;
	lr.params.first_burst_length = LEN;
	if (!in || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		exit(99);
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small);
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
	p = (struct peer){ .fd = sv[1], .statsn = 1, .exp_cmdsn = 1 };
	struct session *s = session_attach_fd(&owner_ops, &o, &cfg, 0, sv[0], &lr);
	if (!s)
		exit(99);
	for (unsigned k = 0; k < NWRITES; k++) {
		j[k] = job_new(TASK_DIR_WRITE, LEN, 0x2a);
		for (uint32_t i = 0; i < LEN; i++)
			j[k]->buf[i] = (uint8_t)(i * 7 + 3 + k);
		CHECK(session_submit(s, &j[k]->task) == 0);
	}
	/* the socket is full and nobody reads: the loop is free all the same */
	usleep(200 * 1000);
	pthread_mutex_lock(&s->lock);
	CHECK(s->tx_blocked);
	pthread_mutex_unlock(&s->lock);
	bool ran = false;
	int64_t t0 = mono_now_ns();
	evloop_run_sync(s->loop, mark_ran, &ran);
	CHECK(ran);
	CHECK(mono_now_ns() - t0 < 1000000000);

	for (unsigned k = 0; k < NWRITES; k++) {
		bool got = peer_expect_command(&p, in, &j[k]->task);
		CHECK(got);
		if (!got)
			break;
		CHECK_EQ_U64(in->bhs[1] & 0x80, 0);        /* not F: Data-Out follow */
		CHECK_EQ_U64(in->len, 4096);
		CHECK(memcmp(in->data, j[k]->buf, 4096) == 0);
		for (uint32_t d = 0; d < 3; d++) {
			got = peer_recv(&p, in) == 0;
			CHECK(got);
			if (!got)
				break;
			CHECK_EQ_U64(in->bhs[0] & 0x3f, ISCSI_OP_DATA_OUT);
			CHECK_EQ_U64(get32(in->bhs + 16), j[k]->task.itt);
			CHECK_EQ_U64(get32(in->bhs + 20), 0xffffffffu);   /* unsolicited */
			CHECK_EQ_U64(get32(in->bhs + 36), d);             /* DataSN */
			CHECK_EQ_U64(get32(in->bhs + 40), 4096 * (d + 1)); /* BufferOffset */
			CHECK_EQ_U64(!!(in->bhs[1] & 0x80), d == 2);
			CHECK_EQ_U64(in->len, 4096);
			CHECK(memcmp(in->data, j[k]->buf + 4096 * (d + 1), 4096) == 0);
		}
	}
	for (unsigned k = 0; k < NWRITES; k++)
		peer_send_good(&p, j[k]->task.itt);
	for (unsigned k = 0; k < NWRITES; k++) {
		CHECK(job_wait(j[k]));
		CHECK_EQ_U64(j[k]->task.result, 0);
	}
	struct session_stats st;
	session_get_stats(s, &st);
	CHECK_EQ_U64(st.commands, NWRITES);
	CHECK_EQ_U64(st.data_out_pdus, 3 * NWRITES);
	CHECK_EQ_U64(st.bytes_written, (uint64_t)LEN * NWRITES);
	logout(s, &p);
	for (unsigned k = 0; k < NWRITES; k++)
		job_free(j[k]);
	free(in);
	owner_fini(&o);
}

/* ---- a session that logs in itself (session_login()) ---- */

/* A target on 127.0.0.1 (scripted_target.h) that logs every connection
 * in and hands it to the test thread. */
struct listener {
	struct scripted_target st;     /* listening socket and accept thread */
	pthread_mutex_t lock;          /* protects the fields below */
	pthread_cond_t cond;           /* broadcast when a connection is in */
	int conns[4];                  /* lock: logged-in connections, in order */
	unsigned nconns;               /* lock: entries of conns */
	atomic_bool silent;            /* accept connections but never answer their
	                                * login (a hung target daemon) */
	atomic_bool ping_behind_login; /* send a NOP-In ping in the same segment
	                                * as the last Login Response */
	int silent_fds[4];             /* lock: such connections, closed at the stop */
	unsigned nsilent;              /* lock: entries of silent_fds */
	atomic_bool drop_after_login;  /* close each connection once it logged in */
	unsigned ndropped;             /* lock: connections closed so */
};

/* The ping login_then_ping() sends: its Target Transfer Tag. */
#define PING_TTT 0x1234

/* Log the connection on @fd in as scripted_target_login() does, with a
 * NOP-In ping (TTT PING_TTT) corked into the same segment as the last
 * Login Response, so that the initiator's receive of that response takes
 * the ping too.  Returns 0, -1 when the initiator left. */
static int login_then_ping(int fd)
{
	struct answer a = { .len = 0 };
	struct request r;
	int on = 1, off = 0;

	if (read_request(fd, &r) < 0)
		return -1;
	if (value_of(&r, "AuthMethod"))
		add(&a, "AuthMethod", "None");
	respond(fd, &r, 0x80 | 1, 0, 0, &a);                /* on to operational */
	if (read_request(fd, &r) < 0)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
	answer_operational(fd, &r);
	uint8_t nop[48] = { ISCSI_OP_NOP_IN, 0x80 };
	put32(nop + 16, 0xffffffffu);                       /* ITT: unsolicited */
	put32(nop + 20, PING_TTT);
	put32(nop + 28, 1);                                 /* ExpCmdSN */
	put32(nop + 32, 64);                                /* MaxCmdSN */
	if (write(fd, nop, sizeof nop) != (ssize_t)sizeof nop)
		return -1;
	setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
	return 0;
}

/* On the accept thread: log the connection in and hand it over. */
static void listener_accepted(struct scripted_target *st, int fd)
{
	struct listener *l = st->opaque;

	if (atomic_load(&l->silent)) {
		pthread_mutex_lock(&l->lock);
		if (l->nsilent < sizeof l->silent_fds / sizeof l->silent_fds[0])
			l->silent_fds[l->nsilent++] = fd;
		else
			close(fd);
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
		return;
	}
	if (atomic_load(&l->ping_behind_login) ? login_then_ping(fd) < 0 :
	    scripted_target_login(fd) < 0) {
		close(fd);
		return;
	}
	if (atomic_load(&l->drop_after_login)) {
		close(fd);
		pthread_mutex_lock(&l->lock);
		l->ndropped++;
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
		return;
	}
	pthread_mutex_lock(&l->lock);
	if (l->nconns < sizeof l->conns / sizeof l->conns[0])
		l->conns[l->nconns++] = fd;
	else
		close(fd);
	pthread_cond_broadcast(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

static void listener_start(struct listener *l)
{
	memset(l, 0, sizeof *l);
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	scripted_target_start(&l->st, 4, listener_accepted, l);
}

/* The @nth logged-in connection (from 0), or -1 after WAIT_MS. */
static int listener_conn(struct listener *l, unsigned nth)
{
	struct timespec dl = deadline_in_ms(WAIT_MS);
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	while (l->nconns <= nth && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&l->cond, &l->lock, &dl);
	int fd = l->nconns > nth ? l->conns[nth] : -1;
	pthread_mutex_unlock(&l->lock);
	return fd;
}

/* Wait until @l kept @n silent connections.  Returns whether it was
 * within WAIT_MS. */
static bool listener_silent(struct listener *l, unsigned n)
{
	struct timespec dl = deadline_in_ms(WAIT_MS);
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	while (l->nsilent < n && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&l->cond, &l->lock, &dl);
	bool ok = l->nsilent >= n;
	pthread_mutex_unlock(&l->lock);
	return ok;
}

static void listener_stop(struct listener *l)
{
	scripted_target_stop(&l->st);
	for (unsigned i = 0; i < l->nsilent; i++)
		close(l->silent_fds[i]);
	pthread_mutex_destroy(&l->lock);
	pthread_cond_destroy(&l->cond);
}

/* The target drops the connection (Async Message, Time2Wait 0) while a
 * READ and a WRITE are out: the read goes back to the owner at once, the
 * write (on the wire: a stale copy could still land) only once the
 * session has logged in again and checked identities; the moves are
 * full feature -> waiting to reconnect -> logging in -> verifying
 * identity -> full feature, and the session carries commands again. */
static void test_drop_requeue(void)
{
	struct owner o;
	struct listener l;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *rd = job_new(TASK_DIR_READ, 4096, 0x28);
	struct job *wr = job_new(TASK_DIR_WRITE, 4096, 0x2a);

	owner_init(&o);
	listener_start(&l);
	struct session_config cfg;
	scripted_target_config(&cfg, l.st.port, "session", 8);
	cfg.connect_timeout_ms = WAIT_MS;
	cfg.replacement_timeout_s = 60;
	struct session *s = session_login(&owner_ops, &o, &cfg, 0);
	CHECK(s != NULL);
	int fd = listener_conn(&l, 0);
	CHECK(fd >= 0);
	if (!s || fd < 0) {
		listener_stop(&l);
		return;
	}
	struct peer p = { .fd = fd, .statsn = 100 };

	/* the login opened a window of one: a NOP-In opens it wider */
	CHECK(session_submit(s, &rd->task) == 0);
	CHECK(peer_expect_command(&p, in, &rd->task));
	uint8_t nop[48] = { ISCSI_OP_NOP_IN, 0x80 };
	put32(nop + 16, 0xffffffffu);
	put32(nop + 20, 0xffffffffu);
	peer_send(&p, nop, NULL, 0, false);
	int64_t until_ms = mono_now_ms() + WAIT_MS;
	struct timespec pause = { 0, 1000000 };
	int rc;
	while ((rc = session_submit(s, &wr->task)) < 0 && errno == EAGAIN) {
		if (mono_now_ms() > until_ms)
			break;
		nanosleep(&pause, NULL);
	}
	CHECK(rc == 0);
	CHECK(peer_expect_command(&p, in, &wr->task));
	CHECK_EQ_U64(in->len, 4096);   /* ImmediateData=Yes: it is on the wire */

	uint8_t async[48] = { ISCSI_OP_ASYNC_MSG, 0x80 };
	put32(async + 16, 0xffffffffu);
	async[36] = ISCSI_ASYNC_DROP_CONNECTION;
	/* Parameter2 (Time2Wait) 0: log in again at once */
	peer_send(&p, async, NULL, 0, true);

	CHECK(wait_requeued(&o, 1));
	pthread_mutex_lock(&o.lock);
	CHECK(o.nrequeued >= 1 && o.requeued[0] == &rd->task);
	pthread_mutex_unlock(&o.lock);
	close(p.fd);

	int fd2 = listener_conn(&l, 1);
	CHECK(fd2 >= 0);
	CHECK(wait_moved_to(&o, SESSION_FULL_FEATURE, 2));
	CHECK(wait_requeued(&o, 2));
	pthread_mutex_lock(&o.lock);
	CHECK(o.nrequeued == 2 && o.requeued[1] == &wr->task);
	CHECK(o.requeue_calls == 2);
	CHECK_EQ_U64(o.expected_calls, 1);
	pthread_mutex_unlock(&o.lock);
	static const enum session_state moves[][2] = {
		{ SESSION_LOGGING_IN, SESSION_FULL_FEATURE },
		{ SESSION_FULL_FEATURE, SESSION_RECONNECT_WAIT },
		{ SESSION_RECONNECT_WAIT, SESSION_LOGGING_IN },
		{ SESSION_LOGGING_IN, SESSION_VERIFYING },
		{ SESSION_VERIFYING, SESSION_FULL_FEATURE },
	};
	CHECK(moves_are(&o, moves, 5));
	struct session_stats st;
	session_get_stats(s, &st);
	CHECK_EQ_U64(st.reconnects, 1);

	/* back: the read handed back goes out on the new connection */
	struct peer p2 = { .fd = fd2, .statsn = 200 };
	CHECK(session_submit(s, &rd->task) == 0);
	CHECK(fd2 >= 0 && peer_expect_command(&p2, in, &rd->task));
	uint8_t bhs[48] = { ISCSI_OP_DATA_IN, 0x80 | 0x01 };
	put32(bhs + 16, rd->task.itt);
	put32(bhs + 20, 0xffffffffu);
	uint8_t data[4096];
	memset(data, 0xc3, sizeof data);
	peer_send(&p2, bhs, data, sizeof data, true);
	CHECK(job_wait(rd));
	CHECK_EQ_U64(rd->task.result, 0);
	CHECK(memcmp(rd->buf, data, sizeof data) == 0);

	if (fd2 >= 0)
		logout(s, &p2);
	else
		session_logout_and_free(s, 100);
	listener_stop(&l);
	job_free(rd);
	job_free(wr);
	free(in);
	owner_fini(&o);
}

/* The target of connection @fd drops it (Async Message "drop the
 * connection", Time2Wait 0), and closes it. */
static void peer_drop(int fd)
{
	struct peer p = { .fd = fd, .statsn = 100 };
	uint8_t async[48] = { ISCSI_OP_ASYNC_MSG, 0x80 };

	put32(async + 16, 0xffffffffu);
	async[36] = ISCSI_ASYNC_DROP_CONNECTION;
	peer_send(&p, async, NULL, 0, true);
	close(fd);
}

/* The target drops the connection while a WRITE is on the wire, then
 * lets the session log in again and again but closes each connection at
 * once, in the identity check of its one LUN.  The write waits for its own
 * session only the replacement timeout (PINNED_TIMEOUT_S), counted from
 * the first loss: it is handed back to the owner then, though the session
 * never stays away as long.  (Each login began the count anew, and the
 * write waited for ever.) */
#define PINNED_TIMEOUT_S 3
static void test_pinned_check_never_ends(void)
{
	struct owner o;
	struct listener l;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);
	struct job *wr = job_new(TASK_DIR_WRITE, 4096, 0x2a);

	owner_init(&o);
	o.nexpect = 1;
	listener_start(&l);
	scripted_target_config(&cfg, l.st.port, "session", 8);
	cfg.connect_timeout_ms = WAIT_MS;
	cfg.replacement_timeout_s = PINNED_TIMEOUT_S;
	struct session *s = session_login(&owner_ops, &o, &cfg, 0);
	int fd = listener_conn(&l, 0);
	CHECK(s && fd >= 0);
	if (!s || fd < 0)
		exit(1);
	session_tick_start(s);
	struct peer p = { .fd = fd, .statsn = 100 };
	CHECK(session_submit(s, &wr->task) == 0);
	CHECK(peer_expect_command(&p, in, &wr->task));
	CHECK_EQ_U64(in->len, 4096);   /* ImmediateData=Yes: it is on the wire */

	atomic_store(&l.drop_after_login, true);
	int64_t t0 = mono_now_ms();
	peer_drop(fd);
	CHECK(wait_requeued_ms(&o, 1, (PINNED_TIMEOUT_S + 3) * 1000));
	int64_t waited_ms = mono_now_ms() - t0;
	pthread_mutex_lock(&o.lock);
	CHECK(o.nrequeued == 1 && o.requeued[0] == &wr->task);
	pthread_mutex_unlock(&o.lock);
	test_checks++;
	if (waited_ms < PINNED_TIMEOUT_S * 1000) {
		test_failures++;
		fprintf(stderr, "the pinned write came back after %lld ms, before the %d s timeout\n",
			(long long)waited_ms, PINNED_TIMEOUT_S);
	}
	/* it logged in again in the meantime (each time its connection lost
	 * within 5 s of the login, so the waits grow: 0.5 s, then 2 s, the
	 * DefaultTime2Wait), and goes on so: a second login comes */
	struct session_stats st;
	session_get_stats(s, &st);
	CHECK(st.reconnects >= 1);
	struct timespec dl = deadline_in_ms(WAIT_MS);
	int rc = 0;
	pthread_mutex_lock(&l.lock);
	CHECK(l.ndropped >= 1);
	while (l.ndropped < 2 && rc != ETIMEDOUT)
		rc = deadline_cond_wait(&l.cond, &l.lock, &dl);
	CHECK(l.ndropped >= 2);
	pthread_mutex_unlock(&l.lock);

	session_logout_and_free(s, 100);
	listener_stop(&l);
	job_free(wr);
	free(in);
	owner_fini(&o);
}

/* Two sessions lose their connections; session A's target then accepts
 * the new connection but never answers the login (a hung target daemon),
 * with a login timeout of HUNG_MS.  Session B's reconnect must not wait
 * for A's: B is back in full feature phase within a second, while A's
 * attempt still hangs.  And A, closed while its attempt hangs, is gone at
 * once, not after HUNG_MS.  (With one login helper thread for the
 * process, B's login waited behind A's until A's timeout, and logout
 * waited for A's attempt to end.) */
#define HUNG_MS 10000
static void test_hung_reconnect(void)
{
	struct owner oa, ob;
	struct listener la, lb;
	struct session_config cfg_a, cfg_b;

	owner_init(&oa);
	owner_init(&ob);
	listener_start(&la);
	listener_start(&lb);
	scripted_target_config(&cfg_a, la.st.port, "session", 8);
	cfg_a.connect_timeout_ms = HUNG_MS;
	cfg_a.replacement_timeout_s = 60;
	scripted_target_config(&cfg_b, lb.st.port, "session", 8);
	cfg_b.connect_timeout_ms = HUNG_MS;
	cfg_b.replacement_timeout_s = 60;
	struct session *a = session_login(&owner_ops, &oa, &cfg_a, 0);
	struct session *b = session_login(&owner_ops, &ob, &cfg_b, 1);
	int fda = listener_conn(&la, 0), fdb = listener_conn(&lb, 0);
	CHECK(a && b && fda >= 0 && fdb >= 0);
	if (!a || !b || fda < 0 || fdb < 0)
		exit(1);

	/* A's target goes silent, then drops A: A's login attempt hangs */
	atomic_store(&la.silent, true);
	peer_drop(fda);
	CHECK(wait_moved_to(&oa, SESSION_LOGGING_IN, 1));
	CHECK(listener_silent(&la, 1));

	/* B loses its connection too, and is back within a second */
	int64_t t0 = mono_now_ms();
	peer_drop(fdb);
	CHECK(wait_moved_to(&ob, SESSION_FULL_FEATURE, 2));
	int64_t back_ms = mono_now_ms() - t0;
	test_checks++;
	if (back_ms > 1000) {
		test_failures++;
		fprintf(stderr, "session B was back after %lld ms, behind A's hung login\n",
			(long long)back_ms);
	}
	int fdb2 = listener_conn(&lb, 1);
	CHECK(fdb2 >= 0);
	/* A's attempt is still under way: nothing failed it early */
	struct session_stats st;
	session_get_stats(a, &st);
	CHECK_EQ_U64(st.reconnects, 0);
	pthread_mutex_lock(&oa.lock);
	CHECK(oa.nmoves > 0 && oa.to[oa.nmoves - 1] == SESSION_LOGGING_IN);
	pthread_mutex_unlock(&oa.lock);

	/* A is closed while its login hangs: at once */
	t0 = mono_now_ms();
	session_logout_and_free(a, 100);
	int64_t close_ms = mono_now_ms() - t0;
	test_checks++;
	if (close_ms > 1000) {
		test_failures++;
		fprintf(stderr, "closing session A took %lld ms while its login hung\n",
			(long long)close_ms);
	}
	/* its hung connection was let go: the target reads its end */
	pthread_mutex_lock(&la.lock);
	int silent_fd = la.nsilent ? la.silent_fds[0] : -1;
	pthread_mutex_unlock(&la.lock);
	CHECK(silent_fd >= 0 && scripted_target_sees_close(silent_fd, WAIT_MS));

	if (fdb2 >= 0) {
		struct peer pb = { .fd = fdb2, .statsn = 200 };
		logout(b, &pb);
	} else {
		session_logout_and_free(b, 100);
	}
	listener_stop(&la);
	listener_stop(&lb);
	owner_fini(&oa);
	owner_fini(&ob);
}

/* A session told to tick itself (session_tick_start()) keeps its own
 * keepalive with no one calling session_tick(): after a second of
 * silence a NOP-Out, answered; after the next second of silence another,
 * on the timer it armed again. */
static void test_ticks_itself(void)
{
	struct owner o;
	struct listener l;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);

	owner_init(&o);
	listener_start(&l);
	scripted_target_config(&cfg, l.st.port, "session", 8);
	cfg.noop_interval_s = 1;
	cfg.noop_timeout_s = 3;
	struct session *s = session_login(&owner_ops, &o, &cfg, 0);
	int fd = listener_conn(&l, 0);
	CHECK(s && fd >= 0);
	if (!s || fd < 0)
		exit(1);
	struct peer p = { .fd = fd, .statsn = 100 };
	session_tick_start(s);
	for (int k = 0; k < 2; k++) {
		int64_t t0 = mono_now_ms();
		bool got = peer_recv(&p, in) == 0;
		CHECK(got && (in->bhs[0] & 0x3f) == ISCSI_OP_NOP_OUT);
		/* a second of silence (and at most one more tick) */
		int64_t took = mono_now_ms() - t0;
		CHECK(took >= 500 && took <= 3000);
		if (!got)
			break;
		/* the answer: a NOP-In with its ITT, no TTT */
		uint8_t nop[48] = { ISCSI_OP_NOP_IN, 0x80 };
		memcpy(nop + 16, in->bhs + 16, 4);
		put32(nop + 20, 0xffffffffu);
		peer_send(&p, nop, NULL, 0, true);
	}
	struct session_stats st;
	session_get_stats(s, &st);
	CHECK_EQ_U64(st.reconnects, 0);
	logout(s, &p);
	listener_stop(&l);
	free(in);
	owner_fini(&o);
}

/* A target that sends a NOP-In ping in the same segment as the last Login
 * Response, then waits for the answer: the session answers it at once,
 * though no more bytes come (before, the ping sat in the receive buffer
 * the login left, and epoll said nothing of it). */
static void test_ping_behind_login(void)
{
	struct owner o;
	struct listener l;
	struct session_config cfg;
	struct pdu_in *in = malloc(sizeof *in);

	owner_init(&o);
	listener_start(&l);
	atomic_store(&l.ping_behind_login, true);
	scripted_target_config(&cfg, l.st.port, "session", 8);
	struct session *s = session_login(&owner_ops, &o, &cfg, 0);
	int fd = listener_conn(&l, 0);
	CHECK(s && fd >= 0);
	if (!s || fd < 0)
		exit(1);
	struct peer p = { .fd = fd, .statsn = 100 };
	bool got = peer_recv(&p, in) == 0;
	CHECK(got && (in->bhs[0] & 0x3f) == ISCSI_OP_NOP_OUT);
	CHECK(got && get32(in->bhs + 16) == 0xffffffffu && get32(in->bhs + 20) == PING_TTT);
	logout(s, &p);
	listener_stop(&l);
	free(in);
	owner_fini(&o);
}

/* ---- the tables, and an illegal move caught ---- */

static void test_tables(void)
{
	static const struct {
		enum session_state from, to;   /* a move */
		bool legal;                    /* what the table says */
	} cases[] = {
		{ SESSION_LOGGING_IN, SESSION_FULL_FEATURE, true },
		{ SESSION_LOGGING_IN, SESSION_VERIFYING, true },
		{ SESSION_VERIFYING, SESSION_FULL_FEATURE, true },
		{ SESSION_FULL_FEATURE, SESSION_DRAINING, true },
		{ SESSION_DRAINING, SESSION_LOGGING_OUT, true },
		{ SESSION_LOGGING_OUT, SESSION_DROPPING, true },
		{ SESSION_DROPPING, SESSION_RECONNECT_WAIT, true },
		{ SESSION_RECONNECT_WAIT, SESSION_LOGGING_IN, true },
		{ SESSION_FULL_FEATURE, SESSION_CLOSING, true },
		{ SESSION_CLOSING, SESSION_CLOSED, true },
		{ SESSION_CLOSED, SESSION_FULL_FEATURE, false },   /* closed is for good */
		{ SESSION_CLOSED, SESSION_CLOSING, false },
		{ SESSION_CLOSING, SESSION_RECONNECT_WAIT, false }, /* no recovery once closing */
		{ SESSION_RECONNECT_WAIT, SESSION_FULL_FEATURE, false }, /* only by a login */
		{ SESSION_LOGGING_IN, SESSION_DRAINING, false },
		{ SESSION_DROPPING, SESSION_FULL_FEATURE, false },
		{ SESSION_LOGGING_OUT, SESSION_FULL_FEATURE, false },
		{ SESSION_DRAINING, SESSION_FULL_FEATURE, false },
		{ SESSION_FULL_FEATURE, SESSION_FULL_FEATURE, false },
		{ SESSION_FULL_FEATURE, SESSION_VERIFYING, false },
		{ SESSION_STATES, SESSION_CLOSED, false },          /* out of range */
	};
	for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		bool legal = session_transition_legal(cases[i].from, cases[i].to);
		if (legal != cases[i].legal)
			fprintf(stderr, "move %u (%s -> %s): table says %s\n", i,
				session_state_name(cases[i].from), session_state_name(cases[i].to),
				legal ? "legal" : "illegal");
		CHECK(legal == cases[i].legal);
	}
	/* every state but CLOSED can be closed */
	for (unsigned st = 0; st < SESSION_CLOSED; st++)
		CHECK(session_transition_legal(st, SESSION_CLOSED));

	CHECK(session_tmf_transition_legal(TMF_IDLE, TMF_QUEUED));
	CHECK(session_tmf_transition_legal(TMF_QUEUED, TMF_SENT));
	CHECK(session_tmf_transition_legal(TMF_SENT, TMF_IDLE));
	CHECK(session_tmf_transition_legal(TMF_SENT, TMF_QUEUED));
	CHECK(!session_tmf_transition_legal(TMF_IDLE, TMF_SENT));   /* sent unqueued */
	CHECK(!session_tmf_transition_legal(TMF_IDLE, TMF_IDLE));
	CHECK(!session_tmf_transition_legal(TMF_SENT, TMF_SENT));

	CHECK(session_verify_transition_legal(VERIFY_IDLE, VERIFY_SERIAL));
	CHECK(session_verify_transition_legal(VERIFY_CAPACITY16, VERIFY_CAPACITY10));
	CHECK(session_verify_transition_legal(VERIFY_CAPACITY10, VERIFY_IDLE));
	CHECK(!session_verify_transition_legal(VERIFY_IDLE, VERIFY_CAPACITY10));
	CHECK(!session_verify_transition_legal(VERIFY_SERIAL, VERIFY_CAPACITY10));
	CHECK(!session_verify_transition_legal(VERIFY_IDLE, VERIFY_IDLE));
}

/* In a child process: a closed session asked to go full feature.  The
 * parent sees the child abort (without NDEBUG) after one line naming the
 * session and both states. */
static void test_illegal_transition(void)
{
	int pipefd[2];

	if (pipe(pipefd) < 0)
		exit(99);
	pid_t pid = fork();
	if (pid < 0)
		exit(99);
	if (pid == 0) {
		static struct session s;    /* (zeroed: a bare session is enough) */
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		snprintf(s.name, sizeof s.name, "session 7");
		pthread_mutex_init(&s.lock, NULL);
		pthread_cond_init(&s.state_cond, NULL);
		s.state = SESSION_CLOSED;
		pthread_mutex_lock(&s.lock);
		session_set_state(&s, SESSION_FULL_FEATURE);
		pthread_mutex_unlock(&s.lock);
		_exit(s.state == SESSION_FULL_FEATURE ? 3 : 4);
	}
	close(pipefd[1]);
	char out[1024];
	size_t len = 0;
	ssize_t n;
	while (len < sizeof out - 1 && (n = read(pipefd[0], out + len, sizeof out - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(pipefd[0]);
	int status = 0;
	CHECK(waitpid(pid, &status, 0) == pid);
#ifdef NDEBUG
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);   /* logged, then moved */
#else
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
#endif
	CHECK(strstr(out, "session 7: illegal state transition closed -> full feature") != NULL);
	if (!strstr(out, "illegal state transition"))
		fprintf(stderr, "child said: %s\n", out);
}

/* session_login() from an event loop: the call and what it said. */
struct login_from_loop {
	const struct session_config *cfg;  /* what to log in with */
	struct session *s;                 /* session_login()'s answer */
	int err;                           /* its errno when it failed */
};

static void login_from_loop(void *arg)
{
	struct login_from_loop *f = arg;

	f->s = session_login(NULL, NULL, f->cfg, 0);
	f->err = f->s ? 0 : err_errno();
}

static void test_login_on_a_loop(void)
{
	struct listener l;
	struct session_config cfg;

	listener_start(&l);
	scripted_target_config(&cfg, l.st.port, "session", 8);
	cfg.connect_timeout_ms = WAIT_MS;
	struct login_from_loop f = { .cfg = &cfg };
	struct evloop *loop = evloop_assign();
	CHECK(loop != NULL);
	if (loop)
		evloop_run_sync(loop, login_from_loop, &f);
	CHECK(f.s == NULL);
	CHECK_EQ_U64(f.err, EDEADLK);
	if (f.s)
		session_logout_and_free(f.s, 2000);
	listener_stop(&l);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	test_tables();
	test_illegal_transition();
	test_read();
	test_close_while_logging_out();
	test_write_r2t();
	test_reject();
	test_reject_ping();
	test_abort_task();
	test_full_socket();
	test_drop_requeue();
	test_hung_reconnect();
	test_pinned_check_never_ends();
	test_ticks_itself();
	test_ping_behind_login();
	test_login_on_a_loop();
	return test_done("test_session");
}
