/* fuzz_session.c: libFuzzer harness for the full feature phase of a
 * session (session.c): the RX state machine over Data-In, R2T, SCSI
 * Response, NOP-In, Reject, Asynchronous Message and Logout Response,
 * with the TX thread answering R2Ts and NOP-Ins, on a real session over a
 * socketpair (session_attach_fd()).
 *
 * Each run: a session is attached with parameters chosen by the input;
 * five tasks are submitted (two READs, two WRITEs with fragmented
 * payloads, one without data) as far as the CmdSN window lets them in;
 * then the peer thread, playing the target, sends the input as PDUs while
 * reading whatever the session sends, and closes at end of input.  The
 * harness waits until every task is done (with status, or EIO when the
 * connection failed), then logs out and frees the session.
 *
 * In logout mode the harness logs out while tasks may still be
 * outstanding: the peer sends the input up to its first Logout Response
 * (all of it if there is none), the harness then calls
 * session_logout_and_free(), and the peer sends the rest once it has seen
 * the Logout Request.
 *
 * In tick mode the session has a cmd_timeout of 1 s, and the harness
 * makes it pass at once (session_tick_ahead(), as if 2 s had gone by), so
 * that task management runs: the peer sends the input up to its first
 * Task Management Response (all of it if there is none) and holds the
 * rest until the session sends a Task Management Request; the harness,
 * once the first part is sent, ticks every 2 ms (each tick a timeout:
 * ABORT TASK, then LU RESET, then the connection dropped) until the run
 * is over.  The TMF answers in the rest may come before or after the
 * function they name ended.
 *
 * In verify mode (which implies tick mode) the session begins as one
 * that logged in again (session_attach_fd_verifying()): it checks two
 * LUNs (VERIFY_LUNS) with INQUIRY VPD and READ CAPACITY commands of its
 * own, which the input answers; the harness submits no tasks.  The run
 * is over when the session is closed (the input ended).
 *
 * Input:
 *   byte 0  bit 0 HeaderDigest, bit 1 DataDigest, bit 2 ImmediateData,
 *           bit 3 InitialR2T, bit 4 raw mode, bit 5 fill mode, bit 6
 *           logout mode, bit 7 byte 3 holds more modes;
 *   byte 1  MaxRecvDataSegmentLength of the target (512 << bits 0-2),
 *           MaxOutstandingR2T (1 + bits 3-4), the CmdSN window (bits
 *           5-7: 0 = 64 commands, else n - 1, so 1 = closed);
 *   byte 2  MaxBurstLength (512 << bits 0-2), FirstBurstLength
 *           (512 << bits 3-5, at most MaxBurstLength);
 *   byte 3  (only with byte 0 bit 7) bit 0 tick mode, bit 1 verify mode
 *           (logout mode leaves both off);
 *   then    the target's PDUs.
 * In raw mode the rest goes on the wire as it is.  Otherwise the harness
 * frames it, so that the fuzzer need not get digests and lengths right:
 * each PDU is a 48-byte BHS, its AHS (TotalAHSLength words) and its data
 * segment (DataSegmentLength bytes) taken from the input, with padding
 * and the negotiated digests added; an ITT of 0..4 is replaced by the
 * ITT of that task (in verify mode: of the session's k-th command, its
 * identity check's steps in order), 5..8 by the ITT the session gives its
 * first, second, ... task management request.  A segment the input stops short of is cut there (the
 * connection ends mid-PDU).  In fill mode a data segment takes only its
 * first 64 bytes from the input and the rest is zeros, so that a small
 * input can carry a large Data-In.
 *
 * Checked promises (session.h): done() is called exactly once per task;
 * after done() the session touches neither the task nor its buffers (the
 * harness frees them there, so ASan sees any later use); a task's outcome
 * is consistent (Data-In bytes within the buffer, sense within its array,
 * a transport failure is EIO).
 *
 * Thread model: the harness thread submits and waits; the session's RX
 * and TX threads run the protocol and call done(); the peer thread of
 * fuzz_peer.h plays the target.  struct run's lock protects its
 * counters.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "crc32c.h"
#include "fuzz.h"
#include "fuzz_peer.h"
#include "login.h"
#include "pdu.h"
#include "session.h"
#include "text.h"
#include "wire.h"

#define NTASKS 5
/* Our MaxRecvDataSegmentLength: what the target may send in one PDU. */
#define OUR_MAX_RECV_DSL 8192
/* Fill mode takes at most this much of a data segment from the input and
 * makes the rest zeros, for segments up to FILL_MAX (longer ones are
 * taken whole: the session refuses them anyway). */
#define FILL_TAKE 64
#define FILL_MAX (4 * OUR_MAX_RECV_DSL)
/* Our queue depth: the task table has this many slots. */
#define QUEUE_DEPTH 8
/* Tick mode: the cmd_timeout, how far ahead each tick looks (past it),
 * the pause between ticks and the most ticks of a run. */
#define TICK_CMD_TIMEOUT_S 1
#define TICK_AHEAD_NS 2000000000LL
#define TICK_EVERY_NS 2000000L
#define TICK_MAX 32
/* Input ITTs that stand for the session's task management requests, and
 * how many: the ITTs session_tmf.c gives its first ones (0xfffff000 on). */
#define TMF_ITT_INPUT 5
#define TMF_ITTS 4
#define TMF_ITT_FIRST 0xfffff000u
/* Logout timeout after a tick or verify run: the peer may hold its rest
 * for a Task Management Request that never comes. */
#define TICK_LOGOUT_MS 20

/* What the identity check of verify mode expects: a LUN with a serial and
 * a device identifier, and one with neither and 4096-byte blocks. */
static const struct lun_identity verify_luns[] = {
	{ .lun = 0, .serial = "SERIAL01", .device_id = "naa.6001405abcdef0123456789abcdef012",
	  .block_size = 512, .blocks = 8192 },
	{ .lun = 1, .block_size = 4096, .blocks = 1024 },
};
#define VERIFY_LUNS (sizeof verify_luns / sizeof verify_luns[0])

/* The tasks of every run. */
static const struct {
	enum task_dir dir;   /* data direction */
	uint32_t xfer_len;   /* Expected Data Transfer Length */
	int pieces;          /* WRITE: iovecs the payload is cut into */
} task_specs[NTASKS] = {
	{ TASK_DIR_READ, 4096, 0 },
	{ TASK_DIR_WRITE, 8192, 2 },
	{ TASK_DIR_READ, 512, 0 },
	{ TASK_DIR_NONE, 0, 0 },
	{ TASK_DIR_WRITE, 65536, 3 },
};

/* What one run shares between the harness thread and done(). */
struct run {
	pthread_mutex_t lock;      /* protects the fields below */
	pthread_cond_t cond;       /* signalled when a task is done */
	unsigned done;             /* tasks done (or never submitted) */
	unsigned calls[NTASKS];    /* done() calls per task */
};

/* One task and the harness's bookkeeping; freed by done(). */
struct fuzz_task {
	struct iscsi_task task;    /* what the session sees; task.opaque = this */
	struct run *run;           /* the run it belongs to */
	unsigned index;            /* its row in task_specs */
	uint8_t *payload;          /* WRITE: the payload write_iov points into */
	struct iovec iov[3];       /* WRITE: the payload in pieces */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_log_init();
	return 0;
}

static void task_done(struct iscsi_task *t)
{
	struct fuzz_task *ft = t->opaque;
	struct run *run = ft->run;
	unsigned index = ft->index;

	log_debug("fuzz_session: task %u done: result %d, status 0x%02x, %u bytes in, sense %u",
		  index, t->result, t->status, t->data_in_bytes, t->sense_len);
	FUZZ_ASSERT(t->result == 0 || t->result == EIO);
	FUZZ_ASSERT(t->sense_len <= sizeof t->sense);
	FUZZ_ASSERT(t->data_in_bytes <= t->xfer_len);
	if (t->dir != TASK_DIR_READ)
		FUZZ_ASSERT(t->data_in_bytes == 0);
	/* The task is the owner's again: free everything, so that any later
	 * use by the session is a use after free. */
	free(t->read_buf);
	free(ft->payload);
	free(ft);

	pthread_mutex_lock(&run->lock);
	run->calls[index]++;
	FUZZ_ASSERT(run->calls[index] == 1);
	run->done++;
	pthread_cond_signal(&run->cond);
	pthread_mutex_unlock(&run->lock);
}

static struct fuzz_task *task_new(struct run *run, unsigned index)
{
	struct fuzz_task *ft = calloc(1, sizeof *ft);
	uint32_t len = task_specs[index].xfer_len;

	if (!ft)
		abort();
	ft->run = run;
	ft->index = index;
	ft->task.lun = 0;
	ft->task.dir = task_specs[index].dir;
	ft->task.xfer_len = len;
	ft->task.done = task_done;
	ft->task.opaque = ft;
	switch (ft->task.dir) {
	case TASK_DIR_READ:
		ft->task.cdb[0] = 0x28;
		ft->task.read_buf = malloc(len);
		if (!ft->task.read_buf)
			abort();
		break;
	case TASK_DIR_WRITE: {
		int pieces = task_specs[index].pieces;
		uint32_t at = 0;

		ft->task.cdb[0] = 0x2a;
		ft->payload = malloc(len);
		if (!ft->payload)
			abort();
		memset(ft->payload, 0xa5, len);
		/* uneven pieces, so slices cross their edges */
		for (int i = 0; i < pieces; i++) {
			uint32_t n = i == pieces - 1 ? len - at : len / (uint32_t)(pieces + 1) + 1;
			ft->iov[i] = (struct iovec){ ft->payload + at, n };
			at += n;
		}
		ft->task.write_iov = ft->iov;
		ft->task.write_iovcnt = pieces;
		break;
	}
	case TASK_DIR_NONE:
		break;
	}
	return ft;
}

/* A growing byte string: what the peer will send. */
struct wire_out {
	uint8_t *data;   /* the bytes */
	size_t len;      /* bytes used */
	size_t cap;      /* bytes allocated */
};

/* Append @n bytes from @p, or @n zeros when @p is NULL. */
static void out_put(struct wire_out *o, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (o->cap - o->len < n) {
		size_t cap = o->cap ? o->cap : 4096;
		while (cap - o->len < n)
			cap *= 2;
		o->data = realloc(o->data, cap);
		if (!o->data)
			abort();
		o->cap = cap;
	}
	if (p)
		memcpy(o->data + o->len, p, n);
	else
		memset(o->data + o->len, 0, n);
	o->len += n;
}

/* Frame the PDUs of @in (see the top of the file) into @o; *@logout_at
 * and *@tmf_at are where the first Logout Response and the first Task
 * Management Response start in @o (SIZE_MAX if none). */
static void frame(struct wire_out *o, const uint8_t *in, size_t size, uint8_t flags,
		  const uint32_t itts[NTASKS], size_t *logout_at, size_t *tmf_at)
{
	bool hd = flags & 0x01, dd = flags & 0x02, fill = flags & 0x20;
	size_t off = 0;

	*logout_at = SIZE_MAX;
	*tmf_at = SIZE_MAX;
	while (size - off >= ISCSI_BHS_SIZE) {
		uint8_t bhs[ISCSI_BHS_SIZE], digest[4];
		uint32_t state;

		memcpy(bhs, in + off, ISCSI_BHS_SIZE);
		off += ISCSI_BHS_SIZE;
		uint32_t itt = get_be32(bhs + 16);
		if (itt < NTASKS)
			put_be32(bhs + 16, itts[itt]);
		else if (itt - TMF_ITT_INPUT < TMF_ITTS)
			put_be32(bhs + 16, TMF_ITT_FIRST + (itt - TMF_ITT_INPUT));
		if ((bhs[0] & 0x3f) == ISCSI_OP_LOGOUT_RSP && *logout_at == SIZE_MAX)
			*logout_at = o->len;
		if ((bhs[0] & 0x3f) == ISCSI_OP_TMF_RSP && *tmf_at == SIZE_MAX)
			*tmf_at = o->len;
		out_put(o, bhs, sizeof bhs);
		state = crc32c_update(crc32c_begin(), bhs, sizeof bhs);

		size_t ahs = (size_t)bhs[4] * 4;
		size_t take = ahs < size - off ? ahs : size - off;
		out_put(o, in + off, take);
		state = crc32c_update(state, in + off, take);
		off += take;
		if (take < ahs)
			return;
		if (hd) {
			put_le32(digest, crc32c_end(state));
			out_put(o, digest, 4);
		}

		size_t dlen = get_be24(bhs + 5);
		if (dlen == 0)
			continue;
		size_t want = fill && dlen <= FILL_MAX && dlen > FILL_TAKE ? FILL_TAKE : dlen;
		take = want < size - off ? want : size - off;
		size_t at = o->len;
		out_put(o, in + off, take);
		off += take;
		if (take < want)
			return;
		out_put(o, NULL, dlen - take);
		out_put(o, NULL, pdu_pad((uint32_t)dlen));
		if (dd) {
			put_le32(digest, crc32c(o->data + at, o->len - at));
			out_put(o, digest, 4);
		}
	}
	out_put(o, in + off, size - off);
}

/* Whether the run is over: every task done, or in verify mode (no tasks)
 * the session down. */
static bool run_over(struct run *run, struct session *s, bool verify)
{
	if (verify)
		return session_state_hint(s) == SESSION_CLOSED;
	pthread_mutex_lock(&run->lock);
	bool over = run->done == NTASKS;
	pthread_mutex_unlock(&run->lock);
	return over;
}

/* Tick mode: once the peer has sent the input up to its hold, make the
 * cmd_timeout pass again and again, a little apart, until the run is
 * over or TICK_MAX ticks went. */
static void tick_until_over(struct run *run, struct session *s, struct fuzz_peer *peer,
			    bool verify)
{
	const struct timespec pause = { 0, TICK_EVERY_NS };

	fuzz_peer_wait_held(peer);
	for (unsigned i = 0; i < TICK_MAX; i++) {
		/* (first a pause: what was sent is mostly read by then) */
		nanosleep(&pause, NULL);
		if (run_over(run, s, verify))
			break;
		session_tick_ahead(s, TICK_AHEAD_NS);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct session_config cfg;
	struct login_result lr;
	struct run run;
	struct wire_out out = { NULL, 0, 0 };
	struct fuzz_peer peer;
	uint32_t itts[NTASKS];
	int sv[2];

	if (size < 3)
		return 0;
	uint8_t flags = data[0];
	size_t head = 3;
	uint8_t more = 0;
	if (flags & 0x80) {
		if (size < 4)
			return 0;
		more = data[3];
		head = 4;
	}
	bool logout_mode = flags & 0x40;
	bool verify = !logout_mode && (more & 0x02);
	bool tick = verify || (!logout_mode && (more & 0x01));

	memset(&cfg, 0, sizeof cfg);
	snprintf(cfg.host, sizeof cfg.host, "fuzz");
	snprintf(cfg.target_name, sizeof cfg.target_name, "iqn.2024-01.org.example:target");
	snprintf(cfg.initiator_name, sizeof cfg.initiator_name, "iqn.2024-01.org.example:fuzz");
	cfg.text.max_recv_dsl = OUR_MAX_RECV_DSL;
	cfg.queue_depth = QUEUE_DEPTH;
	cfg.cmd_timeout_s = tick ? TICK_CMD_TIMEOUT_S : 0;

	memset(&lr, 0, sizeof lr);
	text_params_defaults(&lr.params);
	struct iscsi_params *p = &lr.params;
	p->header_digest = flags & 0x01;
	p->data_digest = flags & 0x02;
	p->immediate_data = flags & 0x04;
	p->initial_r2t = flags & 0x08;
	p->max_recv_dsl = OUR_MAX_RECV_DSL;
	p->max_xmit_dsl = 512u << (data[1] & 7);
	p->max_outstanding_r2t = 1u + ((data[1] >> 3) & 3);
	p->max_burst_length = 512u << (data[2] & 7);
	p->first_burst_length = 512u << ((data[2] >> 3) & 7);
	if (p->first_burst_length > p->max_burst_length)
		p->first_burst_length = p->max_burst_length;
	if (p->initial_r2t && !p->immediate_data)
		p->first_burst_length = 0;
	lr.tsih = 1;
	lr.cmdsn = 1;
	lr.exp_cmdsn = 1;
	unsigned window = data[1] >> 5;
	lr.max_cmdsn = window ? lr.cmdsn + window - 2 : 64;
	lr.exp_statsn = 1;

	pthread_mutex_init(&run.lock, NULL);
	pthread_cond_init(&run.cond, NULL);
	run.done = 0;
	memset(run.calls, 0, sizeof run.calls);

	fuzz_socketpair(sv);
	struct session *s = verify ?
		session_attach_fd_verifying(NULL, NULL, &cfg, 0, sv[0], &lr, verify_luns,
					    VERIFY_LUNS) :
		session_attach_fd(NULL, NULL, &cfg, 0, sv[0], &lr);
	if (!s) {
		fprintf(stderr, "fuzz_session: %s\n", err_msg());
		abort();
	}
	for (unsigned i = 0; i < NTASKS; i++) {
		if (verify) {
			/* no tasks: ITT i is the identity check's i-th command
			 * (generation i + 1, the slots taken in turn) */
			itts[i] = (uint32_t)(i + 1) << 12 | i % QUEUE_DEPTH;
			run.done++;
			continue;
		}
		struct fuzz_task *ft = task_new(&run, i);
		if (session_submit(s, &ft->task) < 0) {
			/* not taken: done() will not run for it */
			itts[i] = ISCSI_RESERVED_TAG;
			free(ft->task.read_buf);
			free(ft->payload);
			free(ft);
			pthread_mutex_lock(&run.lock);
			run.done++;
			pthread_mutex_unlock(&run.lock);
			continue;
		}
		/* the peer has not started: nothing can complete it yet */
		itts[i] = ft->task.itt;
	}

	size_t logout_at = SIZE_MAX, tmf_at = SIZE_MAX;
	if (flags & 0x10)
		out_put(&out, data + head, size - head);
	else
		frame(&out, data + head, size - head, flags, itts, &logout_at, &tmf_at);

	if (logout_mode) {
		fuzz_peer_start_held(&peer, sv[1], out.data, out.len, logout_at,
				     ISCSI_OP_LOGOUT_REQ, p->header_digest, p->data_digest);
		fuzz_peer_wait_held(&peer);
		session_logout_and_free(s, 10000);
		/* the RX thread ended every task before it exited */
		pthread_mutex_lock(&run.lock);
		FUZZ_ASSERT(run.done == NTASKS);
		pthread_mutex_unlock(&run.lock);
	} else if (tick) {
		fuzz_peer_start_held(&peer, sv[1], out.data, out.len, tmf_at, ISCSI_OP_TMF_REQ,
				     p->header_digest, p->data_digest);
		tick_until_over(&run, s, &peer, verify);
		/* what is still out fails as the session ends */
		session_logout_and_free(s, TICK_LOGOUT_MS);
		pthread_mutex_lock(&run.lock);
		FUZZ_ASSERT(run.done == NTASKS);
		pthread_mutex_unlock(&run.lock);
	} else {
		fuzz_peer_start(&peer, sv[1], out.data, out.len);
		/* End of input closes the connection, which fails what is left. */
		pthread_mutex_lock(&run.lock);
		while (run.done < NTASKS)
			pthread_cond_wait(&run.cond, &run.lock);
		pthread_mutex_unlock(&run.lock);
		session_logout_and_free(s, 10000);
	}
	fuzz_peer_join(&peer);
	free(out.data);
	pthread_mutex_destroy(&run.lock);
	pthread_cond_destroy(&run.cond);
	return 0;
}
